/* A token issuer as configured: what its tokens must say, where they are
 * found in a request, and the keys that verify them. */
#ifndef GH_ISSUER_H
#define GH_ISSUER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "claims.h"
#include "jwk.h"
#include "jwt.h"
#include "keysource.h"

typedef struct {
    char *name;
    char *realm; /* for WWW-Authenticate; defaults to the name */
    char *issuer;
    char **audiences;
    size_t *audience_lens;
    size_t naud;
    char **azps; /* authorized_party: azp must be one of these */
    size_t *azp_lens;
    size_t nazp;
    char **required;
    size_t nrequired;
    uint32_t algorithms; /* 0 until set: gh_issuer_finish derives it from the keys */
    double clock_skew;
    bool require_exp;
    size_t max_token;
    bool from_header; /* Authorization: Bearer */
    char *cookie;     /* cookie name, or NULL */
    char *query;      /* query parameter name, or NULL */
    gh_jwks_t keys;   /* local keys as loaded; gh_issuer_finish moves them to src */
    bool remote;      /* jwks_url or discovery: keys come from remote_conf */
    gh_keysource_conf_t remote_conf;
    gh_keysource_t *src;    /* built by gh_issuer_finish */
    gh_jwt_policy_t policy; /* points into the fields above */
    gh_role_paths_t roles;  /* where policies find roles (claims:has_role) */
} gh_issuer_t;

/* Fills defaults: Authorization header, 8 KiB tokens, exp required. */
void gh_issuer_init(gh_issuer_t *is, const char *name);

/* Loads the key source kind ("secret", "secret_file", "pem_file",
 * "jwks_file") from value (a file path for the *_file kinds, resolved by
 * the caller). Returns 0, or -1 with a reason in err. */
int gh_issuer_load_keys(gh_issuer_t *is, const char *kind, const char *value, char *err,
                        size_t errlen);

/* Checks the algorithms against the keys (each allowed algorithm needs a
 * key of its type; HMAC secrets at least as long as the hash; a remote
 * source defaults to RS256 and takes no HMAC algorithm), builds the key
 * source and the verification policy. Returns 0, or -1 with a reason. */
int gh_issuer_finish(gh_issuer_t *is, char *err, size_t errlen);

void gh_issuer_free(gh_issuer_t *is);

#endif
