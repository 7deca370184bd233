/* Header edits a policy makes to a message head: set or removed by name,
 * applied when the head is written out, read back through the same view.
 * The original head is never modified. */
#ifndef GH_HEDIT_H
#define GH_HEDIT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct gh_hedit_s {
    struct gh_hedit_s *next;
    const char *name;
    uint32_t name_len;
    const char *value; /* NULL: removed */
    uint32_t value_len;
} gh_hedit_t;

typedef struct gh_head_s gh_head_t;

/* The edit for name (case-insensitive), or NULL: at most one per name. */
const gh_hedit_t *gh_hedit_find(const gh_hedit_t *list, const char *name, size_t len);

/* Records name = value (value NULL removes it), replacing an earlier edit of
 * the same name. Copies both into the arena. Returns 0 or -1 (OOM). */
int gh_hedit_set(gh_arena_t *a, gh_hedit_t **list, const char *name, size_t len, const char *value,
                 size_t vlen);

/* The value name has once the edits apply: the edit's, else the head's
 * fields of that name joined with ", " (copied into the arena when there
 * are several). Returns 1 with *out set, 0 when absent, -1 on OOM. */
int gh_hedit_get(gh_arena_t *a, const gh_head_t *h, const gh_hedit_t *list, const char *name,
                 size_t len, const char **out, size_t *olen);

#endif
