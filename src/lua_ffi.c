#include "lua_ffi.h"

#include <llhttp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "claims.h"
#include "config.h"
#include "headers.h"
#include "limiter.h"
#include "log.h"
#include "lua_policy.h"
#include "lua_test.h"
#include "path.h"
#include "revoke.h"
#include "worker.h"
#include "router.h"

/* what: 0 method, 1 path, 3 host, 4 client ip, 5 request id, 6 the path
 * sent upstream, 7 the query sent upstream. Returns 1 with *out set, or 0
 * when there is none. */
int gh_ffi_req_str(gh_req_t *r, int what, const char **out, size_t *len)
{
    const char *s = NULL;
    size_t n = 0;
    switch (what) {
    case 0:
        s = r->method >= 0 ? llhttp_method_name((llhttp_method_t)r->method) : NULL;
        n = s ? strlen(s) : 0;
        break;
    case 1:
        s = r->path, n = r->path_len;
        break;
    case 3:
        s = r->host, n = r->host_len;
        break;
    case 4:
        s = r->client_ip, n = s ? strlen(s) : 0;
        break;
    case 5:
        s = r->id, n = strlen(r->id);
        break;
    case 6:
        s = gh_req_upstream_path(r, &n);
        break;
    case 7:
        s = r->lua.query_set ? r->lua.query : r->query;
        n = r->lua.query_set ? r->lua.query_len : r->query_len;
        break;
    }
    *out = s;
    *len = n;
    return s != NULL;
}

/* The head and edit list a header call works on; NULL head for a response
 * not there yet. */
static const gh_head_t *view(gh_req_t *r, int resp, gh_hedit_t ***edits)
{
    *edits = resp ? &r->lua.resp_edits : &r->lua.req_edits;
    return resp ? r->lua.resp : &r->head;
}

/* Returns 1 with the value, 0 when absent, -1 on OOM. */
int gh_ffi_header_get(gh_req_t *r, int resp, const char *name, size_t nlen, const char **out,
                      size_t *olen)
{
    gh_hedit_t **edits;
    const gh_head_t *h = view(r, resp, &edits);
    *out = NULL;
    *olen = 0;
    if (!resp && r->route && gh_route_sets_claim_header(r->route, name, nlen)) return 0;
    return gh_hedit_get(r->arena, h, *edits, name, nlen, out, olen);
}

int gh_ffi_header_valid(const char *name, size_t nlen, const char *val, size_t vlen)
{
    return gh_hdr_name_valid(name, nlen) && gh_hdr_value_valid(val, vlen);
}

/* 1 for a header the gateway writes or removes itself. */
int gh_ffi_header_managed(const char *n, size_t len, int resp)
{
    if (gh_hdr_is_hop_by_hop(n, len) || gh_hdr_eq(n, len, "content-length") ||
        gh_hdr_eq(n, len, "x-request-id"))
        return 1;
    if (resp) return 0;
    return gh_hdr_eq(n, len, "host") || gh_hdr_eq(n, len, "expect") ||
           gh_hdr_eq(n, len, "forwarded") || (len > 12 && strncasecmp(n, "x-forwarded-", 12) == 0);
}

/* val NULL removes the header. */
int gh_ffi_header_set(gh_req_t *r, int resp, const char *name, size_t nlen, const char *val,
                      size_t vlen, const char **err)
{
    gh_hedit_t **edits;
    const gh_head_t *h = view(r, resp, &edits);
    if (resp && !h) return *err = "there is no response yet", -1;
    if (!gh_hdr_name_valid(name, nlen)) return *err = "not a valid header name", -1;
    if (val && !gh_hdr_value_valid(val, vlen))
        return *err = "the value holds a control character (CR, LF, NUL...)", -1;
    if (gh_ffi_header_managed(name, nlen, resp)) return *err = "the gateway manages it", -1;
    if (gh_hedit_set(r->arena, edits, name, nlen, val, vlen)) return *err = "out of memory", -1;
    return 0;
}

int gh_ffi_set_path(gh_req_t *r, const char *p, size_t len, const char **err)
{
    char *out = gh_arena_alloc(r->arena, len + 1);
    size_t olen = 0;
    if (!out) return *err = "out of memory", -1;
    if (len == 0 || p[0] != '/') return *err = "req:set_path needs a path starting with '/'", -1;
    gh_path_status st = gh_path_normalize(p, len, out, &olen);
    if (st != GH_PATH_OK) return *err = gh_path_status_str(st), -1;
    if (olen != len || memcmp(out, p, len) != 0)
        return *err = "req:set_path needs a normalised path (no '.', '..', '//' or "
                      "needless escapes)",
               -1;
    r->lua.path = out;
    r->lua.path_len = olen;
    return 0;
}

/* drop: send no query. A query may hold any visible byte but '#'. */
int gh_ffi_set_query(gh_req_t *r, const char *q, size_t len, int drop, const char **err)
{
    for (size_t i = 0; !drop && i < len; i++)
        if ((unsigned char)q[i] <= 0x20 || q[i] == 0x7f || q[i] == '#')
            return *err = "req:set_query: a raw query may not hold spaces, control bytes or '#'",
                   -1;
    char *copy = drop || len == 0 ? NULL : gh_arena_strndup(r->arena, q, len);
    if (!drop && len && !copy) return *err = "out of memory", -1;
    r->lua.query = copy;
    r->lua.query_len = copy ? len : 0;
    r->lua.query_set = true;
    return 0;
}

/* Returns 0, or -1 when the config has no upstream of that name. A test
 * request (no config) takes any name. */
int gh_ffi_set_upstream(gh_req_t *r, const char *name, size_t len)
{
    int idx = -1;
    for (size_t i = 0; r->cfg && i < r->cfg->nupstreams; i++) {
        const char *u = r->cfg->upstreams[i].name;
        if (strlen(u) == len && memcmp(u, name, len) == 0) idx = (int)i;
    }
    if (r->cfg && idx < 0) return -1;
    char *copy = gh_arena_strndup(r->arena, name, len);
    if (!copy) return -1;
    r->lua.upstream = copy;
    if (idx >= 0) r->upstream = idx;
    return 0;
}

int gh_ffi_has_role(gh_req_t *r, const char *role, size_t len)
{
    return gh_claims_has_role(r->claims, r->roles, role, len);
}

int gh_ffi_has_client_role(gh_req_t *r, const char *client, size_t clen, const char *role,
                           size_t len)
{
    return gh_claims_has_client_role(r->claims, client, clen, role, len);
}

int gh_ffi_has_scope(gh_req_t *r, const char *scope, size_t len)
{
    return gh_claims_has_scope(r->claims, scope, len);
}

int gh_ffi_resp_status(gh_req_t *r)
{
    return r->lua.resp_status;
}

/* level: 1 info, 2 warn, 3 error. r may be NULL (no request running). */
void gh_ffi_log(gh_req_t *r, int level, const char *msg, size_t len)
{
    gh_log_level lv = level >= 3 ? GH_LOG_ERROR : level == 2 ? GH_LOG_WARN : GH_LOG_INFO;
    if (len > 4096) len = 4096;
    if (!r)
        gh_log(lv, "lua: %.*s", (int)len, msg);
    else
        gh_log(lv, "policy: %.*s (request_id=%s route=%s)", (int)len, msg, r->id,
               r->route ? r->route->name : "-");
}

/* Returns 0 when the caller must yield (a timer will resume it), 1 when
 * the wait already happened (a test request, which has no loop). */
int gh_ffi_sleep(gh_req_t *r, double seconds, const char **err)
{
    if (seconds > 3600) return *err = "gh.sleep waits at most an hour", -1;
    if (!r->w) {
        struct timespec ts = {(time_t)seconds, (long)(fmod(seconds, 1.0) * 1e9)};
        nanosleep(&ts, NULL);
        return 1;
    }
    if (gh_policy_wait_timer(r, seconds)) return *err = "out of memory", -1;
    return 0;
}

/* gh.limit: returns 1 when decided (read it with gh_ffi_limit_result), 0
 * when the caller must yield until Redis answers, -1 with *err. */
int gh_ffi_limit(gh_req_t *r, const char *key, size_t klen, const double conf[3], int flags,
                 const char *name, size_t nlen, const char **err)
{
    gh_limit_spec_t spec = {.conf = {conf[0], conf[1], conf[2]},
                            .global = flags & 1,
                            .deny_on_error = flags & 2,
                            .headers = flags & 4,
                            .name = name,
                            .name_len = nlen};
    return gh_limiter_decide(r, key, klen, &spec, err);
}

/* The last decision into out: limit, remaining, reset, retry_after.
 * Returns 1 allowed, 0 denied, 2 allowed because Redis failed (on_error =
 * "allow"; *err says so), 3 Redis failed and on_error = "deny". */
int gh_ffi_limit_result(gh_req_t *r, double out[4], const char **err)
{
    const gh_req_limit_t *l = &r->limit;
    out[0] = l->res.limit;
    out[1] = l->res.remaining;
    out[2] = l->res.reset;
    out[3] = l->res.retry_after;
    if (l->failed) *err = l->error;
    if (l->failed_closed) return 3;
    if (l->failed) return 2;
    return l->res.allowed ? 1 : 0;
}

static void revoke_done(void *arg, const redisReply *reply, const char *err)
{
    gh_req_t *r = arg;
    (void)reply;
    r->lua.op = NULL;
    r->lua.op_pending = false;
    r->lua.op_err = err ? "redis failed; the revocation holds on this instance only" : NULL;
    gh_req_run(r);
}

/* gh.revoke: kind 0 a jti until t (its exp), 1 a subject's tokens issued
 * before t. Applies at once in this process; with Redis, returns 0 while
 * it is stored there (the caller yields), else 1. -1 with *err. */
int gh_ffi_revoke(gh_req_t *r, int kind, const char *id, size_t len, double t, const char **err)
{
    if (!(t >= 0 && t < 1e13)) return *err = "the time must be unix seconds", -1;
    if (gh_revoke_add(kind ? GH_REVOKE_SUB : GH_REVOKE_JTI, id, len, (int64_t)t))
        return *err = "the id is empty or longer than 1024 bytes, or the list is full", -1;
    r->lua.op_err = NULL;
    if (!r->w || !r->w->redis) return 1;
    const char *why;
    if (gh_revoke_store(r->w->redis, r->cfg, kind ? GH_REVOKE_SUB : GH_REVOKE_JTI, id, len,
                        (int64_t)t, revoke_done, r, &r->lua.op, &why)) {
        r->lua.op_err = "redis is not connected; the revocation holds on this instance only";
        return 1;
    }
    r->lua.op_pending = true;
    return 0;
}

/* After gh_ffi_revoke: 1 stored, 0 with *err (held locally only). */
int gh_ffi_revoke_result(gh_req_t *r, const char **err)
{
    if (r->lua.op_err) return *err = r->lua.op_err, 0;
    return 1;
}

/* Pushes a JSON value as Lua: objects and arrays as tables, null as nil. */
static void push_json(lua_State *L, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushnumber(L, (lua_Number)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(v));
        break;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        for (size_t i = 0; i < json_array_size(v); i++) {
            push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case JSON_OBJECT: {
        const char *k;
        const json_t *x;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach((json_t *)v, k, x)
        {
            if (json_is_null(x)) continue;
            push_json(L, x);
            lua_setfield(L, -2, k);
        }
        break;
    }
    default:
        lua_pushnil(L);
    }
}

/* core.claim(req, name): pushes the claim (nil when absent). req is the
 * request as a light userdata. */
static int l_claim(lua_State *L)
{
    const gh_req_t *r = lua_touserdata(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    const json_t *v = r && r->claims ? json_object_getn(r->claims, name, len) : NULL;
    if (v)
        push_json(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static bool push_role(const char *role, size_t len, void *arg)
{
    lua_State *L = arg;
    lua_pushlstring(L, role, len);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    return false;
}

/* core.roles(req): pushes the list of roles under the issuer's paths. */
static int l_roles(lua_State *L)
{
    const gh_req_t *r = lua_touserdata(L, 1);
    lua_newtable(L);
    if (r) gh_claims_each_role(r->claims, r->roles, push_role, L);
    return 1;
}

#define FN(name)                                                                                   \
    {                                                                                              \
#name, (void *)gh_ffi_##name                                                               \
    }
static const struct {
    const char *name;
    void *fn;
} fns[] = {
    FN(req_str),      FN(header_get),  FN(header_set),    FN(header_valid), FN(header_managed),
    FN(set_path),     FN(set_query),   FN(set_upstream),  FN(has_role),     FN(has_client_role),
    FN(has_scope),    FN(resp_status), FN(log),           FN(sleep),        FN(limit),
    FN(limit_result), FN(revoke),      FN(revoke_result),
};
#undef FN

int gh_luaopen_core(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_claim);
    lua_setfield(L, -2, "claim");
    lua_pushcfunction(L, l_roles);
    lua_setfield(L, -2, "roles");
    lua_newtable(L);
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        lua_pushlightuserdata(L, fns[i].fn);
        lua_setfield(L, -2, fns[i].name);
    }
    lua_setfield(L, -2, "fns");
    gh_lua_test_register(L);
    return 1;
}
