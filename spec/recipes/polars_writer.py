"""A snapshot written by Polars (LargeUtf8 strings, LargeList vectors of
float64, ZSTD): python3 polars_writer.py OUT RECORDS.jsonl DIM"""

import json
import os
import sys

import polars as pl

from vecport_manifest import write_manifest

out, source, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
records = [json.loads(line) for line in open(source, encoding="utf-8")]
os.makedirs(f"{out}/collections/docs")
frame = pl.DataFrame(
    {key: [r[key] for r in records]
     for key in ["id", "namespace", "metadata", "document", "uri", "vector"]},
    schema={"id": pl.String, "namespace": pl.String, "metadata": pl.String,
            "document": pl.String, "uri": pl.String, "vector": pl.List(pl.Float64)},
)
frame.write_parquet(f"{out}/collections/docs/part-000000.parquet")
write_manifest(out, "docs", records, dim, "l2", [("part-000000.parquet", len(records))])
