/* json.c - a small JSON text builder with string escaping. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_buf_init(struct json_buf *b)
{
	memset(b, 0, sizeof(*b));
}

/* Make room for extra more bytes plus the NUL; 0 on success. */
static int reserve(struct json_buf *b, size_t extra)
{
	size_t cap;
	char *grown;

	if (b->failed)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	grown = realloc(b->data, cap);
	if (grown == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

static void append(struct json_buf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void json_raw(struct json_buf *b, const char *s)
{
	append(b, s, strlen(s));
}

void json_printf(struct json_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_str(struct json_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	append(b, "\"", 1);
	while (*p) {
		size_t n = utf8_len(p);

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			append(b, esc, 2);
			p++;
		} else if (*p < 0x20 || n == 0) {
			/* control characters, and bytes that are not UTF-8 (shown as U+FFFD) */
			snprintf(esc, sizeof(esc), "\\u%04x", n == 0 ? 0xfffd : *p);
			append(b, esc, 6);
			p++;
		} else {
			append(b, (const char *)p, n);
			p += n;
		}
	}
	append(b, "\"", 1);
}

void json_buf_reset(struct json_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void json_buf_free(struct json_buf *b)
{
	free(b->data);
	json_buf_init(b);
}
