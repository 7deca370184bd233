/* Unit tests for stream.c over a real loopback TCP pair: write framing and
 * order, corking, buffer references held until written, and close. Every
 * test ends with the loop closing clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "stream.h"

typedef struct {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t timer;
    uv_connect_t connect;
    gh_buf_pool_t *pool;
    gh_stream_t writer, reader; /* writer connected to reader */
    int connected, accepted, timed_out;
    char *got;
    size_t got_len, got_cap;
    ssize_t read_err; /* the reader's first nread < 0 */
    int writer_closes, reader_closes, writes, write_status;
} pair_t;

static void on_read(gh_stream_t *s, ssize_t nread, gh_buf_t *buf)
{
    pair_t *p = s->owner;
    if (nread < 0) {
        if (!p->read_err) p->read_err = nread;
        return;
    }
    assert_non_null(buf);
    assert_true(buf->refs >= 1);
    if (p->got_len + (size_t)nread > p->got_cap) {
        p->got_cap = 2 * (p->got_len + (size_t)nread);
        p->got = realloc(p->got, p->got_cap);
        assert_non_null(p->got);
    }
    memcpy(p->got + p->got_len, buf->data, (size_t)nread);
    p->got_len += (size_t)nread;
}

static void on_write(gh_stream_t *s, int status)
{
    pair_t *p = s->owner;
    p->writes++;
    p->write_status = status;
}

static void on_close(gh_stream_t *s)
{
    pair_t *p = s->owner;
    if (s == &p->writer)
        p->writer_closes++;
    else
        p->reader_closes++;
}

static void on_connection(uv_stream_t *server, int status)
{
    pair_t *p = server->data;
    assert_int_equal(status, 0);
    assert_int_equal(gh_stream_init(&p->reader, &p->loop, p->pool, p), 0);
    p->reader.on_read = on_read;
    p->reader.on_close = on_close;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->reader.tcp), 0);
    assert_int_equal(gh_stream_read_start(&p->reader), 0);
    p->accepted = 1;
}

static void on_connect(uv_connect_t *req, int status)
{
    pair_t *p = req->data;
    assert_int_equal(status, 0);
    p->connected = 1;
}

static void on_timer(uv_timer_t *t)
{
    pair_t *p = t->data;
    p->timed_out = 1;
}

/* Runs the loop until cond holds, failing after five seconds. */
#define RUN_UNTIL(p, cond)                                                                         \
    do {                                                                                           \
        (p)->timed_out = 0;                                                                        \
        uv_timer_start(&(p)->timer, on_timer, 5000, 0);                                            \
        while (!(cond) && !(p)->timed_out) uv_run(&(p)->loop, UV_RUN_ONCE);                        \
        uv_timer_stop(&(p)->timer);                                                                \
        if (!(cond)) fail_msg("timed out waiting for %s", #cond);                                  \
    } while (0)

/* Runs the loop for ms milliseconds, whatever happens. */
static void run_for(pair_t *p, uint64_t ms)
{
    p->timed_out = 0;
    uv_timer_start(&p->timer, on_timer, ms, 0);
    while (!p->timed_out) uv_run(&p->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_loop_init(&p->loop), 0);
    p->pool = gh_buf_pool_new(4);
    assert_non_null(p->pool);
    assert_int_equal(uv_timer_init(&p->loop, &p->timer), 0);
    p->timer.data = p;

    struct sockaddr_in addr;
    int len = sizeof(addr);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(&p->loop, &p->server), 0);
    p->server.data = p;
    assert_int_equal(uv_tcp_bind(&p->server, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 1, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&p->server, (struct sockaddr *)&addr, &len), 0);

    assert_int_equal(gh_stream_init(&p->writer, &p->loop, p->pool, p), 0);
    p->writer.on_write = on_write;
    p->writer.on_close = on_close;
    p->connect.data = p;
    assert_int_equal(
        uv_tcp_connect(&p->connect, &p->writer.tcp, (struct sockaddr *)&addr, on_connect), 0);
    RUN_UNTIL(p, p->connected && p->accepted);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    pair_t *p = *state;
    gh_stream_close(&p->writer); /* no-ops when a test already closed them */
    gh_stream_close(&p->reader);
    uv_close((uv_handle_t *)&p->server, NULL);
    uv_close((uv_handle_t *)&p->timer, NULL);
    assert_int_equal(uv_run(&p->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(p->writer_closes, 1);
    assert_int_equal(p->reader_closes, 1);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    gh_buf_pool_free(p->pool);
    free(p->got);
    free(p);
    return 0;
}

static void test_pre_data_post_in_order(void **state)
{
    pair_t *p = *state;
    gh_stream_t *w = &p->writer;
    assert_int_equal(gh_stream_write(w, "PRE:", 4, NULL, "hello", 5, ":POST", 5), 0);
    assert_int_equal(gh_stream_write(w, NULL, 0, NULL, "-data-", 6, NULL, 0), 0);
    assert_int_equal(gh_stream_write(w, "5\r\n", 3, NULL, NULL, 0, NULL, 0), 0);
    assert_int_equal(gh_stream_write(w, NULL, 0, NULL, "", 0, NULL, 0), 0); /* nothing */
    assert_int_equal(gh_stream_write(w, "[", 1, NULL, "x", 1, "]", 1), 0);
    const char *want = "PRE:hello:POST-data-5\r\n[x]";
    RUN_UNTIL(p, p->got_len >= strlen(want));
    assert_int_equal(p->got_len, strlen(want));
    assert_memory_equal(p->got, want, strlen(want));
    assert_int_equal(w->write_pending, 0);
}

static void test_cork_gathers_until_uncork(void **state)
{
    pair_t *p = *state;
    gh_stream_t *w = &p->writer;
    assert_int_equal(gh_stream_uncork(w), 0); /* nothing gathered: a no-op */
    gh_stream_cork(w);
    assert_int_equal(gh_stream_write(w, "HTTP/1.1 200 OK\r\n", 17, NULL, NULL, 0, NULL, 0), 0);
    assert_int_equal(gh_stream_write(w, NULL, 0, NULL, "Content-Length: 2\r\n\r\n", 21, NULL, 0),
                     0);
    assert_int_equal(gh_stream_write(w, NULL, 0, NULL, "ok", 2, NULL, 0), 0);
    assert_non_null(w->batch);
    assert_int_equal(w->write_pending, 0);
    run_for(p, 50);
    assert_int_equal(p->got_len, 0); /* nothing left while corked */
    assert_int_equal(gh_stream_uncork(w), 0);
    assert_null(w->batch);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    RUN_UNTIL(p, p->got_len >= strlen(want));
    assert_int_equal(p->got_len, strlen(want));
    assert_memory_equal(p->got, want, strlen(want));
}

/* More slices than one gathered write holds: the batches go out in turn
 * and the receiver sees every byte in order. */
static void test_cork_many_writes_keep_order(void **state)
{
    pair_t *p = *state;
    gh_stream_t *w = &p->writer;
    char want[40 * 8 + 1], pre[8];
    size_t n = 0;
    static const char data[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
    gh_stream_cork(w);
    for (int i = 0; i < 40; i++) {
        int m = snprintf(pre, sizeof(pre), "%02d<", i);
        assert_int_equal(gh_stream_write(w, pre, (size_t)m, NULL, data + i, 1, ">", 1), 0);
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%02d<%c>", i, data[i]);
    }
    assert_int_equal(gh_stream_uncork(w), 0);
    RUN_UNTIL(p, p->got_len >= n);
    assert_int_equal(p->got_len, n);
    assert_memory_equal(p->got, want, n);
}

static void test_small_write_releases_ref(void **state)
{
    pair_t *p = *state;
    gh_buf_t *b = gh_buf_get(p->pool);
    assert_non_null(b);
    gh_buf_ref(b);
    gh_buf_ref(b);
    memcpy(b->data, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(gh_stream_write(&p->writer, NULL, 0, b, b->data, 18, NULL, 0), 0);
    RUN_UNTIL(p, p->got_len >= 18);
    assert_int_equal(p->writer.write_pending, 0);
    assert_int_equal(b->refs, 3);
    assert_memory_equal(p->got, "GET / HTTP/1.1\r\n\r\n", 18);
    for (int i = 0; i < 3; i++) gh_buf_unref(b);
}

/* A write bigger than the socket takes at once is queued with libuv; its
 * buffer stays referenced until the last byte is written. */
static void test_queued_write_holds_ref_until_written(void **state)
{
    pair_t *p = *state;
    size_t n = 16u << 20;
    gh_buf_t *b = gh_buf_new(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) b->data[i] = (char)(i * 7 + i / 4096);
    assert_int_equal(gh_stream_write(&p->writer, "<", 1, b, b->data, n, ">", 1), 0);
    assert_true(p->writer.write_pending > 0);
    assert_int_equal(b->refs, 2);
    RUN_UNTIL(p, p->writes == 1);
    assert_int_equal(p->write_status, 0);
    assert_int_equal(p->writer.write_pending, 0);
    assert_int_equal(b->refs, 1);
    RUN_UNTIL(p, p->got_len >= n + 2);
    assert_int_equal(p->got_len, n + 2);
    assert_int_equal(p->got[0], '<');
    assert_memory_equal(p->got + 1, b->data, n);
    assert_int_equal(p->got[n + 1], '>');
    gh_buf_unref(b);
}

static void test_close_runs_on_close_once(void **state)
{
    pair_t *p = *state;
    gh_stream_close(&p->writer);
    gh_stream_close(&p->writer);
    assert_int_equal(gh_stream_write(&p->writer, NULL, 0, NULL, "late", 4, NULL, 0), UV_ECANCELED);
    RUN_UNTIL(p, p->writer_closes == 1 && p->read_err != 0);
    assert_int_equal(p->read_err, UV_EOF);
    run_for(p, 20);
    assert_int_equal(p->writer_closes, 1);
    assert_int_equal(p->reader_closes, 0);
    assert_int_equal(p->got_len, 0);
}

/* Closing drops what is gathered or queued and releases its references;
 * on_write is not called for the dropped writes. */
static void test_close_drops_queued_writes(void **state)
{
    pair_t *p = *state;
    gh_stream_t *w = &p->writer;
    gh_buf_t *big = gh_buf_new(16u << 20), *small = gh_buf_new(16);
    assert_non_null(big);
    assert_non_null(small);
    memset(big->data, 'b', big->cap);
    memset(small->data, 's', small->cap);
    assert_int_equal(gh_stream_write(w, NULL, 0, big, big->data, big->cap, NULL, 0), 0);
    assert_true(w->write_pending > 0);
    gh_stream_cork(w);
    assert_int_equal(gh_stream_write(w, NULL, 0, small, small->data, small->cap, NULL, 0), 0);
    assert_int_equal(small->refs, 2);
    gh_stream_close(w);
    assert_int_equal(small->refs, 1); /* the gathered write is gone at once */
    RUN_UNTIL(p, p->writer_closes == 1);
    assert_int_equal(big->refs, 1); /* the queued one was cancelled */
    assert_int_equal(p->writes, 0);
    assert_true(p->got_len < big->cap);
    gh_buf_unref(big);
    gh_buf_unref(small);
}

static void test_shutdown_close_flushes_first(void **state)
{
    pair_t *p = *state;
    gh_stream_t *w = &p->writer;
    gh_stream_cork(w);
    assert_int_equal(gh_stream_write(w, "last", 4, NULL, " words", 6, NULL, 0), 0);
    gh_stream_shutdown_close(w);
    assert_int_equal(gh_stream_write(w, NULL, 0, NULL, "late", 4, NULL, 0), UV_ECANCELED);
    RUN_UNTIL(p, p->writer_closes == 1 && p->read_err != 0);
    assert_int_equal(p->read_err, UV_EOF);
    assert_int_equal(p->got_len, 10);
    assert_memory_equal(p->got, "last words", 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pre_data_post_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cork_gathers_until_uncork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cork_many_writes_keep_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_write_releases_ref, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_write_holds_ref_until_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_runs_on_close_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drops_queued_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_close_flushes_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
