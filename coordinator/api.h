/*
 * api.h - txcoord's REST API v1 (routes and handlers).
 */
#ifndef TXCOORD_API_H
#define TXCOORD_API_H

#include "httpd.h"

/* Start serving; NULL on failure (logged). */
http_server *api_start(const char *host, int port, size_t max_body);

#endif
