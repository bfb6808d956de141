/*
 * test_coord.c - unit tests of txcoord's durable core, linking the module
 * .c files directly (no HTTP, no agents): strmap, the committed set, the
 * transaction state machine table, the decision log (replay of 'C' without
 * 'E', presumed abort, compaction) and eviction.
 * Invariants checked: a commit decision exists exactly when its 'C' was
 * forced and survives reopen until an 'E' follows; aborts log nothing; a
 * transition not in the table is refused and leaves the state alone;
 * compaction keeps every unfinished decision and nothing else.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "committed.h"
#include "coord.h"
#include "decision_log.h"
#include "log.h"
#include "strmap.h"
#include "txn.h"
#include "txn_fsm.h"

coord_settings g_coord; /* normally main.c's */

static char tmpdir[64];
static char logpath[128];

/* ---- helpers ---------------------------------------------------------- */

typedef struct {
    int n;
    char gids[16][GID_MAX_LEN + 1];
    size_t nbranches[16];
} recovered;

static void on_unfinished(const char *gid, txn_protocol proto, int64_t at_ms, json_t *branches,
                          void *arg)
{
    (void)proto;
    (void)at_ms;
    recovered *r = arg;
    if (r->n < 16) {
        snprintf(r->gids[r->n], sizeof(r->gids[0]), "%s", gid);
        r->nbranches[r->n] = json_array_size(branches);
    }
    r->n++;
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
static txn *txn_with_prepared_branches(void)
{
    txn *t = txn_create(PROTO_2PC, 30000);
    for (size_t i = 0; i < participants_count(); i++) {
        branch *b = txn_branch(t, participant_at(i), true);
        ck_assert_ptr_nonnull(b);
        txn_set_branch_state(t, b, BR_PREPARED);
    }
    return t;
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

    txn *u = txn_create(PROTO_2PC, 30000); /* rollback of an active one: first reason wins */
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

START_TEST(test_read_only_commit_needs_no_record)
{
    (void)reopen(1 << 20);
    txn *t = txn_create(PROTO_2PC, 30000);
    branch *b = txn_branch(t, participant_at(0), true);
    txn_set_branch_state(t, b, BR_READ_ONLY);
    ck_assert(txn_fsm_advance(t, EV_COMMIT, "commit requested"));
    ck_assert(txn_fsm_advance(t, EV_VOTES_YES, "read only"));
    ck_assert(!t->decision_logged);
    ck_assert(dlog_is_committed(t->gid)); /* in memory for this run */
    ck_assert(txn_fsm_advance(t, EV_ACKED, "nothing to finish"));
    ck_assert_uint_eq(dlog_bytes(), 0);
    txn_unref(t);
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
    txn *aborted = txn_create(PROTO_2PC, 30000);
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
END_TEST

START_TEST(test_eviction)
{
    (void)reopen(1 << 20);
    txn *t = txn_create(PROTO_2PC, 30000);
    char gid[GID_MAX_LEN + 1];
    snprintf(gid, sizeof(gid), "%s", t->gid);
    ck_assert(txn_fsm_advance(t, EV_ROLLBACK, "rollback requested"));
    ck_assert_uint_eq(txn_evict(now_ms() + 1000000, 0), 0); /* aborting: still live */
    ck_assert(txn_fsm_advance(t, EV_ACKED, "done"));
    txn_unref(t);
    ck_assert_uint_eq(txn_evict(now_ms(), 60000), 0); /* within retention */
    ck_assert_uint_eq(txn_evict(now_ms() + 61000, 60000), 1);
    ck_assert_ptr_null(txn_lookup(gid));
    dlog_close();
}
END_TEST

START_TEST(test_timeouts_collected)
{
    txn *slow = txn_create(PROTO_2PC, 100000);
    txn *fast = txn_create(PROTO_2PC, 10);
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

static Suite *coord_suite(void)
{
    Suite *s = suite_create("coordinator");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_strmap);
    tcase_add_test(tc, test_committed_set);
    tcase_add_test(tc, test_committed_snapshot_roundtrip);
    tcase_add_test(tc, test_commit_decision_replayed_until_end);
    tcase_add_test(tc, test_abort_logs_nothing);
    tcase_add_test(tc, test_read_only_commit_needs_no_record);
    tcase_add_test(tc, test_compaction_keeps_unfinished_only);
    tcase_add_test(tc, test_eviction);
    tcase_add_test(tc, test_timeouts_collected);
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
