/* Unit tests for path.c: request-path normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

/* Normalises in[0..len) into a buffer of exactly len + 1 bytes, so ASan
 * catches any write past the documented bound. Returns the status; *out
 * gets a malloc'd copy of the result. */
static gh_path_status norm_n(const char *in, size_t len, char **out)
{
    char *in_copy = malloc(len ? len : 1);
    char *buf = malloc(len + 1);
    assert_non_null(in_copy);
    assert_non_null(buf);
    memcpy(in_copy, in, len);
    size_t out_len = 12345;
    gh_path_status st = gh_path_normalize(in_copy, len, buf, &out_len);
    if (st == GH_PATH_OK) {
        assert_true(out_len <= len);
        assert_int_equal(buf[out_len], '\0');
        assert_int_equal(strlen(buf), out_len);
    } else {
        assert_int_equal(out_len, 0);
        assert_string_equal(buf, "");
    }
    *out = strdup(buf);
    free(buf);
    free(in_copy);
    return st;
}

static void check_ok(const char *in, const char *want, int line)
{
    char *got;
    gh_path_status st = norm_n(in, strlen(in), &got);
    if (st != GH_PATH_OK || strcmp(got, want) != 0)
        fail_msg("line %d: normalize(\"%s\") = %d \"%s\", want \"%s\"", line, in, st, got, want);
    free(got);
}

static void check_refused_n(const char *in, size_t len, gh_path_status want, int line)
{
    char *got;
    gh_path_status st = norm_n(in, len, &got);
    if (st != want)
        fail_msg("line %d: normalize(\"%.*s\") = %d \"%s\", want status %d", line, (int)len, in, st,
                 got, want);
    free(got);
}

#define OK(in, want)      check_ok(in, want, __LINE__)
#define REFUSED(in, st)   check_refused_n(in, strlen(in), st, __LINE__)
#define REFUSED_N(in, st) check_refused_n(in, sizeof(in) - 1, st, __LINE__)

static void test_plain_paths(void **state)
{
    (void)state;
    OK("/", "/");
    OK("/a", "/a");
    OK("/a/b/c", "/a/b/c");
    OK("/index.html", "/index.html");
    OK("/a-b_c~d.e", "/a-b_c~d.e");
    OK("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=");
    OK("/api/v1/orders/42", "/api/v1/orders/42");
}

static void test_not_absolute(void **state)
{
    (void)state;
    REFUSED("", GH_PATH_NOT_ABSOLUTE);
    REFUSED("a", GH_PATH_NOT_ABSOLUTE);
    REFUSED("*", GH_PATH_NOT_ABSOLUTE);
    REFUSED(".", GH_PATH_NOT_ABSOLUTE);
    REFUSED("..", GH_PATH_NOT_ABSOLUTE);
    REFUSED("./a", GH_PATH_NOT_ABSOLUTE);
    REFUSED("../a", GH_PATH_NOT_ABSOLUTE);
    REFUSED("%2fa", GH_PATH_NOT_ABSOLUTE);
    REFUSED("%2e%2e/a", GH_PATH_NOT_ABSOLUTE);
    REFUSED("\\a", GH_PATH_NOT_ABSOLUTE);
    REFUSED("http://example.com/a", GH_PATH_NOT_ABSOLUTE);
}

static void test_merge_slashes(void **state)
{
    (void)state;
    OK("//", "/");
    OK("///", "/");
    OK("//a", "/a");
    OK("///a", "/a");
    OK("/a//b", "/a/b");
    OK("/a///b//c", "/a/b/c");
    OK("/a//", "/a/");
    OK("/a///b//", "/a/b/");
}

static void test_trailing_slash(void **state)
{
    (void)state;
    OK("/a/b/", "/a/b/");
    OK("/a/b/.", "/a/b/");
    OK("/a/b/./", "/a/b/");
    OK("/a/b/..", "/a/");
    OK("/a/b/../", "/a/");
    OK("/a/b/%2e", "/a/b/");
    OK("/a/b/%2e%2e", "/a/");
    OK("/a/.", "/a/");
    OK("/a/..", "/");
    OK("/a/../", "/");
    OK("/.", "/");
    OK("/./", "/");
    OK("/%2e", "/");
    OK("/a/b/.//", "/a/b/");
}

static void test_dot_segments(void **state)
{
    (void)state;
    OK("/a/./b", "/a/b");
    OK("/a/../b", "/b");
    OK("/a/b/../../c", "/c");
    OK("/./a", "/a");
    OK("/././a/./b/.", "/a/b/");
    OK("/a/b/c/./../../g", "/a/g"); /* RFC 3986 5.2.4 example */
    OK("/a/b/../c/../d", "/a/d");
    OK("/a/b/c/../../../d", "/d");
}

/* Segments that merely contain dots are names, not dot segments. */
static void test_dotted_names_kept(void **state)
{
    (void)state;
    OK("/...", "/...");
    OK("/a/.../b", "/a/.../b");
    OK("/..a/b", "/..a/b");
    OK("/a../b", "/a../b");
    OK("/.a", "/.a");
    OK("/a./", "/a./");
    OK("/.hidden/..", "/");
    OK("/%2e%2e%2e", "/...");
    OK("/%2e%2ea", "/..a");
    OK("/.%2e.", "/...");
}

static void test_above_root_refused(void **state)
{
    (void)state;
    REFUSED("/..", GH_PATH_ABOVE_ROOT);
    REFUSED("/../", GH_PATH_ABOVE_ROOT);
    REFUSED("/../a", GH_PATH_ABOVE_ROOT);
    REFUSED("/../../etc/passwd", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/../..", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/../../b", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/b/../../..", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/./../..", GH_PATH_ABOVE_ROOT);
    REFUSED("//..", GH_PATH_ABOVE_ROOT);
    REFUSED("//..//", GH_PATH_ABOVE_ROOT);
    REFUSED("/a//..//..//b", GH_PATH_ABOVE_ROOT);
    REFUSED("/./..", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2e%2e", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2E%2E", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2e%2E", GH_PATH_ABOVE_ROOT);
    REFUSED("/.%2e", GH_PATH_ABOVE_ROOT);
    REFUSED("/.%2E", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2e.", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2E.", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2e%2e/", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2E./etc/passwd", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/%2e%2e/%2e%2e/etc", GH_PATH_ABOVE_ROOT);
    REFUSED("/a/.%2e//%2e./x", GH_PATH_ABOVE_ROOT);
    REFUSED("/%2e/%2e%2e", GH_PATH_ABOVE_ROOT);
}

/* Every spelling of ".." leaves the prefix visibly: the result is what the
 * router sees, so "/static/<dots>/admin" must come out as "/admin". */
static void test_traversal_out_of_prefix(void **state)
{
    (void)state;
    OK("/static/../admin", "/admin");
    OK("/static/%2e%2e/admin", "/admin");
    OK("/static/%2E%2E/admin", "/admin");
    OK("/static/%2e%2E/admin", "/admin");
    OK("/static/.%2e/admin", "/admin");
    OK("/static/.%2E/admin", "/admin");
    OK("/static/%2e./admin", "/admin");
    OK("/static/%2E./admin", "/admin");
    OK("/static//..//admin", "/admin");
    OK("/static//%2e%2e//admin", "/admin");
    OK("/static/a/%2e%2e/%2e%2e/admin", "/admin");
    OK("/static/./../admin", "/admin");
    OK("/static/%2e%2e", "/");
    OK("/static/..", "/");
    OK("/static/%2e/admin", "/static/admin");
}

/* %25 is '%', which is reserved: "%252e" decodes once to "%2e", never '.'. */
static void test_double_encoding_kept(void **state)
{
    (void)state;
    OK("/%252e%252e/admin", "/%252e%252e/admin");
    OK("/%252E%252E/admin", "/%252E%252E/admin");
    OK("/static/%252e%252e/admin", "/static/%252e%252e/admin");
    OK("/%25", "/%25");
    OK("/%252f", "/%252f");
    OK("/%255c", "/%255c");
    OK("/%2500", "/%2500");
    OK("/%25%32%65", "/%252e"); /* %32 '2' and %65 'e' are unreserved */
    OK("/%25%32%45%25%32%45", "/%252E%252E");
}

static void test_unreserved_decoded(void **state)
{
    (void)state;
    OK("/%41%42%43", "/ABC");
    OK("/%61%7a", "/az");
    OK("/%61%7A", "/az");
    OK("/%30%39", "/09");
    OK("/%2d%2E%5f%7E", "/-._~");
    OK("/%7e%7Euser", "/~~user");
    OK("/a%62c", "/abc");
    OK("/%2e%61", "/.a");
}

static void test_reserved_kept_upper_case(void **state)
{
    (void)state;
    OK("/%3a", "/%3A");
    OK("/%3b", "/%3B"); /* an encoded ';' is data, not a parameter */
    OK("/%3f", "/%3F");
    OK("/%23", "/%23");
    OK("/%20", "/%20");
    OK("/%2a", "/%2A");
    OK("/%40", "/%40");
    OK("/%2b%2C%3d", "/%2B%2C%3D");
    OK("/%c3%a9", "/%C3%A9");
    OK("/%C3%A9", "/%C3%A9");
    OK("/%ff", "/%FF");
    OK("/%80", "/%80");
    OK("/%21", "/%21");
    OK("/%5b%5d", "/%5B%5D");
}

static void test_encoded_slash_refused(void **state)
{
    (void)state;
    REFUSED("/a%2fb", GH_PATH_ENCODED_SLASH);
    REFUSED("/a%2Fb", GH_PATH_ENCODED_SLASH);
    REFUSED("/a%5cb", GH_PATH_ENCODED_SLASH);
    REFUSED("/a%5Cb", GH_PATH_ENCODED_SLASH);
    REFUSED("/%2f", GH_PATH_ENCODED_SLASH);
    REFUSED("/%2F%2F", GH_PATH_ENCODED_SLASH);
    REFUSED("/..%2f", GH_PATH_ENCODED_SLASH);
    REFUSED("/..%2F..%2Fetc", GH_PATH_ENCODED_SLASH);
    REFUSED("/%2e%2e%2f", GH_PATH_ENCODED_SLASH);
    REFUSED("/%2e%2e%5c", GH_PATH_ENCODED_SLASH);
    REFUSED("/static/%2e%2e%2fadmin", GH_PATH_ENCODED_SLASH);
    REFUSED("/static/x/..%2f", GH_PATH_ENCODED_SLASH);
}

static void test_control_refused(void **state)
{
    (void)state;
    REFUSED_N("/a\0b", GH_PATH_CONTROL);
    REFUSED_N("/\0", GH_PATH_CONTROL);
    REFUSED_N("/..\0", GH_PATH_CONTROL);
    REFUSED("/a\x01", GH_PATH_CONTROL);
    REFUSED("/a\x1f", GH_PATH_CONTROL);
    REFUSED("/a\x7f", GH_PATH_CONTROL);
    REFUSED("/a\tb", GH_PATH_CONTROL);
    REFUSED("/a\rb", GH_PATH_CONTROL);
    REFUSED("/a\nb", GH_PATH_CONTROL);
    REFUSED("/a%00", GH_PATH_CONTROL);
    REFUSED("/..%00", GH_PATH_CONTROL);
    REFUSED("/%2e%2e%00/x", GH_PATH_CONTROL);
    REFUSED("/a%01", GH_PATH_CONTROL);
    REFUSED("/a%09", GH_PATH_CONTROL);
    REFUSED("/a%0a", GH_PATH_CONTROL);
    REFUSED("/a%0A", GH_PATH_CONTROL);
    REFUSED("/a%0d", GH_PATH_CONTROL);
    REFUSED("/a%0D%0A", GH_PATH_CONTROL);
    REFUSED("/a%1f", GH_PATH_CONTROL);
    REFUSED("/a%1F", GH_PATH_CONTROL);
    REFUSED("/a%7f", GH_PATH_CONTROL);
    REFUSED("/a%7F", GH_PATH_CONTROL);
    /* The bytes just outside the control ranges are fine. */
    OK("/%20", "/%20");
    OK("/%7e", "/~");
    OK("/%80", "/%80");
}

static void test_backslash_refused(void **state)
{
    (void)state;
    REFUSED("/a\\b", GH_PATH_BACKSLASH);
    REFUSED("/\\", GH_PATH_BACKSLASH);
    REFUSED("/..\\", GH_PATH_BACKSLASH);
    REFUSED("/\\..\\admin", GH_PATH_BACKSLASH);
    REFUSED("/static\\..\\admin", GH_PATH_BACKSLASH);
}

static void test_params_refused(void **state)
{
    (void)state;
    REFUSED("/a;b", GH_PATH_PARAMS);
    REFUSED("/;", GH_PATH_PARAMS);
    REFUSED("/a;", GH_PATH_PARAMS);
    REFUSED("/a;jsessionid=1/b", GH_PATH_PARAMS);
    REFUSED("/..;/admin", GH_PATH_PARAMS);
    REFUSED("/static/..;/admin", GH_PATH_PARAMS);
    REFUSED("/static/.;/admin", GH_PATH_PARAMS);
    REFUSED("/a/b/c;", GH_PATH_PARAMS);
    OK("/a%3Bb", "/a%3Bb");
}

static void test_bad_encoding_refused(void **state)
{
    (void)state;
    REFUSED("/%", GH_PATH_BAD_ENCODING);
    REFUSED("/%2", GH_PATH_BAD_ENCODING);
    REFUSED("/a%", GH_PATH_BAD_ENCODING);
    REFUSED("/a%/b", GH_PATH_BAD_ENCODING);
    REFUSED("/a%2/b", GH_PATH_BAD_ENCODING);
    REFUSED("/%g0", GH_PATH_BAD_ENCODING);
    REFUSED("/%0g", GH_PATH_BAD_ENCODING);
    REFUSED("/%G0", GH_PATH_BAD_ENCODING);
    REFUSED("/%%", GH_PATH_BAD_ENCODING);
    REFUSED("/%%32e", GH_PATH_BAD_ENCODING);
    REFUSED("/%-1", GH_PATH_BAD_ENCODING);
    REFUSED("/% 2", GH_PATH_BAD_ENCODING);
    REFUSED("/%+2", GH_PATH_BAD_ENCODING);
    REFUSED("/%u002e", GH_PATH_BAD_ENCODING);
    REFUSED_N("/%2\0", GH_PATH_BAD_ENCODING);
}

/* '#' and '?' would end the path for the upstream and SP would split the
 * request line, so the gateway and the upstream would see different paths. */
static void test_bad_char_refused(void **state)
{
    (void)state;
    REFUSED("/a b", GH_PATH_BAD_CHAR);
    REFUSED("/ ", GH_PATH_BAD_CHAR);
    REFUSED("/a#b", GH_PATH_BAD_CHAR);
    REFUSED("/admin#/../public", GH_PATH_BAD_CHAR);
    REFUSED("/public/x#", GH_PATH_BAD_CHAR);
    REFUSED("/a?b", GH_PATH_BAD_CHAR);
    OK("/a%23b%3Fc%20d", "/a%23b%3Fc%20d");
}

static void test_high_bytes_pass_through(void **state)
{
    (void)state;
    OK("/caf\xc3\xa9", "/caf\xc3\xa9");
    OK("/\xff/\x80", "/\xff/\x80");
    OK("/\xc3\xa9/../x", "/x");
}

/* Scanning is left to right; the first problem decides the status. */
static void test_first_problem_wins(void **state)
{
    (void)state;
    REFUSED("/;%2f", GH_PATH_PARAMS);
    REFUSED("/%2f;", GH_PATH_ENCODED_SLASH);
    REFUSED("/../;", GH_PATH_ABOVE_ROOT);
    REFUSED("/a;/../..", GH_PATH_PARAMS);
    REFUSED("/%zz/%2f", GH_PATH_BAD_ENCODING);
    REFUSED("/\\%00", GH_PATH_BACKSLASH);
}

static void test_in_place(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"/a/b/c", "/a/b/c"},
        {"//a//b//", "/a/b/"},
        {"/%41%42/./%2e%2e/c%3b", "/c%3B"},
        {"/static/%2e%2e/admin", "/admin"},
        {"/a", "/a"},
        {"/", "/"},
        {"/x/%7e/%2e", "/x/~/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].in);
        char *buf = malloc(len + 1);
        assert_non_null(buf);
        memcpy(buf, cases[i].in, len); /* no NUL: the extra byte is scratch */
        size_t out_len;
        assert_int_equal(gh_path_normalize(buf, len, buf, &out_len), GH_PATH_OK);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(out_len, strlen(cases[i].want));
        free(buf);
    }
}

static void test_status_strings(void **state)
{
    (void)state;
    const char *seen[GH_PATH_BAD_CHAR + 1];
    for (int s = GH_PATH_OK; s <= GH_PATH_BAD_CHAR; s++) {
        seen[s] = gh_path_status_str((gh_path_status)s);
        assert_non_null(seen[s]);
        assert_true(strlen(seen[s]) > 0);
        for (int t = 0; t < s; t++) assert_string_not_equal(seen[s], seen[t]);
    }
    assert_string_equal(gh_path_status_str((gh_path_status)99), "invalid path");
}

/* --- randomised cross-check against a simple stack-based model --- */

static const char *const PIECES[] = {
    "/",   "/",   "//",    ".",   "..",  "%2e", "%2E", "%2e%2e", ".%2E", "a",   "b",
    "%41", "%7e", "%25",   "%2f", "%5C", ";",   "%3b", "%00",    "%",    "%g1", "\\",
    "~",   "#",   "%252e", "é",   "%C3", "%c3", "x.y", "...",    "%20",  " ",
};

static unsigned rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(*s >> 33);
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Model: decode one segment into dst (NUL-terminated); returns a status. */
static gh_path_status model_segment(const char *s, size_t n, char *dst)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return GH_PATH_BAD_ENCODING;
            int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
            if (h < 0 || l < 0) return GH_PATH_BAD_ENCODING;
            unsigned v = (unsigned)(h * 16 + l);
            i += 2;
            if (v == '/' || v == '\\') return GH_PATH_ENCODED_SLASH;
            if (v < 0x20 || v == 0x7f) return GH_PATH_CONTROL;
            if (strchr("-._~", (int)v) || (v < 0x80 && ((v | 0x20) - 'a' < 26 || v - '0' < 10)))
                dst[w++] = (char)v;
            else
                w += (size_t)sprintf(dst + w, "%%%02X", v);
        } else if (c < 0x20 || c == 0x7f) {
            return GH_PATH_CONTROL;
        } else if (c == '\\') {
            return GH_PATH_BACKSLASH;
        } else if (c == ';') {
            return GH_PATH_PARAMS;
        } else if (c == ' ' || c == '#' || c == '?') {
            return GH_PATH_BAD_CHAR;
        } else {
            dst[w++] = (char)c;
        }
    }
    dst[w] = '\0';
    return GH_PATH_OK;
}

/* Model: split, decode, push/pop a stack of segments, join. */
static gh_path_status model(const char *in, char *out)
{
    static char segs[256][256];
    int depth = 0;
    bool trailing = true;
    size_t len = strlen(in);
    if (len == 0 || in[0] != '/') return GH_PATH_NOT_ABSOLUTE;
    for (size_t i = 1; i <= len;) {
        const char *slash = memchr(in + i, '/', len - i);
        size_t end = slash ? (size_t)(slash - in) : len;
        char seg[256];
        gh_path_status st = model_segment(in + i, end - i, seg);
        if (st != GH_PATH_OK) return st;
        i = end + 1;
        trailing = true;
        if (seg[0] == '\0' || strcmp(seg, ".") == 0) continue;
        if (strcmp(seg, "..") == 0) {
            if (depth == 0) return GH_PATH_ABOVE_ROOT;
            depth--;
            continue;
        }
        strcpy(segs[depth++], seg);
        trailing = false;
    }
    strcpy(out, "/");
    for (int k = 0; k < depth; k++) {
        strcat(out, segs[k]);
        if (k + 1 < depth || trailing) strcat(out, "/");
    }
    return GH_PATH_OK;
}

/* Invariants of any accepted result, checked independently of the model:
 * one percent-decode of each segment never yields "", ".", "..", '/' or '\'
 * (except the one trailing empty segment), and the result is a fixpoint. */
static void check_invariants(const char *in, const char *out)
{
    size_t n = strlen(out);
    assert_true(n >= 1 && out[0] == '/');
    assert_null(strstr(out, "//"));
    for (size_t i = 1; i < n;) {
        const char *slash = strchr(out + i, '/');
        size_t end = slash ? (size_t)(slash - out) : n;
        char dec[256];
        size_t w = 0;
        for (size_t k = i; k < end; k++) {
            if (out[k] == '%') {
                assert_true(hexv(out[k + 1]) >= 0 && hexv(out[k + 2]) >= 0);
                assert_false(islower((unsigned char)out[k + 1]) ||
                             islower((unsigned char)out[k + 2]));
                dec[w++] = (char)(hexv(out[k + 1]) * 16 + hexv(out[k + 2]));
                k += 2;
            } else {
                dec[w++] = out[k];
            }
        }
        dec[w] = '\0';
        if (strcmp(dec, ".") == 0 || strcmp(dec, "..") == 0 || memchr(dec, '/', w) ||
            memchr(dec, '\\', w))
            fail_msg("normalize(\"%s\") = \"%s\" has a dot or slash segment", in, out);
        i = end + 1;
    }
    char *again;
    assert_int_equal(norm_n(out, n, &again), GH_PATH_OK);
    assert_string_equal(again, out);
    free(again);
}

static void test_random_against_model(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t npieces = sizeof(PIECES) / sizeof(PIECES[0]);
    int accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        char in[256] = "/";
        int parts = (int)(rnd(&seed) % 12);
        for (int p = 0; p < parts; p++) strcat(in, PIECES[rnd(&seed) % npieces]);
        char want[512];
        gh_path_status want_st = model(in, want);
        char *got;
        gh_path_status st = norm_n(in, strlen(in), &got);
        if (st != want_st || (st == GH_PATH_OK && strcmp(got, want) != 0))
            fail_msg("normalize(\"%s\") = %d \"%s\", model %d \"%s\"", in, st, got, want_st,
                     want_st == GH_PATH_OK ? want : "");
        if (st == GH_PATH_OK) {
            check_invariants(in, got);
            accepted++;
        }
        free(got);
    }
    assert_true(accepted > 10000); /* the generator does reach the interesting paths */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_paths),
        cmocka_unit_test(test_not_absolute),
        cmocka_unit_test(test_merge_slashes),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_dotted_names_kept),
        cmocka_unit_test(test_above_root_refused),
        cmocka_unit_test(test_traversal_out_of_prefix),
        cmocka_unit_test(test_double_encoding_kept),
        cmocka_unit_test(test_unreserved_decoded),
        cmocka_unit_test(test_reserved_kept_upper_case),
        cmocka_unit_test(test_encoded_slash_refused),
        cmocka_unit_test(test_control_refused),
        cmocka_unit_test(test_backslash_refused),
        cmocka_unit_test(test_params_refused),
        cmocka_unit_test(test_bad_encoding_refused),
        cmocka_unit_test(test_bad_char_refused),
        cmocka_unit_test(test_high_bytes_pass_through),
        cmocka_unit_test(test_first_problem_wins),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
