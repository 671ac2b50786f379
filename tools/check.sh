#!/bin/sh
# sh tools/check.sh: the README's test command on a fresh Debian.  Installs
# what building and testing need (make too: a minimal Debian has none), then
# runs `make check`, so it works whether or not tools/demo.sh ran first.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh test
exec make --no-print-directory check
