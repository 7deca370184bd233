/* A request's rate-limit decisions: local ones in the process-wide table,
 * global ones by one atomic GCRA script in Redis (pipelined on the
 * worker's connection); the route's rate_limit shorthand as a phase; the
 * 429 and the RateLimit headers. */
#ifndef GH_LIMITER_H
#define GH_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limit_state.h"
#include <uv.h>

#include "req.h"

/* Counters of decisions since start (for metrics). */
typedef struct {
    uint64_t allowed, denied, errors;
} gh_limiter_stats_t;

/* Makes the process-wide table of local limits (before the workers start;
 * `gatehouse test` gets one on first use). Returns 0 or -1. */
int gh_limiter_init(size_t max_keys);
void gh_limiter_shutdown(void);

/* Decides for r under key: returns 1 when decided now (r->limit), 0 when
 * the decision went to Redis (r re-enters its phase when it ends), -1 with
 * *err for a bad key or spec. */
int gh_limiter_decide(gh_req_t *r, const char *key, size_t klen, const gh_limit_spec_t *spec,
                      const char **err);

/* The route's rate_limit shorthand, between auth and the policy. */
gh_phase_rc gh_limit_phase(gh_req_t *r);

/* Writes r's RateLimit-Policy and RateLimit header lines (and Retry-After
 * when denied) into out; returns their length (0: no decision). */
size_t gh_limiter_headers(const gh_req_t *r, char *out, size_t cap);

/* Answers 429 with the headers of r's last decision. */
void gh_limiter_refuse(gh_req_t *r);

/* Answers 503: a limit with on_error = "deny" could not be decided. */
void gh_limiter_unavailable(gh_req_t *r);

gh_limiter_stats_t gh_limiter_stats(void);

/* A worker's batch of global decisions, sent through rd at most
 * max_in_flight calls at a time; closed (and freed once closed) on the
 * worker's loop. */
typedef struct gh_limit_batch_s gh_limit_batch_t;
typedef struct gh_redis_s gh_redis_t;
gh_limit_batch_t *gh_limiter_batch_new(uv_loop_t *loop, gh_redis_t *rd, int max_in_flight);
void gh_limiter_batch_close(gh_limit_batch_t *b);

#endif
