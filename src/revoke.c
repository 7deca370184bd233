#include "revoke.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define GH_REVOKE_MAX (1u << 20) /* entries per kind */
#define MAX_ID        1024       /* bytes of a jti or sub */

typedef struct entry_s {
    struct entry_s *next;
    int64_t t;     /* jti: its exp; sub: tokens issued before t are refused */
    int64_t until; /* when the entry stops mattering */
    size_t len;
    char id[];
} entry_t;

typedef struct {
    entry_t **b;
    size_t nb, n;
} map_t;

/* The process's list, read by every worker under the read lock. The sync
 * fields below it belong to the main loop. */
static struct {
    pthread_rwlock_t lock;
    map_t map[2]; /* by gh_revoke_kind */
    atomic_size_t count;
    atomic_bool synced;      /* loaded from Redis at least once */
    _Atomic int64_t last_ok; /* unix time (ms) of the last word from Redis */
    bool redis;              /* Redis configured: the list can be unknown */
    bool deny;               /* revocation.on_error = "deny" */
    double max_stale, subject_ttl, poll;

    char prefix[128]; /* of the key names: a copy, the config may be reloaded */
    gh_redis_conf_t sub_conf;
    gh_redis_t *cmd, *feed;
    uv_timer_t timer;
    bool timer_on, syncing, reported;
    long long seen; /* the Redis version this list reflects */
} R = {
    .lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP, /* writers never starve */
    .max_stale = 30,
    .subject_ttl = 86400,
    .poll = 1,
};

static const char STORE_SRC[] =
    "local kind, id, t, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local keep = kind == 'sub' and tonumber(ARGV[5]) or 0\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - keep)\n"
    "local old = tonumber(redis.call('ZSCORE', KEYS[1], id))\n"
    "if not old or t > old then redis.call('ZADD', KEYS[1], t, id) end\n"
    "local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
    "local ttl = math.ceil(tonumber(last[2]) + keep - now)\n"
    "if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', ARGV[6], v .. ' ' .. kind .. ' ' .. string.format('%d', t) .. ' ' .. "
    "id)\n"
    "return v\n";

static const char DUMP_SRC[] =
    "local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "return { redis.call('GET', KEYS[3]) or '0',\n"
    "  redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES'),\n"
    "  redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - keep), '+inf', 'WITHSCORES') }\n";

static gh_redis_script_t store_script, dump_script;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    gh_redis_script_init(&store_script, STORE_SRC);
    gh_redis_script_init(&dump_script, DUMP_SRC);
}

static const char *KIND[2] = {"jti", "sub"};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: ids come from trusted writers */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static entry_t *map_find(const map_t *m, const char *id, size_t len)
{
    if (!m->nb) return NULL;
    for (entry_t *e = m->b[hash(id, len) & (m->nb - 1)]; e; e = e->next)
        if (e->len == len && memcmp(e->id, id, len) == 0) return e;
    return NULL;
}

/* Doubles the bucket array. Returns 0 or -1 (OOM: the map stays usable). */
static int map_grow(map_t *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b) return -1;
    for (size_t i = 0; i < m->nb; i++)
        for (entry_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash(e->id, e->len) & (nb - 1);
            e->next = b[k];
            b[k] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

/* Removes entries that stopped mattering by now; returns how many. */
static size_t map_prune(map_t *m, int64_t now)
{
    size_t gone = 0;
    for (size_t i = 0; i < m->nb; i++)
        for (entry_t **p = &m->b[i]; *p;) {
            entry_t *e = *p;
            if (e->until > now) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            free(e);
            gone++;
        }
    m->n -= gone;
    return gone;
}

/* Adds or raises an entry; the write lock is held. Returns 0 or -1. */
static int map_put(map_t *m, const char *id, size_t len, int64_t t, int64_t until)
{
    entry_t *e = map_find(m, id, len);
    if (e) {
        if (t > e->t) e->t = t, e->until = until;
        return 0;
    }
    if (m->n >= GH_REVOKE_MAX) return -1;
    if (m->n >= m->nb && map_grow(m) && !m->nb) return -1;
    if (!(e = malloc(sizeof(*e) + len))) return -1;
    memcpy(e->id, id, len);
    e->len = len;
    e->t = t;
    e->until = until;
    size_t k = hash(id, len) & (m->nb - 1);
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
    atomic_fetch_add(&R.count, 1);
    return 0;
}

void gh_revoke_configure(const gh_config_t *cfg)
{
    R.redis = cfg->redis != NULL;
    R.deny = cfg->revocation.deny_on_error;
    R.max_stale = cfg->revocation.max_stale;
    R.subject_ttl = cfg->revocation.subject_ttl;
    R.poll = cfg->revocation.poll;
    pthread_once(&scripts_once, scripts_init);
}

int gh_revoke_add(gh_revoke_kind kind, const char *id, size_t len, int64_t t)
{
    if (len == 0 || len > MAX_ID) return -1;
    int64_t until = kind == GH_REVOKE_SUB ? t + (int64_t)R.subject_ttl : t;
    pthread_rwlock_wrlock(&R.lock);
    int rc = map_put(&R.map[kind], id, len, t, until);
    pthread_rwlock_unlock(&R.lock);
    return rc;
}

size_t gh_revoke_count(void)
{
    return atomic_load(&R.count);
}

void gh_revoke_reset(void)
{
    pthread_rwlock_wrlock(&R.lock);
    for (int k = 0; k < 2; k++) {
        map_prune(&R.map[k], INT64_MAX);
        free(R.map[k].b);
        R.map[k] = (map_t){0};
    }
    atomic_store(&R.count, 0);
    pthread_rwlock_unlock(&R.lock);
}

/* The list can be trusted: no Redis, or synced and heard from recently. */
static bool list_usable(double now)
{
    if (!R.redis) return true;
    return atomic_load(&R.synced) && now - (double)atomic_load(&R.last_ok) / 1e3 <= R.max_stale;
}

gh_revoke_status gh_revoke_check(const json_t *claims, double now)
{
    if (!list_usable(now) && R.deny) return GH_REVOKE_UNKNOWN;
    if (atomic_load_explicit(&R.count, memory_order_relaxed) == 0) return GH_REVOKE_OK;
    const json_t *jti = json_object_get(claims, "jti"), *sub = json_object_get(claims, "sub");
    const json_t *iat = json_object_get(claims, "iat");
    gh_revoke_status st = GH_REVOKE_OK;
    pthread_rwlock_rdlock(&R.lock);
    if (json_is_string(jti)) {
        const entry_t *e =
            map_find(&R.map[GH_REVOKE_JTI], json_string_value(jti), json_string_length(jti));
        if (e && (double)e->until > now) st = GH_REVOKE_REVOKED;
    }
    if (st == GH_REVOKE_OK && json_is_string(sub)) {
        const entry_t *e =
            map_find(&R.map[GH_REVOKE_SUB], json_string_value(sub), json_string_length(sub));
        /* a token that does not say when it was issued cannot prove it came after */
        if (e && (double)e->until > now && (!json_is_number(iat) || json_number_value(iat) < e->t))
            st = GH_REVOKE_REVOKED;
    }
    pthread_rwlock_unlock(&R.lock);
    return st;
}

static void prune_all(int64_t now)
{
    pthread_rwlock_wrlock(&R.lock);
    size_t gone = map_prune(&R.map[0], now) + map_prune(&R.map[1], now);
    atomic_fetch_sub(&R.count, gone);
    pthread_rwlock_unlock(&R.lock);
}

/* Key names: <prefix>revoked:jti|sub|version, channel <prefix>revoked. */
static void key_name(char *out, size_t cap, const char *prefix, const char *what)
{
    snprintf(out, cap, "%srevoked%s%s", prefix, what[0] ? ":" : "", what);
}

int gh_revoke_store(gh_redis_t *rd, const gh_config_t *cfg, gh_revoke_kind kind, const char *id,
                    size_t len, int64_t t, gh_redis_cb cb, void *arg, gh_redis_op_t **op,
                    const char **err)
{
    char zset[256], ver[256], chan[256], ts[24], now[24], keep[24];
    const char *prefix = cfg->redis->prefix;
    key_name(zset, sizeof(zset), prefix, KIND[kind]);
    key_name(ver, sizeof(ver), prefix, "version");
    key_name(chan, sizeof(chan), prefix, "");
    snprintf(ts, sizeof(ts), "%lld", (long long)t);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(keep, sizeof(keep), "%lld", (long long)cfg->revocation.subject_ttl);
    const char *argv[8] = {zset, ver, KIND[kind], id, ts, now, keep, chan};
    size_t lens[8];
    for (int i = 0; i < 8; i++) lens[i] = strlen(argv[i]);
    lens[3] = len;
    return gh_redis_eval(rd, &store_script, 2, 8, argv, lens, cb, arg, op, err);
}

/* Merges a dump's flat [id, score, id, score...] into the list. A Redis
 * that lost data (restarted without persistence) cannot un-revoke: entries
 * leave only when they stop mattering. */
static void merge(gh_revoke_kind kind, const redisReply *a)
{
    if (!a || a->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const redisReply *id = a->element[i], *score = a->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING) continue;
        if (gh_revoke_add(kind, id->str, id->len, (int64_t)strtod(score->str, NULL)) &&
            !R.reported) {
            gh_log(GH_LOG_ERROR, "revocation: the local list is full (%u entries per kind)",
                   GH_REVOKE_MAX);
            R.reported = true;
        }
    }
}

static void heard_from_redis(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&R.last_ok, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void dump_done(void *arg, const redisReply *reply, const char *err)
{
    (void)arg;
    R.syncing = false;
    if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        gh_log(GH_LOG_WARN, "revocation: cannot load the list from redis: %s",
               err ? err : "unexpected reply");
        return;
    }
    merge(GH_REVOKE_JTI, reply->element[1]);
    merge(GH_REVOKE_SUB, reply->element[2]);
    const redisReply *v = reply->element[0];
    R.seen = v->type == REDIS_REPLY_STRING ? atoll(v->str) : v->integer;
    heard_from_redis();
    if (!atomic_exchange(&R.synced, true))
        gh_log(GH_LOG_INFO, "revocation: list loaded from redis (%zu entries)", gh_revoke_count());
}

/* Loads the whole list (once per subscription, and when a version gap shows
 * a message was missed). */
static void resync(void *arg)
{
    (void)arg;
    if (R.syncing || !R.cmd) return;
    char j[256], s[256], v[256], now[24], keep[24];
    key_name(j, sizeof(j), R.prefix, "jti");
    key_name(s, sizeof(s), R.prefix, "sub");
    key_name(v, sizeof(v), R.prefix, "version");
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(keep, sizeof(keep), "%lld", (long long)R.subject_ttl);
    const char *argv[5] = {j, s, v, now, keep};
    size_t lens[5];
    for (int i = 0; i < 5; i++) lens[i] = strlen(argv[i]);
    const char *err;
    if (gh_redis_eval(R.cmd, &dump_script, 3, 5, argv, lens, dump_done, NULL, NULL, &err) == 0)
        R.syncing = true;
}

/* "<version> <jti|sub> <t> <id>" from the channel. */
static void on_message(void *arg, const redisReply *msg, const char *err)
{
    (void)arg;
    if (err || !msg) return;
    char kind[4];
    long long v, t;
    int off = 0;
    heard_from_redis();
    if (sscanf(msg->str, "%lld %3s %lld %n", &v, kind, &t, &off) != 3 || off <= 0 ||
        (size_t)off >= msg->len) {
        gh_log(GH_LOG_WARN, "revocation: ignoring a malformed message on the channel");
        return;
    }
    gh_revoke_kind k = strcmp(kind, "sub") == 0 ? GH_REVOKE_SUB : GH_REVOKE_JTI;
    if (strcmp(kind, KIND[k]) != 0) return;
    gh_revoke_add(k, msg->str + off, msg->len - (size_t)off, t);
    if (v == R.seen + 1)
        R.seen = v;
    else if (v > R.seen)
        resync(NULL); /* a message went missing: load the whole list */
}

static void version_done(void *arg, const redisReply *reply, const char *err)
{
    (void)arg;
    if (err) return; /* the client logs connection trouble */
    heard_from_redis();
    long long v = reply->type == REDIS_REPLY_STRING ? atoll(reply->str) : 0;
    if (v != R.seen || !atomic_load(&R.synced)) resync(NULL);
}

/* Every poll seconds: prune, and ask Redis for its version. */
static void on_poll(uv_timer_t *t)
{
    (void)t;
    prune_all((int64_t)time(NULL));
    if (!R.cmd) return;
    char v[256];
    key_name(v, sizeof(v), R.prefix, "version");
    const char *argv[2] = {"GET", v};
    size_t lens[2] = {3, strlen(v)};
    const char *err;
    gh_redis_command(R.cmd, 2, argv, lens, version_done, NULL, NULL, &err);
}

int gh_revoke_sync_start(uv_loop_t *loop, const gh_config_t *cfg)
{
    gh_revoke_configure(cfg);
    uint64_t every = (uint64_t)(R.poll * 1000);
    uv_timer_init(loop, &R.timer);
    uv_timer_start(&R.timer, on_poll, every, every);
    uv_unref((uv_handle_t *)&R.timer);
    R.timer_on = true;
    if (!cfg->redis) return 0;
    char chan[256];
    snprintf(R.prefix, sizeof(R.prefix), "%s", cfg->redis->prefix);
    key_name(chan, sizeof(chan), R.prefix, "");
    R.sub_conf = *cfg->redis;
    R.sub_conf.pool = 1;
    R.cmd = gh_redis_new(loop, cfg->redis, "revocations");
    R.feed = gh_redis_new(loop, &R.sub_conf, "revocation feed");
    if (!R.cmd || !R.feed) return -1;
    gh_redis_on_ready(R.feed, resync, NULL);
    return gh_redis_subscribe(R.feed, chan, on_message, NULL);
}

gh_redis_t *gh_revoke_redis(void)
{
    return R.cmd;
}

void gh_revoke_sync_stop(void)
{
    if (R.timer_on) uv_close((uv_handle_t *)&R.timer, NULL);
    R.timer_on = false;
    gh_redis_close(R.cmd);
    gh_redis_close(R.feed);
    R.cmd = R.feed = NULL;
}
