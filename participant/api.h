/*
 * api.h - the HTTP/JSON API of txagent (routes in api.c, contract in PROTOCOL.md).
 */
#ifndef TXAGENT_API_H
#define TXAGENT_API_H

#include "agent.h"
#include "httpd.h"

/* Start serving on l (http_listen; taken over); NULL on failure (logged).
 * ag must outlive the server. */
http_server *api_start(agent *ag, http_listener *l, const char *host, size_t max_body);

#endif
