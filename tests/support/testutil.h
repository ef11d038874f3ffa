/* Helpers shared by the cmocka tests: temporary directories, small files, running the CLI,
 * and locating ../shared (tests that need it skip, saying so, when it is absent). */
#ifndef POPSTEER_TESTUTIL_H
#define POPSTEER_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

/* |a - b| <= tol in double (cmocka's assert_float_equal works in float). */
#define tu_assert_near(a, b, tol)                                                                  \
    do {                                                                                        \
        double a_ = (a), b_ = (b);                                                              \
        if (!(fabs(a_ - b_) <= (tol)))                                                          \
            fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #a, a_, b_, (double)(tol));   \
    } while (0)

/* Row independence (a row computed alone = the same row of a batch, bit for bit) is a property of
 * popsteer's own GEMM kernels; a library backend (POPSTEER_GEMM=openblas|blis, or chosen by
 * measurement) keeps results deterministic but may round a row differently in another batch.
 * Compares n floats bit for bit when every GEMM shape class runs on our kernels, else to
 * float rounding (relative 1e-5). */
int tu_gemm_rows_exact(void);
void tu_assert_rows_equal(const float *got, const float *want, size_t n);

/* Creates a fresh directory under $TMPDIR (or /tmp); the caller frees the string and may
 * remove the tree with tu_rmtree. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* Joins dir and name into a malloc'ed path. */
char *tu_path(const char *dir, const char *name);
/* Writes a file with exactly the given bytes. */
void tu_write(const char *path, const char *bytes, size_t len);
void tu_write_str(const char *path, const char *text);
int tu_exists(const char *path);
/* The whole file, NUL-terminated (fails the test when it cannot be read); len may be NULL. */
char *tu_read(const char *path, size_t *len);
/* 1 when the two files hold the same bytes. */
int tu_same_file(const char *a, const char *b);
/* Number of entries in dir (excluding . and ..): checks that nothing half-written remains. */
int tu_count_entries(const char *dir);

/* Runs sh -c cmd; captures stdout and stderr (malloc'ed, NUL-terminated; NULL: dropped) and
 * returns the exit status, or 128 + the signal that ended it. */
int tu_run_sh(const char *cmd, char **out, char **err);

/* tu_run_sh of the popsteer CLI with a shell-quoted argument string. */
int tu_run_cli(const char *args, char **out, char **err);

/* tu_run_cli for a step that must succeed: returns its status and, when it is not 0, prints the
 * command and its stderr (a test setup's failing step then says why). */
int tu_run_cli_ok(const char *args);

/* The small generated dataset most CLI tests run on (300 users, 150 items, 9,000 rows), and a
 * quiet 2-thread training of `epochs` epochs on it; both return the exit status. */
int tu_synth_small(const char *path);
int tu_train_small(const char *data, const char *model, int epochs);

/* The small in-memory stack the sweep and explain tests share: a generated log in dir (150 users,
 * 120 items, 3,000 rows) loaded into ds, a freshly initialised SASRec (d 16, one layer, seed 7) and
 * a fresh TopK SAE (64 latents, k 8, seed 3); nothing trained. Fails the test on any error. */
typedef struct ps_dataset ps_dataset;
typedef struct ps_sasrec ps_sasrec;
typedef struct ps_sae ps_sae;
void tu_tiny_stack(const char *dir, ps_dataset *ds, ps_sasrec **m, ps_sae **sae);

/* The steering files the explain and serve CLI tests share: tu_synth_small's log at data, loaded
 * into ds (the CLI's defaults; free it), a freshly initialised SASRec (d 16, one layer, seed
 * model_seed) saved at model, a TopK SAE (64 latents, k 8, seed sae_seed, with a non-zero decoder
 * bias so that its term shows) at sae, and the probe's table of that pair at latents. Nothing
 * trained. Fails the test on any error. */
void tu_steer_files(const char *data, const char *model, const char *sae, const char *latents, uint64_t model_seed,
                    uint64_t sae_seed, ps_dataset *ds);

/* The number after "key": in a JSON text (fails the test when the key is missing). */
double tu_json_number(const char *json, const char *key);

/* Path of a file under ../shared, or NULL when it is absent (and prints why). */
const char *tu_shared(const char *relpath);
/* Skips the current cmocka test, printing the reason. */
#define TU_SKIP_IF_NO_SHARED(path_var, rel)                                              \
    const char *path_var = tu_shared(rel);                                               \
    if (!path_var) {                                                                     \
        skip();                                                                          \
    }

#endif
