-- Policy tests for demo.lua: `gatehouse test routes`.
local t = require "gatehouse.test"
local orders = t.load("demo.lua", "orders")

local function user(roles)
  return t.claims { sub = "alice", realm_access = { roles = roles } }
end

t.case("a USER may read, and the service learns the roles", function()
  local req = t.request { method = "GET", path = "/api/orders/7" }
  local out = t.run(orders, req, user { "USER", "offline_access" })
  t.eq(out.action, "proxy")
  t.eq(req.headers["X-Roles"], "USER,offline_access")
end)

t.case("a token without USER or ADMIN is refused", function()
  local out = t.run(orders, t.request { path = "/api/orders" }, user { "offline_access" })
  t.eq(out.action, "deny")
  t.eq(out.status, 403)
  t.eq(out.detail, "USER role required")
end)

t.case("a USER may not delete", function()
  local out = t.run(orders, t.request { method = "DELETE", path = "/api/orders/7" }, user { "USER" })
  t.eq(out.status, 403)
  t.eq(out.detail, "ADMIN role required")
end)

t.case("an ADMIN may delete", function()
  local out = t.run(orders, t.request { method = "DELETE", path = "/api/orders/7" }, user { "ADMIN" })
  t.eq(out.action, "proxy")
end)

t.case("the response loses Server and gains nosniff", function()
  local res = t.respond(orders, { status = 200, headers = { Server = "Apache", ["X-A"] = "1" } })
  t.eq(res.headers["Server"], nil)
  t.eq(res.headers["x-content-type-options"], "nosniff")
  t.eq(res.headers["X-A"], "1")
  t.eq(res.status, 200)
end)
