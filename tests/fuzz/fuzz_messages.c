/* libFuzzer target: what sagad does with a consumed record before the
 * engine sees it (scripts/fuzz, docs/FUZZING.md): saga_json_parse (its fast
 * path and jansson), then the start and the reply parsers. Checks:
 *
 * - the fast parser and jansson agree: the fast path accepts only what
 *   jansson accepts, with an equal value and the same bytes when dumped;
 * - saga_json_dump writes exactly what json_dumps writes;
 * - each parser returns 0 with its required fields set, or an error
 *   message (non-empty), never both or neither;
 * - a parsed start's saga_id (when given) is 1-127 printable ASCII bytes
 *   without '/', and a reply's attempt is >= 1. */
#include "messages.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_json_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_dump(const json_t *v) {
    char *ours = saga_json_dump(v);
    char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    CHECK((ours == NULL) == (theirs == NULL));
    if (ours) CHECK(strcmp(ours, theirs) == 0);
    saga_free(ours);
    saga_free(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    json_error_t jerr;
    json_t *theirs = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *fast = saga_json_parse_fast(text, size);
    if (fast) {
        CHECK(theirs != NULL);
        CHECK(json_equal(fast, theirs));
        char *a = saga_json_dump(fast), *b = saga_json_dump(theirs);
        CHECK(a && b && strcmp(a, b) == 0);
        saga_free(a);
        saga_free(b);
    }
    char err[256] = "";
    json_t *root = saga_json_parse(text, size, err, sizeof err);
    CHECK((root != NULL) == (theirs != NULL));
    CHECK(root || err[0]);
    if (root) {
        check_dump(root);
        saga_start_msg_t start;
        char why[512] = "";
        if (saga_parse_start(root, &start, why, sizeof why) == 0) {
            CHECK(start.message_id && start.message_id[0] && start.definition && start.definition[0]);
            if (start.saga_id) {
                size_t n = strlen(start.saga_id);
                CHECK(n >= 1 && n <= 127 && !strchr(start.saga_id, '/'));
                for (size_t i = 0; i < n; i++) CHECK(start.saga_id[i] > 0x20 && start.saga_id[i] < 0x7f);
            }
        } else {
            CHECK(why[0] != '\0');
        }
        saga_reply_msg_t reply;
        why[0] = '\0';
        if (saga_parse_reply(root, &reply, why, sizeof why) == 0) {
            CHECK(reply.message_id && reply.saga_id && reply.step);
            CHECK(reply.attempt >= 1);
        } else {
            CHECK(why[0] != '\0');
        }
    }
    json_decref(root);
    json_decref(fast);
    json_decref(theirs);
    return 0;
}
