/* Unit tests for buf.c: reference counts, the per-worker pool and its
 * bound on idle buffers. Leaks and double frees are left to ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"

/* Under ASan freed memory sits in quarantine, so a fresh malloc never
 * reuses a freed buffer's address: any address seen again was kept idle
 * by the pool. Without ASan, malloc may recycle it and only the weaker
 * checks apply. */
#if defined(__SANITIZE_ADDRESS__)
#define FRESH_ADDRESSES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRESH_ADDRESSES 1
#endif
#endif
#ifndef FRESH_ADDRESSES
#define FRESH_ADDRESSES 0
#endif

static void test_one_off_buffer(void **state)
{
    (void)state;
    gh_buf_t *b = gh_buf_new(100);
    assert_non_null(b);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->cap, 100);
    assert_null(b->pool);
    memset(b->data, 'x', 100);
    gh_buf_ref(b);
    gh_buf_ref(b);
    assert_int_equal(b->refs, 3);
    gh_buf_unref(b);
    gh_buf_unref(b);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->data[99], 'x');
    gh_buf_unref(b); /* the last reference frees it: LSan reports a leak otherwise */

    gh_buf_t *empty = gh_buf_new(0);
    assert_non_null(empty);
    assert_int_equal(empty->cap, 0);
    assert_null(empty->pool);
    gh_buf_unref(empty);
}

static void test_pooled_buffer_fresh(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(4);
    assert_non_null(p);
    gh_buf_t *b = gh_buf_get(p);
    assert_non_null(b);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->cap, GH_BUF_SIZE);
    assert_ptr_equal(b->pool, p);
    memset(b->data, 0x5a, b->cap); /* the whole capacity is writable */
    gh_buf_unref(b);
    gh_buf_pool_free(p);
}

static void test_pooled_buffer_reused(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(4);
    assert_non_null(p);
    gh_buf_t *b = gh_buf_get(p);
    assert_non_null(b);
    b->data[0] = 'q';
    gh_buf_unref(b);
    gh_buf_t *again = gh_buf_get(p);
    assert_ptr_equal(again, b);
    assert_int_equal(again->refs, 1);
    assert_ptr_equal(again->pool, p);
    gh_buf_unref(again);
    gh_buf_pool_free(p);
}

static void test_referenced_buffer_stays_out_of_pool(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(4);
    assert_non_null(p);
    gh_buf_t *b = gh_buf_get(p);
    assert_non_null(b);
    gh_buf_ref(b); /* a slice still queued for writing */
    gh_buf_unref(b);
    assert_int_equal(b->refs, 1);
    gh_buf_t *other = gh_buf_get(p);
    assert_non_null(other);
    assert_ptr_not_equal(other, b);
    gh_buf_unref(b); /* now idle: the next get hands it back */
    gh_buf_t *back = gh_buf_get(p);
    assert_ptr_equal(back, b);
    gh_buf_unref(back);
    gh_buf_unref(other);
    gh_buf_pool_free(p);
}

static void test_pool_hands_back_last_released_first(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(8);
    assert_non_null(p);
    gh_buf_t *b[3];
    for (int i = 0; i < 3; i++) assert_non_null(b[i] = gh_buf_get(p));
    for (int i = 0; i < 3; i++) gh_buf_unref(b[i]);
    /* The most recently used buffer is the one most likely still in cache. */
    for (int i = 2; i >= 0; i--) {
        gh_buf_t *g = gh_buf_get(p);
        assert_ptr_equal(g, b[i]);
        assert_int_equal(g->refs, 1);
    }
    for (int i = 0; i < 3; i++) gh_buf_unref(b[i]);
    gh_buf_pool_free(p);
}

/* Gets n buffers, releases them all, and returns how many of the next n
 * gets came back with an address from the first n. */
static size_t count_reused(gh_buf_pool_t *p, size_t n)
{
    gh_buf_t *first[16], *second[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) assert_non_null(first[i] = gh_buf_get(p));
    for (size_t i = 0; i < n; i++) gh_buf_unref(first[i]);
    size_t reused = 0;
    for (size_t i = 0; i < n; i++) {
        assert_non_null(second[i] = gh_buf_get(p));
        for (size_t k = 0; k < n; k++)
            if (second[i] == first[k]) reused++;
    }
    for (size_t i = 0; i < n; i++) gh_buf_unref(second[i]);
    return reused;
}

static void test_pool_keeps_at_most_max_free(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(2);
    assert_non_null(p);
    gh_buf_t *b[4];
    for (int i = 0; i < 4; i++) assert_non_null(b[i] = gh_buf_get(p));
    for (int i = 0; i < 4; i++) gh_buf_unref(b[i]); /* b[2], b[3] are freed */
    gh_buf_t *g0 = gh_buf_get(p), *g1 = gh_buf_get(p), *g2 = gh_buf_get(p);
    assert_ptr_equal(g0, b[1]);
    assert_ptr_equal(g1, b[0]);
    assert_non_null(g2);
    assert_ptr_not_equal(g2, b[0]);
    assert_ptr_not_equal(g2, b[1]);
    if (FRESH_ADDRESSES) {
        assert_ptr_not_equal(g2, b[2]);
        assert_ptr_not_equal(g2, b[3]);
        assert_int_equal(count_reused(p, 6), 2);
    }
    gh_buf_unref(g0);
    gh_buf_unref(g1);
    gh_buf_unref(g2);
    gh_buf_pool_free(p);
}

static void test_pool_with_no_idle_buffers(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(0);
    assert_non_null(p);
    gh_buf_t *b = gh_buf_get(p);
    assert_non_null(b);
    assert_ptr_equal(b->pool, p);
    gh_buf_unref(b); /* freed at once */
    size_t reused = count_reused(p, 3);
    if (FRESH_ADDRESSES) assert_int_equal(reused, 0);
    gh_buf_pool_free(p);
}

static void test_pool_churn_is_bounded(void **state)
{
    (void)state;
    gh_buf_pool_t *p = gh_buf_pool_new(3);
    assert_non_null(p);
    /* Bursts bigger than the bound, many times over: whatever is not kept
     * must be freed, or LSan reports it at exit. */
    for (int round = 0; round < 50; round++) {
        size_t reused = count_reused(p, 5);
        if (FRESH_ADDRESSES) assert_int_equal(reused, 3);
    }
    gh_buf_pool_free(p); /* frees the idle ones */
    gh_buf_pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_off_buffer),
        cmocka_unit_test(test_pooled_buffer_fresh),
        cmocka_unit_test(test_pooled_buffer_reused),
        cmocka_unit_test(test_referenced_buffer_stays_out_of_pool),
        cmocka_unit_test(test_pool_hands_back_last_released_first),
        cmocka_unit_test(test_pool_keeps_at_most_max_free),
        cmocka_unit_test(test_pool_with_no_idle_buffers),
        cmocka_unit_test(test_pool_churn_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
