/* Unit tests for redis.c: URL parsing and script hashing (pure), then the
 * async client on a uv loop against a real redis-server this test starts on
 * a free loopback port: round trips, pipelining, scripts and the NOSCRIPT
 * retry, deadlines against a paused server, failing fast against a dead
 * one, reconnecting after a restart, cancelling, pub/sub, and closing clean.
 * The live tests are skipped when redis-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <uv.h>

#include "redis.h"

#ifndef REDIS_SERVER
#define REDIS_SERVER "/usr/bin/redis-server"
#endif

/* ---------------------------------------------------------------- url */

/* Parses url into a fresh conf; returns the parser's result. */
static int parse(gh_redis_conf_t *c, const char *url, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    return gh_redis_parse_url(c, url, err, errlen);
}

static void conf_clear(gh_redis_conf_t *c)
{
    free(c->user);
    free(c->password);
    c->user = c->password = NULL;
}

/* Asserts url parses to host, port and db, with no credentials. */
static void expect_url(const char *url, const char *host, int port, int db, int line)
{
    gh_redis_conf_t c;
    char err[256];
    if (parse(&c, url, err, sizeof(err)) != 0) fail_msg("line %d: '%s': %s", line, url, err);
    if (strcmp(c.host, host) || c.port != port || c.db != db)
        fail_msg("line %d: '%s' -> host '%s' port %d db %d", line, url, c.host, c.port, c.db);
    assert_null(c.user);
    assert_null(c.password);
}
#define EXPECT_URL(url, host, port, db) expect_url(url, host, port, db, __LINE__)

/* Asserts url is refused with a reason containing what. */
static void expect_bad_url(const char *url, const char *what, int line)
{
    gh_redis_conf_t c;
    char err[256];
    int rc = parse(&c, url, err, sizeof(err));
    conf_clear(&c);
    if (rc != -1)
        fail_msg("line %d: '%s' parsed (host '%s' port %d db %d)", line, url, c.host, c.port, c.db);
    if (!strstr(err, what)) fail_msg("line %d: '%s': error '%s' lacks '%s'", line, url, err, what);
}
#define EXPECT_BAD_URL(url, what) expect_bad_url(url, what, __LINE__)

static void test_parse_url_defaults(void **state)
{
    (void)state;
    EXPECT_URL("redis://localhost", "localhost", 6379, 0);
    EXPECT_URL("redis://localhost/", "localhost", 6379, 0);
    EXPECT_URL("redis://127.0.0.1:6380", "127.0.0.1", 6380, 0);
    EXPECT_URL("redis://127.0.0.1:6380/2", "127.0.0.1", 6380, 2);
    EXPECT_URL("redis://cache.internal/15", "cache.internal", 6379, 15);
    EXPECT_URL("redis://h:1", "h", 1, 0);
    EXPECT_URL("redis://h:65535/65535", "h", 65535, 65535);
}

static void test_parse_url_ipv6(void **state)
{
    (void)state;
    EXPECT_URL("redis://[::1]:7000/3", "::1", 7000, 3);
    EXPECT_URL("redis://[::1]", "::1", 6379, 0);
    EXPECT_URL("redis://[::1]/4", "::1", 6379, 4);
    EXPECT_URL("redis://[fe80::1:2]:6390", "fe80::1:2", 6390, 0);
    EXPECT_BAD_URL("redis://[::1:6379", "bad [IPv6] address");
    EXPECT_BAD_URL("redis://[]:6379", "no host");
    EXPECT_BAD_URL("redis://[::1]:0", "bad port");
}

static void test_parse_url_credentials(void **state)
{
    (void)state;
    gh_redis_conf_t c;
    char err[256];
    assert_int_equal(parse(&c, "redis://alice:s3cret@10.0.0.5:6400/1", err, sizeof(err)), 0);
    assert_string_equal(c.user, "alice");
    assert_string_equal(c.password, "s3cret");
    assert_string_equal(c.host, "10.0.0.5");
    assert_int_equal(c.port, 6400);
    assert_int_equal(c.db, 1);
    conf_clear(&c);

    /* no user: AUTH with the password alone */
    assert_int_equal(parse(&c, "redis://:s3cret@10.0.0.5", err, sizeof(err)), 0);
    assert_null(c.user);
    assert_string_equal(c.password, "s3cret");
    assert_string_equal(c.host, "10.0.0.5");
    assert_int_equal(c.port, 6379);
    conf_clear(&c);

    /* the password may hold a colon: only the first one splits */
    assert_int_equal(parse(&c, "redis://u:a:b@[::1]:7001/2", err, sizeof(err)), 0);
    assert_string_equal(c.user, "u");
    assert_string_equal(c.password, "a:b");
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 7001);
    assert_int_equal(c.db, 2);
    conf_clear(&c);

    /* credentials before an empty host are still an empty host */
    EXPECT_BAD_URL("redis://u:p@", "no host");
    EXPECT_BAD_URL("redis://u:p@:6379", "no host");
}

static void test_parse_url_errors(void **state)
{
    (void)state;
    EXPECT_BAD_URL("http://127.0.0.1:6379", "must start with redis://");
    EXPECT_BAD_URL("rediss://127.0.0.1:6379", "must start with redis://");
    EXPECT_BAD_URL("127.0.0.1:6379", "must start with redis://");
    EXPECT_BAD_URL("", "must start with redis://");
    EXPECT_BAD_URL("REDIS://h", "must start with redis://");

    EXPECT_BAD_URL("redis://h:0", "bad port");
    EXPECT_BAD_URL("redis://h:65536", "bad port");
    EXPECT_BAD_URL("redis://h:-1", "bad port");
    EXPECT_BAD_URL("redis://h:abc", "bad port");
    EXPECT_BAD_URL("redis://h:", "bad port");
    EXPECT_BAD_URL("redis://h:/0", "bad port");
    EXPECT_BAD_URL("redis://h:12x/0", "bad port");
    EXPECT_BAD_URL("redis://h:99999999999999999999", "bad port");

    EXPECT_BAD_URL("redis://h/x", "bad database number");
    EXPECT_BAD_URL("redis://h/-1", "bad database number");
    EXPECT_BAD_URL("redis://h/1x", "bad database number");
    EXPECT_BAD_URL("redis://h:6379/0/1", "bad database number");
    EXPECT_BAD_URL("redis://h/65536", "bad database number");

    EXPECT_BAD_URL("redis://", "no host");
    EXPECT_BAD_URL("redis:///0", "no host");
    EXPECT_BAD_URL("redis://:6379", "no host");
    char longhost[128];
    snprintf(longhost, sizeof(longhost), "redis://%.*s:6379", 64,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    EXPECT_BAD_URL(longhost, "too long");
    snprintf(longhost, sizeof(longhost), "redis://%.*s:6379", 63,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    gh_redis_conf_t c;
    char err[256];
    assert_int_equal(parse(&c, longhost, err, sizeof(err)), 0);
    assert_int_equal(strlen(c.host), 63);
}

/* Text after "[v6]" that is neither ":port" nor "/db" is not a URL. */
static void test_parse_url_junk_after_bracket(void **state)
{
    (void)state;
    EXPECT_BAD_URL("redis://[::1]x:7000", "redis.url");
    EXPECT_BAD_URL("redis://[::1]7000", "redis.url");
}

/* ------------------------------------------------------------- script */

static void test_script_sha(void **state)
{
    (void)state;
    gh_redis_script_t s;
    memset(&s, 'x', sizeof(s));
    gh_redis_script_init(&s, "return 1");
    assert_string_equal(s.sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    assert_string_equal(s.src, "return 1");

    gh_redis_script_init(&s, "");
    assert_string_equal(s.sha, "da39a3ee5e6b4b0d3255bfef95601890afd80709");

    /* a longer script against OpenSSL's one-shot SHA1 */
    static const char src[] = "local n = redis.call('INCR', KEYS[1])\n"
                              "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
                              "return n\n";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char want[41];
    assert_int_equal(EVP_Digest(src, strlen(src), md, &n, EVP_sha1(), NULL), 1);
    assert_int_equal(n, 20);
    for (unsigned i = 0; i < n; i++) snprintf(want + 2 * i, 3, "%02x", md[i]);
    gh_redis_script_init(&s, src);
    assert_string_equal(s.sha, want);
    assert_ptr_equal(s.src, src);
}

/* ------------------------------------------------------- live: server */

static struct {
    pid_t pid;
    int port;
} srv;

static bool have_redis;

/* A loopback port nobody listens on (free a moment ago). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* True when the server on port answers PING (blocking client, short timeout). */
static bool server_pings(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

/* Starts redis-server on srv.port and waits (at most 5 s) until it answers.
 * Returns 0, or -1 when it exited or never answered. */
static int server_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", srv.port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        execl(REDIS_SERVER, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    srv.pid = pid;
    for (int i = 0; i < 250; i++) {
        if (server_pings(srv.port)) return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            srv.pid = 0;
            return -1;
        }
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv.pid = 0;
    return -1;
}

/* Kills the server this test started (only its pid) and reaps it. */
static void server_kill(void)
{
    if (srv.pid <= 0) return;
    kill(srv.pid, SIGCONT);
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
    srv.pid = 0;
}

/* ---------------------------------------------------------- live: loop */

static struct {
    uv_loop_t loop;
    uv_timer_t guard; /* bounds every wait */
    bool expired;
    gh_redis_conf_t conf;
    gh_redis_t *rd;
    bool closed; /* close_all ran */
} F;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    F.expired = true;
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* Runs the loop until cond holds or secs pass. */
#define RUN_UNTIL(cond, secs)                                                                      \
    do {                                                                                           \
        F.expired = false;                                                                         \
        uv_timer_start(&F.guard, on_guard, (uint64_t)((secs)*1000), 0);                            \
        while (!(cond) && !F.expired) uv_run(&F.loop, UV_RUN_ONCE);                                \
        uv_timer_stop(&F.guard);                                                                   \
    } while (0)

/* Runs the loop for secs whatever happens. */
static void run_for(double secs)
{
    RUN_UNTIL(false, secs);
}

typedef struct {
    int calls;
    bool ok;
    int type;
    long long integer;
    size_t elements;
    char str[1024];
    char err[256];
    double at; /* when the callback ran */
} result_t;

static void on_result(void *arg, const redisReply *r, const char *err)
{
    result_t *res = arg;
    res->calls++;
    res->at = now_s();
    if (err) {
        res->ok = false;
        snprintf(res->err, sizeof(res->err), "%s", err);
        if (r) res->type = -1; /* contract: NULL reply with an error */
        return;
    }
    res->ok = r != NULL;
    if (!r) return;
    res->type = r->type;
    res->integer = r->integer;
    res->elements = r->elements;
    if (r->str) snprintf(res->str, sizeof(res->str), "%.*s", (int)r->len, r->str);
}

/* Sends a command given as NUL-terminated words; asserts it was taken. */
static void send_cmd(gh_redis_t *rd, result_t *res, gh_redis_op_t **op, int argc, const char **argv)
{
    size_t lens[16] = {0};
    const char *err = NULL;
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    if (gh_redis_command(rd, argc, argv, lens, on_result, res, op, &err))
        fail_msg("command %s refused: %s", argv[0], err ? err : "?");
}

/* Runs one command to its end (bounded); returns its result. */
static result_t call(gh_redis_t *rd, int argc, const char **argv)
{
    result_t res = {0};
    send_cmd(rd, &res, NULL, argc, argv);
    RUN_UNTIL(res.calls > 0, 5);
    if (res.calls != 1) fail_msg("%s: no reply within 5 s", argv[0]);
    return res;
}
#define CALL(rd, ...)                                                                              \
    call(rd, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)),                        \
         (const char *[]){__VA_ARGS__})

static result_t eval(gh_redis_t *rd, const gh_redis_script_t *s, int nkeys, int argc,
                     const char **argv)
{
    result_t res = {0};
    size_t lens[16] = {0};
    const char *err = NULL;
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    if (gh_redis_eval(rd, s, nkeys, argc, argv, lens, on_result, &res, NULL, &err))
        fail_msg("eval refused: %s", err ? err : "?");
    RUN_UNTIL(res.calls > 0, 5);
    if (res.calls != 1) fail_msg("eval: no reply within 5 s");
    return res;
}

/* Callbacks run so far over n results. */
static int calls(const result_t *res, int n)
{
    int total = 0;
    for (int i = 0; i < n; i++) total += res[i].calls;
    return total;
}

static int ready_count;
static void on_ready(void *arg)
{
    (void)arg;
    ready_count++;
}

/* A fresh loop and server per live test; conf points at the server. */
static int live_setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    ready_count = 0;
    assert_int_equal(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.guard);
    snprintf(F.conf.host, sizeof(F.conf.host), "127.0.0.1");
    F.conf.url = "redis://127.0.0.1 (test)";
    F.conf.timeout = 1.0;
    F.conf.pool = 1;
    F.conf.prefix = "test:";
    if (!have_redis) return 0;
    for (int tries = 0; tries < 3; tries++) {
        srv.port = free_port();
        if (server_start() == 0) break;
    }
    if (!srv.pid) fail_msg("redis-server did not start");
    F.conf.port = srv.port;
    return 0;
}

/* Closes the client and the loop; asserts no handle was left open. */
static void close_all(void)
{
    F.closed = true;
    gh_redis_close(F.rd);
    F.rd = NULL;
    uv_close((uv_handle_t *)&F.guard, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
}

static int live_teardown(void **state)
{
    (void)state;
    server_kill();
    if (!F.closed) close_all();
    return 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!have_redis) skip();                                                                   \
    } while (0)

/* Creates F.rd on F.conf and waits until a connection is ready. */
static void connect_up(void)
{
    F.rd = gh_redis_new(&F.loop, &F.conf, "test");
    assert_non_null(F.rd);
    gh_redis_on_ready(F.rd, on_ready, NULL);
    RUN_UNTIL(gh_redis_up(F.rd), 5);
    assert_true(gh_redis_up(F.rd));
}

/* Ends a test: the client and loop close clean (teardown then only kills
 * the server). */
static void finish(void)
{
    close_all();
}

/* ------------------------------------------------------- live: tests */

static void test_round_trip(void **state)
{
    (void)state;
    NEED_REDIS();
    /* calls made before the connection is ready queue behind the handshake */
    F.rd = gh_redis_new(&F.loop, &F.conf, "test");
    assert_non_null(F.rd);
    gh_redis_on_ready(F.rd, on_ready, NULL);
    assert_false(gh_redis_up(F.rd));
    result_t set = CALL(F.rd, "SET", "greeting", "hello world");
    assert_true(set.ok);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_string_equal(set.str, "OK");
    assert_true(gh_redis_up(F.rd));
    assert_int_equal(ready_count, 1);

    result_t get = CALL(F.rd, "GET", "greeting");
    assert_true(get.ok);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_string_equal(get.str, "hello world");

    /* binary-safe arguments: lens, not strlen */
    const char *argv[3] = {"SET", "bin", "a\0b"};
    size_t lens[3] = {3, 3, 3};
    result_t r = {0};
    const char *err = NULL;
    assert_int_equal(gh_redis_command(F.rd, 3, argv, lens, on_result, &r, NULL, &err), 0);
    RUN_UNTIL(r.calls, 5);
    assert_true(r.ok);
    result_t len = CALL(F.rd, "STRLEN", "bin");
    assert_int_equal(len.type, REDIS_REPLY_INTEGER);
    assert_int_equal(len.integer, 3);

    /* an error reply: NULL reply, the error's text */
    result_t bad = CALL(F.rd, "NOSUCHCOMMAND", "x");
    assert_false(bad.ok);
    assert_int_equal(bad.type, 0);
    assert_non_null(strstr(bad.err, "unknown command"));

    /* the connection survives an error reply */
    result_t ping = CALL(F.rd, "PING");
    assert_true(ping.ok);
    assert_string_equal(ping.str, "PONG");
    finish();
}

/* Many calls in flight at once on one connection: answered in order. */
static void test_pipelined(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up();
    enum { N = 200 };
    static result_t res[N];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < N; i++) send_cmd(F.rd, &res[i], NULL, 2, (const char *[]){"INCR", "n"});
    RUN_UNTIL(calls(res, N) == N, 5);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].integer, i + 1);
    }
    finish();
}

/* A pool of connections shares the calls; every call ends exactly once. */
static void test_pool(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.pool = 3;
    connect_up();
    RUN_UNTIL(ready_count == 3, 5);
    assert_int_equal(ready_count, 3);
    result_t info = CALL(F.rd, "INFO", "clients");
    const char *n = strstr(info.str, "connected_clients:");
    assert_non_null(n);
    assert_int_equal(atoi(n + strlen("connected_clients:")), 3);
    enum { N = 90 };
    static result_t res[N];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < N; i++) send_cmd(F.rd, &res[i], NULL, 2, (const char *[]){"INCR", "n"});
    RUN_UNTIL(calls(res, N) == N, 5);
    long long sum = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].calls, 1);
        sum += res[i].integer;
    }
    assert_int_equal(sum, (long long)N * (N + 1) / 2); /* each of 1..N once */
    finish();
}

static void test_eval(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up();
    gh_redis_script_t concat, incr, boom;
    gh_redis_script_init(&concat, "return ARGV[1] .. ':' .. KEYS[1] .. ':' .. ARGV[2]");
    gh_redis_script_init(&incr, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    gh_redis_script_init(&boom, "return redis.error_reply('BOOM went the script')");

    /* never loaded: the first EVALSHA meets NOSCRIPT and is sent again as EVAL */
    result_t r = eval(F.rd, &concat, 1, 3, (const char *[]){"k", "a", "b"});
    assert_true(r.ok);
    assert_string_equal(r.str, "a:k:b");
    result_t exists = CALL(F.rd, "SCRIPT", "EXISTS", concat.sha);
    assert_int_equal(exists.type, REDIS_REPLY_ARRAY);

    r = eval(F.rd, &incr, 1, 2, (const char *[]){"counter", "5"});
    assert_true(r.ok);
    assert_int_equal(r.type, REDIS_REPLY_INTEGER);
    assert_int_equal(r.integer, 5);
    r = eval(F.rd, &incr, 1, 2, (const char *[]){"counter", "7"});
    assert_int_equal(r.integer, 12);

    /* a script's own error comes back as the call's error, once */
    r = eval(F.rd, &boom, 0, 0, NULL);
    assert_false(r.ok);
    assert_non_null(strstr(r.err, "BOOM went the script"));
    r = eval(F.rd, &boom, 0, 0, NULL);
    assert_false(r.ok);
    assert_non_null(strstr(r.err, "BOOM"));

    /* binary-safe script arguments survive the NOSCRIPT retry */
    gh_redis_script_t len;
    gh_redis_script_init(&len, "return string.len(ARGV[1])");
    const char *argv[1] = {"x\0y\0z"};
    size_t lens[1] = {5};
    result_t l = {0};
    const char *err = NULL;
    assert_int_equal(gh_redis_eval(F.rd, &len, 0, 1, argv, lens, on_result, &l, NULL, &err), 0);
    RUN_UNTIL(l.calls, 5);
    assert_true(l.ok);
    assert_int_equal(l.integer, 5);
    finish();
}

/* Scripts forgotten by Redis (SCRIPT FLUSH, a restart) are sent again. */
static void test_noscript_retry(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up();
    gh_redis_script_t s;
    gh_redis_script_init(&s, "return redis.call('INCR', KEYS[1])");
    result_t r = eval(F.rd, &s, 1, 1, (const char *[]){"c"});
    assert_true(r.ok);
    assert_int_equal(r.integer, 1);

    result_t flush = CALL(F.rd, "SCRIPT", "FLUSH");
    assert_true(flush.ok);
    result_t exists = CALL(F.rd, "SCRIPT", "EXISTS", s.sha);
    assert_int_equal(exists.type, REDIS_REPLY_ARRAY);

    r = eval(F.rd, &s, 1, 1, (const char *[]){"c"});
    if (!r.ok) fail_msg("eval after SCRIPT FLUSH failed: %s", r.err);
    assert_int_equal(r.integer, 2); /* ran exactly once */

    /* a flush between calls in flight: both still succeed, each once */
    result_t a = {0}, b = {0};
    const char *err = NULL;
    const char *argv[1] = {"c"};
    size_t lens[1] = {1};
    result_t f2 = {0};
    send_cmd(F.rd, &f2, NULL, 2, (const char *[]){"SCRIPT", "FLUSH"});
    assert_int_equal(gh_redis_eval(F.rd, &s, 1, 1, argv, lens, on_result, &a, NULL, &err), 0);
    assert_int_equal(gh_redis_eval(F.rd, &s, 1, 1, argv, lens, on_result, &b, NULL, &err), 0);
    RUN_UNTIL(a.calls && b.calls && f2.calls, 5);
    assert_true(a.ok);
    assert_true(b.ok);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.integer + b.integer, 3 + 4);
    finish();
}

/* AUTH (password alone, or an ACL user) and SELECT run before any call;
 * a refused AUTH fails the calls with the reason. */
static void test_auth_and_db(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up(); /* no password yet */
    result_t r = CALL(F.rd, "ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all");
    if (!r.ok) fail_msg("ACL SETUSER: %s", r.err);
    r = CALL(F.rd, "CONFIG", "SET", "requirepass", "topsecret");
    assert_true(r.ok);

    static gh_redis_conf_t pw, user, wrong;
    pw = user = wrong = F.conf;
    pw.password = "topsecret";
    pw.db = 3;
    user.user = "alice";
    user.password = "wonderland";
    user.db = 5;
    wrong.password = "nope";
    gh_redis_t *a = gh_redis_new(&F.loop, &pw, "pw");
    gh_redis_t *b = gh_redis_new(&F.loop, &user, "user");
    gh_redis_t *c = gh_redis_new(&F.loop, &wrong, "wrong");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);

    result_t bad = {0};
    double t0 = now_s();
    send_cmd(c, &bad, NULL, 1, (const char *[]){"PING"});
    RUN_UNTIL(bad.calls, 3);
    assert_int_equal(bad.calls, 1);
    assert_false(bad.ok);
    if (!strstr(bad.err, "handshake failed")) fail_msg("wrong password: '%s'", bad.err);
    assert_true(bad.at - t0 < 0.5);

    RUN_UNTIL(gh_redis_up(a) && gh_redis_up(b), 5);
    assert_true(gh_redis_up(a));
    assert_true(gh_redis_up(b));
    r = CALL(a, "CLIENT", "INFO");
    if (!strstr(r.str, " db=3 ") || !strstr(r.str, " user=default ")) fail_msg("%s", r.str);
    r = CALL(b, "CLIENT", "INFO");
    if (!strstr(r.str, " db=5 ") || !strstr(r.str, " user=alice ")) fail_msg("%s", r.str);
    r = CALL(a, "SET", "where", "three");
    assert_true(r.ok);
    r = CALL(F.rd, "GET", "where"); /* db 0 */
    assert_int_equal(r.type, REDIS_REPLY_NIL);

    run_for(0.2);
    assert_false(gh_redis_up(c));
    gh_redis_close(a);
    gh_redis_close(b);
    gh_redis_close(c);
    finish();
}

/* A paused Redis: calls fail at their deadline, saying so. */
static void test_timeout_when_paused(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.timeout = 0.1;
    connect_up();
    result_t a = {0}, b = {0};
    assert_int_equal(kill(srv.pid, SIGSTOP), 0);
    double t0 = now_s();
    send_cmd(F.rd, &a, NULL, 1, (const char *[]){"PING"});
    send_cmd(F.rd, &b, NULL, 2, (const char *[]){"GET", "x"});
    RUN_UNTIL(a.calls && b.calls, 3);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_false(a.ok);
    assert_false(b.ok);
    if (!strstr(a.err, "timeout")) fail_msg("error '%s' does not mention the timeout", a.err);
    assert_non_null(strstr(b.err, "timeout"));
    double took = a.at - t0;
    /* the deadline (100 ms) checked every tick (25 ms), with slack for sanitizers */
    if (took < 0.08 || took > 0.1 + 0.025 + 0.15) fail_msg("failed after %.3f s", took);
    assert_false(gh_redis_up(F.rd));

    /* while it stays paused, nothing waits past its deadline either */
    for (int i = 0; i < 5; i++) {
        result_t r = {0};
        const char *err = NULL;
        double t = now_s();
        if (gh_redis_command(F.rd, 1, (const char *[]){"PING"}, (size_t[]){4}, on_result, &r, NULL,
                             &err) == 0) {
            RUN_UNTIL(r.calls, 3);
            assert_int_equal(r.calls, 1);
            assert_false(r.ok);
            if (r.at - t > 0.1 + 0.025 + 0.15) fail_msg("call %d failed after %.3f s", i, r.at - t);
        } else {
            assert_non_null(err);
        }
        run_for(0.03);
    }

    assert_int_equal(kill(srv.pid, SIGCONT), 0);
    RUN_UNTIL(gh_redis_up(F.rd), 5);
    assert_true(gh_redis_up(F.rd));
    result_t ping = CALL(F.rd, "PING");
    assert_true(ping.ok);
    assert_true(ready_count >= 2);
    finish();
}

/* A dead Redis: calls fail at once, never waiting for the deadline. */
static void test_down_fails_fast(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.timeout = 2.0;
    connect_up();
    server_kill();
    RUN_UNTIL(!gh_redis_up(F.rd), 2);
    assert_false(gh_redis_up(F.rd));
    int refused = 0, failed = 0;
    double until = now_s() + 1.0;
    while (now_s() < until) {
        result_t r = {0};
        const char *err = NULL;
        double t = now_s();
        if (gh_redis_command(F.rd, 1, (const char *[]){"PING"}, (size_t[]){4}, on_result, &r, NULL,
                             &err) == 0) {
            RUN_UNTIL(r.calls, 3);
            assert_int_equal(r.calls, 1);
            assert_false(r.ok);
            assert_true(r.err[0] != '\0');
            if (r.at - t > 0.5) fail_msg("a call to a dead redis took %.3f s: %s", r.at - t, r.err);
            failed++;
        } else {
            assert_non_null(err);
            assert_non_null(strstr(err, "not connected"));
            refused++;
        }
        run_for(0.02);
    }
    assert_true(refused + failed > 10);
    /* scripts too */
    gh_redis_script_t s;
    gh_redis_script_init(&s, "return 1");
    result_t r = {0};
    const char *err = NULL;
    double t = now_s();
    if (gh_redis_eval(F.rd, &s, 0, 0, NULL, NULL, on_result, &r, NULL, &err) == 0) {
        RUN_UNTIL(r.calls, 3);
        assert_false(r.ok);
        assert_true(r.at - t < 0.5);
    } else {
        assert_non_null(err);
    }
    finish();
}

/* The client comes back by itself when Redis does, scripts and all. */
static void test_reconnect_after_restart(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.timeout = 0.5;
    connect_up();
    gh_redis_script_t s;
    gh_redis_script_init(&s, "return 'script ' .. ARGV[1]");
    result_t r = eval(F.rd, &s, 0, 1, (const char *[]){"one"});
    assert_string_equal(r.str, "script one");
    assert_int_equal(ready_count, 1);

    server_kill();
    RUN_UNTIL(!gh_redis_up(F.rd), 2);
    assert_false(gh_redis_up(F.rd));
    run_for(0.3); /* a few failed attempts: the backoff grows */
    assert_false(gh_redis_up(F.rd));
    assert_int_equal(server_start(), 0);

    double t0 = now_s();
    RUN_UNTIL(gh_redis_up(F.rd), 5);
    if (!gh_redis_up(F.rd)) fail_msg("no reconnect within 5 s of the restart");
    /* backoff is at most 2 s (50 ms doubling); 0.3 s down means well under that */
    if (now_s() - t0 > 2.5) fail_msg("reconnect took %.3f s", now_s() - t0);
    assert_int_equal(ready_count, 2);
    result_t ping = CALL(F.rd, "PING");
    assert_true(ping.ok);
    /* the new server never saw the script: NOSCRIPT, then EVAL */
    r = eval(F.rd, &s, 0, 1, (const char *[]){"two"});
    if (!r.ok) fail_msg("eval after restart: %s", r.err);
    assert_string_equal(r.str, "script two");
    finish();
}

static void test_cancel(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up();
    result_t a = {0}, b = {0}, c = {0};
    gh_redis_op_t *op = NULL;
    send_cmd(F.rd, &a, &op, 3, (const char *[]){"SET", "cancelled", "yes"});
    assert_non_null(op);
    gh_redis_cancel(op);
    send_cmd(F.rd, &b, NULL, 1, (const char *[]){"PING"});
    RUN_UNTIL(b.calls, 5);
    run_for(0.05);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    /* the command itself still ran; only its reply was dropped */
    result_t get = CALL(F.rd, "GET", "cancelled");
    assert_string_equal(get.str, "yes");

    /* a cancelled script call that meets NOSCRIPT is retried silently */
    gh_redis_script_t s;
    gh_redis_script_init(&s, "return redis.call('INCR', KEYS[1])");
    const char *argv[1] = {"sc"};
    size_t lens[1] = {2};
    const char *err = NULL;
    op = NULL;
    assert_int_equal(gh_redis_eval(F.rd, &s, 1, 1, argv, lens, on_result, &c, &op, &err), 0);
    gh_redis_cancel(op);
    result_t after = CALL(F.rd, "PING");
    assert_true(after.ok);
    result_t v = CALL(F.rd, "GET", "sc");
    assert_string_equal(v.str, "1");
    assert_int_equal(c.calls, 0);

    gh_redis_cancel(NULL); /* harmless */

    /* cancelled and still pending when the client closes: no callback */
    result_t d = {0};
    op = NULL;
    send_cmd(F.rd, &d, &op, 1, (const char *[]){"PING"});
    gh_redis_cancel(op);
    finish();
    assert_int_equal(d.calls, 0);
}

/* A cancelled call that misses its deadline is not called back either. */
static void test_cancel_then_timeout(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.timeout = 0.1;
    connect_up();
    result_t a = {0}, b = {0};
    gh_redis_op_t *op = NULL;
    kill(srv.pid, SIGSTOP);
    send_cmd(F.rd, &a, &op, 1, (const char *[]){"PING"});
    gh_redis_cancel(op);
    send_cmd(F.rd, &b, NULL, 1, (const char *[]){"PING"});
    RUN_UNTIL(b.calls, 3);
    kill(srv.pid, SIGCONT);
    assert_int_equal(b.calls, 1);
    assert_non_null(strstr(b.err, "timeout"));
    assert_int_equal(a.calls, 0);
    finish();
}

static struct {
    int messages;
    char last[256];
    size_t last_len;
    int ready; /* the feed's on_ready calls */
} sub;

static void on_message(void *arg, const redisReply *r, const char *err)
{
    assert_ptr_equal(arg, &sub);
    if (err || !r) return;
    sub.messages++;
    sub.last_len = r->len < sizeof(sub.last) - 1 ? r->len : sizeof(sub.last) - 1;
    memcpy(sub.last, r->str, sub.last_len);
    sub.last[sub.last_len] = '\0';
}

static void on_feed_ready(void *arg)
{
    assert_ptr_equal(arg, &sub);
    sub.ready++;
}

static void test_subscribe(void **state)
{
    (void)state;
    NEED_REDIS();
    memset(&sub, 0, sizeof(sub));
    connect_up(); /* the publisher */
    gh_redis_t *feed = gh_redis_new(&F.loop, &F.conf, "feed");
    assert_non_null(feed);
    gh_redis_on_ready(feed, on_feed_ready, &sub);
    assert_int_equal(gh_redis_subscribe(feed, "test:chan", on_message, &sub), 0);
    RUN_UNTIL(sub.ready == 1, 5);
    assert_int_equal(sub.ready, 1);
    /* on_ready came after the subscription took effect: the message is seen */
    result_t p = CALL(F.rd, "PUBLISH", "test:chan", "hello there");
    assert_int_equal(p.type, REDIS_REPLY_INTEGER);
    assert_int_equal(p.integer, 1);
    RUN_UNTIL(sub.messages == 1, 5);
    assert_int_equal(sub.messages, 1);
    assert_string_equal(sub.last, "hello there");

    /* other channels are not delivered; messages arrive in order */
    p = CALL(F.rd, "PUBLISH", "test:other", "no");
    assert_int_equal(p.integer, 0);
    static result_t q[20];
    memset(q, 0, sizeof(q));
    for (int i = 0; i < 20; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "m%d", i);
        send_cmd(F.rd, &q[i], NULL, 3, (const char *[]){"PUBLISH", "test:chan", msg});
    }
    RUN_UNTIL(sub.messages == 21 && calls(q, 20) == 20, 5);
    assert_int_equal(sub.messages, 21);
    assert_string_equal(sub.last, "m19");

    /* binary payloads keep their length */
    const char *argv[3] = {"PUBLISH", "test:chan", "a\0b c"};
    size_t lens[3] = {7, 9, 5};
    result_t b = {0};
    const char *err = NULL;
    assert_int_equal(gh_redis_command(F.rd, 3, argv, lens, on_result, &b, NULL, &err), 0);
    RUN_UNTIL(sub.messages == 22 && b.calls, 5);
    assert_int_equal(sub.last_len, 5);
    assert_memory_equal(sub.last, "a\0b c", 5);

    /* subscribed again after a restart, on_ready again */
    server_kill();
    RUN_UNTIL(!gh_redis_up(feed), 2);
    assert_int_equal(server_start(), 0);
    RUN_UNTIL(sub.ready == 2 && gh_redis_up(F.rd), 5);
    assert_int_equal(sub.ready, 2);
    p = CALL(F.rd, "PUBLISH", "test:chan", "after restart");
    assert_int_equal(p.integer, 1);
    RUN_UNTIL(sub.messages == 23, 5);
    assert_string_equal(sub.last, "after restart");

    gh_redis_close(feed);
    finish();
}

/* Subscribing a client whose connection is already up. */
static void test_subscribe_when_up(void **state)
{
    (void)state;
    NEED_REDIS();
    memset(&sub, 0, sizeof(sub));
    connect_up(); /* the publisher */
    gh_redis_t *feed = gh_redis_new(&F.loop, &F.conf, "feed");
    assert_non_null(feed);
    RUN_UNTIL(gh_redis_up(feed), 5);
    assert_true(gh_redis_up(feed));
    gh_redis_on_ready(feed, on_feed_ready, &sub);
    assert_int_equal(gh_redis_subscribe(feed, "test:late", on_message, &sub), 0);
    RUN_UNTIL(sub.ready == 1, 5);
    assert_int_equal(sub.ready, 1);
    result_t p = CALL(F.rd, "PUBLISH", "test:late", "late");
    assert_int_equal(p.integer, 1);
    RUN_UNTIL(sub.messages == 1, 5);
    assert_string_equal(sub.last, "late");
    gh_redis_close(feed);
    finish();
}

/* Closing fails every pending call once, refuses new ones, and leaves no
 * handle behind. */
static void test_close_fails_pending(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.pool = 2;
    F.rd = gh_redis_new(&F.loop, &F.conf, "test");
    assert_non_null(F.rd);
    result_t r[4] = {{0}};
    for (int i = 0; i < 4; i++) send_cmd(F.rd, &r[i], NULL, 1, (const char *[]){"PING"});
    gh_redis_t *rd = F.rd;
    gh_redis_close(rd);
    F.rd = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_false(r[i].ok);
        assert_non_null(strstr(r[i].err, "shutting down"));
    }
    const char *err = NULL;
    result_t late = {0};
    assert_int_equal(gh_redis_command(rd, 1, (const char *[]){"PING"}, (size_t[]){4}, on_result,
                                      &late, NULL, &err),
                     -1);
    assert_non_null(err);
    finish();
    assert_int_equal(late.calls, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(r[i].calls, 1);
}

static result_t in_cb[3];

/* Closes the client from inside a reply callback. */
static void close_from_callback(void *arg, const redisReply *r, const char *err)
{
    on_result(arg, r, err);
    gh_redis_close(F.rd);
    F.rd = NULL;
}

static void test_close_in_callback(void **state)
{
    (void)state;
    NEED_REDIS();
    connect_up();
    memset(in_cb, 0, sizeof(in_cb));
    const char *err = NULL;
    assert_int_equal(gh_redis_command(F.rd, 1, (const char *[]){"PING"}, (size_t[]){4},
                                      close_from_callback, &in_cb[0], NULL, &err),
                     0);
    /* queued behind it */
    send_cmd(F.rd, &in_cb[1], NULL, 2, (const char *[]){"GET", "x"});
    send_cmd(F.rd, &in_cb[2], NULL, 1, (const char *[]){"PING"});
    RUN_UNTIL(in_cb[0].calls && in_cb[1].calls && in_cb[2].calls, 5);
    assert_null(F.rd);
    assert_int_equal(in_cb[0].calls, 1);
    assert_true(in_cb[0].ok);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(in_cb[i].calls, 1);
        assert_false(in_cb[i].ok);
        assert_non_null(strstr(in_cb[i].err, "shutting down"));
    }
    finish();
}

/* A client closed while Redis is down, or paused, still closes clean. */
static void test_close_when_down_or_paused(void **state)
{
    (void)state;
    NEED_REDIS();
    F.conf.timeout = 0.2;
    connect_up();
    kill(srv.pid, SIGSTOP);
    result_t r = {0};
    send_cmd(F.rd, &r, NULL, 1, (const char *[]){"PING"});
    run_for(0.01);
    gh_redis_t *paused = F.rd;
    F.rd = gh_redis_new(&F.loop, &F.conf, "second"); /* connecting to a paused server */
    assert_non_null(F.rd);
    run_for(0.01);
    gh_redis_close(paused);
    assert_int_equal(r.calls, 1);
    assert_non_null(strstr(r.err, "shutting down"));
    server_kill();
    run_for(0.05);
    finish();
}

int main(void)
{
    have_redis = access(REDIS_SERVER, X_OK) == 0;
    if (!have_redis)
        print_message("[ SKIP     ] %s not found: the live Redis tests are skipped\n",
                      REDIS_SERVER);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url_defaults),
        cmocka_unit_test(test_parse_url_ipv6),
        cmocka_unit_test(test_parse_url_credentials),
        cmocka_unit_test(test_parse_url_errors),
        cmocka_unit_test(test_parse_url_junk_after_bracket),
        cmocka_unit_test(test_script_sha),
        cmocka_unit_test_setup_teardown(test_round_trip, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_pool, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_eval, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_noscript_retry, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_db, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_when_paused, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_down_fails_fast, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_then_timeout, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_when_up, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_close_fails_pending, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(test_close_when_down_or_paused, live_setup, live_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
