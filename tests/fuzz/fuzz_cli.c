/* Fuzz target: the command line. The input is split into argument words (at newlines and NUL
 * bytes) and given to the CLI's main, compiled into this binary as popsteer_main
 * (tests/fuzz/cli_main.c), so every command's option parsing, checked number parsing, required
 * options, file-name handling and error paths run as `popsteer WORD WORD ...` would.
 *
 * Keeping it fast and contained:
 *  - commands run inside a private scratch directory that holds a tiny dataset (d.inter), a tiny
 *    SASRec model (m.st, hidden size 8), an SAE (s.st, 16 latents), its probe table (l.csv) and
 *    an item-title file (i.csv); words containing '/' or ".." are refused, so every path the
 *    CLI touches is inside that directory. After each run, files the command created are
 *    removed and seed files it overwrote are restored, so runs do not influence each other;
 *  - inputs with a number from 17 to 2^31 - 1 anywhere are skipped: they are the in-range sizes
 *    (users, epochs, hidden size, micro-batch, ...) that only make a run slow. Larger numbers
 *    still run, so the range checks are fuzzed;
 *  - `sweep` and `run` are skipped: they chain the stages fuzzed here, make directories and
 *    start gnuplot, which --gnuplot lets the input choose;
 *  - light defaults are inserted right after the commands that train or generate (`train
 *    --epochs 1 --hidden 8 ...`, `sae train --scale 2 ...`, `probe --cap 8`, `data synth
 *    --users 12 ...`); words from the input come after them and override them.
 * Exit statuses must be 0, 1 (error) or 2 (usage), and no temporary file of an atomic write
 * may survive a run. Run the fuzzer with -close_fd_mask=3 (the Makefile does): the CLI prints. */
#define FUZZ_TARGET cli
#include "fuzz_common.h"

#include <dirent.h>
#include <getopt.h>
#include <omp.h>

#include "popsteer/checkpoint.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/synth.h"

int popsteer_main(int argc, char **argv);

#define MAX_WORDS 48
#define MAX_SEEDS 8

typedef struct seed_file {
    const char *name;
    char *bytes;
    size_t len;
    struct stat st;
} seed_file;

static char g_dir[512];
static seed_file g_seeds[MAX_SEEDS];
static int g_n_seeds;

static void remember(const char *name)
{
    FUZZ_CHECK(g_n_seeds < MAX_SEEDS);
    seed_file *s = &g_seeds[g_n_seeds++];
    s->name = name;
    s->bytes = fuzz_slurp(name, &s->len);
    FUZZ_CHECK(s->bytes != NULL && stat(name, &s->st) == 0);
}

static void write_text(const char *name, const char *text)
{
    FILE *fp = fopen(name, "wb");
    FUZZ_CHECK(fp && fputs(text, fp) >= 0 && fclose(fp) == 0);
}

/* The seed files, made with the library itself (run in the scratch directory). */
static void make_seeds(void)
{
    ps_error err;
    ps_synth_options so;
    ps_synth_options_init(&so);
    so.n_users = 30;
    so.n_items = 20;
    so.n_interactions = 300;
    so.n_topics = 3;
    FUZZ_CHECK(ps_synth_write(&so, "d.inter", &err) == PS_OK);
    ps_dataset ds;
    ps_load_options lo;
    ps_load_options_init(&lo);
    FUZZ_CHECK(ps_dataset_load(&ds, "d.inter", &lo, &err) == PS_OK);
    ps_sasrec_config mc;
    ps_sasrec_config_default(&mc, ds.n_items);
    mc.d = 8;
    mc.n_layers = 1;
    mc.n_heads = 1;
    mc.d_ff = 8;
    ps_sasrec *m = NULL;
    FUZZ_CHECK(ps_sasrec_create(&m, &mc, &err) == PS_OK);
    ps_sasrec_init_weights(m, 1);
    ps_model_info info = {1, 0.5, "d.inter"};
    FUZZ_CHECK(ps_sasrec_save(m, &info, "m.st", &err) == PS_OK);
    ps_sasrec_free(m);
    ps_sae_config sc;
    ps_sae_config_init(&sc, 8, 2);
    sc.k = 2;
    sc.k_aux = 4;
    ps_sae *sae = ps_sae_create(&sc, &err);
    FUZZ_CHECK(sae != NULL);
    ps_sae_init(sae, 1);
    FUZZ_CHECK(ps_sae_save(sae, "s.st", &err) == PS_OK);
    ps_latent_table t;
    FUZZ_CHECK(ps_latent_table_alloc(&t, sc.n_latents, &err) == PS_OK);
    for (int j = 0; j < t.m; j++) {
        t.d[j] = (j % 5 - 2) * 0.4;
        t.mean_pop[j] = 0.1 * j;
        t.mean_unpop[j] = 0.05 * j;
        t.std_pop[j] = 1 + 0.01 * j;
        t.std_unpop[j] = 0.5;
        t.fire_rate[j] = j / (double)t.m;
    }
    FUZZ_CHECK(ps_latents_csv_write("l.csv", &t, NULL, &err) == PS_OK);
    ps_latent_table_free(&t);
    ps_sae_free(sae);
    write_text("i.csv", "item_id,title\n1,One\n2,\"Two, too\"\n3,Three\n10,Ten\n");
    ps_dataset_free(&ds);
    remember("d.inter");
    remember("m.st");
    remember("s.st");
    remember("l.csv");
    remember("i.csv");
}

static int g_stderr = -1; /* the real stderr while the CLI's output goes to /dev/null (replay) */

#ifdef FUZZ_REPLAY
/* Defined by the sanitizer runtimes when there is one: reports then still reach the real stderr
 * while the CLI's own output is discarded. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));
#endif

/* At exit: the seed files and their directory, so that fuzz_common.h can remove the (then
 * empty) scratch directory. Registered after it, so it runs first. */
static void remove_seeds(void)
{
    char path[1024];
    for (int i = 0; i < g_n_seeds; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, g_seeds[i].name);
        unlink(path);
        free(g_seeds[i].bytes);
    }
    rmdir(g_dir);
}

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/cli", fuzz_scratch_dir());
    FUZZ_CHECK(mkdir(g_dir, 0700) == 0);
    atexit(remove_seeds);
    char here[4096];
    FUZZ_CHECK(getcwd(here, sizeof here) != NULL);
    FUZZ_CHECK(chdir(g_dir) == 0);
    make_seeds();
    FUZZ_CHECK(chdir(here) == 0);
#ifdef FUZZ_REPLAY
    g_stderr = dup(2);
    FUZZ_CHECK(g_stderr >= 0);
    if (__sanitizer_set_report_fd)
        __sanitizer_set_report_fd((void *)(intptr_t)g_stderr);
#endif
}

/* Skip inputs that could only be slow or escape the scratch directory (see the top comment). */
static int acceptable(char **words, int n)
{
    /* `sweep` and `run` orchestrate the stages fuzzed here, create directories and start gnuplot
     * (a program the input could name with --gnuplot): not run from this target. */
    if (n >= 1 && (!strcmp(words[0], "sweep") || !strcmp(words[0], "run")))
        return 0;
    for (int i = 0; i < n; i++) {
        const char *w = words[i];
        if (strchr(w, '/') || strstr(w, ".."))
            return 0;
        for (const char *p = w; *p;) {
            if (*p < '0' || *p > '9') {
                p++;
                continue;
            }
            unsigned long long v = 0;
            while (*p >= '0' && *p <= '9') {
                if (v < (1ull << 40))
                    v = v * 10 + (unsigned)(*p - '0');
                p++;
            }
            if (v >= 17 && v < (1ull << 31))
                return 0;
        }
    }
    return 1;
}

/* Light defaults right after a heavy command (the input's own words come later and win). */
static int defaults_for(char **words, int n, const char *const **extra, int *at)
{
    static const char *const TRAIN[] = {"--epochs", "1", "--hidden", "8", "--inner", "8", "--layers", "1",
                                        "--heads", "1", "--micro-batch", "4", "--batch", "64", NULL};
    static const char *const SAE[] = {"--epochs", "1", "--scale", "2", "--k", "2", "--k-aux", "4", "--batch",
                                      "16", NULL};
    static const char *const PROBE[] = {"--cap", "8", NULL};
    static const char *const SYNTH[] = {"--users", "12", "--items", "10", "--interactions", "80", "--topics",
                                        "2", NULL};
    *extra = NULL;
    if (n >= 1 && !strcmp(words[0], "train"))
        *extra = TRAIN, *at = 1;
    else if (n >= 1 && !strcmp(words[0], "probe"))
        *extra = PROBE, *at = 1;
    else if (n >= 2 && !strcmp(words[0], "sae") && !strcmp(words[1], "train"))
        *extra = SAE, *at = 2;
    else if (n >= 2 && !strcmp(words[0], "data") && !strcmp(words[1], "synth"))
        *extra = SYNTH, *at = 2;
    int k = 0;
    while (*extra && (*extra)[k])
        k++;
    return k;
}

/* Removes what the command created and restores seed files it replaced; a leftover temporary
 * file of an atomic write is a finding. */
static void clean_up(void)
{
    char tmp_mark[64];
    snprintf(tmp_mark, sizeof tmp_mark, ".tmp.%ld.", (long)getpid());
    DIR *d = opendir(".");
    FUZZ_CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        FUZZ_CHECK(strstr(e->d_name, tmp_mark) == NULL);
        int is_seed = 0;
        for (int i = 0; i < g_n_seeds; i++)
            is_seed |= !strcmp(e->d_name, g_seeds[i].name);
        if (!is_seed)
            FUZZ_CHECK(unlink(e->d_name) == 0);
    }
    closedir(d);
    for (int i = 0; i < g_n_seeds; i++) {
        seed_file *s = &g_seeds[i];
        struct stat st;
        if (stat(s->name, &st) == 0 && st.st_size == s->st.st_size && st.st_ino == s->st.st_ino &&
            st.st_mtim.tv_sec == s->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec)
            continue;
        FILE *fp = fopen(s->name, "wb");
        FUZZ_CHECK(fp && fwrite(s->bytes, 1, s->len, fp) == s->len && fclose(fp) == 0);
        FUZZ_CHECK(stat(s->name, &s->st) == 0);
    }
}

static int run_cli(int argc, char **argv)
{
    char here[4096];
    FUZZ_CHECK(getcwd(here, sizeof here) != NULL);
    FUZZ_CHECK(chdir(g_dir) == 0);
    int saved_out = -1, saved_err = -1;
    int discard = g_stderr >= 0 && !getenv("FUZZ_VERBOSE");
    if (discard) {
        fflush(NULL);
        saved_out = dup(1);
        saved_err = dup(2);
        int null = open("/dev/null", O_WRONLY);
        FUZZ_CHECK(null >= 0 && saved_out >= 0 && saved_err >= 0);
        dup2(null, 1);
        dup2(null, 2);
        close(null);
    }
    optind = 0; /* glibc: a full re-initialisation of getopt for this new argument vector */
    omp_set_num_threads(1);
    int rc = popsteer_main(argc, argv);
    if (discard) {
        fflush(NULL);
        dup2(saved_out, 1);
        dup2(saved_err, 2);
        close(saved_out);
        close(saved_err);
    }
    clean_up();
    FUZZ_CHECK(chdir(here) == 0);
    return rc;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (!g_dir[0])
        setup();
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    char *words[MAX_WORDS];
    int n = 0;
    for (size_t start = 0, i = 0; i <= size && n < MAX_WORDS; i++)
        if (i == size || text[i] == '\n' || text[i] == '\0') {
            if (i == size && start == size && n > 0)
                break; /* a final newline does not add an empty word */
            text[i] = '\0';
            words[n++] = text + start;
            start = i + 1;
        }
    if (!acceptable(words, n)) {
        free(text);
        return 0;
    }
    const char *const *extra;
    int at = 0;
    int n_extra = defaults_for(words, n, &extra, &at);
    char *argv[1 + MAX_WORDS + 16 + 1];
    int argc = 0;
    argv[argc++] = "popsteer";
    for (int i = 0; i < n; i++) {
        if (i == at)
            for (int k = 0; k < n_extra; k++)
                argv[argc++] = (char *)extra[k]; /* getopt permutes argv, never the strings */
        argv[argc++] = words[i];
    }
    if (n_extra && at == n)
        for (int k = 0; k < n_extra; k++)
            argv[argc++] = (char *)extra[k];
    argv[argc] = NULL;
    int rc = run_cli(argc, argv);
#ifdef FUZZ_REPLAY
    if (getenv("FUZZ_VERBOSE")) { /* to see what the corpus exercises: FUZZ_VERBOSE=1 fuzz_replay ... */
        dprintf(g_stderr, "    exit %d:", rc);
        for (int i = 1; i < argc; i++)
            dprintf(g_stderr, " %s", argv[i]);
        dprintf(g_stderr, "\n");
    }
#endif
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    free(text);
    return 0;
}
