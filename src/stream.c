#include "stream.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define WRITE_BUFS  16
#define WRITE_SMALL 256

/* One uv_write: up to WRITE_BUFS slices, small framing bytes copied inline,
 * and a reference on every buffer a slice points into. */
typedef struct write_req_s {
    uv_write_t req;
    gh_stream_t *s;
    size_t bytes;
    unsigned nbufs, nrefs, small_used;
    uv_buf_t bufs[WRITE_BUFS];
    gh_buf_t *refs[WRITE_BUFS];
    char small[WRITE_SMALL];
} write_req_t;

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    (void)hint;
    gh_stream_t *s = h->data;
    gh_buf_t *b = gh_buf_get(s->pool);
    /* Our buffer header sits just before data; read_cb finds it from base. */
    *out = b ? uv_buf_init(b->data, (unsigned)b->cap) : uv_buf_init(NULL, 0);
}

static void read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *ub)
{
    gh_stream_t *s = h->data;
    gh_buf_t *b = ub->base ? (gh_buf_t *)(ub->base - offsetof(gh_buf_t, data)) : NULL;
    if (nread > 0) {
        s->on_read(s, nread, b);
    } else if (nread < 0) {
        s->on_read(s, nread, NULL);
    }
    if (b) gh_buf_unref(b);
}

int gh_stream_init(gh_stream_t *s, uv_loop_t *loop, gh_buf_pool_t *pool, void *owner)
{
    memset(s, 0, sizeof(*s));
    s->pool = pool;
    s->owner = owner;
    s->tcp.data = s;
    return uv_tcp_init(loop, &s->tcp);
}

int gh_stream_read_start(gh_stream_t *s)
{
    if (s->reading || s->closing) return 0;
    int rc = uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
    if (rc == 0) s->reading = 1;
    return rc;
}

void gh_stream_read_stop(gh_stream_t *s)
{
    if (!s->reading) return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = 0;
}

bool gh_tcp_input_waiting(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    char byte;
    return uv_fileno((uv_handle_t *)tcp, &fd) == 0 &&
           recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

bool gh_stream_input_waiting(gh_stream_t *s)
{
    return s->reading && !s->closing && gh_tcp_input_waiting(&s->tcp);
}

static void write_cb(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    gh_stream_t *s = w->s;
    for (unsigned i = 0; i < w->nrefs; i++) gh_buf_unref(w->refs[i]);
    s->write_pending -= w->bytes;
    free(w);
    if (s->on_write && !s->closing) s->on_write(s, status);
}

static void drop(write_req_t *w)
{
    for (unsigned i = 0; i < w->nrefs; i++) gh_buf_unref(w->refs[i]);
    free(w);
}

/* Drops the first n written bytes from w's slices. */
static void advance(write_req_t *w, size_t n)
{
    unsigned i = 0;
    w->bytes -= n;
    while (n && n >= w->bufs[i].len) n -= w->bufs[i++].len;
    w->bufs[i].base += n;
    w->bufs[i].len -= (unsigned)n;
    memmove(w->bufs, w->bufs + i, (w->nbufs - i) * sizeof(uv_buf_t));
    w->nbufs -= i;
}

/* Writes what the socket takes now; queues the rest with libuv. With an
 * empty queue the common case finishes here, so read buffers go back to
 * the pool at once instead of after the loop iteration. Returns 0 or a
 * libuv error. */
static int submit(gh_stream_t *s, write_req_t *w)
{
    if (w->bytes == 0) {
        drop(w);
        return 0;
    }
    if (s->write_pending == 0) {
        int n = uv_try_write((uv_stream_t *)&s->tcp, w->bufs, w->nbufs);
        if (n > 0 && (size_t)n == w->bytes) {
            drop(w);
            return 0;
        }
        if (n > 0) advance(w, (size_t)n);
        /* other errors: let uv_write report them through write_cb */
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, w->bufs, w->nbufs, write_cb);
    if (rc) {
        drop(w);
        return rc;
    }
    s->write_pending += w->bytes;
    return 0;
}

static void add_small(write_req_t *w, const char *p, size_t n)
{
    if (!n) return;
    memcpy(w->small + w->small_used, p, n);
    w->bufs[w->nbufs++] = uv_buf_init(w->small + w->small_used, (unsigned)n);
    w->small_used += (unsigned)n;
    w->bytes += n;
}

int gh_stream_write(gh_stream_t *s, const char *pre, size_t pre_len, gh_buf_t *ref,
                    const char *data, size_t len, const char *post, size_t post_len)
{
    if (s->closing) return UV_ECANCELED;
    write_req_t *w = s->batch;
    if (w && (w->nbufs + 3 > WRITE_BUFS || w->small_used + pre_len + post_len > WRITE_SMALL)) {
        s->batch = NULL;
        int rc = submit(s, w);
        if (rc) return rc;
        w = NULL;
    }
    if (!w) {
        w = malloc(sizeof(*w));
        if (!w) return UV_ENOMEM;
        w->s = s;
        w->bytes = 0;
        w->nbufs = w->nrefs = w->small_used = 0;
    }
    add_small(w, pre, pre_len);
    if (len) {
        w->bufs[w->nbufs++] = uv_buf_init((char *)data, (unsigned)len);
        w->bytes += len;
        if (ref) {
            gh_buf_ref(ref);
            w->refs[w->nrefs++] = ref;
        }
    }
    add_small(w, post, post_len);
    if (s->corked) {
        s->batch = w;
        return 0;
    }
    return submit(s, w);
}

void gh_stream_cork(gh_stream_t *s)
{
    s->corked = 1;
}

int gh_stream_uncork(gh_stream_t *s)
{
    write_req_t *w = s->batch;
    s->corked = 0;
    s->batch = NULL;
    if (!w) return 0;
    if (s->closing) {
        drop(w);
        return UV_ECANCELED;
    }
    return submit(s, w);
}

static void close_cb(uv_handle_t *h)
{
    gh_stream_t *s = h->data;
    if (s->on_close) s->on_close(s);
}

void gh_stream_close(gh_stream_t *s)
{
    if (s->closing == 2) return;
    if (s->batch) {
        drop(s->batch);
        s->batch = NULL;
    }
    s->closing = 2;
    s->reading = 0;
    uv_close((uv_handle_t *)&s->tcp, close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    gh_stream_t *s = req->data;
    free(req);
    gh_stream_close(s);
}

void gh_stream_shutdown_close(gh_stream_t *s)
{
    if (s->closing) return;
    gh_stream_uncork(s);
    uv_shutdown_t *req = malloc(sizeof(*req));
    gh_stream_read_stop(s);
    if (!req || uv_shutdown(req, (uv_stream_t *)&s->tcp, shutdown_cb) != 0) {
        free(req);
        gh_stream_close(s);
        return;
    }
    req->data = s;
    s->closing = 1;
}
