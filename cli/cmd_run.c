/* popsteer run: the whole pipeline end to end (stats → SASRec → SAE → probe → sweep → report),
 * reusing the artefacts a previous run left in the output directory.
 *
 * Reuse is decided per stage from DIR/run.json, which records the inputs each artefact was made
 * from (data file size and time, load options, the model's source, stage options, seed). An
 * artefact is reused only when its file exists, its recorded inputs equal the current ones and no
 * earlier stage ran in this invocation. Before a stage runs, its record and every later one are
 * dropped from run.json, so an interrupted run never leaves a record that claims a stale file.
 *
 * Under mpirun (docs/distributed.md) every stage runs its distributed library path. Rank 0 alone
 * touches DIR: it decides what to reuse and broadcasts the verdict (so every rank takes the same
 * branch and none waits in a collective the others skip), reads or writes each artefact and
 * broadcasts it, so every rank computes with the bits rank 0 saved and DIR need not be shared
 * between nodes. A rank that fails returns its error and cmd_run ends the job (ps_dist_abort). */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "popsteer/checkpoint.h"
#include "popsteer/dist.h"
#include "popsteer/io.h"
#include "popsteer/popsteer.h"
#include "popsteer/sweep.h"
#include "popsteer/train.h"

static const char HELP[] =
    "usage: popsteer run --data PATH --out DIR [options]\n\n"
    "Runs the whole PopSteer pipeline and writes the report, reusing what DIR already holds:\n"
    "  1. data stats   DIR/stats.json\n"
    "  2. SASRec       DIR/model.safetensors, trained with the default options (--model FILE: use yours)\n"
    "  3. SAE          DIR/sae.safetensors (TopK sparse autoencoder on the user vectors)\n"
    "  4. probe        DIR/latents.csv (Cohen's d of every latent)\n"
    "  5. sweep        DIR/report/: report.md, report.html, results.csv, results.json, PNG plots\n"
    "A stage is skipped when its file exists and was made from the same inputs (recorded in\n"
    "DIR/run.json); once a stage runs, every later stage runs again. The report lists the wall time\n"
    "of every stage and which ones were reused.\n"
    "Under mpirun (docs/distributed.md) every stage is sharded or data parallel across the ranks;\n"
    "rank 0 alone reads and writes DIR and prints.\n\n"
    "Run options:\n"
    "  --out DIR          working and report directory (required; created if missing)\n"
    "  --model FILE       use this SASRec checkpoint instead of training one\n"
    "  --force            rebuild every artefact even when DIR has it\n"
    "  --epochs N         SASRec: at most N epochs (default 300; early stopping, minimum 50 or N)\n"
    "  --sae-epochs N     SAE: at most N epochs (default 50)\n"
    "  --sae-scale N      SAE: latents = hidden size x N (default 64 -> 4096)\n"
    "  --sae-k N          SAE: active latents per user (default 32)\n"
    "  --probe-cap N      probe: training prefixes used for synthetic users (default: all)\n"
    "\n" CLI_SWEEP_HELP "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_OUT = OPT_FIRST_COMMAND_OPTION, OPT_MODEL, OPT_FORCE, OPT_EPOCHS, OPT_SAE_EPOCHS, OPT_SAE_SCALE,
       OPT_SAE_K, OPT_PROBE_CAP };

enum { ST_DATA, ST_MODEL, ST_SAE, ST_PROBE, ST_SWEEP, N_STAGES };
static const char *const STAGE_NAMES[N_STAGES] = {"data stats", "SASRec", "SAE", "probe", "sweep + report"};
static const char *const STAGE_KEYS[N_STAGES] = {NULL, "model", "sae", "probe", NULL};

typedef struct run_args {
    const char *out, *model;
    int force;
    long epochs, sae_epochs, sae_scale, sae_k, probe_cap;
} run_args;

/* Everything one invocation holds. */
typedef struct run_state {
    const cli_common *c;
    const cli_data *d;
    const run_args *a;
    const ps_dist *dist;       /* NULL or a single process: no collectives */
    cli_progress p;
    int stage_ran;             /* an earlier stage ran: later ones must too */
    char *path[N_STAGES];      /* artefact of each stage */
    char *manifest_path;
    cJSON *manifest;           /* run.json: stage key -> inputs */
    cJSON *key[N_STAGES];      /* the current inputs of each stage */
    ps_report_stage stages[N_STAGES];
    ps_dataset ds;
    int ds_loaded;
    ps_dataset_stats st;
    ps_sasrec *m;
    ps_sae *sae;
    ps_latent_table latents;
} run_state;

/* ---- small helpers ---- */

/* Rank 0 (or the single process) reads and writes DIR. */
static int is_root(const run_state *s)
{
    return ps_dist_rank(s->dist) == 0;
}

/* Rank 0's artefact of stage st to every other rank (a single process: nothing to do). */
static int share(run_state *s, int st)
{
    ps_error err;
    int rc = st == ST_MODEL ? ps_dist_bcast_sasrec(s->dist, &s->m, &err)
             : st == ST_SAE ? ps_dist_bcast_sae(s->dist, &s->sae, &err)
                            : ps_dist_bcast_latent_table(s->dist, &s->latents, &err);
    return rc == PS_OK ? 0 : cli_error(s->c, "%s", err.msg);
}

static int file_exists(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* Size and modification time: enough to notice that a file was replaced. */
static void add_file_id(cJSON *o, const char *prefix, const char *path)
{
    struct stat s;
    char k[64];
    int ok = stat(path, &s) == 0;
    cJSON_AddStringToObject(o, prefix, path);
    snprintf(k, sizeof k, "%s_bytes", prefix);
    cJSON_AddNumberToObject(o, k, ok ? (double)s.st_size : -1);
    snprintf(k, sizeof k, "%s_mtime", prefix);
    cJSON_AddNumberToObject(o, k, ok ? (double)s.st_mtim.tv_sec + 1e-9 * (double)s.st_mtim.tv_nsec : -1);
}

static void add_load_options(cJSON *o, const ps_load_options *l)
{
    cJSON_AddStringToObject(o, "format", ps_format_name(l->format));
    cJSON_AddNumberToObject(o, "rating_threshold", l->has_rating_threshold ? l->rating_threshold : -1e300);
    cJSON_AddNumberToObject(o, "kcore", l->kcore);
    cJSON_AddNumberToObject(o, "head_share", l->head_share);
    cJSON_AddNumberToObject(o, "tail_share", l->tail_share);
    cJSON_AddNumberToObject(o, "max_len", l->max_seq_len);
    const char *cols[] = {l->user_col, l->item_col, l->time_col, l->rating_col};
    const char *names[] = {"user_col", "item_col", "time_col", "rating_col"};
    for (int i = 0; i < 4; i++)
        cJSON_AddStringToObject(o, names[i], cols[i] ? cols[i] : "");
}

/* The inputs of every stage; each stage's key contains the key of the stage before it. */
static int make_keys(run_state *s)
{
    const run_args *a = s->a;
    cJSON *k = cJSON_CreateObject();
    if (!k)
        return -1;
    add_file_id(k, "data", s->d->path);
    add_load_options(k, &s->d->load);
    if (a->model) {
        add_file_id(k, "model", a->model);
    } else {
        cJSON_AddStringToObject(k, "model", "trained");
        cJSON_AddNumberToObject(k, "epochs", (double)a->epochs);
        cJSON_AddNumberToObject(k, "seed", (double)s->c->seed);
    }
    s->key[ST_MODEL] = k;
    s->key[ST_SAE] = cJSON_CreateObject();
    s->key[ST_PROBE] = cJSON_CreateObject();
    if (!s->key[ST_SAE] || !s->key[ST_PROBE])
        return -1;
    cJSON_AddItemToObject(s->key[ST_SAE], "model", cJSON_Duplicate(k, 1));
    cJSON_AddNumberToObject(s->key[ST_SAE], "epochs", (double)a->sae_epochs);
    cJSON_AddNumberToObject(s->key[ST_SAE], "scale", (double)a->sae_scale);
    cJSON_AddNumberToObject(s->key[ST_SAE], "k", (double)a->sae_k);
    cJSON_AddNumberToObject(s->key[ST_SAE], "seed", (double)s->c->seed);
    cJSON_AddItemToObject(s->key[ST_PROBE], "sae", cJSON_Duplicate(s->key[ST_SAE], 1));
    cJSON_AddNumberToObject(s->key[ST_PROBE], "cap", (double)a->probe_cap);
    cJSON_AddNumberToObject(s->key[ST_PROBE], "seed", (double)s->c->seed);
    return 0;
}

static int manifest_load(run_state *s)
{
    char *text = NULL;
    size_t len;
    ps_error err;
    if (is_root(s) && file_exists(s->manifest_path) && /* the other ranks get rank 0's verdicts */
        ps_read_file(s->manifest_path, 1 << 20, &text, &len, &err) == PS_OK)
        s->manifest = cJSON_Parse(text);
    free(text);
    if (!s->manifest || !cJSON_IsObject(s->manifest)) { /* missing or unreadable: nothing is known to be reusable */
        cJSON_Delete(s->manifest);
        s->manifest = cJSON_CreateObject();
    }
    return s->manifest ? 0 : -1;
}

static int manifest_save(run_state *s)
{
    if (!is_root(s))
        return 0;
    ps_error err;
    char *text = cJSON_Print(s->manifest);
    if (!text)
        return cli_error(s->c, "out of memory formatting %s", s->manifest_path);
    int rc = ps_write_file_atomic(s->manifest_path, text, strlen(text), &err);
    free(text);
    return rc == PS_OK ? 0 : cli_error(s->c, "%s", err.msg);
}

/* Whether stage st's artefact can be reused. */
static int reusable(const run_state *s, int st)
{
    if (s->a->force || s->stage_ran || !file_exists(s->path[st]))
        return 0;
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(s->manifest, STAGE_KEYS[st]);
    return rec && cJSON_Compare(rec, s->key[st], 1);
}

/* Rank 0's verdict of reusable() on every rank: the ranks must take the same branch. */
static int agree_reusable(run_state *s, int st, int *reuse)
{
    ps_error err;
    int r = is_root(s) ? reusable(s, st) : 0;
    if (ps_dist_bcast(s->dist, &r, sizeof r, 0, &err) != PS_OK)
        return cli_error(s->c, "%s", err.msg);
    *reuse = r;
    return 0;
}

/* Before stage st runs: its record and every later one leave run.json. */
static int forget_from(run_state *s, int st)
{
    for (int i = st; i < N_STAGES; i++)
        if (STAGE_KEYS[i])
            cJSON_DeleteItemFromObjectCaseSensitive(s->manifest, STAGE_KEYS[i]);
    s->stage_ran = 1;
    return manifest_save(s);
}

static int remember(run_state *s, int st)
{
    cJSON_DeleteItemFromObjectCaseSensitive(s->manifest, STAGE_KEYS[st]);
    cJSON_AddItemToObject(s->manifest, STAGE_KEYS[st], cJSON_Duplicate(s->key[st], 1));
    return manifest_save(s);
}

static void stage_begin(run_state *s, int st, const char *what)
{
    cli_progress_line(&s->p, "[%d/%d] %s: %s", st + 1, N_STAGES, STAGE_NAMES[st], what);
    s->stages[st].name = STAGE_NAMES[st];
    s->stages[st].seconds = ps_now_seconds();
}

static void stage_end(run_state *s, int st, int reused)
{
    s->stages[st].seconds = ps_now_seconds() - s->stages[st].seconds;
    s->stages[st].reused = reused;
    s->stages[st].artefact = s->path[st];
    char t[32];
    cli_format_duration(s->stages[st].seconds, t, sizeof t);
    cli_progress_line(&s->p, "[%d/%d] %s: %s in %s", st + 1, N_STAGES, STAGE_NAMES[st], reused ? "reused" : "done", t);
}

/* ---- progress callbacks ---- */

static void on_train_batch(void *ctx, int epoch, int64_t batch, int64_t n_batches, double loss, int64_t targets,
                           double seconds)
{
    (void)targets;
    (void)seconds;
    cli_progress_live(ctx, batch == n_batches, "SASRec epoch %d  batch %lld/%lld  loss %.4f", epoch, (long long)batch,
                      (long long)n_batches, loss);
}

static void on_train_epoch(void *ctx, const ps_epoch_report *r)
{
    cli_progress_line(ctx, "SASRec epoch %3d  loss %.4f  valid ndcg@10 %.4f  %.1fs%s", r->epoch, r->train_loss,
                      r->valid_ndcg, r->seconds, r->improved ? "  *best" : "");
}

static void on_sae_batch(const ps_sae_batch_info *b, void *ctx)
{
    cli_progress_live(ctx, 0, "SAE epoch %d  batch %lld/%lld  fvu %.4f", b->epoch, (long long)b->batch + 1,
                      (long long)b->n_batches, b->fvu);
}

static int on_sae_epoch(const ps_sae_epoch_info *e, void *ctx)
{
    cli_progress_line(ctx, "SAE epoch %3d  fvu %.4f  dead %.1f%%  valid fvu %.4f  %.1fs%s", e->epoch, e->train_fvu,
                      100 * e->dead_fraction, e->val_fvu, e->seconds, e->is_best ? "  *best" : "");
    return 0;
}

static void on_vectors(void *ctx, int64_t done, int64_t total)
{
    cli_progress_live(ctx, done == total, "user vectors %lld/%lld", (long long)done, (long long)total);
}

static void on_probe(void *ctx, const char *stage, int64_t done, int64_t total)
{
    cli_progress_live(ctx, done == total, "probe: %s %lld/%lld", stage, (long long)done, (long long)total);
}

/* ---- stages ---- */

static int write_stats(run_state *s)
{
    ps_error err;
    cJSON *o = ps_dataset_stats_json(&s->st);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return cli_error(s->c, "out of memory formatting statistics");
    int rc = ps_write_file_atomic(s->path[ST_DATA], text, strlen(text), &err);
    free(text);
    return rc == PS_OK ? 0 : cli_error(s->c, "%s", err.msg);
}

static int stage_data(run_state *s)
{
    ps_error err;
    stage_begin(s, ST_DATA, s->d->path);
    int rc = cli_load_dataset(s->c, s->d, &s->ds);
    if (rc)
        return rc;
    s->ds_loaded = 1;
    if (ps_dataset_stats_compute(&s->ds, &s->st, &err) != PS_OK)
        return cli_error(s->c, "%s", err.msg);
    if (is_root(s) && (rc = write_stats(s)) != 0)
        return rc;
    cli_progress_line(&s->p, "      %d users, %d items (%d head / %d mid / %d tail), %lld interactions", s->st.users,
                      s->st.items, s->st.head_items, s->st.mid_items, s->st.tail_items, (long long)s->st.interactions);
    stage_end(s, ST_DATA, 0);
    return 0;
}

/* Rank 0 reads and checks the model, every rank gets it. */
static int load_model(run_state *s, const char *path)
{
    ps_error err;
    if (is_root(s) && (ps_sasrec_load(&s->m, path, &err) != PS_OK ||
                       ps_sasrec_check_dataset(s->m, s->ds.n_items, s->ds.max_seq_len, path, &err) != PS_OK))
        return cli_error(s->c, "%s%s", err.msg, s->a->model ? "" : " (run with --force to rebuild it)");
    return share(s, ST_MODEL);
}

static int train_model(run_state *s)
{
    ps_error err;
    ps_sasrec_config mc;
    ps_sasrec_config_default(&mc, s->ds.n_items);
    mc.max_len = s->ds.max_seq_len;
    ps_train_options to;
    ps_train_options_init(&to);
    if (s->a->epochs > 0) {
        to.max_epochs = (int)s->a->epochs;
        to.min_epochs = to.min_epochs > to.max_epochs ? to.max_epochs : to.min_epochs;
    }
    to.seed = s->c->seed;
    to.dist = s->dist;
    to.on_batch = on_train_batch;
    to.on_epoch = on_train_epoch;
    to.cb_ctx = &s->p;
    ps_train_result res;
    int rc = ps_sasrec_create(&s->m, &mc, &err);
    if (rc == PS_OK)
        rc = ps_sasrec_train(s->m, &s->ds, &to, &res, &err);
    cli_progress_done(&s->p);
    ps_model_info info = {res.best_epoch, res.best_ndcg, s->d->path};
    if (rc == PS_OK && is_root(s))
        rc = ps_sasrec_save(s->m, &info, s->path[ST_MODEL], &err);
    if (rc != PS_OK)
        return cli_error(s->c, "%s", err.msg);
    cli_progress_line(&s->p, "      best epoch %d of %d, valid ndcg@10 %.4f", res.best_epoch, res.epochs, res.best_ndcg);
    return share(s, ST_MODEL); /* the ranks' models agree up to the allreduce: take the saved bits */
}

static int stage_model(run_state *s)
{
    if (s->a->model) {
        stage_begin(s, ST_MODEL, "using the given checkpoint");
        s->path[ST_MODEL] = strdup(s->a->model);
        int rc = s->path[ST_MODEL] ? load_model(s, s->a->model) : cli_error(s->c, "out of memory");
        if (!rc)
            stage_end(s, ST_MODEL, 1);
        return rc;
    }
    int reuse;
    int rc = agree_reusable(s, ST_MODEL, &reuse);
    if (rc)
        return rc;
    if (reuse) {
        stage_begin(s, ST_MODEL, "reusing the model in the output directory");
        rc = load_model(s, s->path[ST_MODEL]);
        if (!rc)
            stage_end(s, ST_MODEL, 1);
        return rc;
    }
    stage_begin(s, ST_MODEL, "training (window layout, early stopping on validation NDCG@10)");
    rc = forget_from(s, ST_MODEL);
    if (!rc)
        rc = train_model(s);
    if (!rc)
        rc = remember(s, ST_MODEL);
    if (!rc)
        stage_end(s, ST_MODEL, 0);
    return rc;
}

static int train_sae(run_state *s)
{
    ps_error err;
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, s->m->cfg.d, (int)s->a->sae_scale);
    cfg.k = (int)s->a->sae_k;
    if (cfg.k_aux > cfg.n_latents) /* small SAEs (--sae-scale) have fewer latents than the default AuxK */
        cfg.k_aux = cfg.n_latents;
    ps_sae_train_options o;
    ps_sae_train_options_init(&o);
    o.max_epochs = (int)s->a->sae_epochs;
    o.seed = s->c->seed;
    o.dist = s->dist;
    ps_sae_callbacks cb = {on_sae_epoch, on_sae_batch};
    ps_sae_train_result res;
    s->sae = ps_sae_train_on_model(s->m, &s->ds, &cfg, &o, s->c->seed, &cb, &s->p, on_vectors, &res, &err);
    cli_progress_done(&s->p);
    if (!s->sae || (is_root(s) && ps_sae_save(s->sae, s->path[ST_SAE], &err) != PS_OK))
        return cli_error(s->c, "%s", err.msg);
    cli_progress_line(&s->p, "      %d latents, best epoch %d, valid fvu %.4f", s->sae->cfg.n_latents, res.best_epoch,
                      res.best_val_fvu);
    return share(s, ST_SAE);
}

static int stage_sae(run_state *s)
{
    ps_error err;
    int reuse;
    int rc = agree_reusable(s, ST_SAE, &reuse);
    if (rc)
        return rc;
    if (reuse) {
        stage_begin(s, ST_SAE, "reusing the SAE in the output directory");
        if (is_root(s) && !(s->sae = ps_sae_load(s->path[ST_SAE], &err)))
            return cli_error(s->c, "%s (run with --force to rebuild it)", err.msg);
        if ((rc = share(s, ST_SAE)) != 0)
            return rc;
        stage_end(s, ST_SAE, 1);
        return 0;
    }
    stage_begin(s, ST_SAE, "training the TopK sparse autoencoder on the user vectors");
    rc = forget_from(s, ST_SAE);
    if (!rc)
        rc = train_sae(s);
    if (!rc)
        rc = remember(s, ST_SAE);
    if (!rc)
        stage_end(s, ST_SAE, 0);
    return rc;
}

static int run_probe(run_state *s)
{
    ps_error err;
    ps_probe_options o;
    ps_probe_options_init(&o);
    o.cap = s->a->probe_cap;
    o.seed = s->c->seed;
    o.progress = on_probe;
    o.progress_ctx = &s->p;
    o.dist = s->dist;
    ps_probe_result r = {0};
    int rc = ps_probe_run(s->m, s->sae, &s->ds, &o, &r, &err);
    cli_progress_done(&s->p);
    if (rc == PS_OK && !is_root(s)) { /* every rank holds the table; rank 0's read-back is shared */
        ps_probe_result_free(&r);
        return share(s, ST_PROBE);
    }
    if (rc == PS_OK) {
        ps_latent_items li = {r.top_items, r.n_top, &s->ds.item_tokens, NULL};
        rc = ps_latents_csv_write(s->path[ST_PROBE], &r.table, &li, &err);
    }
    ps_probe_result_free(&r);
    /* the sweep reads the table back, exactly as a reused one would be */
    if (rc == PS_OK)
        rc = ps_latents_csv_read(s->path[ST_PROBE], s->sae->cfg.n_latents, &s->latents, &err);
    return rc == PS_OK ? share(s, ST_PROBE) : cli_error(s->c, "%s", err.msg);
}

static int stage_probe(run_state *s)
{
    ps_error err;
    int reuse;
    int rc = agree_reusable(s, ST_PROBE, &reuse);
    if (rc)
        return rc;
    if (reuse) {
        stage_begin(s, ST_PROBE, "reusing the latent table in the output directory");
        if (is_root(s) && ps_latents_csv_read(s->path[ST_PROBE], s->sae->cfg.n_latents, &s->latents, &err) != PS_OK)
            return cli_error(s->c, "%s (run with --force to rebuild it)", err.msg);
        if ((rc = share(s, ST_PROBE)) != 0)
            return rc;
        stage_end(s, ST_PROBE, 1);
        return 0;
    }
    stage_begin(s, ST_PROBE, "Cohen's d of every latent (popular-only vs long-tail-only synthetic users)");
    rc = forget_from(s, ST_PROBE);
    if (!rc)
        rc = run_probe(s);
    if (!rc)
        rc = remember(s, ST_PROBE);
    if (!rc)
        stage_end(s, ST_PROBE, 0);
    return rc;
}

static int stage_sweep(run_state *s, cli_sweep *sw)
{
    stage_begin(s, ST_SWEEP, "PopSteer grid and re-ranking baselines on both splits");
    s->stages[ST_SWEEP].artefact = s->path[ST_SWEEP];
    double t0 = s->stages[ST_SWEEP].seconds;
    s->stages[ST_SWEEP].seconds = 0; /* cli_sweep_report fills in the sweep's own time for the report */
    ps_report_info info = {s->d->path, s->path[ST_MODEL], s->path[ST_SAE], s->path[ST_PROBE], &s->st, s->stages,
                           N_STAGES, NULL};
    sw->so.probe_cap = s->a->probe_cap; /* ps-direction: the probe stage's synthetic users */
    int rc = cli_sweep_report(s->c, sw, s->m, s->sae, &s->latents, &s->ds, s->path[ST_SWEEP], &info,
                              &s->stages[ST_SWEEP]);
    s->stages[ST_SWEEP].seconds = t0;
    if (!rc)
        stage_end(s, ST_SWEEP, 0);
    return rc;
}

/* ---- setup and teardown ---- */

static int setup(run_state *s)
{
    ps_error err;
    if (is_root(s) && ps_mkdir_p(s->a->out, &err) != PS_OK)
        return cli_error(s->c, "%s", err.msg);
    static const char *const files[N_STAGES] = {"stats.json", "model.safetensors", "sae.safetensors",
                                                "latents.csv", "report"};
    for (int i = 0; i < N_STAGES; i++)
        if (!(i == ST_MODEL && s->a->model) && !(s->path[i] = ps_path_join(s->a->out, files[i], &err)))
            return cli_error(s->c, "out of memory");
    if (!(s->manifest_path = ps_path_join(s->a->out, "run.json", &err)) || manifest_load(s) || make_keys(s))
        return cli_error(s->c, "out of memory");
    return 0;
}

static void teardown(run_state *s)
{
    for (int i = 0; i < N_STAGES; i++) {
        free(s->path[i]);
        cJSON_Delete(s->key[i]);
    }
    free(s->manifest_path);
    cJSON_Delete(s->manifest);
    ps_latent_table_free(&s->latents);
    ps_sae_free(s->sae);
    ps_sasrec_free(s->m);
    if (s->ds_loaded)
        ps_dataset_free(&s->ds);
}

static int run(const cli_common *c, const cli_data *d, const run_args *a, cli_sweep *sw, const ps_dist *dist)
{
    run_state s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.dist = dist;
    s.d = d;
    s.a = a;
    cli_progress_init(&s.p, c->quiet);
    double t0 = ps_now_seconds();
    int rc = setup(&s);
    if (!rc)
        rc = stage_data(&s);
    if (!rc)
        rc = stage_model(&s);
    if (!rc)
        rc = stage_sae(&s);
    if (!rc)
        rc = stage_probe(&s);
    if (!rc)
        rc = stage_sweep(&s, sw);
    if (!rc) {
        char t[32];
        cli_format_duration(ps_now_seconds() - t0, t, sizeof t);
        cli_progress_line(&s.p, "done in %s; report: %s/report.md (and report.html)", t, s.path[ST_SWEEP]);
    }
    teardown(&s);
    return rc;
}

/* ---- options ---- */

static int run_option(const cli_common *c, run_args *a, int opt, const char *arg)
{
    static const struct { int opt; const char *name; long min, max; } ints[] = {
        {OPT_EPOCHS, "epochs", 1, 100000}, {OPT_SAE_EPOCHS, "sae-epochs", 1, 100000},
        {OPT_SAE_SCALE, "sae-scale", 1, 4096}, {OPT_SAE_K, "sae-k", 1, 1 << 20},
        {OPT_PROBE_CAP, "probe-cap", 0, 1L << 40}};
    long *dst[] = {&a->epochs, &a->sae_epochs, &a->sae_scale, &a->sae_k, &a->probe_cap};
    switch (opt) {
    case OPT_OUT: a->out = arg; return 1;
    case OPT_MODEL: a->model = arg; return 1;
    case OPT_FORCE: a->force = 1; return 1;
    default: break;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].opt == opt)
            return cli_parse_long(c, ints[i].name, arg, ints[i].min, ints[i].max, dst[i]) < 0 ? -1 : 1;
    return 0;
}

static int parse(int argc, char **argv, cli_common *c, cli_data *d, run_args *a, cli_sweep *sw)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS, CLI_SWEEP_OPTIONS,
        {"out", required_argument, 0, OPT_OUT}, {"model", required_argument, 0, OPT_MODEL},
        {"force", no_argument, 0, OPT_FORCE}, {"epochs", required_argument, 0, OPT_EPOCHS},
        {"sae-epochs", required_argument, 0, OPT_SAE_EPOCHS}, {"sae-scale", required_argument, 0, OPT_SAE_SCALE},
        {"sae-k", required_argument, 0, OPT_SAE_K}, {"probe-cap", required_argument, 0, OPT_PROBE_CAP},
        {0, 0, 0, 0}};
    for (int opt; (opt = cli_getopt(c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(c, opt, optarg);
        if (r == 0)
            r = cli_data_option(c, d, opt, optarg);
        if (r == 0)
            r = cli_sweep_option(c, sw, opt, optarg);
        if (r == 0)
            r = run_option(c, a, opt, optarg);
        const int status = cli_option_verdict(c, r, argv);
        if (status)
            return status;
    }
    if (c->help)
        return 0;
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%s'", argv[optind]);
    if (!d->path || !a->out)
        return cli_usage_error(c, "--data and --out are required");
    return 0;
}

int cmd_run(int argc, char **argv)
{
    cli_common c;
    cli_data d;
    run_args a = {0};
    cli_sweep sw;
    cli_common_init(&c, "run");
    cli_data_init(&d);
    cli_sweep_init(&sw);
    ps_sae_train_options so;
    ps_sae_train_options_init(&so);
    a.sae_epochs = so.max_epochs;
    a.sae_scale = PS_SAE_DEFAULT_SCALE;
    a.sae_k = PS_SAE_DEFAULT_K;
    int rc = parse(argc, argv, &c, &d, &a, &sw);
    if (!rc && c.help)
        fputs(HELP, stdout);
    if (!rc && !c.help) {
        cli_apply_threads(&c);
        ps_dist dist;
        if ((rc = cli_dist_init(&c, &dist)) != 0) {
            cli_sweep_free(&sw);
            return rc;
        }
        sw.so.dist = &dist;
        rc = cli_sweep_preflight(&c, &sw);
        if (!rc)
            rc = run(&c, &d, &a, &sw, &dist);
        if (rc != 0) /* every rank goes, none waits in a collective for this one */
            ps_dist_abort(&dist, rc);
        ps_dist_finalize(&dist);
    }
    cli_sweep_free(&sw);
    return rc;
}
