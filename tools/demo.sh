#!/bin/sh
# sh tools/demo.sh (or make demo): the README's first command on a fresh Debian.
# Installs what is missing (make too: a minimal Debian has none), builds,
# mounts ./banana and generates one image.
# With GEMINI_API_KEY or GOOGLE_API_KEY set, it talks to Google (and is billed).
# Without a key, it starts the bundled emulator on loopback and says so.
# The mount stays up afterwards; `make undemo` (or fusermount3 -u banana) ends it.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
sh tests/deps.sh
make -j"$(nproc)" --no-print-directory BUILD="$B" all
MNT=$PWD/banana
STATE=$PWD/.demo
mkdir -p "$MNT" "$STATE"
chmod 700 "$STATE"

if grep -qs " $MNT " /proc/self/mounts; then
	echo "demo: $MNT is already mounted; unmounting the old demo first"
	fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"
fi
[ -f "$STATE/emulator.pid" ] && kill "$(cat "$STATE/emulator.pid")" 2>/dev/null || true
rm -f "$STATE/emulator.pid"

if [ -n "${GEMINI_API_KEY:-}${GOOGLE_API_KEY:-}" ]; then
	echo "demo: API key found in the environment: mounting against the real Gemini API (billed)"
	"$B/bananafs" --store "$STATE/store" "$MNT"
else
	echo "demo: no GEMINI_API_KEY or GOOGLE_API_KEY set: OFFLINE, using the bundled emulator (its spend is simulated: the ledger marks it \"simulated\": true, nobody bills it)"
	"$B/bananafs-emulator" --listen 127.0.0.1:0 --key demo-emulator-key >"$STATE/emulator.port" 2>"$STATE/emulator.log" &
	echo $! >"$STATE/emulator.pid"
	i=0
	until grep -q listening "$STATE/emulator.port" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "demo: the emulator did not start; see $STATE/emulator.log"; exit 1; }
		sleep 0.1
	done
	url=$(awk '/listening/ {print $NF}' "$STATE/emulator.port")
	GEMINI_API_KEY=demo-emulator-key "$B/bananafs" --store "$STATE/store" --endpoint "$url" "$MNT"
fi

prompt="$MNT/gemini-3-pro-image/2K/banana.txt"
echo "demo: echo 'a ripe banana wearing sunglasses on a beach' > $prompt"
echo "a ripe banana wearing sunglasses on a beach" >"$prompt"
"$B/bananactl" wait --timeout 120 "$prompt" || true
echo
ls -l "$MNT/gemini-3-pro-image/2K/"
[ -f "$MNT/gemini-3-pro-image/2K/banana.error" ] && cat "$MNT/gemini-3-pro-image/2K/banana.error"
echo
echo "demo: status: $(getfattr --only-values -n user.bananafs.status "$prompt" 2>/dev/null || echo unknown)"
echo "demo: the ledger:"
cat "$MNT/.bananafs/ledger.jsonl"
echo
echo "demo: bananactl cost:"
"$B/bananactl" -m "$MNT" cost || true
echo
echo "demo: $MNT stays mounted. Try: echo 'a cat astronaut' > $MNT/flash/1K/cat.txt"
echo "demo: stop it with: make undemo"
