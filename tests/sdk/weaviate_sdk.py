"""The official weaviate-client (3.26.7) against a Weaviate emulator.

Run by tests/integration/weaviate_emulator.rs. Environment:
  WEAVIATE_URL          base URL (required), e.g. http://127.0.0.1:8080
  WEAVIATE_API_KEY      API key (optional; sent as Authorization: Bearer)
  WEAVIATE_SDK_SUMMARY  file to write the JSON summary to

Creates three classes and fills them through `client.batch`:
  Article   properties of every kind (text, int, number, boolean, date,
            text[], object with nested properties, uuid), one vector per
            object, cosine;
  Multi     two named vectors (`text`: dot, `image`: l2-squared);
  Tenanted  multi-tenant, tenants `alpha` and `beta`, l2-squared.
Then reads everything back with the cursor (`data_object.get(after=…)`),
counts with `query.aggregate(...).with_meta_count()`, searches with
`query.get(...).with_near_vector(...)`, reads the schema, and provokes
refusals (bad class name, reserved property name) and per-object batch
errors (wrong property type, wrong vector dimension, missing tenant). A
failed expectation exits 1 with a message on stderr.

weaviate-client 3.x predates named vectors: the `Multi` class is created
with the client's own connection (`client._connection.post`, as
`schema.create_class` drops `vectorConfig`), its objects get their
`vectors` added to the client's batch items, and its nearVector query goes
through `client.query.raw`. Everything else uses the public API.
"""

import json
import os
import random
import struct
import sys
import uuid as uuidlib

import weaviate
from weaviate import Tenant
from weaviate.exceptions import UnexpectedStatusCodeException
from weaviate.util import generate_uuid5

URL = os.environ["WEAVIATE_URL"].rstrip("/")
API_KEY = os.environ.get("WEAVIATE_API_KEY") or None
SUMMARY = os.environ.get("WEAVIATE_SDK_SUMMARY")

DIM = 8
PAGE = 17
ARTICLES = 95
MULTI = 40
PER_TENANT = {"alpha": 33, "beta": 21}
CHECKS = []


def check(cond, what):
    if not cond:
        print(f"weaviate_sdk.py: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def passed(name):
    CHECKS.append(name)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def as_f32(xs):
    return [f32(x) for x in xs]


def vec(rng, dim=DIM):
    return [f32(rng.uniform(-1.0, 1.0)) for _ in range(dim)]


def expect_refused(fn, status, fragment, what):
    try:
        fn()
    except UnexpectedStatusCodeException as e:
        check(e.status_code == status, f"{what}: expected {status}, got {e.status_code}: {e}")
        check(fragment in str(e), f"{what}: {fragment!r} not in {e}")
        return str(e)
    check(False, f"{what}: the server accepted it")


RESULTS = []


def collect(results):
    """Batch callback: keeps every per-object result the server sent."""
    if results:
        RESULTS.extend(results)


def read_all(client, class_name, tenant=None):
    """Every object of a class (tenant) through the cursor API."""
    out, pages, after = [], 0, None
    while True:
        res = client.data_object.get(
            class_name=class_name, after=after, limit=PAGE, with_vector=True, tenant=tenant
        )
        objs = res["objects"] or []
        pages += 1
        out.extend(objs)
        if len(objs) < PAGE:
            return out, pages
        after = objs[-1]["id"]


def uuid_key(u):
    return uuidlib.UUID(u).bytes


def main():
    rng = random.Random(20391)
    auth = weaviate.auth.AuthApiKey(API_KEY) if API_KEY else None
    client = weaviate.Client(URL, auth_client_secret=auth, startup_period=5)
    check(client.is_ready(), "is_ready")
    meta = client.get_meta()
    check(meta["version"] == "1.39.0", f"meta version {meta}")
    passed("ready+meta")

    client.schema.delete_all()

    # --- schema -----------------------------------------------------------
    client.schema.create_class(
        {
            "class": "Article",
            "description": "news articles",
            "vectorizer": "none",
            "vectorIndexConfig": {"distance": "cosine", "efConstruction": 64},
            "properties": [
                {"name": "title", "dataType": ["text"]},
                {"name": "wordCount", "dataType": ["int"]},
                {"name": "score", "dataType": ["number"]},
                {"name": "published", "dataType": ["boolean"]},
                {"name": "publishedAt", "dataType": ["date"]},
                {"name": "tags", "dataType": ["text[]"], "tokenization": "field"},
                {
                    "name": "meta",
                    "dataType": ["object"],
                    "nestedProperties": [
                        {"name": "source", "dataType": ["text"]},
                        {"name": "pages", "dataType": ["int"]},
                    ],
                },
                {"name": "ref", "dataType": ["uuid"]},
            ],
        }
    )
    response = client._connection.post(
        path="/schema",
        weaviate_object={
            "class": "Multi",
            "properties": [{"name": "label", "dataType": ["text"]}],
            "vectorConfig": {
                "text": {
                    "vectorizer": {"none": {}},
                    "vectorIndexType": "hnsw",
                    "vectorIndexConfig": {"distance": "dot"},
                },
                "image": {
                    "vectorizer": {"none": {}},
                    "vectorIndexType": "hnsw",
                    "vectorIndexConfig": {"distance": "l2-squared"},
                },
            },
        },
    )
    check(response.status_code == 200, f"create Multi: {response.status_code} {response.text}")
    client.schema.create_class(
        {
            "class": "Tenanted",
            "vectorizer": "none",
            "vectorIndexConfig": {"distance": "l2-squared"},
            "multiTenancyConfig": {"enabled": True},
            "properties": [{"name": "body", "dataType": ["text"]}],
        }
    )
    client.schema.add_class_tenants("Tenanted", [Tenant(name="alpha"), Tenant(name="beta")])
    tenants = sorted(t.name for t in client.schema.get_class_tenants("Tenanted"))
    check(tenants == ["alpha", "beta"], f"tenants {tenants}")
    passed("schema created")

    refusals = {
        "class_name": expect_refused(
            lambda: client.schema.create_class({"class": "Bad-Name", "vectorizer": "none"}),
            422,
            "is not a valid class name",
            "invalid class name",
        ),
        "reserved_property": expect_refused(
            lambda: client.schema.create_class(
                {"class": "Reserved", "properties": [{"name": "id", "dataType": ["text"]}]}
            ),
            422,
            "is a reserved property name",
            "reserved property name",
        ),
        "duplicate_class": expect_refused(
            lambda: client.schema.create_class({"class": "Article", "vectorizer": "none"}),
            422,
            "already exists",
            "duplicate class",
        ),
    }
    passed("refusals")

    # --- batch import ------------------------------------------------------
    sent = {"Article": {}, "Multi": {}, "Tenanted/alpha": {}, "Tenanted/beta": {}}
    client.batch.configure(batch_size=25, dynamic=False, callback=collect)
    with client.batch as batch:
        for i in range(ARTICLES):
            props = {
                "title": f"Article {i}: ü → {i * 7}",
                "wordCount": 100 + i,
                "score": i / 8.0,
                "published": i % 2 == 0,
                "publishedAt": f"2024-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00Z",
                "tags": [f"t{i % 3}", "all"],
                "meta": {"source": f"src-{i % 4}", "pages": i % 12},
                "ref": generate_uuid5(f"ref-{i}"),
            }
            if i % 10 == 9:
                props["score"] = None  # null values are dropped
            uid = generate_uuid5(f"article-{i}")
            v = vec(rng)
            batch.add_data_object(props, "Article", uuid=uid, vector=v)
            sent["Article"][uid] = {"properties": props, "vector": v}
        for tenant, n in PER_TENANT.items():
            for i in range(n):
                uid = generate_uuid5(f"{tenant}-{i}")
                v = vec(rng)
                batch.add_data_object(
                    {"body": f"{tenant} body {i}"}, "Tenanted", uuid=uid, vector=v, tenant=tenant
                )
                sent[f"Tenanted/{tenant}"][uid] = {
                    "properties": {"body": f"{tenant} body {i}"},
                    "vector": v,
                }
    # Named vectors: added to the batch items before a flush can take them,
    # so this batch is flushed by hand (on leaving the block).
    client.batch.configure(batch_size=None, dynamic=False, callback=collect)
    with client.batch as batch:
        for i in range(MULTI):
            uid = generate_uuid5(f"multi-{i}")
            vs = {"text": vec(rng), "image": vec(rng, 4)}
            batch.add_data_object({"label": f"multi {i}"}, "Multi", uuid=uid)
            batch._objects_batch._items[-1]["vectors"] = vs
            sent["Multi"][uid] = {"properties": {"label": f"multi {i}"}, "vectors": vs}
    failed = [r for r in RESULTS if r.get("result", {}).get("errors")]
    check(not failed, f"unexpected batch errors: {failed[:3]}")
    check(len(RESULTS) == len(sent["Article"]) + MULTI + sum(PER_TENANT.values()), "result count")
    passed("batch import")

    # Bad objects, after the indexes know their dimensions.
    RESULTS.clear()
    client.batch.configure(batch_size=25, dynamic=False, callback=collect)
    bad = {
        "wrong_type": generate_uuid5("bad-type"),
        "wrong_dimension": generate_uuid5("bad-dim"),
        "missing_tenant": generate_uuid5("bad-tenant"),
        "unknown_tenant": generate_uuid5("bad-tenant-2"),
    }
    with client.batch as batch:
        batch.add_data_object(
            {"title": "bad", "wordCount": "many"}, "Article", uuid=bad["wrong_type"], vector=vec(rng)
        )
        batch.add_data_object(
            {"title": "short"}, "Article", uuid=bad["wrong_dimension"], vector=vec(rng, 3)
        )
        batch.add_data_object({"body": "x"}, "Tenanted", uuid=bad["missing_tenant"], vector=vec(rng))
        batch.add_data_object(
            {"body": "x"}, "Tenanted", uuid=bad["unknown_tenant"], vector=vec(rng), tenant="gamma"
        )
        # An unknown property: auto-schema adds it (as number).
        batch.add_data_object(
            {"title": "auto", "rating": 4.5},
            "Article",
            uuid=generate_uuid5("auto-prop"),
            vector=vec(rng),
        )
    batch_errors = {}
    by_id = {r["id"]: r for r in RESULTS}
    for what, uid in bad.items():
        r = by_id.get(uid)
        check(r is not None, f"no batch result for {what}")
        errs = (r.get("result") or {}).get("errors", {}).get("error", [])
        check(len(errs) == 1, f"{what}: expected one error, got {r.get('result')}")
        batch_errors[what] = errs[0]["message"]
    auto = by_id.get(generate_uuid5("auto-prop"))
    check(auto and not (auto.get("result") or {}).get("errors"), f"auto-schema object: {auto}")
    passed("batch errors")

    # --- read back ------------------------------------------------------------
    objects, pages = {}, {}
    for key in sent:
        class_name, _, tenant = key.partition("/")
        objs, n = read_all(client, class_name, tenant or None)
        objects[key], pages[key] = objs, n
        ids = [o["id"] for o in objs]
        check(ids == sorted(ids, key=uuid_key), f"{key}: cursor order is not UUID order")
        check(len(set(ids)) == len(ids), f"{key}: duplicates across pages")
        expected = set(sent[key])
        if key == "Article":
            expected.add(generate_uuid5("auto-prop"))
        check(set(ids) == expected, f"{key}: read {len(ids)} ids, wrote {len(expected)}")
        for o in objs:
            check(o["class"] == class_name, f"{key}: class {o['class']}")
            if tenant:
                check(o.get("tenant") == tenant, f"{key}: tenant {o.get('tenant')}")
            s = sent[key].get(o["id"])
            if s is None:
                continue
            # Weaviate writes float32s in their shortest float32 form.
            if "vector" in s:
                check(as_f32(o["vector"]) == s["vector"], f"{key}: vector of {o['id']}")
            if "vectors" in s:
                got = {k: as_f32(v) for k, v in o["vectors"].items()}
                check(got == s["vectors"], f"{key}: vectors of {o['id']}")
            want = {k: v for k, v in s["properties"].items() if v is not None}
            check(o["properties"] == want, f"{key}: properties of {o['id']}: {o['properties']} != {want}")
    passed("cursor read-back")

    # --- counts ---------------------------------------------------------------
    counts = {}
    for key in sent:
        class_name, _, tenant = key.partition("/")
        q = client.query.aggregate(class_name).with_meta_count()
        if tenant:
            q = q.with_tenant(tenant)
        res = q.do()
        check("errors" not in res, f"aggregate {key}: {res}")
        counts[key] = res["data"]["Aggregate"][class_name][0]["meta"]["count"]
        check(counts[key] == len(objects[key]), f"count {key}: {counts[key]}")
    passed("aggregate counts")

    # --- nearVector -----------------------------------------------------------
    near = {}
    q = vec(rng)
    res = (
        client.query.get("Article", ["title", "wordCount"])
        .with_near_vector({"vector": q})
        .with_limit(7)
        .with_additional(["id", "distance"])
        .do()
    )
    check("errors" not in res, f"nearVector Article: {res}")
    near["Article"] = {"query": q, "hits": res["data"]["Get"]["Article"]}
    q = vec(rng)
    res = (
        client.query.get("Tenanted", ["body"])
        .with_near_vector({"vector": q})
        .with_tenant("alpha")
        .with_limit(5)
        .with_additional(["id", "distance"])
        .do()
    )
    check("errors" not in res, f"nearVector Tenanted: {res}")
    near["Tenanted/alpha"] = {"query": q, "hits": res["data"]["Get"]["Tenanted"]}
    for target, dim in (("text", DIM), ("image", 4)):
        q = vec(rng, dim)
        res = client.query.raw(
            "{ Get { Multi(nearVector: {vector: %s, targetVectors: [\"%s\"]}, limit: 6) "
            "{ label _additional { id distance } } } }" % (json.dumps(q), target)
        )
        check("errors" not in res, f"nearVector Multi/{target}: {res}")
        near[f"Multi/{target}"] = {"query": q, "hits": res["data"]["Get"]["Multi"]}
    res = client.query.get("Tenanted", ["body"]).with_near_vector({"vector": q}).do()
    check("errors" in res, f"Get without tenant on a multi-tenant class: {res}")
    gql_tenant_error = res["errors"][0]["message"]
    passed("nearVector")

    schema = client.schema.get()
    article = client.schema.get("Article")
    check(
        any(p["name"] == "rating" and p["dataType"] == ["number"] for p in article["properties"]),
        "auto-schema added rating as number",
    )
    passed("schema read")

    summary = {
        "schema": schema,
        "objects": objects,
        "pages": pages,
        "counts": counts,
        "near": near,
        "batch_errors": batch_errors,
        "bad_ids": bad,
        "gql_tenant_error": gql_tenant_error,
        "refusals": refusals,
        "checks": CHECKS,
    }
    text = json.dumps(summary, ensure_ascii=False)
    if SUMMARY:
        with open(SUMMARY, "w", encoding="utf-8") as f:
            f.write(text)
    print(f"weaviate_sdk.py: {len(CHECKS)} checks passed", file=sys.stderr)


if __name__ == "__main__":
    main()
