-- Tests for catalog.lua: `gatehouse test examples/policies/routes`
local t = require "gatehouse.test"
local catalog = t.load("catalog.lua", "catalog")

local function run(sub, roles, headers)
  local req = t.request { method = "GET", path = "/api/catalog/items", headers = headers }
  local out = t.run(catalog, req, t.claims { sub = sub, realm_access = { roles = roles or { "USER" } } })
  t.eq(out.action, "proxy", sub)
  return out, req
end

local function variant(sub, roles)
  local out, req = run(sub, roles)
  local upstream = out.upstream or "catalog"
  t.eq(req.headers["X-Variant"], upstream == "catalog-canary" and "canary" or "stable", sub)
  t.eq(out.ctx.variant, req.headers["X-Variant"], sub)
  return req.headers["X-Variant"]
end

-- Known users on each side (the e2e test uses the same ones).
t.case("the split is by user: these users are on the canary", function()
  for _, sub in ipairs { "user-2", "user-11", "user-32" } do
    t.eq(variant(sub), "canary", sub)
  end
end)

t.case("the split is by user: these users stay on stable", function()
  for _, sub in ipairs { "user-1", "user-3", "user-4" } do
    t.eq(variant(sub), "stable", sub)
  end
end)

t.case("a user stays on the same side on every request", function()
  for i = 1, 50 do
    local sub = "user-" .. i
    local first = variant(sub)
    for _ = 1, 3 do
      t.eq(variant(sub), first, sub)
    end
  end
end)

t.case("about 10% of users get the canary", function()
  local canary = 0
  for i = 1, 2000 do
    if variant("user-" .. i) == "canary" then canary = canary + 1 end
  end
  t.truthy(canary >= 160 and canary <= 240, "canary users out of 2000: " .. canary)
end)

t.case("canary testers always get the canary", function()
  t.eq(variant("user-1", { "USER", "canary-tester" }), "canary")
  t.eq(variant("user-3", { "canary-tester" }), "canary")
end)

t.case("a client cannot pick its variant", function()
  local _, req = run("user-1", nil, { ["X-Variant"] = "canary" })
  t.eq(req.headers["X-Variant"], "stable")
end)

t.case("the response tells the client which variant answered", function()
  local out = run("user-2")
  local res = t.respond(catalog, { status = 200, headers = {} }, t.claims { sub = "user-2" }, out.ctx)
  t.eq(res.headers["X-Variant"], "canary")
  out = run("user-1")
  res = t.respond(catalog, { status = 200, headers = {} }, t.claims { sub = "user-1" }, out.ctx)
  t.eq(res.headers["X-Variant"], "stable")
end)
