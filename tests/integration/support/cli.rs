//! Running the `vecport` binary in tests: a clean environment, and plain
//! records every database keeps exactly.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::json;
use vecport::model::{Metadata, Record, RecordId, Vector};

/// Every environment variable a connector reads a secret from.
pub const CREDENTIAL_VARS: [&str; 6] = [
    "QDRANT_API_KEY",
    "PINECONE_API_KEY",
    "WEAVIATE_API_KEY",
    "CHROMA_TOKEN",
    "PGPASSWORD",
    "MILVUS_TOKEN",
];

/// The `vecport` binary with no credentials from the caller's environment.
pub fn vecport() -> Command {
    Command::from_std(vecport_process())
}

/// [`vecport`] as a plain [`std::process::Command`], for runs that are
/// spawned and stopped midway.
pub fn vecport_process() -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("vecport"));
    for var in CREDENTIAL_VARS {
        c.env_remove(var);
    }
    c.env_remove("VECPORT_LOG");
    c
}

/// `vecport export SOURCE DIR -q`, which must succeed.
pub fn export_quietly(source: &str, dir: &Path) {
    vecport()
        .args(["export", source])
        .arg(dir)
        .arg("-q")
        .assert()
        .success();
}

/// `vecport import SNAPSHOT TARGET -q`, which must succeed.
pub fn import_quietly(snapshot: &Path, target: &str) {
    vecport()
        .arg("import")
        .arg(snapshot)
        .args([target, "-q"])
        .assert()
        .success();
}

/// `n` records of one dense vector of `dim`, ids `r-000000`…, metadata that
/// every database gives back as it was (a string and a float with an exact
/// short decimal form), a document on every other record.
pub fn plain_records(n: usize, dim: usize, seed: u64) -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let metadata: Metadata = serde_json::from_value(json!({
                "group": format!("g{}", i % 10),
                "score": i as f64 / 4.0 + 0.25,
            }))
            .unwrap();
            Record {
                id: RecordId::String(format!("r-{i:06}")),
                namespace: None,
                vectors: vec![Some(Vector::Dense(
                    (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect(),
                ))],
                metadata: Some(metadata),
                document: i.is_multiple_of(2).then(|| format!("document {i}")),
                uri: None,
            }
        })
        .collect()
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Records sorted by (namespace, id), for comparing sets.
pub fn sorted(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
    records
}
