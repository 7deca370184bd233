/* Project Wycheproof vectors against the JWT chain: every applicable
 * vector of the ECDSA P1363, RSA PKCS#1 and PSS, Ed25519, HMAC and JWS
 * files. No "invalid" may be accepted and no "valid" refused;
 * "acceptable" may go either way. Counts per file are printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "b64url.h"
#include "jwk.h"
#include "jwt.h"

typedef struct {
    const char *file;
    int valid, invalid, acc_yes, acc_no; /* passed vectors by expected result */
    int skipped;                         /* not applicable to JWS (counted, not run) */
    int jws_mode;                        /* JWS vectors whose payload is not a JWT claims set */
    int known;                           /* mislabelled vectors, see known_vector */
    int failures;
} counts_t;

/* A vector file from GH_WYCHEPROOF_DIR (set by tests/CMakeLists.txt). */
static json_t *load(const char *file)
{
    char path[1024];
    const char *dir = getenv("GH_WYCHEPROOF_DIR");
    if (!dir) fail_msg("GH_WYCHEPROOF_DIR is not set: run this test through ctest");
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fail_msg("%s: %s (set -DGH_WYCHEPROOF_DIR)", path, jerr.text);
    return root;
}

/* The bytes of a hex string (malloc'd, never NULL), length in *n. */
static unsigned char *unhex(const char *hex, size_t *n)
{
    size_t len = strlen(hex);
    unsigned char *out = malloc(len / 2 + 1);
    assert_non_null(out);
    assert_int_equal(len % 2, 0);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned int b;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        out[i] = (unsigned char)b;
    }
    *n = len / 2;
    return out;
}

static const char *str(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s ? s : "";
}

/* Tallies one outcome against the vector's expected result. */
static void tally(counts_t *c, const json_t *test, bool accepted)
{
    const char *result = str(test, "result");
    int tc = (int)json_integer_value(json_object_get(test, "tcId"));
    if (strcmp(result, "valid") == 0) {
        if (accepted)
            c->valid++;
        else {
            c->failures++;
            print_error("%s tcId %d (%s): valid vector refused\n", c->file, tc,
                        str(test, "comment"));
        }
    } else if (strcmp(result, "invalid") == 0) {
        if (!accepted)
            c->invalid++;
        else {
            c->failures++;
            print_error("%s tcId %d (%s): invalid vector accepted\n", c->file, tc,
                        str(test, "comment"));
        }
    } else {
        accepted ? c->acc_yes++ : c->acc_no++;
    }
}

static void report(const counts_t *c)
{
    print_message("%s: valid accepted %d, invalid refused %d, acceptable accepted %d / refused "
                  "%d, skipped %d%s",
                  c->file, c->valid, c->invalid, c->acc_yes, c->acc_no, c->skipped,
                  c->failures ? "" : ", no failures");
    if (c->jws_mode) print_message(", non-JSON payloads %d", c->jws_mode);
    if (c->known) print_message(", mislabelled (checked on their own terms) %d", c->known);
    print_message("\n");
    assert_int_equal(c->failures, 0);
}

/* A verification key from a group's DER SubjectPublicKeyInfo. */
static gh_jwk_t der_key(const json_t *group, gh_key_type type, int ec_nid)
{
    size_t n;
    unsigned char *der = unhex(str(group, "publicKeyDer"), &n);
    const unsigned char *p = der;
    gh_jwk_t k = {.type = type, .ec_nid = ec_nid};
    k.pkey = d2i_PUBKEY(NULL, &p, (long)n);
    free(der);
    assert_non_null(k.pkey);
    return k;
}

/* Runs every test of every group of a signature file through
 * gh_jws_verify with the group's key, when the group's parameters are
 * those alg fixes (hash, MGF, salt); other groups are counted skipped. */
static void run_sig_file(const char *file, gh_jwt_alg alg, gh_key_type type, int ec_nid,
                         bool (*applies)(const json_t *group))
{
    counts_t c = {.file = file};
    json_t *root = load(file);
    size_t gi, ti;
    json_t *group, *test;
    json_array_foreach(json_object_get(root, "testGroups"), gi, group)
    {
        json_t *tests = json_object_get(group, "tests");
        if (!applies(group)) {
            c.skipped += (int)json_array_size(tests);
            continue;
        }
        gh_jwk_t k = der_key(group, type, ec_nid);
        json_array_foreach(tests, ti, test)
        {
            size_t mlen, slen;
            unsigned char *msg = unhex(str(test, "msg"), &mlen);
            unsigned char *sig = unhex(str(test, "sig"), &slen);
            tally(&c, test, gh_jws_verify(alg, &k, msg, mlen, sig, slen));
            free(msg);
            free(sig);
        }
        EVP_PKEY_free(k.pkey);
    }
    json_decref(root);
    report(&c);
}

static bool sha_is(const json_t *g, const char *sha)
{
    return strcmp(str(g, "sha"), sha) == 0;
}

static bool sha256(const json_t *g)
{
    return sha_is(g, "SHA-256");
}

static bool sha384(const json_t *g)
{
    return sha_is(g, "SHA-384");
}

static bool sha512(const json_t *g)
{
    return sha_is(g, "SHA-512");
}

/* RFC 7518 PS256: MGF1 with SHA-256 and a 32-byte salt. */
static bool ps256(const json_t *g)
{
    return sha256(g) && strcmp(str(g, "mgf"), "MGF1") == 0 &&
           strcmp(str(g, "mgfSha"), "SHA-256") == 0 &&
           json_integer_value(json_object_get(g, "sLen")) == 32;
}

static bool any(const json_t *g)
{
    (void)g;
    return true;
}

static void test_ecdsa_p256(void **state)
{
    (void)state;
    run_sig_file("ecdsa_secp256r1_sha256_p1363_test.json", GH_ALG_ES256, GH_KEY_EC,
                 NID_X9_62_prime256v1, sha256);
}

static void test_ecdsa_p384(void **state)
{
    (void)state;
    run_sig_file("ecdsa_secp384r1_sha384_p1363_test.json", GH_ALG_ES384, GH_KEY_EC, NID_secp384r1,
                 sha384);
}

static void test_ecdsa_p521(void **state)
{
    (void)state;
    run_sig_file("ecdsa_secp521r1_sha512_p1363_test.json", GH_ALG_ES512, GH_KEY_EC, NID_secp521r1,
                 sha512);
}

static void test_rsa_pkcs1(void **state)
{
    (void)state;
    run_sig_file("rsa_signature_2048_sha256_test.json", GH_ALG_RS256, GH_KEY_RSA, 0, sha256);
}

static void test_rsa_pss(void **state)
{
    (void)state;
    run_sig_file("rsa_pss_2048_sha256_mgf1_32_test.json", GH_ALG_PS256, GH_KEY_RSA, 0, ps256);
}

static void test_ed25519(void **state)
{
    (void)state;
    run_sig_file("ed25519_test.json", GH_ALG_EDDSA, GH_KEY_OKP, 0, any);
}

/* HS256 always carries the full 256-bit tag: truncated-tag groups do not
 * apply to JWS and are counted as skipped. */
static void test_hmac_sha256(void **state)
{
    (void)state;
    counts_t c = {.file = "hmac_sha256_test.json"};
    json_t *root = load(c.file);
    size_t gi, ti;
    json_t *group, *test;
    json_array_foreach(json_object_get(root, "testGroups"), gi, group)
    {
        json_t *tests = json_object_get(group, "tests");
        if (json_integer_value(json_object_get(group, "tagSize")) != 256) {
            c.skipped += (int)json_array_size(tests);
            continue;
        }
        json_array_foreach(tests, ti, test)
        {
            size_t klen, mlen, tlen;
            unsigned char *key = unhex(str(test, "key"), &klen);
            unsigned char *msg = unhex(str(test, "msg"), &mlen);
            unsigned char *tag = unhex(str(test, "tag"), &tlen);
            gh_jwk_t k = {.type = GH_KEY_OCT, .secret = key, .secret_len = klen};
            tally(&c, test, gh_jws_verify(GH_ALG_HS256, &k, msg, mlen, tag, tlen));
            free(key);
            free(msg);
            free(tag);
        }
    }
    json_decref(root);
    report(&c);
}

/* ---- JWS compact vectors ---- */

/* Whether the chain accepts a JWS whose payload is not a JSON object (a
 * JWS, not a JWT): header and signature go through the real decoder, with
 * the payload swapped for "{}" (e30), the payload segment is checked as
 * strict base64url (empty allowed, as RFC 7515 allows), and the signature
 * is verified over the original signing input. */
static bool jws_accepts(const char *jws, const gh_jwks_t *keys, const gh_jwt_policy_t *pol,
                        bool *jws_mode)
{
    const char *d1 = strchr(jws, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2) return false;
    size_t plen = (size_t)(d2 - d1 - 1), n;
    unsigned char *payload = malloc(GH_B64URL_DECODED_MAX(plen));
    bool ok = payload && gh_b64url_decode(d1 + 1, plen, payload, &n) == 0;
    free(payload);
    if (!ok) return false;

    size_t len = strlen(jws);
    char *synth = malloc(len + 8);
    assert_non_null(synth);
    snprintf(synth, len + 8, "%.*s.e30%s", (int)(d1 - jws), jws, d2);
    gh_jwt_t t;
    gh_jwt_status st = gh_jwt_decode(synth, strlen(synth), pol, &t);
    if (st == GH_JWT_OK) {
        *jws_mode = true;
        t.signing_input = jws;
        t.signing_input_len = (size_t)(d2 - jws);
        st = gh_jwt_verify_signature(&t, keys);
        gh_jwt_clear(&t);
    }
    free(synth);
    return st == GH_JWT_OK;
}

/* Whether the chain accepts the compact token with these keys: decode and
 * signature (claims are not part of these vectors). *jws_mode is set when
 * only the payload kept the token from decoding as a JWT. */
static bool accepts(const char *jws, const gh_jwks_t *keys, bool *jws_mode)
{
    gh_jwt_policy_t pol = {.algorithms = (UINT32_C(1) << GH_ALG_COUNT) - 1};
    gh_jwt_t t;
    gh_jwt_status st = gh_jwt_decode(jws, strlen(jws), &pol, &t);
    *jws_mode = false;
    if (st == GH_JWT_OK) {
        st = gh_jwt_verify_signature(&t, keys);
        gh_jwt_clear(&t);
        return st == GH_JWT_OK;
    }
    if (st != GH_JWT_MALFORMED) return false;
    return jws_accepts(jws, keys, &pol, jws_mode);
}

/* The group's verification key: "public" when given, else "private"
 * (the HMAC groups carry only the secret). Parsed by jwk.c. */
static bool group_keys(const json_t *group, gh_jwks_t *keys)
{
    const json_t *jwk = json_object_get(group, "public");
    if (!jwk) jwk = json_object_get(group, "private");
    char *text = json_dumps(jwk, JSON_COMPACT);
    char err[256] = "";
    int rc = text ? gh_jwks_parse(text, strlen(text), keys, err, sizeof(err)) : -1;
    free(text);
    if (rc != 0) print_message("  %s: key refused: %s\n", str(group, "comment"), err);
    return rc == 0;
}

/* Vectors whose label this copy of the file gets wrong for a strict
 * verifier. Each is still asserted, on the property that explains it:
 * - KEY_ALG: the group's JWK restricts itself to another algorithm
 *   ("PS256" for a PS384 token; "ES521", no JWA name, for ES512). Our key
 *   selection honours a key's "alg" (RFC 7517 section 4.4), so these are
 *   refused; with "alg" removed from the key they must verify.
 * - SAME_AS_VALID: labelled invalid ("padding") but byte-identical to a
 *   valid vector of the same group: the padding was lost from the file.
 *   They must be accepted, as their valid twin is.
 * - NOT_B64URL: labelled valid, but a '?' sits inside a segment and the
 *   MAC covers the text without it. Accepting would mean dropping bytes
 *   from the signing input; RFC 7515 and the issue require refusal. */
enum known { NOT_KNOWN, KEY_ALG, SAME_AS_VALID, NOT_B64URL };

static enum known known_vector(int tc)
{
    static const struct {
        int tc;
        enum known why;
    } list[] = {{346, KEY_ALG},       {347, KEY_ALG},       {350, KEY_ALG},    {351, KEY_ALG},
                {367, SAME_AS_VALID}, {370, SAME_AS_VALID}, {372, NOT_B64URL}, {373, NOT_B64URL}};
    for (size_t i = 0; i < sizeof(list) / sizeof(*list); i++) {
        if (list[i].tc == tc) return list[i].why;
    }
    return NOT_KNOWN;
}

/* Whether the token verifies once "alg" is removed from the group's key. */
static bool accepts_without_key_alg(const json_t *group, const char *jws)
{
    json_t *g = json_deep_copy(group);
    json_t *jwk = json_object_get(g, "public");
    json_object_del(jwk ? jwk : json_object_get(g, "private"), "alg");
    gh_jwks_t keys = {0};
    bool jws_mode, ok = group_keys(g, &keys) && accepts(jws, &keys, &jws_mode);
    gh_jwks_free(&keys);
    json_decref(g);
    return ok;
}

/* True when another vector of the group, labelled valid, is this jws. */
static bool has_valid_twin(const json_t *group, const json_t *test)
{
    size_t i;
    const json_t *other;
    json_array_foreach(json_object_get(group, "tests"), i, other)
    {
        if (other != test && strcmp(str(other, "result"), "valid") == 0 &&
            strcmp(str(other, "jws"), str(test, "jws")) == 0)
            return true;
    }
    return false;
}

/* Asserts the property that explains a known vector's outcome. */
static void check_known(enum known why, const json_t *group, const json_t *test, bool ok)
{
    const char *jws = str(test, "jws");
    int tc = (int)json_integer_value(json_object_get(test, "tcId"));
    switch (why) {
    case KEY_ALG:
        if (ok || !accepts_without_key_alg(group, jws)) fail_msg("tcId %d: key alg", tc);
        break;
    case SAME_AS_VALID:
        if (!ok || !has_valid_twin(group, test)) fail_msg("tcId %d: valid twin", tc);
        break;
    case NOT_B64URL:
        if (ok || strspn(jws, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789-_.") == strlen(jws))
            fail_msg("tcId %d: not base64url", tc);
        break;
    case NOT_KNOWN:
        break;
    }
}

static void test_json_web_signature(void **state)
{
    (void)state;
    counts_t c = {.file = "json_web_signature_test.json"};
    json_t *root = load(c.file);
    size_t gi, ti;
    json_t *group, *test;
    json_array_foreach(json_object_get(root, "testGroups"), gi, group)
    {
        gh_jwks_t keys = {0};
        bool have = group_keys(group, &keys);
        json_array_foreach(json_object_get(group, "tests"), ti, test)
        {
            bool jws_mode = false;
            bool ok = have && accepts(str(test, "jws"), &keys, &jws_mode);
            c.jws_mode += jws_mode;
            enum known why = known_vector((int)json_integer_value(json_object_get(test, "tcId")));
            if (why != NOT_KNOWN) {
                check_known(why, group, test, ok);
                c.known++;
                continue;
            }
            tally(&c, test, ok);
        }
        if (have) gh_jwks_free(&keys);
    }
    json_decref(root);
    report(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ecdsa_p256),  cmocka_unit_test(test_ecdsa_p384),
        cmocka_unit_test(test_ecdsa_p521),  cmocka_unit_test(test_rsa_pkcs1),
        cmocka_unit_test(test_rsa_pss),     cmocka_unit_test(test_ed25519),
        cmocka_unit_test(test_hmac_sha256), cmocka_unit_test(test_json_web_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
