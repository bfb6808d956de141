/*
 * tp.h - the pure parts of the agent's three-phase commit (no I/O, no locks):
 * the branches3pc.log record and its JSON codec, the peer routes, and the
 * termination rule.
 * Unit-tested by test_tp.c; used by threepc.c and termination.c.
 *
 * Record payload (wal.h framing, type TP_RECORD_TYPE), compact JSON:
 *   {"gid","state":"uncertain","peers":[{"participant","url"}],
 *    "uncertain_timeout_ms","precommit_timeout_ms",
 *    "termination":"protocol"|"timeout"|"blocking",
 *    "xid","at_ms"}                                 (after the yes vote, forced)
 *   {"gid","state":"uncertain","fenced":true}        (before answering a peer's
 *                                                    termination read, forced:
 *                                                    no PreCommit of the
 *                                                    coordinator's is taken after)
 *   {"gid","state":"precommitted","at_ms"}          (before the precommit ack, forced)
 *   {"gid","state":"committed"|"aborted","at_ms"}   (final, not forced; type
 *                                                    TP_FINAL_TYPE)
 * A compacted log holds the final record ({gid, state, at_ms}) of every
 * branch finished within the retention window (threepc.c), then one full
 * record (every field) per unfinished branch, with state uncertain or
 * precommitted. Replay merges records per gid in
 * order: later fields override earlier ones, absent fields are kept.
 * xid is the branch's xid8 in decimal ("" when unknown); at_ms is wall-clock
 * milliseconds of the state change (timers are re-armed from it on restart).
 *
 * Ownership: tp_record_decode allocates peers (tp_record_free); encode
 * returns a string the caller frees.
 */
#ifndef TXAGENT_TP_H
#define TXAGENT_TP_H

#include <stddef.h>
#include <stdint.h>

#include "gid.h"
#include "util.h"

#define TP_RECORD_TYPE 'B'
/* The final records (committed/aborted), never forced, have their own type:
 * replay reads both alike, and a power cut that leaves a later page of the
 * log on disk without an earlier one can only leave final records after the
 * hole, which wal_open_unforced then cuts instead of refusing to start. */
#define TP_FINAL_TYPE 'F'
#define TP_MAX_PEERS 64
#define TP_URL_MAX 352 /* an http+unix URL of a 107-byte path, percent-encoded: 333 */
#define TP_XID_MAX 24

typedef enum { TP_NONE = 0, TP_UNCERTAIN, TP_PRECOMMITTED, TP_COMMITTED, TP_ABORTED } tp_state;
/* protocol: ask the peers, skip the unreachable (non-blocking; splits when
 * an unreachable peer had pre-committed); timeout: no peers asked;
 * blocking: the protocol rule, waiting for unreachable peers as for busy
 * ones (never decides past a peer it cannot read; blocks as 2PC does). */
typedef enum { TP_TERM_PROTOCOL = 0, TP_TERM_TIMEOUT, TP_TERM_BLOCKING } tp_termination;

typedef struct {
    char participant[PARTICIPANT_MAX_LEN + 1];
    char url[TP_URL_MAX]; /* base URL, no trailing '/' */
} tp_peer;

/* Which optional fields a decoded record carried. */
enum {
    TP_HAS_PEERS = 1u << 0,
    TP_HAS_TIMEOUTS = 1u << 1,
    TP_HAS_TERMINATION = 1u << 2,
    TP_HAS_XID = 1u << 3,
    TP_HAS_AT = 1u << 4,
    TP_HAS_FENCED = 1u << 5,
};

typedef struct {
    char gid[GID_MAX_LEN + 1];
    tp_state state;
    unsigned has; /* TP_HAS_* */
    tp_peer *peers; /* owned */
    size_t npeers;
    int64_t uncertain_timeout_ms, precommit_timeout_ms;
    tp_termination termination;
    char xid[TP_XID_MAX]; /* decimal xid8 or "" */
    int64_t at_ms;
    bool fenced; /* with TP_HAS_FENCED: a peer's termination read this branch uncertain */
} tp_record;

const char *tp_state_name(tp_state s); /* "uncertain", ...; "none" */
bool tp_state_parse(const char *s, tp_state *out) MUSTCHECK;
const char *tp_termination_name(tp_termination t);
bool tp_termination_parse(const char *s, tp_termination *out) MUSTCHECK;

/* Compact JSON of r, only the fields named in r->has (gid and state always).
 * Caller frees; *len is its length. */
char *tp_record_encode(const tp_record *r, size_t *len);
/* Parse a payload into *out (zeroed first). false with err filled on a bad
 * record (invalid JSON, gid, state, peer, ...). */
bool tp_record_decode(const char *payload, size_t len, tp_record *out, char *err,
                      size_t errlen) MUSTCHECK;
/* Merge src into dst (same gid): state always, the fields src has. Peers are
 * copied. */
void tp_record_merge(tp_record *dst, const tp_record *src);
void tp_record_free(tp_record *r);

/* ---- peer routes (txagent --peer NAME=URL) ---- */

/* A route says how this agent reaches peer NAME when that differs from the
 * URL the coordinator sends in "peers" (the coordinator's own route to that
 * agent): NAT, another network, a proxy. Only the termination protocol's
 * calls use it; the recorded peers keep the coordinator's URLs. */

/* Parse "NAME=URL" into *out: NAME follows the participant name rule, URL is
 * http(s), or unix:PATH (kept as http+unix://, httpc_url_normalize), and
 * shorter than TP_URL_MAX; trailing '/' are dropped. false with
 * err (size errlen) filled otherwise. */
bool tp_peer_route_parse(const char *spec, tp_peer *out, char *err, size_t errlen) MUSTCHECK;
/* The URL to reach peer: the route of its participant in routes[0..n), else
 * peer->url. Borrowed from routes or peer. */
const char *tp_peer_url(const tp_peer *routes, size_t n, const tp_peer *peer);

/* ---- termination rule (PROTOCOL.md "Three-phase commit") ---- */

/* What a peer answered to GET /v1/branches/{gid}. */
typedef enum {
    PEER_UNREACHABLE = 0, /* no answer, or not 200: skipped */
    PEER_READ_ONLY,       /* committed after a read_only vote: says nothing, skipped */
    PEER_UNKNOWN,
    PEER_ACTIVE,
    PEER_FAILED,
    PEER_PREPARED, /* prepared but no 3PC record yet (about to vote): as uncertain */
    PEER_UNCERTAIN,
    PEER_PRECOMMITTED,
    PEER_COMMITTED,
    PEER_ABORTED,
    PEER_BUSY, /* answered, but could not tell yet (its branch busy, e.g. a PreCommit
                * being made durable, or its PostgreSQL down): wait for it */
} peer_state;

/* Map a GET answer: state string (NULL when there was no 200 answer) and its
 * "read_only" flag. Unrecognised states are PEER_UNREACHABLE. */
peer_state peer_state_from(const char *state, bool read_only);
const char *peer_state_name(peer_state s);

typedef enum {
    TERM_COMMIT,           /* commit self only */
    TERM_ABORT,            /* abort self only */
    TERM_PRECOMMIT_COMMIT, /* precommit self (if uncertain) and the uncertain peers, then
                              commit self and the other peers */
    TERM_ABORT_ALL,        /* abort self and the uncertain peers */
    TERM_WAIT,             /* a peer could not tell yet: nothing now, ask again soon */
} term_decision;

const char *term_decision_name(term_decision d); /* "commit" | "abort" | ... */
/* true for TERM_COMMIT and TERM_PRECOMMIT_COMMIT. */
bool term_decision_commits(term_decision d);

/* The rule, as a pure function of (mode, my state, peers' states). self is
 * TP_UNCERTAIN or TP_PRECOMMITTED. peers excludes self. rule (size rulelen)
 * gets a short text naming the rule that decided, e.g. "peer pg2 committed",
 * "all uncertain", "timeout rule, precommitted" (names[i] is peers[i]'s
 * participant; may be NULL). Order (first match wins):
 *   timeout mode: uncertain -> abort; precommitted -> commit.
 *   protocol mode:
 *     1. any peer committed                         -> commit
 *     2. self precommitted                          -> precommit-then-commit
 *        (a precommitted branch never aborts: it acknowledged PreCommit, so
 *        the coordinator may already have decided commit)
 *     3. any peer aborted, active, failed or unknown -> abort
 *     4. any peer precommitted                      -> precommit-then-commit
 *     5. otherwise (every reachable peer uncertain, or none reachable)
 *                                                   -> abort self and peers
 *   Unreachable and read-only peers are skipped. */
term_decision termination_decide(tp_termination mode, tp_state self, const peer_state *peers,
                                 const char *const *names, size_t n, char *rule,
                                 size_t rulelen);

#endif
