/* Config snapshots: reference counting (one thread and many), the retire
 * hook that hands the last reference to the main thread, and the content
 * hash that names a loaded config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "snapshot.h"

#include "config_dir.h"

#define THREADS 8
#define PAIRS   100000

static const char *CONFIG = "return {\n"
                            "  listen = { '127.0.0.1:1' },\n"
                            "  upstreams = { orders = { targets = { '127.0.0.1:2' } } },\n"
                            "  routes = 'routes/',\n"
                            "}\n";

static const char *ROUTE = "local gh = require 'gatehouse'\n"
                           "return gh.route { match = { path = '/x/**' }, upstream = 'orders' }\n";

/* The same length as ROUTE, one byte apart. */
static const char *ROUTE_EDITED =
    "local gh = require 'gatehouse'\n"
    "return gh.route { match = { path = '/y/**' }, upstream = 'orders' }\n";

/* What the retire hook saw: how often, and the last snapshot. */
static int retired_calls;          /* atomic */
static gh_snapshot_t *retired_one; /* atomic */

static void record_retire(gh_snapshot_t *s)
{
    __atomic_add_fetch(&retired_calls, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&retired_one, s, __ATOMIC_RELEASE);
}

static void reset_retire(void)
{
    retired_calls = 0;
    retired_one = NULL;
}

static int setup(void **state)
{
    (void)state;
    config_dir_setup("gh_snapshot_test");
    write_file("gatehouse.lua", CONFIG);
    write_file("routes/orders.lua", ROUTE);
    return 0;
}

static int group_teardown(void **state)
{
    gh_snapshot_on_retire(NULL);
    return teardown(state);
}

/* Each test starts with the shipped config and route, no retire hook. */
static int test_setup(void **state)
{
    (void)state;
    write_file("gatehouse.lua", CONFIG);
    write_file("routes/orders.lua", ROUTE);
    gh_snapshot_on_retire(NULL);
    reset_retire();
    return 0;
}

static gh_config_t *load(void)
{
    char path[300], err[512] = "";
    snprintf(path, sizeof(path), "%s/gatehouse.lua", dir);
    gh_config_t *cfg = gh_config_load(path, err, sizeof(err));
    if (!cfg) fail_msg("%s", err);
    return cfg;
}

static int refs(gh_snapshot_t *s)
{
    return __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE);
}

static void test_new_has_one_ref(void **state)
{
    (void)state;
    gh_config_t *cfg = load();
    gh_snapshot_t *s = gh_snapshot_new(cfg, 7);
    assert_non_null(s);
    assert_ptr_equal(s->cfg, cfg);
    assert_int_equal(refs(s), 1);
    assert_int_equal(s->generation, 7);
    assert_null(s->next);
    assert_true(s->loaded_at > 0);
    assert_int_equal(strlen(s->hash), 16);
    gh_snapshot_release(s); /* no hook: freed here (ASan reports a leak otherwise) */
    assert_int_equal(retired_calls, 0);
}

/* Without a hook the last release frees at once: a hook set afterwards
 * never hears of it, while one set before sees exactly the last release. */
static void test_ref_release_without_hook(void **state)
{
    (void)state;
    gh_snapshot_t *s = gh_snapshot_new(load(), 1);
    assert_ptr_equal(gh_snapshot_ref(s), s);
    assert_int_equal(refs(s), 2);
    gh_snapshot_release(s);
    assert_int_equal(refs(s), 1);
    gh_snapshot_release(s); /* frees: a double free or leak shows under ASan */
    gh_snapshot_on_retire(record_retire);
    assert_int_equal(retired_calls, 0);
    gh_snapshot_release(NULL); /* a no-op, hook or not */
    assert_int_equal(retired_calls, 0);
}

static void test_last_release_calls_hook_once(void **state)
{
    (void)state;
    gh_snapshot_on_retire(record_retire);
    gh_snapshot_t *s = gh_snapshot_new(load(), 2);
    gh_snapshot_ref(s);
    gh_snapshot_ref(s);
    assert_int_equal(refs(s), 3);
    gh_snapshot_release(s);
    gh_snapshot_release(s);
    assert_int_equal(retired_calls, 0); /* not before the last one */
    assert_null(retired_one);
    assert_int_equal(refs(s), 1);
    assert_string_equal(s->cfg->upstreams[0].name, "orders");
    gh_snapshot_release(s);
    assert_int_equal(retired_calls, 1);
    assert_ptr_equal(retired_one, s);
    assert_int_equal(refs(s), 0);
    /* the hook owns it now: still readable until freed */
    assert_int_equal(s->generation, 2);
    assert_string_equal(s->cfg->upstreams[0].name, "orders");
    gh_snapshot_free(retired_one);
    gh_snapshot_on_retire(NULL);
}

static pthread_barrier_t start_line; /* the threads start together */

static void *ref_release_loop(void *arg)
{
    gh_snapshot_t *s = arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < PAIRS; i++) {
        gh_snapshot_ref(s);
        gh_snapshot_release(s);
    }
    gh_snapshot_release(s); /* the reference the main thread took for this thread */
    return NULL;
}

/* Threads taking and dropping references at once: the count never goes
 * to zero early, and exactly one release retires it. */
static void test_concurrent_release_retires_once(void **state)
{
    (void)state;
    gh_snapshot_on_retire(record_retire);
    gh_snapshot_t *s = gh_snapshot_new(load(), 3);
    pthread_t t[THREADS];
    assert_int_equal(pthread_barrier_init(&start_line, NULL, THREADS + 1), 0);
    for (int i = 0; i < THREADS; i++) gh_snapshot_ref(s);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_release_loop, s), 0);
    pthread_barrier_wait(&start_line);
    gh_snapshot_release(s); /* the creator's reference goes while they run */
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start_line);
    assert_int_equal(retired_calls, 1);
    assert_ptr_equal(retired_one, s);
    assert_int_equal(refs(s), 0);
    gh_snapshot_free(retired_one);
    gh_snapshot_on_retire(NULL);
}

static void hash_of(char out[17])
{
    gh_config_t *cfg = load();
    gh_snapshot_hash(cfg, out);
    gh_config_free(cfg);
}

static void assert_hex16(const char *h)
{
    assert_int_equal(strlen(h), 16);
    for (size_t i = 0; i < 16; i++) assert_non_null(strchr("0123456789abcdef", h[i]));
}

/* Equal files give equal hashes; one changed byte in a route file, or an
 * edit of the config file, gives another; undoing it gives the first back. */
static void test_hash_follows_file_bytes(void **state)
{
    (void)state;
    char h1[17], h2[17], h3[17], h4[17], h5[17];
    hash_of(h1);
    assert_hex16(h1);
    hash_of(h2);
    assert_string_equal(h1, h2);

    assert_int_equal(strlen(ROUTE), strlen(ROUTE_EDITED));
    write_file("routes/orders.lua", ROUTE_EDITED);
    hash_of(h3);
    assert_hex16(h3);
    assert_string_not_equal(h1, h3);

    write_file("routes/orders.lua", ROUTE);
    hash_of(h4);
    assert_string_equal(h1, h4);

    char edited[512];
    snprintf(edited, sizeof(edited), "-- a comment\n%s", CONFIG);
    write_file("gatehouse.lua", edited);
    hash_of(h5);
    assert_string_not_equal(h1, h5);
    assert_string_not_equal(h3, h5);
}

/* The hash a snapshot carries is the hash of its config. */
static void test_snapshot_carries_hash(void **state)
{
    (void)state;
    char want[17];
    hash_of(want);
    gh_snapshot_t *s = gh_snapshot_new(load(), 1);
    assert_string_equal(s->hash, want);
    gh_snapshot_release(s);

    write_file("routes/orders.lua", ROUTE_EDITED);
    s = gh_snapshot_new(load(), 2);
    assert_string_not_equal(s->hash, want);
    gh_snapshot_release(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_new_has_one_ref, test_setup),
        cmocka_unit_test_setup(test_ref_release_without_hook, test_setup),
        cmocka_unit_test_setup(test_last_release_calls_hook_once, test_setup),
        cmocka_unit_test_setup(test_concurrent_release_retires_once, test_setup),
        cmocka_unit_test_setup(test_hash_follows_file_bytes, test_setup),
        cmocka_unit_test_setup(test_snapshot_carries_hash, test_setup),
    };
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
