#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/rand.h>
#include <uv.h>

/* ---- GCRA ---- */

bool gh_limit_conf_valid(const gh_limit_conf_t *conf)
{
    return isfinite(conf->rate) && conf->rate > 0 && isfinite(conf->per) && conf->per > 0 &&
           isfinite(conf->burst) && conf->burst >= 1;
}

/* The clamps come before any conversion to an integer: a huge per/rate
 * (or one that overflowed to infinity) becomes GH_LIMIT_MAX_US. */
void gh_gcra_params(const gh_limit_conf_t *conf, int64_t *t_us, int64_t *tau_us)
{
    double t = conf->per * 1e6 / conf->rate;
    t = t < (double)GH_LIMIT_MAX_US ? floor(t + 0.5) : (double)GH_LIMIT_MAX_US;
    if (t < 1) t = 1;
    double tau = conf->burst * t;
    tau = tau < (double)GH_LIMIT_MAX_US ? floor(tau) : (double)GH_LIMIT_MAX_US;
    *t_us = (int64_t)t;
    *tau_us = (int64_t)tau; /* >= t_us, as burst >= 1 */
}

int64_t gh_gcra(int64_t *tat, int64_t now_us, const gh_limit_conf_t *conf, gh_limit_result_t *res)
{
    int64_t t, tau;
    gh_gcra_params(conf, &t, &tau);
    int64_t tat0 = *tat > now_us ? *tat : now_us;
    int64_t next = tat0 + t;
    res->limit = conf->burst;
    if (next - now_us > tau) {
        /* next > now_us + tau >= now_us + t, so tat0 > now_us: nothing negative
         * even when the clock went back past a stored tat. */
        res->allowed = false;
        res->remaining = 0;
        res->reset = (double)(tat0 - now_us) / 1e6;
        res->retry_after = (double)(next - tau - now_us) / 1e6;
    } else {
        *tat = next;
        res->allowed = true;
        res->remaining = (double)((tau - (next - now_us)) / t);
        res->reset = (double)(next - now_us) / 1e6;
        res->retry_after = 0;
    }
    return *tat > now_us ? *tat - now_us : 0;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) ---- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

/* The little-endian 64-bit word at p. */
static uint64_t load64(const uint8_t *p)
{
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--) w = w << 8 | p[i];
    return w;
}

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

/* One message word through c = 2 rounds. */
static void compress(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

uint64_t gh_siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) compress(v, load64(p + i));
    /* The last word: the 0 to 7 bytes left, then len mod 256 in the top byte. */
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = whole; i < len; i++) last |= (uint64_t)p[i] << (8 * (i - whole));
    compress(v, last);
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++) sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- The table ---- */

/* Expired entries reclaimed per decision at most: more than the one entry a
 * decision can add, so reclaiming keeps ahead, and a bounded time under the
 * stripe's lock however many expire at once. */
#define RECLAIM_BUDGET 8

/* Stripes at most; a small table gets fewer, so each holds about 16 keys
 * or more. */
#define MAX_STRIPES 64

typedef struct entry_s {
    struct entry_s *next; /* bucket chain */
    uint64_t hash;
    int64_t tat; /* also the expiry: at or before now, the entry decides like no entry */
    size_t slot; /* index in the stripe's heap */
    size_t len;
    char key[];
} entry_t;

/* One lock's share of the table: a chained hash and a min-heap of the same
 * entries ordered on tat, whose root is the next to expire. */
typedef struct {
    uv_mutex_t mu;
    entry_t **buckets; /* nbuckets, a power of two >= cap */
    entry_t **heap;    /* n entries of cap */
    size_t nbuckets, n, cap;
} stripe_t;

/* Each stripe on its own cache lines, so workers deciding in different
 * stripes do not contend for one. */
typedef struct {
    _Alignas(64) stripe_t s;
} padded_stripe_t;

struct gh_limit_table_s {
    uint8_t hkey[16]; /* SipHash key: keys cannot be chosen to collide */
    size_t nstripes;  /* a power of two */
    padded_stripe_t *stripes;
};

static void heap_set(stripe_t *s, size_t i, entry_t *e)
{
    s->heap[i] = e;
    e->slot = i;
}

static void sift_up(stripe_t *s, size_t i)
{
    entry_t *e = s->heap[i];
    for (size_t p; i > 0 && s->heap[p = (i - 1) / 2]->tat > e->tat; i = p)
        heap_set(s, i, s->heap[p]);
    heap_set(s, i, e);
}

/* Restores the heap below slot i after its entry's tat grew. */
static void sift_down(stripe_t *s, size_t i)
{
    entry_t *e = s->heap[i];
    for (size_t c; (c = 2 * i + 1) < s->n; i = c) {
        if (c + 1 < s->n && s->heap[c + 1]->tat < s->heap[c]->tat) c++;
        if (e->tat <= s->heap[c]->tat) break;
        heap_set(s, i, s->heap[c]);
    }
    heap_set(s, i, e);
}

/* Removes and frees the entry expiring first. */
static void drop_first(stripe_t *s)
{
    entry_t *e = s->heap[0];
    entry_t **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    if (--s->n > 0) {
        heap_set(s, 0, s->heap[s->n]);
        sift_down(s, 0);
    }
    free(e);
}

/* Drops up to RECLAIM_BUDGET entries that expired at or before now. */
static void reclaim(stripe_t *s, int64_t now)
{
    for (int i = 0; i < RECLAIM_BUDGET && s->n > 0 && s->heap[0]->tat <= now; i++) drop_first(s);
}

static entry_t *find(stripe_t *s, uint64_t h, const char *key, size_t len)
{
    for (entry_t *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e;
    return NULL;
}

/* A new entry for key (tat 0: fresh), or NULL when memory is short. When
 * the stripe is full, the entry expiring first makes room: an expired one
 * if any, else the live one whose loss frees the least quota early. */
static entry_t *insert(stripe_t *s, uint64_t h, const char *key, size_t len)
{
    entry_t *e = malloc(sizeof(*e) + len);
    if (!e) return NULL;
    memcpy(e->key, key, len);
    e->len = len;
    e->hash = h;
    e->tat = 0;
    if (s->n == s->cap) drop_first(s);
    entry_t **b = &s->buckets[h & (s->nbuckets - 1)];
    e->next = *b;
    *b = e;
    heap_set(s, s->n, e);
    sift_up(s, s->n++);
    return e;
}

/* Sets up a stripe of cap keys; returns 0 or -1 (out of memory). */
static int stripe_init(stripe_t *s, size_t cap)
{
    s->n = 0;
    s->cap = cap;
    s->nbuckets = 16;
    while (s->nbuckets < cap) s->nbuckets *= 2;
    s->buckets = calloc(s->nbuckets, sizeof(entry_t *));
    s->heap = calloc(cap, sizeof(entry_t *));
    if (!s->buckets || !s->heap || uv_mutex_init(&s->mu) != 0) {
        free(s->buckets);
        free(s->heap);
        return -1;
    }
    return 0;
}

static void stripe_free(stripe_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->heap[i]);
    free(s->buckets);
    free(s->heap);
    uv_mutex_destroy(&s->mu);
}

/* The stripe count for max_keys: a power of two, MAX_STRIPES at most, and
 * small enough that each stripe holds about 16 keys or more. */
static size_t stripe_count(size_t max_keys)
{
    size_t n = 1;
    while (n < MAX_STRIPES && n * 2 * 16 <= max_keys) n *= 2;
    return n;
}

/* The bound is kept per stripe (max_keys shared out between them) so that
 * no decision needs more than its own stripe's lock. */
gh_limit_table_t *gh_limit_table_new(size_t max_keys)
{
    if (max_keys == 0) return NULL;
    gh_limit_table_t *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->nstripes = stripe_count(max_keys);
    t->stripes = aligned_alloc(_Alignof(padded_stripe_t), t->nstripes * sizeof(padded_stripe_t));
    if (!t->stripes || (getrandom(t->hkey, sizeof(t->hkey), 0) != sizeof(t->hkey) &&
                        RAND_bytes(t->hkey, sizeof(t->hkey)) != 1)) {
        free(t->stripes);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < t->nstripes; i++) {
        size_t cap = max_keys / t->nstripes + (i < max_keys % t->nstripes);
        if (stripe_init(&t->stripes[i].s, cap) != 0) {
            while (i-- > 0) stripe_free(&t->stripes[i].s);
            free(t->stripes);
            free(t);
            return NULL;
        }
    }
    return t;
}

void gh_limit_table_free(gh_limit_table_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nstripes; i++) stripe_free(&t->stripes[i].s);
    free(t->stripes);
    free(t);
}

int gh_limit_local(gh_limit_table_t *t, const char *key, size_t klen, const gh_limit_conf_t *conf,
                   int64_t now_us, gh_limit_result_t *res)
{
    if (klen > GH_LIMIT_KEY_MAX || (!key && klen > 0) || !gh_limit_conf_valid(conf) || now_us < 0 ||
        now_us > GH_LIMIT_MAX_NOW)
        return -1;
    if (!key) key = "";
    uint64_t h = gh_siphash24(t->hkey, key, klen);
    stripe_t *s = &t->stripes[(h >> 32) & (t->nstripes - 1)].s;
    uv_mutex_lock(&s->mu);
    reclaim(s, now_us);
    entry_t *e = find(s, h, key, klen);
    if (!e) e = insert(s, h, key, klen);
    if (e) {
        int64_t was = e->tat;
        gh_gcra(&e->tat, now_us, conf, res);
        if (e->tat != was) sift_down(s, e->slot);
    }
    uv_mutex_unlock(&s->mu);
    return e ? 0 : -1;
}

size_t gh_limit_table_count(gh_limit_table_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nstripes; i++) {
        stripe_t *s = &t->stripes[i].s;
        uv_mutex_lock(&s->mu);
        n += s->n;
        uv_mutex_unlock(&s->mu);
    }
    return n;
}
