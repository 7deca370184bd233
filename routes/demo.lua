-- Routes for the quickstart's demo upstream (an echo service on :9000).
local gh = require "gatehouse"

return {
  -- /api/orders/... needs a valid token from the "demo" issuer. It reaches
  -- the service as /orders/..., with the token relayed unchanged (Spring's
  -- TokenRelay), X-User-Id set from the token's sub (a client-sent one is
  -- dropped), and X-Forwarded-Prefix: /api (as Spring Boot expects).
  gh.route {
    name     = "orders",
    match    = { path = "/api/orders/**", methods = { "GET", "POST", "DELETE" } },
    auth     = "demo",
    forward_claims = { ["X-User-Id"] = "sub" },
    upstream = "demo",
    strip    = "/api",
    -- Reading needs the USER realm role, deleting needs ADMIN; the roles
    -- reach the service as X-Roles for its own checks.
    policy = function(req, claims)
      if req.method == "DELETE" then
        if not claims:has_role("ADMIN") then return gh.deny(403, "ADMIN role required") end
      elseif not claims:has_any_role { "USER", "ADMIN" } then
        return gh.deny(403, "USER role required")
      end
      local roles = claims.realm_access and claims.realm_access.roles or {}
      req.headers["X-Roles"] = table.concat(roles, ",")
    end,
    -- The service's Server header says nothing the client needs.
    on_response = function(res)
      res.headers["Server"] = nil
      res.headers["X-Content-Type-Options"] = "nosniff"
    end,
  },
  -- Everything else under /public is passed through unchanged, no token needed.
  gh.route {
    name     = "public",
    match    = { path = "/public/**" },
    upstream = "demo",
  },
}
