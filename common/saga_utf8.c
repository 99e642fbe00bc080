#include "saga_utf8.h"

#include <limits.h>
#include <string.h>

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t saga_utf8_prefix_n(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    size_t n = max;
    /* s[n] is the first byte left out: while it continues a character,
     * that character would be cut, so it is left out whole (at most 3
     * steps back in valid UTF-8). */
    for (int k = 0; k < 3 && n > 0 && is_continuation((unsigned char)s[n]); k++) n--;
    if (is_continuation((unsigned char)s[n])) n = max; /* not UTF-8 there: cut where asked */
    return n;
}

int saga_utf8_prefix(const char *s, size_t max) {
    if (!s) return 0;
    size_t len = strnlen(s, max + 1);
    size_t n = saga_utf8_prefix_n(s, len, max);
    return n > (size_t)INT_MAX ? INT_MAX : (int)n;
}

char *saga_utf8_copy(char *dst, size_t size, const char *src) {
    if (!dst || size == 0) return dst;
    if (!src) src = "";
    size_t len = strnlen(src, size);
    size_t n = saga_utf8_prefix_n(src, len, size - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
    return dst;
}

void saga_utf8_trim_cut(char *s) {
    if (!s) return;
    size_t n = strlen(s), i = n;
    while (i > 0 && n - i < 3 && is_continuation((unsigned char)s[i - 1])) i--;
    if (i == 0) return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < need) s[i - 1] = '\0';
}
