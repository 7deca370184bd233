/* JWK and JWKS parsing: keys generated here with OpenSSL are exported as
 * JWK JSON and must come back equal; weak, malformed and ambiguous keys are
 * refused; keys we do not verify with are skipped; and Project Wycheproof's
 * JSON Web Key vectors all get the expected verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "jwk.h"

static EVP_PKEY *rsa2048, *rsa1024, *ec256, *ec384, *ec521, *ec224, *ed25519, *ed448, *x25519;

static const struct {
    const char *crv;
    EVP_PKEY **key;
    size_t coord_len;
    int nid;
} CURVES[] = {
    {"P-256", &ec256, 32, NID_X9_62_prime256v1},
    {"P-384", &ec384, 48, NID_secp384r1},
    {"P-521", &ec521, 66, NID_secp521r1},
};

static int setup(void **state)
{
    (void)state;
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    ec224 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
    ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    return rsa2048 && rsa1024 && ec256 && ec384 && ec521 && ec224 && ed25519 && ed448 && x25519
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY *all[] = {rsa2048, rsa1024, ec256, ec384, ec521, ec224, ed25519, ed448, x25519};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) EVP_PKEY_free(all[i]);
    return 0;
}

/* ---- building JWK JSON from OpenSSL keys ---- */

/* Reference base64url encoder (unpadded). Returns a malloc'd string. */
static char *b64(const unsigned char *in, size_t len)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 5), *o = out;
    assert_non_null(out);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = A[v >> 18], *o++ = A[v >> 12 & 63], *o++ = A[v >> 6 & 63], *o++ = A[v & 63];
    }
    if (len - i == 1) {
        *o++ = A[in[i] >> 2], *o++ = A[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        *o++ = A[v >> 10], *o++ = A[v >> 4 & 63], *o++ = A[(v & 15) << 2];
    }
    *o = '\0';
    return out;
}

/* printf into a malloc'd string. */
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, f);
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

/* The RSA numbers of key as big-endian bytes (n into n[], e into e[]). */
static void rsa_numbers(EVP_PKEY *key, unsigned char *n, size_t *nlen, unsigned char *e,
                        size_t *elen)
{
    BIGNUM *bn = NULL, *be = NULL;
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &bn));
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &be));
    *nlen = (size_t)BN_bn2bin(bn, n);
    *elen = (size_t)BN_bn2bin(be, e);
    BN_free(bn);
    BN_free(be);
}

/* {"kty":"RSA","n":...,"e":...<extra>} for key. */
static char *rsa_jwk(EVP_PKEY *key, const char *extra)
{
    unsigned char n[512], e[16];
    size_t nlen, elen;
    rsa_numbers(key, n, &nlen, e, &elen);
    char *bn = b64(n, nlen), *be = b64(e, elen);
    char *s = fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", bn, be, extra);
    free(bn);
    free(be);
    return s;
}

static void ec_coords(EVP_PKEY *key, unsigned char *x, unsigned char *y, size_t cl)
{
    BIGNUM *bx = NULL, *by = NULL;
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx));
    assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by));
    assert_int_equal(BN_bn2binpad(bx, x, (int)cl), (int)cl);
    assert_int_equal(BN_bn2binpad(by, y, (int)cl), (int)cl);
    BN_free(bx);
    BN_free(by);
}

static char *ec_json(const char *crv, const unsigned char *x, size_t xlen, const unsigned char *y,
                     size_t ylen, const char *extra)
{
    char *bx = b64(x, xlen), *by = b64(y, ylen);
    char *s =
        fmt("{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", crv, bx, by, extra);
    free(bx);
    free(by);
    return s;
}

static char *okp_json(const char *crv, EVP_PKEY *key, const char *extra)
{
    unsigned char x[64];
    size_t xlen = sizeof(x);
    assert_true(EVP_PKEY_get_raw_public_key(key, x, &xlen));
    char *bx = b64(x, xlen);
    char *s = fmt("{\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"%s\"%s}", crv, bx, extra);
    free(bx);
    return s;
}

static char *oct_json(size_t len, const char *extra)
{
    unsigned char k[128];
    for (size_t i = 0; i < len; i++) k[i] = (unsigned char)(i * 7 + 1);
    char *bk = b64(k, len);
    char *s = fmt("{\"kty\":\"oct\",\"k\":\"%s\"%s}", bk, extra);
    free(bk);
    return s;
}

/* ---- parsing helpers ---- */

/* Parses json (freeing it), which must succeed with n keys. */
static void parse_ok(char *json, gh_jwks_t *set, size_t n)
{
    char err[256] = "";
    int rc = gh_jwks_parse(json, strlen(json), set, err, sizeof(err));
    if (rc != 0) print_error("refused: %s\n  %s\n", err, json);
    free(json);
    assert_int_equal(rc, 0);
    assert_int_equal(set->n, n);
    assert_int_equal(ERR_peek_error(), 0);
}

/* Parses json (freeing it), which must fail with a reason containing why. */
static void parse_fails(char *json, const char *why)
{
    char err[256] = "";
    gh_jwks_t set = {(gh_jwk_t *)1, 7};
    int rc = gh_jwks_parse(json, strlen(json), &set, err, sizeof(err));
    if (rc == 0 || !strstr(err, why)) print_error("got \"%s\" for\n  %s\n", err, json);
    free(json);
    assert_int_equal(rc, -1);
    assert_null(set.keys);
    assert_int_equal(set.n, 0);
    assert_non_null(strstr(err, why));
    assert_int_equal(ERR_peek_error(), 0);
}

/* A set holding the single key json (freed), which must parse. */
static void one_key(char *json, gh_jwks_t *set)
{
    parse_ok(fmt("{\"keys\":[%s]}", json), set, 1);
    free(json);
}

/* ---- RSA ---- */

static void test_rsa_key(void **state)
{
    (void)state;
    gh_jwks_t set;
    one_key(rsa_jwk(rsa2048, ",\"kid\":\"r1\",\"use\":\"sig\",\"alg\":\"RS256\""), &set);
    gh_jwk_t *k = &set.keys[0];
    assert_int_equal(k->type, GH_KEY_RSA);
    assert_int_equal(k->kid_len, 2);
    assert_memory_equal(k->kid, "r1", 2);
    assert_string_equal(k->alg, "RS256");
    assert_int_equal(EVP_PKEY_eq(k->pkey, rsa2048), 1);
    assert_null(k->secret);
    gh_jwks_free(&set);
    assert_null(set.keys);

    parse_ok(rsa_jwk(rsa2048, ",\"alg\":\"PS512\""), &set, 1); /* a bare JWK, no "keys" */
    assert_null(set.keys[0].kid);
    assert_string_equal(set.keys[0].alg, "PS512");
    gh_jwks_free(&set);
}

static void test_rsa_1024_refused_naming_kid(void **state)
{
    (void)state;
    parse_fails(rsa_jwk(rsa1024, ",\"kid\":\"old-2016\""), "kid \"old-2016\"");
    parse_fails(rsa_jwk(rsa1024, ",\"kid\":\"old-2016\""), "1024 bits");
}

/* {"kty":"RSA"} from raw n and e bytes. */
static char *rsa_raw(const unsigned char *n, size_t nlen, const char *e)
{
    char *bn = b64(n, nlen);
    char *s = fmt("{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"%s\"}", bn, e);
    free(bn);
    return s;
}

static void test_rsa_bad_numbers(void **state)
{
    (void)state;
    unsigned char n[520], e[16];
    size_t nlen, elen;
    gh_jwks_t set;
    rsa_numbers(rsa2048, n + 1, &nlen, e, &elen);
    parse_fails(rsa_raw(n + 1, nlen, "AQ"), "exponent");           /* e = 1 */
    parse_fails(rsa_raw(n + 1, nlen, "Ag"), "exponent");           /* e = 2 */
    parse_fails(rsa_raw(n + 1, nlen, "AQAA"), "exponent");         /* e = 65536 */
    parse_fails(rsa_raw(n + 1, nlen, "AQAAAAAAAAAB"), "exponent"); /* 65 bits */
    parse_fails(rsa_raw(n + 1, nlen, "AQAB="), "base64url");
    parse_fails(rsa_raw(n + 1, nlen, ""), "exponent");
    parse_ok(rsa_raw(n + 1, nlen, "Aw"), &set, 1); /* e = 3 */
    gh_jwks_free(&set);
    n[0] = 0; /* a leading zero octet does not change the modulus */
    parse_ok(rsa_raw(n, nlen + 1, "AQAB"), &set, 1);
    assert_int_equal(EVP_PKEY_eq(set.keys[0].pkey, rsa2048), 1);
    gh_jwks_free(&set);
    n[nlen] ^= 1; /* even modulus */
    parse_fails(rsa_raw(n + 1, nlen, "AQAB"), "even");
    n[nlen] ^= 1;
    parse_fails(rsa_raw(n + 1, 200, "AQAB"), "1600 bits");
    parse_fails(fmt("{\"kty\":\"RSA\",\"e\":\"AQAB\"}"), "\"n\" missing");
    parse_fails(fmt("{\"kty\":\"RSA\",\"n\":5,\"e\":\"AQAB\"}"), "\"n\" missing or not a string");
    parse_fails(fmt("{\"kty\":\"RSA\",\"n\":\"AQAB\"}"), "\"e\" missing");
    char *bad = rsa_jwk(rsa2048, "");
    bad[30] = '+'; /* standard base64's alphabet */
    parse_fails(bad, "base64url");
}

static void test_private_members_ignored(void **state)
{
    (void)state;
    gh_jwks_t set;
    one_key(rsa_jwk(rsa2048, ",\"d\":\"!!not base64!!\",\"p\":5,\"q\":null,\"dp\":[],\"dq\":{},"
                             "\"qi\":\"=\""),
            &set);
    assert_int_equal(EVP_PKEY_eq(set.keys[0].pkey, rsa2048), 1);
    gh_jwks_free(&set);
}

/* ---- EC ---- */

static void test_ec_keys(void **state)
{
    (void)state;
    static const char *algs[] = {"ES256", "ES384", "ES512"};
    for (size_t c = 0; c < 3; c++) {
        unsigned char x[66], y[66];
        size_t cl = CURVES[c].coord_len;
        gh_jwks_t set;
        char extra[64];
        ec_coords(*CURVES[c].key, x, y, cl);
        snprintf(extra, sizeof(extra), ",\"kid\":\"e%zu\",\"alg\":\"%s\"", c, algs[c]);
        one_key(ec_json(CURVES[c].crv, x, cl, y, cl, extra), &set);
        assert_int_equal(set.keys[0].type, GH_KEY_EC);
        assert_int_equal(set.keys[0].ec_nid, CURVES[c].nid);
        assert_string_equal(set.keys[0].alg, algs[c]);
        assert_int_equal(EVP_PKEY_eq(set.keys[0].pkey, *CURVES[c].key), 1);
        gh_jwks_free(&set);
    }
}

static void test_ec_wrong_coordinate_length(void **state)
{
    (void)state;
    unsigned char x[67] = {0}, y[67] = {0};
    for (size_t c = 0; c < 3; c++) {
        size_t cl = CURVES[c].coord_len;
        const char *crv = CURVES[c].crv;
        ec_coords(*CURVES[c].key, x + 1, y + 1, cl);
        parse_fails(ec_json(crv, x + 2, cl - 1, y + 1, cl, ""), "must be");
        parse_fails(ec_json(crv, x, cl + 1, y + 1, cl, ""), "must be"); /* leading zero */
        parse_fails(ec_json(crv, x + 1, cl, y + 1, cl - 1, ""), "must be");
        parse_fails(ec_json(crv, x + 1, cl, y, cl + 1, ""), "must be");
        parse_fails(ec_json(crv, x + 1, 0, y + 1, cl, ""), "must be");
    }
    /* P-256's coordinates labelled P-384 */
    ec_coords(ec256, x, y, 32);
    parse_fails(ec_json("P-384", x, 32, y, 32, ""), "48 bytes");
    parse_fails(fmt("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\"}"), "\"y\" missing");
}

static void test_ec_point_not_on_curve(void **state)
{
    (void)state;
    unsigned char x[66], y[66];
    for (size_t c = 0; c < 3; c++) {
        size_t cl = CURVES[c].coord_len;
        ec_coords(*CURVES[c].key, x, y, cl);
        y[cl - 1] ^= 1;
        parse_fails(ec_json(CURVES[c].crv, x, cl, y, cl, ",\"kid\":\"bent\""), "not on curve");
        y[cl - 1] ^= 1;
        memset(x, 0xff, cl); /* x >= p */
        parse_fails(ec_json(CURVES[c].crv, x, cl, y, cl, ""), "not on curve");
        memset(x, 0, cl);
        memset(y, 0, cl); /* (0, 0), not the point at infinity */
        parse_fails(ec_json(CURVES[c].crv, x, cl, y, cl, ""), "not on curve");
    }
}

static void test_ec_alg_must_fit(void **state)
{
    (void)state;
    unsigned char x[32], y[32];
    ec_coords(ec256, x, y, 32);
    parse_fails(ec_json("P-256", x, 32, y, 32, ",\"alg\":\"ES384\""), "does not match curve");
    parse_fails(ec_json("P-256", x, 32, y, 32, ",\"alg\":\"RS256\""), "does not fit");
    parse_fails(ec_json("P-256", x, 32, y, 32, ",\"alg\":7"), "\"alg\" is not a string");
}

/* ---- OKP and oct ---- */

static void test_okp_keys(void **state)
{
    (void)state;
    gh_jwks_t set;
    one_key(okp_json("Ed25519", ed25519, ",\"alg\":\"EdDSA\",\"kid\":\"ed\""), &set);
    assert_int_equal(set.keys[0].type, GH_KEY_OKP);
    assert_string_equal(set.keys[0].alg, "EdDSA");
    assert_int_equal(EVP_PKEY_eq(set.keys[0].pkey, ed25519), 1);
    gh_jwks_free(&set);

    parse_fails(fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                "32 bytes"); /* 31 bytes */
    parse_fails(fmt("{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}"), "\"x\" missing");
    parse_fails(okp_json("Ed25519", ed25519, ",\"alg\":\"ES256\""), "does not fit");
    /* Ed448 and X25519 are skipped, not refused */
    char *a = okp_json("Ed448", ed448, ""), *b = okp_json("X25519", x25519, "");
    parse_ok(fmt("{\"keys\":[%s,%s]}", a, b), &set, 0);
    free(a);
    free(b);
    gh_jwks_free(&set);
}

static void test_oct_keys(void **state)
{
    (void)state;
    gh_jwks_t set;
    one_key(oct_json(32, ",\"kid\":\"h\",\"alg\":\"HS256\""), &set);
    assert_int_equal(set.keys[0].type, GH_KEY_OCT);
    assert_int_equal(set.keys[0].secret_len, 32);
    assert_int_equal(set.keys[0].secret[31], (unsigned char)(31 * 7 + 1));
    assert_null(set.keys[0].pkey);
    gh_jwks_free(&set);
    one_key(oct_json(64, ",\"alg\":\"HS512\""), &set);
    gh_jwks_free(&set);

    parse_fails(oct_json(31, ",\"kid\":\"short\""), "31 bytes");
    parse_fails(oct_json(47, ",\"alg\":\"HS384\""), "at least 48");
    parse_fails(oct_json(63, ",\"alg\":\"HS512\""), "at least 64");
    parse_fails(fmt("{\"kty\":\"oct\",\"k\":\"\"}"), "0 bytes");
    parse_fails(fmt("{\"kty\":\"oct\"}"), "\"k\" missing");
    parse_fails(oct_json(32, ",\"alg\":\"RS256\""), "does not fit");
    /* JWE algorithms mark encryption keys: skipped */
    parse_ok(oct_json(32, ",\"alg\":\"A256GCM\""), &set, 0);
    gh_jwks_free(&set);
    parse_ok(oct_json(32, ",\"alg\":\"dir\""), &set, 0);
    gh_jwks_free(&set);
}

static void test_from_secret(void **state)
{
    (void)state;
    gh_jwk_t k;
    unsigned char s[40];
    memset(s, 0xab, sizeof(s));
    assert_int_equal(gh_jwk_from_secret(s, sizeof(s), &k), 0);
    s[0] = 0;
    assert_int_equal(k.type, GH_KEY_OCT);
    assert_int_equal(k.secret_len, 40);
    assert_int_equal(k.secret[0], 0xab);
    assert_null(k.kid);
    assert_null(k.pkey);
    gh_jwk_clear(&k);
    assert_null(k.secret);
    assert_int_equal(gh_jwk_from_secret(s, 0, &k), 0);
    assert_int_equal(k.secret_len, 0);
    gh_jwk_clear(&k);
    gh_jwk_clear(&k); /* idempotent */
}

/* ---- members, skipping and set rules ---- */

static void test_duplicate_members_refused(void **state)
{
    (void)state;
    char *a = oct_json(32, ",\"kid\":\"a\",\"kid\":\"b\"");
    parse_fails(fmt("{\"keys\":[%s]}", a), "duplicate");
    free(a);
    parse_fails(fmt("{\"keys\":[],\"keys\":[]}"), "duplicate");
    parse_fails(oct_json(32, ",\"k\":\"AAAA\""), "duplicate");
    parse_fails(rsa_jwk(rsa2048, ",\"kty\":\"RSA\""), "duplicate");
}

static void test_use_and_key_ops(void **state)
{
    (void)state;
    gh_jwks_t set;
    char *enc = rsa_jwk(rsa2048, ",\"use\":\"enc\",\"kid\":\"e\"");
    char *nul = rsa_jwk(rsa2048, ",\"use\":\"sig\\u0000\",\"kid\":\"n\"");
    char *sig = rsa_jwk(rsa2048, ",\"use\":\"sig\",\"kid\":\"s\"");
    char *vops = rsa_jwk(rsa2048, ",\"key_ops\":[\"sign\",\"verify\"],\"kid\":\"v\"");
    char *eops = rsa_jwk(rsa2048, ",\"key_ops\":[\"encrypt\"],\"kid\":\"x\"");
    parse_ok(fmt("{\"keys\":[%s,%s,%s,%s,%s]}", enc, nul, sig, vops, eops), &set, 2);
    assert_memory_equal(set.keys[0].kid, "s", 1);
    assert_memory_equal(set.keys[1].kid, "v", 1);
    gh_jwks_free(&set);
    free(enc), free(nul), free(sig), free(vops), free(eops);
    /* a key skipped for its use is never decoded */
    parse_ok(fmt("{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"!\"}"), &set, 0);
    gh_jwks_free(&set);
    parse_fails(rsa_jwk(rsa2048, ",\"use\":1"), "\"use\" is not a string");
    parse_fails(rsa_jwk(rsa2048, ",\"key_ops\":\"verify\""), "not an array");
}

static void test_unsupported_skipped(void **state)
{
    (void)state;
    gh_jwks_t set;
    unsigned char x[32], y[32];
    ec_coords(ec256, x, y, 32);
    char *k1 = ec_json("secp256k1", x, 32, y, 32, ""), *k2 = ec_json("P-256", x, 32, y, 32, "");
    char *k3 = ec_json("P-256\\u0000", x, 32, y, 32, ""), *k4 = okp_json("Ed25519", ed25519, "");
    parse_ok(fmt("{\"keys\":[{\"kty\":\"foo\",\"x\":1},{\"kty\":\"oct\\u0000\"},{\"kty\":\"rsa\"},"
                 "%s,%s,%s,%s,{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\"},{\"kty\":\"EC\",\"alg\":"
                 "\"ES521\"},{\"kty\":\"EC\",\"alg\":\"ES224\"}]}",
                 k1, k2, k3, k4),
             &set, 2);
    assert_int_equal(set.keys[0].type, GH_KEY_EC);
    assert_int_equal(set.keys[1].type, GH_KEY_OKP);
    free(k1), free(k2), free(k3), free(k4);
    gh_jwks_free(&set);
    parse_fails(fmt("{\"keys\":[{\"kid\":\"nokty\"}]}"), "\"kty\" missing");
    parse_fails(fmt("{\"keys\":[{\"kty\":[]}]}"), "\"kty\" missing or not a string");
}

static void test_kid_bytes(void **state)
{
    (void)state;
    gh_jwks_t set;
    one_key(oct_json(32, ",\"kid\":\"a\\u0000b\""), &set);
    assert_int_equal(set.keys[0].kid_len, 3);
    assert_memory_equal(set.keys[0].kid, "a\0b", 3);
    gh_jwks_free(&set);
    one_key(oct_json(32, ",\"kid\":\"\""), &set);
    assert_non_null(set.keys[0].kid);
    assert_int_equal(set.keys[0].kid_len, 0);
    gh_jwks_free(&set);
    parse_fails(oct_json(32, ",\"kid\":42"), "\"kid\" is not a string");
    /* kid bytes in errors are escaped */
    parse_fails(oct_json(8, ",\"kid\":\"\\u0000\\\"x\\n\""), "kid \"\\x00\\x22x\\x0a\"");
}

static void test_set_rules(void **state)
{
    (void)state;
    gh_jwks_t set;
    char *a = oct_json(32, ",\"kid\":\"same\""), *b = oct_json(48, ",\"kid\":\"same\"");
    parse_fails(fmt("{\"keys\":[%s,%s]}", a, b), "two keys have kid \"same\"");
    free(a), free(b);
    a = oct_json(32, ",\"kid\":\"a\\u0000b\""), b = oct_json(32, ",\"kid\":\"a\\u0000c\"");
    char *c = oct_json(32, ""), *d = oct_json(32, ""); /* keys without kid may repeat */
    parse_ok(fmt("{\"keys\":[%s,%s,%s,%s]}", a, b, c, d), &set, 4);
    gh_jwks_free(&set);
    free(a), free(b), free(c), free(d);
    a = oct_json(32, ",\"kid\":\"h\""), b = rsa_jwk(rsa2048, ",\"kid\":\"r\"");
    parse_fails(fmt("{\"keys\":[%s,%s]}", a, b), "mixes HMAC secrets");
    free(a), free(b);
    /* a skipped duplicate does not count */
    a = oct_json(32, ",\"kid\":\"k\""), b = oct_json(32, ",\"kid\":\"k\",\"use\":\"enc\"");
    parse_ok(fmt("{\"keys\":[%s,%s]}", a, b), &set, 1);
    gh_jwks_free(&set);
    free(a), free(b);
}

static void test_document_shape_and_limits(void **state)
{
    (void)state;
    gh_jwks_t set;
    parse_ok(fmt("{\"keys\":[]}"), &set, 0);
    gh_jwks_free(&set);
    parse_ok(fmt("{\"keys\":[],\"x5c\":[[[[1]]]]}"), &set, 0);
    gh_jwks_free(&set);
    parse_fails(fmt("[]"), "not a JSON object");
    parse_fails(fmt("{\"keys\":{}}"), "\"keys\" is not an array");
    parse_fails(fmt("{\"keys\":[1]}"), "key 0 is not a JSON object");
    parse_fails(fmt("{\"keys\":[]} {}"), "not valid JSON");
    parse_fails(fmt("{\"keys\":["), "not valid JSON");
    parse_fails(fmt(""), "not valid JSON");
    parse_fails(fmt("{}"), "\"kty\" missing");

    /* nesting: 16 levels pass, 17 do not; brackets inside strings do not count */
    char deep[80] = "{\"keys\":[], \"a\":", *p = deep + strlen(deep);
    for (int i = 0; i < 15; i++) *p++ = '[';
    for (int i = 0; i < 15; i++) *p++ = ']';
    strcpy(p, "}");
    parse_ok(fmt("%s", deep), &set, 0);
    gh_jwks_free(&set);
    parse_fails(fmt("[%s]", deep), "nests deeper than 16");
    parse_ok(fmt("{\"keys\":[],\"a\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}"), &set, 0);
    gh_jwks_free(&set);

    char *many = malloc(101 * 14 + 16), *m = many;
    m += sprintf(m, "{\"keys\":[");
    for (int i = 0; i < 101; i++) m += sprintf(m, "%s{\"kty\":\"x\"}", i ? "," : "");
    strcpy(m, "]}");
    parse_fails(many, "101 keys; the limit is 100");

    size_t big = 1024 * 1024 + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    memcpy(huge, "{\"keys\":[]}", 11);
    parse_fails(huge, "the limit is 1048576");
}

/* ---- PEM ---- */

/* key's SubjectPublicKeyInfo PEM, malloc'd. */
static char *pem_of(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PUBKEY(bio, key));
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *s = fmt("%.*s", (int)len, data);
    BIO_free(bio);
    return s;
}

static int from_pem(EVP_PKEY *key, gh_jwk_t *k, char *err)
{
    char *pem = pem_of(key);
    int rc = gh_jwk_from_pem(pem, strlen(pem), k, err, 256);
    free(pem);
    assert_int_equal(ERR_peek_error(), 0);
    return rc;
}

static void test_pem_accepted(void **state)
{
    (void)state;
    char err[256] = "";
    gh_jwk_t k;
    assert_int_equal(from_pem(rsa2048, &k, err), 0);
    assert_int_equal(k.type, GH_KEY_RSA);
    assert_int_equal(EVP_PKEY_eq(k.pkey, rsa2048), 1);
    assert_null(k.kid);
    gh_jwk_clear(&k);
    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(from_pem(*CURVES[c].key, &k, err), 0);
        assert_int_equal(k.type, GH_KEY_EC);
        assert_int_equal(k.ec_nid, CURVES[c].nid);
        assert_int_equal(EVP_PKEY_eq(k.pkey, *CURVES[c].key), 1);
        gh_jwk_clear(&k);
    }
    assert_int_equal(from_pem(ed25519, &k, err), 0);
    assert_int_equal(k.type, GH_KEY_OKP);
    assert_int_equal(EVP_PKEY_eq(k.pkey, ed25519), 1);
    gh_jwk_clear(&k);
}

static void test_pem_refused(void **state)
{
    (void)state;
    char err[256] = "";
    gh_jwk_t k;
    assert_int_equal(from_pem(rsa1024, &k, err), -1);
    assert_non_null(strstr(err, "1024 bits"));
    assert_null(k.pkey);
    assert_int_equal(from_pem(ec224, &k, err), -1);
    assert_non_null(strstr(err, "secp224r1"));
    assert_int_equal(from_pem(ed448, &k, err), -1);
    assert_non_null(strstr(err, "ED448"));
    assert_int_equal(from_pem(x25519, &k, err), -1);

    char *pem = pem_of(rsa2048);
    assert_int_equal(gh_jwk_from_pem(pem, strlen(pem) / 2, &k, err, sizeof(err)), -1);
    free(pem);
    assert_int_equal(gh_jwk_from_pem("hello", 5, &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "BEGIN PUBLIC KEY"));
    BIO *bio = BIO_new(BIO_s_mem()); /* a private key is not a public key */
    assert_true(PEM_write_bio_PrivateKey(bio, ec256, NULL, NULL, 0, NULL, NULL));
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    assert_int_equal(gh_jwk_from_pem(data, (size_t)len, &k, err, sizeof(err)), -1);
    BIO_free(bio);
    assert_int_equal(ERR_peek_error(), 0);
}

/* ---- Project Wycheproof: json_web_key_test.json ---- */

static const EVP_MD *md_for(const char *alg)
{
    const char *bits = alg + strlen(alg) - 3;
    return !strcmp(bits, "256") ? EVP_sha256() : !strcmp(bits, "384") ? EVP_sha384() : EVP_sha512();
}

/* ECDSA's raw R||S as the DER OpenSSL verifies; returns its length or 0. */
static int ecdsa_der(const unsigned char *sig, size_t len, unsigned char *der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)len / 2, NULL),
           *s = BN_bin2bn(sig + len / 2, (int)len / 2, NULL);
    int n = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL;
        n = i2d_ECDSA_SIG(es, &der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

/* An independent JWS check (HS*, RS*, ES*) for the vectors, so a key that
 * parses but is wrong still fails. Returns true when sig verifies. */
static bool jws_verify(const gh_jwk_t *k, const char *alg, const char *msg, size_t msglen,
                       const unsigned char *sig, size_t siglen)
{
    unsigned char buf[EVP_MAX_MD_SIZE + 300];
    if (alg[0] == 'H') {
        unsigned int maclen = 0;
        if (k->type != GH_KEY_OCT || !HMAC(md_for(alg), k->secret, (int)k->secret_len,
                                           (const unsigned char *)msg, msglen, buf, &maclen))
            return false;
        return maclen == siglen && CRYPTO_memcmp(buf, sig, siglen) == 0;
    }
    if (alg[0] == 'E') {
        if (k->type != GH_KEY_EC || siglen > 132 || !(siglen = (size_t)ecdsa_der(sig, siglen, buf)))
            return false;
        sig = buf;
    } else if (alg[0] != 'R' || k->type != GH_KEY_RSA) {
        return false;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md_for(alg), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, msglen) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* Decodes a base64url segment into a malloc'd buffer, or NULL. */
static unsigned char *seg(const char *s, size_t len, size_t *out_len)
{
    unsigned char *b = malloc(GH_B64URL_DECODED_MAX(len) + 1);
    if (b && gh_b64url_decode(s, len, b, out_len) == 0) return b;
    free(b);
    return NULL;
}

/* True when the compact JWS verifies with the key its header names in set
 * (kid and, when the key has one, alg must match). */
static bool jws_accepted(const gh_jwks_t *set, const char *jws)
{
    const char *d1 = strchr(jws, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || strchr(d2 + 1, '.')) return false;
    size_t hlen, siglen;
    unsigned char *h = seg(jws, (size_t)(d1 - jws), &hlen);
    unsigned char *sig = seg(d2 + 1, strlen(d2 + 1), &siglen);
    json_t *hdr = h ? json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const json_t *kid = json_object_get(hdr, "kid");
    bool ok = false;
    for (size_t i = 0; sig && alg && i < set->n && !ok; i++) {
        const gh_jwk_t *k = &set->keys[i];
        if (kid && (!k->kid || k->kid_len != json_string_length(kid) ||
                    memcmp(k->kid, json_string_value(kid), k->kid_len) != 0))
            continue;
        if (k->alg && strcmp(k->alg, alg) != 0) continue;
        ok = jws_verify(k, alg, jws, (size_t)(d2 - jws), sig, siglen);
    }
    json_decref(hdr);
    free(h);
    free(sig);
    return ok;
}

/* A vector file from GH_WYCHEPROOF_DIR (set by tests/CMakeLists.txt). */
static char *wycheproof_path(const char *name)
{
    const char *dir = getenv("GH_WYCHEPROOF_DIR");
    return fmt("%s/%s", dir ? dir : "GH_WYCHEPROOF_DIR-is-not-set", name);
}

/* True when the group's key set holds private-key material ("d"). */
static bool has_private_parts(const json_t *keyset)
{
    const json_t *keys = json_object_get(keyset, "keys");
    for (size_t i = 0; i < json_array_size(keys); i++)
        if (json_object_get(json_array_get(keys, i), "d")) return true;
    return false;
}

typedef struct {
    size_t run, skipped_private, skipped_jwe, passed;
} wp_counts;

/* Runs one vector against the parsed set (or the parse error). */
static void wycheproof_case(const json_t *t, int rc, const gh_jwks_t *set, const char *err,
                            wp_counts *c)
{
    const char *result = json_string_value(json_object_get(t, "result"));
    const char *jws = json_string_value(json_object_get(t, "jws"));
    int id = (int)json_integer_value(json_object_get(t, "tcId"));
    const char *comment = json_string_value(json_object_get(t, "comment"));
    if (!jws) {
        c->skipped_jwe++;
        return;
    }
    c->run++;
    bool accepted = rc == 0 && jws_accepted(set, jws);
    bool pass = !strcmp(result, "acceptable") || accepted == !strcmp(result, "valid");
    c->passed += pass;
    print_message("  tc %2d %-8s %-32s %s%s%s\n", id, result, comment,
                  accepted ? "accepted"
                  : rc     ? "set refused: "
                           : "not accepted",
                  rc ? err : "", pass ? "" : "  <-- WRONG");
}

static void test_wycheproof_json_web_key(void **state)
{
    (void)state;
    char *path = wycheproof_path("json_web_key_test.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) print_error("cannot load %s: %s\n", path, jerr.text);
    free(path);
    assert_non_null(root);
    wp_counts c = {0};
    const json_t *groups = json_object_get(root, "testGroups");
    for (size_t g = 0; g < json_array_size(groups); g++) {
        const json_t *grp = json_array_get(groups, g), *tests = json_object_get(grp, "tests");
        const json_t *keyset = json_object_get(grp, "public");
        if (!keyset && has_private_parts(json_object_get(grp, "private"))) {
            c.skipped_private += json_array_size(tests);
            continue;
        }
        if (!keyset) keyset = json_object_get(grp, "private"); /* symmetric keys only */
        char *text = json_dumps(keyset, JSON_COMPACT), err[256] = "";
        gh_jwks_t set;
        int rc = gh_jwks_parse(text, strlen(text), &set, err, sizeof(err));
        for (size_t i = 0; i < json_array_size(tests); i++)
            wycheproof_case(json_array_get(tests, i), rc, &set, err, &c);
        gh_jwks_free(&set);
        free(text);
    }
    json_decref(root);
    print_message("wycheproof json_web_key_test: %zu run, %zu passed, %zu skipped (private-key "
                  "sets), %zu skipped (JWE)\n",
                  c.run, c.passed, c.skipped_private, c.skipped_jwe);
    assert_true(c.run > 0);
    assert_int_equal(c.passed, c.run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsa_key),
        cmocka_unit_test(test_rsa_1024_refused_naming_kid),
        cmocka_unit_test(test_rsa_bad_numbers),
        cmocka_unit_test(test_private_members_ignored),
        cmocka_unit_test(test_ec_keys),
        cmocka_unit_test(test_ec_wrong_coordinate_length),
        cmocka_unit_test(test_ec_point_not_on_curve),
        cmocka_unit_test(test_ec_alg_must_fit),
        cmocka_unit_test(test_okp_keys),
        cmocka_unit_test(test_oct_keys),
        cmocka_unit_test(test_from_secret),
        cmocka_unit_test(test_duplicate_members_refused),
        cmocka_unit_test(test_use_and_key_ops),
        cmocka_unit_test(test_unsupported_skipped),
        cmocka_unit_test(test_kid_bytes),
        cmocka_unit_test(test_set_rules),
        cmocka_unit_test(test_document_shape_and_limits),
        cmocka_unit_test(test_pem_accepted),
        cmocka_unit_test(test_pem_refused),
        cmocka_unit_test(test_wycheproof_json_web_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
