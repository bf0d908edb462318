/* model_file.c — GGUF file or Hugging Face directory; see model_file.h. */
#include "model_file.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "hf.h"

int slim_model_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int slim_model_open(gguf_file *g, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        memset(g, 0, sizeof *g);
        return slim_set_error("%s: %s", path, errno == ENOENT ? "no such file or directory" : strerror(errno));
    }
    return S_ISDIR(st.st_mode) ? hf_open(g, path) : gguf_open(g, path);
}
