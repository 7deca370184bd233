/* Unit tests for trace.c: parsing a W3C traceparent (level 1), choosing a
 * request's trace from its head, and the value sent upstream. */
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
#include "req.h"
#include "trace.h"
#include "worker.h"

#define LIMIT 65536

static const char VALID[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
static const char TRACE_ID[] = "4bf92f3577b34da6a3ce929d0e0e4736";

/* Parses s from a buffer of exactly its length (ASan sees any read past
 * it: the parser must not rely on a NUL). */
static gh_trace_status parse_n(const char *s, size_t len, gh_trace_t *out)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len);
    gh_trace_status st = gh_trace_parse(buf, len, out);
    free(buf);
    return st;
}

static gh_trace_status parse(const char *s, gh_trace_t *out)
{
    return parse_n(s, strlen(s), out);
}

static void expect_status(const char *s, gh_trace_status want)
{
    gh_trace_t t;
    memset(&t, 'x', sizeof(t));
    gh_trace_status st = parse(s, &t);
    if (st != want) fail_msg("\"%s\": status %d, want %d", s, st, want);
    if (st != GH_TRACE_OK && t.trace_id[0] != 'x') fail_msg("\"%s\" wrote a trace id", s);
}

static void test_valid_version_00(void **state)
{
    (void)state;
    gh_trace_t t;
    memset(&t, 0, sizeof(t));
    strcpy(t.span_id, "keep");
    assert_int_equal(parse(VALID, &t), GH_TRACE_OK);
    assert_string_equal(t.trace_id, TRACE_ID);
    assert_int_equal(t.flags, 1);
    assert_string_equal(t.span_id, "keep"); /* parse sets only the id and flags */
    assert_false(t.valid_in);

    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t),
                     GH_TRACE_OK);
    assert_int_equal(t.flags, 0);
    /* ids only need one non-zero digit */
    assert_int_equal(parse("00-00000000000000000000000000000001-0000000000000001-01", &t),
                     GH_TRACE_OK);
    assert_string_equal(t.trace_id, "00000000000000000000000000000001");
}

/* Level 1 defines only the sampled bit; vendors send the others as zero. */
static void test_unknown_flags_are_cleared(void **state)
{
    (void)state;
    static const struct {
        const char *flags;
        uint8_t want;
    } cases[] = {{"00", 0}, {"01", 1}, {"02", 0}, {"03", 1}, {"09", 1}, {"fe", 0}, {"ff", 1}};
    char s[sizeof(VALID)];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(s, VALID, sizeof(VALID));
        memcpy(s + 53, cases[i].flags, 2);
        gh_trace_t t;
        assert_int_equal(parse(s, &t), GH_TRACE_OK);
        if (t.flags != cases[i].want)
            fail_msg("flags %s gave %02x, want %02x", cases[i].flags, t.flags, cases[i].want);
    }
}

static void test_invalid_shapes(void **state)
{
    (void)state;
    expect_status("", GH_TRACE_MALFORMED);
    expect_status("00", GH_TRACE_MALFORMED);
    expect_status("00-", GH_TRACE_MALFORMED);
    expect_status("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    /* a field one digit short or long */
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", GH_TRACE_MALFORMED);
    /* version 00 is exactly 55 bytes: nothing may follow it */
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab", GH_TRACE_MALFORMED);
    /* uppercase hex, anywhere */
    expect_status("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", GH_TRACE_MALFORMED);
    /* other delimiters, surrounding spaces */
    expect_status("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", GH_TRACE_MALFORMED);
    expect_status(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", GH_TRACE_MALFORMED);
    /* ids all zeros; version ff */
    expect_status("00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                  GH_TRACE_ZERO_TRACE_ID);
    expect_status("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                  GH_TRACE_ZERO_PARENT_ID);
    expect_status("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_BAD_VERSION);
    expect_status("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                  GH_TRACE_BAD_VERSION);
}

/* Every single-byte change of a valid value: it stays valid exactly when
 * a hex digit became another lowercase hex digit (a version other than
 * 00 of 55 bytes parses as 00 does). */
static void test_every_byte_substituted(void **state)
{
    (void)state;
    char s[sizeof(VALID)];
    for (size_t pos = 0; pos < sizeof(VALID) - 1; pos++) {
        bool dash = pos == 2 || pos == 35 || pos == 52;
        for (int c = 0; c < 256; c++) {
            memcpy(s, VALID, sizeof(VALID));
            s[pos] = (char)c;
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            bool want = dash ? c == '-' : hex;
            gh_trace_t t;
            gh_trace_status st = parse_n(s, sizeof(VALID) - 1, &t);
            if ((st == GH_TRACE_OK) != want) fail_msg("byte %02x at %zu: status %d", c, pos, st);
        }
    }
}

static void test_every_truncation(void **state)
{
    (void)state;
    gh_trace_t t;
    for (size_t len = 0; len < sizeof(VALID) - 1; len++)
        if (parse_n(VALID, len, &t) != GH_TRACE_MALFORMED) fail_msg("length %zu parsed", len);
}

/* A higher version is read as far as version 00's layout goes, when the
 * end or a '-' follows it; what lies beyond is not looked at. */
static void test_future_version(void **state)
{
    (void)state;
    gh_trace_t t;
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t),
                     GH_TRACE_OK);
    assert_string_equal(t.trace_id, TRACE_ID);
    assert_int_equal(t.flags, 1);
    assert_int_equal(
        parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-the-future-holds", &t),
        GH_TRACE_OK);
    assert_string_equal(t.trace_id, TRACE_ID);
    assert_int_equal(t.flags, 0);
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", GH_TRACE_OK);
    expect_status("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\x01\xff", GH_TRACE_OK);
    /* the same rules for what it does read */
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.future",
                  GH_TRACE_MALFORMED);
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", GH_TRACE_MALFORMED);
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", GH_TRACE_MALFORMED);
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x-", GH_TRACE_MALFORMED);
    expect_status("cc-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
    expect_status("cc-00000000000000000000000000000000-00f067aa0ba902b7-01-x",
                  GH_TRACE_ZERO_TRACE_ID);
    expect_status("cc-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01-x",
                  GH_TRACE_ZERO_PARENT_ID);
    expect_status("Cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GH_TRACE_MALFORMED);
}

static void test_format_round_trips(void **state)
{
    (void)state;
    gh_trace_t t = {
        .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", .span_id = "a1b2c3d4e5f60718", .flags = 1};
    char out[GH_TRACEPARENT_LEN + 1];
    assert_int_equal(gh_trace_format(&t, out), GH_TRACEPARENT_LEN);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-a1b2c3d4e5f60718-01");
    gh_trace_t back;
    assert_int_equal(parse(out, &back), GH_TRACE_OK);
    assert_string_equal(back.trace_id, t.trace_id);
    assert_int_equal(back.flags, 1);
    t.flags = 0;
    gh_trace_format(&t, out);
    assert_string_equal(out + 52, "-00");
}

static bool is_hex_id(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

static void test_random_hex_lengths(void **state)
{
    (void)state;
    gh_worker_t w;
    memset(&w, 0, sizeof(w));
    w.rng[0] = 0x9e3779b97f4a7c15ull, w.rng[1] = 42;
    size_t lens[] = {0, 1, 15, 16, 17, 32, 40};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char buf[64];
        memset(buf, '#', sizeof(buf));
        gh_worker_random_hex(&w, buf, lens[i]);
        assert_int_equal(strlen(buf), lens[i]);
        assert_int_equal(buf[lens[i] + 1], '#');
        for (size_t k = 0; k < lens[i]; k++) assert_non_null(strchr("0123456789abcdef", buf[k]));
    }
    char a[33], b[33];
    gh_worker_request_id(&w, a);
    gh_worker_request_id(&w, b);
    assert_true(is_hex_id(a, 32) && is_hex_id(b, 32));
    assert_string_not_equal(a, b);
}

/* A request with a worker (for its generator) and a head being built. */
typedef struct {
    gh_worker_t w;
    gh_req_t r;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->w.rng[0] = 0x243f6a8885a308d3ull, f->w.rng[1] = 0x13198a2e03707344ull;
    f->r.w = &f->w;
    f->r.arena = gh_arena_new(1024);
    *state = f;
    return f->r.arena ? 0 : -1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    gh_arena_free(f->r.arena);
    free(f);
    return 0;
}

/* Appends "name: value" to the head as the HTTP parser does. */
static void add(fx_t *f, const char *name, const char *value)
{
    gh_head_t *h = &f->r.head;
    if (h->len == 0) assert_int_equal(gh_head_append(f->r.arena, h, "/", 1, LIMIT), 0);
    assert_int_equal(gh_head_new_field(f->r.arena, h, 100), 0);
    gh_hdr_t *x = &h->hdrs[h->n - 1];
    assert_int_equal(gh_head_append(f->r.arena, h, name, strlen(name), LIMIT), 0);
    x->name_len = (uint32_t)strlen(name);
    x->value = h->len;
    assert_int_equal(gh_head_append(f->r.arena, h, value, strlen(value), LIMIT), 0);
    x->value_len = (uint32_t)strlen(value);
}

/* A new trace: random ids, sampled off, tracestate not to be passed on. */
static void expect_new_trace(fx_t *f)
{
    const gh_trace_t *t = &f->r.trace;
    assert_true(is_hex_id(t->trace_id, 32));
    assert_string_not_equal(t->trace_id, TRACE_ID);
    assert_int_equal(t->flags, 0);
    assert_false(t->valid_in);
    assert_true(is_hex_id(t->span_id, 16));
}

static void test_start_keeps_a_valid_trace(void **state)
{
    fx_t *f = *state;
    add(f, "Host", "shop.example");
    add(f, "TraceParent", VALID);
    add(f, "tracestate", "congo=t61rcWkgMzE");
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_OK);
    const gh_trace_t *t = &f->r.trace;
    assert_string_equal(t->trace_id, TRACE_ID);
    assert_int_equal(t->flags, 1);
    assert_true(t->valid_in);
    assert_true(is_hex_id(t->span_id, 16));
    assert_string_not_equal(t->span_id, "00f067aa0ba902b7"); /* the gateway is a new hop */
}

/* Whitespace around a field value is not part of it (the parser keeps
 * what trails); inside it, it is. */
static void test_start_ignores_surrounding_whitespace(void **state)
{
    fx_t *f = *state;
    char v[sizeof(VALID) + 8];
    snprintf(v, sizeof(v), " \t%s\t ", VALID);
    add(f, "traceparent", v);
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_OK);
    assert_string_equal(f->r.trace.trace_id, TRACE_ID);
    f->r.head.hdrs[0].value_len = 4; /* " \t00" */
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_MALFORMED);
    f->r.head.hdrs[0].value_len = 2; /* only whitespace */
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_MALFORMED);
}

static void test_start_without_traceparent(void **state)
{
    fx_t *f = *state;
    add(f, "Host", "shop.example");
    add(f, "tracestate", "congo=t61rcWkgMzE");
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_ABSENT);
    expect_new_trace(f);
}

static void test_start_with_two_traceparents(void **state)
{
    fx_t *f = *state;
    add(f, "traceparent", VALID);
    add(f, "Host", "shop.example");
    add(f, "traceparent", VALID); /* even the same value twice */
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_REPEATED);
    expect_new_trace(f);
}

static void test_start_with_invalid_traceparent(void **state)
{
    fx_t *f = *state;
    add(f, "traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01");
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_MALFORMED);
    expect_new_trace(f);
    gh_trace_t first = f->r.trace;
    f->r.head.hdrs[0].value_len = 0; /* an empty value */
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_MALFORMED);
    expect_new_trace(f);
    assert_string_not_equal(f->r.trace.trace_id, first.trace_id);
    assert_string_not_equal(f->r.trace.span_id, first.span_id);
}

/* Even a generator stuck at zero never yields the all-zero ids the spec
 * forbids. */
static void test_start_never_makes_zero_ids(void **state)
{
    fx_t *f = *state;
    f->w.rng[0] = f->w.rng[1] = 0;
    assert_int_equal(gh_trace_start(&f->r), GH_TRACE_ABSENT);
    assert_string_equal(f->r.trace.trace_id, "00000000000000000000000000000001");
    assert_string_equal(f->r.trace.span_id, "0000000000000001");
    char out[GH_TRACEPARENT_LEN + 1];
    gh_trace_format(&f->r.trace, out);
    gh_trace_t back;
    assert_int_equal(parse(out, &back), GH_TRACE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_version_00),
        cmocka_unit_test(test_unknown_flags_are_cleared),
        cmocka_unit_test(test_invalid_shapes),
        cmocka_unit_test(test_every_byte_substituted),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_future_version),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_random_hex_lengths),
        cmocka_unit_test_setup_teardown(test_start_keeps_a_valid_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_ignores_surrounding_whitespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_without_traceparent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_with_two_traceparents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_with_invalid_traceparent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_never_makes_zero_ids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
