/* test_checkpoint.c — lib/checkpoint.h: a saved state reads back bit for bit; the newest checkpoint
 * is found and only the last `keep` are kept; a truncated or corrupted state.h5, another parameter
 * count and a missing file are refused naming the file; the data hash sees one token; the config
 * comparison names the key that differs and skips the allowed ones. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "testutil.h"

#define N 3000 /* parameters: more than one HDF5 chunk would hold at a small chunk size, fewer than CKPT_CHUNK */

static char g_dir[256];
static float g_p[N], g_m[N], g_v[N];

/* A state with recognizable values at step `step`. */
static ckpt_state make_state(int64_t step) {
    for (int i = 0; i < N; i++) {
        g_p[i] = (float)i * 0.25f - 7.0f + (float)step;
        g_m[i] = 1e-3f / (float)(i + 1);
        g_v[i] = 1e-7f * (float)(i % 13);
    }
    ckpt_state s = {.step = step, .adam_t = step, .loader = {.epoch = 1, .cursor = 5}, .threads = 2, .ranks = 3,
                    .n_params = N,
                    .params = g_p, .adam_m = g_m, .adam_v = g_v,
                    .log = {.loss_since = 12.5, .elapsed_s = 3.25, .targets_since = 7, .tokens_since = 99,
                            .real_since = 80, .tokens_total = 1000, .real_total = 900, .targets_total = 70}};
    for (int i = 0; i < 32; i++) s.dataset_sha256[i] = (uint8_t)(i * 7);
    return s;
}

/* Writes checkpoint `step` under g_dir/ckpt with keep. Returns ckpt_commit's result. */
static int save(int64_t step, int keep) {
    char parent[300];
    snprintf(parent, sizeof parent, "%s/ckpt", g_dir);
    ckpt_writer w;
    ckpt_state s = make_state(step);
    if (ckpt_begin(&w, parent, step) != 0 || ckpt_write_state(&w, &s) != 0) return -1;
    return ckpt_commit(&w, keep);
}

static void test_round_trip(void) {
    CHECK(save(12, 0) == 0, "save: %s", slim_last_error());
    ckpt_state want = make_state(12);
    static float p[N], m[N], v[N];
    ckpt_state got = {.n_params = N, .params = p, .adam_m = m, .adam_v = v};
    char dir[400];
    snprintf(dir, sizeof dir, "%s/ckpt/step-000012", g_dir);
    CHECK(ckpt_read_state(dir, &got) == 0, "read: %s", slim_last_error());
    CHECK(!memcmp(p, g_p, sizeof p) && !memcmp(m, g_m, sizeof m) && !memcmp(v, g_v, sizeof v),
          "the arrays read back differ");
    CHECK(got.step == 12 && got.adam_t == 12 && got.loader.epoch == 1 && got.loader.cursor == 5 && got.threads == 2,
          "scalars: step %lld adam_t %lld loader %lld/%lld threads %lld", (long long)got.step, (long long)got.adam_t,
          (long long)got.loader.epoch, (long long)got.loader.cursor, (long long)got.threads);
    CHECK(got.ranks == 3, "ranks: %lld", (long long)got.ranks);
    CHECK(!memcmp(&got.log, &want.log, sizeof got.log), "the log counters differ");
    CHECK(!memcmp(got.dataset_sha256, want.dataset_sha256, 32), "the data hash differs");
    /* a checkpoint written before the rank count was recorded reads as 1 rank */
    char path[450];
    snprintf(path, sizeof path, "%s/state.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0 && H5Adelete(f, "ranks") >= 0 && H5Fclose(f) >= 0, "removing the ranks attribute");
    CHECK(ckpt_read_state(dir, &got) == 0 && got.ranks == 1, "without ranks: %s, ranks %lld", slim_last_error(),
          (long long)got.ranks);
    /* another parameter count is refused, naming the file and the field */
    got.n_params = N - 1;
    CHECK(ckpt_read_state(dir, &got) == -1 && strstr(slim_last_error(), "state.h5: n_params"), "got: %s",
          slim_last_error());
}

static void test_latest_and_keep(void) {
    char parent[300], dir[400];
    snprintf(parent, sizeof parent, "%s/ckpt", g_dir);
    for (int s = 20; s <= 50; s += 10) CHECK(save(s, 2) == 0, "save %d: %s", s, slim_last_error());
    CHECK(ckpt_latest(parent, dir, sizeof dir) == 1 && strstr(dir, "/step-000050"), "latest: %s", dir);
    struct stat st;
    int n_kept = 0;
    for (int s = 10; s <= 50; s++) {
        snprintf(dir, sizeof dir, "%s/step-%06d", parent, s);
        n_kept += stat(dir, &st) == 0;
    }
    CHECK(n_kept == 2, "keep 2: %d checkpoints left", n_kept);
    CHECK(save(50, 2) == 0, "saving the same step again: %s", slim_last_error());
    CHECK(ckpt_remove_after(parent, 40) == 1, "remove_after 40");
    CHECK(ckpt_latest(parent, dir, sizeof dir) == 1 && strstr(dir, "/step-000040"), "latest after removal: %s", dir);
    snprintf(dir, sizeof dir, "%s/none", g_dir);
    CHECK(ckpt_latest(dir, parent, sizeof parent) == 0, "no directory: no checkpoint");
}

/* Copies checkpoint 40's state.h5 into g_dir/bad/state.h5, then truncates it to `keep` bytes, or
 * (keep < 0) flips one byte of the stored parameters. */
static void spoil(long keep) {
    char src[400], dst[400];
    snprintf(src, sizeof src, "%s/ckpt/step-000040/state.h5", g_dir);
    snprintf(dst, sizeof dst, "%s/bad", g_dir);
    mkdir(dst, 0755);
    snprintf(dst, sizeof dst, "%s/bad/state.h5", g_dir);
    char *data;
    size_t n;
    if (slim_read_file(src, &data, &n) != 0) { CHECK(0, "%s", slim_last_error()); return; }
    if (keep >= 0) n = (size_t)keep;
    make_state(40);
    char *at = memmem(data, n, &g_p[100], 16); /* parameters 100..103 as stored */
    CHECK(keep >= 0 || at, "parameters not found in %s", src);
    if (keep < 0 && at) at[5] ^= 0x55;
    FILE *f = fopen(dst, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    free(data);
}

static void test_corrupt(void) {
    static float p[N], m[N], v[N];
    ckpt_state got = {.n_params = N, .params = p, .adam_m = m, .adam_v = v};
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/bad", g_dir);
    snprintf(path, sizeof path, "%s/ckpt/step-000040/state.h5", g_dir);
    struct stat st;
    CHECK(stat(path, &st) == 0, "%s", path);
    spoil(st.st_size / 2);
    CHECK(ckpt_read_state(dir, &got) == -1 && strstr(slim_last_error(), "bad/state.h5"), "truncated: %s",
          slim_last_error());
    printf("truncated: %s\n", slim_last_error());
    spoil(-1); /* a flipped byte inside /params: its fletcher32 checksum no longer matches */
    CHECK(ckpt_read_state(dir, &got) == -1 && strstr(slim_last_error(), "bad/state.h5"), "corrupted: %s",
          slim_last_error());
    printf("corrupted: %s\n", slim_last_error());
    snprintf(dir, sizeof dir, "%s/missing", g_dir);
    CHECK(ckpt_read_state(dir, &got) == -1 && strstr(slim_last_error(), "missing/state.h5"), "missing: %s",
          slim_last_error());
}

static void test_dataset_hash(void) {
    int32_t tokens[6] = {1, 5, 6, 1, 7, 8};
    uint8_t mask[6] = {0, 1, 1, 0, 1, 1};
    int64_t offsets[3] = {0, 3, 6};
    slim_dataset d = {.n_examples = 2, .n_tokens = 6, .tokens = tokens, .loss_mask = mask, .offsets = offsets,
                      .max_seq_len = 8};
    uint8_t a[32], b[32];
    ckpt_dataset_sha256(&d, a);
    tokens[4] = 9;
    ckpt_dataset_sha256(&d, b);
    CHECK(memcmp(a, b, 32) != 0, "one token changed: the same hash");
    tokens[4] = 7;
    ckpt_dataset_sha256(&d, b);
    CHECK(memcmp(a, b, 32) == 0, "the same data: another hash");
}

static void test_config_compare(void) {
    cJSON *a = cJSON_Parse("{\"model\": \"m\", \"train\": {\"lr\": 0.003, \"log_every\": 1}, \"eval\": {\"x\": 1}}");
    cJSON *b = cJSON_Parse("{\"model\": \"m\", \"train\": {\"lr\": 0.001, \"log_every\": 5}, \"eval\": {\"x\": 2}}");
    cJSON *c = cJSON_Parse("{\"model\": \"m\", \"train\": {\"lr\": 0.003, \"log_every\": 5, \"new\": 1}}");
    const char *const skip[] = {"eval", "train.log_every", NULL};
    CHECK(ckpt_compare_config(a, b, skip, "ck") == -1 && !strncmp(slim_last_error(), "train.lr: ", 10), "got: %s",
          slim_last_error());
    printf("changed key: %s\n", slim_last_error());
    CHECK(ckpt_compare_config(a, c, skip, "ck") == -1 && !strncmp(slim_last_error(), "train.new: ", 11), "got: %s",
          slim_last_error());
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(b, "train"), "lr", cJSON_CreateNumber(0.003));
    CHECK(ckpt_compare_config(a, b, skip, "ck") == 0, "only skipped keys differ: %s", slim_last_error());
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_checkpoint.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    test_round_trip();
    test_latest_and_keep();
    test_corrupt();
    test_dataset_hash();
    test_config_compare();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return 1;
    return tu_finish("test_checkpoint");
}
