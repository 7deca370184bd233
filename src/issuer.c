#include "issuer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_FILE (1024 * 1024)

void gh_issuer_init(gh_issuer_t *is, const char *name)
{
    memset(is, 0, sizeof(*is));
    is->name = strdup(name);
    is->require_exp = true;
    is->max_token = 8192;
    is->from_header = true;
    gh_keysource_conf_defaults(&is->remote_conf);
}

/* Reads a whole key file (bounded); NULL with a reason in err. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_KEY_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_KEY_FILE + 1, f) : 0;
    fclose(f);
    if (!buf || n > MAX_KEY_FILE) {
        snprintf(err, errlen, "'%s' is larger than 1 MiB", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Appends one key to the issuer's set. */
static int add_key(gh_issuer_t *is, gh_jwk_t *k)
{
    gh_jwk_t *v = realloc(is->keys.keys, (is->keys.n + 1) * sizeof(*v));
    if (!v) return -1;
    is->keys.keys = v;
    v[is->keys.n++] = *k;
    return 0;
}

int gh_issuer_load_keys(gh_issuer_t *is, const char *kind, const char *value, char *err,
                        size_t errlen)
{
    gh_jwk_t k;
    size_t len = strlen(value);
    if (strcmp(kind, "secret") == 0) {
        if (gh_jwk_from_secret((const unsigned char *)value, len, &k) || add_key(is, &k))
            return snprintf(err, errlen, "out of memory"), -1;
        return 0;
    }
    char *text = slurp(value, &len, err, errlen);
    if (!text) return -1;
    int rc = -1;
    if (strcmp(kind, "secret_file") == 0) {
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
        rc = gh_jwk_from_secret((const unsigned char *)text, len, &k) || add_key(is, &k) ? -1 : 0;
        if (rc) snprintf(err, errlen, "out of memory");
    } else if (strcmp(kind, "pem_file") == 0) {
        rc = gh_jwk_from_pem(text, len, &k, err, errlen);
        if (!rc && add_key(is, &k)) rc = -1;
    } else if (strcmp(kind, "jwks_file") == 0) {
        rc = gh_jwks_parse(text, len, &is->keys, err, errlen);
        if (!rc && is->keys.n == 0) {
            snprintf(err, errlen, "'%s' holds no signature key we can use", value);
            rc = -1;
        }
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* The key type an algorithm needs, and for HMAC the minimum secret length. */
static gh_key_type alg_key_type(gh_jwt_alg a, size_t *min_secret)
{
    static const size_t hs[] = {32, 48, 64};
    *min_secret = a <= GH_ALG_HS512 ? hs[a - GH_ALG_HS256] : 0;
    if (a <= GH_ALG_HS512) return GH_KEY_OCT;
    if (a <= GH_ALG_PS512) return GH_KEY_RSA;
    if (a <= GH_ALG_ES512) return GH_KEY_EC;
    return GH_KEY_OKP;
}

/* True when some key can verify alg (type, EC curve, secret length). */
static bool alg_has_key(const gh_issuer_t *is, gh_jwt_alg a)
{
    static const int curves[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
    size_t min_secret;
    gh_key_type t = alg_key_type(a, &min_secret);
    for (size_t i = 0; i < is->keys.n; i++) {
        const gh_jwk_t *k = &is->keys.keys[i];
        if (k->type != t) continue;
        if (t == GH_KEY_OCT && k->secret_len < min_secret) continue;
        if (t == GH_KEY_EC && k->ec_nid != curves[a - GH_ALG_ES256]) continue;
        return true;
    }
    return false;
}

/* Why no key fits alg, for the load-time error. */
static void missing_key(gh_jwt_alg a, char *err, size_t errlen)
{
    static const char *need[] = {"an RSA key", "an EC P-256 key", "an EC P-384 key",
                                 "an EC P-521 key", "an Ed25519 key"};
    size_t min_secret;
    gh_key_type t = alg_key_type(a, &min_secret);
    if (t == GH_KEY_OCT)
        snprintf(err, errlen, "algorithm %s needs an HMAC secret of at least %zu bytes",
                 gh_jwt_alg_name(a), min_secret);
    else
        snprintf(err, errlen, "algorithm %s needs %s, and the issuer's keys have none",
                 gh_jwt_alg_name(a),
                 t == GH_KEY_RSA   ? need[0]
                 : t == GH_KEY_OKP ? need[4]
                                   : need[1 + (a - GH_ALG_ES256)]);
}

/* A remote source: its keys are unknown until fetched, so the algorithms
 * are what the operator allowed (RS256 by default, as Spring does). */
static int finish_remote(gh_issuer_t *is, char *err, size_t errlen)
{
    if (!is->algorithms) is->algorithms = 1u << GH_ALG_RS256;
    for (int a = GH_ALG_HS256; a <= GH_ALG_HS512; a++) {
        if (is->algorithms & (1u << a)) {
            snprintf(err, errlen,
                     "issuer '%s': %s needs a shared secret, which a remote key set cannot "
                     "carry; use secret or secret_file",
                     is->name, gh_jwt_alg_name((gh_jwt_alg)a));
            return -1;
        }
    }
    if (is->remote_conf.refresh_min > is->remote_conf.refresh_max) {
        snprintf(err, errlen, "issuer '%s': jwks.refresh_min is above jwks.refresh_max", is->name);
        return -1;
    }
    is->remote_conf.algorithms = is->algorithms;
    if (is->issuer && !is->remote_conf.issuer) is->remote_conf.issuer = strdup(is->issuer);
    is->src = gh_keysource_remote(is->name, &is->remote_conf);
    if (!is->src) return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

int gh_issuer_finish(gh_issuer_t *is, char *err, size_t errlen)
{
    if (is->remote) {
        if (finish_remote(is, err, errlen)) return -1;
    } else if (is->keys.n == 0) {
        snprintf(err, errlen,
                 "issuer '%s' needs a key source: secret, secret_file, pem_file, jwks_file, "
                 "jwks_url or discovery",
                 is->name);
        return -1;
    }
    if (!is->from_header && !is->cookie && !is->query) {
        snprintf(err, errlen, "issuer '%s' reads its token from nowhere", is->name);
        return -1;
    }
    bool derive = is->algorithms == 0;
    for (int a = 0; !is->remote && a < GH_ALG_COUNT; a++) {
        bool has = alg_has_key(is, (gh_jwt_alg)a);
        if (derive && has) is->algorithms |= 1u << a;
        if (!derive && (is->algorithms & (1u << a)) && !has) {
            missing_key((gh_jwt_alg)a, err, errlen);
            return -1;
        }
    }
    if (is->algorithms == 0) { /* only a secret too short for any HS* */
        missing_key(GH_ALG_HS256, err, errlen);
        return -1;
    }
    if (!is->src) is->src = gh_keysource_local(&is->keys);
    if (!is->src) return snprintf(err, errlen, "out of memory"), -1;
    gh_jwt_policy_t *p = &is->policy;
    p->issuer = is->issuer;
    p->issuer_len = is->issuer ? strlen(is->issuer) : 0;
    p->audiences = (const char *const *)is->audiences;
    p->audience_lens = is->audience_lens;
    p->naud = is->naud;
    p->azps = (const char *const *)is->azps;
    p->azp_lens = is->azp_lens;
    p->nazp = is->nazp;
    p->algorithms = is->algorithms;
    p->clock_skew = is->clock_skew;
    p->require_exp = is->require_exp;
    p->required_claims = (const char *const *)is->required;
    p->nrequired = is->nrequired;
    p->max_token = is->max_token;
    p->max_depth = 16;
    if (!is->realm) is->realm = strdup(is->name);
    return 0;
}

void gh_issuer_free(gh_issuer_t *is)
{
    gh_role_paths_free(&is->roles);
    for (size_t i = 0; i < is->naud; i++) free(is->audiences[i]);
    for (size_t i = 0; i < is->nrequired; i++) free(is->required[i]);
    for (size_t i = 0; i < is->nazp; i++) free(is->azps[i]);
    free(is->azps);
    free(is->azp_lens);
    free(is->audiences);
    free(is->audience_lens);
    free(is->required);
    free(is->name), free(is->realm), free(is->issuer), free(is->cookie), free(is->query);
    gh_jwks_free(&is->keys);
    gh_keysource_free(is->src);
    if (!is->src) { /* never handed over */
        free(is->remote_conf.jwks_url);
        free(is->remote_conf.discovery_url);
        free(is->remote_conf.issuer);
        free(is->remote_conf.ca_file);
    }
}
