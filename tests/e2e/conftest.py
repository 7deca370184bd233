"""Fixtures for Gatehouse's end-to-end tests.

`gateway(...)` writes a temporary gatehouse.lua + routes/ from Python values,
starts the real binary ($GATEHOUSE_BIN) with -c, waits until it accepts
connections and, on teardown, sends SIGTERM and requires exit code 0.
`upstream` is an in-process RecordingUpstream. Everything listens on
127.0.0.1 only, and every wait is bounded.
"""

import fcntl
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from rawhttp import RawConn
from recording_upstream import RecordingUpstream

GATEHOUSE_BIN = os.environ.get("GATEHOUSE_BIN", "/work/main/build/release/gatehouse")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, which Python 3.11 lacks by name

# ---------------------------------------------------------------------------
# Lua config from Python values


class Lua:
    """Verbatim Lua source inside a Python config value."""

    def __init__(self, src):
        self.src = src


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lua(v, indent=""):
    """Serialises dict/list/str/int/float/bool/None/Lua to a Lua expression."""
    if isinstance(v, Lua):
        return v.src
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\{ord(c):03d}" for c in v) + '"'
    inner = indent + "  "
    if isinstance(v, (list, tuple)):
        if not v:
            return "{}"
        return "{\n" + "".join(f"{inner}{lua(x, inner)},\n" for x in v) + indent + "}"
    if isinstance(v, dict):
        if not v:
            return "{}"
        parts = []
        for k, x in v.items():
            key = k if _IDENT.match(k) else f"[{lua(k)}]"
            parts.append(f"{inner}{key} = {lua(x, inner)},\n")
        return "{\n" + "".join(parts) + indent + "}"
    raise TypeError(f"cannot express {type(v)} in Lua")


def route_file(routes):
    """Lua source for a routes/*.lua file returning the given route dicts."""
    body = ",\n".join("  gh.route " + lua(r, "  ") for r in routes)
    return f'local gh = require "gatehouse"\nreturn {{\n{body}\n}}\n'


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A free 127.0.0.1 port below the kernel's ephemeral range, so that no
    outgoing connection (the gateway's to its upstreams, ours to it) can be
    holding it by the time the gateway binds it."""
    lo, _ = _ephemeral_range()
    top = lo - 1 if lo > 20000 else 65535
    for _ in range(200):
        port = random.randint(max(1024, top - 12000), top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port found")


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until truthy (returned) or timeout (AssertionError).
    what may be a callable, to build the message only when it fails."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# The gateway process


class StderrPipe:
    """The gateway's stderr as a small pipe the test drains, or stops
    draining (hold): once it is full, the gateway thread that writes its log
    there blocks, which holds up that thread's loop, as a stalled journald
    or a full disk would."""

    def __init__(self, size=4096):
        self.rfd, self.wfd = os.pipe()
        fcntl.fcntl(self.wfd, F_SETPIPE_SZ, size)
        self._reading = threading.Event()
        self._reading.set()
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        while True:
            self._reading.wait()
            data = os.read(self.rfd, 65536)
            if not data:
                return
            with self._lock:
                self._buf.extend(data)

    def hold(self):
        """Stops draining (one more read may still happen)."""
        self._reading.clear()

    def release(self):
        self._reading.set()

    def text(self):
        with self._lock:
            return self._buf.decode("utf-8", "replace")

    def close(self):
        """After the gateway has exited."""
        self.release()
        if self.wfd is not None:
            os.close(self.wfd)
            self.wfd = None
        self._thread.join(5)
        os.close(self.rfd)


class Gateway:
    def __init__(self, workdir, port, config_text, route_files):
        self.dir = workdir
        self.port = port
        self.config_path = os.path.join(workdir, "gatehouse.lua")
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.stdout_path = os.path.join(workdir, "stdout.log")
        self.proc = None
        self.returncode = None
        self.waited = False
        self.stderr_pipe = None  # a StderrPipe set before start, or the file
        self._conns = []
        os.makedirs(os.path.join(workdir, "routes"), exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(config_text)
        for name, text in route_files.items():
            with open(os.path.join(workdir, "routes", name), "w") as f:
                f.write(text)

    # -- process ------------------------------------------------------------
    def start(self):
        assert os.access(GATEHOUSE_BIN, os.X_OK), f"gateway binary not found: {GATEHOUSE_BIN}"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        err = self._err
        if self.stderr_pipe:
            err = self.stderr_pipe.wfd
        self.proc = subprocess.Popen([GATEHOUSE_BIN, "-c", self.config_path], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=err)
        if self.stderr_pipe:
            os.close(self.stderr_pipe.wfd)  # the gateway's is the only write end
            self.stderr_pipe.wfd = None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} at start:\n{self.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"gateway did not accept on {self.port} within {START_TIMEOUT}s:\n{self.stderr()}")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Exit code, or None (after SIGKILL) if it did not exit within timeout."""
        self.waited = True
        if self.stderr_pipe:
            self.stderr_pipe.release()  # its last log lines must not hold it up
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.returncode = None
        return self.returncode

    def stop(self):
        """SIGTERM, bounded wait; returns the exit code (None: had to be killed)."""
        self.close_conns()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill(self):
        if self.stderr_pipe:
            self.stderr_pipe.release()
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def alive(self):
        return self.proc.poll() is None

    # -- clients ------------------------------------------------------------
    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def connect(self, timeout=5.0):
        """A raw client connection, closed before the gateway is stopped."""
        return self.connect_to(self.port, timeout)

    def connect_to(self, port, timeout=5.0):
        """The same, to another of its ports (the admin listener's)."""
        c = RawConn("127.0.0.1", port, timeout)
        self._conns.append(c)
        return c

    def close_conns(self):
        for c in self._conns:
            c.close()
        self._conns = []

    # -- output -------------------------------------------------------------
    def stderr(self):
        if self.stderr_pipe:
            return self.stderr_pipe.text()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self):
        """Parsed JSON access-log lines seen on stderr so far."""
        out = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_access_log(self, n, timeout=5.0):
        return wait_until(lambda: (lambda l: l if len(l) >= n else None)(self.access_log()),
                          timeout, f"{n} access-log lines in:\n{self.stderr()}")

    def vm_hwm_kib(self):
        """Peak resident set of the gateway process (all threads), in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


def make_config(port, upstreams, limits=None, **extra):
    cfg = {
        "listen": [f"127.0.0.1:{port}"],
        "workers": 1,
        "access_log": "stderr",
        "limits": {"drain_timeout": 3, **(limits or {})},
        "upstreams": upstreams,
        "routes": "routes/",
    }
    cfg.update(extra)
    return "return " + lua(cfg) + "\n"


@pytest.fixture
def upstream():
    up = RecordingUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def upstream_factory():
    ups = []

    def make():
        u = RecordingUpstream().start()
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


@pytest.fixture
def gateway(tmp_path):
    """gateway(upstreams=..., routes=[route dicts] | route_files={name: src},
    limits=..., config_text=..., start=True, **other top-level keys)."""
    started = []
    counter = [0]

    def make(upstreams=None, routes=None, route_files=None, limits=None, config_text=None,
             start=True, **extra):
        counter[0] += 1
        workdir = tmp_path / f"gw{counter[0]}"
        workdir.mkdir()
        port = free_port()
        if config_text is None:
            config_text = make_config(port, upstreams or {}, limits, **extra)
        files = dict(route_files or {})
        if routes is not None:
            files["50-test.lua"] = route_file(routes)
        gw = Gateway(str(workdir), port, config_text.replace("@PORT@", str(port)), files)
        started.append(gw)  # stopped at teardown once started, by us or the test
        if start:
            gw.start()
        return gw

    yield make
    failures = []
    for gw in started:
        if gw.proc is None or gw.waited:
            continue  # the test stopped it and checked the exit itself
        was_alive = gw.alive()
        rc = gw.stop()
        if not was_alive:
            failures.append(f"gateway died during the test (exit {rc}):\n{gw.stderr()[-4000:]}")
        elif rc != 0:
            failures.append(f"gateway exit code after SIGTERM: {rc} (None = had to SIGKILL)\n{gw.stderr()[-4000:]}")
    for gw in started:
        if gw.stderr_pipe:
            gw.stderr_pipe.close()
    assert not failures, "\n".join(failures)


@pytest.fixture
def proxy(gateway, upstream):
    """proxy(**kw): a gateway with one upstream "up" -> the recording upstream
    and a catch-all route, unless routes/upstreams are given."""

    def make(routes=None, upstream_opts=None, **kw):
        ups = kw.pop("upstreams", None) or {"up": {"targets": [upstream.addr], **(upstream_opts or {})}}
        if routes is None and "route_files" not in kw:
            routes = [{"match": {"path": "/**"}, "upstream": "up"}]
        return gateway(upstreams=ups, routes=routes, **kw)

    return make


def assert_problem(resp, status):
    """resp (requests or rawhttp Response) is a gateway-made RFC 9457 error."""
    code = getattr(resp, "status_code", None) or resp.status
    body = resp.content if hasattr(resp, "content") else resp.body
    ctype = resp.headers.get("Content-Type") if hasattr(resp, "status_code") else resp.header("Content-Type")
    assert code == status, f"expected {status}, got {code}: {body[:500]!r}"
    assert ctype and ctype.split(";")[0].strip().lower() == "application/problem+json", f"Content-Type {ctype!r}"
    doc = json.loads(body)
    assert doc.get("status") == status, doc
    assert doc.get("type") == "about:blank", doc
    for k in ("title", "detail", "instance"):
        assert isinstance(doc.get(k), str), f"problem+json lacks string {k}: {doc}"
    assert doc["title"], doc
    return doc


# RFC 6750 challenges: Bearer k="v", ... parsed strictly.
_PARAM = re.compile(r'\s*([A-Za-z_]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def challenge(resp):
    """WWW-Authenticate: Bearer k="v", ... as a dict (strictly parsed)."""
    v = resp.header("WWW-Authenticate")
    assert v is not None, f"no WWW-Authenticate on {resp!r}"
    assert v[:7].lower() == "bearer ", f"not a Bearer challenge: {v!r}"
    rest, params = v[7:], {}
    while rest.strip():
        m = _PARAM.match(rest)
        assert m, f"unparseable challenge {v!r}"
        assert m.group(1) not in params, f"repeated parameter in {v!r}"
        params[m.group(1)] = m.group(2)
        rest = rest[m.end():]
    return params


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server (tests/e2e/redis_server.py) on a free 127.0.0.1
    port, started and answering PING; stopped by its own PID at teardown
    (resumed first if a test left it paused)."""
    from redis_server import RedisServer

    srv = RedisServer(str(tmp_path / "redis")).start()
    yield srv
    srv.stop()
