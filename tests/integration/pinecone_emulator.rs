//! The Pinecone emulator's rules, checked with plain HTTP against an
//! in-process emulator, and its faithfulness proof: the official Python SDK
//! (`tests/sdk/pinecone_sdk.py`, pinecone 10.2.0) run against it.
//!
//! [`run_pinecone_sdk_scenario`] is public so that connector tests can seed
//! an emulator through the official SDK and compare an export with what the
//! SDK wrote.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::emulators::Faults;
use crate::emulators::pinecone::{self, PineconeEmulator, PineconeOptions};
use crate::support::http::{self, Answer};

/// Runs `tests/sdk/pinecone_sdk.py` (the official pinecone SDK 10.2.0)
/// against the server at `base_url` (control plane; the data plane is the
/// `host` the server gives the index) and returns its JSON summary: `index`,
/// `host`, `dimension`, `metric`, `namespaces` (namespace → the records as
/// the server returned them from fetch, in id order: `id`, `values`,
/// `sparseValues` or null, `metadata` or null), `refusals` and `checks`. The
/// index (`sdk-scenario`, dense, 8 dimensions, cosine, namespaces `""`,
/// `alpha`, `beta-ns`; 315 records) is left in place for an export.
///
/// `None` (skipped) when the interpreter cannot import `pinecone`, except
/// under CI (`CI=true`), where that is a failure. Panics when the scenario
/// fails.
pub async fn run_pinecone_sdk_scenario(base_url: &str) -> Option<Value> {
    run_pinecone_sdk_scenario_with_key(base_url, "k").await
}

/// [`run_pinecone_sdk_scenario`] with a given API key.
pub async fn run_pinecone_sdk_scenario_with_key(base_url: &str, api_key: &str) -> Option<Value> {
    crate::support::sdk::run_scenario(crate::support::sdk::Scenario {
        script: "pinecone_sdk.py",
        imports: "pinecone",
        package: "pinecone==10.2.0",
        env: vec![
            ("PINECONE_URL", base_url.to_owned()),
            ("PINECONE_API_KEY", api_key.to_owned()),
        ],
        summary_env: "PINECONE_SDK_SUMMARY",
    })
    .await
}

async fn start() -> PineconeEmulator {
    pinecone::start(PineconeOptions {
        stats_lag_reads: 0,
        ..Default::default()
    })
    .await
    .expect("start the Pinecone emulator")
}

/// Pinecone's data-plane errors on an answer.
trait DataError {
    /// The message of a data-plane error, checking Pinecone's shape.
    fn data_error(&self, status: StatusCode, code: u64) -> String;

    /// An invalid-argument (400, code 3) data-plane error.
    fn invalid(&self) -> String {
        self.data_error(StatusCode::BAD_REQUEST, 3)
    }
}

impl DataError for Answer {
    fn data_error(&self, status: StatusCode, code: u64) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["code", "message", "details"], "{}", self.text);
        assert_eq!(body["code"], code, "{}", self.text);
        assert_eq!(body["details"], json!([]), "{}", self.text);
        body["message"].as_str().expect("message").to_owned()
    }
}

/// A raw client aimed at one index's host (and the control plane).
struct Raw {
    base: String,
    host: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Raw {
    fn new(emulator: &PineconeEmulator, index: &str) -> Raw {
        Raw {
            base: emulator.base_url().to_owned(),
            host: emulator.index_host(index),
            key: None,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: Method, url: String, body: Option<String>) -> Answer {
        let mut request = self
            .http
            .request(method, url)
            .header("X-Pinecone-Api-Version", "2026-07");
        if let Some(key) = &self.key {
            request = request.header("Api-Key", key);
        }
        http::send(request, body).await
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(
            method,
            format!("{}{path}", self.base),
            body.map(|b| b.to_string()),
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, format!("{}{path}", self.host), None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_text(path, body.to_string()).await
    }

    async fn post_text(&self, path: &str, body: String) -> Answer {
        self.send(Method::POST, format!("{}{path}", self.host), Some(body))
            .await
    }

    async fn create(&self, name: &str, body: Value) -> Answer {
        let mut body = body;
        body["name"] = json!(name);
        self.control(Method::POST, "/indexes", Some(body)).await
    }

    async fn create_dense(&self, name: &str, dimension: u64, metric: &str) {
        let a = self
            .create(
                name,
                json!({"dimension": dimension, "metric": metric,
                    "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }

    async fn upsert(&self, namespace: &str, vectors: Vec<Value>) -> Answer {
        self.post(
            "/vectors/upsert",
            json!({"vectors": vectors, "namespace": namespace}),
        )
        .await
    }
}

fn vector(id: &str, values: &[f32]) -> Value {
    json!({"id": id, "values": values})
}

#[tokio::test]
async fn pinecone_sdk_scenario_passes_against_the_emulator() {
    let emulator = pinecone::start(PineconeOptions {
        api_key: Some("k".into()),
        ..Default::default()
    })
    .await
    .expect("start");
    let Some(summary) = run_pinecone_sdk_scenario(emulator.base_url()).await else {
        return;
    };
    assert_eq!(summary["index"], "sdk-scenario");
    assert_eq!(summary["host"], emulator.index_host("sdk-scenario"));
    let namespaces = summary["namespaces"].as_object().expect("namespaces");
    let total: usize = namespaces
        .values()
        .map(|r| r.as_array().expect("records").len())
        .sum();
    assert!(total >= 300, "{total}");
    for ns in ["", "alpha", "beta-ns"] {
        let records = namespaces[ns].as_array().expect("records");
        assert_eq!(
            emulator.state().record_count("sdk-scenario", ns),
            Some(records.len())
        );
        let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        assert!(records.iter().any(|r| r["sparseValues"].is_object()));
        assert!(records.iter().any(|r| r["metadata"].is_object()));
    }
    let checks = summary["checks"].as_array().expect("checks");
    assert!(checks.contains(&json!("refusals")), "{checks:?}");
}

#[tokio::test]
async fn control_plane_shapes_and_errors() {
    let emulator = start().await;
    let raw = Raw::new(&emulator, "docs");
    let created = raw
        .create(
            "docs",
            json!({"dimension": 4, "metric": "euclidean", "deletion_protection": "enabled",
                "tags": {"team": "search"},
                "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let model = created.json();
    assert_eq!(
        model["status"],
        json!({"ready": false, "state": "Initializing"})
    );
    let described = raw.control(Method::GET, "/indexes/docs", None).await.ok();
    assert_eq!(
        described["status"],
        json!({"ready": true, "state": "Ready"})
    );
    for (key, want) in [
        ("name", json!("docs")),
        ("dimension", json!(4)),
        ("metric", json!("euclidean")),
        ("vector_type", json!("dense")),
        ("deletion_protection", json!("enabled")),
        ("tags", json!({"team": "search"})),
        ("host", json!(emulator.index_host("docs"))),
        (
            "spec",
            json!({"serverless": {"cloud": "aws", "region": "us-east-1"}}),
        ),
        (
            "schema",
            json!({"fields": {"_values": {"type": "dense_vector", "dimension": 4, "metric": "euclidean"}}}),
        ),
        (
            "deployment",
            json!({"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}),
        ),
    ] {
        assert_eq!(described[key], want, "{key}: {described}");
    }
    let listed = raw.control(Method::GET, "/indexes", None).await.ok();
    assert_eq!(listed["indexes"].as_array().unwrap().len(), 1);

    // 409, 404, 403, bad names and shapes
    let again = raw
        .create(
            "docs",
            json!({"dimension": 4, "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["error"]["code"], "ALREADY_EXISTS");
    let missing = raw.control(Method::GET, "/indexes/nope", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        json!({"error": {"code": "NOT_FOUND", "message": "Resource nope not found"}, "status": 404})
    );
    let protected = raw.control(Method::DELETE, "/indexes/docs", None).await;
    assert_eq!(
        protected.status,
        StatusCode::FORBIDDEN,
        "{}",
        protected.text
    );
    let spec = json!({"serverless": {"cloud": "aws", "region": "us-east-1"}});
    for (name, body) in [
        ("Upper", json!({"dimension": 4, "spec": spec})),
        (&"x".repeat(46), json!({"dimension": 4, "spec": spec})),
        ("under_score", json!({"dimension": 4, "spec": spec})),
        ("zero-dim", json!({"dimension": 0, "spec": spec})),
        ("huge-dim", json!({"dimension": 20_001, "spec": spec})),
        ("no-dim", json!({"spec": spec})),
        (
            "bad-metric",
            json!({"dimension": 4, "metric": "manhattan", "spec": spec}),
        ),
        (
            "sparse-cos",
            json!({"vector_type": "sparse", "metric": "cosine", "spec": spec}),
        ),
        (
            "sparse-dim",
            json!({"vector_type": "sparse", "metric": "dotproduct", "dimension": 4, "spec": spec}),
        ),
        ("no-spec", json!({"dimension": 4})),
    ] {
        let a = raw.create(name, body).await;
        assert!(a.status.is_client_error(), "{name}: {}", a.text);
        assert_eq!(a.json()["status"], a.status.as_u16(), "{name}");
        assert!(a.json()["error"]["message"].is_string(), "{name}");
    }
    // sparse and pod indexes, and the 2026-07 create body
    let sparse = raw
        .create(
            "sparse-idx",
            json!({"vector_type": "sparse", "metric": "dotproduct", "spec": spec}),
        )
        .await;
    assert_eq!(sparse.status, StatusCode::CREATED, "{}", sparse.text);
    assert!(sparse.json().get("dimension").is_none());
    assert_eq!(sparse.json()["vector_type"], "sparse");
    let pod = raw
        .create(
            "pod-idx",
            json!({"dimension": 3, "metric": "dotproduct", "spec": {"pod": {
                "environment": "us-east1-gcp", "pod_type": "p1.x1", "pods": 2, "replicas": 2, "shards": 1}}}),
        )
        .await;
    assert_eq!(pod.status, StatusCode::CREATED, "{}", pod.text);
    assert_eq!(pod.json()["spec"]["pod"]["pods"], 2);
    let new_shape = raw
        .create(
            "new-shape",
            json!({"schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 5, "metric": "dotproduct"}}},
                "deployment": {"deployment_type": "managed", "cloud": "gcp", "region": "us-central1"}}),
        )
        .await;
    assert_eq!(new_shape.status, StatusCode::CREATED, "{}", new_shape.text);
    assert_eq!(new_shape.json()["dimension"], 5);
    assert_eq!(new_shape.json()["metric"], "dotproduct");
    // configure, then delete
    let off = raw
        .control(
            Method::PATCH,
            "/indexes/docs",
            Some(json!({"deletion_protection": "disabled"})),
        )
        .await
        .ok();
    assert_eq!(off["deletion_protection"], "disabled");
    let deleted = raw.control(Method::DELETE, "/indexes/docs", None).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(
        raw.control(Method::DELETE, "/indexes/docs", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn upsert_limits() {
    let emulator = start().await;
    let raw = Raw::new(&emulator, "lim");
    raw.create_dense("lim", 2, "cosine").await;

    let thousand: Vec<Value> = (0..1000)
        .map(|i| vector(&format!("v{i}"), &[1.0, i as f32]))
        .collect();
    assert_eq!(raw.upsert("", thousand).await.ok()["upsertedCount"], 1000);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| vector(&format!("w{i}"), &[1.0, 0.0]))
        .collect();
    let m = raw.upsert("", too_many).await.invalid();
    assert!(m.contains("1001"), "{m}");
    assert_eq!(emulator.state().record_count("lim", ""), Some(1000));

    // 2 MB: a body just over is refused, one just under accepted
    let padding = |n: usize| json!({"pad": "x".repeat(n)});
    let record =
        |id: &str, n: usize| json!({"id": id, "values": [1.0, 2.0], "metadata": padding(n)});
    let big: Vec<Value> = (0..60).map(|i| record(&format!("b{i}"), 36_000)).collect();
    let body = json!({"vectors": big, "namespace": "big"}).to_string();
    assert!(body.len() > 2 * 1024 * 1024, "{}", body.len());
    let m = raw.post_text("/vectors/upsert", body).await.invalid();
    assert!(m.contains("exceeds the maximum supported size"), "{m}");
    let ok: Vec<Value> = (0..55).map(|i| record(&format!("b{i}"), 36_000)).collect();
    let body = json!({"vectors": ok, "namespace": "big"}).to_string();
    assert!(body.len() < 2 * 1024 * 1024);
    assert_eq!(
        raw.post_text("/vectors/upsert", body).await.ok()["upsertedCount"],
        55
    );

    // ids: 1–512 characters (characters, not bytes)
    let long = "é".repeat(512);
    assert_eq!(
        raw.upsert("", vec![vector(&long, &[1.0, 0.0])]).await.ok()["upsertedCount"],
        1
    );
    raw.upsert("", vec![vector(&"a".repeat(513), &[1.0, 0.0])])
        .await
        .invalid();
    raw.upsert("", vec![vector("", &[1.0, 0.0])])
        .await
        .invalid();

    // metadata ≤ 40 KB
    let under = json!({"id": "m1", "values": [1.0, 0.0], "metadata": {"t": "x".repeat(40_000)}});
    raw.upsert("", vec![under]).await.ok();
    let over = json!({"id": "m2", "values": [1.0, 0.0], "metadata": {"t": "x".repeat(41_000)}});
    let m = raw.upsert("", vec![over]).await.invalid();
    assert!(m.contains("40960"), "{m}");

    // dimension, zeros, sparse rules
    let m = raw
        .upsert("", vec![vector("d", &[1.0, 2.0, 3.0])])
        .await
        .invalid();
    assert!(m.contains("dimension 3"), "{m}");
    let m = raw
        .upsert("", vec![vector("z", &[0.0, 0.0])])
        .await
        .invalid();
    assert!(m.contains("at least one non-zero value"), "{m}");
    let sparse = |indices: Vec<u32>, values: Vec<f32>| json!({"id": "s", "values": [1.0, 0.0], "sparseValues": {"indices": indices, "values": values}});
    raw.upsert("", vec![sparse(vec![1, 2], vec![0.5])])
        .await
        .invalid();
    let n = 1001;
    raw.upsert("", vec![sparse((0..n).collect(), vec![0.1; n as usize])])
        .await
        .invalid();
    raw.upsert("", vec![sparse((0..1000).collect(), vec![0.1; 1000])])
        .await
        .ok();
    // a refused batch stores nothing
    let mixed = vec![vector("good", &[1.0, 1.0]), vector("bad", &[0.0, 0.0])];
    raw.upsert("mixed", mixed).await.invalid();
    assert_eq!(emulator.state().record_count("lim", "mixed"), Some(0));
}

#[tokio::test]
async fn metadata_type_rules() {
    let emulator = start().await;
    let raw = Raw::new(&emulator, "meta");
    raw.create_dense("meta", 2, "cosine").await;
    let good = json!({"id": "g", "values": [1.0, 0.0], "metadata": {
        "s": "text", "i": 7, "f": 2.5, "b": true, "l": ["a", "b"], "empty": [], "gone": null}});
    raw.upsert("", vec![good]).await.ok();
    let got = raw.get("/vectors/fetch?ids=g").await.ok();
    assert_eq!(
        got["vectors"]["g"]["metadata"],
        json!({"s": "text", "i": 7, "f": 2.5, "b": true, "l": ["a", "b"], "empty": []}),
        "null values are dropped"
    );
    for (value, rendered) in [
        (json!({"a": 1}), "{\"a\":1.0}"),
        (json!([1, 2]), "[1.0,2.0]"),
        (json!(["a", null]), "[\"a\",null]"),
        (
            json!({"long": "abcdefghijklmnop"}),
            "{\"long\":\"abcdefg...",
        ),
    ] {
        let body = json!({"id": "x", "values": [1.0, 0.0], "metadata": {"field": value}});
        let m = raw.upsert("", vec![body]).await.invalid();
        assert_eq!(
            m,
            format!(
                "Metadata value must be a string, number, boolean or list of strings, got '{rendered}' for field 'field'"
            )
        );
    }
    let not_object = json!({"id": "x", "values": [1.0, 0.0], "metadata": ["a"]});
    raw.upsert("", vec![not_object]).await.invalid();
}

#[tokio::test]
async fn list_is_sorted_bytewise_and_paginated() {
    let emulator = start().await;
    let raw = Raw::new(&emulator, "lst");
    raw.create_dense("lst", 2, "dotproduct").await;
    let mut ids: Vec<String> = (0..250).map(|i| format!("id-{i}")).collect();
    ids.extend(["Z", "a", "é", "_", "id-", "ÿ"].map(String::from));
    let vectors: Vec<Value> = ids.iter().map(|id| vector(id, &[1.0, 2.0])).collect();
    raw.upsert("ns", vectors).await.ok();
    ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/vectors/list?namespace=ns".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&paginationToken={t}"));
        }
        let page = raw.get(&path).await.ok();
        pages += 1;
        assert_eq!(page["namespace"], "ns");
        assert_eq!(page["usage"], json!({"readUnits": 1}));
        let got = page["vectors"].as_array().unwrap();
        assert!(got.len() <= 100);
        seen.extend(got.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        match page.get("pagination") {
            Some(p) => token = Some(p["next"].as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "default limit 100");
    assert_eq!(seen, ids);

    let page = raw
        .get("/vectors/list?namespace=ns&prefix=id-1&limit=5")
        .await
        .ok();
    let got: Vec<&str> = page["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["id-1", "id-10", "id-100", "id-101", "id-102"]);
    assert!(page["pagination"]["next"].is_string());
    // exactly one full page: no pagination
    let page = raw
        .get("/vectors/list?namespace=ns&prefix=id-24&limit=11")
        .await
        .ok();
    assert_eq!(page["vectors"].as_array().unwrap().len(), 11);
    assert!(page.get("pagination").is_none(), "{page}");
    // empty namespace: empty list; bad token and limit: 400
    let empty = raw.get("/vectors/list?namespace=nothing").await.ok();
    assert_eq!(empty["vectors"], json!([]));
    raw.get("/vectors/list?namespace=ns&paginationToken=%25%25")
        .await
        .invalid();
    raw.get("/vectors/list?namespace=ns&limit=0")
        .await
        .invalid();

    // pod indexes have no list
    let pod = raw
        .create(
            "pod",
            json!({"dimension": 2, "spec": {"pod": {"environment": "us-east1-gcp", "pod_type": "p1.x1"}}}),
        )
        .await;
    assert_eq!(pod.status, StatusCode::CREATED);
    let pod_raw = Raw::new(&emulator, "pod");
    pod_raw
        .upsert("", vec![vector("a", &[1.0, 0.0])])
        .await
        .ok();
    pod_raw
        .get("/vectors/list")
        .await
        .data_error(StatusCode::NOT_IMPLEMENTED, 12);
}

#[tokio::test]
async fn fetch_missing_ids_and_limits() {
    let emulator = start().await;
    let raw = Raw::new(&emulator, "f");
    raw.create_dense("f", 3, "cosine").await;
    let v = json!({"id": "a b/c", "values": [0.1, 0.2, 0.3],
        "sparseValues": {"indices": [5, 2], "values": [0.5, 0.25]}, "metadata": {"k": "v"}});
    raw.upsert("ns", vec![v, vector("plain", &[1.0, 2.0, 3.0])])
        .await
        .ok();
    let got = raw
        .get("/vectors/fetch?ids=a%20b%2Fc&ids=missing&ids=plain&namespace=ns")
        .await
        .ok();
    let vectors = got["vectors"].as_object().unwrap();
    assert_eq!(vectors.len(), 2, "{got}");
    assert_eq!(
        vectors["a b/c"],
        json!({"id": "a b/c", "values": [0.1, 0.2, 0.3],
            "sparseValues": {"indices": [5, 2], "values": [0.5, 0.25]}, "metadata": {"k": "v"}})
    );
    assert_eq!(
        vectors["plain"],
        json!({"id": "plain", "values": [1.0, 2.0, 3.0]})
    );
    assert_eq!(got["namespace"], "ns");
    assert_eq!(got["usage"], json!({"readUnits": 1}));
    // another namespace: nothing
    let other = raw.get("/vectors/fetch?ids=plain").await.ok();
    assert_eq!(other["vectors"], json!({}));
    raw.get("/vectors/fetch?namespace=ns").await.invalid();
    let many: String = (0..1001).map(|i| format!("ids={i}&")).collect();
    raw.get(&format!("/vectors/fetch?{many}")).await.invalid();
    // f32 storage: a double comes back as the nearest f32
    raw.upsert("f32", vec![vector("p", &[0.0, 0.0, 1.0])])
        .await
        .ok();
    raw.post(
        "/vectors/upsert",
        json!({"vectors": [{"id": "d", "values": [0.1f64, 1e-46, 3.3333333333333335]}], "namespace": "f32"}),
    )
    .await
    .ok();
    let d = raw.get("/vectors/fetch?ids=d&namespace=f32").await.ok();
    assert_eq!(d["vectors"]["d"]["values"], json!([0.1, 0.0, 3.3333333]));
}

#[tokio::test]
async fn namespaces_and_stats() {
    let emulator = pinecone::start(PineconeOptions::default())
        .await
        .expect("start");
    let raw = Raw::new(&emulator, "ns");
    raw.create_dense("ns", 2, "cosine").await;
    for (ns, n) in [("", 3), ("b", 2), ("a", 1)] {
        let vs: Vec<Value> = (0..n)
            .map(|i| vector(&format!("{i}"), &[1.0, 1.0]))
            .collect();
        raw.upsert(ns, vs).await.ok();
    }
    // stats lag: the first read after a write shows the counts from before it
    let stale = raw.post("/describe_index_stats", json!({})).await.ok();
    assert_eq!(stale["totalVectorCount"], 0, "{stale}");
    let fresh = raw.post("/describe_index_stats", json!({})).await.ok();
    assert_eq!(
        fresh,
        json!({"namespaces": {"__default__": {"vectorCount": 3}, "a": {"vectorCount": 1}, "b": {"vectorCount": 2}},
            "dimension": 2, "indexFullness": 0.0, "totalVectorCount": 6, "metric": "cosine", "vectorType": "dense"})
    );
    emulator.set_stats_lag_reads(0);
    raw.upsert("a", vec![vector("x", &[1.0, 0.0])]).await.ok();
    let now = raw.post("/describe_index_stats", json!({})).await.ok();
    assert_eq!(now["namespaces"]["a"]["vectorCount"], 2);
    raw.post("/describe_index_stats", json!({"filter": {"k": "v"}}))
        .await
        .invalid();

    // namespaces, paginated
    let page = raw.get("/namespaces?limit=2").await.ok();
    assert_eq!(
        page["namespaces"],
        json!([{"name": "__default__", "record_count": 3}, {"name": "a", "record_count": 2}])
    );
    let next = page["pagination"]["next"].as_str().unwrap().to_owned();
    let rest = raw
        .get(&format!("/namespaces?limit=2&paginationToken={next}"))
        .await
        .ok();
    assert_eq!(
        rest["namespaces"],
        json!([{"name": "b", "record_count": 2}])
    );
    assert!(rest.get("pagination").is_none());
    let one = raw.get("/namespaces/__default__").await.ok();
    assert_eq!(one, json!({"name": "__default__", "record_count": 3}));
    raw.get("/namespaces/none")
        .await
        .data_error(StatusCode::NOT_FOUND, 5);

    // delete by id, by filter, all; empty namespaces disappear
    raw.post(
        "/vectors/delete",
        json!({"ids": ["0", "1"], "namespace": "b"}),
    )
    .await
    .ok();
    raw.post(
        "/vectors/delete",
        json!({"deleteAll": true, "namespace": "a"}),
    )
    .await
    .ok();
    raw.post("/vectors/delete", json!({"ids": ["0"]}))
        .await
        .ok();
    let names: Vec<String> = raw.get("/namespaces").await.ok()["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["__default__"]);
    assert_eq!(emulator.state().record_count("ns", ""), Some(2));
    raw.post("/vectors/delete", json!({"ids": ["1"], "deleteAll": true}))
        .await
        .invalid();
}

#[tokio::test]
async fn query_scores_per_metric() {
    let emulator = start().await;
    for metric in ["cosine", "euclidean", "dotproduct"] {
        let raw = Raw::new(&emulator, metric);
        raw.create_dense(metric, 2, metric).await;
        raw.upsert(
            "",
            vec![
                json!({"id": "a", "values": [1.0, 0.0], "metadata": {"c": "red", "n": 1}}),
                json!({"id": "b", "values": [3.0, 4.0], "metadata": {"c": "blue", "n": 2}}),
                json!({"id": "c", "values": [0.0, -2.0], "metadata": {"c": "red", "n": 3}}),
            ],
        )
        .await
        .ok();
        let q = raw
            .post(
                "/query",
                json!({"vector": [1.0, 1.0], "topK": 3, "includeMetadata": true}),
            )
            .await
            .ok();
        let got: Vec<(String, f64)> = q["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["score"].as_f64().unwrap(),
                )
            })
            .collect();
        let s2 = std::f64::consts::FRAC_1_SQRT_2;
        let want: Vec<(&str, f64)> = match metric {
            "cosine" => vec![("b", 7.0 / 5.0 * s2), ("a", s2), ("c", -s2)],
            // squared L2, ascending
            "euclidean" => vec![("a", 1.0), ("b", 13.0), ("c", 10.0)],
            _ => vec![("b", 7.0), ("a", 1.0), ("c", -2.0)],
        };
        let mut want = want;
        if metric == "euclidean" {
            want.sort_by(|x, y| x.1.total_cmp(&y.1));
        }
        assert_eq!(got.len(), 3, "{metric}");
        for ((gid, gs), (wid, ws)) in got.iter().zip(&want) {
            assert_eq!(gid, wid, "{metric}: {q}");
            assert!((gs - ws).abs() < 1e-5, "{metric} {gid}: {gs} vs {ws}");
        }
        assert!(q["matches"][0]["metadata"]["c"].as_str().is_some());
        assert_eq!(q["usage"], json!({"readUnits": 1}));
        let filtered = raw
            .post(
                "/query",
                json!({"vector": [1.0, 1.0], "topK": 3, "filter": {"c": {"$eq": "red"}, "n": {"$gte": 2}}}),
            )
            .await
            .ok();
        let ids: Vec<&str> = filtered["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c"], "{metric}");
        let by_id = raw
            .post(
                "/query",
                json!({"id": "a", "topK": 1, "includeValues": true}),
            )
            .await
            .ok();
        assert_eq!(
            by_id["matches"][0]["id"],
            if metric == "dotproduct" { "b" } else { "a" }
        );
        assert_eq!(by_id["matches"][0]["values"].as_array().unwrap().len(), 2);
        raw.post("/query", json!({"vector": [1.0], "topK": 1}))
            .await
            .invalid();
        raw.post("/query", json!({"vector": [1.0, 1.0]}))
            .await
            .invalid();
    }
    // sparse-dense on dotproduct adds the sparse dot product
    let raw = Raw::new(&emulator, "hybrid");
    raw.create_dense("hybrid", 2, "dotproduct").await;
    raw.upsert(
        "",
        vec![json!({"id": "h", "values": [1.0, 0.0], "sparseValues": {"indices": [7, 9], "values": [2.0, 3.0]}})],
    )
    .await
    .ok();
    let q = raw
        .post(
            "/query",
            json!({"vector": [1.0, 0.0], "sparseVector": {"indices": [9], "values": [0.5]}, "topK": 1}),
        )
        .await
        .ok();
    assert!((q["matches"][0]["score"].as_f64().unwrap() - 2.5).abs() < 1e-6);
}

#[tokio::test]
async fn routing_auth_and_faults() {
    let emulator = pinecone::start(PineconeOptions {
        api_key: Some("secret".into()),
        stats_lag_reads: 0,
        ..Default::default()
    })
    .await
    .expect("start");
    let mut raw = Raw::new(&emulator, "one");
    // no key / wrong key: 401 on both planes
    let a = raw.control(Method::GET, "/indexes", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"]["code"], "UNAUTHENTICATED");
    raw.key = Some("wrong".into());
    raw.get("/vectors/list")
        .await
        .data_error(StatusCode::UNAUTHORIZED, 16);
    raw.key = Some("secret".into());
    let a = raw.control(Method::GET, "/indexes", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["x-pinecone-api-version"], "2026-07");

    // root data plane works while exactly one index exists
    raw.create_dense("one", 2, "cosine").await;
    let root = |path: &str| format!("{}{path}", emulator.base_url());
    let a = raw
        .send(
            Method::POST,
            root("/vectors/upsert"),
            Some(json!({"vectors": [vector("r", &[1.0, 0.0])]}).to_string()),
        )
        .await;
    assert_eq!(a.ok()["upsertedCount"], 1);
    assert_eq!(emulator.state().record_count("one", ""), Some(1));
    raw.create_dense("two", 2, "cosine").await;
    raw.send(Method::GET, root("/vectors/list"), None)
        .await
        .invalid();
    // per-index hosts keep the indexes apart
    let two = Raw {
        key: Some("secret".into()),
        ..Raw::new(&emulator, "two")
    };
    assert_eq!(
        two.get("/vectors/fetch?ids=r").await.ok()["vectors"],
        json!({})
    );
    two.send(Method::GET, root("/__index/missing/vectors/list"), None)
        .await
        .data_error(StatusCode::NOT_FOUND, 5);

    // faults: 429 with Retry-After in Pinecone's data-plane shape
    emulator
        .faults()
        .set(Faults::always_rate_limited(3).at_most(1))
        .unwrap();
    let limited = two.get("/vectors/list").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "3");
    assert_eq!(limited.json()["code"], 8);
    two.get("/vectors/list").await.ok();
    emulator.faults().clear();
    emulator
        .faults()
        .set(Faults::always_unavailable().at_most(1))
        .unwrap();
    let down = two.control(Method::GET, "/indexes", None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.json()["error"]["code"], "UNAVAILABLE");
}

#[test]
fn start_background_serves_without_a_runtime() {
    let emulator = pinecone::start_background(PineconeOptions::default()).expect("start");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let raw = Raw::new(&emulator, "bg");
        raw.create_dense("bg", 2, "cosine").await;
        let d = raw.control(Method::GET, "/indexes/bg", None).await.ok();
        assert_eq!(d["host"], format!("{}/__index/bg", emulator.base_url()));
    });
}

#[tokio::test]
async fn document_indexes_schema_visibility_and_errors() {
    let e = start().await;
    e.set_document_lag_reads(2);
    let raw = Raw::new(&e, "docs");
    // Schema rules on create: 422 with the control-plane shape.
    for (fields, needle) in [
        (
            json!({"_x": {"type": "dense_vector", "dimension": 2}}),
            "reserved",
        ),
        (json!({"year": {"type": "float"}}), "cannot be declared"),
        (
            json!({"t": {"type": "string"}}),
            "full_text_search, embed or sparse_embed",
        ),
        (
            json!({"a": {"type": "dense_vector", "dimension": 2}, "b": {"type": "dense_vector", "dimension": 2}}),
            "at most one dense",
        ),
    ] {
        let a = raw
            .create("bad", json!({"schema": {"fields": fields}}))
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            a.text
        );
    }
    let a = raw
        .create(
            "docs",
            json!({"schema": {"fields": {
                "emb": {"type": "dense_vector", "dimension": 2, "metric": "dotproduct"},
                "body": {"type": "string", "full_text_search": {"stemming": true}},
            }}, "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let model = raw.control(Method::GET, "/indexes/docs", None).await.json();
    assert_eq!(
        model["schema"]["fields"]["body"]["full_text_search"],
        json!({"language": "en", "stemming": true, "stop_words": false, "ngram": null})
    );
    assert!(model.get("dimension").is_none(), "{model}");

    // Upserts answer 202 and show after two document reads.
    let up = raw
        .post(
            "/namespaces/__default__/documents/upsert",
            json!({"documents": [{"_id": "a", "emb": [1.0, 0.5], "body": "running fast", "n": 1}]}),
        )
        .await;
    assert_eq!(up.status, StatusCode::ACCEPTED, "{}", up.text);
    assert_eq!(up.json(), json!({"upserted_count": 1}));
    let list = |_: ()| raw.post("/namespaces/__default__/documents/list", json!({}));
    assert_eq!(list(()).await.json()["documents"], json!([]));
    assert_eq!(list(()).await.json()["documents"], json!([{"_id": "a"}]));
    let fetched = raw
        .post(
            "/namespaces/__default__/documents/fetch",
            json!({"ids": ["a", "b"]}),
        )
        .await
        .json();
    assert_eq!(
        fetched["documents"],
        json!({"a": {"_id": "a", "emb": [1.0, 0.5], "body": "running fast", "n": 1}})
    );
    assert_eq!(fetched["usage"], json!({"read_units": 1}));

    // One bad document fails the whole request, with the 2026-07 error shape.
    let bad = raw
        .post(
            "/namespaces/__default__/documents/upsert",
            json!({"documents": [{"_id": "b", "emb": [1.0, 1.0]}, {"_id": "c", "emb": [1.0, 1.0], "$x": 1}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let body = bad.json();
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{}", bad.text);
    assert_eq!(body["status"], 400);
    for _ in 0..3 {
        list(()).await;
    }
    assert_eq!(e.state().document_count("docs", "__default__"), Some(1));
    // The Vectors API is refused on a document index, and the reverse.
    let v = raw.upsert("", vec![vector("v", &[1.0, 0.0])]).await;
    assert!(v.invalid().contains("is a document index"));
    raw.create_dense("vec", 2, "cosine").await;
    let other = Raw::new(&e, "vec");
    let d = other
        .post("/namespaces/__default__/documents/list", json!({}))
        .await;
    assert_eq!(d.status, StatusCode::BAD_REQUEST);
    assert!(d.text.contains("is a vector index"), "{}", d.text);
}
