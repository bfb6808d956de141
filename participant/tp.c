/*
 * tp.c - pure 3PC helpers of txagent: the branches3pc.log record codec, the
 * peer routes (--peer) and the termination rule (see tp.h for the record
 * format and the rule's order).
 *
 * Invariants:
 *   - No I/O, no locks, no logging: every function is a function of its
 *     arguments, so test_tp.c covers it without a server.
 *   - decode never trusts the payload: gid, participant names, URLs and
 *     numbers are validated; a bad record is reported, never half-applied.
 */
#include "tp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"

static const char *const state_names[] = {
    [TP_NONE] = "none",           [TP_UNCERTAIN] = "uncertain", [TP_PRECOMMITTED] = "precommitted",
    [TP_COMMITTED] = "committed", [TP_ABORTED] = "aborted",
};

const char *tp_state_name(tp_state s)
{
    return (s >= TP_NONE && s <= TP_ABORTED) ? state_names[s] : "invalid";
}

bool tp_state_parse(const char *s, tp_state *out)
{
    for (int i = TP_UNCERTAIN; i <= TP_ABORTED; i++) {
        if (s && strcmp(s, state_names[i]) == 0) {
            *out = (tp_state)i;
            return true;
        }
    }
    return false;
}

const char *tp_termination_name(tp_termination t)
{
    return t == TP_TERM_TIMEOUT ? "timeout" : t == TP_TERM_BLOCKING ? "blocking" : "protocol";
}

bool tp_termination_parse(const char *s, tp_termination *out)
{
    if (s && strcmp(s, "protocol") == 0) {
        *out = TP_TERM_PROTOCOL;
        return true;
    }
    if (s && strcmp(s, "timeout") == 0) {
        *out = TP_TERM_TIMEOUT;
        return true;
    }
    if (s && strcmp(s, "blocking") == 0) {
        *out = TP_TERM_BLOCKING;
        return true;
    }
    return false;
}

char *tp_record_encode(const tp_record *r, size_t *len)
{
    json_t *o = json_pack("{s:s, s:s}", "gid", r->gid, "state", tp_state_name(r->state));
    if (r->has & TP_HAS_PEERS) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r->npeers; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "participant",
                                                 r->peers[i].participant, "url", r->peers[i].url));
        json_object_set_new(o, "peers", arr);
    }
    if (r->has & TP_HAS_TIMEOUTS) {
        json_object_set_new(o, "uncertain_timeout_ms", json_integer(r->uncertain_timeout_ms));
        json_object_set_new(o, "precommit_timeout_ms", json_integer(r->precommit_timeout_ms));
    }
    if (r->has & TP_HAS_TERMINATION)
        json_object_set_new(o, "termination", json_string(tp_termination_name(r->termination)));
    if (r->has & TP_HAS_XID)
        json_object_set_new(o, "xid", json_string(r->xid));
    if (r->has & TP_HAS_AT)
        json_object_set_new(o, "at_ms", json_integer(r->at_ms));
    if ((r->has & TP_HAS_FENCED) && r->fenced)
        json_object_set_new(o, "fenced", json_true());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        abort(); /* only on OOM: every value above is valid UTF-8 */
    *len = strlen(s);
    return s;
}

static bool url_ok(const char *u)
{
    size_t n = strlen(u);
    return n > 0 && n < TP_URL_MAX &&
           (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0 ||
            strncmp(u, "http+unix://", 12) == 0);
}

bool tp_peer_route_parse(const char *spec, tp_peer *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *eq = strchr(spec, '=');
    size_t nlen = eq ? (size_t)(eq - spec) : 0;
    if (!eq || nlen == 0) {
        snprintf(err, errlen, "'%s' is not NAME=URL", spec);
        return false;
    }
    if (nlen > PARTICIPANT_MAX_LEN) {
        snprintf(err, errlen, "'%s': the name is longer than %d characters", spec,
                 PARTICIPANT_MAX_LEN);
        return false;
    }
    memcpy(out->participant, spec, nlen);
    out->participant[nlen] = '\0';
    if (!participant_name_valid(out->participant)) {
        snprintf(err, errlen, "'%s': '%s' is not a valid participant name", spec,
                 out->participant);
        return false;
    }
    char nerr[400];
    char *url = httpc_url_normalize(eq + 1, nerr, sizeof(nerr));
    if (!url || !url_ok(url)) {
        snprintf(err, errlen, "'%s': the URL must be http://, https:// or unix:/path and be "
                 "shorter than %d bytes (as http+unix://...)", spec, TP_URL_MAX);
        free(url);
        return false;
    }
    snprintf(out->url, sizeof(out->url), "%s", url); /* without trailing '/' */
    free(url);
    return true;
}

const char *tp_peer_url(const tp_peer *routes, size_t n, const tp_peer *peer)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(routes[i].participant, peer->participant) == 0)
            return routes[i].url;
    return peer->url;
}

static bool xid_ok(const char *x)
{
    size_t n = strlen(x);
    if (n >= TP_XID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (x[i] < '0' || x[i] > '9')
            return false;
    return true;
}

static bool get_ms(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

bool tp_record_decode(const char *payload, size_t len, tp_record *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *o = json_loadb(payload, len, 0, &je);
    const char *why = NULL;
    if (!json_is_object(o)) {
        why = "not a JSON object";
        goto fail;
    }
    const char *gid = json_string_value(json_object_get(o, "gid"));
    if (!gid || !gid_valid(gid)) {
        why = "bad or missing gid";
        goto fail;
    }
    snprintf(out->gid, sizeof(out->gid), "%s", gid);
    if (!tp_state_parse(json_string_value(json_object_get(o, "state")), &out->state)) {
        why = "bad or missing state";
        goto fail;
    }
    json_t *peers = json_object_get(o, "peers");
    if (peers) {
        if (!json_is_array(peers) || json_array_size(peers) > TP_MAX_PEERS) {
            why = "bad peers";
            goto fail;
        }
        out->npeers = json_array_size(peers);
        out->peers = xcalloc(out->npeers ? out->npeers : 1, sizeof(tp_peer));
        for (size_t i = 0; i < out->npeers; i++) {
            json_t *p = json_array_get(peers, i);
            const char *name = json_string_value(json_object_get(p, "participant"));
            const char *url = json_string_value(json_object_get(p, "url"));
            if (!name || !participant_name_valid(name) || !url || !url_ok(url)) {
                why = "bad peer";
                goto fail;
            }
            snprintf(out->peers[i].participant, sizeof(out->peers[i].participant), "%s", name);
            snprintf(out->peers[i].url, sizeof(out->peers[i].url), "%s", url);
        }
        out->has |= TP_HAS_PEERS;
    }
    if (json_object_get(o, "uncertain_timeout_ms") || json_object_get(o, "precommit_timeout_ms")) {
        if (!get_ms(o, "uncertain_timeout_ms", &out->uncertain_timeout_ms) ||
            !get_ms(o, "precommit_timeout_ms", &out->precommit_timeout_ms)) {
            why = "bad timeouts";
            goto fail;
        }
        out->has |= TP_HAS_TIMEOUTS;
    }
    json_t *term = json_object_get(o, "termination");
    if (term) {
        if (!tp_termination_parse(json_string_value(term), &out->termination)) {
            why = "bad termination";
            goto fail;
        }
        out->has |= TP_HAS_TERMINATION;
    }
    json_t *xid = json_object_get(o, "xid");
    if (xid) {
        if (!json_is_string(xid) || !xid_ok(json_string_value(xid))) {
            why = "bad xid";
            goto fail;
        }
        snprintf(out->xid, sizeof(out->xid), "%s", json_string_value(xid));
        out->has |= TP_HAS_XID;
    }
    if (json_object_get(o, "at_ms")) {
        if (!get_ms(o, "at_ms", &out->at_ms)) {
            why = "bad at_ms";
            goto fail;
        }
        out->has |= TP_HAS_AT;
    }
    json_t *fenced = json_object_get(o, "fenced");
    if (fenced) {
        if (!json_is_boolean(fenced)) {
            why = "bad fenced";
            goto fail;
        }
        out->fenced = json_is_true(fenced);
        out->has |= TP_HAS_FENCED;
    }
    json_decref(o);
    return true;
fail:
    snprintf(err, errlen, "%s%s%s", why, o ? "" : ": ", o ? "" : je.text);
    json_decref(o);
    tp_record_free(out);
    return false;
}

void tp_record_merge(tp_record *dst, const tp_record *src)
{
    dst->state = src->state;
    if (src->has & TP_HAS_PEERS) {
        free(dst->peers);
        dst->npeers = src->npeers;
        dst->peers = xcalloc(src->npeers ? src->npeers : 1, sizeof(tp_peer));
        if (src->npeers)
            memcpy(dst->peers, src->peers, src->npeers * sizeof(tp_peer));
    }
    if (src->has & TP_HAS_TIMEOUTS) {
        dst->uncertain_timeout_ms = src->uncertain_timeout_ms;
        dst->precommit_timeout_ms = src->precommit_timeout_ms;
    }
    if (src->has & TP_HAS_TERMINATION)
        dst->termination = src->termination;
    if (src->has & TP_HAS_XID)
        memcpy(dst->xid, src->xid, sizeof(dst->xid));
    if (src->has & TP_HAS_AT)
        dst->at_ms = src->at_ms;
    if (src->has & TP_HAS_FENCED)
        dst->fenced = src->fenced;
    dst->has |= src->has;
}

void tp_record_free(tp_record *r)
{
    free(r->peers);
    r->peers = NULL;
    r->npeers = 0;
}

/* ---- termination rule ---- */

peer_state peer_state_from(const char *state, bool read_only)
{
    static const struct {
        const char *name;
        peer_state ps;
    } tab[] = {
        {"unknown", PEER_UNKNOWN},       {"active", PEER_ACTIVE},
        {"failed", PEER_FAILED},         {"prepared", PEER_PREPARED},
        {"uncertain", PEER_UNCERTAIN},   {"precommitted", PEER_PRECOMMITTED},
        {"committed", PEER_COMMITTED},   {"aborted", PEER_ABORTED},
    };
    if (!state)
        return PEER_UNREACHABLE;
    for (size_t i = 0; i < ARRAY_LEN(tab); i++) {
        if (strcmp(state, tab[i].name) == 0) {
            if (tab[i].ps == PEER_COMMITTED && read_only)
                return PEER_READ_ONLY;
            return tab[i].ps;
        }
    }
    return PEER_UNREACHABLE;
}

const char *peer_state_name(peer_state s)
{
    static const char *const names[] = {
        [PEER_UNREACHABLE] = "unreachable", [PEER_READ_ONLY] = "read_only",
        [PEER_UNKNOWN] = "unknown",         [PEER_ACTIVE] = "active",
        [PEER_FAILED] = "failed",           [PEER_PREPARED] = "prepared",
        [PEER_UNCERTAIN] = "uncertain",     [PEER_PRECOMMITTED] = "precommitted",
        [PEER_COMMITTED] = "committed",     [PEER_ABORTED] = "aborted",
        [PEER_BUSY] = "busy",
    };
    return (s >= PEER_UNREACHABLE && s <= PEER_BUSY) ? names[s] : "invalid";
}

const char *term_decision_name(term_decision d)
{
    switch (d) {
    case TERM_COMMIT: return "commit";
    case TERM_ABORT: return "abort";
    case TERM_PRECOMMIT_COMMIT: return "precommit-then-commit";
    case TERM_ABORT_ALL: return "abort-all";
    case TERM_WAIT: return "wait";
    }
    return "invalid";
}

bool term_decision_commits(term_decision d)
{
    return d == TERM_COMMIT || d == TERM_PRECOMMIT_COMMIT;
}

/* Index of the first peer in one of the given states, or n. */
static size_t find_peer(const peer_state *peers, size_t n, const peer_state *want, size_t nwant)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nwant; k++)
            if (peers[i] == want[k])
                return i;
    return n;
}

static void rule_peer(char *rule, size_t len, const char *mode, const char *const *names,
                      size_t i, peer_state ps)
{
    snprintf(rule, len, "%s rule, peer %s %s", mode, names && names[i] ? names[i] : "?",
             peer_state_name(ps));
}

term_decision termination_decide(tp_termination mode, tp_state self, const peer_state *peers,
                                 const char *const *names, size_t n, char *rule, size_t rulelen)
{
    bool pre = self == TP_PRECOMMITTED;
    if (mode == TP_TERM_TIMEOUT) {
        snprintf(rule, rulelen, "timeout rule, %s", pre ? "precommitted" : "uncertain");
        return pre ? TERM_COMMIT : TERM_ABORT;
    }
    static const peer_state committed[] = {PEER_COMMITTED};
    /* UNKNOWN is weighed after PRECOMMITTED: a pre-committed peer proves the
     * coordinator saw a yes vote from every branch, so a peer that does not
     * know the branch voted and has forgotten it since (read-only branches
     * are never logged; finished ones leave after the retention window). A
     * peer that says aborted, active or failed still wins: it holds evidence
     * the precommitted peer cannot undo. */
    static const peer_state against[] = {PEER_ABORTED, PEER_ACTIVE, PEER_FAILED};
    static const peer_state unknown[] = {PEER_UNKNOWN};
    static const peer_state precommitted[] = {PEER_PRECOMMITTED};
    /* A peer that answered but could not tell (busy: its branch locked by a
     * PreCommit being made durable, or its PostgreSQL down) may be about to
     * be pre-committed: no abort may be decided past it, and it outweighs
     * UNKNOWN for the same reason PRECOMMITTED does. Only evidence against
     * the commit (above) decides without it. */
    static const peer_state busy[] = {PEER_BUSY};
    size_t i = find_peer(peers, n, committed, ARRAY_LEN(committed));
    if (i < n) {
        rule_peer(rule, rulelen, "protocol", names, i, peers[i]);
        return TERM_COMMIT;
    }
    if (pre) {
        snprintf(rule, rulelen, "protocol rule, self precommitted");
        return TERM_PRECOMMIT_COMMIT;
    }
    i = find_peer(peers, n, against, ARRAY_LEN(against));
    if (i < n) {
        rule_peer(rule, rulelen, "protocol", names, i, peers[i]);
        return TERM_ABORT;
    }
    i = find_peer(peers, n, precommitted, ARRAY_LEN(precommitted));
    if (i < n) {
        rule_peer(rule, rulelen, "protocol", names, i, peers[i]);
        return TERM_PRECOMMIT_COMMIT;
    }
    i = find_peer(peers, n, busy, ARRAY_LEN(busy));
    if (i < n) {
        rule_peer(rule, rulelen, "protocol", names, i, peers[i]);
        return TERM_WAIT;
    }
    /* blocking: a peer that did not answer may have pre-committed and
     * crashed, or be cut off while committing on its own timer (rule 2):
     * nothing is decided past it. Before the unknown rule, which would abort
     * beside it. */
    static const peer_state unreachable[] = {PEER_UNREACHABLE};
    i = mode == TP_TERM_BLOCKING ? find_peer(peers, n, unreachable, ARRAY_LEN(unreachable)) : n;
    if (i < n) {
        rule_peer(rule, rulelen, "blocking", names, i, peers[i]);
        return TERM_WAIT;
    }
    i = find_peer(peers, n, unknown, ARRAY_LEN(unknown));
    if (i < n) {
        rule_peer(rule, rulelen, "protocol", names, i, peers[i]);
        return TERM_ABORT;
    }
    size_t reachable = 0;
    for (size_t k = 0; k < n; k++)
        if (peers[k] == PEER_UNCERTAIN || peers[k] == PEER_PREPARED)
            reachable++;
    if (reachable == 0)
        snprintf(rule, rulelen, "protocol rule, no peer reachable, self uncertain");
    else
        snprintf(rule, rulelen, "protocol rule, all uncertain");
    return TERM_ABORT_ALL;
}
