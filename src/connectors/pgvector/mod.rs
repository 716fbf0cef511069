//! `pgvector://USER@HOST:PORT/DATABASE[/TABLE][?schema=…&sslmode=…]`:
//! PostgreSQL with the pgvector extension (0.7 on, for `halfvec` and
//! `sparsevec`), over the PostgreSQL wire protocol, with TLS as libpq does it
//! ([`connect`]). Password from `PGPASSWORD` or the password file
//! ([`pgpass`]), never from the URL.
//!
//! A table is a collection; the roles of its columns come from their types
//! (`spec/MAPPING.md`, pgvector): the primary key is the id, `vector`,
//! `halfvec`, `sparsevec` and `bit(n)` (binary vector) columns are vector
//! fields named after the column, a `jsonb` column is the metadata, other
//! columns are metadata keys.
//! Export pages by primary key (keyset, never OFFSET) inside one
//! `REPEATABLE READ` read-only transaction, so the snapshot is consistent;
//! vectors travel in pgvector's binary form, bit-exact. Import creates the
//! table, loads each batch with binary `COPY` into a session's staging table
//! and upserts from it (`ON CONFLICT … DO UPDATE`, so re-imports change
//! nothing), and builds the HNSW / IVFFlat indexes after the load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Map, Value, json};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::error::{Error, Result};
use crate::mapping::{IdForm, MetadataRules};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    SparseVector, StoredValues, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

pub mod connect;
pub mod pgpass;

pub use connect::PASSWORD_ENV;
use connect::{Dialer, PasswordSource, Sources, Tls, error_text};

const DEFAULT_PORT: u16 = 5432;
/// PostgreSQL truncates longer identifiers (NAMEDATALEN − 1).
const MAX_IDENTIFIER_BYTES: usize = 63;
/// pgvector's largest `sparsevec` dimension.
const SPARSEVEC_MAX_DIM: u64 = 1_000_000_000;
/// pgvector's most non-zero elements of one `sparsevec`.
const SPARSEVEC_MAX_NNZ: usize = 16_000;
/// pgvector's largest `vector` dimension.
const VECTOR_MAX_DIM: u32 = 16_000;
/// Widest column an HNSW / IVFFlat index takes: `vector`, `halfvec`.
const INDEX_MAX_DIM_VECTOR: u32 = 2_000;
const INDEX_MAX_DIM_HALFVEC: u32 = 4_000;
/// Widest `bit` column an HNSW / IVFFlat index takes.
const INDEX_MAX_DIM_BIT: u32 = 64_000;
/// PostgreSQL's longest `bit(n)` (`MaxAttrSize` in bits).
const BIT_MAX_DIM: u32 = 83_886_080;
/// `source_datatype` of fields stored in `bit(n)` columns.
const BIT_DATATYPE: &str = "bit";
/// Connections an import writes through at once.
const WRITE_CONNECTIONS: usize = 4;
/// Index methods of vector indexes, whose operator class names the metric.
const VECTOR_INDEX_METHODS: &[&str] = &["hnsw", "ivfflat"];
/// Column names vecport's tables use besides the vector columns.
const ID: &str = "id";
const METADATA: &str = "metadata";
const DOCUMENT: &str = "document";
const URI: &str = "uri";
const NAMESPACE: &str = "namespace";
/// Column of the unnamed dense vector field `""`.
const UNNAMED_VECTOR: &str = "embedding";
/// Text columns taken as the document, in order of preference.
const DOCUMENT_COLUMNS: &[&str] = &["document", "content", "text"];
/// Staging table of each writing session.
const STAGE: &str = "pg_temp.vecport_stage";
/// Row type of the columns metadata keys are written into, per session.
const KEYS: &str = "pg_temp.vecport_keys";
/// Note for collections with metadata.
pub const JSONB_NOTE: &str = "pgvector: metadata is stored as jsonb, which keeps every JSON value but sorts object keys (by length, then bytewise), keeps the last of duplicate keys and writes -0.0 as 0.0";

/// Quotes an identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How the id column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdColumn {
    Text,
    BigInt,
    Uuid,
}

impl IdColumn {
    fn of(kind: Option<IdKind>) -> IdColumn {
        match kind {
            Some(IdKind::Uint) => IdColumn::BigInt,
            Some(IdKind::Uuid) => IdColumn::Uuid,
            _ => IdColumn::Text,
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            IdColumn::Text => "text",
            IdColumn::BigInt => "bigint",
            IdColumn::Uuid => "uuid",
        }
    }

    fn from_type(typname: &str) -> Option<IdColumn> {
        match typname {
            "text" | "varchar" | "bpchar" | "name" => Some(IdColumn::Text),
            "int2" | "int4" | "int8" => Some(IdColumn::BigInt),
            "uuid" => Some(IdColumn::Uuid),
            _ => None,
        }
    }
}

/// The pgvector column type of a vector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VecType {
    Vector,
    HalfVec,
    SparseVec,
    /// A binary vector: one bit per dimension, 0.0 or 1.0 in the snapshot.
    Bit,
}

impl VecType {
    fn name(self) -> &'static str {
        match self {
            VecType::Vector => "vector",
            VecType::HalfVec => "halfvec",
            VecType::SparseVec => "sparsevec",
            VecType::Bit => "bit",
        }
    }

    fn from_type(typname: &str) -> Option<VecType> {
        match typname {
            "vector" => Some(VecType::Vector),
            "halfvec" => Some(VecType::HalfVec),
            "sparsevec" => Some(VecType::SparseVec),
            "bit" => Some(VecType::Bit),
            _ => None,
        }
    }

    fn of(field: &VectorField) -> VecType {
        match (field.kind, field.source_datatype.as_deref()) {
            (VectorKind::Sparse, _) => VecType::SparseVec,
            (_, Some("halfvec")) => VecType::HalfVec,
            (_, Some(BIT_DATATYPE)) => VecType::Bit,
            _ => VecType::Vector,
        }
    }
}

/// The metric an operator class searches with (`vector_cosine_ops` → cosine).
pub fn metric_of_opclass(opclass: &str) -> Option<Metric> {
    let op = ["vector_", "halfvec_", "sparsevec_", "bit_"]
        .iter()
        .find_map(|p| opclass.strip_prefix(p))?;
    match op {
        "cosine_ops" => Some(Metric::Cosine),
        "l2_ops" => Some(Metric::L2),
        "ip_ops" => Some(Metric::Dot),
        "l1_ops" => Some(Metric::Manhattan),
        "hamming_ops" => Some(Metric::Hamming),
        _ => None,
    }
}

/// The operator class that searches a column of `ty` with `metric`.
fn opclass_of(ty: VecType, metric: Metric) -> Option<String> {
    let op = match (ty, metric) {
        (VecType::Bit, Metric::Hamming) => "hamming_ops",
        (VecType::Bit, _) | (_, Metric::Hamming) => return None,
        (_, Metric::Cosine) => "cosine_ops",
        (_, Metric::L2) => "l2_ops",
        (_, Metric::Dot) => "ip_ops",
        (_, Metric::Manhattan) => "l1_ops",
    };
    Some(format!("{}_{op}", ty.name()))
}

/// Normalised settings of an index from its access method and reloptions (`m=24`).
pub fn index_settings(method: &str, reloptions: &[String]) -> IndexSettings {
    let mut s = IndexSettings {
        kind: method.to_owned(),
        ..IndexSettings::default()
    };
    for opt in reloptions {
        let Some((k, v)) = opt.split_once('=') else {
            continue;
        };
        let n = v.parse::<u64>().ok();
        match (k, n) {
            ("m", Some(n)) => s.m = Some(n),
            ("ef_construction", Some(n)) => s.ef_construction = Some(n),
            ("lists", Some(n)) => s.lists = Some(n),
            _ => {
                s.extra.insert(k.to_owned(), json!(v));
            }
        }
    }
    s
}

/// The `WITH (…)` options of an index built from `settings`.
fn index_options(kind: &str, settings: Option<&IndexSettings>) -> String {
    let mut opts = Vec::new();
    if let Some(s) = settings {
        if kind == "hnsw" {
            if let Some(m) = s.m.filter(|m| (2..=100).contains(m)) {
                opts.push(format!("m = {m}"));
            }
            if let Some(ef) = s.ef_construction.filter(|e| (4..=1000).contains(e)) {
                opts.push(format!("ef_construction = {ef}"));
            }
        } else if let Some(l) = s.lists.filter(|l| (1..=32768).contains(l)) {
            opts.push(format!("lists = {l}"));
        }
    }
    if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", opts.join(", "))
    }
}

/// The role of one column of a table being exported.
#[derive(Debug, Clone)]
enum Role {
    /// A vector field.
    Vector(VecType),
    /// The metadata object (a json / jsonb column).
    Metadata,
    /// One metadata key (any other column), read as `to_jsonb(column)`.
    Key,
    Document,
    Uri,
    Namespace,
}

/// How a table's columns map onto records.
#[derive(Debug, Clone)]
struct Layout {
    /// Primary key columns: `[id]` or `[namespace, id]`.
    key: Vec<String>,
    id: IdColumn,
    id_column: String,
    /// Non-key columns and their roles, in table order.
    columns: Vec<(String, Role)>,
    /// Every column's type as SQL writes it.
    formats: HashMap<String, String>,
    /// Generated columns, which no write names.
    unwritable: Vec<String>,
    /// `GENERATED ALWAYS AS IDENTITY` columns, which no update names.
    always: Vec<String>,
    /// Columns declared `NOT NULL`.
    not_null: Vec<String>,
}

impl Layout {
    /// The id column as it is selected (first in every select list).
    fn id_select(&self) -> String {
        match self.id {
            IdColumn::BigInt => format!("{}::bigint", ident(&self.id_column)),
            IdColumn::Text => format!("{}::text", ident(&self.id_column)),
            IdColumn::Uuid => ident(&self.id_column),
        }
    }

    fn select_list(&self) -> String {
        let mut out = vec![self.id_select()];
        for (c, role) in &self.columns {
            out.push(match role {
                Role::Key => format!("to_jsonb({})", ident(c)),
                Role::Document | Role::Uri | Role::Namespace => format!("{}::text", ident(c)),
                _ => ident(c),
            });
        }
        out.join(", ")
    }

    fn namespace_column(&self) -> Option<&str> {
        self.columns
            .iter()
            .find(|(_, r)| matches!(r, Role::Namespace))
            .map(|(c, _)| c.as_str())
    }
}

/// The pgvector connector.
#[derive(Debug)]
pub struct Pgvector {
    dialer: Dialer,
    public: String,
    schema: String,
    table: Option<String>,
    /// Largest sparse index seen per (collection, field) by `check`, for the
    /// dimension of `sparsevec` columns the snapshot gives none.
    sparse_max: Mutex<HashMap<(String, String), u32>>,
    /// Per collection: the metadata keys a restored table's NOT NULL
    /// columns need in every record (see [`required_keys`]).
    required: Mutex<HashMap<String, Arc<Vec<String>>>>,
}

/// The query parameters of a `pgvector://` URL: the schema, and how to
/// connect (`sslmode`, …).
pub const PARAMS: &[&str] = &["schema", "sslmode", "sslrootcert", "sslcert", "sslkey"];

impl Pgvector {
    /// Opens a `pgvector://` URL.
    pub fn new(url: &ConnectorUrl) -> Result<Pgvector> {
        let host = url
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Usage(format!("`{}`: the URL names no host", url.public())))?
            .to_owned();
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(DEFAULT_PORT);
        let user = url.user().unwrap_or_else(|| "postgres".to_owned());
        let database = url.path_database().map(str::to_owned).ok_or_else(|| {
            Error::Usage(format!(
                "`{}`: name the database, e.g. pgvector://postgres@{host}:{port}/postgres[/TABLE]",
                url.public()
            ))
        })?;
        let public = format!(
            "pgvector://{user}@{}:{port}/{database}",
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.clone()
            }
        );
        let tls = Tls::resolve(&Sources {
            param: &|k| url.param(k).map(str::to_owned),
            env: &|k| std::env::var(k).ok(),
            home: home_dir(),
        })
        .map_err(|e| Error::Usage(format!("`{public}`: {e}")))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&bare_host)
            .port(port)
            .user(&user)
            .dbname(&database)
            .application_name("vecport")
            .connect_timeout(std::time::Duration::from_secs(30));
        let target = pgpass::Target {
            host: &bare_host,
            port,
            database: &database,
            user: &user,
        };
        let password = if let Some(pw) = Secret::from_env(PASSWORD_ENV) {
            config.password(pw.expose());
            PasswordSource::Env
        } else if let Some(found) = pgpass::lookup(&target) {
            config.password(found.password.expose());
            PasswordSource::File {
                file: found.file,
                line: found.line,
            }
        } else {
            PasswordSource::None {
                file: pgpass::path(),
            }
        };
        let schema = url.param("schema").unwrap_or("public").to_owned();
        let table = url.collection().map(str::to_owned);
        Ok(Pgvector {
            dialer: Dialer {
                config,
                tls,
                password,
                public: public.clone(),
                pgpass_key: format!(
                    "{}:{port}:{}:{}",
                    pgpass_escape(&bare_host),
                    pgpass_escape(&database),
                    pgpass_escape(&user)
                ),
            },
            public,
            schema,
            table,
            sparse_max: Mutex::new(HashMap::new()),
            required: Mutex::new(HashMap::new()),
        })
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(table))
    }

    /// One new connection.
    async fn connect(&self) -> Result<Client> {
        self.dialer.connect().await
    }

    fn fail(&self, operation: &str, e: tokio_postgres::Error) -> Error {
        fail(&self.public, operation, e)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("table `{}.{name}` on {}", self.schema, self.public),
            hint: Some(format!(
                "`vecport ls {}` lists the tables with vector columns",
                self.public
            )),
        }
    }

    async fn table_oid(&self, client: &Client, name: &str) -> Result<Option<u32>> {
        let row = client
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&self.schema, &name],
            )
            .await
            .map_err(|e| self.fail("look up table", e))?;
        Ok(row.map(|r| r.get::<_, u32>(0)))
    }

    /// Reads the table's columns, key and indexes into a spec and a layout.
    async fn inspect(&self, client: &Client, name: &str) -> Result<(CollectionSpec, Layout)> {
        let oid = self
            .table_oid(client, name)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let columns = client
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod), a.atttypmod, \
                        a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await
            .map_err(|e| self.fail("read columns", e))?;
        let key: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
                &[&oid],
            )
            .await
            .map_err(|e| self.fail("read primary key", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let indexes = client
            .query(
                "SELECT ic.relname::text, am.amname::text, pg_get_indexdef(i.indexrelid), \
                        coalesce(opc.opcname::text, ''), coalesce(a.attname::text, ''), \
                        coalesce(ic.reloptions, '{}'::text[]), i.indisunique, i.indisprimary, \
                        EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid), \
                        quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_am am ON am.oid = ic.relam \
                 LEFT JOIN pg_opclass opc ON opc.oid = i.indclass[0] \
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = $1 ORDER BY ic.relname",
                &[&oid],
            )
            .await
            .map_err(|e| self.fail("read indexes", e))?;
        let constraints = client
            .query(
                "SELECT conname::text, contype::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = $1 AND contype IN ('c', 'u', 'x') ORDER BY conname",
                &[&oid],
            )
            .await
            .map_err(|e| self.fail("read constraints", e))?
            .iter()
            .map(|r| ConstraintInfo {
                name: r.get(0),
                kind: r.get(1),
                definition: r.get(2),
            })
            .collect::<Vec<_>>();
        let comment: Option<String> = client
            .query_one("SELECT obj_description($1::oid, 'pg_class')", &[&oid])
            .await
            .map_err(|e| self.fail("read table comment", e))?
            .get(0);
        layout_of(
            name,
            &self.schema,
            &columns
                .iter()
                .map(|r| ColumnInfo {
                    name: r.get(0),
                    typname: r.get(1),
                    format: r.get(2),
                    typmod: r.get(3),
                    not_null: r.get(4),
                    default: r.get(5),
                    identity: r.get(6),
                    generated: r.get(7),
                })
                .collect::<Vec<_>>(),
            &key,
            &indexes
                .iter()
                .map(|r| {
                    let definition: String = r.get(2);
                    let on = format!(" ON {} USING ", r.get::<_, String>(9));
                    let using = definition
                        .find(&on)
                        .map(|at| definition[at + on.len()..].to_owned());
                    IndexInfo {
                        name: r.get(0),
                        method: r.get(1),
                        definition,
                        opclass: r.get(3),
                        column: r.get(4),
                        reloptions: r.get(5),
                        unique: r.get(6),
                        primary: r.get(7),
                        constraint: r.get(8),
                        using,
                    }
                })
                .collect::<Vec<_>>(),
            &constraints,
            comment.as_deref(),
        )
        .map_err(|message| {
            Error::not_supported("pgvector", format!("table `{name}` as it is: {message}"))
        })
    }
}

/// The home directory, where libpq looks for `.pgpass` and `.postgresql/`.
fn home_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from)
}

/// A value as a password file line writes it (`:` and `\` escaped).
fn pgpass_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

fn fail(endpoint: &str, operation: &str, e: tokio_postgres::Error) -> Error {
    let text = error_text(&e);
    match e.code().map(|c| c.code()) {
        // Data exceptions, integrity violations: the data, not the server.
        Some(c) if c.starts_with("22") || c.starts_with("23") => {
            Error::InvalidData(format!("pgvector refused {operation}: {text}"))
        }
        Some(_) => Error::Protocol {
            endpoint: endpoint.to_owned(),
            operation: operation.to_owned(),
            message: text,
        },
        None => Error::Unreachable {
            endpoint: endpoint.to_owned(),
            message: format!("{operation}: {text}"),
        },
    }
}

/// One column as the catalog describes it.
#[derive(Debug, Clone, Default)]
struct ColumnInfo {
    name: String,
    typname: String,
    /// `format_type`: the type as SQL writes it (`numeric(10,2)`, `text[]`).
    format: String,
    typmod: i32,
    not_null: bool,
    /// The default expression, as `pg_get_expr` prints it.
    default: Option<String>,
    /// `attidentity`: `a` (always), `d` (by default) or empty.
    identity: String,
    /// `attgenerated`: `s` (stored) or empty.
    generated: String,
}

/// One index of a table.
#[derive(Debug, Clone, Default)]
struct IndexInfo {
    name: String,
    method: String,
    definition: String,
    /// Operator class and column of the first key column (empty for an expression).
    opclass: String,
    column: String,
    reloptions: Vec<String>,
    unique: bool,
    primary: bool,
    /// Whether a constraint (primary key, unique, exclusion) owns the index.
    constraint: bool,
    /// The definition after `ON table USING `: method, keys, options, predicate.
    using: Option<String>,
}

/// One check, unique or exclusion constraint.
#[derive(Debug, Clone)]
struct ConstraintInfo {
    name: String,
    /// `c`, `u` or `x`.
    kind: String,
    definition: String,
}

/// Assigns roles to a table's columns (`spec/MAPPING.md`, pgvector).
fn layout_of(
    name: &str,
    schema: &str,
    columns: &[ColumnInfo],
    key: &[String],
    indexes: &[IndexInfo],
    constraints: &[ConstraintInfo],
    comment: Option<&str>,
) -> std::result::Result<(CollectionSpec, Layout), String> {
    let type_of = |c: &str| columns.iter().find(|x| x.name == c);
    let id_column = match key {
        [one] => one.clone(),
        [a, b] if a == NAMESPACE => b.clone(),
        [a, b] if b == NAMESPACE => a.clone(),
        [] => return Err("it has no primary key, which vecport pages by; add one".into()),
        _ => {
            return Err(format!(
                "its primary key has columns {key:?}; vecport reads a one-column key, or (namespace, id)"
            ));
        }
    };
    let id_info = type_of(&id_column).ok_or("the primary key column is missing")?;
    let id = IdColumn::from_type(&id_info.typname).ok_or_else(|| {
        format!(
            "its primary key `{id_column}` is {}; vecport reads text, integer and uuid keys",
            id_info.format
        )
    })?;
    let jsons: Vec<&ColumnInfo> = columns
        .iter()
        .filter(|c| c.name != id_column && (c.typname == "jsonb" || c.typname == "json"))
        .collect();
    let metadata_column = match jsons.as_slice() {
        [only] => Some(only.name.clone()),
        many => many
            .iter()
            .find(|c| c.name == METADATA)
            .map(|c| c.name.clone()),
    };
    let is_text = |c: &ColumnInfo| matches!(c.typname.as_str(), "text" | "varchar" | "bpchar");
    let document_column = DOCUMENT_COLUMNS.iter().find_map(|d| {
        columns
            .iter()
            .find(|c| c.name == *d && is_text(c))
            .map(|c| c.name.clone())
    });
    let mut roles = Vec::new();
    let mut vectors = Vec::new();
    let mut keys_from_columns = Vec::new();
    for c in columns.iter().filter(|c| c.name != id_column) {
        let role = if let Some(ty) = VecType::from_type(&c.typname) {
            let dimension = (c.typmod > 0).then_some(c.typmod as u32);
            let own: Vec<&IndexInfo> = indexes
                .iter()
                .filter(|i| i.column == c.name && VECTOR_INDEX_METHODS.contains(&i.method.as_str()))
                .collect();
            let first = own.first();
            vectors.push(VectorField {
                // `embedding` is the unnamed field's column, both ways.
                name: if c.name == UNNAMED_VECTOR {
                    String::new()
                } else {
                    c.name.clone()
                },
                kind: if ty == VecType::SparseVec {
                    VectorKind::Sparse
                } else {
                    VectorKind::Dense
                },
                dimension,
                metric: first.and_then(|i| metric_of_opclass(&i.opclass)),
                index: first.map(|i| index_settings(&i.method, &i.reloptions)),
                stored_values: match ty {
                    VecType::HalfVec | VecType::Bit => StoredValues::Lossy,
                    VecType::Vector | VecType::SparseVec => StoredValues::Exact,
                },
                source_datatype: match ty {
                    VecType::HalfVec => Some("halfvec".to_owned()),
                    VecType::Bit => Some(BIT_DATATYPE.to_owned()),
                    VecType::Vector | VecType::SparseVec => None,
                },
            });
            Role::Vector(ty)
        } else if Some(&c.name) == metadata_column.as_ref() {
            Role::Metadata
        } else if Some(&c.name) == document_column.as_ref() {
            Role::Document
        } else if c.name == URI && is_text(c) {
            Role::Uri
        } else if c.name == NAMESPACE && is_text(c) {
            Role::Namespace
        } else {
            keys_from_columns.push(c.name.clone());
            Role::Key
        };
        roles.push((c.name.clone(), role));
    }
    if vectors.is_empty() {
        return Err("it has no vector, halfvec or sparsevec column".into());
    }
    let mut notes = Vec::new();
    if !keys_from_columns.is_empty() {
        notes.push(format!(
            "pgvector: columns {} are exported as metadata keys of the same name{}",
            keys_from_columns
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if metadata_column.is_some() {
                " (a key of the same name in the jsonb metadata takes precedence)"
            } else {
                ""
            }
        ));
    }
    let from = |t: &str| {
        vectors
            .iter()
            .any(|v| v.source_datatype.as_deref() == Some(t))
    };
    if from("halfvec") {
        notes.push("pgvector: halfvec columns hold float16 values; they are exported as the float32 values they equal".into());
    }
    if from(BIT_DATATYPE) {
        notes.push("pgvector: bit(n) columns are binary vectors; they are exported as dense vectors of n values 0.0 and 1.0 (source_datatype bit), and imported into pgvector as bit(n) again".into());
    }
    let collection_metadata = comment
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|v| v.get("vecport_collection_metadata").cloned())
        .and_then(|v| v.as_object().cloned());
    let role_name = |c: &str| -> &'static str {
        if c == id_column {
            return "id";
        }
        match roles.iter().find(|(n, _)| n == c).map(|(_, r)| r) {
            Some(Role::Vector(_)) => "vector",
            Some(Role::Metadata) => "metadata",
            Some(Role::Document) => "document",
            Some(Role::Uri) => "uri",
            Some(Role::Namespace) => "namespace",
            Some(Role::Key) | None => "key",
        }
    };
    let raw_columns: Vec<Value> = columns
        .iter()
        .map(|c| {
            let mut o = Map::new();
            o.insert("name".into(), json!(c.name));
            o.insert("type".into(), json!(c.format));
            o.insert("role".into(), json!(role_name(&c.name)));
            o.insert("not_null".into(), json!(c.not_null));
            if let Some(d) = &c.default {
                o.insert("default".into(), json!(d));
            }
            if !c.identity.is_empty() {
                o.insert("identity".into(), json!(c.identity));
            }
            if !c.generated.is_empty() {
                o.insert("generated".into(), json!(c.generated));
            }
            Value::Object(o)
        })
        .collect();
    let raw = json!({
        "schema": schema,
        "table": name,
        "columns": raw_columns,
        "primary_key": key,
        "indexes": indexes.iter().map(|i| json!({
            "name": i.name, "column": i.column, "method": i.method, "opclass": i.opclass,
            "reloptions": i.reloptions, "definition": i.definition, "using": i.using,
            "unique": i.unique, "primary": i.primary, "constraint": i.constraint,
        })).collect::<Vec<_>>(),
        "constraints": constraints.iter().map(|c| json!({"name": c.name, "type": c.kind, "definition": c.definition})).collect::<Vec<_>>(),
        "comment": comment,
    });
    Ok((
        CollectionSpec {
            name: name.to_owned(),
            id_kind: Some(match id {
                IdColumn::Text => IdKind::String,
                IdColumn::BigInt => IdKind::Uint,
                IdColumn::Uuid => IdKind::Uuid,
            }),
            vectors,
            raw_config: raw,
            collection_metadata,
            count_hint: None,
            notes,
            content: None,
        },
        Layout {
            key: key.to_vec(),
            id,
            id_column,
            columns: roles,
            formats: columns
                .iter()
                .map(|c| (c.name.clone(), c.format.clone()))
                .collect(),
            unwritable: columns
                .iter()
                .filter(|c| c.generated == "s")
                .map(|c| c.name.clone())
                .collect(),
            always: columns
                .iter()
                .filter(|c| c.identity == "a")
                .map(|c| c.name.clone())
                .collect(),
            not_null: columns
                .iter()
                .filter(|c| c.not_null)
                .map(|c| c.name.clone())
                .collect(),
        },
    ))
}

impl Endpoint for Pgvector {
    fn name(&self) -> &'static str {
        "pgvector"
    }

    fn endpoint(&self) -> String {
        self.public.clone()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.table.as_deref()
    }
}

/// One record from a row selected with [`Layout::select_list`].
/// The id in the first column of `row`.
fn id_of(row: &Row, layout: &Layout) -> std::result::Result<RecordId, String> {
    Ok(match layout.id {
        IdColumn::Text => RecordId::String(row.try_get(0).map_err(|e| e.to_string())?),
        IdColumn::Uuid => RecordId::Uuid(row.try_get(0).map_err(|e| e.to_string())?),
        IdColumn::BigInt => {
            let n: i64 = row.try_get(0).map_err(|e| e.to_string())?;
            RecordId::Uint(u64::try_from(n).map_err(|_| {
                format!("id {n} is negative; vecport's integer ids are unsigned (export a text copy of the key instead)")
            })?)
        }
    })
}

fn record_of(row: &Row, layout: &Layout) -> std::result::Result<Record, String> {
    let id = id_of(row, layout)?;
    let mut record = Record {
        id,
        namespace: None,
        vectors: Vec::new(),
        metadata: None,
        document: None,
        uri: None,
    };
    let mut keys: Vec<(String, Value)> = Vec::new();
    for (i, (column, role)) in layout.columns.iter().enumerate() {
        let at = i + 1;
        let bad =
            |e: tokio_postgres::Error| format!("record {}: column `{column}`: {e}", record.id);
        match role {
            Role::Vector(VecType::Vector) => {
                let v: Option<pgvector::Vector> = row.try_get(at).map_err(bad)?;
                record.vectors.push(v.map(|v| Vector::Dense(v.to_vec())));
            }
            Role::Vector(VecType::HalfVec) => {
                let v: Option<pgvector::HalfVector> = row.try_get(at).map_err(bad)?;
                record.vectors.push(
                    v.map(|v| Vector::Dense(v.as_slice().iter().map(|h| h.to_f32()).collect())),
                );
            }
            Role::Vector(VecType::Bit) => {
                let v: Option<pgvector::Bit> = row.try_get(at).map_err(bad)?;
                record
                    .vectors
                    .push(v.map(|b| Vector::Dense(bits_to_floats(&b))));
            }
            Role::Vector(VecType::SparseVec) => {
                let v: Option<pgvector::SparseVector> = row.try_get(at).map_err(bad)?;
                record.vectors.push(v.map(|v| {
                    Vector::Sparse(SparseVector {
                        indices: v.indices().iter().map(|&i| i as u32).collect(),
                        values: v.values().to_vec(),
                    })
                }));
            }
            Role::Metadata => {
                let v: Option<Value> = row
                    .try_get::<_, Option<Value>>(at)
                    .map_err(bad)?
                    .map(floats_as_floats);
                match v {
                    Some(Value::Object(m)) => record.metadata = Some(m),
                    Some(Value::Null) | None => {}
                    Some(other) => keys.push((column.clone(), other)),
                }
            }
            Role::Key => {
                let v: Option<Value> = row
                    .try_get::<_, Option<Value>>(at)
                    .map_err(bad)?
                    .map(floats_as_floats);
                if let Some(v) = v {
                    keys.push((column.clone(), v));
                }
            }
            Role::Document => record.document = row.try_get(at).map_err(bad)?,
            Role::Uri => record.uri = row.try_get(at).map_err(bad)?,
            Role::Namespace => {
                let ns: Option<String> = row.try_get(at).map_err(bad)?;
                record.namespace = ns.filter(|n| !n.is_empty());
            }
        }
    }
    if !keys.is_empty() {
        let m = record.metadata.get_or_insert_with(Metadata::new);
        for (k, v) in keys {
            m.entry(k).or_insert(v);
        }
    }
    Ok(record)
}

/// jsonb's numbers as the snapshot keeps them. PostgreSQL prints `numeric`
/// without exponent, so a float beyond 64-bit integers (`3.4028235e38`)
/// comes back as an integer token: one a float64 spells exactly is that
/// float again, as the source most likely wrote it. Every other number keeps
/// its text, every digit (`spec/MAPPING.md`, "Numbers").
fn floats_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n)
            if !n.is_i64() && !n.is_u64() && !n.to_string().contains(['.', 'e', 'E']) =>
        {
            match crate::mapping::float64_of(&n) {
                None => n
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Number(n), Value::Number),
                Some(_) => Value::Number(n),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(floats_as_floats).collect()),
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k, floats_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Scan state: a connection in a read-only snapshot transaction.
struct ScanState {
    client: Client,
    after: Option<Vec<Value>>,
    done: bool,
}

#[async_trait]
impl Source for Pgvector {
    async fn describe(&self) -> Result<SourceDescription> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_database()::text, \
                 (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
                &[],
            )
            .await
            .map_err(|e| self.fail("describe", e))?;
        let mut location = Map::new();
        location.insert("database".into(), json!(row.get::<_, String>(1)));
        location.insert("schema".into(), json!(self.schema));
        location.insert(
            "pgvector_version".into(),
            json!(row.get::<_, Option<String>>(2)),
        );
        Ok(SourceDescription {
            server_version: Some(row.get(0)),
            location,
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let client = self.connect().await?;
        let names: Vec<String> = client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND EXISTS ( \
                   SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                     AND t.typname IN ('vector', 'halfvec', 'sparsevec', 'bit')) \
                 ORDER BY 1",
                &[&self.schema],
            )
            .await
            .map_err(|e| self.fail("list tables", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::new();
        for name in names {
            let (spec, _) = match self.inspect(&client, &name).await {
                Ok(x) => x,
                // Tables vecport cannot read are still listed, without details.
                Err(Error::NotSupported { .. }) => {
                    out.push(CollectionSummary {
                        name,
                        dimension: None,
                        metric: None,
                        count: None,
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let count: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {}", self.qualified(&name)),
                    &[],
                )
                .await
                .map_err(|e| self.fail("count rows", e))?
                .get(0);
            let first = spec.vectors.iter().find(|v| v.kind == VectorKind::Dense);
            out.push(CollectionSummary {
                name,
                dimension: first.and_then(|v| v.dimension),
                metric: spec.vectors.first().and_then(|v| v.metric),
                count: Some(count as u64),
            });
        }
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let client = self.connect().await?;
        let (mut spec, _) = self.inspect(&client, name).await?;
        let count: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", self.qualified(name)),
                &[],
            )
            .await
            .map_err(|e| self.fail("count rows", e))?
            .get(0);
        spec.count_hint = Some(count as u64);
        Ok(spec)
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let client = self.connect().await?;
        let (_, layout) = self.inspect(&client, &spec.name).await?;
        let f = spec
            .vectors
            .iter()
            .find(|f| f.name == field && f.kind == VectorKind::Dense)
            .ok_or_else(|| Error::NotFound {
                what: format!("dense vector field {field:?} of table `{}`", spec.name),
                hint: None,
            })?;
        // pgvector's distance operators; the metric comes from the column's index.
        let op = match f.metric {
            Some(Metric::Cosine) => "<=>",
            Some(Metric::L2) => "<->",
            Some(Metric::Dot) => "<#>",
            Some(Metric::Manhattan) => "<+>",
            Some(Metric::Hamming) if VecType::of(f) == VecType::Bit => "<~>",
            other => {
                return Err(Error::not_supported(
                    "pgvector",
                    format!(
                        "search on column `{}` with metric {other:?} (an HNSW or IVFFlat index names the metric)",
                        column_of(f)
                    ),
                ));
            }
        };
        let ty = VecType::of(f);
        // The query as pgvector's text form: Rust prints the shortest f32 that
        // reads back exactly; a bit string for bit columns.
        let (text, cast) = if ty == VecType::Bit {
            (
                vector
                    .iter()
                    .map(|x| if *x != 0.0 { '1' } else { '0' })
                    .collect::<String>(),
                format!("bit({})", vector.len()),
            )
        } else {
            (
                format!(
                    "[{}]",
                    vector
                        .iter()
                        .map(f32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                ty.name().to_owned(),
            )
        };
        let filter = layout
            .namespace_column()
            .map(|c| format!(" WHERE {} = $2", ident(c)))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {} {op} $1::text::{cast} LIMIT {k}",
            layout.id_select(),
            self.qualified(&spec.name),
            ident(&column_of(f)),
        );
        let ns = namespace.unwrap_or("").to_owned();
        let rows = if filter.is_empty() {
            client.query(&sql, &[&text]).await
        } else {
            client.query(&sql, &[&text, &ns]).await
        }
        .map_err(|e| self.fail("search", e))?;
        rows.iter()
            .map(|row| {
                id_of(row, &layout).map_err(|message| Error::Protocol {
                    endpoint: self.public.clone(),
                    operation: "search".into(),
                    message,
                })
            })
            .collect()
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let limit = options.page_size.max(1) as i64;
        let start = options.start.clone().and_then(|c| c.as_array().cloned());
        let first = async move {
            let client = self.connect().await?;
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(|e| self.fail("begin snapshot", e))?;
            let (_, layout) = self.inspect(&client, &spec.name).await?;
            Ok::<_, Error>((client, layout))
        };
        stream::once(first)
            .flat_map(move |opened| match opened {
                Err(e) => stream::once(async move { Err(e) }).boxed(),
                Ok((client, layout)) => {
                    let state = ScanState {
                        client,
                        after: start.clone(),
                        done: false,
                    };
                    let layout = Arc::new(layout);
                    stream::unfold(state, move |mut st| {
                        let layout = layout.clone();
                        async move {
                            if st.done {
                                return None;
                            }
                            let page = self
                                .page(&st.client, spec, &layout, st.after.as_deref(), limit)
                                .await;
                            match page {
                                Ok((records, last)) => {
                                    let next = if (records.len() as i64) < limit {
                                        st.done = true;
                                        let _ = st.client.batch_execute("COMMIT").await;
                                        None
                                    } else {
                                        last.clone().map(Value::Array)
                                    };
                                    st.after = last;
                                    Some((Ok(Page { records, next }), st))
                                }
                                Err(e) => {
                                    st.done = true;
                                    Some((Err(e), st))
                                }
                            }
                        }
                    })
                    .boxed()
                }
            })
            .boxed()
    }
}

impl Pgvector {
    /// One page after the key `after` (`[id]` or `[namespace, id]` as JSON).
    async fn page(
        &self,
        client: &Client,
        spec: &CollectionSpec,
        layout: &Layout,
        after: Option<&[Value]>,
        limit: i64,
    ) -> Result<(Vec<Record>, Option<Vec<Value>>)> {
        let key_cols: Vec<String> = layout.key.iter().map(|k| ident(k)).collect();
        let cast = match layout.id {
            IdColumn::Text => "text",
            IdColumn::BigInt => "bigint",
            IdColumn::Uuid => "uuid",
        };
        let ns = layout.namespace_column().filter(|_| layout.key.len() == 2);
        let mut sql = format!(
            "SELECT {}{} FROM {}",
            layout.select_list(),
            if ns.is_some() {
                ", \"namespace\"::text".to_owned()
            } else {
                String::new()
            },
            self.qualified(&spec.name)
        );
        // Keyset parameters, typed as their columns.
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if let Some(after) = after {
            let bad = || {
                Error::Usage(format!(
                    "the resume cursor {after:?} does not fit table `{}`",
                    spec.name
                ))
            };
            let mut placeholders = Vec::new();
            for (k, v) in layout.key.iter().zip(after) {
                let n = params.len() + 1;
                if *k == layout.id_column {
                    placeholders.push(format!("${n}::{cast}"));
                    match layout.id {
                        IdColumn::BigInt => params.push(Box::new(v.as_i64().ok_or_else(bad)?)),
                        _ => params.push(Box::new(v.as_str().ok_or_else(bad)?.to_owned())),
                    }
                } else {
                    placeholders.push(format!("${n}::text"));
                    params.push(Box::new(v.as_str().ok_or_else(bad)?.to_owned()));
                }
            }
            sql.push_str(&format!(
                " WHERE ({}) > ({})",
                key_cols.join(", "),
                placeholders.join(", ")
            ));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key_cols.join(", ")));
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .map_err(|e| self.fail("read rows", e))?;
        let width = layout.columns.len() + 1;
        let last = rows.last().map(|r| {
            layout
                .key
                .iter()
                .map(|k| {
                    if *k == layout.id_column {
                        match layout.id {
                            IdColumn::BigInt => json!(r.get::<_, i64>(0)),
                            IdColumn::Text => json!(r.get::<_, String>(0)),
                            IdColumn::Uuid => json!(r.get::<_, uuid::Uuid>(0).to_string()),
                        }
                    } else {
                        json!(r.get::<_, Option<String>>(width).unwrap_or_default())
                    }
                })
                .collect::<Vec<_>>()
        });
        let records = rows
            .iter()
            .map(|r| record_of(r, layout))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| Error::Protocol {
                endpoint: self.public.clone(),
                operation: format!("read table `{}`", spec.name),
                message,
            })?;
        Ok((records, last))
    }
}

/// Why a string cannot be stored, if it holds NUL (PostgreSQL text refuses it).
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn json_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => has_nul(s),
        Value::Array(a) => a.iter().any(json_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| has_nul(k) || json_has_nul(v)),
        _ => false,
    }
}

/// The column each vector field is stored in.
fn column_of(field: &VectorField) -> String {
    if field.name.is_empty() {
        UNNAMED_VECTOR.to_owned()
    } else {
        field.name.clone()
    }
}

/// A `bit(n)` value as n floats 0.0 / 1.0, first bit first.
fn bits_to_floats(b: &pgvector::Bit) -> Vec<f32> {
    let bytes = b.as_bytes();
    (0..b.len())
        .map(|i| {
            if bytes
                .get(i / 8)
                .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
            {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Which optional columns a table for `spec` has.
#[derive(Debug, Clone, Copy)]
struct OptionalColumns {
    documents: bool,
    uris: bool,
    namespaces: bool,
}

impl OptionalColumns {
    fn of(spec: &CollectionSpec) -> OptionalColumns {
        match &spec.content {
            Some(c) => OptionalColumns {
                documents: c.documents,
                uris: c.uris,
                namespaces: !c.namespaces.is_empty(),
            },
            None => OptionalColumns {
                documents: true,
                uris: true,
                namespaces: false,
            },
        }
    }
}

#[async_trait]
impl Sink for Pgvector {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: usize::MAX,
            sparse: true,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: &[
                Metric::Cosine,
                Metric::L2,
                Metric::Dot,
                Metric::Manhattan,
                Metric::Hamming,
            ],
            id_kinds: &[IdKind::String, IdKind::Uint, IdKind::Uuid],
            metadata: MetadataRules {
                target: "pgvector",
                numbers: crate::mapping::Numbers::Decimal,
                ..MetadataRules::ANY
            },
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        if spec
            .content
            .as_ref()
            .is_none_or(|c| !c.metadata_types.is_empty())
        {
            notes.push(JSONB_NOTE.to_owned());
        }
        notes
    }

    fn id_form(&self, spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        // Integers and UUIDs in one collection share a text key.
        (spec.id_kind == Some(IdKind::UintOrUuid)).then(|| IdForm::Text {
            stored: id.to_string(),
            rule: "pgvector keeps the integer and UUID ids of one collection in a text key: the id is stored as its text and comes back as a string",
        })
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        match &record.id {
            RecordId::String(s) if has_nul(s) => {
                return bad(
                    "the id holds a NUL character, which PostgreSQL text cannot store".into(),
                );
            }
            RecordId::Uint(n)
                if IdColumn::of(spec.id_kind) == IdColumn::BigInt && *n > i64::MAX as u64 =>
            {
                return bad(format!(
                    "the id {n} is beyond bigint (at most {}), the key type of integer ids",
                    i64::MAX
                ));
            }
            _ => {}
        }
        if let Some(ns) = &record.namespace {
            if ns.is_empty() {
                return bad("the namespace is empty, which pgvector's namespace column keeps for the default namespace".into());
            }
            if has_nul(ns) {
                return bad("the namespace holds a NUL character".into());
            }
        }
        for (what, text) in [("document", &record.document), ("uri", &record.uri)] {
            if text.as_deref().is_some_and(has_nul) {
                return bad(format!(
                    "the {what} holds a NUL character, which PostgreSQL text cannot store"
                ));
            }
        }
        let required = {
            let mut cache = self.required.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry(spec.name.clone())
                .or_insert_with(|| Arc::new(required_keys(spec)))
                .clone()
        };
        if let Some(k) = required.iter().find(|k| {
            record
                .metadata
                .as_ref()
                .and_then(|m| m.get(*k))
                .is_none_or(Value::is_null)
        }) {
            return bad(format!(
                "has no metadata key `{k}`, whose column the table is restored with as NOT NULL"
            ));
        }
        if let Some(m) = &record.metadata
            && let Some((k, _)) = m.iter().find(|(k, v)| has_nul(k) || json_has_nul(v))
        {
            return bad(format!(
                "metadata `{k}` holds a NUL character (\\u0000), which jsonb cannot store"
            ));
        }
        for (f, v) in spec.vectors.iter().zip(&record.vectors) {
            let Some(v) = v else { continue };
            let finite = |xs: &[f32]| xs.iter().all(|x| x.is_finite());
            if let Vector::Dense(d) = v
                && let Some(why) = super::wrong_dimension(f, d)
            {
                return bad(why);
            }
            match v {
                Vector::Dense(d) if VecType::of(f) == VecType::Bit => {
                    if d.is_empty() || d.len() > BIT_MAX_DIM as usize {
                        return bad(format!(
                            "vector {:?} has {} values; a bit column holds 1 to {BIT_MAX_DIM}",
                            f.name,
                            d.len()
                        ));
                    }
                    if let Some((i, x)) =
                        d.iter().enumerate().find(|(_, x)| **x != 0.0 && **x != 1.0)
                    {
                        return bad(format!(
                            "vector {:?} has the value {x} at position {i}; the field came from a bit column (source_datatype bit), which holds only 0 and 1",
                            f.name
                        ));
                    }
                }
                Vector::Dense(d) => {
                    if d.is_empty() || d.len() > VECTOR_MAX_DIM as usize {
                        return bad(format!(
                            "vector {:?} has {} values; pgvector stores 1 to {VECTOR_MAX_DIM}",
                            f.name,
                            d.len()
                        ));
                    }
                    if !finite(d) {
                        return bad(format!(
                            "vector {:?} has NaN or infinite values, which pgvector refuses",
                            f.name
                        ));
                    }
                }
                Vector::Multi(_) => {
                    return Err(Error::not_supported(
                        "pgvector",
                        format!("multivector fields (field {:?})", f.name),
                    ));
                }
                Vector::Sparse(s) => {
                    if s.indices.len() > SPARSEVEC_MAX_NNZ {
                        return bad(format!(
                            "sparse vector {:?} has {} non-zero values; sparsevec holds at most {SPARSEVEC_MAX_NNZ}",
                            f.name,
                            s.indices.len()
                        ));
                    }
                    if !s.indices.windows(2).all(|w| w[0] < w[1]) {
                        return bad(format!(
                            "sparse vector {:?} has unsorted or repeated indices",
                            f.name
                        ));
                    }
                    let max = s.indices.last().copied();
                    let limit = f
                        .dimension
                        .map_or(SPARSEVEC_MAX_DIM, u64::from)
                        .min(SPARSEVEC_MAX_DIM);
                    if max.is_some_and(|m| u64::from(m) >= limit) {
                        return bad(format!(
                            "sparse vector {:?} has index {}, beyond its dimension {limit}",
                            f.name,
                            max.unwrap_or_default()
                        ));
                    }
                    if s.values.contains(&0.0) {
                        return bad(format!(
                            "sparse vector {:?} stores an explicit zero, which sparsevec drops",
                            f.name
                        ));
                    }
                    if !finite(&s.values) {
                        return bad(format!(
                            "sparse vector {:?} has NaN or infinite values",
                            f.name
                        ));
                    }
                    if let Some(m) = max
                        && let Ok(mut seen) = self.sparse_max.lock()
                    {
                        let e = seen.entry((spec.name.clone(), f.name.clone())).or_insert(0);
                        *e = (*e).max(m);
                    }
                }
            }
        }
        Ok(())
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        if target.len() > MAX_IDENTIFIER_BYTES {
            return Err(Error::Usage(format!(
                "table name `{target}` is {} bytes; PostgreSQL names hold at most {MAX_IDENTIFIER_BYTES} (pass --rename)",
                target.len()
            )));
        }
        let extras = OptionalColumns::of(spec);
        let id = IdColumn::of(spec.id_kind);
        // Columns: id, vectors, metadata, document, uri, namespace.
        let mut plan: Vec<(String, VecType, Option<u32>)> = Vec::new();
        for f in &spec.vectors {
            if f.kind == VectorKind::Multi {
                return Err(Error::not_supported(
                    "pgvector",
                    format!("multivector fields (field {:?})", f.name),
                ));
            }
            let column = column_of(f);
            if [ID, METADATA, DOCUMENT, URI, NAMESPACE].contains(&column.as_str()) {
                return Err(Error::Incompatible(format!(
                    "vector field {:?} would be column `{column}`, which vecport's table uses for something else; drop it (--drop-vector) or import elsewhere",
                    f.name
                )));
            }
            if column.len() > MAX_IDENTIFIER_BYTES {
                return Err(Error::Incompatible(format!(
                    "vector field {:?} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte names",
                    f.name
                )));
            }
            if plan.iter().any(|(c, _, _)| *c == column) {
                return Err(Error::Incompatible(format!(
                    "vector fields \"\" and {UNNAMED_VECTOR:?} would both be column `{UNNAMED_VECTOR}`; drop one (--drop-vector)"
                )));
            }
            let ty = VecType::of(f);
            if let Some(metric) = f.metric
                && opclass_of(ty, metric).is_none()
            {
                return Err(Error::not_supported(
                    "pgvector",
                    format!(
                        "the {metric} metric on a {} column (field {:?}): pgvector's hamming distance works on bit columns only, and bit columns only with hamming; vecport makes a bit column of a field exported from one (source_datatype bit)",
                        ty.name(),
                        f.name
                    ),
                ));
            }
            if ty == VecType::Bit && f.dimension.is_none() {
                // `bit` without a length is bit(1) in PostgreSQL.
                return Err(Error::Incompatible(format!(
                    "binary vector field {:?} (source_datatype bit) has no dimension in the snapshot, and a bit column needs its length; re-export it from its source",
                    f.name
                )));
            }
            let dim = match ty {
                VecType::SparseVec => f.dimension.or_else(|| {
                    self.sparse_max
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&(spec.name.clone(), f.name.clone())).copied())
                        .map(|m| m + 1)
                }),
                _ => f.dimension,
            };
            plan.push((column, ty, dim));
        }
        let client = self.connect().await?;
        let table = self.qualified(target);
        let found = self.table_oid(&client, target).await?;
        let restore = Restore::of(spec, &plan, id);
        let mut restoring = false;
        match (found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("table `{}.{target}`", self.schema),
                    &self.public,
                ));
            }
            (Some(_), ExistingTarget::Append) => {
                let (theirs, layout) = self.inspect(&client, target).await?;
                if layout.id != id {
                    return Err(Error::Incompatible(format!(
                        "table `{target}` has a {:?} key, the snapshot's ids need {}; import under another name or pass --if-exists replace",
                        layout.id,
                        id.sql_type()
                    )));
                }
                for (column, ty, dim) in plan.iter_mut() {
                    let have = theirs.vectors.iter().find(|v| column_of(v) == *column);
                    let have_ty = layout.columns.iter().find_map(|(c, r)| match r {
                        Role::Vector(t) if c == column => Some(*t),
                        _ => None,
                    });
                    match (have, have_ty) {
                        (Some(h), Some(t))
                            if t == *ty
                                && (dim.is_none()
                                    || h.dimension.is_none()
                                    || h.dimension == *dim) =>
                        {
                            *dim = h.dimension.or(*dim);
                        }
                        _ => {
                            return Err(Error::Incompatible(format!(
                                "table `{target}` has no {}({}) column `{column}` as the snapshot needs (it has {:?}); import under another name or pass --if-exists replace",
                                ty.name(),
                                dim.map_or("*".to_owned(), |d| d.to_string()),
                                theirs
                                    .vectors
                                    .iter()
                                    .map(|v| (&v.name, v.dimension))
                                    .collect::<Vec<_>>()
                            )));
                        }
                    }
                }
                let has = |role: fn(&Role) -> bool| layout.columns.iter().any(|(_, r)| role(r));
                for (needed, c, present) in [
                    (
                        extras.documents,
                        DOCUMENT,
                        has(|r| matches!(r, Role::Document)),
                    ),
                    (extras.uris, URI, has(|r| matches!(r, Role::Uri))),
                    (
                        extras.namespaces,
                        NAMESPACE,
                        has(|r| matches!(r, Role::Namespace)),
                    ),
                ] {
                    if needed && !present {
                        return Err(Error::Incompatible(format!(
                            "table `{target}` has no `{c}` column, which the snapshot needs; import under another name or pass --if-exists replace"
                        )));
                    }
                }
                if !has(|r| matches!(r, Role::Metadata)) {
                    let columns: Vec<&str> = layout
                        .columns
                        .iter()
                        .filter(|(c, r)| matches!(r, Role::Key) && !layout.unwritable.contains(c))
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let keys = spec.content.as_ref().map_or_else(Vec::new, |c| {
                        c.metadata_types.keys().cloned().collect::<Vec<_>>()
                    });
                    let homeless: Vec<&String> = keys
                        .iter()
                        .filter(|k| !columns.contains(&k.as_str()))
                        .collect();
                    if spec.content.is_none() || !homeless.is_empty() {
                        return Err(Error::Incompatible(format!(
                            "table `{target}` has no jsonb metadata column and no columns for the metadata keys {homeless:?}; import under another name or pass --if-exists replace"
                        )));
                    }
                }
                // The same table as the snapshot's (a restore that stopped):
                // its own indexes are built, under the same names.
                restoring = restore.as_ref().is_some_and(|r| r.matches(&layout));
            }
            (found, _) => {
                let mut sql = String::from("BEGIN;\n");
                if found.is_some() {
                    sql.push_str(&format!("DROP TABLE {table};\n"));
                }
                if let Some(r) = &restore {
                    sql.push_str(&r.create(&table, target));
                    restoring = true;
                } else {
                    let mut columns = vec![format!("{} {} NOT NULL", ident(ID), id.sql_type())];
                    for (column, ty, dim) in &plan {
                        columns.push(format!(
                            "{} {}{}",
                            ident(column),
                            ty.name(),
                            dim.map(|d| format!("({d})")).unwrap_or_default()
                        ));
                    }
                    columns.push(format!("{} jsonb", ident(METADATA)));
                    if extras.documents {
                        columns.push(format!("{} text", ident(DOCUMENT)));
                    }
                    if extras.uris {
                        columns.push(format!("{} text", ident(URI)));
                    }
                    let key = if extras.namespaces {
                        columns.push(format!("{} text NOT NULL DEFAULT ''", ident(NAMESPACE)));
                        format!("{}, {}", ident(NAMESPACE), ident(ID))
                    } else {
                        ident(ID)
                    };
                    columns.push(format!("PRIMARY KEY ({key})"));
                    sql.push_str(&format!("CREATE TABLE {table} ({});\n", columns.join(", ")));
                }
                let comment = match restore.as_ref().and_then(|r| r.comment.clone()) {
                    Some(c) => Some(c),
                    None => spec
                        .collection_metadata
                        .as_ref()
                        .map(|m| json!({"vecport_collection_metadata": m}).to_string()),
                };
                if let Some(comment) = comment {
                    sql.push_str(&format!(
                        "COMMENT ON TABLE {table} IS '{}';\n",
                        comment.replace('\'', "''")
                    ));
                }
                sql.push_str("COMMIT;");
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| self.fail("create table", e))?;
            }
        }
        // What is written where, from the table as it now is.
        let (theirs, layout) = self.inspect(&client, target).await?;
        let role_column = |want: fn(&Role) -> bool| {
            layout
                .columns
                .iter()
                .find(|(_, r)| want(r))
                .map(|(c, _)| c.clone())
        };
        let format_of = |c: &str| {
            layout
                .formats
                .get(c)
                .cloned()
                .unwrap_or_else(|| "text".into())
        };
        let meta_col = role_column(|r| matches!(r, Role::Metadata));
        let doc_col = role_column(|r| matches!(r, Role::Document));
        let uri_col = role_column(|r| matches!(r, Role::Uri));
        let ns_col = role_column(|r| matches!(r, Role::Namespace));
        let keys: Vec<String> = layout
            .columns
            .iter()
            .filter(|(_, r)| matches!(r, Role::Key))
            .map(|(c, _)| c.clone())
            .collect();
        let written_keys: Vec<&String> = keys
            .iter()
            .filter(|k| !layout.unwritable.contains(k))
            .collect();
        // The staging table: the record's parts under vecport's names.
        let mut stage_cols = vec![format!("id {}", id.sql_type())];
        let mut targets = vec![ident(&layout.id_column)];
        let mut selects = vec![format!("s.id::{}", format_of(&layout.id_column))];
        for (i, (column, _, _)) in plan.iter().enumerate() {
            stage_cols.push(format!("v{i} {}", format_of(column)));
            targets.push(ident(column));
            selects.push(format!("s.v{i}"));
        }
        stage_cols.push("metadata jsonb".into());
        if let Some(c) = &meta_col {
            targets.push(ident(c));
            let rest = if keys.is_empty() {
                "s.metadata".to_owned()
            } else {
                let list = format!(
                    "ARRAY[{}]::text[]",
                    keys.iter()
                        .map(|k| format!("'{}'", k.replace('\'', "''")))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if layout.not_null.contains(c) {
                    format!("(s.metadata - {list})")
                } else {
                    // Only column keys: the object column was NULL (an
                    // export cannot tell it from `{}` beside typed columns).
                    format!(
                        "(CASE WHEN s.metadata ?| {list} AND s.metadata - {list} = '{{}}'::jsonb THEN NULL ELSE s.metadata - {list} END)"
                    )
                }
            };
            selects.push(format!("{rest}::{}", format_of(c)));
        }
        for (part, col) in [
            ("document", &doc_col),
            ("uri", &uri_col),
            ("namespace", &ns_col),
        ] {
            if let Some(c) = col {
                stage_cols.push(format!("{part} text"));
                targets.push(ident(c));
                selects.push(if part == "namespace" {
                    format!("coalesce(s.{part}, '')::{}", format_of(c))
                } else {
                    format!("s.{part}::{}", format_of(c))
                });
            }
        }
        for k in &written_keys {
            targets.push(ident(k));
            selects.push(format!("r.{}", ident(k)));
        }
        let key_list = layout
            .key
            .iter()
            .map(|k| ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        let updatable: Vec<&String> = targets
            .iter()
            .filter(|c| {
                !layout.key.iter().any(|k| ident(k) == **c)
                    && !layout.always.iter().any(|a| ident(a) == **c)
            })
            .collect();
        // Rows that are already as the snapshot has them are left alone (no new
        // row versions, no index insertions): re-imports are cheap. Compared as
        // text, which tells -0.0 from 0.0 where `=` does not.
        let conflict = if updatable.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            format!(
                "DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                updatable
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                updatable
                    .iter()
                    .map(|c| format!("t.{c}::text"))
                    .collect::<Vec<_>>()
                    .join(", "),
                updatable
                    .iter()
                    .map(|c| format!("EXCLUDED.{c}::text"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        let lateral = if written_keys.is_empty() {
            String::new()
        } else {
            format!(" CROSS JOIN LATERAL jsonb_populate_record(NULL::{KEYS}, s.metadata) r")
        };
        let upsert = format!(
            "INSERT INTO {table} AS t ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {STAGE} s{lateral} ON CONFLICT ({key_list}) {conflict}",
            targets.join(", "),
            selects.join(", "),
        );
        let stage_names: Vec<String> = stage_cols
            .iter()
            .map(|c| c.split(' ').next().unwrap_or_default().to_owned())
            .collect();
        let mut session = format!(
            "CREATE TEMP TABLE vecport_stage ({}) ON COMMIT DELETE ROWS;",
            stage_cols.join(", ")
        );
        if !written_keys.is_empty() {
            session.push_str(&format!(
                "CREATE TEMP TABLE vecport_keys ({});",
                written_keys
                    .iter()
                    .map(|k| format!("{} {}", ident(k), format_of(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Sessions, each with its staging table.
        let mut conns = Vec::with_capacity(WRITE_CONNECTIONS);
        let mut types = Vec::new();
        for _ in 0..WRITE_CONNECTIONS {
            let c = self.connect().await?;
            c.batch_execute(&session)
                .await
                .map_err(|e| self.fail("create staging table", e))?;
            if types.is_empty() {
                let stmt = c
                    .prepare(&format!("SELECT {} FROM {STAGE}", stage_names.join(", ")))
                    .await
                    .map_err(|e| self.fail("read staging columns", e))?;
                types = stmt.columns().iter().map(|c| c.type_().clone()).collect();
            }
            conns.push(tokio::sync::Mutex::new(c));
        }
        drop(client);
        // Indexes to build after the load.
        let mut indexes = Vec::new();
        let mut notes = Vec::new();
        if let Some(r) = restore.as_ref().filter(|_| restoring) {
            indexes = r.indexes(&table, target);
            notes.extend(r.notes.iter().cloned());
        } else {
            for (f, (column, ty, dim)) in spec.vectors.iter().zip(&plan) {
                let Some(metric) = f.metric else { continue };
                let Some(opclass) = opclass_of(*ty, metric) else {
                    // Refused while planning the columns, before anything was written.
                    continue;
                };
                if theirs
                    .vectors
                    .iter()
                    .any(|v| column_of(v) == *column && v.index.is_some())
                {
                    continue;
                }
                let kind = match f.index.as_ref().map(|i| i.kind.as_str()) {
                    Some("ivfflat") if *ty != VecType::SparseVec => "ivfflat",
                    _ => "hnsw",
                };
                let max = match ty {
                    VecType::Vector => Some(INDEX_MAX_DIM_VECTOR),
                    VecType::HalfVec => Some(INDEX_MAX_DIM_HALFVEC),
                    VecType::Bit => Some(INDEX_MAX_DIM_BIT),
                    VecType::SparseVec => None,
                };
                if let (Some(max), Some(d)) = (max, dim)
                    && *d > max
                {
                    notes.push(format!(
                        "pgvector indexes {} columns of at most {max} dimensions: column `{column}` ({d}) has no index, and its metric ({metric}) is not kept",
                        ty.name()
                    ));
                    continue;
                }
                if dim.is_none() {
                    notes.push(format!(
                        "column `{column}` has no dimension (the snapshot gives none and no record has a value), so it has no index and its metric ({metric}) is not kept"
                    ));
                    continue;
                }
                indexes.push(format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {table} USING {kind} ({} {opclass}){}",
                    ident(&index_name(target, column)),
                    ident(column),
                    index_options(kind, f.index.as_ref())
                ));
            }
        }
        Ok(Arc::new(PgWriter {
            public: self.public.clone(),
            table,
            created: found.is_none() || existing == ExistingTarget::Replace,
            conns,
            next: AtomicUsize::new(0),
            types,
            copy: format!(
                "COPY {STAGE} ({}) FROM STDIN (FORMAT BINARY)",
                stage_names.join(", ")
            ),
            upsert,
            plan: plan.iter().map(|(_, t, d)| (*t, *d)).collect(),
            id,
            parts: Parts {
                document: doc_col.is_some(),
                uri: uri_col.is_some(),
                namespace: ns_col.is_some(),
            },
            indexes,
            notes,
        }))
    }
}

/// A name within PostgreSQL's 63 bytes: longer names keep 40 bytes and a hash.
fn fit_identifier(name: String, suffix: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let mut short: String = String::new();
    for ch in name.chars() {
        if short.len() + ch.len_utf8() > 40 {
            break;
        }
        short.push(ch);
    }
    format!("{short}_{}{suffix}", &hash[..16])
}

/// A name for the index of `column`, within PostgreSQL's 63 bytes.
fn index_name(table: &str, column: &str) -> String {
    let name = format!("{table}_{column}_idx");
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let mut short: String = String::new();
    for ch in table.chars() {
        if short.len() + ch.len_utf8() > 40 {
            break;
        }
        short.push(ch);
    }
    format!("{short}_{}_idx", &hash[..16])
}

/// The name of an index or constraint of table `from` for the same object of
/// table `to`: the table's name in it replaced, kept when the table keeps its name.
fn renamed_for(name: &str, from: &str, to: &str) -> String {
    if from == to {
        return name.to_owned();
    }
    let renamed = match name.strip_prefix(from) {
        Some(rest) => format!("{to}{rest}"),
        None => format!("{to}_{name}"),
    };
    fit_identifier(renamed, "")
}

/// One column of a pgvector table as the snapshot's `raw_config` keeps it.
#[derive(Debug, Clone, PartialEq)]
struct RawColumn {
    name: String,
    format: String,
    role: String,
    not_null: bool,
    default: Option<String>,
    identity: String,
    generated: String,
}

/// A pgvector table exported from pgvector, recreated as it was: columns with
/// their types, defaults and NOT NULL, primary key, constraints, indexes and
/// comment (`spec/MAPPING.md`, pgvector → pgvector).
#[derive(Debug, Clone)]
struct Restore {
    table: String,
    columns: Vec<RawColumn>,
    key: Vec<String>,
    /// `(name, unique, definition after USING)` of the indexes no constraint owns.
    indexes: Vec<(String, bool, String)>,
    /// `(name, definition)` of check, unique and exclusion constraints.
    constraints: Vec<(String, String)>,
    comment: Option<String>,
    notes: Vec<String>,
}

impl Restore {
    /// The table of `spec`'s `raw_config`, when the snapshot was exported from
    /// pgvector by a vecport that records column roles, and the import keeps
    /// its vector columns and id type as they were.
    fn of(
        spec: &CollectionSpec,
        plan: &[(String, VecType, Option<u32>)],
        id: IdColumn,
    ) -> Option<Restore> {
        let raw = &spec.raw_config;
        raw.get("schema")?.as_str()?;
        let table = raw.get("table")?.as_str()?.to_owned();
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let columns = raw
            .get("columns")?
            .as_array()?
            .iter()
            .map(|c| {
                Some(RawColumn {
                    name: text(c, "name")?,
                    format: text(c, "type")?,
                    role: text(c, "role")?,
                    not_null: c.get("not_null").and_then(Value::as_bool).unwrap_or(false),
                    default: text(c, "default"),
                    identity: text(c, "identity").unwrap_or_default(),
                    generated: text(c, "generated").unwrap_or_default(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let key = raw
            .get("primary_key")?
            .as_array()?
            .iter()
            .map(|k| k.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        // The same vector columns, of the same types.
        let vectors: Vec<&RawColumn> = columns.iter().filter(|c| c.role == "vector").collect();
        if vectors.len() != plan.len() {
            return None;
        }
        for (column, ty, dim) in plan {
            let c = vectors.iter().find(|c| c.name == *column)?;
            let want = format!(
                "{}{}",
                ty.name(),
                dim.map(|d| format!("({d})")).unwrap_or_default()
            );
            if c.format != want && !(c.format == ty.name() && *ty == VecType::SparseVec) {
                return None;
            }
        }
        let id_col = columns.iter().find(|c| c.role == "id")?;
        let id_type = match id_col.format.split('(').next().unwrap_or_default() {
            "bigint" | "integer" | "smallint" => IdColumn::BigInt,
            "text" | "character varying" | "character" | "name" => IdColumn::Text,
            "uuid" => IdColumn::Uuid,
            _ => return None,
        };
        if id_type != id {
            return None;
        }
        let has = |role: &str| columns.iter().any(|c| c.role == role);
        if let Some(content) = &spec.content {
            if (content.documents && !has("document"))
                || (content.uris && !has("uri"))
                || (!content.namespaces.is_empty() && !has("namespace"))
            {
                return None;
            }
            // Every metadata key has a place: the jsonb column, or its own column.
            if !has("metadata")
                && content.metadata_types.keys().any(|k| {
                    !columns
                        .iter()
                        .any(|c| c.role == "key" && c.name == *k && c.generated.is_empty())
                })
            {
                return None;
            }
        }
        let mut notes = Vec::new();
        let mut indexes = Vec::new();
        for i in raw
            .get("indexes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let flag = |k: &str| i.get(k).and_then(Value::as_bool).unwrap_or(false);
            if flag("constraint") || flag("primary") {
                continue;
            }
            match (text(i, "name"), text(i, "using")) {
                (Some(name), Some(using)) => indexes.push((name, flag("unique"), using)),
                (name, _) => notes.push(format!(
                    "pgvector: index {} of table `{table}` is not recreated: the snapshot does not keep its definition apart from the table's name",
                    name.unwrap_or_default()
                )),
            }
        }
        let constraints = raw
            .get("constraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| Some((text(c, "name")?, text(c, "definition")?)))
            .collect();
        for c in columns
            .iter()
            .filter(|c| c.default.as_deref().is_some_and(|d| d.contains("nextval(")))
        {
            notes.push(format!(
                "pgvector: column `{}` draws its default from a sequence of table `{table}` ({}); the new table's column has no default",
                c.name,
                c.default.as_deref().unwrap_or_default()
            ));
        }
        Some(Restore {
            table,
            columns,
            key,
            indexes,
            constraints,
            comment: raw
                .get("comment")
                .and_then(Value::as_str)
                .map(str::to_owned),
            notes,
        })
    }

    /// `CREATE TABLE` and its constraints, for `qualified` (named `target`).
    fn create(&self, qualified: &str, target: &str) -> String {
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut d = format!("{} {}", ident(&c.name), c.format);
                match (c.generated.as_str(), c.identity.as_str(), &c.default) {
                    ("s", _, Some(expr)) => {
                        d.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"))
                    }
                    (_, "a", _) => d.push_str(" GENERATED ALWAYS AS IDENTITY"),
                    (_, "d", _) => d.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
                    (_, _, Some(expr)) if !expr.contains("nextval(") => {
                        d.push_str(&format!(" DEFAULT {expr}"))
                    }
                    _ => {}
                }
                if c.not_null {
                    d.push_str(" NOT NULL");
                }
                d
            })
            .collect();
        defs.push(format!(
            "PRIMARY KEY ({})",
            self.key
                .iter()
                .map(|k| ident(k))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut sql = format!("CREATE TABLE {qualified} ({});\n", defs.join(", "));
        for (name, definition) in &self.constraints {
            sql.push_str(&format!(
                "ALTER TABLE {qualified} ADD CONSTRAINT {} {definition};\n",
                ident(&renamed_for(name, &self.table, target))
            ));
        }
        sql
    }

    /// The statements that build the table's indexes after the load.
    fn indexes(&self, qualified: &str, target: &str) -> Vec<String> {
        self.indexes
            .iter()
            .map(|(name, unique, using)| {
                format!(
                    "CREATE {}INDEX IF NOT EXISTS {} ON {qualified} USING {using}",
                    if *unique { "UNIQUE " } else { "" },
                    ident(&renamed_for(name, &self.table, target))
                )
            })
            .collect()
    }

    /// Whether an existing table has this table's columns (a restore resumed).
    fn matches(&self, layout: &Layout) -> bool {
        layout.formats.len() == self.columns.len()
            && self
                .columns
                .iter()
                .all(|c| layout.formats.get(&c.name) == Some(&c.format))
    }
}

/// The metadata keys every record needs when `spec` restores a pgvector
/// table: those of its NOT NULL columns without a default (see [`Restore`]).
fn required_keys(spec: &CollectionSpec) -> Vec<String> {
    let raw = &spec.raw_config;
    if raw.get("table").and_then(Value::as_str).is_none() {
        return Vec::new();
    }
    let Some(columns) = raw.get("columns").and_then(Value::as_array) else {
        return Vec::new();
    };
    let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut vectors: Vec<String> = columns
        .iter()
        .filter(|c| text(c, "role").as_deref() == Some("vector"))
        .filter_map(|c| text(c, "name"))
        .collect();
    let mut fields: Vec<String> = spec.vectors.iter().map(column_of).collect();
    vectors.sort();
    fields.sort();
    if vectors != fields {
        return Vec::new();
    }
    columns
        .iter()
        .filter(|c| {
            text(c, "role").as_deref() == Some("key")
                && c.get("not_null").and_then(Value::as_bool) == Some(true)
                && c.get("default").is_none()
                && c.get("identity").is_none()
                && c.get("generated").is_none()
        })
        .filter_map(|c| text(c, "name"))
        .collect()
}

/// Which of the record's optional parts the table has a column for.
#[derive(Debug, Clone, Copy)]
struct Parts {
    document: bool,
    uri: bool,
    namespace: bool,
}

struct PgWriter {
    public: String,
    table: String,
    /// Whether `prepare` created the table (so `discard` may drop it).
    created: bool,
    conns: Vec<tokio::sync::Mutex<Client>>,
    next: AtomicUsize,
    types: Vec<Type>,
    copy: String,
    upsert: String,
    plan: Vec<(VecType, Option<u32>)>,
    id: IdColumn,
    parts: Parts,
    indexes: Vec<String>,
    notes: Vec<String>,
}

type Param = Box<dyn ToSql + Sync + Send>;

impl PgWriter {
    /// The COPY row of one record, in the staging table's column order.
    fn row(&self, r: Record) -> Result<Vec<Param>> {
        let mut out: Vec<Param> = Vec::with_capacity(self.types.len());
        let id = r.id.to_string();
        match (self.id, r.id) {
            (IdColumn::BigInt, RecordId::Uint(n)) => {
                out.push(Box::new(i64::try_from(n).map_err(|_| {
                    Error::InvalidData(format!("record {id:?}: the id is beyond bigint"))
                })?))
            }
            (IdColumn::Uuid, RecordId::Uuid(u)) => out.push(Box::new(u)),
            (IdColumn::Text, _) => out.push(Box::new(id.clone())),
            (want, _) => {
                return Err(Error::InvalidData(format!(
                    "record {id:?}: the table's key is {}, this id is not",
                    want.sql_type()
                )));
            }
        }
        for ((ty, dim), v) in self.plan.iter().zip(r.vectors) {
            match (ty, v) {
                (VecType::Vector, Some(Vector::Dense(d))) => {
                    out.push(Box::new(Some(pgvector::Vector::from(d))))
                }
                (VecType::HalfVec, Some(Vector::Dense(d))) => {
                    out.push(Box::new(Some(pgvector::HalfVector::from_f32_slice(&d))))
                }
                (VecType::SparseVec, Some(Vector::Sparse(s))) => {
                    let dim = dim.map_or(SPARSEVEC_MAX_DIM as i32, |d| d as i32);
                    let pairs: Vec<(i32, f32)> = s
                        .indices
                        .iter()
                        .map(|&i| i as i32)
                        .zip(s.values.iter().copied())
                        .collect();
                    out.push(Box::new(Some(pgvector::SparseVector::from_map(
                        pairs.iter().map(|(i, v)| (i, v)),
                        dim,
                    ))))
                }
                (VecType::Bit, Some(Vector::Dense(d))) => {
                    let bits: Vec<bool> = d.iter().map(|x| *x != 0.0).collect();
                    out.push(Box::new(Some(pgvector::Bit::new(&bits))))
                }
                (VecType::Bit, None) => out.push(Box::new(None::<pgvector::Bit>)),
                (VecType::SparseVec, None) => out.push(Box::new(None::<pgvector::SparseVector>)),
                (VecType::HalfVec, None) => out.push(Box::new(None::<pgvector::HalfVector>)),
                (VecType::Vector, None) => out.push(Box::new(None::<pgvector::Vector>)),
                (_, Some(other)) => {
                    return Err(Error::InvalidData(format!(
                        "record {id:?}: a {:?} vector where the table has a {} column",
                        other.kind(),
                        ty.name()
                    )));
                }
            }
        }
        out.push(Box::new(r.metadata.map(Value::Object)));
        if self.parts.document {
            out.push(Box::new(r.document));
        }
        if self.parts.uri {
            out.push(Box::new(r.uri));
        }
        if self.parts.namespace {
            out.push(Box::new(r.namespace.unwrap_or_default()));
        }
        Ok(out)
    }
}

#[async_trait]
impl CollectionWriter for PgWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: 2000,
            max_bytes: 64 << 20,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records
            .into_iter()
            .map(|r| self.row(r))
            .collect::<Result<Vec<_>>>()?;
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut client = self.conns[at].lock().await;
        let fail = |op: &str, e| fail(&self.public, op, e);
        let tx = client.transaction().await.map_err(|e| fail("begin", e))?;
        let sink = tx
            .copy_in(&self.copy)
            .await
            .map_err(|e| fail("copy rows", e))?;
        let writer = BinaryCopyInWriter::new(sink, &self.types);
        futures::pin_mut!(writer);
        for row in &rows {
            let refs: Vec<&(dyn ToSql + Sync)> = row
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            writer
                .as_mut()
                .write(&refs)
                .await
                .map_err(|e| fail("copy rows", e))?;
        }
        writer.finish().await.map_err(|e| fail("copy rows", e))?;
        tx.execute(&self.upsert, &[])
            .await
            .map_err(|e| fail("upsert rows", e))?;
        tx.commit().await.map_err(|e| fail("commit", e))?;
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        if self.indexes.is_empty() {
            return Ok(());
        }
        let client = self.conns[0].lock().await;
        // Index builds are much faster when the graph fits in memory.
        client
            .batch_execute(
                "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = 2",
            )
            .await
            .map_err(|e| fail(&self.public, "set index build memory", e))?;
        for sql in &self.indexes {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| fail(&self.public, "create index", e))?;
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        let client = self.conns[0].lock().await;
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", self.table), &[])
            .await
            .map_err(|e| fail(&self.public, "count rows", e))?
            .get(0);
        Ok(n as u64)
    }

    async fn discard(&self) -> Result<bool> {
        if !self.created {
            return Ok(false);
        }
        let client = self.conns[0].lock().await;
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
            .map_err(|e| fail(&self.public, "drop table", e))?;
        Ok(true)
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column as the catalog describes it.
    fn col(name: &str, typname: &str, typmod: i32) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            typname: typname.into(),
            format: typname.into(),
            typmod,
            ..ColumnInfo::default()
        }
    }

    #[test]
    fn opclasses_map_to_metrics_and_back() {
        for (opclass, metric) in [
            ("vector_cosine_ops", Metric::Cosine),
            ("vector_l2_ops", Metric::L2),
            ("vector_ip_ops", Metric::Dot),
            ("vector_l1_ops", Metric::Manhattan),
            ("halfvec_cosine_ops", Metric::Cosine),
            ("sparsevec_ip_ops", Metric::Dot),
            ("bit_hamming_ops", Metric::Hamming),
        ] {
            assert_eq!(metric_of_opclass(opclass), Some(metric), "{opclass}");
        }
        assert_eq!(metric_of_opclass("bit_jaccard_ops"), None);
        assert_eq!(metric_of_opclass("text_ops"), None);
        assert_eq!(
            opclass_of(VecType::HalfVec, Metric::Dot).as_deref(),
            Some("halfvec_ip_ops")
        );
        assert_eq!(opclass_of(VecType::Vector, Metric::Hamming), None);
        assert_eq!(
            opclass_of(VecType::Bit, Metric::Hamming).as_deref(),
            Some("bit_hamming_ops")
        );
        assert_eq!(opclass_of(VecType::Bit, Metric::Cosine), None);
    }

    #[test]
    fn bit_columns_are_binary_vector_fields() {
        let b = pgvector::Bit::new(&[true, false, true, true, false, false, false, false, true]);
        assert_eq!(
            bits_to_floats(&b),
            [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        );
        let columns = vec![
            col("id", "text", -1),
            col("code", "bit", 9),
            col("tags", "varbit", -1),
        ];
        let indexes = vec![IndexInfo {
            name: "i".into(),
            method: "hnsw".into(),
            definition: "CREATE INDEX i ...".into(),
            opclass: "bit_hamming_ops".into(),
            column: "code".into(),
            reloptions: vec![],
            ..IndexInfo::default()
        }];
        let (spec, layout) =
            layout_of("t", "public", &columns, &["id".into()], &indexes, &[], None).unwrap();
        let f = &spec.vectors[0];
        assert_eq!(
            (
                f.name.as_str(),
                f.kind,
                f.dimension,
                f.metric,
                f.stored_values,
                f.source_datatype.as_deref()
            ),
            (
                "code",
                VectorKind::Dense,
                Some(9),
                Some(Metric::Hamming),
                StoredValues::Lossy,
                Some("bit")
            )
        );
        assert_eq!(VecType::of(f), VecType::Bit);
        // `bit varying` is no vector: a metadata key.
        assert!(matches!(layout.columns[1], (ref c, Role::Key) if c == "tags"));
        assert!(spec.notes.iter().any(|n| n.contains("bit(n) columns")));
    }

    #[test]
    fn reloptions_become_index_settings() {
        let s = index_settings("hnsw", &["m=24".into(), "ef_construction=80".into()]);
        assert_eq!(
            (s.kind.as_str(), s.m, s.ef_construction),
            ("hnsw", Some(24), Some(80))
        );
        assert_eq!(
            index_options("hnsw", Some(&s)),
            " WITH (m = 24, ef_construction = 80)"
        );
        let s = index_settings("ivfflat", &["lists=7".into()]);
        assert_eq!(s.lists, Some(7));
        assert_eq!(index_options("ivfflat", Some(&s)), " WITH (lists = 7)");
        assert_eq!(index_options("hnsw", None), "");
    }

    #[test]
    fn columns_get_roles_from_their_types() {
        let columns = vec![
            col("pk", "int8", -1),
            col("emb", "vector", 3),
            col("half", "halfvec", 4),
            col("sp", "sparsevec", 100),
            col("metadata", "jsonb", -1),
            col("extra", "json", -1),
            col("content", "text", -1),
            col("price", "numeric", -1),
        ];
        let indexes = vec![IndexInfo {
            name: "i".into(),
            method: "hnsw".into(),
            definition: "CREATE INDEX i ...".into(),
            opclass: "vector_cosine_ops".into(),
            column: "emb".into(),
            reloptions: vec!["m=24".into()],
            ..IndexInfo::default()
        }];
        let (spec, layout) =
            layout_of("t", "public", &columns, &["pk".into()], &indexes, &[], None).unwrap();
        assert_eq!(spec.id_kind, Some(IdKind::Uint));
        assert_eq!(spec.vectors.len(), 3);
        assert_eq!(spec.vectors[0].metric, Some(Metric::Cosine));
        assert_eq!(spec.vectors[0].index.as_ref().unwrap().m, Some(24));
        assert_eq!(spec.vectors[1].stored_values, StoredValues::Lossy);
        assert_eq!(spec.vectors[2].kind, VectorKind::Sparse);
        assert_eq!(spec.vectors[2].dimension, Some(100));
        let role = |c: &str| {
            layout
                .columns
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, r)| format!("{r:?}"))
                .unwrap()
        };
        assert_eq!(role("metadata"), "Metadata");
        assert_eq!(role("extra"), "Key");
        assert_eq!(role("content"), "Document");
        assert_eq!(role("price"), "Key");
        assert!(layout_of("t", "public", &columns, &[], &indexes, &[], None).is_err());
    }

    #[test]
    fn long_index_names_are_shortened() {
        assert_eq!(index_name("t", "embedding"), "t_embedding_idx");
        let long = index_name(&"x".repeat(60), "embedding");
        assert!(long.len() <= MAX_IDENTIFIER_BYTES, "{long}");
    }
}
