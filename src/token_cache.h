/* A worker's cache of verified tokens: bounded, keyed on the whole token,
 * no entry outliving its token's exp. Single-threaded (one per worker). */
#ifndef GH_TOKEN_CACHE_H
#define GH_TOKEN_CACHE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gh_token_cache_s gh_token_cache_t;

/* A cache of at most max entries (max 0: a cache that keeps nothing). */
gh_token_cache_t *gh_token_cache_new(size_t max);
void gh_token_cache_free(gh_token_cache_t *c);

/* The claims verified earlier for this exact token by this issuer (a new
 * reference), or NULL when absent, when now has reached its exp, or when
 * it was verified under another key set than gen (the entry is dropped
 * then: a key removed from the issuer's set stops working at once). */
json_t *gh_token_cache_get(gh_token_cache_t *c, const void *issuer, uint64_t gen, const char *tok,
                           size_t len, double now);

/* Remembers claims (takes a new reference) until exp; evicts the least
 * recently used entry when full. Tokens without exp are not cached. */
void gh_token_cache_put(gh_token_cache_t *c, const void *issuer, uint64_t gen, const char *tok,
                        size_t len, json_t *claims, double exp);

size_t gh_token_cache_size(const gh_token_cache_t *c);

#endif
