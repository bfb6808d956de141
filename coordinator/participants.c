/*
 * participants.c - the NAME=URL table of participant agents.
 *
 * Invariants: names follow gid.h's participant rule and are unique; URLs
 * start with http:// or https://, are stored without a trailing '/', and
 * are unique too (one agent serves one participant);
 * the table is immutable after participants_init, so readers need no lock.
 * A linear scan is used: there are at most a few dozen participants.
 */
#include "participants.h"

#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"

static participant *table;
static size_t ntable;

bool participants_init(const str_list *specs)
{
    table = xcalloc(specs->n, sizeof(*table));
    ntable = 0;
    for (size_t i = 0; i < specs->n; i++) {
        const char *spec = specs->items[i];
        const char *eq = strchr(spec, '=');
        if (!eq) {
            log_error("--participant '%s': expected NAME=URL", spec);
            return false;
        }
        size_t nlen = (size_t)(eq - spec);
        char name[PARTICIPANT_MAX_LEN + 2];
        if (nlen == 0 || nlen > PARTICIPANT_MAX_LEN) {
            log_error("--participant '%s': name must be 1..%d characters", spec,
                      PARTICIPANT_MAX_LEN);
            return false;
        }
        memcpy(name, spec, nlen);
        name[nlen] = '\0';
        if (!participant_name_valid(name)) {
            log_error("--participant '%s': name must match [a-z][a-z0-9_-]*", spec);
            return false;
        }
        char err[400];
        char *u = httpc_url_normalize(eq + 1, err, sizeof(err));
        if (!u) {
            log_error("--participant '%s': %s", spec, err);
            return false;
        }
        if (participant_find(name)) {
            log_error("--participant '%s': participant %s given twice", spec, name);
            free(u);
            return false;
        }
        /* one agent serves one participant: a URL given twice would be
         * found out only at the first statement (participant_mismatch) */
        for (size_t k = 0; k < ntable; k++) {
            if (strcmp(table[k].url, u) == 0) {
                log_error("--participant '%s': URL %s is already participant %s's", spec, u,
                          table[k].name);
                free(u);
                return false;
            }
        }
        participant *p = &table[ntable++];
        memcpy(p->name, name, nlen + 1);
        p->url = u;
        log_info("participant %s at %s", p->name, p->url);
    }
    return true;
}

void participants_free(void)
{
    for (size_t i = 0; i < ntable; i++)
        free(table[i].url);
    free(table);
    table = NULL;
    ntable = 0;
}

const participant *participant_find(const char *name)
{
    for (size_t i = 0; i < ntable; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

size_t participants_count(void)
{
    return ntable;
}

const participant *participant_at(size_t i)
{
    return i < ntable ? &table[i] : NULL;
}
