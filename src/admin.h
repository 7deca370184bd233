/* The admin listener, on the main thread's loop (loopback by default):
 * GET /health, /ready, /metrics, /routes; POST /reload, and POST /revoke,
 * which adds a revocation to this instance's list and, with Redis, to the
 * shared one. With admin.token, every call but /health needs it as a
 * bearer token. One request per connection; bodies up to 64 KiB. */
#ifndef GH_ADMIN_H
#define GH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

typedef struct gh_admin_s gh_admin_t;

/* What the admin API asks of the server (main loop). */
typedef struct {
    void *ctx;
    /* The live config, or NULL before the gateway serves. */
    const gh_config_t *(*config)(void *ctx);
    /* Ready to serve? A JSON object saying so (or why not) in json. */
    bool (*ready)(void *ctx, char *json, size_t len);
    /* The live snapshot's generation and hash (0 and "" before serving). */
    uint64_t (*generation)(void *ctx, const char **hash);
    /* The Prometheus text (malloc'd), NULL on OOM. */
    char *(*metrics)(void *ctx, size_t *len);
    /* Asks for a reload: done(arg, ok, json) once it ended, unless the
     * returned handle is forgotten (gh_reload_forget) first. NULL when
     * done was called already. */
    void *(*reload)(void *ctx, void (*done)(void *arg, bool ok, const char *json), void *arg);
    void (*forget)(void *handle);
} gh_admin_ops_t;

/* Listens on cfg->admin (cfg: the config at start, for the address and
 * token; a reload cannot change them). Returns NULL with the reason in err. */
gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_config_t *cfg, const gh_admin_ops_t *ops,
                           char *err, size_t errlen);

/* Stops listening and closes its connections (the loop must run on). */
void gh_admin_stop(gh_admin_t *a);

#endif
