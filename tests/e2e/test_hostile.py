"""Hostile and malformed requests. Each gets the status README gives,
with a problem+json body, and nothing of it reaches the upstream. After each
refusal a valid request on a fresh connection shows the gateway was able to
forward all along, so "nothing reached the upstream" is not vacuous."""

import socket
import time

import pytest

from conftest import StderrPipe, assert_problem, free_port

LIMITS = {"max_uri": 1024, "max_headers": 20, "max_header_bytes": 4096, "max_body": 1000}


@pytest.fixture
def gw(proxy):
    return proxy(limits=LIMITS)


def refused(gw, upstream, raw, status, close=True):
    """Sends raw on a new connection; the answer must be a problem+json
    `status`, the upstream must have received nothing, and (for protocol
    errors) the connection must be closed."""
    c = gw.connect()
    c.send(raw)
    r = c.read_response()
    doc = assert_problem(r, status)
    if close:
        assert "close" in (r.header("Connection") or "").lower(), r.headers
        assert c.closed_by_peer(5), "connection left open after a protocol error"
    c.close()
    assert upstream.bytes_received == 0 and upstream.started == [], \
        f"refused request reached the upstream: {upstream.started}"
    still_forwards(gw, upstream)
    return doc


def still_forwards(gw, upstream):
    """A valid request now reaches the upstream, and it is the only thing that did."""
    with gw.connect() as c:
        c.request("GET", "/echo?control=1")
        assert c.read_response().status == 200
    reqs = upstream.wait_for(1)
    assert [q.target for q in reqs] == ["/echo?control=1"], reqs
    assert [q.target for q in upstream.started] == ["/echo?control=1"], upstream.started


SMUGGLE = (b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n")

BAD_400 = {
    "cl_and_te": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" % len(SMUGGLE) + SMUGGLE,
    "te_and_cl": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(SMUGGLE) + SMUGGLE,
    "duplicate_cl_differing": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
                              b"Content-Length: 6\r\n\r\nhello!",
    "cl_list_differing": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "cl_not_a_number": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5x\r\n\r\nhello",
    "cl_negative": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: -5\r\n\r\nhello",
    "te_gzip": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    "te_chunked_then_gzip": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                            b"5\r\nhello\r\n0\r\n\r\n",
    "te_two_headers_last_gzip": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n"
                                b"Transfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_identity": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: identity\r\n\r\nhello",
    "te_xchunked": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: xchunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n",
    "obs_fold": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Folded: first\r\n  continued\r\n\r\n",
    "obs_fold_tab": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Folded: first\r\n\tcontinued\r\n\r\n",
    "nul_in_value": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x00b\r\n\r\n",
    "control_in_value": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x01b\r\n\r\n",
    "escape_in_value": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x1b[31mb\r\n\r\n",
    "del_in_value": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x7fb\r\n\r\n",
    "bare_cr_in_value": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\rX-Injected: 1\r\n\r\n",
    "space_in_name": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nBad Name: x\r\n\r\n",
    "space_before_colon": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length : 0\r\n\r\n",
    "paren_in_name": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX(y): z\r\n\r\n",
    "empty_name": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n: novalue\r\n\r\n",
    "nul_in_name": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-\x00A: 1\r\n\r\n",
    "no_colon": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nJustAName\r\n\r\n",
    "missing_host": b"GET /echo HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
    "two_hosts_same": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nHost: gw.test\r\n\r\n",
    "two_hosts_differing": b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\n\r\n",
    "space_in_target": b"GET /ec ho HTTP/1.1\r\nHost: gw.test\r\n\r\n",
    "extra_token_in_request_line": b"GET /echo HTTP/1.1 extra\r\nHost: gw.test\r\n\r\n",
    "lowercase_method_garbage": b"G@T /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n",
    "http09": b"GET /echo\r\n\r\n",
    "garbage_line": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_400))
def test_malformed_400(gw, upstream, name):
    refused(gw, upstream, BAD_400[name], 400)


def test_smuggled_request_never_reaches_upstream(gw, upstream):
    refused(gw, upstream, BAD_400["cl_and_te"], 400)
    assert all("smuggled" not in q.target for q in upstream.started)


def test_uri_too_long_414(gw, upstream):
    refused(gw, upstream, b"GET /echo?" + b"a" * 1100 + b" HTTP/1.1\r\nHost: gw.test\r\n\r\n", 414)


def test_uri_at_limit_passes(gw, upstream):
    target = "/echo?" + "a" * (1024 - len("/echo?"))
    with gw.connect() as c:
        c.request("GET", target)
        assert c.read_response().status == 200
    assert upstream.wait_for(1)[0].target == target


def test_too_many_headers_431(gw, upstream):
    hdrs = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(25))
    refused(gw, upstream, b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + hdrs + b"\r\n", 431)


def test_headers_too_large_431(gw, upstream):
    refused(gw, upstream, b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431)


def test_headers_within_limits_pass(gw, upstream):
    hdrs = [(f"X-H{i}", "v" * 100) for i in range(15)]
    with gw.connect() as c:
        c.request("GET", "/echo", headers=hdrs)
        assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert all(req.header(k) == v for k, v in hdrs)


def test_body_over_max_body_content_length_413(gw, upstream):
    raw = b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001
    refused(gw, upstream, raw, 413, close=False)


def test_body_over_max_body_with_expect_gets_no_100(gw, upstream):
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    r = c.read_response()
    assert r.interim == [], "100 Continue sent for a body that will be refused"
    assert_problem(r, 413)
    c.close()
    assert upstream.started == [] and upstream.bytes_received == 0
    still_forwards(gw, upstream)


def test_body_at_max_body_passes(gw, upstream):
    with gw.connect() as c:
        c.request("POST", "/echo", body=b"y" * 1000)
        assert c.read_response().status == 200
    assert upstream.wait_for(1)[0].body == b"y" * 1000


def test_body_over_max_body_chunked_413(gw, upstream):
    """Enforced while streaming: the upstream may have seen the head and part
    of the body, but never a complete request; the client gets a 413 or a
    closed connection, never a 2xx."""
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    status = None
    try:
        for _ in range(20):  # 20 x 200 bytes = 4000 > max_body 1000
            c.send(b"c8\r\n" + b"z" * 200 + b"\r\n")
        c.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        r = c.read_response()
        status = r.status
        assert_problem(r, 413)
    except Exception as e:  # a closed connection is acceptable
        if status is not None:
            raise
        assert c.eof, f"neither a 413 nor a closed connection: {e!r}"
    c.close()
    time.sleep(0.3)  # let anything in flight land before looking
    assert upstream.requests == [], f"upstream got a complete oversized request: {upstream.requests}"
    for q in upstream.started:
        assert not q.complete


BAD_CHUNKS = {
    "not_hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "space_after_size": b"5 \r\nhello\r\n0\r\n\r\n",
    "lf_only": b"5\nhello\n0\n\n",
    "size_overflow": b"fffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "data_longer_than_size": b"3\r\nhello\r\n0\r\n\r\n",
    "negative": b"-5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CHUNKS))
def test_malformed_chunked_body_400(gw, upstream, name):
    """A body error is found while streaming: the upstream may have seen the
    head, but never a complete request; the client gets 400 (or a close)."""
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n" + BAD_CHUNKS[name])
    try:
        r = c.read_response()
    except Exception:
        assert c.eof, "neither a 400 nor a closed connection"
    else:
        assert_problem(r, 400)
        assert c.closed_by_peer(5)
    c.close()
    time.sleep(0.3)
    assert upstream.requests == [], f"upstream got a complete request from a broken body: {upstream.requests}"


# -- timeouts ------------------------------------------------------------------

def test_slow_headers_408(proxy, upstream):
    gw = proxy(limits={"header_timeout": 0.5})
    c = gw.connect()
    c.send(b"GET /echo HTTP/1.1\r\nHost: gw.t")
    r = c.read_response(timeout=5)
    assert_problem(r, 408)
    assert c.closed_by_peer(5)
    assert upstream.started == [] and upstream.bytes_received == 0


def test_slowloris_drip_still_408(proxy, upstream):
    """header_timeout bounds the whole head, not the gap between bytes."""
    gw = proxy(limits={"header_timeout": 0.5})
    c = gw.connect()
    c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n")
    c.sock.setblocking(False)
    got = b""
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        try:
            c.sock.send(b"X")
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
        try:
            data = c.sock.recv(65536)
            if not data:
                break
            got += data
        except BlockingIOError:
            pass
        except ConnectionResetError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a dripping client kept the connection open for 6s with header_timeout 0.5")
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:200]
    assert upstream.started == []


def test_slow_body_408(proxy, upstream):
    gw = proxy(limits={"body_timeout": 0.5})
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10\r\n\r\nabc")
    r = c.read_response(timeout=5)
    assert_problem(r, 408)
    assert c.closed_by_peer(5)
    time.sleep(0.3)
    assert upstream.requests == [], "an incomplete body was completed towards the upstream"


def test_idle_keepalive_closed(proxy, upstream):
    gw = proxy(limits={"idle_timeout": 0.5})
    c = gw.connect()
    c.request("GET", "/echo")
    assert c.read_response().status == 200
    assert c.closed_by_peer(5), "idle keep-alive connection not closed after idle_timeout"
    assert len(upstream.requests) == 1


def test_silent_connection_closed(proxy, upstream):
    gw = proxy(limits={"header_timeout": 0.5, "idle_timeout": 0.5})
    c = gw.connect()
    assert c.closed_by_peer(5), "a connection that never sends anything is never closed"
    assert upstream.started == []


def test_busy_connection_not_closed_by_idle_timeout(proxy, upstream):
    """idle_timeout must not cut a request that is waiting on the upstream."""
    gw = proxy(limits={"idle_timeout": 0.5})
    c = gw.connect()
    c.request("GET", "/slow?ms=1200")
    r = c.read_response(timeout=5)
    assert r.status == 200 and r.complete



def test_keepalive_request_that_arrived_while_the_worker_was_held_up_is_served(proxy, upstream):
    """The worker is held up past a keep-alive connection's idle_timeout
    (writing its log to a stderr pipe nobody reads, from a callback, as a
    stalled journald would). The request that arrived on that connection
    meanwhile is served, not dropped with the connection as idle."""
    dead = free_port()  # nothing listens: every request there logs a warning
    gw = proxy(upstreams={"up": {"targets": [upstream.addr]}, "dead": {"targets": [f"127.0.0.1:{dead}"]}},
               routes=[{"name": "dead", "match": {"path": "/dead/**"}, "upstream": "dead"},
                       {"name": "all", "match": {"path": "/**"}, "upstream": "up"}],
               limits={"idle_timeout": 5}, access_log="off", start=False)
    gw.stderr_pipe = StderrPipe()
    gw.start()
    keep = gw.connect()
    keep.request("GET", "/echo")
    assert keep.read_response().status == 200  # idle from here: its 5 s start
    t_idle = time.monotonic()
    gw.stderr_pipe.hold()
    other = gw.connect()
    stalled = False
    for _ in range(200):  # a warning a request: the pipe fills within a few dozen
        other.request("GET", "/dead/x")
        try:
            r = other.read_response(timeout=1.0)
        except socket.timeout:
            stalled = True  # the worker is stuck writing its log
            break
        assert r.status == 502, r
        if r.header("Connection") == "close":
            other = gw.connect()
    assert stalled, "the worker never blocked on its log"
    assert time.monotonic() - t_idle < 4.0, "filling the pipe took too long for the 5 s to mean anything"
    keep.request("GET", "/echo")  # arrives during the stall
    time.sleep(max(0.0, t_idle + 6.0 - time.monotonic()))  # past its idle_timeout
    gw.stderr_pipe.release()
    r = keep.read_response(timeout=5)
    assert r.status == 200, r
    assert len(upstream.requests) == 2
    # a keep-alive connection that really is idle still closes
    assert keep.closed_by_peer(8), "idle keep-alive connection not closed after idle_timeout"



MORE_400 = {
    # README: "differing/duplicate Content-Length"
    "duplicate_cl_same": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
                         b"Content-Length: 5\r\n\r\nhello",
    "cl_plus_sign": b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: +5\r\n\r\nhello",
    "whitespace_before_first_header": b"GET /echo HTTP/1.1\r\n X-Evil: 1\r\nHost: gw.test\r\n\r\n",
    "lowercase_method": b"get /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MORE_400))
def test_more_malformed_400(gw, upstream, name):
    refused(gw, upstream, MORE_400[name], 400)


@pytest.mark.parametrize("host", ["a b", "user@evil.example", "evil.example/x", "evil.example:80:81"])
def test_invalid_host_value_400(gw, upstream, host):
    """RFC 9112 3.2: a server MUST answer 400 to a Host with an invalid field
    value (README names missing/duplicate Host; routing keys on Host)."""
    refused(gw, upstream, b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode(), 400)


def test_unsupported_http_version_refused(gw, upstream):
    """RFC 9110 15.6.6: "HTTP/2.0" in an HTTP/1 request line is not served as 1.1."""
    c = gw.connect()
    c.send(b"GET /echo HTTP/2.0\r\nHost: gw.test\r\n\r\n")
    r = c.read_response()
    assert r.status in (400, 505), r
    assert_problem(r, r.status)
    c.close()
    assert upstream.started == []


# -- desync: a body the gateway refuses must never be read as the next request --

INNER = b"GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def never_smuggled(gw, upstream, raw, status):
    """Sends raw (an answered-with-error request whose body is a request)
    followed by a valid request on the same connection."""
    c = gw.connect()
    c.send(raw + b"GET /echo?next=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    r = c.read_response()
    assert_problem(r, status)
    # Either the connection is closed, or the body was skipped and the next
    # request is the one that follows it.
    try:
        r2 = c.read_response(timeout=3)
    except Exception:
        r2 = None
    if r2 is not None:
        assert r2.status == 200 and r2.json()["target"] == "/echo?next=1", r2
    c.close()
    time.sleep(0.2)
    assert all("smuggled" not in q.target for q in upstream.started), upstream.started


def test_404_with_body_not_read_as_request(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/echo"}, "upstream": "up"}])
    never_smuggled(gw, upstream, b"POST /nope HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                   % len(INNER) + INNER, 404)


def test_404_with_chunked_body_not_read_as_request(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/echo"}, "upstream": "up"}])
    never_smuggled(gw, upstream, b"POST /nope HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"%x\r\n%s\r\n0\r\n\r\n" % (len(INNER), INNER), 404)


def test_413_body_not_read_as_request(proxy, upstream):
    gw = proxy(limits={"max_body": 10})
    never_smuggled(gw, upstream, b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                   % len(INNER) + INNER, 413)


def test_400_path_with_body_not_read_as_request(proxy, upstream):
    gw = proxy()
    never_smuggled(gw, upstream, b"POST /a/%%2F/b HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                   % len(INNER) + INNER, 400)


def test_404_with_expect_gets_no_100(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/echo"}, "upstream": "up"}])
    c = gw.connect()
    c.send(b"POST /nope HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
    r = c.read_response()
    assert r.interim == [], "100 Continue for a request that has no route"
    assert_problem(r, 404)


def test_pipelined_valid_then_malformed(gw, upstream):
    """The valid request ahead of a malformed one is answered first."""
    c = gw.connect()
    c.send(b"GET /echo?first=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
           b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\x00b\r\n\r\n"
           b"GET /echo?third=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    r1 = c.read_response()
    assert r1.status == 200 and r1.json()["target"] == "/echo?first=1"
    assert_problem(c.read_response(), 400)
    assert c.closed_by_peer(5)
    time.sleep(0.2)
    assert [q.target for q in upstream.started] == ["/echo?first=1"]


def test_steady_slow_body_within_body_timeout_passes(proxy, upstream):
    """body_timeout bounds the gap between reads, not the whole body."""
    gw = proxy(limits={"body_timeout": 1.0})
    c = gw.connect(timeout=10)
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 16\r\n\r\n")
    for _ in range(8):  # 8 x 0.2 s: longer than body_timeout in total, never a 1 s gap
        time.sleep(0.2)
        c.send(b"ab")
    r = c.read_response()
    assert r.status == 200 and r.json()["body"] == "ab" * 8


# -- limits at their boundaries -------------------------------------------------

def test_max_headers_boundary(gw, upstream):
    ok = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(19))  # + Host = 20 = max_headers
    with gw.connect() as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + ok + b"\r\n")
        assert c.read_response().status == 200
    with gw.connect() as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n" + ok + b"X-One-More: 1\r\n\r\n")
        assert_problem(c.read_response(), 431)
    assert len(upstream.started) == 1


def test_max_uri_boundary(gw, upstream):
    with gw.connect() as c:
        c.request("GET", "/echo?" + "b" * (1025 - len("/echo?")))
        assert_problem(c.read_response(), 414)
    assert upstream.started == []


def test_chunked_body_at_max_body_passes(gw, upstream):
    with gw.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1f4\r\n" + b"q" * 500 + b"\r\n1f4\r\n" + b"r" * 500 + b"\r\n0\r\n\r\n")
        assert c.read_response().status == 200
    assert upstream.wait_for(1)[0].body == b"q" * 500 + b"r" * 500
