//! Writes a synthetic snapshot for throughput benchmarks:
//! `cargo run --release --example gen_snapshot -- DIR RECORDS DIMENSION [METRIC|none]`.
//! Deterministic: the same arguments give the same records.

use std::path::PathBuf;

use serde_json::json;
use vecport::model::{CollectionSpec, IdKind, Metric, Record, RecordId, Vector, VectorField};
use vecport::snapshot::{SnapshotWriter, SourceInfo, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n, dim, rest @ ..] = args.as_slice() else {
        return Err("usage: gen_snapshot DIR RECORDS DIMENSION [cosine|dot|l2|none]".into());
    };
    let (n, dim): (usize, usize) = (n.parse()?, dim.parse()?);
    let metric = match rest.first().map(String::as_str) {
        None | Some("l2") => Some(Metric::L2),
        Some("cosine") => Some(Metric::Cosine),
        Some("dot") => Some(Metric::Dot),
        // No metric: targets that index by metric (pgvector) build no index.
        Some("none") => None,
        Some(other) => return Err(format!("unknown metric {other}").into()),
    };
    let spec = CollectionSpec {
        name: "bench".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField::dense(Some(dim as u32), metric)],
        raw_config: json!({}),
        ..CollectionSpec::default()
    };
    let mut writer = SnapshotWriter::create(&PathBuf::from(dir), WriteOptions::default())?;
    let mut collection = writer.collection(&spec, None)?;
    let mut rng = fastrand::Rng::with_seed(42);
    for start in (0..n).step_by(10_000) {
        let batch = (start..(start + 10_000).min(n))
            .map(|i| Record {
                id: RecordId::String(format!("doc-{i:09}")),
                namespace: None,
                vectors: vec![Some(Vector::Dense(
                    (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect(),
                ))],
                metadata:
                    json!({"n": i, "group": format!("g{}", i % 100), "score": i as f64 / 7.0})
                        .as_object()
                        .cloned(),
                document: Some(format!("document number {i}")),
                uri: None,
            })
            .collect();
        collection.write(batch)?;
    }
    writer.add(collection.finish()?);
    writer.finish(SourceInfo {
        kind: "synthetic".into(),
        ..SourceInfo::default()
    })?;
    Ok(())
}
