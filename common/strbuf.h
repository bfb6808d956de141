/*
 * strbuf.h - a growable, always NUL-terminated byte buffer.
 * Ownership: the strbuf owns .data; strbuf_take() hands it to the caller.
 */
#ifndef TX_STRBUF_H
#define TX_STRBUF_H

#include "util.h"

typedef struct {
    char *data; /* NUL-terminated; NULL until first append */
    size_t len;
    size_t cap;
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_append(strbuf *sb, const char *s);
void strbuf_appendn(strbuf *sb, const void *p, size_t n);
/* p[0..n) (not inside sb) put in at offset at (<= len; past it: at the end). */
void strbuf_insert(strbuf *sb, size_t at, const void *p, size_t n);
void strbuf_appendf(strbuf *sb, const char *fmt, ...) PRINTF_LIKE(2, 3);
void strbuf_reset(strbuf *sb);      /* len = 0, keeps memory */
char *strbuf_take(strbuf *sb);      /* caller frees; sb becomes empty */
void strbuf_free(strbuf *sb);

#endif
