-- 1. Role-based access with Keycloak realm roles and client roles.
--
-- A Keycloak access token carries realm roles and, per client, client roles:
--
--   "realm_access":    { "roles": [ "USER" ] },
--   "resource_access": { "orders.api": { "roles": [ "writer" ] } }
--
-- The issuer in gatehouse.lua lists both paths under `roles`, so
-- claims:has_role("X") is true for a realm role X *or* an orders.api client
-- role X. claims:has_client_role("orders.api", "writer") asks about that one
-- client only: use it when the role only means something for that client
-- (a realm role named "writer", or another client's, does not count).
--
-- One path, rules by method. In Spring Security terms:
--
--   .requestMatchers(GET,    "/api/orders/**").hasAnyRole("USER", "ADMIN")
--   .requestMatchers(POST,   "/api/orders/**").access(hasRole("ADMIN") or orders.api client role "writer")
--   .requestMatchers(DELETE, "/api/orders/**").hasRole("ADMIN")
--
-- POST is open to the orders.api "writer" client role so that a service
-- account (the nightly import job's client) can create orders without being
-- a realm ADMIN, while deleting stays with people holding ADMIN. Any other
-- method answers 405 with an Allow header before any role is looked at.
-- The service itself sees /orders/... (strip "/api").
local gh = require "gatehouse"

local function reader(claims)
  return claims:has_any_role { "USER", "ADMIN" }
end

local function admin(claims)
  return claims:has_role("ADMIN")
end

local function writer(claims)
  return admin(claims) or claims:has_client_role("orders.api", "writer")
end

-- method -> who may, and the 403's detail for everyone else
local rules = {
  GET    = { allowed = reader, denied = "USER or ADMIN role required to read orders" },
  HEAD   = { allowed = reader, denied = "USER or ADMIN role required to read orders" },
  POST   = { allowed = writer, denied = "ADMIN role or orders.api writer role required to create orders" },
  DELETE = { allowed = admin,  denied = "ADMIN role required to delete orders" },
}
local ALLOW = "GET, HEAD, POST, DELETE"

return gh.route {
  name     = "orders",
  match    = { path = "/api/orders/**" },
  auth     = "keycloak",  -- no or bad token: 401 before the policy runs
  upstream = "orders",
  strip    = "/api",
  policy = function(req, claims)
    local rule = rules[req.method]
    if not rule then
      return gh.respond(405, "method not allowed\n", { Allow = ALLOW })
    end
    if not rule.allowed(claims) then
      if req.method == "DELETE" then
        -- an audit trail of refused deletions, with the request id and route
        gh.log.warn("refused DELETE of", req.path, "for", claims.sub)
      end
      return gh.deny(403, rule.denied)
    end
    -- allowed: proxied to "orders" as routed
  end,
}
