/* Unit tests for http_client.c: URL parsing, then one-shot GETs against a
 * canned-response server on the same loop (plain HTTP) or a blocking
 * OpenSSL server on its own thread (HTTPS, with a CA and server
 * certificates made at start-up). Every fetch test ends with the loop
 * closing clean, so a handle the client leaves open fails it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "http_client.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("'%s' does not contain '%s'", (const char *)(hay), (needle));                 \
    } while (0)

#define assert_starts_with(s, prefix)                                                              \
    do {                                                                                           \
        if (strncmp((s), (prefix), strlen(prefix)) != 0)                                           \
            fail_msg("'%s' does not start with '%s'", (const char *)(s), (prefix));                \
    } while (0)

/* ---- gh_url_parse ---- */

static void expect_url(const char *url, bool tls, const char *host, const char *port,
                       const char *target)
{
    gh_url_t u;
    char err[256] = "";
    if (gh_url_parse(url, &u, err, sizeof(err)) != 0) fail_msg("'%s' refused: %s", url, err);
    assert_int_equal(u.tls, tls);
    assert_string_equal(u.host, host);
    assert_string_equal(u.port, port);
    assert_string_equal(u.target, target);
}

/* err is roomy because the reason follows the quoted URL: a long URL in a
 * small buffer loses its reason (reported; not what this checks). */
static void expect_refused(const char *url, const char *word)
{
    gh_url_t u;
    char err[4096] = "";
    if (gh_url_parse(url, &u, err, sizeof(err)) != -1) fail_msg("'%s' was accepted", url);
    if (!strstr(err, word)) fail_msg("'%s': error '%s' does not mention '%s'", url, err, word);
}

static void test_url_defaults(void **state)
{
    (void)state;
    expect_url("http://example.com", false, "example.com", "80", "/");
    expect_url("https://example.com", true, "example.com", "443", "/");
    expect_url("https://example.com/", true, "example.com", "443", "/");
    expect_url("http://10.0.0.1/jwks.json", false, "10.0.0.1", "80", "/jwks.json");
    expect_url("https://idp-1.example.org/.well-known/openid-configuration", true,
               "idp-1.example.org", "443", "/.well-known/openid-configuration");
}

static void test_url_explicit_ports(void **state)
{
    (void)state;
    expect_url("http://example.com:8080/a/b", false, "example.com", "8080", "/a/b");
    expect_url("https://example.com:80", true, "example.com", "80", "/");
    expect_url("http://h:1/", false, "h", "1", "/");
    expect_url("http://h:65535/", false, "h", "65535", "/");
    expect_url("http://h:00080/", false, "h", "80", "/");
}

static void test_url_ipv6(void **state)
{
    (void)state;
    expect_url("https://[::1]:8443/jwks", true, "::1", "8443", "/jwks");
    expect_url("http://[::1]", false, "::1", "80", "/");
    expect_url("http://[2001:db8::7]/k?x=1", false, "2001:db8::7", "80", "/k?x=1");
    expect_url("https://[::ffff:192.0.2.1]:9/", true, "::ffff:192.0.2.1", "9", "/");
}

static void test_url_query_kept(void **state)
{
    (void)state;
    expect_url("http://h/p?x=1&y=%20", false, "h", "80", "/p?x=1&y=%20");
    expect_url("http://h?x=1", false, "h", "80", "/?x=1");
    expect_url("http://h:81?x", false, "h", "81", "/?x");
    expect_url("http://h/a:b@c", false, "h", "80", "/a:b@c"); /* '@' in the path is not userinfo */
}

static void test_url_refuses_schemes(void **state)
{
    (void)state;
    expect_refused("ftp://example.com/", "http");
    expect_refused("example.com/jwks", "http");
    expect_refused("", "http");
    expect_refused("http:/example.com", "http");
}

static void test_url_refuses_bad_hosts(void **state)
{
    (void)state;
    expect_refused("http://", "host");
    expect_refused("https:///path", "host");
    expect_refused("http://:8080/", "host");
    expect_refused("http://?x", "host");
    expect_refused("http://exa_mple.com/", "host");
    expect_refused("http://exa%41mple.com/", "host");
    char big[300] = "http://";
    memset(big + 7, 'a', 256);
    big[7 + 256] = '\0';
    expect_refused(big, "host"); /* a 256-byte name does not fit */
    big[7 + 255] = '\0';
    gh_url_t u;
    char err[256];
    assert_int_equal(gh_url_parse(big, &u, err, sizeof(err)), 0); /* 255 does */
    assert_int_equal(strlen(u.host), 255);
}

static void test_url_refuses_userinfo(void **state)
{
    (void)state;
    expect_refused("http://u@h/", "credentials");
    expect_refused("https://user:pass@h:8443/x", "credentials");
    expect_refused("http://@h/", "credentials");
}

static void test_url_refuses_bad_ports(void **state)
{
    (void)state;
    expect_refused("http://h:0/", "port");
    expect_refused("http://h:65536/", "port");
    expect_refused("http://h:99999/", "port");
    expect_refused("http://h:8a/", "port");
    expect_refused("http://h:-1/", "port");
    expect_refused("http://h:+80/", "port");
    expect_refused("http://h:/", "port");
    expect_refused("http://h:000080/", "port");
    expect_refused("http://h:80:81/", "port");
    expect_refused("http://[::1]:/", "port");
    expect_refused("http://[::1]:0/", "port");
}

static void test_url_refuses_spaces_controls_fragments(void **state)
{
    (void)state;
    expect_refused("http://h /x", "spaces");
    expect_refused("http://h/a b", "spaces");
    expect_refused("http://h/a\tb", "control");
    expect_refused("http://h/a\r\nHost: evil", "control");
    expect_refused("http://h/\x01", "control");
    expect_refused("http://h/\x7f", "control");
    expect_refused("http://h/jwks#frag", "fragment");
    expect_refused("http://h#", "fragment");
}

static void test_url_refuses_bad_ipv6(void **state)
{
    (void)state;
    expect_refused("http://[::1/", "host");
    expect_refused("http://[]/", "host");
    expect_refused("http://[zz::1]/", "host");
    expect_refused("http://[1.2.3.4]/", "host");
    expect_refused("http://[::1]x/", "host");
    expect_refused("http://[::1]8080/", "host");
    expect_refused("http://[fe80::1%25eth0]/", "host");
    expect_refused("http://[::1::2]/", "host");
    expect_refused("http://::1/", "host");
}

static void test_url_length_limit(void **state)
{
    (void)state;
    size_t n = 3000;
    char *url = malloc(n + 1);
    assert_non_null(url);
    memcpy(url, "http://h/", 9);
    memset(url + 9, 'a', n - 9);
    url[n] = '\0';
    expect_refused(url, "longer than");

    /* The longest target that fits: a path of 2,046 bytes, or a bare query
     * given its leading '/'. */
    gh_url_t u;
    char err[256];
    url[8 + 2046] = '\0';
    assert_int_equal(gh_url_parse(url, &u, err, sizeof(err)), 0);
    assert_string_equal(u.target, url + 8);
    url[8] = '?';
    assert_int_equal(gh_url_parse(url, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.target), 2047);
    assert_int_equal(u.target[0], '/');
    assert_memory_equal(u.target + 1, url + 8, 2046);
    free(url);
}

/* The reason is cut to the caller's buffer and always terminated. */
static void test_url_error_fits_buffer(void **state)
{
    (void)state;
    gh_url_t u;
    char err[8];
    memset(err, 'x', sizeof(err));
    assert_int_equal(gh_url_parse("ftp://example.com/", &u, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

/* ---- a fetch fixture: a loop, a guard, and a canned-response server ---- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard; /* fails a test whose loop still runs after 6 s */
    uv_timer_t drip;  /* writes the response a byte at a time */
    uv_tcp_t listener, conn;
    uv_write_t write;
    uv_shutdown_t shutdown;
    int port;
    bool listening, guard_fired;
    /* what the server does once the request's head is in */
    const char *response; /* written, then the write side shut */
    size_t response_len, dripped;
    bool drip_bytes;
    bool silent;            /* never answer */
    bool cancel_on_request; /* cancel the fetch instead of answering */
    char readbuf[4096];
    char request[4096];
    size_t request_len;
    bool answered;
    int accepted, conns_closed;
    /* the fetch and what its callback saw */
    gh_http_req_t *req;
    char url[4096];
    int calls, status;
    long max_age;
    char error[256];
    char *body;
    size_t body_len;
    uint64_t started, answered_at; /* uv_hrtime */
} fx_t;

static void on_guard(uv_timer_t *t)
{
    fx_t *f = t->data;
    f->guard_fired = true;
    uv_stop(&f->loop);
}

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->guard), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->drip), 0);
    f->guard.data = f->drip.data = f;
    f->max_age = -2;
    return f;
}

static void close_listener(fx_t *f)
{
    if (!f->listening) return;
    f->listening = false;
    uv_close((uv_handle_t *)&f->listener, NULL);
}

static void on_conn_closed(uv_handle_t *h)
{
    fx_t *f = h->data;
    f->conns_closed++;
}

static void close_conn(fx_t *f)
{
    if (uv_is_closing((uv_handle_t *)&f->conn)) return;
    uv_timer_stop(&f->drip);
    uv_close((uv_handle_t *)&f->conn, on_conn_closed);
}

static void on_shut(uv_shutdown_t *s, int status)
{
    (void)s, (void)status; /* the conn closes when the client does */
}

static void shut(fx_t *f)
{
    if (uv_is_closing((uv_handle_t *)&f->conn)) return;
    f->shutdown.data = f;
    uv_shutdown(&f->shutdown, (uv_stream_t *)&f->conn, on_shut);
}

static void on_written(uv_write_t *w, int status)
{
    if (status == 0) shut(w->data);
}

static void on_drip(uv_timer_t *t)
{
    fx_t *f = t->data;
    uv_buf_t b = uv_buf_init((char *)f->response + f->dripped, 1);
    if (uv_try_write((uv_stream_t *)&f->conn, &b, 1) == 1) f->dripped++;
    if (f->dripped < f->response_len) return;
    uv_timer_stop(&f->drip);
    shut(f);
}

static void respond(fx_t *f)
{
    if (f->cancel_on_request) {
        gh_http_cancel(f->req);
        close_listener(f);
        return;
    }
    if (f->silent) return;
    if (f->drip_bytes) {
        uv_tcp_nodelay(&f->conn, 1);
        uv_timer_start(&f->drip, on_drip, 1, 1);
        return;
    }
    if (f->response_len == 0) return shut(f);
    uv_buf_t b = uv_buf_init((char *)f->response, (unsigned)f->response_len);
    f->write.data = f;
    assert_int_equal(uv_write(&f->write, (uv_stream_t *)&f->conn, &b, 1, on_written), 0);
}

static void on_server_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    fx_t *f = h->data;
    (void)hint;
    *b = uv_buf_init(f->readbuf, sizeof(f->readbuf));
}

static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    fx_t *f = s->data;
    if (n < 0) return close_conn(f);
    size_t room = sizeof(f->request) - 1 - f->request_len;
    size_t m = (size_t)n < room ? (size_t)n : room;
    memcpy(f->request + f->request_len, b->base, m);
    f->request_len += m;
    f->request[f->request_len] = '\0';
    if (f->answered || !strstr(f->request, "\r\n\r\n")) return;
    f->answered = true;
    respond(f);
}

static void on_connection(uv_stream_t *server, int status)
{
    fx_t *f = server->data;
    assert_int_equal(status, 0);
    assert_int_equal(f->accepted, 0); /* one fetch, one connection */
    assert_int_equal(uv_tcp_init(&f->loop, &f->conn), 0);
    f->conn.data = f;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&f->conn), 0);
    f->accepted++;
    assert_int_equal(uv_read_start((uv_stream_t *)&f->conn, on_server_alloc, on_server_read), 0);
}

/* Listens on ip (v4 or v6) at a port of the kernel's choosing; returns
 * the bind's result so a test can skip where ip is not configured. */
static int fx_listen_on(fx_t *f, const char *ip)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&addr), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, 0, (struct sockaddr_in *)&addr), 0);
    assert_int_equal(uv_tcp_init(&f->loop, &f->listener), 0);
    f->listener.data = f;
    f->listening = true;
    int rc = uv_tcp_bind(&f->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&f->listener, 4, on_connection);
    if (rc) return rc;
    assert_int_equal(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&addr, &len), 0);
    f->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                               : ((struct sockaddr_in *)&addr)->sin_port);
    return 0;
}

static void fx_listen(fx_t *f)
{
    assert_int_equal(fx_listen_on(f, "127.0.0.1"), 0);
}

static void on_result(void *arg, const gh_http_result_t *res)
{
    fx_t *f = arg;
    f->calls++;
    f->answered_at = uv_hrtime();
    f->status = res->status;
    f->max_age = res->max_age;
    snprintf(f->error, sizeof(f->error), "%s", res->error);
    assert_non_null(res->body);
    free(f->body);
    f->body = malloc(res->body_len + 1);
    assert_non_null(f->body);
    memcpy(f->body, res->body, res->body_len);
    f->body[res->body_len] = '\0';
    f->body_len = res->body_len;
    close_listener(f);
}

/* Starts the fetch; the callback must not have run yet. */
static void fx_get(fx_t *f, const char *url, double timeout, size_t max_body, const char *ca_file)
{
    gh_http_opts_t o = {.timeout = timeout, .max_body = max_body, .ca_file = ca_file};
    char err[256] = "";
    snprintf(f->url, sizeof(f->url), "%s", url);
    uv_update_time(&f->loop); /* the timeout counts from now, not from uv_loop_init */
    f->started = uv_hrtime();
    f->req = gh_http_get(&f->loop, url, &o, on_result, f, err, sizeof(err));
    if (!f->req) fail_msg("gh_http_get(%s): %s", url, err);
    assert_int_equal(f->calls, 0);
}

/* Runs the loop until nothing is left on it, then closes it: a handle
 * left open fails the test, by the guard or by uv_loop_close. */
static void fx_run(fx_t *f)
{
    uv_timer_start(&f->guard, on_guard, 6000, 0);
    uv_unref((uv_handle_t *)&f->guard);
    int rc = uv_run(&f->loop, UV_RUN_DEFAULT);
    if (f->guard_fired) fail_msg("%s: the loop still had work after 6 s", f->url);
    assert_int_equal(rc, 0);
    assert_int_equal(f->conns_closed, f->accepted);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->drip, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void fx_free(fx_t *f)
{
    free(f->body);
    free(f);
}

static double elapsed(const fx_t *f)
{
    return (double)(f->answered_at - f->started) / 1e9;
}

/* GETs /path?q from a server answering with response (whose length is
 * len), and checks the request it saw. */
static fx_t *fetch_len(const char *response, size_t len, size_t max_body)
{
    fx_t *f = fx_new();
    fx_listen(f);
    f->response = response;
    f->response_len = len;
    char url[64], host[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/path?q", f->port);
    fx_get(f, url, 2.5, max_body, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->accepted, 1);
    assert_starts_with(f->request, "GET /path?q HTTP/1.1\r\n");
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", f->port);
    assert_contains(f->request, host);
    return f;
}

static fx_t *fetch(const char *response)
{
    return fetch_len(response, strlen(response), 1 << 20);
}

static void expect_ok(fx_t *f, int status, const char *body)
{
    if (f->status != status) fail_msg("%s: status %d, error '%s'", f->url, f->status, f->error);
    assert_string_equal(f->error, "");
    assert_int_equal(f->body_len, strlen(body));
    assert_string_equal(f->body, body);
}

static void expect_failed(fx_t *f, const char *word)
{
    assert_int_equal(f->status, 0);
    assert_contains(f->error, word);
}

/* ---- plain HTTP ---- */

static void test_get_content_length(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 11\r\n\r\n{\"keys\":[]}");
    expect_ok(f, 200, "{\"keys\":[]}");
    assert_int_equal(f->max_age, -1);
    assert_contains(f->request, "\r\nConnection: close\r\n");
    fx_free(f);
}

static void test_get_chunked(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
    expect_ok(f, 200, "hello world");
    fx_free(f);
}

static void test_get_body_until_close(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}");
    expect_ok(f, 200, "{\"a\":1}");
    fx_free(f);
    f = fetch("HTTP/1.0 200 OK\r\n\r\n");
    expect_ok(f, 200, "");
    fx_free(f);
}

/* A bracketed IPv6 literal: connected to, and named in Host with its
 * brackets and port. */
static void test_get_ipv6_literal(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    if (fx_listen_on(f, "::1")) {
        close_listener(f);
        fx_run(f);
        fx_free(f);
        skip(); /* no IPv6 loopback here */
    }
    f->response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6";
    f->response_len = strlen(f->response);
    char url[64], host[64];
    snprintf(url, sizeof(url), "http://[::1]:%d/k", f->port);
    fx_get(f, url, 2.5, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    expect_ok(f, 200, "v6");
    assert_starts_with(f->request, "GET /k HTTP/1.1\r\n");
    snprintf(host, sizeof(host), "\r\nHost: [::1]:%d\r\n", f->port);
    assert_contains(f->request, host);
    fx_free(f);
}

/* The response a byte per write: names, values and the body arrive split. */
static void test_get_dripped_response(void **state)
{
    (void)state;
    static const char response[] = "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=77\r\n"
                                   "Content-Length: 4\r\n\r\nabcd";
    fx_t *f = fx_new();
    fx_listen(f);
    f->response = response;
    f->response_len = strlen(response);
    f->drip_bytes = true;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->port);
    fx_get(f, url, 2.5, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    expect_ok(f, 200, "abcd");
    assert_int_equal(f->max_age, 77);
    fx_free(f);
}

static long max_age_of(const char *headers)
{
    char response[512];
    snprintf(response, sizeof(response), "HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\n{}",
             headers);
    fx_t *f = fetch(response);
    expect_ok(f, 200, "{}");
    long age = f->max_age;
    fx_free(f);
    return age;
}

static void test_cache_control_max_age(void **state)
{
    (void)state;
    assert_int_equal(max_age_of("Cache-Control: public, max-age=120\r\n"), 120);
    assert_int_equal(max_age_of("cache-control: max-age=0\r\n"), 0);
    assert_int_equal(max_age_of("Cache-Control: private,max-age=5,must-revalidate\r\n"), 5);
    assert_int_equal(max_age_of("Cache-Control: s-maxage=30, max-age=60\r\n"), 60);
    assert_int_equal(max_age_of("Cache-Control: MAX-AGE=9\r\n"), 9);
}

static void test_cache_control_no_store(void **state)
{
    (void)state;
    assert_int_equal(max_age_of("Cache-Control: no-store\r\n"), 0);
    assert_int_equal(max_age_of("Cache-Control: no-cache\r\n"), 0);
    assert_int_equal(max_age_of("Cache-Control: max-age=600, no-store\r\n"), 0);
    assert_int_equal(max_age_of("Cache-Control: public, No-Cache, max-age=600\r\n"), 0);
}

static void test_cache_control_absent(void **state)
{
    (void)state;
    assert_int_equal(max_age_of(""), -1);
    assert_int_equal(max_age_of("Cache-Control: public\r\n"), -1);
    assert_int_equal(max_age_of("Cache-Control: max-age=soon\r\n"), -1);
    assert_int_equal(max_age_of("X-Cache-Control: max-age=60\r\n"), -1);
    assert_int_equal(max_age_of("Expires: Thu, 01 Jan 2037 00:00:00 GMT\r\n"), -1);
}

static void test_cache_control_two_fields(void **state)
{
    (void)state;
    assert_int_equal(max_age_of("Cache-Control: public\r\nX-Other: 1\r\n"
                                "Cache-Control: max-age=300\r\n"),
                     300);
    assert_int_equal(max_age_of("Cache-Control: max-age=300\r\nCache-Control: no-store\r\n"), 0);
}

static void test_status_passed_through(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 404 Not Found\r\nCache-Control: max-age=10\r\n"
                    "Content-Length: 9\r\n\r\nnot found");
    expect_ok(f, 404, "not found");
    assert_int_equal(f->max_age, 10);
    fx_free(f);
    f = fetch("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    expect_ok(f, 503, "");
    fx_free(f);
}

/* Interim 1xx responses are read past: the final one is the answer, and
 * an interim response's fields do not leak into it. */
static void test_interim_responses_skipped(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 103 Early Hints\r\nLink: </k>; rel=preload\r\n"
                    "Cache-Control: no-store\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    expect_ok(f, 200, "{}");
    assert_int_equal(f->max_age, -1);
    fx_free(f);
    f = fetch("HTTP/1.1 100 Continue\r\n\r\n"
              "HTTP/1.1 200 OK\r\nCache-Control: max-age=7\r\nContent-Length: 2\r\n\r\nok");
    expect_ok(f, 200, "ok");
    assert_int_equal(f->max_age, 7);
    fx_free(f);
}

/* Cache-Control in a chunked body's trailers is not the response's. */
static void test_trailers_ignored(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
                    "Cache-Control: no-store\r\n\r\n");
    expect_ok(f, 200, "{}");
    assert_int_equal(f->max_age, 60);
    fx_free(f);
}

/* Builds a response with a body of n bytes of 'x'. */
static char *big_response(size_t n, size_t *len)
{
    char *r = malloc(n + 128);
    assert_non_null(r);
    int h = snprintf(r, 128, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    memset(r + h, 'x', n);
    *len = (size_t)h + n;
    return r;
}

static void test_body_over_limit(void **state)
{
    (void)state;
    size_t len;
    char *r = big_response(64 * 1024, &len);
    fx_t *f = fetch_len(r, len, 1024);
    expect_failed(f, "larger than");
    assert_int_equal(f->body_len, 0);
    fx_free(f);
    free(r);

    static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n";
    f = fetch_len(chunked, strlen(chunked), 11);
    expect_failed(f, "larger than");
    fx_free(f);
}

static void test_body_at_limit(void **state)
{
    (void)state;
    size_t len;
    char *r = big_response(40000, &len);
    fx_t *f = fetch_len(r, len, 40000);
    assert_int_equal(f->status, 200);
    assert_int_equal(f->body_len, 40000);
    assert_memory_equal(f->body, r + len - 40000, 40000);
    fx_free(f);
    free(r);
}

static void test_not_http(void **state)
{
    (void)state;
    fx_t *f = fetch("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    expect_failed(f, "bad HTTP response");
    fx_free(f);
    f = fetch("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc");
    expect_failed(f, "bad HTTP response");
    fx_free(f);
}

static void test_response_cut_short(void **state)
{
    (void)state;
    fx_t *f = fetch("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    expect_failed(f, "closed before the response ended");
    fx_free(f);
    f = fetch("HTTP/1.1 200 OK\r\nContent-Le");
    expect_failed(f, "closed before the response ended");
    fx_free(f);
    f = fetch("");
    expect_failed(f, "closed before the response ended");
    fx_free(f);
}

static void test_timeout(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_listen(f);
    f->silent = true;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/path?q", f->port);
    fx_get(f, url, 0.2, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->accepted, 1);
    expect_failed(f, "within 0.2s");
    assert_true(elapsed(f) >= 0.19);
    assert_true(elapsed(f) < 1.0);
    fx_free(f);
}

static void test_connection_refused(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_listen(f);
    close_listener(f); /* the socket closes now; the port is left unserved */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->port);
    fx_get(f, url, 2.5, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    expect_failed(f, "connect");
    assert_contains(f->error, "127.0.0.1");
    fx_free(f);
}

static void test_cancel_at_once(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_listen(f);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->port);
    fx_get(f, url, 2.5, 1024, NULL);
    gh_http_cancel(f->req);
    close_listener(f);
    fx_run(f);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->accepted, 0);
    fx_free(f);
}

/* Cancelled once the request is on the wire: the client's socket closes
 * and the callback never runs, though the timeout would have passed. */
static void test_cancel_in_flight(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_listen(f);
    f->cancel_on_request = true;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/path?q", f->port);
    fx_get(f, url, 0.3, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->accepted, 1);
    assert_true(f->answered);
    fx_free(f);
}

static void test_unresolvable_host(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_get(f, "http://no-such-host.invalid/x", 1.0, 1024, NULL);
    fx_run(f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->status, 0);
    if (!strstr(f->error, "cannot resolve no-such-host.invalid") && !strstr(f->error, "within"))
        fail_msg("unexpected error '%s'", f->error);
    fx_free(f);
}

static void test_cancel_while_resolving(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_get(f, "http://no-such-host.invalid/x", 1.0, 1024, NULL);
    gh_http_cancel(f->req);
    fx_run(f);
    assert_int_equal(f->calls, 0);
    fx_free(f);
}

static void test_bad_url_refused_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_http_opts_t o = {.timeout = 1, .max_body = 1024};
    char err[256] = "";
    int calls = 0;
    assert_null(gh_http_get(&loop, "http://u@h/", &o, NULL, &calls, err, sizeof(err)));
    assert_contains(err, "credentials");
    assert_null(gh_http_get(&loop, "gopher://h/", &o, NULL, &calls, err, sizeof(err)));
    assert_contains(err, "http");
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- HTTPS against a blocking OpenSSL server on a thread ---- */

static struct {
    EVP_PKEY *ca_key, *key;
    X509 *ca;
    X509 *ip_cert;    /* SAN IP:127.0.0.1 */
    X509 *other_cert; /* SAN IP:127.0.0.2 */
    X509 *name_cert;  /* SAN DNS:localhost */
    X509 *self_cert;  /* self-signed, SAN IP:127.0.0.1 */
    char ca_file[64];
} pki;

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (!e) return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

/* A CA certificate when issuer is NULL (signed by key), else a server
 * certificate for san signed by the issuer. NULL on failure. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *san)
{
    static long serial = 1;
    X509 *x = X509_new();
    if (!x) return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    bool ok = X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
              X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, key) &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                         -1, 0) &&
              X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
              add_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0;
    if (ok && !san) {
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") == 0;
    } else if (ok) {
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") == 0 &&
             add_ext(x, &ctx, NID_subject_alt_name, san) == 0 &&
             (!issuer || add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0);
    }
    if (ok && X509_sign(x, issuer_key, EVP_sha256()) > 0) return x;
    X509_free(x);
    return NULL;
}

static int make_pki(void **state)
{
    (void)state;
    pki.ca_key = EVP_EC_gen("P-256");
    pki.key = EVP_EC_gen("P-256");
    if (!pki.ca_key || !pki.key) return -1;
    pki.ca = make_cert("Gatehouse Test CA", pki.ca_key, NULL, pki.ca_key, NULL);
    if (!pki.ca) return -1;
    pki.ip_cert = make_cert("127.0.0.1", pki.key, pki.ca, pki.ca_key, "IP:127.0.0.1");
    pki.other_cert = make_cert("127.0.0.2", pki.key, pki.ca, pki.ca_key, "IP:127.0.0.2");
    pki.name_cert = make_cert("localhost", pki.key, pki.ca, pki.ca_key, "DNS:localhost");
    pki.self_cert = make_cert("127.0.0.1", pki.key, NULL, pki.key, "IP:127.0.0.1");
    if (!pki.ip_cert || !pki.other_cert || !pki.name_cert || !pki.self_cert) return -1;
    snprintf(pki.ca_file, sizeof(pki.ca_file), "/tmp/gh-test-ca-XXXXXX");
    int fd = mkstemp(pki.ca_file);
    if (fd < 0) return -1;
    FILE *fp = fdopen(fd, "w");
    if (!fp) return close(fd), -1;
    int ok = PEM_write_X509(fp, pki.ca);
    return fclose(fp) == 0 && ok == 1 ? 0 : -1;
}

static int free_pki(void **state)
{
    (void)state;
    if (pki.ca_file[0]) unlink(pki.ca_file);
    X509_free(pki.ca);
    X509_free(pki.ip_cert);
    X509_free(pki.other_cert);
    X509_free(pki.name_cert);
    X509_free(pki.self_cert);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.key);
    return 0;
}

typedef struct {
    int lfd, port;
    SSL_CTX *ctx;
    const char *response;
    size_t response_len;
    uv_thread_t thread;
    /* written by the thread, read after the join */
    bool handshaken;
    char request[4096];
    size_t request_len;
    char sni[256];
} tls_server_t;

/* Serves one connection: handshake, read the request's head, answer,
 * close. Bounded by 3 s waits; no cmocka calls off the main thread. */
static void tls_serve(void *arg)
{
    tls_server_t *s = arg;
    struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
    if (poll(&pfd, 1, 3000) != 1) return;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) return;
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(s->ctx);
    if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
        s->handshaken = true;
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (sni) snprintf(s->sni, sizeof(s->sni), "%s", sni);
        while (!strstr(s->request, "\r\n\r\n") && s->request_len < sizeof(s->request) - 1) {
            int n = SSL_read(ssl, s->request + s->request_len,
                             (int)(sizeof(s->request) - 1 - s->request_len));
            if (n <= 0) break;
            s->request_len += (size_t)n;
            s->request[s->request_len] = '\0';
        }
        if (strstr(s->request, "\r\n\r\n") &&
            SSL_write(ssl, s->response, (int)s->response_len) == (int)s->response_len)
            SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
}

static void tls_start(tls_server_t *s, X509 *cert, const char *response, size_t len)
{
    memset(s, 0, sizeof(*s));
    s->response = response;
    s->response_len = len;
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, pki.key), 1);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&addr, &alen), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(uv_thread_create(&s->thread, tls_serve, s), 0);
}

static void tls_stop(tls_server_t *s)
{
    assert_int_equal(uv_thread_join(&s->thread), 0);
    close(s->lfd);
    SSL_CTX_free(s->ctx);
}

/* GETs https://host:port/path?q from a TLS server presenting cert. */
static fx_t *fetch_tls(tls_server_t *s, X509 *cert, const char *host, const char *ca_file,
                       const char *response, size_t len, size_t max_body)
{
    tls_start(s, cert, response, len);
    fx_t *f = fx_new();
    char url[128];
    snprintf(url, sizeof(url), "https://%s:%d/path?q", host, s->port);
    fx_get(f, url, 2.5, max_body, ca_file); /* loading the system store is slow under ASan */
    fx_run(f);
    tls_stop(s);
    assert_int_equal(f->calls, 1);
    return f;
}

static const char tls_response[] = "HTTP/1.1 200 OK\r\nCache-Control: max-age=90\r\n"
                                   "Content-Length: 11\r\n\r\n{\"keys\":[]}";

static void test_tls_trusted_ca(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.ip_cert, "127.0.0.1", pki.ca_file, tls_response,
                        strlen(tls_response), 1024);
    expect_ok(f, 200, "{\"keys\":[]}");
    assert_int_equal(f->max_age, 90);
    assert_true(s.handshaken);
    assert_starts_with(s.request, "GET /path?q HTTP/1.1\r\n");
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_contains(s.request, host);
    assert_string_equal(s.sni, ""); /* no SNI for an IP address */
    fx_free(f);
}

/* A body spread over many TLS records. */
static void test_tls_large_body(void **state)
{
    (void)state;
    size_t len, n = 200 * 1024;
    char *r = big_response(n, &len);
    for (size_t i = 0; i < n; i++) r[len - n + i] = (char)('a' + i % 26);
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.ip_cert, "127.0.0.1", pki.ca_file, r, len, n);
    assert_int_equal(f->status, 200);
    assert_int_equal(f->body_len, n);
    assert_memory_equal(f->body, r + len - n, n);
    fx_free(f);
    free(r);
}

static void test_tls_host_name(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.name_cert, "localhost", pki.ca_file, tls_response,
                        strlen(tls_response), 1024);
    expect_ok(f, 200, "{\"keys\":[]}");
    assert_string_equal(s.sni, "localhost");
    fx_free(f);
}

static void test_tls_system_store_refuses_test_ca(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f =
        fetch_tls(&s, pki.ip_cert, "127.0.0.1", NULL, tls_response, strlen(tls_response), 1024);
    expect_failed(f, "certificate verification failed");
    assert_false(s.handshaken);
    assert_string_equal(s.request, "");
    fx_free(f);
}

static void test_tls_self_signed_refused(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.self_cert, "127.0.0.1", pki.ca_file, tls_response,
                        strlen(tls_response), 1024);
    expect_failed(f, "certificate verification failed");
    assert_string_equal(s.request, "");
    fx_free(f);
}

static void test_tls_wrong_ip_refused(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.other_cert, "127.0.0.1", pki.ca_file, tls_response,
                        strlen(tls_response), 1024);
    expect_failed(f, "certificate verification failed");
    assert_contains(f->error, "IP address mismatch");
    assert_string_equal(s.request, "");
    fx_free(f);
}

static void test_tls_wrong_name_refused(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.ip_cert, "localhost", pki.ca_file, tls_response,
                        strlen(tls_response), 1024);
    expect_failed(f, "certificate verification failed");
    assert_contains(f->error, "hostname mismatch");
    assert_string_equal(s.request, "");
    fx_free(f);
}

static void test_tls_missing_ca_file(void **state)
{
    (void)state;
    tls_server_t s;
    fx_t *f = fetch_tls(&s, pki.ip_cert, "127.0.0.1", "/nonexistent/ca.pem", tls_response,
                        strlen(tls_response), 1024);
    expect_failed(f, "cannot set up TLS");
    assert_string_equal(s.request, "");
    fx_free(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the servers write to clients that have gone */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_defaults),
        cmocka_unit_test(test_url_explicit_ports),
        cmocka_unit_test(test_url_ipv6),
        cmocka_unit_test(test_url_query_kept),
        cmocka_unit_test(test_url_refuses_schemes),
        cmocka_unit_test(test_url_refuses_bad_hosts),
        cmocka_unit_test(test_url_refuses_userinfo),
        cmocka_unit_test(test_url_refuses_bad_ports),
        cmocka_unit_test(test_url_refuses_spaces_controls_fragments),
        cmocka_unit_test(test_url_refuses_bad_ipv6),
        cmocka_unit_test(test_url_length_limit),
        cmocka_unit_test(test_url_error_fits_buffer),
        cmocka_unit_test(test_get_content_length),
        cmocka_unit_test(test_get_chunked),
        cmocka_unit_test(test_get_body_until_close),
        cmocka_unit_test(test_get_ipv6_literal),
        cmocka_unit_test(test_get_dripped_response),
        cmocka_unit_test(test_cache_control_max_age),
        cmocka_unit_test(test_cache_control_no_store),
        cmocka_unit_test(test_cache_control_absent),
        cmocka_unit_test(test_cache_control_two_fields),
        cmocka_unit_test(test_status_passed_through),
        cmocka_unit_test(test_interim_responses_skipped),
        cmocka_unit_test(test_trailers_ignored),
        cmocka_unit_test(test_body_over_limit),
        cmocka_unit_test(test_body_at_limit),
        cmocka_unit_test(test_not_http),
        cmocka_unit_test(test_response_cut_short),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_cancel_at_once),
        cmocka_unit_test(test_cancel_in_flight),
        cmocka_unit_test(test_unresolvable_host),
        cmocka_unit_test(test_cancel_while_resolving),
        cmocka_unit_test(test_bad_url_refused_at_once),
        cmocka_unit_test(test_tls_trusted_ca),
        cmocka_unit_test(test_tls_large_body),
        cmocka_unit_test(test_tls_host_name),
        cmocka_unit_test(test_tls_system_store_refuses_test_ca),
        cmocka_unit_test(test_tls_self_signed_refused),
        cmocka_unit_test(test_tls_wrong_ip_refused),
        cmocka_unit_test(test_tls_wrong_name_refused),
        cmocka_unit_test(test_tls_missing_ca_file),
    };
    return cmocka_run_group_tests(tests, make_pki, free_pki);
}
