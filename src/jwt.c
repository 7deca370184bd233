/* JWS compact tokens (RFC 7515/7518/7519/8037): strict decoding, signature
 * verification through OpenSSL EVP, and claim checks. Pure: no I/O, no
 * global state. Allocations: jansson's parse, the decoded signature and
 * OpenSSL's per-verify contexts (JSON text decodes on the stack). */
#include "jwt.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include "b64url.h"

enum alg_family { FAM_HMAC, FAM_RSA, FAM_PSS, FAM_ECDSA, FAM_EDDSA };

/* What each algorithm needs of its key and how it verifies. */
struct alg_info {
    const char *name;
    enum alg_family fam;
    gh_key_type kty;
    int hash_bits; /* SHA-2 width; 0 for EdDSA */
    int ec_nid;    /* ECDSA: the one curve the algorithm allows */
    size_t ec_len; /* ECDSA: bytes of R (and of S) in the raw signature */
};

static const struct alg_info ALGS[GH_ALG_COUNT] = {
    [GH_ALG_HS256] = {"HS256", FAM_HMAC, GH_KEY_OCT, 256, 0, 0},
    [GH_ALG_HS384] = {"HS384", FAM_HMAC, GH_KEY_OCT, 384, 0, 0},
    [GH_ALG_HS512] = {"HS512", FAM_HMAC, GH_KEY_OCT, 512, 0, 0},
    [GH_ALG_RS256] = {"RS256", FAM_RSA, GH_KEY_RSA, 256, 0, 0},
    [GH_ALG_RS384] = {"RS384", FAM_RSA, GH_KEY_RSA, 384, 0, 0},
    [GH_ALG_RS512] = {"RS512", FAM_RSA, GH_KEY_RSA, 512, 0, 0},
    [GH_ALG_PS256] = {"PS256", FAM_PSS, GH_KEY_RSA, 256, 0, 0},
    [GH_ALG_PS384] = {"PS384", FAM_PSS, GH_KEY_RSA, 384, 0, 0},
    [GH_ALG_PS512] = {"PS512", FAM_PSS, GH_KEY_RSA, 512, 0, 0},
    [GH_ALG_ES256] = {"ES256", FAM_ECDSA, GH_KEY_EC, 256, NID_X9_62_prime256v1, 32},
    [GH_ALG_ES384] = {"ES384", FAM_ECDSA, GH_KEY_EC, 384, NID_secp384r1, 48},
    [GH_ALG_ES512] = {"ES512", FAM_ECDSA, GH_KEY_EC, 512, NID_secp521r1, 66},
    [GH_ALG_EDDSA] = {"EdDSA", FAM_EDDSA, GH_KEY_OKP, 0, 0, 0},
};

static const char *const DESCRIPTIONS[GH_JWT_STATUS_COUNT] = {
    [GH_JWT_OK] = "ok",
    [GH_JWT_MALFORMED] = "malformed token",
    [GH_JWT_TOO_LARGE] = "token too large",
    [GH_JWT_BAD_ALG] = "algorithm not allowed",
    [GH_JWT_UNSUPPORTED_CRIT] = "unsupported critical header",
    [GH_JWT_UNKNOWN_KID] = "unknown signing key",
    [GH_JWT_BAD_SIGNATURE] = "invalid signature",
    [GH_JWT_EXPIRED] = "token expired",
    [GH_JWT_NOT_YET_VALID] = "token not yet valid",
    [GH_JWT_ISSUED_IN_FUTURE] = "token issued in the future",
    [GH_JWT_BAD_ISSUER] = "invalid issuer",
    [GH_JWT_BAD_AUDIENCE] = "invalid audience",
    [GH_JWT_MISSING_CLAIM] = "missing required claim",
    [GH_JWT_BAD_CLAIM] = "invalid claim type",
    [GH_JWT_BAD_AZP] = "invalid authorized party",
};

static const char *const LABELS[GH_JWT_STATUS_COUNT] = {
    [GH_JWT_OK] = "ok",
    [GH_JWT_MALFORMED] = "malformed",
    [GH_JWT_TOO_LARGE] = "too_large",
    [GH_JWT_BAD_ALG] = "bad_alg",
    [GH_JWT_UNSUPPORTED_CRIT] = "unsupported_crit",
    [GH_JWT_UNKNOWN_KID] = "unknown_kid",
    [GH_JWT_BAD_SIGNATURE] = "bad_signature",
    [GH_JWT_EXPIRED] = "expired",
    [GH_JWT_NOT_YET_VALID] = "not_yet_valid",
    [GH_JWT_ISSUED_IN_FUTURE] = "issued_in_future",
    [GH_JWT_BAD_ISSUER] = "bad_issuer",
    [GH_JWT_BAD_AUDIENCE] = "bad_audience",
    [GH_JWT_MISSING_CLAIM] = "missing_claim",
    [GH_JWT_BAD_CLAIM] = "bad_claim",
    [GH_JWT_BAD_AZP] = "bad_azp",
};

int gh_jwt_alg_parse(const char *s, size_t len)
{
    for (int i = 0; i < GH_ALG_COUNT; i++) {
        if (strlen(ALGS[i].name) == len && memcmp(ALGS[i].name, s, len) == 0) return i;
    }
    return -1;
}

const char *gh_jwt_alg_name(gh_jwt_alg alg)
{
    return (unsigned)alg < GH_ALG_COUNT ? ALGS[alg].name : "unknown";
}

const char *gh_jwt_status_description(gh_jwt_status st)
{
    return (unsigned)st < GH_JWT_STATUS_COUNT ? DESCRIPTIONS[st] : "invalid token";
}

const char *gh_jwt_status_label(gh_jwt_status st)
{
    return (unsigned)st < GH_JWT_STATUS_COUNT ? LABELS[st] : "unknown";
}

void gh_jwt_clear(gh_jwt_t *t)
{
    json_decref(t->header);
    json_decref(t->claims);
    free(t->sig);
    memset(t, 0, sizeof(*t));
}

/* ---- decoding ---- */

/* Decodes one base64url segment into scratch and parses it as a JSON
 * object (duplicate names refused, \u0000 kept so lengths stay exact).
 * Returns OK with *out set, TOO_LARGE or MALFORMED. */
static gh_jwt_status parse_segment(const char *seg, size_t len, unsigned char *scratch,
                                   int max_depth, json_t **out)
{
    size_t n;
    if (len == 0 || gh_b64url_decode(seg, len, scratch, &n) != 0) return GH_JWT_MALFORMED;
    if (!gh_json_depth_ok(scratch, n, max_depth)) return GH_JWT_TOO_LARGE;
    json_error_t jerr;
    json_t *j =
        json_loadb((const char *)scratch, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return GH_JWT_MALFORMED;
    }
    *out = j;
    return GH_JWT_OK;
}

/* UNSUPPORTED_CRIT for a well-formed crit (a non-empty array of strings:
 * we implement no extension, so any name is one we do not understand),
 * MALFORMED for any other crit, OK when absent. */
static gh_jwt_status check_crit(const json_t *crit)
{
    if (!crit) return GH_JWT_OK;
    if (!json_is_array(crit) || json_array_size(crit) == 0) return GH_JWT_MALFORMED;
    size_t i;
    const json_t *v;
    json_array_foreach(crit, i, v)
    {
        if (!json_is_string(v)) return GH_JWT_MALFORMED;
    }
    return GH_JWT_UNSUPPORTED_CRIT;
}

/* Applies the JOSE header rules to t->header and fills t->alg and t->kid.
 * jku, x5u, x5c, jwk and typ are deliberately not looked at. */
static gh_jwt_status check_header(gh_jwt_t *t, const gh_jwt_policy_t *pol)
{
    const json_t *alg = json_object_get(t->header, "alg");
    if (!json_is_string(alg)) return GH_JWT_MALFORMED;
    int a = gh_jwt_alg_parse(json_string_value(alg), json_string_length(alg));
    if (a < 0 || !(pol->algorithms & (UINT32_C(1) << a))) return GH_JWT_BAD_ALG;
    t->alg = (gh_jwt_alg)a;

    gh_jwt_status st = check_crit(json_object_get(t->header, "crit"));
    if (st != GH_JWT_OK) return st;
    /* RFC 7797's unencoded payload changes the signing input: refuse it. */
    const json_t *b64 = json_object_get(t->header, "b64");
    if (b64 && !json_is_boolean(b64)) return GH_JWT_MALFORMED;
    if (json_is_false(b64)) return GH_JWT_UNSUPPORTED_CRIT;

    const json_t *kid = json_object_get(t->header, "kid");
    if (kid) {
        if (!json_is_string(kid)) return GH_JWT_MALFORMED;
        t->kid = json_string_value(kid);
        t->kid_len = json_string_length(kid);
    }
    return GH_JWT_OK;
}

/* Decodes the signature segment into a fresh t->sig. */
static gh_jwt_status decode_sig(gh_jwt_t *t, const char *seg, size_t len)
{
    if (len == 0) return GH_JWT_MALFORMED;
    t->sig = malloc(GH_B64URL_DECODED_MAX(len));
    if (!t->sig) return GH_JWT_MALFORMED;
    if (gh_b64url_decode(seg, len, t->sig, &t->sig_len) != 0) return GH_JWT_MALFORMED;
    return GH_JWT_OK;
}

/* Header, then payload, then signature; scratch holds either JSON text. */
static gh_jwt_status decode_parts(const char *token, size_t len, const char *d1, const char *d2,
                                  const gh_jwt_policy_t *pol, unsigned char *scratch, gh_jwt_t *out)
{
    int depth = pol->max_depth > 0 ? pol->max_depth : GH_JWT_DEFAULT_MAX_DEPTH;
    gh_jwt_status st = parse_segment(token, (size_t)(d1 - token), scratch, depth, &out->header);
    if (st == GH_JWT_OK) st = check_header(out, pol);
    if (st == GH_JWT_OK) {
        st = parse_segment(d1 + 1, (size_t)(d2 - d1 - 1), scratch, depth, &out->claims);
    }
    if (st == GH_JWT_OK) st = decode_sig(out, d2 + 1, (size_t)(token + len - d2 - 1));
    if (st != GH_JWT_OK) return st;
    const json_t *exp = json_object_get(out->claims, "exp");
    out->exp = json_is_number(exp) ? json_number_value(exp) : 0;
    out->signing_input = token;
    out->signing_input_len = (size_t)(d2 - token);
    return GH_JWT_OK;
}

gh_jwt_status gh_jwt_decode(const char *token, size_t len, const gh_jwt_policy_t *pol,
                            gh_jwt_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t max = pol->max_token ? pol->max_token : GH_JWT_DEFAULT_MAX_TOKEN;
    if (len > max) return GH_JWT_TOO_LARGE;
    const char *d1 = len ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(token + len - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(token + len - d2 - 1))) return GH_JWT_MALFORMED;

    /* Either JSON segment decodes into scratch: on the stack for tokens of
     * the default size, on the heap only for larger configured limits. */
    size_t seg =
        (size_t)(d1 - token) > (size_t)(d2 - d1) ? (size_t)(d1 - token) : (size_t)(d2 - d1);
    unsigned char stackbuf[GH_B64URL_DECODED_MAX(GH_JWT_DEFAULT_MAX_TOKEN)];
    unsigned char *scratch = stackbuf;
    if (GH_B64URL_DECODED_MAX(seg) > sizeof(stackbuf)) {
        scratch = malloc(GH_B64URL_DECODED_MAX(seg));
        if (!scratch) return GH_JWT_TOO_LARGE; /* too large for the memory we have */
    }
    gh_jwt_status st = decode_parts(token, len, d1, d2, pol, scratch, out);
    if (scratch != stackbuf) free(scratch);
    if (st != GH_JWT_OK) gh_jwt_clear(out);
    return st;
}

/* ---- signatures ---- */

/* SHA-2 digests fetched once: OpenSSL 3 otherwise looks each one up in
 * its provider store (under a lock) on every verification. */
static EVP_MD *fetched_md[3];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static pthread_key_t vctx_key; /* frees a thread's verification contexts */

static void vctx_free(void *p);

static void fetch_mds(void)
{
    fetched_md[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
    fetched_md[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
    fetched_md[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
    pthread_key_create(&vctx_key, vctx_free);
}

static const EVP_MD *alg_md(const struct alg_info *a)
{
    pthread_once(&fetch_once, fetch_mds);
    switch (a->hash_bits) {
    case 256:
        return fetched_md[0] ? fetched_md[0] : EVP_sha256();
    case 384:
        return fetched_md[1] ? fetched_md[1] : EVP_sha384();
    case 512:
        return fetched_md[2] ? fetched_md[2] : EVP_sha512();
    default:
        return NULL;
    }
}

/* True when OpenSSL's EVP_DigestVerify accepts sig over msg. pad selects
 * the RSA padding (0 for non-RSA keys); PSS uses a salt as long as the
 * hash and MGF1 with the same hash (RFC 7518 section 3.5). */
static bool digest_verify(EVP_PKEY *pkey, const EVP_MD *md, int pad, const unsigned char *msg,
                          size_t msg_len, const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1;
    if (ok && pad) ok = EVP_PKEY_CTX_set_rsa_padding(pctx, pad) > 0;
    if (ok && pad == RSA_PKCS1_PSS_PADDING) {
        ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
    }
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Verification contexts kept per thread, per (key, algorithm): setting
 * one up (the signature algorithm's lookup, padding, digest) costs about
 * as much again as an RSA verification, and a context verifies any number
 * of signatures. A context holds a reference to its key, so a key freed
 * by a key-set change cannot be mistaken for a new one at its address. */
#define VCTX_SLOTS 16

typedef struct {
    const EVP_PKEY *pkey;
    const struct alg_info *alg;
    EVP_PKEY_CTX *ctx;
} vctx_t;

typedef struct {
    vctx_t slot[VCTX_SLOTS];
    unsigned next;
} vctx_cache_t;

static _Thread_local vctx_cache_t *tl_vctx; /* also in vctx_key, for its destructor */

static void vctx_free(void *p)
{
    vctx_cache_t *c = p;
    for (int i = 0; i < VCTX_SLOTS; i++) EVP_PKEY_CTX_free(c->slot[i].ctx);
    free(c);
    tl_vctx = NULL;
}

/* This thread's context verifying a's signatures (over a digest) with
 * pkey, or NULL. */
static EVP_PKEY_CTX *verify_ctx(EVP_PKEY *pkey, const struct alg_info *a, const EVP_MD *md, int pad)
{
    vctx_cache_t *c = tl_vctx;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || pthread_setspecific(vctx_key, c) != 0) return free(c), NULL;
        tl_vctx = c;
    }
    for (int i = 0; i < VCTX_SLOTS; i++)
        if (c->slot[i].pkey == pkey && c->slot[i].alg == a) return c->slot[i].ctx;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
    if (ok && pad) ok = EVP_PKEY_CTX_set_rsa_padding(ctx, pad) > 0;
    if (ok && pad == RSA_PKCS1_PSS_PADDING) {
        ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
    }
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    vctx_t *v = &c->slot[c->next++ % VCTX_SLOTS];
    EVP_PKEY_CTX_free(v->ctx);
    *v = (vctx_t){pkey, a, ctx};
    return ctx;
}

/* RSA, PSS and ECDSA (DER) signatures: hash msg, then verify the digest
 * with this thread's context for (pkey, a). */
static bool hashed_verify(EVP_PKEY *pkey, const struct alg_info *a, int pad,
                          const unsigned char *msg, size_t msg_len, const unsigned char *sig,
                          size_t sig_len)
{
    const EVP_MD *md = alg_md(a);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!md || EVP_Digest(msg, msg_len, digest, &dlen, md, NULL) != 1) return false;
    EVP_PKEY_CTX *ctx = verify_ctx(pkey, a, md, pad);
    return ctx && EVP_PKEY_verify(ctx, sig, sig_len, digest, dlen) == 1;
}

/* True when sig is exactly the full-width HMAC of msg under the secret. */
static bool hmac_verify(const gh_jwk_t *k, const EVP_MD *md, const unsigned char *msg,
                        size_t msg_len, const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!k->secret || k->secret_len == 0 || k->secret_len > INT_MAX) return false;
    if (sig_len != (size_t)EVP_MD_get_size(md)) return false;
    if (!HMAC(md, k->secret, (int)k->secret_len, msg, msg_len, mac, &mac_len)) return false;
    bool ok = mac_len == sig_len && CRYPTO_memcmp(mac, sig, sig_len) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* The NID of the EC key's actual curve, or NID_undef. */
static int pkey_curve(EVP_PKEY *pkey)
{
    char name[64];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1) return NID_undef;
    int nid = OBJ_sn2nid(name);
    return nid != NID_undef ? nid : EC_curve_nist2nid(name);
}

/* JWS carries ECDSA signatures as raw R||S of fixed width; OpenSSL wants
 * DER. Returns the DER length written to der, or 0. */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t half, unsigned char *der,
                               size_t cap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    size_t out = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        int n = i2d_ECDSA_SIG(es, NULL);
        unsigned char *p = der;
        if (n > 0 && (size_t)n <= cap && i2d_ECDSA_SIG(es, &p) == n) out = (size_t)n;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return out;
}

/* ECDSA over the one curve the algorithm names, raw R||S of exact width. */
static bool ecdsa_verify(const struct alg_info *a, const gh_jwk_t *k, const unsigned char *msg,
                         size_t msg_len, const unsigned char *sig, size_t sig_len)
{
    unsigned char der[2 * (66 + 4) + 4];
    if (sig_len != 2 * a->ec_len) return false;
    if (k->ec_nid != a->ec_nid || pkey_curve(k->pkey) != a->ec_nid) return false;
    size_t der_len = ecdsa_raw_to_der(sig, a->ec_len, der, sizeof(der));
    return der_len && hashed_verify(k->pkey, a, 0, msg, msg_len, der, der_len);
}

/* True when the key is of the type the algorithm's family needs, down to
 * the OpenSSL key type: an HMAC algorithm only ever sees an oct secret, so
 * an RSA key's bytes can never be used as one. */
static bool key_type_ok(const struct alg_info *a, const gh_jwk_t *k)
{
    if (k->type != a->kty) return false;
    switch (a->fam) {
    case FAM_HMAC:
        return k->secret != NULL;
    case FAM_RSA:
    case FAM_PSS:
        return k->pkey && EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_RSA &&
               EVP_PKEY_get_bits(k->pkey) >= 2048;
    case FAM_ECDSA:
        return k->pkey && EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_EC;
    case FAM_EDDSA:
        return k->pkey && EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_ED25519;
    }
    return false;
}

/* True when sig verifies over msg with k under algorithm a. */
static bool jws_verify(const struct alg_info *a, const gh_jwk_t *k, const unsigned char *msg,
                       size_t msg_len, const unsigned char *sig, size_t sig_len)
{
    if (!key_type_ok(a, k)) return false;
    switch (a->fam) {
    case FAM_HMAC:
        return hmac_verify(k, alg_md(a), msg, msg_len, sig, sig_len);
    case FAM_RSA:
    case FAM_PSS:
        if (sig_len != (size_t)EVP_PKEY_get_size(k->pkey)) return false;
        return hashed_verify(k->pkey, a,
                             a->fam == FAM_PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING, msg,
                             msg_len, sig, sig_len);
    case FAM_ECDSA:
        return ecdsa_verify(a, k, msg, msg_len, sig, sig_len);
    case FAM_EDDSA:
        return sig_len == 64 && digest_verify(k->pkey, NULL, 0, msg, msg_len, sig, sig_len);
    }
    return false;
}

bool gh_jws_verify(gh_jwt_alg alg, const gh_jwk_t *key, const unsigned char *msg, size_t msg_len,
                   const unsigned char *sig, size_t sig_len)
{
    if ((unsigned)alg >= GH_ALG_COUNT || !key || (!msg && msg_len) || !sig) return false;
    bool ok = jws_verify(&ALGS[alg], key, msg, msg_len, sig, sig_len);
    /* A refused signature leaves OpenSSL errors queued on this thread,
     * where a later TLS call would misread them. */
    if (!ok) ERR_clear_error();
    return ok;
}

/* True when the key may verify this token: the same kid when both name
 * one (compared by length, so an embedded NUL cannot shorten it; a key
 * without a kid, as from a PEM file, fits any), the key's own alg if it
 * has one, and a key type and curve the alg takes. */
static bool key_fits(const gh_jwk_t *k, const gh_jwt_t *t)
{
    const struct alg_info *a = &ALGS[t->alg];
    if (t->kid && k->kid) {
        if (k->kid_len != t->kid_len) return false;
        if (memcmp(k->kid, t->kid, t->kid_len) != 0) return false;
    }
    if (k->alg && strcmp(k->alg, a->name) != 0) return false;
    if (k->type != a->kty) return false;
    return a->fam != FAM_ECDSA || k->ec_nid == a->ec_nid;
}

gh_jwt_status gh_jwt_verify_signature(const gh_jwt_t *t, const gh_jwks_t *keys)
{
    if ((unsigned)t->alg >= GH_ALG_COUNT || !t->sig) return GH_JWT_MALFORMED;
    bool fitted = false;
    for (size_t i = 0; keys && i < keys->n; i++) {
        const gh_jwk_t *k = &keys->keys[i];
        if (!key_fits(k, t)) continue;
        fitted = true;
        if (gh_jws_verify(t->alg, k, (const unsigned char *)t->signing_input, t->signing_input_len,
                          t->sig, t->sig_len)) {
            return GH_JWT_OK;
        }
    }
    return fitted ? GH_JWT_BAD_SIGNATURE : GH_JWT_UNKNOWN_KID;
}

/* ---- claims ---- */

/* OK when the NumericDate claim is absent (MISSING_CLAIM if required) or
 * a number; BAD_CLAIM for any other type. *v is the value, 0 if absent. */
static gh_jwt_status numeric_claim(const json_t *claims, const char *name, bool required, double *v,
                                   bool *present)
{
    const json_t *j = json_object_get(claims, name);
    *v = 0;
    *present = j != NULL;
    if (!j) return required ? GH_JWT_MISSING_CLAIM : GH_JWT_OK;
    if (!json_is_number(j)) return GH_JWT_BAD_CLAIM;
    *v = json_number_value(j);
    return GH_JWT_OK;
}

/* exp, nbf and iat against now: a token is expired on or after exp (RFC
 * 7519 section 4.1.4), each bound widened by the skew. Written so that a
 * NaN now or skew fails closed. */
static gh_jwt_status check_times(const gh_jwt_t *t, const gh_jwt_policy_t *pol, double now)
{
    double skew = pol->clock_skew, v;
    bool present;
    gh_jwt_status st = numeric_claim(t->claims, "exp", pol->require_exp, &v, &present);
    if (st != GH_JWT_OK) return st;
    if (present && !(now < v + skew)) return GH_JWT_EXPIRED;
    if ((st = numeric_claim(t->claims, "nbf", false, &v, &present)) != GH_JWT_OK) return st;
    if (present && !(now + skew >= v)) return GH_JWT_NOT_YET_VALID;
    if ((st = numeric_claim(t->claims, "iat", false, &v, &present)) != GH_JWT_OK) return st;
    if (present && !(now + skew >= v)) return GH_JWT_ISSUED_IN_FUTURE;
    return GH_JWT_OK;
}

static bool str_eq(const json_t *j, const char *s, size_t len)
{
    return json_string_length(j) == len && memcmp(json_string_value(j), s, len) == 0;
}

/* True when the string j equals any configured audience. */
static bool aud_match(const json_t *j, const gh_jwt_policy_t *pol)
{
    for (size_t i = 0; i < pol->naud; i++) {
        if (str_eq(j, pol->audiences[i], pol->audience_lens[i])) return true;
    }
    return false;
}

/* azp (OpenID Connect Core 2: the party the token was issued to, which
 * Keycloak sets to the client id) must equal one configured party. */
static gh_jwt_status check_azp(const json_t *claims, const gh_jwt_policy_t *pol)
{
    if (pol->nazp == 0) return GH_JWT_OK;
    const json_t *azp = json_object_get(claims, "azp");
    if (!azp) return GH_JWT_MISSING_CLAIM;
    if (!json_is_string(azp)) return GH_JWT_BAD_CLAIM;
    for (size_t i = 0; i < pol->nazp; i++)
        if (str_eq(azp, pol->azps[i], pol->azp_lens[i])) return GH_JWT_OK;
    return GH_JWT_BAD_AZP;
}

/* aud is a string or an array of strings (RFC 7519 section 4.1.3); any
 * element equal to any configured audience passes. */
static gh_jwt_status check_aud(const json_t *claims, const gh_jwt_policy_t *pol)
{
    if (pol->naud == 0) return GH_JWT_OK;
    const json_t *aud = json_object_get(claims, "aud");
    if (!aud) return GH_JWT_MISSING_CLAIM;
    if (json_is_string(aud)) return aud_match(aud, pol) ? GH_JWT_OK : GH_JWT_BAD_AUDIENCE;
    if (!json_is_array(aud)) return GH_JWT_BAD_CLAIM;
    size_t i;
    const json_t *v;
    bool found = false;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v)) return GH_JWT_BAD_CLAIM;
        found = found || aud_match(v, pol);
    }
    return found ? GH_JWT_OK : GH_JWT_BAD_AUDIENCE;
}

gh_jwt_status gh_jwt_check_claims(const gh_jwt_t *t, const gh_jwt_policy_t *pol, double now)
{
    if (!t->claims) return GH_JWT_MALFORMED;
    gh_jwt_status st = check_times(t, pol, now);
    if (st != GH_JWT_OK) return st;
    if (pol->issuer) {
        const json_t *iss = json_object_get(t->claims, "iss");
        if (!iss) return GH_JWT_MISSING_CLAIM;
        if (!json_is_string(iss)) return GH_JWT_BAD_CLAIM;
        if (!str_eq(iss, pol->issuer, pol->issuer_len)) return GH_JWT_BAD_ISSUER;
    }
    if ((st = check_aud(t->claims, pol)) != GH_JWT_OK) return st;
    if ((st = check_azp(t->claims, pol)) != GH_JWT_OK) return st;
    for (size_t i = 0; i < pol->nrequired; i++) {
        const json_t *v = json_object_get(t->claims, pol->required_claims[i]);
        if (!v || json_is_null(v)) return GH_JWT_MISSING_CLAIM;
    }
    return GH_JWT_OK;
}

gh_jwt_status gh_jwt_verify(const char *token, size_t len, const gh_jwt_policy_t *pol,
                            const gh_jwks_t *keys, double now, gh_jwt_t *out)
{
    gh_jwt_status st = gh_jwt_decode(token, len, pol, out);
    if (st != GH_JWT_OK) return st;
    st = gh_jwt_verify_signature(out, keys);
    if (st == GH_JWT_OK) st = gh_jwt_check_claims(out, pol, now);
    if (st != GH_JWT_OK) gh_jwt_clear(out);
    return st;
}
