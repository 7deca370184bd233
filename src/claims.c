#include "claims.h"

#include <stdlib.h>
#include <string.h>

int gh_role_paths_add(gh_role_paths_t *p, const char *const *seg, size_t nseg)
{
    if (nseg == 0) return -1;
    for (size_t i = 0; i < nseg; i++)
        if (!seg[i] || !seg[i][0]) return -1;
    gh_role_path_t *v = realloc(p->v, (p->n + 1) * sizeof(*v));
    if (!v) return -1;
    p->v = v;
    gh_role_path_t *rp = &v[p->n];
    rp->seg = calloc(nseg, sizeof(char *));
    if (!rp->seg) return -1;
    rp->nseg = nseg;
    p->n++;
    for (size_t i = 0; i < nseg; i++)
        if (!(rp->seg[i] = strdup(seg[i]))) return -1;
    return 0;
}

int gh_role_paths_add_dotted(gh_role_paths_t *p, const char *dotted)
{
    char *copy = strdup(dotted);
    const char *seg[32];
    size_t n = 0;
    int rc = copy ? 0 : -1;
    for (char *s = copy, *dot; !rc && s; s = dot ? dot + 1 : NULL) {
        dot = strchr(s, '.');
        if (dot) *dot = '\0';
        if (n == 32)
            rc = -1;
        else
            seg[n++] = s;
    }
    if (!rc) rc = gh_role_paths_add(p, seg, n);
    free(copy);
    return rc;
}

int gh_role_paths_default(gh_role_paths_t *p)
{
    return gh_role_paths_add_dotted(p, "realm_access.roles") || gh_role_paths_add_dotted(p, "roles")
               ? -1
               : 0;
}

void gh_role_paths_free(gh_role_paths_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        for (size_t k = 0; k < p->v[i].nseg; k++) free(p->v[i].seg[k]);
        free(p->v[i].seg);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

/* The value at the end of path, or NULL when a segment is missing or
 * crosses a non-object. */
static const json_t *walk(const json_t *root, const char *const *seg, size_t nseg)
{
    const json_t *v = root;
    for (size_t i = 0; v && i < nseg; i++)
        v = json_is_object(v) ? json_object_get(v, seg[i]) : NULL;
    return v;
}

/* Calls fn on the strings of v (an array of strings, or one string);
 * returns true as soon as fn does. Other values hold no roles. */
static bool each_string(const json_t *v, bool (*fn)(const char *, size_t, void *), void *arg)
{
    if (json_is_string(v)) return fn(json_string_value(v), json_string_length(v), arg);
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        const json_t *x = json_array_get(v, i);
        if (json_is_string(x) && fn(json_string_value(x), json_string_length(x), arg)) return true;
    }
    return false;
}

bool gh_claims_each_role(const json_t *claims, const gh_role_paths_t *p,
                         bool (*fn)(const char *role, size_t len, void *arg), void *arg)
{
    for (size_t i = 0; claims && p && i < p->n; i++) {
        const json_t *v = walk(claims, (const char *const *)p->v[i].seg, p->v[i].nseg);
        if (v && each_string(v, fn, arg)) return true;
    }
    return false;
}

typedef struct {
    const char *s;
    size_t len;
} needle_t;

static bool same(const char *role, size_t len, void *arg)
{
    const needle_t *n = arg;
    return len == n->len && memcmp(role, n->s, len) == 0;
}

bool gh_claims_has_role(const json_t *claims, const gh_role_paths_t *p, const char *role,
                        size_t len)
{
    needle_t n = {role, len};
    return gh_claims_each_role(claims, p, same, &n);
}

bool gh_claims_has_client_role(const json_t *claims, const char *client, size_t clen,
                               const char *role, size_t len)
{
    const json_t *ra = claims ? json_object_get(claims, "resource_access") : NULL;
    const json_t *c = json_is_object(ra) ? json_object_getn(ra, client, clen) : NULL;
    const json_t *roles = json_is_object(c) ? json_object_get(c, "roles") : NULL;
    needle_t n = {role, len};
    return roles && each_string(roles, same, &n);
}

bool gh_claims_has_scope(const json_t *claims, const char *scope, size_t len)
{
    const json_t *v = claims ? json_object_get(claims, "scope") : NULL;
    if (!json_is_string(v) || len == 0 || memchr(scope, ' ', len)) return false;
    const char *s = json_string_value(v), *end = s + json_string_length(v);
    while (s < end) {
        const char *w = memchr(s, ' ', (size_t)(end - s));
        size_t wl = (size_t)((w ? w : end) - s);
        if (wl == len && memcmp(s, scope, len) == 0) return true;
        s += wl + 1;
    }
    return false;
}
