/* gh_bench_lua_api: what the policy API costs per call through LuaJIT's FFI
 * (lua/gatehouse/runtime.lua, as policies use it) against the same calls
 * through classic lua_CFunctions (registered here only), on the same
 * detached request and the same gh_ffi_* C functions underneath, so the
 * binding is the only difference.
 *
 *   gh_bench_lua_api [-n ITERS] [-t SECONDS] [-r ROUNDS] [-o OP,...] [--traces]
 *
 * Each cell (mode x operation x binding) gets a fresh state from
 * gh_lua_state_new ({ budget = 0, jit = mode == compiled, unsafe = false }),
 * a warm-up (ITERS/20 iterations or SECONDS/10, whichever ends first), then
 * runs its Lua loop for ITERS iterations (default 2e6) or SECONDS (default
 * 1) of timed loop time, whichever ends first. The loop runs in batches of
 * BATCH iterations, each on a fresh detached request made (untimed) before
 * it, so header edits never pile up in one request's arena. ROUNDS
 * (default 3) rounds, FFI and classic cells interleaved; stdout gets a
 * Markdown table of the median ns per iteration, stderr each sample.
 * Modes:
 *   compiled     the loop is compiled, as the gatehouse library is (and
 *                route code with lua.jit = true);
 *   interpreted  the loop's chunk has the JIT off (luaJIT_setmode ALLFUNC
 *                OFF, as gh_lua_run_route_file does to route files by
 *                default); the library code it calls stays compiled.
 * The library is the tree's lua/ (GH_LUA_DIR), or GATEHOUSE_LUA_DIR: point
 * that at a changed copy to measure a runtime.lua change before and after.
 * --traces builds the states with unsafe = true (only to reach jit.*) and
 * prints, per cell, the traces started, compiled and aborted, with where
 * and why each abort happened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>

#include "lua_ffi.h"
#include "lua_vm.h"

/* ---- the classic binding: lua_CFunctions over the same gh_ffi_* calls ---- */

static gh_req_t *req_arg(lua_State *L)
{
    gh_req_t *r = lua_touserdata(L, 1);
    if (!r) luaL_argerror(L, 1, "request expected");
    return r;
}

/* req_str(r, what) -> string or nil */
static int k_req_str(lua_State *L)
{
    gh_req_t *r = req_arg(L);
    const char *s;
    size_t n;
    if (gh_ffi_req_str(r, (int)lua_tointeger(L, 2), &s, &n) == 1)
        lua_pushlstring(L, s, n);
    else
        lua_pushnil(L);
    return 1;
}

/* header_get(r, resp, name) -> string or nil */
static int k_header_get(lua_State *L)
{
    gh_req_t *r = req_arg(L);
    size_t nl, vl;
    const char *name = luaL_checklstring(L, 3, &nl), *v;
    int rc = gh_ffi_header_get(r, (int)lua_tointeger(L, 2), name, nl, &v, &vl);
    if (rc < 0) return luaL_error(L, "out of memory reading a header");
    if (rc == 1)
        lua_pushlstring(L, v, vl);
    else
        lua_pushnil(L);
    return 1;
}

/* header_set(r, resp, name, value|nil) -> nothing, or the error message */
static int k_header_set(lua_State *L)
{
    gh_req_t *r = req_arg(L);
    size_t nl, vl = 0;
    const char *name = luaL_checklstring(L, 3, &nl);
    const char *v = lua_isnil(L, 4) ? NULL : luaL_checklstring(L, 4, &vl);
    const char *err = NULL;
    if (gh_ffi_header_set(r, (int)lua_tointeger(L, 2), name, nl, v, vl, &err) == 0) return 0;
    lua_pushstring(L, err);
    return 1;
}

/* has_role(r, role) -> boolean */
static int k_has_role(lua_State *L)
{
    gh_req_t *r = req_arg(L);
    size_t len;
    const char *role = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, gh_ffi_has_role(r, role, len) != 0);
    return 1;
}

static const luaL_Reg classic_fns[] = {{"req_str", k_req_str},
                                       {"header_get", k_header_get},
                                       {"header_set", k_header_set},
                                       {"has_role", k_has_role},
                                       {NULL, NULL}};

/* The classic twin of the parts of runtime.lua the bench uses: the same
 * objects, metatables, caching and Lua-side checks; only the C calls differ
 * (a lua_CFunction taking the request as a light userdata, instead of an FFI
 * call taking a gh_req_t * cdata). Loaded like the gatehouse library: JIT on
 * in both modes. */
static const char classic_lib[] =
    "local K, core = ...\n"
    "local k_req_str, k_header_get, k_header_set, k_has_role =\n"
    "  K.req_str, K.header_get, K.header_set, K.has_role\n"
    "local type, tostring, error, rawget, rawset, setmetatable =\n"
    "  type, tostring, error, rawget, rawset, setmetatable\n"
    "local function ptr(o)\n"
    "  local r = rawget(o, '_lud')\n"
    "  if r == nil then error('this request has ended', 3) end\n"
    "  return r\n"
    "end\n"
    "local headers_mt = {\n"
    "  __index = function(h, name)\n"
    "    if type(name) ~= 'string' then return nil end\n"
    "    return k_header_get(ptr(h._o), h._resp, name)\n"
    "  end,\n"
    "  __newindex = function(h, name, v)\n"
    "    if type(name) ~= 'string' then error('header names are strings', 2) end\n"
    "    if type(v) == 'number' then v = tostring(v) end\n"
    "    if v ~= nil and type(v) ~= 'string' then\n"
    "      error('header ' .. name .. ' must be set to a string, a number or nil', 2)\n"
    "    end\n"
    "    local err = k_header_set(ptr(h._o), h._resp, name, v)\n"
    "    if err then error('cannot set header ' .. name .. ': ' .. err, 2) end\n"
    "  end,\n"
    "}\n"
    "local STR = { method = 0, path = 1, host = 3, client_ip = 4, id = 5 }\n"
    "local Req = {}\n"
    "local req_mt = {\n"
    "  __index = function(self, k)\n"
    "    local m = Req[k]\n"
    "    if m then return m end\n"
    "    local what = STR[k]\n"
    "    if what then\n"
    "      local v = k_req_str(ptr(self), what)\n"
    "      rawset(self, k, v)\n"
    "      return v\n"
    "    end\n"
    "    if k == 'headers' then\n"
    "      local h = setmetatable({ _o = self, _resp = 0 }, headers_mt)\n"
    "      rawset(self, k, h)\n"
    "      return h\n"
    "    end\n"
    "  end,\n"
    "  __newindex = function(_, k)\n"
    "    error('req.' .. tostring(k) .. ' cannot be assigned', 2)\n"
    "  end,\n"
    "}\n"
    "local Claims = {}\n"
    "local function str_arg(v, what, level)\n"
    "  if type(v) ~= 'string' then\n"
    "    error(what .. ' must be a string, got ' .. type(v), level + 1)\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "function Claims:has_role(role)\n"
    "  str_arg(role, \"claims:has_role's role\", 2)\n"
    "  return k_has_role(ptr(self), role)\n"
    "end\n"
    "local claims_mt = {\n"
    "  __index = function(self, k)\n"
    "    local m = Claims[k]\n"
    "    if m then return m end\n"
    "    ptr(self)\n"
    "    if type(k) ~= 'string' then return nil end\n"
    "    local v = core.claim(self._lud, k)\n"
    "    if v ~= nil then rawset(self, k, v) end\n"
    "    return v\n"
    "  end,\n"
    "}\n"
    "local R = {}\n"
    "function R.state(lud, with_claims)\n"
    "  return {\n"
    "    req = setmetatable({ _lud = lud }, req_mt),\n"
    "    claims = with_claims and setmetatable({ _lud = lud }, claims_mt) or nil,\n"
    "    ctx = {},\n"
    "    lud = lud,\n"
    "  }\n"
    "end\n"
    "return R\n";

/* The "route code": the loops and the policy. Loaded with the JIT off in
 * the interpreted mode. Returns build(binding, op) -> loop(n), check(v, n):
 * loop runs the operation n times and returns a value check validates. */
static const char bench_chunk[] =
    "local classic, core = ...\n"
    "local gh = require 'gatehouse'\n"
    "local t = require 'gatehouse.test'\n"
    "local rt = require 'gatehouse.runtime'\n"
    "local rawset = rawset\n"
    "\n"
    "local SPEC = {\n"
    "  method = 'GET', path = '/api/orders/7', host = 'api.example.com',\n"
    "  headers = {\n"
    "    ['User-Agent'] = 'bench/1.0', Accept = 'application/json',\n"
    "    Authorization = 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln',\n"
    "    ['Accept-Encoding'] = 'gzip', ['X-Foo'] = 'bar',\n"
    "  },\n"
    "}\n"
    "local CLAIMS = {\n"
    "  sub = 'alice', tenant_id = 'acme', scope = 'openid profile',\n"
    "  realm_access = { roles = { 'OPS', 'USER' } },\n"
    "}\n"
    "\n"
    "-- The ten-line policy of bench/README.md's policy phase.\n"
    "local function policy(req, claims)\n"
    "  if not claims:has_role('USER') then\n"
    "    return gh.deny(403, 'USER role required')\n"
    "  end\n"
    "  if req.method ~= 'GET' and req.method ~= 'HEAD' then\n"
    "    return gh.deny(405, 'read-only route')\n"
    "  end\n"
    "  if req.path:find('/admin/', 1, true) then\n"
    "    return gh.deny(403, 'no admin paths here')\n"
    "  end\n"
    "  req.headers['X-User-Id'] = claims.sub\n"
    "  req.headers['X-Tenant-Id'] = claims.tenant_id\n"
    "end\n"
    "\n"
    "local function is(want) return function(v) return v == want end end\n"
    "local function count(v, n) return v == n end\n"
    "\n"
    "return function(binding, op)\n"
    "  local state = binding == 'ffi' and rt.state or classic.state\n"
    "  local keep, lud, req, claims\n"
    "  -- A fresh detached request (t.request) that also carries the claims,\n"
    "  -- as a live one does (core.test_claims is what t.claims calls), and\n"
    "  -- its req and claims objects. The C side calls it before each batch\n"
    "  -- (untimed), so header edits do not pile up in one request's arena;\n"
    "  -- the previous request goes to the GC (keep holds the current one:\n"
    "  -- the C side holds reset on its stack).\n"
    "  local function reset()\n"
    "    keep = t.request(SPEC)\n"
    "    lud = keep._lud\n"
    "    core.test_claims(keep._owner, CLAIMS, nil) -- nil: default role paths\n"
    "    local st = state(lud, true)\n"
    "    req, claims = st.req, st.claims\n"
    "  end\n"
    "  reset()\n"
    "  local loop, check\n"
    "  if op == 'empty' then\n"
    "    loop = function(n)\n"
    "      local v\n"
    "      for i = 1, n do v = i end\n"
    "      return v\n"
    "    end\n"
    "    check = count\n"
    "  elseif op == 'header_get' then\n"
    "    loop = function(n)\n"
    "      local v\n"
    "      for _ = 1, n do v = req.headers['x-foo'] end\n"
    "      return v\n"
    "    end\n"
    "    check = is('bar')\n"
    "  elseif op == 'has_role' then\n"
    "    loop = function(n)\n"
    "      local k = 0\n"
    "      for _ = 1, n do if claims:has_role('USER') then k = k + 1 end end\n"
    "      return k\n"
    "    end\n"
    "    check = count\n"
    "  elseif op == 'method' then\n"
    "    -- the first read of req.method in a request: later ones hit the\n"
    "    -- value cached in the req table, so clear it each time\n"
    "    loop = function(n)\n"
    "      local v\n"
    "      for _ = 1, n do rawset(req, 'method', nil); v = req.method end\n"
    "      return v\n"
    "    end\n"
    "    check = is('GET')\n"
    "  elseif op == 'header_set' then\n"
    "    loop = function(n)\n"
    "      for _ = 1, n do req.headers['X-User'] = claims.sub end\n"
    "      return req.headers['x-user']\n"
    "    end\n"
    "    check = is('alice')\n"
    "  elseif op == 'state' then\n"
    "    -- what the gateway makes per request before the policy runs\n"
    "    loop = function(n)\n"
    "      local s\n"
    "      for _ = 1, n do s = state(lud, true) end\n"
    "      return s\n"
    "    end\n"
    "    check = function(s) return s.claims.sub == 'alice' end\n"
    "  elseif op == 'policy' then\n"
    "    -- per request, as the gateway does: fresh req/claims/ctx objects\n"
    "    -- (runtime.state) over the request, then the policy\n"
    "    loop = function(n)\n"
    "      local k = 0\n"
    "      for _ = 1, n do\n"
    "        local s = state(lud, true)\n"
    "        if policy(s.req, s.claims) == nil then k = k + 1 end\n"
    "      end\n"
    "      local s = state(lud, true)\n"
    "      local h = s.req.headers\n"
    "      if h['x-user-id'] ~= 'alice' or h['x-tenant-id'] ~= 'acme' then return -1 end\n"
    "      return k\n"
    "    end\n"
    "    check = count\n"
    "  else\n"
    "    error('unknown op ' .. tostring(op))\n"
    "  end\n"
    "  return loop, check, reset\n"
    "end\n";

/* --traces: counts trace events in the state (needs unsafe = true). */
static const char traces_attach[] =
    "local jit = require 'jit'\n"
    "local ju = require 'jit.util'\n"
    "-- jit.vmdef (the abort messages) ships with LuaJIT's jit/*.lua, if installed\n"
    "package.path = package.path .. ';/usr/share/luajit-' .. jit.version:match('%d[%w.-]*') ..\n"
    "  '/?.lua;/usr/local/share/luajit-' .. jit.version:match('%d[%w.-]*') .. '/?.lua'\n"
    "local ok, vmdef = pcall(require, 'jit.vmdef')\n"
    "if not ok then vmdef = nil end\n"
    "local function where(func, pc)\n"
    "  local fi = ju.funcinfo(func, pc)\n"
    "  if fi.loc then return fi.loc end\n"
    "  if fi.ffid and vmdef then return vmdef.ffnames[fi.ffid] end\n"
    "  if fi.addr then return string.format('C:%x', fi.addr) end\n"
    "  return '?'\n"
    "end\n"
    "local function why(err, info)\n"
    "  if not vmdef then return 'error ' .. tostring(err) end\n"
    "  if type(info) == 'function' then info = where(info) end\n"
    "  return string.format(vmdef.traceerr[err], info)\n"
    "end\n"
    "local T = { started = 0, stopped = 0, aborted = 0, where = {} }\n"
    "jit.attach(function(what, tr, func, pc, otr, oex)\n"
    "  if what == 'start' then T.started = T.started + 1\n"
    "  elseif what == 'stop' then T.stopped = T.stopped + 1\n"
    "  elseif what == 'abort' then\n"
    "    T.aborted = T.aborted + 1\n"
    "    local k = where(func, pc) .. ': ' .. why(otr, oex)\n"
    "    T.where[k] = (T.where[k] or 0) + 1\n"
    "  end\n"
    "end, 'trace')\n"
    "return function()\n"
    "  local w = {}\n"
    "  for k, n in pairs(T.where) do w[#w + 1] = k .. ' x' .. n end\n"
    "  table.sort(w)\n"
    "  return string.format('traces: %d started, %d compiled, %d aborted%s',\n"
    "    T.started, T.stopped, T.aborted,\n"
    "    #w > 0 and (' [' .. table.concat(w, '; ') .. ']') or '')\n"
    "end\n";

/* ---- the driver ---------------------------------------------------------- */

enum { COMPILED, INTERPRETED, NMODES };
enum { FFI, CLASSIC, NBINDINGS };
static const char *mode_names[NMODES] = {"compiled", "interpreted"};
static const char *binding_names[NBINDINGS] = {"ffi", "classic"};

static const struct {
    const char *op, *label;
} ops[] = {
    {"empty", "empty loop (reference)"},
    {"header_get", "`req.headers[\"x-foo\"]`"},
    {"has_role", "`claims:has_role(\"USER\")`"},
    {"method", "`req.method` (first read in a request)"},
    {"header_set", "`req.headers[\"X-User\"] = claims.sub`"},
    {"state", "per-request objects (`runtime.state`)"},
    {"policy", "per-request objects + ten-line policy"},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))
/* Iterations per timed call of a loop; each batch runs on a fresh detached
 * request, made untimed before it. */
#define BATCH 1000L

static long iters = 2000000;
static double max_seconds = 1.0;
static int rounds = 3;
static int show_traces;
static const char *only; /* -o: comma-separated operations to run */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(lua_State *L, const char *what)
{
    fprintf(stderr, "gh_bench_lua_api: %s: %s\n", what, L ? lua_tostring(L, -1) : "");
    exit(1);
}

/* Calls the loop at the top of the stack (left there) n times; returns
 * its result checked against the check function just below it. */
/* The stack holds reset, check, loop (top). */

/* Makes a fresh request for the next batch (untimed). */
static void reset(lua_State *L, const char *cell)
{
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 0, 0, 0) != 0) die(L, cell);
}

/* Runs the loop n times; returns the seconds it took. */
static double run_batch(lua_State *L, long n, const char *cell)
{
    lua_pushvalue(L, -1);
    lua_pushnumber(L, (lua_Number)n);
    double t0 = mono();
    if (lua_pcall(L, 1, 1, 0) != 0) die(L, cell);
    double t = mono() - t0;
    lua_pushvalue(L, -3); /* check(result, n) */
    lua_pushvalue(L, -2);
    lua_pushnumber(L, (lua_Number)n);
    if (lua_pcall(L, 2, 1, 0) != 0) die(L, cell);
    if (!lua_toboolean(L, -1)) {
        fprintf(stderr, "gh_bench_lua_api: %s: wrong result: %s %s\n", cell, luaL_typename(L, -2),
                lua_isstring(L, -2) ? lua_tostring(L, -2) : "");
        exit(1);
    }
    lua_pop(L, 2);
    return t;
}

/* One cell in a fresh state. Returns ns per iteration. */
static double run_cell(int mode, int binding, size_t op, char *trace_info, size_t tlen)
{
    char err[1024], cell[128];
    snprintf(cell, sizeof(cell), "%s/%s/%s", mode_names[mode], ops[op].op, binding_names[binding]);
    gh_lua_conf_t conf = {.budget = 0, .jit = mode == COMPILED, .unsafe = show_traces != 0};
    lua_State *L = gh_lua_state_new(&conf, NULL, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "gh_bench_lua_api: %s\n", err);
        exit(1);
    }
    int report = LUA_NOREF;
    if (show_traces) {
        if (luaL_loadbuffer(L, traces_attach, sizeof(traces_attach) - 1, "=traces") ||
            lua_pcall(L, 0, 1, 0))
            die(L, "traces");
        report = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    /* The sandbox hides "gatehouse.core" (raw request pointers) from route
     * code; the bench opens its own copy of the same module from C and
     * hands it to its chunks: core.claim for claims, core.test_claims. */
    /* the classic library: loaded as lua/gatehouse/ is, JIT on */
    if (luaL_loadbuffer(L, classic_lib, sizeof(classic_lib) - 1, "=classic_lib")) die(L, "load");
    lua_newtable(L);
    luaL_register(L, NULL, classic_fns);
    gh_luaopen_core(L);
    if (lua_pcall(L, 2, 1, 0)) die(L, "classic_lib");
    /* the route code: JIT off in the interpreted mode, as gh_lua_run_route_file does */
    if (luaL_loadbuffer(L, bench_chunk, sizeof(bench_chunk) - 1, "=bench")) die(L, "load");
    if (mode == INTERPRETED) luaJIT_setmode(L, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
    lua_insert(L, -2);
    gh_luaopen_core(L);
    if (lua_pcall(L, 2, 1, 0)) die(L, "bench chunk");
    lua_pushstring(L, binding_names[binding]);
    lua_pushstring(L, ops[op].op);
    if (lua_pcall(L, 2, 3, 0)) die(L, cell); /* loop, check, reset */
    lua_insert(L, -3);
    lua_insert(L, -2); /* reset, check, loop */

    /* warm-up: let the JIT settle (compile, or give up and blacklist) */
    long warm = 0, warm_max = iters / 20 > BATCH ? iters / 20 : BATCH;
    double t0 = mono();
    while (warm < warm_max && mono() - t0 < max_seconds / 10) {
        reset(L, cell);
        run_batch(L, BATCH, cell);
        warm += BATCH;
    }
    lua_gc(L, LUA_GCCOLLECT, 0);

    long done = 0;
    double spent = 0;
    while (done < iters && spent < max_seconds) {
        long n = iters - done < BATCH ? iters - done : BATCH;
        reset(L, cell);
        spent += run_batch(L, n, cell);
        done += n;
    }
    if (show_traces) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, report);
        if (lua_pcall(L, 0, 1, 0)) die(L, "traces");
        snprintf(trace_info, tlen, "%s", lua_tostring(L, -1));
    }
    lua_close(L);
    return spent * 1e9 / (double)done;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[64];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), by_value);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int selected(size_t op)
{
    if (!only) return 1;
    size_t n = strlen(ops[op].op);
    for (const char *p = only; (p = strstr(p, ops[op].op)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: gh_bench_lua_api [-n ITERS] [-t SECONDS] [-r ROUNDS] [-o OP,...] "
                    "[--traces]\n  OP: empty header_get has_role method header_set state policy\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iters = (long)strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            max_seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--traces") == 0)
            show_traces = 1;
        else
            usage();
    }
    if (iters < 1 || max_seconds <= 0 || rounds < 1 || rounds > 64) usage();

    static double ns[NMODES][NOPS][NBINDINGS][64];
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < NMODES; m++)
            for (size_t o = 0; o < NOPS; o++)
                for (int k = 0; k < NBINDINGS && selected(o); k++) {
                    int b = (k + r) % 2; /* alternate which binding goes first */
                    char info[2048] = "";
                    ns[m][o][b][r] = run_cell(m, b, o, info, sizeof(info));
                    fprintf(stderr, "round %d %-11s %-10s %-7s %8.1f ns/op%s%s\n", r + 1,
                            mode_names[m], ops[o].op, binding_names[b], ns[m][o][b][r],
                            show_traces ? "  " : "", info);
                }

    printf("\n%s; up to %ld iterations or %.2g s per cell after a warm-up, "
           "median of %d round(s); ns per iteration (lower is better)%s\n\n",
           LUAJIT_VERSION, iters, max_seconds, rounds,
           show_traces ? " [--traces: unsafe states with trace hooks]" : "");
    printf("| operation | compiled: FFI | compiled: classic | classic/FFI "
           "| interpreted: FFI | interpreted: classic | classic/FFI |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t o = 0; o < NOPS; o++) {
        if (!selected(o)) continue;
        printf("| %s", ops[o].label);
        for (int m = 0; m < NMODES; m++) {
            double f = median(ns[m][o][FFI], rounds), c = median(ns[m][o][CLASSIC], rounds);
            printf(" | %.1f | %.1f | %.2fx", f, c, c / f);
        }
        printf(" |\n");
    }
    return 0;
}
