/* Metrics: workers' samples summed, histograms cumulative, label values
 * escaped and copied, the cap on label sets, and a render racing a writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <llhttp.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(gh_metrics_t *const *w, size_t n, const gh_metrics_process_t *p)
{
    size_t len = 0;
    char *text = gh_metrics_render(w, n, p, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample whose name and labels are exactly series; -1
 * when there is none. */
/* The value of a series, or -1 when the text has none (compare as
 * (long) in assert_int_equal: a negative double converts to no integer). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ') return strtod(l + n + 1, NULL);
    return -1;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void test_workers_are_summed(void **state)
{
    (void)state;
    gh_metrics_t *w[2] = {gh_metrics_new(), gh_metrics_new()};
    for (int i = 0; i < 2; i++) gh_metrics_request(w[0], "api", HTTP_GET, 200, 0.01, 0.005);
    for (int i = 0; i < 3; i++) gh_metrics_request(w[1], "api", HTTP_GET, 204, 0.01, 0.005);
    gh_metrics_request(w[1], "api", HTTP_POST, 503, 0.01, -1);
    gh_metrics_jwt(w[0], "corp", "ok");
    gh_metrics_jwt(w[1], "corp", "ok");
    gh_metrics_jwt(w[1], "corp", "expired");
    gh_metrics_limit(w[0], "global", "denied");
    gh_metrics_limit(w[1], "global", "denied");
    gh_metrics_redis_error(w[1], "timeout");
    gh_metrics_conns(w[0], 2);
    gh_metrics_conns(w[1], 1);
    gh_metrics_conns(w[1], -1);
    gh_metrics_upstream_pool(w[0], "backend", 1, 2);
    gh_metrics_upstream_pool(w[1], "backend", 1, 0);
    gh_metrics_upstream_pool(w[1], "backend", -1, 1);
    char *t = render(w, 2, NULL);
    assert_int_equal(
        (long)sample(t, "gatehouse_http_requests_total{route=\"api\",method=\"GET\",code=\"2xx\"}"),
        5);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"api\",method=\"POST\",code=\"5xx\"}"),
        1);
    assert_int_equal((long)sample(t, "gatehouse_request_duration_seconds_count{route=\"api\"}"), 6);
    assert_int_equal((long)sample(t, "gatehouse_upstream_duration_seconds_count{route=\"api\"}"),
                     5);
    assert_int_equal(
        (long)sample(t, "gatehouse_jwt_validations_total{issuer=\"corp\",result=\"ok\"}"), 2);
    assert_int_equal(
        (long)sample(t, "gatehouse_jwt_validations_total{issuer=\"corp\",result=\"expired\"}"), 1);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_rate_limit_decisions_total{scope=\"global\",decision=\"denied\"}"),
        2);
    assert_int_equal((long)sample(t, "gatehouse_redis_errors_total{kind=\"timeout\"}"), 1);
    assert_int_equal((long)sample(t, "gatehouse_connections_open"), 2);
    assert_int_equal(
        (long)sample(t, "gatehouse_upstream_connections{upstream=\"backend\",state=\"busy\"}"), 1);
    assert_int_equal(
        (long)sample(t, "gatehouse_upstream_connections{upstream=\"backend\",state=\"idle\"}"), 3);
    assert_int_equal(count_of(t, "# TYPE gatehouse_http_requests_total counter\n"), 1);
    assert_int_equal(count_of(t, "route=\"api\",method=\"GET\""), 1); /* one sample, summed */
    free(t);
    gh_metrics_free(w[0]);
    gh_metrics_free(w[1]);
}

/* Buckets are cumulative (a value on a bound falls in it), +Inf equals
 * _count, _sum is in seconds. */
static void test_histogram(void **state)
{
    (void)state;
    gh_metrics_t *m = gh_metrics_new();
    const double obs[] = {0.0003, 0.001, 0.2, 20};
    for (int i = 0; i < 4; i++) gh_metrics_request(m, "r", HTTP_GET, 200, obs[i], -1);
    gh_metrics_request(m, "up", HTTP_GET, 200, 0.5, 0.25);
    char *t = render(&m, 1, NULL);
    static const struct {
        const char *le;
        int n;
    } want[] = {{"0.0005", 1}, {"0.001", 2}, {"0.0025", 2}, {"0.1", 2},
                {"0.25", 3},   {"0.5", 3},   {"10", 3},     {"+Inf", 4}};
    char s[128];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(s, sizeof(s), "gatehouse_request_duration_seconds_bucket{route=\"r\",le=\"%s\"}",
                 want[i].le);
        assert_int_equal((long)sample(t, s), want[i].n);
    }
    assert_int_equal(count_of(t, "gatehouse_request_duration_seconds_bucket{route=\"r\""), 15);
    assert_int_equal((long)sample(t, "gatehouse_request_duration_seconds_count{route=\"r\"}"), 4);
    assert_non_null(strstr(t, "gatehouse_request_duration_seconds_sum{route=\"r\"} 20.201300\n"));
    /* Only the route whose request reached an upstream has that histogram. */
    assert_int_equal(count_of(t, "gatehouse_upstream_duration_seconds_count{"), 1);
    assert_int_equal(
        (long)sample(t, "gatehouse_upstream_duration_seconds_bucket{route=\"up\",le=\"0.1\"}"), 0);
    assert_int_equal(
        (long)sample(t, "gatehouse_upstream_duration_seconds_bucket{route=\"up\",le=\"0.25\"}"), 1);
    assert_non_null(strstr(t, "gatehouse_upstream_duration_seconds_sum{route=\"up\"} 0.250000\n"));
    free(t);
    gh_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    gh_metrics_t *m = gh_metrics_new();
    gh_metrics_jwt(m, "a\"b\\c\nd", "ok");
    gh_metrics_process_t p = {.config_hash = "ab\"cd"};
    char *t = render(&m, 1, &p);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_jwt_validations_total{issuer=\"a\\\"b\\\\c\\nd\",result=\"ok\"}"),
        1);
    assert_int_equal((long)sample(t, "gatehouse_config_info{hash=\"ab\\\"cd\"}"), 1);
    free(t);
    gh_metrics_free(m);
}

/* The caller's strings belong to a config a reload frees: they are copied
 * (ASan would catch a kept pointer). */
static void test_labels_are_copied(void **state)
{
    (void)state;
    gh_metrics_t *m = gh_metrics_new();
    char *route = strdup("orders"), *issuer = strdup("corp"), *up = strdup("backend");
    gh_metrics_request(m, route, HTTP_PUT, 201, 0.1, 0.05);
    gh_metrics_jwt(m, issuer, "cached");
    gh_metrics_upstream_pool(m, up, 0, 1);
    memset(route, 'x', 6);
    free(route);
    free(issuer);
    free(up);
    char *t = render(&m, 1, NULL);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"orders\",method=\"PUT\",code=\"2xx\"}"),
        1);
    assert_int_equal(
        (long)sample(t, "gatehouse_jwt_validations_total{issuer=\"corp\",result=\"cached\"}"), 1);
    assert_int_equal(
        (long)sample(t, "gatehouse_upstream_connections{upstream=\"backend\",state=\"idle\"}"), 1);
    free(t);
    gh_metrics_free(m);
}

/* No route matched, an unknown method, a status outside 100..599. */
static void test_no_route_and_odd_values(void **state)
{
    (void)state;
    gh_metrics_t *m = gh_metrics_new();
    gh_metrics_request(m, NULL, HTTP_GET, 404, 0.001, -1);
    gh_metrics_request(m, NULL, -1, 0, -5, -1);
    gh_metrics_request(m, NULL, 1000, 600, NAN, -1);
    gh_metrics_request(m, NULL, HTTP_MSEARCH, 100, 1e300, -1);
    char *t = render(&m, 1, NULL);
    assert_int_equal(
        (long)sample(t, "gatehouse_http_requests_total{route=\"\",method=\"GET\",code=\"4xx\"}"),
        1);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"\",method=\"OTHER\",code=\"other\"}"),
        2);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"\",method=\"M-SEARCH\",code=\"1xx\"}"),
        1);
    assert_int_equal(
        (long)sample(t, "gatehouse_request_duration_seconds_bucket{route=\"\",le=\"0.0005\"}"), 2);
    assert_int_equal((long)sample(t, "gatehouse_request_duration_seconds_count{route=\"\"}"), 4);
    free(t);
    gh_metrics_free(m);
}

/* Past 1024 label sets the route folds to "_other"; past the reserve
 * every label does, so a family never holds more than 1088. */
static void test_label_sets_are_capped(void **state)
{
    (void)state;
    gh_metrics_t *m = gh_metrics_new();
    char name[32];
    int calls = 0;
    for (int i = 0; i < 1100; i++, calls++) {
        snprintf(name, sizeof(name), "route-%d", i);
        gh_metrics_request(m, name, HTTP_GET, 200, 0.01, -1);
    }
    char *t = render(&m, 1, NULL);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"_other\",method=\"GET\",code=\"2xx\"}"),
        76);
    assert_int_equal((long)sample(t, "gatehouse_request_duration_seconds_count{route=\"_other\"}"),
                     76);
    assert_int_equal(
        (long)sample(t, "gatehouse_http_requests_total{route=\"route-1023\",method=\"GET\","
                        "code=\"2xx\"}"),
        1);
    assert_int_equal(
        (long)sample(
            t, "gatehouse_http_requests_total{route=\"route-1024\",method=\"GET\",code=\"2xx\"}"),
        -1);
    free(t);
    for (int method = 0; method <= HTTP_SOURCE; method++)
        for (int status = 0; status < 700; status += 100, calls++) {
            snprintf(name, sizeof(name), "more-%d-%d", method, status);
            gh_metrics_request(m, name, method, status, 0.01, -1);
        }
    t = render(&m, 1, NULL);
    assert_int_equal(count_of(t, "\ngatehouse_http_requests_total{"), 1088);
    assert_true(sample(t, "gatehouse_http_requests_total{route=\"_other\",method=\"_other\","
                          "code=\"_other\"}") > 0);
    double sum = 0;
    for (const char *l = strstr(t, "\ngatehouse_http_requests_total{"); l;
         l = strstr(l + 1, "\ngatehouse_http_requests_total{"))
        sum += strtod(strchr(l, '}') + 2, NULL);
    assert_int_equal(sum, calls); /* nothing lost by folding */
    free(t);
    gh_metrics_free(m);
}

static void test_empty_and_process(void **state)
{
    (void)state;
    char *t = render(NULL, 0, NULL);
    static const char *const families[] = {
        "gatehouse_http_requests_total counter",
        "gatehouse_request_duration_seconds histogram",
        "gatehouse_upstream_duration_seconds histogram",
        "gatehouse_jwt_validations_total counter",
        "gatehouse_rate_limit_decisions_total counter",
        "gatehouse_redis_errors_total counter",
        "gatehouse_connections_open gauge",
        "gatehouse_upstream_connections gauge",
        "gatehouse_config_reloads_total counter",
        "gatehouse_config_last_reload_success_timestamp_seconds gauge",
        "gatehouse_config_info gauge",
        "gatehouse_config_generation gauge",
        "gatehouse_ready gauge",
        "gatehouse_draining gauge",
        "gatehouse_revocations gauge",
        "gatehouse_key_fetch_failures_total counter",
    };
    char line[128];
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# TYPE %s\n", families[i]);
        assert_int_equal(count_of(t, line), 1);
    }
    assert_int_equal(count_of(t, "# HELP "), 16);
    assert_int_equal((long)sample(t, "gatehouse_connections_open"), 0);
    assert_int_equal((long)sample(t, "gatehouse_config_reloads_total{result=\"failed\"}"), 0);
    assert_null(strstr(t, "gatehouse_config_info{"));
    free(t);
    gh_metrics_process_t p = {3, 1, 1700000000.25, "c0ffee", 4, true, false, 12, 7};
    t = render(NULL, 0, &p);
    assert_int_equal((long)sample(t, "gatehouse_config_reloads_total{result=\"ok\"}"), 3);
    assert_int_equal((long)sample(t, "gatehouse_config_reloads_total{result=\"failed\"}"), 1);
    assert_non_null(
        strstr(t, "\ngatehouse_config_last_reload_success_timestamp_seconds 1700000000.250\n"));
    assert_int_equal((long)sample(t, "gatehouse_config_info{hash=\"c0ffee\"}"), 1);
    assert_int_equal((long)sample(t, "gatehouse_config_generation"), 4);
    assert_int_equal((long)sample(t, "gatehouse_ready"), 1);
    assert_int_equal((long)sample(t, "gatehouse_draining"), 0);
    assert_int_equal((long)sample(t, "gatehouse_revocations"), 12);
    assert_int_equal((long)sample(t, "gatehouse_key_fetch_failures_total"), 7);
    free(t);
}

#define WRITES 200000

static int writer_done;

static void *writer(void *arg)
{
    gh_metrics_t *m = arg;
    char name[32];
    for (int i = 0; i < WRITES; i++) {
        gh_metrics_request(m, "hot", HTTP_GET, 200, 0.002, 0.001);
        if (i % 2000 == 0) { /* new label sets published while the reader reads */
            snprintf(name, sizeof(name), "r%d", i / 2000);
            gh_metrics_request(m, name, HTTP_POST, 500, 0.002, -1);
        }
    }
    __atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The main thread renders while a worker writes: counts only grow, and
 * the final sum is exact. */
static void test_render_while_writing(void **state)
{
    (void)state;
    gh_metrics_t *w[2] = {gh_metrics_new(), gh_metrics_new()};
    gh_metrics_request(w[1], "hot", HTTP_GET, 200, 0.002, 0.001);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, w[0]), 0);
    static const char HOT[] =
        "gatehouse_http_requests_total{route=\"hot\",method=\"GET\",code=\"2xx\"}";
    double last = 0, last_count = 0;
    int done;
    do {
        done = __atomic_load_n(&writer_done, __ATOMIC_ACQUIRE);
        char *t = render(w, 2, NULL);
        double v = sample(t, HOT);
        double c = sample(t, "gatehouse_request_duration_seconds_count{route=\"hot\"}");
        double inf =
            sample(t, "gatehouse_request_duration_seconds_bucket{route=\"hot\",le=\"+Inf\"}");
        assert_true(v >= last);
        assert_true(c >= last_count);
        assert_true(inf == c);
        last = v;
        last_count = c;
        free(t);
    } while (!done);
    pthread_join(th, NULL);
    char *t = render(w, 2, NULL);
    assert_int_equal((long)sample(t, HOT), WRITES + 1);
    assert_int_equal((long)sample(t, "gatehouse_request_duration_seconds_count{route=\"hot\"}"),
                     WRITES + 1);
    assert_int_equal((long)sample(t, "gatehouse_upstream_duration_seconds_count{route=\"hot\"}"),
                     WRITES + 1);
    assert_int_equal(
        (long)sample(t,
                     "gatehouse_http_requests_total{route=\"r99\",method=\"POST\",code=\"5xx\"}"),
        1);
    free(t);
    gh_metrics_free(w[0]);
    gh_metrics_free(w[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_are_summed),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_labels_are_copied),
        cmocka_unit_test(test_no_route_and_odd_values),
        cmocka_unit_test(test_label_sets_are_capped),
        cmocka_unit_test(test_empty_and_process),
        cmocka_unit_test(test_render_while_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
