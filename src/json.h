/*
 * json.h - building JSON text in a growable buffer. Only writing: seer
 * emits JSON (command line, API answers) but never has to parse it.
 */
#ifndef SEER_JSON_H
#define SEER_JSON_H

#include <stddef.h>

/* A growing string; after any allocation failure `failed` is set and later appends do nothing. */
struct json_buf {
	char *data;    /* NUL-terminated, owned; free with json_buf_free() */
	size_t len, cap;
	int failed;
};

/* Start empty (no allocation until the first append). */
void json_buf_init(struct json_buf *b);

/* Append text as is. */
void json_raw(struct json_buf *b, const char *s);

/* Append printf-formatted text as is. */
void json_printf(struct json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append s as a quoted JSON string; control characters and invalid UTF-8 bytes are escaped. */
void json_str(struct json_buf *b, const char *s);

/* Forget the contents, keep the storage. */
void json_buf_reset(struct json_buf *b);

void json_buf_free(struct json_buf *b);

#endif
