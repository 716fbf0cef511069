"""Seeds and reads Milvus collections with the official pymilvus client, so
vecport's Milvus connector is checked by an independent writer and reader.

MILVUS_SDK_URI    http://127.0.0.1:PORT
MILVUS_SDK_MODE   seed | seed_int | seed_long | dump
MILVUS_SDK_NAME   the collection
MILVUS_SDK_N      entities to seed
MILVUS_SDK_OUT    where the JSON summary goes

`seed` makes the collection of every type: a VARCHAR key, a float vector
(IVF_FLAT, COSINE), a sparse vector, scalar fields of every type (INT8…INT64,
FLOAT, DOUBLE, BOOL, VARCHAR, JSON, ARRAY) and the dynamic field. `seed_int`
makes an INT64-key collection. `seed_long` makes a VARCHAR field of
max_length 8 holding a longer value in one entity (written through the
dynamic field of a wider collection would be refused, so the key is the
record's field: the test imports into this schema). `dump` reads every
entity, paging by primary key, with the schema and the indexes.
"""

import json
import os
import random

from pymilvus import DataType, MilvusClient

uri = os.environ["MILVUS_SDK_URI"]
mode = os.environ["MILVUS_SDK_MODE"]
name = os.environ["MILVUS_SDK_NAME"]
n = int(os.environ.get("MILVUS_SDK_N", "0"))
out = os.environ["MILVUS_SDK_OUT"]
client = MilvusClient(uri=uri)
DIM = 32


def f32(x):
    """The float32 nearest to x, as a Python float."""
    import struct

    return struct.unpack("f", struct.pack("f", x))[0]


def seed_all():
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("i64", DataType.INT64)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE)
    schema.add_field("b", DataType.BOOL)
    schema.add_field("title", DataType.VARCHAR, max_length=128)
    schema.add_field("doc", DataType.JSON)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=16)
    schema.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8)
    index = client.prepare_index_params()
    index.add_index("dense", index_type="IVF_FLAT", metric_type="COSINE", params={"nlist": 16})
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={"drop_ratio_build": 0.0})
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    rng = random.Random(7)
    batch = []
    for i in range(n):
        row = {
            "pk": f"k{i:06d}-{rng.randrange(1 << 30):x}",
            "dense": [f32(rng.uniform(-1, 1)) for _ in range(DIM)],
            "sparse": {rng.randrange(1 << 20): f32(rng.uniform(0, 2)) for _ in range(rng.randrange(1, 6))},
            "i8": rng.randrange(-128, 128),
            "i16": rng.randrange(-32768, 32768),
            "i32": rng.randrange(-(1 << 31), 1 << 31),
            "i64": rng.randrange(-(1 << 63), 1 << 63),
            "f": f32(rng.uniform(-1e6, 1e6)),
            "d": rng.uniform(-1e12, 1e12),
            "b": rng.random() < 0.5,
            "title": "title \u00e9 \"%d\"" % i,
            "doc": {"n": i, "nested": {"x": [1, 2.5, "s"], "ok": i % 2 == 0}},
            "tags": [f"t{j}" for j in range(i % 5)],
            "nums": [rng.randrange(-1000, 1000) for _ in range(i % 9)],
        }
        if i % 3 == 0:
            row["extra"] = f"dyn{i}"
        if i % 4 == 0:
            row["score"] = i * 0.5
        batch.append(row)
        if len(batch) == 2000:
            client.insert(name, batch)
            batch = []
    if batch:
        client.insert(name, batch)
    client.flush(name)
    return {"count": client.query(name, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]}


def seed_int():
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    schema.add_field("label", DataType.VARCHAR, max_length=32)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    rng = random.Random(3)
    rows = [
        {"id": i * 7919 % 1000003, "vector": [f32(rng.uniform(-5, 5)) for _ in range(8)], "label": f"l{i}"}
        for i in range(n)
    ]
    for start in range(0, len(rows), 2000):
        client.insert(name, rows[start : start + 2000])
    client.flush(name)
    return {"count": n}


def seed_long():
    """A collection whose `title` holds at most 8 bytes."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("title", DataType.VARCHAR, max_length=8)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    return {"count": 0}


def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, bytes):
        return list(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return [jsonable(x) for x in v]  # protobuf repeated values (ARRAY fields)


def dump():
    desc = client.describe_collection(name)
    pk = next(f for f in desc["fields"] if f.get("is_primary"))
    key = pk["name"]
    string_key = pk["type"] == DataType.VARCHAR
    client.load_collection(name)
    total = client.query(name, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    rows = []
    last = None
    # Never past the last key: pymilvus cannot read an empty answer with ARRAY fields.
    while len(rows) < total:
        if last is None:
            expr = ""
        elif string_key:
            expr = f"{key} > {json.dumps(last)}"
        else:
            expr = f"{key} > {last}"
        page = client.query(name, filter=expr, output_fields=["*"], limit=4000, consistency_level="Strong")
        if not page:
            break
        page = sorted(page, key=lambda r: r[key])
        rows.extend(jsonable(dict(r)) for r in page)
        last = page[-1][key]
    fields = []
    for f in desc["fields"]:
        f = dict(f)
        f.pop("field_id", None)
        f["type"] = str(f["type"])
        if "element_type" in f:
            f["element_type"] = str(f["element_type"])
        fields.append(jsonable(f))
    indexes = []
    for ix in client.list_indexes(name):
        d = client.describe_index(name, ix)
        indexes.append({k: jsonable(v) for k, v in d.items() if k not in ("total_rows", "indexed_rows", "pending_index_rows", "state")})
    partitions = []
    try:
        partitions = client.list_partitions(name)
    except Exception:
        pass
    return {
        "fields": fields,
        "enable_dynamic_field": desc.get("enable_dynamic_field"),
        "consistency_level": desc.get("consistency_level"),
        "indexes": sorted(indexes, key=lambda i: i.get("field_name", "")),
        "partitions": partitions,
        "rows": rows,
    }


summary = {"seed": seed_all, "seed_int": seed_int, "seed_long": seed_long, "dump": dump}[mode]()
with open(out, "w") as f:
    json.dump(summary, f)
