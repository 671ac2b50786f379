#!/bin/sh
# make bench: builds libfuse's own passthrough examples next to our binaries
# (Debian ships their sources in libfuse3-dev), then runs the harness.
# BENCH_QUICK=1 for small sizes; see tests/bench/bench.py for the knobs.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BANANAFS_BUILD:-build}
out=$BUILD/bench
mkdir -p "$out"
ex=/usr/share/doc/libfuse3-dev/examples
for p in passthrough passthrough_ll; do
	src=$ex/$p.c
	if [ ! -f "$src" ] && [ -f "$src.gz" ]; then
		zcat "$src.gz" > "$out/$p.c" && src=$out/$p.c
	fi
	if [ ! -f "$src" ]; then
		echo "bench: $p.c not shipped in libfuse3-dev: that baseline is n/a" >&2
		rm -f "$out/$p"
		continue
	fi
	[ "$out/$p" -nt "$src" ] && continue
	# The examples include passthrough_helpers.h from their own folder.
	${CC:-cc} -O2 -I"$ex" -I"$out" $(pkg-config --cflags fuse3) -o "$out/$p" "$src" \
		$(pkg-config --libs fuse3) -lpthread ||
		{ echo "bench: building $p failed: that baseline is n/a" >&2; rm -f "$out/$p"; }
done
exec /usr/bin/python3 tests/bench/bench.py "$@"
