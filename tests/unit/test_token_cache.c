/* The verified-token cache: hits, expiry at exp, issuer separation,
 * LRU eviction at the bound, and references handed out correctly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "token_cache.h"

static const int ISS_A = 1, ISS_B = 2;
#define T(s) s, strlen(s)

static json_t *claims(const char *sub)
{
    return json_pack("{s:s}", "sub", sub);
}

static void test_hit_until_exp(void **state)
{
    (void)state;
    gh_token_cache_t *c = gh_token_cache_new(8);
    json_t *cl = claims("alice");
    gh_token_cache_put(c, &ISS_A, 1, T("tok.a.sig"), cl, 1000.0);
    json_t *got = gh_token_cache_get(c, &ISS_A, 1, T("tok.a.sig"), 999.9);
    assert_ptr_equal(got, cl);
    json_decref(got);
    assert_null(gh_token_cache_get(c, &ISS_A, 1, T("tok.a.sig"), 1000.0)); /* at exp: gone */
    assert_int_equal(gh_token_cache_size(c), 0);
    assert_int_equal(cl->refcount, 1); /* the cache let go of its reference */
    json_decref(cl);
    gh_token_cache_free(c);
}

static void test_whole_token_and_issuer_are_the_key(void **state)
{
    (void)state;
    gh_token_cache_t *c = gh_token_cache_new(8);
    json_t *cl = claims("alice");
    gh_token_cache_put(c, &ISS_A, 1, T("tok.a.sig"), cl, 1000.0);
    assert_null(gh_token_cache_get(c, &ISS_B, 1, T("tok.a.sig"), 1.0));
    assert_null(gh_token_cache_get(c, &ISS_A, 1, T("tok.a.sig2"), 1.0));
    assert_null(gh_token_cache_get(c, &ISS_A, 1, "tok.a.si", 8, 1.0));
    assert_null(gh_token_cache_get(c, &ISS_A, 1, T("tok.a.siG"), 1.0));
    json_decref(cl);
    gh_token_cache_free(c);
}

/* An entry verified under one key set is dropped once the issuer's keys
 * change: a key removed by rotation stops working even for cached tokens. */
static void test_key_change_drops_entries(void **state)
{
    (void)state;
    gh_token_cache_t *c = gh_token_cache_new(8);
    json_t *cl = claims("alice");
    gh_token_cache_put(c, &ISS_A, 7, T("tok.a.sig"), cl, 1000.0);
    json_t *got = gh_token_cache_get(c, &ISS_A, 7, T("tok.a.sig"), 1.0);
    assert_ptr_equal(got, cl);
    json_decref(got);
    assert_null(gh_token_cache_get(c, &ISS_A, 8, T("tok.a.sig"), 1.0));
    assert_int_equal(gh_token_cache_size(c), 0);
    /* and it stays gone under the old generation too */
    assert_null(gh_token_cache_get(c, &ISS_A, 7, T("tok.a.sig"), 1.0));
    json_decref(cl);
    gh_token_cache_free(c);
}

static void test_bounded_lru(void **state)
{
    (void)state;
    gh_token_cache_t *c = gh_token_cache_new(3);
    char tok[4][8];
    for (int i = 0; i < 4; i++) snprintf(tok[i], sizeof(tok[i]), "t%d", i);
    for (int i = 0; i < 3; i++) {
        json_t *cl = claims(tok[i]);
        gh_token_cache_put(c, &ISS_A, 1, T(tok[i]), cl, 1000.0);
        json_decref(cl);
    }
    json_decref(gh_token_cache_get(c, &ISS_A, 1, T(tok[0]), 1.0)); /* t0 now most recent */
    json_t *cl = claims(tok[3]);
    gh_token_cache_put(c, &ISS_A, 1, T(tok[3]), cl, 1000.0); /* evicts t1 */
    json_decref(cl);
    assert_int_equal(gh_token_cache_size(c), 3);
    assert_null(gh_token_cache_get(c, &ISS_A, 1, T(tok[1]), 1.0));
    for (int i = 0; i < 4; i++) {
        if (i == 1) continue;
        json_t *got = gh_token_cache_get(c, &ISS_A, 1, T(tok[i]), 1.0);
        assert_non_null(got);
        assert_string_equal(json_string_value(json_object_get(got, "sub")), tok[i]);
        json_decref(got);
    }
    gh_token_cache_free(c); /* frees the remaining entries: ASan checks the references */
}

static void test_zero_capacity_and_no_exp_keep_nothing(void **state)
{
    (void)state;
    gh_token_cache_t *off = gh_token_cache_new(0), *c = gh_token_cache_new(4);
    json_t *cl = claims("alice");
    gh_token_cache_put(off, &ISS_A, 1, T("tok"), cl, 1000.0);
    gh_token_cache_put(c, &ISS_A, 1, T("tok"), cl, 0.0); /* no exp: never cached */
    assert_null(gh_token_cache_get(off, &ISS_A, 1, T("tok"), 1.0));
    assert_null(gh_token_cache_get(c, &ISS_A, 1, T("tok"), 1.0));
    assert_int_equal(cl->refcount, 1);
    json_decref(cl);
    gh_token_cache_free(off);
    gh_token_cache_free(c);
}

static void test_put_again_replaces(void **state)
{
    (void)state;
    gh_token_cache_t *c = gh_token_cache_new(4);
    json_t *a = claims("a"), *b = claims("b");
    gh_token_cache_put(c, &ISS_A, 1, T("tok"), a, 1000.0);
    gh_token_cache_put(c, &ISS_A, 1, T("tok"), b, 2000.0);
    assert_int_equal(gh_token_cache_size(c), 1);
    json_t *got = gh_token_cache_get(c, &ISS_A, 1, T("tok"), 1500.0);
    assert_ptr_equal(got, b);
    json_decref(got);
    json_decref(a);
    json_decref(b);
    gh_token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_until_exp),
        cmocka_unit_test(test_whole_token_and_issuer_are_the_key),
        cmocka_unit_test(test_key_change_drops_entries),
        cmocka_unit_test(test_bounded_lru),
        cmocka_unit_test(test_zero_capacity_and_no_exp_keep_nothing),
        cmocka_unit_test(test_put_again_replaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
