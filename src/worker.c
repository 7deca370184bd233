#include "worker.h"

#include "lua_vm.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "limiter.h"
#include "redis.h"
#include "token_cache.h"
#include "upstream.h"

#define BACKLOG      4096
#define LOG_FLUSH_MS 200
#define TICK_MS      50 /* resolution of connection timeouts */

/* One listening socket with SO_REUSEPORT, so each worker accepts on its own
 * and the kernel spreads connections. Returns the fd or -1 with err. */
static int listen_socket(const gh_listen_conf_t *l, char *err, size_t errlen)
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

int gh_worker_bind(gh_worker_t *w, char *err, size_t errlen)
{
    const gh_config_t *cfg = w->cfg;
    w->listen_fds = calloc(cfg->nlisten, sizeof(int));
    w->nlisteners = cfg->nlisten;
    for (size_t i = 0; i < cfg->nlisten; i++) w->listen_fds[i] = -1;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        w->listen_fds[i] = listen_socket(&cfg->listen[i], err, errlen);
        if (w->listen_fds[i] < 0) return -1;
    }
    bool lua = false;
    for (size_t i = 0; i < gh_router_count(cfg->router); i++) {
        const gh_route_t *rt = gh_router_at(cfg->router, i);
        lua = lua || rt->policy || rt->on_response;
    }
    if (lua && !(w->lua = gh_lua_vm_new(cfg, err, errlen))) return -1;
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    gh_worker_t *w = listener->data;
    if (status != 0 || w->draining) return;
    gh_conn_accept(w, listener);
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
        for (size_t i = 0; i < w->nlisteners; i++)
            if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
                uv_close((uv_handle_t *)&w->listeners[i], NULL);
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

static void on_wakeup(uv_async_t *a)
{
    gh_worker_t *w = a->data;
    int req = __atomic_load_n(&w->drain_requested, __ATOMIC_ACQUIRE);
    if (req) begin_drain(w, req == 2);
    if (__atomic_exchange_n(&w->keys_event, 0, __ATOMIC_ACQ_REL)) gh_auth_wake(w);
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
    w->listeners = calloc(w->nlisteners, sizeof(uv_tcp_t));
    if (!w->listeners) return UV_ENOMEM;
    for (size_t i = 0; i < w->nlisteners; i++) {
        uv_tcp_t *t = &w->listeners[i];
        int rc = uv_tcp_init(&w->loop, t);
        if (rc == 0) rc = uv_tcp_open(t, w->listen_fds[i]);
        t->data = w;
        if (rc == 0) rc = uv_listen((uv_stream_t *)t, BACKLOG, on_connection);
        if (rc) return rc;
        w->listen_fds[i] = -1; /* the handle owns it now */
    }
    return 0;
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
    w->tokens = gh_token_cache_new(w->cfg->token_cache);
    if (!w->pool || !w->alog || !w->tokens || gh_upstream_pools_init(w)) return UV_ENOMEM;
    if (w->cfg->redis) {
        char who[32];
        snprintf(who, sizeof(who), "worker %d", w->id);
        if (!(w->redis = gh_redis_new(&w->loop, w->cfg->redis, who)) ||
            !(w->limits = gh_limiter_batch_new(&w->loop, w->redis, w->cfg->redis->pool)))
            return UV_ENOMEM;
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
    rc = uv_thread_create(&w->thread, worker_main, w);
    w->started = rc == 0;
    return rc;
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
    gh_upstream_pools_free(w);
    gh_access_log_close(w->alog);
    gh_token_cache_free(w->tokens);
    gh_lua_vm_free(w->lua);
    w->lua = NULL;
    gh_buf_pool_free(w->pool);
    free(w->listeners);
    for (size_t i = 0; w->listen_fds && i < w->nlisteners; i++)
        if (w->listen_fds[i] >= 0) close(w->listen_fds[i]);
    free(w->listen_fds);
}

/* xorshift128+: fast, and unpredictable enough for ids (not for secrets). */
void gh_worker_request_id(gh_worker_t *w, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        uint64_t s1 = w->rng[0], s0 = w->rng[1];
        w->rng[0] = s0;
        s1 ^= s1 << 23;
        w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        uint64_t v = w->rng[1] + s0;
        for (int i = 0; i < 16; i++) out[half * 16 + i] = hex[(v >> (i * 4)) & 15];
    }
    out[32] = '\0';
}
