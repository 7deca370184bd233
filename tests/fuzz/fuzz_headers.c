/* Fuzz target for headers.c: every predicate gets the whole input and must
 * agree with the rule headers.h states; CIDR parsing and Connection lists
 * get invariants that hold whatever the input. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/un.h>

#include "fuzz_check.h"
#include "headers.h"

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool ref_name_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return false;
    return n > 0;
}

static bool eq_lit(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && ascii_caseeq(s, lit, n);
}

/* Field values: no control byte but HTAB, so no CR, LF or NUL either. */
static void check_value(const char *s, size_t n)
{
    bool want = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) want = false;
    }
    bool got = gh_hdr_value_valid(s, n);
    FUZZ_CHECK(got == want);
    if (got) FUZZ_CHECK(!memchr(s, '\r', n) && !memchr(s, '\n', n) && !memchr(s, '\0', n));
}

static void check_names(const char *s, size_t n)
{
    FUZZ_CHECK(gh_hdr_name_valid(s, n) == ref_name_valid(s, n));
    static const char *const hop[] = {
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    };
    bool want = n >= 6 && ascii_caseeq(s, "proxy-", 6);
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++) want |= eq_lit(s, n, hop[i]);
    FUZZ_CHECK(gh_hdr_is_hop_by_hop(s, n) == want);
}

static void check_request_id(const char *s, size_t n)
{
    bool want = n >= 1 && n <= 128;
    for (size_t i = 0; i < n && want; i++) {
        unsigned char c = (unsigned char)s[i];
        want = is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
    }
    bool got = gh_request_id_valid(s, n);
    FUZZ_CHECK(got == want);
    if (got) FUZZ_CHECK(n >= 1 && n <= 128);
}

/* A valid Host is uri-host [":" port]: only URI host characters, at most
 * one colon outside brackets followed by digits, no userinfo or path. */
static void check_host(const char *s, size_t n)
{
    if (!gh_host_valid(s, n)) return;
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        FUZZ_CHECK(close != NULL);
        char lit[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        size_t ll = (size_t)(close - s - 1);
        FUZZ_CHECK(ll > 0 && ll < sizeof(lit)); /* a real IPv6 literal, nothing else */
        memcpy(lit, s + 1, ll);
        lit[ll] = '\0';
        FUZZ_CHECK(inet_pton(AF_INET6, lit, &a6) == 1);
        i = ll + 2;
    } else {
        for (; i < n && s[i] != ':'; i++) {
            FUZZ_CHECK(is_alnum((unsigned char)s[i]) ||
                       (s[i] != '\0' && strchr("-._~%!$&'()*+,;=", s[i])));
            if (s[i] == '%') /* pct-encoded: exactly two hex digits follow */
                FUZZ_CHECK(i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
                           isxdigit((unsigned char)s[i + 2]));
        }
    }
    if (i == n) return;
    FUZZ_CHECK(s[i] == ':');
    for (i++; i < n; i++) FUZZ_CHECK(s[i] >= '0' && s[i] <= '9');
}

/* Feeds each '\n'-separated line as one Connection header and compares the
 * set with the rules: trimmed tokens, repeats and non-tokens skipped, the
 * first GH_CONN_TOKENS_MAX distinct names stored, overflow past that. Only
 * one distinct name past the limit is recorded: it is all overflow needs. */
static void check_conn_tokens(const char *s, size_t n)
{
    struct {
        const char *p;
        size_t len;
    } seen[GH_CONN_TOKENS_MAX + 1];
    size_t nseen = 0;
    bool close = false, keep_alive = false, upgrade = false;
    gh_conn_tokens_t set = {0};

    for (size_t line = 0; line <= n;) {
        const char *nl = memchr(s + line, '\n', n - line);
        size_t end = nl ? (size_t)(nl - s) : n;
        gh_conn_tokens_add(&set, s + line, end - line);
        for (size_t a = line; a <= end;) {
            const char *comma = memchr(s + a, ',', end - a);
            size_t b = comma ? (size_t)(comma - s) : end, e = b;
            size_t start = a;
            while (start < e && (s[start] == ' ' || s[start] == '\t')) start++;
            while (e > start && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
            const char *tok = s + start;
            size_t len = e - start;
            a = b + 1;
            if (!ref_name_valid(tok, len)) continue;
            close |= eq_lit(tok, len, "close");
            keep_alive |= eq_lit(tok, len, "keep-alive");
            upgrade |= eq_lit(tok, len, "upgrade");
            bool dup = false;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = seen[k].len == len && ascii_caseeq(seen[k].p, tok, len);
            if (dup || nseen == GH_CONN_TOKENS_MAX + 1) continue;
            seen[nseen].p = tok;
            seen[nseen++].len = len;
        }
        line = end + 1;
    }

    FUZZ_CHECK(set.n >= 0 && set.n <= GH_CONN_TOKENS_MAX);
    FUZZ_CHECK(set.overflow == (nseen > GH_CONN_TOKENS_MAX));
    FUZZ_CHECK((size_t)set.n == (set.overflow ? GH_CONN_TOKENS_MAX : nseen));
    FUZZ_CHECK(set.close == close && set.keep_alive == keep_alive && set.upgrade == upgrade);
    for (int i = 0; i < set.n; i++) {
        FUZZ_CHECK(set.tok[i].p == seen[i].p && set.tok[i].len == seen[i].len);
        FUZZ_CHECK(gh_conn_tokens_has(&set, set.tok[i].p, set.tok[i].len));
    }
    for (size_t k = (size_t)set.n; k < nseen; k++)
        FUZZ_CHECK(!gh_conn_tokens_has(&set, seen[k].p, seen[k].len));
}

static struct sockaddr_storage sa_v4(const uint8_t a[4])
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, a, 4);
    return ss;
}

static struct sockaddr_storage sa_v6(const uint8_t a[16])
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, a, 16);
    return ss;
}

static bool contains(const gh_cidr_t *net, const struct sockaddr_storage *ss)
{
    return gh_cidr_contains(net, (const struct sockaddr *)ss);
}

/* An IPv4 address and its ::ffff:a.b.c.d form are one address (headers.h). */
static void check_v4_mapped(const gh_cidr_t *net, const uint8_t v4[4])
{
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(mapped + 12, v4, 4);
    struct sockaddr_storage a = sa_v4(v4), b = sa_v6(mapped);
    FUZZ_CHECK(contains(net, &a) == contains(net, &b));
}

/* A network holds its own address, every address differing only in host
 * bits, and none differing in a prefix bit. */
static void check_cidr_members(const gh_cidr_t *net)
{
    int bytes = net->family == AF_INET ? 4 : 16, max = bytes * 8;
    uint8_t a[16];
    memcpy(a, net->addr, 16);
    struct sockaddr_storage self = bytes == 4 ? sa_v4(a) : sa_v6(a);
    FUZZ_CHECK(contains(net, &self));

    a[bytes - 1] ^= 1;
    struct sockaddr_storage last = bytes == 4 ? sa_v4(a) : sa_v6(a);
    FUZZ_CHECK(contains(net, &last) == (net->prefix < max));
    a[bytes - 1] ^= 1;

    if (net->prefix > 0) {
        int bit = net->prefix - 1;
        a[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
        struct sockaddr_storage out = bytes == 4 ? sa_v4(a) : sa_v6(a);
        FUZZ_CHECK(!contains(net, &out));
    }
    if (bytes == 4) check_v4_mapped(net, net->addr);
    if (bytes == 16) check_v4_mapped(net, net->addr + 12);
}

static void check_cidr(const char *s, size_t n)
{
    char *z = malloc(n + 1);
    FUZZ_CHECK(z != NULL);
    memcpy(z, s, n);
    z[n] = '\0';
    gh_cidr_t net;
    memset(&net, 0xa5, sizeof net);
    int rc = gh_cidr_parse(z, &net);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == -1) {
        free(z);
        return;
    }
    FUZZ_CHECK(net.family == AF_INET || net.family == AF_INET6);
    int max = net.family == AF_INET ? 32 : 128;
    FUZZ_CHECK(net.prefix >= 0 && net.prefix <= max);
    for (int bit = net.prefix; bit < 128; bit++)
        FUZZ_CHECK(!(net.addr[bit / 8] & (0x80u >> (bit % 8))));

    /* The address part is one inet_pton accepts, masked to the prefix. */
    char *slash = strchr(z, '/');
    if (slash) *slash = '\0';
    uint8_t addr[16] = {0};
    FUZZ_CHECK(inet_pton(net.family, z, addr) == 1);
    for (int bit = net.prefix; bit < 128; bit++) addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    FUZZ_CHECK(memcmp(addr, net.addr, 16) == 0);
    FUZZ_CHECK(slash || net.prefix == max);

    /* Printing it back and parsing that gives the same network. */
    char text[INET6_ADDRSTRLEN + 8];
    FUZZ_CHECK(inet_ntop(net.family, net.addr, text, INET6_ADDRSTRLEN) != NULL);
    snprintf(text + strlen(text), sizeof text - strlen(text), "/%d", net.prefix);
    gh_cidr_t again;
    FUZZ_CHECK(gh_cidr_parse(text, &again) == 0);
    FUZZ_CHECK(again.family == net.family && again.prefix == net.prefix);
    FUZZ_CHECK(memcmp(again.addr, net.addr, 16) == 0);

    check_cidr_members(&net);
    static const uint8_t fixed_v4[][4] = {{127, 0, 0, 1}, {10, 1, 2, 3}, {0, 0, 0, 0}};
    for (size_t i = 0; i < sizeof fixed_v4 / sizeof fixed_v4[0]; i++)
        check_v4_mapped(&net, fixed_v4[i]);
    static const uint8_t v6_loopback[16] = {[15] = 1};
    struct sockaddr_storage lo6 = sa_v6(v6_loopback);
    if (net.family == AF_INET) FUZZ_CHECK(!contains(&net, &lo6));
    if (net.prefix == 0 && net.family == AF_INET6) FUZZ_CHECK(contains(&net, &lo6));

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    FUZZ_CHECK(!gh_cidr_contains(&net, (const struct sockaddr *)&un));
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_value(s, size);
    check_names(s, size);
    check_request_id(s, size);
    check_host(s, size);
    check_conn_tokens(s, size);
    check_cidr(s, size);
    return 0;
}
