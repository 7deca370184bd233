/* Immutable route table built at load time; match(host, method, path). */
#ifndef GH_ROUTER_H
#define GH_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A route's declarative rate limit (rate_limit = { by = ..., ... }). */
typedef enum {
    GH_LIMIT_BY_IP,
    GH_LIMIT_BY_SUB,
    GH_LIMIT_BY_HEADER,
    GH_LIMIT_BY_CLAIM
} gh_limit_by_t;

typedef struct {
    gh_limit_by_t by;
    char *by_name;           /* the header or claim (BY_HEADER, BY_CLAIM) */
    double rate, per, burst; /* rate requests per `per` seconds, burst at once */
    bool global;             /* scope: shared through Redis (when configured) */
    bool deny_on_error;      /* Redis failed: 503 instead of letting it through */
    bool headers;            /* RateLimit headers on allowed responses too */
    char *name;              /* the policy name in RateLimit-Policy */
} gh_route_limit_t;

/* One route as the config loader hands it over. Strings are owned by the
 * route (malloc'd) and freed by gh_router_free. */
typedef struct gh_route_s {
    char *name;            /* route name, for logs and metrics */
    char *host;            /* NULL: any host; "api.example.com" exact; "*.example.com" one label */
    char *path;            /* pattern: "/a/b" exact, "*" one segment, "**" (last) zero or more */
    uint64_t methods;      /* bit (1 << llhttp_method_t); 0 = any method */
    char *strip;           /* prefix removed before proxying, or NULL */
    int upstream;          /* index into the config's upstream array */
    bool preserve_host;    /* forward the client's Host (default) or the target's */
    int issuer;            /* index into the config's issuers, or -1: no auth */
    bool relay_token;      /* forward the client's credentials (default) */
    char **claim_headers;  /* pairs: header name, claim name; forwarded from the */
    size_t nclaim_headers; /* verified claims, incoming headers of those names dropped */
    bool policy;           /* it has a policy function (kept by each worker's VM) */
    bool on_response;      /* and an on_response function */
    gh_route_limit_t *rate_limit; /* NULL: none */
    char *file;                   /* where it was defined, for errors */
    int line;
    /* filled by gh_router_new */
    int order; /* position in the routes array given, a tie-breaker */
} gh_route_t;

typedef struct gh_router_s gh_router_t;

/* Builds a table from n routes, taking ownership of the array (malloc'd, or
 * NULL when n is 0) and its strings, also on failure. Returns NULL with a
 * message in err (prefixed "file:line: ") for a malformed pattern, a strip
 * prefix the pattern does not start with, or two routes with the same host,
 * path and methods.
 *
 * Path patterns are matched segment by segment against normalised paths:
 * - a pattern must itself be a normalised path ("/a/%7e", "/a//b", "/a/./b"
 *   are refused, since no request could match them as written);
 * - a literal pattern matches exactly, and a trailing slash is significant:
 *   "/a" matches "/a" only, "/a/" matches "/a/" only, "/" matches "/" only;
 * - "*", a whole segment, matches exactly one non-empty segment: /a/<*>
 *   matches "/a/x", not "/a/", "/a/x/" nor "/a/x/y" (<*> is the glob, bracketed
 *   here only to keep this comment open);
 * - "**", a whole and last segment, matches zero or more segments: /api/<**>
 *   matches "/api", "/api/" and "/api/x/y", not "/apix".
 * Host patterns: "api.example.com", "[::1]" (or "::1"), or "*.example.com"
 * (exactly one extra, non-empty label); no port, no trailing dot.
 * strip: a literal prefix of the pattern ending at a segment boundary, with no
 * glob and no trailing slash ("/api" for /api/orders/<**>; not "/ap"). */
gh_router_t *gh_router_new(gh_route_t *routes, size_t n, char *err, size_t errlen);

void gh_router_free(gh_router_t *r);

/* Frees the strings a route owns (for routes never handed to a router). */
void gh_route_clear(gh_route_t *r);

/* The most specific route for a normalised path, or NULL. host (NULL or the
 * Host header value) may carry a ":port", which is ignored, as are IPv6
 * brackets ("[::1]:8080" is "::1") and one trailing dot; host comparison is
 * case-insensitive. method is an llhttp_method_t; a value outside 0..63 only
 * matches routes without a method list. Does not allocate.
 * Specificity: exact host > wildcard host > any host; then more literal
 * segments; then '*' over '**'; then a method list over any method; then
 * config order. */
const gh_route_t *gh_router_match(const gh_router_t *r, const char *host, size_t host_len,
                                  int method, const char *path, size_t path_len);

/* True when name is a header the route sets from claims (forward_claims):
 * a client's own copy is dropped so it cannot forge identity. */
bool gh_route_sets_claim_header(const gh_route_t *rt, const char *name, size_t len);

/* Routes in match order (most specific first); gh_router_at returns NULL
 * past the end. */
size_t gh_router_count(const gh_router_t *r);
const gh_route_t *gh_router_at(const gh_router_t *r, size_t i);

#endif
