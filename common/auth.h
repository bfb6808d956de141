/*
 * auth.h - the cluster's shared secret (--token-file), one per process.
 *
 * When a token is loaded, every HTTP request a server of this process
 * answers must carry "Authorization: Bearer <token>" (except GET /healthz,
 * for liveness probes), else 401 unauthorized; and every call this process
 * makes through httpc carries the same header. One secret for the whole
 * cluster: clients to the coordinator, coordinator to agents, agents to the
 * coordinator (recovery) and to their peers (3PC termination).
 * Without a token nothing is checked or sent (the default; the local
 * cluster listens on 127.0.0.1 only).
 * auth_load_token_file is called once from main, before any thread starts;
 * the token is read-only afterwards.
 */
#ifndef TX_AUTH_H
#define TX_AUTH_H

#include "util.h"

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 256

/* Read the token from path: its first line, trailing whitespace removed;
 * AUTH_TOKEN_MIN..AUTH_TOKEN_MAX characters of [A-Za-z0-9._~+/=-] (RFC 6750's
 * token68). Warns when the file can be read by group or others. false, logged,
 * on any problem (the caller exits). */
bool auth_load_token_file(const char *path) MUSTCHECK;
/* For client tools (txbench, lockbench, txbank): load $TXCOORD_TOKEN_FILE
 * when it is set and not empty. true when unset. */
bool auth_load_env(void) MUSTCHECK;
/* The loaded token (borrowed), or NULL. */
const char *auth_token(void);
/* Does an Authorization header value (may be NULL) carry the token? Always
 * true without a token. Compares in time independent of where they differ. */
bool auth_header_ok(const char *authorization);
/* Forget the token (tests). */
void auth_reset(void);

#endif
