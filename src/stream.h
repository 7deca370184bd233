/* A byte stream the connection layers read and write through. Plain TCP
 * today; TLS slots in underneath later by providing another set of ops,
 * without conn.c or proxy.c changing. */
#ifndef GH_STREAM_H
#define GH_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "buf.h"

typedef struct gh_stream_s gh_stream_t;

/* nread > 0: bytes at buf->data[0..nread), the callee may keep references
 * (gh_buf_ref); nread < 0: a libuv error or UV_EOF (buf is NULL). */
typedef void (*gh_stream_read_cb)(gh_stream_t *s, ssize_t nread, gh_buf_t *buf);
/* Called when a queued write finishes, with 0 or a libuv error; a write the
 * socket took at once (the common case) finishes inside gh_stream_write
 * without it. Owners use it to resume after back-pressure. */
typedef void (*gh_stream_write_cb)(gh_stream_t *s, int status);
typedef void (*gh_stream_close_cb)(gh_stream_t *s);

struct gh_stream_s {
    uv_tcp_t tcp;
    gh_buf_pool_t *pool;
    gh_stream_read_cb on_read;
    gh_stream_write_cb on_write;
    gh_stream_close_cb on_close;
    void *owner;
    size_t write_pending;      /* bytes queued and not yet written */
    struct write_req_s *batch; /* writes gathered while corked */
    int corked;
    int reading;
    int closing; /* 1: shutting down after queued writes, 2: handle closing */
};

/* Initialises s on loop (uv_tcp_init). Returns 0 or a libuv error. */
int gh_stream_init(gh_stream_t *s, uv_loop_t *loop, gh_buf_pool_t *pool, void *owner);

int gh_stream_read_start(gh_stream_t *s);
void gh_stream_read_stop(gh_stream_t *s);

/* True when s is reading and bytes have arrived that on_read has not been
 * given yet: libuv runs timers before reads, so a timeout about to fire
 * after the loop was held up asks this first. */
bool gh_stream_input_waiting(gh_stream_t *s);
/* The same for a bare TCP handle (the admin listener's connections). */
bool gh_tcp_input_waiting(uv_tcp_t *tcp);

/* Queues pre (copied), then len bytes of data held by ref (referenced until
 * written; ref may be NULL when data is static), then post (copied). pre and
 * post are at most 32 bytes each. Returns 0 or a libuv error. */
int gh_stream_write(gh_stream_t *s, const char *pre, size_t pre_len, gh_buf_t *ref,
                    const char *data, size_t len, const char *post, size_t post_len);

/* While corked, writes are gathered and go out as one writev at uncork
 * (a response head and its body in one syscall). uncork returns 0 or a
 * libuv error. */
void gh_stream_cork(gh_stream_t *s);
int gh_stream_uncork(gh_stream_t *s);

/* Flushes queued writes, then closes; on_close runs when the handle is gone. */
void gh_stream_shutdown_close(gh_stream_t *s);

/* Closes now, dropping queued writes; on_close runs when the handle is gone. */
void gh_stream_close(gh_stream_t *s);

#endif
