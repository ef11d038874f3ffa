/* The report's images, drawn by gnuplot (pngcairo): the data of every plot and one gnuplot
 * script go to DIR/plots/, gnuplot renders into temporary names in DIR, and each image is
 * checked (PNG signature) and renamed into place only when all of them succeeded.
 *
 * The script takes its output suffix from a variable, so `cd DIR && gnuplot plots/plots.gp`
 * re-renders the images by hand; we pass a per-process temporary suffix instead. */
#include "popsteer/sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "popsteer/io.h"

extern char **environ;

#define HIST_BINS 60

static const char *const IMAGES[] = {"pareto.png", "alpha.png", "cohens_d.png", "exposure_deciles.png"};
enum { N_IMAGES = (int)(sizeof IMAGES / sizeof IMAGES[0]) };

/* One colour per method, in summary order (popsteer first, in red). */
static const char *colour(int i)
{
    static const char *const C[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b",
                                    "#ff7f0e", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2",
                                    /* enough for popsteer, popsteer-u, popsteer-i, four ablations and seven re-rankers */
                                    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"};
    return C[i % (int)(sizeof C / sizeof C[0])];
}

/* Opens DIR/plots/NAME for an atomic write. */
static int open_data(const char *dir, const char *name, ps_atomic_file *af, ps_error *err)
{
    char rel[128];
    snprintf(rel, sizeof rel, "plots/%s", name);
    char *path = ps_path_join(dir, rel, err);
    int rc = path ? ps_atomic_open(af, path, err) : PS_ERR;
    free(path);
    return rc;
}

static int commit(ps_atomic_file *af, ps_error *err)
{
    return ps_atomic_commit(af, err);
}

/* ---- data files ---- */

static const ps_metrics *valid_of(const ps_sweep_result *r, int i)
{
    return &r->points[i].split[PS_SPLIT_VALID];
}

/* Blocks (separated by two blank lines, gnuplot's "index"): for every method its points, then
 * its front; then the SASRec reference; then the selected points. */
static void write_pareto(FILE *fp, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    fprintf(fp, "# validation split: gini@%d ndcg@%d (blocks: per method points, front; sasrec; selected)\n", r->k,
            r->k);
    for (int mi = 0; mi < s->n_methods; mi++) {
        const ps_method_summary *ms = &s->methods[mi];
        fprintf(fp, "# %s points\n", ms->method);
        for (int i = ms->first; i < ms->first + ms->n; i++)
            fprintf(fp, "%.9g %.9g\n", valid_of(r, i)->gini, valid_of(r, i)->ndcg);
        fprintf(fp, "\n\n# %s front\n", ms->method);
        for (int i = 0; i < ms->n_front; i++)
            fprintf(fp, "%.9g %.9g\n", valid_of(r, ms->front[i])->gini, valid_of(r, ms->front[i])->ndcg);
        fprintf(fp, "\n\n");
    }
    fprintf(fp, "# sasrec\n%.9g %.9g\n\n\n# selected\n", valid_of(r, s->sasrec)->gini, valid_of(r, s->sasrec)->ndcg);
    int any = 0;
    for (int mi = 0; mi < s->n_methods; mi++)
        if (s->methods[mi].selected >= 0) {
            int i = s->methods[mi].selected;
            fprintf(fp, "%.9g %.9g\n", valid_of(r, i)->gini, valid_of(r, i)->ndcg);
            any = 1;
        }
    if (!any) /* keep the block present so the script's index numbers hold */
        fprintf(fp, "NaN NaN\n");
}

/* The distinct N values of the PopSteer points, in sweep order. */
static int neuron_values(const ps_sweep_result *r, int *Ns)
{
    int n = 0;
    for (int i = 0; i < r->n_points; i++) {
        const ps_sweep_point *p = &r->points[i];
        if (p->kind != PS_POINT_POPSTEER || p->alpha == 0)
            continue;
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= Ns[j] == p->neurons;
        if (!seen && n < PS_SWEEP_MAX_GRID)
            Ns[n++] = p->neurons;
    }
    return n;
}

static void alpha_row(FILE *fp, const ps_metrics *m)
{
    fprintf(fp, "%.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", m->ndcg, m->gini, m->coverage, m->lt_coverage, m->aplt,
            m->arp, m->ndcg_tail);
}

/* One block per N: α = 0 (shared) then that N's points by α ascending. Columns: alpha ndcg gini
 * coverage lt_coverage aplt arp ndcg_tail (validation). */
static void write_alpha(FILE *fp, const ps_sweep_result *r, const ps_sweep_summary *s, const int *Ns, int nN)
{
    fprintf(fp, "# validation split; per N: alpha ndcg gini coverage lt_coverage aplt arp ndcg_tail\n");
    for (int j = 0; j < nN; j++) {
        fprintf(fp, "# N=%d\n0 ", Ns[j]);
        alpha_row(fp, valid_of(r, s->sae));
        double last = 0;
        for (;;) { /* next larger alpha of this N: grids are small */
            int next = -1;
            for (int i = 0; i < r->n_points; i++) {
                const ps_sweep_point *p = &r->points[i];
                if (p->kind == PS_POINT_POPSTEER && p->neurons == Ns[j] && p->alpha > last &&
                    (next < 0 || p->alpha < r->points[next].alpha))
                    next = i;
            }
            if (next < 0)
                break;
            last = r->points[next].alpha;
            fprintf(fp, "%.9g ", last);
            alpha_row(fp, valid_of(r, next));
        }
        fprintf(fp, "\n\n");
    }
}

static void write_hist(FILE *fp, const ps_sweep_result *r, double *lo_out, double *hi_out)
{
    double lo = 0, hi = 0;
    for (int j = 0; j < r->n_latents; j++) {
        lo = fmin(lo, r->cohens_d[j]);
        hi = fmax(hi, r->cohens_d[j]);
    }
    if (hi - lo < 1e-9)
        hi = lo + 1;
    int64_t count[HIST_BINS] = {0};
    double w = (hi - lo) / HIST_BINS;
    for (int j = 0; j < r->n_latents; j++) {
        int b = (int)((r->cohens_d[j] - lo) / w);
        count[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b]++;
    }
    fprintf(fp, "# Cohen's d histogram of %d latents: bin_center count (bin width %.9g)\n", r->n_latents, w);
    for (int b = 0; b < HIST_BINS; b++)
        fprintf(fp, "%.9g %lld\n", lo + (b + 0.5) * w, (long long)count[b]);
    *lo_out = lo;
    *hi_out = hi;
}

/* The baseline whose selected point scores best under the rule (for the decile plot), or -1. */
static int best_baseline(const ps_sweep_result *r, const ps_sweep_summary *s)
{
    int best = -1;
    double best_obj = 0;
    const ps_metrics *b = valid_of(r, s->sasrec);
    for (int mi = 1; mi < s->n_methods; mi++) {
        int i = s->methods[mi].selected;
        if (i < 0 || !strcmp(s->methods[mi].method, "random"))
            continue;
        double obj = ps_rel_reduction(b->gini, valid_of(r, i)->gini) - ps_rel_reduction(b->ndcg, valid_of(r, i)->ndcg);
        if (best < 0 || obj > best_obj) {
            best = mi;
            best_obj = obj;
        }
    }
    return best;
}

/* The series of the exposure plot: sasrec, popsteer α=0, PopSteer's selected point and the best
 * baseline's (when selected). Writes point indices and returns how many. */
static int decile_series(const ps_sweep_result *r, const ps_sweep_summary *s, int *pts)
{
    int n = 0;
    pts[n++] = s->sasrec;
    pts[n++] = s->sae;
    if (s->n_methods > 0 && s->methods[0].selected >= 0 && s->methods[0].selected != s->sae)
        pts[n++] = s->methods[0].selected;
    int b = best_baseline(r, s);
    if (b >= 0)
        pts[n++] = s->methods[b].selected;
    return n;
}

static void write_deciles(FILE *fp, const ps_sweep_result *r, const int *pts, int n)
{
    fprintf(fp, "# test split: share of top-%d exposure per training-popularity decile (1 = most popular)\n", r->k);
    fprintf(fp, "decile");
    for (int j = 0; j < n; j++)
        fprintf(fp, " \"%s %s\"", r->points[pts[j]].method, r->points[pts[j]].setting);
    fprintf(fp, "\n");
    for (int q = 0; q < PS_SWEEP_DECILES; q++) {
        fprintf(fp, "%d", q + 1);
        for (int j = 0; j < n; j++) {
            const int64_t *e = r->points[pts[j]].decile_exposure[PS_SPLIT_TEST];
            int64_t total = 0;
            for (int t = 0; t < PS_SWEEP_DECILES; t++)
                total += e[t];
            fprintf(fp, " %.9g", total ? (double)e[q] / (double)total : 0.0);
        }
        fprintf(fp, "\n");
    }
}

/* ---- the script ---- */

static void pareto_plot_command(FILE *fp, const ps_sweep_summary *s)
{
    fprintf(fp, "plot ");
    for (int mi = 0; mi < s->n_methods; mi++) {
        const ps_method_summary *ms = &s->methods[mi];
        fprintf(fp, "%s'plots/pareto.dat' index %d using 1:2 with points pt 7 ps %s lc rgb '%s' title '%s', \\\n",
                mi ? "     " : "", 2 * mi, mi ? "0.9" : "1.2", colour(mi), ms->method);
        fprintf(fp, "     'plots/pareto.dat' index %d using 1:2 with lines lw 2 lc rgb '%s' notitle, \\\n", 2 * mi + 1,
                colour(mi));
    }
    fprintf(fp, "     'plots/pareto.dat' index %d using 1:2 with points pt 3 ps 3 lw 2 lc rgb 'black' "
                "title 'sasrec (no intervention)', \\\n"
                "     'plots/pareto.dat' index %d using 1:2 with points pt 6 ps 2.6 lw 1.5 lc rgb 'black' "
                "title 'selected (rule)'\n",
            2 * s->n_methods, 2 * s->n_methods + 1);
}

/* The zoomed panel's ranges: the points within 10 % of SASRec's NDCG, where operating points
 * live (a random re-ranking or a strong alpha would otherwise squash them into a line). */
static void zoom_ranges(const ps_sweep_result *r, const ps_sweep_summary *s, double *x, double *y)
{
    double lo = 0.9 * valid_of(r, s->sasrec)->ndcg, gmin = INFINITY, gmax = -INFINITY, nmax = lo;
    for (int i = 0; i < r->n_points; i++) {
        const ps_metrics *m = valid_of(r, i);
        if (!(m->ndcg >= lo) || !isfinite(m->gini))
            continue;
        gmin = fmin(gmin, m->gini);
        gmax = fmax(gmax, m->gini);
        nmax = fmax(nmax, m->ndcg);
    }
    double padx = gmax > gmin ? 0.06 * (gmax - gmin) : 0.01, pady = nmax > lo ? 0.08 * (nmax - lo) : 0.01;
    x[0] = gmin - padx;
    x[1] = gmax + padx;
    y[0] = lo;
    y[1] = nmax + pady;
}

static void script_pareto(FILE *fp, const ps_sweep_result *r, const ps_sweep_summary *s)
{
    double x[2], y[2];
    zoom_ranges(r, s, x, y);
    fprintf(fp, "set terminal pngcairo size 1700,720 noenhanced font 'Sans,11'\n"
                "set output 'pareto.png'.suffix\n"
                "set multiplot layout 1,2 title \"NDCG@%d against Gini@%d, every grid point of every method "
                "(validation split); lines: each method's Pareto front\"\n"
                "set xlabel 'Gini@%d of item exposure (lower = fairer)'\nset ylabel 'NDCG@%d (higher = more accurate)'\n"
                "set grid\nset title 'all grid points'\nunset key\n",
            r->k, r->k, r->k, r->k);
    pareto_plot_command(fp, s);
    fprintf(fp, "set title 'zoom: points within 10%% of SASRec''s NDCG@%d'\nset key outside right top box\n"
                "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n",
            r->k, x[0], x[1], y[0], y[1]);
    pareto_plot_command(fp, s);
    fprintf(fp, "unset multiplot\nset xrange [*:*]\nset yrange [*:*]\nset key default\n\n");
}

static void script_alpha(FILE *fp, const ps_sweep_result *r, const ps_sweep_summary *s, const int *Ns, int nN)
{
    static const struct { int col; const char *label; } P[] = {{2, "NDCG"}, {3, "Gini"}, {4, "coverage"},
                                                              {5, "long-tail coverage"}, {6, "APLT"}, {7, "ARP"}};
    const ps_metrics *b = valid_of(r, s->sasrec);
    double ref[6] = {b->ndcg, b->gini, b->coverage, b->lt_coverage, b->aplt, b->arp};
    fprintf(fp, "set output 'alpha.png'.suffix\nset multiplot layout 2,3 title \"PopSteer: steering strength α "
                "against each metric@%d (validation split; dashed: plain SASRec)\"\n"
                "set key inside bottom left box font ',9'\nset grid\nset xlabel 'α'\n",
            r->k);
    for (size_t q = 0; q < sizeof P / sizeof P[0]; q++) {
        if (q == 1) /* one legend, in the NDCG panel's empty lower left */
            fprintf(fp, "unset key\n");
        fprintf(fp, "set title '%s@%d'\nset ylabel ''\nplot ", P[q].label, r->k);
        for (int j = 0; j < nN; j++)
            fprintf(fp, "'plots/alpha.dat' index %d using 1:%d with linespoints pt 7 lw 2 lc rgb '%s' title 'N=%d', ",
                    j, P[q].col, colour(j + 1), Ns[j]);
        fprintf(fp, "%.9g with lines dt 2 lw 2 lc rgb 'black' title 'SASRec'\n", ref[q]);
    }
    fprintf(fp, "unset multiplot\nset key default\n\n");
}

static void script_hist(FILE *fp, const ps_sweep_result *r, double lo, double hi)
{
    fprintf(fp, "set output 'cohens_d.png'.suffix\nset title \"Cohen's d of the %d SAE latents: popular-only vs "
                "long-tail-only synthetic users\"\n"
                "set xlabel \"Cohen's d (> 0: fires more for popular taste; < 0: for long-tail taste)\"\n"
                "set ylabel 'latents'\nset key inside top right\nset grid\nset xrange [%.9g:%.9g]\n"
                "set style fill solid 0.7 border -1\nset boxwidth %.9g absolute\n",
            r->n_latents, lo, hi, (hi - lo) / HIST_BINS);
    for (int sgn = -1; sgn <= 1; sgn += 2)
        for (int t = 0; t < 3; t++) {
            double x = sgn * (t == 0 ? 0.2 : t == 1 ? 0.5 : 0.8);
            if (x > lo && x < hi)
                fprintf(fp, "set arrow from %g, graph 0 to %g, graph 1 nohead dt 2 lc rgb '#555555'\n", x, x);
        }
    fprintf(fp, "plot 'plots/cohens_d.dat' using 1:2 with boxes lc rgb '#1f77b4' title 'latents per bin "
                "(dashed: |d| = 0.2, 0.5, 0.8)'\nunset arrow\nset xrange [*:*]\nset boxwidth\n\n");
}

static void script_deciles(FILE *fp, const ps_sweep_result *r, int n_series)
{
    fprintf(fp, "set output 'exposure_deciles.png'.suffix\n"
                "set title \"Share of top-%d exposure by item popularity decile (test split)\"\n"
                "set xlabel 'item popularity decile by training count (1 = most popular 10%% of items)'\n"
                "set ylabel 'share of all top-%d slots'\nset key inside top right box\nset grid ytics\n"
                "set style data histograms\nset style histogram clustered gap 1\n"
                "set style fill solid 0.8 border -1\nset yrange [0:*]\n"
                "set arrow from graph 0, first 0.1 to graph 1, first 0.1 nohead dt 2 lc rgb 'black'\nplot ",
            r->k, r->k);
    static const char *const C[] = {"#444444", "#aaaaaa", "#d62728", "#1f77b4"};
    for (int j = 0; j < n_series; j++)
        fprintf(fp, "%s'plots/deciles.dat' using %d:xtic(1) title columnheader(%d) lc rgb '%s'", j ? ", " : "",
                j + 2, j + 2, C[j % 4]);
    fprintf(fp, "\nunset arrow\n");
}

static void write_script(FILE *fp, const ps_sweep_result *r, const ps_sweep_summary *s, const int *Ns, int nN,
                         double lo, double hi, int n_series)
{
    fprintf(fp, "# Renders the report's images from the data in plots/. Run from the report directory:\n"
                "#   gnuplot plots/plots.gp\n"
                "if (!exists('suffix')) suffix = ''\n"
                "set encoding utf8\n\n");
    script_pareto(fp, r, s);
    fprintf(fp, "set terminal pngcairo size 1400,850 noenhanced font 'Sans,10'\n");
    script_alpha(fp, r, s, Ns, nN);
    fprintf(fp, "set terminal pngcairo size 1000,620 noenhanced font 'Sans,11'\n");
    script_hist(fp, r, lo, hi);
    script_deciles(fp, r, n_series);
}

/* ---- running gnuplot ---- */

static void log_tail(const char *log_path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *fp = fopen(log_path, "rb");
    if (!fp)
        return;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long n = ftell(fp);
        long start = n > (long)size - 1 ? n - ((long)size - 1) : 0;
        if (fseek(fp, start, SEEK_SET) == 0) {
            size_t got = fread(buf, 1, size - 1, fp);
            buf[got] = '\0';
        }
    }
    fclose(fp);
    for (char *c = buf; *c; c++)
        if (*c == '\n')
            *c = ' ';
}

static int spawn_failed(const char *gnuplot, int e, ps_error *err)
{
    return ps_fail(err, "cannot run gnuplot ('%s'): %s%s", gnuplot, strerror(e),
                   e == ENOENT ? ": the report's images need it; install it (Debian: apt-get install gnuplot-nox, "
                                 "or run scripts/install-deps.sh as root)"
                               : "");
}

/* Runs gnuplot with argv (stdin /dev/null, stdout and stderr to out_path) and waits for it. */
static int spawn_wait(const char *gnuplot, char *const argv[], const char *out_path, int *status, ps_error *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int e = posix_spawnp(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e)
        return spawn_failed(gnuplot, e, err);
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return ps_fail(err, "waiting for gnuplot: %s", strerror(errno));
    /* a shell-style launcher reports a missing program as status 127 */
    if (WIFEXITED(*status) && WEXITSTATUS(*status) == 127)
        return spawn_failed(gnuplot, ENOENT, err);
    return PS_OK;
}

int ps_gnuplot_check(const char *gnuplot, ps_error *err)
{
    gnuplot = gnuplot ? gnuplot : "gnuplot";
    char *argv[] = {(char *)gnuplot, "-e", "set terminal pngcairo", NULL};
    int status = 0;
    if (spawn_wait(gnuplot, argv, "/dev/null", &status, err) != PS_OK)
        return PS_ERR;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ps_fail(err, "gnuplot ('%s') has no pngcairo terminal, which the report's images need (Debian: "
                            "gnuplot-nox has it)", gnuplot);
    return PS_OK;
}

/* gnuplot -e "cd 'DIR'; suffix='SUF'" plots/plots.gp, output and errors to DIR/plots/gnuplot.log. */
static int run_gnuplot(const char *gnuplot, const char *dir, const char *suffix, ps_error *err)
{
    char *log_path = ps_path_join(dir, "plots/gnuplot.log", err);
    size_t n = 2 * strlen(dir) + strlen(suffix) + 64;
    char *cmd = log_path ? ps_calloc(n, 1, "gnuplot command", err) : NULL;
    if (!cmd) {
        free(log_path);
        return PS_ERR;
    }
    size_t used = (size_t)snprintf(cmd, n, "cd '");
    for (const char *c = dir; *c; c++) { /* a quote inside gnuplot's single quotes is doubled */
        if (*c == '\'')
            cmd[used++] = '\'';
        cmd[used++] = *c;
    }
    snprintf(cmd + used, n - used, "'; suffix='%s'", suffix);
    char *argv[] = {(char *)gnuplot, "-e", cmd, "plots/plots.gp", NULL};
    int status = 0;
    int rc = spawn_wait(gnuplot, argv, log_path, &status, err);
    if (rc == PS_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        char tail[600];
        log_tail(log_path, tail, sizeof tail);
        rc = ps_fail(err, "gnuplot failed (%s %d) on %s/plots/plots.gp: %s",
                     WIFEXITED(status) ? "exit status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), dir, tail);
    }
    if (rc == PS_OK)
        unlink(log_path); /* keep the log only when it explains a failure */
    free(cmd);
    free(log_path);
    return rc;
}

/* ---- images into place ---- */

static int check_png(const char *path, ps_error *err)
{
    static const unsigned char SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return ps_fail(err, "gnuplot did not write %s: %s", path, strerror(errno));
    ssize_t got = read(fd, head, sizeof head);
    int ok = got == (ssize_t)sizeof head && !memcmp(head, SIG, sizeof SIG) && fsync(fd) == 0;
    close(fd);
    return ok ? PS_OK : ps_fail(err, "%s: gnuplot's output is not a PNG image", path);
}

/* Checks every temporary image, then renames them all into place; removes them on failure. */
static int place_images(const char *dir, const char *suffix, ps_error *err)
{
    char tmp[N_IMAGES][4096], fin[N_IMAGES][4096];
    int rc = PS_OK;
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(tmp[i], sizeof tmp[i], "%s/%s%s", dir, IMAGES[i], suffix);
        snprintf(fin[i], sizeof fin[i], "%s/%s", dir, IMAGES[i]);
        if (rc == PS_OK)
            rc = check_png(tmp[i], err);
    }
    for (int i = 0; i < N_IMAGES; i++) {
        if (rc == PS_OK && rename(tmp[i], fin[i]) != 0)
            rc = ps_fail(err, "%s: cannot rename into place: %s", fin[i], strerror(errno));
        if (rc != PS_OK)
            unlink(tmp[i]);
    }
    return rc;
}

/* ---- entry point ---- */

static int write_data(const char *dir, const ps_sweep_result *r, const ps_sweep_summary *s, ps_error *err)
{
    int Ns[PS_SWEEP_MAX_GRID], nN = neuron_values(r, Ns), pts[4], n_series = decile_series(r, s, pts);
    double lo, hi;
    ps_atomic_file af;
    if (open_data(dir, "pareto.dat", &af, err) != PS_OK)
        return PS_ERR;
    write_pareto(af.fp, r, s);
    if (commit(&af, err) != PS_OK || open_data(dir, "alpha.dat", &af, err) != PS_OK)
        return PS_ERR;
    write_alpha(af.fp, r, s, Ns, nN);
    if (commit(&af, err) != PS_OK || open_data(dir, "cohens_d.dat", &af, err) != PS_OK)
        return PS_ERR;
    write_hist(af.fp, r, &lo, &hi);
    if (commit(&af, err) != PS_OK || open_data(dir, "deciles.dat", &af, err) != PS_OK)
        return PS_ERR;
    write_deciles(af.fp, r, pts, n_series);
    if (commit(&af, err) != PS_OK || open_data(dir, "plots.gp", &af, err) != PS_OK)
        return PS_ERR;
    write_script(af.fp, r, s, Ns, nN, lo, hi, n_series);
    return commit(&af, err);
}

int ps_plots_write(const char *dir, const ps_sweep_result *r, const ps_sweep_summary *s, const char *gnuplot,
                   ps_error *err)
{
    if (s->n_methods < 1 || !r->cohens_d)
        return ps_fail(err, "plots: the sweep has no PopSteer points");
    char *plots = ps_path_join(dir, "plots", err);
    int rc = plots ? ps_mkdir_p(plots, err) : PS_ERR;
    free(plots);
    if (rc == PS_OK)
        rc = write_data(dir, r, s, err);
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    if (rc == PS_OK)
        rc = run_gnuplot(gnuplot ? gnuplot : "gnuplot", dir, suffix, err);
    if (rc == PS_OK)
        return place_images(dir, suffix, err);
    for (int i = 0; i < N_IMAGES; i++) { /* leave no half-written image behind */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s/%s%s", dir, IMAGES[i], suffix);
        unlink(tmp);
    }
    return rc;
}
