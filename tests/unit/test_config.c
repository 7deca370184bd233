/* Config loading: the snapshot built from gatehouse.lua and route files,
 * and the file:line errors a broken config gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "config.h"

#include "config_dir.h"

static int setup(void **state)
{
    (void)state;
    return config_dir_setup("gh_config_test");
}

static const char *BASE =
    "return {\n"
    "  listen = { \"127.0.0.1:18080\" },\n"
    "  workers = 3,\n"
    "  upstreams = {\n"
    "    orders = { targets = { \"127.0.0.1:18081\", \"127.0.0.1:18082\" } },\n"
    "  },\n"
    "  routes = \"routes/\",\n"
    "}\n";

static gh_config_t *load(char *err, size_t errlen)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/gatehouse.lua", dir);
    return gh_config_load(path, err, errlen);
}

static void test_loads_routes_and_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua", BASE);
    write_file("routes/orders.lua",
               "local gh = require 'gatehouse'\n"
               "return gh.route { name = 'orders', match = { path = '/api/orders/**',\n"
               "  methods = { 'GET', 'POST' } }, upstream = 'orders', strip = '/api' }\n");
    write_file("routes/orders_test.lua", "error('policy tests are not route files')\n");
    gh_config_t *cfg = load(err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 3);
    assert_int_equal(cfg->nlisten, 1);
    assert_int_equal(cfg->nupstreams, 1);
    assert_int_equal(cfg->upstreams[0].ntargets, 2);
    assert_int_equal(cfg->upstreams[0].keepalive, 64);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_string_equal(cfg->access_log, "stderr");
    assert_int_equal(gh_router_count(cfg->router), 1);
    const gh_route_t *r = gh_router_at(cfg->router, 0);
    assert_string_equal(r->name, "orders");
    assert_string_equal(r->strip, "/api");
    assert_int_equal(r->line, 2);
    assert_true(r->methods & (1ull << HTTP_GET));
    assert_false(r->methods & (1ull << HTTP_DELETE));
    gh_config_free(cfg);
}

static void test_list_of_routes_and_limits(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua",
               "return { listen = '127.0.0.1:1', limits = { max_body = 0, header_timeout = 0.5 },\n"
               "  upstreams = { a = { targets = { 'localhost:9' }, read_timeout = 2 } } }\n");
    write_file("routes/orders.lua", "local gh = require 'gatehouse'\n"
                                    "return {\n"
                                    "  gh.route { match = { path = '/a/**' }, upstream = 'a' },\n"
                                    "  gh.route { match = { path = '/b' }, upstream = 'a' },\n"
                                    "}\n");
    gh_config_t *cfg = load(err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(gh_router_count(cfg->router), 2);
    assert_int_equal(cfg->limits.max_body, 0);
    assert_true(cfg->limits.header_timeout == 0.5);
    assert_true(cfg->upstreams[0].read_timeout == 2.0);
    gh_config_free(cfg);
}

/* Loads and expects failure with err containing both fragments. */
static void expect_error(const char *config, const char *route, const char *where, const char *what)
{
    char err[512] = "";
    write_file("gatehouse.lua", config);
    write_file("routes/orders.lua", route);
    gh_config_t *cfg = load(err, sizeof(err));
    if (cfg) gh_config_free(cfg);
    assert_null(cfg);
    if (!strstr(err, where) || !strstr(err, what))
        fail_msg("error '%s' lacks '%s' or '%s'", err, where, what);
}

static const char *ROUTE = "local gh = require 'gatehouse'\n"
                           "return gh.route { match = { path = '/x/**' }, upstream = 'orders' }\n";

static void test_errors_point_at_file_and_line(void **state)
{
    (void)state;
    expect_error("return {\n  listen = { '127.0.0.1:1' },\n  bogus = 1,\n"
                 "  upstreams = { orders = { targets = { '127.0.0.1:2' } } } }\n",
                 ROUTE, "gatehouse.lua:3:", "unknown key 'bogus'");
    expect_error("return { listen = { '127.0.0.1:1' } ,, }\n", ROUTE, "gatehouse.lua:1:", "");
    expect_error("return {\n  listen = { '127.0.0.1:99999' },\n"
                 "  upstreams = { orders = { targets = { '127.0.0.1:2' } } } }\n",
                 ROUTE, "gatehouse.lua:2:", "port must be 1-65535");
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'nope' }\n",
                 "orders.lua:3:", "upstream 'nope', which is not defined");
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**', methods = { 'get' } },\n"
                 "  upstream = 'orders' }\n",
                 "orders.lua:2:", "unknown HTTP method 'get'");
    expect_error(BASE, "return gh.route {}\n", "orders.lua:1:", "gh");
    expect_error("return {\n  listen = { '127.0.0.1:1' },\n  workers = 0,\n"
                 "  upstreams = { orders = { targets = { '127.0.0.1:2' } } } }\n",
                 ROUTE, "gatehouse.lua:3:", "'workers'");
    expect_error("return {\n  listen = { '127.0.0.1:1' },\n  limits = {\n    max_headers = 'x' },\n"
                 "  upstreams = { orders = { targets = { '127.0.0.1:2' } } } }\n",
                 ROUTE, "gatehouse.lua:4:", "'max_headers' must be a number");
    expect_error("return {\n  listen = { '127.0.0.1:1' },\n"
                 "  upstreams = { orders = { targets = {} } } }\n",
                 ROUTE, "gatehouse.lua:3:", "needs at least one target");
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  websocket = true }\n",
                 "orders.lua:2:", "websocket");
}

static const char *ISSUERS = "return {\n"
                             "  listen = { '127.0.0.1:18080' },\n"
                             "  upstreams = { orders = { targets = { '127.0.0.1:18081' } } },\n"
                             "  issuers = {\n"
                             "    demo = {\n"
                             "      issuer = 'https://sso.example/realms/shop',\n"
                             "      audience = { 'orders-api', 'account' },\n"
                             "      secret = '0123456789abcdef0123456789abcdef',\n"
                             "      token = { header = true, cookie = 'at' },\n"
                             "    },\n"
                             "  },\n"
                             "}\n";

static const char *AUTH_ROUTE =
    "local gh = require 'gatehouse'\n"
    "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
    "  auth = 'demo', relay_token = false,\n"
    "  forward_claims = { ['X-User-Id'] = 'sub' } }\n";

static void test_issuer_and_route_auth(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua", ISSUERS);
    write_file("routes/orders.lua", AUTH_ROUTE);
    gh_config_t *cfg = load(err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    assert_int_equal(cfg->nissuers, 1);
    const gh_issuer_t *is = &cfg->issuers[0];
    /* a 32-byte secret can sign HS256 only; the default allow-list is what the keys can do */
    assert_int_equal(is->algorithms, 1u << GH_ALG_HS256);
    assert_int_equal(is->policy.naud, 2);
    assert_true(is->from_header);
    assert_string_equal(is->cookie, "at");
    assert_true(is->clock_skew == 30);
    assert_string_equal(is->realm, "demo");
    const gh_route_t *r = gh_router_at(cfg->router, 0);
    assert_int_equal(r->issuer, 0);
    assert_false(r->relay_token);
    assert_int_equal(r->nclaim_headers, 1);
    assert_string_equal(r->claim_headers[0], "X-User-Id");
    assert_string_equal(r->claim_headers[1], "sub");
    gh_config_free(cfg);
}

/* An issuers table with one issuer whose body is given. */
static void issuer_config(char *out, size_t cap, const char *body)
{
    snprintf(out, cap,
             "return {\n  listen = { '127.0.0.1:1' },\n"
             "  upstreams = { orders = { targets = { '127.0.0.1:2' } } },\n"
             "  issuers = {\n    demo = {\n%s\n    },\n  },\n}\n",
             body);
}

static void write_rsa_pub(const char *rel, int bits)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    FILE *f = fopen(path, "w");
    assert_non_null(k);
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static void test_issuer_errors(void **state)
{
    (void)state;
    char cfg[2048];
    issuer_config(cfg, sizeof(cfg), "      secret = 'short',\n      algorithms = { 'HS256' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "HS256 needs an HMAC secret of at least 32 bytes");
    issuer_config(cfg, sizeof(cfg),
                  "      secret = '0123456789abcdef0123456789abcdef',\n"
                  "      algorithms = { 'HS512' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "at least 64 bytes");
    issuer_config(cfg, sizeof(cfg), "      secret = 'x',\n      algorithms = { 'none' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:7:", "unknown algorithm 'none'");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'https://sso.example/certs',\n"
                  "      algorithms = { 'RS256', 'HS256' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "HS256 needs a shared secret");
    issuer_config(cfg, sizeof(cfg), "      jwks_url = 'ftp://sso.example/certs',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "not an http:// or https:// URL");
    issuer_config(cfg, sizeof(cfg), "      jwks_url = 'https:///certs',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "no valid host");
    issuer_config(cfg, sizeof(cfg), "      jwks_url = 'http://idp:99999/certs',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "port");
    issuer_config(cfg, sizeof(cfg), "      discovery = true,");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "discovery needs 'issuer'");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'http://idp/certs',\n      jwks = { startup = 'later' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "'startup' must be \"wait\" or \"503\"");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'http://idp/certs',\n      jwks = { refresh_min = 0 },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "'refresh_min' must be between 1 and");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'http://idp/certs',\n      jwks = { refresh_min = 90, "
                  "refresh_max = 60 },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "refresh_min is above jwks.refresh_max");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'http://idp/certs',\n      jwks = { ca_file = 'nope.pem' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "cannot read ca_file");
    issuer_config(cfg, sizeof(cfg),
                  "      jwks_url = 'http://idp/certs',\n      discovery = true,");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "give one key source");
    issuer_config(cfg, sizeof(cfg), "      issuer = 'x',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "needs a key source");
    issuer_config(cfg, sizeof(cfg), "      secret = 'x',\n      pem_file = 'k.pem',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "give one key source");
    write_rsa_pub("weak.pem", 1024);
    issuer_config(cfg, sizeof(cfg), "      pem_file = 'weak.pem',");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "2048");
    write_rsa_pub("rsa.pem", 2048);
    issuer_config(cfg, sizeof(cfg), "      pem_file = 'rsa.pem',\n      algorithms = { 'ES256' },");
    expect_error(cfg, ROUTE, "gatehouse.lua:", "ES256 needs an EC P-256 key");
    issuer_config(cfg, sizeof(cfg), "      pem_file = 'rsa.pem',\n      jwks = { wait = 1 },");
    expect_error(cfg, ROUTE,
                 "gatehouse.lua:", "'jwks' options apply only to jwks_url or discovery");
    issuer_config(cfg, sizeof(cfg), "      pem_file = 'rsa.pem',");
    expect_error(cfg,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  auth = 'keycloak' }\n",
                 "orders.lua:3:", "issuer 'keycloak', which is not defined");
    expect_error(cfg,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  forward_claims = { ['X-User-Id'] = 'sub' } }\n",
                 "orders.lua:3:", "'forward_claims' needs 'auth'");
}

/* A remote issuer: options parsed, RS256 by default, nothing fetched. */
static void test_remote_issuer(void **state)
{
    (void)state;
    char cfg[2048], err[512] = "";
    issuer_config(cfg, sizeof(cfg),
                  "      issuer = 'https://sso.example/realms/shop/',\n"
                  "      discovery = true,\n"
                  "      authorized_party = 'orders-web',\n"
                  "      jwks = { refresh = 120, refresh_min = 5, cooldown = 0, wait = 1.5,\n"
                  "               startup = 'wait', startup_timeout = 9 },");
    write_file("gatehouse.lua", cfg);
    write_file("routes/orders.lua", ROUTE);
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    const gh_issuer_t *is = &c->issuers[0];
    assert_true(is->remote);
    assert_true(gh_keysource_is_remote(is->src));
    assert_int_equal(is->algorithms, 1u << GH_ALG_RS256);
    assert_int_equal(is->policy.nazp, 1);
    assert_string_equal(is->policy.azps[0], "orders-web");
    assert_int_equal(is->policy.azp_lens[0], 10);
    const gh_keysource_conf_t *k = gh_keysource_conf(is->src);
    assert_null(k->jwks_url);
    assert_string_equal(k->discovery_url,
                        "https://sso.example/realms/shop/.well-known/openid-configuration");
    assert_string_equal(k->issuer, "https://sso.example/realms/shop/");
    assert_true(k->refresh == 120 && k->refresh_min == 5 && k->refresh_max == 3600);
    assert_true(k->cooldown == 0 && k->wait == 1.5 && k->timeout == 5);
    assert_int_equal(k->startup, GH_KEYS_START_WAIT);
    assert_true(k->startup_timeout == 9);
    assert_null(gh_keysource_acquire(is->src)); /* no keys until the loop fetches them */
    gh_config_free(c);
}

static void test_missing_routes_dir(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua", "return { listen = '127.0.0.1:1', routes = 'nowhere/' }\n");
    gh_config_t *cfg = load(err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "routes directory"));
}

/* Asserts role path i of is has exactly the segments want (NULL-terminated). */
static void expect_role_path(const gh_issuer_t *is, size_t i, const char *const *want)
{
    size_t n = 0;
    while (want[n]) n++;
    if (i >= is->roles.n) fail_msg("role path %zu of %zu", i, is->roles.n);
    if (is->roles.v[i].nseg != n)
        fail_msg("role path %zu has %zu segments, want %zu", i, is->roles.v[i].nseg, n);
    for (size_t k = 0; k < n; k++)
        if (strcmp(is->roles.v[i].seg[k], want[k]) != 0)
            fail_msg("role path %zu segment %zu is '%s', want '%s'", i, k, is->roles.v[i].seg[k],
                     want[k]);
}
#define EXPECT_ROLE_PATH(is, i, ...)                                                               \
    expect_role_path(is, i, (const char *const[]){__VA_ARGS__, NULL})

static const char *SECRET = "      secret = '0123456789abcdef0123456789abcdef',\n";

/* Loads an issuer with body; fails the test when it does not load. */
static gh_config_t *load_issuer(const char *body)
{
    char cfg[2048], err[512] = "";
    issuer_config(cfg, sizeof(cfg), body);
    write_file("gatehouse.lua", cfg);
    write_file("routes/orders.lua", ROUTE);
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->nissuers, 1);
    return c;
}

/* A dotted string is split; a list of segments keeps "orders.api" whole. */
static void test_issuer_roles(void **state)
{
    (void)state;
    char body[512];
    snprintf(body, sizeof(body),
             "%s      roles = { \"realm_access.roles\", { \"resource_access\", \"orders.api\", "
             "\"roles\" } },",
             SECRET);
    gh_config_t *c = load_issuer(body);
    const gh_issuer_t *is = &c->issuers[0];
    assert_int_equal(is->roles.n, 2);
    EXPECT_ROLE_PATH(is, 0, "realm_access", "roles");
    EXPECT_ROLE_PATH(is, 1, "resource_access", "orders.api", "roles");
    gh_config_free(c);
    /* a one-segment list is taken whole too, dots and all */
    snprintf(body, sizeof(body), "%s      roles = { { 'realm_access.roles' }, 'groups' },", SECRET);
    c = load_issuer(body);
    is = &c->issuers[0];
    assert_int_equal(is->roles.n, 2);
    EXPECT_ROLE_PATH(is, 0, "realm_access.roles");
    EXPECT_ROLE_PATH(is, 1, "groups");
    gh_config_free(c);
}

static void test_issuer_roles_default(void **state)
{
    (void)state;
    gh_config_t *c = load_issuer(SECRET);
    const gh_issuer_t *is = &c->issuers[0];
    assert_int_equal(is->roles.n, 2);
    EXPECT_ROLE_PATH(is, 0, "realm_access", "roles");
    EXPECT_ROLE_PATH(is, 1, "roles");
    gh_config_free(c);
}

/* The issuer body starts on line 6, so its roles key is on line 7. */
static void test_issuer_roles_errors(void **state)
{
    (void)state;
    const char *bad[] = {
        "      roles = 'x',",
        "      roles = 5,",
        "      roles = { {} },",
        "      roles = { 'a..b' },",
        "      roles = { '' },",
        "      roles = { '.roles' },",
        "      roles = { 'roles.' },",
        "      roles = { 5 },",
        "      roles = { true },",
        "      roles = { { 'resource_access', '', 'roles' } },",
        "      roles = { { 'resource_access', 5, 'roles' } },",
        "      roles = { 'realm_access.roles', { 'a', { 'b' } } },",
        "      roles = {},",
        "      roles = { x = 'a.b' },",
        "      roles = { { 'a', x = 'b' } },",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[512], cfg[2048];
        snprintf(body, sizeof(body), "%s%s", SECRET, bad[i]);
        issuer_config(cfg, sizeof(cfg), body);
        expect_error(cfg, ROUTE, "gatehouse.lua:7:", "role");
    }
}

/* A config with lua = { ... } (body) on line 5. */
static void lua_config(char *out, size_t cap, const char *body)
{
    snprintf(out, cap,
             "return {\n  listen = { '127.0.0.1:1' },\n"
             "  upstreams = { orders = { targets = { '127.0.0.1:2' } } },\n"
             "  routes = 'routes/',\n"
             "  lua = %s,\n}\n",
             body);
}

static void test_lua_options(void **state)
{
    (void)state;
    char cfg[1024], err[512] = "";
    lua_config(cfg, sizeof(cfg), "{ budget = 0.2, jit = true, unsafe = false }");
    write_file("gatehouse.lua", cfg);
    write_file("routes/orders.lua", ROUTE);
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_true(c->lua.budget == 0.2);
    assert_true(c->lua.jit);
    assert_false(c->lua.unsafe);
    gh_config_free(c);
    /* budget 0 turns the limit off; unsafe alone */
    lua_config(cfg, sizeof(cfg), "{ budget = 0, unsafe = true }");
    write_file("gatehouse.lua", cfg);
    c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_true(c->lua.budget == 0);
    assert_false(c->lua.jit);
    assert_true(c->lua.unsafe);
    gh_config_free(c);
    /* an empty table keeps the defaults */
    lua_config(cfg, sizeof(cfg), "{}");
    write_file("gatehouse.lua", cfg);
    c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_true(c->lua.budget == 0.05);
    assert_false(c->lua.jit);
    assert_false(c->lua.unsafe);
    gh_config_free(c);
}

static void test_lua_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua", BASE);
    write_file("routes/orders.lua", ROUTE);
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_true(c->lua.budget == 0.05);
    assert_false(c->lua.jit);
    assert_false(c->lua.unsafe);
    gh_config_free(c);
}

static void test_lua_errors(void **state)
{
    (void)state;
    char cfg[1024];
    lua_config(cfg, sizeof(cfg), "{ budget = -1 }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'budget' must be between");
    lua_config(cfg, sizeof(cfg), "{ budget = 61 }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'budget' must be between");
    lua_config(cfg, sizeof(cfg), "{ budget = 0/0 }"); /* NaN is in no range */
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'budget' must be between");
    lua_config(cfg, sizeof(cfg), "{ budget = 'fast' }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'budget' must be a number");
    lua_config(cfg, sizeof(cfg), "{ nope = 1 }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "unknown key 'nope'");
    lua_config(cfg, sizeof(cfg), "{ jit = 'yes' }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'jit' must be true or false");
    lua_config(cfg, sizeof(cfg), "{ unsafe = 1 }");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'unsafe' must be true or false");
    lua_config(cfg, sizeof(cfg), "0.05");
    expect_error(cfg, ROUTE, "gatehouse.lua:5:", "'lua' must be a table");
}

static void test_route_policy_functions(void **state)
{
    (void)state;
    char err[512] = "";
    write_file("gatehouse.lua", BASE);
    write_file(
        "routes/orders.lua",
        "local gh = require 'gatehouse'\n"
        "return {\n"
        "  gh.route { name = 'both', match = { path = '/both/**' }, upstream = 'orders',\n"
        "    policy = function(req, claims) end,\n"
        "    on_response = function(res, claims) end },\n"
        "  gh.route { name = 'policy', match = { path = '/policy/**' }, upstream = 'orders',\n"
        "    policy = function(req, claims) end },\n"
        "  gh.route { name = 'resp', match = { path = '/resp/**' }, upstream = 'orders',\n"
        "    on_response = function(res, claims) end },\n"
        "  gh.route { name = 'plain', match = { path = '/plain/**' }, upstream = 'orders' },\n"
        "}\n");
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    assert_int_equal(gh_router_count(c->router), 4);
    int seen = 0;
    for (size_t i = 0; i < gh_router_count(c->router); i++) {
        const gh_route_t *r = gh_router_at(c->router, i);
        if (strcmp(r->name, "both") == 0) {
            assert_true(r->policy && r->on_response);
        } else if (strcmp(r->name, "policy") == 0) {
            assert_true(r->policy && !r->on_response);
        } else if (strcmp(r->name, "resp") == 0) {
            assert_true(!r->policy && r->on_response);
        } else {
            assert_string_equal(r->name, "plain");
            assert_true(!r->policy && !r->on_response);
        }
        seen++;
    }
    assert_int_equal(seen, 4);
    gh_config_free(c);
}

static void test_route_policy_errors(void **state)
{
    (void)state;
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  policy = 5 }\n",
                 "orders.lua:3:", "'policy'");
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  policy = 'allow' }\n",
                 "orders.lua:3:", "'policy' must be a function");
    expect_error(BASE,
                 "local gh = require 'gatehouse'\n"
                 "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
                 "  on_response = {} }\n",
                 "orders.lua:3:", "'on_response' must be a function");
}

/* Route files in the order loaded (by name), policy tests and other files
 * not among them. */
static void test_route_files_in_load_order(void **state)
{
    (void)state;
    char err[512] = "", routes[300];
    write_file("gatehouse.lua", BASE);
    write_file("routes/b.lua",
               "local gh = require 'gatehouse'\n"
               "return gh.route { match = { path = '/b/**' }, upstream = 'orders' }\n");
    write_file("routes/a.lua",
               "local gh = require 'gatehouse'\n"
               "return gh.route { match = { path = '/a/**' }, upstream = 'orders' }\n");
    write_file("routes/c.lua",
               "local gh = require 'gatehouse'\n"
               "return gh.route { match = { path = '/c/**' }, upstream = 'orders' }\n");
    write_file("routes/a_test.lua", "error('not a route file')\n");
    write_file("routes/notes.txt", "not lua\n");
    gh_config_t *c = load(err, sizeof(err));
    if (!c) fail_msg("%s", err);
    snprintf(routes, sizeof(routes), "%s/routes/", dir);
    assert_non_null(c->routes_dir);
    assert_int_equal(strncmp(c->routes_dir, routes, strlen(routes) - 1), 0);
    const char *want[] = {"a.lua", "b.lua", "c.lua"};
    assert_int_equal(c->nroute_files, 3);
    for (size_t i = 0; i < 3; i++) {
        const char *f = c->route_files[i], *base = strrchr(f, '/');
        assert_non_null(base);
        assert_string_equal(base + 1, want[i]);
        assert_int_equal(strncmp(f, routes, strlen(routes) - 1), 0);
        assert_int_equal(access(f, R_OK), 0);
    }
    assert_int_equal(gh_router_count(c->router), 3);
    gh_config_free(c);
}

int main(void)
{
    setenv("GATEHOUSE_LUA_DIR", GH_LUA_DIR, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loads_routes_and_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_of_routes_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_point_at_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_and_route_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_issuer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_routes_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_roles_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_roles_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_policy_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_policy_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_files_in_load_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
