#!/usr/bin/env bash
# Install the Debian packages seer needs. Idempotent: packages already present
# are left alone. Needs root (or sudo).
#   scripts/install-deps.sh            everything: build, service, tests, benchmarks
#   scripts/install-deps.sh --service  only what building and running the service need
#                                      (what scripts/quickstart.sh uses)
set -euo pipefail

service_only=0
case "${1:-}" in
--service) service_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--service]" >&2
	exit 2
	;;
esac

packages=(
  # build
  build-essential autoconf automake libtool pkg-config autoconf-archive
  libopenblas-dev libjpeg62-turbo-dev libpng-dev libsqlite3-dev libfcgi-dev libssl-dev
  # the service: nginx in front, seerctl's tools, the weight download
  nginx-light sqlite3 openssl curl ca-certificates util-linux
)
if [ "$service_only" -eq 0 ]; then
  packages+=(
    # sanitizers and fuzzing
    clang libclang-rt-14-dev
    # reference implementation, parity tests and benchmarks
    python3 python3-torch python3-torchvision python3-pil python3-numpy python3-skimage
    # tests and tools: load generator, browser tests, the Flask/gunicorn reference
    apache2-utils wrk chromium chromium-driver python3-flask gunicorn
  )
  # Node.js and npm (playwright-core for the browser tests) from Debian, unless
  # a node with npm is already installed some other way (e.g. NodeSource's
  # nodejs, which bundles npm and conflicts with Debian's npm package).
  if ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
  fi
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
