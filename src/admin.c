#include "admin.h"

#include <jansson.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "list.h"
#include "log.h"
#include "revoke.h"
#include "stream.h"

#define MAX_URL      1024
#define MAX_BODY     (64 * 1024)
#define IDLE_MS      10000 /* to read a whole request; the answer waits as long as it takes */
#define MAX_ID_BYTES 1024

struct gh_admin_s {
    uv_tcp_t server;
    gh_admin_ops_t ops;
    char *token; /* admin.token, or NULL */
    gh_link_t conns;
    bool stopping;
};

typedef struct {
    gh_link_t link;
    gh_admin_t *a;
    uv_tcp_t tcp;
    uv_timer_t idle;
    llhttp_t parser;
    char url[MAX_URL];
    size_t url_len;
    char *body;
    size_t body_len;
    bool done, closing, too_large;
    bool in_auth;   /* the header being read is Authorization */
    char auth[256]; /* its value */
    size_t auth_len;
    bool auth_too_long;
    void *reload;      /* the reload it waits for */
    gh_redis_op_t *op; /* the revocation being stored in Redis */
    char answer[1024]; /* the 200 body, sent once Redis has it */
    int handles;       /* open handles: freed when both have closed */
} conn_t;

typedef struct {
    uv_write_t req;
    conn_t *c;
    char data[];
} write_t;

static void conn_freed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles == 0) {
        free(c->body);
        free(c);
    }
}

static void conn_close(conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    gh_redis_cancel(c->op);
    c->op = NULL;
    if (c->reload) c->a->ops.forget(c->reload);
    c->reload = NULL;
    gh_list_remove(&c->link);
    uv_close((uv_handle_t *)&c->idle, conn_freed);
    uv_close((uv_handle_t *)&c->tcp, conn_freed);
}

static void written(uv_write_t *w, int status)
{
    write_t *wr = (write_t *)w;
    (void)status;
    conn_close(wr->c);
    free(wr);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Sends a whole response (blen bytes of body) with extra header lines,
 * and closes the connection after it. */
static void respond_with(conn_t *c, int status, const char *type, const char *headers,
                         const char *body, size_t blen)
{
    size_t cap = blen + 512;
    write_t *wr = malloc(sizeof(*wr) + cap);
    if (!wr || c->closing) {
        free(wr);
        conn_close(c);
        return;
    }
    int n = snprintf(wr->data, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                     status, reason(status), type, blen, headers ? headers : "");
    if (llhttp_get_method(&c->parser) != HTTP_HEAD) {
        memcpy(wr->data + n, body, blen);
        n += (int)blen;
    }
    wr->c = c;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, written)) {
        free(wr);
        conn_close(c);
    }
}

static void respond(conn_t *c, int status, const char *type, const char *body)
{
    respond_with(c, status, type, NULL, body, strlen(body));
}

/* An RFC 9457 problem for the admin API (extra header lines or NULL). */
static void problem_with(conn_t *c, int status, const char *detail, const char *headers)
{
    char body[768];
    size_t n = (size_t)snprintf(body, sizeof(body),
                                "{\"type\":\"about:blank\",\"status\":%d,\"title\":\"%s\","
                                "\"detail\":\"",
                                status, reason(status));
    gh_json_escape(body, sizeof(body) - 64, &n, detail, strlen(detail));
    n += (size_t)snprintf(body + n, sizeof(body) - n, "\",\"instance\":\"");
    gh_json_escape(body, sizeof(body) - 4, &n, c->url, c->url_len > 256 ? 256 : c->url_len);
    snprintf(body + n, sizeof(body) - n, "\"}");
    respond_with(c, status, "application/problem+json", headers, body, strlen(body));
}

static void problem(conn_t *c, int status, const char *detail)
{
    problem_with(c, status, detail, NULL);
}

static void stored(void *arg, const redisReply *reply, const char *err)
{
    conn_t *c = arg;
    (void)reply;
    c->op = NULL;
    if (!err) {
        respond(c, 200, "application/json", c->answer);
        return;
    }
    gh_log(GH_LOG_WARN, "admin: revocation kept on this instance only: redis: %s", err);
    problem(c, 503, "the revocation holds on this instance, but redis did not store it");
}

/* What a revocation request says: kind, id and its time. Returns NULL, or
 * why it is not acceptable. */
static const char *read_revocation(json_t *doc, gh_revoke_kind *kind, const char **id, size_t *len,
                                   int64_t *t)
{
    if (!json_is_object(doc)) return "the body must be a JSON object";
    json_t *jti = json_object_get(doc, "jti"), *sub = json_object_get(doc, "sub");
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "jti") && strcmp(key, "sub") && strcmp(key, "exp") && strcmp(key, "before"))
            return "unknown field: the body has jti and exp, or sub and (optionally) before";
    }
    if (!jti == !sub) return "give either jti (with exp) or sub";
    json_t *s = jti ? jti : sub;
    if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > MAX_ID_BYTES)
        return "jti and sub must be non-empty strings of at most 1024 bytes";
    *kind = jti ? GH_REVOKE_JTI : GH_REVOKE_SUB;
    *id = json_string_value(s);
    *len = json_string_length(s);
    json_t *when = json_object_get(doc, jti ? "exp" : "before");
    if (json_object_get(doc, jti ? "before" : "exp"))
        return jti ? "a jti revocation takes exp, not before"
                   : "a sub revocation takes before, not exp";
    double now = (double)time(NULL);
    if (!when && jti) return "a jti revocation needs exp (the token's expiry, unix seconds)";
    double tv = when ? json_number_value(when) : now;
    if (when && (!json_is_number(when) || !(tv > 0 && tv < 1e13)))
        return "exp and before must be unix times in seconds";
    if (jti && tv <= now) return "exp is in the past: that token has expired already";
    *t = (int64_t)ceil(tv);
    return NULL;
}

static void handle_revoke(conn_t *c)
{
    json_error_t je;
    json_t *doc = json_loadb(c->body ? c->body : "", c->body_len, JSON_REJECT_DUPLICATES, &je);
    gh_revoke_kind kind;
    const char *id, *bad = doc ? NULL : "the body is not JSON";
    size_t len;
    int64_t t;
    if (!bad) bad = read_revocation(doc, &kind, &id, &len, &t);
    if (!bad && gh_revoke_add(kind, id, len, t)) bad = "the revocation list is full";
    if (bad) {
        problem(c, 400, bad);
        json_decref(doc);
        return;
    }
    size_t n = (size_t)snprintf(c->answer, sizeof(c->answer), "{\"revoked\":\"%s\",\"%s\":\"",
                                kind == GH_REVOKE_JTI ? "jti" : "sub",
                                kind == GH_REVOKE_JTI ? "jti" : "sub");
    gh_json_escape(c->answer, sizeof(c->answer) - 64, &n, id, len > 512 ? 512 : len);
    snprintf(c->answer + n, sizeof(c->answer) - n, "\",\"%s\":%lld}",
             kind == GH_REVOKE_JTI ? "exp" : "before", (long long)t);
    gh_log(GH_LOG_INFO, "admin: revoked %s (%zu bytes)",
           kind == GH_REVOKE_JTI ? "a jti" : "a subject", len);
    gh_redis_t *rd = gh_revoke_redis();
    const char *err;
    if (!rd) {
        respond(c, 200, "application/json", c->answer);
    } else if (gh_revoke_store(rd, c->a->ops.config(c->a->ops.ctx), kind, id, len, t, stored, c,
                               &c->op, &err)) {
        stored(c, NULL, err);
    }
    json_decref(doc);
}

static void reloaded(void *arg, bool ok, const char *json)
{
    conn_t *c = arg;
    c->reload = NULL;
    bool unavailable = strstr(json, "shutting down") || strstr(json, "not serving yet");
    respond(c, ok ? 200 : unavailable ? 503 : 422, "application/json", json);
}

static void handle_reload(conn_t *c)
{
    c->reload = c->a->ops.reload(c->a->ops.ctx, reloaded, c);
}

static void handle_ready(conn_t *c)
{
    char body[1024];
    bool ready = c->a->ops.ready(c->a->ops.ctx, body, sizeof(body));
    respond(c, ready ? 200 : 503, "application/json", body);
}

static void handle_metrics(conn_t *c)
{
    size_t len = 0;
    char *text = c->a->ops.metrics(c->a->ops.ctx, &len);
    if (!text) {
        problem(c, 503, "out of memory rendering the metrics");
        return;
    }
    respond_with(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len);
    free(text);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *route_json(const gh_config_t *cfg, const gh_route_t *rt)
{
    json_t *methods = json_null();
    if (rt->methods) {
        methods = json_array();
        for (int m = 0; m < 64; m++)
            if (rt->methods & (1ull << m))
                json_array_append_new(methods, json_string(llhttp_method_name((llhttp_method_t)m)));
    }
    json_t *limit = json_null();
    const gh_route_limit_t *l = rt->rate_limit;
    if (l) {
        static const char *const by[] = {"ip", "sub", "header", "claim"};
        limit = json_pack("{s:s,s:o,s:f,s:f,s:f,s:s,s:s,s:b}", "by", by[l->by], "by_name",
                          str_or_null(l->by_name), "rate", l->rate, "per", l->per, "burst",
                          l->burst, "scope", l->global ? "global" : "local", "on_error",
                          l->deny_on_error ? "deny" : "allow", "headers", l->headers);
    }
    return json_pack("{s:o,s:o,s:s,s:o,s:s,s:o,s:o,s:b,s:b,s:o,s:s,s:i}", "name",
                     str_or_null(rt->name), "host", str_or_null(rt->host), "path", rt->path,
                     "methods", methods, "upstream", cfg->upstreams[rt->upstream].name, "auth",
                     rt->issuer >= 0 ? json_string(cfg->issuers[rt->issuer].name) : json_null(),
                     "strip", str_or_null(rt->strip), "policy", rt->policy, "on_response",
                     rt->on_response, "rate_limit", limit ? limit : json_null(), "file",
                     rt->file ? rt->file : "", "line", rt->line);
}

/* The live route table, most specific first, and the upstreams. */
static void handle_routes(conn_t *c)
{
    const gh_config_t *cfg = c->a->ops.config(c->a->ops.ctx);
    if (!cfg) {
        problem(c, 503, "no configuration is serving yet");
        return;
    }
    json_t *routes = json_array(), *ups = json_object();
    for (size_t i = 0; i < gh_router_count(cfg->router); i++)
        json_array_append_new(routes, route_json(cfg, gh_router_at(cfg->router, i)));
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        json_t *targets = json_array();
        for (size_t k = 0; k < cfg->upstreams[i].ntargets; k++)
            json_array_append_new(targets, json_string(cfg->upstreams[i].targets[k].text));
        json_object_set_new(ups, cfg->upstreams[i].name, json_pack("{s:o}", "targets", targets));
    }
    const char *hash;
    uint64_t gen = c->a->ops.generation(c->a->ops.ctx, &hash);
    json_t *doc = json_pack("{s:I,s:s,s:o,s:o}", "generation", (json_int_t)gen, "hash", hash,
                            "routes", routes, "upstreams", ups);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        problem(c, 503, "out of memory listing the routes");
        return;
    }
    respond(c, 200, "application/json", text);
    free(text);
}

/* admin.token: compared in constant time. */
static bool authorized(conn_t *c)
{
    const char *tok = c->a->token;
    if (!tok) return true;
    size_t n = strlen(tok);
    if (c->auth_too_long || c->auth_len != n + 7 || strncasecmp(c->auth, "Bearer ", 7) != 0)
        return false;
    return CRYPTO_memcmp(c->auth + 7, tok, n) == 0;
}

static bool is(const conn_t *c, const char *path)
{
    size_t n = strlen(path);
    return c->url_len == n && memcmp(c->url, path, n) == 0;
}

static void dispatch(conn_t *c)
{
    int m = llhttp_get_method(&c->parser);
    bool get = m == HTTP_GET || m == HTTP_HEAD, post = m == HTTP_POST;
    if (c->too_large) {
        problem(c, 413, "the body is larger than 64 KiB");
    } else if (is(c, "/health")) {
        if (get)
            respond(c, 200, "application/json", "{\"status\":\"ok\"}");
        else
            problem(c, 405, "method not allowed here");
    } else if (!is(c, "/ready") && !is(c, "/metrics") && !is(c, "/routes") && !is(c, "/reload") &&
               !is(c, "/revoke")) {
        problem(c, 404,
                "no such admin endpoint (GET /health, /ready, /metrics, /routes; "
                "POST /reload, /revoke)");
    } else if (!authorized(c)) {
        gh_log(GH_LOG_WARN, "admin: %.*s refused: %s admin token", (int)c->url_len, c->url,
               c->auth_len ? "wrong" : "no");
        problem_with(c, 401, "this admin call needs the admin token (Authorization: Bearer)",
                     "WWW-Authenticate: Bearer realm=\"gatehouse-admin\"\r\n");
    } else if (get && is(c, "/ready")) {
        handle_ready(c);
    } else if (get && is(c, "/metrics")) {
        handle_metrics(c);
    } else if (get && is(c, "/routes")) {
        handle_routes(c);
    } else if (post && is(c, "/reload")) {
        handle_reload(c);
    } else if (post && is(c, "/revoke")) {
        handle_revoke(c);
    } else {
        problem(c, 405, "method not allowed here");
    }
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    c->in_auth = len == 13 && strncasecmp(at, "Authorization", 13) == 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (!c->in_auth) return 0;
    if (c->auth_len + len >= sizeof(c->auth)) {
        c->auth_too_long = true;
        return 0;
    }
    memcpy(c->auth + c->auth_len, at, len);
    c->auth_len += len;
    while (c->auth_len && (c->auth[c->auth_len - 1] == ' ' || c->auth[c->auth_len - 1] == '\t'))
        c->auth_len--; /* llhttp keeps trailing whitespace */
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->url_len + len > sizeof(c->url)) return -1;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->too_large || c->body_len + len > MAX_BODY) {
        c->too_large = true;
        return 0;
    }
    char *b = realloc(c->body, c->body_len + len + 1);
    if (!b) return -1;
    memcpy(b + c->body_len, at, len);
    c->body = b;
    c->body_len += len;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->done = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->idle); /* a reload or a Redis call is bounded by its own limits */
    dispatch(c);
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {.on_url = on_url,
                                           .on_header_field = on_header_field,
                                           .on_header_value = on_header_value,
                                           .on_body = on_body,
                                           .on_message_complete = on_complete};

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    static char slab[16384]; /* the main loop reads one connection at a time */
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->done) return;
    uv_timer_again(&c->idle);
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)n);
    if (e != HPE_OK && e != HPE_PAUSED && !c->done) {
        uv_read_stop(s);
        c->done = true;
        problem(c, 400, "malformed HTTP request");
    }
}

/* IDLE_MS without a byte read. libuv runs timers before reading, so after
 * the loop itself was held up (a log write to a full pipe, say) this can
 * fire with the request already waiting in the socket: that is not idle. */
static void on_idle(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (gh_tcp_input_waiting(&c->tcp)) return; /* read this iteration; the timer repeats */
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    gh_admin_t *a = server->data;
    conn_t *c = status == 0 && !a->stopping ? calloc(1, sizeof(*c)) : NULL;
    if (!c) return;
    c->a = a;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->idle);
    c->tcp.data = c->idle.data = c;
    c->handles = 2;
    gh_list_push(&a->conns, &c->link);
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_timer_start(&c->idle, on_idle, IDLE_MS, IDLE_MS);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void server_closed(uv_handle_t *h)
{
    gh_admin_t *a = h->data;
    free(a->token);
    free(a);
}

gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_config_t *cfg, const gh_admin_ops_t *ops,
                           char *err, size_t errlen)
{
    gh_admin_t *a = calloc(1, sizeof(*a));
    if (!a) return snprintf(err, errlen, "out of memory"), NULL;
    a->ops = *ops;
    if (cfg->admin_token && !(a->token = strdup(cfg->admin_token))) {
        free(a);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    gh_list_init(&a->conns);
    uv_tcp_init(loop, &a->server);
    a->server.data = a;
    int rc = uv_tcp_bind(&a->server, (const struct sockaddr *)&cfg->admin->addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&a->server, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "admin %s: %s", cfg->admin->text, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->server, server_closed);
        return NULL;
    }
    gh_log(GH_LOG_INFO, "admin: listening on %s", cfg->admin->text);
    return a;
}

void gh_admin_stop(gh_admin_t *a)
{
    if (!a) return;
    a->stopping = true;
    while (!gh_list_empty(&a->conns)) conn_close(gh_container_of(a->conns.next, conn_t, link));
    uv_close((uv_handle_t *)&a->server, server_closed);
}
