/*
 * seer.c - the `seer` command line: convert weights, classify images,
 * benchmark the network, and expose the pipeline's stages for testing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "convert.h"
#include "gemm.h"
#include "img.h"
#include "json.h"
#include "labels.h"
#include "log.h"
#include "nn.h"
#include "resnet.h"

#define IMAGE_FLOATS (3 * RESNET_INPUT * RESNET_INPUT)
#define CLASSIFY_BATCH 8 /* images per forward pass in `seer classify` */
#define FORWARD_MAX_BATCH 64

static const char usage_text[] =
	"usage: seer COMMAND [OPTIONS] ...\n"
	"\n"
	"commands:\n"
	"  convert [--name ID] IN.pth OUT.seer\n"
	"      convert a torchvision ResNet-18 state_dict (torch.save file) to seer's format\n"
	"  classify [--model PATH] [--topk K] [--json] [--threads T] [--fast] [--no-exif-rotate] IMAGE...\n"
	"      print the top K ImageNet classes of each JPEG or PNG image\n"
	"  bench [--model PATH] [--threads T] [--batch B] [--iters N] [--gemm auto|avx512|openblas] [--json]\n"
	"      time the network alone: median and p90 latency, images per second\n"
	"  preprocess [--exact|--fast] [--no-exif-rotate] IMAGE OUT\n"
	"      write the 3x224x224 float32 tensor (little-endian, CHW, normalised) the network sees\n"
	"\n"
	"Images are preprocessed exactly as torchvision does on a PIL image (Resize 256,\n"
	"CenterCrop 224, Normalize). --fast decodes large JPEGs at 1/2, 1/4 or 1/8 size first\n"
	"(libjpeg DCT scaling, as PIL's draft mode): several times faster, close to but not\n"
	"bit-exact with the reference. JPEG EXIF orientation is applied unless --no-exif-rotate.\n"
	"  forward [--model PATH] [--threads T] IN.f32 OUT.f32\n"
	"      run the network on N x 3 x 224 x 224 float32 inputs, write N x 1000 logits\n"
	"\n"
	"The model defaults to $SEER_MODEL, else $XDG_DATA_HOME/seer/resnet18.seer\n"
	"(~/.local/share/seer/resnet18.seer); weights/fetch-resnet18.sh puts it there.\n"
	"--threads T splits each image's work over T threads (default 1; on a machine whose\n"
	"cores are busy with other work, more threads than idle cores is much slower).\n"
	"SEER_LOG_LEVEL=debug|info|warn|error sets what is logged to stderr (default warn).\n";

static void usage(FILE *fp)
{
	fputs(usage_text, fp);
}

/* ------------------------------------------------------------ helpers */

/* The default model path, written into buf. */
static const char *default_model_path(char *buf, size_t cap)
{
	const char *env = getenv("SEER_MODEL");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");

	if (env != NULL && env[0] != '\0')
		return env;
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, cap, "%s/seer/resnet18.seer", xdg);
	else
		snprintf(buf, cap, "%s/.local/share/seer/resnet18.seer", home ? home : "");
	return buf;
}

/* Open the model at path (or the default), logging a helpful line on failure. */
static struct resnet *open_model(const char *path)
{
	struct seer_err err = { 0 };
	char buf[4096];
	struct resnet *m;
	int rc;

	if (path == NULL)
		path = default_model_path(buf, sizeof(buf));
	rc = resnet_open(path, &m, &err);
	if (rc == SEER_ENOENT) {
		log_error("no model file at %s; get one with weights/fetch-resnet18.sh "
			  "(it downloads and converts the official ResNet-18 weights), "
			  "or point --model or SEER_MODEL at a .seer file", path);
		return NULL;
	}
	if (rc < 0) {
		log_error("%s", err.msg);
		return NULL;
	}
	return m;
}

/* Read a whole file of at most max bytes into a malloc'd buffer. */
static int read_file(const char *path, size_t max, unsigned char **out, size_t *len,
		     struct seer_err *err)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return seer_err_set(err, errno == ENOENT ? SEER_ENOENT : SEER_EIO, "%s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = seer_err_set(err, SEER_EIO, "not a readable regular file");
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		rc = seer_err_set(err, SEER_ETOOLARGE, "file is %lld bytes, the limit is %zu",
				  (long long)st.st_size, max);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = seer_err_set(err, SEER_ENOMEM, "out of memory");
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = seer_err_set(err, SEER_EIO, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return SEER_OK;
fail:
	free(buf);
	close(fd);
	return rc;
}

/* Write len bytes to path (created or truncated). */
static int write_file(const char *path, const void *data, size_t len, struct seer_err *err)
{
	FILE *fp = fopen(path, "wb");

	if (fp == NULL)
		return seer_err_set(err, SEER_EIO, "%s: %s", path, strerror(errno));
	if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
		if (fp)
			fclose(fp);
		return seer_err_set(err, SEER_EIO, "%s: write failed", path);
	}
	return SEER_OK;
}

/* Decode and preprocess the image file at path into out[3][224][224]. */
static int load_image(const char *path, const struct img_decode_opts *opts, float *out,
		      struct seer_err *err)
{
	uint8_t crop[IMG_CROP * IMG_CROP * 3];
	unsigned char *bytes = NULL;
	size_t len = 0;
	int rc;

	rc = read_file(path, opts->limits.max_bytes, &bytes, &len, err);
	if (rc < 0)
		return rc;
	rc = img_decode_crop(bytes, len, opts, crop, NULL, err);
	free(bytes);
	if (rc < 0)
		return rc;
	img_normalize(crop, out);
	return SEER_OK;
}

static int parse_int(const char *s, int lo, int hi, const char *what, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		log_error("%s must be an integer from %d to %d, not '%s'", what, lo, hi, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------- convert */

static int cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct seer_err err = { 0 };
	const char *name = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		log_error("convert needs IN.pth and OUT.seer");
		return 2;
	}
	if (convert_resnet18(argv[optind], argv[optind + 1], name, &err) < 0) {
		log_error("convert: %s", err.msg);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ classify */

static void print_result(const char *file, const float *probs, int k, int as_json, struct json_buf *jb)
{
	int best[RESNET_CLASSES];

	nn_topk(probs, RESNET_CLASSES, k, best);
	if (!as_json) {
		printf("%s\n", file);
		for (int i = 0; i < k; i++)
			printf("  %9.5f%%  %s (%d)\n", probs[best[i]] * 100.0, labels_imagenet[best[i]], best[i]);
		return;
	}
	json_buf_reset(jb);
	json_raw(jb, "{\"file\": ");
	json_str(jb, file);
	json_raw(jb, ", \"topk\": [");
	for (int i = 0; i < k; i++) {
		json_printf(jb, "%s{\"index\": %d, \"label\": ", i ? ", " : "", best[i]);
		json_str(jb, labels_imagenet[best[i]]);
		json_printf(jb, ", \"prob\": %.9g}", probs[best[i]]);
	}
	json_raw(jb, "]}");
	if (!jb->failed)
		printf("%s\n", jb->data);
}

static int cmd_classify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "topk", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "threads", required_argument, NULL, 't' },
		{ "no-exif-rotate", no_argument, NULL, 'E' },
		{ "fast", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model_path = NULL, *names[CLASSIFY_BATCH];
	struct img_decode_opts dopts;
	struct resnet_ctx *ctx = NULL;
	struct json_buf jb;
	struct resnet *m = NULL;
	float *in = NULL, *logits = NULL;
	int k = 5, as_json = 0, threads = 1, status = 0, batch, c;

	img_decode_opts_default(&dopts);
	json_buf_init(&jb);
	while ((c = getopt_long(argc, argv, "m:k:jt:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model_path = optarg;
			break;
		case 'k':
			if (parse_int(optarg, 1, RESNET_CLASSES, "--topk", &k) < 0)
				return 2;
			break;
		case 'j':
			as_json = 1;
			break;
		case 't':
			if (parse_int(optarg, 1, 256, "--threads", &threads) < 0)
				return 2;
			break;
		case 'E':
			dopts.exif_rotate = 0;
			break;
		case 'f':
			dopts.fast = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind == argc) {
		log_error("classify needs at least one image");
		return 2;
	}
	m = open_model(model_path);
	if (m == NULL)
		return 1;
	batch = argc - optind < CLASSIFY_BATCH ? argc - optind : CLASSIFY_BATCH;
	ctx = resnet_ctx_new(m, batch, threads);
	in = malloc((size_t)batch * IMAGE_FLOATS * sizeof(float));
	logits = malloc((size_t)batch * RESNET_CLASSES * sizeof(float));
	if (ctx == NULL || in == NULL || logits == NULL) {
		log_error("out of memory");
		status = 1;
		goto out;
	}
	while (optind < argc) {
		int n = 0;

		/* fill a batch with the next images that decode; report the others */
		while (optind < argc && n < batch) {
			const char *path = argv[optind++];
			struct seer_err err = { 0 };

			if (load_image(path, &dopts, in + (size_t)n * IMAGE_FLOATS, &err) < 0) {
				log_error("%s: %s", path, err.msg);
				status = 1;
				continue;
			}
			names[n++] = path;
		}
		if (n == 0)
			continue;
		resnet_forward(ctx, in, n, logits);
		nn_softmax(logits, n, RESNET_CLASSES);
		for (int i = 0; i < n; i++)
			print_result(names[i], logits + (size_t)i * RESNET_CLASSES, k, as_json, &jb);
	}
out:
	if (fflush(stdout) != 0)
		status = 1;
	json_buf_free(&jb);
	free(in);
	free(logits);
	resnet_ctx_free(ctx);
	resnet_free(m);
	return status;
}

/* --------------------------------------------------------------- bench */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "batch", required_argument, NULL, 'b' },
		{ "iters", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "gemm", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model_path = NULL;
	int threads = 1, batch = 1, iters = 20, as_json = 0, status = 0, c;
	enum gemm_impl impl = GEMM_AUTO;
	struct resnet_ctx *ctx = NULL;
	struct resnet *m = NULL;
	float *in = NULL, *logits = NULL;
	double *times = NULL, median, p90;
	unsigned seed = 12345;

	while ((c = getopt_long(argc, argv, "m:t:b:i:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model_path = optarg;
			break;
		case 't':
			if (parse_int(optarg, 1, 256, "--threads", &threads) < 0)
				return 2;
			break;
		case 'b':
			if (parse_int(optarg, 1, FORWARD_MAX_BATCH, "--batch", &batch) < 0)
				return 2;
			break;
		case 'i':
			if (parse_int(optarg, 1, 100000, "--iters", &iters) < 0)
				return 2;
			break;
		case 'j':
			as_json = 1;
			break;
		case 'g':
			if (strcmp(optarg, "openblas") == 0)
				impl = GEMM_BLAS;
			else if (strcmp(optarg, "avx512") == 0)
				impl = GEMM_AVX512;
			else if (strcmp(optarg, "auto") != 0) {
				log_error("--gemm: '%s' is not one of auto, avx512, openblas", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		log_error("bench takes no positional arguments");
		return 2;
	}
	if (gemm_use(impl) < 0) {
		log_error("--gemm avx512: this CPU has no AVX-512");
		return 2;
	}
	m = open_model(model_path);
	if (m == NULL)
		return 1;
	ctx = resnet_ctx_new(m, batch, threads);
	in = malloc((size_t)batch * IMAGE_FLOATS * sizeof(float));
	logits = malloc((size_t)batch * RESNET_CLASSES * sizeof(float));
	times = malloc((size_t)iters * sizeof(double));
	if (ctx == NULL || in == NULL || logits == NULL || times == NULL) {
		log_error("out of memory");
		status = 1;
		goto out;
	}
	for (size_t i = 0; i < (size_t)batch * IMAGE_FLOATS; i++) {
		seed = seed * 1103515245u + 12345u;
		in[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	for (int i = 0; i < 3; i++)
		resnet_forward(ctx, in, batch, logits);
	for (int i = 0; i < iters; i++) {
		double t0 = now_ms();

		resnet_forward(ctx, in, batch, logits);
		times[i] = now_ms() - t0;
	}
	qsort(times, (size_t)iters, sizeof(double), cmp_double);
	median = iters % 2 ? times[iters / 2] : (times[iters / 2 - 1] + times[iters / 2]) / 2;
	p90 = times[(int)((iters - 1) * 0.9 + 0.5)];
	if (as_json)
		printf("{\"batch\": %d, \"threads\": %d, \"iters\": %d, \"median_ms\": %.3f, \"p90_ms\": %.3f, "
		       "\"images_per_s\": %.2f, \"blas_core\": \"%s\", \"gemm\": \"%s\"}\n",
		       batch, threads, iters, median, p90, batch * 1000.0 / median, blas_core_name(),
		       gemm_impl_name());
	else
		printf("batch %d, %d thread%s, %d iterations, OpenBLAS %s, convolutions on %s\n"
		       "median %.3f ms  p90 %.3f ms  %.2f images/s\n",
		       batch, threads, threads == 1 ? "" : "s", iters, blas_core_name(), gemm_impl_name(), median,
		       p90, batch * 1000.0 / median);
out:
	free(times);
	free(in);
	free(logits);
	resnet_ctx_free(ctx);
	resnet_free(m);
	return status;
}

/* ---------------------------------------------------------- preprocess */

static int cmd_preprocess(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "exact", no_argument, NULL, 'x' },
		{ "fast", no_argument, NULL, 'f' },
		{ "no-exif-rotate", no_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct img_decode_opts dopts;
	struct seer_err err = { 0 };
	float *out;
	int c, rc;

	img_decode_opts_default(&dopts);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'x':
			dopts.fast = 0;
			break;
		case 'f':
			dopts.fast = 1;
			break;
		case 'E':
			dopts.exif_rotate = 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		log_error("preprocess needs IMAGE and OUT");
		return 2;
	}
	out = malloc(IMAGE_FLOATS * sizeof(float));
	if (out == NULL) {
		log_error("out of memory");
		return 1;
	}
	rc = load_image(argv[optind], &dopts, out, &err);
	if (rc < 0)
		log_error("%s: %s", argv[optind], err.msg);
	else if ((rc = write_file(argv[optind + 1], out, IMAGE_FLOATS * sizeof(float), &err)) < 0)
		log_error("%s", err.msg);
	free(out);
	return rc < 0 ? 1 : 0;
}

/* ------------------------------------------------------------- forward */

static int cmd_forward(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const size_t image_bytes = IMAGE_FLOATS * sizeof(float);
	const char *model_path = NULL;
	struct seer_err err = { 0 };
	struct resnet_ctx *ctx = NULL;
	struct resnet *m = NULL;
	unsigned char *in = NULL;
	float *logits = NULL;
	int threads = 1, status = 1, c, n;
	size_t len = 0;

	while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model_path = optarg;
			break;
		case 't':
			if (parse_int(optarg, 1, 256, "--threads", &threads) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		log_error("forward needs IN.f32 and OUT.f32");
		return 2;
	}
	if (read_file(argv[optind], FORWARD_MAX_BATCH * image_bytes, &in, &len, &err) < 0) {
		log_error("%s: %s", argv[optind], err.msg);
		return 1;
	}
	if (len == 0 || len % image_bytes != 0) {
		log_error("%s: %zu bytes is not a whole number of 3x224x224 float32 images", argv[optind], len);
		goto out;
	}
	n = (int)(len / image_bytes);
	m = open_model(model_path);
	if (m == NULL)
		goto out;
	ctx = resnet_ctx_new(m, n, threads);
	logits = malloc((size_t)n * RESNET_CLASSES * sizeof(float));
	if (ctx == NULL || logits == NULL) {
		log_error("out of memory");
		goto out;
	}
	resnet_forward(ctx, (const float *)(const void *)in, n, logits);
	if (write_file(argv[optind + 1], logits, (size_t)n * RESNET_CLASSES * sizeof(float), &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	status = 0;
out:
	free(in);
	free(logits);
	resnet_ctx_free(ctx);
	resnet_free(m);
	return status;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "convert", cmd_convert },
		{ "classify", cmd_classify },
		{ "bench", cmd_bench },
		{ "preprocess", cmd_preprocess },
		{ "forward", cmd_forward },
	};

	enum log_level level = LOG_WARN;

	/* a command line stays quiet but for problems; SEER_LOG_LEVEL=info shows more */
	log_level_parse(getenv("SEER_LOG_LEVEL"), &level);
	log_set_level(level);
	log_set_plain(1);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("seer %s\n", PACKAGE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			/* only commands that run the network care which BLAS kernels load */
			if (commands[i].run != cmd_convert && commands[i].run != cmd_preprocess)
				blas_ensure_core(argv);
			/* seer splits the work over its own threads, each running sgemm alone */
			blas_set_threads(1);
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	log_error("unknown command '%s'", argv[1]);
	usage(stderr);
	return 2;
}
