-- 4. Identity headers for a Spring Boot service, and hardened responses.
--
-- The accounts service is a Spring Boot app that trusts the gateway instead
-- of validating tokens itself (a pre-authenticated setup: a
-- RequestHeaderAuthenticationFilter reads X-User-Id, and X-Roles becomes
-- its ROLE_ authorities). It must then only ever be reachable through the
-- gateway, and the gateway must never pass on a client's own copy of these
-- headers: each one below is either set from the verified token or removed.
--
--   X-User-Id    the token's sub (Keycloak's user id)
--   X-User-Name  preferred_username, if any
--   X-Roles      the roles has_role() sees (realm roles and orders.api client
--                roles, see gatehouse.lua), comma-separated: "USER,ADMIN"
--
-- On the way back, on_response removes what tells an attacker which server
-- and framework answered (Server, X-Powered-By, Spring Boot 1's
-- X-Application-Context) and adds the usual security headers, keeping a
-- Cache-Control the service chose itself.
local gh = require "gatehouse"

-- The roles among the token's authorities (ROLE_USER, SCOPE_openid, ...),
-- without the prefix, each once, in the token's order.
local function roles_of(claims)
  local out, seen = {}, {}
  for _, authority in ipairs(claims:authorities()) do
    local role = authority:match("^ROLE_(.+)$")
    if role and not seen[role] then
      seen[role] = true
      out[#out + 1] = role
    end
  end
  return out
end

local SECURITY_HEADERS = {
  ["X-Content-Type-Options"]    = "nosniff",
  ["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains",
  ["X-Frame-Options"]           = "DENY",
  ["Referrer-Policy"]           = "no-referrer",
  ["Content-Security-Policy"]   = "default-src 'none'; frame-ancestors 'none'",
}

return gh.route {
  name     = "accounts",
  match    = { path = "/api/accounts/**" },
  auth     = "keycloak",
  upstream = "accounts",
  strip    = "/api",
  policy = function(req, claims)
    req.headers["X-User-Id"] = claims.sub
    req.headers["X-User-Name"] = claims.preferred_username  -- nil removes a client's copy
    local roles = roles_of(claims)
    req.headers["X-Roles"] = #roles > 0 and table.concat(roles, ",") or nil
  end,
  on_response = function(res, claims)
    res.headers["Server"] = nil
    res.headers["X-Powered-By"] = nil
    res.headers["X-Application-Context"] = nil
    for name, value in pairs(SECURITY_HEADERS) do
      res.headers[name] = value
    end
    if res.headers["Cache-Control"] == nil then
      res.headers["Cache-Control"] = "no-store"  -- account data is personal
    end
  end,
}
