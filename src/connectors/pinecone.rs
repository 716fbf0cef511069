//! `pinecone://INDEX` (control plane `https://api.pinecone.io`), or
//! `pinecone+http://HOST:PORT/INDEX` / `pinecone+https://…` for another
//! control plane; `?host=URL` names the data plane directly. `Api-Key` from
//! `PINECONE_API_KEY`, and `X-Pinecone-Api-Version` on every call.
//!
//! Export walks every namespace with `GET /vectors/list` and fetches the
//! listed ids in groups bounded by count and URL length (serverless only: pod
//! indexes cannot list ids). Import creates the index through the control
//! plane, waits until it is ready, and upserts per namespace in requests of
//! at most 1,000 records and 2 MB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::mapping::{Arrays, IdForm, IndexCounterparts, Integers, MetadataRules, unkept_settings};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    SparseVector, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use super::http::{HttpClient, Response, Vendor, decode_json, segment};
use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "PINECONE_API_KEY";
/// The API version vecport speaks.
pub const API_VERSION: &str = "2025-10";
const CONTROL_PLANE: &str = "https://api.pinecone.io";
/// Name of the sparse field of a Pinecone index in the snapshot.
pub const SPARSE_FIELD: &str = "sparse";
/// Pinecone's request limit is 2 MB; the estimate overshoots, so this is safe.
const MAX_BODY_BYTES: usize = 2_000_000;
/// Longest query string of one fetch.
const MAX_FETCH_QUERY: usize = 8_000;
/// Largest metadata of one record, as JSON.
const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Metadata key holding a record's document (Pinecone has no document field).
pub const DOCUMENT_KEY: &str = "__vecport_document";
/// Metadata key holding a record's URI.
pub const URI_KEY: &str = "__vecport_uri";
/// How long import waits for a new index to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The Pinecone connector.
#[derive(Debug)]
pub struct Pinecone {
    control: HttpClient,
    /// For the data plane's client, made once its address is known.
    options: super::ConnectOptions,
    data_override: Option<String>,
    key: Option<Secret>,
    tls: bool,
    index: Option<String>,
    cloud: String,
    region: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct IndexModel {
    name: String,
    // Read through a `Value`: the flattened `rest` buffers every field, and
    // buffered numbers are decimal text (serde_json's `arbitrary_precision`).
    #[serde(default, deserialize_with = "crate::model::buffered_u32")]
    dimension: Option<u32>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    vector_type: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    status: Value,
    #[serde(default)]
    tags: Option<Map<String, Value>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct IndexList {
    indexes: Vec<IndexModel>,
}

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
struct Pagination {
    #[serde(default)]
    next: Option<String>,
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
struct SparseJson {
    indices: Vec<u32>,
    values: Vec<f32>,
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

/// Pinecone's HTTP dialect, control and data plane alike.
#[derive(Debug)]
struct PineconeApi;

impl Vendor for PineconeApi {
    fn name(&self) -> &'static str {
        "pinecone"
    }

    fn credential_hint(&self) -> String {
        format!("the API key in {API_KEY_ENV}")
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

fn metric_of(m: &str) -> Option<Metric> {
    match m {
        "cosine" => Some(Metric::Cosine),
        "euclidean" => Some(Metric::L2),
        "dotproduct" => Some(Metric::Dot),
        _ => None,
    }
}

fn pinecone_metric(m: Metric) -> Option<&'static str> {
    match m {
        Metric::Cosine => Some("cosine"),
        Metric::L2 => Some("euclidean"),
        Metric::Dot => Some("dotproduct"),
        Metric::Manhattan | Metric::Hamming => None,
    }
}

/// Pinecone's index name rule: 1–45 of lower-case letters, digits and `-`.
fn valid_index_name(name: &str) -> bool {
    (1..=45).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Pinecone {
    /// Opens a `pinecone://` URL.
    pub fn new(url: &ConnectorUrl, options: &super::ConnectOptions) -> Result<Pinecone> {
        let (control, index) = if url.transport().is_some() {
            (
                url.http_base(if url.tls() { 443 } else { 5080 })?,
                url.collection().map(str::to_owned),
            )
        } else {
            if url.collection().is_some() {
                return Err(Error::Usage(format!(
                    "`{}`: write pinecone://INDEX (the index is the host part), or pinecone+https://CONTROL-PLANE/INDEX",
                    url.public()
                )));
            }
            (
                CONTROL_PLANE.to_owned(),
                url.host().filter(|h| !h.is_empty()).map(str::to_owned),
            )
        };
        let key = Secret::from_env(API_KEY_ENV);
        let creds: Vec<(&'static str, &Secret)> = key.iter().map(|k| ("api-key", k)).collect();
        Ok(Pinecone {
            control: HttpClient::new(
                &PineconeApi,
                &control,
                &creds,
                &[("x-pinecone-api-version", API_VERSION)],
                options,
            )?,
            options: options.clone(),
            data_override: url.param("host").map(str::to_owned),
            key,
            tls: !control.starts_with("http://"),
            index,
            cloud: url.param("cloud").unwrap_or("aws").to_owned(),
            region: url.param("region").unwrap_or("us-east-1").to_owned(),
        })
    }

    fn data_client(&self, host: &str) -> Result<HttpClient> {
        let base = if host.contains("://") {
            host.to_owned()
        } else {
            format!("{}://{host}", if self.tls { "https" } else { "http" })
        };
        let creds: Vec<(&'static str, &Secret)> = self.key.iter().map(|k| ("api-key", k)).collect();
        Ok(HttpClient::new(
            &PineconeApi,
            &base,
            &creds,
            &[("x-pinecone-api-version", API_VERSION)],
            &self.options,
        )?
        .answered_with(&self.control))
    }

    async fn describe_index(&self, name: &str) -> Result<Option<IndexModel>> {
        let resp = self
            .control
            .send(
                Method::GET,
                &format!("/indexes/{}", segment(name)),
                None,
                "describe index",
                true,
            )
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status.is_success() {
            return Err(self.control.fail("describe index", &resp));
        }
        Ok(Some(
            decode_json(resp.body, self.control.base(), "describe index").await?,
        ))
    }

    async fn index_model(&self, name: &str) -> Result<IndexModel> {
        self.describe_index(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: format!("index `{name}` on {}", self.control.base()),
                hint: Some("`vecport ls` lists the indexes".into()),
            })
    }

    fn data_for(&self, model: &IndexModel) -> Result<HttpClient> {
        match (&self.data_override, &model.host) {
            (Some(h), _) | (None, Some(h)) => self.data_client(h),
            (None, None) => Err(Error::Protocol {
                endpoint: self.control.base().to_owned(),
                operation: "describe index".into(),
                message: format!("index `{}` has no host yet", model.name),
            }),
        }
    }

    /// Every namespace of an index ("" is the default).
    async fn namespaces(data: &HttpClient) -> Result<Vec<String>> {
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
                return Ok(stats["namespaces"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default());
            }
            if !resp.status.is_success() {
                return Err(data.fail("list namespaces", &resp));
            }
            let page: Namespaces = decode_json(resp.body, data.base(), "list namespaces").await?;
            out.extend(page.namespaces.into_iter().map(|n| {
                if n.name == "__default__" {
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

    async fn list_ids(
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

    async fn fetch(
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
                let v: FetchedVector = serde_json::from_value(v)
                    .map_err(|e| protocol(format!("vector {id:?}: {e}")))?;
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

    fn spec_of(model: &IndexModel, count: Option<u64>) -> CollectionSpec {
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
}

impl Endpoint for Pinecone {
    fn name(&self) -> &'static str {
        "pinecone"
    }

    fn endpoint(&self) -> String {
        self.control.base().to_owned()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.index.as_deref()
    }
}

#[async_trait]
impl Source for Pinecone {
    fn reads_ids_from(&self) -> bool {
        true
    }

    async fn describe(&self) -> Result<SourceDescription> {
        let mut location = Map::new();
        location.insert("api_version".into(), json!(API_VERSION));
        Ok(SourceDescription {
            server_version: None,
            location,
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let list: IndexList = self
            .control
            .call(Method::GET, "/indexes", None, "list indexes")
            .await?;
        let mut out = Vec::new();
        for model in list.indexes {
            let count = match self.data_for(&model) {
                Ok(data) => data
                    .call::<Value>(
                        Method::POST,
                        "/describe_index_stats",
                        Some(json!({})),
                        "describe index stats",
                    )
                    .await
                    .ok()
                    .and_then(|s| s["totalVectorCount"].as_u64()),
                Err(_) => None,
            };
            out.push(CollectionSummary {
                name: model.name.clone(),
                dimension: model.dimension,
                metric: model.metric.as_deref().and_then(metric_of),
                count,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let model = self.index_model(name).await?;
        let data = self.data_for(&model)?;
        let stats: Value = data
            .call(
                Method::POST,
                "/describe_index_stats",
                Some(json!({})),
                "describe index stats",
            )
            .await?;
        let mut spec = Pinecone::spec_of(&model, stats["totalVectorCount"].as_u64());
        spec.notes.push("pinecone's describe_index_stats is eventually consistent: the count before the export may lag recent writes".into());
        Ok(spec)
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        _field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let model = self.index_model(&spec.name).await?;
        let data = self.data_for(&model)?;
        let body = json!({
            "vector": vector,
            "topK": k,
            "namespace": namespace.unwrap_or(""),
            "includeValues": false,
            "includeMetadata": false,
        });
        let answer: Value = data
            .json(
                Method::POST,
                "/query",
                Some(body.to_string().into_bytes()),
                "query",
                true,
                |_| None,
            )
            .await?;
        Ok(answer["matches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(|s| RecordId::String(s.to_owned())))
            .collect())
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let slots = spec.vectors.len();
        let sparse_slot = spec
            .vectors
            .iter()
            .position(|f| f.kind == VectorKind::Sparse);
        let concurrency = options.concurrency.max(1);
        let setup = async move {
            let model = self.index_model(&spec.name).await?;
            let data = Arc::new(self.data_for(&model)?);
            let mut namespaces = Pinecone::namespaces(&data).await?;
            // In a fixed order, so that a cursor names a place in it.
            namespaces.sort();
            Ok::<_, Error>((data, namespaces))
        };
        let start = options.start.clone();
        stream::once(setup)
            .map(move |setup| match setup {
                Err(e) => stream::once(futures::future::ready(Err(e))).boxed(),
                Ok((data, namespaces)) => {
                    let pages = match options.ids_from.clone() {
                        Some(path) => ids_from_file(path, namespaces, start.as_ref()),
                        None => listed_ids(data.clone(), namespaces, start.as_ref()),
                    };
                    pages
                        .map(move |page| {
                            let data = data.clone();
                            async move {
                                let (ns, ids, cursor) = page?;
                                let mut records = Vec::with_capacity(ids.len());
                                for group in fetch_groups(ids) {
                                    records.extend(
                                        Pinecone::fetch(&data, &ns, group, sparse_slot, slots)
                                            .await?,
                                    );
                                }
                                Ok(Page {
                                    records,
                                    next: cursor,
                                })
                            }
                        })
                        .buffered(concurrency)
                        .boxed()
                }
            })
            .flatten()
            .boxed()
    }
}

/// A namespace, ids in it, and the cursor after them.
type IdPage = (String, Vec<String>, Option<Value>);

/// Where a scan starts: the index of the namespace a cursor names (or of
/// the first one after it, if it is gone), and the cursor's `key` in it.
fn start_in(namespaces: &[String], start: Option<&Value>, key: &str) -> (usize, Value) {
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
fn cursor_at(namespaces: &[String], ns_index: usize, key: &str, position: Value) -> Option<Value> {
    namespaces
        .get(ns_index)
        .map(|ns| json!({"namespace": ns, key: position}))
}

/// Pages of ids listed by the index, namespace by namespace, from `start`
/// (a cursor of an earlier page).
fn listed_ids(
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
            match Pinecone::list_ids(&data, &ns, token.as_deref()).await {
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

/// Pages of ids read from a file (one id per line), namespace by namespace:
/// `(namespace, ids, cursor)`. Ids a namespace does not hold are simply not
/// fetched back.
fn ids_from_file(
    path: std::path::PathBuf,
    namespaces: Vec<String>,
    start: Option<&Value>,
) -> BoxStream<'static, Result<IdPage>> {
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

/// Splits ids into fetch requests of at most 1,000 ids and a bounded URL.
fn fetch_groups(ids: Vec<String>) -> Vec<Vec<String>> {
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
fn wire_metadata(r: &Record) -> Metadata {
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
const METADATA_RULES: MetadataRules = MetadataRules {
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
fn reserved_key(key: &str) -> Option<String> {
    [DOCUMENT_KEY, URI_KEY]
        .contains(&key)
        .then(|| "is reserved by vecport's pinecone mapping".to_owned())
}

/// The 40 KB per record Pinecone allows, documents and URIs included.
fn check_metadata_size(m: &Metadata) -> std::result::Result<(), String> {
    let size = serde_json::to_vec(m).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata is {size} bytes, over pinecone's 40 KB per record"
        ));
    }
    Ok(())
}

#[async_trait]
impl Sink for Pinecone {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: 1,
            sparse: true,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: &[Metric::Cosine, Metric::L2, Metric::Dot],
            id_kinds: &[IdKind::String],
            metadata: METADATA_RULES,
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = vec![
            "pinecone indexes hold one dense and one sparse vector: field names are not kept"
                .to_owned(),
        ];
        // Pinecone manages its index: no setting of another database carries over.
        let keeps = IndexCounterparts {
            m: false,
            ef_construction: false,
            ef_search: false,
            lists: false,
            quantization: false,
        };
        notes.extend(unkept_settings("pinecone", spec, keeps));
        notes
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        (id.kind() != IdKind::String).then(|| IdForm::Text {
            stored: id.to_string(),
            rule: "pinecone ids are strings: the id is stored as its text and comes back as a string",
        })
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        super::check_request_size("pinecone", record, MAX_BODY_BYTES)?;
        if id.is_empty() || id.chars().count() > 512 {
            return bad("pinecone ids are 1 to 512 characters".into());
        }
        let sparse_only = !spec.vectors.iter().any(|f| f.kind == VectorKind::Dense);
        for (f, v) in spec.vectors.iter().zip(&record.vectors) {
            match (f.kind, v) {
                (VectorKind::Dense, None) => {
                    return bad(
                        "has no dense values; every record of a dense pinecone index needs them"
                            .into(),
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
                            "has sparse values, which pinecone takes only in dotproduct indexes"
                                .into(),
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

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        if !valid_index_name(target) {
            return Err(Error::Usage(format!(
                "`{target}` is not a valid Pinecone index name (1–45 lower-case letters, digits and `-`); choose another with --rename"
            )));
        }
        let dense = spec.vectors.iter().find(|f| f.kind == VectorKind::Dense);
        let metric = dense.and_then(|f| f.metric).unwrap_or(Metric::Dot);
        let pc_metric = pinecone_metric(metric)
            .ok_or_else(|| Error::not_supported("pinecone", format!("the {metric} metric")))?;
        let found = self.describe_index(target).await?;
        let model = match (found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("index `{target}`"),
                    self.control.base(),
                ));
            }
            (Some(m), ExistingTarget::Append) => {
                if m.dimension != dense.and_then(|f| f.dimension)
                    || m.metric.as_deref() != Some(pc_metric)
                {
                    let or_none = |d: Option<u32>| d.map_or("none".to_owned(), |d| d.to_string());
                    return Err(Error::Incompatible(format!(
                        "index `{target}` exists with dimension {} and metric {}, the snapshot needs dimension {} and metric {pc_metric}; nothing was written. Import under another name (--rename), or pass --if-exists replace to delete and recreate it",
                        or_none(m.dimension),
                        m.metric.as_deref().unwrap_or("none"),
                        or_none(dense.and_then(|f| f.dimension))
                    )));
                }
                m
            }
            (found, _) => {
                if found.is_some() {
                    let resp = self
                        .control
                        .send(
                            Method::DELETE,
                            &format!("/indexes/{}", segment(target)),
                            None,
                            "delete index",
                            true,
                        )
                        .await?;
                    if resp.status == StatusCode::FORBIDDEN {
                        // Deletion protection: the key is fine, the index stays.
                        return Err(Error::Incompatible(format!(
                            "index `{target}` cannot be replaced: pinecone refused to delete it ({}); nothing was written. Disable its deletion protection, or import under another name (--rename)",
                            PineconeApi.error_message(&resp)
                        )));
                    }
                    if !resp.status.is_success() {
                        return Err(self.control.fail("delete index", &resp));
                    }
                    self.wait_until_gone(target).await?;
                }
                let from_pinecone = spec
                    .raw_config
                    .get("spec")
                    .filter(|s| s.get("serverless").is_some());
                let mut body = json!({
                    "name": target,
                    "metric": pc_metric,
                    "vector_type": if dense.is_some() { "dense" } else { "sparse" },
                    "spec": from_pinecone.cloned().unwrap_or_else(|| json!({"serverless": {"cloud": self.cloud, "region": self.region}})),
                });
                if let Some(d) = dense.and_then(|f| f.dimension) {
                    body["dimension"] = json!(d);
                }
                if let Some(tags) = spec
                    .collection_metadata
                    .as_ref()
                    .filter(|_| spec.raw_config.get("tags").is_some())
                {
                    body["tags"] = Value::Object(tags.clone());
                }
                let _: Value = self
                    .control
                    .call(Method::POST, "/indexes", Some(body), "create index")
                    .await?;
                self.wait_until_ready(target).await?
            }
        };
        Ok(Arc::new(PineconeWriter {
            data: self.data_for(&model)?,
            fields: spec.vectors.clone(),
        }))
    }
}

impl Pinecone {
    async fn wait_until_ready(&self, name: &str) -> Result<IndexModel> {
        let started = Instant::now();
        loop {
            if let Some(m) = self.describe_index(name).await?
                && m.status.get("ready").and_then(Value::as_bool) == Some(true)
                && m.host.is_some()
            {
                return Ok(m);
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Server {
                    endpoint: self.control.base().to_owned(),
                    operation: "create index".into(),
                    status: 0,
                    message: format!(
                        "index `{name}` was not ready after {}s",
                        READY_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_until_gone(&self, name: &str) -> Result<()> {
        let started = Instant::now();
        while self.describe_index(name).await?.is_some() {
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Incompatible(format!(
                    "index `{name}` was still being deleted after {}s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }
}

struct PineconeWriter {
    data: HttpClient,
    fields: Vec<VectorField>,
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
impl CollectionWriter for PineconeWriter {
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
        for ns in Pinecone::namespaces(&self.data).await? {
            let mut token: Option<String> = None;
            loop {
                let (ids, next) = Pinecone::list_ids(&self.data, &ns, token.as_deref()).await?;
                total += ids.len() as u64;
                token = next;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(total)
    }
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
