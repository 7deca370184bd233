/* Request-path normalisation: pure, no I/O. */
#include "path.h"

#include <stdbool.h>

static const char HEX[] = "0123456789ABCDEF";

/* Value of a hex digit, or -1. */
static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* RFC 3986 unreserved: ALPHA DIGIT - . _ ~ (their escapes are decoded). */
static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Why a raw (not percent-encoded) byte is refused, or GH_PATH_OK. */
static gh_path_status check_raw(unsigned char c)
{
    if (is_control(c)) return GH_PATH_CONTROL;
    if (c == '\\') return GH_PATH_BACKSLASH;
    if (c == ';') return GH_PATH_PARAMS;
    if (c == ' ' || c == '#' || c == '?') return GH_PATH_BAD_CHAR;
    return GH_PATH_OK;
}

/* Why a decoded escape is refused, or GH_PATH_OK. */
static gh_path_status check_decoded(unsigned char c)
{
    if (c == '/' || c == '\\') return GH_PATH_ENCODED_SLASH;
    if (is_control(c)) return GH_PATH_CONTROL;
    return GH_PATH_OK;
}

/* Decodes the n raw bytes of one segment (no '/') into out, writing at most
 * n bytes. out may trail in (out <= in): each escape is read whole before any
 * byte of it is written. Returns GH_PATH_OK with *dlen set, or the problem. */
static gh_path_status decode_segment(const char *in, size_t n, char *out, size_t *dlen)
{
    size_t w = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c != '%') {
            gh_path_status st = check_raw(c);
            if (st != GH_PATH_OK) return st;
            out[w++] = (char)c;
            continue;
        }
        if (n - i < 3) return GH_PATH_BAD_ENCODING;
        int hi = hex_val((unsigned char)in[i + 1]);
        int lo = hex_val((unsigned char)in[i + 2]);
        if (hi < 0 || lo < 0) return GH_PATH_BAD_ENCODING;
        i += 2;
        c = (unsigned char)(hi << 4 | lo);
        gh_path_status st = check_decoded(c);
        if (st != GH_PATH_OK) return st;
        if (is_unreserved(c)) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = HEX[hi];
            out[w++] = HEX[lo];
        }
    }
    *dlen = w;
    return GH_PATH_OK;
}

/* Index just past the '/' that opens the segment ending at out[end - 1]
 * (out[end] is that segment's closing '/'); out[0] is always '/'. */
static size_t segment_start(const char *out, size_t end)
{
    size_t k = end;
    while (k > 0 && out[k - 1] != '/') k--;
    return k;
}

static gh_path_status fail(char *out, size_t *out_len, gh_path_status st)
{
    out[0] = '\0';
    *out_len = 0;
    return st;
}

/* out is kept as "/" followed by "seg/" for each kept segment, so popping a
 * segment for ".." is a scan back to the previous '/'. The slash after the
 * last segment is dropped at the end unless the input's last segment was
 * empty or a dot segment (which both leave a trailing slash). */
gh_path_status gh_path_normalize(const char *in, size_t len, char *out, size_t *out_len)
{
    if (len == 0 || in[0] != '/') return fail(out, out_len, GH_PATH_NOT_ABSOLUTE);

    out[0] = '/';
    size_t w = 1;
    bool last_kept = false;
    for (size_t i = 1; i <= len;) {
        size_t end = i;
        while (end < len && in[end] != '/') end++;

        size_t d;
        gh_path_status st = decode_segment(in + i, end - i, out + w, &d);
        if (st != GH_PATH_OK) return fail(out, out_len, st);
        i = end + 1;

        last_kept = false;
        if (d == 0 || (d == 1 && out[w] == '.')) continue;
        if (d == 2 && out[w] == '.' && out[w + 1] == '.') {
            if (w == 1) return fail(out, out_len, GH_PATH_ABOVE_ROOT);
            w = segment_start(out, w - 1);
            continue;
        }
        w += d;
        out[w++] = '/';
        last_kept = true;
    }
    if (last_kept) w--;
    out[w] = '\0';
    *out_len = w;
    return GH_PATH_OK;
}

const char *gh_path_status_str(gh_path_status st)
{
    switch (st) {
    case GH_PATH_OK:
        return "ok";
    case GH_PATH_NOT_ABSOLUTE:
        return "path must start with '/'";
    case GH_PATH_BAD_ENCODING:
        return "malformed percent-encoding in path";
    case GH_PATH_ENCODED_SLASH:
        return "encoded '/' or '\\' in path";
    case GH_PATH_CONTROL:
        return "control character in path";
    case GH_PATH_BACKSLASH:
        return "'\\' in path";
    case GH_PATH_PARAMS:
        return "';' path parameters are not allowed";
    case GH_PATH_ABOVE_ROOT:
        return "path climbs above the root";
    case GH_PATH_BAD_CHAR:
        return "space, '#' or '?' in path";
    }
    return "invalid path";
}
