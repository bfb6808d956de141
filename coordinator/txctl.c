/*
 * txctl.c - command-line client of txcoord's REST API.
 *
 *   txctl [--url URL] [--token-file FILE] [--call-timeout-ms N] COMMAND, COMMAND one of
 *     begin [--protocol 2pc|3pc] [--timeout-ms N] [3PC options]
 *     exec GID PARTICIPANT SQL [PARAM...]
 *     commit GID | rollback GID | status GID | list
 *     participants | outcome GID
 *     in-doubt | resolve GID commit|abort
 *
 * Invariants: prints the coordinator's JSON answer pretty on stdout (list
 * and in-doubt: every page of it, as one {"transactions":[...]}); exits
 * 0 on a 2xx answer, 1 on any other answer of the coordinator's, 2 on bad
 * usage, 3 when no answer came (transport error or timeout, on stderr), the
 * answer is not the coordinator's (not JSON: a proxy's error page), or a 3PC
 * commit's outcome is not known yet (409 precommitting): the outcome of a
 * commit is then unknown; `txctl outcome GID` tells it. URL (or unix:PATH)
 * defaults to $TXCOORD_URL, then http://127.0.0.1:7400; the token
 * file (auth.h) to $TXCOORD_TOKEN_FILE, then none. A PARAM
 * of exactly \N is sent as SQL NULL, every other PARAM as a string.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "httpc.h"
#include "jsonutil.h"
#include "log.h"
#include "util.h"

#define DEFAULT_URL "http://127.0.0.1:7400"
#define DEFAULT_CALL_TIMEOUT_MS 120000
#define EXIT_NO_ANSWER 3
#define LIST_PAGE 1000 /* transactions asked for per call by list and in-doubt */

static long call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: txctl [--url URL] [--token-file FILE] [--call-timeout-ms N] COMMAND\n"
            "commands:\n"
            "  begin [--protocol 2pc|3pc] [--timeout-ms N]\n"
            "        [--cancommit-timeout-ms N] [--precommit-timeout-ms N]\n"
            "        [--uncertain-timeout-ms N] [--termination protocol|timeout|blocking]\n"
            "                                            start a transaction (3PC options\n"
            "                                            with --protocol 3pc only)\n"
            "  exec GID PARTICIPANT SQL [PARAM...]       run a statement (\\N = NULL)\n"
            "  commit GID                                commit\n"
            "  rollback GID                              roll back\n"
            "  status GID                                show a transaction\n"
            "  list                                      unfinished transactions\n"
            "  participants                              configured participants\n"
            "  outcome GID                               the outcome agents see\n"
            "  in-doubt                                  decided but unfinished transactions,\n"
            "                                            per branch: attempts, last error, age\n"
            "  resolve GID commit|abort                  operator's heuristic decision for a\n"
            "                                            participant lost for good (logged)\n"
            "URL (http://HOST:PORT, or unix:PATH for the coordinator's --listen-unix\n"
            "socket) defaults to $TXCOORD_URL or " DEFAULT_URL ".\n"
            "FILE (the cluster's shared secret, sent as Authorization: Bearer) defaults to\n"
            "$TXCOORD_TOKEN_FILE; without either no token is sent.\n"
            "N bounds each call (default %d ms; a statement that runs longer is cut off\n"
            "here, not at the coordinator).\n"
            "Exit: 0 a 2xx answer, 1 any other answer, 2 bad usage, 3 no answer, one\n"
            "that is not the coordinator's, or a 3PC commit still deciding (the outcome\n"
            "of a commit is then unknown: ask with outcome GID).\n",
            DEFAULT_CALL_TIMEOUT_MS);
}

/* A global option written after the command: say where it goes. */
static void misplaced_global(const char *arg)
{
    static const char *const globals[] = {"--url", "--token-file", "--call-timeout-ms"};
    for (size_t k = 0; k < ARRAY_LEN(globals); k++) {
        size_t n = strlen(globals[k]);
        if (strncmp(arg, globals[k], n) == 0 && (arg[n] == '\0' || arg[n] == '='))
            fprintf(stderr, "txctl: %s goes before the command (txctl %s ... COMMAND)\n",
                    globals[k], globals[k]);
    }
}

static int bad_usage(const char *msg)
{
    fprintf(stderr, "txctl: %s\n", msg);
    usage(stderr);
    return 2;
}

/* Print the answer of a call made (stdout, or stderr when there is none
 * that is the coordinator's); returns the exit code. */
static int report(httpc_call *c, const char *method, const char *url)
{
    int rc = EXIT_NO_ANSWER;
    if (c->raw) { /* JSON, or JSON with a number jansson cannot hold; else not ours */
        json_error_t jerr;
        json_t *check = json_loadb(c->raw, c->raw_len, JSON_DECODE_ANY, &jerr);
        bool is_json = check || json_error_code(&jerr) == json_error_numeric_overflow;
        json_decref(check);
        if (!is_json) {
            free(c->raw);
            c->raw = NULL;
        }
    }
    if (c->status == 0) {
        fprintf(stderr, "txctl: %s %s: %s\n", method, url, c->error);
    } else if (c->raw || c->response) {
        char *text = c->raw ? json_text_reindent(c->raw, c->raw_len, 2)
                            : json_dump_text_indent(c->response, 2);
        printf("%s\n", text);
        free(text);
        rc = (c->status >= 200 && c->status < 300) ? 0 : 1;
        /* a 3PC commit whose outcome is not known yet (409, precommitting):
         * no answer as to the outcome either */
        json_t *err = c->response ? json_object_get(c->response, "error") : NULL;
        const char *st = json_string_value(json_object_get(err, "state"));
        if (c->status == 409 && st && strcmp(st, "precommitting") == 0)
            rc = EXIT_NO_ANSWER;
    } else {
        /* not the coordinator's answer (a proxy's timeout page, say): the
         * call may or may not have reached it */
        fprintf(stderr, "txctl: %s %s: HTTP %ld with a body that is not JSON\n", method, url,
                c->status);
    }
    return rc;
}

/* Perform one call and print its answer; returns the exit code. */
static int run(const char *method, const char *base, const char *path, json_t *body)
{
    httpc_call c;
    memset(&c, 0, sizeof(c));
    char *url = xasprintf("%s%s", base, path);
    c.method = method;
    c.url = url;
    c.body = body;
    c.timeout_ms = call_timeout_ms;
    /* A 200 (a statement's rows among them) is printed as received, only
     * laid out: parsed, a jsonb number beyond a double or a 64-bit integer
     * would lose digits or fail to parse at all. */
    c.raw_200 = true;
    (void)httpc_request(&c); /* status checked by report */
    int rc = report(&c, method, url);
    httpc_call_clear(&c);
    json_decref(body);
    free(url);
    return rc;
}

/* list, in-doubt: GET /v1/transactions page after page (the coordinator
 * answers at most LIST_PAGE transactions per call, and says "next_after"
 * while more are left), printed as one {"transactions":[...]}. A page
 * that is not a list ends the command as that answer would (report). */
static int list_all(const char *base, const char *query)
{
    json_t *all = json_array();
    char *after = NULL;
    int rc = 0;
    for (;;) {
        char *esc = after ? httpc_escape(after) : NULL;
        char *url = xasprintf("%s/v1/transactions?limit=%d%s%s%s", base, LIST_PAGE, query,
                              esc ? "&after=" : "", esc ? esc : "");
        free(esc);
        httpc_call c;
        memset(&c, 0, sizeof(c));
        c.method = "GET";
        c.url = url;
        c.timeout_ms = call_timeout_ms;
        (void)httpc_request(&c); /* status checked below */
        json_t *list = c.status == 200 ? json_object_get(c.response, "transactions") : NULL;
        const char *next = json_string_value(json_object_get(c.response, "next_after"));
        bool page = json_is_array(list);
        if (page && next && after && strcmp(next, after) == 0) {
            fprintf(stderr, "txctl: GET %s: the same page again (next_after %s)\n", url, next);
            rc = EXIT_NO_ANSWER;
            page = false;
        } else if (page) {
            json_array_extend(all, list);
            free(after);
            after = next ? xstrdup(next) : NULL;
        } else if (rc == 0) {
            rc = report(&c, "GET", url);
            if (rc == 0) { /* a 2xx without a list: not the coordinator's */
                fprintf(stderr, "txctl: GET %s: the answer holds no transaction list\n", url);
                rc = EXIT_NO_ANSWER;
            }
        }
        httpc_call_clear(&c);
        free(url);
        if (!page || !after)
            break;
    }
    if (rc == 0) {
        json_t *o = json_pack("{s:O}", "transactions", all);
        char *text = json_dump_text_indent(o, 2);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    }
    json_decref(all);
    free(after);
    return rc;
}

/* "/v1/transactions/<escaped gid><suffix>" (caller frees). */
static char *txn_path(const char *prefix, const char *gid, const char *suffix)
{
    char *esc = httpc_escape(gid);
    char *p = xasprintf("%s%s%s", prefix, esc, suffix);
    free(esc);
    return p;
}

static int one_gid(int argc, char **argv, const char *method, const char *base,
                   const char *prefix, const char *suffix)
{
    if (argc != 2) {
        for (int k = 2; k < argc; k++)
            misplaced_global(argv[k]);
        return bad_usage("expected exactly one GID");
    }
    char *path = txn_path(prefix, argv[1], suffix);
    int rc = run(method, base, path, strcmp(method, "POST") == 0 ? json_object() : NULL);
    free(path);
    return rc;
}

/* An argument that goes into a JSON string must be UTF-8 (jansson refuses
 * anything else): say which one it is instead of sending a request without
 * it. */
static bool args_utf8(int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++) {
        if (!utf8_valid(argv[i], strlen(argv[i]))) {
            char *shown = utf8_lossy_dup(argv[i]);
            fprintf(stderr, "txctl: argument '%s' is not valid UTF-8 (shown with '?' for its "
                    "bytes over 0x7f): convert it, e.g. with iconv\n", shown);
            free(shown);
            return false;
        }
    }
    return true;
}

static int cmd_begin(int argc, char **argv, const char *base)
{
    /* --option -> body field; integers unless noted */
    static const struct {
        const char *opt, *field;
        bool integer;
    } opts[] = {
        {"--protocol", "protocol", false},
        {"--timeout-ms", "timeout_ms", true},
        {"--cancommit-timeout-ms", "cancommit_timeout_ms", true},
        {"--precommit-timeout-ms", "precommit_timeout_ms", true},
        {"--uncertain-timeout-ms", "uncertain_timeout_ms", true},
        {"--termination", "termination", false},
    };
    json_t *body = json_object();
    for (int i = 1; i < argc; i++) {
        /* --opt VALUE or --opt=VALUE */
        const char *eq = strchr(argv[i], '=');
        size_t nlen = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        size_t k = 0;
        while (k < ARRAY_LEN(opts) &&
               (strlen(opts[k].opt) != nlen || strncmp(argv[i], opts[k].opt, nlen) != 0))
            k++;
        if (k == ARRAY_LEN(opts) || (!eq && i + 1 >= argc)) {
            json_decref(body);
            if (k < ARRAY_LEN(opts))
                fprintf(stderr, "txctl: %s requires a value\n", opts[k].opt);
            else
                misplaced_global(argv[i]);
            return bad_usage("begin takes --protocol P, --timeout-ms N and the 3PC options");
        }
        const char *val = eq ? eq + 1 : argv[++i];
        if (!args_utf8(1, (char *[]){(char *)val}, 0)) {
            json_decref(body);
            return 2;
        }
        if (opts[k].integer) {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (end == val || *end || v <= 0 || errno == ERANGE) {
                json_decref(body);
                fprintf(stderr, "txctl: %s needs a positive integer\n", opts[k].opt);
                return 2;
            }
            json_object_set_new(body, opts[k].field, json_integer(v));
        } else {
            json_object_set_new(body, opts[k].field, json_string(val));
        }
    }
    return run("POST", base, "/v1/transactions", body);
}

static int cmd_resolve(int argc, char **argv, const char *base)
{
    if (argc != 3 || (strcmp(argv[2], "commit") != 0 && strcmp(argv[2], "abort") != 0))
        return bad_usage("resolve needs GID commit|abort");
    char *path = txn_path("/v1/transactions/", argv[1], "/resolve");
    int rc = run("POST", base, path, json_pack("{s:s}", "outcome", argv[2]));
    free(path);
    return rc;
}

static int cmd_exec(int argc, char **argv, const char *base)
{
    if (argc < 4)
        return bad_usage("exec needs GID PARTICIPANT SQL [PARAM...]");
    if (!args_utf8(argc, argv, 2))
        return 2;
    json_t *params = json_array();
    for (int i = 4; i < argc; i++)
        json_array_append_new(params,
                              strcmp(argv[i], "\\N") == 0 ? json_null() : json_string(argv[i]));
    json_t *body = json_pack("{s:s, s:s, s:o}", "participant", argv[2], "sql", argv[3], "params",
                             params);
    char *path = txn_path("/v1/transactions/", argv[1], "/statements");
    int rc = run("POST", base, path, body);
    free(path);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = getenv("TXCOORD_URL");
    if (!base || !*base)
        base = DEFAULT_URL;
    const char *token_file = getenv("TXCOORD_TOKEN_FILE");
    int i = 1;
    for (; i < argc && (strncmp(argv[i], "--", 2) == 0 || strcmp(argv[i], "-h") == 0); i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char *eq = strchr(argv[i], '=');
        size_t nlen = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        const char *which = strncmp(argv[i], "--url", nlen) == 0 && nlen == 5 ? "--url"
                            : nlen == 12 && strncmp(argv[i], "--token-file", nlen) == 0
                                ? "--token-file"
                            : nlen == 17 && strncmp(argv[i], "--call-timeout-ms", nlen) == 0
                                ? "--call-timeout-ms"
                                : NULL;
        if (!which)
            return bad_usage("unknown option");
        if (!val) {
            fprintf(stderr, "txctl: %s requires a value\n", which);
            return 2;
        }
        if (!eq)
            i++;
        if (!*val) {
            fprintf(stderr, "txctl: %s requires a value\n", which);
            return 2;
        }
        if (which[2] == 'u') {
            base = val;
        } else if (which[2] == 't') {
            token_file = val;
        } else {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (end == val || *end || v <= 0 || errno == ERANGE) {
                fprintf(stderr, "txctl: --call-timeout-ms needs a positive integer\n");
                return 2;
            }
            call_timeout_ms = v;
        }
    }
    log_init("txctl", LOG_WARN);
    if (token_file && *token_file && !auth_load_token_file(token_file))
        return 2;
    if (i >= argc)
        return bad_usage("missing command");
    char url_err[400];
    char *b = httpc_url_normalize(base, url_err, sizeof(url_err));
    if (!b) {
        fprintf(stderr, "txctl: --url: %s\n", url_err);
        return 2;
    }
    httpc_global_init();
    int sub_argc = argc - i;
    char **sub = argv + i;
    const char *cmd = sub[0];
    int rc;
    if (strcmp(cmd, "begin") == 0)
        rc = cmd_begin(sub_argc, sub, b);
    else if (strcmp(cmd, "exec") == 0)
        rc = cmd_exec(sub_argc, sub, b);
    else if (strcmp(cmd, "commit") == 0)
        rc = one_gid(sub_argc, sub, "POST", b, "/v1/transactions/", "/commit");
    else if (strcmp(cmd, "rollback") == 0)
        rc = one_gid(sub_argc, sub, "POST", b, "/v1/transactions/", "/rollback");
    else if (strcmp(cmd, "status") == 0)
        rc = one_gid(sub_argc, sub, "GET", b, "/v1/transactions/", "");
    else if (strcmp(cmd, "outcome") == 0)
        rc = one_gid(sub_argc, sub, "GET", b, "/v1/outcomes/", "");
    else if (strcmp(cmd, "list") == 0 && sub_argc == 1)
        rc = list_all(b, "");
    else if (strcmp(cmd, "in-doubt") == 0 && sub_argc == 1)
        rc = list_all(b, "&state=in-doubt");
    else if (strcmp(cmd, "resolve") == 0)
        rc = cmd_resolve(sub_argc, sub, b);
    else if (strcmp(cmd, "participants") == 0 && sub_argc == 1)
        rc = run("GET", b, "/v1/participants", NULL);
    else {
        for (int k = 1; k < sub_argc; k++)
            misplaced_global(sub[k]);
        rc = bad_usage("unknown command or wrong arguments");
    }
    httpc_global_cleanup();
    free(b);
    return rc;
}
