"""Command line and signals: -t, --version, -V, usage errors, SIGTERM drain."""

import os
import re
import signal
import socket
import subprocess

import pytest
import requests

from conftest import GATEHOUSE_BIN, free_port, make_config, route_file, wait_until

ROUTE_OK = route_file([{"match": {"path": "/**"}, "upstream": "up"}])


def run(*args, timeout=20):
    p = subprocess.run([GATEHOUSE_BIN, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write_conf(tmp_path, config_text, routes=None):
    (tmp_path / "routes").mkdir(exist_ok=True)
    (tmp_path / "gatehouse.lua").write_text(config_text)
    for name, text in (routes or {"10-ok.lua": ROUTE_OK}).items():
        (tmp_path / "routes" / name).write_text(text)
    return str(tmp_path / "gatehouse.lua")


def valid_config():
    return make_config(18080, {"up": {"targets": ["127.0.0.1:18081"]}})


def check_fails(tmp_path, config_text, file, line, words, routes=None):
    path = write_conf(tmp_path, config_text, routes)
    rc, out, err = run("-t", "-c", path)
    assert rc == 1, f"exit {rc}, stderr: {err}"
    where = f"{file}:{line}:"
    assert where in err, f"expected {where!r} in stderr: {err!r}"
    for w in words:
        assert w.lower() in err.lower(), f"expected {w!r} in stderr: {err!r}"
    assert "configuration is valid" not in out + err
    return err


def test_check_valid_config(tmp_path):
    path = write_conf(tmp_path, valid_config())
    rc, out, err = run("-t", "-c", path)
    assert rc == 0, err
    assert f"gatehouse: {path}: configuration is valid" in out + err


def test_check_does_not_start_serving(tmp_path):
    # -t must not bind or block: it returns even though the port is taken
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        cfg = make_config(port, {"up": {"targets": ["127.0.0.1:18081"]}})
        rc, out, err = run("-t", "-c", write_conf(tmp_path, cfg))
    assert rc == 0, err


def test_check_lua_syntax_error(tmp_path):
    cfg = 'return {\n  listen = { "127.0.0.1:18080" },\n  workers = = 1,\n  routes = "routes/",\n}\n'
    check_fails(tmp_path, cfg, "gatehouse.lua", 3, [])


def test_check_unknown_key(tmp_path):
    cfg = ('return {\n  listen = { "127.0.0.1:18080" },\n  workers = 1,\n'
           '  upstreams = { up = { targets = { "127.0.0.1:18081" } } },\n'
           '  routes = "routes/",\n  acces_log = "stderr",\n}\n')
    check_fails(tmp_path, cfg, "gatehouse.lua", 6, ["acces_log"])


def test_check_unknown_nested_key(tmp_path):
    cfg = ('return {\n  listen = { "127.0.0.1:18080" },\n  limits = {\n    max_bodyy = 10,\n  },\n'
           '  upstreams = { up = { targets = { "127.0.0.1:18081" } } },\n  routes = "routes/",\n}\n')
    check_fails(tmp_path, cfg, "gatehouse.lua", 4, ["max_bodyy"])


@pytest.mark.parametrize("addr", ["127.0.0.1:99999", "127.0.0.1", "not an address:80", "127.0.0.1:http:80"])
def test_check_bad_listen_address(tmp_path, addr):
    cfg = ('return {\n  workers = 1,\n  listen = { "%s" },\n'
           '  upstreams = { up = { targets = { "127.0.0.1:18081" } } },\n  routes = "routes/",\n}\n' % addr)
    check_fails(tmp_path, cfg, "gatehouse.lua", 3, ["listen"])


def test_check_unknown_upstream_in_route(tmp_path):
    routes = {"20-bad.lua": 'local gh = require "gatehouse"\n\n'
                            'return gh.route { match = { path = "/x/**" }, upstream = "nope" }\n'}
    check_fails(tmp_path, valid_config(), "20-bad.lua", 3, ["nope"], routes=routes)


def test_check_route_file_syntax_error(tmp_path):
    routes = {"30-syntax.lua": 'local gh = require "gatehouse"\nreturn gh.route {\n'
                               '  match = { path = "/x/**" },\n  upstream = "up"\n  strip = "/x",\n}\n'}
    check_fails(tmp_path, valid_config(), "30-syntax.lua", 5, [], routes=routes)


def test_check_config_file_that_never_returns(tmp_path):
    # gatehouse.lua runs under lua.load_budget's default (10 s): it has not
    # said otherwise yet; the JIT is off for it, so a hot loop is stopped too
    text = "local n = 0\nwhile true do n = n + 1 end\n" + valid_config()
    check_fails(tmp_path, text, "gatehouse.lua", 2, ["lua.load_budget"])


def test_check_unknown_route_key(tmp_path):
    routes = {"40-key.lua": 'local gh = require "gatehouse"\nreturn gh.route {\n'
                            '  match = { path = "/x/**" },\n  upstream = "up",\n  stirp = "/x",\n}\n'}
    check_fails(tmp_path, valid_config(), "40-key.lua", 5, ["stirp"], routes=routes)


def test_check_missing_file(tmp_path):
    missing = str(tmp_path / "nope.lua")
    rc, out, err = run("-t", "-c", missing)
    assert rc == 1, err
    assert "nope.lua" in err


def test_version():
    rc, out, err = run("--version")
    assert rc == 0
    assert re.search(r"^gatehouse 0\.1\.0$", out + err, re.M), out + err


def test_versions_of_libraries():
    rc, out, err = run("-V")
    assert rc == 0
    text = (out + err).lower()
    assert "gatehouse 0.1.0" in text
    for lib in ("libuv", "llhttp", "openssl", "jansson", "luajit"):
        assert lib in text, f"-V does not mention {lib}: {text!r}"


def test_help():
    rc, out, err = run("--help")
    assert rc == 0
    assert "-c" in out + err and "-t" in out + err


@pytest.mark.parametrize("args", [["--bogus"], ["-c"], ["-t", "-c"], ["-x", "-c", "/dev/null"]])
def test_usage_error_exit_2(args):
    rc, out, err = run(*args)
    assert rc == 2, f"{args}: exit {rc}, stderr {err!r}"
    assert err.strip(), "a usage error should say what is wrong"


def test_startup_line(proxy):
    gw = proxy()
    wait_until(lambda: "listening on" in gw.stderr(), 5, "the startup line")
    # the spec's line, possibly behind the text log prefix "gatehouse[info]: "
    assert re.search(rf"^(gatehouse\[info\]: )?gatehouse 0\.1\.0: listening on 127\.0\.0\.1:{gw.port} "
                     rf"\(1 workers?\)$",
                     gw.stderr(), re.M), gw.stderr()


def test_sigterm_finishes_in_flight_request(proxy, upstream):
    gw = proxy()
    c = gw.connect(timeout=15)
    c.request("GET", "/hold?key=drain")
    upstream.wait_for(1)
    gw.signal(signal.SIGTERM)

    def refused():  # stops accepting new connections while draining
        try:
            socket.create_connection(("127.0.0.1", gw.port), timeout=0.5).close()
            return False
        except OSError:
            return True

    wait_until(refused, 5, "the listener to close after SIGTERM")
    assert gw.alive(), "exited before the in-flight request finished"
    upstream.release("drain")
    r = c.read_response(timeout=10)
    assert r.status == 200 and r.complete and r.json()["target"] == "/hold?key=drain"
    c.close()
    assert gw.wait_exit(10) == 0


def test_sigint_exits_0(proxy):
    gw = proxy()
    gw.signal(signal.SIGINT)
    assert gw.wait_exit(10) == 0


def test_idle_keepalive_connections_do_not_delay_shutdown(proxy, upstream):
    gw = proxy(limits={"drain_timeout": 30, "idle_timeout": 60})
    c = gw.connect()
    c.request("GET", "/echo")
    assert c.read_response().status == 200
    gw.signal(signal.SIGTERM)  # c stays open and idle
    assert gw.wait_exit(10) == 0, "an idle keep-alive connection held up shutdown"
    assert c.closed_by_peer(2)


def test_drain_deadline_bounds_shutdown(proxy, upstream):
    gw = proxy(limits={"drain_timeout": 1})
    c = gw.connect(timeout=15)
    c.request("GET", "/hold?key=never")
    upstream.wait_for(1)
    gw.signal(signal.SIGTERM)
    rc = gw.wait_exit(10)
    upstream.release("never")
    assert rc == 0, f"exit {rc} (None = still running 10 s after SIGTERM with drain_timeout 1)"
    try:
        r = c.read_response(timeout=5)
        assert r.status >= 500 or not r.complete, r
    except Exception:
        assert c.eof


def test_two_workers_and_two_listeners(gateway, upstream):
    p1, p2 = free_port(), free_port()
    cfg = make_config(p1, {"up": {"targets": [upstream.addr]}}).replace(
        f'"127.0.0.1:{p1}",', f'"127.0.0.1:{p1}",\n    "127.0.0.1:{p2}",').replace("workers = 1", "workers = 2")
    gw = gateway(config_text=cfg, routes=[{"match": {"path": "/**"}, "upstream": "up"}], start=False)
    gw.port = p1
    gw.start()
    wait_until(lambda: gw.stderr().count("listening on") >= 1, 5, "the startup line")
    for port in (p1, p2):
        for i in range(4):
            r = requests.get(f"http://127.0.0.1:{port}/echo?i={i}", timeout=5)
            assert r.status_code == 200
            assert any(h == ["X-Forwarded-Port", str(port)] for h in r.json()["headers"])
    assert len(upstream.wait_for(8)) == 8
    assert "(2 workers)" in gw.stderr(), gw.stderr()


def test_workers_auto(proxy, upstream):
    gw = proxy(workers="auto")
    wait_until(lambda: "listening on" in gw.stderr(), 5, "the startup line")
    m = re.search(r"listening on 127\.0\.0\.1:\d+ \((\d+) workers?\)", gw.stderr())
    assert m, gw.stderr()
    assert int(m.group(1)) in {os.cpu_count(), len(os.sched_getaffinity(0))}
    assert requests.get(gw.url("/echo"), timeout=5).status_code == 200
