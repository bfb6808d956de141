/*
 * test_http.c - loopback tests of httpd.c and httpc.c together.
 * Invariants checked: routing with {param} (URL-decoded), 404/405/413/400
 * JSON error bodies, handler bodies and queries, keep-alive reuse (no new
 * connection on a second call), parallel calls, transport failures, and the
 * server's limits on raw sockets (chunked overflow, Content-Type always set),
 * proxy variables in the environment not rerouting calls, the cluster token
 * (token file rules, 401 without it except GET /healthz, httpc sending it),
 * the Unix socket a server also serves on (http_listen_unix, serve_also:
 * calls through unix: URLs, connections kept apart from TCP ones, a stale
 * socket file replaced, a live one or a non-socket refused, the file removed
 * at the stop) and httpc_url_normalize.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "strbuf.h"
#include "unit_util.h"

#define MAX_BODY 4096

static void h_hello(http_request *req, void *app)
{
    (void)app;
    http_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* Echo method, path, params, query "x" and the body. */
static void h_echo(http_request *req, void *app)
{
    (void)app;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(http_req_method(req)));
    json_object_set_new(o, "path", json_string(http_req_path(req)));
    json_t *params = json_array();
    for (int i = 0; http_req_param(req, i); i++)
        json_array_append_new(params, json_string(http_req_param(req, i)));
    json_object_set_new(o, "params", params);
    const char *x = http_req_query(req, "x");
    json_object_set_new(o, "x", x ? json_string(x) : json_null());
    json_t *body = http_req_json(req);
    json_object_set(o, "body", body ? body : json_null());
    http_reply_header(req, "Location", "/somewhere");
    http_reply_json(req, 201, o);
}

static void h_text(http_request *req, void *app)
{
    (void)app;
    http_reply_text(req, 200, "text/plain; version=0.0.4", "metric 1\n");
}

static void h_error(http_request *req, void *app)
{
    (void)app;
    http_reply_error_extra(req, 422, "sql_error", json_pack("{s:s}", "sqlstate", "23505"),
                           "duplicate key %d", 7);
}

static void h_forgets(http_request *req, void *app)
{
    (void)req;
    (void)app;
}

static atomic_int slow_started; /* handlers of /slow/{n} begun */

static void h_slow(http_request *req, void *app)
{
    (void)app;
    atomic_fetch_add(&slow_started, 1);
    sleep_ms(150, NULL);
    http_reply_json(req, 200, json_pack("{s:s}", "slow", http_req_param(req, 0)));
}

static atomic_int hold_started;  /* handlers of /hold begun */
static atomic_bool hold_release; /* lets them answer */

/* Answers once the test sets hold_release (at most 10 s). */
static void h_hold(http_request *req, void *app)
{
    (void)app;
    atomic_fetch_add(&hold_started, 1);
    for (int i = 0; i < 2000 && !atomic_load(&hold_release); i++)
        sleep_ms(5, NULL);
    http_reply_json(req, 200, json_pack("{s:b}", "held", 1));
}

/* An answer just past HTTPC_MAX_RESPONSE. */
static void h_big(http_request *req, void *app)
{
    (void)app;
    size_t n = HTTPC_MAX_RESPONSE;
    char *pad = xmalloc(n + 1);
    memset(pad, 'x', n);
    pad[n] = '\0';
    http_reply_json(req, 200, json_pack("{s:s%}", "pad", pad, n));
    free(pad);
}

static const http_route routes[] = {
    {"GET", "/hello", h_hello},
    {"POST", "/v1/branches/{gid}/prepare", h_echo},
    {"GET", "/v1/branches/{gid}", h_echo},
    {"GET", "/items/{a}/sub/{b}", h_echo},
    {"POST", "/echo", h_echo},
    {"PUT", "/echo", h_echo},
    {"GET", "/metrics", h_text},
    {"GET", "/error", h_error},
    {"GET", "/forgets", h_forgets},
    {"GET", "/slow/{n}", h_slow},
    {"GET", "/hold", h_hold},
    {"GET", "/big", h_big},
};

static http_server *srv;
static int port;

static void setup(void)
{
    log_init("test_http", LOG_WARN);
    srv = http_server_start("127.0.0.1", 0, routes, ARRAY_LEN(routes), NULL, MAX_BODY);
    ck_assert_ptr_nonnull(srv);
    port = http_server_port(srv);
    ck_assert_int_gt(port, 0);
}

static void teardown(void)
{
    http_server_stop(srv);
    srv = NULL;
}

static char *url(const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", port, path);
}

/* One call; returns the status; *resp borrowed from call (caller clears). */
static long call(httpc_call *c, const char *method, const char *path, json_t *body)
{
    memset(c, 0, sizeof(*c));
    char *u = url(path);
    c->method = method;
    c->url = u;
    c->body = body;
    c->timeout_ms = 10000;
    bool ok = httpc_request(c);
    free(u);
    c->url = NULL;
    ck_assert_msg(ok, "transport failure: %s", c->error);
    return c->status;
}

static const char *err_code(json_t *resp)
{
    json_t *e = json_object_get(resp, "error");
    ck_assert_msg(json_is_object(e), "no error object");
    ck_assert(json_is_string(json_object_get(e, "message")));
    return json_string_value(json_object_get(e, "code"));
}

START_TEST(test_get_and_params)
{
    httpc_call c;
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    ck_assert(json_is_true(json_object_get(c.response, "ok")));
    httpc_call_clear(&c);

    json_t *body = json_pack("{s:s,s:i}", "participant", "pg1", "n", 3);
    ck_assert_int_eq(call(&c, "POST", "/v1/branches/3fa2b01c-4-17/prepare?x=1%202", body), 201);
    json_decref(body);
    json_t *r = c.response;
    ck_assert_str_eq(json_string_value(json_object_get(r, "method")), "POST");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "params"), 0)),
                     "3fa2b01c-4-17");
    ck_assert_str_eq(json_string_value(json_object_get(r, "x")), "1 2");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "body"), "participant")),
                     "pg1");
    httpc_call_clear(&c);

    ck_assert_int_eq(call(&c, "GET", "/items/a%20b/sub/%E2%9C%93", NULL), 201);
    json_t *params = json_object_get(c.response, "params");
    ck_assert_uint_eq(json_array_size(params), 2);
    ck_assert_str_eq(json_string_value(json_array_get(params, 0)), "a b");
    ck_assert_str_eq(json_string_value(json_array_get(params, 1)), "\xe2\x9c\x93");
    ck_assert(json_is_null(json_object_get(c.response, "body")));
    httpc_call_clear(&c);

    /* httpc_escape produces a segment that decodes back. */
    char *esc = httpc_escape("a/b c?d");
    ck_assert_str_eq(esc, "a%2Fb%20c%3Fd");
    char *path = xasprintf("/v1/branches/%s", "x%20y");
    ck_assert_int_eq(call(&c, "GET", path, NULL), 201);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(c.response, "params"), 0)),
                     "x y");
    httpc_call_clear(&c);
    free(path);
    free(esc);

    /* Other methods go through CUSTOMREQUEST. */
    body = json_pack("{s:s}", "k", "v");
    ck_assert_int_eq(call(&c, "PUT", "/echo", body), 201);
    ck_assert_str_eq(json_string_value(json_object_get(c.response, "method")), "PUT");
    json_decref(body);
    httpc_call_clear(&c);
}
END_TEST

START_TEST(test_errors)
{
    httpc_call c;
    ck_assert_int_eq(call(&c, "GET", "/nope", NULL), 404);
    ck_assert_str_eq(err_code(c.response), "not_found");
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "GET", "/", NULL), 404);
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "GET", "/v1/branches/x/prepare/extra", NULL), 404);
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "GET", "/v1/branches//prepare", NULL), 404); /* empty param */
    httpc_call_clear(&c);

    ck_assert_int_eq(call(&c, "GET", "/v1/branches/x/prepare", NULL), 405);
    ck_assert_str_eq(err_code(c.response), "method_not_allowed");
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "POST", "/hello", NULL), 405);
    httpc_call_clear(&c);

    ck_assert_int_eq(call(&c, "GET", "/error", NULL), 422);
    ck_assert_str_eq(err_code(c.response), "sql_error");
    json_t *e = json_object_get(c.response, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "sqlstate")), "23505");
    ck_assert_str_eq(json_string_value(json_object_get(e, "message")), "duplicate key 7");
    httpc_call_clear(&c);

    /* A handler that never replies gets a 500 (and an ERROR line). */
    ck_assert_int_eq(call(&c, "GET", "/forgets", NULL), 500);
    ck_assert_str_eq(err_code(c.response), "internal");
    httpc_call_clear(&c);

    /* Non-JSON response: status kept, response NULL. */
    ck_assert_int_eq(call(&c, "GET", "/metrics", NULL), 200);
    ck_assert_ptr_null(c.response);
    httpc_call_clear(&c);
}
END_TEST

/* A GET made on a thread of its own (a client whose request is being
 * handled while the server stops); the test reads c once it is joined. */
typedef struct {
    const char *path;
    long timeout_ms;
    httpc_call c;
} bg_get;

static void *bg_get_main(void *arg)
{
    bg_get *g = arg;
    memset(&g->c, 0, sizeof(g->c));
    char *u = url(g->path);
    g->c.method = "GET";
    g->c.url = u;
    g->c.timeout_ms = g->timeout_ms;
    (void)httpc_request(&g->c); /* status read by the test */
    free(u);
    g->c.url = NULL;
    return NULL;
}

START_TEST(test_stop_answers_requests_in_flight)
{
    /* Stopping while a handler runs (150 ms) still sends its answer: a
     * commit done is not lost to its client. (MHD_stop_daemon alone shut
     * the connection down first.) New connections are refused meanwhile. */
    bg_get g = {.path = "/slow/at-stop", .timeout_ms = 10000};
    pthread_t th;
    int before = atomic_load(&slow_started);
    ck_assert_int_eq(pthread_create(&th, NULL, bg_get_main, &g), 0);
    for (int i = 0; i < 1000 && atomic_load(&slow_started) == before; i++)
        sleep_ms(5, NULL); /* until its handler runs */
    http_server_stop(srv);
    srv = NULL;
    pthread_join(th, NULL);
    ck_assert_msg(g.c.status == 200, "status %ld (%s)", g.c.status, g.c.error);
    ck_assert_str_eq(json_string_value(json_object_get(g.c.response, "slow")), "at-stop");
    httpc_call_clear(&g.c);
}
END_TEST

static void *stop_thread(void *arg)
{
    http_server_stop(arg);
    return NULL;
}

/* A socket connected to the test server, with 10 s receive and send
 * timeouts; -1 when the connection is refused. */
static int connect_loopback(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *p)
{
    ck_assert_int_eq((int)send(fd, p, strlen(p), MSG_NOSIGNAL), (int)strlen(p));
}

/* recv into buf until it holds needle or the peer is done (10 s at most). */
static void recv_until(int fd, char *buf, size_t size, const char *needle)
{
    size_t got = strlen(buf);
    ssize_t n;
    while (!strstr(buf, needle) && got + 1 < size &&
           (n = recv(fd, buf + got, size - 1 - got, 0)) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
    }
}

START_TEST(test_request_arriving_during_stop_is_refused)
{
    /* A request whose body is still arriving when the stop begins is not
     * run once it has arrived: 503 shutting_down, Connection: close (its
     * answer could otherwise meet a connection already shut down), while
     * the request being handled is still answered. */
    atomic_store(&hold_release, false);
    bg_get held = {.path = "/hold", .timeout_ms = 15000};
    pthread_t client, stopper;
    int before = atomic_load(&hold_started);
    ck_assert_int_eq(pthread_create(&client, NULL, bg_get_main, &held), 0);
    for (int i = 0; i < 2000 && atomic_load(&hold_started) == before; i++)
        sleep_ms(5, NULL); /* until its handler runs */
    ck_assert_int_gt(atomic_load(&hold_started), before);

    /* A connection the server has surely accepted (one answer on it), then
     * a POST whose body is sent in part. */
    int fd = connect_loopback();
    ck_assert_int_ge(fd, 0);
    char buf[8192] = "";
    send_all(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    recv_until(fd, buf, sizeof(buf), "}");
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "got: %.200s", buf);
    send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 10\r\n\r\n{\"a\":");

    ck_assert_int_eq(pthread_create(&stopper, NULL, stop_thread, srv), 0);
    srv = NULL;
    /* The stop has begun once the port refuses connections (quiesced after
     * the stopping flag is set); the held request keeps it from ending. */
    bool refused = false;
    for (int i = 0; i < 2000 && !refused; i++) {
        int probe = connect_loopback();
        refused = probe < 0;
        if (!refused) {
            close(probe);
            sleep_ms(5, NULL);
        }
    }
    ck_assert_msg(refused, "the port still accepts connections");

    buf[0] = '\0';
    send_all(fd, "1234}");
    recv_until(fd, buf, sizeof(buf), "shutting_down");
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 503", 12) == 0, "got: %.300s", buf);
    ck_assert_msg(strstr(buf, "shutting_down"), "got: %.300s", buf);
    ck_assert_msg(strcasestr(buf, "Connection: close"), "got: %.300s", buf);

    atomic_store(&hold_release, true);
    pthread_join(client, NULL);
    pthread_join(stopper, NULL);
    ck_assert_msg(held.c.status == 200, "held request: status %ld (%s)", held.c.status,
                  held.c.error);
    httpc_call_clear(&held.c);
}
END_TEST

static atomic_llong cut_at;

static void *cut_soon(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000 && atomic_load(&hold_started) == 0; i++)
        sleep_ms(5, NULL); /* the held call has reached its handler */
    atomic_store(&cut_at, now_ms());
    return NULL;
}

START_TEST(test_perform_cut_short)
{
    /* A call waiting on an answer (a held handler, its own timeout 10 s)
     * fails as unanswered once another thread sets the cut: what a stopping
     * coordinator's resolver needs for a round stuck on a silent agent. */
    atomic_store(&hold_release, false);
    atomic_store(&hold_started, 0);
    atomic_store(&cut_at, 0);
    httpc_call c;
    memset(&c, 0, sizeof(c));
    char *u = url("/hold");
    c = (httpc_call){.method = "GET", .url = u, .timeout_ms = 10000};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cut_soon, NULL), 0);
    ck_assert(!httpc_perform_until(&c, 1, &cut_at));
    pthread_join(th, NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_msg(strstr(c.error, "cut short"), "error: %s", c.error);
    atomic_store(&hold_release, true);
    httpc_call_clear(&c);
    free(u);
}
END_TEST

START_TEST(test_body_limits)
{
    httpc_call c;
    /* Just under the limit, and over 1 KiB (no Expect: 100-continue stall). */
    json_t *body = json_object();
    char *big = xmalloc(MAX_BODY);
    memset(big, 'a', MAX_BODY - 100);
    big[MAX_BODY - 100] = '\0';
    json_object_set_new(body, "s", json_string(big));
    ck_assert_int_eq(call(&c, "POST", "/echo", body), 201);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c.response, "body"), "s")),
                     big);
    httpc_call_clear(&c);
    json_decref(body);
    free(big);

    /* Over the limit: 413 body_too_large. */
    body = json_object();
    big = xmalloc(MAX_BODY * 4);
    memset(big, 'b', MAX_BODY * 4 - 1);
    big[MAX_BODY * 4 - 1] = '\0';
    json_object_set_new(body, "s", json_string(big));
    ck_assert_int_eq(call(&c, "POST", "/echo", body), 413);
    ck_assert_str_eq(err_code(c.response), "body_too_large");
    httpc_call_clear(&c);
    json_decref(body);
    free(big);

    /* The server still works afterwards. */
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
}
END_TEST

/* Raw HTTP over a socket, for what libcurl will not send. Returns the reply. */
static char *raw_http_ex(const char *request, size_t len, bool half_close)
{
    int fd = connect_loopback();
    ck_assert_int_ge(fd, 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early (413): fine */
        off += (size_t)n;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    char *buf = xmalloc(65536);
    size_t got = 0;
    ssize_t n;
    while (got < 65535 && (n = recv(fd, buf + got, 65535 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return buf;
}

static char *raw_http(const char *request, size_t len)
{
    return raw_http_ex(request, len, true);
}

/* raw_http of req, whose reply must begin with status ("HTTP/1.1 200");
 * returns the reply (caller frees). */
static char *raw_expect(const strbuf *req, const char *status)
{
    char *resp = raw_http(req->data, req->len);
    ck_assert_msg(strncmp(resp, status, strlen(status)) == 0, "got: %.200s", resp);
    return resp;
}

/* Send one chunked request (request line "POST /echo", say) of total bytes
 * (no last chunk), never reading; returns how many body bytes the server
 * took before the connection failed (total when it took them all). */
static size_t chunked_upload_accepted_by(const char *line, size_t total)
{
    int fd = connect_loopback();
    ck_assert_int_ge(fd, 0);
    char *head = xasprintf("%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", line);
    ck_assert_int_eq((int)send(fd, head, strlen(head), MSG_NOSIGNAL), (int)strlen(head));
    free(head);
    static char chunk[65536 + 16];
    int hl = snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + hl, ' ', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    size_t len = (size_t)hl + 65536 + 2, sent = 0;
    while (sent < total) {
        size_t off = 0;
        while (off < len) {
            ssize_t n = send(fd, chunk + off, len - off, MSG_NOSIGNAL);
            if (n <= 0) {
                close(fd);
                return sent;
            }
            off += (size_t)n;
        }
        sent += 65536;
    }
    close(fd);
    return sent;
}

static size_t chunked_upload_accepted(size_t total)
{
    return chunked_upload_accepted_by("POST /echo", total);
}

START_TEST(test_raw_protocol)
{
    /* Chunked upload that grows past max_body: 413, no unbounded buffering. */
    strbuf req;
    strbuf_init(&req);
    strbuf_append(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        "Connection: close\r\n\r\n");
    char chunk[1024];
    memset(chunk, ' ', sizeof(chunk));
    for (int i = 0; i < 16; i++) {
        strbuf_appendf(&req, "%zx\r\n", sizeof(chunk));
        strbuf_appendn(&req, chunk, sizeof(chunk));
        strbuf_append(&req, "\r\n");
    }
    strbuf_append(&req, "0\r\n\r\n");
    char *resp = raw_expect(&req, "HTTP/1.1 413");
    ck_assert_ptr_nonnull(strstr(resp, "body_too_large"));
    ck_assert_ptr_nonnull(strcasestr(resp, "Content-Type: application/json"));
    free(resp);

    /* One that never ends is not read forever: past the limit and 16 MiB
     * more, the server answers and closes, and the client's sending fails
     * (64 MiB offered; before, every byte was read and dropped). */
    ck_assert_msg(chunked_upload_accepted(64u << 20) < (64u << 20),
                  "a chunked upload past the limit was read to its end");

    /* A GET's body is not parsed: a probe that sends one gets its answer. */
    strbuf_reset(&req);
    strbuf_append(&req, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                        "Connection: close\r\n\r\nx");
    resp = raw_expect(&req, "HTTP/1.1 200");
    free(resp);
    /* ... also one over the body limit: it is dropped unread, not buffered
     * (no 413: it is no request body at all) ... */
    strbuf_reset(&req);
    strbuf_appendf(&req, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                         "Connection: close\r\n\r\n", MAX_BODY * 4);
    for (int i = 0; i < MAX_BODY * 4; i++)
        strbuf_append(&req, "x");
    resp = raw_expect(&req, "HTTP/1.1 200");
    free(resp);
    /* ... but not for ever: one that never ends is cut off past 16 MiB. */
    ck_assert_msg(chunked_upload_accepted_by("GET /hello", 64u << 20) < (64u << 20),
                  "a never-ending GET body was read to its end");

    /* A key given twice is refused, not "the last one wins". */
    strbuf_reset(&req);
    strbuf_append(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n"
                        "Connection: close\r\n\r\n{\"a\":1,\"a\":2}");
    resp = raw_expect(&req, "HTTP/1.1 400");
    ck_assert_ptr_nonnull(strstr(resp, "\"malformed_json\""));
    ck_assert_msg(strstr(resp, "duplicate") != NULL, "got: %.300s", resp);
    free(resp);

    /* An error message cut at its limit inside a character keeps the rest of
     * its text (it went out all '?': jansson refuses the partial character,
     * and the lossy copy replaced every non-ASCII byte). */
    strbuf_reset(&req);
    strbuf_append(&req, "GET /x"); /* "no such resource: /x": 20 bytes, 1003 left, odd */
    for (int i = 0; i < 700; i++)
        strbuf_append(&req, "%C3%A9");
    strbuf_append(&req, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    resp = raw_expect(&req, "HTTP/1.1 404");
    ck_assert_msg(strstr(resp, "\xc3\xa9\xc3\xa9") != NULL, "got: %.300s", resp);
    free(resp);

    /* Content-Length above the limit is refused before the body is read. */
    strbuf_reset(&req);
    strbuf_append(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{}");
    resp = raw_http_ex(req.data, req.len, false); /* the client keeps its side open */
    ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got: %.200s", resp);
    free(resp);

    /* Malformed JSON: 400 with jansson's text and position. */
    strbuf_reset(&req);
    strbuf_append(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n"
                        "Connection: close\r\n\r\n{\"a\": 1,");
    resp = raw_expect(&req, "HTTP/1.1 400");
    ck_assert_ptr_nonnull(strstr(resp, "\"malformed_json\""));
    ck_assert_ptr_nonnull(strstr(resp, "position"));
    free(resp);

    /* A JSON array is not an object. */
    strbuf_reset(&req);
    strbuf_append(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        "Connection: close\r\n\r\n[1,2]");
    resp = raw_expect(&req, "HTTP/1.1 400");
    ck_assert_ptr_nonnull(strstr(resp, "must be a JSON object"));
    free(resp);

    /* Text replies carry their Content-Type; extra headers are sent. */
    const char *m = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    resp = raw_http(m, strlen(m));
    ck_assert_ptr_nonnull(strcasestr(resp, "Content-Type: text/plain; version=0.0.4"));
    free(resp);
    const char *g = "GET /v1/branches/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    resp = raw_http(g, strlen(g));
    ck_assert_ptr_nonnull(strcasestr(resp, "Location: /somewhere"));
    free(resp);

    /* 405 lists the allowed methods, HEAD with GET. */
    const char *d = "DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    resp = raw_http(d, strlen(d));
    ck_assert_msg(strncmp(resp, "HTTP/1.1 405", 12) == 0, "got: %.200s", resp);
    ck_assert_ptr_nonnull(strcasestr(resp, "Allow: "));
    free(resp);
    d = "DELETE /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    resp = raw_http(d, strlen(d));
    ck_assert_msg(strcasestr(resp, "Allow: GET, HEAD\r\n") != NULL, "got: %.300s", resp);
    free(resp);

    /* HEAD: the GET's status and headers, no body (health checkers use it). */
    const char *h = "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    resp = raw_http(h, strlen(h));
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0, "got: %.300s", resp);
    ck_assert_ptr_nonnull(strcasestr(resp, "Content-Type: application/json"));
    const char *end = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_msg(end[4] == '\0', "HEAD answered with a body: %s", end + 4);
    free(resp);
    strbuf_free(&req);
}
END_TEST

START_TEST(test_keepalive_reuse)
{
    httpc_call c;
    uint64_t fresh = httpc_connections_opened();
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
    ck_assert_uint_eq(httpc_connections_opened(), fresh + 1); /* the counter does count */
    uint64_t before = httpc_connections_opened();
    for (int i = 0; i < 5; i++) {
        json_t *body = json_pack("{s:i}", "i", i);
        ck_assert_int_eq(call(&c, i % 2 ? "GET" : "POST", i % 2 ? "/hello" : "/echo", body),
                         i % 2 ? 200 : 201);
        json_decref(body);
        httpc_call_clear(&c);
    }
    ck_assert_uint_eq(httpc_connections_opened(), before); /* all reused */
    /* Even after an error status. */
    ck_assert_int_eq(call(&c, "GET", "/nope", NULL), 404);
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
    ck_assert_uint_eq(httpc_connections_opened(), before);
}
END_TEST

START_TEST(test_proxy_variables_ignored)
{
    /* A proxy meant for outbound web traffic must not reroute protocol
     * calls: libcurl would otherwise send this one to port 1 and fail, even
     * for 127.0.0.1. */
    setenv("http_proxy", "http://127.0.0.1:1", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    httpc_call c;
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("ALL_PROXY");
}
END_TEST

START_TEST(test_parallel)
{
    enum { N = 8 };
    httpc_call calls[N];
    char *urls[N];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/slow/%d", i);
        urls[i] = url(p);
        calls[i].method = "GET";
        calls[i].url = urls[i];
    }
    ck_assert(httpc_perform(calls, N));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(calls[i].status, 200);
        char want[8];
        snprintf(want, sizeof(want), "%d", i);
        ck_assert_str_eq(json_string_value(json_object_get(calls[i].response, "slow")), want);
        httpc_call_clear(&calls[i]);
    }
    /* Second round reuses the N connections of the first. */
    uint64_t before = httpc_connections_opened();
    ck_assert(httpc_perform(calls, N));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(calls[i].status, 200);
        httpc_call_clear(&calls[i]);
        free(urls[i]);
    }
    ck_assert_uint_eq(httpc_connections_opened(), before);
}
END_TEST

START_TEST(test_transport_failures)
{
    httpc_call calls[3];
    memset(calls, 0, sizeof(calls));
    char *good = url("/hello");
    calls[0].method = "GET";
    calls[0].url = good;
    calls[1].method = "GET";
    calls[1].url = "http://127.0.0.1:1/nothing"; /* refused */
    calls[2].method = "GET";
    calls[2].url = xasprintf("http://127.0.0.1:%d/slow/1", port);
    calls[2].timeout_ms = 20; /* times out */
    ck_assert(!httpc_perform(calls, 3));
    ck_assert_int_eq(calls[0].status, 200);
    ck_assert_str_eq(calls[0].error, "");
    ck_assert_int_eq(calls[1].status, 0);
    ck_assert_ptr_null(calls[1].response);
    ck_assert_str_ne(calls[1].error, "");
    ck_assert_int_eq(calls[2].status, 0);
    ck_assert_str_ne(calls[2].error, "");
    for (int i = 0; i < 3; i++)
        httpc_call_clear(&calls[i]);
    free((char *)calls[2].url);
    free(good);
    /* Zero calls is trivially fine. */
    ck_assert(httpc_perform(NULL, 0));
}
END_TEST

/* An answer past HTTPC_MAX_RESPONSE fails the call as transport with
 * too_large set (the coordinator tells it apart from an unreachable agent);
 * other failures leave too_large false, and the thread's next call works. */
START_TEST(test_response_too_large)
{
    httpc_call c;
    memset(&c, 0, sizeof(c));
    char *u = url("/big");
    c.method = "GET";
    c.url = u;
    ck_assert(!httpc_request(&c));
    ck_assert_int_eq(c.status, 0);
    ck_assert(c.too_large);
    ck_assert_ptr_null(c.response);
    ck_assert_msg(strstr(c.error, "larger than"), "%s", c.error);
    httpc_call_clear(&c);
    ck_assert(!c.too_large);
    free(u);
    c.method = "GET";
    c.url = "http://127.0.0.1:1/nothing";
    ck_assert(!httpc_request(&c));
    ck_assert_int_eq(c.status, 0);
    ck_assert(!c.too_large);
    httpc_call_clear(&c);
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
}
END_TEST

static void *thread_calls(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        httpc_call c;
        memset(&c, 0, sizeof(c));
        char *u = url("/hello");
        c.method = "GET";
        c.url = u;
        bool ok = httpc_request(&c);
        free(u);
        long st = c.status;
        httpc_call_clear(&c);
        if (!ok || st != 200)
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_threads)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_calls, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_ptr_null(rv);
    }
}
END_TEST

static bool token_file_loads(const char *dir, const char *content)
{
    char *path = xasprintf("%s/token", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    bool ok = auth_load_token_file(path);
    free(path);
    return ok;
}

/* A call from a thread of its own: httpc adds the token's header when a
 * thread makes its first call (thread_calls' threads started before). */
static void *call_with_token(void *arg)
{
    httpc_call *c = arg;
    (void)httpc_request(c);
    return NULL;
}

START_TEST(test_token)
{
    char *dir = unit_tmpdir();
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(!token_file_loads(dir, "short\n"));
    ck_assert(!token_file_loads(dir, "has a space in it 0123456789\n"));
    ck_assert(!token_file_loads(dir, "\n0123456789abcdef0123\n")); /* first line empty */
    ck_assert_ptr_null(auth_token());
    ck_assert(auth_header_ok(NULL)); /* no token: nothing checked */
    ck_assert(token_file_loads(dir, "0123456789abcdef-XYZ_~+/=  \nignored\n"));
    ck_assert_str_eq(auth_token(), "0123456789abcdef-XYZ_~+/=");
    free(unit_capture_end(&cap));
    ck_assert(auth_header_ok("Bearer 0123456789abcdef-XYZ_~+/="));
    ck_assert(auth_header_ok("bearer 0123456789abcdef-XYZ_~+/="));
    ck_assert(!auth_header_ok(NULL));
    ck_assert(!auth_header_ok("Bearer 0123456789abcdef-XYZ_~+/=x"));
    ck_assert(!auth_header_ok("Bearer 0123456789abcdef-XYZ_~+/"));
    ck_assert(!auth_header_ok("Basic 0123456789abcdef-XYZ_~+/="));
    ck_assert(!auth_header_ok("Bearer "));

    /* The server: 401 without the token, before reading a body; /healthz open. */
    const char *h = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *resp = raw_http(h, strlen(h));
    ck_assert_msg(strncmp(resp, "HTTP/1.1 401", 12) == 0, "got: %.200s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "\"unauthorized\""));
    ck_assert_ptr_nonnull(strcasestr(resp, "WWW-Authenticate: Bearer"));
    free(resp);
    const char *big = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{}";
    resp = raw_http_ex(big, strlen(big), false);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 401", 12) == 0, "got: %.200s", resp);
    free(resp);
    const char *wrong = "GET /hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        "0123456789abcdef-XYZ_~+/-\r\nConnection: close\r\n\r\n";
    resp = raw_http(wrong, strlen(wrong));
    ck_assert_msg(strncmp(resp, "HTTP/1.1 401", 12) == 0, "got: %.200s", resp);
    free(resp);
    const char *right = "GET /hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        "0123456789abcdef-XYZ_~+/=\r\nConnection: close\r\n\r\n";
    resp = raw_http(right, strlen(right));
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0, "got: %.200s", resp);
    free(resp);
    http_server *health = http_server_start(
        "127.0.0.1", 0, (http_route[]){{"GET", "/healthz", h_hello}}, 1, NULL, MAX_BODY);
    ck_assert_ptr_nonnull(health);
    int saved = port;
    port = http_server_port(health);
    for (const char *const *m = (const char *const[]){"GET", "HEAD", NULL}; *m; m++) {
        char *hz = xasprintf("%s /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", *m);
        resp = raw_http(hz, strlen(hz));
        ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0, "%s /healthz: %.200s", *m, resp);
        free(resp);
        free(hz);
    }
    port = saved;
    http_server_stop(health);

    /* httpc sends it. */
    httpc_call c;
    memset(&c, 0, sizeof(c));
    c.method = "GET";
    c.url = url("/hello");
    c.timeout_ms = 10000;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, call_with_token, &c), 0);
    pthread_join(th, NULL);
    ck_assert_msg(c.status == 200, "httpc with the token: %ld %s", c.status, c.error);
    free((char *)c.url);
    httpc_call_clear(&c);
    auth_reset();
    unit_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_listen)
{
    unit_capture cap;
    char *dir = unit_tmpdir();
    unit_capture_begin(&cap, dir);
    /* Same port twice: the second start fails cleanly (logged). */
    http_server *again = http_server_start("127.0.0.1", port, routes, ARRAY_LEN(routes), NULL,
                                           MAX_BODY);
    http_server *badhost = http_server_start("no-such-host.invalid", 0, routes, 1, NULL, 1);
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_null(again);
    ck_assert_ptr_null(badhost);
    ck_assert_ptr_nonnull(strstr(out, "httpd: cannot listen on 127.0.0.1"));
    free(out);
    /* Any-address bind works too. */
    http_server *any = http_server_start("0.0.0.0", 0, routes, ARRAY_LEN(routes), NULL, MAX_BODY);
    ck_assert_ptr_nonnull(any);
    char *u = xasprintf("http://127.0.0.1:%d/hello", http_server_port(any));
    httpc_call c;
    memset(&c, 0, sizeof(c));
    c.method = "GET";
    c.url = u;
    ck_assert(httpc_request(&c));
    ck_assert_int_eq(c.status, 200);
    httpc_call_clear(&c);
    free(u);
    http_server_stop(any);
    unit_rm_rf(dir);
    free(dir);
}
END_TEST

/* One call to url; returns the status (0: transport failure). */
static long call_url(httpc_call *c, const char *method, const char *u, json_t *body)
{
    memset(c, 0, sizeof(*c));
    c->method = method;
    c->url = u;
    c->body = body;
    c->timeout_ms = 10000;
    (void)httpc_request(c);
    return c->status;
}

START_TEST(test_unix_socket)
{
    char *dir = unit_tmpdir();
    char *path = xasprintf("%s/api.sock", dir);
    char err[400];
    /* the server of setup() also serves on a Unix socket */
    http_listener l;
    ck_assert(http_listen_unix(path, &l));
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0660);
    ck_assert(http_server_serve_also(srv, &l));
    ck_assert_int_eq(l.fd, -1);

    char *unix_url = xasprintf("unix:%s", path);
    char *base = httpc_url_normalize(unix_url, err, sizeof(err));
    ck_assert_msg(base, "%s", err);
    ck_assert_ptr_nonnull(strstr(base, "http+unix://%2F"));
    char *base_again = httpc_url_normalize(base, err, sizeof(err)); /* taken as it is */
    ck_assert_str_eq(base_again, base);
    char *u = xasprintf("%s/v1/branches/g-1/prepare?x=y", base);
    json_t *body = json_pack("{s:s}", "participant", "pg1");
    httpc_call c;
    uint64_t before = httpc_connections_opened();
    ck_assert_int_eq(call_url(&c, "POST", u, body), 201);
    ck_assert_str_eq(json_string_value(json_object_get(c.response, "path")),
                     "/v1/branches/g-1/prepare");
    ck_assert_str_eq(json_string_value(json_object_get(c.response, "x")), "y");
    httpc_call_clear(&c);
    /* kept alive, and never mixed with a TCP connection: TCP then the socket again */
    ck_assert_int_eq(call(&c, "GET", "/hello", NULL), 200);
    httpc_call_clear(&c);
    /* the socket path is not left on a pooled handle for the next TCP call:
     * nothing listens on port 1, so only the socket could answer this one */
    ck_assert_int_eq(call_url(&c, "GET", "http://127.0.0.1:1/hello", NULL), 0);
    httpc_call_clear(&c);
    ck_assert_int_eq(call_url(&c, "POST", u, body), 201);
    httpc_call_clear(&c);
    ck_assert_uint_eq(httpc_connections_opened(), before + 2);
    free(u);
    u = xasprintf("%s", base); /* no path at all: "/" */
    ck_assert_int_eq(call_url(&c, "GET", u, NULL), 404);
    httpc_call_clear(&c);
    free(u);

    /* a second server on the same path: refused while this one serves */
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    http_listener l2;
    bool taken = http_listen_unix(path, &l2);
    char *out = unit_capture_end(&cap);
    ck_assert(!taken);
    ck_assert_ptr_nonnull(strstr(out, "another process is serving on it"));
    free(out);
    ck_assert_int_eq(lstat(path, &st), 0); /* and left alone */

    /* a successor that starts while this one stops (its socket closed at
     * the quiesce, the file left) replaces the file, and this one's stop
     * leaves the successor's alone (here it gets another inode; a reused
     * inode number, which a test cannot bring about, is what the stop's
     * connect probe is for) */
    http_server_quiesce(srv);
    http_listener l3;
    bool took = false;
    unit_capture_begin(&cap, dir);
    /* the socket closes once MHD's listening thread has let go of it too */
    for (int i = 0; i < 200 && !(took = http_listen_unix(path, &l3)); i++)
        sleep_ms(10, NULL);
    free(unit_capture_end(&cap));
    ck_assert(took);
    http_server_stop(srv);
    srv = NULL;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(st.st_ino == l3.unix_ino);
    http_listener_close(&l3);
    ck_assert_int_ne(lstat(path, &st), 0); /* closing an unserved listener removes it */

    /* a plain stop removes the file; nothing answers there any more */
    http_server *srv2 = http_server_start("127.0.0.1", 0, routes, ARRAY_LEN(routes), NULL, MAX_BODY);
    ck_assert_ptr_nonnull(srv2);
    ck_assert(http_listen_unix(path, &l3));
    ck_assert(http_server_serve_also(srv2, &l3));
    ck_assert_int_eq(call_url(&c, "POST", base, body), 404);
    httpc_call_clear(&c);
    http_server_stop(srv2);
    ck_assert_int_ne(lstat(path, &st), 0);
    ck_assert_int_eq(call_url(&c, "POST", base, body), 0);
    httpc_call_clear(&c);

    /* a socket file nobody listens on (a process killed -9 left it): replaced */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    snprintf(su.sun_path, sizeof(su.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&su, sizeof(su)), 0);
    close(fd);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(http_listen_unix(path, &l2));
    http_listener_close(&l2);
    ck_assert_int_ne(lstat(path, &st), 0);

    /* not a socket, relative, too long: refused (and a file left alone) */
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    char *longp = xasprintf("/%0*d", 120, 0);
    unit_capture_begin(&cap, dir);
    ck_assert(!http_listen_unix(path, &l2));
    ck_assert(!http_listen_unix("relative.sock", &l2));
    ck_assert(!http_listen_unix(longp, &l2));
    out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "the path exists and is not a socket"));
    ck_assert_ptr_nonnull(strstr(out, "must be absolute"));
    free(out);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));

    /* URL forms */
    const char *good[][2] = {
        {"http://127.0.0.1:7401", "http://127.0.0.1:7401"},
        {"https://h", "https://h"},
        {"unix:/run/tx/a 1.sock", "http+unix://%2Frun%2Ftx%2Fa%201.sock"},
        {"http+unix://%2Frun%2Fa.sock", "http+unix://%2Frun%2Fa.sock"},
        {"http+unix://%2frun%2F%61.sock", "http+unix://%2Frun%2Fa.sock"}, /* one spelling */
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        char *n = httpc_url_normalize(good[i][0], err, sizeof(err));
        ck_assert_msg(n, "%s: %s", good[i][0], err);
        ck_assert_str_eq(n, good[i][1]);
        free(n);
    }
    char *longu = xasprintf("unix:%s", longp);
    const char *bad[] = {"ftp://h", "unix:", "unix:run/a.sock", longu, "http+unix://run%2Fa.sock",
                         "http+unix://%2Frun%2Fa.sock/v1", "http+unix://%2Fa%00b",
                         "http+unix://%2Fa%2", "127.0.0.1:7401"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        char *n = httpc_url_normalize(bad[i], err, sizeof(err));
        ck_assert_msg(!n, "should be refused: %s", bad[i]);
        ck_assert(err[0]);
    }
    /* a call to an http+unix URL that does not decode fails, without a crash */
    ck_assert_int_eq(call_url(&c, "GET", "http+unix://%zz/hello", NULL), 0);
    ck_assert_ptr_nonnull(strstr(c.error, "bad unix socket URL"));
    httpc_call_clear(&c);

    json_decref(body);
    free(longu);
    free(longp);
    free(base_again);
    free(base);
    free(unix_url);
    free(path);
    unit_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    httpc_global_init();
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("loopback");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_get_and_params);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_body_limits);
    tcase_add_test(tc, test_stop_answers_requests_in_flight);
    tcase_add_test(tc, test_request_arriving_during_stop_is_refused);
    tcase_add_test(tc, test_perform_cut_short);
    tcase_add_test(tc, test_raw_protocol);
    tcase_add_test(tc, test_keepalive_reuse);
    tcase_add_test(tc, test_proxy_variables_ignored);
    tcase_add_test(tc, test_parallel);
    tcase_add_test(tc, test_transport_failures);
    tcase_add_test(tc, test_response_too_large);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_bad_listen);
    tcase_add_test(tc, test_token);
    tcase_add_test(tc, test_unix_socket);
    suite_add_tcase(s, tc);
    int rc = unit_run(s);
    httpc_global_cleanup();
    return rc;
}
