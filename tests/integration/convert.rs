//! `vecport convert`: the dataset formats users already have, written and
//! read by the packages that define them (`tests/python/formats.py`, with
//! the interpreter in `VECPORT_FORMATS_PYTHON` that `vdb_install_formats`
//! installs), into a snapshot, into a real Chroma and back; and snapshots
//! into the layouts other tools load.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use vecport::model::{
    CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, SparseVector, Vector, VectorField,
    VectorKind,
};
use vecport::snapshot::{Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

use crate::support::chroma::host;
use crate::support::cli::{export_quietly, import_quietly, sorted, vecport};
use crate::support::{server_url, unique_name};

/// The interpreter with the format packages; `None` (skip) outside CI.
fn formats_python() -> Option<String> {
    let python = std::env::var("VECPORT_FORMATS_PYTHON")
        .ok()
        .filter(|v| !v.is_empty());
    let probe = python.as_ref().map(|p| {
        Command::new(p)
            .args([
                "-c",
                "import pinecone_datasets, pandas, polars, duckdb, numpy, pyarrow",
            ])
            .output()
    });
    match (python, probe) {
        (Some(p), Some(Ok(out))) if out.status.success() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "VECPORT_FORMATS_PYTHON is not an interpreter with pinecone-datasets, pandas, polars, duckdb, numpy and pyarrow, but CI=true: tests/servers.sh's vdb_install_formats installs them"
        ),
        _ => {
            eprintln!(
                "skipped: set VECPORT_FORMATS_PYTHON (tests/servers.sh: vdb_install_formats)"
            );
            None
        }
    }
}

fn formats(python: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/formats.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run formats.py");
    assert!(
        out.status.success(),
        "formats.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn object(v: &Value) -> Option<Metadata> {
    v.as_object().cloned().filter(|m| !m.is_empty())
}

/// The records of the only collection of the snapshot at `dir`, sorted by id.
fn read(dir: &Path) -> (Snapshot, Vec<Record>) {
    let s = Snapshot::open(dir).unwrap();
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    let c = &s.manifest().collections[0];
    let records = s.records(c, 1000).flat_map(Result::unwrap).collect();
    (s.clone(), sorted(records))
}

fn convert(args: &[&str]) -> assert_cmd::assert::Assert {
    vecport().arg("convert").args(args).assert()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Imports `snap` into a new Chroma collection and exports it back; the
/// records Chroma gives back, or `None` without a Chroma server.
fn through_chroma(snap: &Path, work: &Path, prefix: &str) -> Option<Vec<Record>> {
    let url = server_url("CHROMA_URL")?;
    let target = format!("chroma://{}/{}", host(&url), unique_name(prefix));
    import_quietly(snap, &target);
    let back = work.join(format!("{prefix}-back"));
    export_quietly(&target, &back);
    Some(read(&back).1)
}

/// Checks `records` against `expected` (`id`, `values`, `metadata`,
/// `document`): ids, bit-exact float32 vectors, metadata equal as JSON.
fn assert_same(records: &[Record], expected: &[Value], what: &str) {
    let mut expected: Vec<&Value> = expected.iter().collect();
    expected.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(records.len(), expected.len(), "{what}: record count");
    for (r, e) in records.iter().zip(expected) {
        assert_eq!(
            r.id,
            RecordId::String(e["id"].as_str().unwrap().into()),
            "{what}"
        );
        let values = r.vectors[0].as_ref().and_then(Vector::as_dense).unwrap();
        let want = f32s(&e["values"]);
        assert!(
            values
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits())
                && values.len() == want.len(),
            "{what}: record {:?}: vector {values:?} != {want:?}",
            r.id
        );
        assert_eq!(
            r.metadata,
            object(&e["metadata"]),
            "{what}: record {:?}: metadata",
            r.id
        );
        assert_eq!(
            r.document.as_deref(),
            e["document"].as_str(),
            "{what}: record {:?}: document",
            r.id
        );
    }
}

#[test]
fn a_pinecone_dataset_written_by_the_package_converts_imports_into_chroma_and_reads_back_equal() {
    let Some(python) = formats_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("catalog");
    formats(&python, &["write-dataset", p(&base), "films", "60", "16"]);
    let dataset = base.join("films");
    let expected = work.path().join("expected.jsonl");
    formats(&python, &["read-dataset", p(&dataset), p(&expected)]);
    let snap = work.path().join("snap");
    // The layout tells the format; the metric comes from --metric.
    convert(&[p(&dataset), p(&snap), "--metric", "l2", "-q"]).success();
    let (snapshot, records) = read(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.name, "films");
    assert_eq!(snapshot.manifest().source.kind, "pinecone-datasets");
    assert_eq!(c.vectors[0].field.metric, Some(Metric::L2));
    assert_eq!(c.vectors[0].field.dimension, Some(16));
    assert_eq!(
        c.embedding_model.as_ref().map(|m| m.name.as_str()),
        Some("test-model")
    );
    let expected = jsonl(&expected);
    assert_same(&records, &expected, "snapshot");
    let Some(back) = through_chroma(&snap, work.path(), "pcds") else {
        return;
    };
    assert_same(&back, &expected, "through chroma");
}

#[test]
fn a_pinecone_dataset_without_a_metric_is_read_as_cosine_with_a_warning_and_keeps_sparse_values() {
    let Some(python) = formats_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("catalog");
    formats(
        &python,
        &["write-dataset", p(&base), "sparse", "10", "4", "--sparse"],
    );
    let expected = work.path().join("expected.jsonl");
    formats(
        &python,
        &["read-dataset", p(&base.join("sparse")), p(&expected)],
    );
    let snap = work.path().join("snap");
    let out = convert(&[
        "--from",
        "pinecone-datasets",
        p(&base.join("sparse")),
        p(&snap),
    ])
    .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("cosine is assumed"), "{stderr}");
    let (snapshot, records) = read(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.vectors[0].field.metric, Some(Metric::Cosine));
    assert_eq!(c.vectors[1].field.kind, VectorKind::Sparse);
    assert!(
        c.notes.iter().any(|n| n.contains("cosine is assumed")),
        "{:?}",
        c.notes
    );
    let expected = jsonl(&expected);
    assert_same(&records, &expected, "snapshot");
    for (r, e) in records.iter().zip(sorted_by_id(&expected)) {
        let want = e["sparse_values"].as_object().map(|s| SparseVector {
            indices: s["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect(),
            values: f32s(&s["values"]),
        });
        let got = match &r.vectors[1] {
            Some(Vector::Sparse(s)) => Some(s.clone()),
            _ => None,
        };
        assert_eq!(got, want, "record {:?}", r.id);
    }
}

fn sorted_by_id(v: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = v.iter().collect();
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

/// A snapshot of one collection with these records.
fn snapshot_of(dir: &Path, spec: &CollectionSpec, records: Vec<Record>) {
    let mut w = SnapshotWriter::create(dir, WriteOptions::default()).unwrap();
    let mut c = w.collection(spec, None).unwrap();
    c.write(records).unwrap();
    let m = c.finish().unwrap();
    w.add(m);
    w.finish(SourceInfo {
        kind: "memory".into(),
        ..SourceInfo::default()
    })
    .unwrap();
}

fn meta(v: Value) -> Option<Metadata> {
    v.as_object().cloned()
}

fn pinecone_spec(name: &str, metric: Metric) -> CollectionSpec {
    CollectionSpec {
        name: name.into(),
        id_kind: Some(IdKind::String),
        vectors: vec![
            VectorField::dense(Some(3), Some(metric)),
            VectorField {
                name: "sparse".into(),
                kind: VectorKind::Sparse,
                ..VectorField::dense(None, Some(Metric::Dot))
            },
        ],
        ..CollectionSpec::default()
    }
}

fn record(
    id: &str,
    ns: Option<&str>,
    dense: [f32; 3],
    sparse: Option<(Vec<u32>, Vec<f32>)>,
    metadata: Option<Metadata>,
) -> Record {
    Record {
        id: RecordId::String(id.into()),
        namespace: ns.map(str::to_owned),
        vectors: vec![
            Some(Vector::Dense(dense.to_vec())),
            sparse.map(|(indices, values)| Vector::Sparse(SparseVector { indices, values })),
        ],
        metadata,
        document: None,
        uri: None,
    }
}

#[test]
fn a_snapshot_becomes_a_pinecone_dataset_that_the_package_reads_back_equal() {
    let Some(python) = formats_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap");
    let mut with_doc = record("b", None, [0.25, -1.5, 3.0], None, meta(json!({"n": 2})));
    with_doc.document = Some("the text".into());
    let records = vec![
        record(
            "a",
            None,
            [1.0, 2.0, 3.0],
            Some((vec![1, 7], vec![0.5, 0.25])),
            meta(json!({"k": "v", "nested": {"x": [1, 2]}})),
        ),
        with_doc,
        // No metadata: written as {}, which the package reads under pandas 3.
        record("c", None, [f32::MIN_POSITIVE, 1e-30, -0.0], None, None),
    ];
    snapshot_of(&snap, &pinecone_spec("docs", Metric::Dot), records.clone());
    let out = work.path().join("dataset");
    convert(&[p(&snap), p(&out), "--to", "pinecone-datasets", "-q"]).success();
    let dump = work.path().join("dump.jsonl");
    formats(&python, &["read-dataset", p(&out), p(&dump)]);
    let rows = jsonl(&dump);
    assert_eq!(rows.len(), 3);
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(
        by_id("a")["metadata"],
        json!({"k": "v", "nested": {"x": [1, 2]}})
    );
    assert_eq!(
        by_id("a")["sparse_values"],
        json!({"indices": [1, 7], "values": [0.5, 0.25]})
    );
    assert_eq!(
        by_id("b")["metadata"],
        json!({"n": 2, "__vecport_document": "the text"})
    );
    assert_eq!(by_id("b")["sparse_values"], Value::Null);
    assert_eq!(by_id("c")["metadata"], json!({}));
    for r in &records {
        let want = r.vectors[0].as_ref().and_then(Vector::as_dense).unwrap();
        let got = f32s(&by_id(&r.id.to_string())["values"]);
        assert!(
            want.iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{:?}",
            r.id
        );
    }
    let meta_json: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.meta.json", dump.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(meta_json["name"], "docs");
    assert_eq!(meta_json["documents"], 3);
    assert_eq!(meta_json["dense_model"]["dimension"], 3);
    assert_eq!(meta_json["args"]["metric"], "dot");
    // And back: the same records, the metric from args, the document lifted out.
    let again = work.path().join("again");
    convert(&[p(&out), p(&again), "-q"]).success();
    let (snapshot, back) = read(&again);
    assert_eq!(
        snapshot.manifest().collections[0].vectors[0].field.metric,
        Some(Metric::Dot)
    );
    assert_eq!(back, sorted(records));
}

#[test]
fn parquet_of_pandas_polars_and_duckdb_converts_with_a_mapping_imports_and_reads_back_equal() {
    let Some(python) = formats_python() else {
        return;
    };
    for engine in ["pandas", "polars", "duckdb"] {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join(format!("{engine}.parquet"));
        formats(&python, &["write-parquet", engine, p(&file), "50", "12"]);
        let snap = work.path().join("snap");
        let changes = work.path().join("changes.jsonl");
        convert(&[
            p(&file),
            p(&snap),
            "--id-column",
            "doc_id",
            "--vector-column",
            "emb",
            "--metadata-columns",
            "title,year,score",
            "--metric",
            "l2",
            "--collection",
            "items",
            "--changes",
            p(&changes),
            "-q",
        ])
        .success();
        let expected = jsonl(&PathBuf::from(format!("{}.expected.jsonl", file.display())));
        let (snapshot, records) = read(&snap);
        let c = &snapshot.manifest().collections[0];
        assert_eq!(c.name, "items");
        assert_eq!(
            c.vectors[0].field.source_datatype.as_deref(),
            Some("float64"),
            "{engine}"
        );
        assert_same(&records, &expected, engine);
        // float64 → float32 is in the change report, with the records it changed.
        let report = jsonl(&changes);
        assert_eq!(report.len(), 1, "{engine}: {report:?}");
        assert_eq!(report[0]["change"], "rounded");
        assert_eq!(report[0]["records"], 50);
        let Some(back) = through_chroma(&snap, work.path(), engine) else {
            return;
        };
        assert_same(&back, &expected, &format!("{engine} through chroma"));
    }
}

#[test]
fn an_npy_array_with_its_jsonl_rows_converts_imports_and_reads_back_equal() {
    let Some(python) = formats_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let npy = work.path().join("vectors.npy");
    let rows = work.path().join("rows.jsonl");
    formats(&python, &["write-npy", p(&npy), p(&rows), "40", "8"]);
    let expected = jsonl(&PathBuf::from(format!("{}.expected.jsonl", rows.display())));
    let snap = work.path().join("snap");
    convert(&[
        p(&npy),
        p(&snap),
        "--rows",
        p(&rows),
        "--document-column",
        "text",
        "--metric",
        "l2",
        "-q",
    ])
    .success();
    let (snapshot, records) = read(&snap);
    assert_eq!(snapshot.manifest().collections[0].name, "vectors");
    assert_same(&records, &expected, "npy");
    // The same fields as one JSON Lines file with the vectors in it.
    let lines = work.path().join("all.jsonl");
    let text: String = expected
        .iter()
        .map(|e| format!("{}\n", json!({"id": e["id"], "embedding": e["values"], "text": e["document"], "lang": e["metadata"]["lang"], "rank": e["metadata"]["rank"]})))
        .collect();
    std::fs::write(&lines, text).unwrap();
    let snap2 = work.path().join("snap2");
    convert(&[
        p(&lines),
        p(&snap2),
        "--document-column",
        "text",
        "--metric",
        "l2",
        "-q",
    ])
    .success();
    assert_same(&read(&snap2).1, &expected, "jsonl");
    let Some(back) = through_chroma(&snap, work.path(), "npy") else {
        return;
    };
    assert_same(&back, &expected, "npy through chroma");
}

#[test]
fn a_snapshot_becomes_pinecone_import_files_of_exactly_the_documented_schema() {
    let Some(python) = formats_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap");
    let records = vec![
        record(
            "a",
            None,
            [1.0, 2.0, 3.0],
            Some((vec![3, 9], vec![0.5, 1.5])),
            meta(json!({"genre": "x", "year": 2020})),
        ),
        record("b", None, [0.5, 0.0, 1.0], None, None),
        record(
            "c",
            Some("eu"),
            [1.0, 1.0, 1.0],
            None,
            meta(json!({"tags": ["p", "q"]})),
        ),
    ];
    snapshot_of(&snap, &pinecone_spec("idx", Metric::Dot), records);
    let out = work.path().join("import");
    convert(&[p(&snap), p(&out), "--to", "pinecone-import", "-q"]).success();
    let dump = work.path().join("dump.json");
    formats(&python, &["read-import", p(&out), p(&dump)]);
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let dirs: Vec<&String> = seen.as_object().unwrap().keys().collect();
    assert_eq!(dirs, ["__default__", "eu"]);
    let schema = json!({
        "id": ["string", false],
        "values": ["list<element: float>", true],
        "sparse_values": ["struct<indices: list<element: uint32>, values: list<element: float>>", true],
        "metadata": ["string", true],
    });
    for files in seen.as_object().unwrap().values() {
        for f in files.as_array().unwrap() {
            assert_eq!(f["schema"], schema);
            assert_eq!(
                f["columns"],
                json!(["id", "values", "sparse_values", "metadata"])
            );
        }
    }
    let rows = |ns: &str| seen[ns][0]["rows"].as_array().unwrap().clone();
    let default = rows("__default__");
    assert_eq!(default[0]["id"], "a");
    assert_eq!(
        default[0]["sparse_values"],
        json!({"indices": [3, 9], "values": [0.5, 1.5]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(default[0]["metadata"].as_str().unwrap()).unwrap(),
        json!({"genre": "x", "year": 2020})
    );
    assert_eq!(
        default[1]["sparse_values"],
        Value::Null,
        "null, not empty lists"
    );
    assert_eq!(default[1]["metadata"], Value::Null);
    assert_eq!(rows("eu")[0]["values"], json!([1.0, 1.0, 1.0]));
}

#[test]
fn records_over_pinecone_limits_are_refused_by_name_before_any_import_file_is_written() {
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap");
    let long = "x".repeat(600);
    let records = vec![
        record("fine", None, [1.0, 2.0, 3.0], None, None),
        record(&long, None, [1.0, 2.0, 3.0], None, None),
        record(
            "big",
            None,
            [1.0, 2.0, 3.0],
            None,
            meta(json!({"blob": "y".repeat(50_000)})),
        ),
        record("zeros", None, [0.0, 0.0, 0.0], None, None),
        record(
            "nested",
            None,
            [1.0, 0.0, 0.0],
            None,
            meta(json!({"o": {"a": 1}})),
        ),
    ];
    snapshot_of(&snap, &pinecone_spec("idx", Metric::Cosine), records);
    let out = work.path().join("import");
    let assert = convert(&[p(&snap), p(&out), "--to", "pinecone-import"]).code(7);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(stderr.contains("1 to 512 characters"), "{stderr}");
    assert!(
        stderr.contains("record \"big\"") && stderr.contains("40 KB"),
        "{stderr}"
    );
    assert!(
        stderr.contains("record \"zeros\"") && stderr.contains("all zeros"),
        "{stderr}"
    );
    assert!(
        stderr.contains("record \"nested\"") && stderr.contains("nested object"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vecport"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // With --skip-invalid the others are left out, each in the change report.
    let changes = work.path().join("changes.jsonl");
    convert(&[
        p(&snap),
        p(&out),
        "--to",
        "pinecone-import",
        "--skip-invalid",
        "--changes",
        p(&changes),
        "-q",
    ])
    .success();
    let report = jsonl(&changes);
    assert_eq!(
        report.iter().filter(|l| l["change"] == "skipped").count(),
        4,
        "{report:?}"
    );
}

#[test]
fn a_snapshot_becomes_one_flat_parquet_table_that_converts_back_the_same() {
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap");
    let spec = crate::support::data::rich_spec("rich");
    let mut spec = spec;
    // Flat tables hold dense and sparse fields.
    spec.vectors.truncate(2);
    let records: Vec<Record> = crate::support::data::rich_records(30, 5)
        .into_iter()
        .map(|mut r| {
            r.vectors.truncate(2);
            r
        })
        .collect();
    snapshot_of(&snap, &spec, records.clone());
    let table = work.path().join("rich.parquet");
    convert(&[p(&snap), p(&table), "--to", "parquet", "-q"]).success();
    assert!(table.is_file());
    let back = work.path().join("back");
    convert(&[
        p(&table),
        p(&back),
        "--vector-column",
        "text=text",
        "--sparse-column",
        "keywords=keywords",
        "-q",
    ])
    .success();
    let (_, got) = read(&back);
    // Integer and UUID ids share one text column: they come back as strings.
    let want: Vec<Record> = sorted(
        records
            .into_iter()
            .map(|mut r| {
                r.id = RecordId::String(r.id.to_string());
                r
            })
            .collect(),
    );
    assert_eq!(got, want);
}

#[test]
fn bad_inputs_are_refused_naming_the_file_and_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let lines = work.path().join("x.jsonl");
    std::fs::write(
        &lines,
        "{\"id\": \"a\", \"v\": [1, 2]}\n{\"id\": \"b\", \"v\": [1, \"x\"]}\n",
    )
    .unwrap();
    let out = work.path().join("snap");
    let a = convert(&[p(&lines), p(&out)]).code(7);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        stderr.contains("x.jsonl: line 2") && stderr.contains("not a number"),
        "{stderr}"
    );
    assert!(!out.exists(), "a failed conversion leaves nothing");
    let unknown = work.path().join("data.bin");
    std::fs::write(&unknown, b"??").unwrap();
    let a = convert(&[p(&unknown), p(&out)]).code(2);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("--from"));
    std::fs::write(&lines, "{\"id\": \"a\", \"v\": [1, 2], \"w\": [3.5]}\n").unwrap();
    let a = convert(&[p(&lines), p(&out)]).code(2);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("--vector-column"));
}

#[test]
fn a_vdf_export_written_by_vdf_io_converts_to_an_equal_snapshot() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/convert/vdf");
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap");
    convert(&[p(&fixture.join("export")), p(&snap), "-q"]).success();
    let (snapshot, records) = read(&snap);
    assert_eq!(snapshot.manifest().source.kind, "vdf");
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.name, "products");
    assert_eq!(c.vectors[0].field.metric, Some(Metric::Cosine));
    assert_eq!(c.vectors[0].field.dimension, Some(4));
    assert_eq!(
        c.embedding_model.as_ref().map(|m| m.name.as_str()),
        Some("test-model")
    );
    let expected = jsonl(&fixture.join("expected.jsonl"));
    assert_same(&records, &expected, "vdf");
    for (r, e) in records.iter().zip(sorted_by_id(&expected)) {
        let ns = e["namespace"].as_str().filter(|n| !n.is_empty());
        assert_eq!(r.namespace.as_deref(), ns, "record {:?}", r.id);
    }
}
