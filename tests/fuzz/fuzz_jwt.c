/* Fuzz target for jwt.c, with key sets built by jwk.c. The first byte picks
 * the mode:
 *
 *  - not '{': the input is a compact token;
 *  - '{': the input is claims JSON, or header JSON, '\n', claims JSON, which
 *    the target signs itself with a key of its HMAC set, so that tokens with
 *    a valid signature reach the claim checks.
 *
 * Each token is decoded and verified under a strict and a lax policy, both
 * allowing every algorithm, against an HMAC key set and a public key set
 * (EC P-256, Ed25519, RSA-2048; two sets, as jwk.c refuses a mixed one).
 * Every outcome must be justified: a decoded token has three strict
 * base64url segments and an allowed alg, never none nor crit; a signature
 * accepted came from a key that fits the token and whose family is the
 * alg's; claims accepted pass every policy rule and claims refused break the
 * rule named. gh_jwt_verify must equal its three steps in order and a
 * failure leaves the token cleared. A token the target signed verifies
 * whenever the signing key fits it, and never with one MAC bit flipped. */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>

#include "fuzz_check.h"
#include "jwk.h"
#include "jwt.h"

/* Test keys made for this target. The private halves ("d") stay in so
 * more seeds can be signed (README.md); gh_jwks_parse ignores them. The RSA
 * key is examples/quickstart/keys/dev-rs256. */
static const char SECRET_JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"oct\",\"kid\":\"hs-1\",\"alg\":\"HS256\",\"use\":\"sig\","
    "\"k\":\"IXLq5dasOlWDHYDnhH4C57NcR-s_Rro5m6VToUptik0\"},"
    "{\"kty\":\"oct\",\"kid\":\"hs-2\","
    "\"k\":\"cQazGF5mt3rbe5kJ16lfoGsd_"
    "5azUzoJfWlPO0yQ3zm5itcAOAgXoIqjMdSAXw8uEPBnrR7n5wNypYjPZIyWsQ\"}"
    "]}";

static const char PUBLIC_JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"EC\",\"kid\":\"ec-1\",\"alg\":\"ES256\",\"crv\":\"P-256\","
    "\"x\":\"qUMWsnqduux1Mt48RXng8enH9cAKwuNEXW-m2IETqww\","
    "\"y\":\"r3MJGr-h3pJb-Ey1FkddSJHt4KiYr_dzWXhV2hdwAww\","
    "\"d\":\"ghOL6_irAa_TsDkyuJ5rItiBJreIcEgVaLN-lnDC7bA\"},"
    "{\"kty\":\"OKP\",\"kid\":\"ed-1\",\"crv\":\"Ed25519\","
    "\"x\":\"ap-iT-ewd97GDSUwBVxxmUm763snOjUDkO5j8oBsf7I\","
    "\"d\":\"HkQDfo9xaVvQmmp7puDM9buyHc5YEhJ23og85At6vsU\",\"key_ops\":[\"verify\"]},"
    "{\"kty\":\"RSA\",\"kid\":\"dev-rs256\",\"use\":\"sig\",\"e\":\"AQAB\",\"n\":\""
    "yOV6WNxwskDefn79jAJ6yslBHVfmZDw4ztHbYyZ4K79R5BdrB9ThkndsKSkrWi10WpYeCzoVN9MaKCd87jM15GaDkV_"
    "NeBNhmTrQ92QGIi_ZWna5ilkf3vKPc-4u2i7oQKJjfcP2JEDJ_h_i57gdkWczKTfSdxtqOWkDuF41-jRBzjLBPWIhpK6"
    "otzInmsmoiBMIqyjH-5WMNDdqsfz1IQJTRMgRVixr2m2tHIP1KOOJ3bWrl69wDyt3WISNRFNgqgh6xs61i6Qdih70vWx"
    "eqe7ZkNoVmwnY3iXKKOeTazk_fmMhbhD-Nsd9NFrAhrAc7Aju-HAMtqmvhxdTD79y8Q\"}"
    "]}";

enum { KEY_HS1, KEY_HS2 }; /* indexes in the HMAC set */

/* Signed mode's header when the input gives none. */
static const char DEFAULT_HEADER[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs-1\"}";

#define NOW 1700000000.0 /* a fixed clock keeps every run reproducible */

#define ISSUER "https://issuer.example"
static const char *const AUDIENCES[] = {"gatehouse", "orders-api"};
static const size_t AUDIENCE_LENS[] = {9, 10};
static const char *const REQUIRED[] = {"sub"};

/* What an issuer entry typically demands, with the default limits. */
static const gh_jwt_policy_t STRICT = {
    .issuer = ISSUER,
    .issuer_len = sizeof ISSUER - 1,
    .audiences = AUDIENCES,
    .audience_lens = AUDIENCE_LENS,
    .naud = 2,
    .algorithms = (UINT32_C(1) << GH_ALG_COUNT) - 1,
    .clock_skew = 60,
    .require_exp = true,
    .required_claims = REQUIRED,
    .nrequired = 1,
};

/* Nothing required, every bit set, a token limit past the stack scratch
 * buffer and shallow nesting. */
static const gh_jwt_policy_t LAX = {
    .algorithms = UINT32_MAX,
    .max_token = 1 << 17,
    .max_depth = 4,
};

/* The algorithms as RFC 7518 and 8037 define them, independent of jwt.c. */
static const struct {
    const char *name;
    gh_key_type kty;
    int ec_nid;
} ALG_REF[GH_ALG_COUNT] = {
    [GH_ALG_HS256] = {"HS256", GH_KEY_OCT, 0},
    [GH_ALG_HS384] = {"HS384", GH_KEY_OCT, 0},
    [GH_ALG_HS512] = {"HS512", GH_KEY_OCT, 0},
    [GH_ALG_RS256] = {"RS256", GH_KEY_RSA, 0},
    [GH_ALG_RS384] = {"RS384", GH_KEY_RSA, 0},
    [GH_ALG_RS512] = {"RS512", GH_KEY_RSA, 0},
    [GH_ALG_PS256] = {"PS256", GH_KEY_RSA, 0},
    [GH_ALG_PS384] = {"PS384", GH_KEY_RSA, 0},
    [GH_ALG_PS512] = {"PS512", GH_KEY_RSA, 0},
    [GH_ALG_ES256] = {"ES256", GH_KEY_EC, NID_X9_62_prime256v1},
    [GH_ALG_ES384] = {"ES384", GH_KEY_EC, NID_secp384r1},
    [GH_ALG_ES512] = {"ES512", GH_KEY_EC, NID_secp521r1},
    [GH_ALG_EDDSA] = {"EdDSA", GH_KEY_OKP, 0},
};

#define BIT(st) (UINT32_C(1) << (st))

/* The alg and HMAC key the target signed a token with. */
typedef struct {
    gh_jwt_alg alg;
    size_t key;
} signing_t;

static gh_jwks_t secret_keys, public_keys;

/* Parses both key sets once; they live until the process exits. */
static void load_keys(void)
{
    static bool loaded;
    char err[256] = "";
    if (loaded) return;
    if (gh_jwks_parse(SECRET_JWKS, sizeof SECRET_JWKS - 1, &secret_keys, err, sizeof err) != 0 ||
        gh_jwks_parse(PUBLIC_JWKS, sizeof PUBLIC_JWKS - 1, &public_keys, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_jwt: test keys refused: %s\n", err);
        abort();
    }
    FUZZ_CHECK(secret_keys.n == 2 && public_keys.n == 3);
    FUZZ_CHECK(strcmp(secret_keys.keys[KEY_HS1].kid, "hs-1") == 0);
    FUZZ_CHECK(strcmp(secret_keys.keys[KEY_HS2].kid, "hs-2") == 0);
    loaded = true;
}

static bool json_str_is(const json_t *j, const char *s, size_t len)
{
    return json_is_string(j) && json_string_length(j) == len &&
           memcmp(json_string_value(j), s, len) == 0;
}

static bool is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* True when the n bytes at s are one strict unpadded base64url string. */
static bool is_b64url_segment(const char *s, size_t n)
{
    if (n == 0 || n % 4 == 1) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_b64url((unsigned char)s[i])) return false;
    return true;
}

static bool is_cleared(const gh_jwt_t *t)
{
    return t->alg == 0 && !t->header && !t->claims && !t->kid && t->kid_len == 0 && t->exp == 0 &&
           !t->signing_input && t->signing_input_len == 0 && !t->sig && t->sig_len == 0;
}

static void check_status(gh_jwt_status st)
{
    FUZZ_CHECK((unsigned)st < GH_JWT_STATUS_COUNT);
    FUZZ_CHECK(strcmp(gh_jwt_status_label(st), "unknown") != 0);
    const char *why = gh_jwt_status_description(st);
    FUZZ_CHECK(why != NULL && why[0] != '\0');
}

/* A decoded token is three non-empty strict base64url segments: JSON
 * objects, then the signature, which t holds decoded. */
static void check_shape(const char *tok, size_t n, const gh_jwt_t *t)
{
    const char *d1 = memchr(tok, '.', n);
    FUZZ_CHECK(d1 != NULL);
    const char *d2 = memchr(d1 + 1, '.', (size_t)(tok + n - d1 - 1));
    FUZZ_CHECK(d2 != NULL);
    FUZZ_CHECK(memchr(d2 + 1, '.', (size_t)(tok + n - d2 - 1)) == NULL);
    size_t sig_chars = (size_t)(tok + n - d2 - 1);
    FUZZ_CHECK(is_b64url_segment(tok, (size_t)(d1 - tok)));
    FUZZ_CHECK(is_b64url_segment(d1 + 1, (size_t)(d2 - d1 - 1)));
    FUZZ_CHECK(is_b64url_segment(d2 + 1, sig_chars));
    FUZZ_CHECK(json_is_object(t->header) && json_is_object(t->claims));
    FUZZ_CHECK(t->signing_input == tok && t->signing_input_len == (size_t)(d2 - tok));
    FUZZ_CHECK(t->sig != NULL && t->sig_len == sig_chars * 3 / 4);
}

/* The header names an allowed alg exactly, has no crit, no b64:false, and
 * t's kid is the header's. */
static void check_header(const gh_jwt_t *t, const gh_jwt_policy_t *pol)
{
    FUZZ_CHECK((unsigned)t->alg < GH_ALG_COUNT);
    FUZZ_CHECK(pol->algorithms & (UINT32_C(1) << t->alg));
    const char *name = ALG_REF[t->alg].name;
    const json_t *alg = json_object_get(t->header, "alg");
    FUZZ_CHECK(json_str_is(alg, name, strlen(name)));
    FUZZ_CHECK(json_object_get(t->header, "crit") == NULL);
    const json_t *b64 = json_object_get(t->header, "b64");
    FUZZ_CHECK(!b64 || json_is_true(b64));
    const json_t *kid = json_object_get(t->header, "kid");
    if (!kid) {
        FUZZ_CHECK(t->kid == NULL && t->kid_len == 0);
    } else {
        FUZZ_CHECK(json_is_string(kid) && t->kid == json_string_value(kid));
        FUZZ_CHECK(t->kid_len == json_string_length(kid));
    }
}

static void check_decoded(const char *tok, size_t n, const gh_jwt_policy_t *pol, gh_jwt_status st,
                          const gh_jwt_t *t)
{
    check_status(st);
    size_t max = pol->max_token ? pol->max_token : GH_JWT_DEFAULT_MAX_TOKEN;
    if (n > max) FUZZ_CHECK(st == GH_JWT_TOO_LARGE);
    if (st != GH_JWT_OK) {
        FUZZ_CHECK(is_cleared(t));
        return;
    }
    FUZZ_CHECK(n <= max);
    check_shape(tok, n, t);
    check_header(t, pol);
    const json_t *exp = json_object_get(t->claims, "exp");
    FUZZ_CHECK(t->exp == (json_is_number(exp) ? json_number_value(exp) : 0));
}

/* Faults of one NumericDate claim: BAD_CLAIM when not a number, else
 * late_status when out of its window (exp: NOW at or after exp + skew;
 * nbf, iat: later than NOW + skew). */
static uint32_t time_faults(const json_t *v, bool is_exp, double skew, gh_jwt_status late_status)
{
    if (!v) return 0;
    if (!json_is_number(v)) return BIT(GH_JWT_BAD_CLAIM);
    double t = json_number_value(v);
    bool late = is_exp ? NOW >= t + skew : NOW + skew < t;
    return late ? BIT(late_status) : 0;
}

static bool audience_listed(const json_t *s, const gh_jwt_policy_t *pol)
{
    for (size_t i = 0; i < pol->naud; i++)
        if (json_str_is(s, pol->audiences[i], pol->audience_lens[i])) return true;
    return false;
}

static uint32_t aud_faults(const json_t *aud, const gh_jwt_policy_t *pol)
{
    if (pol->naud == 0) return 0;
    if (!aud) return BIT(GH_JWT_MISSING_CLAIM);
    if (json_is_string(aud)) return audience_listed(aud, pol) ? 0 : BIT(GH_JWT_BAD_AUDIENCE);
    if (!json_is_array(aud)) return BIT(GH_JWT_BAD_CLAIM);
    uint32_t f = BIT(GH_JWT_BAD_AUDIENCE);
    for (size_t i = 0; i < json_array_size(aud); i++) {
        const json_t *v = json_array_get(aud, i);
        if (!json_is_string(v)) f |= BIT(GH_JWT_BAD_CLAIM);
        if (audience_listed(v, pol)) f &= ~BIT(GH_JWT_BAD_AUDIENCE);
    }
    return f;
}

/* Every status the claims deserve under pol at NOW, one bit each; 0 when
 * they pass. Written from jwt.h's rules, in no particular order. */
static uint32_t claim_faults(const json_t *claims, const gh_jwt_policy_t *pol)
{
    const json_t *exp = json_object_get(claims, "exp");
    uint32_t f = 0;
    double skew = pol->clock_skew;
    if (!exp && pol->require_exp) f |= BIT(GH_JWT_MISSING_CLAIM);
    f |= time_faults(exp, true, skew, GH_JWT_EXPIRED);
    f |= time_faults(json_object_get(claims, "nbf"), false, skew, GH_JWT_NOT_YET_VALID);
    f |= time_faults(json_object_get(claims, "iat"), false, skew, GH_JWT_ISSUED_IN_FUTURE);
    if (pol->issuer) {
        const json_t *iss = json_object_get(claims, "iss");
        if (!iss)
            f |= BIT(GH_JWT_MISSING_CLAIM);
        else if (!json_is_string(iss))
            f |= BIT(GH_JWT_BAD_CLAIM);
        else if (!json_str_is(iss, pol->issuer, pol->issuer_len))
            f |= BIT(GH_JWT_BAD_ISSUER);
    }
    f |= aud_faults(json_object_get(claims, "aud"), pol);
    for (size_t i = 0; i < pol->nrequired; i++) {
        const json_t *v = json_object_get(claims, pol->required_claims[i]);
        if (!v || json_is_null(v)) f |= BIT(GH_JWT_MISSING_CLAIM);
    }
    return f;
}

/* Claims pass exactly when they have no fault; a refusal names one. */
static void check_claims_outcome(const json_t *claims, const gh_jwt_policy_t *pol, gh_jwt_status st)
{
    check_status(st);
    uint32_t f = claim_faults(claims, pol);
    if (st == GH_JWT_OK)
        FUZZ_CHECK(f == 0);
    else
        FUZZ_CHECK(f & BIT(st));
}

/* jwt.h's rule: kids equal when both have one, the key's own alg if any,
 * the alg's key type and, for ECDSA, its curve. */
static bool ref_key_fits(const gh_jwk_t *k, const gh_jwt_t *t)
{
    if (t->kid && k->kid && (k->kid_len != t->kid_len || memcmp(k->kid, t->kid, t->kid_len) != 0))
        return false;
    if (k->alg && strcmp(k->alg, ALG_REF[t->alg].name) != 0) return false;
    if (k->type != ALG_REF[t->alg].kty) return false;
    return ALG_REF[t->alg].ec_nid == 0 || k->ec_nid == ALG_REF[t->alg].ec_nid;
}

/* UNKNOWN_KID exactly when no key fits; an HMAC alg verifies only against
 * the HMAC set and every other alg only against the public set. */
static void check_signature_outcome(const gh_jwt_t *t, const gh_jwks_t *keys, gh_jwt_status st)
{
    check_status(st);
    FUZZ_CHECK(st == GH_JWT_OK || st == GH_JWT_UNKNOWN_KID || st == GH_JWT_BAD_SIGNATURE);
    bool fits = false;
    for (size_t i = 0; i < keys->n; i++) fits = fits || ref_key_fits(&keys->keys[i], t);
    FUZZ_CHECK((st == GH_JWT_UNKNOWN_KID) == !fits);
    if (st == GH_JWT_OK) {
        bool hmac = ALG_REF[t->alg].kty == GH_KEY_OCT;
        FUZZ_CHECK(hmac == (keys == &secret_keys));
    }
}

/* gh_jwt_verify returns the first failure of its steps, fills out only on
 * success, and gh_jwt_clear empties it. */
static void check_verify(const char *tok, size_t n, const gh_jwt_policy_t *pol,
                         const gh_jwks_t *keys, gh_jwt_status expect)
{
    gh_jwt_t v;
    gh_jwt_status st = gh_jwt_verify(tok, n, pol, keys, NOW, &v);
    FUZZ_CHECK(st == expect);
    if (st == GH_JWT_OK)
        FUZZ_CHECK(v.header && v.claims && v.sig && v.signing_input == tok);
    else
        FUZZ_CHECK(is_cleared(&v));
    gh_jwt_clear(&v);
    FUZZ_CHECK(is_cleared(&v));
}

/* Signature step and whole chain against one key set; st and cst are the
 * decode and claim statuses for t (cst is meaningful only when st is OK). */
static void run_set(const char *tok, size_t n, const gh_jwt_policy_t *pol, const gh_jwt_t *t,
                    gh_jwt_status st, gh_jwt_status cst, const gh_jwks_t *keys,
                    const signing_t *signer)
{
    gh_jwt_status sst = GH_JWT_OK;
    if (st == GH_JWT_OK) {
        sst = gh_jwt_verify_signature(t, keys);
        check_signature_outcome(t, keys, sst);
        if (signer && keys == &secret_keys && t->alg == signer->alg &&
            ref_key_fits(&secret_keys.keys[signer->key], t))
            FUZZ_CHECK(sst == GH_JWT_OK);
    }
    check_verify(tok, n, pol, keys, st != GH_JWT_OK ? st : sst != GH_JWT_OK ? sst : cst);
}

/* Runs every check on tok; signer is set when the target signed it. */
static void run_token(const char *tok, size_t n, const signing_t *signer)
{
    const gh_jwt_policy_t *const pols[] = {&STRICT, &LAX};
    for (size_t p = 0; p < sizeof pols / sizeof pols[0]; p++) {
        gh_jwt_t t;
        gh_jwt_status st = gh_jwt_decode(tok, n, pols[p], &t);
        check_decoded(tok, n, pols[p], st, &t);
        gh_jwt_status cst = GH_JWT_OK;
        if (st == GH_JWT_OK) {
            cst = gh_jwt_check_claims(&t, pols[p], NOW);
            check_claims_outcome(t.claims, pols[p], cst);
        }
        run_set(tok, n, pols[p], &t, st, cst, &secret_keys, signer);
        run_set(tok, n, pols[p], &t, st, cst, &public_keys, signer);
        gh_jwt_clear(&t);
        FUZZ_CHECK(is_cleared(&t));
    }
    /* Refused signatures must not leave errors for a later TLS call. */
    FUZZ_CHECK(ERR_peek_error() == 0);
}

/* A token with a broken signature fails every key set and policy. */
static void check_refused(const char *tok, size_t n)
{
    const gh_jwt_policy_t *const pols[] = {&STRICT, &LAX};
    const gh_jwks_t *const sets[] = {&secret_keys, &public_keys};
    for (size_t p = 0; p < sizeof pols / sizeof pols[0]; p++) {
        for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
            gh_jwt_t v;
            FUZZ_CHECK(gh_jwt_verify(tok, n, pols[p], sets[k], NOW, &v) != GH_JWT_OK);
            FUZZ_CHECK(is_cleared(&v));
        }
    }
    FUZZ_CHECK(ERR_peek_error() == 0);
}

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Writes n bytes as unpadded base64url at out; returns the length. */
static size_t b64url_encode(const void *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = abc[v & 63];
    }
    return o;
}

/* The HMAC alg and key to sign with: HS384 or HS512 when the header names
 * one (else HS256), and hs-2 when the header's kid is "hs-2" (else hs-1). */
static signing_t choose_signing(const char *hdr, size_t len)
{
    signing_t s = {GH_ALG_HS256, KEY_HS1};
    json_t *h = json_loadb(hdr, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    const json_t *alg = json_object_get(h, "alg");
    if (json_str_is(alg, "HS384", 5)) s.alg = GH_ALG_HS384;
    if (json_str_is(alg, "HS512", 5)) s.alg = GH_ALG_HS512;
    if (json_str_is(json_object_get(h, "kid"), "hs-2", 4)) s.key = KEY_HS2;
    json_decref(h);
    return s;
}

static const EVP_MD *hmac_md(gh_jwt_alg alg)
{
    return alg == GH_ALG_HS384 ? EVP_sha384() : alg == GH_ALG_HS512 ? EVP_sha512() : EVP_sha256();
}

/* Signed mode: builds header.claims.mac in an exact-size buffer and runs
 * it. The header is DEFAULT_HEADER unless the input has a '\n'. */
static void run_signed(const char *in, size_t size)
{
    const char *hdr = DEFAULT_HEADER, *claims = in;
    size_t hlen = sizeof DEFAULT_HEADER - 1, clen = size;
    const char *nl = memchr(in, '\n', size);
    if (nl) {
        hdr = in;
        hlen = (size_t)(nl - in);
        claims = nl + 1;
        clen = size - hlen - 1;
    }
    signing_t s = choose_signing(hdr, hlen);
    const gh_jwk_t *key = &secret_keys.keys[s.key];
    const EVP_MD *md = hmac_md(s.alg);
    size_t mac_len = (size_t)EVP_MD_get_size(md);
    size_t cap = b64url_len(hlen) + 1 + b64url_len(clen) + 1 + b64url_len(mac_len);
    char *tok = malloc(cap);
    FUZZ_CHECK(tok != NULL);

    size_t n = b64url_encode(hdr, hlen, tok);
    tok[n++] = '.';
    n += b64url_encode(claims, clen, tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int got = 0;
    FUZZ_CHECK(HMAC(md, key->secret, (int)key->secret_len, (const unsigned char *)tok, n, mac,
                    &got) != NULL);
    FUZZ_CHECK(got == mac_len);
    tok[n++] = '.';
    size_t sig_at = n;
    n += b64url_encode(mac, mac_len, tok + n);
    FUZZ_CHECK(n == cap);
    run_token(tok, n, &s);

    /* One flipped MAC bit, at a place the input picks: never accepted. */
    mac[size % mac_len] ^= (unsigned char)(1u << (size % 8));
    b64url_encode(mac, mac_len, tok + sig_at);
    check_refused(tok, n);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_keys();
    if (size > 0 && data[0] == '{')
        run_signed((const char *)data, size);
    else
        run_token((const char *)data, size, NULL);
    return 0;
}
