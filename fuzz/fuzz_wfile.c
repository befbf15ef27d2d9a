/* fuzz_wfile.c - libFuzzer target: seer weight files, then binding them to ResNet-18. */
#include <stdint.h>
#include <stdlib.h>

#include "resnet.h"
#include "wfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seer_err err;
	struct wfile *f = NULL;
	struct resnet *m = NULL;

	if (wfile_open_mem(data, size, &f, &err) < 0)
		return 0;
	if (resnet_bind(f, &m, &err) < 0)
		wfile_close(f);
	else
		resnet_free(m);
	return 0;
}
