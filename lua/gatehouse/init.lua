-- The Gatehouse route API: what `require "gatehouse"` returns to route files
-- and policies. See docs/POLICIES.md.
local rt = require "gatehouse.runtime"

local M = {}

-- Declares a route. The config loader validates its fields and reports
-- errors as file:line of the offending key.
function M.route(t)
  if type(t) ~= "table" then
    rt.error("gh.route expects a table, got " .. type(t), 2)
  end
  return t
end

local function check_status(status, lo, hi, what)
  if type(status) ~= "number" or status % 1 ~= 0 or status < lo or status > hi then
    rt.error(what .. " status must be an integer from " .. lo .. " to " .. hi .. ", got "
          .. tostring(status), 3)
  end
end

-- Each answering outcome records itself on the running request, so one a
-- policy forgot to `return` still decides; a second one is an error.
function M.deny(status, detail, opts)
  check_status(status, 400, 599, "gh.deny")
  if detail ~= nil and type(detail) ~= "string" then
    rt.error("gh.deny detail must be a string", 2)
  end
  local scope = opts and opts.scope
  if scope ~= nil and type(scope) ~= "string" then
    rt.error("gh.deny opts.scope must be a string", 2)
  end
  return rt.decide({ action = "deny", status = status, detail = detail or rt.reason(status),
                     scope = scope }, 2)
end

function M.redirect(url, status)
  status = status or 302
  if status ~= 301 and status ~= 302 and status ~= 303 and status ~= 307 and status ~= 308 then
    rt.error("gh.redirect status must be 301, 302, 303, 307 or 308, got " .. tostring(status), 2)
  end
  if type(url) ~= "string" or url == "" or not rt.header_ok("Location", url) then
    rt.error("gh.redirect needs a URL without control characters", 2)
  end
  return rt.decide({ action = "redirect", status = status, location = url }, 2)
end

function M.respond(status, body, headers)
  check_status(status, 200, 599, "gh.respond")
  if body ~= nil and type(body) ~= "string" then
    rt.error("gh.respond body must be a string, got " .. type(body), 2)
  end
  local h = {}
  if headers ~= nil then
    if type(headers) ~= "table" then rt.error("gh.respond headers must be a table", 2) end
    for k, v in pairs(headers) do
      if type(v) == "number" then v = tostring(v) end
      if type(k) ~= "string" or type(v) ~= "string" or not rt.header_ok(k, v) then
        rt.error("gh.respond header " .. tostring(k) .. " is not a valid name = value", 2)
      end
      if rt.managed(k, true) then
        rt.error("gh.respond cannot set " .. k .. ": the gateway manages it", 2)
      end
      h[k] = v
    end
  end
  return rt.decide({ action = "respond", status = status, body = body or "", headers = h }, 2)
end

-- gh.too_many(seconds), or gh.too_many(info) with gh.limit's info: then
-- the 429 carries that decision's RateLimit headers too.
function M.too_many(retry_after)
  local info = type(retry_after) == "table" and retry_after or nil
  if info then retry_after = info.retry_after end
  if type(retry_after) ~= "number" or retry_after < 0 or retry_after ~= retry_after then
    rt.error("gh.too_many needs the seconds after which to retry, or gh.limit's info", 2)
  end
  return rt.decide({ action = "deny", status = 429, detail = "too many requests",
                     retry_after = math.ceil(retry_after), ratelimit = info ~= nil }, 2)
end

local LIMIT_OPTS = { rate = "number", per = "number", burst = "number", scope = "string",
                     on_error = "string", headers = "boolean", name = "string" }

local function positive(v)
  return type(v) == "number" and v > 0 and v < math.huge
end

-- Counts a request against key: ok, info (limit, remaining, reset,
-- retry_after, policy; error when Redis failed and on_error = "allow").
function M.limit(key, opts)
  if type(key) ~= "string" or key == "" then
    rt.error("gh.limit needs a key string, e.g. \"orders:\" .. claims.sub", 2)
  end
  if type(opts) ~= "table" then
    rt.error("gh.limit needs options: { rate = N, per = seconds, burst = N }", 2)
  end
  for k, v in pairs(opts) do
    if LIMIT_OPTS[k] == nil then rt.error("gh.limit: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= LIMIT_OPTS[k] then rt.error("gh.limit: " .. k .. " must be a " .. LIMIT_OPTS[k], 2) end
  end
  local rate, per = opts.rate, opts.per or 1
  local burst = opts.burst or math.max(rate or 1, 1)
  if not positive(rate) or not positive(per) then
    rt.error("gh.limit: rate and per must be positive numbers", 2)
  end
  if not positive(burst) or burst < 1 then rt.error("gh.limit: burst must be at least 1", 2) end
  local scope, on_error = opts.scope or "global", opts.on_error or "allow"
  if scope ~= "global" and scope ~= "local" then
    rt.error("gh.limit: scope must be \"global\" or \"local\"", 2)
  end
  if on_error ~= "allow" and on_error ~= "deny" then
    rt.error("gh.limit: on_error must be \"allow\" or \"deny\"", 2)
  end
  local flags = (scope == "global" and 1 or 0) + (on_error == "deny" and 2 or 0)
              + (opts.headers and 4 or 0)
  return rt.limit(key, rate, per, burst, flags, opts.name or "default", 2)
end

-- Revokes a token ({ jti = ..., exp = ... }) or every token of a subject
-- issued before a time ({ sub = ..., before = os.time() }): ok, or false
-- and why (it then holds on this instance only).
function M.revoke(t)
  if type(t) ~= "table" or (t.jti == nil) == (t.sub == nil) then
    rt.error("gh.revoke needs { jti = ..., exp = ... } or { sub = ..., before = ... }", 2)
  end
  local id, when = t.jti or t.sub, t.jti and t.exp or (t.before or os.time())
  if type(id) ~= "string" or id == "" then rt.error("gh.revoke: jti and sub must be strings", 2) end
  if type(when) ~= "number" or when ~= when then
    rt.error("gh.revoke: " .. (t.jti and "exp" or "before") .. " must be unix seconds", 2)
  end
  return rt.revoke(t.jti and 0 or 1, id, when, 2)
end

-- Picks another upstream; the policy goes on.
function M.upstream(name)
  if type(name) ~= "string" then rt.error("gh.upstream needs an upstream name", 2) end
  rt.set_upstream(name, 2)
end

-- Waits without blocking the worker.
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    rt.error("gh.sleep needs a number of seconds", 2)
  end
  rt.sleep(seconds, 2)
end

M.log = {
  info = function(...) rt.log(1, ...) end,
  warn = function(...) rt.log(2, ...) end,
  error = function(...) rt.log(3, ...) end,
}

-- gh.ctx is the running request's own table.
return setmetatable(M, {
  __index = function(_, k)
    if k == "ctx" then return rt.ctx() end
  end,
})
