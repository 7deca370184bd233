#include "token_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"

typedef struct entry_s {
    struct entry_s *next; /* bucket chain */
    gh_link_t lru;        /* most recently used first */
    uint64_t hash;
    const void *issuer;
    uint64_t gen; /* the key set that verified it */
    json_t *claims;
    double exp;
    size_t len;
    char tok[];
} entry_t;

struct gh_token_cache_s {
    entry_t **buckets;
    size_t nbuckets; /* a power of two, at least twice max */
    size_t n, max;
    gh_link_t lru;
};

/* FNV-1a, 64-bit: only tokens that verified get in, so the keys are not
 * an attacker's to choose for collisions. */
static uint64_t hash(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

gh_token_cache_t *gh_token_cache_new(size_t max)
{
    gh_token_cache_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->max = max;
    c->nbuckets = 16;
    while (c->nbuckets < 2 * max) c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof(entry_t *));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    gh_list_init(&c->lru);
    return c;
}

/* Unlinks e from its bucket and the LRU list and frees it. */
static void drop(gh_token_cache_t *c, entry_t *e)
{
    entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    gh_list_remove(&e->lru);
    json_decref(e->claims);
    free(e);
    c->n--;
}

void gh_token_cache_free(gh_token_cache_t *c)
{
    if (!c) return;
    while (!gh_list_empty(&c->lru)) drop(c, gh_container_of(c->lru.next, entry_t, lru));
    free(c->buckets);
    free(c);
}

static entry_t *find(gh_token_cache_t *c, uint64_t h, const void *issuer, const char *tok,
                     size_t len)
{
    for (entry_t *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && e->issuer == issuer && memcmp(e->tok, tok, len) == 0)
            return e;
    return NULL;
}

json_t *gh_token_cache_get(gh_token_cache_t *c, const void *issuer, uint64_t gen, const char *tok,
                           size_t len, double now)
{
    if (c->n == 0) return NULL;
    entry_t *e = find(c, hash(tok, len), issuer, tok, len);
    if (!e) return NULL;
    if (now >= e->exp || e->gen != gen) {
        drop(c, e);
        return NULL;
    }
    gh_list_remove(&e->lru);
    gh_list_push(&c->lru, &e->lru);
    return json_incref(e->claims);
}

void gh_token_cache_put(gh_token_cache_t *c, const void *issuer, uint64_t gen, const char *tok,
                        size_t len, json_t *claims, double exp)
{
    if (c->max == 0 || exp <= 0) return;
    uint64_t h = hash(tok, len);
    entry_t *e = find(c, h, issuer, tok, len);
    if (e) drop(c, e);
    if (c->n >= c->max) drop(c, gh_container_of(c->lru.prev, entry_t, lru));
    e = malloc(sizeof(*e) + len);
    if (!e) return;
    memcpy(e->tok, tok, len);
    e->len = len;
    e->hash = h;
    e->issuer = issuer;
    e->gen = gen;
    e->claims = json_incref(claims);
    e->exp = exp;
    entry_t **b = &c->buckets[h & (c->nbuckets - 1)];
    e->next = *b;
    *b = e;
    gh_list_push(&c->lru, &e->lru);
    c->n++;
}

size_t gh_token_cache_size(const gh_token_cache_t *c)
{
    return c->n;
}
