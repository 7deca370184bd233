/* What the config loader's readers share (config.c, config_shared.c): the
 * state a failure needs to say file:line, and readers of typed fields that
 * report errors through it. Not for use outside the loader. */
#ifndef GH_CONFIG_READ_H
#define GH_CONFIG_READ_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    lua_State *L;
    const char *file; /* the file being read */
    char *src;        /* its text, for finding a key's line */
    char *err;
    size_t errlen;
    long from; /* where in src the table being read starts (a route's gh.route) */
} gh_cfg_ctx_t;

/* Writes "file:line: message" to c->err, the line being that of the first
 * key of keys found in the source; returns -1. */
int gh_cfg_fail(gh_cfg_ctx_t *c, const char *const *keys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuses any key of the table at idx not in allowed (typos are errors). */
int gh_cfg_keys(gh_cfg_ctx_t *c, int idx, const char *const *allowed, const char *const *where);

/* A number field into *out (kept when absent), within [min, max]. */
int gh_cfg_number(gh_cfg_ctx_t *c, int idx, const char *key, double min, double max, double *out,
                  const char *parent);

/* An optional string field: a malloc'd copy in *out, NULL when absent. */
int gh_cfg_string(gh_cfg_ctx_t *c, int idx, const char *key, char **out, const char *const *keys);

/* An optional boolean field (kept when absent). */
int gh_cfg_bool(gh_cfg_ctx_t *c, int idx, const char *key, bool *out, const char *const *keys);

typedef struct gh_config_s gh_config_t;

/* A whole file as a NUL-terminated string, or NULL with errno. */
char *gh_cfg_read_file(const char *path);

/* rel resolved against the config file's directory (unless absolute). */
void gh_cfg_resolve(const gh_config_t *cfg, const char *rel, char *out, size_t cap);
typedef struct gh_route_s gh_route_t;

/* redis, revocation, admin and rate_limit_keys (config_redis.c). */
int gh_cfg_shared_state(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg);
void gh_cfg_shared_state_free(gh_config_t *cfg);

/* A route's rate_limit table (after its auth is known). */
int gh_cfg_route_limit(gh_cfg_ctx_t *c, int idx, const gh_config_t *cfg, gh_route_t *r);

#endif
