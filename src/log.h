/* Error log (text lines on stderr) and access log (JSON lines, buffered per worker). */
#ifndef GH_LOG_H
#define GH_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { GH_LOG_DEBUG, GH_LOG_INFO, GH_LOG_WARN, GH_LOG_ERROR } gh_log_level;

/* One "gatehouse[level]: message" line on stderr, written with one write(2),
 * unless level is below the minimum set by gh_log_set_level. Any thread. */
void gh_log(gh_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gh_logv(gh_log_level level, const char *fmt, va_list ap);

/* Drops error-log lines below min from now on (INFO until set). Any thread. */
void gh_log_set_level(gh_log_level min);

/* Reads "debug", "info", "warn" or "error" into *out. Returns 0, or -1
 * (leaving *out alone) for anything else. */
int gh_log_level_parse(const char *s, gh_log_level *out);

/* What one access-log line records. Strings are (ptr, len); NULL for absent. */
typedef struct {
    const char *request_id, *trace_id, *client, *method, *path, *upstream, *route;
    size_t path_len;
    int status;
    uint64_t bytes_in, bytes_out;
    double upstream_ms, total_ms; /* upstream_ms < 0: no upstream */
} gh_access_entry_t;

typedef struct gh_access_log_s gh_access_log_t;

/* Opens an access log on target: "stderr", "off" (returns a log that drops
 * everything) or a file path appended to. NULL with errno on failure. */
gh_access_log_t *gh_access_log_open(const char *target);

/* Appends one JSON line to the buffer; flushes when it fills. */
void gh_access_log_write(gh_access_log_t *log, const gh_access_entry_t *e);

/* Writes out whatever is buffered. */
void gh_access_log_flush(gh_access_log_t *log);

/* Flushes, then opens the file path again (after logrotate moved it) and
 * writes there from now on. Returns 0 (also for "stderr" and "off", where
 * there is nothing to reopen), or -1 with errno, still writing to the old
 * file. Only the thread that writes the log may call it. */
int gh_access_log_reopen(gh_access_log_t *log);

void gh_access_log_close(gh_access_log_t *log);

/* Appends s as a JSON string body (no quotes) into out[*n..cap) and
 * returns 1; when it does not all fit, appends the longest prefix that does
 * (never half an escape) and returns 0. Escapes quotes, backslashes,
 * control and non-ASCII bytes, so a log line is always valid JSON. */
int gh_json_escape(char *out, size_t cap, size_t *n, const char *s, size_t len);

#endif
