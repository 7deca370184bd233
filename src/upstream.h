/* Per-worker upstream connection pools: connect, lease, keep idle, expire. */
#ifndef GH_UPSTREAM_H
#define GH_UPSTREAM_H

#include <llhttp.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "list.h"
#include "stream.h"

typedef struct gh_worker_s gh_worker_t;
typedef struct gh_upconn_s gh_upconn_t;

typedef struct {
    const gh_target_conf_t *conf;
    gh_link_t idle; /* most recently used first */
    unsigned nidle;
} gh_target_pool_t;

struct gh_upstream_pool_s {
    const gh_upstream_conf_t *conf;
    gh_target_pool_t *targets;
    unsigned rr; /* round-robin cursor; balancing proper comes later */
};

/* status 0: connected; otherwise a libuv error (UV_ETIMEDOUT for the
 * connect timeout). */
typedef void (*gh_upconn_ready_cb)(gh_upconn_t *u, int status);
typedef void (*gh_upconn_timeout_cb)(gh_upconn_t *u);

struct gh_upconn_s {
    gh_stream_t s;
    uv_timer_t timer;
    uv_connect_t connect;
    gh_link_t link;
    gh_worker_t *w;
    gh_target_pool_t *tp;
    gh_upstream_conf_t const *conf;
    llhttp_t parser;
    void *owner; /* the proxy leasing it */
    gh_upconn_ready_cb on_ready;
    gh_upconn_timeout_cb on_timeout;
    bool idle, reused, connected, closing;
};

/* Builds the worker's pools (one per configured upstream). Returns 0 or -1. */
int gh_upstream_pools_init(gh_worker_t *w);

/* Closes every idle connection; the pools are freed with
 * gh_upstream_pools_free once the loop has run the close callbacks. */
void gh_upstream_pools_close_idle(gh_worker_t *w);
void gh_upstream_pools_free(gh_worker_t *w);

/* Leases a connection to the next target of upstream idx: an idle pooled
 * one (connected set, ready now) unless fresh is set, or a new one whose
 * on_ready runs once connected. NULL when no connection can be started. */
gh_upconn_t *gh_upstream_lease(gh_worker_t *w, int idx, bool fresh, void *owner,
                               gh_upconn_ready_cb on_ready);

/* Returns a clean connection (no bytes in flight either way) to its pool,
 * or closes it when the pool is full or the worker is draining. */
void gh_upstream_release(gh_upconn_t *u);

/* Closes the connection; it is freed once libuv lets go of it. */
void gh_upstream_close(gh_upconn_t *u);

/* (Re)arms the connection's timer: on_timeout runs after seconds. */
void gh_upstream_timer(gh_upconn_t *u, double seconds);
void gh_upstream_timer_stop(gh_upconn_t *u);

#endif
