/* popsteer sae train: the TopK sparse autoencoder on SASRec user vectors (SPEC §3). */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/dist.h"
#include "popsteer/popsteer.h"
#include "popsteer/train.h"

static const char HELP[] =
    "usage: popsteer sae train --data PATH --model MODEL.safetensors --out SAE.safetensors [options]\n\n"
    "Trains a TopK sparse autoencoder on the user vectors of every training prefix (SASRec frozen,\n"
    "eval mode), with AuxK for dead latents and early stopping on the validation users' FVU.\n"
    "Prints FVU, dead-latent fraction and the NDCG@10 of the SAE-reconstructed recommender.\n\n"
    "SAE options:\n"
    "  --out FILE         the SAE (safetensors: W_enc, b_enc, W_dec, b_dec) (required)\n"
    "  --k N              active latents per user (default 32)\n"
    "  --scale N          latents = hidden size x N (default 64 -> 4096)\n"
    "  --k-aux N          AuxK latents (default 128)\n"
    "  --epochs N         at most N epochs (default 50)\n"
    "  --patience N       stop after N epochs without a better validation FVU (default 3)\n"
    "  --lr X             Adam learning rate (default 0.001)\n"
    "  --batch N          vectors per Adam step (default 4096)\n"
    "Under mpirun (docs/distributed.md) the user vectors are computed in shares, every rank takes its\n"
    "part of each batch (the same SAE as one process, up to float rounding); rank 0 prints and writes.\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_OUT, OPT_K, OPT_SCALE, OPT_KAUX, OPT_EPOCHS, OPT_PATIENCE, OPT_LR,
       OPT_BATCH };

typedef struct sae_args {
    const char *model, *out;
    int k, scale, k_aux;
    ps_sae_train_options to;
} sae_args;

static int sae_option(const cli_common *c, sae_args *a, int opt, const char *arg)
{
    long v;
    double x;
    switch (opt) {
    case OPT_MODEL: a->model = arg; return 1;
    case OPT_OUT: a->out = arg; return 1;
    case OPT_LR:
        if (cli_parse_double(c, "lr", arg, 1e-9, 10, &x) < 0)
            return -1;
        a->to.lr = (float)x;
        return 1;
    default: break;
    }
    static const struct { int opt; const char *name; long min, max; } ints[] = {
        {OPT_K, "k", 1, 1 << 20}, {OPT_SCALE, "scale", 1, 4096}, {OPT_KAUX, "k-aux", 1, 1 << 20},
        {OPT_EPOCHS, "epochs", 1, 100000}, {OPT_PATIENCE, "patience", 1, 100000}, {OPT_BATCH, "batch", 2, 1 << 24}};
    int *dst[] = {&a->k, &a->scale, &a->k_aux, &a->to.max_epochs, &a->to.patience, &a->to.batch_size};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].opt == opt) {
            if (cli_parse_long(c, ints[i].name, arg, ints[i].min, ints[i].max, &v) < 0)
                return -1;
            *dst[i] = (int)v;
            return 1;
        }
    return 0;
}

typedef struct sae_ui {
    cli_progress p;
    int max_epochs;
} sae_ui;

static void on_batch(const ps_sae_batch_info *b, void *ctx)
{
    sae_ui *ui = ctx;
    cli_progress_live(&ui->p, 0, "sae epoch %d/%d  batch %lld/%lld  fvu %.4f  auxk %.4f", b->epoch, ui->max_epochs,
                      (long long)b->batch + 1, (long long)b->n_batches, b->fvu, b->auxk);
}

static int on_epoch(const ps_sae_epoch_info *e, void *ctx)
{
    sae_ui *ui = ctx;
    cli_progress_line(&ui->p, "sae epoch %3d  fvu %.4f  auxk %.4f  dead %.1f%%  valid fvu %.4f  %.1fs%s", e->epoch,
                      e->train_fvu, e->train_auxk, 100 * e->dead_fraction, e->val_fvu, e->seconds,
                      e->is_best ? "  *best" : "");
    return 0;
}

static void on_vectors(void *ctx, int64_t done, int64_t total)
{
    cli_progress_live(ctx, done == total, "user vectors %lld/%lld", (long long)done, (long long)total);
}

/* NDCG@10 of a scorer on a split, the users sharded over the ranks (the same on every rank). */
static int split_ndcg(ps_scorer *sc, const ps_dataset *ds, ps_split split, const ps_dist *dist, double *ndcg,
                      ps_error *err)
{
    ps_eval_options o;
    ps_eval_options_init(&o);
    o.split = split;
    o.dist = dist;
    ps_metrics met;
    if (ps_evaluate(ds, sc, &o, &met, err) != PS_OK)
        return PS_ERR;
    *ndcg = met.ndcg;
    return PS_OK;
}

/* Valid and test NDCG@10 of SASRec (ndcg[0], ndcg[2]) and of the SAE-reconstructed recommender
 * (ndcg[1], ndcg[3]). */
static int ndcg_table(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, const ps_dist *dist,
                      double ndcg[4], ps_error *err)
{
    ps_sasrec_scorer s;
    ps_steer_scorer t;
    if (ps_sasrec_scorer_init(&s, m, 512, err) != PS_OK)
        return PS_ERR;
    if (ps_steer_scorer_init(&t, m, sae, NULL, 256, err) != PS_OK) {
        ps_sasrec_scorer_free(&s);
        return PS_ERR;
    }
    ps_scorer plain = ps_sasrec_scorer_as_scorer(&s), rec = ps_steer_scorer_as_scorer(&t);
    int rc = split_ndcg(&plain, ds, PS_SPLIT_VALID, dist, &ndcg[0], err) == PS_OK &&
                     split_ndcg(&rec, ds, PS_SPLIT_VALID, dist, &ndcg[1], err) == PS_OK &&
                     split_ndcg(&plain, ds, PS_SPLIT_TEST, dist, &ndcg[2], err) == PS_OK &&
                     split_ndcg(&rec, ds, PS_SPLIT_TEST, dist, &ndcg[3], err) == PS_OK
                 ? PS_OK
                 : PS_ERR;
    ps_steer_scorer_free(&t);
    ps_sasrec_scorer_free(&s);
    return rc;
}

/* FVU of the SAE on the test prefixes' vectors (computed in shares, held by every rank). */
static int test_fvu(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, const ps_dist *dist, double *fvu,
                    ps_error *err)
{
    float *Xt = ps_calloc((size_t)ds->n_users * (size_t)m->cfg.d, sizeof *Xt, "test vectors", err);
    int rc = Xt ? ps_user_vectors_dist(m, ds, ds->test, ds->n_users, Xt, dist, NULL, NULL, err) : PS_ERR;
    if (rc == PS_OK)
        rc = ps_sae_fvu(sae, Xt, ds->n_users, 4096, fvu, err);
    free(Xt);
    return rc;
}

static int print_result(const cli_common *c, const sae_args *a, const ps_sae *sae, const ps_sae_train_result *res,
                        double fvu_test_users, const double ndcg[4])
{
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "sae", a->out);
        cJSON_AddNumberToObject(o, "n_latents", sae->cfg.n_latents);
        cJSON_AddNumberToObject(o, "k", sae->cfg.k);
        cJSON_AddNumberToObject(o, "epochs", res->epochs_run);
        cJSON_AddNumberToObject(o, "best_epoch", res->best_epoch);
        cJSON_AddNumberToObject(o, "valid_fvu", res->best_val_fvu);
        cJSON_AddNumberToObject(o, "test_users_fvu", fvu_test_users);
        cJSON_AddNumberToObject(o, "valid_ndcg@10_sasrec", ndcg[0]);
        cJSON_AddNumberToObject(o, "valid_ndcg@10_sae", ndcg[1]);
        cJSON_AddNumberToObject(o, "test_ndcg@10_sasrec", ndcg[2]);
        cJSON_AddNumberToObject(o, "test_ndcg@10_sae", ndcg[3]);
        cli_json_add_gemm(o);
        return cli_print_json(c, o);
    }
    printf("sae            %s (%d latents, k = %d)\n", a->out, sae->cfg.n_latents, sae->cfg.k);
    printf("epochs         %d (best %d)\n", res->epochs_run, res->best_epoch);
    printf("valid fvu      %.4f   (test users: %.4f)\n", res->best_val_fvu, fvu_test_users);
    printf("ndcg@10        valid: SASRec %.4f, SAE-reconstructed %.4f (%+.2f%%)\n", ndcg[0], ndcg[1],
           100 * (ndcg[1] / ndcg[0] - 1));
    printf("               test:  SASRec %.4f, SAE-reconstructed %.4f (%+.2f%%)\n", ndcg[2], ndcg[3],
           100 * (ndcg[3] / ndcg[2] - 1));
    return 0;
}

/* The SAE of the options on the model's user vectors, in sae (created here). */
static int fit_sae(const cli_common *c, sae_args *a, const ps_sasrec *m, const ps_dataset *ds, sae_ui *ui,
                   ps_sae **sae, ps_sae_train_result *res, ps_error *err)
{
    const ps_dist *dist = a->to.dist;
    float *X = NULL, *Xv = NULL;
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, m->cfg.d, a->scale);
    cfg.k = a->k;
    cfg.k_aux = a->k_aux;
    *sae = ps_sae_create(&cfg, err);
    int rc = *sae ? ps_sae_vector_sets(m, ds, dist, &X, &Xv, on_vectors, &ui->p, err) : PS_ERR;
    cli_progress_done(&ui->p);
    if (rc == PS_OK) {
        ps_sae_init(*sae, c->seed);
        a->to.seed = c->seed;
        ps_sae_callbacks cb = {on_epoch, on_batch};
        rc = ps_sae_train(*sae, X, ds->n_train, Xv, ds->n_users, &a->to, &cb, ui, res, err);
        cli_progress_done(&ui->p);
    }
    free(X);
    free(Xv);
    return rc;
}

static int train_sae(const cli_common *c, sae_args *a, const ps_dataset *ds)
{
    const ps_dist *dist = a->to.dist;
    const int root = ps_dist_rank(dist) == 0; /* only rank 0 prints and writes */
    ps_error err;
    ps_sasrec *m = NULL;
    ps_sae *sae = NULL;
    sae_ui ui;
    cli_progress_init(&ui.p, c->quiet);
    ui.max_epochs = a->to.max_epochs;
    ps_sae_train_result res;
    int rc = ps_sasrec_load(&m, a->model, &err);
    if (rc == PS_OK)
        rc = ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err);
    if (rc == PS_OK)
        rc = fit_sae(c, a, m, ds, &ui, &sae, &res, &err);
    if (rc == PS_OK && root)
        rc = ps_sae_save(sae, a->out, &err);
    double ndcg[4] = {0}, fvu_test = 0;
    if (rc == PS_OK)
        rc = test_fvu(m, sae, ds, dist, &fvu_test, &err);
    if (rc == PS_OK)
        rc = ndcg_table(m, sae, ds, dist, ndcg, &err);
    int status = 0;
    if (rc == PS_OK && root)
        status = print_result(c, a, sae, &res, fvu_test, ndcg);
    ps_sae_free(sae);
    ps_sasrec_free(m);
    return rc == PS_OK ? status : cli_error(c, "%s", err.msg);
}

static int sae_train_cmd(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"out", required_argument, 0, OPT_OUT},
        {"k", required_argument, 0, OPT_K}, {"scale", required_argument, 0, OPT_SCALE},
        {"k-aux", required_argument, 0, OPT_KAUX}, {"epochs", required_argument, 0, OPT_EPOCHS},
        {"patience", required_argument, 0, OPT_PATIENCE}, {"lr", required_argument, 0, OPT_LR},
        {"batch", required_argument, 0, OPT_BATCH}, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    sae_args a = {0};
    a.k = PS_SAE_DEFAULT_K;
    a.scale = PS_SAE_DEFAULT_SCALE;
    a.k_aux = PS_SAE_DEFAULT_K_AUX;
    ps_sae_train_options_init(&a.to);
    cli_common_init(&c, "sae train");
    cli_data_init(&d);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = sae_option(&c, &a, opt, optarg);
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(HELP, stdout), 0;
    if (optind < argc)
        return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
    if (!a.model || !a.out)
        return cli_usage_error(&c, "--model and --out are required");
    cli_apply_threads(&c);
    ps_dist dist;
    int rc = cli_dist_init(&c, &dist);
    if (rc)
        return rc;
    a.to.dist = &dist;
    ps_dataset ds;
    if ((rc = cli_load_dataset(&c, &d, &ds)) == 0) {
        rc = train_sae(&c, &a, &ds);
        ps_dataset_free(&ds);
    }
    if (rc != 0) /* every rank goes, none waits in a collective for this one */
        ps_dist_abort(&dist, rc);
    ps_dist_finalize(&dist);
    return rc;
}

int cmd_sae(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "train"))
        return sae_train_cmd(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fputs("usage: popsteer sae train --data PATH --model MODEL --out SAE.safetensors [options]\n", help ? stdout : stderr);
    return help ? 0 : 2;
}
