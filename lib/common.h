/* common.h — error reporting, allocation, timing, files and paths shared by every stage.
 *
 * Error convention (whole library): a function that can fail returns 0 (or a count >= 0) on success
 * and -1 on failure, after calling slim_set_error() with a message that names the file, line, key or
 * tensor and the field at fault. The CLI prints slim_last_error() and exits non-zero. */
#ifndef SLIM_COMMON_H
#define SLIM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* Records a printf-style error message for this thread; always returns -1 so callers can
 * `return slim_set_error(...)`. */
int slim_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded by slim_set_error() on this thread ("" when none). */
const char *slim_last_error(void);

/* malloc/calloc/realloc that print a message and exit(2) when memory runs out: allocation failure
 * is not a recoverable input error. slim_malloc(0) returns a valid pointer. */
void *slim_malloc(size_t n);
void *slim_calloc(size_t n, size_t size);
void *slim_realloc(void *p, size_t n);
char *slim_strdup(const char *s);

/* "a string", "a number", ... for a cJSON value (const cJSON *), for error messages. */
const char *slim_json_type_name(const void *cjson_value);

/* Monotonic wall clock in seconds. */
double slim_time_sec(void);

/* Directory of the shared test fixtures: $SLIM_SHARED, else "../shared". */
const char *slim_shared_dir(void);

/* Reads a whole file into a fresh NUL-terminated buffer (*size excludes the NUL).
 * Returns 0, or -1 with an error naming the path. */
int slim_read_file(const char *path, char **data, size_t *size);

/* Reads and parses a JSON file. Returns the document (free with cJSON_Delete), or NULL with an error
 * naming the path ("JSON does not parse", or why it could not be read). */
struct cJSON *slim_read_json(const char *path);

/* Atomic file writing: slim_atomic_open() opens "<path>.tmp.<pid>" for writing and stores that name
 * in tmp (capacity cap); slim_atomic_commit() flushes, fsyncs, closes and renames it to path;
 * slim_atomic_abort() closes and removes it. Nothing is ever left half-written under path. */
FILE *slim_atomic_open(const char *path, char *tmp, size_t cap);
int slim_atomic_commit(FILE *f, const char *tmp, const char *path);
void slim_atomic_abort(FILE *f, const char *tmp);

/* Copies the file src to dst atomically (slim_atomic_open/commit). Returns 0, or -1 with an error. */
int slim_copy_file(const char *src, const char *dst);

/* Writes text and a newline to path atomically (slim_atomic_open/commit). Returns 0, or -1 with an
 * error naming the temporary file or path. */
int slim_write_text_line(const char *path, const char *text);

/* Opens path read-only and fstat()s it into *st. Returns the file descriptor, or -1 with an error
 * naming the path ("cannot open" / "cannot stat"). */
int slim_open_stat(const char *path, struct stat *st);

/* snprintf into a path buffer of capacity cap: returns 0, or -1 with an error when the path does not
 * fit (a silently truncated path would read or write the wrong file). */
int slim_format_path(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Creates a directory and its parents (mkdir -p). Returns 0 or -1. */
int slim_mkdir_p(const char *path);

/* Removes the files of a flat directory, then the directory (0 when it does not exist). Returns 0 or -1. */
int slim_remove_dir(const char *path);
/* fsync of a file or (is_dir) a directory. Returns 0, or -1 with an error naming the path. */
int slim_fsync_path(const char *path, int is_dir);
/* Atomic directory writing: slim_dir_begin() makes the empty directory "<path>.tmp.<pid>" (its parents
 * created) and stores that name in tmp (capacity cap); the caller writes its files there;
 * slim_dir_commit() fsyncs them and tmp, puts tmp in place of path (an existing path set aside first,
 * then removed) and fsyncs the parent; slim_dir_abort() removes tmp. Readers see the old directory or
 * the whole new one, never a mix. Return 0, or -1 with an error (commit removes tmp on failure). */
int slim_dir_begin(const char *path, char *tmp, size_t cap);
int slim_dir_commit(const char *tmp, const char *path);
void slim_dir_abort(const char *tmp);

/* 64-bit FNV-1a hash of n bytes, continuing from h (start with SLIM_FNV_INIT). */
#define SLIM_FNV_INIT 0xcbf29ce484222325ULL
uint64_t slim_fnv1a(uint64_t h, const void *data, size_t n);

/* splitmix64 finalizer: a bijective 64-bit mix that spreads FNV's weak low bits. */
static inline uint64_t slim_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Small deterministic PRNG (xorshift64*): state must be non-zero. */
typedef struct { uint64_t s; } slim_rng;
void slim_rng_seed(slim_rng *r, uint64_t seed);
uint32_t slim_rng_u32(slim_rng *r);
float slim_rng_uniform(slim_rng *r); /* in [0, 1) */
float slim_rng_normal(slim_rng *r);  /* standard normal, Box-Muller */

#endif
