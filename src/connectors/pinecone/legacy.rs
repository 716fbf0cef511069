//! Legacy vector indexes, through the Vectors API: ids listed with
//! `GET /vectors/list` and fetched in groups bounded by count and URL length
//! (serverless only: pod indexes cannot list ids), records upserted per
//! namespace with `POST /vectors/upsert` in requests of at most 1,000
//! records and 2 MB. A record's document and URI travel in reserved
//! metadata keys, as Pinecone has no place for them.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::mapping::{Arrays, Integers, MetadataRules};
use crate::model::{
    CollectionSpec, IdKind, IndexSettings, Metadata, Metric, Record, RecordId, SparseVector,
    Vector, VectorField, VectorKind,
};

use super::super::http::{HttpClient, decode_json, segment};
use super::super::{BatchLimits, CollectionWriter};
use super::wire::{self, IdPage, IndexModel, Pagination, cursor_at, metric_of, start_in};
use super::{DOCUMENT_KEY, MAX_BODY_BYTES, MAX_METADATA_BYTES, SPARSE_FIELD, URI_KEY};

/// Longest query string of one fetch.
const MAX_FETCH_QUERY: usize = 8_000;

#[derive(Debug, Deserialize)]
struct ListIds {
    #[serde(default)]
    vectors: Vec<ListedId>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct ListedId {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Fetched {
    #[serde(default)]
    vectors: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct FetchedVector {
    #[serde(default)]
    values: Vec<f32>,
    #[serde(default, rename = "sparseValues")]
    sparse_values: Option<SparseJson>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize, Serialize)]
pub(super) struct SparseJson {
    pub(super) indices: Vec<u32>,
    pub(super) values: Vec<f32>,
}

pub(super) async fn list_ids(
    data: &HttpClient,
    namespace: &str,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    let mut path = format!("/vectors/list?namespace={}&limit=100", segment(namespace));
    if let Some(t) = token {
        path.push_str(&format!("&paginationToken={}", segment(t)));
    }
    let resp = data
        .send(Method::GET, &path, None, "list ids", true)
        .await?;
    if !resp.status.is_success() {
        if resp.status == StatusCode::BAD_REQUEST
            || resp.status == StatusCode::NOT_FOUND
            || resp.status == StatusCode::NOT_IMPLEMENTED
        {
            return Err(Error::not_supported(
                "pinecone",
                format!(
                    "listing the ids of this index ({}): pod-based indexes cannot list ids, so vecport cannot prove an export complete; give the ids with `--ids-from FILE` (one per line; every namespace is searched for each), or export a serverless copy of the index",
                    resp.text_excerpt()
                ),
            ));
        }
        return Err(data.fail("list ids", &resp));
    }
    let page: ListIds = decode_json(resp.body, data.base(), "list ids").await?;
    Ok((
        page.vectors.into_iter().map(|v| v.id).collect(),
        page.pagination.and_then(|p| p.next),
    ))
}

pub(super) async fn fetch(
    data: &HttpClient,
    namespace: &str,
    ids: Vec<String>,
    sparse_slot: Option<usize>,
    slots: usize,
) -> Result<Vec<Record>> {
    let mut query = format!("namespace={}", segment(namespace));
    for id in &ids {
        query.push_str("&ids=");
        query.push_str(&segment(id));
    }
    let resp = data
        .send(
            Method::GET,
            &format!("/vectors/fetch?{query}"),
            None,
            "fetch",
            true,
        )
        .await?;
    if !resp.status.is_success() {
        return Err(data.fail("fetch", &resp));
    }
    let endpoint = data.base().to_owned();
    let ns = (!namespace.is_empty()).then(|| namespace.to_owned());
    tokio::task::spawn_blocking(move || -> Result<Vec<Record>> {
        let protocol = |message: String| Error::Protocol {
            endpoint: endpoint.clone(),
            operation: "fetch".into(),
            message,
        };
        let mut fetched: Fetched = serde_json::from_slice(&resp.body)
            .map_err(|e| protocol(format!("invalid JSON: {e}")))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // Ids deleted since they were listed are simply absent.
            let Some(v) = fetched.vectors.remove(&id) else {
                continue;
            };
            let v: FetchedVector =
                serde_json::from_value(v).map_err(|e| protocol(format!("vector {id:?}: {e}")))?;
            let mut vectors = vec![None; slots];
            if !v.values.is_empty()
                && let Some(slot) = (0..slots).find(|i| Some(*i) != sparse_slot)
            {
                vectors[slot] = Some(Vector::Dense(v.values));
            }
            if v.sparse_values.is_some() && sparse_slot.is_none() {
                // Never drop data silently.
                return Err(protocol(format!(
                    "vector {id:?} has sparse values, which this index's metric does not allow"
                )));
            }
            if let (Some(s), Some(slot)) = (v.sparse_values, sparse_slot) {
                vectors[slot] = Some(Vector::Sparse(SparseVector {
                    indices: s.indices,
                    values: s.values,
                }));
            }
            let mut metadata = v.metadata.unwrap_or_default();
            let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
            let document = text(metadata.shift_remove(DOCUMENT_KEY));
            let uri = text(metadata.shift_remove(URI_KEY));
            out.push(Record {
                id: RecordId::String(id),
                namespace: ns.clone(),
                vectors,
                metadata: (!metadata.is_empty()).then_some(metadata),
                document,
                uri,
            });
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::internal("decoding pinecone records", e))?
}

pub(super) fn spec_of(model: &IndexModel, count: Option<u64>) -> CollectionSpec {
    let metric = model.metric.as_deref().and_then(metric_of);
    let mut vectors = Vec::new();
    let kind = if model.spec.get("pod").is_some() {
        "pod"
    } else {
        "serverless"
    };
    let index = IndexSettings {
        kind: kind.into(),
        extra: model
            .spec
            .get(kind)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        ..IndexSettings::default()
    };
    if model.vector_type.as_deref() != Some("sparse") {
        let mut dense = VectorField::dense(model.dimension, metric);
        dense.index = Some(index.clone());
        vectors.push(dense);
    }
    // Every index may hold sparse values (dense ones alongside their dense
    // values); a field without values is left out on import where the
    // target has no sparse vectors.
    {
        vectors.push(VectorField {
            name: SPARSE_FIELD.into(),
            kind: VectorKind::Sparse,
            dimension: None,
            metric: Some(Metric::Dot),
            index: (model.vector_type.as_deref() == Some("sparse")).then_some(index),
            ..VectorField::dense(None, None)
        });
    }
    CollectionSpec {
        name: model.name.clone(),
        id_kind: Some(IdKind::String),
        vectors,
        raw_config: serde_json::to_value(model).unwrap_or_default(),
        collection_metadata: model.tags.clone().filter(|t| !t.is_empty()),
        count_hint: count,
        notes: Vec::new(),
        content: None,
    }
}

/// Pages of ids listed by the index, namespace by namespace, from `start`
/// (a cursor of an earlier page).
pub(super) fn listed_ids(
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

/// Splits ids into fetch requests of at most 1,000 ids and a bounded URL.
pub(super) fn fetch_groups(ids: Vec<String>) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut len = 0;
    for id in ids {
        let l = segment(&id).len() + 5;
        if !current.is_empty() && (current.len() == 1000 || len + l > MAX_FETCH_QUERY) {
            groups.push(std::mem::take(&mut current));
            len = 0;
        }
        len += l;
        current.push(id);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// The metadata sent for a record: its own, plus its document and URI.
pub(super) fn wire_metadata(r: &Record) -> Metadata {
    let mut m = r.metadata.clone().unwrap_or_default();
    if let Some(d) = &r.document {
        m.insert(DOCUMENT_KEY.into(), json!(d));
    }
    if let Some(u) = &r.uri {
        m.insert(URI_KEY.into(), json!(u));
    }
    m
}

/// Pinecone metadata: strings, numbers, booleans and lists of strings; no
/// nulls and no nested objects. Numbers are float64s.
pub(super) const METADATA_RULES: MetadataRules = MetadataRules {
    target: "pinecone",
    objects: false,
    nulls: false,
    arrays: Arrays::Strings,
    empty_arrays: true,
    integers: Integers::Float64,
    numbers: crate::mapping::Numbers::Float64,
    key: reserved_key,
    rename: |_| None,
};

/// Metadata keys vecport's mapping writes itself.
pub(super) fn reserved_key(key: &str) -> Option<String> {
    [DOCUMENT_KEY, URI_KEY]
        .contains(&key)
        .then(|| "is reserved by vecport's pinecone mapping".to_owned())
}

/// The 40 KB per record Pinecone allows, documents and URIs included.
pub(super) fn check_metadata_size(m: &Metadata) -> std::result::Result<(), String> {
    let size = serde_json::to_vec(m).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata is {size} bytes, over pinecone's 40 KB per record"
        ));
    }
    Ok(())
}

pub(super) fn check(spec: &CollectionSpec, record: &Record) -> Result<()> {
    let id = record.id.to_string();
    let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
    super::super::check_request_size("pinecone", record, MAX_BODY_BYTES)?;
    if id.is_empty() || id.chars().count() > 512 {
        return bad("pinecone ids are 1 to 512 characters".into());
    }
    let sparse_only = !spec.vectors.iter().any(|f| f.kind == VectorKind::Dense);
    for (f, v) in spec.vectors.iter().zip(&record.vectors) {
        match (f.kind, v) {
            (VectorKind::Dense, None) => {
                return bad(
                    "has no dense values; every record of a dense pinecone index needs them".into(),
                );
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
                let dense_metric = spec
                    .vectors
                    .iter()
                    .find(|f| f.kind == VectorKind::Dense)
                    .and_then(|f| f.metric);
                if !sparse_only
                    && !s.indices.is_empty()
                    && dense_metric.is_some_and(|m| m != Metric::Dot)
                {
                    return bad(
                        "has sparse values, which pinecone takes only in dotproduct indexes".into(),
                    );
                }
                if sparse_only && s.indices.is_empty() {
                    return bad("its sparse vector is empty".into());
                }
            }
            (VectorKind::Sparse, None) if sparse_only => {
                return bad("has no sparse values".into());
            }
            _ => {}
        }
    }
    if let Err(e) = check_metadata_size(&wire_metadata(record)) {
        return bad(e);
    }
    Ok(())
}

pub(super) struct LegacyWriter {
    pub(super) data: HttpClient,
    pub(super) fields: Vec<VectorField>,
    pub(super) created: Option<super::Created>,
}

#[derive(Serialize)]
struct UpsertVector {
    id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<f32>,
    #[serde(rename = "sparseValues", skip_serializing_if = "Option::is_none")]
    sparse_values: Option<SparseJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

#[async_trait]
impl CollectionWriter for LegacyWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: 1000,
            max_bytes: MAX_BODY_BYTES,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        // One request per namespace.
        let mut by_namespace: Vec<(String, Vec<UpsertVector>)> = Vec::new();
        for r in records {
            let ns = r.namespace.clone().unwrap_or_default();
            let metadata = Some(wire_metadata(&r)).filter(|m| !m.is_empty());
            let mut v = UpsertVector {
                id: r.id.to_string(),
                values: Vec::new(),
                sparse_values: None,
                metadata,
            };
            for (f, slot) in self.fields.iter().zip(r.vectors) {
                match (f.kind, slot) {
                    (VectorKind::Dense, Some(Vector::Dense(d))) => v.values = d,
                    (VectorKind::Sparse, Some(Vector::Sparse(s))) if !s.indices.is_empty() => {
                        v.sparse_values = Some(SparseJson {
                            indices: s.indices,
                            values: s.values,
                        })
                    }
                    _ => {}
                }
            }
            match by_namespace.iter_mut().find(|(n, _)| *n == ns) {
                Some((_, list)) => list.push(v),
                None => by_namespace.push((ns, vec![v])),
            }
        }
        for (namespace, vectors) in by_namespace {
            // A struct, not `json!`: `json!` widens f32 to f64 and doubles the text.
            #[derive(Serialize)]
            struct Upsert {
                vectors: Vec<UpsertVector>,
                namespace: String,
            }
            let mut body = self.data.body_buffer();
            let body = tokio::task::spawn_blocking(move || {
                serde_json::to_writer(&mut body, &Upsert { vectors, namespace }).map(|()| body)
            })
            .await
            .map_err(|e| Error::internal("encoding a pinecone upsert", e))?
            .map_err(|e| Error::InvalidData(format!("cannot encode vectors: {e}")))?;
            let resp = self
                .data
                .send(Method::POST, "/vectors/upsert", Some(body), "upsert", true)
                .await?;
            if !resp.status.is_success() {
                return Err(self.data.fail("upsert", &resp));
            }
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        // describe_index_stats lags; listing ids is exact.
        let mut total = 0u64;
        for ns in wire::namespaces(&self.data, true).await? {
            let mut token: Option<String> = None;
            loop {
                let (ids, next) = list_ids(&self.data, &ns, token.as_deref()).await?;
                total += ids.len() as u64;
                token = next;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn discard(&self) -> Result<bool> {
        super::discard(self.created.as_ref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rules() {
        let ok: Metadata =
            serde_json::from_value(json!({"s": "x", "n": 1.5, "i": 3, "b": true, "l": ["a", "b"]}))
                .unwrap();
        let problem = |v: &Value| crate::mapping::value_problem(&METADATA_RULES, "k", v);
        assert!(ok.values().all(|v| problem(v).is_none()));
        for (v, needle) in [
            (json!({"b": 1}), "nested"),
            (json!(null), "null"),
            (json!([1, 2]), "strings only"),
            (json!(9_007_199_254_740_993u64), "float64"),
        ] {
            assert!(problem(&v).unwrap().contains(needle), "{v}");
        }
        assert!(reserved_key(DOCUMENT_KEY).is_some());
        assert!(check_metadata_size(&ok).is_ok());
        let big: Metadata = serde_json::from_value(json!({"t": "x".repeat(41_000)})).unwrap();
        assert!(check_metadata_size(&big).unwrap_err().contains("40 KB"));
    }

    #[test]
    fn fetch_groups_bound_count_and_url() {
        let ids: Vec<String> = (0..2500).map(|i| format!("{i}")).collect();
        let groups = fetch_groups(ids);
        assert!(groups.iter().all(|g| g.len() <= 1000));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 2500);
        let long: Vec<String> = (0..50)
            .map(|i| format!("{i}-{}", "é".repeat(200)))
            .collect();
        let groups = fetch_groups(long);
        for g in &groups {
            let len: usize = g.iter().map(|id| segment(id).len() + 5).sum();
            assert!(len <= MAX_FETCH_QUERY || g.len() == 1);
        }
    }
}
