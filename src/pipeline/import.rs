//! Import: snapshot → sink. Nothing reaches the target before the snapshot's
//! checksums pass, the sink's capabilities cover the collection and every
//! record passed the sink's check; then parts stream through a [`Batcher`]
//! into concurrent upserts, and the target's count is compared at the end.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use crate::connectors::{CollectionWriter, ExistingTarget, Sink};
use crate::error::{Error, Result};
use crate::model::{CollectionSpec, Record, VectorKind};
use crate::snapshot::{CollectionManifest, Snapshot};

use super::{Batcher, Observer};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Collections to import; empty means all.
    pub collections: Vec<String>,
    /// `(snapshot name, target name)` renames.
    pub renames: Vec<(String, String)>,
    /// What to do with targets that exist.
    pub existing: ExistingTarget,
    /// Write requests in flight at once.
    pub concurrency: usize,
    /// Rows read from a part at a time.
    pub read_batch_rows: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            collections: Vec::new(),
            renames: Vec::new(),
            existing: ExistingTarget::Refuse,
            concurrency: 4,
            read_batch_rows: 1024,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// One entry per collection.
    pub collections: Vec<ImportedCollection>,
}

/// One imported collection.
#[derive(Debug, Clone)]
pub struct ImportedCollection {
    /// Name in the snapshot.
    pub source: String,
    /// Name in the target.
    pub target: String,
    /// Records written.
    pub records: u64,
    /// Records the target counts afterwards.
    pub target_count: u64,
    /// What the target does to values on write.
    pub notes: Vec<String>,
}

/// Most offending records named in one error.
const NAMED_RECORDS: usize = 10;

/// Imports the snapshot at `dir` into `sink`.
pub async fn import(
    dir: &Path,
    sink: &dyn Sink,
    options: &ImportOptions,
    observer: &dyn Observer,
) -> Result<ImportReport> {
    let snapshot = Snapshot::open(dir)?;
    let chosen: Vec<(CollectionManifest, String)> =
        choose(&snapshot, options, sink.collection_in_url())?
            .into_iter()
            .map(|(c, t)| (c.clone(), t))
            .collect();

    // 1. Integrity: every selected part, before anything is written.
    let report = snapshot.verify_collections(&chosen.iter().map(|(c, _)| c).collect::<Vec<_>>());
    if let Some(first) = report.problems.into_iter().next() {
        return Err(first);
    }
    // 2. Capabilities and every record, still before anything is written.
    let snapshot = Arc::new(snapshot);
    for (c, _) in &chosen {
        check_capabilities(sink, c)?;
        check_records(&snapshot, sink, c).await?;
    }
    // 3. Write.
    let mut out = ImportReport::default();
    for (c, target) in chosen {
        let (spec, dropped) = target_view(sink, &c);
        observer.start(&target, Some(c.record_count));
        let writer = sink.prepare(&target, &spec, options.existing).await?;
        let written =
            write_collection(&snapshot, &c, dropped, writer.clone(), options, observer).await?;
        let target_count = writer.count().await?;
        let fresh = options.existing != ExistingTarget::Append;
        if fresh && target_count != c.record_count {
            return Err(Error::InvalidData(format!(
                "after the import `{target}` holds {target_count} records, the snapshot's collection `{}` has {} (duplicate ids in the snapshot, or records changed on the target during the import)",
                c.name, c.record_count
            )));
        }
        observer.finish(&target);
        out.collections.push(ImportedCollection {
            source: c.name.clone(),
            target,
            records: written,
            target_count,
            notes: sink.notes(&spec),
        });
    }
    Ok(out)
}

/// The collections to import with their target names.
fn choose<'a>(
    snapshot: &'a Snapshot,
    options: &ImportOptions,
    url_collection: Option<&str>,
) -> Result<Vec<(&'a CollectionManifest, String)>> {
    let all = &snapshot.manifest().collections;
    let mut chosen = Vec::new();
    if options.collections.is_empty() {
        chosen.extend(all.iter());
    } else {
        for name in &options.collections {
            let c = snapshot.collection(name).ok_or_else(|| Error::NotFound {
                what: format!(
                    "collection `{name}` in snapshot {}",
                    snapshot.root().display()
                ),
                hint: Some(format!(
                    "it holds: {}",
                    all.iter()
                        .map(|c| format!("`{}`", c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            })?;
            chosen.push(c);
        }
    }
    for (from, _) in &options.renames {
        if !chosen.iter().any(|c| &c.name == from) {
            return Err(Error::Usage(format!(
                "--rename names `{from}`, which is not among the collections imported"
            )));
        }
    }
    if url_collection.is_some() && chosen.len() != 1 {
        return Err(Error::Usage(format!(
            "the target URL names one collection but {} collections are to be imported; pick one with --collection",
            chosen.len()
        )));
    }
    let out: Vec<(&CollectionManifest, String)> = chosen
        .into_iter()
        .map(|c| {
            let target = url_collection
                .map(str::to_owned)
                .or_else(|| {
                    options
                        .renames
                        .iter()
                        .find(|(f, _)| f == &c.name)
                        .map(|(_, t)| t.clone())
                })
                .unwrap_or_else(|| c.name.clone());
            (c, target)
        })
        .collect();
    let mut targets = std::collections::HashSet::new();
    for (c, target) in &out {
        if !targets.insert(target) {
            return Err(Error::Usage(format!(
                "two collections would be imported as `{target}` (the second is `{}`); give them different names with --rename",
                c.name
            )));
        }
    }
    Ok(out)
}

fn check_capabilities(sink: &dyn Sink, c: &CollectionManifest) -> Result<()> {
    let caps = sink.capabilities();
    let name = sink.name();
    let dense = c
        .vectors
        .iter()
        .filter(|v| v.field.kind == VectorKind::Dense)
        .count();
    let feature = |what: String| {
        Err(Error::not_supported(
            name,
            format!("{what} (collection `{}`)", c.name),
        ))
    };
    if dense > caps.max_dense_fields {
        return feature(format!(
            "{dense} dense vector fields (at most {})",
            caps.max_dense_fields
        ));
    }
    // Sparse and multivector fields the sink lacks are refused record by
    // record (in `check_records`): a field no record has a value in is left out.
    let dropped = dropped_fields(sink, c);
    let kept = || {
        c.vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, v)| v)
    };
    if !caps.named_vectors && kept().any(|v| !v.field.name.is_empty()) {
        return feature("named vectors".into());
    }
    if !caps.namespaces && c.namespaces.iter().any(|n| n.name.is_some()) {
        return feature("namespaces".into());
    }
    if !caps.documents && c.has_documents {
        return feature("documents".into());
    }
    if !caps.uris && c.has_uris {
        return feature("URIs".into());
    }
    for v in kept() {
        if let Some(m) = v.field.metric
            && !caps.metrics.contains(&m)
        {
            return feature(format!("the {m} metric"));
        }
    }
    Ok(())
}

/// Vector fields of a kind the sink cannot store, by position.
fn dropped_fields(sink: &dyn Sink, c: &CollectionManifest) -> Vec<usize> {
    let caps = sink.capabilities();
    c.vectors
        .iter()
        .enumerate()
        .filter(|(_, v)| match v.field.kind {
            VectorKind::Sparse => !caps.sparse,
            VectorKind::Multi => !caps.multivector,
            VectorKind::Dense => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// The collection as the sink sees it: without the fields it cannot store
/// (which hold no values, or `check_records` would have refused them).
fn target_view(sink: &dyn Sink, c: &CollectionManifest) -> (CollectionSpec, Arc<Vec<usize>>) {
    let dropped = dropped_fields(sink, c);
    let mut spec = c.spec();
    spec.vectors = spec
        .vectors
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, v)| v)
        .collect();
    (spec, Arc::new(dropped))
}

/// Runs the sink's check over every record, reading the snapshot on a
/// blocking thread; names up to ten offending records.
async fn check_records(
    snapshot: &Arc<Snapshot>,
    sink: &dyn Sink,
    c: &CollectionManifest,
) -> Result<()> {
    let (spec, dropped) = target_view(sink, c);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Record>>>(4);
    let reader = spawn_reader(snapshot.clone(), c.name.clone(), 4096, tx, Arc::default());
    let mut problems = Vec::new();
    let mut read_error = None;
    while let Some(batch) = rx.recv().await {
        match batch {
            Ok(records) => {
                for mut r in records {
                    if let Some(i) = dropped.iter().copied().find(|&i| r.vectors[i].is_some()) {
                        let field = &c.vectors[i].field;
                        let kind = format!("{:?}", field.kind).to_lowercase();
                        return Err(Error::not_supported(
                            sink.name(),
                            format!(
                                "{kind} vectors (collection `{}`: record {:?} has one in field {:?}); nothing was written",
                                c.name,
                                r.id.to_string(),
                                field.name
                            ),
                        ));
                    }
                    strip(&mut r, &dropped);
                    if let Err(e) = sink.check(&spec, &r) {
                        problems.push(e.to_string());
                    }
                }
                if problems.len() >= NAMED_RECORDS {
                    break;
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(e) = read_error {
        return Err(e);
    }
    if !problems.is_empty() {
        problems.truncate(NAMED_RECORDS);
        return Err(Error::InvalidData(format!(
            "{} cannot take some records of collection `{}`; nothing was written. First problems:\n  {}",
            sink.name(),
            c.name,
            problems.join("\n  ")
        )));
    }
    Ok(())
}

/// Removes the vector slots at `dropped` (ascending positions).
fn strip(r: &mut Record, dropped: &[usize]) {
    for &i in dropped.iter().rev() {
        r.vectors.remove(i);
    }
}

/// Streams a collection's records from a blocking thread into `tx`,
/// without the vector slots at `dropped`.
fn spawn_reader(
    snapshot: Arc<Snapshot>,
    collection: String,
    batch_rows: usize,
    tx: tokio::sync::mpsc::Sender<Result<Vec<Record>>>,
    dropped: Arc<Vec<usize>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let Some(c) = snapshot.collection(&collection) else {
            return;
        };
        for mut batch in snapshot.records(c, batch_rows) {
            if let Ok(records) = batch.as_mut() {
                records.iter_mut().for_each(|r| strip(r, &dropped));
            }
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
    })
}

async fn write_collection(
    snapshot: &Arc<Snapshot>,
    c: &CollectionManifest,
    dropped: Arc<Vec<usize>>,
    writer: Arc<dyn CollectionWriter>,
    options: &ImportOptions,
    observer: &dyn Observer,
) -> Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<Record>>>(4);
    let reader = spawn_reader(
        snapshot.clone(),
        c.name.clone(),
        options.read_batch_rows,
        tx,
        dropped,
    );
    let limits = writer.limits();
    // Cut the record stream into requests, then send several at once.
    let batches = futures::stream::unfold(
        (rx, Batcher::new(limits), false),
        |(mut rx, mut batcher, done)| async move {
            if done {
                return None;
            }
            loop {
                match rx.recv().await {
                    Some(Ok(records)) => {
                        let mut full = Vec::new();
                        for r in records {
                            match batcher.push(r) {
                                Ok(Some(b)) => full.push(Ok(b)),
                                Ok(None) => {}
                                Err(e) => {
                                    full.push(Err(e));
                                    return Some((
                                        futures::stream::iter(full),
                                        (rx, batcher, true),
                                    ));
                                }
                            }
                        }
                        if !full.is_empty() {
                            return Some((futures::stream::iter(full), (rx, batcher, false)));
                        }
                    }
                    Some(Err(e)) => {
                        return Some((futures::stream::iter(vec![Err(e)]), (rx, batcher, true)));
                    }
                    None => {
                        let last: Vec<Result<Vec<Record>>> =
                            batcher.finish().into_iter().map(Ok).collect();
                        return Some((futures::stream::iter(last), (rx, batcher, true)));
                    }
                }
            }
        },
    )
    .flatten();
    let writes = batches
        .map(|batch| {
            let writer = writer.clone();
            async move {
                let batch = batch?;
                let n = batch.len() as u64;
                writer.write(batch).await.map(|()| n)
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    // Boxed so that dropping it on failure really drops the channel's receiver,
    // which lets the reader thread finish.
    let mut writes = writes.boxed();
    let mut written = 0u64;
    let mut failure = None;
    while let Some(r) = writes.next().await {
        match r {
            Ok(n) => {
                written += n;
                observer.advance(n);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(writes);
    let _ = reader.await;
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}
