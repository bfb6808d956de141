/*
 * decision_log.c - commit decisions made durable, their replay, and log
 * compaction.
 *
 * Invariants:
 *   - A 'C' record is appended with sync=true (group commit: concurrent
 *     commits share one fdatasync); the commit decision for a gid exists
 *     exactly when that append returned true. Nothing is logged for aborts
 *     (presumed abort: no 'C' = aborted).
 *   - A gid enters the committed set only after its 'C' is durable (or was
 *     replayed), and never leaves it while the process runs.
 *   - 'E' is written only after every branch acknowledged COMMIT; it is not
 *     forced: losing it only makes the next start re-send COMMITs, which
 *     agents answer as done.
 *   - Replay tolerates duplicates ('C' twice, 'E' twice, 'E' without 'C'):
 *     every writer may re-run.
 *   - `unfinished` holds the payload of every 'C' in the file without a
 *     later 'E', and the committed set holds every gid with a 'C', whenever
 *     no append is in progress: appends update both inside the read side of
 *     compact_lock, compaction reads them under the write side.
 *   - Compaction rewrites the log as: 'S' records (the committed set as
 *     per-epoch bitmaps, committed.h), then every unfinished 'C'. So it
 *     never drops a decision nor forgets that a gid committed: after a
 *     restart the outcome endpoint answers exactly as before it. 'S' is an
 *     addition to the record types of docs/PROTOCOL.md.
 */
#include "decision_log.h"

#include <stdlib.h>
#include <string.h>

#include "committed.h"
#include "coord.h"
#include "log.h"
#include "strmap.h"
#include "wal.h"

#define REC_COMMIT 'C'
#define REC_END 'E'
#define REC_SNAPSHOT 'S' /* committed-set snapshot, written by compaction only */

static wal *dlog;
static char *dlog_path;
static pthread_rwlock_t compact_lock; /* read: appends; write: compaction */
static pthread_mutex_t unfinished_mu = PTHREAD_MUTEX_INITIALIZER;
static strmap *unfinished;            /* gid -> char* 'C' payload (owned), keys owned */
static uint64_t compact_at;           /* compact when the file is larger; tick thread only */
static uint64_t compact_bytes_cfg;
static atomic_uint_fast64_t commit_records, compactions;

/* Caller holds unfinished_mu. Takes ownership of payload. */
static void unfinished_set(const char *gid, char *payload)
{
    free(strmap_remove(unfinished, gid));
    (void)strmap_put(unfinished, gid, payload); /* cannot fail after the remove */
}

typedef struct {
    size_t ncommit, nend, nsnap;
} replay_state;

static bool replay_record(uint8_t type, const void *payload, size_t len, void *arg)
{
    replay_state *rs = arg;
    if (type == REC_SNAPSHOT) {
        rs->nsnap++;
        if (committed_import(payload, len))
            return true;
        log_error("decision log: unreadable committed-set snapshot record");
        return false;
    }
    json_error_t jerr;
    json_t *rec = json_loadb(payload, len, 0, &jerr);
    const char *gid = rec ? json_string_value(json_object_get(rec, "gid")) : NULL;
    if (!gid || !gid_valid(gid)) {
        log_error("decision log: unreadable '%c' record (%s)", type, rec ? "no valid gid" : jerr.text);
        json_decref(rec);
        return false;
    }
    bool ok = true;
    if (type == REC_COMMIT) {
        rs->ncommit++;
        committed_add(gid);
        char *copy = xmalloc(len + 1);
        memcpy(copy, payload, len);
        copy[len] = '\0';
        unfinished_set(gid, copy); /* single-threaded here; mu not needed but harmless */
    } else if (type == REC_END) {
        rs->nend++;
        free(strmap_remove(unfinished, gid));
    } else {
        log_error("decision log: unknown record type 0x%02x", type);
        ok = false;
    }
    json_decref(rec);
    return ok;
}

typedef struct {
    dlog_unfinished_fn fn;
    void *arg;
} unfinished_cb;

static void hand_unfinished(const char *gid, void *val, void *arg)
{
    const unfinished_cb *cb = arg;
    json_t *rec = json_loads(val, 0, NULL); /* parsed once already during replay */
    if (!rec)
        return;
    txn_protocol proto = PROTO_2PC;
    const char *pname = json_string_value(json_object_get(rec, "protocol"));
    if (pname && !txn_protocol_parse(pname, &proto))
        txlog_warn(gid, NULL, "decision record has unknown protocol '%s'; finishing as 2pc", pname);
    json_t *at = json_object_get(rec, "at_ms");
    json_t *branches = json_object_get(rec, "branches"); /* borrowed */
    if (!json_is_array(branches))
        branches = NULL;
    cb->fn(gid, proto, json_is_integer(at) ? (int64_t)json_integer_value(at) : wall_ms(),
           branches, cb->arg);
    json_decref(rec);
}

bool dlog_open(const char *path, uint64_t compact_bytes, dlog_unfinished_fn fn, void *arg)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Compaction must not starve behind a steady stream of appends. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&compact_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    committed_init(g_coord.coord_id);
    unfinished = strmap_new(true);
    compact_bytes_cfg = compact_at = compact_bytes;
    dlog_path = xstrdup(path);

    replay_state rs = {0, 0, 0};
    dlog = wal_open(path, replay_record, &rs);
    if (!dlog)
        return false;
    log_info("decision log %s replayed: %zu commit records, %zu end records, %zu snapshot "
             "records, %zu unfinished",
             path, rs.ncommit, rs.nend, rs.nsnap, strmap_count(unfinished));
    if (fn) {
        unfinished_cb cb = {fn, arg};
        strmap_foreach(unfinished, hand_unfinished, &cb);
    }
    return true;
}

static void free_value(void *v)
{
    free(v);
}

void dlog_close(void)
{
    if (dlog)
        wal_close(dlog);
    dlog = NULL;
    strmap_free(unfinished, free_value);
    unfinished = NULL;
    committed_free();
    free(dlog_path);
    dlog_path = NULL;
    pthread_rwlock_destroy(&compact_lock);
}

bool dlog_commit(txn *t)
{
    json_t *brs = json_array();
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++) {
        const branch *b = &t->branches[i];
        if (b->state != BR_PREPARED)
            continue;
        json_array_append_new(brs, json_pack("{s:s, s:s}", "participant", b->participant,
                                             "branch_gid", b->branch_gid));
    }
    pthread_mutex_unlock(&t->mu);
    json_t *rec = json_pack("{s:s, s:s, s:o, s:I}", "gid", t->gid, "protocol",
                            txn_protocol_name(t->protocol), "branches", brs, "at_ms",
                            (json_int_t)wall_ms());
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!text)
        die("cannot serialize the decision record of %s", t->gid);

    pthread_rwlock_rdlock(&compact_lock);
    bool ok = wal_append(dlog, REC_COMMIT, text, strlen(text), true);
    if (ok) {
        committed_add(t->gid);
        pthread_mutex_lock(&unfinished_mu);
        unfinished_set(t->gid, text); /* takes text */
        pthread_mutex_unlock(&unfinished_mu);
    }
    pthread_rwlock_unlock(&compact_lock);
    if (!ok) {
        free(text);
        txlog_error(t->gid, NULL, "decision log append failed (see above)");
        return false;
    }
    atomic_fetch_add(&commit_records, 1);
    txlog_info(t->gid, NULL, "decision commit logged");
    return true;
}

bool dlog_end(const char *gid)
{
    char text[GID_MAX_LEN + 16];
    int n = snprintf(text, sizeof(text), "{\"gid\":\"%s\"}", gid); /* gid charset needs no escaping */
    pthread_rwlock_rdlock(&compact_lock);
    bool ok = wal_append(dlog, REC_END, text, (size_t)n, false);
    if (ok) {
        pthread_mutex_lock(&unfinished_mu);
        free(strmap_remove(unfinished, gid));
        pthread_mutex_unlock(&unfinished_mu);
    }
    pthread_rwlock_unlock(&compact_lock);
    if (!ok) {
        txlog_error(gid, NULL, "end record append failed (see above)");
        return false;
    }
    txlog_debug(gid, NULL, "end record written");
    return true;
}

void dlog_note_committed(const char *gid)
{
    committed_add(gid);
}

/* The records of a compacted log, in order. */
typedef struct {
    size_t n, cap;
    uint8_t *types;
    const void **payloads;
    size_t *lens;
    char **owned; /* snapshot payloads (copies); NULL for borrowed 'C' payloads */
} rec_list;

static void rec_push(rec_list *l, uint8_t type, const char *payload, size_t len, bool copy)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->types = xrealloc(l->types, l->cap);
        l->payloads = xrealloc(l->payloads, l->cap * sizeof(void *));
        l->lens = xrealloc(l->lens, l->cap * sizeof(size_t));
        l->owned = xrealloc(l->owned, l->cap * sizeof(char *));
    }
    char *c = NULL;
    if (copy) {
        c = xmalloc(len + 1);
        memcpy(c, payload, len);
        c[len] = '\0';
    }
    l->types[l->n] = type;
    l->payloads[l->n] = copy ? c : payload;
    l->lens[l->n] = len;
    l->owned[l->n] = c;
    l->n++;
}

static void push_snapshot(const char *payload, size_t len, void *arg)
{
    rec_push(arg, REC_SNAPSHOT, payload, len, true);
}

static void push_unfinished(const char *gid, void *val, void *arg)
{
    (void)gid;
    rec_push(arg, REC_COMMIT, val, strlen(val), false);
}

void dlog_maybe_compact(void)
{
    uint64_t before = wal_bytes(dlog);
    if (before < compact_at)
        return;
    rec_list l = {0};
    size_t kept = 0;
    pthread_rwlock_wrlock(&compact_lock); /* no append in progress from here */
    committed_export(push_snapshot, &l);
    size_t nsnap = l.n;
    pthread_mutex_lock(&unfinished_mu);
    strmap_foreach(unfinished, push_unfinished, &l);
    kept = l.n - nsnap;
    /* 'C' payloads stay owned by `unfinished`, which cannot change: appends
     * wait for the write lock we hold. */
    bool ok = wal_rewrite(dlog, l.n, l.types, l.payloads, l.lens);
    pthread_mutex_unlock(&unfinished_mu);
    pthread_rwlock_unlock(&compact_lock);
    for (size_t i = 0; i < l.n; i++)
        free(l.owned[i]);
    free(l.types);
    free(l.payloads);
    free(l.lens);
    free(l.owned);
    uint64_t after = wal_bytes(dlog);
    /* Next time: past the threshold again, and never sooner than after the
     * log doubled (a large committed set or many unfinished records must not
     * cause a compaction per tick); after a failure, wait for it to double. */
    compact_at = (ok ? after : before) * 2;
    if (compact_at < compact_bytes_cfg)
        compact_at = compact_bytes_cfg;
    if (!ok) {
        log_error("decision log %s: compaction failed (see above); next try at %llu bytes",
                  dlog_path, (unsigned long long)compact_at);
        return;
    }
    atomic_fetch_add(&compactions, 1);
    log_info("decision log %s compacted: %llu -> %llu bytes, %zu snapshot records, %zu "
             "unfinished commit records kept",
             dlog_path, (unsigned long long)before, (unsigned long long)after, nsnap, kept);
}

bool dlog_is_committed(const char *gid)
{
    return committed_has(gid);
}

uint64_t dlog_syncs(void)
{
    return dlog ? wal_syncs(dlog) : 0;
}

uint64_t dlog_bytes(void)
{
    return dlog ? wal_bytes(dlog) : 0;
}

uint64_t dlog_commit_records(void)
{
    return atomic_load(&commit_records);
}

uint64_t dlog_compactions(void)
{
    return atomic_load(&compactions);
}
