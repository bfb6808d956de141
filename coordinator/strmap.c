/*
 * strmap.c - string-keyed hash map used for the transaction table, the
 * decision log's unfinished records and foreign committed gids.
 *
 * Invariants: nbuckets is a power of two; count <= nbuckets after every put
 * (resize first); each entry caches its FNV-1a hash so resizing and lookups
 * compare strings only on a hash match.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    const char *key; /* owned when m->copy_keys */
    void *val;
} entry;

struct strmap {
    entry **buckets;
    size_t nbuckets;
    size_t count;
    bool copy_keys;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

strmap *strmap_new(bool copy_keys)
{
    strmap *m = xcalloc(1, sizeof(*m));
    m->nbuckets = 64;
    m->buckets = xcalloc(m->nbuckets, sizeof(entry *));
    m->copy_keys = copy_keys;
    return m;
}

static entry **find_slot(const strmap *m, const char *key, uint64_t h)
{
    entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

void *strmap_get(const strmap *m, const char *key)
{
    entry *e = *find_slot(m, key, hash_str(key));
    return e ? e->val : NULL;
}

static void grow(strmap *m)
{
    size_t nb = m->nbuckets * 2;
    entry **b = xcalloc(nb, sizeof(entry *));
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

bool strmap_put(strmap *m, const char *key, void *val)
{
    uint64_t h = hash_str(key);
    entry **pp = find_slot(m, key, h);
    if (*pp)
        return false;
    if (m->count + 1 > m->nbuckets) {
        grow(m);
        pp = find_slot(m, key, h);
    }
    entry *e = xmalloc(sizeof(*e));
    e->next = NULL;
    e->hash = h;
    e->key = m->copy_keys ? xstrdup(key) : key;
    e->val = val;
    *pp = e;
    m->count++;
    return true;
}

void *strmap_remove(strmap *m, const char *key)
{
    entry **pp = find_slot(m, key, hash_str(key));
    entry *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *val = e->val;
    if (m->copy_keys)
        free((char *)e->key);
    free(e);
    m->count--;
    return val;
}

size_t strmap_count(const strmap *m)
{
    return m->count;
}

void strmap_foreach(const strmap *m, void (*fn)(const char *key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->val, arg);
}

void strmap_free(strmap *m, void (*free_val)(void *val))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            if (free_val)
                free_val(e->val);
            if (m->copy_keys)
                free((char *)e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}
