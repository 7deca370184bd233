/* Fuzz target for router.c. Input: one method byte (value - 64, so 'A' is
 * GET and bytes below '@' are negative), then the Host value up to the first
 * '\n' (no '\n': no Host), then the request path.
 *
 * Every call must be memory-safe. When the request is one the gateway would
 * route (Host passes gh_host_valid, the path is normalised as req.c does),
 * the answer must equal that of a reference matcher written here from the
 * rules in router.h: the most specific matching route, or NULL. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "fuzz_check.h"
#include "headers.h"
#include "path.h"
#include "router.h"

#define M(m) (UINT64_C(1) << (m))

typedef struct {
    const char *name, *host, *path;
    uint64_t methods;
    const char *strip;
} spec_t;

/* Exact, '*' and '**' paths, exact, wildcard and IPv6 hosts, method lists,
 * and pairs that differ only in specificity. */
static const spec_t SPECS[] = {
    {"root", NULL, "/", 0, NULL},
    {"api_all", NULL, "/api/**", 0, "/api"},
    {"order_read", NULL, "/api/orders/*", M(HTTP_GET) | M(HTTP_HEAD), NULL},
    {"order_post", NULL, "/api/orders/*", M(HTTP_POST), "/api/orders"},
    {"order_items", NULL, "/api/orders/*/items/**", 0, "/api/orders"},
    {"order_any", NULL, "/api/*/**", M(HTTP_DELETE), NULL},
    {"trailing", NULL, "/a/", 0, NULL},
    {"a_exact", NULL, "/a", M(HTTP_GET), "/a"},
    {"two_stars", NULL, "/*/*", 0, NULL},
    {"star_glob", NULL, "/x/*/**", M(HTTP_OPTIONS) | M(HTTP_PATCH), NULL},
    {"escaped", NULL, "/caf\xc3\xa9/%20x", 0, "/caf\xc3\xa9"},
    {"users", "api.example.com", "/v1/users", 0, "/v1"},
    {"api_host_all", "API.Example.COM", "/**", 0, NULL},
    {"wild_v1", "*.example.com", "/v1/*", M(HTTP_PUT) | M(HTTP_DELETE), NULL},
    {"wild_all", "*.example.com", "/**", 0, NULL},
    {"deep_wild", "*.b.example.com", "/**", M(HTTP_GET), NULL},
    {"v6_admin", "[::1]", "/admin/", 0, NULL},
    {"v6_bare", "::1", "/admin", M(HTTP_GET), NULL},
    {"v4_all", "127.0.0.1", "/**", 0, NULL},
    {"underscore", "my_host-1.internal", "/health", M(HTTP_HEAD), NULL},
    {"source", NULL, "/stream/*", M(HTTP_SOURCE), NULL},
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    FUZZ_CHECK(d != NULL);
    return d;
}

/* The host name a Host value selects routes by: port, brackets and one
 * trailing dot dropped (router.h). Sets *len 0 for none. */
static const char *ref_host_name(const char *h, size_t hlen, size_t *len)
{
    *len = 0;
    if (!h || hlen == 0) return h;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', hlen);
        if (!close) return h;
        *len = (size_t)(close - h - 1);
        return h + 1;
    }
    const char *colon = memchr(h, ':', hlen);
    *len = colon ? (size_t)(colon - h) : hlen;
    if (*len > 0 && h[*len - 1] == '.') (*len)--;
    return h;
}

static bool ref_host_match(const char *pat, const char *name, size_t len)
{
    if (!pat) return true;
    size_t plen = strlen(pat);
    if (pat[0] == '[') {
        pat++;
        plen -= 2;
    }
    if (pat[0] == '*') { /* "*.suffix": one non-empty label, then ".suffix" */
        const char *suffix = pat + 1;
        size_t slen = plen - 1;
        if (len <= slen || !ascii_caseeq(name + len - slen, suffix, slen)) return false;
        return memchr(name, '.', len - slen) == NULL;
    }
    return len == plen && ascii_caseeq(name, pat, len);
}

/* Splits "/s1/s2/..." into segments (after the leading '/'); "/" is one
 * empty segment and "/a/" is "a" and "". Returns the count. */
static size_t split(const char *p, size_t len, const char **seg, size_t *seglen, size_t max)
{
    size_t n = 0, start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && p[i] != '/') continue;
        FUZZ_CHECK(n < max);
        seg[n] = p + start;
        seglen[n++] = i - start;
        start = i + 1;
    }
    return n;
}

static bool ref_path_match(const char *pat, const char *path, size_t len)
{
    const char *ps[16], *ss[1024];
    size_t pl[16], sl[1024];
    if (len > sizeof ss / sizeof ss[0]) return false; /* callers keep paths shorter */
    size_t np = split(pat, strlen(pat), ps, pl, 16);
    size_t ns = split(path, len, ss, sl, 1024);
    for (size_t k = 0; k < np; k++) {
        if (pl[k] == 2 && memcmp(ps[k], "**", 2) == 0) return true;
        if (k >= ns) return false;
        if (pl[k] == 1 && ps[k][0] == '*') {
            if (sl[k] == 0) return false;
        } else if (pl[k] != sl[k] || memcmp(ps[k], ss[k], pl[k]) != 0) {
            return false;
        }
    }
    return np == ns;
}

/* Sort key of a spec in match order (smaller is more specific): host kind,
 * fewer literal segments, '**', fewer '*', no method list, config order. */
static void spec_key(size_t i, long key[6])
{
    const spec_t *s = &SPECS[i];
    const char *segs[16];
    size_t lens[16];
    size_t n = split(s->path, strlen(s->path), segs, lens, 16);
    long literal = 0, star = 0, globstar = 0;
    for (size_t k = 0; k < n; k++) {
        if (lens[k] == 2 && memcmp(segs[k], "**", 2) == 0)
            globstar = 1;
        else if (lens[k] == 1 && segs[k][0] == '*')
            star++;
        else
            literal++;
    }
    key[0] = !s->host ? 2 : s->host[0] == '*' ? 1 : 0;
    key[1] = -literal;
    key[2] = globstar;
    key[3] = -star;
    key[4] = s->methods == 0;
    key[5] = (long)i;
}

static bool key_less(const long a[6], const long b[6])
{
    for (int k = 0; k < 6; k++)
        if (a[k] != b[k]) return a[k] < b[k];
    return false;
}

/* The spec the reference picks, or -1. */
static long ref_match(const char *host, size_t hlen, int method, const char *path, size_t plen)
{
    size_t nlen;
    const char *name = ref_host_name(host, hlen, &nlen);
    uint64_t bit = method >= 0 && method < 64 ? M(method) : 0;
    long best = -1, best_key[6] = {0};
    for (size_t i = 0; i < NSPECS; i++) {
        const spec_t *s = &SPECS[i];
        if (s->methods && !(s->methods & bit)) continue;
        if (!ref_host_match(s->host, name, nlen)) continue;
        if (!ref_path_match(s->path, path, plen)) continue;
        long key[6];
        spec_key(i, key);
        if (best < 0 || key_less(key, best_key)) {
            best = (long)i;
            memcpy(best_key, key, sizeof key);
        }
    }
    return best;
}

static long spec_index(const gh_route_t *rt)
{
    for (size_t i = 0; i < NSPECS; i++)
        if (strcmp(rt->name, SPECS[i].name) == 0) return (long)i;
    return -1;
}

/* Builds the table once; checks gh_router_at lists it in match order. */
static const gh_router_t *router(void)
{
    static gh_router_t *r;
    if (r) return r;
    gh_route_t *rt = calloc(NSPECS, sizeof *rt);
    FUZZ_CHECK(rt != NULL);
    for (size_t i = 0; i < NSPECS; i++) {
        rt[i].name = dup_or_null(SPECS[i].name);
        rt[i].host = dup_or_null(SPECS[i].host);
        rt[i].path = dup_or_null(SPECS[i].path);
        rt[i].methods = SPECS[i].methods;
        rt[i].strip = dup_or_null(SPECS[i].strip);
        rt[i].upstream = (int)i;
        rt[i].file = dup_or_null("fuzz_router.c");
        rt[i].line = (int)i + 1;
    }
    char err[256];
    r = gh_router_new(rt, NSPECS, err, sizeof err);
    if (!r) fprintf(stderr, "fuzz_router: %s\n", err);
    FUZZ_CHECK(r != NULL);
    FUZZ_CHECK(gh_router_count(r) == NSPECS && gh_router_at(r, NSPECS) == NULL);
    long prev[6] = {0};
    for (size_t i = 0; i < NSPECS; i++) {
        long idx = spec_index(gh_router_at(r, i)), key[6];
        FUZZ_CHECK(idx >= 0);
        spec_key((size_t)idx, key);
        FUZZ_CHECK(i == 0 || key_less(prev, key));
        memcpy(prev, key, sizeof key);
    }
    return r;
}

/* A routable request gets the reference's route; a strip prefix always
 * starts the path at a segment boundary, since the proxy removes it. */
static void check_routed(const char *host, size_t hlen, int method, const char *path, size_t plen)
{
    const gh_route_t *rt = gh_router_match(router(), host, hlen, method, path, plen);
    long want = ref_match(host, hlen, method, path, plen);
    if (!rt) {
        FUZZ_CHECK(want == -1);
        return;
    }
    FUZZ_CHECK(spec_index(rt) == want);
    if (rt->strip) {
        size_t n = strlen(rt->strip);
        FUZZ_CHECK(plen >= n && memcmp(path, rt->strip, n) == 0);
        FUZZ_CHECK(plen == n || path[n] == '/');
    }
}

/* Exact-size heap copy, so ASan sees any read past the end. */
static char *copy(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n) memcpy(c, p, n);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        FUZZ_CHECK(gh_router_match(router(), NULL, 0, HTTP_GET, NULL, 0) == NULL);
        return 0;
    }
    int method = (int)data[0] - 64;
    const uint8_t *rest = data + 1, *nl = memchr(rest, '\n', size - 1);
    size_t hlen = nl ? (size_t)(nl - rest) : 0;
    const uint8_t *p = nl ? nl + 1 : rest;
    size_t plen = size - (size_t)(p - data);
    char *host = nl ? copy(rest, hlen) : NULL;
    char *path = copy(p, plen);

    /* Whatever the bytes, matching must not crash nor read out of bounds. */
    gh_router_match(router(), host, hlen, method, path, plen);

    char *norm = malloc(plen + 1);
    size_t nlen;
    FUZZ_CHECK(norm != NULL);
    bool host_ok = !host || gh_host_valid(host, hlen);
    if (host_ok && plen < 1024 && gh_path_normalize(path, plen, norm, &nlen) == GH_PATH_OK) {
        char *exact = copy((const uint8_t *)norm, nlen);
        check_routed(host, hlen, method, exact, nlen);
        free(exact);
    }
    free(norm);
    free(path);
    free(host);
    return 0;
}
