#!/usr/bin/env bash
# Build the unit tests of every workspace crate (and the integration tests of models/ and camera/) for aarch64 with Debian's rustc and run each test
# binary under qemu-aarch64, from its crate's directory as `cargo test` would. The `cross-test`
# profile (Cargo.toml: `release` without LTO), not the board binary's `dist`: a link-time optimizer
# run per test binary would cost more than the tests themselves.
#
# `unit_tests.sh build` only builds them (and lists them), `unit_tests.sh run` only runs what the
# last build listed, no argument does both. `make cross` builds them beside the board binary: that
# one's fat LTO links on one core for minutes, and the tests' build has a target directory of its
# own (target/cross-test), so neither waits for the other's lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=aarch64-unknown-linux-gnu
DIR=target/cross
mode=${1:-all}
case $mode in build|run|all) ;; *) echo "usage: unit_tests.sh [build|run]"; exit 2 ;; esac
# The build environment (CROSS_ENV) and QEMU come from `make cross`: the cross loader must not pick
# up the multiarch libc, and GStreamer's arm64 libraries are linked by name.
[ -n "${PKG_CONFIG_LIBDIR:-}" ] && { [ "$mode" = build ] || [ -n "${QEMU:-}" ]; } || { echo "run through make cross"; exit 1; }
mkdir -p $DIR
list=$DIR/unit-tests.txt
if [ "$mode" != run ]; then
# Also the integration tests of the crates below the binary (`artifacts`: model hashes and int8
# agreement on real photos; `sources`: the camera sources), in the same build so that features
# and dependencies are shared; the daemon's own need a running daemon and stay on x86.
/usr/bin/cargo test --profile cross-test --features rpi --target $TARGET --target-dir target/cross-test --workspace --lib \
  --test artifacts --test sources --no-run \
  --message-format=json-render-diagnostics \
  | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]), m["executable"])
' > "$list"
[ -s "$list" ] || { echo "no aarch64 test binaries were built"; exit 1; }
echo "aarch64: $(wc -l < "$list") test binaries built"
fi
[ "$mode" = build ] && exit 0
[ -s "$list" ] || { echo "no aarch64 test binaries are listed: run unit_tests.sh build first"; exit 1; }
total=0
while read -r crate_dir exe; do
  echo "== $(basename "$exe") (under qemu-aarch64, in ${crate_dir#$PWD/})"
  # Emulation costs ~50x: the int8 agreement runs on the two smallest photos with a face and a
  # photo without (the full set on x86), and the load-time precision race is skipped (what it
  # would time is qemu, not the board). The model tests take about 9 minutes here; the timeout
  # only catches a hang.
  out=$( (cd "$crate_dir" && VEIL_INT8_PHOTOS="astronaut.png camera.png mask_white.jpg" \
      timeout 1500 $QEMU "$exe" --test-threads 2 --skip auto_precision_keeps) 2>&1 ) \
    || { echo "$out" | tail -40; echo "aarch64 unit tests failed: $exe"; exit 1; }
  summary=$(echo "$out" | grep '^test result:')
  echo "$summary"
  passed=$(echo "$summary" | sed -E 's/.* ([0-9]+) passed.*/\1/')
  total=$((total + passed))
done < "$list"
echo "aarch64: $total tests passed in $(wc -l < "$list") test binaries"
