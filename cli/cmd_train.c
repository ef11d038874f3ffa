/* popsteer train: SASRec from scratch (or resumed) on a dataset's training split. */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "popsteer/checkpoint.h"
#include "popsteer/dist.h"
#include "popsteer/train.h"

static const char HELP[] =
    "usage: popsteer train --data PATH --out MODEL.safetensors [options]\n\n"
    "Trains SASRec (RecBole flavour) with Adam and early stopping on validation NDCG@10; writes the\n"
    "best model (RecBole parameter names, loadable in PyTorch) and, after every epoch, the training\n"
    "state MODEL.safetensors.state that --resume continues from.\n\n"
    "Training options:\n"
    "  --out FILE         the best model (required)\n"
    "  --layout L         window (default: one causal pass per window of <= 50 items, loss at every\n"
    "                     position with enough context) or prefix (RecBole's one sample per prefix)\n"
    "  --stride N         window layout: new targets per later window (default 25, so every target\n"
    "                     sees >= 26 items of context)\n"
    "  --epochs N         at most N epochs (default 300); --epochs 1 runs exactly one\n"
    "  --min-epochs N     no early stop before N epochs (default 50, or N if smaller)\n"
    "  --patience N       stop after N epochs without a better validation NDCG@10 (default 10)\n"
    "  --lr X             Adam learning rate (default 0.001)\n"
    "  --batch N          target positions per Adam step (default 4096)\n"
    "  --micro-batch N    sequences per forward pass (default 256; bounds memory)\n"
    "  --dropout X        hidden and attention dropout (default 0.5)\n"
    "  --hidden N, --layers N, --heads N, --inner N   model size (default 64, 2, 2, 256)\n"
    "  --resume           continue from MODEL.safetensors.state (same options and data)\n"
    "  --loss L           ce (default: softmax over the whole catalogue) or sampled (softmax over the\n"
    "                     target and --negatives items drawn once per Adam step, log-Q corrected;\n"
    "                     for large catalogues; validation still ranks every item)\n"
    "  --negatives N      sampled: negatives per Adam step (default 1024)\n"
    "  --sampler S        sampled: uniform (default) or pop (proportional to training count + 1)\n"
    "Under mpirun (docs/distributed.md) every rank takes its share of each batch; rank 0 validates,\n"
    "prints and writes the model and state.\n"
    "  --max-memory SIZE  refuse to start when the memory estimate (printed before training) is\n"
    "                     larger than SIZE bytes; K, M, G and T suffixes (powers of 1024)\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_OUT = OPT_FIRST_COMMAND_OPTION, OPT_LAYOUT, OPT_STRIDE, OPT_EPOCHS, OPT_MIN_EPOCHS, OPT_PATIENCE, OPT_LR,
       OPT_BATCH, OPT_MICRO, OPT_DROPOUT, OPT_HIDDEN, OPT_LAYERS, OPT_HEADS, OPT_INNER, OPT_RESUME, OPT_MAX_MEMORY,
       OPT_LOSS, OPT_NEGATIVES, OPT_SAMPLER };

typedef struct train_args {
    const char *out;
    ps_train_options to;
    ps_sasrec_config mc; /* n_items filled in after loading the data */
    int min_epochs_set;
    double max_memory; /* bytes; 0 = no limit */
} train_args;

/* "512M", "1.5G", "2000000": bytes, with K/M/G/T meaning powers of 1024 (an optional trailing "B"
 * or "iB" is accepted, so "512MB" and "512MiB" read the same). */
static int parse_bytes(const cli_common *c, const char *opt, const char *arg, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    double unit = 1;
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++)
            unit *= 1024;
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (errno || end == arg || *end != '\0' || !isfinite(v) || !(v > 0) || v * unit > 1e18) {
        cli_usage_error(c, "--%s: expected a size in bytes such as 2000000, 512M or 1.5G, got '%s'", opt, arg);
        return -1;
    }
    *out = v * unit;
    return 1;
}

static int parse_int(const cli_common *c, const char *name, const char *arg, long min, long max, int *out)
{
    long v;
    if (cli_parse_long(c, name, arg, min, max, &v) < 0)
        return -1;
    *out = (int)v;
    return 1;
}

static int train_option(const cli_common *c, train_args *a, int opt, const char *arg)
{
    double x;
    switch (opt) {
    case OPT_OUT: a->out = arg; return 1;
    case OPT_LAYOUT:
        if (strcmp(arg, "window") && strcmp(arg, "prefix"))
            return cli_usage_error(c, "--layout: expected 'window' or 'prefix', got '%s'", arg), -1;
        a->to.layout = strcmp(arg, "prefix") ? PS_LAYOUT_WINDOW : PS_LAYOUT_PREFIX;
        return 1;
    case OPT_STRIDE: return parse_int(c, "stride", arg, 1, 4096, &a->to.window_stride);
    case OPT_EPOCHS: return parse_int(c, "epochs", arg, 1, 100000, &a->to.max_epochs);
    case OPT_MIN_EPOCHS: a->min_epochs_set = 1; return parse_int(c, "min-epochs", arg, 0, 100000, &a->to.min_epochs);
    case OPT_PATIENCE: return parse_int(c, "patience", arg, 1, 100000, &a->to.patience);
    case OPT_LR:
        if (cli_parse_double(c, "lr", arg, 1e-9, 10, &x) < 0)
            return -1;
        a->to.lr = (float)x;
        return 1;
    case OPT_BATCH: return parse_int(c, "batch", arg, 1, 1 << 24, &a->to.batch_targets);
    case OPT_MICRO: return parse_int(c, "micro-batch", arg, 1, 1 << 16, &a->to.micro_batch);
    case OPT_DROPOUT:
        if (cli_parse_double(c, "dropout", arg, 0, 0.95, &x) < 0)
            return -1;
        a->mc.hidden_dropout = a->mc.attn_dropout = (float)x;
        return 1;
    case OPT_HIDDEN: return parse_int(c, "hidden", arg, 1, 4096, &a->mc.d);
    case OPT_LAYERS: return parse_int(c, "layers", arg, 1, 64, &a->mc.n_layers);
    case OPT_HEADS: return parse_int(c, "heads", arg, 1, 64, &a->mc.n_heads);
    case OPT_INNER: return parse_int(c, "inner", arg, 1, 65536, &a->mc.d_ff);
    case OPT_RESUME: a->to.resume = 1; return 1;
    case OPT_MAX_MEMORY: return parse_bytes(c, "max-memory", arg, &a->max_memory);
    case OPT_LOSS:
        if (strcmp(arg, "ce") && strcmp(arg, "sampled"))
            return cli_usage_error(c, "--loss: expected 'ce' or 'sampled', got '%s'", arg), -1;
        a->to.loss = strcmp(arg, "ce") ? PS_LOSS_SAMPLED : PS_LOSS_CE;
        return 1;
    case OPT_NEGATIVES: return parse_int(c, "negatives", arg, 1, 1 << 20, &a->to.negatives);
    case OPT_SAMPLER:
        if (strcmp(arg, "uniform") && strcmp(arg, "pop"))
            return cli_usage_error(c, "--sampler: expected 'uniform' or 'pop', got '%s'", arg), -1;
        a->to.sampler = strcmp(arg, "pop") ? PS_SAMPLE_UNIFORM : PS_SAMPLE_POP;
        return 1;
    default: return 0;
    }
}

typedef struct train_ui {
    cli_progress p;
    int max_epochs;
} train_ui;

static void on_batch(void *ctx, int epoch, int64_t batch, int64_t n_batches, double loss, int64_t targets,
                     double seconds)
{
    train_ui *ui = ctx;
    double rate = seconds > 0 ? (double)targets / seconds : 0;
    char eta[32];
    cli_format_duration(seconds / (double)batch * (double)(n_batches - batch), eta, sizeof eta);
    cli_progress_live(&ui->p, batch == n_batches, "epoch %d/%d  batch %lld/%lld  loss %.4f  %.0f targets/s  epoch ETA %s",
                      epoch, ui->max_epochs, (long long)batch, (long long)n_batches, loss, rate, eta);
}

static void on_epoch(void *ctx, const ps_epoch_report *r)
{
    train_ui *ui = ctx;
    /* the training time first: what make bench times (bench_main's sasrec_train_epoch), then the
     * validation pass the epoch adds */
    cli_progress_line(&ui->p,
                      "epoch %3d  loss %.4f  valid ndcg@10 %.4f  hit@10 %.4f  %.2fs + valid %.2fs (%.0f targets/s)%s",
                      r->epoch, r->train_loss, r->valid_ndcg, r->valid_hit, r->train_seconds,
                      r->seconds - r->train_seconds, (double)r->targets / (r->train_seconds > 0 ? r->train_seconds : 1),
                      r->improved ? "  *best" : "");
}

static int parse_args(int argc, char **argv, cli_common *c, cli_data *d, train_args *a)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"out", required_argument, 0, OPT_OUT}, {"layout", required_argument, 0, OPT_LAYOUT},
        {"stride", required_argument, 0, OPT_STRIDE}, {"epochs", required_argument, 0, OPT_EPOCHS},
        {"min-epochs", required_argument, 0, OPT_MIN_EPOCHS}, {"patience", required_argument, 0, OPT_PATIENCE},
        {"lr", required_argument, 0, OPT_LR}, {"batch", required_argument, 0, OPT_BATCH},
        {"micro-batch", required_argument, 0, OPT_MICRO}, {"dropout", required_argument, 0, OPT_DROPOUT},
        {"hidden", required_argument, 0, OPT_HIDDEN}, {"layers", required_argument, 0, OPT_LAYERS},
        {"heads", required_argument, 0, OPT_HEADS}, {"inner", required_argument, 0, OPT_INNER},
        {"resume", no_argument, 0, OPT_RESUME}, {"max-memory", required_argument, 0, OPT_MAX_MEMORY},
        {"loss", required_argument, 0, OPT_LOSS}, {"negatives", required_argument, 0, OPT_NEGATIVES},
        {"sampler", required_argument, 0, OPT_SAMPLER}, {0, 0, 0, 0}};
    for (int opt; (opt = cli_getopt(c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(c, opt, optarg);
        if (r == 0)
            r = cli_data_option(c, d, opt, optarg);
        if (r == 0)
            r = train_option(c, a, opt, optarg);
        const int status = cli_option_verdict(c, r, argv);
        if (status)
            return status;
    }
    if (c->help)
        return 0;
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%s'", argv[optind]);
    if (!a->out)
        return cli_usage_error(c, "--out MODEL.safetensors is required");
    if (!a->min_epochs_set && a->to.min_epochs > a->to.max_epochs)
        a->to.min_epochs = a->to.max_epochs;
    return 0;
}

/* What training will hold at its peak, in bytes: five copies of the parameters (weights,
 * gradients, two Adam moments, the best weights), the training workspace of micro_batch
 * sequences, the validation pass run after every epoch while that workspace is alive (an eval
 * workspace of 256 users, their vectors and score rows), and the dataset with its windows.
 * Workspace sizes are asked from the library, not re-derived (see ws_size_fit). They are what is
 * allocated; the kernels leave parts of their workspaces untouched, so the total is an upper bound
 * of the resident size (OpenMP/OpenBLAS thread buffers aside). */
typedef struct train_memory {
    double model;       /* parameters, gradients, Adam moments, best copy */
    double per_seq;     /* training workspace and batch bytes per micro-batch sequence */
    double activations; /* the whole training workspace and batch buffers */
    double eval;        /* validation pass */
    double data;        /* the loaded dataset and the training windows */
    double total;
} train_memory;

/* The size of a workspace of the model's shape as a function of its batch size B and item count n:
 * every buffer of a workspace is fixed, per sequence, per item or per (sequence, item), so the size
 * is base + (B-1) per_seq + (n-1) per_item + (B-1)(n-1) cross, and four tiny workspaces (1-2
 * sequences, 1-2 items) give it exactly, whatever the layout of src/model/sasrec_ws.c is today,
 * without allocating the real one. */
typedef struct ws_size {
    double base, per_seq, per_item, cross;
} ws_size;

static int ws_size_fit(const ps_sasrec_config *cfg, int for_training, ws_size *w, ps_error *err)
{
    double s[2][2]; /* [items - 1][batch - 1] */
    for (int i = 0; i < 2; i++) {
        ps_sasrec_config c = *cfg;
        c.n_items = 1 + i;
        ps_sasrec *m = NULL;
        if (ps_sasrec_create(&m, &c, err) != PS_OK)
            return PS_ERR;
        for (int b = 0; b < 2; b++) {
            ps_sasrec_ws *ws = NULL;
            if (ps_sasrec_ws_create(&ws, m, 1 + b, for_training, err) != PS_OK) {
                ps_sasrec_free(m);
                return PS_ERR;
            }
            s[i][b] = (double)ps_sasrec_ws_bytes(ws);
            ps_sasrec_ws_free(ws);
        }
        ps_sasrec_free(m);
    }
    w->base = s[0][0];
    w->per_seq = s[0][1] - s[0][0];
    w->per_item = s[1][0] - s[0][0];
    w->cross = (s[1][1] - s[1][0]) - w->per_seq;
    return PS_OK;
}

static double ws_size_at(const ws_size *w, double B, double n_items)
{
    return w->base + (B - 1) * w->per_seq + (n_items - 1) * w->per_item + (B - 1) * (n_items - 1) * w->cross;
}

static int estimate_memory(const ps_sasrec *m, const ps_dataset *ds, const ps_train_options *o, train_memory *r,
                           ps_error *err)
{
    const ps_sasrec_config *k = &m->cfg;
    const double L = k->max_len, n = ds->n_items, V = n + 1, f = sizeof(float), B = o->micro_batch;
    const double eval_batch = 256; /* ps_sasrec_quick_eval scores 256 users at a time */
    ws_size train_ws, eval_ws;
    if (ws_size_fit(k, 1, &train_ws, err) != PS_OK || ws_size_fit(k, 0, &eval_ws, err) != PS_OK)
        return ps_fail_wrap(err, "estimating the memory of training");
    double batch = 2 * L * sizeof(int32_t); /* the micro-batch's sequence and target rows */
    r->model = 5.0 * (double)m->n_params * f;
    r->per_seq = train_ws.per_seq + (n - 1) * train_ws.cross + batch;
    r->activations = ws_size_at(&train_ws, B, n) + B * batch;
    r->eval = ws_size_at(&eval_ws, eval_batch, n) + eval_batch * V * f /* scores */ +
              eval_batch * k->d * f /* user vectors */;
    r->data = (double)ds->n_inter * sizeof(int32_t) + (double)(ds->n_users + 2) * sizeof(int64_t) +
              (double)ds->n_train * (sizeof(ps_sample) + 24) /* samples, windows x2 */ +
              (double)ds->n_users * 2 * sizeof(ps_sample) + V * (sizeof(int64_t) + 1);
    r->total = r->model + r->activations + r->eval + r->data;
    return PS_OK;
}

static void format_bytes(double b, char *buf, size_t size)
{
    const char *units[] = {"bytes", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1024 && u < 4)
        b /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* Prints the estimate; refuses (exit status 1) when it is above --max-memory. */
static int check_memory(const cli_common *c, const train_args *a, const train_memory *r)
{
    char total[32], model[32], act[32], seq[32], eval[32], data[32], limit[32];
    format_bytes(r->total, total, sizeof total);
    format_bytes(r->model, model, sizeof model);
    format_bytes(r->activations, act, sizeof act);
    format_bytes(r->per_seq, seq, sizeof seq);
    format_bytes(r->eval, eval, sizeof eval);
    format_bytes(r->data, data, sizeof data);
    cli_note(c, "memory estimate: %s (model and optimizer %s, activations %s = --micro-batch %d x %s, "
                "validation %s, data %s)",
             total, model, act, a->to.micro_batch, seq, eval, data);
    if (a->max_memory <= 0 || r->total <= a->max_memory)
        return 0;
    format_bytes(a->max_memory, limit, sizeof limit);
    double fixed = r->total - (double)a->to.micro_batch * r->per_seq;
    double fits = floor((a->max_memory - fixed) / r->per_seq);
    if (fits >= 1)
        return cli_error(c, "training needs about %s, more than --max-memory %s; --micro-batch %.0f or less would fit "
                            "(each sequence of a micro-batch takes %s)",
                         total, limit, fits, seq);
    char rest[32];
    format_bytes(fixed + r->per_seq, rest, sizeof rest);
    return cli_error(c, "training needs about %s, more than --max-memory %s, and even --micro-batch 1 would need %s: "
                        "the model, its optimizer state and the validation pass do not fit",
                     total, limit, rest);
}

static int print_summary(const cli_common *c, const train_args *a, const ps_train_result *res, double test_ndcg,
                         double test_hit, double memory_estimate)
{
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", a->out);
        cJSON_AddNumberToObject(o, "epochs", res->epochs);
        cJSON_AddNumberToObject(o, "best_epoch", res->best_epoch);
        cJSON_AddNumberToObject(o, "valid_ndcg@10", res->best_ndcg);
        cJSON_AddNumberToObject(o, "test_ndcg@10", test_ndcg);
        cJSON_AddNumberToObject(o, "test_hit@10", test_hit);
        cJSON_AddNumberToObject(o, "seconds", res->seconds);
        cJSON_AddNumberToObject(o, "targets_per_epoch", (double)res->targets_per_epoch);
        cJSON_AddNumberToObject(o, "memory_estimate_bytes", memory_estimate);
        cli_json_add_gemm(o);
        return cli_print_json(c, o);
    }
    char t[32];
    cli_format_duration(res->seconds, t, sizeof t);
    printf("model          %s\n", a->out);
    printf("epochs         %d (best %d%s)\n", res->epochs, res->best_epoch, res->stopped_early ? ", stopped early" : "");
    printf("valid ndcg@10  %.4f\n", res->best_ndcg);
    printf("test ndcg@10   %.4f   hit@10 %.4f\n", test_ndcg, test_hit);
    printf("time           %s (%lld target positions per epoch)\n", t, (long long)res->targets_per_epoch);
    return 0;
}

/* Removes "<path>.tmp.<pid>.<n>" files (ps_atomic_open's temporaries) whose writer process is gone:
 * what a run killed in the middle of writing the model or its state leaves behind. A live pid is
 * left alone (another run may be writing right now). Best effort: failures change nothing. */
static void remove_stale_temporaries(const cli_common *c, const char *path)
{
    char *dir_copy = strdup(path), *base_copy = strdup(path);
    const char *dname = dir_copy ? dirname(dir_copy) : NULL; /* may point into dir_copy, or be "." */
    DIR *dir = dname && base_copy ? opendir(dname) : NULL;
    if (dir) {
        const char *base = basename(base_copy);
        size_t n = strlen(base);
        struct dirent *e;
        while ((e = readdir(dir))) {
            long pid;
            unsigned counter;
            char tail;
            if (strncmp(e->d_name, base, n) != 0 || strncmp(e->d_name + n, ".tmp.", 5) != 0 ||
                sscanf(e->d_name + n + 5, "%ld.%u%c", &pid, &counter, &tail) != 2 || pid <= 0 ||
                (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
                continue;
            size_t len = strlen(dname) + strlen(e->d_name) + 2;
            char *stale = malloc(len);
            if (stale) {
                snprintf(stale, len, "%s/%s", dname, e->d_name);
                if (unlink(stale) == 0)
                    cli_note(c, "removed %s, left by an interrupted run", stale);
                free(stale);
            }
        }
        closedir(dir);
    }
    free(dir_copy);
    free(base_copy);
}

static int train_and_save(const cli_common *c, const cli_data *d, train_args *a, ps_dataset *ds)
{
    const int root = ps_dist_rank(a->to.dist) == 0; /* only rank 0 prints and writes */
    ps_error err;
    ps_sasrec *m = NULL;
    a->mc.n_items = ds->n_items;
    a->mc.max_len = ds->max_seq_len;
    if (ps_sasrec_create(&m, &a->mc, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    train_memory mem = {0};
    if (estimate_memory(m, ds, &a->to, &mem, &err) != PS_OK) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    if (check_memory(c, a, &mem) != 0) {
        ps_sasrec_free(m);
        return 1;
    }
    size_t n = strlen(a->out) + 8;
    char *state = malloc(n);
    if (!state) {
        ps_sasrec_free(m);
        return cli_error(c, "out of memory");
    }
    snprintf(state, n, "%s.state", a->out);
    if (root) {
        remove_stale_temporaries(c, a->out);
        remove_stale_temporaries(c, state);
    }
    train_ui ui;
    cli_progress_init(&ui.p, c->quiet);
    ui.max_epochs = a->to.max_epochs;
    a->to.state_path = state;
    a->to.seed = c->seed;
    a->to.on_batch = root ? on_batch : NULL;
    a->to.on_epoch = root ? on_epoch : NULL;
    a->to.cb_ctx = &ui;
    ps_train_result res;
    double test_ndcg = 0, test_hit = 0;
    ps_model_info info = {0, 0, d->path};
    int rc = ps_sasrec_train(m, ds, &a->to, &res, &err);
    cli_progress_done(&ui.p);
    if (rc == PS_OK && root)
        rc = ps_sasrec_quick_eval(m, ds, PS_SPLIT_TEST, &test_ndcg, &test_hit, &err);
    info.epoch = res.best_epoch;
    info.best_valid_ndcg = res.best_ndcg;
    if (rc == PS_OK && root)
        rc = ps_sasrec_save(m, &info, a->out, &err);
    int status = 0;
    if (rc == PS_OK && root)
        status = print_summary(c, a, &res, test_ndcg, test_hit, mem.total);
    free(state);
    ps_sasrec_free(m);
    return rc == PS_OK ? status : cli_error(c, "%s", err.msg);
}

int cmd_train(int argc, char **argv)
{
    cli_common c;
    cli_data d;
    train_args a;
    cli_common_init(&c, "train");
    cli_data_init(&d);
    memset(&a, 0, sizeof a);
    ps_train_options_init(&a.to);
    ps_sasrec_config_default(&a.mc, 1);
    int rc = parse_args(argc, argv, &c, &d, &a);
    if (rc || c.help)
        return c.help ? (fputs(HELP, stdout), 0) : rc;
    cli_apply_threads(&c);
    ps_dist dist;
    int dist_status = cli_dist_init(&c, &dist);
    if (dist_status)
        return dist_status;
    a.to.dist = &dist;
    ps_dataset ds;
    if ((rc = cli_load_dataset(&c, &d, &ds)) == 0) {
        rc = train_and_save(&c, &d, &a, &ds);
        ps_dataset_free(&ds);
    }
    if (rc != 0) /* every rank goes, none waits in a collective for this one */
        ps_dist_abort(&dist, rc);
    ps_dist_finalize(&dist);
    return rc;
}
