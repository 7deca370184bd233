/* Config loading for shared state (config_redis.c): the redis, revocation,
 * admin and rate_limit_keys keys of gatehouse.lua, and a route's
 * rate_limit shorthand, with the file:line errors each gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#include "config_dir.h"

static int setup(void **state)
{
    (void)state;
    return config_dir_setup("gh_config_redis_test");
}

/* gatehouse.lua with extra top-level keys from its line 6 on. */
static void write_config(const char *extra)
{
    char text[4096];
    snprintf(
        text, sizeof(text),
        "return {\n"
        "  listen = { '127.0.0.1:1' },\n"
        "  upstreams = { orders = { targets = { '127.0.0.1:2' } } },\n"
        "  issuers = { demo = { issuer = 'https://sso.example/realms/shop', audience = 'api',\n"
        "    secret = '0123456789abcdef0123456789abcdef' } },\n"
        "%s}\n",
        extra);
    write_file("gatehouse.lua", text);
}

static const char *ROUTE = "local gh = require 'gatehouse'\n"
                           "return gh.route { match = { path = '/x/**' }, upstream = 'orders' }\n";

/* A route file whose route has auth (or not) and rate_limit = { fields },
 * the rate_limit key on line 4. */
static void write_route(const char *auth, const char *fields)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "local gh = require 'gatehouse'\n"
             "return gh.route { match = { path = '/x/**' }, upstream = 'orders',\n"
             "  %s\n"
             "  rate_limit = %s }\n",
             auth, fields);
    write_file("routes/orders.lua", text);
}

static gh_config_t *load(char *err, size_t errlen)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/gatehouse.lua", dir);
    err[0] = '\0';
    return gh_config_load(path, err, errlen);
}

/* Loads gatehouse.lua with extra keys and the plain route; must succeed. */
static gh_config_t *load_ok(const char *extra, int line)
{
    char err[512];
    write_config(extra);
    write_file("routes/orders.lua", ROUTE);
    gh_config_t *cfg = load(err, sizeof(err));
    if (!cfg) fail_msg("line %d: %s", line, err);
    return cfg;
}
#define LOAD_OK(extra) load_ok(extra, __LINE__)

/* Loads what is written; expects failure with err containing both fragments. */
static void expect_failure(const char *where, const char *what, int line)
{
    char err[512];
    gh_config_t *cfg = load(err, sizeof(err));
    if (cfg) {
        gh_config_free(cfg);
        fail_msg("line %d: loaded, expected '%s'", line, what);
    }
    if (!strstr(err, where) || !strstr(err, what))
        fail_msg("line %d: error '%s' lacks '%s' or '%s'", line, err, where, what);
}

/* gatehouse.lua with extra keys must fail at where with what. */
static void expect_config_error(const char *extra, const char *where, const char *what, int line)
{
    write_config(extra);
    write_file("routes/orders.lua", ROUTE);
    expect_failure(where, what, line);
}
#define EXPECT_CONFIG_ERROR(extra, where, what) expect_config_error(extra, where, what, __LINE__)

/* ------------------------------------------------------------- redis */

static void test_no_shared_state(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("");
    assert_null(cfg->redis);
    assert_null(cfg->admin);
    assert_int_equal(cfg->rate_limit_keys, 100000);
    assert_true(cfg->revocation.deny_on_error);
    assert_true(cfg->revocation.max_stale == 30);
    assert_true(cfg->revocation.subject_ttl == 86400);
    assert_true(cfg->revocation.poll == 1);
    assert_null(gh_router_at(cfg->router, 0)->rate_limit);
    gh_config_free(cfg);
}

static void test_redis_url(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1:6390/3' },\n");
    const gh_redis_conf_t *r = cfg->redis;
    assert_non_null(r);
    assert_string_equal(r->url, "redis://127.0.0.1:6390/3");
    assert_string_equal(r->host, "127.0.0.1");
    assert_int_equal(r->port, 6390);
    assert_int_equal(r->db, 3);
    assert_null(r->user);
    assert_null(r->password);
    assert_string_equal(r->prefix, "gatehouse:");
    assert_true(r->timeout == 0.2);
    assert_int_equal(r->pool, 1);
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1' },\n");
    assert_int_equal(cfg->redis->port, 6379);
    assert_int_equal(cfg->redis->db, 0);
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://[::1]:6380/1' },\n");
    assert_string_equal(cfg->redis->host, "::1");
    assert_int_equal(cfg->redis->port, 6380);
    assert_int_equal(cfg->redis->db, 1);
    gh_config_free(cfg);
}

/* A host name is resolved at load time: hiredis gets a numeric address. */
static void test_redis_options(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  redis = { url = 'redis://localhost:6381', timeout_ms = 50,\n"
                               "    pool = 4, prefix = 'gw:' },\n");
    const gh_redis_conf_t *r = cfg->redis;
    if (strcmp(r->host, "127.0.0.1") != 0 && strcmp(r->host, "::1") != 0)
        fail_msg("localhost resolved to '%s'", r->host);
    assert_string_equal(r->url, "redis://localhost:6381");
    assert_int_equal(r->port, 6381);
    assert_true(r->timeout == 0.05);
    assert_int_equal(r->pool, 4);
    assert_string_equal(r->prefix, "gw:");
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1', timeout_ms = 1, pool = 64,\n"
                  "    prefix = '' },\n");
    assert_true(cfg->redis->timeout == 0.001);
    assert_int_equal(cfg->redis->pool, 64);
    assert_string_equal(cfg->redis->prefix, "");
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1', timeout_ms = 60000 },\n");
    assert_true(cfg->redis->timeout == 60);
    gh_config_free(cfg);
}

/* The password is kept for AUTH but never shown in the url used for logs. */
static void test_redis_password_hidden(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  redis = { url = 'redis://bob:hunter2@127.0.0.1:6379/1' },\n");
    const gh_redis_conf_t *r = cfg->redis;
    assert_string_equal(r->user, "bob");
    assert_string_equal(r->password, "hunter2");
    assert_string_equal(r->host, "127.0.0.1");
    assert_int_equal(r->db, 1);
    assert_null(strstr(r->url, "hunter2"));
    assert_non_null(strstr(r->url, "***"));
    assert_string_equal(r->url, "redis://***@127.0.0.1:6379/1");
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://:hunter2@127.0.0.1' },\n");
    assert_null(cfg->redis->user);
    assert_string_equal(cfg->redis->password, "hunter2");
    assert_null(strstr(cfg->redis->url, "hunter2"));
    gh_config_free(cfg);

    /* `password` overrides the url's */
    cfg = LOAD_OK("  redis = { url = 'redis://:old@127.0.0.1', password = 'new' },\n");
    assert_string_equal(cfg->redis->password, "new");
    assert_null(strstr(cfg->redis->url, "old"));
    gh_config_free(cfg);

    /* and stands alone; it is not in the url in the first place */
    cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1', password = 'sesame' },\n");
    assert_string_equal(cfg->redis->password, "sesame");
    assert_null(cfg->redis->user);
    assert_string_equal(cfg->redis->url, "redis://127.0.0.1");
    gh_config_free(cfg);
}

static void test_redis_errors(void **state)
{
    (void)state;
    EXPECT_CONFIG_ERROR("  redis = 'redis://127.0.0.1',\n",
                        "gatehouse.lua:6:", "'redis' must be a table");
    EXPECT_CONFIG_ERROR("  redis = true,\n", "gatehouse.lua:6:", "'redis' must be a table");
    EXPECT_CONFIG_ERROR("  redis = {\n    pool = 2 },\n", "gatehouse.lua:6:", "needs 'url'");
    EXPECT_CONFIG_ERROR("  redis = {},\n", "gatehouse.lua:6:", "needs 'url'");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'http://127.0.0.1' },\n",
                        "gatehouse.lua:7:", "must start with redis://");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'redis://127.0.0.1:0' },\n",
                        "gatehouse.lua:7:", "bad port");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'redis://127.0.0.1/x' },\n",
                        "gatehouse.lua:7:", "bad database number");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'redis://:6379' },\n",
                        "gatehouse.lua:7:", "no host");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'redis://u:pw@' },\n",
                        "gatehouse.lua:7:", "no host");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 'redis://no-such-host.invalid' },\n",
                        "gatehouse.lua:7:", "redis.url:");
    EXPECT_CONFIG_ERROR("  redis = {\n    url = 5 },\n",
                        "gatehouse.lua:7:", "'url' must be a string");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    tmeout_ms = 5 },\n",
                        "gatehouse.lua:7:", "unknown key 'tmeout_ms'");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    timeout_ms = 0 },\n",
                        "gatehouse.lua:7:", "'timeout_ms' must be between 1 and 60000, got 0");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    timeout_ms = 60001 },\n",
                        "gatehouse.lua:7:", "'timeout_ms' must be between 1 and 60000");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    timeout_ms = 0/0 },\n",
                        "gatehouse.lua:7:", "'timeout_ms' must be between");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    timeout_ms = '200' },\n",
                        "gatehouse.lua:7:", "'timeout_ms' must be a number");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    pool = 0 },\n",
                        "gatehouse.lua:7:", "'pool' must be between 1 and 64");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    pool = 65 },\n",
                        "gatehouse.lua:7:", "'pool' must be between 1 and 64");
    /* (these two point at the redis table, not at their own line) */
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    prefix = 1 },\n",
                        "gatehouse.lua:", "'prefix' must be a string");
    EXPECT_CONFIG_ERROR("  redis = { url = 'redis://127.0.0.1',\n    password = {} },\n",
                        "gatehouse.lua:", "'password' must be a string");
    /* a misspelt top-level key */
    EXPECT_CONFIG_ERROR("  reddis = { url = 'redis://127.0.0.1' },\n",
                        "gatehouse.lua:6:", "unknown key 'reddis'");
}

/* A url that fails to parse is not echoed with its password in the error
 * (config errors go to the log like everything else). */
static void test_redis_error_hides_password(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "redis://:hunter2@127.0.0.1:0",   "redis://bob:hunter2@127.0.0.1/x",
        "redis://bob:hunter2@",           "redis://bob:hunter2@no-such-host.invalid",
        "rediss://bob:hunter2@127.0.0.1",
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        char extra[256], err[512];
        snprintf(extra, sizeof(extra), "  redis = { url = '%s' },\n", urls[i]);
        write_config(extra);
        write_file("routes/orders.lua", ROUTE);
        gh_config_t *cfg = load(err, sizeof(err));
        if (cfg) gh_config_free(cfg);
        assert_null(cfg);
        if (strstr(err, "hunter2"))
            fail_msg("'%s': the error shows the password: %s", urls[i], err);
    }
}

/* -------------------------------------------------------- revocation */

static void test_revocation(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  revocation = {},\n");
    assert_true(cfg->revocation.deny_on_error);
    assert_true(cfg->revocation.max_stale == 30);
    assert_true(cfg->revocation.subject_ttl == 86400);
    assert_true(cfg->revocation.poll == 1);
    gh_config_free(cfg);

    cfg = LOAD_OK("  redis = { url = 'redis://127.0.0.1' },\n"
                  "  revocation = { on_error = 'allow', max_stale = 5, subject_ttl = 3600,\n"
                  "    poll = 0.5 },\n");
    assert_false(cfg->revocation.deny_on_error);
    assert_true(cfg->revocation.max_stale == 5);
    assert_true(cfg->revocation.subject_ttl == 3600);
    assert_true(cfg->revocation.poll == 0.5);
    gh_config_free(cfg);

    cfg = LOAD_OK("  revocation = { on_error = 'deny', max_stale = 0.2, poll = 0.1 },\n");
    assert_true(cfg->revocation.deny_on_error);
    assert_true(cfg->revocation.max_stale == 0.2);
    gh_config_free(cfg);
}

static void test_revocation_errors(void **state)
{
    (void)state;
    EXPECT_CONFIG_ERROR("  revocation = {\n    on_error = 'maybe' },\n", "gatehouse.lua:7:",
                        "'on_error' must be \"deny\" or \"allow\", got \"maybe\"");
    EXPECT_CONFIG_ERROR("  revocation = {\n    on_error = 'Allow' },\n",
                        "gatehouse.lua:7:", "'on_error' must be");
    EXPECT_CONFIG_ERROR("  revocation = {\n    on_error = true },\n",
                        "gatehouse.lua:7:", "'on_error' must be a string");
    EXPECT_CONFIG_ERROR("  revocation = {\n    max_stale = 1 },\n", "gatehouse.lua:7:",
                        "revocation.max_stale (1) must be at least twice revocation.poll (1)");
    EXPECT_CONFIG_ERROR("  revocation = 'deny',\n",
                        "gatehouse.lua:6:", "'revocation' must be a table");
    EXPECT_CONFIG_ERROR("  revocation = {\n    polll = 1 },\n",
                        "gatehouse.lua:7:", "unknown key 'polll'");
    EXPECT_CONFIG_ERROR("  revocation = {\n    poll = 0 },\n",
                        "gatehouse.lua:7:", "'poll' must be between");
    EXPECT_CONFIG_ERROR("  revocation = {\n    max_stale = -1 },\n",
                        "gatehouse.lua:7:", "'max_stale' must be between");
    EXPECT_CONFIG_ERROR("  revocation = {\n    subject_ttl = 0 },\n",
                        "gatehouse.lua:7:", "'subject_ttl' must be between");
}

/* ------------------------------------------------------------- admin */

static int port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void test_admin(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  admin = true,\n");
    assert_non_null(cfg->admin);
    assert_string_equal(cfg->admin->text, "127.0.0.1:9901");
    assert_int_equal(cfg->admin->addr.ss_family, AF_INET);
    assert_int_equal(port_of(&cfg->admin->addr), 9901);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&cfg->admin->addr;
    assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    gh_config_free(cfg);

    cfg = LOAD_OK("  admin = false,\n");
    assert_null(cfg->admin);
    gh_config_free(cfg);

    cfg = LOAD_OK("  admin = '127.0.0.1:9000',\n");
    assert_string_equal(cfg->admin->text, "127.0.0.1:9000");
    assert_int_equal(port_of(&cfg->admin->addr), 9000);
    gh_config_free(cfg);

    cfg = LOAD_OK("  admin = '[::1]:9002',\n");
    assert_int_equal(cfg->admin->addr.ss_family, AF_INET6);
    assert_int_equal(port_of(&cfg->admin->addr), 9002);
    assert_null(cfg->admin_token);
    gh_config_free(cfg);

    cfg = LOAD_OK("  admin = { token = '0123456789abcdef' },\n");
    assert_int_equal(port_of(&cfg->admin->addr), 9901); /* listen defaults too */
    assert_string_equal(cfg->admin_token, "0123456789abcdef");
    gh_config_free(cfg);

    cfg = LOAD_OK("  admin = { listen = '127.0.0.1:9003' },\n");
    assert_int_equal(port_of(&cfg->admin->addr), 9003);
    assert_null(cfg->admin_token);
    gh_config_free(cfg);
}

static void test_admin_errors(void **state)
{
    (void)state;
    EXPECT_CONFIG_ERROR("  admin = 'nonsense',\n", "gatehouse.lua:6:", "admin:");
    EXPECT_CONFIG_ERROR("  admin = '127.0.0.1:99999',\n", "gatehouse.lua:6:", "admin:");
    EXPECT_CONFIG_ERROR("  admin = '',\n", "gatehouse.lua:6:", "admin:");
    EXPECT_CONFIG_ERROR("  admin = 9901,\n", "gatehouse.lua:6:", "'admin' must be an address");
    EXPECT_CONFIG_ERROR("  admin = { '127.0.0.1:9901' },\n",
                        "gatehouse.lua:6:", "non-string key in admin");
    EXPECT_CONFIG_ERROR("  admin = { listen = '127.0.0.1:9901', token = 'short' },\n",
                        "gatehouse.lua:6:", "at least 16 characters");
    EXPECT_CONFIG_ERROR("  admin = { token = '0123456789abcdef', token_file = 'x' },\n",
                        "gatehouse.lua:6:", "not both");
    EXPECT_CONFIG_ERROR("  admin = { token_file = 'no-such-file' },\n",
                        "gatehouse.lua:6:", "cannot read");
    EXPECT_CONFIG_ERROR("  admin = { listen = '127.0.0.1:9901', tokn = 'x' },\n",
                        "gatehouse.lua:6:", "tokn");
}

static void test_rate_limit_keys(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_OK("  rate_limit_keys = 5000,\n");
    assert_int_equal(cfg->rate_limit_keys, 5000);
    gh_config_free(cfg);
    EXPECT_CONFIG_ERROR("  rate_limit_keys = 10,\n",
                        "gatehouse.lua:6:", "'rate_limit_keys' must be between");
    EXPECT_CONFIG_ERROR("  rate_limit_keys = 'many',\n",
                        "gatehouse.lua:6:", "'rate_limit_keys' must be a number");
}

/* -------------------------------------------------------- rate_limit */

static const char *REDIS = "  redis = { url = 'redis://127.0.0.1' },\n";

/* Loads the config (extra keys) and one route with auth and rate_limit. */
static gh_config_t *load_route(const char *extra, const char *auth, const char *fields, int line)
{
    char err[512];
    write_config(extra);
    write_route(auth, fields);
    gh_config_t *cfg = load(err, sizeof(err));
    if (!cfg) fail_msg("line %d: %s", line, err);
    assert_non_null(gh_router_at(cfg->router, 0)->rate_limit);
    return cfg;
}
#define LOAD_ROUTE(extra, auth, fields) load_route(extra, auth, fields, __LINE__)
#define LIMIT(cfg)                      (gh_router_at((cfg)->router, 0)->rate_limit)

static void expect_route_error(const char *extra, const char *auth, const char *fields,
                               const char *where, const char *what, int line)
{
    write_config(extra);
    write_route(auth, fields);
    expect_failure(where, what, line);
}
#define EXPECT_ROUTE_ERROR(auth, fields, where, what)                                              \
    expect_route_error("", auth, fields, where, what, __LINE__)

static void test_route_limit_defaults(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_ROUTE("", "", "{ rate = 10 }");
    const gh_route_limit_t *l = LIMIT(cfg);
    assert_int_equal(l->by, GH_LIMIT_BY_IP);
    assert_null(l->by_name);
    assert_true(l->rate == 10);
    assert_true(l->per == 1);
    assert_true(l->burst == 10); /* burst defaults to rate */
    assert_false(l->global);     /* no redis: local */
    assert_false(l->deny_on_error);
    assert_false(l->headers);
    assert_string_equal(l->name, "default");
    gh_config_free(cfg);

    /* with redis the default scope is global; scope = 'local' keeps it local */
    cfg = LOAD_ROUTE(REDIS, "", "{ rate = 10, by = 'ip' }");
    assert_true(LIMIT(cfg)->global);
    assert_int_equal(LIMIT(cfg)->by, GH_LIMIT_BY_IP);
    gh_config_free(cfg);
    cfg = LOAD_ROUTE(REDIS, "", "{ rate = 10, scope = 'local' }");
    assert_false(LIMIT(cfg)->global);
    gh_config_free(cfg);
    cfg = LOAD_ROUTE("", "", "{ rate = 10, scope = 'global' }");
    assert_true(LIMIT(cfg)->global); /* asked for; kept locally without redis */
    gh_config_free(cfg);

    /* a rate under one a period still allows one request at once */
    cfg = LOAD_ROUTE("", "", "{ rate = 0.5, per = 60 }");
    assert_true(LIMIT(cfg)->burst == 1);
    assert_true(LIMIT(cfg)->per == 60);
    gh_config_free(cfg);
}

static void test_route_limit_full(void **state)
{
    (void)state;
    gh_config_t *cfg = LOAD_ROUTE(REDIS, "auth = 'demo',",
                                  "{ by = 'sub', rate = 100, per = 60, burst = 20,\n"
                                  "    scope = 'local', on_error = 'deny', headers = true,\n"
                                  "    name = 'per-user' }");
    const gh_route_limit_t *l = LIMIT(cfg);
    assert_int_equal(l->by, GH_LIMIT_BY_SUB);
    assert_null(l->by_name);
    assert_true(l->rate == 100);
    assert_true(l->per == 60);
    assert_true(l->burst == 20);
    assert_false(l->global);
    assert_true(l->deny_on_error);
    assert_true(l->headers);
    assert_string_equal(l->name, "per-user");
    assert_int_equal(gh_router_at(cfg->router, 0)->issuer, 0);
    gh_config_free(cfg);

    cfg = LOAD_ROUTE("", "", "{ by = 'header:X-Api-Key', rate = 5, on_error = 'allow' }");
    assert_int_equal(LIMIT(cfg)->by, GH_LIMIT_BY_HEADER);
    assert_string_equal(LIMIT(cfg)->by_name, "X-Api-Key");
    assert_false(LIMIT(cfg)->deny_on_error);
    gh_config_free(cfg);

    cfg = LOAD_ROUTE("", "auth = 'demo',", "{ by = 'claim:azp', rate = 5 }");
    assert_int_equal(LIMIT(cfg)->by, GH_LIMIT_BY_CLAIM);
    assert_string_equal(LIMIT(cfg)->by_name, "azp");
    gh_config_free(cfg);

    /* by ip or header with auth on the route: fine too */
    cfg = LOAD_ROUTE("", "auth = 'demo',", "{ by = 'ip', rate = 5 }");
    assert_int_equal(LIMIT(cfg)->by, GH_LIMIT_BY_IP);
    gh_config_free(cfg);
}

static void test_route_limit_errors(void **state)
{
    (void)state;
    /* by = sub or claim needs auth; the error points at `by` */
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'sub' }",
                       "orders.lua:5:", "rate_limit.by = \"sub\" needs 'auth' on the route");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'claim:azp' }", "orders.lua:5:", "needs 'auth'");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'cookie:sid' }", "orders.lua:5:",
                       "rate_limit.by must be \"ip\", \"sub\", \"header:Name\" or \"claim:name\"");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'header:' }",
                       "orders.lua:5:", "rate_limit.by must be");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'header:Bad Name' }",
                       "orders.lua:5:", "rate_limit.by must be");
    EXPECT_ROUTE_ERROR("auth = 'demo',", "{ rate = 10,\n    by = 'claim:' }",
                       "orders.lua:5:", "rate_limit.by must be");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 'IP' }",
                       "orders.lua:5:", "rate_limit.by must be");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    by = 1 }", "orders.lua:", "'by' must be a string");

    /* rate is required and positive; per and burst in range */
    EXPECT_ROUTE_ERROR("", "{ by = 'ip' }", "orders.lua:4:", "rate_limit needs 'rate'");
    EXPECT_ROUTE_ERROR("", "{ per = 60 }", "orders.lua:4:", "needs 'rate'");
    EXPECT_ROUTE_ERROR("", "{}", "orders.lua:4:", "needs 'rate'");
    EXPECT_ROUTE_ERROR("", "{ rate = 0 }", "orders.lua:4:", "'rate' must be between");
    EXPECT_ROUTE_ERROR("", "{ rate = -1 }", "orders.lua:4:", "'rate' must be between");
    EXPECT_ROUTE_ERROR("", "{ rate = 10, per = 0 }", "orders.lua:4:", "'per' must be between");
    EXPECT_ROUTE_ERROR("", "{ rate = 10, burst = 0 }", "orders.lua:4:", "'burst' must be between");
    EXPECT_ROUTE_ERROR("", "{ rate = '10' }", "orders.lua:4:", "'rate' must be a number");

    /* the rest */
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    burts = 20 }",
                       "orders.lua:5:", "unknown key 'burts'");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    scope = 'everywhere' }", "orders.lua:5:",
                       "'scope' must be \"global\" or \"local\", got \"everywhere\"");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    on_error = 'maybe' }",
                       "orders.lua:5:", "'on_error' must be \"deny\" or \"allow\"");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    headers = 'yes' }", "orders.lua:", "headers");
    EXPECT_ROUTE_ERROR("", "{ rate = 10,\n    name = 5 }",
                       "orders.lua:", "'name' must be a string");
    EXPECT_ROUTE_ERROR("", "5", "orders.lua:4:", "'rate_limit' must be a table");
    EXPECT_ROUTE_ERROR("", "'ip'", "orders.lua:4:", "'rate_limit' must be a table");
}

int main(void)
{
    setenv("GATEHOUSE_LUA_DIR", GH_LUA_DIR, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_shared_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_password_hidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_error_hides_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_limit_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_limit_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_limit_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
