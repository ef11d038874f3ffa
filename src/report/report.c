/* The report directory: results.csv and results.json (every grid point, both splits), and one
 * document written twice, as report.md and report.html, from the same calls — so the two can
 * never disagree, and both show the numbers of the same sweep the images were drawn from. */
#include "popsteer/sweep.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "popsteer/io.h"
#include "popsteer/rerank.h"

/* ======================= small helpers ======================= */

int ps_mkdir_p(const char *dir, ps_error *err)
{
    size_t n = strlen(dir);
    char *p = ps_calloc(n + 1, 1, "a path", err);
    if (!p)
        return PS_ERR;
    memcpy(p, dir, n);
    int rc = PS_OK;
    for (size_t i = 1; i <= n && rc == PS_OK; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = ps_fail(err, "%s: cannot create directory: %s", p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = ps_fail(err, "%s: exists and is not a directory", p);
        p[i] = c;
    }
    free(p);
    return rc;
}

static const ps_metrics *metrics_of(const ps_sweep_result *r, int i, ps_split split)
{
    return &r->points[i].split[split];
}

/* "+1.23 %" relative change of x against base, or "n/a" without a positive base. */
static const char *pct(char *buf, size_t size, double base, double x)
{
    if (!(base > 0) || !isfinite(x))
        snprintf(buf, size, "n/a");
    else
        snprintf(buf, size, "%+.2f %%", 100.0 * (x / base - 1));
    return buf;
}

/* A point's interval, or NULL when the sweep computed none. */
static const ps_interval *ci_of(const ps_sweep_result *r, const ps_interval *ci)
{
    return r->bootstrap > 0 ? ci : NULL;
}

/* "−10.36 % [−11.90, −8.80]": the change with its bootstrap interval (relative, as pct's), and a
 * trailing "≈" when the interval contains 0 (the change is within noise). Without an interval,
 * pct's text alone. */
static const char *pct_ci(char *buf, size_t size, double base, double x, const ps_interval *ci)
{
    pct(buf, size, base, x);
    if (!ci || !isfinite(ci->lo) || !isfinite(ci->hi) || !strcmp(buf, "n/a"))
        return buf;
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, " [%+.2f, %+.2f]%s", 100 * ci->lo, 100 * ci->hi,
             ps_interval_contains_zero(ci) ? " ≈" : "");
    return buf;
}

/* The re-ranking method of that name, or NULL (sasrec and the steering methods). */
static const ps_rerank_method_info *method_info(const char *name)
{
    for (int i = 0; i < ps_rerank_method_count(); i++)
        if (!strcmp(ps_rerank_method_at(i)->name, name))
            return ps_rerank_method_at(i);
    return NULL;
}

/* PopSteer's ablations (sweep.h: "ps-random", ...): steering methods, not baselines. */
static int is_ablation(const char *method)
{
    return !strncmp(method, "ps-", 3);
}

static int is_on_front(const ps_method_summary *ms, int i)
{
    for (int j = 0; j < ms->n_front; j++)
        if (ms->front[j] == i)
            return 1;
    return 0;
}

/* The method summary a point belongs to, or NULL (sasrec). */
static const ps_method_summary *owner(const ps_sweep_summary *s, int i)
{
    for (int m = 0; m < s->n_methods; m++)
        if (i >= s->methods[m].first && i < s->methods[m].first + s->methods[m].n)
            return &s->methods[m];
    return NULL;
}

static const char *objective_name(ps_select_objective o)
{
    return o == PS_SELECT_TRADEOFF ? "tradeoff" : "max_gini_cut";
}

/* ======================= results.csv ======================= */

static void csv_header(FILE *fp, int k)
{
    static const char *const M[] = {"ndcg", "hit", "recall", "precision", "mrr", "ndcg_head", "ndcg_mid",
                                    "ndcg_tail", "coverage", "lt_coverage", "deep_lt_coverage", "gini", "arp",
                                    "arp_distinct", "aplt", "entropy", "ilad", "ilad_features"};
    fprintf(fp, "method,setting,alpha,neurons,split,users");
    for (size_t i = 0; i < sizeof M / sizeof M[0]; i++)
        fprintf(fp, ",%s@%d", M[i], k);
    fprintf(fp, ",rel_ndcg_change_vs_sasrec,rel_gini_change_vs_sasrec,rel_ndcg_change_ci_lo,rel_ndcg_change_ci_hi,"
                "rel_gini_change_ci_lo,rel_gini_change_ci_hi,selected,best_at_tight_drop,on_valid_front,seconds\n");
}

static void csv_metrics(FILE *fp, const ps_metrics *m)
{
    double v[] = {m->ndcg, m->hit, m->recall, m->precision, m->mrr, m->ndcg_head, m->ndcg_mid, m->ndcg_tail,
                  m->coverage, m->lt_coverage, m->deep_lt_coverage, m->gini, m->arp, m->arp_distinct, m->aplt,
                  m->entropy};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        fprintf(fp, ",%.9g", v[i]);
    /* ILAD: empty when it was not computed (no vectors of that kind) */
    const int has[2] = {m->has_ilad, m->has_ilad_features};
    const double ilad[2] = {m->ilad, m->ilad_features};
    for (int i = 0; i < 2; i++)
        has[i] ? fprintf(fp, ",%.9g", ilad[i]) : fputc(',', fp);
}

static double rel_change(double base, double x)
{
    return base > 0 ? x / base - 1 : x - base;
}

int ps_results_csv_write(const char *path, const ps_sweep_result *r, const ps_sweep_summary *s, ps_error *err)
{
    ps_atomic_file af;
    if (ps_atomic_open(&af, path, err) != PS_OK)
        return PS_ERR;
    csv_header(af.fp, r->k);
    for (int split = 0; split < 2; split++)
        for (int i = 0; i < r->n_points; i++) {
            const ps_sweep_point *p = &r->points[i];
            const ps_metrics *m = &p->split[split], *b = metrics_of(r, s->sasrec, (ps_split)split);
            const ps_method_summary *ms = owner(s, i);
            fprintf(af.fp, "%s,%s,", p->method, p->setting);
            if (p->kind == PS_POINT_POPSTEER)
                fprintf(af.fp, "%g,%d", p->alpha, p->neurons);
            else
                fputc(',', af.fp);
            fprintf(af.fp, ",%s,%lld", split == PS_SPLIT_VALID ? "valid" : "test", (long long)m->users);
            csv_metrics(af.fp, m);
            fprintf(af.fp, ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%d,%d,%d,%.3f\n", rel_change(b->ndcg, m->ndcg),
                    rel_change(b->gini, m->gini), p->ndcg_ci[split].lo, p->ndcg_ci[split].hi, p->gini_ci[split].lo,
                    p->gini_ci[split].hi, ms && ms->selected == i, ms && ms->best_tight == i, ms && is_on_front(ms, i),
                    p->seconds);
        }
    return ps_atomic_commit(&af, err);
}

/* ======================= results.json ======================= */

static cJSON *deciles_json(const int64_t *e)
{
    double v[PS_SWEEP_DECILES];
    for (int q = 0; q < PS_SWEEP_DECILES; q++)
        v[q] = (double)e[q];
    return cJSON_CreateDoubleArray(v, PS_SWEEP_DECILES);
}

/* [lo, hi], or null when there is no interval. */
static cJSON *interval_json(const ps_interval *ci)
{
    if (!ci || !isfinite(ci->lo) || !isfinite(ci->hi))
        return cJSON_CreateNull();
    const double v[2] = {ci->lo, ci->hi};
    return cJSON_CreateDoubleArray(v, 2);
}

static cJSON *point_json(const ps_sweep_result *r, const ps_sweep_point *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "method", p->method);
    cJSON_AddStringToObject(o, "setting", p->setting);
    if (p->kind == PS_POINT_POPSTEER) {
        cJSON_AddNumberToObject(o, "alpha", p->alpha);
        cJSON_AddNumberToObject(o, "neurons", p->neurons);
    }
    if (p->kind == PS_POINT_RERANK)
        cJSON_AddNumberToObject(o, "candidates", p->candidates);
    cJSON_AddItemToObject(o, "valid", ps_metrics_to_json(&p->split[PS_SPLIT_VALID]));
    cJSON_AddItemToObject(o, "test", ps_metrics_to_json(&p->split[PS_SPLIT_TEST]));
    cJSON *ci = cJSON_AddObjectToObject(o, "intervals_vs_sasrec");
    for (int sp = 0; ci && sp < 2; sp++) {
        cJSON *c = cJSON_AddObjectToObject(ci, sp == PS_SPLIT_VALID ? "valid" : "test");
        if (!c)
            break;
        cJSON_AddItemToObject(c, "rel_ndcg_change", interval_json(ci_of(r, &p->ndcg_ci[sp])));
        cJSON_AddItemToObject(c, "rel_gini_change", interval_json(ci_of(r, &p->gini_ci[sp])));
    }
    cJSON *dec = cJSON_AddObjectToObject(o, "exposure_by_popularity_decile");
    if (dec) {
        cJSON_AddItemToObject(dec, "valid", deciles_json(p->decile_exposure[PS_SPLIT_VALID]));
        cJSON_AddItemToObject(dec, "test", deciles_json(p->decile_exposure[PS_SPLIT_TEST]));
    }
    cJSON_AddNumberToObject(o, "seconds", p->seconds);
    return o;
}

static cJSON *index_or_null(int i)
{
    return i >= 0 ? cJSON_CreateNumber(i) : cJSON_CreateNull();
}

/* One front comparison (A = a reference steering method, B = the method it is stored on). */
static cJSON *front_vs_json(const ps_sweep_result *r, const ps_front_vs *vs)
{
    const ps_front_cmp *c = &vs->cmp;
    cJSON *v = cJSON_CreateObject();
    if (v) {
        cJSON_AddStringToObject(v, "verdict", ps_front_verdict_name(vs->verdict));
        cJSON_AddNumberToObject(v, "front_points", c->n_b);
        cJSON_AddNumberToObject(v, "dominated_by_popsteer", c->n_dominated);
        cJSON_AddBoolToObject(v, "common_gini_range", c->has_overlap);
        cJSON_AddNumberToObject(v, "gini_lo", c->gini_lo);
        cJSON_AddNumberToObject(v, "gini_hi", c->gini_hi);
        cJSON_AddNumberToObject(v, "mean_ndcg_diff", c->mean_diff);
        cJSON_AddNumberToObject(v, "min_ndcg_diff", c->min_diff);
        cJSON_AddNumberToObject(v, "max_ndcg_diff", c->max_diff);
        cJSON_AddNumberToObject(v, "share_above", c->share_above);
        cJSON_AddItemToObject(v, "mean_ndcg_diff_ci", interval_json(ci_of(r, &vs->gap_ci)));
        cJSON_AddBoolToObject(v, "within_noise", r->bootstrap > 0 && vs->gap_within_noise);
    }
    return v;
}

static cJSON *method_json(const ps_sweep_result *r, const ps_sweep_summary *s, const ps_method_summary *ms)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "method", ms->method);
    cJSON_AddStringToObject(o, "base", ms->base == s->sasrec ? "sasrec" : "popsteer alpha=0");
    cJSON_AddItemToObject(o, "selected", index_or_null(ms->selected));
    cJSON_AddStringToObject(o, "selected_setting", ms->selected >= 0 ? r->points[ms->selected].setting : "");
    cJSON_AddItemToObject(o, "best_at_tight_drop", index_or_null(ms->best_tight));
    cJSON_AddStringToObject(o, "best_at_tight_drop_setting", ms->best_tight >= 0 ? r->points[ms->best_tight].setting : "");
    cJSON_AddItemToObject(o, "valid_front", cJSON_CreateIntArray(ms->front, ms->n_front));
    static const char *const KEYS[PS_SWEEP_REFS] = {"popsteer_front_vs_this", "popsteer_u_front_vs_this",
                                                    "popsteer_i_front_vs_this"};
    for (int q = 0; q < PS_SWEEP_REFS; q++)
        if (ms->vs[q].valid)
            cJSON_AddItemToObject(o, KEYS[q], front_vs_json(r, &ms->vs[q]));
    return o;
}
static cJSON *stages_json(const ps_report_info *info)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && info && i < info->n_stages; i++) {
        const ps_report_stage *st = &info->stages[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "stage", st->name);
        cJSON_AddNumberToObject(o, "seconds", st->seconds);
        cJSON_AddBoolToObject(o, "reused", st->reused);
        if (st->artefact)
            cJSON_AddStringToObject(o, "artefact", st->artefact);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static void add_inputs(cJSON *o, const ps_report_info *info)
{
    cJSON *in = cJSON_AddObjectToObject(o, "inputs");
    if (!in || !info)
        return;
    const char *names[] = {"data", "model", "sae", "latents"};
    const char *vals[] = {info->data_path, info->model_path, info->sae_path, info->latents_path};
    for (int i = 0; i < 4; i++)
        if (vals[i])
            cJSON_AddStringToObject(in, names[i], vals[i]);
    if (info->stats)
        cJSON_AddItemToObject(o, "dataset", ps_dataset_stats_json(info->stats));
}

cJSON *ps_results_json(const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "k", r->k);
    cJSON_AddNumberToObject(o, "candidates", r->L);
    cJSON_AddNumberToObject(o, "users", (double)r->n_users);
    cJSON_AddNumberToObject(o, "items", r->n_items);
    cJSON_AddNumberToObject(o, "latents", r->n_latents);
    cJSON_AddNumberToObject(o, "history_head_share", r->history_head_share);
    cJSON_AddNumberToObject(o, "history_tail_share", r->history_tail_share);
    cJSON *bs = cJSON_AddObjectToObject(o, "bootstrap");
    if (bs) {
        cJSON_AddNumberToObject(bs, "resamples", r->bootstrap);
        cJSON_AddNumberToObject(bs, "level", r->ci_level);
        cJSON_AddNumberToObject(bs, "seed", (double)r->seed);
    }
    cJSON *rule = cJSON_AddObjectToObject(o, "selection");
    if (rule) {
        cJSON_AddStringToObject(rule, "objective", objective_name(s->rule.objective));
        cJSON_AddNumberToObject(rule, "max_ndcg_drop", s->rule.max_ndcg_drop);
        cJSON_AddStringToObject(rule, "popsteer_base", s->base == PS_BASE_SAE ? "popsteer alpha=0" : "sasrec");
        cJSON_AddNumberToObject(rule, "tight_drop", s->tight_drop);
        cJSON_AddStringToObject(rule, "split", "valid");
    }
    add_inputs(o, info);
    cJSON *pts = cJSON_AddArrayToObject(o, "points");
    for (int i = 0; pts && i < r->n_points; i++)
        cJSON_AddItemToArray(pts, point_json(r, &r->points[i]));
    cJSON *ms = cJSON_AddArrayToObject(o, "methods");
    for (int i = 0; ms && i < s->n_methods; i++)
        cJSON_AddItemToArray(ms, method_json(r, s, &s->methods[i]));
    cJSON_AddItemToObject(o, "stages", stages_json(info));
    cJSON_AddNumberToObject(o, "sweep_seconds", r->seconds);
    cJSON_AddItemToObject(o, "decile_items", cJSON_CreateIntArray(r->decile_items, PS_SWEEP_DECILES));
    return o;
}

static int write_json(const char *path, const cJSON *o, ps_error *err)
{
    char *text = o ? cJSON_Print(o) : NULL;
    if (!text)
        return ps_fail(err, "%s: out of memory formatting JSON", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* replace the terminator: the file ends with a newline */
    int rc = ps_write_file_atomic(path, text, n + 1, err);
    free(text);
    return rc;
}

/* ======================= the document (markdown + HTML) ======================= */

typedef struct doc {
    FILE *md, *html;
    int cols;   /* of the open table */
    int n_left; /* its first n_left columns are text (left-aligned), the rest numbers */
    int in_list;
} doc;

static void html_escaped(FILE *fp, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default: fputc(*s, fp);
        }
}

/* Markdown table cells must not contain '|'. */
static void md_cell(FILE *fp, const char *s)
{
    for (; *s; s++)
        fputs(*s == '|' ? "\\|" : (char[2]){*s, 0}, fp);
}

static void doc_h(doc *d, int level, const char *text)
{
    fprintf(d->md, "%.*s %s\n\n", level, "######", text);
    fprintf(d->html, "<h%d>", level);
    html_escaped(d->html, text);
    fprintf(d->html, "</h%d>\n", level);
}

static void doc_p(doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doc_p(doc *d, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (d->in_list) {
        fprintf(d->md, "- %s\n", buf);
        fputs("<li>", d->html);
        html_escaped(d->html, buf);
        fputs("</li>\n", d->html);
        return;
    }
    fprintf(d->md, "%s\n\n", buf);
    fputs("<p>", d->html);
    html_escaped(d->html, buf);
    fputs("</p>\n", d->html);
}

static void doc_list(doc *d, int open)
{
    d->in_list = open;
    fputs(open ? "<ul>\n" : "</ul>\n", d->html);
    if (!open)
        fputc('\n', d->md);
}

static void doc_row(doc *d, const char *const *cells, int header)
{
    fputc('|', d->md);
    fputs("<tr>", d->html);
    for (int i = 0; i < d->cols; i++) {
        fputc(' ', d->md);
        md_cell(d->md, cells[i]);
        fputs(" |", d->md);
        fputs(header ? "<th>" : i < d->n_left ? "<td class=\"l\">" : "<td>", d->html);
        html_escaped(d->html, cells[i]);
        fputs(header ? "</th>" : "</td>", d->html);
    }
    fputs("</tr>\n", d->html);
    fputc('\n', d->md);
    if (header) {
        fputc('|', d->md);
        for (int i = 0; i < d->cols; i++)
            fputs(i < d->n_left ? "---|" : "---:|", d->md);
        fputc('\n', d->md);
    }
}

static void doc_table(doc *d, int cols, int n_left, const char *const *headers)
{
    d->cols = cols;
    d->n_left = n_left;
    fputs("<table>\n", d->html);
    doc_row(d, headers, 1);
}

static void doc_table_end(doc *d)
{
    fputs("</table>\n", d->html);
    fputc('\n', d->md);
}

static void doc_img(doc *d, const char *file, const char *caption)
{
    fprintf(d->md, "![%s](%s)\n\n*%s*\n\n", caption, file, caption);
    fprintf(d->html, "<figure><img src=\"%s\" alt=\"", file);
    html_escaped(d->html, caption);
    fputs("\"><figcaption>", d->html);
    html_escaped(d->html, caption);
    fputs("</figcaption></figure>\n", d->html);
}

/* ======================= report sections ======================= */

#define CELL 128

static void section_intro(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info)
{
    doc_h(d, 1, "PopSteer: how much fairness, at what accuracy cost?");
    if (info && info->data_path)
        doc_p(d, "Data: %s.", info->data_path);
    if (info && info->stats) {
        const ps_dataset_stats *st = info->stats;
        doc_p(d, "%d users, %d items (%d head / %d mid / %d tail), %lld interactions; %lld / %lld / %lld "
                 "train / validation / test samples.",
              st->users, st->items, st->head_items, st->mid_items, st->tail_items, (long long)st->interactions,
              (long long)st->train_samples, (long long)st->valid_samples, (long long)st->test_samples);
    }
    if (info && (info->model_path || info->sae_path))
        doc_p(d, "SASRec: %s. Sparse autoencoder: %s (%d latents). Latent table (probe): %s.",
              info->model_path ? info->model_path : "?", info->sae_path ? info->sae_path : "?", r->n_latents,
              info->latents_path ? info->latents_path : "?");
    int n_pop = s->n_methods ? s->methods[0].n : 0;
    int n_u = s->ref[PS_REF_POPSTEER_U] >= 0 ? s->methods[s->ref[PS_REF_POPSTEER_U]].n : 0, n_abl = 0;
    int n_i = s->ref[PS_REF_POPSTEER_I] >= 0 ? s->methods[s->ref[PS_REF_POPSTEER_I]].n : 0;
    for (int m = 0; m < s->n_methods; m++)
        n_abl += is_ablation(s->methods[m].method) ? s->methods[m].n : 0;
    doc_p(d, "Every list is the top %d of a full ranking of all %d items for each of %lld users; re-rankers "
             "re-order SASRec's top items (up to %d; each method's count is in the baselines table). The sweep "
             "evaluated %d grid points (%d PopSteer, %d PopSteer-U, %d PopSteer-I, %d ablation, %d re-ranking, plus "
             "plain SASRec) on both the validation and the test split in %.1f s; every number is in results.csv and "
             "results.json.",
          r->k, r->n_items, (long long)r->n_users, r->L, r->n_points, n_pop, n_u, n_i, n_abl,
          r->n_points - 1 - n_pop - n_u - n_i - n_abl, r->seconds);
}

/* One row of the "largest Gini reduction within the tight budget" table. */
static void tight_row(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, const ps_method_summary *ms)
{
    char c[6][CELL];
    const char *row[6] = {ms->method, c[0], c[1], c[2], c[3], c[4]};
    int i = ms->best_tight;
    if (i < 0) {
        snprintf(c[0], CELL, "no point within %.0f %% NDCG loss", 100 * s->tight_drop);
        for (int j = 1; j < 5; j++)
            snprintf(c[j], CELL, "-");
        doc_row(d, row, 0);
        return;
    }
    const ps_metrics *bv = metrics_of(r, ms->base, PS_SPLIT_VALID), *bt = metrics_of(r, ms->base, PS_SPLIT_TEST);
    const ps_metrics *v = metrics_of(r, i, PS_SPLIT_VALID), *t = metrics_of(r, i, PS_SPLIT_TEST);
    /* the rule picks the largest cut even when every eligible point raises Gini: say so */
    snprintf(c[0], CELL, "%s%s", r->points[i].setting[0] ? r->points[i].setting : "default",
             v->gini < bv->gini ? "" : " (no Gini reduction)");
    /* the intervals are against plain SASRec: shown only where that is the base */
    const ps_sweep_point *p = &r->points[i];
    int vs_sasrec = ms->base == s->sasrec;
    pct(c[1], CELL, bv->gini, v->gini);
    pct_ci(c[2], CELL, bv->ndcg, v->ndcg, vs_sasrec ? ci_of(r, &p->ndcg_ci[PS_SPLIT_VALID]) : NULL);
    pct_ci(c[3], CELL, bt->gini, t->gini, vs_sasrec ? ci_of(r, &p->gini_ci[PS_SPLIT_TEST]) : NULL);
    pct_ci(c[4], CELL, bt->ndcg, t->ndcg, vs_sasrec ? ci_of(r, &p->ndcg_ci[PS_SPLIT_TEST]) : NULL);
    doc_row(d, row, 0);
}

/* "cuts Gini@10 by 10.2 % (test 10.1 %) at 0.9 % NDCG@10 (test 0.7 %)" for a method's tight point. */
static void describe_cut(const ps_sweep_result *r, const ps_method_summary *ms, char *buf, size_t size)
{
    const ps_metrics *bv = metrics_of(r, ms->base, PS_SPLIT_VALID), *bt = metrics_of(r, ms->base, PS_SPLIT_TEST);
    const ps_metrics *v = metrics_of(r, ms->best_tight, PS_SPLIT_VALID), *t = metrics_of(r, ms->best_tight, PS_SPLIT_TEST);
    snprintf(buf, size, "%s (%s) changes Gini@%d by %+.1f %% (test %+.1f %%) and NDCG@%d by %+.1f %% (test %+.1f %%)",
             ms->method, r->points[ms->best_tight].setting, r->k, 100 * (v->gini / bv->gini - 1),
             100 * (t->gini / bt->gini - 1), r->k, 100 * (v->ndcg / bv->ndcg - 1), 100 * (t->ndcg / bt->ndcg - 1));
}

/* The one-sentence answer: PopSteer's point against the baseline that cuts Gini most. */
static void answer_sentence(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    const ps_method_summary *pop = &s->methods[0], *best = NULL;
    for (int m = 1; m < s->n_methods; m++) {
        const ps_method_summary *ms = &s->methods[m];
        if (ms->best_tight < 0 || !method_info(ms->method)) /* re-rankers only */
            continue;
        double g = metrics_of(r, ms->best_tight, PS_SPLIT_VALID)->gini;
        if (!best || g < metrics_of(r, best->best_tight, PS_SPLIT_VALID)->gini)
            best = ms;
    }
    char a[512], b[512];
    if (pop->best_tight >= 0)
        describe_cut(r, pop, a, sizeof a);
    else
        snprintf(a, sizeof a, "PopSteer has no grid point within %.0f %% NDCG loss", 100 * s->tight_drop);
    if (best)
        describe_cut(r, best, b, sizeof b);
    else
        snprintf(b, sizeof b, "no baseline has a point within the budget");
    doc_p(d, "In short, within a %.0f %% NDCG@%d budget: %s; the baseline that gets the lowest Gini@%d: %s.",
          100 * s->tight_drop, r->k, a, r->k, b);
    static const char *const RULES[2] = {"PopSteer-U", "PopSteer-I"};
    for (int q = PS_REF_POPSTEER_U; q <= PS_REF_POPSTEER_I; q++) {
        if (s->ref[q] < 0)
            continue;
        const ps_method_summary *u = &s->methods[s->ref[q]];
        if (u->best_tight >= 0)
            describe_cut(r, u, a, sizeof a);
        else
            snprintf(a, sizeof a, "%s has no grid point within %.0f %% NDCG loss", RULES[q - 1], 100 * s->tight_drop);
        doc_p(d, "This project's rule %s, within the same budget: %s.", RULES[q - 1], a);
    }
}

static void section_answer(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    char h[5][CELL];
    doc_h(d, 2, "The answer in numbers");
    doc_p(d, "For each method, the largest Gini@%d reduction it reaches while losing at most %.0f %% of NDCG@%d, "
             "chosen on the validation split; then the same point on the test split. Changes are relative to %s.",
          r->k, 100 * s->tight_drop, r->k, s->base == PS_BASE_SAE ? "each method's base (PopSteer: alpha=0; "
                                                                      "re-rankers: plain SASRec)" : "plain SASRec");
    snprintf(h[0], CELL, "valid ΔGini@%d", r->k);
    snprintf(h[1], CELL, "valid ΔNDCG@%d", r->k);
    snprintf(h[2], CELL, "test ΔGini@%d", r->k);
    snprintf(h[3], CELL, "test ΔNDCG@%d", r->k);
    const char *hdr[6] = {"method", "setting", h[0], h[1], h[2], h[3]};
    doc_table(d, 6, 2, hdr);
    for (int m = 0; m < s->n_methods; m++)
        tight_row(d, r, s, &s->methods[m]);
    doc_table_end(d);
    answer_sentence(d, r, s);
}

/* "0.4919–0.5748": the Gini range of a method's validation front. */
static void front_range(const ps_sweep_result *r, const ps_method_summary *ms, char *buf, size_t size)
{
    if (ms->n_front < 1) {
        snprintf(buf, size, "empty");
        return;
    }
    snprintf(buf, size, "%.4f–%.4f", metrics_of(r, ms->front[0], PS_SPLIT_VALID)->gini,
             metrics_of(r, ms->front[ms->n_front - 1], PS_SPLIT_VALID)->gini);
}

static const char *const REF_NAME[PS_SWEEP_REFS] = {"PopSteer", "PopSteer-U", "PopSteer-I"};

static void front_row(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, int q, const ps_method_summary *ms)
{
    const ps_front_vs *vs = &ms->vs[q];
    const ps_front_cmp *c = &vs->cmp;
    char cell[5][2 * CELL], a[48], b[48];
    snprintf(cell[0], sizeof cell[0], "%d of %d", c->n_dominated, c->n_b);
    if (c->has_overlap) {
        snprintf(cell[1], sizeof cell[1], "%.4f–%.4f", c->gini_lo, c->gini_hi);
        char ci[64] = ""; /* two signed numbers: sized so the cell below cannot truncate */
        if (r->bootstrap > 0 && isfinite(vs->gap_ci.lo))
            snprintf(ci, sizeof ci, " [%+.4f, %+.4f]", vs->gap_ci.lo, vs->gap_ci.hi);
        snprintf(cell[2], sizeof cell[2], "%+.4f%s (min %+.4f, max %+.4f)", c->mean_diff, ci, c->min_diff,
                 c->max_diff);
        snprintf(cell[3], sizeof cell[3], "%.0f %%", 100 * c->share_above);
    } else { /* say where each front lies, so "no common range" still tells the direction */
        front_range(r, &s->methods[s->ref[q]], a, sizeof a);
        front_range(r, ms, b, sizeof b);
        snprintf(cell[1], sizeof cell[1], "none (%s %s, %s %s)", ms->method, b, REF_NAME[q], a);
        snprintf(cell[2], sizeof cell[2], "-");
        snprintf(cell[3], sizeof cell[3], "-");
    }
    snprintf(cell[4], sizeof cell[4], "%s%s", ps_front_verdict_name(vs->verdict),
             r->bootstrap > 0 && c->has_overlap && vs->gap_within_noise ? "; the gap is within noise" : "");
    const char *row[6] = {ms->method, cell[0], cell[1], cell[2], cell[3], cell[4]};
    doc_row(d, row, 0);
}

/* For fronts without a common Gini range, which side the other method is on. */
static void disjoint_note(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, int q,
                          const ps_method_summary *ms)
{
    const ps_method_summary *ref = &s->methods[s->ref[q]];
    const ps_front_vs *vs = &ms->vs[q];
    if (vs->cmp.has_overlap || ms->n_front < 1 || ref->n_front < 1 || vs->verdict == PS_FRONT_ABOVE)
        return;
    double b_lo = metrics_of(r, ms->front[0], PS_SPLIT_VALID)->gini;
    double p_hi = metrics_of(r, ref->front[ref->n_front - 1], PS_SPLIT_VALID)->gini;
    if (b_lo > p_hi)
        doc_p(d, "%s: its whole front lies at a higher Gini@%d (less even exposure) than %s's: it never reaches "
                 "the Gini %s reaches, while %d of its %d front points keep a higher NDCG@%d than every %s "
                 "point that is at least as fair (not dominated).",
              ms->method, r->k, REF_NAME[q], REF_NAME[q], vs->cmp.n_b - vs->cmp.n_dominated, vs->cmp.n_b, r->k,
              REF_NAME[q]);
    else
        doc_p(d, "%s: its whole front lies at a lower Gini@%d (more even exposure) than any %s point; "
                 "%d of its %d front points are dominated by a %s point.",
              ms->method, r->k, REF_NAME[q], vs->cmp.n_dominated, vs->cmp.n_b, REF_NAME[q]);
}

/* The comparison table of every other method's front with reference q's. */
static void fronts_table(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, int q)
{
    char h[3][CELL], title[CELL];
    snprintf(title, CELL, "Is %s's front above each other method's?", REF_NAME[q]);
    doc_h(d, 3, title);
    snprintf(h[0], CELL, "front points dominated by %s", REF_NAME[q]);
    snprintf(h[1], CELL, "NDCG at equal Gini: %s − it", REF_NAME[q]);
    snprintf(h[2], CELL, "share of range %s ≥", REF_NAME[q]);
    const char *hdr[6] = {"method", h[0], "common Gini range", h[1], h[2], "verdict"};
    doc_table(d, 6, 2, hdr);
    int above = 0, noise = 0, n = 0;
    for (int m = 0; m < s->n_methods; m++) {
        const ps_method_summary *ms = &s->methods[m];
        if (!ms->vs[q].valid)
            continue;
        front_row(d, r, s, q, ms);
        n++;
        above += ms->vs[q].verdict == PS_FRONT_ABOVE || ms->vs[q].verdict == PS_FRONT_ABOVE_OVERLAP;
        noise += r->bootstrap > 0 && ms->vs[q].cmp.has_overlap && ms->vs[q].gap_within_noise;
    }
    doc_table_end(d);
    doc_p(d, "As measured: %s's front is above (or above on the common Gini range) for %d of %d methods; for %d of "
             "them the mean gap over the common Gini range is within noise.",
          REF_NAME[q], above, n, noise);
    for (int m = 0; m < s->n_methods; m++)
        if (s->methods[m].vs[q].valid)
            disjoint_note(d, r, s, q, &s->methods[m]);
}

static void section_fronts(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    doc_h(d, 2, "Are the steering methods' fronts above the others'?");
    doc_p(d, "Fronts are the Pareto fronts of (Gini@%d, NDCG@%d) over each method's grid on the validation split "
             "(a point is on the front when no other point of the method has both lower-or-equal Gini and "
             "higher-or-equal NDCG). \"Dominated\" counts the other method's front points for which some point of "
             "the steering method has Gini ≤ and NDCG ≥. \"NDCG at equal Gini\" interpolates both fronts linearly "
             "and compares them at %d evenly spaced Gini values of the Gini range both fronts cover (steering "
             "method minus the other; positive = the steering method is more accurate at the same fairness). "
             "Verdict: above = every front point of the other method dominated; above on the common range = the "
             "steering method's front is higher wherever both are defined; crossing = higher on part and lower on "
             "another part; below = lower everywhere and nothing dominated; no common Gini range = the fronts do "
             "not overlap in Gini (then only the dominated count speaks). The bracket after the mean gap is its "
             "%.0f %% confidence interval by paired bootstrap over the validation users (%d resamples; the fronts' "
             "points and Gini positions held fixed); when it contains 0 the verdict says the gap is within noise: "
             "on these users the two fronts cannot be told apart. PopSteer is the paper's rule; this project's rules "
             "(docs/steering.md) are PopSteer-U, with a per-user gate and the SAE's error kept, and PopSteer-I, the "
             "item-side probe's latents with their decoder rows added to SASRec's vector.",
          r->k, r->k, PS_FRONT_SAMPLES, 100 * r->ci_level, r->bootstrap);
    for (int q = 0; q < PS_SWEEP_REFS; q++)
        if (s->ref[q] >= 0)
            fronts_table(d, r, s, q);
}

/* Index of a method's point with the lowest validation Gini (its strongest setting). */
static int strongest_point(const ps_sweep_result *r, const ps_method_summary *ms)
{
    int best = ms->first;
    for (int i = ms->first; i < ms->first + ms->n; i++)
        if (metrics_of(r, i, PS_SPLIT_VALID)->gini < metrics_of(r, best, PS_SPLIT_VALID)->gini)
            best = i;
    return best;
}

/* Every baseline: what it does, its grid, and how far its grid moves Gini — so a baseline that
 * barely moves is visible as such, with the reason where the numbers give one. */
static void section_baselines(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    if (s->n_methods < 2)
        return;
    doc_h(d, 2, "The baselines and how far each one reaches");
    doc_p(d, "Every re-ranker re-orders plain SASRec's top candidates; each is swept over the grid its documentation "
             "(include/popsteer/rerank.h, `popsteer eval --help`) gives, chosen to reach the method's strongest "
             "setting. \"Strongest point\" is the grid point with the lowest validation Gini@%d.", r->k);
    const char *hdr[8] = {"method", "what it does", "strongest point", "candidates", "grid points",
                          "distinct front points", "its valid ΔGini@k", "its valid ΔNDCG@k"};
    doc_table(d, 8, 3, hdr);
    const ps_metrics *b = metrics_of(r, s->sasrec, PS_SPLIT_VALID);
    for (int m = 1; m < s->n_methods; m++) {
        const ps_method_summary *ms = &s->methods[m];
        const ps_rerank_method_info *info = method_info(ms->method);
        if (!info) /* a steering method */
            continue;
        int i = strongest_point(r, ms);
        char n[CELL], g[CELL], nd[CELL], L[CELL], f[CELL];
        snprintf(n, CELL, "%d", ms->n);
        snprintf(f, CELL, "%d", ms->n_front);
        snprintf(L, CELL, "%d", r->points[ms->first].candidates);
        pct(g, CELL, b->gini, metrics_of(r, i, PS_SPLIT_VALID)->gini);
        pct(nd, CELL, b->ndcg, metrics_of(r, i, PS_SPLIT_VALID)->ndcg);
        const char *row[8] = {ms->method, info ? info->doc : "", r->points[i].setting, L, n, f, g, nd};
        doc_row(d, row, 0);
    }
    doc_table_end(d);
    doc_p(d, "Calibrating methods (xquad, cp) move each list towards the user's own popularity mix, not towards "
             "even exposure: the validation users' histories hold on average %.1f %% head and %.1f %% tail items, "
             "plain SASRec's lists %.1f %% head items (1 − APLT). Where the lists hold fewer head items than the "
             "histories, calibration adds head items and Gini rises; it can lower Gini only where the lists are "
             "more popular than the profiles; their fronts then hold only the unchanged lists (lambda = 0). fair "
             "(FA*IR) fills a list from the unprotected items when its candidates run out of protected ones, so its "
             "quotas are then not met. pmmf serves each group from a budget of (4/3) · share of items · users · "
             "k slots (the authors' setting); the head budget runs out within the first users and the mid one "
             "later, after which only tail items can be served, so the budgets, not lambda, set the group mix and "
             "its grid points lie close together (lambda only bounds the dual bonuses; include/popsteer/rerank.h).",
          100 * r->history_head_share, 100 * r->history_tail_share, 100 * (1 - b->aplt));
}

/* The selected-points table: test metrics with changes against plain SASRec. */
#define SEL_COLS 17 /* method, setting, 13 metrics, ΔNDCG, ΔGini */

static void selected_row(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, const char *label, int i,
                         ps_split split)
{
    char c[SEL_COLS][CELL];
    const char *row[SEL_COLS];
    row[0] = label;
    for (int j = 1; j < SEL_COLS; j++)
        row[j] = c[j];
    if (i < 0) {
        snprintf(c[1], CELL, "no point within %.0f %% NDCG loss", 100 * s->rule.max_ndcg_drop);
        for (int j = 2; j < SEL_COLS; j++)
            snprintf(c[j], CELL, "-");
        doc_row(d, row, 0);
        return;
    }
    const ps_metrics *m = metrics_of(r, i, split), *b = metrics_of(r, s->sasrec, split);
    snprintf(c[1], CELL, "%s", r->points[i].setting[0] ? r->points[i].setting : "-");
    double v[13] = {m->ndcg, m->hit, m->gini, m->coverage, m->lt_coverage, m->deep_lt_coverage, m->arp, m->aplt,
                    m->ilad, m->ilad_features, m->ndcg_head, m->ndcg_mid, m->ndcg_tail};
    const int shown[13] = {1, 1, 1, 1, 1, 1, 1, 1, m->has_ilad, m->has_ilad_features, 1, 1, 1};
    for (int j = 0; j < 13; j++) /* ARP is a popularity share, often below 0.01: significant digits */
        snprintf(c[2 + j], CELL, !shown[j] ? "-" : j == 6 ? "%.4g" : "%.4f", v[j]);
    pct_ci(c[15], CELL, b->ndcg, m->ndcg, ci_of(r, &r->points[i].ndcg_ci[split]));
    pct_ci(c[16], CELL, b->gini, m->gini, ci_of(r, &r->points[i].gini_ci[split]));
    doc_row(d, row, 0);
}

static void selected_table(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, ps_split split)
{
    static const char *const H[SEL_COLS - 2] = {"NDCG", "Hit", "Gini", "coverage", "LT coverage",
                                                "deep-LT coverage", "ARP", "APLT", "ILAD", "ILAD features",
                                                "NDCG head", "NDCG mid", "NDCG tail", "ΔNDCG", "ΔGini"};
    char h[SEL_COLS - 2][CELL];
    const char *hdr[SEL_COLS] = {"method", "setting"};
    for (int j = 0; j < SEL_COLS - 2; j++) {
        snprintf(h[j], CELL, "%s@%d", H[j], r->k);
        hdr[2 + j] = h[j];
    }
    doc_table(d, SEL_COLS, 2, hdr);
    selected_row(d, r, s, "sasrec (reference)", s->sasrec, split);
    selected_row(d, r, s, "popsteer alpha=0 (reference: SAE-reconstructed)", s->sae, split);
    for (int m = 0; m < s->n_methods; m++)
        selected_row(d, r, s, s->methods[m].method, s->methods[m].selected, split);
    doc_table_end(d);
}

static void section_selected(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    doc_h(d, 2, "Selected operating points (test split)");
    doc_p(d, "Rule (SPEC §7%s): among the validation grid points whose NDCG@%d is at most %.1f %% below the base, "
             "take the one that maximises %s. Base: %s for PopSteer, plain SASRec for every re-ranker. The "
             "selected points are then evaluated on the test split, below. ΔNDCG and ΔGini are relative changes "
             "against plain SASRec on the same split (negative ΔGini = fairer exposure). Ties go to the higher "
             "NDCG, then to the earlier grid point.",
          s->rule.objective == PS_SELECT_TRADEOFF && fabs(s->rule.max_ndcg_drop - 0.05) < 1e-12 ? "" : ", configured",
          r->k, 100 * s->rule.max_ndcg_drop,
          s->rule.objective == PS_SELECT_TRADEOFF ? "(relative Gini reduction − relative NDCG drop)"
                                                  : "the relative Gini reduction",
          ps_sweep_base_name(s->base));
    selected_table(d, r, s, PS_SPLIT_TEST);
    doc_h(d, 3, "The same points on the validation split (where they were chosen)");
    selected_table(d, r, s, PS_SPLIT_VALID);
}

/* What each ablation removes from PopSteer, as the sentence's subject. */
static const char *ablation_what(const char *method)
{
    if (!strcmp(method, "ps-random"))
        return "the same number N of latents drawn at random (seeded), given PopSteer's weights by position and "
               "shifted by their own d and σ — does the probe's choice of latents matter?";
    if (!strcmp(method, "ps-unweighted"))
        return "PopSteer's top-N latents with every weight α instead of the Cohen's-d scaling — does the weighting "
               "matter?";
    if (!strcmp(method, "ps-conditional"))
        return "PopSteer's plan, a latent shifted only for users whose pre-activation lies beyond the other "
               "synthetic group's μ + 2σ on it — does steering only the users who express a latent help?";
    if (!strcmp(method, "ps-direction"))
        return "no SAE: h + α·ν·u, u the unit vector from the popular-only to the long-tail-only synthetic users' "
               "mean SASRec vector, ν the validation users' mean ‖h‖ — does the SAE matter?";
    if (!strcmp(method, "ps-mean"))
        return "an ablation of PopSteer-I, no SAE and no probe: h − α·ν·m/‖m‖, m the validation users' mean SASRec "
               "vector — is PopSteer-I more than removing the average user's direction?";
    return "an ablation of PopSteer";
}

/* The rule an ablation takes apart: ps-mean PopSteer-I's (when swept), the others the paper's. */
static int ablation_ref(const ps_sweep_summary *s, const char *method)
{
    return !strcmp(method, "ps-mean") && s->ref[PS_REF_POPSTEER_I] >= 0 ? PS_REF_POPSTEER_I : PS_REF_POPSTEER;
}

/* What the verdict of the rule's front against the ablation's says, in words. */
static const char *ablation_reading(const ps_sweep_result *r, const ps_front_vs *vs)
{
    if (r->bootstrap > 0 && vs->cmp.has_overlap && vs->gap_within_noise)
        return "on these users the two cannot be told apart";
    switch (vs->verdict) {
    case PS_FRONT_ABOVE:
    case PS_FRONT_ABOVE_OVERLAP: return "the rule's front is higher: what the ablation removes matters";
    case PS_FRONT_BELOW: return "the ablation's front is higher: what it removes does not help the rule here";
    case PS_FRONT_CROSSING: return "neither front is higher everywhere";
    default: return "the fronts cover different Gini ranges";
    }
}

/* One generated sentence per ablation: what it is, its selected point on validation, and its
 * front against PopSteer's with the gap's interval. */
static void section_ablations(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    int any = 0;
    for (int m = 0; m < s->n_methods; m++)
        any |= is_ablation(s->methods[m].method);
    if (!any)
        return;
    doc_h(d, 2, "Ablations");
    doc_p(d, "Each ablation changes one part of PopSteer (ps-mean: of PopSteer-I) and is swept over that rule's "
             "grid (ps-direction and ps-mean: their alphas only), selected by the same rule. Changes are relative "
             "to plain SASRec on the validation split; the gap is the rule's front minus the ablation's, NDCG@%d "
             "at equal Gini@%d over their common Gini range, with its bootstrap interval.", r->k, r->k);
    const ps_metrics *b = metrics_of(r, s->sasrec, PS_SPLIT_VALID);
    doc_list(d, 1);
    for (int m = 0; m < s->n_methods; m++) {
        const ps_method_summary *ms = &s->methods[m];
        int q = ablation_ref(s, ms->method);
        const ps_front_vs *vs = &ms->vs[q];
        if (!is_ablation(ms->method) || !vs->valid)
            continue;
        char sel[4 * CELL] = "no point within the NDCG budget", nd[CELL], g[CELL], gap[2 * CELL] = "";
        if (ms->selected >= 0) {
            const ps_metrics *p = metrics_of(r, ms->selected, PS_SPLIT_VALID);
            snprintf(sel, sizeof sel, "selected %s: ΔNDCG@%d %s, ΔGini@%d %s", r->points[ms->selected].setting,
                     r->k, pct(nd, CELL, b->ndcg, p->ndcg), r->k, pct(g, CELL, b->gini, p->gini));
        }
        if (vs->cmp.has_overlap) {
            snprintf(gap, sizeof gap, ", mean gap %+.4f", vs->cmp.mean_diff);
            if (r->bootstrap > 0 && isfinite(vs->gap_ci.lo))
                snprintf(gap + strlen(gap), sizeof gap - strlen(gap), " [%+.4f, %+.4f]", vs->gap_ci.lo,
                         vs->gap_ci.hi);
        }
        doc_p(d, "%s: %s %s; %s's front vs its: %s (%d of %d of its front points dominated%s): %s.",
              ms->method, ablation_what(ms->method), sel, REF_NAME[q], ps_front_verdict_name(vs->verdict),
              vs->cmp.n_dominated, vs->cmp.n_b, gap, ablation_reading(r, vs));
    }
    doc_list(d, 0);
}

static void section_plots(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    char cap[512];
    doc_h(d, 2, "Plots");
    snprintf(cap, sizeof cap, "NDCG@%d against Gini@%d for every grid point of every method (validation); lines are "
             "each method's Pareto front, circles the selected points, the cross plain SASRec.", r->k, r->k);
    doc_img(d, "pareto.png", cap);
    snprintf(cap, sizeof cap, "PopSteer's steering strength alpha against NDCG, Gini, coverage, long-tail coverage, "
             "APLT and ARP (validation), one line per number N of steered latents; dashed: plain SASRec.");
    doc_img(d, "alpha.png", cap);
    snprintf(cap, sizeof cap, "Histogram of Cohen's d over the %d SAE latents (popular-only against long-tail-only "
             "synthetic users).", r->n_latents);
    doc_img(d, "cohens_d.png", cap);
    snprintf(cap, sizeof cap, "Share of top-%d exposure per item-popularity decile on the test split (decile 1 = the "
             "10 %% most popular items by training count; dashed: an equal share): plain SASRec, PopSteer alpha=0, "
             "PopSteer's selected point and the best-scoring baseline's selected point.", r->k);
    doc_img(d, "exposure_deciles.png", cap);
    (void)s;
}

static void section_stages(doc *d, const ps_report_info *info)
{
    if (!info || info->n_stages < 1)
        return;
    doc_h(d, 2, "Time per stage");
    const char *hdr[4] = {"stage", "status", "artefact", "wall time"};
    doc_table(d, 4, 3, hdr);
    double total = 0;
    for (int i = 0; i < info->n_stages; i++) {
        const ps_report_stage *st = &info->stages[i];
        char t[CELL];
        snprintf(t, CELL, "%.1f s", st->seconds);
        const char *row[4] = {st->name, st->reused ? "reused (existing file loaded)" : "ran",
                              st->artefact ? st->artefact : "", t};
        doc_row(d, row, 0);
        total += st->seconds;
    }
    char t[CELL];
    snprintf(t, CELL, "%.1f s", total);
    const char *row[4] = {"total", "", "", t};
    doc_row(d, row, 0);
    doc_table_end(d);
}

static void section_definitions(doc *d, const ps_sweep_result *r)
{
    doc_h(d, 2, "Definitions");
    doc_list(d, 1);
    doc_p(d, "NDCG@%d, Hit@%d: accuracy of the held-out next item (one target per user). NDCG head/mid/tail: NDCG "
             "over the users whose target is a head, mid or tail item.", r->k, r->k);
    doc_p(d, "Gini@%d: Gini coefficient of how often each item appears in the users' top-%d lists, over all items "
             "(0 = every item equally exposed, 1 = one item takes everything).", r->k, r->k);
    doc_p(d, "coverage: share of items recommended at least once; LT coverage: the same over non-head items; "
             "deep-LT coverage: over tail items.");
    doc_p(d, "ARP: mean popularity (share of training interactions) of the recommended items; APLT: mean share of "
             "non-head items per list.");
    doc_p(d, "ILAD: intra-list average distance, per user the mean of 1 − cosine similarity over the pairs of "
             "its list (SASRec item embeddings; \"ILAD features\": the item feature file's vectors, when given), "
             "then the mean over users (docs/metrics.md).");
    if (r->bootstrap > 0)
        doc_p(d, "Intervals: [lo, hi] after a change is its %.0f %% confidence interval by paired bootstrap over "
                 "the users: %d resamples of the %lld users (seed %llu), every method measured on the same resamples "
                 "as plain SASRec; the interval is the measured change ± z · the resamples' standard deviation (the "
                 "normal bootstrap interval: Gini is not a mean, and resampled Gini changes shrink towards 0, so "
                 "percentiles would be off-centre). NDCG intervals on both splits, Gini intervals on the test "
                 "split. \"≈\" marks a change whose interval contains 0: within noise.",
              100 * r->ci_level, r->bootstrap, (long long)r->n_users, (unsigned long long)r->seed);
    doc_p(d, "popsteer alpha=A N=K: the K latents with the largest |Cohen's d| are shifted with strength A before "
             "the SAE's TopK (SPEC §5); alpha=0 is the SAE-reconstructed recommender. popsteer-i alpha=A N=K: the K "
             "latents with the largest |d| of the item-side probe (what each latent's decoder row does to head "
             "against tail items' scores), their decoder rows weighted as the paper's (popular ones negated) and "
             "added to SASRec's user vector with a length of A typical user-vector lengths (docs/steering.md).");
    doc_p(d, "Files: results.csv and results.json (every grid point, both splits, with the selection and the "
             "fronts), plots/ (the data behind every image and the gnuplot script that drew them).");
    doc_list(d, 0);
}

static const char HTML_HEAD[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>PopSteer report</title>\n"
    "<style>\nbody{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\n"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}\nth,td{border:1px solid #ccc;padding:3px 7px}\n"
    "td{text-align:right}td.l{text-align:left}\nth{background:#f0f0f0}\n"
    "img{max-width:100%}\nfigure{margin:1.5em 0}figcaption{color:#555;font-size:90%}\n</style>\n</head>\n<body>\n";

static void write_doc(doc *d, const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info)
{
    fputs(HTML_HEAD, d->html);
    section_intro(d, r, s, info);
    section_answer(d, r, s);
    section_fronts(d, r, s);
    section_ablations(d, r, s);
    section_baselines(d, r, s);
    section_selected(d, r, s);
    section_plots(d, r, s);
    section_stages(d, info);
    section_definitions(d, r);
    fputs("</body>\n</html>\n", d->html);
}

static int write_pages(const char *md_path, const char *html_path, const ps_sweep_result *r,
                       const ps_sweep_summary *s, const ps_report_info *info, ps_error *err)
{
    ps_atomic_file md, html;
    if (ps_atomic_open(&md, md_path, err) != PS_OK)
        return PS_ERR;
    if (ps_atomic_open(&html, html_path, err) != PS_OK) {
        ps_atomic_abort(&md);
        return PS_ERR;
    }
    doc d = {md.fp, html.fp, 0, 0, 0};
    write_doc(&d, r, s, info);
    if (ps_atomic_commit(&md, err) != PS_OK) {
        ps_atomic_abort(&html);
        return PS_ERR;
    }
    return ps_atomic_commit(&html, err);
}

/* ======================= entry points ======================= */

int ps_report_write(const char *dir, const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info,
                    ps_error *err)
{
    if (ps_mkdir_p(dir, err) != PS_OK)
        return PS_ERR;
    char *csv = ps_path_join(dir, "results.csv", err), *json = ps_path_join(dir, "results.json", err);
    char *md = ps_path_join(dir, "report.md", err), *html = ps_path_join(dir, "report.html", err);
    int rc = csv && json && md && html ? PS_OK : PS_ERR;
    /* images first: a missing or failing gnuplot then leaves no report that lacks them */
    if (rc == PS_OK)
        rc = ps_plots_write(dir, r, s, info ? info->gnuplot : NULL, err);
    if (rc == PS_OK)
        rc = ps_results_csv_write(csv, r, s, err);
    if (rc == PS_OK) {
        cJSON *o = ps_results_json(r, s, info);
        rc = write_json(json, o, err);
        cJSON_Delete(o);
    }
    if (rc == PS_OK)
        rc = write_pages(md, html, r, s, info, err);
    free(csv);
    free(json);
    free(md);
    free(html);
    return rc;
}

cJSON *ps_dataset_stats_json(const ps_dataset_stats *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "users", st->users);
    cJSON_AddNumberToObject(o, "items", st->items);
    cJSON_AddNumberToObject(o, "interactions", (double)st->interactions);
    cJSON_AddNumberToObject(o, "train_samples", (double)st->train_samples);
    cJSON_AddNumberToObject(o, "valid_samples", (double)st->valid_samples);
    cJSON_AddNumberToObject(o, "test_samples", (double)st->test_samples);
    cJSON_AddNumberToObject(o, "head_items", st->head_items);
    cJSON_AddNumberToObject(o, "mid_items", st->mid_items);
    cJSON_AddNumberToObject(o, "tail_items", st->tail_items);
    cJSON_AddNumberToObject(o, "top20_share", st->top20_share);
    cJSON_AddNumberToObject(o, "density", st->density);
    cJSON *len = cJSON_AddObjectToObject(o, "sequence_length");
    if (len) {
        const char *names[] = {"min", "q25", "median", "q75", "q90", "max", "mean"};
        double v[] = {st->len_min, st->len_q25, st->len_median, st->len_q75, st->len_q90, st->len_max, st->len_mean};
        for (int i = 0; i < 7; i++)
            cJSON_AddNumberToObject(len, names[i], v[i]);
    }
    return o;
}

/* ps_dataset_stats_json plus how the file was read (`data stats --json`, Dataset.stats()). */
cJSON *ps_dataset_report_json(const ps_dataset *ds, const ps_dataset_stats *st)
{
    cJSON *o = ps_dataset_stats_json(st);
    if (!o)
        return NULL;
    const ps_load_report *r = &ds->report;
    cJSON *f = cJSON_AddObjectToObject(o, "load");
    if (!f) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(f, "format", ps_format_name(r->format));
    cJSON_AddNumberToObject(f, "rows_read", (double)r->rows_read);
    cJSON_AddNumberToObject(f, "rows_below_rating", (double)r->rows_below_rating);
    cJSON_AddNumberToObject(f, "rows_kcore", (double)r->rows_kcore);
    cJSON_AddNumberToObject(f, "users_too_short", (double)r->users_too_short);
    cJSON_AddNumberToObject(f, "rows_too_short", (double)r->rows_too_short);
    cJSON_AddBoolToObject(f, "has_time", r->has_time);
    return o;
}
