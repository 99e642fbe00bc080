/* GET /ui and /ui/: sagad's web view, one self-contained HTML page
 * (docs/ui/index.html) whose bytes are compiled in (docs/ui/embed.cmake
 * generates admin_ui_page.c at build time). The page reads the JSON API
 * from the browser; nothing here touches the database. */
#include "admin_handlers.h"

#include "saga_alloc.h"
#include "saga_error.h"

#include <string.h>

extern const unsigned char saga_admin_ui_page[];
extern const size_t saga_admin_ui_page_len;

int admin_get_ui(admin_ctx_t *ctx, admin_response_t *res) {
    (void)ctx;
    /* The body is owned (and freed) by the caller, so hand out a copy. */
    char *body = saga_malloc(saga_admin_ui_page_len + 1);
    if (!body) return SAGA_ENOMEM;
    memcpy(body, saga_admin_ui_page, saga_admin_ui_page_len);
    body[saga_admin_ui_page_len] = '\0';
    res->status = 200;
    res->body = body;
    res->body_len = saga_admin_ui_page_len;
    res->content_type = "text/html; charset=utf-8";
    return 0;
}
