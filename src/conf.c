/* conf.c - seerd settings from a table of keys: files and flags share one parser. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum conf_type { T_PATH, T_NAME, T_INT, T_LONG, T_SIZE, T_SECONDS, T_BOOL, T_MODE, T_LEVEL };

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t off;	 /* offset in struct seerd_conf */
	size_t size;	 /* of a string field */
	double min, max; /* numeric range */
};

#define F(field) offsetof(struct seerd_conf, field), sizeof(((struct seerd_conf *)0)->field)

static const struct conf_key keys[] = {
	{"socket", T_PATH, F(socket), 0, 0},
	{"socket_mode", T_MODE, F(socket_mode), 0, 0770},
	{"backlog", T_INT, F(backlog), 1, 65535},
	{"model", T_PATH, F(model), 0, 0},
	{"db", T_PATH, F(db), 0, 0},
	{"log_file", T_PATH, F(log_file), 0, 0},
	{"log_level", T_LEVEL, F(log_level), 0, 0},
	{"pid_file", T_PATH, F(pid_file), 0, 0},
	{"user", T_NAME, F(user), 0, 0},
	{"workers", T_INT, F(workers), 0, 64},
	{"max_requests", T_LONG, F(max_requests), 0, 1e12},
	{"max_requests_jitter", T_LONG, F(max_requests_jitter), 0, 1e12},
	{"request_timeout", T_SECONDS, F(request_timeout), 0.1, 86400},
	{"queue_timeout", T_SECONDS, F(queue_timeout), 0, 86400},
	{"drain_timeout", T_SECONDS, F(drain_timeout), 0, 86400},
	{"respawn_delay_min", T_SECONDS, F(respawn_delay_min), 0, 3600},
	{"respawn_delay_max", T_SECONDS, F(respawn_delay_max), 0, 3600},
	{"crash_loop_limit", T_INT, F(crash_loop_limit), 1, 1000000},
	{"crash_loop_window", T_SECONDS, F(crash_loop_window), 1, 86400},
	{"max_body", T_SIZE, F(max_body), 1024, 1024.0 * 1024 * 1024},
	{"max_images", T_INT, F(max_images), 1, 64},
	{"batch_requests", T_INT, F(batch_requests), 1, 64},
	{"max_pixels", T_LONG, F(max_pixels), 1, 1e9},
	{"max_side", T_INT, F(max_side), 1, 1000000},
	{"topk_default", T_INT, F(topk_default), 1, 1000},
	{"topk_max", T_INT, F(topk_max), 1, 1000},
	{"fast_decode", T_BOOL, F(fast_decode), 0, 0},
	{"exif_rotate", T_BOOL, F(exif_rotate), 0, 0},
	{"db_busy_timeout", T_INT, F(db_busy_timeout), 0, 3600000},
	{"retention_rows", T_LONG, F(retention_rows), 0, 1e15},
	{"retention_days", T_INT, F(retention_days), 0, 100000},
	{"thumbnails", T_BOOL, F(thumbnails), 0, 0},
};

#undef F

void conf_defaults(struct seerd_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->socket_mode = 0660;
	c->backlog = 256;
	c->log_level = LOG_INFO;
	c->workers = 0;
	c->max_requests = 10000;
	c->max_requests_jitter = 1000;
	c->request_timeout = 30;
	c->queue_timeout = 10;
	c->drain_timeout = 30;
	c->respawn_delay_min = 0.1;
	c->respawn_delay_max = 10;
	c->crash_loop_limit = 5;
	c->crash_loop_window = 60;
	c->max_body = 20u << 20;
	c->max_images = 8;
	c->batch_requests = 4;
	c->max_pixels = 40000000;
	c->max_side = 12000;
	c->topk_default = 5;
	c->topk_max = 20;
	c->fast_decode = 0;
	c->exif_rotate = 1;
	c->db_busy_timeout = 5000;
	c->retention_rows = 1000000;
	c->retention_days = 0;
	c->thumbnails = 1;
}

/* Find a key; dashes in name count as underscores. */
static const struct conf_key *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *k = keys[i].name;
		size_t j;

		if (strlen(k) != len)
			continue;
		for (j = 0; j < len; j++)
			if (k[j] != (name[j] == '-' ? '_' : name[j]))
				break;
		if (j == len)
			return &keys[i];
	}
	return NULL;
}

/* A number with an optional fraction and (for sizes) a K/M/G suffix. */
static int parse_number(const char *v, enum conf_type type, double *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (end == v || errno != 0 || !isfinite(x))
		return -1;
	if (type == T_SIZE && *end != '\0' && end[1] == '\0') {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			x *= 1024;
			break;
		case 'M':
			x *= 1024.0 * 1024;
			break;
		case 'G':
			x *= 1024.0 * 1024 * 1024;
			break;
		default:
			return -1;
		}
		end++;
	}
	if (*end != '\0')
		return -1;
	if (type != T_SECONDS && x != floor(x))
		return -1;
	*out = x;
	return 0;
}

static int set_key(struct seerd_conf *c, const struct conf_key *k, const char *v, struct seer_err *err)
{
	char *field = (char *)c + k->off;
	double x;

	switch (k->type) {
	case T_PATH:
	case T_NAME:
		if (strlen(v) >= k->size)
			return seer_err_set(err, SEER_EINVAL, "%s: value too long", k->name);
		if (k->type == T_NAME && strpbrk(v, "/: \t") != NULL)
			return seer_err_set(err, SEER_EINVAL, "%s: \"%s\" is not a user name", k->name, v);
		strcpy(field, v);
		return 0;
	case T_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
			*(int *)field = 1;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
			*(int *)field = 0;
		else
			return seer_err_set(err, SEER_EINVAL, "%s: \"%s\" is not yes or no", k->name, v);
		return 0;
	case T_LEVEL:
		if (log_level_parse(v, (enum log_level *)field) != 0)
			return seer_err_set(err, SEER_EINVAL, "%s: \"%s\" is not debug, info, warn or error",
					    k->name, v);
		return 0;
	case T_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(v, &end, 8);
		if (*v == '\0' || *end != '\0' || errno != 0)
			return seer_err_set(err, SEER_EINVAL, "%s: \"%s\" is not an octal mode", k->name, v);
		/* the socket must never be reachable by everyone */
		if (m & ~0770ul)
			return seer_err_set(err, SEER_EINVAL,
					    "%s: %s gives access to other users; use 0660 or stricter",
					    k->name, v);
		*(unsigned *)field = (unsigned)m;
		return 0;
	}
	default:
		break;
	}
	if (parse_number(v, k->type, &x) != 0)
		return seer_err_set(err, SEER_EINVAL, "%s: \"%s\" is not a %s", k->name, v,
				    k->type == T_SIZE	   ? "size (e.g. 20M)"
				    : k->type == T_SECONDS ? "number of seconds"
							   : "whole number");
	if (x < k->min || x > k->max)
		return seer_err_set(err, SEER_EINVAL, "%s: %s is out of range [%g, %g]", k->name, v, k->min,
				    k->max);
	switch (k->type) {
	case T_INT:
		if (k->size == sizeof(uint32_t) && k->off == offsetof(struct seerd_conf, max_side))
			*(uint32_t *)field = (uint32_t)x;
		else
			*(int *)field = (int)x;
		break;
	case T_LONG:
		if (k->size == sizeof(long))
			*(long *)field = (long)x;
		else
			*(int64_t *)field = (int64_t)x;
		break;
	case T_SIZE:
		*(size_t *)field = (size_t)x;
		break;
	case T_SECONDS:
		*(double *)field = x;
		break;
	default:
		break;
	}
	return 0;
}

int conf_set(struct seerd_conf *c, const char *key, const char *value, struct seer_err *err)
{
	const struct conf_key *k = find_key(key, strlen(key));

	if (k == NULL)
		return seer_err_set(err, SEER_ENOENT, "unknown setting \"%s\"", key);
	return set_key(c, k, value, err);
}

/* Trim spaces at both ends of s in place; returns the start. */
static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int conf_load(struct seerd_conf *c, const char *path, struct seer_err *err)
{
	char line[4096];
	int lineno = 0, rc = 0;
	FILE *fp = fopen(path, "re");

	if (fp == NULL)
		return seer_err_set(err, errno == ENOENT ? SEER_ENOENT : SEER_EIO, "%s: %s", path,
				    strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct seer_err e = {0};
		char *hash, *eq, *key, *value;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			rc = seer_err_set(err, SEER_EINVAL, "%s:%d: line too long", path, lineno);
			break;
		}
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			rc = seer_err_set(err, SEER_EINVAL, "%s:%d: expected \"key = value\"", path, lineno);
			break;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		if (conf_set(c, key, value, &e) != 0) {
			rc = seer_err_set(err, e.code, "%s:%d: %s", path, lineno, e.msg);
			break;
		}
	}
	if (rc == 0 && ferror(fp))
		rc = seer_err_set(err, SEER_EIO, "%s: read error", path);
	fclose(fp);
	return rc;
}

int conf_apply_args(struct seerd_conf *c, int argc, char **argv, int first, struct seer_err *err)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i], *eq, *value;
		const struct conf_key *k;
		struct seer_err e = {0};
		size_t len;

		if (strncmp(a, "--", 2) != 0)
			return seer_err_set(err, SEER_EINVAL, "unexpected argument \"%s\"", a);
		a += 2;
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		k = find_key(a, len);
		if (k == NULL)
			return seer_err_set(err, SEER_ENOENT, "unknown option \"%s\"", argv[i]);
		if (eq != NULL) {
			value = eq + 1;
		} else {
			if (i + 1 >= argc)
				return seer_err_set(err, SEER_EINVAL, "%s needs a value", argv[i]);
			value = argv[++i];
		}
		if (set_key(c, k, value, &e) != 0)
			return seer_err_set(err, e.code, "--%s", e.msg);
	}
	return 0;
}

int conf_validate(const struct seerd_conf *c, struct seer_err *err)
{
	if (c->socket[0] != '/')
		return seer_err_set(err, SEER_EINVAL, "socket: an absolute path is needed (got \"%s\")",
				    c->socket);
	if (strlen(c->socket) >= 108)
		return seer_err_set(err, SEER_EINVAL, "socket: \"%s\" is too long for a Unix socket path",
				    c->socket);
	if (c->model[0] == '\0')
		return seer_err_set(err, SEER_EINVAL, "model: no weight file given");
	if (c->db[0] == '\0')
		return seer_err_set(err, SEER_EINVAL, "db: no database file given");
	if (c->topk_default > c->topk_max)
		return seer_err_set(err, SEER_EINVAL, "topk_default (%d) is above topk_max (%d)",
				    c->topk_default, c->topk_max);
	if (c->topk_max > 1000)
		return seer_err_set(err, SEER_EINVAL, "topk_max: at most 1000 classes");
	if (c->respawn_delay_min > c->respawn_delay_max)
		return seer_err_set(err, SEER_EINVAL, "respawn_delay_min is above respawn_delay_max");
	return 0;
}

int conf_worker_count(const struct seerd_conf *c)
{
	long n;

	if (c->workers > 0)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
