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
#include "snapshot.h"

typedef struct gh_upstream_pool_s gh_upstream_pool_t;
typedef struct gh_worker_s gh_worker_t;

/* A worker's generation: what one config snapshot needs on one worker
 * (its Lua VM, upstream pools and verified-token cache). A request holds
 * the generation it started in until it ends, so a reload never changes
 * the config under a request; the last request of a replaced generation
 * frees it. Worker-thread only, except while being built. */
typedef struct gh_gen_s {
    gh_snapshot_t *snap;
    const gh_config_t *cfg;
    struct gh_lua_vm_s *lua;       /* NULL when no route has Lua code */
    gh_upstream_pool_t *upstreams; /* one per cfg->upstreams entry */
    struct gh_token_cache_s *tokens;
    unsigned refs;   /* requests holding it, plus one while current */
    gh_worker_t *w;  /* set once swapped in: its last release frees it there */
    uv_work_t close; /* closes the VM on a pool thread, off the request path */
} gh_gen_t;

/* A listening socket of the worker's (one per listen address). */
typedef struct {
    uv_tcp_t tcp;
    gh_worker_t *w;
    struct sockaddr_storage addr;
    gh_link_t link;
} gh_listener_t;

/* What a reload hands a worker: its new generation and the sockets of the
 * listen addresses the new config adds (-1 for those already open). */
typedef struct {
    gh_gen_t *gen;
    int *fds; /* by gen->cfg->listen index */
} gh_swap_t;

struct gh_worker_s {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    const gh_config_t *cfg;  /* the current generation's */
    gh_gen_t *gen;           /* the current generation: new requests take it */
    gh_link_t listeners;     /* gh_listener_t */
    gh_link_t targets;       /* gh_target_pool_t, shared by generations */
    gh_swap_t swap;          /* main thread -> worker, under wakeup_lock */
    uint64_t swapped;        /* atomic: generation of the last swap done */
    uv_async_t *swap_notify; /* main thread's: sent when a swap is done */
    int *listen_fds;         /* bound by the main thread, opened on this loop */
    gh_buf_pool_t *pool;
    gh_access_log_t *alog;
    struct gh_redis_s *redis;        /* rate limits and gh.revoke; NULL without redis */
    struct gh_limit_batch_s *limits; /* global rate-limit decisions for the next batch */
    struct gh_metrics_s *metrics;
    uv_async_t wakeup;      /* main thread -> worker: drain or stop */
    uv_mutex_t wakeup_lock; /* guards wakeup against its closing */
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
    int reopen_event; /* set by the main thread: reopen the access log (SIGUSR1) */
};

/* Creates the listening sockets for snap's config (SO_REUSEPORT, one set
 * per worker) and the worker's first generation. Returns 0, or -1 with a
 * message in err. */
int gh_worker_bind(gh_worker_t *w, gh_snapshot_t *snap, char *err, size_t errlen);

/* Runs fn(arg) on the calling (pool) thread at nice 10: building or
 * closing a configuration under load then takes longer rather than taking
 * CPU from the workers' requests. (Not SCHED_IDLE, which measured better:
 * without CAP_SYS_NICE a thread cannot leave it, nor start a child that
 * does.) */
void gh_worker_run_niced(void (*fn)(void *), void *arg);

/* One SO_REUSEPORT listening socket for l (main thread). Returns the fd,
 * or -1 with the reason in err. */
int gh_worker_listen_socket(const gh_listen_conf_t *l, char *err, size_t errlen);

/* A generation of snap for a worker, with its Lua VM built (NULL when no
 * route needs one) and one reference for being current; the worker adds
 * the upstream pools when it swaps it in. NULL with err. */
gh_gen_t *gh_gen_new(gh_snapshot_t *snap, char *err, size_t errlen);

/* Frees a generation never handed to a worker. */
void gh_gen_discard(gh_gen_t *g);

/* Hands the worker its next generation and new listen sockets (the fds
 * array is taken). It swaps them in on its own loop and then sends
 * swap_notify, with w->swapped set to the snapshot's generation.
 * Thread-safe. */
void gh_worker_swap(gh_worker_t *w, gh_gen_t *g, int *fds);

/* A request's hold on the current generation, and its end. */
gh_gen_t *gh_gen_acquire(gh_worker_t *w);
void gh_gen_release(gh_gen_t *g);

/* Starts the worker thread. Returns 0 or a libuv error. */
int gh_worker_start(gh_worker_t *w);

/* Asks the worker to drain (finish in-flight requests, then exit) or, with
 * now set, to close everything at once. Thread-safe. */
void gh_worker_stop(gh_worker_t *w, int now);

/* Tells the worker a key fetch ended, so requests waiting on it resume.
 * Thread-safe. */
void gh_worker_keys_changed(gh_worker_t *w);

/* Asks the worker to reopen its access log (after logrotate). Thread-safe. */
void gh_worker_reopen_logs(gh_worker_t *w);

/* True once the worker's loop has ended (thread-safe). */
int gh_worker_exited(gh_worker_t *w);

/* Waits for the thread and frees what the worker owns. */
void gh_worker_join(gh_worker_t *w);

/* Called by conn.c when a connection goes away, so a draining worker can
 * finish once the last one does. */
void gh_worker_conn_gone(gh_worker_t *w);

/* Writes a fresh 32-hex-digit request id (and a NUL) into out. */
void gh_worker_request_id(gh_worker_t *w, char out[33]);

/* Writes nhex random lowercase hex digits (and a NUL) into out, from the
 * worker's fast generator: for ids, not secrets. */
void gh_worker_random_hex(gh_worker_t *w, char *out, size_t nhex);

#endif
