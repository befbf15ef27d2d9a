/*
 * log.h - one-line log records on stderr (or a file set by the service).
 *
 * Each record carries a timestamp, the process id and a level, so lines from
 * several worker processes sharing one log file can be told apart.
 */
#ifndef SEER_LOG_H
#define SEER_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Records below this level are dropped. Defaults to LOG_INFO. */
void log_set_level(enum log_level level);

/*
 * Parse "debug", "info", "warn" or "error" into *level; returns 0, or -1
 * (and leaves *level alone) for anything else, NULL included.
 */
int log_level_parse(const char *name, enum log_level *level);

/* Use a short form ("seer: message") fit for a command line. */
void log_set_plain(int plain);

/*
 * Send records (and anything else written to standard error) to the file at
 * path, opened for appending and created 0640 if needed; called again, it
 * reopens the file, so a log rotated away is let go. Returns 0 or -1 with
 * errno set (the old destination is then kept).
 */
int log_reopen(const char *path);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
