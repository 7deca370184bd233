/* Strict unpadded base64url decoding (RFC 4648 section 5), table-driven. */
#include "b64url.h"

#include <stdint.h>

/* 0x80 marks a byte outside the alphabet; valid entries are 0..63. */
#define BAD 0x80

static const uint8_t dec[256] = {
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0x00 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0x10 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, 62,  BAD, BAD, /* 0x20 */
    52,  53,  54,  55,  56,  57,  58,  59,  60,  61,  BAD, BAD, BAD, BAD, BAD, BAD, /* 0x30 */
    BAD, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  /* 0x40 */
    15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  BAD, BAD, BAD, BAD, 63,  /* 0x50 */
    BAD, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  /* 0x60 */
    41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  BAD, BAD, BAD, BAD, BAD, /* 0x70 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0x80 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0x90 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xa0 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xb0 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xc0 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xd0 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xe0 */
    BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, /* 0xf0 */
};

/* The tail (2 or 3 characters) must leave its unused low bits zero, so that
 * each byte string has exactly one accepted spelling. */
static int decode_tail(const unsigned char *s, size_t rem, unsigned char *o)
{
    uint8_t a = dec[s[0]], b = dec[s[1]];
    if (rem == 2) {
        if ((a | b) & BAD || (b & 0x0f)) return -1;
        o[0] = (unsigned char)(a << 2 | b >> 4);
        return 1;
    }
    uint8_t c = dec[s[2]];
    if ((a | b | c) & BAD || (c & 0x03)) return -1;
    o[0] = (unsigned char)(a << 2 | b >> 4);
    o[1] = (unsigned char)(b << 4 | c >> 2);
    return 2;
}

int gh_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t full = len / 4, rem = len % 4;
    unsigned char *o = out;

    *out_len = 0;
    if (rem == 1) return -1;
    for (size_t i = 0; i < full; i++, s += 4, o += 3) {
        uint8_t a = dec[s[0]], b = dec[s[1]], c = dec[s[2]], d = dec[s[3]];
        if ((a | b | c | d) & BAD) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        o[0] = (unsigned char)(v >> 16);
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
    }
    if (rem) {
        int n = decode_tail(s, rem, o);
        if (n < 0) return -1;
        o += n;
    }
    *out_len = (size_t)(o - out);
    return 0;
}
