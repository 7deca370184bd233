#include "lua_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <lauxlib.h>

#include "claims.h"
#include "lua_vm.h"
#include "path.h"
#include "req.h"

#define OWNER_MT "gatehouse.test_request"

/* A detached request (no connection, worker or config) and what it owns. */
typedef struct {
    gh_req_t *r;
    gh_role_paths_t roles;
} owner_t;

static int owner_gc(lua_State *L)
{
    owner_t *o = luaL_checkudata(L, 1, OWNER_MT);
    if (o->r) {
        json_decref(o->r->claims);
        gh_req_free(o->r);
        o->r = NULL;
    }
    gh_role_paths_free(&o->roles);
    return 0;
}

static owner_t *check_owner(lua_State *L, int idx)
{
    owner_t *o = luaL_checkudata(L, idx, OWNER_MT);
    if (!o->r) luaL_error(L, "this test request was freed");
    return o;
}

/* The string field key of table idx, or def. */
static const char *opt_field(lua_State *L, int idx, const char *key, const char *def, size_t *len)
{
    lua_getfield(L, idx, key);
    const char *s = lua_isnil(L, -1) ? def : lua_tolstring(L, -1, len);
    if (!lua_isnil(L, -1) && !s) luaL_error(L, "t.request: '%s' must be a string", key);
    lua_pop(L, 1); /* strings from the spec table stay alive in it */
    if (s == def && len) *len = def ? strlen(def) : 0;
    return s;
}

static int parse_method(const char *m)
{
#define GH_METHOD(num, name, string)                                                               \
    if (strcmp(#string, m) == 0) return num;
    HTTP_METHOD_MAP(GH_METHOD)
#undef GH_METHOD
    return -1;
}

/* Adds "name: value" to head h, in the request's arena. */
static void add_header(lua_State *L, gh_req_t *r, gh_head_t *h, const char *name, size_t nl,
                       const char *v, size_t vl)
{
    if (!gh_hdr_name_valid(name, nl) || !gh_hdr_value_valid(v, vl))
        luaL_error(L, "t.request: invalid header %s", name);
    if (gh_head_new_field(r->arena, h, 1000) || gh_head_append(r->arena, h, name, nl, 1 << 20))
        luaL_error(L, "t.request: out of memory");
    gh_hdr_t *x = &h->hdrs[h->n - 1];
    x->name_len = (uint32_t)nl;
    x->value = h->len;
    if (gh_head_append(r->arena, h, v, vl, 1 << 20)) luaL_error(L, "out of memory");
    x->value_len = (uint32_t)vl;
}

/* Copies the headers table at idx ({ name = "v" } or { name = { "v1", "v2" } }). */
static void add_headers(lua_State *L, gh_req_t *r, gh_head_t *h, int idx)
{
    if (lua_isnil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        size_t nl, vl;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nl) : NULL;
        if (!name) luaL_error(L, "header names must be strings");
        if (lua_istable(L, -1)) {
            for (int i = 1; i <= (int)lua_objlen(L, -1); i++) {
                lua_rawgeti(L, -1, i);
                const char *v = lua_tolstring(L, -1, &vl);
                if (!v) luaL_error(L, "header %s: values must be strings", name);
                add_header(L, r, h, name, nl, v, vl);
                lua_pop(L, 1);
            }
        } else {
            const char *v = lua_tolstring(L, -1, &vl);
            if (!v) luaL_error(L, "header %s: values must be strings", name);
            add_header(L, r, h, name, nl, v, vl);
        }
    }
}

/* core.test_request(spec): pushes the owner (freed by the GC) and the
 * request as a light userdata. */
static int l_test_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    owner_t *o = lua_newuserdata(L, sizeof(*o));
    memset(o, 0, sizeof(*o));
    luaL_getmetatable(L, OWNER_MT);
    lua_setmetatable(L, -2);
    gh_arena_t *a = gh_arena_new(4096);
    gh_req_t *r = a ? gh_arena_alloc(a, sizeof(*r)) : NULL;
    if (!r) return luaL_error(L, "t.request: out of memory");
    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->content_length = -1;
    r->upstream = -1;
    o->r = r;
    size_t len;
    const char *m = opt_field(L, 1, "method", "GET", NULL);
    if ((r->method = parse_method(m)) < 0) return luaL_error(L, "t.request: unknown method %s", m);
    const char *path = opt_field(L, 1, "path", "/", &len);
    char *norm = gh_arena_alloc(a, len + 1);
    if (!norm || len == 0 || path[0] != '/' ||
        gh_path_normalize(path, len, norm, &r->path_len) != GH_PATH_OK)
        return luaL_error(L, "t.request: '%s' is not a path the gateway would accept", path);
    r->path = norm;
    const char *q = opt_field(L, 1, "query", NULL, &len);
    if (q) r->query = gh_arena_strndup(a, q, len), r->query_len = len;
    const char *host = opt_field(L, 1, "host", "localhost", &len);
    r->host = gh_arena_strndup(a, host, len), r->host_len = len;
    const char *ip = opt_field(L, 1, "client_ip", "127.0.0.1", &len);
    r->client_ip = gh_arena_strndup(a, ip, len);
    const char *id = opt_field(L, 1, "id", "test-request", &len);
    snprintf(r->id, sizeof(r->id), "%.*s", (int)len, id);
    lua_getfield(L, 1, "headers");
    add_headers(L, r, &r->head, lua_gettop(L));
    lua_pop(L, 1);
    lua_pushlightuserdata(L, r);
    return 2;
}

/* Lua value at idx as JSON (tables with 1..n as arrays, others objects;
 * an empty table is an empty array). Returns a new reference or NULL. */
static json_t *to_json(lua_State *L, int idx, int depth)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return json_stringn(s, n);
    }
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        return d == (double)(json_int_t)d ? json_integer((json_int_t)d) : json_real(d);
    }
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TTABLE:
        break;
    default:
        return NULL;
    }
    if (depth > 16) return NULL;
    size_t n = lua_objlen(L, idx);
    size_t count = 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) count++;
    if (count == n) { /* 1..n: an array */
        json_t *out = json_array();
        for (size_t i = 1; out && i <= n; i++) {
            lua_rawgeti(L, idx, (int)i);
            json_t *v = to_json(L, -1, depth + 1);
            lua_pop(L, 1);
            if (!v) luaL_error(L, "t.claims: a claim cannot hold that value");
            json_array_append_new(out, v);
        }
        return out;
    }
    json_t *out = json_object();
    for (lua_pushnil(L); out && lua_next(L, idx); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "t.claims: object keys must be strings");
        json_t *v = to_json(L, -1, depth + 1);
        if (!v) luaL_error(L, "t.claims: a claim cannot hold a %s", luaL_typename(L, -1));
        json_object_set_new(out, lua_tostring(L, -2), v);
    }
    return out;
}

/* core.test_claims(owner, claims, roles): sets the detached request's
 * claims and role paths (roles nil: the default ones). */
static int l_test_claims(lua_State *L)
{
    owner_t *o = check_owner(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    json_t *j = to_json(L, 2, 0);
    if (!json_is_object(j)) {
        json_decref(j);
        return luaL_error(L, "t.claims needs a table of claims");
    }
    o->r->claims = j;
    int rc = 0;
    if (lua_isnil(L, 3)) {
        rc = gh_role_paths_default(&o->roles);
    } else {
        luaL_checktype(L, 3, LUA_TTABLE);
        for (int i = 1; !rc && i <= (int)lua_objlen(L, 3); i++) {
            lua_rawgeti(L, 3, i);
            rc = gh_lua_role_path_add(L, &o->roles);
            lua_pop(L, 1);
        }
    }
    if (rc) return luaL_error(L, "t.claims: role paths are \"a.b\" or lists of segments");
    o->r->roles = &o->roles;
    return 0;
}

/* core.test_response(owner, status, headers): the response head
 * on_response will see. */
static int l_test_response(lua_State *L)
{
    owner_t *o = check_owner(L, 1);
    int status = (int)luaL_checkinteger(L, 2);
    gh_head_t *h = gh_arena_alloc(o->r->arena, sizeof(*h));
    if (!h) return luaL_error(L, "out of memory");
    memset(h, 0, sizeof(*h));
    add_headers(L, o->r, h, 3);
    o->r->lua.resp = h;
    o->r->lua.resp_status = status;
    return 0;
}

/* core.test_upstream(req): pushes the upstream name gh.upstream chose, or nil. */
static int l_test_upstream(lua_State *L)
{
    const gh_req_t *r = lua_touserdata(L, 1);
    if (r && r->lua.upstream)
        lua_pushstring(L, r->lua.upstream);
    else
        lua_pushnil(L);
    return 1;
}

void gh_lua_test_register(lua_State *L)
{
    if (luaL_newmetatable(L, OWNER_MT)) {
        lua_pushcfunction(L, owner_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"test_request", l_test_request},
                                   {"test_claims", l_test_claims},
                                   {"test_response", l_test_response},
                                   {"test_upstream", l_test_upstream},
                                   {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}

typedef struct {
    char **v;
    size_t n, cap;
} files_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collects *_test.lua files under dir, recursively. */
static void collect(const char *dir, files_t *f, int depth)
{
    DIR *d = depth < 16 ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        size_t n = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            collect(path, f, depth + 1);
        } else if (n > 9 && strcmp(e->d_name + n - 9, "_test.lua") == 0) {
            if (f->n == f->cap) {
                f->cap = f->cap ? f->cap * 2 : 16;
                f->v = realloc(f->v, f->cap * sizeof(char *));
            }
            f->v[f->n++] = strdup(path);
        }
    }
    if (d) closedir(d);
}

/* Runs one test file in a fresh state; returns its failed case count, or
 * -1 when the file itself failed to run. */
static int run_file(const char *file, int *passed)
{
    char err[1024];
    gh_lua_conf_t conf = {0};
    lua_State *L = gh_lua_state_new(&conf, NULL, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "%s: %s\n", file, err);
        return -1;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, "gatehouse.test");
    int failed = -1;
    if (lua_pcall(L, 1, 1, 0) == 0) {
        lua_getfield(L, -1, "_run_file");
        lua_pushstring(L, file);
        if (lua_pcall(L, 1, 2, 0) == 0) {
            failed = (int)lua_tointeger(L, -2);
            *passed += (int)lua_tointeger(L, -1);
        }
    }
    if (failed < 0) fprintf(stderr, "FAIL %s\n", lua_tostring(L, -1));
    lua_close(L);
    return failed;
}

/* Runs every *_test.lua under dir: counts what passed, failed and could
 * not run (failures go to stderr). Returns the number of test files. */
static int run_all(const char *dir, int *passed, int *failed, int *broken)
{
    files_t f = {0};
    collect(dir, &f, 0);
    if (f.n) qsort(f.v, f.n, sizeof(char *), by_name); /* f.v is NULL when there is none */
    *passed = *failed = *broken = 0;
    for (size_t i = 0; i < f.n; i++) {
        int rc = run_file(f.v[i], passed);
        if (rc < 0)
            ++*broken;
        else
            *failed += rc;
        free(f.v[i]);
    }
    free(f.v);
    return (int)f.n;
}

int gh_lua_test_main(const char *dir)
{
    int passed, failed, broken;
    if (run_all(dir, &passed, &failed, &broken) == 0) {
        fprintf(stderr, "gatehouse test: no *_test.lua files under %s\n", dir);
        return 2;
    }
    printf("%d passed, %d failed, %d file(s) could not run\n", passed, failed, broken);
    return failed || broken ? 1 : 0;
}

extern char **environ;

/* Starts `gatehouse test dir` with its stdout on a pipe whose read end
 * goes to *out. Returns the pid, or -1 with errno-style rc in *rc. */
static pid_t spawn_tests(const char *dir, int *out, int *rc)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) return *rc = errno, -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE); /* the gateway ignores it; the tests need not */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"gatehouse", "test", (char *)dir, NULL};
    pid_t pid;
    *rc = posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (*rc) {
        close(fds[0]);
        return -1;
    }
    *out = fds[0];
    return pid;
}

/* Reads fd to its end or the deadline (uv_hrtime), keeping the last line
 * in last. Returns 0 at the end, -1 past the deadline. */
static int read_last_line(int fd, uint64_t deadline, char *last, size_t cap)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        uint64_t now = uv_hrtime();
        if (now >= deadline) return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return 0;
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] == '\n') {
                if (len) last[len] = '\0';
                len = 0;
            } else if (len + 1 < cap) {
                last[len++] = buf[i];
            }
        }
    }
}

int gh_lua_test_spawn(const char *dir, double seconds, int *passed, int *failed, int *broken,
                      char *err, size_t errlen)
{
    int fd = -1, rc = 0;
    *passed = *failed = *broken = 0;
    pid_t pid = spawn_tests(dir, &fd, &rc);
    if (pid < 0) return snprintf(err, errlen, "cannot run the policy tests: %s", strerror(rc)), -1;
    char last[256] = "";
    uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);
    bool late = read_last_line(fd, deadline, last, sizeof(last)) != 0;
    close(fd);
    int st = 0;
    pid_t got = 0;
    while (!late && (got = waitpid(pid, &st, WNOHANG)) == 0) {
        if (uv_hrtime() >= deadline)
            late = true;
        else
            poll(NULL, 0, 5); /* stdout closed: the child is exiting */
    }
    if (late) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) continue;
        return snprintf(err, errlen,
                        "the policy tests were still running after %g s (lua.load_budget)",
                        seconds),
               -1;
    }
    if (got < 0)
        return snprintf(err, errlen, "cannot wait for the policy tests: %s", strerror(errno)), -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) > 2)
        return snprintf(err, errlen, "the policy tests did not finish (%s %d)",
                        WIFSIGNALED(st) ? "signal" : "exit status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)),
               -1;
    sscanf(last, "%d passed, %d failed, %d", passed, failed, broken);
    return WEXITSTATUS(st);
}
