/* Fuzz target: the probe's per-latent table reader (ps_latents_csv_read), which `eval` and
 * `recommend` use on user-supplied --latents files.
 *
 * expected_m (the SAE's latent count) comes from a hash of the input: half the runs accept any
 * count, the others demand 1..8 rows. An accepted table must satisfy the reader's contract
 * (probe.h): finite numbers, stds >= 0, fire rates in [0, 1]; writing it back and reading the
 * result must work, and a second write must produce the same bytes (%.9g is idempotent). */
#define FUZZ_TARGET latents_csv
#include "fuzz_common.h"

#include <math.h>

#include "popsteer/probe.h"

static void check_table(const ps_latent_table *t, int expected_m)
{
    FUZZ_CHECK(t->m >= 1);
    FUZZ_CHECK(expected_m <= 0 || t->m == expected_m);
    for (int j = 0; j < t->m; j++) {
        FUZZ_CHECK(isfinite(t->d[j]) && isfinite(t->mean_pop[j]) && isfinite(t->mean_unpop[j]));
        FUZZ_CHECK(isfinite(t->std_pop[j]) && t->std_pop[j] >= 0);
        FUZZ_CHECK(isfinite(t->std_unpop[j]) && t->std_unpop[j] >= 0);
        FUZZ_CHECK(t->fire_rate[j] >= 0 && t->fire_rate[j] <= 1);
    }
}

static void round_trip(const ps_latent_table *t)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.csv", fuzz_scratch_dir());
    snprintf(b, sizeof b, "%s/b.csv", fuzz_scratch_dir());
    ps_error err;
    ps_latent_table u;
    FUZZ_CHECK(ps_latents_csv_write(a, t, NULL, &err) == PS_OK);
    FUZZ_CHECK(ps_latents_csv_read(a, t->m, &u, &err) == PS_OK);
    FUZZ_CHECK(ps_latents_csv_write(b, &u, NULL, &err) == PS_OK);
    size_t la = 0, lb = 0;
    char *ba = fuzz_slurp(a, &la), *bb = fuzz_slurp(b, &lb);
    FUZZ_CHECK(ba && bb && la == lb && memcmp(ba, bb, la) == 0);
    free(ba);
    free(bb);
    unlink(a);
    unlink(b);
    ps_latents_summary s;
    FUZZ_CHECK(ps_latents_summary_make(u.d, u.m, 5, &s, &err) == PS_OK);
    FUZZ_CHECK(s.n_pos + s.n_neg + s.n_zero == u.m);
    ps_latent_table_free(&u);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    uint32_t h = fuzz_hash(data, size);
    int expected_m = (h & 1) ? 0 : 1 + (int)(h >> 1 & 7);
    ps_latent_table t;
    ps_error err;
    if (ps_latents_csv_read(fuzz_input_path(data, size), expected_m, &t, &err) != PS_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(t.m == 0 && t.d == NULL);
        return 0;
    }
    check_table(&t, expected_m);
    round_trip(&t);
    ps_latent_table_free(&t);
    return 0;
}
