//! Any database to any database: every source migrates a collection into
//! every target through a snapshot, and the target gives back the records
//! the source was seeded with; sparse vectors move between the databases
//! that have them and are refused (or left out on request) by the others.
//! Chroma is real (when `CHROMA_URL` is set, always in CI), and so is
//! PostgreSQL + pgvector (`DATABASE_URL`); Qdrant, Pinecone and Weaviate are
//! the emulators.

use std::sync::Arc;

use serde_json::json;
use vecport::connectors::{self, Connector, ExistingTarget, Sink, Source};
use vecport::model::{
    CollectionSpec, Metric, Record, SparseVector, Vector, VectorField, VectorKind,
};
use vecport::pipeline::{self, ExportOptions, ImportOptions, Quiet};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::support::data::{self, PINECONE};
use crate::support::{server_url, unique_name};

/// One database of the matrix: its URL without a collection, and the
/// server keeping it alive.
struct Database {
    name: &'static str,
    url: String,
    _server: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Database {
    fn open(&self, collection: Option<&str>) -> Arc<dyn Connector> {
        let url = match collection {
            Some(c) => format!("{}/{c}", self.url),
            None => self.url.clone(),
        };
        connectors::open(&url).unwrap()
    }
}

fn databases() -> Vec<Database> {
    use crate::emulators::{pinecone, qdrant, weaviate};
    let q = qdrant::start_background(qdrant::QdrantOptions::default()).unwrap();
    let p = pinecone::start_background(pinecone::PineconeOptions::default()).unwrap();
    p.set_stats_lag_reads(0);
    let w = weaviate::start_background(weaviate::WeaviateOptions::default()).unwrap();
    let mut out = vec![
        Database {
            name: "qdrant",
            url: format!("qdrant://{}", q.addr()),
            _server: Some(Box::new(q)),
        },
        Database {
            name: "pinecone",
            url: format!("pinecone+http://{}", p.addr()),
            _server: Some(Box::new(p)),
        },
        Database {
            name: "weaviate",
            url: format!("weaviate://{}", w.addr()),
            _server: Some(Box::new(w)),
        },
    ];
    if let Some(chroma) = server_url("CHROMA_URL") {
        let host = crate::chroma::host(&chroma);
        out.push(Database {
            name: "chroma",
            url: format!("chroma://{host}"),
            _server: None,
        });
    }
    if let Some(url) = crate::support::pgvector_url() {
        out.push(Database {
            name: "pgvector",
            url,
            _server: None,
        });
    }
    out
}

/// Records as every database gives them back: integers as floats (Pinecone
/// stores numbers as float64), without the empty vector fields a database
/// declares of its own (Pinecone's sparse field), sorted by id.
fn comparable(mut records: Vec<Record>) -> Vec<Record> {
    for r in &mut records {
        r.vectors.retain(Option::is_some);
        for v in r.metadata.iter_mut().flat_map(|m| m.values_mut()) {
            if let Some(i) = v.as_i64() {
                *v = json!(i as f64);
            }
        }
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

#[test]
fn every_database_migrates_into_every_other() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dbs = databases();
    let tmp = tempfile::tempdir().unwrap();
    // What every one of them holds: string ids (awkward ones included),
    // one L2 vector (stored exactly everywhere), flat metadata within
    // Pinecone's rules, documents and URIs.
    let base = tmp.path().join("base");
    let spec = data::spec("base", 16, Metric::L2);
    let records = data::records(300, 16, 41, PINECONE);
    write_snapshot(&base, &spec, records.clone());
    let want = comparable(records);

    runtime.block_on(async {
        let mut sources = Vec::new();
        for db in &dbs {
            let name = unique_name("mx");
            let report = pipeline::import(
                &base,
                db.open(Some(&name)).as_ref() as &dyn Sink,
                &ImportOptions::default(),
                &Quiet,
            )
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", db.name));
            assert_eq!(report.collections[0].target_count, 300);
            sources.push((db, name));
        }
        let mut pairs = 0;
        for (from, source_name) in &sources {
            for to in &dbs {
                let pair = format!("{} → {}", from.name, to.name);
                let target_name = unique_name("mx");
                let via = tmp.path().join(format!("{}-{}", from.name, to.name));
                let source = from.open(Some(source_name));
                let target = to.open(Some(&target_name));
                let (manifest, report) = pipeline::migrate(
                    source.as_ref() as &dyn Source,
                    target.as_ref() as &dyn Sink,
                    &via,
                    &ExportOptions::default(),
                    &ImportOptions {
                        existing: ExistingTarget::Refuse,
                        ..ImportOptions::default()
                    },
                    &Quiet,
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}: {e}"));
                assert_eq!(manifest.collections[0].record_count, 300, "{pair}");
                assert_eq!(report.collections[0].target_count, 300, "{pair}");
                // compare: same records, and the same neighbours from both searches.
                let result = vecport::compare::compare(
                    &vecport::compare::Side::Database(source.clone()),
                    &vecport::compare::Side::Database(target.clone()),
                    &vecport::compare::CompareOptions {
                        float_ulps: 4,
                        queries: 5,
                        k: 5,
                        work_dir: tmp.path().to_owned(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, compare: {e}"));
                let c = &result.collections[0];
                assert!(result.equal, "{pair}: {c:#?}");
                let recall = c.search.as_ref().and_then(|p| p.b_vs_a).unwrap();
                assert!(recall >= 0.9, "{pair}: recall@5 {recall}");
                // Out of the target again: the records the source was seeded with.
                let out = tmp.path().join(format!("{}-{}-out", from.name, to.name));
                pipeline::export(
                    target.as_ref() as &dyn Source,
                    &out,
                    &ExportOptions::default(),
                    &Quiet,
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, export: {e}"));
                let (_, got) = read_snapshot(&out);
                // Chroma and Qdrant may move a metadata float by an ulp per write.
                if let Some(diff) = data::first_difference_within(&want, &comparable(got), 0.0, 4) {
                    panic!("{pair} changed records: {diff}");
                }
                pairs += 1;
            }
        }
        assert_eq!(pairs, dbs.len() * dbs.len());
    });
}

/// A dotproduct collection with a dense and a sparse field, as Pinecone,
/// Qdrant and pgvector all hold it: Pinecone takes sparse values only
/// beside a dotproduct dense vector.
fn sparse_spec() -> CollectionSpec {
    let mut spec = data::spec("hybrid", 8, Metric::Dot);
    spec.vectors.push(VectorField {
        name: "sparse".into(),
        kind: VectorKind::Sparse,
        ..VectorField::dense(None, Some(Metric::Dot))
    });
    spec
}

/// Records for [`sparse_spec`]: awkward ids, Pinecone's metadata,
/// documents and URIs; dense values of moderate size (dot products of the
/// generator's extremes overflow float32), sparse values with sorted indices
/// up to 2^20, no explicit zeros, and some records without a sparse vector.
fn sparse_records(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    data::records(n, 8, seed, PINECONE)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            let mut dense: Vec<f32> = (0..8).map(|_| rng.f32() * 2.0 - 1.0).collect();
            if i % 5 == 0 {
                dense[0] = -0.0;
            }
            let sparse = (i % 7 != 3).then(|| {
                let mut indices: Vec<u32> = (0..1 + i % 6).map(|_| rng.u32(..1 << 20)).collect();
                indices.sort_unstable();
                indices.dedup();
                let values = indices.iter().map(|_| rng.f32() + 0.01).collect();
                Vector::Sparse(SparseVector { indices, values })
            });
            r.vectors = vec![Some(Vector::Dense(dense)), sparse];
            r
        })
        .collect()
}

/// Records with their vector slots in the order of `spec`'s fields, matched
/// by name (a database may list its fields in another order).
fn by_field_names(
    spec: &CollectionSpec,
    got: &CollectionSpec,
    records: Vec<Record>,
) -> Vec<Record> {
    let order: Vec<usize> = spec
        .vectors
        .iter()
        .map(|f| {
            got.vectors
                .iter()
                .position(|g| g.name == f.name)
                .unwrap_or_else(|| panic!("vector field {:?} lost", f.name))
        })
        .collect();
    records
        .into_iter()
        .map(|mut r| {
            r.vectors = order.iter().map(|&i| r.vectors[i].take()).collect();
            r
        })
        .collect()
}

#[test]
fn sparse_vectors_move_between_the_databases_that_have_them() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dbs = databases();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let spec = sparse_spec();
    let records = sparse_records(200, 23);
    let with_sparse = records.iter().filter(|r| r.vectors[1].is_some()).count();
    write_snapshot(&base, &spec, records.clone());
    let sparse = |db: &Database| db.open(None).capabilities().sparse;
    let names: Vec<&str> = dbs.iter().filter(|d| sparse(d)).map(|d| d.name).collect();
    for db in ["qdrant", "pinecone", "pgvector"] {
        let present = dbs.iter().any(|d| d.name == db);
        assert_eq!(names.contains(&db), present, "{db} holds sparse vectors");
    }
    runtime.block_on(async {
        let mut pairs = 0;
        for from in dbs.iter().filter(|d| sparse(d)) {
            let source_name = unique_name("sp");
            let source = from.open(Some(&source_name));
            pipeline::import(
                &base,
                source.as_ref() as &dyn Sink,
                &ImportOptions::default(),
                &Quiet,
            )
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", from.name));
            for to in &dbs {
                let pair = format!("{} → {}", from.name, to.name);
                let target_name = unique_name("sp");
                let target = to.open(Some(&target_name));
                let via = tmp.path().join(format!("{}-{}", from.name, to.name));
                let migrate = |options: ImportOptions, via: std::path::PathBuf| {
                    let (source, target) = (source.clone(), target.clone());
                    async move {
                        pipeline::migrate(
                            source.as_ref() as &dyn Source,
                            target.as_ref() as &dyn Sink,
                            &via,
                            &ExportOptions::default(),
                            &options,
                            &Quiet,
                        )
                        .await
                    }
                };
                if !sparse(to) {
                    // Refused by default, before anything is written ...
                    let err = migrate(ImportOptions::default(), via.clone())
                        .await
                        .map(|_| ())
                        .expect_err(&pair)
                        .to_string();
                    assert!(
                        err.contains("does not support sparse vectors")
                            && err.contains("nothing was written")
                            && err.contains("--drop-vector \"sparse\""),
                        "{pair}: {err}"
                    );
                    let lookup = to.open(None).collection(&target_name).await;
                    assert!(
                        matches!(lookup, Err(vecport::Error::NotFound { .. })),
                        "{pair}: the refused import created `{target_name}`"
                    );
                    std::fs::remove_dir_all(&via).unwrap();
                }
                let options = ImportOptions {
                    drop_vectors: if sparse(to) {
                        Vec::new()
                    } else {
                        vec!["sparse".into()]
                    },
                    ..ImportOptions::default()
                };
                let (_, report) = migrate(options, via.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{pair}: {e}"));
                let imported = &report.collections[0];
                assert_eq!(imported.target_count, 200, "{pair}");
                let dropped_note = format!(
                    "vector field(s) \"sparse\" left out as asked (--drop-vector): {with_sparse} records had values in them"
                );
                assert_eq!(
                    imported.notes.contains(&dropped_note),
                    !sparse(to),
                    "{pair}: {:?}",
                    imported.notes
                );
                let result = vecport::compare::compare(
                    &vecport::compare::Side::Database(source.clone()),
                    &vecport::compare::Side::Database(target.clone()),
                    &vecport::compare::CompareOptions {
                        float_ulps: 4,
                        queries: 5,
                        k: 5,
                        work_dir: tmp.path().to_owned(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, compare: {e}"));
                let c = &result.collections[0];
                let (missing, extra, differing) =
                    (c.missing.count, c.extra.count, c.differing.count);
                assert_eq!((missing, extra, differing), (0, 0, 0), "{pair}: {c:#?}");
                assert!(c.settings.is_empty(), "{pair}: {:?}", c.settings);
                if sparse(to) {
                    assert!(result.equal, "{pair}: {c:#?}");
                } else {
                    // Exactly the field left out differs.
                    assert_eq!(
                        c.fields_only_in_a,
                        vec![format!("\"sparse\" ({with_sparse} records)")],
                        "{pair}"
                    );
                    assert!(c.fields_only_in_b.is_empty(), "{pair}");
                }
                let recall = c.search.as_ref().and_then(|p| p.b_vs_a).unwrap();
                assert!(recall >= 0.9, "{pair}: recall@5 {recall}");
                if sparse(to) {
                    // Out of the target again: the seed's records (vectors
                    // bit-exact; Qdrant may move a metadata float by an ulp).
                    let out = tmp.path().join(format!("{}-{}-out", from.name, to.name));
                    pipeline::export(
                        target.as_ref() as &dyn Source,
                        &out,
                        &ExportOptions::default(),
                        &Quiet,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{pair}, export: {e}"));
                    let (snapshot, got) = read_snapshot(&out);
                    let got = by_field_names(&spec, &snapshot.manifest().collections[0].spec(), got);
                    let field = |f: &str| {
                        snapshot.manifest().collections[0]
                            .vectors
                            .iter()
                            .find(|v| v.field.name == f)
                            .map(|v| (v.field.kind, v.field.metric))
                    };
                    assert_eq!(field("sparse"), Some((VectorKind::Sparse, Some(Metric::Dot))), "{pair}");
                    assert_eq!(field(""), Some((VectorKind::Dense, Some(Metric::Dot))), "{pair}");
                    let want = comparable(records.clone());
                    if let Some(diff) = data::first_difference_within(&want, &comparable(got), 0.0, 4) {
                        panic!("{pair} changed records: {diff}");
                    }
                }
                pairs += 1;
            }
        }
        assert_eq!(pairs, names.len() * dbs.len());
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_the_command_line_keeps_the_snapshot_only_when_asked() {
    use crate::emulators::{qdrant, weaviate};
    use assert_cmd::Command;
    use predicates::prelude::*;

    let q = qdrant::start(qdrant::QdrantOptions::default())
        .await
        .unwrap();
    let w = weaviate::start(weaviate::WeaviateOptions::default())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_snapshot(
        &base,
        &data::spec("docs", 8, Metric::L2),
        data::records(120, 8, 3, PINECONE),
    );
    let vecport = || {
        let mut c = Command::cargo_bin("vecport").unwrap();
        c.current_dir(tmp.path());
        c
    };
    vecport()
        .args([
            "import",
            base.to_str().unwrap(),
            &format!("qdrant://{}", q.addr()),
            "-q",
        ])
        .assert()
        .success();
    // Without --via: migrated, and the temporary snapshot is gone.
    vecport()
        .args([
            "migrate",
            &format!("qdrant://{}/docs", q.addr()),
            &format!("weaviate://{}/Docs", w.addr()),
        ])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("exported 1 collection(s), 120 records")
                .and(predicate::str::contains(
                    "imported `docs` → `Docs`: 120 records written, target counts 120",
                ))
                .and(predicate::str::contains("temporary snapshot was removed")),
        );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vecport-migrate"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(w.state().object_count("Docs", None), 120);
    // With --via: the snapshot stays, verifies, and replays the migration.
    let via = tmp.path().join("kept");
    vecport()
        .args([
            "migrate",
            &format!("qdrant://{}/docs", q.addr()),
            &format!("weaviate://{}/Again", w.addr()),
            "--via",
        ])
        .arg(&via)
        .arg("-q")
        .assert()
        .success();
    vecport().arg("verify").arg(&via).assert().success();
    assert_eq!(w.state().object_count("Again", None), 120);
    // A failed migration says which side failed and leaves the target alone.
    vecport()
        .args([
            "migrate",
            &format!("qdrant://{}/missing", q.addr()),
            &format!("weaviate://{}/Never", w.addr()),
        ])
        .assert()
        .code(6)
        .stderr(
            predicate::str::contains("migration from").and(predicate::str::contains("missing")),
        );
    assert!(w.state().class_schema("Never").is_none());
    // Many collections into one named target: refused before any export.
    vecport()
        .args([
            "import",
            base.to_str().unwrap(),
            &format!("qdrant://{}/second", q.addr()),
            "-q",
        ])
        .assert()
        .success();
    vecport()
        .args([
            "migrate",
            &format!("qdrant://{}", q.addr()),
            &format!("weaviate://{}/One", w.addr()),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target URL names one collection but the source has 2",
        ));
    // A vector field to drop that no collection has.
    vecport()
        .args([
            "import",
            base.to_str().unwrap(),
            &format!("weaviate://{}/Dropped", w.addr()),
            "--drop-vector",
            "nope",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--drop-vector names \"nope\", which no imported collection has",
        ));
    assert!(w.state().class_schema("One").is_none() && w.state().class_schema("Dropped").is_none());
}

/// The records `db` holds as they are: `records` with the metadata values
/// its rules refuse dropped (and namespaces only where it has them).
fn native(db: &dyn Connector, records: &[Record]) -> Vec<Record> {
    let caps = db.capabilities();
    records
        .iter()
        .cloned()
        .map(|mut r| {
            if let Some(m) = &mut r.metadata {
                vecport::mapping::conform(
                    &caps.metadata,
                    vecport::mapping::MetadataPolicy::Drop,
                    m,
                )
                .unwrap();
            }
            if !caps.namespaces {
                r.namespace = None;
            }
            r
        })
        .collect()
}

/// `(id, key)` of every change a report lists; `(id, "")` for a skipped record.
fn reported(path: &std::path::Path) -> std::collections::BTreeSet<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Default::default();
    };
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = v["key"].as_str().unwrap_or("").to_owned();
            (v["id"].as_str().unwrap().to_owned(), key)
        })
        .collect()
}

#[test]
fn there_and_back_keeps_everything_but_what_the_reports_list() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dbs = databases();
    let tmp = tempfile::tempdir().unwrap();
    // Every metadata type (nested objects, nulls, empty arrays, huge
    // integers), awkward ids, documents, URIs and three namespaces.
    let everything: Vec<Record> = data::records(240, 8, 17, data::FULL)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.namespace = [None, Some("n1".to_owned()), Some("n2".to_owned())][i % 3].clone();
            r
        })
        .collect();
    runtime.block_on(async {
        for from in &dbs {
            let seed = native(from.open(None).as_ref(), &everything);
            let base = tmp.path().join(format!("base-{}", from.name));
            write_snapshot(&base, &data::spec("base", 8, Metric::L2), seed.clone());
            let source_name = unique_name("rt");
            pipeline::import(
                &base,
                from.open(Some(&source_name)).as_ref() as &dyn Sink,
                &ImportOptions::default(),
                &Quiet,
            )
            .await
            .unwrap_or_else(|e| panic!("seeding {}: {e}", from.name));
            for to in &dbs {
                let pair = format!("{} → {} → {}", from.name, to.name, from.name);
                let (there, back) = (unique_name("rt"), unique_name("rt"));
                let report_there = tmp
                    .path()
                    .join(format!("{}-{}-there.jsonl", from.name, to.name));
                let report_back = tmp
                    .path()
                    .join(format!("{}-{}-back.jsonl", from.name, to.name));
                let fit = |report: &std::path::Path| ImportOptions {
                    metadata: vecport::mapping::MetadataPolicy::Encode,
                    skip_invalid: true,
                    changes: Some(report.to_owned()),
                    ..ImportOptions::default()
                };
                let hop = |a: &Database,
                           an: &str,
                           b: &Database,
                           bn: &str,
                           report: &std::path::Path,
                           via: &str| {
                    let (source, target) = (a.open(Some(an)), b.open(Some(bn)));
                    let via = tmp.path().join(via);
                    let options = fit(report);
                    async move {
                        pipeline::migrate(
                            source.as_ref() as &dyn Source,
                            target.as_ref() as &dyn Sink,
                            &via,
                            &ExportOptions::default(),
                            &options,
                            &Quiet,
                        )
                        .await
                    }
                };
                hop(
                    from,
                    &source_name,
                    to,
                    &there,
                    &report_there,
                    &format!("{}-{}-1", from.name, to.name),
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, there: {e}"));
                hop(
                    to,
                    &there,
                    from,
                    &back,
                    &report_back,
                    &format!("{}-{}-2", from.name, to.name),
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, back: {e}"));
                let out = tmp.path().join(format!("{}-{}-out", from.name, to.name));
                pipeline::export(
                    from.open(Some(&back)).as_ref() as &dyn Source,
                    &out,
                    &ExportOptions::default(),
                    &Quiet,
                )
                .await
                .unwrap_or_else(|e| panic!("{pair}, export: {e}"));
                let (_, got) = read_snapshot(&out);
                let listed: std::collections::BTreeSet<(String, String)> = reported(&report_there)
                    .into_iter()
                    .chain(reported(&report_back))
                    .collect();
                let skipped = |id: &str| listed.contains(&(id.to_owned(), String::new()));
                let got: std::collections::HashMap<(Option<String>, String), &Record> = got
                    .iter()
                    .map(|r| ((r.namespace.clone(), r.id.to_string()), r))
                    .collect();
                let mut unexplained = Vec::new();
                for want in &seed {
                    let id = want.id.to_string();
                    let Some(have) = got.get(&(want.namespace.clone(), id.clone())) else {
                        if !skipped(&id) {
                            unexplained.push(format!("{id}: missing, not reported"));
                        }
                        continue;
                    };
                    if have.vectors.iter().flatten().next() != want.vectors[0].as_ref() {
                        unexplained.push(format!("{id}: vector changed"));
                    }
                    if (&have.document, &have.uri) != (&want.document, &want.uri) {
                        unexplained.push(format!("{id}: document or uri changed"));
                    }
                    let empty = vecport::model::Metadata::new();
                    let (w, h) = (
                        want.metadata.as_ref().unwrap_or(&empty),
                        have.metadata.as_ref().unwrap_or(&empty),
                    );
                    for key in w.keys().chain(h.keys()) {
                        let one = |m: &vecport::model::Metadata| {
                            m.get(key)
                                .cloned()
                                .map(|v| serde_json::Map::from_iter([(key.clone(), v)]))
                        };
                        let same =
                            vecport::compare::metadata_equal(one(w).as_ref(), one(h).as_ref(), 4);
                        if !same && !listed.contains(&(id.clone(), key.clone())) {
                            unexplained.push(format!(
                                "{id}: metadata `{key}` {:?} → {:?}, not reported",
                                w.get(key),
                                h.get(key)
                            ));
                        }
                    }
                }
                assert!(got.len() <= seed.len(), "{pair}: records appeared");
                assert!(
                    unexplained.is_empty(),
                    "{pair}: {} unexplained changes, first: {:?}",
                    unexplained.len(),
                    &unexplained[..unexplained.len().min(5)]
                );
            }
        }
    });
}
