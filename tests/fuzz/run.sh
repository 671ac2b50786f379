#!/bin/sh
# Builds the libFuzzer harnesses (clang, ASan+UBSan) into build-fuzz/ and runs
# each one over its seed corpus and then for a while:
#   sh tests/fuzz/run.sh short    ~8 s per harness (the default; what `make check` runs)
#   sh tests/fuzz/run.sh long     FUZZ_SECONDS (default 300) per harness (`make fuzz`)
#   sh tests/fuzz/run.sh build    only build
# Seeds and regression inputs live in tests/fuzz/corpus/HARNESS/ (read-only
# here); new inputs go to build-fuzz/corpus/HARNESS/, crashes to
# build-fuzz/crashes/.  Exits non-zero when a harness finds a crash.
set -u
mode=${1:-short}
cd "$(dirname "$0")/../.." || exit 1

CLANG=
for c in clang-14 clang; do
	if command -v "$c" >/dev/null 2>&1; then CLANG=$c; break; fi
done
if [ -z "$CLANG" ]; then
	echo "fuzz: SKIPPED: clang is not installed (Debian: apt-get install clang libclang-rt-dev)"
	exit 0
fi

OUT=build-fuzz
PKGS="libcurl libcjson libxxhash sqlite3 inih libpng libjpeg libwebp zlib libpq"	# as the Makefile's PKGS, less fuse3
PKG_CFLAGS=$(pkg-config --cflags $PKGS 2>/dev/null)
PKG_LIBS=$(pkg-config --libs $PKGS 2>/dev/null)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 -I. -D_GNU_SOURCE $SAN $PKG_CFLAGS"
HARNESSES="interactions generate gateway errors prompt config"

# Checks that this clang can link a fuzzer at all (libclang-rt missing otherwise).
mkdir -p "$OUT/obj" "$OUT/crashes"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' \
	>"$OUT/probe.c"
if ! $CLANG -fsanitize=fuzzer "$OUT/probe.c" -o "$OUT/probe" 2>/dev/null; then
	echo "fuzz: SKIPPED: $CLANG cannot link -fsanitize=fuzzer (Debian: apt-get install libclang-rt-dev)"
	exit 0
fi

# Our library sources, compiled with coverage; rebuilt when the source or a
# header changed (a header change rebuilds all: simple and safe).
newest_h=$(ls -t api/*.h cache/*.h | head -n 1)
objs=
need=
for src in api/*.c cache/*.c; do
	o="$OUT/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
	objs="$objs $o"
	if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
		need="$need $src:$o"
	fi
done
if [ -n "$need" ]; then
	echo "fuzz: compiling$(echo "$need" | wc -w | sed 's/^/ /') sources"
	# two at a time: the machines this runs on have two cores
	echo "$need" | tr ' ' '\n' | grep . | xargs -P 2 -I{} sh -c '
		src=${1%%:*}; o=${1#*:}
		'"$CLANG"' '"$CFLAGS"' -fsanitize=fuzzer-no-link -c "$src" -o "$o" || { rm -f "$o"; exit 255; }
	' sh {} || { echo "fuzz: library build FAILED"; exit 1; }
fi
for h in $HARNESSES; do
	src=tests/fuzz/fuzz_$h.c
	bin=$OUT/fuzz_$h
	if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ tests/fuzz/fuzz_route.h -nt "$bin" ] ||
	   [ -n "$need" ]; then
		$CLANG $CFLAGS -fsanitize=fuzzer "$src" $objs -o "$bin" $PKG_LIBS -lpthread -lm ||
			{ echo "fuzz: build of $bin FAILED"; exit 1; }
	fi
done
[ "$mode" = build ] && exit 0

case "$mode" in
long) secs=${FUZZ_SECONDS:-300} ;;
*) secs=${FUZZ_SECONDS:-8} ;;
esac

failed=
for h in $HARNESSES; do
	seeds=tests/fuzz/corpus/$h
	work=$OUT/corpus/$h
	mkdir -p "$work" "$seeds"
	log=$OUT/fuzz_$h.log
	# halt_on_error: the first sanitizer report fails the run
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$OUT/fuzz_$h" "$work" "$seeds" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crashes/$h-" \
		>"$log" 2>&1
	rc=$?
	runs=$(sed -n "s/^stat::number_of_executed_units: *//p" "$log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		echo "fuzz_$h: FAILED (rc $rc, ${runs:-?} runs); log $log:"
		grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -n 8
		failed="$failed $h"
	else
		echo "fuzz_$h: ok (${runs:-?} runs in ${secs}s)"
	fi
done
[ -z "$failed" ] || { echo "fuzz: crashes in:$failed"; exit 1; }
echo "fuzz: all harnesses clean"
