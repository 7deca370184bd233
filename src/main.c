/* gatehouse: command line, signals, workers. Nothing else. */
#include <jansson.h>
#include <llhttp.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "worker.h"

typedef struct {
    const char *config;
    int test_only;
} options_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: gatehouse -c FILE [-t]\n"
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
    gh_worker_t *workers;
    int n;
    int signals;
    uv_signal_t sigterm, sigint;
    uv_async_t exited;
} server_t;

/* A worker ended; once all have, close our handles so the loop returns. */
static void on_worker_exit(uv_async_t *a)
{
    server_t *s = a->data;
    for (int i = 0; i < s->n; i++)
        if (!gh_worker_exited(&s->workers[i])) return;
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->exited, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server_t *s = h->data;
    int now = ++s->signals > 1;
    gh_log(GH_LOG_INFO, "%s: %s", signum == SIGINT ? "SIGINT" : "SIGTERM",
           now ? "stopping now" : "draining in-flight requests");
    for (int i = 0; i < s->n; i++) gh_worker_stop(&s->workers[i], now);
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
        if (gh_worker_bind(&s->workers[i], err, sizeof(err))) {
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

/* Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit code. */
static int serve(const gh_config_t *cfg)
{
    static server_t s;
    uv_loop_t *loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(loop, &s.sigterm);
    uv_signal_init(loop, &s.sigint);
    uv_async_init(loop, &s.exited, on_worker_exit);
    s.sigterm.data = s.sigint.data = s.exited.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    int rc = start_workers(&s, cfg);
    if (rc == 0) {
        for (size_t i = 0; i < cfg->nlisten; i++)
            gh_log(GH_LOG_INFO, "gatehouse %s: listening on %s (%d workers)", GH_VERSION,
                   cfg->listen[i].text, cfg->workers);
    } else {
        for (int i = 0; i < s.n; i++) gh_worker_stop(&s.workers[i], 1);
        if (s.n == 0) on_worker_exit(&s.exited);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* until every worker has ended */
    for (int i = 0; i < s.n; i++) gh_worker_join(&s.workers[i]);
    free(s.workers);
    uv_loop_close(loop);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    options_t o = {0};
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
    rc = serve(cfg);
    gh_config_free(cfg);
    return rc;
}
