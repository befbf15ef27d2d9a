/*
 * blas.h - making sure OpenBLAS runs the kernels this CPU can run.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not recognise some newer
 * CPUs and falls back to its "Prescott" SSE3 kernels, about 4x slower than
 * the AVX-512 ones. The core is chosen when the library loads, before
 * main(), so the only cure is to set OPENBLAS_CORETYPE and re-execute.
 */
#ifndef SEER_BLAS_H
#define SEER_BLAS_H

/*
 * Call first thing in main(). When OpenBLAS chose a core older than what
 * the CPU supports and the user did not set OPENBLAS_CORETYPE, set it and
 * re-execute /proc/self/exe with argv (once: a guard variable stops loops).
 * Returns only when no re-execution was needed or it failed (logged).
 */
void blas_ensure_core(char **argv);

/* Name of the kernel set in use, e.g. "SkylakeX". */
const char *blas_core_name(void);

/*
 * Number of threads OpenBLAS may use for one call. seer keeps this at 1
 * and runs its own threads (see nn.h), each calling sgemm on its share.
 */
void blas_set_threads(int n);

#endif
