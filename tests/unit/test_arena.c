/* Unit tests for arena.c: request-scoped memory, alignment, growth and
 * cleanups run once, last registered first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ALIGN 16

static int is_aligned(const void *p)
{
    return ((uintptr_t)p % ALIGN) == 0;
}

/* Allocates n blocks of sizes drawn from sizes[], fills each with its own
 * byte, then checks every fill survived: no two allocations overlap and
 * each is aligned. */
static void alloc_fill_check(gh_arena_t *a, const size_t *sizes, size_t nsizes, size_t n)
{
    unsigned char **ps = calloc(n, sizeof(*ps));
    assert_non_null(ps);
    for (size_t i = 0; i < n; i++) {
        size_t sz = sizes[i % nsizes];
        ps[i] = gh_arena_alloc(a, sz);
        assert_non_null(ps[i]);
        if (!is_aligned(ps[i])) fail_msg("allocation %zu of %zu bytes at %p", i, sz, ps[i]);
        memset(ps[i], (int)(i & 0xff), sz);
    }
    for (size_t i = 0; i < n; i++) {
        size_t sz = sizes[i % nsizes];
        for (size_t k = 0; k < sz; k++)
            if (ps[i][k] != (unsigned char)(i & 0xff))
                fail_msg("allocation %zu byte %zu was overwritten", i, k);
    }
    free(ps);
}

static void test_every_allocation_aligned(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 255};
    gh_arena_t *a = gh_arena_new(0);
    assert_non_null(a);
    alloc_fill_check(a, sizes, sizeof(sizes) / sizeof(sizes[0]), 64);
    /* Zero bytes is still a usable, aligned pointer. */
    void *z = gh_arena_alloc(a, 0);
    assert_non_null(z);
    assert_true(is_aligned(z));
    gh_arena_free(a);
}

static void test_grows_past_first_block(void **state)
{
    (void)state;
    static const size_t sizes[] = {24, 40, 1, 200};
    gh_arena_t *a = gh_arena_new(256);
    assert_non_null(a);
    /* About 66 KiB in total: hundreds of times the first block. */
    alloc_fill_check(a, sizes, sizeof(sizes) / sizeof(sizes[0]), 1000);
    gh_arena_free(a);
}

static void test_first_block_holds_first_bytes(void **state)
{
    (void)state;
    gh_arena_t *a = gh_arena_new(10000);
    assert_non_null(a);
    /* Both fit in the first block, so they are laid out back to back. */
    char *p = gh_arena_alloc(a, 5000);
    char *q = gh_arena_alloc(a, 4992);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_equal(q, p + 5008);
    memset(p, 'p', 5000);
    memset(q, 'q', 4992);
    gh_arena_free(a);
}

static void test_large_allocations(void **state)
{
    (void)state;
    gh_arena_t *a = gh_arena_new(256);
    assert_non_null(a);
    char *small = gh_arena_alloc(a, 10);
    assert_non_null(small);
    memset(small, 's', 10);
    /* Far larger than the block and than twice the block. */
    size_t big_n = 1u << 20;
    unsigned char *big = gh_arena_alloc(a, big_n);
    assert_non_null(big);
    assert_true(is_aligned(big));
    memset(big, 0xab, big_n);
    /* Allocating after a large block still works, and nothing overlaps. */
    static const size_t sizes[] = {8, 300, 5000, 3};
    alloc_fill_check(a, sizes, sizeof(sizes) / sizeof(sizes[0]), 200);
    unsigned char *big2 = gh_arena_alloc(a, 3 * big_n + 1);
    assert_non_null(big2);
    assert_true(is_aligned(big2));
    memset(big2, 0xcd, 3 * big_n + 1);
    for (size_t k = 0; k < big_n; k++)
        if (big[k] != 0xab) fail_msg("large allocation byte %zu was overwritten", k);
    for (size_t k = 0; k < 10; k++) assert_int_equal(small[k], 's');
    gh_arena_free(a);
}

static void test_strndup(void **state)
{
    (void)state;
    gh_arena_t *a = gh_arena_new(0);
    assert_non_null(a);

    char *s = gh_arena_strndup(a, "hello, world", 5);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    assert_true(is_aligned(s));

    char *e = gh_arena_strndup(a, "ignored", 0);
    assert_non_null(e);
    assert_string_equal(e, "");

    /* The source need not be NUL-terminated: exactly n bytes are read. */
    char *src = malloc(3);
    assert_non_null(src);
    memcpy(src, "abc", 3);
    char *c = gh_arena_strndup(a, src, 3);
    free(src);
    assert_string_equal(c, "abc");

    /* Embedded NULs are copied like any other byte. */
    char *nul = gh_arena_strndup(a, "a\0b", 3);
    assert_memory_equal(nul, "a\0b\0", 4);

    /* A copy bigger than any block lands in its own block. */
    size_t n = 100000;
    char *long_src = malloc(n);
    assert_non_null(long_src);
    memset(long_src, 'x', n);
    char *l = gh_arena_strndup(a, long_src, n);
    assert_non_null(l);
    assert_memory_equal(l, long_src, n);
    assert_int_equal(l[n], '\0');
    free(long_src);

    /* Earlier copies are untouched by later allocations. */
    assert_string_equal(s, "hello");
    assert_string_equal(c, "abc");
    gh_arena_free(a);
}

static int order[64];
static int norder;

static void record(void *data)
{
    assert_true(norder < 64);
    order[norder++] = (int)(intptr_t)data;
}

static void test_cleanups_run_once_in_reverse(void **state)
{
    (void)state;
    norder = 0;
    gh_arena_t *a = gh_arena_new(256);
    assert_non_null(a);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(gh_arena_cleanup_add(a, record, (void *)(intptr_t)i), 0);
        /* Interleaved allocations push cleanups across several blocks. */
        assert_non_null(gh_arena_alloc(a, 100));
    }
    assert_int_equal(norder, 0);
    gh_arena_free(a);
    assert_int_equal(norder, 40);
    for (int i = 0; i < 40; i++) assert_int_equal(order[i], 39 - i);
}

static void test_same_cleanup_registered_twice_runs_twice(void **state)
{
    (void)state;
    norder = 0;
    gh_arena_t *a = gh_arena_new(0);
    assert_non_null(a);
    assert_int_equal(gh_arena_cleanup_add(a, record, (void *)(intptr_t)7), 0);
    assert_int_equal(gh_arena_cleanup_add(a, record, (void *)(intptr_t)7), 0);
    assert_int_equal(gh_arena_cleanup_add(a, record, (void *)(intptr_t)8), 0);
    gh_arena_free(a);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 8);
    assert_int_equal(order[1], 7);
    assert_int_equal(order[2], 7);
}

/* A cleanup may free memory its data points to, as a timer or a Lua
 * reference would: the arena's own memory is still valid while it runs. */
static void free_owned(void *data)
{
    char **slot = data;
    assert_string_equal(slot[0], "arena string");
    free(slot[1]);
}

static void test_cleanup_sees_arena_memory(void **state)
{
    (void)state;
    gh_arena_t *a = gh_arena_new(0);
    assert_non_null(a);
    char **slot = gh_arena_alloc(a, 2 * sizeof(char *));
    assert_non_null(slot);
    slot[0] = gh_arena_strndup(a, "arena string", 12);
    slot[1] = malloc(32);
    assert_non_null(slot[1]);
    assert_int_equal(gh_arena_cleanup_add(a, free_owned, slot), 0);
    gh_arena_free(a);
}

static void test_free_null_and_empty(void **state)
{
    (void)state;
    gh_arena_free(NULL);
    gh_arena_t *a = gh_arena_new(0);
    assert_non_null(a);
    gh_arena_free(a);
    a = gh_arena_new(1u << 16);
    assert_non_null(a);
    gh_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_aligned),
        cmocka_unit_test(test_grows_past_first_block),
        cmocka_unit_test(test_first_block_holds_first_bytes),
        cmocka_unit_test(test_large_allocations),
        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_cleanups_run_once_in_reverse),
        cmocka_unit_test(test_same_cleanup_registered_twice_runs_twice),
        cmocka_unit_test(test_cleanup_sees_arena_memory),
        cmocka_unit_test(test_free_null_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
