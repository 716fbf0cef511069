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
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
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

use super::http::{HttpClient, Response, decode_json};
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

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
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

/// A vector field from an index type and its `vectorIndexConfig`.
fn field_of(name: &str, index_type: &str, config: &Value, dimension: Option<u32>) -> VectorField {
    let mut extra = config.as_object().cloned().unwrap_or_default();
    let metric = extra
        .remove("distance")
        .and_then(|d| d.as_str().and_then(metric_of))
        .or(Some(Metric::Cosine));
    let multi = config["multivector"]["enabled"].as_bool() == Some(true);
    let take = |m: &mut Map<String, Value>, k: &str| m.remove(k).and_then(|v| v.as_u64());
    let m = take(&mut extra, "maxConnections");
    let ef_construction = take(&mut extra, "efConstruction");
    let ef_search = extra.get("ef").and_then(Value::as_u64);
    let quantization = ["pq", "bq", "sq", "rq"]
        .iter()
        .find(|q| config[**q]["enabled"].as_bool() == Some(true))
        .map(|q| json!({ *q: config[*q] }));
    VectorField {
        name: name.to_owned(),
        kind: if multi {
            VectorKind::Multi
        } else {
            VectorKind::Dense
        },
        dimension,
        metric,
        index: Some(IndexSettings {
            kind: index_type.to_owned(),
            m,
            ef_construction,
            ef_search,
            quantization,
            extra,
            ..IndexSettings::default()
        }),
        stored_values: StoredValues::Exact,
        source_datatype: None,
    }
}

/// The vector fields of a class: its named vectors (`vectorConfig`), else its
/// one default vector (field `""`).
fn fields_of(class: &Value, dims: &BTreeMap<String, u32>) -> Vec<VectorField> {
    if let Some(named) = class["vectorConfig"].as_object().filter(|m| !m.is_empty()) {
        return named
            .iter()
            .map(|(name, c)| {
                field_of(
                    name,
                    c["vectorIndexType"].as_str().unwrap_or("hnsw"),
                    &c["vectorIndexConfig"],
                    dims.get(name).copied(),
                )
            })
            .collect();
    }
    vec![field_of(
        "",
        class["vectorIndexType"].as_str().unwrap_or("hnsw"),
        &class["vectorIndexConfig"],
        dims.get("").copied(),
    )]
}

/// Which properties vecport's mapping wrote, from the class's property
/// descriptions (and `?document_property=`).
#[derive(Debug, Clone, Default)]
struct Lift {
    id: Option<String>,
    document: Option<String>,
    uri: Option<String>,
    /// Property → original metadata key.
    renamed: BTreeMap<String, String>,
    /// `number` and `number[]` properties: Weaviate writes integral values
    /// of them without a decimal point, which would read back as integers.
    numbers: HashSet<String>,
    /// Creation and update times go into the metadata.
    timestamps: bool,
}

impl Lift {
    fn of(class: &Value, document_property: Option<&str>) -> Lift {
        let mut lift = Lift {
            document: document_property.map(str::to_owned),
            ..Lift::default()
        };
        for p in class["properties"].as_array().into_iter().flatten() {
            let Some(name) = p["name"].as_str() else {
                continue;
            };
            if matches!(p["dataType"][0].as_str(), Some("number" | "number[]")) {
                lift.numbers.insert(name.to_owned());
            }
            let Some(desc) = p["description"].as_str() else {
                continue;
            };
            match desc {
                ID_MARK => lift.id = Some(name.to_owned()),
                URI_MARK => lift.uri = Some(name.to_owned()),
                DOCUMENT_MARK if lift.document.is_none() => lift.document = Some(name.to_owned()),
                d => {
                    if let Some(original) = d.strip_prefix(KEY_MARK) {
                        lift.renamed.insert(name.to_owned(), original.to_owned());
                    }
                }
            }
        }
        lift
    }
}

/// An object of a page of `GET /v1/objects`, its vectors already in the
/// collection's field slots.
struct WireObject {
    id: String,
    properties: Option<Map<String, Value>>,
    /// One slot per field of the collection, in its order.
    vectors: Vec<Option<Vector>>,
    created: Option<Value>,
    updated: Option<Value>,
}

/// Decodes a page (`{"objects": […], …}`) in one pass: vectors go straight
/// into `f32`s ([`JsonCursor`]), ids and properties through serde_json.
/// Vectors of fields the collection does not declare are skipped.
fn decode_objects(
    body: &[u8],
    fields: &[VectorField],
) -> std::result::Result<Vec<WireObject>, String> {
    let mut c = JsonCursor::new(body);
    let mut objects = Vec::new();
    c.object(|c, key| match &*key {
        "objects" if c.null() => Ok(()),
        "objects" => c
            .array(|c, i| {
                objects.push(decode_object(c, i, fields)?);
                Ok(())
            })
            .map(drop),
        _ => c.skip(),
    })?;
    c.end()?;
    Ok(objects)
}

fn decode_object(
    c: &mut JsonCursor<'_>,
    index: usize,
    fields: &[VectorField],
) -> std::result::Result<WireObject, String> {
    let mut id: Option<String> = None;
    let (mut properties, mut created, mut updated) = (None, None, None);
    let mut vectors: Vec<Option<Vector>> = vec![None; fields.len()];
    let slot = |name: &str| fields.iter().position(|f| f.name == name);
    c.object(|c, key| {
        let read = match &*key {
            "id" => c.value().map(|v| id = Some(v)),
            "properties" => c.value().map(|v| properties = v),
            "creationTimeUnix" => c.value().map(|v| created = v),
            "lastUpdateTimeUnix" => c.value().map(|v| updated = v),
            "vector" => match slot("") {
                Some(i) => vector_of(c, &fields[i]).map(|v| vectors[i] = v),
                None => c.skip(),
            },
            "vectors" if c.null() => Ok(()),
            "vectors" => c.object(|c, name| match slot(&name) {
                Some(i) => vector_of(c, &fields[i])
                    .map(|v| vectors[i] = v)
                    .map_err(|e| format!("vector `{name}`: {e}")),
                None => c.skip(),
            }),
            _ => c.skip(),
        };
        read.map_err(|e| match &id {
            Some(id) => format!("object {id}: {e}"),
            None => format!("object #{index} of the page: {e}"),
        })
    })?;
    Ok(WireObject {
        id: id.ok_or_else(|| format!("object #{index} of the page has no id"))?,
        properties,
        vectors,
        created,
        updated,
    })
}

/// A vector for `field`: a flat array, or an array of arrays for a
/// multivector field; `None` when null or empty.
fn vector_of(
    c: &mut JsonCursor<'_>,
    field: &VectorField,
) -> std::result::Result<Option<Vector>, String> {
    if c.null() {
        return Ok(None);
    }
    // Weaviate allows at most 65,536 dimensions; reserve no more.
    let dimension = field.dimension.map_or(0, |d| (d as usize).min(1 << 16));
    Ok(match field.kind {
        VectorKind::Multi => Some(c.f32_rows(dimension)?)
            .filter(|rows| !rows.is_empty())
            .map(Vector::Multi),
        _ => Some(c.f32_array(dimension)?)
            .filter(|v| !v.is_empty())
            .map(Vector::Dense),
    })
}

/// Integers of a `number` property as the floats they are.
fn as_floats(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_f64() => {
            if let Some(f) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = f;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_floats),
        _ => {}
    }
}

/// An object as a neutral record.
fn record_of(
    o: WireObject,
    lift: &Lift,
    tenant: Option<&str>,
) -> std::result::Result<Record, String> {
    let uuid = uuid::Uuid::try_parse(&o.id).map_err(|_| format!("id {:?} is not a UUID", o.id))?;
    let mut props = o.properties.unwrap_or_default();
    let mut take_text = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| props.shift_remove(n))
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let original = take_text(&lift.id);
    let document = take_text(&lift.document);
    let uri = take_text(&lift.uri);
    let mut metadata: Metadata = props
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, mut v)| {
            if lift.numbers.contains(&k) {
                as_floats(&mut v);
            }
            (lift.renamed.get(&k).cloned().unwrap_or(k), v)
        })
        .collect();
    if lift.timestamps {
        // Unix milliseconds, an integer (some servers send it as a string).
        let millis = |v: Option<Value>| match v {
            Some(Value::String(s)) => s.parse::<i64>().ok().map(Value::from),
            other => other.filter(Value::is_number),
        };
        for (key, v) in [
            (CREATED_KEY, millis(o.created)),
            (UPDATED_KEY, millis(o.updated)),
        ] {
            if let Some(v) = v {
                metadata.insert(key.to_owned(), v);
            }
        }
    }
    Ok(Record {
        id: record_id(uuid, original),
        namespace: tenant.filter(|t| *t != DEFAULT_TENANT).map(str::to_owned),
        vectors: o.vectors,
        metadata: (!metadata.is_empty()).then_some(metadata),
        document,
        uri,
    })
}

impl Weaviate {
    /// Opens a `weaviate://` URL.
    pub fn new(url: &ConnectorUrl) -> Result<Weaviate> {
        url.only_params(&["document_property", "timestamps"])?;
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
            http: HttpClient::new(&base, &creds)?,
            class: url.collection().map(str::to_owned),
            document_property,
            timestamps,
        })
    }

    fn error_message(resp: &Response) -> String {
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let messages: Vec<&str> = v["error"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect();
        if messages.is_empty() {
            resp.text_excerpt()
        } else {
            messages.join("; ")
        }
    }

    fn fail(&self, operation: &str, resp: &Response) -> Error {
        self.http.fail(
            "weaviate",
            operation,
            resp,
            Weaviate::error_message(resp),
            &format!("the API key in {API_KEY_ENV}"),
        )
    }

    /// Sends a request and decodes the JSON answer of a 2xx status; `None`
    /// on 404.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        operation: &str,
    ) -> Result<Option<Value>> {
        // Reads, schema calls that fail cleanly when repeated, and batch
        // upserts (idempotent by UUID) are all safe to retry.
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
            return Err(self.fail(operation, &resp));
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
        self.call(
            Method::GET,
            &format!("/v1/schema/{}", seg(name)),
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
        let list = self
            .call(
                Method::GET,
                &format!("/v1/schema/{}/tenants", seg(name)),
                None,
                "list tenants",
            )
            .await?
            .unwrap_or(Value::Null);
        let mut names: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names.into_iter().map(Some).collect())
    }

    async fn graphql(&self, query: String, operation: &str) -> Result<Value> {
        let answer = self
            .call(
                Method::POST,
                "/v1/graphql",
                Some(json!({"query": query})),
                operation,
            )
            .await?
            .unwrap_or(Value::Null);
        if let Some(errors) = answer["errors"].as_array().filter(|e| !e.is_empty()) {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or("?").to_owned())
                .collect();
            return Err(Error::Server {
                endpoint: self.http.base().to_owned(),
                operation: operation.to_owned(),
                status: 200,
                message: messages.join("; "),
            });
        }
        Ok(answer)
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
        answer["data"]["Aggregate"][class][0]["meta"]["count"]
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
            seg(class)
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={}", seg(a)));
        }
        if let Some(t) = tenant {
            path.push_str(&format!("&tenant={}", seg(t)));
        }
        path
    }

    /// Dimensions of each vector, from the first object that has them.
    async fn dimensions(&self, class: &Value) -> Result<BTreeMap<String, u32>> {
        let name = class["class"].as_str().unwrap_or_default();
        let mut dims = BTreeMap::new();
        for tenant in self.tenants(class).await? {
            let path = Weaviate::objects_path(name, 1, None, tenant.as_deref());
            let page = self
                .call(Method::GET, &path, None, "read objects")
                .await?
                .unwrap_or(Value::Null);
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

#[async_trait]
impl Source for Weaviate {
    async fn describe(&self) -> Result<SourceDescription> {
        let meta = self
            .call(Method::GET, "/v1/meta", None, "meta")
            .await?
            .unwrap_or(Value::Null);
        Ok(SourceDescription {
            server_version: meta["version"].as_str().map(str::to_owned),
            location: Map::new(),
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let schema = self
            .call(Method::GET, "/v1/schema", None, "get schema")
            .await?
            .unwrap_or(Value::Null);
        let mut out = Vec::new();
        for class in schema["classes"].as_array().into_iter().flatten() {
            let name = class["class"].as_str().unwrap_or_default().to_owned();
            let dims = self.dimensions(class).await?;
            let fields = fields_of(class, &dims);
            out.push(CollectionSummary {
                dimension: fields.first().and_then(|f| f.dimension),
                metric: fields.first().and_then(|f| f.metric),
                count: Some(self.count(class).await?),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let class = self
            .class(&resolve_class(name))
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let name = class["class"].as_str().unwrap_or(name);
        let dims = self.dimensions(&class).await?;
        let tenants = self.tenants(&class).await?;
        let count = self.count(&class).await?;
        let mut raw = json!({"class": class});
        if tenants.iter().any(Option::is_some) {
            raw["tenants"] = json!(tenants);
        }
        Ok(CollectionSpec {
            name: name.to_owned(),
            id_kind: None,
            vectors: fields_of(&class, &dims),
            collection_metadata: class["description"]
                .as_str()
                .map(|d| Map::from_iter([("description".to_owned(), json!(d))])),
            raw_config: raw,
            count_hint: Some(count),
            notes: Vec::new(),
            content: None,
        })
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let class = self
            .class(&spec.name)
            .await?
            .ok_or_else(|| self.not_found(&spec.name))?;
        let lift = Lift::of(&class, None);
        let mut near = format!("vector: {}", json!(vector));
        if !field.is_empty() {
            near.push_str(&format!(", targetVectors: [{}]", json!(field)));
        }
        let multi = class["multiTenancyConfig"]["enabled"].as_bool() == Some(true);
        let tenant = match (multi, namespace) {
            (true, ns) => format!(", tenant: {}", json!(ns.unwrap_or(DEFAULT_TENANT))),
            (false, _) => String::new(),
        };
        let original = lift.id.clone().unwrap_or_default();
        let query = format!(
            "{{ Get {{ {}(nearVector: {{{near}}}, limit: {k}{tenant}) {{ {original} _additional {{ id }} }} }} }}",
            spec.name
        );
        let answer = self.graphql(query, "search").await?;
        answer["data"]["Get"][spec.name.as_str()]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let uuid = o["_additional"]["id"]
                    .as_str()
                    .and_then(|s| uuid::Uuid::try_parse(s).ok())
                    .ok_or_else(|| Error::Protocol {
                        endpoint: self.http.base().to_owned(),
                        operation: "search".into(),
                        message: format!("no UUID in {o}"),
                    })?;
                let kept = o
                    .get(original.as_str())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(record_id(uuid, kept))
            })
            .collect()
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let limit = options.page_size.max(1);
        // The cursor: `{"tenant": name|null, "after": uuid|null}`.
        let start = options.start.clone();
        stream::once(async move {
            let class = match self.class(&spec.name).await {
                Ok(Some(c)) => c,
                Ok(None) => return stream::iter(vec![Err(self.not_found(&spec.name))]).boxed(),
                Err(e) => return stream::iter(vec![Err(e)]).boxed(),
            };
            let tenants = match self.tenants(&class).await {
                Ok(t) => t,
                Err(e) => return stream::iter(vec![Err(e)]).boxed(),
            };
            let lift = Arc::new(Lift {
                timestamps: self.timestamps,
                ..Lift::of(&class, self.document_property.as_deref())
            });
            let (first_tenant, first_after) = match &start {
                Some(c) => (
                    c["tenant"].as_str().map(str::to_owned),
                    c["after"].as_str().map(str::to_owned),
                ),
                None => (None, None),
            };
            let skip = tenants
                .iter()
                .position(|t| *t == first_tenant)
                .filter(|_| start.is_some())
                .unwrap_or(0);
            // Each tenant's last page points at the next tenant, so that a
            // scan can resume from any page's cursor.
            let following: Vec<Option<Option<String>>> = tenants
                .iter()
                .skip(1)
                .cloned()
                .map(Some)
                .chain([None])
                .collect();
            stream::iter(tenants.into_iter().zip(following).enumerate().skip(skip))
                .map(move |(i, (tenant, following))| {
                    let after = if i == skip { first_after.clone() } else { None };
                    self.scan_tenant(spec, tenant, following, after, limit, lift.clone())
                })
                .flatten()
                .boxed()
        })
        .flatten()
        .boxed()
    }
}

impl Weaviate {
    /// One cursor pass over one tenant (or a class without tenants).
    fn scan_tenant<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        tenant: Option<String>,
        following: Option<Option<String>>,
        after: Option<String>,
        limit: usize,
        lift: Arc<Lift>,
    ) -> BoxStream<'a, Result<Page>> {
        stream::unfold(Some(after), move |state| {
            let tenant = tenant.clone();
            let following = following.clone();
            let lift = lift.clone();
            async move {
                let after = state?;
                let path =
                    Weaviate::objects_path(&spec.name, limit, after.as_deref(), tenant.as_deref());
                let resp = match self
                    .http
                    .send(Method::GET, &path, None, "read objects", true)
                    .await
                {
                    Ok(r) if r.status.is_success() => r,
                    Ok(r) => return Some((Err(self.fail("read objects", &r)), None)),
                    Err(e) => return Some((Err(e), None)),
                };
                let fields = spec.vectors.clone();
                let t = tenant.clone();
                let decoded = tokio::task::spawn_blocking(move || {
                    let objects = decode_objects(&resp.body, &fields)?;
                    let last = objects.last().map(|o| o.id.clone());
                    let n = objects.len();
                    let records = objects
                        .into_iter()
                        .map(|o| record_of(o, &lift, t.as_deref()))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Ok::<_, String>((records, last, n))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                let (records, last, n) = match decoded {
                    Ok(d) => d,
                    Err(message) => {
                        let e = Error::Protocol {
                            endpoint: self.http.base().to_owned(),
                            operation: "read objects".into(),
                            message,
                        };
                        return Some((Err(e), None));
                    }
                };
                // A page shorter than the limit is the last one.
                let next_after = last.filter(|_| n == limit);
                let next = match (&next_after, &following) {
                    (Some(a), _) => Some(json!({"tenant": tenant, "after": a})),
                    (None, Some(t)) => Some(json!({"tenant": t, "after": null})),
                    (None, None) => None,
                };
                Some((Ok(Page { records, next }), next_after.map(Some)))
            }
        })
        .boxed()
    }
}

/// The Weaviate data type for metadata values of the types seen, when one
/// type fits them all.
fn data_type(types: &[String]) -> Option<&'static str> {
    let seen: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "null")
        .collect();
    let all = |ok: &[&str]| !seen.is_empty() && seen.iter().all(|t| ok.contains(t));
    if all(&["string"]) {
        Some("text")
    } else if all(&["int"]) {
        Some("int")
    } else if all(&["int", "float"]) {
        Some("number")
    } else if all(&["bool"]) {
        Some("boolean")
    } else if all(&["array<string>", "array<>"]) && seen.contains(&"array<string>") {
        Some("text[]")
    } else if all(&["array<int>", "array<>"]) && seen.contains(&"array<int>") {
        Some("int[]")
    } else if all(&["array<float>", "array<float|int>", "array<int>", "array<>"])
        && seen.iter().any(|t| t.contains("float"))
    {
        Some("number[]")
    } else if all(&["array<bool>", "array<>"]) && seen.contains(&"array<bool>") {
        Some("boolean[]")
    } else {
        None
    }
}

/// The class definition for `spec` from another database.
fn class_body(class: &str, spec: &CollectionSpec, document_property: &str) -> Value {
    let config = |f: &VectorField| {
        let mut c = Map::new();
        c.insert(
            "distance".into(),
            json!(distance_of(f.metric.unwrap_or(Metric::Cosine))),
        );
        if let Some(ix) = f.index.as_ref().filter(|ix| ix.kind == "hnsw") {
            if let Some(m) = ix.m {
                c.insert("maxConnections".into(), json!(m));
            }
            if let Some(ef) = ix.ef_construction {
                c.insert("efConstruction".into(), json!(ef));
            }
            if let Some(ef) = ix.ef_search {
                c.insert("ef".into(), json!(ef));
            }
        }
        if f.kind == VectorKind::Multi {
            c.insert("multivector".into(), json!({"enabled": true}));
        }
        Value::Object(c)
    };
    let mut body = json!({"class": class, "vectorizer": "none"});
    match spec.vectors.as_slice() {
        [only] if only.name.is_empty() => {
            body["vectorIndexType"] = json!("hnsw");
            body["vectorIndexConfig"] = config(only);
        }
        fields => {
            let named: Map<String, Value> = fields
                .iter()
                .map(|f| {
                    (
                        vector_name(&f.name),
                        json!({"vectorizer": {"none": {}}, "vectorIndexType": "hnsw", "vectorIndexConfig": config(f)}),
                    )
                })
                .collect();
            body["vectorConfig"] = Value::Object(named);
        }
    }
    let content = spec.content.clone().unwrap_or_default();
    let mut properties = Vec::new();
    if spec.id_kind != Some(IdKind::Uuid) {
        properties.push(json!({"name": ORIGINAL_ID_PROPERTY, "dataType": ["text"], "description": ID_MARK, "indexSearchable": false}));
    }
    if content.documents || spec.content.is_none() {
        properties.push(
            json!({"name": document_property, "dataType": ["text"], "description": DOCUMENT_MARK}),
        );
    }
    if content.uris {
        properties.push(json!({"name": URI_PROPERTY, "dataType": ["text"], "description": URI_MARK, "indexSearchable": false}));
    }
    // Keys arrive here as they will be written, renames done.
    for (name, types) in &content.metadata_types {
        let Some(dt) = data_type(types) else { continue };
        if name == document_property || reserved_key(name).is_some() {
            continue;
        }
        let mut p = json!({"name": name, "dataType": [dt]});
        if let Some(original) = content.renamed_keys.get(name) {
            p["description"] = json!(format!("{KEY_MARK}{original}"));
        }
        properties.push(p);
    }
    body["properties"] = Value::Array(properties);
    let multi = !content.namespaces.is_empty();
    body["multiTenancyConfig"] = json!({"enabled": multi});
    body
}

#[async_trait]
impl Sink for Weaviate {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: usize::MAX,
            sparse: false,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: &[
                Metric::Cosine,
                Metric::Dot,
                Metric::L2,
                Metric::Manhattan,
                Metric::Hamming,
            ],
            id_kinds: &[IdKind::Uuid],
            metadata: METADATA_RULES,
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        if spec.raw_config.get("class").is_none() {
            let keeps = IndexCounterparts {
                m: true,
                ef_construction: true,
                ef_search: true,
                lists: false,
                quantization: false,
            };
            notes.extend(unkept_settings("weaviate", spec, keeps));
        }
        notes
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        match id {
            RecordId::Uuid(_) => None,
            RecordId::Uint(_) => Some(IdForm::Kept(
                "weaviate ids are UUIDs: an unsigned integer id becomes the UUID of the same 128-bit value and is kept in the `vecport_id` property, which an export restores it from",
            )),
            RecordId::String(_) => Some(IdForm::Kept(
                "weaviate ids are UUIDs: a string id is kept in the `vecport_id` property, which an export restores it from, and the object id is the string when it is a UUID, else its UUIDv5",
            )),
        }
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        super::check_request_size("weaviate", record, MAX_BATCH_BYTES)?;
        if let Some(ns) = &record.namespace
            && !valid_tenant(ns)
        {
            return bad(format!(
                "namespace {ns:?} is not a Weaviate tenant name (1–64 of A-Z a-z 0-9 _ -)"
            ));
        }
        for (f, v) in spec.vectors.iter().zip(&record.vectors) {
            let Some(Vector::Dense(d)) = v else { continue };
            if let Some(why) = super::wrong_dimension(f, d) {
                return bad(why);
            }
            if d.iter().any(|x| !x.is_finite()) {
                return bad(format!("vector {:?} has NaN or infinite values", f.name));
            }
        }
        let document_property = self
            .document_property
            .as_deref()
            .unwrap_or(DOCUMENT_PROPERTY);
        if record.document.is_some()
            && record
                .metadata
                .as_ref()
                .is_some_and(|m| m.contains_key(document_property))
        {
            return bad(format!(
                "has a document and a metadata key `{document_property}`, the property documents go to; choose another with ?document_property="
            ));
        }
        Ok(())
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        let class = resolve_class(target);
        let found = self.class(&class).await?;
        let document_property = self
            .document_property
            .clone()
            .unwrap_or_else(|| DOCUMENT_PROPERTY.to_owned());
        let definition = match (&found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                let named = if class == target {
                    format!("class `{class}`")
                } else {
                    format!("class `{class}` (Weaviate's name for `{target}`)")
                };
                return Err(super::already_exists(&named, self.http.base()));
            }
            (Some(c), ExistingTarget::Append) => {
                let dims = self.dimensions(c).await?;
                super::check_append(
                    &format!("class `{class}` on {}", self.http.base()),
                    &fields_of(c, &dims),
                    &spec.vectors,
                )?;
                c.clone()
            }
            (found, _) => {
                if found.is_some() {
                    self.call(
                        Method::DELETE,
                        &format!("/v1/schema/{}", seg(&class)),
                        None,
                        "delete class",
                    )
                    .await?;
                }
                let body = match spec.raw_config.get("class").filter(|c| c.is_object()) {
                    // Weaviate → Weaviate: the same definition under the new name.
                    Some(source) => {
                        let mut body = source.clone();
                        body["class"] = json!(class);
                        if spec
                            .content
                            .as_ref()
                            .is_some_and(|c| !c.namespaces.is_empty())
                        {
                            body["multiTenancyConfig"]["enabled"] = json!(true);
                        }
                        // A multi-tenant class reports a sharding config of
                        // zeros but refuses one on creation.
                        if body["multiTenancyConfig"]["enabled"].as_bool() == Some(true)
                            && let Some(o) = body.as_object_mut()
                        {
                            o.remove("shardingConfig");
                        }
                        body
                    }
                    None => class_body(&class, spec, &document_property),
                };
                self.call(Method::POST, "/v1/schema", Some(body), "create class")
                    .await?;
                self.class(&class)
                    .await?
                    .ok_or_else(|| self.not_found(&class))?
            }
        };
        let multi = definition["multiTenancyConfig"]["enabled"].as_bool() == Some(true);
        let tenants: HashSet<String> = self
            .tenants(&definition)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let lift = Lift::of(&definition, Some(&document_property));
        let mut notes = Vec::new();
        if class != target {
            notes.push(format!(
                "`{target}` is not a Weaviate class name: imported as class `{class}`"
            ));
        }
        Ok(Arc::new(WeaviateWriter {
            weaviate: Weaviate {
                http: self.http.clone(),
                class: None,
                document_property: self.document_property.clone(),
                timestamps: false,
            },
            class,
            fields: spec.vectors.clone(),
            multi,
            lift,
            tenants: tokio::sync::Mutex::new(tenants),
            notes,
        }))
    }
}

/// Whether `name` is a Weaviate tenant name.
fn valid_tenant(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

struct WeaviateWriter {
    weaviate: Weaviate,
    class: String,
    fields: Vec<VectorField>,
    multi: bool,
    lift: Lift,
    /// Tenants that exist; new namespaces are created before their objects.
    tenants: tokio::sync::Mutex<HashSet<String>>,
    notes: Vec<String>,
}

impl WeaviateWriter {
    /// The tenant of a record in this class.
    fn tenant_of<'r>(&self, r: &'r Record) -> Option<&'r str> {
        self.multi
            .then(|| r.namespace.as_deref().unwrap_or(DEFAULT_TENANT))
    }

    /// A record as a batch object.
    fn object_of(&self, r: Record) -> Value {
        let tenant = self.tenant_of(&r).map(str::to_owned);
        let (uuid, original) = object_id(&r.id);
        let mut props = r.metadata.unwrap_or_default();
        let property = |name: &Option<String>, fallback: &str| {
            name.clone().unwrap_or_else(|| fallback.to_owned())
        };
        if let Some(o) = original {
            props.insert(property(&self.lift.id, ORIGINAL_ID_PROPERTY), json!(o));
        }
        if let Some(d) = r.document {
            props.insert(property(&self.lift.document, DOCUMENT_PROPERTY), json!(d));
        }
        if let Some(u) = r.uri {
            props.insert(property(&self.lift.uri, URI_PROPERTY), json!(u));
        }
        let mut o =
            json!({"class": self.class, "id": uuid.hyphenated().to_string(), "properties": props});
        let unnamed = self.fields.len() == 1 && self.fields[0].name.is_empty();
        let as_json = |v: Vector| match v {
            Vector::Dense(d) => json!(d),
            Vector::Multi(m) => json!(m),
            Vector::Sparse(_) => Value::Null,
        };
        if unnamed {
            if let Some(v) = r.vectors.into_iter().next().flatten() {
                o["vector"] = as_json(v);
            }
        } else {
            let named: Map<String, Value> = self
                .fields
                .iter()
                .zip(r.vectors)
                .filter_map(|(f, v)| v.map(|v| (vector_name(&f.name), as_json(v))))
                .collect();
            o["vectors"] = Value::Object(named);
        }
        if let Some(t) = tenant {
            o["tenant"] = json!(t);
        }
        o
    }

    /// Creates the tenants of `records` that do not exist yet.
    async fn ensure_tenants(&self, records: &[Record]) -> Result<()> {
        if !self.multi {
            return Ok(());
        }
        let mut known = self.tenants.lock().await;
        let mut missing: Vec<&str> = records
            .iter()
            .filter_map(|r| self.tenant_of(r))
            .filter(|t| !known.contains(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let body: Vec<Value> = missing.iter().map(|t| json!({"name": t})).collect();
        self.weaviate
            .call(
                Method::POST,
                &format!("/v1/schema/{}/tenants", seg(&self.class)),
                Some(Value::Array(body)),
                "create tenants",
            )
            .await?;
        known.extend(missing.into_iter().map(str::to_owned));
        Ok(())
    }
}

/// The failed objects of a batch answer: `(id, message)`.
fn batch_failures(answer: &Value) -> Vec<(String, String)> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let errors = o["result"]["errors"]["error"].as_array()?;
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            (!messages.is_empty()).then(|| {
                (
                    o["id"].as_str().unwrap_or("?").to_owned(),
                    messages.join("; "),
                )
            })
        })
        .collect()
}

#[async_trait]
impl CollectionWriter for WeaviateWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: MAX_BATCH_OBJECTS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_tenants(&records).await?;
        // The record ids, to name failed objects by the ids the user knows.
        let ids: BTreeMap<String, String> = records
            .iter()
            .map(|r| {
                (
                    object_id(&r.id).0.hyphenated().to_string(),
                    r.id.to_string(),
                )
            })
            .collect();
        let objects: Vec<Value> = records.into_iter().map(|r| self.object_of(r)).collect();
        let answer = self
            .weaviate
            .call(
                Method::POST,
                "/v1/batch/objects",
                Some(json!({"objects": objects})),
                "batch objects",
            )
            .await?
            .unwrap_or(Value::Null);
        let failures = batch_failures(&answer);
        if !failures.is_empty() {
            let named: Vec<String> = failures
                .iter()
                .take(10)
                .map(|(uuid, m)| format!("record {:?}: {m}", ids.get(uuid).unwrap_or(uuid)))
                .collect();
            return Err(Error::InvalidData(format!(
                "weaviate rejected {} of {} objects of a batch into class `{}`:\n  {}",
                failures.len(),
                objects_len(&answer),
                self.class,
                named.join("\n  ")
            )));
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        let class = self
            .weaviate
            .class(&self.class)
            .await?
            .ok_or_else(|| self.weaviate.not_found(&self.class))?;
        self.weaviate.count(&class).await
    }
}

fn objects_len(answer: &Value) -> usize {
    answer.as_array().map_or(0, Vec::len)
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
        let answer = json!([
            {"id": "a", "result": {}},
            {"id": "b", "result": {"errors": {"error": [{"message": "vector lengths don't match"}]}}}
        ]);
        assert_eq!(
            batch_failures(&answer),
            [("b".to_owned(), "vector lengths don't match".to_owned())]
        );
    }
}
