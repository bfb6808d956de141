/*
 * gid.h - the rules for global transaction ids and PostgreSQL branch gids.
 *
 * Global gid:   "<coord-id>-<epoch>-<seq>"
 *   coord-id: 8 lowercase hex chars, chosen once when a data dir is created;
 *   epoch:    decimal, incremented (durably) at each coordinator start;
 *   seq:      decimal, per-epoch counter.
 *   So gids are unique for the life of a data dir, across restarts.
 * Branch gid (the literal given to PREPARE TRANSACTION):
 *   "txc:<global gid>:<participant>"
 *   Everything our agents prepare starts with GID_BRANCH_PREFIX; recovery
 *   filters pg_prepared_xacts on it. Total length < 200 (PostgreSQL GIDSIZE).
 *
 * Charset invariants (these are what make a gid safe as a SQL literal, and it
 * is still quoted with PQescapeLiteral by pg.c):
 *   global gid:  [a-z0-9-], 1..GID_MAX_LEN, matches the 3-part shape above
 *   participant: [a-z0-9_-], starts with a letter, 1..PARTICIPANT_MAX_LEN
 */
#ifndef TX_GID_H
#define TX_GID_H

#include "util.h"

#define GID_MAX_LEN 64
#define PARTICIPANT_MAX_LEN 32
#define GID_BRANCH_PREFIX "txc:"
#define BRANCH_GID_MAX_LEN (4 + GID_MAX_LEN + 1 + PARTICIPANT_MAX_LEN) /* < 199 */

/* Pure predicates, no logging. */
bool gid_valid(const char *gid);
bool participant_name_valid(const char *name);
bool coord_id_valid(const char *id); /* 8 lowercase hex */

/* Build "<coord_id>-<epoch>-<seq>" into buf (size >= GID_MAX_LEN+1). */
void gid_format(char *buf, size_t size, const char *coord_id, uint64_t epoch, uint64_t seq);
/* Split a valid global gid. Any out pointer may be NULL. coord_id_out >= 9 bytes. */
bool gid_parse(const char *gid, char *coord_id_out, uint64_t *epoch_out, uint64_t *seq_out) MUSTCHECK;

/* Build the branch gid; false (no log) if gid or participant is invalid.
 * buf size >= BRANCH_GID_MAX_LEN+1. */
bool branch_gid_make(char *buf, size_t size, const char *gid, const char *participant) MUSTCHECK;
/* Parse a branch gid back; false if it is not ours or malformed.
 * gid_out >= GID_MAX_LEN+1, participant_out >= PARTICIPANT_MAX_LEN+1 (either may be NULL). */
bool branch_gid_parse(const char *bgid, char *gid_out, char *participant_out) MUSTCHECK;

/* A PostgreSQL xid8 as text, as it writes one: 1 to 20 decimal digits, no
 * leading zero, from 3 (0-2 are special xids, no transaction's) to 2^64 - 1
 * (what agents put in a yes vote, and take back with a commit or rollback). */
#define XID8_TEXT_MAX 20
bool xid8_text_valid(const char *s);
/* The xid8 of a live transaction known by its 32-bit xid (pg_prepared_xacts
 * shows only that), given a reference xid8 of the same moment, e.g.
 * pg_snapshot_xmax(pg_current_snapshot()): the live xid lies within 2^31 of
 * it on EITHER side (xmax is the last completed xid + 1, and a transaction
 * still prepared or running can be newer than that). */
uint64_t xid8_near(uint32_t xid32, uint64_t ref);

#endif
