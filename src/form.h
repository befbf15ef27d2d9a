/*
 * form.h - the parts of an HTTP request seerd has to parse itself: query
 * strings, percent-encoding and multipart/form-data bodies (RFC 7578).
 *
 * Input comes straight from clients: every function is bounded by the
 * lengths it is given, never reads past them, and never allocates.
 */
#ifndef SEER_FORM_H
#define SEER_FORM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/*
 * Decode percent-escapes (and '+' as a space when plus_space) of the len
 * bytes at s into out (cap bytes, NUL-terminated). Returns the decoded
 * length, or SEER_ECORRUPT for a bad escape ("%zz", a cut "%2") or a NUL
 * byte (raw or %00: it would cut the C string short), SEER_ETOOLARGE when it
 * does not fit (cap 0 included). out is "" after any failure but
 * SEER_ETOOLARGE, where it may hold a prefix.
 */
int form_url_decode(const char *s, size_t len, int plus_space, char *out, size_t cap);

/*
 * Find key in a query string ("a=1&b=x%20y"; NULL or "" is an empty query)
 * and decode its value into out ('+' is a space). Names are compared after
 * decoding them ("%74opk" is "topk"); a name that does not decode matches
 * nothing, so junk in other parameters never fails the lookup. Returns 1
 * when found (the first occurrence; "key" without '=' gives ""), 0 when
 * absent (out ""), the negative status of form_url_decode() for the found
 * value, or SEER_EINVAL for a NULL key or out.
 */
int form_query_get(const char *query, const char *key, char *out, size_t cap);

/*
 * The boundary parameter of a multipart/form-data Content-Type (media type
 * and parameter names case-insensitive, value quoted or not, 1 to 70
 * characters as RFC 2046 allows). Returns 0 and fills out (NUL-terminated;
 * 71 bytes always suffice), SEER_EUNSUPPORTED when the type is not
 * multipart/form-data (NULL included), SEER_ECORRUPT when the boundary is
 * missing, given twice or invalid, SEER_ETOOLARGE when out is too small.
 */
int form_multipart_boundary(const char *content_type, char *out, size_t cap);

#define FORM_NAME_MAX 64
#define FORM_FILENAME_MAX 256
#define FORM_TYPE_MAX 128

/*
 * One part. data points into the body given to form_multipart_parse().
 * filename is only the last path component (after any '/' or '\'), with
 * control characters (and Unicode bidi overrides) turned into '_'; a longer
 * one keeps its start and its extension. It is UTF-8 when the client sent
 * UTF-8 (every browser does); other bytes are passed through as sent.
 */
struct form_part {
	char name[FORM_NAME_MAX];	  /* from Content-Disposition; "" if absent */
	char filename[FORM_FILENAME_MAX]; /* decoded (filename* preferred over filename); "" if absent */
	char content_type[FORM_TYPE_MAX]; /* media type without parameters; "" if absent or too long */
	const uint8_t *data;
	size_t len;
};

/*
 * Split a multipart body. Parts beyond max_parts are counted in *nparts but
 * not stored (so the caller can refuse "too many" with the real count);
 * parts may be NULL when max_parts is 0. Returns 0, or SEER_ECORRUPT (with a
 * message naming what is wrong: an empty body, no opening boundary, a part
 * whose header block has no blank line, missing closing boundary, ...) and
 * *nparts counting the good parts before the bad one. Over-long names are
 * SEER_ECORRUPT too; header lines are limited to 8 KiB. SEER_EINVAL for a
 * NULL argument or a boundary that form_multipart_boundary() would refuse.
 * Time is linear in len, whatever the bytes; about 17 KiB of stack is used.
 */
int form_multipart_parse(const uint8_t *body, size_t len, const char *boundary, struct form_part *parts,
			 int max_parts, int *nparts, struct seer_err *err);

#endif
