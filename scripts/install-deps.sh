#!/usr/bin/env bash
# Install every Debian package that seer needs to build, test and run.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  build-essential autoconf automake libtool pkg-config autoconf-archive
  libopenblas-dev libjpeg62-turbo-dev libpng-dev libsqlite3-dev libfcgi-dev libssl-dev
  # sanitizers and fuzzing
  clang libclang-rt-14-dev
  # reference implementation, parity tests and benchmarks
  python3 python3-torch python3-torchvision python3-pil python3-numpy python3-skimage
  # service
  nginx-light sqlite3 apache2-utils
  # tests and tools: load generator, browser tests, the Flask/gunicorn reference
  curl ca-certificates wrk openssl chromium chromium-driver python3-flask gunicorn
)
# Node.js and npm (playwright-core for the browser tests) from Debian, unless a
# node with npm is already installed some other way (e.g. NodeSource's
# nodejs, which bundles npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
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
