/*
 * test_wal.c - unit tests for wal.c (framing, replay, torn tail, corruption,
 * group commit with threads, rewrite) and durable.c.
 * Invariants checked: a record acknowledged by wal_append(sync) is replayed
 * intact and in order; a torn tail is truncated with a WARN; corruption before
 * more data refuses the open; rewrite leaves exactly the given records; a
 * failed fdatasync poisons the log.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "durable.h"
#include "fault.h"
#include "log.h"
#include "unit_util.h"
#include "wal.h"

typedef struct {
    size_t n;
    uint8_t types[4096];
    char *payloads[4096];
    size_t lens[4096];
    size_t reject_at; /* 1-based; 0 = never */
} collected;

static bool collect(uint8_t type, const void *payload, size_t len, void *arg)
{
    collected *c = arg;
    if (c->reject_at && c->n + 1 == c->reject_at)
        return false;
    if (c->n < ARRAY_LEN(c->types)) {
        c->types[c->n] = type;
        c->payloads[c->n] = xmalloc(len + 1);
        memcpy(c->payloads[c->n], payload, len);
        c->payloads[c->n][len] = '\0';
        /* wal.c promises a NUL after the payload */
        ck_assert_int_eq(((const char *)payload)[len], '\0');
        c->lens[c->n] = len;
    }
    c->n++;
    return true;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n && i < ARRAY_LEN(c->types); i++)
        free(c->payloads[i]);
    memset(c, 0, sizeof(*c));
}

static char *dir, *path;

static void setup(void)
{
    log_init("test_wal", LOG_INFO);
    dir = unit_tmpdir();
    path = xasprintf("%s/decisions.log", dir);
}

static void teardown(void)
{
    unit_rm_rf(dir);
    free(dir);
    free(path);
}

/* Open the log and write three records; the log stays open. */
static wal *open_three(void)
{
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "{\"gid\":\"a\"}", 11, true));
    ck_assert(wal_append(w, 'E', "", 0, false));
    ck_assert(wal_append(w, 'C', "third", 5, true));
    ck_assert_uint_eq(wal_bytes(w), (9 + 11) + 9 + (9 + 5));
    return w;
}

/* Write three records and close. Returns the file size. */
static off_t write_three(void)
{
    wal *w = open_three();
    uint64_t bytes = wal_bytes(w);
    wal_close(w);
    ck_assert_int_eq((int)unit_file_size(path), (int)bytes);
    return (off_t)bytes;
}

static collected *reopen_expect(size_t n)
{
    static collected c;
    collected_free(&c);
    wal *w = wal_open(path, collect, &c);
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(c.n, n);
    wal_close(w);
    return &c;
}

/* wal_open(path) with its log lines captured into *err (caller frees). */
static wal *open_captured(collected *c, char **err)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    wal *w = wal_open(path, collect, c);
    *err = unit_capture_end(&cap);
    return w;
}

/* Open path expecting n records replayed and, in the log lines, want (or no
 * warning at all when want is NULL). */
static wal *open_expect_logged(collected *c, size_t n, const char *want)
{
    char *err;
    wal *w = open_captured(c, &err);
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(c->n, n);
    if (want)
        ck_assert_ptr_nonnull(strstr(err, want));
    else
        ck_assert_ptr_null(strstr(err, "WARN"));
    free(err);
    return w;
}

/* Append payload to w as its nth record, close, and check a reopen replays
 * n records ending with it. Frees c. */
static void append_close_check(wal *w, collected *c, const char *payload, size_t n)
{
    ck_assert(wal_append(w, 'C', payload, strlen(payload), true));
    wal_close(w);
    collected_free(c);
    collected *c2 = reopen_expect(n);
    ck_assert_str_eq(c2->payloads[n - 1], payload);
    collected_free(c2);
}

START_TEST(test_append_replay)
{
    write_three();
    collected *c = reopen_expect(3);
    ck_assert_int_eq(c->types[0], 'C');
    ck_assert_str_eq(c->payloads[0], "{\"gid\":\"a\"}");
    ck_assert_int_eq(c->types[1], 'E');
    ck_assert_uint_eq(c->lens[1], 0);
    ck_assert_str_eq(c->payloads[2], "third");
    /* Appending after a reopen continues the log. */
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'X', "4", 1, true));
    wal_close(w);
    c = reopen_expect(4);
    ck_assert_str_eq(c->payloads[3], "4");
    collected_free(c);
}
END_TEST

/* A failed fdatasync (fault point wal-fdatasync=error: EIO) poisons the log:
 * that append and every later one fail, sync or not, and nothing is retried.
 * The record's bytes were written; a reopen (a restart) finds it, which is
 * why the coordinator stops rather than guess (twopc.c, step 4). */
START_TEST(test_fdatasync_error_poisons)
{
    static const char *const points[] = {"wal-fdatasync=error", NULL};
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "1", 1, true));
    ck_assert(fault_init("wal-fdatasync=error", points));
    ck_assert(!wal_append(w, 'C', "2", 1, true));
    ck_assert(!wal_append(w, 'E', "3", 1, false));
    ck_assert(!wal_append(w, 'C', "4", 1, true));
    ck_assert(fault_init(NULL, points));
    ck_assert(!wal_append(w, 'C', "5", 1, true)); /* still poisoned without the fault */
    wal_close(w);
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "fdatasync failed: Input/output error (log poisoned)"));
    free(out);
    collected *c = reopen_expect(2);
    ck_assert_str_eq(c->payloads[1], "2");
    collected_free(c);
}
END_TEST

START_TEST(test_bad_appends)
{
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(!wal_append(w, 0, "x", 1, true));
    char *big = xcalloc(1, WAL_MAX_RECORD + 1);
    ck_assert(!wal_append(w, 'C', big, WAL_MAX_RECORD + 1, true));
    ck_assert(wal_append(w, 'C', big, WAL_MAX_RECORD, true));
    free(big);
    wal_close(w);
    collected *c = reopen_expect(1);
    ck_assert_uint_eq(c->lens[0], WAL_MAX_RECORD);
    collected_free(c);
}
END_TEST

START_TEST(test_torn_tail_truncated)
{
    off_t good = write_three();
    /* A header promising 100 bytes followed by only 10. */
    unsigned char torn[19] = {100, 0, 0, 0, 1, 2, 3, 4, 'C', 'p', 'a', 'r', 't', 'i', 'a', 'l'};
    unit_append_bytes(path, torn, sizeof(torn));
    collected c = {0};
    wal *w = open_expect_logged(&c, 3, "torn tail at offset 43 (19 bytes) truncated");
    ck_assert_int_eq((int)unit_file_size(path), (int)good);
    append_close_check(w, &c, "after", 4);
}
END_TEST

START_TEST(test_torn_header)
{
    off_t good = write_three();
    unit_append_bytes(path, "\x05\x00\x00", 3); /* partial header */
    collected *c = reopen_expect(3);
    ck_assert_int_eq((int)unit_file_size(path), (int)good);
    collected_free(c);
}
END_TEST

START_TEST(test_bad_crc_last_record_is_torn)
{
    off_t good = write_three();
    /* Flip one payload byte of the last record: complete but bad, nothing after. */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)pwrite(fd, "X", 1, good - 1), 1);
    close(fd);
    collected *c = reopen_expect(2);
    ck_assert_int_eq((int)unit_file_size(path), (int)(good - (9 + 5)));
    collected_free(c);
}
END_TEST

START_TEST(test_zero_tail_is_end)
{
    /* Zeros after the last record are the log's clean end (preallocated
     * space): no warning, appends go on at the first zero, close trims. */
    off_t good = write_three();
    char zeros[4096] = {0};
    unit_append_bytes(path, zeros, sizeof(zeros));
    collected c = {0};
    wal *w = open_expect_logged(&c, 3, NULL);
    ck_assert_uint_eq(wal_bytes(w), (uint64_t)good);
    ck_assert_int_eq((int)unit_file_size(path), (int)good + 4096);
    append_close_check(w, &c, "next", 4);
    ck_assert_int_eq((int)unit_file_size(path), (int)good + 9 + 4);
}
END_TEST

/* Copy path to <dir>/crashed.log as the disk would hold it if the process
 * died now (no wal_close, so the preallocated zeros are still there). */
static char *snapshot_as_crashed(void)
{
    char *data = NULL;
    size_t len = 0;
    bool missing = false;
    ck_assert(read_whole_file(path, &data, &len, &missing));
    char *copy = xasprintf("%s/crashed.log", dir);
    int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, data, len), (int)len);
    close(fd);
    free(data);
    return copy;
}

START_TEST(test_preallocated_log_after_crash)
{
    wal *w = open_three();
    uint64_t bytes = wal_bytes(w);
    /* The appends overwrote zeros written ahead of them. */
    ck_assert_int_ge((int)unit_file_size(path), 1 << 20);
    char *crashed = snapshot_as_crashed();
    wal_close(w);
    ck_assert_int_eq((int)unit_file_size(path), (int)bytes); /* trimmed */

    /* Reopen what a crash left: every record, no warning, same end. */
    free(path);
    path = crashed; /* teardown frees it */
    collected c = {0};
    wal *w2 = open_expect_logged(&c, 3, NULL);
    ck_assert_str_eq(c.payloads[2], "third");
    ck_assert_uint_eq(wal_bytes(w2), bytes);
    append_close_check(w2, &c, "after", 4);
}
END_TEST

START_TEST(test_preallocated_torn_record)
{
    /* A record torn inside the preallocated zeros: its first bytes reached
     * the disk, the rest is still zero. That is a torn tail (WARN). */
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "one", 3, true));
    ck_assert(wal_append(w, 'C', "two", 3, true));
    uint64_t good = wal_bytes(w);
    char *crashed = snapshot_as_crashed();
    wal_close(w);
    int fd = open(crashed, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char torn[16] = {100, 0, 0, 0, 1, 2, 3, 4, 'C', 'p', 'a', 'r', 't', 'i', 'a', 'l'};
    ck_assert_int_eq((int)pwrite(fd, torn, sizeof(torn), (off_t)good), (int)sizeof(torn));
    close(fd);
    free(path);
    path = crashed;
    collected c = {0};
    wal *w2 = open_expect_logged(&c, 2, "torn tail");
    ck_assert_int_eq((int)unit_file_size(path), (int)good);
    append_close_check(w2, &c, "three", 3);
}
END_TEST

START_TEST(test_preallocation_steps)
{
    /* 300 records of 8 KiB cross two extension steps of 1 MiB. */
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    char *payload = xmalloc(8192);
    for (int i = 0; i < 300; i++) {
        memset(payload, 'a' + i % 26, 8192);
        ck_assert(wal_append(w, 'C', payload, 8192, i % 50 == 49));
    }
    uint64_t bytes = wal_bytes(w);
    ck_assert_uint_eq(bytes, 300u * (9 + 8192));
    ck_assert_int_ge((int)unit_file_size(path), (int)bytes);
    ck_assert_int_eq((int)(unit_file_size(path) % (1 << 20)), 0);
    wal_close(w);
    free(payload);
    collected *c = reopen_expect(300);
    ck_assert_uint_eq(c->lens[299], 8192);
    ck_assert_int_eq(c->payloads[299][0], (char)('a' + 299 % 26));
    collected_free(c);
}
END_TEST

START_TEST(test_corrupt_middle_rejected)
{
    off_t good = write_three();
    /* Flip a byte inside the first record's payload: more data follows. */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)pwrite(fd, "Z", 1, 12), 1);
    close(fd);
    collected c = {0};
    char *err;
    ck_assert_ptr_null(open_captured(&c, &err));
    ck_assert_ptr_nonnull(strstr(err, "corrupt record at offset 0"));
    free(err);
    /* Nothing was truncated. */
    ck_assert_int_eq((int)unit_file_size(path), (int)good);
    collected_free(&c);
}
END_TEST

/* Overwrite [off, off + len) of the log: a write that never reached the disk
 * (zeros) or garbage. */
static void overwrite_at(size_t off, const void *bytes, size_t len)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)pwrite(fd, bytes, len, (off_t)off), (int)len);
    close(fd);
}

static void zero_at(size_t off, size_t len)
{
    static const char zeros[4096];
    ck_assert_uint_le(len, sizeof(zeros));
    overwrite_at(off, zeros, len);
}

/* The trace of a power cut in the middle of a flush (or of background
 * writeback): a forced 'C', then unforced 'E's (the last one of type
 * last_type) written across a sector boundary; the disk kept the later
 * sector but not the one before it: [hole, 512) is zeroed. */
static size_t write_with_hole(uint8_t last_type)
{
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "{\"gid\":\"kept\"}", 14, true));
    size_t hole = (size_t)wal_bytes(w);
    char payload[64];
    for (int i = 0; i < 40; i++) { /* 40 x ~30 bytes: well past offset 512 */
        int n = snprintf(payload, sizeof(payload), "{\"gid\":\"lost-%02d\"}", i);
        ck_assert(wal_append(w, i == 39 ? last_type : 'E', payload, (size_t)n, false));
    }
    wal_close(w);
    ck_assert_uint_lt(512 + 64, (size_t)unit_file_size(path));
    zero_at(hole, 512 - hole);
    return hole;
}

/* Open as the decision log does ('E' never forced), log lines into *err. */
static wal *open_unforced_captured(collected *c, char **err)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    wal *w = wal_open_unforced(path, collect, c, "E");
    *err = unit_capture_end(&cap);
    return w;
}

/* The log is refused as corrupt, left as it was, then removed. unforced:
 * open with wal_open_unforced(.., "E"), else with wal_open. */
static void expect_refused_and_remove(bool unforced)
{
    collected c = {0};
    char *err;
    off_t size = unit_file_size(path);
    wal *w = unforced ? open_unforced_captured(&c, &err) : open_captured(&c, &err);
    ck_assert_ptr_null(w);
    ck_assert_msg(strstr(err, "refusing to open") != NULL, "log: %s", err);
    free(err);
    ck_assert_int_eq((int)unit_file_size(path), (int)size); /* nothing cut */
    collected_free(&c);
    unlink(path);
}

START_TEST(test_power_cut_hole_before_unforced_records_is_cut)
{
    size_t hole = write_with_hole('E');
    collected c = {0};
    char *err;
    wal *w = open_unforced_captured(&c, &err);
    ck_assert_msg(w != NULL, "refused: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "unwritten hole at offset"));
    free(err);
    ck_assert_uint_eq(c.n, 1); /* the forced 'C' before the hole */
    ck_assert_str_eq(c.payloads[0], "{\"gid\":\"kept\"}");
    ck_assert_uint_eq(wal_bytes(w), hole);
    collected_free(&c);
    /* Appends go on where the hole began. */
    append_close_check(w, &c, "{\"gid\":\"next\"}", 2);

    /* A hole shorter than a header (a sector's last 4 bytes) counts too. */
    unlink(path);
    w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    char fill[512];
    memset(fill, 'e', sizeof(fill));
    ck_assert(wal_append(w, 'C', fill, 512 - 9 - 4, true)); /* 0..508, forced */
    for (int i = 0; i < 5; i++)                              /* 508..: lost, then kept */
        ck_assert(wal_append(w, 'E', "{\"gid\":\"x\"}", 11, false));
    wal_close(w);
    zero_at(508, 4);
    w = open_unforced_captured(&c, &err);
    ck_assert_msg(w != NULL, "refused: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "unwritten hole at offset 508"));
    free(err);
    ck_assert_uint_eq(c.n, 1);
    wal_close(w);
    collected_free(&c);
}
END_TEST

/* Bytes this process handed to write(2)/pwrite(2) so far (/proc/self/io). */
static long long written_chars(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    ck_assert_ptr_nonnull(f);
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "wchar: %lld", &v) == 1)
            break;
    fclose(f);
    ck_assert_int_ge(v, 0);
    return v;
}

START_TEST(test_open_writes_replayed_records_back)
{
    /* After a failed fdatasync the kernel may keep the records as clean
     * pages the disk never got; a reopen's fdatasync alone would skip them.
     * wal_open writes what it replayed back before it syncs. */
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    char fill[4000];
    memset(fill, 'r', sizeof(fill));
    for (int i = 0; i < 50; i++)
        ck_assert(wal_append(w, 'C', fill, sizeof(fill), false));
    uint64_t bytes = wal_bytes(w);
    wal_close(w);
    long long before = written_chars();
    w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_ge(written_chars() - before, (long long)bytes);
    wal_close(w);
}
END_TEST

/* A fresh log of forced 'C' records of these payload sizes (0: stop),
 * filled with 'c'. */
static void fresh_log(size_t a, size_t b, size_t c)
{
    static char fill[1024];
    memset(fill, 'c', sizeof(fill));
    unlink(path);
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    const size_t lens[] = {a, b, c};
    for (size_t i = 0; i < 3 && lens[i] > 0; i++)
        ck_assert(wal_append(w, 'C', fill, lens[i], true));
    wal_close(w);
}

/* Open (cut at the hole expected at `hole`), check the warning names
 * `forced` records of forced types, that only the first `kept` records were
 * replayed, and that appends go on at the hole; then remove the log. */
static void expect_cut_at(size_t hole, size_t forced, size_t kept)
{
    collected c = {0};
    char *err;
    wal *w = open_unforced_captured(&c, &err);
    ck_assert_msg(w != NULL, "refused: %s", err);
    char *want = xasprintf("unwritten hole at offset %zu", hole);
    ck_assert_msg(strstr(err, want) != NULL, "log: %s", err);
    free(want);
    want = xasprintf(", %zu of them of forced types", forced);
    ck_assert_msg(strstr(err, want) != NULL, "log: %s", err);
    free(want);
    free(err);
    ck_assert_uint_eq(c.n, kept);
    ck_assert_uint_eq(wal_bytes(w), hole);
    wal_close(w);
    collected_free(&c);
    unlink(path);
}

START_TEST(test_power_cut_lost_header_of_last_record_is_torn)
{
    /* The last record crosses a sector boundary; the power cut kept the
     * later sector (the rest of its payload) but not the one with its
     * header. Nothing after the previous record was acknowledged: a torn
     * tail, not a reason to refuse to start. */
    fresh_log(14, 700, 0); /* 0..23, 23..732 */
    zero_at(23, 512 - 23);
    collected c = {0};
    wal *w = open_expect_logged(&c, 1, "torn tail at offset 23");
    ck_assert_uint_eq(wal_bytes(w), 23);
    collected_free(&c);
    append_close_check(w, &c, "{\"gid\":\"next\"}", 2);

    /* A header across a sector boundary (508..517): both sectors lost, a
     * later one written. Torn too. */
    fresh_log(499, 700, 0); /* 0..508, 508..1217 */
    zero_at(508, 1024 - 508);
    w = open_expect_logged(&c, 1, "torn tail at offset 508");
    collected_free(&c);
    wal_close(w);

    /* Only the header zeroed, its payload beside it in the same sector: not
     * what a lost sector leaves, so corruption. */
    fresh_log(14, 700, 0);
    zero_at(23, 9);
    expect_refused_and_remove(true);

    /* A whole record after the lost header: not a torn tail. Without the
     * caller's opt-in it is corruption; with it, the unwritten hole of a
     * flush that never returned, the forced record after it included (the
     * same bytes a disk that LOST a flushed sector would leave: fdatasync is
     * trusted, as PostgreSQL trusts it; wal.c, unwritten_hole). */
    fresh_log(14, 700, 14); /* 0..23, 23..732, 732..755 */
    zero_at(23, 512 - 23);
    collected c0 = {0};
    char *err;
    ck_assert_ptr_null(open_captured(&c0, &err));
    ck_assert_msg(strstr(err, "refusing to open") != NULL, "log: %s", err);
    free(err);
    collected_free(&c0);
    expect_cut_at(23, 1, 1);
}
END_TEST

/* A fresh log: a forced 'C' of forced_len bytes, an unforced 'E' of
 * big_len, then three small records ('E', 'C', 'E'): the shape of a group
 * flush whose middle a power cut may lose. */
static void write_forced_big_smalls(size_t forced_len, size_t big_len)
{
    static char fill[1400];
    memset(fill, 'e', sizeof(fill));
    ck_assert_uint_le(forced_len, sizeof(fill));
    ck_assert_uint_le(big_len, sizeof(fill));
    unlink(path);
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', fill, forced_len, true));
    ck_assert(wal_append(w, 'E', fill, big_len, false));
    for (int i = 0; i < 3; i++)
        ck_assert(wal_append(w, i == 1 ? 'C' : 'E', "{\"gid\":\"x\"}", 11, false));
    wal_close(w);
}

START_TEST(test_power_cut_hole_before_forced_records_is_cut)
{
    /* A forced 'C' after the hole: its fdatasync never returned (one that
     * had would have covered the hole), so no one acted on it. */
    size_t hole = write_with_hole('C');
    expect_cut_at(hole, 1, 1);
    /* A forced record that begins right at the sector boundary, its header
     * starting with zero bytes (length 512 = 00 02 00 00): it is seen, not
     * taken for part of the hole. */
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "{\"gid\":\"kept\"}", 14, true)); /* 0..23 */
    char fill[1400];
    memset(fill, 'e', sizeof(fill));
    ck_assert(wal_append(w, 'E', fill, 512 - 23 - 9, false)); /* 23..512 */
    ck_assert_uint_eq(wal_bytes(w), 512);
    ck_assert(wal_append(w, 'C', fill, 512, false)); /* 512..1033: forced type */
    ck_assert(wal_append(w, 'E', "{}", 2, false));
    wal_close(w);
    zero_at(23, 512 - 23);
    expect_cut_at(23, 1, 1);
    /* The bad record's header reached the disk, a later sector of it did
     * not: a whole zero sector inside the span its header claims. */
    write_forced_big_smalls(14, 1300); /* 0..23, 23..1332, then 3 small */
    zero_at(512, 512);                  /* [512, 1024): inside the big record */
    expect_cut_at(23, 1, 1);
    /* A header across the boundary (508..517), its length written, the
     * sector with its crc and type lost, records after it written. */
    write_forced_big_smalls(512 - 9 - 4, 600); /* 0..508, 508..1117, then 3 small */
    zero_at(512, 512);
    expect_cut_at(508, 1, 1);
    /* A header across the boundary (506..515) that reached the disk whole,
     * a later sector of its payload lost. */
    write_forced_big_smalls(512 - 9 - 6, 1100); /* 0..506, 506..1615, then 3 small */
    zero_at(1024, 512);
    expect_cut_at(506, 1, 1);
}
END_TEST

START_TEST(test_power_cut_hole_cases_that_stay_corruption)
{
    /* A hole, but the caller did not opt in (wal_open). */
    write_with_hole('E');
    expect_refused_and_remove(false);
    /* Garbage (not zeros) where the hole would be: real corruption. */
    write_with_hole('E');
    overwrite_at(40, "\x01", 1);
    expect_refused_and_remove(true);
    /* A record whose header reached the disk with a byte flipped later in
     * it, no zero sector: corruption, not a lost sector. */
    write_forced_big_smalls(14, 1300); /* 0..23, 23..1332, then 3 small */
    overwrite_at(700, "f", 1);
    expect_refused_and_remove(true);
}
END_TEST

START_TEST(test_corrupt_length_rejected)
{
    write_three();
    /* Second record's length field made huge, with more records after it... */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char huge[4] = {0xff, 0xff, 0xff, 0x7f};
    ck_assert_int_eq((int)pwrite(fd, huge, 4, 9 + 11), 4);
    close(fd);
    /* ...is no torn write (unwritten bytes read as zeros, which only make a
     * length smaller), so it is corruption: refused, the records after it
     * are not dropped. */
    collected c = {0};
    ck_assert_ptr_null(wal_open(path, collect, &c));
    collected_free(&c);
    ck_assert_int_eq((int)unit_file_size(path), (9 + 11) + 9 + (9 + 5));
    /* A type-0 record with data after it is corruption too. */
    unlink(path);
    write_three();
    fd = open(path, O_RDWR);
    ck_assert_int_eq((int)pwrite(fd, "\0", 1, 9 + 11 + 8), 1);
    close(fd);
    collected c2 = {0};
    ck_assert_ptr_null(wal_open(path, collect, &c2));
    collected_free(&c2);
    /* A length made larger but still plausible, reaching past EOF over the
     * records after it: whole records inside what it claims make it no torn
     * tail either (before, all three were cut as one). */
    unlink(path);
    write_three();
    unsigned char more[4] = {0x00, 0x04, 0x00, 0x00}; /* 1024 */
    overwrite_at(0, more, 4);
    collected c3 = {0};
    char *err;
    ck_assert_ptr_null(open_captured(&c3, &err));
    ck_assert_msg(strstr(err, "refusing to open") != NULL, "log: %s", err);
    free(err);
    collected_free(&c3);
    ck_assert_int_eq((int)unit_file_size(path), (9 + 11) + 9 + (9 + 5));
}
END_TEST

START_TEST(test_replay_callback_rejects)
{
    write_three();
    collected c = {0};
    c.reject_at = 2;
    ck_assert_ptr_null(wal_open(path, collect, &c));
    collected_free(&c);
}
END_TEST

#define GC_THREADS 8
#define GC_PER_THREAD 150

static wal *gc_wal;

static void *gc_worker(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < GC_PER_THREAD; i++) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "t%ld-%d", id, i);
        if (!wal_append(gc_wal, 'C', buf, (size_t)n, true))
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_group_commit_threads)
{
    gc_wal = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(gc_wal);
    pthread_t th[GC_THREADS];
    for (long i = 0; i < GC_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, gc_worker, (void *)i), 0);
    for (int i = 0; i < GC_THREADS; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_ptr_null(rv);
    }
    uint64_t syncs = wal_syncs(gc_wal);
    ck_assert_uint_ge(syncs, 1);
    ck_assert_uint_le(syncs, GC_THREADS * GC_PER_THREAD);
    wal_close(gc_wal);
    collected c = {0};
    wal *w = wal_open(path, collect, &c);
    ck_assert_ptr_nonnull(w);
    wal_close(w);
    ck_assert_uint_eq(c.n, GC_THREADS * GC_PER_THREAD);
    /* Per-thread order is preserved and nothing is lost or duplicated. */
    int next[GC_THREADS] = {0};
    for (size_t i = 0; i < c.n; i++) {
        long id;
        int seq;
        ck_assert_int_eq(sscanf(c.payloads[i], "t%ld-%d", &id, &seq), 2);
        ck_assert(id >= 0 && id < GC_THREADS);
        ck_assert_int_eq(seq, next[id]);
        next[id]++;
    }
    collected_free(&c);
}
END_TEST

/* Grouping itself, which the test above cannot tell from one fdatasync per
 * record: every fdatasync is made slow (wal-sync pauses the leader before
 * it), and eight threads each append one sync record at once. The first
 * leader syncs what was written when it started; everyone who wrote while it
 * slept waits, and the next leader covers them all: 2 syncs, 3 should a
 * thread be scheduled late; one sync per record would be 8. */
#define GG_THREADS 8
static pthread_barrier_t gg_barrier;

static void *gg_worker(void *arg)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "g%ld", (long)arg);
    pthread_barrier_wait(&gg_barrier);
    return wal_append(gc_wal, 'C', buf, (size_t)n, true) ? NULL : (void *)1;
}

START_TEST(test_group_commit_groups)
{
    static const char *const points[] = {"wal-sync", NULL};
    gc_wal = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(gc_wal);
    unit_capture cap;
    unit_capture_begin(&cap, dir); /* the pause's log lines */
    ck_assert(fault_init("wal-sync=pause:400", points));
    ck_assert_int_eq(pthread_barrier_init(&gg_barrier, NULL, GG_THREADS), 0);
    pthread_t th[GG_THREADS];
    for (long i = 0; i < GG_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, gg_worker, (void *)i), 0);
    for (int i = 0; i < GG_THREADS; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_ptr_null(rv);
    }
    ck_assert(fault_init(NULL, points));
    pthread_barrier_destroy(&gg_barrier);
    free(unit_capture_end(&cap));
    uint64_t syncs = wal_syncs(gc_wal);
    wal_close(gc_wal);
    ck_assert_msg(syncs >= 1 && syncs <= 3, "%llu fdatasyncs for %d records appended at once",
                  (unsigned long long)syncs, GG_THREADS);
    collected *c = reopen_expect(GG_THREADS);
    collected_free(c);
}
END_TEST

/* A directory fsync that fails after the rename poisons the log: the rename
 * may not survive a power cut, so nothing appended after it may be called
 * durable. The rewritten content itself is in the file. */
START_TEST(test_rewrite_dir_fsync_error_poisons)
{
    static const char *const points[] = {"wal-dir-fsync=error", NULL};
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert(wal_append(w, 'C', "old", 3, true));
    const uint8_t types[1] = {'C'};
    const void *payloads[1] = {"kept"};
    const size_t lens[1] = {4};
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(fault_init("wal-dir-fsync=error", points));
    ck_assert(!wal_rewrite(w, 1, types, payloads, lens));
    ck_assert(fault_init(NULL, points));
    ck_assert(!wal_append(w, 'C', "after", 5, true));
    ck_assert(!wal_append(w, 'E', "after", 5, false));
    wal_close(w);
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "directory fsync failed (log poisoned)"));
    free(out);
    collected *c = reopen_expect(1);
    ck_assert_str_eq(c->payloads[0], "kept");
    collected_free(c);
}
END_TEST

START_TEST(test_rewrite)
{
    wal *w = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < 10; i++)
        ck_assert(wal_append(w, 'C', "old-record", 10, i % 2 == 0));
    const uint8_t types[2] = {'C', 'E'};
    const void *payloads[2] = {"keep-1", "keep-22"};
    const size_t lens[2] = {6, 7};
    uint64_t syncs_before = wal_syncs(w);
    ck_assert(wal_rewrite(w, 2, types, payloads, lens));
    ck_assert_uint_gt(wal_syncs(w), syncs_before); /* the new file was synced */
    ck_assert_uint_eq(wal_bytes(w), (9 + 6) + (9 + 7));
    ck_assert(wal_append(w, 'C', "new", 3, true));
    wal_close(w);
    char *tmp = xasprintf("%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    free(tmp);
    collected *c = reopen_expect(3);
    ck_assert_str_eq(c->payloads[0], "keep-1");
    ck_assert_int_eq(c->types[1], 'E');
    ck_assert_str_eq(c->payloads[1], "keep-22");
    ck_assert_str_eq(c->payloads[2], "new");
    collected_free(c);
    /* Rewrite to empty is allowed. */
    w = wal_open(path, NULL, NULL);
    ck_assert(wal_rewrite(w, 0, NULL, NULL, NULL));
    ck_assert_uint_eq(wal_bytes(w), 0);
    wal_close(w);
    c = reopen_expect(0);
    /* Bad records are refused and leave the log alone. */
    w = wal_open(path, NULL, NULL);
    ck_assert(wal_append(w, 'C', "x", 1, true));
    const uint8_t bad_types[1] = {0};
    const void *bad_payloads[1] = {"x"};
    const size_t bad_lens[1] = {1};
    ck_assert(!wal_rewrite(w, 1, bad_types, bad_payloads, bad_lens));
    wal_close(w);
    c = reopen_expect(1);
    collected_free(c);
}
END_TEST

static volatile int rw_stop;

static void *rw_appender(void *arg)
{
    (void)arg;
    long n = 0;
    while (!rw_stop) {
        if (!wal_append(gc_wal, 'C', "concurrent", 10, (n % 3) != 0))
            return (void *)1;
        n++;
    }
    return NULL;
}

START_TEST(test_rewrite_concurrent_appends)
{
    gc_wal = wal_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(gc_wal);
    rw_stop = 0;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, rw_appender, NULL), 0);
    const uint8_t types[1] = {'S'};
    const void *payloads[1] = {"snapshot"};
    const size_t lens[1] = {8};
    for (int i = 0; i < 20; i++)
        ck_assert(wal_rewrite(gc_wal, 1, types, payloads, lens));
    rw_stop = 1;
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_ptr_null(rv);
    }
    uint64_t bytes = wal_bytes(gc_wal);
    wal_close(gc_wal);
    ck_assert_int_eq((int)unit_file_size(path), (int)bytes);
    collected c = {0};
    wal *w = wal_open(path, collect, &c);
    ck_assert_ptr_nonnull(w);
    wal_close(w);
    ck_assert_uint_ge(c.n, 1);
    ck_assert_int_eq(c.types[0], 'S');
    for (size_t i = 1; i < c.n && i < ARRAY_LEN(c.types); i++)
        ck_assert_str_eq(c.payloads[i], "concurrent");
    collected_free(&c);
}
END_TEST

/* ---- durable.c -------------------------------------------------------- */

START_TEST(test_durable_write_read)
{
    char *f = xasprintf("%s/coordinator.state", dir);
    char *data = NULL;
    size_t len = 0;
    bool missing = false;
    ck_assert(!read_whole_file(f, &data, &len, &missing));
    ck_assert(missing);
    ck_assert(durable_write_file(f, "{\"epoch\":1}", 11));
    ck_assert(read_whole_file(f, &data, &len, &missing));
    ck_assert(!missing);
    ck_assert_uint_eq(len, 11);
    ck_assert_str_eq(data, "{\"epoch\":1}");
    free(data);
    ck_assert(durable_write_file(f, "{\"epoch\":2}", 11));
    ck_assert(durable_write_file(f, "", 0)); /* shrink to empty */
    ck_assert(read_whole_file(f, &data, &len, NULL));
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(data, "");
    free(data);
    char *tmp = xasprintf("%s.tmp", f);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    free(tmp);
    /* A large file round-trips. */
    size_t big = 300000;
    char *buf = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)('a' + i % 26);
    ck_assert(durable_write_file(f, buf, big));
    ck_assert(read_whole_file(f, &data, &len, NULL));
    ck_assert_uint_eq(len, big);
    ck_assert(memcmp(data, buf, big) == 0);
    free(data);
    free(buf);
    /* Writing into a missing directory fails (logged). */
    char *bad = xasprintf("%s/no/such/dir/file", dir);
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(!durable_write_file(bad, "x", 1));
    char *err = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(err, "ERROR"));
    free(err);
    free(bad);
    free(f);
}
END_TEST

START_TEST(test_mkdir_p)
{
    char *d = xasprintf("%s/a/b/c/", dir);
    ck_assert(mkdir_p(d));
    ck_assert(mkdir_p(d)); /* idempotent */
    struct stat st;
    ck_assert_int_eq(stat(d, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    char *f = xasprintf("%s/a/file", dir);
    ck_assert(durable_write_file(f, "x", 1));
    char *under = xasprintf("%s/sub", f);
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(!mkdir_p(under));
    ck_assert(!mkdir_p(f));
    free(unit_capture_end(&cap));
    ck_assert(fsync_parent_dir(f));
    free(under);
    free(f);
    free(d);
}
END_TEST

START_TEST(test_dir_lock)
{
    ck_assert(dir_lock(dir, "test"));
    char *path = xasprintf("%s/LOCK", dir), *data = NULL;
    size_t len = 0;
    bool missing = false;
    ck_assert(read_whole_file(path, &data, &len, &missing));
    char *want = xasprintf("%ld\n", (long)getpid());
    ck_assert_str_eq(data, want);
    /* Another open file description of the same LOCK conflicts, as another
     * process's would: refused after DIR_LOCK_WAIT_MS, naming the holder. */
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(!dir_lock(dir, "second"));
    char *log = unit_capture_end(&cap);
    char *holder = xasprintf("(pid %ld,", (long)getpid());
    ck_assert_msg(strstr(log, "is in use by another process") && strstr(log, holder),
                  "log: %s", log);
    free(holder);
    free(log);
    /* A missing directory is an error, not a hang. */
    char *gone = xasprintf("%s/no/such/dir", dir);
    unit_capture_begin(&cap, dir);
    ck_assert(!dir_lock(gone, "test"));
    free(unit_capture_end(&cap));
    free(gone);
    free(want);
    free(data);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wal");
    TCase *tc = tcase_create("wal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_append_replay);
    tcase_add_test(tc, test_bad_appends);
    tcase_add_test(tc, test_fdatasync_error_poisons);
    tcase_add_test(tc, test_torn_tail_truncated);
    tcase_add_test(tc, test_torn_header);
    tcase_add_test(tc, test_bad_crc_last_record_is_torn);
    tcase_add_test(tc, test_zero_tail_is_end);
    tcase_add_test(tc, test_preallocated_log_after_crash);
    tcase_add_test(tc, test_preallocated_torn_record);
    tcase_add_test(tc, test_preallocation_steps);
    tcase_add_test(tc, test_corrupt_middle_rejected);
    tcase_add_test(tc, test_corrupt_length_rejected);
    tcase_add_test(tc, test_power_cut_hole_before_unforced_records_is_cut);
    tcase_add_test(tc, test_power_cut_hole_before_forced_records_is_cut);
    tcase_add_test(tc, test_power_cut_hole_cases_that_stay_corruption);
    tcase_add_test(tc, test_power_cut_lost_header_of_last_record_is_torn);
    tcase_add_test(tc, test_open_writes_replayed_records_back);
    tcase_add_test(tc, test_replay_callback_rejects);
    tcase_add_test(tc, test_group_commit_threads);
    tcase_add_test(tc, test_group_commit_groups);
    tcase_add_test(tc, test_rewrite);
    tcase_add_test(tc, test_rewrite_dir_fsync_error_poisons);
    tcase_add_test(tc, test_rewrite_concurrent_appends);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("durable");
    tcase_add_checked_fixture(td, setup, teardown);
    tcase_add_test(td, test_durable_write_read);
    tcase_add_test(td, test_mkdir_p);
    tcase_add_test(td, test_dir_lock);
    suite_add_tcase(s, td);
    return unit_run(s);
}
