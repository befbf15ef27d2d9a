#!/bin/sh
# Run one test for automake's TAP driver. A test that cannot run here prints
# a "1..0 # SKIP reason" plan and exits 77; the plan already tells the driver
# it skipped, so 77 becomes 0 instead of being reported as a failure.
#
# Tests that load the whole machine or wait on timeouts (wrk, worker kills,
# Chromium) carry a "# seer-test: exclusive" line and run under one lock:
# `make -j2 check` on a 2-CPU machine would otherwise pair two of them and
# halve every margin they keep. Other tests still run beside them.
# -o: the lock is not passed on to what the test starts (a seerd or nginx
# left behind must not hold it); it is taken in the build tree's tests/, the
# directory automake runs tests from.
if grep -q '^# seer-test: exclusive' "$1" 2>/dev/null; then
	if command -v flock >/dev/null 2>&1 && [ -d tests ]; then
		flock -o tests/.exclusive.lock "$@"
	else
		echo "run-tap.sh: no flock (util-linux) or no tests/ here: $1 runs beside other tests" >&2
		"$@"
	fi
else
	"$@"
fi
rc=$?
if [ "$rc" -eq 77 ]; then
	exit 0
fi
exit "$rc"
