/*
 * httpc.h - the HTTP/JSON client side (libcurl), used by txcoord to talk to
 * agents, by txagent to ask the coordinator, and by txctl and the bench.
 *
 * httpc_perform runs n calls in parallel (one curl multi handle per thread,
 * so keep-alive connections are reused across calls of the same thread) and
 * returns when all have finished or timed out.
 * Ownership: url and body are borrowed for the duration of the call;
 * response and raw are owned by the call and freed by httpc_call_clear.
 */
#ifndef TX_HTTPC_H
#define TX_HTTPC_H

#include <jansson.h>
#include <stdatomic.h>
#include "util.h"

typedef struct {
    /* in */
    const char *method;  /* "GET" or "POST" */
    const char *url;     /* borrowed */
    json_t *body;        /* borrowed, may be NULL (sent as no body) */
    long timeout_ms;     /* whole-call timeout; 0 = 30000 */
    bool raw_200;        /* keep a 200's body as text (raw) instead of parsing it */
    /* out */
    long status;         /* HTTP status; 0 = transport failure (see error) */
    json_t *response;    /* parsed JSON body or NULL (non-JSON, empty, or kept raw) */
    char *raw;           /* raw_200 and status 200: the body as received (NUL-terminated) */
    size_t raw_len;
    char error[256];     /* transport error text when status == 0 */
    bool too_large;      /* status 0 because the answer passed HTTPC_MAX_RESPONSE */
    int64_t start_us;    /* now_us() just before the call was started (sent at or after it) */
    int64_t done_us;     /* now_us() when this call's answer (or failure) was complete:
                          * in a parallel httpc_perform, each call's own time */
} httpc_call;

/* The largest answer body httpc keeps; a larger one fails the call. */
#define HTTPC_MAX_RESPONSE (64u << 20)

void httpc_global_init(void); /* once, before threads */
void httpc_global_cleanup(void);

/* Runs all calls; always fills status/error for each. Returns true if every
 * call got an HTTP answer (any status). Does not log; callers log per call. */
bool httpc_perform(httpc_call *calls, size_t n);
/* httpc_perform that another thread can cut short: once *cut_at_ms is set
 * (> 0, now_ms clock) and passed, every call not finished fails at once
 * ("cut short", status 0), whatever its own timeout; the value is read at
 * least every 100 ms while calls wait. cut_at_ms NULL = httpc_perform. */
bool httpc_perform_until(httpc_call *calls, size_t n, atomic_llong *cut_at_ms);
/* One call; convenience. */
bool httpc_request(httpc_call *call);
void httpc_call_clear(httpc_call *c);  /* frees response, resets out fields */

/* New TCP connections opened by httpc in this process so far (keep-alive
 * reuse shows as calls that do not increase it). For stats and tests. */
uint64_t httpc_connections_opened(void);

/* A base URL (of an agent, of the coordinator) as the options take it, in
 * the form calls use (caller frees): http:// and https:// ones as they are
 * but for trailing '/' (paths are appended to a base);
 * "unix:/abs/path.sock" (a --listen-unix socket) as
 * "http+unix://%2Fabs%2Fpath.sock", which is also taken (spelt that same
 * way: one spelling per path, so that URLs of one path compare equal). NULL, with
 * err filled, for anything else, or a socket path that is relative or longer
 * than a sockaddr_un takes (107 bytes). */
char *httpc_url_normalize(const char *in, char *err, size_t errsize);

/* Percent-encode one path segment. Caller frees. */
char *httpc_escape(const char *s);

#endif
