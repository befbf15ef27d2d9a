/*
 * fuzz_form.c - libFuzzer target for request parsing: multipart bodies,
 * Content-Type boundaries, query strings and percent-decoding.
 *
 * Input: a first line holding a Content-Type value (a leading
 * "Content-Type:" is skipped, so a captured request is a seed as it is),
 * then '\n' and the body. When the line yields no boundary the body is still
 * split, with the boundary "b", so mutations of the line do not starve the
 * body parser. The line is also read as a query string and percent-decoded.
 *
 * Build: scripts/fuzz.sh (or clang -g -O1 -fsanitize=fuzzer,address,undefined
 *        -D_GNU_SOURCE -Isrc fuzz/fuzz_form.c src/form.c src/status.c).
 * Seeds: fuzz/corpus/form/ - bodies captured from curl and Chromium, and
 * small hand-written ones for each construct the parser knows.
 */
#include "form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PARTS 4

static void check_string(const char *s, size_t cap, int no_controls)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		abort();
	for (size_t i = 0; no_controls && i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void check_parts(const uint8_t *body, size_t len, const struct form_part *parts, int n)
{
	volatile uint8_t sink = 0;

	for (int i = 0; i < n && i < MAX_PARTS; i++) {
		const struct form_part *p = &parts[i];

		check_string(p->name, sizeof(p->name), 1);
		check_string(p->filename, sizeof(p->filename), 1);
		check_string(p->content_type, sizeof(p->content_type), 1);
		if (strchr(p->filename, '/') || strchr(p->filename, '\\'))
			abort();
		if (p->data < body || p->len > len || (size_t)(p->data - body) > len - p->len)
			abort();
		for (size_t k = 0; k < p->len; k++)
			sink ^= p->data[k];
	}
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *keys[] = {"topk", "file", "", "a b"};
	const uint8_t *nl = memchr(data, '\n', size);
	size_t line_len = nl ? (size_t)(nl - data) : size;
	const uint8_t *body = nl ? nl + 1 : data + size;
	size_t body_len = size - (size_t)(body - data);
	struct form_part parts[MAX_PARTS];
	struct seer_err err = {0};
	char boundary[71], out[64];
	char *line = malloc(line_len + 1);
	int rc, n = -1;

	if (size == 0 || line == NULL) {
		free(line);
		return 0;
	}
	/* an exact-size NUL-terminated copy, so a read past the string is caught */
	memcpy(line, data, line_len);
	line[line_len] = '\0';

	rc = form_url_decode(line, line_len, data[0] & 1, out, sizeof(out));
	if (rc >= (int)sizeof(out) || (rc >= 0 && strlen(out) != (size_t)rc))
		abort();
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		rc = form_query_get(line, keys[k], out, sizeof(out));
		if (rc > 1 || (rc == 0 && out[0] != '\0'))
			abort();
		check_string(out, sizeof(out), 0);
	}

	{
		const char *ct = line;

		if (strncasecmp(ct, "Content-Type:", 13) == 0)
			ct += 13;
		rc = form_multipart_boundary(ct, boundary, sizeof(boundary));
		if (rc == 0 && (boundary[0] == '\0' || strlen(boundary) > 70))
			abort();
		if (rc != 0)
			strcpy(boundary, "b");
	}
	rc = form_multipart_parse(body, body_len, boundary, parts, MAX_PARTS, &n, &err);
	if (n < 0 || (rc != 0 && (err.code != rc || err.msg[0] == '\0')))
		abort();
	/* on failure the parts before the bad one are complete all the same */
	check_parts(body, body_len, parts, n);
	free(line);
	return 0;
}
