#!/bin/sh
# The whole test suite: what `make check` (short) and `make check-long` run.
#   1. build (normal and ASan+UBSan), 2. cmocka unit tests, 3. emulator tests,
#   4. mount tests against the real emulator, 5. the same mount smoke tests
#   with sanitizer builds, 6. short fuzz runs.
# Prints one closing line "N passed, N failed".
set -u
mode=${1:-short}
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
B=${BUILD:-build}
S=${SAN_BUILD:-build-san}
passed=0
failed=0
failures=""

step() {	# step NAME CMD...: runs a suite, counts it
	name=$1
	shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures $name"
		echo "=== $name FAILED"
	fi
}

unit_tests() {	# unit_tests BUILD_DIR
	rc=0
	for t in "$1"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue ;; esac
		echo "--- $t"
		"$t" || rc=1
	done
	return $rc
}

pytest_run() {	# pytest_run BUILD_DIR ARGS...
	bdir=$1
	shift
	BANANAFS_BUILD=$bdir $PY -m pytest -q -p no:cacheprovider "$@"
	rc=$?
	[ $rc -eq 5 ] && rc=0	# no tests collected is not a failure of the code
	return $rc
}

step build make -j2 BUILD="$B" all unit
step build-san make -j2 SAN=1 BUILD="$S" all unit
step unit unit_tests "$B"
step unit-san unit_tests "$S"
step emulator pytest_run "$B" tests/emulator
if [ "$mode" = long ]; then
	step mount pytest_run "$B" tests/mount --long
else
	step mount pytest_run "$B" tests/mount
fi
# Sanitizer builds of bananafs and the emulator: the smoke tests everywhere, and
# whole files where hostile input and money meet.
mount_san() {
	pytest_run "$S" tests/mount -m smoke &&
	pytest_run "$S" tests/mount/test_hostile_server.py tests/mount/test_hostile_user.py tests/mount/test_users.py \
		tests/mount/test_money.py tests/mount/test_batch.py tests/mount/test_crash.py
}
step mount-san mount_san
if [ -x tests/fuzz/run.sh ] || [ -f tests/fuzz/run.sh ]; then
	step fuzz sh tests/fuzz/run.sh "$mode"
fi

echo
[ -n "$failures" ] && echo "failed suites:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
