"""The JWT chain end to end (issue 3): tokens minted by PyJWT and by
`cryptography` directly (independent of the gateway's OpenSSL code), and
hand-built ones (base64url + JSON) for everything a library would refuse to
produce. Every refusal also proves that the recording upstream received
nothing and that the token never reached the log.

One gateway (one worker, so the token cache is deterministic) with many
issuers and routes serves the whole module; keys are generated once per
module. Load-time refusals use `gatehouse -t`.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import (GATEHOUSE_BIN, Gateway, assert_problem, challenge, free_port, lua, make_config,
                      route_file, wait_until)
from rawhttp import RawConn
from recording_upstream import RecordingUpstream

ISS = "https://sso.example.com/realms/shop"
AUD = "orders-api"
REALM = "shop"

# ---------------------------------------------------------------------------
# base64url, JWKs and signing with `cryptography` (no PyJWT, no gateway code)


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def int_bytes(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


def pem_pub(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk_rsa(key, **extra):
    pn = key.public_key().public_numbers()
    return {"kty": "RSA", "n": b64u(int_bytes(pn.n)), "e": b64u(int_bytes(pn.e)), **extra}


EC_CURVES = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66)}


def jwk_ec(key, crv, **extra):
    size = EC_CURVES[crv][1]
    pn = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64u(int_bytes(pn.x, size)),
            "y": b64u(int_bytes(pn.y, size)), **extra}


def jwk_okp(key, **extra):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), **extra}


HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
HMAC_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
EC_SIZE = {"ES256": 32, "ES384": 48, "ES512": 66}


def sign(alg, key, msg, der_ecdsa=False):
    """The JWS signature of msg (bytes) under alg, computed with cryptography/hmac."""
    if alg.startswith("HS"):
        return hmac.new(key, msg, HMAC_HASHES[alg[2:]]).digest()
    if alg.startswith("RS"):
        return key.sign(msg, padding.PKCS1v15(), HASHES[alg[2:]]())
    if alg.startswith("PS"):
        h = HASHES[alg[2:]]()
        return key.sign(msg, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        der = key.sign(msg, ec.ECDSA(HASHES[alg[2:]]()))
        if der_ecdsa:
            return der
        r, s = decode_dss_signature(der)
        return int_bytes(r, EC_SIZE[alg]) + int_bytes(s, EC_SIZE[alg])
    if alg == "EdDSA":
        return key.sign(msg)
    raise ValueError(alg)


def raw_token(header, payload, key=None, alg=None, sig=None, der_ecdsa=False):
    """header/payload: dict (compact JSON) or bytes (exact JSON text). Signed
    with key under alg (default: header["alg"]) unless sig (bytes or a
    ready segment string) is given."""
    h = b64u_json(header) if isinstance(header, dict) else b64u(header)
    p = b64u_json(payload) if isinstance(payload, dict) else b64u(payload)
    si = f"{h}.{p}"
    if sig is None:
        sig = sign(alg or header["alg"], key, si.encode(), der_ecdsa)
    if isinstance(sig, bytes):
        sig = b64u(sig)
    return f"{si}.{sig}"


_seq = itertools.count(1)


def claims(**kw):
    """Valid claims for the shop issuer; keyword None removes a claim."""
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": "user-42", "iat": now, "exp": now + 300,
         "jti": f"jti-{next(_seq)}-{secrets.token_hex(6)}"}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def split(token):
    return token.split(".")


# ---------------------------------------------------------------------------
# The module's keys, gateway and upstream


class Keys:
    def __init__(self):
        self.rsa = rsa.generate_private_key(65537, 2048)       # pem_file issuer; kid k1 in the JWKS
        self.rsa_other = rsa.generate_private_key(65537, 2048)  # an attacker's / wrong key
        self.rsa_k2 = rsa.generate_private_key(65537, 2048)     # kid k2 in the JWKS (alg RS256 only)
        self.ec = {crv: ec.generate_private_key(cls()) for crv, (cls, _) in EC_CURVES.items()}
        self.ec_other = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.ed_other = ed25519.Ed25519PrivateKey.generate()
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        self.hs = "".join(secrets.choice(alnum) for _ in range(64)).encode()
        self.hs_file = "".join(secrets.choice(alnum) for _ in range(32)).encode()
        self.oct = secrets.token_bytes(64)

    def ec_for(self, alg):
        return self.ec[{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]]


ALGS_RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
ALGS_EC = ["ES256", "ES384", "ES512"]
ALGS_HS = ["HS256", "HS384", "HS512"]


class Env:
    def __init__(self, gw, upstream, keys):
        self.gw = gw
        self.up = upstream
        self.keys = keys

    def send(self, path, token=None, headers=(), raw_headers=None):
        """One request on a fresh connection; token goes in Authorization:
        Bearer unless None. Returns (response, request id)."""
        rid = f"auth-{next(_seq)}-{secrets.token_hex(4)}"
        hs = [("X-Request-Id", rid)]
        if token is not None:
            hs.append(("Authorization", f"Bearer {token}"))
        hs += list(headers)
        with RawConn("127.0.0.1", self.gw.port, 5.0) as c:
            c.request("GET", path, headers=hs)
            resp = c.read_response()
        return resp, rid

    def log_line(self, rid):
        return wait_until(lambda: next((l for l in self.gw.access_log() if l.get("request_id") == rid), None),
                          5.0, f"access-log line for {rid}:\n{self.gw.stderr()[-3000:]}")

    def assert_not_logged(self, token, rid):
        self.log_line(rid)
        text = self.gw.stderr()
        assert token not in text, "the token was written to the log"
        for seg in token.split("."):
            # the signature and payload are unique to the token: no piece of them either
            if len(seg) >= 16 and not seg.startswith("eyJhbGciOi"):
                assert seg not in text, f"a token segment was written to the log: {seg[:40]}..."


@pytest.fixture(scope="module")
def keys():
    return Keys()


def _issuers(keys, d):
    """Writes the key files into d and returns the issuers table."""

    def write(name, data):
        p = os.path.join(d, "keys", name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return "keys/" + name

    rsa_pem = write("rsa.pub.pem", pem_pub(keys.rsa))
    rsa_jwks = write("rsa.jwks.json", json.dumps({"keys": [
        jwk_rsa(keys.rsa, kid="k1", use="sig"),
        jwk_rsa(keys.rsa_k2, kid="k2", alg="RS256"),
        jwk_rsa(keys.rsa_other, kid="enc", use="enc"),  # an encryption key: never verifies
    ]}))
    mix_jwks = write("mix.jwks.json", json.dumps({"keys": [
        jwk_ec(keys.ec["P-256"], "P-256", kid="ec256"),
        jwk_ec(keys.ec["P-384"], "P-384", kid="ec384"),
        jwk_ec(keys.ec["P-521"], "P-521", kid="ec521"),
        jwk_okp(keys.ed, kid="ed"),
    ]}))
    # a set mixing HMAC secrets with public keys is refused at load: its own set
    oct_jwks = write("oct.jwks.json", json.dumps({"keys": [{"kty": "oct", "k": b64u(keys.oct), "kid": "hs"}]}))
    hs_file = write("hs.secret", keys.hs_file + b"\n")
    shop = {"issuer": ISS, "audience": AUD, "required_claims": ["sub"], "realm": REALM}
    return {
        "rsa": {**shop, "pem_file": rsa_pem},
        "rsajwks": {**shop, "audience": [AUD, "billing"], "jwks_file": rsa_jwks},
        "rsonly": {**shop, "algorithms": ["RS256"], "pem_file": rsa_pem},
        "hs": {**shop, "secret": keys.hs.decode()},
        "hsfile": {**shop, "algorithms": ["HS256"], "secret_file": hs_file},
        "es256": {**shop, "pem_file": write("es256.pub.pem", pem_pub(keys.ec["P-256"]))},
        "es384": {**shop, "pem_file": write("es384.pub.pem", pem_pub(keys.ec["P-384"]))},
        "es512": {**shop, "pem_file": write("es512.pub.pem", pem_pub(keys.ec["P-521"]))},
        "ed": {**shop, "pem_file": write("ed.pub.pem", pem_pub(keys.ed))},
        "mixjwks": {**shop, "jwks_file": mix_jwks},
        "octjwks": {**shop, "jwks_file": oct_jwks},
        "cq": {**shop, "pem_file": rsa_pem,
               "token": {"header": True, "cookie": "access_token", "query": "access_token"}},
        "cookieonly": {**shop, "pem_file": rsa_pem, "token": {"cookie": "session"}},
        "small": {**shop, "pem_file": rsa_pem, "max_token": 1024},
        "noskew": {**shop, "pem_file": rsa_pem, "clock_skew": 0},
        "lax": {"pem_file": rsa_pem, "require_exp": False},  # no iss/aud checks, exp optional
        "azp": {**shop, "pem_file": rsa_pem, "authorized_party": ["orders-web", "orders.cli"]},
    }


@pytest.fixture(scope="module")
def env(keys, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("auth"))
    issuers = _issuers(keys, d)
    up = RecordingUpstream().start()
    port = free_port()
    routes = [{"name": "open", "match": {"path": "/open/**"}, "upstream": "up"},
              {"name": "norelay", "match": {"path": "/norelay/**"}, "upstream": "up", "auth": "rsa",
               "relay_token": False},
              {"name": "fwd", "match": {"path": "/fwd/**"}, "upstream": "up", "auth": "rsa",
               "forward_claims": {"X-User-Id": "sub", "X-Roles": "roles"}}]
    routes += [{"name": name, "match": {"path": f"/{name}/**"}, "upstream": "up", "auth": name}
               for name in issuers]
    cfg = make_config(port, {"up": {"targets": [up.addr]}}, issuers=issuers, token_cache=10000)
    gw = Gateway(d, port, cfg, {"50-auth.lua": route_file(routes)})
    try:
        gw.start()
    except BaseException:
        up.stop()
        raise
    e = Env(gw, up, keys)
    yield e
    alive = gw.alive()
    rc = gw.stop()
    up.stop()
    assert alive, f"gateway died during the tests:\n{gw.stderr()[-4000:]}"
    assert rc == 0, f"gateway exit code after SIGTERM: {rc}\n{gw.stderr()[-4000:]}"


@pytest.fixture
def e(env):
    env.up.clear()
    assert env.gw.alive(), env.gw.stderr()[-4000:]
    return env


# ---------------------------------------------------------------------------
# Assertions

def assert_nothing_upstream(e):
    time.sleep(0.03)  # a forward, were there one, would have started by now
    assert e.up.started == [], f"the upstream received a request: {e.up.started!r}"
    assert e.up.requests == []
    assert e.up.bytes_received == 0, f"the upstream received {e.up.bytes_received} bytes"


def refused(e, resp, rid, token, reason=None, status=401, error="invalid_token", realm=REALM):
    """A 400/401 refusal: problem+json, the right challenge, nothing upstream,
    the token not logged. reason: exact error_description, or a set of them."""
    assert_problem(resp, status)
    ch = challenge(resp)
    assert ch.get("realm") == realm, ch
    if error is None:
        assert set(ch) == {"realm"}, f"a missing token gets a bare challenge, got {ch}"
    else:
        assert ch.get("error") == error, ch
        if reason is not None:
            want = {reason} if isinstance(reason, str) else set(reason)
            assert ch.get("error_description") in want, f"{ch} (wanted one of {want})"
    assert_nothing_upstream(e)
    line = e.log_line(rid)
    assert line["status"] == status, line
    if token:
        e.assert_not_logged(token, rid)
    return ch


def refuse(e, path, token, reason=None, **kw):
    resp, rid = e.send(path, token)
    return refused(e, resp, rid, token, reason, **kw)


def accepted(e, resp, rid, token=None, relayed=True):
    assert resp.status == 200, f"expected 200, got {resp.status}: {resp.body[:400]!r} {resp.headers!r}"
    assert resp.header("X-Upstream") == "recording", resp.headers
    (req,) = e.up.wait_for(1)
    if token and relayed:
        assert req.header_all("Authorization") == [f"Bearer {token}"], req.headers
    if token:
        e.assert_not_logged(token, rid)
    return req


def accept(e, path, token):
    resp, rid = e.send(path, token)
    return accepted(e, resp, rid, token)


# ---------------------------------------------------------------------------
# Every algorithm, minted two independent ways


def _mint(minter, alg, key, c, headers=None):
    if minter == "pyjwt":
        return jwt.encode(c, key, algorithm=alg, headers=headers)
    return raw_token({"alg": alg, "typ": "JWT", **(headers or {})}, c, key)


MINTERS = ["pyjwt", "cryptography"]


@pytest.mark.parametrize("minter", MINTERS)
@pytest.mark.parametrize("alg", ALGS_HS)
def test_hmac_secret_accepted(e, alg, minter):
    accept(e, "/hs/echo", _mint(minter, alg, e.keys.hs, claims()))


@pytest.mark.parametrize("minter", MINTERS)
def test_hmac_secret_file_accepted(e, minter):
    # the file's trailing newline is not part of the secret
    accept(e, "/hsfile/echo", _mint(minter, "HS256", e.keys.hs_file, claims()))


@pytest.mark.parametrize("minter", MINTERS)
@pytest.mark.parametrize("alg", ALGS_RSA)
def test_rsa_pem_file_accepted(e, alg, minter):
    accept(e, "/rsa/echo", _mint(minter, alg, e.keys.rsa, claims()))


@pytest.mark.parametrize("minter", MINTERS)
@pytest.mark.parametrize("alg", ALGS_RSA)
def test_rsa_jwks_file_accepted(e, alg, minter):
    accept(e, "/rsajwks/echo", _mint(minter, alg, e.keys.rsa, claims(), {"kid": "k1"}))


@pytest.mark.parametrize("minter", MINTERS)
@pytest.mark.parametrize("alg", ALGS_EC)
def test_ecdsa_pem_file_accepted(e, alg, minter):
    accept(e, f"/es{alg[2:]}/echo", _mint(minter, alg, e.keys.ec_for(alg), claims()))


@pytest.mark.parametrize("minter", MINTERS)
@pytest.mark.parametrize("alg", ALGS_EC)
def test_ecdsa_jwks_file_accepted(e, alg, minter):
    kid = "ec" + alg[2:].replace("512", "521")
    accept(e, "/mixjwks/echo", _mint(minter, alg, e.keys.ec_for(alg), claims(), {"kid": kid}))


@pytest.mark.parametrize("minter", MINTERS)
def test_eddsa_accepted(e, minter):
    accept(e, "/ed/echo", _mint(minter, "EdDSA", e.keys.ed, claims()))


@pytest.mark.parametrize("minter", MINTERS)
def test_eddsa_jwks_accepted(e, minter):
    accept(e, "/mixjwks/echo", _mint(minter, "EdDSA", e.keys.ed, claims(), {"kid": "ed"}))


@pytest.mark.parametrize("alg", ALGS_HS)
def test_oct_jwk_accepted(e, alg):
    accept(e, "/octjwks/echo", _mint("pyjwt", alg, e.keys.oct, claims(), {"kid": "hs"}))


def test_token_with_kid_against_pem_key_accepted(e):
    # A PEM key carries no kid; real issuers (Keycloak, scripts/mint-token)
    # always put one in the header. The key must still verify the token.
    accept(e, "/rsa/echo", jwt.encode(claims(), e.keys.rsa, algorithm="RS256", headers={"kid": "dev-rs256"}))


def test_lowercase_bearer_scheme_accepted(e):
    # RFC 9110 11.1: the auth-scheme is case-insensitive
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/rsa/echo", headers=[("Authorization", f"bearer {tok}")])
    accepted(e, resp, rid, tok, relayed=False)


def test_aud_array_and_audience_list(e):
    accept(e, "/rsa/echo", jwt.encode(claims(aud=["other", AUD]), e.keys.rsa, algorithm="RS256"))
    e.up.clear()
    accept(e, "/rsajwks/echo", jwt.encode(claims(aud="billing"), e.keys.rsa, algorithm="RS256",
                                          headers={"kid": "k1"}))


def test_within_clock_skew_accepted(e):
    now = int(time.time())
    accept(e, "/rsa/echo", jwt.encode(claims(exp=now - 20), e.keys.rsa, algorithm="RS256"))
    e.up.clear()
    accept(e, "/rsa/echo", jwt.encode(claims(nbf=now + 20, iat=now + 20), e.keys.rsa, algorithm="RS256"))


def test_issuer_without_iss_or_aud_checks(e):
    # "lax": no issuer/audience configured, require_exp = false
    tok = jwt.encode(claims(iss="https://elsewhere", aud="anything", exp=None), e.keys.rsa, algorithm="RS256")
    accept(e, "/lax/echo", tok)


def test_unprotected_route_needs_no_token(e):
    resp, rid = e.send("/open/echo")
    accepted(e, resp, rid)


# ---------------------------------------------------------------------------
# Missing tokens and where tokens come from


def test_missing_token_bare_challenge(e):
    resp, rid = e.send("/rsa/echo")
    refused(e, resp, rid, None, error=None)


def test_missing_token_realm_defaults_to_issuer_name(e):
    resp, rid = e.send("/lax/echo")
    refused(e, resp, rid, None, error=None, realm="lax")


def test_other_auth_scheme_is_no_token(e):
    resp, rid = e.send("/rsa/echo", headers=[("Authorization", "Basic dXNlcjpwYXNzd29yZA==")])
    refused(e, resp, rid, None, error=None)


def test_two_authorization_headers(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    b = jwt.encode(claims(sub="admin"), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/rsa/echo", a, headers=[("Authorization", f"Bearer {b}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")
    e.assert_not_logged(b, rid)


def test_same_token_in_two_authorization_headers(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/rsa/echo", a, headers=[("Authorization", f"Bearer {a}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")


def test_two_credentials_in_one_header(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    b = jwt.encode(claims(sub="admin"), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/rsa/echo", headers=[("Authorization", f"Bearer {a}, Bearer {b}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")
    e.assert_not_logged(b, rid)


def test_cookie_source_accepted(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/cq/echo", headers=[("Cookie", f"theme=dark; access_token={tok}; lang=en")])
    accepted(e, resp, rid, tok, relayed=False)


def test_query_source_accepted(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send(f"/cq/echo?x=1&access_token={tok}")
    accepted(e, resp, rid, tok, relayed=False)


def test_header_still_a_source_when_listed(e):
    accept(e, "/cq/echo", jwt.encode(claims(), e.keys.rsa, algorithm="RS256"))


def test_invalid_token_in_cookie_refused(e):
    tok = jwt.encode(claims(), e.keys.rsa_other, algorithm="RS256")
    resp, rid = e.send("/cq/echo", headers=[("Cookie", f"access_token={tok}")])
    refused(e, resp, rid, tok, "invalid signature")


def test_invalid_token_in_query_refused(e):
    tok = jwt.encode(claims(exp=int(time.time()) - 3600), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send(f"/cq/echo?access_token={tok}")
    refused(e, resp, rid, tok, "token expired")


def test_token_in_header_and_cookie(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/cq/echo", a, headers=[("Cookie", f"access_token={a}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")


def test_token_in_header_and_query(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    b = jwt.encode(claims(sub="admin"), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send(f"/cq/echo?access_token={b}", a)
    refused(e, resp, rid, a, status=400, error="invalid_request")
    e.assert_not_logged(b, rid)


def test_token_in_cookie_and_query(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send(f"/cq/echo?access_token={a}", headers=[("Cookie", f"access_token={a}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")


def test_token_cookie_twice(e):
    a = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    b = jwt.encode(claims(sub="admin"), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/cq/echo", headers=[("Cookie", f"access_token={a}; access_token={b}")])
    refused(e, resp, rid, a, status=400, error="invalid_request")


def test_cookie_only_issuer_ignores_authorization(e):
    # giving `token` replaces the default: Authorization is no longer read
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/cookieonly/echo", tok)
    refused(e, resp, rid, tok, error=None)
    e.up.clear()
    resp, rid = e.send("/cookieonly/echo", headers=[("Cookie", f"session={tok}")])
    accepted(e, resp, rid, tok, relayed=False)


def test_cookie_not_a_source_by_default(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/rsa/echo", headers=[("Cookie", f"access_token={tok}")])
    refused(e, resp, rid, tok, error=None)


# ---------------------------------------------------------------------------
# Relaying, forwarded claims, the cache


def test_token_relayed_unchanged_by_default(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    req = accept(e, "/rsa/orders/42?x=1", tok)
    assert req.target == "/rsa/orders/42?x=1"


def test_relay_token_false_drops_authorization(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/norelay/echo", tok)
    req = accepted(e, resp, rid, tok, relayed=False)
    assert req.header_all("Authorization") == [], req.headers
    assert tok not in json.dumps(req.headers)


def test_relay_token_false_still_verifies(e):
    tok = jwt.encode(claims(), e.keys.rsa_other, algorithm="RS256")
    refuse(e, "/norelay/echo", tok, "invalid signature")


def test_forward_claims_replace_client_headers(e):
    tok = jwt.encode(claims(sub="user-7", roles=["admin", "user"]), e.keys.rsa, algorithm="RS256")
    resp, rid = e.send("/fwd/echo", tok, headers=[("X-User-Id", "attacker"), ("x-user-id", "root"),
                                                   ("X-Roles", "superuser")])
    req = accepted(e, resp, rid, tok)
    assert req.header_all("X-User-Id") == ["user-7"], req.headers
    assert req.header_all("X-Roles") == ["admin, user"], req.headers


def test_forward_claims_absent_claim_still_strips_client_header(e):
    tok = jwt.encode(claims(sub="user-8"), e.keys.rsa, algorithm="RS256")  # no roles claim
    resp, rid = e.send("/fwd/echo", tok, headers=[("X-Roles", "admin")])
    req = accepted(e, resp, rid, tok)
    assert req.header_all("X-Roles") == [], req.headers
    assert req.header_all("X-User-Id") == ["user-8"], req.headers


def test_forward_claims_cannot_inject_headers(e):
    tok = jwt.encode(claims(sub="u\r\nX-Injected: 1", roles=["a\r\nX-Injected2: 1"]), e.keys.rsa,
                     algorithm="RS256")
    resp, rid = e.send("/fwd/echo", tok)
    assert resp.status in (200, 400, 401, 403), resp
    for req in e.up.started:
        names = {k.lower() for k, _ in req.headers}
        assert "x-injected" not in names and "x-injected2" not in names, req.headers
        for _, v in req.headers:
            assert "\r" not in v and "\n" not in v, req.headers
    e.assert_not_logged(tok, rid)


def test_forward_claims_refused_token_sends_nothing(e):
    tok = jwt.encode(claims(sub="user-7"), e.keys.rsa_other, algorithm="RS256")
    resp, rid = e.send("/fwd/echo", tok, headers=[("X-User-Id", "attacker")])
    refused(e, resp, rid, tok, "invalid signature")


def test_repeated_token_served_from_cache(e):
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    for i in range(3):
        e.up.clear()
        accept(e, "/rsa/echo", tok)
    # the cache is keyed on the whole token: a tampered twin is still refused
    h, p, s = split(tok)
    c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    c["sub"] = "admin"
    e.up.clear()
    refuse(e, "/rsa/echo", f"{h}.{b64u_json(c)}.{s}", "invalid signature")


def test_cached_token_is_not_served_past_exp(e):
    # issuer "noskew" has clock_skew = 0: a cached entry must die with the token
    exp = int(time.time()) + 2
    tok = jwt.encode(claims(exp=exp), e.keys.rsa, algorithm="RS256")
    accept(e, "/noskew/echo", tok)
    e.up.clear()
    while time.time() < exp + 0.3:
        time.sleep(0.05)
    refuse(e, "/noskew/echo", tok, "token expired")


def test_cache_is_per_issuer(e):
    # a token cached for one issuer is not thereby valid for another
    tok = jwt.encode(claims(), e.keys.rsa, algorithm="RS256")
    accept(e, "/rsa/echo", tok)
    e.up.clear()
    refuse(e, "/es256/echo", tok, "algorithm not allowed")


# ---------------------------------------------------------------------------
# Claims


def _rs(e, c, **hdr):
    return jwt.encode(c, e.keys.rsa, algorithm="RS256", headers=hdr or None)


def test_expired(e):
    refuse(e, "/rsa/echo", _rs(e, claims(exp=int(time.time()) - 40)), "token expired")


def test_expired_no_skew(e):
    refuse(e, "/noskew/echo", _rs(e, claims(exp=int(time.time()) - 1)), "token expired")


def test_future_nbf(e):
    refuse(e, "/rsa/echo", _rs(e, claims(nbf=int(time.time()) + 60)), "token not yet valid")


def test_future_iat(e):
    refuse(e, "/rsa/echo", _rs(e, claims(iat=int(time.time()) + 60)), "token issued in the future")


def test_missing_exp(e):
    refuse(e, "/rsa/echo", _rs(e, claims(exp=None)), "missing required claim")


def test_string_exp(e):
    # PyJWT would refuse to encode this in some versions: hand-build it
    c = claims()
    c["exp"] = str(c["exp"])
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, c, e.keys.rsa), "invalid claim type")


def test_string_nbf(e):
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, claims(nbf="0"), e.keys.rsa), "invalid claim type")


def test_wrong_issuer(e):
    refuse(e, "/rsa/echo", _rs(e, claims(iss="https://sso.example.com/realms/evil")), "invalid issuer")


def test_issuer_prefix_is_not_the_issuer(e):
    refuse(e, "/rsa/echo", _rs(e, claims(iss=ISS + "x")), "invalid issuer")
    e.up.clear()
    refuse(e, "/rsa/echo", _rs(e, claims(iss=ISS[:-1])), "invalid issuer")


def test_missing_issuer(e):
    refuse(e, "/rsa/echo", _rs(e, claims(iss=None)), ("missing required claim", "invalid issuer"))


def test_issuer_nul_truncation(e):
    c = claims(iss=ISS + "\u0000x")
    body = json.dumps(c, separators=(",", ":")).encode()
    assert b"\\u0000x" in body
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, body, e.keys.rsa), "invalid issuer")


def test_audience_nul_truncation(e):
    body = json.dumps(claims(aud=AUD + "\u0000x"), separators=(",", ":")).encode()
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, body, e.keys.rsa), "invalid audience")


def test_authorized_party_accepted(e):
    accept(e, "/azp/echo", _rs(e, claims(azp="orders.cli")))


@pytest.mark.parametrize("azp,reason", [("billing-web", "invalid authorized party"),
                                        ("orders-web\u0000", "invalid authorized party"),
                                        (None, "missing required claim"),
                                        (["orders-web"], "invalid claim type")])
def test_authorized_party_refused(e, azp, reason):
    c = claims()
    if azp is not None:
        c["azp"] = azp
    refuse(e, "/azp/echo", _rs(e, c), reason)


def test_wrong_audience(e):
    refuse(e, "/rsa/echo", _rs(e, claims(aud="billing")), "invalid audience")


def test_audience_array_without_match(e):
    refuse(e, "/rsa/echo", _rs(e, claims(aud=["billing", "orders"])), "invalid audience")


def test_audience_of_wrong_type(e):
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, claims(aud=42), e.keys.rsa),
           ("invalid claim type", "invalid audience"))


def test_missing_required_claim(e):
    refuse(e, "/rsa/echo", _rs(e, claims(sub=None)), "missing required claim")


# ---------------------------------------------------------------------------
# Signatures and keys


def test_wrong_key(e):
    refuse(e, "/rsa/echo", jwt.encode(claims(), e.keys.rsa_other, algorithm="RS256"), "invalid signature")


@pytest.mark.parametrize("alg,path,keyname", [
    ("PS256", "/rsa/echo", "rsa_other"), ("ES256", "/es256/echo", "ec_other"),
    ("EdDSA", "/ed/echo", "ed_other"), ("HS256", "/hs/echo", None)])
def test_wrong_key_each_family(e, alg, path, keyname):
    key = getattr(e.keys, keyname) if keyname else b"x" * 64
    refuse(e, path, jwt.encode(claims(), key, algorithm=alg), "invalid signature")


def test_stripped_signature(e):
    h, p, _ = split(_rs(e, claims()))
    refuse(e, "/rsa/echo", f"{h}.{p}.", ("malformed token", "invalid signature"))
    e.up.clear()
    refuse(e, "/rsa/echo", f"{h}.{p}", "malformed token")


def test_tampered_payload(e):
    h, p, s = split(_rs(e, claims(sub="user-42")))
    forged = b64u_json(claims(sub="admin"))
    refuse(e, "/rsa/echo", f"{h}.{forged}.{s}", "invalid signature")


def test_tampered_header(e):
    h, p, s = split(_rs(e, claims()))
    refuse(e, "/rsa/echo", f"{b64u_json({'alg': 'RS256', 'typ': 'at+jwt'})}.{p}.{s}", "invalid signature")


def test_signature_from_another_token(e):
    _, _, s = split(_rs(e, claims()))
    h, p, _ = split(_rs(e, claims(sub="admin")))
    refuse(e, "/rsa/echo", f"{h}.{p}.{s}", "invalid signature")


def test_truncated_signature(e):
    h, p, s = split(_rs(e, claims()))
    refuse(e, "/rsa/echo", f"{h}.{p}.{s[:-4]}", ("invalid signature", "malformed token"))


def test_ecdsa_der_signature_refused(e):
    # JWS wants raw R||S of exact width; a DER signature must not verify
    tok = raw_token({"alg": "ES256"}, claims(), e.keys.ec["P-256"], der_ecdsa=True)
    refuse(e, "/es256/echo", tok, ("invalid signature", "malformed token"))


def test_ecdsa_signature_for_wrong_curve(e):
    # an ES384 header over a P-256 key's signature
    tok = raw_token({"alg": "ES384"}, claims(), e.keys.ec["P-256"], alg="ES256")
    refuse(e, "/es256/echo", tok, ("algorithm not allowed", "unknown signing key", "invalid signature"))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("sig", ["", "c2lnbmF0dXJl"])
def test_alg_none(e, alg, sig):
    tok = raw_token({"alg": alg, "typ": "JWT"}, claims(), sig=sig)
    reasons = ("algorithm not allowed",) if sig else ("algorithm not allowed", "malformed token")
    refuse(e, "/rsa/echo", tok, reasons)
    e.up.clear()
    refuse(e, "/hs/echo", tok, reasons)


def test_unknown_alg(e):
    refuse(e, "/rsa/echo", raw_token({"alg": "RS1"}, claims(), sig=b"x" * 256), "algorithm not allowed")
    e.up.clear()
    refuse(e, "/rsa/echo", raw_token({"alg": "rs256"}, claims(), e.keys.rsa, alg="RS256"),
           "algorithm not allowed")


def test_alg_not_a_string(e):
    refuse(e, "/rsa/echo", raw_token({"alg": ["RS256"]}, claims(), e.keys.rsa, alg="RS256"),
           ("malformed token", "algorithm not allowed"))


def test_algorithm_confusion_hs256_with_rsa_pem(e):
    # the classic: the verifier's RSA public key PEM used as an HMAC secret
    pem = pem_pub(e.keys.rsa)
    for tok in (raw_token({"alg": "HS256", "typ": "JWT"}, claims(), pem),
                raw_token({"alg": "HS256", "typ": "JWT"}, claims(), pem.rstrip(b"\n")),
                raw_token({"alg": "HS512", "typ": "JWT"}, claims(), pem)):
        e.up.clear()
        refuse(e, "/rsa/echo", tok, ("algorithm not allowed", "unknown signing key"))


def test_algorithm_confusion_against_jwks(e):
    pem = pem_pub(e.keys.rsa)
    jwk_text = json.dumps(jwk_rsa(e.keys.rsa, kid="k1")).encode()
    for secret in (pem, jwk_text):
        e.up.clear()
        tok = raw_token({"alg": "HS256", "kid": "k1"}, claims(), secret)
        refuse(e, "/rsajwks/echo", tok, ("algorithm not allowed", "unknown signing key"))


def test_algorithm_confusion_ec_and_ed_keys(e):
    pem = pem_pub(e.keys.ec["P-256"])
    refuse(e, "/es256/echo", raw_token({"alg": "HS256"}, claims(), pem), ("algorithm not allowed", "unknown signing key"))
    e.up.clear()
    refuse(e, "/ed/echo", raw_token({"alg": "HS256"}, claims(), pem_pub(e.keys.ed)),
           ("algorithm not allowed", "unknown signing key"))


def test_algorithm_family_mismatch(e):
    # a perfectly signed ES256/EdDSA token presented to an RSA-only issuer
    refuse(e, "/rsa/echo", jwt.encode(claims(), e.keys.ec["P-256"], algorithm="ES256"), "algorithm not allowed")
    e.up.clear()
    refuse(e, "/rsa/echo", jwt.encode(claims(), e.keys.ed, algorithm="EdDSA"), "algorithm not allowed")


def test_algorithm_outside_allow_list(e):
    # rsonly allows RS256 only: a valid PS256 token with the same key is refused
    refuse(e, "/rsonly/echo", jwt.encode(claims(), e.keys.rsa, algorithm="PS256"), "algorithm not allowed")
    e.up.clear()
    accept(e, "/rsonly/echo", jwt.encode(claims(), e.keys.rsa, algorithm="RS256"))


def test_unknown_kid(e):
    refuse(e, "/rsajwks/echo", jwt.encode(claims(), e.keys.rsa, algorithm="RS256", headers={"kid": "nope"}),
           "unknown signing key")


def test_kid_nul_truncation(e):
    tok = raw_token({"alg": "RS256", "kid": "k1\u0000x"}, claims(), e.keys.rsa)
    refuse(e, "/rsajwks/echo", tok, "unknown signing key")


def test_kid_is_not_a_path(e):
    tok = raw_token({"alg": "RS256", "kid": "../../keys/rsa.pub.pem"}, claims(), e.keys.rsa)
    refuse(e, "/rsajwks/echo", tok, "unknown signing key")


def test_known_kid_wrong_key(e):
    tok = jwt.encode(claims(), e.keys.rsa_other, algorithm="RS256", headers={"kid": "k1"})
    refuse(e, "/rsajwks/echo", tok, "invalid signature")


def test_jwk_alg_restricts_the_key(e):
    # k2 is published with "alg": "RS256": a PS256 token naming k2 must not verify
    accept(e, "/rsajwks/echo", jwt.encode(claims(), e.keys.rsa_k2, algorithm="RS256", headers={"kid": "k2"}))
    e.up.clear()
    tok = jwt.encode(claims(), e.keys.rsa_k2, algorithm="PS256", headers={"kid": "k2"})
    refuse(e, "/rsajwks/echo", tok, ("unknown signing key", "algorithm not allowed", "invalid signature"))


def test_encryption_key_never_verifies(e):
    tok = jwt.encode(claims(), e.keys.rsa_other, algorithm="RS256", headers={"kid": "enc"})
    refuse(e, "/rsajwks/echo", tok, ("unknown signing key", "invalid signature"))


def test_embedded_jwk_jku_x5u_never_used(e):
    # an attacker signs with their own key and points at it every way JOSE allows
    att = e.keys.rsa_other
    jku = f"http://{e.up.addr}/jwks.json"
    hdrs = [{"jwk": jwk_rsa(att)}, {"jku": jku}, {"x5u": f"http://{e.up.addr}/cert.pem"},
            {"jwk": jwk_rsa(att), "jku": jku, "kid": "attacker"}]
    for h in hdrs:
        e.up.clear()
        tok = raw_token({"alg": "RS256", **h}, claims(), att)
        path = "/rsajwks/echo" if "kid" in h else "/rsa/echo"
        refuse(e, path, tok, ("invalid signature", "unknown signing key"))
    # with kid k1 and the attacker's jwk embedded: still only the configured k1 counts
    e.up.clear()
    tok = raw_token({"alg": "RS256", "kid": "k1", "jwk": jwk_rsa(att, kid="k1"), "jku": jku}, claims(), att)
    refuse(e, "/rsajwks/echo", tok, "invalid signature")


def test_crit_header(e):
    tok = raw_token({"alg": "RS256", "crit": ["exp"], "exp": int(time.time()) + 300}, claims(), e.keys.rsa)
    refuse(e, "/rsa/echo", tok, "unsupported critical header")
    e.up.clear()
    tok = raw_token({"alg": "RS256", "crit": ["b64"], "b64": False}, claims(), e.keys.rsa)
    refuse(e, "/rsa/echo", tok, "unsupported critical header")


def test_malformed_crit(e):
    for crit in ([], "exp", [1]):
        e.up.clear()
        tok = raw_token({"alg": "RS256", "crit": crit}, claims(), e.keys.rsa)
        refuse(e, "/rsa/echo", tok, ("malformed token", "unsupported critical header"))


# ---------------------------------------------------------------------------
# Malformed tokens


def _valid(e):
    return _rs(e, claims())


def test_padding_refused(e):
    h, p, s = split(_valid(e))
    for tok in (f"{h}.{p}==.{s}", f"{h}=.{p}.{s}", f"{h}.{p}.{s}=",
                f"{b64u_json({'alg': 'RS256'})}.{p}.{s}"):
        e.up.clear()
        reasons = ("malformed token", "invalid signature")
        refuse(e, "/rsa/echo", tok, reasons if "=" not in tok else "malformed token")


def test_padded_segments_even_when_correctly_padded(e):
    # header and payload re-encoded with '=' padding, signature over that text
    hdr = json.dumps({"alg": "RS256", "x": "a"}).encode()     # length chosen so padding is needed
    while len(hdr) % 3 == 0:
        hdr = hdr[:-1] + b' }'
    h = base64.urlsafe_b64encode(hdr).decode()
    p = base64.urlsafe_b64encode(json.dumps(claims(pad="ab")).encode()).decode()
    assert "=" in h
    si = f"{h}.{p}"
    tok = f"{si}.{b64u(sign('RS256', e.keys.rsa, si.encode()))}"
    refuse(e, "/rsa/echo", tok, "malformed token")


def test_standard_alphabet_refused(e):
    for _ in range(50):
        tok = _valid(e)
        h, p, s = split(tok)
        if "-" in s or "_" in s:
            break
    std = s.replace("-", "+").replace("_", "/")
    refuse(e, "/rsa/echo", f"{h}.{p}.{std}", "malformed token")


def test_standard_alphabet_in_signed_payload_refused(e):
    # the signing input itself uses '+' or '/': correctly signed, still not base64url
    for i in range(500):
        c = claims(n=i, pad="\u00fb\u00ff?>")
        p = base64.b64encode(json.dumps(c).encode()).decode().rstrip("=")
        if "+" in p or "/" in p:
            break
    h = b64u_json({"alg": "RS256"})
    si = f"{h}.{p}"
    tok = f"{si}.{b64u(sign('RS256', e.keys.rsa, si.encode()))}"
    refuse(e, "/rsa/echo", tok, "malformed token")


@pytest.mark.parametrize("bad", ["*", "!", "%41", "\u00e9"])
def test_non_base64url_characters(e, bad):
    h, p, s = split(_valid(e))
    tok = f"{h}.{p[:10]}{bad}{p[10:]}.{s}"
    resp, rid = e.send("/rsa/echo", tok.encode("utf-8").decode("latin-1"))
    # outside b64token: the header itself is malformed (400); inside: a malformed token (401)
    if resp.status == 400:
        refused(e, resp, rid, tok, status=400, error="invalid_request")
    else:
        refused(e, resp, rid, tok, "malformed token")


def test_whitespace_inside_token(e):
    h, p, s = split(_valid(e))
    for tok in (f"{h}.{p[:10]} {p[10:]}.{s}", f"{h}.{p}.{s} x"):
        e.up.clear()
        resp, rid = e.send("/rsa/echo", tok)
        assert resp.status in (400, 401), resp
        refused(e, resp, rid, tok.replace(" ", ""), status=resp.status,
                error="invalid_request" if resp.status == 400 else "invalid_token")


def test_wrong_segment_count(e):
    h, p, s = split(_valid(e))
    for tok in (f"{h}.{p}.{s}.{s}", f"{h}.{p}", f"{h}{p}{s}", f"{h}..{p}.{s}", f".{p}.{s}"):
        e.up.clear()
        refuse(e, "/rsa/echo", tok, "malformed token")


@pytest.mark.parametrize("hdr,what", [
    (b"not json at all", "text"),
    (b'["RS256"]', "array"),
    (b'"RS256"', "string"),
    (b'{"alg":"RS256"', "truncated"),
    (b'{"alg":"RS256"} x', "trailing"),
    (b'{"alg":"RS256",}', "trailing comma"),
    (b"{'alg':'RS256'}", "single quotes"),
    (b'{"alg":"RS\xff256"}', "invalid utf-8"),
])
def test_malformed_json_header(e, hdr, what):
    tok = raw_token(hdr, claims(), e.keys.rsa, alg="RS256")
    refuse(e, "/rsa/echo", tok, ("malformed token", "algorithm not allowed"))


@pytest.mark.parametrize("payload,what", [
    (b"not json at all", "text"),
    (b"[1,2,3]", "array"),
    (b"42", "number"),
    (b'{"sub":"a"', "truncated"),
    (b'{"sub":"\xff"}', "invalid utf-8"),
])
def test_malformed_json_payload(e, payload, what):
    # correctly signed: the refusal must come from the parser, not the signature
    tok = raw_token({"alg": "RS256"}, payload, e.keys.rsa)
    refuse(e, "/rsa/echo", tok, "malformed token")


def test_duplicate_header_member(e):
    hdr = b'{"alg":"RS256","alg":"none"}'
    refuse(e, "/rsa/echo", raw_token(hdr, claims(), e.keys.rsa, alg="RS256"),
           ("malformed token", "algorithm not allowed"))
    e.up.clear()
    hdr = b'{"alg":"none","alg":"RS256"}'
    refuse(e, "/rsa/echo", raw_token(hdr, claims(), e.keys.rsa, alg="RS256"),
           ("malformed token", "algorithm not allowed"))


def test_duplicate_payload_member(e):
    c = claims(sub="user-42")
    body = json.dumps(c, separators=(",", ":"))[:-1] + ',"sub":"admin"}'
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, body.encode(), e.keys.rsa), "malformed token")
    e.up.clear()
    body = json.dumps(c, separators=(",", ":"))[:-1] + f',"exp":{int(time.time()) + 99999}}}'
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, body.encode(), e.keys.rsa), "malformed token")


def test_deep_json_nesting(e):
    body = json.dumps(claims())[:-1] + ', "deep": ' + "[" * 200 + "]" * 200 + "}"
    refuse(e, "/rsa/echo", raw_token({"alg": "RS256"}, body.encode(), e.keys.rsa),
           ("token too large", "malformed token"))


def test_oversized_token(e):
    tok = _rs(e, claims(pad="x" * 9000))
    assert len(tok) > 8192
    refuse(e, "/rsa/echo", tok, "token too large")


def test_token_just_under_default_limit_accepted(e):
    base = len(_rs(e, claims(pad="")))
    n = (8100 - base) * 3 // 4
    tok = _rs(e, claims(pad="x" * n))
    assert 7000 < len(tok) <= 8192, len(tok)
    accept(e, "/rsa/echo", tok)


def test_configured_max_token(e):
    tok = _rs(e, claims(pad="y" * 800))
    assert len(tok) > 1024
    refuse(e, "/small/echo", tok, "token too large")
    e.up.clear()
    accept(e, "/small/echo", _rs(e, claims()))


def test_empty_segments(e):
    h, p, s = split(_valid(e))
    for tok in (f"..{s}", f"{h}..{s}", f".{p}.{s}", ".."):
        e.up.clear()
        refuse(e, "/rsa/echo", tok if tok != ".." else "..", "malformed token")


# ---------------------------------------------------------------------------
# Gateway still healthy after all of that


def test_gateway_alive_and_serving(e):
    accept(e, "/rsa/echo", _valid(e))
    assert "Sanitizer" not in e.gw.stderr()


# ---------------------------------------------------------------------------
# Load-time refusals: gatehouse -t


def run_check(tmp_path, issuers_src, route_extra="", files=None):
    """Writes gatehouse.lua whose issuers table is issuers_src (Lua text,
    starting at line 5), one route, and runs -t. Returns (rc, output)."""
    (tmp_path / "routes").mkdir(exist_ok=True)
    for name, data in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    cfg = ('return {\n'                                                   # 1
           '  listen = { "127.0.0.1:18080" },\n'                          # 2
           '  workers = 1,\n'                                             # 3
           '  upstreams = { up = { targets = { "127.0.0.1:18081" } } },\n'  # 4
           '  issuers = {\n'                                              # 5
           + issuers_src +
           '  },\n'
           '  routes = "routes/",\n'
           '}\n')
    (tmp_path / "gatehouse.lua").write_text(cfg)
    (tmp_path / "routes" / "10-api.lua").write_text(
        'local gh = require "gatehouse"\n'                 # 1
        'return gh.route {\n'                              # 2
        '  match = { path = "/api/**" },\n'                # 3
        '  upstream = "up",\n'                             # 4
        + (route_extra or '  auth = "demo",\n') +          # 5
        '}\n')
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(tmp_path / "gatehouse.lua")], capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def demo(body):
    """An issuer 'demo' at line 6 of gatehouse.lua; body lines follow (7...)."""
    return ('    demo = {\n'                                   # 6
            f'      issuer = "{ISS}",\n'                       # 7
            f'      audience = "{AUD}",\n'                     # 8
            + body +                                           # 9...
            '    },\n')


def load_fails(rc, out, lines, *words):
    assert rc == 1, f"exit {rc}: {out}"
    m = re.search(r"gatehouse\.lua:(\d+):", out)
    assert m, f"no gatehouse.lua:line: in {out!r}"
    assert int(m.group(1)) in lines, f"error at line {m.group(1)}, expected one of {list(lines)}: {out}"
    for w in words:
        assert w.lower() in out.lower(), f"expected {w!r} in {out!r}"
    assert "configuration is valid" not in out


@pytest.fixture(scope="module")
def rsa1024():
    return rsa.generate_private_key(65537, 1024)


def test_check_valid_auth_config(tmp_path, keys):
    rc, out = run_check(tmp_path, demo('      pem_file = "keys/rsa.pem",\n'),
                        files={"keys/rsa.pem": pem_pub(keys.rsa)})
    assert rc == 0, out


def test_check_rsa_1024_pem_refused(tmp_path, rsa1024):
    rc, out = run_check(tmp_path, demo('      pem_file = "keys/small.pem",\n'),
                        files={"keys/small.pem": pem_pub(rsa1024)})
    load_fails(rc, out, range(6, 10), "2048")


def test_check_rsa_1024_jwks_refused(tmp_path, rsa1024, keys):
    jwks = json.dumps({"keys": [jwk_rsa(keys.rsa, kid="a"), jwk_rsa(rsa1024, kid="b")]}).encode()
    rc, out = run_check(tmp_path, demo('      jwks_file = "keys/set.json",\n'), files={"keys/set.json": jwks})
    load_fails(rc, out, range(6, 10), "2048")


@pytest.mark.parametrize("alg,length", [("HS256", 31), ("HS384", 47), ("HS512", 63), ("HS512", 48)])
def test_check_short_hmac_secret_refused(tmp_path, alg, length):
    body = f'      algorithms = {{ "{alg}" }},\n      secret = "{"s" * length}",\n'
    rc, out = run_check(tmp_path, demo(body))
    load_fails(rc, out, range(6, 11), alg)


def test_check_short_hmac_secret_without_algorithms_refused(tmp_path):
    rc, out = run_check(tmp_path, demo('      secret = "too-short-for-any-hash",\n'))
    load_fails(rc, out, range(6, 10), "HS256")


def test_check_short_secret_file_refused(tmp_path):
    rc, out = run_check(tmp_path, demo('      secret_file = "keys/hs.secret",\n'),
                        files={"keys/hs.secret": b"0123456789abcdef0123456789abcd\n"})  # 30 bytes
    load_fails(rc, out, range(6, 10))


def test_check_hmac_secret_of_exact_length_ok(tmp_path):
    rc, out = run_check(tmp_path, demo('      algorithms = { "HS256" },\n      secret = "' + "s" * 32 + '",\n'))
    assert rc == 0, out


def test_check_unknown_issuer_on_route(tmp_path, keys):
    rc, out = run_check(tmp_path, demo('      pem_file = "keys/rsa.pem",\n'), route_extra='  auth = "ghost",\n',
                        files={"keys/rsa.pem": pem_pub(keys.rsa)})
    assert rc == 1, out
    assert re.search(r"10-api\.lua:5:", out), out
    assert "ghost" in out, out


@pytest.mark.parametrize("src", ['      jwks_url = "https://sso.example.com/realms/shop/protocol/openid-connect/certs",\n',
                                 '      discovery = true,\n'])
def test_check_remote_keys_valid_without_fetching(tmp_path, src):
    # sso.example.com does not resolve here: -t checks the URL and never fetches
    rc, out = run_check(tmp_path, demo(src))
    assert rc == 0, out


def test_check_two_key_sources_refused(tmp_path, keys):
    rc, out = run_check(tmp_path, demo('      pem_file = "keys/rsa.pem",\n      secret = "' + "s" * 64 + '",\n'),
                        files={"keys/rsa.pem": pem_pub(keys.rsa)})
    load_fails(rc, out, range(6, 11))


def test_check_no_key_source_refused(tmp_path):
    rc, out = run_check(tmp_path, demo(''))
    load_fails(rc, out, range(6, 9))


@pytest.mark.parametrize("alg", ["none", "None", "HS1"])
def test_check_unknown_algorithm_refused(tmp_path, keys, alg):
    rc, out = run_check(tmp_path, demo(f'      algorithms = {{ "{alg}" }},\n      pem_file = "keys/rsa.pem",\n'),
                        files={"keys/rsa.pem": pem_pub(keys.rsa)})
    load_fails(rc, out, range(6, 11), alg)


def test_check_algorithm_without_fitting_key_refused(tmp_path, keys):
    # HS256 allowed with only an RSA key: the confusion setup itself is refused
    rc, out = run_check(tmp_path, demo('      algorithms = { "RS256", "HS256" },\n      pem_file = "keys/rsa.pem",\n'),
                        files={"keys/rsa.pem": pem_pub(keys.rsa)})
    load_fails(rc, out, range(6, 11), "HS256")


def test_check_jwks_mixing_secrets_and_public_keys_refused(tmp_path, keys):
    jwks = json.dumps({"keys": [jwk_rsa(keys.rsa, kid="a"), {"kty": "oct", "k": b64u(b"k" * 64), "kid": "h"}]})
    rc, out = run_check(tmp_path, demo('      jwks_file = "keys/set.json",\n'), files={"keys/set.json": jwks.encode()})
    load_fails(rc, out, range(6, 10))


def test_check_missing_key_file(tmp_path):
    rc, out = run_check(tmp_path, demo('      pem_file = "keys/nope.pem",\n'))
    load_fails(rc, out, range(6, 10), "nope.pem")
