#!/bin/sh
# make undemo: unmount ./banana and stop the demo emulator.
cd "$(dirname "$0")/.."
MNT=$PWD/banana
grep -qs " $MNT " /proc/self/mounts && { fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; }
[ -f .demo/emulator.pid ] && kill "$(cat .demo/emulator.pid)" 2>/dev/null
rm -f .demo/emulator.pid
echo "demo: unmounted"
