#include "proxy.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "limiter.h"
#include "log.h"
#include "lua_policy.h"
#include "upstream.h"
#include "worker.h"

/* Queued bytes above which the reading side pauses, and below which it resumes. */
#define HIGH_WATER       (256 * 1024)
#define LOW_WATER        (64 * 1024)
#define RESP_HEAD_MAX    (64 * 1024)
#define RESP_HEADERS_MAX 256

struct gh_proxy_s {
    gh_req_t *r;
    gh_upconn_t *u;
    bool retried;
    bool head_sent; /* request head queued upstream */
    bool req_sent;  /* whole request queued upstream */
    bool got_bytes; /* the upstream sent anything */
    bool client_blocked;
    bool up_paused; /* upstream reads paused for a slow client */
    bool chunk_out; /* re-frame the response body as chunked */
    bool interim;   /* the response being parsed is a 1xx */
    bool resp_complete, trailing_garbage;
    bool in_field, in_value;
    const char *fail; /* set by a response callback that refuses it */
    int fail_status;  /* and the status to answer (502 unless set) */
    gh_buf_t *cur;    /* the upstream read buffer being parsed */
    gh_head_t rh;     /* status reason at data[0..reason_len), then headers */
    uint32_t reason_len;
};

static void send_head(gh_proxy_t *p);
static void on_ready(gh_upconn_t *u, int status);

static bool idempotent(int method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
           method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
}

/* Closes the upstream connection and answers status (or cuts the client
 * connection when the response has begun). */
static void fail(gh_proxy_t *p, int status, const char *detail)
{
    gh_req_t *r = p->r;
    gh_log(GH_LOG_WARN, "upstream %s: %s (request_id=%s route=%s)",
           r->upstream_addr ? r->upstream_addr : "-", detail, r->id,
           r->route ? r->route->name : "-");
    if (!r->upstream_end_ns) r->upstream_end_ns = uv_hrtime();
    gh_req_error(r, status, detail); /* aborts p, closing the connection */
}

/* Leases a connection and sends the head now or once connected. Returns
 * false when it failed and the request was answered. */
static bool connect_upstream(gh_proxy_t *p, bool fresh)
{
    gh_req_t *r = p->r;
    gh_upconn_t *u = gh_upstream_lease(r->w, &r->gen->upstreams[r->upstream], fresh, p, on_ready);
    if (!u) {
        fail(p, 502, "cannot open a connection to the upstream");
        return false;
    }
    p->u = u;
    r->upstream_addr = u->tp->conf->text;
    if (u->connected) send_head(p);
    return true;
}

gh_phase_rc gh_proxy_start(gh_req_t *r)
{
    gh_proxy_t *p = gh_arena_alloc(r->arena, sizeof(*p));
    if (!p) {
        gh_req_error(r, 503, "out of memory");
        return GH_PHASE_STOP;
    }
    memset(p, 0, sizeof(*p));
    p->r = r;
    r->proxy = p;
    r->upstream_start_ns = uv_hrtime();
    return connect_upstream(p, false) ? GH_PHASE_WAIT : GH_PHASE_STOP;
}

static void on_ready(gh_upconn_t *u, int status)
{
    gh_proxy_t *p = u->owner;
    if (status == 0) {
        send_head(p);
        return;
    }
    if (status == UV_ETIMEDOUT)
        fail(p, 504, "timed out connecting to the upstream");
    else
        fail(p, 502,
             status == UV_ECONNREFUSED ? "upstream refused the connection"
                                       : "cannot connect to the upstream");
}

/* An append-only writer into a fixed buffer; overflow is sticky. */
typedef struct {
    char *p;
    size_t n, cap;
    bool overflow;
} wbuf_t;

static void put(wbuf_t *w, const char *s, size_t len)
{
    if (w->overflow || w->n + len > w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->n, s, len);
    w->n += len;
}

static void put_s(wbuf_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_hdr(wbuf_t *w, const char *name, const char *v, size_t vlen)
{
    put_s(w, name);
    put(w, ": ", 2);
    put(w, v, vlen);
    put(w, "\r\n", 2);
}

/* Headers a client never gets to set for the upstream (unless it is a
 * trusted proxy): the gateway is the trust boundary for these. */
static bool forwarding_header(const char *n, size_t len)
{
    return gh_hdr_eq(n, len, "forwarded") || (len > 12 && strncasecmp(n, "x-forwarded-", 12) == 0);
}

/* A client's trace header that never goes upstream as it is: traceparent
 * (the gateway sends its own hop), and tracestate when the traceparent it
 * came with was not valid (the spec then has it ignored). */
static bool trace_header(const gh_req_t *r, const char *n, size_t len)
{
    return gh_hdr_eq(n, len, "traceparent") ||
           (!r->trace.valid_in && gh_hdr_eq(n, len, "tracestate"));
}

/* Appends one claim value: strings as they are, numbers and booleans
 * spelled out; anything a header cannot carry is skipped. */
static void put_claim_value(wbuf_t *w, json_t *v)
{
    char num[48];
    if (json_is_string(v) && gh_hdr_value_valid(json_string_value(v), json_string_length(v)))
        put(w, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
        put(w, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v)));
    else if (json_is_real(v))
        put(w, num, (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v)));
    else if (json_is_boolean(v))
        put_s(w, json_is_true(v) ? "true" : "false");
}

/* The route's forward_claims: one header per claim present; an array
 * becomes a comma-separated list (roles, scopes). */
static void put_claim_headers(wbuf_t *w, const gh_req_t *r)
{
    const gh_route_t *rt = r->route;
    for (size_t i = 0; r->claims && i < rt->nclaim_headers; i++) {
        json_t *v = json_object_get(r->claims, rt->claim_headers[2 * i + 1]);
        if (!v || json_is_null(v) || json_is_object(v)) continue;
        put_s(w, rt->claim_headers[2 * i]);
        put(w, ": ", 2);
        if (json_is_array(v)) {
            for (size_t k = 0; k < json_array_size(v); k++) {
                if (k) put(w, ", ", 2);
                put_claim_value(w, json_array_get(v, k));
            }
        } else {
            put_claim_value(w, v);
        }
        put(w, "\r\n", 2);
    }
}

/* Copies the client's end-to-end headers: drops hop-by-hop ones, those
 * the gateway sets itself, and (from untrusted peers) forwarding ones. */
static void put_client_headers(wbuf_t *w, const gh_req_t *r)
{
    for (uint32_t i = 0; i < r->head.n; i++) {
        const gh_hdr_t *x = &r->head.hdrs[i];
        const char *n = gh_hdr_name(&r->head, x);
        size_t nl = x->name_len;
        if (gh_hdr_is_hop_by_hop(n, nl) || gh_conn_tokens_has(&r->conn_tokens, n, nl) ||
            gh_hdr_eq(n, nl, "host") || gh_hdr_eq(n, nl, "content-length") ||
            gh_hdr_eq(n, nl, "expect") || gh_hdr_eq(n, nl, "x-request-id") ||
            trace_header(r, n, nl) ||
            (!r->route->relay_token && gh_hdr_eq(n, nl, "authorization")) ||
            gh_route_sets_claim_header(r->route, n, nl) || gh_hedit_find(r->lua.req_edits, n, nl))
            continue;
        if (forwarding_header(n, nl) && (!r->trusted_peer || gh_hdr_eq(n, nl, "x-forwarded-for") ||
                                         gh_hdr_eq(n, nl, "x-forwarded-prefix")))
            continue; /* untrusted: dropped; trusted XFF and prefix are merged below */
        put(w, n, nl);
        put(w, ": ", 2);
        put(w, gh_hdr_value(&r->head, x), x->value_len);
        put(w, "\r\n", 2);
    }
}

/* Headers a policy set: those the route sets from claims, and the
 * upstream request's traceparent, are not its to change (removals have
 * nothing to write). */
static void put_edits(wbuf_t *w, const gh_route_t *rt, const gh_hedit_t *e)
{
    for (; e; e = e->next) {
        if (!e->value || (rt && (gh_route_sets_claim_header(rt, e->name, e->name_len) ||
                                 gh_hdr_eq(e->name, e->name_len, "traceparent"))))
            continue;
        put(w, e->name, e->name_len);
        put(w, ": ", 2);
        put(w, e->value, e->value_len);
        put(w, "\r\n", 2);
    }
}

static size_t edits_size(const gh_hedit_t *e)
{
    size_t n = 0;
    for (; e; e = e->next) n += e->name_len + e->value_len + 4;
    return n;
}

/* Value of a trusted peer's header, or NULL. */
static const gh_hdr_t *trusted_hdr(const gh_req_t *r, const char *name)
{
    return r->trusted_peer ? gh_head_find(&r->head, name) : NULL;
}

/* X-Forwarded-* as Spring's ForwardedHeaderFilter reads them. */
static void put_forwarded(wbuf_t *w, const gh_req_t *r)
{
    char port[8];
    put_s(w, "X-Forwarded-For: ");
    for (uint32_t i = 0; r->trusted_peer && i < r->head.n; i++) {
        const gh_hdr_t *x = &r->head.hdrs[i];
        if (!gh_hdr_eq(gh_hdr_name(&r->head, x), x->name_len, "x-forwarded-for")) continue;
        put(w, gh_hdr_value(&r->head, x), x->value_len);
        put(w, ", ", 2);
    }
    put_s(w, r->conn->peer_ip);
    put(w, "\r\n", 2);
    if (!trusted_hdr(r, "x-forwarded-proto")) put_s(w, "X-Forwarded-Proto: http\r\n");
    if (!trusted_hdr(r, "x-forwarded-host") && r->host_len)
        put_hdr(w, "X-Forwarded-Host", r->host, r->host_len);
    if (!trusted_hdr(r, "x-forwarded-port")) {
        snprintf(port, sizeof(port), "%d", r->conn->local_port);
        put_hdr(w, "X-Forwarded-Port", port, strlen(port));
    }
    const gh_hdr_t *outer = trusted_hdr(r, "x-forwarded-prefix");
    const char *strip = r->route->strip;
    if (outer || strip) {
        put_s(w, "X-Forwarded-Prefix: ");
        if (outer) put(w, gh_hdr_value(&r->head, outer), outer->value_len);
        if (strip) put_s(w, strip);
        put(w, "\r\n", 2);
    }
}

/* The path the upstream sees (gh_req_upstream_path) and the query: the
 * client's, or a policy's. */
static void put_target(wbuf_t *w, gh_req_t *r)
{
    size_t len = 0;
    const char *path = gh_req_upstream_path(r, &len);
    if (!path) w->overflow = true;
    put(w, path, len);
    const char *q = r->lua.query_set ? r->lua.query : r->query;
    if (q) {
        put(w, "?", 1);
        put(w, q, r->lua.query_set ? r->lua.query_len : r->query_len);
    }
}

/* Builds the request head for the upstream. Returns NULL on overflow/OOM. */
static gh_buf_t *build_head(gh_req_t *r, const gh_target_conf_t *t, size_t *len)
{
    /* claims come from a token, so max_token bounds what they can add */
    size_t claims = r->route->nclaim_headers ? r->cfg->issuers[r->route->issuer].max_token : 0;
    size_t extra = edits_size(r->lua.req_edits) + r->lua.path_len + r->lua.query_len;
    gh_buf_t *b = gh_buf_new(2 * (size_t)r->head.len + r->path_len + claims + extra + 2048);
    if (!b) return NULL;
    wbuf_t w = {b->data, 0, b->cap, false};
    put_s(&w, llhttp_method_name((llhttp_method_t)r->method));
    put(&w, " ", 1);
    put_target(&w, r);
    put_s(&w, " HTTP/1.1\r\n");
    if (r->route->preserve_host && r->host_len)
        put_hdr(&w, "Host", r->host, r->host_len);
    else
        put_hdr(&w, "Host", t->text, strlen(t->text));
    put_client_headers(&w, r);
    put_edits(&w, r->route, r->lua.req_edits);
    put_claim_headers(&w, r);
    put_forwarded(&w, r);
    put_hdr(&w, "X-Request-Id", r->id, strlen(r->id));
    char tp[GH_TRACEPARENT_LEN + 1];
    put_hdr(&w, "traceparent", tp, gh_trace_format(&r->trace, tp));
    if (r->chunked) {
        put_s(&w, "Transfer-Encoding: chunked\r\n");
    } else if (r->content_length >= 0) {
        char cl[32];
        snprintf(cl, sizeof(cl), "%lld", (long long)r->content_length);
        put_hdr(&w, "Content-Length", cl, strlen(cl));
    }
    put(&w, "\r\n", 2);
    if (w.overflow) {
        gh_buf_unref(b);
        return NULL;
    }
    *len = w.n;
    return b;
}

static void up_read(gh_stream_t *s, ssize_t nread, gh_buf_t *buf);
static void up_write(gh_stream_t *s, int status);
static void up_timeout(gh_upconn_t *u);
static const llhttp_settings_t resp_settings;

/* Sends the request head on a connected upstream and lets the body flow. */
static void send_head(gh_proxy_t *p)
{
    gh_req_t *r = p->r;
    gh_upconn_t *u = p->u;
    size_t len = 0;
    gh_buf_t *b = build_head(r, u->tp->conf, &len);
    if (!b) {
        fail(p, 502, "request head too large to forward");
        return;
    }
    u->s.on_read = up_read;
    u->s.on_write = up_write;
    u->on_timeout = up_timeout;
    llhttp_init(&u->parser, HTTP_RESPONSE, &resp_settings);
    u->parser.data = p;
    int rc = gh_stream_write(&u->s, NULL, 0, b, b->data, len, NULL, 0);
    gh_buf_unref(b);
    if (rc == 0) rc = gh_stream_read_start(&u->s);
    if (rc != 0) {
        fail(p, 502, "cannot write to the upstream");
        return;
    }
    p->head_sent = true;
    if (!r->has_body || r->body_done) {
        p->req_sent = true;
        gh_upstream_timer(u, u->conf->read_timeout);
        return;
    }
    if (r->expect_continue && r->http_minor >= 1 && r->body_in == 0)
        gh_stream_write(&r->conn->s, "HTTP/1.1 100 Continue\r\n\r\n", 25, NULL, NULL, 0, NULL, 0);
    gh_conn_body_ready(r->conn);
}

void gh_proxy_request_body(gh_proxy_t *p, gh_buf_t *buf, const char *at, size_t len)
{
    if (!p->u || len == 0) return;
    if (p->r->chunked) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        gh_stream_write(&p->u->s, size, (size_t)n, buf, at, len, "\r\n", 2);
    } else {
        gh_stream_write(&p->u->s, NULL, 0, buf, at, len, NULL, 0);
    }
}

void gh_proxy_request_end(gh_proxy_t *p)
{
    if (!p->u || !p->head_sent || p->req_sent) return;
    if (p->r->chunked) gh_stream_write(&p->u->s, "0\r\n\r\n", 5, NULL, NULL, 0, NULL, 0);
    p->req_sent = true;
    if (!p->resp_complete) gh_upstream_timer(p->u, p->u->conf->read_timeout);
}

bool gh_proxy_blocked(gh_proxy_t *p)
{
    p->client_blocked = p->u && p->u->s.write_pending > HIGH_WATER;
    return p->client_blocked;
}

static void up_write(gh_stream_t *s, int status)
{
    gh_upconn_t *u = s->owner;
    gh_proxy_t *p = u->owner;
    if (status < 0) return; /* the read side reports the failure */
    /* Upstream progress keeps a blocked client's body timer from firing. */
    if (p->client_blocked && s->write_pending <= LOW_WATER) gh_conn_body_ready(p->r->conn);
}

void gh_proxy_client_drained(gh_proxy_t *p)
{
    if (!p->up_paused || !p->u || p->r->conn->s.write_pending > LOW_WATER) return;
    p->up_paused = false;
    if (gh_stream_read_start(&p->u->s) != 0) {
        fail(p, 502, "cannot read from the upstream");
        return;
    }
    gh_upstream_timer(p->u, p->u->conf->read_timeout);
}

void gh_proxy_abort(gh_proxy_t *p)
{
    if (p->u) gh_upstream_close(p->u);
    p->u = NULL;
}

void gh_proxy_finish(gh_proxy_t *p)
{
    gh_upconn_t *u = p->u;
    p->u = NULL;
    if (!u) return;
    if (p->resp_complete && p->req_sent && !p->trailing_garbage &&
        llhttp_should_keep_alive(&u->parser))
        gh_upstream_release(u);
    else
        gh_upstream_close(u);
}

static void up_timeout(gh_upconn_t *u)
{
    gh_proxy_t *p = u->owner;
    fail(p, 504, "upstream did not answer within read_timeout");
}

static gh_proxy_t *pof(llhttp_t *parser)
{
    return parser->data;
}

static int resp_refuse(gh_proxy_t *p, const char *why)
{
    p->fail = why;
    return -1;
}

static int resp_append(gh_proxy_t *p, const char *at, size_t len)
{
    if (gh_head_append(p->r->arena, &p->rh, at, len, RESP_HEAD_MAX))
        return resp_refuse(p, "upstream response head too large");
    return 0;
}

static int on_status(llhttp_t *parser, const char *at, size_t len)
{
    gh_proxy_t *p = pof(parser);
    p->reason_len += (uint32_t)len;
    return resp_append(p, at, len);
}

static int on_field(llhttp_t *parser, const char *at, size_t len)
{
    gh_proxy_t *p = pof(parser);
    gh_head_t *h = &p->rh;
    if (!p->in_field) {
        int rc = gh_head_new_field(p->r->arena, h, RESP_HEADERS_MAX);
        if (rc > 0) return resp_refuse(p, "too many upstream response headers");
        if (rc < 0) return resp_refuse(p, "out of memory");
        p->in_field = true;
    }
    h->hdrs[h->n - 1].name_len += (uint32_t)len;
    return resp_append(p, at, len);
}

static int on_field_done(llhttp_t *parser)
{
    pof(parser)->in_field = false;
    return 0;
}

static int on_value(llhttp_t *parser, const char *at, size_t len)
{
    gh_proxy_t *p = pof(parser);
    gh_hdr_t *x = &p->rh.hdrs[p->rh.n - 1];
    if (!p->in_value) {
        x->value = p->rh.len;
        p->in_value = true;
    }
    x->value_len += (uint32_t)len;
    return resp_append(p, at, len);
}

static int on_value_done(llhttp_t *parser)
{
    pof(parser)->in_value = false;
    return 0;
}

/* Copies the upstream's end-to-end response headers. */
static void put_upstream_headers(wbuf_t *w, const gh_head_t *h, const gh_hedit_t *edits,
                                 bool drop_length)
{
    gh_conn_tokens_t tokens = {0};
    for (uint32_t i = 0; i < h->n; i++)
        if (gh_hdr_eq(gh_hdr_name(h, &h->hdrs[i]), h->hdrs[i].name_len, "connection"))
            gh_conn_tokens_add(&tokens, gh_hdr_value(h, &h->hdrs[i]), h->hdrs[i].value_len);
    for (uint32_t i = 0; i < h->n; i++) {
        const gh_hdr_t *x = &h->hdrs[i];
        const char *n = gh_hdr_name(h, x);
        if (gh_hdr_is_hop_by_hop(n, x->name_len) || gh_conn_tokens_has(&tokens, n, x->name_len) ||
            gh_hdr_eq(n, x->name_len, "x-request-id") || gh_hedit_find(edits, n, x->name_len) ||
            (drop_length && gh_hdr_eq(n, x->name_len, "content-length")))
            continue;
        put(w, n, x->name_len);
        put(w, ": ", 2);
        put(w, gh_hdr_value(h, x), x->value_len);
        put(w, "\r\n", 2);
    }
}

/* Sends the response head to the client, choosing the body framing the
 * client can read. Returns 1 when no body follows (HEAD, 204, 304), which
 * tells llhttp not to wait for one. */
static int send_response_head(gh_proxy_t *p, llhttp_t *parser)
{
    gh_req_t *r = p->r;
    int status = parser->status_code;
    bool head = r->method == HTTP_HEAD;
    bool no_body = head || status == 204 || status == 304;
    bool up_chunked = (parser->flags & F_CHUNKED) != 0;
    bool has_len = (parser->flags & F_CONTENT_LENGTH) && !up_chunked;
    if (!no_body && !has_len) {
        if (r->http_minor >= 1)
            p->chunk_out = true;
        else
            r->close_after = true; /* HTTP/1.0: the close delimits the body */
    }
    if (gh_policy_on_response(r, &p->rh, status)) {
        p->fail_status = 500;
        return resp_refuse(p, "the route's on_response failed");
    }
    gh_buf_t *b = gh_buf_new(p->rh.len + p->rh.n * 4 + edits_size(r->lua.resp_edits) + 768);
    if (!b) return resp_refuse(p, "out of memory");
    wbuf_t w = {b->data, 0, b->cap, false};
    char line[48];
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    put_s(&w, line);
    put(&w, p->rh.data, p->reason_len);
    put(&w, "\r\n", 2);
    put_upstream_headers(&w, &p->rh, r->lua.resp_edits, up_chunked || status == 204);
    put_edits(&w, NULL, r->lua.resp_edits);
    if (r->limit.headers) { /* the route or policy asked to show its limit */
        char rl[256];
        put(&w, rl, gh_limiter_headers(r, rl, sizeof(rl)));
    }
    put_hdr(&w, "X-Request-Id", r->id, strlen(r->id));
    if (p->chunk_out) put_s(&w, "Transfer-Encoding: chunked\r\n");
    if (r->close_after || !r->keep_alive || r->w->draining)
        put_s(&w, "Connection: close\r\n");
    else if (r->http_minor == 0)
        put_s(&w, "Connection: keep-alive\r\n");
    put(&w, "\r\n", 2);
    if (w.overflow) {
        gh_buf_unref(b);
        return resp_refuse(p, "upstream response head too large");
    }
    r->status = status;
    r->resp_head = true;
    r->bytes_out += w.n;
    gh_stream_write(&r->conn->s, NULL, 0, b, b->data, w.n, NULL, 0);
    gh_buf_unref(b);
    return no_body ? 1 : 0; /* llhttp would wait for a 304's Content-Length */
}

static int on_resp_headers(llhttp_t *parser)
{
    gh_proxy_t *p = pof(parser);
    int status = parser->status_code;
    if (status == 101) return resp_refuse(p, "upstream switched protocols unasked");
    if (status >= 100 && status < 200) { /* interim: the final response follows */
        p->interim = true;
        return 0;
    }
    return send_response_head(p, parser);
}

static int on_resp_body(llhttp_t *parser, const char *at, size_t len)
{
    gh_proxy_t *p = pof(parser);
    gh_req_t *r = p->r;
    if (p->chunk_out) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        gh_stream_write(&r->conn->s, size, (size_t)n, p->cur, at, len, "\r\n", 2);
        r->bytes_out += (uint64_t)n + len + 2;
    } else {
        gh_stream_write(&r->conn->s, NULL, 0, p->cur, at, len, NULL, 0);
        r->bytes_out += len;
    }
    return 0;
}

static int on_resp_complete(llhttp_t *parser)
{
    gh_proxy_t *p = pof(parser);
    if (p->interim) { /* forget the 1xx head, parse the final response */
        p->interim = false;
        p->rh.len = p->rh.n = 0;
        p->reason_len = 0;
        return 0;
    }
    p->resp_complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_done,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_done,
    .on_headers_complete = on_resp_headers,
    .on_body = on_resp_body,
    .on_message_complete = on_resp_complete,
};

/* The upstream closed or failed before the response completed. */
static void up_gone(gh_proxy_t *p, ssize_t err)
{
    gh_req_t *r = p->r;
    gh_upconn_t *u = p->u;
    if (!p->got_bytes && u->reused && !p->retried && idempotent(r->method) && !r->has_body) {
        /* A pooled connection the upstream had already closed: once more,
         * on a fresh one. */
        p->retried = true;
        gh_upstream_close(u);
        p->u = NULL;
        connect_upstream(p, true);
        return;
    }
    if (p->got_bytes)
        fail(p, 502, "upstream closed the connection mid-response");
    else
        fail(p, 502,
             err == UV_EOF ? "upstream closed the connection without a response"
                           : "upstream connection reset");
}

/* The whole response has been read: end the client's copy of its body. */
static void end_body(gh_proxy_t *p)
{
    gh_req_t *r = p->r;
    r->upstream_end_ns = uv_hrtime();
    if (p->chunk_out) {
        gh_stream_write(&r->conn->s, "0\r\n\r\n", 5, NULL, NULL, 0, NULL, 0);
        r->bytes_out += 5;
    }
    gh_upstream_timer_stop(p->u);
}

/* At EOF, a close-delimited body is complete; true when that is the case. */
static bool eof_completes(gh_proxy_t *p, ssize_t err)
{
    if (err != UV_EOF || !p->got_bytes || p->resp_complete) return false;
    llhttp_errno_t e = llhttp_finish(&p->u->parser);
    p->trailing_garbage = true; /* the connection is gone: never reuse it */
    return (e == HPE_OK || e == HPE_PAUSED) && p->resp_complete;
}

/* Parses upstream bytes; relays them to the client as callbacks fire. */
static void up_read(gh_stream_t *s, ssize_t nread, gh_buf_t *buf)
{
    gh_upconn_t *u = s->owner;
    gh_proxy_t *p = u->owner;
    gh_req_t *r = p->r;
    if (nread < 0) {
        if (eof_completes(p, nread)) {
            end_body(p);
            gh_req_response_done(r);
        } else {
            up_gone(p, nread);
        }
        return;
    }
    p->got_bytes = true;
    p->cur = buf;
    gh_stream_cork(&r->conn->s); /* head and body go out in one write */
    llhttp_errno_t e = llhttp_execute(&u->parser, buf->data, (size_t)nread);
    p->cur = NULL;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&u->parser);
        if (pos != buf->data + nread) p->trailing_garbage = true;
    } else if (e != HPE_OK) {
        gh_stream_uncork(&r->conn->s);
        fail(p, p->fail_status ? p->fail_status : 502,
             p->fail ? p->fail : "invalid response from the upstream");
        return;
    }
    if (p->resp_complete) end_body(p);
    gh_stream_uncork(&r->conn->s);
    if (p->resp_complete) {
        gh_req_response_done(r);
        return;
    }
    if (r->conn->s.write_pending > HIGH_WATER) { /* the client reads slower */
        p->up_paused = true;
        gh_stream_read_stop(&u->s);
        gh_upstream_timer_stop(u);
    } else {
        gh_upstream_timer(u, u->conf->read_timeout);
    }
}
