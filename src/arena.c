#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16

typedef struct block_s {
    struct block_s *next;
    size_t used, cap;
    _Alignas(ALIGN) unsigned char data[];
} block_t;

typedef struct cleanup_s {
    struct cleanup_s *next;
    gh_cleanup_fn fn;
    void *data;
} cleanup_t;

struct gh_arena_s {
    block_t *head;
    cleanup_t *cleanups;
};

static block_t *block_new(size_t cap)
{
    if (cap > SIZE_MAX / 2) return NULL; /* a size no request has: refuse, never wrap */
    block_t *b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->next = NULL;
    b->used = 0;
    b->cap = cap;
    return b;
}

gh_arena_t *gh_arena_new(size_t first)
{
    gh_arena_t *a = malloc(sizeof(*a));
    if (!a) return NULL;
    a->head = block_new(first < 256 ? 256 : first);
    a->cleanups = NULL;
    if (!a->head) {
        free(a);
        return NULL;
    }
    return a;
}

void *gh_arena_alloc(gh_arena_t *a, size_t n)
{
    if (n > SIZE_MAX / 2) return NULL;
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    block_t *b = a->head;
    if (b->cap - b->used < n) {
        /* Grow geometrically but never below the request. */
        size_t cap = b->cap * 2;
        if (cap < n) cap = n;
        block_t *nb = block_new(cap);
        if (!nb) return NULL;
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *gh_arena_strndup(gh_arena_t *a, const char *s, size_t n)
{
    if (n > SIZE_MAX / 2) return NULL;
    char *p = gh_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int gh_arena_cleanup_add(gh_arena_t *a, gh_cleanup_fn fn, void *data)
{
    cleanup_t *c = gh_arena_alloc(a, sizeof(*c));
    if (!c) return -1;
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

void gh_arena_free(gh_arena_t *a)
{
    if (!a) return;
    for (cleanup_t *c = a->cleanups; c; c = c->next) c->fn(c->data);
    block_t *b = a->head;
    while (b) {
        block_t *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}
