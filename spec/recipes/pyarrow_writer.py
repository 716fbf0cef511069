"""A snapshot written with pyarrow's defaults (SNAPPY, list items named
`element`, nullable items): python3 pyarrow_writer.py OUT RECORDS.jsonl DIM"""

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from vecport_manifest import write_manifest

out, source, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
records = [json.loads(line) for line in open(source, encoding="utf-8")]
os.makedirs(f"{out}/collections/docs")
half = len(records) // 2
parts = []
for i, chunk in enumerate([records[:half], records[half:]]):
    table = pa.table({
        "id": pa.array([r["id"] for r in chunk], pa.string()),
        "namespace": pa.array([r["namespace"] for r in chunk], pa.string()),
        "metadata": pa.array([r["metadata"] for r in chunk], pa.string()),
        "document": pa.array([r["document"] for r in chunk], pa.string()),
        "uri": pa.array([r["uri"] for r in chunk], pa.string()),
        # A fixed-size list: the dimension travels in the ARROW:schema entry.
        "vector": pa.array([r["vector"] for r in chunk], pa.list_(pa.float32(), dim)),
    })
    name = f"part-{i:06d}.parquet"
    pq.write_table(table, f"{out}/collections/docs/{name}")
    parts.append((name, len(chunk)))
write_manifest(out, "docs", records, dim, "l2", parts)
