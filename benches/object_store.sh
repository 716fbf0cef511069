#!/usr/bin/env bash
# Object storage throughput: vecport against the floor of the S3 server of
# tests/servers.sh (s3s-fs on 127.0.0.1), at two sizes, with peak RSS.
#   export of N × DIM from the Qdrant emulator into s3://…   vs  the same export to local disk
#                                                          vs  the floor: the snapshot's bytes
#                                                              uploaded with plain multipart PUTs
#   verify s3://…                                          vs  the floor: plain GETs of the objects
#   import from s3://… into the emulator                   vs  the same import from local disk
# The floor's client is object_store itself (benches/object_store_floor.rs),
# the library vecport uses: what separates vecport from it is vecport's own
# work, not another HTTP stack. Peak RSS should stay flat between the sizes.
#   bash benches/object_store.sh                     # 50,000 and 200,000 × 768
#   SIZES="20000 100000" DIM=384 bash benches/object_store.sh
#   CONCURRENCY=8 bash benches/object_store.sh       # the floor's pieces in flight
# Uses the S3 server in VECPORT_TEST_S3_* when set, else starts one
# (VDB_DIR, S3_PORT as in tests/servers.sh). Needs about 4 × the largest
# snapshot (N × DIM × 4 bytes) of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"50000 200000"}
DIM=${DIM:-768}
PORT=${PORT:-16334}
CONCURRENCY=${CONCURRENCY:-4}
WORK=$(mktemp -d)
source tests/servers.sh
vdb_start_s3
export AWS_ACCESS_KEY_ID=$VECPORT_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$VECPORT_TEST_S3_SECRET_KEY
export AWS_ENDPOINT_URL=$VECPORT_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
BUCKET=$VECPORT_TEST_S3_BUCKET
RUN="bench-$$"
cargo build --release --locked --quiet --bin vecport --example emulator --example gen_snapshot --example object_store_floor

./target/release/examples/emulator qdrant --port "$PORT" >"$WORK/emulator.log" 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null; rm -rf "$WORK" "${VECPORT_TEST_S3_ROOT:?}/$BUCKET/$RUN"; vdb_cleanup' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done

vecport() { ./target/release/vecport "$@"; }
floor() { ./target/release/examples/object_store_floor "$@"; }

# run LABEL N BYTES FLOOR_SECONDS COMMAND…: one row; FLOOR_SECONDS empty for
# no ratio. Sets LAST_WALL.
run() {
  local label=$1 n=$2 bytes=$3 floor_wall=$4; shift 4
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; return 1; }
  read -r LAST_WALL rss <"$WORK/time"
  awk -v l="$label" -v n="$n" -v b="$bytes" -v w="$LAST_WALL" -v r="$rss" -v f="$floor_wall" 'BEGIN {
    ratio = f == "" ? "" : sprintf("%.2f", f / w);
    printf "| %s | %d | %.1f | %.0f | %.1f | %.0f | %s |\n", l, n, w, n / w, b / w / 1e6, r / 1024, ratio
  }'
}

echo "| run | vectors | wall s | vectors/s | MB/s | peak RSS MB | ÷ floor |"
echo "|---|---|---|---|---|---|---|"
for N in $SIZES; do
  rm -rf "$WORK/in" "$WORK/disk"
  ./target/release/examples/gen_snapshot "$WORK/in" "$N" "$DIM" l2
  vecport -q import "$WORK/in" "qdrant://127.0.0.1:$PORT/bench$N"
  rm -rf "$WORK/in"
  source="qdrant://127.0.0.1:$PORT/bench$N"
  s3="s3://$BUCKET/$RUN/$N"

  run "export ${N}×${DIM} → disk" "$N" 0 "" vecport -q export "$source" "$WORK/disk"
  bytes=$(du -sb "$WORK/disk" | cut -f1)
  run "floor: multipart PUTs of the same bytes" "$N" "$bytes" "" floor put "$WORK/disk" "$s3-floor" "$CONCURRENCY"
  put_floor=$LAST_WALL
  run "export ${N}×${DIM} → s3" "$N" "$bytes" "$put_floor" vecport -q export "$source" "$s3/export"
  run "floor: plain GETs" "$N" "$bytes" "" floor get "$s3/export" "$CONCURRENCY"
  get_floor=$LAST_WALL
  run "verify s3" "$N" "$bytes" "$get_floor" vecport -q verify "$s3/export"
  run "verify disk" "$N" "$bytes" "" vecport -q verify "$WORK/disk"
  # Import's pace is the target's: from the bucket against from the disk.
  run "import disk → qdrant" "$N" "$bytes" "" vecport -q import "$WORK/disk" "qdrant://127.0.0.1:$PORT/back$N"
  import_disk=$LAST_WALL
  curl -sf -X DELETE "http://127.0.0.1:$PORT/collections/back$N" >/dev/null
  run "import s3 → qdrant (÷ import from disk)" "$N" "$bytes" "$import_disk" vecport -q import "$s3/export" "qdrant://127.0.0.1:$PORT/back$N"
  # Make room for the next size: the emulator's collections and the objects.
  for c in "bench$N" "back$N"; do
    curl -sf -X DELETE "http://127.0.0.1:$PORT/collections/$c" >/dev/null
  done
  rm -rf "${VECPORT_TEST_S3_ROOT:?}/$BUCKET/$RUN" "$WORK/disk"
done
echo "(÷ floor: the floor's wall time over this run's (for import from s3: import from disk's); the goal is ≥ 0.8. MB/s counts the snapshot's bytes.)"
