#include "admin.h"

#include <jansson.h>
#include <llhttp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "list.h"
#include "log.h"
#include "revoke.h"

#define MAX_URL      1024
#define MAX_BODY     (64 * 1024)
#define IDLE_MS      10000
#define MAX_ID_BYTES 1024

struct gh_admin_s {
    uv_tcp_t server;
    const gh_config_t *cfg;
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

/* Sends a whole response and closes the connection after it. */
static void respond(conn_t *c, int status, const char *type, const char *body)
{
    size_t blen = strlen(body), cap = blen + 256;
    write_t *wr = malloc(sizeof(*wr) + cap);
    if (!wr || c->closing) {
        free(wr);
        conn_close(c);
        return;
    }
    int n = snprintf(wr->data, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     status,
                     status == 200   ? "OK"
                     : status == 400 ? "Bad Request"
                     : status == 404 ? "Not Found"
                     : status == 405 ? "Method Not Allowed"
                     : status == 413 ? "Content Too Large"
                     : status == 503 ? "Service Unavailable"
                                     : "Error",
                     type, blen, body);
    wr->c = c;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, written)) {
        free(wr);
        conn_close(c);
    }
}

/* An RFC 9457 problem for the admin API. */
static void problem(conn_t *c, int status, const char *detail)
{
    char body[768];
    size_t n = (size_t)snprintf(body, sizeof(body),
                                "{\"type\":\"about:blank\",\"status\":%d,\"title\":\"%s\","
                                "\"detail\":\"",
                                status, status == 400 ? "Bad Request" : "Error");
    gh_json_escape(body, sizeof(body) - 64, &n, detail, strlen(detail));
    snprintf(body + n, sizeof(body) - n, "\",\"instance\":\"%.*s\"}", (int)c->url_len, c->url);
    respond(c, status, "application/problem+json", body);
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
    } else if (gh_revoke_store(rd, c->a->cfg, kind, id, len, t, stored, c, &c->op, &err)) {
        stored(c, NULL, err);
    }
    json_decref(doc);
}

static void dispatch(conn_t *c)
{
    int m = llhttp_get_method(&c->parser);
    bool health = c->url_len == 7 && memcmp(c->url, "/health", 7) == 0;
    bool revoke = c->url_len == 7 && memcmp(c->url, "/revoke", 7) == 0;
    if (c->too_large)
        problem(c, 413, "the body is larger than 64 KiB");
    else if (health && (m == HTTP_GET || m == HTTP_HEAD))
        respond(c, 200, "application/json", "{\"status\":\"ok\"}");
    else if (revoke && m == HTTP_POST)
        handle_revoke(c);
    else if (health || revoke)
        problem(c, 405, "method not allowed here");
    else
        problem(c, 404, "no such admin endpoint (GET /health, POST /revoke)");
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
    dispatch(c);
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url, .on_body = on_body, .on_message_complete = on_complete};

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

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
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
    free(h->data);
}

gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_config_t *cfg, char *err, size_t errlen)
{
    gh_admin_t *a = calloc(1, sizeof(*a));
    if (!a) return snprintf(err, errlen, "out of memory"), NULL;
    a->cfg = cfg;
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
