/* A loaded configuration as the unit of reload: reference counted, shared
 * by every worker's generation built from it (worker.c) and by the main
 * thread while it is current. The last release hands it to the main
 * thread, which stops what only it used (remote key fetches) and frees it. */
#ifndef GH_SNAPSHOT_H
#define GH_SNAPSHOT_H

#include <stdint.h>

#include "config.h"

typedef struct gh_snapshot_s {
    gh_config_t *cfg;
    int refs;                   /* atomic */
    uint64_t generation;        /* 1 at startup, then one more per successful reload */
    char hash[17];              /* of the config file and route files, hex */
    double loaded_at;           /* unix time */
    struct gh_snapshot_s *next; /* the main thread's lists */
} gh_snapshot_t;

/* Called (on any thread) with a snapshot whose last reference went. */
typedef void (*gh_snapshot_retire_fn)(gh_snapshot_t *s);

/* Wraps cfg (taken) with one reference. NULL on OOM (cfg is then freed). */
gh_snapshot_t *gh_snapshot_new(gh_config_t *cfg, uint64_t generation);

/* Sets where released snapshots go; without one they are freed at once
 * (tests, and nothing running on the main loop). */
void gh_snapshot_on_retire(gh_snapshot_retire_fn fn);

gh_snapshot_t *gh_snapshot_ref(gh_snapshot_t *s);
void gh_snapshot_release(gh_snapshot_t *s);

/* Frees a retired snapshot and its config (main thread, its key sources
 * stopped and their handles closed). */
void gh_snapshot_free(gh_snapshot_t *s);

/* A short content hash of the config file and the route files it loaded
 * (SHA-256, first 8 bytes in hex), in out. */
void gh_snapshot_hash(const gh_config_t *cfg, char out[17]);

#endif
