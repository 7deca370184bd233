/* Rate limits: the GCRA decision (pure arithmetic, shared in meaning with
 * the Redis script of global limits) and the process-wide table of local
 * limits, exact across the worker threads of one instance. */
#ifndef GH_RATELIMIT_H
#define GH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest key gh_limit_local accepts, in bytes. */
#define GH_LIMIT_KEY_MAX 1024

/* Longest emission interval or burst window, in microseconds (2^50, about
 * 35.7 years): longer ones are clamped to it, so every time the decision
 * computes stays below 2^53 and is exact in a double (a Lua number) until
 * the year 2112. */
#define GH_LIMIT_MAX_US ((int64_t)1 << 50)

/* Latest now_us gh_limit_local accepts (2^52 microseconds: year 2112). */
#define GH_LIMIT_MAX_NOW ((int64_t)1 << 52)

typedef struct {
    double rate, per; /* rate requests per `per` seconds */
    double burst;     /* bucket size: requests allowed at once (>= 1) */
} gh_limit_conf_t;

typedef struct {
    bool allowed;
    double limit;       /* = burst, the quota (q in RateLimit-Policy) */
    double remaining;   /* whole requests left now (>= 0, floored) */
    double reset;       /* seconds until the full quota is back */
    double retry_after; /* seconds until a request would be allowed; 0 when allowed */
} gh_limit_result_t;

/* Whether conf can be decided on: rate and per finite and > 0, burst
 * finite and >= 1 (it need not be an integer). */
bool gh_limit_conf_valid(const gh_limit_conf_t *conf);

/* The integers the decision works in, for a valid conf: *t_us, the
 * emission interval per/rate in microseconds rounded to the nearest (at
 * least 1), and *tau_us = floor(burst * t_us), the burst window; both
 * clamped to GH_LIMIT_MAX_US. The Redis script of global limits is given
 * these two rather than computing them again. */
void gh_gcra_params(const gh_limit_conf_t *conf, int64_t *t_us, int64_t *tau_us);

/* One GCRA decision from the stored theoretical arrival time *tat (0 for
 * a new key) at now_us; updates *tat when allowed and fills res. Returns
 * how many microseconds after now_us the key's state must be kept (*tat -
 * now_us, at least 0): once that has passed, a missing key decides the
 * same as the stored one. Assumes gh_limit_conf_valid(conf), 0 <= now_us
 * <= GH_LIMIT_MAX_NOW, and *tat 0 or as earlier decisions left it. */
int64_t gh_gcra(int64_t *tat, int64_t now_us, const gh_limit_conf_t *conf, gh_limit_result_t *res);

/* The process-wide table of local limits, safe to share between threads.
 * At most max_keys keys are held, the bound kept per lock stripe (max_keys
 * shared out between up to 64 stripes). Entries whose state has expired are
 * reclaimed a few at a time as decisions pass through their stripe. A new
 * key in a full stripe evicts the stripe's entry that expires first: that
 * is the bucket nearest to full again anyway, so losing it hands out the
 * least unearned quota of any live entry. */
typedef struct gh_limit_table_s gh_limit_table_t;

/* A table of at most max_keys keys with a fresh random hash key, or NULL
 * when max_keys is 0 or memory or randomness is short. */
gh_limit_table_t *gh_limit_table_new(size_t max_keys);
void gh_limit_table_free(gh_limit_table_t *t);

/* Decides for key (klen arbitrary bytes) under conf at now_us, in
 * microseconds of one clock used for every call on the table (a monotonic
 * one never meets the clock-gone-back case). Returns 0 with res filled, or
 * -1 with nothing changed when the key is longer than GH_LIMIT_KEY_MAX,
 * conf is invalid, now_us is outside [0, GH_LIMIT_MAX_NOW], or memory is
 * short. */
int gh_limit_local(gh_limit_table_t *t, const char *key, size_t klen, const gh_limit_conf_t *conf,
                   int64_t now_us, gh_limit_result_t *res);

/* Keys held, live or expired but not yet reclaimed (for tests). */
size_t gh_limit_table_count(gh_limit_table_t *t);

/* SipHash-2-4 of len bytes under the 16-byte key, the table's hash
 * (exported for its test vectors). */
uint64_t gh_siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
