/* log.c - timestamped one-line records, written with a single write(2). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static int plain_format;

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_level_parse(const char *name, enum log_level *level)
{
	static const char *names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; name != NULL && i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_set_plain(int plain)
{
	plain_format = plain;
}

int log_reopen(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);

	if (fd < 0)
		return -1;
	/* dup2 replaces fd 2 atomically: no record is ever written nowhere */
	if (fd != STDERR_FILENO && dup2(fd, STDERR_FILENO) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	if (fd != STDERR_FILENO)
		close(fd);
	return 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char line[1024];
	size_t n = 0;
	va_list ap;
	int r;

	if (level < min_level)
		return;
	if (plain_format) {
		r = snprintf(line, sizeof(line), "seer: %s",
			     level >= LOG_WARN ? (level == LOG_WARN ? "warning: " : "error: ") : "");
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%ld] %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			     (long)getpid(), names[level]);
	}
	if (r > 0)
		n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* one write per record keeps lines from concurrent processes whole */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
