/*
 * form.c - query strings, percent-decoding and multipart/form-data bodies,
 * parsed in place: every result either points into the caller's bytes or is
 * copied into the caller's fixed-size fields, so nothing is ever allocated.
 *
 * The multipart reader follows RFC 2046 / RFC 7578 as browsers and curl
 * actually write them: CRLF lines, the "--boundary" delimiter preceded by
 * CRLF (except at the very start), preamble and epilogue ignored, quoted
 * parameters with either backslash escapes (curl --form-escape, old Firefox)
 * or the %22/%0D/%0A escapes of the HTML standard (Chromium, Firefox, Safari,
 * curl >= 7.81), and RFC 5987 filename* values.
 */
#include "form.h"

#include <limits.h>
#include <string.h>

/* Longest header line in a part, CRLF excluded. */
#define FORM_LINE_MAX 8192
/* RFC 2046: a boundary is 1 to 70 characters. */
#define FORM_BOUNDARY_MAX 70

/* -------------------------------------------------------------- helpers */

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Do the n bytes at s equal the NUL-terminated lit, ignoring ASCII case? */
static int ci_eq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
			return 0;
	return lit[n] == '\0';
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* An RFC 7230 tchar: what header names and parameter names are made of. */
static int is_tchar(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

/* An RFC 2046 bchar (the last one of a boundary may not be a space). */
static int is_bchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}

/* ------------------------------------------------------ percent-decoding */

int form_url_decode(const char *s, size_t len, int plus_space, char *out, size_t cap)
{
	size_t i, n = 0;

	if (out == NULL || cap == 0)
		return SEER_ETOOLARGE;
	out[0] = '\0';
	if (s == NULL && len > 0)
		return SEER_EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return SEER_ECORRUPT;
			hi = hex_val((unsigned char)s[i + 1]);
			lo = hex_val((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return SEER_ECORRUPT;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		/* a NUL would silently cut the C string the caller gets */
		if (c == '\0')
			return SEER_ECORRUPT;
		if (n + 1 >= cap || n >= INT_MAX)
			return SEER_ETOOLARGE;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (int)n;
}

/*
 * Does the name of a query pair, once decoded, equal key? Decoded on the fly
 * so no buffer is needed; a name that does not decode matches nothing.
 */
static int query_name_is(const char *s, size_t n, const char *key)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++, k++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return 0;
			hi = hex_val((unsigned char)s[i + 1]);
			lo = hex_val((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return 0;
			c = hi << 4 | lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c == '\0' || (unsigned char)key[k] != c)
			return 0;
	}
	return key[k] == '\0';
}

int form_query_get(const char *query, const char *key, char *out, size_t cap)
{
	const char *p = query;

	if (key == NULL || out == NULL || cap == 0)
		return SEER_EINVAL;
	out[0] = '\0';
	if (query == NULL)
		return 0;
	while (*p != '\0') {
		size_t pair = strcspn(p, "&");
		const char *eq = memchr(p, '=', pair);
		size_t name_len = eq ? (size_t)(eq - p) : pair;

		if (pair > 0 && query_name_is(p, name_len, key)) {
			int rc;

			if (eq == NULL)
				return 1;
			rc = form_url_decode(eq + 1, pair - name_len - 1, 1, out, cap);
			return rc < 0 ? rc : 1;
		}
		p += pair;
		if (*p == '&')
			p++;
	}
	return 0;
}

/* ------------------------------------------------------------ parameters */

/* One "name=value" of a header's parameter list, as slices of the header. */
struct form_param {
	const char *name, *val;
	size_t name_len, val_len;
	int quoted; /* val is the inside of a quoted-string, escapes still in */
};

/*
 * Read the next parameter of s[0..n) at *pos (which sits after the media or
 * disposition type, or after the previous parameter). Returns 1 with *pr
 * filled, 0 at the end, -1 when the list is malformed (no ';' between
 * parameters, an unterminated quoted-string, text after a closing quote).
 * Parameters without '=' are skipped: nobody sends them and none matters.
 */
static int param_next(const char *s, size_t n, size_t *pos, struct form_param *pr)
{
	size_t i = *pos;

	for (;;) {
		size_t start;

		while (i < n && is_ows(s[i]))
			i++;
		if (i == n)
			return 0;
		if (s[i] != ';')
			return -1;
		i++;
		while (i < n && is_ows(s[i]))
			i++;
		start = i;
		while (i < n && s[i] != '=' && s[i] != ';')
			i++;
		pr->name = s + start;
		pr->name_len = i - start;
		while (pr->name_len > 0 && is_ows(pr->name[pr->name_len - 1]))
			pr->name_len--;
		if (i == n || s[i] == ';')
			continue;
		i++; /* '=' */
		while (i < n && is_ows(s[i]))
			i++;
		if (i < n && s[i] == '"') {
			start = ++i;
			/*
			 * Only \" and \\ are escapes: browsers send a backslash
			 * as is, and old Internet Explorer sent whole Windows
			 * paths (C:\dir\a.jpg) whose backslashes must survive.
			 */
			while (i < n && s[i] != '"') {
				if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
					i++;
				i++;
			}
			if (i >= n)
				return -1;
			pr->val = s + start;
			pr->val_len = i - start;
			pr->quoted = 1;
			i++;
			while (i < n && is_ows(s[i]))
				i++;
			if (i < n && s[i] != ';')
				return -1;
		} else {
			/* a token; be lenient and take everything up to ';' */
			start = i;
			while (i < n && s[i] != ';')
				i++;
			pr->val = s + start;
			pr->val_len = i - start;
			while (pr->val_len > 0 && is_ows(pr->val[pr->val_len - 1]))
				pr->val_len--;
			pr->quoted = 0;
		}
		*pos = i;
		return 1;
	}
}

/*
 * Copy a parameter value into out (cap bytes, NUL-terminated), undoing the
 * quoted-string escapes and, when html_escapes, the %22, %0D and %0A that the
 * HTML standard has browsers write for '"', CR and LF (other '%' are
 * literal: a file may well be called "100%.jpg"). Returns the length, or -1
 * when it does not fit.
 */
static long param_copy(const struct form_param *pr, int html_escapes, char *out, size_t cap)
{
	const char *v = pr->val;
	size_t i, n = 0;

	for (i = 0; i < pr->val_len; i++) {
		char c = v[i];

		if (pr->quoted && c == '\\' && i + 1 < pr->val_len && (v[i + 1] == '"' || v[i + 1] == '\\')) {
			c = v[++i];
		} else if (html_escapes && c == '%' && pr->val_len - i >= 3 && v[i + 1] == '2' &&
			   v[i + 2] == '2') {
			c = '"';
			i += 2;
		} else if (html_escapes && c == '%' && pr->val_len - i >= 3 && v[i + 1] == '0' &&
			   (lower((unsigned char)v[i + 2]) == 'd' || lower((unsigned char)v[i + 2]) == 'a')) {
			c = lower((unsigned char)v[i + 2]) == 'd' ? '\r' : '\n';
			i += 2;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return (long)n;
}

/* ------------------------------------------------------------ boundary */

int form_multipart_boundary(const char *content_type, char *out, size_t cap)
{
	char b[FORM_BOUNDARY_MAX + 1];
	struct form_param pr;
	size_t n, i = 0, start, pos;
	long blen = -1;
	int rc;

	if (out == NULL || cap == 0)
		return SEER_EINVAL;
	out[0] = '\0';
	if (content_type == NULL)
		return SEER_EUNSUPPORTED;
	n = strlen(content_type);
	while (i < n && is_ows(content_type[i]))
		i++;
	start = i;
	while (i < n && content_type[i] != ';' && !is_ows(content_type[i]))
		i++;
	if (!ci_eq(content_type + start, i - start, "multipart/form-data"))
		return SEER_EUNSUPPORTED;
	pos = i;
	while ((rc = param_next(content_type, n, &pos, &pr)) > 0) {
		if (!ci_eq(pr.name, pr.name_len, "boundary"))
			continue;
		/* two boundaries: which one the sender meant is a guess */
		if (blen >= 0)
			return SEER_ECORRUPT;
		blen = param_copy(&pr, 0, b, sizeof(b));
		if (blen < 0)
			return SEER_ECORRUPT;
	}
	if (rc < 0 || blen <= 0 || b[blen - 1] == ' ')
		return SEER_ECORRUPT;
	for (i = 0; i < (size_t)blen; i++)
		if (!is_bchar((unsigned char)b[i]))
			return SEER_ECORRUPT;
	if ((size_t)blen >= cap)
		return SEER_ETOOLARGE;
	memcpy(out, b, (size_t)blen + 1);
	return 0;
}

/* ------------------------------------------------------------- filenames */

/* Length of a UTF-8 bidirectional or C1 control at s[0..n), or 0. */
static size_t unicode_control_len(const unsigned char *s, size_t n)
{
	/* U+0080..U+009F */
	if (n >= 2 && s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	/* U+202A..U+202E (embeddings, overrides) and U+2066..U+2069 (isolates) */
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae)
		return 3;
	if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)
		return 3;
	return 0;
}

/*
 * Turn a decoded filename (s[0..n), rewritten in place) into the one a part
 * reports: only what follows the last '/' or '\' (old Internet Explorer sent
 * C:\Users\...\a.jpg), control characters - and the Unicode ones that can
 * make "gpj.exe" display as "exe.jpg" - as '_', and "." or ".." as no name. A
 * name longer than FORM_FILENAME_MAX - 1 bytes keeps its start and its
 * extension (up to 16 bytes), cut on a UTF-8 character boundary.
 */
static void filename_finish(char *src, size_t n, char out[FORM_FILENAME_MAX])
{
	unsigned char *s = (unsigned char *)src;
	size_t i, k = 0, ext, head;

	for (i = n; i > 0; i--)
		if (s[i - 1] == '/' || s[i - 1] == '\\')
			break;
	s += i;
	n -= i;
	out[0] = '\0';
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return;
	/* each replacement is no longer than what it replaces, so k <= i */
	for (i = 0; i < n;) {
		size_t u = unicode_control_len(s + i, n - i);

		if (s[i] < 0x20 || s[i] == 0x7f || u > 0) {
			s[k++] = '_';
			i += u > 0 ? u : 1;
		} else {
			s[k++] = s[i++];
		}
	}
	if (k < FORM_FILENAME_MAX) {
		memcpy(out, s, k);
		out[k] = '\0';
		return;
	}
	for (ext = k; ext > 0 && k - ext < 16 && s[ext - 1] != '.'; ext--)
		;
	ext = (ext > 1 && s[ext - 1] == '.') ? ext - 1 : k;
	head = FORM_FILENAME_MAX - 1 - (k - ext);
	while (head > 0 && (s[head] & 0xc0) == 0x80)
		head--;
	memcpy(out, s, head);
	memcpy(out + head, s + ext, k - ext);
	out[head + k - ext] = '\0';
}

/*
 * Decode an RFC 5987 ext-value (charset'language'percent-encoded) into out.
 * Returns the length, or -1 for a charset other than UTF-8 or ISO-8859-1, a
 * bad escape or a NUL: the caller then falls back to the plain filename, as
 * RFC 6266 advises.
 */
static long ext_value_decode(const struct form_param *pr, char *out, size_t cap)
{
	const char *v = pr->val, *q1, *q2;
	size_t n = pr->val_len, i;
	int latin1, len;

	q1 = memchr(v, '\'', n);
	if (q1 == NULL)
		return -1;
	q2 = memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v));
	if (q2 == NULL)
		return -1;
	if (ci_eq(v, (size_t)(q1 - v), "UTF-8"))
		latin1 = 0;
	else if (ci_eq(v, (size_t)(q1 - v), "ISO-8859-1"))
		latin1 = 1;
	else
		return -1;
	/*
	 * Latin-1 may double in UTF-8: decode into the upper half of out and
	 * widen into the lower one; byte i is read before byte 2i+1 is written
	 * and, since i < cap / 2, that write never reaches an unread byte.
	 */
	if (latin1) {
		char *half = out + cap / 2;
		size_t k = 0;

		len = form_url_decode(q2 + 1, n - (size_t)(q2 + 1 - v), 0, half, cap - cap / 2);
		if (len < 0)
			return -1;
		for (i = 0; i < (size_t)len; i++) {
			unsigned char c = (unsigned char)half[i];

			if (c < 0x80) {
				out[k++] = (char)c;
			} else {
				out[k++] = (char)(0xc0 | c >> 6);
				out[k++] = (char)(0x80 | (c & 0x3f));
			}
		}
		out[k] = '\0';
		return (long)k;
	}
	len = form_url_decode(q2 + 1, n - (size_t)(q2 + 1 - v), 0, out, cap);
	return len < 0 ? -1 : len;
}

/* ----------------------------------------------------------- multipart */

enum { DELIM_NONE, DELIM_OPEN, DELIM_CLOSE };

/*
 * What follows a "--boundary" that ends at body[p]: "--" makes it the closing
 * delimiter (whatever comes after is epilogue), optional spaces and CRLF an
 * ordinary one with the next part at *next; anything else means the bytes
 * only looked like a delimiter and are part data.
 */
static int delim_kind(const uint8_t *body, size_t len, size_t p, size_t *next)
{
	if (len - p >= 2 && body[p] == '-' && body[p + 1] == '-') {
		*next = p + 2;
		return DELIM_CLOSE;
	}
	while (p < len && (body[p] == ' ' || body[p] == '\t'))
		p++;
	if (len - p >= 2 && body[p] == '\r' && body[p + 1] == '\n') {
		*next = p + 2;
		return DELIM_OPEN;
	}
	return DELIM_NONE;
}

/*
 * The first "\r\n--boundary" (d, dlen bytes) in h[0..n), or NULL. Its only
 * CR is its first byte (boundaries are made of RFC 2046 characters), so the
 * bytes that matched a candidate's start hold no other CR and the next
 * candidate is looked for from the first mismatch: every byte is read about
 * once, whatever the body. (glibc's memmem would be linear too, but ASan's
 * interceptor checks the whole haystack on every call, which made each call
 * cost the rest of the body in the sanitizer build.)
 */
static const uint8_t *delim_search(const uint8_t *h, size_t n, const uint8_t *d, size_t dlen)
{
	const uint8_t *p = h, *end = h + n;

	while ((size_t)(end - p) >= dlen) {
		size_t k = 1;

		p = memchr(p, '\r', (size_t)(end - p) - dlen + 1);
		if (p == NULL)
			return NULL;
		while (k < dlen && p[k] == d[k])
			k++;
		if (k == dlen)
			return p;
		p += k;
	}
	return NULL;
}

/* The first CRLF in s[0..n), or NULL. */
static const uint8_t *crlf_find(const uint8_t *s, size_t n)
{
	const uint8_t *p = s, *end = s + n;

	while (end - p >= 2 && (p = memchr(p, '\r', (size_t)(end - p) - 1)) != NULL) {
		if (p[1] == '\n')
			return p;
		p++;
	}
	return NULL;
}

/*
 * Find the first real delimiter at or after body[from]; *at gets the offset
 * of its CR. A false one (a line that only starts like a delimiter) moves the
 * search on by one byte, and delim_search() skips the rest of what matched,
 * so the body is still read about once.
 */
static int delim_find(const uint8_t *body, size_t len, size_t from, const uint8_t *d, size_t dlen, size_t *at,
		      size_t *next)
{
	while (from < len) {
		const uint8_t *hit = delim_search(body + from, len - from, d, dlen);
		int kind;

		if (hit == NULL)
			return DELIM_NONE;
		*at = (size_t)(hit - body);
		kind = delim_kind(body, len, *at + dlen, next);
		if (kind != DELIM_NONE)
			return kind;
		from = *at + 1;
	}
	return DELIM_NONE;
}

/* Content-Disposition: form-data; name="..."; filename="..."; filename*=... */
static int parse_disposition(const char *v, size_t n, struct form_part *part, int idx, struct seer_err *err)
{
	char tmp[2 * FORM_LINE_MAX + 1];
	struct form_param pr, fn = {0}, fn_ext = {0};
	int have_name = 0, rc;
	size_t pos = 0;
	long len;

	/* the disposition type ("form-data"; nothing else is sent any more) */
	while (pos < n && is_tchar((unsigned char)v[pos]))
		pos++;
	while ((rc = param_next(v, n, &pos, &pr)) > 0) {
		struct form_param *slot = NULL;

		if (ci_eq(pr.name, pr.name_len, "name")) {
			if (have_name++)
				goto dup;
			len = param_copy(&pr, 1, part->name, sizeof(part->name));
			if (len < 0)
				return seer_err_set(err, SEER_ECORRUPT,
						    "multipart: part %d: field name longer than %d bytes",
						    idx, FORM_NAME_MAX - 1);
			/* control characters (a NUL included) cannot make a name look like "file" */
			for (long i = 0; i < len; i++)
				if ((unsigned char)part->name[i] < 0x20 || part->name[i] == 0x7f)
					part->name[i] = '_';
			continue;
		}
		if (ci_eq(pr.name, pr.name_len, "filename"))
			slot = &fn;
		else if (ci_eq(pr.name, pr.name_len, "filename*"))
			slot = &fn_ext;
		else
			continue;
		if (slot->name != NULL)
			goto dup;
		*slot = pr;
	}
	if (rc < 0)
		return seer_err_set(err, SEER_ECORRUPT,
				    "multipart: part %d: malformed Content-Disposition parameters", idx);
	len = -1;
	if (fn_ext.name != NULL)
		len = ext_value_decode(&fn_ext, tmp, sizeof(tmp));
	/* a header line is at most FORM_LINE_MAX bytes, so tmp always holds it */
	if (len < 0 && fn.name != NULL)
		len = param_copy(&fn, 1, tmp, sizeof(tmp));
	if (len >= 0)
		filename_finish(tmp, (size_t)len, part->filename);
	return 0;
dup:
	return seer_err_set(err, SEER_ECORRUPT, "multipart: part %d: Content-Disposition repeats \"%.*s\"",
			    idx, (int)pr.name_len, pr.name);
}

/* The media type of a part's Content-Type, without parameters; "" when it does not fit. */
static void part_content_type(const char *v, size_t n, struct form_part *part)
{
	const char *semi = memchr(v, ';', n);
	size_t i, k = semi ? (size_t)(semi - v) : n;

	while (k > 0 && is_ows(v[k - 1]))
		k--;
	if (k >= sizeof(part->content_type) || part->content_type[0] != '\0')
		return;
	for (i = 0; i < k; i++)
		part->content_type[i] = (unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f ? v[i] : '_';
	part->content_type[k] = '\0';
}

/* One header line of a part (no CRLF). */
static int parse_header(const char *line, size_t n, struct form_part *part, int idx, int lineno, int *seen_cd,
			struct seer_err *err)
{
	const char *colon = memchr(line, ':', n);
	size_t name_len, i, vs, ve;

	if (line[0] == ' ' || line[0] == '\t')
		return seer_err_set(err, SEER_ECORRUPT,
				    "multipart: part %d: folded header lines are not supported", idx);
	name_len = colon ? (size_t)(colon - line) : 0;
	while (name_len > 0 && is_ows(line[name_len - 1]))
		name_len--;
	for (i = 0; i < name_len; i++)
		if (!is_tchar((unsigned char)line[i]))
			break;
	if (colon == NULL || name_len == 0 || i < name_len)
		return seer_err_set(err, SEER_ECORRUPT,
				    "multipart: part %d: header line %d is not a header "
				    "(is the blank line before the data missing?)",
				    idx, lineno);
	vs = (size_t)(colon - line) + 1;
	ve = n;
	while (vs < ve && is_ows(line[vs]))
		vs++;
	while (ve > vs && is_ows(line[ve - 1]))
		ve--;
	if (ci_eq(line, name_len, "Content-Disposition")) {
		if ((*seen_cd)++)
			return seer_err_set(err, SEER_ECORRUPT,
					    "multipart: part %d: more than one Content-Disposition header",
					    idx);
		return parse_disposition(line + vs, ve - vs, part, idx, err);
	}
	if (ci_eq(line, name_len, "Content-Type"))
		part_content_type(line + vs, ve - vs, part);
	return 0;
}

/*
 * The content of part idx, c[0..n) between the CRLF ending one delimiter line
 * and the CRLF starting the next: header lines, each ending in CRLF, then
 * either the end of the content (no data) or a blank line and the data.
 */
static int parse_part(const uint8_t *c, size_t n, struct form_part *part, int idx, struct seer_err *err)
{
	size_t q = 0;
	int lineno = 0, seen_cd = 0, rc;

	memset(part, 0, sizeof(*part));
	for (;;) {
		size_t rest = n - q, scan = rest < FORM_LINE_MAX + 2 ? rest : FORM_LINE_MAX + 2, ll;
		const uint8_t *eol;

		if (rest == 0) {
			part->data = c + n;
			part->len = 0;
			return 0;
		}
		if (rest >= 2 && c[q] == '\r' && c[q + 1] == '\n') {
			part->data = c + q + 2;
			part->len = rest - 2;
			return 0;
		}
		lineno++;
		eol = crlf_find(c + q, scan);
		if (eol == NULL && rest <= FORM_LINE_MAX)
			return seer_err_set(
				err, SEER_ECORRUPT,
				"multipart: part %d: header block without the blank line that ends it", idx);
		ll = eol ? (size_t)(eol - (c + q)) : rest;
		if (ll > FORM_LINE_MAX)
			return seer_err_set(err, SEER_ECORRUPT, "multipart: part %d: header line over %d KiB",
					    idx, FORM_LINE_MAX / 1024);
		rc = parse_header((const char *)c + q, ll, part, idx, lineno, &seen_cd, err);
		if (rc < 0)
			return rc;
		q += ll + 2;
	}
}

int form_multipart_parse(const uint8_t *body, size_t len, const char *boundary, struct form_part *parts,
			 int max_parts, int *nparts, struct seer_err *err)
{
	uint8_t d[4 + FORM_BOUNDARY_MAX];
	size_t blen, dlen, at = 0, next = 0;
	int kind, count = 0;

	if (nparts != NULL)
		*nparts = 0;
	if (boundary == NULL || nparts == NULL || (body == NULL && len > 0) ||
	    (max_parts > 0 && parts == NULL))
		return seer_err_set(err, SEER_EINVAL, "form_multipart_parse: NULL argument");
	blen = strlen(boundary);
	if (blen == 0 || blen > FORM_BOUNDARY_MAX)
		return seer_err_set(err, SEER_EINVAL, "form_multipart_parse: boundary of %zu characters",
				    blen);
	for (size_t i = 0; i < blen; i++)
		if (!is_bchar((unsigned char)boundary[i]))
			return seer_err_set(
				err, SEER_EINVAL,
				"form_multipart_parse: boundary with a character RFC 2046 does not allow");
	memcpy(d, "\r\n--", 4);
	memcpy(d + 4, boundary, blen);
	dlen = 4 + blen;
	if (len == 0)
		return seer_err_set(err, SEER_ECORRUPT, "multipart: the body is empty");

	/* the first delimiter needs no CRLF before it when it opens the body */
	kind = DELIM_NONE;
	if (len >= dlen - 2 && memcmp(body, d + 2, dlen - 2) == 0) {
		kind = delim_kind(body, len, dlen - 2, &next);
		if (kind == DELIM_NONE && len > dlen - 2 && body[dlen - 2] == '\n')
			return seer_err_set(
				err, SEER_ECORRUPT,
				"multipart: the boundary line ends in a bare LF; lines must end in CRLF");
	}
	if (kind == DELIM_NONE)
		kind = delim_find(body, len, 0, d, dlen, &at, &next);
	if (kind == DELIM_NONE)
		return seer_err_set(err, SEER_ECORRUPT, "multipart: no boundary line \"--%s\" in the body",
				    boundary);

	while (kind == DELIM_OPEN) {
		struct form_part scratch;
		struct form_part *part = count < max_parts ? &parts[count] : &scratch;
		size_t start = next;
		int rc;

		kind = delim_find(body, len, start, d, dlen, &at, &next);
		if (kind == DELIM_NONE)
			return seer_err_set(err, SEER_ECORRUPT,
					    "multipart: part %d has no closing boundary (truncated upload?)",
					    count + 1);
		rc = parse_part(body + start, at - start, part, count + 1, err);
		if (rc < 0)
			return rc;
		if (count < INT_MAX)
			count++;
		*nparts = count;
	}
	return 0;
}
