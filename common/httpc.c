/*
 * httpc.c - HTTP/JSON client on libcurl with per-thread connection reuse.
 *
 * Invariants:
 *   - Each thread owns one CURLM and a small pool of easy handles (pthread
 *     key, destroyed at thread exit); the multi handle's connection cache is
 *     what makes keep-alive connections survive between calls of a thread.
 *   - A pooled easy handle keeps its fixed options from creation (easy_new);
 *     each call sets all of its own (setup_easy) and unhooks the pointers
 *     into its caller's memory when it ends.
 *   - No signals (CURLOPT_NOSIGNAL), TCP_NODELAY, TCP keepalive (5 s), no
 *     "Expect: 100-continue",
 *     Content-Type: application/json on every call, and the cluster's token
 *     (auth.h) when one is loaded: it must be loaded before the first call.
 *   - Every call gets status/response/error filled; a response body is kept
 *     only up to HTTPC_MAX_RESPONSE bytes (then the call fails as transport,
 *     with too_large set).
 *   - Nothing here logs: callers log per call with their gid/participant.
 *   - A URL "http+unix://<socket path, percent-encoded>/<path>" goes over
 *     that Unix-domain socket (CURLOPT_UNIX_SOCKET_PATH, set or cleared on
 *     every call) as "http://localhost/<path>"; libcurl keeps its
 *     connections apart from the TCP ones. httpc_url_normalize writes that
 *     form from "unix:/path" (how the options take it).
 */
#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jsonutil.h"
#include "strbuf.h"

#define HTTPC_POOL_MAX 32
#define HTTPC_DEFAULT_TIMEOUT_MS 30000
#define HTTPC_CONNECT_TIMEOUT_MS 2000

typedef struct {
    CURLM *multi;
    struct curl_slist *headers;
    CURL *pool[HTTPC_POOL_MAX];
    size_t npool;
} httpc_tls;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t connections_opened;

static void tls_destroy(void *p)
{
    httpc_tls *t = p;
    if (!t)
        return;
    for (size_t i = 0; i < t->npool; i++)
        curl_easy_cleanup(t->pool[i]);
    curl_multi_cleanup(t->multi);
    curl_slist_free_all(t->headers);
    free(t);
}

static void tls_key_init(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static httpc_tls *tls_get(void)
{
    pthread_once(&tls_once, tls_key_init);
    httpc_tls *t = pthread_getspecific(tls_key);
    if (t)
        return t;
    t = xcalloc(1, sizeof(*t));
    t->multi = curl_multi_init();
    if (!t->multi) {
        free(t);
        return NULL;
    }
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, 64L);
    t->headers = curl_slist_append(NULL, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "Accept: application/json");
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (auth_token()) { /* the cluster's token (auth.h), on every call */
        char *h = xasprintf("Authorization: Bearer %s", auth_token());
        t->headers = curl_slist_append(t->headers, h);
        free(h);
    }
    pthread_setspecific(tls_key, t);
    return t;
}

void httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    pthread_once(&tls_once, tls_key_init);
}

void httpc_global_cleanup(void)
{
    pthread_once(&tls_once, tls_key_init);
    httpc_tls *t = pthread_getspecific(tls_key);
    if (t) {
        tls_destroy(t);
        pthread_setspecific(tls_key, NULL);
    }
    curl_global_cleanup();
}

uint64_t httpc_connections_opened(void)
{
    return (uint64_t)atomic_load(&connections_opened);
}

/* Options that never change are set once, when the handle is created; a
 * pooled handle keeps them (no curl_easy_reset), so a call only sets what is
 * its own (setup_easy). */
static CURL *easy_new(httpc_tls *t)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* A peer whose host died or was cut off without a reset would otherwise
     * hold a long call (a statement's, up to its transaction's timeout) with
     * nothing on the wire: keepalive probes after 5 s idle, every 5 s, so
     * the connection fails within about a minute (the kernel's probe count). */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Protocol messages go straight to the peer named in the configuration:
     * an http_proxy/HTTPS_PROXY in the environment (meant for outbound web
     * traffic) must not reroute them. "" also spares libcurl reading the
     * proxy variables again on every request. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    return e;
}

static CURL *easy_get(httpc_tls *t)
{
    if (t->npool > 0)
        return t->pool[--t->npool];
    return easy_new(t);
}

static void easy_put(httpc_tls *t, CURL *e)
{
    if (t->npool < HTTPC_POOL_MAX)
        t->pool[t->npool++] = e;
    else
        curl_easy_cleanup(e);
}

typedef struct {
    httpc_call *call;
    CURL *easy;
    strbuf resp;
    char *body_text; /* request body, freed after the call */
    bool overflow;
    bool done;
} call_state;

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    call_state *cs = userp;
    size_t n = size * nmemb;
    if (cs->resp.len + n > HTTPC_MAX_RESPONSE) {
        cs->overflow = true;
        return 0;
    }
    strbuf_appendn(&cs->resp, data, n);
    return n;
}

static void call_fail(httpc_call *c, const char *fmt, const char *a)
{
    c->status = 0;
    c->done_us = now_us();
    snprintf(c->error, sizeof(c->error), fmt, a);
}

#define UNIX_SCHEME "http+unix://"
#define UNIX_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* url an http+unix one: *socket_path (caller frees) decoded from its
 * authority, which must give an absolute path that fits a sockaddr_un, and
 * *rest (inside url) its path, "/..." ("/" when it has none). Any other
 * url: *socket_path NULL. false for an http+unix URL that does not decode. */
static bool unix_url_split(const char *url, char **socket_path, const char **rest)
{
    *socket_path = NULL;
    *rest = NULL;
    if (strncmp(url, UNIX_SCHEME, strlen(UNIX_SCHEME)) != 0)
        return true;
    const char *a = url + strlen(UNIX_SCHEME);
    size_t alen = strcspn(a, "/?#");
    char *path = xmalloc(alen + 1), *o = path;
    for (size_t i = 0; i < alen; i++) {
        if (a[i] != '%') {
            *o++ = a[i];
            continue;
        }
        int hi = i + 2 < alen ? hexval(a[i + 1]) : -1, lo = hi >= 0 ? hexval(a[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(path);
            return false;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    if (path[0] != '/' || strlen(path) > UNIX_PATH_MAX || (a[alen] && a[alen] != '/')) {
        free(path);
        return false;
    }
    *socket_path = path;
    *rest = a[alen] ? a + alen : "/";
    return true;
}

char *httpc_url_normalize(const char *in, char *err, size_t errsize)
{
    if (strncmp(in, "unix:", 5) == 0) {
        const char *path = in + 5;
        if (path[0] != '/' || strlen(path) > UNIX_PATH_MAX) {
            snprintf(err, errsize, "'%s': the socket path must be absolute and at most %d bytes",
                     in, UNIX_PATH_MAX);
            return NULL;
        }
        char *enc = httpc_escape(path);
        char *url = xasprintf(UNIX_SCHEME "%s", enc);
        free(enc);
        return url;
    }
    if (strncmp(in, "http://", 7) == 0 || strncmp(in, "https://", 8) == 0) {
        char *url = xstrdup(in); /* a base: paths are appended to it */
        for (size_t l = strlen(url); l > 0 && url[l - 1] == '/'; l--)
            url[l - 1] = '\0';
        return url;
    }
    if (strncmp(in, UNIX_SCHEME, strlen(UNIX_SCHEME)) == 0) {
        char *sp = NULL;
        const char *rest = NULL;
        if (unix_url_split(in, &sp, &rest) && sp && strcmp(rest, "/") == 0 &&
            !strchr(in + strlen(UNIX_SCHEME), '/')) {
            /* encoded again, as from unix:PATH: one spelling per path (%2f
             * and %2F, a and %61), so that URLs of one path compare equal
             * (a path spelt otherwise, /tmp//a.sock or through a symlink,
             * still differs) */
            char *enc = httpc_escape(sp);
            char *url = xasprintf(UNIX_SCHEME "%s", enc);
            free(enc);
            free(sp);
            return url;
        }
        free(sp);
        snprintf(err, errsize,
                 "'%s': expected http+unix://<absolute socket path, percent-encoded, at most %d "
                 "bytes> and nothing after it",
                 in, UNIX_PATH_MAX);
        return NULL;
    }
    snprintf(err, errsize, "'%s' is not an http:// or https:// URL, nor unix:/path/to/socket", in);
    return NULL;
}

/* The per-call options. Every option a previous call of this handle may
 * have set is set again here (method, body, custom request), so nothing of
 * an earlier call leaks into this one. */
static bool setup_easy(call_state *cs)
{
    httpc_call *c = cs->call;
    CURL *e = cs->easy;
    long timeout = c->timeout_ms > 0 ? c->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    long ctimeout = timeout < HTTPC_CONNECT_TIMEOUT_MS ? timeout : HTTPC_CONNECT_TIMEOUT_MS;
    const char *method = c->method ? c->method : "GET";

    char *socket_path = NULL;
    const char *rest = NULL;
    if (!unix_url_split(c->url, &socket_path, &rest)) {
        call_fail(c, "bad unix socket URL %s", c->url);
        return false;
    }
    /* libcurl copies both strings */
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, socket_path); /* NULL: TCP */
    if (socket_path) {
        char *url = xasprintf("http://localhost%s", rest);
        curl_easy_setopt(e, CURLOPT_URL, url);
        free(url);
    } else {
        curl_easy_setopt(e, CURLOPT_URL, c->url);
    }
    free(socket_path);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, cs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, cs);

    if (c->body)
        cs->body_text = json_dump_text(c->body);
    if (strcmp(method, "GET") == 0 && !c->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        const char *payload = cs->body_text ? cs->body_text : "";
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") != 0 ? method : NULL);
    }
    return true;
}

static void finish_call(call_state *cs, CURLcode rc)
{
    httpc_call *c = cs->call;
    c->done_us = now_us();
    long nconn = 0;
    if (curl_easy_getinfo(cs->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
        atomic_fetch_add(&connections_opened, (uint_fast64_t)nconn);
    if (rc != CURLE_OK) {
        c->status = 0;
        c->too_large = cs->overflow;
        if (cs->overflow)
            snprintf(c->error, sizeof(c->error), "response larger than %u bytes",
                     HTTPC_MAX_RESPONSE);
        else if (!c->error[0])
            snprintf(c->error, sizeof(c->error), "%s", curl_easy_strerror(rc));
        return;
    }
    long status = 0;
    curl_easy_getinfo(cs->easy, CURLINFO_RESPONSE_CODE, &status);
    c->status = status;
    c->error[0] = '\0';
    if (c->raw_200 && status == 200) {
        c->raw_len = cs->resp.len;
        c->raw = strbuf_take(&cs->resp);
    } else if (cs->resp.len > 0) {
        c->response = json_loadb(cs->resp.data, cs->resp.len, 0, NULL);
    }
}

bool httpc_perform(httpc_call *calls, size_t n)
{
    return httpc_perform_until(calls, n, NULL);
}

bool httpc_perform_until(httpc_call *calls, size_t n, atomic_llong *cut_at_ms)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        calls[i].status = 0;
        calls[i].response = NULL;
        calls[i].raw = NULL;
        calls[i].raw_len = 0;
        calls[i].error[0] = '\0';
        calls[i].too_large = false;
    }
    httpc_tls *t = tls_get();
    if (!t) {
        for (size_t i = 0; i < n; i++)
            call_fail(&calls[i], "%s", "cannot create curl multi handle");
        return false;
    }
    call_state *cs = xcalloc(n, sizeof(*cs));
    size_t active = 0;
    int64_t start = now_us();
    for (size_t i = 0; i < n; i++)
        calls[i].start_us = start;
    for (size_t i = 0; i < n; i++) {
        cs[i].call = &calls[i];
        strbuf_init(&cs[i].resp);
        if (!calls[i].url) {
            call_fail(&calls[i], "%s", "no url");
            cs[i].done = true;
            continue;
        }
        cs[i].easy = easy_get(t);
        if (!cs[i].easy) {
            call_fail(&calls[i], "%s", "cannot create curl handle");
            cs[i].done = true;
            continue;
        }
        if (!setup_easy(&cs[i])) {
            cs[i].done = true;
            continue;
        }
        if (curl_multi_add_handle(t->multi, cs[i].easy) != CURLM_OK) {
            call_fail(&calls[i], "%s", "cannot add curl handle");
            cs[i].done = true;
            continue;
        }
        active++;
    }
    int running = 0;
    while (active > 0) {
        CURLMcode mc = curl_multi_perform(t->multi, &running);
        if (mc != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(t->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            call_state *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (!s || s->done)
                continue;
            CURLcode rc = msg->data.result;
            finish_call(s, rc);
            curl_multi_remove_handle(t->multi, s->easy);
            s->done = true;
            active--;
        }
        if (active == 0)
            break;
        int wait_ms = 1000;
        if (cut_at_ms) {
            int64_t cut = atomic_load(cut_at_ms), now = now_ms();
            if (cut > 0 && now >= cut) {
                for (size_t i = 0; i < n; i++)
                    if (cs[i].easy && !cs[i].done) {
                        curl_multi_remove_handle(t->multi, cs[i].easy);
                        call_fail(&calls[i], "%s", "cut short (the caller is stopping)");
                        cs[i].done = true;
                    }
                break;
            }
            wait_ms = cut > 0 && cut - now < 100 ? (int)(cut - now) : 100;
        }
        if (curl_multi_poll(t->multi, NULL, 0, wait_ms, NULL) != CURLM_OK)
            break;
    }
    bool all_ok = true;
    for (size_t i = 0; i < n; i++) {
        if (cs[i].easy) {
            if (!cs[i].done) {
                curl_multi_remove_handle(t->multi, cs[i].easy);
                call_fail(&calls[i], "%s", "curl multi loop failed");
            }
            /* These point into the caller's struct and this call's state:
             * unhook them before the handle goes back to the pool. */
            curl_easy_setopt(cs[i].easy, CURLOPT_ERRORBUFFER, NULL);
            curl_easy_setopt(cs[i].easy, CURLOPT_POSTFIELDS, NULL);
            curl_easy_setopt(cs[i].easy, CURLOPT_WRITEDATA, NULL);
            easy_put(t, cs[i].easy);
        }
        strbuf_free(&cs[i].resp);
        free(cs[i].body_text);
        if (calls[i].status == 0)
            all_ok = false;
    }
    free(cs);
    return all_ok;
}

bool httpc_request(httpc_call *call)
{
    return httpc_perform(call, 1);
}

void httpc_call_clear(httpc_call *c)
{
    json_decref(c->response);
    c->response = NULL;
    free(c->raw);
    c->raw = NULL;
    c->raw_len = 0;
    c->status = 0;
    c->error[0] = '\0';
    c->too_large = false;
}

char *httpc_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    char *out = xmalloc(len * 3 + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}
