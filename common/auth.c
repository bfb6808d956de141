/*
 * auth.c - the cluster's shared secret; see auth.h for the rules.
 * Invariant: set before threads start, read-only after (no locking).
 */
#include "auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "durable.h"
#include "log.h"

static char *token; /* owned; NULL = no authentication */

static bool token_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' ||
           c == '-';
}

bool auth_load_token_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    bool missing = false;
    if (!read_whole_file(path, &data, &len, &missing)) {
        log_error("token file %s: %s", path, missing ? "not found" : "cannot read it (see above)");
        return false;
    }
    size_t n = 0;
    while (n < len && data[n] != '\n' && data[n] != '\r')
        n++;
    while (n > 0 && isspace((unsigned char)data[n - 1]))
        n--;
    bool ok = n >= AUTH_TOKEN_MIN && n <= AUTH_TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = token_char((unsigned char)data[i]);
    if (!ok) {
        log_error("token file %s: the token must be %d..%d characters of A-Z a-z 0-9 . _ ~ + / = - "
                  "on the first line",
                  path, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
        free(data);
        return false;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        log_warn("token file %s can be read by group or others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
    free(token);
    token = xmalloc(n + 1);
    memcpy(token, data, n);
    token[n] = '\0';
    free(data);
    return true;
}

bool auth_load_env(void)
{
    const char *path = getenv("TXCOORD_TOKEN_FILE");
    return !path || !*path || auth_load_token_file(path);
}

const char *auth_token(void)
{
    return token;
}

bool auth_header_ok(const char *authorization)
{
    if (!token)
        return true;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t glen = strlen(given), tlen = strlen(token);
    /* Walk the whole token whatever the input, so the time taken does not
     * tell how much of a guess was right. */
    unsigned char diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        diff |= (unsigned char)(token[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

void auth_reset(void)
{
    free(token);
    token = NULL;
}
