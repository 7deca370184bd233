"""Rate limits end to end (issue 5): the route shorthand `rate_limit`, gh.limit
from a policy, local limits (exact across the workers of one instance) and
global limits shared by two instances through a real redis-server, and what
happens while that Redis is killed, restarted, paused or has lost its scripts.

The algorithm is GCRA: `rate` per `per` seconds, `burst` requests at once.
Most cases use windows so long (12 s or more between refills) that a quick
sequential burst is exact: the first `burst` requests pass and the next are
answered 429 by the gateway. Each case states what reached the recording
upstream -- every 429 and 503 here must have left it untouched.

429 answers are RFC 9457 problem+json with `Retry-After` (integer >= 1),
`RateLimit-Policy: "<name>";q=<burst>;w=<per>` and
`RateLimit: "<name>";r=<remaining>;t=<seconds>` (draft-ietf-httpapi-
ratelimit-headers syntax); `t` equals the retry delay on a 429.

Every gateway and redis-server here listens on 127.0.0.1; every burst is
bounded in count and every wait in time.
"""

import collections
import math
import re
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from conftest import GATEHOUSE_BIN, Lua, assert_problem, wait_until
from rawhttp import RawConn

ISS = "https://sso.example.com/realms/shop"
AUD = "orders-api"
REALM = "shop"
SECRET = "ratelimit-tests-hmac-secret-0123456789-abcdefghijklmnopqrstuvw"  # 64 bytes
ISSUERS = {"hs": {"issuer": ISS, "audience": AUD, "secret": SECRET, "realm": REALM}}
ROUTE_FILE = "50-limit.lua"


def token(sub="alice", **kw):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300,
         "jti": f"rl-{secrets.token_hex(6)}"}
    c.update(kw)
    return jwt.encode(c, SECRET, algorithm="HS256")


def send(gw, target, headers=(), tok=None, timeout=10.0):
    """One GET on a fresh connection: (response, seconds it took)."""
    hs = list(headers)
    if tok is not None:
        hs.append(("Authorization", f"Bearer {tok}"))
    t0 = time.monotonic()
    with RawConn("127.0.0.1", gw.port, timeout) as c:
        c.request("GET", target, headers=hs)
        resp = c.read_response()
    return resp, time.monotonic() - t0


def statuses(gw, target, n, headers=(), tok=None, within=None):
    """n sequential requests; their statuses. within: each must take less."""
    out = []
    for _ in range(n):
        resp, took = send(gw, target, headers, tok)
        if within is not None:
            assert took < within, f"request took {took:.2f}s (> {within}s): {resp!r}"
        out.append(resp.status)
    return out


_ITEM = re.compile(r'^"([^"\\]*)"((?:;[a-z]+=-?\d+)+)$')


def sf_item(value):
    """A RateLimit / RateLimit-Policy field: '"name";k=1;k2=2' -> (name, {k: int})."""
    assert value is not None, "header missing"
    m = _ITEM.match(value.strip())
    assert m, f"not a structured-field item with integer parameters: {value!r}"
    params = {}
    for p in m.group(2)[1:].split(";"):
        k, _, v = p.partition("=")
        assert k not in params, f"repeated parameter in {value!r}"
        params[k] = int(v)
    return m.group(1), params


def assert_limited(resp, name, q, w, max_retry):
    """resp is the gateway's 429 for policy name (quota q per w seconds);
    returns its Retry-After."""
    assert_problem(resp, 429)
    ra = resp.header("Retry-After")
    assert ra is not None and ra.isdigit(), f"Retry-After {ra!r}"
    ra = int(ra)
    assert 1 <= ra <= max_retry, f"Retry-After {ra}, expected 1..{max_retry}"
    assert sf_item(resp.header("RateLimit-Policy")) == (name, {"q": q, "w": w}), resp.headers
    rname, rl = sf_item(resp.header("RateLimit"))
    assert rname == name and rl == {"r": 0, "t": ra}, f"RateLimit {resp.header('RateLimit')!r}, Retry-After {ra}"
    return ra


def upstream_count(up, n):
    """The upstream received exactly n complete requests (and started no other)."""
    if n:
        up.wait_for(n)
    time.sleep(0.05)  # a stray forward, were there one, would have started by now
    assert len(up.requests) == n and len(up.started) == n, \
        f"upstream got {len(up.requests)} requests ({len(up.started)} started), wanted {n}"
    return list(up.requests)


def limited_route(path, name, **rl):
    return {"name": name, "match": {"path": path}, "upstream": "up", "rate_limit": {"name": name, **rl}}


def redis_cfg(srv, **kw):
    return {"url": srv.url, "timeout_ms": 100, "prefix": "ghtest:", **kw}


# ---------------------------------------------------------------------------
# The route shorthand, local (no redis configured)


def test_ip_limit_allows_burst_then_429(proxy, upstream):
    gw = proxy(routes=[limited_route("/rl/**", "per-ip", by="ip", rate=5, per=60, burst=5, scope="local")])
    resps = [send(gw, f"/rl/{i}")[0] for i in range(8)]
    assert [r.status for r in resps] == [200] * 5 + [429] * 3, resps
    for r in resps[:5]:
        assert r.header("X-Upstream") == "recording"
        # headers = false (the default): allowed answers carry no RateLimit fields
        assert r.header("RateLimit") is None and r.header("RateLimit-Policy") is None, r.headers
    for r in resps[5:]:
        assert_limited(r, "per-ip", 5, 60, max_retry=12)  # one emission interval: 60/5 s
    reqs = upstream_count(upstream, 5)
    assert [q.path for q in reqs] == [f"/rl/{i}" for i in range(5)]


def test_headers_true_counts_down_on_allowed_answers(proxy, upstream):
    gw = proxy(routes=[limited_route("/rl/**", "hdr", by="ip", rate=5, per=60, burst=5, scope="local",
                                     headers=True)])
    resps = [send(gw, "/rl/x")[0] for _ in range(6)]
    assert [r.status for r in resps] == [200] * 5 + [429], resps
    for used, r in enumerate(resps[:5], start=1):
        assert sf_item(r.header("RateLimit-Policy")) == ("hdr", {"q": 5, "w": 60}), r.headers
        name, rl = sf_item(r.header("RateLimit"))
        assert name == "hdr" and rl["r"] == 5 - used, r.headers
        # the full quota is back after `used` emission intervals of 12 s
        assert used * 12 - 2 <= rl["t"] <= used * 12, (used, r.headers)
    assert_limited(resps[5], "hdr", 5, 60, max_retry=12)
    upstream_count(upstream, 5)


def test_default_scope_without_redis_is_local(proxy, upstream):
    # scope defaults to global; with no redis configured it is kept locally
    gw = proxy(routes=[limited_route("/rl/**", "dflt", by="ip", rate=3, per=60)])  # burst defaults to rate
    assert statuses(gw, "/rl/a", 5) == [200] * 3 + [429] * 2
    upstream_count(upstream, 3)


def test_sub_limits_are_per_subject(proxy, upstream):
    gw = proxy(routes=[{**limited_route("/api/**", "per-user", by="sub", rate=2, per=60, burst=2),
                        "auth": "hs"}], issuers=ISSUERS)
    alice, bob = token("alice"), token("bob")
    assert statuses(gw, "/api/a", 3, tok=alice) == [200, 200, 429]
    assert statuses(gw, "/api/b", 2, tok=bob) == [200, 200]
    # a fresh token of alice's still counts against alice
    resp, _ = send(gw, "/api/a", tok=token("alice"))
    assert_limited(resp, "per-user", 2, 60, max_retry=30)
    resp, _ = send(gw, "/api/b", tok=bob)
    assert_limited(resp, "per-user", 2, 60, max_retry=30)
    reqs = upstream_count(upstream, 4)
    subs = collections.Counter(
        jwt.decode(q.header("Authorization").split()[1], options={"verify_signature": False})["sub"]
        for q in reqs)
    assert subs == {"alice": 2, "bob": 2}, subs


def test_sub_limit_runs_after_auth(proxy, upstream):
    # no token: the 401 of the auth phase, not a limiter decision; nothing counted
    gw = proxy(routes=[{**limited_route("/api/**", "per-user", by="sub", rate=1, per=60, burst=1),
                        "auth": "hs"}], issuers=ISSUERS)
    for _ in range(3):
        resp, _ = send(gw, "/api/a")
        assert_problem(resp, 401)
    assert statuses(gw, "/api/a", 2, tok=token("carol")) == [200, 429]
    upstream_count(upstream, 1)


def test_header_limits_are_per_key_and_fall_back_to_ip(proxy, upstream):
    gw = proxy(routes=[limited_route("/k/**", "per-key", by="header:X-Api-Key", rate=2, per=60, burst=2,
                                     scope="local")])
    assert statuses(gw, "/k", 3, headers=[("X-Api-Key", "key-a")]) == [200, 200, 429]
    assert statuses(gw, "/k", 2, headers=[("X-Api-Key", "key-b")]) == [200, 200]
    # without the header the request is limited under its client IP
    assert statuses(gw, "/k", 3) == [200, 200, 429]
    resp, _ = send(gw, "/k", headers=[("X-Api-Key", "key-a")])
    assert_limited(resp, "per-key", 2, 60, max_retry=30)
    reqs = upstream_count(upstream, 6)
    keys = collections.Counter(q.header("X-Api-Key") for q in reqs)
    assert keys == {"key-a": 2, "key-b": 2, None: 2}, keys


@pytest.mark.parametrize("rl", [
    {"by": "sub", "rate": 5, "per": 60},          # sub needs auth on the route
    {"by": "claim:azp", "rate": 5, "per": 60},    # so does a claim
    {"by": "cookie", "rate": 5, "per": 60},       # not a key source
    {"by": "ip", "rate": 0, "per": 60},           # no rate
    {"by": "ip", "rate": 5, "per": 0},            # no window
    {"by": "ip", "rate": 5, "per": 60, "scope": "everywhere"},
    {"by": "ip", "rate": 5, "per": 60, "on_error": "maybe"},
], ids=["sub-without-auth", "claim-without-auth", "unknown-by", "rate0", "per0", "scope", "on_error"])
def test_bad_shorthand_is_a_load_error(gateway, upstream, rl):
    r = {"name": "bad", "match": {"path": "/x"}, "upstream": "up", "rate_limit": rl}
    gw = gateway(upstreams={"up": {"targets": [upstream.addr]}}, routes=[r], issuers=ISSUERS, start=False)
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", gw.config_path], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 1, f"-t exit {p.returncode} for {rl}:\n{out}"
    assert "50-test.lua:" in out, f"the error does not name the route file:line:\n{out}"


def test_local_limit_is_exact_across_workers(proxy, upstream):
    # 48 requests on 48 connections from 16 threads at once; two workers, each
    # with its own SO_REUSEPORT socket, share one bucket of 10 (600 s window:
    # nothing refills during the burst)
    gw = proxy(routes=[limited_route("/w/**", "workers", by="ip", rate=10, per=600, burst=10, scope="local")],
               workers=2, access_log="off")
    n, threads = 48, 16
    gate = threading.Barrier(threads, timeout=10)

    def one(i):
        if i < threads:
            gate.wait()
        return send(gw, f"/w/{i}")[0].status

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        got = list(ex.map(one, range(n), timeout=60))
    assert time.monotonic() - t0 < 30
    c = collections.Counter(got)
    assert c == {200: 10, 429: 38}, c
    upstream_count(upstream, 10)


# ---------------------------------------------------------------------------
# gh.limit from a policy

LIMIT_ROUTES = r'''local gh = require "gatehouse"

local function json(t)
  local keys, out = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    local s
    if type(v) == "string" then s = string.format("%q", v)
    elseif type(v) == "number" then s = string.format("%.14g", v)
    else s = tostring(v) end
    out[#out + 1] = string.format("%q", k) .. ":" .. s
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local OPTS = { rate = 3, per = 60, burst = 3, scope = "local", name = "lua-pol" }

return {
  gh.route {
    name = "lua-info", match = { path = "/lua/info" }, upstream = "up",
    policy = function(req)
      local ok, info = gh.limit("info:" .. req.query.key, OPTS)
      return gh.respond(200, json({
        ok = ok, limit = info.limit, remaining = info.remaining, reset = info.reset,
        retry_after = info.retry_after, policy = info.policy, has_error = info.error ~= nil,
      }), { ["Content-Type"] = "application/json" })
    end,
  },
  gh.route {
    name = "lua-gate", match = { path = "/lua/gate" }, upstream = "up",
    policy = function(req)
      local ok, info = gh.limit("gate:" .. req.query.key, OPTS)
      if not ok then return gh.too_many(info) end
      req.headers["X-Remaining"] = tostring(info.remaining)
    end,
  },
  gh.route {
    name = "lua-headers", match = { path = "/lua/headers" }, upstream = "up",
    policy = function(req)
      local ok, info = gh.limit("headers", { rate = 2, per = 10, scope = "local", name = "lh", headers = true })
      if not ok then return gh.too_many(info) end
    end,
  },
  gh.route {
    name = "lua-bad", match = { path = "/lua/bad/*" }, upstream = "up",
    policy = function(req)
      local what = req.path:match("[^/]+$")
      if what == "rate0" then
        local ok = gh.limit("k", { rate = 0, per = 60 }) --@rate0
      elseif what == "nokey" then
        local ok = gh.limit(nil, { rate = 1, per = 60 }) --@nokey
      elseif what == "scope" then
        local ok = gh.limit("k", { rate = 1, per = 60, scope = "everywhere" }) --@scope
      elseif what == "noopts" then
        local ok = gh.limit("k") --@noopts
      end
    end,
  },
}
'''


def line_of(text, marker):
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if marker in ln]
    assert len(hits) == 1, f"marker {marker!r} on lines {hits}"
    return hits[0]


@pytest.fixture
def lua_gw(proxy):
    return proxy(route_files={ROUTE_FILE: LIMIT_ROUTES})


def test_lua_limit_info_fields(lua_gw, upstream):
    docs = [send(lua_gw, "/lua/info?key=a")[0] for _ in range(4)]
    assert all(r.status == 200 for r in docs), docs
    docs = [r.json() for r in docs]
    for used, d in enumerate(docs[:3], start=1):
        assert d["ok"] is True and d["limit"] == 3 and d["remaining"] == 3 - used, d
        assert d["retry_after"] == 0 and d["policy"] == "lua-pol" and d["has_error"] is False, d
        assert used * 20 - 1 <= d["reset"] <= used * 20, d   # 20 s per request given back
    d = docs[3]
    assert d["ok"] is False and d["limit"] == 3 and d["remaining"] == 0, d
    assert 19 <= d["retry_after"] <= 20 and d["policy"] == "lua-pol" and d["has_error"] is False, d
    assert d["reset"] >= d["retry_after"], d
    # another key has its own bucket
    assert send(lua_gw, "/lua/info?key=b")[0].json()["remaining"] == 2
    upstream_count(upstream, 0)


def test_lua_too_many_with_info(lua_gw, upstream):
    resps = [send(lua_gw, "/lua/gate?key=g")[0] for _ in range(5)]
    assert [r.status for r in resps] == [200, 200, 200, 429, 429], resps
    for r in resps[3:]:
        assert_limited(r, "lua-pol", 3, 60, max_retry=20)
    reqs = upstream_count(upstream, 3)
    assert [q.header("X-Remaining") for q in reqs] == ["2", "1", "0"]


def test_lua_limit_headers_on_allowed(lua_gw, upstream):
    resps = [send(lua_gw, "/lua/headers")[0] for _ in range(3)]
    assert [r.status for r in resps] == [200, 200, 429], resps
    assert [sf_item(r.header("RateLimit"))[1]["r"] for r in resps[:2]] == [1, 0]
    assert sf_item(resps[0].header("RateLimit-Policy")) == ("lh", {"q": 2, "w": 10})
    assert_limited(resps[2], "lh", 2, 10, max_retry=5)
    upstream_count(upstream, 2)


@pytest.mark.parametrize("what", ["rate0", "nokey", "scope", "noopts"])
def test_lua_limit_bad_argument_is_500_naming_the_line(lua_gw, upstream, what):
    resp, _ = send(lua_gw, f"/lua/bad/{what}")
    assert_problem(resp, 500)
    upstream_count(upstream, 0)
    where = f"{ROUTE_FILE}:{line_of(LIMIT_ROUTES, '--@' + what)}"
    wait_until(lambda: any(where in ln and not ln.startswith("{") for ln in lua_gw.stderr().splitlines()),
               5.0, lambda: f"a log line naming {where} in:\n{lua_gw.stderr()[-3000:]}")
    # the worker survives
    assert send(lua_gw, "/lua/gate?key=after")[0].status == 200


# ---------------------------------------------------------------------------
# Global limits through Redis


def test_two_instances_share_one_global_limit(gateway, upstream, redis_server):
    routes = [limited_route("/g/**", "shared", by="ip", rate=20, per=60, burst=20, scope="global",
                            on_error="deny")]
    ups = {"up": {"targets": [upstream.addr]}}
    a = gateway(upstreams=ups, routes=routes, redis=redis_cfg(redis_server))
    b = gateway(upstreams=ups, routes=routes, redis=redis_cfg(redis_server))
    allowed = collections.Counter()
    codes = collections.Counter()
    t0 = time.monotonic()
    for i in range(60):
        gw = (a, b)[i % 2]
        st = send(gw, f"/g/{i}")[0].status
        codes[st] += 1
        if st == 200:
            allowed[gw.port] += 1
    elapsed = time.monotonic() - t0
    assert set(codes) <= {200, 429}, codes   # no 503: Redis answered every decision
    total = codes[200]
    # GCRA, T = 3 s: exactly the burst, plus one per 3 s the burst took
    assert 20 <= total <= 20 + math.floor(elapsed / 3), (codes, elapsed)
    assert allowed[a.port] >= 5 and allowed[b.port] >= 5, allowed  # both instances took part
    upstream_count(upstream, total)
    keys = redis_server.client().keys("*")
    assert keys and all(k.startswith("ghtest:") for k in keys), keys


def test_new_instance_finds_the_shared_bucket(gateway, upstream, redis_server):
    # the bucket lives in Redis: an instance started after it was emptied
    # refuses at once
    routes = [limited_route("/g/**", "shared", by="ip", rate=20, per=600, burst=4, scope="global",
                            on_error="deny")]
    ups = {"up": {"targets": [upstream.addr]}}
    a = gateway(upstreams=ups, routes=routes, redis=redis_cfg(redis_server))
    assert statuses(a, "/g/1", 6) == [200] * 4 + [429] * 2
    b = gateway(upstreams=ups, routes=routes, redis=redis_cfg(redis_server))
    resp, _ = send(b, "/g/2")  # a new instance finds the bucket already empty
    assert_limited(resp, "shared", 4, 600, max_retry=30)
    upstream_count(upstream, 4)


FAIL_ROUTES = [
    limited_route("/open/**", "open", by="header:X-Api-Key", rate=5, per=60, burst=5, scope="global",
                  on_error="allow"),
    limited_route("/closed/**", "closed", by="header:X-Api-Key", rate=5, per=60, burst=5, scope="global",
                  on_error="deny"),
    {"name": "lua-open", "match": {"path": "/lua-open"}, "upstream": "up", "policy": Lua(
        'function(req)\n'
        '    local ok, info = gh.limit("lua-open:" .. req.headers["X-Api-Key"],\n'
        '                              { rate = 5, per = 60, on_error = "allow", name = "lua-open" })\n'
        '    if not ok then return gh.too_many(info) end\n'
        '    req.headers["X-Limit-Error"] = info.error and "yes" or "no"\n'
        '  end')},
    {"name": "lua-closed", "match": {"path": "/lua-closed"}, "upstream": "up", "policy": Lua(
        'function(req)\n'
        '    local ok, info = gh.limit("lua-closed:" .. req.headers["X-Api-Key"],\n'
        '                              { rate = 5, per = 60, on_error = "deny", name = "lua-closed" })\n'
        '    req.headers["X-Policy-Went-On"] = "yes"\n'
        '    if not ok then return gh.too_many(info) end\n'
        '  end')},
]


def key(k):
    return [("X-Api-Key", f"{k}-{secrets.token_hex(3)}")]


def burst_then_429(gw, path, name, within=None):
    """A fresh key gets exactly 5 then 429 (the limits above: 5 per 60 s)."""
    k = key("burst")
    got = statuses(gw, path, 5, headers=k, within=within)
    assert got == [200] * 5, got
    resp, _ = send(gw, path, headers=k)
    assert_limited(resp, name, 5, 60, max_retry=12)


def reconnected(gw, within=10.0):
    """Waits (bounded) until a fail-closed limit is decided by Redis again."""
    wait_until(lambda: send(gw, "/closed/probe", headers=key("probe"))[0].status == 200, within,
               lambda: f"the gateway deciding through Redis again:\n{gw.stderr()[-3000:]}", interval=0.1)


def test_redis_killed_then_restarted(proxy, upstream, redis_server):
    gw = proxy(routes=FAIL_ROUTES, redis=redis_cfg(redis_server))
    burst_then_429(gw, "/open/x", "open")
    burst_then_429(gw, "/closed/x", "closed")
    resp, _ = send(gw, "/lua-open", headers=key("lua"))
    assert resp.status == 200
    q = upstream_count(upstream, 11)[-1]
    assert q.path == "/lua-open" and q.header("X-Limit-Error") == "no"
    upstream.clear()

    redis_server.kill()
    # fail open: everything passes, more than the burst, and fast
    assert statuses(gw, "/open/x", 8, headers=key("down"), within=2.0) == [200] * 8
    # the Lua caller is told why
    resp, took = send(gw, "/lua-open", headers=key("lua"))
    assert resp.status == 200 and took < 2.0
    assert upstream_count(upstream, 9)[-1].header("X-Limit-Error") == "yes"
    upstream.clear()
    # fail closed: 503 at once, nothing upstream, the policy does not go on
    for path in ("/closed/x", "/closed/y", "/lua-closed"):
        resp, took = send(gw, path, headers=key("down"))
        assert took < 2.0, took
        assert_problem(resp, 503)
    upstream_count(upstream, 0)

    redis_server.start()  # same port, empty
    reconnected(gw)
    upstream.clear()
    burst_then_429(gw, "/closed/x", "closed")
    burst_then_429(gw, "/open/x", "open")   # limits apply again, not a fail-open pass
    upstream_count(upstream, 10)


def test_paused_redis_fails_after_timeout(proxy, upstream, redis_server):
    gw = proxy(routes=FAIL_ROUTES, redis=redis_cfg(redis_server, timeout_ms=100))
    burst_then_429(gw, "/closed/x", "closed")
    upstream.clear()
    redis_server.pause()
    try:
        assert statuses(gw, "/open/x", 4, headers=key("paused"), within=1.0) == [200] * 4
        for _ in range(3):
            resp, took = send(gw, "/closed/x", headers=key("paused"))
            assert took < 1.0, f"a request waited {took:.2f}s on a paused Redis (timeout_ms = 100)"
            assert_problem(resp, 503)
        upstream_count(upstream, 4)
    finally:
        redis_server.resume()
    reconnected(gw)
    burst_then_429(gw, "/closed/x", "closed")


def test_noscript_after_script_flush(proxy, upstream, redis_server):
    gw = proxy(routes=FAIL_ROUTES, redis=redis_cfg(redis_server))
    k = key("flush")
    assert statuses(gw, "/closed/x", 2, headers=k) == [200, 200]
    r = redis_server.client()
    assert r.script_flush() is True
    assert r.info("memory")["number_of_cached_scripts"] == 0
    # the bucket lives in keys, not in the script: 3 more, then 429
    assert statuses(gw, "/closed/x", 3, headers=k) == [200] * 3
    resp, _ = send(gw, "/closed/x", headers=k)
    assert_limited(resp, "closed", 5, 60, max_retry=12)
    assert r.info("memory")["number_of_cached_scripts"] >= 1  # reloaded
    r.script_flush()
    burst_then_429(gw, "/closed/x", "closed")
    upstream_count(upstream, 10)
