/*
 * committed.c - set of committed gids: one bitmap per epoch of ours, bit
 * <seq> set when "<coord_id>-<epoch>-<seq>" is committed.
 *
 * Invariants:
 *   - seqs are dense within an epoch (one atomic counter), so a bitmap costs
 *     one bit per transaction begun in that epoch: ~10 MB per 86 M
 *     transactions.
 *   - Gids that do not parse as ours (another coord_id: never written by us,
 *     but tolerated on replay) live in a string set.
 *   - One mutex guards everything; every operation is O(1) amortized (the
 *     epoch list is short and the current epoch is kept in front).
 *   - committed_export/committed_import round-trip the whole set (the
 *     decision log's 'S' records), so compaction never forgets a commit.
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

#define EXPORT_CHUNK_BYTES (192 * 1024) /* hex doubles it: ~384 KiB per record */
#define EXPORT_GIDS_PER_RECORD 1000

typedef struct {
    uint64_t epoch;
    uint8_t *bits; /* owned */
    size_t nbytes;
} epoch_bits;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char our_id[9];
static epoch_bits *epochs; /* most recently used first */
static size_t nepochs, capepochs;
static strmap *others;     /* foreign gids, keys owned */
static size_t bytes_held;

void committed_init(const char *coord_id)
{
    pthread_mutex_lock(&mu);
    memcpy(our_id, coord_id, sizeof(our_id) - 1);
    our_id[8] = '\0';
    others = strmap_new(true);
    pthread_mutex_unlock(&mu);
}

void committed_free(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nepochs; i++)
        free(epochs[i].bits);
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
static epoch_bits *find_epoch(uint64_t epoch, bool create)
{
    for (size_t i = 0; i < nepochs; i++) {
        if (epochs[i].epoch != epoch)
            continue;
        if (i > 0) {
            epoch_bits e = epochs[i];
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
    epochs[0] = (epoch_bits){.epoch = epoch};
    return &epochs[0];
}

/* Beyond this seq a bitmap would be unreasonably large (2 GiB): such gids
 * (never produced by a sane run) go to the string set instead. */
#define BITMAP_MAX_SEQ (1ULL << 34)

/* Split gid into (epoch, seq) when it is ours and fits a bitmap. */
static bool ours(const char *gid, uint64_t *epoch, uint64_t *seq)
{
    char cid[16];
    return gid_parse(gid, cid, epoch, seq) && strcmp(cid, our_id) == 0 &&
           *seq < BITMAP_MAX_SEQ;
}

/* Caller holds mu. Make e hold at least byte+1 bytes. */
static void ensure_bytes(epoch_bits *e, size_t byte)
{
    if (byte < e->nbytes)
        return;
    size_t n = e->nbytes ? e->nbytes : 1024;
    while (n <= byte)
        n *= 2;
    e->bits = xrealloc(e->bits, n);
    memset(e->bits + e->nbytes, 0, n - e->nbytes);
    bytes_held += n - e->nbytes;
    e->nbytes = n;
}

void committed_add(const char *gid)
{
    uint64_t epoch, seq;
    pthread_mutex_lock(&mu);
    if (ours(gid, &epoch, &seq)) {
        epoch_bits *e = find_epoch(epoch, true);
        size_t byte = (size_t)(seq / 8);
        ensure_bytes(e, byte);
        e->bits[byte] |= (uint8_t)(1u << (seq % 8));
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
        epoch_bits *e = find_epoch(epoch, false);
        size_t byte = (size_t)(seq / 8);
        has = e && byte < e->nbytes && (e->bits[byte] & (1u << (seq % 8)));
    } else {
        has = others && strmap_get(others, gid) != NULL;
    }
    pthread_mutex_unlock(&mu);
    return has;
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

void committed_export(committed_chunk_fn fn, void *arg)
{
    static const char hex[] = "0123456789abcdef";
    strbuf sb;
    strbuf_init(&sb);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nepochs; i++) {
        const epoch_bits *e = &epochs[i];
        for (size_t off = 0; off < e->nbytes; off += EXPORT_CHUNK_BYTES) {
            size_t len = e->nbytes - off < EXPORT_CHUNK_BYTES ? e->nbytes - off : EXPORT_CHUNK_BYTES;
            while (len > 0 && e->bits[off + len - 1] == 0) /* trailing zeros add nothing */
                len--;
            if (len == 0)
                continue;
            strbuf_reset(&sb);
            strbuf_appendf(&sb, "{\"epoch\":%llu,\"offset\":%zu,\"hex\":\"",
                           (unsigned long long)e->epoch, off);
            char pair[2];
            for (size_t k = 0; k < len; k++) {
                pair[0] = hex[e->bits[off + k] >> 4];
                pair[1] = hex[e->bits[off + k] & 15];
                strbuf_appendn(&sb, pair, 2);
            }
            strbuf_append(&sb, "\"}");
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

bool committed_import(const char *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    if (!o)
        return false;
    bool ok = true;
    json_t *gids = json_object_get(o, "gids");
    json_t *ep = json_object_get(o, "epoch"), *off = json_object_get(o, "offset");
    const char *hx = json_string_value(json_object_get(o, "hex"));
    if (json_is_array(gids)) {
        size_t i;
        json_t *g;
        json_array_foreach(gids, i, g) {
            if (json_is_string(g) && gid_valid(json_string_value(g)))
                committed_add(json_string_value(g));
            else
                ok = false;
        }
    } else if (json_is_integer(ep) && json_is_integer(off) && hx && json_integer_value(ep) >= 0 &&
               json_integer_value(off) >= 0 && strlen(hx) % 2 == 0 &&
               (uint64_t)json_integer_value(off) + strlen(hx) / 2 <= BITMAP_MAX_SEQ / 8) {
        size_t base = (size_t)json_integer_value(off), n = strlen(hx) / 2;
        pthread_mutex_lock(&mu);
        epoch_bits *e = find_epoch((uint64_t)json_integer_value(ep), true);
        if (n > 0)
            ensure_bytes(e, base + n - 1);
        for (size_t k = 0; k < n && ok; k++) {
            int hi = hexval(hx[2 * k]), lo = hexval(hx[2 * k + 1]);
            if (hi < 0 || lo < 0)
                ok = false;
            else
                e->bits[base + k] |= (uint8_t)(hi << 4 | lo);
        }
        pthread_mutex_unlock(&mu);
    } else {
        ok = false;
    }
    json_decref(o);
    return ok;
}
