#!/usr/bin/env bash
# From a fresh Debian 12 machine to a classified photo: install packages,
# build, fetch and convert the official ResNet-18 weights (once), classify.
# usage: scripts/quickstart.sh [IMAGE...]
#   SEER_WEIGHTS_SOURCE=/path/to/resnet18-f37072fd.pth for machines without internet.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/install-deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc)" src/seer)

bash weights/fetch-resnet18.sh --seer build/src/seer

if [ "$#" -eq 0 ]; then
	set -- /usr/lib/python3/dist-packages/skimage/data/chelsea.png \
		/usr/lib/python3/dist-packages/skimage/data/coffee.png
fi
build/src/seer classify "$@"
