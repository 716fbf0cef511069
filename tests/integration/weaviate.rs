//! The Weaviate connector end to end against the Weaviate emulator, through
//! the CLI; data is seeded with raw HTTP written here.

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::model::{IdKind, Metric, Record, RecordId, Vector, VectorKind};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::emulators::weaviate::{self as emu, WeaviateEmulator, WeaviateOptions};
use crate::support::chroma::Trip;
use crate::support::cli::{export_quietly, sorted, vecport};
use crate::support::data::{self, WEAVIATE};
use crate::support::http::post;

/// Batch-imports objects, asserting every object succeeded.
async fn batch(http: &reqwest::Client, e: &WeaviateEmulator, objects: Vec<Value>) {
    for chunk in objects.chunks(500) {
        let answer = post(
            http,
            &format!("{}/v1/batch/objects", e.base_url()),
            json!({"objects": chunk}),
        )
        .await;
        for o in answer.as_array().unwrap() {
            assert!(o["result"].get("errors").is_none(), "{o}");
        }
    }
}

fn uuid_of(class: &str, i: usize) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{class}-{i}").as_bytes(),
    )
    .to_string()
}

fn floats(rng: &mut fastrand::Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

/// A multi-tenant class `Articles` (3 tenants × 2,500 objects, default
/// vector of 8, nested properties) and a class `Media` with two named
/// vectors (2,600 objects): 10,100 objects in all.
async fn seed(e: &WeaviateEmulator) {
    let http = reqwest::Client::new();
    let base = e.base_url();
    post(
        &http,
        &format!("{base}/v1/schema"),
        json!({
            "class": "Articles",
            "description": "news articles",
            "vectorizer": "none",
            "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "cosine", "efConstruction": 64, "maxConnections": 16},
            "multiTenancyConfig": {"enabled": true},
            "properties": [
                {"name": "title", "dataType": ["text"]},
                {"name": "year", "dataType": ["int"]},
                {"name": "score", "dataType": ["number"]},
                {"name": "published", "dataType": ["date"]},
                {"name": "tags", "dataType": ["text[]"]},
                {"name": "author", "dataType": ["object"], "nestedProperties": [
                    {"name": "name", "dataType": ["text"]},
                    {"name": "age", "dataType": ["int"]},
                    {"name": "links", "dataType": ["text[]"]}
                ]}
            ]
        }),
    )
    .await;
    post(
        &http,
        &format!("{base}/v1/schema/Articles/tenants"),
        json!([{"name": "alpha"}, {"name": "beta"}, {"name": "gamma"}]),
    )
    .await;
    post(
        &http,
        &format!("{base}/v1/schema"),
        json!({
            "class": "Media",
            "vectorConfig": {
                "text": {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw",
                         "vectorIndexConfig": {"distance": "dot", "maxConnections": 24}},
                "image": {"vectorizer": {"none": {}}, "vectorIndexType": "flat",
                          "vectorIndexConfig": {"distance": "l2-squared"}}
            },
            "properties": [{"name": "caption", "dataType": ["text"]}, {"name": "width", "dataType": ["int"]}]
        }),
    )
    .await;
    let mut rng = fastrand::Rng::with_seed(5);
    let mut objects = Vec::new();
    for (t, tenant) in ["alpha", "beta", "gamma"].iter().enumerate() {
        for i in 0..2500 {
            let n = t * 2500 + i;
            objects.push(json!({
                "class": "Articles",
                "tenant": tenant,
                "id": uuid_of("Articles", n),
                "vector": floats(&mut rng, 8),
                "properties": {
                    "title": format!("article {n} — ü"),
                    "year": 1990 + (n % 35) as i64,
                    "score": n as f64 / 4.0 + 0.125,
                    "published": format!("20{:02}-0{}-1{}T0{}:30:00Z", n % 25, n % 9 + 1, n % 10, n % 10),
                    "tags": ["news", format!("t{}", n % 7)],
                    "author": {"name": format!("writer {}", n % 13), "age": 20 + (n % 50) as i64, "links": ["a", "b"]}
                }
            }));
        }
    }
    for i in 0..2600 {
        objects.push(json!({
            "class": "Media",
            "id": uuid_of("Media", i),
            "vectors": {"text": floats(&mut rng, 6), "image": floats(&mut rng, 4)},
            "properties": {"caption": format!("picture {i}"), "width": 100 + i as i64}
        }));
    }
    batch(&http, e, objects).await;
}

/// Every collection of a snapshot: name → records, sorted.
fn collections(dir: &std::path::Path) -> Vec<(String, Vec<Record>)> {
    let s = vecport::snapshot::Snapshot::open(dir).unwrap();
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    s.manifest()
        .collections
        .iter()
        .map(|c| {
            let records = s.records(c, 1000).flat_map(Result::unwrap).collect();
            (c.name.clone(), sorted(records))
        })
        .collect()
}

/// A class definition without its name, to compare two classes.
fn definition(e: &WeaviateEmulator, class: &str) -> Value {
    let mut c = e.state().class_schema(class).unwrap();
    c.as_object_mut().unwrap().remove("class");
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_named_vectors_and_nested_properties_round_trip() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    seed(&e).await;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let url = format!("weaviate://{}", e.addr());
    export_quietly(&url, &a);

    let s = vecport::snapshot::Snapshot::open(&a).unwrap();
    let m = s.manifest();
    let names: Vec<&str> = m.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Articles", "Media"]);
    let articles = &m.collections[0];
    assert_eq!(articles.record_count, 7500);
    assert_eq!(articles.id_kind, IdKind::Uuid);
    let mut counts: Vec<(Option<String>, u64)> = articles
        .namespaces
        .iter()
        .map(|n| (n.name.clone(), n.records))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            (Some("alpha".into()), 2500),
            (Some("beta".into()), 2500),
            (Some("gamma".into()), 2500)
        ]
    );
    let f = &articles.vectors[0].field;
    assert_eq!(
        (f.name.as_str(), f.dimension, f.metric),
        ("", Some(8), Some(Metric::Cosine))
    );
    let ix = f.index.as_ref().unwrap();
    assert_eq!(
        (ix.kind.as_str(), ix.m, ix.ef_construction),
        ("hnsw", Some(16), Some(64))
    );
    let media = &m.collections[1];
    let fields: Vec<_> = media
        .vectors
        .iter()
        .map(|v| {
            (
                v.field.name.as_str(),
                v.field.kind,
                v.field.dimension,
                v.field.metric,
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("text", VectorKind::Dense, Some(6), Some(Metric::Dot)),
            ("image", VectorKind::Dense, Some(4), Some(Metric::L2)),
        ]
    );
    assert_eq!(media.vectors[1].field.index.as_ref().unwrap().kind, "flat");

    // What was exported is what the emulator holds, object by object.
    let exported = collections(&a);
    for tenant in ["alpha", "beta", "gamma"] {
        let held = e.state().objects("Articles", Some(tenant));
        let mine: Vec<&Record> = exported[0]
            .1
            .iter()
            .filter(|r| r.namespace.as_deref() == Some(tenant))
            .collect();
        assert_eq!(held.len(), mine.len());
        for (o, r) in held.iter().zip(mine) {
            assert_eq!(r.id.to_string(), o["id"].as_str().unwrap());
            let want: Vec<f32> = serde_json::from_value(o["vector"].clone()).unwrap();
            assert_eq!(r.vectors[0], Some(Vector::Dense(want)));
            assert_eq!(
                Value::Object(r.metadata.clone().unwrap()),
                o["properties"],
                "{}",
                r.id
            );
        }
    }

    // Into new classes on the same server, and out again: equal.
    vecport()
        .args([
            "import",
            a.to_str().unwrap(),
            &url,
            "--rename",
            "Articles=ArticlesCopy",
            "--rename",
            "Media=MediaCopy",
            "-q",
        ])
        .assert()
        .success();
    for (from, to) in [("Articles", "ArticlesCopy"), ("Media", "MediaCopy")] {
        assert_eq!(
            definition(&e, from),
            definition(&e, to),
            "{to} has {from}'s schema"
        );
    }
    assert_eq!(
        e.state().tenants("ArticlesCopy"),
        ["alpha", "beta", "gamma"]
    );
    vecport()
        .args([
            "export",
            &url,
            b.to_str().unwrap(),
            "--collection",
            "ArticlesCopy",
            "--collection",
            "MediaCopy",
            "-q",
        ])
        .assert()
        .success();
    let copied = collections(&b);
    for ((_, want), (_, got)) in exported.iter().zip(&copied) {
        assert_eq!(data::first_difference(want, got), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_to_weaviate_and_back_restores_ids_metadata_and_documents() {
    // Awkward ids, every flat metadata type, keys Weaviate renames, documents.
    let mut written = data::records(600, 16, 29, WEAVIATE);
    for (i, r) in written.iter_mut().enumerate() {
        if let Some(m) = &mut r.metadata {
            m.insert("Odd-Key".into(), json!(i as i64));
        }
    }
    let Some(chroma) = Trip::seed("to-weaviate", &written).await else {
        return;
    };
    let original = &chroma.records;

    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (snap_a, snap_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let weaviate = format!("weaviate://{}", e.addr());
    chroma.export(&snap_a);
    vecport()
        .args([
            "import",
            snap_a.to_str().unwrap(),
            &format!("{weaviate}/from-chroma"),
        ])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("imported as class `From_chroma`")
                .and(predicate::str::contains("metadata keys renamed")),
        );
    // In Weaviate: UUIDs, the original ids and documents in properties.
    let held = e.state().objects("From_chroma", None);
    assert_eq!(held.len(), original.len());
    assert!(
        held.iter()
            .all(|o| o["properties"]["vecport_id"].is_string())
    );
    let with_metadata = original.iter().filter(|r| r.metadata.is_some()).count();
    let renamed = held
        .iter()
        .filter(|o| o["properties"].get("odd_Key").is_some())
        .count();
    assert_eq!(renamed, with_metadata, "`Odd-Key` is held as `odd_Key`");

    chroma.assert_exported(
        &format!("{weaviate}/From_chroma"),
        &snap_b,
        0,
        "Chroma → Weaviate → snapshot",
    );
    chroma
        .assert_imported_back(
            &snap_b,
            "back-from-weaviate",
            1,
            "Chroma → Weaviate → Chroma",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_weaviate_rejects_are_named_and_nothing_is_claimed() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    e.set_auto_schema(false);
    let http = reqwest::Client::new();
    post(
        &http,
        &format!("{}/v1/schema", e.base_url()),
        json!({"class": "Strict", "vectorizer": "none",
               "vectorIndexConfig": {"distance": "l2-squared"},
               "properties": [{"name": "n", "dataType": ["int"]}, {"name": "vecport_id", "dataType": ["text"]}]}),
    )
    .await;
    // Every fifth record has a text where Weaviate's schema wants an int.
    let records: Vec<Record> = (0..50)
        .map(|i| {
            let mut r = Record::dense(RecordId::String(format!("r-{i:02}")), vec![i as f32, 1.0]);
            let n = if i % 5 == 0 {
                json!(format!("n{i}"))
            } else {
                json!(i)
            };
            r.metadata = Some(serde_json::from_value(json!({"n": n})).unwrap());
            r
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(&snap, &data::spec("strict", 2, Metric::L2), records);
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("weaviate://{}/Strict", e.addr()),
            "--if-exists",
            "append",
            "--concurrency",
            "1",
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("weaviate rejected 10 of 50 objects")
                .and(predicate::str::contains("record \"r-00\""))
                .and(predicate::str::contains("record \"r-45\""))
                .and(predicate::str::contains("imported `").not()),
        );
    assert_eq!(
        e.state().object_count("Strict", None),
        40,
        "only the valid objects are held"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_with_sparse_values_is_refused() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    // Tenant names Weaviate takes.
    let records: Vec<Record> = data::rich_records(20, 1)
        .into_iter()
        .map(|mut r| {
            r.namespace = r
                .namespace
                .map(|n| if n.is_ascii() { n } else { "tenant_2".into() });
            r
        })
        .collect();
    write_snapshot(&snap, &data::rich_spec("sparse"), records);
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("weaviate://{}", e.addr()),
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("sparse vectors")
                .and(predicate::str::contains("nothing was written")),
        );
    assert!(e.state().class_names().is_empty());
    // Left out on request: the import says so, and the rest arrives.
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("weaviate://{}", e.addr()),
            "--drop-vector",
            "keywords",
            "--drop-vector",
            "colbert",
            "--metadata",
            "encode",
        ])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("\"keywords\", \"colbert\" left out as asked").and(
                predicate::str::contains("20 records written, target counts 20"),
            ),
        );
    let schema = e.state().class_schema("Sparse").unwrap();
    let mut named: Vec<&str> = schema["vectorConfig"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    named.sort();
    assert_eq!(named, ["text"], "the dense field alone");
}

#[tokio::test(flavor = "multi_thread")]
async fn creation_and_update_times_are_exported_on_request() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    let http = reqwest::Client::new();
    let objects: Vec<Value> = (0..3)
        .map(|i| {
            json!({"class": "Timed", "id": uuid_of("Timed", i), "vector": [1.0, i as f32],
                   "properties": {"n": i}})
        })
        .collect();
    batch(&http, &e, objects).await;
    let tmp = tempfile::tempdir().unwrap();
    let (plain, timed) = (tmp.path().join("plain"), tmp.path().join("timed"));
    let url = format!("weaviate://{}/Timed", e.addr());
    export_quietly(&url, &plain);
    export_quietly(&format!("{url}?timestamps=true"), &timed);
    let (_, without) = read_snapshot(&plain);
    assert!(without.iter().all(|r| {
        !r.metadata
            .as_ref()
            .unwrap()
            .contains_key("_creationTimeUnix")
    }));
    let (_, with) = read_snapshot(&timed);
    let held = e.state().objects("Timed", None);
    for (r, o) in sorted(with).iter().zip(&held) {
        let m = r.metadata.as_ref().unwrap();
        for key in ["creationTimeUnix", "lastUpdateTimeUnix"] {
            let want = &o[key];
            let want = want
                .as_i64()
                .or_else(|| want.as_str().and_then(|s| s.parse().ok()));
            assert_eq!(m[&format!("_{key}")].as_i64(), want, "{key} of {}", r.id);
        }
    }
    // Weaviate sets these itself: importing them back needs --metadata drop.
    vecport()
        .args([
            "import",
            timed.to_str().unwrap(),
            &format!("weaviate://{}/Again", e.addr()),
        ])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "\"_creationTimeUnix\" is a time Weaviate sets itself",
        ));
    vecport()
        .args([
            "import",
            timed.to_str().unwrap(),
            &format!("weaviate://{}/Again", e.addr()),
            "--metadata",
            "drop",
        ])
        .assert()
        .success();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_goes_as_a_bearer_token_and_never_into_output() {
    let e = emu::start(WeaviateOptions {
        api_key: Some("s3cret-weaviate-key".into()),
        ..WeaviateOptions::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("keyed", 4, Metric::Dot),
        data::records(30, 4, 2, WEAVIATE),
    );
    let url = format!("weaviate://{}/Keyed", e.addr());
    vecport()
        .env("WEAVIATE_API_KEY", "s3cret-weaviate-key")
        .args(["import", snap.to_str().unwrap(), &url, "-vv"])
        .assert()
        .success()
        .stderr(predicate::str::contains("s3cret").not());
    assert_eq!(e.state().object_count("Keyed", None), 30);
    vecport()
        .env("WEAVIATE_API_KEY", "wrong-key-value")
        .args([
            "export",
            &url,
            tmp.path().join("out").to_str().unwrap(),
            "-vv",
        ])
        .assert()
        .code(5)
        .stderr(
            predicate::str::contains("WEAVIATE_API_KEY")
                .and(predicate::str::contains("wrong-key-value").not()),
        );
    let out = tmp.path().join("ok");
    vecport()
        .env("WEAVIATE_API_KEY", "s3cret-weaviate-key")
        .args(["export", &url, out.to_str().unwrap(), "-q"])
        .assert()
        .success();
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(!manifest.contains("s3cret") && manifest.contains("\"weaviate\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_without_a_counterpart_are_named() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    let mut spec = data::spec("tuned", 4, Metric::L2);
    spec.vectors[0].index = Some(vecport::model::IndexSettings {
        kind: "hnsw".into(),
        m: Some(24),
        ef_construction: Some(80),
        ef_search: Some(50),
        quantization: Some(json!({"scalar": {"type": "int8"}})),
        ..Default::default()
    });
    write_snapshot(&snap, &spec, data::records(10, 4, 1, WEAVIATE));
    vecport()
        .args(["import", snap.to_str().unwrap(), &format!("weaviate://{}/Tuned", e.addr())])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "vector \"\": weaviate has no counterpart for the source's quantization {\"scalar\":{\"type\":\"int8\"}}",
        ));
    let config = &e.state().class_schema("Tuned").unwrap()["vectorIndexConfig"];
    assert_eq!(
        (
            &config["maxConnections"],
            &config["efConstruction"],
            &config["ef"],
            &config["distance"]
        ),
        (&json!(24), &json!(80), &json!(50), &json!("l2-squared")),
        "HNSW settings carried over"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_of_what_the_official_client_wrote_equals_it() {
    let e = emu::start(WeaviateOptions::default()).await.unwrap();
    let Some(summary) =
        crate::weaviate_emulator::run_weaviate_sdk_scenario(e.base_url(), None).await
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("sdk");
    export_quietly(&format!("weaviate://{}", e.addr()), &snap);
    let exported: std::collections::BTreeMap<String, Vec<Record>> =
        collections(&snap).into_iter().collect();
    let mut seen = 0;
    for (key, objects) in summary["objects"].as_object().unwrap() {
        let (class, tenant) = match key.split_once('/') {
            Some((c, t)) => (c, Some(t.to_owned())),
            None => (key.as_str(), None),
        };
        let s = vecport::snapshot::Snapshot::open(&snap).unwrap();
        let c = s
            .collection(class)
            .unwrap_or_else(|| panic!("{class} exported"));
        let slot = |name: &str| c.vectors.iter().position(|v| v.field.name == name).unwrap();
        let records = &exported[class];
        for o in objects.as_array().unwrap() {
            seen += 1;
            let id = RecordId::Uuid(uuid::Uuid::parse_str(o["id"].as_str().unwrap()).unwrap());
            let r = records
                .iter()
                .find(|r| r.id == id && r.namespace == tenant)
                .unwrap_or_else(|| panic!("{key}/{id} missing"));
            let f32s = |v: &Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            if let Some(v) = o
                .get("vector")
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                assert_eq!(
                    r.vectors[slot("")],
                    Some(Vector::Dense(f32s(v))),
                    "{key}/{id}"
                );
            }
            for (name, v) in o
                .get("vectors")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    r.vectors[slot(name)],
                    Some(Vector::Dense(f32s(v))),
                    "{key}/{id} {name}"
                );
            }
            let props = o["properties"].as_object().cloned();
            assert!(
                vecport::compare::metadata_equal(r.metadata.as_ref(), props.as_ref(), 0),
                "{key}/{id}: {:?} != {props:?}",
                r.metadata
            );
        }
    }
    let total: usize = exported.values().map(Vec::len).sum();
    assert_eq!(total, seen, "nothing more, nothing less");
    assert!(seen >= 190, "the client wrote {seen} objects");
}
