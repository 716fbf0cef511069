//! Parts that are consistent with their hashes but not with themselves:
//! a damaged footer fails `verify` (and `import`, `compare`, naming the part,
//! exit 3, never a panic's message); metadata no reader can hold is a
//! damaged part, not a refused record; a part changed after it was verified
//! stops an import naming it; and mutated part bytes with the manifest's
//! hashes recomputed never make `verify`, `verify --deep` or the import
//! read path panic.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use predicates::prelude::*;
use proptest::prelude::*;
use serde_json::json;
use vecport::Error;
use vecport::connectors::memory::{FULL, Memory};
use vecport::error::Category;
use vecport::model::{
    CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, SparseVector, Vector, VectorField,
    VectorKind,
};
use vecport::pipeline::{ImportOptions, Observer, Quiet, import};
use vecport::snapshot::{Snapshot, WriteOptions};

use crate::readers::{rehash, write_part};
use crate::snapshot_format::write_snapshot;
use crate::support::cli::vecport;
use crate::support::unique_name;

/// A value no other float of the test records has, to find in the part.
const MARK: f32 = 1234.5;

fn spec() -> CollectionSpec {
    let field = |name: &str, kind: VectorKind, dimension: Option<u32>| VectorField {
        name: name.into(),
        kind,
        dimension,
        ..VectorField::dense(None, Some(Metric::Dot))
    };
    CollectionSpec {
        name: "docs".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![
            field("", VectorKind::Dense, Some(4)),
            field("s", VectorKind::Sparse, None),
            field("m", VectorKind::Multi, Some(2)),
        ],
        ..CollectionSpec::default()
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let dense = (i % 7 != 3).then(|| {
                Vector::Dense(
                    (0..4)
                        .map(|j| {
                            if i == 5 && j == 2 {
                                MARK
                            } else {
                                (i * 4 + j) as f32 * 0.5
                            }
                        })
                        .collect(),
                )
            });
            let sparse = (i % 3 != 1).then(|| {
                Vector::Sparse(SparseVector {
                    indices: vec![i as u32, i as u32 + 9],
                    values: vec![0.25, -1.5],
                })
            });
            let multi = (i % 4 != 0).then(|| Vector::Multi(vec![vec![1.0, i as f32]; i % 3]));
            let metadata: Option<Metadata> = (i % 2 == 0).then(|| {
                serde_json::from_value(json!({"i": i, "t": format!("x{i}"), "l": [1, 2.5]}))
                    .unwrap()
            });
            Record {
                id: RecordId::String(format!("r-{i:03}")),
                namespace: (i % 5 == 1).then(|| "ns".to_owned()),
                vectors: vec![dense, sparse, multi],
                metadata,
                document: (i % 2 == 1).then(|| format!("doc {i}")),
                uri: None,
            }
        })
        .collect()
}

/// A snapshot of `n` records at `root` in one part of several row groups
/// (vector columns uncompressed, so their values are in the file as they
/// are); returns the part's path.
fn snapshot(root: &Path, n: usize) -> PathBuf {
    let options = WriteOptions {
        row_group_rows: 6,
        part_max_rows: 100_000,
        ..WriteOptions::default()
    };
    let m = write_snapshot(root, options, &[(spec(), records(n))], None);
    let c = &m.collections[0];
    root.join(&c.directory).join(&c.parts[0].path)
}

fn all(s: &Snapshot) -> Vec<&vecport::snapshot::CollectionManifest> {
    s.manifest().collections.iter().collect()
}

/// The import read path over a fresh memory store.
fn import_result(root: &Path, observer: &dyn Observer) -> vecport::Result<()> {
    let memory = Memory::new(&unique_name("hostile"), None, FULL);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(import(root, &memory, &ImportOptions::default(), observer))
        .map(|_| ())
}

#[test]
fn a_hash_consistent_part_with_a_damaged_footer_fails_verify_import_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let part = snapshot(&root, 40);
    let mut bytes = fs::read(&part).unwrap();
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    // Garbage over the middle of the footer's thrift: its length and magic stay.
    let start = n - 8 - footer + footer / 3;
    bytes[start..start + footer / 3].fill(0xEE);
    fs::write(&part, &bytes).unwrap();
    rehash(&root);

    let report = Snapshot::open(&root).unwrap().verify();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].category(), Category::Snapshot);
    assert!(
        report.problems[0]
            .to_string()
            .contains(&part.display().to_string()),
        "{}",
        report.problems[0]
    );
    let no_panic = || predicate::str::contains("panicked").not();
    for deep in [false, true] {
        let mut cmd = vecport();
        cmd.arg("verify");
        if deep {
            cmd.arg("--deep");
        }
        cmd.arg(&root)
            .assert()
            .code(1)
            .stdout(
                predicate::str::contains("BAD")
                    .and(predicate::str::contains("part-000000.parquet")),
            )
            .stderr(no_panic());
    }
    vecport()
        .arg("import")
        .arg(&root)
        .arg(format!("memory://{}/docs", unique_name("m")))
        .arg("-q")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("part-000000.parquet").and(no_panic()));
    let other = tmp.path().join("other");
    snapshot(&other, 40);
    vecport()
        .arg("compare")
        .arg(&root)
        .arg(&other)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("part-000000.parquet").and(no_panic()));
}

#[test]
fn a_footer_that_claims_more_than_the_file_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let part = snapshot(&root, 12);
    let mut bytes = fs::read(&part).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&(n as u32).to_le_bytes());
    fs::write(&part, &bytes).unwrap();
    rehash(&root);
    let report = Snapshot::open(&root).unwrap().verify();
    let e = report.problems[0].to_string();
    assert!(
        e.contains("more than the file holds") && e.contains("part-000000"),
        "{e}"
    );
}

/// Writes a part whose `metadata` column holds `texts` (the other columns
/// those of plain dense records) and returns the snapshot root.
fn snapshot_with_metadata(tmp: &Path, name: &str, texts: &[&str]) -> (PathBuf, PathBuf) {
    let root = tmp.join(name);
    let spec = CollectionSpec {
        name: "docs".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField::dense(Some(2), Some(Metric::Dot))],
        ..CollectionSpec::default()
    };
    let records: Vec<Record> = (0..texts.len())
        .map(|i| Record::dense(RecordId::String(format!("m-{i}")), vec![i as f32, 1.0]))
        .collect();
    let m = write_snapshot(&root, WriteOptions::default(), &[(spec, records)], None);
    let c = &m.collections[0];
    let part = root.join(&c.directory).join(&c.parts[0].path);
    let file = fs::File::open(&part).unwrap();
    let written = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut columns: Vec<ArrayRef> = written.columns().to_vec();
    columns[2] = Arc::new(StringArray::from(texts.to_vec()));
    let b = RecordBatch::try_new(written.schema(), columns).unwrap();
    write_part(
        &part,
        &b,
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
        true,
    );
    rehash(&root);
    (root, part)
}

#[test]
fn metadata_too_deep_or_with_numbers_out_of_range_is_a_damaged_part() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(220), "]".repeat(220));
    for (case, bad) in [("deep", deep.as_str()), ("number", r#"{"n":1e999}"#)] {
        let (root, part) = snapshot_with_metadata(tmp.path(), case, &[r#"{"ok":1}"#, bad, "{}"]);
        let snapshot = Snapshot::open(&root).unwrap();
        let report = snapshot.verify_deep(&all(&snapshot));
        assert_eq!(report.problems.len(), 1, "{case}: {:?}", report.problems);
        let e = &report.problems[0];
        assert_eq!(e.category(), Category::Snapshot, "{case}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(&part.display().to_string()) && text.contains("record \"m-1\""),
            "{case}: {text}"
        );
        vecport()
            .arg("import")
            .arg(&root)
            .arg(format!("memory://{}/docs", unique_name("m")))
            .arg("-q")
            .assert()
            .code(3)
            .stderr(
                predicate::str::contains("part-000000.parquet")
                    .and(predicate::str::contains("\"m-1\"")),
            );
    }
}

/// Changes the part at the start of the write pass, after `verify` and the
/// check pass read it: one float of a data page, the size unchanged.
struct Tamper {
    part: PathBuf,
}

impl Observer for Tamper {
    fn start(&self, _collection: &str, _total: Option<u64>) {
        let mut bytes = fs::read(&self.part).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == MARK.to_le_bytes())
            .expect("the marked value is in the part as it is");
        bytes[at..at + 4].copy_from_slice(&4321.5f32.to_le_bytes());
        // In place, as a concurrent writer would: same inode, same size.
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(&self.part).unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&bytes[at..at + 4]).unwrap();
        f.sync_all().unwrap();
    }
}

#[test]
fn a_part_changed_between_verify_and_write_stops_the_import_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let part = snapshot(&root, 40);
    assert!(
        import_result(&root, &Quiet).is_ok(),
        "the snapshot imports as it is"
    );
    let e = import_result(&root, &Tamper { part: part.clone() }).unwrap_err();
    assert_eq!(e.category(), Category::Snapshot, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&part.display().to_string()) && text.contains("changed while it was read"),
        "{text}"
    );
}

#[test]
fn the_checked_reader_refuses_a_part_changed_after_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let part = snapshot(&root, 40);
    let snapshot = Snapshot::open(&root).unwrap();
    assert!(snapshot.verify().is_ok());
    Tamper { part: part.clone() }.start("docs", None);
    let c = &snapshot.manifest().collections[0];
    let results: Vec<_> = snapshot.blocks_checked(c, 1000).collect();
    let e = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("the changed part is refused");
    assert!(
        matches!(e, Error::InvalidSnapshot { file, .. } if file == &part),
        "{e:?}"
    );
    // The unchecked stream (compare's, a bench's) reads the changed value.
    let values: Vec<f32> = snapshot
        .records(c, 1000)
        .flat_map(Result::unwrap)
        .filter_map(|r| match &r.vectors[0] {
            Some(Vector::Dense(v)) => Some(v[2]),
            _ => None,
        })
        .collect();
    assert!(values.contains(&4321.5));
}

// ---------------------------------------------------------------------------
// Fuzz: mutated part bytes, hashes recomputed
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte at a position (a fraction of the file's length).
    Flip(f64, u8),
    /// Overwrite a run of bytes with one value.
    Fill(f64, u16, u8),
    /// Cut the file at a fraction of its length.
    Truncate(f64),
    /// Insert bytes at a fraction of its length.
    Insert(f64, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // The last few hundred bytes (the footer) get as many mutations as the rest.
    let position = prop_oneof![0.0..1.0f64, 0.9..1.0f64, 0.99..1.0f64];
    prop_oneof![
        4 => (position.clone(), 1..=255u8).prop_map(|(p, x)| Mutation::Flip(p, x)),
        2 => (position.clone(), 1..64u16, any::<u8>()).prop_map(|(p, n, b)| Mutation::Fill(p, n, b)),
        1 => (0.0..1.0f64).prop_map(Mutation::Truncate),
        1 => (position, prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Mutation::Insert(p, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |p: f64, len: usize| ((p * len as f64) as usize).min(len.saturating_sub(1));
    match m {
        Mutation::Flip(p, x) => {
            let i = at(*p, bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Fill(p, n, b) => {
            let i = at(*p, bytes.len());
            let end = (i + *n as usize).min(bytes.len());
            bytes[i..end].fill(*b);
        }
        Mutation::Truncate(p) => bytes.truncate(at(*p, bytes.len())),
        Mutation::Insert(p, b) => {
            let i = at(*p, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
    }
}

proptest! {
    // Bounded: each case reads a 60-record part three ways, in well under a
    // second; the whole run takes seconds.
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_parts_never_panic_verify_deep_verify_or_import(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("snap");
        let part = snapshot(&root, 60);
        let mut bytes = fs::read(&part).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        fs::write(&part, &bytes).unwrap();
        rehash(&root);
        let snapshot = Snapshot::open(&root).unwrap();
        let quick = snapshot.verify();
        let deep = snapshot.verify_deep(&all(&snapshot));
        for e in quick.problems.iter().chain(&deep.problems) {
            prop_assert_eq!(e.category(), Category::Snapshot, "{}", e);
            // Named by the part, or (ids twice) by the collection.
            let text = e.to_string();
            prop_assert!(text.contains("part-000000.parquet") || text.contains("more than once"), "{}", e);
        }
        // verify --deep finds everything verify does.
        prop_assert!(quick.is_ok() || !deep.is_ok());
        let imported = import_result(&root, &Quiet);
        // verify --deep ⇔ readable by import.
        match (&imported, deep.is_ok()) {
            (Ok(()), true) => {}
            (Err(e), false) => prop_assert_eq!(e.category(), Category::Snapshot, "{}", e),
            (r, ok) => prop_assert!(false, "verify --deep ok: {ok}, import: {r:?}"),
        }
    }
}

/// The same mutations through the binary with its address space capped at
/// 1 GiB (`prlimit`): a part whose footer claims huge counts must not make
/// `verify --deep` or `import` allocate beyond it, and neither may crash.
#[test]
fn mutated_parts_stay_within_a_memory_cap_through_the_binary() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "prlimit (util-linux) is missing, but CI=true"
        );
        eprintln!("skipped: prlimit (util-linux) is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    let part = snapshot(&template, 60);
    let original = fs::read(&part).unwrap();
    let mut rng = fastrand::Rng::with_seed(16);
    let binary = assert_cmd::cargo::cargo_bin("vecport");
    for case in 0..24 {
        let root = tmp.path().join(format!("case-{case}"));
        snapshot(&root, 60);
        let mut bytes = original.clone();
        // Mostly the footer, where lengths and counts live.
        let len = bytes.len();
        for _ in 0..rng.usize(1..4) {
            let at = if rng.bool() {
                rng.usize(len - 300..len)
            } else {
                rng.usize(..len)
            };
            bytes[at] = rng.u8(..);
        }
        let path = root.join(part.strip_prefix(&template).unwrap());
        fs::write(&path, &bytes).unwrap();
        rehash(&root);
        for (args, codes) in [
            (vec!["verify".to_owned(), "--deep".to_owned()], [0, 1]),
            (
                vec![
                    "import".to_owned(),
                    root.display().to_string(),
                    format!("memory://{}/docs", unique_name("cap")),
                    "-q".to_owned(),
                ],
                [0, 3],
            ),
        ] {
            let mut cmd = std::process::Command::new("prlimit");
            cmd.arg(format!("--as={}", 1u64 << 30))
                .arg(&binary)
                .args(&args);
            if args[0] == "verify" {
                cmd.arg(&root);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code();
            assert!(
                code.is_some_and(|c| codes.contains(&c)) && !stderr.contains("panicked"),
                "case {case}, {args:?}: exit {code:?}, stderr {stderr}"
            );
        }
    }
}
