#!/bin/sh
# run.sh FUZZER SEED_DIR SECONDS - run a libFuzzer target for a bounded time
# on a scratch copy of its seed corpus (the source tree is never written).
# Any crash, leak or sanitizer report fails the test; the reproducer is kept
# in the scratch directory, whose path is printed.
set -eu
fuzzer=$(readlink -f "$1") seeds=$(readlink -f "$2") secs=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-fuzz.XXXXXX")
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
cd "$work"
if "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/" corpus "$seeds" 2> fuzz.log; then
	tail -n 12 fuzz.log
	rm -rf "$work"
else
	tail -n 60 fuzz.log
	echo "fuzzer found a problem; reproducer and log in $work" >&2
	exit 1
fi
