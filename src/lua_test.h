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

/* The same without the summary: counts what passed, failed and could not
 * run (failures are printed to stderr). Returns the number of test files. */
int gh_lua_test_run(const char *dir, int *passed, int *failed, int *broken);

#endif
