//! `weaviate://HOST:PORT[/CLASS]`: Weaviate over REST and GraphQL (no gRPC).
//! API key from `WEAVIATE_API_KEY` (sent as `Authorization: Bearer`).
//!
//! Export walks `GET /v1/objects` with the `after` cursor (exclusive, UUID
//! order), one pass per tenant of a multi-tenant class; never offset paging,
//! which stops at 10,000. Import creates the class (Weaviate → Weaviate: the
//! same class definition; otherwise vectors, metric, HNSW settings and
//! properties typed from the snapshot's metadata schema), creates tenants from
//! namespaces, then `POST /v1/batch/objects` in batches bounded by count and
//! bytes, checking every object's result. The id, document, URI and renamed
//! key rules are in `spec/MAPPING.md`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::mapping::{
    Arrays, ID_NAMESPACE, IdForm, IndexCounterparts, Integers, MetadataRules, unkept_settings,
};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    StoredValues, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use super::http::{HttpClient, Response, Vendor, decode_json, segment};
use super::json_cursor::JsonCursor;
use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "WEAVIATE_API_KEY";
const DEFAULT_PORT: u16 = 8080;
/// Objects per batch request.
const MAX_BATCH_OBJECTS: usize = 500;
/// Bytes per batch request (Weaviate sets no small limit; this keeps
/// requests quick to retry).
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Property holding an id Weaviate could not take as it was.
pub const ORIGINAL_ID_PROPERTY: &str = "vecport_id";
/// Property holding a record's URI.
pub const URI_PROPERTY: &str = "vecport_uri";
/// Default property holding a record's document.
pub const DOCUMENT_PROPERTY: &str = "document";
/// Tenant holding the default namespace's records in a multi-tenant class.
pub const DEFAULT_TENANT: &str = "vecport_default";
/// Property descriptions marking what vecport's mapping wrote.
const ID_MARK: &str = "vecport: original id";
const URI_MARK: &str = "vecport: uri";
const DOCUMENT_MARK: &str = "vecport: document";
const KEY_MARK: &str = "vecport: metadata key ";

/// The Weaviate connector.
#[derive(Debug)]
pub struct Weaviate {
    http: HttpClient,
    class: Option<String>,
    /// `?document_property=`: the text property that holds documents.
    document_property: Option<String>,
    /// `?timestamps=true`: export each object's creation and update times.
    timestamps: bool,
}

/// Metadata keys carrying an object's creation and update times (Unix
/// milliseconds) when exported with `?timestamps=true`.
pub const CREATED_KEY: &str = "_creationTimeUnix";
/// See [`CREATED_KEY`].
pub const UPDATED_KEY: &str = "_lastUpdateTimeUnix";

mod read;
mod schema;
mod wire;
mod write;

#[cfg(test)]
use schema::data_type;
use schema::{MappedProperties, class_body, fields_of};
#[cfg(test)]
use write::batch_failures;

/// Weaviate's HTTP dialect.
#[derive(Debug)]
struct WeaviateApi;

impl Vendor for WeaviateApi {
    fn name(&self) -> &'static str {
        "weaviate"
    }

    fn credential_hint(&self) -> String {
        format!("the API key in {API_KEY_ENV}")
    }

    fn error_message(&self, resp: &Response) -> String {
        match serde_json::from_slice::<wire::ErrorBody>(&resp.body) {
            Ok(body) if !body.error.is_empty() => body
                .error
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            _ => resp.text_excerpt(),
        }
    }

    /// A batch answered 200 in which objects failed for a passing reason.
    fn transient_failures(&self, body: &[u8]) -> usize {
        serde_json::from_slice::<Vec<wire::BatchObject>>(body)
            .map(|objects| objects.iter().filter(|o| o.failed_transiently()).count())
            .unwrap_or(0)
    }
}

/// `name` with every character outside `[_0-9A-Za-z]` replaced by `_`.
fn word_chars(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '_' || c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `name` is a Weaviate class name: `[A-Z][_0-9A-Za-z]{0,254}`.
pub fn valid_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() <= 255
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The class a collection name becomes (`spec/MAPPING.md`): characters
/// outside `[_0-9A-Za-z]` become `_`, the first letter is capitalised, and a
/// name not starting with a letter gets a `C` in front.
pub fn class_name(name: &str) -> String {
    let mut out = word_chars(name);
    match out.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => {
            out.replace_range(0..1, &c.to_ascii_uppercase().to_string());
        }
        _ => out.insert(0, 'C'),
    }
    out.truncate(255);
    out
}

/// The class a collection name refers to: itself when it is a class name,
/// else [`class_name`] of it.
pub fn resolve_class(name: &str) -> String {
    if valid_class_name(name) {
        name.to_owned()
    } else {
        class_name(name)
    }
}

/// Whether `name` is a property name Weaviate keeps as it is:
/// `[_a-z][_0-9A-Za-z]{0,230}` (Weaviate lower-cases a first capital).
fn valid_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_lowercase())
        && name.len() <= 231
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The property a metadata key becomes when Weaviate cannot take it as it
/// is: characters outside `[_0-9A-Za-z]` become `_`, a first capital is
/// lower-cased, a name not starting with a letter or `_` gets `_` in front,
/// and names longer than 231 characters are cut.
fn property_name(key: &str) -> Option<String> {
    if valid_property_name(key) {
        return None;
    }
    let mut out = word_chars(key);
    match out.chars().next() {
        Some(c) if c.is_ascii_uppercase() => {
            out.replace_range(0..1, &c.to_ascii_lowercase().to_string());
        }
        Some(c) if c == '_' || c.is_ascii_lowercase() => {}
        _ => out.insert(0, '_'),
    }
    out.truncate(231);
    Some(out)
}

/// The name a vector field gets: `[_A-Za-z][_0-9A-Za-z]{0,230}`, other
/// characters becoming `_`; the unnamed field, beside named ones, is
/// `default`.
fn vector_name(name: &str) -> String {
    if name.is_empty() {
        return "default".to_owned();
    }
    let mut out = word_chars(name);
    if !out.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) {
        out.insert(0, '_');
    }
    out.truncate(231);
    out
}

/// Keys Weaviate reserves, and the properties vecport's mapping writes.
fn reserved_key(key: &str) -> Option<String> {
    match key {
        "id" | "_id" | "_additional" => Some("is reserved by Weaviate".into()),
        CREATED_KEY | UPDATED_KEY => Some(
            "is a time Weaviate sets itself and cannot be written (--metadata drop leaves it out)"
                .into(),
        ),
        ORIGINAL_ID_PROPERTY | URI_PROPERTY => {
            Some("is reserved by vecport's weaviate mapping".into())
        }
        _ => None,
    }
}

/// Weaviate properties: scalars, nested objects, homogeneous arrays and
/// arrays of objects; no nulls (Weaviate drops them); numbers, integers
/// included, are float64s.
const METADATA_RULES: MetadataRules = MetadataRules {
    target: "weaviate",
    objects: true,
    nulls: false,
    arrays: Arrays::Typed,
    empty_arrays: true,
    integers: Integers::Float64,
    numbers: crate::mapping::Numbers::Float64,
    key: reserved_key,
    rename: property_name,
};

/// The object id for a record, and the original to keep in a property:
/// UUIDs go as they are; an unsigned integer `n` becomes the UUID whose
/// 128-bit value is `n`; a string becomes itself when it is a lower-case
/// hyphenated UUID, else its UUIDv5. Integers and strings keep the original.
pub fn object_id(id: &RecordId) -> (uuid::Uuid, Option<String>) {
    match id {
        RecordId::Uuid(u) => (*u, None),
        RecordId::Uint(n) => (uuid::Uuid::from_u128(u128::from(*n)), Some(n.to_string())),
        RecordId::String(s) => {
            let u = match uuid::Uuid::try_parse(s) {
                Ok(u) if u.hyphenated().to_string() == *s => u,
                _ => uuid::Uuid::new_v5(&ID_NAMESPACE, s.as_bytes()),
            };
            (u, Some(s.clone()))
        }
    }
}

/// The record id back from an object id and the kept original.
fn record_id(uuid: uuid::Uuid, original: Option<String>) -> RecordId {
    match original {
        Some(o)
            if o.parse::<u64>()
                .is_ok_and(|n| uuid.as_u128() == u128::from(n)) =>
        {
            RecordId::Uint(uuid.as_u128() as u64)
        }
        Some(o) => RecordId::String(o),
        None => RecordId::Uuid(uuid),
    }
}

fn metric_of(distance: &str) -> Option<Metric> {
    match distance {
        "cosine" => Some(Metric::Cosine),
        "dot" => Some(Metric::Dot),
        "l2-squared" => Some(Metric::L2),
        "manhattan" => Some(Metric::Manhattan),
        "hamming" => Some(Metric::Hamming),
        _ => None,
    }
}

fn distance_of(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::Dot => "dot",
        Metric::L2 => "l2-squared",
        Metric::Manhattan => "manhattan",
        Metric::Hamming => "hamming",
    }
}

impl Weaviate {
    /// Opens a `weaviate://` URL.
    pub fn new(url: &ConnectorUrl, options: &super::ConnectOptions) -> Result<Weaviate> {
        let timestamps = match url.param("timestamps") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::Usage(format!(
                    "`timestamps={other}`: weaviate takes timestamps=true or false"
                )));
            }
        };
        let base = url.http_base(DEFAULT_PORT)?;
        let bearer =
            Secret::from_env(API_KEY_ENV).map(|k| Secret::new(format!("Bearer {}", k.expose())));
        let creds: Vec<(&'static str, &Secret)> =
            bearer.iter().map(|k| ("authorization", k)).collect();
        let document_property = url.param("document_property").map(str::to_owned);
        if let Some(p) = &document_property
            && !valid_property_name(p)
        {
            return Err(Error::Usage(format!(
                "`document_property={p}` is not a Weaviate property name ([_a-z][_0-9A-Za-z]*)"
            )));
        }
        Ok(Weaviate {
            http: HttpClient::new(&WeaviateApi, &base, &creds, &[], options)?,
            class: url.collection().map(str::to_owned),
            document_property,
            timestamps,
        })
    }

    /// Sends a request and decodes the JSON answer of a 2xx status; any
    /// other, 404 included, is an error. Reads, schema calls that fail
    /// cleanly when repeated, and batch upserts (idempotent by UUID) are all
    /// safe to retry.
    async fn call<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        operation: &str,
    ) -> Result<T> {
        self.http.call(method, path, body, operation).await
    }

    /// [`Weaviate::call`] of something that may not exist: `None` on 404.
    async fn call_if_found(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        operation: &str,
    ) -> Result<Option<Value>> {
        let resp = self
            .http
            .send(
                method,
                path,
                body.map(|b| b.to_string().into_bytes()),
                operation,
                true,
            )
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status.is_success() {
            return Err(self.http.fail(operation, &resp));
        }
        if resp.body.is_empty() {
            return Ok(Some(Value::Null));
        }
        decode_json(resp.body, self.http.base(), operation)
            .await
            .map(Some)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("class `{name}` on {}", self.http.base()),
            hint: Some(super::ls_hint("weaviate", self.http.base(), "classes")),
        }
    }

    async fn class(&self, name: &str) -> Result<Option<Value>> {
        self.call_if_found(
            Method::GET,
            &format!("/v1/schema/{}", segment(name)),
            None,
            "get class",
        )
        .await
    }

    /// Tenant names of a multi-tenant class, sorted; `[None]` for another class.
    async fn tenants(&self, class: &Value) -> Result<Vec<Option<String>>> {
        if class["multiTenancyConfig"]["enabled"].as_bool() != Some(true) {
            return Ok(vec![None]);
        }
        let name = class["class"].as_str().unwrap_or_default();
        let list: Vec<wire::Tenant> = self
            .call(
                Method::GET,
                &format!("/v1/schema/{}/tenants", segment(name)),
                None,
                "list tenants",
            )
            .await?;
        let mut names: Vec<String> = list.into_iter().map(|t| t.name).collect();
        names.sort();
        Ok(names.into_iter().map(Some).collect())
    }

    /// The `data` of a GraphQL query's answer.
    async fn graphql(&self, query: String, operation: &str) -> Result<Value> {
        let answer: wire::GraphQl = self
            .call(
                Method::POST,
                "/v1/graphql",
                Some(json!({"query": query})),
                operation,
            )
            .await?;
        if let Some(errors) = answer.errors.filter(|e| !e.is_empty()) {
            let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            return Err(Error::Server {
                endpoint: self.http.base().to_owned(),
                operation: operation.to_owned(),
                status: 200,
                message: messages.join("; "),
            });
        }
        answer.data.ok_or_else(|| Error::Protocol {
            endpoint: self.http.base().to_owned(),
            operation: operation.to_owned(),
            message: "the answer has neither `data` nor `errors`".into(),
        })
    }

    /// Objects in a class (one tenant, or the class), with GraphQL `Aggregate`.
    async fn count_in(&self, class: &str, tenant: Option<&str>) -> Result<u64> {
        let args = tenant
            .map(|t| format!("(tenant: {})", json!(t)))
            .unwrap_or_default();
        let answer = self
            .graphql(
                format!("{{ Aggregate {{ {class}{args} {{ meta {{ count }} }} }} }}"),
                "count",
            )
            .await?;
        answer["Aggregate"][class][0]["meta"]["count"]
            .as_u64()
            .ok_or_else(|| Error::Protocol {
                endpoint: self.http.base().to_owned(),
                operation: "count".into(),
                message: format!("no count in {answer}"),
            })
    }

    async fn count(&self, class: &Value) -> Result<u64> {
        let name = class["class"].as_str().unwrap_or_default();
        let mut total = 0;
        for tenant in self.tenants(class).await? {
            total += self.count_in(name, tenant.as_deref()).await?;
        }
        Ok(total)
    }

    fn objects_path(
        class: &str,
        limit: usize,
        after: Option<&str>,
        tenant: Option<&str>,
    ) -> String {
        let mut path = format!(
            "/v1/objects?class={}&limit={limit}&include=vector",
            segment(class)
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={}", segment(a)));
        }
        if let Some(t) = tenant {
            path.push_str(&format!("&tenant={}", segment(t)));
        }
        path
    }

    /// Dimensions of each vector, from the first object that has them.
    async fn dimensions(&self, class: &Value) -> Result<BTreeMap<String, u32>> {
        let name = class["class"].as_str().unwrap_or_default();
        let mut dims = BTreeMap::new();
        for tenant in self.tenants(class).await? {
            let path = Weaviate::objects_path(name, 1, None, tenant.as_deref());
            let page: Value = self.call(Method::GET, &path, None, "read objects").await?;
            let Some(o) = page["objects"].get(0) else {
                continue;
            };
            let width = |v: &Value| match v.as_array()?.first()? {
                Value::Array(row) => Some(row.len() as u32),
                _ => v.as_array().map(|a| a.len() as u32),
            };
            if let Some(d) = width(&o["vector"]).filter(|d| *d > 0) {
                dims.insert(String::new(), d);
            }
            for (n, v) in o["vectors"].as_object().into_iter().flatten() {
                if let Some(d) = width(v).filter(|d| *d > 0) {
                    dims.insert(n.clone(), d);
                }
            }
            break;
        }
        Ok(dims)
    }
}

impl Endpoint for Weaviate {
    fn name(&self) -> &'static str {
        "weaviate"
    }

    fn endpoint(&self) -> String {
        self.http.base().to_owned()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.class.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_weaviate_rules() {
        assert!(valid_class_name("Docs_2"));
        for bad in ["docs", "_Docs", "Do-cs", ""] {
            assert!(!valid_class_name(bad), "{bad}");
        }
        assert_eq!(class_name("my-docs"), "My_docs");
        assert_eq!(class_name("2024 docs"), "C2024_docs");
        assert_eq!(class_name("βeta"), "C_eta");
        assert_eq!(property_name("title"), None);
        assert_eq!(property_name("_x"), None);
        assert_eq!(property_name("Title").as_deref(), Some("title"));
        assert_eq!(property_name("my-key").as_deref(), Some("my_key"));
        assert_eq!(property_name("1st").as_deref(), Some("_1st"));
        assert_eq!(property_name("").as_deref(), Some("_"));
        assert!(reserved_key("id").is_some() && reserved_key(ORIGINAL_ID_PROPERTY).is_some());
        assert_eq!(vector_name("Image"), "Image");
        assert_eq!(vector_name("my vec"), "my_vec");
        assert_eq!(vector_name("2d"), "_2d");
        assert_eq!(vector_name(""), "default");
    }

    #[test]
    fn ids_map_to_uuids_and_back() {
        let u = uuid::Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        for id in [
            RecordId::Uuid(u),
            RecordId::Uint(7),
            RecordId::Uint(u64::MAX),
            RecordId::String("doc-1".into()),
            RecordId::String("7".into()),
            RecordId::String(u.to_string().to_uppercase()),
            RecordId::String(u.to_string()),
        ] {
            let (uuid, original) = object_id(&id);
            assert_eq!(record_id(uuid, original), id, "{id:?}");
        }
        assert_eq!(object_id(&RecordId::Uint(7)).0.as_u128(), 7);
        assert_ne!(
            object_id(&RecordId::String("7".into())).0,
            object_id(&RecordId::Uint(7)).0
        );
    }

    #[test]
    fn fields_from_default_and_named_vectors() {
        let class = json!({
            "class": "Doc",
            "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "l2-squared", "efConstruction": 64, "maxConnections": 24, "ef": -1, "pq": {"enabled": false}}
        });
        let f = fields_of(&class, &BTreeMap::from([(String::new(), 3)]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].metric, Some(Metric::L2));
        assert_eq!(f[0].dimension, Some(3));
        let ix = f[0].index.as_ref().unwrap();
        assert_eq!(
            (ix.m, ix.ef_construction, ix.ef_search),
            (Some(24), Some(64), None)
        );
        assert_eq!(ix.quantization, None);
        let named = json!({"class": "Doc", "vectorConfig": {
            "text": {"vectorIndexType": "hnsw", "vectorIndexConfig": {"distance": "dot", "bq": {"enabled": true}}},
            "image": {"vectorIndexType": "flat", "vectorIndexConfig": {}}
        }});
        let f = fields_of(&named, &BTreeMap::new());
        let names: Vec<_> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["text", "image"]);
        assert_eq!(f[0].metric, Some(Metric::Dot));
        assert!(f[0].index.as_ref().unwrap().quantization.is_some());
        assert_eq!(f[1].metric, Some(Metric::Cosine), "cosine is the default");
        assert_eq!(f[1].index.as_ref().unwrap().kind, "flat");
    }

    #[test]
    fn property_types_from_the_metadata_schema() {
        let t =
            |types: &[&str]| data_type(&types.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(t(&["string", "null"]), Some("text"));
        assert_eq!(t(&["int"]), Some("int"));
        assert_eq!(t(&["int", "float"]), Some("number"));
        assert_eq!(t(&["bool"]), Some("boolean"));
        assert_eq!(t(&["array<string>", "array<>"]), Some("text[]"));
        assert_eq!(t(&["array<float|int>"]), Some("number[]"));
        assert_eq!(t(&["string", "int"]), None);
        assert_eq!(t(&["object"]), None);
        assert_eq!(t(&["array<>"]), None);
    }

    #[test]
    fn failed_objects_are_found_in_a_200_answer() {
        let answer: Vec<wire::BatchObject> = serde_json::from_value(json!([
            {"id": "a", "result": {}},
            {"id": "b", "result": {"errors": {"error": [{"message": "vector lengths don't match"}]}}}
        ]))
        .unwrap();
        assert_eq!(
            batch_failures(&answer),
            [("b".to_owned(), "vector lengths don't match".to_owned())]
        );
    }
}
