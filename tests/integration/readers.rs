//! Reading liberally (`spec/FORMAT.md` §4.7): parts other writers produce
//! for the format's columns — other codecs, `LargeUtf8`/`Utf8View`, lists
//! of any kind with items named anything, `float64`/`float16` values, no
//! `ARROW:schema` — verify and read as the same records, and what only a
//! row can show (a dense vector's length, a null id) is refused naming the
//! record. The FORMAT.md writer recipes (`spec/recipes/`) are the files CI
//! runs, and their snapshots verify and import into a real Chroma exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray, RecordBatch, StringArray,
    StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use parquet::arrow::{ArrowWriter, arrow_writer::ArrowWriterOptions};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::connectors::memory::{FULL, Memory};
use vecport::model::{
    CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, SparseVector, Vector, VectorField,
    VectorKind,
};
use vecport::pipeline::{ImportOptions, Quiet, import};
use vecport::snapshot::{Snapshot, WriteOptions};

use crate::snapshot_format::{
    assert_same_records, read_collection, rewrite_manifest, write_snapshot,
};
use crate::support::cli::vecport;
use crate::support::{self, server_url, unique_name};

const DIM: usize = 3;

/// Records of one dense field of dimension 3 whose values are exact in
/// float16 (so every float type holds them unchanged), some without a
/// vector, metadata, document or namespace.
fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record::dense(
                RecordId::String(format!("r-{i:03}")),
                (0..DIM)
                    .map(|j| (i * DIM + j) as f32 * 0.25 - 8.0)
                    .collect(),
            );
            if i % 5 == 2 {
                r.vectors[0] = None;
            }
            if i % 3 != 0 {
                let m: Metadata =
                    serde_json::from_value(json!({"i": i, "tag": format!("t{i}"), "x": 0.5}))
                        .unwrap();
                r.metadata = Some(m);
            }
            if i % 2 == 1 {
                r.document = Some(format!("doc {i} — ü"));
            }
            if i % 4 == 3 {
                r.namespace = Some(if i % 8 == 3 {
                    String::new()
                } else {
                    "eu".into()
                });
            }
            r
        })
        .collect()
}

fn spec() -> CollectionSpec {
    CollectionSpec {
        name: "docs".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField::dense(Some(DIM as u32), Some(Metric::L2))],
        ..CollectionSpec::default()
    }
}

/// A vecport snapshot of `records` in one part, at `root`.
fn base(root: &Path, spec: CollectionSpec, records: &[Record]) -> PathBuf {
    let options = WriteOptions {
        row_group_rows: 8,
        part_max_rows: 100_000,
        ..WriteOptions::default()
    };
    let m = write_snapshot(root, options, &[(spec, records.to_vec())], None);
    assert_eq!(m.collections[0].parts.len(), 1);
    let c = &m.collections[0];
    root.join(&c.directory).join(&c.parts[0].path)
}

/// Recomputes every part's size and BLAKE3 in the manifest, so that only
/// the parts' content is on trial.
pub(crate) fn rehash(root: &Path) {
    let r = root.to_owned();
    rewrite_manifest(root, move |m| {
        for c in m["collections"].as_array_mut().unwrap() {
            let dir = r.join(c["directory"].as_str().unwrap());
            for p in c["parts"].as_array_mut().unwrap() {
                let bytes = fs::read(dir.join(p["path"].as_str().unwrap())).unwrap();
                p["bytes"] = json!(bytes.len());
                p["blake3"] = json!(blake3::hash(&bytes).to_hex().to_string());
            }
        }
    });
}

/// Writes `batch` as the part at `path` with `props`, with or without the
/// `ARROW:schema` entry.
pub(crate) fn write_part(
    path: &Path,
    batch: &RecordBatch,
    props: WriterProperties,
    arrow_schema: bool,
) {
    let file = fs::File::create(path).unwrap();
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(!arrow_schema);
    let mut w = ArrowWriter::try_new_with_options(file, batch.schema(), options).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// How a test part spells its columns.
#[derive(Debug, Clone)]
struct Form {
    text: DataType,
    /// `List`, `LargeList` or `FixedSizeList` (the item field is replaced).
    list: &'static str,
    floats: DataType,
    item: &'static str,
    item_nullable: bool,
    id_nullable: bool,
    codec: Compression,
    arrow_schema: bool,
}

impl Form {
    fn list_type(&self, dim: usize) -> DataType {
        let item = Arc::new(Field::new(
            self.item,
            self.floats.clone(),
            self.item_nullable,
        ));
        match self.list {
            "List" => DataType::List(item),
            "LargeList" => DataType::LargeList(item),
            _ => DataType::FixedSizeList(item, dim as i32),
        }
    }
}

fn text_column(values: Vec<Option<String>>, t: &DataType) -> ArrayRef {
    let a: ArrayRef = Arc::new(StringArray::from(values));
    arrow::compute::cast(&a, t).unwrap()
}

/// The dense vectors of `records` as written (`FixedSizeList<Float32>`),
/// rows of `lengths[i]` values where given.
fn dense_column(records: &[Record], dim: usize) -> FixedSizeListArray {
    let mut values = Vec::new();
    let mut valid = Vec::new();
    for r in records {
        match &r.vectors[0] {
            Some(Vector::Dense(v)) => {
                values.extend_from_slice(v);
                valid.push(true);
            }
            _ => {
                values.extend(std::iter::repeat_n(0.0, dim));
                valid.push(false);
            }
        }
    }
    FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        dim as i32,
        Arc::new(Float32Array::from(values)),
        Some(NullBuffer::from(valid)),
    )
    .unwrap()
}

/// A part's batch: the records' columns in `form`, the vector column cast
/// from `vectors`.
fn batch(records: &[Record], form: &Form, vectors: ArrayRef) -> RecordBatch {
    let text = |f: &dyn Fn(&Record) -> Option<String>| {
        text_column(records.iter().map(f).collect(), &form.text)
    };
    let vectors = arrow::compute::cast(&vectors, &form.list_type(DIM)).unwrap();
    let fields = vec![
        Field::new("id", form.text.clone(), form.id_nullable),
        Field::new("namespace", form.text.clone(), true),
        Field::new("metadata", form.text.clone(), true),
        Field::new("document", form.text.clone(), true),
        Field::new("uri", form.text.clone(), true),
        Field::new("vector", vectors.data_type().clone(), true),
        // An unknown column is ignored.
        Field::new("extra", DataType::Utf8, true),
    ];
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        vec![
            text(&|r| Some(r.id.to_string())),
            text(&|r| r.namespace.clone()),
            text(&|r| {
                r.metadata
                    .as_ref()
                    .map(|m| serde_json::to_string(m).unwrap())
            }),
            text(&|r| r.document.clone()),
            text(&|r| r.uri.clone()),
            vectors,
            Arc::new(StringArray::from(vec![Some("x"); records.len()])),
        ],
    )
    .unwrap()
}

fn props(codec: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(7))
        .build()
}

const PYARROW_LIKE: Form = Form {
    text: DataType::Utf8,
    list: "FixedSizeList",
    floats: DataType::Float32,
    item: "element",
    item_nullable: true,
    id_nullable: true,
    codec: Compression::SNAPPY,
    arrow_schema: true,
};

fn forms() -> Vec<Form> {
    vec![
        PYARROW_LIKE,
        Form {
            text: DataType::LargeUtf8,
            list: "LargeList",
            floats: DataType::Float64,
            item: "item",
            item_nullable: true,
            codec: Compression::ZSTD(ZstdLevel::default()),
            ..PYARROW_LIKE
        },
        Form {
            text: DataType::Utf8View,
            list: "List",
            floats: DataType::Float16,
            item: "element",
            item_nullable: false,
            id_nullable: false,
            codec: Compression::GZIP(GzipLevel::default()),
            ..PYARROW_LIKE
        },
        // DuckDB: no ARROW:schema, a plain list of nullable floats.
        Form {
            list: "List",
            arrow_schema: false,
            ..PYARROW_LIKE
        },
        Form {
            list: "List",
            item: "item",
            item_nullable: false,
            codec: Compression::BROTLI(BrotliLevel::default()),
            ..PYARROW_LIKE
        },
        Form {
            text: DataType::LargeUtf8,
            codec: Compression::LZ4_RAW,
            ..PYARROW_LIKE
        },
        Form {
            codec: Compression::LZ4,
            floats: DataType::Float64,
            ..PYARROW_LIKE
        },
        Form {
            codec: Compression::UNCOMPRESSED,
            list: "LargeList",
            item: "element",
            ..PYARROW_LIKE
        },
    ]
}

#[test]
fn other_writers_column_forms_and_codecs_read_as_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let records = records(40);
    for (i, form) in forms().into_iter().enumerate() {
        let root = tmp.path().join(format!("form-{i}"));
        let part = base(&root, spec(), &records);
        let vectors: ArrayRef = Arc::new(dense_column(&records, DIM));
        write_part(
            &part,
            &batch(&records, &form, vectors),
            props(form.codec),
            form.arrow_schema,
        );
        rehash(&root);
        let case = format!("{form:?}");
        let snapshot = Snapshot::open(&root).unwrap();
        let report = snapshot.verify();
        assert!(report.is_ok(), "{case}: {:?}", report.problems);
        let c: Vec<_> = snapshot.manifest().collections.iter().collect();
        let deep = snapshot.verify_deep(&c);
        assert!(deep.is_ok(), "{case}: {:?}", deep.problems);
        assert_eq!(deep.decoded, records.len() as u64, "{case}");
        assert!(
            deep.notes.is_empty(),
            "{case}: exact values are not lossy: {:?}",
            deep.notes
        );
        assert_same_records(&records, &read_collection(&snapshot, "docs"), &case);
        // The hashing reader import uses reads them the same.
        let checked: Vec<Record> = snapshot
            .blocks_checked(c[0], 9)
            .flat_map(|b| b.unwrap().to_records().unwrap())
            .collect();
        assert_same_records(&records, &checked, &case);
    }
}

#[test]
fn float64_values_that_lose_bits_are_rounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let records = records(20);
    let root = tmp.path().join("snap");
    let part = base(&root, spec(), &records);
    // 0.1 and friends are not float32 values: each rounds, and is counted.
    let mut values = Vec::new();
    let mut expected = records.clone();
    let mut inexact = 0u64;
    for r in &mut expected {
        let mut v64 = Vec::new();
        if let Some(Vector::Dense(v)) = &mut r.vectors[0] {
            for x in v.iter_mut() {
                let wide = f64::from(*x) + 0.1;
                v64.push(wide);
                *x = wide as f32;
                inexact += u64::from(f64::from(*x) != wide);
            }
        } else {
            v64.extend([0.0; DIM]);
        }
        values.extend(v64);
    }
    assert!(inexact > 0);
    let valid: Vec<bool> = records.iter().map(|r| r.vectors[0].is_some()).collect();
    let vectors: ArrayRef = Arc::new(
        FixedSizeListArray::try_new(
            Arc::new(Field::new("element", DataType::Float64, true)),
            DIM as i32,
            Arc::new(arrow::array::Float64Array::from(values)),
            Some(NullBuffer::from(valid)),
        )
        .unwrap(),
    );
    let form = Form {
        floats: DataType::Float64,
        list: "LargeList",
        ..PYARROW_LIKE
    };
    write_part(
        &part,
        &batch(&records, &form, vectors),
        props(form.codec),
        true,
    );
    rehash(&root);
    let snapshot = Snapshot::open(&root).unwrap();
    let deep = snapshot.verify_deep(&snapshot.manifest().collections.iter().collect::<Vec<_>>());
    assert!(deep.is_ok(), "{:?}", deep.problems);
    assert_eq!(deep.notes.len(), 1, "{:?}", deep.notes);
    assert!(
        deep.notes[0].contains(&format!("{inexact} vector value(s) are stored as float64")),
        "{:?}",
        deep.notes
    );
    assert_same_records(&expected, &read_collection(&snapshot, "docs"), "float64");
    vecport()
        .args(["verify", "--deep"])
        .arg(&root)
        .assert()
        .success()
        .stdout(predicate::str::contains("float64").and(predicate::str::contains("rows decoded")));
    // An import reports them too.
    let memory = Memory::new(&unique_name("lossy"), None, FULL);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(import(&root, &memory, &ImportOptions::default(), &Quiet))
        .unwrap();
    assert!(
        report.collections[0]
            .notes
            .iter()
            .any(|n| n.contains(&format!("{inexact} vector value(s)"))),
        "{:?}",
        report.collections[0].notes
    );
}

/// A dense vector whose length is not the manifest's dimension: `verify`
/// (footers only) cannot see it in a variable-size list, `verify --deep`
/// and `import` refuse it naming the record and the part.
#[test]
fn a_dense_vector_of_another_length_is_refused_naming_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let records = records(30);
    let root = tmp.path().join("snap");
    let part = base(&root, spec(), &records);
    let mut offsets = vec![0i32];
    let mut values = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(Vector::Dense(v)) = &r.vectors[0] {
            values.extend_from_slice(v);
            if i == 13 {
                values.push(1.0);
            }
        }
        offsets.push(values.len() as i32);
    }
    let valid: Vec<bool> = records.iter().map(|r| r.vectors[0].is_some()).collect();
    let vectors: ArrayRef = Arc::new(ListArray::new(
        Arc::new(Field::new("element", DataType::Float32, true)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(Float32Array::from(values)),
        Some(NullBuffer::from(valid)),
    ));
    let form = Form {
        list: "List",
        ..PYARROW_LIKE
    };
    write_part(
        &part,
        &batch(&records, &form, vectors),
        props(form.codec),
        false,
    );
    rehash(&root);
    let snapshot = Snapshot::open(&root).unwrap();
    assert!(snapshot.verify().is_ok(), "footers are fine");
    let deep = snapshot.verify_deep(&snapshot.manifest().collections.iter().collect::<Vec<_>>());
    assert_eq!(deep.problems.len(), 1, "{:?}", deep.problems);
    let e = deep.problems[0].to_string();
    assert!(
        e.contains(&part.display().to_string())
            && e.contains("record \"r-013\"")
            && e.contains("has 4 values, the manifest's dimension is 3"),
        "{e}"
    );
    assert_eq!(
        deep.problems[0].category(),
        vecport::error::Category::Snapshot
    );
    vecport()
        .args(["verify", "--deep"])
        .arg(&root)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("r-013"));
    let memory = support::unique_name("mem");
    vecport()
        .arg("import")
        .arg(&root)
        .arg(format!("memory://{memory}/docs"))
        .arg("-q")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("r-013").and(predicate::str::contains("panicked").not()));
}

#[test]
fn a_fixed_size_list_of_another_size_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let records: Vec<Record> = records(10)
        .into_iter()
        .map(|mut r| {
            if let Some(Vector::Dense(v)) = &mut r.vectors[0] {
                v.push(0.0);
            }
            r
        })
        .collect();
    let root = tmp.path().join("snap");
    let part = base(&root, spec(), &self::records(10));
    let vectors: ArrayRef = Arc::new(dense_column(&records, DIM + 1));
    let form = PYARROW_LIKE;
    let text = |f: &dyn Fn(&Record) -> Option<String>| {
        text_column(records.iter().map(f).collect(), &form.text)
    };
    let schema = Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("metadata", DataType::Utf8, true),
        Field::new("document", DataType::Utf8, true),
        Field::new("uri", DataType::Utf8, true),
        Field::new("vector", vectors.data_type().clone(), true),
    ]);
    let b = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            text(&|r| Some(r.id.to_string())),
            text(&|r| r.namespace.clone()),
            text(&|r| {
                r.metadata
                    .as_ref()
                    .map(|m| serde_json::to_string(m).unwrap())
            }),
            text(&|r| r.document.clone()),
            text(&|r| r.uri.clone()),
            vectors,
        ],
    )
    .unwrap();
    write_part(&part, &b, props(Compression::SNAPPY), true);
    rehash(&root);
    let report = Snapshot::open(&root).unwrap().verify();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let e = report.problems[0].to_string();
    assert!(
        e.contains(&part.display().to_string())
            && e.contains("fixed-size list of 4 values, the manifest's dimension is 3"),
        "{e}"
    );
}

#[test]
fn a_null_id_is_refused_whatever_the_schema_says() {
    let tmp = tempfile::tempdir().unwrap();
    let records = records(12);
    let root = tmp.path().join("snap");
    let part = base(&root, spec(), &records);
    let vectors: ArrayRef = Arc::new(dense_column(&records, DIM));
    let good = batch(&records, &PYARROW_LIKE, vectors);
    let mut ids: Vec<Option<String>> = records.iter().map(|r| Some(r.id.to_string())).collect();
    ids[5] = None;
    let mut columns = good.columns().to_vec();
    columns[0] = Arc::new(StringArray::from(ids));
    let b = RecordBatch::try_new(good.schema(), columns).unwrap();
    write_part(&part, &b, props(Compression::SNAPPY), true);
    rehash(&root);
    let snapshot = Snapshot::open(&root).unwrap();
    assert!(snapshot.verify().is_ok());
    let deep = snapshot.verify_deep(&snapshot.manifest().collections.iter().collect::<Vec<_>>());
    let e = deep.problems[0].to_string();
    assert!(
        e.contains("null id") && e.contains(&part.display().to_string()),
        "{e}"
    );
}

#[test]
fn sparse_and_multi_vectors_in_other_forms_read_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let field = |name: &str, kind: VectorKind, dimension: Option<u32>| VectorField {
        name: name.into(),
        kind,
        dimension,
        ..VectorField::dense(None, Some(Metric::Dot))
    };
    let spec = CollectionSpec {
        name: "docs".into(),
        id_kind: Some(IdKind::Uint),
        vectors: vec![
            field("s", VectorKind::Sparse, None),
            field("m", VectorKind::Multi, Some(2)),
        ],
        ..CollectionSpec::default()
    };
    let records: Vec<Record> = (0..25u64)
        .map(|i| {
            let sparse = (i % 4 != 1).then(|| {
                Vector::Sparse(SparseVector {
                    indices: (0..i as u32 % 5).map(|k| k * 7 + 1).collect(),
                    values: (0..i % 5).map(|k| k as f32 * 0.5 - 1.0).collect(),
                })
            });
            let multi = (i % 6 != 2).then(|| {
                Vector::Multi(
                    (0..i % 3)
                        .map(|k| vec![k as f32, i as f32 * 0.25])
                        .collect(),
                )
            });
            Record {
                id: RecordId::Uint(i * 1000),
                namespace: None,
                vectors: vec![sparse, multi],
                metadata: None,
                document: None,
                uri: None,
            }
        })
        .collect();
    let root = tmp.path().join("snap");
    let part = base(&root, spec, &records);
    // What vecport wrote, read back, then re-typed.
    let file = fs::File::open(&part).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(1000)
        .build()
        .unwrap();
    let written = reader.into_iter().next().unwrap().unwrap();
    let wide = |t: DataType, nullable: bool| Arc::new(Field::new("element", t, nullable));
    let sparse_type = DataType::Struct(Fields::from(vec![
        Field::new(
            "values",
            DataType::LargeList(wide(DataType::Float64, true)),
            true,
        ),
        Field::new(
            "indices",
            DataType::LargeList(wide(DataType::UInt32, true)),
            true,
        ),
    ]));
    let s = written
        .column_by_name("vector_s")
        .unwrap()
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    let sparse: ArrayRef = Arc::new(
        StructArray::try_new(
            match &sparse_type {
                DataType::Struct(f) => f.clone(),
                _ => unreachable!(),
            },
            vec![
                arrow::compute::cast(s.column(1), sparse_type_child(&sparse_type, 0)).unwrap(),
                arrow::compute::cast(s.column(0), sparse_type_child(&sparse_type, 1)).unwrap(),
            ],
            s.nulls().cloned(),
        )
        .unwrap(),
    );
    let multi_type = DataType::LargeList(Arc::new(Field::new(
        "element",
        DataType::List(wide(DataType::Float16, true)),
        true,
    )));
    let multi =
        arrow::compute::cast(written.column_by_name("vector_m").unwrap(), &multi_type).unwrap();
    let mut columns: Vec<ArrayRef> = written.columns()[..5].to_vec();
    columns.push(sparse);
    columns.push(multi);
    let mut fields: Vec<Field> = written.schema().fields()[..5]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("vector_s", columns[5].data_type().clone(), true));
    fields.push(Field::new("vector_m", columns[6].data_type().clone(), true));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_part(&part, &b, props(Compression::SNAPPY), true);
    rehash(&root);
    let snapshot = Snapshot::open(&root).unwrap();
    assert!(
        snapshot.verify().is_ok(),
        "{:?}",
        snapshot.verify().problems
    );
    assert_same_records(
        &records,
        &read_collection(&snapshot, "docs"),
        "sparse and multi",
    );
    let _ = UInt32Array::from(vec![0u32]); // the index type of sparse vectors
}

fn sparse_type_child(t: &DataType, i: usize) -> &DataType {
    match t {
        DataType::Struct(f) => f[i].data_type(),
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------
// The FORMAT.md writer recipes
// ---------------------------------------------------------------------------

const RECIPES: [&str; 5] = [
    "vecport_manifest.py",
    "pyarrow_writer.py",
    "pandas_writer.py",
    "polars_writer.py",
    "duckdb_writer.py",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every recipe file appears in FORMAT.md verbatim, after its marker, and
/// FORMAT.md shows no recipe that is not a file.
#[test]
fn format_md_recipes_are_the_files_ci_runs() {
    let format = fs::read_to_string(repo().join("spec/FORMAT.md")).unwrap();
    let marker = "<!-- recipe: ";
    let shown: Vec<&str> = format
        .match_indices(marker)
        .map(|(i, _)| &format[i..])
        .collect();
    assert_eq!(shown.len(), RECIPES.len(), "recipes in FORMAT.md");
    for (text, name) in shown.iter().zip(RECIPES) {
        let path = format!("spec/recipes/{name}");
        let header = format!("{marker}{path} -->\n```python\n");
        assert!(
            text.starts_with(&header),
            "FORMAT.md's recipe marker for {path}"
        );
        let body = &text[header.len()..];
        let end = body.find("\n```\n").expect("the code block ends") + 1;
        let file = fs::read_to_string(repo().join(&path)).unwrap();
        assert_eq!(
            &body[..end],
            file,
            "FORMAT.md's copy of {path} differs from the file"
        );
    }
}

/// An interpreter with the recipes' libraries, or `None` (skip) outside CI.
fn python_with_writers() -> Option<String> {
    let python = std::env::var("VECPORT_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import pyarrow, pandas, polars, duckdb, blake3"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "`{python}` lacks the recipes' libraries ({why}), but CI=true: tests/servers.sh's vdb_install_python installs them"
                );
            }
            eprintln!(
                "skipped: `{python}` lacks pyarrow, pandas, polars, duckdb or blake3 ({why})"
            );
            None
        }
    }
}

/// Records every target keeps as they are: Chroma's metadata (strings,
/// integers, floats, booleans), float32 vectors of no special value.
fn recipe_records(n: usize) -> Vec<Value> {
    let mut rng = fastrand::Rng::with_seed(17);
    (0..n)
        .map(|i| {
            let metadata = (i % 4 != 0).then(|| {
                // Floats with short decimal forms: Chroma keeps those exactly.
                json!({"i": i, "tag": format!("t-{}", i % 7), "score": f64::from(rng.u8(..)) / 8.0, "ok": i % 2 == 0, "ü": "é ✓"})
                    .to_string()
            });
            let vector: Vec<f32> = (0..8).map(|_| rng.f32() * 2.0 - 1.0).collect();
            json!({
                "id": format!("doc-{i:04}"),
                "namespace": null,
                "metadata": metadata,
                "document": (i % 3 != 0).then(|| format!("document {i}: ü ✓")),
                "uri": null,
                "vector": vector,
            })
        })
        .collect()
}

#[tokio::test]
async fn recipe_snapshots_verify_and_import_into_chroma_exactly() {
    let Some(python) = python_with_writers() else {
        return;
    };
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&url);
    let tmp = tempfile::tempdir().unwrap();
    let records = recipe_records(300);
    let source = tmp.path().join("records.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    fs::write(&source, lines.join("\n") + "\n").unwrap();
    for writer in ["pyarrow", "pandas", "polars", "duckdb"] {
        let out = tmp.path().join(writer);
        let run = Command::new(&python)
            .arg(repo().join(format!("spec/recipes/{writer}_writer.py")))
            .arg(&out)
            .arg(&source)
            .arg("8")
            .env("PYTHONPATH", repo().join("spec/recipes"))
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{writer} recipe failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        vecport().arg("verify").arg(&out).assert().success();
        vecport()
            .args(["verify", "--deep"])
            .arg(&out)
            .assert()
            .success()
            .stdout(predicate::str::contains("300 rows decoded"));
        // vecport reads exactly what the recipe was given.
        let snapshot = Snapshot::open(&out).unwrap();
        let read = read_collection(&snapshot, "docs");
        assert_eq!(read.len(), records.len(), "{writer}");
        for (r, given) in read.iter().zip(&records) {
            assert_eq!(r.id.to_string(), given["id"].as_str().unwrap(), "{writer}");
            let expected: Vec<f32> = given["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(
                r.vectors[0],
                Some(Vector::Dense(expected)),
                "{writer}: {}",
                r.id
            );
            let text = r
                .metadata
                .as_ref()
                .map(|m| serde_json::to_string(m).unwrap());
            assert_eq!(
                text.as_deref(),
                given["metadata"].as_str(),
                "{writer}: {}",
                r.id
            );
            assert_eq!(
                r.document.as_deref(),
                given["document"].as_str(),
                "{writer}"
            );
        }
        let target = unique_name(&format!("recipe-{writer}"));
        let chroma = format!("chroma://{host}/{target}");
        vecport()
            .arg("import")
            .arg(&out)
            .args([chroma.as_str(), "-q"])
            .assert()
            .success();
        vecport()
            .arg("compare")
            .arg(&out)
            .arg(&chroma)
            .assert()
            .success();
    }
}
