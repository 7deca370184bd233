/* Lua states: the sandbox every route file runs in (config loading, the
 * workers' VMs, `gatehouse test`), and one VM per worker holding the
 * routes' policy and on_response functions, with the time budget. */
#ifndef GH_LUA_VM_H
#define GH_LUA_VM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "claims.h"

#define GH_LUA_LOAD_BUDGET 10.0 /* lua.load_budget's default, seconds */

typedef struct {
    double budget;      /* seconds of Lua run time per request; 0: unlimited */
    double load_budget; /* seconds a config load may run Lua: each state, and a reload's tests */
    bool jit;           /* compile route code too (its loops then cannot be interrupted) */
    bool unsafe;        /* io, os, debug, ffi and native modules for route code */
} gh_lua_conf_t;

typedef struct gh_config_s gh_config_t;

/* Limits the Lua that the calling thread runs in states made by
 * gh_lua_state_new (the config file, route files, a worker's VM as it
 * loads them) to `seconds` more of its CPU time; 0 lifts the limit. Past it, the
 * running code raises "file:line: ... (lua.load_budget)": so a route file
 * that never returns refuses its config instead of hanging the load. */
void gh_lua_load_limit(double seconds);

/* A Lua state with the gatehouse library loaded and, unless conf->unsafe,
 * everything else a route file could escape with removed. routes_dir (or
 * NULL) joins package.path so route files can require their own helpers.
 * Returns NULL with a message in err. */
lua_State *gh_lua_state_new(const gh_lua_conf_t *conf, const char *routes_dir, char *err,
                            size_t errlen);

/* Runs a route file's source (src, read from file) in L, with the JIT off
 * for its code unless conf->jit.
 * Returns 0 with its return value on the stack, or -1 with the message
 * (file:line) in err and the stack as it was. */
int gh_lua_run_route_file(lua_State *L, const gh_lua_conf_t *conf, const char *file,
                          const char *src, char *err, size_t errlen);

/* Appends the role path at the top of L's stack: "a.b.c" (split on dots)
 * or a list of segments, each taken whole ({ "resource_access",
 * "orders.api", "roles" }). Returns 0, or -1 for anything else. */
int gh_lua_role_path_add(lua_State *L, gh_role_paths_t *p);

typedef struct gh_lua_vm_s {
    lua_State *L;
    int *policy;      /* registry refs by route order (LUA_NOREF: none) */
    int *on_response; /* likewise */
    size_t nroutes;
    int runtime;     /* registry ref of gatehouse.runtime */
    int threads[64]; /* refs of finished coroutines, reused */
    int nthreads;
    uint64_t budget_ns;        /* 0: unlimited */
    uint64_t entered;          /* uv_hrtime() at gh_lua_vm_enter */
    bool expired;              /* the budget ran out during this stretch */
    _Atomic uint64_t deadline; /* uv_hrtime() when the running Lua must stop; 0: not running */
    _Atomic int hooked;        /* the budget hook is set */
    unsigned long thread;      /* pthread_t of the worker running it */
    bool detached;             /* off the watchdog's list and its thread's */
    struct gh_lua_vm_s *next;  /* in the watchdog's list */
} gh_lua_vm_t;

/* Builds a worker's VM for cfg: loads the route files again and keeps each
 * route's functions. Returns NULL with a message in err. */
gh_lua_vm_t *gh_lua_vm_new(const gh_config_t *cfg, char *err, size_t errlen);

/* Called on the thread that used the VM, so another thread may then free
 * it: no budget signal can reach it any more. */
void gh_lua_vm_detach(gh_lua_vm_t *vm);

/* Frees the VM: on the thread that used it, or any thread once detached. */
void gh_lua_vm_free(gh_lua_vm_t *vm);

/* Brackets a stretch of Lua run time on the calling (worker) thread: when
 * it runs past left_ns, the watchdog makes the running Lua raise an
 * error. gh_lua_vm_leave returns the nanoseconds spent, and sets *expired
 * when the budget ran out (the run failed, even if its code caught the
 * error). */
void gh_lua_vm_enter(gh_lua_vm_t *vm, uint64_t left_ns);
uint64_t gh_lua_vm_leave(gh_lua_vm_t *vm, bool *expired);

#endif
