/*
 * test_conf.c - seerd's settings: the stock conf/seerd.conf documents the
 * built-in defaults, bad values are refused with the file and line, and the
 * command line overrides the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "tap.h"

static const char *write_tmp(const char *text)
{
	static char path[64];
	FILE *fp;

	snprintf(path, sizeof(path), "/tmp/seer-conf-%d.conf", (int)getpid());
	fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
	return path;
}

int main(void)
{
	const char *srcdir = getenv("srcdir");
	struct seerd_conf d, c;
	struct seer_err err = {0};
	char stock[1024];
	int rc;

	conf_defaults(&d);
	snprintf(stock, sizeof(stock), "%s/conf/seerd.conf", srcdir ? srcdir : ".");
	conf_defaults(&c);
	rc = conf_load(&c, stock, &err);
	tap_ok(rc == 0, "the stock conf/seerd.conf loads (%s)", err.msg);
	/* the stock file's paths are examples; everything else must equal the defaults */
	memcpy(c.socket, d.socket, sizeof(c.socket));
	memcpy(c.model, d.model, sizeof(c.model));
	memcpy(c.db, d.db, sizeof(c.db));
	tap_ok(memcmp(&c, &d, sizeof(c)) == 0, "... and documents exactly the built-in defaults");

	conf_defaults(&c);
	rc = conf_load(
		&c,
		write_tmp("# comment\n\n  workers = 3  # trailing\nmax_body = 2M\nrequest_timeout=0.5\n"
			  "fast_decode = yes\nsocket_mode = 0600\nlog_level = debug\n"),
		&err);
	tap_ok(rc == 0 && c.workers == 3 && c.max_body == 2u << 20 && c.request_timeout == 0.5 &&
		       c.fast_decode == 1 && c.socket_mode == 0600 && c.log_level == LOG_DEBUG,
	       "comments, spacing, sizes, fractions, booleans, octal modes, levels");

	static const struct {
		const char *text, *want;
	} bad[] = {
		{"workers = many\n", ":1: workers"},	   {"\nworkers = -1\n", ":2: workers"},
		{"max_body = 12Q\n", ":1: max_body"},	   {"socket_mode = 0666\n", "other users"},
		{"socket_mode = 0662\n", "other users"},   {"nonsense = 1\n", "unknown setting \"nonsense\""},
		{"workers\n", "expected \"key = value\""}, {"fast_decode = perhaps\n", "yes or no"},
		{"user = ../root\n", "not a user name"},   {"topk_max = 0\n", "topk_max"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf_defaults(&c);
		err.msg[0] = '\0';
		rc = conf_load(&c, write_tmp(bad[i].text), &err);
		tap_ok(rc != 0 && strstr(err.msg, bad[i].want) != NULL, "refused: %.*s -> %s",
		       (int)strcspn(bad[i].text + (bad[i].text[0] == '\n'), "\n"),
		       bad[i].text + (bad[i].text[0] == '\n'), err.msg);
	}

	char *argv[] = {"--workers", "5", "--max-body=1M", "--socket", "/run/x.sock", "--log_level", "warn"};
	conf_defaults(&c);
	rc = conf_apply_args(&c, 7, argv, 0, &err);
	tap_ok(rc == 0 && c.workers == 5 && c.max_body == 1u << 20 && !strcmp(c.socket, "/run/x.sock") &&
		       c.log_level == LOG_WARN,
	       "--key VALUE, --key=VALUE, dashes or underscores");
	char *argv2[] = {"--wrokers", "5"};
	rc = conf_apply_args(&c, 2, argv2, 0, &err);
	tap_ok(rc != 0 && strstr(err.msg, "--wrokers"), "an unknown flag is named (%s)", err.msg);
	char *argv3[] = {"--workers"};
	rc = conf_apply_args(&c, 1, argv3, 0, &err);
	tap_ok(rc != 0 && strstr(err.msg, "needs a value"), "a flag without its value (%s)", err.msg);

	conf_defaults(&c);
	strcpy(c.model, "/m.seer");
	strcpy(c.db, "/h.db");
	strcpy(c.socket, "relative.sock");
	tap_ok(conf_validate(&c, &err) != 0 && strstr(err.msg, "absolute"),
	       "a relative socket path is refused");
	strcpy(c.socket, "/run/seer.sock");
	tap_ok(conf_validate(&c, &err) == 0, "a complete configuration validates");
	c.topk_default = 30;
	tap_ok(conf_validate(&c, &err) != 0, "topk_default above topk_max is refused");
	c.topk_default = 5;
	c.workers = 0;
	tap_ok(conf_worker_count(&c) >= 1, "workers = 0 means one per core (%d here)", conf_worker_count(&c));

	unlink(write_tmp(""));
	return tap_done();
}
