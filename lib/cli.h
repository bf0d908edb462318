/* cli.h — the contract between slimtune's subcommands and the dispatcher (slimtune.c).
 *
 * Every subcommand is three functions in its stage:
 *   int X_parse_args(X_opts *o, int argc, char **argv);       argv -> options: SLIM_OK, SLIM_HELP or -1
 *   int X_run(const slim_config *cfg, const X_opts *o);       the work: SLIM_OK, SLIM_GATE_FAILED or -1
 *                                                             (commands without --config: X_run(const X_opts *))
 *   int X_main(int argc, char **argv);                        parse, load the config, run; same results
 * A failure anywhere below sets slim_set_error() (common.h) and returns -1 up to X_main; nothing below
 * the dispatcher prints an error. slimtune.c turns the result into the exit status with
 * slim_exit_status(), which prints the error once. Progress and reports still go to stderr/stdout. */
#ifndef SLIM_CLI_H
#define SLIM_CLI_H

#include <stdio.h>

/* The exit-code table of every subcommand. */
enum slim_exit_code {
    SLIM_EXIT_OK = 0,    /* done (and every gate passed) */
    SLIM_EXIT_GATE = 1,  /* a quality gate failed: data validate, eval */
    SLIM_EXIT_ERROR = 2, /* an error: bad usage, bad config, unreadable or invalid input, failed write */
};

/* Results of X_parse_args / X_run / X_main (besides -1, an error). */
#define SLIM_OK 0
#define SLIM_GATE_FAILED 1 /* X_run: the work is done and written, but a gate failed */
#define SLIM_HELP 3        /* X_parse_args: --help was printed, nothing to run */
#define SLIM_STOPPED 0x100 /* X_run: stopped by signal (result - SLIM_STOPPED) after saving its state:
                              exit status 128 + signal (130 SIGINT, 143 SIGTERM) */

/* The exit status of subcommand `cmd` ("train", "data prepare", ...) for result r of its X_main:
 * -1 prints "slimtune <cmd>: <slim_last_error()>" to stderr and gives SLIM_EXIT_ERROR; SLIM_GATE_FAILED
 * gives SLIM_EXIT_GATE; SLIM_OK and SLIM_HELP give SLIM_EXIT_OK; SLIM_STOPPED + signal gives 128 + signal
 * (the shell's status for a signal); any other value is a bug, reported as an error. */
int slim_exit_status(const char *cmd, int r);

/* Option values: parse s as a decimal integer in [lo, hi] (or a number in [lo, hi]) into *out. Returns 0,
 * or -1 with an error naming the option ("--max-steps 'x': expected an integer in [0, 1000000]"). */
int slim_parse_long(const char *opt, const char *s, long lo, long hi, long *out);
int slim_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/* An option that is not known, or is missing its value: -1 with "unknown option or missing value: '<arg>'
 * (see slimtune <cmd> --help)". */
int slim_bad_option(const char *cmd, const char *arg);

/* The rest of X_main for a subcommand that takes --config, after X_parse_args gave r: SLIM_HELP gives
 * SLIM_OK; -1 prints usage(stderr) and gives -1; SLIM_OK loads config_path and gives run(cfg, opts)
 * (or -1 when the config does not load), the config freed after. */
struct slim_config;
int slim_config_main(int r, void (*usage)(FILE *), const char *config_path,
                     int (*run)(const struct slim_config *cfg, const void *opts), const void *opts);

#endif
