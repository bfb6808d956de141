/*
 * wal.c - append-only record log with CRC32C per record and group commit.
 *
 * Invariants:
 *   - Records are written with pwrite(2) at write_off under the mutex, so the
 *     file is always a sequence of whole records (a failed write is truncated
 *     away; if that fails too the log is poisoned and every later call fails).
 *   - flushed_upto <= write_off; every byte below flushed_upto is on stable
 *     storage. A sync append returns true only once flushed_upto covers its
 *     record end.
 *   - Group commit: at most one leader runs fdatasync, outside the mutex, for
 *     everything written when it started; writers arriving meanwhile wait on
 *     the condvar and the next leader covers them. One fdatasync failure
 *     poisons the log (after fsyncgate, retrying is not trustworthy).
 *   - wal_rewrite runs with appends blocked: it first makes every written
 *     record durable (so pending sync appenders succeed), then replaces the file
 *     (tmp, fsync, rename, dir fsync) and continues on the new file. A failed
 *     directory fsync after the rename poisons the log like a failed fdatasync.
 *   - Replay: a bad or incomplete record is a torn tail when it reaches EOF or
 *     everything after it (after the length its header claims) is zero; the
 *     file is then truncated there (WARN).
 *     A bad record with non-zero data after it is corruption: wal_open fails,
 *     except for the hole a power cut leaves when later sectors reached the
 *     disk and an earlier one did not (unwritten_hole; wal_open_unforced
 *     opts in): nothing from the hole on was acknowledged, whatever its
 *     records' types, and it is cut like a torn tail. So
 *     is a last record whose header never reached the disk while later bytes
 *     of it did, when no whole record follows (torn_header_at).
 *   - wal_open writes the replayed records back and syncs them before anyone
 *     acts on them: after a failed fdatasync the kernel may hold them as
 *     clean pages the disk never got, which a plain fdatasync would skip.
 *   - Preallocation: the file is extended with written zeros ahead of
 *     write_off (alloc_end, in steps of WAL_PREALLOC), so that an append
 *     overwrites zeros inside the file instead of growing it. fdatasync then
 *     flushes data only, not the inode's size as well: 0.12-0.14 ms instead of
 *     0.16-0.19 ms per sync append on this project's test VM (README.md,
 *     "Decision log").
 *     The zeros are the clean end of the log: a record header of zeros has
 *     type 0, which replay reads as "no record here", and only zeros follow.
 *     So a log with a zero tail opens without a warning and appends go on at
 *     the first zero byte; wal_close trims the tail, so a cleanly closed log is
 *     exactly its records. An extension is not fdatasync'd on its own: the
 *     next sync append's fdatasync makes zeros, size and record durable
 *     together, and a crash before that leaves a tail that reads as zeros.
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "durable.h"
#include "fault.h"
#include "log.h"

#define WAL_HDR 9 /* u32 len, u32 crc, u8 type */
/* Extension step. Writing 1 MiB of zeros takes about 1 ms and its flush
 * about 3 ms on the test VM; at 800 transactions/s of ~250-byte records that
 * is once every 5 s. */
#define WAL_PREALLOC ((uint64_t)1 << 20)

struct wal {
    char *path;
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t write_off;    /* end of the last written record */
    uint64_t alloc_end;    /* file size; [write_off, alloc_end) holds zeros */
    uint64_t flushed_upto; /* durable prefix */
    uint64_t gen;          /* bumped by each rewrite */
    uint64_t syncs;
    bool flushing;         /* a leader is in fdatasync */
    bool rewriting;
    bool failed;
};

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t record_crc(uint8_t type, const void *payload, size_t len)
{
    uint32_t c = crc32c(0, &type, 1);
    return crc32c(c, payload, len);
}

/* Encode one record into buf (size >= WAL_HDR + len). */
static void record_encode(unsigned char *buf, uint8_t type, const void *payload, size_t len)
{
    put_u32(buf, (uint32_t)len);
    put_u32(buf + 4, record_crc(type, payload, len));
    buf[8] = type;
    if (len)
        memcpy(buf + WAL_HDR, payload, len);
}

static bool pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return true;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Read the whole file into *buf (caller frees). */
static bool wal_read_all(const char *path, int fd, unsigned char **buf, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        log_error("wal %s: fstat failed: %s", path, strerror(errno));
        return false;
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *b = xmalloc(n + 1);
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("wal %s: read failed: %s", path, strerror(errno));
            free(b);
            return false;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *buf = b;
    *size = got;
    return true;
}

/* A whole, CRC-valid record at buf[o..]: its payload length and type. */
static bool record_at(const unsigned char *buf, size_t size, size_t o, uint32_t *len,
                      uint8_t *type)
{
    if (size - o < WAL_HDR)
        return false;
    *len = get_u32(buf + o);
    *type = buf[o + 8];
    return *type != 0 && *len <= WAL_MAX_RECORD && (size_t)*len <= size - o - WAL_HDR &&
           record_crc(*type, buf + o + WAL_HDR, *len) == get_u32(buf + o + 4);
}

/* Does a whole record begin anywhere in buf[from..to)? */
static bool record_begins_in(const unsigned char *buf, size_t size, size_t from, size_t to)
{
    for (size_t o = from; o < to; o++) {
        uint32_t len;
        uint8_t type;
        if (record_at(buf, size, o, &len, &type))
            return true;
    }
    return false;
}

/* Is the bad record at pos a torn tail? It reaches EOF, or only zeros follow
 * it, after the length its header claims (when plausible): that covers a
 * record torn inside preallocated zeros, whose unwritten rest is still zero.
 * And no whole record begins inside what its header claims: a torn last
 * record holds nothing but its own unfinished bytes, while a length damaged
 * (a flipped bit, not a power cut: unwritten bytes read as zeros, which
 * never make a length larger) can claim records that were acknowledged. */
static bool torn_tail_at(const unsigned char *buf, size_t size, size_t pos)
{
    if (size - pos < WAL_HDR)
        return true;
    uint32_t len = get_u32(buf + pos);
    uint64_t end = (uint64_t)pos + WAL_HDR + (len <= WAL_MAX_RECORD ? len : 0);
    if (end < size && !all_zero(buf + end, size - (size_t)end))
        return false;
    return !record_begins_in(buf, size, pos + 1, end < size ? (size_t)end : size);
}

#define WAL_SECTOR 512

/* The header at pos never reached the disk while later bytes of the same
 * record did: a power cut in the middle of the last flush, the sector with
 * the header lost, a later one written. So everything from pos to the end
 * of its sector is zero (header and payload alike: a zeroed header with its
 * payload beside it is not a lost sector, and stays corruption). A torn
 * tail too, when no whole record begins anywhere after pos (one that was
 * acknowledged would be whole: the fdatasync that acknowledged it covered
 * every byte before it) and what follows ends within one record's reach,
 * zeros after it. */
static bool torn_header_at(const unsigned char *buf, size_t size, size_t pos)
{
    /* the end of the sector holding the header's last byte (a header across
     * a boundary lost both sectors) */
    size_t sector_end = ((pos + WAL_HDR - 1) / WAL_SECTOR + 1) * WAL_SECTOR;
    if (size - pos < WAL_HDR || sector_end >= size || !all_zero(buf + pos, sector_end - pos))
        return false;
    size_t last = size; /* end of the non-zero bytes */
    while (last > pos && buf[last - 1] == 0)
        last--;
    if (last - pos > (size_t)WAL_HDR + WAL_MAX_RECORD)
        return false;
    return !record_begins_in(buf, size, pos + 1, last);
}

/* The bad record at pos is followed by more data. Is it the unwritten hole
 * a power cut leaves when the disk wrote later sectors of the last flush (or
 * of background writeback) but not an earlier one? Then nothing from pos on
 * was ever acknowledged as durable, whatever its type: records are appended
 * in file order, and an fdatasync that returned covered every byte written
 * before it started, the hole's included. A forced record after the hole is
 * therefore one whose fdatasync never returned: nobody acted on it (the
 * decision was never sent, the client never told). Cutting at pos is as safe
 * as cutting a torn tail; it is what PostgreSQL's own WAL replay does at its
 * first invalid record. Recognised only when all of these hold, else it stays
 * corruption:
 *   - a sector that never reached the disk: every byte from pos to the next
 *     sector boundary is zero (it may be shorter than a header), or, when
 *     the bad record's header did reach the disk, a whole zero sector inside
 *     the span that header claims (payloads are JSON text: never a zero byte);
 *   - after it, at most WAL_PREALLOC bytes that parse as nothing (the rest
 *     of a record that began in the hole), then CRC-valid records, then
 *     zeros or one torn record to the end.
 * Sets *seen to the number of those records and *forced to how many of them
 * are of types not in `unforced` (the caller's never-forced types). */
static bool unwritten_hole(const unsigned char *buf, size_t size, size_t pos,
                           const char *unforced, size_t *seen, size_t *forced)
{
    *seen = 0;
    *forced = 0;
    size_t boundary = (pos / WAL_SECTOR + 1) * WAL_SECTOR;
    if (!unforced || boundary >= size)
        return false;
    if (!all_zero(buf + pos, boundary - pos)) {
        size_t s = boundary;
        if (pos + WAL_HDR > boundary && s + WAL_SECTOR <= size &&
            all_zero(buf + s, WAL_SECTOR)) {
            /* A header across the boundary whose first bytes reached the
             * disk: the lost sector is the next one, its type byte in it. */
        } else {
            /* The whole header reached the disk (across the boundary or
             * not): a lost sector inside its record. */
            if (size - pos < WAL_HDR || buf[pos + 8] == 0)
                return false;
            uint32_t len = get_u32(buf + pos);
            if (len > WAL_MAX_RECORD)
                return false;
            size_t end = pos + WAL_HDR + len;
            while (s < end && s + WAL_SECTOR <= size && !all_zero(buf + s, WAL_SECTOR))
                s += WAL_SECTOR;
            if (s >= end || s + WAL_SECTOR > size)
                return false;
        }
        boundary = s + WAL_SECTOR;
        if (boundary >= size)
            return false;
    }
    size_t q = boundary;
    while (q < size && buf[q] == 0)
        q++;
    /* A header's first bytes may be zeros (a length under 2^24 has a zero
     * top byte, and more): the first record after the hole can begin up to
     * WAL_HDR - 1 bytes before the first non-zero byte. */
    size_t o = q >= boundary + WAL_HDR - 1 ? q - (WAL_HDR - 1) : boundary;
    while (o < size) {
        uint32_t len;
        uint8_t type;
        if (record_at(buf, size, o, &len, &type)) {
            if (!strchr(unforced, (char)type))
                (*forced)++;
            (*seen)++;
            o += WAL_HDR + len;
            continue;
        }
        if (*seen > 0) /* after the records: zeros, or a torn last one */
            return torn_tail_at(buf, size, o);
        if (++o - boundary > WAL_PREALLOC)
            return false;
    }
    return *seen > 0;
}

/* Replay buf; sets *valid_end to the end of the last good record. */
static bool wal_replay(const char *path, const unsigned char *buf, size_t size,
                       wal_replay_fn fn, void *arg, const char *unforced, size_t *valid_end)
{
    size_t pos = 0;
    char *copy = NULL; /* NUL-terminated copy handed to fn */
    size_t copy_cap = 0;
    bool ok = true;
    while (pos < size) {
        size_t left = size - pos;
        const char *why = NULL;
        uint32_t len = 0;
        if (left < WAL_HDR) {
            why = "incomplete header";
        } else {
            len = get_u32(buf + pos);
            uint32_t crc = get_u32(buf + pos + 4);
            uint8_t type = buf[pos + 8];
            if (len > WAL_MAX_RECORD)
                why = "bad length";
            else if ((size_t)len > left - WAL_HDR)
                why = "incomplete payload";
            else if (type == 0)
                why = "type 0";
            else if (record_crc(type, buf + pos + WAL_HDR, len) != crc)
                why = "crc mismatch";
        }
        if (why) {
            bool torn = torn_tail_at(buf, size, pos) || torn_header_at(buf, size, pos);
            size_t after = 0, forced = 0;
            if (!torn && unwritten_hole(buf, size, pos, unforced, &after, &forced)) {
                log_warn("wal %s: unwritten hole at offset %zu followed by %zu record(s), %zu "
                         "of them of forced types (a power cut after later sectors reached the "
                         "disk): nothing from there on was acknowledged; cut there",
                         path, pos, after, forced);
                torn = true;
            }
            if (!torn) {
                log_error("wal %s: corrupt record at offset %zu (%s) followed by %zu more "
                          "bytes; refusing to open",
                          path, pos, why, left);
                ok = false;
            }
            break;
        }
        if (fn) {
            if (copy_cap < (size_t)len + 1) {
                copy_cap = (size_t)len + 1;
                copy = xrealloc(copy, copy_cap);
            }
            memcpy(copy, buf + pos + WAL_HDR, len);
            copy[len] = '\0';
            if (!fn(buf[pos + 8], copy, len, arg)) {
                log_error("wal %s: replay rejected record at offset %zu (type %u)", path, pos,
                          (unsigned)buf[pos + 8]);
                ok = false;
                break;
            }
        }
        pos += WAL_HDR + len;
    }
    free(copy);
    *valid_end = pos;
    return ok;
}

wal *wal_open(const char *path, wal_replay_fn fn, void *arg)
{
    return wal_open_unforced(path, fn, arg, NULL);
}

wal *wal_open_unforced(const char *path, wal_replay_fn fn, void *arg, const char *unforced)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("wal %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Every start, not only when this open created the file: an earlier
     * start may have created it and died (or failed) before its directory
     * entry was synced, and records acknowledged later would be durable in
     * a file that a power cut can take away. */
    if (!fsync_parent_dir(path)) {
        close(fd);
        return NULL;
    }
    unsigned char *buf;
    size_t size, valid_end;
    if (!wal_read_all(path, fd, &buf, &size)) {
        close(fd);
        return NULL;
    }
    bool ok = wal_replay(path, buf, size, fn, arg, unforced, &valid_end);
    /* Only zeros after the last record: preallocated space (or a record whose
     * bytes never reached the disk, which no sync append acknowledged). */
    bool zero_tail = ok && valid_end < size && all_zero(buf + valid_end, size - valid_end);
    /* What we replayed may be in the page cache only, and not only after a
     * process crash: after a failed fdatasync (the previous process stopped
     * on it) Linux marks the pages clean though the disk never got them, and
     * a new fdatasync finds nothing to write. Writing the replayed records
     * back makes them dirty again, so the fdatasync below really writes
     * them (or fails, and we refuse to start on a log we cannot trust). */
    if (ok && valid_end > 0 && !pwrite_all(fd, buf, valid_end, 0)) {
        log_error("wal %s: cannot rewrite the replayed records: %s", path, strerror(errno));
        ok = false;
    }
    free(buf);
    if (!ok) {
        close(fd);
        return NULL;
    }
    if (valid_end < size && !zero_tail) {
        log_warn("wal %s: torn tail at offset %zu (%zu bytes) truncated", path, valid_end,
                 size - valid_end);
        if (ftruncate(fd, (off_t)valid_end) != 0 || fsync(fd) != 0) {
            log_error("wal %s: cannot truncate torn tail: %s", path, strerror(errno));
            close(fd);
            return NULL;
        }
    } else if (size > 0 && fdatasync(fd) != 0) {
        /* What we replayed (and a zero tail) may only be in the page cache
         * (crash of the process, not the machine): make it durable before
         * anyone acts on it. */
        log_error("wal %s: fdatasync failed: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    wal *w = xcalloc(1, sizeof(*w));
    w->path = xstrdup(path);
    w->fd = fd;
    w->write_off = valid_end;
    w->alloc_end = zero_tail ? size : valid_end;
    w->flushed_upto = valid_end;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return w;
}

/* Extend the file with zeros so that [write_off, write_off + need) lies inside
 * it. Called with w->mu held. Best effort: on failure the append simply grows
 * the file, as without preallocation (a partial extension is zeros, which is
 * a valid tail). */
static void wal_extend(wal *w, uint64_t need)
{
    static const unsigned char zeros[64 * 1024];
    uint64_t target = w->alloc_end;
    while (target < w->write_off + need)
        target += WAL_PREALLOC;
    for (uint64_t off = w->alloc_end; off < target;) {
        size_t n = target - off < sizeof(zeros) ? (size_t)(target - off) : sizeof(zeros);
        if (!pwrite_all(w->fd, zeros, n, off)) {
            log_warn("wal %s: cannot preallocate %llu bytes at offset %llu: %s; appending "
                     "without",
                     w->path, (unsigned long long)(target - w->alloc_end),
                     (unsigned long long)w->alloc_end, strerror(errno));
            return;
        }
        off += n;
    }
    w->alloc_end = target;
}

bool wal_append(wal *w, uint8_t type, const void *payload, size_t len, bool sync)
{
    if (type == 0 || len > WAL_MAX_RECORD) {
        log_error("wal %s: bad record (type %u, %zu bytes)", w->path, (unsigned)type, len);
        return false;
    }
    size_t reclen = WAL_HDR + len;
    unsigned char stackbuf[512];
    unsigned char *rec = reclen <= sizeof(stackbuf) ? stackbuf : xmalloc(reclen);
    record_encode(rec, type, payload, len);

    bool ok = true;
    pthread_mutex_lock(&w->mu);
    while (w->rewriting)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->failed) {
        log_error("wal %s: log failed earlier; refusing append", w->path);
        ok = false;
        goto out;
    }
    if (w->write_off + reclen > w->alloc_end)
        wal_extend(w, reclen);
    if (!pwrite_all(w->fd, rec, reclen, w->write_off)) {
        int e = errno;
        /* Never leave half a record for the next one to follow. */
        if (ftruncate(w->fd, (off_t)w->write_off) != 0)
            w->failed = true;
        w->alloc_end = w->write_off;
        log_error("wal %s: write of %zu bytes failed: %s%s", w->path, reclen, strerror(e),
                  w->failed ? " (log poisoned)" : "");
        ok = false;
        goto out;
    }
    w->write_off += reclen;
    if (w->alloc_end < w->write_off)
        w->alloc_end = w->write_off; /* grew the file: extension failed */
    uint64_t need = w->write_off;
    uint64_t gen = w->gen;
    if (!sync)
        goto out;

    for (;;) {
        if (w->gen != gen)
            break; /* a rewrite flushed our record before replacing the file */
        if (w->flushed_upto >= need)
            break;
        if (w->failed) {
            log_error("wal %s: fdatasync failed earlier; record not durable", w->path);
            ok = false;
            break;
        }
        if (w->flushing || w->rewriting) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        /* Become the leader: flush everything written so far. */
        w->flushing = true;
        uint64_t target = w->write_off;
        int fd = w->fd;
        pthread_mutex_unlock(&w->mu);
        fault_point("wal-sync"); /* unit tests: a slow sync, others queue behind it */
        int r, e;
        if (fault_fails("wal-fdatasync")) {
            r = -1; /* a simulated EIO: the record was written, its sync failed */
            e = EIO;
        } else {
            r = fdatasync(fd);
            e = errno;
        }
        pthread_mutex_lock(&w->mu);
        w->flushing = false;
        w->syncs++;
        if (r == 0) {
            if (target > w->flushed_upto)
                w->flushed_upto = target;
        } else {
            w->failed = true;
            log_error("wal %s: fdatasync failed: %s (log poisoned)", w->path, strerror(e));
        }
        pthread_cond_broadcast(&w->cv);
    }
out:
    pthread_mutex_unlock(&w->mu);
    if (rec != stackbuf)
        free(rec);
    return ok;
}

bool wal_rewrite(wal *w, size_t n, const uint8_t *types, const void *const *payloads,
                 const size_t *lens)
{
    /* Encode outside the lock. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (types[i] == 0 || lens[i] > WAL_MAX_RECORD) {
            log_error("wal %s: rewrite: bad record %zu (type %u, %zu bytes)", w->path, i,
                      (unsigned)types[i], lens[i]);
            return false;
        }
        total += WAL_HDR + lens[i];
    }
    unsigned char *buf = xmalloc(total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        record_encode(buf + off, types[i], payloads[i], lens[i]);
        off += WAL_HDR + lens[i];
    }
    char *tmp = xasprintf("%s.tmp", w->path);
    bool ok = false;
    int nfd = -1;

    pthread_mutex_lock(&w->mu);
    while (w->rewriting)
        pthread_cond_wait(&w->cv, &w->mu);
    w->rewriting = true;
    while (w->flushing)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->failed) {
        log_error("wal %s: log failed earlier; refusing rewrite", w->path);
        goto out;
    }
    /* 1. Make every record already written durable, so that pending sync
     *    appenders can be told "done" whatever the new content is. */
    if (w->flushed_upto < w->write_off) {
        if (fdatasync(w->fd) != 0) {
            w->failed = true;
            log_error("wal %s: fdatasync failed: %s (log poisoned)", w->path, strerror(errno));
            goto out;
        }
        w->syncs++;
        w->flushed_upto = w->write_off;
    }
    /* 2. Write and fsync the new content. */
    nfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0) {
        log_error("wal %s: rewrite: cannot create %s: %s", w->path, tmp, strerror(errno));
        goto out;
    }
    if (!pwrite_all(nfd, buf, total, 0) || fsync(nfd) != 0) {
        log_error("wal %s: rewrite: cannot write %s: %s", w->path, tmp, strerror(errno));
        goto out_unlink;
    }
    /* 3. Rename over the log; from here on the new file is the log. */
    if (rename(tmp, w->path) != 0) {
        log_error("wal %s: rewrite: cannot rename %s: %s", w->path, tmp, strerror(errno));
        goto out_unlink;
    }
    close(w->fd);
    w->fd = nfd;
    nfd = -1;
    w->write_off = total;
    w->alloc_end = total;
    w->flushed_upto = total;
    w->gen++;
    /* 4. Make the rename durable. */
    ok = !fault_fails("wal-dir-fsync") && fsync_parent_dir(w->path);
    if (!ok) {
        /* The rename may not survive a power cut: the old file would come
         * back without whatever is appended to the new one from now on. Not
         * retried (a failed fsync is not trustworthy): poisoned, so the next
         * sync append fails and its caller stops, as after fdatasync. */
        w->failed = true;
        log_error("wal %s: rewrite: directory fsync failed (log poisoned); see above", w->path);
    }
    goto out;

out_unlink:
    close(nfd);
    nfd = -1;
    unlink(tmp);
out:
    w->rewriting = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(tmp);
    free(buf);
    return ok;
}

uint64_t wal_bytes(wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->write_off;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t wal_syncs(wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->syncs;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void wal_close(wal *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->flushing || w->rewriting)
        pthread_cond_wait(&w->cv, &w->mu);
    /* Trim the preallocated zeros: a cleanly closed log is its records. Not
     * fsync'd: a zero tail that comes back after a crash is a valid end. */
    if (!w->failed && w->alloc_end > w->write_off && ftruncate(w->fd, (off_t)w->write_off) != 0)
        log_warn("wal %s: cannot trim preallocated tail: %s", w->path, strerror(errno));
    pthread_mutex_unlock(&w->mu);
    close(w->fd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->path);
    free(w);
}
