#include "metrics.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP        1024 /* label sets per family per worker */
#define RESERVE    64   /* past CAP: sets whose first label folded to "_other" */
#define ENTRIES    (CAP + RESERVE)
#define INDEX_SIZE 2048 /* a power of two, at least twice ENTRIES */
#define MAX_LABELS 3
#define LABEL_MAX  128 /* bytes kept of a label value */
#define OTHER      "_other"

/* Histogram bucket bounds in microseconds and as rendered; a last bucket
 * (+Inf) takes the rest. Counts are kept per bucket, made cumulative when
 * rendered, and _count is their sum, so +Inf and _count always agree. */
static const struct {
    uint64_t us;
    const char *le;
} BUCKETS[] = {{500, "0.0005"},  {1000, "0.001"},  {2500, "0.0025"}, {5000, "0.005"},
               {10000, "0.01"},  {25000, "0.025"}, {50000, "0.05"},  {100000, "0.1"},
               {250000, "0.25"}, {500000, "0.5"},  {1000000, "1"},   {2500000, "2.5"},
               {5000000, "5"},   {10000000, "10"}};
#define NBUCKETS    (sizeof(BUCKETS) / sizeof(BUCKETS[0]) + 1)
#define HIST_VALUES (NBUCKETS + 1) /* the buckets, then the sum in microseconds */

typedef enum { F_REQUESTS, F_ROUTES, F_JWT, F_LIMIT, F_REDIS, F_UPSTREAM, F_COUNT } family_id;

/* Each family's label names and how many 64-bit values a label set has. */
static const struct {
    int nlabels, nvalues;
    const char *labels[MAX_LABELS];
} SHAPE[F_COUNT] = {
    [F_REQUESTS] = {3, 1, {"route", "method", "code"}},
    [F_ROUTES] = {1, 2 * HIST_VALUES, {"route"}}, /* request, then upstream duration */
    [F_JWT] = {2, 1, {"issuer", "result"}},
    [F_LIMIT] = {2, 1, {"scope", "decision"}},
    [F_REDIS] = {1, 1, {"kind"}},
    [F_UPSTREAM] = {1, 2, {"upstream"}}, /* busy, idle: signed deltas, two's complement */
};

/* One label set of a family. Written once before it is published, then
 * only its values change. The label copies follow the values. */
typedef struct {
    uint64_t hash;
    const char *label[MAX_LABELS]; /* "" past the family's labels */
    size_t len[MAX_LABELS];
    uint64_t v[];
} entry_t;

/* Entries are published by a release store of n after e[n] is set; a
 * reader loads n with acquire and reads e[0..n). Nothing moves or goes. */
typedef struct {
    uint32_t n;
    uint16_t index[INDEX_SIZE]; /* the writer's: entry number + 1, 0 free; linear probing */
    entry_t *e[ENTRIES];
} family_t;

struct gh_metrics_s {
    family_t fam[F_COUNT];
    uint64_t conns; /* signed, two's complement */
};

/* The label values of one update, each cut at LABEL_MAX. */
typedef struct {
    const char *s[MAX_LABELS];
    size_t len[MAX_LABELS];
} labels_t;

/* Single writer: a relaxed load and store (a plain add) is enough, and the
 * renderer never sees a torn value. */
static void bump(uint64_t *v, uint64_t d)
{
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

static uint64_t peek(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

gh_metrics_t *gh_metrics_new(void)
{
    return calloc(1, sizeof(gh_metrics_t));
}

void gh_metrics_free(gh_metrics_t *m)
{
    if (!m) return;
    for (int f = 0; f < F_COUNT; f++)
        for (uint32_t i = 0; i < m->fam[f].n; i++) free(m->fam[f].e[i]);
    free(m);
}

static void set_label(labels_t *k, int i, const char *s)
{
    k->s[i] = s ? s : "";
    k->len[i] = strnlen(k->s[i], LABEL_MAX);
}

/* FNV-1a over the values, each ended by a NUL. They come from the
 * configuration and the code, not from clients: collisions are no attack. */
static uint64_t hash(const labels_t *k, int nl)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < nl; i++) {
        for (size_t j = 0; j < k->len[i]; j++)
            h = (h ^ (unsigned char)k->s[i][j]) * 1099511628211ull;
        h *= 1099511628211ull;
    }
    return h;
}

static bool matches(const entry_t *e, uint64_t h, const labels_t *k, int nl)
{
    if (e->hash != h) return false;
    for (int i = 0; i < nl; i++)
        if (e->len[i] != k->len[i] || memcmp(e->label[i], k->s[i], k->len[i]) != 0) return false;
    return true;
}

/* The entry for k, or NULL with *slot the free index slot for it. */
static entry_t *find(family_t *f, uint64_t h, const labels_t *k, int nl, size_t *slot)
{
    size_t i = h & (INDEX_SIZE - 1);
    for (; f->index[i]; i = (i + 1) & (INDEX_SIZE - 1)) {
        entry_t *e = f->e[f->index[i] - 1];
        if (matches(e, h, k, nl)) return e;
    }
    *slot = i;
    return NULL;
}

/* Copies k into a new entry at index slot and publishes it. NULL on OOM. */
static entry_t *create(family_t *f, size_t slot, uint64_t h, const labels_t *k, int nl, int nv)
{
    size_t bytes = sizeof(entry_t) + (size_t)nv * sizeof(uint64_t);
    for (int i = 0; i < nl; i++) bytes += k->len[i] + 1;
    entry_t *e = calloc(1, bytes);
    if (!e) return NULL;
    e->hash = h;
    char *p = (char *)(e->v + nv);
    for (int i = 0; i < MAX_LABELS; i++) {
        e->label[i] = "";
        if (i >= nl) continue;
        memcpy(p, k->s[i], k->len[i]);
        p[k->len[i]] = '\0';
        e->label[i] = p;
        e->len[i] = k->len[i];
        p += k->len[i] + 1;
    }
    uint32_t n = f->n;
    f->e[n] = e;
    f->index[slot] = (uint16_t)(n + 1);
    __atomic_store_n(&f->n, n + 1, __ATOMIC_RELEASE);
    return e;
}

/* The entry for k, made on first use. Past CAP sets, k's first label
 * folds to "_other"; past the reserve, every label does (the last slot is
 * that set's). NULL on OOM: the update is lost, nothing else. */
static entry_t *entry_of(gh_metrics_t *m, family_id id, labels_t *k)
{
    family_t *f = &m->fam[id];
    int nl = SHAPE[id].nlabels;
    for (int level = 0; level < 3; level++) {
        uint64_t h = hash(k, nl);
        size_t slot;
        entry_t *e = find(f, h, k, nl, &slot);
        if (e) return e;
        uint32_t room = level == 0 ? CAP : level == 1 ? ENTRIES - 1 : ENTRIES;
        if (f->n < room) return create(f, slot, h, k, nl, SHAPE[id].nvalues);
        for (int i = 0; i < (level == 0 ? 1 : nl); i++) set_label(k, i, OTHER);
    }
    return NULL;
}

/* One update of a family's entry for up to three labels. */
static entry_t *entry3(gh_metrics_t *m, family_id id, const char *a, const char *b, const char *c)
{
    labels_t k;
    set_label(&k, 0, a);
    set_label(&k, 1, b);
    set_label(&k, 2, c);
    return entry_of(m, id, &k);
}

#define METHOD_NAME(num, name, string) [num] = #string,
static const char *const METHODS[] = {HTTP_METHOD_MAP(METHOD_NAME)};
#undef METHOD_NAME

static const char *method_name(int method)
{
    if (method < 0 || (size_t)method >= sizeof(METHODS) / sizeof(METHODS[0])) return "OTHER";
    return METHODS[method] ? METHODS[method] : "OTHER";
}

static const char *code_class(int status)
{
    static const char *const CLASSES[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    return status >= 100 && status <= 599 ? CLASSES[status / 100 - 1] : "other";
}

/* Adds one observation of s seconds to the histogram at h (negative and
 * NaN count as 0, absurdly long as a million seconds). */
static void observe(uint64_t *h, double s)
{
    uint64_t us = !(s > 0) ? 0 : s > 1e6 ? 1000000000000ull : (uint64_t)(s * 1e6 + 0.5);
    size_t b = 0;
    while (b < NBUCKETS - 1 && us > BUCKETS[b].us) b++;
    bump(&h[b], 1);
    bump(&h[NBUCKETS], us);
}

void gh_metrics_request(gh_metrics_t *m, const char *route, int method, int status, double total_s,
                        double upstream_s)
{
    entry_t *e = entry3(m, F_REQUESTS, route, method_name(method), code_class(status));
    if (e) bump(&e->v[0], 1);
    e = entry3(m, F_ROUTES, route, NULL, NULL);
    if (!e) return;
    observe(e->v, total_s);
    if (upstream_s >= 0) observe(e->v + HIST_VALUES, upstream_s);
}

void gh_metrics_jwt(gh_metrics_t *m, const char *issuer, const char *result)
{
    entry_t *e = entry3(m, F_JWT, issuer, result, NULL);
    if (e) bump(&e->v[0], 1);
}

void gh_metrics_limit(gh_metrics_t *m, const char *scope, const char *decision)
{
    entry_t *e = entry3(m, F_LIMIT, scope, decision, NULL);
    if (e) bump(&e->v[0], 1);
}

void gh_metrics_redis_error(gh_metrics_t *m, const char *what)
{
    entry_t *e = entry3(m, F_REDIS, what, NULL, NULL);
    if (e) bump(&e->v[0], 1);
}

void gh_metrics_conns(gh_metrics_t *m, int delta)
{
    bump(&m->conns, (uint64_t)(int64_t)delta);
}

void gh_metrics_upstream_pool(gh_metrics_t *m, const char *upstream, int busy_delta, int idle_delta)
{
    entry_t *e = entry3(m, F_UPSTREAM, upstream, NULL, NULL);
    if (!e) return;
    bump(&e->v[0], (uint64_t)(int64_t)busy_delta);
    bump(&e->v[1], (uint64_t)(int64_t)idle_delta);
}

/* ---- rendering (main thread) ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->oom) return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* For numbers and metric names only: label values go through put_value. */
__attribute__((format(printf, 2, 3))) static void putf(out_t *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(o, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A label value, escaped as the text format says (\\, \", \n). */
static void put_value(out_t *o, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc) continue;
        put(o, s + start, i - start);
        put(o, esc, 2);
        start = i + 1;
    }
    put(o, s + start, n - start);
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    putf(o, "# HELP %s ", name);
    puts_(o, help);
    putf(o, "\n# TYPE %s %s\n", name, type);
}

/* name{labels of e, then extra="value" when extra is set}, the value to follow. */
static void series(out_t *o, const char *name, family_id id, const entry_t *e, const char *extra,
                   const char *value)
{
    puts_(o, name);
    int nl = e ? SHAPE[id].nlabels : 0;
    if (!nl && !extra) return;
    put(o, "{", 1);
    for (int i = 0; i < nl; i++) {
        putf(o, "%s%s=\"", i ? "," : "", SHAPE[id].labels[i]);
        put_value(o, e->label[i], e->len[i]);
        put(o, "\"", 1);
    }
    if (extra) {
        putf(o, "%s%s=\"", nl ? "," : "", extra);
        put_value(o, value, strlen(value));
        put(o, "\"", 1);
    }
    put(o, "}", 1);
}

/* A label set summed over the workers; its labels are the first worker's copy. */
typedef struct {
    const entry_t *e;
    uint64_t *v;
} row_t;

typedef struct {
    row_t *rows;
    uint64_t *vals;
    size_t n;
} merged_t;

static void merged_free(merged_t *mg)
{
    free(mg->rows);
    free(mg->vals);
}

static int row_cmp(const void *a, const void *b)
{
    const entry_t *x = ((const row_t *)a)->e, *y = ((const row_t *)b)->e;
    for (int i = 0; i < MAX_LABELS; i++) {
        size_t n = x->len[i] < y->len[i] ? x->len[i] : y->len[i];
        int c = memcmp(x->label[i], y->label[i], n);
        if (c || x->len[i] != y->len[i]) return c ? c : x->len[i] < y->len[i] ? -1 : 1;
    }
    return 0;
}

static bool same_labels(const entry_t *x, const entry_t *y)
{
    if (x->hash != y->hash) return false;
    for (int i = 0; i < MAX_LABELS; i++)
        if (x->len[i] != y->len[i] || memcmp(x->label[i], y->label[i], x->len[i]) != 0)
            return false;
    return true;
}

/* Adds worker entries e[0..cnt) of one family into mg (idx: its hash
 * index, size a power of two above twice the rows it can get). */
static void merge_worker(merged_t *mg, uint32_t *idx, size_t size, entry_t *const *e, uint32_t cnt,
                         int nv)
{
    for (uint32_t i = 0; i < cnt; i++) {
        size_t s = e[i]->hash & (size - 1);
        while (idx[s] && !same_labels(mg->rows[idx[s] - 1].e, e[i])) s = (s + 1) & (size - 1);
        if (!idx[s]) {
            mg->rows[mg->n] = (row_t){e[i], mg->vals + mg->n * (size_t)nv};
            idx[s] = (uint32_t)++mg->n;
        }
        uint64_t *v = mg->rows[idx[s] - 1].v;
        for (int k = 0; k < nv; k++) v[k] += peek(&e[i]->v[k]);
    }
}

/* Sums family id over the workers: one row per label set, sorted by
 * labels. Returns 0, or -1 on OOM. */
static int merge(gh_metrics_t *const *w, size_t nw, family_id id, merged_t *mg)
{
    int nv = SHAPE[id].nvalues;
    uint32_t *cnt = calloc(nw ? nw : 1, sizeof(uint32_t));
    size_t total = 0, size = 16;
    for (size_t i = 0; cnt && i < nw; i++)
        total += cnt[i] = w[i] ? __atomic_load_n(&w[i]->fam[id].n, __ATOMIC_ACQUIRE) : 0;
    while (size < 2 * total) size *= 2;
    uint32_t *idx = calloc(size, sizeof(uint32_t));
    *mg = (merged_t){calloc(total ? total : 1, sizeof(row_t)),
                     calloc(total ? total * (size_t)nv : 1, sizeof(uint64_t)), 0};
    int rc = cnt && idx && mg->rows && mg->vals ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nw; i++)
        if (cnt[i]) merge_worker(mg, idx, size, w[i]->fam[id].e, cnt[i], nv);
    if (rc == 0) qsort(mg->rows, mg->n, sizeof(row_t), row_cmp);
    free(cnt);
    free(idx);
    return rc;
}

static int counter_family(out_t *o, gh_metrics_t *const *w, size_t nw, family_id id,
                          const char *name, const char *help)
{
    merged_t mg;
    if (merge(w, nw, id, &mg)) return merged_free(&mg), -1;
    head(o, name, "counter", help);
    for (size_t i = 0; i < mg.n; i++) {
        series(o, name, id, mg.rows[i].e, NULL, NULL);
        putf(o, " %llu\n", (unsigned long long)mg.rows[i].v[0]);
    }
    merged_free(&mg);
    return 0;
}

/* One route's histogram: v holds its buckets, then the sum in microseconds. */
static void histogram(out_t *o, const char *name, const entry_t *e, const uint64_t *v)
{
    char n[80];
    uint64_t count = 0;
    snprintf(n, sizeof(n), "%s_bucket", name);
    for (size_t b = 0; b < NBUCKETS; b++) {
        count += v[b];
        series(o, n, F_ROUTES, e, "le", b < NBUCKETS - 1 ? BUCKETS[b].le : "+Inf");
        putf(o, " %llu\n", (unsigned long long)count);
    }
    snprintf(n, sizeof(n), "%s_sum", name);
    series(o, n, F_ROUTES, e, NULL, NULL);
    putf(o, " %llu.%06llu\n", (unsigned long long)(v[NBUCKETS] / 1000000),
         (unsigned long long)(v[NBUCKETS] % 1000000));
    snprintf(n, sizeof(n), "%s_count", name);
    series(o, n, F_ROUTES, e, NULL, NULL);
    putf(o, " %llu\n", (unsigned long long)count);
}

/* Both duration histograms; a route's upstream one only once some
 * request of it reached an upstream. */
static int histograms(out_t *o, gh_metrics_t *const *w, size_t nw)
{
    static const char REQ[] = "gatehouse_request_duration_seconds",
                      UP[] = "gatehouse_upstream_duration_seconds";
    merged_t mg;
    if (merge(w, nw, F_ROUTES, &mg)) return merged_free(&mg), -1;
    head(o, REQ, "histogram", "Time from a request's head to the end of its response, by route.");
    for (size_t i = 0; i < mg.n; i++) histogram(o, REQ, mg.rows[i].e, mg.rows[i].v);
    head(o, UP, "histogram", "Time spent on the upstream for requests that reached one, by route.");
    for (size_t i = 0; i < mg.n; i++) {
        const uint64_t *v = mg.rows[i].v + HIST_VALUES, *end = v + NBUCKETS;
        while (v < end && *v == 0) v++;
        if (v < end) histogram(o, UP, mg.rows[i].e, mg.rows[i].v + HIST_VALUES);
    }
    merged_free(&mg);
    return 0;
}

static int gauges(out_t *o, gh_metrics_t *const *w, size_t nw)
{
    static const char UP[] = "gatehouse_upstream_connections";
    uint64_t conns = 0;
    for (size_t i = 0; i < nw; i++) conns += w[i] ? peek(&w[i]->conns) : 0;
    head(o, "gatehouse_connections_open", "gauge", "Open downstream connections.");
    putf(o, "gatehouse_connections_open %lld\n", (long long)(int64_t)conns);
    merged_t mg;
    if (merge(w, nw, F_UPSTREAM, &mg)) return merged_free(&mg), -1;
    head(o, UP, "gauge", "Pooled upstream connections, leased (busy) or idle, by upstream.");
    for (size_t i = 0; i < mg.n; i++) {
        series(o, UP, F_UPSTREAM, mg.rows[i].e, "state", "busy");
        putf(o, " %lld\n", (long long)(int64_t)mg.rows[i].v[0]);
        series(o, UP, F_UPSTREAM, mg.rows[i].e, "state", "idle");
        putf(o, " %lld\n", (long long)(int64_t)mg.rows[i].v[1]);
    }
    merged_free(&mg);
    return 0;
}

/* A family of one sample without labels. */
static void single(out_t *o, const char *name, const char *type, const char *help, uint64_t v)
{
    head(o, name, type, help);
    putf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void process(out_t *o, const gh_metrics_process_t *p)
{
    static const char R[] = "gatehouse_config_reloads_total",
                      T[] = "gatehouse_config_last_reload_success_timestamp_seconds",
                      I[] = "gatehouse_config_info";
    head(o, R, "counter", "Configuration reloads, by result.");
    putf(o, "%s{result=\"ok\"} %llu\n", R, (unsigned long long)p->reloads_ok);
    putf(o, "%s{result=\"failed\"} %llu\n", R, (unsigned long long)p->reloads_failed);
    head(o, T, "gauge", "Unix time of the last successful configuration load.");
    putf(o, "%s %.3f\n", T, p->last_reload_ok);
    head(o, I, "gauge", "The configuration in use, by hash.");
    if (p->config_hash) {
        series(o, I, F_COUNT, NULL, "hash", p->config_hash);
        put(o, " 1\n", 3);
    }
    single(o, "gatehouse_config_generation", "gauge",
           "Configuration generation: 1 at startup, one more per successful reload.",
           p->config_generation);
    single(o, "gatehouse_ready", "gauge", "1 when the gateway takes traffic.", p->ready);
    single(o, "gatehouse_draining", "gauge", "1 while the gateway drains.", p->draining);
    single(o, "gatehouse_revocations", "gauge", "Revocation entries held.", p->revoked);
    single(o, "gatehouse_key_fetch_failures_total", "counter", "Failed fetches of remote key sets.",
           p->key_fetch_failures);
}

char *gh_metrics_render(gh_metrics_t *const *workers, size_t n, const gh_metrics_process_t *p,
                        size_t *len)
{
    static const gh_metrics_process_t none = {0};
    out_t o = {0};
    int rc = counter_family(&o, workers, n, F_REQUESTS, "gatehouse_http_requests_total",
                            "HTTP requests answered, by route, method and status class.");
    if (rc == 0) rc = histograms(&o, workers, n);
    if (rc == 0)
        rc = counter_family(&o, workers, n, F_JWT, "gatehouse_jwt_validations_total",
                            "Bearer token checks, by issuer and result.");
    if (rc == 0)
        rc = counter_family(&o, workers, n, F_LIMIT, "gatehouse_rate_limit_decisions_total",
                            "Rate-limit decisions, by scope and decision.");
    if (rc == 0)
        rc = counter_family(&o, workers, n, F_REDIS, "gatehouse_redis_errors_total",
                            "Failed Redis calls and dropped connections, by kind.");
    if (rc == 0) rc = gauges(&o, workers, n);
    if (rc == 0) process(&o, p ? p : &none);
    if (rc || o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}
