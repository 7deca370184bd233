"""When the upstream misbehaves: refused, silent, slow, dying mid-body, or
closing pooled connections behind the gateway's back."""

import socket

import pytest

from conftest import assert_problem, free_port, wait_until


def test_connection_refused_502(gateway):
    dead = free_port()  # nothing listens there
    gw = gateway(upstreams={"up": {"targets": [f"127.0.0.1:{dead}"]}},
                 routes=[{"match": {"path": "/**"}, "upstream": "up"}])
    with gw.connect() as c:
        c.request("GET", "/anything")
        doc = assert_problem(c.read_response(), 502)
    assert doc["instance"] == "/anything"
    assert gw.alive()


@pytest.fixture
def blackhole():
    """A 127.0.0.1 port whose accept queue is full, so a connect never completes."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fill = []
    for _ in range(8):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            fill.append(s)
        except socket.timeout:
            s.close()
            break
    else:
        pytest.skip("cannot make a connect hang on this kernel")
    yield port
    for s in fill:
        s.close()
    lst.close()


def test_connect_timeout_504(gateway, blackhole):
    gw = gateway(upstreams={"up": {"targets": [f"127.0.0.1:{blackhole}"], "connect_timeout": 0.5}},
                 routes=[{"match": {"path": "/**"}, "upstream": "up"}])
    with gw.connect() as c:
        c.request("GET", "/hang")
        assert_problem(c.read_response(timeout=8), 504)


def test_response_timeout_504(proxy, upstream):
    gw = proxy(upstream_opts={"read_timeout": 0.5})
    with gw.connect() as c:
        c.request("GET", "/slow?ms=3000")
        assert_problem(c.read_response(timeout=8), 504)
    assert len(upstream.started) == 1  # it was sent once, and not retried


def test_gap_in_response_body_closes_client(proxy, upstream):
    """read_timeout after the head was relayed: the only honest signal left
    is closing the client connection before the end of the message."""
    gw = proxy(upstream_opts={"read_timeout": 0.5})
    with gw.connect() as c:
        c.request("GET", "/stall-body?ms=3000")
        r = c.read_response(timeout=8)
        assert r.status == 200
        assert not r.complete, f"a stalled body was made to look complete: {r.body!r}"
        assert c.eof


def test_upstream_closing_mid_body_closes_client(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/close-mid-body")
        r = c.read_response(timeout=8)
        assert r.status == 200
        assert not r.complete, f"truncated upstream body relayed as complete ({r.framing}): {r.body!r}"
        assert r.body == b"x" * 10
        assert c.eof
    assert gw.alive()


def test_upstream_dropping_without_response_502(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/drop")
        assert_problem(c.read_response(timeout=8), 502)
    assert 1 <= len(upstream.started) <= 2  # at most one retry


def test_upstream_reset_without_response_502(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/reset")
        assert_problem(c.read_response(timeout=8), 502)
    assert 1 <= len(upstream.started) <= 2  # at most one retry


def test_garbage_response_502(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/garbage")
        r = c.read_response(timeout=8)
        assert_problem(r, 502)
        assert b"NOT HTTP" not in r.body


def test_stale_pooled_connection_closed_while_idle(proxy, upstream):
    """The upstream closes idle keep-alive connections after 0.2 s; the next
    request must still succeed."""
    upstream.idle_close = 0.2
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/echo?n=1")
        assert c.read_response().status == 200
        upstream.wait_for(1)
        wait_until(lambda: upstream.open_connections() == 0, 5, "the upstream to close its idle side")
        c.request("GET", "/echo?n=2")
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?n=2"


def test_stale_pooled_connection_retried_once(proxy, upstream):
    """The race a pool cannot see coming: the reused connection takes the
    request and closes without a byte of response. An idempotent request
    without a body is retried once on a fresh connection."""
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/echo?n=1")
        assert c.read_response().status == 200
        upstream.wait_for(1)
        upstream.drop_reused = True
        c.request("GET", "/echo?n=2")
        r = c.read_response(timeout=8)
        assert r.status == 200, r
        assert r.json()["target"] == "/echo?n=2" and r.json()["seq"] == 0
    tries = [q for q in upstream.requests if q.target == "/echo?n=2"]
    assert 1 <= len(tries) <= 2 and tries[-1].seq == 0


def test_post_with_body_never_replayed(proxy, upstream):
    """Same race for a POST with a body: it must not be sent twice."""
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/echo?n=1")
        assert c.read_response().status == 200
        upstream.wait_for(1)
        upstream.drop_reused = True
        c.request("POST", "/echo?n=2", body=b"pay once")
        r = c.read_response(timeout=8)
    tries = [q for q in upstream.started if q.target == "/echo?n=2"]
    assert len(tries) == 1, f"POST with a body sent {len(tries)} times"
    if tries[0].seq > 0:  # it went over the reused connection, which dropped it
        assert_problem(r, 502)
    else:
        assert r.status == 200


def test_gateway_survives_upstream_failures(proxy, upstream):
    gw = proxy(upstream_opts={"read_timeout": 0.5})
    for path in ("/drop", "/close-mid-body", "/garbage", "/slow?ms=1500", "/stall-body?ms=1500"):
        with gw.connect() as c:
            c.request("GET", path)
            try:
                c.read_response(timeout=8)
            except Exception:
                pass
    with gw.connect() as c:
        c.request("GET", "/echo?after=1")
        assert c.read_response().status == 200
    assert gw.alive()


def test_client_abort_never_desyncs_pooled_connection(proxy, upstream):
    """A client that goes away while its response is pending must not leave a
    stale response on a pooled connection for the next client to receive."""
    gw = proxy()
    for i in range(3):
        a = gw.connect()
        a.request("GET", f"/slow?ms=300&abandoned={i}")
        upstream.wait_started(i * 2 + 1)
        a.close()
        with gw.connect() as b:
            b.request("GET", f"/echo?b={i}")
            r = b.read_response(timeout=8)
            assert r.status == 200 and r.json()["target"] == f"/echo?b={i}", r
    with gw.connect() as c:  # after the slow answers have all been produced
        for i in range(3):
            c.request("GET", f"/echo?c={i}")
            assert c.read_response(timeout=8).json()["target"] == f"/echo?c={i}"


def test_client_abort_mid_upload_never_reaches_upstream_complete(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/echo?warm=1")  # leaves a pooled upstream connection
        assert c.read_response().status == 200
    a = gw.connect()
    a.send(b"POST /echo?partial=1 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100000\r\n\r\n" + b"p" * 1000)
    upstream.wait_started(2)
    a.close()
    for i in range(3):
        with gw.connect() as b:
            b.request("GET", f"/echo?after={i}")
            r = b.read_response(timeout=8)
            assert r.status == 200 and r.json()["target"] == f"/echo?after={i}", r
    assert all(q.target != "/echo?partial=1" for q in upstream.requests), "a truncated upload was completed"
