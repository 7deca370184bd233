/* The proxy phase: lease an upstream connection, send the request head and
 * stream the body, relay the response back with back-pressure both ways. */
#ifndef GH_PROXY_H
#define GH_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "req.h"

/* Starts proxying r to its route's upstream. Returns GH_PHASE_WAIT (the
 * response will end the request) or GH_PHASE_STOP (already answered). */
gh_phase_rc gh_proxy_start(gh_req_t *r);

/* A slice of request body, held by buf, to forward. */
void gh_proxy_request_body(gh_proxy_t *p, gh_buf_t *buf, const char *at, size_t len);

/* The request body has ended (closes a chunked body upstream). */
void gh_proxy_request_end(gh_proxy_t *p);

/* True while the upstream has too much request body queued to take more;
 * remembers that it said so, to resume the client when the queue drains. */
bool gh_proxy_blocked(gh_proxy_t *p);

/* The client's write queue drained some: resume reading the upstream. */
void gh_proxy_client_drained(gh_proxy_t *p);

/* The request ended badly: close the upstream connection, never reuse it. */
void gh_proxy_abort(gh_proxy_t *p);

/* The exchange completed: return the upstream connection to its pool when
 * it is clean, close it otherwise. */
void gh_proxy_finish(gh_proxy_t *p);

#endif
