/*
 * labels.h - the 1000 ImageNet class names in torchvision's order, compiled
 * in from weights/imagenet_classes.txt.
 */
#ifndef SEER_LABELS_H
#define SEER_LABELS_H

#define LABELS_COUNT 1000

extern const char *const labels_imagenet[LABELS_COUNT];

#endif
