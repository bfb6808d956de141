/*
 * decision_log.c - commit decisions made durable, and their replay.
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
 */
#include "decision_log.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"
#include "wal.h"

#define REC_COMMIT 'C'
#define REC_END 'E'

static wal *dlog;
static pthread_mutex_t committed_mu = PTHREAD_MUTEX_INITIALIZER;
static strmap *committed; /* gid -> (void *)1, keys owned */
static atomic_uint_fast64_t commit_records;

typedef struct {
    strmap *unfinished; /* gid -> json_t* ('C' payload, owned) */
    size_t ncommit, nend;
} replay_state;

static void mark_committed(const char *gid)
{
    pthread_mutex_lock(&committed_mu);
    (void)strmap_put(committed, gid, (void *)1); /* false = already there: fine */
    pthread_mutex_unlock(&committed_mu);
}

static bool replay_record(uint8_t type, const void *payload, size_t len, void *arg)
{
    replay_state *rs = arg;
    json_error_t jerr;
    json_t *rec = json_loadb(payload, len, 0, &jerr);
    const char *gid = rec ? json_string_value(json_object_get(rec, "gid")) : NULL;
    if (!gid || !gid_valid(gid)) {
        log_error("decision log: unreadable '%c' record (%s)", type, rec ? "no valid gid" : jerr.text);
        json_decref(rec);
        return false;
    }
    if (type == REC_COMMIT) {
        rs->ncommit++;
        mark_committed(gid);
        json_t *old = strmap_remove(rs->unfinished, gid);
        json_decref(old);
        if (!strmap_put(rs->unfinished, gid, rec)) /* cannot fail after the remove */
            json_decref(rec);
        return true;
    }
    if (type == REC_END) {
        rs->nend++;
        json_decref(strmap_remove(rs->unfinished, gid));
        json_decref(rec);
        return true;
    }
    log_error("decision log: unknown record type 0x%02x", type);
    json_decref(rec);
    return false;
}

typedef struct {
    dlog_unfinished_fn fn;
    void *arg;
} unfinished_cb;

static void hand_unfinished(const char *gid, void *val, void *arg)
{
    const unfinished_cb *cb = arg;
    json_t *rec = val;
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
}

static void decref_value(void *v)
{
    json_decref(v);
}

bool dlog_open(const char *path, dlog_unfinished_fn fn, void *arg)
{
    committed = strmap_new(true);
    replay_state rs = {.unfinished = strmap_new(true)};
    dlog = wal_open(path, replay_record, &rs);
    if (!dlog) {
        strmap_free(rs.unfinished, decref_value);
        return false;
    }
    log_info("decision log %s replayed: %zu commit records, %zu end records, %zu unfinished",
             path, rs.ncommit, rs.nend, strmap_count(rs.unfinished));
    if (fn) {
        unfinished_cb cb = {fn, arg};
        strmap_foreach(rs.unfinished, hand_unfinished, &cb);
    }
    strmap_free(rs.unfinished, decref_value);
    return true;
}

void dlog_close(void)
{
    if (dlog)
        wal_close(dlog);
    dlog = NULL;
    strmap_free(committed, NULL);
    committed = NULL;
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
    bool ok = wal_append(dlog, REC_COMMIT, text, strlen(text), true);
    free(text);
    if (!ok) {
        txlog_error(t->gid, NULL, "decision log append failed (see above)");
        return false;
    }
    atomic_fetch_add(&commit_records, 1);
    mark_committed(t->gid);
    txlog_info(t->gid, NULL, "decision commit logged");
    return true;
}

bool dlog_end(const char *gid)
{
    char text[GID_MAX_LEN + 16];
    int n = snprintf(text, sizeof(text), "{\"gid\":\"%s\"}", gid); /* gid charset needs no escaping */
    if (!wal_append(dlog, REC_END, text, (size_t)n, false)) {
        txlog_error(gid, NULL, "end record append failed (see above)");
        return false;
    }
    txlog_debug(gid, NULL, "end record written");
    return true;
}

bool dlog_is_committed(const char *gid)
{
    pthread_mutex_lock(&committed_mu);
    bool c = committed && strmap_get(committed, gid) != NULL;
    pthread_mutex_unlock(&committed_mu);
    return c;
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
