/*
 * pool.h - the seerd supervisor: binds the FastCGI socket, pre-forks the
 * workers and keeps them running.
 *
 * It respawns a crashed worker with a doubling back-off and gives up on a
 * slot that crashes crash_loop_limit times within crash_loop_window (the
 * pool then reports not ready); replaces workers that recycle themselves
 * after max_requests; kills a request that runs past request_timeout.
 * Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration
 * file and the model with no request dropped (the new workers are serving
 * before the old ones are told to finish); SIGUSR1 reopens the log file in
 * every process.
 */
#ifndef SEER_POOL_H
#define SEER_POOL_H

#include "conf.h"

struct pool_args {
	const char *conf_path; /* NULL: defaults only */
	int argc;	       /* "--key value" overrides, applied after the file, again at each reload */
	char **argv;
};

/* Build the configuration from a file and overrides (as at start and at each reload). */
int pool_load_conf(const struct pool_args *a, struct seerd_conf *c, struct seer_err *err);

/* Run the pool until SIGTERM; returns the process exit status. */
int pool_run(const struct pool_args *a, const struct seerd_conf *c);

#endif
