//! Export: source → snapshot. Pages are fetched (and decoded) concurrently on
//! the runtime while a blocking thread encodes Parquet; a bounded channel
//! between them keeps memory flat.

use std::fs;
use std::path::Path;

use futures::StreamExt;

use crate::connectors::{ScanOptions, Source};
use crate::error::{Error, Result};
use crate::model::{EmbeddingModel, Record};
use crate::snapshot::{Manifest, SnapshotWriter, SourceInfo, WriteOptions};

use super::Observer;

/// What to export and how.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Collections to export; empty means the one in the URL, or all.
    pub collections: Vec<String>,
    /// Snapshot writer tuning.
    pub write: WriteOptions,
    /// Page size and concurrency of reads.
    pub scan: ScanOptions,
    /// An embedding model to record in the manifest.
    pub embedding_model: Option<EmbeddingModel>,
}

/// Pages buffered between the network and the encoder.
const CHANNEL_PAGES: usize = 8;

/// Exports collections of `source` into a new snapshot at `dir`. On failure
/// the partial snapshot is removed, so no half-written snapshot is left.
pub async fn export(
    source: &dyn Source,
    dir: &Path,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let description = source.describe().await?;
    let names = match (source.collection_in_url(), options.collections.is_empty()) {
        (_, false) => options.collections.clone(),
        (Some(name), true) => vec![name.to_owned()],
        (None, true) => source.list().await?.into_iter().map(|c| c.name).collect(),
    };
    // Describe every collection first, so a missing one fails before any file is written.
    let mut specs = Vec::with_capacity(names.len());
    for name in &names {
        specs.push(source.collection(name).await?);
    }
    let existed = dir.exists();
    // Refuses a non-empty directory; from here on, everything in `dir` is ours.
    let writer = SnapshotWriter::create(dir, options.write.clone())?;
    let result = write_snapshot(writer, source, options, observer, specs, description).await;
    if result.is_err() {
        remove_partial(dir, existed);
    }
    result
}

async fn write_snapshot(
    mut writer: SnapshotWriter,
    source: &dyn Source,
    options: &ExportOptions,
    observer: &dyn Observer,
    specs: Vec<crate::model::CollectionSpec>,
    description: crate::connectors::SourceDescription,
) -> Result<Manifest> {
    for spec in specs {
        observer.start(&spec.name, spec.count_hint);
        let mut collection = writer.collection(&spec, options.embedding_model.clone())?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(CHANNEL_PAGES);
        let encoder = tokio::task::spawn_blocking(move || {
            while let Some(records) = rx.blocking_recv() {
                collection.write(records)?;
            }
            collection.finish()
        });
        let mut pages = source.scan(&spec, options.scan.clone());
        let mut read_error = None;
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    let n = page.records.len() as u64;
                    if tx.send(page.records).await.is_err() {
                        break; // the encoder failed; its error is reported below
                    }
                    observer.advance(n);
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(pages);
        drop(tx);
        let encoded = encoder
            .await
            .map_err(|e| Error::InvalidData(format!("encoder thread failed: {e}")))?;
        if let Some(e) = read_error {
            return Err(e);
        }
        let mut manifest = encoded?;
        if let Some(expected) = spec.count_hint
            && expected != manifest.record_count
        {
            let note = format!(
                "the source reported {expected} records before the export and {} were exported: the collection changed during the export",
                manifest.record_count
            );
            tracing::warn!(collection = %spec.name, "{note}");
            manifest.notes.push(note);
        }
        observer.finish(&spec.name);
        writer.add(manifest);
    }
    writer.finish(SourceInfo {
        kind: source.name().to_owned(),
        server_version: description.server_version,
        endpoint: Some(source.endpoint()),
        location: description.location,
    })
}

/// Removes what a failed export wrote: the whole directory when the export
/// created it, else only its contents (it was empty when the export began).
fn remove_partial(dir: &Path, existed: bool) {
    if !existed {
        let _ = fs::remove_dir_all(dir);
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}
