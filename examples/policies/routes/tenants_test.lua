-- Tests for tenants.lua: `gatehouse test examples/policies/routes`
local t = require "gatehouse.test"
local billing = t.load("tenants.lua", "billing")
local by_host = t.load("tenants.lua", "billing-by-host")

local function claims(tenant)
  return t.claims { sub = "u-1", tenant_id = tenant }
end

local function req(host, headers)
  return t.request { method = "GET", path = "/api/billing/invoices", host = host or "api.example.com",
                     headers = headers }
end

-- where the request goes: the upstream a policy chose, or the route's own
local function upstream_of(out)
  return out.upstream or "tenant-shared"
end

t.case("dedicated tenants go to their own upstream, with X-Tenant-Id", function()
  for tenant, upstream in pairs { acme = "tenant-a", globex = "tenant-b" } do
    local r = req()
    local out = t.run(billing, r, claims(tenant))
    t.eq(out.action, "proxy", tenant)
    t.eq(upstream_of(out), upstream, tenant)
    t.eq(r.headers["X-Tenant-Id"], tenant)
  end
end)

t.case("other tenants share tenant-shared", function()
  local r = req()
  local out = t.run(billing, r, claims("initech"))
  t.eq(out.action, "proxy")
  t.eq(upstream_of(out), "tenant-shared")
  t.eq(r.headers["X-Tenant-Id"], "initech")
end)

t.case("a client-sent X-Tenant-Id is replaced by the token's tenant", function()
  local r = req(nil, { ["X-Tenant-Id"] = "globex" })
  local out = t.run(billing, r, claims("acme"))
  t.eq(upstream_of(out), "tenant-a")
  t.eq(r.headers["X-Tenant-Id"], "acme")
end)

t.case("a token without a valid tenant_id is refused", function()
  for _, bad in ipairs { false, "", "Acme", "acme corp", "../acme", ("x"):rep(64) } do
    local out = t.run(billing, req(), claims(bad or nil))
    t.eq(out.action, "deny", tostring(bad))
    t.eq(out.status, 403)
    t.eq(out.detail, "the token carries no valid tenant_id")
  end
  local out = t.run(billing, req(), t.claims { sub = "u-1", tenant_id = 42 })
  t.eq(out.status, 403, "a number is not a tenant id")
end)

t.case("by host: the host's tenant, when the token belongs to it", function()
  local r = req("acme.tenants.example.com")
  local out = t.run(by_host, r, claims("acme"))
  t.eq(out.action, "proxy")
  t.eq(upstream_of(out), "tenant-a")
  t.eq(r.headers["X-Tenant-Id"], "acme")
  -- a port and upper case in Host do not matter
  out = t.run(by_host, req("GLOBEX.Tenants.Example.com:8443"), claims("globex"))
  t.eq(upstream_of(out), "tenant-b")
  out = t.run(by_host, req("initech.tenants.example.com"), claims("initech"))
  t.eq(out.action, "proxy")
  t.eq(upstream_of(out), "tenant-shared")
end)

t.case("by host: a token of another tenant is refused", function()
  local out = t.run(by_host, req("acme.tenants.example.com"), claims("globex"))
  t.eq(out.action, "deny")
  t.eq(out.status, 403)
  t.eq(out.detail, "the token does not belong to this tenant")
  out = t.run(by_host, req("acme.tenants.example.com"), t.claims { sub = "u-1" })
  t.eq(out.status, 403)
  t.eq(out.detail, "the token carries no valid tenant_id")
end)
