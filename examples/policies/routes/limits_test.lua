-- Tests for limits.lua: `gatehouse test examples/policies/routes`
-- (limits are local to the test process; each case uses its own users)
local t = require "gatehouse.test"
local exports = t.load("limits.lua", "order-exports")
local logout = t.load("limits.lua", "logout")

local function export(sub, roles)
  local req = t.request { method = "POST", path = "/api/orders/exports" }
  return t.run(exports, req, t.claims { sub = sub, realm_access = { roles = roles or { "USER" } } })
end

t.case("a user may start two exports at once, then waits", function()
  t.eq(export("exp-user-1").action, "proxy")
  t.eq(export("exp-user-1").action, "proxy")
  local out = export("exp-user-1")
  t.eq(out.action, "deny")
  t.eq(out.status, 429)
  -- 5 an hour: the next one in 720 s (exactly the emission interval)
  t.eq(out.retry_after, 720)
end)

t.case("each user has their own count", function()
  for _ = 1, 2 do t.eq(export("exp-user-2").action, "proxy") end
  t.eq(export("exp-user-2").status, 429)
  t.eq(export("exp-user-3").action, "proxy")
end)

t.case("an admin gets ten at once", function()
  for i = 1, 10 do t.eq(export("exp-admin-1", { "USER", "ADMIN" }).action, "proxy", i) end
  t.eq(export("exp-admin-1", { "USER", "ADMIN" }).status, 429)
end)

t.case("without the USER role there is no export, and no count", function()
  t.eq(export("exp-user-4", {}).status, 403)
  for _ = 1, 2 do t.eq(export("exp-user-4").action, "proxy") end
end)

t.case("logout answers 204 and revokes the token's jti", function()
  local req = t.request { method = "POST", path = "/api/session/logout" }
  local out = t.run(logout, req, t.claims { sub = "bye-1", jti = "jti-bye-1", exp = os.time() + 300 })
  t.eq(out.action, "respond")
  t.eq(out.status, 204)
end)

t.case("logout of a token without jti signs the subject out", function()
  local req = t.request { method = "POST", path = "/api/session/logout" }
  local out = t.run(logout, req, t.claims { sub = "bye-2", exp = os.time() + 300 })
  t.eq(out.status, 204)
end)
