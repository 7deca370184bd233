-- bench/keys.lua: wrk script for bench/run's "-keys" limit scenarios: every
-- request carries "X-Bench-Key: k<N>", N cycling over KEYS distinct values,
-- so a rate limit by = "header:X-Bench-Key" counts on many Redis keys rather
-- than one hot key.
--
--   wrk ... -H "Authorization: Bearer TOKEN" -s bench/keys.lua URL -- KEYS THREADS
--
-- THREADS must be wrk's -t. Thread T (0-based, numbered in setup) owns keys
-- k<lo> .. k<hi-1>, lo = floor(T * KEYS / THREADS), hi = floor((T + 1) * KEYS /
-- THREADS), and sends them in turn: no two threads share a key, and a key
-- comes back only after the thread's KEYS / THREADS other requests, so keys
-- rarely repeat within one gateway batch. The -H headers (wrk.headers) are
-- kept. The requests are formatted once in init (up to PREFORMAT per thread;
-- more are built per request from a head and a tail around the key), so
-- request() is a table index and a counter: as cheap as a script gets. The
-- same script drives the baseline (/nolimit/, which ignores the header), so
-- wrk's scripting cost is charged to both sides alike.

local PREFORMAT = 50000
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local keys, nthreads = tonumber(args[1] or ""), tonumber(args[2] or "")
  assert(keys and nthreads and keys >= nthreads and nthreads >= 1,
         "usage: -s keys.lua URL -- KEYS THREADS (KEYS >= THREADS >= 1)")
  assert(id < nthreads, "keys.lua: THREADS is less than wrk's -t")
  lo = math.floor(id * keys / nthreads)
  n = math.floor((id + 1) * keys / nthreads) - lo
  local hdrs = {}
  for k, v in pairs(wrk.headers) do hdrs[k] = v end
  hdrs["X-Bench-Key"] = "\1"
  head, tail = wrk.format("GET", wrk.path, hdrs):match("^(.-)\1(.*)$")
  reqs = nil
  if n <= PREFORMAT then
    reqs = {}
    for i = 1, n do reqs[i] = head .. "k" .. (lo + i - 1) .. tail end
  end
  i = 0
end

function request()
  i = i + 1
  if i > n then i = 1 end
  if reqs then return reqs[i] end
  return head .. "k" .. (lo + i - 1) .. tail
end
