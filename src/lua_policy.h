/* The policy phase: the route's policy(req, claims) in a coroutine of the
 * worker's VM, yielding on waits and re-entered when they end; its outcome
 * (proxy, deny, redirect, respond) applied; on_response for the upstream's
 * response head. */
#ifndef GH_LUA_POLICY_H
#define GH_LUA_POLICY_H

#include "req.h"

/* GH_PHASE_NEXT to proxy, GH_PHASE_WAIT while the policy waits (a timer or
 * reply re-enters gh_req_run), GH_PHASE_STOP when the request was answered
 * (by the policy, or 500 for a policy error or an exhausted budget). */
gh_phase_rc gh_policy_phase(gh_req_t *r);

/* Runs the route's on_response(res, claims) over the response head h with
 * status. Returns 0, or -1 when it failed (logged; the caller answers). */
int gh_policy_on_response(gh_req_t *r, const gh_head_t *h, int status);

/* Starts a timer that re-enters the request's policy after seconds.
 * Returns 0 or -1 (OOM). */
int gh_policy_wait_timer(gh_req_t *r, double seconds);

#endif
