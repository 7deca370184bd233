/* W3C Trace Context (level 1): the traceparent a request came with, and
 * the one the gateway sends upstream as the next hop of that trace. */
#ifndef GH_TRACE_H
#define GH_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gh_req_s;

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define GH_TRACEPARENT_LEN 55
#define GH_TRACE_SAMPLED   0x01

/* What an incoming traceparent was; anything but OK starts a new trace. */
typedef enum {
    GH_TRACE_OK,
    GH_TRACE_ABSENT,
    GH_TRACE_REPEATED,       /* more than one traceparent field */
    GH_TRACE_MALFORMED,      /* not the version-00 layout in lowercase hex */
    GH_TRACE_BAD_VERSION,    /* ff, which the spec forbids */
    GH_TRACE_ZERO_TRACE_ID,  /* all zeros */
    GH_TRACE_ZERO_PARENT_ID, /* all zeros */
} gh_trace_status;

/* A request's trace context (kept in gh_req_t). */
typedef struct {
    char trace_id[33]; /* the client's or a new one; "" before the head is read */
    char span_id[17];  /* the gateway's own: the parent-id the upstream sees */
    uint8_t flags;     /* the client's sampled bit, or 0 for a new trace */
    bool valid_in;     /* the client's traceparent was valid: tracestate passes */
} gh_trace_t;

/* Parses one traceparent value s[0..len). On OK sets out->trace_id and
 * out->flags (the sampled bit only: level 1 has vendors send other bits
 * as zero) and leaves the rest of out alone. A version above 00 is read
 * as far as version 00's layout goes when a '-' or the end follows it. */
gh_trace_status gh_trace_parse(const char *s, size_t len, gh_trace_t *out);

/* Fills r->trace from r's head: the client's trace when it sent exactly
 * one valid traceparent, else a new random trace-id with flags 00; a new
 * span id either way. Returns what the client's traceparent was. */
gh_trace_status gh_trace_start(struct gh_req_s *r);

/* Writes the traceparent value the upstream is sent, and a NUL, into
 * out; returns its length (GH_TRACEPARENT_LEN). */
size_t gh_trace_format(const gh_trace_t *t, char out[GH_TRACEPARENT_LEN + 1]);

#endif
