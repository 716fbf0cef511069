"""A snapshot written by pandas (to_parquet through pyarrow, SNAPPY; vectors
become lists of float32 whose length the manifest's dimension gives):
python3 pandas_writer.py OUT RECORDS.jsonl DIM"""

import json
import os
import sys

import numpy as np
import pandas as pd

from vecport_manifest import write_manifest

out, source, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
records = [json.loads(line) for line in open(source, encoding="utf-8")]
os.makedirs(f"{out}/collections/docs")
frame = pd.DataFrame({
    "id": [r["id"] for r in records],
    "namespace": [r["namespace"] for r in records],
    "metadata": [r["metadata"] for r in records],
    "document": [r["document"] for r in records],
    "uri": [r["uri"] for r in records],
    "vector": [np.asarray(r["vector"], dtype=np.float32) for r in records],
})
frame.to_parquet(f"{out}/collections/docs/part-000000.parquet", index=False)
write_manifest(out, "docs", records, dim, "l2", [("part-000000.parquet", len(records))])
