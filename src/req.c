#include "req.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "limiter.h"
#include "conn.h"
#include "log.h"
#include "lua_policy.h"
#include "metrics.h"
#include "path.h"
#include "proxy.h"
#include "worker.h"

gh_req_t *gh_req_new(gh_conn_t *conn)
{
    gh_arena_t *a = gh_arena_new(4096);
    if (!a) return NULL;
    gh_req_t *r = gh_arena_alloc(a, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->conn = conn;
    r->w = conn->w;
    r->gen = gh_gen_acquire(conn->w);
    r->cfg = r->gen->cfg;
    r->start_ns = uv_hrtime();
    r->content_length = -1;
    r->method = -1;
    return r;
}

void gh_req_free(gh_req_t *r)
{
    gh_gen_t *gen = r->gen; /* the arena's cleanups may still use its Lua VM */
    gh_arena_free(r->arena);
    gh_gen_release(gen);
}

int gh_head_append(gh_arena_t *a, gh_head_t *h, const char *p, size_t n, size_t limit)
{
    if (h->len + n > limit) return -1;
    if (h->len + n > h->cap) {
        uint32_t cap = h->cap ? h->cap : 512;
        while (cap < h->len + n) cap *= 2;
        if (cap > limit) cap = (uint32_t)limit;
        char *d = gh_arena_alloc(a, cap);
        if (!d) return -1;
        if (h->len) memcpy(d, h->data, h->len);
        h->data = d;
        h->cap = cap;
    }
    memcpy(h->data + h->len, p, n);
    h->len += (uint32_t)n;
    return 0;
}

int gh_head_new_field(gh_arena_t *a, gh_head_t *h, size_t max)
{
    if (h->n >= max) return 1;
    if (h->n == h->hcap) {
        uint32_t cap = h->hcap ? h->hcap * 2 : 16;
        gh_hdr_t *n = gh_arena_alloc(a, cap * sizeof(gh_hdr_t));
        if (!n) return -1;
        if (h->n) memcpy(n, h->hdrs, h->n * sizeof(gh_hdr_t));
        h->hdrs = n;
        h->hcap = cap;
    }
    h->hdrs[h->n++] = (gh_hdr_t){h->len, 0, h->len, 0};
    return 0;
}

const gh_hdr_t *gh_head_find(const gh_head_t *h, const char *name)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (gh_hdr_eq(h->data + h->hdrs[i].name, h->hdrs[i].name_len, name)) return &h->hdrs[i];
    return NULL;
}

const char *gh_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Checks each field and collects what the proxy needs from the head:
 * Host, Connection tokens, Expect, framing headers. Returns 0 or a status. */
static int scan_headers(gh_req_t *r, const char **detail, const gh_hdr_t **host)
{
    int n_host = 0, n_cl = 0, n_te = 0;
    for (uint32_t i = 0; i < r->head.n; i++) {
        const gh_hdr_t *x = &r->head.hdrs[i];
        const char *name = gh_hdr_name(&r->head, x), *val = gh_hdr_value(&r->head, x);
        if (!gh_hdr_name_valid(name, x->name_len))
            return *detail = "invalid character in a header field name", 400;
        if (!gh_hdr_value_valid(val, x->value_len))
            return *detail = "invalid character in a header field value", 400;
        if (gh_hdr_eq(name, x->name_len, "host")) {
            n_host++;
            *host = x;
        } else if (gh_hdr_eq(name, x->name_len, "content-length")) {
            n_cl++;
        } else if (gh_hdr_eq(name, x->name_len, "transfer-encoding")) {
            n_te++;
        } else if (gh_hdr_eq(name, x->name_len, "connection")) {
            gh_conn_tokens_add(&r->conn_tokens, val, x->value_len);
        } else if (gh_hdr_eq(name, x->name_len, "expect")) {
            if (!gh_hdr_eq(val, x->value_len, "100-continue"))
                return *detail = "only 'Expect: 100-continue' is supported", 417;
            r->expect_continue = true;
        }
    }
    if (n_host > 1) return *detail = "more than one Host header", 400;
    if (n_host && !gh_host_valid(gh_hdr_value(&r->head, *host), (*host)->value_len))
        return *detail = "invalid Host header", 400;
    if (n_host == 0 && r->http_minor >= 1) return *detail = "HTTP/1.1 request without Host", 400;
    if (n_cl > 1) return *detail = "more than one Content-Length header", 400;
    if (n_cl && n_te) return *detail = "both Content-Length and Transfer-Encoding", 400;
    if (r->conn_tokens.overflow) return *detail = "too many Connection options", 400;
    return 0;
}

/* Splits the request target into path and query (origin-form, or
 * absolute-form whose authority replaces Host) and normalises the path. */
static int parse_target(gh_req_t *r, const char **detail)
{
    const char *u = r->head.data;
    size_t n = r->url_len;
    if (r->method == HTTP_CONNECT) return *detail = "CONNECT is not supported", 405;
    if (n >= 7 && strncasecmp(u, "http://", 7) == 0) {
        const char *auth = u + 7, *end = auth;
        while (end < u + n && *end != '/' && *end != '?') end++;
        if (end == auth || !gh_host_valid(auth, (size_t)(end - auth)))
            return *detail = "absolute-form target without a valid host", 400;
        r->host = auth;
        r->host_len = (size_t)(end - auth);
        n -= (size_t)(end - u);
        u = end;
        if (n == 0) u = "/", n = 1;
    }
    if (n == 0 || u[0] != '/') return *detail = "request target must be an absolute path", 400;
    const char *q = memchr(u, '?', n), *hash = memchr(u, '#', n);
    if (hash) n = (size_t)(hash - u);
    if (q && q < u + n) {
        r->query = q + 1;
        r->query_len = (size_t)(u + n - q - 1);
        n = (size_t)(q - u);
    }
    char *out = gh_arena_alloc(r->arena, n + 1);
    if (!out) return *detail = "out of memory", 503;
    gh_path_status st = gh_path_normalize(u, n, out, &r->path_len);
    if (st != GH_PATH_OK) return *detail = gh_path_status_str(st), 400;
    r->path = out;
    return 0;
}

int gh_req_head_complete(gh_req_t *r, const char **detail)
{
    const gh_hdr_t *host = NULL;
    if (r->http_major == 0) return *detail = "request line without an HTTP version", 400;
    if (r->http_major != 1 || r->http_minor > 1)
        return *detail = "only HTTP/1.0 and HTTP/1.1 are served here", 505;
    int st = scan_headers(r, detail, &host);
    if (!st && host) {
        r->host = gh_hdr_value(&r->head, host);
        r->host_len = host->value_len;
    }
    if (!st) st = parse_target(r, detail);
    if (st) return st;
    uint64_t max = r->cfg->limits.max_body;
    if (max && r->content_length > 0 && (uint64_t)r->content_length > max)
        return *detail = "request body larger than limits.max_body", 413;
    const gh_hdr_t *rid = gh_head_find(&r->head, "x-request-id");
    if (rid && gh_request_id_valid(gh_hdr_value(&r->head, rid), rid->value_len)) {
        memcpy(r->id, gh_hdr_value(&r->head, rid), rid->value_len);
        r->id[rid->value_len] = '\0';
    } else {
        gh_worker_request_id(r->w, r->id);
    }
    gh_trace_start(r);
    r->trusted_peer = gh_config_trusts(r->cfg, &r->conn->peer);
    r->client_ip = r->conn->peer_ip;
    return 0;
}

/* route: pick the most specific route, or answer 404. */
static gh_phase_rc phase_route(gh_req_t *r)
{
    r->route =
        gh_router_match(r->cfg->router, r->host, r->host_len, r->method, r->path, r->path_len);
    if (r->route) {
        r->upstream = r->route->upstream;
        return GH_PHASE_NEXT;
    }
    gh_req_error(r, 404, "no route matches this request");
    return GH_PHASE_STOP;
}

typedef gh_phase_rc (*phase_fn)(gh_req_t *r);
static const phase_fn phases[GH_PHASE_END] = {
    [GH_PHASE_ROUTE] = phase_route,    [GH_PHASE_AUTH] = gh_auth_phase,
    [GH_PHASE_LIMIT] = gh_limit_phase, [GH_PHASE_POLICY] = gh_policy_phase,
    [GH_PHASE_PROXY] = gh_proxy_start,
};

void gh_req_run(gh_req_t *r)
{
    while (r->phase < GH_PHASE_END) {
        gh_phase_t ph = r->phase;
        /* WAIT: an event re-enters here later. STOP: the phase answered,
         * and r may already be freed, so it is not touched again. */
        if (phases[ph](r) != GH_PHASE_NEXT) return;
        r->phase = ph + 1;
    }
}

/* Writes "{...}" problem+json for status into out; returns its length. */
static size_t problem_json(const gh_req_t *r, int status, const char *detail, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap,
                                "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,"
                                "\"detail\":\"",
                                gh_status_text(status), status);
    gh_json_escape(out, cap - 64, &n, detail, strlen(detail));
    n += (size_t)snprintf(out + n, cap - n, "\",\"instance\":\"");
    const char *inst = r->path ? r->path : r->head.data;
    size_t ilen = r->path ? r->path_len : r->url_len;
    if (ilen > 512) ilen = 512;
    if (inst) gh_json_escape(out, cap - 8, &n, inst, ilen);
    n += (size_t)snprintf(out + n, cap - n, "\"}");
    return n;
}

/* Should this response close the connection? */
static bool closing(const gh_req_t *r)
{
    return r->close_after || !r->keep_alive || r->w->draining;
}

void gh_req_error(gh_req_t *r, int status, const char *detail)
{
    gh_req_error_with(r, status, detail, "");
}

void gh_req_error_with(gh_req_t *r, int status, const char *detail, const char *headers)
{
    if (r->proxy) {
        gh_proxy_abort(r->proxy);
        r->proxy = NULL;
    }
    r->status = status;
    if (!r->id[0]) gh_worker_request_id(r->w, r->id); /* refused before the head was read */
    if (r->resp_head) { /* too late for an error response: cut the connection */
        gh_conn_close(r->conn, false);
        return;
    }
    if (r->has_body && !r->body_done) r->close_after = true;
    char body[2048];
    size_t blen = problem_json(r, status, detail, body, sizeof(body));
    gh_buf_t *b = gh_buf_new(blen + strlen(headers) + 512);
    if (!b) {
        gh_conn_close(r->conn, false);
        return;
    }
    int n = snprintf(b->data, b->cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                     "Content-Length: %zu\r\nX-Request-Id: %s\r\n%s%s\r\n",
                     status, gh_status_text(status), blen, r->id, headers,
                     closing(r) ? "Connection: close\r\n" : "");
    if (r->method != HTTP_HEAD) {
        memcpy(b->data + n, body, blen);
        n += (int)blen;
    }
    r->resp_head = true;
    r->bytes_out += (uint64_t)n;
    gh_stream_write(&r->conn->s, NULL, 0, b, b->data, (size_t)n, NULL, 0);
    gh_buf_unref(b);
    gh_req_response_done(r);
}

void gh_req_respond(gh_req_t *r, int status, const char *headers, const char *body, size_t blen)
{
    if (r->has_body && !r->body_done) r->close_after = true;
    gh_buf_t *b = gh_buf_new(strlen(headers) + blen + 512);
    if (!b) {
        gh_conn_close(r->conn, false);
        return;
    }
    int n = snprintf(b->data, b->cap,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nX-Request-Id: %s\r\n%s%s\r\n",
                     status, gh_status_text(status), blen, r->id, headers,
                     closing(r) ? "Connection: close\r\n" : "");
    if (r->method != HTTP_HEAD && blen) {
        memcpy(b->data + n, body, blen);
        n += (int)blen;
    }
    r->status = status;
    r->resp_head = true;
    r->bytes_out += (uint64_t)n;
    gh_stream_write(&r->conn->s, NULL, 0, b, b->data, (size_t)n, NULL, 0);
    gh_buf_unref(b);
    gh_req_response_done(r);
}

const char *gh_req_upstream_path(gh_req_t *r, size_t *len)
{
    if (r->lua.path) {
        *len = r->lua.path_len;
        return r->lua.path;
    }
    const char *path = r->path, *strip = r->route ? r->route->strip : NULL;
    size_t n = r->path_len;
    if (!path) return *len = 0, NULL;
    if (strip) {
        size_t sl = strlen(strip);
        if (sl <= n && memcmp(path, strip, sl) == 0) path += sl, n -= sl;
        if (n == 0 || path[0] != '/') {
            char *p = gh_arena_alloc(r->arena, n + 2);
            if (!p) return NULL;
            p[0] = '/';
            memcpy(p + 1, path, n);
            p[n + 1] = '\0';
            path = p, n++;
        }
    }
    *len = n;
    return path;
}

void gh_req_response_done(gh_req_t *r)
{
    r->resp_done = true;
    gh_req_maybe_finish(r);
}

void gh_req_body_done(gh_req_t *r)
{
    if (r->proxy) gh_proxy_request_end(r->proxy);
    gh_req_maybe_finish(r);
}

static void access_log(gh_req_t *r)
{
    double now = (double)uv_hrtime();
    const char *method = r->method >= 0 ? llhttp_method_name((llhttp_method_t)r->method) : NULL;
    gh_access_entry_t e = {
        .request_id = r->id[0] ? r->id : NULL,
        .trace_id = r->trace.trace_id[0] ? r->trace.trace_id : NULL,
        .client = r->conn->peer_ip,
        .method = method,
        .path = r->path ? r->path : r->head.data,
        .path_len = r->path ? r->path_len : r->url_len,
        .upstream = r->upstream_addr,
        .route = r->route ? r->route->name : NULL,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .upstream_ms = -1,
        .total_ms = (now - (double)r->start_ns) / 1e6,
    };
    if (e.path && !r->path) { /* never log a query string: it may carry credentials */
        const char *q = memchr(e.path, '?', e.path_len);
        if (q) e.path_len = (size_t)(q - e.path);
    }
    if (r->upstream_start_ns) {
        uint64_t end = r->upstream_end_ns ? r->upstream_end_ns : (uint64_t)now;
        e.upstream_ms = (double)(end - r->upstream_start_ns) / 1e6;
    }
    gh_access_log_write(r->w->alog, &e);
    if (r->w->metrics)
        gh_metrics_request(r->w->metrics, e.route, r->method, r->status, e.total_ms / 1e3,
                           e.upstream_ms < 0 ? -1 : e.upstream_ms / 1e3);
}

void gh_req_maybe_finish(gh_req_t *r)
{
    if (r->finished || !r->resp_done) return;
    if (!r->body_done) r->close_after = true; /* answered early: the rest is unread */
    r->finished = true;
    access_log(r);
    if (r->proxy) gh_proxy_finish(r->proxy);
    gh_conn_t *c = r->conn;
    bool close = closing(r);
    gh_req_free(r);
    gh_conn_request_done(c, close);
}

void gh_req_abort(gh_req_t *r)
{
    if (r->finished) return;
    r->finished = true;
    if (r->proxy) gh_proxy_abort(r->proxy);
    if (!r->status) r->status = 499; /* nginx's "client closed request" */
    if (r->path || r->url_len) access_log(r);
    r->conn->req = NULL;
    gh_req_free(r);
}
