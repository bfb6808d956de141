/*
 * test_coord.c - unit tests of txcoord's durable core, linking the module
 * .c files directly (no agents: participants point at closed ports):
 * strmap, the committed set, the transaction state machine table (2PC and
 * 3PC rows), the decision log (replay of 'C' without 'E', presumed abort,
 * 'P' and 'H' records, compaction), eviction, the heuristic contradiction
 * rules and their application, the 3PC recovery rule and its handling of
 * read-only branches (skipped: never counted, never sent anything), and
 * the rate limit of repeated retry lines.
 * Invariants checked: a commit decision exists exactly when its 'C' was
 * forced and survives reopen until an 'E' follows; aborts log nothing
 * (except the 'E' that ends a 'P'); a transition not in the table is
 * refused and leaves the state alone; compaction keeps every unfinished
 * decision and nothing else; an 'H' never undoes a 'C'.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "committed.h"
#include "coord_metrics.h"
#include "coord.h"
#include "decision_log.h"
#include "heuristic.h"
#include "httpc.h"
#include "log.h"
#include "resolver.h"
#include "strmap.h"
#include "threepc.h"
#include "txn.h"
#include "txn_fsm.h"
#include "wal.h"
#include "twopc.h"
#include "wal.h"

coord_settings g_coord; /* normally main.c's */

static char tmpdir[64];
static char logpath[128];

/* ---- helpers ---------------------------------------------------------- */

typedef struct {
    int n;
    char gids[16][GID_MAX_LEN + 1];
    size_t nbranches[16];
    dlog_pending_kind kinds[16];
    txn_protocol protos[16];
    char first_participant[16][PARTICIPANT_MAX_LEN + 1];
    char first_branch_gid[16][BRANCH_GID_MAX_LEN + 1];
    char first_xid[16][XID8_TEXT_MAX + 1];
    threepc_settings tps[16];
} recovered;

static void on_unfinished(const char *gid, dlog_pending_kind kind, txn_protocol proto,
                          int64_t at_ms, json_t *branches, const threepc_settings *tps,
                          void *arg)
{
    (void)at_ms;
    recovered *r = arg;
    if (r->n < 16) {
        snprintf(r->gids[r->n], sizeof(r->gids[0]), "%s", gid);
        r->nbranches[r->n] = json_array_size(branches);
        r->kinds[r->n] = kind;
        r->protos[r->n] = proto;
        r->tps[r->n] = *tps;
        json_t *b0 = json_array_get(branches, 0);
        const char *pn = json_string_value(json_object_get(b0, "participant"));
        const char *bg = json_string_value(json_object_get(b0, "branch_gid"));
        snprintf(r->first_participant[r->n], sizeof(r->first_participant[0]), "%s", pn ? pn : "");
        snprintf(r->first_branch_gid[r->n], sizeof(r->first_branch_gid[0]), "%s", bg ? bg : "");
        const char *x = json_string_value(json_object_get(b0, "xid"));
        snprintf(r->first_xid[r->n], sizeof(r->first_xid[0]), "%s", x ? x : "");
    }
    r->n++;
}

/* Index of gid among the recovered ones, -1 if absent. */
static int recovered_find(const recovered *r, const char *gid)
{
    for (int i = 0; i < r->n && i < 16; i++)
        if (strcmp(r->gids[i], gid) == 0)
            return i;
    return -1;
}

static void setup(void)
{
    log_init("test_coord", LOG_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_coord.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(logpath, sizeof(logpath), "%s/decisions.log", tmpdir);
    memset(&g_coord, 0, sizeof(g_coord));
    memcpy(g_coord.coord_id, "0badc0de", 9);
    g_coord.epoch = 3;
    g_coord.default_timeout_ms = 30000;
    g_coord.agent_timeout_ms = 1000;
    static char *specs[] = {"pg1=http://127.0.0.1:1", "pg2=http://127.0.0.1:2/"};
    str_list l = {specs, 2};
    ck_assert(participants_init(&l));
    txn_table_init();
}

static void teardown(void)
{
    txn_table_shutdown();
    participants_free();
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Active txn with one prepared branch per participant. */
static txn *txn_with_prepared_branches_proto(txn_protocol proto)
{
    txn *t = txn_create(proto, 30000, NULL);
    for (size_t i = 0; i < participants_count(); i++) {
        branch *b = txn_branch(t, participant_at(i), true);
        ck_assert_ptr_nonnull(b);
        txn_set_branch_state(t, b, BR_PREPARED);
    }
    return t;
}

static txn *txn_with_prepared_branches(void)
{
    return txn_with_prepared_branches_proto(PROTO_2PC);
}

static recovered reopen(uint64_t compact_bytes)
{
    recovered r;
    memset(&r, 0, sizeof(r));
    dlog_close();
    ck_assert(dlog_open(logpath, compact_bytes, on_unfinished, &r));
    return r;
}

/* ---- strmap ----------------------------------------------------------- */

START_TEST(test_strmap)
{
    strmap *m = strmap_new(true);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert(strmap_put(m, key, (void *)(intptr_t)(i + 1)));
    }
    ck_assert(!strmap_put(m, "k7", (void *)1)); /* already there */
    ck_assert_uint_eq(strmap_count(m), 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq((intptr_t)strmap_remove(m, key), i + 1);
    }
    ck_assert_ptr_null(strmap_get(m, "k0"));
    ck_assert_int_eq((intptr_t)strmap_get(m, "k4999"), 5000);
    ck_assert_uint_eq(strmap_count(m), 2500);
    ck_assert_ptr_null(strmap_remove(m, "nope"));
    strmap_free(m, NULL);
}
END_TEST

/* ---- committed set ---------------------------------------------------- */

START_TEST(test_committed_set)
{
    committed_init("0badc0de");
    committed_add("0badc0de-3-1");
    committed_add("0badc0de-3-100000");
    committed_add("0badc0de-1-7");
    committed_add("feedf00d-9-9"); /* foreign: string set */
    ck_assert(committed_has("0badc0de-3-1"));
    ck_assert(committed_has("0badc0de-3-100000"));
    ck_assert(committed_has("0badc0de-1-7"));
    ck_assert(committed_has("feedf00d-9-9"));
    ck_assert(!committed_has("0badc0de-3-2"));
    ck_assert(!committed_has("0badc0de-2-1"));
    ck_assert(!committed_has("0badc0de-3-99999999999"));
    ck_assert(!committed_has("not-a-gid"));
    ck_assert_uint_lt(committed_bytes(), 64 * 1024);
    committed_free();
}
END_TEST

/* The chunked set against a plain bitmap: seqs 0..N of two epochs committed
 * at densities that give every chunk form (all, all but a few, half, none,
 * one), in an order that commits late ones after their chunk changed form;
 * then exported, freed, imported (twice: import ORs), and compared again. */
#define MODEL_SEQS (6u * 65536u + 1234u)
static uint8_t model[2][MODEL_SEQS / 8 + 1];
static char **exported;
static size_t nexported;

static void collect(const char *payload, size_t len, void *arg)
{
    (void)arg;
    exported = realloc(exported, (nexported + 1) * sizeof(char *));
    exported[nexported] = malloc(len + 1);
    memcpy(exported[nexported], payload, len);
    exported[nexported++][len] = '\0';
}

static void model_check(void)
{
    char gid[64];
    for (int e = 0; e < 2; e++)
        for (uint32_t q = 0; q < MODEL_SEQS + 70000; q++) {
            bool want = q < MODEL_SEQS && (model[e][q / 8] & (1u << (q % 8)));
            snprintf(gid, sizeof(gid), "0badc0de-%d-%u", e + 4, q);
            if (committed_has(gid) != want)
                ck_abort_msg("%s: has %d, want %d", gid, !want, want);
        }
}

START_TEST(test_committed_set_forms)
{
    committed_init("0badc0de");
    memset(model, 0, sizeof(model));
    uint32_t rnd = 12345;
    char gid[64];
    for (int pass = 0; pass < 2; pass++)
        for (int e = 0; e < 2; e++)
            for (uint32_t q = 0; q < MODEL_SEQS; q++) {
                uint32_t chunk = q / 65536;
                rnd = rnd * 1103515245u + 12345u;
                uint32_t r = (rnd >> 8) % 1000;
                /* chunk 0: all; 1: all but ~0.5%; 2: half; 3: none;
                 * 4: one seq; 5: all (second pass only); 6 (partial): ~99% */
                bool add = chunk == 0 || (chunk == 1 && r >= 5) || (chunk == 2 && r < 500) ||
                           (chunk == 4 && q % 65536 == 777) || (chunk == 5 && pass == 1) ||
                           (chunk == 6 && r >= 10);
                if (pass == 1 && chunk == 1 && r < 2)
                    add = true; /* a late commit in a chunk already MISSING */
                if (!add)
                    continue;
                model[e][q / 8] |= (uint8_t)(1u << (q % 8));
                snprintf(gid, sizeof(gid), "0badc0de-%d-%u", e + 4, q);
                committed_add(gid);
            }
    model_check();
    size_t held = committed_bytes();

    committed_export(collect, NULL);
    ck_assert_uint_gt(nexported, 0);
    bool saw_full = false, saw_missing = false, saw_hex = false;
    for (size_t i = 0; i < nexported; i++) {
        saw_full |= strstr(exported[i], "\"full\"") != NULL;
        saw_missing |= strstr(exported[i], "\"missing\"") != NULL;
        saw_hex |= strstr(exported[i], "\"hex\"") != NULL;
    }
    ck_assert(saw_full && saw_missing && saw_hex);
    committed_free();
    committed_init("0badc0de");
    for (int twice = 0; twice < 2; twice++)
        for (size_t i = 0; i < nexported; i++)
            ck_assert_msg(committed_import(exported[i], strlen(exported[i])), "%s", exported[i]);
    model_check();
    ck_assert_uint_le(committed_bytes(), held); /* arrays come back exactly sized */
    for (size_t i = 0; i < nexported; i++)
        free(exported[i]);
    free(exported);
    exported = NULL;
    nexported = 0;

    /* the one-bitmap format of earlier versions still reads, and ORs with
     * what is there: seqs 0..15 all, 65535 and 65536 across a chunk edge */
    committed_free();
    committed_init("0badc0de");
    committed_add("0badc0de-9-3");
    const char *old = "{\"epoch\":9,\"offset\":0,\"hex\":\"ffff\"}";
    ck_assert(committed_import(old, strlen(old)));
    const char *edge = "{\"epoch\":9,\"offset\":8191,\"hex\":\"8001\"}";
    ck_assert(committed_import(edge, strlen(edge)));
    for (uint32_t q = 0; q < 70000; q++) {
        snprintf(gid, sizeof(gid), "0badc0de-9-%u", q);
        ck_assert_msg(committed_has(gid) == (q < 16 || q == 65535 || q == 65536), "%s", gid);
    }
    /* imports OR into every form: a MISSING chunk (all of chunk 1 but 100
     * seqs) gains two of them from a hex record and the rest from a missing
     * record; a BITS chunk (3) becomes FULL under a full record, which also
     * spans runs longer than one export record holds */
    for (uint32_t q = 65536; q < 2 * 65536; q++)
        if (q % 1000 != 0 || q >= 65536 + 100000) {
            snprintf(gid, sizeof(gid), "0badc0de-9-%u", q);
            committed_add(gid);
        }
    committed_add("0badc0de-9-196609"); /* chunk 3: one seq */
    size_t before = committed_bytes();
    /* 66000 = chunk 1 offset 464: byte 8192 + 58 bit 0 (and 67000: byte 8375 bit 0) */
    char rec[160];
    snprintf(rec, sizeof(rec), "{\"epoch\":9,\"offset\":%u,\"hex\":\"01\"}", 66000 / 8);
    ck_assert(committed_import(rec, strlen(rec)));
    snprintf(rec, sizeof(rec), "{\"epoch\":9,\"offset\":%u,\"hex\":\"01\"}", 67000 / 8);
    ck_assert(committed_import(rec, strlen(rec)));
    ck_assert(committed_has("0badc0de-9-66000") && committed_has("0badc0de-9-67000"));
    ck_assert(!committed_has("0badc0de-9-68000"));
    const char *keep = "{\"epoch\":9,\"chunk\":1,\"missing\":[2464,3464]}";
    ck_assert(committed_import(keep, strlen(keep))); /* 68000 and 69000 stay out */
    for (uint32_t q = 65536; q < 2 * 65536; q++) {
        snprintf(gid, sizeof(gid), "0badc0de-9-%u", q);
        ck_assert_msg(committed_has(gid) == (q != 68000 && q != 69000), "%s", gid);
    }
    const char *spans = "{\"epoch\":9,\"full\":[3,5000]}";
    ck_assert(committed_import(spans, strlen(spans)));
    ck_assert(committed_has("0badc0de-9-196608") && committed_has("0badc0de-9-327745535"));
    ck_assert(!committed_has("0badc0de-9-327745536") && !committed_has("0badc0de-9-131072"));
    /* FULL chunks hold no storage: the table grew (to 8192 entries), no more */
    ck_assert_uint_lt(committed_bytes(), before + 8192 * 32);
    committed_export(collect, NULL);
    int fulls = 0;
    for (size_t i = 0; i < nexported; i++)
        fulls += strstr(exported[i], "\"full\"") != NULL;
    ck_assert_int_eq(fulls, 2); /* 3..4098 and 4099..5000 */
    committed_free();
    committed_init("0badc0de");
    for (size_t i = 0; i < nexported; i++) {
        ck_assert(committed_import(exported[i], strlen(exported[i])));
        free(exported[i]);
    }
    free(exported);
    exported = NULL;
    nexported = 0;
    ck_assert(committed_has("0badc0de-9-327745535") && !committed_has("0badc0de-9-69000"));
    ck_assert(committed_has("0badc0de-9-67000") && committed_has("0badc0de-9-65535"));
    /* malformed records are refused */
    const char *bad[] = {"{\"epoch\":9,\"chunk\":0,\"missing\":[5,3]}",
                         "{\"epoch\":9,\"chunk\":0,\"missing\":[65536]}",
                         "{\"epoch\":9,\"full\":[3,2]}",
                         "{\"epoch\":9,\"full\":[1]}",
                         "{\"epoch\":9,\"offset\":0,\"hex\":\"fg\"}",
                         "{\"epoch\":-1,\"full\":[0,0]}",
                         "{\"offset\":0,\"hex\":\"ff\"}",
                         NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(!committed_import(bad[i], strlen(bad[i])), "%s", bad[i]);
    committed_free();

    /* what it costs: 2^20 transactions, all committed (one bitmap: 128 KiB),
     * then 2^20 more of which 1 in 100 did not */
    committed_init("0badc0de");
    for (uint32_t q = 0; q < (1u << 20); q++) {
        snprintf(gid, sizeof(gid), "0badc0de-1-%u", q);
        committed_add(gid);
    }
    size_t all = committed_bytes();
    ck_assert_msg(all < 2048, "2^20 committed gids hold %zu bytes", all);
    for (uint32_t q = 1u << 20; q < (2u << 20); q++) {
        snprintf(gid, sizeof(gid), "0badc0de-1-%u", q);
        if (q % 100 != 0)
            committed_add(gid);
    }
    /* 10486 misses, 2 bytes each, in arrays at most twice their size (one
     * bitmap: 128 KiB more) */
    size_t some = committed_bytes() - all;
    ck_assert_msg(some < 4 * 10486 + 4096, "2^20 gids, 1%% left out, hold %zu bytes", some);
    committed_free();
}
END_TEST

/* ---- state machine + decision log ------------------------------------- */

START_TEST(test_commit_decision_replayed_until_end)
{
    recovered r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);
    txn *t = txn_with_prepared_branches();
    ck_assert(!txn_fsm_advance(t, EV_VOTES_YES, "not from active")); /* no such row */
    ck_assert_int_eq(txn_state_get(t), TXN_ACTIVE);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(!dlog_is_committed(t->gid));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "all yes"));
    ck_assert_int_eq(txn_state_get(t), TXN_COMMITTING);
    ck_assert(t->decision_logged);
    ck_assert(dlog_is_committed(t->gid));
    ck_assert_str_eq(txn_outcome(t, NULL), "committed");

    r = reopen(1 << 20); /* as after a crash: 'C' without 'E' */
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.gids[0], t->gid);
    ck_assert_uint_eq(r.nbranches[0], 2);
    ck_assert(dlog_is_committed(t->gid));

    ck_assert(txn_fsm_advance(t, EV_ACKED, "all acknowledged"));
    ck_assert_int_eq(txn_state_get(t), TXN_COMMITTED);
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);
    ck_assert(dlog_is_committed(t->gid)); /* replayed 'C' still answers outcomes */
    txn_unref(t);
    dlog_close();
}
END_TEST

START_TEST(test_abort_logs_nothing)
{
    (void)reopen(1 << 20);
    txn *t = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(txn_fsm_advance(t, EV_VOTE_NO, "participant pg2 voted no"));
    ck_assert(txn_fsm_advance(t, EV_ACKED, "all acknowledged"));
    ck_assert_int_eq(txn_state_get(t), TXN_ABORTED);
    char *reason = NULL;
    ck_assert_str_eq(txn_outcome(t, &reason), "aborted");
    ck_assert_str_eq(reason, "participant pg2 voted no");
    free(reason);
    ck_assert(!dlog_is_committed(t->gid));
    ck_assert_uint_eq(dlog_commit_records(), 0);
    recovered r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);

    txn *u = txn_create(PROTO_2PC, 30000, NULL); /* rollback of an active one: first reason wins */
    ck_assert(txn_fsm_advance(u, EV_TIMEOUT, "timeout"));
    ck_assert(!txn_fsm_advance(u, EV_ROLLBACK, "rollback requested")); /* not active any more */
    ck_assert(txn_fsm_advance(u, EV_ACKED, "all acknowledged"));
    ck_assert_str_eq(txn_outcome(u, &reason), "aborted");
    ck_assert_str_eq(reason, "timeout");
    free(reason);
    txn_unref(t);
    txn_unref(u);
    dlog_close();
}
END_TEST

/* A commit with nothing prepared needs no decision: no forced record, only
 * an 'R' (not forced) that keeps its outcome "committed" across a restart
 * (a re-sent commit must not turn into presumed abort). */
START_TEST(test_read_only_commit_needs_no_record)
{
    (void)reopen(1 << 20);
    txn *t = txn_create(PROTO_2PC, 30000, NULL);
    branch *b = txn_branch(t, participant_at(0), true);
    txn_set_branch_state(t, b, BR_READ_ONLY);
    uint64_t syncs = dlog_syncs();
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "read only"));
    ck_assert(!t->decision_logged);
    ck_assert(dlog_is_committed(t->gid));
    ck_assert(txn_fsm_advance(t, EV_ACKED, "nothing to finish"));
    ck_assert_uint_eq(dlog_syncs(), syncs);                          /* nothing forced */
    ck_assert_uint_eq(dlog_bytes(), 9 + strlen("{\"gid\":\"\"}") + strlen(t->gid)); /* one 'R' */
    char gid[GID_MAX_LEN + 1];
    snprintf(gid, sizeof(gid), "%s", t->gid);
    txn_unref(t);
    recovered r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0); /* nothing unfinished */
    ck_assert(dlog_is_committed(gid));
    dlog_close();
}
END_TEST

START_TEST(test_compaction_keeps_unfinished_only)
{
    (void)reopen(4096);
    txn *keep = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(keep, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(keep, EV_VOTES_YES, "y"));
    char finished[40][GID_MAX_LEN + 1];
    for (int i = 0; i < 40; i++) { /* finished pairs: ~200 bytes each */
        txn *t = txn_with_prepared_branches();
        snprintf(finished[i], sizeof(finished[i]), "%s", t->gid);
        ck_assert(txn_fsm_advance(t, EV_COMMIT, "c"));
        ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "y"));
        ck_assert(txn_fsm_advance(t, EV_ACKED, "a"));
        txn_unref(t);
    }
    txn *aborted = txn_create(PROTO_2PC, 30000, NULL);
    ck_assert(txn_fsm_advance(aborted, EV_ROLLBACK, "r"));
    uint64_t before = dlog_bytes();
    ck_assert_uint_gt(before, 4096);
    dlog_maybe_compact();
    ck_assert_uint_eq(dlog_compactions(), 1);
    ck_assert_uint_lt(dlog_bytes(), 400);
    dlog_maybe_compact(); /* below the threshold now: nothing */
    ck_assert_uint_eq(dlog_compactions(), 1);
    recovered r = reopen(4096);
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.gids[0], keep->gid);
    ck_assert_uint_eq(r.nbranches[0], 2);
    /* The 'S' snapshot kept every commit, and only commits. */
    for (int i = 0; i < 40; i++)
        ck_assert(dlog_is_committed(finished[i]));
    ck_assert(dlog_is_committed(keep->gid));
    ck_assert(!dlog_is_committed(aborted->gid));
    /* Compacting the compacted log changes nothing. */
    dlog_close();
    r.n = 0;
    ck_assert(dlog_open(logpath, 16, on_unfinished, &r));
    dlog_maybe_compact();
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 1);
    ck_assert(dlog_is_committed(finished[17]));
    txn_unref(keep);
    txn_unref(aborted);
    dlog_close();
}
END_TEST

typedef struct {
    char *payloads[64];
    size_t lens[64];
    int n;
} chunks;

static void collect_chunk(const char *payload, size_t len, void *arg)
{
    chunks *c = arg;
    ck_assert_int_lt(c->n, 64);
    ck_assert_uint_lt(len, 1u << 20); /* fits a wal record */
    c->payloads[c->n] = strndup(payload, len);
    c->lens[c->n++] = len;
}

START_TEST(test_committed_snapshot_roundtrip)
{
    committed_init("0badc0de");
    committed_add("0badc0de-5-3");
    committed_add("0badc0de-5-4000000"); /* bitmap of ~500 KB: several chunks */
    committed_add("0badc0de-2-9");
    committed_add("abcdef01-1-1");
    chunks c = {.n = 0};
    committed_export(collect_chunk, &c);
    ck_assert_int_ge(c.n, 3);
    committed_free();
    committed_init("0badc0de");
    for (int i = 0; i < c.n; i++) {
        ck_assert(committed_import(c.payloads[i], c.lens[i]));
        free(c.payloads[i]);
    }
    ck_assert(committed_has("0badc0de-5-3"));
    ck_assert(committed_has("0badc0de-5-4000000"));
    ck_assert(committed_has("0badc0de-2-9"));
    ck_assert(committed_has("abcdef01-1-1"));
    ck_assert(!committed_has("0badc0de-5-4"));
    ck_assert(!committed_has("0badc0de-5-3999999"));
    const char *bad = "{\"epoch\":1,\"offset\":0,\"hex\":\"zz\"}";
    ck_assert(!committed_import(bad, strlen(bad)));
    ck_assert(!committed_import("[]", 2));
    committed_free();
}
END_TEST

START_TEST(test_eviction)
{
    (void)reopen(1 << 20);
    txn *t = txn_create(PROTO_2PC, 30000, NULL);
    char gid[GID_MAX_LEN + 1];
    snprintf(gid, sizeof(gid), "%s", t->gid);
    ck_assert(txn_fsm_advance(t, EV_ROLLBACK, "rollback requested"));
    ck_assert_uint_eq(txn_evict(now_ms() + 1000000, 0, SIZE_MAX), 0); /* aborting: still live */
    ck_assert(txn_fsm_advance(t, EV_ACKED, "done"));
    txn_unref(t);
    ck_assert_uint_eq(txn_evict(now_ms(), 60000, SIZE_MAX), 0); /* within retention */
    ck_assert_uint_eq(txn_evict(now_ms() + 61000, 60000, SIZE_MAX), 1);
    ck_assert_ptr_null(txn_lookup(gid));
    dlog_close();
}
END_TEST

/* --finished-retention-max: beyond the newest N finished ones the oldest go,
 * whatever their age; live ones are never counted or dropped. */
START_TEST(test_eviction_count_cap)
{
    (void)reopen(1 << 20);
    char gids[3][GID_MAX_LEN + 1];
    for (int i = 0; i < 3; i++) {
        txn *t = txn_create(PROTO_2PC, 30000, NULL);
        snprintf(gids[i], sizeof(gids[i]), "%s", t->gid);
        ck_assert(txn_fsm_advance(t, EV_ROLLBACK, "rollback requested"));
        ck_assert(txn_fsm_advance(t, EV_ACKED, "done"));
        txn_unref(t);
    }
    txn *live = txn_create(PROTO_2PC, 30000, NULL);
    ck_assert_uint_eq(txn_retained_count(), 3);
    ck_assert_uint_eq(txn_evict(now_ms(), 600000, 3), 0);
    ck_assert_uint_eq(txn_evict(now_ms(), 600000, 1), 2);
    ck_assert_uint_eq(txn_retained_count(), 1);
    ck_assert_ptr_null(txn_lookup(gids[0]));
    ck_assert_ptr_null(txn_lookup(gids[1]));
    txn *kept = txn_lookup(gids[2]);
    ck_assert_ptr_nonnull(kept);
    txn_unref(kept);
    ck_assert_uint_eq(txn_evict(now_ms(), 600000, 0), 1);
    ck_assert_uint_eq(txn_retained_count(), 0);
    txn *still = txn_lookup(live->gid);
    ck_assert_ptr_eq(still, live);
    txn_unref(still);
    ck_assert(txn_fsm_advance(live, EV_ROLLBACK, "rollback requested"));
    ck_assert(txn_fsm_advance(live, EV_ACKED, "done"));
    txn_unref(live);
    ck_assert_uint_eq(txn_evict(now_ms(), 600000, 0), 1);
    dlog_close();
}
END_TEST

/* --max-unfinished: a begin past the limit creates nothing and uses no gid;
 * once one transaction finishes (aborting still counts: it is not finished)
 * the next is created. */
START_TEST(test_max_unfinished)
{
    (void)reopen(1 << 20);
    g_coord.max_unfinished = 2;
    txn *a = txn_create(PROTO_2PC, 30000, NULL);
    txn *b = txn_create_locked(PROTO_2PC, 30000, NULL);
    pthread_mutex_unlock(&b->op_mu);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(txn_create(PROTO_2PC, 30000, NULL));
    ck_assert_ptr_null(txn_create_locked(PROTO_2PC, 30000, NULL));
    ck_assert(txn_fsm_advance(a, EV_ROLLBACK, "rollback requested"));
    ck_assert_ptr_null(txn_create(PROTO_2PC, 30000, NULL)); /* aborting: unfinished */
    ck_assert(txn_fsm_advance(a, EV_ACKED, "done"));
    txn *c = txn_create(PROTO_2PC, 30000, NULL);
    ck_assert_ptr_nonnull(c);
    /* the refused begins used no sequence number */
    uint64_t eb = 0, sb = 0, ec = 0, sc = 0;
    char cid[16];
    ck_assert(gid_parse(b->gid, cid, &eb, &sb));
    ck_assert(gid_parse(c->gid, cid, &ec, &sc));
    ck_assert_uint_eq(sc, sb + 1);
    g_coord.max_unfinished = 0;
    for (txn **p = (txn *[]){b, c, NULL}; *p; p++) {
        ck_assert(txn_fsm_advance(*p, EV_ROLLBACK, "rollback requested"));
        ck_assert(txn_fsm_advance(*p, EV_ACKED, "done"));
        txn_unref(*p);
    }
    txn_unref(a);
    dlog_close();
}
END_TEST

START_TEST(test_timeouts_collected)
{
    txn *slow = txn_create(PROTO_2PC, 100000, NULL);
    txn *fast = txn_create(PROTO_2PC, 10, NULL);
    txn **exp = NULL;
    size_t n = txn_collect_expired(now_ms() + 50, &exp);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(exp[0], fast);
    txn_unref(exp[0]);
    free(exp);
    txn_unref(slow);
    txn_unref(fast);
}
END_TEST

/* ---- 3PC rows of the state machine ------------------------------------ */

/* Every (state, event) pair: the rows of txn_fsm.c and nothing else. */
typedef struct {
    txn_state from;
    txn_event ev;
    txn_state to;
} expected_row;

static const expected_row expected_rows[] = {
    {TXN_ACTIVE, EV_COMMIT, TXN_PREPARING},
    {TXN_ACTIVE, EV_ROLLBACK, TXN_ABORTING},
    {TXN_ACTIVE, EV_TIMEOUT, TXN_ABORTING},
    {TXN_ACTIVE, EV_FAILED, TXN_ABORTING},
    {TXN_ACTIVE, EV_HEURISTIC_ABORT, TXN_ABORTING},
    {TXN_PREPARING, EV_VOTE_NO, TXN_ABORTING},
    {TXN_PREPARING, EV_VOTES_YES, TXN_COMMITTING},
    {TXN_PREPARING, EV_VOTES_YES_3PC, TXN_PRECOMMITTING},
    {TXN_PRECOMMITTING, EV_PRECOMMITTED, TXN_COMMITTING},
    {TXN_PRECOMMITTING, EV_NO_PRECOMMIT, TXN_ABORTING},
    {TXN_PRECOMMITTING, EV_HEURISTIC_ABORT, TXN_ABORTING},
    {TXN_COMMITTING, EV_ACKED, TXN_COMMITTED},
    {TXN_COMMITTING, EV_HEURISTIC_COMMIT, TXN_COMMITTING},
    {TXN_ABORTING, EV_ACKED, TXN_ABORTED},
    {TXN_ABORTING, EV_HEURISTIC_ABORT, TXN_ABORTING},
};

START_TEST(test_fsm_table_complete)
{
    (void)reopen(1 << 20);
    for (int st = 0; st < TXN_STATE_COUNT; st++) {
        for (int ev = 0; ev < EV_COUNT; ev++) {
            const expected_row *row = NULL;
            /* one row at most: txn_fsm_advance takes the first, so a second
             * would be dead, whatever it says */
            ck_assert_msg(txn_fsm_rows_matching((txn_state)st, (txn_event)ev) <= 1,
                          "%zu rows for %s on %s", txn_fsm_rows_matching((txn_state)st, (txn_event)ev),
                          txn_state_name(st), txn_event_name(ev));
            for (size_t i = 0; i < ARRAY_LEN(expected_rows); i++)
                if ((int)expected_rows[i].from == st && (int)expected_rows[i].ev == ev)
                    row = &expected_rows[i];
            /* A 3PC transaction with prepared branches put in state st. */
            txn *t = txn_with_prepared_branches_proto(PROTO_3PC);
            if (st == TXN_COMMITTING || st == TXN_COMMITTED || st == TXN_PRECOMMITTING)
                ck_assert(dlog_precommit(t, NULL)); /* as if it got there through the table */
            if (st == TXN_COMMITTING || st == TXN_COMMITTED) {
                ck_assert(dlog_commit(t, NULL));
                t->decision_logged = true;
            }
            atomic_store(&t->state, st);
            bool moved = txn_fsm_advance(t, (txn_event)ev, "table test");
            ck_assert_msg(moved == (row != NULL), "%s on %s: moved=%d", txn_state_name(st),
                          txn_event_name(ev), moved);
            ck_assert_int_eq(txn_state_get(t), row ? (int)row->to : st);
            txn_unref(t);
        }
    }
    dlog_close();
}
END_TEST

START_TEST(test_3pc_commit_path_records)
{
    recovered r = reopen(1 << 20);
    txn *t = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    snprintf(t->branches[0].xid, sizeof(t->branches[0].xid), "%s", "90210"); /* its yes vote's */
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES_3PC, "2 yes"));
    ck_assert_int_eq(txn_state_get(t), TXN_PRECOMMITTING);
    ck_assert(t->precommit_logged);
    ck_assert(!t->decision_logged);
    ck_assert(!dlog_is_committed(t->gid)); /* 'P' decides nothing */
    ck_assert_ptr_null(txn_outcome(t, NULL));
    ck_assert_uint_eq(dlog_commit_records(), 0);

    r = reopen(1 << 20); /* crash after 'P': recovery asks the agents */
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.gids[0], t->gid);
    ck_assert_int_eq(r.kinds[0], DLOG_PRECOMMIT);
    ck_assert_int_eq(r.protos[0], PROTO_3PC);
    ck_assert_uint_eq(r.nbranches[0], 2);
    ck_assert_str_eq(r.first_participant[0], "pg1");
    char bgid[BRANCH_GID_MAX_LEN + 1];
    ck_assert(branch_gid_make(bgid, sizeof(bgid), t->gid, "pg1"));
    ck_assert_str_eq(r.first_branch_gid[0], bgid);
    ck_assert_str_eq(r.first_xid[0], "90210"); /* kept for the DoCommit after a restart */
    ck_assert(!dlog_is_committed(t->gid));

    /* One pre-commit acknowledged, one not: both are in the 'C'. */
    txn_set_branch_state(t, &t->branches[0], BR_PRECOMMITTED);
    ck_assert(!txn_fsm_advance(t, EV_ACKED, "not yet")); /* no such row from precommitting */
    ck_assert(txn_fsm_advance(t, EV_PRECOMMITTED, "1 of 2 pre-commits acknowledged"));
    ck_assert_int_eq(txn_state_get(t), TXN_COMMITTING);
    ck_assert(dlog_is_committed(t->gid));
    ck_assert_str_eq(txn_outcome(t, NULL), "committed");
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.kinds[0], DLOG_COMMIT);
    ck_assert_uint_eq(r.nbranches[0], 2);

    ck_assert(txn_fsm_advance(t, EV_ACKED, "all acknowledged"));
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);
    ck_assert(dlog_is_committed(t->gid));

    /* decide_precommit refuses a 2PC transaction. */
    txn *u = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(u, EV_COMMIT, "commit requested"));
    ck_assert(!txn_fsm_advance(u, EV_VOTES_YES_3PC, "wrong protocol"));
    ck_assert_int_eq(txn_state_get(u), TXN_PREPARING);
    txn_unref(t);
    txn_unref(u);
    dlog_close();
}
END_TEST

START_TEST(test_3pc_recovered_abort_ends_the_precommit)
{
    (void)reopen(1 << 20);
    txn *t = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES_3PC, "y"));
    ck_assert(txn_fsm_advance(t, EV_NO_PRECOMMIT, "3pc recovery: pg1=uncertain pg2=uncertain"));
    ck_assert_str_eq(txn_outcome(t, NULL), "aborted");
    recovered r = reopen(1 << 20);
    /* the 'P' stays until the rollbacks are acknowledged, but with its 'A':
     * an abort to finish, not a 'P' to decide again */
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.kinds[0], DLOG_PRECOMMIT_DECIDED_ABORT);
    ck_assert(txn_fsm_advance(t, EV_ACKED, "all acknowledged")); /* writes 'E' */
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);
    ck_assert(!dlog_is_committed(t->gid));
    txn_unref(t);
    dlog_close();
}
END_TEST

START_TEST(test_3pc_recovery_rule)
{
    /* (precommitted or committed, refused, uncertain, unreachable) */
    ck_assert_int_eq(threepc_recovery_rule(1, 0, 2, 0), RECOVERY_COMMIT);
    ck_assert_int_eq(threepc_recovery_rule(1, 0, 0, 2), RECOVERY_COMMIT);
    ck_assert_int_eq(threepc_recovery_rule(1, 1, 0, 0), RECOVERY_COMMIT); /* logged as violation */
    ck_assert_int_eq(threepc_recovery_rule(0, 1, 1, 1), RECOVERY_ABORT);
    ck_assert_int_eq(threepc_recovery_rule(0, 0, 3, 0), RECOVERY_ABORT);
    ck_assert_int_eq(threepc_recovery_rule(0, 0, 2, 1), RECOVERY_WAIT);
    ck_assert_int_eq(threepc_recovery_rule(0, 0, 0, 3), RECOVERY_WAIT);
}
END_TEST

/* ---- 'P' and 'H' records ---------------------------------------------- */

typedef struct {
    int n;
    char types[16];
    char payloads[16][512];
} raw_records;

static bool collect_raw(uint8_t type, const void *payload, size_t len, void *arg)
{
    raw_records *rr = arg;
    if (rr->n < 16) {
        rr->types[rr->n] = (char)type;
        snprintf(rr->payloads[rr->n], sizeof(rr->payloads[0]), "%.*s", (int)len,
                 (const char *)payload);
    }
    rr->n++;
    return true;
}

START_TEST(test_record_encoding)
{
    (void)reopen(1 << 20);
    txn *t = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(dlog_precommit(t, NULL));
    bool applied;
    ck_assert(dlog_heuristic(t->gid, false, &applied));
    ck_assert(applied);
    dlog_close();
    raw_records rr = {0};
    wal *w = wal_open(logpath, collect_raw, &rr);
    ck_assert_ptr_nonnull(w);
    wal_close(w);
    ck_assert_int_eq(rr.n, 2);
    ck_assert_int_eq(rr.types[0], 'P');
    ck_assert_int_eq(rr.types[1], 'H');
    json_t *p = json_loads(rr.payloads[0], 0, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(json_string_value(json_object_get(p, "gid")), t->gid);
    ck_assert_str_eq(json_string_value(json_object_get(p, "protocol")), "3pc");
    ck_assert_uint_eq(json_array_size(json_object_get(p, "branches")), 2);
    ck_assert(json_is_integer(json_object_get(p, "at_ms")));
    json_decref(p);
    json_t *h = json_loads(rr.payloads[1], 0, NULL);
    ck_assert_ptr_nonnull(h);
    ck_assert_str_eq(json_string_value(json_object_get(h, "gid")), t->gid);
    ck_assert_str_eq(json_string_value(json_object_get(h, "outcome")), "abort");
    ck_assert(json_is_integer(json_object_get(h, "at_ms")));
    ck_assert_uint_eq(json_object_size(h), 3);
    json_decref(h);
    txn_unref(t);

    /* 'C' (gid first: replay reads it from the leading bytes), 'A', 'E'
     * and 'R' (exactly {"gid":...}) */
    (void)reopen(1 << 20);
    txn *c = txn_with_prepared_branches();
    txn *a = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(dlog_commit(c, NULL));
    ck_assert(dlog_precommit(a, NULL));
    ck_assert(dlog_precommit_abort(a));
    ck_assert(dlog_end(c->gid));
    dlog_note_committed("0badc0de-7-1");
    dlog_close();
    raw_records r2 = {0};
    w = wal_open(logpath, collect_raw, &r2);
    ck_assert_ptr_nonnull(w);
    wal_close(w);
    ck_assert_int_eq(r2.n, 7); /* the 'P' and 'H' above, then these five */
    const char want_types[] = {'C', 'P', 'A', 'E', 'R'};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(r2.types[2 + i], want_types[i]);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "{\"gid\":\"%s\",", c->gid);
    ck_assert_msg(strncmp(r2.payloads[2], prefix, strlen(prefix)) == 0, "'C' payload: %s",
                  r2.payloads[2]);
    json_t *cj = json_loads(r2.payloads[2], 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(cj, "protocol")), "2pc");
    ck_assert_uint_eq(json_array_size(json_object_get(cj, "branches")), 2);
    ck_assert(json_is_integer(json_object_get(cj, "at_ms")));
    json_decref(cj);
    json_t *aj = json_loads(r2.payloads[4], 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(aj, "gid")), a->gid);
    ck_assert(json_is_integer(json_object_get(aj, "at_ms")));
    ck_assert_uint_eq(json_object_size(aj), 2);
    json_decref(aj);
    snprintf(prefix, sizeof(prefix), "{\"gid\":\"%s\"}", c->gid);
    ck_assert_str_eq(r2.payloads[5], prefix);
    ck_assert_str_eq(r2.payloads[6], "{\"gid\":\"0badc0de-7-1\"}");
    txn_unref(c);
    txn_unref(a);
}
END_TEST

/* Replay reads the gid of a 'C' or 'E' of ours from its first bytes
 * (leading_gid) and parses any other shape whole; an unfinished 'C' is parsed
 * whole before recovery, and one that does not parse stops the start. */
static void append_raw(wal *w, char type, const char *payload)
{
    ck_assert(wal_append(w, (uint8_t)type, payload, strlen(payload), true));
}

#define BR_JSON_OF(seq)                                                                    \
    "\"branches\":[{\"participant\":\"pg1\",\"branch_gid\":\"txc:0badc0de-5-" seq ":pg1\"}]"
#define BR_JSON BR_JSON_OF("1")

START_TEST(test_replay_record_shapes)
{
    dlog_close();
    wal *w = wal_open(logpath, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    /* gid not first: the whole parse; unfinished, with its branches */
    append_raw(w, 'C', "{\"protocol\":\"2pc\"," BR_JSON ",\"at_ms\":1,\"gid\":\"0badc0de-5-1\"}");
    /* ours: gid first, then ended by an 'E' of ours */
    append_raw(w, 'C', "{\"gid\":\"0badc0de-5-2\",\"protocol\":\"2pc\"," BR_JSON ",\"at_ms\":1}");
    append_raw(w, 'E', "{\"gid\":\"0badc0de-5-2\"}");
    /* ended by an 'E' in another shape (spaces): the whole parse */
    append_raw(w, 'C', "{\"gid\":\"0badc0de-5-3\",\"protocol\":\"2pc\"," BR_JSON ",\"at_ms\":1}");
    append_raw(w, 'E', "{ \"gid\" : \"0badc0de-5-3\" }");
    /* an 'E' of a gid that 0badc0de-5-4 is a prefix of does not end it */
    append_raw(w, 'C', "{\"gid\":\"0badc0de-5-4\",\"protocol\":\"2pc\"," BR_JSON_OF("4") ",\"at_ms\":1}");
    append_raw(w, 'E', "{\"gid\":\"0badc0de-5-40\"}");
    wal_close(w);

    recovered r;
    memset(&r, 0, sizeof(r));
    ck_assert(dlog_open(logpath, 1 << 20, on_unfinished, &r));
    ck_assert_int_eq(r.n, 2);
    int a = recovered_find(&r, "0badc0de-5-1");
    ck_assert_int_ge(a, 0);
    ck_assert_uint_eq(r.nbranches[a], 1);
    ck_assert_str_eq(r.first_branch_gid[a], "txc:0badc0de-5-1:pg1");
    ck_assert_int_ge(recovered_find(&r, "0badc0de-5-4"), 0);
    ck_assert_int_lt(recovered_find(&r, "0badc0de-5-2"), 0);
    ck_assert_int_lt(recovered_find(&r, "0badc0de-5-3"), 0);
    ck_assert(dlog_is_committed("0badc0de-5-2"));
    ck_assert(dlog_is_committed("0badc0de-5-3"));
    dlog_close();

    /* a finished 'C' is never parsed past its gid; an unfinished one that
     * does not parse refuses the start */
    w = wal_open(logpath, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    append_raw(w, 'C', "{\"gid\":\"0badc0de-5-5\",broken");
    append_raw(w, 'E', "{\"gid\":\"0badc0de-5-5\"}");
    wal_close(w);
    memset(&r, 0, sizeof(r));
    ck_assert(dlog_open(logpath, 1 << 20, on_unfinished, &r));
    ck_assert(dlog_is_committed("0badc0de-5-5"));
    dlog_close();
    w = wal_open(logpath, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    append_raw(w, 'C', "{\"gid\":\"0badc0de-5-6\",broken");
    wal_close(w);
    memset(&r, 0, sizeof(r));
    ck_assert(!dlog_open(logpath, 1 << 20, on_unfinished, &r));
    ck_assert_int_eq(r.n, 0);
    dlog_close();

    /* nor does one whose branches recovery could not all restore: none, not
     * an array, a branch without its participant, or a branch gid that is
     * not the gid's (recovery used to skip such a branch and finish the
     * decision without it). The same gid with its own branch gid starts,
     * and so does an empty list (the 'C' after a 'P' whose branches all
     * committed on their own). */
    static const struct {
        const char *rec;
        bool starts;
    } shapes[] = {
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"2pc\",\"at_ms\":1}", false},
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"2pc\",\"branches\":{},\"at_ms\":1}", false},
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"2pc\",\"at_ms\":1,"
         "\"branches\":[{\"branch_gid\":\"txc:0badc0de-5-7:pg1\"}]}",
         false},
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"2pc\"," BR_JSON_OF("1") ",\"at_ms\":1}", false},
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"2pc\"," BR_JSON_OF("7") ",\"at_ms\":1}", true},
        {"{\"gid\":\"0badc0de-5-7\",\"protocol\":\"3pc\",\"branches\":[],\"at_ms\":1}", true},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        unlink(logpath);
        w = wal_open(logpath, NULL, NULL);
        ck_assert_ptr_nonnull(w);
        append_raw(w, 'C', shapes[i].rec);
        wal_close(w);
        memset(&r, 0, sizeof(r));
        ck_assert_msg(dlog_open(logpath, 1 << 20, on_unfinished, &r) == shapes[i].starts,
                      "%s with %s", shapes[i].starts ? "refused" : "started", shapes[i].rec);
        ck_assert_int_eq(r.n, shapes[i].starts ? 1 : 0);
        dlog_close();
    }
}
END_TEST

/* A start's 'N' record: the next start sees its epoch although it logged no
 * decision (before, a coordinator.state restored alone from a backup could
 * take that epoch again and issue its gids twice), and a compaction of the
 * run that wrote it keeps it. */
START_TEST(test_epoch_record_outlives_restart_and_compaction)
{
    recovered r = reopen(1 << 20);
    ck_assert_uint_eq(dlog_max_epoch(), 0);
    ck_assert(dlog_note_epoch("0badc0de", 41));
    r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0);
    ck_assert_uint_eq(dlog_max_epoch(), 41);
    ck_assert(!dlog_is_committed("0badc0de-41-0"));

    r = reopen(16);
    ck_assert(dlog_note_epoch("0badc0de", 42));
    dlog_maybe_compact();
    ck_assert_uint_eq(dlog_compactions(), 1);
    r = reopen(1 << 20);
    ck_assert_uint_eq(dlog_max_epoch(), 42);
    dlog_close();
}
END_TEST

/* Pass 0: reopen the log as it is. Pass 1: compact it first, then reopen:
 * the answers must not change. */
static recovered reopen_pass(int pass)
{
    recovered r = reopen(pass ? 16 : 1 << 20);
    if (pass == 1) {
        dlog_maybe_compact();
        ck_assert_uint_eq(dlog_compactions(), 1);
        r = reopen(1 << 20);
    }
    return r;
}

START_TEST(test_heuristic_records_replayed)
{
    (void)reopen(1 << 20);
    /* a: 'P' then 'H' abort -> an abort to finish */
    txn *a = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(dlog_precommit(a, NULL));
    bool applied;
    ck_assert(dlog_heuristic(a->gid, false, &applied));
    ck_assert(applied);
    /* c: 'C' then 'H' commit -> ended, still committed */
    txn *c = txn_with_prepared_branches();
    ck_assert(dlog_commit(c, NULL));
    ck_assert(dlog_heuristic(c->gid, true, &applied));
    ck_assert(applied);
    /* x: 'H' abort alone (an active transaction) -> nothing to finish */
    txn *x = txn_create(PROTO_2PC, 30000, NULL);
    ck_assert(dlog_heuristic(x->gid, false, &applied));
    /* k: 'C' then an 'H' abort that contradicts it -> the commit stands */
    txn *k = txn_with_prepared_branches();
    ck_assert(dlog_commit(k, NULL));
    ck_assert(dlog_heuristic(k->gid, false, &applied));
    ck_assert(!applied); /* refused, logged */
    /* q: 'H' commit without any 'C' -> ignored */
    txn *q = txn_create(PROTO_2PC, 30000, NULL);
    ck_assert(dlog_heuristic(q->gid, true, &applied));
    ck_assert(!applied);
    /* e: 'C' then 'E' -> every branch acknowledged */
    txn *e = txn_with_prepared_branches();
    ck_assert(dlog_commit(e, NULL));
    ck_assert(dlog_end(e->gid));
    /* l: 'C', 'E', then an operator's 'H' commit that lost the race with the
     * last acknowledgement -> nothing given up: still acknowledged, live and
     * after a restart or a compaction */
    txn *l = txn_with_prepared_branches();
    ck_assert(dlog_commit(l, NULL));
    ck_assert(dlog_end(l->gid));
    ck_assert(dlog_heuristic(l->gid, true, &applied));
    ck_assert(!applied); /* the caller reports it not recorded */
    ck_assert(dlog_commit_ended(l->gid));
    ck_assert_int_eq(dlog_heuristic_outcome(l->gid), 0);
    /* o: a compacted log's 'H' commit in the shape written before the
     * "compacted" flag ({"gid","outcome"}, no "at_ms"), its 'C' long ended:
     * it stands alone, as it did then */
    txn *o = txn_with_prepared_branches();
    ck_assert(dlog_commit(o, NULL));
    ck_assert(dlog_end(o->gid));
    dlog_close();
    wal *w = wal_open(logpath, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    char *old_h = xasprintf("{\"gid\":\"%s\",\"outcome\":\"commit\"}", o->gid);
    ck_assert(wal_append(w, 'H', old_h, strlen(old_h), true));
    free(old_h);
    wal_close(w);

    for (int pass = 0; pass < 2; pass++) {
        recovered r = reopen_pass(pass);
        ck_assert_int_eq(r.n, 2);
        int ia = recovered_find(&r, a->gid), ik = recovered_find(&r, k->gid);
        ck_assert_int_ge(ia, 0);
        ck_assert_int_ge(ik, 0);
        ck_assert_int_eq(r.kinds[ia], DLOG_PRECOMMIT_ABORTED);
        ck_assert_uint_eq(r.nbranches[ia], 2);
        ck_assert_int_eq(r.kinds[ik], DLOG_COMMIT);
        ck_assert_int_eq(recovered_find(&r, c->gid), -1);
        ck_assert_int_eq(recovered_find(&r, x->gid), -1);
        ck_assert(dlog_is_committed(c->gid));
        ck_assert(dlog_is_committed(k->gid));
        ck_assert(!dlog_is_committed(a->gid));
        ck_assert(!dlog_is_committed(x->gid));
        ck_assert(!dlog_is_committed(q->gid));
        ck_assert_int_eq(dlog_heuristic_outcome(a->gid), 'a'); /* kept with its 'P' */
        /* a heuristic commit is kept, also by compaction: its silent
         * branches never acknowledged (an agent's sweep commits one that
         * comes back prepared) */
        ck_assert_int_eq(dlog_heuristic_outcome(c->gid), 'c');
        ck_assert(!dlog_commit_ended(c->gid));
        ck_assert(!dlog_commit_ended(k->gid)); /* its 'C' is pending */
        ck_assert(dlog_commit_ended(e->gid));
        ck_assert(dlog_commit_ended(l->gid));
        ck_assert_int_eq(dlog_heuristic_outcome(l->gid), 0);
        ck_assert(!dlog_commit_ended(o->gid));
        ck_assert_int_eq(dlog_heuristic_outcome(o->gid), 'c');
        if (pass == 0) {
            ck_assert_int_eq(dlog_heuristic_outcome(x->gid), 'a');
        } else {
            /* compaction dropped the 'H' abort of a finished gid; outcomes
             * unchanged */
            ck_assert_int_eq(dlog_heuristic_outcome(x->gid), 0);
        }
        ck_assert_int_eq(dlog_heuristic_outcome(k->gid), 0);
        ck_assert_int_eq(dlog_heuristic_outcome(q->gid), 0);
    }
    txn_unref(a);
    txn_unref(c);
    txn_unref(x);
    txn_unref(k);
    txn_unref(q);
    txn_unref(e);
    txn_unref(l);
    txn_unref(o);
    dlog_close();
}
END_TEST

/* 'A' after 'P' (3PC decided abort after its pre-commit record): replay
 * hands back an abort to finish, never a 'P' to decide again; 'E' ends it;
 * after a 'C' it changes nothing; compaction keeps it with its 'P'. */
START_TEST(test_precommit_abort_replayed)
{
    (void)reopen(1 << 20);
    txn *a = txn_with_prepared_branches_proto(PROTO_3PC); /* 'P' 'A' */
    ck_assert(dlog_precommit(a, NULL));
    ck_assert(dlog_precommit_abort(a));
    txn *e = txn_with_prepared_branches_proto(PROTO_3PC); /* 'P' 'A' 'E' */
    ck_assert(dlog_precommit(e, NULL));
    ck_assert(dlog_precommit_abort(e));
    ck_assert(dlog_end(e->gid));
    txn *c = txn_with_prepared_branches_proto(PROTO_3PC); /* 'P' 'C' 'A' */
    ck_assert(dlog_precommit(c, NULL));
    ck_assert(dlog_commit(c, NULL));
    ck_assert(dlog_precommit_abort(c));
    txn *p = txn_with_prepared_branches_proto(PROTO_3PC); /* 'P' alone */
    p->threepc = (threepc_settings){.cancommit_timeout_ms = 1234,
                                    .precommit_timeout_ms = 2345,
                                    .uncertain_timeout_ms = 3456,
                                    .termination = TERMINATION_TIMEOUT};
    ck_assert(dlog_precommit(p, NULL));
    for (int pass = 0; pass < 2; pass++) {
        recovered r = reopen_pass(pass);
        ck_assert_int_eq(r.n, 3);
        int ia = recovered_find(&r, a->gid), ic = recovered_find(&r, c->gid),
            ip = recovered_find(&r, p->gid);
        ck_assert_int_ge(ia, 0);
        ck_assert_int_ge(ic, 0);
        ck_assert_int_ge(ip, 0);
        ck_assert_int_eq(r.kinds[ia], DLOG_PRECOMMIT_DECIDED_ABORT);
        ck_assert_uint_eq(r.nbranches[ia], 2);
        ck_assert_int_eq(r.kinds[ic], DLOG_COMMIT);
        ck_assert_int_eq(r.kinds[ip], DLOG_PRECOMMIT);
        /* its recovery waits out the agents' timers: they come with the 'P' */
        ck_assert_int_eq(r.tps[ip].cancommit_timeout_ms, 1234);
        ck_assert_int_eq(r.tps[ip].precommit_timeout_ms, 2345);
        ck_assert_int_eq(r.tps[ip].uncertain_timeout_ms, 3456);
        ck_assert_int_eq(r.tps[ip].termination, TERMINATION_TIMEOUT);
        ck_assert_int_eq(r.tps[ic].uncertain_timeout_ms, g_coord.threepc.uncertain_timeout_ms);
        ck_assert_int_eq(recovered_find(&r, e->gid), -1);
        ck_assert(!dlog_is_committed(a->gid));
        ck_assert(dlog_is_committed(c->gid));
        ck_assert_int_eq(dlog_heuristic_outcome(a->gid), 0); /* not an operator's abort */
    }
    txn_unref(a);
    txn_unref(e);
    txn_unref(c);
    txn_unref(p);
    dlog_close();
}
END_TEST

/* ---- heuristic decisions ---------------------------------------------- */

START_TEST(test_heuristic_rules)
{
    /* commit */
    ck_assert_int_eq(heuristic_rule(GK_UNKNOWN, true), HV_UNKNOWN);
    ck_assert_int_eq(heuristic_rule(GK_UNDECIDED, true), HV_UNDECIDED);
    ck_assert_int_eq(heuristic_rule(GK_COMMITTING, true), HV_APPLY);
    ck_assert_int_eq(heuristic_rule(GK_COMMITTED, true), HV_NOOP);
    ck_assert_int_eq(heuristic_rule(GK_ABORTING, true), HV_CONTRADICTS);
    ck_assert_int_eq(heuristic_rule(GK_ABORTED, true), HV_CONTRADICTS);
    /* abort */
    ck_assert_int_eq(heuristic_rule(GK_UNKNOWN, false), HV_UNKNOWN);
    ck_assert_int_eq(heuristic_rule(GK_UNDECIDED, false), HV_APPLY);
    ck_assert_int_eq(heuristic_rule(GK_COMMITTING, false), HV_CONTRADICTS);
    ck_assert_int_eq(heuristic_rule(GK_COMMITTED, false), HV_CONTRADICTS);
    ck_assert_int_eq(heuristic_rule(GK_ABORTING, false), HV_APPLY);
    ck_assert_int_eq(heuristic_rule(GK_ABORTED, false), HV_NOOP);
}
END_TEST

static const char *err_code(json_t *body)
{
    const char *c = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    return c ? c : "";
}

/* Wait (up to 10 s) until t reaches state st. */
static bool wait_state(txn *t, txn_state st)
{
    for (int i = 0; i < 1000 && txn_state_get(t) != st; i++)
        sleep_ms(10, NULL);
    return txn_state_get(t) == st;
}

START_TEST(test_heuristic_resolve)
{
    (void)reopen(1 << 20);
    httpc_global_init();
    ck_assert(resolver_start()); /* agents are closed ports: every call fails at once */
    json_t *body = NULL;

    /* committing, both branches silent: abort contradicts, commit gives them up */
    txn *c = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(c, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(c, EV_VOTES_YES, "y"));
    ck_assert_uint_eq(heuristic_resolve(c->gid, false, &body), 409);
    ck_assert_str_eq(err_code(body), "contradicts_decision");
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(c->gid, true, &body), 200);
    ck_assert(json_is_true(json_object_get(body, "recorded")));
    json_decref(body);
    ck_assert(wait_state(c, TXN_COMMITTED));
    ck_assert_int_eq(c->branches[0].state, BR_HEURISTIC);
    ck_assert_int_eq(c->branches[1].state, BR_HEURISTIC);
    ck_assert_int_ge(c->branches[0].attempts, 1);
    ck_assert_ptr_nonnull(c->branches[0].last_error);
    ck_assert_int_eq(c->heuristic, 'c');
    ck_assert_uint_eq(heuristic_resolve(c->gid, true, &body), 200); /* again: nothing to do */
    ck_assert(json_is_false(json_object_get(body, "recorded")));
    json_decref(body);
    /* A kick that comes after the round finished it (the resolve's "one more
     * delivery now" racing that round) queues nothing: a finished
     * transaction has nothing to deliver and would be retried for ever. */
    resolver_kick(c);
    ck_assert_uint_eq(resolver_pending(), 0);

    /* committing, its 'E' already written (the resolver's last round ended
     * it, the state not moved yet): a heuristic commit then gives nothing
     * up, and says so: not recorded, no mark on the transaction, as replay
     * will have none */
    txn *e = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(e, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(e, EV_VOTES_YES, "y"));
    ck_assert(dlog_end(e->gid));
    ck_assert_uint_eq(heuristic_resolve(e->gid, true, &body), 200);
    ck_assert(json_is_false(json_object_get(body, "recorded")));
    json_decref(body);
    ck_assert_int_eq(e->heuristic, 0);
    ck_assert(dlog_commit_ended(e->gid));
    for (size_t i = 0; i < e->nbranches; i++) /* as the acknowledgements had said */
        txn_set_branch_state(e, &e->branches[i], BR_COMMITTED);
    resolver_kick(e);
    ck_assert(wait_state(e, TXN_COMMITTED));
    txn_unref(e);

    /* a branch whose participant is no longer configured (replayed 'C'):
     * nothing can be sent to it; the operator's heuristic commit gives it
     * up and the transaction ends */
    txn *g = txn_restore("0badc0de-9-7", PROTO_2PC, TXN_COMMITTING, false, wall_ms(), NULL, 1);
    ck_assert_ptr_nonnull(g);
    ck_assert(txn_restore_branch(g, "ghost", "txc:0badc0de-9-7:ghost", NULL));
    ck_assert_ptr_null(g->branches[0].p);
    ck_assert(dlog_commit(g, NULL)); /* its 'C', as the replay found it */
    ck_assert_uint_eq(heuristic_resolve(g->gid, true, &body), 200);
    ck_assert(json_is_true(json_object_get(body, "recorded")));
    json_decref(body);
    ck_assert(wait_state(g, TXN_COMMITTED));
    ck_assert_int_eq(g->branches[0].state, BR_HEURISTIC);
    ck_assert_ptr_nonnull(g->branches[0].last_error);
    txn_unref(g);

    /* active: commit is refused (no decision), abort decides it. Its
     * branch ran a statement (begun): the rollback is sent, goes
     * unanswered here, and the operator's abort gives it up; a branch that
     * never began is sent nothing and ends aborted (agent.c) */
    txn *a = txn_create(PROTO_2PC, 30000, NULL);
    (void)txn_branch(a, participant_at(0), true);
    a->branches[0].begun = true;
    (void)txn_branch(a, participant_at(1), true);
    ck_assert_uint_eq(heuristic_resolve(a->gid, true, &body), 409);
    ck_assert_str_eq(err_code(body), "wrong_state");
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(a->gid, false, &body), 200);
    ck_assert_str_eq(json_string_value(json_object_get(body, "outcome")), "aborted");
    json_decref(body);
    ck_assert(wait_state(a, TXN_ABORTED));
    ck_assert_int_eq(a->branches[0].state, BR_HEURISTIC);
    ck_assert_int_eq(a->branches[1].state, BR_ABORTED);
    ck_assert_uint_eq(heuristic_resolve(a->gid, true, &body), 409);
    ck_assert_str_eq(err_code(body), "contradicts_decision");
    json_decref(body);

    /* unknown gid; evicted ones answered from the log */
    ck_assert_uint_eq(heuristic_resolve("0badc0de-3-999999", false, &body), 404);
    ck_assert_str_eq(err_code(body), "unknown_transaction");
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve("not a gid", true, &body), 404);
    json_decref(body);
    char cgid[GID_MAX_LEN + 1], agid[GID_MAX_LEN + 1];
    snprintf(cgid, sizeof(cgid), "%s", c->gid);
    snprintf(agid, sizeof(agid), "%s", a->gid);
    txn_unref(c);
    txn_unref(a);
    ck_assert_uint_eq(txn_evict(now_ms() + 1000, 0, SIZE_MAX), 4); /* c, e, a and g */
    ck_assert_uint_eq(heuristic_resolve(cgid, false, &body), 409);
    ck_assert_str_eq(err_code(body), "contradicts_decision");
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(cgid, true, &body), 200);
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(agid, true, &body), 409); /* its 'H' abort is known */
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(agid, false, &body), 200);
    json_decref(body);

    /* a recovered 3PC 'P' without 'C': abort is taken; commit is not */
    txn *p = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(txn_fsm_advance(p, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(p, EV_VOTES_YES_3PC, "y"));
    ck_assert_uint_eq(heuristic_resolve(p->gid, true, &body), 409);
    json_decref(body);
    ck_assert_uint_eq(heuristic_resolve(p->gid, false, &body), 200);
    /* a branch whose PreCommit landed commits on its own: the answer says so */
    ck_assert_msg(strstr(json_string_value(json_object_get(body, "warning")), "pre-committed"),
                  "no warning");
    json_decref(body);
    ck_assert(wait_state(p, TXN_ABORTED));
    recovered r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 0); /* 'P', 'H', 'E': finished */
    ck_assert_int_eq(dlog_heuristic_outcome(p->gid), 'a');
    ck_assert(!dlog_is_committed(p->gid));
    txn_unref(p);

    resolver_stop();
    httpc_global_cleanup();
    dlog_close();
}
END_TEST

/* A resolver round takes at most its cap of the due jobs, the earliest due
 * first, ties at the cut up to the room left, never one not due yet. */
START_TEST(test_resolver_pick_due)
{
    enum { N = 400, MAX = 128 };
    int64_t due[N];
    bool take[N];
    /* due times 0..199 twice (ties everywhere), in a shuffled order; 100..
     * not due at now = 150 */
    for (size_t i = 0; i < N; i++)
        due[i] = (int64_t)((i * 7919) % 200);
    ck_assert_uint_eq(resolver_pick_due(due, N, 150, MAX, take), MAX);
    size_t taken = 0;
    int64_t latest_taken = -1, earliest_left = INT64_MAX;
    for (size_t i = 0; i < N; i++) {
        if (take[i]) {
            taken++;
            ck_assert_int_le(due[i], 150);
            if (due[i] > latest_taken)
                latest_taken = due[i];
        } else if (due[i] <= 150 && due[i] < earliest_left) {
            earliest_left = due[i];
        }
    }
    ck_assert_uint_eq(taken, MAX);
    ck_assert_int_le(latest_taken, earliest_left); /* nothing earlier was left behind */
    /* fewer due than the cap: all of them, and only them */
    ck_assert_uint_eq(resolver_pick_due(due, N, 9, MAX, take), 20);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(take[i], due[i] <= 9);
    /* every job due at the same time: the first MAX of them */
    for (size_t i = 0; i < N; i++)
        due[i] = 5;
    ck_assert_uint_eq(resolver_pick_due(due, N, 5, MAX, take), MAX);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(take[i], i < MAX);
    ck_assert_uint_eq(resolver_pick_due(due, N, 4, MAX, take), 0);
}
END_TEST

/* resolver_drain (a stop's rollbacks): returns once every job submitted
 * without delay had its first round, the ones past the first round's cap
 * included; their failed rollbacks (closed ports) stay queued for the next
 * start, and resolver_stop drops them. */
START_TEST(test_resolver_drain_gives_first_attempts)
{
    enum { N = 300 };
    (void)reopen(1 << 20);
    httpc_global_init();
    ck_assert(resolver_start());
    txn *ts[N];
    for (size_t i = 0; i < N; i++) {
        ts[i] = txn_with_prepared_branches();
        ck_assert(txn_abort(ts[i], EV_ROLLBACK, "stop", false));
    }
    resolver_drain(now_ms() + 60000);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(txn_state_get(ts[i]), TXN_ABORTING);
        for (size_t b = 0; b < ts[i]->nbranches; b++)
            ck_assert_int_ge(ts[i]->branches[b].attempts, 1);
    }
    ck_assert_uint_le(resolver_pending(), N); /* a retry's round may hold some meanwhile */
    resolver_stop();
    ck_assert_uint_eq(resolver_pending(), 0);
    for (size_t i = 0; i < N; i++)
        txn_unref(ts[i]);
    httpc_global_cleanup();
    dlog_close();
}
END_TEST

/* GET /v1/transactions in pages: issued order, each gid once, "next_after"
 * only while more are left, a finished one skipped without ending a page
 * early, and an "after" that is no gid refused. */
START_TEST(test_listing_pages)
{
    (void)reopen(1 << 20);
    /* sequence numbers 9 and 10 of this epoch (a string sort would put
     * 10 first), and one replayed from an earlier epoch, published after
     * them (the live list's order is not the issued one) */
    for (int i = 0; i < 8; i++) { /* sequence numbers start at 1 */
        txn *skip = txn_create(PROTO_2PC, 30000, NULL);
        ck_assert(txn_fsm_advance(skip, EV_ROLLBACK, "r"));
        ck_assert(txn_fsm_advance(skip, EV_ACKED, "a"));
        txn_unref(skip);
    }
    txn *ts[5];
    for (int i = 0; i < 4; i++)
        ts[i + 1] = txn_create(PROTO_2PC, 30000, NULL);
    char old[GID_MAX_LEN + 1];
    gid_format(old, sizeof(old), g_coord.coord_id, g_coord.epoch - 1, 12);
    ts[0] = txn_restore(old, PROTO_2PC, TXN_COMMITTING, false, wall_ms(), NULL, 0);
    ck_assert_ptr_nonnull(ts[0]);
    ck_assert_str_eq(ts[1]->gid + strlen(ts[1]->gid) - 2, "-9");
    ck_assert(txn_fsm_advance(ts[2], EV_ROLLBACK, "r")); /* aborting: listed, unfinished */
    ck_assert(txn_fsm_advance(ts[2], EV_ACKED, "a"));    /* aborted: not listed */
    const char *want[] = {ts[0]->gid, ts[1]->gid, ts[3]->gid, ts[4]->gid};
    size_t got = 0;
    char after[GID_MAX_LEN + 1] = "";
    for (int page = 0; page < 3; page++) {
        json_t *o = txn_list_json(NULL, page ? after : NULL, 2);
        ck_assert_ptr_nonnull(o);
        json_t *list = json_object_get(o, "transactions");
        for (size_t i = 0; i < json_array_size(list); i++) {
            ck_assert_uint_lt(got, 4);
            ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, i), "gid")),
                             want[got++]);
        }
        const char *next = json_string_value(json_object_get(o, "next_after"));
        if (page == 0) {
            ck_assert_uint_eq(json_array_size(list), 2);
            ck_assert_str_eq(next, ts[1]->gid);
        } else {
            ck_assert_uint_eq(json_array_size(list), page == 1 ? 2 : 0);
            ck_assert_ptr_null(next); /* the last two: nothing after them */
        }
        if (next)
            snprintf(after, sizeof(after), "%s", next);
        json_decref(o);
        if (!next)
            break;
    }
    ck_assert_uint_eq(got, 4);
    json_t *one = txn_list_json("active", ts[3]->gid, 1000);
    ck_assert_uint_eq(json_array_size(json_object_get(one, "transactions")), 1);
    ck_assert_ptr_null(json_object_get(one, "next_after"));
    json_decref(one);
    ck_assert_ptr_null(txn_list_json(NULL, "not a gid", 10));
    for (int i = 0; i < 5; i++)
        txn_unref(ts[i]);
    dlog_close();
}
END_TEST

START_TEST(test_in_doubt_listing)
{
    (void)reopen(1 << 20);
    txn *c = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(c, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(c, EV_VOTES_YES, "y"));
    txn_branch_attempt(c, &c->branches[0], true, BR_COMMITTED, false, NULL);
    txn_branch_attempt(c, &c->branches[1], false, BR_PREPARED, false, "unreachable: refused");
    txn *active = txn_create(PROTO_2PC, 30000, NULL);
    txn *done = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(done, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(done, EV_VOTES_YES, "y"));
    ck_assert(txn_fsm_advance(done, EV_ACKED, "a"));

    json_t *all = txn_list_json(NULL, NULL, 1000);
    ck_assert_uint_eq(json_array_size(json_object_get(all, "transactions")), 2);
    json_decref(all);
    ck_assert_ptr_null(txn_list_json("bogus", NULL, 1000));
    ck_assert_ptr_null(txn_list_json("committed", NULL, 1000));
    json_t *act = txn_list_json("active", NULL, 1000);
    ck_assert_uint_eq(json_array_size(json_object_get(act, "transactions")), 1);
    json_decref(act);

    json_t *doubt = txn_list_json("in-doubt", NULL, 1000);
    json_t *list = json_object_get(doubt, "transactions");
    ck_assert_uint_eq(json_array_size(list), 1);
    json_t *o = json_array_get(list, 0);
    ck_assert_str_eq(json_string_value(json_object_get(o, "gid")), c->gid);
    ck_assert_str_eq(json_string_value(json_object_get(o, "state")), "committing");
    ck_assert(json_is_integer(json_object_get(o, "age_ms")));
    ck_assert(json_integer_value(json_object_get(o, "age_ms")) >= 0);
    json_t *b1 = json_array_get(json_object_get(o, "branches"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(b1, "participant")), "pg2");
    ck_assert_str_eq(json_string_value(json_object_get(b1, "state")), "prepared");
    ck_assert(json_is_true(json_object_get(b1, "pending")));
    ck_assert_int_eq(json_integer_value(json_object_get(b1, "attempts")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(b1, "last_error")), "unreachable: refused");
    ck_assert(json_is_integer(json_object_get(b1, "age_ms")));
    ck_assert(json_is_string(json_object_get(b1, "branch_gid")));
    json_t *b0 = json_array_get(json_object_get(o, "branches"), 0);
    ck_assert(json_is_false(json_object_get(b0, "pending")));
    ck_assert(json_is_null(json_object_get(b0, "last_error")));
    json_decref(doubt);
    txn_unref(c);
    txn_unref(active);
    txn_unref(done);
    dlog_close();
}
END_TEST

/* ---- read_only branches in recovery ----------------------------------- */

/* A 3PC transaction with one branch per participant, 'P' logged: what
 * replay rebuilds as precommitting. */
static txn *precommitting_txn(void)
{
    txn *t = txn_with_prepared_branches_proto(PROTO_3PC);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES_3PC, "2 yes"));
    ck_assert_int_eq(txn_state_get(t), TXN_PRECOMMITTING);
    return t;
}

/* Answer call i of a recovery round: status 200 with body json (stolen), or
 * status 0 (no answer) when json is NULL. */
static void fake_answer(httpc_call *c, json_t *json)
{
    c->status = json ? 200 : 0;
    c->response = json;
    if (!json)
        snprintf(c->error, sizeof(c->error), "connection refused");
}

/* fake_answer of an agent's branch status: json with the branch gid of
 * t's branch bi, as agents answer GET /v1/branches/{gid}. */
static void fake_branch_answer(httpc_call *c, txn *t, size_t bi, json_t *json)
{
    json_object_set_new(json, "branch_gid", json_string(t->branches[bi].branch_gid));
    fake_answer(c, json);
}

/* A 3PC branch that terminated on its own (aborted) while the coordinator
 * decided commit: the 409 wrong_state "aborted" answer ends its delivery
 * (recorded, counted, not re-sent); the other branch commits; the
 * transaction finishes instead of being retried forever. */
START_TEST(test_rollback_acknowledged_by_200_only)
{
    /* A 404 to a ROLLBACK comes from something that is not our agent (a
     * proxy with no route): the branch may still be prepared, holding its
     * locks, so it is re-sent, not taken as done. */
    txn *t = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(t, EV_ROLLBACK, "client rollback"));
    ck_assert_int_eq(txn_state_get(t), TXN_ABORTING);
    httpc_call calls[8];
    size_t bidx[8];
    memset(calls, 0, sizeof(calls));
    size_t n = delivery_build(t, calls, bidx, 8);
    ck_assert_uint_ge(n, 2);
    calls[0].status = 404;
    for (size_t i = 1; i < n; i++)
        fake_answer(&calls[i], json_pack("{s:s}", "state", "aborted"));
    ck_assert_uint_eq(delivery_apply(t, calls, bidx, n, 0), 1);
    for (size_t i = 0; i < n; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(t->branches[bidx[0]].state, BR_PREPARED);
    ck_assert(!delivery_done(t));
    txn_unref(t);
}
END_TEST

START_TEST(test_bare_200_is_no_acknowledgement)
{
    /* A 200 that does not say the branch's new state (a proxy, or another
     * service behind a wrong --participant URL) acknowledges nothing: the
     * branch may still be prepared there, so it is re-sent, for a commit
     * and for a rollback alike. */
    (void)reopen(1 << 20);
    for (int commit = 0; commit <= 1; commit++) {
        txn *t = txn_with_prepared_branches();
        if (commit) {
            ck_assert(txn_fsm_advance(t, EV_COMMIT, "client commit"));
            ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "all yes")); /* 'C' logged */
            ck_assert_int_eq(txn_state_get(t), TXN_COMMITTING);
        } else
            ck_assert(txn_fsm_advance(t, EV_ROLLBACK, "client rollback"));
        httpc_call calls[8];
        size_t bidx[8];
        memset(calls, 0, sizeof(calls));
        size_t n = delivery_build(t, calls, bidx, 8);
        ck_assert_uint_ge(n, 2);
        fake_answer(&calls[0], json_pack("{s:b}", "ok", 1));
        /* the other outcome's state is no acknowledgement either */
        fake_answer(&calls[1], json_pack("{s:s}", "state", commit ? "aborted" : "committed"));
        for (size_t i = 2; i < n; i++)
            fake_answer(&calls[i], json_pack("{s:s}", "state", commit ? "committed" : "aborted"));
        ck_assert_uint_eq(delivery_apply(t, calls, bidx, n, 0), 2);
        for (size_t i = 0; i < n; i++)
            agent_call_free(&calls[i]);
        ck_assert_int_eq(t->branches[bidx[0]].state, BR_PREPARED);
        ck_assert_int_eq(t->branches[bidx[1]].state, BR_PREPARED);
        ck_assert(!delivery_done(t));
        txn_unref(t);
    }
}
END_TEST

START_TEST(test_txn_create_locked_holds_op_mu)
{
    /* The one-shot form's transaction is found by gid only once its creator
     * holds op_mu: a commit naming that gid waits for its branches. */
    txn *t = txn_create_locked(PROTO_2PC, 30000, NULL);
    txn *found = txn_lookup(t->gid);
    ck_assert_ptr_eq(found, t);
    ck_assert_int_eq(pthread_mutex_trylock(&found->op_mu), EBUSY);
    txn_unref(found);
    pthread_mutex_unlock(&t->op_mu);
    ck_assert_int_eq(pthread_mutex_trylock(&t->op_mu), 0);
    pthread_mutex_unlock(&t->op_mu);
    txn_unref(t);
}
END_TEST

START_TEST(test_delivery_records_mixed_outcome)
{
    (void)reopen(1 << 20);
    txn *t = precommitting_txn();
    ck_assert(txn_fsm_advance(t, EV_PRECOMMITTED, "all acked"));
    ck_assert_int_eq(txn_state_get(t), TXN_COMMITTING);
    uint64_t before = (uint64_t)atomic_load(&g_metrics.mixed_outcomes.v);
    httpc_call calls[2];
    size_t bidx[2];
    memset(calls, 0, sizeof(calls));
    pthread_mutex_lock(&t->mu);
    snprintf(t->branches[0].xid, sizeof(t->branches[0].xid), "%s", "7421");
    pthread_mutex_unlock(&t->mu);
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 2);
    /* the xid of the yes vote goes back with the outcome (for an agent that
     * forgot the branch); a branch without one sends none */
    for (size_t i = 0; i < 2; i++) {
        const char *x = json_string_value(json_object_get(calls[i].body, "xid"));
        if (bidx[i] == 0)
            ck_assert_msg(x && strcmp(x, "7421") == 0, "no xid in the DoCommit body");
        else
            ck_assert_ptr_null(x);
    }
    calls[0].status = 409;
    calls[0].response = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "wrong_state",
                                  "message", "cannot commit: branch is aborted", "state",
                                  "aborted");
    fake_answer(&calls[1], json_pack("{s:s}", "state", "committed"));
    ck_assert_uint_eq(delivery_apply(t, calls, bidx, 2, 0), 0);
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(t->branches[bidx[0]].state, BR_ABORTED);
    ck_assert_int_eq(t->branches[bidx[1]].state, BR_COMMITTED);
    ck_assert(delivery_done(t));
    ck_assert_uint_eq((uint64_t)atomic_load(&g_metrics.mixed_outcomes.v), before + 1);

    /* A 409 for any other reason (e.g. the branch is still active) is
     * not a finished branch: it stays to be re-sent. */
    txn *u = precommitting_txn();
    ck_assert(txn_fsm_advance(u, EV_PRECOMMITTED, "all acked"));
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(delivery_build(u, calls, bidx, 2), 2);
    calls[0].status = 409;
    calls[0].response = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "wrong_state",
                                  "message", "cannot commit: branch is active", "state",
                                  "active");
    fake_answer(&calls[1], json_pack("{s:s}", "state", "committed"));
    ck_assert_uint_eq(delivery_apply(u, calls, bidx, 2, 0), 1);
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert(!delivery_done(u));
    ck_assert_uint_eq((uint64_t)atomic_load(&g_metrics.mixed_outcomes.v), before + 1);
    txn_unref(t);
    txn_unref(u);
}
END_TEST

/* The 3/4 check's reference: the earliest a yes voter's uncertain timer can
 * have started is the call's send time plus what the agent says
 * ("timer_after_ms"), not when the vote came back (an answer delayed on its
 * way back made the check pass while that agent's timer had already run
 * out). Without the field, or with one the call's own length rules out,
 * the arrival time. */
START_TEST(test_vote_timer_start)
{
    httpc_call c;
    memset(&c, 0, sizeof(c));
    c.start_us = 1000000;
    c.done_us = 1900000; /* 900 ms from send to answer */
    fake_answer(&c, json_pack("{s:s, s:i}", "vote", "yes", "timer_after_ms", 300));
    ck_assert_int_eq(vote_timer_start_us(&c), 1300000);
    httpc_call_clear(&c);
    fake_answer(&c, json_pack("{s:s, s:i}", "vote", "yes", "timer_after_ms", 0));
    ck_assert_int_eq(vote_timer_start_us(&c), 1000000);
    httpc_call_clear(&c);
    static const char *const odd[] = {"{\"vote\":\"yes\"}", "{\"vote\":\"yes\",\"timer_after_ms\":901}",
                                      "{\"vote\":\"yes\",\"timer_after_ms\":-5}",
                                      "{\"vote\":\"yes\",\"timer_after_ms\":\"300\"}"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        c.start_us = 1000000;
        c.done_us = 1900000;
        fake_answer(&c, json_loads(odd[i], 0, NULL));
        ck_assert_msg(vote_timer_start_us(&c) == 1900000, "%s", odd[i]);
        httpc_call_clear(&c);
    }
}
END_TEST

START_TEST(test_3pc_recovery_skips_read_only)
{
    (void)reopen(1 << 20);
    /* pg1 read-only ("committed" says nothing), pg2 uncertain: nobody can
     * have committed -> abort; counting pg1 as committed would commit. */
    txn *t = precommitting_txn();
    httpc_call calls[2];
    size_t bidx[2];
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(threepc_recovery_build(t, calls, bidx, 2), 2);
    /* fencing reads: an uncertain branch refuses a late PreCommit after
     * answering (a PreCommit queued behind its lock cannot land after an
     * "all uncertain: abort" here) */
    for (size_t i = 0; i < 2; i++)
        ck_assert_msg(calls[i].url && strstr(calls[i].url, "?fence=1"), "recovery read %s",
                      calls[i].url ? calls[i].url : "(none)");
    fake_branch_answer(&calls[0], t, bidx[0], json_pack("{s:s, s:s, s:b}", "state", "committed", "protocol", "3pc",
                                     "read_only", 1));
    fake_branch_answer(&calls[1], t, bidx[1], json_pack("{s:s, s:s}", "state", "uncertain", "protocol", "3pc"));
    ck_assert(threepc_recovery_apply(t, calls, bidx, 2));
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(txn_state_get(t), TXN_ABORTING);
    ck_assert(!dlog_is_committed(t->gid));
    ck_assert_int_eq(t->branches[0].state, BR_READ_ONLY);
    /* The rollbacks skip the read-only branch. */
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 1);
    ck_assert_uint_eq(bidx[0], 1);
    agent_call_free(&calls[0]);
    txn_unref(t);

    /* pg1 read-only, pg2 silent: wait; the next round asks pg2 only. A
     * read-only pg1 next to a precommitted pg2 commits, and the commit
     * (and its 'C') covers pg2 only. */
    t = precommitting_txn();
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(threepc_recovery_build(t, calls, bidx, 2), 2);
    fake_branch_answer(&calls[0], t, bidx[0], json_pack("{s:s, s:b}", "state", "committed", "read_only", 1));
    fake_answer(&calls[1], NULL);
    ck_assert(!threepc_recovery_apply(t, calls, bidx, 2));
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(txn_state_get(t), TXN_PRECOMMITTING);
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(threepc_recovery_build(t, calls, bidx, 2), 1);
    ck_assert_uint_eq(bidx[0], 1);
    fake_branch_answer(&calls[0], t, bidx[0], json_pack("{s:s}", "state", "precommitted"));
    ck_assert(threepc_recovery_apply(t, calls, bidx, 1));
    agent_call_free(&calls[0]);
    ck_assert_int_eq(txn_state_get(t), TXN_COMMITTING);
    ck_assert(dlog_is_committed(t->gid));
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 1);
    ck_assert_uint_eq(bidx[0], 1);
    agent_call_free(&calls[0]);
    recovered r = reopen(1 << 20);
    int k = recovered_find(&r, t->gid);
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(r.kinds[k], DLOG_COMMIT);
    ck_assert_uint_eq(r.nbranches[k], 1);
    ck_assert_str_eq(r.first_participant[k], "pg2");
    txn_unref(t);

    /* Every branch read-only: nothing is prepared anywhere -> abort, nothing sent. */
    t = precommitting_txn();
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(threepc_recovery_build(t, calls, bidx, 2), 2);
    for (size_t i = 0; i < 2; i++)
        fake_branch_answer(&calls[i], t, bidx[i], json_pack("{s:s, s:b}", "state", "committed", "read_only", 1));
    ck_assert(threepc_recovery_apply(t, calls, bidx, 2));
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(txn_state_get(t), TXN_ABORTING);
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 0);
    ck_assert(delivery_done(t));
    txn_unref(t);

    /* An answer about another branch (pg1's URL now leads to another
     * participant's agent): it neither refuses nor fences ours; counted
     * silent, so pg2 uncertain and pg1 silent wait, instead of aborting on
     * a stranger's "unknown". */
    t = precommitting_txn();
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(threepc_recovery_build(t, calls, bidx, 2), 2);
    fake_answer(&calls[0], json_pack("{s:s, s:s}", "state", "unknown", "branch_gid",
                                     "txc:0badc0de-1-1:pg9"));
    fake_branch_answer(&calls[1], t, bidx[1], json_pack("{s:s}", "state", "uncertain"));
    ck_assert(!threepc_recovery_apply(t, calls, bidx, 2));
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    ck_assert_int_eq(txn_state_get(t), TXN_PRECOMMITTING);
    txn_unref(t);
    dlog_close();
}
END_TEST

START_TEST(test_2pc_decision_excludes_read_only)
{
    /* 2PC recovery re-sends COMMIT to the branches of the 'C' only: a
     * read-only branch is not in it, so it is never sent anything. */
    (void)reopen(1 << 20);
    txn *t = txn_with_prepared_branches();
    txn_set_branch_state(t, &t->branches[0], BR_READ_ONLY);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "1 yes, 1 read_only"));
    ck_assert(t->decision_logged);
    httpc_call calls[2];
    size_t bidx[2];
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 1);
    ck_assert_uint_eq(bidx[0], 1);
    agent_call_free(&calls[0]);
    recovered r = reopen(1 << 20);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.kinds[0], DLOG_COMMIT);
    ck_assert_uint_eq(r.nbranches[0], 1);
    ck_assert_str_eq(r.first_participant[0], "pg2");
    txn_unref(t);
    dlog_close();
}
END_TEST

/* ---- retry log volume ---------------------------------------------------- */

/* Lines of path containing needle. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

START_TEST(test_retry_lines_rate_limited)
{
    (void)reopen(1 << 20);
    txn *t = txn_with_prepared_branches();
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "c"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "y"));
    char errpath[160];
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
    uint64_t skipped0 = txn_retry_log_skipped();
    /* Ten delivery rounds in which both agents stay silent. */
    for (int attempt = 0; attempt < 10; attempt++) {
        httpc_call calls[2];
        size_t bidx[2];
        memset(calls, 0, sizeof(calls));
        ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 2);
        for (size_t i = 0; i < 2; i++)
            fake_answer(&calls[i], NULL);
        ck_assert_uint_eq(delivery_apply(t, calls, bidx, 2, attempt), 2);
        for (size_t i = 0; i < 2; i++)
            agent_call_free(&calls[i]);
    }
    /* pg1 answers at last; pg2 fails once more. */
    httpc_call calls[2];
    size_t bidx[2];
    memset(calls, 0, sizeof(calls));
    ck_assert_uint_eq(delivery_build(t, calls, bidx, 2), 2);
    fake_answer(&calls[0], json_pack("{s:s}", "state", "committed"));
    fake_answer(&calls[1], NULL);
    ck_assert_uint_eq(delivery_apply(t, calls, bidx, 2, 10), 1);
    for (size_t i = 0; i < 2; i++)
        agent_call_free(&calls[i]);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    /* One line per branch (its first failure), each naming gid and participant. */
    ck_assert_int_eq(count_lines(errpath, "not acknowledged"), 2);
    char want[GID_MAX_LEN + 64];
    snprintf(want, sizeof(want), "gid=%s participant=pg1 ", t->gid);
    ck_assert_int_eq(count_lines(errpath, want), 1); /* its failure; the ack is INFO */
    snprintf(want, sizeof(want), "gid=%s participant=pg2 commit not acknowledged", t->gid);
    ck_assert_int_eq(count_lines(errpath, want), 1);
    ck_assert_uint_eq(txn_retry_log_skipped() - skipped0, 9 + 10);
    /* Still visible where the operator looks: attempts and the last error. */
    ck_assert_int_eq(t->branches[1].attempts, 11);
    ck_assert_ptr_nonnull(t->branches[1].last_error);

    /* The limiter: first occurrence, then nothing until a minute passed or a
     * success reset it; the next line counts what was held back. */
    log_limit *l = &t->branches[1].retry_log;
    unsigned skipped;
    ck_assert(!txn_log_due(t, l, &skipped));
    l->last_ms -= RETRY_LOG_EVERY_MS; /* a minute later */
    ck_assert(txn_log_due(t, l, &skipped));
    ck_assert_uint_eq(skipped, 11);
    ck_assert(!txn_log_due(t, l, &skipped));
    txn_log_reset(t, l);
    ck_assert(txn_log_due(t, l, &skipped));
    ck_assert_uint_eq(skipped, 0);
    txn_unref(t);
    dlog_close();
}
END_TEST

static Suite *coord_suite(void)
{
    Suite *s = suite_create("coordinator");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_strmap);
    tcase_add_test(tc, test_committed_set);
    tcase_add_test(tc, test_committed_set_forms);
    tcase_add_test(tc, test_committed_snapshot_roundtrip);
    tcase_add_test(tc, test_commit_decision_replayed_until_end);
    tcase_add_test(tc, test_abort_logs_nothing);
    tcase_add_test(tc, test_read_only_commit_needs_no_record);
    tcase_add_test(tc, test_compaction_keeps_unfinished_only);
    tcase_add_test(tc, test_eviction);
    tcase_add_test(tc, test_eviction_count_cap);
    tcase_add_test(tc, test_timeouts_collected);
    tcase_add_test(tc, test_fsm_table_complete);
    tcase_add_test(tc, test_3pc_commit_path_records);
    tcase_add_test(tc, test_3pc_recovered_abort_ends_the_precommit);
    tcase_add_test(tc, test_3pc_recovery_rule);
    tcase_add_test(tc, test_record_encoding);
    tcase_add_test(tc, test_replay_record_shapes);
    tcase_add_test(tc, test_epoch_record_outlives_restart_and_compaction);
    tcase_add_test(tc, test_heuristic_records_replayed);
    tcase_add_test(tc, test_precommit_abort_replayed);
    tcase_add_test(tc, test_heuristic_rules);
    tcase_add_test(tc, test_heuristic_resolve);
    tcase_add_test(tc, test_in_doubt_listing);
    tcase_add_test(tc, test_listing_pages);
    tcase_add_test(tc, test_resolver_pick_due);
    tcase_add_test(tc, test_resolver_drain_gives_first_attempts);
    tcase_add_test(tc, test_3pc_recovery_skips_read_only);
    tcase_add_test(tc, test_vote_timer_start);
    tcase_add_test(tc, test_delivery_records_mixed_outcome);
    tcase_add_test(tc, test_rollback_acknowledged_by_200_only);
    tcase_add_test(tc, test_bare_200_is_no_acknowledgement);
    tcase_add_test(tc, test_txn_create_locked_holds_op_mu);
    tcase_add_test(tc, test_max_unfinished);
    tcase_add_test(tc, test_2pc_decision_excludes_read_only);
    tcase_add_test(tc, test_retry_lines_rate_limited);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coord_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
