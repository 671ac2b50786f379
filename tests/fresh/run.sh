#!/bin/sh
# make check-fresh [SUITES="bookworm trixie"]: the README's two commands, as a
# newcomer types them, in a throwaway minimal Debian root (debootstrap
# --variant=minbase plus git), one per suite.  Needs root and Debian's mirrors.
#
# The minbase root is built once per suite and kept as a tarball in .fresh/
# (gitignored), with the downloaded packages, so reruns start in seconds.  Each
# run unpacks a new root, clones this repository's committed HEAD into
# /home/newcomer/bananafs (readable by the other users the tests switch to),
# binds /dev, /proc and /sys (FUSE works inside a chroot as root), runs the
# commands of the README's first code block one after the other, then stops what they left running and removes the root.
# Output: .fresh/SUITE.out per suite; one closing line per suite.
set -u
cd "$(dirname "$0")/../.." || exit 1
REPO=$PWD
CACHE=$REPO/.fresh
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITES=${*:-bookworm trixie}
REV=$(git rev-parse HEAD)	# the commit tested, fixed now: a rebase meanwhile does not change it

[ "$(id -u)" -eq 0 ] || { echo "check-fresh: needs root (debootstrap, chroot, mounts)"; exit 1; }
command -v debootstrap >/dev/null 2>&1 || {
	echo "check-fresh: installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
} || exit 1

# The README's commands: the first ```sh block, without comments.
commands=$(awk '/^```sh/ { on = 1; next } on && /^```/ { exit } on' README.md |
	sed 's/[[:space:]]*#.*$//' | grep -v '^[[:space:]]*$')
[ -n "$commands" ] || { echo "check-fresh: no commands found in README.md"; exit 1; }

mkdir -p "$CACHE"
results=""

cleanup() {	# cleanup ROOT: end every process that lives in ROOT, unmount, remove
	r=$1
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$r" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	sleep 1
	# FUSE mounts first (the demo's and any a failed test left), deepest first.
	awk -v r="$r/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf --one-file-system "$r"
}

for suite in $SUITES; do
	tarball=$CACHE/$suite-minbase-git.tar
	out=$CACHE/$suite.out
	if [ ! -f "$tarball" ]; then
		echo "check-fresh: $suite: debootstrap --variant=minbase --include=git (once; cached in .fresh/)"
		rm -rf "$CACHE/$suite.root"
		debootstrap --variant=minbase --include=git "$suite" "$CACHE/$suite.root" "$MIRROR" \
			>"$CACHE/$suite.debootstrap.log" 2>&1 &&
			tar -C "$CACHE/$suite.root" -cf "$tarball.part" . &&
			mv "$tarball.part" "$tarball" ||
			{ echo "check-fresh: $suite: debootstrap failed, see .fresh/$suite.debootstrap.log"; exit 1; }
		rm -rf "$CACHE/$suite.root"
	fi

	root=$CACHE/run-$suite
	[ -d "$root" ] && cleanup "$root"
	mkdir -p "$root" "$CACHE/apt-$suite"
	tar -C "$root" -xf "$tarball"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	mkdir -p "$root/home/newcomer"
	git clone -q --no-checkout "$REPO" "$root/home/newcomer/bananafs"
	git -C "$root/home/newcomer/bananafs" checkout -q "$REV"
	mount --rbind /dev "$root/dev"
	mount --make-rslave "$root/dev"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --make-rslave "$root/sys"
	mount --bind "$CACHE/apt-$suite" "$root/var/cache/apt/archives"	# packages kept for reruns
	rm -f "$root/etc/apt/apt.conf.d/docker-clean"

	{
		echo "check-fresh: $suite: $(chroot "$root" sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), commit $(git -C "$root/home/newcomer/bananafs" rev-parse --short HEAD)"
		echo "check-fresh: $suite: installed before: $(chroot "$root" sh -c 'command -v make cc pkg-config sudo' | tr '\n' ' ')(none of make, cc, pkg-config expected)"
	} | tee "$out"
	rc=0
	start=$(date +%s)
	echo "$commands" | while read -r cmd; do
		echo "check-fresh: $suite: \$ $cmd"
		chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 TERM=dumb sh -c "cd /home/newcomer/bananafs && $cmd" </dev/null 2>&1
		c=$?
		echo "check-fresh: $suite: exit $c after $(($(date +%s) - start)) s"
		[ $c -eq 0 ] || exit $c
	done >>"$out" 2>&1 || rc=$?
	grep '^check-fresh:' "$out" | tail -n +3
	tail -n 3 "$out"
	cleanup "$root"
	if [ $rc -eq 0 ]; then
		results="$results
check-fresh: $suite: the README's commands passed ($(($(date +%s) - start)) s)"
	else
		results="$results
check-fresh: $suite: FAILED (exit $rc), see .fresh/$suite.out"
	fi
done
echo "$results"
! echo "$results" | grep -q FAILED
