#include "hedit.h"

#include <string.h>

#include "headers.h"
#include "req.h"

static bool same_name(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

const gh_hedit_t *gh_hedit_find(const gh_hedit_t *list, const char *name, size_t len)
{
    for (const gh_hedit_t *e = list; e; e = e->next)
        if (same_name(e->name, e->name_len, name, len)) return e;
    return NULL;
}

int gh_hedit_set(gh_arena_t *a, gh_hedit_t **list, const char *name, size_t len, const char *value,
                 size_t vlen)
{
    gh_hedit_t *e = (gh_hedit_t *)gh_hedit_find(*list, name, len);
    if (!e) {
        e = gh_arena_alloc(a, sizeof(*e));
        char *n = gh_arena_strndup(a, name, len);
        if (!e || !n) return -1;
        *e = (gh_hedit_t){.next = *list, .name = n, .name_len = (uint32_t)len};
        *list = e;
    }
    e->value = value ? gh_arena_strndup(a, value, vlen) : NULL;
    e->value_len = value ? (uint32_t)vlen : 0;
    return value && !e->value ? -1 : 0;
}

int gh_hedit_get(gh_arena_t *a, const gh_head_t *h, const gh_hedit_t *list, const char *name,
                 size_t len, const char **out, size_t *olen)
{
    const gh_hedit_t *e = gh_hedit_find(list, name, len);
    if (e) {
        *out = e->value;
        *olen = e->value_len;
        return e->value ? 1 : 0;
    }
    size_t total = 0, count = 0;
    const gh_hdr_t *first = NULL;
    for (uint32_t i = 0; h && i < h->n; i++)
        if (same_name(gh_hdr_name(h, &h->hdrs[i]), h->hdrs[i].name_len, name, len)) {
            if (!first) first = &h->hdrs[i];
            total += h->hdrs[i].value_len + 2;
            count++;
        }
    if (count <= 1) {
        *out = first ? gh_hdr_value(h, first) : NULL;
        *olen = first ? first->value_len : 0;
        return first ? 1 : 0;
    }
    char *p = gh_arena_alloc(a, total);
    if (!p) return -1;
    size_t n = 0, fields = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (same_name(gh_hdr_name(h, &h->hdrs[i]), h->hdrs[i].name_len, name, len)) {
            if (fields++) memcpy(p + n, ", ", 2), n += 2;
            memcpy(p + n, gh_hdr_value(h, &h->hdrs[i]), h->hdrs[i].value_len);
            n += h->hdrs[i].value_len;
        }
    *out = p;
    *olen = n;
    return 1;
}
