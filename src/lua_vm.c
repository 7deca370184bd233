#include "lua_vm.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>

#include "config.h"
#include "lua_ffi.h"

static char lua_dir_path[PATH_MAX];
static const char *lua_dir_chosen;
static pthread_once_t lua_dir_once = PTHREAD_ONCE_INIT;

/* Sets lua_dir_path to GH_LUA_DIR_REL (e.g. "../share/gatehouse/lua") taken
 * from the running binary's directory, resolved, if the library is there. */
static int lua_dir_installed(void)
{
    static const char rel[] = "/" GH_LUA_DIR_REL "/gatehouse/sandbox.lua";
    char path[PATH_MAX + sizeof(rel)];
    ssize_t n = readlink("/proc/self/exe", path, PATH_MAX);
    if (n <= 0 || n >= PATH_MAX) return -1;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash) return -1;
    memcpy(slash, rel, sizeof(rel));
    if (!realpath(path, lua_dir_path)) return -1;
    *strrchr(lua_dir_path, '/') = '\0'; /* .../lua/gatehouse */
    *strrchr(lua_dir_path, '/') = '\0'; /* .../lua */
    return 0;
}

/* Chooses the Lua library directory once per process: $GATEHOUSE_LUA_DIR,
 * else the installed share/gatehouse/lua beside this binary (so an installed
 * or DESTDIR-relocated copy finds its own), else the source tree's lua/
 * (so the build tree runs without installing). */
static void lua_dir_pick(void)
{
    const char *env = getenv("GATEHOUSE_LUA_DIR");
    if (env) {
        snprintf(lua_dir_path, sizeof(lua_dir_path), "%s", env);
        lua_dir_chosen = lua_dir_path;
    } else if (lua_dir_installed() == 0) {
        lua_dir_chosen = lua_dir_path;
    } else {
        lua_dir_chosen = GH_LUA_DIR;
    }
}

static const char *lua_dir(void)
{
    pthread_once(&lua_dir_once, lua_dir_pick);
    return lua_dir_chosen;
}

static _Thread_local uint64_t load_deadline; /* thread_cpu_ns(); 0: no limit */
static _Thread_local double load_seconds;

/* The calling thread's CPU time: a reload loads at nice 10, so under load
 * its wall-clock time says little about the code it runs. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void gh_lua_load_limit(double seconds)
{
    load_seconds = seconds;
    load_deadline = seconds > 0 ? thread_cpu_ns() + (uint64_t)(seconds * 1e9) : 0;
}

/* Raises the load-limit error past the deadline, and at every next
 * instruction after, so no pcall in the loading code can swallow it. */
static void load_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (!load_deadline || thread_cpu_ns() < load_deadline) return;
    lua_sethook(L, load_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0);
    lua_pushfstring(L, "still running after %f s of CPU time loading (lua.load_budget)",
                    load_seconds);
    lua_concat(L, 2);
    lua_error(L);
}

lua_State *gh_lua_state_new(const gh_lua_conf_t *conf, const char *routes_dir, char *err,
                            size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state: out of memory");
        return NULL;
    }
    /* the hook sees only interpreted code: the config file and, in the
     * loader's state, route files load with the JIT off (with lua.jit a
     * worker's VM compiles them, running the code the loader ran) */
    lua_sethook(L, load_hook, LUA_MASKCOUNT, 1000);
    luaL_openlibs(L);
    const char *dir = lua_dir();
    lua_getglobal(L, "package");
    if (routes_dir)
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua", dir, dir, routes_dir);
    else
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, gh_luaopen_core);
    lua_setfield(L, -2, "gatehouse.core");
    lua_pop(L, 2);
    char path[4096];
    snprintf(path, sizeof(path), "%s/gatehouse/sandbox.lua", dir);
    if (luaL_loadfile(L, path) != 0) goto fail;
    lua_pushboolean(L, conf->unsafe);
    lua_pushboolean(L, conf->jit);
    if (lua_pcall(L, 2, 0, 0) != 0) goto fail;
    return L;
fail:
    snprintf(err, errlen, "cannot load the gatehouse Lua library: %s", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
}

int gh_lua_run_route_file(lua_State *L, const gh_lua_conf_t *conf, const char *file,
                          const char *src, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    lua_pushfstring(L, "@%s", file);
    int rc = luaL_loadbuffer(L, src, strlen(src), lua_tostring(L, -1));
    lua_remove(L, -2);
    if (rc != 0) goto fail;
    if (!conf->jit) luaJIT_setmode(L, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
    if (lua_pcall(L, 0, 1, 0) != 0) goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
}

int gh_lua_role_path_add(lua_State *L, gh_role_paths_t *p)
{
    if (lua_type(L, -1) == LUA_TSTRING) return gh_role_paths_add_dotted(p, lua_tostring(L, -1));
    if (!lua_istable(L, -1)) return -1;
    const char *seg[32];
    size_t n = lua_objlen(L, -1), count = 0;
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) count++;
    if (n == 0 || n > 32 || count != n) return -1;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        seg[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        lua_pop(L, 1); /* the string stays alive in the table */
        if (!seg[i]) return -1;
    }
    return gh_role_paths_add(p, seg, n);
}

/* Keeps the function in field name of the table on top, or LUA_NOREF. */
static int ref_field(lua_State *L, const char *name)
{
    lua_getfield(L, -1, name);
    if (lua_isfunction(L, -1)) return luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return LUA_NOREF;
}

/* Keeps the functions of the route table on top as route number i. */
static int keep_route(gh_lua_vm_t *vm, size_t i)
{
    if (i >= vm->nroutes || !lua_istable(vm->L, -1)) return -1;
    vm->policy[i] = ref_field(vm->L, "policy");
    vm->on_response[i] = ref_field(vm->L, "on_response");
    return 0;
}

/* Runs each route file again, in the order the config loader did, and
 * keeps the functions of the routes they return. */
static int load_routes(gh_lua_vm_t *vm, const gh_config_t *cfg, char *err, size_t errlen)
{
    lua_State *L = vm->L;
    size_t next = 0;
    for (size_t f = 0; f < cfg->nroute_files; f++) {
        if (gh_lua_run_route_file(L, &cfg->lua, cfg->route_files[f], cfg->route_srcs[f], err,
                                  errlen))
            return -1;
        int rc = 0;
        size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
        if (n == 0) {
            rc = keep_route(vm, next++);
        } else {
            for (size_t i = 1; i <= n && !rc; i++) {
                lua_rawgeti(L, -1, (int)i);
                rc = keep_route(vm, next++);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        if (rc) {
            snprintf(err, errlen, "%s: returned other routes than when the config was loaded",
                     cfg->route_files[f]);
            return -1;
        }
    }
    if (next != vm->nroutes) {
        snprintf(err, errlen, "route files returned %zu routes, the config loader saw %zu", next,
                 vm->nroutes);
        return -1;
    }
    return 0;
}

/* ---- the time budget ---------------------------------------------------
 * LuaJIT checks hooks only in its interpreter, so route code runs with the
 * JIT off (gh_lua_run_route_file) and a watchdog thread, on seeing a VM
 * past its deadline, signals the worker thread; the signal handler sets a
 * count hook (lua_sethook is safe there), and the hook raises the error. */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static gh_lua_vm_t *wd_vms;
static pthread_t wd_thread;
static int wd_running, wd_stop;
static _Thread_local gh_lua_vm_t *tls_vm;

/* Past the deadline, raises the budget error, and again at every next
 * instruction: a pcall that catches it only unwinds one level, so the
 * error reaches the run however the code nests pcall, xpcall handlers or
 * coroutines. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    gh_lua_vm_t *vm = tls_vm;
    uint64_t d = vm ? atomic_load(&vm->deadline) : 0;
    if (d && uv_hrtime() >= d) {
        if (!vm->expired) {
            vm->expired = true;
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        }
        luaL_where(L, 0); /* where it was running, not where that was called from */
        lua_pushstring(L, "exceeded its time budget (lua.budget)");
        lua_concat(L, 2);
        lua_error(L);
    }
    if (vm && !d) {
        lua_sethook(L, NULL, 0, 0);
        atomic_store(&vm->hooked, 0);
    }
}

static void on_budget_signal(int sig)
{
    (void)sig;
    gh_lua_vm_t *vm = tls_vm;
    if (vm && atomic_load(&vm->deadline) && !atomic_exchange(&vm->hooked, 1))
        lua_sethook(vm->L, budget_hook, LUA_MASKCOUNT, 200);
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec tick = {0, 2 * 1000 * 1000};
    for (;;) {
        pthread_mutex_lock(&wd_lock);
        if (wd_stop) {
            pthread_mutex_unlock(&wd_lock);
            return NULL;
        }
        uint64_t now = uv_hrtime();
        for (gh_lua_vm_t *vm = wd_vms; vm; vm = vm->next) {
            uint64_t d = atomic_load(&vm->deadline);
            if (d && now >= d && !atomic_load(&vm->hooked))
                pthread_kill((pthread_t)vm->thread, SIGURG);
        }
        pthread_mutex_unlock(&wd_lock);
        nanosleep(&tick, NULL);
    }
}

/* With wd_lock held: starts the watchdog thread. */
static void start_watchdog(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_budget_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    wd_stop = 0;
    wd_running = pthread_create(&wd_thread, NULL, watchdog, NULL) == 0;
}

static void watch(gh_lua_vm_t *vm)
{
    pthread_mutex_lock(&wd_lock);
    vm->next = wd_vms;
    wd_vms = vm;
    if (!wd_running) start_watchdog(); /* while it is stopping, unwatch restarts it */
    pthread_mutex_unlock(&wd_lock);
}

/* The last VM off the list stops the thread (one caller joins it); a VM
 * watched meanwhile (a reload's build) has it started again. */
static void unwatch(gh_lua_vm_t *vm)
{
    pthread_mutex_lock(&wd_lock);
    for (gh_lua_vm_t **p = &wd_vms; *p; p = &(*p)->next)
        if (*p == vm) {
            *p = vm->next;
            break;
        }
    bool last = wd_vms == NULL && wd_running && !wd_stop;
    if (last) wd_stop = 1;
    pthread_mutex_unlock(&wd_lock);
    if (!last) return;
    pthread_join(wd_thread, NULL);
    pthread_mutex_lock(&wd_lock);
    wd_running = 0;
    if (wd_vms) start_watchdog();
    pthread_mutex_unlock(&wd_lock);
}

void gh_lua_vm_enter(gh_lua_vm_t *vm, uint64_t left_ns)
{
    tls_vm = vm;
    vm->thread = (unsigned long)pthread_self();
    vm->entered = uv_hrtime();
    vm->expired = false;
    atomic_store(&vm->deadline, vm->budget_ns ? vm->entered + (left_ns ? left_ns : 1) : 0);
}

uint64_t gh_lua_vm_leave(gh_lua_vm_t *vm, bool *expired)
{
    *expired = vm->expired;
    atomic_store(&vm->deadline, 0);
    if (atomic_exchange(&vm->hooked, 0)) lua_sethook(vm->L, NULL, 0, 0);
    return uv_hrtime() - vm->entered;
}

gh_lua_vm_t *gh_lua_vm_new(const gh_config_t *cfg, char *err, size_t errlen)
{
    gh_lua_vm_t *vm = calloc(1, sizeof(*vm));
    if (!vm) return NULL;
    vm->nroutes = gh_router_count(cfg->router);
    vm->policy = malloc((vm->nroutes + 1) * sizeof(int));
    vm->on_response = malloc((vm->nroutes + 1) * sizeof(int));
    vm->budget_ns = (uint64_t)(cfg->lua.budget * 1e9);
    vm->runtime = LUA_NOREF;
    if (!vm->policy || !vm->on_response) goto fail;
    for (size_t i = 0; i < vm->nroutes; i++) vm->policy[i] = vm->on_response[i] = LUA_NOREF;
    gh_lua_load_limit(cfg->lua.load_budget);
    vm->L = gh_lua_state_new(&cfg->lua, cfg->routes_dir, err, errlen);
    int rc = !vm->L || load_routes(vm, cfg, err, errlen);
    gh_lua_load_limit(0);
    if (rc) goto fail;
    lua_getglobal(vm->L, "require");
    lua_pushstring(vm->L, "gatehouse.runtime");
    if (lua_pcall(vm->L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "gatehouse.runtime: %s", lua_tostring(vm->L, -1));
        goto fail;
    }
    vm->runtime = luaL_ref(vm->L, LUA_REGISTRYINDEX);
    lua_sethook(vm->L, NULL, 0, 0); /* loaded: requests run under lua.budget instead */
    if (vm->budget_ns) watch(vm);
    return vm;
fail:
    if (vm->L) lua_close(vm->L);
    free(vm->policy);
    free(vm->on_response);
    free(vm);
    return NULL;
}

void gh_lua_vm_detach(gh_lua_vm_t *vm)
{
    if (!vm || vm->detached) return;
    vm->detached = true;
    if (vm->budget_ns) unwatch(vm);
    if (tls_vm == vm) tls_vm = NULL;
}

void gh_lua_vm_free(gh_lua_vm_t *vm)
{
    if (!vm) return;
    gh_lua_vm_detach(vm);
    lua_close(vm->L);
    free(vm->policy);
    free(vm->on_response);
    free(vm);
}
