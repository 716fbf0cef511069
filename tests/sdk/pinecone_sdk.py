"""The official pinecone SDK (10.2.0) against a Pinecone emulator.

Run by tests/integration/pinecone_emulator.rs. Environment:
  PINECONE_URL          control-plane base URL (required), e.g. http://127.0.0.1:5080
  PINECONE_API_KEY      API key (default "k")
  PINECONE_SDK_INDEX    index to (re)create, default "sdk-scenario"
  PINECONE_SDK_SUMMARY  file to write the JSON summary to (it is printed too)

Creates a serverless dense index (dimension 8, cosine), writes dense+sparse
records with metadata into three namespaces (one the default ""), and checks
what comes back through list, fetch, query, describe_index_stats and the
namespaces endpoint, plus two refusals. A failed expectation exits 1 with a
message on stderr. The summary lists, per namespace, the records as the
server returned them from fetch, in id order, so that an export of the index
can be compared with it. The index is left in place.
"""

import json
import math
import os
import random
import struct
import sys
import time

from pinecone import Pinecone, ServerlessSpec

URL = os.environ["PINECONE_URL"].rstrip("/")
API_KEY = os.environ.get("PINECONE_API_KEY") or "k"
NAME = os.environ.get("PINECONE_SDK_INDEX", "sdk-scenario")
SUMMARY = os.environ.get("PINECONE_SDK_SUMMARY")

DIM = 8
NAMESPACES = {"": 130, "alpha": 110, "beta-ns": 75}
CHECKS = []


def check(cond, what):
    if not cond:
        print(f"pinecone_sdk.py: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def passed(name):
    CHECKS.append(name)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def plain(obj):
    """A response model (or part of one) as plain JSON-able data."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return plain(obj.to_dict())
    raise TypeError(f"cannot make {type(obj).__name__} plain")


def make_records(rng):
    data = {}
    for ns, n in NAMESPACES.items():
        recs = []
        for i in range(n):
            rid = f"{ns or 'default'}-{i:04d}"
            if i % 7 == 3:
                rid = f"doc#{i}/chunk:{ns}"  # ids with punctuation
            values = [f32(rng.uniform(-1.0, 1.0)) for _ in range(DIM)]
            rec = {"id": rid, "values": values}
            if i % 2 == 0:
                idx = sorted(rng.sample(range(0, 50_000), rng.randint(1, 6)))
                rec["sparse_values"] = {
                    "indices": idx,
                    "values": [f32(rng.uniform(0.01, 2.0)) for _ in idx],
                }
            if i % 5 != 4:
                rec["metadata"] = {
                    "title": f"record {i} of {ns or 'default'}",
                    "rank": i,
                    "weight": i / 4.0,
                    "even": i % 2 == 0,
                    "tags": [f"t{i % 3}", "all"],
                    "group": f"g{i % 4}",
                }
            recs.append(rec)
        data[ns] = recs
    return data


def cosine(a, b):
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def expect_refused(fn, what):
    try:
        fn()
    except Exception as e:  # the SDK raises its ApiError (or a subclass)
        status = getattr(e, "status_code", None) or getattr(e, "status", None)
        check(status == 400, f"{what}: expected a 400, got {status}: {e}")
        return str(e)
    check(False, f"{what}: the server accepted it")


def main():
    rng = random.Random(20260)
    pc = Pinecone(api_key=API_KEY, host=URL)

    existing = [i.name for i in pc.list_indexes()]
    if NAME in existing:
        pc.delete_index(NAME)
    pc.create_index(
        name=NAME,
        dimension=DIM,
        metric="cosine",
        spec=ServerlessSpec(cloud="aws", region="us-east-1"),
        timeout=-1,
    )
    deadline = time.time() + 30
    while True:
        desc = pc.describe_index(NAME)
        if desc.status.ready:
            break
        check(time.time() < deadline, "index never became ready")
        time.sleep(0.2)
    check(desc.name == NAME, "describe: name")
    check(desc.dimension == DIM, f"describe: dimension {desc.dimension}")
    check(desc.metric == "cosine", f"describe: metric {desc.metric}")
    check(desc.vector_type == "dense", f"describe: vector_type {desc.vector_type}")
    check(desc.deletion_protection == "disabled", "describe: deletion_protection")
    check(desc.deployment.cloud == "aws", "describe: deployment.cloud")
    check(desc.spec.serverless.region == "us-east-1", "describe: spec.serverless.region")
    check(NAME in [i.name for i in pc.list_indexes()], "list_indexes has the index")
    passed("control_plane")

    try:
        pc.describe_index("no-such-index")
        check(False, "describe of a missing index succeeded")
    except Exception as e:
        status = getattr(e, "status_code", None) or getattr(e, "status", None)
        check(status == 404, f"describe missing: status {status}")
    passed("describe_missing_404")

    index = pc.Index(host=desc.host)
    data = make_records(rng)
    for ns, recs in data.items():
        for start in range(0, len(recs), 40):
            resp = index.upsert(vectors=recs[start : start + 40], namespace=ns)
            check(resp.upserted_count == len(recs[start : start + 40]), "upserted_count")
    total = sum(len(r) for r in data.values())
    check(total >= 300, "at least 300 records")
    passed("upsert")

    # list, paginated: sorted bytewise and complete
    for ns, recs in data.items():
        ids, token, pages = [], None, 0
        while True:
            page = index.list_paginated(namespace=ns, limit=37, pagination_token=token)
            pages += 1
            ids.extend(v.id for v in page.vectors)
            token = page.pagination.next if page.pagination else None
            if not token:
                break
            check(pages < 100, "list never ends")
        want = sorted((r["id"] for r in recs), key=lambda s: s.encode())
        check(ids == want, f"list of namespace {ns!r}: sorted and complete")
        check(pages == math.ceil(len(recs) / 37), f"list pages of {ns!r}: {pages}")
        gen = [v.id for page in index.list(namespace=ns) for v in page.vectors]
        check(gen == want, f"list generator of {ns!r}")
        pref = [v.id for page in index.list(namespace=ns, prefix="doc#") for v in page.vectors]
        check(pref == [i for i in want if i.startswith("doc#")], f"list prefix of {ns!r}")
    passed("list_paginated_sorted_complete")

    # fetch everything back
    fetched = {}
    for ns, recs in data.items():
        got = {}
        ids = [r["id"] for r in recs]
        for start in range(0, len(ids), 50):
            resp = index.fetch(ids=ids[start : start + 50], namespace=ns)
            for vid, v in resp.vectors.items():
                got[vid] = v
        check(len(got) == len(recs), f"fetch of {ns!r}: {len(got)} of {len(recs)}")
        for r in recs:
            v = got[r["id"]]
            check([f32(x) for x in v.values] == r["values"], f"fetch values of {r['id']} (f32 exact)")
            if "sparse_values" in r:
                check(v.sparse_values is not None, f"sparse of {r['id']}")
                check(list(v.sparse_values.indices) == r["sparse_values"]["indices"], "sparse indices")
                check([f32(x) for x in v.sparse_values.values] == r["sparse_values"]["values"], "sparse values")
            else:
                check(v.sparse_values is None, f"no sparse on {r['id']}")
            check((v.metadata or None) == r.get("metadata"), f"metadata of {r['id']}")
        missing = index.fetch(ids=["no-such-id", recs[0]["id"]], namespace=ns)
        check(list(missing.vectors) == [recs[0]["id"]], "missing ids are absent")
        fetched[ns] = got
    passed("fetch_exact")

    # query: best hit and cosine scores vs brute force
    for ns, recs in data.items():
        q = [f32(rng.uniform(-1.0, 1.0)) for _ in range(DIM)]
        resp = index.query(vector=q, top_k=5, namespace=ns, include_metadata=True, include_values=True)
        brute = sorted(recs, key=lambda r: -cosine(q, r["values"]))[:5]
        check([m.id for m in resp.matches] == [r["id"] for r in brute], f"query order in {ns!r}")
        for m, r in zip(resp.matches, brute):
            check(abs(m.score - cosine(q, r["values"])) < 1e-5, f"cosine score of {m.id}")
            check([f32(x) for x in m.values] == r["values"], "query values")
        top = recs[9]
        by_id = index.query(id=top["id"], top_k=1, namespace=ns)
        check(by_id.matches[0].id == top["id"], "query by id finds itself")
        check(abs(by_id.matches[0].score - 1.0) < 1e-5, "self similarity is 1")
        flt = index.query(vector=q, top_k=200, namespace=ns, filter={"group": {"$eq": "g1"}}, include_metadata=True)
        want = {r["id"] for r in recs if r.get("metadata", {}).get("group") == "g1"}
        check({m.id for m in flt.matches} == want, f"$eq filter in {ns!r}")
    passed("query_cosine")

    # describe_index_stats: eventually consistent
    want_counts = {ns or "__default__": len(recs) for ns, recs in data.items()}
    deadline = time.time() + 30
    while True:
        stats = index.describe_index_stats()
        counts = {ns: s.vector_count for ns, s in stats.namespaces.items()}
        if counts == want_counts:
            break
        check(time.time() < deadline, f"stats never caught up: {counts}")
        time.sleep(0.1)
    check(stats.total_vector_count == total, "stats total")
    check(stats.dimension == DIM, "stats dimension")
    passed("describe_index_stats")

    # namespaces
    listed = index.list_namespaces_paginated(limit=2)
    names = [n.name for n in listed.namespaces]
    check(listed.pagination is not None and listed.pagination.next, "namespaces page 1 has next")
    rest = index.list_namespaces_paginated(limit=2, pagination_token=listed.pagination.next)
    names += [n.name for n in rest.namespaces]
    check(sorted(names) == sorted(want_counts), f"namespaces: {names}")
    counts = {n.name: n.record_count for n in list(listed.namespaces) + list(rest.namespaces)}
    check(counts == want_counts, f"namespace record counts {counts}")
    passed("namespaces")

    # refusals
    # The SDK refuses nested metadata before sending, with the server's own
    # message; send it through the SDK's HTTP layer to hear the server.
    bad = {"id": "nested", "values": [0.5] * DIM, "metadata": {"obj": {"a": 1}}}
    try:
        index.upsert(vectors=[bad], namespace="alpha")
        check(False, "the SDK sent nested metadata")
    except Exception as e:
        msg_client = str(e)
    msg_nested = expect_refused(
        lambda: index._http.post("/vectors/upsert", json={"vectors": [bad], "namespace": "alpha"}),
        "nested metadata",
    )
    check(msg_client in msg_nested, f"server message {msg_nested!r} is the SDK's {msg_client!r}")
    zero = {"id": "zeros", "values": [0.0] * DIM}
    msg_zero = expect_refused(lambda: index.upsert(vectors=[zero], namespace="alpha"), "all-zero vector")
    check(index.fetch(ids=["nested", "zeros"], namespace="alpha").vectors == {}, "refused records not stored")
    passed("refusals")

    summary = {
        "index": NAME,
        "host": desc.host,
        "dimension": DIM,
        "metric": "cosine",
        "namespaces": {
            ns: [
                {
                    "id": vid,
                    "values": list(v.values),
                    "sparseValues": (
                        {"indices": list(v.sparse_values.indices), "values": list(v.sparse_values.values)}
                        if v.sparse_values is not None
                        else None
                    ),
                    "metadata": plain(v.metadata),
                }
                for vid, v in sorted(got.items(), key=lambda kv: kv[0].encode())
            ]
            for ns, got in fetched.items()
        },
        "refusals": {"nested_metadata": msg_nested, "all_zero": msg_zero},
        "checks": CHECKS,
    }
    text = json.dumps(summary)
    if SUMMARY:
        with open(SUMMARY, "w", encoding="utf-8") as f:
            f.write(text)
    print(json.dumps({"index": NAME, "host": desc.host, "checks": CHECKS}))


if __name__ == "__main__":
    main()
