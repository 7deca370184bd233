"""The admin listener and the process signals end to end: GET /health,
/ready, /metrics (Prometheus text, parsed here), /routes, the admin token,
SIGTERM (drain), SIGQUIT (at once), SIGUSR1 (reopen the access log).

Metrics are checked against the requests the test sent: counts by route,
method and code class, histogram counts, JWT outcomes by reason. Every
gateway listens on 127.0.0.1; every wait is bounded.
"""

import json
import os
import re
import secrets
import signal
import socket
import time

import jwt
import pytest

from conftest import StderrPipe, assert_problem, free_port, wait_until
from rawhttp import Closed, RawConn

ISS = "https://sso.example.com/realms/shop"
AUD = "orders-api"
SECRET = "admin-tests-hmac-secret-0123456789-abcdefghijklmnopqrstuvwxyz!!"  # 64 bytes
ISSUERS = {"hs": {"issuer": ISS, "audience": AUD, "secret": SECRET, "realm": "shop"}}
TOKEN = "admin-token-" + "0123456789abcdef"
TIMEOUT = 10.0


def token(secret=SECRET, **kw):
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "jti": secrets.token_hex(8)}
    c.update(kw)
    return jwt.encode(c, secret, algorithm="HS256")


# ---------------------------------------------------------------------------
# Prometheus text (name{labels} value)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prom(text):
    """{(name, frozenset(labels)): value}; fails on a line that is neither
    HELP/TYPE nor a sample, on a repeated series, on a bad TYPE."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            assert len(parts) >= 3 and parts[1] in ("HELP", "TYPE"), f"bad comment line {line!r}"
            if parts[1] == "TYPE":
                assert parts[3] in _TYPES, line
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable metrics line {line!r}"
        name, raw, value = m.groups()
        labels, rest = {}, raw or ""
        while rest.strip():
            lm = _LABEL.match(rest)
            assert lm, f"unparseable labels in {line!r}"
            labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
            rest = rest[lm.end():]
        key = (name, frozenset(labels.items()))
        assert key not in out, f"series repeated: {line!r}"
        out[key] = float(value)
    return out


def metric(m, name, **labels):
    """Sum of the series of name whose labels include these (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


def series(m, name):
    return [(dict(ls), v) for (n, ls), v in m.items() if n == name]


# ---------------------------------------------------------------------------
# A gateway with an admin listener


class Admin:
    def __init__(self, gw, port, tok=None):
        self.gw = gw
        self.port = port
        self.token = tok

    def call(self, method, path, auth="default", body=b""):
        """One admin request; auth: "default" (the token, if any), None
        (no Authorization), or a whole Authorization value."""
        hs = []
        if auth == "default":
            auth = f"Bearer {self.token}" if self.token else None
        if auth is not None:
            hs.append(("Authorization", auth))
        if method == "POST":
            hs.append(("Content-Length", str(len(body))))
        with RawConn("127.0.0.1", self.port, TIMEOUT) as c:
            c.request(method, path, headers=hs, body=body, host=f"127.0.0.1:{self.port}")
            return c.read_response(method)

    def json(self, path, status=200):
        r = self.call("GET", path)
        assert r.status == status, f"GET {path}: {r!r}"
        ctype = (r.header("Content-Type") or "").split(";")[0].strip()
        assert ctype == "application/json", r.headers
        return r.json()

    def metrics(self):
        r = self.call("GET", "/metrics")
        assert r.status == 200, r
        ctype = [p.strip() for p in (r.header("Content-Type") or "").split(";")]
        assert ctype[0] == "text/plain" and "version=0.0.4" in ctype, r.headers
        return parse_prom(r.text)


def _ready(adm):
    try:
        return adm.call("GET", "/ready").status == 200
    except OSError:
        return False


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def admin_gw(gateway, upstream):
    """admin_gw(routes=..., admin_token=None|str, token_file=False,
    wait_ready=True, **top-level keys) -> Admin."""

    def make(routes=None, admin_token=None, token_file=False, wait_ready=True, route_files=None,
             upstreams=None, **extra):
        port = free_port()
        if admin_token and token_file:
            admin = {"listen": f"127.0.0.1:{port}", "token_file": "admin.token"}
        elif admin_token:
            admin = {"listen": f"127.0.0.1:{port}", "token": admin_token}
        else:
            admin = f"127.0.0.1:{port}"
        if routes is None and route_files is None:
            routes = [{"name": "all", "match": {"path": "/**"}, "upstream": "up"}]
        gw = gateway(upstreams=upstreams or {"up": {"targets": [upstream.addr]}}, routes=routes,
                     route_files=route_files, admin=admin, start=False, **extra)
        if token_file:
            with open(os.path.join(gw.dir, "admin.token"), "w") as f:
                f.write(admin_token + "\n")
        gw.start()
        adm = Admin(gw, port, admin_token)
        if wait_ready:
            wait_until(lambda: _ready(adm), 10.0, lambda: f"GET /ready 200:\n{gw.stderr()[-2000:]}")
        else:
            wait_until(lambda: _accepts(port), 5.0, f"the admin listener on {port}")
        return adm

    return make


def send(gw, method, path, headers=(), body=b""):
    with RawConn("127.0.0.1", gw.port, TIMEOUT) as c:
        c.request(method, path, headers=headers, body=body)
        return c.read_response(method)


# ---------------------------------------------------------------------------
# /health, /ready, unknown paths


def test_health(admin_gw):
    adm = admin_gw()
    assert adm.json("/health") == {"status": "ok"}
    assert adm.call("HEAD", "/health").status == 200


def test_ready_reports_generation_and_hash(admin_gw):
    adm = admin_gw()
    doc = adm.json("/ready")
    assert doc["ready"] is True, doc
    assert doc["generation"] == 1, doc
    assert isinstance(doc["hash"], str) and re.fullmatch(r"[0-9a-f]{8,}", doc["hash"]), doc
    assert "reason" not in doc or not doc["reason"], doc
    routes = adm.json("/routes")
    assert (routes["generation"], routes["hash"]) == (1, doc["hash"])
    m = adm.metrics()
    assert metric(m, "gatehouse_ready") == 1
    assert metric(m, "gatehouse_config_generation") == 1
    assert metric(m, "gatehouse_config_info", hash=doc["hash"]) == 1, series(m, "gatehouse_config_info")
    assert len(series(m, "gatehouse_config_info")) == 1
    assert metric(m, "gatehouse_config_reloads_total") == 0
    ts = metric(m, "gatehouse_config_last_reload_success_timestamp_seconds")
    assert abs(ts - time.time()) < 60, ts  # the startup load counts


def test_ready_is_503_while_an_issuer_has_no_keys(admin_gw):
    dead = free_port()  # nothing listens: the key set can never be fetched
    issuers = {"remote": {"issuer": ISS, "jwks_url": f"http://127.0.0.1:{dead}/jwks"}}
    routes = [{"name": "api", "match": {"path": "/api/**"}, "upstream": "up", "auth": "remote"}]
    adm = admin_gw(routes=routes, issuers=issuers, wait_ready=False)
    r = adm.call("GET", "/ready")
    assert r.status == 503, r
    doc = r.json()
    assert doc["ready"] is False, doc
    assert isinstance(doc.get("reason"), str) and "remote" in doc["reason"], doc
    assert adm.json("/health") == {"status": "ok"}
    assert metric(adm.metrics(), "gatehouse_ready") == 0


def test_unknown_admin_path_is_404(admin_gw):
    adm = admin_gw()
    for path in ("/nope", "/health/x", "/metricsx", "/"):
        assert_problem(adm.call("GET", path), 404)


# ---------------------------------------------------------------------------
# /metrics


ROUTES = [
    {"name": "pub", "match": {"path": "/pub/**"}, "upstream": "up", "strip": "/pub"},
    {"name": "api", "match": {"path": "/api/**"}, "upstream": "up", "auth": "hs"},
    {"name": "lim", "match": {"path": "/lim/**"}, "upstream": "up", "strip": "/lim",
     "rate_limit": {"rate": 1, "per": 60, "burst": 2}},
]


def test_metrics_count_what_was_sent(admin_gw):
    adm = admin_gw(routes=ROUTES, issuers=ISSUERS, workers=2)
    gw = adm.gw
    sent = []  # (route, method, code class)

    def go(method, path, route, status, headers=(), body=b""):
        r = send(gw, method, path, headers, body)
        assert r.status == status, f"{method} {path}: {r!r}"
        sent.append((route, method, f"{status // 100}xx"))

    for _ in range(3):
        go("GET", "/pub/echo", "pub", 200)
    for _ in range(2):
        go("POST", "/pub/status/201", "pub", 201, body=b"abc")
    go("GET", "/pub/status/503", "pub", 503)
    go("GET", "/nope", None, 404)
    go("GET", "/api/echo", "api", 401)  # no token
    go("GET", "/api/echo", "api", 200, [("Authorization", f"Bearer {token()}")])
    go("GET", "/api/echo", "api", 200, [("Authorization", f"Bearer {token()}")])
    go("GET", "/api/echo", "api", 401, [("Authorization", f"Bearer {token(secret=SECRET[::-1])}")])
    go("GET", "/api/echo", "api", 401,
       [("Authorization", f"Bearer {token(iat=int(time.time()) - 900, exp=int(time.time()) - 600)}")])
    for status in (200, 200, 429):
        go("GET", "/lim/echo", "lim", status)

    wait_until(lambda: metric(adm.metrics(), "gatehouse_http_requests_total") >= len(sent), 5.0,
               lambda: f"{len(sent)} requests counted: {series(adm.metrics(), 'gatehouse_http_requests_total')}")
    m = adm.metrics()
    reqs = series(m, "gatehouse_http_requests_total")
    assert metric(m, "gatehouse_http_requests_total") == len(sent), reqs
    expect = {}
    for key in sent:
        expect[key] = expect.get(key, 0) + 1
    for (route, method, code), n in expect.items():
        if route is None:  # no route matched: whatever the label, not one of ours
            got = sum(v for ls, v in reqs if ls.get("route") not in ("pub", "api", "lim")
                      and ls.get("method") == method and ls.get("code") == code)
        else:
            got = metric(m, "gatehouse_http_requests_total", route=route, method=method, code=code)
        assert got == n, f"{route} {method} {code}: {got} != {n}: {reqs}"

    # histograms: one observation per request, buckets cumulative
    for route in ("pub", "api", "lim"):
        n = sum(1 for r, _, _ in sent if r == route)
        assert metric(m, "gatehouse_request_duration_seconds_count", route=route) == n, route
        buckets = sorted(((float(ls["le"]), v) for ls, v in series(m, "gatehouse_request_duration_seconds_bucket")
                          if ls.get("route") == route), key=lambda b: b[0])
        assert buckets and buckets[-1][0] == float("inf") and buckets[-1][1] == n, buckets
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
        total = metric(m, "gatehouse_request_duration_seconds_sum", route=route)
        assert 0 < total < 10 * n, total
    proxied = 6 + 2 + 2  # pub, api with a good token, lim allowed
    assert metric(m, "gatehouse_upstream_duration_seconds_count") == proxied, \
        series(m, "gatehouse_upstream_duration_seconds_count")

    # JWT outcomes for issuer hs
    jwt_series = series(m, "gatehouse_jwt_validations_total")
    assert metric(m, "gatehouse_jwt_validations_total", issuer="hs", result="ok") >= 1, jwt_series
    assert metric(m, "gatehouse_jwt_validations_total", issuer="hs", result="ok") + \
        metric(m, "gatehouse_jwt_validations_total", issuer="hs", result="cached") == 2, jwt_series
    assert metric(m, "gatehouse_jwt_validations_total", issuer="hs", result="bad_signature") == 1, jwt_series
    assert metric(m, "gatehouse_jwt_validations_total", issuer="hs", result="expired") == 1, jwt_series
    assert metric(m, "gatehouse_jwt_validations_total", issuer="hs") == 5, jwt_series  # with the missing one

    # the rate limit's decisions
    lim = series(m, "gatehouse_rate_limit_decisions_total")
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="local", decision="allowed") == 2, lim
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="local", decision="denied") == 1, lim

    # pooled upstream connections, by state
    pool = series(m, "gatehouse_upstream_connections")
    assert metric(m, "gatehouse_upstream_connections", upstream="up", state="idle") >= 1, pool
    assert metric(m, "gatehouse_upstream_connections", upstream="up", state="busy") == 0, pool


def test_metrics_connections_open(admin_gw):
    adm = admin_gw(workers=2)
    wait_until(lambda: metric(adm.metrics(), "gatehouse_connections_open") == 0, 5.0, "no connection open")
    conns = [RawConn("127.0.0.1", adm.gw.port, TIMEOUT) for _ in range(3)]
    try:
        for c in conns:
            c.request("GET", "/echo")
            assert c.read_response().status == 200
        assert metric(adm.metrics(), "gatehouse_connections_open") == 3
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: metric(adm.metrics(), "gatehouse_connections_open") == 0, 5.0,
               "gatehouse_connections_open back to 0")


def test_metrics_upstream_connection_busy_while_a_request_is_held(admin_gw, upstream):
    adm = admin_gw()
    c = _held(adm.gw, upstream, "busy")
    try:
        m = adm.metrics()
        pool = series(m, "gatehouse_upstream_connections")
        assert metric(m, "gatehouse_upstream_connections", upstream="up", state="busy") == 1, pool
    finally:
        upstream.release("busy")
    r = c.read_response()
    c.close()
    assert r.status == 200, r
    wait_until(lambda: metric(adm.metrics(), "gatehouse_upstream_connections", upstream="up", state="busy") == 0,
               5.0, "the upstream connection no longer busy")
    assert metric(adm.metrics(), "gatehouse_upstream_connections", upstream="up", state="idle") >= 1


def test_metrics_count_global_decisions_and_redis_errors(admin_gw, redis_server):
    """Global limits decided by Redis are counted by decision; once Redis is
    gone, the workers' failed calls show up as Redis errors by kind and the
    fail-open decisions as errors."""
    routes = [{"name": "glim", "match": {"path": "/glim/**"}, "upstream": "up", "strip": "/glim",
               "rate_limit": {"rate": 1, "per": 60, "burst": 2, "scope": "global"}}]
    adm = admin_gw(routes=routes, workers=2,
                   redis={"url": redis_server.url, "timeout_ms": 100, "prefix": f"ghm{secrets.token_hex(3)}:"})
    gw = adm.gw
    assert [send(gw, "GET", "/glim/echo").status for _ in range(3)] == [200, 200, 429]
    m = adm.metrics()
    lim = series(m, "gatehouse_rate_limit_decisions_total")
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="global", decision="allowed") == 2, lim
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="global", decision="denied") == 1, lim
    assert metric(m, "gatehouse_redis_errors_total") == 0, series(m, "gatehouse_redis_errors_total")

    redis_server.kill()
    # on_error defaults to "allow": every request passes, each decision an error
    got = [send(gw, "GET", "/glim/echo").status for _ in range(4)]
    assert got == [200] * 4, got
    m = adm.metrics()
    errs = series(m, "gatehouse_redis_errors_total")
    assert metric(m, "gatehouse_redis_errors_total") >= 1, errs
    assert all(ls.get("kind") for ls, _ in errs), errs
    lim = series(m, "gatehouse_rate_limit_decisions_total")
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="global", decision="error") == 4, lim
    assert metric(m, "gatehouse_rate_limit_decisions_total", scope="global", decision="allowed") == 2, lim


# ---------------------------------------------------------------------------
# /routes

ROUTES_SRC = '''local gh = require "gatehouse"
return {
  gh.route {
    name = "orders",
    match = { path = "/api/orders/**", methods = { "GET", "POST" } },
    upstream = "orders", auth = "hs", strip = "/api",
    policy = function(req, claims) end,
  },
  gh.route {
    match = { path = "/static/*", host = "cdn.example.com" },
    upstream = "web",
    on_response = function(res) end,
    rate_limit = { rate = 5, per = 2, burst = 7 },
  },
}
'''


def test_routes_match_the_config(admin_gw, upstream):
    ups = {"orders": {"targets": [upstream.addr]}, "web": {"targets": [upstream.addr, "127.0.0.1:9"]}}
    adm = admin_gw(route_files={"50-admin.lua": ROUTES_SRC}, upstreams=ups, issuers=ISSUERS)
    doc = adm.json("/routes")
    ready = adm.json("/ready")
    assert (doc["generation"], doc["hash"]) == (ready["generation"], ready["hash"])
    assert doc["upstreams"] == {"orders": {"targets": [upstream.addr]},
                                "web": {"targets": [upstream.addr, "127.0.0.1:9"]}}, doc["upstreams"]
    routes = doc["routes"]
    assert len(routes) == 2, routes
    keys = {"name", "host", "path", "methods", "upstream", "auth", "strip", "policy", "on_response",
            "rate_limit", "file", "line"}
    for r in routes:
        assert keys <= set(r), f"missing {keys - set(r)} in {r}"
        assert r["file"].endswith("50-admin.lua") and os.path.basename(r["file"]) == "50-admin.lua", r
    orders = next(r for r in routes if r["name"] == "orders")
    assert orders["line"] in range(3, 8), orders
    assert orders["host"] is None and orders["path"] == "/api/orders/**", orders
    assert sorted(orders["methods"]) == ["GET", "POST"], orders
    assert (orders["upstream"], orders["auth"], orders["strip"]) == ("orders", "hs", "/api"), orders
    assert (orders["policy"], orders["on_response"], orders["rate_limit"]) == (True, False, None), orders
    (static,) = [r for r in routes if r is not orders]
    assert static["line"] in range(9, 15), static
    assert static["name"] == f"50-admin.lua:{static['line']}", static  # the default name
    assert (static["host"], static["path"], static["methods"]) == ("cdn.example.com", "/static/*", None), static
    assert (static["upstream"], static["auth"], static["strip"]) == ("web", None, None), static
    assert (static["policy"], static["on_response"]) == (False, True), static
    rl = static["rate_limit"]
    assert isinstance(rl, dict) and (rl["rate"], rl["per"], rl["burst"]) == (5, 2, 7), rl
    # and the gateway routes that way
    assert send(adm.gw, "GET", "/api/orders/1").status == 401  # auth = hs
    assert send(adm.gw, "DELETE", "/api/orders/1").status in (404, 405)  # methods


# ---------------------------------------------------------------------------
# Idle admin connections: 10 s to send a request, counted fairly


def test_a_request_that_arrived_while_the_main_loop_was_held_up_is_answered(gateway, upstream):
    """An admin connection that sends nothing for 10 s is closed. The main
    loop is held up here longer than that (writing its log to a stderr pipe
    nobody reads); a request that arrived meanwhile is not idle, and the
    stalled reload finishes too, once the pipe drains."""
    port = free_port()
    gw = gateway(upstreams={"up": {"targets": [upstream.addr]}},
                 routes=[{"name": "all", "match": {"path": "/**"}, "upstream": "up"}],
                 admin=f"127.0.0.1:{port}", start=False)
    gw.stderr_pipe = StderrPipe()
    gw.start()
    adm = Admin(gw, port)
    wait_until(lambda: _ready(adm), 10.0, lambda: f"GET /ready 200:\n{gw.stderr()}")
    gw.stderr_pipe.hold()  # from here on the log fills the pipe
    idle = gw.connect_to(port)  # accepted now: its 10 s start
    time.sleep(0.2)
    t_idle = time.monotonic()
    stalled = None
    for _ in range(200):  # each reload logs two lines; the pipe fills within a few dozen
        c = gw.connect_to(port)
        c.request("POST", "/reload", headers=[("Content-Length", "0")], host=f"127.0.0.1:{port}")
        try:
            r = c.read_response("POST", timeout=2.0)
        except socket.timeout:
            stalled = c  # the main loop is stuck writing its log
            break
        assert r.status == 200, r
    assert stalled is not None, "the main loop never blocked on its log"
    assert time.monotonic() - t_idle < 8.0, "filling the pipe took too long for the 10 s to mean anything"
    idle.request("GET", "/health", host=f"127.0.0.1:{port}")  # arrives during the stall
    time.sleep(max(0.0, t_idle + 11.0 - time.monotonic()))  # past its 10 s
    gw.stderr_pipe.release()
    r = idle.read_response()
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    r = stalled.read_response("POST")
    assert r.status == 200 and r.json().get("reloaded") is True, r
    # a connection that really sends nothing is still closed after its 10 s
    quiet = gw.connect_to(port)
    with pytest.raises(Closed):
        quiet.read_head(timeout=14.0)


# ---------------------------------------------------------------------------
# The admin token


PROTECTED = [("GET", "/ready"), ("GET", "/metrics"), ("GET", "/routes"), ("POST", "/reload"), ("POST", "/revoke")]


@pytest.mark.parametrize("from_file", [False, True], ids=["token", "token_file"])
def test_admin_token_guards_every_endpoint_but_health(admin_gw, from_file):
    adm = admin_gw(admin_token=TOKEN, token_file=from_file)
    bad = [None, f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ",
           f"Basic {TOKEN}", TOKEN]
    for method, path in PROTECTED:
        for auth in bad:
            r = adm.call(method, path, auth=auth, body=b'{"jti":"j1","exp":4102444800}' if path == "/revoke" else b"")
            assert r.status == 401, f"{method} {path} with {auth!r}: {r!r}"
            ch = r.header("WWW-Authenticate")
            assert ch and ch.split()[0].lower() == "bearer", r.headers
            assert b"gatehouse_" not in r.body and b"generation" not in r.body, r.body
    # nothing was reloaded or revoked by the refused calls
    assert adm.json("/ready")["generation"] == 1
    assert metric(adm.metrics(), "gatehouse_config_reloads_total") == 0
    # /health needs nothing
    assert adm.call("GET", "/health", auth=None).status == 200
    # with the token: each answers
    assert adm.json("/ready")["ready"] is True
    assert adm.json("/routes")["generation"] == 1
    assert metric(adm.metrics(), "gatehouse_ready") == 1
    r = adm.call("POST", "/reload")
    assert r.status == 200 and r.json()["reloaded"] is True and r.json()["generation"] == 2, r
    r = adm.call("POST", "/revoke", body=json.dumps({"jti": "j1", "exp": int(time.time()) + 600}).encode())
    assert r.status == 200 and r.json()["revoked"] == "jti", r


# ---------------------------------------------------------------------------
# Signals


def _held(gw, upstream, key):
    """A client connection whose request is held at the upstream."""
    c = RawConn("127.0.0.1", gw.port, TIMEOUT)
    c.request("GET", f"/hold?key={key}")
    wait_until(lambda: any(r.target == f"/hold?key={key}" for r in upstream.started), 5.0,
               "the held request at the upstream")
    return c


def test_ready_is_503_and_reload_refused_while_draining(admin_gw, upstream):
    adm = admin_gw(workers=2, limits={"drain_timeout": 10})
    gw = adm.gw
    c = _held(gw, upstream, "drain-ready")
    try:
        gw.signal(signal.SIGTERM)
        r = wait_until(lambda: (lambda x: x if x.status == 503 else None)(adm.call("GET", "/ready")), 3.0,
                       "GET /ready 503 while draining")
        doc = r.json()
        assert doc["ready"] is False and isinstance(doc.get("reason"), str) and doc["reason"], doc
        assert adm.json("/health") == {"status": "ok"}  # the admin listener answers during the drain
        assert metric(adm.metrics(), "gatehouse_ready") == 0
        r = adm.call("POST", "/reload")
        assert r.status == 503 and r.json()["reloaded"] is False, r
        assert gw.alive()
        upstream.release("drain-ready")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
    finally:
        upstream.release("drain-ready")
        c.close()
    assert gw.wait_exit() == 0, gw.stderr()[-2000:]


def test_sigterm_drains_the_request_in_flight_and_exits_0(admin_gw, upstream):
    adm = admin_gw(workers=2, limits={"drain_timeout": 10})
    gw = adm.gw
    c = _held(gw, upstream, "drain")
    try:
        gw.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert gw.alive(), "exited with a request in flight"
        upstream.release("drain")
        r = c.read_response()
        assert r.status == 200 and r.complete and json.loads(r.body)["target"] == "/hold?key=drain", r
    finally:
        upstream.release("drain")
        c.close()
    assert gw.wait_exit(5.0) == 0, gw.stderr()[-2000:]


def test_sigquit_exits_at_once_with_0(admin_gw, upstream):
    adm = admin_gw(workers=2, limits={"drain_timeout": 10})
    gw = adm.gw
    c = _held(gw, upstream, "quit")
    try:
        t0 = time.monotonic()
        gw.signal(signal.SIGQUIT)
        rc = gw.wait_exit(5.0)
        took = time.monotonic() - t0
        assert rc == 0, gw.stderr()[-2000:]
        assert took < 2.0, f"SIGQUIT took {took:.2f}s"
        try:  # the request in flight was cut, not answered
            r = c.read_response(timeout=2.0)
            assert r.status != 200 or not r.complete, r
        except Closed:
            pass
    finally:
        upstream.release("quit")
        c.close()


def _log_lines(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_sigusr1_reopens_the_access_log(admin_gw, tmp_path):
    log = tmp_path / "logs" / "access.log"
    log.parent.mkdir()
    adm = admin_gw(workers=2, access_log=str(log))
    gw = adm.gw
    rotated = str(log) + ".1"

    def ids(path):
        return [l["request_id"] for l in _log_lines(path)]

    def req(rid):
        assert send(gw, "GET", "/echo", [("X-Request-Id", rid)]).status == 200

    req("before-1")
    wait_until(lambda: "before-1" in ids(log), 5.0, "before-1 in the access log")
    os.rename(log, rotated)
    req("before-2")  # still the open file
    wait_until(lambda: "before-2" in ids(rotated), 5.0, "before-2 in the renamed file")
    gw.signal(signal.SIGUSR1)
    sent = []
    for i in range(50):  # until a line reaches a new file at the path
        sent.append(f"after-{i}")
        req(sent[-1])
        time.sleep(0.1)
        if ids(log):
            break
    assert ids(log), f"no new file at {log} after SIGUSR1:\n{gw.stderr()[-2000:]}"
    time.sleep(0.3)  # every worker has had the time to reopen
    finals = [f"final-{i}" for i in range(8)]  # new connections spread over the workers
    for rid in finals:
        req(rid)
    wait_until(lambda: set(finals) <= set(ids(log)), 5.0, lambda: f"the final lines in the new file: {ids(log)}")
    old, new = ids(rotated), ids(log)
    assert not set(old) & set(new), (old, new)
    assert {"before-1", "before-2"} <= set(old) and not {"before-1", "before-2"} & set(new)
    assert not set(finals) & set(old), old
    assert sorted(old + new) == sorted(["before-1", "before-2"] + sent + finals), (old, new)
    for line in _log_lines(rotated) + _log_lines(log):
        assert re.fullmatch(r"[0-9a-f]{32}", line.get("trace_id") or ""), line
        assert line["trace_id"] != "0" * 32, line
    assert "before-1" not in gw.stderr()  # the access log is the file, not stderr
