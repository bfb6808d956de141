/*
 * durable.c - the one place where files are made durable.
 *
 * Protocol of durable_write_file(path):
 *   1. write "<path>.tmp" (O_TRUNC) completely;
 *   2. fsync it;
 *   3. rename over <path>;
 *   4. fsync the parent directory.
 * A crash before 3 leaves the old <path> (plus a stale .tmp, overwritten next
 * time); after 3 but before 4 either version may survive a power cut; after 4
 * the new content is durable.
 * Invariants: every failure is logged once here with the path and errno text.
 *
 * dir_lock: a data directory belongs to one process at a time (flock on
 * DIR/LOCK, held until exit). A second txcoord on the same directory would
 * bump the epoch, compact (rename a new decisions.log over the one the first
 * still appends to, so the first's later decisions go to an unlinked file)
 * and append at its own offsets; it stops at start instead.
 */
#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool fsync_parent_dir(const char *path)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open directory %s: %s", dir, strerror(errno));
        free(copy);
        return false;
    }
    bool ok = true;
    if (fsync(fd) != 0) {
        log_error("cannot fsync directory %s: %s", dir, strerror(errno));
        ok = false;
    }
    close(fd);
    free(copy);
    return ok;
}

bool durable_write_file(const char *path, const void *data, size_t len)
{
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return false;
    }
    if (!write_all(fd, data, len)) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        goto fail_fd;
    }
    if (fsync(fd) != 0) {
        log_error("cannot fsync %s: %s", tmp, strerror(errno));
        goto fail_fd;
    }
    if (close(fd) != 0) {
        fd = -1;
        log_error("cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        log_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return fsync_parent_dir(path);

fail_fd:
    close(fd);
fail:
    unlink(tmp);
    free(tmp);
    return false;
}

bool read_whole_file(const char *path, char **data, size_t *len, bool *missing)
{
    if (missing)
        *missing = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && missing) {
            *missing = true;
            return false;
        }
        log_error("cannot open %s: %s", path, strerror(errno));
        return false;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_error("cannot read %s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return false;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return true;
}

bool mkdir_p(const char *path)
{
    if (!path || !*path) {
        log_error("mkdir_p: empty path");
        return false;
    }
    char *copy = xstrdup(path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    for (char *p = copy + 1;; p++) {
        bool end = (*p == '\0');
        if (*p == '/' || end) {
            char saved = *p;
            *p = '\0';
            bool created = mkdir(copy, 0700) == 0;
            if (!created && errno != EEXIST) {
                log_error("cannot create directory %s: %s", copy, strerror(errno));
                free(copy);
                return false;
            }
            /* A directory's entry is durable only once its parent is
             * synced: without it a power cut could take away a data
             * directory whose files were fsync'd and acted upon. The last
             * level's also when it existed: an earlier run may have died
             * between its mkdir and this sync. */
            if ((created || end) && !fsync_parent_dir(copy)) {
                free(copy);
                return false;
            }
            *p = saved;
            if (end)
                break;
        }
    }
    struct stat st;
    if (stat(copy, &st) != 0 || !S_ISDIR(st.st_mode)) {
        log_error("%s exists and is not a directory", copy);
        free(copy);
        return false;
    }
    free(copy);
    return true;
}

/* flock, not fcntl locks: an fcntl lock belongs to the process and any
 * close() of the file by any thread drops it; a flock belongs to the open
 * file description held here. */
bool dir_lock(const char *dir, const char *who)
{
    char *path = xasprintf("%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("%s: cannot open %s: %s", who, path, strerror(errno));
        free(path);
        return false;
    }
    /* A process killed just now may still be exiting (its threads tear down
     * after the leader is a zombie): wait a little before calling it busy. */
    for (int waited_ms = 0;; waited_ms += 100) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        int e = errno;
        if (e != EWOULDBLOCK || waited_ms >= DIR_LOCK_WAIT_MS) {
            char holder[32] = "";
            ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
            holder[n > 0 ? n : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            if (e == EWOULDBLOCK)
                log_error("%s: the data directory %s is in use by another process (pid %s, "
                          "holding %s): two processes must never share it",
                          who, dir, holder[0] ? holder : "unknown", path);
            else
                log_error("%s: cannot lock %s: %s", who, path, strerror(e));
            close(fd);
            free(path);
            return false;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        log_warn("%s: cannot write the pid into %s: %s (the lock is held all the same)", who,
                 path, strerror(errno));
    free(path);
    return true; /* fd stays open, so the lock is held, until the process exits */
}
