/*
 * durable.h - the one place where files are made durable.
 *
 * durable_write_file: write "<path>.tmp", fsync it, rename over <path>, fsync
 * the directory. After it returns true the new content survives a power cut;
 * a crash at any instant leaves either the old or the new content at <path>.
 */
#ifndef TX_DURABLE_H
#define TX_DURABLE_H

#include "util.h"

bool durable_write_file(const char *path, const void *data, size_t len) MUSTCHECK;
/* fsync the directory containing path. */
bool fsync_parent_dir(const char *path) MUSTCHECK;
/* Read a whole file. Caller frees *data (NUL-terminated, len excludes NUL).
 * Returns false; if the file does not exist sets *missing = true and logs nothing. */
bool read_whole_file(const char *path, char **data, size_t *len, bool *missing) MUSTCHECK;
/* Lock a data directory for this process's lifetime: flock(LOCK_EX) on
 * DIR/LOCK (which then holds our pid), waiting up to DIR_LOCK_WAIT_MS for a
 * holder that is exiting. false (logged, naming who and the holder's pid)
 * when another live process holds it: two processes on one data directory
 * would overwrite each other's log. */
#define DIR_LOCK_WAIT_MS 3000
bool dir_lock(const char *dir, const char *who) MUSTCHECK;
/* mkdir -p with mode 0700 for created levels; the parent directory of each
 * created level and of the last one (which a run that died before syncing
 * it may have created) is fsync'd, so the entries survive a power cut. */
bool mkdir_p(const char *path) MUSTCHECK;

#endif
