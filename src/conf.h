/*
 * conf.h - seerd's settings: defaults, conf/seerd.conf files and
 * command-line overrides, all through one table of keys.
 *
 * The file syntax is "key = value" lines with '#' comments; on the command
 * line every key is also "--key VALUE" (dashes or underscores). The same
 * parser handles both, so a setting behaves the same wherever it is given.
 */
#ifndef SEER_CONF_H
#define SEER_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "status.h"

#define CONF_PATH_MAX 1024

struct seerd_conf {
	/* where things are */
	char socket[CONF_PATH_MAX];
	unsigned socket_mode;
	int backlog;
	char model[CONF_PATH_MAX];
	char db[CONF_PATH_MAX];
	char log_file[CONF_PATH_MAX];
	enum log_level log_level;
	char pid_file[CONF_PATH_MAX];
	char user[64];
	/* the pool */
	int workers;
	long max_requests, max_requests_jitter;
	double request_timeout, queue_timeout, drain_timeout;
	double respawn_delay_min, respawn_delay_max;
	int crash_loop_limit;
	double crash_loop_window;
	/* requests */
	size_t max_body;
	int max_images;
	int batch_requests;
	uint64_t max_pixels;
	uint32_t max_side;
	int topk_default, topk_max;
	int fast_decode, exif_rotate;
	/* history */
	int db_busy_timeout;
	int64_t retention_rows;
	int retention_days;
	int thumbnails;
};

/* The built-in defaults (those documented in conf/seerd.conf, paths empty). */
void conf_defaults(struct seerd_conf *c);

/* Set one key from its text value. SEER_ENOENT for an unknown key, SEER_EINVAL for a bad value. */
int conf_set(struct seerd_conf *c, const char *key, const char *value, struct seer_err *err);

/* Apply a configuration file; errors name the file and line. */
int conf_load(struct seerd_conf *c, const char *path, struct seer_err *err);

/*
 * Apply "--key VALUE" / "--key=VALUE" pairs from argv[first..argc).
 * Returns 0 or an error naming the flag.
 */
int conf_apply_args(struct seerd_conf *c, int argc, char **argv, int first, struct seer_err *err);

/* Check the settings that only make sense together (absolute socket path, topk_default <= topk_max, ...). */
int conf_validate(const struct seerd_conf *c, struct seer_err *err);

/* The number of workers to run: workers, or the number of online CPUs when 0. */
int conf_worker_count(const struct seerd_conf *c);

#endif
