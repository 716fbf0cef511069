//! End to end against a real Milvus server (`MILVUS_URL`, milvus-lite 2.5's
//! C++ server as tests/servers.sh starts it), through the CLI. The official
//! pymilvus client (`tests/sdk/milvus_sdk.py`, run with
//! `VECPORT_MILVUS_PYTHON`) seeds the source collections and reads back what
//! vecport wrote, so the connector is checked by an independent writer and
//! reader.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use vecport::connectors::{self, ConnectOptions, Sink, Source};
use vecport::error::Error;
use vecport::model::{CollectionSpec, IdKind, Metric, Record, RecordId, VectorField};
use vecport::pipeline::{self, ImportOptions, Quiet};

use crate::support::cli::{export_quietly, import_quietly, vecport};
use crate::support::{server_url, unique_name};

/// `milvus://HOST:PORT` of the server, when it is set (see [`server_url`]).
fn milvus_url() -> Option<String> {
    server_url("MILVUS_URL").map(|u| u.trim_end_matches('/').to_owned())
}

/// A collection name Milvus takes (letters, digits, `_`).
fn name(prefix: &str) -> String {
    unique_name(prefix).replace('-', "_")
}

/// Runs `tests/sdk/milvus_sdk.py` in `mode` on collection `collection` and
/// returns its JSON summary. `None` (skipped) when there is no interpreter
/// with pymilvus, except under CI, where that is a failure.
pub(crate) fn sdk(url: &str, mode: &str, collection: &str, n: usize) -> Option<Value> {
    let python = std::env::var("VECPORT_MILVUS_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import pymilvus"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        let help = "set VECPORT_MILVUS_PYTHON to an interpreter with pymilvus==2.5.18 (tests/servers.sh installs it)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`{python}` cannot import pymilvus, but CI=true: {help}");
        }
        eprintln!("skipped: `{python}` cannot import pymilvus; {help}");
        return None;
    }
    let summary = tempfile::NamedTempFile::new().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/milvus_sdk.py");
    let out = Command::new(&python)
        .arg(&script)
        .env("MILVUS_SDK_URI", url.replacen("milvus://", "http://", 1))
        .env("MILVUS_SDK_MODE", mode)
        .env("MILVUS_SDK_NAME", collection)
        .env("MILVUS_SDK_N", n.to_string())
        .env("MILVUS_SDK_OUT", summary.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run tests/sdk/milvus_sdk.py");
    assert!(
        out.status.success(),
        "tests/sdk/milvus_sdk.py {mode} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(&std::fs::read_to_string(summary.path()).unwrap()).unwrap())
}

/// The rows of a dump, keyed by primary key.
fn rows_by_key(dump: &Value, key: &str) -> std::collections::BTreeMap<String, Value> {
    dump["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let k = match &r[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k, r.clone())
        })
        .collect()
}

/// Every field of a dumped schema, and every index, as they must be equal
/// in a copy (the collection's own name aside).
fn shape(dump: &Value) -> Value {
    json!({
        "fields": dump["fields"],
        "enable_dynamic_field": dump["enable_dynamic_field"],
        "indexes": dump["indexes"],
        "consistency_level": dump["consistency_level"],
    })
}

/// The must-show collection of every type (VARCHAR key, IVF_FLAT COSINE
/// float vector, sparse vector, INT8…INT64, FLOAT, DOUBLE, BOOL, VARCHAR,
/// JSON, ARRAY, the dynamic field) goes through a snapshot into a new
/// collection with its schema, indexes and every value equal, as pymilvus
/// reads them.
#[test]
fn every_type_round_trips_through_a_snapshot() {
    let Some(url) = milvus_url() else { return };
    let source = name("every_type");
    let target = name("every_type_copy");
    let n = 20_000;
    let Some(seeded) = sdk(&url, "seed", &source, n) else {
        return;
    };
    assert_eq!(seeded["count"], json!(n));
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    export_quietly(&format!("{url}/{source}"), &snap);
    vecport()
        .args(["verify", snap.to_str().unwrap()])
        .assert()
        .success();
    let (snapshot, records) = crate::conformance::read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, n as u64);
    let dense = &c
        .vectors
        .iter()
        .find(|v| v.field.name == "dense")
        .unwrap()
        .field;
    assert_eq!(
        (dense.dimension, dense.metric),
        (Some(32), Some(Metric::Cosine))
    );
    let ix = dense.index.as_ref().unwrap();
    assert_eq!((ix.kind.as_str(), ix.lists), ("ivfflat", Some(16)));
    let sparse = &c
        .vectors
        .iter()
        .find(|v| v.field.name == "sparse")
        .unwrap()
        .field;
    assert_eq!(sparse.index.as_ref().unwrap().kind, "sparse_inverted_index");
    // Typed fields and the dynamic field's keys are metadata.
    let r0 = records
        .iter()
        .find(|r| r.id.to_string().starts_with("k000000-"))
        .unwrap();
    let m = r0.metadata.as_ref().unwrap();
    for key in [
        "i8", "i16", "i32", "i64", "f", "d", "b", "title", "doc", "tags", "nums", "extra", "score",
    ] {
        assert!(m.contains_key(key), "metadata key {key} in {m:?}");
    }
    assert_eq!(
        m["doc"],
        json!({"n": 0, "nested": {"x": [1, 2.5, "s"], "ok": true}})
    );

    import_quietly(&snap, &format!("{url}/{target}"));
    let a = sdk(&url, "dump", &source, 0).unwrap();
    let b = sdk(&url, "dump", &target, 0).unwrap();
    assert_eq!(shape(&a), shape(&b), "schema and indexes equal");
    let (ra, rb) = (rows_by_key(&a, "pk"), rows_by_key(&b, "pk"));
    assert_eq!(ra.len(), n);
    assert_eq!(ra.len(), rb.len());
    for (k, row) in &ra {
        assert_eq!(Some(row), rb.get(k), "entity {k}");
    }
}

/// An INT64-key collection keeps its integer ids both ways.
#[test]
fn int64_keys_round_trip() {
    let Some(url) = milvus_url() else { return };
    let source = name("int_keys");
    let target = name("int_keys_copy");
    if sdk(&url, "seed_int", &source, 3000).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    export_quietly(&format!("{url}/{source}"), &snap);
    let (snapshot, records) = crate::conformance::read_snapshot(&snap);
    assert_eq!(snapshot.manifest().collections[0].id_kind, IdKind::Uint);
    assert!(records.iter().all(|r| matches!(r.id, RecordId::Uint(_))));
    import_quietly(&snap, &format!("{url}/{target}"));
    let a = sdk(&url, "dump", &source, 0).unwrap();
    let b = sdk(&url, "dump", &target, 0).unwrap();
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(a["rows"], b["rows"]);
    assert_eq!(a["rows"].as_array().unwrap().len(), 3000);
}

/// Milvus → `middle` → Milvus: ids (as text) and values come back.
fn through(url: &str, middle: &str, what: &str) {
    let source = name(&format!("via_{what}"));
    let back = name(&format!("via_{what}_back"));
    if sdk(url, "seed_int", &source, 500).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snap = |n: &str| tmp.path().join(n);
    export_quietly(&format!("{url}/{source}"), &snap("a"));
    import_quietly(&snap("a"), middle);
    export_quietly(middle, &snap("b"));
    import_quietly(&snap("b"), &format!("{url}/{back}"));
    let a = sdk(url, "dump", &source, 0).unwrap();
    let b = sdk(url, "dump", &back, 0).unwrap();
    let (ra, rb) = (rows_by_key(&a, "id"), rows_by_key(&b, "id"));
    assert_eq!(ra.len(), 500);
    assert_eq!(
        ra.keys().collect::<Vec<_>>(),
        rb.keys().collect::<Vec<_>>(),
        "ids back"
    );
    for (k, row) in &ra {
        let got = &rb[k];
        assert_eq!(row["vector"], got["vector"], "vector of {k} through {what}");
        assert_eq!(row["label"], got["label"], "label of {k} through {what}");
    }
}

#[test]
fn through_chroma_and_back() {
    let Some(url) = milvus_url() else { return };
    let Some(chroma) = server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&chroma);
    through(
        &url,
        &format!("chroma://{host}/{}", name("from_milvus")),
        "chroma",
    );
}

#[test]
fn through_qdrant_and_back() {
    let Some(url) = milvus_url() else { return };
    let server = crate::emulators::qdrant::start_background(
        crate::emulators::qdrant::QdrantOptions::default(),
    )
    .unwrap();
    through(
        &url,
        &format!("qdrant://{}/{}", server.addr(), name("from_milvus")),
        "qdrant",
    );
}

/// Records Milvus would refuse (an id over the key's `max_length`, a dynamic
/// field over Milvus's JSON limit) are named before anything is written: the
/// collection is not even created.
#[tokio::test(flavor = "multi_thread")]
async fn refused_records_are_named_before_anything_is_written() {
    let Some(url) = milvus_url() else { return };
    let spec = CollectionSpec {
        name: "docs".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField::dense(Some(4), Some(Metric::L2))],
        ..CollectionSpec::default()
    };
    let mut records: Vec<Record> = (0..50)
        .map(|i| {
            Record::dense(
                RecordId::String(format!("r{i}")),
                vec![i as f32, 1.0, 2.0, 3.0],
            )
        })
        .collect();
    records[17].id = RecordId::String("x".repeat(70_000));
    records[31].metadata =
        Some(serde_json::from_value(json!({"title": "y".repeat(70_000)})).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    crate::conformance::write_snapshot(tmp.path(), &spec, records);
    let target = name("refused");
    let sink = connectors::open(&format!("{url}/{target}"), &ConnectOptions::default()).unwrap();
    let err = pipeline::import(
        tmp.path(),
        sink.as_ref() as &dyn Sink,
        &ImportOptions::default(),
        &Quiet,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_length 65535"), "{err}");
    assert!(err.contains("r31") || err.contains("xxxx"), "{err}");
    let missing = (sink.as_ref() as &dyn Source).collection(&target).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "nothing created: {missing:?}"
    );
}

/// A VARCHAR field's `max_length` is Milvus's: a value over it in a Milvus
/// snapshot is named before the collection is created.
#[tokio::test(flavor = "multi_thread")]
async fn varchar_over_max_length_is_named() {
    let Some(url) = milvus_url() else { return };
    let source = name("short_title");
    if sdk(&url, "seed_long", &source, 0).is_none() {
        return;
    }
    let conn = connectors::open(&url, &ConnectOptions::default()).unwrap();
    let mut spec = (conn.as_ref() as &dyn Source)
        .collection(&source)
        .await
        .unwrap();
    spec.name = "docs".into();
    let record = |id: &str, title: &str| {
        let mut r = Record::dense(RecordId::String(id.into()), vec![0.5, 1.0, 2.0, 3.0]);
        r.metadata = Some(serde_json::from_value(json!({"title": title})).unwrap());
        r
    };
    let records = vec![
        record("a", "short"),
        record("b", "much too long"),
        record("c", "ok"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    crate::conformance::write_snapshot(tmp.path(), &spec, records);
    let target = name("short_title_copy");
    let sink = connectors::open(&format!("{url}/{target}"), &ConnectOptions::default()).unwrap();
    let err = pipeline::import(
        tmp.path(),
        sink.as_ref() as &dyn Sink,
        &ImportOptions::default(),
        &Quiet,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("record \"b\"") && err.contains("\"title\"") && err.contains("max_length 8"),
        "{err}"
    );
    let missing = (sink.as_ref() as &dyn Source).collection(&target).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "nothing created: {missing:?}"
    );
}

/// The token goes to the server base64-encoded and never into the manifest
/// or an error; a server without authentication ignores it.
#[test]
fn token_never_reaches_the_snapshot() {
    let Some(url) = milvus_url() else { return };
    let source = name("token");
    if sdk(&url, "seed_int", &source, 10).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    let token = "root:Milvus-secret-token-4711";
    vecport()
        .env("MILVUS_TOKEN", token)
        .args([
            "export",
            &format!("{url}/{source}"),
            snap.to_str().unwrap(),
            "-q",
        ])
        .assert()
        .success();
    for file in crate::support::cli::files_under(&snap) {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("Milvus-secret-token-4711"),
            "{}",
            file.display()
        );
    }
}
