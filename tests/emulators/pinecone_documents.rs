//! The Pinecone emulator's document indexes (API 2026-07): schema checks on
//! create, and the Documents API, `POST /namespaces/{ns}/documents/{verb}`
//! with `verb` one of upsert, list, fetch, search, delete, update.
//!
//! Shapes follow Pinecone's 2026-07 reference and, where it is silent, what
//! the official SDK 10.2.0 sends and decodes (`pinecone/models/documents`,
//! `pinecone/_internal/adapters/documents_adapter.py`):
//! - upsert `{"documents": [{"_id", field: value, …}]}` → 202
//!   `{"upserted_count"}`; at most 1,000 documents and 2 MB; one invalid
//!   document fails the whole request; field names starting with `_` or `$`
//!   are refused; every `dense_vector` field (and every `string` field with
//!   `embed`) is required; undeclared fields are metadata (string, number,
//!   boolean, list of strings; no null, no object), at most 40 KB per
//!   document (declared fields not counted).
//! - list `{"prefix"?, "limit"? (1–100), "pagination_token"?}` →
//!   `{"documents": [{"_id"}], "namespace", "usage": {"read_units"},
//!   "pagination"?: {"next"}}`, ids in bytewise order.
//! - fetch `{"ids"}` (≤ 1,000) or `{"filter", "limit"?, "pagination_token"?}`,
//!   `"include_fields"?` → `{"documents": {id: document}, "namespace",
//!   "usage", "pagination"?}`.
//! - search `{"score_by": [clause], "top_k", "include_fields"?, "filter"?}`
//!   with `dense_vector` (`field`, `values`) or `text` (`query`, `fields`;
//!   scored by matching terms, not BM25) clauses → `{"matches": [{"_id",
//!   "_score", …}], "namespace", "usage"}`.
//! - delete `{"ids" | "delete_all" | "filter"}` and update (per-id patches
//!   with `_remove_fields`, applied at once) → 202 `{}`.
//! - Errors `{"error": {"code", "message"}, "status"}`.
//! - Writes become visible after [`super::PineconeOptions::document_lag_reads`]
//!   document reads of the index (list, fetch, search, `GET /namespaces`),
//!   as Pinecone applies
//!   upserts asynchronously; 0 makes them visible at once.
//! - `embed`/`sparse_embed` fields keep their text; the emulator has no
//!   model, so it makes no vectors and refuses `embed` search clauses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{
    ApiError, ApiResult, Index, MAX_DIMENSION, MAX_ID_CHARS, MAX_METADATA_BYTES,
    MAX_UPSERT_RECORDS, Metric, Pinecone, index_name, invalid, json_response, matches_filter,
    parse_sparse, read_json,
};

/// Longest field name, in bytes.
const MAX_FIELD_NAME: usize = 64;
/// Most ids per fetch.
const MAX_FETCH_IDS: usize = 1000;

/// Checks a create's `schema.fields` and returns them as describe shows
/// them (every setting resolved).
pub(super) fn parse_schema(fields: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let (mut dense, mut sparse) = (0, 0);
    for (name, f) in fields {
        if name.is_empty() || name.len() > MAX_FIELD_NAME {
            return Err(format!(
                "schema.fields.{name}: field names are 1 to {MAX_FIELD_NAME} bytes"
            ));
        }
        if name.starts_with('_') || name.starts_with('$') {
            return Err(format!(
                "schema.fields.{name}: field names starting with '_' or '$' are reserved"
            ));
        }
        let ty = f.get("type").and_then(Value::as_str).unwrap_or_default();
        let described = match ty {
            "dense_vector" => {
                dense += 1;
                let dimension = f
                    .get("dimension")
                    .and_then(Value::as_u64)
                    .filter(|d| (1..=MAX_DIMENSION).contains(d))
                    .ok_or_else(|| {
                        format!(
                            "schema.fields.{name}.dimension: must be an integer between 1 and {MAX_DIMENSION}"
                        )
                    })?;
                let metric = f.get("metric").and_then(Value::as_str).unwrap_or("cosine");
                let metric = Metric::parse(&metric.to_ascii_lowercase()).ok_or_else(|| {
                    format!(
                        "schema.fields.{name}.metric: must be one of cosine, euclidean, dotproduct"
                    )
                })?;
                json!({"type": "dense_vector", "dimension": dimension, "metric": metric.name(),
                    "description": f.get("description").cloned().unwrap_or(Value::Null)})
            }
            "sparse_vector" => {
                sparse += 1;
                json!({"type": "sparse_vector",
                    "description": f.get("description").cloned().unwrap_or(Value::Null)})
            }
            "string" => {
                let searched = ["full_text_search", "embed", "sparse_embed"]
                    .iter()
                    .any(|k| f.get(*k).is_some_and(|v| !v.is_null()));
                if !searched {
                    return Err(format!(
                        "schema.fields.{name}: a string field must declare full_text_search, embed or sparse_embed"
                    ));
                }
                if f.get("filterable").is_some() {
                    return Err(format!(
                        "schema.fields.{name}.filterable: a searched string field cannot be filterable"
                    ));
                }
                let store_text = f.get("store_text").and_then(Value::as_bool).unwrap_or(true);
                let mut fts = f.get("full_text_search").filter(|v| !v.is_null()).cloned();
                if fts.is_none() && store_text {
                    // Stored text is always full-text searchable.
                    fts = Some(json!({}));
                }
                let fts = match fts {
                    None => Value::Null,
                    Some(Value::Object(given)) => {
                        let stemming = given
                            .get("stemming")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        let stop_words = given
                            .get("stop_words")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        let ngram = given.get("ngram").cloned().unwrap_or(Value::Null);
                        if stop_words && !stemming {
                            return Err(format!(
                                "schema.fields.{name}.full_text_search: stop_words requires stemming"
                            ));
                        }
                        if !ngram.is_null() && (stemming || stop_words) {
                            return Err(format!(
                                "schema.fields.{name}.full_text_search: ngram cannot be combined with stemming or stop_words"
                            ));
                        }
                        json!({"language": given.get("language").and_then(Value::as_str).unwrap_or("en"),
                            "stemming": stemming, "stop_words": stop_words, "ngram": ngram})
                    }
                    Some(_) => {
                        return Err(format!(
                            "schema.fields.{name}.full_text_search: must be an object"
                        ));
                    }
                };
                let embed = match f.get("embed").filter(|v| !v.is_null()) {
                    None => Value::Null,
                    Some(e) => {
                        dense += 1;
                        json!({"model": e.get("model").and_then(Value::as_str).unwrap_or("llama-text-embed-v2"),
                            "dimension": e.get("dimension").and_then(Value::as_u64).unwrap_or(1024),
                            "metric": e.get("metric").and_then(Value::as_str).unwrap_or("cosine"),
                            "write_parameters": e.get("write_parameters").cloned().unwrap_or(json!({})),
                            "read_parameters": e.get("read_parameters").cloned().unwrap_or(json!({}))})
                    }
                };
                let sparse_embed = match f.get("sparse_embed").filter(|v| !v.is_null()) {
                    None => Value::Null,
                    Some(e) => {
                        sparse += 1;
                        json!({"model": e.get("model").and_then(Value::as_str).unwrap_or("pinecone-sparse-english-v0"),
                            "write_parameters": e.get("write_parameters").cloned().unwrap_or(json!({})),
                            "read_parameters": e.get("read_parameters").cloned().unwrap_or(json!({}))})
                    }
                };
                json!({"type": "string",
                    "description": f.get("description").cloned().unwrap_or(Value::Null),
                    "full_text_search": fts, "embed": embed, "sparse_embed": sparse_embed,
                    "store_text": store_text})
            }
            "" => {
                return Err(format!(
                    "schema.fields.{name}: a field needs a type (dense_vector, sparse_vector or string)"
                ));
            }
            other => {
                return Err(format!(
                    "schema.fields.{name}.type: '{other}' cannot be declared; declare dense_vector, sparse_vector or string, and upsert metadata as ordinary document fields"
                ));
            }
        };
        out.insert(name.clone(), described);
    }
    if dense > 1 || sparse > 1 {
        return Err(
            "schema: an index has at most one dense vector (dense_vector or embed) and one sparse vector (sparse_vector or sparse_embed)".into(),
        );
    }
    Ok(out)
}

/// The dimension and metric of a schema's dense field, if it has one.
pub(super) fn dense_of(schema: &Map<String, Value>) -> (Option<u64>, Option<Metric>) {
    schema
        .values()
        .find(|f| f["type"] == "dense_vector")
        .map(|f| {
            (
                f["dimension"].as_u64(),
                f["metric"].as_str().and_then(Metric::parse),
            )
        })
        .unwrap_or((None, None))
}

impl Index {
    /// Applies every pending write at once.
    pub(super) fn apply_all_pending(&mut self) {
        for (ns, id, doc, _) in std::mem::take(&mut self.pending) {
            self.apply(ns, id, doc);
        }
    }

    fn apply(&mut self, ns: String, id: String, doc: Option<Map<String, Value>>) {
        match doc {
            Some(d) => {
                self.documents.entry(ns).or_default().insert(id, d);
            }
            None => {
                if let Some(docs) = self.documents.get_mut(&ns) {
                    docs.remove(&id);
                    if docs.is_empty() {
                        self.documents.remove(&ns);
                    }
                }
            }
        }
    }

    /// One document read: pending writes come one read closer to showing.
    pub(super) fn read_tick(&mut self) {
        let mut still = Vec::new();
        for (ns, id, doc, left) in std::mem::take(&mut self.pending) {
            if left <= 1 {
                self.apply(ns, id, doc);
            } else {
                still.push((ns, id, doc, left - 1));
            }
        }
        self.pending = still;
    }

    fn write(&mut self, lag: u32, ns: &str, id: String, doc: Option<Map<String, Value>>) {
        if lag == 0 {
            self.apply(ns.to_owned(), id, doc);
        } else {
            self.pending.push((ns.to_owned(), id, doc, lag));
        }
    }
}

/// A Documents API failure, in the 2026-07 shape.
fn error_response(e: ApiError) -> Response {
    let code = match e.code {
        3 => "INVALID_ARGUMENT",
        5 => "NOT_FOUND",
        8 => "RESOURCE_EXHAUSTED",
        12 => "UNIMPLEMENTED",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    };
    json_response(
        e.status,
        &json!({"error": {"code": code, "message": e.message}, "status": e.status.as_u16()}),
    )
}

/// `POST /namespaces/{namespace}/documents/{verb}`.
pub(super) async fn handle(
    State(p): State<Arc<Pinecone>>,
    Path(params): Path<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    let ns = params.get("namespace").cloned().unwrap_or_default();
    let verb = params.get("verb").cloned().unwrap_or_default();
    let uri = request.uri().clone();
    let body = match read_json(&p, request).await {
        Ok(b) => b,
        Err(e) => return error_response(e),
    };
    let lag = p.document_lag_reads.load(Ordering::SeqCst);
    let mut db = p.db();
    let result = index_name(&db, &uri).and_then(|name| {
        let index = db.get_mut(&name).expect("index exists");
        let Some(schema) = index.schema.clone() else {
            return Err(invalid(format!(
                "Index '{name}' is a vector index: use the Vectors API (/vectors/...) instead of the Documents API"
            )));
        };
        if ns.trim().is_empty() {
            return Err(invalid("namespace must be a non-empty string"));
        }
        match verb.as_str() {
            "upsert" => upsert(index, &schema, lag, &ns, &body).map(|v| (StatusCode::ACCEPTED, v)),
            "list" => {
                index.read_tick();
                list(index, &ns, &body).map(|v| (StatusCode::OK, v))
            }
            "fetch" => {
                index.read_tick();
                fetch(index, &ns, &body).map(|v| (StatusCode::OK, v))
            }
            "search" => {
                index.read_tick();
                search(index, &schema, &ns, &body).map(|v| (StatusCode::OK, v))
            }
            "delete" => delete(index, lag, &ns, &body).map(|v| (StatusCode::ACCEPTED, v)),
            "update" => update(index, &ns, &body).map(|v| (StatusCode::ACCEPTED, v)),
            other => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                code: 5,
                message: format!("Unknown documents operation '{other}'"),
            }),
        }
    });
    match result {
        Ok((status, v)) => json_response(status, &v),
        Err(e) => error_response(e),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id.chars().all(|c| ('\u{1}'..='\u{7f}').contains(&c))
}

/// Checks one document against the schema; the document as stored.
fn check_document(
    schema: &Map<String, Value>,
    position: usize,
    doc: &Value,
) -> ApiResult<(String, Map<String, Value>)> {
    let Some(doc) = doc.as_object() else {
        return Err(invalid(format!(
            "Document at position {position} must be an object"
        )));
    };
    let id = match doc.get("_id") {
        Some(Value::String(id)) if valid_id(id) => id.clone(),
        _ => {
            return Err(invalid(format!(
                "Document at position {position}: '_id' must be a string of 1 to {MAX_ID_CHARS} ASCII characters without NUL"
            )));
        }
    };
    let mut metadata = Map::new();
    for (key, value) in doc {
        if key == "_id" {
            continue;
        }
        if key.starts_with('_') || key.starts_with('$') {
            return Err(invalid(format!(
                "Document '{id}': field name '{key}' is reserved: names starting with '_' or '$' cannot be used"
            )));
        }
        match schema.get(key) {
            Some(f) if f["type"] == "dense_vector" => {
                let dim = f["dimension"].as_u64().unwrap_or_default() as usize;
                let values = value
                    .as_array()
                    .filter(|a| a.iter().all(Value::is_number))
                    .ok_or_else(|| {
                        invalid(format!(
                            "Document '{id}': field '{key}' must be a list of numbers"
                        ))
                    })?;
                if values.len() != dim {
                    return Err(invalid(format!(
                        "Document '{id}': field '{key}' has dimension {}, the schema's is {dim}",
                        values.len()
                    )));
                }
                if values.iter().all(|v| v.as_f64() == Some(0.0)) {
                    return Err(invalid(format!(
                        "Document '{id}': dense vectors must contain at least one non-zero value"
                    )));
                }
            }
            Some(f) if f["type"] == "sparse_vector" => {
                parse_sparse(value, &id)?;
            }
            Some(_) => {
                if !value.is_string() {
                    return Err(invalid(format!(
                        "Document '{id}': field '{key}' is a string field, got {value}"
                    )));
                }
            }
            None => {
                let ok = match value {
                    Value::String(_) | Value::Bool(_) | Value::Number(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_string),
                    Value::Null | Value::Object(_) => false,
                };
                if !ok {
                    return Err(invalid(format!(
                        "Document '{id}': metadata field '{key}' must be a string, number, boolean or list of strings"
                    )));
                }
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    for (name, f) in schema {
        let required =
            f["type"] == "dense_vector" || (f["type"] == "string" && !f["embed"].is_null());
        if required && !doc.contains_key(name) {
            return Err(invalid(format!(
                "Document '{id}' is missing the required field '{name}'"
            )));
        }
    }
    let size = serde_json::to_vec(&metadata).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "Document '{id}': metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per document"
        )));
    }
    let mut stored = doc.clone();
    stored.remove("_id");
    Ok((id, stored))
}

fn upsert(
    index: &mut Index,
    schema: &Map<String, Value>,
    lag: u32,
    ns: &str,
    body: &Value,
) -> ApiResult<Value> {
    let docs = body
        .get("documents")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Missing required field `documents`"))?;
    if docs.is_empty() {
        return Err(invalid("'documents' must contain at least one document"));
    }
    if docs.len() > MAX_UPSERT_RECORDS {
        return Err(invalid(format!(
            "Number of documents ({}) exceeds the maximum limit of {MAX_UPSERT_RECORDS} documents per request",
            docs.len()
        )));
    }
    let mut checked = Vec::with_capacity(docs.len());
    let mut seen = std::collections::BTreeSet::new();
    for (i, d) in docs.iter().enumerate() {
        let (id, doc) = check_document(schema, i, d)?;
        if !seen.insert(id.clone()) {
            return Err(invalid(format!(
                "Document '{id}' appears twice in the request"
            )));
        }
        checked.push((id, doc));
    }
    let n = checked.len();
    for (id, doc) in checked {
        index.write(lag, ns, id, Some(doc));
    }
    Ok(json!({"upserted_count": n}))
}

fn usage() -> Value {
    json!({"read_units": 1})
}

fn limit_of(body: &Value, default: usize, max: usize) -> ApiResult<usize> {
    match body.get("limit") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| invalid(format!("'limit' must be between 1 and {max}"))),
    }
}

fn token_of(body: &Value) -> ApiResult<Option<String>> {
    match body.get("pagination_token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => super::decode_token(t)
            .map(Some)
            .ok_or_else(|| invalid("Invalid pagination token")),
        Some(_) => Err(invalid("pagination_token must be a string")),
    }
}

fn list(index: &Index, ns: &str, body: &Value) -> ApiResult<Value> {
    let limit = limit_of(body, 100, 100)?;
    let prefix = body
        .get("prefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let after = token_of(body)?;
    let empty = BTreeMap::new();
    let docs = index.documents.get(ns).unwrap_or(&empty);
    let from = match &after {
        Some(a) => std::ops::Bound::Excluded(a.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut ids = docs
        .range::<String, _>((from, std::ops::Bound::Unbounded))
        .map(|(id, _)| id)
        .filter(|id| id.starts_with(prefix));
    let page: Vec<&String> = ids.by_ref().take(limit).collect();
    let more = ids.next().is_some();
    let mut out = Map::new();
    out.insert(
        "documents".into(),
        Value::Array(page.iter().map(|id| json!({ "_id": id })).collect()),
    );
    out.insert("namespace".into(), json!(ns));
    out.insert("usage".into(), usage());
    if more && let Some(last) = page.last() {
        out.insert(
            "pagination".into(),
            json!({"next": super::encode_token(last)}),
        );
    }
    Ok(Value::Object(out))
}

/// A stored document as returned: `_id` first, then `include_fields` (all
/// when absent, empty or `["*"]`).
fn shown(id: &str, doc: &Map<String, Value>, include: Option<&[Value]>) -> Map<String, Value> {
    let all = include.is_none_or(|f| f.is_empty() || f.iter().any(|v| v == "*"));
    let mut m = Map::new();
    m.insert("_id".into(), json!(id));
    for (k, v) in doc {
        if all || include.is_some_and(|f| f.iter().any(|n| n == k)) {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

fn fetch(index: &Index, ns: &str, body: &Value) -> ApiResult<Value> {
    let ids = body.get("ids").filter(|v| !v.is_null());
    let filter = body.get("filter").filter(|v| !v.is_null());
    let include = body
        .get("include_fields")
        .and_then(Value::as_array)
        .map(Vec::as_slice);
    let empty = BTreeMap::new();
    let docs = index.documents.get(ns).unwrap_or(&empty);
    let mut out = Map::new();
    let mut found = Map::new();
    match (ids, filter) {
        (Some(ids), None) => {
            let ids = ids
                .as_array()
                .filter(|a| !a.is_empty() && a.iter().all(Value::is_string))
                .ok_or_else(|| invalid("'ids' must be a non-empty list of strings"))?;
            if ids.len() > MAX_FETCH_IDS {
                return Err(invalid(format!(
                    "Number of ids ({}) exceeds the maximum limit of {MAX_FETCH_IDS} ids per request",
                    ids.len()
                )));
            }
            for id in ids.iter().filter_map(Value::as_str) {
                if let Some(d) = docs.get(id) {
                    found.insert(id.to_owned(), Value::Object(shown(id, d, include)));
                }
            }
        }
        (None, Some(f)) => {
            if f.as_object().is_none_or(Map::is_empty) {
                return Err(invalid("The 'filter' field must be a non-empty object"));
            }
            super::check_filter(f)?;
            let limit = limit_of(body, 100, 10_000)?;
            let after = token_of(body)?;
            let mut matching = docs
                .iter()
                .filter(|(id, _)| after.as_ref().is_none_or(|a| *id > a))
                .filter(|(_, d)| matches_filter(f, Some(d)));
            let mut last = None;
            for (id, d) in matching.by_ref().take(limit) {
                found.insert(id.clone(), Value::Object(shown(id, d, include)));
                last = Some(id.clone());
            }
            if matching.next().is_some()
                && let Some(l) = last
            {
                out.insert(
                    "pagination".into(),
                    json!({"next": super::encode_token(&l)}),
                );
            }
        }
        _ => {
            return Err(invalid(
                "Exactly one of 'ids' or 'filter' must be provided in a document fetch request",
            ));
        }
    }
    out.insert("documents".into(), Value::Object(found));
    out.insert("namespace".into(), json!(ns));
    out.insert("usage".into(), usage());
    Ok(Value::Object(out))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect()
}

fn search(index: &Index, schema: &Map<String, Value>, ns: &str, body: &Value) -> ApiResult<Value> {
    let clauses = body
        .get("score_by")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("'score_by' must contain at least one scoring method"))?;
    let top_k = body
        .get("top_k")
        .and_then(Value::as_u64)
        .filter(|k| (1..=10_000).contains(k))
        .ok_or_else(|| invalid("'top_k' must be between 1 and 10000"))? as usize;
    let include = body
        .get("include_fields")
        .and_then(Value::as_array)
        .map(Vec::as_slice);
    let filter = body.get("filter").filter(|v| !v.is_null());
    if let Some(f) = filter {
        super::check_filter(f)?;
    }
    let empty = BTreeMap::new();
    let docs = index.documents.get(ns).unwrap_or(&empty);
    let mut ascending = false;
    let mut scores: BTreeMap<&String, f64> = BTreeMap::new();
    for clause in clauses {
        match clause.get("type").and_then(Value::as_str) {
            Some("dense_vector") => {
                let field = clause["field"].as_str().unwrap_or_default();
                let f = schema
                    .get(field)
                    .filter(|f| f["type"] == "dense_vector")
                    .ok_or_else(|| invalid(format!("'{field}' is not a dense_vector field")))?;
                let q = floats(&clause["values"]);
                if q.len() as u64 != f["dimension"].as_u64().unwrap_or_default() {
                    return Err(invalid("Query vector dimension does not match the field's"));
                }
                let metric = f["metric"]
                    .as_str()
                    .and_then(Metric::parse)
                    .unwrap_or(Metric::Cosine);
                ascending = metric == Metric::Euclidean;
                for (id, d) in docs {
                    let v = floats(&d[field]);
                    let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                    let s = match metric {
                        Metric::Cosine => {
                            let n = (q.iter().map(|x| x * x).sum::<f64>()
                                * v.iter().map(|x| x * x).sum::<f64>())
                            .sqrt();
                            if n == 0.0 { 0.0 } else { dot / n }
                        }
                        Metric::Dotproduct => dot,
                        Metric::Euclidean => q.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum(),
                    };
                    scores.insert(id, s);
                }
            }
            Some("text") => {
                let query = clause["query"].as_str().unwrap_or_default().to_lowercase();
                let terms: Vec<&str> = query.split_whitespace().collect();
                let fields: Vec<&str> = clause["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for f in &fields {
                    if schema
                        .get(*f)
                        .is_none_or(|s| s["full_text_search"].is_null())
                    {
                        return Err(invalid(format!("'{f}' is not a full-text field")));
                    }
                }
                for (id, d) in docs {
                    let mut s = 0.0;
                    for f in &fields {
                        let text = d[*f].as_str().unwrap_or_default().to_lowercase();
                        let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
                        s += terms.iter().filter(|t| words.contains(t)).count() as f64;
                    }
                    if s > 0.0 {
                        *scores.entry(id).or_default() += s;
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "pinecone emulator: score_by clauses of type {other:?} are not emulated (dense_vector and text are)"
                )));
            }
        }
    }
    let mut ranked: Vec<(&String, f64)> = scores
        .into_iter()
        .filter(|(id, _)| filter.is_none_or(|f| matches_filter(f, docs.get(*id))))
        .collect();
    ranked.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        (if ascending { o } else { o.reverse() }).then_with(|| a.0.cmp(b.0))
    });
    let matches: Vec<Value> = ranked
        .into_iter()
        .take(top_k)
        .map(|(id, s)| {
            let mut m = match include {
                Some(f) if !f.is_empty() => shown(id, &docs[id], Some(f)),
                _ => {
                    let mut m = Map::new();
                    m.insert("_id".into(), json!(id));
                    m
                }
            };
            m.insert("_score".into(), super::f32_json(s as f32));
            Value::Object(m)
        })
        .collect();
    Ok(json!({"matches": matches, "namespace": ns, "usage": usage()}))
}

fn delete(index: &mut Index, lag: u32, ns: &str, body: &Value) -> ApiResult<Value> {
    let ids = body.get("ids").filter(|v| !v.is_null());
    let all = body.get("delete_all").and_then(Value::as_bool) == Some(true);
    let filter = body.get("filter").filter(|v| !v.is_null());
    if usize::from(ids.is_some()) + usize::from(all) + usize::from(filter.is_some()) != 1 {
        return Err(invalid(
            "Exactly one of 'ids', 'filter' or 'delete_all' must be provided",
        ));
    }
    let doomed: Vec<String> = if let Some(ids) = ids {
        let ids = ids
            .as_array()
            .ok_or_else(|| invalid("'ids' must be a list of strings"))?;
        if ids.len() > 1000 {
            return Err(invalid(
                "Number of ids exceeds the maximum limit of 1000 ids per request",
            ));
        }
        ids.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    } else {
        let docs = index.documents.get(ns).cloned().unwrap_or_default();
        if let Some(f) = filter {
            super::check_filter(f)?;
        }
        docs.iter()
            .filter(|(_, d)| filter.is_none_or(|f| matches_filter(f, Some(d))))
            .map(|(id, _)| id.clone())
            .collect()
    };
    for id in doomed {
        index.write(lag, ns, id, None);
    }
    Ok(json!({}))
}

fn update(index: &mut Index, ns: &str, body: &Value) -> ApiResult<Value> {
    let patches = body
        .get("documents")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            invalid("pinecone emulator: only per-document updates ('documents') are emulated")
        })?;
    index.apply_all_pending();
    for patch in patches {
        let id = patch["_id"]
            .as_str()
            .filter(|id| valid_id(id))
            .ok_or_else(|| invalid("Every patch needs a valid '_id'"))?;
        let Some(doc) = index.documents.get_mut(ns).and_then(|d| d.get_mut(id)) else {
            continue;
        };
        for (k, v) in patch.as_object().into_iter().flatten() {
            match k.as_str() {
                "_id" => {}
                "_remove_fields" => {
                    for f in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        doc.remove(f);
                    }
                }
                _ if v.is_null() => {
                    return Err(invalid(format!("Field '{k}' cannot be set to null")));
                }
                _ => {
                    doc.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(json!({}))
}
