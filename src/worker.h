/*
 * worker.h - one seerd worker process: set up on the model the supervisor
 * loaded before forking it (read-only memory shared by the whole pool),
 * then answer FastCGI requests from the shared listening socket until told
 * to stop, recycled, or killed.
 */
#ifndef SEER_WORKER_H
#define SEER_WORKER_H

#include <sys/types.h>

#include "conf.h"
#include "scoreboard.h"

struct resnet;

struct worker_args {
	const struct seerd_conf *conf;
	const struct resnet *model; /* the supervisor's, inherited across fork() */
	int listen_fd;
	struct scoreboard *sb;
	int slot;
	pid_t supervisor;    /* its parent, to notice when that is gone */
	int drop_privileges; /* switch to uid/gid once set up */
	uid_t uid;
	gid_t gid;
};

/* Run a worker in a freshly forked child; returns the process's exit status. */
int worker_main(const struct worker_args *a);

#endif
