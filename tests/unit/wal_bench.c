/*
 * wal_bench.c - micro-benchmark of wal.c: T threads doing sync appends for S
 * seconds (records/s, fdatasyncs/s, records per fdatasync), then the time to
 * replay a log of 100k records.
 * Usage: wal_bench [threads=8] [seconds=3] [dir=$TMPDIR or /tmp] [payload_bytes=120]
 * Not a test: numbers depend on the disk; nothing is asserted.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "wal.h"

static wal *bench_wal;
static volatile int bench_stop;
static atomic_long bench_records;
static size_t bench_payload = 120;

static void *appender(void *arg)
{
    (void)arg;
    char *payload = xmalloc(bench_payload);
    memset(payload, 'x', bench_payload);
    while (!bench_stop) {
        if (!wal_append(bench_wal, 'C', payload, bench_payload, true)) {
            free(payload);
            return (void *)1;
        }
        atomic_fetch_add(&bench_records, 1);
    }
    free(payload);
    return NULL;
}

static bool count_cb(uint8_t type, const void *payload, size_t len, void *arg)
{
    (void)type;
    (void)payload;
    (void)len;
    (*(long *)arg)++;
    return true;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    int seconds = argc > 2 ? atoi(argv[2]) : 3;
    const char *base = argc > 3 ? argv[3] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (argc > 4)
        bench_payload = (size_t)atol(argv[4]);
    if (threads < 1 || seconds < 1) {
        fprintf(stderr, "usage: wal_bench [threads] [seconds] [dir] [payload_bytes]\n");
        return 2;
    }
    log_init("wal_bench", LOG_WARN);
    char *dir = xasprintf("%s/wal_bench.XXXXXX", base);
    if (!mkdtemp(dir))
        die("mkdtemp %s failed", dir);
    char *path = xasprintf("%s/bench.log", dir);

    bench_wal = wal_open(path, NULL, NULL);
    if (!bench_wal)
        die("cannot open %s", path);
    pthread_t *th = xcalloc((size_t)threads, sizeof(pthread_t));
    int64_t t0 = now_us();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, appender, NULL);
    sleep_ms((int64_t)seconds * 1000, NULL);
    bench_stop = 1;
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double el = (double)(now_us() - t0) / 1e6;
    long recs = atomic_load(&bench_records);
    uint64_t syncs = wal_syncs(bench_wal);
    printf("group commit: threads=%d payload=%zuB seconds=%.2f records=%ld fdatasyncs=%llu\n",
           threads, bench_payload, el, recs, (unsigned long long)syncs);
    printf("  %.0f records/s, %.0f fdatasyncs/s, %.2f records/fdatasync\n", recs / el,
           (double)syncs / el, syncs ? (double)recs / (double)syncs : 0.0);
    wal_close(bench_wal);
    unlink(path);

    /* Replay timing: 100k records written without sync, one final sync. */
    const long n = 100000;
    wal *w = wal_open(path, NULL, NULL);
    if (!w)
        die("cannot open %s", path);
    char payload[160];
    for (long i = 0; i < n; i++) {
        int len = snprintf(payload, sizeof(payload),
                           "{\"gid\":\"3fa2b01c-4-%ld\",\"protocol\":\"2pc\",\"branches\":"
                           "[{\"participant\":\"pg1\"}],\"at_ms\":%lld}",
                           i, (long long)wall_ms());
        if (!wal_append(w, 'C', payload, (size_t)len, i == n - 1))
            die("append failed");
    }
    uint64_t bytes = wal_bytes(w);
    wal_close(w);
    long seen = 0;
    int64_t r0 = now_us();
    w = wal_open(path, count_cb, &seen);
    double rel = (double)(now_us() - r0) / 1e6;
    if (!w || seen != n)
        die("replay saw %ld of %ld records", seen, n);
    wal_close(w);
    printf("replay: %ld records, %.1f MB in %.3f s (%.0f records/s)\n", n, (double)bytes / 1e6,
           rel, n / rel);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    free(th);
    return 0;
}
