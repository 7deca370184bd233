/* What a reload carries from one config generation to the next: remote key
 * sources compared and shared by reference (keysource.c), and a worker's
 * upstream target pools shared by every generation naming the same
 * upstream and address (upstream.c). Nothing here starts a loop or
 * touches the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keysource.h"
#include "list.h"
#include "upstream.h"
#include "worker.h"

#include "config_dir.h"

static int setup(void **state)
{
    (void)state;
    config_dir_setup("gh_reload_parts_test");
    write_file("ca1.pem", "not checked at load\n");
    write_file("ca2.pem", "another file\n");
    return 0;
}

/* Loads rel (under dir), failing the test with the loader's error. */
static gh_config_t *load_file(const char *rel, const char *text)
{
    char path[300], err[512] = "";
    write_file(rel, text);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    gh_config_t *cfg = gh_config_load(path, err, sizeof(err));
    if (!cfg) fail_msg("%s: %s", rel, err);
    return cfg;
}

/* ---- key sources ---- */

/* A config with one issuer called name whose body is given. */
static gh_config_t *load_issuer(const char *name, const char *body)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "return {\n  listen = { '127.0.0.1:1' },\n"
             "  upstreams = { orders = { targets = { '127.0.0.1:2' } } },\n"
             "  issuers = {\n    ['%s'] = {\n%s\n    },\n  },\n}\n",
             name, body);
    return load_file("issuer.lua", text);
}

static const char *REMOTE = "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                            "      jwks = { refresh = 120, ca_file = 'ca1.pem' },";

static gh_keysource_t *src_of(const gh_config_t *cfg)
{
    assert_int_equal(cfg->nissuers, 1);
    assert_non_null(cfg->issuers[0].src);
    return cfg->issuers[0].src;
}

/* same(a, b) for the remote issuer REMOTE against name + body, both ways. */
static bool same_as_remote(const char *name, const char *body)
{
    gh_config_t *a = load_issuer("sso", REMOTE);
    gh_config_t *b = load_issuer(name, body);
    bool ab = gh_keysource_same(src_of(a), src_of(b));
    bool ba = gh_keysource_same(src_of(b), src_of(a));
    assert_int_equal(ab, ba);
    gh_config_free(a);
    gh_config_free(b);
    return ab;
}

static void test_same_remote_sources(void **state)
{
    (void)state;
    gh_config_t *a = load_issuer("sso", REMOTE);
    gh_config_t *b = load_issuer("sso", REMOTE);
    gh_keysource_t *sa = src_of(a), *sb = src_of(b);
    assert_ptr_not_equal(sa, sb);
    assert_true(gh_keysource_is_remote(sa));
    assert_true(gh_keysource_same(sa, sb));
    assert_true(gh_keysource_same(sb, sa));
    assert_true(gh_keysource_same(sa, sa));
    const gh_keysource_conf_t *k = gh_keysource_conf(sa);
    assert_string_equal(k->jwks_url, "https://127.0.0.1:1/certs");
    assert_true(k->refresh == 120);
    assert_non_null(strstr(k->ca_file, "ca1.pem"));
    gh_config_free(a);
    gh_config_free(b);
}

static void test_different_remote_sources(void **state)
{
    (void)state;
    /* the issuer's name */
    assert_false(same_as_remote("sso2", REMOTE));
    /* the URL */
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs2',\n"
                                       "      jwks = { refresh = 120, ca_file = 'ca1.pem' },"));
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:2/certs',\n"
                                       "      jwks = { refresh = 120, ca_file = 'ca1.pem' },"));
    /* the refresh interval, and one left to its default */
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      jwks = { refresh = 121, ca_file = 'ca1.pem' },"));
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      jwks = { ca_file = 'ca1.pem' },"));
    /* the algorithms (RS256 is the remote default) */
    assert_true(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                      "      algorithms = { 'RS256' },\n"
                                      "      jwks = { refresh = 120, ca_file = 'ca1.pem' },"));
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      algorithms = { 'RS256', 'ES256' },\n"
                                       "      jwks = { refresh = 120, ca_file = 'ca1.pem' },"));
    /* the CA file, and none */
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      jwks = { refresh = 120, ca_file = 'ca2.pem' },"));
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      jwks = { refresh = 120 },"));
    /* other fetch settings */
    assert_false(same_as_remote("sso", "      jwks_url = 'https://127.0.0.1:1/certs',\n"
                                       "      jwks = { refresh = 120, ca_file = 'ca1.pem',\n"
                                       "               startup = 'wait' },"));
}

static void test_local_sources_never_same(void **state)
{
    (void)state;
    const char *secret = "      secret = '0123456789abcdef0123456789abcdef',";
    gh_config_t *a = load_issuer("sso", secret);
    gh_config_t *b = load_issuer("sso", secret);
    gh_config_t *r = load_issuer("sso", REMOTE);
    gh_keysource_t *sa = src_of(a), *sb = src_of(b), *sr = src_of(r);
    assert_false(gh_keysource_is_remote(sa));
    assert_false(gh_keysource_same(sa, sb));
    assert_false(gh_keysource_same(sa, sa));
    assert_false(gh_keysource_same(sa, sr));
    assert_false(gh_keysource_same(sr, sa));
    gh_config_free(a);
    gh_config_free(b);
    gh_config_free(r);
}

/* A reference taken for a new config: the source lives until the last
 * one goes, whichever config lets go first. */
static void test_keysource_refs(void **state)
{
    (void)state;
    gh_config_t *a = load_issuer("sso", REMOTE);
    gh_keysource_t *s = src_of(a);
    assert_true(gh_keysource_last_ref(s));
    assert_ptr_equal(gh_keysource_ref(s), s);
    assert_false(gh_keysource_last_ref(s));
    gh_keysource_free(s); /* the extra reference */
    assert_true(gh_keysource_last_ref(s));
    gh_config_free(a); /* the last: frees (a leak or double free shows under ASan) */

    /* the old config goes first; the new holder keeps a usable source */
    gh_config_t *old = load_issuer("sso", REMOTE);
    gh_keysource_t *kept = gh_keysource_ref(src_of(old));
    gh_config_free(old);
    assert_true(gh_keysource_last_ref(kept));
    assert_string_equal(gh_keysource_conf(kept)->jwks_url, "https://127.0.0.1:1/certs");
    assert_null(gh_keysource_acquire(kept)); /* never started: no keys */
    gh_keysource_free(kept);

    /* a local source too */
    gh_config_t *l = load_issuer("sso", "      secret = '0123456789abcdef0123456789abcdef',");
    gh_keysource_t *ls = gh_keysource_ref(src_of(l));
    gh_config_free(l);
    assert_true(gh_keysource_last_ref(ls));
    gh_keyset_t *ks = gh_keysource_acquire(ls);
    assert_non_null(ks);
    gh_keyset_release(ks);
    gh_keysource_free(ls);
}

/* ---- upstream target pools ---- */

static gh_config_t *load_upstreams(const char *rel, const char *upstreams)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "return {\n  listen = { '127.0.0.1:1' },\n  upstreams = {\n%s\n  },\n}\n", upstreams);
    return load_file(rel, text);
}

/* The pool of upstream name in pools (config order is Lua's). */
static gh_upstream_pool_t *pool_named(gh_upstream_pool_t *pools, const gh_config_t *cfg,
                                      const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        assert_ptr_equal(pools[i].conf, &cfg->upstreams[i]);
        if (strcmp(cfg->upstreams[i].name, name) == 0) return &pools[i];
    }
    fail_msg("no upstream '%s'", name);
    return NULL;
}

static size_t count_targets(gh_worker_t *w)
{
    size_t n = 0;
    for (gh_link_t *l = w->targets.next; l != &w->targets; l = l->next) n++;
    return n;
}

/* The worker's target pool of upstream name and address text, or NULL. */
static gh_target_pool_t *find_target(gh_worker_t *w, const char *name, const char *text)
{
    for (gh_link_t *l = w->targets.next; l != &w->targets; l = l->next) {
        gh_target_pool_t *tp = gh_container_of(l, gh_target_pool_t, link);
        if (strcmp(tp->upstream, name) == 0 && strcmp(tp->conf->text, text) == 0) return tp;
    }
    return NULL;
}

static void worker_init(gh_worker_t *w)
{
    memset(w, 0, sizeof(*w));
    gh_list_init(&w->targets);
    w->metrics = NULL;
}

static void test_target_pools_shared_across_generations(void **state)
{
    (void)state;
    static gh_worker_t w;
    worker_init(&w);
    gh_config_t *c1 = load_upstreams("u1.lua", "    a = { targets = { '127.0.0.1:9001' } },\n"
                                               "    b = { targets = { '127.0.0.1:9002' } },");
    gh_config_t *c2 = load_upstreams("u2.lua", "    a = { targets = { '127.0.0.1:9001' },\n"
                                               "          keepalive = 8 },\n"
                                               "    b = { targets = { '127.0.0.1:9003' } },");
    gh_upstream_pool_t *p1 = gh_upstream_pools_new(&w, c1);
    assert_non_null(p1);
    assert_int_equal(count_targets(&w), 2);
    gh_upstream_pool_t *p2 = gh_upstream_pools_new(&w, c2);
    assert_non_null(p2);
    assert_int_equal(count_targets(&w), 3);

    gh_upstream_pool_t *a1 = pool_named(p1, c1, "a"), *a2 = pool_named(p2, c2, "a");
    gh_upstream_pool_t *b1 = pool_named(p1, c1, "b"), *b2 = pool_named(p2, c2, "b");
    assert_int_equal(a2->conf->keepalive, 8); /* each generation its own upstream settings */
    gh_target_pool_t *shared = a1->targets[0];
    assert_ptr_equal(shared, a2->targets[0]);
    assert_int_equal(shared->refs, 2);
    assert_ptr_equal(shared->conf, &shared->own);
    assert_ptr_not_equal(shared->conf->text, c1->upstreams[0].targets[0].text); /* a copy */
    assert_string_equal(shared->upstream, "a");
    assert_int_equal(shared->nidle, 0);
    assert_true(gh_list_empty(&shared->idle));
    assert_ptr_not_equal(b1->targets[0], b2->targets[0]);
    assert_int_equal(b1->targets[0]->refs, 1);
    assert_int_equal(b2->targets[0]->refs, 1);
    assert_string_equal(b1->targets[0]->conf->text, "127.0.0.1:9002");
    assert_string_equal(b2->targets[0]->conf->text, "127.0.0.1:9003");

    /* the first generation goes, and its config with it: the shared pool
     * stays whole, the pool only it used leaves the worker */
    gh_upstream_pools_free(p1, c1);
    gh_config_free(c1);
    assert_int_equal(count_targets(&w), 2);
    assert_ptr_equal(find_target(&w, "a", "127.0.0.1:9001"), shared);
    assert_int_equal(shared->refs, 1);
    assert_string_equal(shared->conf->text, "127.0.0.1:9001");
    assert_string_equal(shared->upstream, "a");
    assert_null(find_target(&w, "b", "127.0.0.1:9002"));
    assert_ptr_equal(find_target(&w, "b", "127.0.0.1:9003"), b2->targets[0]);

    gh_upstream_pools_free(p2, c2);
    gh_config_free(c2);
    assert_int_equal(count_targets(&w), 0);
    assert_true(gh_list_empty(&w.targets));
}

/* A pool belongs to an upstream name and address as written: the same
 * address under another upstream, or spelt another way, is another pool. */
static void test_target_pools_keyed_by_upstream_and_text(void **state)
{
    (void)state;
    static gh_worker_t w;
    worker_init(&w);
    gh_config_t *c1 = load_upstreams("u3.lua", "    a = { targets = { '127.0.0.1:9001' } },\n"
                                               "    c = { targets = { '127.0.0.1:9001' } },");
    gh_config_t *c2 = load_upstreams("u4.lua", "    c = { targets = { '127.0.0.1:9001' } },\n"
                                               "    d = { targets = { '127.0.0.1:9001',\n"
                                               "                      '127.0.0.1:9004' } },");
    gh_upstream_pool_t *p1 = gh_upstream_pools_new(&w, c1);
    gh_upstream_pool_t *p2 = gh_upstream_pools_new(&w, c2);
    assert_non_null(p1);
    assert_non_null(p2);
    gh_target_pool_t *a = pool_named(p1, c1, "a")->targets[0];
    gh_target_pool_t *c = pool_named(p1, c1, "c")->targets[0];
    gh_upstream_pool_t *d = pool_named(p2, c2, "d");
    assert_ptr_not_equal(a, c);
    assert_int_equal(a->refs, 1);
    assert_ptr_equal(pool_named(p2, c2, "c")->targets[0], c);
    assert_int_equal(c->refs, 2);
    assert_ptr_not_equal(d->targets[0], a);
    assert_ptr_not_equal(d->targets[0], c);
    assert_string_equal(d->targets[0]->upstream, "d");
    assert_string_equal(d->targets[1]->conf->text, "127.0.0.1:9004");
    assert_int_equal(count_targets(&w), 4); /* a, c, d:9001, d:9004 */
    gh_upstream_pools_free(p1, c1);
    assert_int_equal(count_targets(&w), 3);
    assert_null(find_target(&w, "a", "127.0.0.1:9001"));
    assert_int_equal(c->refs, 1);
    gh_upstream_pools_free(p2, c2);
    assert_true(gh_list_empty(&w.targets));
    gh_config_free(c1);
    gh_config_free(c2);

    /* the same address written as a name: another pool (its text is the Host) */
    gh_config_t *c3 = load_upstreams("u5.lua", "    a = { targets = { '127.0.0.1:9001' } },");
    gh_config_t *c4 = load_upstreams("u6.lua", "    a = { targets = { 'localhost:9001' } },");
    gh_upstream_pool_t *p3 = gh_upstream_pools_new(&w, c3);
    gh_upstream_pool_t *p4 = gh_upstream_pools_new(&w, c4);
    assert_ptr_not_equal(p3[0].targets[0], p4[0].targets[0]);
    assert_int_equal(count_targets(&w), 2);
    gh_upstream_pools_free(p4, c4);
    gh_upstream_pools_free(p3, c3);
    assert_true(gh_list_empty(&w.targets));
    gh_config_free(c3);
    gh_config_free(c4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_remote_sources),
        cmocka_unit_test(test_different_remote_sources),
        cmocka_unit_test(test_local_sources_never_same),
        cmocka_unit_test(test_keysource_refs),
        cmocka_unit_test(test_target_pools_shared_across_generations),
        cmocka_unit_test(test_target_pools_keyed_by_upstream_and_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
