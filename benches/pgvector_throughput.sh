#!/usr/bin/env bash
# Import throughput into PostgreSQL + pgvector: vecport (snapshot → binary
# COPY into a staging table → upsert, four connections) against PostgreSQL's
# own `COPY … FROM` a file holding the same rows (text format, one session,
# no upsert). Neither builds an index (the snapshot has no metric), so both
# measure the load alone.
#   DATABASE_URL=postgres://postgres@127.0.0.1:15433/postgres bash benches/pgvector_throughput.sh
#   N=20000 DIM=384 … bash benches/pgvector_throughput.sh
# psql must be on PATH (or PSQL=/path/to/psql); `source tests/servers.sh;
# vdb_start_postgres` starts a server and its psql is under $VDB_DIR/pg-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL=postgres://USER@HOST:PORT/DATABASE}"
N=${N:-100000}
DIM=${DIM:-768}
PSQL=${PSQL:-psql}
WORK=$(mktemp -d)
chmod 755 "$WORK"
T=bench_$$
trap '"$PSQL" "$DATABASE_URL" -qAt -c "DROP TABLE IF EXISTS ${T}_vecport, ${T}_copy" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
cargo build --release --locked --quiet --bin vecport --example gen_snapshot
PG=pgvector://${DATABASE_URL#*://}
PG=${PG%%\?*}

./target/release/examples/gen_snapshot "$WORK/in" "$N" "$DIM" none >/dev/null
rate() { awk -v n="$N" -v s="$1" -v l="$2" 'BEGIN { printf "| %s | %d | %.1f | %.0f |\n", l, n, s, n / s }'; }
echo "| run | vectors | wall s | vectors/s |"
echo "|---|---|---|---|"
start=$(date +%s.%N)
./target/release/vecport -q import "$WORK/in" "$PG/${T}_vecport"
end=$(date +%s.%N)
rate "$(echo "$end - $start" | bc)" "vecport import ${N}×${DIM}"

# The same rows as a file, then PostgreSQL's own COPY into an empty table like it.
"$PSQL" "$DATABASE_URL" -qAt -c "\\copy ${T}_vecport TO '$WORK/rows.copy'"
"$PSQL" "$DATABASE_URL" -qAt -c "CREATE TABLE ${T}_copy (LIKE ${T}_vecport INCLUDING ALL)"
start=$(date +%s.%N)
"$PSQL" "$DATABASE_URL" -qAt -c "\\copy ${T}_copy FROM '$WORK/rows.copy'"
end=$(date +%s.%N)
rate "$(echo "$end - $start" | bc)" "COPY FROM file ${N}×${DIM}"
"$PSQL" "$DATABASE_URL" -qAt -c "SELECT 'rows: ' || (SELECT count(*) FROM ${T}_vecport) || ' / ' || (SELECT count(*) FROM ${T}_copy)"
