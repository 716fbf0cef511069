//! An independent reader: pyarrow reads the parts vecport writes
//! (`tests/pyarrow_read.py`) and must see the same ids and the same float
//! bits, with the Arrow types of `spec/FORMAT.md` §4.2.
//!
//! The interpreter is `$VECPORT_PYTHON` (default `python3`). Without pyarrow
//! the test is skipped, except under CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use vecport::model::{
    CollectionSpec, IdKind, Metric, Record, RecordId, SparseVector, Vector, VectorField, VectorKind,
};
use vecport::snapshot::{Snapshot, WriteOptions};

use crate::snapshot_format::{read_collection, write_snapshot};
use crate::support::data;

/// An interpreter that can import pyarrow, or `None` (skip) outside CI.
fn python_with_pyarrow() -> Option<String> {
    let python = std::env::var("VECPORT_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "`{python}` cannot import pyarrow ({why}), but CI=true: set VECPORT_PYTHON to an interpreter with pyarrow"
                );
            }
            eprintln!(
                "skipped: `{python}` cannot import pyarrow ({why}); set VECPORT_PYTHON to an interpreter with pyarrow"
            );
            None
        }
    }
}

/// Float bit patterns pyarrow must hand back unchanged. Signalling NaNs are
/// left out: Python floats are doubles, and widening a signalling NaN quiets it.
const BITS: [u32; 12] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x807F_FFFF,
    0x0080_0000,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0x7FC0_BEEF,
    0xFFC0_0001,
];

fn spec() -> CollectionSpec {
    let field = |name: &str, kind: VectorKind, dimension: Option<u32>| VectorField {
        name: name.into(),
        kind,
        dimension,
        ..VectorField::dense(None, Some(Metric::Dot))
    };
    CollectionSpec {
        name: "pyarrow".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![
            field("", VectorKind::Dense, Some(5)),
            field("keywords", VectorKind::Sparse, None),
            field("colbert", VectorKind::Multi, Some(3)),
        ],
        ..CollectionSpec::default()
    }
}

fn records() -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut special = BITS.iter().copied().cycle();
    let mut value = move |rng: &mut fastrand::Rng| {
        if rng.u8(..).is_multiple_of(3) {
            f32::from_bits(special.next().unwrap())
        } else {
            let v = f32::from_bits(rng.u32(..));
            if v.is_nan() {
                f32::from_bits(0x7FC0_0000)
            } else {
                v
            }
        }
    };
    let ids = data::awkward_ids();
    (0..23)
        .map(|i| {
            let dense: Vec<f32> = (0..5).map(|_| value(&mut rng)).collect();
            let n = i % 4;
            let sparse = SparseVector {
                indices: (0..n as u32)
                    .map(|k| if k == 0 { u32::MAX } else { k * 3 })
                    .collect(),
                values: (0..n).map(|_| value(&mut rng)).collect(),
            };
            let multi: Vec<Vec<f32>> = (0..i % 3)
                .map(|_| (0..3).map(|_| value(&mut rng)).collect())
                .collect();
            Record {
                id: RecordId::String(ids.get(i).cloned().unwrap_or_else(|| format!("rec-{i}"))),
                namespace: (i % 2 == 1).then(|| "テナント".to_owned()),
                vectors: vec![
                    (i % 5 != 4).then_some(Vector::Dense(dense)),
                    (i % 6 != 5).then_some(Vector::Sparse(sparse)),
                    (i % 7 != 6).then_some(Vector::Multi(multi)),
                ],
                metadata: None,
                document: None,
                uri: None,
            }
        })
        .collect()
}

fn run_script(python: &str, part: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyarrow_read.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(part)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} {} failed:\n{}",
        script.display(),
        part.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

fn bits(values: &[f32]) -> Value {
    values.iter().map(|v| v.to_bits()).collect()
}

/// What the script must print for one record's vector slot.
fn expected_vector(v: Option<&Vector>) -> Value {
    match v {
        None => Value::Null,
        Some(Vector::Dense(d)) => bits(d),
        Some(Vector::Sparse(s)) => {
            serde_json::json!({"indices": s.indices, "values": bits(&s.values)})
        }
        Some(Vector::Multi(m)) => m.iter().map(|v| bits(v)).collect(),
    }
}

#[test]
fn pyarrow_reads_parts_bit_exact() {
    let Some(python) = python_with_pyarrow() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    let records = records();
    let options = WriteOptions {
        row_group_rows: 4,
        part_max_rows: 8,
        parallelism: 2,
        ..WriteOptions::default()
    };
    write_snapshot(&root, options, &[(spec(), records.clone())], None);
    let snapshot = Snapshot::open(&root).unwrap();
    // vecport itself reads them back first, so a failure below is pyarrow's view.
    crate::snapshot_format::assert_same_records(
        &records,
        &read_collection(&snapshot, "pyarrow"),
        "vecport",
    );

    let c = snapshot.collection("pyarrow").unwrap();
    assert!(c.parts.len() >= 3, "{} parts", c.parts.len());
    let columns: Vec<&str> = c.vectors.iter().map(|v| v.column.as_str()).collect();
    assert_eq!(columns, ["vector", "vector_keywords", "vector_colbert"]);

    let mut rest: &[Record] = &records;
    for p in &c.parts {
        let path = snapshot.part_path(c, p);
        let seen = run_script(&python, &path);
        let at = path.display();
        let (here, after) = rest.split_at(p.rows as usize);
        rest = after;

        assert_eq!(seen["num_rows"], p.rows, "{at}");
        let types = &seen["types"];
        assert_eq!(types["id"], "string", "{at}");
        assert_eq!(
            types["vector"], "fixed_size_list<item: float not null>[5]",
            "{at}"
        );
        assert_eq!(
            types["vector_keywords"],
            "struct<indices: list<item: uint32 not null> not null, values: list<item: float not null> not null>",
            "{at}"
        );
        assert_eq!(
            types["vector_colbert"],
            "list<item: fixed_size_list<item: float not null>[3] not null>",
            "{at}"
        );
        for col in &columns {
            assert_eq!(seen["nullable"][col], true, "{at}: {col} is nullable");
        }
        assert_eq!(seen["nullable"]["id"], false, "{at}");
        assert_eq!(seen["key_value"]["vecport.format_version"], "1.0", "{at}");

        let ids: Vec<String> = here.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(seen["ids"], serde_json::json!(ids), "{at}");
        let namespaces: Vec<Option<&str>> = here.iter().map(|r| r.namespace.as_deref()).collect();
        assert_eq!(seen["namespaces"], serde_json::json!(namespaces), "{at}");
        for (slot, col) in columns.iter().enumerate() {
            let got = seen["vectors"][col]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: no column {col}"));
            assert_eq!(got.len(), here.len(), "{at}: {col}");
            for (row, (r, g)) in here.iter().zip(got).enumerate() {
                let want = expected_vector(r.vectors[slot].as_ref());
                assert_eq!(
                    g,
                    &want,
                    "{at}: {col}, row {row} (id {:?})",
                    r.id.to_string()
                );
            }
        }
    }
    assert!(rest.is_empty());
}
