/* A growable text buffer for rendering tables, data files and scripts. */
#ifndef PB_STRBUF_H
#define PB_STRBUF_H

#include <stddef.h>

typedef struct {
  char *s;    /* [cap] NUL-terminated text */
  size_t n;   /* bytes used (without the NUL) */
  size_t cap; /* bytes allocated */
  int oom;    /* an allocation failed: the text is incomplete */
} pb_strbuf;

/* appends printf-style text (a no-op once an allocation failed) */
void pb_sb_add(pb_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* takes the text out of b (an empty string when nothing was added); NULL on OOM */
char *pb_sb_take(pb_strbuf *b);

#endif
