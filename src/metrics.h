/* Prometheus metrics. Each worker owns one gh_metrics_t and is its only
 * writer (no locks: relaxed atomic counters); the main thread renders the
 * sum of every worker's at any time. Label values are copied, so they may
 * come from a configuration that a reload frees later. Bounded: at most
 * 1024 label sets per family per worker, then the first label reads
 * "_other" (and beyond a small reserve, every label). */
#ifndef GH_METRICS_H
#define GH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gh_metrics_s gh_metrics_t;

/* NULL on OOM. */
gh_metrics_t *gh_metrics_new(void);
/* Only once no thread renders m any more. */
void gh_metrics_free(gh_metrics_t *m);

/* A finished request: route NULL when none matched (label route=""),
 * method an llhttp_method_t (label: its name, e.g. "GET"; unknown ->
 * "OTHER"), status -> code class label "2xx".. (outside 100..599:
 * "other"), total and upstream time in seconds (upstream_s < 0: the
 * request never reached an upstream). */
void gh_metrics_request(gh_metrics_t *m, const char *route, int method, int status, double total_s,
                        double upstream_s);

/* A JWT chain outcome for an issuer: result is a short reason such as
 * "ok", "cached", "missing", "bad_signature" (gh_jwt_status_label). */
void gh_metrics_jwt(gh_metrics_t *m, const char *issuer, const char *result);

/* A rate-limit decision: scope "local"/"global", decision
 * "allowed"/"denied"/"error". */
void gh_metrics_limit(gh_metrics_t *m, const char *scope, const char *decision);

/* A failed Redis call or dropped connection, by kind ("timeout",
 * "connect", "reply", ...). */
void gh_metrics_redis_error(gh_metrics_t *m, const char *what);

/* Open downstream connections (+1 on accept, -1 on close). */
void gh_metrics_conns(gh_metrics_t *m, int delta);

/* Upstream pool use for an upstream name: connections leased (busy) and
 * idle, as deltas. */
void gh_metrics_upstream_pool(gh_metrics_t *m, const char *upstream, int busy_delta,
                              int idle_delta);

/* What the main thread knows, rendered with the workers' sums. */
typedef struct {
    uint64_t reloads_ok, reloads_failed;
    double last_reload_ok;      /* unix time of the last successful load (startup counts) */
    const char *config_hash;    /* hex, label of gatehouse_config_info; NULL: no sample */
    uint64_t config_generation; /* 1 at startup, +1 per successful reload */
    bool ready;                 /* gatehouse_ready 1/0 */
    bool draining;
    size_t revoked;              /* revocation entries held */
    uint64_t key_fetch_failures; /* remote key set fetches that failed */
} gh_metrics_process_t;

/* Prometheus text exposition format 0.0.4 for the sum of n workers'
 * metrics plus p (NULL: zeros). Safe while the workers write. Returns
 * malloc'd text (NUL-terminated, its length in *len), NULL on OOM. */
char *gh_metrics_render(gh_metrics_t *const *workers, size_t n, const gh_metrics_process_t *p,
                        size_t *len);

#endif
