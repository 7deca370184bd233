/* One request: its arena, its parsed head, its phase cursor, and how it
 * ends (a response relayed from upstream or one the gateway makes). */
#ifndef GH_REQ_H
#define GH_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "claims.h"
#include "headers.h"
#include "hedit.h"
#include "limit_state.h"
#include "list.h"
#include "trace.h"

#include <jansson.h>

typedef struct gh_conn_s gh_conn_t;
typedef struct gh_worker_s gh_worker_t;
typedef struct gh_proxy_s gh_proxy_t;

/* Phases run in this order. */
typedef enum {
    GH_PHASE_ROUTE,
    GH_PHASE_AUTH,
    GH_PHASE_LIMIT,
    GH_PHASE_POLICY,
    GH_PHASE_PROXY,
    GH_PHASE_END
} gh_phase_t;

/* What a phase returns: go on to the next phase, wait for an async event
 * (which re-enters gh_req_run at the same phase), or stop (the phase has
 * answered the request itself). */
typedef enum { GH_PHASE_NEXT, GH_PHASE_WAIT, GH_PHASE_STOP } gh_phase_rc;

/* A header as offsets into a head buffer, stable while the buffer grows. */
typedef struct {
    uint32_t name, name_len, value, value_len;
} gh_hdr_t;

/* A growable, bounded buffer holding a message head's bytes. */
typedef struct gh_head_s {
    char *data;
    uint32_t len, cap;
    gh_hdr_t *hdrs;
    uint32_t n, hcap;
} gh_head_t;

typedef struct gh_lua_wait_s gh_lua_wait_t;

/* What the route's Lua code did to a request (lua_policy.c, lua_ffi.c). */
typedef struct {
    int state;           /* registry refs: the request's Lua state table, */
    int co;              /* its policy coroutine (LUA_NOREF: none) */
    uint64_t used_ns;    /* Lua run time so far, against lua.budget */
    gh_lua_wait_t *wait; /* the pending wait (gh.sleep), or NULL */
    gh_redis_op_t *op;   /* gh.revoke's Redis call under way, or NULL */
    bool op_pending;
    const char *op_err;     /* how it failed */
    gh_hedit_t *req_edits;  /* header edits to the upstream request */
    gh_hedit_t *resp_edits; /* and to the response (on_response) */
    const char *path;       /* set_path: the path sent upstream, or NULL */
    size_t path_len;
    const char *query; /* set_query: the query sent upstream, */
    size_t query_len;  /* when query_set ("" drops it) */
    bool query_set;
    const char *upstream;  /* gh.upstream's name (test requests have no config) */
    const gh_head_t *resp; /* the response head on_response sees */
    int resp_status;
} gh_req_lua_t;

typedef struct gh_req_s {
    gh_arena_t *arena;
    gh_conn_t *conn;
    gh_worker_t *w;
    struct gh_gen_s *gen;   /* the worker's config generation it started in (NULL: */
    const gh_config_t *cfg; /* a test request); cfg is the generation's */
    gh_phase_t phase;
    uint64_t start_ns;

    gh_head_t head; /* url at data[0..url_len), then header names and values */
    uint32_t url_len;
    uint32_t hdr_bytes;      /* counted against limits.max_header_bytes */
    bool in_field, in_value; /* a header name / value is still arriving */
    int method;
    int http_major, http_minor;

    const char *path; /* normalised */
    size_t path_len;
    const char *query; /* raw, without '?', or NULL */
    size_t query_len;
    const char *host; /* Host header value */
    size_t host_len;
    const gh_route_t *route;
    gh_conn_tokens_t conn_tokens;
    char id[129];
    gh_trace_t trace; /* W3C trace context: the client's, or a new trace */

    int64_t content_length; /* -1: none */
    bool chunked, has_body, expect_continue, keep_alive, trusted_peer;
    bool body_done;   /* the whole request body has been read */
    bool resp_head;   /* a response head went to the client */
    bool resp_done;   /* the whole response was queued */
    bool close_after; /* close the connection after this response */
    bool finished;

    uint64_t bytes_in, body_in, bytes_out;
    int status;
    json_t *claims;               /* verified token claims (auth phase), or NULL */
    const gh_role_paths_t *roles; /* where the issuer keeps roles */
    const char *realm;            /* the issuer's, for a policy's 401 */
    const char *client_ip;
    int upstream; /* index into cfg->upstreams: the route's, or a policy's */
    gh_req_lua_t lua;
    gh_req_limit_t limit; /* the last rate-limit decision */
    gh_link_t parked;     /* on the worker's list while waiting for a key fetch */
    uint64_t park_seq;    /* the key source's fetch count when it parked */
    uint64_t park_until;  /* loop time (ms) when it stops waiting */
    bool auth_waited;     /* it waited once: the next unknown kid is final */
    gh_proxy_t *proxy;
    const char *upstream_addr;
    uint64_t upstream_start_ns, upstream_end_ns;
} gh_req_t;

/* A new request on conn, or NULL on OOM. */
gh_req_t *gh_req_new(gh_conn_t *conn);

/* Appends bytes to a head buffer, growing it in the arena up to limit.
 * Returns 0, or -1 when the limit (or memory) would be exceeded. */
int gh_head_append(gh_arena_t *a, gh_head_t *h, const char *p, size_t n, size_t limit);

/* Starts a new (empty) field at the end of the head. Returns 0, 1 when
 * max fields are there already, or -1 when out of memory. */
int gh_head_new_field(gh_arena_t *a, gh_head_t *h, size_t max);

/* Validates the parsed head (Host, framing, header bytes) and normalises
 * the path. Returns 0, or an HTTP status with *detail set. */
int gh_req_head_complete(gh_req_t *r, const char **detail);

/* Runs phases from the current one until one waits or the request ends. */
void gh_req_run(gh_req_t *r);

/* Answers with a gateway-made problem+json response and ends the request's
 * response; when the response head has already gone out, closes the
 * connection instead (the only honest way to report a failure then). */
void gh_req_error(gh_req_t *r, int status, const char *detail);

/* The same, with extra header lines ("Name: value\r\n"...) such as a
 * WWW-Authenticate challenge. */
void gh_req_error_with(gh_req_t *r, int status, const char *detail, const char *headers);

/* Answers with a response a policy made: status, extra header lines
 * ("Name: value\r\n"...) and a body (NULL: none). */
void gh_req_respond(gh_req_t *r, int status, const char *headers, const char *body, size_t blen);

/* The path the upstream is sent: a policy's set_path, else the normalised
 * path minus the route's strip prefix. NULL only on OOM. */
const char *gh_req_upstream_path(gh_req_t *r, size_t *len);

/* The response is fully queued: finish when the request body is too. */
void gh_req_response_done(gh_req_t *r);

/* Called by conn.c when the request body has been fully read. */
void gh_req_body_done(gh_req_t *r);

/* Finishes if both sides are done: logs, releases, hands the connection
 * back to conn.c. */
void gh_req_maybe_finish(gh_req_t *r);

/* Tears the request down without a response (the client went away). */
void gh_req_abort(gh_req_t *r);

/* Frees the request's memory; the request must be finished or aborted. */
void gh_req_free(gh_req_t *r);

/* Header lookup by name (case-insensitive); NULL when absent. */
const gh_hdr_t *gh_head_find(const gh_head_t *h, const char *name);

static inline const char *gh_hdr_name(const gh_head_t *h, const gh_hdr_t *x)
{
    return h->data + x->name;
}

static inline const char *gh_hdr_value(const gh_head_t *h, const gh_hdr_t *x)
{
    return h->data + x->value;
}

/* The reason phrase for a status code ("Not Found"), "Unknown" otherwise. */
const char *gh_status_text(int status);

#endif
