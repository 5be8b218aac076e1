/* SPDX-License-Identifier: MIT */
/*
 * Runs fuzz inputs without libFuzzer: every file named on the command line,
 * and every regular file of a directory named there (in name order), is
 * passed once to LLVMFuzzerTestOneInput, so the seed corpus and saved
 * crashes run as a regression test with any compiler.  With no argument it
 * runs $top_srcdir/tests/fuzz/corpus, as make check does.  A broken rule
 * of the man pages traps inside the harness; exit 0 means every input ran, 1 that an
 * input could not be read or that there was none.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;

        if (!f) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                if (len == cap) {
                        uint8_t *b = realloc(buf, cap = cap ? 2 * cap : 4096);

                        if (!b) {
                                fprintf(stderr, "replay: out of memory\n");
                                exit(1);
                        }
                        buf = b;
                }
                size_t n = fread(buf + len, 1, cap - len, f);

                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                fprintf(stderr, "replay: %s: read error\n", path);
                fclose(f);
                free(buf);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        return 0;
}

static int only_visible(const struct dirent *d) {
        return d->d_name[0] != '.';
}

/* Runs the regular files of dir; returns how many, or -1. */
static int run_dir(const char *dir) {
        struct dirent **names;
        int i, n = scandir(dir, &names, only_visible, alphasort), ran = 0, failed = 0;

        if (n < 0) {
                fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
                return -1;
        }
        for (i = 0; i < n; i++) {
                char path[4096];
                struct stat st;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                        if (run_file(path) < 0)
                                failed = 1;
                        else
                                ran++;
                }
                free(names[i]);
        }
        free(names);
        return failed ? -1 : ran;
}

int main(int argc, char **argv) {
        const char *top_srcdir = getenv("top_srcdir");
        char corpus[4096];
        char *fallback[] = { argv[0], corpus };
        int i, ran = 0, failed = 0;

        if (argc == 1) {
                snprintf(corpus, sizeof(corpus), "%s/tests/fuzz/corpus",
                         top_srcdir ? top_srcdir : ".");
                argc = 2;
                argv = fallback;
        }
        for (i = 1; i < argc; i++) {
                struct stat st;
                int n;

                if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                        n = run_dir(argv[i]);
                else
                        n = run_file(argv[i]) < 0 ? -1 : 1;
                if (n < 0)
                        failed = 1;
                else
                        ran += n;
        }
        printf("replay: %d inputs ran\n", ran);
        return failed || ran == 0 ? 1 : 0;
}
