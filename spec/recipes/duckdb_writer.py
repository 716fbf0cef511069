"""A snapshot written by DuckDB's COPY (SNAPPY, list items named `element`,
no ARROW:schema entry: the dimension comes from the manifest alone):
python3 duckdb_writer.py OUT RECORDS.jsonl DIM"""

import json
import os
import sys

import duckdb

from vecport_manifest import write_manifest

out, source, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
records = [json.loads(line) for line in open(source, encoding="utf-8")]
os.makedirs(f"{out}/collections/docs")
duckdb.execute(f"""
    COPY (
        SELECT id, namespace, metadata, document, uri, vector::FLOAT[] AS vector
        FROM read_json(?, format = 'newline_delimited', columns = {{
            'id': 'VARCHAR', 'namespace': 'VARCHAR', 'metadata': 'VARCHAR',
            'document': 'VARCHAR', 'uri': 'VARCHAR', 'vector': 'DOUBLE[]'}})
    ) TO '{out}/collections/docs/part-000000.parquet' (FORMAT parquet)
""", [source])
write_manifest(out, "docs", records, dim, "l2", [("part-000000.parquet", len(records))])
