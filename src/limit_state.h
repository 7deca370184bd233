/* Types only: a rate-limit spec and a request's rate-limit state, which
 * gh_req_t embeds (functions in limiter.h). */
#ifndef GH_LIMIT_STATE_H
#define GH_LIMIT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

#include "list.h"

struct gh_limit_call_s;

typedef struct {
    gh_limit_conf_t conf;
    bool global;        /* through Redis, when one is configured */
    bool deny_on_error; /* Redis failed: 503 rather than let it through */
    bool headers;       /* RateLimit headers on the response even when allowed */
    const char *name;   /* the policy's name in the headers */
    size_t name_len;
} gh_limit_spec_t;

/* What a request's last decision was (kept in gh_req_t). */
typedef struct {
    gh_link_t link;               /* queued for the worker's next batch */
    struct gh_limit_call_s *call; /* or sent in this one, at slot */
    int slot;
    const char *key; /* the Redis key (arena), and the GCRA parameters */
    size_t klen;
    int64_t t_us, tau_us;
    bool pending;       /* waiting for Redis: the phase re-enters when it answers */
    bool decided;       /* res holds the last decision */
    bool failed;        /* Redis failed for it (error says why) */
    bool failed_closed; /* ... with on_error = "deny": the request ends in 503 */
    bool headers;       /* the response carries RateLimit headers */
    bool cleanup;       /* the arena cleanup that cancels op is registered */
    bool deny_on_error; /* of the decision under way */
    const char *error;
    gh_limit_result_t res;
    double window; /* the policy's per, w in RateLimit-Policy */
    char name[64]; /* of the last decision, quoted in the headers */
} gh_req_limit_t;

#endif
