#!/usr/bin/env bash
# Set up everything and run the whole test suite, twice: a normal build with
# warnings as errors, then an AddressSanitizer + UBSan build.
# usage: scripts/test.sh [--quick]   (--quick: the normal build only)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/install-deps.sh
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi
jobs=$(nproc)

build() { # build DIR CONFIGURE-ARGS...
	local dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && { [ -f Makefile ] || "$top/configure" "$@"; } && make -j"$jobs" && make -j"$jobs" check)
}

status=0
build build --enable-werror || status=1
if [ "$quick" -eq 0 ]; then
	build build-asan --enable-asan --enable-werror || status=1
fi
exit "$status"
