/* Unit tests for hedit.c: header edits by name and the head as read back
 * through them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "hedit.h"
#include "req.h"

#define LIMIT 65536

typedef struct {
    gh_arena_t *a;
    gh_head_t h;
    gh_hedit_t *edits;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->a = gh_arena_new(1024);
    *state = f;
    return f->a ? 0 : -1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    gh_arena_free(f->a);
    free(f);
    return 0;
}

/* Appends "name: value" to the head as the HTTP parser does: a new field,
 * its name bytes, then its value bytes. */
static void add(fx_t *f, const char *name, const char *value)
{
    gh_head_t *h = &f->h;
    assert_int_equal(gh_head_new_field(f->a, h, 100), 0);
    gh_hdr_t *x = &h->hdrs[h->n - 1];
    assert_int_equal(gh_head_append(f->a, h, name, strlen(name), LIMIT), 0);
    x->name_len = (uint32_t)strlen(name);
    x->value = h->len;
    assert_int_equal(gh_head_append(f->a, h, value, strlen(value), LIMIT), 0);
    x->value_len = (uint32_t)strlen(value);
}

/* A head a request might carry, with the URL first as the parser leaves it. */
static void sample_head(fx_t *f)
{
    assert_int_equal(gh_head_append(f->a, &f->h, "/api/orders", 11, LIMIT), 0);
    add(f, "Host", "shop.example");
    add(f, "Accept", "text/html");
    add(f, "X-Trace", "abc");
    add(f, "accept", "application/json");
    add(f, "Cookie", "a=1");
    add(f, "ACCEPT", "*/*");
    add(f, "X-Empty", "");
}

static void set(fx_t *f, const char *name, const char *value)
{
    assert_int_equal(
        gh_hedit_set(f->a, &f->edits, name, strlen(name), value, value ? strlen(value) : 0), 0);
}

/* Asserts name reads as want (NULL: absent) through the edits. */
static void expect_get(fx_t *f, const char *name, const char *want, int line)
{
    const char *out = (const char *)1;
    size_t olen = 12345;
    int rc = gh_hedit_get(f->a, &f->h, f->edits, name, strlen(name), &out, &olen);
    if (!want) {
        if (rc != 0) fail_msg("line %d: %s: rc %d, want absent", line, name, rc);
        return;
    }
    if (rc != 1) fail_msg("line %d: %s: rc %d, want \"%s\"", line, name, rc, want);
    if (olen != strlen(want) || memcmp(out, want, olen) != 0)
        fail_msg("line %d: %s is \"%.*s\", want \"%s\"", line, name, (int)olen, out, want);
}
#define EXPECT_GET(f, name, want) expect_get(f, name, want, __LINE__)

static size_t count(const gh_hedit_t *list)
{
    size_t n = 0;
    for (; list; list = list->next) n++;
    return n;
}

/* ---- reads with no edits ---- */

static void test_get_case_insensitive(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    EXPECT_GET(f, "Host", "shop.example");
    EXPECT_GET(f, "host", "shop.example");
    EXPECT_GET(f, "HOST", "shop.example");
    EXPECT_GET(f, "x-trace", "abc");
    EXPECT_GET(f, "X-TRACE", "abc");
    EXPECT_GET(f, "cookie", "a=1");
}

/* A single field reads as the head's own bytes; the name is compared by
 * length, so a prefix or an extension of a name is another header. */
static void test_get_single_field(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    const char *out = NULL;
    size_t olen = 0;
    assert_int_equal(gh_hedit_get(f->a, &f->h, NULL, "X-Trace", 7, &out, &olen), 1);
    assert_int_equal(olen, 3);
    assert_ptr_equal(out, gh_hdr_value(&f->h, &f->h.hdrs[2]));
    assert_int_equal(gh_hedit_get(f->a, &f->h, NULL, "X-TraceId", 7, &out, &olen), 1);
    assert_memory_equal(out, "abc", 3);
    EXPECT_GET(f, "X-Trac", NULL);
    EXPECT_GET(f, "X-Traces", NULL);
    EXPECT_GET(f, "Hos", NULL);
    EXPECT_GET(f, "Hostt", NULL);
}

/* Several fields of one name read as one value, in head order, ", "-joined. */
static void test_get_joins_fields(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    EXPECT_GET(f, "Accept", "text/html, application/json, */*");
    EXPECT_GET(f, "accept", "text/html, application/json, */*");
    /* joined into arena memory, not the head */
    const char *out = NULL;
    size_t olen = 0;
    assert_int_equal(gh_hedit_get(f->a, &f->h, NULL, "Accept", 6, &out, &olen), 1);
    assert_false(out >= f->h.data && out < f->h.data + f->h.len);
}

/* Empty values still count as fields: present, and joined as empty. */
static void test_get_empty_values(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    EXPECT_GET(f, "X-Empty", "");
    add(f, "X-Two", "a");
    add(f, "X-Two", "");
    add(f, "x-two", "b");
    add(f, "X-TWO", "");
    EXPECT_GET(f, "X-Two", "a, , b, ");
    add(f, "X-Lead", ""); /* an empty first field still gets its separator */
    add(f, "X-Lead", "v");
    EXPECT_GET(f, "X-Lead", ", v");
}

static void test_get_absent(void **state)
{
    fx_t *f = *state;
    const char *out = (const char *)1;
    size_t olen = 99;
    /* an empty head and no head at all */
    assert_int_equal(gh_hedit_get(f->a, &f->h, NULL, "Host", 4, &out, &olen), 0);
    assert_null(out);
    assert_int_equal(olen, 0);
    out = (const char *)1;
    assert_int_equal(gh_hedit_get(f->a, NULL, NULL, "Host", 4, &out, &olen), 0);
    assert_null(out);
    sample_head(f);
    EXPECT_GET(f, "Authorization", NULL);
    EXPECT_GET(f, "", NULL);
}

/* ---- set and find ---- */

static void test_set_then_find(void **state)
{
    fx_t *f = *state;
    assert_null(gh_hedit_find(NULL, "X-A", 3));
    set(f, "X-User", "alice");
    set(f, "X-Drop", NULL);
    const gh_hedit_t *e = gh_hedit_find(f->edits, "x-user", 6);
    assert_non_null(e);
    assert_int_equal(e->name_len, 6);
    assert_string_equal(e->name, "X-User"); /* a NUL-terminated copy */
    assert_int_equal(e->value_len, 5);
    assert_string_equal(e->value, "alice");
    e = gh_hedit_find(f->edits, "X-DROP", 6);
    assert_non_null(e);
    assert_null(e->value);
    assert_int_equal(e->value_len, 0);
    assert_null(gh_hedit_find(f->edits, "X-Use", 5));
    assert_null(gh_hedit_find(f->edits, "X-Users", 7));
    assert_null(gh_hedit_find(f->edits, "X-Other", 7));
    assert_int_equal(count(f->edits), 2);
}

/* set copies name and value: the caller's buffers may change afterwards. */
static void test_set_copies(void **state)
{
    fx_t *f = *state;
    char name[] = "X-Tenant-Id", value[] = "acme-corp";
    assert_int_equal(gh_hedit_set(f->a, &f->edits, name, 8, value, 4), 0);
    memset(name, 'z', sizeof(name) - 1);
    memset(value, 'z', sizeof(value) - 1);
    const gh_hedit_t *e = gh_hedit_find(f->edits, "x-tenant", 8);
    assert_non_null(e);
    assert_string_equal(e->name, "X-Tenant");
    assert_string_equal(e->value, "acme");
    assert_int_equal(e->value_len, 4);
}

/* One edit per name: setting again (in any case) replaces the value. */
static void test_set_twice_one_entry(void **state)
{
    fx_t *f = *state;
    set(f, "X-A", "1");
    set(f, "X-B", "b");
    set(f, "x-a", "2");
    set(f, "X-A", "three");
    assert_int_equal(count(f->edits), 2);
    const gh_hedit_t *e = gh_hedit_find(f->edits, "X-A", 3);
    assert_string_equal(e->value, "three");
    assert_int_equal(e->value_len, 5);
    assert_string_equal(gh_hedit_find(f->edits, "X-B", 3)->value, "b");
    EXPECT_GET(f, "x-a", "three");
}

/* ---- edits over a head ---- */

static void test_edit_overrides_head(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    set(f, "host", "internal.svc");
    set(f, "ACCEPT", "application/xml");
    set(f, "X-New", "fresh");
    EXPECT_GET(f, "Host", "internal.svc");
    EXPECT_GET(f, "Accept", "application/xml");
    EXPECT_GET(f, "x-new", "fresh");
    EXPECT_GET(f, "X-Trace", "abc"); /* untouched */
    /* the head itself is not modified */
    assert_int_equal(f->h.n, 7);
    assert_memory_equal(gh_hdr_value(&f->h, &f->h.hdrs[0]), "shop.example", 12);
    const gh_hdr_t *x = gh_head_find(&f->h, "host");
    assert_non_null(x);
    assert_int_equal(x->value_len, 12);
}

/* An edit to the empty string is present, unlike a removal. */
static void test_edit_to_empty(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    set(f, "Cookie", "");
    EXPECT_GET(f, "Cookie", "");
}

static void test_removal_reads_absent(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    set(f, "Cookie", NULL);
    set(f, "accept", NULL);    /* all three Accept fields */
    set(f, "X-Missing", NULL); /* removing what is not there */
    const char *out = (const char *)1;
    size_t olen = 99;
    assert_int_equal(gh_hedit_get(f->a, &f->h, f->edits, "cookie", 6, &out, &olen), 0);
    assert_null(out);
    assert_int_equal(olen, 0);
    EXPECT_GET(f, "Accept", NULL);
    EXPECT_GET(f, "X-Missing", NULL);
    EXPECT_GET(f, "Host", "shop.example");
    assert_int_equal(count(f->edits), 3);
}

static void test_set_after_removal(void **state)
{
    fx_t *f = *state;
    sample_head(f);
    set(f, "Accept", NULL);
    EXPECT_GET(f, "Accept", NULL);
    set(f, "ACCEPT", "text/plain");
    EXPECT_GET(f, "accept", "text/plain");
    assert_int_equal(count(f->edits), 1);
    /* and removed once more */
    set(f, "accept", NULL);
    EXPECT_GET(f, "Accept", NULL);
    assert_int_equal(count(f->edits), 1);
    assert_null(gh_hedit_find(f->edits, "Accept", 6)->value);
}

/* Edits read the same with no head at all (a response gh builds itself). */
static void test_edits_without_head(void **state)
{
    fx_t *f = *state;
    set(f, "X-A", "1");
    set(f, "X-B", NULL);
    const char *out = NULL;
    size_t olen = 0;
    assert_int_equal(gh_hedit_get(f->a, NULL, f->edits, "x-a", 3, &out, &olen), 1);
    assert_int_equal(olen, 1);
    assert_memory_equal(out, "1", 1);
    assert_int_equal(gh_hedit_get(f->a, NULL, f->edits, "X-B", 3, &out, &olen), 0);
    assert_int_equal(gh_hedit_get(f->a, NULL, f->edits, "X-C", 3, &out, &olen), 0);
}

/* Many fields and edits: every name still reads back right. */
static void test_many(void **state)
{
    fx_t *f = *state;
    char name[32], value[32], want[512] = "";
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "X-H%d", i % 20);
        snprintf(value, sizeof(value), "v%d", i);
        add(f, name, value);
    }
    for (int i = 0; i < 20; i += 2) {
        snprintf(name, sizeof(name), "x-h%d", i);
        snprintf(value, sizeof(value), "edited%d", i);
        set(f, name, i % 4 ? value : NULL);
    }
    assert_int_equal(count(f->edits), 10);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "X-H%d", i);
        if (i % 2 == 0) {
            snprintf(value, sizeof(value), "edited%d", i);
            expect_get(f, name, i % 4 ? value : NULL, __LINE__);
            continue;
        }
        snprintf(want, sizeof(want), "v%d, v%d, v%d", i, i + 20, i + 40);
        expect_get(f, name, want, __LINE__);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_case_insensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_single_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_joins_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_empty_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_then_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_twice_one_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_overrides_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_to_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_reads_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_after_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits_without_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
