-- 2. OAuth scopes.
--
-- Keycloak lists the client scopes granted to a token in one space-separated
-- `scope` claim: "openid profile inventory.read". Spring Security turns each
-- into an authority SCOPE_<scope> (hasAuthority("SCOPE_inventory.read"));
-- here claims:has_scope("inventory.read") asks the same question, and
-- claims:has_authority("SCOPE_inventory.read") is its Spring spelling.
--
--   GET, HEAD                      inventory.read
--   POST, PUT, PATCH, DELETE       inventory.write
--   anything under /api/inventory/admin   inventory.admin (whatever the method)
--
-- A token without the scope gets 403 with, as RFC 6750 section 3.1 asks,
--   WWW-Authenticate: Bearer realm="shop", error="insufficient_scope", scope="inventory.write"
-- so a client knows which scope to request (it could fix this by asking
-- Keycloak for a new token; for a role it could not).
local gh = require "gatehouse"

local by_method = {
  GET = "inventory.read", HEAD = "inventory.read",
  POST = "inventory.write", PUT = "inventory.write", PATCH = "inventory.write",
  DELETE = "inventory.write",
}

-- true when path is prefix itself or below it (not "/api/inventory/administrators")
local function under(path, prefix)
  return path == prefix or path:sub(1, #prefix + 1) == prefix .. "/"
end

return gh.route {
  name     = "inventory",
  match    = { path = "/api/inventory/**" },
  auth     = "keycloak",
  upstream = "inventory",
  policy = function(req, claims)
    local scope = by_method[req.method]
    if scope == nil then
      return gh.deny(405, req.method .. " is not supported on inventory")
    end
    if under(req.path, "/api/inventory/admin") then
      scope = "inventory.admin"
    end
    if not claims:has_scope(scope) then
      return gh.deny(403, "scope " .. scope .. " required", { scope = scope })
    end
  end,
}
