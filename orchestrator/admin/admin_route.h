/* Request handling of the admin API without any HTTP server: a request
 * (method, raw path, headers, body) goes in, a status and a JSON body come
 * out. The MHD glue in admin.c only moves bytes; tests and fuzzers call
 * admin_route directly (with an in-memory or temporary database). */
#ifndef SAGA_ADMIN_ROUTE_H
#define SAGA_ADMIN_ROUTE_H

#include "admin_handlers.h"
#include "admin_http.h"

/* Handles one request: the Host and Origin checks (admin_guard_request)
 * for every request, the token and Content-Type checks
 * (admin_guard_mutation) for every POST, then the endpoint. Returns 0 with *res filled (any HTTP status), or
 * SAGA_ENOMEM when not even an error body could be built (res->body is
 * NULL; answer 500 with a static body). */
int admin_route(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res);

#endif
