/* Reading roles and scopes out of verified claims: pure, no I/O. Role
 * paths say where an issuer keeps roles (Keycloak: realm_access.roles,
 * resource_access.<client>.roles; others: a flat roles claim). */
#ifndef GH_CLAIMS_H
#define GH_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* One path: object keys from the claims' root to an array of strings (or a
 * single string). Segments are taken whole, so a key may contain dots. */
typedef struct {
    char **seg;
    size_t nseg;
} gh_role_path_t;

typedef struct {
    gh_role_path_t *v;
    size_t n;
} gh_role_paths_t;

/* Appends a path given as "a.b.c" (split on dots). Returns 0, or -1 for an
 * empty path or segment, or OOM. */
int gh_role_paths_add_dotted(gh_role_paths_t *p, const char *dotted);

/* Appends a path given segment by segment. Returns 0, or -1 for no
 * segments, an empty one, or OOM. */
int gh_role_paths_add(gh_role_paths_t *p, const char *const *seg, size_t nseg);

/* The default: realm_access.roles, then a flat roles claim. */
int gh_role_paths_default(gh_role_paths_t *p);

void gh_role_paths_free(gh_role_paths_t *p);

/* Calls fn(role, len, arg) for each role string under each path, in order,
 * until fn returns true. Returns true when one did. */
bool gh_claims_each_role(const json_t *claims, const gh_role_paths_t *p,
                         bool (*fn)(const char *role, size_t len, void *arg), void *arg);

/* True when role (len bytes) is one of the roles under the paths. */
bool gh_claims_has_role(const json_t *claims, const gh_role_paths_t *p, const char *role,
                        size_t len);

/* True when resource_access[client].roles holds role (client taken whole). */
bool gh_claims_has_client_role(const json_t *claims, const char *client, size_t clen,
                               const char *role, size_t len);

/* True when scope (len bytes, no space) is one of the space-separated
 * words of the string claim "scope". */
bool gh_claims_has_scope(const json_t *claims, const char *scope, size_t len);

#endif
