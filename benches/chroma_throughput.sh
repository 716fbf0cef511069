#!/usr/bin/env bash
# End-to-end throughput of `vecport export` / `vecport import` against a real
# Chroma, each next to the floor the server allows:
#
#   export floor  every page of the collection fetched with curl (POST …/get,
#                 limit 1000, offset paging, include embeddings/metadatas/
#                 documents/uris), bodies thrown away unparsed: sequentially on
#                 one keep-alive connection, and 4 in flight (curl -Z), which is
#                 what `vecport export` does by default (--concurrency 4).
#   import floor  the official Python client (chromadb==1.5.9) upserting the
#                 same records into a fresh collection, batch = the server's
#                 max_batch_size (5461); timed around the upsert calls only.
#
# Data: benches/chroma_upsert.py seeds collection bench-N with N records of DIM
# random f32 (numpy PCG64, seed N*DIM), string ids, small flat metadata and a
# ~100-byte document each — a function of (N, DIM) alone, so runs repeat.
#
# Usage: benches/chroma_throughput.sh
#   CHROMA_URL=http://host:port  use that server (else one is started on
#                                127.0.0.1:$CHROMA_PORT with a fresh data dir and
#                                stopped on exit)
#   SIZES="20000 100000"  DIM=384  CHROMA_PORT=8011  VDB_DIR=/tmp/vdb-ci
#   KEEP=1  keep the work directory (snapshots, timings)
# Needs: python3 (venv), curl, /usr/bin/time (GNU), cargo. Everything it sends
# goes to CHROMA_URL (loopback by default); on a given server it creates and
# deletes collections named bench-N, bench-N-vecport and bench-N-client.
# Prints a markdown table on stdout (load1 = load average when each row ran:
# on a shared 2-core box anything else running skews the ratios); progress
# goes to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VDB=${VDB_DIR:-/tmp/vdb-ci}
SIZES=${SIZES:-"20000 100000"}
DIM=${DIM:-384}
PORT=${CHROMA_PORT:-8011}
PAGE=1000
TIME=/usr/bin/time

log() { echo "[chroma_throughput] $*" >&2; }
[ -x "$TIME" ] || { log "needs GNU time at $TIME (apt-get install time)"; exit 1; }
command -v curl >/dev/null || { log "needs curl"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vecport-chroma-bench.XXXXXX")
CHROMA_PID=""
cleanup() {
  if [ -n "$CHROMA_PID" ]; then kill "$CHROMA_PID" 2>/dev/null && wait "$CHROMA_PID" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

# --- the official client (and the server, when none is given), pinned ---
mkdir -p "$VDB"; chmod 755 "$VDB"
[ -x "$VDB/chroma-venv/bin/chroma" ] || {
  log "installing chromadb==1.5.9 into $VDB/chroma-venv"
  python3 -m venv "$VDB/chroma-venv" && "$VDB/chroma-venv/bin/pip" install -q chromadb==1.5.9
}
PY="$VDB/chroma-venv/bin/python"

if [ -z "${CHROMA_URL:-}" ]; then
  DATA="$VDB/chroma-bench-data"
  rm -rf "$DATA"
  ANONYMIZED_TELEMETRY=False "$VDB/chroma-venv/bin/chroma" run --path "$DATA" \
      --host 127.0.0.1 --port "$PORT" >"$VDB/chroma-bench.log" 2>&1 &
  CHROMA_PID=$!
  CHROMA_URL="http://127.0.0.1:$PORT"
fi
CHROMA_URL=${CHROMA_URL%/}
for _ in $(seq 1 120); do curl -sf "$CHROMA_URL/api/v2/heartbeat" >/dev/null && break; sleep 0.5; done
curl -sf "$CHROMA_URL/api/v2/heartbeat" >/dev/null || {
  log "no Chroma at $CHROMA_URL"; [ -n "$CHROMA_PID" ] && cat "$VDB/chroma-bench.log" >&2; exit 1; }
case "$CHROMA_URL" in
  https://*) VP_URL="chroma+https://${CHROMA_URL#https://}" ;;
  *)         VP_URL="chroma://${CHROMA_URL#http://}" ;;
esac
API="$CHROMA_URL/api/v2/tenants/default_tenant/databases/default_database"

# --- vecport ---
log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
VECPORT="${CARGO_TARGET_DIR:-$ROOT/target}/release/vecport"

# $TIME -f "%e %M" prints wall seconds and peak RSS (KiB) into $WORK/time.
timed() { "$TIME" -o "$WORK/time" -f "%e %M" "$@"; }
wall() { cut -d' ' -f1 "$WORK/time"; }
rss_mb() { awk '{printf "%.0f", $2/1024}' "$WORK/time"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }'; }
collection_id() { curl -sf "$API/collections/$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
count() { curl -sf "$API/collections/$(collection_id "$1")/count"; }
delete() { curl -sf -X DELETE "$API/collections/$1" >/dev/null || true; }

# One curl config that fetches every page of collection $1 ($2 records).
pages_config() {
  local id=$1 n=$2 off
  for ((off = 0; off < n; off += PAGE)); do
    if [ "$off" -gt 0 ]; then printf 'next\n'; fi
    printf 'url = "%s/collections/%s/get"\n' "$API" "$id"
    printf 'header = "Content-Type: application/json"\n'
    printf 'data = "{\\"limit\\":%d,\\"offset\\":%d,\\"include\\":[\\"embeddings\\",\\"metadatas\\",\\"documents\\",\\"uris\\"]}"\n' "$PAGE" "$off"
    printf 'output = "/dev/null"\n'
    printf 'write-out = "%%{http_code} %%{size_download}\\n"\n'
  done
}

# Runs the page fetch with curl $@ extra flags; sets FLOOR_S, FLOOR_RSS, FLOOR_MB.
fetch_pages() {
  timed curl -sS --no-progress-meter "$@" -K "$WORK/pages.cfg" >"$WORK/pages.out"
  FLOOR_S=$(wall); FLOOR_RSS=$(rss_mb)
  local bad
  bad=$(awk '$1 != 200' "$WORK/pages.out" | wc -l)
  [ "$bad" -eq 0 ] || { log "$bad page requests failed"; head "$WORK/pages.out" >&2; exit 1; }
  FLOOR_MB=$(awk '{s += $2} END {printf "%.0f", s / 1e6}' "$WORK/pages.out")
}

ROWS=()
row() { ROWS+=("| $(printf '%s | ' "$@")"); }

CLIENT=$("$PY" -c 'import chromadb; print(chromadb.__version__)')
SERVER="API $(curl -sf "$CHROMA_URL/api/v2/version" | tr -d '"')"
if [ -n "$CHROMA_PID" ]; then SERVER="chromadb $CLIENT, $SERVER"; fi
log "Chroma ($SERVER) at $CHROMA_URL; client chromadb $CLIENT; $(nproc) cores; $("$VECPORT" --version)"
for N in $SIZES; do
  SRC="bench-$N"

  log "N=$N: seeding $SRC with the official client"
  SEED=$("$PY" "$ROOT/benches/chroma_upsert.py" --url "$CHROMA_URL" --name "$SRC" --n "$N" --dim "$DIM")
  log "  seeded: $SEED"
  ID=$(collection_id "$SRC")
  pages_config "$ID" "$N" >"$WORK/pages.cfg"

  # Warm the server's caches once (untimed), so the floor and vecport see the same state.
  curl -sS -K "$WORK/pages.cfg" >/dev/null

  log "N=$N: export floor, sequential"
  L=$(load1); fetch_pages
  SEQ_S=$FLOOR_S
  row "$N" "export floor: curl, 1 in flight" "$FLOOR_S" "$(div "$N" "$FLOOR_S")" "$FLOOR_RSS" "${FLOOR_MB} MB JSON" "" "$L"

  log "N=$N: export floor, 4 in flight"
  L=$(load1); fetch_pages -Z --parallel-max 4
  PAR_S=$FLOOR_S
  row "$N" "export floor: curl, 4 in flight" "$FLOOR_S" "$(div "$N" "$FLOOR_S")" "$FLOOR_RSS" "${FLOOR_MB} MB JSON" "" "$L"
  BEST=$(awk -v a="$SEQ_S" -v b="$PAR_S" 'BEGIN { print (a < b ? a : b) }')

  log "N=$N: vecport export"
  SNAP="$WORK/snap-$N"
  L=$(load1); timed "$VECPORT" -q export "$VP_URL/$SRC" "$SNAP"
  EXP_S=$(wall)
  row "$N" "**vecport export**" "$EXP_S" "$(div "$N" "$EXP_S")" "$(rss_mb)" "$(du -sm "$SNAP" | cut -f1) MB snapshot" "$(ratio "$EXP_S" "$BEST") best floor" "$L"

  log "N=$N: vecport import"
  DST="$SRC-vecport"; delete "$DST"
  L=$(load1); timed "$VECPORT" -q import "$SNAP" "$VP_URL/$DST"
  IMP_S=$(wall); IMP_RSS=$(rss_mb)
  GOT=$(count "$DST"); [ "$GOT" -eq "$N" ] || { log "$DST counts $GOT records, expected $N"; exit 1; }

  log "N=$N: import floor, official client"
  FLOOR_NAME="$SRC-client"; delete "$FLOOR_NAME"
  L2=$(load1)
  OUT=$(timed "$PY" "$ROOT/benches/chroma_upsert.py" --url "$CHROMA_URL" --name "$FLOOR_NAME" --n "$N" --dim "$DIM")
  UPS_S=$(echo "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  BATCH=$(echo "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["batch"])')
  row "$N" "**vecport import**" "$IMP_S" "$(div "$N" "$IMP_S")" "$IMP_RSS" "" "$(ratio "$IMP_S" "$UPS_S") floor" "$L"
  row "$N" "import floor: python client upsert, batch $BATCH" "$UPS_S" "$(div "$N" "$UPS_S")" "$(rss_mb)" "process wall $(wall) s" "" "$L2"

  delete "$DST"; delete "$FLOOR_NAME"; delete "$SRC"
done

echo
echo "Chroma server ($SERVER) at $CHROMA_URL, client chromadb $CLIENT, $DIM-d f32, $(nproc) cores, $("$VECPORT" --version)"
echo
echo "| records | what | wall s | vectors/s | peak RSS MB | size | vs floor | load1 |"
echo "|---:|---|---:|---:|---:|---|---:|---:|"
printf '%s\n' "${ROWS[@]}" | sed 's/ | $/ |/'
