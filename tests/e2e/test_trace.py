"""W3C Trace Context (level 1) through the gateway: a valid traceparent
keeps its trace-id and sampled flag and gets the gateway's own parent-id;
anything else starts a new trace and drops tracestate. What reached the
upstream is checked every time, and so is the access log's trace_id."""

import re

from conftest import Lua

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"
STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
SENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def one_traceparent(req):
    """The upstream got exactly one traceparent in version 00's layout,
    with ids that are not all zeros; returns (trace_id, parent_id, flags)."""
    (tp,) = req.header_all("traceparent")
    m = SENT.fullmatch(tp)
    assert m, f"traceparent {tp!r} is not 00-<32hex>-<16hex>-<2hex>"
    trace, parent, flags = m.groups()
    assert trace != "0" * 32 and parent != "0" * 16, tp
    return trace, parent, flags


def client_values_absent(req, *values):
    """None of the client's traceparent values reached the upstream."""
    for v in values:
        assert v not in [x for _, x in req.headers], f"{v!r} reached the upstream: {req.headers}"


def send(gw, headers, path="/echo"):
    """One request with these extra headers; returns its response."""
    with gw.connect() as c:
        c.request("GET", path, headers=headers)
        return c.read_response()


def log_line(gw, rid):
    (line,) = [l for l in gw.access_log() if l.get("request_id") == rid]
    return line


def test_valid_traceparent_continues_the_trace(proxy, upstream):
    gw = proxy()
    r1 = send(gw, [("traceparent", VALID), ("tracestate", STATE), ("X-Request-Id", "tp-1")])
    r2 = send(gw, [("traceparent", VALID.replace("-01", "-00")), ("X-Request-Id", "tp-2")])
    assert (r1.status, r2.status) == (200, 200)
    a, b = upstream.wait_for(2)
    trace, parent, flags = one_traceparent(a)
    assert (trace, flags) == (TRACE, "01")
    assert parent != PARENT  # the gateway is a hop: its own span id
    assert a.header_all("tracestate") == [STATE]
    client_values_absent(a, VALID)
    trace2, parent2, flags2 = one_traceparent(b)
    assert (trace2, flags2) == (TRACE, "00")
    assert parent2 not in (PARENT, parent)  # a new span per request
    assert not b.has("tracestate")
    assert r1.header("traceparent") is None  # relayed responses carry none
    assert gw.stop() == 0
    assert log_line(gw, "tp-1")["trace_id"] == TRACE
    assert log_line(gw, "tp-2")["trace_id"] == TRACE


def test_absent_traceparent_starts_a_trace(proxy, upstream):
    gw = proxy()
    send(gw, [("X-Request-Id", "new-1")])
    send(gw, [("X-Request-Id", "new-2"), ("tracestate", STATE)])
    a, b = upstream.wait_for(2)
    t1, _, f1 = one_traceparent(a)
    t2, _, f2 = one_traceparent(b)
    assert (f1, f2) == ("00", "00")  # sampled off: the gateway records nothing
    assert t1 != t2
    assert not b.has("tracestate")  # no traceparent to go with it
    assert gw.stop() == 0
    assert log_line(gw, "new-1")["trace_id"] == t1
    assert log_line(gw, "new-2")["trace_id"] == t2


INVALID = {
    "uppercase": f"00-{TRACE.upper()}-{PARENT}-01",
    "uppercase-flags": f"00-{TRACE}-{PARENT}-0A",
    "version-ff": f"ff-{TRACE}-{PARENT}-01",
    "zero-trace-id": f"00-{'0' * 32}-{PARENT}-01",
    "zero-parent-id": f"00-{TRACE}-{'0' * 16}-01",
    "v00-too-long": f"{VALID}-extra",
    "short": f"00-{TRACE}-{PARENT}",
    "future-no-dash": f"cc-{TRACE}-{PARENT}-01.x",
    "bad-delimiter": f"00_{TRACE}_{PARENT}_01",
    "empty": "",
    "garbage": "not a traceparent",
}


def test_invalid_traceparent_restarts_and_drops_tracestate(proxy, upstream):
    gw = proxy()
    cases = list(INVALID.items()) + [("repeated", None)]
    for name, value in cases:
        tps = [("traceparent", VALID), ("traceparent", VALID)] if value is None else [("traceparent", value)]
        r = send(gw, tps + [("tracestate", STATE), ("X-Request-Id", f"bad-{name}")])
        assert r.status == 200, (name, r)
    reqs = upstream.wait_for(len(cases))
    seen = set()
    for (name, value), req in zip(cases, reqs):
        assert req.header("X-Request-Id") == f"bad-{name}"
        trace, _, flags = one_traceparent(req)
        assert trace != TRACE and flags == "00", (name, req.headers)
        assert not req.has("tracestate"), (name, req.headers)
        client_values_absent(req, VALID, *([value] if value else []))
        seen.add(trace)
    assert len(seen) == len(cases)  # a new trace each time
    assert gw.stop() == 0
    for (name, _), req in zip(cases, reqs):
        assert log_line(gw, f"bad-{name}")["trace_id"] == one_traceparent(req)[0], name


def test_future_version_is_read_as_version_00(proxy, upstream):
    gw = proxy()
    future = f"cc-{TRACE}-{PARENT}-01-what-the-future-holds"
    send(gw, [("TraceParent", future), ("tracestate", STATE)])
    (req,) = upstream.wait_for(1)
    trace, parent, flags = one_traceparent(req)  # sent as version 00
    assert (trace, flags) == (TRACE, "01") and parent != PARENT
    assert req.header("tracestate") == STATE
    client_values_absent(req, future)


def test_unknown_flags_are_not_propagated(proxy, upstream):
    gw = proxy()
    send(gw, [("traceparent", VALID.replace("-01", "-ff"))])
    send(gw, [("traceparent", VALID.replace("-01", "-02"))])
    a, b = upstream.wait_for(2)
    assert one_traceparent(a)[2] == "01"
    assert one_traceparent(b)[2] == "00"


def test_repeated_tracestate_fields_pass_in_order(proxy, upstream):
    gw = proxy()
    send(gw, [("traceparent", VALID), ("tracestate", "congo=1"), ("X-Other", "x"),
              ("Tracestate", "rojo=2,  vendor=3")])
    (req,) = upstream.wait_for(1)
    assert one_traceparent(req)[0] == TRACE
    assert req.header_all("tracestate") == ["congo=1", "rojo=2,  vendor=3"]


def test_surrounding_whitespace_is_not_part_of_the_value(proxy, upstream):
    gw = proxy()
    with gw.connect() as c:
        c.send(f"GET /echo HTTP/1.1\r\nHost: gw.test\r\ntraceparent: \t {VALID} \t\r\n"
               f"tracestate: {STATE}\r\n\r\n".encode())
        assert c.read_response().status == 200
    (req,) = upstream.wait_for(1)
    assert one_traceparent(req)[0] == TRACE
    assert req.header("tracestate") == STATE


POLICY_ROUTES = [{
    "name": "pol", "match": {"path": "/pol"}, "upstream": "up",
    "policy": Lua('function(req)\n'
                  '  req.headers["traceparent"] = "00-' + "1" * 32 + '-' + "2" * 16 + '-01"\n'
                  '  req.headers["X-Seen"] = tostring(req.headers["traceparent"])\n'
                  'end'),
}]


def test_policy_cannot_replace_the_gateways_traceparent(proxy, upstream):
    gw = proxy(routes=POLICY_ROUTES)
    r = send(gw, [("traceparent", VALID)], path="/pol")
    assert r.status == 200, r
    (req,) = upstream.wait_for(1)
    trace, parent, _ = one_traceparent(req)
    assert trace == TRACE and parent != "2" * 16


def test_gateway_errors_log_the_trace(proxy, upstream):
    gw = proxy(routes=[{"name": "api", "match": {"path": "/api/**"}, "upstream": "up"}])
    r = send(gw, [("traceparent", VALID), ("X-Request-Id", "err-1")], path="/nope")
    assert r.status == 404
    assert r.header("traceparent") is None
    assert gw.stop() == 0
    assert log_line(gw, "err-1")["trace_id"] == TRACE
    assert upstream.started == []
