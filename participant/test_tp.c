/*
 * test_tp.c - unit tests of tp.c: the branches3pc.log record codec, the
 * peer routes (--peer) and the 3PC termination rule (PROTOCOL.md
 * "Three-phase commit"); and of the recovery sweep's age rule (resolver.h).
 * Invariants checked: encode/decode round-trips every field and only the
 * fields present; bad records are refused; merge keeps absent fields; the
 * rule gives the documented answer for every case of its order; the sweep
 * skips only branches younger than the minimum age, never one whose age is
 * negative (clock set back).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"
#include "tp.h"

/* ---- records ---- */

static tp_record full_record(void)
{
    static tp_peer peers[2] = {{"pg1", "http://127.0.0.1:7501"}, {"pg2", "http://127.0.0.1:7502"}};
    tp_record r = {0};
    snprintf(r.gid, sizeof(r.gid), "%s", "3fa2b01c-4-17");
    r.state = TP_UNCERTAIN;
    r.has = TP_HAS_PEERS | TP_HAS_TIMEOUTS | TP_HAS_TERMINATION | TP_HAS_XID | TP_HAS_AT;
    r.peers = peers;
    r.npeers = 2;
    r.uncertain_timeout_ms = 1500;
    r.precommit_timeout_ms = 2500;
    r.termination = TP_TERM_TIMEOUT;
    snprintf(r.xid, sizeof(r.xid), "%s", "4294967999");
    r.at_ms = 1764115200123LL;
    return r;
}

START_TEST(record_roundtrip_full)
{
    tp_record r = full_record();
    size_t len;
    char *s = tp_record_encode(&r, &len);
    ck_assert_uint_eq(len, strlen(s));
    tp_record d;
    char err[128];
    ck_assert_msg(tp_record_decode(s, len, &d, err, sizeof(err)), "decode: %s", err);
    ck_assert_str_eq(d.gid, "3fa2b01c-4-17");
    ck_assert_int_eq(d.state, TP_UNCERTAIN);
    ck_assert_uint_eq(d.has, r.has);
    ck_assert_uint_eq(d.npeers, 2);
    ck_assert_str_eq(d.peers[0].participant, "pg1");
    ck_assert_str_eq(d.peers[1].url, "http://127.0.0.1:7502");
    ck_assert_int_eq(d.uncertain_timeout_ms, 1500);
    ck_assert_int_eq(d.precommit_timeout_ms, 2500);
    ck_assert_int_eq(d.termination, TP_TERM_TIMEOUT);
    ck_assert_str_eq(d.xid, "4294967999");
    ck_assert_int_eq(d.at_ms, 1764115200123LL);
    tp_record_free(&d);
    free(s);
}
END_TEST

START_TEST(record_roundtrip_partial)
{
    tp_record r = {.state = TP_PRECOMMITTED, .has = TP_HAS_AT, .at_ms = 42};
    snprintf(r.gid, sizeof(r.gid), "%s", "3fa2b01c-4-18");
    size_t len;
    char *s = tp_record_encode(&r, &len);
    ck_assert_str_eq(s, "{\"gid\":\"3fa2b01c-4-18\",\"state\":\"precommitted\",\"at_ms\":42}");
    tp_record d;
    char err[128];
    ck_assert(tp_record_decode(s, len, &d, err, sizeof(err)));
    ck_assert_int_eq(d.state, TP_PRECOMMITTED);
    ck_assert_uint_eq(d.has, TP_HAS_AT);
    ck_assert_ptr_null(d.peers);
    tp_record_free(&d);
    free(s);
}
END_TEST

/* The fencing record: state and flag only (no at_ms: the timer keeps its
 * base); merged over the full record it keeps everything else. */
START_TEST(record_fenced)
{
    tp_record r = {.state = TP_UNCERTAIN, .has = TP_HAS_FENCED, .fenced = true};
    snprintf(r.gid, sizeof(r.gid), "%s", "3fa2b01c-4-18");
    size_t len;
    char *s = tp_record_encode(&r, &len);
    ck_assert_str_eq(s, "{\"gid\":\"3fa2b01c-4-18\",\"state\":\"uncertain\",\"fenced\":true}");
    tp_record d;
    char err[128];
    ck_assert(tp_record_decode(s, len, &d, err, sizeof(err)));
    ck_assert_uint_eq(d.has, TP_HAS_FENCED);
    ck_assert(d.fenced);
    tp_record full = full_record();
    tp_record dst = {0};
    tp_record_merge(&dst, &full);
    tp_record_merge(&dst, &d);
    ck_assert(dst.fenced && (dst.has & TP_HAS_FENCED) && (dst.has & TP_HAS_AT));
    ck_assert_int_eq(dst.at_ms, full.at_ms);
    ck_assert_uint_eq(dst.npeers, 2);
    const char *bad = "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"fenced\":1}";
    ck_assert(!tp_record_decode(bad, strlen(bad), &d, err, sizeof(err)));
    tp_record_free(&dst); /* full's peers are static */
    free(s);
}
END_TEST

START_TEST(record_final_states)
{
    const char *ok[] = {"{\"gid\":\"3fa2b01c-4-1\",\"state\":\"committed\"}",
                        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"aborted\",\"at_ms\":1}"};
    for (size_t i = 0; i < 2; i++) {
        tp_record d;
        char err[128];
        ck_assert_msg(tp_record_decode(ok[i], strlen(ok[i]), &d, err, sizeof(err)), "%s", err);
        ck_assert_int_eq(d.state, i == 0 ? TP_COMMITTED : TP_ABORTED);
        tp_record_free(&d);
    }
}
END_TEST

START_TEST(record_decode_rejects)
{
    const char *bad[] = {
        "not json",
        "[]",
        "{\"state\":\"uncertain\"}",
        "{\"gid\":\"X'; DROP\",\"state\":\"uncertain\"}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"prepared\"}",
        "{\"gid\":\"3fa2b01c-4-1\"}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"peers\":{}}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"peers\":[{\"participant\":\"Bad\","
        "\"url\":\"http://x\"}]}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"peers\":[{\"participant\":\"pg1\","
        "\"url\":\"ftp://x\"}]}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"uncertain_timeout_ms\":-1,"
        "\"precommit_timeout_ms\":1}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"uncertain_timeout_ms\":5}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"termination\":\"vote\"}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"xid\":\"12a\"}",
        "{\"gid\":\"3fa2b01c-4-1\",\"state\":\"uncertain\",\"at_ms\":\"now\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tp_record d;
        char err[128] = "";
        ck_assert_msg(!tp_record_decode(bad[i], strlen(bad[i]), &d, err, sizeof(err)),
                      "accepted: %s", bad[i]);
        ck_assert_msg(err[0] != '\0', "no reason for: %s", bad[i]);
        ck_assert_ptr_null(d.peers);
    }
}
END_TEST

START_TEST(record_merge)
{
    tp_record full = full_record();
    tp_record dst = {0};
    tp_record_merge(&dst, &full);
    tp_record pre = {.state = TP_PRECOMMITTED, .has = TP_HAS_AT, .at_ms = 99};
    tp_record_merge(&dst, &pre);
    ck_assert_int_eq(dst.state, TP_PRECOMMITTED);
    ck_assert_int_eq(dst.at_ms, 99);
    ck_assert_uint_eq(dst.npeers, 2);
    ck_assert_str_eq(dst.peers[1].participant, "pg2");
    ck_assert_str_eq(dst.xid, "4294967999");
    ck_assert_int_eq(dst.termination, TP_TERM_TIMEOUT);
    tp_record_free(&dst);
}
END_TEST

START_TEST(names_parse)
{
    tp_state s;
    tp_termination t;
    ck_assert(tp_state_parse("precommitted", &s) && s == TP_PRECOMMITTED);
    ck_assert(!tp_state_parse("none", &s));
    ck_assert(tp_termination_parse("timeout", &t) && t == TP_TERM_TIMEOUT);
    ck_assert(!tp_termination_parse("Protocol", &t));
    ck_assert(tp_termination_parse("blocking", &t) && t == TP_TERM_BLOCKING);
    ck_assert_str_eq(tp_termination_name(TP_TERM_BLOCKING), "blocking");
    ck_assert_str_eq(tp_termination_name(TP_TERM_PROTOCOL), "protocol");
    ck_assert_int_eq(peer_state_from("committed", true), PEER_READ_ONLY);
    ck_assert_int_eq(peer_state_from("committed", false), PEER_COMMITTED);
    ck_assert_int_eq(peer_state_from(NULL, false), PEER_UNREACHABLE);
    ck_assert_int_eq(peer_state_from("weird", false), PEER_UNREACHABLE);
}
END_TEST

/* ---- peer routes ---- */

START_TEST(peer_route_parse)
{
    tp_peer r;
    char err[256];
    ck_assert(tp_peer_route_parse("pg2=http://10.0.0.2:7402//", &r, err, sizeof(err)));
    ck_assert_str_eq(r.participant, "pg2");
    ck_assert_str_eq(r.url, "http://10.0.0.2:7402");
    ck_assert(tp_peer_route_parse("db_3=https://h/base", &r, err, sizeof(err)));
    ck_assert_str_eq(r.url, "https://h/base");
    const char *bad[] = {"pg2", "=http://h", "pg2=", "pg2=ftp://h", "Pg2=http://h",
                         "pg2=http:///", "a_name_much_longer_than_thirty-two=http://h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(!tp_peer_route_parse(bad[i], &r, err, sizeof(err)), "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, bad[i]) != NULL, "error '%s' does not name '%s'", err, bad[i]);
    }
    char longurl[TP_URL_MAX + 16];
    snprintf(longurl, sizeof(longurl), "pg2=http://%0*d", TP_URL_MAX, 0);
    ck_assert(!tp_peer_route_parse(longurl, &r, err, sizeof(err)));
}
END_TEST

START_TEST(peer_route_lookup)
{
    tp_peer routes[2] = {{"pg3", "http://127.0.0.1:9003"}, {"pg2", "http://127.0.0.1:9002"}};
    tp_peer p2 = {"pg2", "http://127.0.0.1:7402"}, p4 = {"pg4", "http://127.0.0.1:7404"};
    ck_assert_str_eq(tp_peer_url(routes, 2, &p2), "http://127.0.0.1:9002");
    ck_assert_str_eq(tp_peer_url(routes, 2, &p4), "http://127.0.0.1:7404");
    ck_assert_str_eq(tp_peer_url(NULL, 0, &p2), "http://127.0.0.1:7402");
}
END_TEST

/* ---- termination rule ---- */

static term_decision decide(tp_termination mode, tp_state self, const peer_state *ps, size_t n,
                            char *rule)
{
    const char *names[8] = {"pg2", "pg3", "pg4", "pg5", "pg6", "pg7", "pg8", "pg9"};
    return termination_decide(mode, self, ps, names, n, rule, 160);
}

START_TEST(rule_timeout)
{
    char rule[160];
    peer_state ps[] = {PEER_COMMITTED, PEER_ABORTED};
    ck_assert_int_eq(decide(TP_TERM_TIMEOUT, TP_UNCERTAIN, ps, 2, rule), TERM_ABORT);
    ck_assert_str_eq(rule, "timeout rule, uncertain");
    ck_assert_int_eq(decide(TP_TERM_TIMEOUT, TP_PRECOMMITTED, ps, 2, rule), TERM_COMMIT);
    ck_assert_str_eq(rule, "timeout rule, precommitted");
}
END_TEST

START_TEST(rule_committed_first)
{
    char rule[160];
    peer_state ps[] = {PEER_ABORTED, PEER_COMMITTED, PEER_PRECOMMITTED};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 3, rule), TERM_COMMIT);
    ck_assert_str_eq(rule, "protocol rule, peer pg3 committed");
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_PRECOMMITTED, ps, 3, rule), TERM_COMMIT);
}
END_TEST

START_TEST(rule_against_aborts)
{
    char rule[160];
    peer_state each[] = {PEER_ABORTED, PEER_ACTIVE, PEER_FAILED};
    for (size_t i = 0; i < 3; i++) {
        peer_state ps[] = {PEER_UNCERTAIN, each[i], PEER_PRECOMMITTED};
        ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 3, rule), TERM_ABORT);
        ck_assert(strstr(rule, "peer pg3 ") != NULL);
    }
    peer_state unk[] = {PEER_UNCERTAIN, PEER_UNKNOWN};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, unk, 2, rule), TERM_ABORT);
    ck_assert_str_eq(rule, "protocol rule, peer pg3 unknown");
}
END_TEST

/* A precommitted peer proves every branch voted yes: an unknown peer then
 * forgot a finished or read-only branch, and must not turn the outcome. */
START_TEST(rule_precommitted_outranks_unknown)
{
    char rule[160];
    peer_state ps[] = {PEER_UNKNOWN, PEER_PRECOMMITTED};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 2, rule),
                     TERM_PRECOMMIT_COMMIT);
    ck_assert_str_eq(rule, "protocol rule, peer pg3 precommitted");
}
END_TEST

START_TEST(rule_self_precommitted_never_aborts)
{
    char rule[160];
    peer_state ps[] = {PEER_ABORTED, PEER_UNKNOWN, PEER_UNCERTAIN};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_PRECOMMITTED, ps, 3, rule),
                     TERM_PRECOMMIT_COMMIT);
    ck_assert_str_eq(rule, "protocol rule, self precommitted");
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_PRECOMMITTED, NULL, 0, rule),
                     TERM_PRECOMMIT_COMMIT);
}
END_TEST

START_TEST(rule_peer_precommitted)
{
    char rule[160];
    peer_state ps[] = {PEER_UNCERTAIN, PEER_UNREACHABLE, PEER_PRECOMMITTED, PEER_PREPARED};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 4, rule),
                     TERM_PRECOMMIT_COMMIT);
    ck_assert_str_eq(rule, "protocol rule, peer pg4 precommitted");
    ck_assert(term_decision_commits(TERM_PRECOMMIT_COMMIT));
}
END_TEST

START_TEST(rule_all_uncertain)
{
    char rule[160];
    peer_state ps[] = {PEER_UNCERTAIN, PEER_UNREACHABLE, PEER_PREPARED, PEER_READ_ONLY};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 4, rule), TERM_ABORT_ALL);
    ck_assert_str_eq(rule, "protocol rule, all uncertain");
    ck_assert(!term_decision_commits(TERM_ABORT_ALL));
    peer_state none[] = {PEER_UNREACHABLE, PEER_UNREACHABLE};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, none, 2, rule), TERM_ABORT_ALL);
    ck_assert_str_eq(rule, "protocol rule, no peer reachable, self uncertain");
}
END_TEST

/* A peer that answered "busy" may be making a PreCommit durable: no abort
 * past it (it outranks UNKNOWN as PRECOMMITTED does), only evidence against
 * the commit, or a precommitted peer, decides without it. */
START_TEST(rule_busy_peer_waits)
{
    char rule[160];
    peer_state ps[] = {PEER_UNCERTAIN, PEER_BUSY, PEER_UNKNOWN};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 3, rule), TERM_WAIT);
    ck_assert_str_eq(rule, "protocol rule, peer pg3 busy");
    ck_assert(!term_decision_commits(TERM_WAIT));
    ck_assert_str_eq(term_decision_name(TERM_WAIT), "wait");
    peer_state pre[] = {PEER_BUSY, PEER_PRECOMMITTED};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, pre, 2, rule),
                     TERM_PRECOMMIT_COMMIT);
    peer_state against[] = {PEER_BUSY, PEER_ABORTED};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, against, 2, rule), TERM_ABORT);
    ck_assert_str_eq(peer_state_name(PEER_BUSY), "busy");
}
END_TEST

/* blocking: the protocol rule, but a peer that does not answer is waited
 * for (it may have pre-committed and crashed: the split of the protocol
 * rule), also where an unknown peer would have aborted; evidence (a peer
 * committed, aborted or precommitted) and self precommitted still decide. */
START_TEST(rule_blocking_waits_for_unreachable)
{
    char rule[160];
    peer_state ps[] = {PEER_UNCERTAIN, PEER_UNREACHABLE};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, ps, 2, rule), TERM_WAIT);
    ck_assert_str_eq(rule, "blocking rule, peer pg3 unreachable");
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 2, rule), TERM_ABORT_ALL);
    peer_state none[] = {PEER_UNREACHABLE, PEER_UNREACHABLE};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, none, 2, rule), TERM_WAIT);
    peer_state unk[] = {PEER_UNKNOWN, PEER_UNREACHABLE};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, unk, 2, rule), TERM_WAIT);
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, unk, 2, rule), TERM_ABORT);
    peer_state committed[] = {PEER_UNREACHABLE, PEER_COMMITTED};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, committed, 2, rule), TERM_COMMIT);
    peer_state aborted[] = {PEER_UNREACHABLE, PEER_ABORTED};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, aborted, 2, rule), TERM_ABORT);
    peer_state pre[] = {PEER_UNREACHABLE, PEER_PRECOMMITTED};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, pre, 2, rule), TERM_PRECOMMIT_COMMIT);
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_PRECOMMITTED, none, 2, rule),
                     TERM_PRECOMMIT_COMMIT);
    peer_state all[] = {PEER_UNCERTAIN, PEER_PREPARED, PEER_READ_ONLY};
    ck_assert_int_eq(decide(TP_TERM_BLOCKING, TP_UNCERTAIN, all, 3, rule), TERM_ABORT_ALL);
    ck_assert_str_eq(rule, "protocol rule, all uncertain");
}
END_TEST

START_TEST(rule_read_only_peer_is_skipped)
{
    /* A read-only peer shows "committed" but its vote carried no decision. */
    char rule[160];
    peer_state ps[] = {peer_state_from("committed", true), PEER_UNCERTAIN};
    ck_assert_int_eq(decide(TP_TERM_PROTOCOL, TP_UNCERTAIN, ps, 2, rule), TERM_ABORT_ALL);
}
END_TEST

/* ---- recovery sweep ---- */

START_TEST(sweep_min_age)
{
    ck_assert(resolver_too_young(0, 1000));
    ck_assert(resolver_too_young(999, 1000));
    ck_assert(!resolver_too_young(1000, 1000));
    ck_assert(!resolver_too_young(86400000, 1000));
    /* the server's clock went back after the PREPARE: asked about at once */
    ck_assert(!resolver_too_young(-1, 1000));
    ck_assert(!resolver_too_young(-3600000, 1000));
    /* --resolve-min-age-ms 0: every branch is asked about */
    ck_assert(!resolver_too_young(0, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("participant-3pc");
    TCase *rec = tcase_create("record");
    tcase_add_test(rec, record_roundtrip_full);
    tcase_add_test(rec, record_roundtrip_partial);
    tcase_add_test(rec, record_final_states);
    tcase_add_test(rec, record_fenced);
    tcase_add_test(rec, record_decode_rejects);
    tcase_add_test(rec, record_merge);
    tcase_add_test(rec, names_parse);
    tcase_add_test(rec, peer_route_parse);
    tcase_add_test(rec, peer_route_lookup);
    suite_add_tcase(s, rec);
    TCase *rule = tcase_create("termination_rule");
    tcase_add_test(rule, rule_timeout);
    tcase_add_test(rule, rule_committed_first);
    tcase_add_test(rule, rule_against_aborts);
    tcase_add_test(rule, rule_precommitted_outranks_unknown);
    tcase_add_test(rule, rule_self_precommitted_never_aborts);
    tcase_add_test(rule, rule_peer_precommitted);
    tcase_add_test(rule, rule_all_uncertain);
    tcase_add_test(rule, rule_read_only_peer_is_skipped);
    tcase_add_test(rule, rule_busy_peer_waits);
    tcase_add_test(rule, rule_blocking_waits_for_unreachable);
    suite_add_tcase(s, rule);
    TCase *sweep = tcase_create("sweep");
    tcase_add_test(sweep, sweep_min_age);
    suite_add_tcase(s, sweep);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
