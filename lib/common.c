/* common.c — see common.h. */
#define _GNU_SOURCE
#include "common.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static __thread char slim_err_buf[1024];

int slim_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slim_err_buf, sizeof slim_err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

const char *slim_last_error(void) { return slim_err_buf; }

static void slim_oom(size_t n) {
    fprintf(stderr, "slimtune: out of memory allocating %zu bytes\n", n);
    exit(2);
}

void *slim_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) slim_oom(n);
    return p;
}

void *slim_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) slim_oom(n * size);
    return p;
}

void *slim_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) slim_oom(n);
    return q;
}

char *slim_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = slim_malloc(n);
    memcpy(d, s, n);
    return d;
}

double slim_time_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *slim_shared_dir(void) {
    const char *s = getenv("SLIM_SHARED");
    return (s && *s) ? s : "../shared";
}

int slim_read_file(const char *path, char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return slim_set_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = slim_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) { cap *= 2; buf = slim_realloc(buf, cap); }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return slim_set_error("%s: read error", path); }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

FILE *slim_atomic_open(const char *path, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) slim_set_error("%s: cannot create: %s", tmp, strerror(errno));
    return f;
}

int slim_atomic_commit(FILE *f, const char *tmp, const char *path) {
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0; /* on disk before the rename makes it visible */
    if (fclose(f) != 0) bad = 1;
    if (bad) { unlink(tmp); return slim_set_error("%s: write failed: %s", path, strerror(errno)); }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return slim_set_error("%s: cannot rename from %s: %s", path, tmp, strerror(e));
    }
    return 0;
}

void slim_atomic_abort(FILE *f, const char *tmp) {
    if (f) fclose(f);
    unlink(tmp);
}

int slim_write_text_line(const char *path, const char *text) {
    char tmp[4200];
    FILE *f = slim_atomic_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    fputs(text, f);
    fputc('\n', f);
    return slim_atomic_commit(f, tmp, path);
}

int slim_open_stat(const char *path, struct stat *st) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return slim_set_error("%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return slim_set_error("%s: cannot stat: %s", path, strerror(e));
    }
    return fd;
}

int slim_format_path(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap) return slim_set_error("path too long (%.60s...)", buf);
    return 0;
}

int slim_mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return slim_set_error("%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return slim_set_error("%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return 0;
}

uint64_t slim_fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}

void slim_rng_seed(slim_rng *r, uint64_t seed) {
    /* splitmix64 of the seed, so that small seeds give well-mixed states */
    uint64_t z = slim_mix64(seed + 0x9e3779b97f4a7c15ULL);
    r->s = z ? z : 1;
}

uint32_t slim_rng_u32(slim_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32);
}

float slim_rng_uniform(slim_rng *r) { return (slim_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float slim_rng_normal(slim_rng *r) {
    float u1 = slim_rng_uniform(r), u2 = slim_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

const char *slim_json_type_name(const void *value) {
    const cJSON *v = value;
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

cJSON *slim_read_json(const char *path) {
    char *text = NULL;
    size_t size = 0;
    if (slim_read_file(path, &text, &size)) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, size);
    free(text);
    if (!root) slim_set_error("%s: JSON does not parse", path);
    return root;
}

int slim_remove_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : slim_set_error("%s: cannot open: %s", path, strerror(errno));
    struct dirent *e;
    char p[4500];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p)
            unlink(p);
    closedir(d);
    if (rmdir(path) != 0) return slim_set_error("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int slim_fsync_path(const char *path, int is_dir) {
    int fd = open(path, O_RDONLY | (is_dir ? O_DIRECTORY : 0));
    if (fd < 0) return slim_set_error("%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : slim_set_error("%s: fsync failed: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int slim_dir_begin(const char *path, char *tmp, size_t cap) {
    if (slim_format_path(tmp, cap, "%s.tmp.%d", path, (int)getpid()) != 0) return -1;
    char parent[4096];
    if (slim_format_path(parent, sizeof parent, "%s", path) != 0) return -1;
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (slim_mkdir_p(parent) != 0) return -1;
    }
    (void)slim_remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0) return slim_set_error("%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

void slim_dir_abort(const char *tmp) {
    if (tmp && tmp[0]) (void)slim_remove_dir(tmp);
}

/* fsyncs every file in dir, then dir. */
static int slim_sync_dir_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return slim_set_error("%s: cannot open: %s", dir, strerror(errno));
    struct dirent *e;
    char p[4500];
    int rc = 0;
    while (rc == 0 && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rc = slim_format_path(p, sizeof p, "%s/%s", dir, e->d_name) ? -1 : slim_fsync_path(p, 0);
    closedir(d);
    return rc ? rc : slim_fsync_path(dir, 1);
}

int slim_dir_commit(const char *tmp, const char *path) {
    char old[4300] = "", parent[4096];
    const char *slash = strrchr(path, '/');
    int rc = slim_sync_dir_files(tmp);
    if (rc == 0 && slim_format_path(parent, sizeof parent, "%.*s", slash ? (int)(slash - path) : 1,
                                    slash ? path : ".") != 0)
        rc = -1;
    struct stat st;
    if (rc == 0 && stat(path, &st) == 0) { /* set the old one aside: rename cannot replace a directory */
        snprintf(old, sizeof old, "%s/.old-%s.%d", parent, slash ? slash + 1 : path, (int)getpid());
        if (rename(path, old) != 0) rc = slim_set_error("%s: cannot move aside: %s", path, strerror(errno));
    }
    if (rc == 0 && rename(tmp, path) != 0) rc = slim_set_error("%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (rc != 0) {
        slim_dir_abort(tmp);
        return -1;
    }
    if (old[0]) (void)slim_remove_dir(old);
    return slim_fsync_path(parent, 1);
}

int slim_copy_file(const char *src, const char *dst) {
    char *data, tmp[4500];
    size_t n;
    if (slim_read_file(src, &data, &n) != 0) return -1;
    FILE *f = slim_atomic_open(dst, tmp, sizeof tmp);
    int rc = -1;
    if (f && fwrite(data, 1, n, f) == n) rc = slim_atomic_commit(f, tmp, dst);
    else if (f) { slim_atomic_abort(f, tmp); slim_set_error("%s: write failed", dst); }
    free(data);
    return rc;
}
