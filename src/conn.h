/* A downstream (client) connection: reads through its stream into llhttp,
 * enforces limits and timeouts, keeps requests in order. */
#ifndef GH_CONN_H
#define GH_CONN_H

#include <llhttp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "list.h"
#include "stream.h"

typedef struct gh_worker_s gh_worker_t;
typedef struct gh_req_s gh_req_t;

/* Each kind has one duration per worker, so a worker keeps one FIFO list
 * per kind, always in deadline order, and one ticking timer for them all:
 * no timer handle per connection. */
typedef enum {
    GH_TIMER_OFF,
    GH_TIMER_HEADER, /* waiting for a complete head -> 408 */
    GH_TIMER_BODY,   /* waiting for request body bytes -> 408 */
    GH_TIMER_IDLE,   /* keep-alive between requests -> close */
    GH_TIMER_LINGER, /* flushing before close -> close now */
    GH_TIMER_KINDS
} gh_conn_timer_t;

typedef struct gh_conn_s {
    gh_stream_t s;
    gh_worker_t *w;
    gh_link_t link;    /* in the worker's connection list */
    gh_link_t tlink;   /* in the worker's deadline list for timer_kind */
    uint64_t deadline; /* loop time in ms */
    gh_conn_timer_t timer_kind;
    llhttp_t parser;
    gh_req_t *req;
    gh_buf_t *pend; /* read bytes not yet parsed */
    size_t pend_off, pend_len;
    gh_buf_t *cur;         /* the buffer llhttp is parsing, for body slices */
    const char *value_end; /* where the last header-value bytes ended */
    bool head_done;        /* the current request's head is complete */
    bool head_new;         /* ... and its phases have not started yet */
    bool msg_done;         /* ... and its body ended in the last parse */
    bool body_flowing;     /* the current request may have its body parsed */
    bool in_process;
    bool again;
    bool closing;
    bool requests_seen;
    bool peer_eof;  /* the client half-closed while its response was pending */
    int err_status; /* set by a callback that refuses the request */
    const char *err_detail;
    struct sockaddr_storage peer; /* AF_UNSPEC when unknown */
    char peer_ip[46];             /* INET6_ADDRSTRLEN */
    uint16_t local_port;
} gh_conn_t;

/* Accepts one connection from listener onto the worker. */
void gh_conn_accept(gh_worker_t *w, uv_stream_t *listener);

/* The proxy is ready for the request body: parse and read it now. */
void gh_conn_body_ready(gh_conn_t *c);

/* Re-evaluates whether to parse buffered bytes or read more (after
 * back-pressure lifts, or a request ends). */
void gh_conn_process(gh_conn_t *c);

/* The current request is over; keep the connection or close it. */
void gh_conn_request_done(gh_conn_t *c, bool close);

/* Closes the connection: flushing queued writes first when graceful. */
void gh_conn_close(gh_conn_t *c, bool graceful);

/* Fires every expired deadline of the worker's connections. */
void gh_conn_expire(gh_worker_t *w, uint64_t now);

/* The worker is draining: close now if idle, otherwise after the request. */
void gh_conn_drain(gh_conn_t *c);

#endif
