//! The snapshot format end to end (`spec/FORMAT.md`): arbitrary records
//! survive a write and a read bit for bit; every damaged byte is found;
//! hostile manifests are refused before they open anything; an import of a
//! bad snapshot writes nothing; manifests match `spec/manifest.schema.json`.
//!
//! The helpers at the top are shared with `fixtures.rs` and `pyarrow.rs`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use vecport::Error;
use vecport::connectors::Source;
use vecport::connectors::memory::{FULL, Memory};
use vecport::model::{
    CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, SparseVector, Vector, VectorField,
    VectorKind,
};
use vecport::pipeline::{ImportOptions, Quiet, import};
use vecport::snapshot::layout::{self, MANIFEST, MANIFEST_CHECKSUM};
use vecport::snapshot::manifest::{FieldStats, MetadataSchema, NamespaceCount, value_type};
use vecport::snapshot::{
    Manifest, Snapshot, SnapshotWriter, SourceInfo, VectorCompression, WriteOptions,
};

use crate::support::{self, data};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Small row groups and parts, so that a few dozen records exercise row
/// group cutting, part rotation and parallel encoding.
pub(crate) fn small_options() -> WriteOptions {
    WriteOptions {
        row_group_rows: 7,
        part_max_rows: 50,
        parallelism: 2,
        ..WriteOptions::default()
    }
}

/// The source recorded in test snapshots.
pub(crate) fn test_source() -> SourceInfo {
    SourceInfo {
        kind: "memory".into(),
        server_version: None,
        endpoint: Some("memory://tests".into()),
        location: Map::new(),
    }
}

/// Writes `collections` into a new snapshot at `root`, each collection's
/// records in several `write` calls of `chunk` records.
pub(crate) fn write_snapshot(
    root: &Path,
    options: WriteOptions,
    collections: &[(CollectionSpec, Vec<Record>)],
    created_at: Option<&str>,
) -> Manifest {
    let mut writer = SnapshotWriter::create(root, options).expect("create snapshot");
    for (spec, records) in collections {
        let mut c = writer.collection(spec, None).expect("start collection");
        for chunk in records.chunks(13) {
            c.write(chunk.to_vec()).expect("write records");
        }
        writer.add(c.finish().expect("finish collection"));
    }
    match created_at {
        Some(t) => writer.finish_at(test_source(), t.into()),
        None => writer.finish(test_source()),
    }
    .expect("finish snapshot")
}

/// Every record of collection `name`, in order.
pub(crate) fn read_collection(snapshot: &Snapshot, name: &str) -> Vec<Record> {
    let c = snapshot
        .collection(name)
        .unwrap_or_else(|| panic!("collection {name:?} missing"));
    let mut out = Vec::new();
    for batch in snapshot.records(c, 5) {
        out.extend(batch.unwrap_or_else(|e| panic!("reading {name:?}: {e}")));
    }
    out
}

/// Asserts that two record lists are equal in order: ids, namespaces,
/// documents and URIs equal, vectors bit for bit, metadata equal as JSON
/// and as text (key order, `-0.0`, integer vs float).
pub(crate) fn assert_same_records(expected: &[Record], actual: &[Record], at: &str) {
    assert_eq!(expected.len(), actual.len(), "{at}: record count");
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if let Some(d) = data::record_difference(e, a, 0.0, 0) {
            panic!("{at}: record {i} (id {:?}): {d}", e.id);
        }
        let text = |r: &Record| {
            r.metadata
                .as_ref()
                .map(|m| serde_json::to_string(m).unwrap())
        };
        assert_eq!(text(e), text(a), "{at}: record {i}: metadata text");
    }
}

/// The compiled `spec/manifest.schema.json`, with `format` checked.
pub(crate) fn schema_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/manifest.schema.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("spec/manifest.schema.json does not compile: {e}"))
    })
}

/// Schema errors of a manifest, one line each; empty when it is valid.
pub(crate) fn schema_errors(manifest: &Value) -> Vec<String> {
    schema_validator()
        .iter_errors(manifest)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Asserts that the `manifest.json` in `root` validates against the schema.
pub(crate) fn assert_manifest_matches_schema(root: &Path) {
    let manifest = read_manifest_json(root);
    let errors = schema_errors(&manifest);
    assert!(
        errors.is_empty(),
        "{}/manifest.json does not match spec/manifest.schema.json:\n{}",
        root.display(),
        errors.join("\n")
    );
}

/// The `manifest.json` in `root`, as JSON.
pub(crate) fn read_manifest_json(root: &Path) -> Value {
    serde_json::from_slice(&fs::read(root.join(MANIFEST)).expect("read manifest"))
        .expect("manifest is JSON")
}

/// Replaces `manifest.json` with `bytes` and writes a matching checksum
/// file, so that only what the bytes say is wrong.
fn write_manifest_bytes(root: &Path, bytes: &[u8]) {
    fs::write(root.join(MANIFEST), bytes).unwrap();
    let hash = blake3::hash(bytes).to_hex();
    fs::write(
        root.join(MANIFEST_CHECKSUM),
        format!("{hash}  {MANIFEST}\n"),
    )
    .unwrap();
}

/// Edits `manifest.json` as JSON and rewrites its checksum consistently.
pub(crate) fn rewrite_manifest(root: &Path, edit: impl FnOnce(&mut Value)) {
    let mut m = read_manifest_json(root);
    edit(&mut m);
    let mut bytes = serde_json::to_vec_pretty(&m).unwrap();
    bytes.push(b'\n');
    write_manifest_bytes(root, &bytes);
}

/// Copies a directory tree (regular files and directories only).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Path of part `part` of collection `collection` (indices into the manifest).
fn part_file(root: &Path, manifest: &Manifest, collection: usize, part: usize) -> PathBuf {
    let c = &manifest.collections[collection];
    root.join(&c.directory).join(&c.parts[part].path)
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0xFF;
    fs::write(path, bytes).unwrap();
}

/// The error of `Snapshot::open`, which must fail.
fn open_error(root: &Path) -> Error {
    match Snapshot::open(root) {
        Ok(_) => panic!("{} opened, but it must be refused", root.display()),
        Err(e) => e,
    }
}

/// Asserts that opening `root` fails with an error whose file is `manifest.json`.
fn assert_refused_naming_manifest(root: &Path, case: &str) {
    let e = open_error(root);
    let file = match &e {
        Error::InvalidSnapshot { file, .. }
        | Error::ChecksumMismatch { file, .. }
        | Error::ManifestChecksumMismatch { manifest: file, .. } => file,
        other => {
            panic!("{case}: expected an invalid-snapshot error naming manifest.json, got {other:?}")
        }
    };
    assert_eq!(file, &root.join(MANIFEST), "{case}: {e}");
    assert!(e.to_string().contains(MANIFEST), "{case}: {e}");
}

/// Runs an import of `root` into a fresh memory store; returns the result
/// and the collections the store holds afterwards.
fn import_into_memory(
    root: &Path,
) -> (
    vecport::Result<vecport::pipeline::ImportReport>,
    Vec<String>,
    Memory,
) {
    let store = support::unique_name("snapshot-format");
    let memory = Memory::new(&store, None, FULL);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(import(root, &memory, &ImportOptions::default(), &Quiet));
    let listed = rt
        .block_on(Source::list(&memory))
        .expect("list the memory store");
    (result, listed.into_iter().map(|c| c.name).collect(), memory)
}

/// Asserts that importing `root` fails and leaves the target empty.
fn assert_import_writes_nothing(root: &Path, case: &str) {
    let (result, listed, _) = import_into_memory(root);
    match result {
        Ok(r) => panic!("{case}: the import succeeded ({:?})", r.collections),
        Err(e) => assert!(
            listed.is_empty(),
            "{case}: import failed ({e}) but left collections {listed:?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// Property: arbitrary records round-trip bit for bit
// ---------------------------------------------------------------------------

/// Bit patterns that must survive: signed zeros, subnormals, extremes,
/// infinities, quiet and signalling NaNs with payloads.
const SPECIAL_F32_BITS: [u32; 14] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007F_FFFF,
    0x0080_0000,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0x7F80_0001,
    0xFFFF_FFFF,
    0x7FA0_BEEF,
];

fn f32_strategy(nan: bool) -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => any::<u32>(),
        1 => prop::sample::select(&SPECIAL_F32_BITS[..]),
    ]
    .prop_map(f32::from_bits)
    .prop_filter("NaN excluded in this case", move |f| nan || !f.is_nan())
}

fn f32s(nan: bool, n: impl Into<prop::collection::SizeRange>) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(f32_strategy(nan), n)
}

#[derive(Debug, Clone, Copy)]
enum IdMode {
    String,
    Uint,
    Uuid,
    Mixed,
}

fn uint_id() -> impl Strategy<Value = RecordId> {
    prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 53), any::<u64>()].prop_map(RecordId::Uint)
}

fn uuid_id() -> impl Strategy<Value = RecordId> {
    prop_oneof![Just(0u128), Just(u128::MAX), any::<u128>()]
        .prop_map(|n| RecordId::Uuid(uuid::Uuid::from_u128(n)))
}

fn id_strategy(mode: IdMode) -> BoxedStrategy<RecordId> {
    match mode {
        IdMode::String => prop_oneof![
            any::<String>(),
            Just(String::new()),
            Just("123".to_owned()),
            Just("6ba7b810-9dad-11d1-80b4-00c04fd430c8".to_owned()),
            prop::sample::select(data::awkward_ids()),
        ]
        .prop_map(RecordId::String)
        .boxed(),
        IdMode::Uint => uint_id().boxed(),
        IdMode::Uuid => uuid_id().boxed(),
        IdMode::Mixed => prop_oneof![uint_id(), uuid_id()].boxed(),
    }
}

/// Arbitrary unicode, plus some strings that are hard on JSON and Parquet.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => Just(String::new()),
        1 => Just("\0\u{1}\"\\\n\u{2028}😀 ünï".to_owned()),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            json!(u64::MAX),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(0),
            json!(-0.0),
            json!(2.0),
            json!(5e-324),
            json!(f64::MAX),
            json!(f64::MIN_POSITIVE),
            json!(0.1),
            json!(9_007_199_254_740_993u64),
        ]),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A value nested `depth` levels deep, alternating objects and arrays.
fn deep_value() -> impl Strategy<Value = Value> {
    (5usize..10, json_leaf(), text()).prop_map(|(depth, leaf, key)| {
        (0..depth).fold(leaf, |v, level| {
            if level % 2 == 0 {
                json!({ key.clone(): v, "level": level })
            } else {
                json!([v, level, null])
            }
        })
    })
}

fn metadata_strategy() -> impl Strategy<Value = Option<Metadata>> {
    prop::option::weighted(
        0.8,
        (
            prop::collection::vec((text(), json_value()), 0..6),
            prop::option::of(deep_value()),
        )
            .prop_map(|(pairs, deep)| {
                let mut m: Metadata = pairs.into_iter().collect();
                if let Some(d) = deep {
                    m.insert("deep ünï 🌲".into(), d);
                }
                m
            }),
    )
}

/// The shape of one collection: its name, id mode and vector fields.
#[derive(Debug, Clone)]
struct Shape {
    name: String,
    ids: IdMode,
    declare_id_kind: bool,
    fields: Vec<VectorField>,
}

/// Field names chosen to collide: `0`, `1`, `2` name columns `vector_0`…
/// exactly like non-simple names at those positions do.
const FIELD_NAMES: [&str; 10] = [
    "",
    "text",
    "img",
    "0",
    "1",
    "2",
    "a b",
    "text-sparse",
    "ünï",
    "x_very_long_name_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

fn fields_strategy() -> impl Strategy<Value = Vec<VectorField>> {
    let kind = prop_oneof![
        3 => (1u32..7).prop_map(|d| (VectorKind::Dense, Some(d))),
        1 => Just((VectorKind::Sparse, None)),
        1 => (1u32..4).prop_map(|d| (VectorKind::Multi, Some(d))),
    ];
    let metric = prop::option::of(prop::sample::select(vec![
        Metric::Cosine,
        Metric::Dot,
        Metric::L2,
        Metric::Manhattan,
        Metric::Hamming,
    ]));
    prop::collection::vec((kind, metric), 0..=4).prop_flat_map(|kinds| {
        let n = kinds.len();
        prop::sample::subsequence(&FIELD_NAMES[..], n)
            .prop_shuffle()
            .prop_map(move |names| {
                names
                    .into_iter()
                    .zip(&kinds)
                    .map(|(name, ((kind, dimension), metric))| VectorField {
                        name: name.to_owned(),
                        kind: *kind,
                        dimension: *dimension,
                        ..VectorField::dense(None, *metric)
                    })
                    .collect()
            })
    })
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![
            text(),
            Just("docs".to_owned()),
            Just("Docs".to_owned()),
            Just("..".to_owned())
        ],
        prop::sample::select(vec![
            IdMode::String,
            IdMode::Uint,
            IdMode::Uuid,
            IdMode::Mixed,
        ]),
        any::<bool>(),
        fields_strategy(),
    )
        .prop_map(|(name, ids, declare_id_kind, fields)| Shape {
            name,
            ids,
            declare_id_kind,
            fields,
        })
}

fn vector_strategy(field: &VectorField, nan: bool) -> BoxedStrategy<Option<Vector>> {
    let dim = field.dimension.unwrap_or(0) as usize;
    let value = match field.kind {
        VectorKind::Dense => f32s(nan, dim).prop_map(Vector::Dense).boxed(),
        VectorKind::Sparse => prop::collection::vec((any::<u32>(), f32_strategy(nan)), 0..6)
            .prop_map(|pairs| {
                let (indices, values) = pairs.into_iter().unzip();
                Vector::Sparse(SparseVector { indices, values })
            })
            .boxed(),
        VectorKind::Multi => prop::collection::vec(f32s(nan, dim), 0..4)
            .prop_map(Vector::Multi)
            .boxed(),
    };
    prop::option::weighted(0.85, value).boxed()
}

fn record_strategy(shape: &Shape, nan: bool) -> impl Strategy<Value = Record> + use<> {
    let vectors: Vec<_> = shape
        .fields
        .iter()
        .map(|f| vector_strategy(f, nan))
        .collect();
    (
        id_strategy(shape.ids),
        prop::option::of(prop_oneof![
            3 => prop::sample::select(vec!["tenant-a".to_owned(), "テナント".to_owned(), String::new()]),
            1 => text(),
        ]),
        vectors,
        metadata_strategy(),
        prop::option::of(text()),
        prop::option::weighted(0.3, text()),
    )
        .prop_map(|(id, namespace, vectors, metadata, document, uri)| Record {
            id,
            namespace,
            vectors,
            metadata,
            document,
            uri,
        })
}

/// One generated snapshot: up to two collections with up to 120 records each.
#[derive(Debug, Clone)]
struct Case {
    collections: Vec<(CollectionSpec, Vec<Record>)>,
    compression: VectorCompression,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(shape_strategy(), 1..=2),
        any::<bool>(),
        prop::sample::select(vec![VectorCompression::None, VectorCompression::Zstd]),
    )
        .prop_filter("collection names are distinct", |(shapes, _, _)| {
            shapes.iter().map(|s| &s.name).collect::<HashSet<_>>().len() == shapes.len()
                && shapes.iter().all(|s| !s.name.is_empty())
        })
        .prop_flat_map(|(shapes, nan, compression)| {
            let collections: Vec<_> = shapes
                .into_iter()
                .map(|shape| {
                    let records = prop::collection::vec(record_strategy(&shape, nan), 0..=120);
                    (Just(shape), records)
                })
                .collect();
            (collections, Just(compression))
        })
        .prop_map(|(collections, compression)| Case {
            collections: collections
                .into_iter()
                .map(|(shape, records)| {
                    let id_kind = match shape.ids {
                        IdMode::String => IdKind::String,
                        IdMode::Uint => IdKind::Uint,
                        IdMode::Uuid => IdKind::Uuid,
                        IdMode::Mixed => IdKind::UintOrUuid,
                    };
                    let spec = CollectionSpec {
                        name: shape.name,
                        id_kind: shape.declare_id_kind.then_some(id_kind),
                        vectors: shape.fields,
                        raw_config: json!({"generated": true}),
                        collection_metadata: None,
                        count_hint: None,
                        notes: vec!["generated by proptest".into()],
                        content: None,
                    };
                    (spec, records)
                })
                .collect(),
            compression,
        })
}

/// The manifest statistics the records imply, computed independently of the writer.
fn expected_metadata_schema(records: &[Record]) -> MetadataSchema {
    let mut schema = MetadataSchema::default();
    for m in records.iter().filter_map(|r| r.metadata.as_ref()) {
        schema.records_with_metadata += 1;
        for (k, v) in m {
            let s: &mut FieldStats = schema.fields.entry(k.clone()).or_default();
            s.present += 1;
            *s.types.entry(value_type(v)).or_default() += 1;
        }
    }
    schema
}

fn expected_namespaces(records: &[Record]) -> Vec<NamespaceCount> {
    let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for r in records {
        *counts.entry(r.namespace.clone()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(name, records)| NamespaceCount { name, records })
        .collect()
}

/// Row groups and key-value metadata of every part, from the Parquet footers.
fn check_part_layout(root: &Path, manifest: &Manifest, options: &WriteOptions) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    for c in &manifest.collections {
        let last = c.parts.len().saturating_sub(1);
        for (i, p) in c.parts.iter().enumerate() {
            let path = root.join(&c.directory).join(&p.path);
            let reader = SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
            let md = reader.metadata();
            let groups: Vec<i64> = (0..md.num_row_groups())
                .map(|g| md.row_group(g).num_rows())
                .collect();
            assert!(
                groups
                    .iter()
                    .all(|&n| n > 0 && n as usize <= options.row_group_rows),
                "{}: row groups {groups:?}",
                path.display()
            );
            assert_eq!(
                groups.iter().sum::<i64>() as u64,
                p.rows,
                "{}",
                path.display()
            );
            assert!(
                p.rows < options.part_max_rows + options.row_group_rows as u64,
                "{}: {} rows",
                path.display(),
                p.rows
            );
            if i < last {
                assert!(
                    p.rows >= options.part_max_rows,
                    "{}: closed early at {} rows",
                    path.display(),
                    p.rows
                );
            }
            let kv: BTreeMap<&str, Option<&str>> = md
                .file_metadata()
                .key_value_metadata()
                .into_iter()
                .flatten()
                .map(|kv| (kv.key.as_str(), kv.value.as_deref()))
                .collect();
            assert_eq!(
                kv.get(layout::KV_FORMAT_VERSION),
                Some(&Some("1.0")),
                "{}",
                path.display()
            );
            let schema: Value = serde_json::from_str(kv[layout::KV_COLLECTION].unwrap()).unwrap();
            assert_eq!(schema["name"], json!(c.name));
        }
    }
}

fn check_round_trip(case: &Case) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let options = WriteOptions {
        vector_compression: case.compression,
        ..small_options()
    };
    let written = write_snapshot(&root, options.clone(), &case.collections, None);

    let snapshot = Snapshot::open(&root).expect("open");
    assert_eq!(
        snapshot.manifest(),
        &written,
        "the manifest read differs from the one written"
    );
    let total: usize = case.collections.iter().map(|(_, r)| r.len()).sum();
    let report = snapshot.verify();
    assert!(report.is_ok(), "verify: {:?}", report.problems);
    assert_eq!(report.rows, total as u64);
    assert_eq!(
        report.files,
        written
            .collections
            .iter()
            .map(|c| c.parts.len())
            .sum::<usize>()
    );
    assert_manifest_matches_schema(&root);
    check_part_layout(&root, &written, &options);

    let m = snapshot.manifest();
    assert_eq!(m.format_version, "1.0");
    assert_eq!(m.collections.len(), case.collections.len());
    let mut columns_seen = HashSet::new();
    for ((spec, records), c) in case.collections.iter().zip(&m.collections) {
        let at = format!("collection {:?}", spec.name);
        assert_eq!(c.name, spec.name);
        assert!(
            columns_seen.insert(c.directory.to_ascii_lowercase()),
            "{at}: directory reused"
        );
        assert_eq!(c.record_count, records.len() as u64, "{at}");
        assert_eq!(
            c.parts.iter().map(|p| p.rows).sum::<u64>(),
            records.len() as u64,
            "{at}"
        );
        assert_eq!(c.namespaces, expected_namespaces(records), "{at}");
        assert_eq!(c.metadata_schema, expected_metadata_schema(records), "{at}");
        assert_eq!(
            c.has_documents,
            records.iter().any(|r| r.document.is_some()),
            "{at}"
        );
        assert_eq!(c.has_uris, records.iter().any(|r| r.uri.is_some()), "{at}");
        let kind = spec
            .id_kind
            .or_else(|| records.iter().map(|r| r.id.kind()).reduce(IdKind::union))
            .unwrap_or(IdKind::String);
        assert_eq!(c.id_kind, kind, "{at}");
        let fields: Vec<&VectorField> = c.vectors.iter().map(|v| &v.field).collect();
        assert_eq!(fields, spec.vectors.iter().collect::<Vec<_>>(), "{at}");
        let columns: HashSet<&str> = c.vectors.iter().map(|v| v.column.as_str()).collect();
        assert_eq!(
            columns.len(),
            c.vectors.len(),
            "{at}: vector columns clash: {:?}",
            c.vectors
        );

        let read = read_collection(&snapshot, &spec.name);
        assert_same_records(records, &read, &at);

        // The same rows as blocks, each row read into one reused record.
        let mut scratch = Record::dense(RecordId::String(String::new()), Vec::new());
        let mut next = 0;
        for block in snapshot.blocks(c, 6) {
            let block = block.unwrap_or_else(|e| panic!("{at}: blocks: {e}"));
            assert!(!block.is_empty() && block.len() <= 6, "{at}: block size");
            for row in 0..block.len() {
                let expected = &records[next];
                block.read_into(row, &mut scratch).unwrap();
                let at = format!("{at}: block row {next}");
                assert_same_records(
                    std::slice::from_ref(expected),
                    std::slice::from_ref(&scratch),
                    &at,
                );
                assert_eq!(block.id(row), expected.id.to_string(), "{at}");
                for (field, value) in expected.vectors.iter().enumerate() {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let expected = value.as_ref().and_then(Vector::as_dense).map(bits);
                    assert_eq!(block.dense(field, row).map(bits), expected, "{at}");
                }
                next += 1;
            }
        }
        assert_eq!(next, records.len(), "{at}: rows in blocks");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Arbitrary records → SnapshotWriter → Snapshot::open → records(): the
    /// same records in the same order, bit for bit, with a consistent manifest.
    #[test]
    fn arbitrary_records_round_trip_bit_exact(case in case_strategy()) {
        check_round_trip(&case);
    }
}

/// A field named `0` and a non-simple name at position 0 both map to
/// `vector_0` under the naming rule of §4.2; the writer must still give
/// them distinct columns, or it writes a snapshot nobody can open.
#[test]
fn vector_columns_never_clash() {
    let field = |name: &str, kind: VectorKind, dimension: Option<u32>| VectorField {
        name: name.into(),
        kind,
        dimension,
        ..VectorField::dense(None, Some(Metric::Dot))
    };
    let spec = CollectionSpec {
        name: "clash".into(),
        id_kind: Some(IdKind::Uint),
        vectors: vec![
            field("a b", VectorKind::Dense, Some(2)),
            field("0", VectorKind::Dense, Some(3)),
            field("1", VectorKind::Sparse, None),
            field("text-multi", VectorKind::Multi, Some(2)),
        ],
        ..CollectionSpec::default()
    };
    let records: Vec<Record> = (0..10u64)
        .map(|i| Record {
            id: RecordId::Uint(i),
            namespace: None,
            vectors: vec![
                Some(Vector::Dense(vec![i as f32, -0.0])),
                Some(Vector::Dense(vec![1.0, 2.0, i as f32])),
                Some(Vector::Sparse(SparseVector {
                    indices: vec![i as u32],
                    values: vec![0.5],
                })),
                Some(Vector::Multi(vec![vec![3.0, i as f32]])),
            ],
            metadata: None,
            document: None,
            uri: None,
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let written = write_snapshot(&root, small_options(), &[(spec, records.clone())], None);
    let columns: Vec<&str> = written.collections[0]
        .vectors
        .iter()
        .map(|v| v.column.as_str())
        .collect();
    assert_eq!(
        columns.iter().collect::<HashSet<_>>().len(),
        columns.len(),
        "{columns:?}"
    );
    // Names that do not collide keep the name of §4.2.
    assert_eq!(columns[0], "vector_0");
    let snapshot = Snapshot::open(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(snapshot.verify().is_ok());
    assert_same_records(&records, &read_collection(&snapshot, "clash"), "clash");
}

// ---------------------------------------------------------------------------
// Fixed snapshots used by the tests below
// ---------------------------------------------------------------------------

/// A chroma-like collection and a rich one, both over several parts.
fn two_collections() -> Vec<(CollectionSpec, Vec<Record>)> {
    vec![
        (
            data::spec("docs", 4, Metric::Cosine),
            data::records(40, 4, 7, data::FLAT),
        ),
        (data::rich_spec("rich"), data::rich_records(30, 8)),
    ]
}

/// Five rows a group, ten a part: `docs` gets 4 parts, `rich` 3.
fn corruption_options() -> WriteOptions {
    WriteOptions {
        row_group_rows: 5,
        part_max_rows: 10,
        parallelism: 2,
        ..WriteOptions::default()
    }
}

/// A good snapshot at `<tmp>/template`, written once per call.
fn template(tmp: &Path) -> (PathBuf, Manifest) {
    let root = tmp.join("template");
    let m = write_snapshot(&root, corruption_options(), &two_collections(), None);
    assert!(m.collections[0].parts.len() >= 3 && m.collections[1].parts.len() >= 3);
    (root, m)
}

/// A directory name for a test case: its description with every character
/// but ASCII letters and digits replaced, so that `../x` stays inside `<tmp>`.
fn case_dir(tmp: &Path, name: &str) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    tmp.join(slug)
}

/// A fresh copy of the template at `<tmp>/<case>/snap`.
fn fresh_copy(template: &Path, tmp: &Path, name: &str) -> PathBuf {
    let root = case_dir(tmp, name).join("snap");
    copy_dir(template, &root);
    root
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

/// Damages a snapshot, returning the file it damaged.
type DamagePart<'a> = Box<dyn Fn(&Path) -> PathBuf + 'a>;
/// Damages a snapshot.
type Damage<'a> = Box<dyn Fn(&Path) + 'a>;

/// Asserts that verify reports exactly one problem and that it names `file`.
fn assert_verify_names(root: &Path, file: &Path, case: &str) {
    let snapshot = Snapshot::open(root).unwrap_or_else(|e| panic!("{case}: open failed: {e}"));
    let report = snapshot.verify();
    assert_eq!(report.problems.len(), 1, "{case}: {:?}", report.problems);
    let message = report.problems[0].to_string();
    assert!(
        message.contains(&file.display().to_string()),
        "{case}: {message}"
    );
}

#[test]
fn every_flipped_byte_of_a_part_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, m) = template(tmp.path());
    // The last part of the last collection: an import that streamed before
    // verifying would already have written everything else.
    let c = m.collections.len() - 1;
    let part = part_file(&root, &m, c, m.collections[c].parts.len() - 1);
    let original = fs::read(&part).unwrap();
    assert!(
        original.len() > 1000,
        "part of {} bytes is too small to be interesting",
        original.len()
    );
    for offset in 0..original.len() {
        let mut bytes = original.clone();
        bytes[offset] ^= 0xFF;
        fs::write(&part, &bytes).unwrap();
        assert_verify_names(
            &root,
            &part,
            &format!("byte {offset} of {} flipped", part.display()),
        );
    }
    fs::write(&part, &original).unwrap();
    assert!(
        Snapshot::open(&root).unwrap().verify().is_ok(),
        "restored snapshot verifies"
    );
}

#[test]
fn every_flipped_byte_of_the_manifest_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, _) = template(tmp.path());
    let path = root.join(MANIFEST);
    let original = fs::read(&path).unwrap();
    for offset in 0..original.len() {
        let mut bytes = original.clone();
        bytes[offset] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        let e = open_error(&root);
        // Both files are named: either may be the damaged one.
        assert!(
            matches!(&e, Error::ManifestChecksumMismatch { manifest, checksum_file, .. }
                if manifest == &path && checksum_file == &root.join(MANIFEST_CHECKSUM)),
            "byte {offset} of manifest.json flipped: {e:?}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(e.to_string().contains(MANIFEST_CHECKSUM), "{e}");
        assert!(!e.to_string().contains("manifest says"), "{e}");
    }
    fs::write(&path, &original).unwrap();
    assert!(Snapshot::open(&root).is_ok());
}

#[test]
fn every_flipped_byte_of_the_manifest_checksum_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, _) = template(tmp.path());
    let path = root.join(MANIFEST_CHECKSUM);
    let original = fs::read(&path).unwrap();
    assert_eq!(original.len(), 64 + 2 + MANIFEST.len() + 1, "b3sum format");
    for offset in 0..original.len() {
        let mut bytes = original.clone();
        bytes[offset] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        let e = open_error(&root);
        let named = match &e {
            Error::InvalidSnapshot { file, .. } => file == &path,
            Error::ManifestChecksumMismatch {
                manifest,
                checksum_file,
                ..
            } => manifest == &root.join(MANIFEST) && checksum_file == &path,
            _ => false,
        };
        assert!(
            named,
            "byte {offset} of manifest.json.blake3 flipped: {e:?}"
        );
        assert!(e.to_string().contains(MANIFEST), "{e}");
    }
}

#[test]
fn truncated_deleted_and_swapped_parts_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, m) = template(tmp.path());
    let len = |p: &Path| fs::metadata(p).unwrap().len();
    let cases: Vec<(&str, DamagePart)> = vec![
        (
            "truncated by one byte",
            Box::new(|root| {
                let p = part_file(root, &m, 1, 2);
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(len(&p) - 1).unwrap();
                p
            }),
        ),
        (
            "truncated to half",
            Box::new(|root| {
                let p = part_file(root, &m, 0, 1);
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(len(&p) / 2).unwrap();
                p
            }),
        ),
        (
            "truncated to nothing",
            Box::new(|root| {
                let p = part_file(root, &m, 0, 0);
                fs::write(&p, b"").unwrap();
                p
            }),
        ),
        (
            "one byte appended",
            Box::new(|root| {
                let p = part_file(root, &m, 1, 0);
                let mut b = fs::read(&p).unwrap();
                b.push(0);
                fs::write(&p, b).unwrap();
                p
            }),
        ),
        (
            "deleted",
            Box::new(|root| {
                let p = part_file(root, &m, 1, 1);
                fs::remove_file(&p).unwrap();
                p
            }),
        ),
        (
            "replaced by a directory",
            Box::new(|root| {
                let p = part_file(root, &m, 0, 2);
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
                p
            }),
        ),
        (
            "replaced by another part of the same size",
            Box::new(|root| {
                // Parts of `docs` hold 10 similar records; find two of one size, or
                // pad the second to the size of the first.
                let a = part_file(root, &m, 0, 0);
                let b = part_file(root, &m, 0, 1);
                let mut bytes = fs::read(&b).unwrap();
                bytes.resize(len(&a) as usize, 0);
                fs::write(&a, bytes).unwrap();
                a
            }),
        ),
    ];
    for (name, damage) in cases {
        let root = fresh_copy(&template, tmp.path(), name);
        let file = damage(&root);
        assert_verify_names(&root, &file, name);
        assert_import_writes_nothing(&root, name);
    }
}

#[test]
fn a_newer_major_version_is_refused_naming_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, _) = template(tmp.path());
    for (name, edit) in [
        (
            "2.0, same shape",
            Box::new(|m: &mut Value| m["format_version"] = json!("2.0")) as Box<dyn Fn(&mut Value)>,
        ),
        // A future major may change the shape entirely: it is still refused
        // for its version, not for its shape.
        (
            "2.0, other shape",
            Box::new(|m: &mut Value| {
                m["format_version"] = json!("2.0");
                m.as_object_mut().unwrap().remove("collections");
                m["tables"] = json!({"x": 1});
            }),
        ),
    ] {
        let root = fresh_copy(&template, tmp.path(), name);
        rewrite_manifest(&root, edit);
        let e = open_error(&root);
        match &e {
            Error::UnsupportedVersion {
                file,
                found,
                supported,
            } => {
                assert_eq!(file, &root.join(MANIFEST), "{name}");
                assert_eq!(found, "2.0", "{name}");
                assert!(supported.starts_with("1."), "{name}: {supported}");
            }
            other => panic!("{name}: expected UnsupportedVersion, got {other:?}"),
        }
        let message = e.to_string();
        for needle in [MANIFEST, "2.0", "1.x"] {
            assert!(
                message.contains(needle),
                "{name}: {message:?} lacks {needle:?}"
            );
        }
        assert_import_writes_nothing(&root, name);
    }
}

#[test]
fn a_newer_minor_version_with_unknown_members_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, written) = template(tmp.path());
    let root = fresh_copy(&template, tmp.path(), "minor");
    rewrite_manifest(&root, |m| {
        m["format_version"] = json!("1.7");
        m["future_top_level"] = json!({"anything": [1, 2, 3]});
        m["source"]["future_source_member"] = json!(true);
        for c in m["collections"].as_array_mut().unwrap() {
            c["future_collection_member"] = json!("x");
            for v in c["vectors"].as_array_mut().unwrap() {
                v["future_vector_member"] = json!(null);
            }
            for p in c["parts"].as_array_mut().unwrap() {
                p["future_part_member"] = json!(42);
            }
        }
    });
    let snapshot = Snapshot::open(&root).unwrap_or_else(|e| panic!("1.7 must open: {e}"));
    assert_eq!(snapshot.manifest().format_version, "1.7");
    assert_eq!(snapshot.manifest().collections, written.collections);
    assert!(snapshot.verify().is_ok());
    for (spec, records) in two_collections() {
        assert_same_records(
            &records,
            &read_collection(&snapshot, &spec.name),
            &spec.name,
        );
    }
    // The schema allows unknown members and any 1.x.
    assert_manifest_matches_schema(&root);
}

#[test]
fn optional_manifest_members_may_be_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, _) = template(tmp.path());
    let root = fresh_copy(&template, tmp.path(), "sparse-manifest");
    rewrite_manifest(&root, |m| {
        m["source"] = json!({"kind": "memory"});
        for c in m["collections"].as_array_mut().unwrap() {
            let c = c.as_object_mut().unwrap();
            for k in [
                "collection_metadata",
                "raw_config",
                "embedding_model",
                "notes",
            ] {
                c.remove(k);
            }
            for v in c["vectors"].as_array_mut().unwrap() {
                let v = v.as_object_mut().unwrap();
                for k in [
                    "metric",
                    "stored_values",
                    "dimension_source",
                    "index",
                    "source_datatype",
                ] {
                    v.remove(k);
                }
            }
        }
    });
    let snapshot = Snapshot::open(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(snapshot.verify().is_ok());
    assert_manifest_matches_schema(&root);
}

// ---------------------------------------------------------------------------
// Import writes nothing from a bad snapshot
// ---------------------------------------------------------------------------

#[test]
fn import_of_a_good_snapshot_writes_everything() {
    // The control for the tests below: the same import on an intact copy works.
    let tmp = tempfile::tempdir().unwrap();
    let (root, _) = template(tmp.path());
    let (result, listed, _) = import_into_memory(&root);
    let report = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, vec!["docs".to_owned(), "rich".to_owned()]);
    let counts: Vec<u64> = report.collections.iter().map(|c| c.target_count).collect();
    assert_eq!(counts, vec![40, 30]);
}

#[test]
fn import_of_a_damaged_snapshot_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, m) = template(tmp.path());
    let last_part = |root: &Path| part_file(root, &m, 1, m.collections[1].parts.len() - 1);
    let cases: Vec<(&str, Damage)> = vec![
        (
            "first byte of the last part flipped",
            Box::new(|r| flip(&last_part(r), 0)),
        ),
        (
            "middle byte of the last part flipped",
            Box::new(|r| {
                let p = last_part(r);
                flip(&p, fs::metadata(&p).unwrap().len() as usize / 2)
            }),
        ),
        (
            "footer byte of the last part flipped",
            Box::new(|r| {
                let p = last_part(r);
                flip(&p, fs::metadata(&p).unwrap().len() as usize - 12)
            }),
        ),
        (
            "last byte of the last part flipped",
            Box::new(|r| {
                let p = last_part(r);
                flip(&p, fs::metadata(&p).unwrap().len() as usize - 1)
            }),
        ),
        (
            "manifest byte flipped",
            Box::new(|r| flip(&r.join(MANIFEST), 200)),
        ),
        (
            "manifest checksum byte flipped",
            Box::new(|r| flip(&r.join(MANIFEST_CHECKSUM), 3)),
        ),
        (
            "manifest missing",
            Box::new(|r| fs::remove_file(r.join(MANIFEST)).unwrap()),
        ),
        (
            "manifest checksum missing",
            Box::new(|r| fs::remove_file(r.join(MANIFEST_CHECKSUM)).unwrap()),
        ),
        (
            "last part truncated",
            Box::new(|r| {
                let p = last_part(r);
                let n = fs::metadata(&p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(n - 1)
                    .unwrap();
            }),
        ),
        (
            "last part deleted",
            Box::new(|r| fs::remove_file(last_part(r)).unwrap()),
        ),
        (
            "format version 2.0",
            Box::new(|r| rewrite_manifest(r, |m| m["format_version"] = json!("2.0"))),
        ),
        // Checksums pass here; the ids fail to parse only when records are
        // read, which the import does for every record before it writes.
        (
            "ids of the last collection are not uuids",
            Box::new(|r| rewrite_manifest(r, |m| m["collections"][1]["id_kind"] = json!("uuid"))),
        ),
        (
            "a dimension differs from the parts",
            Box::new(|r| {
                rewrite_manifest(r, |m| {
                    m["collections"][1]["vectors"][0]["dimension"] = json!(9)
                })
            }),
        ),
    ];
    for (name, damage) in cases {
        let root = fresh_copy(&template, tmp.path(), name);
        damage(&root);
        assert_import_writes_nothing(&root, name);
    }
}

// ---------------------------------------------------------------------------
// Hostile manifests
// ---------------------------------------------------------------------------

/// Plants files for a hostile case: `(snapshot root, directory beside it)`.
type Setup = Box<dyn Fn(&Path, &Path)>;
/// Edits the manifest of a hostile case, given the directory beside the snapshot.
type Edit = Box<dyn Fn(&mut Value, &Path)>;

/// A hostile edit of the manifest; `setup` may plant files (valid copies of
/// real parts, with the right size and hash) where the edit points, so that
/// a reader that followed the path would succeed and the test would notice.
struct Hostile {
    name: &'static str,
    setup: Setup,
    edit: Edit,
    /// Whether `spec/manifest.schema.json` can express the rule (and so must
    /// reject the manifest too).
    schema_rejects: bool,
}

fn hostile(
    name: &'static str,
    schema_rejects: bool,
    setup: impl Fn(&Path, &Path) + 'static,
    edit: impl Fn(&mut Value, &Path) + 'static,
) -> Hostile {
    Hostile {
        name,
        setup: Box::new(setup),
        edit: Box::new(edit),
        schema_rejects,
    }
}

fn no_setup(_: &Path, _: &Path) {}

/// `collections/<dir of docs>`, from the manifest at `root`.
fn docs_dir(root: &Path) -> PathBuf {
    root.join(
        read_manifest_json(root)["collections"][0]["directory"]
            .as_str()
            .unwrap(),
    )
}

fn plant_part_copy(root: &Path, at: &Path) {
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    fs::copy(docs_dir(root).join("part-000000.parquet"), at).unwrap();
}

/// The first part of the first collection.
fn part0(m: &mut Value) -> &mut Value {
    &mut m["collections"][0]["parts"][0]
}

fn hostile_cases() -> Vec<Hostile> {
    vec![
        hostile(
            "part path ../x.parquet",
            true,
            |root, _| plant_part_copy(root, &root.join("collections/x.parquet")),
            |m, _| part0(m)["path"] = json!("../x.parquet"),
        ),
        hostile("part path /etc/passwd", true, no_setup, |m, _| {
            part0(m)["path"] = json!("/etc/passwd")
        }),
        hostile(
            "absolute part path to a valid part outside",
            true,
            |root, outside| plant_part_copy(root, &outside.join("stolen.parquet")),
            |m, outside| part0(m)["path"] = json!(outside.join("stolen.parquet")),
        ),
        hostile(
            "part path a/b.parquet",
            true,
            |root, _| plant_part_copy(root, &docs_dir(root).join("a/b.parquet")),
            |m, _| part0(m)["path"] = json!("a/b.parquet"),
        ),
        hostile("part path ./part-000000.parquet", true, no_setup, |m, _| {
            part0(m)["path"] = json!("./part-000000.parquet")
        }),
        hostile("part path with a backslash", true, no_setup, |m, _| {
            part0(m)["path"] = json!("..\\..\\x.parquet")
        }),
        hostile("part path with a drive", true, no_setup, |m, _| {
            part0(m)["path"] = json!("C:x.parquet")
        }),
        hostile("part path with NUL", true, no_setup, |m, _| {
            part0(m)["path"] = json!("x\u{0}.parquet")
        }),
        hostile("empty part path", true, no_setup, |m, _| {
            part0(m)["path"] = json!("")
        }),
        hostile(
            "part path not .parquet",
            true,
            |root, _| plant_part_copy(root, &docs_dir(root).join("part.txt")),
            |m, _| part0(m)["path"] = json!("part.txt"),
        ),
        hostile("part listed twice", false, no_setup, |m, _| {
            let c = &mut m["collections"][0];
            let p = c["parts"][0].clone();
            let rows = p["rows"].as_u64().unwrap();
            c["parts"].as_array_mut().unwrap().push(p);
            c["record_count"] = json!(c["record_count"].as_u64().unwrap() + rows);
            c["namespaces"][0]["records"] =
                json!(c["namespaces"][0]["records"].as_u64().unwrap() + rows);
        }),
        hostile(
            "directory collections/../../x",
            true,
            |root, _| copy_dir(&docs_dir(root), &root.join("../../x")),
            |m, _| m["collections"][0]["directory"] = json!("collections/../../x"),
        ),
        hostile("directory collections/..", true, no_setup, |m, _| {
            m["collections"][0]["directory"] = json!("collections/..")
        }),
        hostile(
            "directory collections/.",
            true,
            |root, _| {
                fs::copy(
                    docs_dir(root).join("part-000000.parquet"),
                    root.join("collections/part-000000.parquet"),
                )
                .map(drop)
                .unwrap()
            },
            |m, _| m["collections"][0]["directory"] = json!("collections/."),
        ),
        hostile(
            "directory outside collections/",
            true,
            |root, _| copy_dir(&docs_dir(root), &root.join("other/docs")),
            |m, _| m["collections"][0]["directory"] = json!("other/docs"),
        ),
        hostile(
            "directory of one component",
            true,
            |root, _| copy_dir(&docs_dir(root), &root.join("docs")),
            |m, _| m["collections"][0]["directory"] = json!("docs"),
        ),
        hostile(
            "directory of three components",
            true,
            |root, _| copy_dir(&docs_dir(root), &root.join("collections/a/docs")),
            |m, _| m["collections"][0]["directory"] = json!("collections/a/docs"),
        ),
        hostile(
            "absolute directory",
            true,
            |root, outside| copy_dir(&docs_dir(root), &outside.join("docs")),
            |m, outside| m["collections"][0]["directory"] = json!(outside.join("docs")),
        ),
        hostile(
            "two collections in one directory (ignoring case)",
            false,
            no_setup,
            |m, _| {
                let d = m["collections"][0]["directory"]
                    .as_str()
                    .unwrap()
                    .to_ascii_uppercase()
                    .replace("COLLECTIONS", "collections");
                m["collections"][1]["directory"] = json!(d);
            },
        ),
        hostile("duplicate collection names", false, no_setup, |m, _| {
            m["collections"][1]["name"] = m["collections"][0]["name"].clone();
        }),
        hostile("empty collection name", true, no_setup, |m, _| {
            m["collections"][0]["name"] = json!("")
        }),
        hostile(
            "collection name over 65,536 bytes",
            false,
            no_setup,
            |m, _| m["collections"][0]["name"] = json!("é".repeat(32_769)),
        ),
        hostile(
            "record_count above the parts' rows",
            false,
            no_setup,
            |m, _| {
                let c = &mut m["collections"][0];
                c["record_count"] = json!(c["record_count"].as_u64().unwrap() + 1);
                c["namespaces"][0]["records"] =
                    json!(c["namespaces"][0]["records"].as_u64().unwrap() + 1);
            },
        ),
        hostile(
            "record_count below the parts' rows",
            false,
            no_setup,
            |m, _| {
                let c = &mut m["collections"][0];
                c["record_count"] = json!(c["record_count"].as_u64().unwrap() - 1);
                c["namespaces"][0]["records"] =
                    json!(c["namespaces"][0]["records"].as_u64().unwrap() - 1);
            },
        ),
        hostile("namespace counts do not add up", false, no_setup, |m, _| {
            m["collections"][1]["namespaces"][0]["records"] = json!(0);
        }),
        hostile("namespace counts overflow u64", false, no_setup, |m, _| {
            let ns = m["collections"][1]["namespaces"].as_array_mut().unwrap();
            ns[0]["records"] = json!(u64::MAX);
            ns[1]["records"] = json!(u64::MAX);
        }),
        hostile("absurd rows", true, no_setup, |m, _| {
            part0(m)["rows"] = json!(u64::MAX);
            m["collections"][0]["record_count"] = json!(u64::MAX);
            m["collections"][0]["namespaces"][0]["records"] = json!(u64::MAX);
        }),
        hostile(
            "rows just over 2^32 in every part",
            true,
            no_setup,
            |m, _| {
                let c = &mut m["collections"][0];
                let n = c["parts"].as_array().unwrap().len() as u64;
                for p in c["parts"].as_array_mut().unwrap() {
                    p["rows"] = json!((1u64 << 32) + 1);
                }
                c["record_count"] = json!(n * ((1u64 << 32) + 1));
                c["namespaces"][0]["records"] = json!(n * ((1u64 << 32) + 1));
            },
        ),
        hostile("absurd bytes", true, no_setup, |m, _| {
            part0(m)["bytes"] = json!(u64::MAX)
        }),
        hostile("bytes just over 2^40", true, no_setup, |m, _| {
            part0(m)["bytes"] = json!((1u64 << 40) + 1)
        }),
        hostile("negative rows", true, no_setup, |m, _| {
            part0(m)["rows"] = json!(-1)
        }),
        hostile("rows beyond u64", true, no_setup, |m, _| {
            part0(m)["rows"] = json!(1e30)
        }),
        hostile("dense dimension 0", true, no_setup, |m, _| {
            m["collections"][0]["vectors"][0]["dimension"] = json!(0)
        }),
        hostile("dense dimension 2^31", true, no_setup, |m, _| {
            m["collections"][0]["vectors"][0]["dimension"] = json!(1u64 << 31)
        }),
        hostile("dense dimension u32::MAX", true, no_setup, |m, _| {
            m["collections"][0]["vectors"][0]["dimension"] = json!(u32::MAX)
        }),
        hostile("dense dimension 2^32", true, no_setup, |m, _| {
            m["collections"][0]["vectors"][0]["dimension"] = json!(1u64 << 32)
        }),
        hostile("multi dimension 2^31", true, no_setup, |m, _| {
            m["collections"][1]["vectors"][2]["dimension"] = json!(1u64 << 31)
        }),
        hostile(
            "dense dimension missing with records",
            true,
            no_setup,
            |m, _| {
                m["collections"][0]["vectors"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("dimension");
            },
        ),
        hostile(
            "vector column named like a fixed column",
            true,
            no_setup,
            |m, _| m["collections"][0]["vectors"][0]["column"] = json!("id"),
        ),
        hostile(
            "two vector fields in one column",
            false,
            no_setup,
            |m, _| {
                let c = &mut m["collections"][1]["vectors"];
                c[1]["column"] = c[0]["column"].clone();
            },
        ),
        hostile("blake3 not hex", true, no_setup, |m, _| {
            part0(m)["blake3"] = json!("z".repeat(64))
        }),
        hostile("blake3 in upper case", true, no_setup, |m, _| {
            let h = part0(m)["blake3"].as_str().unwrap().to_ascii_uppercase();
            part0(m)["blake3"] = json!(h);
        }),
        hostile("blake3 too short", true, no_setup, |m, _| {
            let h = part0(m)["blake3"].as_str().unwrap()[1..].to_owned();
            part0(m)["blake3"] = json!(h);
        }),
        hostile("blake3 of multi-byte characters", true, no_setup, |m, _| {
            part0(m)["blake3"] = json!("é".repeat(32))
        }),
        hostile("unknown id kind", true, no_setup, |m, _| {
            m["collections"][0]["id_kind"] = json!("int64")
        }),
        hostile("unknown vector kind", true, no_setup, |m, _| {
            m["collections"][0]["vectors"][0]["kind"] = json!("binary")
        }),
        hostile("not a vecport snapshot", true, no_setup, |m, _| {
            m["format"] = json!("lance")
        }),
        hostile("format_version not MAJOR.MINOR", true, no_setup, |m, _| {
            m["format_version"] = json!("1")
        }),
        hostile("format_version a number", true, no_setup, |m, _| {
            m["format_version"] = json!(1.0)
        }),
        hostile("collections missing", true, no_setup, |m, _| {
            m.as_object_mut().unwrap().remove("collections");
        }),
        hostile("collections not an array", true, no_setup, |m, _| {
            m["collections"] = json!({"docs": {}})
        }),
        hostile("manifest is an array", true, no_setup, |m, _| {
            *m = json!([1, 2, 3])
        }),
    ]
}

#[test]
fn hostile_manifests_are_refused_naming_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, _) = template(tmp.path());
    for case in hostile_cases() {
        // <tmp>/<case>/snap is the snapshot; <tmp>/<case>/outside is beside it.
        let root = fresh_copy(&template, tmp.path(), case.name);
        let outside = case_dir(tmp.path(), case.name).join("outside");
        fs::create_dir_all(&outside).unwrap();
        (case.setup)(&root, &outside);
        rewrite_manifest(&root, |m| (case.edit)(m, &outside));
        assert_refused_naming_manifest(&root, case.name);
        assert_eq!(
            schema_errors(&read_manifest_json(&root)).is_empty(),
            !case.schema_rejects,
            "{}: spec/manifest.schema.json {} this manifest",
            case.name,
            if case.schema_rejects {
                "accepts"
            } else {
                "rejects"
            }
        );
        assert_import_writes_nothing(&root, case.name);
    }
}

/// Manifest bytes that are not a manifest at all: each refused naming it.
#[test]
fn malformed_manifest_text_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (template, _) = template(tmp.path());
    let original = fs::read(template.join(MANIFEST)).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated JSON", original[..original.len() / 2].to_vec()),
        ("not UTF-8", vec![0xFF, 0xFE, b'{', b'}']),
        ("nested 100,000 deep", deep.into_bytes()),
        ("trailing garbage", [&original[..], b"{}"].concat()),
        ("null", b"null".to_vec()),
    ];
    for (name, bytes) in cases {
        let root = fresh_copy(&template, tmp.path(), name);
        write_manifest_bytes(&root, &bytes);
        assert_refused_naming_manifest(&root, name);
        assert_import_writes_nothing(&root, name);
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_snapshot_are_refused() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let (template, m) = template(tmp.path());

    // A part that is a symlink to an identical copy outside: same bytes, same
    // hash, so only the refusal of symlinks can catch it.
    let root = fresh_copy(&template, tmp.path(), "symlinked part");
    let part = part_file(&root, &m, 0, 1);
    let outside = case_dir(tmp.path(), "symlinked part").join("outside.parquet");
    fs::rename(&part, &outside).unwrap();
    symlink(&outside, &part).unwrap();
    assert_verify_names(&root, &part, "symlinked part");
    let snapshot = Snapshot::open(&root).unwrap();
    let e = snapshot
        .records(snapshot.collection("docs").unwrap(), 100)
        .find_map(Result::err)
        .expect("reading through a symlinked part fails");
    assert!(e.to_string().contains(&part.display().to_string()), "{e}");
    assert_import_writes_nothing(&root, "symlinked part");

    // A collection directory that is a symlink to an identical copy outside.
    let root = fresh_copy(&template, tmp.path(), "symlinked directory");
    let dir = root.join(&m.collections[1].directory);
    let outside = case_dir(tmp.path(), "symlinked directory").join("outside");
    fs::rename(&dir, &outside).unwrap();
    symlink(&outside, &dir).unwrap();
    let report = Snapshot::open(&root).unwrap().verify();
    assert_eq!(
        report.problems.len(),
        m.collections[1].parts.len(),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.to_string().contains(&dir.display().to_string())),
        "{:?}",
        report.problems
    );
    assert_import_writes_nothing(&root, "symlinked collection directory");

    // `collections/` itself a symlink.
    let root = fresh_copy(&template, tmp.path(), "symlinked collections");
    let dir = root.join(layout::COLLECTIONS_DIR);
    let outside = case_dir(tmp.path(), "symlinked collections").join("outside");
    fs::rename(&dir, &outside).unwrap();
    symlink(&outside, &dir).unwrap();
    let report = Snapshot::open(&root).unwrap().verify();
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.to_string().contains(&dir.display().to_string())),
        "{:?}",
        report.problems
    );
    assert_import_writes_nothing(&root, "symlinked collections directory");

    // manifest.json a symlink to a valid manifest outside.
    let root = fresh_copy(&template, tmp.path(), "symlinked manifest");
    let outside = case_dir(tmp.path(), "symlinked manifest").join("manifest.json");
    fs::rename(root.join(MANIFEST), &outside).unwrap();
    symlink(&outside, root.join(MANIFEST)).unwrap();
    assert_refused_naming_manifest(&root, "symlinked manifest");
}

// ---------------------------------------------------------------------------
// JSON Schema
// ---------------------------------------------------------------------------

#[test]
fn manifests_match_the_json_schema() {
    let tmp = tempfile::tempdir().unwrap();
    // The rich collection alone.
    let rich = tmp.path().join("rich");
    write_snapshot(
        &rich,
        small_options(),
        &[(data::rich_spec("rich"), data::rich_records(60, 3))],
        None,
    );
    // Collections without records, one without any declared dimension.
    let empty = tmp.path().join("empty");
    let mut undeclared = data::rich_spec("no dimensions yet");
    for v in &mut undeclared.vectors {
        v.dimension = None;
    }
    write_snapshot(
        &empty,
        small_options(),
        &[
            (data::spec("empty", 3, Metric::L2), Vec::new()),
            (undeclared, Vec::new()),
        ],
        None,
    );
    // Many collections with awkward names.
    let multi = tmp.path().join("multi");
    let mut collections = two_collections();
    for (i, name) in ["Docs", "a/b", "..", "ünï 日本", &"é".repeat(200)]
        .into_iter()
        .enumerate()
    {
        collections.push((
            data::spec(name, 3, Metric::Dot),
            data::records(i * 4, 3, i as u64, data::FULL),
        ));
    }
    write_snapshot(&multi, small_options(), &collections, None);
    // The empty snapshot.
    let nothing = tmp.path().join("nothing");
    write_snapshot(&nothing, small_options(), &[], None);

    for root in [&rich, &empty, &multi, &nothing] {
        Snapshot::open(root).unwrap_or_else(|e| panic!("{e}"));
        assert_manifest_matches_schema(root);
    }
}

#[test]
fn the_json_schema_can_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    write_snapshot(&root, small_options(), &two_collections(), None);
    let good = read_manifest_json(&root);
    assert!(schema_errors(&good).is_empty());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut m = good.clone();
        edit(&mut m);
        schema_errors(&m)
    };
    let errors = broken(&|m| {
        m.as_object_mut().unwrap().remove("collections");
    });
    assert!(
        errors.iter().any(|e| e.contains("collections")),
        "{errors:?}"
    );
    assert!(!broken(&|m| m["format_version"] = json!("2.0")).is_empty());
    assert!(
        !broken(&|m| m["created_at"] = json!("yesterday")).is_empty(),
        "date-time format is checked"
    );
    assert!(!broken(&|m| m["collections"][0]["parts"][0]["blake3"] = json!("0")).is_empty());
    assert!(!broken(&|m| m["collections"][1]["vectors"][1]["kind"] = json!("binary")).is_empty());
}
