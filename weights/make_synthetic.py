#!/usr/bin/python3
"""Write deterministic synthetic torchvision resnet18 weights for tests and benchmarks.

No trained weights can be downloaded on the build machines, so the tests of the converter and of
the forward pass use these instead.  They are shaped and saved exactly like the official
checkpoint (torch.save of model.state_dict(), zip format), and their BatchNorm layers are not the
identity: the running statistics are calibrated on seeded random inputs and then perturbed, and
gamma/beta are random, so that folding BN into the convolutions is really exercised while the
activations stay well scaled.  The fc layer is rescaled so that the logits spread over several
units, as a trained classifier's do: softmax is neither flat nor one-hot, the top-1 changes from
input to input, and the gaps within the top-5 are far above float32 rounding.

The same seed gives the same tensors (and, on the same torch version, the same bytes): all random
numbers come from one seeded generator and the calibration runs on one thread.

Usage: /usr/bin/python3 weights/make_synthetic.py [--seed S] OUT.pth
"""

import argparse
import sys

import torch
import torchvision

CALIB_BATCHES = 4
CALIB_BATCH_SIZE = 8
LOGIT_STD = 1.5


def make_inputs(gen, n):
    """Return n inputs at ImageNet-normalised scale: half white noise, half smooth image-like."""
    white = torch.randn(n - n // 2, 3, 224, 224, generator=gen)
    # Smooth fields: upsampled low-resolution noise, normalised to unit variance per channel.
    low = torch.randn(n // 2, 3, 14, 14, generator=gen)
    smooth = torch.nn.functional.interpolate(low, size=(224, 224), mode="bicubic",
                                             align_corners=False)
    smooth = (smooth - smooth.mean(dim=(2, 3), keepdim=True)) / smooth.std(dim=(2, 3),
                                                                           keepdim=True)
    return torch.cat([white, smooth])


def make_model(seed):
    """Return a resnet18 in eval mode with seeded, calibrated, perturbed weights."""
    torch.manual_seed(seed)  # default initialisers draw from the global generator
    gen = torch.Generator().manual_seed(seed + 1)
    model = torchvision.models.resnet18(weights=None)

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # Random affine parameters before calibration, so the statistics of each layer see the
    # perturbed layers before it.
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(1.0 + 0.25 * torch.randn(bn.num_features, generator=gen))
            bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches

    model.train()
    with torch.no_grad():
        for _ in range(CALIB_BATCHES):
            model(make_inputs(gen, CALIB_BATCH_SIZE))

    # Perturb the calibrated statistics a little: a checkpoint's running stats never match the
    # data exactly, and a converter that ignored them would be caught.
    with torch.no_grad():
        for bn in bns:
            std = bn.running_var.sqrt()
            bn.running_mean.add_(0.1 * std * torch.randn(bn.num_features, generator=gen))
            bn.running_var.mul_(torch.exp(0.1 * torch.randn(bn.num_features, generator=gen)))
            bn.momentum = 0.1

    model.eval()
    with torch.no_grad():
        feats = torch.flatten(model.avgpool(_trunk(model, make_inputs(gen, 8))), 1)
        centre = feats.mean(0)
        # Log-normal row norms give the logits a heavier upper tail than i.i.d. rows, as a trained
        # classifier has: a few classes stand out for each input.
        model.fc.weight.mul_(torch.exp(0.5 * torch.randn(1000, 1, generator=gen)))
        # Centre the classifier on the mean feature so that the logits depend on the input and not
        # mostly on the class, then scale them to the wanted spread.
        logits = (feats - centre) @ model.fc.weight.t()
        model.fc.weight.mul_(LOGIT_STD / logits.std().item())
        model.fc.bias.copy_(0.5 * torch.randn(1000, generator=gen) - model.fc.weight @ centre)
    return model


def _trunk(model, x):
    """Run resnet18 up to (not including) the global average pool."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("out", metavar="OUT.pth")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # thread count changes reduction order and so the last bits
    model = make_model(args.seed)
    torch.save(model.state_dict(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
