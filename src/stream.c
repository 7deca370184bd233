#include "stream.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_write_t req;
    gh_stream_t *s;
    gh_buf_t *ref;
    size_t bytes;
    char pre[32], post[32];
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

static void write_cb(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    gh_stream_t *s = w->s;
    if (w->ref) gh_buf_unref(w->ref);
    s->write_pending -= w->bytes;
    free(w);
    if (s->on_write && !s->closing) s->on_write(s, status);
}

int gh_stream_write(gh_stream_t *s, const char *pre, size_t pre_len, gh_buf_t *ref,
                    const char *data, size_t len, const char *post, size_t post_len)
{
    if (s->closing) return UV_ECANCELED;
    write_req_t *w = malloc(sizeof(*w));
    if (!w) return UV_ENOMEM;
    uv_buf_t bufs[3];
    unsigned n = 0;
    if (pre_len) {
        memcpy(w->pre, pre, pre_len);
        bufs[n++] = uv_buf_init(w->pre, (unsigned)pre_len);
    }
    if (len) bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    if (post_len) {
        memcpy(w->post, post, post_len);
        bufs[n++] = uv_buf_init(w->post, (unsigned)post_len);
    }
    w->s = s;
    w->ref = ref;
    w->bytes = pre_len + len + post_len;
    if (ref) gh_buf_ref(ref);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, bufs, n, write_cb);
    if (rc) {
        if (ref) gh_buf_unref(ref);
        free(w);
        return rc;
    }
    s->write_pending += w->bytes;
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    gh_stream_t *s = h->data;
    if (s->on_close) s->on_close(s);
}

void gh_stream_close(gh_stream_t *s)
{
    if (s->closing == 2) return;
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
