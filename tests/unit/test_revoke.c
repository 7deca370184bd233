/* Unit tests for revoke.c's process-wide deny-list, without Redis: jti
 * entries until the token's exp, per-subject "not before" times, limits on
 * ids, the "unknown list" answer when Redis is configured but never
 * synced, and readers checking while a writer adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "revoke.h"

static json_t *claims(const char *text, int line)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("line %d: bad test JSON: %s", line, e.text);
    return j;
}

/* Asserts the status of the claims (JSON text) at time now. */
static void expect(const char *text, double now, gh_revoke_status want, int line)
{
    json_t *j = claims(text, line);
    gh_revoke_status got = gh_revoke_check(j, now);
    json_decref(j);
    if (got != want) fail_msg("line %d: %s at %.1f: got %d, want %d", line, text, now, got, want);
}
#define EXPECT(text, now, want) expect(text, now, want, __LINE__)

static int add(gh_revoke_kind kind, const char *id, int64_t t)
{
    return gh_revoke_add(kind, id, strlen(id), t);
}

/* The settings a config with no redis and no revocation table gets. */
static gh_config_t cfg;

static void configure(bool redis, bool deny)
{
    static gh_redis_conf_t dummy; /* never connected to: only its presence counts */
    memset(&cfg, 0, sizeof(cfg));
    cfg.redis = redis ? &dummy : NULL;
    cfg.revocation = (gh_revocation_conf_t){
        .deny_on_error = deny, .max_stale = 30, .subject_ttl = 86400, .poll = 1};
    gh_revoke_configure(&cfg);
}

static int setup(void **state)
{
    (void)state;
    configure(false, true);
    gh_revoke_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_revoke_reset();
    configure(false, true);
    return 0;
}

static void test_empty_list(void **state)
{
    (void)state;
    assert_int_equal(gh_revoke_count(), 0);
    EXPECT("{\"jti\": \"a\", \"sub\": \"u\", \"iat\": 1}", 100, GH_REVOKE_OK);
    EXPECT("{}", 100, GH_REVOKE_OK);
}

/* A listed jti is refused until its exp, not after. */
static void test_jti(void **state)
{
    (void)state;
    assert_int_equal(add(GH_REVOKE_JTI, "tok-1", 1000), 0);
    assert_int_equal(gh_revoke_count(), 1);
    EXPECT("{\"jti\": \"tok-1\", \"exp\": 1000}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"tok-1\", \"exp\": 1000}", 999.5, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"tok-1\", \"exp\": 1000}", 1000, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"tok-1\", \"exp\": 1000}", 5000, GH_REVOKE_OK);
    /* the token's own exp does not matter, the entry's does */
    EXPECT("{\"jti\": \"tok-1\"}", 10, GH_REVOKE_REVOKED);

    /* other ids, near misses, and a jti that is not a string */
    EXPECT("{\"jti\": \"tok-2\", \"exp\": 1000}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"tok-\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"tok-11\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"TOK-1\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": 1}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": [\"tok-1\"]}", 10, GH_REVOKE_OK);
    /* a jti's entry is not a subject's */
    EXPECT("{\"sub\": \"tok-1\", \"iat\": 1}", 10, GH_REVOKE_OK);

    /* revoking again with a later exp extends it; an earlier one does not shorten it */
    assert_int_equal(add(GH_REVOKE_JTI, "tok-1", 2000), 0);
    assert_int_equal(add(GH_REVOKE_JTI, "tok-1", 1500), 0);
    assert_int_equal(gh_revoke_count(), 1);
    EXPECT("{\"jti\": \"tok-1\"}", 1999, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"tok-1\"}", 2000, GH_REVOKE_OK);
}

/* Ids are bytes: a NUL inside is part of the id. */
static void test_jti_binary(void **state)
{
    (void)state;
    assert_int_equal(gh_revoke_add(GH_REVOKE_JTI, "a\0b", 3, 1000), 0);
    EXPECT("{\"jti\": \"a\\u0000b\"}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"a\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"a\\u0000c\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"\\u00e9t\\u00e9\"}", 10, GH_REVOKE_OK);
    assert_int_equal(add(GH_REVOKE_JTI, "\xc3\xa9t\xc3\xa9", 1000), 0);
    EXPECT("{\"jti\": \"\\u00e9t\\u00e9\"}", 10, GH_REVOKE_REVOKED);
}

/* Sign-out-everywhere: tokens of sub issued before T are refused. */
static void test_sub(void **state)
{
    (void)state;
    assert_int_equal(add(GH_REVOKE_SUB, "user-7", 500), 0);
    assert_int_equal(gh_revoke_count(), 1);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 499}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 499.9}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 0}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": -5}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 500}", 600, GH_REVOKE_OK);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 500.0}", 600, GH_REVOKE_OK);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 501}", 600, GH_REVOKE_OK);
    /* a token that does not say when it was issued cannot prove it came after */
    EXPECT("{\"sub\": \"user-7\"}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": \"9999\"}", 600, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": null}", 600, GH_REVOKE_REVOKED);
    /* other subjects; a sub that is not a string */
    EXPECT("{\"sub\": \"user-8\", \"iat\": 1}", 600, GH_REVOKE_OK);
    EXPECT("{\"sub\": \"user-8\"}", 600, GH_REVOKE_OK);
    EXPECT("{\"sub\": 7, \"iat\": 1}", 600, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"user-7\", \"iat\": 1}", 600, GH_REVOKE_OK);

    /* the entry lasts subject_ttl (86400 s) after T */
    EXPECT("{\"sub\": \"user-7\", \"iat\": 1}", 500 + 86399, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 1}", 500 + 86400, GH_REVOKE_OK);

    /* a later sign-out moves T forward; an earlier one does not move it back */
    assert_int_equal(add(GH_REVOKE_SUB, "user-7", 400), 0);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 450}", 600, GH_REVOKE_REVOKED);
    assert_int_equal(add(GH_REVOKE_SUB, "user-7", 700), 0);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 650}", 800, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 700}", 800, GH_REVOKE_OK);
    EXPECT("{\"sub\": \"user-7\", \"iat\": 1}", 700 + 86399, GH_REVOKE_REVOKED);
    assert_int_equal(gh_revoke_count(), 1);
}

/* subject_ttl comes from the config. */
static void test_subject_ttl(void **state)
{
    (void)state;
    cfg.revocation.subject_ttl = 60;
    gh_revoke_configure(&cfg);
    assert_int_equal(add(GH_REVOKE_SUB, "short", 1000), 0);
    EXPECT("{\"sub\": \"short\", \"iat\": 1}", 1059, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"short\", \"iat\": 1}", 1060, GH_REVOKE_OK);
}

/* A token whose jti is fine but whose subject signed out, and the reverse. */
static void test_jti_and_sub(void **state)
{
    (void)state;
    assert_int_equal(add(GH_REVOKE_JTI, "j1", 1000), 0);
    assert_int_equal(add(GH_REVOKE_SUB, "s1", 500), 0);
    assert_int_equal(gh_revoke_count(), 2);
    EXPECT("{\"jti\": \"j1\", \"sub\": \"s2\", \"iat\": 600}", 700, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"j2\", \"sub\": \"s1\", \"iat\": 400}", 700, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"j2\", \"sub\": \"s1\", \"iat\": 600}", 700, GH_REVOKE_OK);
    EXPECT("{\"jti\": \"j1\", \"sub\": \"s1\", \"iat\": 600}", 700, GH_REVOKE_REVOKED);
}

static void test_id_limits(void **state)
{
    (void)state;
    char id[1100];
    memset(id, 'x', sizeof(id));
    assert_int_equal(gh_revoke_add(GH_REVOKE_JTI, "", 0, 1000), -1);
    assert_int_equal(gh_revoke_add(GH_REVOKE_SUB, "", 0, 1000), -1);
    assert_int_equal(gh_revoke_add(GH_REVOKE_JTI, id, 1025, 1000), -1);
    assert_int_equal(gh_revoke_add(GH_REVOKE_SUB, id, 1025, 1000), -1);
    assert_int_equal(gh_revoke_count(), 0);
    assert_int_equal(gh_revoke_add(GH_REVOKE_JTI, id, 1024, 1000), 0);
    assert_int_equal(gh_revoke_add(GH_REVOKE_SUB, id, 1, 1000), 0);
    assert_int_equal(gh_revoke_count(), 2);
    id[1024] = '\0';
    json_t *j = json_pack("{s:s}", "jti", id);
    assert_int_equal(gh_revoke_check(j, 10), GH_REVOKE_REVOKED);
    json_decref(j);
    EXPECT("{\"sub\": \"x\", \"iat\": 1}", 10, GH_REVOKE_REVOKED);
}

static void test_reset_and_count(void **state)
{
    (void)state;
    char id[32];
    for (int i = 0; i < 5000; i++) { /* enough to grow the table a few times */
        snprintf(id, sizeof(id), "jti-%d", i);
        assert_int_equal(add(GH_REVOKE_JTI, id, 1000 + i), 0);
        snprintf(id, sizeof(id), "sub-%d", i);
        assert_int_equal(add(GH_REVOKE_SUB, id, 1000), 0);
    }
    assert_int_equal(gh_revoke_count(), 10000);
    assert_int_equal(add(GH_REVOKE_JTI, "jti-7", 1), 0); /* already there */
    assert_int_equal(gh_revoke_count(), 10000);
    for (int i = 0; i < 5000; i += 97) {
        char text[96];
        snprintf(text, sizeof(text), "{\"jti\": \"jti-%d\"}", i);
        EXPECT(text, 999 + i, GH_REVOKE_REVOKED);
        EXPECT(text, 1000 + i, GH_REVOKE_OK);
        snprintf(text, sizeof(text), "{\"sub\": \"sub-%d\", \"iat\": 999}", i);
        EXPECT(text, 2000, GH_REVOKE_REVOKED);
    }
    EXPECT("{\"jti\": \"jti-5000\"}", 10, GH_REVOKE_OK);

    gh_revoke_reset();
    assert_int_equal(gh_revoke_count(), 0);
    EXPECT("{\"jti\": \"jti-1\"}", 10, GH_REVOKE_OK);
    EXPECT("{\"sub\": \"sub-1\", \"iat\": 1}", 10, GH_REVOKE_OK);
    /* usable again after a reset */
    assert_int_equal(add(GH_REVOKE_JTI, "jti-1", 1000), 0);
    assert_int_equal(gh_revoke_count(), 1);
    EXPECT("{\"jti\": \"jti-1\"}", 10, GH_REVOKE_REVOKED);
    gh_revoke_reset();
    gh_revoke_reset(); /* twice is fine */
    assert_int_equal(gh_revoke_count(), 0);
}

/* Redis configured but never synced: with on_error = "deny" the list is
 * unknown, whatever the token; with "allow" the local list answers. */
static void test_unknown_before_sync(void **state)
{
    (void)state;
    assert_int_equal(add(GH_REVOKE_JTI, "gone", 1000), 0);
    configure(true, true);
    EXPECT("{\"jti\": \"fine\", \"sub\": \"u\", \"iat\": 1}", 10, GH_REVOKE_UNKNOWN);
    EXPECT("{\"jti\": \"gone\"}", 10, GH_REVOKE_UNKNOWN);
    EXPECT("{}", 10, GH_REVOKE_UNKNOWN);
    gh_revoke_reset();
    EXPECT("{}", 10, GH_REVOKE_UNKNOWN); /* an empty list is still an unknown one */

    configure(true, false);
    assert_int_equal(add(GH_REVOKE_JTI, "gone", 1000), 0);
    EXPECT("{\"jti\": \"gone\"}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"fine\", \"sub\": \"u\", \"iat\": 1}", 10, GH_REVOKE_OK);

    /* no redis: the local list is the whole truth, whatever on_error says */
    configure(false, true);
    EXPECT("{\"jti\": \"gone\"}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"fine\"}", 10, GH_REVOKE_OK);
}

/* ------------------------------------------------------- threads */

enum { NIDS = 2000, READERS = 4 };

static atomic_bool writing_done;
static atomic_int reader_errors;

/* Checks every id over and over: once revoked, an id stays revoked; an id
 * never added is never revoked. */
static void *reader(void *arg)
{
    (void)arg;
    static _Thread_local bool seen[NIDS];
    memset(seen, 0, sizeof(seen));
    json_t *j = json_object();
    json_t *never = json_pack("{s:s, s:s, s:i}", "jti", "never", "sub", "never", "iat", 1);
    char id[32];
    bool last_pass = false;
    while (!last_pass) {
        last_pass = atomic_load(&writing_done);
        for (int i = 0; i < NIDS; i++) {
            snprintf(id, sizeof(id), "t-%d", i);
            json_object_set_new(j, "jti", json_string(id));
            gh_revoke_status st = gh_revoke_check(j, 10);
            if (st == GH_REVOKE_REVOKED)
                seen[i] = true;
            else if (st != GH_REVOKE_OK || seen[i] || last_pass)
                atomic_fetch_add(&reader_errors, 1); /* went back, or missing at the end */
        }
        if (gh_revoke_check(never, 10) != GH_REVOKE_OK) atomic_fetch_add(&reader_errors, 1);
    }
    json_decref(j);
    json_decref(never);
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    char id[32];
    for (int i = 0; i < NIDS; i++) {
        snprintf(id, sizeof(id), "t-%d", i);
        if (add(GH_REVOKE_JTI, id, 1000) != 0) atomic_fetch_add(&reader_errors, 1);
        snprintf(id, sizeof(id), "s-%d", i);
        if (add(GH_REVOKE_SUB, id, 500) != 0) atomic_fetch_add(&reader_errors, 1);
    }
    return NULL;
}

static void test_readers_while_writing(void **state)
{
    (void)state;
    pthread_t r[READERS], w, w2;
    atomic_store(&writing_done, false);
    atomic_store(&reader_errors, 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&r[i], NULL, reader, NULL), 0);
    assert_int_equal(pthread_create(&w, NULL, writer, NULL), 0);
    assert_int_equal(pthread_create(&w2, NULL, writer, NULL), 0); /* the same ids again */
    pthread_join(w, NULL);
    pthread_join(w2, NULL);
    atomic_store(&writing_done, true);
    for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
    assert_int_equal(atomic_load(&reader_errors), 0);
    assert_int_equal(gh_revoke_count(), 2 * NIDS);
    EXPECT("{\"jti\": \"t-0\"}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"jti\": \"t-1999\"}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"s-1000\", \"iat\": 499}", 10, GH_REVOKE_REVOKED);
    EXPECT("{\"sub\": \"s-1000\", \"iat\": 500}", 10, GH_REVOKE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subject_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_and_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_before_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_while_writing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
