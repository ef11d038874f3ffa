#define _GNU_SOURCE /* mkdtemp, nftw */
#include "testutil.h"

#include "popsteer/dataset.h"
#include "popsteer/checkpoint.h"
#include "popsteer/io.h"
#include "popsteer/popsteer.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/synth.h"
#include "nn/nn.h"

#include <ftw.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char *tmpl = tu_path(base, "popsteer-test-XXXXXX");
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tu_write(const char *path, const char *bytes, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

void tu_write_str(const char *path, const char *text)
{
    tu_write(path, text, strlen(text));
}

int tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *slurp_fd_file(FILE *fp)
{
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)n, fp);
    buf[got] = '\0';
    return buf;
}

int tu_run_sh(const char *cmd, char **out, char **err)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fileno(fo), 1);
        dup2(fileno(fe), 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *o = slurp_fd_file(fo), *e = slurp_fd_file(fe);
    fclose(fo);
    fclose(fe);
    if (out) *out = o; else free(o);
    if (err) *err = e; else free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tu_run_cli(const char *args, char **out, char **err)
{
    size_t n = strlen(POPSTEER_CLI) + strlen(args) + 8;
    char *cmd = malloc(n);
    assert_non_null(cmd);
    snprintf(cmd, n, "'%s' %s", POPSTEER_CLI, args);
    int rc = tu_run_sh(cmd, out, err);
    free(cmd);
    return rc;
}

const char *tu_shared(const char *relpath)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", POPSTEER_SHARED_DIR, relpath);
    if (access(buf, R_OK) != 0) {
        printf("SKIP: %s is absent (../shared not present beside the project)\n", buf);
        return NULL;
    }
    return buf;
}

double tu_json_number(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        fail_msg("key %s missing in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

char *tu_read(const char *path, size_t *len)
{
    char *data = NULL;
    size_t n = 0;
    ps_error err = {{0}};
    if (ps_read_file(path, 0, &data, &n, &err) != PS_OK)
        fail_msg("%s", err.msg);
    if (len)
        *len = n;
    return data;
}

int tu_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = tu_read(a, &la), *y = tu_read(b, &lb);
    int same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

int tu_run_cli_ok(const char *args)
{
    char *err;
    int rc = tu_run_cli(args, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "popsteer %s\nfailed (%d): %s\n", args, rc, err);
    free(err);
    return rc;
}

int tu_synth_small(const char *path)
{
    char args[4096];
    snprintf(args, sizeof args, "data synth --quiet --users 300 --items 150 --interactions 9000 --out '%s'", path);
    return tu_run_cli(args, NULL, NULL);
}

int tu_train_small(const char *data, const char *model, int epochs)
{
    char args[8192];
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs %d --data '%s' --out '%s'", epochs, data, model);
    return tu_run_cli(args, NULL, NULL);
}

void tu_tiny_stack(const char *dir, ps_dataset *ds, ps_sasrec **m, ps_sae **sae)
{
    char *path = tu_path(dir, "synth.inter");
    ps_synth_options so;
    ps_synth_options_init(&so);
    so.n_users = 150;
    so.n_items = 120;
    so.n_interactions = 3000;
    ps_error err = {{0}};
    if (ps_synth_write(&so, path, &err) != PS_OK)
        fail_msg("synth: %s", err.msg);
    ps_load_options lo;
    ps_load_options_init(&lo);
    if (ps_dataset_load(ds, path, &lo, &err) != PS_OK)
        fail_msg("load: %s", err.msg);
    free(path);
    ps_sasrec_config mc;
    ps_sasrec_config_default(&mc, ds->n_items);
    mc.d = 16;
    mc.d_ff = 32;
    mc.n_layers = 1;
    mc.max_len = ds->max_seq_len;
    if (ps_sasrec_create(m, &mc, &err) != PS_OK)
        fail_msg("model: %s", err.msg);
    ps_sasrec_init_weights(*m, 7);
    ps_sae_config sc;
    ps_sae_config_init(&sc, 16, 4); /* 64 latents */
    sc.k = 8;
    sc.k_aux = 16;
    if (!(*sae = ps_sae_create(&sc, &err)))
        fail_msg("sae: %s", err.msg);
    ps_sae_init(*sae, 3);
}

void tu_steer_files(const char *data, const char *model, const char *sae_path, const char *latents, uint64_t model_seed,
                    uint64_t sae_seed, ps_dataset *ds)
{
    assert_int_equal(tu_synth_small(data), 0);
    ps_error err = {{0}};
    ps_load_options lo;
    ps_load_options_init(&lo); /* the CLI's defaults: the same items and sequence length */
    if (ps_dataset_load(ds, data, &lo, &err) != PS_OK)
        fail_msg("load: %s", err.msg);
    ps_sasrec_config mc;
    ps_sasrec_config_default(&mc, ds->n_items);
    mc.d = 16;
    mc.d_ff = 32;
    mc.n_layers = 1;
    mc.max_len = ds->max_seq_len;
    ps_sasrec *m = NULL;
    if (ps_sasrec_create(&m, &mc, &err) != PS_OK)
        fail_msg("model: %s", err.msg);
    ps_sasrec_init_weights(m, model_seed);
    ps_sae_config sc;
    ps_sae_config_init(&sc, 16, 4);
    sc.k = 8;
    sc.k_aux = 16;
    ps_sae *sae = ps_sae_create(&sc, &err);
    if (!sae)
        fail_msg("sae: %s", err.msg);
    ps_sae_init(sae, sae_seed);
    ps_sae_tensors t = ps_sae_view(sae, sae->params);
    for (int i = 0; i < 16; i++)
        t.b_dec[i] = 0.03f * (float)(i % 5 - 2);
    ps_probe_options po;
    ps_probe_options_init(&po);
    ps_probe_result pr;
    if (ps_sasrec_save(m, NULL, model, &err) != PS_OK || ps_sae_save(sae, sae_path, &err) != PS_OK ||
        ps_probe_run(m, sae, ds, &po, &pr, &err) != PS_OK)
        fail_msg("fixture: %s", err.msg);
    ps_latent_items li = {pr.top_items, pr.n_top, &ds->item_tokens, NULL};
    if (ps_latents_csv_write(latents, &pr.table, &li, &err) != PS_OK)
        fail_msg("latents: %s", err.msg);
    ps_probe_result_free(&pr);
    ps_sae_free(sae);
    ps_sasrec_free(m);
}

int tu_gemm_rows_exact(void)
{
    return ps_nn_gemm_rows_exact();
}

void tu_assert_rows_equal(const float *got, const float *want, size_t n)
{
    if (tu_gemm_rows_exact()) {
        assert_memory_equal(got, want, n * sizeof *got);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-5f * (1.0f + fabsf(want[i]))))
            fail_msg("element %zu: %.9g, expected %.9g (library GEMM backend: to float rounding)", i, (double)got[i],
                     (double)want[i]);
}
