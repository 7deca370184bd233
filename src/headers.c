/* HTTP header rules a proxy applies: pure, no I/O. */
#include "headers.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#define GH_REQUEST_ID_MAX 128

/* The first 12 bytes of an IPv4-mapped IPv6 address (::ffff:0:0/96). */
static const uint8_t V4MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* True when n bytes of a and b are equal ignoring ASCII case. */
static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return false;
    return true;
}

bool gh_hdr_eq(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && ascii_caseeq(name, lit, len);
}

/* RFC 9110 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~". */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool gh_hdr_name_valid(const char *name, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)name[i])) return false;
    return true;
}

bool gh_hdr_value_valid(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

bool gh_hdr_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const names[] = {
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (gh_hdr_eq(name, len, names[i])) return true;
    return len >= 6 && ascii_caseeq(name, "proxy-", 6);
}

bool gh_conn_tokens_has(const gh_conn_tokens_t *set, const char *name, size_t len)
{
    for (int i = 0; i < set->n; i++)
        if (set->tok[i].len == len && ascii_caseeq(set->tok[i].p, name, len)) return true;
    return false;
}

/* Records one trimmed list element; see gh_conn_tokens_add for the rules. */
static void conn_token_add(gh_conn_tokens_t *set, const char *p, size_t len)
{
    if (!gh_hdr_name_valid(p, len)) return;
    if (gh_hdr_eq(p, len, "close")) set->close = true;
    if (gh_hdr_eq(p, len, "keep-alive")) set->keep_alive = true;
    if (gh_hdr_eq(p, len, "upgrade")) set->upgrade = true;
    if (gh_conn_tokens_has(set, p, len)) return;
    if (set->n == GH_CONN_TOKENS_MAX) {
        set->overflow = true;
        return;
    }
    set->tok[set->n].p = p;
    set->tok[set->n].len = len;
    set->n++;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

void gh_conn_tokens_add(gh_conn_tokens_t *set, const char *value, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && value[i] != ',') i++;
        size_t end = i++;
        while (start < end && is_ows(value[start])) start++;
        while (end > start && is_ows(value[end - 1])) end--;
        conn_token_add(set, value + start, end - start);
    }
}

bool gh_request_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > GH_REQUEST_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* The prefix length in s (decimal, no sign, no leading zero), or -1 when
 * it is malformed or above max. */
static int parse_prefix(const char *s, int max)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* Clears the bits of addr past the first prefix bits. */
static void clear_host_bits(uint8_t addr[16], int prefix)
{
    for (int bit = prefix; bit < 128; bit++) addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
}

int gh_cidr_parse(const char *s, gh_cidr_t *out)
{
    char buf[INET6_ADDRSTRLEN];
    if (!s || !out) return -1;
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof buf) return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';

    gh_cidr_t c = {0};
    c.family = memchr(buf, ':', alen) ? AF_INET6 : AF_INET;
    if (inet_pton(c.family, buf, c.addr) != 1) return -1;
    int max = c.family == AF_INET ? 32 : 128;
    c.prefix = slash ? parse_prefix(slash + 1, max) : max;
    if (c.prefix < 0) return -1;
    clear_host_bits(c.addr, c.prefix);
    *out = c;
    return 0;
}

/* Copies sa's address into addr in the given family's form: an IPv4
 * address becomes ::ffff:a.b.c.d for IPv6, an IPv4-mapped IPv6 address
 * becomes a.b.c.d for IPv4. Returns false when there is no such form. */
static bool address_as(const struct sockaddr *sa, int family, uint8_t addr[16])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        const uint8_t *b = (const uint8_t *)&in->sin_addr;
        if (family == AF_INET) {
            memcpy(addr, b, 4);
            return true;
        }
        if (family != AF_INET6) return false;
        memcpy(addr, V4MAPPED_PREFIX, 12);
        memcpy(addr + 12, b, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        if (family == AF_INET6) {
            memcpy(addr, b, 16);
            return true;
        }
        if (family != AF_INET || memcmp(b, V4MAPPED_PREFIX, 12) != 0) return false;
        memcpy(addr, b + 12, 4);
        return true;
    }
    return false;
}

bool gh_cidr_contains(const gh_cidr_t *net, const struct sockaddr *sa)
{
    uint8_t addr[16] = {0};
    if (!net || !sa || net->prefix < 0) return false;
    if (net->prefix > (net->family == AF_INET ? 32 : 128)) return false;
    if (!address_as(sa, net->family, addr)) return false;
    int full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, addr, (size_t)full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return ((net->addr[full] ^ addr[full]) & mask) == 0;
}

/* reg-name characters: unreserved, pct-encoded's '%', and sub-delims. */
static bool reg_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~%!$&'()*+,;=", c) != NULL;
}

/* An IPv6 address literal between the brackets of [ ... ]. */
static bool ipv6_literal(const char *p, size_t len)
{
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (len == 0 || len >= sizeof(tmp)) return false;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

bool gh_host_valid(const char *host, size_t len)
{
    size_t i = 0;
    if (len > 0 && host[0] == '[') {
        const char *end = memchr(host, ']', len);
        if (!end || !ipv6_literal(host + 1, (size_t)(end - host - 1))) return false;
        i = (size_t)(end - host) + 1;
    } else {
        for (; i < len && host[i] != ':'; i++) {
            unsigned char c = (unsigned char)host[i];
            if (!reg_name_char(c) || c == '\0') return false;
            if (c == '%' && (i + 2 >= len || !isxdigit((unsigned char)host[i + 1]) ||
                             !isxdigit((unsigned char)host[i + 2])))
                return false; /* pct-encoded is exactly %XX */
        }
    }
    if (i == len) return true;
    if (host[i] != ':') return false;
    for (i++; i < len; i++)
        if (host[i] < '0' || host[i] > '9') return false;
    return true;
}
