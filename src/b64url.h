/* Strict base64url (RFC 4648 section 5) as JWS requires: pure, no I/O. */
#ifndef GH_B64URL_H
#define GH_B64URL_H

#include <stddef.h>

/* Bytes gh_b64url_decode may write for len input characters. */
#define GH_B64URL_DECODED_MAX(len) (((len) / 4) * 3 + 3)

/* Decodes len characters of the unpadded base64url alphabet into out
 * (which holds GH_B64URL_DECODED_MAX(len) bytes) and sets *out_len.
 * Returns 0, or -1 for any other byte ('=', '+', '/', whitespace, NUL), a
 * length of 1 mod 4, or non-zero unused bits in the last character (so
 * every byte string has exactly one accepted spelling). */
int gh_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len);

#endif
