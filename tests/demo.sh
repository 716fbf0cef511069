#!/usr/bin/env bash
# vecport's main job end to end on this machine, with nothing set up before:
# start a real Chroma, fill a collection with the official Python client,
# export it to a snapshot, verify and inspect the snapshot, import it under a
# new name, and list both collections.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/servers.sh
vdb_install_python
vdb_start_chroma

WORK=$(mktemp -d)
SNAPSHOT="$WORK/snapshot"
HOSTPORT=${CHROMA_URL#http://}
cargo build --release --locked --quiet
vecport() { ./target/release/vecport "$@"; }

echo "== seeding collection 'demo-articles' (5,000 records, 384 dimensions, cosine) with the chromadb client"
"$VECPORT_PYTHON" - "$CHROMA_URL" <<'PY'
import random, sys
import chromadb
host, port = sys.argv[1].removeprefix("http://").split(":")
client = chromadb.HttpClient(host=host, port=int(port))
try:
    client.delete_collection("demo-articles")
except Exception:
    pass
col = client.create_collection("demo-articles", configuration={"hnsw": {"space": "cosine", "ef_construction": 200, "max_neighbors": 32}}, metadata={"team": "search", "source": "demo"})
rng = random.Random(7)
for start in range(0, 5000, 1000):
    ids = [f"article/{i:05d}" for i in range(start, start + 1000)]
    col.add(
        ids=ids,
        embeddings=[[rng.uniform(-1, 1) for _ in range(384)] for _ in ids],
        metadatas=[{"year": 2000 + i % 25, "score": i / 7, "published": i % 2 == 0, "tags": ["news", f"t{i % 5}"]} for i in range(start, start + 1000)],
        documents=[f"Article {i}: text of the article" for i in range(start, start + 1000)],
    )
print(f"seeded {col.count()} records")
PY

echo "== vecport ls chroma://$HOSTPORT"
vecport ls "chroma://$HOSTPORT"
echo "== vecport export chroma://$HOSTPORT/demo-articles $SNAPSHOT"
vecport export "chroma://$HOSTPORT/demo-articles" "$SNAPSHOT"
echo "== vecport verify $SNAPSHOT"
vecport verify "$SNAPSHOT"
echo "== vecport inspect $SNAPSHOT"
vecport inspect "$SNAPSHOT"
echo "== vecport import $SNAPSHOT chroma://$HOSTPORT/demo-articles-restored --if-exists replace"
vecport import "$SNAPSHOT" "chroma://$HOSTPORT/demo-articles-restored" --if-exists replace
echo "== vecport ls chroma://$HOSTPORT"
vecport ls "chroma://$HOSTPORT"
rm -rf "$WORK"
