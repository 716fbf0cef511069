//! What both kinds of Pinecone index share on the wire: the HTTP dialect,
//! the `IndexModel` of the control plane, metrics, index names, the kind of
//! an index (told from its schema), namespaces, and the scan cursor
//! (`{"namespace", "token"|"line"}`) that names a place in an export.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::Metric;

use super::super::http::{HttpClient, Response, Vendor, decode_json, segment};
use reqwest::{Method, StatusCode};

/// The default namespace, as paths and listings name it.
pub const DEFAULT_NAMESPACE: &str = "__default__";
/// Schema field names under which a legacy vector index keeps its dense and
/// sparse values when described on API 2026-07.
pub const LEGACY_FIELDS: [&str; 2] = ["_values", "_sparse_values"];

/// Pinecone's HTTP dialect, control and data plane alike.
#[derive(Debug)]
pub struct PineconeApi;

impl Vendor for PineconeApi {
    fn name(&self) -> &'static str {
        "pinecone"
    }

    fn credential_hint(&self) -> String {
        format!("the API key in {}", super::API_KEY_ENV)
    }

    fn error_message(&self, resp: &Response) -> String {
        serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("error").and_then(|e| e.get("message")))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| resp.text_excerpt())
    }
}

/// An index as the control plane describes it: the 2025-10 fields, and every
/// other field (the 2026-07 `schema`, `deployment`, …) kept as it came.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct IndexModel {
    pub name: String,
    // Read through a `Value`: the flattened `rest` buffers every field, and
    // buffered numbers are decimal text (serde_json's `arbitrary_precision`).
    #[serde(default, deserialize_with = "crate::model::buffered_u32")]
    pub dimension: Option<u32>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub vector_type: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub spec: Value,
    #[serde(default)]
    pub status: Value,
    #[serde(default)]
    pub tags: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct IndexList {
    pub indexes: Vec<IndexModel>,
}

#[derive(Debug, Deserialize)]
pub struct Pagination {
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Namespaces {
    #[serde(default)]
    namespaces: Vec<NamespaceJson>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct NamespaceJson {
    name: String,
}

/// The two kinds of index API 2026-07 serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A legacy vector index: one dense and one sparse vector per record,
    /// read and written through the Vectors API (`/vectors/*`).
    Legacy,
    /// A document index: named fields declared in a schema, read and written
    /// through the Documents API (`/namespaces/{ns}/documents/*`).
    Document,
}

impl Kind {
    /// The `?kind=` value naming it.
    pub fn param(self) -> &'static str {
        match self {
            Kind::Legacy => "legacy",
            Kind::Document => "document",
        }
    }
}

/// The fields of a 2026-07 schema (`{"fields": {name: {...}}}`), if `config`
/// (an `IndexModel` as JSON) carries one.
pub fn schema_fields(config: &Value) -> Option<&Map<String, Value>> {
    config.get("schema")?.get("fields")?.as_object()
}

/// The kind of the index `config` (an `IndexModel` as JSON) describes, when
/// it says: a schema declaring a field of its own (a vector or string field
/// under a name that is not one of the legacy `_values`/`_sparse_values`)
/// makes a document index; a schema of legacy fields only, a
/// `semantic_text` field (a legacy integrated index) or the 2025-10 shape
/// (no schema, a top-level `dimension` or `vector_type`) a legacy one.
/// `None` when the description says neither.
pub fn kind_of(config: &Value) -> Option<Kind> {
    if let Some(fields) = schema_fields(config) {
        let own = fields.iter().any(|(name, f)| {
            !LEGACY_FIELDS.contains(&name.as_str())
                && matches!(
                    f.get("type").and_then(Value::as_str),
                    Some("dense_vector" | "sparse_vector" | "string")
                )
        });
        return Some(if own { Kind::Document } else { Kind::Legacy });
    }
    (config.get("dimension").is_some_and(|d| !d.is_null())
        || config.get("vector_type").is_some_and(|d| !d.is_null()))
    .then_some(Kind::Legacy)
}

pub fn metric_of(m: &str) -> Option<Metric> {
    match m {
        "cosine" => Some(Metric::Cosine),
        "euclidean" => Some(Metric::L2),
        "dotproduct" => Some(Metric::Dot),
        _ => None,
    }
}

pub fn pinecone_metric(m: Metric) -> Option<&'static str> {
    match m {
        Metric::Cosine => Some("cosine"),
        Metric::L2 => Some("euclidean"),
        Metric::Dot => Some("dotproduct"),
        Metric::Manhattan | Metric::Hamming => None,
    }
}

/// Pinecone's index name rule: 1–45 of lower-case letters, digits and `-`.
pub fn valid_index_name(name: &str) -> bool {
    (1..=45).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Every namespace of an index, as the data plane names them, sorted. With
/// `default_as_empty` (legacy vector indexes) `__default__` is `""`, the
/// name the Vectors API takes in bodies.
pub async fn namespaces(data: &HttpClient, default_as_empty: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = "/namespaces?limit=100".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&paginationToken={}", segment(t)));
        }
        let resp = data
            .send(Method::GET, &path, None, "list namespaces", true)
            .await?;
        if resp.status == StatusCode::NOT_FOUND && out.is_empty() {
            // Older servers: the namespaces of describe_index_stats.
            let stats: Value = data
                .call(
                    Method::POST,
                    "/describe_index_stats",
                    Some(json!({})),
                    "describe index stats",
                )
                .await?;
            let mut names: Vec<String> = stats["namespaces"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if default_as_empty {
                for n in &mut names {
                    if n == DEFAULT_NAMESPACE {
                        n.clear();
                    }
                }
            }
            names.sort();
            names.dedup();
            return Ok(names);
        }
        if !resp.status.is_success() {
            return Err(data.fail("list namespaces", &resp));
        }
        let page: Namespaces = decode_json(resp.body, data.base(), "list namespaces").await?;
        out.extend(page.namespaces.into_iter().map(|n| {
            if default_as_empty && n.name == DEFAULT_NAMESPACE {
                String::new()
            } else {
                n.name
            }
        }));
        token = page.pagination.and_then(|p| p.next);
        if token.is_none() {
            out.sort();
            out.dedup();
            return Ok(out);
        }
    }
}

/// A namespace, ids in it, and the cursor after them.
pub type IdPage = (String, Vec<String>, Option<Value>);

/// Where a scan starts: the index of the namespace a cursor names (or of
/// the first one after it, if it is gone), and the cursor's `key` in it.
pub fn start_in(namespaces: &[String], start: Option<&Value>, key: &str) -> (usize, Value) {
    let Some(name) = start.and_then(|c| c["namespace"].as_str()) else {
        return (0, Value::Null);
    };
    match namespaces.binary_search_by(|n| n.as_str().cmp(name)) {
        Ok(i) => (i, start.map(|c| c[key].clone()).unwrap_or_default()),
        Err(i) => (i, Value::Null),
    }
}

/// The cursor after a page: namespace `ns_index` of `namespaces` from
/// `position`, or the start of the next namespace; `None` after the last.
pub fn cursor_at(
    namespaces: &[String],
    ns_index: usize,
    key: &str,
    position: Value,
) -> Option<Value> {
    namespaces
        .get(ns_index)
        .map(|ns| json!({"namespace": ns, key: position}))
}

/// Pages of ids read from a file (one id per line), namespace by namespace:
/// `(namespace, ids, cursor)`. Ids a namespace does not hold are simply not
/// fetched back.
pub fn ids_from_file(
    path: std::path::PathBuf,
    namespaces: Vec<String>,
    start: Option<&Value>,
) -> futures::stream::BoxStream<'static, Result<IdPage>> {
    use futures::stream::{self, StreamExt};
    use std::io::BufRead;
    type Lines = std::io::Lines<std::io::BufReader<std::fs::File>>;
    let open = move || -> Result<Lines> {
        std::fs::File::open(&path)
            .map(|f| std::io::BufReader::new(f).lines())
            .map_err(|e| Error::io(&path, e))
    };
    let (first, line) = start_in(&namespaces, start, "line");
    stream::unfold(
        (first, line.as_u64().unwrap_or(0), None::<Lines>),
        move |(ns_index, mut line_no, lines)| {
            let namespaces = namespaces.clone();
            let open = open.clone();
            async move {
                let ns = namespaces.get(ns_index)?.clone();
                let mut lines = match lines {
                    Some(l) => l,
                    // Resuming inside a namespace: past the lines read before.
                    None => match open() {
                        Ok(mut l) => {
                            for _ in 0..line_no {
                                if l.next().is_none() {
                                    break;
                                }
                            }
                            l
                        }
                        Err(e) => return Some((Err(e), (usize::MAX, 0, None))),
                    },
                };
                let mut ids = Vec::with_capacity(1000);
                while ids.len() < 1000 {
                    match lines.next() {
                        Some(Ok(line)) => {
                            line_no += 1;
                            let id = line.trim_end_matches('\r');
                            if !id.is_empty() {
                                ids.push(id.to_owned());
                            }
                        }
                        Some(Err(e)) => {
                            return Some((
                                Err(Error::InvalidData(format!(
                                    "--ids-from line {}: {e}",
                                    line_no + 1
                                ))),
                                (usize::MAX, 0, None),
                            ));
                        }
                        None => {
                            let cursor = cursor_at(&namespaces, ns_index + 1, "line", json!(0));
                            return Some((Ok((ns, ids, cursor)), (ns_index + 1, 0, None)));
                        }
                    }
                }
                let cursor = cursor_at(&namespaces, ns_index, "line", json!(line_no));
                Some((Ok((ns, ids, cursor)), (ns_index, line_no, Some(lines))))
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        assert!(valid_index_name("docs-2024"));
        for bad in ["", "Docs", "a_b", "-a", "a-", &"x".repeat(46)] {
            assert!(!valid_index_name(bad), "{bad}");
        }
    }

    #[test]
    fn kinds_from_descriptions() {
        let legacy_2026 = json!({"schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 4, "metric": "cosine"}}}});
        let legacy_2025 = json!({"name": "x", "dimension": 4, "metric": "cosine"});
        let sparse_2025 = json!({"name": "x", "vector_type": "sparse"});
        let integrated =
            json!({"schema": {"fields": {"chunk_text": {"type": "semantic_text", "model": "m"}}}});
        let document = json!({"schema": {"fields": {"emb": {"type": "dense_vector", "dimension": 4, "metric": "cosine"}}}});
        let text_only =
            json!({"schema": {"fields": {"body": {"type": "string", "full_text_search": {}}}}});
        assert_eq!(kind_of(&legacy_2026), Some(Kind::Legacy));
        assert_eq!(kind_of(&legacy_2025), Some(Kind::Legacy));
        assert_eq!(kind_of(&sparse_2025), Some(Kind::Legacy));
        assert_eq!(kind_of(&integrated), Some(Kind::Legacy));
        assert_eq!(kind_of(&document), Some(Kind::Document));
        assert_eq!(kind_of(&text_only), Some(Kind::Document));
        assert_eq!(kind_of(&json!({"name": "x"})), None);
        // Chroma's schema is not Pinecone's.
        assert_eq!(kind_of(&json!({"schema": {"defaults": {}}})), None);
    }
}
