-- Policy unit tests without a gateway: `gatehouse test DIR` runs each
-- *_test.lua under DIR with this module. Requests and claims are detached
-- ones the C side builds, so policies run through the same code as live.
local core = require "gatehouse.core"
local rt = require "gatehouse.runtime"

local ffi = require "ffi"

-- Captured before the sandbox takes them away from route code.
local raw_loadfile, pcall, xpcall, error = loadfile, pcall, xpcall, error
local stdout, stderr = io.stdout, io.stderr

local T = {}
local cases, dir = {}, "."

-- Runs a route file (relative to the running test file) and returns its
-- route called name, or its only route.
function T.load(file, name)
  local path = file:sub(1, 1) == "/" and file or dir .. "/" .. file
  local chunk, err = raw_loadfile(path)
  if not chunk then error(err, 2) end
  local ret = chunk()
  local routes = (type(ret) == "table" and #ret > 0) and ret or { ret }
  if name == nil then
    if #routes ~= 1 then error(file .. " has " .. #routes .. " routes: name one", 2) end
    return routes[1]
  end
  for _, r in ipairs(routes) do
    if r.name == name then return r end
  end
  error(file .. " has no route named '" .. tostring(name) .. "'", 2)
end

local function detached(spec)
  local owner, lud = core.test_request(spec or {})
  return owner, lud
end

-- A request as the gateway hands it to a policy.
function T.request(spec)
  if spec ~= nil and type(spec) ~= "table" then error("t.request needs a table", 2) end
  local owner, lud = detached(spec)
  local st = rt.state(lud, false)
  rawset(st.req, "_owner", owner)
  return st.req
end

-- Claims read through the role paths given (default: as for issuers).
function T.claims(tbl, opts)
  if type(tbl) ~= "table" then error("t.claims needs a table of claims", 2) end
  local owner, lud = detached({})
  core.test_claims(owner, tbl, opts and opts.roles)
  local c = rt.new_claims(ffi.cast("gh_req_t *", lud), lud)
  rawset(c, "_owner", owner)
  return c
end

local function outcome_of(st, req)
  local o = st.outcome
  local out = { action = "proxy", ctx = st.ctx, upstream = core.test_upstream(req._lud) }
  if o then
    for k, v in pairs(o) do out[k] = v end
  end
  return out
end

-- Runs route.policy(req, claims); returns the outcome table.
function T.run(route, req, claims)
  if type(route) ~= "table" then error("t.run needs a route (from t.load)", 2) end
  if type(req) ~= "table" or not rawget(req, "_owner") then
    error("t.run needs a request from t.request", 2)
  end
  local st = { req = req, claims = claims, ctx = {}, lud = req._lud }
  if not route.policy then return outcome_of(st, req) end
  local co = coroutine.create(rt.run)
  local ok, err = coroutine.resume(co, st, route.policy)
  rt.current = nil
  if ok and coroutine.status(co) ~= "dead" then
    ok, err = false, "the policy yielded outside a gatehouse call"
  end
  if not ok then
    return { action = "error", status = 500, error = tostring(err), ctx = st.ctx }
  end
  return outcome_of(st, req)
end

-- Runs route.on_response over a response; returns it (read res.headers),
-- and the error message when on_response failed.
function T.respond(route, spec, claims, ctx)
  if type(route) ~= "table" or not route.on_response then
    error("t.respond needs a route with on_response", 2)
  end
  spec = spec or {}
  local owner, lud = detached({})
  core.test_response(owner, spec.status or 200, spec.headers)
  local st = rt.state(lud, false)
  rawset(st.req, "_owner", owner)
  st.claims, st.ctx = claims, ctx or {}
  local ok, err = pcall(rt.response, st, route.on_response)
  rt.current = nil
  rawset(st.res, "_owner", owner)
  return st.res, (not ok) and tostring(err) or nil
end

---------------------------------------------------------------------------
-- Cases and assertions. A failed assertion names the test file's line.

function T.case(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("t.case needs a name and a function", 2)
  end
  cases[#cases + 1] = { name = name, fn = fn }
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.eq(got, want, msg)
  if got ~= want then
    error((msg and msg .. ": " or "") .. "expected " .. show(want) .. ", got " .. show(got), 2)
  end
end

function T.truthy(v, msg)
  if not v then error((msg and msg .. ": " or "") .. "expected a true value, got " .. show(v), 2) end
end

function T.falsy(v, msg)
  if v then error((msg and msg .. ": " or "") .. "expected a false value, got " .. show(v), 2) end
end

function T.errors(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error("expected an error" .. (pattern and " matching " .. show(pattern) or ""), 2) end
  if pattern and not tostring(err):find(pattern) then
    error("expected an error matching " .. show(pattern) .. ", got " .. show(tostring(err)), 2)
  end
end

-- Runs one test file's cases; returns failed, passed.
function T._run_file(file)
  dir = file:match("^(.*)/[^/]*$") or "."
  cases = {}
  local chunk, err = raw_loadfile(file)
  if not chunk then error(err, 0) end
  chunk()
  local failed, passed = 0, 0
  for _, c in ipairs(cases) do
    local ok, e = xpcall(c.fn, function(m) return tostring(m) end)
    if ok then
      passed = passed + 1
    else
      failed = failed + 1
      stderr:write("FAIL ", file, ": ", c.name, "\n  ", e, "\n")
    end
  end
  stdout:write(string.format("%s: %d passed, %d failed\n", file, passed, failed))
  return failed, passed
end

return T
