/* Atomic file replacement: temp file in the same directory + fsync + rename + fsync(dir). */
#include "popsteer/io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dup_string(const char *s, ps_error *err)
{
    size_t n = strlen(s) + 1;
    char *d = ps_calloc(n, 1, "a path", err);
    if (d)
        memcpy(d, s, n);
    return d;
}

int ps_atomic_open(ps_atomic_file *af, const char *path, ps_error *err)
{
    static unsigned counter; /* distinguishes several temp files of one process */
    memset(af, 0, sizeof *af);
    af->path = dup_string(path, err);
    if (!af->path)
        return PS_ERR;
    size_t n = strlen(path) + 64;
    af->tmp_path = ps_calloc(n, 1, "a path", err);
    if (!af->tmp_path) {
        ps_atomic_abort(af);
        return PS_ERR;
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int e = errno;
        ps_atomic_abort(af);
        return ps_fail(err, "%s: cannot create: %s", path, strerror(e));
    }
    return PS_OK;
}

static void fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return; /* the rename already happened; directory fsync is best effort */
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

int ps_atomic_commit(ps_atomic_file *af, ps_error *err)
{
    int e = 0;
    if (fflush(af->fp) != 0 || ferror(af->fp))
        e = errno ? errno : EIO;
    else if (fsync(fileno(af->fp)) != 0)
        e = errno;
    if (fclose(af->fp) != 0 && !e)
        e = errno ? errno : EIO;
    af->fp = NULL;
    if (!e && rename(af->tmp_path, af->path) != 0)
        e = errno;
    if (e) {
        ps_fail(err, "%s: write failed: %s", af->path, strerror(e));
        ps_atomic_abort(af);
        return PS_ERR;
    }
    fsync_parent_dir(af->path);
    free(af->tmp_path);
    free(af->path);
    af->tmp_path = af->path = NULL;
    return PS_OK;
}

void ps_atomic_abort(ps_atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->tmp_path)
        unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int ps_write_file_atomic(const char *path, const void *data, size_t len, ps_error *err)
{
    ps_atomic_file af;
    if (ps_atomic_open(&af, path, err) != PS_OK)
        return PS_ERR;
    if (len && fwrite(data, 1, len, af.fp) != len) {
        int e = errno;
        ps_atomic_abort(&af);
        return ps_fail(err, "%s: write failed: %s", path, strerror(e));
    }
    return ps_atomic_commit(&af, err);
}

int ps_read_file(const char *path, size_t max_bytes, char **data, size_t *len, ps_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ps_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ps_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        fclose(fp);
        return ps_fail(err, "%s: file is %zu bytes, more than the limit of %zu", path, size, max_bytes);
    }
    char *buf = ps_calloc(size + 1, 1, "a file buffer", err);
    if (!buf) {
        fclose(fp);
        return ps_fail_wrap(err, "%s", path);
    }
    size_t got = fread(buf, 1, size, fp);
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error || got != size) {
        free(buf);
        return ps_fail(err, "%s: read failed after %zu of %zu bytes", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return PS_OK;
}

char *ps_path_join(const char *dir, const char *name, ps_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = ps_calloc(n, 1, "a path", err);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}
