/* Runs a fuzz target without libFuzzer: a few built-in edge inputs, then
 * every file in the directories (or the files) named on the command line.
 * Exits 0 when all ran; a broken invariant aborts, naming the input. */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_check.h"

/* Set by the sanitizer runtime when one is linked in, else NULL. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static const char *current = "(none)";

/* Names the input that was running when the process dies; uses only
 * async-signal-safe calls. */
static void name_current(void)
{
    static const char msg[] = "replay: failing input: ";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    ignored = write(STDERR_FILENO, current, strlen(current));
    ignored = write(STDERR_FILENO, "\n", 1);
    (void)ignored;
}

static void on_abort(int sig)
{
    name_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Copies n bytes into an exact-size heap block, as libFuzzer does, so ASan
 * catches a read one past the end, and runs the target on them. */
static void run(const char *name, const void *data, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) {
        fprintf(stderr, "replay: out of memory for %s\n", name);
        exit(1);
    }
    if (n) memcpy(copy, data, n);
    current = name;
    LLVMFuzzerTestOneInput(copy, n);
    current = "(none)";
    free(copy);
}

/* Inputs every target gets whatever its corpus holds: empty, single
 * bytes, and long runs that stress loops and length arithmetic. */
static size_t run_builtin(void)
{
    static const struct {
        const char *p;
        size_t n;
    } small[] = {{"", 0},  {"\0", 1}, {"/", 1}, {"\xff", 1}, {"\n", 1}, {"%", 1},
                 {".", 1}, {":", 1},  {"[", 1}, {",", 1},    {"/\0", 2}};
    size_t count = 0;
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++, count++)
        run("builtin:small", small[i].p, small[i].n);

    enum { LONG = 70000 };
    static const char *const units[] = {"/", "/..", "/%2e%2E", "a", "A/", ",a", "\n/", "%41"};
    char *buf = malloc(LONG);
    if (!buf) exit(1);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++, count++) {
        size_t k = strlen(units[i]), n = 0;
        for (; n + k <= LONG; n += k) memcpy(buf + n, units[i], k);
        run("builtin:long", buf, n);
    }
    free(buf);
    return count;
}

/* Reads a whole file into a fresh buffer; NULL on error. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc(buf, cap);
            if (!grown) break;
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool ok = !ferror(f) && buf;
    fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

static int run_file(const char *path)
{
    size_t n = 0;
    char *data = slurp(path, &n);
    if (!data) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    run(path, data, n);
    free(data);
    return 0;
}

static int skip_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs every regular file in dir, in name order; returns how many, or -1. */
static long run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, skip_hidden, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", dir);
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) < 0) count = -1;
            if (count >= 0) count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    signal(SIGABRT, on_abort);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(name_current);

    size_t count = run_builtin();
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long n = -1;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            n = run_dir(argv[i]);
        else if (stat(argv[i], &st) == 0)
            n = run_file(argv[i]) == 0 ? 1 : -1;
        else
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
        if (n < 0) status = 1;
        if (n == 0) {
            fprintf(stderr, "replay: %s holds no inputs\n", argv[i]);
            status = 1;
        }
        if (n > 0) count += (size_t)n;
    }
    printf("replay: %zu inputs run\n", count);
    return status;
}
