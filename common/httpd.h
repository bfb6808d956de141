/*
 * httpd.h - the HTTP/JSON server side shared by txcoord and txagent
 * (libmicrohttpd, one thread per connection so handlers may block).
 *
 * Routing is a table of {method, pattern, handler}; a pattern segment written
 * "{name}" captures one path segment (URL-decoded), available to the handler
 * by position via http_req_param(). Before a handler runs the server has:
 *   - answered 404 {"error":{"code":"not_found"}} for an unknown path and 405
 *     "method_not_allowed" for a known path with another method;
 *   - answered 413 "body_too_large" for a body over max_body bytes (without
 *     reading it all);
 *   - parsed a non-empty body as JSON, answering 400 "malformed_json" if it
 *     does not parse or is not an object.
 * A handler must answer exactly once with one of http_reply_*.
 * Ownership: http_reply_json steals body, http_reply_json_text its text;
 * http_req_json is borrowed.
 */
#ifndef TX_HTTPD_H
#define TX_HTTPD_H

#include <jansson.h>
#include <sys/types.h>
#include "util.h"

typedef struct http_request http_request;
typedef struct http_server http_server;
typedef void (*http_handler)(http_request *req, void *app);

typedef struct {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/transactions/{gid}/commit" */
    http_handler fn;
} http_route;

#define HTTP_MAX_PARAMS 4

/* A bound, listening socket, taken before a server runs on it: a process
 * takes its port first, so that a second instance started by mistake stops
 * there, having changed nothing (an agent's start terminates its
 * predecessor's database sessions, say). Connections that arrive before the
 * server starts wait in the backlog. */
typedef struct {
    int fd;
    bool v6;
    int port;        /* the bound one (the real one when 0 was asked for); 0 for a Unix socket */
    char *unix_path; /* owned; a Unix socket's file (http_listen_unix), else NULL */
    dev_t unix_dev;  /* its inode once bound: the stop removes the file only */
    ino_t unix_ino;  /* while it is still this one */
} http_listener;
/* false on failure (logged: "cannot listen on HOST:PORT: Address already in
 * use"). */
bool http_listen(const char *host, int port, http_listener *out) MUSTCHECK;
/* A Unix-domain socket at path (absolute, at most 107 bytes), mode 0660. A
 * socket file nothing answers on (left by a process that died) is replaced;
 * one a live process answers on, or a path that is not a socket, is refused
 * (logged), like a taken port. */
bool http_listen_unix(const char *path, http_listener *out) MUSTCHECK;
/* Close a listener no server took (a Unix socket's file is removed). */
void http_listener_close(http_listener *l);
/* Serve srv's routes on l too: a Unix socket listener (http_listen_unix),
 * taken whatever happens. Its file is removed by http_server_stop. false on
 * failure (logged). */
bool http_server_serve_also(http_server *srv, http_listener *l) MUSTCHECK;
/* Start serving on l (its fd is the server's from here on, also on
 * failure); NULL on failure (logged). routes must outlive the server. */
http_server *http_server_start_on(http_listener *l, const char *host, const http_route *routes,
                                  size_t nroutes, void *app, size_t max_body);
/* http_listen, then http_server_start_on. */
http_server *http_server_start(const char *host, int port, const http_route *routes,
                               size_t nroutes, void *app, size_t max_body);
/* Stop accepting: no new connection, and a request that finishes arriving
 * from now on is answered 503 shutting_down (the ones dispatched before go
 * on). Idempotent; http_server_stop does it first anyway. */
void http_server_quiesce(http_server *srv);
/* Quiesce, wait for the requests dispatched, free. */
void http_server_stop(http_server *srv);
/* Requests this process answered 401 (no or wrong token, auth.h), all servers. */
uint64_t http_unauthorized_count(void);
/* The bound TCP port (the real one when 0 was asked for). */
int http_server_port(const http_server *srv);

const char *http_req_method(const http_request *req);
const char *http_req_path(const http_request *req);
const char *http_req_param(const http_request *req, int idx);  /* borrowed, NULL if none */
const char *http_req_query(const http_request *req, const char *key); /* borrowed or NULL */
json_t *http_req_json(const http_request *req); /* borrowed; NULL if the body was empty */

/* Add a response header (e.g. Location) before replying. Copied. */
void http_reply_header(http_request *req, const char *name, const char *value);
void http_reply_json(http_request *req, unsigned status, json_t *body /* stolen */);
/* A body already written as JSON text (malloc'd, len bytes; taken), sent as is. */
void http_reply_json_text(http_request *req, unsigned status, char *text, size_t len);
void http_reply_text(http_request *req, unsigned status, const char *content_type,
                     const char *text /* copied */);
/* {"error":{"code":code,"message":<formatted>}} */
void http_reply_error(http_request *req, unsigned status, const char *code, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
/* Same, with extra members merged into the "error" object (extra stolen, may be NULL). */
void http_reply_error_extra(http_request *req, unsigned status, const char *code, json_t *extra,
                            const char *fmt, ...) PRINTF_LIKE(5, 6);

#endif
