//! vecport's pipeline as the tests drive it in-process: seeding a database
//! from a snapshot, and an export read back.

use std::path::Path;

use vecport::connectors::{Sink, Source};
use vecport::model::Record;
use vecport::pipeline::{self, ExportOptions, ImportOptions, ImportReport, Quiet};
use vecport::snapshot::Snapshot;

/// Imports snapshot `dir` into `sink` with the default options; a failure
/// names `what` is being seeded.
pub async fn seed_from(dir: &Path, sink: &dyn Sink, what: &str) -> ImportReport {
    pipeline::import(dir, sink, &ImportOptions::default(), &Quiet)
        .await
        .unwrap_or_else(|e| panic!("seeding {what}: {e}"))
}

/// Exports `source` into `dir` with the default options and returns the
/// verified snapshot and every record of its only collection; a failure
/// names `what`.
pub async fn export_and_read(
    source: &dyn Source,
    dir: &Path,
    what: &str,
) -> (Snapshot, Vec<Record>) {
    pipeline::export(source, dir, &ExportOptions::default(), &Quiet)
        .await
        .unwrap_or_else(|e| panic!("{what}, export: {e}"));
    crate::conformance::read_snapshot(dir)
}
