//! A Weaviate v1.39 emulator: the REST and GraphQL surface that vecport and
//! the official Python client 3.x use, with Weaviate's JSON shapes, status
//! codes and error messages (taken from weaviate/weaviate v1.39:
//! `adapters/handlers/rest`, `usecases/schema`, `usecases/objects`,
//! `entities/schema`, `entities/vectorindex/hnsw`, and go-openapi's error
//! serving). State lives in memory.
//!
//! What is emulated, and how faithfully:
//! - `GET /v1/.well-known/ready|live` (200, empty body, no credentials),
//!   `/v1/.well-known/openid-configuration` (404: no OIDC), `GET /v1/meta`.
//! - Auth (when an API key is set): `Authorization: Bearer KEY`. No bearer →
//!   401 `{"code":401,"message": "anonymous access not enabled. …"}` (the
//!   server's own odd spacing); a wrong key → 401
//!   `{"code":401,"message":"unauthorized: invalid api key"}`.
//! - Schema: list, create (class name capitalised and property names
//!   de-capitalised first, then validated: class `[A-Z][_0-9A-Za-z]{0,254}`,
//!   property `[_A-Za-z][_0-9A-Za-z]{0,230}`, reserved `id`, `_id`,
//!   `_additional`, reserved suffixes, duplicates, data types), get (404 with
//!   no body), delete (200 even when absent), add property, tenants. Defaults
//!   filled exactly as Weaviate answers them: HNSW `vectorIndexConfig`
//!   (including pq/bq/sq/rq/multivector), `invertedIndexConfig`,
//!   `shardingConfig` (all zeros for multi-tenant classes),
//!   `replicationConfig`, `multiTenancyConfig`, property indexing and
//!   tokenization defaults, nested properties, named vectors (`vectorConfig`).
//!   `flat`/`dynamic` index configs keep what the client sent plus `distance`.
//! - Objects: `GET /v1/objects` (class scan in UUID byte order; `after` is
//!   exclusive and needs `class`, no `offset`; default limit 10;
//!   `offset + limit` ≤ 10000 = `QUERY_MAXIMUM_RESULTS`, answered 422 with
//!   Weaviate's `msg:… code:… err:…` text; multi-tenant classes need
//!   `tenant`), `POST /v1/objects`, `GET/HEAD/PUT/DELETE
//!   /v1/objects/{Class}/{id}`.
//! - `POST /v1/batch/objects`: the body is validated first (an id that is not
//!   a UUID fails the whole request: 422 `{"code":601,"message":"body.objects.N.id
//!   in body must be of type uuid: …"}`); then every object gets its own
//!   result in a 200, the object echoed with `deprecations: null` and
//!   `result: {"status":"SUCCESS"}` or `result: {"errors":
//!   {"error":[{"message"}]},"status":"FAILED"}` (unknown property with
//!   auto-schema off, wrong value type, missing / unknown tenant, vector
//!   dimension mismatch with the vectors already in that shard's index,
//!   unknown named vector, …). Writes replace by UUID.
//! - Auto-schema (on by default, as in Weaviate): an unknown class is created
//!   (with one named vector, `default`, as Weaviate 1.39 does; a plain
//!   `vector` goes to it), unknown properties are added with the types
//!   Weaviate infers (strings: RFC3339 → `date`, UUID → `uuid`, else `text`;
//!   JSON numbers → `number`; booleans; arrays → `…[]`, mixed
//!   text/date/uuid → `text[]`; objects → `object` with nested properties,
//!   merged into existing object properties; `{latitude, longitude}` →
//!   `geoCoordinates`; `{input}` → `phoneNumber`; `null` → `text`). Null
//!   values are then dropped. Added properties carry Weaviate's "generated
//!   by auto-schema" description.
//! - Stored values are what Weaviate stores: ints and numbers as float64
//!   (answered as integers when integral), dates re-formatted as RFC3339 with
//!   nanoseconds, UUIDs lowercase, vectors as f32.
//! - `POST /v1/graphql`: `Get` (properties, nested selections,
//!   `_additional { id distance certainty vector vectors creationTimeUnix
//!   lastUpdateTimeUnix }`, `nearVector {vector, distance, certainty,
//!   targetVectors}`, `limit`, `offset`, `after`, `tenant`) and `Aggregate`
//!   (`meta { count }`, `tenant`). Search is brute force; distances as
//!   Weaviate defines them: cosine 1 − cos, dot −dot, l2-squared, manhattan,
//!   hamming. Errors come back as 200 `{"data":…,"errors":[{"locations",
//!   "message","path"}]}`.
//! - Faults (shared layer): 429 with `Retry-After`, 503, dropped connections,
//!   delays, with bodies in Weaviate's `{"error":[{"message"}]}` shape.
//!
//! Not emulated: cross-references (accepted in the schema, values stored
//! unchecked), filters (`where`), sorting, hybrid/BM25, vectorizer modules,
//! auto tenant creation/activation, replication, backups, RBAC.
//!
//! [uncertain] (not confirmed in Weaviate's source, or depending on run-time
//! state the emulator does not have): real Weaviate may store an object whose
//! vector then fails the index dimension check (the batch reports the same
//! error; the emulator does not store it); the doc id and shard name inside
//! dimension errors; the wording of GraphQL errors for a query vector of the
//! wrong length or a missing target vector; which id spellings the `uuid`
//! format accepts (hyphenated or 32 hex digits here).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Emulator, FaultInjector, FaultKind, Faults};

/// The Weaviate version the emulator claims (`GET /v1/meta`).
pub const VERSION: &str = "1.39.0";
/// Weaviate's default `QUERY_MAXIMUM_RESULTS`.
pub const QUERY_MAXIMUM_RESULTS: i64 = 10_000;
/// Weaviate's default `QUERY_DEFAULTS_LIMIT`.
pub const DEFAULT_LIMIT: i64 = 10;
/// Largest request body the emulator reads. Weaviate itself sets no limit;
/// this only keeps a runaway test from exhausting memory.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 256 * 1024 * 1024;

/// How to start a Weaviate emulator.
#[derive(Clone, Debug)]
pub struct WeaviateOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// When set, every request except `/v1/.well-known/*` must carry
    /// `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Faults injected from the start.
    pub faults: Faults,
    /// Weaviate's `AUTOSCHEMA_ENABLED` (default true).
    pub auto_schema: bool,
    /// Request body limit in bytes.
    pub max_request_size: usize,
}

impl Default for WeaviateOptions {
    fn default() -> WeaviateOptions {
        WeaviateOptions {
            port: 0,
            api_key: None,
            faults: Faults::default(),
            auto_schema: true,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

/// A running Weaviate emulator.
pub type WeaviateEmulator = Emulator<Weaviate>;

/// Starts an emulator inside the current tokio runtime.
pub async fn start(options: WeaviateOptions) -> std::io::Result<WeaviateEmulator> {
    let (state, faults, app) = build(&options)?;
    let emulator = super::serve(options.port, state, faults, app).await?;
    emulator.state().set_hostname(emulator.base_url());
    Ok(emulator)
}

/// Starts an emulator on a thread of its own (for callers without a runtime).
pub fn start_background(options: WeaviateOptions) -> std::io::Result<WeaviateEmulator> {
    let (state, faults, app) = build(&options)?;
    let emulator = super::serve_background(options.port, state, faults, app)?;
    emulator.state().set_hostname(emulator.base_url());
    Ok(emulator)
}

type Built = (Arc<Weaviate>, Arc<FaultInjector>, Router);

fn build(options: &WeaviateOptions) -> std::io::Result<Built> {
    let faults = FaultInjector::new(options.faults.clone(), fault_response)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let state = Arc::new(Weaviate {
        db: Mutex::new(Db::default()),
        api_key: RwLock::new(options.api_key.clone()),
        auto_schema: AtomicBool::new(options.auto_schema),
        max_request_size: AtomicUsize::new(options.max_request_size),
        hostname: RwLock::new(String::new()),
        object_timeouts: AtomicU64::new(0),
    });
    let app = router(state.clone());
    Ok((state, Arc::new(faults), app))
}

impl Emulator<Weaviate> {
    /// Turns auth on (`Some`) or off (`None`).
    pub fn set_api_key(&self, key: Option<&str>) {
        *self
            .state()
            .api_key
            .write()
            .unwrap_or_else(|e| e.into_inner()) = key.map(str::to_owned);
    }

    /// Switches auto-schema (`AUTOSCHEMA_ENABLED`) on or off.
    pub fn set_auto_schema(&self, on: bool) {
        self.state().auto_schema.store(on, Ordering::SeqCst);
    }
}

/// The emulator's state.
pub struct Weaviate {
    db: Mutex<Db>,
    api_key: RwLock<Option<String>>,
    auto_schema: AtomicBool,
    max_request_size: AtomicUsize,
    hostname: RwLock<String>,
    /// Batch objects still to fail with a timeout inside the server.
    object_timeouts: AtomicU64,
}

impl Weaviate {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fault of a batch answered 200: the next `n` objects of
    /// `POST /v1/batch/objects` are not written, and the answer gives each
    /// the error of a timeout inside the server (`context deadline
    /// exceeded`), as Weaviate does when a shard is slow.
    pub fn time_out_batch_objects(&self, n: u64) {
        self.object_timeouts.store(n, Ordering::SeqCst);
    }

    /// Whether the next batch object is to time out (counting it).
    fn object_times_out(&self) -> bool {
        self.object_timeouts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn set_hostname(&self, url: &str) {
        *self.hostname.write().unwrap_or_else(|e| e.into_inner()) = url.to_owned();
    }

    /// Names of the classes, sorted.
    pub fn class_names(&self) -> Vec<String> {
        self.db().classes.keys().cloned().collect()
    }

    /// A class as `GET /v1/schema/{class}` answers it.
    pub fn class_schema(&self, class: &str) -> Option<Value> {
        self.db().classes.get(class).map(|c| c.schema.clone())
    }

    /// Tenant names of a class, sorted.
    pub fn tenants(&self, class: &str) -> Vec<String> {
        self.db()
            .classes
            .get(class)
            .map(|c| c.tenants.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Objects of `class` (in `tenant` for multi-tenant classes), in UUID
    /// order, as `GET /v1/objects?include=vector` answers them.
    pub fn objects(&self, class: &str, tenant: Option<&str>) -> Vec<Value> {
        let db = self.db();
        let Some(c) = db.classes.get(class) else {
            return Vec::new();
        };
        c.shards
            .get(tenant.unwrap_or_default())
            .map(|shard| {
                shard
                    .objects
                    .values()
                    .map(|o| o.to_json(&c.name, true))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many objects `class` holds (in `tenant`).
    pub fn object_count(&self, class: &str, tenant: Option<&str>) -> usize {
        let db = self.db();
        db.classes
            .get(class)
            .and_then(|c| c.shards.get(tenant.unwrap_or_default()))
            .map_or(0, |s| s.objects.len())
    }
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Db {
    classes: BTreeMap<String, Class>,
    /// Weaviate's per-shard doc ids, only used in error messages.
    next_doc_id: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Distance {
    Cosine,
    Dot,
    L2Squared,
    Manhattan,
    Hamming,
}

impl Distance {
    fn parse(s: &str) -> Option<Distance> {
        match s {
            "cosine" => Some(Distance::Cosine),
            "dot" => Some(Distance::Dot),
            "l2-squared" => Some(Distance::L2Squared),
            "manhattan" => Some(Distance::Manhattan),
            "hamming" => Some(Distance::Hamming),
            _ => None,
        }
    }

    /// The distance between `a` and `b`, as Weaviate reports it.
    fn between(self, a: &[f32], b: &[f32]) -> f32 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        match self {
            Distance::Cosine => {
                let na: f64 = a.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
                if na == 0.0 || nb == 0.0 {
                    1.0
                } else {
                    (1.0 - dot / (na * nb)) as f32
                }
            }
            Distance::Dot => (-dot) as f32,
            Distance::L2Squared => a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let d = *x as f64 - *y as f64;
                    d * d
                })
                .sum::<f64>() as f32,
            Distance::Manhattan => a
                .iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - *y as f64).abs())
                .sum::<f64>() as f32,
            Distance::Hamming => a.iter().zip(b).filter(|(x, y)| x != y).count() as f32,
        }
    }
}

#[derive(Clone, Debug)]
struct StoredObject {
    id: Uuid,
    properties: Map<String, Value>,
    vector: Option<Vec<f32>>,
    vectors: BTreeMap<String, Vec<f32>>,
    tenant: Option<String>,
    created: i64,
    updated: i64,
}

impl StoredObject {
    /// The object as the REST API answers it.
    fn to_json(&self, class: &str, with_vector: bool) -> Value {
        let mut m = Map::new();
        m.insert("class".into(), json!(class));
        m.insert("creationTimeUnix".into(), json!(self.created));
        m.insert("id".into(), json!(self.id.to_string()));
        m.insert("lastUpdateTimeUnix".into(), json!(self.updated));
        m.insert("properties".into(), Value::Object(sorted(&self.properties)));
        if let Some(t) = &self.tenant {
            m.insert("tenant".into(), json!(t));
        }
        if with_vector {
            if let Some(v) = &self.vector {
                m.insert("vector".into(), f32s_json(v));
            }
            if !self.vectors.is_empty() {
                let vs: Map<String, Value> = self
                    .vectors
                    .iter()
                    .map(|(k, v)| (k.clone(), f32s_json(v)))
                    .collect();
                m.insert("vectors".into(), Value::Object(vs));
            }
        }
        Value::Object(m)
    }
}

#[derive(Default)]
struct Shard {
    objects: BTreeMap<Uuid, StoredObject>,
    /// Dimensions of each vector index ("" = the class-level one), fixed by
    /// the first vector inserted, as in HNSW.
    dims: BTreeMap<String, usize>,
}

struct Class {
    name: String,
    /// The class as `GET /v1/schema/{class}` answers it.
    schema: Value,
    multi_tenant: bool,
    /// Tenant → activity status.
    tenants: BTreeMap<String, String>,
    /// Shards by tenant ("" for single-tenant classes).
    shards: BTreeMap<String, Shard>,
}

impl Class {
    /// Distance of the class-level vector index, if it has one.
    fn legacy_distance(&self) -> Option<Distance> {
        let s = self.schema.as_object()?;
        s.get("vectorIndexType")?;
        Some(distance_of(s.get("vectorIndexConfig")))
    }

    /// Named vectors and their distances.
    fn named_vectors(&self) -> BTreeMap<String, Distance> {
        self.schema
            .get("vectorConfig")
            .and_then(Value::as_object)
            .map(|vc| {
                vc.iter()
                    .map(|(k, v)| (k.clone(), distance_of(v.get("vectorIndexConfig"))))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn properties(&self) -> Vec<Value> {
        self.schema
            .get("properties")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn property(&self, name: &str) -> Option<Value> {
        self.properties()
            .into_iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
    }

    fn set_properties(&mut self, props: Vec<Value>) {
        if let Some(s) = self.schema.as_object_mut() {
            s.insert("properties".into(), Value::Array(props));
        }
    }

    /// The shard for `tenant`, checking it as Weaviate's multi-tenancy
    /// validator does.
    fn shard_key(&self, tenant: Option<&str>) -> Result<String, String> {
        let tenant = tenant.filter(|t| !t.is_empty());
        match (self.multi_tenant, tenant) {
            (false, None) => Ok(String::new()),
            (false, Some(_)) => Err(format!(
                "class {} has multi-tenancy disabled, but request was with tenant",
                self.name
            )),
            (true, None) => Err(format!(
                "class {} has multi-tenancy enabled, but request was without tenant",
                self.name
            )),
            (true, Some(t)) => match self.tenants.get(t).map(String::as_str) {
                None => Err(format!("tenant not found: {t:?}")),
                Some("HOT") => Ok(t.to_owned()),
                Some(_) => Err(format!("tenant not active: '{t}'")),
            },
        }
    }
}

fn distance_of(config: Option<&Value>) -> Distance {
    config
        .and_then(|c| c.get("distance"))
        .and_then(Value::as_str)
        .and_then(Distance::parse)
        .unwrap_or(Distance::Cosine)
}

// ---------------------------------------------------------------------------
// Routing, auth, errors
// ---------------------------------------------------------------------------

fn router(state: Arc<Weaviate>) -> Router {
    Router::new()
        .route("/v1/.well-known/ready", get(ok_empty))
        .route("/v1/.well-known/live", get(ok_empty))
        .route("/v1/.well-known/openid-configuration", get(no_oidc))
        .route("/v1/meta", get(meta))
        .route("/v1/schema", get(get_schema).post(create_class))
        .route("/v1/schema/{class}", get(get_class).delete(delete_class))
        .route("/v1/schema/{class}/properties", post(add_property))
        .route(
            "/v1/schema/{class}/tenants",
            get(get_tenants).post(add_tenants).delete(delete_tenants),
        )
        .route("/v1/objects", get(list_objects).post(create_object))
        .route(
            "/v1/objects/{class}/{id}",
            get(get_object)
                .head(head_object)
                .put(put_object)
                .delete(delete_object),
        )
        .route("/v1/batch/objects", post(batch_objects))
        .route("/v1/graphql", post(graphql))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

async fn no_oidc() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"code": 404, "message": "path not found"}),
    )
}

async fn method_not_allowed(method: Method) -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"code": 405, "message": format!("method {method} is not allowed")}),
    )
}

fn unauthenticated(path: &str) -> bool {
    path.starts_with("/v1/.well-known/") || path == "/v1"
}

async fn auth(State(w): State<Arc<Weaviate>>, request: Request, next: Next) -> Response {
    let key = w.api_key.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return next.run(request).await;
    };
    if unauthenticated(request.uri().path()) {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    match bearer {
        Some(given) if given == key => next.run(request).await,
        Some(_) => json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"code": 401, "message": "unauthorized: invalid api key"}),
        ),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"code":401,"message": "anonymous access not enabled. Please authenticate through one of the available methods: [API-keys]" }"#,
        )
            .into_response(),
    }
}

/// The body of an injected 429 / 503, in Weaviate's error shape.
fn fault_response(kind: FaultKind, faults: &Faults, _method: &Method, _path: &str) -> Response {
    match kind {
        FaultKind::RateLimit => {
            let secs = faults.retry_after_secs;
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests (emulated fault)",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        _ => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable (emulated fault)",
        ),
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

/// `{"error":[{"message":…}]}`, Weaviate's `ErrorResponse`.
fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &error_body(message))
}

fn error_body(message: &str) -> Value {
    json!({"error": [{"message": message}]})
}

fn unprocessable(message: &str) -> Response {
    error_response(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// A go-openapi validation error (request binding), `{"code","message"}`.
fn swagger_error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(status, &json!({"code": code, "message": message}))
}

async fn read_body(w: &Weaviate, request: Request) -> Result<Value, Response> {
    let limit = w.max_request_size.load(Ordering::SeqCst);
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            swagger_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                &format!("request body larger than {limit} bytes"),
            )
        })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(swagger_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            602,
            "body in body is required",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        swagger_error(
            StatusCode::BAD_REQUEST,
            400,
            &format!("parsing body body from \"\" failed, because {e}"),
        )
    })
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
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn f32_json(x: f32) -> Value {
    // The shortest text that reads back as the same f32, as Go prints a float32.
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn f32s_json(xs: &[f32]) -> Value {
    Value::Array(xs.iter().map(|x| f32_json(*x)).collect())
}

/// A float64 as Go's encoding/json writes it: integral values without a
/// fraction.
fn go_number(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// A map with its keys sorted, as Go writes a `map[string]interface{}`.
fn sorted(m: &Map<String, Value>) -> Map<String, Value> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = match &m[k] {
                Value::Object(inner) => Value::Object(sorted(inner)),
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Object(o) => Value::Object(sorted(o)),
                            other => other.clone(),
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Go's `%T` of a value decoded from JSON with `UseNumber`.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `%v` of a value decoded from JSON with `UseNumber`.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%s` of a value (non-strings come out as `%!s(type=value)`).
fn go_s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => format!("%!s(bool={b})"),
        Value::Null => "%!s(<nil>)".into(),
        other => go_value(other),
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_uuid(s: &str) -> Option<Uuid> {
    // strfmt's uuid format: hyphenated (any version) or 32 hex digits.
    let hyphenated = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    let plain = s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit());
    if hyphenated || plain {
        Uuid::parse_str(s).ok()
    } else {
        None
    }
}

fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    for b in &mut bytes {
        *b = fastrand::u8(..);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

/// Weaviate's HNSW `UserConfig` defaults, in its field order.
fn hnsw_defaults() -> Map<String, Value> {
    let v = json!({
        "skip": false,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1_000_000_000_000i64,
        "flatSearchCutoff": 40000,
        "distance": "cosine",
        "pq": {
            "enabled": false,
            "bitCompression": false,
            "segments": 0,
            "centroids": 256,
            "trainingLimit": 100000,
            "encoder": {"type": "kmeans", "distribution": "log-normal"}
        },
        "bq": {"enabled": false},
        "sq": {"enabled": false, "trainingLimit": 100000, "rescoreLimit": 20},
        "rq": {"enabled": false, "bits": 8, "rescoreLimit": 20},
        "filterStrategy": "acorn",
        "multivector": {
            "enabled": false,
            "muvera": {"enabled": false, "ksim": 4, "dprojections": 16, "repetitions": 10},
            "aggregation": "maxSim"
        },
        "skipDefaultQuantization": false,
        "trackDefaultQuantization": false
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `defaults` with the user's values for the keys it knows (unknown keys
/// are ignored, as Weaviate's config parsers ignore them).
fn merge_known(defaults: &Map<String, Value>, user: Option<&Value>) -> Map<String, Value> {
    let user = user.and_then(Value::as_object);
    defaults
        .iter()
        .map(|(k, d)| {
            let v = match (d, user.and_then(|u| u.get(k))) {
                (Value::Object(dm), Some(u @ Value::Object(_))) => {
                    Value::Object(merge_known(dm, Some(u)))
                }
                (_, Some(u)) if !u.is_null() => u.clone(),
                (d, _) => d.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A vector index config with defaults filled, or Weaviate's complaint.
fn vector_index_config(index_type: &str, user: Option<&Value>) -> Result<Value, String> {
    if let Some(u) = user
        && !u.is_null()
        && !u.is_object()
    {
        return Err("input must be a non-nil map".into());
    }
    let config = if index_type == "hnsw" {
        let m = merge_known(&hnsw_defaults(), user);
        let int = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
        let mut problems = Vec::new();
        if int("maxConnections") < 4 {
            problems
                .push("maxConnections must be a positive integer with a minimum of 4".to_owned());
        }
        if int("maxConnections") > 2047 {
            problems.push("maxConnections must be less than 2048".to_owned());
        }
        if int("efConstruction") < 4 {
            problems
                .push("efConstruction must be a positive integer with a minimum of 4".to_owned());
        }
        let strategy = m.get("filterStrategy").and_then(Value::as_str);
        if strategy != Some("sweeping") && strategy != Some("acorn") {
            problems.push("filterStrategy must be either 'sweeping' or 'acorn'".to_owned());
        }
        if !problems.is_empty() {
            return Err(format!("invalid hnsw config: {}", problems.join(", ")));
        }
        let enabled = ["pq", "bq", "sq", "rq"]
            .iter()
            .filter(|q| m.get(**q).and_then(|c| c.get("enabled")) == Some(&Value::Bool(true)))
            .count();
        if enabled > 1 {
            return Err(
                "invalid hnsw config: more than a single compression methods enabled".into(),
            );
        }
        m
    } else {
        let mut m = user.and_then(Value::as_object).cloned().unwrap_or_default();
        m.entry("distance").or_insert(json!("cosine"));
        m
    };
    let distance = config.get("distance").and_then(Value::as_str).unwrap_or("");
    if Distance::parse(distance).is_none() {
        return Err(format!(
            "invalid {index_type} config: distance {distance:?} is not supported"
        ));
    }
    Ok(Value::Object(config))
}

fn check_index_type(t: &str) -> Result<(), String> {
    match t {
        "hnsw" | "flat" | "dynamic" => Ok(()),
        other => Err(format!(
            "unrecognized or unsupported vectorIndexType {other:?}"
        )),
    }
}

const PRIMITIVE_TYPES: [&str; 19] = [
    "text",
    "text[]",
    "string",
    "string[]",
    "int",
    "int[]",
    "number",
    "number[]",
    "boolean",
    "boolean[]",
    "date",
    "date[]",
    "uuid",
    "uuid[]",
    "geoCoordinates",
    "phoneNumber",
    "blob",
    "object",
    "object[]",
];

fn is_text(dt: &str) -> bool {
    matches!(dt, "text" | "text[]" | "string" | "string[]")
}

fn is_nested(dt: &str) -> bool {
    matches!(dt, "object" | "object[]")
}

fn valid_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('A'..='Z'))
        && name.len() <= 255
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn valid_property_name(name: &str, max: usize) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && name.len() <= max
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn check_class_name(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!(
            "'{name}' is not a valid class name. Name should not be longer than 255 characters"
        ));
    }
    if !valid_class_name(name) {
        return Err(format!("'{name}' is not a valid class name"));
    }
    Ok(())
}

fn check_property_name(name: &str) -> Result<(), String> {
    if name.len() > 231 {
        return Err(format!(
            "'{name}' is not a valid property name. Name should not be longer than 231 characters"
        ));
    }
    if !valid_property_name(name, 231) {
        return Err(format!(
            "'{name}' is not a valid property name. Property names in Weaviate are restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]{{0,230}}/”"
        ));
    }
    if ["_additional", "_id", "id"].contains(&name) {
        return Err(format!("'{name}' is a reserved property name"));
    }
    Ok(())
}

const RESERVED_SUFFIXES: [&str; 6] = [
    "_searchable",
    "_rangeable",
    "_temp",
    "__meta_count",
    "_propertyLength",
    "_nullState",
];

fn data_types(p: &Value) -> Vec<String> {
    p.get("dataType")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|d| d.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn check_data_type(name: &str, dts: &[String]) -> Result<(), String> {
    let err = |why: &str| {
        Err(format!(
            "property '{name}': invalid dataType: [{}]: {why}",
            dts.join(" ")
        ))
    };
    let Some(first) = dts.first() else {
        return err("dataType must have at least one element");
    };
    if dts.len() == 1 {
        if first.is_empty() {
            return err("dataType cannot be an empty string");
        }
        if PRIMITIVE_TYPES.contains(&first.as_str()) {
            return Ok(());
        }
        if !first.starts_with(|c: char| c.is_ascii_uppercase()) {
            return err(&format!("unknown primitive data type '{first}'"));
        }
    }
    // Cross-references: accepted as Weaviate does on class creation.
    Ok(())
}

/// A property with Weaviate's defaults filled, in Go's field order.
fn property_with_defaults(p: &Map<String, Value>) -> Value {
    let dts = data_types(&Value::Object(p.clone()));
    let dt = if dts.len() == 1 { dts[0].as_str() } else { "" };
    let primitive = PRIMITIVE_TYPES.contains(&dt);
    let mut filterable = p.get("indexFilterable").cloned();
    let mut searchable = p.get("indexSearchable").cloned();
    let mut range = p.get("indexRangeFilters").cloned();
    if let Some(inverted) = p.get("indexInverted").filter(|v| v.is_boolean())
        && filterable.is_none()
        && searchable.is_none()
        && range.is_none()
    {
        filterable = Some(inverted.clone());
        searchable = Some(if is_text(dt) {
            inverted.clone()
        } else {
            json!(false)
        });
        range = Some(json!(false));
    }
    let filterable = filterable.unwrap_or(json!(true));
    let searchable = searchable.unwrap_or(json!(is_text(dt)));
    let range = range.unwrap_or(json!(false));
    let mut tokenization = p
        .get("tokenization")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if tokenization.is_empty() && primitive && is_text(dt) {
        tokenization = "word".into();
    }
    let mut dt_out = dts.clone();
    if dt == "string" || dt == "string[]" {
        dt_out = vec![if dt == "string" { "text" } else { "text[]" }.to_owned()];
        if tokenization == "word" {
            tokenization = "whitespace".into();
        }
    }
    let mut m = Map::new();
    m.insert("dataType".into(), json!(dt_out));
    if let Some(d) = p
        .get("description")
        .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()))
    {
        m.insert("description".into(), d.clone());
    }
    m.insert("indexFilterable".into(), filterable);
    m.insert("indexRangeFilters".into(), range);
    m.insert("indexSearchable".into(), searchable);
    if let Some(mc) = p.get("moduleConfig").filter(|v| !v.is_null()) {
        m.insert("moduleConfig".into(), mc.clone());
    }
    m.insert("name".into(), p.get("name").cloned().unwrap_or(json!("")));
    if is_nested(dt)
        && let Some(nested) = p.get("nestedProperties").and_then(Value::as_array)
    {
        let nested: Vec<Value> = nested
            .iter()
            .filter_map(Value::as_object)
            .map(nested_with_defaults)
            .collect();
        m.insert("nestedProperties".into(), Value::Array(nested));
    }
    if !tokenization.is_empty() {
        m.insert("tokenization".into(), json!(tokenization));
    }
    Value::Object(m)
}

fn nested_with_defaults(p: &Map<String, Value>) -> Value {
    let dts = data_types(&Value::Object(p.clone()));
    let dt = if dts.len() == 1 { dts[0].as_str() } else { "" };
    let mut m = Map::new();
    m.insert("dataType".into(), json!(dts));
    if let Some(d) = p
        .get("description")
        .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()))
    {
        m.insert("description".into(), d.clone());
    }
    let filterable = p
        .get("indexFilterable")
        .cloned()
        .unwrap_or(json!(dt != "blob"));
    m.insert("indexFilterable".into(), filterable);
    m.insert(
        "indexRangeFilters".into(),
        p.get("indexRangeFilters").cloned().unwrap_or(json!(false)),
    );
    m.insert(
        "indexSearchable".into(),
        p.get("indexSearchable")
            .cloned()
            .unwrap_or(json!(dt == "text" || dt == "text[]")),
    );
    m.insert("name".into(), p.get("name").cloned().unwrap_or(json!("")));
    if is_nested(dt)
        && let Some(nested) = p.get("nestedProperties").and_then(Value::as_array)
    {
        let nested: Vec<Value> = nested
            .iter()
            .filter_map(Value::as_object)
            .map(nested_with_defaults)
            .collect();
        m.insert("nestedProperties".into(), Value::Array(nested));
    }
    let tokenization = p
        .get("tokenization")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| (dt == "text" || dt == "text[]").then(|| "word".to_owned()));
    if let Some(t) = tokenization {
        m.insert("tokenization".into(), json!(t));
    }
    Value::Object(m)
}

fn check_nested(props: Option<&Value>, prefix: &str) -> Result<(), String> {
    let props = props.and_then(Value::as_array).cloned().unwrap_or_default();
    if props.is_empty() {
        return Err(format!(
            "property '{prefix}': At least one nested property is required for data type object/object[]"
        ));
    }
    for p in &props {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if !valid_property_name(name, usize::MAX) {
            return Err(format!(
                "'{name}' is not a valid nested property name of '{prefix}'. NestedProperty names in Weaviate are restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]*/”"
            ));
        }
        let full = format!("{prefix}.{name}");
        let dts = data_types(p);
        let dt = dts.first().map(String::as_str).unwrap_or_default();
        if dt == "string" || dt == "string[]" {
            return Err(format!(
                "property '{full}': data type '{dt}' is deprecated and not allowed as nested property"
            ));
        }
        if matches!(dt, "geoCoordinates" | "phoneNumber") {
            return Err(format!(
                "property '{full}': data type '{dt}' not allowed as nested property"
            ));
        }
        if dts.len() != 1 || !PRIMITIVE_TYPES.contains(&dt) {
            return Err(format!(
                "property '{full}': reference data type not allowed"
            ));
        }
        if is_nested(dt) {
            check_nested(p.get("nestedProperties"), &full)?;
        }
    }
    Ok(())
}

/// Validates `props` (already de-capitalised) against `existing` names and
/// fills their defaults.
fn prepare_properties(
    class: &str,
    props: &[Value],
    existing: &[String],
) -> Result<Vec<Value>, String> {
    let mut seen: Vec<String> = existing.iter().map(|n| n.to_lowercase()).collect();
    let mut out = Vec::new();
    for p in props {
        let Some(pm) = p.as_object() else {
            return Err("property must be an object".into());
        };
        let name = pm.get("name").and_then(Value::as_str).unwrap_or_default();
        check_property_name(name)?;
        if seen.contains(&name.to_lowercase()) {
            return Err(format!(
                "class {class:?}: conflict for property {name:?}: already in use or provided multiple times"
            ));
        }
        let dts = data_types(p);
        check_data_type(name, &dts)?;
        let dt = dts.first().map(String::as_str).unwrap_or_default();
        if dts.len() == 1 && is_nested(dt) {
            check_nested(pm.get("nestedProperties"), name)?;
        } else if pm
            .get("nestedProperties")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err(format!(
                "property '{name}': nestedProperties not allowed for data types other than object/object[]"
            ));
        }
        if let Some(t) = pm
            .get("tokenization")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            if !is_text(dt) {
                return Err(format!("tokenization is not allowed for data type '{dt}'"));
            }
            if !matches!(
                t,
                "word"
                    | "lowercase"
                    | "whitespace"
                    | "field"
                    | "trigram"
                    | "gse"
                    | "kagome_kr"
                    | "kagome_ja"
                    | "gse_ch"
            ) {
                return Err(format!(
                    "tokenization '{t}' is not allowed for data type '{dt}'"
                ));
            }
        }
        seen.push(name.to_lowercase());
        out.push(property_with_defaults(pm));
    }
    Ok(out)
}

fn lowercase_property_names(props: &mut [Value]) {
    for p in props {
        if let Some(name) = p.get("name").and_then(Value::as_str).map(lower_first)
            && let Some(m) = p.as_object_mut()
        {
            m.insert("name".into(), json!(name));
        }
    }
}

/// Builds a class as Weaviate stores and answers it from a create request.
fn new_class(body: &Value) -> Result<Class, String> {
    let Some(b) = body.as_object() else {
        return Err("class must be an object".into());
    };
    let name = upper_first(b.get("class").and_then(Value::as_str).unwrap_or_default());
    let mut props: Vec<Value> = b
        .get("properties")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    lowercase_property_names(&mut props);
    for p in &props {
        let n = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| n.ends_with(**s)) {
            return Err(format!(
                "'{n}' is not a valid property name: suffix '{suffix}' is reserved for internal indices"
            ));
        }
    }
    let mt = b
        .get("multiTenancyConfig")
        .and_then(|m| m.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if mt && b.get("shardingConfig").is_some_and(|s| !s.is_null()) {
        return Err("cannot have both shardingConfig and multiTenancyConfig".into());
    }
    let named = b
        .get("vectorConfig")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .cloned();
    let legacy_given = b.get("vectorIndexType").is_some_and(|v| !v.is_null())
        || b.get("vectorIndexConfig").is_some_and(|v| !v.is_null());
    if named.is_some() && legacy_given {
        return Err(
            "creating a class with both a class level vector index and named vectors is forbidden"
                .into(),
        );
    }
    check_class_name(&name)?;
    let props = prepare_properties(&name, &props, &[])?;

    let mut s = Map::new();
    s.insert("class".into(), json!(name));
    if let Some(d) = b
        .get("description")
        .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()))
    {
        s.insert("description".into(), d.clone());
    }
    s.insert(
        "invertedIndexConfig".into(),
        inverted_config(b.get("invertedIndexConfig")),
    );
    if let Some(mc) = b.get("moduleConfig").filter(|v| !v.is_null()) {
        s.insert("moduleConfig".into(), mc.clone());
    }
    let mut mtc = Map::new();
    for key in ["autoTenantActivation", "autoTenantCreation", "enabled"] {
        let v = b
            .get("multiTenancyConfig")
            .and_then(|m| m.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        mtc.insert(key.into(), json!(v));
    }
    s.insert("multiTenancyConfig".into(), Value::Object(mtc));
    // A class created without properties answers `"properties": null`.
    let given = b.get("properties").is_some_and(|p| !p.is_null());
    s.insert(
        "properties".into(),
        if given || !props.is_empty() {
            Value::Array(props)
        } else {
            Value::Null
        },
    );
    let repl = b.get("replicationConfig").and_then(Value::as_object);
    let factor = repl
        .and_then(|r| r.get("factor"))
        .and_then(Value::as_i64)
        .filter(|f| *f >= 1)
        .unwrap_or(1);
    s.insert(
        "replicationConfig".into(),
        json!({
            "asyncEnabled": repl.and_then(|r| r.get("asyncEnabled")).and_then(Value::as_bool).unwrap_or(false),
            "deletionStrategy": repl.and_then(|r| r.get("deletionStrategy")).and_then(Value::as_str).unwrap_or("TimeBasedResolution"),
            "factor": factor,
        }),
    );
    s.insert(
        "shardingConfig".into(),
        sharding_config(mt, b.get("shardingConfig")),
    );
    if let Some(named) = &named {
        let mut out = Map::new();
        for (vname, cfg) in named {
            if !valid_property_name(vname, 230) {
                return Err(format!(
                    "parse vector config for {vname}: target vector name {vname:?} is not a valid GraphQL name"
                ));
            }
            let index_type = cfg
                .get("vectorIndexType")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .unwrap_or("hnsw");
            check_index_type(index_type)
                .map_err(|e| format!("parse vector config for {vname}: {e}"))?;
            let vic = vector_index_config(index_type, cfg.get("vectorIndexConfig"))
                .map_err(|e| format!("parse vector config for {vname}: {e}"))?;
            let vectorizer = match cfg.get("vectorizer") {
                Some(v @ Value::Object(m)) if !m.is_empty() => v.clone(),
                Some(Value::Object(_)) | None | Some(Value::Null) => json!({"none": {}}),
                Some(other) => {
                    return Err(format!(
                        "vectorizer for {vname} is not a map, got {}",
                        go_value(other)
                    ));
                }
            };
            out.insert(
                vname.clone(),
                json!({
                    "vectorIndexConfig": vic,
                    "vectorIndexType": index_type,
                    "vectorizer": vectorizer,
                }),
            );
        }
        s.insert("vectorConfig".into(), Value::Object(out));
    } else {
        let index_type = b
            .get("vectorIndexType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("hnsw");
        check_index_type(index_type)?;
        let vic = vector_index_config(index_type, b.get("vectorIndexConfig"))
            .map_err(|e| format!("parse vector index config: {e}"))?;
        s.insert("vectorIndexConfig".into(), vic);
        s.insert("vectorIndexType".into(), json!(index_type));
        let vectorizer = b
            .get("vectorizer")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or("none");
        if vectorizer != "none" {
            return Err(format!(
                "vectorizer: no module with name {vectorizer:?} present"
            ));
        }
        s.insert("vectorizer".into(), json!(vectorizer));
    }
    let mut shards = BTreeMap::new();
    if !mt {
        shards.insert(String::new(), Shard::default());
    }
    Ok(Class {
        name,
        schema: Value::Object(s),
        multi_tenant: mt,
        tenants: BTreeMap::new(),
        shards,
    })
}

fn inverted_config(user: Option<&Value>) -> Value {
    let u = user.and_then(Value::as_object);
    let get = |k: &str| u.and_then(|u| u.get(k)).filter(|v| !v.is_null());
    let mut m = Map::new();
    let bm25 = get("bm25").and_then(Value::as_object);
    m.insert(
        "bm25".into(),
        json!({
            "b": bm25.and_then(|b| b.get("b")).cloned().unwrap_or(json!(0.75)),
            "k1": bm25.and_then(|b| b.get("k1")).cloned().unwrap_or(json!(1.2)),
        }),
    );
    let cleanup = get("cleanupIntervalSeconds")
        .and_then(Value::as_i64)
        .filter(|c| *c != 0)
        .unwrap_or(60);
    m.insert("cleanupIntervalSeconds".into(), json!(cleanup));
    for key in ["indexNullState", "indexPropertyLength", "indexTimestamps"] {
        if get(key) == Some(&Value::Bool(true)) {
            m.insert(key.into(), json!(true));
        }
    }
    let stop = get("stopwords").and_then(Value::as_object);
    let list = |k: &str| {
        stop.and_then(|s| s.get(k))
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
            .unwrap_or(Value::Null)
    };
    m.insert(
        "stopwords".into(),
        json!({
            "additions": list("additions"),
            "preset": stop.and_then(|s| s.get("preset")).and_then(Value::as_str).filter(|p| !p.is_empty()).unwrap_or("en"),
            "removals": list("removals"),
        }),
    );
    m.insert("usingBlockMaxWAND".into(), json!(true));
    Value::Object(m)
}

fn sharding_config(multi_tenant: bool, user: Option<&Value>) -> Value {
    if multi_tenant {
        return json!({
            "virtualPerPhysical": 0, "desiredCount": 0, "actualCount": 0,
            "desiredVirtualCount": 0, "actualVirtualCount": 0,
            "key": "", "strategy": "", "function": ""
        });
    }
    let u = user.and_then(Value::as_object);
    let int = |k: &str, d: i64| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(d)
    };
    let text = |k: &str, d: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .unwrap_or(d)
            .to_owned()
    };
    let vpp = int("virtualPerPhysical", 128);
    let desired = int("desiredCount", 1);
    json!({
        "virtualPerPhysical": vpp,
        "desiredCount": desired,
        "actualCount": desired,
        "desiredVirtualCount": desired * vpp,
        "actualVirtualCount": desired * vpp,
        "key": text("key", "_id"),
        "strategy": text("strategy", "hash"),
        "function": text("function", "murmur3"),
    })
}

async fn meta(State(w): State<Arc<Weaviate>>) -> Response {
    let hostname = w.hostname.read().unwrap_or_else(|e| e.into_inner()).clone();
    json_response(
        StatusCode::OK,
        &json!({"hostname": hostname, "modules": {}, "version": VERSION}),
    )
}

async fn get_schema(State(w): State<Arc<Weaviate>>) -> Response {
    let db = w.db();
    let classes: Vec<Value> = db.classes.values().map(|c| c.schema.clone()).collect();
    json_response(StatusCode::OK, &json!({ "classes": classes }))
}

async fn create_class(State(w): State<Arc<Weaviate>>, request: Request) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let class = match new_class(&body) {
        Ok(c) => c,
        Err(e) => return unprocessable(&e),
    };
    let mut db = w.db();
    if let Some(other) = db
        .classes
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&class.name))
    {
        let message = if *other == class.name {
            format!("class name {} already exists", class.name)
        } else {
            format!("class already exists: found similar class {other:?}")
        };
        return unprocessable(&message);
    }
    let answer = class.schema.clone();
    db.classes.insert(class.name.clone(), class);
    json_response(StatusCode::OK, &answer)
}

async fn get_class(State(w): State<Arc<Weaviate>>, Path(class): Path<String>) -> Response {
    let db = w.db();
    match db.classes.get(&upper_first(&class)) {
        Some(c) => json_response(StatusCode::OK, &c.schema),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_class(State(w): State<Arc<Weaviate>>, Path(class): Path<String>) -> Response {
    w.db().classes.remove(&upper_first(&class));
    StatusCode::OK.into_response()
}

async fn add_property(
    State(w): State<Arc<Weaviate>>,
    Path(class): Path<String>,
    request: Request,
) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut db = w.db();
    let name = upper_first(&class);
    let Some(c) = db.classes.get_mut(&name) else {
        return unprocessable(&format!("class {name:?}: not found"));
    };
    let mut props = vec![body];
    lowercase_property_names(&mut props);
    let existing: Vec<String> = c
        .properties()
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    match prepare_properties(&name, &props, &existing) {
        Ok(mut added) => {
            let answer = added.first().cloned().unwrap_or(Value::Null);
            let mut all = c.properties();
            all.append(&mut added);
            c.set_properties(all);
            json_response(StatusCode::OK, &answer)
        }
        Err(e) => unprocessable(&e),
    }
}

async fn get_tenants(State(w): State<Arc<Weaviate>>, Path(class): Path<String>) -> Response {
    let db = w.db();
    let name = upper_first(&class);
    let Some(c) = db.classes.get(&name) else {
        return unprocessable(&format!("class {name:?}: not found"));
    };
    if !c.multi_tenant {
        return unprocessable(&format!("multi-tenancy is not enabled for class {name:?}"));
    }
    let tenants: Vec<Value> = c
        .tenants
        .iter()
        .map(|(t, status)| json!({"activityStatus": status, "name": t}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(tenants))
}

fn status_name(s: &str) -> Option<&'static str> {
    match s {
        "" | "HOT" | "ACTIVE" => Some("HOT"),
        "COLD" | "INACTIVE" => Some("COLD"),
        "FROZEN" | "OFFLOADED" => Some("FROZEN"),
        _ => None,
    }
}

fn check_tenant_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty tenant name".into());
    }
    let ok = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            " '{name}' is not a valid tenant name. should only contain alphanumeric characters (a-z, A-Z, 0-9), underscore (_), and hyphen (-), with a length between 1 and 64 characters"
        ));
    }
    Ok(())
}

async fn add_tenants(
    State(w): State<Arc<Weaviate>>,
    Path(class): Path<String>,
    request: Request,
) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(items) = body.as_array() else {
        return swagger_error(
            StatusCode::BAD_REQUEST,
            400,
            "parsing body body from \"\" failed, because json: cannot unmarshal object into Go value of type []*models.Tenant",
        );
    };
    let mut db = w.db();
    let name = upper_first(&class);
    let Some(c) = db.classes.get_mut(&name) else {
        return unprocessable(&format!("class {name:?}: not found"));
    };
    if !c.multi_tenant {
        return unprocessable(&format!("multi-tenancy is not enabled for class {name:?}"));
    }
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let tname = item.get("name").and_then(Value::as_str).unwrap_or_default();
        if tname.is_empty() {
            return unprocessable(&format!("empty tenant name at index {i}"));
        }
        if let Err(e) = check_tenant_name(tname) {
            return unprocessable(&e);
        }
        let given = item
            .get("activityStatus")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(status) = status_name(given) else {
            return unprocessable(&format!(
                "invalid activity status '{given}' for tenant \"{tname}\""
            ));
        };
        parsed.push((tname.to_owned(), status));
    }
    let mut answer = Vec::new();
    for (tname, status) in parsed {
        c.tenants
            .entry(tname.clone())
            .or_insert_with(|| status.to_owned());
        c.shards.entry(tname.clone()).or_default();
        answer.push(json!({"activityStatus": status, "name": tname}));
    }
    json_response(StatusCode::OK, &Value::Array(answer))
}

async fn delete_tenants(
    State(w): State<Arc<Weaviate>>,
    Path(class): Path<String>,
    request: Request,
) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let names: Vec<String> = body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut db = w.db();
    let name = upper_first(&class);
    let Some(c) = db.classes.get_mut(&name) else {
        return unprocessable(&format!("class {name:?}: not found"));
    };
    if !c.multi_tenant {
        return unprocessable(&format!("multi-tenancy is not enabled for class {name:?}"));
    }
    for t in names {
        c.tenants.remove(&t);
        c.shards.remove(&t);
    }
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------------------
// Objects: values, auto-schema, validation
// ---------------------------------------------------------------------------

fn looks_like_rfc3339(s: &str) -> bool {
    parse_date(s).is_some()
}

fn parse_date(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A date as Weaviate answers it (Go's RFC3339Nano of the parsed time).
fn format_date(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn google_uuid(s: &str) -> Result<Uuid, String> {
    // github.com/google/uuid accepts 36, 38 ({…}), 41 (urn:uuid:…) and 32
    // character forms.
    let inner = match s.len() {
        36 | 32 => s,
        38 if s.starts_with('{') && s.ends_with('}') => &s[1..37],
        45 if s.to_ascii_lowercase().starts_with("urn:uuid:") => &s[9..],
        n => return Err(format!("invalid UUID length: {n}")),
    };
    Uuid::parse_str(inner).map_err(|_| "invalid UUID format".to_owned())
}

/// What auto-schema infers for one value (`determineType`).
struct Inferred {
    data_type: Vec<String>,
    nested: Vec<Value>,
}

fn infer(value: &Value, nested: bool) -> Result<Inferred, String> {
    let simple = |t: &str| {
        Ok(Inferred {
            data_type: vec![t.to_owned()],
            nested: Vec::new(),
        })
    };
    match value {
        Value::String(s) => {
            if looks_like_rfc3339(s) {
                simple("date")
            } else if s.len() == 36 && google_uuid(s).is_ok() {
                simple("uuid")
            } else {
                simple("text")
            }
        }
        Value::Number(_) => simple("number"),
        Value::Bool(_) => simple("boolean"),
        Value::Null => simple("text"),
        Value::Object(m) => {
            if !nested {
                let num = |k: &str| m.get(k).is_some_and(Value::is_number);
                if m.len() == 2 && num("latitude") && num("longitude") {
                    return simple("geoCoordinates");
                }
                if m.get("input").is_some_and(Value::is_string)
                    && m.keys().all(|k| k == "input" || k == "defaultCountry")
                {
                    return simple("phoneNumber");
                }
            }
            Ok(Inferred {
                data_type: vec!["object".into()],
                nested: infer_nested(m)?,
            })
        }
        Value::Array(items) => {
            if items.is_empty() {
                return simple("text[]");
            }
            let mut determined = String::new();
            let mut objects = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let t = match item {
                    Value::String(s) if looks_like_rfc3339(s) => "date[]",
                    Value::String(s) if s.len() == 36 && google_uuid(s).is_ok() => "uuid[]",
                    Value::String(_) => "text[]",
                    Value::Number(_) => "number[]",
                    Value::Bool(_) => "boolean[]",
                    Value::Object(m) => {
                        objects.push(m.clone());
                        "object[]"
                    }
                    other => {
                        return Err(format!(
                            "element [{i}]: unrecognized data type of value '{}' - one of 'text', 'number', 'int', 'boolean', 'date', 'uuid', 'object'{} expected",
                            go_value(other),
                            if nested { "" } else { ", 'cref'" }
                        ));
                    }
                };
                if i == 0 {
                    determined = t.to_owned();
                    continue;
                }
                let texty = |x: &str| matches!(x, "text[]" | "date[]" | "uuid[]");
                if texty(&determined) && texty(t) {
                    if determined != t {
                        determined = "text[]".into();
                    }
                    continue;
                }
                if determined != t {
                    return Err(format!(
                        "element [{i}]: mismatched data type - '{}' expected, got '{}'",
                        determined.trim_end_matches("[]"),
                        t.trim_end_matches("[]")
                    ));
                }
            }
            let nested = if determined == "object[]" {
                let mut merged: Vec<Value> = Vec::new();
                for m in &objects {
                    merge_nested(&mut merged, infer_nested(m)?);
                }
                merged
            } else {
                Vec::new()
            };
            Ok(Inferred {
                data_type: vec![determined],
                nested,
            })
        }
    }
}

fn infer_nested(m: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (name, v) in m {
        let inferred = infer(v, true).map_err(|e| format!("nested property '{name}': {e}"))?;
        let mut p = Map::new();
        p.insert("dataType".into(), json!(inferred.data_type));
        p.insert(
            "description".into(),
            json!(auto_schema_description().replace(" property ", " nested property ")),
        );
        p.insert("name".into(), json!(name));
        if !inferred.nested.is_empty() {
            p.insert("nestedProperties".into(), Value::Array(inferred.nested));
        }
        out.push(Value::Object(p));
    }
    Ok(out)
}

/// Adds to `into` the nested properties of `new` it lacks (recursively);
/// true when anything was added.
fn merge_nested(into: &mut Vec<Value>, new: Vec<Value>) -> bool {
    let mut changed = false;
    for np in new {
        let name = np
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match into
            .iter_mut()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            None => {
                into.push(np);
                changed = true;
            }
            Some(existing) => {
                let dts = data_types(existing);
                if dts.len() == 1 && is_nested(&dts[0]) {
                    let extra = np
                        .get("nestedProperties")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let mut inner = existing
                        .get("nestedProperties")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if merge_nested(&mut inner, extra)
                        && let Some(m) = existing.as_object_mut()
                    {
                        m.insert("nestedProperties".into(), Value::Array(inner));
                        changed = true;
                    }
                }
            }
        }
    }
    changed
}

fn auto_schema_description() -> String {
    // Go's time.ANSIC: "Mon Jan _2 15:04:05 2006".
    let now = time::OffsetDateTime::now_utc();
    let weekday = now.weekday().to_string();
    let month = now.month().to_string();
    format!(
        "This property was generated by Weaviate's auto-schema feature on {} {} {:>2} {:02}:{:02}:{:02} {}",
        &weekday[..3],
        &month[..3],
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.year()
    )
}

/// Auto-schema for one object: creates the class or adds what it lacks.
fn auto_schema(db: &mut Db, class: &str, props: &Map<String, Value>) -> Result<(), String> {
    let mut inferred = Vec::new();
    for (name, value) in props {
        let i = infer(value, false)
            .map_err(|e| format!("property '{name}' on class '{class}': {e}"))?;
        inferred.push((lower_first(name), i));
    }
    let Some(c) = db.classes.get_mut(class) else {
        let properties: Vec<Value> = inferred
            .into_iter()
            .map(|(name, i)| auto_property(name, i))
            .collect();
        // Auto-schema only creates named vectors: one called "default".
        let created = new_class(&json!({
            "class": class,
            "description": auto_schema_description(),
            "properties": properties,
            "vectorConfig": {"default": {"vectorizer": {"none": {}}}},
        }))
        .map_err(|e| format!("auto-schema: create collection: {e}"))?;
        db.classes.insert(created.name.clone(), created);
        return Ok(());
    };
    let mut all = c.properties();
    let mut added = Vec::new();
    let mut changed = false;
    for (name, i) in inferred {
        if added
            .iter()
            .any(|p: &Value| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            continue;
        }
        match all
            .iter_mut()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            None => added.push(auto_property(name, i)),
            Some(existing) => {
                let dts = data_types(existing);
                if dts.len() == 1 && is_nested(&dts[0]) && !i.nested.is_empty() {
                    let mut inner = existing
                        .get("nestedProperties")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let extra: Vec<Value> = i
                        .nested
                        .into_iter()
                        .filter_map(|v| v.as_object().map(nested_with_defaults))
                        .collect();
                    if merge_nested(&mut inner, extra)
                        && let Some(m) = existing.as_object_mut()
                    {
                        m.insert("nestedProperties".into(), Value::Array(inner));
                        changed = true;
                    }
                }
            }
        }
    }
    if !added.is_empty() {
        let existing: Vec<String> = all
            .iter()
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut prepared = prepare_properties(class, &added, &existing)
            .map_err(|e| format!("auto-schema: update collection: {e}"))?;
        all.append(&mut prepared);
        changed = true;
    }
    if changed {
        c.set_properties(all);
    }
    Ok(())
}

fn auto_property(name: String, i: Inferred) -> Value {
    let mut p = Map::new();
    p.insert("name".into(), json!(name));
    p.insert("dataType".into(), json!(i.data_type));
    p.insert("description".into(), json!(auto_schema_description()));
    if !i.nested.is_empty() {
        p.insert("nestedProperties".into(), Value::Array(i.nested));
    }
    Value::Object(p)
}

fn int_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| i as f64)
            .ok_or_else(|| format!("the JSON number '{n}' could not be converted to an int")),
        other => Err(format!(
            "requires an integer, the given value is '{}'",
            go_value(other)
        )),
    }
}

fn array_of<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("not {what} array, but {}", go_type(v)))
}

/// Checks and converts one property value to what Weaviate stores; the
/// error is Weaviate's (without the property wrapper).
fn coerce(dt: &str, v: &Value, schema: &Value) -> Result<Value, String> {
    match dt {
        "text" | "string" | "blob" => match v {
            Value::String(_) => Ok(v.clone()),
            other => Err(format!("not a string, but {}", go_type(other))),
        },
        "uuid" => v
            .as_str()
            .and_then(|s| google_uuid(s).ok())
            .map(|u| json!(u.to_string()))
            .ok_or_else(|| {
                format!(
                    "requires a string of UUID format, but the given value is '{}'",
                    go_value(v)
                )
            }),
        "int" => int_value(v).map(go_number),
        "number" => v
            .as_f64()
            .filter(|_| v.is_number())
            .map(go_number)
            .ok_or_else(|| format!("requires a float, the given value is '{}'", go_value(v))),
        "boolean" => match v {
            Value::Bool(_) => Ok(v.clone()),
            other => Err(format!("not a bool, but {}", go_type(other))),
        },
        "date" => v
            .as_str()
            .and_then(parse_date)
            .map(|t| json!(format_date(t)))
            .ok_or_else(|| {
                format!(
                    "requires a string with a RFC3339 formatted date, but the given value is '{}'",
                    go_value(v)
                )
            }),
        "text[]" | "string[]" => {
            let items = array_of(v, "a text")?;
            items
                .iter()
                .map(|i| match i {
                    Value::String(_) => Ok(i.clone()),
                    other => Err(format!("invalid text array value: {}", go_s(other))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "int[]" => {
            let items = array_of(v, "an integer")?;
            items
                .iter()
                .map(|i| {
                    i.as_i64()
                        .map(|n| go_number(n as f64))
                        .ok_or_else(|| format!("invalid integer array value: {}", go_s(i)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "number[]" => {
            let items = array_of(v, "an integer")?;
            items
                .iter()
                .map(|i| {
                    i.as_f64()
                        .map(go_number)
                        .ok_or_else(|| format!("invalid integer array value: {}", go_s(i)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "boolean[]" => {
            let items = array_of(v, "a boolean")?;
            items
                .iter()
                .map(|i| match i {
                    Value::Bool(_) => Ok(i.clone()),
                    other => Err(format!("invalid boolean array value: {}", go_s(other))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "date[]" => {
            let items = array_of(v, "a date")?;
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .and_then(parse_date)
                        .map(|t| json!(format_date(t)))
                        .ok_or_else(|| format!("invalid date array value: {}", go_s(i)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "uuid[]" => {
            let items = array_of(v, "a uuid")?;
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .and_then(|s| google_uuid(s).ok())
                        .map(|u| json!(u.to_string()))
                        .ok_or_else(|| format!("invalid uuid array value: {}", go_s(i)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "geoCoordinates" => {
            let Some(m) = v.as_object() else {
                return Err(format!(
                    "geoCoordinates must be a map, but got: {}",
                    go_type(v)
                ));
            };
            let coord = |k: &str| -> Result<Value, String> {
                let Some(x) = m.get(k) else {
                    return Err(format!("geoCoordinates is missing required field '{k}'"));
                };
                x.as_f64().map(|f| f32_json(f as f32)).ok_or_else(|| {
                    format!(
                        "invalid {k}: must be json.Number or float, but got {}",
                        go_type(x)
                    )
                })
            };
            let longitude = coord("longitude")?;
            let latitude = coord("latitude")?;
            Ok(json!({"latitude": latitude, "longitude": longitude}))
        }
        "phoneNumber" => {
            let Some(m) = v.as_object() else {
                return Err(format!(
                    "phoneNumber must be a map, but got: {}",
                    go_type(v)
                ));
            };
            match m.get("input") {
                None => Err("phoneNumber is missing required field 'input'".into()),
                Some(Value::String(_)) => Ok(v.clone()),
                Some(_) => Err("phoneNumber.input must be a string".into()),
            }
        }
        "object" => coerce_object(v, schema),
        "object[]" => {
            let Some(items) = v.as_array() else {
                return Err(format!("not an object array, but {}", go_type(v)));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    coerce_object(item, schema)
                        .map_err(|e| format!("invalid object '{i}' in array: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        // Cross-references: stored as given.
        _ => Ok(v.clone()),
    }
}

fn coerce_object(v: &Value, schema: &Value) -> Result<Value, String> {
    let Some(m) = v.as_object() else {
        return Err(format!("object must be a map, but got: {}", go_type(v)));
    };
    let nested = schema
        .get("nestedProperties")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    for (name, value) in m {
        if value.is_null() {
            continue;
        }
        let Some(p) = nested
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        else {
            return Err(format!("unknown property '{name}'"));
        };
        let dts = data_types(p);
        let dt = dts.first().map(String::as_str).unwrap_or_default();
        let stored = coerce(dt, value, p).map_err(|e| format!("property '{name}': {e}"))?;
        out.insert(name.clone(), stored);
    }
    Ok(Value::Object(out))
}

fn type_label(dt: &str) -> &str {
    match dt {
        "int" => "integer",
        "text[]" => "text array",
        "int[]" => "integer array",
        "number[]" => "number array",
        "boolean[]" => "boolean array",
        "date[]" => "date array",
        "uuid[]" => "uuid array",
        "string[]" => "string array",
        other => other,
    }
}

/// Validates an object's properties against its class; nulls dropped.
fn validate_properties(
    c: &Class,
    props: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (key, value) in props {
        if value.is_null() {
            continue;
        }
        let name = lower_first(key);
        let Some(p) = c.property(&name) else {
            return Err(format!(
                "no such prop with name '{name}' found in class '{}' in the schema. Check your schema files for which properties in this class are available",
                c.name
            ));
        };
        let dts = data_types(&p);
        let dt = if dts.len() == 1 { dts[0].as_str() } else { "" };
        let stored = coerce(dt, value, &p).map_err(|e| match dt {
            "object" | "object[]" => {
                format!("invalid {dt} property '{name}' on class '{}': {e}", c.name)
            }
            _ => format!(
                "invalid {} property '{name}' on class '{}': {e}",
                type_label(dt),
                c.name
            ),
        })?;
        out.insert(name, stored);
    }
    Ok(out)
}

/// An object as a write request carries it, after the body checks.
struct Incoming {
    class: String,
    id: Uuid,
    properties: Map<String, Value>,
    vector: Option<Vec<f32>>,
    vectors: BTreeMap<String, Vec<f32>>,
    tenant: Option<String>,
}

fn float_array(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

/// Reads one object of a write request. `Err` fails the whole request, as
/// go-openapi's body validation does.
fn parse_incoming(v: &Value, at: &str) -> Result<Incoming, Box<Response>> {
    let bad_type = |field: &str, ty: &str| {
        Box::new(swagger_error(
            StatusCode::BAD_REQUEST,
            400,
            &format!(
                "parsing body body from \"\" failed, because json: cannot unmarshal {} into Go struct field {field} of type {ty}",
                match v.get(field) {
                    Some(Value::String(_)) => "string",
                    Some(Value::Number(_)) => "number",
                    Some(Value::Bool(_)) => "bool",
                    Some(Value::Array(_)) => "array",
                    _ => "object",
                }
            ),
        ))
    };
    let Some(m) = v.as_object() else {
        return Err(Box::new(swagger_error(
            StatusCode::BAD_REQUEST,
            400,
            "parsing body body from \"\" failed, because json: cannot unmarshal non-object into Go value of type models.Object",
        )));
    };
    let class = match m.get("class") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad_type("class", "string")),
    };
    let id = match m.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => match parse_uuid(s) {
            Some(u) => Some(u),
            None => {
                return Err(Box::new(swagger_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    601,
                    &format!("{at}id in body must be of type uuid: {s:?}"),
                )));
            }
        },
        Some(_) => return Err(bad_type("id", "strfmt.UUID")),
    };
    let properties = match m.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(bad_type("properties", "models.PropertySchema")),
    };
    let vector = match m.get("vector") {
        None | Some(Value::Null) => None,
        Some(v) => match float_array(v) {
            Some(xs) if xs.is_empty() => None,
            Some(xs) => Some(xs),
            None => return Err(bad_type("vector", "float32")),
        },
    };
    let mut vectors = BTreeMap::new();
    match m.get("vectors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(vs)) => {
            for (name, v) in vs {
                match float_array(v) {
                    Some(xs) if xs.is_empty() => {}
                    Some(xs) => {
                        vectors.insert(name.clone(), xs);
                    }
                    None => return Err(bad_type("vectors", "models.Vector")),
                }
            }
        }
        Some(_) => return Err(bad_type("vectors", "models.Vectors")),
    }
    let tenant = match m.get("tenant") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad_type("tenant", "string")),
    };
    Ok(Incoming {
        class,
        id: id.unwrap_or_else(random_uuid),
        properties,
        vector,
        vectors,
        tenant,
    })
}

/// Where a write failed: in validation, or in the shard (after validation).
enum WriteError {
    Invalid(String),
    Tenant(String),
    Index(String),
}

impl WriteError {
    fn message(&self) -> &str {
        match self {
            WriteError::Invalid(m) | WriteError::Tenant(m) | WriteError::Index(m) => m,
        }
    }
}

/// Validates and stores one object; the answer is the stored object.
fn write_object(
    db: &mut Db,
    auto: bool,
    obj: Incoming,
    now: i64,
    single: bool,
) -> Result<(String, StoredObject), WriteError> {
    if obj.class.is_empty() {
        return Err(WriteError::Invalid("object has an empty class".into()));
    }
    let class_name = upper_first(&obj.class);
    if auto {
        auto_schema(db, &class_name, &obj.properties).map_err(WriteError::Invalid)?;
    }
    let doc_id = db.next_doc_id;
    let Some(c) = db.classes.get_mut(&class_name) else {
        return Err(WriteError::Invalid(if single {
            format!("class {class_name:?} not found in schema")
        } else {
            format!("class '{class_name}' not present in schema")
        }));
    };
    // Weaviate's vector validation: "default" carries a legacy vector, a
    // legacy vector goes to the only named vector there is.
    let legacy = c.legacy_distance().is_some();
    let named = c.named_vectors();
    let mut vector = obj.vector;
    let mut vectors = obj.vectors;
    if legacy && let Some(v) = vectors.remove("default") {
        vector = Some(v);
    }
    if !legacy && let Some(v) = vector.take() {
        if named.len() != 1 {
            return Err(WriteError::Invalid(format!(
                "collection {} configuration does not have single vector index",
                c.name
            )));
        }
        let only = named.keys().next().cloned().unwrap_or_default();
        vectors = BTreeMap::from([(only, v)]);
    }
    if let Some(unknown) = vectors.keys().find(|k| !named.contains_key(*k)) {
        return Err(WriteError::Invalid(format!(
            "collection {} does not have configuration for vector {unknown}",
            c.name
        )));
    }
    // Properties are validated after the vectors, as Weaviate's validator does.
    let properties = validate_properties(c, &obj.properties).map_err(WriteError::Invalid)?;
    let key = c
        .shard_key(obj.tenant.as_deref())
        .map_err(WriteError::Tenant)?;
    let shard = c.shards.entry(key).or_default();
    let mut checks: Vec<(&str, &Vec<f32>)> = Vec::new();
    if let Some(v) = &vector {
        checks.push(("", v));
    }
    for (name, v) in &vectors {
        checks.push((name, v));
    }
    for (target, v) in &checks {
        if let Some(dims) = shard.dims.get(*target)
            && *dims != v.len()
        {
            let cause = format!(
                "new node has a vector with length {}. Existing nodes have vectors with length {dims}: vector dimensions do not match the index dimensions",
                v.len()
            );
            let message = match (single, target.is_empty()) {
                (true, true) => format!("Validate vector index for {}: {cause}", obj.id),
                (true, false) => format!(
                    "Validate vector index {target} for target vector {}: {cause}",
                    obj.id
                ),
                (false, true) => format!(
                    "insert to vector index: insert doc id {doc_id} to vector index: {cause}"
                ),
                (false, false) => format!(
                    "insert to vector index: insert doc id {doc_id} to vector index for target vector {target}: {cause}"
                ),
            };
            return Err(WriteError::Index(message));
        }
    }
    for (target, v) in &checks {
        shard.dims.entry((*target).to_owned()).or_insert(v.len());
    }
    let stored = StoredObject {
        id: obj.id,
        properties,
        vector,
        vectors,
        tenant: obj.tenant.filter(|_| c.multi_tenant),
        created: now,
        updated: now,
    };
    shard.objects.insert(stored.id, stored.clone());
    let name = c.name.clone();
    db.next_doc_id += 1;
    Ok((name, stored))
}

// ---------------------------------------------------------------------------
// Objects: endpoints
// ---------------------------------------------------------------------------

async fn batch_objects(State(w): State<Arc<Weaviate>>, request: Request) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match body.get("objects") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return swagger_error(
                StatusCode::BAD_REQUEST,
                400,
                "parsing body body from \"\" failed, because json: cannot unmarshal object into Go struct field BatchObjectsCreateBody.objects of type []*models.Object",
            );
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match parse_incoming(item, &format!("body.objects.{i}.")) {
            Ok(o) => parsed.push((o, item.clone())),
            Err(r) => return *r,
        }
    }
    let auto = w.auto_schema.load(Ordering::SeqCst);
    let now = now_millis();
    let mut db = w.db();
    let mut answer = Vec::with_capacity(parsed.len());
    for (obj, raw) in parsed {
        let id = obj.id;
        let tenant = obj.tenant.clone();
        let class = upper_first(&obj.class);
        let vector = obj.vector.clone();
        let vectors = obj.vectors.clone();
        let written = if w.object_times_out() {
            Err("put object: context deadline exceeded".to_owned())
        } else {
            write_object(&mut db, auto, obj, now, false).map_err(|e| e.message().to_owned())
        };
        let element = match written {
            Ok((class, stored)) => {
                let mut m = match stored.to_json(&class, true) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                m.insert("deprecations".into(), Value::Null);
                m.insert("result".into(), json!({"status": "SUCCESS"}));
                m
            }
            Err(e) => {
                let mut m = Map::new();
                m.insert("class".into(), json!(class));
                m.insert("creationTimeUnix".into(), json!(now));
                m.insert("id".into(), json!(id.to_string()));
                m.insert("lastUpdateTimeUnix".into(), json!(now));
                let props = raw
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(sorted)
                    .unwrap_or_default();
                m.insert("properties".into(), Value::Object(props));
                if let Some(t) = tenant {
                    m.insert("tenant".into(), json!(t));
                }
                if let Some(v) = vector {
                    m.insert("vector".into(), f32s_json(&v));
                }
                if !vectors.is_empty() {
                    let vs: Map<String, Value> = vectors
                        .iter()
                        .map(|(k, v)| (k.clone(), f32s_json(v)))
                        .collect();
                    m.insert("vectors".into(), Value::Object(vs));
                }
                m.insert("deprecations".into(), Value::Null);
                m.insert(
                    "result".into(),
                    json!({"errors": error_body(&e), "status": "FAILED"}),
                );
                m
            }
        };
        answer.push(Value::Object(element));
    }
    json_response(StatusCode::OK, &Value::Array(answer))
}

fn wants_vector(pairs: &[(String, String)]) -> bool {
    query_param(pairs, "include").is_some_and(|inc| inc.split(',').any(|i| i.trim() == "vector"))
}

/// `msg:… code:… err:…`, the text of Weaviate's `objects.Error`.
fn objects_error(msg: &str, code: u16, err: &str) -> String {
    format!("msg:{msg} code:{code} err:{err}")
}

fn parse_int_param(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, Box<Response>> {
    match query_param(pairs, name) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            Box::new(swagger_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                601,
                &format!("{name} in query must be of type int64: {v:?}"),
            ))
        }),
    }
}

async fn list_objects(State(w): State<Arc<Weaviate>>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let limit = match parse_int_param(&pairs, "limit") {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let offset = match parse_int_param(&pairs, "offset") {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let with_vector = wants_vector(&pairs);
    let after = query_param(&pairs, "after");
    let tenant = query_param(&pairs, "tenant").filter(|t| !t.is_empty());
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let max_err = (offset + limit > QUERY_MAXIMUM_RESULTS).then(|| {
        format!(
            "query maximum results exceeded: the total limit calculated from the provided offset '{offset}' and limit '{limit}' exceeds the configured value for QUERY_MAXIMUM_RESULTS '{QUERY_MAXIMUM_RESULTS}'. If you've supplied a negative offset or limit, this may be an underflow error"
        )
    });
    let class = query_param(&pairs, "class").filter(|c| !c.is_empty());
    let db = w.db();
    let Some(class) = class else {
        // Listing across classes (no cursor possible).
        if let Some(e) = max_err {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("list objects: {e}"),
            );
        }
        if after.is_some() {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "list objects: after parameter not allowed, cursor must be specific to one class, set class query param",
            );
        }
        let mut all = Vec::new();
        for c in db.classes.values() {
            let key = if c.multi_tenant {
                match &tenant {
                    Some(t) if c.tenants.contains_key(t) => t.clone(),
                    _ => continue,
                }
            } else if tenant.is_some() {
                continue;
            } else {
                String::new()
            };
            if let Some(shard) = c.shards.get(&key) {
                all.extend(
                    shard
                        .objects
                        .values()
                        .map(|o| o.to_json(&c.name, with_vector)),
                );
            }
        }
        let page: Vec<Value> = all
            .into_iter()
            .skip(offset.max(0) as usize)
            .take(limit.max(0) as usize)
            .collect();
        return json_response(StatusCode::OK, &list_body(page, false));
    };
    if let Some(e) = max_err {
        return unprocessable(&objects_error("offset or limit", 400, &e));
    }
    if offset + limit == 0 {
        return json_response(
            StatusCode::OK,
            &json!({"deprecations": [], "objects": null}),
        );
    }
    let name = upper_first(&class);
    let Some(c) = db.classes.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let after = match after {
        None => None,
        Some(a) => {
            let problem = if offset > 0 {
                Some("offset cannot be set with after and limit parameters".to_owned())
            } else if a.is_empty() {
                None
            } else {
                google_uuid(&a)
                    .err()
                    .map(|e| format!("after parameter '{a}' is not a valid uuid: {e}"))
            };
            if let Some(p) = problem {
                return unprocessable(&objects_error(
                    "cursor api: invalid 'after' parameter",
                    400,
                    &p,
                ));
            }
            Some(google_uuid(&a).ok())
        }
    };
    let key = match c.shard_key(tenant.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            return unprocessable(&objects_error(
                &format!("search index {}", c.name.to_lowercase()),
                422,
                &e,
            ));
        }
    };
    let Some(shard) = c.shards.get(&key) else {
        return json_response(StatusCode::OK, &list_body(Vec::new(), true));
    };
    let page: Vec<Value> = match after {
        Some(cursor) => {
            let start = match cursor {
                Some(u) => std::ops::Bound::Excluded(u),
                None => std::ops::Bound::Unbounded,
            };
            shard
                .objects
                .range((start, std::ops::Bound::Unbounded))
                .take(limit.max(0) as usize)
                .map(|(_, o)| o.to_json(&c.name, with_vector))
                .collect()
        }
        None => shard
            .objects
            .values()
            .skip(offset.max(0) as usize)
            .take(limit.max(0) as usize)
            .map(|o| o.to_json(&c.name, with_vector))
            .collect(),
    };
    json_response(StatusCode::OK, &list_body(page, true))
}

fn list_body(objects: Vec<Value>, with_class: bool) -> Value {
    let mut m = Map::new();
    m.insert(
        "deprecations".into(),
        if with_class { json!([]) } else { Value::Null },
    );
    let n = objects.len();
    m.insert("objects".into(), Value::Array(objects));
    if n > 0 {
        m.insert("totalResults".into(), json!(n));
    }
    Value::Object(m)
}

async fn create_object(State(w): State<Arc<Weaviate>>, request: Request) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let obj = match parse_incoming(&body, "") {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let auto = w.auto_schema.load(Ordering::SeqCst);
    let mut db = w.db();
    let class = upper_first(&obj.class);
    let tenant = obj.tenant.clone();
    if let Some(c) = db.classes.get(&class)
        && c.shards.values().any(|s| s.objects.contains_key(&obj.id))
    {
        return unprocessable(&format!("id '{}' already exists", obj.id));
    }
    match write_object(&mut db, auto, obj, now_millis(), true) {
        Ok((class, stored)) => json_response(StatusCode::OK, &stored.to_json(&class, true)),
        Err(WriteError::Invalid(e)) => unprocessable(&format!("invalid object: {e}")),
        Err(WriteError::Tenant(e)) => unprocessable(&format!(
            "put object: import into index {}: determine shard: {e}",
            class.to_lowercase()
        )),
        Err(WriteError::Index(e)) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "put object: import into index {}: put local object: shard={:?}: {e}",
                class.to_lowercase(),
                tenant.unwrap_or_else(|| "0".into())
            ),
        ),
    }
}

/// Finds one object for the single-object endpoints.
fn lookup(
    db: &Db,
    class: &str,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<(String, StoredObject)>, Box<Response>> {
    let Some(uuid) = parse_uuid(id) else {
        return Err(Box::new(swagger_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            &format!("id in path must be of type uuid: {id:?}"),
        )));
    };
    let Some(c) = db.classes.get(&upper_first(class)) else {
        return Ok(None);
    };
    let key = c
        .shard_key(tenant)
        .map_err(|e| Box::new(unprocessable(&e)))?;
    Ok(c.shards
        .get(&key)
        .and_then(|s| s.objects.get(&uuid))
        .map(|o| (c.name.clone(), o.clone())))
}

async fn get_object(
    State(w): State<Arc<Weaviate>>,
    Path((class, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(&uri);
    let tenant = query_param(&pairs, "tenant");
    let db = w.db();
    match lookup(&db, &class, &id, tenant.as_deref()) {
        Err(r) => *r,
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Ok(Some((class, o))) => {
            json_response(StatusCode::OK, &o.to_json(&class, wants_vector(&pairs)))
        }
    }
}

async fn head_object(
    State(w): State<Arc<Weaviate>>,
    Path((class, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(&uri);
    let tenant = query_param(&pairs, "tenant");
    let db = w.db();
    match lookup(&db, &class, &id, tenant.as_deref()) {
        Err(r) => *r,
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn put_object(
    State(w): State<Arc<Weaviate>>,
    Path((class, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut obj = match parse_incoming(&body, "") {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let auto = w.auto_schema.load(Ordering::SeqCst);
    let mut db = w.db();
    match lookup(&db, &class, &id, obj.tenant.as_deref()) {
        Err(r) => return *r,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Ok(Some((name, existing))) => {
            obj.class = name;
            obj.id = existing.id;
        }
    }
    match write_object(&mut db, auto, obj, now_millis(), true) {
        Ok((class, stored)) => json_response(StatusCode::OK, &stored.to_json(&class, true)),
        Err(WriteError::Invalid(e)) => unprocessable(&format!("invalid object: {e}")),
        Err(WriteError::Tenant(e)) => unprocessable(&e),
        Err(WriteError::Index(e)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn delete_object(
    State(w): State<Arc<Weaviate>>,
    Path((class, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(&uri);
    let tenant = query_param(&pairs, "tenant");
    let mut db = w.db();
    let found = match lookup(&db, &class, &id, tenant.as_deref()) {
        Err(r) => return *r,
        Ok(f) => f,
    };
    let Some((name, o)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(c) = db.classes.get_mut(&name) {
        let key = o.tenant.clone().unwrap_or_default();
        if let Some(shard) = c.shards.get_mut(&key) {
            shard.objects.remove(&o.id);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------
// GraphQL: a parser for the subset Weaviate's clients send
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum GValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<GValue>),
    Object(Vec<(String, GValue)>),
}

impl GValue {
    fn as_f64(&self) -> Option<f64> {
        match self {
            GValue::Int(i) => Some(*i as f64),
            GValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<&GValue> {
        match self {
            GValue::Object(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    alias: Option<String>,
    args: Vec<(String, GValue)>,
    selection: Vec<Field>,
    line: usize,
    column: usize,
}

impl Field {
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    fn arg(&self, name: &str) -> Option<&GValue> {
        self.args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn location(&self) -> Value {
        json!([{"column": self.column, "line": self.line}])
    }
}

struct GqlParser<'a> {
    src: &'a [u8],
    pos: usize,
}

impl GqlParser<'_> {
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        (line, column)
    }

    fn error(&self, what: &str) -> String {
        let (line, column) = self.line_col(self.pos);
        let found = match self.src.get(self.pos).copied() {
            None => "EOF".to_owned(),
            Some(c) => format!("\"{}\"", c as char),
        };
        format!("Syntax Error GraphQL request ({line}:{column}) Expected {what}, found {found}")
    }

    fn skip(&mut self) {
        while let Some(c) = self.src.get(self.pos) {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.pos += 1,
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|c| *c != b'\n') {
                        self.pos += 1;
                    }
                }
                0xEF if self.src[self.pos..].starts_with(&[0xEF, 0xBB, 0xBF]) => self.pos += 3,
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.src.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("\"{}\"", c as char)))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip();
        let start = self.pos;
        while let Some(c) = self.src.get(self.pos) {
            let ok =
                c.is_ascii_alphabetic() || *c == b'_' || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("Name"));
        }
        Ok(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    fn document(&mut self) -> Result<Vec<Field>, String> {
        if self.peek() != Some(b'{') {
            let keyword = self.name()?;
            if keyword != "query" {
                return Err(format!(
                    "graphql: operation {keyword:?} is not emulated (only queries)"
                ));
            }
            if self
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            {
                self.name()?;
            }
            if self.peek() == Some(b'(') {
                return Err("graphql: variables are not emulated".into());
            }
        }
        let fields = self.selection_set()?;
        if self.peek().is_some() {
            return Err(self.error("EOF"));
        }
        Ok(fields)
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        loop {
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(fields);
                }
                Some(b'.') => return Err("graphql: fragments are not emulated".into()),
                _ => fields.push(self.field()?),
            }
        }
    }

    fn field(&mut self) -> Result<Field, String> {
        self.skip();
        let (line, column) = self.line_col(self.pos);
        let mut name = self.name()?;
        let mut alias = None;
        if self.peek() == Some(b':') {
            self.pos += 1;
            alias = Some(name);
            name = self.name()?;
        }
        let mut args = Vec::new();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            while self.peek() != Some(b')') {
                let k = self.name()?;
                self.expect(b':')?;
                let v = self.value()?;
                args.push((k, v));
            }
            self.pos += 1;
        }
        let selection = if self.peek() == Some(b'{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            name,
            alias,
            args,
            selection,
            line,
            column,
        })
    }

    fn value(&mut self) -> Result<GValue, String> {
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b']') {
                    if self.peek().is_none() {
                        return Err(self.error("\"]\""));
                    }
                    items.push(self.value()?);
                }
                self.pos += 1;
                Ok(GValue::List(items))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                while self.peek() != Some(b'}') {
                    let k = self.name()?;
                    self.expect(b':')?;
                    fields.push((k, self.value()?));
                }
                self.pos += 1;
                Ok(GValue::Object(fields))
            }
            Some(b'"') => self.string().map(GValue::Str),
            Some(b'$') => Err("graphql: variables are not emulated".into()),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => {
                let n = self.name()?;
                Ok(match n.as_str() {
                    "true" => GValue::Bool(true),
                    "false" => GValue::Bool(false),
                    "null" => GValue::Null,
                    _ => GValue::Enum(n),
                })
            }
            None => Err(self.error("Value")),
        }
    }

    fn number(&mut self) -> Result<GValue, String> {
        let start = self.pos;
        let mut float = false;
        while let Some(c) = self.src.get(self.pos) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.pos += 1;
        }
        let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        let parsed = if float {
            text.parse::<f64>().ok().map(GValue::Float)
        } else {
            text.parse::<i64>().ok().map(GValue::Int)
        };
        parsed.ok_or_else(|| format!("Syntax Error GraphQL request: invalid number {text:?}"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.src.get(self.pos).copied() else {
                return Err(self.error("\"\\\"\""));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.src.get(self.pos).copied() else {
                        return Err(self.error("escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .src
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("unicode escape"))?;
                            self.pos += 4;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(hex.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

// ---------------------------------------------------------------------------
// GraphQL: execution
// ---------------------------------------------------------------------------

/// Errors of one GraphQL request: validation errors fail the whole request
/// (no `data`), resolver errors null one class.
struct GqlErrors {
    validation: Vec<Value>,
    resolve: Vec<Value>,
}

fn gql_error(message: &str, field: &Field, path: Option<Vec<&str>>) -> Value {
    let mut m = Map::new();
    m.insert("locations".into(), field.location());
    m.insert("message".into(), json!(message));
    if let Some(p) = path {
        m.insert("path".into(), json!(p));
    }
    Value::Object(m)
}

async fn graphql(State(w): State<Arc<Weaviate>>, request: Request) -> Response {
    let body = match read_body(&w, request).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return unprocessable("query cannot be empty");
    };
    let mut parser = GqlParser {
        src: query.as_bytes(),
        pos: 0,
    };
    let fields = match parser.document() {
        Ok(f) => f,
        Err(e) => {
            return json_response(StatusCode::OK, &json!({"errors": [{"message": e}]}));
        }
    };
    let db = w.db();
    let mut errors = GqlErrors {
        validation: Vec::new(),
        resolve: Vec::new(),
    };
    let mut data = Map::new();
    for top in &fields {
        let value = match top.name.as_str() {
            "Get" => Value::Object(resolve_get(&db, top, &mut errors)),
            "Aggregate" => Value::Object(resolve_aggregate(&db, top, &mut errors)),
            other => {
                errors.validation.push(gql_error(
                    &format!("Cannot query field \"{other}\" on type \"WeaviateObj\"."),
                    top,
                    None,
                ));
                Value::Null
            }
        };
        data.insert(top.key().to_owned(), value);
    }
    if !errors.validation.is_empty() {
        return json_response(StatusCode::OK, &json!({"errors": errors.validation}));
    }
    let mut answer = Map::new();
    answer.insert("data".into(), Value::Object(data));
    if !errors.resolve.is_empty() {
        answer.insert("errors".into(), Value::Array(errors.resolve));
    }
    json_response(StatusCode::OK, &Value::Object(answer))
}

fn resolve_aggregate(db: &Db, top: &Field, errors: &mut GqlErrors) -> Map<String, Value> {
    let mut out = Map::new();
    for f in &top.selection {
        let Some(c) = db.classes.get(&f.name) else {
            errors.validation.push(gql_error(
                &format!(
                    "Cannot query field \"{}\" on type \"AggregateObjectsObj\".",
                    f.name
                ),
                f,
                None,
            ));
            continue;
        };
        let path = vec![top.key(), f.key()];
        if let Some((unsupported, _)) = f.args.iter().find(|(k, _)| k != "tenant") {
            errors.resolve.push(gql_error(
                &format!("weaviate emulator: Aggregate argument {unsupported:?} is not emulated"),
                f,
                Some(path),
            ));
            out.insert(f.key().to_owned(), Value::Null);
            continue;
        }
        let tenant = match f.arg("tenant") {
            Some(GValue::Str(t)) => Some(t.as_str()),
            _ => None,
        };
        let count = match c.shard_key(tenant) {
            Ok(key) => c.shards.get(&key).map_or(0, |s| s.objects.len()),
            Err(e) => {
                errors.resolve.push(gql_error(&e, f, Some(path)));
                out.insert(f.key().to_owned(), Value::Null);
                continue;
            }
        };
        let mut group = Map::new();
        for sel in &f.selection {
            match sel.name.as_str() {
                "meta" => {
                    let mut meta = Map::new();
                    for m in &sel.selection {
                        if m.name == "count" {
                            meta.insert(m.key().to_owned(), json!(count));
                        } else {
                            errors.validation.push(gql_error(
                                &format!(
                                    "Cannot query field \"{}\" on type \"AggregateMetaObject\".",
                                    m.name
                                ),
                                m,
                                None,
                            ));
                        }
                    }
                    group.insert(sel.key().to_owned(), Value::Object(meta));
                }
                other => {
                    errors.resolve.push(gql_error(
                        &format!(
                            "weaviate emulator: Aggregate of {other:?} is not emulated (only meta {{ count }})"
                        ),
                        sel,
                        Some(vec![top.key(), f.key()]),
                    ));
                }
            }
        }
        out.insert(f.key().to_owned(), json!([group]));
    }
    out
}

/// A nearVector search: query vector, target index, thresholds.
struct NearVector {
    vector: Vec<f32>,
    target: String,
    distance: Distance,
    max_distance: Option<f64>,
    min_certainty: Option<f64>,
}

fn near_vector(c: &Class, arg: &GValue) -> Result<NearVector, String> {
    let vector: Option<Vec<f32>> = match arg.field("vector") {
        Some(GValue::List(items)) => items.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        _ => None,
    };
    let Some(vector) = vector else {
        return Err("nearVector: vector must be a list of numbers".into());
    };
    let targets: Vec<String> = match arg.field("targetVectors") {
        Some(GValue::List(items)) => items
            .iter()
            .filter_map(|i| match i {
                GValue::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let named = c.named_vectors();
    let (target, distance) = match (targets.as_slice(), c.legacy_distance()) {
        ([], Some(d)) => (String::new(), d),
        ([], None) if named.len() == 1 => {
            let (n, d) = named
                .iter()
                .next()
                .map(|(n, d)| (n.clone(), *d))
                .unwrap_or((String::new(), Distance::Cosine));
            (n, d)
        }
        ([], None) => return Err("multiple vectors found, specify target vector".into()),
        ([one], _) => match named.get(one) {
            Some(d) => (one.clone(), *d),
            None => {
                return Err(format!(
                    "class {} does not have named vector {one} configured",
                    c.name
                ));
            }
        },
        _ => return Err("weaviate emulator: multi-target vector search is not emulated".into()),
    };
    Ok(NearVector {
        vector,
        target,
        distance,
        max_distance: arg.field("distance").and_then(GValue::as_f64),
        min_certainty: arg.field("certainty").and_then(GValue::as_f64),
    })
}

fn resolve_get(db: &Db, top: &Field, errors: &mut GqlErrors) -> Map<String, Value> {
    let mut out = Map::new();
    for f in &top.selection {
        let Some(c) = db.classes.get(&f.name) else {
            errors.validation.push(gql_error(
                &format!(
                    "Cannot query field \"{}\" on type \"GetObjectsObj\".",
                    f.name
                ),
                f,
                None,
            ));
            continue;
        };
        let before = errors.validation.len();
        check_selection(c, f, errors);
        if errors.validation.len() > before {
            continue;
        }
        let path = vec![top.key(), f.key()];
        match get_class_objects(c, f) {
            Ok(objects) => {
                out.insert(f.key().to_owned(), Value::Array(objects));
            }
            Err(e) => {
                errors.resolve.push(gql_error(&e, f, Some(path)));
                out.insert(f.key().to_owned(), Value::Null);
            }
        }
    }
    out
}

/// Validation of the fields asked for: properties of the class (nested
/// selections for objects) and `_additional`.
fn check_selection(c: &Class, f: &Field, errors: &mut GqlErrors) {
    for sel in &f.selection {
        if sel.name == "_additional" || sel.name == "__typename" {
            continue;
        }
        match c.property(&sel.name) {
            None => errors.validation.push(gql_error(
                &format!(
                    "Cannot query field \"{}\" on type \"{}\".",
                    sel.name, c.name
                ),
                sel,
                None,
            )),
            Some(p) => check_nested_selection(
                &p,
                sel,
                &format!("{}{}Object", c.name, upper_first(&sel.name)),
                errors,
            ),
        }
    }
}

fn check_nested_selection(p: &Value, sel: &Field, type_name: &str, errors: &mut GqlErrors) {
    let dts = data_types(p);
    let nested = dts.len() == 1 && is_nested(&dts[0]);
    if nested && sel.selection.is_empty() {
        errors.validation.push(gql_error(
            &format!(
                "Field \"{}\" of type \"{type_name}\" must have a sub selection.",
                sel.name
            ),
            sel,
            None,
        ));
        return;
    }
    if !nested && !sel.selection.is_empty() {
        errors.validation.push(gql_error(
            &format!(
                "Field \"{}\" must not have a selection since type has no subfields.",
                sel.name
            ),
            sel,
            None,
        ));
        return;
    }
    let children = p
        .get("nestedProperties")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in &sel.selection {
        match children
            .iter()
            .find(|n| n.get("name").and_then(Value::as_str) == Some(s.name.as_str()))
        {
            None => errors.validation.push(gql_error(
                &format!("Cannot query field \"{}\" on type \"{type_name}\".", s.name),
                s,
                None,
            )),
            Some(n) => check_nested_selection(
                n,
                s,
                &format!("{type_name}{}", upper_first(&s.name)),
                errors,
            ),
        }
    }
}

fn int_arg(f: &Field, name: &str) -> Result<Option<i64>, String> {
    match f.arg(name) {
        None | Some(GValue::Null) => Ok(None),
        Some(GValue::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(format!("Argument \"{name}\" has invalid value {other:?}.")),
    }
}

fn get_class_objects(c: &Class, f: &Field) -> Result<Vec<Value>, String> {
    const KNOWN: [&str; 6] = [
        "limit",
        "offset",
        "after",
        "tenant",
        "nearVector",
        "autocut",
    ];
    if let Some((unsupported, _)) = f.args.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "weaviate emulator: Get argument {unsupported:?} is not emulated"
        ));
    }
    let tenant = match f.arg("tenant") {
        Some(GValue::Str(t)) => Some(t.as_str()),
        _ => None,
    };
    let limit = int_arg(f, "limit")?;
    let offset = int_arg(f, "offset")?.unwrap_or(0).max(0);
    let search = f.arg("nearVector").map(|a| near_vector(c, a)).transpose()?;
    let index = c.name.to_lowercase();
    // The explorer's wrapping: a vector search or a plain object search.
    let context = if search.is_some() {
        format!("explorer: get class: vector search: object vector search at index {index}")
    } else {
        format!("explorer: list class: search: object search at index {index}")
    };
    let key = c.shard_key(tenant).map_err(|e| format!("{context}: {e}"))?;
    let empty = Shard::default();
    let shard = c.shards.get(&key).unwrap_or(&empty);
    let limit = limit.unwrap_or(DEFAULT_LIMIT).max(0);
    if offset + limit > QUERY_MAXIMUM_RESULTS {
        return Err(format!(
            "explorer: list class: search: invalid pagination params: query maximum results exceeded: the total limit calculated from the provided offset '{offset}' and limit '{limit}' exceeds the configured value for QUERY_MAXIMUM_RESULTS '{QUERY_MAXIMUM_RESULTS}'"
        ));
    }
    let hits: Vec<(&StoredObject, Option<f32>)> = match &search {
        Some(nv) => {
            if let Some(dims) = shard.dims.get(&nv.target)
                && *dims != nv.vector.len()
            {
                return Err(format!(
                    "{context}: vector lengths don't match: {} vs {dims}",
                    nv.vector.len()
                ));
            }
            let mut scored: Vec<(&StoredObject, f32)> = shard
                .objects
                .values()
                .filter_map(|o| {
                    let v = if nv.target.is_empty() {
                        o.vector.as_ref()
                    } else {
                        o.vectors.get(&nv.target)
                    }?;
                    Some((o, nv.distance.between(&nv.vector, v)))
                })
                .filter(|(_, d)| nv.max_distance.is_none_or(|max| (*d as f64) <= max))
                .filter(|(_, d)| {
                    nv.min_certainty
                        .is_none_or(|min| 1.0 - (*d as f64) / 2.0 >= min)
                })
                .collect();
            scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
            scored
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|(o, d)| (o, Some(d)))
                .collect()
        }
        None => {
            let after = match f.arg("after") {
                Some(GValue::Str(a)) if !a.is_empty() => Some(
                    google_uuid(a)
                        .map_err(|e| format!("after parameter '{a}' is not a valid uuid: {e}"))?,
                ),
                _ => None,
            };
            let start = match after {
                Some(u) => std::ops::Bound::Excluded(u),
                None => std::ops::Bound::Unbounded,
            };
            shard
                .objects
                .range((start, std::ops::Bound::Unbounded))
                .skip(offset as usize)
                .take(limit as usize)
                .map(|(_, o)| (o, None))
                .collect()
        }
    };
    let cosine = search
        .as_ref()
        .is_some_and(|s| s.distance == Distance::Cosine);
    Ok(hits
        .into_iter()
        .map(|(o, d)| render_hit(o, d, cosine, &f.selection))
        .collect())
}

fn select_value(v: &Value, sel: &[Field]) -> Value {
    if sel.is_empty() {
        return v.clone();
    }
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for s in sel {
                let inner = m
                    .get(&s.name)
                    .map(|x| select_value(x, &s.selection))
                    .unwrap_or(Value::Null);
                out.insert(s.key().to_owned(), inner);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| select_value(i, sel)).collect()),
        other => other.clone(),
    }
}

fn render_hit(o: &StoredObject, distance: Option<f32>, cosine: bool, selection: &[Field]) -> Value {
    let mut out = Map::new();
    for sel in selection {
        if sel.name == "_additional" {
            let mut add = Map::new();
            for a in &sel.selection {
                let v = match a.name.as_str() {
                    "id" => json!(o.id.to_string()),
                    "distance" => distance.map_or(Value::Null, f32_json),
                    "certainty" => match distance {
                        Some(d) if cosine => f32_json(1.0 - d / 2.0),
                        _ => Value::Null,
                    },
                    "vector" => o.vector.as_ref().map_or(json!([]), |v| f32s_json(v)),
                    "vectors" => {
                        let mut vs = Map::new();
                        for s in &a.selection {
                            vs.insert(
                                s.key().to_owned(),
                                o.vectors.get(&s.name).map_or(Value::Null, |v| f32s_json(v)),
                            );
                        }
                        Value::Object(vs)
                    }
                    "creationTimeUnix" => json!(o.created.to_string()),
                    "lastUpdateTimeUnix" => json!(o.updated.to_string()),
                    "tenant" => o.tenant.clone().map_or(Value::Null, Value::String),
                    _ => Value::Null,
                };
                add.insert(a.key().to_owned(), v);
            }
            out.insert(sel.key().to_owned(), Value::Object(add));
        } else {
            let v = o
                .properties
                .get(&sel.name)
                .map(|v| select_value(v, &sel.selection))
                .unwrap_or(Value::Null);
            out.insert(sel.key().to_owned(), v);
        }
    }
    Value::Object(out)
}
