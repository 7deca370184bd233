#include "trace.h"

#include <stdio.h>
#include <string.h>

#include "headers.h"
#include "req.h"
#include "worker.h"

/* The value of a lowercase hex digit, or -1 (uppercase is not hex here). */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_digit(s[i]) < 0) return false;
    return true;
}

static bool all_zeros(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return false;
    return true;
}

gh_trace_status gh_trace_parse(const char *s, size_t len, gh_trace_t *out)
{
    if (len < 3 || !lower_hex(s, 2) || s[2] != '-') return GH_TRACE_MALFORMED;
    if (s[0] == 'f' && s[1] == 'f') return GH_TRACE_BAD_VERSION;
    bool v00 = s[0] == '0' && s[1] == '0';
    if (len < GH_TRACEPARENT_LEN || (v00 && len > GH_TRACEPARENT_LEN)) return GH_TRACE_MALFORMED;
    if (len > GH_TRACEPARENT_LEN && s[GH_TRACEPARENT_LEN] != '-') return GH_TRACE_MALFORMED;
    const char *trace = s + 3, *parent = s + 36, *flags = s + 53;
    if (!lower_hex(trace, 32) || trace[32] != '-' || !lower_hex(parent, 16) || parent[16] != '-' ||
        !lower_hex(flags, 2))
        return GH_TRACE_MALFORMED;
    if (all_zeros(trace, 32)) return GH_TRACE_ZERO_TRACE_ID;
    if (all_zeros(parent, 16)) return GH_TRACE_ZERO_PARENT_ID;
    memcpy(out->trace_id, trace, 32);
    out->trace_id[32] = '\0';
    out->flags = (uint8_t)((hex_digit(flags[0]) << 4 | hex_digit(flags[1])) & GH_TRACE_SAMPLED);
    return GH_TRACE_OK;
}

/* nhex random hex digits that are not all zeros (an all-zero id is invalid). */
static void random_id(gh_worker_t *w, char *out, size_t nhex)
{
    gh_worker_random_hex(w, out, nhex);
    if (all_zeros(out, nhex)) out[nhex - 1] = '1';
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The client's traceparent: exactly one field, parsed into t without the
 * whitespace around its value (RFC 9110 5.5; llhttp keeps what trails). */
static gh_trace_status read_traceparent(const gh_head_t *h, gh_trace_t *t)
{
    const gh_hdr_t *found = NULL;
    for (uint32_t i = 0; i < h->n; i++) {
        if (!gh_hdr_eq(gh_hdr_name(h, &h->hdrs[i]), h->hdrs[i].name_len, "traceparent")) continue;
        if (found) return GH_TRACE_REPEATED;
        found = &h->hdrs[i];
    }
    if (!found) return GH_TRACE_ABSENT;
    const char *v = gh_hdr_value(h, found);
    size_t len = found->value_len;
    while (len && ows(*v)) v++, len--;
    while (len && ows(v[len - 1])) len--;
    return gh_trace_parse(v, len, t);
}

gh_trace_status gh_trace_start(gh_req_t *r)
{
    gh_trace_t *t = &r->trace;
    gh_trace_status st = read_traceparent(&r->head, t);
    t->valid_in = st == GH_TRACE_OK;
    if (!t->valid_in) {
        random_id(r->w, t->trace_id, 32);
        t->flags = 0;
    }
    random_id(r->w, t->span_id, 16);
    return st;
}

size_t gh_trace_format(const gh_trace_t *t, char out[GH_TRACEPARENT_LEN + 1])
{
    return (size_t)snprintf(out, GH_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t->trace_id, t->span_id,
                            t->flags);
}
