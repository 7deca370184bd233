/* For config tests: a temporary directory with a routes/ subdirectory,
 * made by config_dir_setup, filled by write_file and removed by
 * teardown (a cmocka group teardown). Each test file includes it once. */
#ifndef GH_TEST_CONFIG_DIR_H
#define GH_TEST_CONFIG_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char dir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Makes /tmp/<prefix>.XXXXXX and its routes/. Returns 0. */
static int config_dir_setup(const char *prefix)
{
    char path[300];
    snprintf(dir, sizeof(dir), "/tmp/%s.XXXXXX", prefix);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/routes", dir);
    mkdir(path, 0700);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

#endif
