#include "reload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "lua_test.h"
#include "notify.h"

#define WATCH_DEBOUNCE_MS 500

struct gh_reload_waiter_s {
    gh_reload_done_fn done; /* NULL: forgotten */
    void *arg;
    gh_reload_waiter_t *next;
};

/* What the pool thread builds, and how it went. */
typedef struct {
    uv_work_t work;
    char *path;
    gh_snapshot_t *cur; /* a reference, for what carries over */
    int n;
    gh_snapshot_t *snap; /* the result: a snapshot, a generation and the new */
    gh_gen_t **gens;     /* listen sockets per worker */
    int **fds;
    char err[1024];
    char why[16];
    uint64_t started; /* uv_hrtime() when asked for, for the log */
} job_t;

static struct {
    uv_loop_t *loop;
    char *path;
    gh_snapshot_t *cur;
    gh_worker_t *workers;
    int n;
    gh_keys_notify_fn keys_notify;
    void *keys_arg;
    gh_reload_stats_t stats;
    bool open, stopped, locked;            /* locked: lock initialised */
    job_t *job;                            /* under way: being built or swapped in */
    uint64_t swapping;                     /* the generation the workers are swapping to, or 0 */
    gh_reload_waiter_t *waiting, *running; /* for the next reload, for this one */
    bool again;                            /* asked for during this one */
    const char *again_why;
    uv_async_t swapped;    /* a worker finished its swap */
    uv_async_t retired;    /* a snapshot lost its last reference */
    uv_timer_t free_timer; /* frees retired snapshots once their handles closed */
    uv_mutex_t lock;       /* guards retiring */
    gh_snapshot_t *retiring, *freeing;
    /* watch = true */
    uv_fs_event_t watch_cfg, watch_routes;
    uv_timer_t debounce;
    bool watching;
} RL;

static void begin(const char *why);

/* ---- retiring snapshots ---- */

/* Any thread: the last reference went. */
static void on_retire(gh_snapshot_t *s)
{
    uv_mutex_lock(&RL.lock);
    s->next = RL.retiring;
    RL.retiring = s;
    bool open = RL.open;
    uv_mutex_unlock(&RL.lock);
    if (open) uv_async_send(&RL.retired);
}

/* Stops the running key sources no other snapshot holds. True when one
 * was: s can be freed only once the loop has closed their handles. */
static bool stop_last_sources(gh_snapshot_t *s)
{
    bool stopped = false;
    for (size_t i = 0; i < s->cfg->nissuers; i++)
        if (gh_keysource_last_ref(s->cfg->issuers[i].src))
            stopped = gh_keysource_stop(s->cfg->issuers[i].src) || stopped;
    return stopped;
}

/* Frees retired snapshots, one at a time: freeing one may leave another
 * the last holder of a source they shared, which is stopped then and
 * freed on the next loop iteration. */
static void free_retired(uv_timer_t *t)
{
    (void)t;
    gh_snapshot_t *s = RL.freeing, *later = NULL;
    RL.freeing = NULL;
    while (s) {
        gh_snapshot_t *next = s->next;
        if (RL.open && stop_last_sources(s)) {
            s->next = later;
            later = s;
        } else {
            gh_snapshot_free(s);
        }
        s = next;
    }
    RL.freeing = later;
    if (later) uv_timer_start(&RL.free_timer, free_retired, 0, 0);
}

/* The snapshots retired since the last call. */
static gh_snapshot_t *take_retiring(void)
{
    uv_mutex_lock(&RL.lock);
    gh_snapshot_t *s = RL.retiring;
    RL.retiring = NULL;
    uv_mutex_unlock(&RL.lock);
    return s;
}

/* Stops the key sources only the retired snapshots used; they are freed
 * on the next loop iteration, once the sources' handles have closed. */
static void reap(void)
{
    gh_snapshot_t *s = take_retiring();
    while (s) {
        gh_snapshot_t *next = s->next;
        stop_last_sources(s);
        s->next = RL.freeing;
        RL.freeing = s;
        s = next;
    }
    if (RL.freeing && RL.open) uv_timer_start(&RL.free_timer, free_retired, 0, 0);
}

static void on_retired(uv_async_t *a)
{
    (void)a;
    reap();
}

/* ---- building a snapshot (pool thread) ---- */

static void build_snapshot(job_t *j);

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_redis(const gh_redis_conf_t *a, const gh_redis_conf_t *b)
{
    if (!a || !b) return a == b;
    return same_str(a->url, b->url) && strcmp(a->host, b->host) == 0 && a->port == b->port &&
           a->db == b->db && same_str(a->user, b->user) && same_str(a->password, b->password) &&
           a->timeout == b->timeout && a->pool == b->pool && same_str(a->prefix, b->prefix);
}

/* The first setting a reload cannot apply that differs, or NULL. */
static const char *needs_restart(const gh_config_t *a, const gh_config_t *b)
{
    if (a->workers != b->workers) return "workers";
    if (!a->admin != !b->admin ||
        (a->admin && !gh_config_same_addr(&a->admin->addr, &b->admin->addr)) ||
        !same_str(a->admin_token, b->admin_token))
        return "admin";
    if (!same_redis(a->redis, b->redis)) return "redis";
    if (memcmp(&a->revocation, &b->revocation, sizeof(a->revocation))) return "revocation";
    if (a->rate_limit_keys != b->rate_limit_keys) return "rate_limit_keys";
    if (!same_str(a->access_log, b->access_log)) return "access_log";
    return NULL;
}

/* Issuers fetching from the same place in the same way keep their source:
 * its keys, caches and refresh schedule carry over. */
static void share_key_sources(gh_config_t *cfg, const gh_config_t *old)
{
    for (size_t i = 0; i < cfg->nissuers; i++) {
        gh_issuer_t *is = &cfg->issuers[i];
        for (size_t k = 0; is->remote && k < old->nissuers; k++) {
            if (!gh_keysource_same(is->src, old->issuers[k].src)) continue;
            gh_keysource_free(is->src); /* never started */
            is->src = gh_keysource_ref(old->issuers[k].src);
            break;
        }
    }
}

/* Per worker, a socket for every listen address cfg adds to old. */
static int bind_new(job_t *j, const gh_config_t *cfg, const gh_config_t *old)
{
    for (int w = 0; w < j->n; w++) {
        j->fds[w] = malloc((cfg->nlisten ? cfg->nlisten : 1) * sizeof(int));
        if (!j->fds[w]) return snprintf(j->err, sizeof(j->err), "out of memory"), -1;
        for (size_t i = 0; i < cfg->nlisten; i++) j->fds[w][i] = -1;
        for (size_t i = 0; i < cfg->nlisten; i++) {
            bool open = false;
            for (size_t k = 0; k < old->nlisten && !open; k++)
                open = gh_config_same_addr(&cfg->listen[i].addr, &old->listen[k].addr);
            if (open) continue;
            j->fds[w][i] = gh_worker_listen_socket(&cfg->listen[i], j->err, sizeof(j->err));
            if (j->fds[w][i] < 0) return -1;
        }
    }
    return 0;
}

static void build_niced(void *j)
{
    build_snapshot(j);
}

static void build(uv_work_t *work)
{
    gh_worker_run_niced(build_niced, work->data); /* the workers' requests come first */
}

/* reload_runs_tests: the routes' *_test.lua, in a child process. Returns
 * 0 when none failed, -1 with the reason in j->err. */
static int run_tests(job_t *j, const gh_config_t *cfg)
{
    int passed, failed, broken;
    char why[512];
    int rc = gh_lua_test_spawn(cfg->routes_dir, cfg->lua.load_budget, &passed, &failed, &broken,
                               why, sizeof(why));
    if (rc < 0)
        snprintf(j->err, sizeof(j->err), "%s: %s; nothing was reloaded", cfg->routes_dir, why);
    else if (rc == 1)
        snprintf(j->err, sizeof(j->err),
                 "%s: the policy tests failed (%d passed, %d failed, %d file(s) could not run; "
                 "the log has each failure with file:line); nothing was reloaded",
                 cfg->routes_dir, passed, failed, broken);
    return rc < 0 || rc == 1 ? -1 : 0;
}

static void build_snapshot(job_t *j)
{
    const gh_config_t *old = j->cur->cfg;
    gh_config_t *cfg = gh_config_load(j->path, j->err, sizeof(j->err));
    if (!cfg) return;
    const char *what = needs_restart(old, cfg);
    if (what) {
        snprintf(j->err, sizeof(j->err),
                 "%s: '%s' changed, which takes a restart; nothing was reloaded", j->path, what);
        gh_config_free(cfg);
        return;
    }
    share_key_sources(cfg, old);
    if (!(j->snap = gh_snapshot_new(cfg, j->cur->generation + 1))) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        return;
    }
    if (cfg->reload_runs_tests && cfg->routes_dir && run_tests(j, cfg)) return;
    for (int w = 0; w < j->n; w++)
        if (!(j->gens[w] = gh_gen_new(j->snap, j->err, sizeof(j->err)))) return;
    bind_new(j, cfg, old);
}

/* ---- the main loop ---- */

static void job_free(job_t *j)
{
    for (int w = 0; w < j->n; w++) {
        gh_gen_discard(j->gens[w]);
        for (size_t i = 0; j->fds[w] && j->snap && i < j->snap->cfg->nlisten; i++)
            if (j->fds[w][i] >= 0) close(j->fds[w][i]);
        free(j->fds[w]);
    }
    gh_snapshot_release(j->snap);
    gh_snapshot_release(j->cur);
    free(j->gens);
    free(j->fds);
    free(j->path);
    free(j);
}

/* Tells everyone waiting on this reload how it went. */
static void finish(bool ok, const char *json)
{
    gh_reload_waiter_t *w = RL.running;
    RL.running = NULL;
    while (w) {
        gh_reload_waiter_t *next = w->next;
        if (w->done) w->done(w->arg, ok, json);
        free(w);
        w = next;
    }
    if (RL.again && !RL.stopped) {
        RL.again = false;
        begin(RL.again_why);
    }
}

static void failed(job_t *j)
{
    if (RL.job == j) RL.job = NULL;
    RL.stats.failed++;
    snprintf(RL.stats.last_error, sizeof(RL.stats.last_error), "%s", j->err);
    gh_log(GH_LOG_ERROR, "reload (%s) refused after %.0f ms, still serving config %llu: %s", j->why,
           (double)(uv_hrtime() - j->started) / 1e6, (unsigned long long)RL.cur->generation,
           j->err);
    char json[1400];
    size_t n = (size_t)snprintf(json, sizeof(json),
                                "{\"reloaded\":false,\"generation\":%llu,"
                                "\"error\":\"",
                                (unsigned long long)RL.cur->generation);
    gh_json_escape(json, sizeof(json) - 8, &n, j->err, strlen(j->err));
    snprintf(json + n, sizeof(json) - n, "\"}");
    job_free(j);
    gh_notify("READY=1");
    finish(false, json);
}

static void watch_apply(const gh_config_t *cfg);

/* Every worker has swapped: the new snapshot is the live one. */
static void swapped_all(void)
{
    job_t *j = RL.job;
    RL.job = NULL;
    RL.swapping = 0;
    gh_snapshot_t *old = RL.cur;
    RL.cur = j->snap;
    j->snap = NULL;
    RL.stats.ok++;
    RL.stats.last_ok = RL.cur->loaded_at;
    gh_log_set_level((gh_log_level)RL.cur->cfg->log_level);
    gh_log(GH_LOG_INFO,
           "reload (%s): config %llu (%s) is live after %.0f ms: %zu routes, %zu upstreams, "
           "%zu issuers",
           j->why, (unsigned long long)RL.cur->generation, RL.cur->hash,
           (double)(uv_hrtime() - j->started) / 1e6, gh_router_count(RL.cur->cfg->router),
           RL.cur->cfg->nupstreams, RL.cur->cfg->nissuers);
    char json[256];
    snprintf(json, sizeof(json), "{\"reloaded\":true,\"generation\":%llu,\"hash\":\"%s\"}",
             (unsigned long long)RL.cur->generation, RL.cur->hash);
    watch_apply(RL.cur->cfg);
    gh_snapshot_release(old);
    job_free(j);
    gh_notify("READY=1");
    finish(true, json);
}

static void on_swapped(uv_async_t *a)
{
    (void)a;
    if (!RL.swapping) return;
    for (int i = 0; i < RL.n; i++)
        if (!gh_worker_exited(&RL.workers[i]) &&
            __atomic_load_n(&RL.workers[i].swapped, __ATOMIC_ACQUIRE) < RL.swapping)
            return;
    swapped_all();
}

static void built(uv_work_t *work, int status)
{
    job_t *j = work->data;
    if (status == UV_ECANCELED || RL.stopped) {
        snprintf(j->err, sizeof(j->err), "the gateway is shutting down");
        failed(j);
        return;
    }
    if (j->err[0]) {
        failed(j);
        return;
    }
    const gh_config_t *cfg = j->snap->cfg;
    for (size_t i = 0; i < cfg->nissuers; i++) {
        int rc = gh_keysource_start(cfg->issuers[i].src, RL.loop, RL.keys_notify, RL.keys_arg);
        if (rc)
            gh_log(GH_LOG_ERROR, "issuer '%s': cannot fetch keys: %s", cfg->issuers[i].name,
                   uv_strerror(rc));
    }
    RL.swapping = j->snap->generation;
    for (int w = 0; w < j->n; w++) {
        gh_worker_swap(&RL.workers[w], j->gens[w], j->fds[w]);
        j->gens[w] = NULL;
        j->fds[w] = NULL;
    }
    on_swapped(NULL); /* no worker left to wait for */
}

static void begin(const char *why)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j) {
        j->n = RL.n;
        j->path = strdup(RL.path);
        j->gens = calloc((size_t)RL.n + 1, sizeof(*j->gens));
        j->fds = calloc((size_t)RL.n + 1, sizeof(*j->fds));
        j->cur = gh_snapshot_ref(RL.cur);
        snprintf(j->why, sizeof(j->why), "%s", why);
        j->started = uv_hrtime();
        j->work.data = j;
    }
    RL.running = RL.waiting;
    RL.waiting = NULL;
    if (!j || !j->path || !j->gens || !j->fds) {
        if (j) job_free(j);
        RL.stats.failed++;
        finish(false, "{\"reloaded\":false,\"error\":\"out of memory\"}");
        return;
    }
    gh_log(GH_LOG_INFO, "reload (%s): loading %s", why, RL.path);
    gh_notify_reloading();
    RL.job = j;
    int rc = uv_queue_work(RL.loop, &j->work, build, built);
    if (rc) {
        RL.job = NULL;
        snprintf(j->err, sizeof(j->err), "cannot start loading: %s", uv_strerror(rc));
        failed(j);
    }
}

gh_reload_waiter_t *gh_reload_request(const char *why, gh_reload_done_fn done, void *arg)
{
    gh_reload_waiter_t *w = NULL;
    if (done) {
        if (!(w = calloc(1, sizeof(*w)))) {
            done(arg, false, "{\"reloaded\":false,\"error\":\"out of memory\"}");
            return NULL;
        }
        w->done = done;
        w->arg = arg;
    }
    if (RL.stopped) {
        if (done)
            done(arg, false, "{\"reloaded\":false,\"error\":\"the gateway is shutting down\"}");
        free(w);
        return NULL;
    }
    if (w) {
        w->next = RL.waiting;
        RL.waiting = w;
    }
    if (RL.job) { /* one more once this one ends: it may have read the files already */
        RL.again = true;
        RL.again_why = why;
        return w;
    }
    begin(why);
    return RL.job ? w : NULL; /* no job: it failed at once, and w was answered and freed */
}

void gh_reload_forget(gh_reload_waiter_t *w)
{
    if (w) w->done = NULL;
}

gh_snapshot_t *gh_reload_current(void)
{
    return RL.cur;
}

const gh_reload_stats_t *gh_reload_stats(void)
{
    return &RL.stats;
}

bool gh_reload_busy(void)
{
    return RL.job != NULL;
}

/* ---- watch = true ---- */

static void on_debounced(uv_timer_t *t)
{
    (void)t;
    gh_reload_request("watch", NULL, NULL);
}

static bool is_lua(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 4 && strcmp(name + n - 4, ".lua") == 0;
}

static void on_change(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    if (status != 0 || !is_lua(name)) return; /* a log or an editor's swap file */
    const char *base = strrchr(RL.path, '/');
    base = base ? base + 1 : RL.path;
    if (h == &RL.watch_cfg && strcmp(name, base) != 0) return;
    uv_timer_start(&RL.debounce, on_debounced, WATCH_DEBOUNCE_MS, 0);
}

static void watch_stop(void)
{
    if (!RL.watching) return;
    RL.watching = false;
    uv_fs_event_stop(&RL.watch_cfg);
    uv_fs_event_stop(&RL.watch_routes);
    uv_timer_stop(&RL.debounce);
}

/* Watches the config file's directory and the routes directory, or stops. */
static void watch_apply(const gh_config_t *cfg)
{
    watch_stop();
    if (!cfg->watch || RL.stopped) return;
    char dir[4096];
    const char *slash = strrchr(RL.path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - RL.path) : 1, slash ? RL.path : ".");
    int rc = uv_fs_event_start(&RL.watch_cfg, on_change, dir[0] ? dir : "/", 0);
    if (!rc && cfg->routes_dir)
        rc = uv_fs_event_start(&RL.watch_routes, on_change, cfg->routes_dir, 0);
    if (rc) {
        gh_log(GH_LOG_WARN, "watch: cannot watch %s: %s; reload by SIGHUP or POST /reload",
               cfg->routes_dir ? cfg->routes_dir : dir, uv_strerror(rc));
        uv_fs_event_stop(&RL.watch_cfg);
        return;
    }
    RL.watching = true;
}

/* ---- life ---- */

int gh_reload_init(uv_loop_t *loop, const char *path, gh_snapshot_t *cur, gh_worker_t *workers,
                   int n, gh_keys_notify_fn keys_notify, void *keys_arg)
{
    RL.loop = loop;
    RL.path = strdup(path);
    RL.cur = cur;
    RL.workers = workers;
    RL.n = n;
    RL.keys_notify = keys_notify;
    RL.keys_arg = keys_arg;
    RL.stats.last_ok = cur->loaded_at;
    int rc = uv_async_init(loop, &RL.swapped, on_swapped);
    if (!rc && (rc = uv_async_init(loop, &RL.retired, on_retired)))
        uv_close((uv_handle_t *)&RL.swapped, NULL);
    if (rc) { /* the caller keeps cur */
        free(RL.path);
        RL.path = NULL;
        RL.cur = NULL;
        return rc;
    }
    uv_mutex_init(&RL.lock);
    RL.locked = true;
    uv_timer_init(loop, &RL.free_timer);
    uv_timer_init(loop, &RL.debounce);
    uv_fs_event_init(loop, &RL.watch_cfg);
    uv_fs_event_init(loop, &RL.watch_routes);
    for (int i = 0; i < n; i++) workers[i].swap_notify = &RL.swapped;
    RL.open = true;
    gh_snapshot_on_retire(on_retire);
    watch_apply(cur->cfg);
    return 0;
}

void gh_reload_stop(void)
{
    if (!RL.open || RL.stopped) return;
    RL.stopped = true;
    watch_stop();
    reap();
    gh_keysource_stop_all(); /* the live snapshot's, a swap's under way, and any a worker holds */
    uv_mutex_lock(&RL.lock);
    RL.open = false;
    uv_mutex_unlock(&RL.lock);
    uv_close((uv_handle_t *)&RL.swapped, NULL);
    uv_close((uv_handle_t *)&RL.retired, NULL);
    uv_close((uv_handle_t *)&RL.free_timer, NULL);
    uv_close((uv_handle_t *)&RL.debounce, NULL);
    uv_close((uv_handle_t *)&RL.watch_cfg, NULL);
    uv_close((uv_handle_t *)&RL.watch_routes, NULL);
}

void gh_reload_free(void)
{
    gh_snapshot_on_retire(NULL);
    free_retired(NULL);
    if (RL.job) job_free(RL.job); /* a swap the workers ended before finishing */
    for (gh_reload_waiter_t *w = RL.running, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    for (gh_reload_waiter_t *w = RL.waiting, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    gh_snapshot_release(RL.cur);
    RL.cur = NULL;
    gh_snapshot_t *s = take_retiring();
    while (s) {
        gh_snapshot_t *next = s->next;
        gh_snapshot_free(s);
        s = next;
    }
    if (RL.locked) uv_mutex_destroy(&RL.lock);
    free(RL.path);
    memset(&RL, 0, sizeof(RL));
}
