//! The Qdrant connector end to end against the Qdrant emulator (and real
//! Chroma for the cross-database test), through the CLI. Points go in and
//! come out through raw HTTP written here, independent of the connector.

use serde_json::{Value, json};
use vecport::model::{IdKind, RecordId, StoredValues, Vector};

use crate::conformance::read_snapshot;
use crate::emulators::qdrant::{self as emu, QdrantEmulator, QdrantOptions};
use crate::support::chroma::Trip;
use crate::support::cli::{export_quietly, import_quietly, vecport};
use crate::support::data::{self, FLAT, f32s_match, json_matches};
use crate::support::http;

/// A raw Qdrant client.
struct Raw {
    base: String,
    http: reqwest::Client,
}

impl Raw {
    fn new(e: &QdrantEmulator) -> Raw {
        Raw {
            base: e.base_url().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let text = http::call(&self.http, method, &url, body, path).await;
        serde_json::from_str::<Value>(&text).unwrap()["result"].clone()
    }

    async fn scroll_all(&self, collection: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = Value::Null;
        loop {
            let body =
                json!({"limit": 777, "offset": offset, "with_payload": true, "with_vector": true});
            let page = self
                .call(
                    reqwest::Method::POST,
                    &format!("/collections/{collection}/points/scroll"),
                    Some(body),
                )
                .await;
            out.extend(page["points"].as_array().unwrap().iter().cloned());
            offset = page["next_page_offset"].clone();
            if offset.is_null() {
                return out;
            }
        }
    }
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn rng_vector(rng: &mut fastrand::Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn named_dense_and_sparse_round_trip_keeps_points_and_configuration() {
    let e = emu::start(QdrantOptions::default()).await.unwrap();
    let raw = Raw::new(&e);
    let create = json!({
        "vectors": {
            "text": {"size": 8, "distance": "Cosine", "hnsw_config": {"m": 32}},
            "image": {"size": 4, "distance": "Euclid", "on_disk": true}
        },
        "sparse_vectors": {"keywords": {"modifier": "idf"}},
        "hnsw_config": {"m": 20, "ef_construct": 150},
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}},
        "shard_number": 2,
        "on_disk_payload": true
    });
    raw.call(reqwest::Method::PUT, "/collections/source", Some(create))
        .await;
    for index in [
        json!({"field_name": "city", "field_schema": "keyword"}),
        json!({"field_name": "tenant", "field_schema": {"type": "keyword", "is_tenant": true}}),
        json!({"field_name": "n", "field_schema": "integer"}),
    ] {
        raw.call(
            reqwest::Method::PUT,
            "/collections/source/index?wait=true",
            Some(index),
        )
        .await;
    }
    let mut rng = fastrand::Rng::with_seed(17);
    let n = 10_000;
    let points: Vec<Value> = (0..n)
        .map(|i| {
            let id = if i % 2 == 0 { json!(if i == 0 { u64::MAX } else { i as u64 }) } else { json!(uuid::Uuid::from_u128(rng.u128(..)).to_string()) };
            let mut vector = json!({"text": rng_vector(&mut rng, 8)});
            if i % 5 != 3 {
                vector["image"] = json!(rng_vector(&mut rng, 4));
            }
            let k = i % 4;
            vector["keywords"] = json!({"indices": (0..k).map(|j| j * 11 + 2).collect::<Vec<_>>(), "values": (0..k).map(|_| rng.f32()).collect::<Vec<_>>()});
            let city = ["Berlin", "Zürich", "東京"][i % 3];
            let payload = json!({
                "city": city,
                "tenant": format!("t{}", i % 7),
                "n": i,
                "big": u64::MAX,
                "neg": i64::MIN,
                "ratio": i as f64 / 3.0,
                "nested": {"list": [1, {"deep": [null, true, "x"]}], "empty": {}},
            });
            json!({"id": id, "vector": vector, "payload": payload})
        })
        .collect();
    for chunk in points.chunks(500) {
        raw.call(
            reqwest::Method::PUT,
            "/collections/source/points?wait=true",
            Some(json!({"points": chunk})),
        )
        .await;
    }

    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    let url = format!("qdrant://{}", e.addr());
    vecport()
        .args([
            "export",
            &format!("{url}/source"),
            snap.to_str().unwrap(),
            "-q",
            "--page-size",
            "512",
        ])
        .assert()
        .success();
    vecport()
        .args(["verify", snap.to_str().unwrap()])
        .assert()
        .success();
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, n as u64);
    assert_eq!(c.id_kind, IdKind::UintOrUuid);
    let names: Vec<&str> = c.vectors.iter().map(|v| v.field.name.as_str()).collect();
    // Qdrant lists named vectors by name, then sparse vectors.
    assert_eq!(names, ["image", "text", "keywords"]);
    let (image, text) = (&c.vectors[0].field, &c.vectors[1].field);
    assert_eq!(text.stored_values, StoredValues::Normalized);
    assert_eq!(image.stored_values, StoredValues::Exact);
    assert!(
        c.notes.iter().any(|n| n.contains("normalises")),
        "{:?}",
        c.notes
    );
    assert_eq!(
        text.index.as_ref().unwrap().m,
        Some(32),
        "per-vector HNSW override"
    );
    assert_eq!(image.index.as_ref().unwrap().m, Some(20));
    assert_eq!(image.index.as_ref().unwrap().ef_construction, Some(150));
    assert!(image.index.as_ref().unwrap().quantization.is_some());
    assert!(records.iter().any(|r| r.id == RecordId::Uint(u64::MAX)));

    import_quietly(&snap, &format!("{url}/copy"));
    let source_info = raw
        .call(reqwest::Method::GET, "/collections/source", None)
        .await;
    let copy_info = raw
        .call(reqwest::Method::GET, "/collections/copy", None)
        .await;
    for key in [
        "vectors",
        "sparse_vectors",
        "shard_number",
        "on_disk_payload",
    ] {
        assert_eq!(
            copy_info["config"]["params"][key], source_info["config"]["params"][key],
            "params.{key}"
        );
    }
    for key in ["hnsw_config", "quantization_config"] {
        assert_eq!(
            copy_info["config"][key], source_info["config"][key],
            "{key}"
        );
    }
    let schema = |info: &Value| -> Vec<(String, Value, Value)> {
        let mut s: Vec<_> = info["payload_schema"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["data_type"].clone(), v["params"].clone()))
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        s
    };
    assert_eq!(schema(&copy_info), schema(&source_info), "payload indexes");
    assert_eq!(schema(&source_info).len(), 3);

    let (a, b) = (raw.scroll_all("source").await, raw.scroll_all("copy").await);
    assert_eq!(a.len(), n);
    assert_eq!(b.len(), n);
    for (p, q) in a.iter().zip(&b) {
        assert_eq!(p["id"], q["id"]);
        // Cosine vectors are normalised again on write: the last bits may move.
        assert!(
            f32s_match(
                &f32s(&p["vector"]["text"]),
                &f32s(&q["vector"]["text"]),
                1e-6
            ),
            "{} text",
            p["id"]
        );
        assert_eq!(
            p["vector"]
                .get("image")
                .map(f32s)
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
            q["vector"]
                .get("image")
                .map(f32s)
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
            "{} image",
            p["id"]
        );
        assert_eq!(
            p["vector"]["keywords"], q["vector"]["keywords"],
            "{} keywords",
            p["id"]
        );
        // Qdrant's JSON parser may move a float by an ulp on each write.
        assert!(
            json_matches(&p["payload"], &q["payload"], 2),
            "{} payload {} != {}",
            p["id"],
            p["payload"],
            q["payload"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_to_qdrant_and_back_restores_string_ids() {
    let Some(chroma) = Trip::seed("to-qdrant", &data::records(600, 16, 23, FLAT)).await else {
        return;
    };
    let original = &chroma.records;

    let e = emu::start(QdrantOptions::default()).await.unwrap();
    let raw = Raw::new(&e);
    let tmp = tempfile::tempdir().unwrap();
    let (snap_a, snap_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let qdrant = format!("qdrant://{}", e.addr());
    chroma.export(&snap_a);
    import_quietly(&snap_a, &format!("{qdrant}/from-chroma"));

    // In Qdrant: UUID point ids, the original string ids and documents in the payload.
    let points = raw.scroll_all("from-chroma").await;
    assert_eq!(points.len(), original.len());
    let mut kept: Vec<String> = points
        .iter()
        .map(|p| p["payload"]["__vecport_id"].as_str().unwrap().to_owned())
        .collect();
    kept.sort();
    let ids: Vec<String> = original.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(kept, ids);
    assert!(points.iter().all(|p| {
        p["id"]
            .as_str()
            .is_some_and(|s| uuid::Uuid::try_parse(s).is_ok())
    }));
    assert!(
        points
            .iter()
            .any(|p| p["payload"]["__vecport_document"].is_string())
    );

    chroma.assert_exported(
        &format!("{qdrant}/from-chroma"),
        &snap_b,
        2,
        "Chroma → Qdrant → snapshot",
    );
    chroma
        .assert_imported_back(&snap_b, "back-from-qdrant", 3, "Chroma → Qdrant → Chroma")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_over_the_request_limit_are_split() {
    let e = emu::start(QdrantOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("big");
    // 1,200 records of ~40 KB: one request of 1,000 would be ~40 MB, over Qdrant's 32 MiB.
    let mut records = data::records(1200, 4, 5, FLAT);
    for r in &mut records {
        r.document = Some("d".repeat(40_000));
        r.vectors[0] = Some(Vector::Dense(vec![0.5, -0.5, 1.0, 2.0]));
    }
    crate::conformance::write_snapshot(
        &snap,
        &data::spec("big", 4, vecport::model::Metric::Dot),
        records,
    );
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("qdrant://{}/big", e.addr()),
        ])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "1200 records written, target counts 1200",
        ));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_of_what_the_official_client_wrote_equals_it() {
    let e = emu::start(QdrantOptions::default()).await.unwrap();
    let Some(summary) = crate::qdrant_emulator::run_sdk_scenario(e.base_url()).await else {
        return;
    };
    let collection = summary["collection"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("sdk");
    export_quietly(&format!("qdrant://{}/{collection}", e.addr()), &snap);
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    let expected = summary["points"].as_array().unwrap();
    assert_eq!(records.len(), expected.len());
    // Same order: vecport keeps Qdrant's scroll order.
    for (r, p) in records.iter().zip(expected) {
        let id = match &p["id"] {
            Value::Number(n) => RecordId::Uint(n.as_u64().unwrap()),
            Value::String(s) => RecordId::Uuid(uuid::Uuid::parse_str(s).unwrap()),
            other => panic!("id {other}"),
        };
        assert_eq!(r.id, id);
        assert_eq!(
            r.metadata.clone().map(Value::Object).unwrap_or(json!({})),
            p["payload"],
            "{id} payload"
        );
        for (field, slot) in c.vectors.iter().zip(&r.vectors) {
            let want = &p["vector"][&field.field.name];
            match slot {
                None => assert!(want.is_null(), "{id} {} missing", field.field.name),
                Some(Vector::Dense(d)) => {
                    assert!(f32s_match(d, &f32s(want), 0.0), "{id} {}", field.field.name)
                }
                Some(Vector::Sparse(s)) => {
                    assert_eq!(json!(s.indices), want["indices"], "{id} sparse indices");
                    assert!(
                        f32s_match(&s.values, &f32s(&want["values"]), 0.0),
                        "{id} sparse values"
                    );
                }
                Some(Vector::Multi(m)) => assert_eq!(m.len(), want.as_array().unwrap().len()),
            }
        }
    }
}
