/* A one-shot asynchronous HTTP/1.1 GET on a libuv loop, over TCP or TLS
 * (OpenSSL, peer verified against the system store or a CA file). Used to
 * fetch key sets and discovery documents; not on the request path. */
#ifndef GH_HTTP_CLIENT_H
#define GH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* http[s]://host[:port][/path[?query]]; host may be a bracketed IPv6. */
typedef struct {
    bool tls;
    char host[256];
    char port[8];
    char target[2048]; /* path and query, "/" when the URL has none */
} gh_url_t;

/* Returns 0, or -1 with a reason in err. */
int gh_url_parse(const char *url, gh_url_t *u, char *err, size_t errlen);

typedef struct {
    int status; /* the HTTP status, or 0 when the fetch failed (see error) */
    const char *body;
    size_t body_len;
    long max_age; /* Cache-Control max-age in seconds; -1 when absent, 0 for no-store/no-cache */
    char error[256];
} gh_http_result_t;

typedef void (*gh_http_cb)(void *arg, const gh_http_result_t *res);

typedef struct {
    double timeout;      /* the whole fetch, seconds */
    size_t max_body;     /* a longer body fails the fetch */
    const char *ca_file; /* PEM CA bundle for https, or NULL for the system store */
} gh_http_opts_t;

typedef struct gh_http_req_s gh_http_req_t;

/* Starts GET url. cb runs exactly once on loop, never from inside this
 * call, unless gh_http_cancel comes first. The result is valid only during
 * cb. Returns NULL with a reason in err when url is not usable. */
gh_http_req_t *gh_http_get(uv_loop_t *loop, const char *url, const gh_http_opts_t *opts,
                           gh_http_cb cb, void *arg, char *err, size_t errlen);

/* Abandons a fetch: cb will not run; its handles close and it frees itself. */
void gh_http_cancel(gh_http_req_t *r);

#endif
