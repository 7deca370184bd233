-- Tests for accounts.lua: `gatehouse test examples/policies/routes`
local t = require "gatehouse.test"
local accounts = t.load("accounts.lua", "accounts")

local ROLES = { roles = { "realm_access.roles", { "resource_access", "orders.api", "roles" } } }

local function request(headers)
  return t.request { method = "GET", path = "/api/accounts/me", headers = headers }
end

t.case("identity headers come from the token", function()
  local req = request()
  local claims = t.claims({
    sub = "f3a1c0de-0000-4000-8000-000000000001",
    preferred_username = "alice",
    scope = "openid profile",
    realm_access = { roles = { "USER", "ADMIN" } },
    resource_access = { ["orders.api"] = { roles = { "writer", "USER" } } },
  }, ROLES)
  local out = t.run(accounts, req, claims)
  t.eq(out.action, "proxy")
  t.eq(req.headers["X-User-Id"], "f3a1c0de-0000-4000-8000-000000000001")
  t.eq(req.headers["X-User-Name"], "alice")
  t.eq(req.headers["X-Roles"], "USER,ADMIN,writer")  -- each role once, no SCOPE_ entries
end)

t.case("client-sent identity headers never reach the service", function()
  local req = request {
    ["X-User-Id"] = "admin", ["x-user-name"] = "root", ["X-Roles"] = "ADMIN",
  }
  local out = t.run(accounts, req, t.claims({ sub = "bob" }, ROLES))  -- no roles, no username
  t.eq(out.action, "proxy")
  t.eq(req.headers["X-User-Id"], "bob")
  t.eq(req.headers["X-User-Name"], nil)
  t.eq(req.headers["X-Roles"], nil)
end)

t.case("responses lose Server and X-Powered-By and gain security headers", function()
  local res = t.respond(accounts, {
    status = 200,
    headers = { Server = "Apache Tomcat", ["X-Powered-By"] = "Spring", ["X-Application-Context"] = "accounts:8080",
                ["Content-Type"] = "application/json" },
  }, t.claims { sub = "bob" })
  t.eq(res.headers["Server"], nil)
  t.eq(res.headers["X-Powered-By"], nil)
  t.eq(res.headers["X-Application-Context"], nil)
  t.eq(res.headers["X-Content-Type-Options"], "nosniff")
  t.eq(res.headers["Strict-Transport-Security"], "max-age=31536000; includeSubDomains")
  t.eq(res.headers["X-Frame-Options"], "DENY")
  t.eq(res.headers["Referrer-Policy"], "no-referrer")
  t.eq(res.headers["Cache-Control"], "no-store")
  t.eq(res.headers["Content-Type"], "application/json")  -- everything else untouched
end)

t.case("a Cache-Control chosen by the service is kept", function()
  local res = t.respond(accounts, { status = 200, headers = { ["Cache-Control"] = "private, max-age=60" } },
                        t.claims { sub = "bob" })
  t.eq(res.headers["cache-control"], "private, max-age=60")
end)
