"""Seeds a Chroma collection with deterministic data through the official client.

Used by benches/chroma_throughput.sh, both to create the collection that
`vecport export` reads and as the import floor (the official client's upsert).

    python chroma_upsert.py --url http://127.0.0.1:8011 --name bench-20000 --n 20000 --dim 384

Prints one JSON line: {"name", "n", "dim", "batch", "seconds"}, where seconds
covers the upsert calls only (not Python start-up, imports or data generation).
The data is a function of (n, dim) alone: ids `doc-00000000`…, random vectors
(numpy PCG64 seeded with n*dim) uniform in [-1, 1), small flat metadata and a
~100-byte document per record.
"""

import argparse
import json
import time
from urllib.parse import urlparse

import chromadb
import numpy as np

LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"


def generate(n, dim):
    rng = np.random.default_rng(n * dim)
    embeddings = rng.random((n, dim), dtype=np.float32) * 2 - 1
    ids = [f"doc-{i:08d}" for i in range(n)]
    metadatas = [
        {"source": f"file-{i // 50:04d}.md", "chunk": i % 50, "score": (i % 1000) / 1000, "public": i % 3 == 0}
        for i in range(n)
    ]
    documents = [f"chunk {i % 50} of file {i // 50}: {LOREM}" for i in range(n)]
    return ids, embeddings, metadatas, documents


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--batch", type=int, default=0, help="records per upsert; 0 = the server's max_batch_size")
    p.add_argument("--space", default="cosine")
    a = p.parse_args()

    u = urlparse(a.url)
    client = chromadb.HttpClient(host=u.hostname, port=u.port or 8000, ssl=u.scheme == "https")
    batch = a.batch or client.get_max_batch_size()
    ids, embeddings, metadatas, documents = generate(a.n, a.dim)
    try:
        client.delete_collection(a.name)
    except Exception:  # noqa: BLE001 - absent is fine
        pass
    col = client.create_collection(a.name, configuration={"hnsw": {"space": a.space}})

    start = time.perf_counter()
    for lo in range(0, a.n, batch):
        hi = min(lo + batch, a.n)
        col.upsert(ids=ids[lo:hi], embeddings=embeddings[lo:hi], metadatas=metadatas[lo:hi], documents=documents[lo:hi])
    seconds = time.perf_counter() - start

    count = col.count()
    if count != a.n:
        raise SystemExit(f"{a.name}: the server counts {count} records, {a.n} were upserted")
    print(json.dumps({"name": a.name, "n": a.n, "dim": a.dim, "batch": batch, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
