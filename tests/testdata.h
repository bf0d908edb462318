/* testdata.h — helpers shared by the data-stage tests (tests/data): files under a per-test temporary
 * directory, config files, and running a stage's main() with stdout and stderr captured.
 * The including test owns tmpdir (made with mkdtemp) and model_path (the GGUF model configs name). */
#ifndef SLIM_TESTDATA_H
#define SLIM_TESTDATA_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static char tmpdir[256];
static char model_path[1024];

/* tmpdir/name in one of 8 rotating static buffers. */
static inline const char *tmp_path(const char *name) {
    static char bufs[8][600];
    static int k;
    char *p = bufs[k++ % 8];
    snprintf(p, 600, "%s/%s", tmpdir, name);
    return p;
}

/* Writes n bytes to path; exits the test on failure. */
static inline void write_bytes(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fclose(f);
}

/* Writes tmpdir/name: a config with model_path, out_dir tmpdir/out-<name> and a "data" object whose
 * body is data_json (a JSON object body without braces). Returns its path. */
static inline const char *write_data_config(const char *name, const char *data_json) {
    char text[4096];
    snprintf(text, sizeof text, "{\"model\": \"%s\", \"out_dir\": \"%s/out-%s\", \"data\": {%s}}\n", model_path,
             tmpdir, name, data_json);
    const char *p = tmp_path(name);
    write_bytes(p, text, strlen(text));
    return p;
}

/* Runs fn(argc, argv) with argv = cmd, args... (NULL-terminated, at most 22 used), stdout and stderr
 * captured through tmpdir/<cap_name> into a fresh string *out. Returns fn's result. */
static inline int run_capture(int (*fn)(int, char **), const char *cmd, const char *cap_name, char **out,
                              char **args) {
    char *argv[24];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    for (int i = 0; args[i] && argc < 23; i++) argv[argc++] = args[i];
    argv[argc] = NULL;
    const char *cap = tmp_path(cap_name);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    size_t n;
    if (slim_read_file(cap, out, &n)) *out = slim_strdup("");
    return rc;
}

#endif
