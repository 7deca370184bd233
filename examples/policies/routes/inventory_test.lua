-- Tests for inventory.lua: `gatehouse test examples/policies/routes`
local t = require "gatehouse.test"
local inventory = t.load("inventory.lua", "inventory")

local function run(method, path, scope)
  local claims = t.claims { sub = "u-1", scope = scope }
  return t.run(inventory, t.request { method = method, path = path }, claims)
end

local function missing(out, scope)
  t.eq(out.action, "deny")
  t.eq(out.status, 403)
  t.eq(out.detail, "scope " .. scope .. " required")
  t.eq(out.scope, scope)  -- gh.deny's opts.scope: WWW-Authenticate ... scope="<scope>"
end

t.case("inventory.read may read", function()
  t.eq(run("GET", "/api/inventory/items/7", "openid profile inventory.read").action, "proxy")
  t.eq(run("HEAD", "/api/inventory/items/7", "inventory.read").action, "proxy")
end)

t.case("reading without inventory.read is refused, naming the scope", function()
  missing(run("GET", "/api/inventory/items/7", "openid profile"), "inventory.read")
  missing(run("GET", "/api/inventory/items/7", nil), "inventory.read")  -- no scope claim at all
end)

t.case("scopes are whole words, not substrings", function()
  missing(run("GET", "/api/inventory/items", "inventory.reader"), "inventory.read")
  missing(run("GET", "/api/inventory/items", "xinventory.read"), "inventory.read")
end)

t.case("writes need inventory.write; inventory.read is not enough", function()
  for _, m in ipairs { "POST", "PUT", "PATCH", "DELETE" } do
    missing(run(m, "/api/inventory/items/7", "openid inventory.read"), "inventory.write")
    t.eq(run(m, "/api/inventory/items/7", "openid inventory.read inventory.write").action, "proxy", m)
  end
end)

t.case("the admin subtree needs inventory.admin for every method", function()
  local rw = "inventory.read inventory.write"
  missing(run("GET", "/api/inventory/admin", rw), "inventory.admin")
  missing(run("POST", "/api/inventory/admin/reindex", rw), "inventory.admin")
  t.eq(run("POST", "/api/inventory/admin/reindex", "inventory.admin").action, "proxy")
end)

t.case("a path that merely starts like admin is not the admin subtree", function()
  t.eq(run("GET", "/api/inventory/administrators", "inventory.read").action, "proxy")
end)

t.case("unsupported methods answer 405", function()
  local out = run("OPTIONS", "/api/inventory/items", "inventory.read inventory.write")
  t.eq(out.action, "deny")
  t.eq(out.status, 405)
end)
