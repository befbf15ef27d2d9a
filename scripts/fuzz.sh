#!/usr/bin/env bash
# Build every libFuzzer target with clang (ASan + UBSan) and run each for a
# bounded time, starting from the committed corpus (read only: new inputs go
# to OUTDIR). A crash leaves its input in OUTDIR as crash-* and fails.
# usage: scripts/fuzz.sh [SECONDS-PER-TARGET [OUTDIR]]   (defaults: 60, fuzz/out)
# SEER_FUZZ_SEED=N starts libFuzzer's random generator at N, so that a run
# can be repeated; unset or 0, every run draws a new seed. Each target's line
# names the seed it ran with.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
seed=${SEER_FUZZ_SEED:-0}
out=${2:-$top/fuzz/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$top"

cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc
	$(pkg-config --cflags openblas libjpeg libpng zlib)"
libs="$(pkg-config --libs openblas libjpeg libpng zlib) -lm"

# The seed libFuzzer ran with, from its log ("INFO: Seed: N").
used_seed() {
	grep -m1 -o 'Seed: [0-9]*' "$out/fuzz_$1.log" | grep -o '[0-9]*$' || echo unknown
}

status=0
for target in pth img wfile form; do
	bin="$out/fuzz_$target"
	# Each target links only the modules it reaches: src/ also holds the
	# programs (seer.c, seerd.c) and service modules that need SQLite and
	# FastCGI, none of which a parser target should have to build.
	case $target in
	pth) sources="src/pth.c src/status.c" ;;
	img) sources="src/img_decode.c src/img_resize.c src/status.c" ;;
	wfile) sources="src/wfile.c src/resnet.c src/nn.c src/winograd.c src/gemm.c src/blas.c src/log.c src/status.c" ;;
	form) sources="src/form.c src/status.c" ;;
	esac
	# shellcheck disable=SC2086
	clang $cflags -o "$bin" "fuzz/fuzz_$target.c" $sources $libs
	mkdir -p "$out/corpus_$target"
	if "$bin" -seed="$seed" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$out/" "$out/corpus_$target" "fuzz/corpus/$target" >"$out/fuzz_$target.log" 2>&1; then
		echo "fuzz_$target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz_$target.log" |
			grep -o '[0-9]*$') runs in ${seconds}s (seed $(used_seed "$target")), no failure"
	else
		echo "fuzz_$target: FAILED (seed $(used_seed "$target")), see $out/fuzz_$target.log:"
		grep -E 'ERROR|SUMMARY|crash-|leak-|timeout-' "$out/fuzz_$target.log" | head -5
		status=1
	fi
done
exit "$status"
