/* cli.c — exit statuses and option values of every subcommand; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "config.h"
#include "dist.h"

int slim_exit_status(const char *cmd, int r) {
    if (r == SLIM_OK || r == SLIM_HELP) return SLIM_EXIT_OK;
    if (r == SLIM_GATE_FAILED) return SLIM_EXIT_GATE;
    if (r > SLIM_STOPPED && r < SLIM_STOPPED + 64) return 128 + (r - SLIM_STOPPED);
    if (r >= 0) slim_set_error("internal error: result %d is not in lib/cli.h's table", r);
    if (dist_size() > 1) fprintf(stderr, "slimtune %s (rank %d of %d): %s\n", cmd, dist_rank(), dist_size(), slim_last_error());
    else fprintf(stderr, "slimtune %s: %s\n", cmd, slim_last_error());
    return SLIM_EXIT_ERROR;
}

int slim_parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return slim_set_error("%s '%s': expected an integer in [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return 0;
}

int slim_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return slim_set_error("%s '%s': expected a number in [%g, %g]", opt, s, lo, hi);
    *out = v;
    return 0;
}

int slim_bad_option(const char *cmd, const char *arg) {
    return slim_set_error("unknown option or missing value: '%s' (see slimtune %s --help)", arg, cmd);
}

int slim_config_main(int r, void (*usage)(FILE *), const char *config_path,
                     int (*run)(const struct slim_config *cfg, const void *opts), const void *opts) {
    if (r != SLIM_OK) {
        if (r < 0 && usage) usage(stderr);
        return r == SLIM_HELP ? SLIM_OK : -1;
    }
    slim_config cfg;
    r = config_load(&cfg, config_path) == 0 ? run(&cfg, opts) : -1;
    config_free(&cfg); /* safe after a failed config_load too */
    return r;
}
