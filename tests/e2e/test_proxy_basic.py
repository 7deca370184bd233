"""Plain proxying: what the client sends, what reaches the upstream, what
comes back. Each test states what the recording upstream must have seen."""

import hashlib
import re
import threading

import requests

from conftest import assert_problem, wait_until
from recording_upstream import big_sha256

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_get_proxied_with_status_headers_and_body(proxy, upstream):
    upstream.set_response("/thing", 201, [("Content-Type", "text/plain"), ("X-From-Upstream", "yes")], b"thing body")
    gw = proxy()
    r = requests.get(gw.url("/thing?x=1"), timeout=5)
    assert r.status_code == 201
    assert r.content == b"thing body"
    assert r.headers["X-From-Upstream"] == "yes"
    (req,) = upstream.wait_for(1)
    assert req.method == "GET" and req.target == "/thing?x=1" and req.body == b""
    assert req.version == "HTTP/1.1"


def test_post_body_arrives_intact(proxy, upstream):
    gw = proxy()
    body = bytes(range(256)) * 100
    r = requests.post(gw.url("/echo"), data=body, headers={"Content-Type": "application/octet-stream"}, timeout=5)
    assert r.status_code == 200
    (req,) = upstream.wait_for(1)
    assert req.method == "POST" and req.body == body
    assert req.header("Content-Type") == "application/octet-stream"
    assert req.header("Content-Length") == str(len(body)) and not req.has("Transfer-Encoding")


def test_client_keepalive_several_requests_one_socket(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    for i in range(5):
        c.request("GET", f"/echo?i={i}")
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == f"/echo?i={i}"
        assert r.header("Connection") != "close"
    assert not c.eof
    assert [q.target for q in upstream.wait_for(5)] == [f"/echo?i={i}" for i in range(5)]


def test_upstream_connections_are_reused(proxy, upstream):
    gw = proxy()
    n = 6
    for i in range(n):  # a fresh client connection each time
        with requests.Session() as s:
            assert s.get(gw.url(f"/echo?i={i}"), timeout=5).status_code == 200
    reqs = upstream.wait_for(n)
    assert len({q.conn_id for q in reqs}) < n, f"no upstream keep-alive: {reqs}"
    assert upstream.connections < n
    assert max(q.seq for q in reqs) >= 1


def test_pipelined_requests_answered_in_order(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    # The first is slow, so a gateway that answers out of order would show it.
    c.send(b"GET /slow?ms=300&n=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
           b"POST /echo?n=2 HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nxyz\r\n0\r\n\r\n"
           b"GET /echo?n=3 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
           b"POST /echo?n=4 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc")
    rs = [c.read_response() for _ in range(4)]
    assert [r.status for r in rs] == [200] * 4
    assert [r.json()["target"] for r in rs] == ["/slow?ms=300&n=1", "/echo?n=2", "/echo?n=3", "/echo?n=4"]
    assert rs[1].json()["body"] == "xyz" and rs[3].json()["body"] == "abc"
    assert [q.body for q in upstream.wait_for(4)] == [b"", b"xyz", b"", b"abc"]


def test_chunked_request_body_arrives_intact(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n"
           b"1;name=value\r\n \r\n"
           b"A\r\n0123456789\r\n"
           b"0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200
    (req,) = upstream.wait_for(1)
    assert req.body == b"hello 0123456789"
    # re-framed: exactly one framing header, consistent with the body
    assert req.has("Transfer-Encoding") != req.has("Content-Length"), req.headers
    if req.has("Content-Length"):
        assert req.header("Content-Length") == "16"
    else:
        assert req.header("Transfer-Encoding").lower() == "chunked"
    # the connection stays usable afterwards
    c.request("GET", "/echo?after=1")
    assert c.read_response().status == 200


def test_empty_chunked_body(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert req.method == "POST" and req.body == b""


def test_content_length_body_sent_in_pieces(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    body = b"0123456789" * 1000
    c.send(b"PUT /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10000\r\n\r\n" + body[:3])
    c.send(body[3:5000])
    c.send(body[5000:])
    r = c.read_response()
    assert r.status == 200
    (req,) = upstream.wait_for(1)
    assert req.method == "PUT" and req.body == body


def test_chunked_upstream_response_relayed(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/big?size=300000&mode=chunked")
    r = c.read_response(timeout=10)
    assert r.status == 200 and r.complete
    assert len(r.body) == 300000 and hashlib.sha256(r.body).hexdigest() == big_sha256(300000)
    c.request("GET", "/echo")
    assert c.read_response().status == 200


def test_head_204_304_have_no_body(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    # All on one connection: any stray body byte would corrupt the next response.
    c.request("HEAD", "/big?size=5000")
    r = c.read_response("HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Length") in (None, "5000")
    c.request("GET", "/no-body/204")
    r = c.read_response()
    assert r.status == 204 and r.body == b"" and r.header("X-Upstream") == "recording"
    assert r.header("Content-Length") in (None, "0") and r.header("Transfer-Encoding") is None
    c.request("GET", "/304", headers=[("If-None-Match", '"v1"')])
    r = c.read_response()
    assert r.status == 304 and r.header("ETag") == '"v1"' and r.header("Transfer-Encoding") is None
    c.request("HEAD", "/big?size=5000&mode=chunked")
    r = c.read_response("HEAD")
    assert r.status == 200 and r.body == b""
    c.request("GET", "/echo?last=1")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?last=1"
    assert not c.buf, f"stray bytes after the responses: {bytes(c.buf)!r}"
    reqs = upstream.wait_for(5)
    assert reqs[0].method == "HEAD" and reqs[2].header("If-None-Match") == '"v1"'


def test_304_with_content_length_has_no_body(proxy, upstream):
    """RFC 9112 6.3: a 304 ends at its head whatever its Content-Length says
    (which describes the representation it stands for)."""
    upstream.set_response("/304-with-length", 304, [("ETag", '"v2"'), ("Content-Length", "100")])
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/304-with-length")
    r = c.read_response()
    assert r.status == 304 and r.body == b""
    c.request("GET", "/echo?after-304=1")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?after-304=1"


def test_head_with_content_length_reuses_upstream_connection(proxy, upstream):
    """The upstream answers HEAD with Content-Length and no body; the gateway
    must not wait for one, so the same upstream connection serves the next."""
    gw = proxy()
    c = gw.connect()
    c.request("HEAD", "/big?size=5000")
    assert c.read_response("HEAD").status == 200
    c.request("GET", "/echo?after-head=1")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?after-head=1"
    assert upstream.connections == 1


def test_expect_100_continue(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
    interim = c.read_response(stop_at_interim=True)
    assert interim.status == 100, f"expected 100 Continue before sending the body, got {interim}"
    c.send(b"hello world")
    r = c.read_response()
    assert r.status == 200
    (req,) = upstream.wait_for(1)
    assert req.body == b"hello world"
    assert not req.has("Expect"), req.headers


def test_hop_by_hop_headers_removed(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\n"
           b"Connection: keep-alive, X-Secret-Hop, x-other-hop\r\n"
           b"X-Secret-Hop: 1\r\nX-Other-Hop: 2\r\n"
           b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Foo\r\n"
           b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Connection: keep-alive\r\n"
           b"X-End-To-End: kept\r\n\r\n")
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    names = set(req.names())
    for h in ("x-secret-hop", "x-other-hop", "keep-alive", "te", "trailer",
              "proxy-authorization", "proxy-connection", "upgrade"):
        assert h not in names, f"{h} reached the upstream: {req.headers}"
    for v in req.header_all("Connection"):
        assert "x-secret-hop" not in v.lower() and "x-other-hop" not in v.lower(), req.headers
    assert req.header("X-End-To-End") == "kept"


def test_response_hop_by_hop_headers_removed(proxy, upstream):
    # RFC 9110 7.6.1 applies to responses too.
    upstream.set_response("/hop", 200, [("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"),
                                        ("Keep-Alive", "timeout=99"), ("X-Resp-Kept", "1")], b"ok")
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/hop")
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok"
    assert r.header("X-Resp-Kept") == "1"
    assert r.header("X-Resp-Hop") is None and r.header("Keep-Alive") is None, r.headers


def test_repeated_headers_forwarded_and_relayed(proxy, upstream):
    upstream.set_response("/cookies", 200, [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")], b"ok")
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/cookies", headers=[("X-Dup", "one"), ("X-Dup", "two")] +
              [(f"X-H{i}", str(i)) for i in range(40)])
    r = c.read_response()
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    (req,) = upstream.wait_for(1)
    assert ",".join(req.header_all("X-Dup")).replace(" ", "") == "one,two"
    for i in range(40):
        assert req.header(f"X-H{i}") == str(i)


def test_x_forwarded_headers_set(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/echo", host="shop.example.com:8443")
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert req.header("X-Forwarded-For") == "127.0.0.1"
    assert req.header("X-Forwarded-Proto") == "http"
    assert req.header("X-Forwarded-Host") == "shop.example.com:8443"
    assert req.header("X-Forwarded-Port") == str(gw.port)
    assert not req.has("X-Forwarded-Prefix")


def test_client_forwarded_headers_dropped_from_untrusted_peer(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/echo", headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Host", "evil.example"),
                                       ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "1"),
                                       ("X-Forwarded-Prefix", "/evil"),
                                       ("Forwarded", "for=6.6.6.6;host=evil.example")])
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert req.header_all("X-Forwarded-For") == ["127.0.0.1"], req.headers
    assert req.header("X-Forwarded-Host") == "gw.test"
    assert req.header("X-Forwarded-Proto") == "http"
    assert req.header("X-Forwarded-Port") == str(gw.port)
    assert not req.has("X-Forwarded-Prefix"), req.headers
    assert "6.6.6.6" not in str(req.header_all("Forwarded")) and "evil" not in str(req.headers), req.headers


def test_x_forwarded_for_appended_for_trusted_proxy(proxy, upstream):
    gw = proxy(trusted_proxies=["127.0.0.0/8"])
    c = gw.connect()
    c.request("GET", "/echo", headers=[("X-Forwarded-For", "203.0.113.7")])
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    xff = ",".join(req.header_all("X-Forwarded-For")).replace(" ", "")
    assert xff == "203.0.113.7,127.0.0.1", req.headers


def test_x_forwarded_prefix_only_when_stripped(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/api/**"}, "upstream": "up", "strip": "/api"},
                       {"match": {"path": "/plain/**"}, "upstream": "up"}])
    c = gw.connect()
    c.request("GET", "/api/orders/7?q=1")
    assert c.read_response().status == 200
    c.request("GET", "/plain/x")
    assert c.read_response().status == 200
    c.request("GET", "/api")
    assert c.read_response().status == 200
    stripped, plain, bare = upstream.wait_for(3)
    assert stripped.target == "/orders/7?q=1"
    assert stripped.header("X-Forwarded-Prefix") == "/api"
    assert plain.target == "/plain/x" and not plain.has("X-Forwarded-Prefix")
    assert bare.target == "/" and bare.header("X-Forwarded-Prefix") == "/api"


def test_request_id_kept_replaced_generated(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    cases = [("keep", "abc-123_X.y:z"), ("long-ok", "a" * 128), ("bad", "has space"), ("toolong", "a" * 129),
             ("badchar", "abc/def"), ("missing", None)]
    got = {}
    for name, rid in cases:
        c.request("GET", f"/echo?case={name}", headers=[("X-Request-Id", rid)] if rid is not None else [])
        r = c.read_response()
        assert r.status == 200
        got[name] = r.header("X-Request-Id")
    reqs = upstream.wait_for(len(cases))
    for (name, rid), req in zip(cases, reqs):
        seen = req.header("X-Request-Id")
        assert seen == got[name], f"{name}: upstream saw {seen!r}, client got {got[name]!r}"
        if name in ("keep", "long-ok"):
            assert seen == rid
        else:
            assert seen and HEX32.match(seen), f"{name}: {seen!r}"
    generated = [got[n] for n in ("bad", "toolong", "badchar", "missing")]
    assert len(set(generated)) == len(generated), generated


def test_host_preserved_by_default(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/echo", host="Shop.Example.com")
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert req.header_all("Host") == ["Shop.Example.com"]


def test_host_is_target_without_preserve_host(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/**"}, "upstream": "up", "preserve_host": False}])
    c = gw.connect()
    c.request("GET", "/echo", host="shop.example.com")
    assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert req.header_all("Host") == [upstream.addr]
    assert req.header("X-Forwarded-Host") == "shop.example.com"


def test_upgrade_h2c_never_reaches_upstream(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, r
    assert r.version == "HTTP/1.1" and r.header("Upgrade") is None
    (req,) = upstream.wait_for(1)
    assert not req.has("Upgrade") and not req.has("HTTP2-Settings"), req.headers
    c.request("GET", "/echo?next=1")  # still plain HTTP/1.1 on the same connection
    assert c.read_response().status == 200


def test_upgrade_websocket_never_reaches_upstream(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"GET /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    r = c.read_response()
    assert r.status != 101, r
    for req in upstream.started:
        assert not req.has("Upgrade"), req.headers
        assert all("upgrade" not in v.lower() for v in req.header_all("Connection")), req.headers


def test_round_robin_over_targets(gateway, upstream_factory):
    a, b = upstream_factory(), upstream_factory()
    gw = gateway(upstreams={"up": {"targets": [a.addr, b.addr]}},
                 routes=[{"match": {"path": "/**"}, "upstream": "up"}])
    for i in range(6):
        with requests.Session() as s:
            assert s.get(gw.url(f"/echo?i={i}"), timeout=5).status_code == 200
    assert len(a.requests) + len(b.requests) == 6
    assert len(a.requests) >= 2 and len(b.requests) >= 2, (a.requests, b.requests)


def test_gateway_error_is_problem_json(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/only/**"}, "upstream": "up"}])
    r = requests.get(gw.url("/elsewhere"), timeout=5)
    doc = assert_problem(r, 404)
    assert doc["instance"] == "/elsewhere"
    assert upstream.started == []


def test_http10_client_served_and_closed(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.send(b"GET /echo?v=10 HTTP/1.0\r\nHost: gw.test\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and r.complete and r.json()["target"] == "/echo?v=10"
    assert r.header("Transfer-Encoding") is None, "chunked sent to an HTTP/1.0 client"
    assert c.closed_by_peer(5), "HTTP/1.0 connection without keep-alive left open"
    assert upstream.wait_for(1)[0].target == "/echo?v=10"


def test_client_connection_close_honoured(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/echo", headers=[("Connection", "close")])
    r = c.read_response()
    assert r.status == 200
    assert "close" in (r.header("Connection") or "").lower()
    assert c.closed_by_peer(5)
    assert len(upstream.wait_for(1)) == 1


def test_upstream_connection_close_not_reused(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/close-after")
    r = c.read_response()
    assert r.status == 200 and r.body == b"closing now"
    assert r.header("Connection") is None or "close" not in r.header("Connection").lower(), \
        "the upstream's Connection: close leaked to the client"
    c.request("GET", "/echo?next=1")  # same client connection, new upstream connection
    r = c.read_response()
    assert r.status == 200 and r.json()["seq"] == 0
    assert upstream.connections == 2


def test_close_delimited_upstream_response_relayed(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/close-delimited")
    r = c.read_response()
    assert r.status == 200 and r.complete
    assert r.body == b"until close " * 1000
    if r.framing != "close":  # re-framed: the client connection can carry on
        c.request("GET", "/echo")
        assert c.read_response().status == 200


def test_keepalive_zero_keeps_no_idle_connection(proxy, upstream):
    gw = proxy(upstream_opts={"keepalive": 0})
    for i in range(3):
        with requests.Session() as s:
            assert s.get(gw.url(f"/echo?i={i}"), timeout=5).status_code == 200
    reqs = upstream.wait_for(3)
    assert [q.seq for q in reqs] == [0, 0, 0] and upstream.connections == 3


def test_pooled_connection_closed_after_keepalive_timeout(proxy, upstream):
    gw = proxy(upstream_opts={"keepalive_timeout": 0.3})
    assert requests.get(gw.url("/echo"), timeout=5).status_code == 200
    upstream.wait_for(1)
    wait_until(lambda: upstream.open_connections() == 0, 5,
               "the gateway to close its idle pooled connection after keepalive_timeout")
    assert requests.get(gw.url("/echo?again=1"), timeout=5).status_code == 200
    assert upstream.connections == 2


def test_interim_103_then_final_response(proxy, upstream):
    gw = proxy()
    c = gw.connect()
    c.request("GET", "/early-hints")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/early-hints"
    assert all(i.status == 103 for i in r.interim)
    c.request("GET", "/echo?next=1")
    assert c.read_response().json()["target"] == "/echo?next=1"


def test_concurrent_clients_get_their_own_responses(proxy, upstream):
    gw = proxy(workers=2)
    errors = []

    def client(n):
        try:
            with requests.Session() as s:
                for i in range(10):
                    r = s.post(gw.url(f"/echo?c={n}&i={i}"), data=f"body-{n}-{i}", timeout=10)
                    doc = r.json()
                    if r.status_code != 200 or doc["target"] != f"/echo?c={n}&i={i}" or doc["body"] != f"body-{n}-{i}":
                        errors.append((n, i, r.status_code, doc.get("target")))
        except Exception as e:  # reported below
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(upstream.wait_for(300)) == 300


def test_upstream_errors_passed_through_unchanged(proxy, upstream):
    upstream.set_response("/broken", 503, [("Content-Type", "text/plain"), ("Retry-After", "7")], b"upstream says no")
    gw = proxy()
    r = requests.get(gw.url("/broken"), timeout=5)
    assert r.status_code == 503 and r.content == b"upstream says no"
    assert r.headers["Content-Type"] == "text/plain" and r.headers["Retry-After"] == "7"
    r = requests.get(gw.url("/status/404"), timeout=5)
    assert r.status_code == 404 and r.content == b"status 404\n"


def test_expect_100_with_body_sent_at_once(proxy, upstream):
    """Clients often send the body without waiting for 100 Continue."""
    gw = proxy()
    c = gw.connect()
    c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
    r = c.read_response()
    assert r.status == 200 and r.json()["body"] == "body"
    assert all(i.status == 100 for i in r.interim) and len(r.interim) <= 1
    c.request("GET", "/echo?next=1")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?next=1" and r.interim == []
    assert not upstream.wait_for(2)[0].has("Expect")


def test_obs_fold_in_upstream_response_not_relayed(proxy, upstream):
    """RFC 9112 5.2: a proxy rejects obs-fold in a response or replaces it
    with SP; it never relays a folded line."""
    upstream.set_response("/folded", 200, [("X-Fold", "a\r\n b")], b"ok")
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/folded")
        r = c.read_response()  # raises on a header line without a colon
    if r.status == 200:
        assert r.header("X-Fold") in (None, "a b", "a  b"), r.headers
    else:
        assert_problem(r, 502)


def test_idle_pool_bounded_by_keepalive(proxy, upstream):
    """keepalive = idle connections kept per target per worker: after a burst
    of 8 concurrent requests, at most 2 upstream connections stay open."""
    gw = proxy(upstream_opts={"keepalive": 2})
    results = []

    def one(i):
        with requests.Session() as s:
            results.append(s.get(gw.url(f"/hold?key=burst&i={i}"), timeout=20).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    upstream.wait_for(8, timeout=10)
    assert upstream.open_connections() == 8
    upstream.release("burst")
    for t in threads:
        t.join(20)
    assert results == [200] * 8
    wait_until(lambda: upstream.open_connections() <= 2, 5,
               f"the idle pool to shrink to keepalive=2 (open: {upstream.open_connections()})")
