#include "worker.h"

#include "lua_vm.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "limiter.h"
#include "metrics.h"
#include "redis.h"
#include "token_cache.h"
#include "upstream.h"

#define BACKLOG      4096
#define LOG_FLUSH_MS 200
#define TICK_MS      50 /* resolution of connection timeouts */

/* One listening socket with SO_REUSEPORT, so each worker accepts on its own
 * and the kernel spreads connections. Returns the fd or -1 with err. */
int gh_worker_listen_socket(const gh_listen_conf_t *l, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        (sa->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
        bind(fd, sa, len) || listen(fd, BACKLOG)) {
        snprintf(err, errlen, "listen %s: %s", l->text, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

gh_gen_t *gh_gen_new(gh_snapshot_t *snap, char *err, size_t errlen)
{
    const gh_config_t *cfg = snap->cfg;
    gh_gen_t *g = calloc(1, sizeof(*g));
    if (!g) return snprintf(err, errlen, "out of memory"), NULL;
    g->snap = gh_snapshot_ref(snap);
    g->cfg = cfg;
    g->refs = 1;
    bool lua = false;
    for (size_t i = 0; i < gh_router_count(cfg->router); i++) {
        const gh_route_t *rt = gh_router_at(cfg->router, i);
        lua = lua || rt->policy || rt->on_response;
    }
    if ((lua && !(g->lua = gh_lua_vm_new(cfg, err, errlen))) ||
        !(g->tokens = gh_token_cache_new(cfg->token_cache))) {
        if (!lua || g->lua) snprintf(err, errlen, "out of memory");
        gh_gen_discard(g);
        return NULL;
    }
    return g;
}

void gh_gen_discard(gh_gen_t *g)
{
    if (!g) return;
    gh_upstream_pools_free(g->upstreams, g->cfg);
    gh_token_cache_free(g->tokens);
    gh_lua_vm_free(g->lua);
    gh_snapshot_release(g->snap);
    free(g);
}

gh_gen_t *gh_gen_acquire(gh_worker_t *w)
{
    w->gen->refs++;
    return w->gen;
}

void gh_worker_run_niced(void (*fn)(void *), void *arg)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    int nice = getpriority(PRIO_PROCESS, tid);
    setpriority(PRIO_PROCESS, tid, 10);
    fn(arg);
    setpriority(PRIO_PROCESS, tid,
                nice); /* refused without CAP_SYS_NICE: pool work is all background */
}

static void free_vm(void *arg)
{
    gh_gen_t *g = arg;
    gh_lua_vm_free(g->lua);
    g->lua = NULL;
}

/* On a pool thread: closing a VM takes a millisecond or two, which a
 * worker would otherwise take from the requests it is serving. */
static void close_vm(uv_work_t *work)
{
    gh_worker_run_niced(free_vm, work->data);
}

static void vm_closed(uv_work_t *work, int status)
{
    (void)status;
    gh_gen_discard(work->data);
}

void gh_gen_release(gh_gen_t *g)
{
    if (!g || --g->refs > 0) return;
    gh_worker_t *w = g->w;
    if (g->lua && w && !__atomic_load_n(&w->exited, __ATOMIC_ACQUIRE)) {
        gh_lua_vm_detach(g->lua);
        g->close.data = g;
        if (uv_queue_work(&w->loop, &g->close, close_vm, vm_closed) == 0) return;
    }
    gh_gen_discard(g);
}

int gh_worker_bind(gh_worker_t *w, gh_snapshot_t *snap, char *err, size_t errlen)
{
    const gh_config_t *cfg = snap->cfg;
    w->cfg = cfg;
    gh_list_init(&w->listeners);
    gh_list_init(&w->targets);
    w->listen_fds = calloc(cfg->nlisten, sizeof(int));
    if (!w->listen_fds) return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < cfg->nlisten; i++) w->listen_fds[i] = -1;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        w->listen_fds[i] = gh_worker_listen_socket(&cfg->listen[i], err, errlen);
        if (w->listen_fds[i] < 0) return -1;
    }
    if (!(w->gen = gh_gen_new(snap, err, errlen))) return -1;
    w->gen->w = w;
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    gh_worker_t *w = ((gh_listener_t *)listener->data)->w;
    if (status != 0 || w->draining) return;
    gh_conn_accept(w, listener);
}

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void close_listener(gh_listener_t *ls)
{
    gh_list_remove(&ls->link);
    uv_close((uv_handle_t *)&ls->tcp, listener_closed);
}

/* Starts accepting on a socket bound for l; the listener owns the fd once
 * *fd is set to -1. Returns 0 or a libuv error. */
static int open_listener(gh_worker_t *w, int *fd, const gh_listen_conf_t *l)
{
    gh_listener_t *ls = calloc(1, sizeof(*ls));
    if (!ls) return UV_ENOMEM;
    int rc = uv_tcp_init(&w->loop, &ls->tcp);
    if (rc) {
        free(ls);
        return rc;
    }
    ls->w = w;
    ls->addr = l->addr;
    ls->tcp.data = ls;
    gh_list_push_tail(&w->listeners, &ls->link);
    rc = uv_tcp_open(&ls->tcp, *fd);
    if (rc == 0) *fd = -1;
    if (rc == 0) rc = uv_listen((uv_stream_t *)&ls->tcp, BACKLOG, on_connection);
    if (rc) close_listener(ls);
    return rc;
}

/* Once the last connection is gone, idle upstream connections go too;
 * with nothing else holding it (the timers and wakeup are unreferenced),
 * the loop then ends by itself. */
static void maybe_exit(gh_worker_t *w)
{
    if (!w->draining || w->nconns > 0) return;
    gh_upstream_pools_close_idle(w);
    uv_timer_stop(&w->drain_timer);
}

void gh_worker_conn_gone(gh_worker_t *w)
{
    w->nconns--;
    if (w->metrics) gh_metrics_conns(w->metrics, -1);
    maybe_exit(w);
}

static void drain_deadline(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    for (gh_link_t *l = w->conns.next; l != &w->conns; l = l->next)
        gh_conn_close(gh_container_of(l, gh_conn_t, link), false);
}

/* Stops accepting and lets in-flight requests finish, up to drain_timeout. */
static void begin_drain(gh_worker_t *w, int now)
{
    if (!w->draining) {
        w->draining = 1;
        while (!gh_list_empty(&w->listeners))
            close_listener(gh_container_of(w->listeners.next, gh_listener_t, link));
        gh_link_t *l = w->conns.next;
        while (l != &w->conns) {
            gh_link_t *next = l->next;
            gh_conn_drain(gh_container_of(l, gh_conn_t, link));
            l = next;
        }
        gh_upstream_pools_close_idle(w);
        uv_timer_start(&w->drain_timer, drain_deadline,
                       (uint64_t)(w->cfg->limits.drain_timeout * 1000), 0);
    }
    if (now) drain_deadline(&w->drain_timer);
    maybe_exit(w);
}

/* Swaps in the generation the main thread handed over: listen addresses
 * the new config drops stop accepting, new ones start; requests from now
 * on take the new generation; the old one goes with its last request. */
static void swap_in(gh_worker_t *w)
{
    uv_mutex_lock(&w->wakeup_lock);
    gh_swap_t sw = w->swap;
    w->swap = (gh_swap_t){0};
    uv_mutex_unlock(&w->wakeup_lock);
    if (!sw.gen) return;
    const gh_config_t *cfg = sw.gen->cfg;
    uint64_t generation = sw.gen->snap->generation;
    if (!(sw.gen->upstreams = gh_upstream_pools_new(w, cfg))) {
        gh_log(GH_LOG_ERROR, "worker %d: out of memory swapping in config %llu; keeping the old",
               w->id, (unsigned long long)generation);
        for (size_t i = 0; sw.fds && i < cfg->nlisten; i++)
            if (sw.fds[i] >= 0) close(sw.fds[i]);
        gh_gen_discard(sw.gen);
    } else {
        gh_link_t *l = w->listeners.next;
        while (!w->draining && l != &w->listeners) {
            gh_listener_t *ls = gh_container_of(l, gh_listener_t, link);
            l = l->next;
            bool kept = false;
            for (size_t i = 0; i < cfg->nlisten && !kept; i++)
                kept = gh_config_same_addr(&ls->addr, &cfg->listen[i].addr);
            if (!kept) close_listener(ls);
        }
        for (size_t i = 0; sw.fds && i < cfg->nlisten; i++) {
            if (sw.fds[i] < 0) continue;
            int rc = w->draining ? UV_ECANCELED : open_listener(w, &sw.fds[i], &cfg->listen[i]);
            if (sw.fds[i] >= 0) close(sw.fds[i]);
            if (rc) {
                if (rc != UV_ECANCELED)
                    gh_log(GH_LOG_ERROR, "worker %d: cannot listen on %s: %s", w->id,
                           cfg->listen[i].text, uv_strerror(rc));
            }
        }
        gh_gen_t *old = w->gen;
        sw.gen->w = w;
        w->gen = sw.gen;
        w->cfg = cfg;
        gh_gen_release(old);
    }
    free(sw.fds);
    __atomic_store_n(&w->swapped, generation, __ATOMIC_RELEASE);
    if (w->swap_notify) uv_async_send(w->swap_notify);
}

static void on_wakeup(uv_async_t *a)
{
    gh_worker_t *w = a->data;
    swap_in(w);
    int req = __atomic_load_n(&w->drain_requested, __ATOMIC_ACQUIRE);
    if (req) begin_drain(w, req == 2);
    if (__atomic_exchange_n(&w->keys_event, 0, __ATOMIC_ACQ_REL)) gh_auth_wake(w);
    if (__atomic_exchange_n(&w->reopen_event, 0, __ATOMIC_ACQ_REL) && gh_access_log_reopen(w->alog))
        gh_log(GH_LOG_ERROR,
               "worker %d: cannot reopen the access log %s: %s; still writing the old", w->id,
               w->cfg->access_log, strerror(errno));
}

static void on_tick(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    gh_conn_expire(w, uv_now(&w->loop));
    gh_auth_wake(w); /* requests that waited for keys as long as they may */
}

static void flush_log(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    gh_access_log_flush(w->alog);
}

static void worker_main(void *arg)
{
    gh_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    gh_limiter_batch_close(w->limits);
    gh_redis_close(w->redis); /* its connections never kept the loop alive */
    w->redis = NULL;
    w->limits = NULL;
    uv_mutex_lock(&w->wakeup_lock);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    w->wakeup_closed = 1;
    uv_mutex_unlock(&w->wakeup_lock);
    uv_close((uv_handle_t *)&w->flush_timer, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    gh_access_log_flush(w->alog);
    __atomic_store_n(&w->exited, 1, __ATOMIC_RELEASE);
    if (w->exit_notify) uv_async_send(w->exit_notify);
}

static int open_listeners(gh_worker_t *w)
{
    for (size_t i = 0; i < w->cfg->nlisten; i++) {
        int rc = open_listener(w, &w->listen_fds[i], &w->cfg->listen[i]);
        if (rc) return rc;
    }
    return 0;
}

static void redis_error(void *m, const char *kind)
{
    gh_metrics_redis_error(m, kind);
}

int gh_worker_start(gh_worker_t *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc) return rc;
    gh_list_init(&w->conns);
    gh_list_init(&w->parked);
    for (int k = 0; k < GH_TIMER_KINDS; k++) gh_list_init(&w->deadlines[k]);
    if (getrandom(w->rng, sizeof(w->rng), 0) != sizeof(w->rng))
        w->rng[0] = uv_hrtime(), w->rng[1] = (uint64_t)(uintptr_t)w;
    w->rng[0] |= 1;
    w->pool = gh_buf_pool_new(32);
    w->alog = gh_access_log_open(w->cfg->access_log);
    w->metrics = gh_metrics_new();
    if (!w->pool || !w->alog || !w->metrics ||
        !(w->gen->upstreams = gh_upstream_pools_new(w, w->cfg)))
        return UV_ENOMEM;
    w->swapped = w->gen->snap->generation;
    if (w->cfg->redis) {
        char who[32];
        snprintf(who, sizeof(who), "worker %d", w->id);
        if (!(w->redis = gh_redis_new(&w->loop, w->cfg->redis, who)) ||
            !(w->limits = gh_limiter_batch_new(&w->loop, w->redis, w->cfg->redis->pool)))
            return UV_ENOMEM;
        gh_redis_on_error(w->redis, redis_error, w->metrics);
    }
    uv_mutex_init(&w->wakeup_lock);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_unref((uv_handle_t *)&w->wakeup);
    uv_timer_init(&w->loop, &w->flush_timer);
    w->flush_timer.data = w;
    uv_timer_start(&w->flush_timer, flush_log, LOG_FLUSH_MS, LOG_FLUSH_MS);
    uv_unref((uv_handle_t *)&w->flush_timer);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&w->tick);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_unref((uv_handle_t *)&w->drain_timer);
    rc = open_listeners(w);
    if (rc) return rc;
    free(w->listen_fds);
    w->listen_fds = NULL;
    rc = uv_thread_create(&w->thread, worker_main, w);
    w->started = rc == 0;
    return rc;
}

void gh_worker_swap(gh_worker_t *w, gh_gen_t *g, int *fds)
{
    uv_mutex_lock(&w->wakeup_lock);
    gh_swap_t old = w->swap;
    w->swap = (gh_swap_t){.gen = g, .fds = fds};
    if (!w->wakeup_closed) uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
    for (size_t i = 0; old.fds && i < old.gen->cfg->nlisten; i++) /* the main thread waits */
        if (old.fds[i] >= 0) close(old.fds[i]);                   /* for each swap: never */
    free(old.fds);
    gh_gen_discard(old.gen);
}

void gh_worker_stop(gh_worker_t *w, int now)
{
    __atomic_store_n(&w->drain_requested, now ? 2 : 1, __ATOMIC_RELEASE);
    uv_mutex_lock(&w->wakeup_lock);
    if (!w->wakeup_closed) uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
}

void gh_worker_keys_changed(gh_worker_t *w)
{
    __atomic_store_n(&w->keys_event, 1, __ATOMIC_RELEASE);
    uv_mutex_lock(&w->wakeup_lock);
    if (!w->wakeup_closed) uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
}

void gh_worker_reopen_logs(gh_worker_t *w)
{
    __atomic_store_n(&w->reopen_event, 1, __ATOMIC_RELEASE);
    uv_mutex_lock(&w->wakeup_lock);
    if (!w->wakeup_closed) uv_async_send(&w->wakeup);
    uv_mutex_unlock(&w->wakeup_lock);
}

int gh_worker_exited(gh_worker_t *w)
{
    return __atomic_load_n(&w->exited, __ATOMIC_ACQUIRE);
}

void gh_worker_join(gh_worker_t *w)
{
    if (w->started) {
        uv_thread_join(&w->thread);
        if (uv_loop_close(&w->loop) != 0)
            gh_log(GH_LOG_WARN, "worker %d: handles left open", w->id);
        uv_mutex_destroy(&w->wakeup_lock);
    }
    gh_gen_release(w->gen); /* every request has ended */
    w->gen = NULL;
    if (w->swap.gen) { /* handed over as the worker ended */
        for (size_t i = 0; w->swap.fds && i < w->swap.gen->cfg->nlisten; i++)
            if (w->swap.fds[i] >= 0) close(w->swap.fds[i]);
        free(w->swap.fds);
        gh_gen_discard(w->swap.gen);
        w->swap = (gh_swap_t){0};
    }
    gh_access_log_close(w->alog);
    gh_metrics_free(w->metrics);
    w->metrics = NULL;
    gh_buf_pool_free(w->pool);
    for (size_t i = 0; w->listen_fds && i < w->cfg->nlisten; i++)
        if (w->listen_fds[i] >= 0) close(w->listen_fds[i]);
    free(w->listen_fds);
}

/* xorshift128+: fast, and unpredictable enough for ids (not for secrets). */
void gh_worker_random_hex(gh_worker_t *w, char *out, size_t nhex)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t at = 0; at < nhex; at += 16) {
        uint64_t s1 = w->rng[0], s0 = w->rng[1];
        w->rng[0] = s0;
        s1 ^= s1 << 23;
        w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        uint64_t v = w->rng[1] + s0;
        for (size_t i = 0; i < 16 && at + i < nhex; i++) out[at + i] = hex[(v >> (i * 4)) & 15];
    }
    out[nhex] = '\0';
}

void gh_worker_request_id(gh_worker_t *w, char out[33])
{
    gh_worker_random_hex(w, out, 32);
}
