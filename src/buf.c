#include "buf.h"

#include <stdlib.h>

struct gh_buf_pool_s {
    gh_buf_t *free;
    size_t nfree, max_free;
};

gh_buf_pool_t *gh_buf_pool_new(size_t max_free)
{
    gh_buf_pool_t *p = calloc(1, sizeof(*p));
    if (p) p->max_free = max_free;
    return p;
}

void gh_buf_pool_free(gh_buf_pool_t *p)
{
    if (!p) return;
    while (p->free) {
        gh_buf_t *b = p->free;
        p->free = b->next_free;
        free(b);
    }
    free(p);
}

gh_buf_t *gh_buf_new(size_t cap)
{
    gh_buf_t *b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->refs = 1;
    b->cap = cap;
    b->pool = NULL;
    b->next_free = NULL;
    return b;
}

gh_buf_t *gh_buf_get(gh_buf_pool_t *p)
{
    gh_buf_t *b = p->free;
    if (b) {
        p->free = b->next_free;
        p->nfree--;
        b->refs = 1;
        return b;
    }
    b = gh_buf_new(GH_BUF_SIZE);
    if (b) b->pool = p;
    return b;
}

void gh_buf_unref(gh_buf_t *b)
{
    if (--b->refs > 0) return;
    gh_buf_pool_t *p = b->pool;
    if (p && p->nfree < p->max_free) {
        b->next_free = p->free;
        p->free = b;
        p->nfree++;
        return;
    }
    free(b);
}
