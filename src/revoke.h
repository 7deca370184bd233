/* Token revocation: a deny-list of jti values (each kept until its token
 * expires) and "not before" times per subject (sign-out-everywhere), held
 * by the process for every worker to check without a Redis round trip.
 * With Redis configured, the main loop keeps the list in step: it loads
 * the whole list when its subscription starts, applies each published
 * revocation as it comes, and checks a version counter every poll
 * seconds in case a message was lost. */
#ifndef GH_REVOKE_H
#define GH_REVOKE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "redis.h"

typedef enum {
    GH_REVOKE_OK,      /* not revoked (or the list is unknown and on_error = "allow") */
    GH_REVOKE_REVOKED, /* its jti is listed, or its sub signed out after it was issued */
    GH_REVOKE_UNKNOWN  /* no usable list and on_error = "deny" */
} gh_revoke_status;

typedef enum { GH_REVOKE_JTI, GH_REVOKE_SUB } gh_revoke_kind;

/* Takes the revocation settings of cfg (before the workers start). */
void gh_revoke_configure(const gh_config_t *cfg);

/* Checks verified claims at wall-clock time now. Thread-safe. */
gh_revoke_status gh_revoke_check(const json_t *claims, double now);

/* Adds a revocation to this process's list: a jti until t (its exp), or a
 * subject's tokens issued before t. Returns 0, or -1 when the list is full
 * (GH_REVOKE_MAX entries) or out of memory. Thread-safe. */
int gh_revoke_add(gh_revoke_kind kind, const char *id, size_t len, int64_t t);

/* Entries now held (both kinds), for tests and logs. */
size_t gh_revoke_count(void);

/* Stores a revocation in Redis through rd (atomically: add, prune expired
 * entries, bump the version, publish); gh_redis_eval's contract. */
int gh_revoke_store(gh_redis_t *rd, const gh_config_t *cfg, gh_revoke_kind kind, const char *id,
                    size_t len, int64_t t, gh_redis_cb cb, void *arg, gh_redis_op_t **op,
                    const char **err);

/* Starts keeping the list in step with Redis on loop (the main thread's),
 * and pruning expired entries. Returns 0 or -1 (OOM). */
int gh_revoke_sync_start(uv_loop_t *loop, const gh_config_t *cfg);

/* The main loop's Redis client (for the admin endpoint), or NULL. */
gh_redis_t *gh_revoke_redis(void);

/* Stops syncing; the loop must run on to close the handles. */
void gh_revoke_sync_stop(void);

/* Drops every entry (tests). */
void gh_revoke_reset(void);

#endif
