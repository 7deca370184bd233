"""Remote key sets end to end: `jwks_url` and OIDC `discovery`.

An in-process identity provider (`IdP`, a threaded http.server on 127.0.0.1)
serves a JWKS, a discovery document and whatever failure a test asks for
(500, a hang, bad JSON, a closed port, a slow answer, a redirect), and
counts the requests it receives per path. Tokens are minted with PyJWT; the
keys are generated with `cryptography`. Each gateway is the real binary,
started by conftest's `gateway` fixture with one issuer ("corpsso") on
/corpsso/** and an unprotected /open/**.

Every refusal also checks that the recording upstream received nothing.
Timings use small refresh/cooldown values so every test ends in seconds.
"""

import base64
import datetime
import ipaddress
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import (GATEHOUSE_BIN, Gateway, assert_problem, challenge, free_port, make_config, route_file,
                      wait_until)
from rawhttp import RawConn

NAME = "corpsso"                      # the issuer's name in gatehouse.lua
ISS = "https://sso.test/realms/dev"   # its `issuer` (jwks_url tests)
AUD = "orders-api"
REALM = "dev"
PATH = f"/{NAME}/echo"
CERTS = "/certs"
DISCOVERY = "/realms/dev/.well-known/openid-configuration"
DISCOVERED_CERTS = "/realms/dev/protocol/openid-connect/certs"
UNKNOWN_KID = "unknown signing key"   # src/jwt.c: GH_JWT_UNKNOWN_KID

# ---------------------------------------------------------------------------
# Waiting (every wait bounded; the failure message is built when it fails)


def wait_for(pred, timeout, what, interval=0.05):
    return wait_until(pred, timeout, what, interval)


# ---------------------------------------------------------------------------
# The identity provider


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        idp = self.server.idp
        path = self.path.split("?", 1)[0]
        idp._bump(path)
        status, headers, body, delay, hang = idp._answer(path)
        if delay:
            idp._stopping.wait(delay)
        if hang:
            deadline = time.monotonic() + IdP.HANG_MAX
            while idp.mode == "hang" and not idp._stopping.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.close_connection = True
            return  # closes without an answer
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if idp.mode != "drip":
                self.wfile.write(body)
                return
            # a complete, good answer, but trickled: 16 bytes every 0.25 s
            self.wfile.flush()
            deadline = time.monotonic() + IdP.HANG_MAX
            for i in range(0, len(body), 16):
                if idp.mode != "drip" or idp._stopping.is_set() or time.monotonic() > deadline:
                    break
                self.wfile.write(body[i:i + 16])
                self.wfile.flush()
                time.sleep(0.25)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, idp):
        self.idp = idp
        super().__init__(("127.0.0.1", idp.port), _Handler)

    def finish_request(self, request, client_address):
        tls = self.idp.tls
        if tls is None:
            return super().finish_request(request, client_address)
        # the handshake runs in the connection's own thread, bounded
        request.settimeout(5)
        self.idp._bump("<tls>")
        try:
            conn = tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as ex:
            self.idp._note_tls_error(ex)
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request, client_address):
        pass  # a client going away is not an error here


class IdP:
    """A JWKS / OpenID provider on 127.0.0.1 whose answers the test sets at run time.

    Not listening until start(); fail(mode) with mode "500", "404", "hang"
    (reads the request, never answers), "drip" (a good answer trickled
    slowly), "badjson", "empty" (a set with no keys) or "refuse" (the
    listening socket is closed); recover() to serve again on the same port. Every path not otherwise special serves
    the JWKS (self.jwks) with self.cache_control; DISCOVERY serves the
    discovery document (self.discovery, default: issuer base/realms/dev and
    jwks_uri base+DISCOVERED_CERTS). count(path) counts requests received."""

    HANG_MAX = 15.0

    def __init__(self, tls=None):
        self.tls = tls                 # server-side ssl.SSLContext, or None
        self.port = free_port()        # fixed: the IdP can go down and come back on it
        self.lock = threading.Lock()
        self.counts = Counter()
        self.times = {}
        self.tls_errors = []
        self.jwks = {"keys": []}
        self.cache_control = None      # Cache-Control of JWKS answers, or None
        self.status = 200              # status of JWKS answers
        self.delay = 0.0               # seconds before every answer
        self.mode = "up"
        self.discovery = None          # a dict replaces the default document
        self.redirects = {}            # path -> location (302)
        self.missing = set()           # paths answered 404
        self.extra_body = b""          # appended inside the JWKS object (size tests)
        self._stopping = threading.Event()
        self._httpd = None
        self._thread = None

    # -- addresses ----------------------------------------------------------
    @property
    def base(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path=CERTS):
        return self.base + path

    # -- state --------------------------------------------------------------
    def set_keys(self, *jwks, cache_control=False):
        with self.lock:
            self.jwks = {"keys": list(jwks)}
            if cache_control is not False:
                self.cache_control = cache_control

    def count(self, path=CERTS):
        with self.lock:
            return self.counts[path]

    def _bump(self, path):
        with self.lock:
            self.counts[path] += 1
            self.times.setdefault(path, []).append(time.monotonic())

    def stamps(self, path=CERTS):
        """monotonic() of each request received on path, oldest first."""
        with self.lock:
            return list(self.times.get(path, []))

    def _note_tls_error(self, ex):
        with self.lock:
            self.tls_errors.append(repr(ex))

    def _answer(self, path):
        """(status, headers, body, delay, hang) for one request."""
        with self.lock:
            delay = self.delay
            mode = self.mode
            if mode == "hang":
                return 0, [], b"", delay, True
            if mode == "500":
                return 500, [("Content-Type", "text/plain")], b"internal error\n", delay, False
            if mode == "badjson":
                return 200, [("Content-Type", "application/json")], b'{"keys": [ {"kty": "RSA", ', delay, False
            if mode == "404":
                return 404, [("Content-Type", "text/plain")], b"not found\n", delay, False
            if mode == "empty":
                return 200, [("Content-Type", "application/json")], b'{"keys": []}', delay, False
            if path in self.redirects:
                return 302, [("Location", self.url(self.redirects[path]))], b"", delay, False
            if path in self.missing:
                return 404, [("Content-Type", "text/plain")], b"not found\n", delay, False
            if path == DISCOVERY:
                doc = self.discovery or {
                    "issuer": self.base + "/realms/dev",
                    "jwks_uri": self.base + DISCOVERED_CERTS,
                    "authorization_endpoint": self.base + "/realms/dev/protocol/openid-connect/auth",
                    "token_endpoint": self.base + "/realms/dev/protocol/openid-connect/token",
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }
                return 200, [("Content-Type", "application/json")], json.dumps(doc).encode(), delay, False
            body = json.dumps(self.jwks).encode()
            if self.extra_body:
                body = body[:-1] + b', "pad": "' + self.extra_body + b'"}'
            headers = [("Content-Type", "application/json")]
            if self.cache_control:
                headers.append(("Cache-Control", self.cache_control))
            return self.status, headers, body, delay, False

    # -- lifecycle ----------------------------------------------------------
    def start(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self._httpd = _Server(self)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def _close_listener(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self._httpd = None

    def fail(self, mode):
        assert mode in ("500", "hang", "badjson", "404", "empty", "drip", "refuse"), mode
        if mode == "refuse":
            self._close_listener()
        else:
            with self.lock:
                self.mode = mode

    def recover(self):
        with self.lock:
            self.mode = "up"
        if self._httpd is None:
            self.start()

    def stop(self):
        self._stopping.set()
        with self.lock:
            self.mode = "stopped"
        self._close_listener()


@pytest.fixture
def idps():
    """idps(tls=None) -> a new, not yet listening IdP; all are stopped at teardown.
    Ask for this fixture before `gateway` so the gateway stops first."""
    made = []

    def make(**kw):
        s = IdP(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


# ---------------------------------------------------------------------------
# Keys and tokens


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


def jwk_rsa(key, **extra):
    pn = key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64u(int_bytes(pn.n)), "e": b64u(int_bytes(pn.e)), **extra}


def jwk_ec(key, **extra):
    pn = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(int_bytes(pn.x, 32)), "y": b64u(int_bytes(pn.y, 32)), **extra}


class Keys:
    def __init__(self):
        self.k1 = rsa.generate_private_key(65537, 2048)
        self.k2 = rsa.generate_private_key(65537, 2048)
        self.k3 = rsa.generate_private_key(65537, 2048)
        self.rogue = rsa.generate_private_key(65537, 2048)  # in no served set
        self.e1 = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def keys():
    return Keys()


_seq = itertools.count(1)


def claims(iss=ISS, **kw):
    now = int(time.time())
    c = {"iss": iss, "aud": AUD, "sub": "user-42", "iat": now, "exp": now + 300,
         "jti": f"jwks-{next(_seq)}-{secrets.token_hex(6)}"}
    c.update(kw)
    return c


def mint(key, kid, alg="RS256", iss=ISS):
    """A fresh token (a new jti: never in the gateway's token cache)."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(iss), key, algorithm=alg, headers=headers)


# ---------------------------------------------------------------------------
# Gateways


def issuer_conf(idp, path=CERTS, jwks=None, **kw):
    c = {"issuer": ISS, "audience": AUD, "realm": REALM, "jwks_url": idp.url(path)}
    if jwks is not None:
        c["jwks"] = jwks
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def start_gw(gateway, upstream, issuers, workers=1, start=True):
    routes = [{"name": "open", "match": {"path": "/open/**"}, "upstream": "up"}]
    routes += [{"name": n, "match": {"path": f"/{n}/**"}, "upstream": "up", "auth": n} for n in issuers]
    gw = gateway(upstreams={"up": {"targets": [upstream.addr]}}, routes=routes, issuers=issuers,
                 workers=workers, start=False)
    if start:
        launch(gw)
    return gw


def launch(gw):
    """gw.start(); a gateway that fails to start fails the test (once: the
    fixture's teardown is told the exit was seen)."""
    try:
        return gw.start()
    except AssertionError:
        if gw.proc is not None:
            gw.wait_exit(5)
        raise


def send(gw, path=PATH, token=None, timeout=10.0):
    hs = [("X-Request-Id", f"jwks-{next(_seq)}")]
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    with RawConn("127.0.0.1", gw.port, timeout) as c:
        c.request("GET", path, headers=hs)
        return c.read_response()


def wait_keys(gw, upstream, token, path=PATH, timeout=6.0):
    """With startup "503": polls until the gateway stops answering 503 (its
    first fetch is done); requires a 200 and forgets what reached the upstream."""
    last = []

    def probe():
        r = send(gw, path, token)
        last[:] = [r]
        return r.status != 503

    wait_for(probe, timeout, lambda: f"the issuer's keys (still {last[0].status}): {last[0].text[:300]}\n"
                                     f"stderr:\n{gw.stderr()[-3000:]}")
    r = last[0]
    assert r.status == 200, f"expected 200 once the keys are in, got {r!r}\nstderr:\n{gw.stderr()[-3000:]}"
    upstream.wait_for(1)
    upstream.clear()
    return r


def nothing_upstream(upstream):
    time.sleep(0.03)  # a forward, were there one, would have started by now
    assert upstream.started == [], f"the upstream received a request: {upstream.started!r}"
    assert upstream.bytes_received == 0, f"the upstream received {upstream.bytes_received} bytes"


def accepted(gw, upstream, resp, token=None):
    assert resp.status == 200, (f"expected 200, got {resp.status}: {resp.body[:400]!r} {resp.headers!r}\n"
                                f"stderr:\n{gw.stderr()[-3000:]}")
    assert resp.header("X-Upstream") == "recording", resp.headers
    (req,) = upstream.wait_for(1)
    if token:
        assert req.header_all("Authorization") == [f"Bearer {token}"], req.headers
    upstream.clear()
    return req


def accept(gw, upstream, token, path=PATH):
    return accepted(gw, upstream, send(gw, path, token), token)


def refused(gw, upstream, resp, reason=UNKNOWN_KID):
    assert resp.status == 401, (f"expected 401, got {resp.status}: {resp.body[:400]!r}\n"
                                f"stderr:\n{gw.stderr()[-3000:]}")
    assert_problem(resp, 401)
    ch = challenge(resp)
    assert ch.get("realm") == REALM, ch
    assert ch.get("error") == "invalid_token", ch
    if reason is not None:
        want = {reason} if isinstance(reason, str) else set(reason)
        assert ch.get("error_description") in want, f"{ch} (wanted one of {want})"
    nothing_upstream(upstream)
    return ch


def refuse(gw, upstream, token, reason=UNKNOWN_KID, path=PATH):
    return refused(gw, upstream, send(gw, path, token), reason)


def unavailable(gw, upstream, resp):
    """A 503 problem with Retry-After, nothing upstream."""
    assert resp.status == 503, (f"expected 503, got {resp.status}: {resp.body[:400]!r}\n"
                                f"stderr:\n{gw.stderr()[-3000:]}")
    assert_problem(resp, 503)
    ra = resp.header("Retry-After")
    assert ra is not None, f"503 without Retry-After: {resp.headers!r}"
    assert re.fullmatch(r"\d+", ra.strip()), f"Retry-After {ra!r} is not delay-seconds"
    nothing_upstream(upstream)


def error_lines(gw):
    return [l for l in gw.stderr().splitlines() if l.strip() and not l.startswith("{")]


def issuer_lines(gw, names=(NAME, ISS)):
    return [l for l in error_lines(gw) if any(n in l for n in names)]


def wait_issuer_log(gw, after=0, words=None, names=(NAME, ISS), timeout=6.0):
    """Waits for a stderr line (past the first `after` such lines) naming the
    issuer and, when words are given, containing one of them (any case)."""

    def find():
        ls = issuer_lines(gw, names)[after:]
        if words:
            ls = [l for l in ls if any(w.lower() in l.lower() for w in words)]
        return ls

    return wait_for(find, timeout, lambda: f"a log line naming the issuer ({names}) and one of {words}; "
                                           f"stderr:\n{gw.stderr()[-3000:]}")


# ---------------------------------------------------------------------------
# 1. jwks_url: keys from the served set


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_jwks_url_token_accepted(idps, gateway, upstream, keys, alg):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1", use="sig"), jwk_ec(keys.e1, kid="e1"))
    idp.start()
    gw = start_gw(gateway, upstream, {
        NAME: issuer_conf(idp, algorithms=["RS256", "ES256"]),
        "dflt": issuer_conf(idp),  # no algorithms: RS256 only for a remote source
    })
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    wait_keys(gw, upstream, mint(keys.k1, "k1"), path="/dflt/echo")

    key, kid = (keys.k1, "k1") if alg == "RS256" else (keys.e1, "e1")
    tok = mint(key, kid, alg)
    accept(gw, upstream, tok)
    # the same token again (now from the token cache)
    accept(gw, upstream, tok)
    # the default algorithms of a remote source are {"RS256"}
    if alg == "RS256":
        accept(gw, upstream, mint(key, kid, alg), path="/dflt/echo")
    else:
        refuse(gw, upstream, mint(key, kid, alg), "algorithm not allowed", path="/dflt/echo")
    # a listed kid does not make another key's signature good
    rogue = keys.rogue if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    refuse(gw, upstream, mint(rogue, kid, alg), "invalid signature")
    # no token at all: a bare challenge
    r = send(gw)
    assert r.status == 401, r
    assert "error" not in challenge(r), r.headers
    nothing_upstream(upstream)
    accept(gw, upstream, mint(key, kid, alg))


# ---------------------------------------------------------------------------
# 2. Rotation


@pytest.mark.parametrize("workers", [1, 2])
def test_rotation_new_key_fetched_removed_key_refused(idps, gateway, upstream, keys, workers):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))  # no Cache-Control: refresh = 300
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"refresh": 300, "refresh_min": 1,
                                                                   "cooldown": 10})}, workers=workers)
    pid = gw.pid
    t1 = mint(keys.k1, "k1")
    wait_keys(gw, upstream, t1)
    for _ in range(2 * workers):
        accept(gw, upstream, t1)  # t1 is now in the token cache (of each worker, most likely)
    n0 = idp.count()

    # the IdP rotates in k2; from now on its answers say max-age=1
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k2, kid="k2"), cache_control="max-age=1")
    t2 = mint(keys.k2, "k2")
    accept(gw, upstream, t2)
    assert idp.count() == n0 + 1, f"the first k2 token should cause exactly one fetch: {idp.count() - n0}"
    assert gw.alive() and gw.pid == pid
    accept(gw, upstream, mint(keys.k1, "k1"))  # k1 still served: still good
    accept(gw, upstream, t1)
    accept(gw, upstream, mint(keys.k2, "k2"))

    # the IdP drops k1; the gateway refreshes every 0.8 s (max-age=1, refresh_min=1)
    idp.set_keys(jwk_rsa(keys.k2, kid="k2"))
    n1 = idp.count()
    wait_for(lambda: idp.count() >= n1 + 2, 6.0,
             lambda: f"two refreshes after the change (saw {idp.count() - n1}); stderr:\n{gw.stderr()[-2000:]}")
    for _ in range(2 * workers):
        refuse(gw, upstream, t1)                 # cached before: dropped with the old set
    refuse(gw, upstream, mint(keys.k1, "k1"))    # a fresh k1 token
    accept(gw, upstream, t2)                     # cached under the old set, k2 still served
    accept(gw, upstream, mint(keys.k2, "k2"))
    assert gw.alive() and gw.pid == pid


# ---------------------------------------------------------------------------
# 3. Single flight


def _concurrent(gw, tokens, timeout=10.0):
    """Sends one request per token, all at once; returns responses (or exceptions)."""
    results = [None] * len(tokens)
    barrier = threading.Barrier(len(tokens))

    def one(i):
        try:
            barrier.wait(5)
            results[i] = send(gw, PATH, tokens[i], timeout=timeout)
        except Exception as ex:  # reported by the caller
            results[i] = ex

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    assert not any(t.is_alive() for t in threads), "client threads still running"
    return results


def test_single_flight_one_fetch_for_concurrent_unknown_kid(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"wait": 3, "timeout": 5})}, workers=4)
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()

    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k3, kid="kN"))
    idp.delay = 0.5
    tokens = [mint(keys.k3, "kN") for _ in range(20)]
    t0 = time.monotonic()
    results = _concurrent(gw, tokens)
    elapsed = time.monotonic() - t0
    bad = [r for r in results if not (hasattr(r, "status") and r.status == 200)]
    assert not bad, f"{len(bad)} of 20 not 200: {bad[:3]!r}\nstderr:\n{gw.stderr()[-3000:]}"
    assert elapsed < 8, elapsed
    assert len(upstream.wait_for(20)) == 20
    assert idp.count() == n0 + 1, f"20 concurrent kN requests caused {idp.count() - n0} fetches, wanted 1"


def test_unknown_kid_fetch_slower_than_wait_is_503(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"wait": 1, "timeout": 5, "cooldown": 0})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()

    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k3, kid="slow"))
    idp.delay = 2.5
    t0 = time.monotonic()
    r = send(gw, PATH, mint(keys.k3, "slow"))
    elapsed = time.monotonic() - t0
    unavailable(gw, upstream, r)
    assert 0.7 <= elapsed <= 2.3, f"answered after {elapsed:.2f}s; wait = 1"
    # the fetch goes on and lands; the kid is then good, with no second fetch
    wait_for(lambda: send(gw, PATH, mint(keys.k3, "slow")).status == 200, 8.0,
             lambda: f"the slow kid to be accepted; stderr:\n{gw.stderr()[-2000:]}")
    upstream.clear()
    idp.delay = 0
    accept(gw, upstream, mint(keys.k3, "slow"))
    assert idp.count() == n0 + 1, f"{idp.count() - n0} fetches, wanted 1"


def test_unknown_kid_during_an_older_refresh_gets_its_own_fetch(idps, gateway, upstream, keys):
    # A periodic refresh is under way, its answer already decided (without k2), when
    # the IdP publishes k2 and the first k2 token arrives. That token "triggers one
    # shared re-fetch": it must not be judged on the older fetch alone, and the kid
    # must not land in the negative cache on the strength of it.
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), cache_control="max-age=2")
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"refresh_min": 1, "wait": 3, "cooldown": 0,
                                                                   "negative_ttl": 60})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    idp.delay = 1.0  # answers are decided on arrival, sent 1 s later
    n0 = idp.count()
    wait_for(lambda: idp.count() > n0, 4.0, "the next periodic refresh")
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k2, kid="k2"), cache_control="max-age=100000")
    r = send(gw, PATH, mint(keys.k2, "k2"))
    assert r.status == 200, (f"the first k2 token, sent while an older refresh was in flight: {r.status} "
                             f"{r.header('WWW-Authenticate')}; fetches since: {idp.count() - n0}\n"
                             f"{gw.stderr()[-1500:]}")
    upstream.clear()
    accept(gw, upstream, mint(keys.k2, "k2"))


# ---------------------------------------------------------------------------
# 4. Cooldown and negative cache


def test_unknown_kid_flood_fetches_at_most_once(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"cooldown": 30, "negative_ttl": 60})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()

    tokens = [mint(keys.rogue, secrets.token_hex(8)) for _ in range(50)]
    t0 = time.monotonic()
    results = []
    for batch in range(5):  # 10 at a time
        results += _concurrent(gw, tokens[batch * 10:(batch + 1) * 10])
    elapsed = time.monotonic() - t0
    for r in results:
        assert hasattr(r, "status"), r
        refused(gw, upstream, r)
    assert idp.count() - n0 <= 1, f"50 unknown kids caused {idp.count() - n0} fetches (cooldown 30)"
    assert elapsed < 10, elapsed
    # the same unknown kids again: no fetch either
    for tok in tokens[:5]:
        refuse(gw, upstream, tok)
    assert idp.count() - n0 <= 1
    accept(gw, upstream, mint(keys.k1, "k1"))


def test_negative_cache_no_refetch_for_same_unknown_kid(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"cooldown": 0, "negative_ttl": 60})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()

    refuse(gw, upstream, mint(keys.rogue, "ghost-x"))
    assert idp.count() == n0 + 1, f"cooldown 0: an unknown kid fetches once ({idp.count() - n0})"
    refuse(gw, upstream, mint(keys.rogue, "ghost-x"))
    refuse(gw, upstream, mint(keys.k2, "ghost-x"))
    time.sleep(0.3)
    assert idp.count() == n0 + 1, f"a kid unknown after a fetch is refused without fetching ({idp.count() - n0})"
    # another unknown kid is not in the negative cache (and cooldown is 0)
    refuse(gw, upstream, mint(keys.rogue, "ghost-y"))
    assert idp.count() == n0 + 2, f"a different unknown kid should fetch ({idp.count() - n0})"
    accept(gw, upstream, mint(keys.k1, "k1"))


def test_negative_cache_entry_expires(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"cooldown": 0, "negative_ttl": 1})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()
    refuse(gw, upstream, mint(keys.rogue, "later"))
    assert idp.count() == n0 + 1
    refuse(gw, upstream, mint(keys.rogue, "later"))
    assert idp.count() == n0 + 1, "negative_ttl = 1: no fetch right away"
    # meanwhile the IdP publishes that kid; once the entry expired, a request fetches it
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k2, kid="later"))
    time.sleep(1.3)
    accept(gw, upstream, mint(keys.k2, "later"))
    assert idp.count() == n0 + 2


def test_cooldown_expires_and_is_per_issuer(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    opts = {"cooldown": 2, "negative_ttl": 0}
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, CERTS, jwks=opts),
                                      "other": issuer_conf(idp, "/certs2", jwks=opts)})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    wait_keys(gw, upstream, mint(keys.k1, "k1"), path="/other/echo")
    n0, m0 = idp.count(CERTS), idp.count("/certs2")

    refuse(gw, upstream, mint(keys.rogue, "ghost"))
    t_fetch = time.monotonic()
    assert idp.count(CERTS) == n0 + 1
    # the IdP now has k2, but within the cooldown a new kid is refused without a fetch
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k2, kid="k2"))
    refuse(gw, upstream, mint(keys.k2, "k2"))
    assert idp.count(CERTS) == n0 + 1, "fetched within the cooldown"
    # the cooldown is per issuer: "other" fetches for its unknown kid at once
    accept(gw, upstream, mint(keys.k2, "k2"), path="/other/echo")
    assert idp.count("/certs2") == m0 + 1
    assert idp.count(CERTS) == n0 + 1
    # once the cooldown is over, the kid triggers a fetch and is accepted
    time.sleep(max(0.0, t_fetch + 2.3 - time.monotonic()))
    accept(gw, upstream, mint(keys.k2, "k2"))
    assert idp.count(CERTS) == n0 + 2


def test_kidless_key_unknown_kid_is_bad_signature_without_fetch(idps, gateway, upstream, keys):
    # "Unknown kid" means: no key with that kid and no kid-less key fitting it
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1))  # no kid
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"cooldown": 0, "negative_ttl": 0})})
    wait_keys(gw, upstream, mint(keys.k1, None))
    n0 = idp.count()
    accept(gw, upstream, mint(keys.k1, "anything"))  # the kid-less key fits
    refuse(gw, upstream, mint(keys.rogue, "other"), "invalid signature")
    time.sleep(0.2)
    assert idp.count() == n0, "a fetch for a kid that a kid-less key fits"


# ---------------------------------------------------------------------------
# 5. Stale if error


FAIL_WORDS = {
    "500": ["500"],
    "404": ["404"],
    "empty": ["fail", "usable", "empty", "no signing", "no key"],
    "drip": ["timeout", "timed out", "time out", "within"],
    "refuse": ["refused", "connect"],
    "hang": ["timeout", "timed out", "time out", "within"],
    "badjson": ["json", "parse", "invalid", "malformed", "syntax"],
}


@pytest.mark.parametrize("mode", ["500", "404", "refuse", "hang", "drip", "badjson", "empty"])
def test_stale_if_error_keeps_last_good_keys(idps, gateway, upstream, keys, mode):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), cache_control="max-age=1")
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"refresh_min": 1, "timeout": 1})})
    t1 = mint(keys.k1, "k1")
    wait_keys(gw, upstream, t1)
    accept(gw, upstream, t1)
    before = len(issuer_lines(gw))
    n0 = idp.count()

    idp.fail(mode)
    wait_issuer_log(gw, before, FAIL_WORDS[mode], timeout=6.0)
    if mode != "refuse":
        assert idp.count() > n0
    time.sleep(1.2)  # a retry (backoff from 1 s) fails too
    accept(gw, upstream, t1)
    accept(gw, upstream, mint(keys.k1, "k1"))
    assert gw.alive()

    # back up: the retries pick it up (backoff capped at refresh_min = 1 s)
    n1 = idp.count()
    idp.recover()
    wait_for(lambda: idp.count() > n1, 6.0, lambda: f"a fetch after recovery; stderr:\n{gw.stderr()[-2000:]}")
    accept(gw, upstream, mint(keys.k1, "k1"))


@pytest.mark.parametrize("refresh_min", [30, 2])
def test_retry_backoff_doubles_up_to_refresh_min(idps, gateway, upstream, keys, refresh_min):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.fail("500")
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"refresh_min": refresh_min})})
    wait_for(lambda: idp.count() >= 1, 5.0, "the first fetch")
    time.sleep(6.5)
    ts = idp.stamps()
    gaps = [round(b - a, 2) for a, b in zip(ts, ts[1:])]
    # from the first attempt: +1, +2, then +4 (cap 30) or +2 (cap refresh_min = 2)
    want = [1, 2, 4] if refresh_min == 30 else [1, 2, 2, 2]
    assert len(gaps) >= 2, f"retries at {gaps} (gaps in s); wanted about {want}\n{gw.stderr()[-2000:]}"
    for got, w in zip(gaps, want):
        assert 0.8 * w <= got <= w + 0.6, f"retry gaps {gaps} s, wanted about {want}"
    assert len(gaps) <= len([w for w in itertools.accumulate(want) if w <= 6.6]), \
        f"too many retries: gaps {gaps} s, wanted about {want}"
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1")))
    idp.recover()
    wait_for(lambda: send(gw, PATH, mint(keys.k1, "k1")).status == 200, 2.5 + (4 if refresh_min == 30 else 2),
             lambda: f"keys after recovery; stderr:\n{gw.stderr()[-2000:]}")


def test_body_just_under_one_mib_accepted(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.extra_body = b"x" * 1_000_000  # the whole body stays under 1 MiB (1048576 bytes)
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp)})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    accept(gw, upstream, mint(keys.k1, "k1"))


def test_slow_fetch_blocks_no_worker(idps, gateway, upstream, keys):
    # one worker: were the fetch done on it, nothing else would be served meanwhile
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"wait": 3, "timeout": 5})}, workers=1)
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), jwk_rsa(keys.k2, kid="k2"))
    idp.delay = 2.0
    slow = []
    th = threading.Thread(target=lambda: slow.append(send(gw, PATH, mint(keys.k2, "k2"))), daemon=True)
    th.start()
    wait_for(lambda: idp.count() >= 2, 3.0, "the kid-triggered fetch")
    for path, tok in (("/open/echo", None), (PATH, mint(keys.k1, "k1")), ("/open/echo", None)):
        t0 = time.monotonic()
        r = send(gw, path, tok)
        took = time.monotonic() - t0
        accepted(gw, upstream, r, tok)
        assert took < 0.5, f"{path} took {took:.2f}s while a key fetch was under way"
    th.join(6)
    assert slow and slow[0].status == 200, slow
    upstream.clear()


# ---------------------------------------------------------------------------
# 6./7. Startup


def test_startup_503_until_keys_arrive(idps, gateway, upstream, keys):
    idp = idps()  # not listening: connections are refused
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"startup": "503", "refresh_min": 2})})
    tok = mint(keys.k1, "k1")
    unavailable(gw, upstream, send(gw, PATH, tok))
    r = send(gw, "/open/echo")
    accepted(gw, upstream, r)
    wait_issuer_log(gw)
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1")))

    idp.start()
    t0 = time.monotonic()
    wait_for(lambda: send(gw, PATH, tok).status == 200, 8.0,
             lambda: f"200 once the IdP is up; stderr:\n{gw.stderr()[-2000:]}")
    assert time.monotonic() - t0 < 8
    upstream.wait_for(1)
    upstream.clear()
    accept(gw, upstream, mint(keys.k1, "k1"))


def test_startup_wait_gives_up_with_exit_1(idps, gateway, upstream, keys):
    idp = idps()  # never listening
    good = idps()
    good.set_keys(jwk_rsa(keys.k1, kid="k1"))
    good.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"startup": "wait", "startup_timeout": 2}),
                                      "fine": issuer_conf(good, jwks={"startup": "wait", "startup_timeout": 2})},
                  start=False)
    t0 = time.monotonic()
    try:
        gw.start()
    except AssertionError as ex:
        msg = str(ex)
    else:
        gw.stop()
        pytest.fail("the gateway began listening although its issuer has no keys (startup = \"wait\")")
    elapsed = time.monotonic() - t0
    rc = gw.wait_exit(5)
    assert "exited with" in msg, msg
    assert rc == 1, f"exit status {rc}\n{gw.stderr()[-2000:]}"
    assert 1.5 <= elapsed <= 8, f"gave up after {elapsed:.2f}s; startup_timeout = 2"
    last = error_lines(gw)[-1] if error_lines(gw) else ""
    assert NAME in last and "'fine'" not in last, \
        f"the last message should name the issuer without keys:\n{gw.stderr()[-2000:]}"


def test_startup_wait_serves_at_once_when_idp_up(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"startup": "wait", "startup_timeout": 5})})
    assert idp.count() >= 1
    accept(gw, upstream, mint(keys.k1, "k1"))  # no polling: keys are there before it listens


def test_startup_wait_until_idp_comes_up(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"startup": "wait", "startup_timeout": 10,
                                                                   "refresh_min": 2})}, start=False)
    timer = threading.Timer(1.5, idp.start)
    t0 = time.monotonic()
    timer.start()
    try:
        launch(gw)
    finally:
        timer.join(5)
    assert time.monotonic() - t0 >= 1.4, "listening before the IdP was even up"
    accept(gw, upstream, mint(keys.k1, "k1"))


# ---------------------------------------------------------------------------
# 8. Discovery


def disc_conf(idp, jwks=None):
    c = {"issuer": idp.base + "/realms/dev", "audience": AUD, "realm": REALM, "discovery": True}
    if jwks:
        c["jwks"] = jwks
    return c


def test_discovery_accepted(idps, gateway, upstream, keys):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    iss = idp.base + "/realms/dev"
    gw = start_gw(gateway, upstream, {NAME: disc_conf(idp)})
    wait_keys(gw, upstream, mint(keys.k1, "k1", iss=iss))
    accept(gw, upstream, mint(keys.k1, "k1", iss=iss))
    assert idp.count(DISCOVERY) >= 1
    assert idp.count(DISCOVERED_CERTS) >= 1, f"the document's jwks_uri was not fetched: {idp.counts}"
    assert idp.count(CERTS) == 0
    # the issuer check still applies to the token
    refuse(gw, upstream, mint(keys.k1, "k1", iss=ISS), "invalid issuer")


@pytest.mark.parametrize("bad", ["/realms/other", "/realms/Dev", "/realms/dev/", "https://evil.test/realms/dev"])
def test_discovery_issuer_mismatch_no_keys(idps, gateway, upstream, keys, bad):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    iss = idp.base + "/realms/dev"
    doc_iss = bad if bad.startswith("https:") else idp.base + bad
    idp.discovery = {"issuer": doc_iss, "jwks_uri": idp.base + DISCOVERED_CERTS}
    gw = start_gw(gateway, upstream, {NAME: disc_conf(idp, {"startup": "503"})})
    wait_for(lambda: idp.count(DISCOVERY) >= 1, 5.0, "a discovery fetch")
    # the line explains: it names the issuer and the document's issuer, or says they differ
    wait_issuer_log(gw, 0, [doc_iss, "match", "differ", "expected"], names=(NAME, iss))
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1", iss=iss)))
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1", iss=doc_iss)))
    assert idp.count(DISCOVERED_CERTS) == 0, "the jwks_uri of a mismatching document was fetched"


# ---------------------------------------------------------------------------
# 9. Refresh timing


@pytest.mark.parametrize("cache_control,opts,period", [
    ("max-age=2", {"refresh_min": 1}, 1.6),                            # 80% of 2
    ("public, max-age=2, must-revalidate", {"refresh_min": 1}, 1.6),
    ("max-age=100000", {"refresh_min": 1, "refresh_max": 2}, 1.6),    # clamped down to 2
    ("max-age=1", {"refresh_min": 3}, 2.4),                           # clamped up to 3
    (None, {"refresh": 2, "refresh_min": 1}, 1.6),                    # no max-age: 80% of refresh
    (None, {"refresh": 300, "refresh_min": 1}, None),                 # no max-age, refresh 300: none in 3 s
], ids=["max-age", "max-age-in-list", "refresh_max", "refresh_min", "refresh-2", "refresh-300"])
def test_refresh_schedule(idps, gateway, upstream, keys, cache_control, opts, period):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"), cache_control=cache_control)
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks=opts)})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    n0 = idp.count()
    window = 4.0 if period else 3.0
    time.sleep(window)
    d = idp.count() - n0
    if period is None:
        assert d == 0, f"{d} refreshes in {window}s with refresh = 300 and no max-age"
    else:
        hi = int(window / period) + 1
        assert 1 <= d <= hi, f"{d} refreshes in {window}s, wanted 1..{hi} ({cache_control!r}, {opts})"
        ts = idp.stamps()
        gaps = [round(b - a, 2) for a, b in zip(ts, ts[1:])]
        assert all(period - 0.15 <= g <= period + 0.3 for g in gaps), \
            f"fetches {gaps} s apart, wanted {period} s (80% of the clamped lifetime)"
    accept(gw, upstream, mint(keys.k1, "k1"))


# ---------------------------------------------------------------------------
# Unusable answers leave an issuer without keys (startup "503"), until fixed


@pytest.mark.parametrize("case", ["redirect", "404", "badjson", "empty", "no-allowed-alg", "enc-only", "too-big"])
def test_unusable_answer_is_a_failed_fetch(idps, gateway, upstream, keys, case):
    idp = idps()
    good = jwk_rsa(keys.k1, kid="k1")
    idp.set_keys(good)
    path, watch = CERTS, CERTS
    if case == "redirect":
        path, watch = "/moved", "/moved"
        idp.redirects["/moved"] = CERTS
    elif case == "404":
        idp.missing.add(CERTS)
    elif case == "badjson":
        idp.mode = "badjson"
    elif case == "empty":
        idp.set_keys()
    elif case == "no-allowed-alg":
        idp.set_keys(jwk_ec(keys.e1, kid="e1"))  # algorithms default to RS256
    elif case == "enc-only":
        idp.set_keys(jwk_rsa(keys.k1, kid="k1", use="enc"))
    elif case == "too-big":
        idp.extra_body = b"x" * (1 << 20)
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, path, jwks={"startup": "503", "refresh_min": 1})})
    wait_for(lambda: idp.count(watch) >= 1, 5.0, "a fetch")
    wait_issuer_log(gw)
    tok = mint(keys.k1, "k1")
    unavailable(gw, upstream, send(gw, PATH, tok))
    if case == "redirect":
        assert idp.count(CERTS) == 0, "a redirect was followed"

    # fixed at the IdP: the retries (backoff capped at refresh_min = 1 s) get the keys
    with idp.lock:
        idp.redirects.clear()
        idp.missing.clear()
        idp.mode = "up"
        idp.extra_body = b""
        idp.jwks = {"keys": [good]}
    wait_for(lambda: send(gw, PATH, tok).status == 200, 8.0,
             lambda: f"200 once the IdP serves a good set; stderr:\n{gw.stderr()[-2000:]}")
    upstream.wait_for(1)
    upstream.clear()
    accept(gw, upstream, mint(keys.k1, "k1"))


def test_keys_it_cannot_use_beside_a_good_one_are_skipped(idps, gateway, upstream, keys):
    # RFC 7517 section 5: JWKs with a kty, curve or use not understood are ignored, not fatal
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
    x25519 = X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw)
    idp = idps()
    idp.set_keys({"kty": "XYZ", "kid": "future", "q": "AQAB"},
                 {"kty": "EC", "crv": "secp256k1", "kid": "k256",
                  "x": b64u(int_bytes(k1.x, 32)), "y": b64u(int_bytes(k1.y, 32))},
                 {"kty": "OKP", "crv": "X25519", "kid": "xdh", "x": b64u(x25519)},
                 jwk_rsa(keys.k2, kid="oaep", alg="RSA-OAEP"),
                 jwk_rsa(keys.k3, kid="enc", use="enc"),
                 jwk_rsa(keys.k1, kid="k1", use="sig", alg="RS256"))
    idp.start()
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks={"cooldown": 0, "negative_ttl": 0})})
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    accept(gw, upstream, mint(keys.k1, "k1"))
    # a skipped key never verifies, whatever kid the token names
    refuse(gw, upstream, mint(keys.k3, "enc"))
    refuse(gw, upstream, mint(keys.k2, "oaep"))


# ---------------------------------------------------------------------------
# 10. Load-time refusals (gatehouse -t never fetches)


def run_check(tmp_path, issuer, files=None):
    d = tmp_path / "check"
    d.mkdir(exist_ok=True)
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    cfg = make_config(18080, {"up": {"targets": ["127.0.0.1:18081"]}}, issuers={NAME: issuer})
    routes = [{"match": {"path": "/api/**"}, "upstream": "up", "auth": NAME}]
    gw = Gateway(str(d), 18080, cfg, {"10-api.lua": route_file(routes)})
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", gw.config_path], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


URL = "http://127.0.0.1:9/certs"
BASE_ISSUER = {"issuer": ISS, "audience": AUD}


def _pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


CHECK_REFUSALS = [
    ("hs256", {"jwks_url": URL, "algorithms": ["RS256", "HS256"]}, ["HS256"]),
    ("hs256-only-discovery", {"discovery": True, "algorithms": ["HS256"]}, ["HS256"]),
    ("jwks-with-pem", {"pem_file": "k.pem", "jwks": {"refresh": 60}}, ["jwks"]),
    ("ftp", {"jwks_url": "ftp://127.0.0.1/certs"}, ["ftp"]),
    ("no-host", {"jwks_url": "http:///certs"}, ["url"]),
    ("not-a-url", {"jwks_url": "certs.json"}, ["url"]),
    ("startup-later", {"jwks_url": URL, "jwks": {"startup": "later"}}, ["startup"]),
    ("both", {"jwks_url": URL, "discovery": True}, ["jwks_url", "discovery"]),
    ("refresh_min-0", {"jwks_url": URL, "jwks": {"refresh_min": 0}}, ["refresh_min"]),
]


@pytest.mark.parametrize("case,extra,words", CHECK_REFUSALS, ids=[c[0] for c in CHECK_REFUSALS])
def test_check_refuses(tmp_path, keys, case, extra, words):
    rc, out = run_check(tmp_path, {**BASE_ISSUER, **extra}, files={"k.pem": _pem(keys.k1)})
    assert rc != 0, f"{case}: accepted:\n{out}"
    assert rc == 1, f"{case}: exit {rc}:\n{out}"
    assert "gatehouse.lua" in out, out
    assert "configuration is valid" not in out, out
    for w in words:
        assert w.lower() in out.lower(), f"{case}: expected {w!r} in {out!r}"
    assert "not supported yet" not in out, f"{case}: remote key sets still refused as a whole:\n{out}"


def test_check_valid_remote_configs_never_fetch(idps, tmp_path, keys, pki):
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    full = {"refresh": 300, "refresh_min": 30, "refresh_max": 3600, "cooldown": 0, "negative_ttl": 0,
            "timeout": 5, "wait": 3, "startup": "wait", "startup_timeout": 30, "ca_file": "ca.pem"}
    for issuer in ({**BASE_ISSUER, "jwks_url": idp.url(CERTS), "jwks": full},
                   {**BASE_ISSUER, "jwks_url": idp.url(CERTS), "algorithms": ["RS256", "ES256", "EdDSA"]},
                   {**BASE_ISSUER, "jwks_url": "https://[::1]:8443/certs?x=1", "jwks": {"startup": "503"}},
                   {"issuer": idp.base + "/realms/dev", "audience": AUD, "discovery": True}):
        rc, out = run_check(tmp_path, issuer, files={"ca.pem": pki.ca_pem})
        assert rc == 0, f"{issuer}:\n{out}"
    time.sleep(0.2)
    assert sum(idp.counts.values()) == 0, f"gatehouse -t fetched: {idp.counts}"


# ---------------------------------------------------------------------------
# 11. https


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class PKI:
    def __init__(self, d):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.dir = d
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca = (x509.CertificateBuilder()
                   .subject_name(_name("gatehouse test CA")).issuer_name(_name("gatehouse test CA"))
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(ca_ski, critical=False)
                   .sign(self.ca_key, hashes.SHA256()))
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM)
        self.ca_file = os.path.join(d, "ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(self.ca_pem)
        self.good = self._leaf("good", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], ca_ski, now)
        self.wrong_name = self._leaf("wrong", [x509.DNSName("other.test")], ca_ski, now)

    def _leaf(self, tag, sans, ca_ski, now):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(f"idp {tag}")).issuer_name(self.ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        cert_file = os.path.join(self.dir, f"{tag}.crt")
        key_file = os.path.join(self.dir, f"{tag}.key")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(str(tmp_path_factory.mktemp("pki")))


def _tls_gateway(idps, gateway, upstream, keys, pki, server_ctx, ca_file):
    idp = idps(tls=server_ctx)
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    opts = {"startup": "503", "refresh_min": 1}
    if ca_file:
        opts["ca_file"] = "tls/ca.pem"  # relative to the config file
    gw = start_gw(gateway, upstream, {NAME: issuer_conf(idp, jwks=opts)}, start=False)
    if ca_file:
        os.makedirs(os.path.join(gw.dir, "tls"), exist_ok=True)
        shutil.copy(pki.ca_file, os.path.join(gw.dir, "tls", "ca.pem"))
    launch(gw)
    return idp, gw


def test_https_with_ca_file(idps, gateway, upstream, keys, pki):
    idp, gw = _tls_gateway(idps, gateway, upstream, keys, pki, pki.good, ca_file=True)
    assert idp.url().startswith("https://127.0.0.1:")
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    accept(gw, upstream, mint(keys.k1, "k1"))
    assert idp.count(CERTS) >= 1 and idp.count("<tls>") >= 1


def test_https_untrusted_without_ca_file(idps, gateway, upstream, keys, pki):
    idp, gw = _tls_gateway(idps, gateway, upstream, keys, pki, pki.good, ca_file=False)
    wait_for(lambda: idp.count("<tls>") >= 1, 5.0, "a TLS connection to the IdP")
    wait_issuer_log(gw, 0, ["certificate", "verif"])
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1")))
    assert idp.count(CERTS) == 0, "the JWKS was fetched over an unverified connection"


def test_https_certificate_for_another_name(idps, gateway, upstream, keys, pki):
    idp, gw = _tls_gateway(idps, gateway, upstream, keys, pki, pki.wrong_name, ca_file=True)
    wait_for(lambda: idp.count("<tls>") >= 1, 5.0, "a TLS connection to the IdP")
    wait_issuer_log(gw)
    unavailable(gw, upstream, send(gw, PATH, mint(keys.k1, "k1")))
    assert idp.count(CERTS) == 0, "the JWKS was fetched from a server whose certificate names another host"


# ---------------------------------------------------------------------------
# Shutdown stops every key source, whichever configuration holds it


def test_sigterm_exits_while_an_exited_worker_holds_a_replaced_key_source(idps, gateway, upstream, keys):
    """SIGTERM comes while a reload that replaces the issuer's source
    (another jwks_url) is building: the idle worker exits at once, still
    holding the old configuration; the busy one drains and swaps. The old
    source, which only that exited worker's configuration holds now, must
    not keep the process from exiting."""
    idp = idps()
    idp.set_keys(jwk_rsa(keys.k1, kid="k1"))
    idp.start()
    routes = [{"name": "hold", "match": {"path": "/hold"}, "upstream": "up"},
              {"name": NAME, "match": {"path": f"/{NAME}/**"}, "upstream": "up", "auth": NAME}]
    ups = {"up": {"targets": [upstream.addr]}}
    common = {"workers": 2, "reload_runs_tests": True}
    gw = gateway(upstreams=ups, routes=routes, limits={"drain_timeout": 15},
                 issuers={NAME: issuer_conf(idp)}, start=False, **common)
    launch(gw)
    wait_keys(gw, upstream, mint(keys.k1, "k1"))
    held = RawConn("127.0.0.1", gw.port, 20.0)
    try:
        held.request("GET", "/hold?key=old-source")
        wait_until(lambda: any(r.target == "/hold?key=old-source" for r in upstream.started), 5.0,
                   "the held request at the upstream")
        with open(gw.config_path, "w") as f:
            f.write(make_config(gw.port, ups, {"drain_timeout": 15},
                                issuers={NAME: issuer_conf(idp, path="/other-certs")}, **common))
        with open(os.path.join(gw.dir, "routes", "slow_test.lua"), "w") as f:  # holds the build
            f.write('local t = require "gatehouse.test"\n'
                    't.case("slow", function() local t0 = os.clock() while os.clock() - t0 < 1.5 do end end)\n')
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "loading" in gw.stderr(), 5.0, "the reload begun")
        gw.signal(signal.SIGTERM)
        wait_until(lambda: "config 2" in gw.stderr(), 10.0, lambda: f"config 2 live:\n{gw.stderr()[-2000:]}")
        upstream.release("old-source")
        r = held.read_response()
        assert r.status == 200, r
    finally:
        upstream.release("old-source")
        held.close()
    assert gw.wait_exit(8.0) == 0, gw.stderr()[-2000:]
