#include "keysource.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "jwt.h"
#include "list.h"
#include "log.h"

#define MAX_DOCUMENT  (1024 * 1024)
#define NEG_SLOTS     32  /* kids known to be missing, most recent first out */
#define PENDING_KIDS  16  /* kids waiting on the fetch under way */
#define KID_MAX       128 /* longer kids are never negative-cached */
#define BACKOFF_MAX_S 30  /* failed fetches retry after 1, 2, 4 ... up to this */

typedef struct {
    char kid[KID_MAX];
    size_t len;
    uint64_t until_ms;
} neg_kid_t;

struct gh_keysource_s {
    int refs; /* atomic: each config snapshot sharing it (a reload keeps a remote source) */
    char *name;
    bool remote;
    gh_keysource_conf_t conf;

    uv_mutex_t mu; /* guards everything down to last_error */
    gh_keyset_t *cur;
    uint64_t seq; /* completed fetches */
    uint64_t failures;
    bool wanted;    /* a worker asked for a fetch the loop has not begun */
    bool fetching;  /* a fetch is under way */
    bool kid_fetch; /* ... and a worker asked for it (an unknown kid) */
    uint64_t last_kid_fetch_ms;
    neg_kid_t neg[NEG_SLOTS];
    size_t neg_next;
    struct {
        char kid[KID_MAX];
        size_t len;
    } pending[PENDING_KIDS];
    size_t npending;
    bool async_open;
    char last_error[256];

    /* The main loop's alone. */
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t timer;
    bool started;
    gh_http_req_t *http;
    bool discovering;
    char *jwks_uri; /* from discovery */
    char *last_body;
    size_t last_body_len;
    unsigned backoff_s;
    gh_keys_notify_fn notify;
    void *notify_arg;
    gh_link_t running; /* in running_sources while started */
};

/* Every started source, whichever snapshots hold it (main thread). */
static gh_link_t running_sources = {&running_sources, &running_sources};

static uint64_t next_gen = 1; /* atomic: every key set in the process is distinct */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

void gh_keysource_conf_defaults(gh_keysource_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->refresh = 300;
    c->refresh_min = 30;
    c->refresh_max = 3600;
    c->cooldown = 10;
    c->negative_ttl = 60;
    c->timeout = 5;
    c->wait = 3;
    c->startup = GH_KEYS_START_503;
    c->startup_timeout = 30;
}

static gh_keyset_t *keyset_new(gh_jwks_t *keys, bool immortal)
{
    gh_keyset_t *ks = calloc(1, sizeof(*ks));
    if (!ks) return NULL;
    ks->refs = 1;
    ks->immortal = immortal;
    ks->gen = __atomic_fetch_add(&next_gen, 1, __ATOMIC_RELAXED);
    ks->jwks = *keys;
    memset(keys, 0, sizeof(*keys));
    return ks;
}

static void keyset_free(gh_keyset_t *ks)
{
    gh_jwks_free(&ks->jwks);
    free(ks);
}

void gh_keyset_release(gh_keyset_t *ks)
{
    if (!ks || ks->immortal) return;
    if (__atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) == 0) keyset_free(ks);
}

static gh_keysource_t *source_new(const char *name, bool remote)
{
    gh_keysource_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->refs = 1;
    s->name = strdup(name ? name : "");
    s->remote = remote;
    uv_mutex_init(&s->mu);
    gh_list_init(&s->running);
    return s;
}

gh_keysource_t *gh_keysource_local(gh_jwks_t *keys)
{
    gh_keysource_t *s = source_new("", false);
    if (!s) return NULL;
    s->cur = keyset_new(keys, true);
    if (!s->cur) return gh_keysource_free(s), NULL;
    return s;
}

gh_keysource_t *gh_keysource_remote(const char *name, gh_keysource_conf_t *conf)
{
    gh_keysource_t *s = source_new(name, true);
    if (!s) return NULL;
    s->conf = *conf;
    memset(conf, 0, sizeof(*conf));
    return s;
}

gh_keysource_t *gh_keysource_ref(gh_keysource_t *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

bool gh_keysource_last_ref(const gh_keysource_t *s)
{
    return __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE) == 1;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool gh_keysource_same(const gh_keysource_t *a, const gh_keysource_t *b)
{
    const gh_keysource_conf_t *x = &a->conf, *y = &b->conf;
    return a->remote && b->remote && same_str(a->name, b->name) &&
           same_str(x->jwks_url, y->jwks_url) && same_str(x->discovery_url, y->discovery_url) &&
           same_str(x->issuer, y->issuer) && same_str(x->ca_file, y->ca_file) &&
           x->algorithms == y->algorithms && x->refresh == y->refresh &&
           x->refresh_min == y->refresh_min && x->refresh_max == y->refresh_max &&
           x->cooldown == y->cooldown && x->negative_ttl == y->negative_ttl &&
           x->timeout == y->timeout && x->wait == y->wait && x->startup == y->startup &&
           x->startup_timeout == y->startup_timeout;
}

void gh_keysource_free(gh_keysource_t *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (s->cur) {
        s->cur->immortal = false;
        gh_keyset_release(s->cur);
    }
    uv_mutex_destroy(&s->mu);
    free(s->conf.jwks_url);
    free(s->conf.discovery_url);
    free(s->conf.issuer);
    free(s->conf.ca_file);
    free(s->jwks_uri);
    free(s->last_body);
    free(s->name);
    free(s);
}

bool gh_keysource_is_remote(const gh_keysource_t *s)
{
    return s->remote;
}

const gh_keysource_conf_t *gh_keysource_conf(const gh_keysource_t *s)
{
    return &s->conf;
}

/* ---- workers ---- */

gh_keyset_t *gh_keysource_acquire(gh_keysource_t *s)
{
    if (!s->remote) return s->cur;
    uv_mutex_lock(&s->mu);
    gh_keyset_t *ks = s->cur;
    if (ks) __atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
    uv_mutex_unlock(&s->mu);
    return ks;
}

uint64_t gh_keysource_seq(gh_keysource_t *s)
{
    uv_mutex_lock(&s->mu);
    uint64_t v = s->seq;
    uv_mutex_unlock(&s->mu);
    return v;
}

uint64_t gh_keysource_failures(gh_keysource_t *s)
{
    uv_mutex_lock(&s->mu);
    uint64_t v = s->failures;
    uv_mutex_unlock(&s->mu);
    return v;
}

static bool kid_is_negative(gh_keysource_t *s, const char *kid, size_t len, uint64_t now)
{
    for (size_t i = 0; i < NEG_SLOTS; i++) {
        const neg_kid_t *n = &s->neg[i];
        if (n->until_ms > now && n->len == len && memcmp(n->kid, kid, len) == 0) return true;
    }
    return false;
}

static void add_pending(gh_keysource_t *s, const char *kid, size_t len)
{
    if (len > KID_MAX || s->npending == PENDING_KIDS) return;
    for (size_t i = 0; i < s->npending; i++)
        if (s->pending[i].len == len && memcmp(s->pending[i].kid, kid, len) == 0) return;
    memcpy(s->pending[s->npending].kid, kid, len);
    s->pending[s->npending++].len = len;
}

bool gh_keysource_unknown_kid(gh_keysource_t *s, const char *kid, size_t kid_len, uint64_t *seq)
{
    if (!s->remote) return false;
    uint64_t now = now_ms();
    bool wait = false;
    uv_mutex_lock(&s->mu);
    /* A scheduled refresh under way may have been answered before the new
     * key was published: a kid fetch asked for now runs after it, and the
     * request waits for that one (one completion more). */
    uint64_t after = s->fetching && !s->kid_fetch ? 1 : 0;
    if (kid && kid_is_negative(s, kid, kid_len, now)) {
        /* known missing: answer at once */
    } else if (s->fetching && s->kid_fetch) {
        wait = true; /* single-flight: ride the kid fetch under way */
        after = 0;
    } else if (s->wanted) {
        wait = true; /* ride the kid fetch already asked for */
    } else if (s->last_kid_fetch_ms &&
               now - s->last_kid_fetch_ms < (uint64_t)(s->conf.cooldown * 1000)) {
        /* cooling down: a flood of kids cannot hammer the identity provider */
    } else if (s->async_open) {
        s->last_kid_fetch_ms = now;
        s->wanted = true;
        wait = true;
        if (!s->fetching) uv_async_send(&s->async); /* else fetch_done starts it */
    }
    if (wait) {
        if (kid) add_pending(s, kid, kid_len);
        *seq = s->seq + after;
    }
    uv_mutex_unlock(&s->mu);
    return wait;
}

/* ---- fetching, on the main loop ---- */

static void start_fetch(gh_keysource_t *s);

static void on_timer(uv_timer_t *t)
{
    start_fetch(t->data);
}

static void schedule(gh_keysource_t *s, double seconds)
{
    if (s->started) uv_timer_start(&s->timer, on_timer, (uint64_t)(seconds * 1000), 0);
}

static bool has_key_for(const gh_jwks_t *set, uint32_t algorithms)
{
    for (size_t i = 0; i < set->n; i++) {
        const gh_jwk_t *k = &set->keys[i];
        for (int a = 0; a < GH_ALG_COUNT; a++) {
            if (!(algorithms & (1u << a))) continue;
            if (k->alg && strcmp(k->alg, gh_jwt_alg_name((gh_jwt_alg)a)) != 0) continue;
            if (a >= GH_ALG_RS256 && a <= GH_ALG_PS512 && k->type == GH_KEY_RSA) return true;
            if (a >= GH_ALG_ES256 && a <= GH_ALG_ES512 && k->type == GH_KEY_EC) return true;
            if (a == GH_ALG_EDDSA && k->type == GH_KEY_OKP) return true;
        }
    }
    return false;
}

static bool set_has_kid(const gh_keyset_t *ks, const char *kid, size_t len)
{
    for (size_t i = 0; ks && i < ks->jwks.n; i++) {
        const gh_jwk_t *k = &ks->jwks.keys[i];
        if (!k->kid || (k->kid_len == len && memcmp(k->kid, kid, len) == 0)) return true;
    }
    return false;
}

/* Records a fetch's end: a new set when it changed, the negative cache for
 * kids still missing, counters; then schedules the next and tells workers. */
static void fetch_done(gh_keysource_t *s, gh_jwks_t *keys, const char *body, size_t body_len,
                       long max_age, const char *error)
{
    gh_keyset_t *old = NULL, *fresh = NULL;
    bool changed = false;
    if (keys) {
        changed = !s->last_body || s->last_body_len != body_len ||
                  memcmp(s->last_body, body, body_len) != 0;
        if (changed) {
            fresh = keyset_new(keys, false);
            char *copy = malloc(body_len + 1);
            if (!fresh || !copy) {
                if (fresh) keyset_free(fresh);
                free(copy);
                fresh = NULL;
                keys = NULL;
                error = "out of memory";
            } else {
                memcpy(copy, body, body_len);
                free(s->last_body);
                s->last_body = copy;
                s->last_body_len = body_len;
            }
        }
    }
    uint64_t now = now_ms();
    size_t nkeys = 0;
    uv_mutex_lock(&s->mu);
    bool kid_fetch = s->kid_fetch, again = s->wanted;
    if (keys) {
        if (fresh) {
            old = s->cur;
            s->cur = fresh;
        }
        for (size_t i = 0; kid_fetch && i < s->npending; i++) {
            if (set_has_kid(s->cur, s->pending[i].kid, s->pending[i].len)) continue;
            neg_kid_t *n = &s->neg[s->neg_next++ % NEG_SLOTS];
            memcpy(n->kid, s->pending[i].kid, s->pending[i].len);
            n->len = s->pending[i].len;
            n->until_ms = now + (uint64_t)(s->conf.negative_ttl * 1000);
        }
        s->last_error[0] = '\0';
    } else {
        s->failures++;
        snprintf(s->last_error, sizeof(s->last_error), "%s", error);
    }
    nkeys = s->cur ? s->cur->jwks.n : 0;
    if (kid_fetch || !again) s->npending = 0; /* kids asked for later wait for the next fetch */
    s->fetching = false;
    s->kid_fetch = false;
    s->seq++;
    uv_mutex_unlock(&s->mu);
    if (old) gh_keyset_release(old);
    if (keys) gh_jwks_free(keys);

    const char *url = s->jwks_uri ? s->jwks_uri : s->conf.jwks_url;
    if (!error) {
        s->backoff_s = 0;
        double life = max_age >= 0 ? (double)max_age : s->conf.refresh;
        if (life < s->conf.refresh_min) life = s->conf.refresh_min;
        if (life > s->conf.refresh_max) life = s->conf.refresh_max;
        if (changed)
            gh_log(GH_LOG_INFO, "issuer '%s': %zu signing keys from %s (next refresh in %.0fs)",
                   s->name, nkeys, url, life * 0.8);
        schedule(s, life * 0.8); /* ahead of expiry */
    } else {
        unsigned cap =
            s->conf.refresh_min < BACKOFF_MAX_S ? (unsigned)s->conf.refresh_min : BACKOFF_MAX_S;
        if (cap < 1) cap = 1;
        s->backoff_s = s->backoff_s ? s->backoff_s * 2 : 1;
        if (s->backoff_s > cap) s->backoff_s = cap;
        if (nkeys)
            gh_log(GH_LOG_WARN,
                   "issuer '%s': key refresh failed: %s; still serving the %zu keys last fetched "
                   "(retry in %us)",
                   s->name, error, nkeys, s->backoff_s);
        else
            gh_log(GH_LOG_WARN,
                   "issuer '%s': cannot fetch signing keys: %s; its routes answer 503 until they "
                   "arrive (retry in %us)",
                   s->name, error, s->backoff_s);
        if (s->jwks_uri && s->conf.discovery_url) { /* discover again next time */
            free(s->jwks_uri);
            s->jwks_uri = NULL;
        }
        schedule(s, s->backoff_s);
    }
    if (again) start_fetch(s); /* a kid fetch asked for during a scheduled one */
    if (s->notify) s->notify(s->notify_arg);
}

static void on_fetched(void *arg, const gh_http_result_t *res);

static void fetch(gh_keysource_t *s, const char *url)
{
    char err[256];
    gh_http_opts_t o = {
        .timeout = s->conf.timeout, .max_body = MAX_DOCUMENT, .ca_file = s->conf.ca_file};
    s->http = gh_http_get(s->loop, url, &o, on_fetched, s, err, sizeof(err));
    if (!s->http) fetch_done(s, NULL, NULL, 0, -1, err);
}

/* The discovery document names the issuer we expect and a jwks_uri. */
static void discovered(gh_keysource_t *s, const gh_http_result_t *res)
{
    char err[300];
    json_error_t jerr;
    json_t *doc = json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *iss = json_object_get(doc, "issuer");
    const json_t *uri = json_object_get(doc, "jwks_uri");
    gh_url_t u;
    if (!json_is_object(doc)) {
        snprintf(err, sizeof(err), "discovery document %s is not a JSON object",
                 s->conf.discovery_url);
    } else if (!json_is_string(iss) || json_string_length(iss) != strlen(s->conf.issuer) ||
               memcmp(json_string_value(iss), s->conf.issuer, strlen(s->conf.issuer)) != 0) {
        snprintf(err, sizeof(err), "discovery document names issuer '%.100s', not '%.100s'",
                 json_is_string(iss) ? json_string_value(iss) : "(none)", s->conf.issuer);
    } else if (!json_is_string(uri) ||
               gh_url_parse(json_string_value(uri), &u, err, sizeof(err)) != 0) {
        if (!json_is_string(uri)) snprintf(err, sizeof(err), "discovery document has no jwks_uri");
    } else {
        free(s->jwks_uri);
        s->jwks_uri = strdup(json_string_value(uri));
        json_decref(doc);
        return fetch(s, s->jwks_uri);
    }
    json_decref(doc);
    fetch_done(s, NULL, NULL, 0, -1, err);
}

static void on_fetched(void *arg, const gh_http_result_t *res)
{
    gh_keysource_t *s = arg;
    s->http = NULL;
    const char *url = s->discovering ? s->conf.discovery_url
                      : s->jwks_uri  ? s->jwks_uri
                                     : s->conf.jwks_url;
    char err[600];
    if (res->status != 200) {
        if (res->status)
            snprintf(err, sizeof(err), "%s answered HTTP %d", url, res->status);
        else
            snprintf(err, sizeof(err), "%s: %s", url, res->error);
        s->discovering = false;
        return fetch_done(s, NULL, NULL, 0, -1, err);
    }
    if (s->discovering) {
        s->discovering = false;
        return discovered(s, res);
    }
    gh_jwks_t keys = {0};
    char why[400];
    if (gh_jwks_parse(res->body, res->body_len, &keys, why, sizeof(why)) != 0) {
        snprintf(err, sizeof(err), "%s: %s", url, why);
        return fetch_done(s, NULL, NULL, 0, -1, err);
    }
    if (!has_key_for(&keys, s->conf.algorithms)) {
        gh_jwks_free(&keys);
        snprintf(err, sizeof(err), "%s holds no key for the issuer's algorithms", url);
        return fetch_done(s, NULL, NULL, 0, -1, err);
    }
    fetch_done(s, &keys, res->body, res->body_len, res->max_age, NULL);
}

static void start_fetch(gh_keysource_t *s)
{
    if (s->http || !s->started) return;
    uv_timer_stop(&s->timer);
    uv_mutex_lock(&s->mu);
    s->fetching = true;
    s->kid_fetch = s->wanted;
    s->wanted = false;
    uv_mutex_unlock(&s->mu);
    const char *url = s->jwks_uri ? s->jwks_uri : s->conf.jwks_url;
    s->discovering = url == NULL;
    fetch(s, s->discovering ? s->conf.discovery_url : url);
}

static void on_async(uv_async_t *a)
{
    gh_keysource_t *s = a->data;
    uv_mutex_lock(&s->mu);
    bool wanted = s->wanted;
    uv_mutex_unlock(&s->mu);
    if (wanted) start_fetch(s);
}

int gh_keysource_start(gh_keysource_t *s, uv_loop_t *loop, gh_keys_notify_fn notify, void *arg)
{
    if (!s->remote || s->started) return 0;
    s->loop = loop;
    s->notify = notify;
    s->notify_arg = arg;
    int rc = uv_async_init(loop, &s->async, on_async);
    if (rc) return rc;
    s->async.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_mutex_lock(&s->mu);
    s->async_open = true;
    uv_mutex_unlock(&s->mu);
    s->started = true;
    gh_list_push_tail(&running_sources, &s->running);
    start_fetch(s);
    return 0;
}

bool gh_keysource_stop(gh_keysource_t *s)
{
    if (!s->started) return false;
    s->started = false;
    gh_list_remove(&s->running);
    gh_http_cancel(s->http);
    s->http = NULL;
    uv_mutex_lock(&s->mu);
    s->async_open = false;
    s->fetching = s->wanted = false;
    uv_mutex_unlock(&s->mu);
    uv_close((uv_handle_t *)&s->async, NULL);
    uv_close((uv_handle_t *)&s->timer, NULL);
    return true;
}

void gh_keysource_stop_all(void)
{
    while (!gh_list_empty(&running_sources))
        gh_keysource_stop(gh_container_of(running_sources.next, gh_keysource_t, running));
}

bool gh_keysource_ready(gh_keysource_t *s, char *why, size_t whylen)
{
    uv_mutex_lock(&s->mu);
    bool ready = s->cur != NULL;
    if (!ready) snprintf(why, whylen, "%s", s->last_error[0] ? s->last_error : "no answer yet");
    uv_mutex_unlock(&s->mu);
    return ready;
}
