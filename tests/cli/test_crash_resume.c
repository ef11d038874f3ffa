/* Crash safety of `popsteer train`: a run killed with SIGKILL in the middle of an epoch leaves a
 * training state that loads, `--resume` from it ends with a model byte-identical to an
 * uninterrupted run with the same seed, epochs and threads, and nothing half-written remains
 * (io.h: every file appears atomically; cmd_train.c removes temporaries of dead runs). */
#include "testutil.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "popsteer/safetensors.h"

#define EPOCHS "3"

/* The training command shared by every run: Adam batches of 512 targets (16 steps an epoch) and
 * the given layout (see test_sigkill_mid_epoch_then_resume for how it is chosen). */
static void train_args(const char *data, const char *out, const char *layout, int resume, int quiet,
                       const char **argv)
{
    const char *fixed[] = {POPSTEER_CLI, "train", "--threads", "2", "--epochs", EPOCHS, "--layout", layout,
                           "--batch", "512", "--data", data, "--out", out};
    int n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    if (resume)
        argv[n++] = "--resume";
    if (quiet)
        argv[n++] = "--quiet";
    argv[n] = NULL;
}

/* fork/exec without a shell, so that the pid is the trainer's own and SIGKILL reaches it. */
static pid_t spawn(const char **argv, const char *log)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Starts argv on a pseudo-terminal and sends SIGKILL as soon as its progress line reads
 * "epoch <epoch>/... batch b/n" with 1 <= b < n: some Adam steps of that epoch are done, others
 * not, and the training state on disk is still the previous epoch's. Returns the pid (not waited
 * for); fails if the program ends first. */
static pid_t kill_mid_epoch(const char **argv, int epoch)
{
    fflush(NULL);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    char want[32];
    snprintf(want, sizeof want, "epoch %d/", epoch);
    char buf[1 << 16];
    size_t used = 0;
    for (;;) {
        ssize_t got = read(master, buf + used, sizeof buf - 1 - used);
        if (got <= 0) /* EIO: the program closed the terminal, i.e. it ended */
            fail_msg("training ended before it was seen in the middle of epoch %d: %.*s", epoch, (int)used, buf);
        used += (size_t)got;
        buf[used] = '\0';
        /* the last complete "epoch E/M  batch b/n" in the buffer */
        for (char *p = strstr(buf, want); p; p = strstr(p + 1, want)) {
            long b, n;
            char *q = strstr(p, "batch ");
            if (q && sscanf(q, "batch %ld/%ld", &b, &n) == 2 && strstr(q, "loss") && b >= 1 && b < n) {
                assert_int_equal(kill(pid, SIGKILL), 0);
                printf("SIGKILL after batch %ld of %ld of epoch %d\n", b, n, epoch);
                close(master);
                return pid;
            }
        }
        if (used > sizeof buf / 2) { /* keep the tail: a line may be split between reads */
            memmove(buf, buf + used - 256, 256);
            used = 256;
        }
    }
}

static int wait_status(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

static int run(const char **argv, const char *log)
{
    int status = wait_status(spawn(argv, log));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void assert_same_bytes(const char *a, const char *b)
{
    if (!tu_same_file(a, b))
        fail_msg("%s and %s differ", a, b);
}

/* No "*.tmp.*" file (an atomic write's temporary) anywhere in dir. */
static void assert_no_temporaries(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp.*'", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    if (fgets(line, sizeof line, p))
        fail_msg("a temporary file remains: %s", line);
    pclose(p);
}

static long state_epochs(const char *state)
{
    ps_st_file f;
    ps_error err;
    if (ps_st_open(&f, state, &err) != PS_OK)
        fail_msg("the training state does not load: %s", err.msg);
    const char *v = ps_st_meta(&f, "epochs_done");
    assert_non_null(v);
    long epochs = strtol(v, NULL, 10);
    ps_st_close(&f);
    return epochs;
}

static void test_sigkill_mid_epoch_then_resume(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *data = tu_path(dir, "small.inter"), *log = tu_path(dir, "log.txt");
    char *ref = tu_path(dir, "ref.safetensors"), *model = tu_path(dir, "model.safetensors");
    char *model_state = tu_path(dir, "model.safetensors.state");
    char args[4096];
    snprintf(args, sizeof args, "data synth --quiet --users 300 --items 150 --interactions 9000 --out '%s'", data);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    const char *argv[32];

    /* The uninterrupted reference. The victim below must be seen in the middle of an epoch on its
     * progress line, which is redrawn at most every 0.2 s, so an epoch must last a second or more.
     * The window layout (~300 sequences an epoch here) does under the sanitizers; an optimised
     * build is ~10x faster and then gets RecBole's prefix layout (8,100 sequences an epoch). */
    const char *layout = "window";
    train_args(data, ref, layout, 0, 1, argv);
    double t0 = ps_now_seconds();
    assert_int_equal(run(argv, log), 0);
    if ((ps_now_seconds() - t0) / atoi(EPOCHS) < 1.0) {
        layout = "prefix";
        train_args(data, ref, layout, 0, 1, argv);
        assert_int_equal(run(argv, log), 0);
    }
    printf("layout %s\n", layout);

    /* the victim: on a terminal, so that it draws its batch progress; killed while that says it is
     * between two Adam steps of epoch 2 (its state on disk is then epoch 1's) */
    train_args(data, model, layout, 0, 0, argv); /* not --quiet: the progress line is the point */
    pid_t pid = kill_mid_epoch(argv, 2);
    int status = wait_status(pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) /* it must still have been training */
        fail_msg("the run was not killed mid-training: status 0x%x", status);
    assert_false(tu_exists(model)); /* the best model is written at the end only */
    long done = state_epochs(model_state);
    printf("the state on disk is after epoch %ld of " EPOCHS "\n", done);
    assert_int_equal(done, 1);

    /* a stale temporary, as if the kill had hit the state write, must not survive the resume */
    char *stale = tu_path(dir, "model.safetensors.state.tmp.2147483646.0");
    tu_write_str(stale, "half a file");

    train_args(data, model, layout, 1, 1, argv);
    assert_int_equal(run(argv, log), 0);
    assert_same_bytes(ref, model);
    assert_int_equal(state_epochs(model_state), atoi(EPOCHS));
    unlink(log);
    assert_no_temporaries(dir);

    tu_rmtree(dir);
    free(dir); free(data); free(log); free(ref); free(model); free(model_state); free(stale);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_epoch_then_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
