/* Unit tests for claims.c: role paths, roles under those paths in
 * Keycloak-shaped and flat claims, client roles and scope words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "claims.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A Keycloak access token's claims: realm roles, client roles under
 * client ids that contain dots, and a space-separated scope. */
static const char *KEYCLOAK =
    "{\"sub\": \"u1\",\n"
    " \"realm_access\": {\"roles\": [\"offline_access\", \"uma_authorization\", \"ADMIN\"]},\n"
    " \"resource_access\": {\n"
    "   \"orders.api\": {\"roles\": [\"orders:read\", \"orders:write\"]},\n"
    "   \"orders\": {\"roles\": [\"legacy\"]},\n"
    "   \"account\": {\"roles\": [\"manage-account\", \"view-profile\"]}},\n"
    " \"scope\": \"openid profile email\"}";

static json_t *parse(const char *text, int line)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
    if (!j) fail_msg("line %d: bad test JSON: %s (line %d col %d)", line, e.text, e.line, e.column);
    return j;
}
#define PARSE(text) parse(text, __LINE__)

static bool has(const json_t *claims, const gh_role_paths_t *p, const char *role)
{
    return gh_claims_has_role(claims, p, role, strlen(role));
}

static bool client_has(const json_t *claims, const char *client, const char *role)
{
    return gh_claims_has_client_role(claims, client, strlen(client), role, strlen(role));
}

static bool scoped(const json_t *claims, const char *scope)
{
    return gh_claims_has_scope(claims, scope, strlen(scope));
}

/* Asserts path i of p is exactly the segments want (NULL-terminated). */
static void expect_path(const gh_role_paths_t *p, size_t i, const char *const *want, int line)
{
    size_t n = 0;
    while (want[n]) n++;
    if (i >= p->n) fail_msg("line %d: path %zu of %zu", line, i, p->n);
    if (p->v[i].nseg != n)
        fail_msg("line %d: path %zu has %zu segments, want %zu", line, i, p->v[i].nseg, n);
    for (size_t k = 0; k < n; k++)
        if (strcmp(p->v[i].seg[k], want[k]) != 0)
            fail_msg("line %d: path %zu segment %zu is \"%s\", want \"%s\"", line, i, k,
                     p->v[i].seg[k], want[k]);
}
#define EXPECT_PATH(p, i, ...) expect_path(p, i, (const char *const[]){__VA_ARGS__, NULL}, __LINE__)

/* ---- role paths ---- */

static void test_add_dotted_splits_on_dots(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_add_dotted(&p, "realm_access.roles"), 0);
    assert_int_equal(gh_role_paths_add_dotted(&p, "roles"), 0);
    assert_int_equal(gh_role_paths_add_dotted(&p, "resource_access.orders.api.roles"), 0);
    assert_int_equal(p.n, 3);
    EXPECT_PATH(&p, 0, "realm_access", "roles");
    EXPECT_PATH(&p, 1, "roles");
    EXPECT_PATH(&p, 2, "resource_access", "orders", "api", "roles");
    gh_role_paths_free(&p);
}

static void test_add_dotted_refuses_empty_segments(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_add_dotted(&p, "roles"), 0);
    const char *bad[] = {"", ".", "a..b", ".a", "a.", "..", "a.b."};
    for (size_t i = 0; i < NELEM(bad); i++) {
        if (gh_role_paths_add_dotted(&p, bad[i]) != -1) fail_msg("\"%s\" was accepted", bad[i]);
        /* a refused path leaves the list as it was */
        assert_int_equal(p.n, 1);
        EXPECT_PATH(&p, 0, "roles");
    }
    gh_role_paths_free(&p);
}

/* At most 32 segments in a dotted path. */
static void test_add_dotted_segment_limit(void **state)
{
    (void)state;
    char s[128] = "";
    for (int i = 0; i < 32; i++) strcat(s, i ? ".x" : "x");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_add_dotted(&p, s), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.v[0].nseg, 32);
    strcat(s, ".x");
    assert_int_equal(gh_role_paths_add_dotted(&p, s), -1);
    assert_int_equal(p.n, 1);
    gh_role_paths_free(&p);
}

static void test_add_segments_taken_whole(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    const char *seg[] = {"resource_access", "orders.api", "roles"};
    assert_int_equal(gh_role_paths_add(&p, seg, 3), 0);
    const char *one[] = {"a.b.c"};
    assert_int_equal(gh_role_paths_add(&p, one, 1), 0);
    assert_int_equal(p.n, 2);
    EXPECT_PATH(&p, 0, "resource_access", "orders.api", "roles");
    EXPECT_PATH(&p, 1, "a.b.c");
    /* the segments are copies, not the caller's pointers */
    assert_ptr_not_equal(p.v[0].seg[1], seg[1]);
    gh_role_paths_free(&p);
}

static void test_add_refuses_bad_segments(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    const char *ok[] = {"roles"};
    assert_int_equal(gh_role_paths_add(&p, ok, 1), 0);
    assert_int_equal(gh_role_paths_add(&p, ok, 0), -1);
    const char *empty_first[] = {"", "roles"};
    assert_int_equal(gh_role_paths_add(&p, empty_first, 2), -1);
    const char *empty_last[] = {"a", ""};
    assert_int_equal(gh_role_paths_add(&p, empty_last, 2), -1);
    const char *null_mid[] = {"a", NULL, "c"};
    assert_int_equal(gh_role_paths_add(&p, null_mid, 3), -1);
    assert_int_equal(p.n, 1);
    EXPECT_PATH(&p, 0, "roles");
    gh_role_paths_free(&p);
}

static void test_default_paths(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_int_equal(p.n, 2);
    EXPECT_PATH(&p, 0, "realm_access", "roles");
    EXPECT_PATH(&p, 1, "roles");
    gh_role_paths_free(&p);
}

/* Freeing empties the list, so a second free (or a free of a zeroed list)
 * is harmless and the list can be filled again. */
static void test_free_resets(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    gh_role_paths_free(&p);
    assert_int_equal(gh_role_paths_default(&p), 0);
    gh_role_paths_free(&p);
    assert_null(p.v);
    assert_int_equal(p.n, 0);
    gh_role_paths_free(&p);
    assert_int_equal(gh_role_paths_add_dotted(&p, "a.b"), 0);
    assert_int_equal(p.n, 1);
    gh_role_paths_free(&p);
}

/* ---- has_role ---- */

static void test_has_role_default_paths_keycloak(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(has(c, &p, "offline_access"));
    assert_true(has(c, &p, "uma_authorization"));
    assert_true(has(c, &p, "ADMIN"));
    assert_false(has(c, &p, "admin")); /* roles are case-sensitive */
    assert_false(has(c, &p, "ADM"));
    assert_false(has(c, &p, "ADMINS"));
    assert_false(has(c, &p, ""));
    /* client roles are not under the default paths */
    assert_false(has(c, &p, "orders:read"));
    assert_false(has(c, &p, "manage-account"));
    gh_role_paths_free(&p);
    json_decref(c);
}

static void test_has_role_client_path_segments(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);
    gh_role_paths_t p = {0};
    const char *seg[] = {"resource_access", "orders.api", "roles"};
    assert_int_equal(gh_role_paths_add(&p, seg, 3), 0);
    assert_true(has(c, &p, "orders:read"));
    assert_true(has(c, &p, "orders:write"));
    assert_false(has(c, &p, "legacy"));         /* resource_access.orders, another client */
    assert_false(has(c, &p, "ADMIN"));          /* realm roles: not on this path */
    assert_false(has(c, &p, "manage-account")); /* another client */
    gh_role_paths_free(&p);
    json_decref(c);
}

/* "resource_access.orders.api.roles" is four segments: the client key
 * "orders.api" is never looked up, so its roles are not found. */
static void test_has_role_dotted_client_not_found(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_add_dotted(&p, "resource_access.orders.api.roles"), 0);
    assert_false(has(c, &p, "orders:read"));
    assert_false(has(c, &p, "orders:write"));
    assert_false(has(c, &p, "legacy"));
    gh_role_paths_free(&p);
    json_decref(c);
}

/* Several paths: a role under any of them is found. */
static void test_has_role_any_path(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);
    gh_role_paths_t p = {0};
    const char *seg[] = {"resource_access", "account", "roles"};
    assert_int_equal(gh_role_paths_add_dotted(&p, "nowhere.roles"), 0);
    assert_int_equal(gh_role_paths_add_dotted(&p, "realm_access.roles"), 0);
    assert_int_equal(gh_role_paths_add(&p, seg, 3), 0);
    assert_true(has(c, &p, "ADMIN"));
    assert_true(has(c, &p, "view-profile"));
    assert_false(has(c, &p, "orders:read"));
    gh_role_paths_free(&p);
    json_decref(c);
}

static void test_has_role_flat_claim(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"sub\": \"u\", \"roles\": [\"reader\", \"writer\"]}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(has(c, &p, "reader"));
    assert_true(has(c, &p, "writer"));
    assert_false(has(c, &p, "read"));
    assert_false(has(c, &p, "admin"));
    gh_role_paths_free(&p);
    json_decref(c);
}

/* Both default paths at once: realm roles and flat roles are both found. */
static void test_has_role_realm_and_flat(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"realm_access\": {\"roles\": [\"r1\"]}, \"roles\": [\"f1\"]}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(has(c, &p, "r1"));
    assert_true(has(c, &p, "f1"));
    gh_role_paths_free(&p);
    json_decref(c);
}

static void test_has_role_single_string(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"roles\": \"admin\", \"realm_access\": {\"roles\": \"ops\"}}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(has(c, &p, "admin"));
    assert_true(has(c, &p, "ops"));
    assert_false(has(c, &p, "adm"));
    assert_false(has(c, &p, "admin ops"));
    gh_role_paths_free(&p);
    json_decref(c);
}

/* Non-string members of a roles array are skipped, the strings still count. */
static void test_has_role_non_strings_ignored(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"roles\": [1, null, true, {\"admin\": 1}, [\"admin\"], 2.5, \"ok\"]}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(has(c, &p, "ok"));
    assert_false(has(c, &p, "admin"));
    assert_false(has(c, &p, "1"));
    assert_false(has(c, &p, "true"));
    assert_false(has(c, &p, "null"));
    gh_role_paths_free(&p);
    json_decref(c);
}

/* Values that are neither a string nor an array hold no roles. */
static void test_has_role_other_values_hold_none(void **state)
{
    (void)state;
    const char *docs[] = {
        "{\"roles\": 1}",
        "{\"roles\": true}",
        "{\"roles\": null}",
        "{\"roles\": {\"admin\": true}}",
        "{\"roles\": {\"roles\": [\"admin\"]}}",
        "{\"roles\": []}",
    };
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    for (size_t i = 0; i < NELEM(docs); i++) {
        json_t *c = PARSE(docs[i]);
        if (has(c, &p, "admin")) fail_msg("%s holds admin", docs[i]);
        json_decref(c);
    }
    gh_role_paths_free(&p);
}

/* A path whose middle crosses a string, array or number finds nothing. */
static void test_has_role_path_crosses_non_object(void **state)
{
    (void)state;
    const char *docs[] = {
        "{\"realm_access\": \"admin\"}",
        "{\"realm_access\": [\"admin\"]}",
        "{\"realm_access\": [{\"roles\": [\"admin\"]}]}",
        "{\"realm_access\": 7}",
        "{\"realm_access\": null}",
        "{\"realm_access\": {}}",
        "{\"realm_access\": {\"Roles\": [\"admin\"]}}", /* keys are case-sensitive */
    };
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_add_dotted(&p, "realm_access.roles"), 0);
    for (size_t i = 0; i < NELEM(docs); i++) {
        json_t *c = PARSE(docs[i]);
        if (has(c, &p, "admin")) fail_msg("%s holds admin", docs[i]);
        json_decref(c);
    }
    /* a three-segment path that crosses an array in the middle */
    json_t *c = PARSE("{\"resource_access\": [{\"orders\": {\"roles\": [\"admin\"]}}]}");
    const char *seg[] = {"resource_access", "orders", "roles"};
    assert_int_equal(gh_role_paths_add(&p, seg, 3), 0);
    assert_false(has(c, &p, "admin"));
    json_decref(c);
    gh_role_paths_free(&p);
}

static void test_has_role_missing_and_null(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    json_t *c = PARSE("{\"sub\": \"u\"}");
    assert_false(has(c, &p, "admin"));
    json_decref(c);
    c = PARSE("{}");
    assert_false(has(c, &p, "admin"));
    json_decref(c);
    /* a root that is not an object */
    c = PARSE("[\"admin\"]");
    assert_false(has(c, &p, "admin"));
    json_decref(c);
    c = PARSE("\"admin\"");
    assert_false(has(c, &p, "admin"));
    json_decref(c);
    assert_false(has(NULL, &p, "admin"));
    gh_role_paths_free(&p);
    /* no paths at all: nothing is found */
    c = PARSE("{\"roles\": [\"admin\"]}");
    assert_false(has(c, &p, "admin"));
    assert_false(has(c, NULL, "admin"));
    json_decref(c);
}

/* The role is compared by length: a prefix, an extension, or a string
 * that only differs after an embedded NUL does not match. */
static void test_has_role_length_edges(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"roles\": [\"ADMIN\", \"ops\\u0000root\", \"\"]}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_true(gh_claims_has_role(c, &p, "ADMIN", 5));
    assert_false(gh_claims_has_role(c, &p, "ADMIN", 3));
    assert_false(gh_claims_has_role(c, &p, "ADMINX", 6));
    assert_true(gh_claims_has_role(c, &p, "ops\0root", 8));
    assert_false(gh_claims_has_role(c, &p, "ops", 3));
    assert_false(gh_claims_has_role(c, &p, "ops\0roo", 7));
    /* an empty role string in the claim matches an empty role, nothing else */
    assert_true(gh_claims_has_role(c, &p, "", 0));
    gh_role_paths_free(&p);
    json_decref(c);
}

/* ---- each_role ---- */

typedef struct {
    char seen[16][32];
    size_t n, stop_at; /* return true on the stop_at-th call (1-based; 0: never) */
} collect_t;

static bool collect(const char *role, size_t len, void *arg)
{
    collect_t *c = arg;
    assert_true(c->n < 16 && len < 32);
    memcpy(c->seen[c->n], role, len);
    c->seen[c->n][len] = '\0';
    c->n++;
    return c->stop_at && c->n == c->stop_at;
}

static void expect_seen(const collect_t *c, const char *const *want, int line)
{
    size_t n = 0;
    while (want[n]) n++;
    if (c->n != n) fail_msg("line %d: saw %zu roles, want %zu", line, c->n, n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->seen[i], want[i]) != 0)
            fail_msg("line %d: role %zu is \"%s\", want \"%s\"", line, i, c->seen[i], want[i]);
}
#define EXPECT_SEEN(c, ...) expect_seen(c, (const char *const[]){__VA_ARGS__, NULL}, __LINE__)

/* Paths in the order given, each array in its order, strings only. */
static void test_each_role_order(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"roles\": [\"f1\", 3, \"f2\"],\n"
                      " \"realm_access\": {\"roles\": [\"r1\", \"r2\"]},\n"
                      " \"resource_access\": {\"a.b\": {\"roles\": \"c1\"}}}");
    gh_role_paths_t p = {0};
    const char *seg[] = {"resource_access", "a.b", "roles"};
    assert_int_equal(gh_role_paths_add(&p, seg, 3), 0);
    assert_int_equal(gh_role_paths_add_dotted(&p, "missing"), 0);
    assert_int_equal(gh_role_paths_default(&p), 0);
    collect_t seen = {0};
    assert_false(gh_claims_each_role(c, &p, collect, &seen));
    EXPECT_SEEN(&seen, "c1", "r1", "r2", "f1", "f2");
    gh_role_paths_free(&p);
    json_decref(c);
}

/* The walk stops at the first call returning true, mid-array or at the
 * end of one path, and reports it. */
static void test_each_role_early_stop(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"realm_access\": {\"roles\": [\"r1\", \"r2\", \"r3\"]},\n"
                      " \"roles\": [\"f1\", \"f2\"]}");
    gh_role_paths_t p = {0};
    assert_int_equal(gh_role_paths_default(&p), 0);
    collect_t seen = {.stop_at = 2};
    assert_true(gh_claims_each_role(c, &p, collect, &seen));
    EXPECT_SEEN(&seen, "r1", "r2");
    seen = (collect_t){.stop_at = 3};
    assert_true(gh_claims_each_role(c, &p, collect, &seen));
    EXPECT_SEEN(&seen, "r1", "r2", "r3");
    seen = (collect_t){.stop_at = 4};
    assert_true(gh_claims_each_role(c, &p, collect, &seen));
    EXPECT_SEEN(&seen, "r1", "r2", "r3", "f1");
    seen = (collect_t){.stop_at = 1};
    assert_true(gh_claims_each_role(c, &p, collect, &seen));
    EXPECT_SEEN(&seen, "r1");
    gh_role_paths_free(&p);
    json_decref(c);
}

static void test_each_role_nothing(void **state)
{
    (void)state;
    gh_role_paths_t p = {0};
    collect_t seen = {.stop_at = 1};
    json_t *c = PARSE("{\"roles\": [\"f1\"]}");
    assert_false(gh_claims_each_role(c, &p, collect, &seen)); /* no paths */
    assert_false(gh_claims_each_role(c, NULL, collect, &seen));
    assert_int_equal(gh_role_paths_default(&p), 0);
    assert_false(gh_claims_each_role(NULL, &p, collect, &seen));
    assert_int_equal(seen.n, 0);
    json_decref(c);
    c = PARSE("{\"roles\": []}");
    assert_false(gh_claims_each_role(c, &p, collect, &seen));
    assert_int_equal(seen.n, 0);
    json_decref(c);
    gh_role_paths_free(&p);
}

/* ---- has_client_role ---- */

static void test_client_role_dotted_client_ids(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);
    assert_true(client_has(c, "orders.api", "orders:read"));
    assert_true(client_has(c, "orders.api", "orders:write"));
    assert_false(client_has(c, "orders.api", "legacy"));
    assert_true(client_has(c, "orders", "legacy"));
    assert_false(client_has(c, "orders", "orders:read"));
    assert_true(client_has(c, "account", "view-profile"));
    assert_false(client_has(c, "account", "orders:read"));
    assert_false(client_has(c, "orders.ap", "orders:read"));
    assert_false(client_has(c, "orders.api.x", "orders:read"));
    assert_false(client_has(c, "ORDERS.API", "orders:read"));
    assert_false(client_has(c, "nobody", "orders:read"));
    /* realm roles are not client roles */
    assert_false(client_has(c, "realm_access", "ADMIN"));
    json_decref(c);
}

/* client and role are taken by length, not to the first NUL. */
static void test_client_role_lengths(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"resource_access\": {\n"
                      "  \"orders\": {\"roles\": [\"ADMIN\", \"a\\u0000b\"]},\n"
                      "  \"orders.api\": {\"roles\": [\"ADM\"]}}}");
    /* role "ADM": does not match "ADMIN" */
    assert_false(gh_claims_has_client_role(c, "orders", 6, "ADM", 3));
    assert_false(gh_claims_has_client_role(c, "orders", 6, "ADMIN", 3));
    assert_true(gh_claims_has_client_role(c, "orders", 6, "ADMIN", 5));
    assert_false(gh_claims_has_client_role(c, "orders", 6, "ADMINS", 6));
    assert_true(gh_claims_has_client_role(c, "orders.api", 10, "ADM", 3));
    assert_false(gh_claims_has_client_role(c, "orders.api", 10, "ADMIN", 5));
    /* the first clen bytes of a longer string name the client */
    assert_true(gh_claims_has_client_role(c, "orders.api", 6, "ADMIN", 5));
    assert_true(gh_claims_has_client_role(c, "orders.apiXYZ", 10, "ADM", 3));
    /* an embedded NUL: in the client id (no such key) and in the role */
    assert_false(gh_claims_has_client_role(c, "orders\0api", 10, "ADM", 3));
    assert_false(gh_claims_has_client_role(c, "orders\0", 7, "ADMIN", 5));
    assert_true(gh_claims_has_client_role(c, "orders", 6, "a\0b", 3));
    assert_false(gh_claims_has_client_role(c, "orders", 6, "a", 1));
    assert_false(gh_claims_has_client_role(c, "orders", 6, "a\0c", 3));
    assert_false(gh_claims_has_client_role(c, "", 0, "ADMIN", 5));
    json_decref(c);
}

/* A client key holding an embedded NUL is found only with its full length. */
static void test_client_role_nul_in_client_key(void **state)
{
    (void)state;
    json_t *c = json_object(), *ra = json_object(), *cl = json_object();
    assert_int_equal(json_object_set_new(cl, "roles", json_pack("[s]", "r")), 0);
    assert_int_equal(json_object_setn_new(ra, "app\0x", 5, cl), 0);
    assert_int_equal(json_object_set_new(c, "resource_access", ra), 0);
    assert_true(gh_claims_has_client_role(c, "app\0x", 5, "r", 1));
    assert_false(gh_claims_has_client_role(c, "app", 3, "r", 1));
    assert_false(gh_claims_has_client_role(c, "app\0y", 5, "r", 1));
    json_decref(c);
}

static void test_client_role_shapes(void **state)
{
    (void)state;
    /* a single string roles value, non-strings ignored */
    json_t *c = PARSE("{\"resource_access\": {\"a\": {\"roles\": \"one\"},\n"
                      "  \"b\": {\"roles\": [1, {\"x\": 1}, \"two\"]},\n"
                      "  \"c\": {\"roles\": {\"three\": true}},\n"
                      "  \"d\": [\"four\"], \"e\": \"five\", \"f\": {}}}");
    assert_true(client_has(c, "a", "one"));
    assert_true(client_has(c, "b", "two"));
    assert_false(client_has(c, "b", "1"));
    assert_false(client_has(c, "c", "three"));
    assert_false(client_has(c, "d", "four"));
    assert_false(client_has(c, "e", "five"));
    assert_false(client_has(c, "f", "roles"));
    json_decref(c);
    /* resource_access missing or not an object, claims missing */
    const char *docs[] = {"{}", "{\"resource_access\": [{\"a\": {\"roles\": [\"one\"]}}]}",
                          "{\"resource_access\": \"a\"}", "{\"resource_access\": null}",
                          "[{\"resource_access\": {\"a\": {\"roles\": [\"one\"]}}}]"};
    for (size_t i = 0; i < NELEM(docs); i++) {
        c = PARSE(docs[i]);
        if (client_has(c, "a", "one")) fail_msg("%s: client a has one", docs[i]);
        json_decref(c);
    }
    assert_false(client_has(NULL, "a", "one"));
}

/* ---- has_scope ---- */

static void test_scope_words(void **state)
{
    (void)state;
    json_t *c = PARSE(KEYCLOAK);       /* "openid profile email" */
    assert_true(scoped(c, "openid"));  /* first */
    assert_true(scoped(c, "profile")); /* middle */
    assert_true(scoped(c, "email"));   /* last */
    assert_false(scoped(c, "open"));   /* a prefix of a word */
    assert_false(scoped(c, "pro"));
    assert_false(scoped(c, "emai"));
    assert_false(scoped(c, "mail")); /* a suffix */
    assert_false(scoped(c, "openidx"));
    assert_false(scoped(c, "emails"));
    assert_false(scoped(c, "OPENID"));
    assert_false(scoped(c, "offline_access"));
    json_decref(c);
}

static void test_scope_single_word(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"scope\": \"read\"}");
    assert_true(scoped(c, "read"));
    assert_false(scoped(c, "rea"));
    assert_false(scoped(c, "reads"));
    assert_true(gh_claims_has_scope(c, "reader", 4)); /* taken by length */
    assert_false(gh_claims_has_scope(c, "read", 3));
    json_decref(c);
}

/* Neither an empty scope nor one holding a space is a word. */
static void test_scope_empty_and_space(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"scope\": \"a b  c \"}");
    assert_true(scoped(c, "a"));
    assert_true(scoped(c, "b"));
    assert_true(scoped(c, "c"));
    assert_false(scoped(c, ""));
    assert_false(scoped(c, " "));
    assert_false(scoped(c, "a b"));
    assert_false(scoped(c, "b "));
    assert_false(scoped(c, " c"));
    json_decref(c);
    c = PARSE("{\"scope\": \"\"}");
    assert_false(scoped(c, ""));
    assert_false(scoped(c, "a"));
    json_decref(c);
    c = PARSE("{\"scope\": \" \"}");
    assert_false(scoped(c, ""));
    assert_false(scoped(c, " "));
    json_decref(c);
}

/* Only a string claim named "scope" counts. */
static void test_scope_claim_shapes(void **state)
{
    (void)state;
    const char *docs[] = {"{}",
                          "{\"scope\": [\"read\"]}",
                          "{\"scope\": {\"read\": true}}",
                          "{\"scope\": 1}",
                          "{\"scope\": null}",
                          "{\"scope\": true}",
                          "{\"scp\": \"read\"}",
                          "{\"scopes\": \"read\"}",
                          "{\"Scope\": \"read\"}",
                          "[\"read\"]"};
    for (size_t i = 0; i < NELEM(docs); i++) {
        json_t *c = PARSE(docs[i]);
        if (scoped(c, "read")) fail_msg("%s has scope read", docs[i]);
        json_decref(c);
    }
    assert_false(scoped(NULL, "read"));
}

/* Words are split on spaces only: a tab or an embedded NUL is part of a word. */
static void test_scope_other_separators(void **state)
{
    (void)state;
    json_t *c = PARSE("{\"scope\": \"a\\tb c\\u0000d e\"}");
    assert_false(scoped(c, "a"));
    assert_false(scoped(c, "b"));
    assert_true(scoped(c, "a\tb"));
    assert_false(scoped(c, "c"));
    assert_true(gh_claims_has_scope(c, "c\0d", 3));
    assert_true(scoped(c, "e"));
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_dotted_splits_on_dots),
        cmocka_unit_test(test_add_dotted_refuses_empty_segments),
        cmocka_unit_test(test_add_dotted_segment_limit),
        cmocka_unit_test(test_add_segments_taken_whole),
        cmocka_unit_test(test_add_refuses_bad_segments),
        cmocka_unit_test(test_default_paths),
        cmocka_unit_test(test_free_resets),
        cmocka_unit_test(test_has_role_default_paths_keycloak),
        cmocka_unit_test(test_has_role_client_path_segments),
        cmocka_unit_test(test_has_role_dotted_client_not_found),
        cmocka_unit_test(test_has_role_any_path),
        cmocka_unit_test(test_has_role_flat_claim),
        cmocka_unit_test(test_has_role_realm_and_flat),
        cmocka_unit_test(test_has_role_single_string),
        cmocka_unit_test(test_has_role_non_strings_ignored),
        cmocka_unit_test(test_has_role_other_values_hold_none),
        cmocka_unit_test(test_has_role_path_crosses_non_object),
        cmocka_unit_test(test_has_role_missing_and_null),
        cmocka_unit_test(test_has_role_length_edges),
        cmocka_unit_test(test_each_role_order),
        cmocka_unit_test(test_each_role_early_stop),
        cmocka_unit_test(test_each_role_nothing),
        cmocka_unit_test(test_client_role_dotted_client_ids),
        cmocka_unit_test(test_client_role_lengths),
        cmocka_unit_test(test_client_role_nul_in_client_key),
        cmocka_unit_test(test_client_role_shapes),
        cmocka_unit_test(test_scope_words),
        cmocka_unit_test(test_scope_single_word),
        cmocka_unit_test(test_scope_empty_and_space),
        cmocka_unit_test(test_scope_claim_shapes),
        cmocka_unit_test(test_scope_other_separators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
