/*
 * test_form.c - request parsing: percent-decoding, query strings, the
 * multipart boundary and multipart bodies as browsers and curl write them.
 *
 * Real clients twice over: bodies captured from Chromium (fetch with
 * FormData, and a <form> submitted with a file input) and from curl 7.88
 * (-F, and -F --form-escape) are kept in fuzz/corpus/form/ (they seed the
 * fuzzer too), and a live round trip runs the installed curl against a
 * listening socket here and splits what it sent. The captures were made by
 * pointing the clients at a one-shot socket listener on 127.0.0.1 that
 * wrote "Content-Type: <header>\n" and the body to a file (Chromium ran
 * headless on a page that built the FormData, set the file input through a
 * DataTransfer and submitted the form); every captured file holds the
 * bytes of file_bytes below.
 *
 * Bodies are copied into exact-size heap buffers before parsing, so a read
 * one byte past the end trips ASan in the --enable-asan build.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "form.h"
#include "tap.h"

/*
 * The content of every file in the captured bodies: CRLFs, "--" lines, a NUL
 * and the start of both clients' boundaries, each on a line of its own.
 */
static const uint8_t file_bytes[] = "\xff\xd8\xff\xe0JFIF\r\n\r\n--\r\n------WebKitFormBoundary\r\n"
				    "--------------------------\r\n\x00\x01"
				    "end";
#define FILE_LEN (sizeof(file_bytes) - 1)

#define MAXP 8

/* One parse of a private copy of a body; parts point into the copy until run_free(). */
struct run {
	uint8_t *copy;
	int rc, n;
	struct form_part p[MAXP];
	struct seer_err err;
};

static void run_parse(struct run *r, const void *body, size_t len, const char *boundary, int max)
{
	r->copy = malloc(len ? len : 1);
	if (r->copy == NULL)
		abort();
	memcpy(r->copy, body, len);
	memset(r->p, 0x5a, sizeof(r->p));
	memset(&r->err, 0, sizeof(r->err));
	r->n = -1;
	r->rc = form_multipart_parse(r->copy, len, boundary, max > 0 ? r->p : NULL, max, &r->n, &r->err);
}

static void run_free(struct run *r)
{
	free(r->copy);
	r->copy = NULL;
}

/* Parse a string literal body with boundary "b" (so the delimiter is "--b"), or another. */
#define PARSE(r, lit) run_parse(r, lit, sizeof(lit) - 1, "b", MAXP)
#define PARSE_B(r, lit, b) run_parse(r, lit, sizeof(lit) - 1, b, MAXP)
#define DATA_IS(p, lit) data_is(p, lit, sizeof(lit) - 1)

static int data_is(const struct form_part *p, const void *want, size_t len)
{
	return p->len == len && (len == 0 || memcmp(p->data, want, len) == 0);
}

static int err_has(const struct run *r, const char *what)
{
	return r->rc == SEER_ECORRUPT && r->err.code == SEER_ECORRUPT && strstr(r->err.msg, what) != NULL;
}

/* --------------------------------------------------------------- decoding */

static void test_url_decode(void)
{
	char out[16];
	int rc;

	rc = form_url_decode("a%20b+c", 7, 1, out, sizeof(out));
	tap_ok(rc == 5 && strcmp(out, "a b c") == 0, "url_decode: %%20 and + (plus_space) -> \"%s\"", out);
	rc = form_url_decode("a%20b+c", 7, 0, out, sizeof(out));
	tap_ok(rc == 5 && strcmp(out, "a b+c") == 0, "url_decode: + kept without plus_space -> \"%s\"", out);
	rc = form_url_decode("%e2%9C%93", 9, 0, out, sizeof(out));
	tap_ok(rc == 3 && strcmp(out, "\xe2\x9c\x93") == 0, "url_decode: mixed-case hex to UTF-8");
	rc = form_url_decode("", 0, 1, out, sizeof(out));
	tap_ok(rc == 0 && out[0] == '\0', "url_decode: empty input");
	tap_ok(form_url_decode("%zz", 3, 0, out, sizeof(out)) == SEER_ECORRUPT, "url_decode: %%zz refused");
	tap_ok(form_url_decode("ab%2", 4, 0, out, sizeof(out)) == SEER_ECORRUPT,
	       "url_decode: cut escape refused");
	tap_ok(form_url_decode("ab%", 3, 0, out, sizeof(out)) == SEER_ECORRUPT,
	       "url_decode: lone %% refused");
	tap_ok(form_url_decode("a%00b", 5, 0, out, sizeof(out)) == SEER_ECORRUPT, "url_decode: %%00 refused");
	tap_ok(form_url_decode("a\0b", 3, 0, out, sizeof(out)) == SEER_ECORRUPT,
	       "url_decode: raw NUL refused");
	tap_ok(form_url_decode("abc", 3, 0, out, 4) == 3, "url_decode: exactly fits (3 bytes + NUL in 4)");
	tap_ok(form_url_decode("abcd", 4, 0, out, 4) == SEER_ETOOLARGE, "url_decode: one byte too many");
	tap_ok(form_url_decode("%41%41%41%41", 12, 0, out, 4) == SEER_ETOOLARGE,
	       "url_decode: overflow after decoding");
	tap_ok(form_url_decode("%41%41%41", 9, 0, out, 4) == 3, "url_decode: escapes counted decoded");
}

static void test_query(void)
{
	char out[8], big[300];
	int rc;

	tap_ok(form_query_get(NULL, "topk", out, sizeof(out)) == 0 && out[0] == '\0', "query: NULL is empty");
	tap_ok(form_query_get("", "topk", out, sizeof(out)) == 0, "query: \"\" is empty");
	rc = form_query_get("topk=5", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "5") == 0, "query: single pair");
	tap_ok(form_query_get("a=1&b=2", "topk", out, sizeof(out)) == 0, "query: missing key");
	rc = form_query_get("a=1&topk=&b=2", "topk", out, sizeof(out));
	tap_ok(rc == 1 && out[0] == '\0', "query: empty value");
	rc = form_query_get("a&topk", "topk", out, sizeof(out));
	tap_ok(rc == 1 && out[0] == '\0', "query: key without '='");
	rc = form_query_get("topk=1&topk=2", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "1") == 0, "query: first occurrence wins");
	rc = form_query_get("topkx=1&xtopk=2&top=9&topk=3", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "3") == 0, "query: no prefix or suffix matches");
	rc = form_query_get("&&topk=2&", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "2") == 0, "query: empty pairs skipped");
	rc = form_query_get("label=a+b%2Cc", "label", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "a b,c") == 0, "query: '+' and %%2C in a value -> \"%s\"", out);
	rc = form_query_get("%74op%6B=4", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "4") == 0, "query: percent-encoded key");
	rc = form_query_get("a+b=1", "a b", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "1") == 0, "query: '+' in a key");
	rc = form_query_get("x=%zz&topk=3", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "3") == 0, "query: a bad escape elsewhere does not matter");
	rc = form_query_get("%zz=1&topk=3", "topk", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "3") == 0, "query: a key that does not decode matches nothing");
	tap_ok(form_query_get("topk=%zz", "topk", out, sizeof(out)) == SEER_ECORRUPT,
	       "query: bad escape refused");
	tap_ok(form_query_get("topk=1%00", "topk", out, sizeof(out)) == SEER_ECORRUPT, "query: %%00 refused");
	tap_ok(form_query_get("topk%00=1", "topk", out, sizeof(out)) == 0,
	       "query: %%00 in a key matches nothing");
	tap_ok(form_query_get("label=12345678", "label", out, sizeof(out)) == SEER_ETOOLARGE,
	       "query: value over the buffer refused");
	rc = form_query_get("label=1234567", "label", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "1234567") == 0, "query: value filling the buffer exactly");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + sizeof(big) - 5, "&k=v", 4);
	rc = form_query_get(big, "k", out, sizeof(out));
	tap_ok(rc == 1 && strcmp(out, "v") == 0, "query: after a long pair");
}

static void test_boundary(void)
{
	char b[71], small[4];
	char ct[128];

	tap_ok(form_multipart_boundary("multipart/form-data; boundary=abc", b, sizeof(b)) == 0 &&
		       strcmp(b, "abc") == 0,
	       "boundary: plain");
	tap_ok(form_multipart_boundary("Multipart/Form-Data;BOUNDARY=\"a b:c\"", b, sizeof(b)) == 0 &&
		       strcmp(b, "a b:c") == 0,
	       "boundary: case-insensitive, quoted, with a space");
	tap_ok(form_multipart_boundary("  multipart/form-data ; charset=utf-8; boundary=xyz ", b,
				       sizeof(b)) == 0 &&
		       strcmp(b, "xyz") == 0,
	       "boundary: after another parameter, spaces around");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
				       b, sizeof(b)) == 0 &&
		       strcmp(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW") == 0,
	       "boundary: Chromium/Safari style");
	tap_ok(form_multipart_boundary("application/json", b, sizeof(b)) == SEER_EUNSUPPORTED,
	       "boundary: not multipart");
	tap_ok(form_multipart_boundary("multipart/mixed; boundary=x", b, sizeof(b)) == SEER_EUNSUPPORTED,
	       "boundary: multipart/mixed is not form-data");
	tap_ok(form_multipart_boundary("multipart/form-dataX; boundary=x", b, sizeof(b)) == SEER_EUNSUPPORTED,
	       "boundary: no prefix match of the type");
	tap_ok(form_multipart_boundary(NULL, b, sizeof(b)) == SEER_EUNSUPPORTED, "boundary: no Content-Type");
	tap_ok(form_multipart_boundary("multipart/form-data", b, sizeof(b)) == SEER_ECORRUPT,
	       "boundary: missing");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)) == SEER_ECORRUPT,
	       "boundary: empty");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=\"\"", b, sizeof(b)) == SEER_ECORRUPT,
	       "boundary: empty quoted");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=\"abc", b, sizeof(b)) == SEER_ECORRUPT,
	       "boundary: unterminated quote");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=a@b", b, sizeof(b)) == SEER_ECORRUPT,
	       "boundary: '@' is not a boundary character");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=\"ab \"", b, sizeof(b)) ==
		       SEER_ECORRUPT,
	       "boundary: may not end in a space");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=a; boundary=b", b, sizeof(b)) ==
		       SEER_ECORRUPT,
	       "boundary: given twice");
	snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%070d", 7);
	tap_ok(form_multipart_boundary(ct, b, sizeof(b)) == 0 && strlen(b) == 70, "boundary: 70 characters");
	snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%071d", 7);
	tap_ok(form_multipart_boundary(ct, b, sizeof(b)) == SEER_ECORRUPT, "boundary: 71 characters refused");
	tap_ok(form_multipart_boundary("multipart/form-data; boundary=abcd", small, sizeof(small)) ==
		       SEER_ETOOLARGE,
	       "boundary: caller's buffer too small");
}

/* ------------------------------------------------------------- multipart */

static void test_basic(void)
{
	struct run r;

	PARSE(&r, "--b\r\n"
		  "Content-Disposition: form-data; name=\"topk\"\r\n"
		  "\r\n"
		  "3\r\n"
		  "--b\r\n"
		  "Content-Disposition: form-data; name=\"file\"; filename=\"a b.jpg\"\r\n"
		  "Content-Type: image/jpeg\r\n"
		  "\r\n"
		  "\xff\xd8\r\n--\r\n--b-\r\n--bb\r\n--b \r--b\r\n"
		  "--b--\r\n");
	tap_ok(r.rc == 0 && r.n == 2, "multipart: two parts (rc %d, n %d) %s", r.rc, r.n, r.err.msg);
	tap_ok(strcmp(r.p[0].name, "topk") == 0 && r.p[0].filename[0] == '\0' &&
		       r.p[0].content_type[0] == '\0' && data_is(&r.p[0], "3", 1),
	       "multipart: a text field");
	tap_ok(strcmp(r.p[1].name, "file") == 0 && strcmp(r.p[1].filename, "a b.jpg") == 0 &&
		       strcmp(r.p[1].content_type, "image/jpeg") == 0,
	       "multipart: a file part's name, filename and type");
	tap_ok(DATA_IS(&r.p[1], "\xff\xd8\r\n--\r\n--b-\r\n--bb\r\n--b \r--b"),
	       "multipart: data with CRLF and lines that only look like delimiters");
	run_free(&r);

	/* Firefox: a long run of dashes and digits, name before filename */
	PARSE_B(&r,
		"-----------------------------9051914041544843365972754266\r\n"
		"Content-Disposition: form-data; name=\"file\"; filename=\"cat.png\"\r\n"
		"Content-Type: image/png\r\n\r\n"
		"\x89PNG\r\n\x1a\n\r\n"
		"-----------------------------9051914041544843365972754266--\r\n",
		"---------------------------9051914041544843365972754266");
	tap_ok(r.rc == 0 && r.n == 1 && strcmp(r.p[0].filename, "cat.png") == 0 &&
		       DATA_IS(&r.p[0], "\x89PNG\r\n\x1a\n"),
	       "multipart: Firefox-style body");
	run_free(&r);

	/* Safari on iOS names a photo picked from the library image.jpg */
	PARSE_B(&r,
		"------WebKitFormBoundaryZ1bGk3qUo8DQmVXo\r\n"
		"Content-Disposition: form-data; name=\"file\"; filename=\"image.jpg\"\r\n"
		"Content-Type: image/jpeg\r\n\r\n"
		"JPEG\r\n"
		"------WebKitFormBoundaryZ1bGk3qUo8DQmVXo--\r\n",
		"----WebKitFormBoundaryZ1bGk3qUo8DQmVXo");
	tap_ok(r.rc == 0 && r.n == 1 && strcmp(r.p[0].filename, "image.jpg") == 0 &&
		       data_is(&r.p[0], "JPEG", 4),
	       "multipart: Safari-style body (rc %d: %s)", r.rc, r.err.msg);
	run_free(&r);

	PARSE(&r, "--b\r\n"
		  "content-disposition: FORM-DATA; NAME=file; FileName=x.jpg\r\n"
		  "CONTENT-TYPE:image/png ; charset=binary\r\n"
		  "X-Other: ignored\r\n"
		  "\r\n"
		  "x\r\n"
		  "--b--");
	tap_ok(r.rc == 0 && r.n == 1 && strcmp(r.p[0].name, "file") == 0 &&
		       strcmp(r.p[0].filename, "x.jpg") == 0 && strcmp(r.p[0].content_type, "image/png") == 0,
	       "multipart: header and parameter names in any case, unquoted values, type without parameters");
	run_free(&r);
}

static void test_names(void)
{
	struct run r;

	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"say "
		  "\\\"hi\\\".jpg\"\r\n\r\nx\r\n"
		  "--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "say \"hi\".jpg") == 0,
	       "filename: backslash-escaped quotes -> %s", r.p[0].filename);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"q%22x\"; filename=\"a%22b "
		  "%0D%0a100%.jpg\"\r\n\r\n"
		  "x\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].name, "q\"x") == 0 &&
		       strcmp(r.p[0].filename, "a\"b __100%.jpg") == 0,
	       "filename: %%22 as Chromium sends it, %%0D%%0A as '_', other %% literal -> %s",
	       r.p[0].filename);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fallback.jpg\"; "
		  "filename*=UTF-8''%E2%9C%93%20ok.jpg\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "\xe2\x9c\x93 ok.jpg") == 0,
	       "filename*: RFC 5987 preferred over filename -> %s", r.p[0].filename);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; filename*=utf-8'en'%E2%9C%93.jpg; name=file; "
		  "filename=\"fallback.jpg\"\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "\xe2\x9c\x93.jpg") == 0 &&
		       strcmp(r.p[0].name, "file") == 0,
	       "filename*: preferred when it comes first, with a language");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=file; filename*=ISO-8859-1''caf%E9.jpg\r\n\r\n"
		  "x\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "caf\xc3\xa9.jpg") == 0,
	       "filename*: ISO-8859-1 to UTF-8");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=file; filename=\"f.jpg\"; "
		  "filename*=KOI8-R''%C1.jpg\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "f.jpg") == 0, "filename*: unknown charset falls back");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=file; filename=\"f.jpg\"; "
		  "filename*=UTF-8''%zz.jpg\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "f.jpg") == 0, "filename*: bad escape falls back");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=file; "
		  "filename*=UTF-8''a%00b.jpg\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && r.p[0].filename[0] == '\0',
	       "filename*: %%00 makes it unusable, no filename left");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"file\"; "
		  "filename=\"a;b=c.jpg\"\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && strcmp(r.p[0].filename, "a;b=c.jpg") == 0, "filename: ';' and '=' inside quotes");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; filename=\"x.jpg\"\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && r.p[0].name[0] == '\0' && strcmp(r.p[0].filename, "x.jpg") == 0,
	       "name: \"\" when absent; filename= is not name=");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 1 && r.p[0].name[0] == '\0', "part without Content-Disposition: no name");
	run_free(&r);
}

static void test_paths(void)
{
	static const struct {
		const char *sent, *want;
	} cases[] = {
		{"C:\\\\Users\\\\me\\\\Pictures\\\\cat.jpg", "cat.jpg"}, /* escaped backslashes */
		{"C:\\Users\\me\\cat.jpg", "cat.jpg"},			 /* old IE: raw backslashes */
		{"\\\\\\\\server\\\\share\\\\dog.png", "dog.png"},	 /* UNC path */
		{"../../etc/passwd", "passwd"},
		{"a/b\\c.jpg", "c.jpg"},
		{"dir/", ""},
		{"..", ""},
		{".", ""},
		{"...jpg", "...jpg"},
		{"tab\there\x7f.jpg", "tab_here_.jpg"},
		{"gpj\xe2\x80\xae.exe", "gpj_.exe"}, /* U+202E RIGHT-TO-LEFT OVERRIDE */
		{"c1\xc2\x85.jpg", "c1_.jpg"},	     /* U+0085 NEXT LINE */
		{"\xe2\x9c\x93 \xc3\xa9t\xc3\xa9.jpg", "\xe2\x9c\x93 \xc3\xa9t\xc3\xa9.jpg"},
	};
	char body[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		int n = snprintf(
			body, sizeof(body),
			"--b\r\nContent-Disposition: form-data; name=file; filename=\"%s\"\r\n\r\nx\r\n--b--",
			cases[i].sent);

		run_parse(&r, body, (size_t)n, "b", MAXP);
		/* the sent names hold control characters: print only what came out */
		tap_ok(r.rc == 0 && strcmp(r.p[0].filename, cases[i].want) == 0,
		       "filename case %zu -> \"%s\"", i + 1, r.p[0].filename);
		run_free(&r);
	}
}

static void test_structure(void)
{
	struct run r;
	char b70[71], body[400];
	int n;

	PARSE(&r, "This is the preamble.\r\n--bogus\r\n--b\r\n"
		  "Content-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
		  "--b--\r\nThis is the epilogue.\r\n--b\r\nContent-Disposition: form-data; "
		  "name=\"c\"\r\n\r\n2\r\n"
		  "--b--\r\n");
	tap_ok(r.rc == 0 && r.n == 1 && strcmp(r.p[0].name, "a") == 0 && DATA_IS(&r.p[0], "1"),
	       "preamble and epilogue (with a delimiter in it) ignored");
	run_free(&r);
	PARSE(&r, "\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 1, "an opening CRLF before the first delimiter");
	run_free(&r);
	PARSE(&r, "--b  \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b \r\n"
		  "Content-Disposition: form-data; name=\"c\"\r\n\r\n2\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 2 && DATA_IS(&r.p[1], "2"),
	       "spaces after a delimiter (transport padding)");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxyz\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 1 && DATA_IS(&r.p[0], "xyz"),
	       "closing delimiter at the very end, no CRLF");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n--b\r\n"
		  "Content-Disposition: form-data; name=\"c\"\r\n\r\n\r\n--b--\r\n");
	tap_ok(r.rc == 0 && r.n == 2 && r.p[0].len == 0 && r.p[1].len == 0 && r.p[0].data != NULL,
	       "empty part bodies");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 1 && strcmp(r.p[0].name, "a") == 0 && r.p[0].len == 0,
	       "headers right before the delimiter: a part with no body (RFC 2046 allows it)");
	run_free(&r);
	PARSE(&r, "--b\r\n\r\n\r\n--b\r\n\r\n--b--");
	tap_ok(r.rc == 0 && r.n == 2 && r.p[0].len == 0 && r.p[1].len == 0, "parts without any header");
	run_free(&r);
	PARSE(&r, "--b--\r\n");
	tap_ok(r.rc == 0 && r.n == 0, "no parts at all (an empty form)");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nab\r\n--\r\n--b--\r\n");
	tap_ok(r.rc == 0 && DATA_IS(&r.p[0], "ab\r\n--"), "data ending in \"\\r\\n--\"");
	run_free(&r);

	memset(b70, 'x', 70);
	b70[70] = '\0';
	b70[0] = '=';
	n = snprintf(body, sizeof(body),
		     "--%s\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nd\r\n--%.69s\r\n--%s--\r\n",
		     b70, b70, b70);
	run_parse(&r, body, (size_t)n, b70, MAXP);
	tap_ok(r.rc == 0 && r.n == 1 && r.p[0].len == 1 + 2 + 2 + 69,
	       "70-character boundary; data ending in "
	       "\"\\r\\n--\" and 69 of its characters");
	run_free(&r);
	n = snprintf(body, sizeof(body),
		     "--%s\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nd\r\n--%.69s", b70, b70);
	run_parse(&r, body, (size_t)n, b70, MAXP);
	tap_ok(err_has(&r, "no closing boundary"), "body ending in a partial delimiter: %s", r.err.msg);
	run_free(&r);
}

static void test_errors(void)
{
	char line[8300], body[9000];
	struct run r;
	int n;

	PARSE(&r, "");
	tap_ok(err_has(&r, "empty"), "empty body: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "just some text, no delimiter\r\n--bx\r\n");
	tap_ok(err_has(&r, "no boundary line \"--b\""), "no boundary: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\nContent-Disposition: form-data; name=\"a\"\n\n1\n--b--\n");
	tap_ok(err_has(&r, "bare LF"), "LF-only lines: %s", r.err.msg);
	run_free(&r);
	PARSE(&r,
	      "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nsome data, then the upload stops");
	tap_ok(err_has(&r, "part 1 has no closing boundary (truncated upload?)"), "truncated: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b");
	tap_ok(err_has(&r, "no closing boundary"), "delimiter at the very end without \"--\": %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\n");
	tap_ok(err_has(&r, "part 2 has no closing boundary"), "a last part with nothing in it: %s",
	       r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n--b--");
	tap_ok(err_has(&r, "header block without the blank line"), "no blank line: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\xff\xd8\xff\xe0\r\n\r\n--b--");
	tap_ok(err_has(&r, "part 1: header line 2 is not a header"), "data where headers belong: %s",
	       r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "folded"), "folded header: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; "
		  "name=\"file\"\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "more than one Content-Disposition"), "two Content-Disposition headers: %s",
	       r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"a\"; name=\"file\"\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "repeats \"name\""), "name given twice: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "malformed Content-Disposition"), "unterminated quote: %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data name=\"file\"\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "malformed Content-Disposition"), "missing ';': %s", r.err.msg);
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; "
		  "name=\"0123456789012345678901234567890123456789012345678"
		  "90123456789012\"\r\n\r\n1\r\n--b--");
	tap_ok(r.rc == 0 && strlen(r.p[0].name) == 63, "63-byte name accepted");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; "
		  "name=\"0123456789012345678901234567890123456789012345678"
		  "901234567890123\"\r\n\r\n1\r\n--b--");
	tap_ok(err_has(&r, "field name longer than 63 bytes"), "64-byte name: %s", r.err.msg);
	run_free(&r);

	/* a header line of exactly 8 KiB is fine, one byte more is not */
	for (int extra = 0; extra <= 1; extra++) {
		size_t fill = 8192 + (size_t)extra - strlen("X-Pad: ");

		memcpy(line, "X-Pad: ", 7);
		memset(line + 7, 'p', fill);
		line[7 + fill] = '\0';
		n = snprintf(body, sizeof(body),
			     "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n%s\r\n\r\n1\r\n--b--",
			     line);
		run_parse(&r, body, (size_t)n, "b", MAXP);
		if (extra == 0)
			tap_ok(r.rc == 0 && r.n == 1, "8192-byte header line accepted");
		else
			tap_ok(err_has(&r, "header line over 8 KiB"), "8193-byte header line: %s", r.err.msg);
		run_free(&r);
	}
	/* ... and a line that never ends, with no CRLF anywhere, says so too */
	memset(line, 'p', 8250);
	n = snprintf(body, sizeof(body), "--b\r\nX-Pad: %.8250s\r\n--b--", line);
	run_parse(&r, body, (size_t)n, "b", MAXP);
	tap_ok(err_has(&r, "header line over 8 KiB"), "endless header line: %s", r.err.msg);
	run_free(&r);

	tap_ok(form_multipart_parse((const uint8_t *)"x", 1, NULL, NULL, 0, &n, NULL) == SEER_EINVAL,
	       "NULL boundary: EINVAL");
	tap_ok(form_multipart_parse((const uint8_t *)"x", 1, "", NULL, 0, &n, NULL) == SEER_EINVAL,
	       "empty boundary: EINVAL");
	tap_ok(form_multipart_parse((const uint8_t *)"x", 1, "a\rb", NULL, 0, &n, NULL) == SEER_EINVAL,
	       "boundary with a CR: EINVAL");
}

/* Every prefix of a valid body short of its closing delimiter is refused, and none is read past its end. */
static void test_truncations(void)
{
	static const char body[] =
		"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
		"Content-Type: image/jpeg\r\n\r\n\xff\xd8\r\n--b-\r\n--b--\r\n";
	size_t full = sizeof(body) - 1, closed = full - 2; /* "--b--" ends two bytes before */
	int bad = 0, ok = 0;

	for (size_t len = 0; len <= full; len++) {
		struct run r;

		run_parse(&r, body, len, "b", MAXP);
		if (len >= closed)
			ok += r.rc == 0 && r.n == 2 && DATA_IS(&r.p[1], "\xff\xd8\r\n--b-");
		else
			bad += r.rc == SEER_ECORRUPT && r.err.code == SEER_ECORRUPT && r.err.msg[0] != '\0';
		run_free(&r);
	}
	tap_ok(bad == (int)closed && ok == 3,
	       "truncations: %d of %zu short prefixes refused, %d of 3 long ones parsed", bad, closed, ok);
}

static void test_max_parts(void)
{
	static const char body[] =
		"--b\r\nContent-Disposition: form-data; name=\"p1\"\r\n\r\n1\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"p2\"\r\n\r\n22\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"p3\"\r\n\r\n333\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"p4\"\r\n\r\n4444\r\n"
		"--b\r\nContent-Disposition: form-data; name=\"p5\"\r\n\r\n55555\r\n--b--\r\n";
	struct run r;

	run_parse(&r, body, sizeof(body) - 1, "b", 2);
	tap_ok(r.rc == 0 && r.n == 5 && strcmp(r.p[0].name, "p1") == 0 && strcmp(r.p[1].name, "p2") == 0 &&
		       DATA_IS(&r.p[1], "22"),
	       "max_parts 2 of 5: all counted, two stored");
	tap_ok((unsigned char)r.p[2].name[0] == 0x5a, "max_parts 2 of 5: nothing written past parts[1]");
	run_free(&r);
	run_parse(&r, body, sizeof(body) - 1, "b", 0);
	tap_ok(r.rc == 0 && r.n == 5, "max_parts 0 (parts NULL): counted only");
	run_free(&r);
	run_parse(&r, body, sizeof(body) - 1, "b", 5);
	tap_ok(r.rc == 0 && r.n == 5 && DATA_IS(&r.p[4], "55555"), "max_parts equal to the count");
	run_free(&r);
	PARSE(&r, "--b\r\nContent-Disposition: form-data; name=\"p1\"\r\n\r\n1\r\n"
		  "--b\r\nContent-Disposition: form-data; "
		  "name=\"p2\"\r\n\r\n2\r\n--b\r\nbroken\r\n\r\n3\r\n--b--");
	tap_ok(r.rc == SEER_ECORRUPT && r.n == 2 && strstr(r.err.msg, "part 3") != NULL,
	       "on an error, *nparts counts the good parts before it: %s", r.err.msg);
	run_free(&r);
}

/* Long filenames keep their start and extension and are never cut inside a UTF-8 character. */
static void test_long_filename(void)
{
	char name[700], body[1000];
	struct run r;
	int n;

	memset(name, 'n', 300);
	strcpy(name + 300, ".jpeg");
	n = snprintf(body, sizeof(body),
		     "--b\r\nContent-Disposition: form-data; name=file; filename=\"%s\"\r\n\r\n"
		     "x\r\n--b--",
		     name);
	run_parse(&r, body, (size_t)n, "b", MAXP);
	tap_ok(r.rc == 0 && strlen(r.p[0].filename) == FORM_FILENAME_MAX - 1 &&
		       strcmp(r.p[0].filename + strlen(r.p[0].filename) - 5, ".jpeg") == 0 &&
		       r.p[0].filename[0] == 'n',
	       "305-byte filename shortened to 255 bytes with its extension");
	run_free(&r);
	/* 200 three-byte characters: the cut must land between characters */
	for (int i = 0; i < 200; i++)
		memcpy(name + 3 * i, "\xe2\x9c\x93", 3);
	strcpy(name + 600, ".png");
	n = snprintf(body, sizeof(body),
		     "--b\r\nContent-Disposition: form-data; name=file; filename=\"%s\"\r\n\r\n"
		     "x\r\n--b--",
		     name);
	run_parse(&r, body, (size_t)n, "b", MAXP);
	n = (int)strlen(r.p[0].filename);
	tap_ok(r.rc == 0 && n <= FORM_FILENAME_MAX - 1 && (n - 4) % 3 == 0 &&
		       strcmp(r.p[0].filename + n - 4, ".png") == 0,
	       "UTF-8 filename cut between characters (%d bytes)", n);
	run_free(&r);
}

/* ------------------------------------------------------- linear time */

static double cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Bodies built to make a rescanning parser quadratic: millions of false
 * delimiters, partial 70-character boundaries, padding after them, and a
 * hundred thousand tiny parts. A linear parser takes milliseconds; the bound
 * of 10 s CPU (ASan included) is only there to catch hours.
 */
static void test_adversarial(void)
{
	enum { SIZE = 8 << 20 };
	static const char *shapes[] = {"\r\n--bX", "\r\n--b  \t  x", "partial", "\r\n--b\r\n\r\n"};
	char b70[71];
	uint8_t *body = malloc(SIZE + 256);

	if (body == NULL)
		abort();
	memset(b70, 'q', 70);
	b70[70] = '\0';
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		const char *boundary = s == 2 ? b70 : "b";
		char unit[80];
		size_t ul, len = 0, head, data_len;
		struct run r;
		double t;

		if (s == 2)
			ul = (size_t)snprintf(unit, sizeof(unit), "\r\n--%.69s", b70);
		else
			ul = (size_t)snprintf(unit, sizeof(unit), "%s", shapes[s]);
		len = (size_t)sprintf((char *)body, "--%s\r\n\r\n", boundary);
		head = len;
		while (len + ul < SIZE) {
			memcpy(body + len, unit, ul);
			len += ul;
		}
		data_len = len - head;
		len += (size_t)sprintf((char *)body + len, "\r\n--%s--\r\n", boundary);
		t = cpu_seconds();
		run_parse(&r, body, len, boundary, MAXP);
		t = cpu_seconds() - t;
		if (s == 3)
			tap_ok(r.rc == 0 && r.n == 1 + (int)(data_len / ul) && t < 10.0,
			       "adversarial: %d tiny parts in %.3f s", r.n, t);
		else
			tap_ok(r.rc == 0 && r.n == 1 && r.p[0].len == data_len && t < 10.0,
			       "adversarial: %zu MiB of \"%s\" in %.3f s", len >> 20,
			       s == 2 ? "partial boundaries" : unit + 2, t);
		run_free(&r);
	}
	free(body);
}

/* --------------------------------------------------------- real clients */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(fp);
	return buf;
}

struct want {
	const char *name, *filename, *type;
	const void *data;
	size_t len;
};

/* Split a capture ("Content-Type: ...\n" + body) and compare its parts with want[0..n). */
static void check_capture(const char *label, const uint8_t *cap, size_t cap_len, const struct want *want,
			  int n)
{
	const uint8_t *nl = memchr(cap, '\n', cap_len);
	char ct[256], boundary[71];
	struct run r;
	int rc, good = 0;

	if (nl == NULL || (size_t)(nl - cap) >= sizeof(ct) || memcmp(cap, "Content-Type: ", 14) != 0) {
		tap_ok(0, "%s: capture has a Content-Type line", label);
		return;
	}
	memcpy(ct, cap + 14, (size_t)(nl - cap) - 14);
	ct[nl - cap - 14] = '\0';
	rc = form_multipart_boundary(ct, boundary, sizeof(boundary));
	tap_ok(rc == 0, "%s: boundary \"%s\" from \"%s\"", label, boundary, ct);
	run_parse(&r, nl + 1, cap_len - (size_t)(nl + 1 - cap), boundary, MAXP);
	tap_ok(r.rc == 0 && r.n == n, "%s: %d parts (rc %d %s)", label, r.n, r.rc, r.err.msg);
	for (int i = 0; r.rc == 0 && i < n && i < r.n; i++) {
		const struct form_part *p = &r.p[i];
		int same = strcmp(p->name, want[i].name) == 0 && strcmp(p->filename, want[i].filename) == 0 &&
			   strcmp(p->content_type, want[i].type) == 0 &&
			   data_is(p, want[i].data, want[i].len);

		if (!same)
			printf("# %s part %d: name \"%s\" filename \"%s\" type \"%s\" %zu bytes\n", label,
			       i + 1, p->name, p->filename, p->content_type, p->len);
		good += same;
	}
	tap_ok(good == n, "%s: every part's name, filename, type and bytes as sent", label);
	run_free(&r);
}

static void test_captures(void)
{
	static const struct {
		const char *file;
		struct want want[3];
		int n;
	} caps[] = {
		{"curl-7.88",
		 {{"topk", "", "", "3", 1},
		  {"file", "a b\"q\xe2\x9c\x93.jpg", "image/jpeg", file_bytes, FILE_LEN}},
		 2},
		{"curl-form-escape", {{"file", "say \"hi\".jpg", "image/jpeg", file_bytes, FILE_LEN}}, 1},
		{"chromium-fetch",
		 {{"q\"x", "", "", "v", 1},
		  {"file", "x\"y_\xe2\x9c\x93.jpg", "image/jpeg", file_bytes, FILE_LEN},
		  {"file", "empty.png", "image/png", "", 0}},
		 3},
		{"chromium-form",
		 {{"topk", "", "", "3", 1}, {"file", "cat photo.jpg", "image/jpeg", file_bytes, FILE_LEN}},
		 2},
	};
	const char *srcdir = getenv("srcdir");

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		char path[4096];
		size_t len = 0;
		uint8_t *cap;

		snprintf(path, sizeof(path), "%s/fuzz/corpus/form/%s", srcdir ? srcdir : ".", caps[i].file);
		cap = slurp(path, &len);
		if (cap == NULL) {
			tap_ok(0, "%s: read %s: %s", caps[i].file, path, strerror(errno));
			continue;
		}
		check_capture(caps[i].file, cap, len, caps[i].want, caps[i].n);
		free(cap);
	}
}

/*
 * Run the installed curl against a socket listening on 127.0.0.1 and split
 * what it sent: the round trip that proves today's client, not a capture.
 */
static void test_live_curl(void)
{
	static const char fname[] = "x \"q\" \xe2\x9c\x93.jpg";
	static const struct want want[2] = {
		{"topk", "", "", "3", 1},
		{"file", fname, "image/png", file_bytes, FILE_LEN},
	};
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	char dir[] = "/tmp/seer-test-form-XXXXXX", path[128] = "", spec[256], url[64];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	static uint8_t req[1 << 16];
	size_t got = 0, want_len;
	int lfd = -1, cfd = -1, status = 0;
	pid_t pid = -1;
	char *end, *ct, *cl, cap[1 << 16];
	FILE *fp;

	if (system("curl --version >/dev/null 2>&1") != 0) {
		printf("ok %d # SKIP curl is not installed\n", ++tap_count);
		return;
	}
	if (mkdtemp(dir) == NULL)
		goto fail;
	snprintf(path, sizeof(path), "%s/upload.bin", dir);
	fp = fopen(path, "wb");
	if (fp == NULL)
		goto fail;
	status = fwrite(file_bytes, 1, FILE_LEN, fp) == FILE_LEN;
	if (fclose(fp) != 0 || !status)
		goto fail;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		goto fail;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/classify", ntohs(sa.sin_port));
	snprintf(spec, sizeof(spec), "file=@%s;filename=%s;type=image/png", path, fname);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execlp("curl", "curl", "-s", "--max-time", "20", "-F", "topk=3", "-F", spec, url,
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		goto fail;
	{
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};

		if (poll(&pfd, 1, 20000) != 1 || (cfd = accept(lfd, NULL, NULL)) < 0)
			goto fail;
	}
	/* read the head, then as many body bytes as Content-Length says */
	for (;;) {
		struct pollfd pfd = {.fd = cfd, .events = POLLIN};
		ssize_t n;

		if (got == sizeof(req) - 1 || poll(&pfd, 1, 20000) != 1)
			goto fail;
		n = read(cfd, req + got, sizeof(req) - 1 - got);
		if (n <= 0)
			goto fail;
		got += (size_t)n;
		req[got] = '\0';
		end = strstr((char *)req, "\r\n\r\n");
		if (end == NULL)
			continue;
		cl = strcasestr((char *)req, "\r\nContent-Length:");
		if (cl == NULL || cl > end)
			goto fail;
		want_len = strtoul(cl + 17, NULL, 10);
		if (got >= (size_t)(end + 4 - (char *)req) + want_len)
			break;
	}
	if (write(cfd, reply, sizeof(reply) - 1) != (ssize_t)sizeof(reply) - 1)
		goto fail;
	ct = strcasestr((char *)req, "\r\nContent-Type: ");
	if (ct == NULL || ct > end || (size_t)(end - ct) + want_len >= sizeof(cap))
		goto fail;
	/* the same shape as the committed captures: "Content-Type: ..." line, then the body */
	{
		size_t line = (size_t)(strstr(ct + 2, "\r\n") - (ct + 2));

		memcpy(cap, ct + 2, line);
		cap[line] = '\n';
		memcpy(cap + line + 1, end + 4, want_len);
		check_capture("live curl", (uint8_t *)cap, line + 1 + want_len, want, 2);
	}
	goto done;
fail:
	tap_ok(0, "live curl round trip: %s", strerror(errno));
done:
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
	}
	if (path[0] != '\0') {
		unlink(path);
		rmdir(dir);
	}
}

int main(void)
{
	test_url_decode();
	test_query();
	test_boundary();
	test_basic();
	test_names();
	test_paths();
	test_structure();
	test_errors();
	test_truncations();
	test_max_parts();
	test_long_filename();
	test_adversarial();
	test_captures();
	test_live_curl();
	return tap_done();
}
