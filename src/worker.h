/* One worker thread: its own uv loop, SO_REUSEPORT listeners, buffer pool,
 * upstream pools and access log. Nothing on the request path is shared. */
#ifndef GH_WORKER_H
#define GH_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "list.h"
#include "log.h"

typedef struct gh_upstream_pool_s gh_upstream_pool_t;

typedef struct gh_worker_s {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    const gh_config_t *cfg;
    uv_tcp_t *listeners;
    size_t nlisteners;
    int *listen_fds; /* bound by the main thread, opened on this loop */
    gh_buf_pool_t *pool;
    gh_access_log_t *alog;
    gh_upstream_pool_t *upstreams;   /* one per cfg->upstreams entry */
    struct gh_token_cache_s *tokens; /* verified tokens */
    struct gh_lua_vm_s *lua;         /* route policies; NULL when no route has Lua code */
    struct gh_redis_s *redis;        /* rate limits and gh.revoke; NULL without redis */
    struct gh_limit_batch_s *limits; /* global rate-limit decisions for the next batch */
    uv_async_t wakeup;               /* main thread -> worker: drain or stop */
    uv_mutex_t wakeup_lock;          /* guards wakeup against its closing */
    int wakeup_closed;
    uv_timer_t flush_timer;              /* access-log flush */
    uv_timer_t drain_timer;              /* drain deadline */
    gh_link_t conns;                     /* every downstream connection */
    gh_link_t deadlines[GH_TIMER_KINDS]; /* per gh_conn_timer_t kind, in deadline order */
    uv_timer_t tick;                     /* expires connection deadlines */
    size_t nconns;
    int drain_requested;     /* written by main thread: 1 drain, 2 stop now */
    uv_async_t *exit_notify; /* main thread's: sent when this worker's loop ended */
    int exited;
    int started;
    int draining;
    uint64_t rng[2];  /* request-id generator state */
    gh_link_t parked; /* requests waiting for a key fetch (auth.c) */
    int keys_event;   /* set by the main thread: a key fetch ended */
} gh_worker_t;

/* Creates the listening sockets for cfg (SO_REUSEPORT, one set per worker)
 * and the worker's Lua VM. Returns 0, or -1 with a message in err. */
int gh_worker_bind(gh_worker_t *w, char *err, size_t errlen);

/* Starts the worker thread. Returns 0 or a libuv error. */
int gh_worker_start(gh_worker_t *w);

/* Asks the worker to drain (finish in-flight requests, then exit) or, with
 * now set, to close everything at once. Thread-safe. */
void gh_worker_stop(gh_worker_t *w, int now);

/* Tells the worker a key fetch ended, so requests waiting on it resume.
 * Thread-safe. */
void gh_worker_keys_changed(gh_worker_t *w);

/* True once the worker's loop has ended (thread-safe). */
int gh_worker_exited(gh_worker_t *w);

/* Waits for the thread and frees what the worker owns. */
void gh_worker_join(gh_worker_t *w);

/* Called by conn.c when a connection goes away, so a draining worker can
 * finish once the last one does. */
void gh_worker_conn_gone(gh_worker_t *w);

/* Writes a fresh 32-hex-digit request id (and a NUL) into out. */
void gh_worker_request_id(gh_worker_t *w, char out[33]);

#endif
