/* Unit tests for headers.c: field rules, Connection tokens, request ids, CIDRs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "headers.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_hdr_eq(void **state)
{
    (void)state;
    assert_true(gh_hdr_eq(S("Host"), "host"));
    assert_true(gh_hdr_eq(S("HOST"), "host"));
    assert_true(gh_hdr_eq(S("x-forwarded-for"), "X-Forwarded-For"));
    assert_true(gh_hdr_eq("", 0, ""));
    assert_true(gh_hdr_eq(S("Hostname"), "Hostname"));
    assert_false(gh_hdr_eq(S("Hos"), "host"));
    assert_false(gh_hdr_eq(S("Hosts"), "host"));
    assert_false(gh_hdr_eq("Hostx", 4 + 1, "host"));
    assert_true(gh_hdr_eq("Hostx", 4, "host")); /* len bounds the name */
    assert_false(gh_hdr_eq(S("Ho_t"), "ho-t"));
    assert_false(gh_hdr_eq(S("\xc4\xb0"), "\xc4\xb1")); /* no locale folding */
    assert_false(gh_hdr_eq(S("@"), "`"));               /* '@' | 0x20 is '`' */
    assert_false(gh_hdr_eq(S("["), "{"));
}

static bool is_tchar_ref(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void test_name_valid(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char b[3] = {'a', (char)c, 'z'};
        if (gh_hdr_name_valid(b, 3) != is_tchar_ref(c)) fail_msg("byte 0x%02x", c);
    }
    assert_true(gh_hdr_name_valid(S("Content-Type")));
    assert_true(gh_hdr_name_valid(S("!#$%&'*+-.^_`|~09AZaz")));
    assert_true(gh_hdr_name_valid(S("x")));
    assert_false(gh_hdr_name_valid("", 0));
    assert_false(gh_hdr_name_valid(S("Host ")));
    assert_false(gh_hdr_name_valid(S(" Host")));
    assert_false(gh_hdr_name_valid(S("Host:")));
    assert_false(gh_hdr_name_valid(S("Ho st")));
    assert_false(gh_hdr_name_valid(S("Host\t")));
    assert_false(gh_hdr_name_valid(S("X-A\0B")));
    assert_false(gh_hdr_name_valid(S("X-\xc3\xa9")));
    assert_false(gh_hdr_name_valid(S("\"quoted\"")));
    assert_false(gh_hdr_name_valid(S("a(b)")));
    assert_false(gh_hdr_name_valid(S("a/b")));
}

static void test_value_valid(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char b[3] = {'a', (char)c, 'z'};
        bool want = c == '\t' || (c >= 0x20 && c != 0x7f);
        if (gh_hdr_value_valid(b, 3) != want) fail_msg("byte 0x%02x", c);
    }
    assert_true(gh_hdr_value_valid("", 0));
    assert_true(gh_hdr_value_valid(S("text/html; charset=utf-8")));
    assert_true(gh_hdr_value_valid(S("a\tb")));
    assert_true(gh_hdr_value_valid(S(" padded ")));
    assert_true(gh_hdr_value_valid(S("caf\xc3\xa9"))); /* obs-text */
    assert_false(gh_hdr_value_valid(S("a\r\nX-Evil: 1")));
    assert_false(gh_hdr_value_valid(S("a\r\n b"))); /* obs-fold */
    assert_false(gh_hdr_value_valid(S("a\nb")));
    assert_false(gh_hdr_value_valid(S("a\rb")));
    assert_false(gh_hdr_value_valid(S("a\0b")));
    assert_false(gh_hdr_value_valid(S("\0")));
    assert_false(gh_hdr_value_valid(S("\x7f")));
    assert_true(gh_hdr_value_valid("ab\r", 2)); /* len bounds the value */
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "Connection", "connection", "CONNECTION",       "Keep-Alive",          "keep-alive",
        "TE",         "te",         "Trailer",          "Transfer-Encoding",   "transfer-encoding",
        "Upgrade",    "upgrade",    "Proxy-Connection", "Proxy-Authorization", "proxy-authenticate",
        "PROXY-X",    "Proxy-",
    };
    static const char *const no[] = {
        "Host",
        "Content-Length",
        "Content-Type",
        "Expect",
        "Trailers",
        "Tee",
        "T",
        "Connections",
        "Keep-Alive-X",
        "Upgrade-Insecure-Requests",
        "Proxy",
        "Proxy_Auth",
        "X-Proxy-Id",
        "Transfer-Encodings",
        "Authorization",
        "X-Forwarded-For",
        "",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!gh_hdr_is_hop_by_hop(yes[i], strlen(yes[i]))) fail_msg("%s not hop-by-hop", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (gh_hdr_is_hop_by_hop(no[i], strlen(no[i]))) fail_msg("%s hop-by-hop", no[i]);
}

/* Asserts the set holds exactly the given names, in order. */
static void expect_tokens(const gh_conn_tokens_t *set, const char *const *names, int n)
{
    assert_int_equal(set->n, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(set->tok[i].len, strlen(names[i]));
        assert_memory_equal(set->tok[i].p, names[i], set->tok[i].len);
    }
}

static void test_conn_tokens_basic(void **state)
{
    (void)state;
    gh_conn_tokens_t set = {0};
    const char v[] = "close";
    gh_conn_tokens_add(&set, v, sizeof v - 1);
    assert_true(set.close);
    assert_false(set.keep_alive);
    assert_false(set.upgrade);
    assert_false(set.overflow);
    expect_tokens(&set, (const char *[]){"close"}, 1);
    assert_ptr_equal(set.tok[0].p, v); /* points into the value */

    gh_conn_tokens_t s2 = {0};
    gh_conn_tokens_add(&s2, S("Keep-Alive, Upgrade, X-Secret"));
    assert_false(s2.close);
    assert_true(s2.keep_alive);
    assert_true(s2.upgrade);
    expect_tokens(&s2, (const char *[]){"Keep-Alive", "Upgrade", "X-Secret"}, 3);
    assert_true(gh_conn_tokens_has(&s2, S("x-secret")));
    assert_true(gh_conn_tokens_has(&s2, S("X-SECRET")));
    assert_true(gh_conn_tokens_has(&s2, S("upgrade")));
    assert_false(gh_conn_tokens_has(&s2, S("X-Secre")));
    assert_false(gh_conn_tokens_has(&s2, S("X-Secrets")));
    assert_false(gh_conn_tokens_has(&s2, S("close")));
    assert_false(gh_conn_tokens_has(&s2, "", 0));
}

static void test_conn_tokens_whitespace_and_empty(void **state)
{
    (void)state;
    gh_conn_tokens_t set = {0};
    gh_conn_tokens_add(&set, S(" ,\t, foo ,\tbar\t,, ,baz,"));
    expect_tokens(&set, (const char *[]){"foo", "bar", "baz"}, 3);

    gh_conn_tokens_t empty = {0};
    gh_conn_tokens_add(&empty, "", 0);
    gh_conn_tokens_add(&empty, S(","));
    gh_conn_tokens_add(&empty, S(" , ,\t,"));
    gh_conn_tokens_add(&empty, S("   "));
    assert_int_equal(empty.n, 0);
    assert_false(empty.close || empty.keep_alive || empty.upgrade || empty.overflow);

    gh_conn_tokens_t cl = {0};
    gh_conn_tokens_add(&cl, S("\t CLOSE \t"));
    assert_true(cl.close);
    expect_tokens(&cl, (const char *[]){"CLOSE"}, 1);
}

/* Elements that are not tokens name no header: skipped, never stored. */
static void test_conn_tokens_invalid_elements(void **state)
{
    (void)state;
    gh_conn_tokens_t set = {0};
    gh_conn_tokens_add(&set, S("foo bar, \"close\", a:b, ok, x\x01y, caf\xc3\xa9, k=v"));
    expect_tokens(&set, (const char *[]){"ok"}, 1);
    assert_false(set.close);
    gh_conn_tokens_add(&set, "clo\0se", 6);
    assert_false(set.close);
    assert_int_equal(set.n, 1);
}

static void test_conn_tokens_repeats_and_headers(void **state)
{
    (void)state;
    gh_conn_tokens_t set = {0};
    gh_conn_tokens_add(&set, S("foo, FOO, foo"));
    gh_conn_tokens_add(&set, S("Foo, bar"));
    gh_conn_tokens_add(&set, S("close"));
    gh_conn_tokens_add(&set, S("Close"));
    expect_tokens(&set, (const char *[]){"foo", "bar", "close"}, 3);
    assert_true(set.close);
    /* len bounds the value: "foo, bar" cut to "foo, b" */
    gh_conn_tokens_t cut = {0};
    gh_conn_tokens_add(&cut, "foo, bar", 6);
    expect_tokens(&cut, (const char *[]){"foo", "b"}, 2);
}

static void test_conn_tokens_overflow(void **state)
{
    (void)state;
    char value[512] = "";
    for (int i = 0; i < GH_CONN_TOKENS_MAX; i++) {
        char t[16];
        snprintf(t, sizeof t, "%sx-%d", i ? ", " : "", i);
        strcat(value, t);
    }
    gh_conn_tokens_t set = {0};
    gh_conn_tokens_add(&set, value, strlen(value));
    assert_int_equal(set.n, GH_CONN_TOKENS_MAX);
    assert_false(set.overflow);               /* exactly the maximum fits */
    gh_conn_tokens_add(&set, S("x-0, X-15")); /* repeats take no room */
    assert_false(set.overflow);

    gh_conn_tokens_add(&set, S("x-16, upgrade, close, keep-alive"));
    assert_true(set.overflow);
    assert_int_equal(set.n, GH_CONN_TOKENS_MAX);
    assert_false(gh_conn_tokens_has(&set, S("x-16")));
    assert_true(gh_conn_tokens_has(&set, S("x-15")));
    assert_true(set.upgrade); /* flags are still set after overflow */
    assert_true(set.close);
    assert_true(set.keep_alive);
}

static void test_request_id(void **state)
{
    (void)state;
    char id[130];
    memset(id, 'a', sizeof id);
    assert_true(gh_request_id_valid(id, 1));
    assert_true(gh_request_id_valid(id, 128));
    assert_false(gh_request_id_valid(id, 129));
    assert_false(gh_request_id_valid(id, 0));
    assert_true(gh_request_id_valid(S("0123456789abcdef0123456789ABCDEF")));
    assert_true(gh_request_id_valid(S("req-1.2_3:4")));
    assert_true(gh_request_id_valid(S(".")));
    assert_true(gh_request_id_valid(S(":-_")));
    for (int c = 0; c < 256; c++) {
        char b[3] = {'a', (char)c, 'z'};
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
        if (gh_request_id_valid(b, 3) != want) fail_msg("byte 0x%02x", c);
    }
    assert_false(gh_request_id_valid(S("a b")));
    assert_false(gh_request_id_valid(S("a\r\nX-Evil: 1")));
    assert_false(gh_request_id_valid(S("a/b")));
    assert_false(gh_request_id_valid(S("a+b=")));
    assert_false(gh_request_id_valid(S("\"a\"")));
}

static void parse_ok(const char *s, int family, int prefix, const char *addr, int line)
{
    gh_cidr_t c;
    memset(&c, 0xa5, sizeof c);
    if (gh_cidr_parse(s, &c) != 0) fail_msg("line %d: parse(\"%s\") failed", line, s);
    assert_int_equal(c.family, family);
    assert_int_equal(c.prefix, prefix);
    uint8_t want[16] = {0};
    assert_int_equal(inet_pton(family, addr, want), 1);
    if (memcmp(c.addr, want, sizeof want) != 0)
        fail_msg("line %d: parse(\"%s\") address differs from %s", line, s, addr);
}

#define PARSE_OK(s, fam, prefix, addr) parse_ok(s, fam, prefix, addr, __LINE__)

static void test_cidr_parse_valid(void **state)
{
    (void)state;
    PARSE_OK("127.0.0.1", AF_INET, 32, "127.0.0.1");
    PARSE_OK("10.0.0.0/8", AF_INET, 8, "10.0.0.0");
    PARSE_OK("0.0.0.0/0", AF_INET, 0, "0.0.0.0");
    PARSE_OK("255.255.255.255/32", AF_INET, 32, "255.255.255.255");
    PARSE_OK("::1", AF_INET6, 128, "::1");
    PARSE_OK("::", AF_INET6, 128, "::");
    PARSE_OK("::/0", AF_INET6, 0, "::");
    PARSE_OK("fd00::/8", AF_INET6, 8, "fd00::");
    PARSE_OK("2001:DB8::/32", AF_INET6, 32, "2001:db8::");
    PARSE_OK("::ffff:10.0.0.0/104", AF_INET6, 104, "::ffff:10.0.0.0");
    /* host bits are cleared */
    PARSE_OK("10.1.2.3/8", AF_INET, 8, "10.0.0.0");
    PARSE_OK("192.168.1.255/23", AF_INET, 23, "192.168.0.0");
    PARSE_OK("10.1.2.3/0", AF_INET, 0, "0.0.0.0");
    PARSE_OK("fd12:3456::1/16", AF_INET6, 16, "fd12::");
    PARSE_OK("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", AF_INET6, 127,
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
}

static void test_cidr_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/8x",
        "10.0.0.0/8/9",
        "10.0.0.0/ 8",
        "10.0.0.0/1000",
        "10.0.0",
        "010.0.0.1",
        "10.0.0.256",
        " 10.0.0.1",
        "10.0.0.1 ",
        "localhost",
        "::1/129",
        "::1/",
        "fe80::1%eth0",
        "1::2::3",
        "[::1]",
        "::1/64/1",
        "10.0.0.0/4294967304",
        "0x0a.0.0.1",
        "0000:0000:0000:0000:0000:0000:0000:0000:0000/1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gh_cidr_t c = {.family = 77, .prefix = 77};
        if (gh_cidr_parse(bad[i], &c) != -1) fail_msg("parse(\"%s\") accepted", bad[i]);
        assert_int_equal(c.family, 77); /* out untouched on failure */
    }
    gh_cidr_t c;
    assert_int_equal(gh_cidr_parse(NULL, &c), -1);
    assert_int_equal(gh_cidr_parse("10.0.0.0/8", NULL), -1);
}

/* A socket address for an IP literal (v4 or v6). */
static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(443);
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(80);
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    }
    return ss;
}

static void check_contains(const char *cidr, const char *ip, bool want, int line)
{
    gh_cidr_t net;
    if (gh_cidr_parse(cidr, &net) != 0) fail_msg("line %d: parse(\"%s\") failed", line, cidr);
    struct sockaddr_storage ss = sa_of(ip);
    if (gh_cidr_contains(&net, (const struct sockaddr *)&ss) != want)
        fail_msg("line %d: %s %s %s", line, cidr, want ? "lacks" : "holds", ip);
}

#define IN(cidr, ip)  check_contains(cidr, ip, true, __LINE__)
#define OUT(cidr, ip) check_contains(cidr, ip, false, __LINE__)

static void test_cidr_v4_boundaries(void **state)
{
    (void)state;
    IN("0.0.0.0/0", "0.0.0.0");
    IN("0.0.0.0/0", "255.255.255.255");
    IN("0.0.0.0/0", "10.1.2.3");
    IN("10.0.0.0/8", "10.0.0.0");
    IN("10.0.0.0/8", "10.255.255.255");
    OUT("10.0.0.0/8", "9.255.255.255");
    OUT("10.0.0.0/8", "11.0.0.0");
    IN("10.0.0.0/9", "10.127.255.255");
    OUT("10.0.0.0/9", "10.128.0.0");
    IN("128.0.0.0/1", "200.0.0.1");
    OUT("128.0.0.0/1", "127.255.255.255");
    IN("192.168.1.0/24", "192.168.1.255");
    OUT("192.168.1.0/24", "192.168.2.0");
    IN("192.168.1.2/31", "192.168.1.3");
    OUT("192.168.1.2/31", "192.168.1.4");
    OUT("192.168.1.2/31", "192.168.1.1");
    IN("127.0.0.1", "127.0.0.1");
    IN("127.0.0.1/32", "127.0.0.1");
    OUT("127.0.0.1/32", "127.0.0.2");
    OUT("127.0.0.1/32", "127.0.0.0");
    OUT("127.0.0.1/32", "126.0.0.1");
    /* IPv4 networks never hold non-mapped IPv6 addresses */
    OUT("0.0.0.0/0", "::1");
    OUT("0.0.0.0/0", "::");
    OUT("10.0.0.0/8", "::10.1.2.3");      /* IPv4-compatible, not mapped */
    OUT("10.0.0.0/8", "::fffe:10.1.2.3"); /* one bit off the mapped prefix */
    OUT("10.0.0.0/8", "64:ff9b::10.1.2.3");
}

static void test_cidr_v6_boundaries(void **state)
{
    (void)state;
    IN("::/0", "::");
    IN("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    IN("::1", "::1");
    IN("::1/128", "::1");
    OUT("::1/128", "::2");
    OUT("::1/128", "::");
    IN("fd00::/8", "fdff:ffff::1");
    OUT("fd00::/8", "fe00::");
    OUT("fd00::/8", "fc00::");
    IN("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
    OUT("2001:db8::/32", "2001:db9::");
    IN("2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff");
    OUT("2001:db8::/64", "2001:db8:0:1::");
    IN("2001:db8::/127", "2001:db8::1");
    OUT("2001:db8::/127", "2001:db8::2");
    IN("8000::/1", "8000::");
    OUT("8000::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

/* An IPv4 address and its mapped IPv6 form are the same address. */
static void test_cidr_v4_mapped(void **state)
{
    (void)state;
    IN("10.0.0.0/8", "::ffff:10.1.2.3");
    IN("10.0.0.0/8", "::FFFF:10.255.255.255");
    OUT("10.0.0.0/8", "::ffff:11.0.0.0");
    IN("127.0.0.1", "::ffff:127.0.0.1");
    OUT("127.0.0.1", "::ffff:127.0.0.2");
    IN("0.0.0.0/0", "::ffff:1.2.3.4");
    IN("::ffff:0:0/96", "1.2.3.4");
    IN("::ffff:10.0.0.0/104", "10.9.8.7");
    OUT("::ffff:10.0.0.0/104", "11.9.8.7");
    IN("::ffff:127.0.0.1", "127.0.0.1");
    IN("::/0", "203.0.113.9");
    OUT("::1/128", "127.0.0.1");
    OUT("fd00::/8", "10.0.0.1");
}

static void test_cidr_odd_inputs(void **state)
{
    (void)state;
    gh_cidr_t net;
    assert_int_equal(gh_cidr_parse("0.0.0.0/0", &net), 0);
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    assert_false(gh_cidr_contains(&net, (const struct sockaddr *)&un));
    struct sockaddr_storage ss = sa_of("10.0.0.1");
    assert_false(gh_cidr_contains(NULL, (const struct sockaddr *)&ss));
    assert_false(gh_cidr_contains(&net, NULL));

    gh_cidr_t zero = {0}; /* no family */
    assert_false(gh_cidr_contains(&zero, (const struct sockaddr *)&ss));
    gh_cidr_t wide = net;
    wide.prefix = 33;
    assert_false(gh_cidr_contains(&wide, (const struct sockaddr *)&ss));
    wide.prefix = -1;
    assert_false(gh_cidr_contains(&wide, (const struct sockaddr *)&ss));
    assert_int_equal(gh_cidr_parse("::/0", &wide), 0);
    wide.prefix = 129;
    assert_false(gh_cidr_contains(&wide, (const struct sockaddr *)&ss));
}

#define HOST(lit) gh_host_valid(lit, sizeof(lit) - 1)

/* RFC 9112 3.2: Host is uri-host [":" port]; routing keys on it, so what
 * is not a host is refused rather than guessed at. */
static void test_host_valid(void **state)
{
    (void)state;
    assert_true(HOST(""));
    assert_true(HOST("api.example.com"));
    assert_true(HOST("API.Example.COM:8080"));
    assert_true(HOST("127.0.0.1:80"));
    assert_true(HOST("[::1]"));
    assert_true(HOST("[::1]:8080"));
    assert_true(HOST("[2001:db8::ff00:42:8329]"));
    assert_true(HOST("my_service.internal"));
    assert_true(HOST("a%2Db"));
    assert_true(HOST("host:"));
    assert_false(HOST("a b"));
    assert_false(HOST("user@evil.example"));
    assert_false(HOST("evil.example/x"));
    assert_false(HOST("evil.example:80:81"));
    assert_false(HOST("evil.example:8o"));
    assert_false(HOST("a%zz"));
    assert_false(HOST("a%2"));
    assert_false(HOST("[]"));
    assert_false(HOST("[.]"));
    assert_false(HOST("[cafe.de]"));
    assert_false(HOST("[127.0.0.1]"));
    assert_false(HOST("[:::::::::]"));
    assert_false(HOST("[fffff::1]"));
    assert_false(HOST("[::1"));
    assert_false(HOST("[::1]x"));
    assert_false(gh_host_valid("a\0b", 3));
    assert_false(HOST("a\tb"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_eq),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_value_valid),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_conn_tokens_basic),
        cmocka_unit_test(test_conn_tokens_whitespace_and_empty),
        cmocka_unit_test(test_conn_tokens_invalid_elements),
        cmocka_unit_test(test_conn_tokens_repeats_and_headers),
        cmocka_unit_test(test_conn_tokens_overflow),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_cidr_parse_valid),
        cmocka_unit_test(test_cidr_parse_invalid),
        cmocka_unit_test(test_cidr_v4_boundaries),
        cmocka_unit_test(test_cidr_v6_boundaries),
        cmocka_unit_test(test_cidr_v4_mapped),
        cmocka_unit_test(test_cidr_odd_inputs),
        cmocka_unit_test(test_host_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
