/* JWS compact tokens: strict decoding, signature verification through
 * OpenSSL EVP, and claim checks. Pure: bytes, keys and a clock in; a status
 * and claims out. No I/O, nothing about requests. */
#ifndef GH_JWT_H
#define GH_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwk.h"

typedef enum {
    GH_ALG_HS256,
    GH_ALG_HS384,
    GH_ALG_HS512,
    GH_ALG_RS256,
    GH_ALG_RS384,
    GH_ALG_RS512,
    GH_ALG_PS256,
    GH_ALG_PS384,
    GH_ALG_PS512,
    GH_ALG_ES256,
    GH_ALG_ES384,
    GH_ALG_ES512,
    GH_ALG_EDDSA,
    GH_ALG_COUNT
} gh_jwt_alg;

/* The algorithm named exactly (case-sensitive) by s, or -1. "none" is -1. */
int gh_jwt_alg_parse(const char *s, size_t len);
const char *gh_jwt_alg_name(gh_jwt_alg alg);

/* Each outcome maps one-to-one onto an RFC 6750 error_description and a
 * metrics label. */
typedef enum {
    GH_JWT_OK = 0,
    GH_JWT_MALFORMED,        /* not three strict base64url segments of JSON objects */
    GH_JWT_TOO_LARGE,        /* longer than max_token, or JSON nested deeper than max_depth */
    GH_JWT_BAD_ALG,          /* none, unknown, not allowed, or not the key's */
    GH_JWT_UNSUPPORTED_CRIT, /* crit names an extension we do not implement */
    GH_JWT_UNKNOWN_KID,      /* no key of the set fits kid and alg */
    GH_JWT_BAD_SIGNATURE,
    GH_JWT_EXPIRED,
    GH_JWT_NOT_YET_VALID,    /* nbf in the future */
    GH_JWT_ISSUED_IN_FUTURE, /* iat in the future */
    GH_JWT_BAD_ISSUER,
    GH_JWT_BAD_AUDIENCE,
    GH_JWT_MISSING_CLAIM, /* exp (when required) or a required claim */
    GH_JWT_BAD_CLAIM,     /* a registered claim of the wrong type */
    GH_JWT_BAD_AZP,       /* azp is not one of the authorized parties */
    GH_JWT_STATUS_COUNT
} gh_jwt_status;

/* For WWW-Authenticate error_description: "token expired", ... */
const char *gh_jwt_status_description(gh_jwt_status st);
/* For metrics and logs: "expired", "bad_signature", ... */
const char *gh_jwt_status_label(gh_jwt_status st);

/* Used when a policy leaves max_token or max_depth at 0. */
#define GH_JWT_DEFAULT_MAX_TOKEN 8192
#define GH_JWT_DEFAULT_MAX_DEPTH 16

/* What an issuer requires of its tokens. Strings are (ptr, len). */
typedef struct {
    const char *issuer; /* NULL: iss not checked */
    size_t issuer_len;
    const char *const *audiences; /* any one must appear in aud; naud 0: not checked */
    const size_t *audience_lens;
    size_t naud;
    const char *const *azps; /* azp must equal one (Keycloak's client id); nazp 0: not checked */
    const size_t *azp_lens;
    size_t nazp;
    uint32_t algorithms; /* bit (1 << gh_jwt_alg) per allowed algorithm */
    double clock_skew;   /* seconds */
    bool require_exp;
    const char *const *required_claims; /* names that must be present */
    size_t nrequired;
    size_t max_token; /* bytes; 0: GH_JWT_DEFAULT_MAX_TOKEN */
    int max_depth;    /* JSON nesting (objects and arrays); 0: the default */
} gh_jwt_policy_t;

/* A decoded token. header and claims are owned (json_decref in clear). */
typedef struct {
    gh_jwt_alg alg;
    json_t *header, *claims;
    const char *kid; /* inside header (may hold NULs: use kid_len), or NULL */
    size_t kid_len;
    double exp; /* set by decode when exp is a number, else 0; checked by check_claims */
    /* the signing input and signature, for gh_jwt_verify_signature */
    const char *signing_input;
    size_t signing_input_len;
    unsigned char *sig;
    size_t sig_len;
} gh_jwt_t;

/* Strictly decodes token (header checks included: alg allowed and not none,
 * crit, typ ignored). Size is checked first (TOO_LARGE), then shape and
 * JSON (MALFORMED, or TOO_LARGE for nesting), alg (BAD_ALG) and crit or
 * b64:false (UNSUPPORTED_CRIT). On GH_JWT_OK, out holds the parts; clear it
 * after. On failure out is left cleared. */
gh_jwt_status gh_jwt_decode(const char *token, size_t len, const gh_jwt_policy_t *pol,
                            gh_jwt_t *out);

/* Finds the key for the token (kid, alg and key type must agree; jku,
 * x5u, x5c and jwk headers are never used) and verifies the signature.
 * UNKNOWN_KID when no key fits, BAD_SIGNATURE when keys fit but none
 * verifies. */
gh_jwt_status gh_jwt_verify_signature(const gh_jwt_t *t, const gh_jwks_t *keys);

/* Checks exp/nbf/iat against now with the policy's skew, iss, aud and
 * required claims. Compares strings with explicit lengths. An absent iss
 * or aud that the policy checks is MISSING_CLAIM; one of the wrong type,
 * like a non-numeric exp/nbf/iat, is BAD_CLAIM. A JSON null counts as
 * absent for required_claims. */
gh_jwt_status gh_jwt_check_claims(const gh_jwt_t *t, const gh_jwt_policy_t *pol, double now);

/* All three in order; out is cleared on failure. */
gh_jwt_status gh_jwt_verify(const char *token, size_t len, const gh_jwt_policy_t *pol,
                            const gh_jwks_t *keys, double now, gh_jwt_t *out);

void gh_jwt_clear(gh_jwt_t *t);

/* Verifies sig over msg with key for alg (raw R||S for ECDSA, exact
 * length). The primitive under gh_jwt_verify_signature, exposed so
 * Wycheproof's vectors can reach it. Returns true when valid. */
bool gh_jws_verify(gh_jwt_alg alg, const gh_jwk_t *key, const unsigned char *msg, size_t msg_len,
                   const unsigned char *sig, size_t sig_len);

#endif
