/* Request-path normalisation: pure, no I/O. */
#ifndef GH_PATH_H
#define GH_PATH_H

#include <stddef.h>

/* Outcome of normalising a request path; each maps to a 400 detail. */
typedef enum {
    GH_PATH_OK = 0,
    GH_PATH_NOT_ABSOLUTE,  /* does not start with '/' */
    GH_PATH_BAD_ENCODING,  /* '%' not followed by two hex digits */
    GH_PATH_ENCODED_SLASH, /* %2F or %5C: would change segment boundaries */
    GH_PATH_CONTROL,       /* NUL or other control byte (incl. HTAB, DEL), raw or encoded */
    GH_PATH_BACKSLASH,     /* raw '\' */
    GH_PATH_PARAMS,        /* ';' path parameters */
    GH_PATH_ABOVE_ROOT,    /* '..' would climb above '/' */
    GH_PATH_BAD_CHAR,      /* raw SP, '#' or '?': the upstream would cut the path there */
} gh_path_status;

/* Normalises the path part of an origin-form target (no query) into out.
 * Decodes percent-encoded unreserved characters (so %2e is '.'), upper-cases
 * the hex of every escape it keeps, removes dot segments (RFC 3986 5.2.4)
 * and merges duplicate slashes. Decoding happens before dot-segment removal,
 * so "%2e%2E" is "..". Refuses, rather than guesses, every spelling that
 * could make two parties disagree on the segments; the first problem found
 * scanning left to right is returned. A trailing slash is kept ("/a/b/",
 * "/a/b/." -> "/a/b/", "/a/b/.." -> "/a/"); raw bytes >= 0x80 pass through.
 * out must hold len + 1 bytes and may be in itself (in-place); the result is
 * never longer than the input. *out_len gets the result length (NUL added);
 * on failure out is "" and *out_len 0. */
gh_path_status gh_path_normalize(const char *in, size_t len, char *out, size_t *out_len);

/* A short, client-safe description of a status, for problem+json detail. */
const char *gh_path_status_str(gh_path_status st);

#endif
