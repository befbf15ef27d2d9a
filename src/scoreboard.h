/*
 * scoreboard.h - the state the supervisor and its workers share: one slot
 * per worker process in an anonymous shared mapping made before the first
 * fork.
 *
 * Each slot is written by the one process that owns it (its worker, or the
 * supervisor before the worker starts), so plain relaxed atomics suffice;
 * anyone may read. Request counters stay in the slot when its worker is
 * replaced, so totals count from the supervisor's start (Prometheus
 * counters must not go backwards). The supervisor uses busy_since to kill
 * requests that run past their timeout; any worker reads the whole board to
 * answer /metrics and /api/ready.
 */
#ifndef SEER_SCOREBOARD_H
#define SEER_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

#define SB_SLOTS 128  /* twice the most workers: old and new generations during a reload */
#define SB_BUCKETS 12 /* latency histogram, the last one is +Inf */

enum sb_state {
	SB_EMPTY = 0, /* no process */
	SB_STARTING,  /* forked, setting up (buffers, database) */
	SB_IDLE,      /* waiting for connections */
	SB_BUSY,      /* serving a request */
	SB_DRAINING,  /* told to stop; finishing its request */
};

/* The HTTP statuses seerd answers with, as counter indices. */
enum sb_status {
	SB_S200,
	SB_S400,
	SB_S403,
	SB_S404,
	SB_S405,
	SB_S413,
	SB_S415,
	SB_S422,
	SB_S429,
	SB_S500,
	SB_S503,
	SB_NSTATUS
};

struct sb_slot {
	pid_t pid;
	int state;	    /* enum sb_state */
	int generation;	    /* which configuration started it */
	int64_t busy_since; /* ms (CLOCK_MONOTONIC) the current request started, 0 when none */
	uint64_t served;    /* requests of the current process */
	/* cumulative over every process that used this slot */
	uint64_t status[SB_NSTATUS];
	uint64_t hist[SB_BUCKETS]; /* classify request durations, per bucket (not cumulative) */
	uint64_t dur_us_sum;	   /* their sum, microseconds */
	uint64_t images, cache_hits, storage_failures;
	uint64_t abandoned; /* requests dropped unserved: nginx had closed their connection */
};

struct scoreboard {
	int ready;	   /* 0 while a crash loop has stopped a slot */
	int shutdown;	   /* 1 once the pool is shutting down: workers empty the queue, then exit */
	int nslots;	   /* slots in use: 0..nslots-1 */
	uint64_t restarts; /* workers replaced after a crash or a kill */
	uint64_t timeouts; /* requests killed for running too long */
	char model_id[64];
	struct sb_slot slot[SB_SLOTS];
};

/* The upper bounds of the histogram buckets, seconds (the last is +Inf). */
extern const double sb_bucket_le[SB_BUCKETS];

/* Map a shared, zeroed board; NULL on failure (errno set). */
struct scoreboard *sb_create(void);
void sb_destroy(struct scoreboard *sb);

/* Counter index of an HTTP status (unknown ones count as 500). */
enum sb_status sb_status_index(int http_status);
int sb_status_code(enum sb_status s);

/* Relaxed atomic helpers for the fields above. */
#define sb_add(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define sb_get(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define sb_put(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* Record one finished request of slot s: its status and, for classify, its duration. */
void sb_record(struct sb_slot *s, int http_status, int is_classify, double seconds);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t sb_now_ms(void);

#endif
