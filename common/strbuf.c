/*
 * strbuf.c - growable NUL-terminated byte buffer.
 *
 * Invariants: when data != NULL, data[len] == '\0' and len < cap; growth is
 * geometric; allocation failures abort (util.h x* allocators).
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(strbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

static void strbuf_reserve(strbuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void strbuf_appendn(strbuf *sb, const void *p, size_t n)
{
    strbuf_reserve(sb, n);
    if (n)
        memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void strbuf_insert(strbuf *sb, size_t at, const void *p, size_t n)
{
    if (at > sb->len)
        at = sb->len;
    strbuf_reserve(sb, n);
    if (sb->len > at)
        memmove(sb->data + at + n, sb->data + at, sb->len - at);
    if (n)
        memcpy(sb->data + at, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void strbuf_append(strbuf *sb, const char *s)
{
    strbuf_appendn(sb, s, strlen(s));
}

void strbuf_appendf(strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        va_end(ap);
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        strbuf_appendn(sb, tmp, (size_t)n);
    } else {
        strbuf_reserve(sb, (size_t)n);
        vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
        sb->len += (size_t)n;
    }
    va_end(ap);
}

void strbuf_reset(strbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

char *strbuf_take(strbuf *sb)
{
    char *p = sb->data ? sb->data : xstrdup("");
    strbuf_init(sb);
    return p;
}

void strbuf_free(strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}
