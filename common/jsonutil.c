/*
 * jsonutil.c - typed, validated field access on jansson objects, and the
 * JSON text every HTTP body of ours is written as.
 *
 * Invariants: getters never touch *out on failure or absence; every failure
 * fills err with one human-readable sentence naming the field; returned
 * pointers are borrowed from obj (no reference taken). json_dump_text writes
 * what json_dumps(JSON_COMPACT) would, byte for byte, except reals: those
 * read back as the same double in at most 17 digits but in as few as 15
 * when that suffices (test_config.c checks both against jansson).
 */
#include "jsonutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/*
 * Look up key and check its type. Returns false (err filled) when required and
 * absent or present with the wrong type; true otherwise, with *v NULL when absent.
 */
static bool field_get(json_t *obj, const char *key, bool required, json_type type,
                      const char *what, json_t **v, char *err, size_t errlen)
{
    *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (*v == NULL) {
        if (required && err && errlen)
            snprintf(err, errlen, "field '%s' is required", key);
        return !required;
    }
    bool ok = json_typeof(*v) == type ||
              (type == JSON_TRUE && json_typeof(*v) == JSON_FALSE); /* JSON_TRUE = boolean */
    if (!ok && err && errlen)
        snprintf(err, errlen, "field '%s' must be %s", key, what);
    return ok;
}

bool json_field_string(json_t *obj, const char *key, bool required, const char **out,
                       char *err, size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_STRING, "a string", &v, err, errlen))
        return false;
    if (v)
        *out = json_string_value(v);
    return true;
}

bool json_field_int(json_t *obj, const char *key, bool required, long long min, long long max,
                    long long *out, char *err, size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_INTEGER, "an integer", &v, err, errlen))
        return false;
    if (!v)
        return true;
    long long x = (long long)json_integer_value(v);
    if (x < min || x > max) {
        if (err && errlen)
            snprintf(err, errlen, "field '%s' must be between %lld and %lld", key, min, max);
        return false;
    }
    *out = x;
    return true;
}

bool json_field_bool(json_t *obj, const char *key, bool required, bool *out, char *err,
                     size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_TRUE, "a boolean", &v, err, errlen))
        return false;
    if (v)
        *out = json_is_true(v);
    return true;
}

bool json_fields_known(json_t *obj, const char *const *known, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        (void)v;
        bool found = false;
        for (size_t i = 0; known[i] && !found; i++)
            found = strcmp(known[i], key) == 0;
        if (!found) {
            /* The key may not be valid UTF-8 for a JSON answer: printable
             * ASCII only, the rest as '?'. */
            char shown[48];
            size_t n = 0;
            for (const char *p = key; *p && n + 1 < sizeof(shown); p++)
                shown[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
            shown[n] = '\0';
            strbuf names = {0};
            for (size_t i = 0; known[i]; i++)
                strbuf_appendf(&names, "%s%s", i ? ", " : "", known[i]);
            snprintf(err, errlen, "unknown field '%s' (known: %s)", shown,
                     names.data ? names.data : "none");
            strbuf_free(&names);
            return false;
        }
    }
    return true;
}

bool json_field_array(json_t *obj, const char *key, bool required, json_t **out, char *err,
                      size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_ARRAY, "an array", &v, err, errlen))
        return false;
    if (v)
        *out = v;
    return true;
}

bool json_field_object(json_t *obj, const char *key, bool required, json_t **out, char *err,
                       size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_OBJECT, "an object", &v, err, errlen))
        return false;
    if (v)
        *out = v;
    return true;
}

/* jansson's rule (utf8.c): shortest forms only, no surrogates, nothing
 * past U+10FFFF; a NUL byte inside len is not valid either. */
bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0)
                return false;
            p++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false; /* a continuation byte, 0xC0/0xC1 (overlong), or past 0xF4 */
        }
        if ((size_t)(end - p) < n)
            return false;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n;
    }
    return true;
}

char *utf8_lossy_dup(const char *s)
{
    char *copy = xstrdup(s);
    if (utf8_valid(copy, strlen(copy)))
        return copy;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return copy;
}

void utf8_trim_partial(char *s)
{
    size_t len = strlen(s);
    /* Walk back over at most 3 continuation bytes to the lead byte of the
     * last character; cut it when fewer bytes follow than it announces. */
    size_t i = len, cont = 0;
    while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (lead >= 0xC0 && cont < need)
        s[i - 1] = '\0';
}

json_t *json_string_lossy(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char *copy = utf8_lossy_dup(s);
    v = json_string(copy);
    free(copy);
    return v;
}

json_t *json_error_body(const char *code, const char *message)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string_lossy(code ? code : "internal"));
    json_object_set_new(err, "message", json_string_lossy(message ? message : ""));
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    return body;
}

size_t json_real_format(double d, char buf[JSON_REAL_BUF])
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, JSON_REAL_BUF, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

void json_text_string(strbuf *sb, const char *s, size_t len)
{
    strbuf_appendn(sb, "\"", 1);
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        strbuf_appendn(sb, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"': strbuf_appendn(sb, "\\\"", 2); break;
        case '\\': strbuf_appendn(sb, "\\\\", 2); break;
        case '\b': strbuf_appendn(sb, "\\b", 2); break;
        case '\f': strbuf_appendn(sb, "\\f", 2); break;
        case '\n': strbuf_appendn(sb, "\\n", 2); break;
        case '\r': strbuf_appendn(sb, "\\r", 2); break;
        case '\t': strbuf_appendn(sb, "\\t", 2); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            strbuf_appendn(sb, esc, 6);
        }
    }
    strbuf_appendn(sb, s + run, len - run);
    strbuf_appendn(sb, "\"", 1);
}

void json_text_string_lossy(strbuf *sb, const char *s, size_t len)
{
    len = strnlen(s, len); /* a NUL ends it, as it ends s for json_string_lossy */
    if (utf8_valid(s, len)) {
        json_text_string(sb, s, len);
        return;
    }
    char *copy = xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    copy[len] = '\0';
    json_text_string(sb, copy, len);
    free(copy);
}

void json_text_real(strbuf *sb, double d)
{
    char buf[JSON_REAL_BUF];
    size_t n = json_real_format(d, buf);
    strbuf_appendn(sb, buf, n);
    if (!memchr(buf, '.', n) && !memchr(buf, 'e', n))
        strbuf_appendn(sb, ".0", 2);
}

/* Before a member at depth: nothing when compact, else newline + indent. */
static void dump_newline(strbuf *sb, int indent, int depth)
{
    if (indent <= 0)
        return;
    strbuf_appendn(sb, "\n", 1);
    for (int i = 0; i < indent * depth; i++)
        strbuf_appendn(sb, " ", 1);
}

/* indent 0: compact (JSON_COMPACT); n > 0: jansson's JSON_INDENT(n) layout. */
static void dump_value(strbuf *sb, const json_t *v, int indent, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *m;
        bool first = true;
        strbuf_appendn(sb, "{", 1);
        json_object_keylen_foreach((json_t *)v, key, klen, m) {
            if (!first)
                strbuf_appendn(sb, ",", 1);
            first = false;
            dump_newline(sb, indent, depth + 1);
            json_text_string(sb, key, klen);
            strbuf_appendn(sb, ": ", indent > 0 ? 2 : 1); /* ":" when compact */
            dump_value(sb, m, indent, depth + 1);
        }
        if (!first)
            dump_newline(sb, indent, depth);
        strbuf_appendn(sb, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        strbuf_appendn(sb, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                strbuf_appendn(sb, ",", 1);
            dump_newline(sb, indent, depth + 1);
            dump_value(sb, json_array_get(v, i), indent, depth + 1);
        }
        if (n > 0)
            dump_newline(sb, indent, depth);
        strbuf_appendn(sb, "]", 1);
        break;
    }
    case JSON_STRING:
        json_text_string(sb, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        strbuf_appendf(sb, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        json_text_real(sb, json_real_value(v));
        break;
    case JSON_TRUE:
        strbuf_appendn(sb, "true", 4);
        break;
    case JSON_FALSE:
        strbuf_appendn(sb, "false", 5);
        break;
    case JSON_NULL:
        strbuf_appendn(sb, "null", 4);
        break;
    }
}

void json_text_value(strbuf *sb, const json_t *v)
{
    dump_value(sb, v, 0, 0);
}

char *json_dump_text(const json_t *v)
{
    return json_dump_text_indent(v, 0);
}

char *json_text_reindent(const char *text, size_t len, int indent)
{
    strbuf sb;
    strbuf_init(&sb);
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '"') { /* a string, escapes and all */
            size_t j = i + 1;
            while (j < len && text[j] != '"')
                j += (text[j] == '\\' && j + 1 < len) ? 2 : 1;
            size_t end = j < len ? j + 1 : len;
            strbuf_appendn(&sb, text + i, end - i);
            i = end - 1;
        } else if (ch == '{' || ch == '[') {
            size_t j = i + 1;
            while (j < len && isspace((unsigned char)text[j]))
                j++;
            strbuf_appendn(&sb, &ch, 1);
            if (j < len && text[j] == (ch == '{' ? '}' : ']')) { /* empty: {} or [] */
                strbuf_appendn(&sb, text + j, 1);
                i = j;
            } else {
                dump_newline(&sb, indent, ++depth);
            }
        } else if (ch == '}' || ch == ']') {
            dump_newline(&sb, indent, depth > 0 ? --depth : 0);
            strbuf_appendn(&sb, &ch, 1);
        } else if (ch == ',') {
            strbuf_appendn(&sb, ",", 1);
            dump_newline(&sb, indent, depth);
        } else if (ch == ':') {
            strbuf_appendn(&sb, ": ", indent > 0 ? 2 : 1);
        } else if (!isspace((unsigned char)ch)) {
            strbuf_appendn(&sb, &ch, 1);
        }
    }
    return strbuf_take(&sb);
}

char *json_dump_text_indent(const json_t *v, int indent)
{
    if (!v)
        return NULL;
    strbuf sb;
    strbuf_init(&sb);
    dump_value(&sb, v, indent, 0);
    return strbuf_take(&sb);
}
