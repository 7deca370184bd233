/* Fuzz target for jwk.c. Input starting with '-' is a PEM public key for
 * gh_jwk_from_pem; anything else is a JWK Set (or a single JWK) for
 * gh_jwks_parse.
 *
 * A refusal leaves nothing behind and says why. Every key accepted has a
 * known type with the OpenSSL key or secret that type needs: RSA of at
 * least 2048 bits with an odd exponent of at least 3, EC on the curve
 * ec_nid names, Ed25519, or a secret at least as long as its alg's hash. A
 * set never holds more than 100 members, two keys with one kid, or secrets
 * beside public keys, and its keys come, in order, from members whose kty,
 * kid, alg, use and key_ops say so. Each key then meets the verifier with a
 * zero signature under every alg of its type: refused, leaving no OpenSSL
 * error queued. Clearing empties every key (LSan sees what it missed). */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>

#include "fuzz_check.h"
#include "jwk.h"
#include "jwt.h"

#define MAX_MEMBERS 100 /* jwk.h's limit on "keys" */

/* The JWS algorithms a key's "alg" may name, from RFC 7518 and 8037: key
 * type, curve and the signature (or MAC) length the verifier wants (0: the
 * RSA modulus length). */
static const struct {
    gh_jwt_alg alg;
    const char *name;
    gh_key_type kty;
    int ec_nid;
    size_t sig_len;
} ALG_REF[] = {
    {GH_ALG_HS256, "HS256", GH_KEY_OCT, 0, 32},
    {GH_ALG_HS384, "HS384", GH_KEY_OCT, 0, 48},
    {GH_ALG_HS512, "HS512", GH_KEY_OCT, 0, 64},
    {GH_ALG_RS256, "RS256", GH_KEY_RSA, 0, 0},
    {GH_ALG_RS384, "RS384", GH_KEY_RSA, 0, 0},
    {GH_ALG_RS512, "RS512", GH_KEY_RSA, 0, 0},
    {GH_ALG_PS256, "PS256", GH_KEY_RSA, 0, 0},
    {GH_ALG_PS384, "PS384", GH_KEY_RSA, 0, 0},
    {GH_ALG_PS512, "PS512", GH_KEY_RSA, 0, 0},
    {GH_ALG_ES256, "ES256", GH_KEY_EC, NID_X9_62_prime256v1, 64},
    {GH_ALG_ES384, "ES384", GH_KEY_EC, NID_secp384r1, 96},
    {GH_ALG_ES512, "ES512", GH_KEY_EC, NID_secp521r1, 132},
    {GH_ALG_EDDSA, "EdDSA", GH_KEY_OKP, 0, 64},
};
#define NALGS (sizeof ALG_REF / sizeof ALG_REF[0])

static const struct {
    const char *crv;
    int nid;
} CURVES[] = {
    {"P-256", NID_X9_62_prime256v1},
    {"P-384", NID_secp384r1},
    {"P-521", NID_secp521r1},
};

static const struct {
    const char *kty;
    gh_key_type type;
} KTYS[] = {{"RSA", GH_KEY_RSA}, {"EC", GH_KEY_EC}, {"OKP", GH_KEY_OKP}, {"oct", GH_KEY_OCT}};

static bool json_str_is(const json_t *j, const char *s, size_t len)
{
    return json_is_string(j) && json_string_length(j) == len &&
           memcmp(json_string_value(j), s, len) == 0;
}

static bool json_lit_is(const json_t *j, const char *lit)
{
    return json_str_is(j, lit, strlen(lit));
}

/* The ALG_REF entry named by the C string alg, or -1. */
static int alg_index(const char *alg)
{
    for (size_t i = 0; i < NALGS; i++)
        if (strcmp(ALG_REF[i].name, alg) == 0) return (int)i;
    return -1;
}

static bool is_cleared(const gh_jwk_t *k)
{
    return !k->kid && k->kid_len == 0 && k->type == 0 && !k->alg && !k->pkey && k->ec_nid == 0 &&
           !k->secret && k->secret_len == 0;
}

/* The NID of the curve OpenSSL holds the EC key on, or NID_undef. */
static int pkey_curve(EVP_PKEY *pkey)
{
    char name[64];
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, NULL))
        return NID_undef;
    int nid = OBJ_txt2nid(name);
    return nid != NID_undef ? nid : EC_curve_nist2nid(name);
}

static void check_rsa(EVP_PKEY *pkey)
{
    FUZZ_CHECK(EVP_PKEY_is_a(pkey, "RSA"));
    FUZZ_CHECK(EVP_PKEY_get_bits(pkey) >= 2048);
    BIGNUM *e = NULL;
    FUZZ_CHECK(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1);
    FUZZ_CHECK(BN_is_odd(e) && BN_num_bits(e) >= 2);
    BN_free(e);
}

/* A kept key is of a known type and holds exactly what that type needs. */
static void check_key(const gh_jwk_t *k)
{
    int a = k->alg ? alg_index(k->alg) : -1;
    FUZZ_CHECK(!k->alg || (a >= 0 && ALG_REF[a].kty == k->type));
    FUZZ_CHECK(k->kid ? k->kid[k->kid_len] == '\0' : k->kid_len == 0);
    switch (k->type) {
    case GH_KEY_OCT:
        FUZZ_CHECK(k->secret && !k->pkey && k->ec_nid == 0);
        FUZZ_CHECK(k->secret_len >= (a >= 0 ? ALG_REF[a].sig_len : 32));
        return;
    case GH_KEY_RSA:
        FUZZ_CHECK(k->pkey && !k->secret && k->ec_nid == 0);
        check_rsa(k->pkey);
        return;
    case GH_KEY_EC:
        FUZZ_CHECK(k->pkey && !k->secret && EVP_PKEY_is_a(k->pkey, "EC"));
        FUZZ_CHECK(k->ec_nid == NID_X9_62_prime256v1 || k->ec_nid == NID_secp384r1 ||
                   k->ec_nid == NID_secp521r1);
        FUZZ_CHECK(pkey_curve(k->pkey) == k->ec_nid);
        FUZZ_CHECK(a < 0 || ALG_REF[a].ec_nid == k->ec_nid);
        return;
    case GH_KEY_OKP:
        FUZZ_CHECK(k->pkey && !k->secret && k->ec_nid == 0 && EVP_PKEY_is_a(k->pkey, "ED25519"));
        return;
    }
    FUZZ_CHECK(!"key of unknown type");
}

/* Every alg of the key's type refuses an all-zero signature of the length
 * it wants, and leaves no error queued. EdDSA only runs: a zero signature
 * may verify under a small-order public key, which Ed25519 does not rule
 * out. */
static void exercise_key(const gh_jwk_t *k)
{
    static const unsigned char msg[] = "eyJhbGciOiJub25lIn0.e30";
    static const unsigned char zeros[16384 / 8];
    for (size_t i = 0; i < NALGS; i++) {
        if (ALG_REF[i].kty != k->type) continue;
        size_t len = ALG_REF[i].sig_len ? ALG_REF[i].sig_len : (size_t)EVP_PKEY_get_size(k->pkey);
        FUZZ_CHECK(len <= sizeof zeros);
        bool ok = gh_jws_verify(ALG_REF[i].alg, k, msg, sizeof msg - 1, zeros, len);
        FUZZ_CHECK(!ok || ALG_REF[i].alg == GH_ALG_EDDSA);
        FUZZ_CHECK(ERR_peek_error() == 0);
    }
}

static bool usage_allows_verify(const json_t *m)
{
    const json_t *use = json_object_get(m, "use"), *ops = json_object_get(m, "key_ops");
    if (use && !json_lit_is(use, "sig")) return false;
    if (!ops) return true;
    for (size_t i = 0; i < json_array_size(ops); i++)
        if (json_lit_is(json_array_get(ops, i), "verify")) return true;
    return false;
}

/* True when member m of the set could have produced key k. */
static bool member_made(const json_t *m, const gh_jwk_t *k)
{
    const json_t *kty = json_object_get(m, "kty"), *kid = json_object_get(m, "kid");
    const json_t *alg = json_object_get(m, "alg");
    size_t t = 0;
    while (t < sizeof KTYS / sizeof KTYS[0] && !json_lit_is(kty, KTYS[t].kty)) t++;
    if (t == sizeof KTYS / sizeof KTYS[0] || KTYS[t].type != k->type) return false;
    if (!usage_allows_verify(m)) return false;
    if (!kid != !k->kid || (kid && !json_str_is(kid, k->kid, k->kid_len))) return false;
    if (!alg != !k->alg || (alg && !json_lit_is(alg, k->alg))) return false;
    const json_t *crv = json_object_get(m, "crv");
    switch (k->type) {
    case GH_KEY_OCT:
        return json_is_string(json_object_get(m, "k")) &&
               json_string_length(json_object_get(m, "k")) * 3 / 4 == k->secret_len;
    case GH_KEY_EC:
        for (size_t c = 0; c < sizeof CURVES / sizeof CURVES[0]; c++)
            if (json_lit_is(crv, CURVES[c].crv)) return CURVES[c].nid == k->ec_nid;
        return false;
    case GH_KEY_OKP:
        return json_lit_is(crv, "Ed25519");
    case GH_KEY_RSA:
        return true;
    }
    return false;
}

/* The kept keys are, in order, made from members of the input's "keys"
 * (or from the input itself, a single JWK). */
static void check_against_members(const uint8_t *data, size_t size, const gh_jwks_t *set)
{
    json_t *root =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(root));
    json_t *members = json_object_get(root, "keys");
    json_t *single = members ? NULL : json_pack("[O]", root);
    if (single) members = single;
    FUZZ_CHECK(json_is_array(members) && json_array_size(members) <= MAX_MEMBERS);
    FUZZ_CHECK(set->n <= json_array_size(members));
    size_t j = 0;
    for (size_t i = 0; i < set->n; i++, j++) {
        while (j < json_array_size(members) &&
               !member_made(json_array_get(members, j), &set->keys[i]))
            j++;
        FUZZ_CHECK(j < json_array_size(members));
    }
    json_decref(single);
    json_decref(root);
}

/* No kid twice, no secrets beside public keys. */
static void check_set(const gh_jwks_t *set)
{
    size_t noct = 0;
    for (size_t i = 0; i < set->n; i++) {
        const gh_jwk_t *a = &set->keys[i];
        noct += a->type == GH_KEY_OCT;
        for (size_t j = 0; a->kid && j < i; j++) {
            const gh_jwk_t *b = &set->keys[j];
            FUZZ_CHECK(!b->kid || b->kid_len != a->kid_len ||
                       memcmp(a->kid, b->kid, a->kid_len) != 0);
        }
    }
    FUZZ_CHECK(noct == 0 || noct == set->n);
}

static void run_jwks(const uint8_t *data, size_t size)
{
    gh_jwks_t set;
    char err[256] = "";
    int rc = gh_jwks_parse((const char *)data, size, &set, err, sizeof err);
    FUZZ_CHECK(ERR_peek_error() == 0);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && set.n == 0 && set.keys == NULL);
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
        return;
    }
    FUZZ_CHECK(set.n == 0 || set.keys != NULL);
    for (size_t i = 0; i < set.n; i++) {
        check_key(&set.keys[i]);
        exercise_key(&set.keys[i]);
    }
    check_set(&set);
    check_against_members(data, size, &set);
    gh_jwks_free(&set);
    FUZZ_CHECK(set.n == 0 && set.keys == NULL);
}

static void run_pem(const uint8_t *data, size_t size)
{
    gh_jwk_t k;
    char err[256] = "";
    int rc = gh_jwk_from_pem((const char *)data, size, &k, err, sizeof err);
    FUZZ_CHECK(ERR_peek_error() == 0);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && is_cleared(&k));
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
        return;
    }
    FUZZ_CHECK(k.type != GH_KEY_OCT && !k.kid && !k.alg);
    check_key(&k);
    exercise_key(&k);
    gh_jwk_clear(&k);
    FUZZ_CHECK(is_cleared(&k));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == '-')
        run_pem(data, size);
    else
        run_jwks(data, size);
    return 0;
}
