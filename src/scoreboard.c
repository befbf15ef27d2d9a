/* scoreboard.c - the shared per-worker slots of the seerd pool. */
#include "scoreboard.h"

#include <sys/mman.h>
#include <time.h>

const double sb_bucket_le[SB_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 1e300};

static const int status_codes[SB_NSTATUS] = {200, 400, 403, 404, 405, 413, 415, 422, 429, 500, 503};

struct scoreboard *sb_create(void)
{
	void *p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p; /* anonymous mappings start zeroed */
}

void sb_destroy(struct scoreboard *sb)
{
	if (sb != NULL)
		munmap(sb, sizeof(*sb));
}

enum sb_status sb_status_index(int http_status)
{
	for (int i = 0; i < SB_NSTATUS; i++)
		if (status_codes[i] == http_status)
			return (enum sb_status)i;
	return SB_S500;
}

int sb_status_code(enum sb_status s)
{
	return status_codes[s];
}

void sb_record(struct sb_slot *s, int http_status, int is_classify, double seconds)
{
	sb_add(s->status[sb_status_index(http_status)], 1);
	if (!is_classify)
		return;
	for (int b = 0; b < SB_BUCKETS; b++) {
		if (seconds <= sb_bucket_le[b]) {
			sb_add(s->hist[b], 1);
			break;
		}
	}
	sb_add(s->dur_us_sum, (uint64_t)(seconds * 1e6));
}

int64_t sb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
