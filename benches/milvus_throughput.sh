#!/usr/bin/env bash
# Export and import throughput against a real Milvus (milvus-lite 2.5.1's C++
# server, started by tests/servers.sh unless MILVUS_URL is set), beside the
# same work done by a pymilvus loop in the same run: insert in batches of
# 1,000, read back with query_iterator (batch 1,000). Vectors/s and peak RSS
# of each client process (/usr/bin/time -v).
#   bash benches/milvus_throughput.sh            # 100,000 × 768
#   N=20000 DIM=384 bash benches/milvus_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
DIM=${DIM:-768}
WORK=$(mktemp -d)
source tests/servers.sh
vdb_start_milvus
trap 'vdb_cleanup; rm -rf "$WORK"' EXIT
cargo build --release --locked --quiet --bin vecport --example gen_snapshot
./target/release/examples/gen_snapshot "$WORK/in" "$N" "$DIM" l2
URI=${MILVUS_URL/milvus:\/\//http://}
TAG=$$

run() { # label, command…
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null
  read -r wall rss <"$WORK/time"
  awk -v l="$label" -v n="$N" -v w="$wall" -v r="$rss" 'BEGIN {
    printf "| %s | %d | %.1f | %.0f | %.0f |\n", l, n, w, n / w, r / 1024 }'
}

cat >"$WORK/pymilvus_loop.py" <<'PY'
import sys, numpy as np
from pymilvus import DataType, MilvusClient
mode, uri, name, n, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
client = MilvusClient(uri=uri)
if mode == "import":
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(1)
    for start in range(0, n, 1000):
        rows = min(1000, n - start)
        vectors = rng.standard_normal((rows, dim), dtype=np.float32)
        client.insert(name, [{"id": f"r-{start + i:08d}", "vector": vectors[i], "n": start + i} for i in range(rows)])
    client.flush(name)
else:
    client.load_collection(name)
    it = client.query_iterator(name, batch_size=1000, output_fields=["*"])
    got = 0
    while True:
        page = it.next()
        if not page:
            break
        got += len(page)
    it.close()
    assert got == n, (got, n)
PY
PY_BIN=$VECPORT_MILVUS_PYTHON
echo "| run | vectors | wall s | vectors/s | peak RSS MB |"
echo "|---|---|---|---|---|"
run "vecport import ${N}×${DIM}" ./target/release/vecport -q import "$WORK/in" "$MILVUS_URL/vecport_bench_$TAG"
run "pymilvus insert loop ${N}×${DIM}" "$PY_BIN" "$WORK/pymilvus_loop.py" import "$URI" "pymilvus_bench_$TAG" "$N" "$DIM"
run "vecport export ${N}×${DIM}" ./target/release/vecport -q export "$MILVUS_URL/vecport_bench_$TAG" "$WORK/out"
run "pymilvus query_iterator ${N}×${DIM}" "$PY_BIN" "$WORK/pymilvus_loop.py" export "$URI" "pymilvus_bench_$TAG" "$N" "$DIM"
