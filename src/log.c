#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* PIPE_BUF: one flush is one atomic write even when workers share a pipe. */
#define ACCESS_BUF 4096

static const char *level_name[] = {"debug", "info", "warn", "error"};

/* Read by every thread on every line: one relaxed atomic load. */
static atomic_int min_level = GH_LOG_INFO;

void gh_log_set_level(gh_log_level min)
{
    atomic_store_explicit(&min_level, (int)min, memory_order_relaxed);
}

int gh_log_level_parse(const char *s, gh_log_level *out)
{
    for (int i = GH_LOG_DEBUG; i <= GH_LOG_ERROR; i++) {
        if (s && strcmp(s, level_name[i]) == 0) {
            *out = (gh_log_level)i;
            return 0;
        }
    }
    return -1;
}

void gh_logv(gh_log_level level, const char *fmt, va_list ap)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed)) return;
    char line[2048];
    int n = snprintf(line, sizeof(line), "gatehouse[%s]: ", level_name[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2) len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void gh_log(gh_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gh_logv(level, fmt, ap);
    va_end(ap);
}

struct gh_access_log_s {
    int fd;     /* -1: off */
    char *path; /* the file, which the log owns the fd of; NULL for stderr and off */
    size_t len;
    char buf[ACCESS_BUF];
};

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

gh_access_log_t *gh_access_log_open(const char *target)
{
    gh_access_log_t *log = malloc(sizeof(*log));
    if (!log) return NULL;
    log->len = 0;
    log->path = NULL;
    if (!target || strcmp(target, "stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else if (strcmp(target, "off") == 0) {
        log->fd = -1;
    } else {
        log->path = strdup(target);
        log->fd = log->path ? open_file(target) : -1;
        if (log->fd < 0) {
            int e = errno;
            free(log->path);
            free(log);
            errno = e;
            return NULL;
        }
    }
    return log;
}

int gh_json_escape(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = *n;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (i + 6 >= cap) {
            *n = i; /* keep the prefix that fit, never half an escape */
            return 0;
        }
        if (c == '"' || c == '\\') {
            out[i++] = '\\';
            out[i++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + i, "\\u00", 4);
            out[i + 4] = hex[c >> 4];
            out[i + 5] = hex[c & 15];
            i += 6;
        } else {
            out[i++] = (char)c;
        }
    }
    *n = i;
    return 1;
}

/* One access-log line being built: appends never pass the end, and each
 * field's share is capped so the closing brace always fits. */
typedef struct {
    char buf[ACCESS_BUF];
    size_t n;
} line_t;

#define FIELD_CAP 128  /* escaped bytes of any field but the path */
#define PATH_CAP  2560 /* escaped bytes of the path; the rest of a line fits in what is left */

static void lput(line_t *l, const char *s, size_t len)
{
    if (len > sizeof(l->buf) - 2 - l->n) len = sizeof(l->buf) - 2 - l->n; /* keep "}\n" */
    memcpy(l->buf + l->n, s, len);
    l->n += len;
}

static void lprintf(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lprintf(line_t *l, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (m > 0) lput(l, tmp, (size_t)m < sizeof(tmp) ? (size_t)m : sizeof(tmp) - 1);
}

/* ,"key":"escaped value" (or null), the value cut to cap escaped bytes. */
static void put_str(line_t *l, const char *key, const char *s, size_t len, size_t cap)
{
    lprintf(l, ",\"%s\":", key);
    if (!s) {
        lput(l, "null", 4);
        return;
    }
    char esc[PATH_CAP + 8];
    size_t n = 0;
    gh_json_escape(esc, cap + 1, &n, s, len);
    lput(l, "\"", 1);
    lput(l, esc, n);
    lput(l, "\"", 1);
}

static void put_ms(line_t *l, const char *key, double ms)
{
    if (ms >= 0 && isfinite(ms))
        lprintf(l, ",\"%s\":%.3f", key, ms);
    else
        lprintf(l, ",\"%s\":null", key);
}

static size_t format_time(char *out, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

void gh_access_log_write(gh_access_log_t *log, const gh_access_entry_t *e)
{
    if (log->fd < 0) return;
    line_t l = {.n = 0};
    char ts[40];
    format_time(ts, sizeof(ts));
    lprintf(&l, "{\"time\":\"%s\"", ts);
    put_str(&l, "request_id", e->request_id, slen(e->request_id), FIELD_CAP);
    put_str(&l, "trace_id", e->trace_id, slen(e->trace_id), FIELD_CAP);
    put_str(&l, "client", e->client, slen(e->client), FIELD_CAP);
    put_str(&l, "method", e->method, slen(e->method), FIELD_CAP);
    put_str(&l, "path", e->path, e->path_len, PATH_CAP);
    lprintf(&l, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu", e->status,
            (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out);
    put_str(&l, "upstream", e->upstream, slen(e->upstream), FIELD_CAP);
    put_ms(&l, "upstream_ms", e->upstream_ms);
    put_ms(&l, "total_ms", e->total_ms);
    put_str(&l, "route", e->route, slen(e->route), FIELD_CAP);
    l.buf[l.n++] = '}';
    l.buf[l.n++] = '\n';
    if (log->len + l.n > sizeof(log->buf)) gh_access_log_flush(log);
    memcpy(log->buf + log->len, l.buf, l.n);
    log->len += l.n;
}

void gh_access_log_flush(gh_access_log_t *log)
{
    size_t off = 0;
    while (log->fd >= 0 && off < log->len) {
        ssize_t w = write(log->fd, log->buf + off, log->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    log->len = 0;
}

int gh_access_log_reopen(gh_access_log_t *log)
{
    gh_access_log_flush(log);
    if (!log->path) return 0;
    int fd = open_file(log->path);
    if (fd < 0) return -1;
    close(log->fd);
    log->fd = fd;
    return 0;
}

void gh_access_log_close(gh_access_log_t *log)
{
    if (!log) return;
    gh_access_log_flush(log);
    if (log->path) close(log->fd);
    free(log->path);
    free(log);
}
