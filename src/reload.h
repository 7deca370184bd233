/* Hot reload, on the main thread's loop: loads the config file again into
 * a complete new snapshot (config, routes, issuers and keys, upstreams, a
 * Lua VM per worker, optionally the policy tests run against it) on a
 * libuv pool thread, and only then hands each worker its generation. A
 * config that fails is refused whole; the live one keeps serving. One
 * reload runs at a time; asking during one runs one more after it. */
#ifndef GH_RELOAD_H
#define GH_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "keysource.h"
#include "snapshot.h"
#include "worker.h"

/* How a reload ended: ok, and a JSON object describing it (the new
 * generation and hash, or the error with file:line). */
typedef void (*gh_reload_done_fn)(void *arg, bool ok, const char *json);

typedef struct gh_reload_waiter_s gh_reload_waiter_t;

typedef struct {
    uint64_t ok, failed; /* reloads, since start */
    double last_ok;      /* unix time of the last successful load (startup too) */
    char last_error[1024];
} gh_reload_stats_t;

/* Starts managing reloads of path for the workers, with cur (taken) as the
 * live snapshot. keys_notify is what every remote key source started on
 * reload calls when a fetch ends. Returns 0, or a libuv error. */
int gh_reload_init(uv_loop_t *loop, const char *path, gh_snapshot_t *cur, gh_worker_t *workers,
                   int n, gh_keys_notify_fn keys_notify, void *keys_arg);

/* Asks for a reload (why: "SIGHUP", "admin", "watch", for the log). done,
 * if not NULL, is called on the main loop once the reload ended; the
 * returned waiter can be forgotten before that (its caller went away). */
gh_reload_waiter_t *gh_reload_request(const char *why, gh_reload_done_fn done, void *arg);
void gh_reload_forget(gh_reload_waiter_t *w);

/* The live snapshot (main thread). */
gh_snapshot_t *gh_reload_current(void);

const gh_reload_stats_t *gh_reload_stats(void);

/* True while a reload is being built or swapped in. */
bool gh_reload_busy(void);

/* Refuses reloads from now on (draining), stops the key sources of every
 * snapshot still alive and closes the handles; the loop can then end. */
void gh_reload_stop(void);

/* After the workers have been joined: frees what is left. */
void gh_reload_free(void);

#endif
