/* Request-scoped memory: one owner, freed once, cleanups run in reverse. */
#ifndef GH_ARENA_H
#define GH_ARENA_H

#include <stddef.h>

typedef struct gh_arena_s gh_arena_t;
typedef void (*gh_cleanup_fn)(void *data);

/* A new arena whose first block holds at least first bytes; NULL on OOM. */
gh_arena_t *gh_arena_new(size_t first);

/* Memory aligned for any type, valid until gh_arena_free; NULL on OOM. */
void *gh_arena_alloc(gh_arena_t *a, size_t n);

/* A NUL-terminated copy of n bytes; NULL on OOM. */
char *gh_arena_strndup(gh_arena_t *a, const char *s, size_t n);

/* Registers fn(data) to run when the arena is freed. Returns 0 or -1 (OOM). */
int gh_arena_cleanup_add(gh_arena_t *a, gh_cleanup_fn fn, void *data);

/* Runs the cleanups (last registered first) and frees every block. */
void gh_arena_free(gh_arena_t *a);

#endif
