"""A raw-socket HTTP/1.1 client for the e2e tests.

requests/urllib3 refuse to send most of what a hostile client sends, and hide
how a response was framed. This one sends bytes exactly as given and parses
what comes back strictly, recording whether the message ended cleanly.
"""

import json
import socket
import time


class Closed(Exception):
    """The server closed the connection before a complete status line + head."""


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers        # [(name, value), ...] in order
        self.body = b""
        self.complete = True          # False: connection ended inside the body
        self.framing = None           # "length", "chunked", "close" or "none"
        self.trailers = []
        self.interim = []             # 1xx responses seen before this one

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        vals = self.header_all(name)
        assert len(vals) <= 1, f"response header {name} repeated: {vals!r}"
        return vals[0] if vals else None

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class RawConn:
    """One client connection. Every read is bounded by timeout (seconds)."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    # -- sending ------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method, target, headers=(), body=b"", host="gw.test"):
        """Sends a well-formed request (Host and Content-Length added when missing)."""
        lines = [f"{method} {target} HTTP/1.1"]
        names = {k.lower() for k, _ in headers}
        if host is not None and "host" not in names:
            lines.append(f"Host: {host}")
        lines += [f"{k}: {v}" for k, v in headers]
        if body and "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, str):
            body = body.encode()
        self.send(data + body)

    # -- receiving ----------------------------------------------------------
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _until(self, delim, deadline):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if self.eof or not self._fill(deadline):
                return None

    def _exact(self, n, deadline, sink):
        while n > 0:
            if not self.buf:
                if self.eof or not self._fill(deadline):
                    return False
            take = bytes(self.buf[:n])
            del self.buf[:len(take)]
            n -= len(take)
            sink(take)
        return True

    def read_head(self, timeout=None):
        """Reads one response head; returns a Response with no body read yet."""
        deadline = time.monotonic() + (timeout or self.timeout)
        head = self._until(b"\r\n\r\n", deadline)
        if head is None:
            raise Closed(f"connection closed before a response head; got {bytes(self.buf)!r}")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        assert version.startswith("HTTP/1."), f"bad status line {lines[0]!r}"
        headers = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            assert sep, f"bad response header line {ln!r}"
            headers.append((k, v.strip(" \t")))
        return Response(version, int(code), reason, headers)

    def read_response(self, method="GET", timeout=None, stop_at_interim=False, sink=None):
        """Reads one whole response (1xx interim responses are collected on it,
        or returned themselves with stop_at_interim). sink(bytes), if given,
        receives the body instead of Response.body."""
        timeout = timeout or self.timeout
        interim = []
        while True:
            resp = self.read_head(timeout)
            if 100 <= resp.status < 200 and resp.status != 101:
                if stop_at_interim:
                    return resp
                interim.append(resp)
                continue
            break
        resp.interim = interim
        self.read_body(resp, method, timeout, sink)
        return resp

    def read_body(self, resp, method="GET", timeout=None, sink=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        parts = []
        sink = sink or parts.append
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        cl = resp.header_all("Content-Length")
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
        elif "chunked" in te:
            resp.framing = "chunked"
            resp.complete = False
            while True:
                line = self._until(b"\r\n", deadline)
                if line is None:
                    break
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self._until(b"\r\n", deadline)
                        if t is None:
                            break
                        if t == b"":
                            resp.complete = True
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        resp.trailers.append((k, v.strip()))
                    break
                if not self._exact(size, deadline, sink):
                    break
                if self._until(b"\r\n", deadline) != b"":
                    break
        elif cl:
            assert len(set(cl)) == 1, f"conflicting Content-Length in response: {cl}"
            resp.framing = "length"
            resp.complete = self._exact(int(cl[0]), deadline, sink)
        else:
            resp.framing = "close"
            while not self.eof:
                self._fill(deadline)
            sink(bytes(self.buf))
            self.buf.clear()
        resp.body = b"".join(parts)
        return resp

    def read_until_close(self, timeout=None):
        """Everything the server sends until it closes; raises on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            self._fill(deadline)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_by_peer(self, timeout=None):
        """True when the server closes (EOF or reset) within timeout with no
        further bytes; False when the connection stays open that long."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while not self.eof:
                self._fill(deadline)
        except socket.timeout:
            return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
