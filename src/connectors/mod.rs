//! The connector interface: a [`Source`] lists and reads collections, a
//! [`Sink`] creates collections and writes records. Each database is one
//! module here and one row in [`DATABASES`].

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
    /// Whether the source reads the ids given in [`ScanOptions::ids_from`]
    /// instead of listing them (those that cannot list ids, as Pinecone pod
    /// indexes); the others refuse such a file.
    fn reads_ids_from(&self) -> bool {
        false
    }
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
    /// Removes the collection, which [`Sink::prepare`] created and nothing
    /// was written into, so that an import failing before its first write
    /// leaves no empty collection behind. `Ok(false)`: this sink cannot, and
    /// the collection stays.
    async fn discard(&self) -> Result<bool> {
        Ok(false)
    }
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
/// is not the field's dimension, or it is empty. `None` when it fits.
pub(crate) fn wrong_dimension(field: &VectorField, values: &[f32]) -> Option<String> {
    if values.is_empty() {
        return Some(format!(
            "vector {:?} has no values; a dense vector holds at least one",
            field.name
        ));
    }
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

/// How connectors are opened: settings that are not part of a URL (the
/// CLI's `--retries`, `--timeout`, `--max-response-mib`, …). Each opened
/// connector keeps its own copy, so one process can run transfers with
/// different settings side by side.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How HTTP requests are retried and how long one may take.
    pub retry: http::RetryPolicy,
    /// The longest HTTP answer read; a longer one is an error.
    pub max_response_bytes: u64,
    /// Counts the requests retried by every connector opened with (a clone
    /// of) these options.
    pub retried: http::RetryCount,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            retry: http::RetryPolicy::default(),
            max_response_bytes: http::DEFAULT_MAX_RESPONSE_BYTES,
            retried: http::RetryCount::default(),
        }
    }
}

/// One database vecport knows. [`DATABASES`] is the only place a database is
/// named: opening URLs, their parsing, `--help`, the list of supported
/// schemes, the credential variables every message is scrubbed of and the
/// README's URL table all come from it.
#[derive(Debug)]
pub struct Database {
    /// The scheme, and the connector's name (`qdrant`).
    pub name: &'static str,
    /// Transports the scheme takes after `+` (`qdrant+https://`).
    pub transports: &'static [&'static str],
    /// Whether the URL names a user (`USER@HOST`) and a database before the
    /// collection, as `pgvector://` does.
    pub user_and_database: bool,
    /// Query parameters the URL takes; any other is refused.
    pub params: &'static [&'static str],
    /// Environment variables holding its credentials.
    pub credential_env: &'static [&'static str],
    /// For the README's URL table and `--help`: the database's name as
    /// people write it, its URL forms, default port and credentials; `None`
    /// for a database only tests use.
    pub doc: Option<DatabaseDoc>,
    /// Opens a URL of this database.
    pub open: fn(&ConnectorUrl, &ConnectOptions) -> Result<Arc<dyn Connector>>,
}

/// How a [`Database`] is described to people.
#[derive(Debug)]
pub struct DatabaseDoc {
    /// `Qdrant`.
    pub title: &'static str,
    /// The URL forms, in Markdown.
    pub url: &'static str,
    /// The default port(s).
    pub port: &'static str,
    /// Where its credentials come from, in Markdown.
    pub credentials: &'static str,
}

/// Every database vecport knows: one row each.
pub const DATABASES: &[Database] = &[
    Database {
        name: "chroma",
        transports: &["https"],
        user_and_database: false,
        params: &["tenant", "database"],
        credential_env: &[chroma::TOKEN_ENV],
        doc: Some(DatabaseDoc {
            title: "Chroma",
            url: "`chroma://HOST[:PORT][/COLLECTION][?tenant=T&database=D]`, `chroma+https://…`",
            port: "8000",
            credentials: "`CHROMA_TOKEN` → `x-chroma-token`",
        }),
        open: |url, options| Ok(Arc::new(chroma::Chroma::new(url, options)?)),
    },
    Database {
        name: "qdrant",
        transports: &["https"],
        user_and_database: false,
        params: &[],
        credential_env: &[qdrant::API_KEY_ENV],
        doc: Some(DatabaseDoc {
            title: "Qdrant",
            url: "`qdrant://HOST[:PORT][/COLLECTION]`, `qdrant+https://…`",
            port: "6333",
            credentials: "`QDRANT_API_KEY` → `api-key`",
        }),
        open: |url, options| Ok(Arc::new(qdrant::Qdrant::new(url, options)?)),
    },
    Database {
        name: "weaviate",
        transports: &["https"],
        user_and_database: false,
        params: &["document_property", "timestamps"],
        credential_env: &[weaviate::API_KEY_ENV],
        doc: Some(DatabaseDoc {
            title: "Weaviate",
            url: "`weaviate://HOST[:PORT][/CLASS][?document_property=NAME&timestamps=true]`, `weaviate+https://…`",
            port: "8080",
            credentials: "`WEAVIATE_API_KEY` → `Authorization: Bearer`",
        }),
        open: |url, options| Ok(Arc::new(weaviate::Weaviate::new(url, options)?)),
    },
    Database {
        name: "pgvector",
        transports: &[],
        user_and_database: true,
        params: pgvector::PARAMS,
        credential_env: &[pgvector::PASSWORD_ENV],
        doc: Some(DatabaseDoc {
            title: "pgvector",
            url: "`pgvector://USER@HOST[:PORT]/DATABASE[/TABLE][?schema=public&sslmode=…&sslrootcert=…&sslcert=…&sslkey=…]`",
            port: "5432",
            credentials: "`PGPASSWORD`, else the password file `~/.pgpass` (`PGPASSFILE`), as libpq reads them (the user name is in the URL; it is not a secret)",
        }),
        open: |url, _| Ok(Arc::new(pgvector::Pgvector::new(url)?)),
    },
    Database {
        name: "milvus",
        transports: &["https"],
        user_and_database: false,
        params: &["database"],
        credential_env: &[milvus::TOKEN_ENV],
        doc: Some(DatabaseDoc {
            title: "Milvus",
            url: "`milvus://HOST[:PORT][/COLLECTION][?database=DB]`, `milvus+https://…` (Zilliz Cloud)",
            port: "19530",
            credentials: "`MILVUS_TOKEN` (an API key, or `user:password`) → `authorization`",
        }),
        open: |url, _| Ok(Arc::new(milvus::Milvus::new(url)?)),
    },
    Database {
        name: "pinecone",
        transports: &["http", "https"],
        user_and_database: false,
        params: pinecone::PARAMS,
        credential_env: &[pinecone::API_KEY_ENV],
        doc: Some(DatabaseDoc {
            title: "Pinecone",
            url: "`pinecone://INDEX[?host=DATA-PLANE-URL&cloud=aws&region=us-east-1&kind=document|legacy&document_field=NAME]` (control plane `https://api.pinecone.io`); `pinecone+http://HOST:PORT/INDEX` or `pinecone+https://…` for another control plane",
            port: "443 / 5080",
            credentials: "`PINECONE_API_KEY` → `Api-Key`",
        }),
        open: |url, options| Ok(Arc::new(pinecone::Pinecone::new(url, options)?)),
    },
    Database {
        name: "memory",
        transports: &[],
        user_and_database: false,
        params: &[],
        credential_env: &[],
        doc: None,
        open: |url, _| Ok(Arc::new(memory::Memory::open(url)?)),
    },
];

/// The [`DATABASES`] row of a scheme's database (`qdrant` for `qdrant+https`).
pub fn database(name: &str) -> Option<&'static Database> {
    DATABASES.iter().find(|d| d.name == name)
}

/// Every environment variable a connector reads a secret from.
pub fn credential_env() -> impl Iterator<Item = &'static str> {
    DATABASES
        .iter()
        .flat_map(|d| d.credential_env.iter().copied())
}

/// Every scheme vecport knows (`qdrant`, `qdrant+https`, …), for messages.
pub fn schemes() -> Vec<String> {
    DATABASES
        .iter()
        .flat_map(|d| {
            std::iter::once(d.name.to_owned())
                .chain(d.transports.iter().map(move |t| format!("{}+{t}", d.name)))
        })
        .collect()
}

/// The README's table of database URLs, as [`DATABASES`] describes them.
pub fn url_table() -> String {
    let mut out = String::from(
        "| database | URL | default port | credentials (environment) |\n|---|---|---|---|\n",
    );
    for doc in DATABASES.iter().filter_map(|d| d.doc.as_ref()) {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            doc.title, doc.url, doc.port, doc.credentials
        ));
    }
    out
}

/// The databases and their URL forms, for `--help`.
pub fn help_text() -> String {
    let mut out = String::from("Databases (credentials only from the environment):\n");
    for doc in DATABASES.iter().filter_map(|d| d.doc.as_ref()) {
        out.push_str(&format!(
            "  {:<9} {}\n            default port {}; credentials: {}\n",
            doc.title,
            doc.url.replace('`', ""),
            doc.port,
            doc.credentials.replace('`', "")
        ));
    }
    out
}

/// Opens the connector a URL names, with `options`.
pub fn open(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Connector>> {
    let parsed = ConnectorUrl::parse(url)?;
    let db = database(parsed.database()).ok_or_else(|| Error::UnknownScheme {
        scheme: parsed.database().to_owned(),
        url: parsed.public(),
        supported: schemes().join(", "),
    })?;
    parsed.only_params(db.params)?;
    (db.open)(&parsed, options)
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn readme_url_table_is_the_registry() {
        let readme = include_str!("../../README.md");
        let table = url_table();
        assert!(
            readme.contains(&table),
            "README.md's table of database URLs differs from connectors::DATABASES; it should read:\n{table}"
        );
    }

    #[test]
    fn every_scheme_opens_its_database_or_says_what_is_missing() {
        for scheme in schemes() {
            let err = match open(&format!("{scheme}://"), &ConnectOptions::default()) {
                Ok(_) => continue,
                Err(e) => e,
            };
            assert!(
                !matches!(err, Error::UnknownScheme { .. }),
                "{scheme}: {err}"
            );
        }
        let err = open("mongo://h/c", &ConnectOptions::default())
            .err()
            .unwrap()
            .to_string();
        for scheme in schemes() {
            assert!(err.contains(&scheme), "{err}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = DATABASES.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DATABASES.len());
    }
}
