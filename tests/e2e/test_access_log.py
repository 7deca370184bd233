"""The access log: one JSON line per request, the spec's fields with the
right values, and never a credential."""

import json
import re

import requests

FIELDS = {"time", "request_id", "client", "method", "path", "status", "bytes_in", "bytes_out",
          "upstream", "upstream_ms", "total_ms", "route"}
SECRET = "sekrit-Token-4711-do-not-log"


def stderr_lines_ok(text):
    """Every stderr line is either a JSON access-log line or a text line."""
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)
        else:
            assert line.startswith("gatehouse"), f"unexpected stderr line: {line!r}"


def test_one_line_per_request_with_spec_fields(proxy, upstream):
    gw = proxy(routes=[{"name": "all", "match": {"path": "/**"}, "upstream": "up"}])
    with gw.connect() as c:
        c.request("POST", "/status/201", body=b"0123456789")
        r1 = c.read_response()
        c.request("GET", "/echo?x=1")
        r2 = c.read_response()
    assert (r1.status, r2.status) == (201, 200)
    assert gw.stop() == 0
    lines = gw.access_log()
    assert len(lines) == 2, lines
    stderr_lines_ok(gw.stderr())
    a, b = lines
    for line in lines:
        assert FIELDS <= set(line), f"missing fields {FIELDS - set(line)} in {line}"
        assert isinstance(line["time"], (str, int, float)) and line["time"]
        assert str(line["client"]).startswith("127.0.0.1")
        assert line["route"] == "all"
        assert line["upstream"] == "up" or upstream.addr in str(line["upstream"]), line["upstream"]
        for k in ("bytes_in", "bytes_out"):
            assert isinstance(line[k], int) and line[k] >= 0, line
        for k in ("upstream_ms", "total_ms"):
            assert isinstance(line[k], (int, float)) and line[k] >= 0, line
        assert line["total_ms"] + 1 >= line["upstream_ms"], line
    assert (a["method"], a["status"]) == ("POST", 201)
    assert (b["method"], b["status"]) == ("GET", 200)
    assert a["path"] == "/status/201"
    assert b["path"] in ("/echo", "/echo?x=1")
    assert a["request_id"] == r1.header("X-Request-Id")
    assert b["request_id"] == r2.header("X-Request-Id")
    assert a["bytes_in"] >= 10  # at least the body
    assert a["bytes_out"] >= len(r1.body) and b["bytes_out"] >= len(r2.body)


def test_line_written_while_running(proxy, upstream):
    gw = proxy()
    r = requests.get(gw.url("/echo"), headers={"X-Request-Id": "live-1"}, timeout=5)
    assert r.status_code == 200
    (line,) = gw.wait_access_log(1)
    assert line["request_id"] == "live-1" and line["status"] == 200


def test_gateway_errors_are_logged(proxy, upstream):
    gw = proxy(routes=[{"name": "api", "match": {"path": "/api/**"}, "upstream": "up"}],
               limits={"max_body": 10})
    with gw.connect() as c:
        c.request("GET", "/nope")
        assert c.read_response().status == 404
    with gw.connect() as c:
        c.request("POST", "/api/x", body=b"x" * 100)
        assert c.read_response().status == 413
    assert gw.stop() == 0
    lines = gw.access_log()
    assert [(l["method"], l["status"]) for l in lines] == [("GET", 404), ("POST", 413)], lines
    assert lines[0]["path"] == "/nope"
    assert lines[0]["route"] in (None, "", "-")
    assert lines[0]["upstream"] in (None, "", "-")
    assert upstream.started == []


def test_request_id_generated_is_logged(proxy, upstream):
    gw = proxy()
    r = requests.get(gw.url("/echo"), timeout=5)
    rid = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert upstream.wait_for(1)[0].header("X-Request-Id") == rid
    assert gw.stop() == 0
    assert [l["request_id"] for l in gw.access_log()] == [rid]


def test_credentials_never_logged(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.request("GET", "/echo", headers=[("Authorization", f"Bearer {SECRET}"),
                                           ("Proxy-Authorization", f"Basic {SECRET}"),
                                           ("Cookie", f"session={SECRET}")])
        assert c.read_response().status == 200
        c.request("GET", "/status/401", headers=[("Authorization", f"Bearer {SECRET}")])
        assert c.read_response().status == 401
    (req, _) = upstream.wait_for(2)
    assert req.header("Authorization") == f"Bearer {SECRET}"  # relayed, just not logged
    assert gw.stop() == 0
    assert len(gw.access_log()) == 2
    assert SECRET not in gw.stderr()
    assert SECRET not in gw.stdout()


def test_access_log_to_file(proxy, upstream, tmp_path):
    path = str(tmp_path / "access.log")
    gw = proxy(access_log=path)
    for i in range(3):
        assert requests.get(gw.url(f"/echo?i={i}"), timeout=5).status_code == 200
    assert gw.stop() == 0
    with open(path) as f:
        lines = [json.loads(l) for l in f.read().splitlines()]
    assert len(lines) == 3 and all(l["status"] == 200 for l in lines)
    assert gw.access_log() == [], "access lines also went to stderr"


def test_access_log_off(proxy, upstream):
    gw = proxy(access_log="off")
    assert requests.get(gw.url("/echo"), timeout=5).status_code == 200
    upstream.wait_for(1)
    assert gw.stop() == 0
    assert gw.access_log() == []


def test_unnamed_route_logged_as_file_line(proxy, upstream):
    gw = proxy(routes=[{"match": {"path": "/**"}, "upstream": "up"}])
    assert requests.get(gw.url("/echo"), timeout=5).status_code == 200
    assert gw.stop() == 0
    (line,) = gw.access_log()
    # README: name defaults to "<file>:<line>"; the route is declared on line 3
    assert line["route"] == "50-test.lua:3", line["route"]


def test_odd_bytes_keep_log_lines_valid_json(proxy, upstream):
    gw = proxy()
    targets = [b'/echo/"q"{}\\', b'/echo/"q"{}', b"/echo/caf\xc3\xa9", b"/echo/\xff\xfe", b"/echo/\x7f", b"/e\x01"]
    for t in targets:
        with gw.connect() as c:
            c.send(b"GET " + t + b" HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: a\"b\\c\r\n\r\n")
            c.read_response()
    assert gw.stop() == 0
    stderr_lines_ok(gw.stderr())  # every '{' line parses
    lines = gw.access_log()
    assert len(lines) == len(targets), lines
    if lines[1]["status"] == 200:  # accepted: logged exactly, escaped as JSON
        assert lines[1]["path"] == '/echo/"q"{}', lines[1]
