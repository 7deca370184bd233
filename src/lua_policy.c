#include "lua_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <lauxlib.h>

#include "limiter.h"
#include "log.h"
#include "redis.h"
#include "lua_vm.h"
#include "worker.h"

/* A request's pending wait; malloc'd because the timer handle must outlive
 * the request's arena until its close callback. */
struct gh_lua_wait_s {
    uv_timer_t timer;
    gh_req_t *r;
    bool pending;
};

static void wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void wait_done(uv_timer_t *t)
{
    gh_lua_wait_t *w = t->data;
    w->pending = false;
    gh_req_run(w->r);
}

int gh_policy_wait_timer(gh_req_t *r, double seconds)
{
    gh_lua_wait_t *w = r->lua.wait;
    if (!w) {
        if (!(w = calloc(1, sizeof(*w)))) return -1;
        uv_timer_init(&r->w->loop, &w->timer);
        w->timer.data = w;
        w->r = r;
        r->lua.wait = w;
    }
    w->pending = true;
    uv_timer_start(&w->timer, wait_done, (uint64_t)(seconds * 1000 + 0.5), 0);
    return 0;
}

/* Pushes field name of gatehouse.runtime. */
static void runtime_field(gh_lua_vm_t *vm, const char *name)
{
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->runtime);
    lua_getfield(vm->L, -1, name);
    lua_remove(vm->L, -2);
}

/* Arena cleanup: cancels a wait, and lets go of the request's Lua state
 * after telling the runtime (objects a policy kept must not reach it). */
static void lua_cleanup(void *data)
{
    gh_req_t *r = data;
    gh_lua_vm_t *vm = r->gen->lua;
    lua_State *L = vm->L;
    if (r->lua.wait) {
        uv_close((uv_handle_t *)&r->lua.wait->timer, wait_closed);
        r->lua.wait = NULL;
    }
    gh_redis_cancel(r->lua.op);
    r->lua.op = NULL;
    runtime_field(vm, "finish");
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->lua.state);
    if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, r->lua.state);
    if (r->lua.co) luaL_unref(L, LUA_REGISTRYINDEX, r->lua.co);
    r->lua.state = r->lua.co = 0;
}

/* The request's Lua state table, made (empty: runtime.run or .response
 * fills it) on first use. Returns 0 or -1. */
static int ensure_state(gh_req_t *r, gh_lua_vm_t *vm)
{
    if (r->lua.state) return 0;
    if (gh_arena_cleanup_add(r->arena, lua_cleanup, r)) return -1;
    lua_createtable(vm->L, 0, 8);
    r->lua.state = luaL_ref(vm->L, LUA_REGISTRYINDEX);
    return 0;
}

/* Pushes what runtime.run and .response take after the function: the
 * request as a light userdata, whether it has claims, its address. */
static void push_request(lua_State *L, gh_req_t *r)
{
    lua_pushlightuserdata(L, r);
    lua_pushboolean(L, r->claims != NULL);
    lua_pushnumber(L, (lua_Number)(uintptr_t)r); /* user-space addresses fit in 53 bits */
}

/* Lua ran for this request and stopped: no call may think it still runs. */
static void clear_current(gh_lua_vm_t *vm)
{
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->runtime);
    lua_pushnil(vm->L);
    lua_setfield(vm->L, -2, "current");
    lua_pop(vm->L, 1);
}

static uint64_t budget_left(const gh_lua_vm_t *vm, const gh_req_t *r)
{
    return r->lua.used_ns < vm->budget_ns ? vm->budget_ns - r->lua.used_ns : 1;
}

/* Logs a failed run with route, where the route is defined and the error
 * (file:line first), and answers 500. */
static gh_phase_rc policy_failed(gh_req_t *r, const char *what, const char *msg)
{
    const gh_route_t *rt = r->route;
    bool budget = msg && strstr(msg, "exceeded its time budget");
    gh_log(GH_LOG_ERROR, "%s of route %s (%s:%d) failed: %s (request_id=%s)", what, rt->name,
           rt->file, rt->line, msg ? msg : "unknown error", r->id);
    gh_req_error(r, 500,
                 budget ? "the route policy exceeded its time budget" : "the route policy failed");
    return GH_PHASE_STOP;
}

/* Copies a detail into a quoted-string parameter: no quotes, backslashes
 * or control bytes, at most cap-1 bytes. */
static void quotable(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    out[n] = '\0';
}

static gh_phase_rc deny(gh_req_t *r, int status, const char *detail, lua_State *co)
{
    if (status == 429 && lua_toboolean(co, 7) && r->limit.decided && !r->limit.failed) {
        gh_limiter_refuse(r); /* gh.too_many(info): with that decision's headers */
        return GH_PHASE_STOP;
    }
    char hdr[1536] = "", desc[512], scope[256];
    const char *realm = r->realm ? r->realm : "gatehouse";
    quotable(desc, sizeof(desc), detail);
    quotable(scope, sizeof(scope), lua_tostring(co, 6));
    if (status == 401)
        snprintf(hdr, sizeof(hdr),
                 "WWW-Authenticate: Bearer realm=\"%s\", error=\"invalid_token\", "
                 "error_description=\"%s\"\r\n",
                 realm, desc);
    else if (status == 403 && scope[0])
        snprintf(hdr, sizeof(hdr),
                 "WWW-Authenticate: Bearer realm=\"%s\", error=\"insufficient_scope\", "
                 "error_description=\"%s\", scope=\"%s\"\r\n",
                 realm, desc, scope);
    else if (lua_isnumber(co, 4))
        snprintf(hdr, sizeof(hdr), "Retry-After: %lld\r\n", (long long)lua_tonumber(co, 4));
    gh_req_error_with(r, status, detail ? detail : "denied by the route policy", hdr);
    return GH_PHASE_STOP;
}

/* Header lines from the table at idx (validated by gh.respond, checked
 * again). Returns the length, or -1 when they do not fit. */
static int header_lines(lua_State *co, int idx, char *out, size_t cap, bool *has_type)
{
    size_t n = 0;
    *has_type = false;
    for (lua_pushnil(co); lua_istable(co, idx) && lua_next(co, idx); lua_pop(co, 1)) {
        size_t kl, vl;
        const char *k = lua_tolstring(co, -2, &kl), *v = lua_tolstring(co, -1, &vl);
        if (!k || !v || !gh_hdr_name_valid(k, kl) || !gh_hdr_value_valid(v, vl)) continue;
        if (kl + vl + 4 > cap - n) {
            lua_pop(co, 2);
            return -1;
        }
        if (gh_hdr_eq(k, kl, "content-type")) *has_type = true;
        n += (size_t)snprintf(out + n, cap - n, "%.*s: %.*s\r\n", (int)kl, k, (int)vl, v);
    }
    return (int)n;
}

static gh_phase_rc respond(gh_req_t *r, int status, lua_State *co)
{
    char hdrs[8192];
    bool has_type = false;
    size_t blen = 0;
    const char *body = lua_tolstring(co, 3, &blen);
    int n = header_lines(co, 5, hdrs, sizeof(hdrs) - 64, &has_type);
    if (n < 0) return policy_failed(r, "gh.respond", "headers larger than 8 KiB");
    if (!has_type)
        snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Content-Type: text/plain; charset=utf-8\r\n");
    gh_req_respond(r, status, hdrs, body, blen);
    return GH_PHASE_STOP;
}

/* Applies what runtime.result left on co's stack: action, status, text,
 * retry_after, headers, scope. */
static gh_phase_rc apply(gh_req_t *r, lua_State *co)
{
    int action = (int)lua_tointeger(co, 1), status = (int)lua_tointeger(co, 2);
    gh_phase_rc rc = GH_PHASE_NEXT;
    if (action == 1) {
        rc = deny(r, status, lua_tostring(co, 3), co);
    } else if (action == 2) {
        char loc[4096];
        const char *url = lua_tostring(co, 3);
        if (url && strlen(url) < sizeof(loc) - 16) {
            snprintf(loc, sizeof(loc), "Location: %s\r\n", url);
            gh_req_respond(r, status, loc, NULL, 0);
            rc = GH_PHASE_STOP;
        } else {
            rc = policy_failed(r, "gh.redirect", "URL longer than 4 KiB");
        }
    } else if (action == 3) {
        rc = respond(r, status, co);
    }
    return rc;
}

/* A coroutine to run a policy in: one that finished normally before (a
 * thread whose function returned can be given another), or a new one.
 * Sets *ref to its registry ref. */
static lua_State *coroutine(gh_lua_vm_t *vm, int *ref)
{
    lua_State *L = vm->L, *co;
    if (vm->nthreads > 0) {
        *ref = vm->threads[--vm->nthreads];
        lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
        co = lua_tothread(L, -1);
        lua_pop(L, 1);
        return co;
    }
    co = lua_newthread(L);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return co;
}

/* A gatehouse call started a wait (gh.sleep's timer, a Redis reply). */
static bool waiting(const gh_req_t *r)
{
    return (r->lua.wait && r->lua.wait->pending) || r->limit.pending || r->lua.op_pending;
}

gh_phase_rc gh_policy_phase(gh_req_t *r)
{
    gh_lua_vm_t *vm = r->gen->lua;
    const gh_route_t *rt = r->route;
    if (!rt->policy || !vm) return GH_PHASE_NEXT;
    if (waiting(r)) return GH_PHASE_WAIT;
    lua_State *L = vm->L, *co;
    int nargs = 0;
    if (!r->lua.co) {
        if (ensure_state(r, vm)) return policy_failed(r, "policy", "out of memory");
        co = coroutine(vm, &r->lua.co);
        if (!co) return policy_failed(r, "policy", "out of memory");
        runtime_field(vm, "run");
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->lua.state);
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->policy[rt->order]);
        push_request(L, r);
        lua_xmove(L, co, 6);
        nargs = 5;
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->lua.co);
        co = lua_tothread(L, -1);
        lua_pop(L, 1);
    }
    bool expired;
    gh_lua_vm_enter(vm, budget_left(vm, r));
    int st = lua_resume(co, nargs);
    r->lua.used_ns += gh_lua_vm_leave(vm, &expired);
    if (st > LUA_YIELD || expired) clear_current(vm); /* a normal end clears it itself */
    if (expired) { /* whatever the code did with the error, the run failed */
        const char *m = st > LUA_YIELD ? lua_tostring(co, -1) : NULL;
        return policy_failed(
            r, "policy",
            m && strstr(m, "time budget") ? m : "exceeded its time budget (lua.budget)");
    }
    if (st == LUA_YIELD) {
        lua_settop(co, 0);
        if (waiting(r)) return GH_PHASE_WAIT;
        return policy_failed(r, "policy",
                             "it yielded outside a gatehouse call "
                             "(coroutine.yield in the policy itself?)");
    }
    if (r->limit.failed_closed) { /* whatever the code did after gh.limit failed */
        lua_settop(co, 0);
        gh_limiter_unavailable(r);
        return GH_PHASE_STOP;
    }
    if (st != 0) return policy_failed(r, "policy", lua_tostring(co, -1));
    /* The thread returned normally, so it can run another policy; it is
     * taken off r first, since answering may free r (and run the next
     * pipelined request's policy) before apply returns. */
    int ref = r->lua.co;
    r->lua.co = 0;
    gh_phase_rc rc = apply(r, co);
    lua_settop(co, 0);
    if (vm->nthreads < (int)(sizeof(vm->threads) / sizeof(vm->threads[0])))
        vm->threads[vm->nthreads++] = ref;
    else
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return rc;
}

int gh_policy_on_response(gh_req_t *r, const gh_head_t *h, int status)
{
    gh_lua_vm_t *vm = r->gen->lua;
    const gh_route_t *rt = r->route;
    if (!rt->on_response || !vm) return 0;
    lua_State *L = vm->L;
    if (ensure_state(r, vm)) return -1;
    r->lua.resp = h;
    r->lua.resp_status = status;
    runtime_field(vm, "response");
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->lua.state);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->on_response[rt->order]);
    push_request(L, r);
    bool expired;
    gh_lua_vm_enter(vm, budget_left(vm, r));
    int st = lua_pcall(L, 5, 0, 0);
    r->lua.used_ns += gh_lua_vm_leave(vm, &expired);
    if (st == 0 && !expired) return 0;
    clear_current(vm);
    if (st == 0) lua_pushstring(L, "exceeded its time budget (lua.budget)");
    gh_log(GH_LOG_ERROR, "on_response of route %s (%s:%d) failed: %s (request_id=%s)", rt->name,
           rt->file, rt->line, lua_tostring(L, -1), r->id);
    lua_pop(L, 1);
    return -1;
}
