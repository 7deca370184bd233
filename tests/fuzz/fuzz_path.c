/* Fuzz target for path.c: whatever gh_path_normalize accepts must come out
 * in the one canonical spelling the router and the upstream both read. */
#include <stdbool.h>
#include <string.h>

#include "fuzz_check.h"
#include "path.h"

/* True when the n bytes at s contain the NUL-terminated needle. */
static bool contains(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0) return true;
    return false;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hex_val(char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Every escape left in a normalised path is "%XX" in upper case and names a
 * byte that had to stay encoded: not unreserved, not '/', '\' nor control. */
static void check_escapes(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') continue;
        FUZZ_CHECK(i + 2 < n && is_upper_hex(s[i + 1]) && is_upper_hex(s[i + 2]));
        unsigned char c = (unsigned char)(hex_val(s[i + 1]) << 4 | hex_val(s[i + 2]));
        FUZZ_CHECK(!is_unreserved(c));
        FUZZ_CHECK(c != '/' && c != '\\' && c >= 0x20 && c != 0x7f);
        i += 2;
    }
}

/* The invariants of a path gh_path_normalize returned with GH_PATH_OK. */
static void check_normal(const char *out, size_t out_len, size_t in_len)
{
    FUZZ_CHECK(out_len >= 1 && out_len <= in_len);
    FUZZ_CHECK(out[0] == '/');
    FUZZ_CHECK(out[out_len] == '\0' && strlen(out) == out_len);
    FUZZ_CHECK(!contains(out, out_len, "//"));
    FUZZ_CHECK(!contains(out, out_len, "/./"));
    FUZZ_CHECK(!contains(out, out_len, "/../"));
    FUZZ_CHECK(!ends_with(out, out_len, "/."));
    FUZZ_CHECK(!ends_with(out, out_len, "/.."));
    for (size_t i = 0; i < out_len; i++) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        FUZZ_CHECK(c != '\\' && c != ';' && c != ' ' && c != '#' && c != '?');
    }
    static const char *const escapes[] = {"%2F", "%2f", "%5C", "%5c", "%2E", "%2e"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
        FUZZ_CHECK(!contains(out, out_len, escapes[i]));
    check_escapes(out, out_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *out = malloc(size + 1);
    char *again = malloc(size + 1);
    char *inplace = malloc(size + 1);
    FUZZ_CHECK(out && again && inplace);

    size_t out_len = 1234;
    gh_path_status st = gh_path_normalize(in, size, out, &out_len);
    const char *why = gh_path_status_str(st);
    FUZZ_CHECK(why != NULL && why[0] != '\0');

    /* In place must give the same answer as into a separate buffer. */
    if (size) memcpy(inplace, in, size);
    size_t inplace_len = 1234;
    gh_path_status inplace_st = gh_path_normalize(inplace, size, inplace, &inplace_len);
    FUZZ_CHECK(inplace_st == st && inplace_len == out_len);

    if (st != GH_PATH_OK) {
        FUZZ_CHECK(out_len == 0 && out[0] == '\0' && inplace[0] == '\0');
        FUZZ_CHECK(strcmp(why, "ok") != 0);
    } else {
        check_normal(out, out_len, size);
        FUZZ_CHECK(memcmp(inplace, out, out_len + 1) == 0);
        /* Idempotent: a normalised path normalises to itself. */
        size_t again_len = 0;
        FUZZ_CHECK(gh_path_normalize(out, out_len, again, &again_len) == GH_PATH_OK);
        FUZZ_CHECK(again_len == out_len && memcmp(again, out, out_len + 1) == 0);
    }
    free(out);
    free(again);
    free(inplace);
    return 0;
}
