/* popsteer under `mpirun -np 2` on this machine (loopback / shared memory), against one process
 * (docs/distributed.md). Registered in CTest only in an MPI build (POPSTEER_MPI).
 *
 * - train: 20 Adam steps (one epoch of the small log at --batch 400) with dropout on; every
 *   tensor of the 2-rank model within 1e-5 of the one-process model (||a - b|| / ||a||), and the
 *   epoch's mean training loss the same to 1e-4 (Adam is nearly invariant to the gradient's scale,
 *   so a rank that trained on the whole batch instead of its share would pass the weight check
 *   alone; the loss, summed over the ranks, would double). The key biases are checked in absolute
 *   terms: their true gradient is 0 (softmax ignores a constant shift of a score row), so their
 *   values are rounding noise that Adam scales up, in one process as in two. A negative control:
 *   another seed must fail the same comparison.
 * - resume: 2 ranks for one epoch, then --resume for a second, equals 2 ranks for two epochs.
 * - sampled softmax: the same equality with --loss sampled --sampler pop.
 * - eval and probe: the JSON metrics and the latents CSV byte for byte.
 * - sae train: 20 Adam steps (two epochs of 10 batches, AuxK on in the second) on the small log's
 *   8,100 training vectors; every tensor of the 2-rank SAE within 1e-5 of the one-process SAE, the
 *   two epochs' training FVU the same to 1e-4 (a rank training on the whole batch would double it:
 *   the weight check alone would not see that, Adam being nearly scale-invariant) and the
 *   validation FVU to 1e-6 relative; another seed as the negative control.
 * - sweep: results.csv and results.json equal to one process's but for the timings (the last CSV
 *   column, the JSON's "seconds" lines), with bootstrap intervals, a parallel and a sequential
 *   re-ranker (pmmf runs every user on every rank) and the ablations; 300 users in scoring
 *   batches of 256, so the ranks' shares are 256 and 44 users.
 * - run: the whole pipeline with the SASRec given (--model) and the SAE reused (a one-process
 *   run's sae.safetensors and run.json copied into the directories of a one-process and a 2-rank
 *   run), so that the probe and the sweep, which are exact under mpirun, are compared bit for bit:
 *   latents.csv byte for byte, results.csv and results.json but for the timings and the
 *   directory's name. (Training under mpirun equals one process only up to
 *   summation order, so a run that trains is compared by the train and sae tests above.) Both
 *   again in the same directories: every stage reused (under mpirun broadcast from rank 0), the same
 *   results. A run from scratch under mpirun (SASRec and SAE trained on 2 ranks) completes and
 *   writes its report; a --model that rank 0 cannot read ends the job with the message.
 * - failures: a rank killed mid-training (POPSTEER_DIST_DIE) and a rank whose command fails (rank
 *   0 cannot read the state file of --resume), and a rank killed in sae train, end the whole job with a non-zero status and a
 *   message, within the `timeout` of 60 s, instead of leaving the other rank waiting. */
#include "testutil.h"

#include "popsteer/checkpoint.h"
#include "popsteer/sae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *g_dir; /* test fixture directory (cmocka's state) */

/* popsteer ARGS in one process (2 threads) or under mpirun -np 2 (1 thread per rank). */
static int popsteer(int ranks, const char *env, const char *args, char **out, char **err)
{
    char cmd[8192];
    if (ranks == 1)
        snprintf(cmd, sizeof cmd, "%s OMP_WAIT_POLICY=passive timeout 60 '%s' %s --threads 2", env ? env : "",
                 POPSTEER_CLI, args);
    else /* as root (CI containers) Open MPI wants to be told; --oversubscribe: 2 ranks on any core count */
        snprintf(cmd, sizeof cmd,
                 "%s OMP_WAIT_POLICY=passive timeout 60 '%s' %s --oversubscribe -np %d -x OMP_WAIT_POLICY %s '%s' %s "
                 "--threads 1",
                 env ? env : "", POPSTEER_MPIEXEC, geteuid() == 0 ? "--allow-run-as-root" : "", ranks,
                 env && *env ? "-x POPSTEER_DIST_DIE" : "", POPSTEER_CLI, args);
    return tu_run_sh(cmd, out, err);
}

static void popsteer_ok(int ranks, const char *args, char **out, char **err)
{
    char *e = NULL;
    int rc = popsteer(ranks, NULL, args, out, &e);
    if (rc != 0)
        fail_msg("popsteer (%d ranks) %s failed (%d):\n%s", ranks, args, rc, e);
    if (err) *err = e; else free(e);
}

static double epoch_loss(const char *stderr_text, int epoch)
{
    char key[32];
    snprintf(key, sizeof key, "epoch %3d  loss ", epoch);
    const char *p = strstr(stderr_text, key);
    if (!p)
        fail_msg("no '%s' line in:\n%s", key, stderr_text);
    return atof(p + strlen(key));
}

/* Worst per-tensor ||a - b|| / ||a|| (key biases: worst |a - b|, see the header). */
static double model_diff(const char *pa, const char *pb, double *key_bias_abs)
{
    ps_error err;
    ps_sasrec *a = NULL, *b = NULL;
    assert_int_equal(ps_sasrec_load(&a, pa, &err), PS_OK);
    assert_int_equal(ps_sasrec_load(&b, pb, &err), PS_OK);
    assert_int_equal(a->n_params, b->n_params);
    double worst = 0;
    *key_bias_abs = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const ps_sasrec_tensor *t = &a->tensors[i];
        const float *x = a->params + t->offset, *y = b->params + t->offset;
        double dd = 0, xx = 0, mx = 0;
        for (size_t k = 0; k < t->numel; k++) {
            double d = (double)x[k] - (double)y[k];
            dd += d * d;
            xx += (double)x[k] * x[k];
            mx = fmax(mx, fabs(d));
        }
        if (strstr(t->name, "key.bias")) {
            *key_bias_abs = fmax(*key_bias_abs, mx);
            continue;
        }
        double rel = xx > 0 ? sqrt(dd / xx) : sqrt(dd);
        if (rel > worst)
            worst = rel;
    }
    ps_sasrec_free(a);
    ps_sasrec_free(b);
    return worst;
}

/* The Adam step count in a training-state file's metadata ("adam_t":"N"). */
static int adam_steps(const char *name)
{
    char *path = tu_path(g_dir, name);
    size_t len;
    char *bytes = tu_read(path, &len);
    assert_non_null(bytes);
    const char *key = "\"adam_t\":\"";
    const char *p = NULL;
    for (size_t i = 0; i + strlen(key) < len && i < 65536 && !p; i++)
        if (!memcmp(bytes + i, key, strlen(key)))
            p = bytes + i + strlen(key);
    assert_non_null(p);
    int n = atoi(p);
    free(bytes);
    free(path);
    return n;
}

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    char *data = tu_path(g_dir, "log.inter");
    int rc = tu_synth_small(data);
    free(data);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

#define TRAIN_ARGS "train --data '%s/log.inter' --epochs %d --min-epochs 1 --batch 400 --dropout 0.2 %s --out '%s/%s'"

static void train(int ranks, int epochs, const char *extra, const char *name, char **err)
{
    char args[4096];
    snprintf(args, sizeof args, TRAIN_ARGS, g_dir, epochs, extra, g_dir, name);
    popsteer_ok(ranks, args, NULL, err);
}

static void expect_same_model(const char *name_a, const char *name_b, double tol)
{
    char *a = tu_path(g_dir, name_a), *b = tu_path(g_dir, name_b);
    double kb, rel = model_diff(a, b, &kb);
    printf("  %s vs %s: worst tensor ||a-b||/||a|| %.3g, key biases max |a-b| %.3g\n", name_a, name_b, rel, kb);
    assert_true(rel <= tol);
    assert_true(kb <= 1e-5);
    free(a);
    free(b);
}

static void test_train_20_steps(void **state)
{
    (void)state;
    char *e1, *e2, *e3;
    train(1, 1, "", "one.safetensors", &e1);
    train(2, 1, "", "two.safetensors", &e2);
    assert_int_equal(adam_steps("one.safetensors.state"), 20);
    assert_int_equal(adam_steps("two.safetensors.state"), 20);
    double l1 = epoch_loss(e1, 1), l2 = epoch_loss(e2, 1);
    printf("  epoch loss: one process %.4f, two ranks %.4f\n", l1, l2);
    assert_true(fabs(l1 - l2) <= 1e-4);
    expect_same_model("one.safetensors", "two.safetensors", 1e-5);
    /* negative control: another seed is far off by the same measure */
    train(1, 1, "--seed 43", "other.safetensors", &e3);
    char *a = tu_path(g_dir, "one.safetensors"), *b = tu_path(g_dir, "other.safetensors");
    double kb, rel = model_diff(a, b, &kb);
    printf("  another seed: %.3g\n", rel);
    assert_true(rel > 1e-2);
    free(a);
    free(b);
    free(e1);
    free(e2);
    free(e3);
}

static void test_sampled_20_steps(void **state)
{
    (void)state;
    char *e1, *e2;
    train(1, 1, "--loss sampled --negatives 32 --sampler pop", "s1.safetensors", &e1);
    train(2, 1, "--loss sampled --negatives 32 --sampler pop", "s2.safetensors", &e2);
    double l1 = epoch_loss(e1, 1), l2 = epoch_loss(e2, 1);
    printf("  sampled epoch loss: one process %.4f, two ranks %.4f\n", l1, l2);
    assert_true(fabs(l1 - l2) <= 1e-4);
    expect_same_model("s1.safetensors", "s2.safetensors", 1e-5);
    free(e1);
    free(e2);
}

static void test_resume(void **state)
{
    (void)state;
    char *e;
    train(2, 2, "", "full.safetensors", &e);
    free(e);
    train(2, 1, "", "res.safetensors", &e);
    free(e);
    train(2, 2, "--resume", "res.safetensors", &e);
    assert_non_null(strstr(e, "*best")); /* epoch 2 is the kept model: the comparison sees it */
    assert_null(strstr(e, "epoch   1  loss")); /* epoch 1 came from the state file */
    free(e);
    expect_same_model("full.safetensors", "res.safetensors", 1e-5);
}

static void test_eval_and_probe(void **state)
{
    (void)state;
    char args[4096], *o1, *o2;
    train(1, 1, "", "m.safetensors", NULL);
    snprintf(args, sizeof args, "eval --data '%s/log.inter' --model '%s/m.safetensors' --json --quiet", g_dir, g_dir);
    popsteer_ok(1, args, &o1, NULL);
    popsteer_ok(2, args, &o2, NULL);
    assert_string_equal(o1, o2);
    assert_non_null(strstr(o1, "\"users\":\t300"));
    free(o1);
    free(o2);
    snprintf(args, sizeof args, "sae train --data '%s/log.inter' --model '%s/m.safetensors' --out '%s/sae.safetensors' "
                                "--scale 4 --k 8 --k-aux 16 --epochs 1 --quiet", g_dir, g_dir, g_dir);
    popsteer_ok(1, args, NULL, NULL);
    for (int ranks = 1; ranks <= 2; ranks++) {
        snprintf(args, sizeof args, "probe --data '%s/log.inter' --model '%s/m.safetensors' --sae '%s/sae.safetensors' "
                                    "--out '%s/lat%d.csv' --quiet", g_dir, g_dir, g_dir, g_dir, ranks);
        popsteer_ok(ranks, args, NULL, NULL);
    }
    char *a = tu_path(g_dir, "lat1.csv"), *b = tu_path(g_dir, "lat2.csv");
    assert_true(tu_same_file(a, b));
    free(a);
    free(b);
}

/* The "sae epoch   E  fvu X  auxk Y" line's X (what == 0) or Y (what == 1). */
static double sae_epoch_value(const char *stderr_text, int epoch, int what)
{
    char key[32];
    snprintf(key, sizeof key, "sae epoch %3d  fvu ", epoch);
    const char *p = strstr(stderr_text, key);
    if (!p)
        fail_msg("no '%s' line in:\n%s", key, stderr_text);
    p += strlen(key);
    if (what == 1) {
        p = strstr(p, "auxk ");
        assert_non_null(p);
        p += 5;
    }
    return atof(p);
}

/* Worst per-tensor ||a - b|| / ||a|| of two SAE files (both must load). */
static double sae_diff(const char *name_a, const char *name_b)
{
    char *pa = tu_path(g_dir, name_a), *pb = tu_path(g_dir, name_b);
    ps_error err;
    ps_sae *a = ps_sae_load(pa, &err), *b = a ? ps_sae_load(pb, &err) : NULL;
    if (!a || !b)
        fail_msg("%s", err.msg);
    assert_int_equal(a->n_params, b->n_params);
    double worst = 0;
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        const float *x = a->params + a->offset[t], *y = b->params + b->offset[t];
        double dd = 0, xx = 0;
        for (size_t k = 0; k < a->size[t]; k++) {
            double d = (double)x[k] - (double)y[k];
            dd += d * d;
            xx += (double)x[k] * x[k];
        }
        double rel = xx > 0 ? sqrt(dd / xx) : sqrt(dd);
        worst = fmax(worst, rel);
    }
    ps_sae_free(a);
    ps_sae_free(b);
    free(pa);
    free(pb);
    return worst;
}

static double json_number(const char *json, const char *key)
{
    const char *p = strstr(json, key);
    if (!p)
        fail_msg("no %s in:\n%s", key, json);
    p = strchr(p, ':');
    assert_non_null(p);
    return atof(p + 1);
}

/* 8,100 training vectors at --batch 810: 10 Adam steps per epoch, 20 in two. */
#define SAE_ARGS "sae train --data '%s/log.inter' --model '%s/sm.safetensors' --scale 16 --k 8 --k-aux 16 " \
                 "--epochs 2 --patience 5 --batch 810 --json %s --out '%s/%s'"

static void sae_train(int ranks, const char *extra, const char *name, char **out, char **err)
{
    char args[4096];
    snprintf(args, sizeof args, SAE_ARGS, g_dir, g_dir, extra, g_dir, name);
    popsteer_ok(ranks, args, out, err);
}

static void test_sae_20_steps(void **state)
{
    (void)state;
    char *o1, *o2, *e1, *e2, *o3;
    train(1, 1, "", "sm.safetensors", NULL);
    sae_train(1, "", "sae1.safetensors", &o1, &e1);
    sae_train(2, "", "sae2.safetensors", &o2, &e2);
    for (int epoch = 1; epoch <= 2; epoch++) {
        double f1 = sae_epoch_value(e1, epoch, 0), f2 = sae_epoch_value(e2, epoch, 0);
        printf("  sae epoch %d train fvu: one process %.4f, two ranks %.4f\n", epoch, f1, f2);
        assert_true(fabs(f1 - f2) <= 1e-4);
    }
    assert_true(sae_epoch_value(e1, 2, 1) > 0); /* dead latents in epoch 2: AuxK took part */
    double v1 = json_number(o1, "\"valid_fvu\""), v2 = json_number(o2, "\"valid_fvu\"");
    printf("  valid fvu: %.10f vs %.10f\n", v1, v2);
    assert_true(fabs(v1 - v2) <= 1e-6 * fabs(v1));
    double rel = sae_diff("sae1.safetensors", "sae2.safetensors");
    printf("  sae, 20 steps: worst tensor ||a-b||/||a|| %.3g\n", rel);
    assert_true(rel <= 1e-5);
    sae_train(1, "--seed 43", "sae3.safetensors", &o3, NULL);
    double other = sae_diff("sae1.safetensors", "sae3.safetensors");
    printf("  another seed: %.3g\n", other);
    assert_true(other > 1e-2);
    free(o1), free(o2), free(o3), free(e1), free(e2);
}

/* A report file without its timings: a CSV line's last field (seconds), a JSON line naming seconds. */
static char *without_timings(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *text = tu_read(path, &len);
    assert_non_null(text);
    char *out = malloc(len + 1), *o = out;
    assert_non_null(out);
    const int csv = strstr(name, ".csv") != NULL;
    for (char *line = text; line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = end ? (size_t)(end - line) : (size_t)(text + len - line);
        line[n] = '\0';
        if (csv) {
            char *comma = strrchr(line, ',');
            if (comma)
                *comma = '\0';
            o += sprintf(o, "%s\n", line);
        } else if (!strstr(line, "seconds")) {
            o += sprintf(o, "%s\n", line);
        }
        line += n + 1;
    }
    *o = '\0';
    free(text);
    return out;
}

static void test_sweep(void **state)
{
    (void)state;
    char args[8192];
    train(1, 1, "", "sw.safetensors", NULL);
    snprintf(args, sizeof args, "sae train --data '%s/log.inter' --model '%s/sw.safetensors' --out '%s/sw-sae.safetensors' "
                                "--scale 4 --k 8 --k-aux 16 --epochs 2 --quiet", g_dir, g_dir, g_dir);
    popsteer_ok(1, args, NULL, NULL);
    snprintf(args, sizeof args, "probe --data '%s/log.inter' --model '%s/sw.safetensors' --sae '%s/sw-sae.safetensors' "
                                "--out '%s/sw-lat.csv' --quiet", g_dir, g_dir, g_dir, g_dir);
    popsteer_ok(1, args, NULL, NULL);
    for (int ranks = 1; ranks <= 2; ranks++) {
        snprintf(args, sizeof args, "sweep --data '%s/log.inter' --model '%s/sw.safetensors' --sae '%s/sw-sae.safetensors' "
                                    "--latents '%s/sw-lat.csv' --alphas 0,1,3 --neurons 16,all --methods random,xquad,pmmf "
                                    "--bootstrap 50 --quiet --out '%s/sweep%d'", g_dir, g_dir, g_dir, g_dir, g_dir, ranks);
        popsteer_ok(ranks, args, NULL, NULL);
    }
    const char *files[] = {"results.csv", "results.json"};
    for (int f = 0; f < 2; f++) {
        char d1[4096], d2[4096];
        snprintf(d1, sizeof d1, "%s/sweep1", g_dir);
        snprintf(d2, sizeof d2, "%s/sweep2", g_dir);
        char *a = without_timings(d1, files[f]), *b = without_timings(d2, files[f]);
        assert_true(strlen(a) > 1000);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

#define RUN_ARGS "run --data '%s/log.inter' %s --epochs 1 --sae-epochs 2 --sae-scale 4 --sae-k 8 --alphas 0,1,3 " \
                 "--neurons 16,all --methods random,xquad,pmmf --bootstrap 50 --out '%s/%s'"

static void run_pipeline(int ranks, const char *model, const char *name, char **err)
{
    char args[4096], m[1024] = "";
    if (model)
        snprintf(m, sizeof m, "--model '%s/%s'", g_dir, model);
    snprintf(args, sizeof args, RUN_ARGS, g_dir, m, g_dir, name);
    popsteer_ok(ranks, args, NULL, err);
}

/* Every "/from/" in text becomes "/to/" (same length): results.json names the artefacts' paths. */
static void rename_dir(char *text, const char *from, const char *to)
{
    char f[64], t[64];
    snprintf(f, sizeof f, "/%s/", from);
    snprintf(t, sizeof t, "/%s/", to);
    assert_int_equal(strlen(f), strlen(t));
    for (char *p = text; (p = strstr(p, f)) != NULL; p += strlen(t))
        memcpy(p, t, strlen(t));
}

/* name's report (results.csv, results.json; timings dropped, its directory read as run1's) and
 * latents.csv equal run1's (a run with the same stages reused). */
static void expect_same_run(const char *name)
{
    char d1[4096], d2[4096];
    snprintf(d1, sizeof d1, "%s/run1/report", g_dir);
    snprintf(d2, sizeof d2, "%s/%s/report", g_dir, name);
    const char *files[] = {"results.csv", "results.json"};
    for (int f = 0; f < 2; f++) {
        char *a = without_timings(d1, files[f]), *b = without_timings(d2, files[f]);
        rename_dir(b, name, "run1");
        assert_true(strlen(a) > 1000);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    snprintf(d1, sizeof d1, "%s/run1/latents.csv", g_dir);
    snprintf(d2, sizeof d2, "%s/%s/latents.csv", g_dir, name);
    assert_true(tu_same_file(d1, d2));
}

static void test_run(void **state)
{
    (void)state;
    char cmd[4096], *e;
    train(1, 1, "", "run-m.safetensors", NULL);
    run_pipeline(1, "run-m.safetensors", "run0", NULL);
    /* the SAE as an input: run1 and run2 start with run0's SAE and the record that lets run reuse it */
    snprintf(cmd, sizeof cmd, "for d in run1 run2; do mkdir '%s/'$d && cp '%s/run0/sae.safetensors' "
                              "'%s/run0/run.json' '%s/'$d/ || exit 1; done", g_dir, g_dir, g_dir, g_dir);
    assert_int_equal(tu_run_sh(cmd, NULL, NULL), 0);
    run_pipeline(1, "run-m.safetensors", "run1", NULL);
    run_pipeline(2, "run-m.safetensors", "run2", &e);
    assert_non_null(strstr(e, "SAE: reused"));
    assert_non_null(strstr(e, "probe: done"));
    free(e);
    expect_same_run("run2");
    /* again: every stage reused, rank 0's files broadcast */
    run_pipeline(1, "run-m.safetensors", "run1", NULL);
    run_pipeline(2, "run-m.safetensors", "run2", &e);
    assert_non_null(strstr(e, "probe: reused"));
    free(e);
    expect_same_run("run2");
    /* from scratch under mpirun: the SASRec and the SAE trained on two ranks */
    run_pipeline(2, NULL, "run3", &e);
    assert_non_null(strstr(e, "SASRec: done"));
    assert_non_null(strstr(e, "SAE: done"));
    free(e);
    char *p = tu_path(g_dir, "run3/report/results.csv"), *q = tu_path(g_dir, "run3/report/report.md");
    assert_true(tu_exists(p) && tu_exists(q));
    free(p);
    free(q);
    /* rank 0 cannot read the model while rank 1 waits for it in a broadcast */
    snprintf(cmd, sizeof cmd, RUN_ARGS, g_dir, "--model /nonexistent/m.safetensors", g_dir, "run4");
    int rc = popsteer(2, NULL, cmd, NULL, &e);
    printf("  run, rank 0 fails: status %d\n", rc);
    assert_true(rc != 0 && rc != 124);
    assert_non_null(strstr(e, "/nonexistent/m.safetensors"));
    assert_non_null(strstr(e, "ending every rank"));
    free(e);
}

static void test_rank_dies(void **state)
{
    (void)state;
    char args[4096], *e;
    snprintf(args, sizeof args, TRAIN_ARGS, g_dir, 1, "", g_dir, "dead.safetensors");
    int rc = popsteer(2, "POPSTEER_DIST_DIE=1:3", args, NULL, &e);
    printf("  a rank killed at step 3: status %d\n", rc);
    assert_true(rc != 0 && rc != 124); /* 124: the 60 s timeout, i.e. a hang */
    assert_non_null(strstr(e, "killing myself at step 3"));
    assert_non_null(strstr(e, "signal 9"));
    free(e);
    /* rank 0 fails (no state file to resume from) while rank 1 waits for it in a broadcast */
    snprintf(args, sizeof args, TRAIN_ARGS, g_dir, 1, "--resume", g_dir, "missing.safetensors");
    rc = popsteer(2, NULL, args, NULL, &e);
    printf("  rank 0 fails: status %d\n", rc);
    assert_true(rc != 0 && rc != 124);
    assert_non_null(strstr(e, "missing.safetensors.state"));
    assert_non_null(strstr(e, "ending every rank"));
    free(e);
    /* a rank killed in sae train (after its 3rd Adam step) */
    train(1, 1, "", "sd.safetensors", NULL);
    snprintf(args, sizeof args, "sae train --data '%s/log.inter' --model '%s/sd.safetensors' --scale 4 --batch 810 "
                                "--epochs 1 --out '%s/dead-sae.safetensors'", g_dir, g_dir, g_dir);
    rc = popsteer(2, "POPSTEER_DIST_DIE=1:3", args, NULL, &e);
    printf("  a rank killed in sae train at step 3: status %d\n", rc);
    assert_true(rc != 0 && rc != 124);
    assert_non_null(strstr(e, "killing myself at step 3"));
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_20_steps), cmocka_unit_test(test_sampled_20_steps),
        cmocka_unit_test(test_resume), cmocka_unit_test(test_eval_and_probe), cmocka_unit_test(test_sae_20_steps),
        cmocka_unit_test(test_sweep), cmocka_unit_test(test_run),
        cmocka_unit_test(test_rank_dies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
