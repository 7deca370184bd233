#include "conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "req.h"
#include "worker.h"

#define LINGER_SECONDS  5.0
#define PUT_OFF_SECONDS 0.05 /* a timeout whose bytes have arrived, unread */
#define LATE_MS         1000 /* a loop this late past a deadline was held up */

static gh_conn_t *of(llhttp_t *p)
{
    return p->data;
}

/* Makes a callback fail the parse with status and detail. */
static int refuse(gh_conn_t *c, int status, const char *detail)
{
    c->err_status = status;
    c->err_detail = detail;
    return -1;
}

/* Moves c into the worker's list for kind (or off every list), kept in
 * deadline order. A timeout is the same for a whole list, so c goes last
 * at once, except after a reload shortened that timeout: then it passes
 * the connections that started under the longer one. */
static void timer_set(gh_conn_t *c, gh_conn_timer_t kind, double seconds)
{
    gh_list_remove(&c->tlink);
    c->timer_kind = kind;
    if (kind == GH_TIMER_OFF) return;
    c->deadline = uv_now(&c->w->loop) + (uint64_t)(seconds * 1000 + 0.5);
    gh_link_t *head = &c->w->deadlines[kind], *at = head->prev;
    while (at != head && gh_container_of(at, gh_conn_t, tlink)->deadline > c->deadline)
        at = at->prev;
    gh_list_push(at, &c->tlink);
}

static int on_message_begin(llhttp_t *p)
{
    gh_conn_t *c = of(p);
    c->req = gh_req_new(c);
    if (!c->req) return refuse(c, 503, "out of memory");
    c->requests_seen = true;
    timer_set(c, GH_TIMER_HEADER, c->w->cfg->limits.header_timeout);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    gh_conn_t *c = of(p);
    gh_req_t *r = c->req;
    const gh_limits_t *l = &c->w->cfg->limits;
    if (r->url_len + len > l->max_uri)
        return refuse(c, 414, "request target longer than limits.max_uri");
    if (gh_head_append(r->arena, &r->head, at, len, l->max_uri + l->max_header_bytes))
        return refuse(c, 503, "out of memory");
    r->url_len += (uint32_t)len;
    return 0;
}

/* Counts header bytes (each field also costs ": " and CRLF) against the limit. */
static int add_header_bytes(gh_conn_t *c, gh_req_t *r, const char *at, size_t len)
{
    const gh_limits_t *l = &c->w->cfg->limits;
    r->hdr_bytes += (uint32_t)len;
    if (r->hdr_bytes > l->max_header_bytes)
        return refuse(c, 431, "request header fields larger than limits.max_header_bytes");
    if (gh_head_append(r->arena, &r->head, at, len, l->max_uri + l->max_header_bytes))
        return refuse(c, 503, "out of memory");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    gh_conn_t *c = of(p);
    gh_req_t *r = c->req;
    gh_head_t *h = &r->head;
    if (!r->in_field) { /* a new field; a name split across reads continues */
        int rc = gh_head_new_field(r->arena, h, c->w->cfg->limits.max_headers);
        if (rc > 0) return refuse(c, 431, "more header fields than limits.max_headers");
        if (rc < 0) return refuse(c, 503, "out of memory");
        r->in_field = true;
        r->hdr_bytes += 4;
    }
    if (add_header_bytes(c, r, at, len)) return -1;
    h->hdrs[h->n - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    of(p)->req->in_field = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    gh_conn_t *c = of(p);
    gh_req_t *r = c->req;
    gh_hdr_t *x = &r->head.hdrs[r->head.n - 1];
    if (!r->in_value) {
        x->value = r->head.len;
        r->in_value = true;
    } else if (at != c->value_end) {
        /* llhttp continues a value across CRLF SP (obs-fold); we refuse it,
         * as RFC 9112 5.2 allows, rather than forward a folded field. */
        return refuse(c, 400, "obsolete line folding in a header field");
    }
    if (add_header_bytes(c, r, at, len)) return -1;
    x->value_len += (uint32_t)len;
    c->value_end = at + len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    of(p)->req->in_value = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    gh_conn_t *c = of(p);
    gh_req_t *r = c->req;
    r->method = p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->keep_alive = llhttp_should_keep_alive(p);
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    r->has_body = r->chunked || r->content_length > 0;
    p->upgrade = 0; /* Upgrade is never honoured: serve it as plain HTTP/1.1 */
    const char *detail = NULL;
    int status = gh_req_head_complete(r, &detail);
    if (status) return refuse(c, status, detail);
    c->head_done = c->head_new = true;
    timer_set(c, GH_TIMER_OFF, 0);
    /* With a body, stop here until the upstream is ready to take it. */
    return r->has_body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    gh_conn_t *c = of(p);
    gh_req_t *r = c->req;
    uint64_t max = c->w->cfg->limits.max_body;
    r->body_in += len;
    if (max && r->body_in > max) return refuse(c, 413, "request body larger than limits.max_body");
    if (r->proxy) gh_proxy_request_body(r->proxy, c->cur, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    gh_conn_t *c = of(p);
    c->req->body_done = true;
    c->msg_done = true;
    return HPE_PAUSED; /* the next pipelined request waits for this response */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* True when llhttp may consume more bytes now. */
static bool can_parse(const gh_conn_t *c)
{
    if (c->closing) return false;
    if (!c->req) return !c->w->draining || !c->requests_seen;
    if (!c->head_done) return true;
    if (c->req->body_done || !c->body_flowing) return false;
    return !(c->req->proxy && gh_proxy_blocked(c->req->proxy));
}

/* Keeps reading while one more buffer can be held, even when it cannot be
 * parsed yet: toggling epoll for every request costs more than the rare
 * pipelined bytes that wait in pend. Stops for request-body back-pressure. */
static bool want_read(const gh_conn_t *c)
{
    if (c->pend || c->peer_eof) return false;
    const gh_req_t *r = c->req;
    if (r && c->head_done && !r->body_done && c->body_flowing && r->proxy)
        return !gh_proxy_blocked(r->proxy);
    return true;
}

static void drop_pending(gh_conn_t *c)
{
    if (c->pend) gh_buf_unref(c->pend);
    c->pend = NULL;
    c->pend_off = c->pend_len = 0;
}

/* The parse failed: answer with the status a callback chose, or 400 with
 * llhttp's reason, and close. */
static void parse_failed(gh_conn_t *c, llhttp_errno_t err)
{
    int status = c->err_status ? c->err_status : 400;
    const char *detail = c->err_detail ? c->err_detail : llhttp_get_error_reason(&c->parser);
    if (!c->err_status && err == HPE_INVALID_TRANSFER_ENCODING)
        detail = "Transfer-Encoding other than a final 'chunked'";
    drop_pending(c);
    if (!c->req) c->req = gh_req_new(c);
    if (!c->req) {
        gh_conn_close(c, false);
        return;
    }
    gh_log(GH_LOG_INFO, "client %s: %d %s", c->peer_ip, status, detail ? detail : "bad request");
    c->req->close_after = true;
    gh_req_error(c->req, status, detail ? detail : "malformed request");
}

/* Feeds buffered bytes to llhttp, then acts on what the callbacks saw
 * (outside of them, so nothing re-enters the parser). */
static void parse_pending(gh_conn_t *c)
{
    const char *p = c->pend->data + c->pend_off;
    c->cur = c->pend;
    c->value_end = p; /* a value split across reads resumes right here */
    llhttp_errno_t err = llhttp_execute(&c->parser, p, c->pend_len);
    c->cur = NULL;
    size_t used = c->pend_len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
        if (err == HPE_PAUSED)
            llhttp_resume(&c->parser);
        else
            llhttp_resume_after_upgrade(&c->parser);
    } else if (err != HPE_OK) {
        if (c->req) c->req->bytes_in += (size_t)(llhttp_get_error_pos(&c->parser) - p);
        parse_failed(c, err);
        return;
    }
    if (c->req) c->req->bytes_in += used;
    c->pend_off += used;
    c->pend_len -= used;
    if (c->pend_len == 0) drop_pending(c);
    gh_req_t *r = c->req;
    if (r && c->head_new) {
        c->head_new = false;
        gh_req_run(r);
    }
    if (c->req == r && r && c->msg_done) {
        c->msg_done = false;
        timer_set(c, GH_TIMER_OFF, 0);
        gh_req_body_done(r);
    }
}

void gh_conn_process(gh_conn_t *c)
{
    if (c->in_process) {
        c->again = true;
        return;
    }
    c->in_process = true;
    do {
        c->again = false;
        while (c->pend && can_parse(c)) parse_pending(c);
    } while (c->again);
    c->in_process = false;
    if (c->closing) return;
    if (!c->req && c->requests_seen && c->w->draining) {
        gh_conn_close(c, true);
        return;
    }
    if (want_read(c)) {
        if (gh_stream_read_start(&c->s) != 0) gh_conn_close(c, false);
    } else {
        gh_stream_read_stop(&c->s);
    }
}

void gh_conn_body_ready(gh_conn_t *c)
{
    c->body_flowing = true;
    if (c->req && !c->req->body_done) timer_set(c, GH_TIMER_BODY, c->w->cfg->limits.body_timeout);
    gh_conn_process(c);
}

static void on_read(gh_stream_t *s, ssize_t nread, gh_buf_t *buf)
{
    gh_conn_t *c = s->owner;
    if (nread == UV_EOF && c->req && c->req->body_done && !c->req->resp_done) {
        /* Half-closed after a complete request: answer it, then close. */
        c->peer_eof = true;
        c->req->close_after = true;
        gh_stream_read_stop(&c->s);
        return;
    }
    if (nread < 0) { /* EOF or reset: a request in progress cannot complete */
        gh_conn_close(c, false);
        return;
    }
    gh_buf_ref(buf);
    c->pend = buf;
    c->pend_off = 0;
    c->pend_len = (size_t)nread;
    if (c->timer_kind == GH_TIMER_BODY)
        timer_set(c, GH_TIMER_BODY, c->w->cfg->limits.body_timeout);
    else if (c->timer_kind == GH_TIMER_IDLE)
        timer_set(c, GH_TIMER_HEADER, c->w->cfg->limits.header_timeout);
    gh_conn_process(c);
}

static void on_write(gh_stream_t *s, int status)
{
    gh_conn_t *c = s->owner;
    if (status < 0) {
        gh_conn_close(c, false);
        return;
    }
    if (c->req && c->req->proxy) gh_proxy_client_drained(c->req->proxy);
}

static void timer_fire(gh_conn_t *c, gh_conn_timer_t kind)
{
    const gh_limits_t *l = &c->w->cfg->limits;
    switch (kind) {
    case GH_TIMER_HEADER:
        if (!c->req) {
            gh_conn_close(c, false);
            break;
        }
        drop_pending(c);
        c->req->close_after = true;
        gh_log(GH_LOG_INFO, "client %s: request head not complete after %gs", c->peer_ip,
               l->header_timeout);
        gh_req_error(c->req, 408, "request head not received within limits.header_timeout");
        break;
    case GH_TIMER_BODY:
        drop_pending(c);
        c->req->close_after = true;
        gh_log(GH_LOG_INFO, "client %s: request body stalled for %gs", c->peer_ip, l->body_timeout);
        gh_req_error(c->req, 408, "request body stalled longer than limits.body_timeout");
        break;
    case GH_TIMER_IDLE:
        gh_conn_close(c, false);
        break;
    case GH_TIMER_LINGER:
        gh_stream_close(&c->s);
        break;
    default:
        break;
    }
}

/* libuv runs timers before reads: after the loop was held up (a log write
 * to a full pipe, say), a timeout can come due with the bytes it waits for
 * already in the socket. It is put off then: always for idle and body (a
 * byte restarts those anyway), for the head only when the loop ran late,
 * so a client dribbling its head cannot stretch limits.header_timeout. */
static bool put_off(gh_conn_t *c, gh_conn_timer_t kind, uint64_t now)
{
    if (kind == GH_TIMER_LINGER) return false;
    if (kind == GH_TIMER_HEADER && now - c->deadline < LATE_MS) return false;
    return gh_stream_input_waiting(&c->s);
}

void gh_conn_expire(gh_worker_t *w, uint64_t now)
{
    for (int k = GH_TIMER_OFF + 1; k < GH_TIMER_KINDS; k++) {
        gh_link_t *head = &w->deadlines[k];
        while (!gh_list_empty(head)) {
            gh_conn_t *c = gh_container_of(head->next, gh_conn_t, tlink);
            if (c->deadline > now) break; /* the rest of this list is later */
            if (put_off(c, (gh_conn_timer_t)k, now)) {
                timer_set(c, (gh_conn_timer_t)k, PUT_OFF_SECONDS); /* read this iteration */
                continue;
            }
            timer_set(c, GH_TIMER_OFF, 0);
            timer_fire(c, (gh_conn_timer_t)k);
        }
    }
}

static void on_stream_closed(gh_stream_t *s)
{
    gh_conn_t *c = s->owner;
    gh_worker_t *w = c->w;
    gh_list_remove(&c->tlink);
    gh_list_remove(&c->link);
    free(c);
    gh_worker_conn_gone(w);
}

void gh_conn_close(gh_conn_t *c, bool graceful)
{
    if (c->closing) {
        if (!graceful) gh_stream_close(&c->s);
        return;
    }
    c->closing = true;
    drop_pending(c);
    if (c->req) gh_req_abort(c->req);
    if (graceful) {
        timer_set(c, GH_TIMER_LINGER, LINGER_SECONDS);
        gh_stream_shutdown_close(&c->s);
    } else {
        timer_set(c, GH_TIMER_OFF, 0);
        gh_stream_close(&c->s);
    }
}

void gh_conn_request_done(gh_conn_t *c, bool close)
{
    c->req = NULL;
    c->head_done = c->head_new = c->msg_done = c->body_flowing = false;
    c->err_status = 0;
    c->err_detail = NULL;
    if (close || c->w->draining) {
        gh_conn_close(c, true);
        return;
    }
    timer_set(c, GH_TIMER_IDLE, c->w->cfg->limits.idle_timeout);
    gh_conn_process(c);
}

void gh_conn_drain(gh_conn_t *c)
{
    if (c->closing) return;
    if (!c->req)
        gh_conn_close(c, true);
    else
        c->req->close_after = true;
}

/* Records the peer's address (each request checks it against its own
 * config's trusted_proxies), as text too, and the local port (for
 * X-Forwarded-Port). */
static void peer_info(gh_conn_t *c)
{
    struct sockaddr_storage local;
    int len = sizeof(c->peer), llen = sizeof(local);
    strcpy(c->peer_ip, "unknown");
    if (uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&c->peer, &len) == 0) {
        if (c->peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&c->peer, c->peer_ip, sizeof(c->peer_ip));
        else
            uv_ip4_name((struct sockaddr_in *)&c->peer, c->peer_ip, sizeof(c->peer_ip));
    } else {
        c->peer.ss_family = AF_UNSPEC;
    }
    if (uv_tcp_getsockname(&c->s.tcp, (struct sockaddr *)&local, &llen) == 0)
        c->local_port =
            ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
                                              : ((struct sockaddr_in *)&local)->sin_port);
}

void gh_conn_accept(gh_worker_t *w, uv_stream_t *listener)
{
    gh_conn_t *c = calloc(1, sizeof(*c));
    if (!c) return;
    if (gh_stream_init(&c->s, &w->loop, w->pool, c) != 0) {
        free(c);
        return;
    }
    c->w = w;
    gh_list_push(&w->conns, &c->link);
    gh_list_init(&c->tlink);
    w->nconns++;
    if (w->metrics) gh_metrics_conns(w->metrics, 1);
    c->s.on_read = on_read;
    c->s.on_write = on_write;
    c->s.on_close = on_stream_closed;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->s.tcp) != 0) {
        gh_conn_close(c, false);
        return;
    }
    uv_tcp_nodelay(&c->s.tcp, 1);
    peer_info(c);
    timer_set(c, GH_TIMER_HEADER, w->cfg->limits.header_timeout);
    gh_conn_process(c);
}
