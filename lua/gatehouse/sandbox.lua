-- Run once on every new Lua state, before any route file: loads the
-- gatehouse library while ffi is still reachable, then (unless the operator
-- set lua.unsafe) takes away everything a route file could escape with.
local unsafe, jit_routes = ...
local jit = require "jit"

require "gatehouse"
require "gatehouse.test"

local raw_load = load
local jit_off = jit.off

-- Text chunks only (binary chunks can corrupt memory), compiled or not as
-- route files are.
local function text_load(chunk, name, _, env)
  local f, err = raw_load(chunk, name, "t", env)
  if f and not jit_routes then jit_off(f, true) end
  return f, err
end

if unsafe then return end

load = text_load
loadstring = function(s, name) return text_load(s, name) end
dofile, loadfile = nil, nil
io, debug, jit = nil, nil, nil
local real_os = os
os = {
  time = real_os.time, clock = real_os.clock, date = real_os.date,
  getenv = real_os.getenv, difftime = real_os.difftime,
}
package.loaded.os = os
package.loadlib = nil
package.cpath = ""
-- Keep the preload and Lua-file searchers; drop the native-module ones.
package.loaders = { package.loaders[1], package.loaders[2] }
for name in pairs(package.loaded) do
  if name == "ffi" or name == "io" or name == "debug" or name == "jit" or name:match("^jit%.") then
    package.loaded[name] = nil
  end
end
for name in pairs(package.preload) do
  if name == "ffi" or name:match("^jit") then package.preload[name] = nil end
end
-- The C module takes raw request pointers: only the library may hold it.
package.loaded["gatehouse.core"] = nil
package.preload["gatehouse.core"] = nil
