-- The Gatehouse route API: what `require "gatehouse"` returns to route files.
local M = {}

-- Marks a table as a route and remembers the line that declared it, so the
-- config loader can point its errors at file:line.
function M.route(t)
  if type(t) ~= "table" then
    error("gh.route expects a table, got " .. type(t), 2)
  end
  local info = debug.getinfo(2, "l")
  return setmetatable(t, { __gatehouse_line = info and info.currentline or 0 })
end

return M
