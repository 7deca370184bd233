/* The config of shared state: redis, revocation, the admin listener, and
 * routes' rate_limit shorthand. */
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "config.h"
#include "config_read.h"
#include "headers.h"

#define ADMIN_DEFAULT "127.0.0.1:9901"

/* A string field that must be one of two words; *out is true for `yes`. */
static int get_choice(gh_cfg_ctx_t *c, int idx, const char *key, const char *yes, const char *no,
                      bool *out, const char *const *keys)
{
    char *s = NULL;
    if (gh_cfg_string(c, idx, key, &s, keys)) return -1;
    int rc = 0;
    if (s && strcmp(s, yes) == 0)
        *out = true;
    else if (s && strcmp(s, no) == 0)
        *out = false;
    else if (s)
        rc = gh_cfg_fail(c, keys, "'%s' must be \"%s\" or \"%s\", got \"%s\"", key, yes, no, s);
    free(s);
    return rc;
}

/* The url's host as a numeric address (hiredis resolves names blocking). */
static int redis_host(gh_cfg_ctx_t *c, gh_redis_conf_t *r, const char *const *keys)
{
    char text[96], why[300];
    struct sockaddr_storage ss;
    snprintf(text, sizeof(text), "%s%s%s:%d", strchr(r->host, ':') ? "[" : "", r->host,
             strchr(r->host, ':') ? "]" : "", r->port);
    if (gh_config_parse_addr(text, false, &ss, why, sizeof(why)))
        return gh_cfg_fail(c, keys, "redis.url: %s", why);
    const void *a = ss.ss_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    inet_ntop(ss.ss_family, a, r->host, sizeof(r->host));
    return 0;
}

/* redis = { url, password, timeout_ms, pool, prefix } */
static int parse_redis(gh_cfg_ctx_t *c, int t, gh_config_t *cfg)
{
    static const char *const allowed[] = {"url", "password", "timeout_ms", "pool", "prefix", NULL};
    const char *keys[] = {"redis", NULL}, *ukeys[] = {"redis", "url", NULL};
    gh_redis_conf_t *r = cfg->redis = calloc(1, sizeof(*r));
    char *url = NULL, *password = NULL, why[300];
    double timeout = 200, pool = 1;
    if (gh_cfg_keys(c, t, allowed, keys) || gh_cfg_string(c, t, "url", &url, ukeys) ||
        gh_cfg_string(c, t, "password", &password,
                      (const char *const[]){"redis", "password", NULL}) ||
        gh_cfg_string(c, t, "prefix", &r->prefix, (const char *const[]){"redis", "prefix", NULL}) ||
        gh_cfg_number(c, t, "timeout_ms", 1, 60000, &timeout, "redis") ||
        gh_cfg_number(c, t, "pool", 1, 64, &pool, "redis"))
        goto fail;
    if (!url) {
        gh_cfg_fail(c, keys, "'redis' needs 'url', e.g. \"redis://127.0.0.1:6379\"");
        goto fail;
    }
    if (gh_redis_parse_url(r, url, why, sizeof(why))) {
        gh_cfg_fail(c, ukeys, "%s", why);
        goto fail;
    }
    if (redis_host(c, r, ukeys)) goto fail;
    if (password) free(r->password), r->password = password, password = NULL;
    char shown[256]; /* logs never show the password */
    gh_redis_url_masked(url, shown, sizeof(shown));
    r->url = strdup(shown);
    if (!r->prefix) r->prefix = strdup("gatehouse:");
    r->timeout = timeout / 1000;
    r->pool = (int)pool;
    free(url);
    return 0;
fail:
    free(url);
    free(password);
    return -1;
}

/* revocation = { on_error, max_stale, subject_ttl, poll } */
static int parse_revocation(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    static const char *const allowed[] = {"on_error", "max_stale", "subject_ttl", "poll", NULL};
    const char *keys[] = {"revocation", NULL};
    gh_revocation_conf_t *v = &cfg->revocation;
    *v = (gh_revocation_conf_t){
        .deny_on_error = true, .max_stale = 30, .subject_ttl = 86400, .poll = 1};
    lua_getfield(c->L, idx, "revocation");
    int t = lua_gettop(c->L), rc = 0;
    if (!lua_isnil(c->L, t) && !lua_istable(c->L, t))
        rc = gh_cfg_fail(c, keys, "'revocation' must be a table");
    else if (lua_istable(c->L, t))
        rc = gh_cfg_keys(c, t, allowed, keys) ||
             get_choice(c, t, "on_error", "deny", "allow", &v->deny_on_error,
                        (const char *const[]){"revocation", "on_error", NULL}) ||
             gh_cfg_number(c, t, "max_stale", 0, 86400, &v->max_stale, "revocation") ||
             gh_cfg_number(c, t, "subject_ttl", 1, 365 * 86400.0, &v->subject_ttl, "revocation") ||
             gh_cfg_number(c, t, "poll", 0.05, 3600, &v->poll, "revocation");
    if (!rc && v->max_stale < 2 * v->poll)
        rc = gh_cfg_fail(c, (const char *const[]){"revocation", "max_stale", NULL},
                         "revocation.max_stale (%g) must be at least twice revocation.poll (%g): "
                         "the list is heard from once a poll",
                         v->max_stale, v->poll);
    lua_settop(c->L, t - 1);
    return rc ? -1 : 0;
}

/* admin = { listen = "host:port", token = "..." | token_file = "path" }:
 * a bearer token every admin call but /health must carry. */
static int admin_table(gh_cfg_ctx_t *c, int t, gh_config_t *cfg, char **listen)
{
    static const char *const allowed[] = {"listen", "token", "token_file", NULL};
    const char *keys[] = {"admin", NULL}, *tkeys[] = {"admin", "token", NULL};
    const char *fkeys[] = {"admin", "token_file", NULL};
    char *file = NULL;
    int rc =
        gh_cfg_keys(c, t, allowed, keys) ||
        gh_cfg_string(c, t, "listen", listen, (const char *const[]){"admin", "listen", NULL}) ||
        gh_cfg_string(c, t, "token", &cfg->admin_token, tkeys) ||
        gh_cfg_string(c, t, "token_file", &file, fkeys);
    if (!rc && file && cfg->admin_token) {
        rc = gh_cfg_fail(c, fkeys, "give admin.token or admin.token_file, not both");
    } else if (!rc && file) {
        char path[4096];
        gh_cfg_resolve(cfg, file, path, sizeof(path));
        cfg->admin_token = gh_cfg_read_file(path);
        if (!cfg->admin_token)
            rc = gh_cfg_fail(c, fkeys, "admin.token_file: cannot read %s: %s", path,
                             strerror(errno));
        else /* the file's last line break is not part of the token */
            cfg->admin_token[strcspn(cfg->admin_token, "\r\n")] = '\0';
    }
    if (!rc && cfg->admin_token && strlen(cfg->admin_token) < 16)
        rc = gh_cfg_fail(c, file ? fkeys : tkeys, "the admin token must be at least 16 characters");
    free(file);
    if (!rc && !*listen) *listen = strdup(ADMIN_DEFAULT);
    return rc ? -1 : 0;
}

/* admin = "host:port" | true (127.0.0.1:9901) | { listen, token } | false/nil (none) */
static int parse_admin(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"admin", NULL};
    lua_getfield(c->L, idx, "admin");
    int t = lua_type(c->L, -1);
    char *listen = NULL;
    int rc = t == LUA_TTABLE ? admin_table(c, lua_gettop(c->L), cfg, &listen) : 0;
    const char *text = t == LUA_TSTRING                               ? lua_tostring(c->L, -1)
                       : t == LUA_TBOOLEAN && lua_toboolean(c->L, -1) ? ADMIN_DEFAULT
                                                                      : listen;
    char why[300];
    if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TBOOLEAN && t != LUA_TTABLE) {
        rc = gh_cfg_fail(c, keys,
                         "'admin' must be an address such as \"%s\" or a table { listen, token }",
                         ADMIN_DEFAULT);
    } else if (!rc && text) {
        cfg->admin = calloc(1, sizeof(*cfg->admin));
        cfg->admin->text = strdup(text);
        if (gh_config_parse_addr(text, true, &cfg->admin->addr, why, sizeof(why)))
            rc = gh_cfg_fail(c, keys, "admin: %s", why);
    }
    free(listen);
    lua_pop(c->L, 1);
    return rc;
}

int gh_cfg_shared_state(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"redis", NULL};
    double nkeys = 100000;
    lua_getfield(c->L, idx, "redis");
    int t = lua_gettop(c->L), rc = 0;
    if (!lua_isnil(c->L, t) && !lua_istable(c->L, t))
        rc = gh_cfg_fail(c, keys, "'redis' must be a table such as { url = \"redis://...\" }");
    else if (lua_istable(c->L, t))
        rc = parse_redis(c, t, cfg);
    lua_settop(c->L, t - 1);
    if (rc || parse_revocation(c, idx, cfg) || parse_admin(c, idx, cfg) ||
        gh_cfg_number(c, idx, "rate_limit_keys", 1000, 1e8, &nkeys, NULL))
        return -1;
    cfg->rate_limit_keys = (size_t)nkeys;
    return 0;
}

/* by = "ip" | "sub" | "header:Name" | "claim:name" */
static int limit_by(gh_cfg_ctx_t *c, const char *by, gh_route_limit_t *l, bool auth)
{
    const char *keys[] = {"rate_limit", "by", NULL};
    if (strcmp(by, "ip") == 0) {
        l->by = GH_LIMIT_BY_IP;
    } else if (strcmp(by, "sub") == 0) {
        l->by = GH_LIMIT_BY_SUB;
    } else if (strncmp(by, "header:", 7) == 0 && gh_hdr_name_valid(by + 7, strlen(by + 7))) {
        l->by = GH_LIMIT_BY_HEADER;
        l->by_name = strdup(by + 7);
    } else if (strncmp(by, "claim:", 6) == 0 && by[6]) {
        l->by = GH_LIMIT_BY_CLAIM;
        l->by_name = strdup(by + 6);
    } else {
        return gh_cfg_fail(c, keys,
                           "rate_limit.by must be \"ip\", \"sub\", \"header:Name\" or "
                           "\"claim:name\", got \"%s\"",
                           by);
    }
    if ((l->by == GH_LIMIT_BY_SUB || l->by == GH_LIMIT_BY_CLAIM) && !auth)
        return gh_cfg_fail(c, keys, "rate_limit.by = \"%s\" needs 'auth' on the route", by);
    return 0;
}

static int limit_fields(gh_cfg_ctx_t *c, int t, gh_route_limit_t *l, bool auth, bool redis)
{
    static const char *const allowed[] = {"by",       "rate",    "per",  "burst", "scope",
                                          "on_error", "headers", "name", NULL};
    const char *keys[] = {"rate_limit", NULL};
    char *by = NULL;
    l->per = 1;
    l->global = redis;
    int rc = gh_cfg_keys(c, t, allowed, keys) || gh_cfg_string(c, t, "by", &by, keys) ||
             gh_cfg_number(c, t, "rate", 1e-9, 1e9, &l->rate, "rate_limit") ||
             gh_cfg_number(c, t, "per", 1e-3, 1e9, &l->per, "rate_limit") ||
             gh_cfg_number(c, t, "burst", 1, 1e9, &l->burst, "rate_limit") ||
             get_choice(c, t, "scope", "global", "local", &l->global,
                        (const char *const[]){"rate_limit", "scope", NULL}) ||
             get_choice(c, t, "on_error", "deny", "allow", &l->deny_on_error,
                        (const char *const[]){"rate_limit", "on_error", NULL}) ||
             gh_cfg_bool(c, t, "headers", &l->headers, keys) ||
             gh_cfg_string(c, t, "name", &l->name, keys);
    if (!rc && l->rate == 0)
        rc = gh_cfg_fail(c, keys, "rate_limit needs 'rate' (requests per 'per' seconds)");
    if (!rc) rc = limit_by(c, by ? by : "ip", l, auth);
    if (!rc && l->burst == 0) l->burst = l->rate < 1 ? 1 : l->rate;
    if (!rc && !l->name) l->name = strdup("default");
    free(by);
    return rc ? -1 : 0;
}

int gh_cfg_route_limit(gh_cfg_ctx_t *c, int idx, const gh_config_t *cfg, gh_route_t *r)
{
    const char *keys[] = {"rate_limit", NULL};
    lua_getfield(c->L, idx, "rate_limit");
    int t = lua_gettop(c->L), rc = 0;
    if (!lua_isnil(c->L, t) && !lua_istable(c->L, t)) {
        rc =
            gh_cfg_fail(c, keys, "'rate_limit' must be a table such as { by = \"ip\", rate = 10 }");
    } else if (lua_istable(c->L, t)) {
        r->rate_limit = calloc(1, sizeof(*r->rate_limit));
        rc = limit_fields(c, t, r->rate_limit, r->issuer >= 0, cfg->redis != NULL);
    }
    lua_settop(c->L, t - 1);
    return rc;
}

void gh_cfg_shared_state_free(gh_config_t *cfg)
{
    if (cfg->redis) {
        free(cfg->redis->url);
        free(cfg->redis->user);
        free(cfg->redis->password);
        free(cfg->redis->prefix);
        free(cfg->redis);
    }
    free(cfg->admin_token);
    if (cfg->admin) free(cfg->admin->text);
    free(cfg->admin);
}
