//! Export: source → snapshot. Pages are fetched (and decoded) concurrently on
//! the runtime while a blocking thread encodes Parquet; a bounded channel
//! between them keeps memory flat.

use std::collections::VecDeque;
use std::fs;
use std::mem;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::connectors::{Cursor, ScanOptions, Source};
use crate::error::{Error, Result};
use crate::model::{CollectionSpec, EmbeddingModel, Record};
use crate::snapshot::layout::{COLLECTIONS_DIR, MANIFEST, TEMP_SUFFIX};
use crate::snapshot::{
    CollectionManifest, Manifest, Snapshot, SnapshotWriter, SourceInfo, WriteOptions,
};

use super::state::{
    ExportCheckpoint, ExportState, STATE_DIR, export_state_path, remove as remove_state,
};
use super::{Observer, Resume};

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
    /// Whether to continue an unfinished export in the directory.
    pub resume: Resume,
}

/// Pages buffered between the network and the encoder.
const CHANNEL_PAGES: usize = 8;

/// Exports collections of `source` into a new snapshot at `dir`.
///
/// Progress is saved in `dir` each time a part is completed (see
/// [`ExportState`]); with [`ExportOptions::resume`] an export that stopped
/// — failed, killed, or the machine went down — continues after its last
/// completed part. A failure before any part was completed removes what was
/// written, so no half-written snapshot is left.
pub async fn export(
    source: &dyn Source,
    dir: &Path,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    match options.resume {
        Resume::Required => return resume(source, dir, options, observer).await,
        Resume::IfStarted if !only_scaffolding(dir) => {
            return resume(source, dir, options, observer).await;
        }
        Resume::IfStarted => {
            // Stopped before its first save, or never begun: begin afresh.
            remove_partial(dir, true);
        }
        Resume::No => {}
    }
    if ExportState::load(dir)?.is_some() {
        return Err(Error::Usage(format!(
            "{} holds an unfinished export; continue it with --resume, or remove the directory to start over",
            dir.display()
        )));
    }
    let description = source.describe().await?;
    let names = match (source.collection_in_url(), options.collections.is_empty()) {
        (_, false) => options.collections.clone(),
        (Some(name), true) => vec![name.to_owned()],
        (None, true) => source.list().await?.into_iter().map(|c| c.name).collect(),
    };
    // Describe every collection first, so a missing one fails before any file is written.
    let mut work = Vec::with_capacity(names.len());
    for name in &names {
        work.push((source.collection(name).await?, None));
    }
    let existed = dir.exists();
    // Refuses a non-empty directory; from here on, everything in `dir` is ours.
    let writer = SnapshotWriter::create(dir, options.write.clone())?;
    let state = ExportState::new(source.endpoint(), names, options.write.vector_compression);
    let result = match state.save(dir) {
        Ok(()) => {
            write_snapshot(
                writer,
                source,
                dir,
                options,
                observer,
                work,
                description,
                state,
            )
            .await
        }
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        if has_progress(dir) {
            e.resumable(&export_state_path(dir))
        } else {
            remove_partial(dir, existed);
            e
        }
    })
}

/// Continues the unfinished export in `dir`.
async fn resume(
    source: &dyn Source,
    dir: &Path,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let complete = dir.join(MANIFEST).exists();
    let finished = || -> Result<Manifest> {
        let manifest = Snapshot::open(dir)?.manifest().clone();
        match &manifest.source.endpoint {
            Some(e) if *e != source.endpoint() => Err(Error::Usage(format!(
                "{} holds a finished export from {e}, not from {}",
                dir.display(),
                source.endpoint()
            ))),
            _ => Ok(manifest),
        }
    };
    let Some(state) = ExportState::load(dir)? else {
        if complete {
            // Finished; only its progress file was left to remove.
            return finished();
        }
        return Err(Error::Usage(format!(
            "{} holds no unfinished export to resume (no {}); start one without --resume",
            dir.display(),
            export_state_path(dir).display()
        )));
    };
    if state.source != source.endpoint() {
        return Err(Error::Usage(format!(
            "{} holds an export from {}, not from {}; resume it with the same source URL",
            dir.display(),
            state.source,
            source.endpoint()
        )));
    }
    if !options.collections.is_empty() && options.collections != state.collections {
        return Err(Error::Usage(format!(
            "the unfinished export in {} is of the collections {:?}; resume it without --collection, or remove the directory to start over",
            dir.display(),
            state.collections
        )));
    }
    if complete {
        // It stopped after writing the manifest, before removing its progress file.
        let manifest = finished()?;
        remove_state(&export_state_path(dir))?;
        return Ok(manifest);
    }
    let description = source.describe().await?;
    let mut work = Vec::new();
    for name in &state.collections {
        if state.done.iter().any(|c| &c.name == name) {
            continue;
        }
        let spec = source.collection(name).await?;
        let checkpoint = state.current.clone().filter(|c| &c.collection.name == name);
        if let Some(c) = &checkpoint {
            let fields = |v: &mut dyn Iterator<Item = &crate::model::VectorField>| {
                v.map(|f| (f.name.clone(), f.kind)).collect::<Vec<_>>()
            };
            if fields(&mut spec.vectors.iter())
                != fields(&mut c.collection.vectors.iter().map(|v| &v.field))
            {
                return Err(Error::Incompatible(format!(
                    "the vector fields of collection `{name}` changed since the export began; remove {} and export again",
                    dir.display()
                )));
            }
        }
        work.push((spec, checkpoint));
    }
    clean(dir, &state)?;
    let write = WriteOptions {
        vector_compression: state.vector_compression,
        ..options.write.clone()
    };
    let writer = SnapshotWriter::resume(dir, write, state.done.clone())?;
    write_snapshot(
        writer,
        source,
        dir,
        options,
        observer,
        work,
        description,
        state,
    )
    .await
    .map_err(|e| e.resumable(&export_state_path(dir)))
}

/// Whether `dir` holds nothing an export could continue from: it is missing,
/// or holds only directories and temporary files (an export stopped before
/// it saved its progress the first time).
fn only_scaffolding(dir: &Path) -> bool {
    fn walk(p: &Path) -> bool {
        match fs::read_dir(p) {
            Ok(entries) => entries.flatten().all(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    path.to_string_lossy().ends_with(TEMP_SUFFIX)
                }
            }),
            Err(_) => true,
        }
    }
    walk(dir)
}

/// Whether the export in `dir` completed a part worth resuming from.
fn has_progress(dir: &Path) -> bool {
    matches!(ExportState::load(dir), Ok(Some(s)) if !s.done.is_empty() || s.current.is_some())
}

/// Removes from `dir` whatever the progress file does not list: parts
/// written after the last checkpoint, temporary files, collections begun
/// later. The parts it lists must be there, whole.
fn clean(dir: &Path, state: &ExportState) -> Result<()> {
    let kept: Vec<&CollectionManifest> = state
        .done
        .iter()
        .chain(state.current.iter().map(|c| &c.collection))
        .collect();
    for c in &kept {
        for p in &c.parts {
            let path = dir.join(&c.directory).join(&p.path);
            let len = fs::metadata(&path).map(|m| m.len()).ok();
            if len != Some(p.bytes) {
                return Err(Error::InvalidSnapshot {
                    file: path,
                    message: format!(
                        "the progress file lists this part with {} bytes, but it is {}; the export cannot be resumed: remove {} and export again",
                        p.bytes,
                        len.map_or("missing".to_owned(), |n| format!("{n} bytes")),
                        dir.display()
                    ),
                });
            }
        }
    }
    let entries = |d: &Path| -> Result<Vec<PathBuf>> {
        match fs::read_dir(d) {
            Ok(it) => it
                .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(d, e)))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(d, e)),
        }
    };
    for path in entries(dir)? {
        let name = path.file_name().unwrap_or_default();
        if name != STATE_DIR && name != COLLECTIONS_DIR {
            remove_entry(&path)?;
        }
    }
    for path in entries(&dir.join(COLLECTIONS_DIR))? {
        let Some(c) = kept.iter().find(|c| dir.join(&c.directory) == path) else {
            remove_entry(&path)?;
            continue;
        };
        for file in entries(&path)? {
            let name = file.file_name().unwrap_or_default();
            if !c.parts.iter().any(|p| name == p.path.as_str()) {
                remove_entry(&file)?;
            }
        }
    }
    Ok(())
}

/// A page on its way to the encoder, with where it can be read again: from
/// `origin`, leaving out `skip` records.
struct Sent {
    records: Vec<Record>,
    origin: Option<Cursor>,
    skip: u64,
}

#[allow(clippy::too_many_arguments)]
async fn write_snapshot(
    mut writer: SnapshotWriter,
    source: &dyn Source,
    dir: &Path,
    options: &ExportOptions,
    observer: &dyn Observer,
    work: Vec<(CollectionSpec, Option<ExportCheckpoint>)>,
    description: crate::connectors::SourceDescription,
    mut state: ExportState,
) -> Result<Manifest> {
    for (spec, checkpoint) in work {
        observer.start(&spec.name, spec.count_hint);
        let (mut collection, mut origin, mut skip) = match checkpoint {
            Some(c) => {
                observer.advance(c.collection.record_count);
                (
                    writer.resume_collection(&spec, c.collection)?,
                    c.cursor,
                    c.skip,
                )
            }
            None => (
                writer.collection(&spec, options.embedding_model.clone())?,
                None,
                0,
            ),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Sent>(CHANNEL_PAGES);
        let root = dir.to_owned();
        let encoder = tokio::task::spawn_blocking(move || {
            // Where each page not yet wholly in a closed part begins: its
            // position among the collection's records, and how to read it again.
            let mut pages: VecDeque<(u64, Option<Cursor>, u64)> = VecDeque::new();
            let mut saved = collection.closed_parts();
            while let Some(sent) = rx.blocking_recv() {
                pages.push_back((collection.records(), sent.origin, sent.skip));
                collection.write(sent.records)?;
                if collection.closed_parts() > saved {
                    saved = collection.closed_parts();
                    let closed = collection.checkpoint()?;
                    let end = closed.record_count;
                    // The last page that begins at or before the end of the closed parts.
                    while pages.len() > 1 && pages[1].0 <= end {
                        pages.pop_front();
                    }
                    let (begin, cursor, skip) = pages.front().cloned().expect("a page was pushed");
                    state.current = Some(ExportCheckpoint {
                        collection: closed,
                        cursor,
                        skip: skip + (end - begin),
                    });
                    state.save(&root)?;
                }
            }
            let manifest = collection.finish()?;
            Ok::<_, Error>((manifest, state))
        });
        let mut pages = source.scan(
            &spec,
            ScanOptions {
                start: origin.clone(),
                ..options.scan.clone()
            },
        );
        let mut read_error = None;
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    let mut records = page.records;
                    // Records already in the parts of an earlier run.
                    let left_out = (skip.min(records.len() as u64)) as usize;
                    records.drain(..left_out);
                    skip -= left_out as u64;
                    let n = records.len() as u64;
                    let sent = Sent {
                        records,
                        origin: mem::replace(&mut origin, page.next),
                        skip: left_out as u64,
                    };
                    if n > 0 {
                        if tx.send(sent).await.is_err() {
                            break; // the encoder failed; its error is reported below
                        }
                        observer.advance(n);
                    }
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
        let (mut manifest, returned) = encoded?;
        state = returned;
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
        state.done.push(manifest.clone());
        state.current = None;
        state.save(dir)?;
        writer.add(manifest);
    }
    let manifest = writer.finish(SourceInfo {
        kind: source.name().to_owned(),
        server_version: description.server_version,
        endpoint: Some(source.endpoint()),
        location: description.location,
    })?;
    remove_state(&export_state_path(dir))?;
    Ok(manifest)
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
            let _ = remove_entry(&e.path());
        }
    }
}

/// Removes `path`: a directory with all it holds, else the file.
fn remove_entry(path: &Path) -> Result<()> {
    if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .map_err(|e| Error::io(path, e))
}
