/* Reference-counted I/O buffers: a read buffer lives while any slice of it
 * is still queued for writing on the other side of the proxy. */
#ifndef GH_BUF_H
#define GH_BUF_H

#include <stddef.h>

#define GH_BUF_SIZE (64 * 1024)

typedef struct gh_buf_pool_s gh_buf_pool_t;

typedef struct gh_buf_s {
    int refs;
    size_t cap;
    gh_buf_pool_t *pool; /* NULL: a one-off buffer, freed when unreferenced */
    struct gh_buf_s *next_free;
    char data[];
} gh_buf_t;

/* A per-worker pool of GH_BUF_SIZE buffers keeping at most max_free idle. */
gh_buf_pool_t *gh_buf_pool_new(size_t max_free);
void gh_buf_pool_free(gh_buf_pool_t *p);

/* A pooled buffer with one reference, or NULL on OOM. */
gh_buf_t *gh_buf_get(gh_buf_pool_t *p);

/* A one-off buffer of cap bytes with one reference, or NULL on OOM. */
gh_buf_t *gh_buf_new(size_t cap);

static inline void gh_buf_ref(gh_buf_t *b)
{
    b->refs++;
}

/* Drops a reference; the last one returns the buffer to its pool. */
void gh_buf_unref(gh_buf_t *b);

#endif
