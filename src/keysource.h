/* Where an issuer's verification keys come from, shared by every worker.
 *
 * A local source (secret, PEM, JWKS file) holds one key set for its life.
 * A remote source (jwks_url, or OIDC discovery) is fetched on the main
 * thread's loop: refreshed ahead of its Cache-Control lifetime, re-fetched
 * once (single-flight, with a cooldown and a negative cache) when a token
 * names a kid it lacks, and kept serving its last good set when a refresh
 * fails. Workers read the current set under a mutex and hold a reference
 * while they verify; a new set never disturbs a verification in progress. */
#ifndef GH_KEYSOURCE_H
#define GH_KEYSOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "jwk.h"

/* An immutable key set. gen identifies it: a new set gets a new gen, so a
 * worker's cached verifications under an older one can be dropped. */
typedef struct gh_keyset_s {
    int refs;      /* atomic: the source's own plus each worker's in use */
    bool immortal; /* a local source's set: lives as long as the source */
    uint64_t gen;
    gh_jwks_t jwks;
} gh_keyset_t;

typedef enum { GH_KEYS_START_503, GH_KEYS_START_WAIT } gh_keys_startup_t;

typedef struct {
    char *jwks_url;      /* or NULL with discovery */
    char *discovery_url; /* <issuer>/.well-known/openid-configuration, or NULL */
    char *issuer;        /* the discovery document must name exactly this */
    uint32_t algorithms; /* a fetched set needs a key for one of these */
    double refresh, refresh_min, refresh_max;
    double cooldown, negative_ttl, timeout, wait;
    gh_keys_startup_t startup;
    double startup_timeout;
    char *ca_file;
} gh_keysource_conf_t;

typedef struct gh_keysource_s gh_keysource_t;

/* Fills the defaults documented in README (refresh 300 s within 30..3600,
 * cooldown 10, negative_ttl 60, timeout 5, wait 3, startup "503" with 30). */
void gh_keysource_conf_defaults(gh_keysource_conf_t *c);

/* A source holding keys for good (takes them; *keys is left empty). */
gh_keysource_t *gh_keysource_local(gh_jwks_t *keys);

/* A remote source named for logs; takes the strings in conf. Holds no
 * keys until gh_keysource_start has fetched them. */
gh_keysource_t *gh_keysource_remote(const char *name, gh_keysource_conf_t *conf);

/* Drops a reference; the last one frees the source (stopped first, on the
 * main loop, if it was started). */
void gh_keysource_free(gh_keysource_t *s);

/* Another reference, for a reloaded config whose issuer fetches from the
 * same place in the same way (gh_keysource_same): its keys, cache and
 * refresh schedule carry over instead of starting from nothing. */
gh_keysource_t *gh_keysource_ref(gh_keysource_t *s);
bool gh_keysource_last_ref(const gh_keysource_t *s);

/* True when two remote sources have the same name and configuration. */
bool gh_keysource_same(const gh_keysource_t *a, const gh_keysource_t *b);

bool gh_keysource_is_remote(const gh_keysource_t *s);
const gh_keysource_conf_t *gh_keysource_conf(const gh_keysource_t *s);

/* ---- workers (any thread) ---- */

/* The current key set with a reference held, or NULL when a remote source
 * has none yet. Release with gh_keyset_release. */
gh_keyset_t *gh_keysource_acquire(gh_keysource_t *s);
void gh_keyset_release(gh_keyset_t *ks);

/* Completed fetches so far: a request parked at seq resumes once this
 * moves past it. */
uint64_t gh_keysource_seq(gh_keysource_t *s);

/* A token named a kid the current set lacks. True: a fetch is under way
 * (started now or already), and *seq is the count to wait past. False:
 * answer at once (a local source, a kid in the negative cache, or within
 * the cooldown of the last kid-triggered fetch). */
bool gh_keysource_unknown_kid(gh_keysource_t *s, const char *kid, size_t kid_len, uint64_t *seq);

/* Fetch attempts that failed, for logs and metrics. */
uint64_t gh_keysource_failures(gh_keysource_t *s);

/* ---- the main thread ---- */

/* Called on the main loop after every fetch of any source ends. */
typedef void (*gh_keys_notify_fn)(void *arg);

/* Starts fetching a remote source on loop (a local one: nothing to do).
 * Returns 0 or a libuv error. */
int gh_keysource_start(gh_keysource_t *s, uv_loop_t *loop, gh_keys_notify_fn notify, void *arg);

/* Cancels fetches and closes the source's handles (the loop then ends).
 * True when it was running: free it only once the loop has run the close
 * callbacks. */
bool gh_keysource_stop(gh_keysource_t *s);

/* Stops every started source, at shutdown: whichever snapshot still
 * holds one (a retired one a worker has not let go of yet), its handles
 * would keep the main loop from ending. */
void gh_keysource_stop_all(void);

/* True once a source has a key set; the last fetch error otherwise. */
bool gh_keysource_ready(gh_keysource_t *s, char *why, size_t whylen);

#endif
