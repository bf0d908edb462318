/* registry.h — versions of what `slimtune export` wrote, and which one is deployed.
 *
 * The registry is one JSON file (export.registry, default <out_dir>/../registry.json) beside a versions/
 * folder. Every export adds a version: its files are snapshotted into versions/<name>/ (hard links, or
 * copies across file systems) so that a later export cannot change them, and the entry records
 *   {"name": "<out_dir name>-vN", "created": ISO 8601 UTC, "out_dir", "config": the config file,
 *    "config_sha256": of <out_dir>/train/config.json (the resolved training config),
 *    "dataset_sha256": of <out_dir>/data/train.h5, "eval": <out_dir>/eval/report.json's accuracy,
 *    macro_f1 and passed (when there is one), "files": [{"name", "bytes", "sha256"}, ...]}.
 * `promote NAME` points the symbolic link <registry dir>/current at versions/NAME (replaced atomically) and
 * pushes NAME on "history"; `rollback` pops it and points current at the previous one. Deployment
 * scripts read current/merged-q4_k_m.gguf. Every change rewrites registry.json atomically under an
 * exclusive lock (flock on registry.json.lock). */
#ifndef SLIM_REGISTRY_H
#define SLIM_REGISTRY_H

#include "cli.h"
#include "config.h"

/* Registers the export in dir (its files: the names[0..n) inside dir, a name may be a directory of
 * files) for the run of cfg; prints the version's name. Returns 0 or -1 with an error. */
int registry_add(const slim_config *cfg, const char *dir, char *const *names, int n);

/* Options of `slimtune models list | show NAME | promote NAME | rollback (--config C | --registry R)`. */
typedef struct models_opts {
    const char *action; /* "list", "show", "promote", "rollback" */
    const char *name;   /* show, promote */
    const char *config, *registry;
} models_opts;

/* Parses argv (argv[0] = "models"): SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int models_parse_args(models_opts *o, int argc, char **argv);
/* Carries out the action. Returns SLIM_OK or -1 with an error (unknown name, nothing to roll back to). */
int models_run(const models_opts *o);
/* Entry point of `slimtune models`. Returns SLIM_OK or -1. */
int models_main(int argc, char **argv);

#endif
