//! Any database to any database: every source migrates a collection into
//! every target through a snapshot, and the target gives back the records
//! the source was seeded with; sparse vectors move between the databases
//! that have them and are refused (or left out on request) by the others;
//! a round trip A → B → A restores everything but what the change reports
//! list, record by record. Chroma is real (when `CHROMA_URL` is set, always
//! in CI), and so is PostgreSQL + pgvector (`DATABASE_URL`); Qdrant,
//! Pinecone and Weaviate are the emulators.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use vecport::compare::{CompareOptions, Comparison, Side};
use vecport::connectors::{self, Connector, ExistingTarget, Sink, Source};
use vecport::model::{
    CollectionSpec, Metric, Record, RecordId, SparseVector, Vector, VectorField, VectorKind,
};
use vecport::pipeline::{self, ExportOptions, ImportOptions, Quiet};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::support::data::{self, PINECONE};
use crate::support::pipeline::{export_and_read, seed_from};
use crate::support::unique_name;

use crate::support::databases::{TestDatabase as Database, all as databases};

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

/// `source` and `target` compared record by record (metadata floats within
/// 4 ulps), and by 5 searches for 5 neighbours; a failure names `pair`.
async fn compare(
    source: &Arc<dyn Connector>,
    target: &Arc<dyn Connector>,
    work_dir: &Path,
    pair: &str,
) -> Comparison {
    vecport::compare::compare(
        &Side::Database(source.clone()),
        &Side::Database(target.clone()),
        &CompareOptions {
            float_ulps: 4,
            queries: 5,
            k: 5,
            work_dir: work_dir.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{pair}, compare: {e}"))
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
            let report =
                seed_from(&base, db.open(Some(&name)).as_ref() as &dyn Sink, db.name).await;
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
                    &via.as_path().into(),
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
                let result = compare(&source, &target, tmp.path(), &pair).await;
                let c = &result.collections[0];
                assert!(result.equal, "{pair}: {c:#?}");
                let recall = c.search.as_ref().and_then(|p| p.b_vs_a).unwrap();
                assert!(recall >= 0.9, "{pair}: recall@5 {recall}");
                // Out of the target again: the records the source was seeded with.
                let out = tmp.path().join(format!("{}-{}-out", from.name, to.name));
                let (_, got) = export_and_read(target.as_ref() as &dyn Source, &out, &pair).await;
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
            seed_from(&base, source.as_ref() as &dyn Sink, from.name).await;
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
                            &via.as_path().into(),
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
                let result = compare(&source, &target, tmp.path(), &pair).await;
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
                    let (snapshot, got) =
                        export_and_read(target.as_ref() as &dyn Source, &out, &pair).await;
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
        let mut c = crate::support::cli::vecport();
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
/// its rules refuse dropped, namespaces only where it has them, and ids of
/// the kinds it is made for: Qdrant unsigned integers (up to 2^64 − 1) and
/// UUIDs, Weaviate UUIDs, pgvector integers, the others strings.
fn native(db: &Database, records: &[Record]) -> Vec<Record> {
    let caps = db.open(None).capabilities();
    records
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, mut r)| {
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
            let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &i.to_le_bytes());
            r.id = match db.name {
                "qdrant" if i == 0 => RecordId::Uint(u64::MAX),
                "qdrant" if i % 2 == 0 => RecordId::Uint(i as u64 * 7919),
                "qdrant" | "weaviate" => RecordId::Uuid(uuid),
                "pgvector" => RecordId::Uint(i as u64 + 1),
                _ => r.id,
            };
            r
        })
        .collect()
}

/// What a change report lists: one entry per record changed, and the rules
/// applied to many records at once.
#[derive(Default)]
struct Report {
    /// `(namespace, id, change, key)`; key `""` for a skipped record or an id.
    records: std::collections::BTreeSet<(Option<String>, String, String, String)>,
    /// `(change, key) → records`.
    rules: std::collections::BTreeMap<(String, String), u64>,
}

impl Report {
    fn read(path: &std::path::Path) -> Report {
        let mut out = Report::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return out;
        };
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            let change = text("change");
            match &v["id"] {
                serde_json::Value::Null => {
                    let n = v["records"].as_u64().unwrap_or_else(|| panic!("{line}"));
                    *out.rules.entry((change, text("key"))).or_default() += n;
                }
                id => {
                    let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
                    let ns = v["namespace"].as_str().map(str::to_owned);
                    out.records.insert((ns, id, change, text("key")));
                }
            }
        }
        out
    }
}

#[test]
fn there_and_back_keeps_everything_but_what_the_reports_list() {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use vecport::mapping::{NAMESPACE_KEY, NamespacePolicy};
    use vecport::model::Metadata;

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
    // Ids the target keeps beside an id of its own, restored on export.
    let kept = |to: &str, id: &RecordId| {
        matches!(
            (to, id),
            ("qdrant", RecordId::String(_)) | ("weaviate", RecordId::String(_) | RecordId::Uint(_))
        )
    };
    runtime.block_on(async {
        for from in &dbs {
            let seed = native(from, &everything);
            let base = tmp.path().join(format!("base-{}", from.name));
            let mut spec = data::spec("base", 8, Metric::L2);
            spec.id_kind = None;
            write_snapshot(&base, &spec, seed.clone());
            let source_name = unique_name("rt");
            seed_from(
                &base,
                from.open(Some(&source_name)).as_ref() as &dyn Sink,
                from.name,
            )
            .await;
            for to in &dbs {
                let pair = format!("{} → {} → {}", from.name, to.name, from.name);
                let (there, back) = (unique_name("rt"), unique_name("rt"));
                let report_there = tmp
                    .path()
                    .join(format!("{}-{}-there.jsonl", from.name, to.name));
                let report_back = tmp
                    .path()
                    .join(format!("{}-{}-back.jsonl", from.name, to.name));
                // Metadata a database cannot hold is encoded, records it
                // cannot hold are left out, and namespaces go into a
                // metadata key where a database has none.
                let fit = |report: &std::path::Path| ImportOptions {
                    metadata: vecport::mapping::MetadataPolicy::Encode,
                    skip_invalid: true,
                    namespaces: NamespacePolicy::IntoKey(NAMESPACE_KEY.to_owned()),
                    changes: Some(report.to_owned()),
                    work_dir: tmp.path().to_owned(),
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
                            &via.as_path().into(),
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
                let (_, got) =
                    export_and_read(from.open(Some(&back)).as_ref() as &dyn Source, &out, &pair)
                        .await;
                let (there_report, back_report) =
                    (Report::read(&report_there), Report::read(&report_back));
                let listed: BTreeSet<_> = there_report
                    .records
                    .iter()
                    .chain(&back_report.records)
                    .cloned()
                    .collect();
                let line = |r: &Record, change: &str, key: &str| {
                    let id = r.id.to_string();
                    listed.contains(&(r.namespace.clone(), id, change.to_owned(), key.to_owned()))
                };
                let skipped = |r: &Record| line(r, "skipped", "");
                let got: HashMap<(Option<String>, String), &Record> = got
                    .iter()
                    .map(|r| ((r.namespace.clone(), r.id.to_string()), r))
                    .collect();
                assert!(got.len() <= seed.len(), "{pair}: records appeared");
                // Everything that changed is listed ...
                let mut unexplained = Vec::new();
                // ... and everything listed changed: (namespace, id, change, key).
                let mut carried = listed.clone();
                for want in &seed {
                    let id = want.id.to_string();
                    let mine = |c: &(Option<String>, String, String, String)| {
                        c.0 == want.namespace && c.1 == id
                    };
                    let Some(have) = got.get(&(want.namespace.clone(), id.clone())) else {
                        if !skipped(want) {
                            unexplained.push(format!("{id}: missing, not reported"));
                        }
                        // A record left out may have been changed before.
                        carried.retain(|c| !mine(c));
                        continue;
                    };
                    if skipped(want) {
                        unexplained.push(format!("{id}: reported skipped, but arrived"));
                    }
                    if have.id.kind() != want.id.kind() {
                        if !line(want, "id", "") {
                            unexplained.push(format!(
                                "{id}: id kind {:?} → {:?}, not reported",
                                want.id.kind(),
                                have.id.kind()
                            ));
                        }
                        carried.remove(&(
                            want.namespace.clone(),
                            id.clone(),
                            "id".into(),
                            String::new(),
                        ));
                    }
                    if have.vectors.iter().flatten().next() != want.vectors[0].as_ref() {
                        unexplained.push(format!("{id}: vector changed"));
                    }
                    if (&have.document, &have.uri) != (&want.document, &want.uri) {
                        unexplained.push(format!("{id}: document or uri changed"));
                    }
                    let empty = Metadata::new();
                    let (w, h) = (
                        want.metadata.as_ref().unwrap_or(&empty),
                        have.metadata.as_ref().unwrap_or(&empty),
                    );
                    for key in w.keys().chain(h.keys()) {
                        let one = |m: &Metadata| {
                            m.get(key)
                                .cloned()
                                .map(|v| serde_json::Map::from_iter([(key.clone(), v)]))
                        };
                        let same =
                            vecport::compare::metadata_equal(one(w).as_ref(), one(h).as_ref(), 4);
                        let about_key =
                            |c: &(Option<String>, String, String, String)| mine(c) && c.3 == *key;
                        if !same {
                            if !listed.iter().any(about_key) {
                                unexplained.push(format!(
                                    "{id}: metadata `{key}` {:?} → {:?}, not reported",
                                    w.get(key),
                                    h.get(key)
                                ));
                            }
                            carried.retain(|c| !about_key(c));
                        }
                    }
                }
                assert!(
                    unexplained.is_empty(),
                    "{pair}: {} unexplained changes, first: {:?}",
                    unexplained.len(),
                    &unexplained[..unexplained.len().min(5)]
                );
                assert!(
                    carried.is_empty(),
                    "{pair}: {} changes reported that the round trip undid, first: {:?}",
                    carried.len(),
                    carried.iter().take(5).collect::<Vec<_>>()
                );
                // What an export undoes is one line per rule, with its count.
                let written: Vec<&Record> = seed.iter().filter(|r| !skipped(r)).collect();
                let mut rules = BTreeMap::new();
                let ids_kept = written.iter().filter(|r| kept(to.name, &r.id)).count() as u64;
                if ids_kept > 0 {
                    rules.insert(("id".to_owned(), String::new()), ids_kept);
                }
                let moved = written.iter().filter(|r| r.namespace.is_some()).count() as u64;
                if moved > 0 && !to.open(None).capabilities().namespaces {
                    rules.insert(("namespace".to_owned(), NAMESPACE_KEY.to_owned()), moved);
                }
                assert_eq!(
                    there_report.rules, rules,
                    "{pair}: the rules of the way there"
                );
                // The way back: the ids the source keeps beside its own, as
                // it received them (and gives them back).
                let kept_back = got.values().filter(|r| kept(from.name, &r.id)).count() as u64;
                let rules_back: BTreeMap<_, _> = (kept_back > 0)
                    .then(|| (("id".to_owned(), String::new()), kept_back))
                    .into_iter()
                    .collect();
                assert_eq!(
                    back_report.rules, rules_back,
                    "{pair}: the rules of the way back"
                );
            }
        }
    });
}

/// Namespaces into a database without them and back, on the command line:
/// ids in two namespaces are refused (or the later ones left out), a key of
/// the user's choosing holds the namespace in Qdrant, and `from-key`
/// restores Pinecone namespaces from it.
#[tokio::test(flavor = "multi_thread")]
async fn namespaces_go_into_a_metadata_key_and_come_back_from_it() {
    use crate::emulators::{pinecone, qdrant};
    use predicates::prelude::*;
    use std::collections::BTreeMap;

    let q = qdrant::start(qdrant::QdrantOptions::default())
        .await
        .unwrap();
    let p = pinecone::start(pinecone::PineconeOptions::default())
        .await
        .unwrap();
    p.set_stats_lag_reads(0);
    let tmp = tempfile::tempdir().unwrap();
    let record = |id: &str, ns: Option<&str>, i: usize| {
        let mut r = Record::dense(
            vecport::model::RecordId::String(id.into()),
            vec![1.0 + i as f32, 2.0, -3.0, 0.5],
        );
        r.namespace = ns.map(str::to_owned);
        r.metadata = Some(serde_json::from_value(json!({"i": i})).unwrap());
        r
    };
    // "a" is in the default namespace and in "eu", "c" in "eu" and "us".
    let records = vec![
        record("a", None, 0),
        record("b", None, 1),
        record("a", Some("eu"), 2),
        record("c", Some("eu"), 3),
        record("c", Some("us"), 4),
        record("d", Some("us"), 5),
    ];
    let snap = tmp.path().join("snap");
    write_snapshot(&snap, &data::spec("docs", 4, Metric::Dot), records);
    let vecport = || {
        let mut c = crate::support::cli::vecport();
        c.current_dir(tmp.path());
        c
    };
    let qdrant = |c: &str| format!("qdrant://{}/{c}", q.addr());
    let import = |target: String, extra: &[&str]| {
        let mut c = vecport();
        c.args(["import", snap.to_str().unwrap(), &target])
            .args(extra);
        c
    };
    // By default, namespaces are refused, and the message names the choice.
    import(qdrant("refused"), &[])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("--namespaces into-key"));
    // The same id in two namespaces would collide: refused, naming them.
    import(qdrant("collide"), &["--namespaces", "into-key=tenant"])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("2 ids of collection `docs` are in more than one namespace")
                .and(predicate::str::contains(
                    "id \"a\" is in the default namespace and namespace \"eu\"",
                ))
                .and(predicate::str::contains(
                    "id \"c\" is in namespace \"eu\" and namespace \"us\"",
                ))
                .and(predicate::str::contains("nothing was written")),
        );
    // Keys the target refuses, policies that do not parse, and `from-key`
    // into a target without namespaces are usage errors.
    for (policy, message) in [
        (
            "into-key=__vecport_id",
            "qdrant cannot take metadata key \"__vecport_id\"",
        ),
        (
            "from-key=tenant",
            "qdrant has no namespaces to put records in",
        ),
        ("sideways", "is not a namespace policy"),
        ("into-key=", "the metadata key is empty"),
    ] {
        import(qdrant("usage"), &["--namespaces", policy])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    for c in ["refused", "collide", "usage"] {
        assert!(
            q.state().collection_names().iter().all(|n| n != c),
            "{c} was created"
        );
    }
    // --skip-invalid keeps each id's first record and reports the others.
    let report = tmp.path().join("into.jsonl");
    import(
        qdrant("docs"),
        &["--namespaces", "into-key=tenant", "--skip-invalid", "--changes"],
    )
    .arg(&report)
    .assert()
    .success()
    .stderr(
        predicate::str::contains("4 records written, target counts 4").and(
            predicate::str::contains(
                "2 records skipped, 4 ids stored in another form, 2 records' namespaces moved to or from a metadata key",
            ),
        ),
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let skipped: BTreeMap<String, String> = lines
        .iter()
        .filter(|l| l["change"] == "skipped")
        .map(|l| {
            (
                format!(
                    "{}/{}",
                    l["namespace"].as_str().unwrap(),
                    l["id"].as_str().unwrap()
                ),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{lines:?}");
    assert!(skipped["eu/a"].contains("also in the default namespace, whose record is kept"));
    assert!(skipped["us/c"].contains("also in namespace \"eu\", whose record is kept"));
    let rule = |change: &str| {
        lines
            .iter()
            .find(|l| l["change"] == change && l.get("id").is_none())
            .unwrap_or_else(|| panic!("no {change} rule in {lines:?}"))
    };
    assert_eq!(rule("namespace")["records"], 2);
    assert_eq!(rule("namespace")["key"], "tenant");
    assert!(
        rule("namespace")["reason"]
            .as_str()
            .unwrap()
            .contains("--namespaces from-key=tenant")
    );
    assert_eq!(rule("id")["records"], 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    // Qdrant holds the namespace in `tenant`, a key of the user's: it stays
    // one on export ...
    let out = tmp.path().join("from-qdrant");
    vecport()
        .args(["export", &qdrant("docs")])
        .arg(&out)
        .arg("-q")
        .assert()
        .success();
    let (_, got) = read_snapshot(&out);
    let tenants: BTreeMap<String, Option<serde_json::Value>> = got
        .iter()
        .map(|r| {
            assert_eq!(r.namespace, None);
            (
                r.id.to_string(),
                r.metadata.as_ref().unwrap().get("tenant").cloned(),
            )
        })
        .collect();
    assert_eq!(
        tenants,
        BTreeMap::from([
            ("a".into(), None),
            ("b".into(), None),
            ("c".into(), Some(json!("eu"))),
            ("d".into(), Some(json!("us"))),
        ])
    );
    // ... and `from-key` makes it Pinecone's namespaces again.
    vecport()
        .arg("import")
        .arg(&out)
        .args([
            &format!("pinecone+http://{}/docs", p.addr()),
            "--namespaces",
            "from-key=tenant",
            "-q",
        ])
        .assert()
        .success();
    let back = tmp.path().join("from-pinecone");
    vecport()
        .args(["export", &format!("pinecone+http://{}/docs", p.addr())])
        .arg(&back)
        .arg("-q")
        .assert()
        .success();
    // Records in their namespaces, metadata numbers by value (Pinecone
    // keeps every number as a float).
    let placed_in = |snapshot: &std::path::Path| {
        let (_, got) = read_snapshot(snapshot);
        let mut placed: Vec<(String, Option<String>, Record)> = got
            .into_iter()
            .map(|r| (r.id.to_string(), r.namespace.clone(), r))
            .collect();
        placed.sort_by(|a, b| a.0.cmp(&b.0));
        placed
    };
    let want = [
        ("a", None, 0),
        ("b", None, 1),
        ("c", Some("eu"), 3),
        ("d", Some("us"), 5),
    ];
    let check = |placed: Vec<(String, Option<String>, Record)>, what: &str| {
        assert_eq!(placed.len(), want.len(), "{what}");
        for ((id, ns, r), (want_id, want_ns, i)) in placed.iter().zip(want) {
            assert_eq!((id.as_str(), ns.as_deref()), (want_id, want_ns), "{what}");
            let m: vecport::model::Metadata = serde_json::from_value(json!({"i": i})).unwrap();
            assert!(
                vecport::compare::metadata_equal(r.metadata.as_ref(), Some(&m), 0),
                "{what}: {id}: {:?}",
                r.metadata
            );
        }
    };
    check(placed_in(&back), "pinecone, namespaces from `tenant`");
    // A target with namespaces keeps them, and says so.
    import(
        format!("pinecone+http://{}/own", p.addr()),
        &["--namespaces", "into-key"],
    )
    .assert()
    .success()
    .stderr(
        predicate::str::contains("6 records written, target counts 6").and(
            predicate::str::contains(
                "namespaces kept as pinecone's own (--namespaces into-key applies to targets without namespaces)",
            ),
        ),
    );
    // The default key is lifted back by the export itself.
    vecport()
        .arg("import")
        .arg(&back)
        .args([&qdrant("plain"), "--namespaces", "into-key", "-q"])
        .assert()
        .success();
    let again = tmp.path().join("again");
    vecport()
        .args(["export", &qdrant("plain")])
        .arg(&again)
        .arg("-q")
        .assert()
        .success();
    check(
        placed_in(&again),
        "qdrant, namespaces in `__vecport_namespace`",
    );
}

/// `--namespaces from-key` takes a record's namespace from a metadata key
/// holding a non-empty string, and refuses (or, on request, leaves out and
/// reports) a record whose key holds anything else or names another
/// namespace than the one it is in.
#[tokio::test(flavor = "multi_thread")]
async fn namespaces_from_a_key_refuse_what_is_not_a_namespace() {
    use vecport::mapping::NamespacePolicy;

    let tmp = tempfile::tempdir().unwrap();
    let record = |id: &str, ns: Option<&str>, meta: serde_json::Value| {
        let mut r = Record::dense(vecport::model::RecordId::String(id.into()), vec![1.0, 2.0]);
        r.namespace = ns.map(str::to_owned);
        r.metadata = Some(serde_json::from_value(meta).unwrap());
        r
    };
    let snap = tmp.path().join("snap");
    write_snapshot(
        &snap,
        &data::spec("docs", 2, Metric::L2),
        vec![
            record("a", None, json!({"tenant": "eu", "k": 1})),
            record("b", None, json!({"tenant": 5})),
            record("c", Some("us"), json!({"tenant": "us"})),
            record("d", Some("us"), json!({"tenant": "eu"})),
            record("e", None, json!({"k": 2})),
            record("f", None, json!({"tenant": ""})),
        ],
    );
    let store = unique_name("from-key");
    let sink = connectors::open(&format!("memory://{store}/docs"), &Default::default()).unwrap();
    let options = |skip: bool, report: Option<std::path::PathBuf>| ImportOptions {
        namespaces: NamespacePolicy::FromKey("tenant".into()),
        skip_invalid: skip,
        changes: report,
        ..ImportOptions::default()
    };
    let err = pipeline::import(
        &snap,
        sink.as_ref() as &dyn Sink,
        &options(false, None),
        &Quiet,
    )
    .await
    .map(|_| ())
    .unwrap_err()
    .to_string();
    for needle in [
        "record \"b\": metadata key `tenant` holds 5, which is not a namespace name",
        "record \"d\": it is in namespace \"us\" and its metadata key `tenant` names namespace \"eu\"",
        "record \"f\": metadata key `tenant` holds \"\", which is not a namespace name",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(sink.list().await.unwrap().is_empty(), "nothing was written");
    let report = tmp.path().join("from.jsonl");
    let done = pipeline::import(
        &snap,
        sink.as_ref() as &dyn Sink,
        &options(true, Some(report.clone())),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(done.collections[0].target_count, 3);
    let lines = Report::read(&report);
    let skipped: Vec<_> = lines
        .records
        .iter()
        .map(|l| (l.1.as_str(), l.2.as_str()))
        .collect();
    // By namespace (the default one first), then by id.
    assert_eq!(
        skipped,
        [("b", "skipped"), ("f", "skipped"), ("d", "skipped")]
    );
    assert_eq!(
        lines.rules,
        std::collections::BTreeMap::from([(("namespace".to_owned(), "tenant".to_owned()), 2)])
    );
    let out = tmp.path().join("out");
    pipeline::export(
        sink.as_ref() as &dyn Source,
        &out,
        &ExportOptions::default(),
        &Quiet,
    )
    .await
    .unwrap();
    let (_, got) = read_snapshot(&out);
    let got: Vec<(String, Option<String>, Option<vecport::model::Metadata>)> = got
        .into_iter()
        .map(|r| (r.id.to_string(), r.namespace, r.metadata))
        .collect();
    let meta = |v: serde_json::Value| Some(serde_json::from_value(v).unwrap());
    let mut want = vec![
        ("a".to_owned(), Some("eu".to_owned()), meta(json!({"k": 1}))),
        ("c".to_owned(), Some("us".to_owned()), None),
        ("e".to_owned(), None, meta(json!({"k": 2}))),
    ];
    let mut got = got;
    got.sort_by(|x, y| x.0.cmp(&y.0));
    want.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got, want);
}
