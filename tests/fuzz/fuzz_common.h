/* Helpers shared by the libFuzzer targets tests/fuzz/fuzz_*.c.
 *
 * Every target is compiled twice:
 *  - into its own libFuzzer binary (POPSTEER_FUZZ=ON, clang), where its entry point is
 *    LLVMFuzzerTestOneInput;
 *  - into the replay test (tests/fuzz/replay.c, any compiler, FUZZ_REPLAY defined), where the
 *    entry point is renamed fuzz_<name>_one so that all targets can live in one executable and
 *    the committed corpus is replayed by `make test` without clang.
 * A target names itself with `#define FUZZ_TARGET name` before including this header.
 *
 * Everything here is static: several targets share one replay executable. */
#ifndef POPSTEER_FUZZ_COMMON_H
#define POPSTEER_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, mkdtemp */
#endif

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CAT_(a, b) a##b
#define FUZZ_CAT(a, b) FUZZ_CAT_(a, b)
#ifdef FUZZ_REPLAY
#define FUZZ_ENTRY FUZZ_CAT(FUZZ_CAT(fuzz_, FUZZ_TARGET), _one)
#else
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

/* A violated invariant is a finding: abort so that libFuzzer (or the replay test) reports it
 * with the input that caused it. */
#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* FNV-1a of the input: lets a target derive loader options from the bytes themselves, so the
 * corpus stays plain input files and every run is reproducible from the file alone. */
static inline uint32_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 16777619u;
    }
    return h;
}

/* The parsers read paths, not buffers (ps_read_file). The input goes into an anonymous
 * in-memory file reused across runs and is opened through /proc/self/fd/N: no disk traffic,
 * and nothing is left behind when the fuzzer is killed. */
static inline const char *fuzz_input_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("popsteer-fuzz-input", 0);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        FUZZ_CHECK(w > 0);
        done += (size_t)w;
    }
    return path;
}

static char fuzz_scratch[256];

static void fuzz_scratch_remove(void)
{
    rmdir(fuzz_scratch); /* targets delete what they write, so it is empty by now */
}

/* A private scratch directory for targets that write files (round trips through the writers).
 * On tmpfs when available, because the writers fsync. Created once per process. */
static inline const char *fuzz_scratch_dir(void)
{
    char *dir = fuzz_scratch;
    if (dir[0])
        return dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(dir, sizeof fuzz_scratch, "%s/popsteer-fuzz-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    atexit(fuzz_scratch_remove);
    return dir;
}

/* Reads a whole small file (for comparing round-trip outputs); NULL if it cannot. */
static inline char *fuzz_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc(buf, cap);
            FUZZ_CHECK(grown != NULL);
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        if (got == 0)
            break;
        n += got;
    }
    fclose(fp);
    *len = n;
    return buf;
}

#endif
