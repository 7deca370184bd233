/* Immutable route table: patterns are checked, compiled and sorted by
 * specificity at load time, so a match is one scan with no allocation. */
#include "router.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "headers.h"
#include "path.h"

enum seg_kind { SEG_LITERAL, SEG_STAR, SEG_GLOBSTAR };

/* One segment of a path pattern, as an (offset, length) into the pattern. */
typedef struct {
    size_t off, len;
    enum seg_kind kind;
} seg_t;

/* Declared most specific first: the value is the rank in match order. */
enum host_kind { HOST_EXACT, HOST_WILDCARD, HOST_ANY };

typedef struct {
    gh_route_t route;
    enum host_kind host_kind;
    const char *host; /* into route.host: exact name without brackets, or ".example.com" */
    size_t host_len;
    seg_t *segs;
    size_t nseg;
    size_t nliteral;
    size_t nstar;
    bool globstar;
} entry_t;

struct gh_router_s {
    entry_t *e; /* in match order */
    size_t n;
};

/* Every method llhttp knows, as a bit mask. */
#define GH_METHOD_BIT(num, name, string) | (UINT64_C(1) << (num))
static const uint64_t KNOWN_METHODS = 0 HTTP_ALL_METHOD_MAP(GH_METHOD_BIT);
#undef GH_METHOD_BIT

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* <0, 0 or >0 comparing n bytes case-insensitively (ASCII only). */
static int ascii_casecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int d = ascii_lower((unsigned char)a[i]) - ascii_lower((unsigned char)b[i]);
        if (d != 0) return d;
    }
    return 0;
}

void gh_route_clear(gh_route_t *rt)
{
    for (size_t i = 0; i < 2 * rt->nclaim_headers; i++) free(rt->claim_headers[i]);
    free(rt->claim_headers);
    free(rt->name);
    free(rt->host);
    free(rt->path);
    free(rt->strip);
    free(rt->file);
    if (rt->rate_limit) {
        free(rt->rate_limit->by_name);
        free(rt->rate_limit->name);
        free(rt->rate_limit);
    }
}

static const char *route_file(const gh_route_t *rt)
{
    return rt->file ? rt->file : "?";
}

static const char *route_name(const gh_route_t *rt)
{
    return rt->name ? rt->name : "(unnamed)";
}

/* Writes "file:line: route 'name': " and the formatted message into err. */
static void route_error(char *err, size_t errlen, const gh_route_t *rt, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    int n = snprintf(err, errlen, "%s:%d: route '%s': ", route_file(rt), rt->line, route_name(rt));
    if (n < 0 || (size_t)n >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* True when the pattern is already a normalised path (a request path can
 * only match it as written); otherwise fills err. */
static bool pattern_normal(const gh_route_t *rt, char *err, size_t errlen)
{
    size_t len = strlen(rt->path);
    char *norm = malloc(len + 1);
    if (!norm) {
        route_error(err, errlen, rt, "out of memory");
        return false;
    }
    size_t nlen;
    gh_path_status st = gh_path_normalize(rt->path, len, norm, &nlen);
    bool same = st == GH_PATH_OK && nlen == len && memcmp(norm, rt->path, len) == 0;
    if (st != GH_PATH_OK)
        route_error(err, errlen, rt, "path pattern '%s': %s", rt->path, gh_path_status_str(st));
    else if (!same)
        route_error(err, errlen, rt,
                    "path pattern '%s' is not normalised (requests are matched as '%s')", rt->path,
                    norm);
    free(norm);
    return same;
}

/* NULL with *kind set, or why the pattern segment is malformed. */
static const char *classify_segment(const char *s, size_t len, bool last, enum seg_kind *kind)
{
    *kind = SEG_LITERAL;
    if (!memchr(s, '*', len)) return NULL;
    if (len == 1) {
        *kind = SEG_STAR;
        return NULL;
    }
    if (len == 2 && s[0] == '*' && s[1] == '*') {
        *kind = SEG_GLOBSTAR;
        return last ? NULL : "'**' must be the last segment";
    }
    return "'*' and '**' must be whole segments";
}

/* Splits the (normalised) pattern into segments and counts their kinds.
 * Returns NULL, or why the pattern is malformed. */
static const char *compile_path(entry_t *e)
{
    const char *p = e->route.path;
    size_t len = strlen(p);
    size_t nseg = 1;
    for (size_t i = 1; i < len; i++) nseg += p[i] == '/';

    e->segs = calloc(nseg, sizeof *e->segs);
    if (!e->segs) return "out of memory";
    e->nseg = nseg;
    size_t start = 1;
    for (size_t k = 0; k < nseg; k++) {
        const char *slash = memchr(p + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - p) : len;
        seg_t *s = &e->segs[k];
        s->off = start;
        s->len = end - start;
        const char *why = classify_segment(p + start, s->len, k + 1 == nseg, &s->kind);
        if (why) return why;
        e->nliteral += s->kind == SEG_LITERAL;
        e->nstar += s->kind == SEG_STAR;
        e->globstar |= s->kind == SEG_GLOBSTAR;
        start = end + 1;
    }
    return NULL;
}

/* True for dot-separated, non-empty labels of [A-Za-z0-9_-]. */
static bool valid_host_name(const char *h, size_t len)
{
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
            label++;
        } else if ((c >= '0' && c <= '9') || c == '-' || c == '_') {
            label++;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* True for an IPv6 literal without brackets. */
static bool valid_ipv6(const char *h, size_t len)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (len >= sizeof buf) return false;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

static const char *const NO_PORT = "must not carry a port (the request's port is ignored)";

/* Fills the host fields of e from "[v6]" (brackets dropped). Returns NULL,
 * or why the host is malformed. */
static const char *compile_bracketed(entry_t *e, const char *h, size_t len)
{
    const char *close = memchr(h, ']', len);
    if (!close) return "unclosed '['";
    if (close != h + len - 1) return close[1] == ':' ? NO_PORT : "not a host name";
    e->host = h + 1;
    e->host_len = len - 2;
    return valid_ipv6(e->host, e->host_len) ? NULL : "not an IPv6 address";
}

/* Fills the host fields of e. Returns NULL, or why the host is malformed. */
static const char *compile_host(entry_t *e)
{
    const char *h = e->route.host;
    e->host_kind = HOST_ANY;
    if (!h) return NULL;
    size_t len = strlen(h);
    e->host_kind = HOST_EXACT;
    e->host = h;
    e->host_len = len;
    if (len > 0 && h[0] == '[') return compile_bracketed(e, h, len);
    if (len >= 2 && h[0] == '*' && h[1] == '.') {
        e->host_kind = HOST_WILDCARD;
        e->host = h + 1;
        e->host_len = len - 1;
        h += 2;
        len -= 2;
    }
    if (memchr(h, '*', len))
        return "'*' is allowed only as the whole first label ('*.example.com')";
    if (e->host_kind == HOST_EXACT && valid_ipv6(h, len)) return NULL;
    if (memchr(h, ':', len)) return NO_PORT;
    return valid_host_name(h, len) ? NULL : "not a host name";
}

/* NULL when strip is a glob-free prefix of the pattern ending at a segment
 * boundary (so every matching path starts with it), else why not. */
static const char *check_strip(const entry_t *e)
{
    const char *strip = e->route.strip;
    if (!strip) return NULL;
    size_t len = strlen(strip);
    if (len == 0 || strip[0] != '/') return "must start with '/'";
    if (len == 1) return "must name at least one segment";
    if (strip[len - 1] == '/') return "must not end with '/'";
    if (strchr(strip, '*')) return "must not contain '*' or '**'";
    const char *p = e->route.path;
    if (strncmp(p, strip, len) != 0 || (p[len] != '\0' && p[len] != '/'))
        return "is not a whole-segment prefix of the path pattern";
    return NULL;
}

/* Checks and compiles one route; returns false with err filled. */
static bool compile_entry(entry_t *e, char *err, size_t errlen)
{
    const gh_route_t *rt = &e->route;
    const char *why;
    if (!rt->path) {
        route_error(err, errlen, rt, "no path pattern");
        return false;
    }
    if (!pattern_normal(rt, err, errlen)) return false;
    if ((why = compile_path(e)) != NULL) {
        route_error(err, errlen, rt, "path pattern '%s': %s", rt->path, why);
        return false;
    }
    if ((why = compile_host(e)) != NULL) {
        route_error(err, errlen, rt, "host pattern '%s': %s", rt->host, why);
        return false;
    }
    if ((why = check_strip(e)) != NULL) {
        route_error(err, errlen, rt, "strip '%s' %s (path pattern '%s')", rt->strip, why, rt->path);
        return false;
    }
    if (rt->methods & ~KNOWN_METHODS) {
        route_error(err, errlen, rt, "method list has a bit that is no llhttp method");
        return false;
    }
    return true;
}

/* Orders routes by what requests they accept (host, path, methods). */
static int cmp_identity(const entry_t *a, const entry_t *b)
{
    if (a->host_kind != b->host_kind) return (int)a->host_kind - (int)b->host_kind;
    if (a->host_len != b->host_len) return a->host_len < b->host_len ? -1 : 1;
    int c = ascii_casecmp(a->host, b->host, a->host_len);
    if (c != 0) return c;
    c = strcmp(a->route.path, b->route.path);
    if (c != 0) return c;
    if (a->route.methods != b->route.methods) return a->route.methods < b->route.methods ? -1 : 1;
    return 0;
}

static int cmp_identity_then_order(const void *pa, const void *pb)
{
    const entry_t *a = *(const entry_t *const *)pa;
    const entry_t *b = *(const entry_t *const *)pb;
    int c = cmp_identity(a, b);
    return c != 0 ? c : a->route.order - b->route.order;
}

/* True when no two routes accept the same requests; otherwise err names
 * the earliest-defined route that repeats an earlier one. */
static bool check_duplicates(const gh_router_t *r, char *err, size_t errlen)
{
    if (r->n < 2) return true;
    const entry_t **by_id = malloc(r->n * sizeof *by_id);
    if (!by_id) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < r->n; i++) by_id[i] = &r->e[i];
    qsort(by_id, r->n, sizeof *by_id, cmp_identity_then_order);

    const entry_t *first = NULL, *dup = NULL;
    for (size_t i = 1; i < r->n; i++) {
        /* Within a run of equal routes, sorted by order, the second is the
         * first repeat; any later one has a larger order and never wins. */
        if (cmp_identity(by_id[i - 1], by_id[i]) != 0) continue;
        if (!dup || by_id[i]->route.order < dup->route.order) {
            first = by_id[i - 1];
            dup = by_id[i];
        }
    }
    free(by_id);
    if (!dup) return true;
    if (err && errlen)
        snprintf(err, errlen, "%s:%d: route '%s' duplicates route '%s' (defined at %s:%d)",
                 route_file(&dup->route), dup->route.line, route_name(&dup->route),
                 route_name(&first->route), route_file(&first->route), first->route.line);
    return false;
}

/* Match order: exact host, wildcard host, any host; then more literal
 * segments; then no '**' before '**' (and among '**', more '*'); then a
 * method list before any method; then config order. */
static int cmp_specificity(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    if (a->host_kind != b->host_kind) return (int)a->host_kind - (int)b->host_kind;
    if (a->nliteral != b->nliteral) return a->nliteral > b->nliteral ? -1 : 1;
    if (a->globstar != b->globstar) return a->globstar ? 1 : -1;
    if (a->nstar != b->nstar) return a->nstar > b->nstar ? -1 : 1;
    if ((a->route.methods != 0) != (b->route.methods != 0)) return a->route.methods ? -1 : 1;
    return a->route.order - b->route.order;
}

gh_router_t *gh_router_new(gh_route_t *routes, size_t n, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    gh_router_t *r = calloc(1, sizeof *r);
    entry_t *e = n ? calloc(n, sizeof *e) : NULL;
    if (!r || (n && !e)) {
        for (size_t i = 0; i < n; i++) gh_route_clear(&routes[i]);
        free(routes);
        free(e);
        free(r);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        e[i].route = routes[i];
        e[i].route.order = (int)i;
    }
    free(routes);
    r->e = e;
    r->n = n;

    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) ok = compile_entry(&e[i], err, errlen);
    if (!ok || !check_duplicates(r, err, errlen)) {
        gh_router_free(r);
        return NULL;
    }
    if (n) qsort(e, n, sizeof *e, cmp_specificity);
    return r;
}

void gh_router_free(gh_router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        gh_route_clear(&r->e[i].route);
        free(r->e[i].segs);
    }
    free(r->e);
    free(r);
}

/* The name in a Host value, without port, IPv6 brackets or one trailing dot;
 * length 0 for no host or an unclosed bracket. */
static size_t host_name(const char *h, size_t len, const char **name)
{
    *name = h;
    if (!h || len == 0) return 0;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', len);
        if (!close || (close + 1 < h + len && close[1] != ':')) return 0;
        *name = h + 1;
        return (size_t)(close - h) - 1;
    }
    const char *colon = memchr(h, ':', len);
    size_t n = colon ? (size_t)(colon - h) : len;
    if (n > 0 && h[n - 1] == '.') n--;
    return n;
}

static bool host_matches(const entry_t *e, const char *name, size_t len)
{
    switch (e->host_kind) {
    case HOST_EXACT:
        return len == e->host_len && ascii_casecmp(name, e->host, len) == 0;
    case HOST_WILDCARD: {
        if (len <= e->host_len) return false;
        size_t label = len - e->host_len;
        return ascii_casecmp(name + label, e->host, e->host_len) == 0 && !memchr(name, '.', label);
    }
    case HOST_ANY:
        break;
    }
    return true;
}

/* Walks pattern and path segments together; path starts with '/'. */
static bool path_matches(const entry_t *e, const char *path, size_t len)
{
    const char *pat = e->route.path;
    size_t i = 1;
    for (size_t k = 0; k < e->nseg; k++) {
        const seg_t *s = &e->segs[k];
        if (s->kind == SEG_GLOBSTAR) return true;
        if (i > len) return false;
        const char *slash = memchr(path + i, '/', len - i);
        size_t end = slash ? (size_t)(slash - path) : len;
        if (s->kind == SEG_STAR) {
            if (end == i) return false;
        } else if (end - i != s->len || memcmp(path + i, pat + s->off, s->len) != 0) {
            return false;
        }
        i = end + 1;
    }
    return i == len + 1;
}

const gh_route_t *gh_router_match(const gh_router_t *r, const char *host, size_t host_len,
                                  int method, const char *path, size_t path_len)
{
    if (!r || !path || path_len == 0 || path[0] != '/') return NULL;
    const char *name;
    size_t name_len = host_name(host, host_len, &name);
    uint64_t bit = method >= 0 && method < 64 ? UINT64_C(1) << method : 0;
    for (size_t i = 0; i < r->n; i++) {
        const entry_t *e = &r->e[i];
        if (e->route.methods && !(e->route.methods & bit)) continue;
        if (!host_matches(e, name, name_len)) continue;
        if (path_matches(e, path, path_len)) return &e->route;
    }
    return NULL;
}

size_t gh_router_count(const gh_router_t *r)
{
    return r ? r->n : 0;
}

const gh_route_t *gh_router_at(const gh_router_t *r, size_t i)
{
    return r && i < r->n ? &r->e[i].route : NULL;
}

bool gh_route_sets_claim_header(const gh_route_t *rt, const char *name, size_t len)
{
    for (size_t i = 0; i < rt->nclaim_headers; i++)
        if (gh_hdr_eq(name, len, rt->claim_headers[2 * i])) return true;
    return false;
}
