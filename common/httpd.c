/*
 * httpd.c - HTTP/JSON server on libmicrohttpd, one thread per connection.
 *
 * Request steps (MHD calls the access handler several times per request):
 *   1. first call: allocate the request context; with a cluster token
 *      (auth.h) answer 401 at once when the request does not carry it (GET
 *      /healthz excepted); if Content-Length exceeds max_body answer 413 at
 *      once (MHD then closes the connection without reading the body); a
 *      GET or HEAD body is never refused nor kept (step 2);
 *   2. upload calls: append to the body until it would exceed max_body, then
 *      stop buffering and discard the rest (answered 413 in step 3); a GET
 *      or HEAD body is dropped as it comes; either kind of discarding closes
 *      the connection past HTTPD_DISCARD_MAX;
 *   3. final call: route (404/405), parse a non-empty body as a JSON object
 *      (400 malformed_json, also for a key given twice), then run the
 *      handler, which replies once. From here until the completion callback
 *      the request counts as active: http_server_stop waits for it.
 * Invariants:
 *   - The port is taken (http_listen) before the server runs on it
 *     (http_server_start_on), so a process takes it before anything else.
 *     So is the optional Unix-domain socket (http_listen_unix, served by a
 *     second MHD daemon on the same routes: http_server_serve_also); its
 *     file is replaced only when nothing answers on it, and removed at the
 *     stop only while it is still the one this process bound.
 *   - A request's memory is bounded by max_body plus headers; it is freed by
 *     the completion callback (request_done), whatever happened.
 *   - Every response has a Content-Type; every error body is
 *     {"error":{"code","message",...}} (json_error_body).
 *   - A handler that forgets to reply gets a 500 and an ERROR log line; a
 *     second reply is ignored with an ERROR log line.
 *   - Ownership: routes/app are borrowed for the server's life; path params,
 *     query values and the parsed body are borrowed by handlers for the
 *     duration of the handler call only.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "jsonutil.h"
#include "log.h"
#include "strbuf.h"

#define HTTPD_MAX_SEGMENTS 16
#define HTTPD_CONN_TIMEOUT_S 120
#define HTTPD_CONN_LIMIT 1024
/* Per-connection memory pool of libmicrohttpd: request line, headers, read
 * and write buffers. A body bigger than the pool's read buffer still arrives
 * (in pieces, to the upload callback). MHD clears the pool after every request,
 * so its size is CPU on each request: the default 32 KiB cost the agents 3.4%
 * of their CPU, 16 KiB costs 1.6% (perf; README, "Measured results"). Request
 * headers up to about 15 KB still fit; bigger ones get MHD's own 431. */
#define HTTPD_CONN_MEMORY (16 * 1024)
/* A chunked body past the limit is read and dropped up to this much more
 * (for its 413), then the connection is closed. */
#define HTTPD_DISCARD_MAX (16u << 20)

static atomic_uint_fast64_t unauthorized_count; /* 401 answers (metrics) */

uint64_t http_unauthorized_count(void)
{
    return (uint64_t)atomic_load(&unauthorized_count);
}

typedef struct {
    size_t nseg;
    char *seg[HTTPD_MAX_SEGMENTS]; /* literal, or NULL for "{param}" */
} route_pattern;

struct http_server {
    struct MHD_Daemon *daemon;
    struct MHD_Daemon *daemon_unix; /* NULL, or the Unix socket's (serve_also) */
    char *unix_path;                /* owned; its file, removed at the stop */
    dev_t unix_dev;                 /* ... if it is still this inode */
    ino_t unix_ino;
    const http_route *routes;
    route_pattern *patterns;
    size_t nroutes;
    void *app;
    size_t max_body;
    int port;
    atomic_bool stopping; /* http_server_quiesce ran: dispatch runs no handler */
    atomic_int active; /* requests dispatched (handled or being answered) and not
                        * completed; one still sending its body is not counted:
                        * nothing was done for it yet (http_server_stop) */
};

typedef struct resp_header {
    char *name, *value;
    struct resp_header *next;
} resp_header;

struct http_request {
    struct MHD_Connection *conn;
    http_server *srv;
    const char *method; /* borrowed from MHD for the request's life */
    char *path;         /* copy of the (decoded) URL path */
    char *params[HTTP_MAX_PARAMS];
    strbuf body;
    bool too_large;
    bool body_ignored;  /* GET or HEAD: the body is read and dropped */
    uint64_t discarded; /* body bytes read and dropped (too_large, body_ignored) */
    bool unauthorized; /* no or wrong bearer token: answered 401 */
    bool counted;      /* in srv->active: from dispatch to request_done */
    bool replied;
    json_t *json; /* owned */
    resp_header *headers;
};

/* Split path into segments (modifies buf). Returns the count, or -1 if too many. */
static int split_path(char *buf, char **seg, size_t max)
{
    size_t n = 0;
    char *p = buf;
    if (*p == '/')
        p++;
    if (*p == '\0')
        return 0; /* "/" */
    for (;;) {
        if (n == max)
            return -1;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return (int)n;
}

static bool compile_pattern(const char *pattern, route_pattern *rp)
{
    char *buf = xstrdup(pattern);
    char *seg[HTTPD_MAX_SEGMENTS];
    int n = split_path(buf, seg, HTTPD_MAX_SEGMENTS);
    bool ok = n >= 0;
    int nparams = 0;
    rp->nseg = 0;
    for (int i = 0; ok && i < n; i++) {
        size_t len = strlen(seg[i]);
        if (len >= 2 && seg[i][0] == '{' && seg[i][len - 1] == '}') {
            rp->seg[i] = NULL;
            if (++nparams > HTTP_MAX_PARAMS)
                ok = false;
        } else {
            rp->seg[i] = xstrdup(seg[i]);
        }
        rp->nseg = (size_t)i + 1;
    }
    free(buf);
    if (!ok)
        log_error("httpd: bad route pattern '%s'", pattern);
    return ok;
}

static void free_patterns(http_server *srv)
{
    if (!srv->patterns)
        return;
    for (size_t r = 0; r < srv->nroutes; r++)
        for (size_t i = 0; i < srv->patterns[r].nseg; i++)
            free(srv->patterns[r].seg[i]);
    free(srv->patterns);
    srv->patterns = NULL;
}

/* Does path (split) match pattern? Fills params (copies) on match when params != NULL. */
static bool match_pattern(const route_pattern *rp, char **seg, int nseg, char **params)
{
    if ((size_t)nseg != rp->nseg)
        return false;
    for (int i = 0; i < nseg; i++) {
        if (rp->seg[i] ? strcmp(rp->seg[i], seg[i]) != 0 : seg[i][0] == '\0')
            return false;
    }
    if (params) {
        int k = 0;
        for (int i = 0; i < nseg; i++)
            if (!rp->seg[i])
                params[k++] = xstrdup(seg[i]);
    }
    return true;
}

/* ---- replies ---------------------------------------------------------- */

static void queue_reply(http_request *req, unsigned status, const char *content_type,
                        char *data /* malloc'd, taken */, size_t len)
{
    if (req->replied) {
        log_error("httpd: %s %s: handler replied twice (status %u ignored)", req->method,
                  req->path, status);
        free(data);
        return;
    }
    req->replied = true;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        log_error("httpd: %s %s: cannot create response", req->method, req->path);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (resp_header *h = req->headers; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    enum MHD_Result queued = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (queued == MHD_YES)
        return;
    log_error("httpd: %s %s: cannot queue response %u", req->method, req->path, status);
    if (status == 500)
        return;
    /* e.g. a status out of range passed on from a foreign agent: the client
     * still gets an answer rather than a connection left without one */
    static const char fallback[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be sent\"}}";
    resp = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback,
                                           MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    (void)MHD_queue_response(req->conn, 500, resp);
    MHD_destroy_response(resp);
}

void http_reply_header(http_request *req, const char *name, const char *value)
{
    resp_header *h = xcalloc(1, sizeof(*h));
    h->name = xstrdup(name);
    h->value = xstrdup(value);
    h->next = req->headers;
    req->headers = h;
}

void http_reply_json(http_request *req, unsigned status, json_t *body)
{
    char *text = json_dump_text(body); /* NULL for no body */
    json_decref(body);
    if (!text) {
        log_error("httpd: %s %s: cannot encode JSON response", req->method, req->path);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        text = xstrdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode response\"}}");
    }
    size_t len = strlen(text);
    /* json_dump_text allocates with malloc; MUST_FREE releases with free(). */
    queue_reply(req, status, "application/json", text, len);
}

void http_reply_json_text(http_request *req, unsigned status, char *text, size_t len)
{
    queue_reply(req, status, "application/json", text, len);
}

void http_reply_text(http_request *req, unsigned status, const char *content_type,
                     const char *text)
{
    char *copy = xstrdup(text ? text : "");
    queue_reply(req, status, content_type ? content_type : "text/plain; charset=utf-8", copy,
                strlen(copy));
}

static void reply_error_v(http_request *req, unsigned status, const char *code, json_t *extra,
                          const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    utf8_trim_partial(msg); /* cut inside a character, the message would go out all '?' */
    json_t *body = json_error_body(code, msg);
    if (extra) {
        json_object_update(json_object_get(body, "error"), extra);
        json_decref(extra);
    }
    http_reply_json(req, status, body);
}

void http_reply_error(http_request *req, unsigned status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(req, status, code, NULL, fmt, ap);
    va_end(ap);
}

void http_reply_error_extra(http_request *req, unsigned status, const char *code, json_t *extra,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(req, status, code, extra, fmt, ap);
    va_end(ap);
}

/* ---- request accessors ------------------------------------------------ */

const char *http_req_method(const http_request *req) { return req->method; }
const char *http_req_path(const http_request *req) { return req->path; }
json_t *http_req_json(const http_request *req) { return req->json; }

const char *http_req_param(const http_request *req, int idx)
{
    if (idx < 0 || idx >= HTTP_MAX_PARAMS)
        return NULL;
    return req->params[idx];
}

const char *http_req_query(const http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- MHD callbacks ---------------------------------------------------- */

static void request_free(http_request *req)
{
    free(req->path);
    for (int i = 0; i < HTTP_MAX_PARAMS; i++)
        free(req->params[i]);
    strbuf_free(&req->body);
    json_decref(req->json);
    while (req->headers) {
        resp_header *h = req->headers;
        req->headers = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    free(req);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    (void)conn;
    (void)toe;
    if (*con_cls) {
        if (((http_request *)*con_cls)->counted)
            atomic_fetch_sub(&srv->active, 1);
        request_free(*con_cls);
        *con_cls = NULL;
    }
}

static void dispatch(http_server *srv, http_request *req)
{
    if (!req->counted) {
        req->counted = true;
        atomic_fetch_add(&srv->active, 1); /* request_done takes it back */
    }
    /* After the stop began (active counted first, stopping read second,
     * the reverse of http_server_stop: one of the two sees the other), a
     * request that finished arriving only now is not run: its answer could
     * meet a connection already shut down. */
    if (atomic_load(&srv->stopping) && !req->replied) {
        http_reply_header(req, "Connection", "close");
        http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down",
                         "the server is stopping: %s %s was not run", req->method, req->path);
        return;
    }
    if (req->unauthorized) {
        http_reply_header(req, "WWW-Authenticate", "Bearer");
        http_reply_error(req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                         "missing or wrong token (send Authorization: Bearer <token>)");
        return;
    }
    if (req->too_large) {
        http_reply_error(req, 413 /* Content Too Large */, "body_too_large",
                         "request body exceeds %zu bytes", srv->max_body);
        return;
    }
    char *buf = xstrdup(req->path);
    char *seg[HTTPD_MAX_SEGMENTS];
    int nseg = split_path(buf, seg, HTTPD_MAX_SEGMENTS);
    const http_route *route = NULL;
    bool path_known = false;
    strbuf allow;
    strbuf_init(&allow);
    /* HEAD runs the GET handler (our GETs change nothing); libmicrohttpd
     * sends its headers, Content-Length included, without the body. */
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    for (size_t r = 0; nseg >= 0 && r < srv->nroutes; r++) {
        if (!match_pattern(&srv->patterns[r], seg, nseg, NULL))
            continue;
        path_known = true;
        if (strcmp(srv->routes[r].method, method) == 0) {
            route = &srv->routes[r];
            match_pattern(&srv->patterns[r], seg, nseg, req->params);
            break;
        }
        if (allow.len)
            strbuf_append(&allow, ", ");
        strbuf_append(&allow, srv->routes[r].method);
        if (strcmp(srv->routes[r].method, "GET") == 0)
            strbuf_append(&allow, ", HEAD");
    }
    free(buf);
    if (!route) {
        if (path_known) {
            http_reply_header(req, "Allow", allow.data);
            http_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                             "method %s not allowed on %s", req->method, req->path);
        } else {
            http_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such resource: %s",
                             req->path);
        }
        strbuf_free(&allow);
        return;
    }
    strbuf_free(&allow);
    /* A GET or HEAD body means nothing (RFC 9110): not parsed, so that a
     * probe that sends one still gets its answer. */
    bool reads_body = strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
    if (reads_body && req->body.len > 0) {
        json_error_t jerr;
        /* A key given twice is refused, not resolved by "the last one
         * wins": {"sql":"SELECT 1","sql":"DELETE ..."} must not run the
         * DELETE that a reader of the first key would not expect. */
        req->json = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req->json && json_error_code(&jerr) == json_error_numeric_overflow) {
            /* well-formed JSON with a number jansson cannot hold: say so */
            http_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid_field",
                             "number out of range (%s, position %d): send an integer beyond 64 "
                             "bits or a number beyond a double as a string",
                             jerr.text, jerr.position);
            return;
        }
        if (!req->json) {
            http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed_json",
                             "invalid JSON: %s (line %d, column %d, position %d)", jerr.text,
                             jerr.line, jerr.column, jerr.position);
            return;
        }
        if (!json_is_object(req->json)) {
            http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed_json",
                             "request body must be a JSON object");
            return;
        }
    }
    route->fn(req, srv->app);
    if (!req->replied) {
        log_error("httpd: %s %s: handler did not reply", req->method, req->path);
        http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "handler did not reply");
    }
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    http_server *srv = cls;
    http_request *req = *con_cls;
    if (!req) {
        /* 1. First call: headers only. */
        req = xcalloc(1, sizeof(*req));
        req->conn = conn;
        req->srv = srv;
        req->method = method;
        req->path = xstrdup(url);
        strbuf_init(&req->body);
        *con_cls = req;
        bool healthz = (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
                       strcmp(url, "/healthz") == 0;
        if (auth_token() && !healthz &&
            !auth_header_ok(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                        MHD_HTTP_HEADER_AUTHORIZATION))) {
            log_debug("httpd: %s %s: no or wrong bearer token: 401", method, url);
            req->unauthorized = true;
            atomic_fetch_add(&unauthorized_count, 1);
            dispatch(srv, req); /* answers 401 without reading the body */
            return MHD_YES;
        }
        /* A GET or HEAD body means nothing (dispatch): it is read and
         * dropped, never buffered, whatever its size, up to
         * HTTPD_DISCARD_MAX (so neither its memory nor an unauthenticated
         * /healthz prober's can grow with it). */
        req->body_ignored = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && !req->body_ignored) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (end == cl || *end != '\0' || v > srv->max_body) {
                req->too_large = true;
                dispatch(srv, req); /* answers 413 without reading the body */
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        /* 2. Body data. */
        if (req->body_ignored) {
            req->discarded += *upload_data_size;
            if (req->discarded > HTTPD_DISCARD_MAX) {
                log_warn("httpd: %s %s: a body of more than %u bytes on a %s: connection closed",
                         req->method, req->path, HTTPD_DISCARD_MAX, req->method);
                return MHD_NO;
            }
        } else if (!req->too_large && !req->replied) {
            if (req->body.len + *upload_data_size > srv->max_body) {
                req->too_large = true;
                strbuf_free(&req->body);
            } else {
                strbuf_appendn(&req->body, upload_data, *upload_data_size);
            }
        } else if (req->too_large && !req->replied) {
            /* A chunked body (no Content-Length) past the limit is read to
             * its end and dropped, so that the 413 reaches a client still
             * sending (closing with its bytes unread would reset the
             * connection, the answer with it), but only so far: one that
             * does not end within HTTPD_DISCARD_MAX more is cut off. */
            req->discarded += *upload_data_size;
            if (req->discarded > HTTPD_DISCARD_MAX) {
                log_warn("httpd: %s %s: chunked body past the limit by %" PRIu64
                         " bytes and still coming: connection closed",
                         req->method, req->path, req->discarded);
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* 3. Upload complete. */
    if (!req->replied)
        dispatch(srv, req);
    return MHD_YES;
}

/* libmicrohttpd's own messages (a malformed request, a connection reset)
 * come before any token check: anyone who can connect could fill the log.
 * At most 10 lines a minute, then one line saying how many were held back. */
static log_throttle mhd_log_limit = LOG_THROTTLE_INIT(10, 60000);

static bool mhd_log_due(void)
{
    unsigned held;
    bool due = log_throttle_due(&mhd_log_limit, &held);
    if (held > 0)
        log_warn("httpd: %u more libmicrohttpd messages in the last minute not logged", held);
    return due;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!mhd_log_due())
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    log_warn("httpd: %s", msg);
}

/* ---- start / stop ----------------------------------------------------- */

/* Resolve host into ss; sets *v6. */
static bool resolve_host(const char *host, int port, struct sockaddr_storage *ss, bool *v6)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (!host || !*host || strcmp(host, "*") == 0)
        host = "0.0.0.0";
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return true;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        log_error("httpd: cannot resolve listen host '%s': %s", host, gai_strerror(rc));
        return false;
    }
    /* Prefer IPv4 (what the cluster scripts use), else the first answer. */
    struct addrinfo *pick = ai;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *v6 = pick->ai_family == AF_INET6;
    if (*v6)
        sin6->sin6_port = htons((uint16_t)port);
    else
        sin->sin_port = htons((uint16_t)port);
    freeaddrinfo(ai);
    return true;
}

bool http_listen(const char *host, int port, http_listener *out)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (port < 0 || port > 65535) {
        log_error("httpd: bad port %d", port);
        return false;
    }
    struct sockaddr_storage ss;
    if (!resolve_host(host, port, &ss, &out->v6))
        return false;
    const char *shown = host && *host ? host : "0.0.0.0";
    int fd = socket(out->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    socklen_t len = out->v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
        log_error("httpd: cannot listen on %s:%d: %s", shown, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    out->port = port;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        out->port = ntohs(out->v6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                  : ((struct sockaddr_in *)&bound)->sin_port);
    out->fd = fd;
    return true;
}

/* Does a process listen on the Unix socket at path (a connect that is not
 * refused; a full backlog counts as yes)? *err: the connect's errno (0 when
 * it was accepted). */
static bool unix_socket_probe(const char *path, int *err)
{
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    snprintf(su.sun_path, sizeof(su.sun_path), "%s", path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    *err = probe < 0 ? errno
           : connect(probe, (struct sockaddr *)&su, sizeof(su)) == 0 ? 0
                                                                    : errno;
    if (probe >= 0)
        close(probe);
    return *err != ECONNREFUSED && *err != ENOENT;
}

static bool unix_socket_answers(const char *path)
{
    int err;
    return unix_socket_probe(path, &err);
}

bool http_listen_unix(const char *path, http_listener *out)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    if (!path || path[0] != '/' || strlen(path) >= sizeof(su.sun_path)) {
        log_error("httpd: cannot listen on unix:%s: the socket path must be absolute and at most "
                  "%zu bytes",
                  path ? path : "", sizeof(su.sun_path) - 1);
        return false;
    }
    memcpy(su.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        /* Left by a process that is gone (a crash, a kill -9), or in use? A
         * connect tells: refused = nobody listens (an instance that died),
         * anything else is somebody's (a second instance started by mistake
         * stops here, as on a taken port). A non-blocking connect does not
         * wait on a full backlog: EAGAIN, somebody's. */
        if (!S_ISSOCK(st.st_mode)) {
            log_error("httpd: cannot listen on unix:%s: the path exists and is not a socket", path);
            return false;
        }
        int err;
        if (unix_socket_probe(path, &err)) {
            log_error("httpd: cannot listen on unix:%s: %s", path,
                      err == 0 || err == EAGAIN ? "another process is serving on it"
                                                : strerror(err));
            return false;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            log_error("httpd: cannot listen on unix:%s: cannot remove the stale socket: %s", path,
                      strerror(errno));
            return false;
        }
        log_info("httpd: unix:%s: removed the socket a stopped process left (nothing answered on "
                 "it)",
                 path);
    }
    /* Not serialized with another process doing the same with this path:
     * one that binds between our check and our bind makes our bind fail
     * (EADDRINUSE), and its file is then left alone; one that has bound but
     * not yet called listen() looks stale to the probe above. Two instances
     * given the same port stop earlier, on the port each takes first; only
     * instances misconfigured with one socket path but different ports can
     * meet here at the same instant. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&su, sizeof(su)) == 0;
    /* 0660 before listen(): nobody can connect in between. The mode is
     * what guards the socket (plus the cluster token, auth.h): owner and
     * group. */
    if (!bound || chmod(path, 0660) != 0 || stat(path, &st) != 0 || listen(fd, 1024) != 0) {
        int err = errno;
        log_error("httpd: cannot listen on unix:%s: %s", path,
                  !bound && err == EADDRINUSE ? "another process took it meanwhile"
                                              : strerror(err));
        if (fd >= 0)
            close(fd);
        if (bound)
            (void)unlink(path); /* ours: bound here */
        return false;
    }
    out->fd = fd;
    out->unix_path = xstrdup(path);
    out->unix_dev = st.st_dev;
    out->unix_ino = st.st_ino;
    return true;
}

void http_listener_close(http_listener *l)
{
    if (l->fd >= 0) {
        close(l->fd);
        if (l->unix_path)
            (void)unlink(l->unix_path);
    }
    l->fd = -1;
    free(l->unix_path);
    l->unix_path = NULL;
}

/* An MHD daemon serving srv's routes on l's socket (taken: l->fd is -1
 * after, also on failure, when the socket is closed). */
static struct MHD_Daemon *start_daemon(http_server *srv, http_listener *l)
{
    int fd = l->fd;
    l->fd = -1;
    /* MHD_USE_ITC: MHD_quiesce_daemon at the stop */
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (l->v6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)l->port, NULL, NULL, access_handler, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, /* first, so it sees everything */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTPD_CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTPD_CONN_LIMIT,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, srv,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY,
        MHD_OPTION_END);
    if (!d)
        close(fd);
    return d;
}

bool http_server_serve_also(http_server *srv, http_listener *l)
{
    if (!l->unix_path || srv->daemon_unix) {
        log_error("httpd: serve_also takes one Unix socket listener");
        http_listener_close(l);
        return false;
    }
    srv->daemon_unix = start_daemon(srv, l);
    if (!srv->daemon_unix) {
        log_error("httpd: cannot serve on unix:%s", l->unix_path);
        (void)unlink(l->unix_path);
        http_listener_close(l);
        return false;
    }
    srv->unix_path = l->unix_path; /* ours now */
    srv->unix_dev = l->unix_dev;
    srv->unix_ino = l->unix_ino;
    l->unix_path = NULL;
    log_info("httpd: listening on unix:%s", srv->unix_path);
    return true;
}

http_server *http_server_start_on(http_listener *l, const char *host, const http_route *routes,
                                  size_t nroutes, void *app, size_t max_body)
{
    const char *shown = host && *host ? host : "0.0.0.0";
    int fd = l->fd;
    l->fd = -1; /* ours now */
    http_server *srv = xcalloc(1, sizeof(*srv));
    srv->routes = routes;
    srv->nroutes = nroutes;
    srv->app = app;
    srv->max_body = max_body;
    srv->patterns = xcalloc(nroutes ? nroutes : 1, sizeof(route_pattern));
    for (size_t r = 0; r < nroutes; r++) {
        if (!compile_pattern(routes[r].pattern, &srv->patterns[r])) {
            free_patterns(srv);
            free(srv);
            close(fd);
            return NULL;
        }
    }
    l->fd = fd; /* taken by start_daemon */
    srv->daemon = start_daemon(srv, l);
    if (!srv->daemon) {
        log_error("httpd: cannot serve on %s:%d", shown, l->port);
        free_patterns(srv);
        free(srv);
        return NULL;
    }
    srv->port = l->port;
    log_info("httpd: listening on %s:%d", shown, srv->port);
    return srv;
}

http_server *http_server_start(const char *host, int port, const http_route *routes,
                               size_t nroutes, void *app, size_t max_body)
{
    http_listener l;
    if (!http_listen(host, port, &l))
        return NULL;
    return http_server_start_on(&l, host, routes, nroutes, app, max_body);
}

int http_server_port(const http_server *srv)
{
    return srv->port;
}

void http_server_quiesce(http_server *srv)
{
    if (!srv || atomic_exchange(&srv->stopping, true))
        return;
    struct MHD_Daemon *d[] = {srv->daemon, srv->daemon_unix};
    for (size_t i = 0; i < ARRAY_LEN(d); i++) {
        MHD_socket l = d[i] ? MHD_quiesce_daemon(d[i]) : MHD_INVALID_SOCKET;
        if (l != MHD_INVALID_SOCKET)
            close(l);
    }
}

void http_server_stop(http_server *srv)
{
    if (!srv)
        return;
    /* 1. No new connection (the listening socket, handed back, is ours to
     *    close). 2. The requests being handled are answered: in
     *    thread-per-connection mode MHD_stop_daemon shuts every connection's
     *    socket down before it joins its thread, so an answer still being
     *    made would be lost (a commit done, its client never told). The
     *    caller bounds the wait (run_within). 3. Stop. */
    http_server_quiesce(srv);
    while (atomic_load(&srv->active) > 0)
        sleep_ms(5, NULL);
    MHD_stop_daemon(srv->daemon);
    if (srv->daemon_unix)
        MHD_stop_daemon(srv->daemon_unix);
    /* The socket file, unless something else has bound that path since
     * (a successor started while this process still stopped: it found the
     * file refusing connections, ours being closed at the quiesce, and
     * replaced it): the file must still be the inode we bound, and nothing
     * may answer on it, as inode numbers are reused. */
    struct stat st;
    if (srv->unix_path && lstat(srv->unix_path, &st) == 0 && st.st_dev == srv->unix_dev &&
        st.st_ino == srv->unix_ino && !unix_socket_answers(srv->unix_path))
        (void)unlink(srv->unix_path);
    free(srv->unix_path);
    free_patterns(srv);
    free(srv);
}
