/* A Redis client on one uv loop: a few pipelined hiredis async connections
 * that reconnect with backoff, a deadline on every call, and scripts run by
 * EVALSHA (sent again as EVAL after a Redis restart forgot them). A call
 * never waits longer than timeout_ms: a Redis that is down fails it at once,
 * one that stops answering fails it at its deadline and is reconnected. */
#ifndef GH_REDIS_H
#define GH_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

typedef struct {
    char *url;     /* as written, for logs (without the password) */
    char host[64]; /* numeric address, resolved at load time */
    int port, db;
    char *user, *password; /* NULL: none */
    double timeout;        /* seconds: every call, connecting included */
    int pool;              /* connections per loop */
    char *prefix;          /* of every key and channel the gateway uses */
} gh_redis_conf_t;

/* url with any credentials replaced by three asterisks, for logs. */
void gh_redis_url_masked(const char *url, char *out, size_t cap);

/* Parses "redis://[[user]:password@]host[:port][/db]". Returns 0, or -1
 * with the reason in err. */
int gh_redis_parse_url(gh_redis_conf_t *c, const char *url, char *err, size_t errlen);

/* A call's end: the reply, or NULL with err (an error reply's text, a
 * timeout, or the connection's failure). Called exactly once per call
 * unless the call was cancelled. */
typedef void (*gh_redis_cb)(void *arg, const redisReply *reply, const char *err);

typedef struct gh_redis_s gh_redis_t;
typedef struct gh_redis_op_s gh_redis_op_t;

typedef struct {
    const char *src;
    char sha[41];
} gh_redis_script_t;

/* Computes the script's SHA1 (what EVALSHA names it by). */
void gh_redis_script_init(gh_redis_script_t *s, const char *src);

/* Connects pool connections on loop; who names the client in logs. The
 * connections never keep the loop alive. Returns NULL on OOM. */
gh_redis_t *gh_redis_new(uv_loop_t *loop, const gh_redis_conf_t *conf, const char *who);

/* Called (on the loop) each time a connection becomes ready, first time
 * and after every reconnect. */
void gh_redis_on_ready(gh_redis_t *rd, void (*fn)(void *arg), void *arg);

/* Called (on the loop) for each failure, by kind: "connect" (an attempt
 * failed), "handshake" (AUTH, SELECT or PING refused), "timeout" (a call
 * missed its deadline; the connection is dropped), "disconnect" (closed
 * under us), "reply" (an error reply to a call), "unavailable" (a call
 * made while no connection was up). Not while closing. */
void gh_redis_on_error(gh_redis_t *rd, void (*fn)(void *arg, const char *kind), void *arg);

/* Fails every pending call, closes the connections and frees rd once its
 * handles have closed (the loop must run on). */
void gh_redis_close(gh_redis_t *rd);

/* Sends a command. Returns 0 when cb will be called (and *op, if given,
 * can cancel it), or -1 with *err when no connection can take it now
 * (cb is then never called). */
int gh_redis_command(gh_redis_t *rd, int argc, const char **argv, const size_t *lens,
                     gh_redis_cb cb, void *arg, gh_redis_op_t **op, const char **err);

/* Runs a script with nkeys of the argc arguments as keys; the same
 * contract as gh_redis_command. */
int gh_redis_eval(gh_redis_t *rd, const gh_redis_script_t *s, int nkeys, int argc,
                  const char **argv, const size_t *lens, gh_redis_cb cb, void *arg,
                  gh_redis_op_t **op, const char **err);

/* Subscribes a dedicated connection to channel: cb gets each message's
 * payload (reply is the message string). Resubscribes after reconnects;
 * gh_redis_on_ready tells when to resynchronise. rd must be made for it
 * (pool 1) and take no other calls. Returns 0 or -1 (OOM). */
int gh_redis_subscribe(gh_redis_t *rd, const char *channel, gh_redis_cb cb, void *arg);

/* A batch sender brackets its calls with these: between them, calls are
 * only buffered (no poll for writability is armed), and gh_redis_flush
 * writes them at once, leaving the poll to what the socket did not take. */
void gh_redis_hold(gh_redis_t *rd);
void gh_redis_flush(gh_redis_t *rd);

/* The call's callback will not be called; its reply is dropped. */
void gh_redis_cancel(gh_redis_op_t *op);

/* True when some connection is ready. */
bool gh_redis_up(const gh_redis_t *rd);

#endif
