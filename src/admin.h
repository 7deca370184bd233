/* The admin listener, on the main thread's loop (loopback by default):
 * GET /health, and POST /revoke, which adds a revocation to this
 * instance's list and, with Redis, to the shared one. One request per
 * connection; bodies up to 64 KiB. */
#ifndef GH_ADMIN_H
#define GH_ADMIN_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

typedef struct gh_admin_s gh_admin_t;

/* Listens on cfg->admin. Returns NULL with the reason in err. */
gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_config_t *cfg, char *err, size_t errlen);

/* Stops listening and closes its connections (the loop must run on). */
void gh_admin_stop(gh_admin_t *a);

#endif
