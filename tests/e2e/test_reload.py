"""Hot reload end to end: `POST /reload` on the admin listener, SIGHUP and
`watch = true` load the whole configuration anew and swap it in per worker.
A request runs on one configuration from start to end (its policy and its
on_response come from the same one); a request that starts after a reload
answered uses the new one; a configuration that fails to load (or changes a
key that needs a restart) is refused with `file:line` and the live one keeps
serving.

Each configuration's route policy stamps a label on the request
(`X-Config`, read back from what the recording upstream received) and its
on_response stamps the same label on the response (`X-Config-Resp`), so
every response says which configuration(s) served it.

Every gateway listens on 127.0.0.1; every wait and every load loop is
bounded.
"""

import json
import os
import random
import re
import signal
import socket
import threading
import time

import pytest

from conftest import free_port, make_config, wait_until
from rawhttp import Closed, RawConn

ROUTE_FILE = "50-main.lua"
TIMEOUT = 15.0  # one admin call or one proxied request, at most


# ---------------------------------------------------------------------------
# Prometheus text (name{labels} value)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_prom(text):
    """{(name, frozenset(labels)): value}; fails on a line that is neither a
    comment nor a sample, and on a repeated series."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
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
# Route files


def labelled_routes(label, extra=False):
    """The main route stamps label on the request (policy) and on the
    response (on_response). extra adds route "bonly" (/b-only/**, stripped,
    to upstream "up2"), which also stamps X-Route."""
    src = (
        'local gh = require "gatehouse"\n'
        f'local LABEL = "{label}"\n'
        'return {\n'
        '  gh.route {\n'
        '    name = "main", match = { path = "/**" }, upstream = "up",\n'
        '    policy = function(req, claims) req.headers["X-Config"] = LABEL end,\n'
        '    on_response = function(res, claims) res.headers["X-Config-Resp"] = LABEL end,\n'
        '  },\n')
    if extra:
        src += (
            '  gh.route {\n'
            '    name = "bonly", match = { path = "/b-only/**" }, upstream = "up2", strip = "/b-only",\n'
            '    policy = function(req, claims)\n'
            '      req.headers["X-Config"] = LABEL\n'
            '      req.headers["X-Route"] = "b-only"\n'
            '    end,\n'
            '    on_response = function(res, claims) res.headers["X-Config-Resp"] = LABEL end,\n'
            '  },\n')
    return src + '}\n'


# line 2 holds the syntax error
BROKEN_SYNTAX = 'local gh = require "gatehouse"\nlocal x = = 1\nreturn {}\n'


# ---------------------------------------------------------------------------
# A gateway with an admin listener whose files the test rewrites


class Env:
    def __init__(self, gw, up, admin_port, base):
        self.gw = gw
        self.up = up
        self.admin_port = admin_port
        self.base = base  # top-level keys every write_config keeps

    # -- files ----------------------------------------------------------------
    def path(self, rel):
        return os.path.join(self.gw.dir, rel)

    def write(self, rel, text):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def upstreams(self, extra=False):
        ups = {"up": {"targets": [self.up.addr]}}
        if extra:
            ups["up2"] = {"targets": [self.up.addr]}
        return ups

    def config_text(self, upstreams=None, **over):
        keys = {**self.base, **over}
        limits = keys.pop("limits", None)
        return make_config(self.gw.port, upstreams or self.upstreams(), limits, **keys)

    def write_config(self, upstreams=None, **over):
        self.write("gatehouse.lua", self.config_text(upstreams, **over))

    def set_label(self, label, extra=False, **over):
        """Config + routes for label (extra: the structural variant)."""
        self.write_config(self.upstreams(extra), **over)
        self.write(os.path.join("routes", ROUTE_FILE), labelled_routes(label, extra))

    # -- admin ----------------------------------------------------------------
    def admin(self, method, path, body=b"", headers=()):
        t0 = time.monotonic()
        with RawConn("127.0.0.1", self.admin_port, TIMEOUT) as c:
            hs = list(headers)
            if method == "POST":
                hs.append(("Content-Length", str(len(body))))
            c.request(method, path, headers=hs, body=body, host=f"127.0.0.1:{self.admin_port}")
            try:
                return c.read_response(method)
            except (Closed, OSError) as exc:  # with what the gateway logged meanwhile
                raise AssertionError(f"{method} {path}: {exc!r} after {time.monotonic() - t0:.1f} s; "
                                     f"gateway alive: {self.gw.alive()}\n{self.gw.stderr()[-3000:]}") from exc

    def reload(self):
        """POST /reload: (status, JSON document)."""
        r = self.admin("POST", "/reload")
        try:
            doc = r.json()
        except ValueError:
            raise AssertionError(f"POST /reload answered non-JSON: {r!r}\n{self.gw.stderr()[-3000:]}")
        return r.status, doc

    def reload_ok(self):
        st, doc = self.reload()
        assert st == 200 and doc.get("reloaded") is True, f"reload refused: {st} {doc}\n{self.gw.stderr()[-3000:]}"
        assert isinstance(doc.get("generation"), int) and isinstance(doc.get("hash"), str) and doc["hash"], doc
        return doc

    def reload_refused(self):
        st, doc = self.reload()
        assert st == 422, f"expected 422, got {st} {doc}"
        assert doc.get("reloaded") is False, doc
        assert isinstance(doc.get("error"), str) and doc["error"], doc
        return doc

    def metrics(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, r
        return parse_prom(r.text)

    def generation(self):
        r = self.admin("GET", "/ready")
        assert r.status == 200, r
        return r.json()["generation"]

    # -- traffic --------------------------------------------------------------
    def get(self, path="/probe", port=None):
        with RawConn("127.0.0.1", port or self.gw.port, TIMEOUT) as c:
            c.request("GET", path)
            return c.read_response()

    def label(self, path="/probe", port=None):
        """The one label of a fresh request (policy and on_response agree)."""
        r = self.get(path, port)
        return labels_of(r)[0]


def labels_of(r):
    """(label, upstream_path, X-Route) of a 200 answered by the recording
    upstream through a labelled route; the request's label (what the
    upstream received) must equal the response's."""
    assert r.status == 200, f"expected 200, got {r!r}"
    assert r.complete, r
    seen = json.loads(r.body)
    hdrs = {}
    for k, v in seen["headers"]:
        hdrs.setdefault(k.lower(), []).append(v)
    sent = hdrs.get("x-config", [])
    assert len(sent) == 1, f"upstream got X-Config {sent!r}"
    resp = r.header("X-Config-Resp")
    assert resp == sent[0], f"request ran policy of {sent[0]!r} but on_response of {resp!r}"
    route = hdrs.get("x-route", [None])
    return sent[0], seen["path"], route[0]


def _ready(port):
    try:
        with RawConn("127.0.0.1", port, 2.0) as c:
            c.request("GET", "/ready", host=f"127.0.0.1:{port}")
            return c.read_response().status == 200
    except OSError:
        return False


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def env(gateway, upstream):
    """env(label="one", workers=1, extra=False, **top-level keys): a started
    gateway with an admin listener, serving labelled_routes(label)."""

    def make(label="one", workers=1, extra=False, **keys):
        admin_port = free_port()
        base = {"workers": workers, "admin": f"127.0.0.1:{admin_port}", **keys}
        gw = gateway(config_text="return {}\n", start=False)
        e = Env(gw, upstream, admin_port, base)
        e.set_label(label, extra)
        gw.start()
        # every worker has built its configuration (the port accepts before that)
        wait_until(lambda: _ready(admin_port), 10.0, lambda: f"GET /ready 200 on {admin_port}:\n{gw.stderr()[-2000:]}")
        return e

    return make


def error_at(err, fname, lines):
    """err carries fname:<line>: with line in lines; returns the message."""
    m = re.search(re.escape(fname) + r":(\d+): ?(.*)", err)
    assert m, f"no {fname}:<line>: in {err!r}"
    assert int(m.group(1)) in lines, f"error at line {m.group(1)}, expected one of {list(lines)}: {err!r}"
    return m.group(2)


# ---------------------------------------------------------------------------
# 1. Reloads under load: one configuration per request, and the right one


class Sample:
    __slots__ = ("t0", "t1", "target", "label", "path", "route")

    def __init__(self, t0, t1, target, label, path, route):
        self.t0, self.t1, self.target, self.label, self.path, self.route = t0, t1, target, label, path, route


def _client(port, keepalive, seed, stop, max_n, deadline, samples, errors):
    """Requests in a loop until stop, max_n requests or deadline; every
    failure (status, reset, timeout, mixed labels) goes to errors."""
    rng = random.Random(seed)
    conn = None
    for _ in range(max_n):
        if stop.is_set() or time.monotonic() > deadline:
            break
        prefix = "/b-only" if rng.random() < 0.3 else ""
        target = f"{prefix}/slow?ms={rng.randint(0, 30)}"
        try:
            if conn is None:
                conn = RawConn("127.0.0.1", port, TIMEOUT)
            t0 = time.monotonic()
            conn.request("GET", target)
            r = conn.read_response()
            t1 = time.monotonic()
            label, path, route = labels_of(r)
            if keepalive and (r.header("Connection") or "").lower() == "close":
                errors.append(f"{target}: the gateway closed a keep-alive connection: {r!r}")
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 -- every failure is a finding
            errors.append(f"{target}: {type(e).__name__}: {e}")
            if conn is not None:
                conn.close()
            conn = None
            continue
        samples.append(Sample(t0, t1, target, label, path, route))
        if not keepalive:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def test_reloads_under_load_serve_one_config_per_request(env, upstream):
    upstream.max_records = 500  # the samples keep what the upstream saw
    e = env(label="A0", workers=2)
    assert e.label() == "A0"
    stop = threading.Event()
    samples, errors = [], []
    deadline = time.monotonic() + 60
    threads = [threading.Thread(target=_client, daemon=True,
                                args=(e.gw.port, i < 8, 1000 + i, stop, 4000 if i < 8 else 1500, deadline,
                                      samples, errors))
               for i in range(10)]  # 8 keep-alive clients, 2 with a new connection per request
    for t in threads:
        t.start()
    time.sleep(0.3)

    # timeline[k] = (sent, returned, label live after it); 0 is the startup
    timeline = [(float("-inf"), float("-inf"), "A0")]
    generation, live, hashes, good, broken_at = 1, "A0", [], 0, 26
    try:
        for k in range(1, 52):
            if k == broken_at:
                e.write(os.path.join("routes", ROUTE_FILE), BROKEN_SYNTAX)
                t_s = time.monotonic()
                doc = e.reload_refused()
                timeline.append((t_s, time.monotonic(), live))
                error_at(doc["error"], ROUTE_FILE, [2])
                assert doc.get("generation") == generation, doc
                assert e.label() == live  # the previous configuration serves on
            else:
                good += 1
                extra = good % 2 == 1
                label = ("B" if extra else "A") + str(good)
                e.set_label(label, extra)
                t_s = time.monotonic()
                doc = e.reload_ok()
                timeline.append((t_s, time.monotonic(), label))
                generation += 1
                assert doc["generation"] == generation, doc
                hashes.append(doc["hash"])
                live = label
                # a request sent after the answer runs on the new configuration
                assert e.label() == label
                got = e.get("/b-only/slow?ms=0")
                assert labels_of(got) == ((label, "/slow", "b-only") if extra else (label, "/b-only/slow", None))
            time.sleep(0.04)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT + 5)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    assert not errors, f"{len(errors)} failed requests (of {len(errors) + len(samples)}), first: {errors[:5]}" \
                       f"\n{e.gw.stderr()[-3000:]}"
    assert len(samples) >= 500, f"only {len(samples)} requests made it through"

    strict = 0
    for s in samples:
        # the last reload that had answered when the request was sent
        k = max(i for i, (_, ret, _) in enumerate(timeline) if ret <= s.t0)
        allowed = {timeline[k][2]}
        if k + 1 < len(timeline) and timeline[k + 1][0] <= s.t0:
            allowed.add(timeline[k + 1][2])  # sent while reload k+1 was under way
        else:
            strict += 1
        assert s.label in allowed, f"{s.target} sent at {s.t0:.4f} ran on {s.label}, live: {allowed}" \
                                   f" (timeline {timeline[max(0, k - 1):k + 3]})"
        # the route table came from the same configuration as the policy
        if s.target.startswith("/b-only"):
            want = ("/slow", "b-only") if s.label.startswith("B") else (s.target.split("?")[0], None)
            assert (s.path, s.route) == want, (s.target, s.label, s.path, s.route)
    assert strict >= 100, f"only {strict} requests fell between reloads: the check proved little"
    begun = sum(1 for s in samples for (sent, _, _) in timeline[1:] if s.t0 < sent < s.t1)
    across = sum(1 for s in samples for (sent, ret, _) in timeline[1:] if s.t0 < sent and s.t1 > ret)
    assert begun >= 50 and across >= 5, f"only {begun} requests in flight as a reload began, {across} across one"
    assert len({s.label for s in samples}) >= 20, "the load did not span the reloads"

    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 50, series(m, "gatehouse_config_reloads_total")
    assert metric(m, "gatehouse_config_reloads_total", result="failed") == 1
    assert metric(m, "gatehouse_config_generation") == 51
    assert metric(m, "gatehouse_config_info", hash=hashes[-1]) == 1, series(m, "gatehouse_config_info")
    assert "50-main.lua:2" in e.gw.stderr()


# ---------------------------------------------------------------------------
# 2, 3. SIGHUP


def test_sighup_applies_a_change(env):
    e = env(label="one", workers=2)
    assert e.label() == "one"
    e.set_label("two")
    e.gw.signal(signal.SIGHUP)
    wait_until(lambda: e.label() == "two", 5.0, lambda: f"the new config after SIGHUP:\n{e.gw.stderr()[-2000:]}")
    for _ in range(10):  # every worker has it
        assert e.label() == "two"
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 1
    assert metric(m, "gatehouse_config_reloads_total", result="failed") == 0
    assert metric(m, "gatehouse_config_generation") == 2
    ts = metric(m, "gatehouse_config_last_reload_success_timestamp_seconds")
    assert abs(ts - time.time()) < 30, ts


def test_sighup_with_a_broken_config_keeps_the_old_one(env):
    e = env(label="one", workers=2)
    e.write(os.path.join("routes", ROUTE_FILE), BROKEN_SYNTAX)
    e.gw.signal(signal.SIGHUP)
    line = wait_until(lambda: next((ln for ln in e.gw.stderr().splitlines() if "50-main.lua:2:" in ln), None),
                      5.0, lambda: f"the reload error in stderr:\n{e.gw.stderr()[-2000:]}")
    assert "reload" in line.lower() or "near" in line, line
    wait_until(lambda: metric(e.metrics(), "gatehouse_config_reloads_total", result="failed") == 1, 5.0,
               "gatehouse_config_reloads_total{result=\"failed\"} 1")
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 0
    assert metric(m, "gatehouse_config_generation") == 1
    for _ in range(6):
        assert e.label() == "one"
    assert e.gw.alive()
    # and a fixed config loads by SIGHUP afterwards
    e.set_label("two")
    e.gw.signal(signal.SIGHUP)
    wait_until(lambda: e.label() == "two", 5.0, "the fixed config after SIGHUP")


# ---------------------------------------------------------------------------
# 4, 5. Refusals: the old configuration keeps serving

def _route(body_line):
    """A route file whose route (lines 3-5) carries body_line at line 4."""
    return ('local gh = require "gatehouse"\n'
            'return {\n'
            '  gh.route {\n'
            f'    {body_line}\n'
            '  },\n'
            '}\n')


REFUSALS = {
    "unknown_upstream": (_route('name = "r", match = { path = "/r/**" }, upstream = "nope",'),
                         ROUTE_FILE, range(3, 6), ["nope"]),
    "unknown_issuer": (_route('name = "r", match = { path = "/r/**" }, upstream = "up", auth = "zz",'),
                       ROUTE_FILE, range(3, 6), ["zz"]),
    "invalid_path": (_route('name = "r", match = { path = "no-slash/x" }, upstream = "up",'),
                     ROUTE_FILE, range(3, 6), ["no-slash/x"]),
    "lua_runtime_error": ('local gh = require "gatehouse"\nlocal t = nil\nlocal x = t.y\nreturn {}\n',
                          ROUTE_FILE, [3], ["nil"]),
    "bad_key_file": (None, "gatehouse.lua", None, ["pem"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_reload_refusals_name_file_and_line(env, case):
    e = env(label="one", workers=2)
    src, fname, lines, words = REFUSALS[case]
    if src is not None:
        e.write(os.path.join("routes", "60-bad.lua"), src)
    else:
        e.write("bad.pem", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
        text = e.config_text(issuers={"hs": {"issuer": "https://sso.example.com", "pem_file": "bad.pem"}})
        e.write("gatehouse.lua", text)
        tl = text.splitlines()
        first = next(i for i, ln in enumerate(tl, 1) if "issuers" in ln)
        last = next(i for i, ln in enumerate(tl, 1) if "pem_file" in ln)
        lines = range(first, last + 2)
    if fname == ROUTE_FILE:
        fname = "60-bad.lua"
    doc = e.reload_refused()
    msg = error_at(doc["error"], fname, lines)
    for w in words:
        assert w.lower() in doc["error"].lower(), f"{w!r} not in {doc['error']!r}"
    assert msg, doc
    assert doc.get("generation") == 1, doc
    for _ in range(6):
        assert e.label() == "one"
    assert e.generation() == 1
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="failed") == 1
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 0


RESTART_KEYS = {
    "workers": {"workers": 3},
    "admin": "new-port",
    "access_log": {"access_log": "off"},
    "rate_limit_keys": {"rate_limit_keys": 5000},
    "revocation": {"revocation": {"subject_ttl": 3600}},
}


@pytest.mark.parametrize("key", sorted(RESTART_KEYS))
def test_reload_refuses_a_change_that_needs_a_restart(env, key):
    e = env(label="one", workers=2)
    over = RESTART_KEYS[key]
    if over == "new-port":
        over = {"admin": f"127.0.0.1:{free_port()}"}
    e.write_config(**over)
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    doc = e.reload_refused()
    assert re.search(rf"\b{key}\b", doc["error"]), doc
    assert "restart" in doc["error"].lower(), doc
    assert doc.get("generation") == 1, doc
    for _ in range(6):
        assert e.label() == "one"  # nothing of the new files was applied
    assert e.generation() == 1


# ---------------------------------------------------------------------------
# log_level applies on reload


def test_log_level_applies_on_reload(env):
    e = env(label="one", workers=1, log_level="error")

    def lines_since(mark, tag):
        return [ln for ln in e.gw.stderr()[mark:].splitlines() if ln.startswith(f"gatehouse[{tag}]")]

    mark = len(e.gw.stderr())
    e.set_label("two", log_level="error")
    e.reload_ok()  # a reload logs at info: nothing here
    e.write(os.path.join("routes", ROUTE_FILE), BROKEN_SYNTAX)
    e.reload_refused()  # a refusal is an error: logged
    wait_until(lambda: lines_since(mark, "error"), 5.0, "the refusal in the log")
    assert not lines_since(mark, "info"), e.gw.stderr()[mark:]
    assert "50-main.lua:2" in lines_since(mark, "error")[0]
    e.set_label("three", log_level="info")
    e.reload_ok()
    mark = len(e.gw.stderr())
    e.set_label("four", log_level="info")
    e.reload_ok()
    wait_until(lambda: lines_since(mark, "info"), 5.0, lambda: f"info lines after log_level = info:\n"
               f"{e.gw.stderr()[mark:]}")
    assert e.label() == "four"


# ---------------------------------------------------------------------------
# 6. Listen addresses follow the configuration


def test_reload_adds_and_removes_listen_addresses(env):
    e = env(label="one", workers=2)
    p1, p2 = e.gw.port, free_port()
    assert not _accepts(p2)
    e.write_config(listen=[f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"])
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    e.reload_ok()
    for _ in range(4):
        assert e.label(port=p2) == "two"
        assert e.label(port=p1) == "two"
    held = RawConn("127.0.0.1", p2, TIMEOUT)  # a keep-alive client of p2 across the next reload
    held.request("GET", "/held")
    assert labels_of(held.read_response())[0] == "two"
    try:
        e.write_config(listen=[f"127.0.0.1:{p2}"])
        e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("three"))
        e.reload_ok()
        for _ in range(10):  # every worker's socket for p1 is closed
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", p1), timeout=2).close()
        for _ in range(4):
            assert e.label(port=p2) == "three"
        held.request("GET", "/held")
        assert labels_of(held.read_response())[0] == "three"
    finally:
        held.close()
    assert e.admin("GET", "/health").status == 200


# ---------------------------------------------------------------------------
# 7. watch = true


def test_watch_reloads_when_a_route_file_changes(env):
    e = env(label="one", workers=2, watch=True)
    assert e.label() == "one"
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    t0 = time.monotonic()
    wait_until(lambda: e.label() == "two", 5.0, lambda: f"the edit applied by watch:\n{e.gw.stderr()[-2000:]}",
               interval=0.05)
    assert time.monotonic() - t0 >= 0.3, "reloaded before the debounce"
    time.sleep(1.0)  # one edit: one reload, even after the debounce window
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 1
    assert metric(m, "gatehouse_config_reloads_total", result="failed") == 0
    # a new route file is seen too
    e.write(os.path.join("routes", "60-more.lua"),
            'local gh = require "gatehouse"\nreturn gh.route { name = "more", match = { path = "/more" },'
            ' upstream = "up", policy = function(req) return gh.respond(200, "more") end }\n')
    wait_until(lambda: e.get("/more").body == b"more", 5.0, "the new route file applied by watch", interval=0.05)


def test_watch_reloads_when_the_config_file_changes(env):
    e = env(label="one", workers=2, watch=True)
    gen = e.generation()
    # other files beside the config file are not the config: no reload
    e.write("notes.txt", "not config\n")
    e.write("other.lua", "return {}\n")
    time.sleep(1.0)  # past the debounce
    assert e.generation() == gen
    # the config file itself: an upstream added is a new generation
    e.write_config(e.upstreams(extra=True))
    wait_until(lambda: e.generation() == gen + 1, 5.0,
               lambda: f"the config edit applied by watch:\n{e.gw.stderr()[-2000:]}", interval=0.05)
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == 1
    assert e.label() == "one"
    # a broken config file is refused, the running one kept and counted
    e.write("gatehouse.lua", BROKEN_SYNTAX)
    wait_until(lambda: metric(e.metrics(), "gatehouse_config_reloads_total", result="failed") == 1, 5.0,
               lambda: f"the broken config refused by watch:\n{e.gw.stderr()[-2000:]}", interval=0.05)
    assert e.generation() == gen + 1
    assert e.label() == "one"
    assert "gatehouse.lua:2" in e.gw.stderr(), e.gw.stderr()[-2000:]


# ---------------------------------------------------------------------------
# 8. reload_runs_tests

def _policy_test(expect):
    return ('local t = require "gatehouse.test"\n'
            f'local main = t.load("{ROUTE_FILE}", "main")\n'
            't.case("main stamps its label", function()\n'
            '  local req = t.request { method = "GET", path = "/x" }\n'
            '  local out = t.run(main, req, nil)\n'
            '  t.eq(out.action, "proxy")\n'
            f'  t.eq(req.headers["X-Config"], "{expect}")\n'
            'end)\n')


def test_reload_runs_tests_refuses_when_a_test_fails(env):
    e = env(label="one", workers=2, reload_runs_tests=True)
    e.write(os.path.join("routes", "x_test.lua"), _policy_test("one"))
    assert e.label() == "one"
    # the route changes, its test still expects "one": refused
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    doc = e.reload_refused()
    assert "test" in doc["error"].lower(), doc
    assert doc.get("generation") == 1, doc
    for _ in range(4):
        assert e.label() == "one"
    assert "x_test.lua" in e.gw.stderr(), "the failing test's file is not in the log"
    # the test updated with it: accepted
    e.write(os.path.join("routes", "x_test.lua"), _policy_test("two"))
    doc = e.reload_ok()
    assert doc["generation"] == 2, doc
    for _ in range(4):
        assert e.label() == "two"
    # without reload_runs_tests the same failing test does not hold a reload back
    e.write(os.path.join("routes", "x_test.lua"), _policy_test("nope"))
    e.write_config(reload_runs_tests=False)
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("three"))
    e.reload_ok()
    assert e.label() == "three"


def _limited_routes(label):
    """The main route lets one request an hour through a local limit."""
    return ('local gh = require "gatehouse"\n'
            'return gh.route {\n'
            '  name = "main", match = { path = "/**" }, upstream = "up",\n'
            '  policy = function(req, claims)\n'
            '    local ok, info = gh.limit("once", { rate = 1, per = 3600, burst = 1, scope = "local" })\n'
            '    if not ok then return gh.too_many(info) end\n'
            f'    req.headers["X-Config"] = "{label}"\n'
            '  end,\n'
            f'  on_response = function(res, claims) res.headers["X-Config-Resp"] = "{label}" end,\n'
            '}\n')


def test_reload_runs_tests_without_touching_live_state(env):
    """The tests a reload runs spend rate-limit tokens and could revoke;
    none of it may reach the serving gateway: they run in a child."""
    e = env(label="one", workers=1, reload_runs_tests=True)
    e.write(os.path.join("routes", "x_test.lua"),
            'local t = require "gatehouse.test"\n'
            f'local main = t.load("{ROUTE_FILE}", "main")\n'
            't.case("the second request in an hour is refused", function()\n'
            '  t.eq(t.run(main, t.request { path = "/a" }, nil).action, "proxy")\n'
            '  t.eq(t.run(main, t.request { path = "/b" }, nil).status, 429)\n'
            'end)\n')
    e.write(os.path.join("routes", ROUTE_FILE), _limited_routes("two"))
    doc = e.reload_ok()
    assert doc["generation"] == 2, doc
    r = e.get("/live")  # the live bucket "once" is untouched by the test's two requests
    assert labels_of(r)[0] == "two", r
    r = e.get("/live-again")
    assert r.status == 429, r


def test_reload_refuses_tests_that_never_finish_and_reloads_after(env):
    e = env(label="one", workers=2, reload_runs_tests=True, lua={"load_budget": 1})
    e.write(os.path.join("routes", "x_test.lua"),
            'local t = require "gatehouse.test"\n'
            't.case("spins", function() while true do end end)\n')
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    t0 = time.monotonic()
    doc = e.reload_refused()
    assert time.monotonic() - t0 < 8.0
    assert "lua.load_budget" in doc["error"], doc
    assert doc.get("generation") == 1, doc
    assert e.label() == "one"
    os.remove(e.path(os.path.join("routes", "x_test.lua")))
    doc = e.reload_ok()  # the stuck tests left nothing running that holds reloads back
    assert doc["generation"] == 2, doc
    assert e.label() == "two"


def test_a_reload_slower_than_the_admin_idle_timeout_still_gets_its_answer(env):
    # the admin listener drops a connection that sends nothing for 10 s; one
    # that has sent its POST /reload waits for the answer however long the
    # reload takes (here its policy tests sleep 11 s, within their budget)
    e = env(label="one", workers=1, reload_runs_tests=True, lua={"load_budget": 30})
    e.write(os.path.join("routes", "70-slow.lua"),
            'local gh = require "gatehouse"\n'
            'return gh.route {\n'
            '  name = "slow", match = { path = "/slow" }, upstream = "up",\n'
            '  policy = function(req, claims) gh.sleep(11) end,\n'
            '}\n')
    e.write(os.path.join("routes", "slow_test.lua"),
            'local t = require "gatehouse.test"\n'
            'local slow = t.load("70-slow.lua", "slow")\n'
            't.case("the slow route takes its time", function()\n'
            '  t.eq(t.run(slow, t.request { path = "/slow" }, nil).action, "proxy")\n'
            'end)\n')
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    t0 = time.monotonic()
    doc = e.reload_ok()
    assert time.monotonic() - t0 >= 11.0, "the policy tests did not run"
    assert doc["generation"] == 2, doc
    assert e.label() == "two"


@pytest.mark.parametrize("jit", [False, True])
def test_reload_refuses_a_route_file_that_never_returns(env, jit):
    # with lua.jit, the loader still runs route files interpreted: its loops stop too
    e = env(label="one", workers=2, lua={"load_budget": 0.5, "jit": jit})
    e.write(os.path.join("routes", "60-spin.lua"),
            'local gh = require "gatehouse"\nlocal n = 0\nwhile true do n = n + 1 end\n')
    t0 = time.monotonic()
    doc = e.reload_refused()
    assert time.monotonic() - t0 < 5.0
    msg = error_at(doc["error"], "60-spin.lua", [3])
    assert "lua.load_budget" in msg, doc
    assert doc.get("generation") == 1, doc
    for _ in range(4):
        assert e.label() == "one"
    os.remove(e.path(os.path.join("routes", "60-spin.lua")))
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))
    assert e.reload_ok()["generation"] == 2
    assert e.label() == "two"


# ---------------------------------------------------------------------------
# 9. Many reloads: memory stays put


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_many_reloads_do_not_grow_memory(env, monkeypatch):
    # ASan holds freed memory in a quarantine (256 MiB by default), which
    # would show as growth; a small one leaves the gateway's own use to see
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=1")
    e = env(label="A0", workers=2)
    rss = {}
    n, early = 2000, 500  # thousands, as operators reload under ASan's leak check at exit
    for k in range(1, n + 1):
        label = ("B" if k % 2 else "A") + str(k)
        e.set_label(label, extra=k % 2 == 1)
        doc = e.reload_ok()
        assert doc["generation"] == k + 1, doc
        if k in (early, n):
            assert e.label() == label
            rss[k] = _rss_kib(e.gw.pid)
    assert e.label() == f"A{n}"
    assert labels_of(e.get("/b-only/x")) == (f"A{n}", "/b-only/x", None)
    grew = rss[n] - rss[early]
    assert grew < 16 * 1024, f"RSS grew {grew} KiB between reload {early} and {n} ({rss})"
    m = e.metrics()
    assert metric(m, "gatehouse_config_reloads_total", result="ok") == n


# ---------------------------------------------------------------------------
# 10. Idle keep-alive connections and requests in flight across a reload


def test_idle_connection_takes_new_config_and_in_flight_request_keeps_old(env, upstream):
    e = env(label="one", workers=1)
    idle = RawConn("127.0.0.1", e.gw.port, TIMEOUT)
    busy = RawConn("127.0.0.1", e.gw.port, TIMEOUT)
    try:
        idle.request("GET", "/first")
        assert labels_of(idle.read_response())[0] == "one"
        busy.request("GET", "/hold?key=inflight")
        wait_until(lambda: any(r.path == "/hold" for r in upstream.started), 5.0, "the held request upstream")
        e.set_label("two")
        t0 = time.monotonic()
        e.reload_ok()
        assert time.monotonic() - t0 < 5.0
        idle.request("GET", "/second")
        r = idle.read_response()
        assert labels_of(r)[0] == "two"
        assert e.label() == "two"
        upstream.release("inflight")
        r = busy.read_response()
        label, path, _ = labels_of(r)  # its policy and on_response both from "one"
        assert (label, path) == ("one", "/hold"), (label, path)
        busy.request("GET", "/after")  # the same connection's next request: the new one
        assert labels_of(busy.read_response())[0] == "two"
    finally:
        upstream.release("inflight")
        idle.close()
        busy.close()


def test_a_shortened_timeout_applies_to_connections_opened_after_the_reload(env):
    e = env(label="one", workers=1, limits={"header_timeout": 30})
    old = RawConn("127.0.0.1", e.gw.port, TIMEOUT)
    new = None
    try:
        old.send(b"GET /probe HTTP/1.1\r\nHost: gw.test\r\n")  # a head still coming
        e.write_config(limits={"header_timeout": 0.5})
        e.reload_ok()
        new = RawConn("127.0.0.1", e.gw.port, TIMEOUT)
        t0 = time.monotonic()
        new.send(b"GET /probe HTTP/1.1\r\nHost: gw.test\r\n")
        r = new.read_response(timeout=10)
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert took < 3.0, f"header_timeout 0.5 took {took:.1f}s behind a connection on the old 30s"
        old.send(b"\r\n")  # it keeps the timeout its head started under
        assert labels_of(old.read_response())[0] == "one"
    finally:
        old.close()
        if new is not None:
            new.close()


def test_trust_in_a_forwarding_peer_follows_the_reload(env):
    """trusted_proxies is read per request from its configuration: a peer
    a reload no longer trusts loses it on its open keep-alive connection."""
    e = env(label="one", workers=1, trusted_proxies=["127.0.0.1"])
    c = RawConn("127.0.0.1", e.gw.port, TIMEOUT)

    def xff():
        c.request("GET", "/xff", headers=[("X-Forwarded-For", "203.0.113.7")])
        r = c.read_response()
        assert r.status == 200, r
        return [v for k, v in json.loads(r.body)["headers"] if k.lower() == "x-forwarded-for"]

    try:
        assert xff() == ["203.0.113.7, 127.0.0.1"]
        e.write_config(trusted_proxies=[])
        e.reload_ok()
        assert xff() == ["127.0.0.1"]  # the same connection, its client's header dropped
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Every worker runs the code the configuration was loaded from


def test_route_file_edited_during_startup_does_not_split_the_workers(gateway, upstream):
    """The gateway accepts on its first worker's socket before the last
    worker is ready; an edit to a route file at that moment (a deploy
    racing a restart) must not give some workers other policy code than
    the configuration that was loaded (generation 1 = label "one")."""
    admin_port = free_port()
    gw = gateway(config_text="return {}\n", start=False)
    e = Env(gw, upstream, admin_port, {"workers": 8, "admin": f"127.0.0.1:{admin_port}"})
    e.set_label("one")
    gw.start()
    e.write(os.path.join("routes", ROUTE_FILE), labelled_routes("two"))  # same shape, other code
    wait_until(lambda: _ready(admin_port), 10.0, lambda: f"GET /ready 200:\n{gw.stderr()[-2000:]}")
    seen = {e.label() for _ in range(40)}  # new connections spread over the workers
    assert seen == {"one"}, f"workers of generation {e.generation()} run different route code: {seen}"
