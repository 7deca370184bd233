/* The configuration snapshot: loaded from gatehouse.lua and the route files,
 * validated whole, immutable once built. */
#ifndef GH_CONFIG_H
#define GH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "headers.h"
#include "issuer.h"
#include "lua_vm.h"
#include "redis.h"
#include "router.h"

typedef struct {
    char *text; /* as written, e.g. "127.0.0.1:8081"; used for logs and Host */
    struct sockaddr_storage addr;
} gh_target_conf_t;

typedef struct {
    char *name;
    gh_target_conf_t *targets;
    size_t ntargets;
    unsigned keepalive;       /* idle connections kept per target per worker */
    double keepalive_timeout; /* seconds an idle pooled connection is kept */
    double connect_timeout;   /* -> 504 */
    double read_timeout;      /* gap while waiting for response bytes -> 504 */
} gh_upstream_conf_t;

typedef struct {
    size_t max_uri, max_header_bytes, max_headers;
    uint64_t max_body; /* 0: unlimited */
    double header_timeout, body_timeout, idle_timeout, drain_timeout;
} gh_limits_t;

typedef struct {
    char *text;
    struct sockaddr_storage addr;
} gh_listen_conf_t;

typedef struct {
    bool deny_on_error; /* no usable deny-list: 503 (default) or let tokens through */
    double max_stale;   /* seconds the last synced list serves while Redis is unreachable */
    double subject_ttl; /* seconds a sign-out-everywhere entry is kept */
    double poll;        /* seconds between version checks against Redis */
} gh_revocation_conf_t;

typedef struct gh_config_s {
    char *path;
    gh_listen_conf_t *listen;
    size_t nlisten;
    int workers;
    char *access_log;
    gh_cidr_t *trusted;
    size_t ntrusted;
    gh_limits_t limits;
    gh_upstream_conf_t *upstreams;
    size_t nupstreams;
    gh_issuer_t *issuers;
    size_t nissuers;
    size_t token_cache; /* verified tokens cached per worker; 0: off */
    gh_router_t *router;
    gh_lua_conf_t lua;
    char *routes_dir;       /* where the route files are */
    char **route_files;     /* in the order they were loaded (each worker's VM */
    size_t nroute_files;    /* loads them again in this order, */
    char **route_srcs;      /* from these bytes, read once: a file edited meanwhile */
                            /* cannot split the workers; NULL: could not be read) */
    gh_redis_conf_t *redis; /* NULL: no Redis, all shared state local */
    gh_revocation_conf_t revocation;
    gh_listen_conf_t *admin; /* the admin listener, or NULL */
    size_t rate_limit_keys;  /* local rate-limit keys kept per instance */
    char *admin_token;       /* the admin API's bearer token, or NULL: none */
    bool watch;              /* reload when the config or route files change */
    bool reload_runs_tests;  /* a reload runs the routes' *_test.lua first */
    int log_level;           /* gh_log_level: the least severe line logged */
} gh_config_t;

/* Loads and validates the whole configuration. Returns a snapshot, or NULL
 * with "file:line: message" in err. Never partially succeeds. */
gh_config_t *gh_config_load(const char *path, char *err, size_t errlen);

void gh_config_free(gh_config_t *cfg);

/* True when peer is in cfg's trusted_proxies. */
bool gh_config_trusts(const gh_config_t *cfg, const struct sockaddr_storage *peer);

/* True when two socket addresses (IPv4 or IPv6) are the same. */
bool gh_config_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Parses "host:port" or "[v6]:port" into addr (resolving names once, at load
 * time). Returns 0, or -1 with a reason in err. */
int gh_config_parse_addr(const char *text, bool passive, struct sockaddr_storage *addr, char *err,
                         size_t errlen);

#endif
