#include "snapshot.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static gh_snapshot_retire_fn retire; /* set once, before any worker runs */

gh_snapshot_t *gh_snapshot_new(gh_config_t *cfg, uint64_t generation)
{
    gh_snapshot_t *s = calloc(1, sizeof(*s));
    if (!s) {
        gh_config_free(cfg);
        return NULL;
    }
    s->cfg = cfg;
    s->refs = 1;
    s->generation = generation;
    s->loaded_at = (double)time(NULL);
    gh_snapshot_hash(cfg, s->hash);
    return s;
}

void gh_snapshot_on_retire(gh_snapshot_retire_fn fn)
{
    retire = fn;
}

gh_snapshot_t *gh_snapshot_ref(gh_snapshot_t *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void gh_snapshot_release(gh_snapshot_t *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    if (retire)
        retire(s);
    else
        gh_snapshot_free(s);
}

void gh_snapshot_free(gh_snapshot_t *s)
{
    if (!s) return;
    gh_config_free(s->cfg);
    free(s);
}

static void hash_file(EVP_MD_CTX *md, const char *path)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    char buf[8192];
    size_t n;
    EVP_DigestUpdate(md, path ? path : "", path ? strlen(path) + 1 : 1);
    while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0) EVP_DigestUpdate(md, buf, n);
    if (f) fclose(f);
}

void gh_snapshot_hash(const gh_config_t *cfg, char out[17])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    out[0] = '\0';
    if (!md) return;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        hash_file(md, cfg->path);
        for (size_t i = 0; i < cfg->nroute_files; i++) { /* the bytes the VMs run */
            const char *src = cfg->route_srcs ? cfg->route_srcs[i] : NULL;
            EVP_DigestUpdate(md, cfg->route_files[i], strlen(cfg->route_files[i]) + 1);
            if (src) EVP_DigestUpdate(md, src, strlen(src));
        }
        EVP_DigestFinal_ex(md, d, &dlen);
    }
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 8 && i < dlen; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}
