/* Unit tests for log.c: JSON string escaping, the buffered access log,
 * whose every line must parse as JSON whatever bytes a client sent, its
 * reopening after a rotation, and the error log's level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define ACCESS_LINE_MAX 4097 /* a line never exceeds the 4 KiB buffer */

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
 * returns 0 having appended a prefix of it that ends between escapes.
 * Success is monotonic in cap. */
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
            assert_true(n >= start && n <= cap);
            assert_memory_equal(out + start, want, n - start);
            /* the prefix ends on an escape boundary: never inside \" or \u00XX */
            size_t k = n - start;
            assert_true(k == 0 || k == 1 || k == 3 || k == 9 || k == 15 || k == 16);
        }
        free(out);
    }
    assert_true(first_ok >= start + strlen(want));
}

/* The whole log file; *len is its size. */
static char *slurp(size_t *len)
{
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

/* Parses the line at *pos, which must end in '\n', and moves past it. */
static json_t *next_line(const char *buf, size_t len, size_t *pos)
{
    const char *nl = memchr(buf + *pos, '\n', len - *pos);
    if (!nl) fail_msg("no whole line at offset %zu", *pos);
    size_t n = (size_t)(nl - buf) - *pos;
    json_error_t err;
    json_t *j = json_loadb(buf + *pos, n, JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("not JSON (%s): %.*s", err.text, (int)n, buf + *pos);
    assert_true(json_is_object(j));
    *pos += n + 1;
    return j;
}

static const gh_access_entry_t ENTRY = {
    .request_id = "req-1",
    .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
    .client = "192.0.2.7",
    .method = "POST",
    .path = "/api/orders?secret=1",
    .path_len = 11, /* the query is not logged */
    .upstream = "10.0.0.5:8080",
    .route = "orders",
    .status = 201,
    .bytes_in = 1234,
    .bytes_out = 5000000000ull,
    .upstream_ms = 12.5,
    .total_ms = 13.25,
};

/* Writes e through a log on logpath and returns the single line it made,
 * parsed. */
static json_t *log_one(const gh_access_entry_t *e)
{
    gh_access_log_t *log = gh_access_log_open(logpath);
    assert_non_null(log);
    gh_access_log_write(log, e);
    gh_access_log_close(log);
    size_t len, pos = 0;
    char *buf = slurp(&len);
    json_t *j = next_line(buf, len, &pos);
    assert_int_equal(pos, len);
    free(buf);
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
    assert_string_equal(json_string_value(FIELD(j, "trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
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
    assert_int_equal(json_object_size(j), 13);
    json_decref(j);
}

/* Paths up to any length (the URI limit allows 64 KiB), with every other
 * field at its longest, still give one whole line of valid JSON that keeps
 * every field: the path is what gets cut. */
static void test_long_fields_stay_valid_json(void **state)
{
    (void)state;
    static char path[70000], route[600];
    memset(path, '"', sizeof(path));
    memset(route, 'r', sizeof(route) - 1);
    gh_access_entry_t e = ENTRY;
    e.route = route;
    e.trace_id = route;
    e.upstream = route;
    e.path = path;
    e.total_ms = NAN;
    size_t lens[] = {3800, 3883, 3902, 3991, 4096, 8192, sizeof(path)};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        e.path_len = lens[i];
        json_t *j = log_one(&e);
        assert_int_equal(json_object_size(j), 13);
        assert_true(json_is_null(FIELD(j, "total_ms")));
        size_t got = strlen(json_string_value(FIELD(j, "path")));
        assert_true(got > 100 && got < lens[i]);
        assert_int_equal(json_integer_value(FIELD(j, "status")), 201);
        assert_non_null(json_string_value(FIELD(j, "route")));
        json_decref(j);
    }
}

static void test_absent_fields_are_null(void **state)
{
    (void)state;
    gh_access_entry_t e = {.client = "::1", .status = 400, .upstream_ms = -1};
    json_t *j = log_one(&e);
    static const char *nulls[] = {"request_id", "trace_id",    "method", "path",
                                  "upstream",   "upstream_ms", "route"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (!json_is_null(FIELD(j, nulls[i]))) fail_msg("%s is not null", nulls[i]);
    assert_string_equal(json_string_value(FIELD(j, "client")), "::1");
    assert_int_equal(json_integer_value(FIELD(j, "status")), 400);
    assert_int_equal(json_object_size(j), 13);
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
    assert_int_equal(json_object_size(j), 13);
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
    size_t len, pos = 0;
    char *buf = slurp(&len);
    json_t *j = next_line(buf, len, &pos);
    assert_true(json_is_true(FIELD(j, "earlier")));
    json_decref(j);
    json_decref(next_line(buf, len, &pos));
    assert_int_equal(pos, len);
    free(buf);
}

/* With stderr pointed at logpath: "off" writes nothing there and creates
 * no file of that name; "stderr" writes there and leaves fd 2 open. */
static void test_off_and_stderr_targets(void **state)
{
    (void)state;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    assert_int_equal(chdir(dir), 0);

    gh_access_log_t *log = gh_access_log_open("off");
    assert_non_null(log);
    for (int i = 0; i < 100; i++) gh_access_log_write(log, &ENTRY);
    gh_access_log_flush(log);
    gh_access_log_close(log);
    off_t off_bytes = file_size(logpath);
    int off_file = access("off", F_OK);

    log = gh_access_log_open("stderr");
    assert_non_null(log);
    gh_access_log_write(log, &ENTRY);
    gh_access_log_close(log);
    int stderr_open = fcntl(STDERR_FILENO, F_GETFD);

    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(off_bytes, 0);
    assert_int_equal(off_file, -1);
    assert_true(stderr_open != -1);
    size_t len, pos = 0;
    char *buf = slurp(&len);
    json_t *j = next_line(buf, len, &pos);
    assert_int_equal(pos, len);
    assert_string_equal(json_string_value(FIELD(j, "route")), "orders");
    json_decref(j);
    free(buf);
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
    size_t len, pos = 0;
    char *buf = slurp(&len);
    for (int i = 0; i < N; i++) {
        json_t *j = next_line(buf, len, &pos);
        snprintf(rid, sizeof(rid), "req-%d", i);
        assert_string_equal(json_string_value(FIELD(j, "request_id")), rid);
        assert_int_equal(json_string_length(FIELD(j, "path")), 1 + (size_t)(i * 37) % 300);
        assert_string_equal(json_string_value(FIELD(j, "route")), "orders");
        json_decref(j);
    }
    assert_int_equal(pos, len);
    free(buf);
}

/* The access lines in the file at path, parsed; *n is how many. */
static json_t **lines_of(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    json_t **out = calloc(64, sizeof(*out));
    assert_non_null(out);
    char line[ACCESS_LINE_MAX];
    *n = 0;
    while (fgets(line, sizeof(line), f)) {
        assert_true(*n < 64);
        json_error_t err;
        out[*n] = json_loads(line, 0, &err);
        if (!out[*n]) fail_msg("not JSON (%s): %s", err.text, line);
        (*n)++;
    }
    fclose(f);
    return out;
}

/* Request ids of the lines in the file at path, joined with ','. */
static void expect_ids(const char *path, const char *want)
{
    size_t n;
    json_t **lines = lines_of(path, &n);
    char got[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(got, ",");
        strcat(got, json_string_value(FIELD(lines[i], "request_id")));
        json_decref(lines[i]);
    }
    free(lines);
    if (strcmp(got, want) != 0) fail_msg("%s holds [%s], want [%s]", path, got, want);
}

static void write_id(gh_access_log_t *log, const char *id)
{
    gh_access_entry_t e = ENTRY;
    e.request_id = id;
    gh_access_log_write(log, &e);
}

/* logrotate moves the file away, then signals: what was buffered goes to
 * the moved file, what follows to a new file at the old path. */
static void test_reopen_after_rotation(void **state)
{
    (void)state;
    char rotated[320];
    snprintf(rotated, sizeof(rotated), "%s.1", logpath);
    gh_access_log_t *log = gh_access_log_open(logpath);
    assert_non_null(log);
    write_id(log, "a");
    gh_access_log_flush(log);
    write_id(log, "b"); /* still buffered when the file moves */
    assert_int_equal(rename(logpath, rotated), 0);
    assert_int_equal(gh_access_log_reopen(log), 0);
    write_id(log, "c");
    assert_int_equal(gh_access_log_reopen(log), 0); /* twice in a row: the same file again */
    write_id(log, "d");
    gh_access_log_close(log);
    expect_ids(rotated, "a,b");
    expect_ids(logpath, "c,d");
    struct stat st;
    assert_int_equal(stat(logpath, &st), 0);
    assert_int_equal(st.st_mode & 0777 & ~0640, 0);
}

/* When the path cannot be opened any more, the log keeps writing to the
 * file it has and says why. */
static void test_reopen_failure_keeps_old_file(void **state)
{
    (void)state;
    char sub[300], moved[320], path[340], kept[360];
    snprintf(sub, sizeof(sub), "%s/logs", dir);
    snprintf(moved, sizeof(moved), "%s/logs.old", dir);
    snprintf(path, sizeof(path), "%s/access.log", sub);
    snprintf(kept, sizeof(kept), "%s/access.log", moved);
    assert_int_equal(mkdir(sub, 0700), 0);
    gh_access_log_t *log = gh_access_log_open(path);
    assert_non_null(log);
    write_id(log, "a");
    assert_int_equal(rename(sub, moved), 0);
    errno = 0;
    assert_int_equal(gh_access_log_reopen(log), -1);
    assert_int_equal(errno, ENOENT);
    write_id(log, "b");
    gh_access_log_close(log);
    expect_ids(kept, "a,b");
    assert_int_equal(access(path, F_OK), -1);
}

/* stderr and off have nothing to reopen: both succeed and carry on. */
static void test_reopen_stderr_and_off(void **state)
{
    (void)state;
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    gh_access_log_t *off = gh_access_log_open("off"), *err = gh_access_log_open("stderr");
    assert_non_null(off);
    assert_non_null(err);
    write_id(off, "off-1");
    write_id(err, "err-1");
    int rc_off = gh_access_log_reopen(off), rc_err = gh_access_log_reopen(err);
    write_id(off, "off-2");
    write_id(err, "err-2");
    gh_access_log_close(off);
    gh_access_log_close(err);
    int stderr_open = fcntl(STDERR_FILENO, F_GETFD);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc_off, 0);
    assert_int_equal(rc_err, 0);
    assert_true(stderr_open != -1);
    expect_ids(logpath, "err-1,err-2");
}

static void test_level_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        gh_log_level want;
    } ok[] = {{"debug", GH_LOG_DEBUG},
              {"info", GH_LOG_INFO},
              {"warn", GH_LOG_WARN},
              {"error", GH_LOG_ERROR}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        gh_log_level got = (gh_log_level)99;
        assert_int_equal(gh_log_level_parse(ok[i].s, &got), 0);
        assert_int_equal(got, ok[i].want);
    }
    static const char *bad[] = {"",       "DEBUG", "Info",  "warning", "err",
                                "errors", " info", "info ", "fatal",   "0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_log_level got = GH_LOG_WARN;
        if (gh_log_level_parse(bad[i], &got) != -1) fail_msg("\"%s\" parsed", bad[i]);
        assert_int_equal(got, GH_LOG_WARN);
    }
    gh_log_level got = GH_LOG_WARN;
    assert_int_equal(gh_log_level_parse(NULL, &got), -1);
    assert_int_equal(got, GH_LOG_WARN);
}

/* Logs one line at every level into a file standing in for stderr and
 * returns which got through, as a string of level initials ("iwe"). */
static void levels_written(char *out)
{
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    gh_log(GH_LOG_DEBUG, "line %s", "d");
    gh_log(GH_LOG_INFO, "line %s", "i");
    gh_log(GH_LOG_WARN, "line %s", "w");
    gh_log(GH_LOG_ERROR, "line %s", "e");
    dup2(saved, STDERR_FILENO);
    close(saved);
    size_t len;
    char *buf = slurp(&len);
    size_t n = 0;
    for (char *p = buf; p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        assert_non_null(nl);
        char name[8], initial;
        if (sscanf(p, "gatehouse[%7[a-z]]: line %c", name, &initial) != 2)
            fail_msg("unexpected line: %.*s", (int)(nl - p), p);
        assert_int_equal(name[0], initial);
        out[n++] = initial;
        p = nl + 1;
    }
    out[n] = '\0';
    free(buf);
}

static void test_level_filters_lines(void **state)
{
    (void)state;
    char got[8];
    levels_written(got);
    assert_string_equal(got, "iwe"); /* INFO until set */
    gh_log_set_level(GH_LOG_DEBUG);
    levels_written(got);
    assert_string_equal(got, "diwe");
    gh_log_set_level(GH_LOG_WARN);
    levels_written(got);
    assert_string_equal(got, "we");
    gh_log_set_level(GH_LOG_ERROR);
    levels_written(got);
    assert_string_equal(got, "e");
    gh_log_set_level(GH_LOG_INFO);
    levels_written(got);
    assert_string_equal(got, "iwe");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_plain_and_specials),
        cmocka_unit_test(test_escape_every_byte_round_trips),
        cmocka_unit_test(test_escape_does_not_fit),
        cmocka_unit_test_setup_teardown(test_access_line_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_fields_stay_valid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_fields_are_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes_stay_in_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_until_flush_and_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_and_stderr_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure_sets_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_writes_arrive_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_failure_keeps_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_stderr_and_off, setup, teardown),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_setup_teardown(test_level_filters_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
