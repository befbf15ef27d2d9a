/* blas.c - detect a mis-chosen OpenBLAS core and re-execute with the right one. */
#include "blas.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

#include "log.h"

#define REEXEC_GUARD "SEER_BLAS_REEXEC"

/* Capability rank of an OpenBLAS x86-64 core name: 0 SSE, 1 AVX, 2 AVX2, 3 AVX-512. */
static int core_rank(const char *core)
{
	static const char *avx512[] = { "SkylakeX", "Cooperlake", "SapphireRapids" };
	static const char *avx2[] = { "Haswell", "Zen", "Zen3" };
	static const char *avx[] = { "SandyBridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator" };

	for (size_t i = 0; i < sizeof(avx512) / sizeof(avx512[0]); i++)
		if (strcasecmp(core, avx512[i]) == 0)
			return 3;
	for (size_t i = 0; i < sizeof(avx2) / sizeof(avx2[0]); i++)
		if (strcasecmp(core, avx2[i]) == 0)
			return 2;
	for (size_t i = 0; i < sizeof(avx) / sizeof(avx[0]); i++)
		if (strcasecmp(core, avx[i]) == 0)
			return 1;
	return 0;
}

/* The best core type this CPU can run, or NULL when the library's pick is as good as any. */
static const char *best_core(int *rank)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512cd")) {
		*rank = 3;
		return "SkylakeX";
	}
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		*rank = 2;
		return "Haswell";
	}
	if (__builtin_cpu_supports("avx")) {
		*rank = 1;
		return "SandyBridge";
	}
	*rank = 0;
	return NULL;
}

const char *blas_core_name(void)
{
	return openblas_get_corename();
}

void blas_ensure_core(char **argv)
{
	const char *core = openblas_get_corename();
	const char *user = getenv("OPENBLAS_CORETYPE");
	int want_rank;
	const char *want = best_core(&want_rank);

	if (want == NULL || core_rank(core) >= want_rank) {
		if (getenv(REEXEC_GUARD) != NULL)
			log_info("OpenBLAS: %s kernels (set OPENBLAS_CORETYPE=%s: the library's own pick was older)",
				 core, core);
		else
			log_info("OpenBLAS: %s kernels", core);
		return;
	}
	if (user != NULL || getenv(REEXEC_GUARD) != NULL) {
		log_warn("OpenBLAS runs its %s kernels although this CPU supports %s%s; "
			 "expect slow inference", core, want,
			 user ? " (OPENBLAS_CORETYPE is set by the environment)" : "");
		return;
	}
	log_debug("OpenBLAS chose %s on a CPU that supports %s; re-executing with OPENBLAS_CORETYPE=%s",
		  core, want, want);
	if (setenv("OPENBLAS_CORETYPE", want, 1) < 0 || setenv(REEXEC_GUARD, "1", 1) < 0) {
		log_warn("blas_ensure_core: setenv: %s", strerror(errno));
		return;
	}
	{
		/*
		 * Through the program's real path rather than /proc/self/exe, so
		 * that the process keeps its name ("seerd", not "exe") for ps,
		 * pgrep and seerctl.
		 */
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n > 0) {
			self[n] = '\0';
			execv(self, argv);
		}
		execv("/proc/self/exe", argv);
	}
	log_warn("blas_ensure_core: re-exec failed (%s); continuing with the %s kernels", strerror(errno), core);
	unsetenv("OPENBLAS_CORETYPE");
	unsetenv(REEXEC_GUARD);
}

void blas_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}
