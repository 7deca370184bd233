-- 6. Rate limits and sign-out.
--
-- Order exports are expensive: a user may start 5 an hour, at most 2 at
-- once; an ADMIN 50 an hour, 10 at once. Each user's count is kept in
-- Redis when gatehouse.lua has a `redis` table (then every gateway instance
-- enforces the one limit), in the instance's memory otherwise. A refused
-- export gets 429 with Retry-After and the RateLimit headers, and nothing
-- reaches the orders service.
--
-- The catalog search is cheap but public-facing: a declarative per-user
-- limit, no policy needed (rate_limit, see README "Rate limits").
--
-- POST /api/session/logout signs the caller's token out everywhere at once
-- (gh.revoke): it is refused by every instance for the rest of its life.
local gh = require "gatehouse"

local EXPORTS = {
  user  = { rate = 5,  per = 3600, burst = 2,  name = "exports", headers = true },
  admin = { rate = 50, per = 3600, burst = 10, name = "exports", headers = true },
}

return {
  gh.route {
    name     = "order-exports",
    match    = { path = "/api/orders/exports", methods = { "POST" } },
    auth     = "keycloak",
    upstream = "orders",
    strip    = "/api",
    policy   = function(req, claims)
      if not claims:has_role("USER") then return gh.deny(403, "USER role required") end
      local tier = claims:has_role("ADMIN") and "admin" or "user"
      -- one key per tier: a key's count belongs to one rate
      local ok, info = gh.limit("exports:" .. tier .. ":" .. claims.sub, EXPORTS[tier])
      if not ok then return gh.too_many(info) end
    end,
  },

  gh.route {
    name       = "catalog-search",
    match      = { path = "/api/catalog/search" },
    auth       = "keycloak",
    upstream   = "catalog",
    strip      = "/api",
    rate_limit = { by = "sub", rate = 20, per = 1, burst = 40, name = "search" },
  },

  gh.route {
    name     = "logout",
    match    = { path = "/api/session/logout", methods = { "POST" } },
    auth     = "keycloak",
    upstream = "accounts",
    policy   = function(req, claims)
      local ok, err
      if claims.jti then
        ok, err = gh.revoke { jti = claims.jti, exp = claims.exp }
      else -- a token without an id: sign the whole subject out
        ok, err = gh.revoke { sub = claims.sub, before = os.time() + 1 }
      end
      if not ok then gh.log.warn("logout held on this instance only:", err) end
      return gh.respond(204, "")
    end,
  },
}
