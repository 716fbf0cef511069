//! The Pinecone connector end to end against the Pinecone emulator, through
//! the CLI; data is seeded with raw HTTP written here.

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::model::{Metadata, Metric, Record, RecordId, SparseVector, Vector};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::emulators::Faults;
use crate::emulators::pinecone::{self as emu, PineconeEmulator, PineconeOptions};
use crate::support::cli::{export_quietly, import_quietly, sorted, vecport};
use crate::support::data;
use crate::support::http::post;

async fn emulator() -> PineconeEmulator {
    let e = emu::start(PineconeOptions::default()).await.unwrap();
    e.set_stats_lag_reads(0);
    e
}

/// Creates a dotproduct index with `n` dense + sparse records in three namespaces.
async fn seed(e: &PineconeEmulator, name: &str, n: usize) -> Vec<Record> {
    let http = reqwest::Client::new();
    let model = post(
        &http,
        &format!("{}/indexes", e.base_url()),
        json!({
            "name": name, "dimension": 16, "metric": "dotproduct", "vector_type": "dense",
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}
        }),
    )
    .await;
    let host = model["host"].as_str().unwrap().to_owned();
    let mut rng = fastrand::Rng::with_seed(31);
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let namespace = ["", "alpha", "βeta"][i % 3];
            let k = i % 4 + 1;
            let metadata: Metadata = serde_json::from_value(json!({
                "title": format!("record {i} — ü"),
                "score": i as f64 / 8.0,
                "year": 2000.0 + (i % 25) as f64,
                "public": i % 2 == 0,
                "tags": ["a", format!("t{}", i % 5)],
            }))
            .unwrap();
            Record {
                id: RecordId::String(format!("{namespace}-rec-{i:06}")),
                namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
                vectors: vec![
                    Some(Vector::Dense(
                        (0..16).map(|_| rng.f32() * 2.0 - 1.0).collect(),
                    )),
                    Some(Vector::Sparse(SparseVector {
                        indices: (0..k as u32).map(|j| j * 13 + 1).collect(),
                        values: (0..k).map(|_| rng.f32()).collect(),
                    })),
                ],
                metadata: Some(metadata),
                document: None,
                uri: None,
            }
        })
        .collect();
    for chunk in records.chunks(200) {
        for ns in ["", "alpha", "βeta"] {
            let vectors: Vec<Value> = chunk
                .iter()
                .filter(|r| r.namespace.as_deref().unwrap_or("") == ns)
                .map(|r| {
                    let (Some(Vector::Dense(d)), Some(Vector::Sparse(s))) = (&r.vectors[0], &r.vectors[1]) else { unreachable!() };
                    json!({"id": r.id.to_string(), "values": d, "sparseValues": {"indices": s.indices, "values": s.values}, "metadata": r.metadata})
                })
                .collect();
            if !vectors.is_empty() {
                post(
                    &http,
                    &format!("{host}/vectors/upsert"),
                    json!({"vectors": vectors, "namespace": ns}),
                )
                .await;
            }
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn three_namespaces_dense_and_sparse_round_trip() {
    let e = emulator().await;
    let written = sorted(seed(&e, "source-index", 10_002).await);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = format!("pinecone+http://{}", e.addr());
    export_quietly(&format!("{url}/source-index"), &a);
    vecport()
        .args(["verify", a.to_str().unwrap()])
        .assert()
        .success();
    let (snapshot, exported) = read_snapshot(&a);
    let c = &snapshot.manifest().collections[0];
    let mut counts: Vec<(Option<String>, u64)> = c
        .namespaces
        .iter()
        .map(|n| (n.name.clone(), n.records))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            (None, 3334),
            (Some("alpha".into()), 3334),
            (Some("βeta".into()), 3334)
        ]
    );
    assert_eq!(c.vectors[0].field.metric, Some(Metric::Dot));
    assert_eq!(
        data::first_difference(&written, &sorted(exported)),
        None,
        "export equals what was written"
    );

    import_quietly(&a, &format!("{url}/copy-index"));
    export_quietly(&format!("{url}/copy-index"), &b);
    let (copy, back) = read_snapshot(&b);
    assert_eq!(copy.manifest().collections[0].namespaces, c.namespaces);
    assert_eq!(
        data::first_difference(&written, &sorted(back)),
        None,
        "the new index holds the same records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_pinecone_cannot_take_is_refused_by_record() {
    let e = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    // Nested objects, nulls and lists of numbers.
    write_snapshot(
        &snap,
        &data::spec("nested", 8, Metric::Cosine),
        data::records(40, 8, 2, data::FULL),
    );
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("pinecone+http://{}/refused", e.addr()),
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("nothing was written")
                .and(predicate::str::contains("record \"plain\""))
                .and(predicate::str::contains("nested object")),
        );
    assert!(e.state().index_names().is_empty(), "no index was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_retried_without_losing_or_duplicating_records() {
    let e = emulator().await;
    let written = sorted(seed(&e, "flaky", 3000).await);
    // Data-plane requests answer 429, 503 or drop the connection at random
    // (a fixed seed; at most 60 faults so the test stays short).
    e.faults()
        .set(
            Faults {
                rate_limit: 0.1,
                retry_after_secs: 0,
                unavailable: 0.1,
                drop_connection: 0.1,
                seed: Some(7),
                ..Faults::none()
            }
            .under("/__index/")
            .at_most(60),
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = format!("pinecone+http://{}", e.addr());
    export_quietly(&format!("{url}/flaky"), &a);
    let during_export = e.faults().counts();
    vecport()
        .args(["import", a.to_str().unwrap(), &format!("{url}/flaky-copy")])
        .assert()
        .success()
        .stderr(
            predicate::str::is_match(r"vecport: [1-9][0-9]* request\(s\) were retried").unwrap(),
        );
    let counts = e.faults().counts();
    e.faults().clear();
    assert!(
        during_export.total() > 0,
        "faults hit the export: {during_export:?}"
    );
    assert!(
        counts.total() > during_export.total(),
        "and the import: {counts:?}"
    );
    assert!(
        counts.rate_limited > 0 && counts.unavailable > 0 && counts.dropped > 0,
        "{counts:?}"
    );
    let (_, exported) = read_snapshot(&a);
    assert_eq!(data::first_difference(&written, &sorted(exported)), None);
    export_quietly(&format!("{url}/flaky-copy"), &b);
    let (_, back) = read_snapshot(&b);
    assert_eq!(data::first_difference(&written, &sorted(back)), None);
}

/// Records that break Pinecone's rules in every way a policy can fix, and
/// two it cannot (an all-zero vector, a reserved key under `flatten`).
fn rule_breakers() -> Vec<Record> {
    let record = |id: &str, dense: [f32; 4], meta: Value| Record {
        id: RecordId::String(id.into()),
        namespace: None,
        vectors: vec![Some(Vector::Dense(dense.to_vec()))],
        metadata: Some(serde_json::from_value(meta).unwrap()),
        document: None,
        uri: None,
    };
    vec![
        record(
            "r-ok",
            [1.0, 0.0, 0.0, 0.0],
            json!({"t": "fine", "tags": ["a"]}),
        ),
        record(
            "r-nested",
            [0.0, 1.0, 0.0, 0.0],
            json!({"a": {"b": 1.5, "c": {"d": "x"}}, "t": "keep"}),
        ),
        record("r-null", [0.0, 0.0, 1.0, 0.0], json!({"n": null, "t": "x"})),
        record(
            "r-nums",
            [0.0, 0.0, 0.0, 1.0],
            json!({"l": [1, 2], "t": "y"}),
        ),
        record(
            "r-big",
            [1.0, 1.0, 0.0, 0.0],
            json!({"big": 1u64 << 60, "t": "z"}),
        ),
        record("r-zero", [0.0; 4], json!({"t": "zero"})),
        record(
            "r-reserved",
            [0.0, 1.0, 1.0, 0.0],
            json!({"__vecport_document": "mine", "t": "w"}),
        ),
    ]
}

/// `(id, change, key)` of every line of a change report.
fn report_lines(path: &std::path::Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<_> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["collection"], "breakers");
            assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
            let key = v["key"].as_str().unwrap_or("").to_owned();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["change"].as_str().unwrap().to_owned(),
                key,
            )
        })
        .collect();
    lines.sort();
    lines
}

fn exported_metadata(e: &PineconeEmulator, index: &str, dir: &std::path::Path) -> Value {
    export_quietly(&format!("pinecone+http://{}/{index}", e.addr()), dir);
    let (_, records) = read_snapshot(dir);
    Value::Object(
        records
            .into_iter()
            .map(|r| {
                (
                    r.id.to_string(),
                    Value::Object(r.metadata.unwrap_or_default()),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_policies_fit_records_and_report_every_change() {
    let e = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("breakers", 4, Metric::Cosine),
        rule_breakers(),
    );
    let url = |index: &str| format!("pinecone+http://{}/{index}", e.addr());
    let no_reports = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .all(|f| !f.unwrap().file_name().to_string_lossy().contains("changes"))
    };

    // Refused by default: every offending record named, nothing written.
    vecport()
        .args(["import", snap.to_str().unwrap(), &url("refused")])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("nothing was written")
                .and(predicate::str::contains(
                    "\"r-nested\": metadata `a` holds a nested object",
                ))
                .and(predicate::str::contains("\"r-null\": metadata `n` is null"))
                .and(predicate::str::contains(
                    "\"r-nums\": metadata `l` is a list of non-strings",
                ))
                .and(predicate::str::contains(
                    "\"r-big\": metadata `big` holds 1152921504606846976",
                ))
                .and(predicate::str::contains("\"r-zero\""))
                .and(predicate::str::contains("\"r-reserved\""))
                .and(predicate::str::contains("r-ok").not())
                .and(predicate::str::contains("--metadata flatten|encode|drop")),
        );
    // A policy alone does not skip what it cannot fix; nothing is left behind.
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &url("refused"),
            "--metadata",
            "flatten",
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("\"r-zero\": its dense vector is all zeros")
                .and(predicate::str::contains(
                    "\"r-reserved\": metadata key \"__vecport_document\" is reserved",
                ))
                .and(predicate::str::contains("r-nested").not()),
        );
    assert!(e.state().index_names().is_empty(), "no index was created");
    assert!(no_reports(), "a refused import leaves no change report");

    // flatten + skip: fitted, and every change listed.
    let report = tmp.path().join("flatten.jsonl");
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &url("flat"),
            "--metadata",
            "flatten",
            "--skip-invalid",
        ])
        .arg("--changes")
        .arg(&report)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("5 records written, target counts 5")
                .and(predicate::str::contains(
                    "1 metadata value flattened, 3 metadata values encoded, 2 records skipped",
                ))
                .and(predicate::str::contains(report.to_str().unwrap())),
        );
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        report_lines(&report),
        [
            s("r-big", "encoded", "big"),
            s("r-nested", "flattened", "a"),
            s("r-null", "encoded", "n"),
            s("r-nums", "encoded", "l"),
            s("r-reserved", "skipped", ""),
            s("r-zero", "skipped", ""),
        ]
    );
    assert_eq!(
        exported_metadata(&e, "flat", &tmp.path().join("flat")),
        json!({
            "r-big": {"big": "1152921504606846976", "t": "z"},
            "r-nested": {"a.b": 1.5, "a.c.d": "x", "t": "keep"},
            "r-nums": {"l": "[1,2]", "t": "y"},
            "r-null": {"n": "null", "t": "x"},
            "r-ok": {"t": "fine", "tags": ["a"]},
        })
    );

    // drop + skip, with the report in its default place beside the snapshot.
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &url("dropped"),
            "--metadata",
            "drop",
            "--skip-invalid",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "6 records written, target counts 6",
        ));
    let beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("s.changes-") && name.ends_with(".jsonl")
        })
        .collect();
    assert_eq!(beside.len(), 1, "one report beside the snapshot");
    assert_eq!(
        report_lines(&beside[0]),
        [
            s("r-big", "dropped", "big"),
            s("r-nested", "dropped", "a"),
            s("r-null", "dropped", "n"),
            s("r-nums", "dropped", "l"),
            s("r-reserved", "dropped", "__vecport_document"),
            s("r-zero", "skipped", ""),
        ]
    );
    assert_eq!(
        exported_metadata(&e, "dropped", &tmp.path().join("dropped")),
        json!({
            "r-big": {"t": "z"},
            "r-nested": {"t": "keep"},
            "r-nums": {"t": "y"},
            "r-null": {"t": "x"},
            "r-ok": {"t": "fine", "tags": ["a"]},
            "r-reserved": {"t": "w"},
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_two_megabytes_are_split() {
    let e = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    // 1,500 × 768 floats: 1,000 records would be ~8 MB, four times Pinecone's limit.
    let records: Vec<Record> = data::records(1500, 768, 3, data::PINECONE)
        .into_iter()
        .map(|mut r| {
            if let Some(Vector::Dense(d)) = &mut r.vectors[0] {
                d.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0) + 2.0);
            }
            r
        })
        .collect();
    write_snapshot(&snap, &data::spec("wide", 768, Metric::Cosine), records);
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("pinecone+http://{}/wide", e.addr()),
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1500 records written, target counts 1500",
        ));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_of_what_the_official_sdk_wrote_equals_it() {
    let e = emulator().await;
    let Some(summary) = crate::pinecone_emulator::run_pinecone_sdk_scenario(e.base_url()).await
    else {
        return;
    };
    let index = summary["index"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("sdk");
    export_quietly(&format!("pinecone+http://{}/{index}", e.addr()), &snap);
    let (_, records) = read_snapshot(&snap);
    let mut expected = 0;
    for (ns, list) in summary["namespaces"].as_object().unwrap() {
        let ns = (!ns.is_empty() && ns != "__default__").then(|| ns.clone());
        for v in list.as_array().unwrap() {
            expected += 1;
            let id = v["id"].as_str().unwrap();
            let r = records
                .iter()
                .find(|r| r.namespace == ns && r.id.to_string() == id)
                .unwrap_or_else(|| panic!("{ns:?}/{id} missing"));
            let values: Vec<f32> = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(
                r.vectors[0].as_ref().and_then(Vector::as_dense),
                Some(values.as_slice()),
                "{id}"
            );
            assert_eq!(
                r.metadata.clone().map(Value::Object).unwrap_or(Value::Null),
                v.get("metadata").cloned().unwrap_or(Value::Null),
                "{id}"
            );
        }
    }
    assert_eq!(records.len(), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_indexes_need_ids_from_a_file() {
    let e = emulator().await;
    let http = reqwest::Client::new();
    let model = post(&http, &format!("{}/indexes", e.base_url()), json!({
        "name": "pods", "dimension": 4, "metric": "cosine",
        "spec": {"pod": {"environment": "us-east1-gcp", "pod_type": "p1.x1", "pods": 1, "replicas": 1, "shards": 1}}
    }))
    .await;
    let host = model["host"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for ns in ["", "north"] {
        let vectors: Vec<Value> = (0..15)
            .map(|i| {
                ids.push(format!("p-{i}"));
                json!({"id": format!("p-{i}"), "values": [1.0, i as f32, 0.5, -0.25], "metadata": {"ns": ns}})
            })
            .collect();
        post(
            &http,
            &format!("{host}/vectors/upsert"),
            json!({"vectors": vectors, "namespace": ns}),
        )
        .await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("pinecone+http://{}/pods", e.addr());
    vecport()
        .args(["export", &url, tmp.path().join("a").to_str().unwrap()])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("pod-based indexes cannot list ids")
                .and(predicate::str::contains("--ids-from")),
        );
    assert!(!tmp.path().join("a").exists());

    ids.sort();
    ids.dedup();
    ids.push("not-there".into());
    let file = tmp.path().join("ids.txt");
    std::fs::write(&file, ids.join("\n") + "\n").unwrap();
    let snap = tmp.path().join("b");
    vecport()
        .args([
            "export",
            &url,
            snap.to_str().unwrap(),
            "-q",
            "--ids-from",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    let (snapshot, records) = read_snapshot(&snap);
    assert_eq!(records.len(), 30, "15 ids in each of two namespaces");
    let mut counts: Vec<(Option<String>, u64)> = snapshot.manifest().collections[0]
        .namespaces
        .iter()
        .map(|n| (n.name.clone(), n.records))
        .collect();
    counts.sort();
    assert_eq!(counts, [(None, 15), (Some("north".into()), 15)]);
    vecport()
        .args([
            "export",
            "qdrant://127.0.0.1:9/x",
            tmp.path().join("c").to_str().unwrap(),
            "--ids-from",
            file.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--ids-from is for sources that cannot list ids",
        ));
}
