"""The official pinecone SDK (10.2.0) and a Pinecone document index (API 2026-07).

Run by tests/integration/pinecone_documents.rs. Environment:
  PINECONE_URL          control-plane base URL (required), e.g. http://127.0.0.1:5080
  PINECONE_API_KEY      API key (default "k")
  PINECONE_SDK_INDEX    the index (default "sdk-documents")
  PINECONE_SDK_MODE     "seed" (default) or "read"
  PINECONE_SDK_SUMMARY  file to write the JSON summary to

seed: creates a document index with pc.indexes.create(schema=...) (a
dense_vector field, a full-text string field with stemming, a full-text
string field with n-grams), writes 10,200 documents into two namespaces with
index.documents.batch_upsert (metadata of every type: string, integer,
float, boolean, list of strings), waits until list shows them all (upserts
are applied asynchronously), and checks fetch, search (dense and text),
the refusals of the Documents API rules and of the Vectors API on a
document index.

read: reads the index back through the SDK only: describe's schema and,
per namespace, every document listed and fetched.

Both write the same summary: index, schema (describe's, as a dict),
namespaces (namespace -> documents in id order, every field), checks.
A failed expectation exits 1 with a message on stderr.
"""

import json
import os
import random
import struct
import sys
import time

from pinecone import DenseVectorQuery, Pinecone, TextQuery

URL = os.environ["PINECONE_URL"].rstrip("/")
API_KEY = os.environ.get("PINECONE_API_KEY") or "k"
NAME = os.environ.get("PINECONE_SDK_INDEX", "sdk-documents")
MODE = os.environ.get("PINECONE_SDK_MODE", "seed")
SUMMARY = os.environ.get("PINECONE_SDK_SUMMARY")

DIM = 8
NAMESPACES = {"__default__": 5200, "tenant-b": 5000}
SCHEMA = {
    "fields": {
        "embedding": {"type": "dense_vector", "dimension": DIM, "metric": "cosine"},
        "body": {
            "type": "string",
            "full_text_search": {"language": "en", "stemming": True, "stop_words": True},
        },
        "title": {
            "type": "string",
            "full_text_search": {"ngram": {"min_gram": 2, "max_gram": 3}},
        },
    }
}
CHECKS = []


def check(cond, what):
    if not cond:
        print(f"pinecone_documents_sdk.py: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def passed(name):
    CHECKS.append(name)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def status_of(e):
    return getattr(e, "status_code", None) or getattr(e, "status", None)


def expect_refused(fn, what, statuses=(400,)):
    try:
        fn()
    except Exception as e:
        check(status_of(e) in statuses, f"{what}: expected {statuses}, got {status_of(e)}: {e}")
        return str(e)
    check(False, f"{what}: the server accepted it")


def make_documents(rng):
    data = {}
    words = ["vector", "search", "running", "database", "pinecone", "kernel", "river", "stone"]
    for ns, n in NAMESPACES.items():
        docs = []
        for i in range(n):
            doc = {
                "_id": f"{ns}-{i:05d}" if i % 9 else f"doc#{i}/chunk:{ns}",
                "embedding": [f32(rng.uniform(-1.0, 1.0)) for _ in range(DIM)],
                "body": " ".join(rng.choice(words) for _ in range(6)) + f" item{i}",
            }
            if i % 3:
                doc["title"] = f"Title {i} of {ns}"
            if i % 5 != 4:
                doc["category"] = f"c{i % 4}"
                doc["rank"] = i
                doc["weight"] = i / 8.0
                doc["public"] = i % 2 == 0
                doc["tags"] = [f"t{i % 3}", "all"]
            docs.append(doc)
        data[ns] = docs
    return data


def list_all(index, ns):
    return [d.id for d in index.documents.list(namespace=ns, limit=100)]


def read_all(index, ns):
    ids = list_all(index, ns)
    out = []
    for start in range(0, len(ids), 1000):
        resp = index.documents.fetch(namespace=ns, ids=ids[start : start + 1000])
        for i in ids[start : start + 1000]:
            check(i in resp.documents, f"fetch of {ns!r}/{i}")
            out.append(resp.documents[i].to_dict())
    out.sort(key=lambda d: d["_id"].encode())
    return out


def summary(pc, index):
    desc = pc.indexes.describe(NAME)
    namespaces = {}
    names = [n.name for page in index.list_namespaces() for n in page.namespaces]
    for ns in sorted(names):
        namespaces[ns] = read_all(index, ns)
    return {
        "index": NAME,
        "host": desc.host,
        "schema": desc.schema.to_dict(),
        "namespaces": namespaces,
        "checks": CHECKS,
    }


def seed(pc):
    rng = random.Random(2026)
    if NAME in [i.name for i in pc.indexes.list()]:
        pc.indexes.delete(NAME)
    model = pc.indexes.create(
        name=NAME,
        schema=SCHEMA,
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        tags={"team": "search"},
    )
    check(model.status.ready, "create waits until ready")
    desc = pc.indexes.describe(NAME)
    fields = desc.schema.to_dict()["fields"]
    check(fields["embedding"]["dimension"] == DIM, f"schema dense: {fields['embedding']}")
    check(fields["embedding"]["metric"] == "cosine", "schema metric")
    fts = fields["body"]["full_text_search"]
    check(fts["language"] == "en" and fts["stemming"] and fts["stop_words"], f"fts {fts}")
    check(fields["title"]["full_text_search"]["ngram"]["min_gram"] == 2, "ngram kept")
    passed("create_with_schema")

    expect_refused(
        lambda: pc.indexes.create(
            name="bad-schema",
            schema={"fields": {"year": {"type": "float"}}},
            timeout=-1,
        ),
        "a response-only type on create",
        (400, 422),
    )
    passed("schema_rules")

    index = pc.index(host=desc.host)
    data = make_documents(rng)
    for ns, docs in data.items():
        result = index.documents.batch_upsert(
            namespace=ns, documents=docs, batch_size=500, show_progress=False
        )
        check(result.failed_item_count == 0, f"batch_upsert into {ns!r}: {result.errors}")
    passed("batch_upsert")

    # Upserts are applied asynchronously: wait until list shows everything.
    deadline = time.time() + 60
    for ns, docs in data.items():
        while len(list_all(index, ns)) < len(docs):
            check(time.time() < deadline, f"documents of {ns!r} never became visible")
            time.sleep(0.1)
        want = sorted((d["_id"] for d in docs), key=lambda s: s.encode())
        check(list_all(index, ns) == want, f"list of {ns!r}: sorted and complete")
    passed("list_after_visible")

    sample = data["tenant-b"][17]
    got = index.documents.fetch(namespace="tenant-b", ids=[sample["_id"], "missing"])
    check(list(got.documents) == [sample["_id"]], "fetch omits missing ids")
    doc = got.documents[sample["_id"]]
    check([f32(x) for x in doc.embedding] == sample["embedding"], "dense values f32 exact")
    check(doc.rank == sample["rank"] and doc.tags == sample["tags"], "metadata back")
    only = index.documents.fetch(namespace="tenant-b", ids=[sample["_id"]], include_fields=["body"])
    check(set(only.documents[sample["_id"]].to_dict()) == {"_id", "body"}, "include_fields")
    passed("fetch")

    hits = index.documents.search(
        namespace="tenant-b",
        top_k=3,
        score_by=[DenseVectorQuery(field="embedding", values=sample["embedding"])],
    )
    check(hits.matches[0].id == sample["_id"], "dense search finds the document itself")
    text = index.documents.search(
        namespace="tenant-b",
        top_k=5,
        score_by=[TextQuery(query=f"item{sample['_id'][-3:].lstrip('0') or '0'}", fields=["body"])],
        include_fields=["body"],
    )
    check(all("body" in m.to_dict() for m in text.matches), "text search returns fields")
    passed("search")

    first = data["__default__"][1]
    bad = dict(first, _id="x", _secret=1)
    expect_refused(lambda: index.documents.upsert(namespace="__default__", documents=[bad]), "_ field")
    nested = dict(first, _id="y", nested={"a": 1})
    expect_refused(lambda: index.documents.upsert(namespace="__default__", documents=[nested]), "nested metadata")
    missing = {k: v for k, v in first.items() if k != "embedding"}
    missing["_id"] = "z"
    expect_refused(lambda: index.documents.upsert(namespace="__default__", documents=[missing]), "dense field required")
    wrong = dict(first, _id="w", embedding=[0.5] * (DIM + 1))
    # One invalid document fails the whole request: neither is stored.
    ok = dict(first, _id="v")
    expect_refused(lambda: index.documents.upsert(namespace="__default__", documents=[ok, wrong]), "dimension")
    time.sleep(0.05)
    check("v" not in index.documents.fetch(namespace="__default__", ids=["v"]).documents, "all or nothing")
    expect_refused(lambda: index.upsert(vectors=[{"id": "a", "values": [0.1] * DIM}]), "vectors API on a document index")
    passed("refusals")
    return index


def main():
    pc = Pinecone(api_key=API_KEY, host=URL)
    if MODE == "seed":
        index = seed(pc)
    else:
        desc = pc.indexes.describe(NAME)
        index = pc.index(host=desc.host)
        passed("read")
    out = summary(pc, index)
    text = json.dumps(out)
    if SUMMARY:
        with open(SUMMARY, "w", encoding="utf-8") as f:
            f.write(text)
    print(json.dumps({"index": NAME, "checks": CHECKS}))


if __name__ == "__main__":
    main()
