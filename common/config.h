/*
 * config.h - command-line options as a table of {name, type, default, bounds}.
 *
 * Each daemon declares one opt_def array; opts_parse fills the targets from
 * defaults, then from argv ("--name value" or "--name=value"; OPT_BOOL takes
 * no value). Bad config (unknown option, missing required, out of bounds,
 * bad number) prints one clear line to stderr and returns false; the caller
 * exits 2. "--help" prints the table as usage and exits 0.
 */
#ifndef TX_CONFIG_H
#define TX_CONFIG_H

#include "util.h"

typedef enum { OPT_STRING, OPT_INT, OPT_BOOL, OPT_STRING_LIST } opt_type;

typedef struct {
    char **items; /* owned by the list */
    size_t n;
} str_list;

typedef struct {
    const char *name;          /* without leading "--" */
    opt_type type;
    const char *default_value; /* textual default, NULL for none */
    long long min, max;        /* OPT_INT bounds (inclusive) */
    bool required;
    const char *metavar;       /* e.g. "HOST:PORT", for --help */
    const char *help;
    void *target;              /* char ** | long long * | bool * | str_list * */
} opt_def;

bool opts_parse(const opt_def *defs, size_t n, int argc, char **argv, const char *prog,
                const char *summary) MUSTCHECK;
void opts_usage(const opt_def *defs, size_t n, const char *prog, const char *summary);
void str_list_free(str_list *l);

/* "HOST:PORT" -> host (caller frees) and port; false on bad syntax (no log). */
bool parse_host_port(const char *s, char **host, int *port) MUSTCHECK;

#endif
