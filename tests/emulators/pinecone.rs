//! A Pinecone emulator: control plane and data plane on one server, with
//! Pinecone's JSON shapes, status codes and limits (from the pinecone-io
//! OpenAPI specs for 2025-10 / 2026-07, Pinecone's "database limits" and
//! "understanding metadata" docs, and what the official Python SDK 10.2.0
//! decodes). State lives in memory.
//!
//! Hosts and routing. Real Pinecone gives every index a host of its own. Here
//! every index is served by the emulator itself under a path prefix: the
//! `host` in an `IndexModel` is `http://127.0.0.1:PORT/__index/<name>` (with
//! the scheme, so that clients which prepend `https://` to a bare host keep
//! plain HTTP), and a data-plane call to `<host>/vectors/upsert` reaches that
//! index. Data-plane calls at the root (`/vectors/upsert`, …) are accepted
//! too when exactly one index exists; with none or several they are answered
//! 400 with an emulator message naming the prefix to use.
//!
//! What is emulated:
//! - Control plane: `GET/POST /indexes`, `GET/PATCH/DELETE /indexes/{name}`.
//!   Create accepts the 2025-10 body (`dimension`, `metric`, `vector_type`,
//!   `spec`) and the 2026-07 body the 10.x SDK sends (`schema.fields`,
//!   `deployment`); the `IndexModel` carries both shapes. The create answer
//!   says `Initializing`; every describe after it says `Ready`. Errors:
//!   `{"error":{"code","message"},"status"}`.
//! - Data plane: upsert, fetch, list (serverless only), query (brute force,
//!   metadata filters), delete, `describe_index_stats`, namespaces. Errors:
//!   `{"code","message","details":[]}` with gRPC codes (3 invalid argument,
//!   5 not found, 16 unauthenticated, …).
//! - Limits: ≤ 1000 vectors and ≤ 2 MB per upsert, ids 1–512 characters,
//!   dimension match, dense vectors not all zeros, ≤ 1000 sparse non-zeros,
//!   metadata values string / number / boolean / list of strings (no nested
//!   objects; null values are dropped, as Pinecone strips them on write — the
//!   10.2.0 SDK documents this from the server source), ≤ 40 KB of metadata
//!   per record, ≤ 1000 ids per fetch. The metadata refusal message is the
//!   server's, byte for byte as the SDK reproduces it.
//! - Vectors are stored as f32. Scores: cosine similarity, dot product
//!   (dense + sparse), squared Euclidean distance.
//! - `describe_index_stats` lags: after a write, the next
//!   [`PineconeOptions::stats_lag_reads`] stats calls still show the counts
//!   from before it (0 turns the lag off). Everything else reads its writes.
//! - The default namespace is `""` in bodies and `__default__` in paths, in
//!   `GET /namespaces` and in `describe_index_stats` keys.
//! - Document indexes (API 2026-07): a create whose `schema` declares fields
//!   of its own names (not the legacy `_values`/`_sparse_values`) makes one;
//!   it is served by the Documents API (`/namespaces/{ns}/documents/*`, see
//!   `pinecone_documents.rs`) and refuses the Vectors API, and a legacy
//!   index refuses the Documents API, as Pinecone does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{Emulator, FaultInjector, FaultKind, Faults};

#[path = "pinecone_documents.rs"]
mod documents;

/// The API version the emulator answers with (`x-pinecone-api-version`).
pub const API_VERSION: &str = "2026-07";
/// Largest upsert (and data-plane) request body: 2 MB.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Most records per upsert.
pub const MAX_UPSERT_RECORDS: usize = 1000;
/// Most ids per fetch.
pub const MAX_FETCH_IDS: usize = 1000;
/// Longest record id, in characters.
pub const MAX_ID_CHARS: usize = 512;
/// Largest metadata per record, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Most non-zero entries of a sparse vector.
pub const MAX_SPARSE_NONZEROS: usize = 1000;
/// Largest dense dimension.
pub const MAX_DIMENSION: u64 = 20_000;
/// Path prefix under which each index's data plane is served.
pub const INDEX_PREFIX: &str = "/__index/";
/// The default namespace as it appears in paths and listings.
pub const DEFAULT_NAMESPACE: &str = "__default__";

/// How to start a Pinecone emulator.
#[derive(Clone, Debug)]
pub struct PineconeOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// When set, every request (except `/__emulator/*`) must carry
    /// `Api-Key: KEY`.
    pub api_key: Option<String>,
    /// Faults injected from the start.
    pub faults: Faults,
    /// How many `describe_index_stats` calls after a write still show the
    /// counts from before it. 0: no lag.
    pub stats_lag_reads: u32,
    /// How many document reads (list, fetch, search, and listing
    /// namespaces) of a document index after an upsert or delete still do
    /// not see it. 0: no lag.
    pub document_lag_reads: u32,
    /// Data-plane request body limit in bytes.
    pub max_request_size: usize,
}

impl Default for PineconeOptions {
    fn default() -> PineconeOptions {
        PineconeOptions {
            port: 0,
            api_key: None,
            faults: Faults::default(),
            stats_lag_reads: 1,
            document_lag_reads: 1,
            max_request_size: MAX_REQUEST_BYTES,
        }
    }
}

/// A running Pinecone emulator.
pub type PineconeEmulator = Emulator<Pinecone>;

/// Starts an emulator inside the current tokio runtime.
pub async fn start(options: PineconeOptions) -> std::io::Result<PineconeEmulator> {
    let (state, faults, app) = build(&options)?;
    let emulator = super::serve(options.port, state, faults, app).await?;
    emulator.state().set_base_url(emulator.base_url());
    Ok(emulator)
}

/// Starts an emulator on a thread of its own (for callers without a runtime).
pub fn start_background(options: PineconeOptions) -> std::io::Result<PineconeEmulator> {
    let (state, faults, app) = build(&options)?;
    let emulator = super::serve_background(options.port, state, faults, app)?;
    emulator.state().set_base_url(emulator.base_url());
    Ok(emulator)
}

type Built = (Arc<Pinecone>, Arc<FaultInjector>, Router);

fn build(options: &PineconeOptions) -> std::io::Result<Built> {
    let faults = FaultInjector::new(options.faults.clone(), fault_response)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let state = Arc::new(Pinecone {
        db: Mutex::new(BTreeMap::new()),
        api_key: RwLock::new(options.api_key.clone()),
        stats_lag_reads: AtomicU32::new(options.stats_lag_reads),
        document_lag_reads: AtomicU32::new(options.document_lag_reads),
        max_request_size: AtomicUsize::new(options.max_request_size),
        base_url: RwLock::new(String::new()),
    });
    let app = router(state.clone());
    Ok((state, Arc::new(faults), app))
}

impl Emulator<Pinecone> {
    /// Turns auth on (`Some`) or off (`None`).
    pub fn set_api_key(&self, key: Option<&str>) {
        *self
            .state()
            .api_key
            .write()
            .unwrap_or_else(|e| e.into_inner()) = key.map(str::to_owned);
    }

    /// Sets the `describe_index_stats` lag (0: none).
    pub fn set_stats_lag_reads(&self, reads: u32) {
        self.state().stats_lag_reads.store(reads, Ordering::SeqCst);
        if reads == 0 {
            for index in self.state().db().values_mut() {
                index.stale = None;
            }
        }
    }

    /// Sets how many document reads an upsert or delete stays invisible to.
    pub fn set_document_lag_reads(&self, reads: u32) {
        self.state()
            .document_lag_reads
            .store(reads, Ordering::SeqCst);
    }

    /// Changes the data-plane request body limit (bytes).
    pub fn set_max_request_size(&self, bytes: usize) {
        self.state().max_request_size.store(bytes, Ordering::SeqCst);
    }

    /// The data-plane host of `index`, as `describe_index` gives it.
    pub fn index_host(&self, index: &str) -> String {
        self.state().host_of(index)
    }
}

/// The emulator's state.
pub struct Pinecone {
    db: Mutex<BTreeMap<String, Index>>,
    api_key: RwLock<Option<String>>,
    stats_lag_reads: AtomicU32,
    document_lag_reads: AtomicU32,
    max_request_size: AtomicUsize,
    /// `http://127.0.0.1:PORT`, known once the server listens.
    base_url: RwLock<String>,
}

impl Pinecone {
    fn db(&self) -> MutexGuard<'_, BTreeMap<String, Index>> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_base_url(&self, url: &str) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = url.to_owned();
    }

    fn host_of(&self, index: &str) -> String {
        let base = self.base_url.read().unwrap_or_else(|e| e.into_inner());
        format!("{base}{INDEX_PREFIX}{index}")
    }

    /// Names of the indexes, sorted.
    pub fn index_names(&self) -> Vec<String> {
        self.db().keys().cloned().collect()
    }

    /// Records in `namespace` (`""` is the default) of `index`, if it exists.
    pub fn record_count(&self, index: &str, namespace: &str) -> Option<usize> {
        self.db()
            .get(index)
            .map(|i| i.namespaces.get(namespace).map_or(0, BTreeMap::len))
    }

    /// Documents in `namespace` of the document index `index`, pending
    /// writes included, if it exists.
    pub fn document_count(&self, index: &str, namespace: &str) -> Option<usize> {
        self.db().get_mut(index).map(|i| {
            i.apply_all_pending();
            i.documents.get(namespace).map_or(0, BTreeMap::len)
        })
    }
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Cosine,
    Euclidean,
    Dotproduct,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "euclidean" => Some(Metric::Euclidean),
            "dotproduct" => Some(Metric::Dotproduct),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::Dotproduct => "dotproduct",
        }
    }
}

#[derive(Clone, Debug)]
enum Deployment {
    Serverless {
        cloud: String,
        region: String,
    },
    Pod {
        environment: String,
        pod_type: String,
        replicas: u64,
        shards: u64,
    },
}

#[derive(Clone, Debug)]
struct SparseVec {
    indices: Vec<u32>,
    values: Vec<f32>,
}

#[derive(Clone, Debug)]
struct Record {
    values: Vec<f32>,
    sparse: Option<SparseVec>,
    metadata: Option<Map<String, Value>>,
}

/// A write to a document index not visible yet: namespace, id, the document
/// (`None` for a delete), and the document reads left before it shows.
type PendingWrite = (String, String, Option<Map<String, Value>>, u32);

struct Index {
    name: String,
    /// `None` for sparse indexes.
    dimension: Option<u64>,
    metric: Metric,
    sparse: bool,
    deployment: Deployment,
    deletion_protection: String,
    tags: Option<Map<String, Value>>,
    namespaces: BTreeMap<String, BTreeMap<String, Record>>,
    /// Counts `describe_index_stats` still shows, and for how many calls.
    stale: Option<(BTreeMap<String, u64>, u32)>,
    /// A document index's schema fields, as describe shows them; `None`
    /// for a legacy vector index.
    schema: Option<Map<String, Value>>,
    /// A document index's visible documents: namespace → id → document.
    documents: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Writes not visible yet: (namespace, id, document or `None` for a
    /// delete, document reads left before it shows).
    pending: Vec<PendingWrite>,
}

impl Index {
    fn counts(&self) -> BTreeMap<String, u64> {
        let docs = self
            .documents
            .iter()
            .filter(|(_, docs)| !docs.is_empty())
            .map(|(ns, docs)| (ns.clone(), docs.len() as u64));
        self.namespaces
            .iter()
            .filter(|(_, records)| !records.is_empty())
            .map(|(ns, records)| (ns.clone(), records.len() as u64))
            .chain(docs)
            .collect()
    }

    /// Refuses a Vectors API call on a document index.
    fn vectors_api(&self) -> ApiResult<()> {
        if self.schema.is_some() {
            return Err(invalid(format!(
                "Index '{}' is a document index: use the Documents API (/namespaces/{{namespace}}/documents/...) instead of the Vectors API",
                self.name
            )));
        }
        Ok(())
    }

    /// Called before every write: keeps the counts stats must still show.
    fn before_write(&mut self, lag: u32) {
        if lag == 0 {
            self.stale = None;
            return;
        }
        let counts = match self.stale.take() {
            Some((counts, _)) => counts,
            None => self.counts(),
        };
        self.stale = Some((counts, lag));
    }

    fn drop_empty_namespaces(&mut self) {
        self.namespaces.retain(|_, records| !records.is_empty());
    }

    fn model(&self, host: String, ready: bool) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(d) = self.dimension {
            m.insert("dimension".into(), json!(d));
        }
        m.insert("metric".into(), json!(self.metric.name()));
        m.insert(
            "vector_type".into(),
            json!(if self.sparse { "sparse" } else { "dense" }),
        );
        m.insert("host".into(), json!(host));
        m.insert(
            "deletion_protection".into(),
            json!(self.deletion_protection),
        );
        m.insert(
            "tags".into(),
            self.tags.clone().map_or(Value::Null, Value::Object),
        );
        let (spec, deployment) = match &self.deployment {
            Deployment::Serverless { cloud, region } => (
                json!({"serverless": {"cloud": cloud, "region": region}}),
                json!({"deployment_type": "managed", "cloud": cloud, "region": region}),
            ),
            Deployment::Pod {
                environment,
                pod_type,
                replicas,
                shards,
            } => (
                json!({"pod": {"environment": environment, "pod_type": pod_type,
                    "pods": replicas * shards, "replicas": replicas, "shards": shards,
                    "metadata_config": null}}),
                json!({"deployment_type": "pod", "environment": environment,
                    "pod_type": pod_type, "replicas": replicas, "shards": shards}),
            ),
        };
        m.insert("spec".into(), spec);
        m.insert("deployment".into(), deployment);
        let state = if ready { "Ready" } else { "Initializing" };
        m.insert("status".into(), json!({"ready": ready, "state": state}));
        let field = if let Some(schema) = &self.schema {
            for legacy in ["dimension", "metric", "vector_type"] {
                m.remove(legacy);
            }
            Value::Object(schema.clone())
        } else if self.sparse {
            json!({"_sparse_values": {"type": "sparse_vector"}})
        } else {
            json!({"_values": {"type": "dense_vector",
                "dimension": self.dimension, "metric": self.metric.name()}})
        };
        m.insert("schema".into(), json!({ "fields": field }));
        if matches!(self.deployment, Deployment::Serverless { .. }) {
            m.insert(
                "read_capacity".into(),
                json!({"mode": "OnDemand", "status": {"state": "Ready"}}),
            );
        }
        Value::Object(m)
    }
}

// ---------------------------------------------------------------------------
// Routing, auth, errors
// ---------------------------------------------------------------------------

fn router(state: Arc<Pinecone>) -> Router {
    let mut app = Router::new()
        .route("/indexes", get(list_indexes).post(create_index))
        .route(
            "/indexes/{name}",
            get(describe_index)
                .delete(delete_index)
                .patch(configure_index),
        );
    for prefix in ["", "/__index/{index}"] {
        app = app
            .route(&format!("{prefix}/vectors/upsert"), post(upsert))
            .route(&format!("{prefix}/vectors/fetch"), get(fetch))
            .route(&format!("{prefix}/vectors/list"), get(list_vectors))
            .route(&format!("{prefix}/vectors/delete"), post(delete_vectors))
            .route(&format!("{prefix}/query"), post(query))
            .route(
                &format!("{prefix}/describe_index_stats"),
                post(describe_index_stats).get(describe_index_stats),
            )
            .route(&format!("{prefix}/namespaces"), get(list_namespaces))
            .route(
                &format!("{prefix}/namespaces/{{namespace}}"),
                get(describe_namespace).delete(delete_namespace),
            )
            .route(
                &format!("{prefix}/namespaces/{{namespace}}/documents/{{verb}}"),
                post(documents::handle),
            );
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

fn is_control_plane(path: &str) -> bool {
    path == "/indexes" || path.starts_with("/indexes/")
}

async fn not_found(uri: Uri) -> Response {
    if is_control_plane(uri.path()) {
        control_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found")
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "Not Found",
        )
            .into_response()
    }
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain")],
        "Method Not Allowed",
    )
        .into_response()
}

async fn auth(State(p): State<Arc<Pinecone>>, request: Request, next: Next) -> Response {
    let key = p.api_key.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut response = match key.filter(|k| !k.is_empty()) {
        None => next.run(request).await,
        Some(key) => {
            let given = request
                .headers()
                .get("api-key")
                .and_then(|v| v.to_str().ok());
            if given == Some(key.as_str()) {
                next.run(request).await
            } else if is_control_plane(request.uri().path()) {
                let message = if given.is_none() {
                    "API key is missing or invalid for the environment \"emulator\". Check that the correct environment is specified."
                } else {
                    "Invalid API Key"
                };
                control_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
            } else {
                data_error(
                    StatusCode::UNAUTHORIZED,
                    16,
                    "Request unauthorized, please check your API key.",
                )
            }
        }
    };
    response.headers_mut().insert(
        "x-pinecone-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    response
}

/// The body of an injected 429 / 503, as Pinecone writes them.
fn fault_response(kind: FaultKind, faults: &Faults, _method: &Method, path: &str) -> Response {
    let control = is_control_plane(path);
    match kind {
        FaultKind::RateLimit => {
            let secs = faults.retry_after_secs;
            let message = "Request failed. You've reached the max request rate limit for this namespace. Retry after a short delay.";
            let mut response = if control {
                control_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", message)
            } else {
                data_error(StatusCode::TOO_MANY_REQUESTS, 8, message)
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        _ => {
            let message = "The service is temporarily unavailable (emulated fault).";
            if control {
                control_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
            } else {
                data_error(StatusCode::SERVICE_UNAVAILABLE, 14, message)
            }
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn control_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}, "status": status.as_u16()}),
    )
}

fn data_error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(
        status,
        &json!({"code": code, "message": message, "details": []}),
    )
}

/// A data-plane failure.
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

type ApiResult<T> = Result<T, ApiError>;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: 3,
        message: message.into(),
    }
}

impl ApiError {
    fn into_response(self) -> Response {
        data_error(self.status, self.code, &self.message)
    }
}

fn respond(result: ApiResult<Value>) -> Response {
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// Which index a data-plane request is for: the `/__index/<name>` prefix, or
/// the only index there is.
fn index_name(db: &BTreeMap<String, Index>, uri: &Uri) -> ApiResult<String> {
    if let Some(rest) = uri.path().strip_prefix(INDEX_PREFIX) {
        let name = rest.split('/').next().unwrap_or_default();
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        if db.contains_key(&name) {
            return Ok(name);
        }
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: 5,
            message: format!("Index '{name}' not found"),
        });
    }
    let mut names = db.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.clone()),
        (None, _) => Err(invalid(
            "pinecone emulator: no index exists; create one and use its host",
        )),
        _ => Err(invalid(format!(
            "pinecone emulator: several indexes exist; send data-plane requests to the index's host (http://127.0.0.1:PORT{INDEX_PREFIX}<name>)"
        ))),
    }
}

async fn read_json(p: &Pinecone, request: Request) -> ApiResult<Value> {
    let limit = p.max_request_size.load(Ordering::SeqCst);
    let too_large = |n: Option<usize>| {
        invalid(match n {
            Some(n) => {
                format!(
                    "Request size {n} bytes exceeds the maximum supported size of {limit} bytes"
                )
            }
            None => format!("Request size exceeds the maximum supported size of {limit} bytes"),
        })
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared
        && n > limit
    {
        return Err(too_large(Some(n)));
    }
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| too_large(None))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!(
            "Failed to deserialize the JSON body into the target type: {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(invalid(
            "Failed to deserialize the JSON body into the target type: expected an object",
        ));
    }
    Ok(value)
}

/// The query string as (name, value) pairs, percent-decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

fn query_param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// `""` and `__default__` are both the default namespace.
fn namespace_key(ns: &str) -> String {
    if ns == DEFAULT_NAMESPACE {
        String::new()
    } else {
        ns.to_owned()
    }
}

fn namespace_shown(ns: &str) -> &str {
    if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
}

fn body_namespace(body: &Value) -> ApiResult<String> {
    match body.get("namespace") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(namespace_key(s)),
        Some(_) => Err(invalid("namespace must be a string")),
    }
}

fn usage() -> Value {
    json!({"readUnits": 1})
}

// ---------------------------------------------------------------------------
// Control plane
// ---------------------------------------------------------------------------

async fn list_indexes(State(p): State<Arc<Pinecone>>) -> Response {
    let db = p.db();
    let indexes: Vec<Value> = db
        .values()
        .map(|i| i.model(p.host_of(&i.name), true))
        .collect();
    json_response(StatusCode::OK, &json!({ "indexes": indexes }))
}

async fn describe_index(State(p): State<Arc<Pinecone>>, Path(name): Path<String>) -> Response {
    let db = p.db();
    match db.get(&name) {
        Some(index) => json_response(StatusCode::OK, &index.model(p.host_of(&name), true)),
        None => control_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Resource {name} not found"),
        ),
    }
}

async fn delete_index(State(p): State<Arc<Pinecone>>, Path(name): Path<String>) -> Response {
    let mut db = p.db();
    match db.get(&name) {
        None => control_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Resource {name} not found"),
        ),
        Some(index) if index.deletion_protection == "enabled" => control_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "Deletion protection is enabled for this index. Disable deletion protection before retrying.",
        ),
        Some(_) => {
            db.remove(&name);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

async fn configure_index(
    State(p): State<Arc<Pinecone>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let bad = |m: &str| control_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m);
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad("Invalid request body: expected a JSON object");
    };
    let mut db = p.db();
    let Some(index) = db.get_mut(&name) else {
        return control_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Resource {name} not found"),
        );
    };
    if let Some(dp) = body.get("deletion_protection") {
        match dp.as_str() {
            Some(s @ ("enabled" | "disabled")) => index.deletion_protection = s.to_owned(),
            _ => return bad("deletion_protection must be \"enabled\" or \"disabled\""),
        }
    }
    if let Some(tags) = body.get("tags") {
        let Some(tags) = tags.as_object() else {
            return bad("tags must be an object");
        };
        let merged = index.tags.get_or_insert_with(Map::new);
        for (k, v) in tags {
            if v.as_str().is_some_and(str::is_empty) {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        if merged.is_empty() {
            index.tags = None;
        }
    }
    json_response(StatusCode::OK, &index.model(p.host_of(&name), true))
}

fn valid_index_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 45
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

async fn create_index(State(p): State<Arc<Pinecone>>, body: axum::body::Bytes) -> Response {
    let bad = |m: String| control_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &m);
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad("Invalid request body: expected a JSON object".into()),
        Err(e) => return bad(format!("Invalid request body: {e}")),
    };
    let index = match parse_create(&body) {
        Ok(i) => i,
        Err(m) => {
            return control_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", &m);
        }
    };
    let mut db = p.db();
    if db.contains_key(&index.name) {
        return control_error(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            "Resource  already exists",
        );
    }
    let name = index.name.clone();
    let model = index.model(p.host_of(&name), false);
    db.insert(name, index);
    json_response(StatusCode::CREATED, &model)
}

/// Reads a create body, 2025-10 or 2026-07 shape.
fn parse_create(body: &Value) -> Result<Index, String> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or("Missing required field `name`")?
        .to_owned();
    if !valid_index_name(&name) {
        return Err(format!(
            "Invalid index name '{name}': must be 1-45 characters, consist of lower case alphanumeric characters or '-', and start and end with an alphanumeric character"
        ));
    }
    if let Some(fields) = body
        .get("schema")
        .and_then(|s| s.get("fields"))
        .and_then(Value::as_object)
        .filter(|f| f.keys().any(|k| k != "_values" && k != "_sparse_values"))
    {
        let schema = documents::parse_schema(fields)?;
        let (dimension, metric) = documents::dense_of(&schema);
        return Ok(Index {
            name,
            dimension,
            metric: metric.unwrap_or(Metric::Cosine),
            sparse: false,
            deployment: parse_deployment(body)?,
            deletion_protection: parse_deletion_protection(body)?,
            tags: parse_tags(body)?,
            namespaces: BTreeMap::new(),
            stale: None,
            schema: Some(schema),
            documents: BTreeMap::new(),
            pending: Vec::new(),
        });
    }
    let (dimension, metric, sparse) = if let Some(schema) = body.get("schema") {
        let fields = schema
            .get("fields")
            .and_then(Value::as_object)
            .ok_or("schema.fields must be an object")?;
        let vectors: Vec<(&String, &Value)> = fields
            .iter()
            .filter(|(_, f)| {
                matches!(
                    f.get("type").and_then(Value::as_str),
                    Some("dense_vector" | "sparse_vector")
                )
            })
            .collect();
        let [(_, field)] = vectors.as_slice() else {
            return Err(
                "pinecone emulator: the schema must declare exactly one dense_vector or sparse_vector field".into(),
            );
        };
        let sparse = field.get("type").and_then(Value::as_str) == Some("sparse_vector");
        let metric = field
            .get("metric")
            .and_then(Value::as_str)
            .map(str::to_owned);
        (field.get("dimension").cloned(), metric, sparse)
    } else {
        let sparse = match body.get("vector_type").and_then(Value::as_str) {
            None | Some("dense") => false,
            Some("sparse") => true,
            Some(other) => {
                return Err(format!(
                    "Invalid vector_type '{other}': must be one of dense, sparse"
                ));
            }
        };
        let metric = body
            .get("metric")
            .and_then(Value::as_str)
            .map(str::to_owned);
        (body.get("dimension").cloned(), metric, sparse)
    };
    let metric = match metric.as_deref() {
        None if sparse => Metric::Dotproduct,
        None => Metric::Cosine,
        Some(m) => Metric::parse(m).ok_or_else(|| {
            format!("Invalid metric '{m}': must be one of cosine, euclidean, dotproduct")
        })?,
    };
    let dimension = match (sparse, dimension.filter(|d| !d.is_null())) {
        (true, Some(_)) => return Err("Sparse vector indexes must not have a dimension".into()),
        (true, None) => {
            if metric != Metric::Dotproduct {
                return Err("Sparse vector indexes must use the metric dotproduct".into());
            }
            None
        }
        (false, None) => return Err("Dimension is required for dense vector indexes".into()),
        (false, Some(d)) => match d.as_u64() {
            Some(d) if (1..=MAX_DIMENSION).contains(&d) => Some(d),
            _ => {
                return Err(format!(
                    "Invalid dimension {d}: must be between 1 and {MAX_DIMENSION}"
                ));
            }
        },
    };
    let deployment = parse_deployment(body)?;
    let deletion_protection = parse_deletion_protection(body)?;
    let tags = parse_tags(body)?;
    Ok(Index {
        name,
        dimension,
        metric,
        sparse,
        deployment,
        deletion_protection,
        tags,
        namespaces: BTreeMap::new(),
        stale: None,
        schema: None,
        documents: BTreeMap::new(),
        pending: Vec::new(),
    })
}

fn parse_deletion_protection(body: &Value) -> Result<String, String> {
    match body.get("deletion_protection") {
        None | Some(Value::Null) => Ok("disabled".to_owned()),
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => Ok(s.clone()),
        Some(other) => Err(format!(
            "Invalid deletion_protection {other}: must be enabled or disabled"
        )),
    }
}

fn parse_tags(body: &Value) -> Result<Option<Map<String, Value>>, String> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(t)) => {
            if t.values().any(|v| !v.is_string()) {
                return Err("Tag values must be strings".into());
            }
            Ok((!t.is_empty()).then(|| t.clone()))
        }
        Some(_) => Err("tags must be an object".into()),
    }
}

fn parse_deployment(body: &Value) -> Result<Deployment, String> {
    let text = |v: &Value, key: &str| -> Result<String, String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("Missing required field `{key}`"))
    };
    let count = |v: &Value, key: &str| -> Result<u64, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(1),
            Some(n) => n
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{key} must be a positive integer")),
        }
    };
    if let Some(d) = body.get("deployment").filter(|d| !d.is_null()) {
        return match d.get("deployment_type").and_then(Value::as_str) {
            Some("managed" | "serverless") => Ok(Deployment::Serverless {
                cloud: text(d, "cloud")?,
                region: text(d, "region")?,
            }),
            Some("pod") => Ok(Deployment::Pod {
                environment: text(d, "environment")?,
                pod_type: text(d, "pod_type")?,
                replicas: count(d, "replicas")?,
                shards: count(d, "shards")?,
            }),
            other => Err(format!(
                "pinecone emulator: deployment_type {other:?} is not emulated (managed or pod)"
            )),
        };
    }
    let spec = body
        .get("spec")
        .filter(|s| !s.is_null())
        .ok_or("Missing required field `spec`")?;
    if let Some(s) = spec.get("serverless").filter(|s| !s.is_null()) {
        let cloud = text(s, "cloud")?;
        if !["aws", "gcp", "azure"].contains(&cloud.as_str()) {
            return Err(format!(
                "Invalid cloud '{cloud}': must be one of aws, gcp, azure"
            ));
        }
        return Ok(Deployment::Serverless {
            cloud,
            region: text(s, "region")?,
        });
    }
    if let Some(pod) = spec.get("pod").filter(|s| !s.is_null()) {
        return Ok(Deployment::Pod {
            environment: text(pod, "environment")?,
            pod_type: pod
                .get("pod_type")
                .and_then(Value::as_str)
                .unwrap_or("p1.x1")
                .to_owned(),
            replicas: count(pod, "replicas")?,
            shards: count(pod, "shards")?,
        });
    }
    Err("spec must contain serverless or pod".into())
}

// ---------------------------------------------------------------------------
// Data plane: validation
// ---------------------------------------------------------------------------

fn float_list(v: &Value, what: &str) -> ApiResult<Vec<f32>> {
    let arr = v
        .as_array()
        .ok_or_else(|| invalid(format!("{what} must be a list of numbers")))?;
    arr.iter()
        .map(|x| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| invalid(format!("{what} must be a list of numbers")))
        })
        .collect()
}

fn parse_sparse(v: &Value, id: &str) -> ApiResult<SparseVec> {
    let indices = v
        .get("indices")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("Sparse vector of id '{id}' is missing indices")))?;
    let indices: Vec<u32> = indices
        .iter()
        .map(|i| {
            i.as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "Sparse vector indices of id '{id}' must be unsigned 32-bit integers"
                    ))
                })
        })
        .collect::<ApiResult<_>>()?;
    let values = float_list(v.get("values").unwrap_or(&Value::Null), "sparse values")?;
    if indices.len() != values.len() {
        return Err(invalid(format!(
            "Sparse vector of id '{id}' has {} indices and {} values: indices and values must have the same length",
            indices.len(),
            values.len()
        )));
    }
    if indices.len() > MAX_SPARSE_NONZEROS {
        return Err(invalid(format!(
            "Sparse vector of id '{id}' has {} non-zero values, more than the maximum of {MAX_SPARSE_NONZEROS}",
            indices.len()
        )));
    }
    let mut seen = indices.clone();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(format!(
            "Sparse vector of id '{id}' contains duplicate indices"
        )));
    }
    Ok(SparseVec { indices, values })
}

/// Renders a refused metadata value as Pinecone's error message does:
/// compact JSON with every number a double (`1` → `1.0`), cut to 16 bytes
/// with `...` after.
fn render_metadata_value(value: &Value) -> String {
    fn render(v: &Value, out: &mut String) {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&format!("{f}"));
                }
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    render(item, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    render(value, &mut text);
    if text.len() <= 16 {
        return text;
    }
    let mut cut = 16;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// Metadata rules: values are strings, numbers, booleans or lists of
/// strings; null values are dropped (Pinecone strips them on write); at most
/// 40 KB of JSON per record.
fn clean_metadata(metadata: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let mut kept = Map::new();
    for (key, value) in metadata {
        let ok = match value {
            Value::Null => continue,
            Value::String(_) | Value::Bool(_) | Value::Number(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            Value::Object(_) => false,
        };
        if !ok {
            return Err(invalid(format!(
                "Metadata value must be a string, number, boolean or list of strings, got '{}' for field '{key}'",
                render_metadata_value(value)
            )));
        }
        kept.insert(key.clone(), value.clone());
    }
    let size = serde_json::to_vec(&kept).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )));
    }
    Ok(kept)
}

fn parse_record(index: &Index, v: &Value) -> ApiResult<(String, Record)> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Every vector must have a string id"))?
        .to_owned();
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(invalid(format!(
            "Vector ID must be between 1 and {MAX_ID_CHARS} characters long, got {chars}"
        )));
    }
    let values = match v.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(values) => float_list(values, "values")?,
    };
    let sparse = match v.get("sparseValues").or_else(|| v.get("sparse_values")) {
        None | Some(Value::Null) => None,
        Some(s) => Some(parse_sparse(s, &id)?),
    };
    if index.sparse {
        if !values.is_empty() {
            return Err(invalid(format!(
                "Vector '{id}' has dense values, but the index is a sparse index"
            )));
        }
        match &sparse {
            None => {
                return Err(invalid(format!(
                    "Vector '{id}' must have sparse values in a sparse index"
                )));
            }
            Some(s) if s.indices.is_empty() => {
                return Err(invalid(format!(
                    "Sparse vector of id '{id}' must have at least one non-zero value"
                )));
            }
            Some(_) => {}
        }
    } else {
        let dim = index.dimension.unwrap_or_default() as usize;
        if values.len() != dim {
            return Err(invalid(format!(
                "Vector dimension {} does not match the dimension of the index {dim}",
                values.len()
            )));
        }
        if values.iter().all(|x| *x == 0.0) {
            return Err(invalid(format!(
                "Dense vectors must contain at least one non-zero value. Vector ID {id} contains only zeros."
            )));
        }
    }
    if values.iter().any(|x| !x.is_finite())
        || sparse
            .as_ref()
            .is_some_and(|s| s.values.iter().any(|x| !x.is_finite()))
    {
        return Err(invalid(format!(
            "Vector '{id}' contains a non-finite value"
        )));
    }
    let metadata = match v.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(clean_metadata(m)?).filter(|m| !m.is_empty()),
        Some(_) => {
            return Err(invalid(format!(
                "Metadata of vector '{id}' must be an object"
            )));
        }
    };
    Ok((
        id,
        Record {
            values,
            sparse,
            metadata,
        },
    ))
}

/// An f32 as the JSON number Pinecone writes: its shortest decimal form
/// (`0.1`, not `0.10000000149011612`); parsed as f32 it is the stored value.
fn f32_json(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn f32s_json(xs: &[f32]) -> Value {
    Value::Array(xs.iter().copied().map(f32_json).collect())
}

fn record_json(id: &str, r: &Record, values: bool, metadata: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    if values {
        m.insert("values".into(), f32s_json(&r.values));
        if let Some(s) = &r.sparse {
            m.insert(
                "sparseValues".into(),
                json!({"indices": s.indices, "values": f32s_json(&s.values)}),
            );
        }
    }
    if metadata && let Some(md) = &r.metadata {
        m.insert("metadata".into(), Value::Object(md.clone()));
    }
    m
}

// ---------------------------------------------------------------------------
// Data plane: handlers
// ---------------------------------------------------------------------------

async fn upsert(State(p): State<Arc<Pinecone>>, request: Request) -> Response {
    respond(upsert_inner(&p, request).await)
}

async fn upsert_inner(p: &Pinecone, request: Request) -> ApiResult<Value> {
    let uri = request.uri().clone();
    let body = read_json(p, request).await?;
    let namespace = body_namespace(&body)?;
    let vectors = body
        .get("vectors")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Missing required field `vectors`"))?;
    if vectors.is_empty() {
        return Err(invalid("No vectors provided for upsert"));
    }
    if vectors.len() > MAX_UPSERT_RECORDS {
        return Err(invalid(format!(
            "Upsert request contains {} vectors, more than the maximum of {MAX_UPSERT_RECORDS}",
            vectors.len()
        )));
    }
    let lag = p.stats_lag_reads.load(Ordering::SeqCst);
    let mut db = p.db();
    let name = index_name(&db, &uri)?;
    let index = db.get_mut(&name).expect("index exists");
    index.vectors_api()?;
    let records = vectors
        .iter()
        .map(|v| parse_record(index, v))
        .collect::<ApiResult<Vec<_>>>()?;
    index.before_write(lag);
    let n = records.len();
    let ns = index.namespaces.entry(namespace).or_default();
    for (id, record) in records {
        ns.insert(id, record);
    }
    Ok(json!({ "upsertedCount": n }))
}

async fn fetch(State(p): State<Arc<Pinecone>>, uri: Uri) -> Response {
    respond(fetch_inner(&p, &uri))
}

fn fetch_inner(p: &Pinecone, uri: &Uri) -> ApiResult<Value> {
    let pairs = query_pairs(uri);
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.as_str())
        .collect();
    let namespace = namespace_key(&query_param(&pairs, "namespace").unwrap_or_default());
    let db = p.db();
    let name = index_name(&db, uri)?;
    if ids.is_empty() {
        return Err(invalid("No IDs provided for fetch query"));
    }
    if ids.len() > MAX_FETCH_IDS {
        return Err(invalid(format!(
            "Fetch request contains {} ids, more than the maximum of {MAX_FETCH_IDS}",
            ids.len()
        )));
    }
    let index = &db[&name];
    index.vectors_api()?;
    let mut vectors = Map::new();
    if let Some(ns) = index.namespaces.get(&namespace) {
        for id in ids {
            if let Some(r) = ns.get(id) {
                vectors.insert(id.to_owned(), Value::Object(record_json(id, r, true, true)));
            }
        }
    }
    Ok(json!({"vectors": vectors, "namespace": namespace, "usage": usage()}))
}

fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{last}"))
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("v1:")
        .map(str::to_owned)
}

fn parse_limit(pairs: &[(String, String)], max: usize) -> ApiResult<usize> {
    match query_param(pairs, "limit").filter(|s| !s.is_empty()) {
        None => Ok(100),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "Invalid limit {s}: must be an integer between 1 and {max}"
            ))),
        },
    }
}

async fn list_vectors(State(p): State<Arc<Pinecone>>, uri: Uri) -> Response {
    respond(list_vectors_inner(&p, &uri))
}

fn list_vectors_inner(p: &Pinecone, uri: &Uri) -> ApiResult<Value> {
    let pairs = query_pairs(uri);
    let db = p.db();
    let name = index_name(&db, uri)?;
    let index = &db[&name];
    index.vectors_api()?;
    if matches!(index.deployment, Deployment::Pod { .. }) {
        return Err(ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            code: 12,
            message: "The list operation is only supported for serverless indexes".into(),
        });
    }
    let namespace = namespace_key(&query_param(&pairs, "namespace").unwrap_or_default());
    let prefix = query_param(&pairs, "prefix").unwrap_or_default();
    let limit = parse_limit(&pairs, 100)?;
    let after = match query_param(&pairs, "paginationToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(decode_token(&t).ok_or_else(|| invalid("Invalid pagination token"))?),
    };
    let empty = BTreeMap::new();
    let records = index.namespaces.get(&namespace).unwrap_or(&empty);
    // Ids after the token, straight from the ordered map (not a scan from the start).
    let from = match &after {
        Some(a) => std::ops::Bound::Excluded(a.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut ids = records
        .range::<String, _>((from, std::ops::Bound::Unbounded))
        .map(|(id, _)| id)
        .filter(|id| id.starts_with(&prefix));
    let page: Vec<&String> = ids.by_ref().take(limit).collect();
    let more = ids.next().is_some();
    let mut out = Map::new();
    out.insert(
        "vectors".into(),
        Value::Array(page.iter().map(|id| json!({ "id": id })).collect()),
    );
    if more && let Some(last) = page.last() {
        out.insert("pagination".into(), json!({"next": encode_token(last)}));
    }
    out.insert("namespace".into(), json!(namespace));
    out.insert("usage".into(), usage());
    Ok(Value::Object(out))
}

async fn delete_vectors(State(p): State<Arc<Pinecone>>, request: Request) -> Response {
    respond(delete_inner(&p, request).await)
}

async fn delete_inner(p: &Pinecone, request: Request) -> ApiResult<Value> {
    let uri = request.uri().clone();
    let body = read_json(p, request).await?;
    let namespace = body_namespace(&body)?;
    let ids = match body.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) => Some(
            ids.iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid("ids must be strings"))
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(invalid("ids must be a list of strings")),
    };
    let delete_all = body.get("deleteAll").and_then(Value::as_bool) == Some(true);
    let filter = body.get("filter").filter(|f| !f.is_null()).cloned();
    let given =
        usize::from(ids.is_some()) + usize::from(delete_all) + usize::from(filter.is_some());
    if given != 1 {
        return Err(invalid(
            "Exactly one of ids, deleteAll, or filter must be provided",
        ));
    }
    let lag = p.stats_lag_reads.load(Ordering::SeqCst);
    let mut db = p.db();
    let name = index_name(&db, &uri)?;
    let index = db.get_mut(&name).expect("index exists");
    index.vectors_api()?;
    if ids.as_ref().is_some_and(|ids| ids.len() > 1000) {
        return Err(invalid("Delete request contains more than 1000 ids"));
    }
    if let Some(f) = &filter {
        check_filter(f)?;
    }
    index.before_write(lag);
    if let Some(records) = index.namespaces.get_mut(&namespace) {
        if let Some(ids) = ids {
            for id in ids {
                records.remove(&id);
            }
        } else if delete_all {
            records.clear();
        } else if let Some(f) = filter {
            records.retain(|_, r| !matches_filter(&f, r.metadata.as_ref()));
        }
    }
    index.drop_empty_namespaces();
    Ok(json!({}))
}

async fn describe_index_stats(State(p): State<Arc<Pinecone>>, request: Request) -> Response {
    respond(stats_inner(&p, request).await)
}

async fn stats_inner(p: &Pinecone, request: Request) -> ApiResult<Value> {
    let uri = request.uri().clone();
    let body = if request.method() == Method::POST {
        read_json(p, request).await?
    } else {
        json!({})
    };
    let mut db = p.db();
    let name = index_name(&db, &uri)?;
    let index = db.get_mut(&name).expect("index exists");
    if body
        .get("filter")
        .is_some_and(|f| f.as_object().is_some_and(|f| !f.is_empty()))
        && matches!(index.deployment, Deployment::Serverless { .. })
    {
        return Err(invalid(
            "Serverless and starter indexes do not support describing index stats with metadata filtering.",
        ));
    }
    let counts = match index.stale.take() {
        Some((counts, left)) => {
            if left > 1 {
                index.stale = Some((counts.clone(), left - 1));
            }
            counts
        }
        None => index.counts(),
    };
    let total: u64 = counts.values().sum();
    let namespaces: Map<String, Value> = counts
        .iter()
        .map(|(ns, n)| (namespace_shown(ns).to_owned(), json!({ "vectorCount": n })))
        .collect();
    let mut out = Map::new();
    out.insert("namespaces".into(), Value::Object(namespaces));
    if let Some(d) = index.dimension {
        out.insert("dimension".into(), json!(d));
    }
    out.insert("indexFullness".into(), json!(0.0));
    out.insert("totalVectorCount".into(), json!(total));
    out.insert("metric".into(), json!(index.metric.name()));
    out.insert(
        "vectorType".into(),
        json!(if index.sparse { "sparse" } else { "dense" }),
    );
    Ok(Value::Object(out))
}

async fn list_namespaces(State(p): State<Arc<Pinecone>>, uri: Uri) -> Response {
    respond(list_namespaces_inner(&p, &uri))
}

fn list_namespaces_inner(p: &Pinecone, uri: &Uri) -> ApiResult<Value> {
    let pairs = query_pairs(uri);
    let mut db = p.db();
    let name = index_name(&db, uri)?;
    let index = db.get_mut(&name).expect("index exists");
    // Listing namespaces reads documents too: pending writes come closer.
    index.read_tick();
    let index = &*index;
    let limit = parse_limit(&pairs, 100)?;
    let prefix = query_param(&pairs, "prefix").unwrap_or_default();
    let after = match query_param(&pairs, "paginationToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(decode_token(&t).ok_or_else(|| invalid("Invalid pagination token"))?),
    };
    let all: Vec<(String, u64)> = {
        let mut v: Vec<(String, u64)> = index
            .counts()
            .into_iter()
            .map(|(ns, n)| (namespace_shown(&ns).to_owned(), n))
            .filter(|(ns, _)| ns.starts_with(&prefix))
            .collect();
        v.sort();
        v
    };
    let total = all.len();
    let mut rest = all
        .into_iter()
        .filter(|(ns, _)| after.as_ref().is_none_or(|a| ns > a));
    let page: Vec<(String, u64)> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let mut out = Map::new();
    out.insert(
        "namespaces".into(),
        Value::Array(
            page.iter()
                .map(|(ns, n)| json!({"name": ns, "record_count": n}))
                .collect(),
        ),
    );
    if more && let Some((last, _)) = page.last() {
        out.insert("pagination".into(), json!({"next": encode_token(last)}));
    }
    out.insert("total_count".into(), json!(total));
    Ok(Value::Object(out))
}

async fn describe_namespace(
    State(p): State<Arc<Pinecone>>,
    uri: Uri,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response {
    let db = p.db();
    let result = index_name(&db, &uri).and_then(|name| {
        let shown = params.get("namespace").cloned().unwrap_or_default();
        let key = namespace_key(&shown);
        match db[&name].namespaces.get(&key).filter(|r| !r.is_empty()) {
            Some(records) => Ok(json!({"name": shown, "record_count": records.len()})),
            None => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: 5,
                message: format!("Namespace not found: {shown}"),
            }),
        }
    });
    respond(result)
}

async fn delete_namespace(
    State(p): State<Arc<Pinecone>>,
    uri: Uri,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response {
    let lag = p.stats_lag_reads.load(Ordering::SeqCst);
    let mut db = p.db();
    let result = index_name(&db, &uri).and_then(|name| {
        let shown = params.get("namespace").cloned().unwrap_or_default();
        let key = namespace_key(&shown);
        let index = db.get_mut(&name).expect("index exists");
        if index.namespaces.get(&key).is_none_or(BTreeMap::is_empty) {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: 5,
                message: format!("Namespace not found: {shown}"),
            });
        }
        index.before_write(lag);
        index.namespaces.remove(&key);
        Ok(json!({}))
    });
    match result {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------
// Query and filters
// ---------------------------------------------------------------------------

async fn query(State(p): State<Arc<Pinecone>>, request: Request) -> Response {
    respond(query_inner(&p, request).await)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

fn sparse_dot(a: &SparseVec, b: &SparseVec) -> f64 {
    let lookup: BTreeMap<u32, f32> = b
        .indices
        .iter()
        .copied()
        .zip(b.values.iter().copied())
        .collect();
    a.indices
        .iter()
        .zip(&a.values)
        .filter_map(|(i, v)| lookup.get(i).map(|w| f64::from(*v) * f64::from(*w)))
        .sum()
}

fn score(metric: Metric, q: &[f32], qs: Option<&SparseVec>, r: &Record) -> f64 {
    match metric {
        Metric::Cosine => {
            let n = (dot(q, q) * dot(&r.values, &r.values)).sqrt();
            if n == 0.0 { 0.0 } else { dot(q, &r.values) / n }
        }
        Metric::Euclidean => q
            .iter()
            .zip(&r.values)
            .map(|(a, b)| {
                let d = f64::from(*a) - f64::from(*b);
                d * d
            })
            .sum(),
        Metric::Dotproduct => {
            let dense = if q.is_empty() { 0.0 } else { dot(q, &r.values) };
            let sparse = match (qs, &r.sparse) {
                (Some(a), Some(b)) => sparse_dot(a, b),
                _ => 0.0,
            };
            dense + sparse
        }
    }
}

async fn query_inner(p: &Pinecone, request: Request) -> ApiResult<Value> {
    let uri = request.uri().clone();
    let body = read_json(p, request).await?;
    let namespace = body_namespace(&body)?;
    let top_k = body
        .get("topK")
        .or_else(|| body.get("top_k"))
        .ok_or_else(|| invalid("Missing required field `topK`"))?
        .as_u64()
        .filter(|k| (1..=10_000).contains(k))
        .ok_or_else(|| invalid("topK must be an integer between 1 and 10000"))?
        as usize;
    let include_values = body.get("includeValues").and_then(Value::as_bool) == Some(true);
    let include_metadata = body.get("includeMetadata").and_then(Value::as_bool) == Some(true);
    let filter = body.get("filter").filter(|f| !f.is_null()).cloned();
    if let Some(f) = &filter {
        check_filter(f)?;
    }
    let db = p.db();
    let name = index_name(&db, &uri)?;
    let index = &db[&name];
    index.vectors_api()?;
    let empty = BTreeMap::new();
    let records = index.namespaces.get(&namespace).unwrap_or(&empty);
    let by_vector = body.get("vector").filter(|v| !v.is_null());
    let by_id = body.get("id").filter(|v| !v.is_null());
    let sparse_q = match body.get("sparseVector").filter(|v| !v.is_null()) {
        None => None,
        Some(s) => Some(parse_sparse(s, "query")?),
    };
    if by_vector.is_some() && by_id.is_some() {
        return Err(invalid("Cannot provide both 'id' and 'vector' in a query"));
    }
    let (q, qs): (Vec<f32>, Option<SparseVec>) = if let Some(v) = by_vector {
        (float_list(v, "vector")?, sparse_q)
    } else if let Some(id) = by_id {
        let id = id.as_str().ok_or_else(|| invalid("id must be a string"))?;
        match records.get(id) {
            Some(r) => (r.values.clone(), r.sparse.clone()),
            None => {
                return Ok(json!({"matches": [], "namespace": namespace, "usage": usage()}));
            }
        }
    } else if sparse_q.is_some() {
        (Vec::new(), sparse_q)
    } else {
        return Err(invalid(
            "No query provided: one of 'vector', 'sparseVector' or 'id' is required",
        ));
    };
    if index.sparse {
        if !q.is_empty() {
            return Err(invalid(
                "Sparse indexes cannot be queried with dense vectors",
            ));
        }
        if qs.is_none() {
            return Err(invalid(
                "Sparse indexes must be queried with a sparse vector",
            ));
        }
    } else {
        let dim = index.dimension.unwrap_or_default() as usize;
        if q.len() != dim {
            return Err(invalid(format!(
                "Query vector dimension {} does not match the dimension of the index {dim}",
                q.len()
            )));
        }
        if qs.is_some() && by_vector.is_some() && index.metric != Metric::Dotproduct {
            return Err(invalid(format!(
                "Cannot query index with '{}' metric using sparse values; sparse-dense queries require the dotproduct metric",
                index.metric.name()
            )));
        }
    }
    let mut scored: Vec<(f64, &String, &Record)> = records
        .iter()
        .filter(|(_, r)| {
            filter
                .as_ref()
                .is_none_or(|f| matches_filter(f, r.metadata.as_ref()))
        })
        .map(|(id, r)| (score(index.metric, &q, qs.as_ref(), r), id, r))
        .collect();
    let ascending = index.metric == Metric::Euclidean;
    scored.sort_by(|a, b| {
        let o = a.0.total_cmp(&b.0);
        (if ascending { o } else { o.reverse() }).then_with(|| a.1.cmp(b.1))
    });
    let matches: Vec<Value> = scored
        .into_iter()
        .take(top_k)
        .map(|(s, id, r)| {
            let mut m = record_json(id, r, include_values, include_metadata);
            m.insert("score".into(), f32_json(s as f32));
            if !include_values {
                m.insert("values".into(), json!([]));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({"matches": matches, "namespace": namespace, "usage": usage()}))
}

const OPERATORS: [&str; 9] = [
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
];

/// Rejects filters Pinecone rejects.
fn check_filter(filter: &Value) -> ApiResult<()> {
    let obj = filter
        .as_object()
        .ok_or_else(|| invalid("Invalid filter: must be an object"))?;
    for (key, cond) in obj {
        match key.as_str() {
            "$and" | "$or" => {
                let list = cond
                    .as_array()
                    .ok_or_else(|| invalid(format!("Invalid filter: {key} must be a list")))?;
                for f in list {
                    check_filter(f)?;
                }
            }
            k if k.starts_with('$') => {
                return Err(invalid(format!("Invalid filter: unknown operator {k}")));
            }
            _ => {
                if let Some(ops) = cond.as_object() {
                    for (op, arg) in ops {
                        if !OPERATORS.contains(&op.as_str()) {
                            return Err(invalid(format!("Invalid filter: unknown operator {op}")));
                        }
                        if matches!(op.as_str(), "$in" | "$nin") && !arg.is_array() {
                            return Err(invalid(format!("Invalid filter: {op} requires a list")));
                        }
                        if matches!(op.as_str(), "$gt" | "$gte" | "$lt" | "$lte")
                            && !arg.is_number()
                        {
                            return Err(invalid(format!("Invalid filter: {op} requires a number")));
                        }
                    }
                } else if cond.is_null() || cond.is_array() {
                    return Err(invalid(format!(
                        "Invalid filter: bad condition for field {key}"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `field op arg` against a stored value; lists of strings match when any
/// element matches (Pinecone's semantics for `$eq`/`$in`).
fn matches_op(stored: Option<&Value>, op: &str, arg: &Value) -> bool {
    let any = |pred: &dyn Fn(&Value) -> bool| match stored {
        Some(Value::Array(items)) => items.iter().any(pred),
        Some(v) => pred(v),
        None => false,
    };
    let cmp = |pred: fn(f64, f64) -> bool| match (stored.and_then(Value::as_f64), arg.as_f64()) {
        (Some(s), Some(a)) => pred(s, a),
        _ => false,
    };
    let in_list = |v: &Value| {
        arg.as_array()
            .is_some_and(|list| list.iter().any(|a| value_eq(v, a)))
    };
    match op {
        "$eq" => any(&|v| value_eq(v, arg)),
        "$ne" => !any(&|v| value_eq(v, arg)),
        "$in" => any(&in_list),
        "$nin" => !any(&in_list),
        "$gt" => cmp(|s, a| s > a),
        "$gte" => cmp(|s, a| s >= a),
        "$lt" => cmp(|s, a| s < a),
        "$lte" => cmp(|s, a| s <= a),
        "$exists" => stored.is_some() == arg.as_bool().unwrap_or(true),
        _ => false,
    }
}

fn matches_filter(filter: &Value, metadata: Option<&Map<String, Value>>) -> bool {
    let Some(obj) = filter.as_object() else {
        return false;
    };
    obj.iter().all(|(key, cond)| match key.as_str() {
        "$and" => cond
            .as_array()
            .is_some_and(|l| l.iter().all(|f| matches_filter(f, metadata))),
        "$or" => cond
            .as_array()
            .is_some_and(|l| l.iter().any(|f| matches_filter(f, metadata))),
        field => {
            let stored = metadata.and_then(|m| m.get(field));
            match cond.as_object() {
                Some(ops) => ops.iter().all(|(op, arg)| matches_op(stored, op, arg)),
                None => matches_op(stored, "$eq", cond),
            }
        }
    })
}
