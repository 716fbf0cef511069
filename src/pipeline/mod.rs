//! Streaming export and import: records flow from a source into snapshot
//! parts, and from parts into a sink, in bounded batches so that memory stays
//! flat whatever the collection's size.

use crate::model::{CollectionSpec, ContentSummary};
use crate::snapshot::CollectionManifest;

mod batch;
mod changes;
mod collisions;
pub mod copy;
pub(crate) mod duplicates;
mod export;
mod import;
pub mod state;

pub use batch::Batcher;
pub use changes::ChangeCounts;
pub use export::{ExportOptions, export, export_to};
pub use import::{ImportOptions, ImportReport, ImportedCollection, import, import_from};

use crate::connectors::{Sink, Source};
use crate::error::Result;
use crate::snapshot::Manifest;

/// Migrates collections from `source` to `sink` through a snapshot at `via`:
/// a complete, verified export first, then the import — so every record is
/// checked against the target before anything is written, memory stays
/// bounded on both sides, and the snapshot can replay or audit the migration.
/// Both halves keep their progress in `via`, so with [`Resume::IfStarted`]
/// (or `Required`) in both options a stopped migration continues where it
/// stopped.
pub async fn migrate(
    source: &dyn Source,
    sink: &dyn Sink,
    via: &crate::storage::Location,
    export_options: &ExportOptions,
    import_options: &ImportOptions,
    observer: &dyn Observer,
) -> Result<(Manifest, ImportReport)> {
    let manifest = export_to(source, via, export_options, observer).await?;
    let report = import_from(via, sink, import_options, observer).await?;
    Ok((manifest, report))
}

/// Whether a run continues an earlier one that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resume {
    /// Start afresh (the default); refuse where an unfinished run is found.
    #[default]
    No,
    /// Continue the unfinished run; refuse when there is none.
    Required,
    /// Continue an unfinished run if there is one, else start afresh.
    IfStarted,
}

/// Receives progress; the CLI draws bars from it, tests ignore it.
pub trait Observer: Send + Sync {
    /// A collection starts; `total` is the expected record count when known.
    fn start(&self, _collection: &str, _total: Option<u64>) {}
    /// `n` more records were moved.
    fn advance(&self, _n: u64) {}
    /// The collection is done.
    fn finish(&self, _collection: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;
impl Observer for Quiet {}

impl CollectionManifest {
    /// The collection's settings in the neutral model, as a sink needs them.
    pub fn spec(&self) -> CollectionSpec {
        CollectionSpec {
            name: self.name.clone(),
            id_kind: Some(self.id_kind),
            vectors: self.vectors.iter().map(|v| v.field.clone()).collect(),
            raw_config: self.raw_config.clone(),
            collection_metadata: self.collection_metadata.clone(),
            count_hint: Some(self.record_count),
            notes: self.notes.clone(),
            content: Some(ContentSummary {
                namespaces: self
                    .namespaces
                    .iter()
                    .filter_map(|n| n.name.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                default_namespace: self
                    .namespaces
                    .iter()
                    .any(|n| n.name.is_none() && n.records > 0),
                documents: self.has_documents,
                uris: self.has_uris,
                renamed_keys: Default::default(),
                metadata_types: self
                    .metadata_schema
                    .fields
                    .iter()
                    .map(|(k, f)| (k.clone(), f.types.keys().cloned().collect()))
                    .collect(),
            }),
        }
    }
}
