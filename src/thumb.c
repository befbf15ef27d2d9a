/* thumb.c - 2x2 box downscale of the crop, then libjpeg-turbo to memory. */
#include "thumb.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "img.h"

/* Error manager, plus the output buffer so that it is in memory across longjmp. */
struct thumb_err {
	struct jpeg_error_mgr mgr;
	jmp_buf jump;
	unsigned char *buf;
	unsigned long size;
};

/* libjpeg's default error_exit would exit() the worker: jump back instead. */
static void thumb_error_exit(j_common_ptr cinfo)
{
	longjmp(((struct thumb_err *)cinfo->err)->jump, 1);
}

/* Out of line so that nothing set after setjmp lives in this frame. */
static int encode(struct jpeg_compress_struct *c, const uint8_t *small, unsigned char **buf,
		  unsigned long *size)
{
	JSAMPROW row;

	jpeg_mem_dest(c, buf, size);
	c->image_width = THUMB_SIDE;
	c->image_height = THUMB_SIDE;
	c->input_components = 3;
	c->in_color_space = JCS_RGB;
	jpeg_set_defaults(c);
	jpeg_set_quality(c, 80, TRUE);
	jpeg_start_compress(c, TRUE);
	while (c->next_scanline < THUMB_SIDE) {
		row = (JSAMPROW)(small + (size_t)c->next_scanline * THUMB_SIDE * 3);
		jpeg_write_scanlines(c, &row, 1);
	}
	jpeg_finish_compress(c);
	return 0;
}

int thumb_jpeg(const uint8_t *crop, uint8_t **jpeg, size_t *len, struct seer_err *err)
{
	uint8_t small[THUMB_SIDE * THUMB_SIDE * 3];
	struct jpeg_compress_struct c;
	struct thumb_err je = {.buf = NULL, .size = 0};

	_Static_assert(IMG_CROP == 2 * THUMB_SIDE, "the thumbnail halves the crop");
	for (int y = 0; y < THUMB_SIDE; y++) {
		const uint8_t *r0 = crop + (size_t)(2 * y) * IMG_CROP * 3, *r1 = r0 + IMG_CROP * 3;

		for (int x = 0; x < THUMB_SIDE; x++)
			for (int ch = 0; ch < 3; ch++) {
				int i = 6 * x + ch;

				small[((size_t)y * THUMB_SIDE + x) * 3 + ch] =
					(uint8_t)((r0[i] + r0[i + 3] + r1[i] + r1[i + 3] + 2) / 4);
			}
	}
	/*
	 * Our own buffer, larger than any 112x112 JPEG can be (the raw pixels
	 * twice over), so that libjpeg never reallocates it: je.buf then stays
	 * the one live buffer whatever happens, also across a longjmp.
	 */
	je.size = 2 * sizeof(small);
	je.buf = malloc(je.size);
	if (je.buf == NULL)
		return seer_err_set(err, SEER_ENOMEM, "thumbnail: out of memory");
	c.err = jpeg_std_error(&je.mgr);
	je.mgr.error_exit = thumb_error_exit;
	if (setjmp(je.jump)) {
		jpeg_destroy_compress(&c);
		free(je.buf);
		return seer_err_set(err, SEER_EIO, "thumbnail: JPEG encoding failed");
	}
	jpeg_create_compress(&c);
	encode(&c, small, &je.buf, &je.size);
	jpeg_destroy_compress(&c);
	*jpeg = je.buf;
	*len = je.size;
	return 0;
}
