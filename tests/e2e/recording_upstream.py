#!/usr/bin/python3
"""A recording HTTP/1.1 upstream for Gatehouse's end-to-end tests.

Stdlib only. It stores every request it receives (method, raw target, headers
as an ordered list, body bytes) so a test can state exactly what reached the
service behind the gateway -- and, just as often, that nothing did.

In-process use (one thread per connection):

    up = RecordingUpstream().start()
    ...                      # point a gateway at up.addr
    reqs = up.wait_for(1)    # complete requests, oldest first
    up.clear()
    up.stop()

Stand-alone (the quickstart demo upstream):

    /usr/bin/python3 tests/e2e/recording_upstream.py --port 8081

prints the port on stdout and serves until SIGTERM/SIGINT.

Special paths (the query string is ignored for matching):
  /echo                  200, JSON of the request as received (also the default)
  /status/NNN            status NNN with a short text body (none for 204/304)
  /no-body/204           204, no body
  /304                   304 Not Modified with an ETag, no body
  /big?size=N&mode=M     N bytes of a fixed pseudo-random pattern (see big_body),
                         mode=length (Content-Length, default) or chunked
  /slow?ms=N             sleeps N ms, then answers like /echo
  /stall-body?ms=N       Content-Length: 20, sends 10 bytes, sleeps N ms, sends 10
  /close-mid-body        Content-Length: 1000, sends 10 bytes, closes
  /close-after           200 with Connection: close, then closes
  /close-delimited       200 with no Content-Length/chunked: 12000 bytes, then closes
  /drop                  closes the connection without answering
  /reset                 resets the connection (RST) without answering
  /garbage               answers bytes that are not HTTP, then closes
  /early-hints           a 103 interim response, then answers like /echo
  /hold?key=K            waits until the test calls release(K), then echoes
  /hold-sink?key=K       like /hold, but waits before reading the request body
Any path can also be given a fixed answer with set_response().
"""

import argparse
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from urllib.parse import parse_qs

# ---------------------------------------------------------------------------
# Deterministic large bodies

_BLOCK = random.Random(0x6A7E).randbytes(65536)


def big_body(size, chunk=65536):
    """Yields exactly size bytes of the /big pattern in pieces of at most chunk."""
    off = 0
    while off < size:
        start = off % len(_BLOCK)
        n = min(chunk, size - off, len(_BLOCK) - start)
        yield _BLOCK[start:start + n]
        off += n


def big_sha256(size):
    """sha256 hex digest of the first size bytes of the /big pattern."""
    h = hashlib.sha256()
    for piece in big_body(size):
        h.update(piece)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# What was received


class RecordedRequest:
    """One request as it reached the upstream, byte for byte where it matters."""

    def __init__(self, conn_id, seq, peer, method, target, version, headers):
        self.conn_id = conn_id      # which upstream connection carried it
        self.seq = seq              # 0 for the first request on that connection
        self.peer = peer            # (ip, port) of the gateway's socket
        self.method = method
        self.target = target        # raw request-target, exactly as sent
        self.version = version      # "HTTP/1.1"
        self.headers = headers      # [(name, value), ...] in arrival order, latin-1 str
        self.trailers = []          # chunked trailer fields, if any
        self.framing = None         # "chunked", "length" or "none"
        self.body = b""             # full body, or None when longer than store_limit
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.complete = False       # head and whole body received
        self.time = time.time()

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else None

    def header_all(self, name):
        """Every value of a header (case-insensitive), in order."""
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        """The only value of a header, None if absent; fails if repeated."""
        vals = self.header_all(name)
        assert len(vals) <= 1, f"header {name} repeated: {vals!r}"
        return vals[0] if vals else None

    def has(self, name):
        return bool(self.header_all(name))

    def names(self):
        return [k.lower() for k, _ in self.headers]

    def to_json(self):
        d = {
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": self.query,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "trailers": [[k, v] for k, v in self.trailers],
            "framing": self.framing,
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "conn_id": self.conn_id,
            "seq": self.seq,
        }
        if self.body is not None and self.body_len <= 65536:
            d["body"] = self.body.decode("latin-1")
        return d

    def __repr__(self):
        return f"<{self.method} {self.target} conn={self.conn_id}/{self.seq} body={self.body_len}>"


class _Close(Exception):
    """The peer went away, or the request cannot be parsed: drop the connection."""


class _Reader:
    """Buffered reads from a socket; every wait bounded by the socket timeout."""

    def __init__(self, sock, on_bytes):
        self.sock = sock
        self.buf = bytearray()
        self.on_bytes = on_bytes

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise _Close("eof")
        self.on_bytes(len(data))
        self.buf += data

    def until(self, delim, limit):
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise _Close("line too long")
            start = max(0, len(self.buf) - len(delim) + 1)
            self._fill()

    def some(self, maxn):
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:maxn])
        del self.buf[:maxn]
        return out

    def has_buffered(self):
        return bool(self.buf)


# ---------------------------------------------------------------------------
# The server


class RecordingUpstream:
    def __init__(self, host="127.0.0.1", port=0, store_limit=16 << 20, log=None, max_records=None):
        self.host = host
        self.want_port = port
        self.store_limit = store_limit   # bodies longer than this keep only len + sha256
        self.log = log                   # callable(str) or None
        self.max_records = max_records   # keep only the newest N (long-running demo use)
        self.port = None
        self.lock = threading.Condition()
        self.requests = []       # complete requests, in completion order
        self.started = []        # every request head parsed, complete or not
        self.connections = 0     # connections accepted
        self.bytes_received = 0  # raw bytes read from all connections
        self.big_bytes_sent = 0  # body bytes written by /big
        self.responses = {}      # path -> (status, headers, body) set by set_response
        self.drop_reused = False  # close instead of answering a request with seq > 0
        self.idle_close = None   # seconds: close a keep-alive connection idle this long
        self._events = {}
        self._socks = set()
        self._threads = []
        self._stop = threading.Event()
        self._lsock = None
        self._conn_seq = 0

    # -- lifecycle ----------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.want_port))
        s.listen(128)
        s.settimeout(0.2)
        self._lsock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"upstream-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        except OSError:
            pass
        with self.lock:
            for ev in self._events.values():
                ev.set()
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)
        if self._lsock:
            self._lsock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    # -- test API -----------------------------------------------------------
    def clear(self):
        """Forgets everything received so far (connections stay open)."""
        with self.lock:
            self.requests = []
            self.started = []
            self.connections = 0
            self.bytes_received = 0
            self.big_bytes_sent = 0

    def wait_for(self, n, timeout=5.0):
        """Waits until at least n complete requests arrived; returns them all.
        Raises AssertionError with what did arrive when the wait runs out."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"upstream got {len(self.requests)} complete requests, wanted {n}: "
                        f"{self.requests!r} (started: {self.started!r})")
                self.lock.wait(left)
            return list(self.requests)

    def wait_started(self, n, timeout=5.0):
        """Waits until at least n request heads arrived (body maybe not yet)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.started) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"upstream saw {len(self.started)} request heads, wanted {n}")
                self.lock.wait(left)
            return list(self.started)

    def set_response(self, path, status=200, headers=None, body=b""):
        """Fixed answer for path: headers is a list of (name, value); a
        Content-Length is added unless the headers carry framing already."""
        if isinstance(body, str):
            body = body.encode()
        self.responses[path] = (status, list(headers or []), body)

    def open_connections(self):
        """Connections currently open from the upstream's side."""
        with self.lock:
            return len(self._socks)

    def release(self, key):
        """Lets /hold?key=K (and /hold-sink) requests proceed."""
        self._event(key).set()

    def _event(self, key):
        with self.lock:
            return self._events.setdefault(key, threading.Event())

    # -- connections --------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, peer = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self._conn_seq += 1
                cid = self._conn_seq
                self._socks.add(c)
            t = threading.Thread(target=self._serve, args=(c, peer, cid), daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)

    def _count(self, n):
        with self.lock:
            self.bytes_received += n

    def _serve(self, sock, peer, cid):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = _Reader(sock, self._count)
        seq = 0
        try:
            while not self._stop.is_set():
                if not rd.has_buffered():
                    sock.settimeout(self.idle_close if self.idle_close else 60)
                try:
                    req = self._read_head(rd, cid, seq, peer)
                except socket.timeout:
                    return  # idle keep-alive connection: close it, like real servers do
                sock.settimeout(30)
                keep = self._handle(sock, rd, req)
                seq += 1
                if not keep:
                    return
        except (_Close, OSError):
            return
        finally:
            with self.lock:
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _read_head(self, rd, cid, seq, peer):
        while True:  # tolerate stray CRLF between requests (RFC 9112 2.2)
            while rd.buf.startswith(b"\r\n"):
                del rd.buf[:2]
            if rd.buf and rd.buf != b"\r":
                break
            rd._fill()
        lines = rd.until(b"\r\n\r\n", 1 << 20).split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise _Close(f"bad request line {lines[0]!r}")
        method, target, version = parts
        headers = []
        for raw in lines[1:]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _Close(f"bad header line {raw!r}")
            headers.append((name, value.strip(" \t")))
        req = RecordedRequest(cid, seq, peer, method, target, version, headers)
        with self.lock:
            self.started.append(req)
            if self.max_records and len(self.started) > self.max_records:
                del self.started[:-self.max_records]
            self.lock.notify_all()
        if self.log:
            self.log(f"{peer[0]}:{peer[1]} #{cid}/{seq} {method} {target}")
        return req

    def _read_body(self, sock, rd, req):
        h = hashlib.sha256()
        store = bytearray()
        n = 0

        def take(data):
            nonlocal n
            n += len(data)
            h.update(data)
            if n <= self.store_limit:
                store.extend(data)

        te = [v.strip().lower() for v in ",".join(req.header_all("Transfer-Encoding")).split(",") if v.strip()]
        cls = req.header_all("Content-Length")
        if te:
            if te[-1] != "chunked":
                raise _Close("unsupported transfer-encoding")
            req.framing = "chunked"
            while True:
                size_line = rd.until(b"\r\n", 4096).split(b";", 1)[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while True:
                        t = rd.until(b"\r\n", 65536)
                        if not t:
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        req.trailers.append((k, v.strip()))
                    break
                while size > 0:
                    data = rd.some(size)
                    size -= len(data)
                    take(data)
                if rd.until(b"\r\n", 2) != b"":
                    raise _Close("bad chunk end")
        elif cls:
            if len(set(cls)) != 1:
                raise _Close("conflicting content-length")
            left = int(cls[0])
            req.framing = "length"
            while left > 0:
                data = rd.some(min(left, 262144))
                left -= len(data)
                take(data)
        else:
            req.framing = "none"
        req.body_len = n
        req.body_sha256 = h.hexdigest()
        req.body = bytes(store) if n <= self.store_limit else None

    def _handle(self, sock, rd, req):
        """Reads the body, records, answers. Returns False to close."""
        path = req.path
        qs = parse_qs(req.query or "")

        def q(name, default):
            return qs.get(name, [default])[0]

        if path == "/hold-sink":
            self._event(q("key", "")).wait(30)
        if (req.header("Expect") or "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._read_body(sock, rd, req)
        req.complete = True
        with self.lock:
            self.requests.append(req)
            if self.max_records and len(self.requests) > self.max_records:
                del self.requests[:-self.max_records]
            self.lock.notify_all()

        conn_tokens = [t.strip().lower() for v in req.header_all("Connection") for t in v.split(",")]
        keep = "close" not in conn_tokens and (req.version == "HTTP/1.1" or "keep-alive" in conn_tokens)
        head_only = req.method == "HEAD"

        if self.drop_reused and req.seq > 0:
            return False
        if path in self.responses:
            status, headers, body = self.responses[path]
            self._send(sock, status, headers, body, keep, head_only)
            return keep
        if path == "/drop":
            return False
        if path == "/reset":  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if path == "/garbage":
            sock.sendall(b"THIS IS NOT HTTP\r\n\x00\x01\x02\r\n\r\n")
            return False
        if path == "/close-after":
            self._send(sock, 200, [("Content-Type", "text/plain")], b"closing now", False, head_only)
            return False
        if path == "/close-delimited":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until close " * 1000)
            return False
        if path == "/close-mid-body":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            return False
        if path == "/stall-body":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n" + b"a" * 10)
            if self._stop.wait(int(q("ms", "1000")) / 1000):
                return False
            sock.sendall(b"b" * 10)
            return keep
        if path.startswith("/status/"):
            status = int(path[len("/status/"):])
            body = b"" if status in (204, 304) else f"status {status}\n".encode()
            self._send(sock, status, [("Content-Type", "text/plain")], body, keep, head_only)
            return keep
        if path == "/no-body/204":
            self._send(sock, 204, [("X-Upstream", "recording")], b"", keep, head_only)
            return keep
        if path == "/304":
            self._send(sock, 304, [("ETag", '"v1"'), ("X-Upstream", "recording")], b"", keep, head_only)
            return keep
        if path == "/big":
            self._send_big(sock, int(q("size", "1048576")), q("mode", "length"), keep, head_only)
            return keep
        if path == "/early-hints":
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        if path == "/slow" and self._stop.wait(int(q("ms", "1000")) / 1000):
            return False
        if path in ("/hold",):
            self._event(q("key", "")).wait(30)
        body = json.dumps(req.to_json()).encode()
        self._send(sock, 200, [("Content-Type", "application/json"), ("X-Upstream", "recording")],
                   body, keep, head_only)
        return keep

    def _send(self, sock, status, headers, body, keep, head_only):
        reason = _reason(status)
        names = {k.lower() for k, _ in headers}
        out = [f"HTTP/1.1 {status} {reason}"]
        out += [f"{k}: {v}" for k, v in headers]
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body and "content-length" not in names and "transfer-encoding" not in names:
            out.append(f"Content-Length: {len(body)}")
        if not keep:
            out.append("Connection: close")
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if not head_only and not no_body:
            data += body
        sock.sendall(data)

    def _send_big(self, sock, size, mode, keep, head_only):
        hdrs = ["HTTP/1.1 200 OK", "Content-Type: application/octet-stream"]
        hdrs.append("Transfer-Encoding: chunked" if mode == "chunked" else f"Content-Length: {size}")
        if not keep:
            hdrs.append("Connection: close")
        sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())
        if head_only:
            return
        for piece in big_body(size):
            if mode == "chunked":
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                sock.sendall(piece)
            with self.lock:
                self.big_bytes_sent += len(piece)
        if mode == "chunked":
            sock.sendall(b"0\r\n\r\n")


def _reason(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# ---------------------------------------------------------------------------
# Stand-alone


def main(argv=None):
    ap = argparse.ArgumentParser(description="Recording HTTP/1.1 upstream (echoes requests as JSON)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda s: print(f"recording_upstream: {s}", file=sys.stderr, flush=True))
    up = RecordingUpstream(args.host, args.port, log=log, max_records=1000).start()
    print(up.port, flush=True)
    print(f"recording_upstream: listening on {up.addr}", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(1):
        pass
    up.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
