-- Routes for the quickstart's demo upstream (an echo service on :9000).
local gh = require "gatehouse"

return {
  -- /api/orders/... needs a valid token from the "demo" issuer. It reaches
  -- the service as /orders/..., with the token relayed unchanged (Spring's
  -- TokenRelay), X-User-Id set from the token's sub (a client-sent one is
  -- dropped), and X-Forwarded-Prefix: /api (as Spring Boot expects).
  gh.route {
    name     = "orders",
    match    = { path = "/api/orders/**", methods = { "GET", "POST" } },
    auth     = "demo",
    forward_claims = { ["X-User-Id"] = "sub" },
    upstream = "demo",
    strip    = "/api",
  },
  -- Everything else under /public is passed through unchanged, no token needed.
  gh.route {
    name     = "public",
    match    = { path = "/public/**" },
    upstream = "demo",
  },
}
