#!/bin/sh
# Turn weights/imagenet_classes.txt (one class name per line, torchvision's
# order) into a C array, so the binaries carry the names they print.
set -eu
in=$1
count=$(wc -l < "$in")
if [ "$count" -ne 1000 ]; then
	echo "gen-labels: $in has $count lines, expected 1000" >&2
	exit 1
fi
echo '/* Generated from weights/imagenet_classes.txt by scripts/gen-labels.sh: do not edit. */'
echo '#include "labels.h"'
echo
echo 'const char *const labels_imagenet[LABELS_COUNT] = {'
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$/",/' "$in"
echo '};'
