//! The committed format-1 snapshot, `fixtures/snapshots/v1/basic/`: every
//! later vecport must open, verify and read it exactly as written
//! (`spec/FORMAT.md` §8). It is generated once, deterministically, by
//! [`regenerate_v1_fixture`] and never regenerated (see `fixtures/README.md`).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, json};
use vecport::model::{CollectionSpec, IdKind, Metric, Record, VectorKind};
use vecport::snapshot::layout::{KV_COLLECTION, KV_FORMAT_VERSION, MANIFEST, MANIFEST_CHECKSUM};
use vecport::snapshot::manifest::{MetadataSchema, NamespaceCount};
use vecport::snapshot::{Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

use crate::snapshot_format::{
    assert_manifest_matches_schema, assert_same_records, read_collection,
};
use crate::support::data;

/// Where the fixture lives.
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshots/v1/basic")
}

/// The fixed creation time written into the fixture's manifest.
const CREATED_AT: &str = "2025-11-26T00:00:00Z";

/// Set to `1` to let [`regenerate_v1_fixture`] write into `fixtures/`.
const REGENERATE_ENV: &str = "VECPORT_REGENERATE_FIXTURES";

/// The fixture's contents: a Chroma-like collection, a rich one and an empty
/// one, all from `support::data` with fixed seeds.
fn fixture_collections() -> Vec<(CollectionSpec, Vec<Record>)> {
    let mut chroma = data::spec("chroma_docs", 8, Metric::Cosine);
    chroma.raw_config =
        json!({"hnsw": {"space": "cosine", "ef_construction": 100, "max_neighbors": 16}});
    vec![
        (chroma, data::records(24, 8, 101, data::FLAT)),
        (data::rich_spec("rich"), data::rich_records(30, 202)),
        (data::spec("empty", 3, Metric::L2), Vec::new()),
    ]
}

/// Eight rows a group and sixteen a part, so that two collections have two parts each.
fn fixture_options() -> WriteOptions {
    WriteOptions {
        row_group_rows: 8,
        part_max_rows: 16,
        parallelism: 2,
        ..WriteOptions::default()
    }
}

fn fixture_source() -> SourceInfo {
    let mut location = Map::new();
    location.insert("tenant".into(), json!("default_tenant"));
    SourceInfo {
        kind: "memory".into(),
        server_version: Some("fixture".into()),
        endpoint: Some("memory://fixtures".into()),
        location,
    }
}

/// Writes the fixture into `root`.
fn generate(root: &Path) {
    let mut writer = SnapshotWriter::create(root, fixture_options()).expect("create");
    for (spec, records) in fixture_collections() {
        let mut c = writer.collection(&spec, None).expect("collection");
        c.write(records).expect("write");
        writer.add(c.finish().expect("finish collection"));
    }
    writer
        .finish_at(fixture_source(), CREATED_AT.into())
        .expect("finish");
}

/// Writes `fixtures/snapshots/v1/basic/` when it does not exist and
/// `VECPORT_REGENERATE_FIXTURES=1`; otherwise only checks that generating
/// works, in a temporary directory.
///
/// `VECPORT_REGENERATE_FIXTURES=1 cargo test --test integration regenerate_v1_fixture -- --ignored`
#[test]
#[ignore = "writes fixtures/; run by hand with VECPORT_REGENERATE_FIXTURES=1"]
fn regenerate_v1_fixture() {
    if std::env::var(REGENERATE_ENV).is_ok_and(|v| v == "1") {
        let dir = fixture_dir();
        assert!(
            !dir.exists(),
            "{} exists. v1 fixtures are never regenerated once committed: every later vecport \
             must read the files as they are. Add a new fixture instead (fixtures/README.md).",
            dir.display()
        );
        generate(&dir);
        eprintln!("wrote {}", dir.display());
    } else {
        let tmp = tempfile::tempdir().unwrap();
        generate(&tmp.path().join("basic"));
        eprintln!(
            "generated into a temporary directory; set {REGENERATE_ENV}=1 to write {}",
            fixture_dir().display()
        );
    }
}

fn open_fixture() -> Snapshot {
    Snapshot::open(&fixture_dir())
        .unwrap_or_else(|e| panic!("the committed v1 fixture no longer opens: {e}"))
}

#[test]
fn v1_fixture_verifies() {
    let snapshot = open_fixture();
    let report = snapshot.verify();
    assert!(
        report.is_ok(),
        "the committed v1 fixture no longer verifies: {:?}",
        report.problems
    );
    assert_eq!(report.rows, 54);
    assert_eq!(report.files, 4);
}

#[test]
fn v1_fixture_reads_back_what_its_generator_wrote() {
    let snapshot = open_fixture();
    for (spec, expected) in fixture_collections() {
        let actual = read_collection(&snapshot, &spec.name);
        if let Some(d) = data::first_difference(&expected, &actual) {
            panic!(
                "collection {:?} of the v1 fixture differs from its generator: {d}\n\
                 If support::data changed, freeze the old generator in fixtures.rs; \
                 never regenerate the fixture (fixtures/README.md).",
                spec.name
            );
        }
        assert_same_records(&expected, &actual, &spec.name);
    }
}

#[test]
fn v1_fixture_manifest() {
    let snapshot = open_fixture();
    let m = snapshot.manifest();
    assert_eq!(m.format, "vecport.snapshot");
    assert_eq!(m.format_version, "1.0");
    assert_eq!(m.created_at, CREATED_AT);
    assert_eq!(m.producer.name, "vecport");
    assert_eq!(m.source, fixture_source());
    let names: Vec<&str> = m.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["chroma_docs", "rich", "empty"]);

    let expected = fixture_collections();
    for (c, (spec, records)) in m.collections.iter().zip(&expected) {
        let at = &c.name;
        assert_eq!(c.directory, format!("collections/{}", c.name), "{at}");
        assert_eq!(c.record_count, records.len() as u64, "{at}");
        let fields: Vec<_> = c.vectors.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, spec.vectors, "{at}");
        assert_eq!(c.raw_config, spec.raw_config, "{at}");
        assert_eq!(c.collection_metadata, spec.collection_metadata, "{at}");
        let mut schema = MetadataSchema::default();
        records
            .iter()
            .for_each(|r| schema.observe(r.metadata.as_ref()));
        assert_eq!(c.metadata_schema, schema, "{at}");
        assert_eq!(
            c.has_documents,
            records.iter().any(|r| r.document.is_some()),
            "{at}"
        );
        assert_eq!(c.has_uris, records.iter().any(|r| r.uri.is_some()), "{at}");
        let rows: Vec<u64> = c.parts.iter().map(|p| p.rows).collect();
        let paths: Vec<&str> = c.parts.iter().map(|p| p.path.as_str()).collect();
        match at.as_str() {
            "chroma_docs" => {
                assert_eq!(c.id_kind, IdKind::String);
                assert_eq!(rows, [16, 8]);
                assert_eq!(paths, ["part-000000.parquet", "part-000001.parquet"]);
                assert_eq!(c.vectors[0].column, "vector");
                assert_eq!(c.vectors[0].field.metric, Some(Metric::Cosine));
                assert_eq!(
                    c.namespaces,
                    [NamespaceCount {
                        name: None,
                        records: 24
                    }]
                );
            }
            "rich" => {
                assert_eq!(c.id_kind, IdKind::UintOrUuid);
                assert_eq!(rows, [16, 14]);
                let columns: Vec<&str> = c.vectors.iter().map(|v| v.column.as_str()).collect();
                assert_eq!(
                    columns,
                    ["vector_text", "vector_keywords", "vector_colbert"]
                );
                let kinds: Vec<VectorKind> = c.vectors.iter().map(|v| v.field.kind).collect();
                assert_eq!(
                    kinds,
                    [VectorKind::Dense, VectorKind::Sparse, VectorKind::Multi]
                );
                assert_eq!(
                    c.namespaces,
                    [
                        NamespaceCount {
                            name: None,
                            records: 10
                        },
                        NamespaceCount {
                            name: Some("tenant-a".into()),
                            records: 10
                        },
                        NamespaceCount {
                            name: Some("テナント".into()),
                            records: 10
                        },
                    ]
                );
            }
            "empty" => {
                assert_eq!(c.id_kind, IdKind::String);
                assert!(rows.is_empty());
                assert!(c.namespaces.is_empty());
                assert_eq!(c.vectors[0].field.dimension, Some(3));
                // Git keeps no empty directories, so the committed fixture has
                // none for this collection; readers never need it (§2.1).
            }
            other => panic!("unexpected collection {other}"),
        }
    }
}

#[test]
fn v1_fixture_parts_carry_the_format_version() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let snapshot = open_fixture();
    for c in &snapshot.manifest().collections {
        for p in &c.parts {
            let path = snapshot.part_path(c, p);
            let reader = SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
            let kv = reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .cloned()
                .unwrap_or_default();
            let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
            assert_eq!(
                get(KV_FORMAT_VERSION).as_deref(),
                Some("1.0"),
                "{}",
                path.display()
            );
            let schema: serde_json::Value =
                serde_json::from_str(&get(KV_COLLECTION).unwrap()).unwrap();
            assert_eq!(schema["name"], json!(c.name), "{}", path.display());
        }
    }
}

#[test]
fn v1_fixture_manifest_matches_the_json_schema() {
    assert_manifest_matches_schema(&fixture_dir());
}

/// Small, and holds exactly the files a finished snapshot has.
#[test]
fn v1_fixture_is_small_and_complete() {
    let snapshot = open_fixture();
    let mut expected: Vec<PathBuf> = vec![MANIFEST.into(), MANIFEST_CHECKSUM.into()];
    for c in &snapshot.manifest().collections {
        for p in &c.parts {
            expected.push(Path::new(&c.directory).join(&p.path));
        }
    }
    expected.sort();
    let mut found = Vec::new();
    let mut total = 0;
    let mut stack = vec![fixture_dir()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                total += entry.metadata().unwrap().len();
                found.push(entry.path().strip_prefix(fixture_dir()).unwrap().to_owned());
            }
        }
    }
    found.sort();
    assert_eq!(found, expected, "files of the fixture");
    assert!(
        total < 200 * 1024,
        "the v1 fixture is {total} bytes; keep fixtures under 200 KB"
    );
}

/// The pipeline takes the fixture too: an import into memory moves every record.
#[test]
fn v1_fixture_imports() {
    use vecport::connectors::Source;
    use vecport::connectors::memory::{FULL, Memory};
    let memory = Memory::new(&crate::support::unique_name("fixture"), None, FULL);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = vecport::pipeline::ImportOptions::default();
    let report = rt
        .block_on(vecport::pipeline::import(
            &fixture_dir(),
            &memory,
            &options,
            &vecport::pipeline::Quiet,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let counts: Vec<(String, u64)> = report
        .collections
        .iter()
        .map(|c| (c.target.clone(), c.target_count))
        .collect();
    assert_eq!(
        counts,
        [
            ("chroma_docs".to_owned(), 24),
            ("rich".to_owned(), 30),
            ("empty".to_owned(), 0)
        ]
    );
    let listed = rt.block_on(Source::list(&memory)).unwrap();
    assert_eq!(listed.len(), 3);
}
