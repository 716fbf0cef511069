//! Document indexes (API 2026-07), through the Documents API: a document is
//! `_id` plus named fields; the schema declares the searched ones
//! (`dense_vector`, `sparse_vector`, `string` with full-text search or
//! integrated embedding), every other field is metadata.
//!
//! Export lists each namespace's ids with `POST /namespaces/{ns}/documents/list`
//! (pages of 100) and fetches them with `…/documents/fetch` (every field).
//! Import upserts with `…/documents/upsert`, at most 1,000 documents and
//! 2 MB a request; Pinecone applies upserts asynchronously (202), so the
//! count waits until what was written is listed. See spec/MAPPING.md,
//! "Pinecone document indexes".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::{
    CollectionSpec, IdKind, IndexSettings, Metadata, Metric, Record, RecordId, SparseVector,
    Vector, VectorField, VectorKind,
};

use super::super::http::{HttpClient, decode_json, segment};
use super::super::{BatchLimits, CollectionWriter};
use super::legacy::SparseJson;
use super::wire::{
    self, DEFAULT_NAMESPACE, IdPage, IndexModel, Kind, Pagination, cursor_at, kind_of, metric_of,
    schema_fields, start_in,
};
use super::{MAX_BODY_BYTES, MAX_METADATA_BYTES};

/// The string field (full-text searchable) a record's document goes to in a
/// document index vecport creates, and the one an export reads documents
/// from when the URL names none (`?document_field=`).
pub const DOCUMENT_FIELD: &str = "document";
/// The metadata field holding a record's URI.
pub const URI_FIELD: &str = "vecport_uri";
/// The dense field of a snapshot whose dense field has no usable name.
const DENSE_FIELD: &str = "vector";
/// The sparse field of a snapshot whose sparse field has no usable name.
const SPARSE_FIELD: &str = "sparse";
/// Where an export records which field held the documents, in the raw
/// configuration (`{"vecport": {"document_field": "body"}}`), so that an
/// import into a document index puts them back there.
const RAW_KEY: &str = "vecport";
/// Longest document id, in characters.
const MAX_ID_CHARS: usize = 512;
/// Longest field name, in bytes.
const MAX_FIELD_NAME: usize = 64;
/// Ids per list page (Pinecone's maximum).
const LIST_PAGE: usize = 100;
/// How long the count waits for upserted documents to become visible.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether `name` can name a field of a document: not empty, at most 64
/// bytes, not starting with `_` (system fields) or `$` (filter operators).
pub fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && !name.starts_with('_')
        && !name.starts_with('$')
}

/// How a document's fields map onto a record.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The field of each vector slot of the records, in the spec's order.
    pub vectors: Vec<String>,
    /// The string field holding the record's document.
    pub document: Option<String>,
    /// Declared string fields (full-text or embedded): no 40 KB limit.
    pub text_fields: Vec<String>,
}

impl Layout {
    /// The layout of an export of the index `model` describes, with
    /// `document_field` (the URL's `?document_field=`) as the documents.
    pub fn for_export(
        model: &IndexModel,
        spec: &CollectionSpec,
        document_field: Option<&str>,
    ) -> Layout {
        let config = serde_json::to_value(model).unwrap_or_default();
        let fields = schema_fields(&config).cloned().unwrap_or_default();
        let text_fields = string_fields(&fields);
        let document = document_field
            .map(str::to_owned)
            .or_else(|| text_fields.iter().find(|f| *f == DOCUMENT_FIELD).cloned());
        Layout {
            vectors: schema_names(&fields, spec),
            document,
            text_fields,
        }
    }

    /// The layout of an import of a snapshot described by `spec`: the
    /// schema's own names when the snapshot came from a document index,
    /// else the snapshot's field names where Pinecone takes them.
    pub fn for_import(spec: &CollectionSpec) -> Layout {
        if kind_of(&spec.raw_config) == Some(Kind::Document) {
            let fields = schema_fields(&spec.raw_config).cloned().unwrap_or_default();
            let document = spec.raw_config[RAW_KEY]["document_field"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| Some(DOCUMENT_FIELD.to_owned()));
            return Layout {
                vectors: schema_names(&fields, spec),
                document,
                text_fields: string_fields(&fields),
            };
        }
        let mut vectors: Vec<String> = Vec::new();
        for f in &spec.vectors {
            let fallback = match f.kind {
                VectorKind::Sparse => SPARSE_FIELD,
                _ => DENSE_FIELD,
            };
            let name = if valid_field_name(&f.name) && !vectors.contains(&f.name) {
                f.name.clone()
            } else {
                fallback.to_owned()
            };
            vectors.push(name);
        }
        let documents = spec.content.as_ref().is_none_or(|c| c.documents);
        Layout {
            vectors,
            document: documents.then(|| DOCUMENT_FIELD.to_owned()),
            text_fields: if documents {
                vec![DOCUMENT_FIELD.to_owned()]
            } else {
                Vec::new()
            },
        }
    }

    /// The schema fields a new index gets for a snapshot of `spec`.
    pub fn schema(&self, spec: &CollectionSpec) -> Map<String, Value> {
        if kind_of(&spec.raw_config) == Some(Kind::Document) {
            // The source's declaration, less what describe returns but
            // create refuses (response-only types, nulls, `filterable` on a
            // search field).
            let mut out = Map::new();
            for (name, f) in schema_fields(&spec.raw_config).into_iter().flatten() {
                let ty = f.get("type").and_then(Value::as_str);
                let keep: &[&str] = match ty {
                    Some("dense_vector") => &["type", "dimension", "metric", "description"],
                    Some("sparse_vector") => &["type", "description"],
                    Some("string") => &[
                        "type",
                        "description",
                        "full_text_search",
                        "embed",
                        "sparse_embed",
                        "store_text",
                    ],
                    _ => continue,
                };
                let field: Map<String, Value> = f
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| keep.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), strip_nulls(v)))
                    .collect();
                out.insert(name.clone(), Value::Object(field));
            }
            return out;
        }
        let mut out = Map::new();
        for (f, name) in spec.vectors.iter().zip(&self.vectors) {
            let field = match f.kind {
                VectorKind::Sparse => json!({"type": "sparse_vector"}),
                _ => {
                    let metric = f.metric.and_then(wire::pinecone_metric).unwrap_or("cosine");
                    json!({"type": "dense_vector", "dimension": f.dimension, "metric": metric})
                }
            };
            out.insert(name.clone(), field);
        }
        if let Some(d) = &self.document {
            out.insert(d.clone(), json!({"type": "string", "full_text_search": {}}));
        }
        out
    }

    /// Every field name the layout gives a meaning of its own.
    fn reserved(&self) -> impl Iterator<Item = &str> {
        self.vectors
            .iter()
            .map(String::as_str)
            .chain(self.document.as_deref())
            .chain([URI_FIELD])
    }
}

/// The schema's field of each of `spec`'s vector slots: an index has at most
/// one dense and one sparse field, which the snapshot calls `""` and
/// `sparse`.
fn schema_names(fields: &Map<String, Value>, spec: &CollectionSpec) -> Vec<String> {
    let first = |ty: &str| {
        let mut names: Vec<&String> = fields
            .iter()
            .filter(|(_, f)| f.get("type").and_then(Value::as_str) == Some(ty))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names.first().map(|n| (*n).clone())
    };
    spec.vectors
        .iter()
        .map(|f| {
            let ty = match f.kind {
                VectorKind::Sparse => "sparse_vector",
                _ => "dense_vector",
            };
            first(ty).unwrap_or_else(|| f.name.clone())
        })
        .collect()
}

/// `fields` named as a snapshot of a document index names them: the dense
/// field `""`, the sparse field `sparse`.
pub fn snapshot_names(fields: &[VectorField]) -> Vec<VectorField> {
    fields
        .iter()
        .map(|f| VectorField {
            name: match f.kind {
                VectorKind::Sparse => SPARSE_FIELD.to_owned(),
                _ => String::new(),
            },
            ..f.clone()
        })
        .collect()
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The declared string fields of a schema, sorted.
fn string_fields(fields: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = fields
        .iter()
        .filter(|(_, f)| f.get("type").and_then(Value::as_str) == Some("string"))
        .map(|(n, _)| n.clone())
        .collect();
    out.sort();
    out
}

/// The first dense field of a document index's schema: name, dimension,
/// metric.
pub fn dense_field(model: &IndexModel) -> Option<(String, Option<u32>, Option<Metric>)> {
    let config = serde_json::to_value(model).ok()?;
    let fields = schema_fields(&config)?;
    let mut dense: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(_, f)| f.get("type").and_then(Value::as_str) == Some("dense_vector"))
        .collect();
    dense.sort_by(|a, b| a.0.cmp(b.0));
    dense.first().map(|(n, f)| {
        (
            (*n).clone(),
            f.get("dimension")
                .and_then(Value::as_u64)
                .and_then(|d| u32::try_from(d).ok()),
            f.get("metric").and_then(Value::as_str).and_then(metric_of),
        )
    })
}

/// What a text field's search settings say, for the manifest's notes.
fn describe_text_field(name: &str, f: &Value) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(fts) = f.get("full_text_search").filter(|v| v.is_object()) {
        let flag = |k: &str| match fts.get(k).and_then(Value::as_bool) {
            Some(true) => "on",
            _ => "off",
        };
        let ngram = match fts.get("ngram").filter(|v| v.is_object()) {
            Some(n) => format!(
                "{}–{}{}",
                n["min_gram"],
                n["max_gram"],
                if n["prefix_only"].as_bool() == Some(true) {
                    ", prefix only"
                } else {
                    ""
                }
            ),
            None => "none".to_owned(),
        };
        notes.push(format!(
            "pinecone full-text field {name:?}: language {}, stemming {}, stop words {}, n-grams {ngram} (kept in the raw configuration and recreated by an import into a pinecone document index)",
            fts.get("language").and_then(Value::as_str).unwrap_or("en"),
            flag("stemming"),
            flag("stop_words"),
        ));
    }
    for (key, what) in [("embed", "dense"), ("sparse_embed", "sparse")] {
        if let Some(e) = f.get(key).filter(|v| v.is_object()) {
            let model = e
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("the default model");
            let mut shape = String::new();
            if let Some(d) = e.get("dimension").and_then(Value::as_u64) {
                shape.push_str(&format!(", dimension {d}"));
            }
            if let Some(m) = e.get("metric").and_then(Value::as_str) {
                shape.push_str(&format!(", metric {m}"));
            }
            notes.push(format!(
                "pinecone field {name:?} is embedded by pinecone's hosted {what} model {model:?}{shape}: pinecone does not return those vectors, so the snapshot holds the field's text and not its vectors (an import into a pinecone document index embeds the text again with the same model)"
            ));
        }
    }
    notes
}

/// The collection a document index is, with `count` records.
pub fn spec_of(
    model: &IndexModel,
    count: Option<u64>,
    document_field: Option<&str>,
) -> Result<CollectionSpec> {
    let mut config = serde_json::to_value(model).unwrap_or_default();
    let fields = schema_fields(&config).cloned().unwrap_or_default();
    let deployment = config.get("deployment").cloned().unwrap_or(Value::Null);
    let index = IndexSettings {
        kind: deployment
            .get("deployment_type")
            .and_then(Value::as_str)
            .map_or(
                "serverless",
                |t| if t == "managed" { "serverless" } else { t },
            )
            .to_owned(),
        extra: deployment.as_object().cloned().unwrap_or_default(),
        ..IndexSettings::default()
    };
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort();
    let mut dense = Vec::new();
    let mut sparse = Vec::new();
    let mut notes = Vec::new();
    for name in names {
        let f = &fields[name];
        match f.get("type").and_then(Value::as_str) {
            Some("dense_vector") => dense.push(VectorField {
                name: String::new(),
                index: Some(index.clone()),
                ..VectorField::dense(
                    f.get("dimension")
                        .and_then(Value::as_u64)
                        .and_then(|d| u32::try_from(d).ok()),
                    f.get("metric").and_then(Value::as_str).and_then(metric_of),
                )
            }),
            Some("sparse_vector") => sparse.push(VectorField {
                name: SPARSE_FIELD.to_owned(),
                kind: VectorKind::Sparse,
                metric: Some(Metric::Dot),
                ..VectorField::dense(None, None)
            }),
            Some("string") => notes.extend(describe_text_field(name, f)),
            _ => {}
        }
    }
    if let Some(d) = document_field {
        match fields
            .get(d)
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
        {
            None | Some("string") => {}
            Some(other) => {
                return Err(Error::Usage(format!(
                    "?document_field={d}: the index's field {d:?} is a {other} field; name a string field"
                )));
            }
        }
    }
    let document = document_field.map(str::to_owned).or_else(|| {
        string_fields(&fields)
            .into_iter()
            .find(|f| f == DOCUMENT_FIELD)
    });
    if let Some(d) = &document {
        notes.push(format!(
            "the snapshot's documents are the pinecone field {d:?}"
        ));
        config[RAW_KEY] = json!({"document_field": d});
    }
    let named: Vec<String> = fields
        .iter()
        .filter_map(|(n, f)| match f.get("type").and_then(Value::as_str) {
            Some("dense_vector") => Some(format!(
                "the dense field {n:?} is the snapshot's unnamed vector field"
            )),
            Some("sparse_vector") => Some(format!(
                "the sparse field {n:?} is the snapshot's field {SPARSE_FIELD:?}"
            )),
            _ => None,
        })
        .collect();
    if !named.is_empty() {
        notes.push(format!(
            "pinecone document index: {} (the names are kept in the raw configuration and restored by an import into a pinecone document index)",
            named.join("; ")
        ));
    }
    dense.extend(sparse);
    Ok(CollectionSpec {
        name: model.name.clone(),
        id_kind: Some(IdKind::String),
        vectors: dense,
        raw_config: config,
        collection_metadata: model.tags.clone().filter(|t| !t.is_empty()),
        count_hint: count,
        notes,
        content: None,
    })
}

#[derive(Debug, Deserialize)]
struct ListedDocuments {
    #[serde(default)]
    documents: Vec<ListedDocument>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct ListedDocument {
    #[serde(rename = "_id")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct FetchedDocuments {
    #[serde(default)]
    documents: Map<String, Value>,
}

/// The path of a Documents API call on namespace `ns`.
fn path(ns: &str, verb: &str) -> String {
    format!("/namespaces/{}/documents/{verb}", segment(ns))
}

/// One page of ids of namespace `ns` after `token`, and the next token.
async fn list_ids(
    data: &HttpClient,
    ns: &str,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    let mut body = json!({"limit": LIST_PAGE});
    if let Some(t) = token {
        body["pagination_token"] = json!(t);
    }
    let page: ListedDocuments = data
        .call(
            Method::POST,
            &path(ns, "list"),
            Some(body),
            "list documents",
        )
        .await?;
    Ok((
        page.documents.into_iter().map(|d| d.id).collect(),
        page.pagination.and_then(|p| p.next),
    ))
}

/// Pages of ids listed by the index, namespace by namespace, from `start`.
pub fn listed_ids(
    data: Arc<HttpClient>,
    namespaces: Vec<String>,
    start: Option<&Value>,
) -> BoxStream<'static, Result<IdPage>> {
    let (first, token) = start_in(&namespaces, start, "token");
    let token = token.as_str().map(str::to_owned);
    stream::unfold(Some((first, token)), move |state| {
        let data = data.clone();
        let namespaces = namespaces.clone();
        async move {
            let (ns_index, token) = state?;
            let ns = namespaces.get(ns_index)?.clone();
            match list_ids(&data, &ns, token.as_deref()).await {
                Err(e) => Some((Err(e), None)),
                Ok((ids, next)) => {
                    let (i, t) = match &next {
                        Some(t) => (ns_index, Some(t.clone())),
                        None => (ns_index + 1, None),
                    };
                    let cursor = cursor_at(&namespaces, i, "token", json!(t));
                    Some((Ok((ns, ids, cursor)), Some((i, t))))
                }
            }
        }
    })
    .boxed()
}

/// The records of `ids` in namespace `ns`, fetched with every field; ids
/// deleted since they were listed are simply absent.
pub async fn fetch(
    data: &HttpClient,
    ns: &str,
    ids: Vec<String>,
    layout: Arc<Layout>,
    kinds: Arc<Vec<VectorKind>>,
) -> Result<Vec<Record>> {
    let mut out = Vec::with_capacity(ids.len());
    for group in ids.chunks(1000) {
        let resp = data
            .send(
                Method::POST,
                &path(ns, "fetch"),
                Some(json!({"ids": group}).to_string().into_bytes()),
                "fetch documents",
                true,
            )
            .await?;
        if !resp.status.is_success() {
            return Err(data.fail("fetch documents", &resp));
        }
        let endpoint = data.base().to_owned();
        let namespace = (ns != DEFAULT_NAMESPACE).then(|| ns.to_owned());
        let group = group.to_vec();
        let (layout, kinds) = (layout.clone(), kinds.clone());
        let records = tokio::task::spawn_blocking(move || -> Result<Vec<Record>> {
            let protocol = |message: String| Error::Protocol {
                endpoint: endpoint.clone(),
                operation: "fetch documents".into(),
                message,
            };
            let mut fetched: FetchedDocuments = serde_json::from_slice(&resp.body)
                .map_err(|e| protocol(format!("invalid JSON: {e}")))?;
            let mut records = Vec::with_capacity(group.len());
            for id in group {
                let Some(doc) = fetched.documents.remove(&id) else {
                    continue;
                };
                let Value::Object(doc) = doc else {
                    return Err(protocol(format!("document {id:?} is not an object")));
                };
                let record = to_record(id.clone(), namespace.clone(), doc, &layout, &kinds)
                    .map_err(|e| protocol(format!("document {id:?}: {e}")))?;
                records.push(record);
            }
            Ok(records)
        })
        .await
        .map_err(|e| Error::internal("decoding pinecone documents", e))??;
        out.extend(records);
    }
    Ok(out)
}

/// A fetched document as a record.
fn to_record(
    id: String,
    namespace: Option<String>,
    mut doc: Map<String, Value>,
    layout: &Layout,
    kinds: &[VectorKind],
) -> std::result::Result<Record, String> {
    doc.remove("_id");
    doc.remove("_score");
    let mut vectors = vec![None; kinds.len()];
    for ((name, kind), slot) in layout.vectors.iter().zip(kinds).zip(&mut vectors) {
        let Some(v) = doc.remove(name) else { continue };
        *slot = Some(match kind {
            VectorKind::Sparse => {
                let s: SparseJson = serde_json::from_value(v)
                    .map_err(|e| format!("field {name:?} is not a sparse vector: {e}"))?;
                Vector::Sparse(SparseVector {
                    indices: s.indices,
                    values: s.values,
                })
            }
            _ => Vector::Dense(
                serde_json::from_value::<Vec<f32>>(v)
                    .map_err(|e| format!("field {name:?} is not a dense vector: {e}"))?,
            ),
        });
    }
    let text = |field: &str, v: Value| match v {
        Value::String(s) => Ok(s),
        other => Err(format!("field {field:?} is not a string but {other}")),
    };
    let document = match layout.document.as_deref() {
        Some(f) => doc.remove(f).map(|v| text(f, v)).transpose()?,
        None => None,
    };
    let uri = doc
        .remove(URI_FIELD)
        .map(|v| text(URI_FIELD, v))
        .transpose()?;
    Ok(Record {
        id: RecordId::String(id),
        namespace,
        vectors,
        metadata: (!doc.is_empty()).then_some(doc),
        document,
        uri,
    })
}

/// Checks that a document index of `layout` takes `record` as it is: the
/// Documents API refuses a whole request when one document breaks a rule.
pub fn check(spec: &CollectionSpec, layout: &Layout, record: &Record) -> Result<()> {
    let id = record.id.to_string();
    let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
    super::super::check_request_size("pinecone", record, MAX_BODY_BYTES)?;
    if id.is_empty()
        || id.chars().count() > MAX_ID_CHARS
        || !id.chars().all(|c| ('\u{1}'..='\u{7f}').contains(&c))
    {
        return bad(
            "pinecone document ids are 1 to 512 ASCII characters without NUL; import into a legacy vector index (?kind=legacy), which takes this id".into(),
        );
    }
    for ((f, v), name) in spec
        .vectors
        .iter()
        .zip(&record.vectors)
        .zip(&layout.vectors)
    {
        match (f.kind, v) {
            (VectorKind::Dense, None) => {
                return bad(format!(
                    "has no dense values; every document of the pinecone document index needs its {name:?} field"
                ));
            }
            (VectorKind::Dense, Some(Vector::Dense(d))) => {
                if d.iter().all(|x| *x == 0.0) {
                    return bad("its dense vector is all zeros, which pinecone refuses".into());
                }
                if d.iter().any(|x| !x.is_finite()) {
                    return bad("its dense vector has NaN or infinite values".into());
                }
            }
            (VectorKind::Sparse, Some(Vector::Sparse(s))) => {
                if s.indices.len() > 1000 {
                    return bad(format!(
                        "its sparse vector has {} non-zeros, over pinecone's 1,000",
                        s.indices.len()
                    ));
                }
                if s.values.iter().any(|x| !x.is_finite()) {
                    return bad("its sparse vector has NaN or infinite values".into());
                }
            }
            _ => {}
        }
    }
    let mut size_counted = Map::new();
    for (key, value) in record.metadata.iter().flatten() {
        if key.starts_with('_') || key.starts_with('$') {
            return bad(format!(
                "metadata key {key:?} starts with `{}`, which pinecone document indexes reserve; rename the key, or import into a legacy vector index (?kind=legacy)",
                &key[..1]
            ));
        }
        if key.is_empty() {
            return bad("has an empty metadata key, which pinecone refuses".into());
        }
        if layout.reserved().any(|r| r == key) {
            return bad(format!(
                "metadata key {key:?} is also the name of a field the document index gives a meaning of its own (vectors, document, URI); rename the key"
            ));
        }
        if !layout.text_fields.contains(key) {
            size_counted.insert(key.clone(), value.clone());
        }
    }
    if let Some(u) = &record.uri {
        size_counted.insert(URI_FIELD.into(), json!(u));
    }
    let size = serde_json::to_vec(&size_counted).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return bad(format!(
            "metadata is {size} bytes, over pinecone's 40 KB per document (declared text fields not counted)"
        ));
    }
    Ok(())
}

/// Writes documents into a document index.
pub struct DocumentWriter {
    pub data: HttpClient,
    pub layout: Layout,
    pub kinds: Vec<VectorKind>,
    /// Documents upserted by this writer (each accepted by the server).
    pub written: AtomicU64,
    pub created: Option<super::Created>,
}

/// A vector value of a document.
enum FieldValue {
    Dense(Vec<f32>),
    Sparse(SparseJson),
}

/// A document as it is sent: `_id`, the vector fields, the document, the
/// URI and the metadata, all at the top level. Vectors are written as f32
/// (their shortest round-trip text), not widened to f64.
struct DocumentOut<'a> {
    id: String,
    vectors: Vec<(&'a str, FieldValue)>,
    document: Option<(&'a str, String)>,
    uri: Option<String>,
    metadata: Option<Metadata>,
}

impl Serialize for DocumentOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("_id", &self.id)?;
        for (name, v) in &self.vectors {
            match v {
                FieldValue::Dense(d) => m.serialize_entry(name, d)?,
                FieldValue::Sparse(sp) => m.serialize_entry(name, sp)?,
            }
        }
        if let Some((name, text)) = &self.document {
            m.serialize_entry(name, text)?;
        }
        if let Some(u) = &self.uri {
            m.serialize_entry(URI_FIELD, u)?;
        }
        for (k, v) in self.metadata.iter().flatten() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[async_trait]
impl CollectionWriter for DocumentWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: 1000,
            max_bytes: MAX_BODY_BYTES,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        let mut by_namespace: Vec<(String, Vec<Record>)> = Vec::new();
        for r in records {
            let ns = r
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
            match by_namespace.iter_mut().find(|(n, _)| *n == ns) {
                Some((_, list)) => list.push(r),
                None => by_namespace.push((ns, vec![r])),
            }
        }
        for (ns, records) in by_namespace {
            let n = records.len() as u64;
            let layout = self.layout.clone();
            let kinds = self.kinds.clone();
            let mut body = self.data.body_buffer();
            let body = tokio::task::spawn_blocking(move || {
                let documents: Vec<DocumentOut<'_>> = records
                    .into_iter()
                    .map(|r| DocumentOut {
                        id: r.id.to_string(),
                        vectors: r
                            .vectors
                            .into_iter()
                            .zip(&layout.vectors)
                            .zip(&kinds)
                            .filter_map(|((v, name), _)| match v {
                                Some(Vector::Dense(d)) => {
                                    Some((name.as_str(), FieldValue::Dense(d)))
                                }
                                Some(Vector::Sparse(s)) if !s.indices.is_empty() => Some((
                                    name.as_str(),
                                    FieldValue::Sparse(SparseJson {
                                        indices: s.indices,
                                        values: s.values,
                                    }),
                                )),
                                _ => None,
                            })
                            .collect(),
                        document: match (&layout.document, r.document) {
                            (Some(f), Some(d)) => Some((f.as_str(), d)),
                            _ => None,
                        },
                        uri: r.uri,
                        metadata: r.metadata,
                    })
                    .collect();
                #[derive(serde::Serialize)]
                struct Upsert<'a> {
                    documents: Vec<DocumentOut<'a>>,
                }
                serde_json::to_writer(&mut body, &Upsert { documents }).map(|()| body)
            })
            .await
            .map_err(|e| Error::internal("encoding pinecone documents", e))?
            .map_err(|e| Error::InvalidData(format!("cannot encode documents: {e}")))?;
            let resp = self
                .data
                .send(
                    Method::POST,
                    &path(&ns, "upsert"),
                    Some(body),
                    "upsert documents",
                    true,
                )
                .await?;
            if !resp.status.is_success() {
                return Err(self.data.fail("upsert documents", &resp));
            }
            self.written.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        // Upserts are applied asynchronously: wait until at least what this
        // run wrote is listed, then count exactly by listing ids.
        let written = self.written.load(Ordering::Relaxed);
        let started = Instant::now();
        loop {
            let total = count_listed(&self.data).await?;
            if total >= written || started.elapsed() > VISIBLE_TIMEOUT {
                return Ok(total);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn discard(&self) -> Result<bool> {
        super::discard(self.created.as_ref()).await
    }

    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Documents listed in every namespace.
async fn count_listed(data: &HttpClient) -> Result<u64> {
    let mut total = 0u64;
    for ns in wire::namespaces(data, false).await? {
        let mut token: Option<String> = None;
        loop {
            let (ids, next) = list_ids(data, &ns, token.as_deref()).await?;
            total += ids.len() as u64;
            token = next;
            if token.is_none() {
                break;
            }
        }
    }
    Ok(total)
}

/// The ids of the `k` documents of namespace `ns` nearest to `vector` in
/// the dense field `field`.
pub async fn search(
    data: &HttpClient,
    field: &str,
    vector: &[f32],
    k: usize,
    ns: &str,
) -> Result<Vec<RecordId>> {
    #[derive(serde::Serialize)]
    struct Clause<'a> {
        r#type: &'static str,
        field: &'a str,
        values: &'a [f32],
    }
    #[derive(serde::Serialize)]
    struct Search<'a> {
        score_by: [Clause<'a>; 1],
        top_k: usize,
    }
    let body = serde_json::to_vec(&Search {
        score_by: [Clause {
            r#type: "dense_vector",
            field,
            values: vector,
        }],
        top_k: k,
    })
    .map_err(|e| Error::InvalidData(format!("cannot encode a pinecone search: {e}")))?;
    let resp = data
        .send(
            Method::POST,
            &path(ns, "search"),
            Some(body),
            "search documents",
            true,
        )
        .await?;
    if !resp.status.is_success() {
        return Err(data.fail("search documents", &resp));
    }
    let answer: Value = decode_json(resp.body, data.base(), "search documents").await?;
    Ok(answer["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["_id"].as_str().map(|s| RecordId::String(s.to_owned())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vectors: Vec<VectorField>, raw: Value) -> CollectionSpec {
        CollectionSpec {
            name: "c".into(),
            id_kind: None,
            vectors,
            raw_config: raw,
            collection_metadata: None,
            count_hint: None,
            notes: Vec::new(),
            content: None,
        }
    }

    #[test]
    fn field_names() {
        assert!(valid_field_name("body"));
        for bad in ["", "_id", "$x", &"x".repeat(65)] {
            assert!(!valid_field_name(bad), "{bad}");
        }
    }

    #[test]
    fn import_layout_of_another_database() {
        let s = spec(
            vec![
                VectorField::dense(Some(4), Some(Metric::Cosine)),
                VectorField {
                    name: "_sparse".into(),
                    kind: VectorKind::Sparse,
                    ..VectorField::dense(None, None)
                },
            ],
            json!({}),
        );
        let l = Layout::for_import(&s);
        assert_eq!(l.vectors, ["vector", "sparse"]);
        assert_eq!(l.document.as_deref(), Some(DOCUMENT_FIELD));
        let schema = l.schema(&s);
        assert_eq!(
            Value::Object(schema),
            json!({
                "vector": {"type": "dense_vector", "dimension": 4, "metric": "cosine"},
                "sparse": {"type": "sparse_vector"},
                "document": {"type": "string", "full_text_search": {}},
            })
        );
    }

    #[test]
    fn import_layout_of_a_document_index_keeps_its_schema() {
        let raw = json!({
            "schema": {"fields": {
                "emb": {"type": "dense_vector", "dimension": 4, "metric": "dotproduct", "description": null},
                "body": {"type": "string", "full_text_search": {"language": "en", "stemming": true, "stop_words": false, "ngram": null}, "store_text": true, "filterable": false},
                "year": {"type": "float", "filterable": true},
            }},
            "vecport": {"document_field": "body"},
        });
        let s = spec(
            vec![VectorField {
                name: "emb".into(),
                ..VectorField::dense(Some(4), Some(Metric::Dot))
            }],
            raw,
        );
        let l = Layout::for_import(&s);
        assert_eq!(l.vectors, ["emb"]);
        assert_eq!(l.document.as_deref(), Some("body"));
        assert_eq!(
            Value::Object(l.schema(&s)),
            json!({
                "emb": {"type": "dense_vector", "dimension": 4, "metric": "dotproduct"},
                "body": {"type": "string", "full_text_search": {"language": "en", "stemming": true, "stop_words": false}, "store_text": true},
            })
        );
    }

    #[test]
    fn export_spec_of_a_document_index() {
        let model: IndexModel = serde_json::from_value(json!({
            "name": "docs",
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "schema": {"fields": {
                "emb": {"type": "dense_vector", "dimension": 4, "metric": "euclidean"},
                "kw": {"type": "sparse_vector"},
                "body": {"type": "string", "full_text_search": {"language": "de", "stemming": true, "stop_words": false, "ngram": null}},
                "summary": {"type": "string", "embed": {"model": "llama-text-embed-v2", "dimension": 1024, "metric": "cosine"}},
            }},
        }))
        .unwrap();
        let spec = spec_of(&model, Some(3), Some("body")).unwrap();
        let fields: Vec<(&str, VectorKind, Option<u32>, Option<Metric>)> = spec
            .vectors
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.dimension, f.metric))
            .collect();
        assert_eq!(
            fields,
            [
                ("", VectorKind::Dense, Some(4), Some(Metric::L2)),
                ("sparse", VectorKind::Sparse, None, Some(Metric::Dot)),
            ]
        );
        assert_eq!(spec.vectors[0].index.as_ref().unwrap().kind, "serverless");
        let notes = spec.notes.join("\n");
        assert!(
            notes.contains("\"body\": language de, stemming on, stop words off, n-grams none"),
            "{notes}"
        );
        // Vectors of a hosted model are named, and not invented.
        assert!(notes.contains("\"summary\" is embedded by pinecone's hosted dense model \"llama-text-embed-v2\", dimension 1024, metric cosine"), "{notes}");
        assert!(notes.contains("does not return those vectors"), "{notes}");
        assert_eq!(spec.raw_config["vecport"]["document_field"], "body");
        let layout = Layout::for_export(&model, &spec, Some("body"));
        assert_eq!(layout.vectors, ["emb", "kw"]);
        assert_eq!(layout.text_fields, ["body", "summary"]);
        // A document field that is not a string is refused.
        assert!(spec_of(&model, None, Some("emb")).is_err());
    }

    #[test]
    fn documents_rules() {
        let s = spec(
            vec![VectorField::dense(Some(2), Some(Metric::Cosine))],
            json!({}),
        );
        let l = Layout::for_import(&s);
        let record = |id: &str, md: Value| Record {
            id: RecordId::String(id.into()),
            namespace: None,
            vectors: vec![Some(Vector::Dense(vec![1.0, 0.5]))],
            metadata: md.as_object().cloned(),
            document: None,
            uri: None,
        };
        assert!(check(&s, &l, &record("a-1", json!({"k": 1}))).is_ok());
        let refused = |r: Record| check(&s, &l, &r).unwrap_err().to_string();
        assert!(refused(record("é", json!({}))).contains("ASCII"));
        assert!(refused(record("", json!({}))).contains("ASCII"));
        assert!(refused(record("a", json!({"_k": 1}))).contains("reserve"));
        assert!(refused(record("a", json!({"$k": 1}))).contains("reserve"));
        assert!(refused(record("a", json!({"vector": 1}))).contains("rename"));
        assert!(refused(record("a", json!({"t": "x".repeat(41_000)}))).contains("40 KB"));
        // Declared text fields do not count against the 40 KB.
        let mut with_doc = record("a", json!({}));
        with_doc.document = Some("x".repeat(100_000));
        assert!(check(&s, &l, &with_doc).is_ok());
    }

    #[test]
    fn documents_map_to_records_and_back() {
        let layout = Layout {
            vectors: vec!["emb".into(), "kw".into()],
            document: Some("body".into()),
            text_fields: vec!["body".into()],
        };
        let doc = json!({"_id": "d1", "emb": [0.5, 1.0], "kw": {"indices": [3], "values": [0.25]},
            "body": "text", "vecport_uri": "s3://x", "year": 2024, "tags": ["a"]});
        let r = to_record(
            "d1".into(),
            None,
            doc.as_object().cloned().unwrap(),
            &layout,
            &[VectorKind::Dense, VectorKind::Sparse],
        )
        .unwrap();
        assert_eq!(r.document.as_deref(), Some("text"));
        assert_eq!(r.uri.as_deref(), Some("s3://x"));
        assert_eq!(
            Value::Object(r.metadata.clone().unwrap()),
            json!({"year": 2024, "tags": ["a"]})
        );
        let out = DocumentOut {
            id: "d1".into(),
            vectors: vec![
                ("emb", FieldValue::Dense(vec![0.5, 1.0])),
                (
                    "kw",
                    FieldValue::Sparse(SparseJson {
                        indices: vec![3],
                        values: vec![0.25],
                    }),
                ),
            ],
            document: Some(("body", "text".into())),
            uri: Some("s3://x".into()),
            metadata: r.metadata,
        };
        assert_eq!(serde_json::to_value(&out).unwrap(), doc);
    }
}
