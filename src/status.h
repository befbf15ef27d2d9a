/*
 * status.h - the status codes and error record shared by every seer module.
 *
 * Fallible functions return 0 (SEER_OK) or one of the negative codes below and,
 * when the caller passes a struct seer_err, leave a one-line message in it
 * that names the function and the cause.
 */
#ifndef SEER_STATUS_H
#define SEER_STATUS_H

#include <stddef.h>

enum seer_status {
	SEER_OK = 0,
	SEER_ENOMEM = -1,       /* allocation failed */
	SEER_EIO = -2,          /* read, write, open or map failed */
	SEER_ENOENT = -3,       /* a file that does not exist */
	SEER_EINVAL = -4,       /* a bad argument from the caller */
	SEER_ETRUNC = -5,       /* input ends before its structure does */
	SEER_ECORRUPT = -6,     /* input contradicts its own format */
	SEER_EUNSUPPORTED = -7, /* a valid format or feature seer does not handle */
	SEER_ETOOLARGE = -8,    /* input exceeds a configured limit */
	SEER_EEMPTY = -9,       /* input has no bytes at all */
	SEER_EMODEL = -10,      /* a well-formed file of the wrong model */
};

#define SEER_ERR_MSG_MAX 256

/* One failure: its code and a human-readable line. */
struct seer_err {
	int code;
	char msg[SEER_ERR_MSG_MAX];
};

/*
 * Record a failure in err (which may be NULL) and return code, so callers
 * can write `return seer_err_set(err, SEER_EIO, "x: %s", why);`.
 */
int seer_err_set(struct seer_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A short, static description of a status code ("truncated input", ...). */
const char *seer_status_str(int code);

#endif
