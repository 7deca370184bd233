#include "redis.h"

#include <hiredis/async.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY } conn_state;

typedef struct {
    gh_redis_t *rd;
    redisAsyncContext *ac; /* NULL while down */
    conn_state state;
    gh_link_t ops;     /* calls sent and not answered, oldest first */
    uint64_t retry_at; /* loop time (ms) of the next connect attempt */
    uint64_t backoff;  /* ms */
    char why[160];     /* why we dropped it ourselves (timeout, shutdown) */
    bool logged_down;  /* its failure was logged: log the recovery, not each retry */
} conn_t;

struct gh_redis_op_s {
    gh_link_t link;
    conn_t *c;
    gh_redis_cb cb; /* NULL: cancelled */
    void *arg;
    uint64_t deadline;
    const gh_redis_script_t *script; /* EVALSHA: sent again as EVAL on NOSCRIPT */
    bool retried;
    int argc;    /* the script call's arguments after the key count, */
    char **argv; /* kept for that retry */
    size_t *lens;
    char nkeys[16];
};

struct gh_redis_s {
    uv_loop_t *loop;
    const gh_redis_conf_t *conf; /* &own */
    gh_redis_conf_t own;         /* a copy: a reload frees the config it came from */
    char who[48];
    uv_timer_t timer; /* deadlines and reconnects */
    conn_t *conns;
    int n, next;
    uint64_t timeout_ms;
    void (*ready)(void *arg);
    void *ready_arg;
    void (*error)(void *arg, const char *kind); /* gh_redis_on_error's hook */
    void *error_arg;
    char *channel; /* subscriber: the channel, its callback */
    gh_redis_cb sub_cb;
    void *sub_arg;
    bool closing;
};

void gh_redis_script_init(gh_redis_script_t *s, const char *src)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    s->src = src;
    EVP_Digest(src, strlen(src), md, &n, EVP_sha1(), NULL);
    for (unsigned i = 0; i < n && i < 20; i++) snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

static void conn_connect(conn_t *c);

/* Tells the error hook about a failure of kind (not while closing). */
static void failed(gh_redis_t *rd, const char *kind)
{
    if (rd->error && !rd->closing) rd->error(rd->error_arg, kind);
}

/* hiredis's event hooks on a uv_poll_t. Not hiredis 0.14's own libuv
 * adapter: that one drops poll errors, so a refused connect was never
 * seen and calls waited for their deadline instead of failing at once. */
typedef struct {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    int events;
    bool hold_write; /* gh_redis_flush will write: no writability poll */
} watch_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    watch_t *w = h->data;
    if (status < 0) events = w->events; /* let hiredis meet the error on the socket */
    if (w->ac && (events & UV_READABLE)) redisAsyncHandleRead(w->ac);
    if (w->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(w->ac);
}

static void watch_set(watch_t *w, int events)
{
    if (events == w->events) return;
    w->events = events;
    if (events)
        uv_poll_start(&w->poll, events, on_poll);
    else
        uv_poll_stop(&w->poll);
}

static void add_read(void *p)
{
    watch_set(p, ((watch_t *)p)->events | UV_READABLE);
}

static void del_read(void *p)
{
    watch_set(p, ((watch_t *)p)->events & ~UV_READABLE);
}

static void add_write(void *p)
{
    watch_t *w = p;
    if (!w->hold_write) watch_set(w, w->events | UV_WRITABLE);
}

static void del_write(void *p)
{
    watch_set(p, ((watch_t *)p)->events & ~UV_WRITABLE);
}

static void watch_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *p)
{
    watch_t *w = p;
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
}

/* Hooks ac's socket into loop, unreferenced (Redis never keeps a loop
 * alive). Returns 0 or -1. */
static int watch(redisAsyncContext *ac, uv_loop_t *loop)
{
    watch_t *w = calloc(1, sizeof(*w));
    if (!w) return -1;
    if (uv_poll_init(loop, &w->poll, ac->c.fd)) {
        free(w);
        return -1;
    }
    uv_unref((uv_handle_t *)&w->poll);
    w->poll.data = w;
    w->ac = ac;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

/* The connection is gone (closed, failed, or dropped by us): its calls
 * have been failed by hiredis; reconnect after the backoff. */
static void conn_lost(conn_t *c, const char *reason)
{
    gh_redis_t *rd = c->rd;
    bool was_ready = c->state == CONN_READY;
    c->ac = NULL;
    c->state = CONN_DOWN;
    c->retry_at = uv_now(rd->loop) + c->backoff;
    if (!rd->closing && (was_ready || !c->logged_down))
        gh_log(GH_LOG_WARN, "redis %s (%s): %s; reconnecting (backoff %llu ms)", rd->conf->url,
               rd->who, reason, (unsigned long long)c->backoff);
    c->logged_down = true;
    c->backoff = c->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff * 2;
}

/* Drops the connection ourselves (a missed deadline, a failed handshake,
 * shutdown): its pending calls fail with why. */
static void conn_drop(conn_t *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    snprintf(c->why, sizeof(c->why), "%s", why);
    conn_lost(c, why);
    redisAsyncFree(ac); /* deferred by hiredis when inside its callback */
}

static void op_reply(redisAsyncContext *ac, void *r, void *priv);

static int op_send(conn_t *c, gh_redis_op_t *op, int argc, const char **argv, const size_t *lens)
{
    if (redisAsyncCommandArgv(c->ac, op_reply, op, argc, argv, lens) != REDIS_OK) return -1;
    op->c = c;
    op->deadline = uv_now(c->rd->loop) + c->rd->timeout_ms;
    gh_list_push_tail(&c->ops, &op->link);
    return 0;
}

/* Sends a script call as EVALSHA, or (eval) with the whole source.
 * Returns 0 or -1 (OOM). */
static int script_send(conn_t *c, gh_redis_op_t *op, bool eval)
{
    const char **argv = malloc((size_t)(3 + op->argc) * (sizeof(char *) + sizeof(size_t)));
    if (!argv) return -1;
    size_t *lens = (size_t *)(argv + 3 + op->argc);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? op->script->src : op->script->sha;
    argv[2] = op->nkeys;
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    for (int i = 0; i < op->argc; i++) argv[3 + i] = op->argv[i], lens[3 + i] = op->lens[i];
    int rc = op_send(c, op, 3 + op->argc, argv, lens);
    free(argv);
    return rc;
}

static void op_reply(redisAsyncContext *ac, void *r, void *priv)
{
    gh_redis_op_t *op = priv;
    const redisReply *reply = r;
    conn_t *c = op->c;
    gh_list_remove(&op->link);
    if (reply && reply->type == REDIS_REPLY_ERROR && op->script && !op->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && c->ac == ac) {
        op->retried = true; /* Redis restarted (or SCRIPT FLUSH): send the source */
        if (script_send(c, op, true) == 0) return;
    }
    const char *err = NULL;
    if (!reply)
        err = c->ac != ac && c->why[0] ? c->why : ac->err ? ac->errstr : "connection closed";
    else if (reply->type == REDIS_REPLY_ERROR)
        err = reply->str;
    if (reply && err && c->state == CONN_READY) failed(c->rd, "reply"); /* not the handshake's */
    if (op->cb) op->cb(op->arg, err ? NULL : reply, err);
    free(op);
}

/* A new call with room for argc copied arguments (script calls keep them
 * for a NOSCRIPT retry). NULL on OOM. */
static gh_redis_op_t *op_new(gh_redis_cb cb, void *arg, int argc, const char **argv,
                             const size_t *lens)
{
    size_t bytes = sizeof(gh_redis_op_t) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; argv && i < argc; i++) bytes += lens[i] + 1;
    gh_redis_op_t *op = calloc(1, bytes);
    if (!op) return NULL;
    op->cb = cb;
    op->arg = arg;
    gh_list_init(&op->link);
    if (!argv) return op;
    op->argc = argc;
    op->argv = (char **)(op + 1);
    op->lens = (size_t *)(op->argv + argc);
    char *p = (char *)(op->lens + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        p[lens[i]] = '\0';
        op->argv[i] = p;
        op->lens[i] = lens[i];
        p += lens[i] + 1;
    }
    return op;
}

/* The next connection that can take a call (connecting ones queue it);
 * NULL, counted as "unavailable", when none can. */
static conn_t *pick(gh_redis_t *rd)
{
    for (int k = 0; k < rd->n; k++) {
        conn_t *c = &rd->conns[(rd->next + k) % rd->n];
        if (c->ac) {
            rd->next = (rd->next + k + 1) % rd->n;
            return c;
        }
    }
    failed(rd, "unavailable");
    return NULL;
}

int gh_redis_command(gh_redis_t *rd, int argc, const char **argv, const size_t *lens,
                     gh_redis_cb cb, void *arg, gh_redis_op_t **opp, const char **err)
{
    conn_t *c = rd->closing ? NULL : pick(rd);
    if (!c) return *err = "not connected (reconnecting)", -1;
    gh_redis_op_t *op = op_new(cb, arg, 0, NULL, NULL);
    if (!op) return *err = "out of memory", -1;
    if (op_send(c, op, argc, argv, lens)) {
        free(op);
        return *err = "out of memory", -1;
    }
    if (opp) *opp = op;
    return 0;
}

int gh_redis_eval(gh_redis_t *rd, const gh_redis_script_t *s, int nkeys, int argc,
                  const char **argv, const size_t *lens, gh_redis_cb cb, void *arg,
                  gh_redis_op_t **opp, const char **err)
{
    conn_t *c = rd->closing ? NULL : pick(rd);
    if (!c) return *err = "not connected (reconnecting)", -1;
    gh_redis_op_t *op = op_new(cb, arg, argc, argv, lens);
    if (!op) return *err = "out of memory", -1;
    op->script = s;
    snprintf(op->nkeys, sizeof(op->nkeys), "%d", nkeys);
    if (script_send(c, op, false)) {
        free(op);
        return *err = "out of memory", -1;
    }
    if (opp) *opp = op;
    return 0;
}

void gh_redis_hold(gh_redis_t *rd)
{
    for (int i = 0; i < rd->n; i++) {
        conn_t *c = &rd->conns[i];
        if (c->ac && c->state == CONN_READY) ((watch_t *)c->ac->ev.data)->hold_write = true;
    }
}

void gh_redis_flush(gh_redis_t *rd)
{
    for (int i = 0; i < rd->n; i++) {
        conn_t *c = &rd->conns[i];
        if (!c->ac) continue;
        watch_t *w = c->ac->ev.data;
        bool held = w->hold_write;
        w->hold_write = false;
        if (c->state == CONN_READY && !gh_list_empty(&c->ops))
            redisAsyncHandleWrite(c->ac); /* polls for the rest; may drop it on an error */
        else if (held)
            add_write(w);
    }
}

void gh_redis_cancel(gh_redis_op_t *op)
{
    if (op) op->cb = NULL;
}

bool gh_redis_up(const gh_redis_t *rd)
{
    for (int i = 0; i < rd->n; i++)
        if (rd->conns[i].state == CONN_READY) return true;
    return false;
}

/* The subscription's replies: its confirmation (the moment to resync, as
 * nothing published from now on can be missed) and each message. */
static void sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    gh_redis_t *rd = priv;
    const redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    const redisReply *kind = reply->element[0], *msg = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0 && rd->ready)
        rd->ready(rd->ready_arg);
    else if (strcmp(kind->str, "message") == 0 && msg->type == REDIS_REPLY_STRING)
        rd->sub_cb(rd->sub_arg, msg, NULL);
}

/* The handshake's last reply (PING): the connection is usable. */
static void handshake_done(void *arg, const redisReply *reply, const char *err)
{
    conn_t *c = arg;
    gh_redis_t *rd = c->rd;
    (void)reply;
    if (!c->ac || c->state != CONN_CONNECTING) return;
    if (err) {
        char why[160];
        snprintf(why, sizeof(why), "handshake failed: %s", err);
        failed(c->rd, "handshake");
        conn_drop(c, why);
        return;
    }
    c->state = CONN_READY;
    c->backoff = BACKOFF_MIN_MS;
    if (c->logged_down) gh_log(GH_LOG_INFO, "redis %s (%s): connected", rd->conf->url, rd->who);
    c->logged_down = false;
    if (rd->channel) {
        if (redisAsyncCommand(c->ac, sub_reply, rd, "SUBSCRIBE %s", rd->channel) != REDIS_OK)
            conn_drop(c, "cannot subscribe");
    } else if (rd->ready) {
        rd->ready(rd->ready_arg);
    }
}

/* AUTH and SELECT: a failure drops the connection (and is logged). */
static void handshake_step(void *arg, const redisReply *reply, const char *err)
{
    conn_t *c = arg;
    (void)reply;
    if (err && c->ac && c->state == CONN_CONNECTING) {
        char why[160];
        snprintf(why, sizeof(why), "handshake failed: %s", err);
        failed(c->rd, "handshake");
        conn_drop(c, why);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (status != REDIS_OK && c && c->ac == ac) {
        failed(c->rd, "connect");
        conn_lost(c, ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    (void)status;
    if (c && c->ac == ac) {
        failed(c->rd, "disconnect");
        conn_lost(c, ac->err ? ac->errstr : "connection closed by the server");
    }
}

/* Sends AUTH and SELECT when configured, then PING; calls queue behind
 * them. Returns 0 or -1. */
static int handshake(conn_t *c)
{
    const gh_redis_conf_t *cf = c->rd->conf;
    char db[16];
    snprintf(db, sizeof(db), "%d", cf->db);
    const char *auth[3] = {"AUTH", cf->user ? cf->user : cf->password, cf->password};
    const char *sel[2] = {"SELECT", db}, *ping[1] = {"PING"};
    struct {
        int argc;
        const char **argv;
        gh_redis_cb cb;
        bool on;
    } steps[3] = {{cf->user ? 3 : 2, auth, handshake_step, cf->password != NULL},
                  {2, sel, handshake_step, cf->db != 0},
                  {1, ping, handshake_done, true}};
    for (int i = 0; i < 3; i++) {
        if (!steps[i].on) continue;
        size_t lens[3];
        for (int k = 0; k < steps[i].argc; k++) lens[k] = strlen(steps[i].argv[k]);
        gh_redis_op_t *op = op_new(steps[i].cb, c, 0, NULL, NULL);
        if (!op || op_send(c, op, steps[i].argc, steps[i].argv, lens)) {
            free(op);
            return -1;
        }
    }
    return 0;
}

static void conn_connect(conn_t *c)
{
    gh_redis_t *rd = c->rd;
    redisAsyncContext *ac = redisAsyncConnect(rd->conf->host, rd->conf->port);
    c->why[0] = '\0';
    if (!ac || ac->err) {
        failed(rd, "connect");
        conn_lost(c, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        return;
    }
    if (watch(ac, rd->loop)) {
        failed(rd, "connect");
        conn_lost(c, "cannot watch the socket");
        redisAsyncFree(ac);
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = CONN_CONNECTING;
    if (handshake(c)) conn_drop(c, "out of memory");
}

/* Fails a connection whose oldest call missed its deadline (a Redis that
 * stopped answering), and reconnects those whose backoff has passed. */
static void on_tick(uv_timer_t *t)
{
    gh_redis_t *rd = t->data;
    uint64_t now = uv_now(rd->loop);
    for (int i = 0; i < rd->n && !rd->closing; i++) {
        conn_t *c = &rd->conns[i];
        if (c->ac && !gh_list_empty(&c->ops)) {
            gh_redis_op_t *oldest = gh_container_of(c->ops.next, gh_redis_op_t, link);
            if (oldest->deadline <= now) {
                char why[96];
                snprintf(why, sizeof(why), "no reply within timeout_ms (%llu)",
                         (unsigned long long)rd->timeout_ms);
                failed(rd, "timeout");
                conn_drop(c, why);
            }
        } else if (!c->ac && now >= c->retry_at) {
            conn_connect(c);
        }
    }
}

static void conf_free(gh_redis_conf_t *c)
{
    free(c->url);
    free(c->user);
    free(c->password);
    free(c->prefix);
}

/* A deep copy of src in dst. Returns 0, or -1 on OOM (dst then holds nothing). */
static int conf_copy(gh_redis_conf_t *dst, const gh_redis_conf_t *src)
{
    *dst = *src;
    dst->url = src->url ? strdup(src->url) : NULL;
    dst->user = src->user ? strdup(src->user) : NULL;
    dst->password = src->password ? strdup(src->password) : NULL;
    dst->prefix = src->prefix ? strdup(src->prefix) : NULL;
    if ((src->url && !dst->url) || (src->user && !dst->user) || (src->password && !dst->password) ||
        (src->prefix && !dst->prefix)) {
        conf_free(dst);
        memset(dst, 0, sizeof(*dst));
        return -1;
    }
    return 0;
}

gh_redis_t *gh_redis_new(uv_loop_t *loop, const gh_redis_conf_t *conf, const char *who)
{
    gh_redis_t *rd = calloc(1, sizeof(*rd));
    int n = conf->pool > 0 ? conf->pool : 1;
    if (!rd || !(rd->conns = calloc((size_t)n, sizeof(conn_t))) || conf_copy(&rd->own, conf)) {
        if (rd) free(rd->conns);
        free(rd);
        return NULL;
    }
    rd->loop = loop;
    rd->conf = &rd->own;
    conf = rd->conf;
    rd->n = n;
    rd->timeout_ms = (uint64_t)(conf->timeout * 1000 + 0.5);
    if (rd->timeout_ms < 1) rd->timeout_ms = 1;
    snprintf(rd->who, sizeof(rd->who), "%s", who);
    uv_timer_init(loop, &rd->timer);
    rd->timer.data = rd;
    uint64_t tick = rd->timeout_ms / 4;
    tick = tick < 5 ? 5 : tick > 100 ? 100 : tick;
    uv_timer_start(&rd->timer, on_tick, tick, tick);
    uv_unref((uv_handle_t *)&rd->timer);
    for (int i = 0; i < n; i++) {
        rd->conns[i].rd = rd;
        rd->conns[i].backoff = BACKOFF_MIN_MS;
        gh_list_init(&rd->conns[i].ops);
        conn_connect(&rd->conns[i]);
    }
    return rd;
}

void gh_redis_on_ready(gh_redis_t *rd, void (*fn)(void *arg), void *arg)
{
    rd->ready = fn;
    rd->ready_arg = arg;
}

void gh_redis_on_error(gh_redis_t *rd, void (*fn)(void *arg, const char *kind), void *arg)
{
    rd->error = fn;
    rd->error_arg = arg;
}

int gh_redis_subscribe(gh_redis_t *rd, const char *channel, gh_redis_cb cb, void *arg)
{
    if (!(rd->channel = strdup(channel))) return -1;
    rd->sub_cb = cb;
    rd->sub_arg = arg;
    for (int i = 0; i < rd->n; i++) /* already past the handshake: subscribe now */
        if (rd->conns[i].state == CONN_READY &&
            redisAsyncCommand(rd->conns[i].ac, sub_reply, rd, "SUBSCRIBE %s", channel) != REDIS_OK)
            conn_drop(&rd->conns[i], "cannot subscribe");
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    gh_redis_t *rd = h->data;
    free(rd->conns);
    free(rd->channel);
    conf_free(&rd->own);
    free(rd);
}

void gh_redis_close(gh_redis_t *rd)
{
    if (!rd) return;
    rd->closing = true;
    for (int i = 0; i < rd->n; i++) conn_drop(&rd->conns[i], "shutting down");
    uv_close((uv_handle_t *)&rd->timer, timer_closed);
}

void gh_redis_url_masked(const char *url, char *out, size_t cap)
{
    const char *at = strrchr(url, '@'); /* the last: a password may hold '@' */
    if (at && strncmp(url, "redis://", 8) == 0)
        snprintf(out, cap, "redis://***@%s", at + 1);
    else
        snprintf(out, cap, "%s", at ? "(a url with credentials)" : url);
}

/* Splits "[[user]:password@]" off the front of s; returns what follows. */
static const char *url_userinfo(gh_redis_conf_t *c, const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at) return s;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (colon) {
        if (colon > s) c->user = strndup(s, (size_t)(colon - s));
        c->password = strndup(colon + 1, (size_t)(at - colon - 1));
    } else {
        c->password = strndup(s, (size_t)(at - s));
    }
    return at + 1;
}

/* A decimal number filling [p, end) within [lo, hi], or -1. */
static long number(const char *p, const char *end, long lo, long hi)
{
    long v = 0;
    if (p == end || end - p > 6) return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v >= lo && v <= hi ? v : -1;
}

int gh_redis_parse_url(gh_redis_conf_t *c, const char *url, char *err, size_t errlen)
{
    char shown[256];
    gh_redis_url_masked(url, shown, sizeof(shown));
    if (strncmp(url, "redis://", 8) != 0)
        return snprintf(err, errlen,
                        "redis.url must start with redis:// (TLS comes later), got '%s'", shown),
               -1;
    const char *s = url_userinfo(c, url + 8);
    const char *end = s + strcspn(s, "/");
    const char *host = s, *hend = end, *port = NULL;
    if (*s == '[') {
        host = s + 1;
        hend = memchr(s, ']', (size_t)(end - s));
        if (!hend || (hend + 1 < end && hend[1] != ':'))
            return snprintf(err, errlen, "redis.url: bad [IPv6] address in '%s'", shown), -1;
        if (hend + 1 < end) port = hend + 2;
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (colon) hend = colon, port = colon + 1;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof(c->host))
        return snprintf(err, errlen, "redis.url: no host (or one too long) in '%s'", shown), -1;
    memcpy(c->host, host, (size_t)(hend - host));
    c->host[hend - host] = '\0';
    c->port = port ? (int)number(port, end, 1, 65535) : 6379;
    if (c->port < 0) return snprintf(err, errlen, "redis.url: bad port in '%s'", shown), -1;
    c->db = *end == '/' && end[1] ? (int)number(end + 1, end + strlen(end), 0, 65535) : 0;
    if (c->db < 0)
        return snprintf(err, errlen, "redis.url: bad database number in '%s'", shown), -1;
    return 0;
}
