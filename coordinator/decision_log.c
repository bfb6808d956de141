/*
 * decision_log.c - commit decisions made durable, their replay, and log
 * compaction.
 *
 * Invariants:
 *   - A 'C' record is appended with sync=true (group commit: concurrent
 *     commits share one fdatasync); the commit decision for a gid exists
 *     exactly when that append returned true. Nothing is logged for 2PC
 *     aborts (presumed abort: no 'C' = aborted).
 *   - 3PC: a 'P' (every vote yes) is forced before any PreCommit is sent; it
 *     decides nothing by itself: 'P' without 'C' is resolved at restart from
 *     the agents' states (threepc.c). An 'E' ends a 'P' whose transaction
 *     aborted, as it ends a 'C' whose branches all committed.
 *   - 'A' (a 3PC transaction with a 'P' decided abort: step 6a, or
 *     recovery's rule) is forced before any ROLLBACK is sent or the client
 *     is answered; replay turns 'P' + 'A' into an abort to finish
 *     (DLOG_PRECOMMIT_DECIDED_ABORT), never into a new decision. An 'A'
 *     after a 'C' changes nothing (logged; the commit stands); its 'E' ends
 *     it like any 'P'.
 *   - 'H' (operator's heuristic decision) is forced. A heuristic commit is
 *     only written for a gid with a 'C' and ends it (no retries after a
 *     restart); one that finds the 'C' already ended by its 'E' (the last
 *     acknowledgement won the race with the operator) gives nothing up and
 *     is a no-op, live and at replay alike: the 'E' and the 'H' are each
 *     appended and applied under unfinished_mu, so the order applied is the
 *     order in the file. A compacted log's 'H' commits ("compacted": true,
 *     or without "at_ms" as written before that flag) stand alone, their
 *     'C' long ended, and are applied as such; a heuristic abort is only written for a gid without 'C' and
 *     makes a pending 'P' an abort to finish. api.c/heuristic.c check the
 *     contradiction rules before writing; replay still refuses to let an 'H'
 *     abort undo a 'C' (logged, the 'C' stands).
 *   - A gid enters the committed set only after its 'C' is durable (or was
 *     replayed), and never leaves it while the process runs.
 *   - 'E' is written only after every branch acknowledged COMMIT; it is not
 *     forced: losing it only makes the next start re-send COMMITs, which
 *     agents answer as done.
 *   - 'R' records a commit that needed no decision (nothing prepared: every
 *     branch read_only, or none): replay puts the gid in the committed set,
 *     so a commit re-sent after a restart still answers "committed". Not
 *     forced: nothing anywhere depends on it, and one lost to a power cut
 *     only turns that answer into presumed abort for a transaction that
 *     changed nothing. Compaction drops it (the 'S' snapshot has the gid).
 *   - 'N' names the epoch a start issues gids in (forced before it serves,
 *     main.c step 4c); replay only counts its epoch (dlog_max_epoch), and
 *     compaction keeps the current run's.
 *   - Replay tolerates duplicates ('C' twice, 'E' twice, 'E' without 'C',
 *     'H' twice): every writer may re-run.
 *   - Replay reads only the gid of a 'C' or 'E' in the shape written here
 *     (leading_gid); every other record is parsed whole, and so is every
 *     decision still unfinished at the end, before recovery gets it: one that
 *     does not parse stops the start, as any unreadable record does.
 *   - `pending` holds, per gid, the last 'C' or 'P' in the file without a
 *     later 'E' (nor heuristic commit), with the 'A' and the 'H' abort that
 *     followed a 'P'; the committed set holds every gid with a 'C'; both are exact
 *     whenever no append is in progress: appends update them inside the read
 *     side of compact_lock, compaction reads them under the write side.
 *   - Compaction rewrites the log as: 'S' records (the committed set,
 *     chunk by chunk, committed.h), then an 'H' for every heuristic commit,
 *     then every pending 'C', and every pending 'P' followed by its 'A' and
 *     its 'H' if any. So it never drops a decision nor forgets that a gid
 *     committed, nor that a heuristic commit ended its 'C' (dlog_commit_ended
 *     says so for ever): after a restart the outcome endpoint answers exactly
 *     as before it. 'H' aborts of finished gids are dropped
 *     (dlog_heuristic_outcome forgets them at the next start, not at the
 *     rewrite; outcomes do not change).
 */
#include "decision_log.h"

#include <stdlib.h>
#include <string.h>

#include "committed.h"
#include "coord.h"
#include "jsonutil.h"
#include "log.h"
#include "strmap.h"
#include "wal.h"

#define REC_COMMIT 'C'
#define REC_PRECOMMIT 'P'
#define REC_END 'E'
#define REC_HEURISTIC 'H'
#define REC_PRECOMMIT_ABORT 'A' /* {"gid","at_ms"}, forced: a 'P' decided abort */
#define REC_READ_ONLY 'R' /* a commit with nothing prepared: {"gid"}, not forced */
#define REC_SNAPSHOT 'S' /* committed-set snapshot, written by compaction only */
#define REC_EPOCH 'N' /* {"gid":"<coord_id>-<epoch>-0"}, forced at each start (seq 0 is never
                       * issued): the epoch this run issues gids in, even if it logs no
                       * decision; compaction keeps this run's */

/* An unfinished decision: the payload of its 'C' or 'P', and for a 'P' the
 * 'H' abort that followed it. */
typedef struct {
    uint8_t type;  /* REC_COMMIT or REC_PRECOMMIT */
    char *payload; /* owned */
    char *heur;    /* owned 'H' payload, or NULL */
    char *abort;   /* owned 'A' payload that followed a 'P', or NULL */
} pending_rec;

static wal *dlog;
static char *dlog_path;
static pthread_rwlock_t compact_lock; /* read: appends; write: compaction */
static pthread_mutex_t unfinished_mu = PTHREAD_MUTEX_INITIALIZER;
static strmap *unfinished;            /* gid -> pending_rec* (owned), keys owned */
static strmap *heuristics;            /* gid -> (void *)'c' or 'a', keys owned; unfinished_mu */
static uint64_t compact_at;           /* compact when the file is larger; tick thread only */
static uint64_t compact_bytes_cfg;
static atomic_uint_fast64_t commit_records, compactions;
static uint64_t max_epoch_replayed; /* of the gids of the records replayed; dlog_open only */
static char *epoch_record;          /* this run's 'N' payload (dlog_note_epoch), for compaction */

static void pending_free(void *v)
{
    pending_rec *p = v;
    if (!p)
        return;
    free(p->payload);
    free(p->heur);
    free(p->abort);
    free(p);
}

/* Caller holds unfinished_mu (or is replaying). Takes ownership of payload. */
static void unfinished_set(const char *gid, uint8_t type, char *payload)
{
    pending_free(strmap_remove(unfinished, gid));
    pending_rec *p = xcalloc(1, sizeof(*p));
    p->type = type;
    p->payload = payload;
    (void)strmap_put(unfinished, gid, p); /* cannot fail after the remove */
}

static char *copy_payload(const void *payload, size_t len)
{
    char *copy = xmalloc(len + 1);
    memcpy(copy, payload, len);
    copy[len] = '\0';
    return copy;
}

/* Caller holds unfinished_mu (or is replaying). The effect of an 'H' record
 * (payload copied) on the pending decisions; false if it contradicts one
 * (logged; nothing changed). compacted: an 'H' commit written by compaction,
 * whose 'C' ended before the rewrite. */
static bool apply_heuristic(const char *gid, bool commit, const char *payload, size_t len,
                            bool compacted, bool *applied)
{
    *applied = false;
    pending_rec *p = strmap_get(unfinished, gid);
    if (commit) {
        if (!committed_has(gid)) {
            txlog_error(gid, NULL, "decision log: heuristic commit without a commit decision; "
                        "ignored");
            return false;
        }
        if (!compacted && !(p && p->type == REC_COMMIT)) {
            /* Its 'E' came first: every branch acknowledged, nothing was
             * given up. Recorded, it would make dlog_commit_ended false for
             * ever, and an agent's sweep would then commit a second PREPARE
             * of the gid. (A second 'H' of the same gid lands here too: the
             * first one's mark stays.) */
            txlog_info(gid, NULL, "decision log: heuristic commit after the commit had ended "
                       "(every branch acknowledged): nothing given up");
            return true;
        }
        pending_free(strmap_remove(unfinished, gid)); /* ends the 'C' */
    } else if (committed_has(gid)) {
        txlog_error(gid, NULL, "decision log: heuristic abort after a commit decision; the commit "
                    "stands");
        return false;
    } else if (p) { /* a 'P' */
        free(p->heur);
        p->heur = copy_payload(payload, len);
    }
    (void)strmap_remove(heuristics, gid); /* values are not pointers */
    (void)strmap_put(heuristics, gid, (void *)(intptr_t)(commit ? 'c' : 'a'));
    *applied = true;
    return true;
}

/* Caller holds unfinished_mu (or is replaying). The effect of an 'A'
 * record (payload copied): marks the gid's pending 'P' aborted. */
static void apply_precommit_abort(const char *gid, const char *payload, size_t len)
{
    pending_rec *p = strmap_get(unfinished, gid);
    if (committed_has(gid) || (p && p->type == REC_COMMIT)) {
        txlog_error(gid, NULL, "decision log: 'A' after the commit decision; the commit stands");
        return;
    }
    if (!p)
        return; /* its 'P' was ended already: nothing left to finish */
    free(p->abort);
    p->abort = copy_payload(payload, len);
}

typedef struct {
    size_t ncommit, nprecommit, nend, nheur, nsnap, nreadonly, nabort;
} replay_state;

/* The gid of a 'C' or 'E' record as written here: log_decision and dlog_end
 * put it first, {"gid":"<gid>", ... or {"gid":"<gid>"} (jansson keeps the
 * insertion order; the gid charset needs no escaping). Copies it to out
 * (GID_MAX_LEN + 1 bytes); false for any other shape, which then takes the
 * full parse. Replay needs nothing else of these records, and parsing each
 * whole took 61% of a restart's replay: 1.99 s for a 52 MB log of 421,638
 * records. An unfinished 'C' is still parsed whole, by check_unfinished. */
static bool leading_gid(const char *payload, size_t len, char *out)
{
    static const char prefix[] = "{\"gid\":\"";
    const size_t plen = sizeof(prefix) - 1;
    if (len <= plen || memcmp(payload, prefix, plen) != 0)
        return false;
    const char *g = payload + plen;
    const char *q = memchr(g, '"', len - plen);
    if (!q || q == g || (size_t)(q - g) > GID_MAX_LEN)
        return false;
    size_t after = len - (size_t)(q + 1 - payload); /* bytes after the closing quote */
    if (!(after > 1 && q[1] == ',') && !(after == 1 && q[1] == '}'))
        return false;
    memcpy(out, g, (size_t)(q - g));
    out[q - g] = '\0';
    return gid_valid(out);
}

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
    json_error_t jerr = {.text = ""};
    json_t *rec = NULL;
    char fast_gid[GID_MAX_LEN + 1];
    const char *gid = NULL;
    if ((type == REC_COMMIT || type == REC_END || type == REC_READ_ONLY) &&
        leading_gid(payload, len, fast_gid)) {
        gid = fast_gid;
    } else {
        rec = json_loadb(payload, len, 0, &jerr);
        gid = rec ? json_string_value(json_object_get(rec, "gid")) : NULL;
    }
    if (!gid || !gid_valid(gid)) {
        log_error("decision log: unreadable '%c' record (%s)", type, rec ? "no valid gid" : jerr.text);
        json_decref(rec);
        return false;
    }
    char cid[GID_MAX_LEN + 1];
    uint64_t ep, seq;
    if (gid_parse(gid, cid, &ep, &seq) && ep > max_epoch_replayed)
        max_epoch_replayed = ep;
    bool ok = true;
    /* Single-threaded here: unfinished_mu is not needed. */
    if (type == REC_COMMIT) {
        rs->ncommit++;
        committed_add(gid);
        unfinished_set(gid, REC_COMMIT, copy_payload(payload, len));
    } else if (type == REC_PRECOMMIT) {
        rs->nprecommit++;
        const pending_rec *p = strmap_get(unfinished, gid);
        if (committed_has(gid) || (p && p->type == REC_COMMIT))
            txlog_warn(gid, NULL, "decision log: 'P' after the commit decision; ignored");
        else
            unfinished_set(gid, REC_PRECOMMIT, copy_payload(payload, len));
    } else if (type == REC_END) {
        rs->nend++;
        pending_free(strmap_remove(unfinished, gid));
    } else if (type == REC_READ_ONLY) {
        rs->nreadonly++;
        committed_add(gid);
    } else if (type == REC_EPOCH) {
        /* its gid's epoch counted above: all it is for */
    } else if (type == REC_PRECOMMIT_ABORT) {
        rs->nabort++;
        apply_precommit_abort(gid, payload, len);
    } else if (type == REC_HEURISTIC) {
        rs->nheur++;
        const char *outcome = json_string_value(json_object_get(rec, "outcome"));
        if (!outcome || (strcmp(outcome, "commit") != 0 && strcmp(outcome, "abort") != 0)) {
            log_error("decision log: 'H' record of %s has no valid outcome", gid);
            ok = false;
        } else {
            /* compaction's 'H' commits: "compacted", or, as written before
             * that flag, no "at_ms" (operators' records always carry it) */
            bool compacted = json_is_true(json_object_get(rec, "compacted")) ||
                             !json_object_get(rec, "at_ms");
            bool applied;
            (void)apply_heuristic(gid, outcome[0] == 'c', payload, len, compacted,
                                  &applied); /* refusal logged */
        }
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

/* The branches of an unfinished decision as recovery restores them: an
 * array of {participant, branch_gid} with a valid participant name and the
 * branch gid branch_gid_make gives for gid and it. Recovery must finish
 * every branch: one it skipped would be prepared for good, its agent told
 * "committed" (or, for a 'P', the recovery rule would decide without it).
 * The array may be empty: log_decision lists the prepared branches only,
 * and the 'C' that follows a 'P' is forced even when every branch already
 * committed (txn_fsm.c, decide_commit). */
static bool branches_restorable(const char *gid, json_t *rec)
{
    json_t *brs = json_object_get(rec, "branches");
    if (!json_is_array(brs))
        return false;
    size_t i;
    json_t *b;
    json_array_foreach(brs, i, b) {
        const char *name = json_string_value(json_object_get(b, "participant"));
        const char *bgid = json_string_value(json_object_get(b, "branch_gid"));
        char want[BRANCH_GID_MAX_LEN + 1];
        if (!name || !bgid || !branch_gid_make(want, sizeof(want), gid, name) ||
            strcmp(want, bgid) != 0)
            return false;
    }
    return true;
}

/* Every unfinished decision's record must parse, with branches recovery can
 * restore (branches_restorable): replay read only the gid of a 'C'
 * (leading_gid), and recovery needs its branches. Counts the ones that do
 * not, logging each; any stops the start. (An 'H' that followed a 'P' was
 * parsed whole at replay.) */
static void check_unfinished(const char *gid, void *val, void *arg)
{
    const pending_rec *p = val;
    json_t *rec = json_loads(p->payload, 0, NULL);
    if (!json_is_object(rec)) {
        txlog_error(gid, NULL, "decision log: unreadable '%c' record of an unfinished decision",
                    (char)p->type);
        (*(size_t *)arg)++;
    } else if (!branches_restorable(gid, rec)) {
        txlog_error(gid, NULL, "decision log: the '%c' record of an unfinished decision has no "
                    "branch list recovery can restore (missing, or a branch whose participant "
                    "or branch gid is malformed)",
                    (char)p->type);
        (*(size_t *)arg)++;
    }
    json_decref(rec);
}

/* The 3PC settings a 'P' carries (the flags' defaults for what it lacks: a
 * 'C', or a 'P' written before it carried them, or a value out of bounds). */
static threepc_settings settings_of(const char *gid, json_t *rec)
{
    threepc_settings s = g_coord.threepc;
    json_t *o = json_object_get(rec, "threepc");
    if (!json_is_object(o))
        return s;
    char err[JSON_ERR_LEN];
    long long cc = s.cancommit_timeout_ms, pc = s.precommit_timeout_ms,
              un = s.uncertain_timeout_ms;
    const char *term = NULL;
    const long long max = 24LL * 3600 * 1000; /* as POST /v1/transactions allows */
    if (!json_field_int(o, "cancommit_timeout_ms", false, 1, max, &cc, err, sizeof(err)) ||
        !json_field_int(o, "precommit_timeout_ms", false, 1, max, &pc, err, sizeof(err)) ||
        !json_field_int(o, "uncertain_timeout_ms", false, 1, max, &un, err, sizeof(err)) ||
        !json_field_string(o, "termination", false, &term, err, sizeof(err)) ||
        (term && !termination_rule_parse(term, &s.termination))) {
        txlog_warn(gid, NULL, "decision record's 3pc settings unreadable (%s); using the "
                   "--3pc-* flags", term ? "termination" : err);
        return g_coord.threepc;
    }
    s.cancommit_timeout_ms = cc;
    s.precommit_timeout_ms = pc;
    s.uncertain_timeout_ms = un;
    return s;
}

static void hand_unfinished(const char *gid, void *val, void *arg)
{
    const unfinished_cb *cb = arg;
    const pending_rec *p = val;
    json_t *rec = json_loads(p->payload, 0, NULL); /* check_unfinished parsed it */
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
    dlog_pending_kind kind = p->type == REC_COMMIT ? DLOG_COMMIT
                             : p->heur             ? DLOG_PRECOMMIT_ABORTED
                             : p->abort            ? DLOG_PRECOMMIT_DECIDED_ABORT
                                                   : DLOG_PRECOMMIT;
    threepc_settings tps = settings_of(gid, rec);
    cb->fn(gid, kind, proto, json_is_integer(at) ? (int64_t)json_integer_value(at) : wall_ms(),
           branches, &tps, cb->arg);
    json_decref(rec);
}

uint64_t dlog_max_epoch(void)
{
    uint64_t c = committed_max_epoch();
    return c > max_epoch_replayed ? c : max_epoch_replayed;
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
    heuristics = strmap_new(true);
    compact_bytes_cfg = compact_at = compact_bytes;
    dlog_path = xstrdup(path);

    replay_state rs = {0};
    /* A power cut may leave records on disk after a hole that an earlier,
     * unflushed sector left: cut there (wal.c, unwritten_hole; nothing after
     * it was acknowledged). 'E' and 'R' are the types never forced: a 'C',
     * 'P', 'A' or 'H' cut there is counted in the warning, a decision whose
     * fdatasync never returned, so never acted on (presumed abort). */
    dlog = wal_open_unforced(path, replay_record, &rs, (const char[]){REC_END, REC_READ_ONLY, 0});
    if (!dlog)
        return false;
    log_info("decision log %s replayed: %zu commit records, %zu end records, %zu snapshot "
             "records, %zu unfinished (%zu pre-commit records, %zu pre-commit abort records, "
             "%zu heuristic records, %zu read-only commit records)",
             path, rs.ncommit, rs.nend, rs.nsnap, strmap_count(unfinished), rs.nprecommit,
             rs.nabort, rs.nheur, rs.nreadonly);
    size_t unreadable = 0;
    strmap_foreach(unfinished, check_unfinished, &unreadable);
    if (unreadable > 0) {
        log_error("decision log %s: %zu unfinished decision(s) unreadable; refusing to start",
                  path, unreadable);
        return false;
    }
    if (fn) {
        unfinished_cb cb = {fn, arg};
        strmap_foreach(unfinished, hand_unfinished, &cb);
    }
    return true;
}

void dlog_close(void)
{
    if (dlog)
        wal_close(dlog);
    dlog = NULL;
    strmap_free(unfinished, pending_free);
    unfinished = NULL;
    strmap_free(heuristics, NULL);
    heuristics = NULL;
    committed_free();
    free(dlog_path);
    dlog_path = NULL;
    free(epoch_record);
    epoch_record = NULL;
    max_epoch_replayed = 0;
    pthread_rwlock_destroy(&compact_lock);
}

/* Force a 'C' or 'P' listing t's prepared branches; a 'P' also carries the
 * transaction's 3PC settings: its recovery waits out the agents' timers. */
static bool log_decision(txn *t, uint8_t type, int64_t *at_ms)
{
    json_t *brs = json_array();
    int64_t at = wall_ms();
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++) {
        const branch *b = &t->branches[i];
        if (!branch_is_prepared(b->state))
            continue;
        json_t *bo = json_pack("{s:s, s:s}", "participant", b->participant, "branch_gid",
                               b->branch_gid);
        if (b->xid[0])
            json_object_set_new(bo, "xid", json_string(b->xid));
        json_array_append_new(brs, bo);
    }
    pthread_mutex_unlock(&t->mu);
    json_t *rec = json_pack("{s:s, s:s, s:o, s:I}", "gid", t->gid, "protocol",
                            txn_protocol_name(t->protocol), "branches", brs, "at_ms",
                            (json_int_t)at);
    if (type == REC_PRECOMMIT)
        json_object_set_new(
            rec, "threepc",
            json_pack("{s:I, s:I, s:I, s:s}", "cancommit_timeout_ms",
                      (json_int_t)t->threepc.cancommit_timeout_ms, "precommit_timeout_ms",
                      (json_int_t)t->threepc.precommit_timeout_ms, "uncertain_timeout_ms",
                      (json_int_t)t->threepc.uncertain_timeout_ms, "termination",
                      termination_rule_name(t->threepc.termination)));
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!text)
        die("cannot serialize the decision record of %s", t->gid);

    pthread_rwlock_rdlock(&compact_lock);
    bool ok = wal_append(dlog, type, text, strlen(text), true);
    if (ok) {
        if (type == REC_COMMIT)
            committed_add(t->gid);
        pthread_mutex_lock(&unfinished_mu);
        unfinished_set(t->gid, type, text); /* takes text */
        pthread_mutex_unlock(&unfinished_mu);
    }
    pthread_rwlock_unlock(&compact_lock);
    if (!ok) {
        free(text);
        txlog_error(t->gid, NULL, "decision log append failed (see above)");
        return false;
    }
    if (at_ms)
        *at_ms = at;
    if (type == REC_COMMIT) {
        atomic_fetch_add(&commit_records, 1);
        txlog_debug(t->gid, NULL, "decision commit logged");
    } else {
        txlog_debug(t->gid, NULL, "decision pre-commit logged");
    }
    return true;
}

bool dlog_commit(txn *t, int64_t *at_ms)
{
    return log_decision(t, REC_COMMIT, at_ms);
}

bool dlog_precommit(txn *t, int64_t *at_ms)
{
    return log_decision(t, REC_PRECOMMIT, at_ms);
}

/* Force an 'H' (heuristic commit when commit) or 'A' record rec (stolen)
 * of gid; once it is durable, apply its effect on the pending decisions
 * (under unfinished_mu, inside the read side of compact_lock, as every
 * append). false, logged, if the append failed (what: the record's name). */
static bool append_forced_json(uint8_t type, const char *gid, json_t *rec, bool commit,
                               const char *what, bool *applied)
{
    *applied = false;
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!text)
        die("cannot serialize the %s record of %s", what, gid);
    pthread_rwlock_rdlock(&compact_lock);
    /* An 'H' is appended and applied under unfinished_mu, as an 'E' is
     * (dlog_end): applied in file order, so that what it finds pending is
     * what replay will find. The price: while its fdatasync runs, whatever
     * takes unfinished_mu waits for it (ends, decisions being applied, the
     * agents' outcome queries), on a stalled disk as long as the disk
     * stalls; it is a rare operator's record, and the 'C's it would hold
     * up wait for the same disk anyway. */
    bool heur = type == REC_HEURISTIC;
    if (heur)
        pthread_mutex_lock(&unfinished_mu);
    bool ok = wal_append(dlog, type, text, strlen(text), true);
    if (ok) {
        if (!heur)
            pthread_mutex_lock(&unfinished_mu);
        if (heur) { /* checked by the caller: a refusal is only logged */
            (void)apply_heuristic(gid, commit, text, strlen(text), false, applied);
        } else {
            apply_precommit_abort(gid, text, strlen(text));
            *applied = true;
        }
        pthread_mutex_unlock(&unfinished_mu);
    } else if (heur) {
        pthread_mutex_unlock(&unfinished_mu);
    }
    pthread_rwlock_unlock(&compact_lock);
    free(text);
    if (!ok)
        txlog_error(gid, NULL, "%s record append failed (see above)", what);
    return ok;
}

bool dlog_heuristic(const char *gid, bool commit, bool *applied)
{
    json_t *rec = json_pack("{s:s, s:s, s:I}", "gid", gid, "outcome", commit ? "commit" : "abort",
                            "at_ms", (json_int_t)wall_ms());
    if (!append_forced_json(REC_HEURISTIC, gid, rec, commit, "heuristic", applied))
        return false;
    txlog_warn(gid, NULL, "heuristic %s by operator logged", commit ? "commit" : "abort");
    return true;
}

bool dlog_precommit_abort(txn *t)
{
    json_t *rec = json_pack("{s:s, s:I}", "gid", t->gid, "at_ms", (json_int_t)wall_ms());
    bool applied;
    if (!append_forced_json(REC_PRECOMMIT_ABORT, t->gid, rec, false, "pre-commit abort",
                            &applied))
        return false;
    txlog_debug(t->gid, NULL, "decision abort after pre-commit logged");
    return true;
}

char dlog_heuristic_outcome(const char *gid)
{
    pthread_mutex_lock(&unfinished_mu);
    char c = heuristics ? (char)(intptr_t)strmap_get(heuristics, gid) : 0;
    pthread_mutex_unlock(&unfinished_mu);
    return c;
}

/* An unforced {"gid"} record ('E', 'R'), in the shape leading_gid reads.
 * Caller holds the read side of compact_lock. */
static bool append_gid_record(uint8_t type, const char *gid)
{
    char text[GID_MAX_LEN + 16];
    int n = snprintf(text, sizeof(text), "{\"gid\":\"%s\"}", gid); /* gid charset needs no escaping */
    return wal_append(dlog, type, text, (size_t)n, false);
}

bool dlog_end(const char *gid)
{
    pthread_rwlock_rdlock(&compact_lock);
    /* Appended and applied in one unfinished_mu section, as an 'H' is
     * (append_forced_json): a heuristic commit racing this 'E' finds the 'C'
     * pending exactly when its record comes before the 'E' in the file. */
    pthread_mutex_lock(&unfinished_mu);
    bool ok = append_gid_record(REC_END, gid);
    if (ok)
        pending_free(strmap_remove(unfinished, gid));
    pthread_mutex_unlock(&unfinished_mu);
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
    pthread_rwlock_rdlock(&compact_lock);
    bool ok = append_gid_record(REC_READ_ONLY, gid);
    committed_add(gid);
    pthread_rwlock_unlock(&compact_lock);
    if (!ok) /* nothing depends on it: the commit stands, only a restart forgets it */
        txlog_warn(gid, NULL, "read-only commit record append failed (see above); after a "
                   "restart its outcome reads as presumed abort");
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

/* An 'H' commit, kept by every compaction (after the snapshot, whose
 * committed set replay needs first): dlog_commit_ended must go on saying
 * that its gid's COMMITs were not all acknowledged. Operators' decisions
 * are rare; each costs one short record for the life of the log. */
static void push_heuristic_commit(const char *gid, void *val, void *arg)
{
    if ((char)(intptr_t)val != 'c')
        return;
    json_t *rec = json_pack("{s:s, s:s, s:b}", "gid", gid, "outcome", "commit", "compacted", 1);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text)
        die("cannot serialize the heuristic record of %s", gid);
    rec_push(arg, REC_HEURISTIC, text, strlen(text), true);
    free(text);
}

static void push_unfinished(const char *gid, void *val, void *arg)
{
    (void)gid;
    const pending_rec *p = val;
    rec_push(arg, p->type, p->payload, strlen(p->payload), false);
    if (p->abort)
        rec_push(arg, REC_PRECOMMIT_ABORT, p->abort, strlen(p->abort), false);
    if (p->heur)
        rec_push(arg, REC_HEURISTIC, p->heur, strlen(p->heur), false);
}

bool dlog_note_epoch(const char *coord_id, uint64_t epoch)
{
    char gid[GID_MAX_LEN + 1];
    gid_format(gid, sizeof(gid), coord_id, epoch, 0);
    char *text = xasprintf("{\"gid\":\"%s\"}", gid);
    pthread_rwlock_rdlock(&compact_lock);
    bool ok = wal_append(dlog, REC_EPOCH, text, strlen(text), true);
    if (ok) {
        free(epoch_record);
        epoch_record = text; /* read by compaction, under the write side of compact_lock */
    }
    pthread_rwlock_unlock(&compact_lock);
    if (!ok) {
        free(text);
        log_error("decision log %s: cannot record epoch %llu (see above)", dlog_path,
                  (unsigned long long)epoch);
    }
    return ok;
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
    strmap_foreach(heuristics, push_heuristic_commit, &l);
    strmap_foreach(unfinished, push_unfinished, &l);
    pthread_mutex_unlock(&unfinished_mu);
    kept = l.n - nsnap;
    if (epoch_record) /* written before any compaction of this run (main.c, step 4c) */
        rec_push(&l, REC_EPOCH, epoch_record, strlen(epoch_record), false);
    /* 'C'/'P'/'H' payloads stay owned by `unfinished`, which cannot change:
     * every change to it is made by an append, and appends wait for the
     * write lock we hold. unfinished_mu is not held through the rewrite's
     * fsyncs: the readers that take it alone (dlog_commit_ended for an
     * agent's outcome query, dlog_heuristic_outcome) answer meanwhile. */
    bool ok = wal_rewrite(dlog, l.n, l.types, l.payloads, l.lens);
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
             "unfinished decision records kept",
             dlog_path, (unsigned long long)before, (unsigned long long)after, nsnap, kept);
}

bool dlog_is_committed(const char *gid)
{
    return committed_has(gid);
}

bool dlog_commit_ended(const char *gid)
{
    if (!committed_has(gid))
        return false;
    pthread_mutex_lock(&unfinished_mu);
    const pending_rec *p = strmap_get(unfinished, gid);
    /* An operator's heuristic commit ended the 'C' without every branch's
     * acknowledgement: a branch it gave up that comes back prepared is the
     * branch itself, to be committed. */
    bool ended = (!p || p->type != REC_COMMIT) &&
                 (char)(intptr_t)strmap_get(heuristics, gid) != 'c';
    pthread_mutex_unlock(&unfinished_mu);
    return ended;
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
