#include "http_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 16384

struct gh_http_req_s {
    uv_loop_t *loop;
    gh_url_t url;
    gh_http_opts_t opts;
    char *ca_file;
    gh_http_cb cb;
    void *arg;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct addrinfo *addrs, *next_addr;
    int handles; /* open handles and requests still to call back */
    bool resolving;
    bool tcp_open;
    bool done;     /* answered (or cancelled): everything after is teardown */
    bool complete; /* the response ended */
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *net_in, *net_out; /* ciphertext from and to the socket */
    bool handshaken;
    char request[2560];
    size_t request_len;
    llhttp_t parser;
    char field[32];
    size_t field_len;
    bool in_cache_control;
    bool in_trailers; /* header fields after the body are not the response's */
    char cache_control[256];
    size_t cc_len;
    char *body;
    size_t body_len, body_cap;
    char readbuf[READ_CHUNK];
    gh_http_result_t res;
};

/* ---- URLs ---- */

int gh_url_parse(const char *url, gh_url_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->tls = true;
    } else {
        snprintf(err, errlen, "not an http:// or https:// URL: '%.100s'", url);
        return -1;
    }
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '#') {
            snprintf(err, errlen,
                     "spaces, control bytes and fragments are not allowed in a URL: '%.100s'", url);
            return -1;
        }
    }
    size_t auth_len = strcspn(p, "/?");
    const char *auth_end = p + auth_len;
    if (memchr(p, '@', auth_len)) {
        snprintf(err, errlen, "credentials in a URL are not supported: '%.100s'", url);
        return -1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (!host_end) goto bad_host;
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':') goto bad_host;
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', auth_len);
        if (host_end)
            port = host_end + 1;
        else
            host_end = auth_end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(u->host)) goto bad_host;
    memcpy(u->host, host, hl);
    for (size_t i = 0; i < hl; i++) {
        char c = u->host[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || (*p == '[' && c == ':')))
            goto bad_host;
    }
    if (*p == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, u->host, &a6) != 1) goto bad_host;
    }
    if (port) {
        size_t pl = (size_t)(auth_end - port);
        long v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)port[i]) || pl > 5) goto bad_port;
            v = v * 10 + (port[i] - '0');
        }
        if (pl == 0 || v < 1 || v > 65535) goto bad_port;
        snprintf(u->port, sizeof(u->port), "%ld", v);
    } else {
        snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443" : "80");
    }
    if (strlen(auth_end) + 2 > sizeof(u->target)) {
        snprintf(err, errlen, "the URL is longer than %zu bytes: '%.100s'", sizeof(u->target) - 2,
                 url);
        return -1;
    }
    snprintf(u->target, sizeof(u->target), "%s%s", *auth_end == '/' ? "" : "/", auth_end);
    return 0;
bad_host:
    snprintf(err, errlen, "the URL has no valid host: '%.100s'", url);
    return -1;
bad_port:
    snprintf(err, errlen, "the URL's port is not a number from 1 to 65535: '%.100s'", url);
    return -1;
}

/* ---- teardown ---- */

static void release(gh_http_req_t *r)
{
    if (--r->handles > 0) return;
    if (r->addrs) uv_freeaddrinfo(r->addrs);
    if (r->ssl) SSL_free(r->ssl); /* frees both BIOs */
    if (r->ctx) SSL_CTX_free(r->ctx);
    free(r->body);
    free(r->ca_file);
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

/* Answers once (unless cancelled), then closes whatever is open. */
static void finish(gh_http_req_t *r, bool call)
{
    if (r->done) return;
    r->done = true;
    if (call) {
        r->res.body = r->body ? r->body : "";
        r->res.body_len = r->body_len;
        r->cb(r->arg, &r->res);
    }
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    if (r->tcp_open) uv_close((uv_handle_t *)&r->tcp, on_handle_closed);
    r->tcp_open = false;
    if (r->resolving) uv_cancel((uv_req_t *)&r->gai); /* its callback releases */
}

static void fail(gh_http_req_t *r, const char *fmt, ...)
{
    if (r->done) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->res.error, sizeof(r->res.error), fmt, ap);
    va_end(ap);
    r->res.status = 0;
    finish(r, true);
}

void gh_http_cancel(gh_http_req_t *r)
{
    if (r) finish(r, false);
}

/* The first queued OpenSSL error, for messages. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *s = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return s ? s : "TLS error";
}

/* ---- response parsing ---- */

static gh_http_req_t *of(llhttp_t *p)
{
    return p->data;
}

/* Appends what fits of src to dst (cap bytes, one kept for a NUL). */
static void append_capped(char *dst, size_t cap, size_t *len, const char *src, size_t n)
{
    size_t room = cap - 1 - *len;
    if (n > room) n = room;
    memcpy(dst + *len, src, n);
    *len += n;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    gh_http_req_t *r = of(p);
    append_capped(r->field, sizeof(r->field), &r->field_len, at, len);
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    gh_http_req_t *r = of(p);
    if (r->in_trailers) return r->in_cache_control = false, 0;
    r->field[r->field_len] = '\0';
    r->in_cache_control = strcasecmp(r->field, "cache-control") == 0;
    r->field_len = 0;
    if (r->in_cache_control && r->cc_len && r->cc_len < sizeof(r->cache_control) - 1)
        r->cache_control[r->cc_len++] = ','; /* a second field joins the first */
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    gh_http_req_t *r = of(p);
    if (r->in_cache_control)
        append_capped(r->cache_control, sizeof(r->cache_control), &r->cc_len, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    of(p)->in_cache_control = false;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    gh_http_req_t *r = of(p);
    r->in_trailers = true; /* a chunked body's trailers come after it */
    if (r->body_len + len > r->opts.max_body) {
        snprintf(r->res.error, sizeof(r->res.error), "the response body is larger than %zu bytes",
                 r->opts.max_body);
        return HPE_USER;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1) cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            snprintf(r->res.error, sizeof(r->res.error), "out of memory");
            return HPE_USER;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    gh_http_req_t *r = of(p);
    int status = p->status_code;
    if (status >= 100 && status < 200 && status != 101) {
        /* An interim response (100 Continue, 103 Early Hints): the final
         * one follows on the same connection (RFC 9110 section 15.2). */
        r->cc_len = 0;
        r->body_len = 0;
        r->in_trailers = false;
        return 0;
    }
    r->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* max-age from Cache-Control: -1 when absent, 0 for no-store/no-cache. */
static long cache_max_age(const char *cc)
{
    long age = -1;
    const char *p = cc;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        const char *tok = p;
        while (*p && *p != ',') p++;
        size_t n = (size_t)(p - tok);
        if ((n >= 8 && strncasecmp(tok, "no-store", 8) == 0) ||
            (n >= 8 && strncasecmp(tok, "no-cache", 8) == 0))
            return 0;
        if (n > 8 && strncasecmp(tok, "max-age=", 8) == 0) {
            long v = 0;
            const char *d = tok + 8;
            if (*d == '"') d++;
            if (!isdigit((unsigned char)*d)) continue;
            while (isdigit((unsigned char)*d) && v < 100000000) v = v * 10 + (*d++ - '0');
            age = v;
        }
    }
    return age;
}

/* The response ended: answer with it. */
static void answer(gh_http_req_t *r)
{
    r->res.status = r->parser.status_code;
    r->cache_control[r->cc_len] = '\0';
    r->res.max_age = cache_max_age(r->cache_control);
    finish(r, true);
}

/* Feeds plaintext response bytes to the parser; answers at its end. */
static void parse(gh_http_req_t *r, const char *data, size_t len)
{
    if (r->done) return;
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    if (r->complete) return answer(r);
    if (e == HPE_USER) { /* our own limit, already said in on_body */
        r->res.status = 0;
        return finish(r, true);
    }
    if (e != HPE_OK) fail(r, "bad HTTP response: %s", llhttp_get_error_reason(&r->parser));
}

/* The server closed: the end of a response that runs to the close, or a
 * response cut short. */
static void parse_eof(gh_http_req_t *r)
{
    if (r->done) return;
    llhttp_finish(&r->parser);
    if (r->complete) return answer(r);
    fail(r, "the connection closed before the response ended");
}

/* ---- writing ---- */

typedef struct {
    uv_write_t w;
    gh_http_req_t *r;
    char data[];
} wreq_t;

static void on_written(uv_write_t *w, int status)
{
    wreq_t *wr = (wreq_t *)w;
    gh_http_req_t *r = wr->r;
    free(wr);
    if (status < 0 && status != UV_ECANCELED) fail(r, "write failed: %s", uv_strerror(status));
    release(r);
}

static void send_bytes(gh_http_req_t *r, const char *data, size_t len)
{
    wreq_t *wr = malloc(sizeof(*wr) + len);
    if (!wr) return fail(r, "out of memory");
    wr->r = r;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    r->handles++;
    int rc = uv_write(&wr->w, (uv_stream_t *)&r->tcp, &b, 1, on_written);
    if (rc) {
        free(wr);
        r->handles--;
        fail(r, "write failed: %s", uv_strerror(rc));
    }
}

/* Sends whatever ciphertext OpenSSL has queued. */
static void tls_flush(gh_http_req_t *r)
{
    char buf[READ_CHUNK];
    int n;
    while (!r->done && (n = BIO_read(r->net_out, buf, sizeof(buf))) > 0)
        send_bytes(r, buf, (size_t)n);
}

/* Drives the handshake, sends the request once it is up, and reads. */
static void tls_pump(gh_http_req_t *r)
{
    if (!r->handshaken) {
        int rc = SSL_do_handshake(r->ssl);
        if (rc != 1) {
            int e = SSL_get_error(r->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return tls_flush(r);
            long v = SSL_get_verify_result(r->ssl);
            if (v != X509_V_OK)
                return fail(r, "TLS certificate verification failed: %s",
                            X509_verify_cert_error_string(v));
            return fail(r, "TLS handshake failed: %s", ssl_reason());
        }
        r->handshaken = true;
        if (SSL_write(r->ssl, r->request, (int)r->request_len) <= 0)
            return fail(r, "TLS write failed: %s", ssl_reason());
    }
    char buf[READ_CHUNK];
    for (;;) {
        int n = SSL_read(r->ssl, buf, sizeof(buf));
        if (n > 0) {
            parse(r, buf, (size_t)n);
            if (r->done) return;
            continue;
        }
        int e = SSL_get_error(r->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) return parse_eof(r);
        return fail(r, "TLS read failed: %s", ssl_reason());
    }
    tls_flush(r);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    gh_http_req_t *r = h->data;
    (void)hint;
    *b = uv_buf_init(r->readbuf, sizeof(r->readbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    gh_http_req_t *r = s->data;
    if (r->done || n == 0) return;
    if (n < 0) {
        if (n != UV_EOF) return fail(r, "read failed: %s", uv_strerror((int)n));
        if (r->url.tls && !r->handshaken) return fail(r, "the server closed the TLS handshake");
        return parse_eof(r);
    }
    if (!r->url.tls) return parse(r, b->base, (size_t)n);
    if (BIO_write(r->net_in, b->base, (int)n) != n) return fail(r, "out of memory");
    tls_pump(r);
}

/* ---- connecting ---- */

static int tls_setup(gh_http_req_t *r)
{
    r->ctx = SSL_CTX_new(TLS_client_method());
    if (!r->ctx) return -1;
    SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
    int ok = r->ca_file ? SSL_CTX_load_verify_locations(r->ctx, r->ca_file, NULL)
                        : SSL_CTX_set_default_verify_paths(r->ctx);
    if (ok != 1) return -1;
    r->ssl = SSL_new(r->ctx);
    r->net_in = BIO_new(BIO_s_mem());
    r->net_out = BIO_new(BIO_s_mem());
    if (!r->ssl || !r->net_in || !r->net_out) {
        BIO_free(r->net_in), BIO_free(r->net_out);
        return -1;
    }
    SSL_set_bio(r->ssl, r->net_in, r->net_out);
    SSL_set_connect_state(r->ssl);
    struct in6_addr a;
    bool ip = inet_pton(AF_INET, r->url.host, &a) == 1 || inet_pton(AF_INET6, r->url.host, &a) == 1;
    if (ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), r->url.host) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(r->ssl, r->url.host) != 1) return -1;
    return SSL_set1_host(r->ssl, r->url.host) == 1 ? 0 : -1;
}

static void try_connect(gh_http_req_t *r);

/* The socket of a refused address closed: its hold passes to the next try. */
static void on_closed_for_retry(uv_handle_t *h)
{
    gh_http_req_t *r = h->data;
    if (r->done) return release(r);
    try_connect(r);
}

static void on_connected(uv_connect_t *c, int status)
{
    gh_http_req_t *r = c->data;
    release(r); /* the connect request */
    if (r->done) return;
    if (status < 0) {
        if (r->next_addr) { /* another address: close this socket, then try it */
            r->tcp_open = false;
            uv_close((uv_handle_t *)&r->tcp, on_closed_for_retry);
            return;
        }
        return fail(r, "cannot connect to %s:%s: %s", r->url.host, r->url.port,
                    uv_strerror(status));
    }
    int rc = uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
    if (rc) return fail(r, "read failed: %s", uv_strerror(rc));
    if (!r->url.tls) return send_bytes(r, r->request, r->request_len);
    if (tls_setup(r)) return fail(r, "cannot set up TLS: %s", ssl_reason());
    tls_pump(r);
}

static void try_connect(gh_http_req_t *r)
{
    /* Called with one extra hold on r (the resolver's or a retry's). */
    struct addrinfo *ai = r->next_addr;
    r->next_addr = ai->ai_next;
    int rc = uv_tcp_init(r->loop, &r->tcp);
    if (rc == 0) {
        r->tcp.data = r;
        r->tcp_open = true;
        r->handles++;
        r->connect.data = r;
        rc = uv_tcp_connect(&r->connect, &r->tcp, ai->ai_addr, on_connected);
        if (rc == 0) return; /* the hold passes to the connect request */
        if (r->next_addr) {  /* e.g. an IPv6 address on a host without IPv6 */
            r->tcp_open = false;
            uv_close((uv_handle_t *)&r->tcp, on_closed_for_retry);
            release(r);
            return;
        }
    }
    release(r);
    fail(r, "cannot connect to %s:%s: %s", r->url.host, r->url.port, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    gh_http_req_t *r = g->data;
    r->resolving = false;
    r->addrs = res;
    if (r->done) return release(r);
    if (status < 0 || !res) {
        release(r);
        return fail(r, "cannot resolve %s: %s", r->url.host, uv_strerror(status));
    }
    r->next_addr = res;
    try_connect(r);
}

static void on_timeout(uv_timer_t *t)
{
    gh_http_req_t *r = t->data;
    if (r->res.error[0]) return finish(r, true); /* an early failure, answered from the loop */
    fail(r, "no complete answer within %gs", r->opts.timeout);
}

gh_http_req_t *gh_http_get(uv_loop_t *loop, const char *url, const gh_http_opts_t *opts,
                           gh_http_cb cb, void *arg, char *err, size_t errlen)
{
    gh_http_req_t *r = calloc(1, sizeof(*r));
    if (!r) return snprintf(err, errlen, "out of memory"), NULL;
    if (gh_url_parse(url, &r->url, err, errlen)) return free(r), NULL;
    r->loop = loop;
    r->opts = *opts;
    r->ca_file = opts->ca_file ? strdup(opts->ca_file) : NULL;
    r->opts.ca_file = r->ca_file;
    r->cb = cb;
    r->arg = arg;
    r->res.max_age = -1;
    bool v6 = strchr(r->url.host, ':') != NULL;
    bool default_port = strcmp(r->url.port, r->url.tls ? "443" : "80") == 0;
    int n = snprintf(r->request, sizeof(r->request),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: gatehouse/" GH_VERSION
                     "\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
                     r->url.target, v6 ? "[" : "", r->url.host, v6 ? "]" : "",
                     default_port ? "" : ":", default_port ? "" : r->url.port);
    r->request_len = (size_t)n;
    llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
    r->parser.data = r;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->handles = 1;
    uv_timer_start(&r->timer, on_timeout, (uint64_t)(opts->timeout * 1000), 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->gai.data = r;
    r->handles++;
    r->resolving = true;
    int rc = uv_getaddrinfo(loop, &r->gai, on_resolved, r->url.host, r->url.port, &hints);
    if (rc) {
        r->resolving = false;
        r->handles--;
        snprintf(r->res.error, sizeof(r->res.error), "cannot resolve %.200s: %s", r->url.host,
                 uv_strerror(rc));
        uv_timer_start(&r->timer, on_timeout, 0, 0); /* answers from the loop, not from here */
    }
    return r;
}
