/* gh_bench_verify: how many tokens per second the JWT chain verifies in
 * process, every token a cache miss (decode, signature, claims), on N
 * threads at once, to set beside `openssl speed -multi N` for the same key.
 *
 *   gh_bench_verify PUB.pem TOKENS THREADS ISSUER AUDIENCE [SECONDS]
 *
 * TOKENS holds one token per line (all signed by PUB.pem's key). Each
 * thread walks its own share of them in a loop for SECONDS (default 3).
 * Prints "verify_per_s=N" and "verify_failed=N" (must be 0). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwk.h"
#include "jwt.h"

static char **tokens;
static size_t ntokens;
static int nthreads;
static double seconds = 3;
static gh_jwks_t keys;
static gh_jwt_policy_t policy;

typedef struct {
    int id;
    unsigned long done, failed;
} worker_t;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
    worker_t *w = arg;
    double end = mono() + seconds, now = (double)time(NULL);
    size_t i = (size_t)w->id;
    while (mono() < end) {
        for (int k = 0; k < 64; k++) {
            gh_jwt_t t;
            const char *tok = tokens[i];
            if (gh_jwt_verify(tok, strlen(tok), &policy, &keys, now, &t) == GH_JWT_OK)
                gh_jwt_clear(&t);
            else
                w->failed++;
            w->done++;
            i += (size_t)nthreads;
            if (i >= ntokens) i = (size_t)w->id;
        }
    }
    return NULL;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) buf = (free(buf), NULL);
    fclose(f);
    if (buf) buf[n] = '\0', *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s PUB.pem TOKENS THREADS ISSUER AUDIENCE [SECONDS]\n", argv[0]);
        return 2;
    }
    nthreads = atoi(argv[3]);
    if (argc > 6) seconds = atof(argv[6]);
    size_t len;
    char err[256], *pem = slurp(argv[1], &len), *text;
    static gh_jwk_t key;
    if (!pem || gh_jwk_from_pem(pem, len, &key, err, sizeof(err)) != 0) {
        fprintf(stderr, "gh_bench_verify: %s: %s\n", argv[1], pem ? err : "cannot read");
        return 1;
    }
    keys = (gh_jwks_t){&key, 1};
    if (!(text = slurp(argv[2], &len))) {
        fprintf(stderr, "gh_bench_verify: cannot read %s\n", argv[2]);
        return 1;
    }
    size_t cap = 1024;
    tokens = malloc(cap * sizeof(char *));
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (ntokens == cap) tokens = realloc(tokens, (cap *= 2) * sizeof(char *));
        tokens[ntokens++] = line;
    }
    if (nthreads < 1 || ntokens < (size_t)nthreads) {
        fprintf(stderr, "gh_bench_verify: need THREADS >= 1 and at least that many tokens\n");
        return 2;
    }
    const char *aud[] = {argv[5]};
    size_t aud_len[] = {strlen(argv[5])};
    policy = (gh_jwt_policy_t){.issuer = argv[4],
                               .issuer_len = strlen(argv[4]),
                               .audiences = aud,
                               .audience_lens = aud_len,
                               .naud = 1,
                               .algorithms = ~0u,
                               .clock_skew = 30,
                               .require_exp = true};
    pthread_t th[64];
    worker_t ws[64] = {0};
    if (nthreads > 64) nthreads = 64;
    double t0 = mono();
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        pthread_create(&th[i], NULL, work, &ws[i]);
    }
    unsigned long done = 0, failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        done += ws[i].done;
        failed += ws[i].failed;
    }
    printf("verify_per_s=%.0f\nverify_failed=%lu\n", (double)done / (mono() - t0), failed);
    return failed ? 1 : 0;
}
