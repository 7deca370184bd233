#include "upstream.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "worker.h"

/* The worker's pool for target t of upstream name, found or made. */
static gh_target_pool_t *target_pool(gh_worker_t *w, const char *name, const gh_target_conf_t *t)
{
    for (gh_link_t *l = w->targets.next; l != &w->targets; l = l->next) {
        gh_target_pool_t *tp = gh_container_of(l, gh_target_pool_t, link);
        if (strcmp(tp->upstream, name) == 0 && strcmp(tp->own.text, t->text) == 0 &&
            gh_config_same_addr(&tp->own.addr, &t->addr)) {
            tp->refs++;
            return tp;
        }
    }
    gh_target_pool_t *tp = calloc(1, sizeof(*tp));
    if (!tp) return NULL;
    tp->own.text = strdup(t->text);
    tp->own.addr = t->addr;
    tp->upstream = strdup(name);
    if (!tp->own.text || !tp->upstream) {
        free(tp->own.text);
        free(tp->upstream);
        free(tp);
        return NULL;
    }
    tp->conf = &tp->own;
    tp->refs = 1;
    gh_list_init(&tp->idle);
    gh_list_push(&w->targets, &tp->link);
    return tp;
}

static void close_idle(gh_target_pool_t *tp)
{
    while (!gh_list_empty(&tp->idle))
        gh_upstream_close(gh_container_of(tp->idle.next, gh_upconn_t, link));
}

static void target_pool_release(gh_target_pool_t *tp)
{
    if (!tp || --tp->refs > 0) return;
    close_idle(tp); /* a closing connection no longer refers to its pool */
    gh_list_remove(&tp->link);
    free(tp->own.text);
    free(tp->upstream);
    free(tp);
}

gh_upstream_pool_t *gh_upstream_pools_new(gh_worker_t *w, const gh_config_t *cfg)
{
    gh_upstream_pool_t *pools = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*pools));
    if (!pools) return NULL;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gh_upstream_pool_t *p = &pools[i];
        p->conf = &cfg->upstreams[i];
        p->targets = calloc(p->conf->ntargets, sizeof(*p->targets));
        for (size_t k = 0; p->targets && k < p->conf->ntargets; k++)
            if (!(p->targets[k] = target_pool(w, p->conf->name, &p->conf->targets[k]))) break;
        if (!p->targets || !p->targets[p->conf->ntargets - 1]) {
            gh_upstream_pools_free(pools, cfg);
            return NULL;
        }
    }
    return pools;
}

void gh_upstream_pools_free(gh_upstream_pool_t *pools, const gh_config_t *cfg)
{
    for (size_t i = 0; pools && i < cfg->nupstreams; i++) {
        for (size_t k = 0; pools[i].targets && k < pools[i].conf->ntargets; k++)
            target_pool_release(pools[i].targets[k]);
        free(pools[i].targets);
    }
    free(pools);
}

void gh_upstream_pools_close_idle(gh_worker_t *w)
{
    for (gh_link_t *l = w->targets.next; l != &w->targets; l = l->next)
        close_idle(gh_container_of(l, gh_target_pool_t, link));
}

static void timer_cb(uv_timer_t *t)
{
    gh_upconn_t *u = t->data;
    if (u->idle) {
        gh_upstream_close(u); /* kept idle long enough */
    } else if (!u->connected) {
        if (u->on_ready) u->on_ready(u, UV_ETIMEDOUT);
    } else if (u->on_timeout) {
        u->on_timeout(u);
    }
}

void gh_upstream_timer(gh_upconn_t *u, double seconds)
{
    uv_timer_start(&u->timer, timer_cb, (uint64_t)(seconds * 1000 + 0.5), 0);
}

void gh_upstream_timer_stop(gh_upconn_t *u)
{
    uv_timer_stop(&u->timer);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_stream_closed(gh_stream_t *s)
{
    gh_upconn_t *u = s->owner;
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

/* Pool use in the worker's metrics: busy (leased) and idle deltas. */
static void count(gh_upconn_t *u, int busy, int idle)
{
    if (u->w->metrics) gh_metrics_upstream_pool(u->w->metrics, u->tp->upstream, busy, idle);
}

void gh_upstream_close(gh_upconn_t *u)
{
    if (u->closing) return;
    u->closing = true;
    if (u->idle) {
        gh_list_remove(&u->link);
        u->tp->nidle--;
        u->idle = false;
        count(u, 0, -1);
    } else if (u->busy) {
        u->busy = false;
        count(u, -1, 0);
    }
    uv_timer_stop(&u->timer);
    gh_stream_close(&u->s);
}

/* An idle connection must stay silent: any byte or EOF retires it. */
static void idle_read(gh_stream_t *s, ssize_t nread, gh_buf_t *buf)
{
    (void)nread, (void)buf;
    gh_upstream_close(s->owner);
}

static void connect_cb(uv_connect_t *req, int status)
{
    gh_upconn_t *u = req->data;
    if (u->closing) return; /* cancelled by close */
    uv_timer_stop(&u->timer);
    if (status == 0) u->connected = true;
    if (status == 0) uv_tcp_nodelay(&u->s.tcp, 1);
    if (u->on_ready) u->on_ready(u, status);
}

static gh_upconn_t *upconn_new(gh_worker_t *w, gh_upstream_pool_t *p, gh_target_pool_t *tp)
{
    gh_upconn_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    if (gh_stream_init(&u->s, &w->loop, w->pool, u) != 0) {
        free(u);
        return NULL;
    }
    uv_timer_init(&w->loop, &u->timer);
    u->timer.data = u;
    u->w = w;
    u->tp = tp;
    u->conf = p->conf;
    u->s.on_close = on_stream_closed;
    gh_list_init(&u->link);
    u->connect.data = u;
    int rc = uv_tcp_connect(&u->connect, &u->s.tcp, (const struct sockaddr *)&tp->conf->addr,
                            connect_cb);
    if (rc != 0) {
        gh_log(GH_LOG_WARN, "upstream %s: connect: %s", tp->conf->text, uv_strerror(rc));
        u->closing = true;
        gh_stream_close(&u->s);
        return NULL;
    }
    gh_upstream_timer(u, p->conf->connect_timeout);
    return u;
}

gh_upconn_t *gh_upstream_lease(gh_worker_t *w, gh_upstream_pool_t *p, bool fresh, void *owner,
                               gh_upconn_ready_cb on_ready)
{
    gh_target_pool_t *tp = p->targets[p->rr++ % p->conf->ntargets];
    gh_upconn_t *u = NULL;
    if (!fresh && !gh_list_empty(&tp->idle)) {
        u = gh_container_of(tp->idle.next, gh_upconn_t, link);
        gh_list_remove(&u->link);
        tp->nidle--;
        u->idle = false;
        u->reused = true;
        u->conf = p->conf; /* this generation's timeouts and keepalive */
        uv_timer_stop(&u->timer);
        count(u, 0, -1);
    } else {
        u = upconn_new(w, p, tp);
        if (!u) return NULL;
    }
    u->busy = true;
    count(u, 1, 0);
    u->owner = owner;
    u->on_ready = on_ready;
    return u;
}

void gh_upstream_release(gh_upconn_t *u)
{
    gh_target_pool_t *tp = u->tp;
    u->owner = NULL;
    u->on_ready = NULL;
    u->on_timeout = NULL;
    u->s.on_write = NULL;
    if (u->busy) {
        u->busy = false;
        count(u, -1, 0);
    }
    if (u->closing || tp->nidle >= u->conf->keepalive || u->w->draining) {
        gh_upstream_close(u);
        return;
    }
    u->s.on_read = idle_read; /* still reading: no epoll change per request */
    if (gh_stream_read_start(&u->s) != 0) {
        gh_upstream_close(u);
        return;
    }
    u->idle = true;
    gh_list_push(&tp->idle, &u->link);
    tp->nidle++;
    count(u, 0, 1);
    gh_upstream_timer(u, u->conf->keepalive_timeout);
}
