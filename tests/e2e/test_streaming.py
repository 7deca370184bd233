"""Bodies stream through in both directions with back-pressure: large
transfers arrive intact and the gateway's memory stays flat. (Memory is a
functional property here; nothing in this file asserts on time.)"""

import hashlib
import select
import time

import pytest

from conftest import wait_until
from recording_upstream import big_body, big_sha256

MiB = 1 << 20
BIG = 200 * MiB
RSS_LIMIT_KIB = 64 * 1024


@pytest.fixture
def gw(proxy):
    return proxy(limits={"max_body": 0})  # 0 = unlimited


def assert_flat(gw):
    hwm = gw.vm_hwm_kib()
    assert hwm < RSS_LIMIT_KIB, f"gateway peak RSS {hwm} KiB >= {RSS_LIMIT_KIB} KiB: bodies are being buffered"


def send_body(c, size, chunked):
    h = hashlib.sha256()
    for piece in big_body(size, 256 * 1024):
        h.update(piece)
        c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        c.send(b"0\r\n\r\n")
    return h.hexdigest()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_intact(gw, upstream, chunked):
    c = gw.connect(timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"
    c.send(f"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/octet-stream\r\n{framing}\r\n\r\n")
    digest = send_body(c, BIG, chunked)
    r = c.read_response(timeout=30)
    assert r.status == 200
    echoed = r.json()
    assert echoed["body_len"] == BIG and echoed["body_sha256"] == digest
    (req,) = upstream.wait_for(1)
    assert req.body_len == BIG and req.body_sha256 == digest
    assert_flat(gw)


@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_large_download_intact(gw, upstream, mode):
    c = gw.connect(timeout=30)
    c.request("GET", f"/big?size={BIG}&mode={mode}")
    h = hashlib.sha256()
    n = [0]

    def sink(b):
        h.update(b)
        n[0] += len(b)

    r = c.read_response(timeout=60, sink=sink)
    assert r.status == 200 and r.complete
    assert n[0] == BIG and h.hexdigest() == big_sha256(BIG)
    assert_flat(gw)


def stalled(counter, what):
    """Waits (bounded) until counter() stops moving for a second; returns it."""
    last = [counter(), time.monotonic()]

    def still():
        v = counter()
        if v != last[0]:
            last[0], last[1] = v, time.monotonic()
            return None
        return v if time.monotonic() - last[1] >= 1.0 else None

    return wait_until(still, 30, what, interval=0.1)


def test_download_to_slow_reader_applies_back_pressure(gw, upstream):
    size = 128 * MiB
    c = gw.connect(timeout=30)
    c.request("GET", f"/big?size={size}")
    head = c.read_head()
    assert head.status == 200
    sent = stalled(lambda: upstream.big_bytes_sent, "the upstream to stop sending to a non-reading client")
    assert sent < size, "the gateway read the whole response although the client reads nothing"
    assert_flat(gw)
    h = hashlib.sha256()
    c.read_body(head, timeout=60, sink=h.update)
    assert head.complete and h.hexdigest() == big_sha256(size)


def test_upload_to_slow_upstream_applies_back_pressure(gw, upstream):
    size = 128 * MiB
    c = gw.connect(timeout=30)
    c.send(f"POST /hold-sink?key=bp HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {size}\r\n\r\n")
    pieces = big_body(size, 64 * 1024)
    h = hashlib.sha256()
    sent = 0
    pending = b""
    c.sock.setblocking(False)
    # send until nothing more is accepted for a second: the upstream is not reading
    while True:
        if not pending:
            pending = next(pieces, b"")
            h.update(pending)
            if not pending:
                break
        _, w, _ = select.select([], [c.sock], [], 1.0)
        if not w:
            break
        n = c.sock.send(pending)
        sent += n
        pending = pending[n:]
    assert sent < size, "the gateway accepted the whole body although the upstream reads nothing"
    assert_flat(gw)
    upstream.release("bp")
    c.sock.setblocking(True)
    c.sock.settimeout(30)
    c.send(pending)
    for piece in pieces:
        h.update(piece)
        c.send(piece)
    r = c.read_response(timeout=30)
    assert r.status == 200
    assert r.json()["body_len"] == size and r.json()["body_sha256"] == h.hexdigest()
