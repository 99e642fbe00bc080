/* Runs a fuzz target's LLVMFuzzerTestOneInput over files and directories
 * without libFuzzer, so the seed corpus (tests/fuzz/corpus/TARGET/, which
 * holds every crash found so far) replays as an ordinary test in every
 * build, with gcc and the SAGA_SANITIZE build too. Usage: TARGET PATH...
 * Exit 0 when every input ran (a failed invariant aborts). */
#include "saga_util.h"
#include "saga_alloc.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    size_t len = 0;
    char *data = saga_read_file(path, &len);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    saga_free(data);
    return 0;
}

int main(int argc, char **argv) {
    int files = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "cannot stat %s\n", argv[i]);
            failed++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            failed += run_file(path) != 0;
            files++;
        }
        if (d) closedir(d);
        else failed++;
    }
    printf("%d inputs, %d unreadable\n", files, failed);
    return failed || files == 0 ? 1 : 0;
}
