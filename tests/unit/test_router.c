/* Unit tests for router.c: pattern checks, matching and specificity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "router.h"

#define M(m)     (UINT64_C(1) << (m))
#define ANY      0
#define NSPEC(a) (sizeof(a) / sizeof((a)[0]))
#define FILE_    "routes/test.lua"

typedef struct {
    const char *name, *host, *path;
    uint64_t methods;
    const char *strip;
} spec_t;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Builds a router from specs, route i defined at FILE_ line 10 * (i + 1). */
static gh_router_t *build(const spec_t *specs, size_t n, char *err, size_t errlen)
{
    gh_route_t *rt = calloc(n ? n : 1, sizeof *rt);
    assert_non_null(rt);
    for (size_t i = 0; i < n; i++) {
        rt[i].name = dup_or_null(specs[i].name);
        rt[i].host = dup_or_null(specs[i].host);
        rt[i].path = dup_or_null(specs[i].path);
        rt[i].methods = specs[i].methods;
        rt[i].strip = dup_or_null(specs[i].strip);
        rt[i].upstream = (int)i + 100;
        rt[i].preserve_host = i % 2 == 0;
        rt[i].file = strdup(FILE_);
        rt[i].line = 10 * ((int)i + 1);
        rt[i].order = -1;
    }
    return gh_router_new(rt, n, err, errlen);
}

static gh_router_t *build_ok(const spec_t *specs, size_t n, int line)
{
    char err[256] = "unset";
    gh_router_t *r = build(specs, n, err, sizeof err);
    if (!r) fail_msg("line %d: build failed: %s", line, err);
    assert_string_equal(err, "");
    return r;
}

/* Asserts a build fails with an error that starts with the route's
 * "file:line: route 'name': " prefix and contains want. */
static void build_fails(const spec_t *specs, size_t n, const char *want, int line)
{
    char err[256] = "";
    gh_router_t *r = build(specs, n, err, sizeof err);
    if (r) fail_msg("line %d: build succeeded, want error containing \"%s\"", line, want);
    if (!strstr(err, want)) fail_msg("line %d: error \"%s\" lacks \"%s\"", line, err, want);
    assert_int_equal(strncmp(err, FILE_ ":", strlen(FILE_ ":")), 0);
}

static void expect_match(const gh_router_t *r, const char *host, int method, const char *path,
                         const char *want, int line)
{
    const gh_route_t *rt =
        gh_router_match(r, host, host ? strlen(host) : 0, method, path, path ? strlen(path) : 0);
    const char *got = rt ? rt->name : NULL;
    int same = got == want || (got && want && strcmp(got, want) == 0);
    if (!same)
        fail_msg("line %d: match(%s, %d, %s) = %s, want %s", line, host ? host : "(null)", method,
                 path ? path : "(null)", got ? got : "(none)", want ? want : "(none)");
}

#define BUILD_OK(specs)               build_ok(specs, NSPEC(specs), __LINE__)
#define BUILD_FAILS(specs, want)      build_fails(specs, NSPEC(specs), want, __LINE__)
#define MATCH(r, host, m, path, want) expect_match(r, host, m, path, want, __LINE__)
#define GET(r, path, want)            expect_match(r, NULL, HTTP_GET, path, want, __LINE__)

/* A single route with the given path pattern must be refused. */
static void pattern_fails(const char *path, const char *want, int line)
{
    spec_t s[] = {{"r", NULL, path, ANY, NULL}};
    build_fails(s, 1, want, line);
}

static void host_fails(const char *host, const char *want, int line)
{
    spec_t s[] = {{"r", host, "/", ANY, NULL}};
    build_fails(s, 1, want, line);
}

static void strip_fails(const char *path, const char *strip, const char *want, int line)
{
    spec_t s[] = {{"r", NULL, path, ANY, strip}};
    build_fails(s, 1, want, line);
}

#define PATTERN_FAILS(p, want)  pattern_fails(p, want, __LINE__)
#define HOST_FAILS(h, want)     host_fails(h, want, __LINE__)
#define STRIP_FAILS(p, s, want) strip_fails(p, s, want, __LINE__)

/* Literal patterns match exactly; a trailing slash is significant. */
static void test_exact_paths(void **state)
{
    (void)state;
    spec_t s[] = {
        {"root", NULL, "/", ANY, NULL},        {"a", NULL, "/a", ANY, NULL},
        {"a_slash", NULL, "/a/", ANY, NULL},   {"ab", NULL, "/a/b", ANY, NULL},
        {"esc", NULL, "/a/%C3%A9", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    GET(r, "/", "root");
    GET(r, "/a", "a");
    GET(r, "/a/", "a_slash");
    GET(r, "/a/b", "ab");
    GET(r, "/a/%C3%A9", "esc");
    GET(r, "/a/b/", NULL);
    GET(r, "/b", NULL);
    GET(r, "/ab", NULL);
    GET(r, "/a/bc", NULL);
    GET(r, "/a/b/c", NULL);
    GET(r, "/A", NULL); /* paths are case-sensitive */
    GET(r, "/a/%c3%a9", NULL);
    gh_router_free(r);
}

static void test_star(void **state)
{
    (void)state;
    spec_t s[] = {
        {"a_star", NULL, "/a/*", ANY, NULL},
        {"star", NULL, "/*", ANY, NULL},
        {"a_star_c", NULL, "/a/*/c", ANY, NULL},
        {"star_star", NULL, "/*/*", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    GET(r, "/a/x", "a_star");
    GET(r, "/a/...", "a_star");
    GET(r, "/x", "star");
    GET(r, "/a", "star");
    GET(r, "/", NULL);     /* '*' needs a non-empty segment */
    GET(r, "/a/", NULL);   /* nor does an empty last segment count */
    GET(r, "/a/x/", NULL); /* one segment, and the trailing slash is significant */
    GET(r, "/a/b/c", "a_star_c");
    GET(r, "/a/b/d", NULL);
    GET(r, "/x/y", "star_star");
    GET(r, "/x/y/z", NULL);
    GET(r, "/x/", NULL);
    gh_router_free(r);
}

static void test_globstar(void **state)
{
    (void)state;
    spec_t s[] = {
        {"api", NULL, "/api/**", ANY, NULL},
        {"a_star_any", NULL, "/a/*/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    GET(r, "/api", "api");
    GET(r, "/api/", "api");
    GET(r, "/api/x", "api");
    GET(r, "/api/x/", "api");
    GET(r, "/api/x/y/z", "api");
    GET(r, "/apix", NULL);
    GET(r, "/ap", NULL);
    GET(r, "/", NULL);
    GET(r, "/x/api", NULL);
    GET(r, "/a/x", "a_star_any");
    GET(r, "/a/x/", "a_star_any");
    GET(r, "/a/x/y", "a_star_any");
    GET(r, "/a", NULL);
    GET(r, "/a/", NULL);
    gh_router_free(r);

    spec_t all[] = {{"all", NULL, "/**", ANY, NULL}};
    r = BUILD_OK(all);
    GET(r, "/", "all");
    GET(r, "/x", "all");
    GET(r, "/x/y/", "all");
    gh_router_free(r);
}

static void test_malformed_patterns(void **state)
{
    (void)state;
    PATTERN_FAILS(NULL, "route 'r': no path pattern");
    PATTERN_FAILS("", "path must start with '/'");
    PATTERN_FAILS("a", "path must start with '/'");
    PATTERN_FAILS("api/**", "path must start with '/'");
    PATTERN_FAILS("*", "path must start with '/'");
    PATTERN_FAILS("/a/**/b", "'**' must be the last segment");
    PATTERN_FAILS("/a/**/", "'**' must be the last segment");
    PATTERN_FAILS("/**/a", "'**' must be the last segment");
    PATTERN_FAILS("/a*", "must be whole segments");
    PATTERN_FAILS("/*a", "must be whole segments");
    PATTERN_FAILS("/a/***", "must be whole segments");
    PATTERN_FAILS("/a/b*c", "must be whole segments");
    PATTERN_FAILS("/a//b", "is not normalised (requests are matched as '/a/b')");
    PATTERN_FAILS("//", "is not normalised (requests are matched as '/')");
    PATTERN_FAILS("/a/./b", "is not normalised");
    PATTERN_FAILS("/a/../b", "is not normalised");
    PATTERN_FAILS("/a/.", "is not normalised");
    PATTERN_FAILS("/a/%7e", "is not normalised (requests are matched as '/a/~')");
    PATTERN_FAILS("/a/%3b", "is not normalised (requests are matched as '/a/%3B')");
    PATTERN_FAILS("/..", "path climbs above the root");
    PATTERN_FAILS("/a/%2f", "encoded '/'");
    PATTERN_FAILS("/a;b", "';' path parameters");
    PATTERN_FAILS("/a b", "space");
    PATTERN_FAILS("/a\\b", "'\\' in path");
    PATTERN_FAILS("/a%", "malformed percent-encoding");
}

static void test_host_exact(void **state)
{
    (void)state;
    spec_t s[] = {
        {"any", NULL, "/**", ANY, NULL},
        {"api", "api.example.com", "/**", ANY, NULL},
        {"ip", "127.0.0.1", "/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    MATCH(r, "api.example.com", HTTP_GET, "/", "api");
    MATCH(r, "API.Example.COM", HTTP_GET, "/", "api");
    MATCH(r, "api.example.com:8080", HTTP_GET, "/", "api");
    MATCH(r, "api.example.com:", HTTP_GET, "/", "api");
    MATCH(r, "api.example.com.", HTTP_GET, "/", "api");
    MATCH(r, "api.example.com.:443", HTTP_GET, "/", "api");
    MATCH(r, "127.0.0.1:80", HTTP_GET, "/", "ip");
    MATCH(r, "api.example.com..", HTTP_GET, "/", "any");
    MATCH(r, "api.example.co", HTTP_GET, "/", "any");
    MATCH(r, "xapi.example.com", HTTP_GET, "/", "any");
    MATCH(r, "x.api.example.com", HTTP_GET, "/", "any");
    MATCH(r, "api.example.com.evil", HTTP_GET, "/", "any");
    MATCH(r, "api", HTTP_GET, "/", "any");
    MATCH(r, "", HTTP_GET, "/", "any");
    MATCH(r, NULL, HTTP_GET, "/", "any");
    MATCH(r, ":8080", HTTP_GET, "/", "any");
    gh_router_free(r);

    spec_t only[] = {{"api", "api.example.com", "/**", ANY, NULL}};
    r = BUILD_OK(only);
    MATCH(r, "other.example.com", HTTP_GET, "/", NULL);
    MATCH(r, NULL, HTTP_GET, "/", NULL);
    gh_router_free(r);
}

static void test_host_ipv6(void **state)
{
    (void)state;
    spec_t s[] = {
        {"any", NULL, "/**", ANY, NULL},
        {"lo6", "[::1]", "/**", ANY, NULL},
        {"fd", "FD00::1", "/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    MATCH(r, "[::1]", HTTP_GET, "/", "lo6");
    MATCH(r, "[::1]:8080", HTTP_GET, "/", "lo6");
    MATCH(r, "[fd00::1]:443", HTTP_GET, "/", "fd");
    MATCH(r, "[FD00::1]", HTTP_GET, "/", "fd");
    MATCH(r, "[::1", HTTP_GET, "/", "any");
    MATCH(r, "[::1]x", HTTP_GET, "/", "any");
    MATCH(r, "[::1]]", HTTP_GET, "/", "any");
    MATCH(r, "::1", HTTP_GET, "/", "any"); /* unbracketed: "" before the first ':' */
    MATCH(r, "[::2]:8080", HTTP_GET, "/", "any");
    MATCH(r, "[]", HTTP_GET, "/", "any");
    gh_router_free(r);

    spec_t dup[] = {
        {"a", "[::1]", "/", ANY, NULL},
        {"b", "::1", "/", ANY, NULL},
    };
    BUILD_FAILS(dup, "route 'b' duplicates route 'a'");
}

static void test_host_wildcard(void **state)
{
    (void)state;
    spec_t s[] = {
        {"any", NULL, "/**", ANY, NULL},
        {"wild", "*.example.com", "/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    MATCH(r, "a.example.com", HTTP_GET, "/", "wild");
    MATCH(r, "A.EXAMPLE.COM:443", HTTP_GET, "/", "wild");
    MATCH(r, "a-b.example.com.", HTTP_GET, "/", "wild");
    MATCH(r, "x.Example.Com", HTTP_GET, "/", "wild");
    MATCH(r, "example.com", HTTP_GET, "/", "any");
    MATCH(r, ".example.com", HTTP_GET, "/", "any");
    MATCH(r, "a.b.example.com", HTTP_GET, "/", "any");
    MATCH(r, "aexample.com", HTTP_GET, "/", "any");
    MATCH(r, "a.example.com.evil", HTTP_GET, "/", "any");
    MATCH(r, "a.example.org", HTTP_GET, "/", "any");
    MATCH(r, "a.xexample.com", HTTP_GET, "/", "any");
    MATCH(r, NULL, HTTP_GET, "/", "any");
    gh_router_free(r);
}

static void test_bad_host_patterns(void **state)
{
    (void)state;
    HOST_FAILS("", "host pattern '': not a host name");
    HOST_FAILS("*", "'*' is allowed only as the whole first label");
    HOST_FAILS("*.", "not a host name");
    HOST_FAILS("**.example.com", "'*' is allowed only as the whole first label");
    HOST_FAILS("*.*.example.com", "'*' is allowed only as the whole first label");
    HOST_FAILS("a.*.com", "'*' is allowed only as the whole first label");
    HOST_FAILS("*example.com", "'*' is allowed only as the whole first label");
    HOST_FAILS("example.*", "'*' is allowed only as the whole first label");
    HOST_FAILS("api.example.com:8080", "must not carry a port");
    HOST_FAILS("*.example.com:8080", "must not carry a port");
    HOST_FAILS("a..b", "not a host name");
    HOST_FAILS(".example.com", "not a host name");
    HOST_FAILS("example.com.", "not a host name");
    HOST_FAILS("exa mple.com", "not a host name");
    HOST_FAILS("a/b", "not a host name");
    HOST_FAILS("[::1", "unclosed '['");
    HOST_FAILS("[::1]:80", "must not carry a port");
    HOST_FAILS("[::1]x", "not a host name");
    HOST_FAILS("[not-ipv6]", "not an IPv6 address");
    HOST_FAILS("[]", "not an IPv6 address");
    HOST_FAILS("[127.0.0.1]", "not an IPv6 address");
}

/* Host first: an exact host matching every path beats any host with a long
 * literal path. */
static void test_specificity_host_first(void **state)
{
    (void)state;
    spec_t s[] = {
        {"any_lit", NULL, "/a/b", ANY, NULL},
        {"wild", "*.example.com", "/**", ANY, NULL},
        {"exact", "api.example.com", "/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    MATCH(r, "api.example.com", HTTP_GET, "/a/b", "exact");
    MATCH(r, "www.example.com", HTTP_GET, "/a/b", "wild");
    MATCH(r, "other.org", HTTP_GET, "/a/b", "any_lit");
    MATCH(r, "other.org", HTTP_GET, "/a/c", NULL);
    assert_string_equal(gh_router_at(r, 0)->name, "exact");
    assert_string_equal(gh_router_at(r, 1)->name, "wild");
    assert_string_equal(gh_router_at(r, 2)->name, "any_lit");
    gh_router_free(r);
}

static void test_specificity_paths(void **state)
{
    (void)state;
    spec_t s[] = {
        {"a_any", NULL, "/a/**", ANY, NULL},
        {"a_star_any", NULL, "/a/*/**", ANY, NULL},
        {"a_star", NULL, "/a/*", ANY, NULL},
        {"a_star_star", NULL, "/a/*/*", ANY, NULL},
        {"a_b_star", NULL, "/a/b/*", ANY, NULL},
        {"a_c_any", NULL, "/a/c/**", ANY, NULL},
        {"a", NULL, "/a", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    GET(r, "/a", "a");                /* literal over "**" matching zero segments */
    GET(r, "/a/", "a_any");           /* only "**" accepts an empty last segment */
    GET(r, "/a/x", "a_star");         /* '*' over '**' */
    GET(r, "/a/x/y", "a_star_star");  /* no '**' over '**' with the same literals */
    GET(r, "/a/x/y/z", "a_star_any"); /* among '**', more '*' first */
    GET(r, "/a/b/c", "a_b_star");     /* more literal segments */
    GET(r, "/a/c", "a_c_any");        /* more literals beats '*' over '**' */
    GET(r, "/a/c/d/e", "a_c_any");
    GET(r, "/b", NULL);
    gh_router_free(r);
}

static void test_specificity_methods(void **state)
{
    (void)state;
    spec_t s[] = {
        {"any", NULL, "/x", ANY, NULL},
        {"get", NULL, "/x", M(HTTP_GET) | M(HTTP_HEAD), NULL},
        {"del", NULL, "/x", M(HTTP_DELETE), NULL},
        {"flush", NULL, "/x", M(HTTP_FLUSH), NULL},
        {"xy_any", NULL, "/x/y", ANY, NULL},
        {"x_get", NULL, "/x/**", M(HTTP_GET), NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    MATCH(r, NULL, HTTP_GET, "/x", "get");
    MATCH(r, NULL, HTTP_HEAD, "/x", "get");
    MATCH(r, NULL, HTTP_DELETE, "/x", "del"); /* method 0 is a real bit */
    MATCH(r, NULL, HTTP_FLUSH, "/x", "flush");
    MATCH(r, NULL, HTTP_POST, "/x", "any");
    MATCH(r, NULL, HTTP_GET, "/x/y", "xy_any"); /* literals outrank a method list */
    MATCH(r, NULL, HTTP_GET, "/x/z", "x_get");
    MATCH(r, NULL, HTTP_POST, "/x/z", NULL);
    MATCH(r, NULL, -1, "/x", "any");
    MATCH(r, NULL, 63, "/x", "any");
    MATCH(r, NULL, 64, "/x", "any");
    MATCH(r, NULL, 1000, "/x", "any");
    MATCH(r, NULL, -1, "/x/z", NULL);
    gh_router_free(r);
}

/* Equal specificity: the route defined first wins. */
static void test_config_order_breaks_ties(void **state)
{
    (void)state;
    spec_t s1[] = {
        {"first", NULL, "/a/*", ANY, NULL},
        {"second", NULL, "/*/b", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s1);
    GET(r, "/a/b", "first");
    GET(r, "/x/b", "second");
    gh_router_free(r);

    spec_t s2[] = {
        {"first", NULL, "/*/b", ANY, NULL},
        {"second", NULL, "/a/*", ANY, NULL},
    };
    r = BUILD_OK(s2);
    GET(r, "/a/b", "first");
    GET(r, "/a/x", "second");
    gh_router_free(r);

    spec_t s3[] = {
        {"get_post", NULL, "/m", M(HTTP_GET) | M(HTTP_POST), NULL},
        {"get", NULL, "/m", M(HTTP_GET), NULL},
    };
    r = BUILD_OK(s3);
    MATCH(r, NULL, HTTP_GET, "/m", "get_post");
    MATCH(r, NULL, HTTP_POST, "/m", "get_post");
    gh_router_free(r);
}

static void test_unknown_method_bit(void **state)
{
    (void)state;
    spec_t s[] = {{"r", NULL, "/", M(63), NULL}};
    BUILD_FAILS(s, "route 'r': method list has a bit that is no llhttp method");
}

static void test_strip(void **state)
{
    (void)state;
    spec_t s[] = {
        {"orders", NULL, "/api/orders/**", ANY, "/api"},
        {"orders2", NULL, "/api/orders/*", ANY, "/api/orders"},
        {"whole", NULL, "/v1", ANY, "/v1"},
        {"slash", NULL, "/v2/", ANY, "/v2"},
        {"glob_after", NULL, "/v3/*/x", ANY, "/v3"},
    };
    gh_router_t *r = BUILD_OK(s);
    const gh_route_t *rt = gh_router_match(r, NULL, 0, HTTP_GET, "/api/orders/1", 13);
    assert_non_null(rt);
    assert_string_equal(rt->name, "orders2");
    assert_string_equal(rt->strip, "/api/orders");
    GET(r, "/api/orders", "orders");
    gh_router_free(r);

    STRIP_FAILS("/api/orders/**", "/ap", "strip '/ap' is not a whole-segment prefix");
    STRIP_FAILS("/api/orders/**", "/api/order", "is not a whole-segment prefix");
    STRIP_FAILS("/api/orders/**", "/orders", "is not a whole-segment prefix");
    STRIP_FAILS("/api", "/api/orders", "is not a whole-segment prefix");
    STRIP_FAILS("/api/orders/**", "/api/", "must not end with '/'");
    STRIP_FAILS("/api/orders/**", "/", "must name at least one segment");
    STRIP_FAILS("/api/orders/**", "", "must start with '/'");
    STRIP_FAILS("/api/orders/**", "api", "must start with '/'");
    STRIP_FAILS("/api/*/x", "/api/*", "must not contain '*' or '**'");
    STRIP_FAILS("/api/**", "/api/**", "must not contain '*' or '**'");
    STRIP_FAILS("/*/x", "/a", "is not a whole-segment prefix");
    STRIP_FAILS("/API/x", "/api", "is not a whole-segment prefix");
}

static void test_duplicates(void **state)
{
    (void)state;
    spec_t s[] = {
        {"a", NULL, "/x", ANY, NULL},
        {"b", NULL, "/x", ANY, NULL},
    };
    char err[256];
    assert_null(build(s, 2, err, sizeof err));
    assert_string_equal(err, "routes/test.lua:20: route 'b' duplicates route 'a' (defined at "
                             "routes/test.lua:10)");

    spec_t host_case[] = {
        {"a", "API.example.com", "/x", M(HTTP_GET), NULL},
        {"b", "api.EXAMPLE.com", "/x", M(HTTP_GET), NULL},
    };
    BUILD_FAILS(host_case, "route 'b' duplicates route 'a'");

    spec_t wild[] = {
        {"a", "*.example.com", "/x/**", ANY, NULL},
        {"b", "*.Example.com", "/x/**", ANY, NULL},
    };
    BUILD_FAILS(wild, "route 'b' duplicates route 'a'");

    /* The earliest repeat is reported, whatever the sort does. */
    spec_t many[] = {
        {"z", NULL, "/z", ANY, NULL},  {"q", NULL, "/q", ANY, NULL},  {"q2", NULL, "/q", ANY, NULL},
        {"z2", NULL, "/z", ANY, NULL}, {"q3", NULL, "/q", ANY, NULL},
    };
    assert_null(build(many, NSPEC(many), err, sizeof err));
    assert_string_equal(err, "routes/test.lua:30: route 'q2' duplicates route 'q' (defined at "
                             "routes/test.lua:20)");

    spec_t unnamed[] = {
        {NULL, NULL, "/x", ANY, NULL},
        {NULL, NULL, "/x", ANY, NULL},
    };
    BUILD_FAILS(unnamed, "route '(unnamed)' duplicates route '(unnamed)'");
}

/* Overlapping routes that differ in host, path or methods are not repeats. */
static void test_not_duplicates(void **state)
{
    (void)state;
    spec_t s[] = {
        {"a", NULL, "/x", ANY, NULL},
        {"b", NULL, "/x", M(HTTP_GET), NULL},
        {"c", NULL, "/x", M(HTTP_GET) | M(HTTP_POST), NULL},
        {"d", "api.example.com", "/x", ANY, NULL},
        {"e", "*.example.com", "/x", ANY, NULL},
        {"f", "*.api.example.com", "/x", ANY, NULL},
        {"g", NULL, "/x/", ANY, NULL},
        {"h", NULL, "/*", ANY, NULL},
        {"i", NULL, "/x/**", ANY, NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    assert_int_equal(gh_router_count(r), NSPEC(s));
    gh_router_free(r);
}

static void test_table_access(void **state)
{
    (void)state;
    spec_t s[] = {
        {"catch", NULL, "/**", ANY, NULL},
        {"exact", NULL, "/a", ANY, "/a"},
        {"host", "h.example", "/**", M(HTTP_GET), NULL},
    };
    gh_router_t *r = BUILD_OK(s);
    assert_int_equal(gh_router_count(r), 3);
    const gh_route_t *h = gh_router_at(r, 0), *e = gh_router_at(r, 1), *c = gh_router_at(r, 2);
    assert_string_equal(h->name, "host");
    assert_string_equal(e->name, "exact");
    assert_string_equal(c->name, "catch");
    assert_null(gh_router_at(r, 3));
    /* order is the position given; other fields are kept as handed over */
    assert_int_equal(h->order, 2);
    assert_int_equal(e->order, 1);
    assert_int_equal(c->order, 0);
    assert_int_equal(e->upstream, 101);
    assert_false(e->preserve_host);
    assert_true(h->preserve_host);
    assert_string_equal(e->file, FILE_);
    assert_int_equal(e->line, 20);
    assert_string_equal(e->strip, "/a");
    assert_string_equal(h->host, "h.example");
    assert_int_equal(h->methods, M(HTTP_GET));
    gh_router_free(r);

    assert_int_equal(gh_router_count(NULL), 0);
    assert_null(gh_router_at(NULL, 0));
    assert_null(gh_router_match(NULL, NULL, 0, HTTP_GET, "/", 1));
    gh_router_free(NULL);
}

static void test_empty_router(void **state)
{
    (void)state;
    char err[64] = "unset";
    gh_router_t *r = gh_router_new(NULL, 0, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(err, "");
    assert_int_equal(gh_router_count(r), 0);
    assert_null(gh_router_at(r, 0));
    GET(r, "/", NULL);
    gh_router_free(r);

    r = gh_router_new(malloc(sizeof(gh_route_t)), 0, NULL, 0);
    assert_non_null(r);
    gh_router_free(r);
}

/* Only normalised, absolute paths are matched. */
static void test_match_needs_a_path(void **state)
{
    (void)state;
    spec_t s[] = {{"all", NULL, "/**", ANY, NULL}};
    gh_router_t *r = BUILD_OK(s);
    GET(r, "", NULL);
    GET(r, "a", NULL);
    GET(r, "*", NULL);
    GET(r, NULL, NULL);
    /* path_len bounds the path: "/ab" cut to "/a" */
    spec_t a[] = {{"a", NULL, "/a", ANY, NULL}};
    gh_router_t *ra = BUILD_OK(a);
    assert_non_null(gh_router_match(ra, NULL, 0, HTTP_GET, "/ab", 2));
    assert_null(gh_router_match(ra, NULL, 0, HTTP_GET, "/ab", 3));
    /* host_len bounds the host too */
    spec_t h[] = {{"h", "ab.example", "/a", ANY, NULL}};
    gh_router_t *rh = BUILD_OK(h);
    assert_non_null(gh_router_match(rh, "ab.example.org", 10, HTTP_GET, "/a", 2));
    assert_null(gh_router_match(rh, "ab.example.org", 9, HTTP_GET, "/a", 2));
    gh_router_free(rh);
    gh_router_free(ra);
    gh_router_free(r);
}

static void test_error_buffer_edges(void **state)
{
    (void)state;
    spec_t s[] = {{"a_long_route_name", NULL, "/a//b", ANY, NULL}};
    char err[12];
    memset(err, 'x', sizeof err);
    assert_null(build(s, 1, err, sizeof err));
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(strncmp(err, FILE_, sizeof err - 1), 0);
    assert_null(build(s, 1, NULL, 0));
    err[0] = 'x';
    assert_null(build(s, 1, err, 0));
    assert_int_equal(err[0], 'x');

    /* A later route's error names that route, not the first. */
    spec_t two[] = {
        {"ok", NULL, "/ok", ANY, NULL},
        {"bad", NULL, "/bad/**/x", ANY, NULL},
    };
    char msg[256];
    assert_null(build(two, 2, msg, sizeof msg));
    assert_string_equal(msg, "routes/test.lua:20: route 'bad': path pattern '/bad/**/x': '**' "
                             "must be the last segment");
}

/* --- randomised: the sorted scan must agree with "best of all matches" --- */

static unsigned rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(*s >> 33);
}

/* Reference glob match over '/'-split segments, written recursively. */
static bool ref_match(const char *pat, const char *path)
{
    if (strcmp(pat, "/**") == 0) return true;
    if (*pat == '\0') return *path == '\0';
    if (*path == '\0') return false;
    const char *pe = strchr(pat + 1, '/'), *te = strchr(path + 1, '/');
    size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
    size_t tl = te ? (size_t)(te - path) : strlen(path);
    bool ok = (pl == 2 && pat[1] == '*') ? tl > 1 : (pl == tl && memcmp(pat, path, pl) == 0);
    return ok && ref_match(pat + pl, path + tl);
}

/* Specificity key of a pattern, larger is more specific. */
static long ref_key(const spec_t *s)
{
    long lit = 0, star = 0, globstar = 0;
    for (const char *p = s->path; *p;) {
        const char *e = strchr(p + 1, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 3 && p[1] == '*' && p[2] == '*')
            globstar = 1;
        else if (l == 2 && p[1] == '*')
            star++;
        else
            lit++;
        p += l;
    }
    return lit * 10000 + (1 - globstar) * 1000 + star * 10 + (s->methods != 0);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    static const char *const segs[] = {"a", "b", "*", "", "**"};
    static const char *const psegs[] = {"a", "b", "c", ""};
    uint64_t seed = 42;
    for (int round = 0; round < 300; round++) {
        spec_t specs[12];
        char paths[12][32];
        size_t n = 0;
        while (n < 12) {
            char *p = paths[n];
            int nseg = 1 + (int)(rnd(&seed) % 3);
            p[0] = '\0';
            for (int k = 0; k < nseg; k++) {
                strcat(p, "/");
                strcat(p, segs[rnd(&seed) % 5]);
            }
            specs[n] = (spec_t){NULL, NULL, p, rnd(&seed) % 3 ? ANY : M(HTTP_GET), NULL};
            char err[256];
            gh_route_t one = {.path = strdup(p), .methods = specs[n].methods};
            gh_route_t *arr = malloc(sizeof one);
            *arr = one;
            gh_router_t *probe = gh_router_new(arr, 1, err, sizeof err);
            if (!probe) continue; /* skip malformed patterns */
            gh_router_free(probe);
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup |= strcmp(specs[j].path, p) == 0 && specs[j].methods == specs[n].methods;
            if (!dup) n++;
        }
        char names[12][2];
        for (size_t i = 0; i < n; i++) {
            names[i][0] = (char)('a' + i);
            names[i][1] = '\0';
            specs[i].name = names[i];
        }
        gh_router_t *r = build_ok(specs, n, __LINE__);
        for (int q = 0; q < 40; q++) {
            char path[32] = "";
            int nseg = 1 + (int)(rnd(&seed) % 3);
            for (int k = 0; k < nseg; k++) {
                strcat(path, "/");
                strcat(path, psegs[rnd(&seed) % 4]);
            }
            int method = rnd(&seed) % 2 ? HTTP_GET : HTTP_POST;
            int best = -1;
            for (size_t i = 0; i < n; i++) {
                if (specs[i].methods && !(specs[i].methods & M(method))) continue;
                if (!ref_match(specs[i].path, path)) continue;
                if (best < 0 || ref_key(&specs[i]) > ref_key(&specs[best])) best = (int)i;
            }
            expect_match(r, NULL, method, path, best < 0 ? NULL : names[best], __LINE__);
        }
        gh_router_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_paths),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_globstar),
        cmocka_unit_test(test_malformed_patterns),
        cmocka_unit_test(test_host_exact),
        cmocka_unit_test(test_host_ipv6),
        cmocka_unit_test(test_host_wildcard),
        cmocka_unit_test(test_bad_host_patterns),
        cmocka_unit_test(test_specificity_host_first),
        cmocka_unit_test(test_specificity_paths),
        cmocka_unit_test(test_specificity_methods),
        cmocka_unit_test(test_config_order_breaks_ties),
        cmocka_unit_test(test_unknown_method_bit),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_not_duplicates),
        cmocka_unit_test(test_table_access),
        cmocka_unit_test(test_empty_router),
        cmocka_unit_test(test_match_needs_a_path),
        cmocka_unit_test(test_error_buffer_edges),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
