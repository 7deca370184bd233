-- 5. A canary release: 10% of users on the new catalog build.
--
-- Which users? A hash of the token's sub, not math.random: a user stays on
-- the same side for every request (no flapping between versions within a
-- session, sticky across gateway workers and restarts), the split is the
-- same on every gateway instance, and tests can tell exactly where a given
-- user goes. The hash is salted with the experiment's name so that the
-- users in one experiment's 10% are not also the ones in the next.
--
-- Raising CANARY_PERCENT moves more users over and keeps everyone already
-- on the canary there (a user's bucket never changes). Users with the realm
-- role "canary-tester" (QA) always get the canary.
--
-- The service sees X-Variant: canary or stable (for its metrics), and so
-- does the client on the response (for bug reports), through gh.ctx, the
-- table shared by a request's policy and on_response.
local gh = require "gatehouse"

local EXPERIMENT = "catalog-2"
local CANARY_PERCENT = 10

-- 0..99 from a string: the djb2 hash, then two rounds of a linear
-- congruential step so that similar ids ("user-30", "user-31") land far
-- apart, taking the bucket from the better-mixed high bits. Every value
-- stays below 2^49, so each step is exact in a Lua number (no bit library).
local function bucket(s)
  local h = 5381
  for i = 1, #s do
    h = (h * 33 + s:byte(i)) % 4294967296
  end
  for _ = 1, 2 do
    h = (h * 69069 + 1) % 4294967296
  end
  return math.floor(h / 65536) % 100
end

return gh.route {
  name     = "catalog",
  match    = { path = "/api/catalog/**" },
  auth     = "keycloak",
  upstream = "catalog",
  strip    = "/api",
  policy = function(req, claims)
    local canary = claims:has_role("canary-tester")
                or bucket(EXPERIMENT .. ":" .. claims.sub) < CANARY_PERCENT
    gh.ctx.variant = canary and "canary" or "stable"
    req.headers["X-Variant"] = gh.ctx.variant
    if canary then
      gh.upstream("catalog-canary")
    end
  end,
  on_response = function(res)
    res.headers["X-Variant"] = gh.ctx.variant
  end,
}
