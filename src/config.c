#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <luajit.h>
#include <llhttp.h>
#include <lua.h>
#include <lualib.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config_read.h"
#include "log.h"
#include "http_client.h"

#define MAX_PATH_KEYS 4

char *gh_cfg_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *t = realloc(s, cap *= 2);
            if (!t) free(s);
            s = t;
        }
    }
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

static int is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Finds where `key =` (or ["key"] / "key") next appears at or after from;
 * returns its offset or -1. A heuristic: Lua keeps no positions for table
 * fields, so errors point at the first plausible spelling. */
static long find_key(const char *src, long from, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = src + from; (p = strstr(p, key)) != NULL; p += klen) {
        int quoted = p > src && (p[-1] == '"' || p[-1] == '\'');
        if (!quoted && ((p > src && is_ident(p[-1])) || is_ident(p[klen]))) continue;
        const char *q = p + klen + (quoted ? 1 : 0);
        while (*q == ' ' || *q == '\t' || *q == ']') q++;
        if (*q == '=' || quoted) return p - src;
    }
    return -1;
}

static int line_of(const gh_cfg_ctx_t *c, const char *const *keys)
{
    if (!c->src) return 1;
    long pos = c->from, found = c->from;
    for (int i = 0; keys && keys[i]; i++) {
        long at = find_key(c->src, pos, keys[i]);
        if (at < 0) break;
        found = pos = at;
    }
    int line = 1;
    for (long i = 0; i < found; i++)
        if (c->src[i] == '\n') line++;
    return line;
}

/* Writes "file:line: message" for the key path and returns -1. */
int gh_cfg_fail(gh_cfg_ctx_t *c, const char *const *keys, const char *fmt, ...)
{
    int n = snprintf(c->err, c->errlen, "%s:%d: ", c->file, line_of(c, keys));
    if (n < 0 || (size_t)n >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Refuses any key of the table at idx not in allowed (typos are errors). */
int gh_cfg_keys(gh_cfg_ctx_t *c, int idx, const char *const *allowed, const char *const *where)
{
    lua_State *L = c->L;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return gh_cfg_fail(c, where, "unexpected non-string key in %s",
                               where[0] ? where[0] : "config");
        }
        const char *k = lua_tostring(L, -1);
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= strcmp(k, allowed[i]) == 0;
        if (!ok) {
            const char *keys[] = {k, NULL};
            gh_cfg_fail(c, keys, "unknown key '%s'", k);
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}

/* Reads a number field into *out (keeping the default when absent) and
 * checks it lies in [min, max]. */
int gh_cfg_number(gh_cfg_ctx_t *c, int idx, const char *key, double min, double max, double *out,
                  const char *parent)
{
    const char *keys[] = {parent ? parent : key, parent ? key : NULL, NULL};
    lua_getfield(c->L, idx, key);
    int t = lua_type(c->L, -1);
    if (t == LUA_TNUMBER) *out = lua_tonumber(c->L, -1);
    lua_pop(c->L, 1);
    if (t == LUA_TNIL) return 0;
    if (t != LUA_TNUMBER) return gh_cfg_fail(c, keys, "'%s' must be a number", key);
    if (!(*out >= min && *out <= max)) /* NaN too */
        return gh_cfg_fail(c, keys, "'%s' must be between %g and %g, got %g", key, min, max, *out);
    return 0;
}

/* Reads an optional string field: a malloc'd copy in *out, NULL when absent. */
int gh_cfg_string(gh_cfg_ctx_t *c, int idx, const char *key, char **out, const char *const *keys)
{
    lua_getfield(c->L, idx, key);
    int t = lua_type(c->L, -1);
    if (t == LUA_TSTRING) *out = strdup(lua_tostring(c->L, -1));
    lua_pop(c->L, 1);
    if (t != LUA_TNIL && t != LUA_TSTRING)
        return gh_cfg_fail(c, keys, "'%s' must be a string", key);
    return 0;
}

int gh_config_parse_addr(const char *text, bool passive, struct sockaddr_storage *addr, char *err,
                         size_t errlen)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || !colon[1]) {
        snprintf(err, errlen, "address '%s' must be host:port", text);
        return -1;
    }
    size_t hlen = (size_t)(colon - text);
    const char *h = text;
    if (text[0] == '[') {
        if (colon[-1] != ']') {
            snprintf(err, errlen, "address '%s': IPv6 must be written [addr]:port", text);
            return -1;
        }
        h++, hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "address '%s' has no host", text);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) {
        snprintf(err, errlen, "address '%s': port must be 1-65535", text);
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "address '%s': %s", text, gai_strerror(rc));
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Reads a list of strings at key into a malloc'd array of malloc'd strings. */
static int get_string_list(gh_cfg_ctx_t *c, int idx, const char *key, char ***out, size_t *n,
                           const char *const *keys)
{
    lua_State *L = c->L;
    *out = NULL;
    *n = 0;
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) == LUA_TSTRING) { /* a single string is a list of one */
        *out = calloc(1, sizeof(char *));
        (*out)[0] = strdup(lua_tostring(L, -1));
        *n = 1;
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return gh_cfg_fail(c, keys, "'%s' must be a list of strings", key);
    }
    size_t len = lua_objlen(L, -1);
    *out = calloc(len ? len : 1, sizeof(char *));
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            return gh_cfg_fail(c, keys, "'%s' item %zu must be a string", key, i);
        }
        (*out)[(*n)++] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int parse_listen(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"listen", NULL};
    char **list;
    size_t n;
    if (get_string_list(c, idx, "listen", &list, &n, keys)) return -1;
    if (n == 0) {
        free(list);
        return gh_cfg_fail(c, keys,
                           "'listen' must name at least one address, e.g. \"127.0.0.1:8080\"");
    }
    cfg->listen = calloc(n, sizeof(*cfg->listen));
    cfg->nlisten = n;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char why[300];
        cfg->listen[i].text = list[i];
        if (!rc && gh_config_parse_addr(list[i], true, &cfg->listen[i].addr, why, sizeof(why)))
            rc = gh_cfg_fail(c, keys, "listen: %s", why);
    }
    free(list);
    return rc;
}

static int parse_workers(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"workers", NULL};
    lua_getfield(c->L, idx, "workers");
    int t = lua_type(c->L, -1);
    double v = t == LUA_TNUMBER ? lua_tonumber(c->L, -1) : 0;
    int is_auto = t == LUA_TSTRING && strcmp(lua_tostring(c->L, -1), "auto") == 0;
    lua_pop(c->L, 1);
    if (t == LUA_TNIL || is_auto) {
        cfg->workers = (int)uv_available_parallelism();
        return 0;
    }
    if (t != LUA_TNUMBER || v < 1 || v > 256 || v != (int)v)
        return gh_cfg_fail(c, keys, "'workers' must be \"auto\" or an integer from 1 to 256");
    cfg->workers = (int)v;
    return 0;
}

static int parse_trusted(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"trusted_proxies", NULL};
    char **list;
    size_t n;
    if (get_string_list(c, idx, "trusted_proxies", &list, &n, keys)) return -1;
    cfg->trusted = calloc(n ? n : 1, sizeof(gh_cidr_t));
    cfg->ntrusted = n;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (gh_cidr_parse(list[i], &cfg->trusted[i]) != 0)
            rc = gh_cfg_fail(c, keys, "trusted_proxies: '%s' is not an address or CIDR network",
                             list[i]);
    free_list(list, n);
    return rc;
}

static int parse_limits(gh_cfg_ctx_t *c, int idx, gh_limits_t *l)
{
    static const char *const allowed[] = {"max_uri",      "max_header_bytes", "max_headers",
                                          "max_body",     "header_timeout",   "body_timeout",
                                          "idle_timeout", "drain_timeout",    NULL};
    const char *keys[] = {"limits", NULL};
    *l = (gh_limits_t){.max_uri = 8192,
                       .max_header_bytes = 32768,
                       .max_headers = 100,
                       .max_body = 100 * 1024 * 1024,
                       .header_timeout = 10,
                       .body_timeout = 30,
                       .idle_timeout = 60,
                       .drain_timeout = 30};
    lua_getfield(c->L, idx, "limits");
    int t = lua_type(c->L, -1);
    int top = lua_gettop(c->L), rc = 0;
    if (t != LUA_TNIL && t != LUA_TTABLE) rc = gh_cfg_fail(c, keys, "'limits' must be a table");
    if (t == LUA_TTABLE && !rc) {
        double uri = (double)l->max_uri, hb = (double)l->max_header_bytes;
        double hn = (double)l->max_headers, body = (double)l->max_body;
        rc = gh_cfg_keys(c, top, allowed, keys) ||
             gh_cfg_number(c, top, "max_uri", 64, 65536, &uri, "limits") ||
             gh_cfg_number(c, top, "max_header_bytes", 1024, 65536, &hb, "limits") ||
             gh_cfg_number(c, top, "max_headers", 8, 1000, &hn, "limits") ||
             gh_cfg_number(c, top, "max_body", 0, 1e18, &body, "limits") ||
             gh_cfg_number(c, top, "header_timeout", 0.01, 3600, &l->header_timeout, "limits") ||
             gh_cfg_number(c, top, "body_timeout", 0.01, 3600, &l->body_timeout, "limits") ||
             gh_cfg_number(c, top, "idle_timeout", 0.01, 86400, &l->idle_timeout, "limits") ||
             gh_cfg_number(c, top, "drain_timeout", 0, 3600, &l->drain_timeout, "limits");
        l->max_uri = (size_t)uri, l->max_header_bytes = (size_t)hb;
        l->max_headers = (size_t)hn, l->max_body = (uint64_t)body;
    }
    lua_pop(c->L, 1);
    return rc ? -1 : 0;
}

/* Reads one upstream table (at the top of the stack) named name. */
static int parse_upstream(gh_cfg_ctx_t *c, const char *name, gh_upstream_conf_t *u)
{
    static const char *const allowed[] = {"targets",         "keepalive",    "keepalive_timeout",
                                          "connect_timeout", "read_timeout", NULL};
    const char *keys[] = {"upstreams", name, NULL};
    const char *tkeys[] = {"upstreams", name, "targets", NULL};
    int top = lua_gettop(c->L);
    u->name = strdup(name);
    u->keepalive = 64;
    u->keepalive_timeout = 60;
    u->connect_timeout = 5;
    u->read_timeout = 60;
    if (!lua_istable(c->L, top)) return gh_cfg_fail(c, keys, "upstream '%s' must be a table", name);
    double ka = u->keepalive;
    char **list;
    size_t n;
    if (gh_cfg_keys(c, top, allowed, keys) ||
        gh_cfg_number(c, top, "keepalive", 0, 10000, &ka, name) ||
        gh_cfg_number(c, top, "keepalive_timeout", 0.01, 86400, &u->keepalive_timeout, name) ||
        gh_cfg_number(c, top, "connect_timeout", 0.01, 3600, &u->connect_timeout, name) ||
        gh_cfg_number(c, top, "read_timeout", 0.01, 86400, &u->read_timeout, name) ||
        get_string_list(c, top, "targets", &list, &n, tkeys))
        return -1;
    u->keepalive = (unsigned)ka;
    if (n == 0) {
        free(list);
        return gh_cfg_fail(c, tkeys, "upstream '%s' needs at least one target (\"host:port\")",
                           name);
    }
    u->targets = calloc(n, sizeof(*u->targets));
    u->ntargets = n;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char why[300];
        u->targets[i].text = list[i];
        if (!rc && gh_config_parse_addr(list[i], false, &u->targets[i].addr, why, sizeof(why)))
            rc = gh_cfg_fail(c, tkeys, "upstream '%s': %s", name, why);
    }
    free(list);
    return rc;
}

static int parse_upstreams(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"upstreams", NULL};
    lua_State *L = c->L;
    lua_getfield(L, idx, "upstreams");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return gh_cfg_fail(c, keys, "'upstreams' must be a table of name = { targets = {...} }");
    }
    int t = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) n++;
    cfg->upstreams = calloc(n ? n : 1, sizeof(gh_upstream_conf_t));
    int rc = 0;
    for (lua_pushnil(L); !rc && lua_next(L, t); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = gh_cfg_fail(c, keys, "upstream names must be strings");
            break;
        }
        rc = parse_upstream(c, lua_tostring(L, -2), &cfg->upstreams[cfg->nupstreams++]);
    }
    lua_settop(L, t - 1); /* whatever an early exit from lua_next left */
    return rc;
}

int gh_cfg_bool(gh_cfg_ctx_t *c, int idx, const char *key, bool *out, const char *const *keys)
{
    lua_getfield(c->L, idx, key);
    int t = lua_type(c->L, -1);
    if (t == LUA_TBOOLEAN) *out = lua_toboolean(c->L, -1);
    lua_pop(c->L, 1);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        return gh_cfg_fail(c, keys, "'%s' must be true or false", key);
    return 0;
}

void gh_cfg_resolve(const gh_config_t *cfg, const char *rel, char *out, size_t cap)
{
    const char *slash = strrchr(cfg->path, '/');
    if (rel[0] == '/' || !slash)
        snprintf(out, cap, "%s", rel);
    else
        snprintf(out, cap, "%.*s/%s", (int)(slash - cfg->path), cfg->path, rel);
}

static int parse_algorithms(gh_cfg_ctx_t *c, int idx, gh_issuer_t *is, const char *const *where)
{
    const char *keys[] = {where[0], where[1], "algorithms", NULL};
    char **list;
    size_t n;
    if (get_string_list(c, idx, "algorithms", &list, &n, keys)) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int a = gh_jwt_alg_parse(list[i], strlen(list[i]));
        if (a < 0)
            rc = gh_cfg_fail(c, keys,
                             "unknown algorithm '%s' (HS256/384/512, RS256/384/512, "
                             "PS256/384/512, ES256/384/512, EdDSA; never none)",
                             list[i]);
        else
            is->algorithms |= 1u << a;
    }
    free_list(list, n);
    return rc;
}

/* token = { header = true, cookie = "name", query = "name" } */
static int parse_token_sources(gh_cfg_ctx_t *c, int idx, gh_issuer_t *is, const char *const *keys)
{
    static const char *const allowed[] = {"header", "cookie", "query", NULL};
    lua_getfield(c->L, idx, "token");
    int t = lua_gettop(c->L), rc = 0;
    if (lua_istable(c->L, t)) {
        is->from_header = false;
        rc = gh_cfg_keys(c, t, allowed, keys) ||
             gh_cfg_bool(c, t, "header", &is->from_header, keys) ||
             gh_cfg_string(c, t, "cookie", &is->cookie, keys) ||
             gh_cfg_string(c, t, "query", &is->query, keys);
    } else if (!lua_isnil(c->L, t)) {
        rc = gh_cfg_fail(c, keys,
                         "'token' must be a table like { header = true, cookie = \"name\" }");
    }
    lua_settop(c->L, t - 1);
    return rc ? -1 : 0;
}

/* jwks = { refresh = ..., startup = "wait" | "503", ca_file = ... } */
static int remote_options(gh_cfg_ctx_t *c, const gh_config_t *cfg, int idx, gh_issuer_t *is,
                          const char *const *where)
{
    static const char *const allowed[] = {
        "refresh", "refresh_min",     "refresh_max", "cooldown", "negative_ttl", "timeout", "wait",
        "startup", "startup_timeout", "ca_file",     NULL};
    const char *keys[] = {where[0], where[1], "jwks", NULL};
    gh_keysource_conf_t *k = &is->remote_conf;
    lua_getfield(c->L, idx, "jwks");
    int t = lua_gettop(c->L), rc = 0;
    char *startup = NULL, *ca = NULL;
    if (lua_isnil(c->L, t)) {
        lua_settop(c->L, t - 1);
        return 0;
    }
    if (!lua_istable(c->L, t)) {
        rc = gh_cfg_fail(c, keys,
                         "'jwks' must be a table like { refresh = 300, startup = \"wait\" }");
    } else {
        rc = gh_cfg_keys(c, t, allowed, keys) ||
             gh_cfg_number(c, t, "refresh", 1, 86400, &k->refresh, "jwks") ||
             gh_cfg_number(c, t, "refresh_min", 1, 86400, &k->refresh_min, "jwks") ||
             gh_cfg_number(c, t, "refresh_max", 1, 86400, &k->refresh_max, "jwks") ||
             gh_cfg_number(c, t, "cooldown", 0, 3600, &k->cooldown, "jwks") ||
             gh_cfg_number(c, t, "negative_ttl", 0, 86400, &k->negative_ttl, "jwks") ||
             gh_cfg_number(c, t, "timeout", 0.1, 120, &k->timeout, "jwks") ||
             gh_cfg_number(c, t, "wait", 0, 60, &k->wait, "jwks") ||
             gh_cfg_number(c, t, "startup_timeout", 1, 3600, &k->startup_timeout, "jwks") ||
             gh_cfg_string(c, t, "startup", &startup, keys) ||
             gh_cfg_string(c, t, "ca_file", &ca, keys);
    }
    if (!rc && startup) {
        if (strcmp(startup, "wait") == 0)
            k->startup = GH_KEYS_START_WAIT;
        else if (strcmp(startup, "503") == 0)
            k->startup = GH_KEYS_START_503;
        else
            rc = gh_cfg_fail(c, keys, "'startup' must be \"wait\" or \"503\", got '%s'", startup);
    }
    if (!rc && ca) {
        char path[4096];
        gh_cfg_resolve(cfg, ca, path, sizeof(path));
        FILE *f = fopen(path, "r");
        if (!f)
            rc = gh_cfg_fail(c, keys, "cannot read ca_file '%s': %s", path, strerror(errno));
        else
            fclose(f), k->ca_file = strdup(path);
    }
    free(startup);
    free(ca);
    lua_settop(c->L, t - 1);
    return rc ? -1 : 0;
}

/* jwks_url = "https://..." or discovery = true (<issuer>/.well-known/...). */
static int remote_keys(gh_cfg_ctx_t *c, const gh_config_t *cfg, int idx, gh_issuer_t *is,
                       const char *kind, const char *const *keys)
{
    char why[512];
    gh_url_t u;
    is->remote = true;
    if (strcmp(kind, "jwks_url") == 0) {
        if (gh_cfg_string(c, idx, kind, &is->remote_conf.jwks_url, keys)) return -1;
        if (!is->remote_conf.jwks_url) return gh_cfg_fail(c, keys, "'jwks_url' must be a string");
        if (gh_url_parse(is->remote_conf.jwks_url, &u, why, sizeof(why)))
            return gh_cfg_fail(c, keys, "issuer '%s': jwks_url: %s", is->name, why);
    } else {
        bool on = false;
        if (gh_cfg_bool(c, idx, kind, &on, keys)) return -1;
        if (!on)
            return gh_cfg_fail(c, keys, "issuer '%s': 'discovery' is true or absent", is->name);
        if (!is->issuer)
            return gh_cfg_fail(c, keys, "issuer '%s': discovery needs 'issuer' (the realm URL)",
                               is->name);
        size_t n = strlen(is->issuer);
        while (n && is->issuer[n - 1] == '/') n--;
        static const char suffix[] = "/.well-known/openid-configuration";
        char *url = malloc(n + sizeof(suffix));
        if (!url) return gh_cfg_fail(c, keys, "out of memory");
        memcpy(url, is->issuer, n);
        memcpy(url + n, suffix, sizeof(suffix));
        is->remote_conf.discovery_url = url;
        if (gh_url_parse(url, &u, why, sizeof(why)))
            return gh_cfg_fail(c, keys, "issuer '%s': discovery needs an http(s) issuer URL: %s",
                               is->name, why);
    }
    return remote_options(c, cfg, idx, is, keys);
}

/* Exactly one key source; loads it. */
static int issuer_keys(gh_cfg_ctx_t *c, const gh_config_t *cfg, int idx, gh_issuer_t *is,
                       const char *const *keys)
{
    static const char *const kinds[] = {"secret",   "secret_file", "pem_file", "jwks_file",
                                        "jwks_url", "discovery",   NULL};
    const char *kind = NULL;
    for (int i = 0; kinds[i]; i++) {
        lua_getfield(c->L, idx, kinds[i]);
        bool present = !lua_isnil(c->L, -1);
        lua_pop(c->L, 1);
        if (present && kind)
            return gh_cfg_fail(c, keys, "issuer '%s' has both '%s' and '%s': give one key source",
                               is->name, kind, kinds[i]);
        if (present) kind = kinds[i];
    }
    lua_getfield(c->L, idx, "jwks");
    bool options = !lua_isnil(c->L, -1);
    lua_pop(c->L, 1);
    if (kind && (!strcmp(kind, "jwks_url") || !strcmp(kind, "discovery")))
        return remote_keys(c, cfg, idx, is, kind, keys);
    if (options)
        return gh_cfg_fail(
            c, keys, "issuer '%s': 'jwks' options apply only to jwks_url or discovery", is->name);
    if (!kind) return 0; /* gh_issuer_finish names what is missing */
    char *value = NULL, path[4096], why[512];
    if (gh_cfg_string(c, idx, kind, &value, keys)) return -1;
    if (!value) return gh_cfg_fail(c, keys, "'%s' must be a string", kind);
    if (strcmp(kind, "secret") != 0) gh_cfg_resolve(cfg, value, path, sizeof(path));
    int rc = gh_issuer_load_keys(is, kind, strcmp(kind, "secret") ? path : value, why, sizeof(why));
    free(value);
    return rc ? gh_cfg_fail(c, keys, "issuer '%s': %s", is->name, why) : 0;
}

/* One role path, at the top of the stack. */
static int parse_role_path(gh_cfg_ctx_t *c, gh_issuer_t *is, const char *const *keys)
{
    if (gh_lua_role_path_add(c->L, &is->roles) == 0) return 0;
    return gh_cfg_fail(c, keys,
                       "each role path is \"a.b.c\" or a list of segments such as "
                       "{ \"resource_access\", \"orders.api\", \"roles\" }, with no empty segment");
}

/* roles = { "realm_access.roles", { "resource_access", "orders.api", "roles" } } */
static int parse_roles(gh_cfg_ctx_t *c, int idx, gh_issuer_t *is, const char *name)
{
    const char *keys[] = {"issuers", name, "roles", NULL};
    lua_State *L = c->L;
    lua_getfield(L, idx, "roles");
    int t = lua_gettop(L), rc = 0;
    if (lua_isnil(L, t)) {
        rc = gh_role_paths_default(&is->roles);
    } else if (!lua_istable(L, t)) {
        rc = gh_cfg_fail(c, keys, "'roles' must be a list of role paths");
    } else {
        size_t n = lua_objlen(L, t), count = 0;
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) count++;
        if (n == 0 || count != n)
            rc = gh_cfg_fail(c, keys, "'roles' must be a non-empty list of role paths");
        for (size_t i = 1; i <= n && !rc; i++) {
            lua_rawgeti(L, t, (int)i);
            rc = parse_role_path(c, is, keys);
        }
    }
    lua_settop(L, t - 1);
    return rc;
}

/* Reads one issuer table (at the top of the stack). */
static int parse_issuer(gh_cfg_ctx_t *c, const gh_config_t *cfg, const char *name, gh_issuer_t *is)
{
    static const char *const allowed[] = {
        "issuer",    "audience",  "algorithms", "clock_skew", "required_claims",  "require_exp",
        "realm",     "max_token", "token",      "secret",     "secret_file",      "pem_file",
        "jwks_file", "jwks_url",  "discovery",  "jwks",       "authorized_party", "roles",
        NULL};
    const char *keys[] = {"issuers", name, NULL};
    int top = lua_gettop(c->L);
    gh_issuer_init(is, name);
    if (!lua_istable(c->L, top)) return gh_cfg_fail(c, keys, "issuer '%s' must be a table", name);
    double skew = 30, max_token = (double)is->max_token;
    if (gh_cfg_keys(c, top, allowed, keys) || gh_cfg_string(c, top, "issuer", &is->issuer, keys) ||
        gh_cfg_string(c, top, "realm", &is->realm, keys) ||
        get_string_list(c, top, "audience", &is->audiences, &is->naud, keys) ||
        get_string_list(c, top, "authorized_party", &is->azps, &is->nazp, keys) ||
        get_string_list(c, top, "required_claims", &is->required, &is->nrequired, keys) ||
        parse_algorithms(c, top, is, keys) ||
        gh_cfg_number(c, top, "clock_skew", 0, 3600, &skew, name) ||
        gh_cfg_number(c, top, "max_token", 256, 65536, &max_token, name) ||
        gh_cfg_bool(c, top, "require_exp", &is->require_exp, keys) ||
        parse_token_sources(c, top, is, keys) || parse_roles(c, top, is, name) ||
        issuer_keys(c, cfg, top, is, keys))
        return -1;
    is->clock_skew = skew;
    is->max_token = (size_t)max_token;
    is->audience_lens = calloc(is->naud ? is->naud : 1, sizeof(size_t));
    for (size_t i = 0; i < is->naud; i++) is->audience_lens[i] = strlen(is->audiences[i]);
    is->azp_lens = calloc(is->nazp ? is->nazp : 1, sizeof(size_t));
    for (size_t i = 0; i < is->nazp; i++) is->azp_lens[i] = strlen(is->azps[i]);
    char why[512];
    if (gh_issuer_finish(is, why, sizeof(why))) return gh_cfg_fail(c, keys, "%s", why);
    return 0;
}

static int parse_issuers(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    const char *keys[] = {"issuers", NULL};
    lua_State *L = c->L;
    lua_getfield(L, idx, "issuers");
    int t = lua_gettop(L), rc = 0;
    if (!lua_isnil(L, t) && !lua_istable(L, t))
        rc = gh_cfg_fail(c, keys, "'issuers' must be a table of name = { issuer = ..., ... }");
    size_t n = 0;
    if (!rc && lua_istable(L, t))
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) n++;
    cfg->issuers = calloc(n ? n : 1, sizeof(gh_issuer_t));
    for (lua_pushnil(L); !rc && n && lua_next(L, t); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = gh_cfg_fail(c, keys, "issuer names must be strings");
            break;
        }
        rc = parse_issuer(c, cfg, lua_tostring(L, -2), &cfg->issuers[cfg->nissuers++]);
    }
    lua_settop(L, t - 1);
    return rc;
}

static int method_bits(gh_cfg_ctx_t *c, int idx, uint64_t *bits, const char *const *keys)
{
    lua_State *L = c->L;
    char **list;
    size_t n;
    (void)idx;
    if (get_string_list(c, lua_gettop(L), "methods", &list, &n, keys)) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int found = -1;
#define GH_METHOD(num, name, string)                                                               \
    if (strcmp(#string, list[i]) == 0) found = num;
        HTTP_METHOD_MAP(GH_METHOD)
#undef GH_METHOD
        if (found < 0)
            rc = gh_cfg_fail(c, keys, "unknown HTTP method '%s' (methods are upper case)", list[i]);
        else
            *bits |= (uint64_t)1 << found;
    }
    free_list(list, n);
    return rc;
}

static int upstream_index(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0) return (int)i;
    return -1;
}

/* forward_claims = { ["X-User-Id"] = "sub", ... } into header/claim pairs. */
static int parse_forward_claims(gh_cfg_ctx_t *c, int idx, gh_route_t *r, const char *const *keys)
{
    lua_State *L = c->L;
    lua_getfield(L, idx, "forward_claims");
    int t = lua_gettop(L), rc = 0;
    if (lua_isnil(L, t)) {
        lua_settop(L, t - 1);
        return 0;
    }
    if (!lua_istable(L, t))
        rc = gh_cfg_fail(c, keys, "'forward_claims' must map header names to claims");
    size_t n = 0;
    if (!rc)
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) n++;
    r->claim_headers = calloc(2 * n + 1, sizeof(char *));
    for (lua_pushnil(L); !rc && lua_next(L, t); lua_pop(L, 1)) {
        size_t hl;
        const char *h = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &hl) : NULL;
        if (!h || !gh_hdr_name_valid(h, hl) || lua_type(L, -1) != LUA_TSTRING) {
            rc = gh_cfg_fail(c, keys, "'forward_claims' entries are [\"Header-Name\"] = \"claim\"");
            break;
        }
        r->claim_headers[2 * r->nclaim_headers] = strdup(h);
        r->claim_headers[2 * r->nclaim_headers + 1] = strdup(lua_tostring(L, -1));
        r->nclaim_headers++;
    }
    lua_settop(L, t - 1);
    return rc;
}

/* A field that, when present, must be a function. */
static int get_function(gh_cfg_ctx_t *c, int idx, const char *key, bool *present)
{
    lua_getfield(c->L, idx, key);
    int t = lua_type(c->L, -1);
    lua_pop(c->L, 1);
    *present = t == LUA_TFUNCTION;
    if (t == LUA_TNIL || t == LUA_TFUNCTION) return 0;
    return gh_cfg_fail(c, (const char *const[]){key, NULL}, "'%s' must be a function(%s, claims)",
                       key, strcmp(key, "policy") == 0 ? "req" : "res");
}

/* auth = "issuer", relay_token, forward_claims. */
static int parse_route_auth(gh_cfg_ctx_t *c, const gh_config_t *cfg, int idx, gh_route_t *r)
{
    const char *keys[] = {"auth", NULL};
    char *auth = NULL;
    r->issuer = -1;
    r->relay_token = true;
    if (gh_cfg_string(c, idx, "auth", &auth, keys) ||
        gh_cfg_bool(c, idx, "relay_token", &r->relay_token,
                    (const char *const[]){"relay_token", NULL}) ||
        parse_forward_claims(c, idx, r, (const char *const[]){"forward_claims", NULL})) {
        free(auth);
        return -1;
    }
    for (size_t i = 0; auth && i < cfg->nissuers; i++)
        if (strcmp(cfg->issuers[i].name, auth) == 0) r->issuer = (int)i;
    int rc = 0;
    if (auth && r->issuer < 0)
        rc = gh_cfg_fail(c, keys, "route names issuer '%s', which is not defined in 'issuers'",
                         auth);
    else if (!auth && r->nclaim_headers)
        rc = gh_cfg_fail(c, (const char *const[]){"forward_claims", NULL},
                         "'forward_claims' needs 'auth': there are no claims without a token");
    free(auth);
    return rc;
}

/* Reads the route table at the top of the stack into r. */
static int parse_route(gh_cfg_ctx_t *c, const gh_config_t *cfg, gh_route_t *r)
{
    static const char *const allowed[] = {
        "name",          "match",      "upstream",    "strip",          "websocket",
        "preserve_host", "auth",       "relay_token", "forward_claims", "policy",
        "on_response",   "rate_limit", NULL};
    static const char *const match_allowed[] = {"host", "path", "methods", NULL};
    lua_State *L = c->L;
    int top = lua_gettop(L);
    const char *mkeys[] = {"match", NULL}, *ukeys[] = {"upstream", NULL};
    char *upstream = NULL;
    r->preserve_host = true;
    if (gh_cfg_keys(c, top, allowed, mkeys) || gh_cfg_string(c, top, "name", &r->name, mkeys) ||
        gh_cfg_string(c, top, "upstream", &upstream, ukeys) ||
        gh_cfg_string(c, top, "strip", &r->strip, mkeys))
        goto fail;
    lua_getfield(L, top, "preserve_host");
    if (!lua_isnil(L, -1)) r->preserve_host = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (parse_route_auth(c, cfg, top, r) || get_function(c, top, "policy", &r->policy) ||
        get_function(c, top, "on_response", &r->on_response) || gh_cfg_route_limit(c, top, cfg, r))
        goto fail;
    lua_getfield(L, top, "websocket");
    int ws = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ws) {
        gh_cfg_fail(c, mkeys,
                    "'websocket' routes are not supported yet (Upgrade is never forwarded)");
        goto fail;
    }
    lua_getfield(L, top, "match");
    if (!lua_istable(L, -1)) {
        gh_cfg_fail(c, mkeys, "a route needs 'match = { path = \"/...\" }'");
        goto fail;
    }
    int m = lua_gettop(L);
    if (gh_cfg_keys(c, m, match_allowed, mkeys) || gh_cfg_string(c, m, "host", &r->host, mkeys) ||
        gh_cfg_string(c, m, "path", &r->path, mkeys) || method_bits(c, m, &r->methods, mkeys))
        goto fail;
    if (!r->path) {
        gh_cfg_fail(c, mkeys, "a route needs 'match.path' (for example \"/api/**\")");
        goto fail;
    }
    if (!upstream) {
        gh_cfg_fail(c, ukeys, "a route needs 'upstream' naming one of 'upstreams'");
        goto fail;
    }
    r->upstream = upstream_index(cfg, upstream);
    if (r->upstream < 0) {
        gh_cfg_fail(c, ukeys, "route names upstream '%s', which is not defined in 'upstreams'",
                    upstream);
        goto fail;
    }
    free(upstream);
    lua_settop(L, top);
    return 0;
fail:
    free(upstream);
    lua_settop(L, top);
    return -1;
}

/* Where the nth (0-based) route of a file starts: its nth "route" call,
 * or the start of the file when the file spells routes another way. Lua
 * keeps no source positions for tables, so keys are then looked up from
 * there and errors point at the offending key's line. */
static long route_start(const char *src, size_t nth)
{
    long at = -1;
    const char *p = src;
    for (size_t i = 0; p && i <= nth; i++) {
        while ((p = strstr(p, "route")) != NULL) {
            const char *q = p + 5;
            while (*q == ' ' || *q == '\t') q++;
            bool call = (*q == '{' || *q == '(') && (p == src || !is_ident(p[-1]));
            if (call) break;
            p += 5;
        }
        if (!p) return 0;
        at = p - src;
        p += 5;
    }
    return at < 0 ? 0 : at;
}

typedef struct {
    gh_route_t *v;
    size_t n, cap;
} route_vec_t;

static int add_route(gh_cfg_ctx_t *c, const gh_config_t *cfg, route_vec_t *rv, const char *file)
{
    lua_State *L = c->L;
    if (!lua_istable(L, -1)) {
        const char *keys[] = {NULL};
        return gh_cfg_fail(c, keys, "a route file must return gh.route{...} or a list of them");
    }
    if (rv->n == rv->cap) {
        rv->cap = rv->cap ? rv->cap * 2 : 16;
        rv->v = realloc(rv->v, rv->cap * sizeof(gh_route_t));
    }
    gh_route_t *r = &rv->v[rv->n++];
    memset(r, 0, sizeof(*r));
    r->file = strdup(file);
    int rc = parse_route(c, cfg, r);
    r->line = line_of(c, (const char *const[]){NULL});
    if (!r->name) {
        char name[512];
        const char *base = strrchr(file, '/');
        snprintf(name, sizeof(name), "%s:%d", base ? base + 1 : file, r->line);
        r->name = strdup(name);
    }
    return rc;
}

static int lua_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    if (d->d_name[0] == '.' || n < 5 || strcmp(d->d_name + n - 4, ".lua") != 0) return 0;
    return !(n > 9 && strcmp(d->d_name + n - 9, "_test.lua") == 0); /* policy tests */
}

/* Runs one route file and adds what it returns (a route or a list). */
static int load_route_file(gh_cfg_ctx_t *c, const gh_config_t *cfg, route_vec_t *rv,
                           const char *file, char *src)
{
    lua_State *L = c->L;
    gh_cfg_ctx_t fc = *c;
    fc.file = file;
    fc.src = src;
    int rc = 0;
    /* JIT off whatever lua.jit says: these functions never serve a request,
     * and lua.load_budget's hook must see the file's loops */
    const gh_lua_conf_t load = {.unsafe = cfg->lua.unsafe};
    if (!src) {
        snprintf(c->err, c->errlen, "%s:0: cannot read: %s", file, strerror(errno));
        rc = -1;
    } else if (gh_lua_run_route_file(L, &load, file, src, c->err, c->errlen) != 0) {
        rc = -1;
    } else if (lua_istable(L, -1) && lua_objlen(L, -1) > 0) {
        size_t n = lua_objlen(L, -1);
        for (size_t i = 1; i <= n && !rc; i++) {
            lua_rawgeti(L, -1, (int)i);
            fc.from = fc.src ? route_start(fc.src, i - 1) : 0;
            rc = add_route(&fc, cfg, rv, file);
            lua_pop(L, 1);
        }
    } else {
        fc.from = fc.src ? route_start(fc.src, 0) : 0;
        rc = add_route(&fc, cfg, rv, file);
    }
    lua_settop(L, 0);
    return rc;
}

/* Loads every route file under the routes directory (relative to the config
 * file) and builds the router. */
static int load_routes(gh_cfg_ctx_t *c, gh_config_t *cfg, const char *dir_rel)
{
    char dir[4096];
    const char *slash = strrchr(cfg->path, '/');
    if (dir_rel[0] == '/' || !slash)
        snprintf(dir, sizeof(dir), "%s", dir_rel);
    else
        snprintf(dir, sizeof(dir), "%.*s/%s", (int)(slash - cfg->path), cfg->path, dir_rel);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = '\0';
    struct dirent **names;
    int n = scandir(dir, &names, lua_filter, alphasort);
    if (n < 0) {
        const char *keys[] = {"routes", NULL};
        return gh_cfg_fail(c, keys, "routes directory '%s': %s", dir, strerror(errno));
    }
    /* Route files run in the sandbox the workers' VMs use. */
    gh_lua_load_limit(cfg->lua.load_budget);
    gh_cfg_ctx_t rc_ctx = *c;
    rc_ctx.L = gh_lua_state_new(&cfg->lua, dir, c->err, c->errlen);
    cfg->routes_dir = strdup(dir);
    cfg->route_files = calloc((size_t)n + 1, sizeof(char *));
    cfg->route_srcs = calloc((size_t)n + 1, sizeof(char *));
    route_vec_t rv = {0};
    int rc = rc_ctx.L ? 0 : -1;
    for (int i = 0; i < n; i++) {
        char file[4352];
        snprintf(file, sizeof(file), "%s/%s", dir, names[i]->d_name);
        cfg->route_files[cfg->nroute_files] = strdup(file);
        cfg->route_srcs[cfg->nroute_files++] = rc ? NULL : gh_cfg_read_file(file);
        if (!rc)
            rc = load_route_file(&rc_ctx, cfg, &rv, file, cfg->route_srcs[cfg->nroute_files - 1]);
        free(names[i]);
    }
    free(names);
    if (rc_ctx.L) lua_close(rc_ctx.L);
    if (rc) {
        for (size_t i = 0; i < rv.n; i++) gh_route_clear(&rv.v[i]);
        free(rv.v);
        return -1;
    }
    cfg->router = gh_router_new(rv.v, rv.n, c->err, c->errlen);
    return cfg->router ? 0 : -1;
}

/* lua = { budget = 0.05, load_budget = 10, jit = false, unsafe = false } */
static int parse_lua(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    static const char *const allowed[] = {"budget", "load_budget", "jit", "unsafe", NULL};
    const char *keys[] = {"lua", NULL};
    lua_State *L = c->L;
    cfg->lua.budget = 0.05;
    cfg->lua.load_budget = GH_LUA_LOAD_BUDGET;
    lua_getfield(L, idx, "lua");
    int t = lua_gettop(L), rc = 0;
    if (!lua_isnil(L, t) && !lua_istable(L, t))
        rc = gh_cfg_fail(c, keys, "'lua' must be a table such as { budget = 0.05 }");
    else if (lua_istable(L, t))
        rc = gh_cfg_keys(c, t, allowed, keys) ||
             gh_cfg_number(c, t, "budget", 0, 60, &cfg->lua.budget, "lua") ||
             gh_cfg_number(c, t, "load_budget", 0.1, 3600, &cfg->lua.load_budget, "lua") ||
             gh_cfg_bool(c, t, "jit", &cfg->lua.jit, (const char *const[]){"lua", "jit", NULL}) ||
             gh_cfg_bool(c, t, "unsafe", &cfg->lua.unsafe,
                         (const char *const[]){"lua", "unsafe", NULL});
    lua_settop(L, t - 1);
    return rc ? -1 : 0;
}

static int parse_token_cache(gh_cfg_ctx_t *c, int idx, gh_config_t *cfg)
{
    double n = 10000;
    int rc = gh_cfg_number(c, idx, "token_cache", 0, 10000000, &n, NULL);
    cfg->token_cache = (size_t)n;
    return rc;
}

/* watch, reload_runs_tests, log_level */
static int parse_operations(gh_cfg_ctx_t *c, gh_config_t *cfg)
{
    const char *lkeys[] = {"log_level", NULL};
    char *level = NULL;
    cfg->log_level = GH_LOG_INFO;
    int rc = gh_cfg_bool(c, 1, "watch", &cfg->watch, NULL) ||
             gh_cfg_bool(c, 1, "reload_runs_tests", &cfg->reload_runs_tests, NULL) ||
             gh_cfg_string(c, 1, "log_level", &level, lkeys);
    gh_log_level lv;
    if (!rc && level && gh_log_level_parse(level, &lv))
        rc =
            gh_cfg_fail(c, lkeys, "'log_level' must be \"debug\", \"info\", \"warn\" or \"error\"");
    else if (!rc && level)
        cfg->log_level = (int)lv;
    free(level);
    return rc ? -1 : 0;
}

static int parse_top(gh_cfg_ctx_t *c, gh_config_t *cfg)
{
    static const char *const allowed[] = {"listen",     "workers",
                                          "access_log", "trusted_proxies",
                                          "limits",     "upstreams",
                                          "issuers",    "token_cache",
                                          "routes",     "lua",
                                          "redis",      "revocation",
                                          "admin",      "rate_limit_keys",
                                          "watch",      "reload_runs_tests",
                                          "log_level",  NULL};
    lua_State *L = c->L;
    const char *top_keys[] = {NULL};
    if (!lua_istable(L, 1)) return gh_cfg_fail(c, top_keys, "the config file must return a table");
    char *routes = NULL;
    const char *rkeys[] = {"routes", NULL}, *akeys[] = {"access_log", NULL};
    int rc = gh_cfg_keys(c, 1, allowed, top_keys) || parse_listen(c, 1, cfg) ||
             parse_workers(c, 1, cfg) || parse_trusted(c, 1, cfg) ||
             parse_limits(c, 1, &cfg->limits) || parse_upstreams(c, 1, cfg) ||
             parse_issuers(c, 1, cfg) || parse_token_cache(c, 1, cfg) || parse_lua(c, 1, cfg) ||
             gh_cfg_shared_state(c, 1, cfg) ||
             gh_cfg_string(c, 1, "access_log", &cfg->access_log, akeys) ||
             gh_cfg_string(c, 1, "routes", &routes, rkeys) || parse_operations(c, cfg);
    if (!rc) {
        lua_settop(L, 0);
        rc = load_routes(c, cfg, routes ? routes : "routes");
    }
    free(routes);
    if (!rc && !cfg->access_log) cfg->access_log = strdup("stderr");
    return rc ? -1 : 0;
}

/* Runs gatehouse.lua's source with the JIT off, so lua.load_budget (its
 * default: the file has not said yet) can stop it. Returns 0 with its
 * value on the stack, or non-zero with the message. */
static int load_config_chunk(lua_State *L, const char *src, const char *path)
{
    gh_lua_load_limit(GH_LUA_LOAD_BUDGET);
    int rc = luaL_loadbuffer(L, src, strlen(src), lua_pushfstring(L, "@%s", path));
    if (rc) return rc;
    luaJIT_setmode(L, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
    return lua_pcall(L, 0, 1, 0);
}

gh_config_t *gh_config_load(const char *path, char *err, size_t errlen)
{
    gh_config_t *cfg = calloc(1, sizeof(*cfg));
    gh_cfg_ctx_t c = {.file = path, .err = err, .errlen = errlen};
    c.L = gh_lua_state_new(&(gh_lua_conf_t){0}, NULL, err, errlen);
    cfg->path = strdup(path);
    c.src = gh_cfg_read_file(path);
    int rc = -1;
    if (!c.L) {
        /* err says why */
    } else if (!c.src) {
        snprintf(err, errlen, "%s:0: cannot read: %s", path, strerror(errno));
    } else if (load_config_chunk(c.L, c.src, path)) {
        snprintf(err, errlen, "%s", lua_tostring(c.L, -1));
    } else {
        lua_replace(c.L, 1);
        lua_settop(c.L, 1);
        rc = parse_top(&c, cfg);
    }
    gh_lua_load_limit(0);
    if (c.L) lua_close(c.L);
    free(c.src);
    if (rc) {
        gh_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void gh_config_free(gh_config_t *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nlisten; i++) free(cfg->listen[i].text);
    free(cfg->listen);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        gh_upstream_conf_t *u = &cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++) free(u->targets[k].text);
        free(u->targets);
        free(u->name);
    }
    free(cfg->upstreams);
    for (size_t i = 0; i < cfg->nissuers; i++) gh_issuer_free(&cfg->issuers[i]);
    free(cfg->issuers);
    free(cfg->trusted);
    free(cfg->access_log);
    gh_router_free(cfg->router);
    for (size_t i = 0; i < cfg->nroute_files; i++) free(cfg->route_files[i]);
    for (size_t i = 0; cfg->route_srcs && i < cfg->nroute_files; i++) free(cfg->route_srcs[i]);
    free(cfg->route_srcs);
    free(cfg->route_files);
    free(cfg->routes_dir);
    gh_cfg_shared_state_free(cfg);
    free(cfg->path);
    free(cfg);
}

bool gh_config_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    size_t len =
        a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return memcmp(a, b, len) == 0;
}

bool gh_config_trusts(const gh_config_t *cfg, const struct sockaddr_storage *peer)
{
    if (peer->ss_family != AF_INET && peer->ss_family != AF_INET6) return false;
    for (size_t i = 0; i < cfg->ntrusted; i++)
        if (gh_cidr_contains(&cfg->trusted[i], (const struct sockaddr *)peer)) return true;
    return false;
}
