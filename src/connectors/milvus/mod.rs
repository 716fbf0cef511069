//! `milvus://HOST:PORT[/COLLECTION][?database=DB]`: Milvus 2.3 on (and
//! Zilliz Cloud over `milvus+https://`), over its gRPC API. The token — an
//! API key, or `user:password` — comes from `MILVUS_TOKEN`.
//!
//! The client is generated from Milvus's own protobuf definitions (vendored in
//! `proto/`) with tonic and prost: the official Rust SDK brings a second HTTP
//! stack and TLS crypto provider beside vecport's, and wraps every column in
//! its own value types, while an export reads whole columns as Milvus sends
//! them.
//!
//! Export pages by primary key (`pk > last`, in key order; never by offset,
//! which Milvus caps at 16,384), partition by partition; typed scalar fields
//! and the dynamic field's keys become metadata, the schema, indexes,
//! partitions and consistency level go into the raw configuration. Import
//! recreates a Milvus collection as it was, or derives one from another
//! database's records (`spec/MAPPING.md`, Milvus); it upserts in batches,
//! then flushes and counts exactly.

mod columns;

/// Generated from `proto/*.proto` by `build.rs`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `milvus.proto.common`.
    pub mod common {
        tonic::include_proto!("milvus.proto.common");
    }
    /// `milvus.proto.schema`.
    pub mod schema {
        tonic::include_proto!("milvus.proto.schema");
    }
    /// `milvus.proto.milvus`.
    pub mod milvus {
        tonic::include_proto!("milvus.proto.milvus");
    }
    /// `milvus.proto.rg`.
    pub mod rg {
        tonic::include_proto!("milvus.proto.rg");
    }
    /// `milvus.proto.feder`.
    pub mod feder {
        tonic::include_proto!("milvus.proto.feder");
    }
    /// `milvus.proto.msg`.
    pub mod msg {
        tonic::include_proto!("milvus.proto.msg");
    }
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use futures::stream::{self, BoxStream, StreamExt};
use prost::Message as _;
use serde_json::{Map, Value, json};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::error::{Error, Result};
use crate::mapping::{IdForm, IndexCounterparts, MetadataRules, unkept_settings};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    StoredValues, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use self::columns::{Builder, Column};
use self::proto::common::{
    ConsistencyLevel, DslType, KeyValuePair, LoadState, PlaceholderGroup, PlaceholderType,
    PlaceholderValue,
};
use self::proto::milvus as pb;
use self::proto::milvus::milvus_service_client::MilvusServiceClient;
use self::proto::schema::{CollectionSchema, DataType, FieldSchema};
use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

/// Environment variable holding the token: an API key, or `user:password`.
pub const TOKEN_ENV: &str = "MILVUS_TOKEN";
const DEFAULT_PORT: u16 = 19530;
/// Metadata key (in the dynamic field) holding a record's document.
pub const DOCUMENT_KEY: &str = "__vecport_document";
/// Metadata key (in the dynamic field) holding a record's URI.
pub const URI_KEY: &str = "__vecport_uri";
/// The name of the primary key of a collection made from another database.
pub const ID_FIELD: &str = "id";
/// The name of an unnamed vector field in Milvus, which names every field.
pub const VECTOR_FIELD: &str = "vector";
/// The partition every collection has; its records are in the default namespace.
pub const DEFAULT_PARTITION: &str = "_default";
/// Milvus's longest VARCHAR (`max_length`), used for keys made from other databases.
const MAX_VARCHAR: usize = 65_535;
/// Milvus's default limit of one JSON value, in bytes of its text (64 KiB).
const MAX_JSON_BYTES: usize = 65_536;
/// Bytes of one upsert, as [`Record::json_size_estimate`] counts them (about
/// four times the protobuf size for vectors): well under the server's 64 MiB
/// gRPC message limit.
const MAX_BATCH_BYTES: usize = 48 << 20;
/// Records of one upsert.
const MAX_BATCH_RECORDS: usize = 5_000;
/// The longest query page Milvus answers (its offset + limit cap).
const MAX_PAGE: usize = 16_384;
/// Answers as large as a page of wide vectors.
const MAX_MESSAGE: usize = 1 << 30;

type Grpc = MilvusServiceClient<InterceptedService<Channel, Auth>>;

/// The plan of one collection, by its name in the snapshot.
type CachedPlan = (String, Arc<Plan>);

/// Adds the token and the database to every call.
#[derive(Clone)]
struct Auth {
    token: Option<AsciiMetadataValue>,
    database: Option<AsciiMetadataValue>,
}

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        if let Some(db) = &self.database {
            req.metadata_mut().insert("dbname", db.clone());
        }
        Ok(req)
    }
}

/// The Milvus connector.
#[derive(Clone)]
pub struct Milvus {
    grpc: Grpc,
    endpoint: String,
    database: String,
    collection: Option<String>,
    /// The target schema of the last spec checked, by collection name.
    plans: Arc<Mutex<Option<CachedPlan>>>,
}

impl std::fmt::Debug for Milvus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Milvus")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// A Milvus status: `Ok` when it reports success (`error_code`, deprecated,
/// is what servers before 2.3 set).
#[allow(deprecated)]
fn status_ok(s: Option<&proto::common::Status>) -> std::result::Result<(), String> {
    match s {
        Some(s) if s.code != 0 || s.error_code != 0 => Err(if s.reason.is_empty() {
            format!("error code {}", s.code.max(s.error_code))
        } else {
            s.reason.clone()
        }),
        _ => Ok(()),
    }
}

fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.to_owned(),
        value: value.into(),
    }
}

fn kv_map(pairs: &[KeyValuePair]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|p| (p.key.clone(), Value::String(p.value.clone())))
        .collect()
}

fn metric_of(name: &str) -> Option<Metric> {
    match name.to_ascii_uppercase().as_str() {
        "COSINE" => Some(Metric::Cosine),
        "IP" => Some(Metric::Dot),
        "L2" => Some(Metric::L2),
        "HAMMING" => Some(Metric::Hamming),
        _ => None,
    }
}

fn metric_name(metric: Metric) -> Option<&'static str> {
    match metric {
        Metric::Cosine => Some("COSINE"),
        Metric::Dot => Some("IP"),
        Metric::L2 => Some("L2"),
        Metric::Hamming => Some("HAMMING"),
        Metric::Manhattan => None,
    }
}

fn is_vector(ty: DataType) -> bool {
    matches!(
        ty,
        DataType::FloatVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::BinaryVector
            | DataType::SparseFloatVector
            | DataType::Int8Vector
    )
}

fn data_type(f: &FieldSchema) -> DataType {
    DataType::try_from(f.data_type).unwrap_or(DataType::None)
}

fn element_type(f: &FieldSchema) -> DataType {
    DataType::try_from(f.element_type).unwrap_or(DataType::None)
}

fn type_param(f: &FieldSchema, key: &str) -> Option<usize> {
    f.type_params
        .iter()
        .find(|p| p.key == key)
        .and_then(|p| p.value.parse().ok())
}

/// The snapshot's name of Milvus vector field `name`: the field named
/// `vector` (pymilvus's default) is the unnamed field.
fn spec_field_name(name: &str) -> &str {
    if name == VECTOR_FIELD { "" } else { name }
}

/// The Milvus name of the snapshot's vector field `name`.
fn milvus_field_name(name: &str) -> &str {
    if name.is_empty() { VECTOR_FIELD } else { name }
}

/// Whether `name` can be a Milvus field name.
fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 255
}

/// The collection's schema as JSON, for the manifest's raw configuration.
fn schema_json(s: &CollectionSchema) -> Value {
    let fields: Vec<Value> = s
        .fields
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "data_type": data_type(f).as_str_name(),
                "element_type": element_type(f).as_str_name(),
                "type_params": kv_map(&f.type_params),
                "is_primary_key": f.is_primary_key,
                "auto_id": f.auto_id,
                "is_dynamic": f.is_dynamic,
                "is_partition_key": f.is_partition_key,
                "is_clustering_key": f.is_clustering_key,
                "nullable": f.nullable,
                "description": f.description,
            })
        })
        .collect();
    json!({
        "name": s.name,
        "description": s.description,
        "enable_dynamic_field": s.enable_dynamic_field,
        "fields": fields,
        "properties": kv_map(&s.properties),
    })
}

/// The schema back from [`schema_json`].
fn schema_of_json(v: &Value) -> Option<CollectionSchema> {
    let fields = v["fields"].as_array()?;
    let pairs = |m: &Value| -> Vec<KeyValuePair> {
        m.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| kv(k, v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ty = |v: &Value| {
        v.as_str()
            .and_then(DataType::from_str_name)
            .unwrap_or(DataType::None) as i32
    };
    let fields = fields
        .iter()
        .map(|f| FieldSchema {
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            data_type: ty(&f["data_type"]),
            element_type: ty(&f["element_type"]),
            type_params: pairs(&f["type_params"]),
            is_primary_key: f["is_primary_key"].as_bool().unwrap_or(false),
            auto_id: f["auto_id"].as_bool().unwrap_or(false),
            is_dynamic: f["is_dynamic"].as_bool().unwrap_or(false),
            is_partition_key: f["is_partition_key"].as_bool().unwrap_or(false),
            is_clustering_key: f["is_clustering_key"].as_bool().unwrap_or(false),
            nullable: f["nullable"].as_bool().unwrap_or(false),
            description: f["description"].as_str().unwrap_or_default().to_owned(),
            ..FieldSchema::default()
        })
        .collect();
    Some(CollectionSchema {
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        description: v["description"].as_str().unwrap_or_default().to_owned(),
        enable_dynamic_field: v["enable_dynamic_field"].as_bool().unwrap_or(false),
        fields,
        properties: pairs(&v["properties"]),
        ..CollectionSchema::default()
    })
}

/// Normalised index settings from a Milvus index's parameters (`index_type`,
/// `metric_type`, `params` as JSON text, or the same keys flattened).
fn index_settings(params: &Map<String, Value>) -> (IndexSettings, Option<Metric>) {
    let mut all = Map::new();
    for (k, v) in params {
        if k == "params" {
            if let Some(Ok(Value::Object(inner))) = v.as_str().map(serde_json::from_str::<Value>) {
                all.extend(inner);
            }
        } else {
            all.insert(k.clone(), v.clone());
        }
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let metric = all.remove("metric_type").and_then(|m| metric_of(&text(&m)));
    let kind = all
        .remove("index_type")
        .map(|t| text(&t))
        .unwrap_or_default();
    let number = |all: &mut Map<String, Value>, k: &str| {
        all.remove(k).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let settings = IndexSettings {
        kind: match kind.as_str() {
            "HNSW" => "hnsw".to_owned(),
            "FLAT" => "flat".to_owned(),
            "IVF_FLAT" => "ivfflat".to_owned(),
            other => other.to_ascii_lowercase(),
        },
        m: number(&mut all, "M"),
        ef_construction: number(&mut all, "efConstruction"),
        lists: number(&mut all, "nlist"),
        extra: all,
        ..IndexSettings::default()
    };
    (settings, metric)
}

/// A primary-key value as the text of a filter expression.
fn pk_literal(id: &Value) -> String {
    match id {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// How vecport writes into one Milvus collection: its schema, and where each
/// part of a record goes.
#[derive(Debug)]
struct Plan {
    schema: CollectionSchema,
    pk: String,
    pk_int: bool,
    pk_max_length: usize,
    /// The Milvus field of each of the spec's vector fields, in its order.
    vectors: Vec<FieldSchema>,
    /// Typed scalar fields other than the key.
    scalars: Vec<FieldSchema>,
}

impl Plan {
    fn of(schema: CollectionSchema, spec_vectors: &[VectorField]) -> Result<Plan> {
        let pk = schema
            .fields
            .iter()
            .find(|f| f.is_primary_key)
            .cloned()
            .ok_or_else(|| Error::Incompatible("the Milvus schema has no primary key".into()))?;
        let mut vectors = Vec::new();
        for v in spec_vectors {
            let name = if v.name.is_empty() {
                VECTOR_FIELD
            } else {
                &v.name
            };
            let f = schema
                .fields
                .iter()
                .find(|f| f.name == name && is_vector(data_type(f)))
                .cloned()
                .ok_or_else(|| {
                    Error::Incompatible(format!(
                        "the Milvus collection has no vector field {name:?} for the snapshot's vector {:?}",
                        v.name
                    ))
                })?;
            vectors.push(f);
        }
        let scalars = schema
            .fields
            .iter()
            .filter(|f| !f.is_primary_key && !f.is_dynamic && !is_vector(data_type(f)))
            .cloned()
            .collect();
        Ok(Plan {
            pk_int: data_type(&pk) == DataType::Int64,
            pk_max_length: type_param(&pk, "max_length").unwrap_or(MAX_VARCHAR),
            pk: pk.name.clone(),
            vectors,
            scalars,
            schema,
        })
    }
}

/// Whether `spec` was exported from Milvus (its raw configuration holds a Milvus schema).
fn milvus_schema(spec: &CollectionSpec) -> Option<CollectionSchema> {
    spec.raw_config
        .get("milvus_schema")
        .and_then(schema_of_json)
}

/// The schema a collection made from `spec` gets: Milvus's own, or one
/// derived from another database's (`spec/MAPPING.md`, Milvus).
fn target_schema(name: &str, spec: &CollectionSpec) -> Result<CollectionSchema> {
    if let Some(mut s) = milvus_schema(spec) {
        s.name = name.to_owned();
        for f in &mut s.fields {
            // Ids are kept: Milvus takes none on insert into an auto_id key.
            f.auto_id = false;
        }
        #[allow(deprecated)]
        {
            s.auto_id = false;
        }
        return Ok(s);
    }
    let int_ids = spec.id_kind == Some(IdKind::Uint);
    let mut fields = vec![FieldSchema {
        name: ID_FIELD.to_owned(),
        is_primary_key: true,
        data_type: if int_ids {
            DataType::Int64
        } else {
            DataType::VarChar
        } as i32,
        type_params: if int_ids {
            Vec::new()
        } else {
            vec![kv("max_length", MAX_VARCHAR.to_string())]
        },
        ..FieldSchema::default()
    }];
    for v in &spec.vectors {
        let name = if v.name.is_empty() {
            VECTOR_FIELD
        } else {
            &v.name
        };
        if !valid_field_name(name) || name == ID_FIELD {
            return Err(Error::not_supported(
                "milvus",
                format!(
                    "the vector field name {name:?}: Milvus field names are letters, digits and `_`, not starting with a digit, and `{ID_FIELD}` is the key"
                ),
            ));
        }
        let (ty, params) = match v.kind {
            VectorKind::Sparse => (DataType::SparseFloatVector, Vec::new()),
            VectorKind::Multi => {
                return Err(Error::not_supported(
                    "milvus",
                    format!("multivector fields (field {:?})", v.name),
                ));
            }
            VectorKind::Dense => {
                let dim = v.dimension.ok_or_else(|| {
                    Error::Incompatible(format!("vector field {:?} has no dimension", v.name))
                })?;
                let bits = v.source_datatype.as_deref() == Some("bit");
                (
                    if bits {
                        DataType::BinaryVector
                    } else {
                        DataType::FloatVector
                    },
                    vec![kv("dim", dim.to_string())],
                )
            }
        };
        fields.push(FieldSchema {
            name: name.to_owned(),
            data_type: ty as i32,
            type_params: params,
            ..FieldSchema::default()
        });
    }
    Ok(CollectionSchema {
        name: name.to_owned(),
        fields,
        enable_dynamic_field: true,
        ..CollectionSchema::default()
    })
}

/// The index of each vector field of a collection made from `spec`:
/// (field, index name, parameters).
fn target_indexes(
    spec: &CollectionSpec,
    schema: &CollectionSchema,
) -> Result<Vec<(String, String, Vec<KeyValuePair>)>> {
    if let Some(Value::Array(ix)) = spec.raw_config.get("indexes")
        && milvus_schema(spec).is_some()
    {
        return Ok(ix
            .iter()
            .filter_map(|i| {
                let params = i["params"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| kv(k, v.as_str().unwrap_or_default()))
                    .collect();
                Some((
                    i["field"].as_str()?.to_owned(),
                    i["index_name"].as_str().unwrap_or_default().to_owned(),
                    params,
                ))
            })
            .collect());
    }
    let mut out = Vec::new();
    for (v, f) in spec
        .vectors
        .iter()
        .zip(schema.fields.iter().filter(|f| is_vector(data_type(f))))
    {
        let (index, metric) = match data_type(f) {
            DataType::SparseFloatVector => ("SPARSE_INVERTED_INDEX", "IP"),
            DataType::BinaryVector => ("BIN_FLAT", "HAMMING"),
            _ => {
                let metric = v.metric.unwrap_or(Metric::Cosine);
                let name = metric_name(metric)
                    .filter(|_| metric != Metric::Hamming)
                    .ok_or_else(|| {
                        Error::not_supported(
                            "milvus",
                            format!("the {metric} metric on float vectors (field {:?})", v.name),
                        )
                    })?;
                ("AUTOINDEX", name)
            }
        };
        out.push((
            f.name.clone(),
            f.name.clone(),
            vec![
                kv("index_type", index),
                kv("metric_type", metric),
                kv("params", "{}"),
            ],
        ));
    }
    Ok(out)
}

impl Milvus {
    /// Opens a `milvus://` or `milvus+https://` URL.
    pub fn new(url: &ConnectorUrl) -> Result<Milvus> {
        url.only_params(&["database"])?;
        let host = url
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Usage(format!("`{}`: the URL names no host", url.public())))?;
        let port = url.port().unwrap_or(DEFAULT_PORT);
        let scheme = if url.tls() { "https" } else { "http" };
        let address = format!("{scheme}://{host}:{port}");
        let mut endpoint = tonic::transport::Endpoint::from_shared(address.clone())
            .map_err(|e| Error::Usage(format!("`{}`: {e}", url.public())))?
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if url.tls() {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| Error::Usage(format!("`{}`: TLS: {e}", url.public())))?;
        }
        let token = Secret::from_env(TOKEN_ENV)
            .map(|t| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(t.expose());
                let _ = Secret::new(encoded.clone());
                MetadataValue::try_from(encoded).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .transpose()
            .map_err(|_| {
                Error::Usage(format!("{TOKEN_ENV} holds characters a token cannot have"))
            })?;
        let database = url.param("database").unwrap_or("default").to_owned();
        let db_header = url
            .param("database")
            .map(MetadataValue::try_from)
            .transpose()
            .map_err(|_| {
                Error::Usage(format!(
                    "`{}`: the database name is not ASCII",
                    url.public()
                ))
            })?;
        let channel = endpoint.connect_lazy();
        let grpc = MilvusServiceClient::with_interceptor(
            channel,
            Auth {
                token,
                database: db_header,
            },
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
        Ok(Milvus {
            grpc,
            endpoint: format!(
                "milvus{}://{host}:{port}",
                if url.tls() { "+https" } else { "" }
            ),
            database,
            collection: url.collection().map(str::to_owned),
            plans: Arc::default(),
        })
    }

    /// An error for a failed call.
    fn failed(&self, operation: &str, status: tonic::Status) -> Error {
        use tonic::Code;
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => Error::Unauthenticated {
                endpoint: self.endpoint.clone(),
                reason: status.message().to_owned(),
                hint: format!("the token in {TOKEN_ENV}"),
            },
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
                if status.message().contains("transport") || status.code() == Code::Unavailable =>
            {
                Error::Unreachable {
                    endpoint: self.endpoint.clone(),
                    message: format!("{operation}: {}", status.message()),
                }
            }
            _ => Error::Protocol {
                endpoint: self.endpoint.clone(),
                operation: operation.to_owned(),
                message: format!("{:?}: {}", status.code(), status.message()),
            },
        }
    }

    /// An error for a Milvus status that reports a refusal.
    fn refused(&self, operation: &str, reason: String) -> Error {
        if reason.contains("auth") && (reason.contains("fail") || reason.contains("denied")) {
            return Error::Unauthenticated {
                endpoint: self.endpoint.clone(),
                reason,
                hint: format!("the token in {TOKEN_ENV}"),
            };
        }
        Error::InvalidData(format!("milvus refused {operation}: {reason}"))
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("collection `{name}` on {}", self.endpoint),
            hint: Some(format!(
                "`vecport ls {}` lists the collections",
                self.endpoint
            )),
        }
    }

    fn db(&self) -> String {
        self.database.clone()
    }

    /// `DescribeCollection`; `None` when it does not exist.
    async fn describe_collection(
        &self,
        name: &str,
    ) -> Result<Option<pb::DescribeCollectionResponse>> {
        let has = self
            .grpc
            .clone()
            .has_collection(pb::HasCollectionRequest {
                db_name: self.db(),
                collection_name: name.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("has collection", e))?
            .into_inner();
        status_ok(has.status.as_ref()).map_err(|r| self.refused("has collection", r))?;
        if !has.value {
            return Ok(None);
        }
        let d = self
            .grpc
            .clone()
            .describe_collection(pb::DescribeCollectionRequest {
                db_name: self.db(),
                collection_name: name.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("describe collection", e))?
            .into_inner();
        status_ok(d.status.as_ref()).map_err(|r| self.refused("describe collection", r))?;
        Ok(Some(d))
    }

    /// Every index of a collection: (field, index name, parameters).
    async fn indexes(&self, name: &str) -> Result<Vec<(String, String, Map<String, Value>)>> {
        let r = self
            .grpc
            .clone()
            .describe_index(pb::DescribeIndexRequest {
                db_name: self.db(),
                collection_name: name.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("describe index", e))?
            .into_inner();
        if let Err(reason) = status_ok(r.status.as_ref()) {
            if reason.contains("index not found") || reason.contains("not exist") {
                return Ok(Vec::new());
            }
            return Err(self.refused("describe index", reason));
        }
        Ok(r.index_descriptions
            .into_iter()
            .map(|d| (d.field_name, d.index_name, kv_map(&d.params)))
            .collect())
    }

    /// The collection's partitions; none where the server has no partition
    /// calls (milvus-lite answers UNIMPLEMENTED).
    async fn partitions(&self, name: &str) -> Result<Vec<String>> {
        let r = match self
            .grpc
            .clone()
            .show_partitions(pb::ShowPartitionsRequest {
                db_name: self.db(),
                collection_name: name.to_owned(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unimplemented => return Ok(Vec::new()),
            Err(s) => return Err(self.failed("show partitions", s)),
        };
        match status_ok(r.status.as_ref()) {
            Ok(()) => Ok(r.partition_names),
            Err(reason)
                if reason.to_ascii_lowercase().contains("unimplemented")
                    || reason.contains("not support") =>
            {
                Ok(Vec::new())
            }
            Err(reason) => Err(self.refused("show partitions", reason)),
        }
    }

    /// Loads a collection for queries and waits until it is loaded.
    async fn load(&self, name: &str) -> Result<()> {
        let state = |m: &Milvus| {
            let m = m.clone();
            let name = name.to_owned();
            async move {
                let r = m
                    .grpc
                    .clone()
                    .get_load_state(pb::GetLoadStateRequest {
                        db_name: m.db(),
                        collection_name: name,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| m.failed("get load state", e))?
                    .into_inner();
                status_ok(r.status.as_ref()).map_err(|r| m.refused("get load state", r))?;
                Ok::<_, Error>(r.state)
            }
        };
        if state(self).await? == LoadState::Loaded as i32 {
            return Ok(());
        }
        let r = self
            .grpc
            .clone()
            .load_collection(pb::LoadCollectionRequest {
                db_name: self.db(),
                collection_name: name.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("load collection", e))?
            .into_inner();
        status_ok(Some(&r)).map_err(|r| self.refused("load collection", r))?;
        for _ in 0..1200 {
            if state(self).await? == LoadState::Loaded as i32 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(Error::Protocol {
            endpoint: self.endpoint.clone(),
            operation: "load collection".into(),
            message: format!("collection `{name}` was not loaded after 5 minutes"),
        })
    }

    /// Counts a collection's entities exactly (`count(*)`, strong consistency).
    async fn count(&self, name: &str) -> Result<u64> {
        let r = self
            .query(
                pb::QueryRequest {
                    db_name: self.db(),
                    collection_name: name.to_owned(),
                    output_fields: vec!["count(*)".into()],
                    consistency_level: ConsistencyLevel::Strong as i32,
                    ..Default::default()
                },
                "count",
            )
            .await?;
        r.fields_data
            .iter()
            .find_map(|f| match &f.field {
                Some(proto::schema::field_data::Field::Scalars(s)) => match &s.data {
                    Some(proto::schema::scalar_field::Data::LongData(l)) => l.data.first().copied(),
                    _ => None,
                },
                _ => None,
            })
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Error::Protocol {
                endpoint: self.endpoint.clone(),
                operation: "count".into(),
                message: "the answer holds no count".into(),
            })
    }

    async fn query(&self, req: pb::QueryRequest, operation: &str) -> Result<pb::QueryResults> {
        let r = self
            .grpc
            .clone()
            .query(req)
            .await
            .map_err(|e| self.failed(operation, e))?
            .into_inner();
        status_ok(r.status.as_ref()).map_err(|r| self.refused(operation, r))?;
        Ok(r)
    }

    /// The spec of a described collection.
    async fn spec_of(
        &self,
        name: &str,
        d: pb::DescribeCollectionResponse,
    ) -> Result<CollectionSpec> {
        let schema = d.schema.unwrap_or_default();
        let indexes = self.indexes(name).await?;
        let partitions = self.partitions(name).await?;
        let mut vectors = Vec::new();
        let mut id_kind = None;
        let mut notes = Vec::new();
        for f in &schema.fields {
            let ty = data_type(f);
            if f.is_primary_key {
                id_kind = Some(if ty == DataType::Int64 {
                    IdKind::Uint
                } else {
                    IdKind::String
                });
            }
            if !is_vector(ty) {
                continue;
            }
            let index = indexes.iter().find(|(field, _, _)| *field == f.name);
            let (settings, metric) = index
                .map(|(_, _, p)| index_settings(p))
                .map_or((None, None), |(s, m)| (Some(s), m));
            let (kind, lossy) = match ty {
                DataType::SparseFloatVector => (VectorKind::Sparse, None),
                DataType::Float16Vector => (VectorKind::Dense, Some("float16")),
                DataType::BFloat16Vector => (VectorKind::Dense, Some("bfloat16")),
                DataType::Int8Vector => (VectorKind::Dense, Some("int8")),
                DataType::BinaryVector => (VectorKind::Dense, Some("bit")),
                _ => (VectorKind::Dense, None),
            };
            if let Some(t) = lossy.filter(|t| *t != "bit") {
                notes.push(format!(
                    "milvus stores vector field {:?} as {t}: the exported float32 values are exactly the stored ones, a float32 written into it is rounded",
                    f.name
                ));
            }
            vectors.push(VectorField {
                name: spec_field_name(&f.name).to_owned(),
                kind,
                dimension: type_param(f, "dim").and_then(|d| u32::try_from(d).ok()),
                metric: metric.or((kind == VectorKind::Sparse).then_some(Metric::Dot)),
                index: settings,
                stored_values: if lossy.is_some() {
                    StoredValues::Lossy
                } else {
                    StoredValues::Exact
                },
                source_datatype: lossy.map(str::to_owned),
            });
        }
        if schema.fields.iter().any(|f| f.is_partition_key) {
            notes.push("milvus: the collection's partition key spreads records over hidden partitions; records are exported without namespaces, and the key field is kept as metadata and as the partition key of a Milvus target".to_owned());
        }
        let consistency = ConsistencyLevel::try_from(d.consistency_level)
            .map(|c| c.as_str_name().to_owned())
            .unwrap_or_default();
        let raw = json!({
            "milvus_schema": schema_json(&schema),
            "indexes": indexes.iter().map(|(field, name, params)| json!({"field": field, "index_name": name, "params": params})).collect::<Vec<_>>(),
            "partitions": partitions,
            "consistency_level": consistency,
            "shards_num": d.shards_num,
            "properties": kv_map(&d.properties),
        });
        let count = self.count(name).await.ok();
        Ok(CollectionSpec {
            name: name.to_owned(),
            id_kind,
            vectors,
            raw_config: raw,
            collection_metadata: None,
            count_hint: count,
            notes,
            content: None,
        })
    }

    /// The cached plan of `spec` (the schema the import creates).
    fn plan(&self, spec: &CollectionSpec) -> Result<Arc<Plan>> {
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, plan)) = cache.as_ref()
            && *name == spec.name
        {
            return Ok(plan.clone());
        }
        let plan = Arc::new(Plan::of(target_schema(&spec.name, spec)?, &spec.vectors)?);
        *cache = Some((spec.name.clone(), plan.clone()));
        Ok(plan)
    }
}

impl Endpoint for Milvus {
    fn name(&self) -> &'static str {
        "milvus"
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

/// Where a scan is: which partition (index into the list, or the whole
/// collection when it has none to tell apart), after which key.
fn cursor(partition: usize, after: Option<&Value>) -> Value {
    json!({"partition": partition, "after": after})
}

/// Decodes a query page into records (namespace `namespace`).
fn records_of(
    results: pb::QueryResults,
    pk: &str,
    vectors: &[VectorField],
    namespace: Option<&str>,
) -> std::result::Result<(Vec<Record>, Option<Value>), String> {
    let pk_data = results
        .fields_data
        .iter()
        .find(|f| f.field_name == pk)
        .ok_or("the answer holds no primary key")?;
    let rows = match &pk_data.field {
        Some(proto::schema::field_data::Field::Scalars(s)) => match &s.data {
            Some(proto::schema::scalar_field::Data::LongData(l)) => l.data.len(),
            Some(proto::schema::scalar_field::Data::StringData(t)) => t.data.len(),
            _ => return Err("the primary key is neither INT64 nor VARCHAR".into()),
        },
        _ => return Err("the primary key is not a scalar".into()),
    };
    let mut ids: Vec<Value> = Vec::new();
    let mut meta: Vec<Metadata> = vec![Metadata::new(); rows];
    let mut dynamic: Vec<Option<Map<String, Value>>> = vec![None; rows];
    let mut vecs: Vec<Vec<Option<Vector>>> = vec![vec![None; vectors.len()]; rows];
    for data in &results.fields_data {
        match columns::decode(data, rows)? {
            Column::Scalar(values) if data.field_name == pk => {
                ids = values
                    .into_iter()
                    .map(|v| v.unwrap_or(Value::Null))
                    .collect();
            }
            Column::Scalar(values) => {
                for (m, v) in meta.iter_mut().zip(values) {
                    if let Some(v) = v {
                        m.insert(data.field_name.clone(), v);
                    }
                }
            }
            Column::Dynamic(values) => dynamic = values,
            Column::Vectors(values) => {
                if let Some(i) = vectors
                    .iter()
                    .position(|f| milvus_field_name(&f.name) == data.field_name)
                {
                    for (row, v) in vecs.iter_mut().zip(values) {
                        row[i] = v;
                    }
                }
            }
        }
    }
    let mut last = None;
    let mut out = Vec::with_capacity(rows);
    for (((id, mut metadata), extra), vectors) in ids.into_iter().zip(meta).zip(dynamic).zip(vecs) {
        if let Some(extra) = extra {
            metadata.extend(extra);
        }
        let document = match metadata.shift_remove(DOCUMENT_KEY) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let uri = match metadata.shift_remove(URI_KEY) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let record_id = match &id {
            Value::String(s) => RecordId::String(s.clone()),
            Value::Number(n) => RecordId::Uint(n.as_u64().ok_or_else(|| {
                format!("primary key {n} is negative: the snapshot's integer ids are unsigned")
            })?),
            other => {
                return Err(format!(
                    "primary key {other} is neither an integer nor a string"
                ));
            }
        };
        let newer = match (&last, &id) {
            (None, _) => true,
            (Some(Value::Number(a)), Value::Number(b)) => a.as_i64() < b.as_i64(),
            (Some(Value::String(a)), Value::String(b)) => a < b,
            _ => false,
        };
        if newer {
            last = Some(id);
        }
        out.push(Record {
            id: record_id,
            namespace: namespace.map(str::to_owned),
            vectors,
            metadata: (!metadata.is_empty()).then_some(metadata),
            document,
            uri,
        });
    }
    Ok((out, last))
}

#[async_trait]
impl Source for Milvus {
    async fn describe(&self) -> Result<SourceDescription> {
        let version = match self
            .grpc
            .clone()
            .get_version(pb::GetVersionRequest {})
            .await
        {
            Ok(r) => Some(r.into_inner().version).filter(|v| !v.is_empty()),
            Err(s) if s.code() == tonic::Code::Unimplemented => None,
            Err(s) => return Err(self.failed("get version", s)),
        };
        let mut location = Map::new();
        location.insert("database".into(), json!(self.database));
        Ok(SourceDescription {
            server_version: version,
            location,
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let r = self
            .grpc
            .clone()
            .show_collections(pb::ShowCollectionsRequest {
                db_name: self.db(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("show collections", e))?
            .into_inner();
        status_ok(r.status.as_ref()).map_err(|e| self.refused("show collections", e))?;
        let mut out = Vec::new();
        for name in r.collection_names {
            let Some(d) = self.describe_collection(&name).await? else {
                continue;
            };
            let spec = self.spec_of(&name, d).await?;
            let first = spec
                .vectors
                .iter()
                .find(|f| f.kind == VectorKind::Dense)
                .or(spec.vectors.first());
            out.push(CollectionSummary {
                dimension: first.and_then(|f| f.dimension),
                metric: first.and_then(|f| f.metric),
                count: spec.count_hint,
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let d = self
            .describe_collection(name)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        self.load(name).await?;
        self.spec_of(name, d).await
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let limit = options.page_size.clamp(1, MAX_PAGE);
        let schema = milvus_schema(spec).unwrap_or_default();
        let pk = schema
            .fields
            .iter()
            .find(|f| f.is_primary_key)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        // Partitions tell namespaces apart, except under a partition key.
        let partitions: Vec<String> = if schema.fields.iter().any(|f| f.is_partition_key) {
            Vec::new()
        } else {
            spec.raw_config["partitions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let partitions = if partitions.iter().all(|p| p == DEFAULT_PARTITION) {
            Vec::new()
        } else {
            partitions
        };
        let start = options.start.clone();
        let state = Some(match &start {
            Some(c) => (
                c["partition"].as_u64().unwrap_or(0) as usize,
                Some(c["after"].clone()).filter(|a| !a.is_null()),
            ),
            None => (0, None),
        });
        stream::unfold(state, move |state| {
            let pk = pk.clone();
            let partitions = partitions.clone();
            async move {
                let (mut part, mut after) = state?;
                loop {
                    if !partitions.is_empty() && part >= partitions.len() {
                        return None;
                    }
                    let partition = partitions.get(part);
                    let expr = after
                        .as_ref()
                        .map(|a| format!("{pk} > {}", pk_literal(a)))
                        .unwrap_or_default();
                    let req = pb::QueryRequest {
                        db_name: self.db(),
                        collection_name: spec.name.clone(),
                        expr,
                        output_fields: vec!["*".into()],
                        partition_names: partition.cloned().into_iter().collect(),
                        query_params: vec![
                            kv("limit", limit.to_string()),
                            kv("iterator", "True"),
                            kv("reduce_stop_for_best", "True"),
                        ],
                        consistency_level: ConsistencyLevel::Strong as i32,
                        ..Default::default()
                    };
                    let results = match self.query(req, "query").await {
                        Ok(r) => r,
                        Err(e) => return Some((Err(e), None)),
                    };
                    let namespace = partition
                        .filter(|p| *p != DEFAULT_PARTITION)
                        .map(String::as_str);
                    let decoded = records_of(results, &pk, &spec.vectors, namespace);
                    let (records, last) = match decoded {
                        Ok(d) => d,
                        Err(message) => {
                            return Some((
                                Err(Error::Protocol {
                                    endpoint: self.endpoint.clone(),
                                    operation: "query".into(),
                                    message,
                                }),
                                None,
                            ));
                        }
                    };
                    // A page ends where the answer does; the partition ends
                    // with an empty answer (Milvus may answer short pages).
                    if records.is_empty() {
                        if partitions.is_empty() || part + 1 >= partitions.len() {
                            return None;
                        }
                        (part, after) = (part + 1, None);
                        continue;
                    }
                    let next = cursor(part, last.as_ref());
                    return Some((
                        Ok(Page {
                            records,
                            next: Some(next),
                        }),
                        Some((part, last)),
                    ));
                }
            }
        })
        .boxed()
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let f = spec
            .vectors
            .iter()
            .find(|f| f.name == field)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "collection `{}` has no vector field {field:?}",
                    spec.name
                ))
            })?;
        let (ty, bytes) = match f.source_datatype.as_deref() {
            Some("float16") => (
                PlaceholderType::Float16Vector,
                vector
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
            Some("bfloat16") => (
                PlaceholderType::BFloat16Vector,
                vector
                    .iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
            ),
            _ => (
                PlaceholderType::FloatVector,
                vector
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
        };
        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: ty as i32,
                values: vec![bytes],
                ..Default::default()
            }],
        };
        let metric = f.metric.and_then(metric_name).unwrap_or("COSINE");
        let r = self
            .grpc
            .clone()
            .search(pb::SearchRequest {
                db_name: self.db(),
                collection_name: spec.name.clone(),
                partition_names: namespace.map(str::to_owned).into_iter().collect(),
                dsl_type: DslType::BoolExprV1 as i32,
                search_input: Some(pb::search_request::SearchInput::PlaceholderGroup(
                    group.encode_to_vec(),
                )),
                search_params: vec![
                    kv("anns_field", milvus_field_name(field)),
                    kv("topk", k.to_string()),
                    kv("metric_type", metric),
                    kv("params", "{}"),
                    kv("round_decimal", "-1"),
                ],
                nq: 1,
                consistency_level: ConsistencyLevel::Strong as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("search", e))?
            .into_inner();
        status_ok(r.status.as_ref()).map_err(|e| self.refused("search", e))?;
        let ids = r.results.and_then(|r| r.ids).and_then(|i| i.id_field);
        use proto::schema::i_ds::IdField;
        Ok(match ids {
            Some(IdField::IntId(l)) => l
                .data
                .into_iter()
                .filter_map(|n| u64::try_from(n).ok())
                .map(RecordId::Uint)
                .collect(),
            Some(IdField::StrId(s)) => s.data.into_iter().map(RecordId::String).collect(),
            _ => Vec::new(),
        })
    }
}

fn reserved_key(key: &str) -> Option<String> {
    [DOCUMENT_KEY, URI_KEY, "$meta"]
        .contains(&key)
        .then(|| "is reserved by vecport's milvus mapping".to_owned())
}

const UUID_ID_RULE: &str = "milvus keys are INT64 or VARCHAR: a UUID id is stored as its text in a VARCHAR key and comes back as a string";

/// Why a JSON value does not fit a typed Milvus scalar field.
fn scalar_problem(f: &FieldSchema, v: &Value) -> Option<String> {
    let ty = data_type(f);
    let int_range = |lo: i64, hi: i64| match v.as_i64() {
        Some(n) if (lo..=hi).contains(&n) => None,
        _ => Some(format!("is not an integer within {lo}..={hi}")),
    };
    let problem = match ty {
        DataType::Bool => (!v.is_boolean()).then(|| "is not a boolean".to_owned()),
        DataType::Int8 => int_range(i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => int_range(i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => int_range(i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => int_range(i64::MIN, i64::MAX),
        DataType::Float | DataType::Double => {
            (!v.is_number()).then(|| "is not a number".to_owned())
        }
        DataType::VarChar | DataType::String => match v.as_str() {
            None => Some("is not a string".to_owned()),
            Some(s) => type_param(f, "max_length")
                .filter(|max| s.len() > *max)
                .map(|max| {
                    format!(
                        "is {} bytes long, more than the field's max_length {max}",
                        s.len()
                    )
                }),
        },
        DataType::Json => {
            let len = serde_json::to_vec(v).map_or(0, |b| b.len());
            (len > MAX_JSON_BYTES)
                .then(|| format!("is {len} bytes of JSON, more than Milvus's {MAX_JSON_BYTES}"))
        }
        DataType::Array => match v.as_array() {
            None => Some("is not an array".to_owned()),
            Some(items) => {
                let element = FieldSchema {
                    data_type: f.element_type,
                    type_params: f.type_params.clone(),
                    ..FieldSchema::default()
                };
                if let Some(cap) = type_param(f, "max_capacity").filter(|c| items.len() > *c) {
                    Some(format!(
                        "has {} elements, more than the field's max_capacity {cap}",
                        items.len()
                    ))
                } else {
                    items
                        .iter()
                        .find_map(|x| scalar_problem(&element, x))
                        .map(|p| format!("has an element that {p}"))
                }
            }
        },
        _ => Some(format!(
            "is for a field of type {} that vecport cannot write",
            ty.as_str_name()
        )),
    };
    problem.map(|p| format!("field {:?} ({}): the value {p}", f.name, ty.as_str_name()))
}

#[async_trait]
impl Sink for Milvus {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: 4,
            sparse: true,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: &[Metric::Cosine, Metric::Dot, Metric::L2, Metric::Hamming],
            id_kinds: &[IdKind::String, IdKind::Uint],
            metadata: MetadataRules {
                target: "milvus",
                key: reserved_key,
                ..MetadataRules::ANY
            },
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        match milvus_schema(spec) {
            Some(s) => {
                if s.fields.iter().any(|f| f.auto_id) {
                    notes.push("milvus: the primary key is created without auto_id, so that every record keeps its id".to_owned());
                }
            }
            None => {
                let keeps = IndexCounterparts {
                    m: false,
                    ef_construction: false,
                    ef_search: false,
                    lists: false,
                    quantization: false,
                };
                notes.extend(unkept_settings("milvus", spec, keeps));
                notes.push("milvus: metadata goes into the dynamic field; documents and URIs into its keys `__vecport_document` and `__vecport_uri`; float vectors are indexed with AUTOINDEX".to_owned());
            }
        }
        notes
    }

    fn id_form(&self, spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        let _ = spec;
        match id {
            RecordId::Uuid(u) => Some(IdForm::Text {
                stored: u.hyphenated().to_string(),
                rule: UUID_ID_RULE,
            }),
            _ => None,
        }
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        super::check_request_size("milvus", record, MAX_BATCH_BYTES)?;
        let plan = self.plan(spec)?;
        match (&record.id, plan.pk_int) {
            (RecordId::Uint(n), true) if i64::try_from(*n).is_err() => {
                return bad(format!("id {n} is beyond the INT64 key of Milvus"));
            }
            (RecordId::Uint(_), true) => {}
            (_, true) => return bad("is not an integer, and the Milvus key is INT64".into()),
            (_, false) => {
                let len = id.len();
                if len > plan.pk_max_length {
                    return bad(format!(
                        "id is {len} bytes long, more than the key's max_length {}",
                        plan.pk_max_length
                    ));
                }
                if id.is_empty() {
                    return bad("id is empty, which Milvus refuses".into());
                }
            }
        }
        for ((f, target), v) in spec.vectors.iter().zip(&plan.vectors).zip(&record.vectors) {
            let Some(v) = v else {
                if !target.nullable {
                    return bad(format!(
                        "has no value for vector field {:?}, which Milvus requires in every record",
                        target.name
                    ));
                }
                continue;
            };
            match v {
                Vector::Dense(d) => {
                    let dim = type_param(target, "dim").unwrap_or(d.len());
                    if d.len() != dim {
                        return bad(format!(
                            "vector {:?} has {} values, the Milvus field's dimension is {dim}",
                            f.name,
                            d.len()
                        ));
                    }
                    if !d.iter().all(|x| x.is_finite()) {
                        return bad(format!(
                            "vector {:?} has NaN or infinite values, which Milvus refuses",
                            f.name
                        ));
                    }
                    if data_type(target) == DataType::Float16Vector
                        && let Some(x) = d.iter().find(|x| x.abs() > 65_504.0)
                    {
                        return bad(format!("vector {:?} has {x}, beyond float16", f.name));
                    }
                }
                Vector::Sparse(s) => {
                    if let Some(i) = s.indices.iter().find(|i| **i == u32::MAX) {
                        return bad(format!(
                            "sparse vector {:?} has index {i}; Milvus takes indices below 2^32-1",
                            f.name
                        ));
                    }
                    if !s.values.iter().all(|x| x.is_finite()) {
                        return bad(format!(
                            "sparse vector {:?} has NaN or infinite values",
                            f.name
                        ));
                    }
                    let mut seen = s.indices.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    if seen.len() != s.indices.len() {
                        return bad(format!("sparse vector {:?} repeats an index", f.name));
                    }
                }
                Vector::Multi(_) => {
                    return bad(format!(
                        "vector {:?} is a multivector, which Milvus cannot hold",
                        f.name
                    ));
                }
            }
        }
        let metadata = record.metadata.as_ref();
        let mut dynamic = Map::new();
        for f in &plan.scalars {
            match metadata.and_then(|m| m.get(&f.name)) {
                None | Some(Value::Null) if f.nullable => {}
                None | Some(Value::Null) => {
                    return bad(format!(
                        "has no value for field {:?} ({}), which Milvus requires in every record",
                        f.name,
                        data_type(f).as_str_name()
                    ));
                }
                Some(v) => {
                    if let Some(p) = scalar_problem(f, v) {
                        return bad(p);
                    }
                }
            }
        }
        if let Some(m) = metadata {
            for (k, v) in m {
                if !plan.scalars.iter().any(|f| f.name == *k) {
                    dynamic.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(d) = &record.document {
            dynamic.insert(DOCUMENT_KEY.into(), json!(d));
        }
        if let Some(u) = &record.uri {
            dynamic.insert(URI_KEY.into(), json!(u));
        }
        if !dynamic.is_empty() {
            if !plan.schema.enable_dynamic_field {
                return bad(format!(
                    "has metadata keys without a field in the Milvus schema ({}), which has no dynamic field",
                    dynamic
                        .keys()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let len = serde_json::to_vec(&dynamic).map_or(0, |b| b.len());
            if len > MAX_JSON_BYTES {
                return bad(format!(
                    "its dynamic field (metadata without a typed field, document, URI) is {len} bytes of JSON, more than Milvus's {MAX_JSON_BYTES}"
                ));
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
        let found = self.describe_collection(target).await?;
        let created = !(found.is_some() && existing == ExistingTarget::Append);
        let plan = match (found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("collection `{target}`"),
                    &self.endpoint,
                ));
            }
            (Some(d), ExistingTarget::Append) => {
                let theirs = self.spec_of(target, d.clone()).await?;
                super::check_append(
                    &format!("collection `{target}` on {}", self.endpoint),
                    &theirs.vectors,
                    &spec.vectors,
                )?;
                self.load(target).await?;
                Plan::of(d.schema.unwrap_or_default(), &spec.vectors)?
            }
            (found, _) => {
                if found.is_some() {
                    let s = self
                        .grpc
                        .clone()
                        .drop_collection(pb::DropCollectionRequest {
                            db_name: self.db(),
                            collection_name: target.to_owned(),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| self.failed("drop collection", e))?
                        .into_inner();
                    status_ok(Some(&s)).map_err(|r| self.refused("drop collection", r))?;
                }
                self.create(target, spec).await?
            }
        };
        Ok(Arc::new(MilvusWriter {
            milvus: self.clone(),
            name: target.to_owned(),
            plan: Arc::new(plan),
            created,
        }))
    }
}

impl Milvus {
    /// Creates collection `target` for `spec`: schema, partitions, indexes, load.
    async fn create(&self, target: &str, spec: &CollectionSpec) -> Result<Plan> {
        let schema = target_schema(target, spec)?;
        let raw = &spec.raw_config;
        let same = milvus_schema(spec).is_some();
        let consistency = raw["consistency_level"]
            .as_str()
            .filter(|_| same)
            .and_then(ConsistencyLevel::from_str_name)
            .unwrap_or(ConsistencyLevel::Bounded);
        let s = self
            .grpc
            .clone()
            .create_collection(pb::CreateCollectionRequest {
                db_name: self.db(),
                collection_name: target.to_owned(),
                schema: schema.encode_to_vec(),
                shards_num: raw["shards_num"]
                    .as_i64()
                    .filter(|_| same)
                    .and_then(|n| i32::try_from(n).ok())
                    .unwrap_or(0),
                consistency_level: consistency as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("create collection", e))?
            .into_inner();
        status_ok(Some(&s)).map_err(|r| self.refused("create collection", r))?;
        let mut partitions: Vec<String> = spec
            .content
            .as_ref()
            .map(|c| c.namespaces.clone())
            .unwrap_or_default();
        if same && !schema.fields.iter().any(|f| f.is_partition_key) {
            for p in raw["partitions"].as_array().into_iter().flatten() {
                if let Some(p) = p.as_str()
                    && p != DEFAULT_PARTITION
                    && !partitions.iter().any(|x| x == p)
                {
                    partitions.push(p.to_owned());
                }
            }
        }
        for p in partitions.iter().filter(|p| *p != DEFAULT_PARTITION) {
            let r = self
                .grpc
                .clone()
                .create_partition(pb::CreatePartitionRequest {
                    db_name: self.db(),
                    collection_name: target.to_owned(),
                    partition_name: p.clone(),
                    ..Default::default()
                })
                .await;
            let refusal = match r {
                Ok(s) => status_ok(Some(&s.into_inner())).err(),
                Err(s) if s.code() == tonic::Code::Unimplemented => Some(s.message().to_owned()),
                Err(s) => return Err(self.failed("create partition", s)),
            };
            if let Some(reason) = refusal {
                return Err(Error::not_supported(
                    "milvus",
                    format!(
                        "partitions on this server (creating partition {p:?}: {reason}); collection `{target}` was created without records: pass --namespaces into-key to keep each record's namespace in a metadata key, and --if-exists replace"
                    ),
                ));
            }
        }
        for (field, name, params) in target_indexes(spec, &schema)? {
            let s = self
                .grpc
                .clone()
                .create_index(pb::CreateIndexRequest {
                    db_name: self.db(),
                    collection_name: target.to_owned(),
                    field_name: field.clone(),
                    index_name: name,
                    extra_params: params,
                    ..Default::default()
                })
                .await
                .map_err(|e| self.failed("create index", e))?
                .into_inner();
            status_ok(Some(&s))
                .map_err(|r| self.refused(&format!("create index on {field:?}"), r))?;
        }
        self.load(target).await?;
        Plan::of(schema, &spec.vectors)
    }
}

struct MilvusWriter {
    milvus: Milvus,
    name: String,
    plan: Arc<Plan>,
    /// Whether `prepare` created the collection (so `discard` may drop it).
    created: bool,
}

impl MilvusWriter {
    fn columns(&self, records: &[Record]) -> Vec<proto::schema::FieldData> {
        let plan = &self.plan;
        let mut pk = Builder::new(
            &plan.pk,
            if plan.pk_int {
                DataType::Int64
            } else {
                DataType::VarChar
            },
            DataType::None,
            0,
        );
        let mut vectors: Vec<Builder> = plan
            .vectors
            .iter()
            .map(|f| {
                Builder::new(
                    &f.name,
                    data_type(f),
                    DataType::None,
                    type_param(f, "dim").unwrap_or(0),
                )
                .nullable(f.nullable)
            })
            .collect();
        let mut scalars: Vec<Builder> = plan
            .scalars
            .iter()
            .map(|f| Builder::new(&f.name, data_type(f), element_type(f), 0).nullable(f.nullable))
            .collect();
        let mut dynamic = plan.schema.enable_dynamic_field.then(Builder::dynamic);
        for r in records {
            pk.push_scalar(Some(match &r.id {
                RecordId::Uint(n) => json!(n),
                other => json!(other.to_string()),
            }));
            for (b, v) in vectors.iter_mut().zip(&r.vectors) {
                b.push_vector(v.as_ref());
            }
            let metadata = r.metadata.as_ref();
            for (b, f) in scalars.iter_mut().zip(&plan.scalars) {
                b.push_scalar(
                    metadata
                        .and_then(|m| m.get(&f.name))
                        .filter(|v| !v.is_null())
                        .cloned(),
                );
            }
            if let Some(d) = &mut dynamic {
                let mut extra = Map::new();
                if let Some(m) = metadata {
                    for (k, v) in m {
                        if !plan.scalars.iter().any(|f| f.name == *k) {
                            extra.insert(k.clone(), v.clone());
                        }
                    }
                }
                if let Some(doc) = &r.document {
                    extra.insert(DOCUMENT_KEY.into(), json!(doc));
                }
                if let Some(u) = &r.uri {
                    extra.insert(URI_KEY.into(), json!(u));
                }
                d.push_scalar(Some(Value::Object(extra)));
            }
        }
        let mut out = vec![pk.finish()];
        out.extend(vectors.into_iter().map(Builder::finish));
        out.extend(scalars.into_iter().map(Builder::finish));
        out.extend(dynamic.map(Builder::finish));
        out
    }
}

#[async_trait]
impl CollectionWriter for MilvusWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: MAX_BATCH_RECORDS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        let mut by_partition: BTreeMap<Option<String>, Vec<Record>> = BTreeMap::new();
        for r in records {
            by_partition.entry(r.namespace.clone()).or_default().push(r);
        }
        for (partition, records) in by_partition {
            let n = records.len();
            let fields_data = self.columns(&records);
            drop(records);
            let r = self
                .milvus
                .grpc
                .clone()
                .upsert(pb::UpsertRequest {
                    db_name: self.milvus.db(),
                    collection_name: self.name.clone(),
                    partition_name: partition.unwrap_or_default(),
                    fields_data,
                    num_rows: u32::try_from(n).unwrap_or(u32::MAX),
                    ..Default::default()
                })
                .await
                .map_err(|e| self.milvus.failed("upsert", e))?
                .into_inner();
            status_ok(r.status.as_ref()).map_err(|e| self.milvus.refused("upsert", e))?;
        }
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        let r = self
            .milvus
            .grpc
            .clone()
            .flush(pb::FlushRequest {
                db_name: self.milvus.db(),
                collection_names: vec![self.name.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| self.milvus.failed("flush", e))?
            .into_inner();
        status_ok(r.status.as_ref()).map_err(|e| self.milvus.refused("flush", e))
    }

    async fn count(&self) -> Result<u64> {
        self.milvus.count(&self.name).await
    }

    async fn discard(&self) -> Result<bool> {
        if !self.created {
            return Ok(false);
        }
        let s = self
            .milvus
            .grpc
            .clone()
            .drop_collection(pb::DropCollectionRequest {
                db_name: self.milvus.db(),
                collection_name: self.name.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.milvus.failed("drop collection", e))?
            .into_inner();
        status_ok(Some(&s)).map_err(|r| self.milvus.refused("drop collection", r))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_parameters_normalise() {
        let params: Map<String, Value> = serde_json::from_value(json!({
            "index_type": "HNSW", "metric_type": "COSINE", "params": "{\"M\": 16, \"efConstruction\": 200}"
        }))
        .unwrap();
        let (s, m) = index_settings(&params);
        assert_eq!(
            (s.kind.as_str(), s.m, s.ef_construction, m),
            ("hnsw", Some(16), Some(200), Some(Metric::Cosine))
        );
        let flat: Map<String, Value> = serde_json::from_value(
            json!({"index_type": "IVF_FLAT", "metric_type": "IP", "nlist": "128"}),
        )
        .unwrap();
        let (s, m) = index_settings(&flat);
        assert_eq!(
            (s.kind.as_str(), s.lists, m),
            ("ivfflat", Some(128), Some(Metric::Dot))
        );
    }

    #[test]
    fn schema_survives_the_manifest() {
        let schema = CollectionSchema {
            name: "c".into(),
            enable_dynamic_field: true,
            fields: vec![
                FieldSchema {
                    name: "pk".into(),
                    is_primary_key: true,
                    data_type: DataType::VarChar as i32,
                    type_params: vec![kv("max_length", "64")],
                    ..FieldSchema::default()
                },
                FieldSchema {
                    name: "tags".into(),
                    data_type: DataType::Array as i32,
                    element_type: DataType::Int32 as i32,
                    type_params: vec![kv("max_capacity", "8")],
                    ..FieldSchema::default()
                },
            ],
            ..CollectionSchema::default()
        };
        let back = schema_of_json(&schema_json(&schema)).unwrap();
        assert_eq!(back.fields, schema.fields);
        assert!(back.enable_dynamic_field);
    }

    #[test]
    fn scalar_rules_name_the_field() {
        let f = FieldSchema {
            name: "title".into(),
            data_type: DataType::VarChar as i32,
            type_params: vec![kv("max_length", "4")],
            ..FieldSchema::default()
        };
        assert!(scalar_problem(&f, &json!("abcd")).is_none());
        let p = scalar_problem(&f, &json!("abcde")).unwrap();
        assert!(p.contains("\"title\"") && p.contains("max_length 4"), "{p}");
        let i8f = FieldSchema {
            name: "n".into(),
            data_type: DataType::Int8 as i32,
            ..FieldSchema::default()
        };
        assert!(scalar_problem(&i8f, &json!(200)).is_some());
        assert!(scalar_problem(&i8f, &json!(-128)).is_none());
    }

    #[test]
    fn field_names_follow_milvus_rules() {
        assert!(valid_field_name("vec_1"));
        assert!(valid_field_name("_x"));
        assert!(!valid_field_name("1x"));
        assert!(!valid_field_name("a-b"));
        assert!(!valid_field_name(""));
    }

    #[test]
    fn string_keys_are_quoted_in_filters() {
        assert_eq!(pk_literal(&json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(pk_literal(&json!(42)), "42");
    }
}
