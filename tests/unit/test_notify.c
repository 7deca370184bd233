/* gh_notify against real AF_UNIX datagram sockets, bound to a path and in
 * the abstract namespace, as systemd's $NOTIFY_SOCKET is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

/* A bound datagram socket and the $NOTIFY_SOCKET value naming it. */
typedef struct {
    int fd;
    char name[108];
    char dir[64];
} listener_t;

/* Binds l to a fresh path (abstract = 0) or abstract name; sets the variable. */
static void listen_on(listener_t *l, int abstract)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t salen;
    l->dir[0] = '\0';
    if (abstract) {
        snprintf(l->name, sizeof(l->name), "@gh-notify-test-%ld-%ld", (long)getpid(),
                 (long)random());
        size_t len = strlen(l->name);
        memcpy(sa.sun_path + 1, l->name + 1, len - 1);
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        snprintf(l->dir, sizeof(l->dir), "/tmp/gh-notify-XXXXXX");
        assert_non_null(mkdtemp(l->dir));
        snprintf(l->name, sizeof(l->name), "%s/notify", l->dir);
        strcpy(sa.sun_path, l->name);
        salen = (socklen_t)sizeof(sa);
    }
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, salen), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", l->name, 1), 0);
}

static void listener_close(listener_t *l)
{
    close(l->fd);
    if (l->dir[0]) {
        unlink(l->name);
        rmdir(l->dir);
    }
    unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, NUL-terminated into buf; fails the test if none is
 * waiting (the send was synchronous, so it must be there already). */
static size_t recv_one(listener_t *l, char *buf, size_t size)
{
    ssize_t n = recv(l->fd, buf, size - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

static void nothing_waiting(listener_t *l)
{
    char c;
    assert_int_equal(recv(l->fd, &c, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void sends_one_datagram(int abstract)
{
    listener_t l;
    listen_on(&l, abstract);
    char buf[256];
    assert_int_equal(gh_notify("READY=1"), 0);
    assert_int_equal(recv_one(&l, buf, sizeof(buf)), 7);
    assert_string_equal(buf, "READY=1");
    assert_int_equal(gh_notify("STATUS=serving 3 routes\nMAINPID=1"), 0);
    recv_one(&l, buf, sizeof(buf));
    assert_string_equal(buf, "STATUS=serving 3 routes\nMAINPID=1");
    nothing_waiting(&l);
    listener_close(&l);
}

static void test_path_socket(void **state)
{
    (void)state;
    sends_one_datagram(0);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    sends_one_datagram(1);
}

static void test_unset_or_empty_is_not_an_error(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(gh_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(gh_notify("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_unusable_addresses_fail(void **state)
{
    (void)state;
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    const char *bad[] = {"relative/path", "@", "vsock:2:1234", long_path,
                         "/nonexistent-gh-notify-dir/notify"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("NOTIFY_SOCKET", bad[i], 1);
        assert_int_equal(gh_notify("READY=1"), -1);
    }
    unsetenv("NOTIFY_SOCKET");
}

/* Nobody bound to the path any more: the send is refused, not lost silently. */
static void test_closed_listener_fails(void **state)
{
    (void)state;
    listener_t l;
    listen_on(&l, 0);
    close(l.fd);
    unlink(l.name);
    assert_int_equal(gh_notify("STOPPING=1"), -1);
    rmdir(l.dir);
    unsetenv("NOTIFY_SOCKET");
}

static uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_reloading_carries_monotonic_usec(void **state)
{
    (void)state;
    listener_t l;
    listen_on(&l, 1);
    uint64_t before = now_usec();
    assert_int_equal(gh_notify_reloading(), 0);
    uint64_t after = now_usec();
    char buf[128];
    recv_one(&l, buf, sizeof(buf));
    const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";
    assert_int_equal(strncmp(buf, prefix, strlen(prefix)), 0);
    char *end;
    errno = 0;
    unsigned long long usec = strtoull(buf + strlen(prefix), &end, 10);
    assert_int_equal(errno, 0);
    assert_int_equal(*end, '\0');
    assert_true(usec >= before && usec <= after);
    listener_close(&l);
}

int main(void)
{
    srandom((unsigned)now_usec());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_unset_or_empty_is_not_an_error),
        cmocka_unit_test(test_unusable_addresses_fail),
        cmocka_unit_test(test_closed_listener_fails),
        cmocka_unit_test(test_reloading_carries_monotonic_usec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
