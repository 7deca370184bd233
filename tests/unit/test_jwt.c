/* JWT chain: every algorithm signed here with OpenSSL and verified by
 * jwt.c, then every refusal the issue names, and the claim checks at
 * their exact boundaries. Keys are built as gh_jwk_t directly, without
 * jwk.c's parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jwt.h"

#define NOW    1700000000.0
#define ALL    ((UINT32_C(1) << GH_ALG_COUNT) - 1)
#define BIT(a) (UINT32_C(1) << (a))

/* Signing keys (private) and the verification set built from their
 * public halves. rsa2 is a second RSA key for "wrong key" cases. */
static struct {
    EVP_PKEY *rsa, *rsa2, *ec[3], *ed;
    unsigned char secret[64];
    gh_jwk_t pub[7]; /* hs, rsa, rsa2, ec256, ec384, ec521, ed */
    gh_jwks_t set;
} K;

static const char *const EC_CURVES[3] = {"P-256", "P-384", "P-521"};
static const int EC_NIDS[3] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};

static EVP_PKEY *public_only(EVP_PKEY *priv)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(priv, &der);
    assert_true(n > 0);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

static gh_jwk_t pkey_jwk(const char *kid, gh_key_type type, EVP_PKEY *priv, int nid)
{
    gh_jwk_t k = {.kid = (char *)kid, .kid_len = strlen(kid), .type = type};
    k.pkey = public_only(priv);
    k.ec_nid = nid;
    return k;
}

static int group_setup(void **state)
{
    (void)state;
    K.rsa = EVP_RSA_gen(2048);
    K.rsa2 = EVP_RSA_gen(2048);
    for (int i = 0; i < 3; i++) K.ec[i] = EVP_EC_gen(EC_CURVES[i]);
    K.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    for (size_t i = 0; i < sizeof(K.secret); i++) K.secret[i] = (unsigned char)(i * 7 + 1);
    K.pub[0] = (gh_jwk_t){.kid = (char *)"hs",
                          .kid_len = 2,
                          .type = GH_KEY_OCT,
                          .secret = K.secret,
                          .secret_len = sizeof(K.secret)};
    K.pub[1] = pkey_jwk("rsa", GH_KEY_RSA, K.rsa, 0);
    K.pub[2] = pkey_jwk("rsa2", GH_KEY_RSA, K.rsa2, 0);
    K.pub[3] = pkey_jwk("ec256", GH_KEY_EC, K.ec[0], EC_NIDS[0]);
    K.pub[4] = pkey_jwk("ec384", GH_KEY_EC, K.ec[1], EC_NIDS[1]);
    K.pub[5] = pkey_jwk("ec521", GH_KEY_EC, K.ec[2], EC_NIDS[2]);
    K.pub[6] = pkey_jwk("ed", GH_KEY_OKP, K.ed, 0);
    K.set = (gh_jwks_t){K.pub, 7};
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.rsa2);
    for (int i = 0; i < 3; i++) EVP_PKEY_free(K.ec[i]);
    EVP_PKEY_free(K.ed);
    for (int i = 1; i < 7; i++) EVP_PKEY_free(K.pub[i].pkey);
    return 0;
}

/* ---- token construction ---- */

/* Appends the unpadded base64url of in to out (NUL-terminated). */
static void b64url_append(char *out, const unsigned char *in, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = out + strlen(out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        *o++ = A[v >> 18 & 63];
        *o++ = A[v >> 12 & 63];
        if (i + 1 < n) *o++ = A[v >> 6 & 63];
        if (i + 2 < n) *o++ = A[v & 63];
    }
    *o = '\0';
}

static const EVP_MD *md_for(gh_jwt_alg alg)
{
    switch (alg) {
    case GH_ALG_HS256:
    case GH_ALG_RS256:
    case GH_ALG_PS256:
    case GH_ALG_ES256:
        return EVP_sha256();
    case GH_ALG_HS384:
    case GH_ALG_RS384:
    case GH_ALG_PS384:
    case GH_ALG_ES384:
        return EVP_sha384();
    case GH_ALG_EDDSA:
        return NULL;
    default:
        return EVP_sha512();
    }
}

/* Signs with EVP_DigestSign; DER for ECDSA. */
static size_t evp_sign(EVP_PKEY *pkey, const EVP_MD *md, int pad, const void *msg, size_t n,
                       unsigned char *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey), 1);
    if (pad) assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, pad) > 0);
    if (pad == RSA_PKCS1_PSS_PADDING) {
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0);
    }
    size_t len = cap;
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, msg, n), 1);
    EVP_MD_CTX_free(ctx);
    return len;
}

/* ECDSA signature as JWS wants it: raw R||S, each padded to w bytes. */
static size_t ecdsa_sign_raw(EVP_PKEY *pkey, const EVP_MD *md, const void *msg, size_t n,
                             unsigned char *sig, int w)
{
    unsigned char der[256];
    size_t dlen = evp_sign(pkey, md, 0, msg, n, der, sizeof(der));
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, w), w);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + w, w), w);
    ECDSA_SIG_free(es);
    return (size_t)(2 * w);
}

/* Signs msg for alg with the test's private key (rsa2 when other). */
static size_t sign(gh_jwt_alg alg, bool other, const void *msg, size_t n, unsigned char *sig)
{
    const EVP_MD *md = md_for(alg);
    unsigned int len = 0;
    switch (alg) {
    case GH_ALG_HS256:
    case GH_ALG_HS384:
    case GH_ALG_HS512:
        assert_non_null(HMAC(md, K.secret, sizeof(K.secret), msg, n, sig, &len));
        return len;
    case GH_ALG_RS256:
    case GH_ALG_RS384:
    case GH_ALG_RS512:
        return evp_sign(other ? K.rsa2 : K.rsa, md, RSA_PKCS1_PADDING, msg, n, sig, 512);
    case GH_ALG_PS256:
    case GH_ALG_PS384:
    case GH_ALG_PS512:
        return evp_sign(other ? K.rsa2 : K.rsa, md, RSA_PKCS1_PSS_PADDING, msg, n, sig, 512);
    case GH_ALG_ES256:
        return ecdsa_sign_raw(K.ec[0], md, msg, n, sig, 32);
    case GH_ALG_ES384:
        return ecdsa_sign_raw(K.ec[1], md, msg, n, sig, 48);
    case GH_ALG_ES512:
        return ecdsa_sign_raw(K.ec[2], md, msg, n, sig, 66);
    default:
        return evp_sign(K.ed, NULL, 0, msg, n, sig, 64);
    }
}

static char tok[32768];

/* header.payload.signature for the given JSON texts, in the static tok. */
static const char *make_ex(const char *header, size_t hlen, const char *payload, size_t plen,
                           gh_jwt_alg alg, bool other)
{
    unsigned char sig[512];
    tok[0] = '\0';
    b64url_append(tok, (const unsigned char *)header, hlen);
    strcat(tok, ".");
    b64url_append(tok, (const unsigned char *)payload, plen);
    size_t n = sign(alg, other, tok, strlen(tok), sig);
    strcat(tok, ".");
    b64url_append(tok, sig, n);
    return tok;
}

static const char *make(const char *header, const char *payload, gh_jwt_alg alg)
{
    return make_ex(header, strlen(header), payload, strlen(payload), alg, false);
}

static const char *const KIDS[GH_ALG_COUNT] = {
    "hs", "hs", "hs", "rsa", "rsa", "rsa", "rsa", "rsa", "rsa", "ec256", "ec384", "ec521", "ed"};

/* A standard header naming alg and its key. */
static const char *hdr(gh_jwt_alg alg)
{
    static char h[128];
    snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", gh_jwt_alg_name(alg),
             KIDS[alg]);
    return h;
}

static const char *CLAIMS = "{\"iss\":\"orders\",\"aud\":\"api\",\"sub\":\"u1\","
                            "\"exp\":1700000100,\"iat\":1699999900}";

static gh_jwt_policy_t policy(void)
{
    static const char *const auds[] = {"api"};
    static const size_t aud_lens[] = {3};
    return (gh_jwt_policy_t){.issuer = "orders",
                             .issuer_len = 6,
                             .audiences = auds,
                             .audience_lens = aud_lens,
                             .naud = 1,
                             .algorithms = ALL,
                             .clock_skew = 30,
                             .require_exp = true};
}

/* The status of the whole chain for token under pol and the test's keys. */
static gh_jwt_status verify_with(const char *token, const gh_jwt_policy_t *pol,
                                 const gh_jwks_t *keys, double now)
{
    gh_jwt_t t;
    gh_jwt_status st = gh_jwt_verify(token, strlen(token), pol, keys, now, &t);
    if (st == GH_JWT_OK) {
        assert_non_null(t.claims);
        gh_jwt_clear(&t);
    } else {
        assert_null(t.header);
        assert_null(t.claims);
        assert_null(t.sig);
    }
    return st;
}

static gh_jwt_status verify(const char *token)
{
    gh_jwt_policy_t pol = policy();
    return verify_with(token, &pol, &K.set, NOW);
}

#define assert_status(expr, st)                                                                    \
    do {                                                                                           \
        gh_jwt_status got_ = (expr);                                                               \
        if (got_ != (st))                                                                          \
            fail_msg("%s: got %s, want %s", #expr, gh_jwt_status_label(got_),                      \
                     gh_jwt_status_label(st));                                                     \
    } while (0)

/* ---- names and tables ---- */

static void test_alg_names(void **state)
{
    (void)state;
    for (int a = 0; a < GH_ALG_COUNT; a++) {
        const char *name = gh_jwt_alg_name((gh_jwt_alg)a);
        assert_int_equal(gh_jwt_alg_parse(name, strlen(name)), a);
    }
    assert_string_equal(gh_jwt_alg_name(GH_ALG_EDDSA), "EdDSA");
    const char *bad[] = {"none", "None",   "NONE",  "hs256",  "HS256 ",
                         "HS25", "HS2560", "EDDSA", "ES256K", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(gh_jwt_alg_parse(bad[i], strlen(bad[i])), -1);
    }
    assert_int_equal(gh_jwt_alg_parse("HS256\0x", 7), -1);
    assert_int_equal(gh_jwt_alg_parse("HS256x", 5), GH_ALG_HS256);
}

static void test_status_tables(void **state)
{
    (void)state;
    for (int i = 0; i < GH_JWT_STATUS_COUNT; i++) {
        const char *d = gh_jwt_status_description((gh_jwt_status)i);
        const char *l = gh_jwt_status_label((gh_jwt_status)i);
        assert_non_null(d);
        assert_non_null(l);
        /* Descriptions go inside a quoted header parameter. */
        assert_null(strpbrk(d, "\"\\\r\n"));
        for (const char *p = l; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(d, gh_jwt_status_description((gh_jwt_status)j));
            assert_string_not_equal(l, gh_jwt_status_label((gh_jwt_status)j));
        }
    }
    assert_string_equal(gh_jwt_status_description(GH_JWT_EXPIRED), "token expired");
    assert_string_equal(gh_jwt_status_description(GH_JWT_BAD_SIGNATURE), "invalid signature");
    assert_string_equal(gh_jwt_status_label(GH_JWT_BAD_SIGNATURE), "bad_signature");
    assert_non_null(gh_jwt_status_description(GH_JWT_STATUS_COUNT));
    assert_non_null(gh_jwt_status_label((gh_jwt_status)-1));
}

/* ---- every algorithm ---- */

static void test_every_algorithm(void **state)
{
    (void)state;
    for (int a = 0; a < GH_ALG_COUNT; a++) {
        gh_jwt_policy_t pol = policy();
        gh_jwt_t t;
        const char *token = make(hdr((gh_jwt_alg)a), CLAIMS, (gh_jwt_alg)a);
        gh_jwt_status st = gh_jwt_verify(token, strlen(token), &pol, &K.set, NOW, &t);
        if (st != GH_JWT_OK) fail_msg("%s: %s", gh_jwt_alg_name(a), gh_jwt_status_label(st));
        assert_int_equal(t.alg, a);
        assert_true(t.exp == 1700000100.0);
        assert_int_equal(t.kid_len, strlen(KIDS[a]));
        assert_memory_equal(t.kid, KIDS[a], t.kid_len);
        assert_string_equal(json_string_value(json_object_get(t.claims, "sub")), "u1");
        gh_jwt_clear(&t);

        /* Without a kid every key that fits the algorithm is tried. */
        char h[64];
        snprintf(h, sizeof(h), "{\"alg\":\"%s\"}", gh_jwt_alg_name(a));
        assert_status(verify(make(h, CLAIMS, (gh_jwt_alg)a)), GH_JWT_OK);

        /* The primitive, directly, over the signing input. */
        token = make(hdr((gh_jwt_alg)a), CLAIMS, (gh_jwt_alg)a);
        assert_status(gh_jwt_decode(token, strlen(token), &pol, &t), GH_JWT_OK);
        const gh_jwk_t *key = &K.pub[a <= GH_ALG_HS512 ? 0 : a <= GH_ALG_PS512 ? 1 : a - 6];
        assert_true(gh_jws_verify(a, key, (const unsigned char *)t.signing_input,
                                  t.signing_input_len, t.sig, t.sig_len));
        t.sig[t.sig_len / 2] ^= 1;
        assert_false(gh_jws_verify(a, key, (const unsigned char *)t.signing_input,
                                   t.signing_input_len, t.sig, t.sig_len));
        gh_jwt_clear(&t);
    }
}

static void test_key_alg_restriction(void **state)
{
    (void)state;
    gh_jwk_t k = K.pub[1];
    k.alg = (char *)"RS256";
    gh_jwks_t set = {&k, 1};
    gh_jwt_policy_t pol = policy();
    assert_status(verify_with(make(hdr(GH_ALG_RS256), CLAIMS, GH_ALG_RS256), &pol, &set, NOW),
                  GH_JWT_OK);
    assert_status(verify_with(make(hdr(GH_ALG_RS384), CLAIMS, GH_ALG_RS384), &pol, &set, NOW),
                  GH_JWT_UNKNOWN_KID);
    assert_status(verify_with(make(hdr(GH_ALG_PS256), CLAIMS, GH_ALG_PS256), &pol, &set, NOW),
                  GH_JWT_UNKNOWN_KID);
    /* A PKCS#1 signature relabelled PS256 (and the reverse) fails. */
    gh_jwks_t all = {&K.pub[1], 1};
    char *rs = strdup(make(hdr(GH_ALG_RS256), CLAIMS, GH_ALG_RS256));
    const char *ps = make(hdr(GH_ALG_PS256), CLAIMS, GH_ALG_PS256);
    char mixed[4096];
    snprintf(mixed, sizeof(mixed), "%.*s%s", (int)(strrchr(ps, '.') - ps), ps, strrchr(rs, '.'));
    assert_status(verify_with(mixed, &pol, &all, NOW), GH_JWT_BAD_SIGNATURE);
    free(rs);
}

/* ---- refusals ---- */

static void test_alg_none(void **state)
{
    (void)state;
    const char *hs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                        "{\"alg\":\"nOnE\"}", "{\"alg\":\"none\",\"kid\":\"hs\"}"};
    for (size_t i = 0; i < sizeof(hs) / sizeof(*hs); i++) {
        char t[512] = "";
        b64url_append(t, (const unsigned char *)hs[i], strlen(hs[i]));
        strcat(t, ".");
        b64url_append(t, (const unsigned char *)CLAIMS, strlen(CLAIMS));
        strcat(t, ".");
        assert_status(verify(t), GH_JWT_BAD_ALG);
        strcat(t, "AAAA");
        assert_status(verify(t), GH_JWT_BAD_ALG);
        /* Even signed, "none" is no algorithm. */
        assert_status(verify(make(hs[i], CLAIMS, GH_ALG_HS256)), GH_JWT_BAD_ALG);
    }
}

static void test_alg_allow_list(void **state)
{
    (void)state;
    gh_jwt_policy_t pol = policy();
    pol.algorithms = BIT(GH_ALG_RS256);
    assert_status(verify_with(make(hdr(GH_ALG_RS256), CLAIMS, GH_ALG_RS256), &pol, &K.set, NOW),
                  GH_JWT_OK);
    for (int a = 0; a < GH_ALG_COUNT; a++) {
        if (a == GH_ALG_RS256) continue;
        const char *t = make(hdr((gh_jwt_alg)a), CLAIMS, (gh_jwt_alg)a);
        assert_status(verify_with(t, &pol, &K.set, NOW), GH_JWT_BAD_ALG);
    }
    pol.algorithms = 0;
    assert_status(verify_with(make(hdr(GH_ALG_RS256), CLAIMS, GH_ALG_RS256), &pol, &K.set, NOW),
                  GH_JWT_BAD_ALG);
    assert_status(verify(make("{\"alg\":\"HS1024\"}", CLAIMS, GH_ALG_HS256)), GH_JWT_BAD_ALG);
    assert_status(verify(make("{\"alg\":\"hs256\"}", CLAIMS, GH_ALG_HS256)), GH_JWT_BAD_ALG);
    assert_status(verify(make("{\"alg\":\"HS256\\u0000\"}", CLAIMS, GH_ALG_HS256)), GH_JWT_BAD_ALG);
    assert_status(verify(make("{\"alg\":256}", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make("{\"kid\":\"hs\"}", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
}

/* The classic confusion: the RSA public key's PEM used as an HMAC secret. */
static void test_algorithm_confusion(void **state)
{
    (void)state;
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, K.pub[1].pkey), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    assert_true(pem_len > 0);

    char t[4096] = "";
    const char *h = "{\"alg\":\"HS256\",\"kid\":\"rsa\"}";
    b64url_append(t, (const unsigned char *)h, strlen(h));
    strcat(t, ".");
    b64url_append(t, (const unsigned char *)CLAIMS, strlen(CLAIMS));
    unsigned char mac[32];
    unsigned int mac_len;
    HMAC(EVP_sha256(), pem, (int)pem_len, (const unsigned char *)t, strlen(t), mac, &mac_len);
    strcat(t, ".");
    b64url_append(t, mac, mac_len);

    gh_jwt_policy_t pol = policy();
    pol.algorithms = BIT(GH_ALG_HS256) | BIT(GH_ALG_RS256); /* a careless allow-list */
    gh_jwks_t rsa_only = {&K.pub[1], 1};
    assert_status(verify_with(t, &pol, &rsa_only, NOW), GH_JWT_UNKNOWN_KID);
    /* Even an RSA key that somehow carries the PEM as a secret is refused by type. */
    gh_jwk_t odd = K.pub[1];
    odd.secret = (unsigned char *)pem;
    odd.secret_len = (size_t)pem_len;
    gh_jwks_t odd_set = {&odd, 1};
    assert_status(verify_with(t, &pol, &odd_set, NOW), GH_JWT_UNKNOWN_KID);
    assert_false(gh_jws_verify(GH_ALG_HS256, &odd, (const unsigned char *)t, 10, mac, 32));
    /* The same bytes as a genuine oct key do verify: the refusal is the type. */
    gh_jwk_t oct = {.kid = (char *)"rsa",
                    .kid_len = 3,
                    .type = GH_KEY_OCT,
                    .secret = (unsigned char *)pem,
                    .secret_len = (size_t)pem_len};
    gh_jwks_t oct_set = {&oct, 1};
    assert_status(verify_with(t, &pol, &oct_set, NOW), GH_JWT_OK);
    BIO_free(bio);

    /* Other cross-family pairings: an EC token against the RSA key and so on. */
    for (int a = 0; a < GH_ALG_COUNT; a++) {
        for (int k = 0; k < 7; k++) {
            if (k == (a <= GH_ALG_HS512 ? 0 : a <= GH_ALG_PS512 ? 1 : a - 6)) continue;
            if (k == 2 && a >= GH_ALG_RS256 && a <= GH_ALG_PS512) continue;
            assert_false(gh_jws_verify(a, &K.pub[k], (const unsigned char *)"x", 1,
                                       (const unsigned char *)tok, 64));
        }
    }
}

static void test_wrong_key(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa\"}";
    const char *t = make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_RS256, true);
    assert_status(verify(t), GH_JWT_BAD_SIGNATURE);
    /* A token signed by rsa2 but naming rsa2 is fine. */
    h = "{\"alg\":\"PS512\",\"kid\":\"rsa2\"}";
    assert_status(verify(make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_PS512, true)),
                  GH_JWT_OK);
    /* No kid: both RSA keys fit; the one that signed verifies. */
    h = "{\"alg\":\"RS256\"}";
    assert_status(verify(make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_RS256, true)),
                  GH_JWT_OK);
    gh_jwks_t first = {&K.pub[1], 1};
    gh_jwt_policy_t pol = policy();
    assert_status(verify_with(make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_RS256, true),
                              &pol, &first, NOW),
                  GH_JWT_BAD_SIGNATURE);
    assert_status(verify_with(make(hdr(GH_ALG_ES256), CLAIMS, GH_ALG_ES256), &pol, NULL, NOW),
                  GH_JWT_UNKNOWN_KID);
}

static void test_stripped_and_tampered(void **state)
{
    (void)state;
    for (int a = 0; a < GH_ALG_COUNT; a++) {
        char t[4096];
        snprintf(t, sizeof(t), "%s", make(hdr((gh_jwt_alg)a), CLAIMS, (gh_jwt_alg)a));
        char *dot = strrchr(t, '.');
        char keep = dot[1];
        dot[1] = '\0';
        assert_status(verify(t), GH_JWT_MALFORMED); /* h.p. */
        dot[0] = '\0';
        assert_status(verify(t), GH_JWT_MALFORMED); /* h.p */
        dot[0] = '.';
        dot[1] = keep;
        /* A different payload under the original signature. */
        char *p = strchr(t, '.') + 1;
        p[0] = p[0] == 'e' ? 'f' : 'e';
        gh_jwt_status st = verify(t);
        if (st != GH_JWT_BAD_SIGNATURE && st != GH_JWT_MALFORMED)
            fail_msg("%s tampered: %s", gh_jwt_alg_name(a), gh_jwt_status_label(st));
    }
    /* Tampered but still valid JSON: a claim changed. */
    const char *t = make(hdr(GH_ALG_ES256), CLAIMS, GH_ALG_ES256);
    char forged[4096] = "";
    const char *p2 = "{\"iss\":\"orders\",\"aud\":\"api\",\"sub\":\"admin\",\"exp\":1700000100}";
    b64url_append(forged, (const unsigned char *)hdr(GH_ALG_ES256), strlen(hdr(GH_ALG_ES256)));
    strcat(forged, ".");
    b64url_append(forged, (const unsigned char *)p2, strlen(p2));
    strcat(forged, strrchr(t, '.'));
    assert_status(verify(forged), GH_JWT_BAD_SIGNATURE);
}

/* Copies the token, applies edit at byte pos (insert when ins), verifies. */
static gh_jwt_status edited(const char *token, size_t pos, const char *ins, bool replace)
{
    char t[8192];
    snprintf(t, sizeof(t), "%.*s%s%s", (int)pos, token, ins, token + pos + (replace ? 1 : 0));
    return verify(t);
}

static void test_base64url_strictness(void **state)
{
    (void)state;
    char t[4096];
    snprintf(t, sizeof(t), "%s", make(hdr(GH_ALG_HS256), CLAIMS, GH_ALG_HS256));
    assert_status(verify(t), GH_JWT_OK);
    size_t len = strlen(t);
    size_t d1 = (size_t)(strchr(t, '.') - t), d2 = (size_t)(strrchr(t, '.') - t);
    size_t at[] = {0, d1 - 1, d1 + 1, d2 - 1, d2 + 1, len - 1};
    const char *bad[] = {"+", "/", "=", " ", "\t", "\n", "\r", "%", "\xc3\xa9", "?"};
    for (size_t i = 0; i < sizeof(at) / sizeof(*at); i++) {
        for (size_t j = 0; j < sizeof(bad) / sizeof(*bad); j++) {
            assert_status(edited(t, at[i], bad[j], true), GH_JWT_MALFORMED);
            assert_status(edited(t, at[i], bad[j], false), GH_JWT_MALFORMED);
        }
    }
    /* Padding appended to each segment. */
    assert_status(edited(t, d1, "=", false), GH_JWT_MALFORMED);
    assert_status(edited(t, d2, "==", false), GH_JWT_MALFORMED);
    assert_status(edited(t, len, "=", false), GH_JWT_MALFORMED);
    assert_status(edited(t, len, " ", false), GH_JWT_MALFORMED);
    assert_status(edited(t, 0, " ", false), GH_JWT_MALFORMED);
    /* A 32-byte MAC is 43 characters: the last carries 2 unused bits. */
    assert_int_equal(len - d2 - 1, 43);
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char last[2] = {A[(strchr(A, t[len - 1]) - A) | 1], 0};
    assert_status(edited(t, len - 1, last, true), GH_JWT_MALFORMED);
    /* A NUL inside the token (length-delimited, so it is seen). */
    gh_jwt_policy_t pol = policy();
    gh_jwt_t out;
    t[5] = '\0';
    assert_status(gh_jwt_verify(t, len, &pol, &K.set, NOW, &out), GH_JWT_MALFORMED);
}

static void test_segment_count(void **state)
{
    (void)state;
    char t[4096];
    snprintf(t, sizeof(t), "%s", make(hdr(GH_ALG_HS256), CLAIMS, GH_ALG_HS256));
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    char buf[4200];
    snprintf(buf, sizeof(buf), "%s.%s", t, d2 + 1);
    assert_status(verify(buf), GH_JWT_MALFORMED); /* four */
    snprintf(buf, sizeof(buf), "%s.", t);
    assert_status(verify(buf), GH_JWT_MALFORMED); /* four, last empty */
    snprintf(buf, sizeof(buf), "%.*s%s", (int)(d1 - t), t, d2);
    assert_status(verify(buf), GH_JWT_MALFORMED); /* two */
    snprintf(buf, sizeof(buf), "%s", d1);
    assert_status(verify(buf), GH_JWT_MALFORMED); /* empty header */
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(d1 - t), t, d2);
    assert_status(verify(buf), GH_JWT_MALFORMED); /* empty payload */
    const char *junk[] = {"", ".", "..", "...", "a.b.c", "abc", "e30.e30.e30"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(*junk); i++) {
        gh_jwt_status st = verify(junk[i]);
        if (st != GH_JWT_MALFORMED && st != GH_JWT_BAD_ALG) fail_msg("'%s'", junk[i]);
    }
    assert_status(verify("e30.e30.AAAA"), GH_JWT_MALFORMED); /* {} has no alg */
}

static void test_not_objects(void **state)
{
    (void)state;
    const char *h = hdr(GH_ALG_HS256);
    assert_status(verify(make("[\"HS256\"]", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make("\"HS256\"", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make("null", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make("{\"alg\":\"HS256\"", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make("{\"alg\":\"HS256\"} ", CLAIMS, GH_ALG_HS256)), GH_JWT_OK);
    assert_status(verify(make("{\"alg\":\"HS256\"}{}", CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make(h, "[1]", GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make(h, "42", GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make(h, "foo", GH_ALG_HS256)), GH_JWT_MALFORMED);
    assert_status(verify(make(h, "{\"exp\":1700000100,}", GH_ALG_HS256)), GH_JWT_MALFORMED);
    /* Invalid UTF-8 inside a string. */
    assert_status(verify(make(h, "{\"exp\":1700000100,\"sub\":\"\xff\"}", GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
}

static void test_duplicate_members(void **state)
{
    (void)state;
    assert_status(verify(make("{\"alg\":\"HS256\",\"alg\":\"none\"}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
    assert_status(
        verify(make("{\"alg\":\"HS256\",\"kid\":\"x\",\"kid\":\"hs\"}", CLAIMS, GH_ALG_HS256)),
        GH_JWT_MALFORMED);
    assert_status(verify(make(hdr(GH_ALG_HS256), "{\"exp\":1,\"exp\":1700000100}", GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
    assert_status(
        verify(make(hdr(GH_ALG_HS256), "{\"exp\":1700000100,\"sub\":\"a\",\"sub\":\"admin\"}",
                    GH_ALG_HS256)),
        GH_JWT_MALFORMED);
    /* Duplicates deeper down count too. */
    assert_status(verify(make(hdr(GH_ALG_HS256), "{\"exp\":1700000100,\"r\":{\"a\":1,\"a\":2}}",
                              GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
}

/* {"exp":...,"n": [[...[1]...]]} with depth levels in all. */
static const char *nested(int depth, const char *open, const char *close)
{
    static char p[4096];
    strcpy(p, "{\"exp\":1700000100,\"n\":");
    for (int i = 1; i < depth; i++) strcat(p, open);
    strcat(p, "1");
    for (int i = 1; i < depth; i++) strcat(p, close);
    strcat(p, "}");
    return p;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const char *h = hdr(GH_ALG_HS256);
    gh_jwt_policy_t pol = policy();
    pol.issuer = NULL;
    pol.naud = 0;
    assert_status(verify_with(make(h, nested(16, "[", "]"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_OK);
    assert_status(verify_with(make(h, nested(17, "[", "]"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_TOO_LARGE);
    assert_status(verify_with(make(h, nested(17, "{\"a\":", "}"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_TOO_LARGE);
    assert_status(verify_with(make(h, nested(1000, "[", "]"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_TOO_LARGE);
    pol.max_depth = 3;
    assert_status(verify_with(make(h, nested(3, "[", "]"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_OK);
    assert_status(verify_with(make(h, nested(4, "[", "]"), GH_ALG_HS256), &pol, &K.set, NOW),
                  GH_JWT_TOO_LARGE);
    /* Brackets inside strings (and escaped quotes) are not nesting. */
    assert_status(verify_with(make(h, "{\"exp\":1700000100,\"s\":\"\\\"[[[[{{{{\"}", GH_ALG_HS256),
                              &pol, &K.set, NOW),
                  GH_JWT_OK);
    /* In the header too. */
    assert_status(verify_with(make("{\"alg\":\"HS256\",\"x\":[[[[1]]]]}", CLAIMS, GH_ALG_HS256),
                              &pol, &K.set, NOW),
                  GH_JWT_TOO_LARGE);
}

static void test_token_size(void **state)
{
    (void)state;
    gh_jwt_policy_t pol = policy();
    const char *t = make(hdr(GH_ALG_ES256), CLAIMS, GH_ALG_ES256);
    pol.max_token = strlen(t);
    assert_status(verify_with(t, &pol, &K.set, NOW), GH_JWT_OK);
    pol.max_token = strlen(t) - 1;
    assert_status(verify_with(t, &pol, &K.set, NOW), GH_JWT_TOO_LARGE);

    /* The default (8 KiB) applies when the policy leaves it 0. */
    static char big[12000];
    int n = snprintf(big, sizeof(big),
                     "{\"exp\":1700000100,\"iss\":\"orders\",\"aud\":\"api\","
                     "\"pad\":\"");
    memset(big + n, 'x', 7000);
    strcpy(big + n + 7000, "\"}");
    pol.max_token = 0;
    t = make(hdr(GH_ALG_HS256), big, GH_ALG_HS256);
    assert_true(strlen(t) > GH_JWT_DEFAULT_MAX_TOKEN);
    assert_status(verify_with(t, &pol, &K.set, NOW), GH_JWT_TOO_LARGE);
    /* A larger configured limit takes larger tokens (scratch on the heap). */
    pol.max_token = 16384;
    assert_status(verify_with(t, &pol, &K.set, NOW), GH_JWT_OK);
    /* The size is checked before anything else. */
    pol.max_token = 10;
    assert_status(verify_with("not even a token", &pol, &K.set, NOW), GH_JWT_TOO_LARGE);
}

static void test_crit_and_b64(void **state)
{
    (void)state;
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":\"hs\",\"crit\":[\"exp\"],\"exp\":1}",
                              CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNSUPPORTED_CRIT);
    assert_status(
        verify(make("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", CLAIMS, GH_ALG_HS256)),
        GH_JWT_UNSUPPORTED_CRIT);
    assert_status(verify(make("{\"alg\":\"HS256\",\"b64\":false}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNSUPPORTED_CRIT);
    assert_status(verify(make("{\"alg\":\"HS256\",\"b64\":true}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_OK);
    assert_status(verify(make("{\"alg\":\"HS256\",\"b64\":0}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
    const char *bad[] = {"[]", "\"exp\"", "[1]", "[\"a\",null]", "{}", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char h[128];
        snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"crit\":%s}", bad[i]);
        assert_status(verify(make(h, CLAIMS, GH_ALG_HS256)), GH_JWT_MALFORMED);
    }
}

static void test_kid(void **state)
{
    (void)state;
    assert_status(verify(make("{\"alg\":\"ES256\",\"kid\":\"nope\"}", CLAIMS, GH_ALG_ES256)),
                  GH_JWT_UNKNOWN_KID);
    /* A kid of another key type: nothing fits. */
    assert_status(verify(make("{\"alg\":\"ES256\",\"kid\":\"rsa\"}", CLAIMS, GH_ALG_ES256)),
                  GH_JWT_UNKNOWN_KID);
    /* A P-384 key never verifies ES256, even when named. */
    assert_status(verify(make("{\"alg\":\"ES256\",\"kid\":\"ec384\"}", CLAIMS, GH_ALG_ES256)),
                  GH_JWT_UNKNOWN_KID);
    /* Prefixes and embedded NULs do not match. */
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":\"h\"}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNKNOWN_KID);
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":\"hsx\"}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNKNOWN_KID);
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":\"hs\\u0000x\"}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNKNOWN_KID);
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":\"\"}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_UNKNOWN_KID);
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":7}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
    assert_status(verify(make("{\"alg\":\"HS256\",\"kid\":null}", CLAIMS, GH_ALG_HS256)),
                  GH_JWT_MALFORMED);
    /* A key with a NUL in its kid matches exactly that kid. */
    gh_jwk_t k = K.pub[0];
    k.kid = (char *)"hs\0x";
    k.kid_len = 4;
    gh_jwks_t set = {&k, 1};
    gh_jwt_policy_t pol = policy();
    assert_status(
        verify_with(make("{\"alg\":\"HS256\",\"kid\":\"hs\\u0000x\"}", CLAIMS, GH_ALG_HS256), &pol,
                    &set, NOW),
        GH_JWT_OK);
    assert_status(verify_with(make(hdr(GH_ALG_HS256), CLAIMS, GH_ALG_HS256), &pol, &set, NOW),
                  GH_JWT_UNKNOWN_KID);
    /* A key without a kid (a PEM file, a bare secret) fits any token kid:
     * the kid is a lookup hint, the signature decides. */
    k.kid = NULL;
    k.kid_len = 0;
    assert_status(verify_with(make(hdr(GH_ALG_HS256), CLAIMS, GH_ALG_HS256), &pol, &set, NOW),
                  GH_JWT_OK);
    assert_status(verify_with(make("{\"alg\":\"HS256\"}", CLAIMS, GH_ALG_HS256), &pol, &set, NOW),
                  GH_JWT_OK);
}

/* jku, x5u, x5c and an embedded jwk never supply the key. */
static void test_key_headers_ignored(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa\",\"jku\":\"https://evil/jwks\","
                    "\"x5u\":\"https://evil/c\",\"x5c\":[\"AAAA\"],"
                    "\"jwk\":{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}}";
    /* Signed by rsa2 (the attacker's), naming rsa: fails. */
    assert_status(verify(make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_RS256, true)),
                  GH_JWT_BAD_SIGNATURE);
    assert_status(verify(make_ex(h, strlen(h), CLAIMS, strlen(CLAIMS), GH_ALG_RS256, false)),
                  GH_JWT_OK);
}

/* The claims status of a token carrying payload, at time now. */
static gh_jwt_status claims_at(const char *payload, const gh_jwt_policy_t *pol, double now)
{
    gh_jwt_t t;
    const char *token = make(hdr(GH_ALG_HS256), payload, GH_ALG_HS256);
    gh_jwt_status st = gh_jwt_decode(token, strlen(token), pol, &t);
    if (st == GH_JWT_OK) st = gh_jwt_verify_signature(&t, &K.set);
    if (st == GH_JWT_OK) st = gh_jwt_check_claims(&t, pol, now);
    gh_jwt_clear(&t);
    return st;
}

static gh_jwt_policy_t time_policy(double skew)
{
    gh_jwt_policy_t pol = policy();
    pol.issuer = NULL;
    pol.naud = 0;
    pol.clock_skew = skew;
    return pol;
}

static void test_exp(void **state)
{
    (void)state;
    const char *p = "{\"exp\":1700000000}";
    gh_jwt_policy_t pol = time_policy(30);
    assert_status(claims_at(p, &pol, 1700000029), GH_JWT_OK);
    assert_status(claims_at(p, &pol, 1700000029.999), GH_JWT_OK);
    assert_status(claims_at(p, &pol, 1700000030), GH_JWT_EXPIRED);
    assert_status(claims_at(p, &pol, 1700000031), GH_JWT_EXPIRED);
    pol = time_policy(0);
    assert_status(claims_at(p, &pol, 1699999999), GH_JWT_OK);
    assert_status(claims_at(p, &pol, 1700000000), GH_JWT_EXPIRED);
    /* Fractional NumericDate. */
    assert_status(claims_at("{\"exp\":1700000000.5}", &pol, 1700000000.4), GH_JWT_OK);
    assert_status(claims_at("{\"exp\":1700000000.5}", &pol, 1700000000.5), GH_JWT_EXPIRED);
    /* A NaN clock or skew fails closed. */
    pol = time_policy(NAN);
    assert_status(claims_at(p, &pol, 1600000000), GH_JWT_EXPIRED);
    pol.require_exp = false;
    assert_status(claims_at("{\"nbf\":1}", &pol, NOW), GH_JWT_NOT_YET_VALID);
    assert_status(claims_at("{\"iat\":1}", &pol, NOW), GH_JWT_ISSUED_IN_FUTURE);
    pol = time_policy(0);
    assert_status(claims_at(p, &pol, NAN), GH_JWT_EXPIRED);
    /* Numbers only. */
    assert_status(claims_at("{\"exp\":\"1800000000\"}", &pol, NOW), GH_JWT_BAD_CLAIM);
    assert_status(claims_at("{\"exp\":true}", &pol, NOW), GH_JWT_BAD_CLAIM);
    assert_status(claims_at("{\"exp\":null}", &pol, NOW), GH_JWT_BAD_CLAIM);
    assert_status(claims_at("{\"exp\":[1800000000]}", &pol, NOW), GH_JWT_BAD_CLAIM);
    /* Out-of-range numbers are not JSON jansson accepts. */
    assert_status(claims_at("{\"exp\":1e999}", &pol, NOW), GH_JWT_MALFORMED);
    assert_status(claims_at("{\"exp\":99999999999999999999999}", &pol, NOW), GH_JWT_MALFORMED);
    /* Required by default; optional when the policy says so. */
    assert_status(claims_at("{\"sub\":\"u\"}", &pol, NOW), GH_JWT_MISSING_CLAIM);
    pol.require_exp = false;
    assert_status(claims_at("{\"sub\":\"u\"}", &pol, NOW), GH_JWT_OK);
    assert_status(claims_at("{\"exp\":\"x\"}", &pol, NOW), GH_JWT_BAD_CLAIM);
    assert_status(claims_at(p, &pol, 1700000000), GH_JWT_EXPIRED);
    /* The decoded token reports exp. */
    gh_jwt_t t;
    const char *token = make(hdr(GH_ALG_HS256), p, GH_ALG_HS256);
    assert_status(gh_jwt_decode(token, strlen(token), &pol, &t), GH_JWT_OK);
    assert_true(t.exp == 1700000000.0);
    gh_jwt_clear(&t);
}

static void test_nbf_iat(void **state)
{
    (void)state;
    gh_jwt_policy_t pol = time_policy(30);
    const char *nbf = "{\"exp\":1800000000,\"nbf\":1700000000}";
    assert_status(claims_at(nbf, &pol, 1699999970), GH_JWT_OK);
    assert_status(claims_at(nbf, &pol, 1699999969), GH_JWT_NOT_YET_VALID);
    assert_status(claims_at(nbf, &pol, 1699999969.5), GH_JWT_NOT_YET_VALID);
    assert_status(claims_at("{\"exp\":1800000000,\"nbf\":\"1\"}", &pol, NOW), GH_JWT_BAD_CLAIM);
    const char *iat = "{\"exp\":1800000000,\"iat\":1700000000}";
    assert_status(claims_at(iat, &pol, 1699999970), GH_JWT_OK);
    assert_status(claims_at(iat, &pol, 1699999969), GH_JWT_ISSUED_IN_FUTURE);
    assert_status(claims_at("{\"exp\":1800000000,\"iat\":{}}", &pol, NOW), GH_JWT_BAD_CLAIM);
    pol = time_policy(0);
    assert_status(claims_at(nbf, &pol, 1700000000), GH_JWT_OK);
    assert_status(claims_at(nbf, &pol, 1699999999), GH_JWT_NOT_YET_VALID);
    assert_status(claims_at(iat, &pol, 1700000000), GH_JWT_OK);
    assert_status(claims_at(iat, &pol, 1699999999), GH_JWT_ISSUED_IN_FUTURE);
}

static void test_iss(void **state)
{
    (void)state;
    gh_jwt_policy_t pol = time_policy(0);
    pol.issuer = "orders";
    pol.issuer_len = 6;
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"orders\"}", &pol, NOW), GH_JWT_OK);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"orders\\u0000x\"}", &pol, NOW),
                  GH_JWT_BAD_ISSUER);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"orders\\u0000\"}", &pol, NOW),
                  GH_JWT_BAD_ISSUER);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"order\"}", &pol, NOW),
                  GH_JWT_BAD_ISSUER);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"Orders\"}", &pol, NOW),
                  GH_JWT_BAD_ISSUER);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"\"}", &pol, NOW), GH_JWT_BAD_ISSUER);
    assert_status(claims_at("{\"exp\":1800000000}", &pol, NOW), GH_JWT_MISSING_CLAIM);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":[\"orders\"]}", &pol, NOW),
                  GH_JWT_BAD_CLAIM);
    /* A configured issuer with a NUL is matched by its full length too. */
    pol.issuer = "ord\0ers";
    pol.issuer_len = 7;
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"ord\\u0000ers\"}", &pol, NOW),
                  GH_JWT_OK);
    assert_status(claims_at("{\"exp\":1800000000,\"iss\":\"ord\"}", &pol, NOW), GH_JWT_BAD_ISSUER);
}

static void test_aud(void **state)
{
    (void)state;
    static const char *const auds[] = {"api", "orders-api"};
    static const size_t lens[] = {3, 10};
    gh_jwt_policy_t pol = time_policy(0);
    pol.audiences = auds;
    pol.audience_lens = lens;
    pol.naud = 2;
    struct {
        const char *aud;
        gh_jwt_status st;
    } cases[] = {
        {"\"api\"", GH_JWT_OK},
        {"\"orders-api\"", GH_JWT_OK},
        {"[\"x\",\"orders-api\"]", GH_JWT_OK},
        {"[\"api\"]", GH_JWT_OK},
        {"\"ap\"", GH_JWT_BAD_AUDIENCE},
        {"\"api2\"", GH_JWT_BAD_AUDIENCE},
        {"\"api\\u0000\"", GH_JWT_BAD_AUDIENCE},
        {"\"api\\u0000x\"", GH_JWT_BAD_AUDIENCE},
        {"[\"x\",\"y\"]", GH_JWT_BAD_AUDIENCE},
        {"[]", GH_JWT_BAD_AUDIENCE},
        {"[\"api\",1]", GH_JWT_BAD_CLAIM},
        {"[[\"api\"]]", GH_JWT_BAD_CLAIM},
        {"{\"api\":1}", GH_JWT_BAD_CLAIM},
        {"7", GH_JWT_BAD_CLAIM},
        {"null", GH_JWT_BAD_CLAIM},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char p[256];
        snprintf(p, sizeof(p), "{\"exp\":1800000000,\"aud\":%s}", cases[i].aud);
        gh_jwt_status st = claims_at(p, &pol, NOW);
        if (st != cases[i].st) fail_msg("aud %s: got %s", cases[i].aud, gh_jwt_status_label(st));
    }
    assert_status(claims_at("{\"exp\":1800000000}", &pol, NOW), GH_JWT_MISSING_CLAIM);
    pol.naud = 0;
    assert_status(claims_at("{\"exp\":1800000000,\"aud\":7}", &pol, NOW), GH_JWT_OK);
}

/* azp: one of the authorized parties, compared with its length. */
static void test_azp(void **state)
{
    (void)state;
    static const char *const azps[] = {"orders-web", "orders.cli"};
    static const size_t lens[] = {10, 10};
    gh_jwt_policy_t pol = time_policy(0);
    pol.azps = azps;
    pol.azp_lens = lens;
    pol.nazp = 2;
    struct {
        const char *azp;
        gh_jwt_status st;
    } cases[] = {
        {"\"orders-web\"", GH_JWT_OK},
        {"\"orders.cli\"", GH_JWT_OK},
        {"\"orders\"", GH_JWT_BAD_AZP},
        {"\"orders-web2\"", GH_JWT_BAD_AZP},
        {"\"orders-web\\u0000x\"", GH_JWT_BAD_AZP},
        {"\"ORDERS-WEB\"", GH_JWT_BAD_AZP},
        {"[\"orders-web\"]", GH_JWT_BAD_CLAIM},
        {"7", GH_JWT_BAD_CLAIM},
        {"null", GH_JWT_BAD_CLAIM},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char p[256];
        snprintf(p, sizeof(p), "{\"exp\":1800000000,\"azp\":%s}", cases[i].azp);
        gh_jwt_status st = claims_at(p, &pol, NOW);
        if (st != cases[i].st) fail_msg("azp %s: got %s", cases[i].azp, gh_jwt_status_label(st));
    }
    assert_status(claims_at("{\"exp\":1800000000}", &pol, NOW), GH_JWT_MISSING_CLAIM);
    assert_string_equal(gh_jwt_status_description(GH_JWT_BAD_AZP), "invalid authorized party");
    pol.nazp = 0;
    assert_status(claims_at("{\"exp\":1800000000,\"azp\":7}", &pol, NOW), GH_JWT_OK);
}

static void test_required_claims(void **state)
{
    (void)state;
    static const char *const req[] = {"sub", "scope"};
    gh_jwt_policy_t pol = time_policy(0);
    pol.required_claims = req;
    pol.nrequired = 2;
    assert_status(claims_at("{\"exp\":1800000000,\"sub\":\"u\",\"scope\":\"\"}", &pol, NOW),
                  GH_JWT_OK);
    assert_status(claims_at("{\"exp\":1800000000,\"sub\":\"u\"}", &pol, NOW), GH_JWT_MISSING_CLAIM);
    assert_status(claims_at("{\"exp\":1800000000,\"scope\":\"a\"}", &pol, NOW),
                  GH_JWT_MISSING_CLAIM);
    assert_status(claims_at("{\"exp\":1800000000,\"sub\":null,\"scope\":\"a\"}", &pol, NOW),
                  GH_JWT_MISSING_CLAIM);
    /* jansson refuses a NUL in a member name, so "sub\0" cannot pass as sub. */
    assert_status(claims_at("{\"exp\":1800000000,\"sub\\u0000\":1,\"scope\":\"a\"}", &pol, NOW),
                  GH_JWT_MALFORMED);
}

/* Raw signature lengths are exact, curves must match, sizes are checked. */
static void test_primitive_edges(void **state)
{
    (void)state;
    const unsigned char msg[] = "payload";
    unsigned char sig[512], der[256];
    size_t n = sign(GH_ALG_ES256, false, msg, 7, sig);
    assert_true(gh_jws_verify(GH_ALG_ES256, &K.pub[3], msg, 7, sig, n));
    assert_false(gh_jws_verify(GH_ALG_ES256, &K.pub[3], msg, 7, sig, n - 1));
    sig[n] = 0;
    assert_false(gh_jws_verify(GH_ALG_ES256, &K.pub[3], msg, 7, sig, n + 1));
    /* A DER signature is not a JWS signature. */
    size_t dn = evp_sign(K.ec[0], EVP_sha256(), 0, msg, 7, der, sizeof(der));
    assert_false(gh_jws_verify(GH_ALG_ES256, &K.pub[3], msg, 7, der, dn));
    /* A key whose ec_nid lies about its curve. */
    gh_jwk_t liar = K.pub[4];
    liar.ec_nid = NID_X9_62_prime256v1;
    assert_false(gh_jws_verify(GH_ALG_ES256, &liar, msg, 7, sig, n));
    /* ES384 signature under ES512's name, and the reverse widths. */
    n = sign(GH_ALG_ES384, false, msg, 7, sig);
    assert_false(gh_jws_verify(GH_ALG_ES512, &K.pub[5], msg, 7, sig, n));
    n = sign(GH_ALG_ES512, false, msg, 7, sig);
    assert_int_equal(n, 132);
    assert_true(gh_jws_verify(GH_ALG_ES512, &K.pub[5], msg, 7, sig, n));
    /* A truncated HMAC tag is refused. */
    n = sign(GH_ALG_HS256, false, msg, 7, sig);
    assert_true(gh_jws_verify(GH_ALG_HS256, &K.pub[0], msg, 7, sig, n));
    assert_false(gh_jws_verify(GH_ALG_HS256, &K.pub[0], msg, 7, sig, 16));
    assert_false(gh_jws_verify(GH_ALG_HS384, &K.pub[0], msg, 7, sig, n));
    gh_jwk_t empty = {.type = GH_KEY_OCT, .secret = (unsigned char *)"", .secret_len = 0};
    assert_false(gh_jws_verify(GH_ALG_HS256, &empty, msg, 7, sig, n));
    /* Ed25519 signatures are 64 bytes exactly. */
    n = sign(GH_ALG_EDDSA, false, msg, 7, sig);
    assert_true(gh_jws_verify(GH_ALG_EDDSA, &K.pub[6], msg, 7, sig, n));
    assert_false(gh_jws_verify(GH_ALG_EDDSA, &K.pub[6], msg, 7, sig, n - 1));
    /* RSA signatures are exactly the modulus size. */
    n = sign(GH_ALG_RS256, false, msg, 7, sig);
    memmove(sig + 1, sig, n);
    sig[0] = 0;
    assert_false(gh_jws_verify(GH_ALG_RS256, &K.pub[1], msg, 7, sig, n + 1));
    assert_true(gh_jws_verify(GH_ALG_RS256, &K.pub[1], msg, 7, sig + 1, n));
    /* Nonsense arguments. */
    assert_false(gh_jws_verify(GH_ALG_COUNT, &K.pub[1], msg, 7, sig + 1, n));
    assert_false(gh_jws_verify(GH_ALG_RS256, NULL, msg, 7, sig + 1, n));
    /* An RSA key under 2048 bits is refused even if it reaches here. */
    EVP_PKEY *small = EVP_RSA_gen(1024);
    gh_jwk_t sk = {.type = GH_KEY_RSA, .pkey = small};
    n = evp_sign(small, EVP_sha256(), RSA_PKCS1_PADDING, msg, 7, sig, sizeof(sig));
    assert_false(gh_jws_verify(GH_ALG_RS256, &sk, msg, 7, sig, n));
    EVP_PKEY_free(small);
}

static void test_decode_fields(void **state)
{
    (void)state;
    gh_jwt_policy_t pol = policy();
    gh_jwt_t t;
    const char *token = make(hdr(GH_ALG_PS384), CLAIMS, GH_ALG_PS384);
    assert_status(gh_jwt_decode(token, strlen(token), &pol, &t), GH_JWT_OK);
    assert_int_equal(t.alg, GH_ALG_PS384);
    assert_ptr_equal(t.signing_input, token);
    assert_int_equal(t.signing_input_len, (size_t)(strrchr(token, '.') - token));
    assert_int_equal(t.sig_len, 256);
    assert_true(json_is_object(t.header));
    assert_true(json_is_object(t.claims));
    gh_jwt_clear(&t);
    assert_null(t.header);
    gh_jwt_clear(&t); /* idempotent */
    /* A failed decode leaves nothing to clear. */
    assert_status(gh_jwt_decode("x.y", 3, &pol, &t), GH_JWT_MALFORMED);
    assert_null(t.header);
    assert_null(t.sig);
    /* Verify-then-claims failure clears what decode built. */
    assert_status(verify_with(token, &pol, &K.set, 1800000000), GH_JWT_EXPIRED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_status_tables),
        cmocka_unit_test(test_every_algorithm),
        cmocka_unit_test(test_key_alg_restriction),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_allow_list),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_stripped_and_tampered),
        cmocka_unit_test(test_base64url_strictness),
        cmocka_unit_test(test_segment_count),
        cmocka_unit_test(test_not_objects),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_token_size),
        cmocka_unit_test(test_crit_and_b64),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_key_headers_ignored),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_iss),
        cmocka_unit_test(test_aud),
        cmocka_unit_test(test_azp),
        cmocka_unit_test(test_required_claims),
        cmocka_unit_test(test_primitive_edges),
        cmocka_unit_test(test_decode_fields),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
