/* `gatehouse test DIR`: runs policy unit tests (*_test.lua) without a
 * gateway, over detached requests that go through the same C code as
 * live ones. */
#ifndef GH_LUA_TEST_H
#define GH_LUA_TEST_H

#include <lua.h>

/* Adds the test_* functions to the gatehouse.core table on top of L. */
void gh_lua_test_register(lua_State *L);

/* Runs every *_test.lua under dir (recursively, in name order). Prints
 * each failure with file:line and a summary. Returns the exit status: 0
 * when all passed, 1 when one failed, 2 when dir holds no test. */
int gh_lua_test_main(const char *dir);

/* Runs `gatehouse test dir` in a child process (this binary), so the
 * tests a reload runs can neither change this process's state (the
 * revocation list, local rate-limit counters) nor hang it: past `seconds`
 * the child is killed. Failures go to stderr as with gatehouse test.
 * Returns the child's exit status (0 all passed, 1 one failed, 2 no test)
 * with the counts, or -1 with the reason in err. */
int gh_lua_test_spawn(const char *dir, double seconds, int *passed, int *failed, int *broken,
                      char *err, size_t errlen);

#endif
