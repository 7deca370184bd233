/* HTTP header rules a proxy applies: pure, no I/O. */
#ifndef GH_HEADERS_H
#define GH_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Case-insensitive equality of a (ptr, len) name with a NUL-terminated one. */
bool gh_hdr_eq(const char *name, size_t len, const char *lit);

/* True for a valid field name (RFC 9110 token, non-empty). */
bool gh_hdr_name_valid(const char *name, size_t len);

/* True for a field value with no NUL, CR, LF or other control byte but HTAB
 * (so obs-fold and smuggled line breaks are refused). */
bool gh_hdr_value_valid(const char *value, size_t len);

/* Hop-by-hop headers a proxy never forwards: Connection, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-* (RFC 9110 7.6.1). */
bool gh_hdr_is_hop_by_hop(const char *name, size_t len);

/* Set of names listed in Connection headers, to be dropped as well. */
#define GH_CONN_TOKENS_MAX 16
typedef struct {
    struct {
        const char *p;
        size_t len;
    } tok[GH_CONN_TOKENS_MAX];
    int n;
    bool close;      /* "close" was listed */
    bool keep_alive; /* "keep-alive" was listed */
    bool upgrade;    /* "upgrade" was listed */
    bool overflow;   /* more than GH_CONN_TOKENS_MAX tokens */
} gh_conn_tokens_t;

/* Adds the comma-separated tokens of one Connection header value to a set
 * that starts zeroed; call once per Connection header. Optional whitespace
 * around tokens and empty list elements (", ,") are skipped, as are elements
 * that are not tokens (they name no header) and repeats. Tokens point into
 * value, which must outlive the set. Past GH_CONN_TOKENS_MAX names, overflow
 * is set and further names are not stored (the flags still are): the caller
 * should refuse the request, since it cannot drop every listed header. The
 * caller drops only client-sent headers so named, never the ones it adds. */
void gh_conn_tokens_add(gh_conn_tokens_t *set, const char *value, size_t len);

/* True when name was listed in the set (case-insensitive). */
bool gh_conn_tokens_has(const gh_conn_tokens_t *set, const char *name, size_t len);

/* True for a Host value that is a valid uri-host [ ":" port ] (RFC 9112
 * 3.2, RFC 3986 3.2.2): a reg-name, IPv4 or [IPv6] literal, an optional
 * decimal port; no userinfo, path, spaces or second colon. Empty is valid
 * (an authority-less target). */
bool gh_host_valid(const char *host, size_t len);

/* A client-supplied X-Request-Id is kept when 1..128 bytes of
 * [A-Za-z0-9._:-]; anything else is replaced by a generated one. */
bool gh_request_id_valid(const char *id, size_t len);

/* An IPv4 or IPv6 network: "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8". */
typedef struct {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} gh_cidr_t;

/* Parses a CIDR (a bare address is a /32 or /128). The prefix is decimal
 * without sign or leading zeros; host bits past the prefix are cleared
 * ("10.1.2.3/8" is 10.0.0.0/8). Returns 0 or -1. */
int gh_cidr_parse(const char *s, gh_cidr_t *out);

/* True when the socket address (struct sockaddr_in/_in6) is inside the
 * network. An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d)
 * are the same address: either is inside an IPv4 network holding a.b.c.d
 * and an IPv6 network holding ::ffff:a.b.c.d. Other families never match. */
bool gh_cidr_contains(const gh_cidr_t *net, const struct sockaddr *sa);

#endif
