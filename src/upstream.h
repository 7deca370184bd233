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
typedef struct gh_upstream_pool_s gh_upstream_pool_t;

/* The idle connections to one target of one upstream (by name and
 * address). A worker keeps them across reloads: every config generation
 * naming the same upstream and target shares the pool, so a reload does
 * not cost the upstream its keep-alive connections. */
typedef struct {
    const gh_target_conf_t *conf; /* &own */
    gh_target_conf_t own;         /* a copy: the pool outlives configs */
    char *upstream;               /* the upstream's name */
    gh_link_t idle;               /* most recently used first */
    unsigned nidle;
    unsigned refs;  /* generations using it; the last one closes the idle */
    gh_link_t link; /* in the worker's list of target pools */
} gh_target_pool_t;

/* One configured upstream as one config generation sees it. */
struct gh_upstream_pool_s {
    const gh_upstream_conf_t *conf;
    gh_target_pool_t **targets;
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
    bool busy; /* leased: counted as busy in the worker's metrics */
};

/* The pools of cfg's upstreams for one generation of worker w (an array
 * of cfg->nupstreams), sharing the worker's target pools of the same
 * upstream name and address. NULL on OOM. */
gh_upstream_pool_t *gh_upstream_pools_new(gh_worker_t *w, const gh_config_t *cfg);

/* Drops a generation's pools: target pools no generation uses any more
 * close their idle connections and go. */
void gh_upstream_pools_free(gh_upstream_pool_t *pools, const gh_config_t *cfg);

/* Closes every idle connection of the worker (draining). */
void gh_upstream_pools_close_idle(gh_worker_t *w);

/* Leases a connection to the next target of pool p: an idle pooled one
 * (connected set, ready now) unless fresh is set, or a new one whose
 * on_ready runs once connected. NULL when no connection can be started. */
gh_upconn_t *gh_upstream_lease(gh_worker_t *w, gh_upstream_pool_t *p, bool fresh, void *owner,
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
