/* The C side of the policy API: gh_ffi_* functions that
 * lua/gatehouse/runtime.lua calls through LuaJIT's FFI, and the
 * "gatehouse.core" module of classic functions and function addresses. */
#ifndef GH_LUA_FFI_H
#define GH_LUA_FFI_H

#include <stddef.h>

#include <lua.h>

#include "req.h"

/* Each returns 0 (or a count/flag as documented in lua_ffi.c), or -1 with
 * *err set to a static message. r is a live request: the Lua side never
 * calls with one that has ended. */
int gh_ffi_req_str(gh_req_t *r, int what, const char **out, size_t *len);
int gh_ffi_header_get(gh_req_t *r, int resp, const char *name, size_t nlen, const char **out,
                      size_t *olen);
int gh_ffi_header_set(gh_req_t *r, int resp, const char *name, size_t nlen, const char *val,
                      size_t vlen, const char **err);
int gh_ffi_header_valid(const char *name, size_t nlen, const char *val, size_t vlen);
int gh_ffi_header_managed(const char *name, size_t nlen, int resp);
int gh_ffi_set_path(gh_req_t *r, const char *p, size_t len, const char **err);
int gh_ffi_set_query(gh_req_t *r, const char *q, size_t len, int drop, const char **err);
int gh_ffi_set_upstream(gh_req_t *r, const char *name, size_t len);
int gh_ffi_has_role(gh_req_t *r, const char *role, size_t len);
int gh_ffi_has_client_role(gh_req_t *r, const char *client, size_t clen, const char *role,
                           size_t len);
int gh_ffi_has_scope(gh_req_t *r, const char *scope, size_t len);
int gh_ffi_resp_status(gh_req_t *r);
void gh_ffi_log(gh_req_t *r, int level, const char *msg, size_t len);
int gh_ffi_sleep(gh_req_t *r, double seconds, const char **err);
int gh_ffi_limit(gh_req_t *r, const char *key, size_t klen, const double conf[3], int flags,
                 const char *name, size_t nlen, const char **err);
int gh_ffi_limit_result(gh_req_t *r, double out[4], const char **err);
int gh_ffi_revoke(gh_req_t *r, int kind, const char *id, size_t len, double t, const char **err);
int gh_ffi_revoke_result(gh_req_t *r, const char **err);

/* package.preload loader for "gatehouse.core". Pushes one table. */
int gh_luaopen_core(lua_State *L);

#endif
