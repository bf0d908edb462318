/* test_fuzz_regress.c — replays every saved fuzzer input of tests/fuzz/regress/<target>/ through the
 * same entry code as the libFuzzer target (tests/fuzz/harness.h), each in its own child process, and
 * checks that it returns (an error is fine) without crashing, within FUZZ_REGRESS_TIMEOUT seconds and,
 * outside sanitizer builds, within FUZZ_REGRESS_AS_GB of address space (an allocation sized by a hostile
 * count fails the test instead of the machine). When <input>.err exists, the input must be rejected
 * with an error message containing that file's text (so that the error names the file and field).
 *
 *   test_fuzz_regress                    every regression input (make test)
 *   test_fuzz_regress TARGET FILE...     runs files through one target in this process and prints the
 *                                        result and error of each (for triage) */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "fuzz/harness.h"
#include "testutil.h"

#define FUZZ_REGRESS_TIMEOUT 60
#define FUZZ_REGRESS_AS_GB 6

static int read_all(const char *path, uint8_t **data, size_t *n) {
    char *d;
    if (slim_read_file(path, &d, n)) return -1;
    *data = (uint8_t *)d;
    return 0;
}

/* Child: runs one input; exit 0 = returned, 3 = the error message lacks the expected text. */
static void run_child(const fz_target *t, const char *path) {
    alarm(FUZZ_REGRESS_TIMEOUT);
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit rl = { (rlim_t)FUZZ_REGRESS_AS_GB << 30, (rlim_t)FUZZ_REGRESS_AS_GB << 30 };
    setrlimit(RLIMIT_AS, &rl);
#endif
    uint8_t *data;
    size_t n;
    if (read_all(path, &data, &n)) { fprintf(stderr, "%s\n", slim_last_error()); _exit(4); }
    int rc = t->run(data, n);
    free(data);
    char errp[4200];
    snprintf(errp, sizeof errp, "%s.err", path);
    char *want;
    size_t wn;
    if (access(errp, F_OK) == 0 && slim_read_file(errp, &want, &wn) == 0) {
        while (wn && (want[wn - 1] == '\n' || want[wn - 1] == '\r')) want[--wn] = 0;
        int ok = rc != 0 && strstr(slim_last_error(), want) != NULL;
        if (!ok) fprintf(stderr, "rc %d, error \"%s\", expected an error containing \"%s\"\n", rc, slim_last_error(), want);
        free(want);
        exit(ok ? 0 : 3);
    }
    exit(0);
}

/* Replays every input file of dir through t; returns how many. */
static int replay_dir(const fz_target *t, const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return 0;
    struct dirent **list;
    closedir(d);
    int n = scandir(dir, &list, NULL, alphasort), files = 0;
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' || (len > 4 && !strcmp(name + len - 4, ".err")) ||
            (len > 3 && !strcmp(name + len - 3, ".md"))) { free(list[i]); continue; }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        double t0 = slim_time_sec();
        fflush(NULL);
        files++;
        pid_t pid = fork();
        if (pid == 0) run_child(t, path);
        int st = 0;
        waitpid(pid, &st, 0);
        double dt = slim_time_sec() - t0;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s (%.1f s)", path,
              WIFSIGNALED(st) ? (WTERMSIG(st) == SIGALRM ? "timed out" : strsignal(WTERMSIG(st)))
              : WEXITSTATUS(st) == 3 ? "wrong error message" : "exited non-zero (crash, sanitizer report or failed allocation)",
              dt);
        free(list[i]);
    }
    free(list);
    return files;
}

int main(int argc, char **argv) {
    if (argc >= 3) {
        const fz_target *t = fz_find_target(argv[1]);
        if (!t) { fprintf(stderr, "unknown target %s\n", argv[1]); return 2; }
        for (int i = 2; i < argc; i++) {
            uint8_t *data;
            size_t n;
            if (read_all(argv[i], &data, &n)) { fprintf(stderr, "%s\n", slim_last_error()); return 2; }
            double t0 = slim_time_sec();
            int rc = t->run(data, n);
            printf("%s: rc %d (%.2f s) %s\n", argv[i], rc, slim_time_sec() - t0, rc ? slim_last_error() : "");
            free(data);
        }
        return 0;
    }
    int files = 0;
    for (size_t i = 0; i < FZ_N_TARGETS; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", fz_targets[i].name);
        if (access(dir, F_OK) != 0) continue;
        files += replay_dir(&fz_targets[i], dir);
    }
    /* the regression set is not empty: an empty run would pass without testing anything */
    CHECK(files > 0, "no regression inputs found under tests/fuzz/regress (run from the repository root)");
    return tu_finish("test_fuzz_regress");
}
