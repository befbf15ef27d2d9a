#!/bin/sh
# Run one test for automake's TAP driver. A test that cannot run here prints
# a "1..0 # SKIP reason" plan and exits 77; the plan already tells the driver
# it skipped, so 77 becomes 0 instead of being reported as a failure.
"$@"
rc=$?
if [ "$rc" -eq 77 ]; then
	exit 0
fi
exit "$rc"
