-- Route policies for a Spring Boot + Keycloak platform: one worked example
-- per routes/*.lua file, each with a *_test.lua next to it. docs/POLICIES.md
-- describes the API.
--
--   routes/orders.lua     1. realm roles and Keycloak client roles, per method
--   routes/inventory.lua  2. OAuth scopes, with RFC 6750 insufficient_scope
--   routes/tenants.lua    3. per-tenant upstreams, from a claim and from the Host
--   routes/accounts.lua   4. identity headers for a Spring Boot service,
--                            hardened response headers
--   routes/catalog.lua    5. a sticky 10% canary on a hash of the user id
--   routes/limits.lua     6. per-user rate limits (gh.limit and the rate_limit
--                            shorthand) and sign-out with gh.revoke
--
-- Check it:      gatehouse -t -c examples/policies/gatehouse.lua
-- Test the policies without a gateway (no upstream, no Keycloak needed):
--                gatehouse test examples/policies/routes
-- Run it:        gatehouse -c examples/policies/gatehouse.lua
-- and mint a development token for the orders route:
--   scripts/mint-token --issuer https://sso.example.com/realms/shop --roles USER
--
-- Every address comes from the environment when set, so this file runs
-- unchanged on a laptop, in CI (tests/e2e/test_policy_examples.py points
-- the upstreams at its recording servers) and in a container.

local env = os.getenv

-- UPSTREAM_<NAME> (upper case, "-" as "_") overrides an upstream's address,
-- e.g. UPSTREAM_TENANT_A=10.0.3.7:8080.
local function upstream(name, default)
  local var = "UPSTREAM_" .. name:upper():gsub("-", "_")
  return {
    targets = { env(var) or default },
    keepalive = 32,
    connect_timeout = 2,
    read_timeout = 30,
  }
end

-- The Keycloak realm. Without KEYCLOAK_REALM_URL the issuer verifies tokens
-- signed with the repository's development key (examples/quickstart/keys,
-- see the README there: anyone can mint such tokens, so never deploy that).
-- With KEYCLOAK_REALM_URL=https://sso.example.com/realms/shop the realm's
-- keys are fetched by OpenID Connect discovery and follow its rotations.
local realm_url = env("KEYCLOAK_REALM_URL")
local keycloak = {
  issuer     = realm_url or "https://sso.example.com/realms/shop",
  -- Keycloak adds "account" to aud on every token of the realm; an audience
  -- mapper on the orders-api client scope adds "orders-api", which is what
  -- marks a token as meant for these services.
  audience   = "orders-api",
  algorithms = { "RS256" },
  realm      = "shop",
  required_claims = { "sub" },
  -- Where claims:has_role() looks: Keycloak's realm roles, and the client
  -- roles of the "orders.api" client. The client id contains a dot, so its
  -- path is given segment by segment rather than as "resource_access.orders.api.roles".
  roles = { "realm_access.roles", { "resource_access", "orders.api", "roles" } },
}
if realm_url then
  keycloak.discovery = true
else
  keycloak.pem_file = "../quickstart/keys/dev-rs256.pub.pem"
end

return {
  listen  = { env("GATEHOUSE_LISTEN") or "127.0.0.1:8080" },
  workers = tonumber(env("GATEHOUSE_WORKERS") or "") or "auto",
  access_log = "stderr",
  lua = {
    budget = 0.05,  -- seconds of Lua time per request (waits not counted); past it: 500
  },
  -- With REDIS_URL (e.g. redis://127.0.0.1:6379), rate limits and
  -- revocations are shared by every instance; without, each keeps its own.
  redis = env("REDIS_URL") and { url = env("REDIS_URL"), timeout_ms = 200 } or nil,
  issuers = {
    keycloak = keycloak,
  },
  upstreams = {
    orders           = upstream("orders",         "127.0.0.1:8081"),  -- 1. routes/orders.lua
    inventory        = upstream("inventory",      "127.0.0.1:8082"),  -- 2. routes/inventory.lua
    ["tenant-shared"] = upstream("tenant-shared", "127.0.0.1:8083"),  -- 3. routes/tenants.lua
    ["tenant-a"]     = upstream("tenant-a",       "127.0.0.1:8084"),
    ["tenant-b"]     = upstream("tenant-b",       "127.0.0.1:8085"),
    accounts         = upstream("accounts",       "127.0.0.1:8086"),  -- 4. routes/accounts.lua
    catalog          = upstream("catalog",        "127.0.0.1:8087"),  -- 5. routes/catalog.lua
    ["catalog-canary"] = upstream("catalog-canary", "127.0.0.1:8088"),
  },
  routes = "routes/",
}
