/*
 * seerd.c - the seer FastCGI worker pool: command line and start-up.
 * The supervisor is pool.c, a worker is worker.c, the API is api.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "conf.h"
#include "gemm.h"
#include "log.h"
#include "pool.h"
#include "resnet.h"

static const char usage_text[] =
	"usage: seerd [--config FILE] [--check] [--KEY VALUE]...\n"
	"\n"
	"Run the seer FastCGI worker pool in the foreground. Every setting of\n"
	"seerd.conf (see conf/seerd.conf, which documents them all) can be given\n"
	"as --KEY VALUE and overrides the file, e.g. --workers 2 --socket /run/seer.sock.\n"
	"\n"
	"  --config FILE  read settings from FILE\n"
	"  --check        check the settings and the model, then exit (0 = good)\n"
	"  --help         this text;  --version  the version\n"
	"\n"
	"Signals: TERM finishes current requests and exits; HUP reloads the\n"
	"configuration and the model without dropping requests; USR1 reopens the log.\n";

/* Load the configuration, then check it or run the pool. */
static int run(const struct pool_args *a, int check)
{
	struct seerd_conf c;
	struct seer_err err = {0};

	if (pool_load_conf(a, &c, &err) != 0) {
		log_error("configuration: %s", err.msg);
		return 2;
	}
	log_set_level(c.log_level);
	if (c.log_file[0] != '\0' && !check && log_reopen(c.log_file) != 0) {
		log_error("cannot open log file %s", c.log_file);
		return 2;
	}
	if (check) {
		struct resnet *m;

		if (resnet_open(c.model, &m, &err) != 0) {
			log_error("model: %s", err.msg);
			return 1;
		}
		printf("seerd: configuration good: %d workers, socket %s, model %s (%s), history %s\n",
		       conf_worker_count(&c), c.socket, c.model, resnet_model_id(m), c.db);
		resnet_free(m);
		return 0;
	}
	log_info("seerd %s starting (OpenBLAS core %s, convolutions on %s)", PACKAGE_VERSION,
		 blas_core_name(), gemm_impl_name());
	return pool_run(a, &c);
}

int main(int argc, char **argv)
{
	struct pool_args a = {NULL, 0, NULL};
	char **rest;
	int check = 0, code;

	blas_ensure_core(argv); /* may re-execute with OPENBLAS_CORETYPE set */
	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (rest == NULL)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			free(rest);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("seerd %s\n", PACKAGE_VERSION);
			free(rest);
			return 0;
		} else if (!strcmp(argv[i], "--check")) {
			check = 1;
		} else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			a.conf_path = argv[++i];
		} else if (!strncmp(argv[i], "--config=", 9)) {
			a.conf_path = argv[i] + 9;
		} else {
			rest[a.argc++] = argv[i];
		}
	}
	a.argv = rest;
	code = run(&a, check);
	free(rest);
	return code;
}
