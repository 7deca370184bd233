/* gatehouse: command line, signals, workers, and the key fetches that
 * run on the main thread's loop. */
#include <jansson.h>
#include <llhttp.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "keysource.h"
#include "limiter.h"
#include "log.h"
#include "lua_test.h"
#include "metrics.h"
#include "notify.h"
#include "reload.h"
#include "revoke.h"
#include "worker.h"

typedef struct {
    const char *config;
    int test_only;
} options_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: gatehouse -c FILE [-t]\n"
                 "       gatehouse test DIR  run the policy tests (*_test.lua) under DIR\n"
                 "  -c, --config FILE  configuration file (gatehouse.lua)\n"
                 "  -t, --test         check the configuration and exit (0 valid, 1 invalid)\n"
                 "  -v, --version      print the version\n"
                 "  -V                 print the version and library versions\n"
                 "  -h, --help         this help\n");
}

static void versions(int all)
{
    printf("gatehouse %s\n", GH_VERSION);
    if (!all) return;
    printf("libuv %s\nllhttp %d.%d.%d\n%s\njansson %s\n%s\n", uv_version_string(),
           LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH,
           OpenSSL_version(OPENSSL_VERSION), jansson_version_str(), LUAJIT_VERSION);
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, options_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            o->config = argv[++i];
        } else if (!strcmp(a, "-t") || !strcmp(a, "--test")) {
            o->test_only = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
            versions(0);
            return 0;
        } else if (!strcmp(a, "-V")) {
            versions(1);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "gatehouse: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->config) {
        fprintf(stderr, "gatehouse: no configuration file given (-c FILE)\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

typedef struct {
    const char *path;
    gh_snapshot_t *snap;    /* the first; the reloader owns it once serving */
    const gh_config_t *cfg; /* the first snapshot's */
    gh_worker_t *workers;
    int n;
    int signals;
    int rc;
    bool waiting_for_keys; /* some issuer with jwks.startup = "wait" has none yet */
    bool serving;          /* the workers run: reloads can swap */
    bool draining;
    bool closing;
    uv_signal_t sigterm, sigint, sigquit, sighup, sigusr1;
    uv_async_t exited;
    uv_timer_t startup_timer;
    gh_admin_t *admin;
} server_t;

/* Closes the main loop's handles and stops key fetches, so uv_run returns. */
static void close_main_loop(server_t *s)
{
    if (s->closing) return;
    s->closing = true;
    if (s->serving)
        gh_reload_stop(); /* and every key source of the snapshots alive */
    else
        for (size_t i = 0; i < s->cfg->nissuers; i++) gh_keysource_stop(s->cfg->issuers[i].src);
    gh_revoke_sync_stop();
    gh_admin_stop(s->admin);
    s->admin = NULL;
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigquit, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    uv_close((uv_handle_t *)&s->exited, NULL);
    uv_close((uv_handle_t *)&s->startup_timer, NULL);
}

/* A worker ended; once all have, the main loop closes. */
static void on_worker_exit(uv_async_t *a)
{
    server_t *s = a->data;
    for (int i = 0; i < s->n; i++)
        if (!gh_worker_exited(&s->workers[i])) return;
    close_main_loop(s);
}

/* SIGTERM/SIGINT drain (a second one stops at once); SIGQUIT stops at once. */
static void on_signal(uv_signal_t *h, int signum)
{
    server_t *s = h->data;
    int now = ++s->signals > 1 || signum == SIGQUIT;
    s->draining = true;
    gh_notify("STOPPING=1");
    gh_log(GH_LOG_INFO, "%s: %s",
           signum == SIGINT    ? "SIGINT"
           : signum == SIGQUIT ? "SIGQUIT"
                               : "SIGTERM",
           now ? "stopping now" : "draining in-flight requests");
    for (int i = 0; i < s->n; i++) gh_worker_stop(&s->workers[i], now);
    if (s->n == 0) close_main_loop(s); /* still waiting for keys: nothing to drain */
}

static void reload_logged(void *arg, bool ok, const char *json)
{
    (void)arg, (void)ok, (void)json; /* the reloader logs how it went */
}

static void on_hup(uv_signal_t *h, int signum)
{
    server_t *s = h->data;
    (void)signum;
    if (!s->serving || s->draining)
        gh_log(GH_LOG_WARN, "SIGHUP ignored: %s", s->draining ? "draining" : "not serving yet");
    else
        gh_reload_request("SIGHUP", reload_logged, s);
}

static void on_usr1(uv_signal_t *h, int signum)
{
    server_t *s = h->data;
    (void)signum;
    gh_log(GH_LOG_INFO, "SIGUSR1: reopening the access log");
    for (int i = 0; i < s->n; i++) gh_worker_reopen_logs(&s->workers[i]);
}

static int start_workers(server_t *s, const gh_config_t *cfg)
{
    char err[512];
    s->n = cfg->workers;
    s->workers = calloc((size_t)s->n, sizeof(gh_worker_t));
    for (int i = 0; i < s->n; i++) {
        s->workers[i].id = i;
        s->workers[i].cfg = cfg;
        s->workers[i].exit_notify = &s->exited;
        if (gh_worker_bind(&s->workers[i], s->snap, err, sizeof(err))) {
            fprintf(stderr, "gatehouse: %s\n", err);
            for (int k = 0; k <= i; k++) gh_worker_join(&s->workers[k]); /* frees the fds */
            s->n = 0;
            return -1;
        }
    }
    for (int i = 0; i < s->n; i++) {
        int rc = gh_worker_start(&s->workers[i]);
        if (rc) {
            fprintf(stderr, "gatehouse: cannot start worker %d: %s\n", i, uv_strerror(rc));
            s->n = i;
            return -1;
        }
    }
    return 0;
}

static void on_keys(void *arg);

/* ---- what the admin API asks ---- */

static const gh_config_t *admin_config(void *ctx)
{
    server_t *s = ctx;
    return s->serving ? gh_reload_current()->cfg : s->cfg;
}

static uint64_t admin_generation(void *ctx, const char **hash)
{
    server_t *s = ctx;
    gh_snapshot_t *snap = s->serving ? gh_reload_current() : NULL;
    *hash = snap ? snap->hash : "";
    return snap ? snap->generation : 0;
}

/* Ready: serving, not draining, and every issuer has signing keys. */
static bool admin_ready(void *ctx, char *json, size_t len)
{
    server_t *s = ctx;
    char why[400] = "", detail[300];
    const gh_config_t *cfg = admin_config(s);
    if (!s->serving)
        snprintf(why, sizeof(why), "%s",
                 s->waiting_for_keys ? "waiting for signing keys" : "starting");
    else if (s->draining)
        snprintf(why, sizeof(why), "draining");
    for (size_t i = 0; !why[0] && i < cfg->nissuers; i++)
        if (!gh_keysource_ready(cfg->issuers[i].src, detail, sizeof(detail)))
            snprintf(why, sizeof(why), "issuer '%s' has no signing keys: %s", cfg->issuers[i].name,
                     detail);
    const char *hash;
    uint64_t gen = admin_generation(s, &hash);
    size_t n = (size_t)snprintf(json, len, "{\"ready\":%s,\"generation\":%llu,\"hash\":\"%s\"",
                                why[0] ? "false" : "true", (unsigned long long)gen, hash);
    if (why[0]) {
        n += (size_t)snprintf(json + n, len - n, ",\"reason\":\"");
        gh_json_escape(json, len - 4, &n, why, strlen(why));
        snprintf(json + n, len - n, "\"");
        n = strlen(json);
    }
    snprintf(json + n, len - n, "}");
    return !why[0];
}

static char *admin_metrics(void *ctx, size_t *len)
{
    server_t *s = ctx;
    gh_metrics_t *m[256];
    size_t n = 0;
    for (int i = 0; i < s->n && n < 256; i++)
        if (s->workers[i].metrics) m[n++] = s->workers[i].metrics;
    const gh_reload_stats_t *st = s->serving ? gh_reload_stats() : NULL;
    const char *hash;
    gh_metrics_process_t p = {
        .reloads_ok = st ? st->ok : 0,
        .reloads_failed = st ? st->failed : 0,
        .last_reload_ok = st ? st->last_ok : 0,
        .config_generation = admin_generation(s, &hash),
        .ready = false,
        .draining = s->draining,
        .revoked = gh_revoke_count(),
    };
    p.config_hash = hash[0] ? hash : NULL;
    char json[1024];
    p.ready = admin_ready(s, json, sizeof(json));
    const gh_config_t *cfg = admin_config(s);
    for (size_t i = 0; i < cfg->nissuers; i++)
        p.key_fetch_failures += gh_keysource_failures(cfg->issuers[i].src);
    return gh_metrics_render(m, n, &p, len);
}

static void *admin_reload(void *ctx, void (*done)(void *arg, bool ok, const char *json), void *arg)
{
    server_t *s = ctx;
    if (!s->serving || s->draining) {
        done(arg, false,
             s->draining ? "{\"reloaded\":false,\"error\":\"the gateway is shutting down\"}"
                         : "{\"reloaded\":false,\"error\":\"the gateway is not serving yet\"}");
        return NULL;
    }
    return gh_reload_request("admin", done, arg);
}

static void admin_forget(void *handle)
{
    gh_reload_forget(handle);
}

/* Binds and starts the workers; on failure stops what started. */
static void begin(server_t *s)
{
    if (start_workers(s, s->cfg) == 0) {
        int rc = gh_reload_init(uv_default_loop(), s->path, s->snap, s->workers, s->n, on_keys, s);
        s->serving = rc == 0;
        gh_notify("READY=1");
        if (rc) gh_log(GH_LOG_ERROR, "reloads disabled: %s", uv_strerror(rc));
        for (size_t i = 0; i < s->cfg->nlisten; i++)
            gh_log(GH_LOG_INFO, "gatehouse %s: listening on %s (%d workers)", GH_VERSION,
                   s->cfg->listen[i].text, s->cfg->workers);
        return;
    }
    s->rc = 1;
    for (int i = 0; i < s->n; i++) gh_worker_stop(&s->workers[i], 1);
    if (s->n == 0) close_main_loop(s);
}

/* The first "wait" issuer still without keys (its reason in why), or NULL. */
static const gh_issuer_t *awaited_issuer(const gh_config_t *cfg, char *why, size_t whylen)
{
    for (size_t i = 0; i < cfg->nissuers; i++) {
        const gh_issuer_t *is = &cfg->issuers[i];
        if (is->remote && gh_keysource_conf(is->src)->startup == GH_KEYS_START_WAIT &&
            !gh_keysource_ready(is->src, why, whylen))
            return is;
    }
    return NULL;
}

/* A key fetch ended (main loop): start serving once every "wait" issuer
 * has keys; afterwards, wake requests waiting on a fetch. */
static void on_keys(void *arg)
{
    server_t *s = arg;
    char why[256];
    if (s->waiting_for_keys) {
        if (awaited_issuer(s->cfg, why, sizeof(why))) return;
        s->waiting_for_keys = false;
        uv_timer_stop(&s->startup_timer);
        begin(s);
        return;
    }
    for (int i = 0; i < s->n; i++) gh_worker_keys_changed(&s->workers[i]);
}

static void on_startup_timeout(uv_timer_t *t)
{
    server_t *s = t->data;
    char why[256];
    const gh_issuer_t *is = awaited_issuer(s->cfg, why, sizeof(why));
    if (!is) return;
    fprintf(stderr,
            "gatehouse: issuer '%s': no signing keys within jwks.startup_timeout (%gs): %s\n",
            is->name, gh_keysource_conf(is->src)->startup_timeout, why);
    s->waiting_for_keys = false;
    s->rc = 1;
    close_main_loop(s);
}

/* Runs until SIGTERM/SIGINT/SIGQUIT and the drain that follows. Takes
 * snap. Returns the exit code. */
static int serve(const char *path, gh_snapshot_t *snap)
{
    static server_t s;
    uv_loop_t *loop = uv_default_loop();
    const gh_config_t *cfg = snap->cfg;
    s.path = path;
    s.snap = snap;
    s.cfg = cfg;
    signal(SIGPIPE, SIG_IGN);
    uv_signal_t *sigs[] = {&s.sigterm, &s.sigint, &s.sigquit, &s.sighup, &s.sigusr1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = &s;
    }
    uv_async_init(loop, &s.exited, on_worker_exit);
    uv_timer_init(loop, &s.startup_timer);
    s.exited.data = s.startup_timer.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigquit, on_signal, SIGQUIT);
    uv_signal_start(&s.sighup, on_hup, SIGHUP);
    uv_signal_start(&s.sigusr1, on_usr1, SIGUSR1);
    double wait = 0;
    char err[512];
    const gh_admin_ops_t admin_ops = {.ctx = &s,
                                      .config = admin_config,
                                      .ready = admin_ready,
                                      .generation = admin_generation,
                                      .metrics = admin_metrics,
                                      .reload = admin_reload,
                                      .forget = admin_forget};
    if (gh_limiter_init(cfg->rate_limit_keys) || gh_revoke_sync_start(loop, cfg)) {
        fprintf(stderr, "gatehouse: out of memory starting rate limits and revocation\n");
        s.rc = 1;
    } else if (cfg->admin && !(s.admin = gh_admin_start(loop, cfg, &admin_ops, err, sizeof(err)))) {
        fprintf(stderr, "gatehouse: %s\n", err);
        s.rc = 1;
    }
    for (size_t i = 0; i < cfg->nissuers; i++) {
        const gh_issuer_t *is = &cfg->issuers[i];
        int rc = gh_keysource_start(is->src, loop, on_keys, &s);
        if (rc) {
            fprintf(stderr, "gatehouse: issuer '%s': cannot fetch keys: %s\n", is->name,
                    uv_strerror(rc));
            s.rc = 1;
        }
        const gh_keysource_conf_t *k = gh_keysource_conf(is->src);
        if (is->remote && k->startup == GH_KEYS_START_WAIT && k->startup_timeout > wait)
            wait = k->startup_timeout;
    }
    char why[256];
    if (s.rc) {
        close_main_loop(&s);
    } else if (awaited_issuer(cfg, why, sizeof(why))) {
        s.waiting_for_keys = true;
        gh_log(GH_LOG_INFO, "waiting up to %gs for signing keys before listening", wait);
        uv_timer_start(&s.startup_timer, on_startup_timeout, (uint64_t)(wait * 1000), 0);
    } else {
        begin(&s);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* until every worker has ended */
    for (int i = 0; i < s.n; i++) gh_worker_join(&s.workers[i]);
    if (s.serving)
        gh_reload_free();
    else
        gh_snapshot_release(s.snap);
    free(s.workers);
    uv_loop_close(loop);
    gh_limiter_shutdown();
    return s.rc;
}

int main(int argc, char **argv)
{
    options_t o = {0};
    if (argc == 3 && strcmp(argv[1], "test") == 0) return gh_lua_test_main(argv[2]);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    char err[1024];
    gh_config_t *cfg = gh_config_load(o.config, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "gatehouse: %s\n", err);
        return 1;
    }
    if (o.test_only) {
        printf("gatehouse: %s: configuration is valid (%zu routes, %zu upstreams)\n", o.config,
               gh_router_count(cfg->router), cfg->nupstreams);
        gh_config_free(cfg);
        return 0;
    }
    gh_log_set_level((gh_log_level)cfg->log_level);
    gh_snapshot_t *snap = gh_snapshot_new(cfg, 1);
    if (!snap) {
        fprintf(stderr, "gatehouse: out of memory\n");
        return 1;
    }
    return serve(o.config, snap);
}
