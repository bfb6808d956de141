/*
 * participants.h - the NAME=URL table of participant agents.
 *
 * Invariants: filled once at startup from --participant flags and never
 * changed afterwards, so lookups take no lock and returned pointers are valid
 * for the life of the process.
 */
#ifndef TXCOORD_PARTICIPANTS_H
#define TXCOORD_PARTICIPANTS_H

#include "config.h"
#include "gid.h"

typedef struct {
    char name[PARTICIPANT_MAX_LEN + 1];
    char *url; /* base URL without trailing '/', e.g. "http://127.0.0.1:7401"; owned */
} participant;

/* Parse every "NAME=URL"; false (logged) on a bad name, bad URL or duplicate. */
bool participants_init(const str_list *specs) MUSTCHECK;
void participants_free(void);

/* Borrowed (lives until participants_free) or NULL. */
const participant *participant_find(const char *name);
size_t participants_count(void);
const participant *participant_at(size_t i);

#endif
