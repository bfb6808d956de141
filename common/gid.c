/*
 * gid.c - validation, formatting and parsing of global and branch gids.
 *
 * Invariants (gid.h is the spec):
 *   - global gid = 8 lowercase hex, '-', epoch, '-', seq; epoch and seq are
 *     canonical decimal u64 (no sign, no leading zero unless "0"), so one
 *     transaction has exactly one spelling; total length <= GID_MAX_LEN.
 *   - participant = [a-z][a-z0-9_-]{0,31}.
 *   - branch gid = "txc:" gid ":" participant; anything else is not ours.
 *   - Every accepted string uses only [a-z0-9_:-]: safe inside a SQL literal.
 * Pure functions: no logging, no allocation.
 */
#include "gid.h"

#include <stdio.h>
#include <string.h>

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool coord_id_valid(const char *id)
{
    if (!id)
        return false;
    for (int i = 0; i < 8; i++)
        if (!is_lower_hex(id[i]))
            return false;
    return id[8] == '\0';
}

bool participant_name_valid(const char *name)
{
    if (!name || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    size_t i = 1;
    for (; name[i]; i++) {
        char c = name[i];
        if (i >= PARTICIPANT_MAX_LEN)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parse canonical decimal u64 from s[0..len). */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    if (len > 1 && s[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Validate a global gid occupying s[0..len) (not necessarily NUL-terminated). */
static bool gid_parse_n(const char *s, size_t len, char *coord_id_out, uint64_t *epoch_out,
                        uint64_t *seq_out)
{
    if (len < 12 || len > GID_MAX_LEN) /* "xxxxxxxx-0-0" is the shortest */
        return false;
    for (int i = 0; i < 8; i++)
        if (!is_lower_hex(s[i]))
            return false;
    if (s[8] != '-')
        return false;
    const char *ep = s + 9;
    const char *dash = memchr(ep, '-', len - 9);
    if (!dash)
        return false;
    uint64_t epoch, seq;
    if (!parse_u64(ep, (size_t)(dash - ep), &epoch))
        return false;
    if (!parse_u64(dash + 1, len - (size_t)(dash + 1 - s), &seq))
        return false;
    if (coord_id_out) {
        memcpy(coord_id_out, s, 8);
        coord_id_out[8] = '\0';
    }
    if (epoch_out)
        *epoch_out = epoch;
    if (seq_out)
        *seq_out = seq;
    return true;
}

bool gid_valid(const char *gid)
{
    if (!gid)
        return false;
    size_t len = strnlen(gid, GID_MAX_LEN + 1);
    return gid_parse_n(gid, len, NULL, NULL, NULL);
}

bool gid_parse(const char *gid, char *coord_id_out, uint64_t *epoch_out, uint64_t *seq_out)
{
    if (!gid)
        return false;
    size_t len = strnlen(gid, GID_MAX_LEN + 1);
    return gid_parse_n(gid, len, coord_id_out, epoch_out, seq_out);
}

void gid_format(char *buf, size_t size, const char *coord_id, uint64_t epoch, uint64_t seq)
{
    snprintf(buf, size, "%.8s-%llu-%llu", coord_id, (unsigned long long)epoch,
             (unsigned long long)seq);
}

bool branch_gid_make(char *buf, size_t size, const char *gid, const char *participant)
{
    if (!gid_valid(gid) || !participant_name_valid(participant))
        return false;
    int n = snprintf(buf, size, GID_BRANCH_PREFIX "%s:%s", gid, participant);
    return n > 0 && (size_t)n < size;
}

bool branch_gid_parse(const char *bgid, char *gid_out, char *participant_out)
{
    static const size_t plen = sizeof(GID_BRANCH_PREFIX) - 1;
    if (!bgid)
        return false;
    size_t len = strnlen(bgid, BRANCH_GID_MAX_LEN + 1);
    if (len > BRANCH_GID_MAX_LEN || len <= plen || memcmp(bgid, GID_BRANCH_PREFIX, plen) != 0)
        return false;
    const char *g = bgid + plen;
    const char *colon = memchr(g, ':', len - plen);
    if (!colon)
        return false;
    size_t glen = (size_t)(colon - g);
    if (!gid_parse_n(g, glen, NULL, NULL, NULL))
        return false;
    const char *p = colon + 1;
    if (!participant_name_valid(p))
        return false;
    if (gid_out) {
        memcpy(gid_out, g, glen);
        gid_out[glen] = '\0';
    }
    if (participant_out)
        snprintf(participant_out, PARTICIPANT_MAX_LEN + 1, "%s", p);
    return true;
}

bool xid8_text_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > XID8_TEXT_MAX || strspn(s, "0123456789") != n)
        return false;
    /* 0, 1 and 2 are PostgreSQL's invalid, bootstrap and frozen xids, never
     * a transaction's (pg_xact_status calls 0 aborted, 1 and 2 committed) */
    if (n == 1 && s[0] <= '2')
        return false;
    if (s[0] == '0')
        return false; /* leading zeros: not as PostgreSQL writes an xid8 */
    /* 20 digits may pass 2^64 - 1 = 18446744073709551615: compare as text */
    return n < XID8_TEXT_MAX || strcmp(s, "18446744073709551615") <= 0;
}

uint64_t xid8_near(uint32_t xid32, uint64_t ref)
{
    /* the signed distance from ref's low 32 bits to xid32, in -2^31..2^31 */
    int64_t d = (int32_t)(xid32 - (uint32_t)ref);
    return ref + (uint64_t)d; /* modular: a negative d subtracts */
}
