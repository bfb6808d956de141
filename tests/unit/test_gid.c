/*
 * test_gid.c - unit tests for gid.c (global/branch gid rules) and crc32c.c.
 * Invariants checked: only the documented shapes are accepted; everything
 * accepted round-trips; nothing with SQL-significant characters passes.
 */
#include <check.h>
#include <string.h>

#include "crc32c.h"
#include "gid.h"
#include "unit_util.h"

START_TEST(test_gid_valid)
{
    static const char *const good[] = {
        "3fa2b01c-4-17", "00000000-0-0", "ffffffff-1-1", "0123abcd-99-123456",
        "ffffffff-18446744073709551615-18446744073709551615",
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++)
        ck_assert_msg(gid_valid(good[i]), "should be valid: %s", good[i]);
}
END_TEST

START_TEST(test_gid_invalid)
{
    static const char *const bad[] = {
        "", "3FA2B01C-4-17", "3fa2b01c-04-17", "3fa2b01c-4-017", "3fa2b01c-4", "3fa2b01c",
        "3fa2b01c-4-17-1", "3fa2b01-4-17", "3fa2b01cc-4-17", "g0000000-1-1", "3fa2b01c--4-17",
        "3fa2b01c-4-", "3fa2b01c--17", "3fa2b01c-+4-17", "3fa2b01c-4-17 ", " 3fa2b01c-4-17",
        "3fa2b01c-4-17'", "3fa2b01c-4-17'; DROP TABLE t; --", "3fa2b01c-4-1\"7",
        "3fa2b01c-4-17\n", "3fa2b01c_4_17", "3fa2b01c-18446744073709551616-1",
        "3fa2b01c-1-99999999999999999999", "3fa2b01c-4-1\\7", "txc:3fa2b01c-4-17:pg1",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ck_assert_msg(!gid_valid(bad[i]), "should be invalid: %s", bad[i]);
    ck_assert(!gid_valid(NULL));
}
END_TEST

START_TEST(test_gid_length_limit)
{
    /* 8 + 1 + 20 + 1 + 20 = 50: the longest canonical gid (both numbers
     * UINT64_MAX) is valid and fits GID_MAX_LEN (64, the buffers' bound). */
    const char *longest = "3fa2b01c-18446744073709551615-18446744073709551615";
    ck_assert_uint_eq(strlen(longest), 50);
    ck_assert(gid_valid(longest));
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", longest);
    buf[49] = '6'; /* seq UINT64_MAX + 1 */
    ck_assert(!gid_valid(buf));
    /* Longer shapes cannot be canonical (no leading zeros, u64 bounds): a
     * leading zero is refused whatever the length, and a string far past
     * GID_MAX_LEN is refused without reading it all (strnlen bound). */
    ck_assert(!gid_valid("3fa2b01c-1-0123"));
    memset(buf, '1', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    memcpy(buf, "3fa2b01c-1-", 11);
    ck_assert(!gid_valid(buf));
}
END_TEST

START_TEST(test_gid_format_parse)
{
    char buf[GID_MAX_LEN + 1], cid[9];
    uint64_t epoch = 0, seq = 0;
    gid_format(buf, sizeof(buf), "3fa2b01c", 4, 17);
    ck_assert_str_eq(buf, "3fa2b01c-4-17");
    ck_assert(gid_parse(buf, cid, &epoch, &seq));
    ck_assert_str_eq(cid, "3fa2b01c");
    ck_assert_uint_eq(epoch, 4);
    ck_assert_uint_eq(seq, 17);
    gid_format(buf, sizeof(buf), "ffffffff", UINT64_MAX, UINT64_MAX);
    ck_assert(gid_valid(buf));
    ck_assert(gid_parse(buf, NULL, &epoch, NULL));
    ck_assert(epoch == UINT64_MAX);
    ck_assert(!gid_parse("3fa2b01c-4", cid, &epoch, &seq));
}
END_TEST

START_TEST(test_participant_names)
{
    ck_assert(participant_name_valid("pg1"));
    ck_assert(participant_name_valid("a"));
    ck_assert(participant_name_valid("a_b-c9"));
    char name[64];
    memset(name, 'a', sizeof(name));
    name[PARTICIPANT_MAX_LEN] = '\0';
    ck_assert(participant_name_valid(name));
    name[PARTICIPANT_MAX_LEN] = 'a';
    name[PARTICIPANT_MAX_LEN + 1] = '\0';
    ck_assert(!participant_name_valid(name));
    static const char *const bad[] = {"", "1pg", "Pg1", "pg 1", "pg:1", "pg'1", "-pg",
                                      "_pg", "pg\"", "pg;", "pgé", "pg1\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ck_assert_msg(!participant_name_valid(bad[i]), "should be invalid: %s", bad[i]);
    ck_assert(!participant_name_valid(NULL));
}
END_TEST

START_TEST(test_coord_id)
{
    ck_assert(coord_id_valid("3fa2b01c"));
    ck_assert(coord_id_valid("00000000"));
    ck_assert(!coord_id_valid("3fa2b01"));
    ck_assert(!coord_id_valid("3fa2b01cd"));
    ck_assert(!coord_id_valid("3FA2B01C"));
    ck_assert(!coord_id_valid("3fa2b0g1"));
    ck_assert(!coord_id_valid(NULL));
}
END_TEST

START_TEST(test_branch_gid_roundtrip)
{
    char b[BRANCH_GID_MAX_LEN + 1], g[GID_MAX_LEN + 1], p[PARTICIPANT_MAX_LEN + 1];
    ck_assert(branch_gid_make(b, sizeof(b), "3fa2b01c-4-17", "pg2"));
    ck_assert_str_eq(b, "txc:3fa2b01c-4-17:pg2");
    ck_assert(branch_gid_parse(b, g, p));
    ck_assert_str_eq(g, "3fa2b01c-4-17");
    ck_assert_str_eq(p, "pg2");
    ck_assert(branch_gid_parse(b, NULL, NULL));

    /* Longest possible: still < 200 (GIDSIZE) and round-trips. */
    char longp[PARTICIPANT_MAX_LEN + 1];
    memset(longp, 'z', PARTICIPANT_MAX_LEN);
    longp[PARTICIPANT_MAX_LEN] = '\0';
    ck_assert(branch_gid_make(b, sizeof(b), "ffffffff-18446744073709551615-18446744073709551615",
                              longp));
    ck_assert_int_lt((int)strlen(b), 200);
    ck_assert(branch_gid_parse(b, g, p));
    ck_assert_str_eq(p, longp);
    ck_assert_int_lt(BRANCH_GID_MAX_LEN, 199);

    /* Buffer too small: refused, no overflow. */
    char small[10];
    ck_assert(!branch_gid_make(small, sizeof(small), "3fa2b01c-4-17", "pg2"));
    /* Invalid parts. */
    ck_assert(!branch_gid_make(b, sizeof(b), "3fa2b01c-4-17'", "pg2"));
    ck_assert(!branch_gid_make(b, sizeof(b), "3fa2b01c-4-17", "pg2'"));
}
END_TEST

START_TEST(test_xid8_text)
{
    ck_assert(xid8_text_valid("3"));
    ck_assert(xid8_text_valid("742"));
    ck_assert(!xid8_text_valid("0")); /* invalid, bootstrap, frozen */
    ck_assert(!xid8_text_valid("1"));
    ck_assert(!xid8_text_valid("2"));
    ck_assert(!xid8_text_valid("0742"));
    ck_assert(xid8_text_valid("18446744073709551615")); /* 2^64 - 1 */
    ck_assert(!xid8_text_valid("18446744073709551616"));
    ck_assert(!xid8_text_valid("99999999999999999999"));
    ck_assert(!xid8_text_valid("123456789012345678901")); /* 21 digits */
    ck_assert(!xid8_text_valid(""));
    ck_assert(!xid8_text_valid(NULL));
    ck_assert(!xid8_text_valid("-1"));
    ck_assert(!xid8_text_valid("12a"));
    ck_assert(!xid8_text_valid(" 12"));
    ck_assert(!xid8_text_valid("1'; DROP"));
}
END_TEST

START_TEST(test_xid8_near)
{
    /* older than the reference (a snapshot's xmax) */
    ck_assert_uint_eq(xid8_near(999, 1000), 999);
    /* NEWER than it: prepared while nothing completed since (two prepared
     * transactions, 1000 and 1001, the last completed 999: xmax 1000) */
    ck_assert_uint_eq(xid8_near(1001, 1000), 1001);
    ck_assert_uint_eq(xid8_near(1000, 1000), 1000);
    /* across a 32-bit wrap, either way, in a later epoch */
    uint64_t epoch2 = (uint64_t)2 << 32;
    ck_assert_uint_eq(xid8_near(0xFFFFFFF0u, epoch2 + 5), epoch2 - 16);
    ck_assert_uint_eq(xid8_near(5, epoch2 - 16), epoch2 + 5);
    /* the far ends of the window */
    ck_assert_uint_eq(xid8_near(1000 + 0x7FFFFFFFu, epoch2 + 1000), epoch2 + 1000 + 0x7FFFFFFFu);
    ck_assert_uint_eq(xid8_near(1000u - 0x80000000u, epoch2 + 1000), epoch2 + 1000 - 0x80000000u);
}
END_TEST

START_TEST(test_branch_gid_reject)
{
    static const char *const bad[] = {
        "", "txc:", "txc:3fa2b01c-4-17", "txc:3fa2b01c-4-17:", "tx:3fa2b01c-4-17:pg1",
        "TXC:3fa2b01c-4-17:pg1", "txc:3fa2b01c-4-17:pg1:x", "txc::pg1",
        "txc:3fa2b01c-4-17:pg1'", "txc:3fa2b01c-4-17:pg'); DROP TABLE x; --",
        "txc:3fa2b01c-4-17':pg1", "txc:3fa2b01c-4-17:Pg1", "xtxc:3fa2b01c-4-17:pg1",
        "txc:3fa2b01c-4-17:pg1 ", "txc:3fa2b01c-4-17:pg1\\", "txc:3fa2b01c-04-17:pg1",
        "pg_prepared_xact", "txc:3fa2b01c-4-17:pg1\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ck_assert_msg(!branch_gid_parse(bad[i], NULL, NULL), "should be rejected: %s", bad[i]);
    ck_assert(!branch_gid_parse(NULL, NULL, NULL));
    char huge[400];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge, "txc:3fa2b01c-4-17:", 18);
    huge[sizeof(huge) - 1] = '\0';
    ck_assert(!branch_gid_parse(huge, NULL, NULL));
}
END_TEST

START_TEST(test_crc32c_vector)
{
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c(0, "", 0), 0);
    /* Chaining equals one pass, at every split point and alignment. */
    char buf[100];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 7 + 3);
    uint32_t whole = crc32c(0, buf + 1, sizeof(buf) - 1);
    for (size_t k = 1; k < sizeof(buf); k++)
        ck_assert_uint_eq(crc32c(crc32c(0, buf + 1, k - 1), buf + k, sizeof(buf) - k), whole);
    /* 32 bytes of zeros (RFC 3720 / iSCSI test vector). */
    char zeros[32] = {0};
    ck_assert_uint_eq(crc32c(0, zeros, 32), 0x8A9136AAu);
    unsigned char ones[32];
    memset(ones, 0xff, sizeof(ones));
    ck_assert_uint_eq(crc32c(0, ones, 32), 0x62A8AB43u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gid");
    TCase *tc = tcase_create("gid");
    tcase_add_test(tc, test_gid_valid);
    tcase_add_test(tc, test_gid_invalid);
    tcase_add_test(tc, test_gid_length_limit);
    tcase_add_test(tc, test_gid_format_parse);
    tcase_add_test(tc, test_participant_names);
    tcase_add_test(tc, test_coord_id);
    tcase_add_test(tc, test_branch_gid_roundtrip);
    tcase_add_test(tc, test_branch_gid_reject);
    tcase_add_test(tc, test_xid8_text);
    tcase_add_test(tc, test_xid8_near);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("crc32c");
    tcase_add_test(tc2, test_crc32c_vector);
    suite_add_tcase(s, tc2);
    return unit_run(s);
}
