-- bench/fresh.lua: wrk script for bench/run's "-fresh" JWT scenarios: every
-- request carries a different pre-minted token, so a gateway that caches
-- verified tokens has to check a signature each time.
--
--   wrk ... -s bench/fresh.lua URL -- TOKENS_PREFIX OFFSET
--
-- wrk thread T (0-based, numbered in setup) reads TOKENS_PREFIX.T, one token a
-- line, all lines the same length (bench/jwt_tokens.py writes one file per
-- thread, so threads never share a token). Tokens are streamed: request()
-- reads the next line and wraps it in a pre-formatted request, so init costs
-- nothing (wrk starts thread 0 while it still initialises thread 1; loading
-- 100k tokens there took over a second and inflated req/s) and memory stays
-- at a stdio buffer. The price, measured against a static request: roughly
-- 1-3 us of wrk CPU per request. Thread T starts at token OFFSET (mod the
-- file's token count) and wraps around at the end.
-- done() prints "fresh_tokens used=U of=N wrapped=W": U = most tokens any
-- thread used, N = tokens per thread, W = threads that wrapped around; bench/run
-- advances OFFSET by U so the next run starts on tokens not used recently.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local prefix, offset = args[1], tonumber(args[2] or "0")
  assert(prefix, "usage: -s fresh.lua URL -- TOKENS_PREFIX [OFFSET]")
  local path = prefix .. "." .. id
  -- one template request, split around a placeholder token
  local tmpl = wrk.format("GET", wrk.path, { Authorization = "Bearer \1" })
  head, tail = tmpl:match("^(.-)\1(.*)$")
  f = assert(io.open(path, "rb"))
  local first = assert(f:read("*l"), "no tokens in " .. path)
  reclen = #first + 1
  local size = f:seek("end")
  n = math.floor(size / reclen)
  assert(n * reclen == size, path .. ": tokens are not all the same length")
  f:seek("set", (offset % n) * reclen)
  used, wraps = 0, 0
end

function request()
  local tok = f:read("*l")
  if not tok then
    f:seek("set", 0)
    tok = f:read("*l")
    wraps = wraps + 1
  end
  used = used + 1
  return head .. tok .. tail
end

function done(summary, latency, requests)
  local most, per, wrapped = 0, 0, 0
  for _, t in ipairs(threads) do
    local u = t:get("used")
    if u > most then most = u end
    per = t:get("n")
    if t:get("wraps") > 0 then wrapped = wrapped + 1 end
  end
  io.write(string.format("fresh_tokens used=%d of=%d wrapped=%d\n", most, per, wrapped))
end
