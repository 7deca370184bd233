"""Token revocation end to end (issue 5): the deny-list by `jti`, "not before"
per subject (sign-out-everywhere), the admin endpoint `POST /revoke`,
gh.revoke from a policy, and propagation between two gateway instances
through a real redis-server.

A revoked token is answered like an invalid one: 401 problem+json with
`WWW-Authenticate: Bearer realm="shop", error="invalid_token",
error_description="token revoked"`, and nothing reaches the recording
upstream. Revocation is checked on every request, tokens already in the
verified-token cache included.

Redis schema (prefix "ghtest:" here): ZSET revoked:jti (member jti, score
exp), ZSET revoked:sub (member sub, score T), STRING revoked:version (INCR'd
by every revocation), channel revoked ("<version> jti <exp> <jti>" or
"<version> sub <T> <sub>"). Tests play "the auth service" by writing that
schema directly.

Every gateway and redis-server listens on 127.0.0.1; every wait is bounded.
"""

import json
import secrets
import socket
import time

import jwt
import pytest

from conftest import Lua, assert_problem, challenge, free_port, wait_until
from rawhttp import RawConn

ISS = "https://sso.example.com/realms/shop"
AUD = "orders-api"
REALM = "shop"
SECRET = "revocation-tests-hmac-secret-0123456789-abcdefghijklmnopqrstu"  # 64 bytes
ISSUERS = {"hs": {"issuer": ISS, "audience": AUD, "secret": SECRET, "realm": REALM}}
PREFIX = "ghtest:"
ZJTI, ZSUB, VERSION, CHANNEL = (PREFIX + "revoked:jti", PREFIX + "revoked:sub", PREFIX + "revoked:version",
                                PREFIX + "revoked")

ROUTES = [
    {"name": "api", "match": {"path": "/api/**"}, "upstream": "up", "auth": "hs"},
    {"name": "public", "match": {"path": "/public/**"}, "upstream": "up"},
    {"name": "logout", "match": {"path": "/logout"}, "upstream": "up", "auth": "hs", "policy": Lua(
        'function(req, claims)\n'
        '    local ok, err = gh.revoke { jti = claims.jti, exp = claims.exp }\n'
        '    if not ok then return gh.respond(503, "revoke failed: " .. tostring(err)) end\n'
        '    return gh.respond(200, "logged out")\n'
        '  end')},
    {"name": "logout-all", "match": {"path": "/logout-all"}, "upstream": "up", "auth": "hs", "policy": Lua(
        'function(req, claims)\n'
        '    local ok, err = gh.revoke { sub = claims.sub, before = os.time() }\n'
        '    if not ok then return gh.respond(503, "revoke failed: " .. tostring(err)) end\n'
        '    return gh.respond(200, "signed out everywhere")\n'
        '  end')},
]


def token(sub="alice", **kw):
    """(token, claims): HS256 for the shop issuer; keyword None removes a claim."""
    now = int(time.time())
    c = {"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300, "jti": f"jti-{secrets.token_hex(8)}"}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return jwt.encode(c, SECRET, algorithm="HS256"), c


class Instance:
    """One gateway (with its admin listener, if any) and the shared upstream."""

    def __init__(self, gw, admin_port, up):
        self.gw = gw
        self.admin_port = admin_port
        self.up = up

    def get(self, path, tok=None):
        hs = [("Authorization", f"Bearer {tok}")] if tok else []
        with RawConn("127.0.0.1", self.gw.port, 10.0) as c:
            c.request("GET", path, headers=hs)
            return c.read_response()

    def revoke(self, body, path="/revoke"):
        """POST to the admin listener; body: a dict (sent as JSON) or bytes."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with RawConn("127.0.0.1", self.admin_port, 10.0) as c:
            c.request("POST", path, headers=[("Content-Type", "application/json"),
                                             ("Content-Length", str(len(data)))], body=data,
                      host=f"127.0.0.1:{self.admin_port}")
            return c.read_response("POST")

    def passes(self, tok, path="/api/ok"):
        """tok is accepted: 200 from the upstream, which got exactly this request."""
        self.up.clear()
        resp = self.get(path, tok)
        assert resp.status == 200, f"expected 200, got {resp!r}\n{self.gw.stderr()[-2000:]}"
        assert resp.header("X-Upstream") == "recording", resp.headers
        (q,) = self.up.wait_for(1)
        assert q.path == path and q.header("Authorization") == f"Bearer {tok}"
        self.up.clear()

    def refused(self, tok, path="/api/no"):
        """tok is refused as revoked, and nothing reached the upstream."""
        self.up.clear()
        assert_revoked(self.get(path, tok))
        nothing_upstream(self.up)

    def refused_within(self, tok, seconds):
        """tok becomes refused within seconds (bounded polling), then is
        checked once more in full."""
        wait_until(lambda: self.get("/api/poll", tok).status == 401, seconds,
                   lambda: f"the token refused on :{self.gw.port}:\n{self.gw.stderr()[-2000:]}", interval=0.05)
        self.refused(tok)

    def unavailable(self, tok, path="/api/x"):
        """A fail-closed answer (no usable deny-list): 503 problem+json, fast, nothing upstream."""
        self.up.clear()
        t0 = time.monotonic()
        resp = self.get(path, tok)
        assert time.monotonic() - t0 < 2.0
        assert_problem(resp, 503)
        nothing_upstream(self.up)


def assert_revoked(resp):
    assert_problem(resp, 401)
    ch = challenge(resp)
    assert ch.get("realm") == REALM, ch
    assert ch.get("error") == "invalid_token", ch
    assert ch.get("error_description") == "token revoked", ch


def nothing_upstream(up):
    time.sleep(0.03)  # a forward, were there one, would have started by now
    assert up.started == [] and up.requests == [] and up.bytes_received == 0, \
        f"the upstream received something: {up.started!r}"


def admin_ok(resp, kind):
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc.get("revoked") == kind, doc
    return doc


@pytest.fixture
def instance(gateway, upstream):
    """instance(redis=RedisServer|None, admin=True, workers=1, **revocation)."""

    def make(redis=None, admin=True, workers=1, **revocation):
        extra = {"issuers": ISSUERS, "workers": workers}
        admin_port = None
        if admin:
            admin_port = free_port()
            extra["admin"] = f"127.0.0.1:{admin_port}"
        if redis is not None:
            extra["redis"] = {"url": redis.url, "timeout_ms": 200, "prefix": PREFIX}
        if revocation:
            extra["revocation"] = revocation
        gw = gateway(upstreams={"up": {"targets": [upstream.addr]}}, routes=ROUTES, **extra)
        if admin:
            wait_until(lambda: _accepts(admin_port), 5.0, f"the admin listener on {admin_port}")
        return Instance(gw, admin_port, upstream)

    return make


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def synced(inst, seconds=10.0):
    """Waits (bounded) until inst answers a fresh token with 200: with
    on_error = "deny" that means it holds a synced deny-list."""
    tok, _ = token("sync-probe")
    wait_until(lambda: inst.get("/api/sync", tok).status == 200, seconds,
               lambda: f"a synced deny-list on :{inst.gw.port}:\n{inst.gw.stderr()[-2000:]}", interval=0.1)
    inst.up.clear()


def write_revocation(r, kind, value, score, publish=True):
    """What the auth service does: ZADD, INCR the version, PUBLISH (optionally)."""
    r.zadd(ZJTI if kind == "jti" else ZSUB, {value: score})
    v = r.incr(VERSION)
    if publish:
        r.publish(CHANNEL, f"{v} {kind} {score} {value}")
    return v


# ---------------------------------------------------------------------------
# The admin endpoint, with and without Redis


@pytest.fixture(params=["local", "redis"])
def store(request):
    """None (revocations local to the instance) or a started RedisServer."""
    return request.getfixturevalue("redis_server") if request.param == "redis" else None


def test_revoke_jti_via_admin(instance, store):
    inst = instance(redis=store)
    synced(inst)
    tok, c = token()
    other, _ = token()
    for _ in range(2):
        inst.passes(tok)  # now in the verified-token cache
    inst.passes(other)
    sub = None
    if store is not None:
        sub = store.client().pubsub()
        sub.subscribe(CHANNEL)
        # confirmed before the revocation, so its message cannot overtake us
        ack = wait_until(lambda: sub.get_message(timeout=0.1), 3.0, "our subscription confirmed")
        assert ack["type"] == "subscribe", ack
    admin_ok(inst.revoke({"jti": c["jti"], "exp": c["exp"]}), "jti")
    inst.refused_within(tok, 1.0)
    # the jti is what is revoked, not the token string
    same_jti, _ = token(jti=c["jti"], iat=c["iat"] - 1)
    inst.refused(same_jti)
    inst.passes(other)
    if store is not None:
        r = store.client()
        assert r.zscore(ZJTI, c["jti"]) == c["exp"]
        v = int(r.get(VERSION))
        assert v >= 1
        msg = wait_until(lambda: sub.get_message(timeout=0.1), 3.0, "the revocation on the channel")
        assert msg["type"] == "message" and msg["data"] == f"{v} jti {c['exp']} {c['jti']}", msg
        sub.close()


def test_revoke_subject_via_admin(instance, store):
    inst = instance(redis=store)
    synced(inst)
    now = int(time.time())
    before = now - 5
    alice_old, _ = token("alice", iat=now - 60)
    alice_no_iat, _ = token("alice", iat=None)
    alice_new, _ = token("alice", iat=now)
    bob_old, _ = token("bob", iat=now - 60)
    inst.passes(alice_old)  # cached
    admin_ok(inst.revoke({"sub": "alice", "before": before}), "sub")
    inst.refused_within(alice_old, 1.0)
    inst.refused(alice_no_iat)  # no iat counts as issued before T
    inst.passes(alice_new)      # issued after T: a fresh login
    inst.passes(bob_old)
    if store is not None:
        assert store.client().zscore(ZSUB, "alice") == before


def test_revoke_subject_before_defaults_to_now(instance):
    inst = instance()
    carol, _ = token("carol", iat=int(time.time()) - 10)
    dave, _ = token("dave", iat=int(time.time()) - 10)
    inst.passes(carol)
    admin_ok(inst.revoke({"sub": "carol"}), "sub")
    inst.refused_within(carol, 1.0)
    inst.passes(dave)


def test_cached_token_refused_on_every_worker(instance):
    # two workers, each with its own token cache; fresh connections spread
    # over both SO_REUSEPORT sockets
    inst = instance(workers=2)
    tok, c = token()
    for _ in range(12):
        inst.passes(tok)
    admin_ok(inst.revoke({"jti": c["jti"], "exp": c["exp"]}), "jti")
    inst.refused_within(tok, 1.0)
    for _ in range(12):
        inst.refused(tok)


def test_admin_rejects_bad_input(instance):
    inst = instance()
    tok, c = token("alice")
    exp = c["exp"]
    bad = [
        b"not json",
        b"",
        b"[]",
        b"null",
        b'"jti"',
        b"{}",
        b'{"jti": "' + c["jti"].encode() + b'", "exp": ' + str(exp).encode() + b"} trailing",
        {"jti": c["jti"]},                      # no exp
        {"exp": exp},                           # no jti
        {"jti": 5, "exp": exp},
        {"jti": c["jti"], "exp": "soon"},
        {"jti": c["jti"], "exp": None},
        {"jti": [c["jti"]], "exp": exp},
        {"sub": 7},
        {"sub": None},
        {"sub": "alice", "before": "yesterday"},
        {"sub": "alice", "before": [1]},
    ]
    for body in bad:
        resp = inst.revoke(body)
        assert resp.status == 400, f"{body!r}: {resp!r}"
        assert_problem(resp, 400)
    # nothing was revoked by any of them
    inst.passes(tok)
    inst.passes(token("alice", iat=int(time.time()) - 60)[0])


def test_admin_write_failure_is_503_but_applies_locally(instance, redis_server):
    inst = instance(redis=redis_server, on_error="allow")
    synced(inst)
    tok, c = token()
    inst.passes(tok)
    redis_server.kill()
    resp = inst.revoke({"jti": c["jti"], "exp": c["exp"]})
    assert_problem(resp, 503)
    inst.refused_within(tok, 1.0)


# ---------------------------------------------------------------------------
# gh.revoke from a policy


def test_lua_revoke_jti_logs_the_token_out(instance, store):
    inst = instance(redis=store, admin=False)
    synced(inst)
    tok, c = token()
    other, _ = token()
    inst.passes(tok)
    inst.up.clear()
    resp = inst.get("/logout", tok)
    assert resp.status == 200 and resp.body == b"logged out", resp
    nothing_upstream(inst.up)
    inst.refused_within(tok, 1.0)
    inst.up.clear()
    assert_revoked(inst.get("/logout", tok))  # revocation runs before the policy
    nothing_upstream(inst.up)
    inst.passes(other)
    if store is not None:
        assert store.client().zscore(ZJTI, c["jti"]) == c["exp"]


def test_lua_revoke_subject_signs_out_everywhere(instance):
    inst = instance(admin=False)
    old = int(time.time()) - 10
    alice1, _ = token("alice", iat=old)
    alice2, _ = token("alice", iat=old)
    bob, _ = token("bob", iat=old)
    inst.passes(alice2)
    resp = inst.get("/logout-all", alice1)
    assert resp.status == 200 and resp.body == b"signed out everywhere", resp
    inst.refused_within(alice2, 1.0)
    inst.refused(alice1)
    inst.passes(bob)


# ---------------------------------------------------------------------------
# Two instances sharing one Redis


def test_admin_revocation_reaches_the_other_instance(instance, redis_server):
    a = instance(redis=redis_server, poll=1)
    b = instance(redis=redis_server, poll=1, admin=False)
    synced(a)
    synced(b)
    tok, c = token()
    b.passes(tok)  # cached on b
    a.passes(tok)
    t0 = time.monotonic()
    admin_ok(a.revoke({"jti": c["jti"], "exp": c["exp"]}), "jti")
    b.refused_within(tok, 3.0)
    a.refused(tok)
    assert time.monotonic() - t0 < 3.5


def test_auth_service_publish_reaches_both_instances(instance, redis_server):
    # poll = 30: only the pub/sub message can deliver these within 2 s
    a = instance(redis=redis_server, poll=30, max_stale=120, admin=False)
    b = instance(redis=redis_server, poll=30, max_stale=120, admin=False)
    synced(a)
    synced(b)
    r = redis_server.client()
    # warm-up: both instances hear the channel (bounded; repeats the message)
    warm, wc = token("warm")

    def warm_refused():
        write_revocation(r, "jti", wc["jti"], wc["exp"])
        return all(i.get("/api/warm", warm).status == 401 for i in (a, b))
    wait_until(warm_refused, 5.0, "both instances hearing the revocation channel", interval=0.2)

    tok, c = token()
    now = int(time.time())
    mallory, _ = token("mallory", iat=now - 60)
    for i in (a, b):
        i.passes(tok)
        i.passes(mallory)
    write_revocation(r, "jti", c["jti"], c["exp"])
    write_revocation(r, "sub", "mallory", now - 5)
    for i in (a, b):
        i.refused_within(tok, 2.0)
        i.refused_within(mallory, 2.0)
    a.passes(token("mallory", iat=now)[0])  # issued after T


def test_lost_message_arrives_by_poll(instance, redis_server):
    a = instance(redis=redis_server, poll=1, admin=False)
    b = instance(redis=redis_server, poll=1, admin=False)
    synced(a)
    synced(b)
    tok, c = token()
    a.passes(tok)
    b.passes(tok)
    write_revocation(redis_server.client(), "jti", c["jti"], c["exp"], publish=False)
    t0 = time.monotonic()
    a.refused_within(tok, 3.0)
    b.refused_within(tok, 3.0)
    assert time.monotonic() - t0 < 3.5


# ---------------------------------------------------------------------------
# What Redis holds


def test_redis_entries_expire_with_the_token(instance, redis_server):
    inst = instance(redis=redis_server)
    synced(inst)  # connected: the admin's writes reach Redis
    r = redis_server.client()
    soon = int(time.time()) + 2
    _, c1 = token(exp=soon)
    admin_ok(inst.revoke({"jti": c1["jti"], "exp": soon}), "jti")
    assert r.zscore(ZJTI, c1["jti"]) == soon  # score = exp: the entry lives as long as the token
    wait_until(lambda: time.time() > soon + 1, 5.0, "the first token's exp to pass", interval=0.1)
    _, c2 = token()
    admin_ok(inst.revoke({"jti": c2["jti"], "exp": c2["exp"]}), "jti")
    assert r.zscore(ZJTI, c2["jti"]) == c2["exp"]
    wait_until(lambda: r.zscore(ZJTI, c1["jti"]) is None, 5.0, "the expired jti pruned from Redis")
    assert r.zrangebyscore(ZJTI, "-inf", int(time.time()) - 1) == []
    assert int(r.get(VERSION)) >= 2


# ---------------------------------------------------------------------------
# Redis down


def test_redis_down_at_start_deny_then_syncs(instance, redis_server):
    redis_server.stop()  # its port stays ours for the restart
    inst = instance(redis=redis_server, on_error="deny", poll=1)
    tok, _ = token()
    for _ in range(3):
        inst.unavailable(tok)
    # routes without auth have no use for the deny-list
    inst.up.clear()
    assert inst.get("/public/p").status == 200
    inst.up.wait_for(1)
    inst.up.clear()

    redis_server.start()
    r = redis_server.client()
    revoked, rc = token()
    write_revocation(r, "jti", rc["jti"], rc["exp"], publish=False)
    synced(inst, 10.0)
    inst.passes(tok)
    inst.refused_within(revoked, 3.0)


def test_redis_down_at_start_allow(instance, redis_server):
    redis_server.stop()
    inst = instance(redis=redis_server, on_error="allow", poll=1)
    tok, _ = token()
    for _ in range(3):
        t0 = time.monotonic()
        inst.passes(tok)
        assert time.monotonic() - t0 < 2.0
    redis_server.start()
    revoked, rc = token()
    inst.passes(revoked)
    write_revocation(redis_server.client(), "jti", rc["jti"], rc["exp"])
    inst.refused_within(revoked, 10.0)  # reconnect backoff (<= 2 s) + sync
    inst.passes(tok)


def test_revocations_already_in_redis_apply_from_the_start(instance, redis_server):
    r = redis_server.client()
    revoked, rc = token()
    now = int(time.time())
    old, _ = token("mallory", iat=now - 60)
    write_revocation(r, "jti", rc["jti"], rc["exp"], publish=False)
    write_revocation(r, "sub", "mallory", now - 5, publish=False)
    inst = instance(redis=redis_server, on_error="deny", poll=30, max_stale=120)
    synced(inst, 5.0)
    inst.refused(revoked)  # in the synced list: no waiting
    inst.refused(old)
    inst.passes(token("mallory", iat=now)[0])


def test_stale_list_serves_for_max_stale_then_deny(instance, redis_server):
    inst = instance(redis=redis_server, on_error="deny", max_stale=4, poll=1)
    synced(inst)
    tok, _ = token()
    revoked, rc = token()
    admin_ok(inst.revoke({"jti": rc["jti"], "exp": rc["exp"]}), "jti")
    inst.refused_within(revoked, 1.0)
    redis_server.kill()
    t0 = time.monotonic()
    inst.passes(tok)        # the last synced list keeps serving ...
    inst.refused(revoked)   # ... revocations included
    assert time.monotonic() - t0 < 1.5, "too slow to check the stale window"
    # ... until it is older than max_stale, counted from the last contact:
    # a poll of 1 s puts that up to 1 s before the kill, and the gateway
    # keeps it in whole seconds (up to 1 s more)
    wait_until(lambda: inst.get("/api/stale", tok).status == 503, 8.0,
               lambda: f"503 once max_stale passed:\n{inst.gw.stderr()[-2000:]}", interval=0.1)
    took = time.monotonic() - t0
    assert took >= 1.9, f"denied {took:.2f}s after the kill, well before max_stale"
    inst.unavailable(tok)
    redis_server.start()
    synced(inst, 10.0)
    inst.passes(tok)
