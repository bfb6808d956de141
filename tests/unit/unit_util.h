/*
 * unit_util.h - helpers shared by the Check unit tests: temp dirs, stderr
 * capture (to assert on log wording), small file helpers.
 * Invariants: everything lives under a per-process mkdtemp directory; helpers
 * abort the test (ck_abort) on setup failures rather than returning errors.
 */
#ifndef TX_UNIT_UTIL_H
#define TX_UNIT_UTIL_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "util.h"

/* Create a fresh temp dir; caller frees the path. */
static inline char *unit_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/txunit.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp failed");
    return tmpl;
}

static inline void unit_rm_rf(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
    free(cmd);
}

/* stderr capture: redirect fd 2 to a file until unit_capture_end. */
typedef struct {
    int saved_fd;
    char *path;
} unit_capture;

static inline void unit_capture_begin(unit_capture *c, const char *dir)
{
    c->path = xasprintf("%s/stderr.%d.txt", dir, (int)getpid());
    fflush(stderr);
    c->saved_fd = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
}

/* Restore stderr; returns what was written (caller frees). */
static inline char *unit_capture_end(unit_capture *c)
{
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    char *data = NULL;
    size_t len = 0;
    bool missing = false;
    if (!read_whole_file(c->path, &data, &len, &missing))
        data = xstrdup("");
    unlink(c->path);
    free(c->path);
    /* Echo it so failures stay debuggable in the meson test log. */
    fputs(data, stderr);
    return data;
}

static inline off_t unit_file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static inline void unit_append_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, data, len), (int)len);
    close(fd);
}

static inline int unit_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
