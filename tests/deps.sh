#!/bin/sh
# Installs the Debian packages bananafs needs, when missing (Debian 12 and 13;
# a minimal Debian has no make: build-essential brings it).
#   sh tests/deps.sh        to build and run (make deps, make demo)
#   sh tests/deps.sh test   also what the test suite drives (make check)
set -e
PKGS="build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libcjson-dev
libxxhash-dev libsqlite3-dev libinih-dev libpng-dev libjpeg-dev libwebp-dev zlib1g-dev
libmicrohttpd-dev libpq-dev attr"
if [ "${1:-}" = test ]; then
	PKGS="$PKGS libcmocka-dev python3 python3-pytest mandoc inotify-tools clang
libclang-rt-dev valgrind vim nano rsync strace xvfb pcmanfm imagemagick postgresql"
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
