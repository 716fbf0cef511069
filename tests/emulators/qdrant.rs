//! A Qdrant v1.19 REST emulator: the endpoints vecport and the official
//! Python client use, with Qdrant's JSON shapes, status codes and error
//! messages (taken from qdrant/qdrant v1.19.0: `src/actix`, `lib/api/src/rest`,
//! `lib/collection`, `lib/segment`). State lives in memory.
//!
//! What is emulated, and how faithfully:
//! - Envelope `{"result","status":"ok","time"}`; errors `{"status":{"error"},"time"}`.
//!   Request bodies that fail to parse → 400 `Format error in JSON body: …`,
//!   that fail validation → 422 `Validation error in JSON body: […]`, bodies
//!   over the size limit → 400 `Payload error: JSON payload (N bytes) is larger
//!   than allowed (limit: M bytes).` (Qdrant's actix error handler answers 400,
//!   not 413, for every JSON payload error).
//! - `api-key` / `Authorization: Bearer` auth with Qdrant's plain-text 401s;
//!   `/`, `/healthz`, `/livez`, `/readyz` need no key.
//! - Point ids: u64 or UUID (any form `uuid` parses), UUIDs answered lowercase
//!   hyphenated; order: integers ascending, then UUIDs by 128-bit value.
//! - Cosine vectors normalised on write exactly as Qdrant on x86-64 with
//!   AVX+FMA (same summation order, so the same f32 bits); float16 and uint8
//!   datatypes round as Qdrant stores them; sparse vectors sorted by index.
//! - Scroll (inclusive `offset`, limit+1 → `next_page_offset`), count,
//!   retrieve, get point, delete, payload indexes, and `points/query` by brute
//!   force (dense, sparse, multivector max_sim, by id) with filters
//!   (must/should/must_not/min_should; match value/any/except/text, range,
//!   values_count, is_empty, is_null, has_id, has_vector, nested).
//! - Numbers are read as Qdrant's serde_json (built without `float_roundtrip`)
//!   reads them: a float with 16–17 significant digits may land one ulp away,
//!   and payload floats take that step again because Qdrant stores payloads
//!   as JSON text and parses them on every read
//!   ([`QdrantOptions::exact_floats`] turns this off).
//! - Not emulated (400 `Bad request: qdrant emulator: … is not emulated`):
//!   prefetch/fusion/recommend/… queries, `order_by`, shard keys, geo filters,
//!   IDF modifiers. A batch with a bad point is rejected whole (real Qdrant
//!   may apply part of it, in an unspecified order); with `wait=false` such a
//!   batch is acknowledged and dropped, as Qdrant's segment check drops it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Emulator, FaultInjector, FaultKind, Faults};

/// The Qdrant version the emulator claims (`GET /`).
pub const VERSION: &str = "1.19.0";
/// The commit of Qdrant v1.19.0.
pub const COMMIT: &str = "74f3e85b9473c62560006c043e13737ce6b48412";
/// Qdrant's default `service.max_request_size_mb` (32 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// How to start a Qdrant emulator.
#[derive(Clone, Debug)]
pub struct QdrantOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// When set, every request (except `/`, `/healthz`, `/livez`, `/readyz`)
    /// must carry `api-key: KEY` or `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Request body limit in bytes.
    pub max_request_size: usize,
    /// Faults injected from the start.
    pub faults: Faults,
    /// Parse numbers exactly. Off by default: Qdrant's serde_json is built
    /// without `float_roundtrip`, so a float with many significant digits can
    /// land one ulp away, and payloads (stored as JSON text, parsed again on
    /// every read) can move once more. See [`serde_json_lossy_f64`].
    pub exact_floats: bool,
}

impl Default for QdrantOptions {
    fn default() -> QdrantOptions {
        QdrantOptions {
            port: 0,
            api_key: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            faults: Faults::default(),
            exact_floats: false,
        }
    }
}

/// A running Qdrant emulator.
pub type QdrantEmulator = Emulator<Qdrant>;

/// Starts an emulator inside the current tokio runtime.
pub async fn start(options: QdrantOptions) -> std::io::Result<QdrantEmulator> {
    let (state, faults, app) = build(&options)?;
    super::serve(options.port, state, faults, app).await
}

/// Starts an emulator on a thread of its own (for callers without a runtime).
pub fn start_background(options: QdrantOptions) -> std::io::Result<QdrantEmulator> {
    let (state, faults, app) = build(&options)?;
    super::serve_background(options.port, state, faults, app)
}

type Built = (Arc<Qdrant>, Arc<FaultInjector>, Router);

fn build(options: &QdrantOptions) -> std::io::Result<Built> {
    let faults = FaultInjector::new(options.faults.clone(), fault_response)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let state = Arc::new(Qdrant {
        db: Mutex::new(Db::default()),
        api_key: RwLock::new(options.api_key.clone()),
        max_request_size: AtomicUsize::new(options.max_request_size),
        exact_floats: AtomicBool::new(options.exact_floats),
    });
    let app = router(state.clone());
    Ok((state, Arc::new(faults), app))
}

impl Emulator<Qdrant> {
    /// Changes the request body limit (bytes).
    pub fn set_max_request_size(&self, bytes: usize) {
        self.state().max_request_size.store(bytes, Ordering::SeqCst);
    }

    /// Parse numbers exactly (`true`) or as Qdrant does (`false`).
    pub fn set_exact_floats(&self, exact: bool) {
        self.state().exact_floats.store(exact, Ordering::SeqCst);
    }

    /// Turns auth on (`Some`) or off (`None`).
    pub fn set_api_key(&self, key: Option<&str>) {
        *self
            .state()
            .api_key
            .write()
            .unwrap_or_else(|e| e.into_inner()) = key.map(str::to_owned);
    }
}

/// The emulator's state.
pub struct Qdrant {
    db: Mutex<Db>,
    api_key: RwLock<Option<String>>,
    max_request_size: AtomicUsize,
    exact_floats: AtomicBool,
}

impl Qdrant {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names of the collections, sorted.
    pub fn collection_names(&self) -> Vec<String> {
        self.db().collections.keys().cloned().collect()
    }

    /// Number of points in `collection`, if it exists.
    pub fn points_count(&self, collection: &str) -> Option<usize> {
        self.db()
            .collections
            .get(collection)
            .map(|c| c.points.len())
    }
}

// ---------------------------------------------------------------------------
// Routing, auth, envelope
// ---------------------------------------------------------------------------

fn router(state: Arc<Qdrant>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/collections", get(list_collections))
        .route("/aliases", get(list_aliases))
        .route(
            "/collections/{name}",
            get(get_collection)
                .put(create_collection)
                .delete(delete_collection),
        )
        .route("/collections/{name}/exists", get(collection_exists))
        .route("/collections/{name}/aliases", get(collection_aliases))
        .route("/collections/{name}/index", put(create_index))
        .route(
            "/collections/{name}/index/{field}",
            axum::routing::delete(delete_index),
        )
        .route(
            "/collections/{name}/points",
            put(upsert_points).post(retrieve_points),
        )
        .route("/collections/{name}/points/{id}", get(get_point))
        .route("/collections/{name}/points/scroll", post(scroll_points))
        .route("/collections/{name}/points/count", post(count_points))
        .route("/collections/{name}/points/query", post(query_points))
        .route("/collections/{name}/points/delete", post(delete_points))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// actix answers unknown routes (and known paths with another method) with
/// an empty 404.
async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn auth(State(q): State<Arc<Qdrant>>, request: Request, next: Next) -> Response {
    let key = q.api_key.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return next.run(request).await;
    };
    match auth_failure(&request, &key) {
        None => next.run(request).await,
        Some(message) => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response(),
    }
}

/// Why a request is refused (`None`: let it through), with Qdrant's texts.
fn auth_failure(request: &Request, key: &str) -> Option<&'static str> {
    let path = request.uri().path();
    let whitelisted = path == "/"
        || path == "/healthz"
        || path.starts_with("/readyz")
        || path.starts_with("/livez");
    if whitelisted {
        return None;
    }
    let headers = request.headers();
    let given = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match given {
        None => Some("Must provide an API key or an Authorization bearer token"),
        Some(k) if k == key => None,
        Some(_) => Some("Invalid API key or JWT"),
    }
}

/// The body of an injected 429 / 503, as Qdrant writes them.
fn fault_response(kind: FaultKind, faults: &Faults, method: &Method, path: &str) -> Response {
    match kind {
        FaultKind::RateLimit => {
            let reads = method == Method::GET
                || ["/points/scroll", "/points/count", "/points/query"]
                    .iter()
                    .any(|s| path.ends_with(s))
                || (method == Method::POST && path.ends_with("/points"));
            let kind = if reads { "Read" } else { "Write" };
            let secs = faults.retry_after_secs;
            let message = format!(
                "Rate limiting exceeded: {kind} rate limit exceeded: Operation requires 1 tokens but only 0.0 were available. Retry after {secs}s"
            );
            let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, &message, 0.0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        _ => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Shard temporarily unavailable: emulated fault",
            0.0,
        ),
    }
}

#[derive(Serialize)]
struct Envelope<T> {
    result: T,
    status: &'static str,
    time: f64,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    status: ErrorStatus<'a>,
    time: f64,
}

#[derive(Serialize)]
struct ErrorStatus<'a> {
    error: &'a str,
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok<T: Serialize>(started: Instant, result: T) -> Response {
    let envelope = Envelope {
        result,
        status: "ok",
        time: started.elapsed().as_secs_f64(),
    };
    match serde_json::to_vec(&envelope) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Service internal error: {e}"),
            0.0,
        ),
    }
}

fn error_response(status: StatusCode, message: &str, time: f64) -> Response {
    let body = serde_json::to_vec(&ErrorEnvelope {
        status: ErrorStatus { error: message },
        time,
    })
    .unwrap_or_default();
    json_response(status, body)
}

/// An error answer: status, message, and whether `time` is measured (Qdrant
/// writes `0.0` for errors raised while extracting the request).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    timed: bool,
}

type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError {
            status,
            message,
            timed: true,
        }
    }

    /// `StorageError::BadInput` / `AlreadyExists` (the prefix is shared).
    fn bad_input(description: impl fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Wrong input: {description}"),
        )
    }

    fn bad_request(description: impl fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Bad request: {description}"),
        )
    }

    fn not_found(description: impl fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("Not found: {description}"))
    }

    fn no_collection(name: &str) -> ApiError {
        ApiError::not_found(format!("Collection `{name}` doesn't exist!"))
    }

    fn unsupported(what: &str) -> ApiError {
        ApiError::bad_request(format!("qdrant emulator: {what} is not emulated"))
    }

    /// A JSON body that did not deserialize.
    fn format(error: impl fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("Format error in JSON body: {error}"),
            timed: false,
        }
    }

    /// A request part that failed its `validator` rules.
    fn validation(part: &str, errors: &[(String, String)]) -> ApiError {
        let list = errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("Validation error in {part}: [{list}]"),
            timed: false,
        }
    }

    fn query(error: impl fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("Deserialize error in query parameters: {error}"),
            timed: false,
        }
    }

    fn payload(error: impl fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("Payload error: {error}"),
            timed: false,
        }
    }

    fn into_response(self, started: Instant) -> Response {
        let time = if self.timed {
            started.elapsed().as_secs_f64()
        } else {
            0.0
        };
        error_response(self.status, &self.message, time)
    }
}

fn respond<T: Serialize>(started: Instant, result: ApiResult<T>) -> Response {
    match result {
        Ok(value) => ok(started, value),
        Err(e) => e.into_response(started),
    }
}

/// Reads the body as actix's JSON extractor does: a declared length over the
/// limit fails at once, otherwise the body is read until it passes the limit.
async fn read_body(q: &Qdrant, request: Request) -> ApiResult<axum::body::Bytes> {
    let limit = q.max_request_size.load(Ordering::SeqCst);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = declared
        && length > limit
    {
        return Err(ApiError::payload(format!(
            "JSON payload ({length} bytes) is larger than allowed (limit: {limit} bytes)."
        )));
    }
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::payload(format!("JSON payload has exceeded limit ({limit} bytes)."))
        })?;
    if q.exact_floats.load(Ordering::SeqCst) {
        return Ok(body);
    }
    Ok(lossy_numbers(&body).map_or(body, axum::body::Bytes::from))
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> ApiResult<T> {
    // Read through a `Value` when direct reading fails: serde_json keeps
    // numbers as their text (arbitrary precision), which untagged and
    // flattened types read only from a `Value`.
    serde_json::from_slice(body).or_else(|e| {
        serde_json::from_slice::<Value>(body)
            .and_then(serde_json::from_value)
            .map_err(|_| ApiError::format(e))
    })
}

/// `collection_name` path rules: 1–255 characters; on creation also none of
/// Qdrant's forbidden file-name characters (otherwise only `/` and NUL).
fn check_collection_name(name: &str, strict: bool) -> ApiResult<()> {
    let mut errors = Vec::new();
    let chars = name.chars().count();
    if !(1..=255).contains(&chars) {
        errors.push((
            "collection_name".to_owned(),
            format!(
                "value {} invalid, must be from 1 to 255 characters",
                Value::String(name.to_owned())
            ),
        ));
    }
    let forbidden: &[char] = if strict {
        &['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u{1F}']
    } else {
        &['/', '\0']
    };
    if let Some(c) = forbidden.iter().find(|c| name.contains(**c)) {
        errors.push((
            "collection_name".to_owned(),
            format!("collection name cannot contain \"{c}\" char"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation("path parameters", &errors))
    }
}

/// The `wait` / `timeout` query parameters of update endpoints.
fn wait_param(uri: &Uri) -> ApiResult<bool> {
    let mut wait = false;
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "wait" => {
                wait = match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::query("provided string was not `true` or `false`")),
                }
            }
            "timeout" if value.parse::<u64>().is_err() => {
                return Err(ApiError::query("invalid digit found in string"));
            }
            _ => {}
        }
    }
    Ok(wait)
}

// ---------------------------------------------------------------------------
// Service endpoints
// ---------------------------------------------------------------------------

async fn root() -> Response {
    let body = json!({
        "title": "qdrant - vector search engine",
        "version": VERSION,
        "commit": COMMIT,
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "healthz check passed",
    )
        .into_response()
}

async fn readyz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "all shards are ready",
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Point ids
// ---------------------------------------------------------------------------

/// A point id: Qdrant's `ExtendedPointId`. The derived order is Qdrant's:
/// every integer before every UUID; UUIDs by their 128-bit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointId {
    Num(u64),
    Uuid(Uuid),
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl Serialize for PointId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PointId::Num(n) => s.serialize_u64(*n),
            PointId::Uuid(u) => s.serialize_str(&u.hyphenated().to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PointId, D::Error> {
        // As Qdrant: take any value, then try u64, then UUID.
        let value = Value::deserialize(d)?;
        if let Some(n) = value.as_u64() {
            return Ok(PointId::Num(n));
        }
        if let Value::String(s) = &value
            && let Ok(u) = Uuid::parse_str(s)
        {
            return Ok(PointId::Uuid(u));
        }
        Err(D::Error::custom(format!(
            "value {} is not a valid point ID, valid values are either an unsigned integer or a UUID",
            serde_value_display(&value)
        )))
    }
}

/// How Qdrant prints a rejected id (`serde_value::Value` through its
/// `SerdeValue` Display: scalars bare, containers in Debug form).
fn serde_value_display(value: &Value) -> String {
    match value {
        Value::Null => "Unit".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_display(n),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => serde_value_debug(value),
    }
}

fn number_display(n: &serde_json::Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

fn serde_value_debug(value: &Value) -> String {
    match value {
        Value::Null => "Unit".to_owned(),
        Value::Bool(b) => format!("Bool({b})"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                format!("U64({u})")
            } else if let Some(i) = n.as_i64() {
                format!("I64({i})")
            } else {
                format!("F64({:?})", n.as_f64().unwrap_or_default())
            }
        }
        Value::String(s) => format!("String({s:?})"),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(serde_value_debug)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            format!(
                "{{{}}}",
                sorted
                    .iter()
                    .map(|(k, v)| format!("String({k:?}): {}", serde_value_debug(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

// ---------------------------------------------------------------------------
// Collection configuration
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Distance {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Datatype {
    Float32,
    Uint8,
    Float16,
    Turbo4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Memory {
    Cold,
    Cached,
    Pinned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MultiVectorComparator {
    MaxSim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
struct MultiVectorConfig {
    comparator: MultiVectorComparator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ShardingMethod {
    Auto,
    Custom,
}

/// `HnswConfigDiff`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct HnswConfigDiff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ef_construct: Option<usize>,
    #[serde(
        default,
        alias = "full_scan_threshold_kb",
        skip_serializing_if = "Option::is_none"
    )]
    full_scan_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_indexing_threads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_m: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline_storage: Option<bool>,
}

impl HnswConfigDiff {
    fn is_empty(&self) -> bool {
        *self == HnswConfigDiff::default()
    }

    fn validate(&self, prefix: &str, errors: &mut Vec<(String, String)>) {
        if let Some(ef) = self.ef_construct
            && ef < 4
        {
            errors.push((
                format!("{prefix}ef_construct"),
                format!("value {ef} invalid, must be 4 or larger"),
            ));
        }
        if let Some(t) = self.full_scan_threshold
            && t < 10
        {
            errors.push((
                format!("{prefix}full_scan_threshold"),
                format!("value {t} invalid, must be 10 or larger"),
            ));
        }
    }
}

/// The collection-level `HnswConfig`: Qdrant's defaults (config.yaml) with
/// the request's diff applied.
#[derive(Clone, Debug, Serialize)]
struct HnswConfig {
    m: usize,
    ef_construct: usize,
    full_scan_threshold: usize,
    max_indexing_threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_disk: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_m: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_storage: Option<bool>,
}

impl HnswConfig {
    fn from_diff(diff: Option<&HnswConfigDiff>) -> HnswConfig {
        let d = diff.cloned().unwrap_or_default();
        HnswConfig {
            m: d.m.unwrap_or(16),
            ef_construct: d.ef_construct.unwrap_or(100),
            full_scan_threshold: d.full_scan_threshold.unwrap_or(10_000),
            max_indexing_threads: d.max_indexing_threads.unwrap_or(0),
            on_disk: Some(d.on_disk.unwrap_or(false)),
            memory: d.memory,
            payload_m: d.payload_m,
            inline_storage: d.inline_storage,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
struct WalConfigDiff {
    wal_capacity_mb: Option<usize>,
    wal_segments_ahead: Option<usize>,
    wal_retain_closed: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
struct WalConfig {
    wal_capacity_mb: usize,
    wal_segments_ahead: usize,
    wal_retain_closed: usize,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct OptimizersConfigDiff {
    deleted_threshold: Option<f64>,
    vacuum_min_vector_number: Option<usize>,
    default_segment_number: Option<usize>,
    #[serde(alias = "max_segment_size_kb")]
    max_segment_size: Option<usize>,
    #[serde(alias = "memmap_threshold_kb")]
    memmap_threshold: Option<usize>,
    #[serde(alias = "indexing_threshold_kb")]
    indexing_threshold: Option<usize>,
    flush_interval_sec: Option<u64>,
    max_optimization_threads: Option<Value>,
    prevent_unoptimized: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
struct OptimizersConfig {
    deleted_threshold: f64,
    vacuum_min_vector_number: usize,
    default_segment_number: usize,
    max_segment_size: Option<usize>,
    memmap_threshold: Option<usize>,
    indexing_threshold: Option<usize>,
    flush_interval_sec: u64,
    max_optimization_threads: Option<usize>,
    prevent_unoptimized: Option<bool>,
}

/// `VectorParams` as the request gives it (and as `GET` echoes it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
struct VectorParams {
    size: NonZeroU64,
    distance: Distance,
    #[serde(default, skip_serializing_if = "hnsw_diff_empty")]
    hnsw_config: Option<HnswConfigDiff>,
    #[serde(
        default,
        alias = "quantization",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_null_value"
    )]
    quantization_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datatype: Option<Datatype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multivector_config: Option<MultiVectorConfig>,
}

fn hnsw_diff_empty(diff: &Option<HnswConfigDiff>) -> bool {
    diff.as_ref().is_none_or(HnswConfigDiff::is_empty)
}

/// An optional JSON value where `null` means absent; nulls inside are dropped
/// (Qdrant's typed configs skip their `None` fields when written back).
fn non_null_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.filter(|v| !v.is_null()).map(strip_nulls))
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum VectorsConfig {
    Single(VectorParams),
    Multi(BTreeMap<String, VectorParams>),
}

impl Default for VectorsConfig {
    fn default() -> VectorsConfig {
        VectorsConfig::Multi(BTreeMap::new())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SparseIndexParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_scan_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_disk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datatype: Option<Datatype>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Modifier {
    None,
    Idf,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SparseVectorParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<SparseIndexParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modifier: Option<Modifier>,
}

/// `PUT /collections/{name}` body (`CreateCollection`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
struct CreateCollection {
    #[serde(default)]
    vectors: VectorsConfig,
    #[serde(default)]
    shard_number: Option<u32>,
    #[serde(default)]
    sharding_method: Option<ShardingMethod>,
    #[serde(default)]
    replication_factor: Option<u32>,
    #[serde(default)]
    write_consistency_factor: Option<u32>,
    #[serde(default)]
    on_disk_payload: Option<bool>,
    #[serde(default, deserialize_with = "non_null_value")]
    payload: Option<Value>,
    hnsw_config: Option<HnswConfigDiff>,
    wal_config: Option<WalConfigDiff>,
    #[serde(alias = "optimizer_config")]
    optimizers_config: Option<OptimizersConfigDiff>,
    #[serde(default, alias = "quantization", deserialize_with = "non_null_value")]
    quantization_config: Option<Value>,
    sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
    #[serde(default, deserialize_with = "non_null_value")]
    strict_mode_config: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    uuid: Option<Uuid>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// The stored configuration, written back by `GET /collections/{name}`.
#[derive(Clone, Debug, Serialize)]
struct CollectionConfig {
    params: CollectionParams,
    hnsw_config: HnswConfig,
    optimizer_config: OptimizersConfig,
    wal_config: Option<WalConfig>,
    quantization_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict_mode_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Serialize)]
struct CollectionParams {
    vectors: VectorsConfig,
    shard_number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    sharding_method: Option<ShardingMethod>,
    replication_factor: u32,
    write_consistency_factor: u32,
    on_disk_payload: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
}

/// What the engine needs to know about one dense vector.
#[derive(Clone, Copy, Debug)]
struct DenseSpec {
    size: usize,
    distance: Distance,
    datatype: Datatype,
    multi: bool,
}

impl CollectionConfig {
    fn dense(&self, name: &str) -> Option<DenseSpec> {
        let params = match &self.params.vectors {
            VectorsConfig::Single(p) if name.is_empty() => p,
            VectorsConfig::Single(_) => return None,
            VectorsConfig::Multi(map) => map.get(name)?,
        };
        Some(DenseSpec {
            size: usize::try_from(params.size.get()).unwrap_or(usize::MAX),
            distance: params.distance,
            datatype: params.datatype.unwrap_or(Datatype::Float32),
            multi: params.multivector_config.is_some(),
        })
    }

    fn sparse(&self, name: &str) -> Option<&SparseVectorParams> {
        self.params.sparse_vectors.as_ref()?.get(name)
    }

    /// All vector names, dense then sparse, as `missing_vector_error` lists them.
    fn vector_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.params.vectors {
            VectorsConfig::Single(_) => vec![String::new()],
            VectorsConfig::Multi(map) => map.keys().cloned().collect(),
        };
        if let Some(sparse) = &self.params.sparse_vectors {
            names.extend(sparse.keys().cloned());
        }
        names
    }

    /// Qdrant's `missing_vector_error` for a search on `name`.
    fn missing_vector_error(&self, name: &str) -> ApiError {
        let names = self.vector_names();
        if names.is_empty() {
            ApiError::bad_input("Vectors are not configured in this collection")
        } else if names == [String::new()] {
            ApiError::bad_input(format!(
                "Vector with name {name} is not configured in this collection"
            ))
        } else if name.is_empty() {
            ApiError::bad_input(format!(
                "Collection requires specified vector name in the request, available names: {}",
                names.join(", ")
            ))
        } else {
            ApiError::bad_input(format!(
                "Vector with name `{name}` is not configured in this collection, available names: {}",
                names.join(", ")
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Stored data
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Db {
    collections: BTreeMap<String, Collection>,
}

struct Collection {
    config: CollectionConfig,
    points: BTreeMap<PointId, Point>,
    /// Payload indexes: field → the schema as given (`"keyword"` or params).
    indexes: BTreeMap<String, Value>,
    /// The next operation number (Qdrant's WAL sequence starts at 0).
    next_op: u64,
}

impl Collection {
    fn take_op(&mut self) -> u64 {
        let op = self.next_op;
        self.next_op += 1;
        op
    }
}

#[derive(Clone, Debug)]
struct Point {
    vectors: BTreeMap<String, Stored>,
    payload: Map<String, Value>,
    version: u64,
}

#[derive(Clone, Debug)]
enum Stored {
    Dense(Vec<f32>),
    Sparse { indices: Vec<u32>, values: Vec<f32> },
    Multi(Vec<Vec<f32>>),
}

fn lookup<'a>(db: &'a Db, name: &str) -> ApiResult<&'a Collection> {
    db.collections
        .get(name)
        .ok_or_else(|| ApiError::no_collection(name))
}

fn lookup_mut<'a>(db: &'a mut Db, name: &str) -> ApiResult<&'a mut Collection> {
    db.collections
        .get_mut(name)
        .ok_or_else(|| ApiError::no_collection(name))
}

// ---------------------------------------------------------------------------
// Collections endpoints
// ---------------------------------------------------------------------------

async fn list_collections(State(q): State<Arc<Qdrant>>) -> Response {
    let started = Instant::now();
    let names: Vec<Value> = q
        .db()
        .collections
        .keys()
        .map(|name| json!({ "name": name }))
        .collect();
    ok(started, json!({ "collections": names }))
}

async fn list_aliases() -> Response {
    ok(Instant::now(), json!({ "aliases": [] }))
}

async fn collection_aliases(State(q): State<Arc<Qdrant>>, Path(name): Path<String>) -> Response {
    let started = Instant::now();
    let result = check_collection_name(&name, false)
        .and_then(|()| lookup(&q.db(), &name).map(|_| json!({ "aliases": [] })));
    respond(started, result)
}

async fn collection_exists(State(q): State<Arc<Qdrant>>, Path(name): Path<String>) -> Response {
    let started = Instant::now();
    let result = check_collection_name(&name, false)
        .map(|()| json!({ "exists": q.db().collections.contains_key(&name) }));
    respond(started, result)
}

#[derive(Serialize)]
struct PayloadIndexInfo {
    data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Value>,
    points: usize,
}

#[derive(Serialize)]
struct CollectionInfo<'a> {
    status: &'static str,
    optimizer_status: &'static str,
    indexed_vectors_count: usize,
    points_count: usize,
    segments_count: usize,
    config: &'a CollectionConfig,
    payload_schema: BTreeMap<&'a str, PayloadIndexInfo>,
    update_queue: Value,
}

async fn get_collection(State(q): State<Arc<Qdrant>>, Path(name): Path<String>) -> Response {
    let started = Instant::now();
    let db = q.db();
    let result = check_collection_name(&name, false)
        .and_then(|()| lookup(&db, &name))
        .map(|c| {
            let payload_schema = c
                .indexes
                .iter()
                .map(|(field, schema)| {
                    let (data_type, params) = match schema {
                        Value::String(t) => (t.clone(), None),
                        other => (
                            other
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            Some(other.clone()),
                        ),
                    };
                    let points = c
                        .points
                        .values()
                        .filter(|p| indexed_value(&p.payload, field, &data_type))
                        .count();
                    (
                        field.as_str(),
                        PayloadIndexInfo {
                            data_type,
                            params,
                            points,
                        },
                    )
                })
                .collect();
            CollectionInfo {
                status: "green",
                optimizer_status: "ok",
                // Small collections stay below the indexing threshold, so
                // Qdrant reports no indexed vectors for them.
                indexed_vectors_count: 0,
                points_count: c.points.len(),
                segments_count: 2,
                config: &c.config,
                payload_schema,
                update_queue: json!({ "length": 0 }),
            }
        });
    respond(started, result)
}

/// Whether a point's payload has a value of the index's type at `field`.
fn indexed_value(payload: &Map<String, Value>, field: &str, data_type: &str) -> bool {
    values_at(payload, field).iter().any(|v| match data_type {
        "keyword" | "text" | "uuid" | "datetime" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        "bool" => v.is_boolean(),
        "geo" => v.is_object(),
        _ => !v.is_null(),
    })
}

async fn create_collection(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = create_collection_inner(&q, &name, request).await;
    respond(started, result)
}

async fn create_collection_inner(q: &Qdrant, name: &str, request: Request) -> ApiResult<bool> {
    check_collection_name(name, true)?;
    let body = read_body(q, request).await?;
    let create: CreateCollection = parse_json(&body)?;

    // The extractor's `validator` rules (422).
    let mut errors = Vec::new();
    let size_error = |p: &VectorParams| p.size.get() > 65536;
    match &create.vectors {
        VectorsConfig::Single(p) => {
            if size_error(p) {
                errors.push((
                    "vectors.size".to_owned(),
                    "must be from 1 to 65536".to_owned(),
                ));
            }
            if let Some(h) = &p.hnsw_config {
                h.validate("vectors.hnsw_config.", &mut errors);
            }
        }
        VectorsConfig::Multi(map) => {
            let failing: Vec<&VectorParams> = map.values().filter(|p| size_error(p)).collect();
            for (i, _) in failing.iter().enumerate() {
                let at = if failing.len() == 1 {
                    "vectors.?.size".to_owned()
                } else {
                    format!("vectors.?[{i}].size")
                };
                errors.push((at, "must be from 1 to 65536".to_owned()));
            }
        }
    }
    for (field, value) in [
        ("shard_number", create.shard_number),
        ("replication_factor", create.replication_factor),
        ("write_consistency_factor", create.write_consistency_factor),
    ] {
        if value == Some(0) {
            errors.push((
                field.to_owned(),
                "value 0 invalid, must be 1 or larger".to_owned(),
            ));
        }
    }
    if let Some(h) = &create.hnsw_config {
        h.validate("hnsw_config.", &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation("JSON body", &errors));
    }

    // `CreateCollectionOperation::new`: vector names.
    if let VectorsConfig::Multi(map) = &create.vectors {
        for vector_name in map.keys() {
            if let Some(e) = vector_name_error(vector_name) {
                return Err(ApiError::bad_input(format!(
                    "Invalid dense vector name `{vector_name}`: {e}"
                )));
            }
        }
    }
    if let Some(sparse) = &create.sparse_vectors {
        for vector_name in sparse.keys() {
            if let Some(e) = vector_name_error(vector_name) {
                return Err(ApiError::bad_input(format!(
                    "Invalid sparse vector name `{vector_name}`: {e}"
                )));
            }
        }
        if sparse.contains_key("") {
            return Err(ApiError::bad_input("Sparse vector name cannot be empty"));
        }
        let dense_names: Vec<&str> = match &create.vectors {
            VectorsConfig::Single(_) => vec![""],
            VectorsConfig::Multi(map) => map.keys().map(String::as_str).collect(),
        };
        if let Some(duplicate) = dense_names.iter().find(|n| sparse.contains_key(**n)) {
            return Err(ApiError::bad_input(format!(
                "Dense and sparse vector names must be unique - duplicate found with '{duplicate}'"
            )));
        }
    }

    let mut db = q.db();
    if db.collections.contains_key(name) {
        return Err(
            ApiError::bad_input(format!("Collection `{name}` already exists!"))
                .with_status(StatusCode::CONFLICT),
        );
    }

    let wal = create.wal_config.unwrap_or_default();
    let opt = create.optimizers_config.unwrap_or_default();
    let config = CollectionConfig {
        params: CollectionParams {
            vectors: create.vectors,
            shard_number: create.shard_number.unwrap_or(1),
            sharding_method: create.sharding_method,
            replication_factor: create.replication_factor.unwrap_or(1),
            write_consistency_factor: create.write_consistency_factor.unwrap_or(1),
            on_disk_payload: Some(create.on_disk_payload.unwrap_or(true)),
            payload: create.payload,
            sparse_vectors: create.sparse_vectors,
        },
        hnsw_config: HnswConfig::from_diff(create.hnsw_config.as_ref()),
        optimizer_config: OptimizersConfig {
            deleted_threshold: opt.deleted_threshold.unwrap_or(0.2),
            vacuum_min_vector_number: opt.vacuum_min_vector_number.unwrap_or(1000),
            default_segment_number: opt.default_segment_number.unwrap_or(0),
            max_segment_size: opt.max_segment_size,
            memmap_threshold: opt.memmap_threshold,
            indexing_threshold: Some(opt.indexing_threshold.unwrap_or(10_000)),
            flush_interval_sec: opt.flush_interval_sec.unwrap_or(5),
            max_optimization_threads: opt
                .max_optimization_threads
                .and_then(|v| v.as_u64())
                .and_then(|n| usize::try_from(n).ok()),
            prevent_unoptimized: opt.prevent_unoptimized,
        },
        wal_config: Some(WalConfig {
            wal_capacity_mb: wal.wal_capacity_mb.unwrap_or(32),
            wal_segments_ahead: wal.wal_segments_ahead.unwrap_or(0),
            wal_retain_closed: wal.wal_retain_closed.unwrap_or(1),
        }),
        quantization_config: create.quantization_config,
        strict_mode_config: create.strict_mode_config,
        metadata: create.metadata,
    };
    db.collections.insert(
        name.to_owned(),
        Collection {
            config,
            points: BTreeMap::new(),
            indexes: BTreeMap::new(),
            next_op: 0,
        },
    );
    Ok(true)
}

impl ApiError {
    fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

/// `validate_vector_name`: at most 200 bytes, no file-name-unsafe characters.
fn vector_name_error(name: &str) -> Option<String> {
    if name.len() > 200 {
        return Some("vector name must be at most 200 bytes long".to_owned());
    }
    ['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u{1F}']
        .iter()
        .find(|c| name.contains(**c))
        .map(|c| format!("vector name cannot contain \"{c}\" char"))
}

async fn delete_collection(State(q): State<Arc<Qdrant>>, Path(name): Path<String>) -> Response {
    let started = Instant::now();
    let result =
        check_collection_name(&name, false).map(|()| q.db().collections.remove(&name).is_some());
    respond(started, result)
}

#[derive(Serialize)]
struct UpdateResult {
    operation_id: u64,
    status: &'static str,
}

fn update_result(op: u64, wait: bool) -> UpdateResult {
    UpdateResult {
        operation_id: op,
        status: if wait { "completed" } else { "acknowledged" },
    }
}

#[derive(Debug, Deserialize)]
enum PayloadSchemaType {
    #[serde(rename = "keyword")]
    Keyword,
    #[serde(rename = "integer")]
    Integer,
    #[serde(rename = "float")]
    Float,
    #[serde(rename = "geo")]
    Geo,
    #[serde(rename = "text")]
    Text,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "datetime")]
    Datetime,
    #[serde(rename = "uuid")]
    Uuid,
}

#[derive(Debug, Deserialize)]
struct PayloadSchemaParams {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: PayloadSchemaType,
    #[serde(flatten)]
    #[allow(dead_code)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PayloadFieldSchema {
    #[allow(dead_code)]
    FieldType(PayloadSchemaType),
    #[allow(dead_code)]
    FieldParams(PayloadSchemaParams),
}

#[derive(Debug, Deserialize)]
struct CreateFieldIndex {
    field_name: String,
    #[serde(default)]
    field_schema: Option<PayloadFieldSchema>,
}

async fn create_index(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        // actix extracts the body before the query string.
        let uri = request.uri().clone();
        let body = read_body(&q, request).await?;
        let index: CreateFieldIndex = parse_json(&body)?;
        let wait = wait_param(&uri)?;
        let raw: Value = serde_json::from_slice(&body).map_err(ApiError::format)?;
        let mut db = q.db();
        let c = lookup_mut(&mut db, &name)?;
        let schema = match index.field_schema {
            Some(_) => strip_nulls(raw["field_schema"].clone()),
            None => Value::String(infer_field_type(c, &index.field_name).ok_or_else(|| {
                ApiError::bad_input(format!(
                    "Unable to infer type for the field '{}'. Please specify `field_type`",
                    index.field_name
                ))
            })?),
        };
        c.indexes.insert(index.field_name, schema);
        let op = c.take_op();
        Ok(update_result(op, wait))
    }
    .await;
    respond(started, result)
}

fn infer_field_type(c: &Collection, field: &str) -> Option<String> {
    c.points.values().find_map(|p| {
        values_at(&p.payload, field).first().and_then(|v| match v {
            Value::String(s) if Uuid::parse_str(s).is_ok() => Some("uuid".to_owned()),
            Value::String(_) => Some("keyword".to_owned()),
            Value::Bool(_) => Some("bool".to_owned()),
            Value::Number(n) if n.is_f64() => Some("float".to_owned()),
            Value::Number(_) => Some("integer".to_owned()),
            _ => None,
        })
    })
}

async fn delete_index(
    State(q): State<Arc<Qdrant>>,
    Path((name, field)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let started = Instant::now();
    let result = (|| {
        check_collection_name(&name, false)?;
        let wait = wait_param(&uri)?;
        let mut db = q.db();
        let c = lookup_mut(&mut db, &name)?;
        c.indexes.remove(&field);
        let op = c.take_op();
        Ok(update_result(op, wait))
    })();
    respond(started, result)
}

// ---------------------------------------------------------------------------
// Writing points
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
struct SparseVector {
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// `Vector` (one named vector in a point).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Vector {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    MultiDense(Vec<Vec<f32>>),
}

/// `VectorStruct` (all vectors of a point).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum VectorStruct {
    Single(Vec<f32>),
    MultiDense(Vec<Vec<f32>>),
    Named(HashMap<String, Vector>),
}

#[derive(Debug, Deserialize)]
struct PointStruct {
    id: PointId,
    #[serde(alias = "vectors")]
    vector: VectorStruct,
    payload: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct PointsList {
    points: Vec<PointStruct>,
    #[serde(default)]
    shard_key: Option<Value>,
    #[serde(default)]
    update_filter: Option<Value>,
    #[serde(default)]
    update_mode: Option<UpdateMode>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BatchVectorStruct {
    Single(Vec<Vec<f32>>),
    MultiDense(Vec<Vec<Vec<f32>>>),
    Named(HashMap<String, Vec<Vector>>),
}

#[derive(Debug, Deserialize)]
struct Batch {
    ids: Vec<PointId>,
    vectors: BatchVectorStruct,
    payloads: Option<Vec<Option<Map<String, Value>>>>,
}

#[derive(Debug, Deserialize)]
struct PointsBatch {
    batch: Batch,
    #[serde(default)]
    shard_key: Option<Value>,
    #[serde(default)]
    update_filter: Option<Value>,
    #[serde(default)]
    update_mode: Option<UpdateMode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UpdateMode {
    Upsert,
    InsertOnly,
    UpdateOnly,
}

/// A point as parsed, before it meets the collection.
struct NewPoint {
    id: PointId,
    vectors: Vec<(String, Vector)>,
    payload: Map<String, Value>,
}

struct Insert {
    points: Vec<NewPoint>,
    update_filter: Option<Value>,
    update_mode: Option<UpdateMode>,
    shard_key: Option<Value>,
}

/// `PointInsertOperations`: Qdrant parses the body into a JSON value first,
/// then picks the batch or list form by key, so inner errors carry no
/// position.
fn parse_insert(body: &[u8]) -> ApiResult<Insert> {
    let value: Value = serde_json::from_slice(body).map_err(ApiError::format)?;
    let is_batch = value.get("batch").is_some();
    let is_list = value.get("points").is_some();
    if !value.is_object() || (!is_batch && !is_list) {
        return Err(ApiError::format("Invalid PointInsertOperations format"));
    }
    if is_batch {
        let batch: PointsBatch = serde_json::from_value(value).map_err(ApiError::format)?;
        validate_batch(&batch.batch)?;
        let Batch {
            ids,
            vectors,
            payloads,
        } = batch.batch;
        let mut points: Vec<NewPoint> = ids
            .into_iter()
            .map(|id| NewPoint {
                id,
                vectors: Vec::new(),
                payload: Map::new(),
            })
            .collect();
        match vectors {
            BatchVectorStruct::Single(vs) => {
                for (p, v) in points.iter_mut().zip(vs) {
                    p.vectors.push((String::new(), Vector::Dense(v)));
                }
            }
            BatchVectorStruct::MultiDense(vs) => {
                for (p, v) in points.iter_mut().zip(vs) {
                    p.vectors.push((String::new(), Vector::MultiDense(v)));
                }
            }
            BatchVectorStruct::Named(map) => {
                for (name, vs) in map {
                    for (p, v) in points.iter_mut().zip(vs) {
                        p.vectors.push((name.clone(), v));
                    }
                }
            }
        }
        if let Some(payloads) = payloads {
            for (p, payload) in points.iter_mut().zip(payloads) {
                p.payload = payload.unwrap_or_default();
            }
        }
        Ok(Insert {
            points,
            update_filter: batch.update_filter,
            update_mode: batch.update_mode,
            shard_key: batch.shard_key,
        })
    } else {
        let list: PointsList = serde_json::from_value(value).map_err(ApiError::format)?;
        validate_points(&list.points)?;
        let points = list
            .points
            .into_iter()
            .map(|p| NewPoint {
                id: p.id,
                vectors: match p.vector {
                    VectorStruct::Single(v) => vec![(String::new(), Vector::Dense(v))],
                    VectorStruct::MultiDense(v) => {
                        vec![(String::new(), Vector::MultiDense(v))]
                    }
                    VectorStruct::Named(map) => map.into_iter().collect(),
                },
                payload: p.payload.unwrap_or_default(),
            })
            .collect();
        Ok(Insert {
            points,
            update_filter: list.update_filter,
            update_mode: list.update_mode,
            shard_key: list.shard_key,
        })
    }
}

/// Validation errors of one value: `(field path, message)`.
type Errors = Vec<(String, String)>;

fn validate_dense(v: &[f32]) -> Errors {
    if v.is_empty() {
        vec![(
            "vector".to_owned(),
            "dense vector must not be empty".to_owned(),
        )]
    } else {
        Vec::new()
    }
}

fn validate_multi(m: &[Vec<f32>]) -> Errors {
    let message = if m.is_empty() {
        "multi vector must not be empty".to_owned()
    } else if m.iter().any(Vec::is_empty) {
        "all vectors must be non-empty".to_owned()
    } else if m.iter().map(Vec::len).sum::<usize>() >= 1_048_576 {
        format!(
            "Total size of all vectors ({}) must be less than 1048576",
            m.iter().map(Vec::len).sum::<usize>()
        )
    } else if let Some(bad) = m.iter().find(|v| v.len() != m[0].len()) {
        format!(
            "all vectors must have the same dimension, found vector with dimension {}",
            bad.len()
        )
    } else {
        return Vec::new();
    };
    vec![("data".to_owned(), message)]
}

fn validate_sparse(s: &SparseVector) -> Errors {
    let mut errors = Vec::new();
    if s.indices.len() != s.values.len() {
        errors.push((
            "values".to_owned(),
            "Validation error: must be the same length as indices [{}]".to_owned(),
        ));
    }
    let unique: BTreeSet<u32> = s.indices.iter().copied().collect();
    if unique.len() != s.indices.len() {
        errors.push((
            "indices".to_owned(),
            "Validation error: must be unique [{}]".to_owned(),
        ));
    }
    errors
}

fn validate_vector(v: &Vector) -> Errors {
    match v {
        Vector::Dense(d) => validate_dense(d),
        Vector::Sparse(s) => validate_sparse(s),
        Vector::MultiDense(m) => validate_multi(m),
    }
}

/// `common::validation::validate_iter`: failing children under `?` (one) or
/// `?[i]` (several, numbered among the failing ones).
fn validate_iter<'a>(items: impl Iterator<Item = &'a Vector>) -> Errors {
    let failing: Vec<Errors> = items
        .map(validate_vector)
        .filter(|e| !e.is_empty())
        .collect();
    let single = failing.len() == 1;
    failing
        .into_iter()
        .enumerate()
        .flat_map(|(i, errors)| {
            let at = if single {
                "?".to_owned()
            } else {
                format!("?[{i}]")
            };
            errors
                .into_iter()
                .map(move |(field, message)| (format!("{at}.{field}"), message))
        })
        .collect()
}

fn validate_points(points: &[PointStruct]) -> ApiResult<()> {
    let mut errors = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let inner = match &p.vector {
            VectorStruct::Single(v) => validate_dense(v),
            VectorStruct::MultiDense(m) => validate_multi(m),
            VectorStruct::Named(map) => validate_iter(map.values()),
        };
        errors.extend(
            inner
                .into_iter()
                .map(|(field, message)| (format!("points[{i}].vector.{field}"), message)),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation("JSON body", &errors))
    }
}

fn validate_batch(batch: &Batch) -> ApiResult<()> {
    let fail = |field: &str, message: String| {
        Err(ApiError::validation(
            "JSON body",
            &[(format!("batch.{field}"), message)],
        ))
    };
    let inner = match &batch.vectors {
        BatchVectorStruct::Single(vs) => vs
            .iter()
            .map(|v| validate_dense(v))
            .find(|e| !e.is_empty())
            .unwrap_or_default(),
        BatchVectorStruct::MultiDense(vs) => vs
            .iter()
            .map(|m| validate_multi(m))
            .find(|e| !e.is_empty())
            .unwrap_or_default(),
        BatchVectorStruct::Named(map) => validate_iter(map.values().flatten()),
    };
    if let Some((field, message)) = inner.into_iter().next() {
        return fail(&field, message);
    }
    let ids = batch.ids.len();
    let counts: Vec<usize> = match &batch.vectors {
        BatchVectorStruct::Single(vs) => vec![vs.len()],
        BatchVectorStruct::MultiDense(vs) => vec![vs.len()],
        BatchVectorStruct::Named(map) => map.values().map(Vec::len).collect(),
    };
    if let Some(n) = counts.into_iter().find(|n| *n != ids) {
        return fail(
            "batch",
            format!("number of ids and vectors must be equal ({ids} != {n})"),
        );
    }
    if let Some(payloads) = &batch.payloads
        && payloads.len() != ids
    {
        return fail(
            "batch",
            format!(
                "number of ids and payloads must be equal ({ids} != {})",
                payloads.len()
            ),
        );
    }
    Ok(())
}

/// Checks one vector against the collection (the segment's
/// `check_named_vectors`) and turns it into what is stored.
fn prepare_vector(config: &CollectionConfig, name: &str, v: Vector) -> ApiResult<Stored> {
    if let Some(spec) = config.dense(name) {
        let check_dim = |len: usize| {
            if len == spec.size {
                Ok(())
            } else {
                Err(ApiError::bad_input(format!(
                    "Vector dimension error: expected dim: {}, got {len}",
                    spec.size
                )))
            }
        };
        match v {
            Vector::Sparse(_) => Err(ApiError::bad_input(
                "Conversion between sparse and regular vectors failed",
            )),
            Vector::Dense(d) if spec.multi => {
                check_dim(d.len())?;
                Ok(Stored::Multi(vec![store_dense(&spec, d)]))
            }
            Vector::Dense(d) => {
                check_dim(d.len())?;
                Ok(Stored::Dense(store_dense(&spec, d)))
            }
            Vector::MultiDense(m) => {
                for row in &m {
                    check_dim(row.len())?;
                }
                if !spec.multi {
                    return Err(ApiError::bad_input(
                        "Conversion between multi and regular vectors failed",
                    ));
                }
                Ok(Stored::Multi(
                    m.into_iter().map(|row| store_dense(&spec, row)).collect(),
                ))
            }
        }
    } else if config.sparse(name).is_some() {
        match v {
            Vector::Sparse(s) => {
                let mut pairs: Vec<(u32, f32)> = s.indices.into_iter().zip(s.values).collect();
                pairs.sort_by_key(|(i, _)| *i);
                let (indices, values) = pairs.into_iter().unzip();
                Ok(Stored::Sparse { indices, values })
            }
            Vector::Dense(_) => Err(ApiError::bad_input(
                "Conversion between sparse and regular vectors failed",
            )),
            Vector::MultiDense(_) => Err(ApiError::bad_input(
                "Conversion between multi and regular vectors failed",
            )),
        }
    } else {
        Err(ApiError::bad_input(format!(
            "Not existing vector name error: {name}"
        )))
    }
}

/// What a dense vector becomes in storage: Cosine preprocessing (except for
/// uint8), then the storage datatype.
fn store_dense(spec: &DenseSpec, v: Vec<f32>) -> Vec<f32> {
    let v = if spec.distance == Distance::Cosine && spec.datatype != Datatype::Uint8 {
        cosine_preprocess(v)
    } else {
        v
    };
    match spec.datatype {
        Datatype::Float32 | Datatype::Turbo4 => v,
        Datatype::Float16 => v.into_iter().map(round_to_f16).collect(),
        Datatype::Uint8 => v.into_iter().map(|x| f32::from(x as u8)).collect(),
    }
}

async fn upsert_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        // actix extracts the body before the query string.
        let uri = request.uri().clone();
        let body = read_body(&q, request).await?;
        let insert = parse_insert(&body)?;
        let wait = wait_param(&uri)?;
        if insert.shard_key.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported("shard_key"));
        }
        let update_filter = insert
            .update_filter
            .as_ref()
            .filter(|v| !v.is_null())
            .map(parse_filter)
            .transpose()?;
        let mut db = q.db();
        let c = lookup_mut(&mut db, &name)?;
        // Qdrant applies points one by one and stops at the first bad one;
        // here the whole batch is checked first and applied atomically.
        let mut prepared = Vec::with_capacity(insert.points.len());
        let mut refused = None;
        'points: for p in insert.points {
            let mut vectors = BTreeMap::new();
            for (vname, v) in p.vectors {
                match prepare_vector(&c.config, &vname, v) {
                    Ok(stored) => vectors.insert(vname, stored),
                    Err(e) => {
                        refused = Some(e);
                        break 'points;
                    }
                };
            }
            let mut payload = p.payload;
            if !q.exact_floats.load(Ordering::SeqCst) {
                payload.values_mut().for_each(storage_round_trip);
            }
            prepared.push((p.id, vectors, payload));
        }
        if let Some(e) = refused {
            // The vectors are checked by the segment, after the operation is
            // queued: with wait=false the client hears "acknowledged" and
            // the write is silently dropped.
            if wait {
                return Err(e);
            }
            return Ok(update_result(c.take_op(), false));
        }
        let op = c.take_op();
        let mode = insert.update_mode.unwrap_or(UpdateMode::Upsert);
        for (id, vectors, payload) in prepared {
            let existing = c.points.get(&id);
            let keep = match (mode, existing) {
                (UpdateMode::InsertOnly, Some(_)) => false,
                (UpdateMode::UpdateOnly, None) => false,
                (_, Some(old)) => update_filter.as_ref().is_none_or(|f| f.matches(id, old)),
                (_, None) => true,
            };
            if keep {
                c.points.insert(
                    id,
                    Point {
                        vectors,
                        payload,
                        version: op,
                    },
                );
            }
        }
        Ok(update_result(op, wait))
    }
    .await;
    respond(started, result)
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PointsSelector {
    Ids {
        points: Vec<PointId>,
        #[serde(default)]
        shard_key: Option<Value>,
    },
    Filter {
        filter: Value,
        #[serde(default)]
        shard_key: Option<Value>,
    },
}

async fn delete_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        // actix extracts the body before the query string.
        let uri = request.uri().clone();
        let body = read_body(&q, request).await?;
        let selector: PointsSelector = parse_json(&body)?;
        let wait = wait_param(&uri)?;
        let mut db = q.db();
        let c = lookup_mut(&mut db, &name)?;
        let doomed: Vec<PointId> = match selector {
            PointsSelector::Ids { shard_key, .. } | PointsSelector::Filter { shard_key, .. }
                if shard_key.as_ref().is_some_and(|v| !v.is_null()) =>
            {
                return Err(ApiError::unsupported("shard_key"));
            }
            PointsSelector::Ids { points, .. } => points,
            PointsSelector::Filter { filter, .. } => {
                let filter = parse_filter(&filter)?;
                c.points
                    .iter()
                    .filter(|(id, p)| filter.matches(**id, p))
                    .map(|(id, _)| *id)
                    .collect()
            }
        };
        let op = c.take_op();
        for id in doomed {
            c.points.remove(&id);
        }
        Ok(update_result(op, wait))
    }
    .await;
    respond(started, result)
}

// ---------------------------------------------------------------------------
// Reading points
// ---------------------------------------------------------------------------

/// `WithPayloadInterface`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum WithPayloadInterface {
    Bool(bool),
    Fields(Vec<String>),
    Selector(PayloadSelector),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum PayloadSelector {
    Include { include: OneOrMany },
    Exclude { exclude: OneOrMany },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `WithVector`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum WithVector {
    Bool(bool),
    Names(Vec<String>),
}

impl Default for WithVector {
    fn default() -> WithVector {
        WithVector::Bool(false)
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum VectorOut {
    Dense(Vec<f32>),
    Sparse { indices: Vec<u32>, values: Vec<f32> },
    MultiDense(Vec<Vec<f32>>),
}

#[derive(Serialize)]
#[serde(untagged)]
enum VectorStructOut {
    Single(Vec<f32>),
    MultiDense(Vec<Vec<f32>>),
    Named(BTreeMap<String, VectorOut>),
}

#[derive(Serialize)]
struct RecordOut {
    id: PointId,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<VectorStructOut>,
}

#[derive(Serialize)]
struct ScoredOut {
    id: PointId,
    version: u64,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<VectorStructOut>,
}

fn select_payload(
    payload: &Map<String, Value>,
    with: &WithPayloadInterface,
) -> Option<Map<String, Value>> {
    match with {
        WithPayloadInterface::Bool(false) => None,
        WithPayloadInterface::Bool(true) => Some(payload.clone()),
        WithPayloadInterface::Fields(fields) => Some(include_paths(payload, fields)),
        WithPayloadInterface::Selector(PayloadSelector::Include { include }) => {
            Some(include_paths(payload, &include.list()))
        }
        WithPayloadInterface::Selector(PayloadSelector::Exclude { exclude }) => {
            let mut out = payload.clone();
            for path in exclude.list() {
                remove_path(&mut out, &path);
            }
            Some(out)
        }
    }
}

fn include_paths(payload: &Map<String, Value>, paths: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        copy_path(payload, &parts, &mut out);
    }
    out
}

fn copy_path(from: &Map<String, Value>, parts: &[&str], to: &mut Map<String, Value>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let key = first.trim_end_matches("[]");
    let Some(value) = from.get(key) else {
        return;
    };
    if rest.is_empty() {
        to.insert(key.to_owned(), value.clone());
        return;
    }
    if let Value::Object(inner) = value {
        let entry = to
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(target) = entry {
            copy_path(inner, rest, target);
        }
    }
}

fn remove_path(map: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            map.shift_remove(path);
        }
        Some((first, rest)) => {
            if let Some(Value::Object(inner)) = map.get_mut(first) {
                remove_path(inner, rest);
            }
        }
    }
}

fn select_vectors(point: &Point, with: &WithVector) -> Option<VectorStructOut> {
    let wanted: Vec<(&String, &Stored)> = match with {
        WithVector::Bool(false) => return None,
        WithVector::Bool(true) => point.vectors.iter().collect(),
        WithVector::Names(names) => point
            .vectors
            .iter()
            .filter(|(n, _)| names.contains(n))
            .collect(),
    };
    // `VectorStructInternal::from(NamedVectors)`: only the unnamed vector →
    // the plain form; anything else → the named map.
    if let [(name, stored)] = wanted.as_slice()
        && name.is_empty()
    {
        match stored {
            Stored::Dense(v) => return Some(VectorStructOut::Single(v.clone())),
            Stored::Multi(m) => return Some(VectorStructOut::MultiDense(m.clone())),
            Stored::Sparse { .. } => {}
        }
    }
    Some(VectorStructOut::Named(
        wanted
            .into_iter()
            .map(|(name, stored)| {
                let out = match stored {
                    Stored::Dense(v) => VectorOut::Dense(v.clone()),
                    Stored::Sparse { indices, values } => VectorOut::Sparse {
                        indices: indices.clone(),
                        values: values.clone(),
                    },
                    Stored::Multi(m) => VectorOut::MultiDense(m.clone()),
                };
                (name.clone(), out)
            })
            .collect(),
    ))
}

fn record(
    id: PointId,
    p: &Point,
    with_payload: &WithPayloadInterface,
    with_vector: &WithVector,
) -> RecordOut {
    RecordOut {
        id,
        payload: select_payload(&p.payload, with_payload),
        vector: select_vectors(p, with_vector),
    }
}

/// `ScrollRequestInternal`, flattened into `ScrollRequest` as Qdrant does.
#[derive(Debug, Deserialize)]
struct ScrollRequestInternal {
    offset: Option<PointId>,
    limit: Option<usize>,
    filter: Option<Value>,
    with_payload: Option<WithPayloadInterface>,
    #[serde(default, alias = "with_vectors")]
    with_vector: WithVector,
    order_by: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ScrollRequest {
    #[serde(flatten)]
    scroll: ScrollRequestInternal,
    #[serde(default)]
    shard_key: Option<Value>,
}

#[derive(Serialize)]
struct ScrollResult {
    points: Vec<RecordOut>,
    next_page_offset: Option<PointId>,
}

async fn scroll_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        let body = read_body(&q, request).await?;
        let request: ScrollRequest = parse_json(&body)?;
        let s = request.scroll;
        if s.limit == Some(0) {
            return Err(ApiError::validation(
                "JSON body",
                &[(
                    "limit".to_owned(),
                    "value 0 invalid, must be 1 or larger".to_owned(),
                )],
            ));
        }
        if s.order_by.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported("order_by"));
        }
        if request.shard_key.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported("shard_key"));
        }
        let filter = s
            .filter
            .as_ref()
            .filter(|v| !v.is_null())
            .map(parse_filter)
            .transpose()?;
        let db = q.db();
        let c = lookup(&db, &name)?;
        let limit = s.limit.unwrap_or(10);
        let with_payload = s.with_payload.unwrap_or(WithPayloadInterface::Bool(true));
        let range = match s.offset {
            Some(offset) => c.points.range(offset..),
            None => c.points.range(..),
        };
        // Read limit + 1: the extra point's id is the next page's offset.
        let mut page: Vec<(PointId, &Point)> = range
            .filter(|(id, p)| filter.as_ref().is_none_or(|f| f.matches(**id, p)))
            .take(limit.saturating_add(1))
            .map(|(id, p)| (*id, p))
            .collect();
        let next_page_offset = if page.len() > limit {
            page.pop().map(|(id, _)| id)
        } else {
            None
        };
        Ok(ScrollResult {
            points: page
                .into_iter()
                .map(|(id, p)| record(id, p, &with_payload, &s.with_vector))
                .collect(),
            next_page_offset,
        })
    }
    .await;
    respond(started, result)
}

#[derive(Debug, Deserialize)]
struct CountRequest {
    filter: Option<Value>,
    #[serde(default = "yes")]
    #[allow(dead_code)]
    exact: bool,
    #[serde(default)]
    shard_key: Option<Value>,
}

fn yes() -> bool {
    true
}

async fn count_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        let body = read_body(&q, request).await?;
        let request: CountRequest = parse_json(&body)?;
        if request.shard_key.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported("shard_key"));
        }
        let filter = request
            .filter
            .as_ref()
            .filter(|v| !v.is_null())
            .map(parse_filter)
            .transpose()?;
        let db = q.db();
        let c = lookup(&db, &name)?;
        let count = c
            .points
            .iter()
            .filter(|(id, p)| filter.as_ref().is_none_or(|f| f.matches(**id, p)))
            .count();
        Ok(json!({ "count": count }))
    }
    .await;
    respond(started, result)
}

#[derive(Debug, Deserialize)]
struct PointRequestInternal {
    ids: Vec<PointId>,
    with_payload: Option<WithPayloadInterface>,
    #[serde(default, alias = "with_vectors")]
    with_vector: WithVector,
}

#[derive(Debug, Deserialize)]
struct PointRequest {
    #[serde(flatten)]
    request: PointRequestInternal,
    #[serde(default)]
    shard_key: Option<Value>,
}

async fn retrieve_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        let body = read_body(&q, request).await?;
        let request: PointRequest = parse_json(&body)?;
        if request.shard_key.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::unsupported("shard_key"));
        }
        let r = request.request;
        let db = q.db();
        let c = lookup(&db, &name)?;
        let with_payload = r.with_payload.unwrap_or(WithPayloadInterface::Bool(false));
        let mut seen = BTreeSet::new();
        let records: Vec<RecordOut> = r
            .ids
            .into_iter()
            .filter(|id| seen.insert(*id))
            .filter_map(|id| {
                c.points
                    .get(&id)
                    .map(|p| record(id, p, &with_payload, &r.with_vector))
            })
            .collect();
        Ok(records)
    }
    .await;
    respond(started, result)
}

async fn get_point(
    State(q): State<Arc<Qdrant>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let started = Instant::now();
    let result = (|| {
        check_collection_name(&name, false)?;
        if id.is_empty() {
            return Err(ApiError::validation(
                "path parameters",
                &[(
                    "id".to_owned(),
                    "value \"\" invalid, must be at least 1 characters".to_owned(),
                )],
            ));
        }
        let point_id = match id.parse::<u64>() {
            Ok(n) => PointId::Num(n),
            Err(_) => match Uuid::parse_str(&id) {
                Ok(u) => PointId::Uuid(u),
                Err(_) => {
                    return Err(ApiError::bad_input(format!(
                        "Can not recognize \"{id}\" as point id"
                    )));
                }
            },
        };
        let db = q.db();
        let c = lookup(&db, &name)?;
        c.points
            .get(&point_id)
            .map(|p| {
                record(
                    point_id,
                    p,
                    &WithPayloadInterface::Bool(true),
                    &WithVector::Bool(true),
                )
            })
            .ok_or_else(|| {
                ApiError::not_found(format!("Point with id {point_id} does not exists!"))
            })
    })();
    respond(started, result)
}

// ---------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------

/// `VectorInput`.
#[derive(Debug)]
enum VectorInput {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    MultiDense(Vec<Vec<f32>>),
    Id(PointId),
}

#[derive(Debug)]
struct NearestQuery {
    nearest: VectorInput,
    mmr: Option<Value>,
}

/// `QueryInterface`: a bare vector/id, or a query object (only `nearest` is
/// emulated; other objects are recognised and refused).
#[derive(Debug)]
enum QueryInterface {
    Nearest(VectorInput),
    NearestQuery(NearestQuery),
    Other(Map<String, Value>),
}

const QUERY_EXPECTED: &str = "Expected some form of vector, id, or a type of query";

/// Read from a `Value` by hand, not as an untagged enum: serde_json keeps
/// numbers as their text (arbitrary precision), which untagged enums cannot
/// read.
impl VectorInput {
    fn of(v: &Value) -> Option<VectorInput> {
        let floats = |a: &Vec<Value>| -> Option<Vec<f32>> {
            a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
        };
        match v {
            Value::Array(a) if a.iter().all(Value::is_array) && !a.is_empty() => a
                .iter()
                .map(|row| row.as_array().and_then(floats))
                .collect::<Option<Vec<_>>>()
                .map(VectorInput::MultiDense),
            Value::Array(a) => floats(a).map(VectorInput::Dense),
            Value::Object(o) if o.contains_key("indices") && o.contains_key("values") => {
                serde_json::from_value(v.clone())
                    .ok()
                    .map(VectorInput::Sparse)
            }
            Value::Number(_) | Value::String(_) => {
                serde_json::from_value(v.clone()).ok().map(VectorInput::Id)
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for QueryInterface {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = Value::deserialize(d)?;
        if let Some(input) = VectorInput::of(&v) {
            return Ok(QueryInterface::Nearest(input));
        }
        match v {
            Value::Object(mut o) if o.contains_key("nearest") => {
                let nearest = VectorInput::of(&o["nearest"])
                    .ok_or_else(|| D::Error::custom(QUERY_EXPECTED))?;
                Ok(QueryInterface::NearestQuery(NearestQuery {
                    nearest,
                    mmr: o.remove("mmr").filter(|m| !m.is_null()),
                }))
            }
            Value::Object(o) => Ok(QueryInterface::Other(o)),
            _ => Err(D::Error::custom(QUERY_EXPECTED)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct QueryRequestInternal {
    #[serde(default)]
    prefetch: Option<Value>,
    query: Option<QueryInterface>,
    using: Option<String>,
    filter: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    params: Option<Value>,
    score_threshold: Option<f32>,
    limit: Option<usize>,
    offset: Option<usize>,
    #[serde(alias = "with_vectors")]
    with_vector: Option<WithVector>,
    with_payload: Option<WithPayloadInterface>,
    #[serde(default)]
    lookup_from: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct QueryRequest {
    #[serde(flatten)]
    query: QueryRequestInternal,
    #[serde(default)]
    shard_key: Option<Value>,
}

#[derive(Serialize)]
struct QueryResponse {
    points: Vec<ScoredOut>,
}

async fn query_points(
    State(q): State<Arc<Qdrant>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let result = async {
        check_collection_name(&name, false)?;
        let body = read_body(&q, request).await?;
        let request: QueryRequest = parse_json(&body)?;
        let r = request.query;
        if r.limit == Some(0) {
            return Err(ApiError::validation(
                "JSON body",
                &[(
                    "limit".to_owned(),
                    "value 0 invalid, must be 1 or larger".to_owned(),
                )],
            ));
        }
        let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        if present(&r.prefetch) {
            return Err(ApiError::unsupported("prefetch"));
        }
        if present(&r.lookup_from) {
            return Err(ApiError::unsupported("lookup_from"));
        }
        if present(&request.shard_key) {
            return Err(ApiError::unsupported("shard_key"));
        }
        let filter = r
            .filter
            .as_ref()
            .filter(|v| !v.is_null())
            .map(parse_filter)
            .transpose()?;
        let db = q.db();
        let c = lookup(&db, &name)?;
        let limit = r.limit.unwrap_or(10);
        let offset = r.offset.unwrap_or(0);
        let with_payload = r.with_payload.unwrap_or(WithPayloadInterface::Bool(false));
        let with_vector = r.with_vector.unwrap_or_default();
        let using = r.using.unwrap_or_default();
        let input = match r.query {
            None => None,
            Some(QueryInterface::Nearest(v)) => Some(v),
            Some(QueryInterface::NearestQuery(n)) => {
                if present(&n.mmr) {
                    return Err(ApiError::unsupported("mmr"));
                }
                Some(n.nearest)
            }
            Some(QueryInterface::Other(map)) => {
                let kind = map.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::unsupported(&format!("query `{kind}`")));
            }
        };
        let passes = |id: PointId, p: &Point| filter.as_ref().is_none_or(|f| f.matches(id, p));
        let mut hits: Vec<(PointId, &Point, f32)> = match input {
            None => c
                .points
                .iter()
                .filter(|(id, p)| passes(**id, p))
                .map(|(id, p)| (*id, p, 0.0))
                .collect(),
            Some(input) => {
                let (query, exclude) = resolve_query(c, &using, input)?;
                let scorer = Scorer::new(&c.config, &using, query)?;
                let mut hits: Vec<(PointId, &Point, f32)> = c
                    .points
                    .iter()
                    .filter(|(id, _)| Some(**id) != exclude)
                    .filter(|(id, p)| passes(**id, p))
                    .filter_map(|(id, p)| {
                        scorer
                            .raw_score(p.vectors.get(&using)?)
                            .map(|s| (*id, p, s))
                    })
                    .collect();
                // Best first; ties by id.
                hits.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
                hits.into_iter()
                    .map(|(id, p, s)| (id, p, scorer.postprocess(s)))
                    .filter(|(_, _, s)| {
                        r.score_threshold
                            .is_none_or(|t| scorer.within_threshold(*s, t))
                    })
                    .collect()
            }
        };
        let points = hits
            .drain(..)
            .skip(offset)
            .take(limit)
            .map(|(id, p, score)| ScoredOut {
                id,
                version: p.version,
                score,
                payload: select_payload(&p.payload, &with_payload),
                vector: select_vectors(p, &with_vector),
            })
            .collect();
        Ok(QueryResponse { points })
    }
    .await;
    respond(started, result)
}

/// A query vector, checked against the collection.
enum QueryVector {
    Dense(Vec<f32>),
    Sparse(Vec<u32>, Vec<f32>),
    Multi(Vec<Vec<f32>>),
}

/// Turns the request's query into a vector; a query by id uses that point's
/// stored vector and leaves the point itself out of the results.
fn resolve_query(
    c: &Collection,
    using: &str,
    input: VectorInput,
) -> ApiResult<(QueryVector, Option<PointId>)> {
    Ok(match input {
        VectorInput::Dense(v) => (QueryVector::Dense(v), None),
        VectorInput::Sparse(s) => {
            let errors = validate_sparse(&s);
            if !errors.is_empty() {
                let errors: Errors = errors
                    .into_iter()
                    .map(|(f, m)| (format!("query.{f}"), m))
                    .collect();
                return Err(ApiError::validation("JSON body", &errors));
            }
            (QueryVector::Sparse(s.indices, s.values), None)
        }
        VectorInput::MultiDense(m) => (QueryVector::Multi(m), None),
        VectorInput::Id(id) => {
            let point = c
                .points
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("No point with id {id} found")))?;
            let stored = point.vectors.get(using).ok_or_else(|| {
                ApiError::bad_input(format!(
                    "Vector with name {using:?} is not found for point {id}"
                ))
            })?;
            let v = match stored {
                Stored::Dense(v) => QueryVector::Dense(v.clone()),
                Stored::Sparse { indices, values } => {
                    QueryVector::Sparse(indices.clone(), values.clone())
                }
                Stored::Multi(m) => QueryVector::Multi(m.clone()),
            };
            (v, Some(id))
        }
    })
}

/// Brute-force scoring for one named vector.
enum Scorer {
    Dense {
        distance: Distance,
        query: Vec<f32>,
    },
    Multi {
        distance: Distance,
        query: Vec<Vec<f32>>,
    },
    Sparse {
        indices: Vec<u32>,
        values: Vec<f32>,
    },
}

impl Scorer {
    fn new(config: &CollectionConfig, using: &str, query: QueryVector) -> ApiResult<Scorer> {
        if let Some(spec) = config.dense(using) {
            let check = |len: usize| {
                if len == spec.size {
                    Ok(())
                } else {
                    Err(ApiError::bad_input(format!(
                        "Vector dimension error: expected dim: {}, got {len}",
                        spec.size
                    )))
                }
            };
            let prep = |v: Vec<f32>| {
                if spec.distance == Distance::Cosine {
                    cosine_preprocess(v)
                } else {
                    v
                }
            };
            match query {
                QueryVector::Sparse(..) => Err(ApiError::bad_input(
                    "Conversion between sparse and regular vectors failed",
                )),
                QueryVector::Dense(v) if spec.multi => {
                    check(v.len())?;
                    Ok(Scorer::Multi {
                        distance: spec.distance,
                        query: vec![prep(v)],
                    })
                }
                QueryVector::Dense(v) => {
                    check(v.len())?;
                    Ok(Scorer::Dense {
                        distance: spec.distance,
                        query: prep(v),
                    })
                }
                QueryVector::Multi(m) => {
                    for row in &m {
                        check(row.len())?;
                    }
                    if !spec.multi {
                        return Err(ApiError::bad_input(
                            "Conversion between multi and regular vectors failed",
                        ));
                    }
                    Ok(Scorer::Multi {
                        distance: spec.distance,
                        query: m.into_iter().map(prep).collect(),
                    })
                }
            }
        } else if config.sparse(using).is_some() {
            match query {
                QueryVector::Sparse(indices, values) => {
                    let mut pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
                    pairs.sort_by_key(|(i, _)| *i);
                    let (indices, values) = pairs.into_iter().unzip();
                    Ok(Scorer::Sparse { indices, values })
                }
                QueryVector::Dense(_) => Err(ApiError::bad_input(
                    "Conversion between sparse and regular vectors failed",
                )),
                QueryVector::Multi(_) => Err(ApiError::bad_input(
                    "Conversion between multi and regular vectors failed",
                )),
            }
        } else {
            Err(config.missing_vector_error(using))
        }
    }

    /// The internal score (higher is better); `None` when the point cannot
    /// be scored (no overlap for sparse, wrong kind of vector).
    fn raw_score(&self, stored: &Stored) -> Option<f32> {
        match (self, stored) {
            (Scorer::Dense { distance, query }, Stored::Dense(v)) => {
                Some(similarity(*distance, query, v))
            }
            (Scorer::Multi { distance, query }, Stored::Multi(rows)) => Some(
                query
                    .iter()
                    .map(|q| {
                        rows.iter()
                            .map(|r| similarity(*distance, q, r))
                            .fold(f32::NEG_INFINITY, f32::max)
                    })
                    .sum(),
            ),
            (
                Scorer::Sparse { indices, values },
                Stored::Sparse {
                    indices: si,
                    values: sv,
                },
            ) => sparse_dot(indices, values, si, sv),
            _ => None,
        }
    }

    /// The distance whose post-processing and order apply (sparse: Dot).
    fn distance(&self) -> Distance {
        match self {
            Scorer::Dense { distance, .. } | Scorer::Multi { distance, .. } => *distance,
            Scorer::Sparse { .. } => Distance::Dot,
        }
    }

    /// `Distance::postprocess_score`, applied to every nearest-neighbour
    /// score (multivector sums included).
    fn postprocess(&self, score: f32) -> f32 {
        match self.distance() {
            Distance::Euclid => score.abs().sqrt(),
            Distance::Manhattan => score.abs(),
            Distance::Cosine | Distance::Dot => score,
        }
    }

    /// `Distance::check_threshold` (strict): similarities above, distances
    /// below the threshold.
    fn within_threshold(&self, score: f32, threshold: f32) -> bool {
        match self.distance() {
            Distance::Euclid | Distance::Manhattan => score < threshold,
            Distance::Cosine | Distance::Dot => score > threshold,
        }
    }
}

fn similarity(distance: Distance, a: &[f32], b: &[f32]) -> f32 {
    match distance {
        Distance::Cosine | Distance::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        Distance::Euclid => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
        Distance::Manhattan => -a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>(),
    }
}

/// Dot product over the indices both sparse vectors share (both sorted);
/// `None` without any shared index.
fn sparse_dot(qi: &[u32], qv: &[f32], si: &[u32], sv: &[f32]) -> Option<f32> {
    let (mut a, mut b) = (0, 0);
    let mut score = 0.0f32;
    let mut overlap = false;
    while a < qi.len() && b < si.len() {
        match qi[a].cmp(&si[b]) {
            std::cmp::Ordering::Less => a += 1,
            std::cmp::Ordering::Greater => b += 1,
            std::cmp::Ordering::Equal => {
                score += qv[a] * sv[b];
                overlap = true;
                a += 1;
                b += 1;
            }
        }
    }
    overlap.then_some(score)
}

// ---------------------------------------------------------------------------
// Vector arithmetic as Qdrant does it
// ---------------------------------------------------------------------------

/// Qdrant's `cosine_preprocess`: divide by the norm, unless the squared norm
/// is ~0 or already within 1e-6 of 1. The squared norm is summed in the order
/// of Qdrant's x86-64 kernels (AVX+FMA from 32 dimensions, SSE from 16,
/// scalar below), so the result has the same bits as a real server's.
pub fn cosine_preprocess(v: Vec<f32>) -> Vec<f32> {
    let length = squared_norm(&v);
    if length < f32::EPSILON || (length - 1.0).abs() <= 1.0e-6 {
        return v;
    }
    let length = length.sqrt();
    v.into_iter().map(|x| x / length).collect()
}

fn squared_norm(v: &[f32]) -> f32 {
    let n = v.len();
    if n >= 32 {
        // cosine_preprocess_avx: 4 accumulators × 8 lanes, fused multiply-add.
        let m = n - n % 32;
        let mut acc = [[0.0f32; 8]; 4];
        for chunk in v[..m].chunks_exact(32) {
            for (r, lanes) in acc.iter_mut().enumerate() {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    let x = chunk[r * 8 + l];
                    *lane = x.mul_add(x, *lane);
                }
            }
        }
        // four_way_hsum: (a + b) + (c + d) per lane, then hsum256.
        let total: Vec<f32> = (0..8)
            .map(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]))
            .collect();
        let lr: Vec<f32> = (0..4).map(|i| total[4 + i] + total[i]).collect();
        let mut length = (lr[0] + lr[1]) + (lr[2] + lr[3]);
        for x in &v[m..] {
            length += x * x;
        }
        length
    } else if n >= 16 {
        // cosine_preprocess_sse: 4 accumulators × 4 lanes, multiply then add.
        let m = n - n % 16;
        let mut acc = [[0.0f32; 4]; 4];
        for chunk in v[..m].chunks_exact(16) {
            for (r, lanes) in acc.iter_mut().enumerate() {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    let x = chunk[r * 4 + l];
                    *lane += x * x;
                }
            }
        }
        let hsum = |x: &[f32; 4]| (x[0] + x[2]) + (x[1] + x[3]);
        let mut length = hsum(&acc[0]) + hsum(&acc[1]) + hsum(&acc[2]) + hsum(&acc[3]);
        for x in &v[m..] {
            length += x * x;
        }
        length
    } else {
        v.iter().map(|x| x * x).sum()
    }
}

/// f32 → IEEE half (round to nearest, ties to even) → f32, as `half::f16`.
pub fn round_to_f16(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let abs = x.abs();
    if abs >= 65520.0 {
        return f32::INFINITY.copysign(x);
    }
    if abs <= 2.0f32.powi(-25) {
        // Half the smallest subnormal rounds (to even) down to zero.
        return 0.0f32.copysign(x);
    }
    // `abs` is a normal f32 here: its exponent field is exact.
    let exponent = ((abs.to_bits() >> 23) & 0xff) as i32 - 127;
    let quantum_exp = (exponent - 10).max(-24);
    let scale = 2.0f32.powi(-quantum_exp);
    let rounded = (abs * scale).round_ties_even() / scale;
    rounded.copysign(x)
}

// ---------------------------------------------------------------------------
// Numbers as Qdrant's serde_json reads them
// ---------------------------------------------------------------------------

/// `10^i` for `i` in 0..=308, correctly rounded (serde_json's `POW10`).
fn pow10() -> &'static [f64; 309] {
    static TABLE: std::sync::OnceLock<[f64; 309]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0.0; 309];
        for (i, slot) in table.iter_mut().enumerate() {
            *slot = format!("1e{i}").parse().unwrap_or(f64::INFINITY);
        }
        table
    })
}

/// The f64 that serde_json *without* its `float_roundtrip` feature (Qdrant's
/// build) reads from a JSON number token: the decimal significand is kept in
/// a u64 (extra digits dropped), converted to f64, then multiplied or
/// divided by a power of ten, which can land one ulp away from the nearest
/// double. `None` for tokens that stay integers, or that serde_json refuses.
pub fn serde_json_lossy_f64(token: &str) -> Option<f64> {
    let b = token.as_bytes();
    let digit = |i: usize| {
        b.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u64::from(c - b'0'))
    };
    let overflows =
        |sig: u64, d: u64| sig >= u64::MAX / 10 && (sig > u64::MAX / 10 || d > u64::MAX % 10);
    let (positive, mut i) = match b.first()? {
        b'-' => (false, 1),
        _ => (true, 0),
    };
    let mut sig: u64 = 0;
    let mut exp: i32 = 0;
    let mut is_float = false;
    if digit(i)? == 0 {
        i += 1;
    } else {
        while let Some(d) = digit(i) {
            if overflows(sig, d) {
                // parse_long_integer: the remaining digits only scale.
                while digit(i).is_some() {
                    exp += 1;
                    i += 1;
                }
                is_float = true;
                break;
            }
            sig = sig * 10 + d;
            i += 1;
        }
    }
    if b.get(i) == Some(&b'.') {
        is_float = true;
        i += 1;
        while let Some(d) = digit(i) {
            if overflows(sig, d) {
                // parse_decimal_overflow: further digits are ignored.
                while digit(i).is_some() {
                    i += 1;
                }
                break;
            }
            sig = sig * 10 + d;
            exp -= 1;
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        is_float = true;
        i += 1;
        let positive_exp = match b.get(i) {
            Some(b'+') => {
                i += 1;
                true
            }
            Some(b'-') => {
                i += 1;
                false
            }
            _ => true,
        };
        let mut e: i32 = 0;
        while let Some(d) = digit(i) {
            let d = i32::try_from(d).unwrap_or(0);
            if e >= i32::MAX / 10 && (e > i32::MAX / 10 || d > i32::MAX % 10) {
                if sig != 0 && positive_exp {
                    return None;
                }
                return Some(if positive { 0.0 } else { -0.0 });
            }
            e = e * 10 + d;
            i += 1;
        }
        exp = if positive_exp {
            exp.saturating_add(e)
        } else {
            exp.saturating_sub(e)
        };
    }
    if !is_float {
        if positive {
            return None;
        }
        // Below i64::MIN (or -0): a float, exactly as with float_roundtrip.
        let neg = (sig as i64).wrapping_neg();
        return (neg >= 0).then(|| -(sig as f64));
    }
    // f64_from_parts
    let mut f = sig as f64;
    loop {
        match pow10().get(exp.unsigned_abs() as usize) {
            Some(&pow) => {
                if exp >= 0 {
                    f *= pow;
                    if f.is_infinite() {
                        return None;
                    }
                } else {
                    f /= pow;
                }
                break;
            }
            None => {
                if f == 0.0 {
                    break;
                }
                if exp >= 0 {
                    return None;
                }
                f /= 1e308;
                exp += 308;
            }
        }
    }
    Some(if positive { f } else { -f })
}

/// Rewrites every number token of a valid JSON body whose value Qdrant's
/// parser would read differently, so that the (exact) parser of this build
/// reads what Qdrant reads. A shorter replacement is padded with spaces so
/// that later byte offsets (and error positions) stay the same. `None`: no
/// change (or not JSON: its errors must come from the original text).
fn lossy_numbers(body: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < body.len() {
                    match body[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                out.extend_from_slice(&body[start..i.min(body.len())]);
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < body.len()
                    && matches!(body[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let token = &body[start..i];
                match std::str::from_utf8(token).ok().and_then(lossy_token) {
                    Some(replacement) => {
                        changed = true;
                        out.extend_from_slice(replacement.as_bytes());
                        let pad = token.len().saturating_sub(replacement.len());
                        out.resize(out.len() + pad, b' ');
                    }
                    None => out.extend_from_slice(token),
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// The text of what Qdrant reads for `token`, when it differs.
fn lossy_token(token: &str) -> Option<String> {
    let lossy = serde_json_lossy_f64(token)?;
    let exact: f64 = token.parse().ok()?;
    if lossy.to_bits() == exact.to_bits() {
        return None;
    }
    serde_json::to_string(&lossy).ok()
}

/// Qdrant keeps payloads as JSON text (`serde_json::to_vec`) and parses them
/// again on every read; floats take that step here, once, at write time.
fn storage_round_trip(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let again = serde_json::to_string(n)
                .ok()
                .and_then(|text| serde_json_lossy_f64(&text))
                .and_then(serde_json::Number::from_f64);
            if let Some(again) = again {
                *n = again;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(storage_round_trip),
        Value::Object(map) => map.values_mut().for_each(storage_round_trip),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Filter {
    must: Vec<Condition>,
    should: Vec<Condition>,
    must_not: Vec<Condition>,
    min_should: Option<(Vec<Condition>, usize)>,
}

#[derive(Debug)]
enum Condition {
    Field { key: String, check: FieldCheck },
    IsEmpty(String),
    IsNull(String),
    HasId(BTreeSet<PointId>),
    HasVector(String),
    Nested { key: String, filter: Filter },
    Filter(Filter),
}

#[derive(Debug)]
enum FieldCheck {
    Value(Value),
    Any(Vec<Value>),
    Except(Vec<Value>),
    Text(String),
    Range {
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
    ValuesCount {
        gt: Option<usize>,
        gte: Option<usize>,
        lt: Option<usize>,
        lte: Option<usize>,
    },
    IsEmpty(bool),
    IsNull(bool),
}

const CONDITION_EXPECTED: &str = "Expected some form of condition, which can be a field condition (like {\"key\": ..., \"match\": ... }), or some other mentioned in the documentation: https://qdrant.tech/documentation/concepts/filtering/#filtering-conditions";

fn parse_filter(value: &Value) -> ApiResult<Filter> {
    let Value::Object(map) = value else {
        return Err(ApiError::format(format!(
            "invalid type: {}, expected struct Filter",
            json_kind(value)
        )));
    };
    let mut filter = Filter::default();
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "must" => filter.must = parse_conditions(v)?,
            "should" => filter.should = parse_conditions(v)?,
            "must_not" => filter.must_not = parse_conditions(v)?,
            "min_should" => {
                let conditions = parse_conditions(&v["conditions"])?;
                let min = v["min_count"].as_u64().unwrap_or(0);
                filter.min_should = Some((conditions, usize::try_from(min).unwrap_or(usize::MAX)));
            }
            other => {
                return Err(ApiError::format(format!(
                    "unknown field `{other}`, expected one of `should`, `min_should`, `must`, `must_not`"
                )));
            }
        }
    }
    Ok(filter)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

fn parse_conditions(value: &Value) -> ApiResult<Vec<Condition>> {
    match value {
        Value::Array(items) => items.iter().map(parse_condition).collect(),
        Value::Null => Ok(Vec::new()),
        one => Ok(vec![parse_condition(one)?]),
    }
}

fn parse_condition(value: &Value) -> ApiResult<Condition> {
    let bad = || ApiError::format(CONDITION_EXPECTED);
    let map = value.as_object().ok_or_else(bad)?;
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    if let Some(key) = get("key").and_then(Value::as_str) {
        let key = key.to_owned();
        let check = if let Some(m) = get("match") {
            if let Some(v) = m.get("value") {
                FieldCheck::Value(v.clone())
            } else if let Some(Value::Array(any)) = m.get("any") {
                FieldCheck::Any(any.clone())
            } else if let Some(Value::Array(except)) = m.get("except") {
                FieldCheck::Except(except.clone())
            } else if let Some(t) = m
                .get("text")
                .or_else(|| m.get("phrase"))
                .and_then(Value::as_str)
            {
                FieldCheck::Text(t.to_owned())
            } else {
                return Err(bad());
            }
        } else if let Some(r) = get("range") {
            let f = |k: &str| r.get(k).and_then(Value::as_f64);
            if ["gt", "gte", "lt", "lte"]
                .iter()
                .any(|k| r.get(*k).is_some_and(Value::is_string))
            {
                return Err(ApiError::unsupported("datetime range"));
            }
            FieldCheck::Range {
                gt: f("gt"),
                gte: f("gte"),
                lt: f("lt"),
                lte: f("lte"),
            }
        } else if let Some(r) = get("values_count") {
            let f = |k: &str| {
                r.get(k)
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
            };
            FieldCheck::ValuesCount {
                gt: f("gt"),
                gte: f("gte"),
                lt: f("lt"),
                lte: f("lte"),
            }
        } else if let Some(b) = get("is_empty").and_then(Value::as_bool) {
            FieldCheck::IsEmpty(b)
        } else if let Some(b) = get("is_null").and_then(Value::as_bool) {
            FieldCheck::IsNull(b)
        } else if get("geo_bounding_box").is_some()
            || get("geo_radius").is_some()
            || get("geo_polygon").is_some()
        {
            return Err(ApiError::unsupported("geo conditions"));
        } else {
            return Err(ApiError::validation(
                "JSON body",
                &[(
                    "filter".to_owned(),
                    "At least one field condition must be specified".to_owned(),
                )],
            ));
        };
        return Ok(Condition::Field { key, check });
    }
    if let Some(e) = get("is_empty") {
        let key = e["key"].as_str().ok_or_else(bad)?;
        return Ok(Condition::IsEmpty(key.to_owned()));
    }
    if let Some(e) = get("is_null") {
        let key = e["key"].as_str().ok_or_else(bad)?;
        return Ok(Condition::IsNull(key.to_owned()));
    }
    if let Some(ids) = get("has_id") {
        let ids: Vec<PointId> = serde_json::from_value(ids.clone()).map_err(ApiError::format)?;
        return Ok(Condition::HasId(ids.into_iter().collect()));
    }
    if let Some(name) = get("has_vector").and_then(Value::as_str) {
        return Ok(Condition::HasVector(name.to_owned()));
    }
    if let Some(nested) = get("nested") {
        let key = nested["key"].as_str().ok_or_else(bad)?.to_owned();
        let filter = parse_filter(&nested["filter"])?;
        return Ok(Condition::Nested { key, filter });
    }
    if ["must", "should", "must_not", "min_should"]
        .iter()
        .any(|k| map.contains_key(*k))
    {
        return Ok(Condition::Filter(parse_filter(value)?));
    }
    Err(bad())
}

impl Filter {
    fn matches(&self, id: PointId, point: &Point) -> bool {
        self.matches_in(id, point, &point.payload)
    }

    fn matches_in(&self, id: PointId, point: &Point, payload: &Map<String, Value>) -> bool {
        let check = |c: &Condition| c.matches(id, point, payload);
        self.must.iter().all(check)
            && !self.must_not.iter().any(check)
            && (self.should.is_empty() || self.should.iter().any(check))
            && self
                .min_should
                .as_ref()
                .is_none_or(|(conds, min)| conds.iter().filter(|c| check(c)).count() >= *min)
    }
}

impl Condition {
    fn matches(&self, id: PointId, point: &Point, payload: &Map<String, Value>) -> bool {
        match self {
            Condition::Field { key, check } => check.matches(&values_at(payload, key)),
            Condition::IsEmpty(key) => values_at(payload, key).iter().all(|v| v.is_null()),
            Condition::IsNull(key) => raw_values_at(payload, key).iter().any(|v| v.is_null()),
            Condition::HasId(ids) => ids.contains(&id),
            Condition::HasVector(name) => point.vectors.contains_key(name),
            Condition::Nested { key, filter } => raw_values_at(payload, key)
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    other => vec![other],
                })
                .filter_map(Value::as_object)
                .any(|inner| filter.matches_in(id, point, inner)),
            Condition::Filter(f) => f.matches_in(id, point, payload),
        }
    }
}

impl FieldCheck {
    fn matches(&self, values: &[&Value]) -> bool {
        let number = |v: &&Value| v.as_f64();
        match self {
            FieldCheck::Value(want) => values.contains(&want),
            FieldCheck::Any(wants) => values.iter().any(|v| wants.contains(*v)),
            FieldCheck::Except(wants) => {
                values.is_empty() || values.iter().any(|v| !wants.contains(*v))
            }
            FieldCheck::Text(t) => values
                .iter()
                .filter_map(|v| v.as_str())
                .any(|s| s.contains(t.as_str())),
            FieldCheck::Range { gt, gte, lt, lte } => values.iter().filter_map(number).any(|x| {
                gt.is_none_or(|b| x > b)
                    && gte.is_none_or(|b| x >= b)
                    && lt.is_none_or(|b| x < b)
                    && lte.is_none_or(|b| x <= b)
            }),
            FieldCheck::ValuesCount { gt, gte, lt, lte } => {
                let n = values.len();
                gt.is_none_or(|b| n > b)
                    && gte.is_none_or(|b| n >= b)
                    && lt.is_none_or(|b| n < b)
                    && lte.is_none_or(|b| n <= b)
            }
            FieldCheck::IsEmpty(want) => values.iter().all(|v| v.is_null()) == *want,
            FieldCheck::IsNull(want) => values.iter().any(|v| v.is_null()) == *want,
        }
    }
}

/// The values at a payload path (`a.b`, `a[].b`), arrays flattened.
fn values_at<'a>(payload: &'a Map<String, Value>, path: &str) -> Vec<&'a Value> {
    raw_values_at(payload, path)
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

/// The values at a payload path, arrays at the end kept whole.
fn raw_values_at<'a>(payload: &'a Map<String, Value>, path: &str) -> Vec<&'a Value> {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let (key, flatten) = match first.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (first, false),
    };
    let mut current: Vec<&Value> = payload.get(key).into_iter().collect();
    if flatten {
        current = flatten_arrays(current);
    }
    for part in parts {
        let (key, flatten) = match part.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        for v in flatten_arrays(current) {
            if let Some(inner) = v.as_object().and_then(|m| m.get(key)) {
                next.push(inner);
            }
        }
        current = if flatten { flatten_arrays(next) } else { next };
    }
    current
}

fn flatten_arrays(values: Vec<&Value>) -> Vec<&Value> {
    values
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_known_values() {
        assert_eq!(round_to_f16(1.0), 1.0);
        assert_eq!(round_to_f16(0.1), 0.099975586);
        assert_eq!(round_to_f16(65504.0), 65504.0);
        assert_eq!(round_to_f16(65520.0), f32::INFINITY);
        assert_eq!(round_to_f16(2.0f32.powi(-24)), 2.0f32.powi(-24));
    }
}
