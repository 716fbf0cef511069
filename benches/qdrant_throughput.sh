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
# shown apart. Each export follows the server's floor: the same pages fetched
# and thrown away unparsed (python3), the fastest any client could export.
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
# The server's floor: every scroll page fetched over one connection and
# thrown away unparsed, only the next offset read from the body's end.
floor() {
  python3 - "$PORT" bench1 "$N" <<'PY'
import http.client, json, re, sys, time
port, collection, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
offset, start = None, time.monotonic()
while True:
    body = {"limit": 1000, "with_vector": True, "with_payload": True}
    if offset is not None:
        body["offset"] = offset
    conn.request("POST", f"/collections/{collection}/points/scroll", json.dumps(body),
                 {"content-type": "application/json"})
    data = conn.getresponse().read()
    offset = json.loads(re.search(rb'"next_page_offset":(null|"[^"]*"|\d+)', data[-200:]).group(1))
    if offset is None:
        break
wall = time.monotonic() - start
print(f"| server floor (scroll, unparsed) | {n} | {wall:.1f} | {n / wall:.0f} | | | | | |")
PY
}
for _ in $(seq 1 "$ROUNDS"); do
  floor
  rm -rf "$WORK/out"
  run "export ${N}×${DIM}" ./target/release/vecport -q export "qdrant://127.0.0.1:$PORT/bench1" "$WORK/out"
  ./target/release/vecport verify "$WORK/out" >/dev/null
done
