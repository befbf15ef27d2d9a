/* status.c - filling in error records and naming status codes. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

int seer_err_set(struct seer_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *seer_status_str(int code)
{
	switch (code) {
	case SEER_OK: return "ok";
	case SEER_ENOMEM: return "out of memory";
	case SEER_EIO: return "input/output error";
	case SEER_ENOENT: return "no such file";
	case SEER_EINVAL: return "invalid argument";
	case SEER_ETRUNC: return "truncated input";
	case SEER_ECORRUPT: return "corrupt input";
	case SEER_EUNSUPPORTED: return "unsupported format";
	case SEER_ETOOLARGE: return "input too large";
	case SEER_EEMPTY: return "empty input";
	case SEER_EMODEL: return "wrong model";
	}
	return "unknown error";
}
