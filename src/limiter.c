#include "limiter.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "worker.h"

/* GCRA for a batch in one script, on Redis's clock so that every gateway
 * instance decides on the same time; the same arithmetic as gh_gcra. Each
 * key comes once, with how many decisions to make on it in a row (a hot
 * key, such as a tenant's, costs one GET and one SET per batch). KEYS: the
 * keys; ARGV: per key, its emission interval and burst window in
 * microseconds and the count. Returns "allowed remaining reset
 * retry_after" per decision (times in microseconds), comma-separated, in
 * order: one string, one allocation. */
static const char GCRA_SRC[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local stored = redis.call('MGET', unpack(KEYS))\n"
    "local out, fmt, max, floor = {}, string.format, math.max, math.floor\n"
    "for i = 1, #KEYS do\n"
    "  local T, tau, n = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), "
    "tonumber(ARGV[3 * i])\n"
    "  local old = tonumber(stored[i]) or 0\n"
    "  local tat = old\n"
    "  for j = 1, n do\n"
    "    local t0 = max(tat, now)\n"
    "    local new = t0 + T\n"
    "    if new - now > tau then\n"
    "      out[#out + 1] = fmt('0 0 %d %d', t0 - now, new - tau - now)\n"
    "    else\n"
    "      tat = new\n"
    "      out[#out + 1] = fmt('1 %d %d 0', floor((tau - (new - now)) / T), new - now)\n"
    "    end\n"
    "  end\n"
    "  if tat ~= old then\n"
    "    redis.call('SET', KEYS[i], fmt('%d', tat), 'PX', math.ceil((tat - now) / 1000))\n"
    "  end\n"
    "end\n"
    "return table.concat(out, ',')\n";

#define BATCH_MAX 128 /* keys per script call */

/* The decisions sent in one script call, by slot; NULL: the request ended. */
typedef struct gh_limit_call_s {
    struct gh_limit_batch_s *b;
    int n;
    gh_req_t *reqs[];
} call_t;

/* A worker's global decisions waiting to go to Redis together: at the end
 * of the loop iteration's I/O, unless as many batches as the worker has
 * connections are in flight already; then when one comes back. Under load
 * the batches grow with the round trip, and Redis (and the kernel) see
 * one call where there were dozens. */
struct gh_limit_batch_s {
    uv_check_t check;
    gh_link_t queue;
    gh_redis_t *rd;
    int in_flight, max_in_flight;
    bool closing;
};

static gh_redis_script_t gcra_script;
static gh_limit_table_t *table;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static size_t table_keys = 100000;
static _Atomic uint64_t n_allowed, n_denied, n_errors;

static void init_once(void)
{
    gh_redis_script_init(&gcra_script, GCRA_SRC);
    table = gh_limit_table_new(table_keys);
}

int gh_limiter_init(size_t max_keys)
{
    table_keys = max_keys;
    pthread_once(&once, init_once);
    return table ? 0 : -1;
}

void gh_limiter_shutdown(void)
{
    gh_limit_table_free(table);
    table = NULL;
}

gh_limiter_stats_t gh_limiter_stats(void)
{
    return (gh_limiter_stats_t){atomic_load(&n_allowed), atomic_load(&n_denied),
                                atomic_load(&n_errors)};
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Keeps what the headers of r's decision under spec name. */
static void remember(gh_req_t *r, const gh_limit_spec_t *spec)
{
    size_t n =
        spec->name_len < sizeof(r->limit.name) - 1 ? spec->name_len : sizeof(r->limit.name) - 1;
    for (size_t i = 0; i < n; i++) { /* a valid sf-string: printable, no quote or backslash */
        char ch = spec->name[i];
        r->limit.name[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? ch : '_';
    }
    r->limit.name[n] = '\0';
    r->limit.window = spec->conf.per;
    r->limit.res.limit = spec->conf.burst;
    r->limit.headers = r->limit.headers || spec->headers;
}

/* Counts a decision of scope ("local", "global") in the worker's metrics
 * (`gatehouse test` requests have no worker). */
static void count(const gh_req_t *r, const char *scope, const char *decision)
{
    if (r->w && r->w->metrics) gh_metrics_limit(r->w->metrics, scope, decision);
}

/* Records a decision of scope on r. */
static void decided(gh_req_t *r, const gh_limit_result_t *res, const char *scope)
{
    count(r, scope, res->allowed ? "allowed" : "denied");
    r->limit.decided = true;
    r->limit.failed = r->limit.failed_closed = false;
    r->limit.res = *res;
    atomic_fetch_add_explicit(res->allowed ? &n_allowed : &n_denied, 1, memory_order_relaxed);
}

/* Redis could not decide: the spec's on_error says what happens. Logged
 * at most once a second per thread, counted always. */
static void failed(gh_req_t *r, bool deny, const char *why)
{
    static _Thread_local time_t last;
    time_t now = time(NULL);
    atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
    count(r, "global", "error");
    if (now != last)
        gh_log(GH_LOG_WARN, "rate limit: redis failed (%s); on_error = \"%s\" (request_id=%s)", why,
               deny ? "deny" : "allow", r->id);
    last = now;
    r->limit.decided = true;
    r->limit.failed = true;
    r->limit.failed_closed = deny;
    r->limit.error = deny ? "the rate limiter is unavailable" : "redis unavailable";
    r->limit.res = (gh_limit_result_t){.allowed = !deny, .limit = r->limit.res.limit};
}

/* Arena cleanup: a request that ends while its decision is queued or
 * sent is taken out of it. */
static void leave_batch(void *arg)
{
    gh_req_t *r = arg;
    if (r->limit.link.next) gh_list_remove(&r->limit.link);
    if (r->limit.call) r->limit.call->reqs[r->limit.slot] = NULL;
    r->limit.call = NULL;
}

/* Reads "a r reset retry" at *p into res; false when malformed. */
static bool parse_one(const char **p, gh_limit_result_t *res)
{
    long long v[4];
    char *end = (char *)*p;
    for (int i = 0; i < 4; i++) {
        const char *start = end;
        v[i] = strtoll(start, &end, 10);
        if (end == start) return false;
    }
    *p = *end == ',' ? end + 1 : end;
    res->allowed = v[0] == 1;
    res->remaining = (double)v[1];
    res->reset = (double)v[2] / 1e6;
    res->retry_after = (double)v[3] / 1e6;
    return true;
}

/* Takes slot i's request off the call and re-enters its phase with a
 * decision (or the failure). */
static void settle(call_t *c, int i, const gh_limit_result_t *res, const char *err)
{
    gh_req_t *r = c->reqs[i];
    if (!r) return;
    c->reqs[i] = NULL;
    r->limit.call = NULL;
    r->limit.pending = false;
    if (err) {
        failed(r, r->limit.deny_on_error, err);
    } else {
        gh_limit_result_t d = *res;
        d.limit = r->limit.res.limit;
        decided(r, &d, "global");
    }
    gh_req_run(r);
}

static void on_check(uv_check_t *h);

static void call_done(void *arg, const redisReply *reply, const char *err)
{
    call_t *c = arg;
    gh_limit_batch_t *b = c->b;
    b->in_flight--;
    const char *p = !err && reply->type == REDIS_REPLY_STRING ? reply->str : NULL;
    if (!err && !p) err = "unexpected reply from the GCRA script";
    for (int i = 0; i < c->n; i++) {
        gh_limit_result_t res = {0};
        if (!err && !parse_one(&p, &res)) err = "unexpected reply from the GCRA script";
        settle(c, i, &res, err);
    }
    free(c);
    if (!b->closing && !gh_list_empty(&b->queue)) uv_check_start(&b->check, on_check);
}

/* One key of a batch, and how many of its decisions it carries. */
typedef struct {
    const char *key;
    size_t klen;
    int64_t t_us, tau_us;
    int n;
} entry_t;

/* The entry for r's key and parameters, added when new; returns its index. */
static int entry_of(entry_t *e, int *ne, const gh_req_t *r)
{
    const gh_req_limit_t *l = &r->limit;
    for (int i = 0; i < *ne; i++)
        if (e[i].klen == l->klen && e[i].t_us == l->t_us && e[i].tau_us == l->tau_us &&
            memcmp(e[i].key, l->key, l->klen) == 0)
            return i;
    e[*ne] = (entry_t){l->key, l->klen, l->t_us, l->tau_us, 0};
    return (*ne)++;
}

/* Sends up to BATCH_MAX queued decisions in one script call, the
 * decisions on one key side by side in the call's slots. (When Redis
 * cannot take it, they are settled as failed at once.) */
static void send_batch(gh_limit_batch_t *b)
{
    entry_t e[BATCH_MAX];
    gh_req_t *taken[BATCH_MAX];
    int of[BATCH_MAX], at[BATCH_MAX], n = 0, ne = 0;
    call_t *c = malloc(sizeof(*c) + BATCH_MAX * sizeof(gh_req_t *));
    if (!c) return; /* out of memory: the queue is tried again next iteration */
    while (n < BATCH_MAX && !gh_list_empty(&b->queue)) {
        gh_req_t *r = gh_container_of(b->queue.next, gh_req_t, limit.link);
        gh_list_remove(&r->limit.link);
        taken[n] = r;
        of[n] = entry_of(e, &ne, r);
        e[of[n++]].n++;
    }
    for (int i = 0, pos = 0; i < ne; pos += e[i++].n) at[i] = pos;
    for (int k = 0; k < n; k++) {
        int slot = at[of[k]]++;
        c->reqs[slot] = taken[k];
        taken[k]->limit.call = c;
        taken[k]->limit.slot = slot;
    }
    c->n = n;
    c->b = b;
    const char *argv[4 * BATCH_MAX];
    size_t lens[4 * BATCH_MAX];
    char nums[3 * BATCH_MAX][24];
    for (int i = 0; i < ne; i++) {
        argv[i] = e[i].key, lens[i] = e[i].klen;
        snprintf(nums[3 * i], 24, "%lld", (long long)e[i].t_us);
        snprintf(nums[3 * i + 1], 24, "%lld", (long long)e[i].tau_us);
        snprintf(nums[3 * i + 2], 24, "%d", e[i].n);
        for (int k = 0; k < 3; k++)
            argv[ne + 3 * i + k] = nums[3 * i + k], lens[ne + 3 * i + k] = strlen(nums[3 * i + k]);
    }
    const char *why;
    if (gh_redis_eval(b->rd, &gcra_script, ne, 4 * ne, argv, lens, call_done, c, NULL, &why) == 0) {
        b->in_flight++;
        return;
    }
    for (int i = 0; i < n; i++) settle(c, i, NULL, why);
    free(c);
}

/* After this iteration's I/O: everything queued goes to Redis. */
static void on_check(uv_check_t *h)
{
    gh_limit_batch_t *b = h->data;
    gh_redis_hold(b->rd);
    while (!gh_list_empty(&b->queue) && b->in_flight < b->max_in_flight) send_batch(b);
    uv_check_stop(h);
    gh_redis_flush(b->rd);
}

gh_limit_batch_t *gh_limiter_batch_new(uv_loop_t *loop, gh_redis_t *rd, int max_in_flight)
{
    gh_limit_batch_t *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    gh_list_init(&b->queue);
    b->rd = rd;
    b->max_in_flight = max_in_flight;
    uv_check_init(loop, &b->check);
    uv_unref((uv_handle_t *)&b->check);
    b->check.data = b;
    return b;
}

static void batch_closed(uv_handle_t *h)
{
    free(h->data);
}

void gh_limiter_batch_close(gh_limit_batch_t *b)
{
    if (!b) return;
    b->closing = true;
    uv_close((uv_handle_t *)&b->check, batch_closed);
}

/* Queues a global decision for key. Returns 0 (waiting) or -1 (failed now). */
static int global_start(gh_req_t *r, const char *key, size_t klen, const gh_limit_spec_t *spec,
                        const char **why)
{
    const char *prefix = r->cfg->redis->prefix;
    size_t pl = strlen(prefix);
    char *k = gh_arena_alloc(r->arena, pl + 3 + klen);
    if (!k) return *why = "out of memory", -1;
    memcpy(k, prefix, pl);
    memcpy(k + pl, "rl:", 3);
    memcpy(k + pl + 3, key, klen);
    if (!r->limit.cleanup) {
        if (gh_arena_cleanup_add(r->arena, leave_batch, r)) return *why = "out of memory", -1;
        r->limit.cleanup = true;
    }
    r->limit.key = k;
    r->limit.klen = pl + 3 + klen;
    gh_gcra_params(&spec->conf, &r->limit.t_us, &r->limit.tau_us);
    r->limit.decided = false;
    r->limit.pending = true;
    r->limit.deny_on_error = spec->deny_on_error;
    gh_limit_batch_t *b = r->w->limits;
    if (gh_list_empty(&b->queue) && b->in_flight < b->max_in_flight)
        uv_check_start(&b->check, on_check);
    gh_list_push_tail(&b->queue, &r->limit.link);
    return 0;
}

int gh_limiter_decide(gh_req_t *r, const char *key, size_t klen, const gh_limit_spec_t *spec,
                      const char **err)
{
    if (!gh_limit_conf_valid(&spec->conf))
        return *err = "rate and per must be positive numbers and burst at least 1", -1;
    if (klen > GH_LIMIT_KEY_MAX) return *err = "the key is longer than 1024 bytes", -1;
    remember(r, spec);
    if (spec->global && r->w && r->w->limits) {
        const char *why;
        if (global_start(r, key, klen, spec, &why) == 0) return 0;
        failed(r, spec->deny_on_error, why);
        return 1;
    }
    gh_limit_result_t res;
    if (gh_limiter_init(table_keys) ||
        gh_limit_local(table, key, klen, &spec->conf, mono_us(), &res)) {
        count(r, "local", "error");
        return *err = "out of memory", -1;
    }
    decided(r, &res, "local");
    return 1;
}

size_t gh_limiter_headers(const gh_req_t *r, char *out, size_t cap)
{
    const gh_req_limit_t *l = &r->limit;
    if (!l->decided || l->failed) return 0;
    int n = snprintf(out, cap,
                     "RateLimit-Policy: \"%s\";q=%lld;w=%lld\r\n"
                     "RateLimit: \"%s\";r=%lld;t=%lld\r\n",
                     l->name, (long long)floor(l->res.limit), (long long)ceil(l->window), l->name,
                     (long long)floor(l->res.remaining),
                     (long long)ceil(l->res.allowed ? l->res.reset : l->res.retry_after));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void gh_limiter_refuse(gh_req_t *r)
{
    char hdrs[512];
    size_t n = gh_limiter_headers(r, hdrs, sizeof(hdrs));
    double ra = ceil(r->limit.res.retry_after);
    snprintf(hdrs + n, sizeof(hdrs) - n, "Retry-After: %lld\r\n", (long long)(ra < 1 ? 1 : ra));
    gh_req_error_with(r, 429, "too many requests", hdrs);
}

void gh_limiter_unavailable(gh_req_t *r)
{
    gh_req_error_with(r, 503, "the rate limiter is unavailable", "Retry-After: 1\r\n");
}

/* Appends a claim's value (a string or a number) to out; false when the
 * claim is missing or of another type. */
static bool claim_value(const gh_req_t *r, const char *name, char *out, size_t cap, size_t *n)
{
    const json_t *v = r->claims ? json_object_get(r->claims, name) : NULL;
    if (json_is_string(v)) {
        size_t len = json_string_length(v) < cap - *n ? json_string_length(v) : cap - *n;
        memcpy(out + *n, json_string_value(v), len);
        *n += len;
        return len > 0;
    }
    if (!json_is_number(v)) return false;
    int k = snprintf(out + *n, cap - *n, "%.17g", json_number_value(v));
    if (k > 0) *n += (size_t)k < cap - *n ? (size_t)k : cap - *n - 1;
    return true;
}

/* The shorthand's key: the route, what it counts by, and the value (the
 * client's address instead when the header or claim is missing). Long
 * values are cut at the key limit. */
static size_t route_key(const gh_req_t *r, const gh_route_limit_t *l, char *out, size_t cap)
{
    static const char *const tag[] = {"ip", "sub", "header", "claim"};
    size_t n = (size_t)snprintf(out, cap, "%s|%s|", r->route->name, tag[l->by]);
    if (n >= cap) return cap - 1;
    size_t at = n;
    bool found = false;
    if (l->by == GH_LIMIT_BY_SUB || l->by == GH_LIMIT_BY_CLAIM) {
        found = claim_value(r, l->by == GH_LIMIT_BY_SUB ? "sub" : l->by_name, out, cap, &n);
    } else if (l->by == GH_LIMIT_BY_HEADER) {
        const gh_hdr_t *h = gh_head_find(&r->head, l->by_name);
        size_t len = h ? h->value_len : 0;
        if (len > cap - n) len = cap - n;
        if (len) memcpy(out + n, gh_hdr_value(&r->head, h), len);
        n += len;
        found = len > 0;
    }
    if (!found) {
        n = at;
        int k = snprintf(out + n, cap - n, "%s%s",
                         l->by == GH_LIMIT_BY_IP ? "" : "ip:", r->client_ip ? r->client_ip : "-");
        n += k > 0 && (size_t)k < cap - n ? (size_t)k : 0;
    }
    return n;
}

/* Ends r as its decision says, or lets it go on. */
static gh_phase_rc verdict(gh_req_t *r)
{
    if (r->limit.failed_closed) {
        gh_limiter_unavailable(r);
        return GH_PHASE_STOP;
    }
    if (!r->limit.res.allowed) {
        gh_limiter_refuse(r);
        return GH_PHASE_STOP;
    }
    return GH_PHASE_NEXT;
}

gh_phase_rc gh_limit_phase(gh_req_t *r)
{
    const gh_route_limit_t *l = r->route->rate_limit;
    if (!l) return GH_PHASE_NEXT;
    if (r->limit.pending) return GH_PHASE_WAIT;
    if (!r->limit.decided) {
        char key[GH_LIMIT_KEY_MAX];
        size_t klen = route_key(r, l, key, sizeof(key));
        gh_limit_spec_t spec = {{l->rate, l->per, l->burst},
                                l->global,
                                l->deny_on_error,
                                l->headers,
                                l->name,
                                strlen(l->name)};
        const char *err;
        int rc = gh_limiter_decide(r, key, klen, &spec, &err);
        if (rc < 0) {
            gh_log(GH_LOG_ERROR, "rate limit of route %s: %s (request_id=%s)", r->route->name, err,
                   r->id);
            gh_req_error(r, 500, "the rate limit could not be decided");
            return GH_PHASE_STOP;
        }
        if (rc == 0) return GH_PHASE_WAIT;
    }
    return verdict(r);
}
