/*
 * convert.h - turning a torchvision ResNet-18 state_dict (torch.save zip)
 * into a seer weight file: batch-norm folded into the convolutions and,
 * where it pays, Winograd-transformed weights stored ready to use.
 */
#ifndef SEER_CONVERT_H
#define SEER_CONVERT_H

#include "status.h"

/*
 * Read in_path (parsed, never unpickled), check that it is exactly a
 * torchvision resnet18 state_dict, and write out_path atomically. model_id
 * names the result (e.g. "resnet18-f37072fd"); NULL derives it from the
 * input file name. Returns 0 or a negative SEER_E* code with err filled:
 * SEER_EMODEL for a state_dict of another model, the pth reader's codes
 * for a damaged file, SEER_EIO when the output cannot be written.
 */
int convert_resnet18(const char *in_path, const char *out_path, const char *model_id,
		     struct seer_err *err);

#endif
