#!/usr/bin/env python3
"""Reads one vecport snapshot part with pyarrow and prints what pyarrow sees.

Usage: pyarrow_read.py PART.parquet

Prints one JSON object:
  num_rows    rows in the part
  types       column name -> pyarrow type, as str(type)
  nullable    column name -> whether the column is nullable
  key_value   the part's `vecport.*` key-value metadata
  ids, namespaces
  vectors     vector column name -> one entry per row: null, or
                dense:  [bits, ...]
                sparse: {"indices": [int, ...], "values": [bits, ...]}
                multi:  [[bits, ...], ...]
              where bits is the IEEE 754 binary32 bit pattern of a value
              (struct.pack '<f'), so that -0.0, subnormals, infinities and NaN
              payloads can be compared exactly.

Run by tests/integration/pyarrow.rs; it is an independent reader of the
format (spec/FORMAT.md §4), so it decides the kind of each vector column from
its Arrow type alone.
"""

import json
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq

FIXED_COLUMNS = {"id", "namespace", "metadata", "document", "uri"}


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def dense(v):
    return [bits(x) for x in v]


def sparse(v):
    return {"indices": list(v["indices"]), "values": [bits(x) for x in v["values"]]}


def multi(v):
    return [dense(inner) for inner in v]


def decoder(name, t):
    if pa.types.is_fixed_size_list(t):
        return dense
    if pa.types.is_struct(t):
        return sparse
    if pa.types.is_list(t) and pa.types.is_fixed_size_list(t.value_type):
        return multi
    raise SystemExit(f"column {name!r} has type {t}, which is no vector type of the format")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    path = sys.argv[1]
    table = pq.read_table(path)
    kv = pq.read_metadata(path).metadata or {}
    out = {
        "num_rows": table.num_rows,
        "types": {f.name: str(f.type) for f in table.schema},
        "nullable": {f.name: f.nullable for f in table.schema},
        "key_value": {
            k.decode(): v.decode() for k, v in kv.items() if k.startswith(b"vecport.")
        },
        "ids": table.column("id").to_pylist(),
        "namespaces": table.column("namespace").to_pylist(),
        "vectors": {},
    }
    for field in table.schema:
        if field.name in FIXED_COLUMNS:
            continue
        decode = decoder(field.name, field.type)
        out["vectors"][field.name] = [
            None if v is None else decode(v) for v in table.column(field.name).to_pylist()
        ]
    json.dump(out, sys.stdout, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
