/*
 * committed.c - set of committed gids: per epoch of ours, a table of chunks
 * of 65536 seqs, chunk <seq / 65536> holding whether "<coord_id>-<epoch>-<seq>"
 * is committed.
 *
 * Invariants:
 *   - seqs are dense within an epoch (one atomic counter). A chunk is in one
 *     of four forms, each exact (the set never loses nor invents a gid):
 *       EMPTY    nothing committed, no storage;
 *       BITS     a bitmap, 8 KiB, n = bits set;
 *       MISSING  a sorted array of the offsets NOT committed (n of them,
 *                fewer than MISSING_MAX), 2 bytes each;
 *       FULL     every seq committed, no storage.
 *     A BITS chunk becomes MISSING once fewer than MISSING_MAX of its seqs
 *     are left out (the array is then smaller than the bitmap), and MISSING
 *     becomes FULL when its last entry commits. Forms never go back
 *     (committing only removes misses), except that an import ORs into a
 *     bitmap and normalises again.
 *     So the set costs about 32 bytes per 65536 transactions where they all
 *     commit, 2-4 bytes per transaction that did not commit where few did not
 *     (an array is shrunk once half of it is unused),
 *     and one bit per transaction at worst (the old one-bitmap-per-epoch
 *     cost, which grew by ~10 MB a day at 1k tps however the transactions
 *     ended).
 *   - Gids that do not parse as ours (another coord_id: never written by us,
 *     but tolerated on replay) live in a string set.
 *   - One mutex guards everything. add and has are O(1), but O(MISSING_MAX)
 *     for a MISSING chunk (a binary search, and a memmove when one commits).
 *   - committed_export/committed_import round-trip the whole set (the
 *     decision log's 'S' records), so compaction never forgets a commit.
 *     Import also reads the records of the one-bitmap version (hex only).
 */
#include "committed.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <stdio.h>

#include "gid.h"
#include "strbuf.h"
#include "strmap.h"

#define CHUNK_SEQS 65536u
#define CHUNK_BYTES (CHUNK_SEQS / 8)
#define MISSING_MAX (CHUNK_BYTES / 2) /* an array of this many is as large as the bitmap */
#define EXPORT_GIDS_PER_RECORD 1000
#define EXPORT_FULL_RUN 4096 /* FULL chunks per record: the range is two numbers */

/* Beyond this seq a table would be unreasonably large: such gids (never
 * produced by a sane run) go to the string set instead. */
#define BITMAP_MAX_SEQ (1ULL << 34)
#define MAX_CHUNKS (BITMAP_MAX_SEQ / CHUNK_SEQS)

typedef enum { C_EMPTY = 0, C_BITS, C_MISSING, C_FULL } chunk_form;

typedef struct {
    uint8_t form;      /* chunk_form */
    uint32_t n;        /* C_BITS: bits set; C_MISSING: entries */
    uint32_t cap;      /* C_MISSING: entries allocated */
    uint8_t *bits;     /* C_BITS: CHUNK_BYTES, owned */
    uint16_t *missing; /* C_MISSING: sorted offsets, owned */
} chunk;

typedef struct {
    uint64_t epoch;
    chunk *chunks; /* owned, nchunks entries (C_EMPTY past the highest used) */
    size_t nchunks;
} epoch_set;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char our_id[9];
static epoch_set *epochs; /* most recently used first */
static size_t nepochs, capepochs;
static strmap *others;    /* foreign gids, keys owned */
static size_t bytes_held;

void committed_init(const char *coord_id)
{
    pthread_mutex_lock(&mu);
    memcpy(our_id, coord_id, sizeof(our_id) - 1);
    our_id[8] = '\0';
    others = strmap_new(true);
    pthread_mutex_unlock(&mu);
}

/* Caller holds mu. Drop c's storage; c becomes form (C_EMPTY or C_FULL). */
static void chunk_reset(chunk *c, chunk_form form)
{
    if (c->bits)
        bytes_held -= CHUNK_BYTES;
    if (c->missing)
        bytes_held -= (size_t)c->cap * sizeof(uint16_t);
    free(c->bits);
    free(c->missing);
    *c = (chunk){.form = (uint8_t)form};
}

void committed_free(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nepochs; i++) {
        for (size_t k = 0; k < epochs[i].nchunks; k++)
            chunk_reset(&epochs[i].chunks[k], C_EMPTY);
        free(epochs[i].chunks);
    }
    free(epochs);
    epochs = NULL;
    nepochs = capepochs = 0;
    strmap_free(others, NULL);
    others = NULL;
    bytes_held = 0;
    pthread_mutex_unlock(&mu);
}

/* Caller holds mu. The entry for epoch, moved to the front; created if
 * create. NULL if absent and !create. */
static epoch_set *find_epoch(uint64_t epoch, bool create)
{
    for (size_t i = 0; i < nepochs; i++) {
        if (epochs[i].epoch != epoch)
            continue;
        if (i > 0) {
            epoch_set e = epochs[i];
            memmove(&epochs[1], &epochs[0], i * sizeof(*epochs));
            epochs[0] = e;
        }
        return &epochs[0];
    }
    if (!create)
        return NULL;
    if (nepochs == capepochs) {
        capepochs = capepochs ? capepochs * 2 : 8;
        epochs = xrealloc(epochs, capepochs * sizeof(*epochs));
    }
    memmove(&epochs[1], &epochs[0], nepochs * sizeof(*epochs));
    nepochs++;
    epochs[0] = (epoch_set){.epoch = epoch};
    return &epochs[0];
}

/* Caller holds mu. Chunk idx of e (< MAX_CHUNKS), the table grown to hold it. */
static chunk *chunk_at(epoch_set *e, size_t idx)
{
    if (idx >= e->nchunks) {
        size_t n = e->nchunks ? e->nchunks : 16;
        while (n <= idx)
            n *= 2;
        e->chunks = xrealloc(e->chunks, n * sizeof(chunk));
        memset(e->chunks + e->nchunks, 0, (n - e->nchunks) * sizeof(chunk));
        bytes_held += (n - e->nchunks) * sizeof(chunk);
        e->nchunks = n;
    }
    return &e->chunks[idx];
}

/* Split gid into (epoch, seq) when it is ours and fits the table. */
static bool ours(const char *gid, uint64_t *epoch, uint64_t *seq)
{
    char cid[16];
    return gid_parse(gid, cid, epoch, seq) && strcmp(cid, our_id) == 0 &&
           *seq < BITMAP_MAX_SEQ;
}

/* Caller holds mu. A C_BITS chunk with few seqs left out becomes C_MISSING
 * (or C_FULL). */
static void chunk_normalize(chunk *c)
{
    if (c->form != C_BITS || CHUNK_SEQS - c->n >= MISSING_MAX)
        return;
    uint32_t nmiss = CHUNK_SEQS - c->n;
    if (nmiss == 0) {
        chunk_reset(c, C_FULL);
        return;
    }
    uint16_t *miss = xmalloc(nmiss * sizeof(uint16_t));
    uint32_t k = 0;
    for (uint32_t off = 0; off < CHUNK_SEQS; off++)
        if (!(c->bits[off / 8] & (1u << (off % 8))))
            miss[k++] = (uint16_t)off;
    chunk_reset(c, C_EMPTY);
    *c = (chunk){.form = C_MISSING, .n = nmiss, .cap = nmiss, .missing = miss};
    bytes_held += nmiss * sizeof(uint16_t);
}

/* Index of off in c->missing, or -1. */
static long missing_find(const chunk *c, uint16_t off)
{
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->missing[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->missing[lo] == off ? (long)lo : -1;
}

static bool chunk_has(const chunk *c, uint32_t off)
{
    switch (c->form) {
    case C_BITS:
        return c->bits[off / 8] & (1u << (off % 8));
    case C_MISSING:
        return missing_find(c, (uint16_t)off) < 0;
    case C_FULL:
        return true;
    default:
        return false;
    }
}

/* Caller holds mu. */
static void chunk_add(chunk *c, uint32_t off)
{
    switch (c->form) {
    case C_EMPTY:
        c->form = C_BITS;
        c->bits = xcalloc(1, CHUNK_BYTES);
        bytes_held += CHUNK_BYTES;
        c->n = 0;
        /* fall through */
    case C_BITS:
        if (!(c->bits[off / 8] & (1u << (off % 8)))) {
            c->bits[off / 8] |= (uint8_t)(1u << (off % 8));
            c->n++;
            chunk_normalize(c);
        }
        return;
    case C_MISSING: {
        long i = missing_find(c, (uint16_t)off);
        if (i < 0)
            return;
        memmove(&c->missing[i], &c->missing[i + 1], (c->n - (uint32_t)i - 1) * sizeof(uint16_t));
        if (--c->n == 0) {
            chunk_reset(c, C_FULL);
        } else if (c->n < c->cap / 2) { /* give back what the misses no longer need */
            c->missing = xrealloc(c->missing, c->n * sizeof(uint16_t));
            bytes_held -= (size_t)(c->cap - c->n) * sizeof(uint16_t);
            c->cap = c->n;
        }
        return;
    }
    default:
        return;
    }
}

/* Caller holds mu. OR a chunk's worth of bitmap (CHUNK_BYTES) into c, then
 * normalise. */
static void chunk_or(chunk *c, const uint8_t *bits)
{
    if (c->form == C_FULL)
        return;
    uint8_t *mine = xcalloc(1, CHUNK_BYTES);
    if (c->form == C_BITS)
        memcpy(mine, c->bits, CHUNK_BYTES);
    else if (c->form == C_MISSING) {
        memset(mine, 0xff, CHUNK_BYTES);
        for (uint32_t k = 0; k < c->n; k++)
            mine[c->missing[k] / 8] &= (uint8_t)~(1u << (c->missing[k] % 8));
    }
    uint32_t n = 0;
    for (uint32_t b = 0; b < CHUNK_BYTES; b++) {
        mine[b] |= bits[b];
        n += (uint32_t)__builtin_popcount(mine[b]);
    }
    chunk_reset(c, C_EMPTY);
    if (n == 0) {
        free(mine);
        return;
    }
    *c = (chunk){.form = C_BITS, .n = n, .bits = mine};
    bytes_held += CHUNK_BYTES;
    chunk_normalize(c);
}

void committed_add(const char *gid)
{
    uint64_t epoch, seq;
    pthread_mutex_lock(&mu);
    if (ours(gid, &epoch, &seq)) {
        epoch_set *e = find_epoch(epoch, true);
        chunk_add(chunk_at(e, (size_t)(seq / CHUNK_SEQS)), (uint32_t)(seq % CHUNK_SEQS));
    } else if (others && strmap_put(others, gid, (void *)1)) {
        bytes_held += strlen(gid) + 48;
    }
    pthread_mutex_unlock(&mu);
}

bool committed_has(const char *gid)
{
    uint64_t epoch, seq;
    bool has = false;
    pthread_mutex_lock(&mu);
    if (ours(gid, &epoch, &seq)) {
        epoch_set *e = find_epoch(epoch, false);
        size_t idx = (size_t)(seq / CHUNK_SEQS);
        has = e && idx < e->nchunks && chunk_has(&e->chunks[idx], (uint32_t)(seq % CHUNK_SEQS));
    } else {
        has = others && strmap_get(others, gid) != NULL;
    }
    pthread_mutex_unlock(&mu);
    return has;
}

uint64_t committed_max_epoch(void)
{
    uint64_t max = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nepochs; i++)
        if (epochs[i].epoch > max)
            max = epochs[i].epoch;
    pthread_mutex_unlock(&mu);
    return max;
}

size_t committed_bytes(void)
{
    pthread_mutex_lock(&mu);
    size_t n = bytes_held;
    pthread_mutex_unlock(&mu);
    return n;
}

typedef struct {
    committed_chunk_fn fn;
    void *arg;
    json_t *gids; /* pending foreign gids */
} export_state;

static void flush_gids(export_state *x)
{
    if (json_array_size(x->gids) == 0)
        return;
    json_t *o = json_pack("{s:O}", "gids", x->gids);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text)
        x->fn(text, strlen(text), x->arg);
    free(text);
    json_array_clear(x->gids);
}

static void export_gid(const char *gid, void *val, void *arg)
{
    (void)val;
    export_state *x = arg;
    json_array_append_new(x->gids, json_string(gid));
    if (json_array_size(x->gids) >= EXPORT_GIDS_PER_RECORD)
        flush_gids(x);
}

/* The records, one per chunk (FULL ones as runs):
 *   {"epoch":E,"full":[FIRST,LAST]}          chunks FIRST..LAST all committed
 *   {"epoch":E,"chunk":C,"missing":[o,...]}  chunk C committed but for offsets o
 *   {"epoch":E,"offset":B,"hex":"..."}       bitmap bytes from byte B of the
 *                                            epoch (the one-bitmap format) */
void committed_export(committed_chunk_fn fn, void *arg)
{
    static const char hex[] = "0123456789abcdef";
    strbuf sb;
    strbuf_init(&sb);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nepochs; i++) {
        const epoch_set *e = &epochs[i];
        unsigned long long ep = (unsigned long long)e->epoch;
        for (size_t k = 0; k < e->nchunks; k++) {
            const chunk *c = &e->chunks[k];
            strbuf_reset(&sb);
            if (c->form == C_FULL) {
                size_t last = k;
                while (last + 1 < e->nchunks && last + 1 - k < EXPORT_FULL_RUN &&
                       e->chunks[last + 1].form == C_FULL)
                    last++;
                strbuf_appendf(&sb, "{\"epoch\":%llu,\"full\":[%zu,%zu]}", ep, k, last);
                k = last;
            } else if (c->form == C_MISSING) {
                strbuf_appendf(&sb, "{\"epoch\":%llu,\"chunk\":%zu,\"missing\":[", ep, k);
                for (uint32_t m = 0; m < c->n; m++)
                    strbuf_appendf(&sb, m ? ",%u" : "%u", (unsigned)c->missing[m]);
                strbuf_append(&sb, "]}");
            } else if (c->form == C_BITS) {
                size_t len = CHUNK_BYTES;
                while (len > 0 && c->bits[len - 1] == 0) /* trailing zeros add nothing */
                    len--;
                if (len == 0)
                    continue;
                strbuf_appendf(&sb, "{\"epoch\":%llu,\"offset\":%zu,\"hex\":\"", ep,
                               k * CHUNK_BYTES);
                char pair[2];
                for (size_t b = 0; b < len; b++) {
                    pair[0] = hex[c->bits[b] >> 4];
                    pair[1] = hex[c->bits[b] & 15];
                    strbuf_appendn(&sb, pair, 2);
                }
                strbuf_append(&sb, "\"}");
            } else {
                continue;
            }
            fn(sb.data, sb.len, arg);
        }
    }
    export_state x = {fn, arg, json_array()};
    if (others)
        strmap_foreach(others, export_gid, &x);
    flush_gids(&x);
    json_decref(x.gids);
    pthread_mutex_unlock(&mu);
    strbuf_free(&sb);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool json_uint(const json_t *v, uint64_t below, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) >= below)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Caller holds mu. The hex record: bytes from byte offset base of the epoch's
 * bitmap, ORed chunk by chunk. */
static bool import_hex(epoch_set *e, uint64_t base, const char *hx)
{
    size_t n = strlen(hx);
    if (n % 2 != 0 || base + n / 2 > BITMAP_MAX_SEQ / 8)
        return false;
    n /= 2;
    uint8_t *buf = xmalloc(CHUNK_BYTES);
    bool ok = true;
    for (size_t k = 0; k < n && ok;) {
        uint64_t at = base + k;
        size_t idx = (size_t)(at / CHUNK_BYTES), from = (size_t)(at % CHUNK_BYTES);
        size_t take = CHUNK_BYTES - from < n - k ? CHUNK_BYTES - from : n - k;
        memset(buf, 0, CHUNK_BYTES);
        for (size_t b = 0; b < take && ok; b++) {
            int hi = hexval(hx[2 * (k + b)]), lo = hexval(hx[2 * (k + b) + 1]);
            if (hi < 0 || lo < 0)
                ok = false;
            else
                buf[from + b] = (uint8_t)(hi << 4 | lo);
        }
        if (ok)
            chunk_or(chunk_at(e, idx), buf);
        k += take;
    }
    free(buf);
    return ok;
}

/* Caller holds mu. The missing record: chunk idx committed but for the
 * (strictly ascending) offsets listed. */
static bool import_missing(epoch_set *e, size_t idx, const json_t *miss)
{
    if (json_array_size(miss) >= MISSING_MAX)
        return false;
    uint8_t *buf = xmalloc(CHUNK_BYTES);
    memset(buf, 0xff, CHUNK_BYTES);
    bool ok = true;
    uint64_t prev = 0, off;
    size_t i;
    json_t *v;
    json_array_foreach(miss, i, v) {
        if (!json_uint(v, CHUNK_SEQS, &off) || (i > 0 && off <= prev)) {
            ok = false;
            break;
        }
        buf[off / 8] &= (uint8_t)~(1u << (off % 8));
        prev = off;
    }
    if (ok)
        chunk_or(chunk_at(e, idx), buf);
    free(buf);
    return ok;
}

bool committed_import(const char *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    if (!o)
        return false;
    bool ok = true;
    json_t *gids = json_object_get(o, "gids");
    json_t *full = json_object_get(o, "full"), *miss = json_object_get(o, "missing");
    const char *hx = json_string_value(json_object_get(o, "hex"));
    uint64_t ep, off, idx, first, last;
    if (json_is_array(gids)) {
        size_t i;
        json_t *g;
        json_array_foreach(gids, i, g) {
            if (json_is_string(g) && gid_valid(json_string_value(g)))
                committed_add(json_string_value(g));
            else
                ok = false;
        }
    } else if (!json_uint(json_object_get(o, "epoch"), UINT64_MAX, &ep)) {
        ok = false;
    } else if (json_is_array(full)) {
        ok = json_array_size(full) == 2 && json_uint(json_array_get(full, 0), MAX_CHUNKS, &first) &&
             json_uint(json_array_get(full, 1), MAX_CHUNKS, &last) && first <= last;
        if (ok) {
            pthread_mutex_lock(&mu);
            epoch_set *e = find_epoch(ep, true);
            chunk_at(e, (size_t)last);
            for (uint64_t k = first; k <= last; k++)
                chunk_reset(&e->chunks[k], C_FULL);
            pthread_mutex_unlock(&mu);
        }
    } else if (json_is_array(miss)) {
        ok = json_uint(json_object_get(o, "chunk"), MAX_CHUNKS, &idx);
        if (ok) {
            pthread_mutex_lock(&mu);
            ok = import_missing(find_epoch(ep, true), (size_t)idx, miss);
            pthread_mutex_unlock(&mu);
        }
    } else if (hx && json_uint(json_object_get(o, "offset"), BITMAP_MAX_SEQ / 8 + 1, &off)) {
        pthread_mutex_lock(&mu);
        ok = import_hex(find_epoch(ep, true), off, hx);
        pthread_mutex_unlock(&mu);
    } else {
        ok = false;
    }
    json_decref(o);
    return ok;
}
