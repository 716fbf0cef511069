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
use crate::snapshot::layout::{COLLECTIONS_DIR, MANIFEST, MANIFEST_CHECKSUM, TEMP_SUFFIX};
use crate::snapshot::{
    CollectionManifest, Manifest, Snapshot, SnapshotWriter, SourceInfo, WriteOptions,
};

use super::duplicates::{SeenKeys, describe_key};
use super::state::{
    EXPORT_STATE_NAME, ExportCheckpoint, ExportState, RunLock, STATE_DIR, export_lock_path,
    export_state_file, export_state_path, remove_export_state,
};
use super::{Observer, Resume};
use crate::storage::{Bucket, Location};

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
/// written, so no half-written snapshot is left; so does a source that gives
/// records twice, repeats its paging cursor or gives far more records than
/// it counted ([`Error::SourceInconsistent`]), whatever was completed. Only
/// what vecport wrote is ever removed: a file someone else put into `dir`
/// stays (and so does `dir`, then).
///
/// The export holds a lock on `dir` from start to end ([`RunLock`]): a second
/// export into the same directory is refused with [`Error::Busy`].
pub async fn export(
    source: &dyn Source,
    dir: &Path,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    export_to(source, &Location::Local(dir.to_owned()), options, observer).await
}

/// [`export`] to any location. In object storage the same rules hold: a
/// prefix holding anything but vecport's own progress is refused, progress
/// is an object beside the snapshot, a failure removes what was written
/// unless it can be resumed, and the manifest — a conditional put that
/// never replaces an object — is written last. Object storage has no locks:
/// two exports started into one prefix at once are not told apart.
pub async fn export_to(
    source: &dyn Source,
    location: &Location,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let dir = match location {
        Location::Local(dir) => dir,
        Location::Bucket(_) => {
            location.require_writable("an export")?;
            return export_locked(source, location, options, observer).await;
        }
    };
    // Checked before `dir` is touched at all, and again once it is locked.
    // An export under way writes its progress file before anything else
    // and its manifest before removing that file: what it wrote is never
    // taken for someone else's files.
    if let Some(e) = foreign(dir, options.resume)
        && !export_state_path(dir).exists()
        && !dir.join(MANIFEST).exists()
    {
        return Err(e);
    }
    let created = make_dir(dir)?;
    let lock = RunLock::acquire(
        &export_lock_path(dir),
        &format!("an export into {}", dir.display()),
    )?;
    let result = export_locked(source, location, options, observer).await;
    lock.release();
    if result.is_err() && created {
        // Only when nothing is left in it: not a file someone else put there.
        let _ = fs::remove_dir(dir);
    }
    result
}

/// Creates `dir` (and its parents) when it is missing: whether this run created it.
fn make_dir(dir: &Path) -> Result<bool> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// The refusal of `dir` when it holds anything vecport did not put there
/// for an export: anything but its own lock and the temporary file of a
/// progress file never completed (an export killed before its first save).
fn foreign(dir: &Path, resume: Resume) -> Option<Error> {
    let entries: Vec<_> = fs::read_dir(dir).ok()?.flatten().collect();
    let ours = |e: &fs::DirEntry| {
        e.file_name() == STATE_DIR
            && fs::read_dir(e.path()).is_ok_and(|inner| {
                inner.flatten().all(|f| {
                    let lock = export_lock_path(dir);
                    let temp = temp_of(&export_state_path(dir));
                    let path = f.path();
                    (path == lock || path == temp) && f.path().is_file()
                })
            })
    };
    if entries.iter().all(ours) {
        return None;
    }
    Some(Error::Usage(if resume == Resume::Required {
        format!(
            "{} holds no unfinished export to resume (no {}); start one without --resume, in a new directory",
            dir.display(),
            export_state_path(dir).display()
        )
    } else {
        format!(
            "{} is not empty; export into a new directory (or remove the old snapshot first)",
            dir.display()
        )
    }))
}

/// [`foreign`] for a prefix in object storage: refused when it holds any
/// object but an export's progress.
fn foreign_objects(b: &Bucket, resume: Resume) -> Result<Option<Error>> {
    let objects = b.list("")?;
    let ours = objects.iter().all(|(name, _)| name == EXPORT_STATE_NAME);
    if ours && !(resume == Resume::Required && objects.is_empty()) {
        return Ok(None);
    }
    if objects.iter().any(|(n, _)| n == MANIFEST)
        && objects.iter().any(|(n, _)| n == EXPORT_STATE_NAME)
    {
        // A finished export that did not get to remove its progress.
        return Ok(None);
    }
    Ok(Some(Error::Usage(if resume == Resume::Required {
        format!(
            "{} holds no unfinished export to resume (no {}); start one without --resume, at a new location",
            b.url(),
            b.file(EXPORT_STATE_NAME).display()
        )
    } else if objects.iter().any(|(n, _)| n == MANIFEST) {
        format!(
            "{} already holds a snapshot; nothing was overwritten: export to a new location (or remove the old snapshot first)",
            b.url()
        )
    } else {
        format!(
            "{} is not empty ({} object(s), e.g. {}); export to a new location (or remove what is there first)",
            b.url(),
            objects.len(),
            objects.first().map_or("", |(n, _)| n.as_str())
        )
    })))
}

/// `path` with the temporary suffix that atomic writes use.
fn temp_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Whether `dir` holds a manifest.
fn has_manifest(dir: &Location) -> Result<bool> {
    match dir {
        Location::Local(d) => Ok(d.join(MANIFEST).exists()),
        Location::Bucket(b) => Ok(b.size(MANIFEST)?.is_some()),
    }
}

/// [`export`] once `dir` is locked.
async fn export_locked(
    source: &dyn Source,
    dir: &Location,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let started = ExportState::load_at(dir)?.is_some();
    if started || has_manifest(dir)? {
        if options.resume == Resume::No {
            if started {
                return Err(Error::Usage(format!(
                    "{dir} holds an unfinished export; continue it with --resume, or remove what is there to start over"
                )));
            }
        } else {
            return resume(source, dir, options, observer).await;
        }
    }
    // Under the lock, the check that counts.
    let foreign = match dir {
        Location::Local(d) => foreign(d, options.resume),
        Location::Bucket(b) => foreign_objects(b, options.resume)?,
    };
    if let Some(e) = foreign {
        return Err(e);
    }
    if options.resume == Resume::Required {
        return Err(Error::Usage(format!(
            "{dir} holds no unfinished export to resume (no {}); start one without --resume",
            export_state_file(dir).display()
        )));
    }
    // The progress file of an export killed before its first save.
    if let Location::Local(d) = dir {
        let _ = fs::remove_file(temp_of(&export_state_path(d)));
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
    // The progress file first: from here on, what is in `dir` is ours.
    let state = ExportState::new(source.endpoint(), names, options.write.vector_compression);
    let result = match state.save_at(dir) {
        Ok(()) => match SnapshotWriter::resume(dir, options.write.clone(), Vec::new()) {
            Ok(writer) => {
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
        },
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        if has_progress(dir) && !matches!(e, Error::SourceInconsistent { .. }) {
            e.resumable(&export_state_file(dir))
        } else {
            discard(dir);
            e
        }
    })
}

/// Continues the unfinished export in `dir`.
async fn resume(
    source: &dyn Source,
    dir: &Location,
    options: &ExportOptions,
    observer: &dyn Observer,
) -> Result<Manifest> {
    let complete = has_manifest(dir)?;
    let finished = || -> Result<Manifest> {
        let manifest = Snapshot::open_at(dir)?.manifest().clone();
        match &manifest.source.endpoint {
            Some(e) if *e != source.endpoint() => Err(Error::Usage(format!(
                "{dir} holds a finished export from {e}, not from {}",
                source.endpoint()
            ))),
            _ => Ok(manifest),
        }
    };
    let Some(state) = ExportState::load_at(dir)? else {
        if complete {
            // Finished; only its progress file was left to remove.
            return finished();
        }
        return Err(Error::Usage(format!(
            "{dir} holds no unfinished export to resume (no {}); start one without --resume",
            export_state_file(dir).display()
        )));
    };
    if state.source != source.endpoint() {
        return Err(Error::Usage(format!(
            "{dir} holds an export from {}, not from {}; resume it with the same source URL",
            state.source,
            source.endpoint()
        )));
    }
    if !options.collections.is_empty() && options.collections != state.collections {
        return Err(Error::Usage(format!(
            "the unfinished export in {dir} is of the collections {:?}; resume it without --collection, or remove what is there to start over",
            state.collections
        )));
    }
    if complete {
        // It stopped after writing the manifest, before removing its progress file.
        let manifest = finished()?;
        remove_export_state(dir)?;
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
                    "the vector fields of collection `{name}` changed since the export began; remove {dir} and export again"
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
    .map_err(|e| {
        if matches!(e, Error::SourceInconsistent { .. }) {
            discard(dir);
            e
        } else {
            e.resumable(&export_state_file(dir))
        }
    })
}

/// Whether the export in `dir` completed a part worth resuming from.
fn has_progress(dir: &Location) -> bool {
    matches!(ExportState::load_at(dir), Ok(Some(s)) if !s.done.is_empty() || s.current.is_some())
}

/// Removes from `dir` what an export wrote that the progress file does not
/// list: parts written after the last checkpoint, temporary files, the
/// manifest, collections begun later. The parts it lists must be there,
/// whole. Files vecport does not write are left alone.
fn clean(dir: &Location, state: &ExportState) -> Result<()> {
    let kept: Vec<&CollectionManifest> = state
        .done
        .iter()
        .chain(state.current.iter().map(|c| &c.collection))
        .collect();
    let dir = match dir {
        Location::Local(d) => d,
        Location::Bucket(b) => return clean_objects(b, &kept),
    };
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
    remove_ours(dir, |collection_dir, part| {
        kept.iter().any(|c| {
            dir.join(&c.directory) == collection_dir && c.parts.iter().any(|p| p.path == part)
        })
    })
}

/// [`clean`] in object storage: the parts the progress lists must be there
/// with their sizes; every other object an export writes goes.
fn clean_objects(b: &Bucket, kept: &[&CollectionManifest]) -> Result<()> {
    let objects = b.list("")?;
    for c in kept {
        for p in &c.parts {
            let name = format!("{}/{}", c.directory, p.path);
            let len = objects.iter().find(|(n, _)| *n == name).map(|(_, l)| *l);
            if len != Some(p.bytes) {
                return Err(Error::InvalidSnapshot {
                    file: b.file(&name),
                    message: format!(
                        "the progress lists this part with {} bytes, but it is {}; the export cannot be resumed: remove what is at {} and export again",
                        p.bytes,
                        len.map_or("missing".to_owned(), |n| format!("{n} bytes")),
                        b.url()
                    ),
                });
            }
        }
    }
    remove_objects(b, |name| {
        kept.iter().any(|c| {
            c.parts
                .iter()
                .any(|p| name == format!("{}/{}", c.directory, p.path))
        })
    })
}

/// Removes the objects an export writes — the manifest and its checksum,
/// parts under `collections/` — but those `keep` keeps. Other objects stay.
fn remove_objects(b: &Bucket, keep: impl Fn(&str) -> bool) -> Result<()> {
    // Uploads a killed run left open: aborted, or they would be billed.
    b.abort_recorded("")?;
    for (name, _) in b.list("")? {
        let ours = name == MANIFEST
            || name == MANIFEST_CHECKSUM
            || name
                .strip_prefix(COLLECTIONS_DIR)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.rsplit_once('/'))
                .is_some_and(|(_, file)| is_part_name(file) && !file.ends_with(TEMP_SUFFIX));
        if ours && !keep(&name) {
            b.remove(&name)?;
        }
    }
    Ok(())
}

/// Removes what a failed export wrote into `dir` (the caller removes its
/// lock, and `dir` when it created it and nothing else is left in it).
fn discard(dir: &Location) {
    let _ = match dir {
        Location::Local(d) => remove_ours(d, |_, _| false),
        Location::Bucket(b) => remove_objects(b, |_| false),
    };
    let _ = remove_export_state(dir);
}

/// Whether `name` is a file name an export writes inside a collection's
/// directory: a part, or its temporary file.
fn is_part_name(name: &str) -> bool {
    let name = name.strip_suffix(TEMP_SUFFIX).unwrap_or(name);
    name.strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".parquet"))
        .is_some_and(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the files an export writes — the manifest and its checksum, the
/// parts in `collections/*/` but those `keep(collection dir, part name)`
/// keeps, temporary files of all of them — and then every directory under
/// `collections/` (and `collections/` itself) that this leaves empty.
/// Nothing else is touched: a file someone else put there stays, and so do
/// the directories holding it.
fn remove_ours(dir: &Path, keep: impl Fn(&Path, &str) -> bool) -> Result<()> {
    for name in [MANIFEST, MANIFEST_CHECKSUM] {
        let path = dir.join(name);
        for p in [temp_of(&path), path] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
    }
    let collections = dir.join(COLLECTIONS_DIR);
    let entries = |d: &Path| -> Result<Vec<PathBuf>> {
        match fs::read_dir(d) {
            Ok(it) => it
                .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(d, e)))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(d, e)),
        }
    };
    for c in entries(&collections)? {
        if !c.is_dir() {
            continue;
        }
        for file in entries(&c)? {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            if file.is_file() && is_part_name(&name) && !keep(&c, &name) {
                fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
            }
        }
        // Fails while anything is left, which is what we want.
        let _ = fs::remove_dir(&c);
    }
    let _ = fs::remove_dir(&collections);
    Ok(())
}

/// Cursors remembered to catch paging that goes in circles.
const RECENT_CURSORS: usize = 64;

/// How many records an export reads, at most, from a collection the source
/// counted `count` records in before the export: twice the count (the
/// collection may grow while it is exported) plus a margin — 100,000 for
/// sources that count exactly, 1,000,000 for Pinecone and Weaviate, whose
/// counts are approximate and lag behind recent writes. Past it the source
/// is giving records it does not hold. `None`: no limit (no count).
fn record_limit(source: &str, count: Option<u64>) -> Option<u64> {
    let margin = match source {
        "pinecone" | "weaviate" => 1_000_000,
        _ => 100_000,
    };
    count.map(|c| c.saturating_mul(2).saturating_add(margin))
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
    dir: &Location,
    options: &ExportOptions,
    observer: &dyn Observer,
    work: Vec<(CollectionSpec, Option<ExportCheckpoint>)>,
    description: crate::connectors::SourceDescription,
    mut state: ExportState,
) -> Result<Manifest> {
    for (spec, checkpoint) in work {
        observer.start(&spec.name, spec.count_hint);
        let already = checkpoint
            .as_ref()
            .map_or(0, |c| c.collection.record_count.saturating_sub(c.skip));
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
        let root = dir.clone();
        let inconsistent = {
            let (endpoint, source_name, collection) =
                (source.endpoint(), source.name(), spec.name.clone());
            move |what: String| Error::SourceInconsistent {
                endpoint: endpoint.clone(),
                message: format!(
                    "collection `{collection}`: {source_name} {what}; a source that does this cannot be exported faithfully (it pages wrongly, or the collection changed during the export), so nothing of this export was kept. Export again while nothing writes to the collection; if it happens again, the database is at fault"
                ),
            }
        };
        let duplicate = inconsistent.clone();
        let encoder = tokio::task::spawn_blocking(move || {
            // Where each page not yet wholly in a closed part begins: its
            // position among the collection's records, and how to read it again.
            let mut pages: VecDeque<(u64, Option<Cursor>, u64)> = VecDeque::new();
            let mut saved = collection.closed_parts();
            // Keys read in this run (a resumed run checks those after the resume point).
            let mut seen = SeenKeys::new();
            while let Some(sent) = rx.blocking_recv() {
                for (i, r) in sent.records.iter().enumerate() {
                    if let Some(key) = seen.observe(r.namespace.as_deref(), &r.id)? {
                        return Err(duplicate(format!(
                            "gave record {} a second time, {} records into the export",
                            describe_key(&key),
                            collection.records() + i as u64 + 1
                        )));
                    }
                }
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
                    state.save_at(&root)?;
                }
            }
            if let Some(key) = seen.finish()? {
                return Err(duplicate(format!(
                    "gave record {} more than once",
                    describe_key(&key)
                )));
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
        // Cursors given lately: one given again means paging goes in circles.
        let mut cursors: VecDeque<Cursor> = VecDeque::with_capacity(RECENT_CURSORS);
        let limit = record_limit(source.name(), spec.count_hint);
        let mut read = already;
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    if let Some(next) = &page.next {
                        if origin.as_ref() == Some(next) || cursors.contains(next) {
                            read_error = Some(inconsistent(format!(
                                "gave the paging cursor {next} again after a page{}",
                                if origin.as_ref() == Some(next) {
                                    " read from that very cursor: paging does not advance"
                                } else {
                                    ""
                                }
                            )));
                            break;
                        }
                        if cursors.len() == RECENT_CURSORS {
                            cursors.pop_front();
                        }
                        cursors.push_back(next.clone());
                    }
                    read += page.records.len() as u64;
                    if let (Some(limit), Some(count)) = (limit, spec.count_hint)
                        && read > limit
                    {
                        read_error = Some(inconsistent(format!(
                            "gave more than {limit} records, having counted {count} before the export: far more than a collection growing during the export explains (the export stops past twice the count plus {})",
                            limit - 2 * count
                        )));
                        break;
                    }
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
        state.save_at(dir)?;
        writer.add(manifest);
    }
    let manifest = writer.finish(SourceInfo {
        kind: source.name().to_owned(),
        server_version: description.server_version,
        endpoint: Some(source.endpoint()),
        location: description.location,
    })?;
    remove_export_state(dir)?;
    Ok(manifest)
}
