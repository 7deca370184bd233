"""The harness itself: the recording upstream, driven directly (no gateway).
If these fail, every other e2e result is meaningless."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

from rawhttp import RawConn
from recording_upstream import RecordingUpstream, big_sha256

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def up():
    u = RecordingUpstream().start()
    yield u
    u.stop()


def test_records_method_target_headers_body(up):
    with RawConn("127.0.0.1", up.port) as c:
        c.send(b"POST /echo?a=%2F&b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        r = c.read_response()
    assert r.status == 200
    (req,) = up.wait_for(1)
    assert (req.method, req.target, req.path, req.query) == ("POST", "/echo?a=%2F&b=1", "/echo", "a=%2F&b=1")
    assert req.headers == [("Host", "x"), ("X-A", "1"), ("x-a", "2"), ("Content-Length", "5")]
    assert req.header_all("x-a") == ["1", "2"]
    assert req.body == b"hello" and req.framing == "length"
    echoed = r.json()
    assert echoed["target"] == "/echo?a=%2F&b=1" and echoed["body"] == "hello"


def test_chunked_body_keepalive_and_pipelining(up):
    with RawConn("127.0.0.1", up.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
               b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /no-body/204 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /big?size=100 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response("HEAD")
        r5 = c.read_response()
    assert [r.status for r in (r1, r2, r3, r4, r5)] == [200, 201, 204, 200, 304]
    assert r4.header("Content-Length") == "100" and r4.body == b""
    reqs = up.wait_for(5)
    assert reqs[0].body == b"abcde" and reqs[0].framing == "chunked" and reqs[0].trailers == [("X-T", "1")]
    assert {r.conn_id for r in reqs} == {reqs[0].conn_id} and [r.seq for r in reqs] == [0, 1, 2, 3, 4]
    assert up.connections == 1


def test_big_download_both_framings(up):
    for mode in ("length", "chunked"):
        r = requests.get(f"http://{up.addr}/big?size=300001&mode={mode}", timeout=10)
        assert len(r.content) == 300001
        assert hashlib.sha256(r.content).hexdigest() == big_sha256(300001)
        assert ("chunked" in r.headers.get("Transfer-Encoding", "")) == (mode == "chunked")


def test_failure_paths(up):
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/close-mid-body")
        r = c.read_response()
        assert r.status == 200 and not r.complete and r.body == b"x" * 10
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/drop")
        assert c.closed_by_peer(5) and c.buf == b""
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/slow?ms=50")
        assert c.read_response().status == 200


def test_expect_hold_and_set_response(up):
    up.set_response("/fixed", 203, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"fixed")
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/fixed")
        r = c.read_response()
    assert r.status == 203 and r.header_all("Set-Cookie") == ["a=1", "b=2"] and r.body == b"fixed"

    with RawConn("127.0.0.1", up.port) as c:
        c.send(b"PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert c.read_response(stop_at_interim=True).status == 100
        c.send(b"ok")
        assert c.read_response().json()["body"] == "ok"

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", requests.get(f"http://{up.addr}/hold?key=k", timeout=10)))
    t.start()
    up.wait_for(3)
    assert "r" not in out
    up.release("k")
    t.join(10)
    assert out["r"].status_code == 200


def test_drop_reused_and_idle_close(up):
    up.drop_reused = True
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/echo")
        assert c.read_response().status == 200
        c.request("GET", "/echo")
        assert c.closed_by_peer(5)
    up.drop_reused = False
    up.idle_close = 0.2
    with RawConn("127.0.0.1", up.port) as c:
        c.request("GET", "/echo")
        assert c.read_response().status == 200
        assert c.closed_by_peer(5)


def test_standalone_prints_port_and_serves():
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "recording_upstream.py"), "--port", "0", "--quiet"],
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        r = requests.get(f"http://127.0.0.1:{port}/echo", timeout=5)
        assert json.loads(r.content)["path"] == "/echo"
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
