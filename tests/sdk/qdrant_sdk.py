"""The official qdrant-client (REST) against a Qdrant server or emulator.

Run by tests/integration/qdrant_emulator.rs. Environment:
  QDRANT_URL          base URL of the server (required)
  QDRANT_API_KEY      API key, if the server wants one
  QDRANT_SDK_COLLECTION  collection to (re)create, default "sdk_scenario"
  QDRANT_SDK_SUMMARY  file to write the JSON summary to (it is printed too)
  QDRANT_SDK_FLOATS   "lossy" (default) or "exact": how the server reads JSON
                      floats. Qdrant's serde_json is built without
                      `float_roundtrip`, so a float with 16-17 significant
                      digits may come back one ulp away ("lossy"), and payload
                      floats take that step twice (parsed from the request,
                      then again from the stored JSON on every read).

Every expectation here is what real Qdrant 1.19 does; a failed one exits 1
with a message on stderr. The summary lists the points as the server returned
them (cosine vectors normalised), in scroll order, so that an export of the
collection can be compared with it.
"""

import json
import math
import os
import random
import sys
import uuid
import warnings

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.common.version_check import get_server_version, is_compatible
from qdrant_client.http.exceptions import UnexpectedResponse

URL = os.environ["QDRANT_URL"]
API_KEY = os.environ.get("QDRANT_API_KEY") or None
NAME = os.environ.get("QDRANT_SDK_COLLECTION", "sdk_scenario")
SUMMARY = os.environ.get("QDRANT_SDK_SUMMARY")

FLOATS = os.environ.get("QDRANT_SDK_FLOATS", "lossy")

N_INT = 170
N_UUID = 80
N_BATCH = 24  # of the UUID points, written through the batch form
CHECKS = []


def check(cond, what):
    if not cond:
        print(f"qdrant_sdk.py: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def passed(name):
    CHECKS.append(name)


POW10 = [float(f"1e{i}") for i in range(309)]
U64_MAX = 2**64 - 1


def serde_json_lossy(token):
    """The float serde_json reads from a number token without its
    `float_roundtrip` feature; None for a token that stays an integer."""
    b, i = token, 0
    positive = not b.startswith("-")
    if not positive:
        i = 1
    sig, exp, is_float = 0, 0, False

    def digit(j):
        return int(b[j]) if j < len(b) and b[j].isdigit() else None

    def overflows(s, d):
        return s >= U64_MAX // 10 and (s > U64_MAX // 10 or d > U64_MAX % 10)

    if digit(i) == 0:
        i += 1
    else:
        while digit(i) is not None:
            d = digit(i)
            if overflows(sig, d):
                while digit(i) is not None:
                    exp += 1
                    i += 1
                is_float = True
                break
            sig, i = sig * 10 + d, i + 1
    if i < len(b) and b[i] == ".":
        is_float, i = True, i + 1
        while digit(i) is not None:
            d = digit(i)
            if overflows(sig, d):
                while digit(i) is not None:
                    i += 1
                break
            sig, exp, i = sig * 10 + d, exp - 1, i + 1
    if i < len(b) and b[i] in "eE":
        is_float, i = True, i + 1
        positive_exp = True
        if i < len(b) and b[i] in "+-":
            positive_exp, i = b[i] == "+", i + 1
        e = 0
        while digit(i) is not None:
            e, i = e * 10 + digit(i), i + 1
        exp = exp + e if positive_exp else exp - e
    if not is_float:
        return None
    f = float(sig)
    while True:
        if abs(exp) < len(POW10):
            f = f * POW10[abs(exp)] if exp >= 0 else f / POW10[abs(exp)]
            break
        if f == 0.0:
            break
        f /= 1e308
        exp += 308
    return f if positive else -f


def server_float(x):
    """What the server reads for a float the client sent (shortest repr)."""
    if FLOATS == "exact":
        return x
    return serde_json_lossy(repr(float(x)))


def server_payload(value):
    """A payload as the server returns it: floats read from the request, then
    once more from the JSON text it stores."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return server_float(server_float(value))
    if isinstance(value, list):
        return [server_payload(v) for v in value]
    return {k: server_payload(v) for k, v in value.items()}


def f32(xs):
    return [float(np.float32(server_float(x))) for x in xs]


def as_f32(xs):
    """Floats as the server sent them: shortest f32 text, read back as f32."""
    return [float(np.float32(x)) for x in xs]


def cosine_normalise(v):
    """Qdrant's scalar cosine_preprocess (fewer than 16 dimensions): the squared
    norm summed left to right in f32; unchanged if ~0 or within 1e-6 of 1."""
    v = np.asarray([server_float(x) for x in v], dtype=np.float32)
    length = np.float32(0.0)
    for x in v:
        length = np.float32(length + np.float32(x * x))
    if length < np.finfo(np.float32).eps or abs(float(length) - 1.0) <= 1e-6:
        return [float(x) for x in v]
    norm = np.sqrt(length, dtype=np.float32)
    return [float(np.float32(x / norm)) for x in v]


def id_key(pid):
    """Qdrant's order: integers first (ascending), then UUIDs by value."""
    if isinstance(pid, int):
        return (0, pid)
    return (1, uuid.UUID(pid).int)


def canonical_id(pid):
    return pid if isinstance(pid, int) else str(uuid.UUID(pid))


def make_points():
    rng = random.Random(20240519)
    ints = sorted(rng.sample(range(1, 10**6), N_INT - 3)) + [0, 2**63 + 5, 2**64 - 1]
    rng.shuffle(ints)
    uuids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(N_UUID)]
    # Some UUIDs sent upper-case: the server must answer them lower-case.
    uuids = [u.upper() if i % 5 == 0 else u for i, u in enumerate(uuids)]
    ids = ints + uuids
    points = []
    for n, pid in enumerate(ids):
        text = [rng.uniform(-2.0, 2.0) for _ in range(8)]
        if n == 3:
            text = [1.0, 0, 0, 0, 0, 0, 0, 0]  # already unit length: stored as is
        if n == 4:
            text = [0.0] * 8  # zero: stored as is
        vector = {"text": text}
        if n % 3 != 0 or n >= N_INT + N_UUID - N_BATCH:
            vector["image"] = [rng.uniform(-100.0, 100.0) for _ in range(4)]
        if n % 4 != 1 or n >= N_INT + N_UUID - N_BATCH:
            k = rng.randint(1, 6)
            indices = rng.sample(range(0, 5000), k)  # unsorted on purpose
            vector["keywords"] = {"indices": indices, "values": [rng.uniform(0.1, 3.0) for _ in range(k)]}
        payload = {
            "n": n,
            "category": rng.choice(["alpha", "beta", "gamma"]),
            "tenant": f"t{n % 4}",
            "title": rng.choice(["plain", "ünïcödé 日本語 😀", "quote\"back\\slash", "new\nline", ""]),
            "nested": {"a": {"b": [1, 2, {"c": None}]}, "empty": {}, "list": []},
            "tags": rng.sample(["x", "y", "z", "w"], rng.randint(0, 3)),
            "score": rng.uniform(-1e6, 1e6),
            "flag": n % 2 == 0,
            "nothing": None,
            "big": 2**63 + n,
            "neg": -(2**63) + n,
        }
        if n % 7 == 0:
            payload = {"only": "sparse payload", "n": n, "category": "delta"}
        points.append({"id": pid, "vector": vector, "payload": payload})
    return points


def to_sdk_vector(vector):
    out = {}
    for name, v in vector.items():
        if isinstance(v, dict):
            out[name] = models.SparseVector(indices=v["indices"], values=v["values"])
        else:
            out[name] = v
    return out


def vector_json(v):
    if isinstance(v, models.SparseVector):
        return {"indices": list(v.indices), "values": list(v.values)}
    return list(v)


def main():
    version = get_server_version(URL, {"api-key": API_KEY} if API_KEY else {}, None, 10)
    check(version == "1.19.0", f"GET / version is {version!r}")
    check(is_compatible("1.20.0", version), "client 1.20.0 should accept the server")
    passed("version")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
        client = QdrantClient(url=URL, api_key=API_KEY, prefer_grpc=False, check_compatibility=True, timeout=30)

    if client.collection_exists(NAME):
        client.delete_collection(NAME)
    check(not client.collection_exists(NAME), "collection gone after delete")
    created = client.create_collection(
        NAME,
        vectors_config={
            "text": models.VectorParams(size=8, distance=models.Distance.COSINE),
            "image": models.VectorParams(size=4, distance=models.Distance.EUCLID),
        },
        sparse_vectors_config={"keywords": models.SparseVectorParams()},
    )
    check(created is True, "create_collection returns True")
    try:
        client.create_collection(NAME, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        check(False, "creating an existing collection must fail")
    except UnexpectedResponse as e:
        check(e.status_code == 409, f"existing collection: status {e.status_code}")
        check(b"already exists" in e.content, f"existing collection: body {e.content!r}")
    passed("create_collection")

    client.create_payload_index(NAME, "category", field_schema=models.PayloadSchemaType.KEYWORD)
    client.create_payload_index(
        NAME, "tenant", field_schema=models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    )
    passed("create_payload_index")

    points = make_points()
    by_id = {canonical_id(p["id"]): p for p in points}
    listed, batched = points[: len(points) - N_BATCH], points[len(points) - N_BATCH :]
    rng = random.Random(7)
    rng.shuffle(listed)
    for start in range(0, len(listed), 64):
        chunk = listed[start : start + 64]
        result = client.upsert(
            NAME,
            points=[models.PointStruct(id=p["id"], vector=to_sdk_vector(p["vector"]), payload=p["payload"]) for p in chunk],
            wait=True,
        )
        check(result.status == models.UpdateStatus.COMPLETED, f"upsert status {result.status}")
    result = client.upsert(
        NAME,
        points=models.Batch(
            ids=[p["id"] for p in batched],
            vectors={
                "text": [p["vector"]["text"] for p in batched],
                "image": [p["vector"]["image"] for p in batched],
                "keywords": [to_sdk_vector(p["vector"])["keywords"] for p in batched],
            },
            payloads=[p["payload"] for p in batched],
        ),
        wait=True,
    )
    check(result.status == models.UpdateStatus.COMPLETED, "batch upsert completed")
    passed("upsert")

    # Scroll everything, 37 at a time.
    scrolled, offset, pages = [], None, 0
    while True:
        records, offset = client.scroll(NAME, limit=37, offset=offset, with_payload=True, with_vectors=True)
        pages += 1
        check(len(records) <= 37, "page within limit")
        scrolled.extend(records)
        if offset is None:
            break
        check(len(records) == 37, "only the last page may be short")
    check(pages == math.ceil(len(points) / 37), f"{pages} pages")
    ids = [r.id for r in scrolled]
    check(len(ids) == len(points) and len(set(map(str, ids))) == len(ids), "every point exactly once")
    check(ids == sorted(ids, key=id_key), "scroll order: integers ascending, then UUIDs by value")
    check(all(isinstance(i, int) for i in ids[:N_INT]) and all(isinstance(i, str) for i in ids[N_INT:]),
          "integers before UUIDs")
    check(all(i == str(uuid.UUID(i)) for i in ids[N_INT:]), "UUIDs answered lower-case hyphenated")
    passed("scroll_order")

    summary_points = []
    for r in scrolled:
        sent = by_id[r.id]
        want = server_payload(sent["payload"])
        check(r.payload == want, f"payload of {r.id}: {r.payload!r} != {want!r}")
        check(set(r.vector) == set(sent["vector"]), f"vector names of {r.id}")
        text = as_f32(r.vector["text"])
        expected = cosine_normalise(sent["vector"]["text"])
        check(text == expected, f"cosine vector of {r.id} normalised as Qdrant does: {text} != {expected}")
        norm = math.sqrt(sum(x * x for x in text))
        check(norm == 0 or abs(norm - 1) < 1e-6, f"unit length: {norm}")
        if "image" in sent["vector"]:
            check(as_f32(r.vector["image"]) == f32(sent["vector"]["image"]), f"euclid vector of {r.id} unchanged")
        if "keywords" in sent["vector"]:
            sv = r.vector["keywords"]
            pairs = sorted(zip(sent["vector"]["keywords"]["indices"], f32(sent["vector"]["keywords"]["values"])))
            check(list(sv.indices) == [i for i, _ in pairs], f"sparse indices of {r.id} sorted")
            check(as_f32(sv.values) == [v for _, v in pairs], f"sparse values of {r.id}")
        summary_points.append(
            {"id": r.id, "vector": {k: vector_json(v) for k, v in sorted(r.vector.items())}, "payload": r.payload}
        )
    passed("scroll_content")

    count = client.count(NAME, exact=True).count
    check(count == len(points), f"count {count}")
    filtered = client.count(
        NAME,
        count_filter=models.Filter(must=[models.FieldCondition(key="category", match=models.MatchValue(value="alpha"))]),
        exact=True,
    ).count
    check(filtered == sum(1 for p in points if p["payload"].get("category") == "alpha"), "filtered count")
    passed("count")

    upper = next(p["id"] for p in points if isinstance(p["id"], str) and p["id"].isupper())
    got = client.retrieve(NAME, ids=[upper, 0, 424242424242], with_payload=True, with_vectors=["image"])
    check([r.id for r in got] == [canonical_id(upper), 0], f"retrieve order and missing id: {[r.id for r in got]}")
    check(got[1].payload == server_payload(by_id[0]["payload"]), "retrieve payload")
    check(set(got[0].vector) <= {"image"}, "retrieve only the asked vector")
    passed("retrieve")

    stored = {r.id: r for r in scrolled}
    qrng = random.Random(99)

    # Cosine: score = dot of unit vectors, best first.
    q = [qrng.uniform(-1, 1) for _ in range(8)]
    qn = np.asarray(cosine_normalise(q), dtype=np.float64)
    expect = sorted(((float(np.dot(qn, np.asarray(r.vector["text"], dtype=np.float64))), r.id) for r in scrolled),
                    key=lambda t: -t[0])
    res = client.query_points(NAME, query=q, using="text", limit=5, with_payload=False).points
    check(len(res) == 5, "5 cosine hits")
    check(res[0].id == expect[0][1], f"cosine best hit {res[0].id} != {expect[0][1]}")
    for hit, (score, _) in zip(res, expect):
        check(abs(hit.score - score) < 1e-5, f"cosine score {hit.score} vs {score}")
    check(all(a.score >= b.score for a, b in zip(res, res[1:])), "cosine: descending scores")
    check(all(h.payload is None and h.vector is None for h in res), "no payload/vector unless asked")
    passed("query_cosine")

    # Euclid: score = L2 distance, smallest first.
    q = [qrng.uniform(-100, 100) for _ in range(4)]
    with_image = [r for r in scrolled if "image" in r.vector]
    expect = sorted((float(np.linalg.norm(np.asarray(r.vector["image"], dtype=np.float64) - np.asarray(f32(q)))), r.id)
                    for r in with_image)
    res = client.query_points(NAME, query=q, using="image", limit=4, with_payload=True).points
    check(res[0].id == expect[0][1], f"euclid best hit {res[0].id} != {expect[0][1]}")
    for hit, (dist, _) in zip(res, expect):
        check(abs(hit.score - dist) <= 1e-4 * max(1.0, dist), f"euclid distance {hit.score} vs {dist}")
    check(all(a.score <= b.score for a, b in zip(res, res[1:])), "euclid: ascending distances")
    check(res[0].payload == stored[res[0].id].payload, "query payload")
    check({h.id for h in res} <= {r.id for r in with_image}, "points without the vector are not hits")
    passed("query_euclid")

    # Sparse: dot product over shared indices.
    some = next(r for r in scrolled if "keywords" in r.vector and len(r.vector["keywords"].indices) >= 2)
    qi = list(some.vector["keywords"].indices)[:2] + [4999, 17]
    qv = [1.5, -0.5, 2.0, 0.25]
    qd = dict(zip(qi, f32(qv)))

    def sparse_score(r):
        sv = r.vector["keywords"]
        return sum(float(val) * qd[i] for i, val in zip(sv.indices, sv.values) if i in qd)

    candidates = [r for r in scrolled if "keywords" in r.vector and set(r.vector["keywords"].indices) & set(qi)]
    expect = sorted(((sparse_score(r), r.id) for r in candidates), key=lambda t: -t[0])
    res = client.query_points(NAME, query=models.SparseVector(indices=qi, values=qv), using="keywords", limit=3).points
    check(res[0].id == expect[0][1], f"sparse best hit {res[0].id} != {expect[0][1]}")
    check(abs(res[0].score - expect[0][0]) < 1e-4, f"sparse score {res[0].score} vs {expect[0][0]}")
    passed("query_sparse")

    # Filtered query.
    res = client.query_points(
        NAME,
        query=[0.1] * 8,
        using="text",
        query_filter=models.Filter(must=[models.FieldCondition(key="category", match=models.MatchValue(value="beta"))]),
        limit=50,
        with_payload=True,
    ).points
    check(res and all(h.payload["category"] == "beta" for h in res), "filter applied to query")
    passed("query_filter")

    info = client.get_collection(NAME)
    check(info.status == models.CollectionStatus.GREEN, f"status {info.status}")
    check(info.points_count == len(points), f"points_count {info.points_count}")
    vectors = info.config.params.vectors
    check(vectors["text"].size == 8 and vectors["text"].distance == models.Distance.COSINE, "text config")
    check(vectors["image"].size == 4 and vectors["image"].distance == models.Distance.EUCLID, "image config")
    check(set(info.config.params.sparse_vectors) == {"keywords"}, "sparse config")
    hnsw = info.config.hnsw_config
    check((hnsw.m, hnsw.ef_construct, hnsw.full_scan_threshold, hnsw.max_indexing_threads, hnsw.on_disk)
          == (16, 100, 10000, 0, False), f"hnsw defaults {hnsw}")
    check(info.config.params.shard_number == 1 and info.config.params.replication_factor == 1, "shards")
    check(info.config.params.on_disk_payload is True, "on_disk_payload default")
    check(info.config.quantization_config is None, "no quantization")
    schema = info.payload_schema
    check(schema["category"].data_type == models.PayloadSchemaType.KEYWORD, "category index")
    check(schema["category"].points == len(points), f"category index points {schema['category'].points}")
    check(schema["tenant"].params.is_tenant is True, "tenant index params")
    passed("get_collection")

    for bad in ["not-a-uuid", "123"]:
        try:
            client.upsert(NAME, points=[models.PointStruct(id=bad, vector={"text": [1.0] * 8})], wait=True)
            check(False, f"id {bad!r} must be refused")
        except UnexpectedResponse as e:
            check(e.status_code == 400, f"bad id status {e.status_code}")
            text = e.content.decode()
            check(f"value {bad} is not a valid point ID" in text, f"bad id message {text}")
    try:
        client.upsert(NAME, points=[models.PointStruct(id=1, vector={"text": [1.0] * 3})], wait=True)
        check(False, "wrong dimension must be refused")
    except UnexpectedResponse as e:
        check(e.status_code == 400 and b"expected dim: 8, got 3" in e.content, f"dimension error {e.content!r}")
    check(client.count(NAME, exact=True).count == len(points), "refused writes changed nothing")
    passed("errors")

    summary = {
        "collection": NAME,
        "points_count": count,
        "scroll_ids": ids,
        "points": summary_points,
        "config": {
            "vectors": {k: {"size": v.size, "distance": v.distance.value} for k, v in sorted(vectors.items())},
            "sparse_vectors": sorted(info.config.params.sparse_vectors),
            "payload_schema": {k: v.data_type.value for k, v in sorted(schema.items())},
        },
        "checks": CHECKS,
    }
    text = json.dumps(summary, ensure_ascii=False)
    if SUMMARY:
        with open(SUMMARY, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
