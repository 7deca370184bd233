-- Tests for orders.lua: `gatehouse test examples/policies/routes`
local t = require "gatehouse.test"
local orders = t.load("orders.lua", "orders")

-- The role paths of the keycloak issuer in ../gatehouse.lua.
local ROLES = { roles = { "realm_access.roles", { "resource_access", "orders.api", "roles" } } }

-- A Keycloak-shaped token: realm roles, and client roles per client id.
local function token(realm_roles, client_roles)
  return t.claims({
    sub = "f3a1c0de-0000-4000-8000-000000000001",
    preferred_username = "alice",
    realm_access = { roles = realm_roles or {} },
    resource_access = client_roles or {},
  }, ROLES)
end

local function run(method, claims, path)
  return t.run(orders, t.request { method = method, path = path or "/api/orders/42" }, claims)
end

local function allowed(out)
  t.eq(out.action, "proxy", out.detail or out.error)
end

local function forbidden(out, detail)
  t.eq(out.action, "deny")
  t.eq(out.status, 403)
  t.eq(out.detail, detail)
end

t.case("a USER may read orders", function()
  allowed(run("GET", token { "USER" }))
  allowed(run("HEAD", token { "USER" }))
  allowed(run("GET", token { "USER" }, "/api/orders"))
end)

t.case("an ADMIN may read orders without the USER role", function()
  allowed(run("GET", token { "ADMIN" }))
end)

t.case("a token without roles may not read orders", function()
  forbidden(run("GET", token {}), "USER or ADMIN role required to read orders")
  forbidden(run("GET", token { "offline_access", "uma_authorization" }),
            "USER or ADMIN role required to read orders")
end)

t.case("a USER may neither create nor delete orders", function()
  forbidden(run("POST", token { "USER" }), "ADMIN role or orders.api writer role required to create orders")
  forbidden(run("DELETE", token { "USER" }), "ADMIN role required to delete orders")
end)

t.case("an ADMIN may create and delete orders", function()
  allowed(run("POST", token { "USER", "ADMIN" }))
  allowed(run("DELETE", token { "USER", "ADMIN" }))
end)

t.case("the orders.api writer client role may create orders but not delete them", function()
  local svc = token({}, { ["orders.api"] = { roles = { "writer" } } })
  allowed(run("POST", svc))
  forbidden(run("DELETE", svc), "ADMIN role required to delete orders")
end)

t.case("writer as a realm role, or another client's, does not count", function()
  forbidden(run("POST", token { "USER", "writer" }),
            "ADMIN role or orders.api writer role required to create orders")
  forbidden(run("POST", token({ "USER" }, { ["billing.api"] = { roles = { "writer" } } })),
            "ADMIN role or orders.api writer role required to create orders")
end)

t.case("an orders.api client role ADMIN counts as ADMIN (the issuer's role paths include it)", function()
  allowed(run("DELETE", token({}, { ["orders.api"] = { roles = { "ADMIN" } } })))
end)

t.case("other methods answer 405 with Allow", function()
  for _, m in ipairs { "PUT", "PATCH", "OPTIONS" } do
    local out = run(m, token { "ADMIN" })
    t.eq(out.action, "respond", m)
    t.eq(out.status, 405, m)
    t.eq(out.headers["Allow"], "GET, HEAD, POST, DELETE", m)
  end
end)
