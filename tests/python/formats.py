#!/usr/bin/env python3
"""Writes and reads the dataset formats `vecport convert` handles, with the
real packages that define them, for tests/integration/convert.rs.

Run with the interpreter of `vdb_install_formats` (tests/servers.sh:
pinecone-datasets, pandas, pyarrow, polars, duckdb and numpy, pinned, in a
virtualenv of their own). Every command is deterministic.

  write-dataset BASE NAME N DIM [--sparse]
      a dataset saved by pinecone-datasets' own Catalog into BASE/NAME
  read-dataset DIR OUT.jsonl
      the dataset as pinecone-datasets reads it back: one JSON object per
      document (id, values, sparse_values, metadata), floats as float64 text
      of their float32 values
  write-parquet ENGINE FILE N DIM
      a table written by pandas, polars or duckdb with the engine's defaults:
      doc_id (string), emb (list<double>), title, year, score; and
      FILE.expected.jsonl with the values written
  write-npy NPY ROWS N DIM
      a float32 .npy array and a JSON Lines file of id, text, lang, rank
  read-import DIR OUT.json
      a Pinecone bulk-import directory as pyarrow reads it: per namespace
      directory, each file's schema (column -> type, nullable) and its rows
"""

import json
import os
import sys

import numpy as np


def rng(seed):
    return np.random.default_rng(seed)


def metadata(i):
    m = {"title": f"title {i}", "year": 1990 + i % 30, "draft": i % 3 == 0, "score": (i % 8) / 4}
    if i % 5 == 0:
        m["tags"] = ["a", f"t{i % 7}"]
    return m


def write_dataset(base, name, n, dim, sparse):
    import pandas as pd
    from pinecone_datasets import Catalog, Dataset, DatasetMetadata
    from pinecone_datasets.dataset_metadata import DenseModelMetadata

    r = rng(7)
    values = r.standard_normal((n, dim)).astype(np.float32)
    rows = []
    for i in range(n):
        sv = None
        if sparse and i % 2 == 0:
            sv = {
                "indices": np.array([i % 11, 20 + i % 5], dtype=np.uint32),
                "values": np.array([0.5 + i, 1.25], dtype=np.float32),
            }
        rows.append(
            {
                "id": f"doc-{i}",
                "values": values[i],
                "sparse_values": sv,
                "metadata": metadata(i),
                "blob": None,
            }
        )
    df = pd.DataFrame(rows)
    meta = DatasetMetadata(
        name=name,
        created_at="2026-01-02 03:04:05.000000",
        documents=n,
        queries=0,
        dense_model=DenseModelMetadata(name="test-model", dimension=dim),
        description="written by pinecone-datasets",
        tags=["test"],
    )
    ds = Dataset.from_pandas(df, metadata=meta)
    Catalog(base_path=base).save_dataset(ds)


def f32(x):
    return float(np.float32(x))


def read_dataset(path, out):
    from pinecone_datasets import Dataset

    ds = Dataset.from_path(path)
    with open(out, "w") as f:
        for row in ds.documents.to_dict("records"):
            sv = row.get("sparse_values")
            if sv is not None and not (isinstance(sv, float) and np.isnan(sv)):
                sv = {"indices": [int(x) for x in sv["indices"]], "values": [f32(x) for x in sv["values"]]}
            else:
                sv = None
            f.write(
                json.dumps(
                    {
                        "id": row["id"],
                        "values": [f32(x) for x in row["values"]],
                        "sparse_values": sv,
                        "metadata": row["metadata"],
                    }
                )
                + "\n"
            )
    meta = ds.metadata.model_dump()
    with open(out + ".meta.json", "w") as f:
        json.dump(meta, f)


def write_parquet(engine, path, n, dim):
    r = rng(11)
    emb = r.standard_normal((n, dim))  # float64
    ids = [f"p-{i}" for i in range(n)]
    titles = [f"title {i}" for i in range(n)]
    years = [1990 + i % 30 for i in range(n)]
    scores = [(i % 8) / 4 for i in range(n)]
    lists = [[float(x) for x in row] for row in emb]
    if engine == "pandas":
        import pandas as pd

        pd.DataFrame({"doc_id": ids, "emb": lists, "title": titles, "year": years, "score": scores}).to_parquet(path)
    elif engine == "polars":
        import polars as pl

        pl.DataFrame({"doc_id": ids, "emb": lists, "title": titles, "year": years, "score": scores}).write_parquet(path)
    elif engine == "duckdb":
        import duckdb
        import pyarrow as pa

        table = pa.table({"doc_id": ids, "emb": lists, "title": titles, "year": years, "score": scores})
        con = duckdb.connect()
        con.register("t", table)
        con.execute(f"COPY (SELECT * FROM t) TO '{path}' (FORMAT parquet)")
    else:
        raise SystemExit(f"unknown engine {engine}")
    with open(path + ".expected.jsonl", "w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {"id": ids[i], "values": lists[i], "metadata": {"title": titles[i], "year": years[i], "score": scores[i]}}
                )
                + "\n"
            )


def write_npy(npy, rows, n, dim):
    r = rng(13)
    a = r.standard_normal((n, dim)).astype(np.float32)
    np.save(npy, a)
    with open(rows, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"n-{i}", "text": f"text of {i}", "lang": ["en", "de"][i % 2], "rank": i}) + "\n")
    with open(rows + ".expected.jsonl", "w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"n-{i}",
                        "values": [float(x) for x in a[i]],
                        "document": f"text of {i}",
                        "metadata": {"lang": ["en", "de"][i % 2], "rank": i},
                    }
                )
                + "\n"
            )


def read_import(path, out):
    import pyarrow.parquet as pq

    result = {}
    for ns in sorted(os.listdir(path)):
        d = os.path.join(path, ns)
        files = []
        for name in sorted(os.listdir(d)):
            t = pq.read_table(os.path.join(d, name))
            schema = {f.name: [str(f.type), f.nullable] for f in t.schema}
            rows = t.to_pylist()
            for row in rows:
                row["values"] = [f32(x) for x in row["values"]] if row["values"] is not None else None
                sv = row["sparse_values"]
                if sv is not None:
                    sv["values"] = [f32(x) for x in sv["values"]]
            files.append({"name": name, "schema": schema, "columns": t.schema.names, "rows": rows})
        result[ns] = files
    with open(out, "w") as f:
        json.dump(result, f)


def main(argv):
    cmd = argv[1]
    if cmd == "write-dataset":
        write_dataset(argv[2], argv[3], int(argv[4]), int(argv[5]), "--sparse" in argv)
    elif cmd == "read-dataset":
        read_dataset(argv[2], argv[3])
    elif cmd == "write-parquet":
        write_parquet(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "write-npy":
        write_npy(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "read-import":
        read_import(argv[2], argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
