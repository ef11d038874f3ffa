/* The report directory (report.c, plots.c): from a sweep result built by hand, results.csv and
 * results.json parse and hold every point, report.md/html have the selected-points table, the
 * images are PNG files, and a missing or failing gnuplot is a clear error that leaves no
 * half-written image. Then the `sweep` and `run` commands end to end on a tiny generated
 * dataset, including the reuse of artefacts by a second `run`. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"
#include "popsteer/sweep.h"

/* ---- a hand-made sweep ---- */

static void set_metrics(ps_metrics *m, double ndcg, double gini)
{
    memset(m, 0, sizeof *m);
    m->k = 10;
    m->users = 1000;
    m->ndcg = ndcg;
    m->hit = ndcg * 1.5;
    m->recall = m->hit;
    m->precision = m->hit / 10;
    m->mrr = ndcg * 0.9;
    m->ndcg_head = ndcg * 1.2;
    m->ndcg_mid = ndcg;
    m->ndcg_tail = ndcg * 0.5;
    m->coverage = 1 - gini;
    m->lt_coverage = 0.9 - gini;
    m->deep_lt_coverage = 0.8 - gini;
    m->gini = gini;
    m->arp = 0.01 * gini;
    m->arp_distinct = 0.005 * gini;
    m->aplt = 1 - gini;
    m->entropy = 5 * (1 - gini);
}

static void add(ps_sweep_result *r, ps_point_kind kind, const char *method, const char *setting, double alpha,
                int neurons, double ndcg, double gini)
{
    ps_sweep_point *p = &r->points[r->n_points++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    snprintf(p->method, sizeof p->method, "%s", method);
    snprintf(p->setting, sizeof p->setting, "%s", setting);
    p->alpha = alpha;
    p->neurons = neurons;
    set_metrics(&p->split[PS_SPLIT_VALID], ndcg, gini);
    set_metrics(&p->split[PS_SPLIT_TEST], ndcg * 1.02, gini * 1.01);
    for (int s = 0; s < 2; s++)
        for (int q = 0; q < PS_SWEEP_DECILES; q++) /* more popular deciles get more, less so with a lower Gini */
            p->decile_exposure[s][q] = (int64_t)(1000 * pow(1 + 10 * gini, -q * 0.3 + 3));
    p->seconds = 0.5;
}

/* PopSteer: α = 0 loses 0.4 % NDCG; α = 2, N = 64 reaches Gini 0.70 at −3 % NDCG (selected).
 * Penalty: β = 1 reaches 0.74 at −4 %. */
static void hand_result(ps_sweep_result *r)
{
    memset(r, 0, sizeof *r);
    r->k = 10;
    r->L = 100;
    r->n_items = 500;
    r->n_users = 1000;
    r->n_latents = 64;
    r->points = calloc(16, sizeof *r->points);
    r->cohens_d = calloc(64, sizeof *r->cohens_d);
    assert_non_null(r->points);
    assert_non_null(r->cohens_d);
    for (int j = 0; j < 64; j++)
        r->cohens_d[j] = sin(j * 1.7) * (j % 5 ? 0.4 : 1.3);
    for (int q = 0; q < PS_SWEEP_DECILES; q++)
        r->decile_items[q] = 50;
    add(r, PS_POINT_SASREC, "sasrec", "", 0, 0, 0.600, 0.800);
    add(r, PS_POINT_POPSTEER, "popsteer", "alpha=0", 0, 0, 0.5976, 0.795);
    add(r, PS_POINT_POPSTEER, "popsteer", "alpha=1 N=16", 1, 16, 0.595, 0.78);
    add(r, PS_POINT_POPSTEER, "popsteer", "alpha=2 N=16", 2, 16, 0.590, 0.76);
    add(r, PS_POINT_POPSTEER, "popsteer", "alpha=1 N=64", 1, 64, 0.592, 0.74);
    add(r, PS_POINT_POPSTEER, "popsteer", "alpha=2 N=64", 2, 64, 0.582, 0.70);
    add(r, PS_POINT_RERANK, "penalty", "beta=0.5", 0, 0, 0.598, 0.78);
    add(r, PS_POINT_RERANK, "penalty", "beta=1", 0, 0, 0.576, 0.74);
    add(r, PS_POINT_RERANK, "penalty", "beta=2", 0, 0, 0.540, 0.65);
    r->seconds = 4.5;
}

typedef struct fixture {
    char *dir;
    ps_sweep_result r;
    ps_sweep_summary s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    hand_result(&f->r);
    ps_select_rule rule;
    ps_select_rule_init(&rule);
    ps_error err = {{0}};
    if (ps_sweep_summarize(&f->r, &rule, PS_BASE_SASREC, 0.01, &f->s, &err) != PS_OK)
        fail_msg("summarize: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ps_sweep_summary_free(&f->s);
    ps_sweep_result_free(&f->r);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *slurp_in(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    char *t = tu_read(p, NULL);
    free(p);
    return t;
}

static void assert_contains(const char *text, const char *what)
{
    if (!strstr(text, what))
        fail_msg("missing \"%s\"", what);
}

static int is_png(const char *dir, const char *name)
{
    static const unsigned char SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    char *p = tu_path(dir, name);
    FILE *fp = fopen(p, "rb");
    free(p);
    unsigned char head[8] = {0};
    size_t got = fp ? fread(head, 1, 8, fp) : 0;
    if (fp)
        fclose(fp);
    return got == 8 && !memcmp(head, SIG, 8);
}

/* Writes the report; skips the test (saying why) when gnuplot is not installed. */
static void write_report_or_skip(fixture *f, const char *dir)
{
    ps_report_stage stages[2] = {{"load data", 0.3, 0, "data.inter"}, {"sweep", 4.5, 0, NULL}};
    ps_report_info info = {"data.inter", "model.safetensors", "sae.safetensors", "latents.csv", NULL, stages, 2, NULL};
    ps_error err = {{0}};
    if (ps_report_write(dir, &f->r, &f->s, &info, &err) != PS_OK) {
        if (strstr(err.msg, "cannot run gnuplot")) {
            print_message("skipping: %s\n", err.msg);
            skip();
        }
        fail_msg("report: %s", err.msg);
    }
}

static void test_summary_of_hand_result(void **state)
{
    fixture *f = *state;
    /* popsteer: α=2 N=64 objective (0.125 − 0.03) beats α=1 N=64 (0.075 − 0.0133) */
    assert_string_equal(f->r.points[f->s.methods[0].selected].setting, "alpha=2 N=64");
    /* within 1 %: α=1 N=16 (−0.83 %) cuts Gini most (2.5 %); α=0 only 0.6 % */
    assert_string_equal(f->r.points[f->s.methods[0].best_tight].setting, "alpha=1 N=16");
    /* penalty: β=1 (0.075 − 0.04 = 0.035) beats β=0.5 (0.025 − 0.0033); β=2 is over budget */
    assert_string_equal(f->r.points[f->s.methods[1].selected].setting, "beta=1");
    /* PopSteer's front: (0.70,.582) (0.74,.592) (0.76? no: dominated by .74/.592) (0.78,.595) (0.795,.5976);
     * penalty's (0.65,.54) (0.74,.576) (0.78,.598): 1 of 3 dominated (0.74,.576) */
    assert_int_equal(f->s.methods[1].vs[PS_REF_POPSTEER].cmp.n_b, 3);
    assert_int_equal(f->s.methods[1].vs[PS_REF_POPSTEER].cmp.n_dominated, 1);
    assert_int_equal(f->s.methods[1].vs[PS_REF_POPSTEER].verdict, PS_FRONT_CROSSING);
}

static void test_results_csv(void **state)
{
    fixture *f = *state;
    write_report_or_skip(f, f->dir);
    char *csv = slurp_in(f->dir, "results.csv");
    int lines = 0, header_commas = -1;
    for (char *save = NULL, *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int commas = 0;
        for (char *c = line; *c; c++)
            commas += *c == ',';
        if (header_commas < 0) {
            assert_non_null(strstr(line, "method,setting,alpha,neurons,split,users,ndcg@10,hit@10"));
            assert_non_null(strstr(line, "gini@10"));
            header_commas = commas;
        } else if (commas != header_commas) {
            fail_msg("line %d has %d fields, the header %d: %s", lines + 1, commas + 1, header_commas + 1, line);
        }
        lines++;
    }
    assert_int_equal(lines, 1 + 2 * f->r.n_points); /* every point, both splits */
    free(csv);
    csv = slurp_in(f->dir, "results.csv");
    assert_contains(csv, "\npopsteer,alpha=2 N=64,2,64,valid,1000,0.582,");
    assert_contains(csv, "\npenalty,beta=1,,,test,1000,");
    free(csv);
}

static void test_results_json(void **state)
{
    fixture *f = *state;
    write_report_or_skip(f, f->dir);
    char *text = slurp_in(f->dir, "results.json");
    cJSON *o = cJSON_Parse(text);
    free(text);
    assert_non_null(o);
    cJSON *pts = cJSON_GetObjectItem(o, "points");
    assert_int_equal(cJSON_GetArraySize(pts), f->r.n_points);
    cJSON *p5 = cJSON_GetArrayItem(pts, 5);
    assert_string_equal(cJSON_GetObjectItem(p5, "setting")->valuestring, "alpha=2 N=64");
    assert_true(fabs(cJSON_GetObjectItem(cJSON_GetObjectItem(p5, "valid"), "ndcg@10")->valuedouble - 0.582) < 1e-12);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(p5, "test"), "gini@10")));
    cJSON *methods = cJSON_GetObjectItem(o, "methods");
    assert_int_equal(cJSON_GetArraySize(methods), 2);
    cJSON *pen = cJSON_GetArrayItem(methods, 1);
    assert_string_equal(cJSON_GetObjectItem(pen, "selected_setting")->valuestring, "beta=1");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(pen, "popsteer_front_vs_this"), "verdict")->valuestring,
                        "crossing");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "selection"), "popsteer_base")->valuestring,
                        "sasrec");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "stages")), 2);
    cJSON_Delete(o);
}

static void test_report_pages_and_images(void **state)
{
    fixture *f = *state;
    write_report_or_skip(f, f->dir);
    char *md = slurp_in(f->dir, "report.md");
    assert_contains(md, "## Selected operating points (test split)");
    assert_contains(md, "| method | setting | NDCG@10 | Hit@10 | Gini@10 | coverage@10 | LT coverage@10 | "
                        "deep-LT coverage@10 | ARP@10 | APLT@10 | ILAD@10 | ILAD features@10 | NDCG head@10 | "
                        "NDCG mid@10 | NDCG tail@10 | ΔNDCG@10 | ΔGini@10 |");
    assert_contains(md, "## The baselines and how far each one reaches");
    assert_contains(md, "| sasrec (reference) | - | 0.6120 |"); /* test NDCG = 0.6 × 1.02 */
    assert_contains(md, "| popsteer | alpha=2 N=64 | 0.5936 |");
    assert_contains(md, "| penalty | beta=1 | 0.5875 |");
    assert_contains(md, "| penalty | 1 of 3 |");
    assert_contains(md, "crossing");
    assert_contains(md, "![");
    assert_contains(md, "(pareto.png)");
    assert_contains(md, "| load data | ran | data.inter | 0.3 s |");
    free(md);
    char *html = slurp_in(f->dir, "report.html");
    assert_contains(html, "<!DOCTYPE html>");
    assert_contains(html, "<td class=\"l\">alpha=2 N=64</td>");
    assert_contains(html, "<img src=\"alpha.png\"");
    assert_contains(html, "</html>");
    free(html);
    const char *images[] = {"pareto.png", "alpha.png", "cohens_d.png", "exposure_deciles.png"};
    for (int i = 0; i < 4; i++)
        if (!is_png(f->dir, images[i]))
            fail_msg("%s is not a PNG file", images[i]);
    /* nothing temporary left: 4 images, 2 results, 2 pages, plots/ */
    assert_int_equal(tu_count_entries(f->dir), 9);
    char *plots = tu_path(f->dir, "plots");
    assert_int_equal(tu_count_entries(plots), 5); /* 4 data files + plots.gp, no gnuplot.log */
    free(plots);
    char *gp = slurp_in(f->dir, "plots/plots.gp");
    assert_contains(gp, "pngcairo");
    free(gp);
    char *dat = slurp_in(f->dir, "plots/pareto.dat");
    assert_contains(dat, "0.7 0.582\n"); /* the plot's numbers are the sweep's */
    free(dat);
}

static void test_missing_or_failing_gnuplot(void **state)
{
    fixture *f = *state;
    ps_error e0 = {{0}};
    assert_int_equal(ps_gnuplot_check("/nonexistent/gnuplot", &e0), PS_ERR);
    assert_contains(e0.msg, "gnuplot-nox");
    assert_int_equal(ps_gnuplot_check("false", &e0), PS_ERR); /* runs, but cannot set the terminal */
    assert_contains(e0.msg, "pngcairo");
    ps_report_info info = {0};
    info.gnuplot = "/nonexistent/gnuplot-for-popsteer-tests";
    ps_error err = {{0}};
    char *dir = tu_path(f->dir, "a/b"); /* parents are created */
    assert_int_equal(ps_report_write(dir, &f->r, &f->s, &info, &err), PS_ERR);
    assert_contains(err.msg, "cannot run gnuplot");
    assert_contains(err.msg, "gnuplot-nox");
    char *md = tu_path(dir, "report.md"), *png = tu_path(dir, "pareto.png");
    assert_false(tu_exists(md)); /* results and pages are written only after the images */
    char *csv = tu_path(dir, "results.csv");
    assert_false(tu_exists(csv));
    free(csv);
    assert_false(tu_exists(png));
    info.gnuplot = "false"; /* runs, exits 1 */
    assert_int_equal(ps_report_write(dir, &f->r, &f->s, &info, &err), PS_ERR);
    assert_contains(err.msg, "gnuplot failed");
    assert_false(tu_exists(png));
    free(md);
    free(png);
    free(dir);
}

/* ---- the commands ---- */

static void test_cli_help_and_usage(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(tu_run_cli("sweep --help", &out, &err), 0);
    assert_contains(out, "usage: popsteer sweep");
    assert_contains(out, "--alphas");
    free(out);
    free(err);
    assert_int_equal(tu_run_cli("run --help", &out, &err), 0);
    assert_contains(out, "usage: popsteer run");
    assert_contains(out, "--force");
    free(out);
    free(err);
    assert_int_equal(tu_run_cli("sweep --data x", &out, &err), 2);
    assert_contains(err, "--model, --sae, --latents and --out are required");
    free(out);
    free(err);
    assert_int_equal(tu_run_cli("run --data x --out y --methods nosuch", &out, &err), 2);
    assert_contains(err, "nosuch");
    free(out);
    free(err);
    assert_int_equal(tu_run_cli("run --data x --out y --alphas 1,-2", &out, &err), 2);
    assert_contains(err, "--alphas");
    free(out);
    free(err);
    /* a missing gnuplot stops `run` before any stage, not after the long ones */
    assert_int_equal(tu_run_cli("run --data /nonexistent.inter --out /nonexistent-dir --gnuplot /no/such/gnuplot",
                                &out, &err), 1);
    assert_contains(err, "cannot run gnuplot");
    assert_null(strstr(err, "[1/5]"));
    free(out);
    free(err);
}

static void test_cli_run_end_to_end(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), *cmd = malloc(8192), *out, *err;
    assert_non_null(cmd);
    snprintf(cmd, 8192, "data synth --out '%s/d.inter' --users 150 --items 120 --interactions 3000", dir);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 0);
    free(out);
    free(err);
    const char *opts = "--epochs 1 --sae-epochs 2 --sae-scale 1 --sae-k 8 --probe-cap 300 --alphas 0,1 "
                       "--neurons 16,all --methods penalty,pmmf";
    snprintf(cmd, 8192, "run --data '%s/d.inter' --out '%s/run' %s", dir, dir, opts);
    int rc = tu_run_cli(cmd, &out, &err);
    if (rc != 0 && strstr(err, "cannot run gnuplot")) {
        print_message("skipping: gnuplot is not installed\n");
        skip();
    }
    if (rc != 0)
        fail_msg("run failed (%d): %s", rc, err);
    assert_contains(out, "report");
    assert_contains(err, "[2/5] SASRec: done");
    char *run = tu_path(dir, "run"), *report = tu_path(run, "report");
    const char *files[] = {"stats.json", "model.safetensors", "sae.safetensors", "latents.csv", "run.json"};
    for (int i = 0; i < 5; i++) {
        char *p = tu_path(run, files[i]);
        if (!tu_exists(p))
            fail_msg("missing %s", files[i]);
        free(p);
    }
    assert_true(is_png(report, "pareto.png"));
    char *md = slurp_in(report, "report.md");
    assert_contains(md, "| SASRec | ran |");
    /* the ablations are on by default: their section, one sentence each against PopSteer's front */
    assert_contains(md, "## Ablations");
    assert_contains(md, "ps-random: ");
    assert_contains(md, "ps-unweighted: ");
    assert_contains(md, "ps-conditional: ");
    assert_contains(md, "ps-direction: ");
    free(md);
    free(out);
    free(err);
    /* a second run reuses every artefact */
    assert_int_equal(tu_run_cli(cmd, &out, &err), 0);
    assert_contains(err, "[2/5] SASRec: reused");
    assert_contains(err, "[3/5] SAE: reused");
    assert_contains(err, "[4/5] probe: reused");
    md = slurp_in(report, "report.md");
    assert_contains(md, "| SASRec | reused (existing file loaded) |");
    free(md);
    free(out);
    free(err);
    /* another SAE size: the SAE and the probe run again, SASRec is still reused */
    snprintf(cmd, 8192, "run --data '%s/d.inter' --out '%s/run' %s --sae-k 4", dir, dir, opts);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 0);
    assert_contains(err, "[2/5] SASRec: reused");
    assert_contains(err, "[3/5] SAE: done");
    assert_contains(err, "[4/5] probe: done");
    free(out);
    free(err);
    free(run);
    free(report);
    tu_rmtree(dir);
    free(dir);
    free(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_summary_of_hand_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_pages_and_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_or_failing_gnuplot, setup, teardown),
        cmocka_unit_test(test_cli_help_and_usage),
        cmocka_unit_test(test_cli_run_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
