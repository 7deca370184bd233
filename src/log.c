#include "log.h"

#include <errno.h>
#include <fcntl.h>
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

void gh_logv(gh_log_level level, const char *fmt, va_list ap)
{
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
    int fd; /* -1: off */
    bool owns_fd;
    size_t len;
    char buf[ACCESS_BUF];
};

gh_access_log_t *gh_access_log_open(const char *target)
{
    gh_access_log_t *log = malloc(sizeof(*log));
    if (!log) return NULL;
    log->len = 0;
    log->owns_fd = false;
    if (!target || strcmp(target, "stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else if (strcmp(target, "off") == 0) {
        log->fd = -1;
    } else {
        log->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (log->fd < 0) {
            int e = errno;
            free(log);
            errno = e;
            return NULL;
        }
        log->owns_fd = true;
    }
    return log;
}

int gh_json_escape(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = *n;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (i + 6 >= cap) return 0;
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

static void put_str(char *out, size_t cap, size_t *n, const char *key, const char *s, size_t len)
{
    int m = snprintf(out + *n, cap - *n, ",\"%s\":", key);
    if (m < 0 || (size_t)m >= cap - *n) return;
    *n += (size_t)m;
    if (!s) {
        if (*n + 4 < cap) memcpy(out + *n, "null", 4), *n += 4;
        return;
    }
    out[(*n)++] = '"';
    gh_json_escape(out, cap - 1, n, s, len);
    out[(*n)++] = '"';
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

void gh_access_log_write(gh_access_log_t *log, const gh_access_entry_t *e)
{
    if (log->fd < 0) return;
    char line[4096], ts[40];
    size_t n = 0;
    format_time(ts, sizeof(ts));
    n += (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\"", ts);
    put_str(line, sizeof(line), &n, "request_id", e->request_id,
            e->request_id ? strlen(e->request_id) : 0);
    put_str(line, sizeof(line), &n, "client", e->client, e->client ? strlen(e->client) : 0);
    put_str(line, sizeof(line), &n, "method", e->method, e->method ? strlen(e->method) : 0);
    put_str(line, sizeof(line), &n, "path", e->path, e->path_len);
    int m =
        snprintf(line + n, sizeof(line) - n, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu",
                 e->status, (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out);
    if (m > 0 && (size_t)m < sizeof(line) - n) n += (size_t)m;
    put_str(line, sizeof(line), &n, "upstream", e->upstream, e->upstream ? strlen(e->upstream) : 0);
    if (e->upstream_ms >= 0)
        m = snprintf(line + n, sizeof(line) - n, ",\"upstream_ms\":%.3f", e->upstream_ms);
    else
        m = snprintf(line + n, sizeof(line) - n, ",\"upstream_ms\":null");
    if (m > 0 && (size_t)m < sizeof(line) - n) n += (size_t)m;
    m = snprintf(line + n, sizeof(line) - n, ",\"total_ms\":%.3f", e->total_ms);
    if (m > 0 && (size_t)m < sizeof(line) - n) n += (size_t)m;
    put_str(line, sizeof(line), &n, "route", e->route, e->route ? strlen(e->route) : 0);
    if (n + 2 > sizeof(line)) n = sizeof(line) - 2;
    line[n++] = '}';
    line[n++] = '\n';
    if (log->len + n > sizeof(log->buf)) gh_access_log_flush(log);
    memcpy(log->buf + log->len, line, n);
    log->len += n;
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

void gh_access_log_close(gh_access_log_t *log)
{
    if (!log) return;
    gh_access_log_flush(log);
    if (log->owns_fd) close(log->fd);
    free(log);
}
