/*
 * strmap.h - string-keyed hash map (chained, power-of-two buckets).
 *
 * Invariants: O(1) expected get/put/remove; the table doubles when the load
 * exceeds 1. Not thread-safe: every map is guarded by its owner's lock.
 * Keys are copied when the map was created with copy_keys, otherwise borrowed
 * (they must outlive their entry). Values are opaque and never freed here
 * except through strmap_free's callback.
 */
#ifndef TXCOORD_STRMAP_H
#define TXCOORD_STRMAP_H

#include "util.h"

typedef struct strmap strmap;

strmap *strmap_new(bool copy_keys);
/* Borrowed value or NULL. */
void *strmap_get(const strmap *m, const char *key);
/* Insert; false (and nothing changed) if key is already present. val must not be NULL. */
bool strmap_put(strmap *m, const char *key, void *val);
/* Remove; returns the value or NULL when absent. */
void *strmap_remove(strmap *m, const char *key);
size_t strmap_count(const strmap *m);
/* Call fn for every entry (any order); fn must not modify the map. */
void strmap_foreach(const strmap *m, void (*fn)(const char *key, void *val, void *arg), void *arg);
/* Free the map; free_val (may be NULL) is called on every value. */
void strmap_free(strmap *m, void (*free_val)(void *val));

#endif
