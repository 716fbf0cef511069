#!/usr/bin/env bash
# Export and import throughput against the Qdrant emulator, with the CPU each
# side spends: vecport's (user+sys of the vecport process, which includes its
# JSON encoding and decoding) against the emulator's (its own process).
#   bash benches/qdrant_throughput.sh            # 100,000 × 768
#   N=20000 DIM=384 bash benches/qdrant_throughput.sh
#   ROUNDS=3 bash benches/qdrant_throughput.sh   # each run three times
# vecport's system time includes the kernel copying the snapshot into the
# page cache, which on virtual machines that hand freed memory back to the
# host costs several times what it does elsewhere: user and system time are
# shown apart.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
DIM=${DIM:-768}
PORT=${PORT:-16333}
ROUNDS=${ROUNDS:-1}
WORK=$(mktemp -d)
cargo build --release --locked --quiet --bin vecport --example emulator --example gen_snapshot

./target/release/examples/emulator qdrant --port "$PORT" >"$WORK/emulator.log" 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

./target/release/examples/gen_snapshot "$WORK/in" "$N" "$DIM" l2
run() { # label, command…
  local label=$1; shift
  local before; before=$(cpu_ticks "$EMU")
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@"
  local after; after=$(cpu_ticks "$EMU")
  read -r wall user sys rss <"$WORK/time"
  awk -v l="$label" -v n="$N" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v e=$((after - before)) -v hz="$hz" 'BEGIN {
    ecpu = e / hz;
    printf "| %s | %d | %.1f | %.0f | %.0f | %.2f (%.2f + %.2f) | %.2f | %.1f | %.2f |\n", l, n, w, n / w, r / 1024, u + s, u, s, ecpu, 1e6 * (u + s) / n, (u + s) / ecpu
  }'
}
echo "| run | vectors | wall s | vectors/s | peak RSS MB | vecport CPU s (user + sys) | emulator CPU s | vecport µs CPU/vector | vecport ÷ emulator CPU |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  run "import ${N}×${DIM}" ./target/release/vecport -q import "$WORK/in" "qdrant://127.0.0.1:$PORT/bench$round"
done
for _ in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/out"
  run "export ${N}×${DIM}" ./target/release/vecport -q export "qdrant://127.0.0.1:$PORT/bench1" "$WORK/out"
  ./target/release/vecport verify "$WORK/out" >/dev/null
done
