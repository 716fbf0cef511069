//! Import: snapshot → sink. Nothing reaches the target before the snapshot's
//! checksums pass, the sink's capabilities cover the collection, every
//! record passed the sink's metadata rules (under the chosen policy) and its
//! check, and no id occurs twice; then parts stream through a [`Batcher`]
//! into concurrent upserts, and the target's count is compared at the end. A
//! request the target refuses names the records it held. Every change made
//! to a record on the way is written to the change report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::connectors::{CollectionWriter, ExistingTarget, Sink};
use crate::error::{Error, Result};
use crate::mapping::{
    self, Change, ChangeKind, IdForm, MetadataPolicy, MetadataRules, NAMESPACE_KEY, NamespacePolicy,
};
use crate::model::{CollectionSpec, Metadata, Record, RecordId, VectorKind};
use crate::snapshot::{CollectionManifest, MetadataSchema, Snapshot};
use crate::storage::Location;

use super::changes::{ChangeCounts, ChangeLog};
use super::collisions;
use super::duplicates::{Confirm, IdHashes};
use super::state::{ImportState, RunLock, STATE_DIR, StateFile, import_lock_path};
use super::{Batcher, Observer, Resume};
use crate::snapshot::reader::lossy_note;

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
    /// At most this many records per write request, when fewer than the
    /// target's own limit (for a server set to take smaller requests).
    pub batch_size: Option<usize>,
    /// Rows read from a part at a time.
    pub read_batch_rows: usize,
    /// What to do with metadata values the target cannot hold.
    pub metadata: MetadataPolicy,
    /// Leave out the records the target cannot take even after the metadata
    /// policy (listing each in the change report) instead of refusing.
    pub skip_invalid: bool,
    /// Where to write the change report (JSON lines, created on the first
    /// change); `None` only counts the changes.
    pub changes: Option<PathBuf>,
    /// Vector fields to leave out, by name (`""` is the unnamed field): for
    /// a target that cannot store them (sparse vectors into Weaviate).
    pub drop_vectors: Vec<String>,
    /// Whether to continue an unfinished import of this snapshot into this target.
    pub resume: Resume,
    /// Where to keep the import's progress; `None`: in the snapshot's
    /// `.vecport-state/` (beside a snapshot in object storage too), or, for a
    /// snapshot that cannot be written (over HTTP), in `./.vecport-state/`.
    pub state_dir: Option<Location>,
    /// What becomes of namespaces (in a target without them, or from a
    /// metadata key).
    pub namespaces: NamespacePolicy,
    /// Where temporary files go (the ids of a collection whose namespaces
    /// are stored in a metadata key, checked for collisions).
    pub work_dir: PathBuf,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            collections: Vec::new(),
            renames: Vec::new(),
            existing: ExistingTarget::Refuse,
            concurrency: 4,
            batch_size: None,
            read_batch_rows: 1024,
            metadata: MetadataPolicy::Refuse,
            skip_invalid: false,
            changes: None,
            drop_vectors: Vec::new(),
            resume: Resume::No,
            state_dir: None,
            namespaces: NamespacePolicy::Refuse,
            work_dir: std::env::temp_dir(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// One entry per collection.
    pub collections: Vec<ImportedCollection>,
    /// The change report, when anything was changed.
    pub changes: Option<PathBuf>,
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
    /// Changes made on the way, by kind ([`ChangeKind::Skipped`] counts the
    /// records left out).
    pub changes: ChangeCounts,
}

/// Most offending records named in one error.
const NAMED_RECORDS: usize = 10;

/// How often an import's progress is saved at most.
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Imports the snapshot at `dir` into `sink`.
///
/// Once writing begins, progress is saved (see [`ImportState`]): the rows of
/// each collection, in snapshot order, that are all in the target. With
/// [`ImportOptions::resume`] an import that stopped continues after them;
/// rows written past that point are written again, which changes nothing
/// because every sink upserts.
pub async fn import(
    dir: &Path,
    sink: &dyn Sink,
    options: &ImportOptions,
    observer: &dyn Observer,
) -> Result<ImportReport> {
    import_from(&Location::Local(dir.to_owned()), sink, options, observer).await
}

/// [`import`] from any location. A snapshot in object storage is read with
/// range requests, each part hashed over the bytes decoded, as on disk.
/// Progress kept in object storage is not locked: two imports of one
/// snapshot into one target at once are not told apart there.
pub async fn import_from(
    dir: &Location,
    sink: &dyn Sink,
    options: &ImportOptions,
    observer: &dyn Observer,
) -> Result<ImportReport> {
    let snapshot = Snapshot::open_at(dir)?;
    let chosen: Vec<(CollectionManifest, String)> =
        choose(&snapshot, options, sink.collection_in_url())?
            .into_iter()
            .map(|(c, t)| (c.clone(), t))
            .collect();
    let state_dir = options.state_dir.clone().unwrap_or_else(|| {
        if dir.writable() {
            dir.child(STATE_DIR)
        } else {
            Location::Local(PathBuf::from(STATE_DIR))
        }
    });
    let state_path = StateFile::import(
        &state_dir,
        &format!(
            "{}\n{}",
            sink.endpoint(),
            chosen
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    // One import of this snapshot into this target at a time, from here to the end.
    let lock = match &state_path {
        StateFile::Local(path) => Some(RunLock::acquire(
            &import_lock_path(path),
            &format!("an import of {dir} into {}", sink.endpoint()),
        )?),
        StateFile::Object { .. } => None,
    };
    let result = import_locked(dir, sink, options, observer, snapshot, chosen, &state_path).await;
    if let Some(lock) = lock {
        lock.release();
    }
    result
}

/// [`import`] once its progress file is locked.
async fn import_locked(
    dir: &Location,
    sink: &dyn Sink,
    options: &ImportOptions,
    observer: &dyn Observer,
    snapshot: Snapshot,
    chosen: Vec<(CollectionManifest, String)>,
    state_path: &StateFile,
) -> Result<ImportReport> {
    let state_path = state_path.clone();
    let manifest_hash = snapshot.manifest_blake3().to_owned();
    let mut state = match (ImportState::load_from(&state_path)?, options.resume) {
        (Some(s), Resume::Required | Resume::IfStarted) if s.snapshot == manifest_hash => s,
        (Some(_), Resume::Required | Resume::IfStarted) => {
            return Err(Error::Usage(format!(
                "{} records an import of another snapshot; remove it to start over without --resume",
                state_path.path().display()
            )));
        }
        (None, Resume::Required) => {
            return Err(Error::Usage(format!(
                "there is no unfinished import of {dir} into {} to resume (no {}); start one without --resume",
                sink.endpoint(),
                state_path.path().display()
            )));
        }
        (Some(_), Resume::No) if options.existing == ExistingTarget::Refuse => {
            return Err(Error::Usage(format!(
                "an earlier import of {dir} into {} stopped before it finished; continue it with --resume, or start over with --if-exists replace",
                sink.endpoint()
            )));
        }
        _ => ImportState::new(manifest_hash, sink.endpoint()),
    };
    for name in &options.drop_vectors {
        if !chosen
            .iter()
            .any(|(c, _)| c.vectors.iter().any(|v| &v.field.name == name))
        {
            return Err(Error::Usage(format!(
                "--drop-vector names {name:?}, which no imported collection has; `vecport inspect` lists the vector fields"
            )));
        }
    }
    // 1. Integrity: every selected part, before anything is written.
    let report = snapshot.verify_collections(&chosen.iter().map(|(c, _)| c).collect::<Vec<_>>());
    if let Some(first) = report.problems.into_iter().next() {
        return Err(first);
    }
    // 2. Capabilities and every record, still before anything is written.
    let snapshot = Arc::new(snapshot);
    let mut log = ChangeLog::new(options.changes.as_deref());
    let mut counts = Vec::with_capacity(chosen.len());
    for (c, target) in &chosen {
        let checked = match check_capabilities(sink, c, options) {
            Ok(()) => check_collection(&snapshot, sink, c, target, options, &mut log).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(checked) => counts.push((log.take_counts(), checked)),
            Err(e) => {
                log.discard();
                return Err(e);
            }
        }
    }
    let mut out = ImportReport {
        changes: log.finish()?,
        ..ImportReport::default()
    };
    // 3. Write. From the first save on, a failure leaves progress to resume from.
    let wrote: Result<()> = async {
        for ((c, target), (changes, checked)) in chosen.into_iter().zip(counts) {
            let mut fit = Fit::new(sink, &c, options, checked.skip.clone());
            if let Some(content) = &mut fit.spec.content {
                content.metadata_types = checked.metadata_types;
                content.renamed_keys = checked.renamed_keys;
                if let Some((names, default)) = checked.namespaces {
                    content.namespaces = names.into_iter().collect();
                    content.default_namespace = default;
                }
            }
            let spec = fit.spec.clone();
            observer.start(&target, Some(c.record_count));
            // A collection an earlier run began is used as it is.
            let begun = state.progress(&c.name).cloned();
            let existing = match &begun {
                Some(_) => ExistingTarget::Append,
                None => options.existing,
            };
            let progress = state.progress_mut(&c.name, &target, existing != ExistingTarget::Append);
            let (fresh, rows_done, complete) = (progress.fresh, progress.rows_done, progress.complete);
            // Saved before the target is touched, so that a stop right
            // after creating it still resumes into it.
            state.save_to(&state_path)?;
            let writer = match sink.prepare(&target, &spec, existing).await {
                Ok(w) => w,
                Err(e) => {
                    // Nothing of this collection was written: forget it.
                    if begun.is_none() {
                        state.collections.retain(|p| p.source != c.name);
                        if state.collections.is_empty() {
                            state_path.remove()?;
                        } else {
                            state.save_to(&state_path)?;
                        }
                    }
                    return Err(e);
                }
            };
            let written = if complete {
                0
            } else {
                observer.advance(rows_done);
                let mut last_save = Instant::now();
                let mut save = |rows: u64| -> Result<()> {
                    if last_save.elapsed() >= SAVE_EVERY {
                        state.progress_mut(&c.name, &target, fresh).rows_done = rows;
                        state.save_to(&state_path)?;
                        last_save = Instant::now();
                    }
                    Ok(())
                };
                let mut wrote_any = false;
                let written = write_collection(
                    &snapshot,
                    &c,
                    sink,
                    fit,
                    writer.clone(),
                    options,
                    observer,
                    rows_done,
                    &mut save,
                    &mut wrote_any,
                )
                .await;
                let written = match written {
                    Ok(n) => n,
                    // This run created the collection and nothing reached
                    // it: remove it, so that the target is as it was.
                    Err(e) if begun.is_none() && existing != ExistingTarget::Append && !wrote_any => {
                        let hint = match writer.discard().await {
                            Ok(true) => format!(
                                "nothing was written, and the collection `{target}` this import created was removed again"
                            ),
                            Ok(false) => format!(
                                "nothing was written; the collection `{target}` this import created is left, empty: remove it, or import again with --if-exists replace"
                            ),
                            Err(d) => format!(
                                "nothing was written; the collection `{target}` this import created is left, empty, as removing it failed too ({d})"
                            ),
                        };
                        state.collections.retain(|p| p.source != c.name);
                        if state.collections.is_empty() {
                            state_path.remove()?;
                        } else {
                            state.save_to(&state_path)?;
                        }
                        return Err(Error::Stopped {
                            cause: Box::new(e),
                            hint,
                        });
                    }
                    Err(e) => return Err(e),
                };
                writer.finish().await?;
                written
            };
            let target_count = writer.count().await?;
            let skipped = changes.get(&ChangeKind::Skipped).copied().unwrap_or(0);
            let expected = c.record_count - skipped;
            if fresh && target_count != expected {
                return Err(Error::InvalidData(format!(
                    "after the import `{target}` holds {target_count} records, the snapshot's collection `{}` has {}{} (duplicate ids in the snapshot, or records changed on the target during the import)",
                    c.name,
                    c.record_count,
                    if skipped > 0 {
                        format!(" of which {skipped} were skipped")
                    } else {
                        String::new()
                    }
                )));
            }
            let progress = state.progress_mut(&c.name, &target, fresh);
            progress.rows_done = c.record_count;
            progress.complete = true;
            state.save_to(&state_path)?;
            observer.finish(&target);
            out.collections.push(ImportedCollection {
                source: c.name.clone(),
                target,
                records: written,
                target_count,
                notes: writer
                    .notes()
                    .into_iter()
                    .chain(sink.notes(&spec))
                    .chain(dropped_note(&c, options, checked.dropped_values))
                    .chain((checked.lossy > 0).then(|| lossy_note(&c, checked.lossy)))
                    .chain(namespaces_note(sink, &c, options))
                    .collect(),
                changes,
            });
        }
        Ok(())
    }
    .await;
    if let Err(e) = wrote {
        // The hint only when the progress file is there and not itself what failed.
        let state_file = state_path.path();
        let about_state = matches!(&e, Error::Io { path, .. }
        if path.parent() == state_file.parent()
            && path.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with(&*state_file.file_name().unwrap_or_default().to_string_lossy())
            }));
        return Err(if state_path.exists() && !about_state {
            e.resumable(&state_file)
        } else {
            e
        });
    }
    state_path.remove()?;
    Ok(out)
}

/// Says which vector fields were left out on request, and how many records
/// had values in them.
fn dropped_note(c: &CollectionManifest, options: &ImportOptions, records: u64) -> Option<String> {
    let names: Vec<String> = c
        .vectors
        .iter()
        .filter(|v| options.drop_vectors.contains(&v.field.name))
        .map(|v| format!("{:?}", v.field.name))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "vector field(s) {} left out as asked (--drop-vector): {records} records had values in them",
            names.join(", ")
        )
    })
}

/// Says that namespaces stayed the target's own although `into-key` was
/// asked for, when the collection has any.
fn namespaces_note(
    sink: &dyn Sink,
    c: &CollectionManifest,
    options: &ImportOptions,
) -> Option<String> {
    (matches!(options.namespaces, NamespacePolicy::IntoKey(_))
        && sink.capabilities().namespaces
        && c.namespaces.iter().any(|n| n.name.is_some()))
    .then(|| {
        format!(
            "namespaces kept as {}'s own (--namespaces into-key applies to targets without namespaces)",
            sink.name()
        )
    })
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
                what: format!("collection `{name}` in snapshot {}", snapshot.root()),
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

fn check_capabilities(
    sink: &dyn Sink,
    c: &CollectionManifest,
    options: &ImportOptions,
) -> Result<()> {
    let caps = sink.capabilities();
    let name = sink.name();
    let dense = c
        .vectors
        .iter()
        .filter(|v| {
            v.field.kind == VectorKind::Dense && !options.drop_vectors.contains(&v.field.name)
        })
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
    let dropped = dropped_fields(sink, c, options);
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
    match &options.namespaces {
        // With --skip-invalid, records outside the default namespace are left
        // out one by one (the sink's check refuses them) and reported.
        NamespacePolicy::Refuse
            if !caps.namespaces
                && !options.skip_invalid
                && c.namespaces.iter().any(|n| n.name.is_some()) =>
        {
            return feature(
                "namespaces (--namespaces into-key keeps each record's namespace in a metadata key; --skip-invalid leaves out the records outside the default namespace)"
                    .into(),
            );
        }
        NamespacePolicy::IntoKey(key) if !caps.namespaces && key != NAMESPACE_KEY => {
            let why = (caps.metadata.key)(key).or_else(|| {
                (caps.metadata.rename)(key).map(|new| format!("would be renamed to {new:?}"))
            });
            if let Some(why) = why {
                return Err(Error::Usage(format!(
                    "--namespaces into-key={key}: {name} cannot take metadata key {key:?}: it {why}; choose another key"
                )));
            }
        }
        NamespacePolicy::FromKey(key) if !caps.namespaces => {
            return Err(Error::Usage(format!(
                "--namespaces from-key={key}: {name} has no namespaces to put records in"
            )));
        }
        _ => {}
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

/// Vector fields left out, by position: those the user asked to drop and
/// those of a kind the sink cannot store.
fn dropped_fields(sink: &dyn Sink, c: &CollectionManifest, options: &ImportOptions) -> Vec<usize> {
    let caps = sink.capabilities();
    c.vectors
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            options.drop_vectors.contains(&v.field.name) || lacking(&caps, v.field.kind)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Whether the sink cannot store vectors of `kind`.
fn lacking(caps: &crate::connectors::Capabilities, kind: VectorKind) -> bool {
    match kind {
        VectorKind::Sparse => !caps.sparse,
        VectorKind::Multi => !caps.multivector,
        VectorKind::Dense => false,
    }
}

/// How each record is made to fit the sink: vector fields it cannot store
/// (which hold no values, or `check_records` would have refused them) are
/// left out, and metadata is conformed to its rules under the chosen policy.
/// The check pass and the write pass apply the same, so they agree.
#[derive(Clone)]
struct Fit {
    /// The collection as the sink sees it.
    spec: CollectionSpec,
    dropped: Arc<Vec<usize>>,
    rules: MetadataRules,
    policy: MetadataPolicy,
    namespaces: Namespaces,
    /// Records left out because their id is in an earlier namespace too
    /// (target without namespaces): `(namespace, id)` → that namespace.
    collide: Collide,
}

/// `(namespace, id)` of a record left out → the namespace whose record of
/// that id is kept.
type Collide = Arc<HashMap<(Option<String>, RecordId), Option<String>>>;

/// Where a record's namespace goes.
#[derive(Clone)]
enum Namespaces {
    /// To the target's namespaces (or refused by a target without them).
    Kept,
    /// Into this metadata key (a target without namespaces).
    IntoKey(String),
    /// From this metadata key.
    FromKey(String),
}

/// A record made to fit.
struct Fitted {
    /// What was changed in its metadata.
    changes: Vec<Change>,
    /// Whether its namespace went into, or came from, a metadata key.
    namespace_moved: bool,
}

impl Fit {
    fn new(
        sink: &dyn Sink,
        c: &CollectionManifest,
        options: &ImportOptions,
        collide: Collide,
    ) -> Fit {
        let dropped = dropped_fields(sink, c, options);
        let mut spec = c.spec();
        spec.vectors = spec
            .vectors
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, v)| v)
            .collect();
        let caps = sink.capabilities();
        let namespaces = match &options.namespaces {
            NamespacePolicy::IntoKey(key) if !caps.namespaces => {
                // The sink sees one namespace-less collection.
                if let Some(content) = &mut spec.content {
                    content.default_namespace |= !content.namespaces.is_empty();
                    content.namespaces.clear();
                }
                Namespaces::IntoKey(key.clone())
            }
            NamespacePolicy::FromKey(key) => Namespaces::FromKey(key.clone()),
            _ => Namespaces::Kept,
        };
        Fit {
            spec,
            dropped: Arc::new(dropped),
            rules: caps.metadata,
            policy: options.metadata,
            namespaces,
            collide,
        }
    }

    /// Fits one record; `Err` says why it cannot be made to fit.
    fn apply(&self, r: &mut Record) -> std::result::Result<Fitted, String> {
        if !self.collide.is_empty()
            && let Some(kept) = self.collide.get(&(r.namespace.clone(), r.id.clone()))
        {
            return Err(format!(
                "its id is also in {}, whose record is kept: a target without namespaces holds one record per id",
                namespace_name(kept.as_deref())
            ));
        }
        for &i in self.dropped.iter().rev() {
            r.vectors.remove(i);
        }
        let mut namespace_moved = false;
        if let Namespaces::FromKey(key) = &self.namespaces
            && let Some(v) = r.metadata.as_mut().and_then(|m| m.shift_remove(key))
        {
            match (v, &r.namespace) {
                (Value::String(ns), None) if !ns.is_empty() => {
                    r.namespace = Some(ns);
                    namespace_moved = true;
                }
                (Value::String(ns), Some(have)) if *have == ns => namespace_moved = true,
                (Value::String(ns), Some(have)) if !ns.is_empty() => {
                    return Err(format!(
                        "it is in namespace {have:?} and its metadata key `{key}` names namespace {ns:?}"
                    ));
                }
                (v, _) => {
                    return Err(format!(
                        "metadata key `{key}` holds {v}, which is not a namespace name (a non-empty string)"
                    ));
                }
            }
            if r.metadata.as_ref().is_some_and(Metadata::is_empty) {
                r.metadata = None;
            }
        }
        let changes = match &mut r.metadata {
            Some(m) => mapping::conform(&self.rules, self.policy, m)?,
            None => Vec::new(),
        };
        if let Namespaces::IntoKey(key) = &self.namespaces
            && let Some(ns) = r.namespace.take()
        {
            let m = r.metadata.get_or_insert_with(Metadata::new);
            if m.contains_key(key) {
                return Err(format!(
                    "metadata key `{key}` exists, so its namespace {ns:?} cannot be kept there; choose another key (--namespaces into-key=KEY)"
                ));
            }
            m.insert(key.clone(), Value::String(ns));
            namespace_moved = true;
        }
        Ok(Fitted {
            changes,
            namespace_moved,
        })
    }
}

/// The kind of an id in words.
fn id_kind_words(id: &RecordId) -> &'static str {
    match id {
        RecordId::String(_) => "string",
        RecordId::Uint(_) => "unsigned integer",
        RecordId::Uuid(_) => "UUID",
    }
}

/// A namespace as messages name it.
fn namespace_name(ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("namespace {ns:?}"),
        None => "the default namespace".to_owned(),
    }
}

/// Checks the records of one collection: first, when its namespaces are to
/// share one namespace-less collection, that no id is in two of them (with
/// `--skip-invalid`, the later records of such an id are left out); then
/// every record, as [`check_records`] does.
async fn check_collection(
    snapshot: &Arc<Snapshot>,
    sink: &dyn Sink,
    c: &CollectionManifest,
    target: &str,
    options: &ImportOptions,
    log: &mut ChangeLog,
) -> Result<Checked> {
    let shared = matches!(options.namespaces, NamespacePolicy::IntoKey(_))
        && !sink.capabilities().namespaces
        && c.namespaces.iter().filter(|n| n.records > 0).count() > 1;
    let mut collide = HashMap::new();
    if shared {
        let (s, name, work) = (snapshot.clone(), c.name.clone(), options.work_dir.clone());
        let found = tokio::task::spawn_blocking(move || {
            let c = s.collection(&name).expect("a collection of this snapshot");
            collisions::find(&s, c, &work)
        })
        .await
        .map_err(|e| Error::InvalidData(format!("id collision check failed: {e}")))??;
        if !found.is_empty() && !options.skip_invalid {
            let named: Vec<String> = found
                .iter()
                .take(NAMED_RECORDS)
                .map(|k| {
                    let holders: Vec<String> = k
                        .namespaces
                        .iter()
                        .map(|n| namespace_name(n.as_deref()))
                        .collect();
                    format!("id {:?} is in {}", k.id.to_string(), holders.join(" and "))
                })
                .collect();
            return Err(Error::InvalidData(format!(
                "{} has no namespaces, and {} ids of collection `{}` are in more than one namespace: they would collide in one collection; nothing was written. First collisions:\n  {}\nTo import anyway, --skip-invalid keeps the record of each such id in its first namespace (the default namespace first, then by name) and leaves out the others; every one left out is reported.",
                sink.name(),
                found.len(),
                c.name,
                named.join("\n  ")
            )));
        }
        for k in found {
            let mut holders = k.namespaces.into_iter();
            let kept = holders.next().flatten();
            for ns in holders {
                collide.insert((ns, k.id.clone()), kept.clone());
            }
        }
    }
    check_records(snapshot, sink, c, target, options, Arc::new(collide), log).await
}

/// Runs the metadata rules and the sink's check over every record, reading
/// the snapshot on a blocking thread; logs every change, and names up to ten
/// offending records unless they are to be skipped.
async fn check_records(
    snapshot: &Arc<Snapshot>,
    sink: &dyn Sink,
    c: &CollectionManifest,
    target: &str,
    options: &ImportOptions,
    collide: Collide,
    log: &mut ChangeLog,
) -> Result<Checked> {
    let fit = Fit::new(sink, c, options, collide.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Positioned>>(CHANNEL_BATCHES);
    let reader = spawn_reader(
        snapshot.clone(),
        c.name.clone(),
        options.read_batch_rows,
        tx,
        None,
        0,
    );
    let mut problems = Vec::new();
    let mut dropped_values = 0u64;
    let mut fitted_schema = MetadataSchema::default();
    let mut renamed_keys = BTreeMap::new();
    // Changes an export undoes, counted per rule: (kind, key, reason).
    let mut rules: BTreeMap<(ChangeKind, Option<String>, String), u64> = BTreeMap::new();
    let mut namespaces_moved = 0u64;
    let mut namespaces = (BTreeSet::new(), false);
    let mut keys = IdHashes::new(c.record_count);
    let mut failure = None;
    let mut lossy = 0u64;
    'read: while let Some(batch) = rx.recv().await {
        let records = match batch {
            Ok(batch) => {
                lossy += batch.lossy;
                batch.records
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for mut r in records {
            if let Err(e) = keys.push(&r) {
                failure = Some(e);
                break 'read;
            }
            let asked = |i: &usize| options.drop_vectors.contains(&c.vectors[*i].field.name);
            if fit
                .dropped
                .iter()
                .any(|i| asked(i) && r.vectors[*i].is_some())
            {
                dropped_values += 1;
            }
            if let Some(i) = fit
                .dropped
                .iter()
                .copied()
                .find(|i| !asked(i) && r.vectors[*i].is_some())
            {
                let field = &c.vectors[i].field;
                let kind = format!("{:?}", field.kind).to_lowercase();
                failure = Some(Error::not_supported(
                    sink.name(),
                    format!(
                        "{kind} vectors (collection `{}`: record {:?} has one in field {:?}); nothing was written. `--drop-vector {:?}` leaves the field out",
                        c.name,
                        r.id.to_string(),
                        field.name,
                        field.name
                    ),
                ));
                break 'read;
            }
            let id = r.id.to_string();
            let namespace = r.namespace.clone();
            let fitted = fit
                .apply(&mut r)
                .map_err(|why| format!("record {id:?}: {why}"))
                .and_then(|fitted| {
                    sink.check(&fit.spec, &r)
                        .map(|()| fitted)
                        .map_err(|e| e.to_string())
                });
            let changes = match fitted {
                Ok(Fitted {
                    mut changes,
                    namespace_moved,
                }) => {
                    fitted_schema.observe(r.metadata.as_ref());
                    // A renamed key is restored on export: one line per key.
                    changes.retain(|ch| {
                        if ch.change != ChangeKind::Renamed {
                            return true;
                        }
                        if let Some(original) = &ch.key {
                            if !renamed_keys.values().any(|o| o == original)
                                && let Some(new) = (fit.rules.rename)(original)
                            {
                                renamed_keys.insert(new, original.clone());
                            }
                            let rule = (
                                ChangeKind::Renamed,
                                Some(original.clone()),
                                ch.reason.clone(),
                            );
                            *rules.entry(rule).or_default() += 1;
                        }
                        false
                    });
                    namespaces_moved += u64::from(namespace_moved);
                    match &r.namespace {
                        Some(ns) if !namespaces.0.contains(ns) => {
                            namespaces.0.insert(ns.clone());
                        }
                        Some(_) => {}
                        None => namespaces.1 = true,
                    }
                    match sink.id_form(&fit.spec, &r.id) {
                        None => {}
                        Some(IdForm::Kept(rule)) => {
                            *rules
                                .entry((ChangeKind::Id, None, rule.to_owned()))
                                .or_default() += 1;
                        }
                        Some(IdForm::Text { stored, rule }) => changes.push(Change {
                            change: ChangeKind::Id,
                            key: None,
                            new_id: Some(stored),
                            reason: format!(
                                "{rule}, so its kind ({}) is lost",
                                id_kind_words(&r.id)
                            ),
                        }),
                    }
                    changes
                }
                Err(why) if options.skip_invalid => vec![Change {
                    change: ChangeKind::Skipped,
                    key: None,
                    new_id: None,
                    reason: why,
                }],
                Err(why) => {
                    problems.push(why);
                    continue;
                }
            };
            if !changes.is_empty()
                && let Err(e) = log.record(&c.name, target, namespace.as_deref(), &r.id, &changes)
            {
                failure = Some(e);
                break 'read;
            }
        }
        if problems.len() >= NAMED_RECORDS {
            break;
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(e) = failure {
        return Err(e);
    }
    if !problems.is_empty() {
        problems.truncate(NAMED_RECORDS);
        return Err(Error::InvalidData(format!(
            "{} cannot take some records of collection `{}`; nothing was written. First problems:\n  {}\nTo import anyway, choose what happens to metadata the target cannot hold (--metadata flatten|encode|drop) and/or leave such records out (--skip-invalid); every change is reported.",
            sink.name(),
            c.name,
            problems.join("\n  ")
        )));
    }
    check_unique_ids(snapshot, c, keys).await?;
    if namespaces_moved > 0 {
        let (key, reason) = match &fit.namespaces {
            Namespaces::IntoKey(key) if key == NAMESPACE_KEY => (
                key,
                format!(
                    "{} has no namespaces: the namespace is kept in metadata key `{key}`, from which an export restores it",
                    sink.name()
                ),
            ),
            Namespaces::IntoKey(key) => (
                key,
                format!(
                    "{} has no namespaces: the namespace is kept in metadata key `{key}`; importing with --namespaces from-key={key} restores it",
                    sink.name()
                ),
            ),
            Namespaces::FromKey(key) => (
                key,
                format!(
                    "the namespace was taken from metadata key `{key}`, which is removed; importing into a target without namespaces with --namespaces into-key={key} puts it back"
                ),
            ),
            Namespaces::Kept => unreachable!("namespaces move only into or from a key"),
        };
        rules.insert(
            (ChangeKind::Namespace, Some(key.clone()), reason),
            namespaces_moved,
        );
    }
    for ((kind, key, reason), n) in &rules {
        log.rule(&c.name, target, *kind, key.as_deref(), *n, reason)?;
    }
    Ok(Checked {
        skip: collide,
        namespaces: matches!(fit.namespaces, Namespaces::FromKey(_)).then_some(namespaces),
        dropped_values,
        lossy,
        metadata_types: fitted_schema
            .fields
            .into_iter()
            .map(|(k, f)| (k, f.types.into_keys().collect()))
            .collect(),
        renamed_keys,
    })
}

/// Refuses a collection that holds an id twice in one namespace: the target
/// would keep one of the two and the import could not be faithful. `keys`
/// holds the hashes of every record's key; records are read again only when
/// two hashes are equal.
async fn check_unique_ids(
    snapshot: &Arc<Snapshot>,
    c: &CollectionManifest,
    keys: IdHashes,
) -> Result<()> {
    let suspects = tokio::task::spawn_blocking(move || keys.repeated())
        .await
        .map_err(|e| Error::InvalidData(format!("duplicate check failed: {e}")))??;
    if suspects.is_empty() {
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Positioned>>(CHANNEL_BATCHES);
    let reader = spawn_reader(snapshot.clone(), c.name.clone(), 1024, tx, None, 0);
    let mut confirm = Confirm::default();
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        match batch {
            Ok(batch) => batch
                .records
                .iter()
                .for_each(|r| confirm.observe(&suspects, r)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(e) = failure {
        return Err(e);
    }
    let duplicates = confirm.duplicates();
    if duplicates.is_empty() {
        return Ok(()); // equal hashes of different keys
    }
    let named: Vec<String> = duplicates
        .iter()
        .take(NAMED_RECORDS)
        .map(|(ns, id, n)| match ns {
            Some(ns) => format!("{:?} in namespace {ns:?} ({n} times)", id.to_string()),
            None => format!("{:?} ({n} times)", id.to_string()),
        })
        .collect();
    Err(Error::invalid(
        snapshot.root().file(""),
        format!(
            "collection `{}` holds {} id(s) more than once: {}{}; a database keeps one record per id, so nothing was written. Export the collection again while nothing writes to it, or remove the duplicates",
            c.name,
            duplicates.len(),
            named.join(", "),
            if duplicates.len() > NAMED_RECORDS {
                ", …"
            } else {
                ""
            }
        ),
    ))
}

/// What the check pass learnt about a collection.
struct Checked {
    /// Records left out because their id is in an earlier namespace too.
    skip: Collide,
    /// With --namespaces from-key: the named namespaces records are in,
    /// and whether any is in the default namespace.
    namespaces: Option<(BTreeSet<String>, bool)>,
    /// Records with values in vector fields dropped on request.
    dropped_values: u64,
    /// Vector values stored as float64 that lost bits as float32.
    lossy: u64,
    /// The metadata schema of the records as they will be written (after
    /// the policy), for sinks that derive a schema from it.
    metadata_types: BTreeMap<String, Vec<String>>,
    /// Keys stored under another name: that name → the original.
    renamed_keys: BTreeMap<String, String>,
}

/// Batches of records between the snapshot reader and the rest of an import;
/// each holds `read_batch_rows` records, so few keep memory small.
const CHANNEL_BATCHES: usize = 2;

/// Records read from a snapshot, each with its row position in the
/// collection (in part order).
struct Positioned {
    records: Vec<Record>,
    positions: Vec<u64>,
    /// Vector values stored as float64 that lost bits as float32.
    lossy: u64,
}

/// Streams a collection's records from row `start` on, from a blocking
/// thread into `tx`, fitted to the sink by `fit` when given (records whose
/// metadata cannot be made to fit are left out: they were reported as
/// skipped by the check pass).
fn spawn_reader(
    snapshot: Arc<Snapshot>,
    collection: String,
    batch_rows: usize,
    tx: tokio::sync::mpsc::Sender<Result<Positioned>>,
    fit: Option<Fit>,
    start: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let Some(c) = snapshot.collection(&collection) else {
            return;
        };
        // Whole parts before `start` are not read at all.
        let mut position = 0u64;
        let mut rest = c.clone();
        let skipped = c
            .parts
            .iter()
            .take_while(|p| {
                let whole = position + p.rows <= start;
                if whole {
                    position += p.rows;
                }
                whole
            })
            .count();
        rest.parts.drain(..skipped);
        // Each part is hashed again over the bytes decoded here, so what is
        // written is what was verified even if a part changes meanwhile.
        for block in snapshot.blocks_checked(&rest, batch_rows) {
            let batch = block.and_then(|block| {
                let first = position;
                position += block.len() as u64;
                let mut out = Positioned {
                    records: Vec::with_capacity(block.len()),
                    positions: Vec::with_capacity(block.len()),
                    lossy: block.lossy(),
                };
                // Rows before `start` are skipped without being made records.
                for (row, at) in (0..block.len()).zip(first..) {
                    if at < start {
                        continue;
                    }
                    let mut r = block.record(row)?;
                    if fit.as_ref().is_some_and(|f| f.apply(&mut r).is_err()) {
                        continue;
                    }
                    out.records.push(r);
                    out.positions.push(at);
                }
                Ok(out)
            });
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
    })
}

/// The records of one write request, for an error that refuses it: all of
/// a few, else the first three and the last.
fn request_records(batch: &[Record]) -> String {
    let id = |r: &Record| format!("{:?}", r.id.to_string());
    let hint = "; if the database takes smaller requests, --batch-size sends fewer records in each";
    match batch {
        [one] => format!("record {}", id(one)),
        [first, second, third, .., last] if batch.len() > 4 => format!(
            "{} records: {}, {}, {} … {}{hint}",
            batch.len(),
            id(first),
            id(second),
            id(third),
            id(last)
        ),
        _ => format!(
            "{} records: {}{hint}",
            batch.len(),
            batch.iter().map(id).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Writes a collection's records from row `start` on. `save(rows)` is
/// told, as writes complete, how many rows (in snapshot order) are all in
/// the target.
#[allow(clippy::too_many_arguments)]
async fn write_collection(
    snapshot: &Arc<Snapshot>,
    c: &CollectionManifest,
    sink: &dyn Sink,
    fit: Fit,
    writer: Arc<dyn CollectionWriter>,
    options: &ImportOptions,
    observer: &dyn Observer,
    start: u64,
    save: &mut dyn FnMut(u64) -> Result<()>,
    wrote_any: &mut bool,
) -> Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Positioned>>(CHANNEL_BATCHES);
    let spec = fit.spec.clone();
    let reader = spawn_reader(
        snapshot.clone(),
        c.name.clone(),
        options.read_batch_rows,
        tx,
        Some(fit),
        start,
    );
    // Records the sink's check refuses were reported as skipped by the check
    // pass (or the import stopped there).
    let keep = |r: &Record| !options.skip_invalid || sink.check(&spec, r).is_ok();
    let mut limits = writer.limits();
    if let Some(n) = options.batch_size {
        limits.max_records = limits.max_records.min(n.max(1));
    }
    // Cut the record stream into requests, each with the row position just
    // after its last record, then send several at once.
    struct Cutting {
        rx: tokio::sync::mpsc::Receiver<Result<Positioned>>,
        batcher: Batcher,
        /// The position after the last record given to the batcher.
        end: u64,
        done: bool,
    }
    type Request = Result<(Vec<Record>, u64)>;
    let cutting = Cutting {
        rx,
        batcher: Batcher::new(limits),
        end: start,
        done: false,
    };
    let batches = futures::stream::unfold(cutting, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.rx.recv().await {
                Some(Ok(batch)) => {
                    let mut full: Vec<Request> = Vec::new();
                    for (r, at) in batch.records.into_iter().zip(batch.positions) {
                        if !keep(&r) {
                            continue;
                        }
                        match st.batcher.push(r) {
                            Ok(Some(b)) => full.push(Ok((b, st.end))),
                            Ok(None) => {}
                            Err(e) => {
                                full.push(Err(e));
                                st.done = true;
                                return Some((futures::stream::iter(full), st));
                            }
                        }
                        st.end = at + 1;
                    }
                    if !full.is_empty() {
                        return Some((futures::stream::iter(full), st));
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((futures::stream::iter(vec![Err(e)]), st));
                }
                None => {
                    let end = st.end;
                    let last: Vec<Request> = st
                        .batcher
                        .finish()
                        .into_iter()
                        .map(|b| Ok((b, end)))
                        .collect();
                    st.done = true;
                    return Some((futures::stream::iter(last), st));
                }
            }
        }
    })
    .flatten();
    let writes = batches
        .enumerate()
        .map(|(seq, batch)| {
            let writer = writer.clone();
            async move {
                let (batch, end) = batch?;
                let n = batch.len() as u64;
                let held = request_records(&batch);
                writer
                    .write(batch)
                    .await
                    .map(|()| (seq, n, end))
                    .map_err(|e| match e {
                        Error::Refused {
                            connector,
                            operation,
                            status,
                            message,
                            records: None,
                        } => Error::Refused {
                            connector,
                            operation,
                            status,
                            message,
                            records: Some(held),
                        },
                        other => other,
                    })
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    // Boxed so that dropping it on failure really drops the channel's receiver,
    // which lets the reader thread finish.
    let mut writes = writes.boxed();
    let mut written = 0u64;
    let mut failure = None;
    // Requests complete out of order: the rows done are those up to the end
    // of the last request before which every request completed.
    let mut completed = std::collections::BTreeMap::new();
    let mut next_seq = 0usize;
    while let Some(r) = writes.next().await {
        match r {
            Ok((seq, n, end)) => {
                *wrote_any = true;
                written += n;
                observer.advance(n);
                completed.insert(seq, end);
                let mut done = None;
                while let Some(end) = completed.remove(&next_seq) {
                    done = Some(end);
                    next_seq += 1;
                }
                if let Some(rows) = done
                    && let Err(e) = save(rows)
                {
                    failure = Some(e);
                    break;
                }
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
