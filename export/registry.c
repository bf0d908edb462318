/* registry.c — export versions, promotion and rollback; see registry.h. */
#include "registry.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* The open registry: its path, folder, lock and document. */
typedef struct registry {
    char path[4096], dir[4096];
    int lock_fd;
    cJSON *doc; /* {"versions": [...], "history": [...], "current": name | null} */
} registry;

/* The registry file of cfg: export.registry, else <out_dir>/../registry.json. */
static int registry_path_of(const slim_config *cfg, char *buf, size_t cap) {
    if (cfg->registry) return slim_format_path(buf, cap, "%s", cfg->registry);
    const char *slash = strrchr(cfg->out_dir, '/');
    if (!slash) return slim_format_path(buf, cap, "registry.json");
    return slim_format_path(buf, cap, "%.*s/registry.json", (int)(slash - cfg->out_dir), cfg->out_dir);
}

/* Opens (creating when absent) and locks the registry at path. Returns 0 or -1. */
static int registry_open(registry *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
    if (slim_format_path(r->path, sizeof r->path, "%s", path) != 0) return -1;
    const char *slash = strrchr(path, '/');
    if (slim_format_path(r->dir, sizeof r->dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".") != 0 ||
        slim_mkdir_p(r->dir) != 0)
        return -1;
    char lock[4200];
    if (slim_format_path(lock, sizeof lock, "%s.lock", path) != 0) return -1;
    r->lock_fd = open(lock, O_CREAT | O_RDWR, 0644);
    if (r->lock_fd < 0 || flock(r->lock_fd, LOCK_EX) != 0)
        return slim_set_error("%s: cannot lock: %s", lock, strerror(errno));
    if (access(path, F_OK) != 0) {
        r->doc = cJSON_CreateObject();
        cJSON_AddArrayToObject(r->doc, "versions");
        cJSON_AddArrayToObject(r->doc, "history");
        cJSON_AddNullToObject(r->doc, "current");
        return 0;
    }
    if (!(r->doc = slim_read_json(path))) return -1;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r->doc, "versions")) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r->doc, "history")))
        return slim_set_error("%s: not a slimtune registry (no \"versions\" and \"history\" arrays)", path);
    return 0;
}

static int registry_save(const registry *r) {
    char *text = cJSON_Print(r->doc);
    int rc = slim_write_text_line(r->path, text);
    free(text);
    return rc;
}

static void registry_close(registry *r) {
    cJSON_Delete(r->doc);
    if (r->lock_fd >= 0) close(r->lock_fd); /* releases the lock */
    r->doc = NULL;
    r->lock_fd = -1;
}

/* The version called name, or NULL. */
static cJSON *registry_find(const registry *r, const char *name) {
    cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r->doc, "versions")) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return v;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* files */

/* Hex SHA-256 of the file at path, read in 1 MiB pieces. Returns 0 or -1. */
static int registry_sha256(const char *path, char hex[65], uint64_t *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return slim_set_error("%s: cannot open: %s", path, strerror(errno));
    struct sha256_ctx h;
    sha256_init(&h);
    uint8_t *buf = slim_malloc(1 << 20), digest[32];
    size_t k;
    *bytes = 0;
    while ((k = fread(buf, 1, 1 << 20, f)) > 0) { sha256_update(&h, k, buf); *bytes += k; }
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return slim_set_error("%s: read failed", path);
    sha256_digest(&h, 32, digest);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

/* Hard-links src to dst, or copies it when they are on different file systems. Returns 0 or -1. */
static int registry_link(const char *src, const char *dst) {
    if (link(src, dst) == 0) return 0;
    if (errno != EXDEV && errno != EPERM) return slim_set_error("%s: cannot link from %s: %s", dst, src, strerror(errno));
    return slim_copy_file(src, dst);
}

/* Snapshots file or flat directory `name` of src_dir into snap (which exists) and adds {"name", "bytes",
 * "sha256"} for each file to list. Returns 0 or -1. */
static int registry_snapshot(const char *src_dir, const char *name, const char *snap, cJSON *list) {
    char src[4400], dst[4400], hex[65];
    struct stat st;
    if (slim_format_path(src, sizeof src, "%s/%s", src_dir, name) || slim_format_path(dst, sizeof dst, "%s/%s", snap, name))
        return -1;
    if (stat(src, &st) != 0) return slim_set_error("%s: cannot stat: %s", src, strerror(errno));
    if (S_ISDIR(st.st_mode)) { /* a PEFT or Hugging Face directory: its files */
        if (mkdir(dst, 0755) != 0) return slim_set_error("%s: cannot create: %s", dst, strerror(errno));
        DIR *d = opendir(src);
        struct dirent *e;
        int rc = d ? 0 : slim_set_error("%s: cannot open: %s", src, strerror(errno));
        char sub[4500];
        while (rc == 0 && (e = readdir(d)))
            if (e->d_name[0] != '.')
                rc = slim_format_path(sub, sizeof sub, "%s/%s", name, e->d_name) ? -1
                                                                                  : registry_snapshot(src_dir, sub, snap, list);
        if (d) closedir(d);
        return rc;
    }
    uint64_t bytes;
    if (registry_link(src, dst) != 0 || registry_sha256(dst, hex, &bytes) != 0) return -1;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddNumberToObject(f, "bytes", (double)bytes);
    cJSON_AddStringToObject(f, "sha256", hex);
    cJSON_AddItemToArray(list, f);
    return 0;
}

/* Removes path and, one level down, the files of its sub-directories. */
static void registry_remove_tree(const char *path) {
    DIR *d = opendir(path);
    struct dirent *e;
    char p[4500];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p)
            if (unlink(p) != 0) (void)slim_remove_dir(p);
    if (d) closedir(d);
    rmdir(path);
}

/* ---------------------------------------------------------------------------------------------- */
/* adding a version */

/* "<out_dir name>-vN" with N one more than the versions of that run so far. */
static void registry_new_name(const registry *r, const char *out_dir, char *buf, size_t cap) {
    const char *base = strrchr(out_dir, '/') ? strrchr(out_dir, '/') + 1 : out_dir;
    int n = 1;
    char want[512];
    do snprintf(want, sizeof want, "%s-v%d", base, n++);
    while (registry_find(r, want));
    snprintf(buf, cap, "%s", want);
}

/* Adds key: the hex SHA-256 of path to o, or null when path does not exist. Returns 0 or -1. */
static int registry_add_hash(cJSON *o, const char *key, const char *path) {
    char hex[65];
    uint64_t bytes;
    if (access(path, R_OK) != 0) { cJSON_AddNullToObject(o, key); return 0; }
    if (registry_sha256(path, hex, &bytes) != 0) return -1;
    cJSON_AddStringToObject(o, key, hex);
    return 0;
}

/* The entry's provenance: when, which run and config, hashes of the training config and data, eval. */
static int registry_describe(cJSON *v, const slim_config *cfg) {
    char path[4400], when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(v, "created", when);
    cJSON_AddStringToObject(v, "out_dir", cfg->out_dir);
    cJSON_AddStringToObject(v, "config", cfg->path ? cfg->path : "");
    if (slim_format_path(path, sizeof path, "%s/train/config.json", cfg->out_dir) ||
        registry_add_hash(v, "config_sha256", path) || slim_format_path(path, sizeof path, "%s/data/train.h5", cfg->out_dir) ||
        registry_add_hash(v, "dataset_sha256", path) || slim_format_path(path, sizeof path, "%s/eval/report.json", cfg->out_dir))
        return -1;
    cJSON *report = access(path, R_OK) == 0 ? slim_read_json(path) : NULL, *ev = cJSON_AddObjectToObject(v, "eval");
    const cJSON *ft = report ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "systems"),
                                                                "fine-tuned") : NULL;
    static const char *const keys[] = {"accuracy", "macro_f1"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = ft ? cJSON_GetObjectItemCaseSensitive(ft, keys[i]) : NULL;
        if (cJSON_IsNumber(x)) cJSON_AddNumberToObject(ev, keys[i], x->valuedouble);
    }
    const cJSON *passed = report ? cJSON_GetObjectItemCaseSensitive(report, "passed") : NULL;
    if (cJSON_IsBool(passed)) cJSON_AddBoolToObject(ev, "passed", cJSON_IsTrue(passed));
    cJSON_Delete(report);
    return 0;
}

int registry_add(const slim_config *cfg, const char *dir, char *const *names, int n) {
    char path[4096], name[512] = "", snap[4600], tmp[4700] = "";
    registry r;
    if (registry_path_of(cfg, path, sizeof path) != 0) return -1;
    int rc = registry_open(&r, path);
    if (rc == 0) {
        registry_new_name(&r, cfg->out_dir, name, sizeof name);
        rc = slim_format_path(snap, sizeof snap, "%s/versions/%s", r.dir, name);
    }
    if (rc == 0) rc = slim_dir_begin(snap, tmp, sizeof tmp);
    cJSON *v = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddStringToObject(v, "name", name);
    for (int i = 0; i < n && rc == 0; i++) rc = registry_snapshot(dir, names[i], tmp, files);
    cJSON_AddItemToObject(v, "files", files);
    if (rc == 0) rc = registry_describe(v, cfg);
    if (rc != 0 && tmp[0]) registry_remove_tree(tmp);
    if (rc == 0) rc = slim_dir_commit(tmp, snap); /* the snapshot, whole, before the registry names it */
    if (rc == 0) {
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r.doc, "versions"), v);
        v = NULL;
        rc = registry_save(&r);
        if (rc == 0) printf("registered %s in %s (versions/%s)\n", name, r.path, name);
    }
    cJSON_Delete(v);
    registry_close(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* slimtune models */

static void models_usage(FILE *f) {
    fprintf(f, "usage: slimtune models list | show NAME | promote NAME | rollback  (--config C | --registry R)\n"
               "  The versions `slimtune export` registered (export.registry, default <out_dir>/../registry.json):\n"
               "  list them, show one (JSON), point <registry dir>/current at one (promote), or back at the one\n"
               "  promoted before (rollback).\n");
}

int models_parse_args(models_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { models_usage(stdout); return SLIM_HELP; }
        if ((!strcmp(a, "--config") || !strcmp(a, "--registry")) && i + 1 < argc) {
            *(!strcmp(a, "--config") ? &o->config : &o->registry) = argv[++i];
        } else if (!o->action && (!strcmp(a, "list") || !strcmp(a, "show") || !strcmp(a, "promote") ||
                                  !strcmp(a, "rollback"))) {
            o->action = a;
        } else if (o->action && !o->name && a[0] != '-') {
            o->name = a;
        } else {
            return slim_bad_option("models", a);
        }
    }
    if (!o->action) return slim_set_error("an action is required: list, show NAME, promote NAME or rollback");
    if ((!strcmp(o->action, "show") || !strcmp(o->action, "promote")) != (o->name != NULL))
        return slim_set_error("models %s: %s", o->action, o->name ? "takes no NAME" : "NAME is required");
    if (!o->config == !o->registry) return slim_set_error("give one of --config C and --registry R");
    return SLIM_OK;
}

/* Points <registry dir>/current at versions/name (a relative link, replaced atomically). */
static int models_point(const registry *r, const char *name) {
    char link_path[4200], tmp[4300], target[600];
    if (slim_format_path(link_path, sizeof link_path, "%s/current", r->dir) ||
        slim_format_path(tmp, sizeof tmp, "%s/.current.tmp.%d", r->dir, (int)getpid()) ||
        slim_format_path(target, sizeof target, "versions/%s", name))
        return -1;
    unlink(tmp);
    if (symlink(target, tmp) != 0) return slim_set_error("%s: cannot create the link: %s", tmp, strerror(errno));
    if (rename(tmp, link_path) != 0) {
        unlink(tmp);
        return slim_set_error("%s: cannot replace: %s", link_path, strerror(errno));
    }
    return slim_fsync_path(r->dir, 1);
}

/* Prints the versions, the current one marked. */
static void models_list(const registry *r) {
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(r->doc, "current"), *v;
    printf("%-32s %-21s %9s %6s\n", "name", "created", "accuracy", "files");
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r->doc, "versions")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring;
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(v, "created"),
                    *acc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "eval"), "accuracy");
        char a[16] = "-";
        if (cJSON_IsNumber(acc)) snprintf(a, sizeof a, "%.4f", acc->valuedouble);
        printf("%-32s %-21s %9s %6d%s\n", name, cJSON_IsString(created) ? created->valuestring : "?", a,
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "files")),
               cJSON_IsString(cur) && !strcmp(cur->valuestring, name) ? "   <- current" : "");
    }
}

/* promote NAME (push on history) or rollback (pop: the one before). */
static int models_move(registry *r, const char *name) {
    cJSON *hist = cJSON_GetObjectItemCaseSensitive(r->doc, "history");
    if (!name) {
        int n = cJSON_GetArraySize(hist);
        if (n < 2) return slim_set_error("%s: nothing to roll back to (%d promotion%s)", r->path, n, n == 1 ? "" : "s");
        cJSON_DeleteItemFromArray(hist, n - 1);
        name = cJSON_GetArrayItem(hist, n - 2)->valuestring;
    } else {
        if (!registry_find(r, name)) return slim_set_error("%s: no version called %s (slimtune models list)", r->path, name);
        cJSON_AddItemToArray(hist, cJSON_CreateString(name));
    }
    char target[4700];
    struct stat st;
    if (slim_format_path(target, sizeof target, "%s/versions/%s", r->dir, name) || stat(target, &st) != 0)
        return slim_set_error("%s: the snapshot of %s is missing", target, name);
    cJSON_ReplaceItemInObjectCaseSensitive(r->doc, "current", cJSON_CreateString(name));
    if (models_point(r, name) != 0 || registry_save(r) != 0) return -1;
    printf("current -> versions/%s\n", name);
    return 0;
}

int models_run(const models_opts *o) {
    char path[4096];
    slim_config cfg;
    int rc = 0;
    if (o->config) {
        if (config_load(&cfg, o->config) != 0) { config_free(&cfg); return -1; }
        rc = registry_path_of(&cfg, path, sizeof path);
        config_free(&cfg);
    } else {
        rc = slim_format_path(path, sizeof path, "%s", o->registry);
    }
    if (rc != 0) return -1;
    if (strcmp(o->action, "list") && access(path, F_OK) != 0)
        return slim_set_error("%s: no registry (run slimtune export first)", path);
    registry r;
    rc = registry_open(&r, path);
    if (rc == 0 && !strcmp(o->action, "list")) models_list(&r);
    else if (rc == 0 && !strcmp(o->action, "show")) {
        const cJSON *v = registry_find(&r, o->name);
        char *text = v ? cJSON_Print(v) : NULL;
        rc = v ? (printf("%s\n", text), 0) : slim_set_error("%s: no version called %s", path, o->name);
        free(text);
    } else if (rc == 0) {
        rc = models_move(&r, !strcmp(o->action, "promote") ? o->name : NULL);
    }
    registry_close(&r);
    return rc == 0 ? SLIM_OK : -1;
}

int models_main(int argc, char **argv) {
    models_opts o;
    int r = models_parse_args(&o, argc, argv);
    if (r == SLIM_HELP) return SLIM_OK;
    if (r != SLIM_OK) { models_usage(stderr); return -1; }
    return models_run(&o);
}
