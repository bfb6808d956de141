/*
 * harness.c - throwaway cluster for the integration tests, HTTP calls
 * (libcurl: the tests need raw bodies, headers and malformed requests, which
 * common/httpc does not offer) and SQL checks (common/pg.h).
 *
 * Life of the cluster:
 *   1. h_cluster_setup (unchecked fixture, parent process): mkdtemp a
 *      directory under /tmp, pick a free base port, `scripts/cluster up`.
 *      A failed start dumps the logs, purges and exits 1.
 *   2. tests run in forked children; h_test_setup restarts any agent a test
 *      killed, h_test_teardown checks pg_prepared_xacts is empty everywhere.
 *   3. h_cluster_stop (main, or atexit, or a signal): `down`, scan the daemon
 *      logs for sanitizer reports, dump logs on failure, `down --purge`.
 *      A signal only forks a detached `down --purge` (async-signal-safe) and
 *      exits: meson kills the test's process group half a second later.
 * Only the process that ran step 1 (g_owner) ever runs step 3.
 */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "log.h"
#include "pg.h"
#include "util.h"

static pid_t g_owner;          /* pid that started the cluster; 0 = none */
static bool g_started, g_stopped;
static char g_dir[64];
static char g_script[4096];
static int g_base_port;
static char g_coord_url[64];
static char g_agent_url[H_PARTICIPANTS + 1][64];
static char g_conninfo[H_PARTICIPANTS + 1][160];
/* Prebuilt argv for the signal path (no allocation there). */
static char *g_purge_argv[8];
static char g_bash[] = "/bin/bash";

/* ---- processes ------------------------------------------------------------ */

/* Run argv (argv[0] is a path), wait, return the exit status (or 128+signal). */
static int run_argv(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return 127;
    }
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return 127;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The marker of a component started with test-only arguments ("start NAME
 * -- ARGS"): h_test_setup restarts it with the defaults, so that a test that
 * failed before restoring it does not leave the next tests a different
 * agent. A file, because every test runs in its own forked process. */
static char *custom_marker(const char *name)
{
    return xasprintf("%s/%s.custom-args", g_dir, name);
}

int h_cluster(const char *arg, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = g_bash;
    argv[n++] = g_script;
    argv[n++] = (char *)"--dir";
    argv[n++] = g_dir;
    int first = n;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    if (n > first + 1 && strcmp(argv[first], "start") == 0) {
        bool custom = false;
        for (int i = first + 2; i < n && !custom; i++)
            custom = strcmp(argv[i], "--") == 0;
        char *marker = custom_marker(argv[first + 1]);
        if (custom) {
            FILE *f = fopen(marker, "w");
            if (f)
                fclose(f);
        } else {
            (void)unlink(marker);
        }
        free(marker);
    }
    return run_argv(argv);
}

/* TERM/INT/HUP (meson's timeout, ^C) and a crash of the parent (a sanitizer
 * report aborts; SEGV, BUS): atexit handlers do not run, so the purge is
 * started here, in its own session and away from meson's pipes. A crash is
 * then re-raised, so that it reads as the crash it was. */
static void on_signal(int sig)
{
    if (g_owner == getpid() && g_started && !g_stopped) {
        g_stopped = true;
        pid_t pid = fork();
        if (pid == 0) {
            setsid(); /* survive meson's kill of our process group */
            int nul = open("/dev/null", O_RDWR);
            if (nul >= 0) {
                dup2(nul, 0);
                dup2(nul, 1);
                dup2(nul, 2);
            }
            execv(g_bash, g_purge_argv);
            _exit(127);
        }
    }
    if (sig == SIGABRT || sig == SIGSEGV || sig == SIGBUS) {
        /* the handler runs with sig blocked: unblock it, or raise() would
         * only leave it pending and _exit below would hide the crash */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
    }
    _exit(128 + sig);
}

static void at_exit(void)
{
    if (g_owner == getpid())
        (void)h_cluster_stop(true);
}

/* ---- logs ------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void dump_tail(const char *path, int lines)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) {
        fprintf(stderr, "----- %s: not found -----\n", path);
        return;
    }
    const char *p = buf + len;
    int seen = 0;
    while (p > buf) {
        if (p[-1] == '\n' && ++seen > lines)
            break;
        p--;
    }
    fprintf(stderr, "----- last %d lines of %s -----\n%s----- end of %s -----\n", lines, path, p,
            path);
    free(buf);
}

bool h_file_contains(const char *rel, const char *needle)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
    size_t len;
    char *buf = read_file(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    bool found = memmem(buf, len, needle, strlen(needle)) != NULL; /* binary files too */
    free(buf);
    return found;
}

size_t h_log_count(const char *name, const char *needle)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.log", g_dir, name);
    size_t len, n = 0;
    char *buf = read_file(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    size_t nl = strlen(needle);
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle, nl)); p += nl)
        n++;
    free(buf);
    return n;
}

bool h_log_contains(const char *name, const char *needle)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "%s.log", name);
    return h_file_contains(rel, needle);
}

/* True if the daemon log holds a sanitizer report. */
static bool log_has_sanitizer_report(const char *path)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf)
        return false;
    bool bad = strstr(buf, "ERROR: AddressSanitizer") || strstr(buf, "ERROR: LeakSanitizer") ||
               strstr(buf, "runtime error:");
    free(buf);
    return bad;
}

static void daemon_logs(char paths[][128], int *n)
{
    *n = 0;
    snprintf(paths[(*n)++], 128, "%s/coordinator.log", g_dir);
    for (int i = 1; i <= H_PARTICIPANTS; i++)
        snprintf(paths[(*n)++], 128, "%s/agent%d.log", g_dir, i);
}

static void dump_all_logs(void)
{
    char paths[H_PARTICIPANTS + 1][128];
    int n;
    daemon_logs(paths, &n);
    for (int k = 0; k < n; k++)
        dump_tail(paths[k], 150);
    for (int i = 1; i <= H_PARTICIPANTS; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/pg%d/postgres.log", g_dir, i);
        dump_tail(p, 40);
    }
}

/* ---- cluster ------------------------------------------------------------------ */

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool open = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return open;
}

/* First base port (from start, step 20, below 7800) whose 1 + 2N ports are all free. */
static int pick_base_port(int start)
{
    for (int base = start; base + 20 <= 7800; base += 20) {
        bool busy = port_open(base);
        for (int i = 1; i <= H_PARTICIPANTS && !busy; i++)
            busy = port_open(base + i) || port_open(base + 10 + i);
        if (!busy)
            return base;
        fprintf(stderr, "harness: base port %d is busy, trying the next one\n", base);
    }
    return 0;
}

void h_cluster_setup(void)
{
    if (g_started)
        return;
    log_init("txcoord-it", LOG_WARN);
    const char *root = getenv("TXCOORD_SOURCE_ROOT");
    if (!root || !*root) {
        fprintf(stderr, "harness: TXCOORD_SOURCE_ROOT is not set (run through meson test)\n");
        exit(1);
    }
    snprintf(g_script, sizeof(g_script), "%s/scripts/cluster", root);
    const char *bp = getenv("TXCOORD_IT_BASE_PORT");
    g_base_port = pick_base_port(bp && *bp ? atoi(bp) : 7700);
    if (g_base_port == 0) {
        fprintf(stderr, "harness: no free base port in 7700..7799\n");
        exit(1);
    }
    snprintf(g_dir, sizeof(g_dir), "/tmp/txc-it-XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(g_coord_url, sizeof(g_coord_url), "http://127.0.0.1:%d", g_base_port);
    for (int i = 1; i <= H_PARTICIPANTS; i++) {
        snprintf(g_agent_url[i], sizeof(g_agent_url[i]), "http://127.0.0.1:%d", g_base_port + i);
        snprintf(g_conninfo[i], sizeof(g_conninfo[i]),
                 "host=127.0.0.1 port=%d dbname=txdemo user=postgres", g_base_port + 10 + i);
    }
    int k = 0;
    g_purge_argv[k++] = g_bash;
    g_purge_argv[k++] = g_script;
    g_purge_argv[k++] = (char *)"--dir";
    g_purge_argv[k++] = g_dir;
    g_purge_argv[k++] = (char *)"down";
    g_purge_argv[k++] = (char *)"--purge";
    g_purge_argv[k] = NULL;

    curl_global_init(CURL_GLOBAL_ALL);
    g_owner = getpid();
    g_started = true;
    atexit(at_exit);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    char port[16];
    snprintf(port, sizeof(port), "%d", g_base_port);
    fprintf(stderr, "harness: starting cluster in %s on base port %d\n", g_dir, g_base_port);
    setenv("CLUSTER_WAIT_S", "120", 0);
    if (h_cluster("up", "--base-port", port, "--participants", "3", NULL) != 0) {
        fprintf(stderr, "harness: scripts/cluster up failed\n");
        exit(1); /* at_exit dumps the logs and purges */
    }
}

void h_cluster_teardown(void) {}

bool h_cluster_stop(bool failed)
{
    if (!g_started || g_stopped || g_owner != getpid())
        return true;
    g_stopped = true;
    (void)h_cluster("down", NULL);
    char paths[H_PARTICIPANTS + 1][128];
    int n;
    daemon_logs(paths, &n);
    bool clean = true;
    for (int k = 0; k < n; k++) {
        if (log_has_sanitizer_report(paths[k])) {
            fprintf(stderr, "harness: sanitizer report in %s\n", paths[k]);
            clean = false;
        }
    }
    if (failed || !clean)
        dump_all_logs();
    const char *keep = getenv("TXCOORD_KEEP_CLUSTER");
    if (keep && strcmp(keep, "1") == 0)
        fprintf(stderr, "harness: TXCOORD_KEEP_CLUSTER=1: cluster data left in %s\n", g_dir);
    else
        (void)h_cluster("down", "--purge", NULL);
    curl_global_cleanup();
    return clean;
}

TCase *h_tcase(const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, h_cluster_setup, h_cluster_teardown);
    tcase_add_checked_fixture(tc, h_test_setup, h_test_teardown);
    tcase_set_timeout(tc, timeout_s);
    return tc;
}

const char *h_coord_url(void) { return g_coord_url; }
const char *h_agent_url(int i) { return g_agent_url[i]; }
const char *h_conninfo(int i) { return g_conninfo[i]; }

/* ---- HTTP ------------------------------------------------------------------------ */

static __thread CURL *tl_curl;

void h_thread_done(void)
{
    if (tl_curl) {
        curl_easy_cleanup(tl_curl);
        tl_curl = NULL;
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    h_resp *r = ud;
    size_t n = size * nmemb;
    if (r->len + n + 1 > r->cap) { /* doubling: a 60 MB answer is not copied per chunk */
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->body = xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0)
        return;
    const char *v = line + nl;
    size_t vl = n - nl;
    while (vl > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    snprintf(out, outlen, "%.*s", (int)vl, v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    h_resp *r = ud;
    size_t n = size * nmemb;
    header_value(data, n, "Location:", r->location, sizeof(r->location));
    header_value(data, n, "Content-Type:", r->content_type, sizeof(r->content_type));
    return n;
}

h_resp h_http(const char *method, const char *url, const char *body, size_t len)
{
    h_resp r = {0};
    r.body = xcalloc(1, 1);
    r.cap = 1;
    if (!tl_curl)
        tl_curl = curl_easy_init();
    else
        curl_easy_reset(tl_curl);
    CURL *c = tl_curl;
    ck_assert_msg(c != NULL, "curl_easy_init failed");
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* loopback only: never an http_proxy */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    } else {
        r.status = 0;
        snprintf(r.error, sizeof(r.error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    /* The handle is reused (keep-alive) but must not point at our stack. */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (r.len > 0)
        r.json = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
    return r;
}

h_resp h_req(const char *method, const char *path, json_t *body)
{
    char *url = xasprintf("%s%s", g_coord_url, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    h_resp r = h_http(method, url, text, text ? strlen(text) : 0);
    free(text);
    free(url);
    return r;
}

h_resp h_get(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return h_req("GET", path, NULL);
}

void h_resp_clear(h_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

const char *h_str(const json_t *obj, const char *key)
{
    const char *s = obj ? json_string_value(json_object_get(obj, key)) : NULL;
    return s ? s : "";
}

const char *h_err_code(const h_resp *r)
{
    return h_str(r->json ? json_object_get(r->json, "error") : NULL, "code");
}

const char *h_err_sqlstate(const h_resp *r)
{
    return h_str(r->json ? json_object_get(r->json, "error") : NULL, "sqlstate");
}

const char *h_desc(const h_resp *r)
{
    static __thread char buf[1200];
    if (r->status == 0)
        snprintf(buf, sizeof(buf), "transport error: %s", r->error);
    else
        snprintf(buf, sizeof(buf), "HTTP %ld %.1000s", r->status, r->body ? r->body : "");
    return buf;
}

char *h_begin(void)
{
    return h_begin_timeout(30000);
}

char *h_begin_timeout(int timeout_ms)
{
    h_resp r = h_req("POST", "/v1/transactions", json_pack("{s:s,s:i}", "protocol", "2pc",
                                                          "timeout_ms", timeout_ms));
    ck_assert_msg(r.status == 201, "begin: %s", h_desc(&r));
    const char *gid = h_str(r.json, "gid");
    ck_assert_msg(*gid, "begin: no gid in %s", h_desc(&r));
    char *out = xstrdup(gid);
    h_resp_clear(&r);
    return out;
}

h_resp h_stmt(const char *gid, const char *participant, const char *sql, json_t *params)
{
    return h_stmt_seq(gid, participant, sql, params, 0);
}

h_resp h_stmt_seq(const char *gid, const char *participant, const char *sql, json_t *params,
                  int seq)
{
    json_t *body = json_pack("{s:s,s:s}", "participant", participant, "sql", sql);
    if (params)
        json_object_set_new(body, "params", params);
    if (seq > 0)
        json_object_set_new(body, "seq", json_integer(seq));
    char *path = xasprintf("/v1/transactions/%s/statements", gid);
    h_resp r = h_req("POST", path, body);
    free(path);
    return r;
}

void h_stmt_ok(const char *gid, const char *participant, const char *sql, json_t *params)
{
    h_resp r = h_stmt(gid, participant, sql, params);
    ck_assert_msg(r.status == 200, "%s on %s (%s): %s", sql, participant, gid, h_desc(&r));
    h_resp_clear(&r);
}

static h_resp finish(const char *gid, const char *verb)
{
    char *path = xasprintf("/v1/transactions/%s/%s", gid, verb);
    h_resp r = h_req("POST", path, NULL);
    free(path);
    return r;
}

h_resp h_commit(const char *gid) { return finish(gid, "commit"); }
h_resp h_rollback(const char *gid) { return finish(gid, "rollback"); }

void h_discard(char *gid)
{
    h_resp r = h_rollback(gid);
    h_resp_clear(&r);
    free(gid);
}

void h_commit_ok(char *gid, const char *what)
{
    h_resp r = h_commit(gid);
    H_EXPECT(r, 200, what);
    h_resp_clear(&r);
    free(gid);
}

/* ---- fixtures ------------------------------------------------------------------- */

static bool healthy(const char *base)
{
    char *url = xasprintf("%s/healthz", base);
    h_resp r = h_http("GET", url, NULL, 0);
    bool ok = r.status == 200;
    h_resp_clear(&r);
    free(url);
    return ok;
}

/* A test that failed between `cluster pause` and `resume` leaves its
 * component stopped (SIGSTOP): every later /healthz would wait out the
 * client's whole timeout, and the next tests would fail for it. Resume it. */
static void resume_if_stopped(const char *name)
{
    char *pidfile = xasprintf("%s/%s.pid", g_dir, name);
    FILE *f = fopen(pidfile, "r");
    free(pidfile);
    int pid = 0;
    if (!f)
        return;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0)
        return;
    char path[64], stat[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return;
    size_t got = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[got] = '\0';
    const char *rp = strrchr(stat, ')'); /* the command name may hold anything */
    if (rp && rp[1] == ' ' && rp[2] == 'T') {
        fprintf(stderr, "harness: %s (pid %d) is stopped, left by an earlier test: resuming it\n",
                name, pid);
        kill(pid, SIGCONT);
    }
}

static void ensure_up(const char *name, const char *base)
{
    resume_if_stopped(name);
    char *marker = custom_marker(name);
    bool custom = access(marker, F_OK) == 0;
    free(marker);
    if (custom) {
        fprintf(stderr, "harness: %s still runs with an earlier test's arguments: restarting it "
                "with the defaults\n", name);
        (void)h_cluster("stop", name, NULL);
        (void)h_cluster("start", name, NULL); /* removes the marker */
    }
    if (healthy(base))
        return;
    fprintf(stderr, "harness: %s does not answer /healthz: (re)starting it\n", name);
    (void)h_cluster("start", name, NULL);
    for (int k = 0; k < 300 && !healthy(base); k++)
        usleep(100 * 1000);
    ck_assert_msg(healthy(base), "%s is not healthy at %s", name, base);
}

void h_test_setup(void)
{
    ensure_up("coordinator", g_coord_url);
    for (int i = 1; i <= H_PARTICIPANTS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "agent%d", i);
        ensure_up(name, g_agent_url[i]);
    }
}

void h_test_teardown(void)
{
    long long left = 0;
    for (int k = 0; k < 200; k++) { /* 20 s: phase 2 may finish after the answer */
        left = 0;
        for (int i = 1; i <= H_PARTICIPANTS; i++)
            left += h_prepared_count(i);
        if (left == 0)
            break;
        usleep(100 * 1000);
    }
    if (left != 0) {
        for (int i = 1; i <= H_PARTICIPANTS; i++) {
            PGconn *c = h_pg(i);
            pg_res r;
            if (pg_exec(c, "SELECT string_agg(gid, ', ') FROM pg_prepared_xacts", 0, NULL, &r) &&
                !PQgetisnull(r.res, 0, 0))
                fprintf(stderr, "harness: pg%d still prepared: %s\n", i, PQgetvalue(r.res, 0, 0));
            pg_res_clear(&r);
            PQfinish(c);
        }
    }
    h_thread_done();
    ck_assert_msg(left == 0, "%lld branch(es) left in pg_prepared_xacts after the test", left);
}

/* ---- SQL ---------------------------------------------------------------------------- */

PGconn *h_pg(int i)
{
    ck_assert_msg(i >= 1 && i <= H_PARTICIPANTS, "no participant %d", i);
    PGconn *c = pg_connect(g_conninfo[i], "it");
    ck_assert_msg(c != NULL, "cannot connect to pg%d (%s)", i, g_conninfo[i]);
    return c;
}

long long h_conn_ll(PGconn *c, const char *sql)
{
    pg_res r;
    bool ok = pg_exec(c, sql, 0, NULL, &r);
    ck_assert_msg(ok, "%s: %s %s", sql, r.sqlstate, r.message);
    ck_assert_msg(PQntuples(r.res) == 1 && !PQgetisnull(r.res, 0, 0), "%s: expected one value",
                  sql);
    long long v = strtoll(PQgetvalue(r.res, 0, 0), NULL, 10);
    pg_res_clear(&r);
    return v;
}

long long h_sql_ll(int i, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGconn *c = h_pg(i);
    long long v = h_conn_ll(c, sql);
    PQfinish(c);
    return v;
}

void h_sql(int i, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGconn *c = h_pg(i);
    pg_res r;
    bool ok = pg_exec(c, sql, 0, NULL, &r);
    ck_assert_msg(ok, "pg%d: %s: %s %s", i, sql, r.sqlstate, r.message);
    pg_res_clear(&r);
    PQfinish(c);
}

long long h_balance(int i, int id)
{
    return h_sql_ll(i, "SELECT balance FROM accounts WHERE id = %d", id);
}

void h_set_balance(int i, int id, long long balance)
{
    h_sql(i,
          "INSERT INTO accounts (id, balance) VALUES (%d, %lld) "
          "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance",
          id, balance);
}

long long h_prepared_count(int i)
{
    return h_sql_ll(i, "SELECT count(*) FROM pg_prepared_xacts");
}

long long h_lock_waiters(int i, long long want)
{
    long long n = 0;
    for (int k = 0; k < 400; k++) {
        n = h_sql_ll(i, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                        "LIKE 'txagent pg%d %%' AND wait_event_type = 'Lock'", i);
        if (n >= want)
            break;
        usleep(50 * 1000);
    }
    return n;
}

long long h_marker_count(int i, const char *transfer_id)
{
    PGconn *c = h_pg(i);
    const char *params[1] = {transfer_id};
    pg_res r;
    bool ok = pg_exec(c, "SELECT count(*) FROM transfers WHERE id = $1", 1, params, &r);
    ck_assert_msg(ok, "pg%d: marker count: %s", i, r.message);
    long long v = strtoll(PQgetvalue(r.res, 0, 0), NULL, 10);
    pg_res_clear(&r);
    PQfinish(c);
    return v;
}
