/*
 * api.h - the HTTP/JSON API of txagent (routes in api.c, contract in PROTOCOL.md).
 */
#ifndef TXAGENT_API_H
#define TXAGENT_API_H

#include "agent.h"
#include "httpd.h"

/* Start serving; NULL on failure (logged). ag must outlive the server. */
http_server *api_start(agent *ag, const char *host, int port, size_t max_body);

#endif
