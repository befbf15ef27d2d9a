#!/usr/bin/env bash
# From a fresh Debian 12 machine to the running service: install packages,
# build, fetch and convert the official ResNet-18 weights (once), start nginx
# and the seerd worker pool with seerctl, and classify a sample photo through
# it. Ends with the service answering on http://127.0.0.1:8080/.
# usage: scripts/quickstart.sh
#   SEER_WEIGHTS_SOURCE=/path/to/resnet18-f37072fd.pth for machines without internet.
#   SEER_PORT, SEER_RUN_DIR, SEER_WORKERS ... are passed on to seerctl.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/install-deps.sh --service
[ -x configure ] || autoreconf -fi
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc)")

bash weights/fetch-resnet18.sh --seer build/src/seer

# Already running (a second quick start): apply any change instead.
if build/seerctl status >/dev/null 2>&1; then
	build/seerctl reload
else
	build/seerctl start
fi

port=${SEER_PORT:-8080}
echo
echo "A sample photo through the service:"
curl -sS -H 'Content-Type: image/png' -H 'X-File-Name: chelsea.png' \
	--data-binary @/usr/lib/python3/dist-packages/skimage/data/chelsea.png \
	"http://127.0.0.1:$port/api/classify?topk=3"
echo
echo
echo "Open http://127.0.0.1:$port/ in a browser; the history is at http://127.0.0.1:$port/admin/"
echo "(user admin, password printed above on the first start). Stop with: build/seerctl stop"
