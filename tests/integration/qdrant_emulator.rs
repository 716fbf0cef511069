//! The Qdrant emulator's rules, checked with plain HTTP against an
//! in-process emulator, and its faithfulness proof: the official Python
//! client (`tests/sdk/qdrant_sdk.py`) run against it.
//!
//! [`run_sdk_scenario`] is public so that connector tests can seed an
//! emulator through the official client and compare an export with what the
//! client wrote.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::emulators::qdrant::{self, QdrantEmulator, QdrantOptions};
use crate::emulators::{FaultCounts, Faults};
use crate::support::http::{self, Answer};

/// Runs `tests/sdk/qdrant_sdk.py` (the official qdrant-client) against the
/// server at `base_url` and returns its JSON summary: the collection name,
/// the points as the server returned them in scroll order (`id`, `vector`
/// by name — sparse as `{indices, values}` — and `payload`), `scroll_ids`,
/// `points_count`, the config it checked, and the checks that passed. The
/// collection (`sdk_scenario`) is left in place for an export.
///
/// `None` (skipped) when the interpreter cannot import `qdrant_client`,
/// except under CI (`CI=true`), where that is a failure. Panics when the
/// scenario fails.
pub async fn run_sdk_scenario(base_url: &str) -> Option<Value> {
    run_sdk_scenario_with_key(base_url, None).await
}

/// [`run_sdk_scenario`] for a server that wants an API key.
pub async fn run_sdk_scenario_with_key(base_url: &str, api_key: Option<&str>) -> Option<Value> {
    crate::support::sdk::run_scenario(crate::support::sdk::Scenario {
        script: "qdrant_sdk.py",
        imports: "qdrant_client, numpy",
        package: "qdrant-client==1.20.0",
        env: vec![
            ("QDRANT_URL", base_url.to_owned()),
            ("QDRANT_API_KEY", api_key.unwrap_or_default().to_owned()),
        ],
        summary_env: "QDRANT_SDK_SUMMARY",
    })
    .await
}

async fn start() -> QdrantEmulator {
    qdrant::start(QdrantOptions::default())
        .await
        .expect("start the Qdrant emulator")
}

/// A raw HTTP client: status, headers and body as they arrive.
struct Raw {
    base: String,
    http: reqwest::Client,
}

/// Qdrant's envelope around an answer.
trait Envelope {
    /// `result` of a successful answer.
    fn result(&self) -> Value;

    /// The error message of a failed answer, checking Qdrant's error shape.
    fn error(&self, status: StatusCode) -> String;
}

impl Envelope for Answer {
    fn result(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        let body = self.json();
        assert_eq!(body["status"], "ok", "{}", self.text);
        assert!(body["time"].is_f64(), "{}", self.text);
        body["result"].clone()
    }

    fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["status", "time"], "{}", self.text);
        body["status"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no status.error: {}", self.text))
            .to_owned()
    }
}

impl Raw {
    fn new(emulator: &QdrantEmulator) -> Raw {
        Raw {
            base: emulator.base_url().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let request = self.http.request(method, format!("{}{path}", self.base));
        http::send(request, body.map(Value::to_string)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(&body)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&body)).await
    }

    async fn create(&self, name: &str, body: Value) {
        let result = self
            .put(&format!("/collections/{name}"), body)
            .await
            .result();
        assert_eq!(result, json!(true));
    }

    async fn upsert(&self, name: &str, points: Value) -> Answer {
        self.put(
            &format!("/collections/{name}/points?wait=true"),
            json!({ "points": points }),
        )
        .await
    }

    /// Every point, following `next_page_offset`, `limit` at a time.
    async fn scroll_all(&self, name: &str, limit: usize) -> Vec<Value> {
        let mut points = Vec::new();
        let mut offset = Value::Null;
        loop {
            let page = self
                .post(
                    &format!("/collections/{name}/points/scroll"),
                    json!({"limit": limit, "offset": offset, "with_vector": true}),
                )
                .await
                .result();
            let got = page["points"].as_array().expect("points").clone();
            assert!(got.len() <= limit);
            if let Some(first) = got.first()
                && !offset.is_null()
            {
                // The offset is inclusive: the page starts at it.
                assert_eq!(first["id"], offset);
            }
            points.extend(got);
            offset = page["next_page_offset"].clone();
            if offset.is_null() {
                return points;
            }
        }
    }
}

const COLLECTION: &str = "rules";

async fn with_collection() -> (QdrantEmulator, Raw) {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create(
        COLLECTION,
        json!({"vectors": {"size": 2, "distance": "Cosine"}}),
    )
    .await;
    (emulator, raw)
}

#[tokio::test]
async fn qdrant_emulator_service_endpoints_and_envelope() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    let root = raw.get("/").await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.json(),
        json!({"title": "qdrant - vector search engine", "version": "1.19.0", "commit": qdrant::COMMIT})
    );
    assert_eq!(raw.get("/healthz").await.text, "healthz check passed");
    assert_eq!(raw.get("/readyz").await.text, "all shards are ready");
    assert_eq!(
        raw.get("/collections").await.result(),
        json!({"collections": []})
    );
    // Unknown routes: actix's empty 404.
    let unknown = raw.get("/nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.text, "");
}

/// `start_background` serves from its own thread, for callers without a
/// runtime (CLI tests), and stops when dropped.
#[test]
fn qdrant_emulator_runs_without_a_runtime() {
    use std::io::{Read, Write};
    let emulator = qdrant::start_background(QdrantOptions::default()).unwrap();
    let mut stream = std::net::TcpStream::connect(emulator.addr()).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("qdrant - vector search engine"), "{answer}");
    let addr = emulator.addr();
    drop(emulator);
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
}

#[tokio::test]
async fn qdrant_emulator_missing_collection_is_404_with_qdrant_body() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    for answer in [
        raw.get("/collections/missing").await,
        raw.post("/collections/missing/points/scroll", json!({}))
            .await,
        raw.post("/collections/missing/points/count", json!({"exact": true}))
            .await,
        raw.upsert("missing", json!([{"id": 1, "vector": [1.0, 2.0]}]))
            .await,
    ] {
        assert_eq!(
            answer.error(StatusCode::NOT_FOUND),
            "Not found: Collection `missing` doesn't exist!"
        );
    }
    assert_eq!(
        raw.get("/collections/missing/exists").await.result(),
        json!({"exists": false})
    );
    // Deleting what is not there is not an error.
    let deleted = raw
        .send(Method::DELETE, "/collections/missing", None)
        .await
        .result();
    assert_eq!(deleted, json!(false));
}

#[tokio::test]
async fn qdrant_emulator_create_validates_and_conflicts() {
    let (_emulator, raw) = with_collection().await;
    let again = raw
        .put(
            &format!("/collections/{COLLECTION}"),
            json!({"vectors": {"size": 2, "distance": "Cosine"}}),
        )
        .await;
    assert_eq!(
        again.error(StatusCode::CONFLICT),
        "Wrong input: Collection `rules` already exists!"
    );
    // size 0 and unknown distances fail to deserialize (400, with position).
    for bad in [
        json!({"vectors": {"size": 0, "distance": "Cosine"}}),
        json!({"vectors": {"size": 4, "distance": "cosine"}}),
    ] {
        let answer = raw.put("/collections/bad", bad).await;
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(
            message.starts_with(
                "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at line 1 column "
            ),
            "{message}"
        );
    }
    // Too large: a validation error (422).
    let answer = raw
        .put(
            "/collections/bad",
            json!({"vectors": {"size": 70000, "distance": "Dot"}}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::UNPROCESSABLE_ENTITY),
        "Validation error in JSON body: [vectors.size: must be from 1 to 65536]"
    );
    let answer = raw
        .put(
            "/collections/a:b",
            json!({"vectors": {"size": 4, "distance": "Dot"}}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::UNPROCESSABLE_ENTITY),
        "Validation error in path parameters: [collection_name: collection name cannot contain \":\" char]"
    );
    let answer = raw
        .put(
            "/collections/dup",
            json!({"vectors": {"a": {"size": 4, "distance": "Dot"}}, "sparse_vectors": {"a": {}}}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Wrong input: Dense and sparse vector names must be unique - duplicate found with 'a'"
    );
}

#[tokio::test]
async fn qdrant_emulator_collection_info_has_qdrant_defaults() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create(
        "info",
        json!({
            "vectors": {
                "dense": {"size": 4, "distance": "Dot", "datatype": "float16", "on_disk": true},
                "multi": {"size": 2, "distance": "Cosine", "multivector_config": {"comparator": "max_sim"},
                          "hnsw_config": {"m": 0}}
            },
            "sparse_vectors": {"words": {"modifier": "idf"}},
            "hnsw_config": {"ef_construct": 123},
            "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}},
        }),
    )
    .await;
    let put_index = raw
        .put(
            "/collections/info/index?wait=true",
            json!({"field_name": "tenant", "field_schema": {"type": "keyword", "is_tenant": true}}),
        )
        .await
        .result();
    assert_eq!(put_index, json!({"operation_id": 0, "status": "completed"}));
    raw.upsert(
        "info",
        json!([{"id": 1, "vector": {}, "payload": {"tenant": "a"}}, {"id": 2, "vector": {}}]),
    )
    .await
    .result();
    let info = raw.get("/collections/info").await.result();
    assert_eq!(info["status"], "green");
    assert_eq!(info["optimizer_status"], "ok");
    assert_eq!(info["points_count"], 2);
    let config = &info["config"];
    assert_eq!(
        config["params"],
        json!({
            "vectors": {
                "dense": {"size": 4, "distance": "Dot", "on_disk": true, "datatype": "float16"},
                "multi": {"size": 2, "distance": "Cosine", "hnsw_config": {"m": 0},
                          "multivector_config": {"comparator": "max_sim"}}
            },
            "shard_number": 1,
            "replication_factor": 1,
            "write_consistency_factor": 1,
            "on_disk_payload": true,
            "sparse_vectors": {"words": {"modifier": "idf"}},
        })
    );
    assert_eq!(
        config["hnsw_config"],
        json!({"m": 16, "ef_construct": 123, "full_scan_threshold": 10000, "max_indexing_threads": 0, "on_disk": false})
    );
    assert_eq!(
        config["quantization_config"],
        json!({"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}})
    );
    assert_eq!(
        config["wal_config"],
        json!({"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1})
    );
    assert_eq!(config["optimizer_config"]["indexing_threshold"], 10000);
    assert_eq!(
        info["payload_schema"],
        json!({"tenant": {"data_type": "keyword", "params": {"type": "keyword", "is_tenant": true}, "points": 1}})
    );
}

#[tokio::test]
async fn qdrant_emulator_point_id_rules() {
    let (_emulator, raw) = with_collection().await;
    for (id, shown) in [
        (json!("123"), "123"),
        (json!("abc"), "abc"),
        (json!(-1), "-1"),
        (json!(1.5), "1.5"),
        (json!(null), "Unit"),
    ] {
        let answer = raw
            .upsert(COLLECTION, json!([{"id": id, "vector": [1.0, 0.0]}]))
            .await;
        assert_eq!(
            answer.error(StatusCode::BAD_REQUEST),
            format!(
                "Format error in JSON body: value {shown} is not a valid point ID, valid values are either an unsigned integer or a UUID"
            )
        );
    }
    let result = raw
        .upsert(
            COLLECTION,
            json!([
                {"id": u64::MAX, "vector": [1.0, 0.0]},
                {"id": 0, "vector": [1.0, 0.0]},
                {"id": "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "vector": [1.0, 0.0]},
                {"id": "{a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8}", "vector": [1.0, 0.0]},
                {"id": "00000000000000000000000000000001", "vector": [1.0, 0.0]},
            ]),
        )
        .await
        .result();
    assert_eq!(result, json!({"operation_id": 0, "status": "completed"}));
    let ids: Vec<Value> = raw
        .scroll_all(COLLECTION, 10)
        .await
        .into_iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!(0),
            json!(u64::MAX),
            json!("00000000-0000-0000-0000-000000000001"),
            json!("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            json!("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8"),
        ]
    );
    // Scroll offsets are point ids too.
    let answer = raw
        .post(
            &format!("/collections/{COLLECTION}/points/scroll"),
            json!({"offset": "123"}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Format error in JSON body: value 123 is not a valid point ID, valid values are either an unsigned integer or a UUID at line 1 column 16"
    );
    // GET by id parses the path.
    let point = raw
        .get(&format!(
            "/collections/{COLLECTION}/points/6BA7B810-9DAD-11D1-80B4-00C04FD430C8"
        ))
        .await
        .result();
    assert_eq!(point["id"], "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    let answer = raw
        .get(&format!("/collections/{COLLECTION}/points/nope"))
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Wrong input: Can not recognize \"nope\" as point id"
    );
    let answer = raw
        .get(&format!("/collections/{COLLECTION}/points/7"))
        .await;
    assert_eq!(
        answer.error(StatusCode::NOT_FOUND),
        "Not found: Point with id 7 does not exists!"
    );
}

/// Ids in Qdrant's order: integers ascending, then UUIDs by 128-bit value.
#[tokio::test]
async fn qdrant_emulator_scroll_order_and_inclusive_offset() {
    let (_emulator, raw) = with_collection().await;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut ints: Vec<u64> = (0..40).map(|_| rng.u64(..)).collect();
    ints.extend([0, 1, u64::MAX]);
    let uuids: Vec<u128> = (0..30).map(|_| rng.u128(..)).collect();
    let mut points: Vec<Value> =
        ints.iter()
            .map(|n| json!({"id": n, "vector": [1.0, 2.0], "payload": {"n": n}}))
            .chain(uuids.iter().map(
                |u| json!({"id": uuid::Uuid::from_u128(*u).to_string(), "vector": [1.0, 2.0]}),
            ))
            .collect();
    rng.shuffle(&mut points);
    for chunk in points.chunks(16) {
        raw.upsert(COLLECTION, Value::from(chunk.to_vec()))
            .await
            .result();
    }
    let mut want: Vec<Value> = {
        let mut ints = ints.clone();
        ints.sort_unstable();
        ints.dedup();
        ints.into_iter().map(Value::from).collect()
    };
    let mut sorted_uuids = uuids.clone();
    sorted_uuids.sort_unstable();
    want.extend(
        sorted_uuids
            .iter()
            .map(|u| Value::from(uuid::Uuid::from_u128(*u).to_string())),
    );
    for limit in [1, 7, 43, 100] {
        let got: Vec<Value> = raw
            .scroll_all(COLLECTION, limit)
            .await
            .into_iter()
            .map(|p| p["id"].clone())
            .collect();
        assert_eq!(got, want, "limit {limit}");
    }
    // The page holds `limit` points from the offset on, and names the next.
    let page = raw
        .post(
            &format!("/collections/{COLLECTION}/points/scroll"),
            json!({"offset": want[5], "limit": 3}),
        )
        .await
        .result();
    let ids: Vec<&Value> = page["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&want[5], &want[6], &want[7]]);
    assert_eq!(page["next_page_offset"], want[8]);
    // Payload by default, vectors only when asked.
    let first = &page["points"][0];
    assert!(first.get("payload").is_some() && first.get("vector").is_none());
    // An offset between ids starts at the next one.
    let page = raw
        .post(
            &format!("/collections/{COLLECTION}/points/scroll"),
            json!({"offset": 2, "limit": 1, "with_payload": false}),
        )
        .await
        .result();
    let first = &page["points"][0];
    assert!(first.get("payload").is_none() && first.get("vector").is_none());
    assert!(first["id"].as_u64().unwrap() > 2);
    let count = raw
        .post(
            &format!("/collections/{COLLECTION}/points/count"),
            json!({"exact": true}),
        )
        .await
        .result();
    assert_eq!(count, json!({"count": want.len()}));
}

#[tokio::test]
async fn qdrant_emulator_cosine_vectors_are_normalised_on_write() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create(
        "cos",
        json!({"vectors": {"c": {"size": 40, "distance": "Cosine"}, "d": {"size": 3, "distance": "Dot"},
                           "small": {"size": 2, "distance": "Cosine"}}}),
    )
    .await;
    let long: Vec<f32> = (0..40).map(|i| (i as f32 - 17.5) * 0.37).collect();
    raw.upsert(
        "cos",
        json!([
            {"id": 1, "vector": {"c": long, "d": [3.0, 4.0, 5.0], "small": [3.0, 4.0]}},
            {"id": 2, "vector": {"small": [0.0, 0.0]}},
            {"id": 3, "vector": {"small": [1.0, 0.0000001]}},
        ]),
    )
    .await
    .result();
    let points = raw.scroll_all("cos", 10).await;
    let v = &points[0]["vector"];
    assert_eq!(v["small"], json!([0.6, 0.8]));
    assert_eq!(v["d"], json!([3.0, 4.0, 5.0]), "Dot is stored as given");
    let c: Vec<f32> = serde_json::from_value(v["c"].clone()).unwrap();
    let want = qdrant::cosine_preprocess(long.clone());
    assert_eq!(
        c.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let norm: f64 = c.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    assert!((norm - 1.0).abs() < 1e-6, "{norm}");
    // Zero and (nearly) unit vectors are left alone.
    assert_eq!(points[1]["vector"]["small"], json!([0.0, 0.0]));
    assert_eq!(points[2]["vector"]["small"], json!([1.0, 0.0000001]));
}

#[tokio::test]
async fn qdrant_emulator_vector_shape_errors() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create(
        "shapes",
        json!({"vectors": {"text": {"size": 3, "distance": "Dot"}}, "sparse_vectors": {"kw": {}}}),
    )
    .await;
    let cases = [
        (
            json!([{"id": 1, "vector": {"text": [1.0, 2.0]}}]),
            StatusCode::BAD_REQUEST,
            "Wrong input: Vector dimension error: expected dim: 3, got 2",
        ),
        (
            json!([{"id": 1, "vector": {"other": [1.0, 2.0, 3.0]}}]),
            StatusCode::BAD_REQUEST,
            "Wrong input: Not existing vector name error: other",
        ),
        (
            json!([{"id": 1, "vector": [1.0, 2.0, 3.0]}]),
            StatusCode::BAD_REQUEST,
            "Wrong input: Not existing vector name error: ",
        ),
        (
            json!([{"id": 1, "vector": {"kw": [1.0, 2.0, 3.0]}}]),
            StatusCode::BAD_REQUEST,
            "Wrong input: Conversion between sparse and regular vectors failed",
        ),
        (
            json!([{"id": 1, "vector": {"kw": {"indices": [1, 1], "values": [1.0, 2.0]}}}]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation error in JSON body: [points[0].vector.?.indices: Validation error: must be unique [{}]]",
        ),
        (
            json!([{"id": 1, "vector": {"kw": {"indices": [1], "values": [1.0, 2.0]}}}]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation error in JSON body: [points[0].vector.?.values: Validation error: must be the same length as indices [{}]]",
        ),
        (
            json!([{"id": 1, "vector": {"text": []}}]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation error in JSON body: [points[0].vector.?.vector: dense vector must not be empty]",
        ),
        (
            json!([{"id": 1, "vector": "nope"}]),
            StatusCode::BAD_REQUEST,
            "Format error in JSON body: data did not match any variant of untagged enum VectorStruct",
        ),
    ];
    for (points, status, message) in cases {
        let answer = raw.upsert("shapes", points.clone()).await;
        assert_eq!(answer.error(status), message, "{points}");
    }
    // A bad point refuses the whole batch.
    let answer = raw
        .upsert(
            "shapes",
            json!([{"id": 1, "vector": {"text": [1.0, 2.0, 3.0]}}, {"id": 2, "vector": {"text": [1.0]}}]),
        )
        .await;
    answer.error(StatusCode::BAD_REQUEST);
    let count = raw
        .post("/collections/shapes/points/count", json!({}))
        .await
        .result();
    assert_eq!(count, json!({"count": 0}));
    // Sparse vectors come back sorted by index; upsert replaces the point.
    raw.upsert(
        "shapes",
        json!([{"id": 9, "vector": {"kw": {"indices": [7, 2, 5], "values": [0.7, 0.2, 0.5]}}, "payload": {"a": 1}}]),
    )
    .await
    .result();
    raw.upsert(
        "shapes",
        json!([{"id": 9, "vector": {"kw": {"indices": [7, 2, 5], "values": [0.7, 0.2, 0.5]}, "text": [1.0, 2.0, 3.0]}}]),
    )
    .await
    .result();
    let point = raw.get("/collections/shapes/points/9").await.result();
    assert_eq!(
        point,
        json!({"id": 9, "payload": {}, "vector": {"kw": {"indices": [2, 5, 7], "values": [0.2, 0.5, 0.7]},
                                                   "text": [1.0, 2.0, 3.0]}})
    );
}

#[tokio::test]
async fn qdrant_emulator_wait_false_is_acknowledged() {
    let (_emulator, raw) = with_collection().await;
    let result = raw
        .put(
            &format!("/collections/{COLLECTION}/points?wait=false"),
            json!({"points": [{"id": 1, "vector": [1.0, 1.0]}]}),
        )
        .await
        .result();
    assert_eq!(result, json!({"operation_id": 0, "status": "acknowledged"}));
    // Vector checks happen after queueing: without waiting, a wrong
    // dimension is acknowledged and the write silently dropped.
    let result = raw
        .put(
            &format!("/collections/{COLLECTION}/points?wait=false"),
            json!({"points": [{"id": 2, "vector": [1.0, 1.0, 1.0]}]}),
        )
        .await
        .result();
    assert_eq!(result, json!({"operation_id": 1, "status": "acknowledged"}));
    let count = raw
        .post(
            &format!("/collections/{COLLECTION}/points/count"),
            json!({}),
        )
        .await
        .result();
    assert_eq!(count, json!({"count": 1}));
    // Format errors are still reported.
    let answer = raw
        .put(
            &format!("/collections/{COLLECTION}/points?wait=false"),
            json!({"points": [{"id": "x", "vector": [1.0, 1.0]}]}),
        )
        .await;
    answer.error(StatusCode::BAD_REQUEST);
    let answer = raw
        .put(
            &format!("/collections/{COLLECTION}/points?wait=maybe"),
            json!({"points": []}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Deserialize error in query parameters: provided string was not `true` or `false`"
    );
}

#[tokio::test]
async fn qdrant_emulator_query_scores() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create(
        "q",
        json!({"vectors": {"cos": {"size": 2, "distance": "Cosine"}, "l2": {"size": 2, "distance": "Euclid"},
                           "l1": {"size": 2, "distance": "Manhattan"}, "dot": {"size": 2, "distance": "Dot"},
                           "mv": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}},
               "sparse_vectors": {"sp": {}}}),
    )
    .await;
    raw.upsert(
        "q",
        json!([
            {"id": 1, "vector": {"cos": [1.0, 0.0], "l2": [0.0, 0.0], "l1": [0.0, 0.0], "dot": [1.0, 1.0],
                                 "mv": [[1.0, 0.0], [0.0, 2.0]], "sp": {"indices": [1, 2], "values": [1.0, 2.0]}},
             "payload": {"k": "a"}},
            {"id": 2, "vector": {"cos": [0.0, 3.0], "l2": [3.0, 4.0], "l1": [3.0, 4.0], "dot": [2.0, 2.0],
                                 "mv": [[1.0, 1.0]], "sp": {"indices": [3], "values": [5.0]}},
             "payload": {"k": "b"}},
        ]),
    )
    .await
    .result();
    let query = |body: Value| {
        let raw = &raw;
        async move {
            raw.post("/collections/q/points/query", body).await.result()["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        query(json!({"query": [0.0, 5.0], "using": "cos"})).await,
        [(2, 1.0), (1, 0.0)]
    );
    assert_eq!(
        query(json!({"query": [0.0, 0.0], "using": "l2"})).await,
        [(1, 0.0), (2, 5.0)]
    );
    assert_eq!(
        query(json!({"query": [0.0, 0.0], "using": "l1"})).await,
        [(1, 0.0), (2, 7.0)]
    );
    assert_eq!(
        query(json!({"query": {"nearest": [1.0, 0.5]}, "using": "dot"})).await,
        [(2, 3.0), (1, 1.5)]
    );
    // max_sim: per query row the best document row, summed.
    assert_eq!(
        query(json!({"query": [[1.0, 0.0], [0.0, 1.0]], "using": "mv"})).await,
        [(1, 3.0), (2, 2.0)]
    );
    // Sparse: only points sharing an index.
    assert_eq!(
        query(json!({"query": {"indices": [2, 9], "values": [0.5, 1.0]}, "using": "sp"})).await,
        [(1, 1.0)]
    );
    // Thresholds are strict: a distance of exactly 5 is not below 5.
    assert_eq!(
        query(json!({"query": [0.0, 0.0], "using": "l2", "score_threshold": 5.0})).await,
        [(1, 0.0)]
    );
    assert_eq!(
        query(json!({"query": {"nearest": [1.0, 0.5]}, "using": "dot", "score_threshold": 1.5}))
            .await,
        [(2, 3.0)]
    );
    assert_eq!(
        query(json!({"query": [0.0, 0.0], "using": "l2",
                     "filter": {"must": [{"key": "k", "match": {"value": "b"}}]}}))
        .await,
        [(2, 5.0)]
    );
    let hit = &raw
        .post(
            "/collections/q/points/query",
            json!({"query": [1.0, 0.0], "using": "cos", "limit": 1, "with_payload": true}),
        )
        .await
        .result()["points"][0];
    assert_eq!(
        hit,
        &json!({"id": 1, "version": 0, "score": 1.0, "payload": {"k": "a"}})
    );
    let answer = raw
        .post("/collections/q/points/query", json!({"query": [1.0, 0.0]}))
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Wrong input: Collection requires specified vector name in the request, available names: cos, dot, l1, l2, mv, sp"
    );
    let answer = raw
        .post(
            "/collections/q/points/query",
            json!({"query": [1.0, 0.0, 0.0], "using": "cos"}),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        "Wrong input: Vector dimension error: expected dim: 2, got 3"
    );
}

/// Sends `body` with `Transfer-Encoding: chunked` (no length) and returns
/// the raw answer.
fn chunked_put(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(&request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Qdrant's actix JSON extractor answers an oversized body with 400 and
/// "Payload error: …" (its error handler maps every JSON payload error to
/// 400; it never sends 413).
#[tokio::test]
async fn qdrant_emulator_request_size_limit() {
    let (emulator, raw) = with_collection().await;
    emulator.set_max_request_size(200);
    let points: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "vector": [1.0, 2.0]}))
        .collect();
    let body = json!({ "points": points }).to_string();
    let answer = raw
        .put(
            &format!("/collections/{COLLECTION}/points?wait=true"),
            serde_json::from_str(&body).unwrap(),
        )
        .await;
    assert_eq!(
        answer.error(StatusCode::BAD_REQUEST),
        format!(
            "Payload error: JSON payload ({} bytes) is larger than allowed (limit: 200 bytes).",
            body.len()
        )
    );
    assert_eq!(answer.json()["time"], json!(0.0));
    // Without a declared length (chunked) the body is read up to the limit.
    let addr = emulator.addr();
    let path = format!("/collections/{COLLECTION}/points?wait=true");
    let text = tokio::task::spawn_blocking(move || chunked_put(addr, &path, body.as_bytes()))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("Payload error: JSON payload has exceeded limit (200 bytes)."),
        "{text}"
    );
    // Within the limit, fine.
    raw.upsert(COLLECTION, json!([{"id": 1, "vector": [1.0, 2.0]}]))
        .await
        .result();
}

#[tokio::test]
async fn qdrant_emulator_api_key() {
    let emulator = qdrant::start(QdrantOptions {
        api_key: Some("secret".into()),
        ..QdrantOptions::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", emulator.base_url());
    let none = http.get(url("/collections")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.text().await.unwrap(),
        "Must provide an API key or an Authorization bearer token"
    );
    let wrong = http
        .get(url("/collections"))
        .header("api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.text().await.unwrap(), "Invalid API key or JWT");
    for (name, value) in [("api-key", "secret"), ("authorization", "Bearer secret")] {
        let ok = http
            .get(url("/collections"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{name}");
    }
    // Even unknown paths ask for the key first; health checks never do.
    let unknown = http.get(url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    for open in ["/", "/healthz", "/readyz", "/livez"] {
        let answer = http.get(url(open)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{open}");
    }
    emulator.set_api_key(None);
    let now_open = http.get(url("/collections")).send().await.unwrap();
    assert_eq!(now_open.status(), StatusCode::OK);
}

#[tokio::test]
async fn qdrant_emulator_faults_rate_limit_and_unavailable() {
    let (emulator, raw) = with_collection().await;
    emulator.faults().clear();
    emulator
        .faults()
        .set(Faults::always_rate_limited(3).at_most(2))
        .unwrap();
    let path = format!("/collections/{COLLECTION}/points/count");
    for _ in 0..2 {
        let answer = raw.post(&path, json!({})).await;
        assert_eq!(
            answer.headers.get("retry-after").unwrap().to_str().unwrap(),
            "3"
        );
        let message = answer.error(StatusCode::TOO_MANY_REQUESTS);
        assert!(
            message.starts_with("Rate limiting exceeded: Read rate limit exceeded"),
            "{message}"
        );
    }
    raw.post(&path, json!({})).await.result();
    assert_eq!(
        emulator.faults().counts(),
        FaultCounts {
            requests: 3,
            rate_limited: 2,
            ..FaultCounts::default()
        }
    );
    // Switched over the admin endpoint this time.
    let admin = raw
        .post("/__emulator/faults", json!({"unavailable": 1.0}))
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    let answer = raw.post(&path, json!({})).await;
    let message = answer.error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        message.starts_with("Shard temporarily unavailable"),
        "{message}"
    );
    let view = raw.get("/__emulator/faults").await.json();
    assert_eq!(view["counts"]["unavailable"], 1);
    assert_eq!(view["faults"]["unavailable"], 1.0);
    // Probabilities that cannot be are refused.
    let bad = raw
        .post(
            "/__emulator/faults",
            json!({"unavailable": 0.7, "delay": 0.7}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let cleared = raw
        .send(Method::DELETE, "/__emulator/faults", None)
        .await
        .json();
    assert_eq!(cleared["counts"]["requests"], 0);
    raw.post(&path, json!({})).await.result();
}

#[tokio::test]
async fn qdrant_emulator_faults_dropped_connection() {
    let (emulator, raw) = with_collection().await;
    emulator
        .faults()
        .set(Faults::always_dropped().at_most(1))
        .unwrap();
    // A fresh client: a new connection, which nothing retries.
    let err = reqwest::Client::new()
        .post(format!(
            "{}/collections/{COLLECTION}/points/count",
            raw.base
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect_err("the connection is dropped without a response");
    assert!(err.status().is_none(), "{err:?}");
    assert_eq!(emulator.faults().counts().dropped, 1);
    // The next request (on a new connection) is answered.
    raw.post(
        &format!("/collections/{COLLECTION}/points/count"),
        json!({}),
    )
    .await
    .result();
}

#[tokio::test]
async fn qdrant_emulator_faults_delay_and_path_prefix() {
    let (emulator, raw) = with_collection().await;
    emulator
        .faults()
        .set(Faults::always_delayed(300).under("/collections/rules/points"))
        .unwrap();
    let started = Instant::now();
    raw.get("/collections").await.result();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "not under the prefix"
    );
    let started = Instant::now();
    raw.post(
        &format!("/collections/{COLLECTION}/points/count"),
        json!({}),
    )
    .await
    .result();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(emulator.faults().counts().delayed, 1);
}

#[tokio::test]
async fn qdrant_emulator_filters_retrieve_and_delete() {
    let (_emulator, raw) = with_collection().await;
    raw.upsert(
        COLLECTION,
        json!([
            {"id": 1, "vector": [1.0, 0.0], "payload": {"city": "Berlin", "n": 5, "tags": ["a", "b"],
                                                       "items": [{"k": 1}, {"k": 2}]}},
            {"id": 2, "vector": [1.0, 0.0], "payload": {"city": "Paris", "n": 10, "tags": [], "none": null}},
            {"id": 3, "vector": [1.0, 0.0], "payload": {"city": "Berlin", "n": 15}},
        ]),
    )
    .await
    .result();
    let count = |filter: Value| {
        let raw = &raw;
        async move {
            raw.post(
                &format!("/collections/{COLLECTION}/points/count"),
                json!({"filter": filter, "exact": true}),
            )
            .await
            .result()["count"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(
        count(json!({"must": {"key": "city", "match": {"value": "Berlin"}}})).await,
        2
    );
    assert_eq!(
        count(json!({"must_not": [{"key": "city", "match": {"value": "Berlin"}}]})).await,
        1
    );
    assert_eq!(
        count(json!({"should": [{"key": "n", "range": {"gte": 10}}, {"has_id": [1]}]})).await,
        3
    );
    assert_eq!(
        count(json!({"must": [{"key": "n", "range": {"gt": 5, "lt": 15}}]})).await,
        1
    );
    assert_eq!(
        count(json!({"must": [{"key": "tags", "match": {"any": ["b", "z"]}}]})).await,
        1
    );
    assert_eq!(
        count(json!({"must": [{"is_empty": {"key": "tags"}}]})).await,
        2
    );
    assert_eq!(
        count(json!({"must": [{"is_null": {"key": "none"}}]})).await,
        1
    );
    assert_eq!(
        count(json!({"must": [{"key": "items[].k", "match": {"value": 2}}]})).await,
        1
    );
    assert_eq!(
        count(json!({"must": [{"nested": {"key": "items", "filter": {"must": [{"key": "k", "match": {"value": 1}}]}}}]}))
            .await,
        1
    );
    let got = raw
        .post(
            &format!("/collections/{COLLECTION}/points"),
            json!({"ids": [3, 99, 1, 3], "with_payload": ["city"]}),
        )
        .await
        .result();
    assert_eq!(
        got,
        json!([{"id": 3, "payload": {"city": "Berlin"}}, {"id": 1, "payload": {"city": "Berlin"}}])
    );
    let got = raw
        .post(
            &format!("/collections/{COLLECTION}/points"),
            json!({"ids": [2]}),
        )
        .await
        .result();
    assert_eq!(got, json!([{"id": 2}]), "retrieve: no payload unless asked");
    let deleted = raw
        .post(
            &format!("/collections/{COLLECTION}/points/delete?wait=true"),
            json!({"filter": {"must": [{"key": "city", "match": {"value": "Berlin"}}]}}),
        )
        .await
        .result();
    assert_eq!(deleted["status"], "completed");
    raw.post(
        &format!("/collections/{COLLECTION}/points/delete?wait=true"),
        json!({"points": [2]}),
    )
    .await
    .result();
    assert_eq!(count(json!({})).await, 0);
}

/// Qdrant's serde_json has no `float_roundtrip`: a float with 17
/// significant digits can come back one ulp off, and payload floats are
/// parsed twice (request, then the stored JSON text).
#[tokio::test]
async fn qdrant_emulator_reads_floats_as_qdrant_does() {
    assert_eq!(
        qdrant::serde_json_lossy_f64("0.1"),
        Some(0.1),
        "short decimals are exact"
    );
    // 17 significant digits: the u64 significand rounds, then a division.
    let token = "0.30000000000000004";
    let lossy = qdrant::serde_json_lossy_f64(token).unwrap();
    let exact: f64 = token.parse().unwrap();
    assert_eq!(lossy, 30000000000000004.0_f64 / 1e17);
    assert!(lossy.to_bits().abs_diff(exact.to_bits()) <= 1);
    assert_eq!(qdrant::serde_json_lossy_f64("12"), None);
    assert_eq!(qdrant::serde_json_lossy_f64("-0"), Some(-0.0));

    let (emulator, raw) = with_collection().await;
    let floats: Vec<f64> = {
        let mut rng = fastrand::Rng::with_seed(5);
        (0..200).map(|_| (rng.f64() - 0.5) * 2e6).collect()
    };
    raw.upsert(
        COLLECTION,
        json!([{"id": 1, "vector": [1.0, 0.0], "payload": {"f": floats}}]),
    )
    .await
    .result();
    let twice = |x: f64| {
        let once = qdrant::serde_json_lossy_f64(&serde_json::to_string(&x).unwrap()).unwrap();
        qdrant::serde_json_lossy_f64(&serde_json::to_string(&once).unwrap()).unwrap()
    };
    let got = raw
        .get(&format!("/collections/{COLLECTION}/points/1"))
        .await
        .result();
    let got: Vec<f64> = serde_json::from_value(got["payload"]["f"].clone()).unwrap();
    let want: Vec<f64> = floats.iter().map(|x| twice(*x)).collect();
    assert_eq!(got, want);
    assert!(
        got != floats,
        "some of 200 random 17-digit floats must move"
    );
    // Exact mode keeps them.
    emulator.set_exact_floats(true);
    raw.upsert(
        COLLECTION,
        json!([{"id": 2, "vector": [1.0, 0.0], "payload": {"f": floats}}]),
    )
    .await
    .result();
    let got = raw
        .get(&format!("/collections/{COLLECTION}/points/2"))
        .await
        .result();
    let got: Vec<f64> = serde_json::from_value(got["payload"]["f"].clone()).unwrap();
    assert_eq!(got, floats);
}

/// The faithfulness proof: the official client's scenario passes against the
/// emulator, and its summary says what it wrote.
#[tokio::test]
async fn qdrant_emulator_official_python_client() {
    let emulator = start().await;
    let Some(summary) = run_sdk_scenario(emulator.base_url()).await else {
        return;
    };
    let checks: Vec<&str> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for check in [
        "version",
        "create_collection",
        "create_payload_index",
        "upsert",
        "scroll_order",
        "scroll_content",
        "count",
        "retrieve",
        "query_cosine",
        "query_euclid",
        "query_sparse",
        "query_filter",
        "get_collection",
        "errors",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
    let name = summary["collection"].as_str().unwrap();
    let points = summary["points"].as_array().unwrap();
    assert!(points.len() >= 200);
    assert_eq!(summary["points_count"], points.len());
    assert_eq!(
        emulator.state().points_count(name),
        Some(points.len()),
        "the emulator holds what the client wrote"
    );
    let ids: Vec<&Value> = points.iter().map(|p| &p["id"]).collect();
    assert_eq!(
        ids,
        summary["scroll_ids"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>()
    );
    let ints = ids.iter().take_while(|id| id.is_u64()).count();
    assert!(ints > 0 && ints < ids.len(), "both integer and UUID ids");
    assert!(ids[ints..].iter().all(|id| id.is_string()));
    // Cosine vectors come back unit length (or zero).
    for p in points {
        let text: Vec<f64> = serde_json::from_value(p["vector"]["text"].clone()).unwrap();
        let norm: f64 = text.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-6, "{norm}");
    }
    assert_eq!(
        summary["config"]["vectors"],
        json!({"image": {"size": 4, "distance": "Euclid"}, "text": {"size": 8, "distance": "Cosine"}})
    );
    // What the client saw is what a raw reader sees.
    let raw = Raw::new(&emulator);
    let scrolled = raw.scroll_all(name, 64).await;
    assert_eq!(scrolled.len(), points.len());
    for (mine, theirs) in scrolled.iter().zip(points) {
        assert_eq!(mine["id"], theirs["id"]);
        assert_eq!(mine["payload"], theirs["payload"]);
    }
}

/// The same scenario through a server that wants an API key: the client
/// sends it as `api-key`, and every endpoint it uses accepts it.
#[tokio::test]
async fn qdrant_emulator_official_python_client_with_api_key() {
    let emulator = qdrant::start(QdrantOptions {
        api_key: Some("sdk-secret".into()),
        ..QdrantOptions::default()
    })
    .await
    .unwrap();
    let Some(summary) = run_sdk_scenario_with_key(emulator.base_url(), Some("sdk-secret")).await
    else {
        return;
    };
    assert_eq!(summary["checks"].as_array().unwrap().len(), 14);
}
