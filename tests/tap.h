/*
 * tap.h - the few Test Anything Protocol helpers seer's C tests share:
 * numbered "ok"/"not ok" lines, a plan printed at the end, exit status.
 */
#ifndef SEER_TAP_H
#define SEER_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failed;

/* Report one test point; returns cond so callers can chain. */
__attribute__((format(printf, 2, 3), unused))
static int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

/* Print the plan (at the end, which TAP allows) and return the exit status. */
__attribute__((unused))
static int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
