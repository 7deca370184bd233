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

static char dir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    char path[300];
    snprintf(dir, sizeof(dir), "/tmp/gh_config_test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/routes", dir);
    mkdir(path, 0700);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
