#!/usr/bin/env bash
# Build every libFuzzer target with clang (ASan + UBSan) and run each for a
# bounded time, starting from the committed corpus. New crashes are left in
# fuzz/out/ as crash-* files.
# usage: scripts/fuzz.sh [SECONDS-PER-TARGET]   (default 60)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
seconds=${1:-60}
out=fuzz/out
mkdir -p "$out"
[ -f build/src/imagenet_labels.c ] || { echo "fuzz.sh: build first (scripts/test.sh --quick)" >&2; exit 1; }

cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc -Ibuild -Ibuild/src $(pkg-config --cflags openblas libjpeg libpng zlib)"
libs="$(pkg-config --libs openblas libjpeg libpng zlib) -lm"
lib_sources=$(ls src/*.c build/src/imagenet_labels.c | grep -v 'src/seer\.c$')

status=0
for target in pth img wfile; do
	bin="$out/fuzz_$target"
	echo "== fuzz_$target: building"
	# shellcheck disable=SC2086
	clang $cflags -o "$bin" "fuzz/fuzz_$target.c" $lib_sources $libs
	mkdir -p "$out/corpus_$target"
	echo "== fuzz_$target: running ${seconds}s"
	if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$out/" "$out/corpus_$target" "fuzz/corpus/$target" >"$out/fuzz_$target.log" 2>&1; then
		echo "fuzz_$target: found a failure, see $out/fuzz_$target.log"
		status=1
	fi
	tail -3 "$out/fuzz_$target.log"
done
exit "$status"
