#!/usr/bin/python3
"""Keys and tokens for bench/run's JWT scenarios (PyJWT + cryptography).

  jwt_tokens.py DIR N THREADS PROCS ISSUER AUDIENCE

Generates a fresh RSA 2048 key and a fresh P-256 key, writes only their public
halves (the private keys never leave this process), and mints with PyJWT, for
ALG in rs256 (RS256) and es256 (ES256), into DIR:

  ALG.pub.pem        public key (SubjectPublicKeyInfo PEM): gatehouse pem_file,
                     HAProxy jwt_verify
  ALG.repeat         one valid token (exp in 30 days): the repeat scenarios
  ALG.expired        valid signature, exp an hour ago        (sanity checks)
  ALG.badsig         the repeat token with one signature byte changed
  ALG.policy         the repeat token's claims plus tenant_id (exp in 30 days): the
                     policy phase, with and without the policy
  ALG.policy-norole  the same with realm_access.roles = ["GUEST"] (sanity: 403)
  ALG.fresh.T        T = 0..THREADS-1: N/THREADS distinct valid tokens (distinct
                     jti), one a line, all of one length (bench/fresh.lua seeks by
                     record); wrk thread T of bench/fresh.lua reads file T

Every token has iss=ISSUER, aud=AUDIENCE, sub, iat, exp, jti, scope and
realm_access.roles (the shape scripts/mint-token produces). Signing runs in
PROCS processes; RS256 signing dominates (a few thousand per second per core).
"""
import multiprocessing
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGS = (("rs256", "RS256"), ("es256", "ES256"))
_KEY = None   # per worker process: (private key object, JWS alg)
_BASE = None  # claims shared by every token


def _claims(jti, now, ttl):
    c = dict(_BASE)
    c.update(iat=now, exp=now + ttl, jti=jti)
    return c


def _init_worker(pem, alg, base):
    global _KEY, _BASE
    _KEY = (serialization.load_pem_private_key(pem, password=None), alg)
    _BASE = base


def _mint_range(args):
    name, start, stop, now = args
    key, alg = _KEY
    ttl = 30 * 86400
    return [jwt.encode(_claims("%s-%08d" % (name, i), now, ttl), key, algorithm=alg)
            for i in range(start, stop)]


def _flip_sig(tok):
    head, payload, sig = tok.split(".")
    i = len(sig) // 2
    sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
    return ".".join((head, payload, sig))


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    out, n, threads, procs, issuer, audience = (argv[1], int(argv[2]), int(argv[3]),
                                                int(argv[4]), argv[5], argv[6])
    global _BASE
    _BASE = {"iss": issuer, "aud": audience, "sub": "bench-user",
             "scope": "openid profile", "realm_access": {"roles": ["USER"]}}
    now = int(time.time())
    for name, alg in ALGS:
        t0 = time.monotonic()
        if alg == "RS256":
            priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            priv = ec.generate_private_key(ec.SECP256R1())
        pub = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(os.path.join(out, name + ".pub.pem"), "wb") as f:
            f.write(pub)
        repeat = jwt.encode(_claims(name + "-repeat", now, 30 * 86400), priv, algorithm=alg)
        expired = jwt.encode(_claims(name + "-expired", now - 7200, 3600), priv, algorithm=alg)
        pol = _claims(name + "-policy", now, 30 * 86400)
        pol["tenant_id"] = "bench-tenant"
        policy = jwt.encode(pol, priv, algorithm=alg)
        pol.update(jti=name + "-policy-norole", realm_access={"roles": ["GUEST"]})
        norole = jwt.encode(pol, priv, algorithm=alg)
        for suffix, tok in (("repeat", repeat), ("expired", expired), ("badsig", _flip_sig(repeat)),
                            ("policy", policy), ("policy-norole", norole)):
            with open(os.path.join(out, "%s.%s" % (name, suffix)), "w") as f:
                f.write(tok + "\n")

        # fresh tokens: chunks signed in PROCS processes, token i -> file i % THREADS
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        chunk = 2000
        jobs = [(name, s, min(s + chunk, n), now) for s in range(0, n, chunk)]
        files = [open(os.path.join(out, "%s.fresh.%d" % (name, t)), "w") for t in range(threads)]
        i, length = 0, None
        with multiprocessing.Pool(procs, _init_worker, (pem, alg, _BASE)) as pool:
            for toks in pool.imap(_mint_range, jobs):
                for tok in toks:
                    length = length or len(tok)
                    if len(tok) != length:  # bench/fresh.lua seeks by record
                        raise SystemExit("%s: token %d is %d bytes, not %d" % (name, i, len(tok), length))
                    files[i % threads].write(tok + "\n")
                    i += 1
        for f in files:
            f.close()
        del pem, priv
        print("%s: %d fresh tokens (%d bytes each) in %.1f s"
              % (name, i, len(repeat), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
