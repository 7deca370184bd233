#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "revoke.h"
#include "token_cache.h"
#include "worker.h"

/* Where a token was found, or why none could be taken. */
typedef struct {
    const char *tok;
    size_t len;
    const char *invalid_request; /* set: answer 400 with this description */
} found_t;

/* Records one credential; a second one, anywhere, is an invalid request
 * (RFC 6750 2: a client uses exactly one method). */
static void take(found_t *f, const char *tok, size_t len)
{
    if (f->tok) f->invalid_request = "more than one credential in the request";
    f->tok = tok;
    f->len = len;
}

static bool b64token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~+/=", c) != NULL;
}

/* Authorization: Bearer <b64token>; other schemes are not our credential. */
static void from_authorization(const gh_req_t *r, found_t *f)
{
    int seen = 0;
    for (uint32_t i = 0; i < r->head.n; i++) {
        const gh_hdr_t *x = &r->head.hdrs[i];
        if (!gh_hdr_eq(gh_hdr_name(&r->head, x), x->name_len, "authorization")) continue;
        if (++seen > 1) {
            f->invalid_request = "more than one Authorization header";
            return;
        }
        const char *v = gh_hdr_value(&r->head, x);
        size_t n = x->value_len;
        if (n < 7 || strncasecmp(v, "bearer ", 7) != 0) continue;
        size_t i0 = 7;
        while (i0 < n && v[i0] == ' ') i0++;
        size_t end = i0;
        while (end < n && b64token_char(v[end])) end++;
        if (end == i0 || end != n) {
            f->invalid_request = "malformed Bearer credentials";
            return;
        }
        take(f, v + i0, end - i0);
    }
}

/* name=value among the pairs of s separated by sep (';' for cookies, '&'
 * for queries), taking every occurrence so that duplicates are refused. */
static void from_pairs(const char *s, size_t n, char sep, const char *name, found_t *f)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == sep)) i++;
        size_t start = i;
        while (i < n && s[i] != sep) i++;
        if (i - start > nl && s[start + nl] == '=' && memcmp(s + start, name, nl) == 0)
            take(f, s + start + nl + 1, i - start - nl - 1);
    }
}

static found_t find_token(const gh_req_t *r, const gh_issuer_t *is)
{
    found_t f = {0};
    if (is->from_header) from_authorization(r, &f);
    for (uint32_t i = 0; is->cookie && !f.invalid_request && i < r->head.n; i++) {
        const gh_hdr_t *x = &r->head.hdrs[i];
        if (gh_hdr_eq(gh_hdr_name(&r->head, x), x->name_len, "cookie"))
            from_pairs(gh_hdr_value(&r->head, x), x->value_len, ';', is->cookie, &f);
    }
    if (is->query && !f.invalid_request && r->query)
        from_pairs(r->query, r->query_len, '&', is->query, &f);
    return f;
}

/* Counts the auth phase's outcome for is: result is the metrics label
 * ("ok", "cached", "missing", a gh_jwt_status_label, ...). */
static void count(const gh_req_t *r, const gh_issuer_t *is, const char *result)
{
    if (r->w && r->w->metrics) gh_metrics_jwt(r->w->metrics, is->name, result);
}

/* Answers per RFC 6750 3: 401 with a bare challenge when there was no
 * token, with error="invalid_token" when it failed; 400 invalid_request. */
static gh_phase_rc refuse(gh_req_t *r, const gh_issuer_t *is, const char *result, int status,
                          const char *error, const char *description)
{
    char challenge[512];
    count(r, is, result);
    if (error)
        snprintf(
            challenge, sizeof(challenge),
            "WWW-Authenticate: Bearer realm=\"%s\", error=\"%s\", error_description=\"%s\"\r\n",
            is->realm, error, description);
    else
        snprintf(challenge, sizeof(challenge), "WWW-Authenticate: Bearer realm=\"%s\"\r\n",
                 is->realm);
    gh_log(GH_LOG_INFO, "auth: %s (request_id=%s route=%s issuer=%s client=%s)", description, r->id,
           r->route->name, is->name, r->conn->peer_ip);
    gh_req_error_with(r, status, description, challenge);
    return GH_PHASE_STOP;
}

/* Not CLOCK_REALTIME_COARSE: it lags by up to a tick, so with clock_skew = 0
 * a token issued this very second could look issued in the future. */
static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void claims_cleanup(void *claims)
{
    json_decref(claims);
}

static gh_phase_rc unavailable(gh_req_t *r, const gh_issuer_t *is, const char *result,
                               const char *why, int retry);

/* Keeps claims (a reference the request now owns) for later phases, unless
 * the token has been revoked since it was issued (checked on every use, as
 * a cached token may have been revoked after it was cached). */
static gh_phase_rc accept_claims(gh_req_t *r, json_t *claims, double now, const char *result)
{
    const gh_issuer_t *is = &r->cfg->issuers[r->route->issuer];
    if (gh_arena_cleanup_add(r->arena, claims_cleanup, claims) != 0) {
        json_decref(claims);
        count(r, is, "error");
        gh_req_error(r, 503, "out of memory");
        return GH_PHASE_STOP;
    }
    gh_revoke_status rs = gh_revoke_check(claims, now);
    if (rs == GH_REVOKE_REVOKED)
        return refuse(r, is, "revoked", 401, "invalid_token", "token revoked");
    if (rs == GH_REVOKE_UNKNOWN)
        return unavailable(r, is, "revocation_unavailable",
                           "the revocation list is not available (revocation.on_error)", 5);
    count(r, is, result);
    r->claims = claims;
    r->roles = &is->roles;
    r->realm = is->realm;
    return GH_PHASE_NEXT;
}

/* 503 with Retry-After: the issuer's keys are missing or being fetched, or
 * the revocation list is unknown, which says nothing about the token. */
static gh_phase_rc unavailable(gh_req_t *r, const gh_issuer_t *is, const char *result,
                               const char *why, int retry)
{
    static _Thread_local time_t last; /* each 503 is in the access log; the reason once a second */
    time_t now = time(NULL);
    char hdr[48];
    count(r, is, result);
    snprintf(hdr, sizeof(hdr), "Retry-After: %d\r\n", retry);
    if (now != last)
        gh_log(GH_LOG_WARN, "auth: %s (request_id=%s route=%s issuer=%s)", why, r->id,
               r->route->name, is->name);
    last = now;
    gh_req_error_with(r, 503, why, hdr);
    return GH_PHASE_STOP;
}

static void unpark(void *arg)
{
    gh_req_t *r = arg;
    if (r->parked.next) gh_list_remove(&r->parked);
}

/* Waits for the key source's fetch under way (at most jwks.wait); the
 * worker re-enters this phase when it ends. */
static gh_phase_rc park(gh_req_t *r, const gh_issuer_t *is, uint64_t seq)
{
    if (!r->parked.next) {
        gh_list_init(&r->parked);
        if (gh_arena_cleanup_add(r->arena, unpark, r) != 0) {
            count(r, is, "error");
            gh_req_error(r, 503, "out of memory");
            return GH_PHASE_STOP;
        }
    }
    r->park_seq = seq;
    r->park_until = uv_now(&r->w->loop) + (uint64_t)(gh_keysource_conf(is->src)->wait * 1000);
    r->auth_waited = true;
    gh_list_push_tail(&r->w->parked, &r->parked);
    return GH_PHASE_WAIT;
}

void gh_auth_wake(gh_worker_t *w)
{
    if (gh_list_empty(&w->parked)) return;
    uint64_t now = uv_now(&w->loop);
    /* Take the ready ones out first: running a request can end others. */
    gh_link_t ready;
    gh_list_init(&ready);
    for (gh_link_t *l = w->parked.next, *next; l != &w->parked; l = next) {
        next = l->next;
        gh_req_t *r = gh_container_of(l, gh_req_t, parked);
        const gh_issuer_t *is = &r->cfg->issuers[r->route->issuer];
        if (now < r->park_until && gh_keysource_seq(is->src) <= r->park_seq) continue;
        gh_list_remove(l);
        gh_list_push_tail(&ready, l);
    }
    while (!gh_list_empty(&ready)) {
        gh_link_t *l = ready.next;
        gh_list_remove(l);
        gh_req_run(gh_container_of(l, gh_req_t, parked));
    }
}

/* The token names a kid the issuer's current keys lack: wait once for a
 * shared re-fetch, unless the source says to answer now. */
static gh_phase_rc unknown_kid(gh_req_t *r, const gh_issuer_t *is, const gh_jwt_t *t, double now)
{
    uint64_t seq;
    bool plausible = gh_jwt_check_claims(t, &is->policy, now) == GH_JWT_OK;
    if (r->auth_waited) {
        if (gh_keysource_seq(is->src) <= r->park_seq)
            return unavailable(r, is, "keys_refreshing",
                               "the issuer's signing keys are being refreshed", 1);
    } else if (plausible && gh_keysource_unknown_kid(is->src, t->kid, t->kid_len, &seq)) {
        return park(r, is, seq);
    }
    return refuse(r, is, gh_jwt_status_label(GH_JWT_UNKNOWN_KID), 401, "invalid_token",
                  gh_jwt_status_description(GH_JWT_UNKNOWN_KID));
}

gh_phase_rc gh_auth_phase(gh_req_t *r)
{
    if (r->route->issuer < 0) return GH_PHASE_NEXT;
    const gh_issuer_t *is = &r->cfg->issuers[r->route->issuer];
    found_t f = find_token(r, is);
    if (f.invalid_request)
        return refuse(r, is, "invalid_request", 400, "invalid_request", f.invalid_request);
    if (!f.tok) return refuse(r, is, "missing", 401, NULL, "a bearer token is required");
    gh_keyset_t *ks = gh_keysource_acquire(is->src);
    if (!ks)
        return unavailable(r, is, "no_keys", "the issuer's signing keys are not available yet", 5);
    double now = wall_now();
    json_t *claims = gh_token_cache_get(r->gen->tokens, is, ks->gen, f.tok, f.len, now);
    if (claims) {
        gh_keyset_release(ks);
        return accept_claims(r, claims, now, "cached");
    }
    gh_jwt_t t;
    gh_jwt_status st = gh_jwt_decode(f.tok, f.len, &is->policy, &t);
    if (st == GH_JWT_OK) st = gh_jwt_verify_signature(&t, &ks->jwks);
    gh_phase_rc rc = GH_PHASE_NEXT;
    if (st == GH_JWT_UNKNOWN_KID && gh_keysource_is_remote(is->src)) {
        rc = unknown_kid(r, is, &t, now);
    } else {
        if (st == GH_JWT_OK) st = gh_jwt_check_claims(&t, &is->policy, now);
        if (st != GH_JWT_OK) {
            rc = refuse(r, is, gh_jwt_status_label(st), 401, "invalid_token",
                        gh_jwt_status_description(st));
        } else {
            claims = json_incref(t.claims);
            gh_token_cache_put(r->gen->tokens, is, ks->gen, f.tok, f.len, claims, t.exp);
            rc = accept_claims(r, claims, now, "ok");
        }
    }
    gh_jwt_clear(&t);
    gh_keyset_release(ks);
    return rc;
}
