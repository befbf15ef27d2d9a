#!/usr/bin/python3
"""Regenerate weights/imagenet_classes.txt from Debian's python3-torchvision.

The labels are torchvision's _IMAGENET_CATEGORIES (torchvision/models/_meta.py), in the order of
the 1000 outputs of its ImageNet classifiers, one per line, UTF-8, "\\n" line ends.  torchvision
already renamed the two names that repeat in the original synset words ("crane" 134 is "crane
bird", "maillot" 639 is "maillot tank suit"), so every line is unique; the list is kept as is.

Usage: /usr/bin/python3 weights/make_classes.py [OUT]   (default: imagenet_classes.txt beside this
script)
"""

import os
import sys

from torchvision.models._meta import _IMAGENET_CATEGORIES


def main(argv):
    out = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "imagenet_classes.txt")
    names = list(_IMAGENET_CATEGORIES)
    if len(names) != 1000:
        sys.exit("make_classes: expected 1000 categories, torchvision has %d" % len(names))
    for i, name in enumerate(names):
        if not name or name != name.strip() or any(c in name for c in "\t\r\n"):
            sys.exit("make_classes: category %d (%r) is empty or has blanks or control "
                     "characters" % (i, name))
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        print("make_classes: note: duplicate names kept as in torchvision: %s" % ", ".join(dups),
              file=sys.stderr)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(n + "\n" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
