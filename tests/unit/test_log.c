/* Unit tests for log.c: JSON string escaping and the buffered access log,
 * whose every line must parse as JSON whatever bytes a client sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char dir[256], logpath[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gh_log_test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(logpath, sizeof(logpath), "%s/access.log", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

/* Escapes s into a buffer of exactly cap bytes (so ASan sees any write past
 * it), starting at offset start. Returns the result; *out is a malloc'd
 * NUL-terminated copy of out[0..n). */
static int escape(const char *s, size_t len, size_t cap, size_t start, char **out, size_t *n)
{
    char *buf = malloc(cap ? cap : 1);
    assert_non_null(buf);
    memset(buf, '#', cap);
    *n = start;
    int ok = gh_json_escape(buf, cap, n, s, len);
    assert_true(*n <= cap);
    *out = strndup(buf, *n);
    free(buf);
    return ok;
}

static void expect_escape(const char *s, size_t len, const char *want)
{
    char *out;
    size_t n;
    assert_int_equal(escape(s, len, 512, 0, &out, &n), 1);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
    free(out);
}

static void test_escape_plain_and_specials(void **state)
{
    (void)state;
    expect_escape("", 0, "");
    expect_escape("/api/orders/42", 14, "/api/orders/42");
    expect_escape("a\"b", 3, "a\\\"b");
    expect_escape("a\\b", 3, "a\\\\b");
    expect_escape("\"\\\"", 3, "\\\"\\\\\\\"");
    expect_escape("/ ~", 3, "/ ~"); /* space and tilde bound the printable range */
    expect_escape("\n\r\t", 3, "\\u000a\\u000d\\u0009");
    expect_escape("a\0b", 3, "a\\u0000b");
    expect_escape("\x1f\x7f", 2, "\\u001f\\u007f");
    expect_escape("\x80\xc3\xa9\xff", 4, "\\u0080\\u00c3\\u00a9\\u00ff");
}

static void test_escape_appends_at_offset(void **state)
{
    (void)state;
    char buf[64] = "\"path\":\"";
    size_t n = strlen(buf);
    assert_int_equal(gh_json_escape(buf, sizeof(buf), &n, "x\"y", 3), 1);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, "\"path\":\"x\\\"y", 12);
}

/* Every byte value, escaped and parsed back: bytes below 0x80 come back as
 * themselves, the rest as the Latin-1 code point of the same number. */
static void test_escape_every_byte_round_trips(void **state)
{
    (void)state;
    char in[256], body[256 * 6 + 3];
    for (int i = 0; i < 256; i++) in[i] = (char)i;
    size_t n = 1;
    body[0] = '"';
    assert_int_equal(gh_json_escape(body, sizeof(body) - 1, &n, in, sizeof(in)), 1);
    body[n++] = '"';
    json_error_t err;
    json_t *j = json_loadb(body, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("escaped bytes are not JSON: %s", err.text);
    const unsigned char *got = (const unsigned char *)json_string_value(j);
    size_t got_len = json_string_length(j);
    assert_int_equal(got_len, 128 + 2 * 128);
    for (size_t i = 0, k = 0; i < 256; i++) {
        if (i < 0x80) {
            assert_int_equal(got[k++], i);
        } else {
            assert_int_equal(got[k++], 0xc0 | (i >> 6));
            assert_int_equal(got[k++], 0x80 | (i & 0x3f));
        }
    }
    json_decref(j);
}

/* For every capacity: either the whole escaped string fits, or the call
 * returns 0 and leaves *n where it was. Success is monotonic in cap. */
static void test_escape_does_not_fit(void **state)
{
    (void)state;
    static const char s[] = "a\"\n\xff"
                            "bc";
    const char *want = "a\\\"\\u000a\\u00ffbc";
    size_t start = 2, first_ok = 0;
    for (size_t cap = start; cap < 40; cap++) {
        char *out;
        size_t n;
        int ok = escape(s, sizeof(s) - 1, cap, start, &out, &n);
        if (ok) {
            if (!first_ok) first_ok = cap;
            assert_int_equal(n, start + strlen(want));
            assert_string_equal(out + start, want);
        } else {
            if (first_ok) fail_msg("fits at cap %zu but not at %zu", first_ok, cap);
            assert_int_equal(n, start);
        }
        free(out);
    }
    assert_true(first_ok >= start + strlen(want));
}

static json_t *parse_line(const char *line, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("not JSON (%s): %.*s", err.text, (int)len, line);
    assert_true(json_is_object(j));
    return j;
}

/* Reads the log file into lines; each must end in '\n'. Returns the count. */
static size_t read_lines(const char *path, char ***lines, size_t **lens)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t count = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    *lines = NULL;
    *lens = NULL;
    while ((n = getline(&line, &lcap, f)) > 0) {
        assert_int_equal(line[n - 1], '\n');
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            *lines = realloc(*lines, cap * sizeof(**lines));
            *lens = realloc(*lens, cap * sizeof(**lens));
            assert_non_null(*lines);
            assert_non_null(*lens);
        }
        (*lines)[count] = malloc((size_t)n);
        memcpy((*lines)[count], line, (size_t)n);
        (*lens)[count++] = (size_t)n - 1;
    }
    free(line);
    fclose(f);
    return count;
}

static void free_lines(char **lines, size_t *lens, size_t count)
{
    for (size_t i = 0; i < count; i++) free(lines[i]);
    free(lines);
    free(lens);
}

static const gh_access_entry_t ENTRY = {
    .request_id = "req-1",
    .client = "192.0.2.7",
    .method = "POST",
    .path = "/api/orders?secret=1",
    .path_len = 11,
    .upstream = "10.0.0.5:8080",
    .route = "orders",
    .status = 201,
    .bytes_in = 1234,
    .bytes_out = 5000000000ull,
    .upstream_ms = 12.5,
    .total_ms = 13.25,
};

/* Writes entries through a log on logpath and returns the single line,
 * parsed. */
static json_t *log_one(const gh_access_entry_t *e)
{
    gh_access_log_t *log = gh_access_log_open(logpath);
    assert_non_null(log);
    gh_access_log_write(log, e);
    gh_access_log_close(log);
    char **lines;
    size_t *lens;
    assert_int_equal(read_lines(logpath, &lines, &lens), 1);
    json_t *j = parse_line(lines[0], lens[0]);
    free_lines(lines, lens, 1);
    unlink(logpath);
    return j;
}

#define FIELD(j, k) json_object_get((j), (k))

static void test_access_line_fields(void **state)
{
    (void)state;
    json_t *j = log_one(&ENTRY);
    const char *t = json_string_value(FIELD(j, "time"));
    assert_non_null(t);
    /* 2024-01-02T03:04:05.678Z */
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':');
    assert_true(t[19] == '.' && t[23] == 'Z');
    assert_string_equal(json_string_value(FIELD(j, "request_id")), "req-1");
    assert_string_equal(json_string_value(FIELD(j, "client")), "192.0.2.7");
    assert_string_equal(json_string_value(FIELD(j, "method")), "POST");
    assert_string_equal(json_string_value(FIELD(j, "path")), "/api/orders");
    assert_true(json_is_integer(FIELD(j, "status")));
    assert_int_equal(json_integer_value(FIELD(j, "status")), 201);
    assert_int_equal(json_integer_value(FIELD(j, "bytes_in")), 1234);
    assert_int_equal(json_integer_value(FIELD(j, "bytes_out")), 5000000000ll);
    assert_string_equal(json_string_value(FIELD(j, "upstream")), "10.0.0.5:8080");
    assert_true(json_is_real(FIELD(j, "upstream_ms")));
    assert_true(json_real_value(FIELD(j, "upstream_ms")) == 12.5);
    assert_true(json_real_value(FIELD(j, "total_ms")) == 13.25);
    assert_string_equal(json_string_value(FIELD(j, "route")), "orders");
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);
}

static void test_absent_fields_are_null(void **state)
{
    (void)state;
    gh_access_entry_t e = {.client = "::1", .status = 400, .upstream_ms = -1};
    json_t *j = log_one(&e);
    static const char *nulls[] = {"request_id", "method", "path", "upstream", "upstream_ms",
                                  "route"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (!json_is_null(FIELD(j, nulls[i]))) fail_msg("%s is not null", nulls[i]);
    assert_string_equal(json_string_value(FIELD(j, "client")), "::1");
    assert_int_equal(json_integer_value(FIELD(j, "status")), 400);
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);

    e.upstream_ms = 0; /* zero is a measurement, not an absence */
    j = log_one(&e);
    assert_true(json_is_real(FIELD(j, "upstream_ms")));
    assert_true(json_real_value(FIELD(j, "upstream_ms")) == 0.0);
    json_decref(j);
}

static void test_hostile_bytes_stay_in_strings(void **state)
{
    (void)state;
    static const char path[] = "/a\"},\"status\":1,\"x\":\"\n{\"\\\r\0\x01\xff\x7f";
    gh_access_entry_t e = ENTRY;
    e.path = path;
    e.path_len = sizeof(path) - 1;
    e.request_id = "id\"\n";
    e.route = "r\\\x1b";
    json_t *j = log_one(&e); /* one line: the newlines did not split it */
    const char *got = json_string_value(FIELD(j, "path"));
    assert_int_equal(json_string_length(FIELD(j, "path")), sizeof(path) - 1 + 1);
    assert_memory_equal(got, path, sizeof(path) - 3);
    assert_memory_equal(got + sizeof(path) - 3, "\xc3\xbf\x7f", 3);
    assert_string_equal(json_string_value(FIELD(j, "request_id")), "id\"\n");
    assert_string_equal(json_string_value(FIELD(j, "route")), "r\\\x1b");
    assert_int_equal(json_integer_value(FIELD(j, "status")), 201);
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void test_buffered_until_flush_and_appends(void **state)
{
    (void)state;
    FILE *f = fopen(logpath, "w");
    assert_non_null(f);
    fputs("{\"earlier\":true}\n", f);
    fclose(f);
    gh_access_log_t *log = gh_access_log_open(logpath);
    assert_non_null(log);
    gh_access_log_write(log, &ENTRY);
    assert_int_equal(file_size(logpath), 17); /* still in the buffer */
    gh_access_log_flush(log);
    off_t after = file_size(logpath);
    assert_true(after > 17);
    gh_access_log_flush(log); /* nothing left to write */
    assert_int_equal(file_size(logpath), after);
    gh_access_log_close(log);
    char **lines;
    size_t *lens;
    assert_int_equal(read_lines(logpath, &lines, &lens), 2);
    assert_memory_equal(lines[0], "{\"earlier\":true}", 16);
    json_decref(parse_line(lines[1], lens[1]));
    free_lines(lines, lens, 2);
}

/* Runs fn with stderr pointed at a file in dir; returns that file's size. */
static off_t with_stderr_captured(void (*fn)(void))
{
    char path[320];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    return file_size(path);
}

static void write_to_off(void)
{
    gh_access_log_t *log = gh_access_log_open("off");
    assert_non_null(log);
    for (int i = 0; i < 100; i++) gh_access_log_write(log, &ENTRY);
    gh_access_log_flush(log);
    gh_access_log_close(log);
}

static void write_to_stderr(void)
{
    gh_access_log_t *log = gh_access_log_open("stderr");
    assert_non_null(log);
    gh_access_log_write(log, &ENTRY);
    gh_access_log_close(log);
    /* Closing a stderr log leaves stderr open. */
    assert_true(fcntl(STDERR_FILENO, F_GETFD) != -1);
}

static void test_off_and_stderr_targets(void **state)
{
    (void)state;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    off_t off_bytes = with_stderr_captured(write_to_off);
    off_t stderr_bytes = with_stderr_captured(write_to_stderr);
    struct stat st;
    int off_file = stat("off", &st);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(off_bytes, 0);
    assert_int_equal(off_file, -1); /* "off" is not a file name */
    assert_true(stderr_bytes > 100);
}

static void test_open_failure_sets_errno(void **state)
{
    (void)state;
    char path[320];
    snprintf(path, sizeof(path), "%s/missing/access.log", dir);
    errno = 0;
    assert_null(gh_access_log_open(path));
    assert_int_equal(errno, ENOENT);
    gh_access_log_close(NULL);
}

/* Far more than the 4 KiB buffer: every line arrives, whole and in order,
 * and each flush leaves the file ending on a line boundary. */
static void test_many_writes_arrive_whole(void **state)
{
    (void)state;
    enum { N = 600 };
    char path[400], rid[32];
    gh_access_log_t *log = gh_access_log_open(logpath);
    assert_non_null(log);
    int fd = open(logpath, O_RDONLY);
    assert_true(fd >= 0);
    for (int i = 0; i < N; i++) {
        gh_access_entry_t e = ENTRY;
        snprintf(rid, sizeof(rid), "req-%d", i);
        size_t plen = 1 + (size_t)(i * 37) % 300;
        memset(path, 'a' + i % 26, plen);
        path[0] = '/';
        e.request_id = rid;
        e.path = path;
        e.path_len = plen;
        gh_access_log_write(log, &e);
        off_t size = file_size(logpath);
        char last;
        if (size > 0) {
            assert_int_equal(pread(fd, &last, 1, size - 1), 1);
            assert_int_equal(last, '\n');
        }
    }
    assert_true(file_size(logpath) > 0); /* some flushes happened on their own */
    close(fd);
    gh_access_log_close(log);
    char **lines;
    size_t *lens;
    assert_int_equal(read_lines(logpath, &lines, &lens), N);
    for (int i = 0; i < N; i++) {
        json_t *j = parse_line(lines[i], lens[i]);
        snprintf(rid, sizeof(rid), "req-%d", i);
        assert_string_equal(json_string_value(FIELD(j, "request_id")), rid);
        assert_int_equal(json_string_length(FIELD(j, "path")), 1 + (size_t)(i * 37) % 300);
        assert_string_equal(json_string_value(FIELD(j, "route")), "orders");
        json_decref(j);
    }
    free_lines(lines, lens, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_plain_and_specials),
        cmocka_unit_test(test_escape_appends_at_offset),
        cmocka_unit_test(test_escape_every_byte_round_trips),
        cmocka_unit_test(test_escape_does_not_fit),
        cmocka_unit_test_setup_teardown(test_access_line_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_fields_are_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes_stay_in_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_until_flush_and_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_and_stderr_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure_sets_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writes_arrive_whole, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
