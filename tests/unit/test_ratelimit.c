/* Rate limits: the GCRA arithmetic at its edges (bursts, refill, exact
 * retry times, fractional rates and bursts, clamped huge values, a clock
 * that goes back), SipHash-2-4 against its published vectors and OpenSSL,
 * and the shared table (key separation, reclamation, eviction order, the
 * bound, refusals, exactness across threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ratelimit.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SEC      1000000LL                   /* one second in microseconds */
#define US(s)    ((int64_t)llround((s)*1e6)) /* seconds in a result, back to microseconds */
#define K(s)     s, strlen(s)

static const int64_t T0 = 1700000000LL * SEC; /* a realistic wall-clock now */

static gh_limit_conf_t conf(double rate, double per, double burst)
{
    return (gh_limit_conf_t){.rate = rate, .per = per, .burst = burst};
}

static int64_t interval(gh_limit_conf_t c)
{
    int64_t t, tau;
    gh_gcra_params(&c, &t, &tau);
    return t;
}

static int64_t window(gh_limit_conf_t c)
{
    int64_t t, tau;
    gh_gcra_params(&c, &t, &tau);
    return tau;
}

/* One gh_gcra decision; fails at the caller's line unless the result keeps
 * the invariants every decision must (nothing negative, remaining whole,
 * tat moved only when allowed, the expiry what is left of tat). Returns
 * whether it was allowed. */
static bool decide_at(int64_t *tat, int64_t now, gh_limit_conf_t c, gh_limit_result_t *out,
                      int line)
{
    gh_limit_result_t r;
    int64_t was = *tat;
    int64_t expiry = gh_gcra(tat, now, &c, &r);
    if (r.limit != c.burst) fail_msg("line %d: limit %g, want %g", line, r.limit, c.burst);
    if (r.remaining < 0 || r.remaining != floor(r.remaining) || r.reset < 0 || r.retry_after < 0)
        fail_msg("line %d: remaining %g reset %g retry_after %g", line, r.remaining, r.reset,
                 r.retry_after);
    if (r.allowed && (r.retry_after != 0 || *tat <= was || *tat <= now))
        fail_msg("line %d: allowed with retry_after %g, tat %lld -> %lld", line, r.retry_after,
                 (long long)was, (long long)*tat);
    if (!r.allowed && (r.retry_after <= 0 || r.remaining != 0 || *tat != was))
        fail_msg("line %d: denied with retry_after %g remaining %g, tat %lld -> %lld", line,
                 r.retry_after, r.remaining, (long long)was, (long long)*tat);
    if (expiry != (*tat > now ? *tat - now : 0))
        fail_msg("line %d: expiry %lld with tat %lld now %lld", line, (long long)expiry,
                 (long long)*tat, (long long)now);
    if (out) *out = r;
    return r.allowed;
}
#define DECIDE(tat, now, c, out) decide_at(tat, now, c, out, __LINE__)

/* A small deterministic generator (xorshift64*), so failures replay. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* ---- configuration ---- */

static void test_conf_valid(void **state)
{
    (void)state;
    gh_limit_conf_t ok[] = {
        conf(1, 1, 1),       conf(100, 60, 20),          conf(0.5, 1, 1),
        conf(1, 0.001, 2.5), conf(1e300, 1e-300, 1e300), conf(10, 1, 1.0000001)};
    for (size_t i = 0; i < NELEM(ok); i++) assert_true(gh_limit_conf_valid(&ok[i]));
    gh_limit_conf_t bad[] = {
        conf(0, 1, 1),        conf(-1, 1, 1),       conf(NAN, 1, 1),       conf(INFINITY, 1, 1),
        conf(1, 0, 1),        conf(1, -1, 1),       conf(1, NAN, 1),       conf(1, INFINITY, 1),
        conf(1, 1, 0),        conf(1, 1, 0.999999), conf(1, 1, -5),        conf(1, 1, NAN),
        conf(1, 1, INFINITY), conf(1, 1, 0.5),      conf(-INFINITY, 1, 1), conf(1, -0.0, 1),
    };
    for (size_t i = 0; i < NELEM(bad); i++)
        if (gh_limit_conf_valid(&bad[i])) fail_msg("bad conf %zu accepted", i);
}

static void test_params(void **state)
{
    (void)state;
    struct {
        gh_limit_conf_t c;
        int64_t t, tau;
    } cases[] = {
        {conf(100, 60, 20), 600000, 12000000},  /* 100 per minute: 0.6 s */
        {conf(100, 60, 100), 600000, 60000000}, /* burst = rate: a minute's worth */
        {conf(10, 1, 10), 100000, 1000000},
        {conf(1, 1, 1), 1000000, 1000000},
        {conf(7, 1, 7), 142857, 999999},           /* 142857.14 rounds down */
        {conf(3, 2, 3), 666667, 2000001},          /* 666666.67 rounds up */
        {conf(1, 0.1, 1), 100000, 100000},         /* 0.1 * 1e6 has no noise left */
        {conf(1, 1, 2.5), 1000000, 2500000},       /* fractional burst */
        {conf(1, 1, 1.0000001), 1000000, 1000000}, /* floor(1000000.1) */
        {conf(3, 1, 1.5), 333333, 499999},         /* floor(499999.5) */
        {conf(1e9, 1, 1), 1, 1},                   /* faster than a microsecond: 1 */
        {conf(2e6, 1, 4e6), 1, 4000000},           /* 0.5 us rounds up to 1 */
        {conf(1e300, 1, 5), 1, 5},
        {conf(1, 1e300, 1), GH_LIMIT_MAX_US, GH_LIMIT_MAX_US},   /* clamped */
        {conf(1, DBL_MAX, 1), GH_LIMIT_MAX_US, GH_LIMIT_MAX_US}, /* per * 1e6 is infinite */
        {conf(DBL_MIN, 1, 1), GH_LIMIT_MAX_US, GH_LIMIT_MAX_US}, /* per / rate is infinite */
        {conf(1, 1, 1e300), 1000000, GH_LIMIT_MAX_US},
        {conf(1, 1, DBL_MAX), 1000000, GH_LIMIT_MAX_US}, /* burst * t is infinite */
        {conf(1, 1125899906.842624, 1), GH_LIMIT_MAX_US, GH_LIMIT_MAX_US}, /* exactly 2^50 us */
        {conf(1, 1125899906.842623, 1), GH_LIMIT_MAX_US - 1, GH_LIMIT_MAX_US - 1},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        int64_t t, tau;
        gh_gcra_params(&cases[i].c, &t, &tau);
        if (t != cases[i].t || tau != cases[i].tau)
            fail_msg("case %zu: t %lld tau %lld, want %lld %lld", i, (long long)t, (long long)tau,
                     (long long)cases[i].t, (long long)cases[i].tau);
        assert_true(tau >= t);
    }
}

/* ---- the decision ---- */

static void test_fresh_key_allows_exactly_burst(void **state)
{
    (void)state;
    gh_limit_conf_t cs[] = {conf(1, 1, 1),       conf(10, 1, 10), conf(100, 60, 20),
                            conf(100, 60, 100),  conf(7, 1, 3),   conf(1, 3600, 50),
                            conf(1000, 1, 1000), conf(3, 2, 3),   conf(1e9, 1, 64)};
    for (size_t i = 0; i < NELEM(cs); i++) {
        int64_t tat = 0, t = interval(cs[i]);
        gh_limit_result_t r;
        for (int k = 1; k <= (int)cs[i].burst; k++) {
            if (!DECIDE(&tat, T0, cs[i], &r)) fail_msg("conf %zu: request %d denied", i, k);
            assert_true(r.remaining == cs[i].burst - k);
            assert_int_equal(US(r.reset), k * t);
            assert_int_equal(tat, T0 + k * t);
        }
        for (int k = 0; k < 3; k++) {
            if (DECIDE(&tat, T0, cs[i], &r)) fail_msg("conf %zu: past the burst allowed", i);
            assert_int_equal(tat, T0 + (int64_t)cs[i].burst * t);
        }
    }
}

static void test_refill_after_interval(void **state)
{
    (void)state;
    gh_limit_conf_t c = conf(10, 1, 3); /* t = 100 ms */
    int64_t t = interval(c), tat = 0;
    gh_limit_result_t r;
    for (int k = 0; k < 3; k++) assert_true(DECIDE(&tat, T0, c, NULL));
    assert_false(DECIDE(&tat, T0 + t - 1, c, &r));
    assert_int_equal(US(r.retry_after), 1);
    assert_true(DECIDE(&tat, T0 + t, c, &r)); /* exactly one back */
    assert_true(r.remaining == 0);
    assert_false(DECIDE(&tat, T0 + t, c, NULL));
    assert_true(DECIDE(&tat, T0 + 3 * t, c, &r)); /* two back, one spent */
    assert_true(r.remaining == 1);
    assert_true(DECIDE(&tat, T0 + 3 * t, c, NULL));
    assert_false(DECIDE(&tat, T0 + 3 * t, c, NULL));
    /* Idle far longer than the window: a full burst again, never more. */
    int allowed = 0;
    while (DECIDE(&tat, T0 + 3600 * SEC, c, NULL)) allowed++;
    assert_int_equal(allowed, 3);
}

/* At now + retry_after a request is allowed, one microsecond earlier not. */
static void test_retry_after_exact(void **state)
{
    (void)state;
    gh_limit_conf_t cs[] = {conf(1, 1, 1),   conf(10, 1, 3),   conf(100, 60, 20), conf(7, 1, 7),
                            conf(3, 2, 1.5), conf(1, 3600, 2), conf(5, 1, 2.5)};
    for (size_t i = 0; i < NELEM(cs); i++) {
        int64_t tat = 0, t = interval(cs[i]), tau = window(cs[i]);
        while (DECIDE(&tat, T0, cs[i], NULL)) {
        }
        for (int step = 0; step < 200; step++) {
            int64_t now = T0 + (int64_t)(rnd() % (uint64_t)(3 * t));
            int64_t probe = tat;
            gh_limit_result_t r;
            if (DECIDE(&probe, now, cs[i], &r)) continue;
            int64_t wait = US(r.retry_after);
            assert_int_equal(wait, (tat > now ? tat : now) + t - tau - now);
            assert_int_equal(US(r.reset), tat - now);
            probe = tat;
            assert_false(DECIDE(&probe, now + wait - 1, cs[i], NULL));
            assert_true(DECIDE(&probe, now + wait, cs[i], NULL));
        }
    }
}

static void test_remaining_and_reset(void **state)
{
    (void)state;
    gh_limit_conf_t c = conf(1, 1, 5);
    int64_t tat = 0;
    gh_limit_result_t r;
    for (int k = 1; k <= 5; k++) {
        assert_true(DECIDE(&tat, T0, c, &r));
        assert_true(r.remaining == 5 - k);
        assert_true(r.reset == k); /* seconds until all 5 are back */
    }
    assert_false(DECIDE(&tat, T0, c, &r));
    assert_true(r.reset == 5);
    assert_true(r.retry_after == 1);
    /* 2.5 s later: 2.5 back, one spent, one whole left. */
    assert_true(DECIDE(&tat, T0 + 2500000, c, &r));
    assert_true(r.remaining == 1);
    assert_true(r.reset == 3.5);
    assert_true(DECIDE(&tat, T0 + 2500000, c, &r));
    assert_true(r.remaining == 0);
    assert_true(r.reset == 4.5);
    assert_false(DECIDE(&tat, T0 + 2500000, c, &r));
    assert_true(r.retry_after == 0.5);
    assert_true(r.reset == 4.5);
    /* Once reset has passed, the full quota is back. */
    assert_true(DECIDE(&tat, T0 + 7000000, c, &r));
    assert_true(r.remaining == 4);
}

/* 100 per 60 s: a burst of 100, then one every 0.6 s, however often it is asked. */
static void test_fractional_rate_sustained(void **state)
{
    (void)state;
    gh_limit_conf_t c = conf(100, 60, 100);
    int64_t tat = 0;
    int allowed = 0;
    while (DECIDE(&tat, T0, c, NULL)) allowed++;
    assert_int_equal(allowed, 100);
    allowed = 0;
    for (int64_t now = T0 + 10000; now <= T0 + 60 * SEC; now += 10000) {
        if (!DECIDE(&tat, now, c, NULL)) continue;
        allowed++;
        assert_int_equal((now - T0) % 600000, 0); /* each exactly when one came back */
    }
    assert_int_equal(allowed, 100);

    /* 100 per 60 with burst 20: 20 at once, back in full after 12 s. */
    c = conf(100, 60, 20);
    tat = 0;
    gh_limit_result_t r;
    for (int k = 0; k < 20; k++) assert_true(DECIDE(&tat, T0, c, &r));
    assert_true(r.reset == 12);
    assert_false(DECIDE(&tat, T0, c, &r));
    assert_true(r.retry_after == 0.6);
}

static void test_fractional_burst(void **state)
{
    (void)state;
    gh_limit_conf_t c = conf(1, 1, 2.5);
    int64_t tat = 0;
    gh_limit_result_t r;
    assert_true(DECIDE(&tat, T0, c, &r));
    assert_true(r.remaining == 1);
    assert_true(r.limit == 2.5);
    assert_true(DECIDE(&tat, T0, c, &r));
    assert_true(r.remaining == 0);
    assert_false(DECIDE(&tat, T0, c, &r));
    assert_true(r.retry_after == 0.5); /* the half request already in the bucket */
    assert_true(DECIDE(&tat, T0 + 500000, c, NULL));
    assert_false(DECIDE(&tat, T0 + 500000, c, NULL));
    assert_true(DECIDE(&tat, T0 + 1500000, c, NULL));

    /* Just over 1: one at a time. */
    c = conf(10, 1, 1.0000001);
    tat = 0;
    assert_true(DECIDE(&tat, T0, c, NULL));
    assert_false(DECIDE(&tat, T0, c, NULL));
}

static void test_huge_values(void **state)
{
    (void)state;
    const double max_s = (double)GH_LIMIT_MAX_US / 1e6;
    gh_limit_conf_t huge_per[] = {conf(1, 1e300, 1), conf(1e-300, 1, 1), conf(1, DBL_MAX, 5)};
    for (size_t i = 0; i < NELEM(huge_per); i++) {
        int64_t tat = 0;
        gh_limit_result_t r;
        assert_true(DECIDE(&tat, T0, huge_per[i], &r));
        assert_true(r.remaining == 0);
        assert_true(r.reset == max_s);
        assert_int_equal(gh_gcra(&(int64_t){tat}, T0, &huge_per[i], &r), GH_LIMIT_MAX_US);
        assert_false(r.allowed);
        assert_true(r.retry_after == max_s);
        assert_true(r.reset == max_s);
    }

    /* A huge burst: the window is clamped, the count of it still exact. */
    gh_limit_conf_t c = conf(1, 1, 1e300);
    int64_t tat = 0;
    gh_limit_result_t r;
    assert_true(DECIDE(&tat, T0, c, &r));
    assert_true(r.remaining == (double)(GH_LIMIT_MAX_US / SEC - 1));
    assert_true(r.reset == 1);
    assert_true(r.limit == 1e300);

    /* A huge rate: one per microsecond. */
    c = conf(1e300, 1, 3);
    tat = 0;
    for (int k = 0; k < 3; k++) assert_true(DECIDE(&tat, T0, c, NULL));
    assert_false(DECIDE(&tat, T0, c, &r));
    assert_true(r.retry_after == 1e-6);
    assert_true(DECIDE(&tat, T0 + 1, c, NULL));

    /* At the latest accepted time, with the longest window: no overflow. */
    c = conf(1, 1e300, 1e300);
    tat = 0;
    assert_true(DECIDE(&tat, GH_LIMIT_MAX_NOW, c, &r));
    assert_int_equal(tat, GH_LIMIT_MAX_NOW + GH_LIMIT_MAX_US);
    assert_false(DECIDE(&tat, GH_LIMIT_MAX_NOW, c, &r));
    assert_true(r.retry_after == max_s);
}

static void test_clock_goes_back(void **state)
{
    (void)state;
    gh_limit_conf_t c = conf(1, 1, 5);
    int64_t tat = 0;
    gh_limit_result_t r;
    for (int k = 0; k < 5; k++) assert_true(DECIDE(&tat, T0, c, NULL));
    assert_int_equal(tat, T0 + 5 * SEC);

    /* An hour back: tat is far more than the window ahead. Stays denied,
     * every number positive, nothing stored changes. */
    int64_t back = T0 - 3600 * SEC;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gh_gcra(&tat, back, &c, &r), 3605 * SEC);
        assert_false(r.allowed);
        assert_true(r.remaining == 0);
        assert_true(r.retry_after == 3601);
        assert_true(r.reset == 3605);
        assert_int_equal(tat, T0 + 5 * SEC);
    }
    assert_false(DECIDE(&tat, 0, c, NULL)); /* back to the epoch */

    /* A second back with room left in the window: allowed, still sane. */
    tat = 0;
    assert_true(DECIDE(&tat, T0, c, NULL));
    assert_true(DECIDE(&tat, T0, c, NULL));
    assert_true(DECIDE(&tat, T0 - SEC, c, &r));
    assert_true(r.remaining == 1);
    assert_true(r.reset == 4);
    assert_true(DECIDE(&tat, T0 - SEC, c, NULL));
    assert_false(DECIDE(&tat, T0 - SEC, c, &r));
    assert_true(r.retry_after == 1);
}

/* After the returned expiry, a stored tat decides exactly as no entry does:
 * what lets the table drop expired entries unseen. */
static void test_expiry_means_forgettable(void **state)
{
    (void)state;
    gh_limit_conf_t cs[] = {conf(1, 1, 5), conf(100, 60, 20), conf(7, 1, 2.5), conf(1e9, 1, 1)};
    for (size_t i = 0; i < NELEM(cs); i++) {
        int64_t tat = 0, now = T0;
        for (int step = 0; step < 500; step++) {
            int64_t expiry = gh_gcra(&tat, now, &cs[i], &(gh_limit_result_t){0});
            int64_t later = now + expiry + (int64_t)(rnd() % 3);
            int64_t kept = tat, fresh = 0;
            gh_limit_result_t a, b;
            int64_t ea = gh_gcra(&kept, later, &cs[i], &a), eb = gh_gcra(&fresh, later, &cs[i], &b);
            assert_true(a.allowed == b.allowed && a.remaining == b.remaining &&
                        a.reset == b.reset && a.retry_after == b.retry_after);
            assert_int_equal(kept, fresh);
            assert_int_equal(ea, eb);
            now += (int64_t)(rnd() % (uint64_t)(2 * interval(cs[i]) + 1)) - interval(cs[i]) / 4;
        }
    }
}

/* Random traffic under several confs: never more than (tau + elapsed) / t
 * allowed since the first request, and a denial only when the bucket has
 * less than one request's room. */
static void test_random_traffic_bound(void **state)
{
    (void)state;
    gh_limit_conf_t cs[] = {conf(1, 1, 1),   conf(10, 1, 10), conf(100, 60, 20),
                            conf(7, 1, 2.5), conf(3, 2, 5),   conf(50, 1, 1.5)};
    for (size_t i = 0; i < NELEM(cs); i++) {
        int64_t tat = 0, now = T0, t = interval(cs[i]), tau = window(cs[i]);
        int64_t allowed = 0;
        for (int step = 0; step < 20000; step++) {
            int64_t before = tat > now ? tat : now;
            bool ok = DECIDE(&tat, now, cs[i], NULL);
            allowed += ok;
            assert_true(ok == (before + t - now <= tau));
            if (allowed * t > tau + (now - T0))
                fail_msg("conf %zu: %lld allowed by %lld", i, (long long)allowed,
                         (long long)(now - T0));
            now += (int64_t)(rnd() % (uint64_t)(t / 2 + 1));
        }
        assert_true(allowed > 0);
    }
}

/* ---- SipHash-2-4 ---- */

static uint64_t le64(const uint8_t *p)
{
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--) w = w << 8 | p[i];
    return w;
}

static void test_siphash_vectors(void **state)
{
    (void)state;
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    /* The paper's worked example (appendix A) and the reference
     * implementation's first vectors (key 00..0f, message 00..len-1). */
    assert_true(gh_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    assert_true(gh_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    assert_true(gh_siphash24(key, msg, 1) == 0x74f839c593dc67fdull);
    assert_true(gh_siphash24(key, NULL, 0) == 0x726fdb47dd0e0e31ull);
}

/* OpenSSL's SipHash (2-4 by default, 8-byte output) on every length from 0
 * to 300 under random keys. */
static void test_siphash_matches_openssl(void **state)
{
    (void)state;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    assert_non_null(mac);
    uint8_t msg[300];
    for (size_t len = 0; len <= sizeof(msg); len++) {
        uint8_t key[16], out[8];
        for (int i = 0; i < 16; i++) key[i] = (uint8_t)rnd();
        for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (uint8_t)rnd();
        size_t size = 8, outl = 0;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                               OSSL_PARAM_construct_end()};
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        assert_non_null(ctx);
        assert_int_equal(EVP_MAC_init(ctx, key, sizeof(key), params), 1);
        assert_int_equal(EVP_MAC_update(ctx, msg, len), 1);
        assert_int_equal(EVP_MAC_final(ctx, out, &outl, sizeof(out)), 1);
        assert_int_equal(outl, 8);
        EVP_MAC_CTX_free(ctx);
        if (gh_siphash24(key, msg, len) != le64(out)) fail_msg("length %zu differs", len);
    }
    EVP_MAC_free(mac);
}

/* ---- the table ---- */

/* A decision through the table that must succeed; returns whether allowed. */
static bool local_at(gh_limit_table_t *t, const char *key, size_t klen, gh_limit_conf_t c,
                     int64_t now, gh_limit_result_t *out, int line)
{
    gh_limit_result_t r;
    if (gh_limit_local(t, key, klen, &c, now, &r) != 0) fail_msg("line %d: refused", line);
    if (out) *out = r;
    return r.allowed;
}
#define LOCAL(...) local_at(__VA_ARGS__, __LINE__)

static void test_table_new_refuses_zero(void **state)
{
    (void)state;
    assert_null(gh_limit_table_new(0));
    gh_limit_table_free(NULL);
}

static void test_table_same_key_shared_others_independent(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(1000);
    assert_non_null(t);
    gh_limit_conf_t c = conf(1, 60, 3);
    gh_limit_result_t r;
    for (int k = 2; k >= 0; k--) {
        assert_true(LOCAL(t, K("alice"), c, T0, &r));
        assert_true(r.remaining == k);
    }
    assert_false(LOCAL(t, K("alice"), c, T0, &r));
    assert_true(r.retry_after == 60);
    /* Keys that differ by a byte, a trailing NUL, or nothing but length. */
    assert_true(LOCAL(t, K("alicf"), c, T0, &r));
    assert_true(r.remaining == 2);
    assert_true(LOCAL(t, "alice\0", 6, c, T0, &r));
    assert_true(r.remaining == 2);
    assert_true(LOCAL(t, "alic", 4, c, T0, &r));
    assert_true(r.remaining == 2);
    assert_true(LOCAL(t, "a\0b", 3, c, T0, &r));
    assert_true(LOCAL(t, "a\0c", 3, c, T0, &r));
    assert_true(r.remaining == 2);
    /* The empty key, spelt two ways, is one key. */
    assert_true(LOCAL(t, NULL, 0, c, T0, &r));
    assert_true(LOCAL(t, "", 0, c, T0, &r));
    assert_true(r.remaining == 1);
    /* Keys of the longest length, differing in the last byte. */
    char big[GH_LIMIT_KEY_MAX];
    memset(big, 'k', sizeof(big));
    assert_true(LOCAL(t, big, sizeof(big), c, T0, &r));
    big[sizeof(big) - 1] = 'j';
    assert_true(LOCAL(t, big, sizeof(big), c, T0, &r));
    assert_true(r.remaining == 2);
    assert_int_equal(gh_limit_table_count(t), 9);
    /* Still alice's own state, a second later. */
    assert_false(LOCAL(t, K("alice"), c, T0 + SEC, &r));
    assert_true(r.retry_after == 59);
    gh_limit_table_free(t);
}

static void test_table_refusals_change_nothing(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(100);
    gh_limit_conf_t c = conf(1, 1, 1);
    char big[GH_LIMIT_KEY_MAX + 1];
    memset(big, 'x', sizeof(big));
    gh_limit_result_t r, sentinel;
    memset(&sentinel, 0xa5, sizeof(sentinel));
    memcpy(&r, &sentinel, sizeof(r));
    assert_int_equal(gh_limit_local(t, big, sizeof(big), &c, T0, &r), -1);
    assert_int_equal(gh_limit_local(t, NULL, 3, &c, T0, &r), -1);
    assert_int_equal(gh_limit_local(t, K("k"), &c, -1, &r), -1);
    assert_int_equal(gh_limit_local(t, K("k"), &c, GH_LIMIT_MAX_NOW + 1, &r), -1);
    gh_limit_conf_t bad[] = {conf(0, 1, 1),   conf(1, 0, 1),        conf(1, 1, 0.5),
                             conf(NAN, 1, 1), conf(1, INFINITY, 1), conf(1, 1, INFINITY)};
    for (size_t i = 0; i < NELEM(bad); i++)
        assert_int_equal(gh_limit_local(t, K("k"), &bad[i], T0, &r), -1);
    assert_memory_equal(&r, &sentinel, sizeof(r));
    assert_int_equal(gh_limit_table_count(t), 0);
    /* The edges themselves are accepted (the latest time first: it would
     * reclaim the others' entries, expired by then). */
    assert_true(LOCAL(t, K("late"), c, GH_LIMIT_MAX_NOW, NULL));
    assert_true(LOCAL(t, big, GH_LIMIT_KEY_MAX, c, T0, NULL));
    assert_true(LOCAL(t, K("k"), c, 0, NULL));
    assert_int_equal(gh_limit_table_count(t), 3);
    gh_limit_table_free(t);
}

static void test_table_reclaims_expired(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(16); /* this small: one stripe */
    gh_limit_conf_t c = conf(1, 1, 1);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(LOCAL(t, K(key), c, T0, NULL));
    }
    assert_int_equal(gh_limit_table_count(t), 10);
    /* Not yet expired a microsecond before: nothing goes. */
    assert_true(LOCAL(t, K("x"), c, T0 + SEC - 1, NULL));
    assert_int_equal(gh_limit_table_count(t), 11);
    /* Expired: a few go with each decision, until none is left. */
    assert_true(LOCAL(t, K("y"), c, T0 + SEC, NULL));
    size_t after_one = gh_limit_table_count(t);
    assert_true(after_one < 11);
    for (int i = 0; i < 3; i++) assert_false(LOCAL(t, K("y"), c, T0 + SEC, NULL));
    assert_int_equal(gh_limit_table_count(t), 2); /* x (expires T0 + 2s - 1) and y */
    /* A key that expired and came back decides as a fresh one. */
    gh_limit_result_t r;
    assert_true(LOCAL(t, K("k3"), conf(1, 1, 4), T0 + 5 * SEC, &r));
    assert_true(r.remaining == 3);
    gh_limit_table_free(t);
}

static void test_table_reclaims_expired_before_evicting(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(4);
    gh_limit_conf_t slow = conf(1, 100, 1), fast = conf(1, 1, 1);
    assert_true(LOCAL(t, K("A"), slow, T0, NULL));
    assert_true(LOCAL(t, K("B"), fast, T0, NULL));
    assert_true(LOCAL(t, K("C"), fast, T0, NULL));
    assert_true(LOCAL(t, K("D"), fast, T0, NULL));
    assert_int_equal(gh_limit_table_count(t), 4);
    assert_true(LOCAL(t, K("E"), fast, T0 + 2 * SEC, NULL));
    assert_int_equal(gh_limit_table_count(t), 2);
    gh_limit_result_t r;
    assert_false(LOCAL(t, K("A"), slow, T0 + 2 * SEC, &r)); /* kept its state */
    assert_true(r.retry_after == 98);
    gh_limit_table_free(t);
}

/* A full stripe of live entries gives up the ones expiring first, in order. */
static void test_table_evicts_earliest_expiry(void **state)
{
    (void)state;
    for (int round = 0; round < 40; round++) {
        gh_limit_table_t *t = gh_limit_table_new(8); /* one stripe of 8 */
        int order[8];
        for (int i = 0; i < 8; i++) order[i] = i + 1;
        for (int i = 7; i > 0; i--) {
            int j = (int)(rnd() % (uint64_t)(i + 1)), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        char key[16];
        for (int i = 0; i < 8; i++) { /* key "oN" expires N seconds from T0 */
            snprintf(key, sizeof(key), "o%d", order[i]);
            assert_true(LOCAL(t, K(key), conf(1, order[i], 1), T0, NULL));
        }
        int evict = round % 8 + 1;
        for (int i = 0; i < evict; i++) {
            snprintf(key, sizeof(key), "n%d", i);
            assert_true(LOCAL(t, K(key), conf(1, 1000, 1), T0, NULL));
            assert_int_equal(gh_limit_table_count(t), 8);
        }
        /* Survivors first (found: denied, nothing inserted), then the evicted. */
        for (int n = evict + 1; n <= 8; n++) {
            snprintf(key, sizeof(key), "o%d", n);
            if (LOCAL(t, K(key), conf(1, n, 1), T0, NULL))
                fail_msg("round %d: o%d was evicted, only o1..o%d should be", round, n, evict);
        }
        for (int n = 1; n <= evict; n++) {
            snprintf(key, sizeof(key), "o%d", n);
            if (!LOCAL(t, K(key), conf(1, n, 1), T0, NULL))
                fail_msg("round %d: o%d was kept, o1..o%d should be evicted", round, n, evict);
        }
        gh_limit_table_free(t);
    }
}

/* Inserts n distinct keys (named from base) at now; the count never passes max. */
static void fill(gh_limit_table_t *t, size_t max, int base, int n, int64_t now)
{
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%d", base + i);
        assert_true(LOCAL(t, K(key), conf(1, 60, 2), now, NULL));
        if (i % 97 == 0 && gh_limit_table_count(t) > max)
            fail_msg("%zu keys held, max %zu", gh_limit_table_count(t), max);
    }
}

static void test_table_bound_holds(void **state)
{
    (void)state;
    size_t maxes[] = {1, 2, 15, 16, 17, 31, 32, 33, 100, 1000, 1025, 5000};
    for (size_t i = 0; i < NELEM(maxes); i++) {
        gh_limit_table_t *t = gh_limit_table_new(maxes[i]);
        assert_non_null(t);
        int n = (int)(maxes[i] * 10 + 50);
        fill(t, maxes[i], 0, n, T0);
        /* Ten keys per slot in random stripes fill every stripe. */
        assert_int_equal(gh_limit_table_count(t), maxes[i]);
        fill(t, maxes[i], n, n, T0 + 3600 * SEC); /* the first lot all expired */
        assert_int_equal(gh_limit_table_count(t), maxes[i]);
        gh_limit_table_free(t);
    }
}

/* With room for every key, the table decides exactly as one tat per key
 * kept forever would: nothing live is lost, expired ones are invisible. */
static void test_table_matches_model(void **state)
{
    (void)state;
    enum { NKEYS = 24 };
    gh_limit_table_t *t = gh_limit_table_new(NKEYS);
    int64_t model[NKEYS] = {0}, now = T0;
    gh_limit_conf_t cs[] = {conf(1, 1, 2), conf(5, 2, 1.5), conf(100, 60, 3)};
    char key[16];
    for (int step = 0; step < 50000; step++) {
        int k = (int)(rnd() % NKEYS);
        gh_limit_conf_t c = cs[k % NELEM(cs)];
        snprintf(key, sizeof(key), "m%d", k);
        gh_limit_result_t a, b;
        assert_true(LOCAL(t, K(key), c, now, &a) == DECIDE(&model[k], now, c, &b));
        assert_true(a.limit == b.limit && a.remaining == b.remaining && a.reset == b.reset &&
                    a.retry_after == b.retry_after);
        assert_true(gh_limit_table_count(t) <= NKEYS);
        now += (int64_t)(rnd() % 300000);
    }
    gh_limit_table_free(t);
}

/* ---- threads ---- */

typedef struct {
    gh_limit_table_t *t;
    pthread_barrier_t *start;
    const char *key; /* NULL: a distinct key per decision */
    int id, n;
    gh_limit_conf_t c;
    int64_t now;
    int allowed, errors;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    char key[32];
    pthread_barrier_wait(a->start);
    for (int i = 0; i < a->n; i++) {
        gh_limit_result_t r;
        size_t len =
            a->key ? strlen(a->key) : (size_t)snprintf(key, sizeof(key), "t%d-%d", a->id, i);
        int64_t now = a->key ? a->now : a->now + i * 1000;
        if (gh_limit_local(a->t, a->key ? a->key : key, len, &a->c, now, &r) != 0)
            a->errors++;
        else
            a->allowed += r.allowed;
    }
    return NULL;
}

/* Runs 4 workers on t, each with n decisions; returns the total allowed. */
static int run_workers(gh_limit_table_t *t, const char *key, int n, gh_limit_conf_t c, int64_t now)
{
    enum { NTHREADS = 4 };
    pthread_t th[NTHREADS];
    worker_arg_t args[NTHREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (worker_arg_t){
            .t = t, .start = &start, .key = key, .id = i, .n = n, .c = c, .now = now};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    int allowed = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
        allowed += args[i].allowed;
    }
    pthread_barrier_destroy(&start);
    return allowed;
}

static void test_threads_one_key_exact(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(10000);
    assert_int_equal(run_workers(t, "hot", 20000, conf(1, 1, 1000), T0), 1000);
    assert_int_equal(run_workers(t, "hot", 5000, conf(1, 1, 1000), T0), 0);
    /* Ten seconds on, ten more between them all. */
    assert_int_equal(run_workers(t, "hot", 5000, conf(1, 1, 1000), T0 + 10 * SEC), 10);
    assert_int_equal(gh_limit_table_count(t), 1);
    gh_limit_table_free(t);
}

static void test_threads_churn_bounded(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(1000);
    /* Distinct keys, time moving on: every decision is a fresh key's. */
    assert_int_equal(run_workers(t, NULL, 20000, conf(1, 1, 1), T0), 4 * 20000);
    assert_true(gh_limit_table_count(t) <= 1000);
    gh_limit_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_valid),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_fresh_key_allows_exactly_burst),
        cmocka_unit_test(test_refill_after_interval),
        cmocka_unit_test(test_retry_after_exact),
        cmocka_unit_test(test_remaining_and_reset),
        cmocka_unit_test(test_fractional_rate_sustained),
        cmocka_unit_test(test_fractional_burst),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_clock_goes_back),
        cmocka_unit_test(test_expiry_means_forgettable),
        cmocka_unit_test(test_random_traffic_bound),
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_siphash_matches_openssl),
        cmocka_unit_test(test_table_new_refuses_zero),
        cmocka_unit_test(test_table_same_key_shared_others_independent),
        cmocka_unit_test(test_table_refusals_change_nothing),
        cmocka_unit_test(test_table_reclaims_expired),
        cmocka_unit_test(test_table_reclaims_expired_before_evicting),
        cmocka_unit_test(test_table_evicts_earliest_expiry),
        cmocka_unit_test(test_table_bound_holds),
        cmocka_unit_test(test_table_matches_model),
        cmocka_unit_test(test_threads_one_key_exact),
        cmocka_unit_test(test_threads_churn_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
