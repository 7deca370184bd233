-- The policy runtime: request, claims and response objects over the C side
-- (lua_ffi.c's gh_ffi_* functions through LuaJIT's FFI), and the entry points
-- lua_policy.c calls. Not part of the user API.
local ffi = require "ffi"
local core = require "gatehouse.core"

ffi.cdef [[
typedef struct gh_req_s gh_req_t;
]]

-- Name -> C signature; core.fns holds each function's address.
local sigs = {
  req_str = "int (*)(gh_req_t *, int, const char **, size_t *)",
  header_get = "int (*)(gh_req_t *, int, const char *, size_t, const char **, size_t *)",
  header_set = "int (*)(gh_req_t *, int, const char *, size_t, const char *, size_t, const char **)",
  header_valid = "int (*)(const char *, size_t, const char *, size_t)",
  header_managed = "int (*)(const char *, size_t, int)",
  set_path = "int (*)(gh_req_t *, const char *, size_t, const char **)",
  set_query = "int (*)(gh_req_t *, const char *, size_t, int, const char **)",
  set_upstream = "int (*)(gh_req_t *, const char *, size_t)",
  has_role = "int (*)(gh_req_t *, const char *, size_t)",
  has_client_role = "int (*)(gh_req_t *, const char *, size_t, const char *, size_t)",
  has_scope = "int (*)(gh_req_t *, const char *, size_t)",
  resp_status = "int (*)(gh_req_t *)",
  log = "void (*)(gh_req_t *, int, const char *, size_t)",
  sleep = "int (*)(gh_req_t *, double, const char **)",
  limit = "int (*)(gh_req_t *, const char *, size_t, const double *, int, const char *, size_t, "
    .. "const char **)",
  limit_result = "int (*)(gh_req_t *, double *, const char **)",
  revoke = "int (*)(gh_req_t *, int, const char *, size_t, double, const char **)",
  revoke_result = "int (*)(gh_req_t *, const char **)",
}
local C = {}
for name, sig in pairs(sigs) do
  C[name] = ffi.cast(sig, core.fns[name])
end

local out_p = ffi.new("const char *[1]")
local out_n = ffi.new("size_t[1]")
local err_p = ffi.new("const char *[1]")
local ffi_string, type, tostring, error, rawset = ffi.string, type, tostring, error, rawset

local R = { current = nil }

-- Captured while debug is still reachable (the sandbox removes it).
local getinfo = debug.getinfo
local HERE = getinfo(1, "S").short_src

-- error(msg, level) that names the policy's line even when the gh call was
-- a tail call (`return gh.deny(...)`), whose caller's frame Lua has dropped:
-- it then names the line where the policy function starts.
function R.error(msg, level)
  local info = getinfo(level + 1, "Sl")
  local where = ""
  if info and info.currentline and info.currentline > 0 and info.short_src ~= HERE then
    where = info.short_src .. ":" .. info.currentline .. ": "
  else
    local st = R.current
    local fn = st and (st.phase == "response" and st.on_response or st.policy)
    local def = fn and getinfo(fn, "S")
    if def then
      where = def.short_src .. ":" .. def.linedefined .. ": in the function that returned it: "
    end
  end
  error(where .. msg, 0)
end

local function ptr(o)
  local r = rawget(o, "_r")
  if r == nil then R.error("this request has ended", 3) end
  return r
end

local function fail(level)
  R.error(ffi_string(err_p[0]), level + 1)
end

---------------------------------------------------------------------------
-- Headers: a view of the request's (resp = 0) or response's (resp = 1).

local headers_mt = {
  __index = function(h, name)
    if type(name) ~= "string" then return nil end
    local rc = C.header_get(ptr(h._o), h._resp, name, #name, out_p, out_n)
    if rc == 1 then
      local v = ffi_string(out_p[0], out_n[0]) -- not a tail call, which interpreted callers cannot compile
      return v
    end
    if rc < 0 then R.error("out of memory reading a header", 2) end
    return nil
  end,
  __newindex = function(h, name, v)
    if type(name) ~= "string" then R.error("header names are strings", 2) end
    if type(v) == "number" then v = tostring(v) end
    if v ~= nil and type(v) ~= "string" then
      R.error("header " .. name .. " must be set to a string, a number or nil", 2)
    end
    local rc
    if v == nil then
      rc = C.header_set(ptr(h._o), h._resp, name, #name, nil, 0, err_p)
    else
      rc = C.header_set(ptr(h._o), h._resp, name, #name, v, #v, err_p)
    end
    if rc ~= 0 then R.error("cannot set header " .. name .. ": " .. ffi_string(err_p[0]), 2) end
  end,
}

---------------------------------------------------------------------------
-- Query strings.

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- "a=1&b=x%20y&a=2&flag" -> { a = { "1", "2" }, b = "x y", flag = "" }
local function parse_query(q)
  local t = {}
  if not q then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    k, v = unescape(k), unescape(v)
    local cur = t[k]
    if cur == nil then
      t[k] = v
    elseif type(cur) == "table" then
      cur[#cur + 1] = v
    else
      t[k] = { cur, v }
    end
  end
  return t
end

local function encode_query(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then R.error("query names must be strings", 3) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    local list = type(v) == "table" and v or { v }
    for _, x in ipairs(list) do
      if x == true then
        out[#out + 1] = escape(k)
      elseif type(x) == "string" or type(x) == "number" then
        out[#out + 1] = escape(k) .. "=" .. escape(x)
      else
        R.error("query value for " .. k .. " must be a string, a number, true or a list", 3)
      end
    end
  end
  return table.concat(out, "&")
end

R.parse_query = parse_query

---------------------------------------------------------------------------
-- The request.

local STR = { method = 0, path = 1, host = 3, client_ip = 4, id = 5 }
local LIVE = { upstream_path = 6, upstream_query = 7 }

local function req_str(r, what)
  local rc = C.req_str(r, what, out_p, out_n)
  if rc ~= 1 then return nil end
  local v = ffi_string(out_p[0], out_n[0])
  return v
end

local Req = {}

function Req:set_path(p)
  if type(p) ~= "string" then R.error("req:set_path needs a string", 2) end
  if C.set_path(ptr(self), p, #p, err_p) ~= 0 then fail(2) end
end

function Req:set_query(q)
  local s
  if q == nil then
    s = nil
  elseif type(q) == "table" then
    s = encode_query(q)
  elseif type(q) == "string" then
    s = q
  else
    R.error("req:set_query needs a table, a string or nil", 2)
  end
  local rc
  if s == nil then
    rc = C.set_query(ptr(self), nil, 0, 1, err_p)
  else
    rc = C.set_query(ptr(self), s, #s, 0, err_p)
  end
  if rc ~= 0 then fail(2) end
  rawset(self, "query", nil) -- reparsed from the new value on next use
end

local req_mt = {
  __index = function(self, k)
    local m = Req[k]
    if m then return m end
    local what = STR[k]
    if what then
      local v = req_str(ptr(self), what)
      rawset(self, k, v)
      return v
    end
    if k == "headers" then
      local h = setmetatable({ _o = self, _resp = 0 }, headers_mt)
      rawset(self, k, h)
      return h
    end
    if k == "query" then
      local q = parse_query(req_str(ptr(self), 7))
      rawset(self, k, q)
      return q
    end
    what = LIVE[k]
    if what then return req_str(ptr(self), what) end
  end,
  __newindex = function(_, k)
    R.error("req." .. tostring(k) .. " cannot be assigned: use req.headers, req:set_path "
          .. "or req:set_query", 2)
  end,
}

local function new_req(r, lud)
  return setmetatable({ _r = r, _lud = lud }, req_mt)
end

---------------------------------------------------------------------------
-- The claims.

local Claims = {}

local function str_arg(v, what, level)
  if type(v) ~= "string" then R.error(what .. " must be a string, got " .. type(v), level + 1) end
  return v
end

function Claims:has_role(role)
  str_arg(role, "claims:has_role's role", 2)
  return C.has_role(ptr(self), role, #role) ~= 0
end

function Claims:has_any_role(roles)
  if type(roles) ~= "table" then R.error("claims:has_any_role needs a list of roles", 2) end
  local r = ptr(self)
  for _, role in ipairs(roles) do
    str_arg(role, "each role", 2)
    if C.has_role(r, role, #role) ~= 0 then return true end
  end
  return false
end

function Claims:has_client_role(client, role)
  str_arg(client, "claims:has_client_role's client", 2)
  str_arg(role, "claims:has_client_role's role", 2)
  return C.has_client_role(ptr(self), client, #client, role, #role) ~= 0
end

function Claims:has_scope(scope)
  str_arg(scope, "claims:has_scope's scope", 2)
  return C.has_scope(ptr(self), scope, #scope) ~= 0
end

-- Spring Security's reading: ROLE_<role> and SCOPE_<scope>.
function Claims:authorities()
  ptr(self)
  local out = {}
  for _, role in ipairs(core.roles(self._lud)) do out[#out + 1] = "ROLE_" .. role end
  local scope = self:get("scope")
  if type(scope) == "string" then
    for s in scope:gmatch("%S+") do out[#out + 1] = "SCOPE_" .. s end
  end
  return out
end

function Claims:has_authority(a)
  str_arg(a, "claims:has_authority's authority", 2)
  if a:sub(1, 5) == "ROLE_" then return self:has_role(a:sub(6)) end
  if a:sub(1, 6) == "SCOPE_" then return self:has_scope(a:sub(7)) end
  return false
end

function Claims:get(name)
  ptr(self)
  local v = rawget(self, name)
  if v == nil then v = core.claim(self._lud, name) end
  return v
end

local claims_mt = {
  __index = function(self, k)
    local m = Claims[k]
    if m then return m end
    ptr(self)
    if type(k) ~= "string" then return nil end
    local v = core.claim(self._lud, k)
    if v ~= nil then rawset(self, k, v) end
    return v
  end,
}

local function new_claims(r, lud)
  return setmetatable({ _r = r, _lud = lud }, claims_mt)
end
R.new_claims = new_claims

---------------------------------------------------------------------------
-- The response (on_response).

local res_mt = {
  __index = function(self, k)
    if k == "status" then return C.resp_status(ptr(self)) end
    if k == "headers" then
      local h = setmetatable({ _o = self, _resp = 1 }, headers_mt)
      rawset(self, k, h)
      return h
    end
  end,
  __newindex = function(_, k)
    R.error("res." .. tostring(k) .. " cannot be assigned: use res.headers", 2)
  end,
}

---------------------------------------------------------------------------
-- Outcomes and calls that need the running request.

local Outcome = {}
R.Outcome = Outcome

function R.decide(o, level)
  setmetatable(o, Outcome)
  local st = R.current
  if st then
    if st.phase == "response" then
      R.error("gh." .. o.action .. " is for policy(), not on_response()", level + 1)
    end
    if st.outcome then
      R.error("the response was already decided (" .. st.outcome.action .. " "
            .. st.outcome.status .. ") by an earlier call", level + 1)
    end
    st.outcome = o
  end
  return o
end

local function running(what, level)
  local st = R.current
  if not st then R.error(what .. " only works while a request is being handled", level + 1) end
  return st
end

function R.set_upstream(name, level)
  local st = running("gh.upstream", level + 1)
  if st.phase == "response" then R.error("gh.upstream is for policy(), not on_response()", level + 1) end
  if C.set_upstream(ptr(st.req), name, #name) ~= 0 then
    R.error("gh.upstream: no upstream named '" .. name .. "' in gatehouse.lua", level + 1)
  end
end

R.YIELD = setmetatable({}, { __tostring = function() return "gatehouse wait" end })

-- The running request, for a call that may wait: only policy() itself can
-- (on_response runs outside a coroutine; a coroutine the policy made is
-- not the one C resumes).
local function waitable(what, level)
  local st = running(what, level + 1)
  if st.co == nil or coroutine.running() ~= st.co then
    R.error(what .. " can only wait in policy() itself, not in on_response() or a coroutine "
          .. "the policy created", level + 1)
  end
  return st
end

-- C said "again": wait for the event that resumes the request.
local function wait(st)
  coroutine.yield(R.YIELD)
  R.current = st
end

function R.sleep(seconds, level)
  local st = waitable("gh.sleep", level + 1)
  local rc = C.sleep(ptr(st.req), seconds, err_p)
  if rc < 0 then fail(level + 1) end
  if rc == 0 then wait(st) end
end

-- Raised when a limit with on_error = "deny" could not be decided: the
-- request is answered 503 whatever the policy does with the error.
R.UNAVAILABLE = setmetatable({}, {
  __tostring = function() return "the rate limiter is unavailable (on_error = \"deny\")" end })

local conf_buf = ffi.new("double[3]")
local res_buf = ffi.new("double[4]")

function R.limit(key, rate, per, burst, flags, name, level)
  local st = waitable("gh.limit", level + 1)
  local r = ptr(st.req)
  conf_buf[0], conf_buf[1], conf_buf[2] = rate, per, burst
  local rc = C.limit(r, key, #key, conf_buf, flags, name, #name, err_p)
  if rc < 0 then fail(level + 1) end
  if rc == 0 then wait(st) end
  local s = C.limit_result(ptr(st.req), res_buf, err_p)
  if s == 3 then error(R.UNAVAILABLE, 0) end
  local info = { limit = res_buf[0], remaining = res_buf[1], reset = res_buf[2],
                 retry_after = res_buf[3], policy = name }
  if s == 2 then info.error = ffi_string(err_p[0]) end
  return s ~= 0, info
end

function R.revoke(kind, id, t, level)
  local st = waitable("gh.revoke", level + 1)
  local rc = C.revoke(ptr(st.req), kind, id, #id, t, err_p)
  if rc < 0 then fail(level + 1) end
  if rc == 0 then wait(st) end
  if C.revoke_result(ptr(st.req), err_p) == 0 then return false, ffi_string(err_p[0]) end
  return true
end

function R.log(level, ...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  local msg = table.concat(parts, " ")
  local st = R.current
  C.log(st and rawget(st.req, "_r") or nil, level, msg, #msg)
end

function R.ctx()
  local st = R.current
  if not st then return nil end
  local ctx = st.ctx
  if not ctx then
    ctx = {}
    st.ctx = ctx
  end
  return ctx
end

function R.header_ok(name, value)
  return C.header_valid(name, #name, value, #value) ~= 0
end

function R.managed(name, resp)
  return C.header_managed(name, #name, resp and 1 or 0) ~= 0
end

---------------------------------------------------------------------------
-- Entry points for lua_policy.c (and the test harness).

-- Fills a request's state table: its req, and claims (nil without auth);
-- ctx is made on first use. addr is the request's address as a number,
-- when the caller has it: casting a number compiles, a light userdata not.
local req_ptr_t = ffi.typeof("gh_req_t *")
local function fill(st, lud, with_claims, addr)
  local r = ffi.cast(req_ptr_t, addr or lud)
  st.req = new_req(r, lud)
  if with_claims then st.claims = new_claims(r, lud) end
  st.lud = lud
  return st
end

function R.state(lud, with_claims, addr)
  return fill({ ctx = {} }, lud, with_claims, addr)
end

local ACTION = { deny = 1, redirect = 2, respond = 3 }

-- What the policy decided, flattened for C: action (0 proxy, 1 deny,
-- 2 redirect, 3 respond), status, text (detail, location or body),
-- retry_after, headers, scope, ratelimit (429 with the last gh.limit's headers).
function R.result(st, ret)
  if ret ~= nil and getmetatable(ret) ~= Outcome then
    error("policy returned a " .. type(ret) .. ": return nothing to proxy, or a gh.deny, "
          .. "gh.redirect, gh.respond or gh.too_many outcome", 0)
  end
  local o = st.outcome or ret
  st.outcome = o
  if not o then return 0 end
  return ACTION[o.action], o.status, o.detail or o.location or o.body, o.retry_after,
    o.headers, o.scope, o.ratelimit
end

-- The body of a request's policy coroutine. st is the request's state
-- table, filled here on first use (lua_policy.c makes it empty).
function R.run(st, policy, lud, with_claims, addr)
  if not st.req then fill(st, lud, with_claims, addr) end
  st.co = coroutine.running()
  st.phase = "policy"
  st.policy = policy
  R.current = st
  local ret = policy(st.req, st.claims)
  R.current = nil
  return R.result(st, ret)
end

-- Runs on_response(res, claims) for a request (no waiting).
function R.response(st, fn, lud, with_claims, addr)
  if not st.req then fill(st, lud, with_claims, addr) end
  st.co = nil
  st.phase = "response"
  st.on_response = fn
  st.res = st.res or setmetatable({ _r = st.req._r }, res_mt)
  R.current = st
  fn(st.res, st.claims)
  R.current = nil
end

-- The request has ended: objects a policy kept hold no pointer to it.
local function forget(o)
  if o then
    rawset(o, "_r", nil)
    rawset(o, "_lud", nil)
  end
end

function R.finish(st)
  forget(st.req)
  forget(st.claims)
  forget(st.res)
  if R.current == st then R.current = nil end
end

return R
