-- 3. Per-tenant routing.
--
-- Billing runs as one deployment per large tenant and one shared deployment
-- for everyone else. Keycloak puts the user's tenant in a `tenant_id` claim
-- (a user attribute with a "User Attribute" protocol mapper).
--
-- Two ways in, two routes:
--   * api.example.com/api/billing/...   the tenant comes from the token
--     (route "billing");
--   * acme.tenants.example.com/api/billing/...   the tenant is named by the
--     host, and the token must belong to that tenant (route "billing-by-host";
--     a route with a host beats one without, so it wins for those hosts).
--
-- Either way the request goes to the tenant's upstream with X-Tenant-Id set
-- (a client-sent X-Tenant-Id is replaced, never trusted), and a token without
-- a usable tenant is refused before anything reaches a billing service.
local gh = require "gatehouse"

-- tenant_id -> dedicated upstream; every other tenant uses "tenant-shared"
local DEDICATED = {
  acme   = "tenant-a",
  globex = "tenant-b",
}

-- A tenant id is a DNS label: it ends up in host names and headers.
local function valid_tenant(id)
  return type(id) == "string" and #id <= 63 and id:find("^[a-z0-9][a-z0-9-]*$") ~= nil
end

local function send_to_tenant(req, tenant)
  req.headers["X-Tenant-Id"] = tenant
  local dedicated = DEDICATED[tenant]
  if dedicated then
    gh.upstream(dedicated)
  end
  -- otherwise: the route's own upstream, "tenant-shared"
end

local function tenant_from_token(claims)
  local tenant = claims.tenant_id
  if not valid_tenant(tenant) then
    return nil, gh.deny(403, "the token carries no valid tenant_id")
  end
  return tenant
end

return {
  gh.route {
    name     = "billing",
    match    = { path = "/api/billing/**" },
    auth     = "keycloak",
    upstream = "tenant-shared",
    strip    = "/api",
    policy = function(req, claims)
      local tenant, refused = tenant_from_token(claims)
      if not tenant then return refused end
      send_to_tenant(req, tenant)
    end,
  },

  gh.route {
    name     = "billing-by-host",
    match    = { host = "*.tenants.example.com", path = "/api/billing/**" },
    auth     = "keycloak",
    upstream = "tenant-shared",
    strip    = "/api",
    policy = function(req, claims)
      -- "ACME.tenants.example.com:8443" -> "acme"
      local host_tenant = req.host:lower():gsub(":%d+$", ""):match("^([^.]+)%.tenants%.example%.com$")
      if not valid_tenant(host_tenant) then
        return gh.deny(404, "no such tenant")
      end
      local tenant, refused = tenant_from_token(claims)
      if not tenant then return refused end
      if tenant ~= host_tenant then
        -- a valid token of one tenant must not reach another tenant's data
        gh.log.warn("tenant mismatch: token of", tenant, "on host of", host_tenant)
        return gh.deny(403, "the token does not belong to this tenant")
      end
      send_to_tenant(req, tenant)
    end,
  },
}
