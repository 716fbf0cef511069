//! The connector interface: a [`Source`] lists and reads collections, a
//! [`Sink`] creates collections and writes records. Each database is one
//! module here and one line in [`open`].

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::mapping::{IdForm, MetadataRules};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, Metric, Record, RecordId, VectorField, VectorKind,
};

pub mod chroma;
pub mod floats;
pub mod http;
pub mod json_cursor;
pub mod memory;
pub mod milvus;
pub mod pgvector;
pub mod pinecone;
pub mod qdrant;
pub mod url;
pub mod weaviate;

pub use self::url::ConnectorUrl;

/// A position in a source's record stream, from which a scan can continue.
pub type Cursor = Value;

/// One page of records read from a source.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records, in the source's order.
    pub records: Vec<Record>,
    /// Where to continue after this page; `None` after the last page.
    pub next: Option<Cursor>,
}

/// How a scan reads.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Records per request.
    pub page_size: usize,
    /// Requests in flight at once, where the source's paging allows it.
    pub concurrency: usize,
    /// Continue from this cursor instead of the start.
    pub start: Option<Cursor>,
    /// Read these ids (one per line) instead of listing them, for sources
    /// that cannot list ids (Pinecone pod indexes).
    pub ids_from: Option<std::path::PathBuf>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            page_size: 1000,
            concurrency: 4,
            start: None,
            ids_from: None,
        }
    }
}

/// What a source tells about itself for the manifest.
#[derive(Debug, Clone, Default)]
pub struct SourceDescription {
    /// Server version, when the server tells it.
    pub server_version: Option<String>,
    /// Where inside the server (tenant, database, …).
    pub location: Map<String, Value>,
}

/// What a connector tells about itself, whichever way it is used.
pub trait Endpoint: Send + Sync {
    /// Connector name (`chroma`).
    fn name(&self) -> &'static str;
    /// The endpoint, credentials removed.
    fn endpoint(&self) -> String;
    /// The collection the URL names, if it names one.
    fn collection_in_url(&self) -> Option<&str>;
}

/// Reads collections.
#[async_trait]
pub trait Source: Endpoint {
    /// Server version and location.
    async fn describe(&self) -> Result<SourceDescription>;
    /// Every collection, with dimension, metric and count where known.
    async fn list(&self) -> Result<Vec<CollectionSummary>>;
    /// The settings of one collection; [`Error::NotFound`] when it does not exist.
    async fn collection(&self, name: &str) -> Result<CollectionSpec>;
    /// Streams the collection's records in pages, in a stable order.
    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>>;
    /// The ids of the `k` records nearest to `vector` in the dense field
    /// `field` (within `namespace`), nearest first, by the database's own
    /// nearest-neighbour search; ids as [`Source::scan`] gives them.
    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let _ = (spec, field, vector, k, namespace);
        Err(Error::not_supported(
            self.name(),
            "nearest-neighbour search",
        ))
    }
}

/// What a sink can store; the pipeline refuses a snapshot that needs more
/// before anything is written.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Dense vector fields a collection can have (Chroma: 1).
    pub max_dense_fields: usize,
    /// Sparse vector fields.
    pub sparse: bool,
    /// Multivector fields.
    pub multivector: bool,
    /// Named (non-empty) vector field names are kept.
    pub named_vectors: bool,
    /// Namespaces within a collection.
    pub namespaces: bool,
    /// Documents.
    pub documents: bool,
    /// URIs.
    pub uris: bool,
    /// Metrics the sink can index with.
    pub metrics: &'static [Metric],
    /// Id kinds the sink takes as they are.
    pub id_kinds: &'static [IdKind],
    /// What record metadata can hold; the pipeline checks (and, on request,
    /// conforms) every record's metadata against it before the sink's `check`.
    pub metadata: MetadataRules,
}

/// How to treat a target collection that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingTarget {
    /// Refuse (the default): nothing is written.
    #[default]
    Refuse,
    /// Use it when its dimension and metric match; upsert into it.
    Append,
    /// Delete it and create it anew.
    Replace,
}

/// Limits of one write request.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Records per request.
    pub max_records: usize,
    /// Bytes per request (estimated from [`Record::json_size_estimate`]).
    pub max_bytes: usize,
}

/// Writes collections.
#[async_trait]
pub trait Sink: Endpoint {
    /// What this sink can store.
    fn capabilities(&self) -> Capabilities;
    /// Checks that the target can take a record of a collection described by
    /// `spec` as it is, naming the record and the offending value when it
    /// cannot. The pipeline checks every record before it writes any, after
    /// its metadata passed [`Capabilities::metadata`].
    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()>;
    /// How the target stores `id`, of a collection described by `spec`,
    /// when not as it is (`None`): for the change report.
    fn id_form(&self, _spec: &CollectionSpec, _id: &RecordId) -> Option<IdForm> {
        None
    }
    /// What the target will do to the values of such a collection on write
    /// (re-rounding, normalisation), for the user to read; empty when it keeps
    /// everything as it is.
    fn notes(&self, _spec: &CollectionSpec) -> Vec<String> {
        Vec::new()
    }
    /// Creates (or, per `existing`, reuses or replaces) the target collection
    /// `target` with settings mapped from `spec`.
    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>>;
}

/// Writes records into one prepared collection.
#[async_trait]
pub trait CollectionWriter: Send + Sync {
    /// Request limits.
    fn limits(&self) -> BatchLimits;
    /// Upserts records; writing the same records again changes nothing.
    async fn write(&self, records: Vec<Record>) -> Result<()>;
    /// Called once after the last write, before the count: builds what is
    /// better built over the loaded data (pgvector's indexes).
    async fn finish(&self) -> Result<()> {
        Ok(())
    }
    /// Records now in the collection, counted exactly.
    async fn count(&self) -> Result<u64>;
    /// What the target made of the collection that the user should know
    /// (a name it had to change, …).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Refuses a record that on its own is larger than one write request to
/// `connector` may be (`max_bytes`): it could never be sent.
pub(crate) fn check_request_size(connector: &str, record: &Record, max_bytes: usize) -> Result<()> {
    // JSON text is at most six times the binary size (an escaped control
    // character); most records are far below the limit and skip encoding.
    if record.binary_size_estimate().saturating_mul(6) + 256 <= max_bytes {
        return Ok(());
    }
    let size = record.json_size_estimate();
    if size > max_bytes {
        return Err(Error::InvalidData(format!(
            "record {:?}: is about {size} bytes encoded, more than {connector} takes in one request ({max_bytes} bytes), so it can never be sent; shorten its document or metadata",
            record.id.to_string()
        )));
    }
    Ok(())
}

/// The hint of a missing collection: the `vecport ls` command that lists the
/// `listed` (`collections`) of the `scheme` server at `base` (`http://host:port`).
pub(crate) fn ls_hint(scheme: &str, base: &str, listed: &str) -> String {
    format!(
        "`vecport ls {scheme}://{}` lists the {listed}",
        base.split("://").nth(1).unwrap_or_default()
    )
}

/// The refusal to write into `what` (``collection `x` ``) on `place`, which
/// already exists, when the user allowed neither appending nor replacing.
pub(crate) fn already_exists(what: &str, place: &str) -> Error {
    Error::Incompatible(format!(
        "{what} already exists on {place}; import under another name (--rename), or pass --if-exists append|replace"
    ))
}

/// Why a dense vector of `field` with `values` does not fit it: its length
/// is not the field's dimension. `None` when it fits or the field has none.
pub(crate) fn wrong_dimension(field: &VectorField, values: &[f32]) -> Option<String> {
    field
        .dimension
        .is_some_and(|dim| dim as usize != values.len())
        .then(|| {
            format!(
                "vector {:?} has {} values, the field's dimension is {:?}",
                field.name,
                values.len(),
                field.dimension
            )
        })
}

/// Refuses to append to `what` (``collection `x` on http://…``), whose
/// vector fields are `theirs`, records with the vector fields `ours`: each of
/// ours must be there with the same kind, dimension and metric (where both
/// sides know them). Fields only the target has are left empty.
pub(crate) fn check_append(what: &str, theirs: &[VectorField], ours: &[VectorField]) -> Result<()> {
    fn describe(f: &VectorField) -> String {
        let mut d = match f.kind {
            VectorKind::Dense => "dense".to_owned(),
            VectorKind::Sparse => "sparse".to_owned(),
            VectorKind::Multi => "multivector".to_owned(),
        };
        if let Some(dim) = f.dimension {
            d.push_str(&format!(", dimension {dim}"));
        }
        if let Some(m) = f.metric {
            d.push_str(&format!(", metric {m}"));
        }
        d
    }
    let mut differences = Vec::new();
    for f in ours {
        match theirs.iter().find(|t| t.name == f.name) {
            None => differences.push(format!(
                "it has no vector field {:?} (the snapshot's is {})",
                f.name,
                describe(f)
            )),
            Some(t) => {
                let differs = t.kind != f.kind
                    || matches!((t.dimension, f.dimension), (Some(a), Some(b)) if a != b)
                    || matches!((t.metric, f.metric), (Some(a), Some(b)) if a != b);
                if differs {
                    differences.push(format!(
                        "its vector field {:?} is {}, the snapshot's is {}",
                        f.name,
                        describe(t),
                        describe(f)
                    ));
                }
            }
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Incompatible(format!(
        "{what} exists but cannot take the snapshot's vectors: {}; nothing was written. Import under another name (--rename), or pass --if-exists replace to delete and recreate it",
        differences.join("; ")
    )))
}

/// A database reachable through one URL, in both directions.
pub trait Connector: Source + Sink {}
impl<T: Source + Sink> Connector for T {}

/// Every environment variable a connector reads a secret from.
pub const CREDENTIAL_ENV: &[&str] = &[
    chroma::TOKEN_ENV,
    qdrant::API_KEY_ENV,
    pinecone::API_KEY_ENV,
    weaviate::API_KEY_ENV,
    pgvector::PASSWORD_ENV,
    milvus::TOKEN_ENV,
];

/// Every scheme vecport knows, for messages.
pub const SCHEMES: &[&str] = &[
    "chroma",
    "chroma+https",
    "qdrant",
    "qdrant+https",
    "pinecone",
    "pinecone+http",
    "pinecone+https",
    "weaviate",
    "weaviate+https",
    "pgvector",
    "milvus",
    "milvus+https",
    "memory",
];

/// Opens the connector a URL names.
pub fn open(url: &str) -> Result<Arc<dyn Connector>> {
    let parsed = ConnectorUrl::parse(url)?;
    match parsed.database() {
        "chroma" => Ok(Arc::new(chroma::Chroma::new(&parsed)?)),
        "qdrant" => Ok(Arc::new(qdrant::Qdrant::new(&parsed)?)),
        "pinecone" => Ok(Arc::new(pinecone::Pinecone::new(&parsed)?)),
        "weaviate" => Ok(Arc::new(weaviate::Weaviate::new(&parsed)?)),
        "pgvector" => Ok(Arc::new(pgvector::Pgvector::new(&parsed)?)),
        "milvus" => Ok(Arc::new(milvus::Milvus::new(&parsed)?)),
        "memory" => Ok(Arc::new(memory::Memory::open(&parsed)?)),
        other => Err(Error::UnknownScheme {
            scheme: other.to_owned(),
            url: parsed.public(),
            supported: SCHEMES.join(", "),
        }),
    }
}
