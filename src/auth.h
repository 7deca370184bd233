/* The auth phase: find the route issuer's token in the request, verify it
 * (or find it in the worker's cache), and keep its claims on the request.
 * Failures answer 400/401 per RFC 6750; nothing reaches the upstream. */
#ifndef GH_AUTH_H
#define GH_AUTH_H

#include "req.h"

/* GH_PHASE_NEXT when the route needs no token or the token verified;
 * GH_PHASE_STOP when the request was answered with 400 or 401. */
gh_phase_rc gh_auth_phase(gh_req_t *r);

/* Re-enters the auth phase of this worker's requests that waited for a
 * key fetch which has ended, or waited as long as they may. Called on the
 * worker's loop when a key source signals, and on its tick. */
struct gh_worker_s;
void gh_auth_wake(struct gh_worker_s *w);

#endif
