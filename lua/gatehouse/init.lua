-- The Gatehouse route API: what `require "gatehouse"` returns to route files.
local M = {}

-- Declares a route. The config loader validates its fields and reports
-- errors as file:line of the offending key.
function M.route(t)
  if type(t) ~= "table" then
    error("gh.route expects a table, got " .. type(t), 2)
  end
  return t
end

return M
