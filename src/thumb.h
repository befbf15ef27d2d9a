/*
 * thumb.h - the history's thumbnails: the 224x224 crop the network saw,
 * halved to 112x112 and stored as a small JPEG (about 3-5 KB).
 */
#ifndef SEER_THUMB_H
#define SEER_THUMB_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define THUMB_SIDE 112

/*
 * Encode the [224][224][3] crop as a THUMB_SIDE x THUMB_SIDE JPEG. Returns 0
 * and a malloc'd buffer in *jpeg (caller frees), or SEER_ENOMEM/SEER_EIO.
 */
int thumb_jpeg(const uint8_t *crop, uint8_t **jpeg, size_t *len, struct seer_err *err);

#endif
