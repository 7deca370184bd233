/* JSON Web Keys (RFC 7517/7518/8037) to OpenSSL keys: pure, no I/O. */
#ifndef GH_JWK_H
#define GH_JWK_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { GH_KEY_OCT, GH_KEY_RSA, GH_KEY_EC, GH_KEY_OKP } gh_key_type;

/* One verification key. */
typedef struct {
    char *kid; /* NULL when the key has none */
    size_t kid_len;
    gh_key_type type;
    char *alg;             /* the JWK "alg" member (restricts the key to it), or NULL */
    EVP_PKEY *pkey;        /* RSA, EC (P-256/384/521) and OKP (Ed25519) keys */
    int ec_nid;            /* EC: NID_X9_62_prime256v1, NID_secp384r1 or NID_secp521r1 */
    unsigned char *secret; /* oct keys */
    size_t secret_len;
} gh_jwk_t;

typedef struct {
    gh_jwk_t *keys;
    size_t n;
} gh_jwks_t;

/* Parses a JWK Set ({"keys":[...]}) or a single JWK. Keys whose "use" is
 * not "sig" (or whose "key_ops" lack "verify"), whose "alg" is not a JWS
 * algorithm we verify, and key types or curves we do not verify with, are
 * skipped (a JWKS may legitimately carry encryption keys); a key that
 * claims a supported type but is malformed fails the whole set, as do an
 * RSA key under 2048 bits (or with a bad exponent or the ROCA fingerprint),
 * an HMAC secret shorter than its alg's hash (32 bytes without alg), an
 * "alg" that contradicts the key's type or curve, two kept keys with the
 * same kid, and a set mixing HMAC secrets with public keys. Private-key
 * members are ignored. Limits: 1 MiB of JSON, nesting 16, 100 keys.
 * Returns 0 (out->n may be 0), or -1 with a reason in err and out empty. */
int gh_jwks_parse(const char *json, size_t len, gh_jwks_t *out, char *err, size_t errlen);

/* A public key from PEM (SubjectPublicKeyInfo; RSA >= 2048 bits, EC P-256/
 * 384/521, Ed25519). Returns 0, or -1 with a reason in err. */
int gh_jwk_from_pem(const char *pem, size_t len, gh_jwk_t *out, char *err, size_t errlen);

/* An HMAC key from raw secret bytes (copied). Returns 0 or -1 (OOM). */
int gh_jwk_from_secret(const unsigned char *secret, size_t len, gh_jwk_t *out);

/* False when the JSON text nests objects and arrays deeper than max: a
 * cheap scan before jansson (whose own limit, 2048, is far too generous),
 * so a parser never recurses on hostile input. Exact for valid JSON; the
 * parser refuses anything invalid it might misjudge. */
bool gh_json_depth_ok(const void *text, size_t len, int max);

/* Free what a key / a set holds (not the struct itself) and zero it. */
void gh_jwk_clear(gh_jwk_t *k);
void gh_jwks_free(gh_jwks_t *set);

#endif
