-- Routes for the quickstart's demo upstream (an echo service on :9000).
local gh = require "gatehouse"

return {
  -- /api/orders/... reaches the service as /orders/...; it learns the
  -- stripped prefix from X-Forwarded-Prefix (as Spring Boot expects).
  gh.route {
    name     = "orders",
    match    = { path = "/api/orders/**", methods = { "GET", "POST" } },
    upstream = "demo",
    strip    = "/api",
  },
  -- Everything else under /public is passed through unchanged.
  gh.route {
    name     = "public",
    match    = { path = "/public/**" },
    upstream = "demo",
  },
}
