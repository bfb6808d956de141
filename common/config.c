/*
 * config.c - table-driven command-line parsing ({name, type, default, bounds}).
 *
 * Invariants:
 *   - opts_parse first sets every target from its default (strings are
 *     xstrdup'd, so the caller owns and may free them; lists start empty or
 *     from the comma-separated default), then applies argv left to right.
 *   - A repeated OPT_STRING/OPT_INT/OPT_BOOL keeps the last value; an
 *     OPT_STRING_LIST appends, and the first explicit value drops the default.
 *   - Any error prints exactly one line "<prog>: --<name>: <reason>" to
 *     stderr and returns false; nothing is logged through log.h (logging may
 *     not be initialised yet).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void str_list_free(str_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void str_list_push(str_list *l, const char *s)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof(char *));
    l->items[l->n++] = xstrdup(s);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool opt_error(const char *prog, const char *name, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* One line, one fprintf: "<prog>: --<name>: <reason>". */
static bool opt_error(const char *prog, const char *name, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: --%s: %s\n", prog, name, reason);
    return false;
}

/* Apply one textual value to def's target. is_default: from the table. */
static bool opt_apply(const opt_def *d, const char *val, const char *prog, bool *list_explicit)
{
    switch (d->type) {
    case OPT_STRING: {
        char **t = d->target;
        free(*t);
        *t = xstrdup(val);
        return true;
    }
    case OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(val, &end, 10);
        if (errno == ERANGE || end == val || *end != '\0')
            return opt_error(prog, d->name, "'%s' is not an integer", val);
        if (x < d->min || x > d->max)
            return opt_error(prog, d->name, "%s is out of range [%lld, %lld]", val, d->min,
                             d->max);
        *(long long *)d->target = x;
        return true;
    }
    case OPT_BOOL: {
        bool b;
        if (!parse_bool(val, &b))
            return opt_error(prog, d->name, "'%s' is not a boolean (true/false)", val);
        *(bool *)d->target = b;
        return true;
    }
    case OPT_STRING_LIST: {
        str_list *l = d->target;
        if (list_explicit && !*list_explicit) {
            str_list_free(l);
            *list_explicit = true;
        }
        str_list_push(l, val);
        return true;
    }
    }
    return false;
}

static bool opt_set_default(const opt_def *d, const char *prog)
{
    switch (d->type) {
    case OPT_STRING:
        *(char **)d->target = d->default_value ? xstrdup(d->default_value) : NULL;
        return true;
    case OPT_INT:
        *(long long *)d->target = 0;
        return d->default_value ? opt_apply(d, d->default_value, prog, NULL) : true;
    case OPT_BOOL:
        *(bool *)d->target = false;
        return d->default_value ? opt_apply(d, d->default_value, prog, NULL) : true;
    case OPT_STRING_LIST: {
        str_list *l = d->target;
        l->items = NULL;
        l->n = 0;
        if (d->default_value && *d->default_value) {
            char *copy = xstrdup(d->default_value);
            char *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                str_list_push(l, tok);
            free(copy);
        }
        return true;
    }
    }
    return false;
}

bool opts_parse(const opt_def *defs, size_t n, int argc, char **argv, const char *prog,
                const char *summary)
{
    bool *seen = xcalloc(n ? n : 1, sizeof(bool));
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = opt_set_default(&defs[i], prog);

    for (int a = 1; a < argc && ok; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts_usage(defs, n, prog, summary);
            free(seen);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "%s: '%s': unexpected argument (see --help)\n", prog, arg);
            ok = false;
            break;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_def *d = NULL;
        size_t idx = 0;
        for (size_t i = 0; i < n; i++) {
            if (strlen(defs[i].name) == nlen && strncmp(defs[i].name, name, nlen) == 0) {
                d = &defs[i];
                idx = i;
                break;
            }
        }
        if (!d) {
            fprintf(stderr, "%s: --%.*s: unknown option (see --help)\n", prog, (int)nlen, name);
            ok = false;
            break;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (d->type == OPT_BOOL) {
            val = "true";
        } else if (a + 1 < argc) {
            val = argv[++a];
        } else {
            ok = opt_error(prog, d->name, "requires a value");
            break;
        }
        ok = opt_apply(d, val, prog, &seen[idx]);
        seen[idx] = true;
    }

    for (size_t i = 0; i < n && ok; i++) {
        const opt_def *d = &defs[i];
        if (!d->required || seen[i])
            continue;
        bool has = (d->type == OPT_STRING && *(char **)d->target) ||
                   (d->type == OPT_STRING_LIST && ((str_list *)d->target)->n > 0) ||
                   ((d->type == OPT_INT || d->type == OPT_BOOL) && d->default_value);
        if (!has)
            ok = opt_error(prog, d->name, "required");
    }
    free(seen);
    return ok;
}

void opts_usage(const opt_def *defs, size_t n, const char *prog, const char *summary)
{
    printf("Usage: %s [OPTIONS]\n", prog);
    if (summary && *summary)
        printf("%s\n", summary);
    printf("\nOptions:\n");
    for (size_t i = 0; i < n; i++) {
        const opt_def *d = &defs[i];
        char left[128];
        const char *mv = d->metavar ? d->metavar
                         : d->type == OPT_INT ? "N"
                         : d->type == OPT_BOOL ? NULL
                                               : "VALUE";
        if (mv)
            snprintf(left, sizeof(left), "--%s %s", d->name, mv);
        else
            snprintf(left, sizeof(left), "--%s", d->name);
        printf("  %-28s %s", left, d->help ? d->help : "");
        if (d->type == OPT_STRING_LIST)
            printf(" (repeatable)");
        if (d->required)
            printf(" (required)");
        else if (d->default_value)
            printf(" (default: %s)", d->default_value);
        if (d->type == OPT_INT && (d->min != 0 || d->max != 0))
            printf(" [%lld..%lld]", d->min, d->max);
        printf("\n");
    }
    printf("  %-28s %s\n", "--help", "show this help and exit");
}

bool parse_host_port(const char *s, char **host, int *port)
{
    if (!s)
        return false;
    const char *colon;
    const char *hs = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return false;
        hs = s + 1;
        hlen = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return false;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen)) /* bare IPv6 must be bracketed */
            return false;
    }
    if (hlen == 0)
        return false;
    const char *ps = colon + 1;
    if (*ps == '\0' || strlen(ps) > 5)
        return false;
    long p = 0;
    for (const char *q = ps; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
        p = p * 10 + (*q - '0');
    }
    if (p > 65535)
        return false;
    char *h = xmalloc(hlen + 1);
    memcpy(h, hs, hlen);
    h[hlen] = '\0';
    *host = h;
    *port = (int)p;
    return true;
}
