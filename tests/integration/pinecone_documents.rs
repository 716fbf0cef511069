//! Pinecone document indexes (API 2026-07) end to end through the CLI,
//! against the Pinecone emulator and proven with the official SDK
//! (`tests/sdk/pinecone_documents_sdk.py`, pinecone 10.2.0); and what an
//! import into either kind of index checks before it creates anything, and
//! removes again when it fails before writing.

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::model::{Metric, Record, RecordId, Vector};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::emulators::Faults;
use crate::emulators::pinecone::{self as emu, PineconeEmulator, PineconeOptions};
use crate::support::chroma::Trip;
use crate::support::cli::{export_quietly, import_quietly, plain_records, vecport};
use crate::support::data;

async fn emulator(document_lag_reads: u32) -> PineconeEmulator {
    emu::start(PineconeOptions {
        stats_lag_reads: 0,
        document_lag_reads,
        ..Default::default()
    })
    .await
    .expect("start the Pinecone emulator")
}

/// Runs `tests/sdk/pinecone_documents_sdk.py` on `index` in `mode`
/// (`seed` or `read`) and returns its summary: `schema` (describe's),
/// `namespaces` (namespace → every document, in id order), `checks`.
/// `None` (skipped) without the SDK, except under CI.
async fn sdk(base_url: &str, index: &str, mode: &str) -> Option<Value> {
    crate::support::sdk::run_scenario(crate::support::sdk::Scenario {
        script: "pinecone_documents_sdk.py",
        imports: "pinecone",
        package: "pinecone==10.2.0",
        env: vec![
            ("PINECONE_URL", base_url.to_owned()),
            ("PINECONE_API_KEY", "k".to_owned()),
            ("PINECONE_SDK_INDEX", index.to_owned()),
            ("PINECONE_SDK_MODE", mode.to_owned()),
        ],
        summary_env: "PINECONE_SDK_SUMMARY",
    })
    .await
}

/// A document's dense values as f32 (what Pinecone stores), the rest as it is.
fn as_stored(doc: &Value) -> Value {
    let mut d = doc.clone();
    if let Some(v) = d.get_mut("embedding") {
        *v = json!(
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect::<Vec<f32>>()
        );
    }
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_index_the_sdk_filled_comes_back_with_its_schema_and_documents() {
    let e = emulator(2).await;
    let Some(seeded) = sdk(e.base_url(), "sdk-docs", "seed").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("docs");
    let url = format!("pinecone+http://{}", e.addr());
    export_quietly(&format!("{url}/sdk-docs?document_field=body"), &snap);
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(records.len(), 10_200);
    assert_eq!(c.vectors.len(), 1, "one dense field, no sparse one");
    // The one dense field is the snapshot's unnamed field; its name is in
    // the raw configuration.
    assert_eq!(c.vectors[0].field.name, "");
    assert!(c.raw_config["schema"]["fields"]["embedding"].is_object());
    assert_eq!(c.vectors[0].field.dimension, Some(8));
    assert_eq!(c.vectors[0].field.metric, Some(Metric::Cosine));
    assert!(
        records.iter().all(|r| r.document.is_some()),
        "body is the documents"
    );
    let notes = c.notes.join("\n");
    assert!(
        notes.contains("full-text field \"body\": language en, stemming on, stop words on"),
        "{notes}"
    );
    assert!(notes.contains("n-grams 2–3"), "{notes}");
    assert!(
        notes.contains("the dense field \"embedding\" is the snapshot's unnamed vector field"),
        "{notes}"
    );
    let mut namespaces: Vec<Option<String>> = c.namespaces.iter().map(|n| n.name.clone()).collect();
    namespaces.sort();
    assert_eq!(namespaces, [None, Some("tenant-b".to_owned())]);

    // A snapshot of a document index makes a document index again, with
    // the same schema, without being told.
    import_quietly(&snap, &format!("{url}/sdk-docs-copy"));
    let Some(copy) = sdk(e.base_url(), "sdk-docs-copy", "read").await else {
        return;
    };
    assert_eq!(
        copy["schema"], seeded["schema"],
        "describe shows the same schema"
    );
    let (want, got) = (
        seeded["namespaces"].as_object().unwrap(),
        copy["namespaces"].as_object().unwrap(),
    );
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (ns, docs) in want {
        let (docs, back) = (docs.as_array().unwrap(), got[ns].as_array().unwrap());
        assert_eq!(docs.len(), back.len(), "{ns}");
        for (a, b) in docs.iter().zip(back) {
            assert_eq!(as_stored(a), as_stored(b), "{ns}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_to_a_document_index_and_back() {
    let Some(chroma) = Trip::seed("to-pinecone-docs", &plain_records(600, 16, 43)).await else {
        return;
    };
    let e = emulator(1).await;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = format!("pinecone+http://{}", e.addr());
    chroma.export(&a);
    import_quietly(&a, &format!("{url}/from-chroma?kind=document"));
    // In Pinecone: a document index whose schema has the dense field and a
    // full-text field for the documents; metadata undeclared.
    let model: Value = serde_json::from_str(
        &reqwest::get(format!("{}/indexes/from-chroma", e.base_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        model["schema"]["fields"]["vector"]["type"], "dense_vector",
        "{model}"
    );
    assert_eq!(model["schema"]["fields"]["vector"]["metric"], "euclidean");
    assert_eq!(model["schema"]["fields"]["document"]["type"], "string");
    assert!(
        !model["schema"]["fields"]["document"]["full_text_search"].is_null(),
        "{model}"
    );
    assert_eq!(model["schema"]["fields"].as_object().unwrap().len(), 2);
    assert_eq!(
        e.state().document_count("from-chroma", "__default__"),
        Some(600)
    );
    export_quietly(&format!("{url}/from-chroma"), &b);
    chroma
        .assert_imported_back(
            &b,
            "from-pinecone-docs",
            0,
            "chroma → pinecone documents → chroma",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_count_waits_until_upserted_documents_are_visible() {
    // Each upsert stays invisible for the next 25 document reads.
    let e = emulator(25).await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("c", 8, Metric::Dot),
        plain_records(2500, 8, 3),
    );
    let url = format!("pinecone+http://{}/late?kind=document", e.addr());
    vecport()
        .args(["import", snap.to_str().unwrap(), &url])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "2500 records written, target counts 2500",
        ));
}

/// One record of dimension `dim` with id `id` and metadata `metadata`.
fn record(id: &str, dim: usize, metadata: Value) -> Record {
    Record {
        id: RecordId::String(id.into()),
        namespace: None,
        vectors: vec![Some(Vector::Dense(
            (0..dim).map(|i| 0.5 + i as f32 / 4.0).collect(),
        ))],
        metadata: metadata.as_object().cloned(),
        document: None,
        uri: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_pinecone_refuses_is_refused_before_the_index_is_created() {
    let e = emulator(0).await;
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("pinecone+http://{}", e.addr());
    let cases: Vec<(&str, &str, Vec<Record>, u32, &str)> = vec![
        (
            "ascii",
            "document",
            vec![record("ok", 4, json!({})), record("naïve", 4, json!({}))],
            4,
            "1 to 512 ASCII characters",
        ),
        (
            "reserved",
            "document",
            vec![record("a", 4, json!({"_private": 1}))],
            4,
            "which pinecone document indexes reserve",
        ),
        (
            "taken",
            "document",
            vec![record("a", 4, json!({"vector": "x"}))],
            4,
            "is also the name of a field",
        ),
        (
            "oversize",
            "document",
            vec![record("a", 4, json!({"t": "x".repeat(41_000)}))],
            4,
            "over pinecone's 40 KB",
        ),
        (
            "long-id",
            "legacy",
            vec![record(&"x".repeat(513), 4, json!({}))],
            4,
            "1 to 512 characters",
        ),
        (
            "too-wide",
            "legacy",
            vec![record("a", 20_001, json!({}))],
            20_001,
            "dimension 20001",
        ),
        (
            "too-wide-docs",
            "document",
            vec![record("a", 20_001, json!({}))],
            20_001,
            "dimension 20001",
        ),
    ];
    for (name, kind, records, dim, message) in cases {
        let snap = tmp.path().join(name);
        write_snapshot(&snap, &data::spec("c", dim, Metric::Cosine), records);
        vecport()
            .args([
                "import",
                snap.to_str().unwrap(),
                &format!("{url}/{name}?kind={kind}"),
                "-q",
            ])
            .assert()
            .failure()
            .stderr(predicate::str::contains(message));
        assert!(
            !e.state().index_names().contains(&name.to_owned()),
            "{name}: no index was created"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_import_removes_the_index_it_created_and_never_one_that_was_there() {
    let e = emulator(0).await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("c", 4, Metric::Cosine),
        plain_records(40, 4, 5),
    );
    let url = format!("pinecone+http://{}", e.addr());
    // Indexes that exist before the failing imports.
    import_quietly(&snap, &format!("{url}/kept-legacy?kind=legacy"));
    import_quietly(&snap, &format!("{url}/kept-docs?kind=document"));
    // Every data-plane request fails from here on.
    e.faults()
        .set(Faults::always_unavailable().under("/__index/"))
        .unwrap();
    for (target, kind) in [("made-legacy", "legacy"), ("made-docs", "document")] {
        vecport()
            .args([
                "import",
                snap.to_str().unwrap(),
                &format!("{url}/{target}?kind={kind}"),
                "--retries",
                "0",
                "-q",
            ])
            .assert()
            .failure()
            .stderr(predicate::str::contains(format!(
                "the collection `{target}` this import created was removed again"
            )));
        assert!(
            !e.state().index_names().contains(&target.to_owned()),
            "{kind}: the index this import created is gone"
        );
    }
    for (target, kind) in [("kept-legacy", "legacy"), ("kept-docs", "document")] {
        vecport()
            .args([
                "import",
                snap.to_str().unwrap(),
                &format!("{url}/{target}?kind={kind}"),
                "--if-exists",
                "append",
                "--retries",
                "0",
                "-q",
            ])
            .assert()
            .failure();
        assert!(
            e.state().index_names().contains(&target.to_owned()),
            "{kind}: an index that was there before is never removed"
        );
    }
    e.faults().clear();
    assert_eq!(e.state().record_count("kept-legacy", ""), Some(40));
    assert_eq!(
        e.state().document_count("kept-docs", "__default__"),
        Some(40)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kinds_are_named_and_told_apart() {
    let e = emulator(0).await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("c", 4, Metric::Cosine),
        plain_records(10, 4, 9),
    );
    let url = format!("pinecone+http://{}", e.addr());
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("{url}/x?kind=vectors"),
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("kind=document").and(predicate::str::contains("kind=legacy")),
        );
    // Without ?kind=, a snapshot of another database makes a legacy vector
    // index, as before.
    import_quietly(&snap, &format!("{url}/plain"));
    assert_eq!(e.state().record_count("plain", ""), Some(10));
    // Appending a document import to a legacy index is refused, naming the kind.
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("{url}/plain?kind=document"),
            "--if-exists",
            "append",
        ])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("is a legacy vector index")
                .and(predicate::str::contains("?kind=legacy")),
        );
    // `vecport ls` lists both kinds with their dimension.
    import_quietly(&snap, &format!("{url}/docs?kind=document"));
    vecport()
        .args(["ls", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains("docs").and(predicate::str::contains("plain")));
}
