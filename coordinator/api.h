/*
 * api.h - txcoord's REST API v1 (routes and handlers).
 */
#ifndef TXCOORD_API_H
#define TXCOORD_API_H

#include "httpd.h"

/* Start serving on l (http_listen; taken over); NULL on failure (logged). */
http_server *api_start(http_listener *l, const char *host, size_t max_body);

#endif
