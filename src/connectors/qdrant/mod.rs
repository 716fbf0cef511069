//! `qdrant://HOST:PORT[/COLLECTION]`: Qdrant from 1.10 on, over REST. API key
//! from `QDRANT_API_KEY` (sent as `api-key`).
//!
//! Export scrolls with `next_page_offset` (inclusive) until it is null; import
//! creates the collection with the mapped configuration (Qdrant → Qdrant:
//! the same vectors, sparse vectors, HNSW, quantization, sharding and payload
//! indexes), then upserts with `wait=true` in batches bounded by count and by
//! the 32 MiB request limit. Ids Qdrant cannot take become UUIDv5 of the
//! original, which travels in the payload (`spec/MAPPING.md`).

mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::mapping::{
    IdForm, IndexCounterparts, MetadataRules, NAMESPACE_KEY, lift_namespace, unkept_settings,
};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    StoredValues, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use super::http::{HttpClient, Response, Vendor, decode_json, segment};
use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};
use wire::{AnyVector, Envelope, OneVector, PointOut, UpsertBody};

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "QDRANT_API_KEY";
const DEFAULT_PORT: u16 = 6333;
/// Qdrant's default request limit is 32 MiB; the estimate overshoots, so this is safe.
const MAX_BODY_BYTES: usize = 30 << 20;
/// Payload key holding an id Qdrant could not take as it was.
pub const ORIGINAL_ID_KEY: &str = "__vecport_id";
/// Payload key holding a record's document.
pub const DOCUMENT_KEY: &str = "__vecport_document";
/// Payload key holding a record's URI.
pub const URI_KEY: &str = "__vecport_uri";
/// Namespace of the UUIDv5 given to ids Qdrant cannot take.
pub use crate::mapping::ID_NAMESPACE;
/// Note recorded for Cosine fields.
pub const COSINE_NOTE: &str = "qdrant normalises vectors of Cosine fields to unit length on write: exported values are the normalised vectors";

/// The Qdrant connector.
#[derive(Debug, Clone)]
pub struct Qdrant {
    http: HttpClient,
    collection: Option<String>,
}

/// Qdrant's HTTP dialect.
#[derive(Debug)]
struct QdrantApi;

impl Vendor for QdrantApi {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn credential_hint(&self) -> String {
        format!("the API key in {API_KEY_ENV}")
    }

    fn error_message(&self, resp: &Response) -> String {
        serde_json::from_slice::<wire::ErrorEnvelope>(&resp.body)
            .map(|e| e.status.error)
            .unwrap_or_else(|_| resp.text_excerpt())
    }
}

/// The id Qdrant stores for a record, and the original string to keep in the
/// payload (`spec/MAPPING.md`): unsigned integers and UUIDs go as they are; a
/// string id is kept in the payload, and the point's id is the string itself
/// when it is a lower-case hyphenated UUID, else its UUIDv5.
pub fn point_id(id: &RecordId) -> (Value, Option<String>) {
    match id {
        RecordId::Uint(n) => (json!(n), None),
        RecordId::Uuid(u) => (json!(u.hyphenated().to_string()), None),
        RecordId::String(s) => {
            let point = match uuid::Uuid::try_parse(s) {
                Ok(u) if u.hyphenated().to_string() == *s => s.clone(),
                _ => uuid::Uuid::new_v5(&ID_NAMESPACE, s.as_bytes())
                    .hyphenated()
                    .to_string(),
            };
            (json!(point), Some(s.clone()))
        }
    }
}

fn metric_of(distance: &str) -> Option<Metric> {
    match distance {
        "Cosine" => Some(Metric::Cosine),
        "Dot" => Some(Metric::Dot),
        "Euclid" => Some(Metric::L2),
        "Manhattan" => Some(Metric::Manhattan),
        _ => None,
    }
}

fn distance_of(metric: Metric) -> Option<&'static str> {
    match metric {
        Metric::Cosine => Some("Cosine"),
        Metric::Dot => Some("Dot"),
        Metric::L2 => Some("Euclid"),
        Metric::Manhattan => Some("Manhattan"),
        Metric::Hamming => None,
    }
}

/// Normalised HNSW settings from Qdrant's `hnsw_config` (collection-wide,
/// overridden per vector).
fn hnsw_settings(
    collection: Option<&Value>,
    own: Option<&Value>,
    quantization: Option<&Value>,
) -> IndexSettings {
    let mut merged = collection
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(o) = own.and_then(Value::as_object) {
        for (k, v) in o {
            merged.insert(k.clone(), v.clone());
        }
    }
    let take = |m: &mut Map<String, Value>, k: &str| m.remove(k).and_then(|v| v.as_u64());
    let m = take(&mut merged, "m");
    let ef_construction = take(&mut merged, "ef_construct");
    IndexSettings {
        kind: "hnsw".into(),
        m,
        ef_construction,
        quantization: quantization.filter(|q| !q.is_null()).cloned(),
        extra: merged,
        ..IndexSettings::default()
    }
}

impl Qdrant {
    /// Opens a `qdrant://` URL.
    pub fn new(url: &ConnectorUrl, options: &super::ConnectOptions) -> Result<Qdrant> {
        let base = url.http_base(DEFAULT_PORT)?;
        let key = Secret::from_env(API_KEY_ENV);
        let creds: Vec<(&'static str, &Secret)> = key.iter().map(|k| ("api-key", k)).collect();
        Ok(Qdrant {
            http: HttpClient::new(&QdrantApi, &base, &creds, &[], options)?,
            collection: url.collection().map(str::to_owned),
        })
    }

    fn fail(&self, operation: &str, resp: &Response) -> Error {
        self.http.fail(operation, resp)
    }

    /// Every call vecport makes to Qdrant is a read or an upsert: retried.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        operation: &str,
    ) -> Result<T> {
        let env: Envelope<T> = self.http.call(method, path, body, operation).await?;
        Ok(env.result)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("collection `{name}` on {}", self.http.base()),
            hint: Some(super::ls_hint("qdrant", self.http.base(), "collections")),
        }
    }

    /// `GET /collections/{name}`, `None` when it does not exist.
    async fn info(&self, name: &str) -> Result<Option<Value>> {
        let path = format!("/collections/{}", segment(name));
        let resp = self
            .http
            .send(Method::GET, &path, None, "get collection", true)
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status.is_success() {
            return Err(self.fail("get collection", &resp));
        }
        let env: Envelope<Value> =
            decode_json(resp.body, self.http.base(), "get collection").await?;
        Ok(Some(env.result))
    }

    async fn count(&self, name: &str) -> Result<u64> {
        let path = format!("/collections/{}/points/count", segment(name));
        let c: wire::Count = self
            .call(Method::POST, &path, Some(json!({"exact": true})), "count")
            .await?;
        Ok(c.count)
    }

    /// One scroll request: the body of the page at `offset`.
    async fn fetch_page(&self, path: &str, limit: usize, offset: &Value) -> Result<bytes::Bytes> {
        let body =
            json!({"limit": limit, "offset": offset, "with_payload": true, "with_vector": true});
        let resp = self
            .http
            .send(
                Method::POST,
                path,
                Some(body.to_string().into_bytes()),
                "scroll",
                true,
            )
            .await?;
        if !resp.status.is_success() {
            return Err(self.fail("scroll", &resp));
        }
        Ok(resp.body)
    }

    /// A scroll page that could not be decoded.
    fn decode_error(&self, message: String) -> Error {
        Error::Protocol {
            endpoint: self.http.base().to_owned(),
            operation: "scroll".into(),
            message,
        }
    }
}

/// The vector fields of a collection from its `config`.
fn fields_of(config: &Value) -> Vec<VectorField> {
    let params = &config["params"];
    let hnsw = config.get("hnsw_config");
    let quantization = config.get("quantization_config");
    let field = |name: &str, p: &Value| {
        let metric = p["distance"].as_str().and_then(metric_of);
        let kind = if p.get("multivector_config").is_some_and(|m| !m.is_null()) {
            VectorKind::Multi
        } else {
            VectorKind::Dense
        };
        let datatype = p
            .get("datatype")
            .and_then(Value::as_str)
            .filter(|d| *d != "float32");
        let stored_values = match (datatype, metric) {
            (Some(_), _) => StoredValues::Lossy,
            (None, Some(Metric::Cosine)) => StoredValues::Normalized,
            _ => StoredValues::Exact,
        };
        let own_q = p
            .get("quantization_config")
            .filter(|q| !q.is_null())
            .or(quantization);
        let mut index = hnsw_settings(hnsw, p.get("hnsw_config"), own_q);
        if let Some(on_disk) = p.get("on_disk").filter(|v| !v.is_null()) {
            index.extra.insert("vector_on_disk".into(), on_disk.clone());
        }
        VectorField {
            name: name.to_owned(),
            kind,
            dimension: p["size"].as_u64().and_then(|d| u32::try_from(d).ok()),
            metric,
            index: Some(index),
            stored_values,
            source_datatype: datatype.map(str::to_owned),
        }
    };
    let mut out = Vec::new();
    match params.get("vectors") {
        Some(v) if v.get("size").is_some() => out.push(field("", v)),
        Some(Value::Object(named)) => {
            for (name, p) in named {
                out.push(field(name, p));
            }
        }
        _ => {}
    }
    if let Some(Value::Object(sparse)) = params.get("sparse_vectors") {
        for (name, p) in sparse {
            let mut extra = Map::new();
            if let Some(Value::Object(ix)) = p.get("index") {
                extra.extend(ix.clone());
            }
            if let Some(m) = p.get("modifier").filter(|m| !m.is_null()) {
                extra.insert("modifier".into(), m.clone());
            }
            out.push(VectorField {
                name: name.clone(),
                kind: VectorKind::Sparse,
                dimension: None,
                metric: Some(Metric::Dot),
                index: Some(IndexSettings {
                    kind: "sparse".into(),
                    extra,
                    ..IndexSettings::default()
                }),
                stored_values: StoredValues::Exact,
                source_datatype: None,
            });
        }
    }
    out
}

/// A point as a neutral record, lifting the keys vecport put in the payload.
fn record_of(p: wire::Point) -> std::result::Result<Record, String> {
    let mut payload = Some(p.payload.unwrap_or_default());
    let namespace = lift_namespace(&mut payload);
    let mut payload = payload.unwrap_or_default();
    let original = payload.shift_remove(ORIGINAL_ID_KEY);
    let document = payload.shift_remove(DOCUMENT_KEY);
    let uri = payload.shift_remove(URI_KEY);
    let id = match (original, &p.id) {
        (Some(Value::String(s)), _) => RecordId::String(s),
        (_, Value::Number(n)) => RecordId::Uint(
            n.as_u64()
                .ok_or_else(|| format!("id {n} is not an unsigned integer"))?,
        ),
        (_, Value::String(s)) => {
            RecordId::Uuid(uuid::Uuid::try_parse(s).map_err(|_| format!("id {s:?} is not a UUID"))?)
        }
        (_, other) => return Err(format!("id {other} is neither an integer nor a UUID")),
    };
    Ok(Record {
        id,
        namespace,
        vectors: p.vectors,
        metadata: (!payload.is_empty()).then_some(payload),
        document: document.and_then(|d| d.as_str().map(str::to_owned)),
        uri: uri.and_then(|u| u.as_str().map(str::to_owned)),
    })
}

/// A scroll page's records and the offset of the next (`None` after the last).
type DecodedPage = (Vec<Record>, Option<Value>);

/// A scroll response as records and the next offset (`None` after the last page).
fn decode_page(body: &[u8], fields: &[VectorField]) -> std::result::Result<DecodedPage, String> {
    let page = wire::decode_scroll(body, fields)?;
    let records = page
        .points
        .into_iter()
        .map(record_of)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((records, page.next_page_offset.filter(|n| !n.is_null())))
}

impl Endpoint for Qdrant {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn endpoint(&self) -> String {
        self.http.base().to_owned()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

#[async_trait]
impl Source for Qdrant {
    async fn describe(&self) -> Result<SourceDescription> {
        let resp = self
            .http
            .send(Method::GET, "/", None, "version", true)
            .await?;
        if !resp.status.is_success() {
            return Err(self.fail("version", &resp));
        }
        let root: Value = decode_json(resp.body, self.http.base(), "version").await?;
        Ok(SourceDescription {
            server_version: root["version"].as_str().map(str::to_owned),
            location: Map::new(),
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let list: wire::CollectionsList = self
            .call(Method::GET, "/collections", None, "list collections")
            .await?;
        let mut out = Vec::new();
        for c in list.collections {
            let Some(info) = self.info(&c.name).await? else {
                continue;
            };
            let fields = fields_of(&info["config"]);
            let first = fields
                .iter()
                .find(|f| f.kind != VectorKind::Sparse)
                .or(fields.first());
            out.push(CollectionSummary {
                dimension: first.and_then(|f| f.dimension),
                metric: first.and_then(|f| f.metric),
                count: Some(self.count(&c.name).await?),
                name: c.name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let info = self.info(name).await?.ok_or_else(|| self.not_found(name))?;
        let vectors = fields_of(&info["config"]);
        let count = self.count(name).await?;
        let notes = vectors
            .iter()
            .any(|f| f.stored_values == StoredValues::Normalized)
            .then(|| COSINE_NOTE.to_owned())
            .into_iter()
            .collect();
        Ok(CollectionSpec {
            name: name.to_owned(),
            id_kind: None,
            vectors,
            raw_config: json!({
                "config": info["config"],
                "payload_schema": info["payload_schema"],
            }),
            collection_metadata: info["config"]
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .filter(|m| !m.is_empty()),
            count_hint: Some(count),
            notes,
            content: None,
        })
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        _namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let path = format!("/collections/{}/points/query", segment(&spec.name));
        let mut body = json!({"query": vector, "limit": k, "with_payload": [ORIGINAL_ID_KEY]});
        if !field.is_empty() {
            body["using"] = json!(field);
        }
        let result: Value = self.call(Method::POST, &path, Some(body), "query").await?;
        let points = result["points"].as_array().cloned().unwrap_or_default();
        points
            .iter()
            .map(|p| {
                match (&p["payload"][ORIGINAL_ID_KEY], &p["id"]) {
                    (Value::String(s), _) => Some(RecordId::String(s.clone())),
                    (_, Value::Number(n)) => n.as_u64().map(RecordId::Uint),
                    (_, Value::String(s)) => uuid::Uuid::try_parse(s).ok().map(RecordId::Uuid),
                    _ => None,
                }
                .ok_or_else(|| Error::Protocol {
                    endpoint: self.http.base().to_owned(),
                    operation: "query".into(),
                    message: format!("point id {} is neither an integer nor a UUID", p["id"]),
                })
            })
            .collect()
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let scroll = Scroll {
            qdrant: self.clone(),
            path: format!("/collections/{}/points/scroll", segment(&spec.name)),
            limit: options.page_size.max(1),
            fields: spec.vectors.clone(),
        };
        let ahead = options.concurrency.clamp(1, 8);
        let first = options.start.clone().unwrap_or(Value::Null);
        stream::unfold(ScrollState::Start(first), move |state| {
            let scroll = scroll.clone();
            async move {
                let prefetch = match state {
                    ScrollState::Start(offset) => Prefetch::start(scroll.clone(), offset, ahead),
                    ScrollState::Running(p) => p,
                    ScrollState::Done => return None,
                };
                Some(match scroll.next_page(prefetch).await {
                    Ok((page, state)) => (Ok(page), state),
                    Err(e) => (Err(e), ScrollState::Done),
                })
            }
        })
        .boxed()
    }
}

/// What a scroll needs, owned, for the task that fetches its pages.
#[derive(Debug, Clone)]
struct Scroll {
    qdrant: Qdrant,
    path: String,
    limit: usize,
    fields: Vec<VectorField>,
}

impl Scroll {
    /// The next page `prefetch` fetched, and where the scroll stands after it.
    async fn next_page(&self, mut prefetch: Prefetch) -> Result<(Page, ScrollState)> {
        let fetched = prefetch.pages.recv().await.ok_or_else(|| {
            // The task ended without a word: it panicked.
            self.qdrant.decode_error("the scroll task stopped".into())
        })??;
        let (records, next) = fetched
            .decoded
            .await
            .map_err(|e| Error::internal("decoding a qdrant page", e))?
            .map_err(|message| self.qdrant.decode_error(message))?;
        let state = match &next {
            None => ScrollState::Done,
            // The pages fetched ahead followed this page's real offset.
            Some(n) if fetched.guess.as_ref() == Some(n) => ScrollState::Running(prefetch),
            // The guess read from the body's end was wrong, or absent: what
            // was fetched after it is dropped (its task stopped) and fetching
            // starts over at the real offset.
            Some(n) => ScrollState::Start(n.clone()),
        };
        Ok((Page { records, next }, state))
    }
}

/// Where a scroll stands between two pages.
enum ScrollState {
    /// Fetching (again) from this offset.
    Start(Value),
    Running(Prefetch),
    Done,
}

/// A scroll page as fetched ahead: its decoding, under way on the blocking
/// pool, and the offset the page after it was asked for with.
struct Fetched {
    decoded: tokio::task::JoinHandle<std::result::Result<DecodedPage, String>>,
    /// Read from the end of the body before decoding; `None` where it could
    /// not be (and nothing was fetched after this page).
    guess: Option<Value>,
}

/// Scroll is a cursor chain, each page naming the offset of the next at its
/// end. A task of its own asks for the next page as soon as a page has
/// arrived, with the offset read from the end of its body, and starts the
/// page decoding on the blocking pool: the server is never kept waiting for
/// vecport's decoding or writing, and decoding runs beside receiving. Up to
/// `ahead` pages wait for the consumer, which checks each guessed offset
/// against the decoded page. Dropping it stops the task.
struct Prefetch {
    pages: tokio::sync::mpsc::Receiver<Result<Fetched>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prefetch {
    fn start(scroll: Scroll, mut offset: Value, ahead: usize) -> Prefetch {
        let (tx, pages) = tokio::sync::mpsc::channel(ahead);
        let task = tokio::spawn(async move {
            loop {
                let body = match scroll
                    .qdrant
                    .fetch_page(&scroll.path, scroll.limit, &offset)
                    .await
                {
                    Ok(body) => body,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let guess = wire::peek_next_page_offset(&body);
                let fields = scroll.fields.clone();
                let decoded = tokio::task::spawn_blocking(move || decode_page(&body, &fields));
                let fetched = Fetched {
                    decoded,
                    guess: guess.clone(),
                };
                if tx.send(Ok(fetched)).await.is_err() {
                    return;
                }
                match guess {
                    Some(next) => offset = next,
                    None => return,
                }
            }
        });
        Prefetch { pages, task }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body that creates a collection for `spec`.
fn create_body(spec: &CollectionSpec) -> Result<Value> {
    // Qdrant → Qdrant: the same configuration, verbatim.
    if let Some(config) = spec
        .raw_config
        .get("config")
        .filter(|c| c.get("params").is_some())
    {
        let params = &config["params"];
        let mut body = Map::new();
        for key in [
            "vectors",
            "sparse_vectors",
            "shard_number",
            "sharding_method",
            "replication_factor",
            "write_consistency_factor",
            "on_disk_payload",
        ] {
            if let Some(v) = params.get(key).filter(|v| !v.is_null()) {
                body.insert(key.into(), v.clone());
            }
        }
        for key in ["hnsw_config", "quantization_config", "strict_mode_config"] {
            if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
                body.insert(key.into(), v.clone());
            }
        }
        if let Some(wal) = config.get("wal_config").filter(|v| !v.is_null()) {
            body.insert("wal_config".into(), wal.clone());
        }
        if let Some(opt) = config.get("optimizer_config").filter(|v| !v.is_null()) {
            body.insert("optimizers_config".into(), opt.clone());
        }
        // Collection metadata (Qdrant 1.16 on).
        if let Some(m) = config.get("metadata").filter(|v| v.is_object()) {
            body.insert("metadata".into(), m.clone());
        }
        return Ok(Value::Object(body));
    }
    // From another database: vectors with the closest settings.
    let params = |f: &VectorField| -> Result<Value> {
        let metric = f.metric.unwrap_or(Metric::Cosine);
        let distance = distance_of(metric).ok_or_else(|| {
            Error::not_supported(
                "qdrant",
                format!("the {metric} metric (field {:?})", f.name),
            )
        })?;
        let mut p = json!({"size": f.dimension.unwrap_or(1), "distance": distance});
        if f.kind == VectorKind::Multi {
            p["multivector_config"] = json!({"comparator": "max_sim"});
        }
        if let Some(ix) = f.index.as_ref().filter(|ix| ix.kind == "hnsw") {
            let mut h = Map::new();
            if let Some(m) = ix.m {
                h.insert("m".into(), json!(m));
            }
            if let Some(ef) = ix.ef_construction {
                h.insert("ef_construct".into(), json!(ef));
            }
            if !h.is_empty() {
                p["hnsw_config"] = Value::Object(h);
            }
        }
        Ok(p)
    };
    let dense: Vec<&VectorField> = spec
        .vectors
        .iter()
        .filter(|f| f.kind != VectorKind::Sparse)
        .collect();
    let mut body = Map::new();
    match dense.as_slice() {
        [] => {}
        [only] if only.name.is_empty() => {
            body.insert("vectors".into(), params(only)?);
        }
        many => {
            let mut named = Map::new();
            for f in many {
                named.insert(f.name.clone(), params(f)?);
            }
            body.insert("vectors".into(), Value::Object(named));
        }
    }
    let sparse: Map<String, Value> = spec
        .vectors
        .iter()
        .filter(|f| f.kind == VectorKind::Sparse)
        .map(|f| (f.name.clone(), json!({})))
        .collect();
    if !sparse.is_empty() {
        body.insert("sparse_vectors".into(), Value::Object(sparse));
    }
    Ok(Value::Object(body))
}

/// How string ids are stored, for the change report.
const STRING_ID_RULE: &str = "qdrant ids are unsigned integers or UUIDs: a string id is kept in payload key `__vecport_id` (which an export restores it from) and the point id is the string when it is a UUID, else its UUIDv5";

/// Payload keys vecport's mapping writes itself.
fn reserved_key(key: &str) -> Option<String> {
    [ORIGINAL_ID_KEY, DOCUMENT_KEY, URI_KEY, NAMESPACE_KEY]
        .contains(&key)
        .then(|| "is reserved by vecport's qdrant mapping".to_owned())
}

#[async_trait]
impl Sink for Qdrant {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: usize::MAX,
            sparse: true,
            multivector: true,
            named_vectors: true,
            namespaces: false,
            documents: true,
            uris: true,
            metrics: &[Metric::Cosine, Metric::Dot, Metric::L2, Metric::Manhattan],
            id_kinds: &[IdKind::Uint, IdKind::Uuid, IdKind::UintOrUuid],
            metadata: MetadataRules {
                target: "qdrant",
                key: reserved_key,
                ..MetadataRules::ANY
            },
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        if spec
            .vectors
            .iter()
            .any(|f| f.metric == Some(Metric::Cosine) && f.kind != VectorKind::Sparse)
        {
            notes.push(COSINE_NOTE.to_owned());
        }
        let same_database = spec
            .raw_config
            .get("config")
            .is_some_and(|c| c.get("params").is_some());
        if !same_database {
            // ef is a search-time parameter in Qdrant, not a collection setting.
            let keeps = IndexCounterparts {
                m: true,
                ef_construction: true,
                ef_search: false,
                lists: false,
                quantization: false,
            };
            notes.extend(unkept_settings("qdrant", spec, keeps));
        }
        notes
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        matches!(id, RecordId::String(_)).then_some(IdForm::Kept(STRING_ID_RULE))
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        super::check_request_size("qdrant", record, MAX_BODY_BYTES)?;
        if record.namespace.is_some() {
            return bad("has a namespace; qdrant collections have none (--namespaces into-key keeps it in the payload)".into());
        }
        for (f, v) in spec.vectors.iter().zip(&record.vectors) {
            let Some(v) = v else { continue };
            let finite = |xs: &[f32]| xs.iter().all(|x| x.is_finite());
            match v {
                Vector::Dense(d) => {
                    if let Some(why) = super::wrong_dimension(f, d) {
                        return bad(why);
                    }
                    if !finite(d) {
                        return bad(format!(
                            "vector {:?} has NaN or infinite values, which JSON cannot carry",
                            f.name
                        ));
                    }
                }
                Vector::Multi(m) => {
                    if let Some(dim) = f.dimension
                        && let Some(row) = m.iter().find(|r| r.len() != dim as usize)
                    {
                        return bad(format!(
                            "multivector {:?} has a vector of {} values, the field's dimension is {dim}",
                            f.name,
                            row.len()
                        ));
                    }
                    if !m.iter().all(|r| finite(r)) {
                        return bad(format!("vector {:?} has NaN or infinite values", f.name));
                    }
                }
                Vector::Sparse(s) => {
                    let mut seen = s.indices.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    if seen.len() != s.indices.len() {
                        return bad(format!(
                            "sparse vector {:?} repeats an index, which qdrant refuses",
                            f.name
                        ));
                    }
                    if !finite(&s.values) {
                        return bad(format!(
                            "sparse vector {:?} has NaN or infinite values",
                            f.name
                        ));
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
        let found = self.info(target).await?;
        match (&found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("collection `{target}`"),
                    self.http.base(),
                ));
            }
            (Some(info), ExistingTarget::Append) => {
                super::check_append(
                    &format!("collection `{target}` on {}", self.http.base()),
                    &fields_of(&info["config"]),
                    &spec.vectors,
                )?;
            }
            (found, _) => {
                let path = format!("/collections/{}", segment(target));
                if found.is_some() {
                    let _: Value = self
                        .call(Method::DELETE, &path, None, "delete collection")
                        .await?;
                }
                let body = create_body(spec)?;
                let _: Value = self
                    .call(Method::PUT, &path, Some(body), "create collection")
                    .await?;
                // Payload indexes of a Qdrant source.
                if let Some(Value::Object(schema)) = spec.raw_config.get("payload_schema") {
                    for (field, info) in schema {
                        let schema = info
                            .get("params")
                            .filter(|p| !p.is_null())
                            .cloned()
                            .unwrap_or_else(|| info["data_type"].clone());
                        let body = json!({"field_name": field, "field_schema": schema});
                        let _: Value = self
                            .call(
                                Method::PUT,
                                &format!("{path}/index?wait=true"),
                                Some(body),
                                "create payload index",
                            )
                            .await?;
                    }
                }
            }
        }
        Ok(Arc::new(QdrantWriter {
            qdrant: Qdrant {
                http: self.http.clone(),
                collection: None,
            },
            name: target.to_owned(),
            fields: spec.vectors.clone(),
        }))
    }
}

struct QdrantWriter {
    qdrant: Qdrant,
    name: String,
    fields: Vec<VectorField>,
}

/// A record as a Qdrant point.
fn point_of(r: Record, fields: &[VectorField]) -> PointOut {
    let (id, original) = point_id(&r.id);
    let mut payload = r.metadata.unwrap_or_default();
    if let Some(o) = original {
        payload.insert(ORIGINAL_ID_KEY.into(), json!(o));
    }
    if let Some(d) = r.document {
        payload.insert(DOCUMENT_KEY.into(), json!(d));
    }
    if let Some(u) = r.uri {
        payload.insert(URI_KEY.into(), json!(u));
    }
    let one = |v: Vector| match v {
        Vector::Dense(d) => OneVector::Dense(d),
        Vector::Multi(m) => OneVector::Multi(m),
        Vector::Sparse(s) => OneVector::Sparse {
            indices: s.indices,
            values: s.values,
        },
    };
    let unnamed_only =
        fields.len() == 1 && fields[0].name.is_empty() && fields[0].kind != VectorKind::Sparse;
    let vector = if unnamed_only {
        AnyVector::Single(
            r.vectors
                .into_iter()
                .next()
                .flatten()
                .map(one)
                .unwrap_or(OneVector::Dense(Vec::new())),
        )
    } else {
        AnyVector::Named(
            fields
                .iter()
                .zip(r.vectors)
                .filter_map(|(f, v)| v.map(|v| (f.name.clone(), one(v))))
                .collect(),
        )
    };
    PointOut {
        id,
        vector,
        payload: payload as Metadata,
    }
}

#[async_trait]
impl CollectionWriter for QdrantWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: 1000,
            max_bytes: MAX_BODY_BYTES,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let fields = self.fields.clone();
        let mut body = self.qdrant.http.body_buffer();
        let body = tokio::task::spawn_blocking(move || {
            let points = records.into_iter().map(|r| point_of(r, &fields)).collect();
            serde_json::to_writer(&mut body, &UpsertBody { points }).map(|()| body)
        })
        .await
        .map_err(|e| Error::internal("encoding a qdrant upsert", e))?
        .map_err(|e| Error::InvalidData(format!("cannot encode points: {e}")))?;
        let path = format!("/collections/{}/points?wait=true", segment(&self.name));
        let resp = self
            .qdrant
            .http
            .send(Method::PUT, &path, Some(body), "upsert points", true)
            .await?;
        if !resp.status.is_success() {
            return Err(self.qdrant.fail("upsert points", &resp));
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        self.qdrant.count(&self.name).await
    }

    async fn discard(&self) -> Result<bool> {
        let path = format!("/collections/{}", segment(&self.name));
        let _: Value = self
            .qdrant
            .call(Method::DELETE, &path, None, "delete collection")
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::TryStreamExt;

    #[test]
    fn lifted_keys_leave_the_payload_in_its_order() {
        let payload =
            json!({ORIGINAL_ID_KEY: "doc-1", "a": 1, DOCUMENT_KEY: "text", "b": 2, "c": 3});
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        let point = wire::Point {
            id: json!(7),
            payload: Some(payload),
            vectors: vec![],
        };
        let r = record_of(point).unwrap();
        assert_eq!(r.id, RecordId::String("doc-1".into()));
        assert_eq!(r.document.as_deref(), Some("text"));
        let keys: Vec<&str> = r
            .metadata
            .iter()
            .flat_map(|m| m.keys())
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    /// A scroll server of five points, two a page, whose first page ends
    /// with a decoy `next_page_offset` (in a payload, after the real one):
    /// the read-ahead follows the decoy to a page that must not be exported.
    async fn decoy_server(requests: Arc<AtomicUsize>) -> String {
        let point = |id: u64, payload: Value| json!({"id": id, "payload": payload, "vector": [id as f32, 0.5]});
        let app = axum::Router::new().route(
            "/collections/c/points/scroll",
            axum::routing::post(move |axum::Json(req): axum::Json<Value>| {
                requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = match &req["offset"] {
                        Value::Null => format!(
                            r#"{{"result":{{"next_page_offset":3,"points":[{},{}]}},"status":"ok","time":0}}"#,
                            point(1, json!({})),
                            point(2, json!({"next_page_offset": 99}))
                        ),
                        o if o == 3 => json!({"result": {"points": [point(3, json!({})), point(4, json!({}))], "next_page_offset": 5}, "status": "ok", "time": 0}).to_string(),
                        o if o == 5 => json!({"result": {"points": [point(5, json!({}))], "next_page_offset": null}, "status": "ok", "time": 0}).to_string(),
                        _ => json!({"result": {"points": [point(99, json!({}))], "next_page_offset": null}, "status": "ok", "time": 0}).to_string(),
                    };
                    ([(reqwest::header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn decoy_client(base: &str) -> (Qdrant, CollectionSpec) {
        let qdrant = Qdrant {
            http: HttpClient::new(&QdrantApi, base, &[], &[], &Default::default()).unwrap(),
            collection: None,
        };
        let spec = CollectionSpec {
            name: "c".into(),
            vectors: vec![VectorField::dense(Some(2), Some(Metric::Dot))],
            ..CollectionSpec::default()
        };
        (qdrant, spec)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scroll_read_ahead_recovers_from_a_wrong_offset() {
        let base = decoy_server(Arc::new(AtomicUsize::new(0))).await;
        let (qdrant, spec) = decoy_client(&base);
        for ahead in [1, 4] {
            let options = ScanOptions {
                page_size: 2,
                concurrency: ahead,
                ..ScanOptions::default()
            };
            let pages: Vec<Page> = qdrant.scan(&spec, options).try_collect().await.unwrap();
            let ids: Vec<Vec<RecordId>> = pages
                .iter()
                .map(|p| p.records.iter().map(|r| r.id.clone()).collect())
                .collect();
            let id = RecordId::Uint;
            assert_eq!(ids, [vec![id(1), id(2)], vec![id(3), id(4)], vec![id(5)]]);
            let nexts: Vec<Option<Value>> = pages.into_iter().map(|p| p.next).collect();
            assert_eq!(nexts, [Some(json!(3)), Some(json!(5)), None]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_scroll_stops_its_read_ahead() {
        let requests = Arc::new(AtomicUsize::new(0));
        let base = decoy_server(requests.clone()).await;
        let (qdrant, spec) = decoy_client(&base);
        let options = ScanOptions {
            page_size: 2,
            concurrency: 1,
            ..ScanOptions::default()
        };
        let mut scan = qdrant.scan(&spec, options);
        let first = scan.next().await.unwrap().unwrap();
        assert_eq!(first.next, Some(json!(3)));
        // Dropped while its task may be asking for the page after the decoy.
        drop(scan);
        let at_drop = requests.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(requests.load(Ordering::SeqCst) <= at_drop + 1);
    }

    #[test]
    fn ids_qdrant_cannot_take_become_uuid_v5() {
        assert_eq!(point_id(&RecordId::Uint(7)), (json!(7), None));
        let u = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        assert_eq!(
            point_id(&RecordId::String(u.into())),
            (json!(u), Some(u.to_owned()))
        );
        assert_eq!(
            point_id(&RecordId::Uuid(uuid::Uuid::parse_str(u).unwrap())),
            (json!(u), None)
        );
        let (id, original) = point_id(&RecordId::String("doc-1".into()));
        assert_eq!(original.as_deref(), Some("doc-1"));
        assert_eq!(
            id,
            json!(uuid::Uuid::new_v5(&ID_NAMESPACE, b"doc-1").to_string())
        );
        // Upper-case UUIDs would come back lower-cased: keep the original.
        let (_, original) = point_id(&RecordId::String(u.to_uppercase()));
        assert!(original.is_some());
        let (_, original) = point_id(&RecordId::String("123".into()));
        assert_eq!(original.as_deref(), Some("123"));
    }

    #[test]
    fn original_id_document_and_uri_come_back() {
        let fields = vec![VectorField::dense(Some(2), Some(Metric::Dot))];
        let mut r = Record::dense(RecordId::String("doc-1".into()), vec![1.0, 2.0]);
        r.document = Some("text".into());
        r.uri = Some("s3://x".into());
        let out = point_of(r.clone(), &fields);
        let wire = serde_json::to_string(&out).unwrap();
        let body = format!(r#"{{"result":{{"points":[{wire}],"next_page_offset":7}}}}"#);
        let (records, next) = decode_page(body.as_bytes(), &fields).unwrap();
        assert_eq!(records, [r]);
        assert_eq!(next, Some(json!(7)));
    }

    #[test]
    fn fields_from_named_and_sparse_config() {
        let config = json!({
            "params": {
                "vectors": {"text": {"size": 8, "distance": "Cosine"}, "image": {"size": 4, "distance": "Euclid", "datatype": "float16", "hnsw_config": {"m": 32}}},
                "sparse_vectors": {"keywords": {"modifier": "idf"}}
            },
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
            "quantization_config": {"scalar": {"type": "int8"}}
        });
        let f = fields_of(&config);
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].name.as_str(), f[0].metric, f[0].stored_values),
            ("text", Some(Metric::Cosine), StoredValues::Normalized)
        );
        let ix = f[1].index.as_ref().unwrap();
        assert_eq!((ix.m, ix.ef_construction), (Some(32), Some(100)));
        assert_eq!(f[1].stored_values, StoredValues::Lossy);
        assert_eq!(f[1].source_datatype.as_deref(), Some("float16"));
        assert!(ix.quantization.is_some());
        assert_eq!(f[2].kind, VectorKind::Sparse);
        assert_eq!(
            f[2].index.as_ref().unwrap().extra.get("modifier"),
            Some(&json!("idf"))
        );
    }
}
