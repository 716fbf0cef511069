//! `chroma://HOST:PORT[/COLLECTION][?tenant=…&database=…]`: Chroma 1.x over
//! its REST API v2. Token from `CHROMA_TOKEN` (sent as `x-chroma-token`).
//!
//! Export pages with `/get` by offset in insertion order, several pages in
//! flight; import creates the collection with the mapped HNSW configuration and
//! upserts in batches bounded by the server's `max_batch_size` and by bytes.
//! Wire facts and their quirks: `fixtures/chroma/README.md`.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::mapping::{
    Arrays, IdForm, IndexCounterparts, Integers, MetadataRules, NAMESPACE_KEY, lift_namespace,
    unkept_settings,
};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, IndexSettings, Metadata, Metric, Record, RecordId,
    StoredValues, Vector, VectorField, VectorKind,
};
use crate::redact::Secret;

use super::http::{HttpClient, Response, Vendor, decode_json, segment};
use super::json_cursor::JsonCursor;
use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

/// Environment variable holding the token.
pub const TOKEN_ENV: &str = "CHROMA_TOKEN";
const DEFAULT_PORT: u16 = 8000;
const DEFAULT_TENANT: &str = "default_tenant";
const DEFAULT_DATABASE: &str = "default_database";
/// Chroma's request body limit is 40 MB; stay well below it.
const MAX_BODY_BYTES: usize = 32 << 20;
/// About the body of one upsert as the batches are cut (embeddings as sent
/// plus a margin per record for id, metadata and document): the requests in
/// flight hold little, and the server takes them as fast as larger ones.
/// 384 dimensions in base64: about 1,500 records per request.
const UPSERT_BYTES: usize = 4 << 20;
/// Note recorded for cosine collections.
pub const COSINE_NOTE: &str = "chroma re-rounds embeddings of cosine-space collections on every write: values may differ from what was written by up to ~2.4e-7 per component (l2 and ip collections are bit-exact)";

/// Note given on every import into Chroma.
pub const FLOAT_NOTE: &str = "chroma's JSON parser is not correctly rounded: about 1 in 9 metadata floats is stored 1 unit in the last place off on first write (values exported from chroma are stable when written back)";

/// The Chroma connector.
#[derive(Debug)]
pub struct Chroma {
    http: HttpClient,
    tenant: String,
    database: String,
    collection: Option<String>,
    preflight: OnceCell<Preflight>,
}

#[derive(Debug, Clone, Deserialize)]
struct Preflight {
    max_batch_size: Option<usize>,
    #[serde(default)]
    supports_base64_encoding: bool,
}

/// A collection as Chroma describes it.
#[derive(Debug, Clone, Deserialize)]
struct CollectionJson {
    id: String,
    name: String,
    #[serde(default)]
    configuration_json: Value,
    #[serde(default)]
    schema: Value,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    dimension: Option<u32>,
}

/// A `/get` page, column by column.
#[derive(Debug, Default)]
struct GetResult {
    ids: Vec<String>,
    embeddings: Option<Vec<Option<Vec<f32>>>>,
    documents: Option<Vec<Option<String>>>,
    metadatas: Option<Vec<Option<Metadata>>>,
    uris: Option<Vec<Option<String>>>,
}

impl GetResult {
    /// Decodes a `/get` response in one pass: embeddings go straight into
    /// `f32`s ([`JsonCursor::f32_array`]), the other columns through serde_json.
    fn decode(body: &[u8]) -> std::result::Result<GetResult, String> {
        let mut c = JsonCursor::new(body);
        let mut page = GetResult::default();
        let mut ids: Option<Vec<String>> = None;
        c.object(|c, key| match &*key {
            "ids" => c.value().map(|v| ids = Some(v)),
            "embeddings" if c.null() => Ok(()),
            "embeddings" => {
                let mut rows = Vec::new();
                let mut dimension = 0;
                c.array(|c, i| {
                    if c.null() {
                        rows.push(None);
                        return Ok(());
                    }
                    let row = c.f32_array(dimension).map_err(|e| {
                        match ids.as_ref().and_then(|ids| ids.get(i)) {
                            Some(id) => format!("embedding of {id:?}: {e}"),
                            None => format!("embedding {i} of the page: {e}"),
                        }
                    })?;
                    dimension = row.len();
                    rows.push(Some(row));
                    Ok(())
                })?;
                page.embeddings = Some(rows);
                Ok(())
            }
            "documents" => c.value().map(|v| page.documents = v),
            "metadatas" => c.value().map(|v| page.metadatas = v),
            "uris" => c.value().map(|v| page.uris = v),
            _ => c.skip(),
        })?;
        c.end()?;
        page.ids = ids.ok_or("the response has no `ids`")?;
        Ok(page)
    }
}

/// Chroma's HTTP dialect.
#[derive(Debug)]
struct ChromaApi;

impl Vendor for ChromaApi {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn credential_hint(&self) -> String {
        format!("the token in {TOKEN_ENV}")
    }
}

impl Chroma {
    /// Opens a `chroma://` URL.
    pub fn new(url: &ConnectorUrl, options: &super::ConnectOptions) -> Result<Chroma> {
        let base = url.http_base(DEFAULT_PORT)?;
        let token = Secret::from_env(TOKEN_ENV);
        let creds: Vec<(&'static str, &Secret)> =
            token.iter().map(|t| ("x-chroma-token", t)).collect();
        Ok(Chroma {
            http: HttpClient::new(&ChromaApi, &base, &creds, &[], options)?,
            tenant: url.param("tenant").unwrap_or(DEFAULT_TENANT).to_owned(),
            database: url.param("database").unwrap_or(DEFAULT_DATABASE).to_owned(),
            collection: url.collection().map(str::to_owned),
            preflight: OnceCell::new(),
        })
    }

    fn prefix(&self) -> String {
        format!(
            "/api/v2/tenants/{}/databases/{}",
            segment(&self.tenant),
            segment(&self.database)
        )
    }

    fn where_(&self) -> String {
        format!(
            "{} (tenant `{}`, database `{}`)",
            self.http.base(),
            self.tenant,
            self.database
        )
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("collection `{name}` on {}", self.where_()),
            hint: Some(super::ls_hint("chroma", self.http.base(), "collections")),
        }
    }

    async fn preflight(&self) -> Result<Preflight> {
        self.preflight
            .get_or_try_init(|| async {
                self.http
                    .json::<Preflight>(
                        Method::GET,
                        "/api/v2/pre-flight-checks",
                        None,
                        "pre-flight checks",
                        true,
                        |_| None,
                    )
                    .await
            })
            .await
            .cloned()
    }

    async fn find(&self, name: &str) -> Result<Option<CollectionJson>> {
        let path = format!("{}/collections/{}", self.prefix(), segment(name));
        let resp = self
            .http
            .send(Method::GET, &path, None, "get collection", true)
            .await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                decode_json(resp.body, self.http.base(), "get collection").await?,
            )),
            _ => Err(self.http.status_error("get collection", &resp)),
        }
    }

    async fn get_collection(&self, name: &str) -> Result<CollectionJson> {
        self.find(name).await?.ok_or_else(|| self.not_found(name))
    }

    async fn count_of(&self, id: &str) -> Result<u64> {
        let path = format!("{}/collections/{}/count", self.prefix(), segment(id));
        self.http
            .json(Method::GET, &path, None, "count", true, |_| None)
            .await
    }

    async fn get_page(
        &self,
        id: &str,
        offset: usize,
        limit: usize,
        vectors: usize,
    ) -> Result<Vec<Record>> {
        let path = format!("{}/collections/{}/get", self.prefix(), segment(id));
        let body = json!({
            "limit": limit,
            "offset": offset,
            "include": ["embeddings", "metadatas", "documents", "uris"],
        });
        let resp = self
            .http
            .send(
                Method::POST,
                &path,
                Some(body.to_string().into_bytes()),
                "get records",
                true,
            )
            .await?;
        if !resp.status.is_success() {
            return Err(self.http.status_error("get records", &resp));
        }
        let endpoint = self.http.base().to_owned();
        tokio::task::spawn_blocking(move || -> Result<Vec<Record>> {
            let protocol = |message: String| Error::Protocol {
                endpoint: endpoint.clone(),
                operation: "get records".into(),
                message,
            };
            let page = GetResult::decode(&resp.body).map_err(protocol)?;
            let n = page.ids.len();
            let column_len_ok = |len: Option<usize>| len.is_none_or(|l| l == n);
            if !column_len_ok(page.embeddings.as_ref().map(Vec::len))
                || !column_len_ok(page.documents.as_ref().map(Vec::len))
                || !column_len_ok(page.metadatas.as_ref().map(Vec::len))
                || !column_len_ok(page.uris.as_ref().map(Vec::len))
            {
                return Err(protocol("columns of different lengths".into()));
            }
            let mut embeddings = page.embeddings.map(Vec::into_iter);
            let mut documents = page.documents.map(Vec::into_iter);
            let mut metadatas = page.metadatas.map(Vec::into_iter);
            let mut uris = page.uris.map(Vec::into_iter);
            let mut out = Vec::with_capacity(n);
            for id in page.ids {
                let embedding = embeddings.as_mut().and_then(Iterator::next).flatten();
                let mut slots = vec![None; vectors];
                if let Some(slot) = slots.first_mut() {
                    *slot = embedding.map(Vector::Dense);
                }
                // Chroma cannot tell "no metadata" from "{}"; both are no metadata.
                let mut metadata = metadatas
                    .as_mut()
                    .and_then(Iterator::next)
                    .flatten()
                    .filter(|m| !m.is_empty());
                out.push(Record {
                    id: RecordId::String(id),
                    namespace: lift_namespace(&mut metadata),
                    vectors: slots,
                    metadata,
                    document: documents.as_mut().and_then(Iterator::next).flatten(),
                    uri: uris.as_mut().and_then(Iterator::next).flatten(),
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::internal("decoding chroma records", e))?
    }

    /// The collection's settings in the neutral model.
    fn spec_of(&self, c: &CollectionJson, count: Option<u64>) -> CollectionSpec {
        let (metric, index) = index_of(&c.configuration_json, c.metadata.as_ref());
        let mut field = VectorField::dense(c.dimension, metric);
        field.index = index;
        let mut notes = Vec::new();
        if metric == Some(Metric::Cosine) {
            field.stored_values = StoredValues::Rerounded;
            notes.push(COSINE_NOTE.to_owned());
        }
        CollectionSpec {
            name: c.name.clone(),
            id_kind: Some(IdKind::String),
            vectors: vec![field],
            raw_config: json!({
                "configuration_json": c.configuration_json,
                "schema": c.schema,
            }),
            collection_metadata: c.metadata.clone(),
            count_hint: count,
            notes,
            content: None,
        }
    }
}

/// Metric and index settings from `configuration_json`, falling back to the
/// legacy `hnsw:*` collection metadata.
fn index_of(
    config: &Value,
    metadata: Option<&Metadata>,
) -> (Option<Metric>, Option<IndexSettings>) {
    let as_u64 = |v: Option<&Value>| v.and_then(Value::as_u64);
    if let Some(h) = config.get("hnsw").and_then(Value::as_object) {
        let metric = h.get("space").and_then(Value::as_str).and_then(metric_of);
        let mut extra = Map::new();
        for (k, v) in h {
            if !["space", "ef_construction", "ef_search", "max_neighbors"].contains(&k.as_str()) {
                extra.insert(k.clone(), v.clone());
            }
        }
        return (
            metric,
            Some(IndexSettings {
                kind: "hnsw".into(),
                m: as_u64(h.get("max_neighbors")),
                ef_construction: as_u64(h.get("ef_construction")),
                ef_search: as_u64(h.get("ef_search")),
                extra,
                ..IndexSettings::default()
            }),
        );
    }
    if let Some(s) = config.get("spann").and_then(Value::as_object) {
        let metric = s.get("space").and_then(Value::as_str).and_then(metric_of);
        let mut extra = s.clone();
        extra.remove("space");
        return (
            metric,
            Some(IndexSettings {
                kind: "spann".into(),
                extra,
                ..IndexSettings::default()
            }),
        );
    }
    let legacy = |k: &str| metadata.and_then(|m| m.get(k));
    let metric = legacy("hnsw:space")
        .and_then(Value::as_str)
        .and_then(metric_of)
        .or(Some(Metric::L2));
    let index = IndexSettings {
        kind: "hnsw".into(),
        m: as_u64(legacy("hnsw:M")),
        ef_construction: as_u64(legacy("hnsw:construction_ef")),
        ef_search: as_u64(legacy("hnsw:search_ef")),
        ..IndexSettings::default()
    };
    (metric, Some(index))
}

fn metric_of(space: &str) -> Option<Metric> {
    match space {
        "l2" => Some(Metric::L2),
        "cosine" => Some(Metric::Cosine),
        "ip" => Some(Metric::Dot),
        _ => None,
    }
}

fn space_of(metric: Metric) -> Option<&'static str> {
    match metric {
        Metric::L2 => Some("l2"),
        Metric::Cosine => Some("cosine"),
        Metric::Dot => Some("ip"),
        Metric::Manhattan | Metric::Hamming => None,
    }
}

/// Chroma's collection name rule: 3–512 of `[a-zA-Z0-9._-]`, alphanumeric at both ends.
fn valid_collection_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    (3..=512).contains(&name.len())
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The `configuration` to create a collection with.
fn configuration_for(spec: &CollectionSpec) -> Result<Value> {
    let field = &spec.vectors[0];
    let space = match field.metric {
        None => "l2",
        Some(m) => space_of(m).ok_or_else(|| {
            Error::not_supported(
                "chroma",
                format!("the {m} metric (Chroma has l2, cosine and ip)"),
            )
        })?,
    };
    // Chroma → Chroma keeps every HNSW parameter verbatim.
    let from_chroma = spec
        .raw_config
        .get("configuration_json")
        .and_then(|c| c.get("hnsw"))
        .and_then(Value::as_object);
    let mut hnsw = Map::new();
    hnsw.insert("space".into(), json!(space));
    if let Some(src) = from_chroma {
        for (k, v) in src {
            if k != "space" && !v.is_null() {
                hnsw.insert(k.clone(), v.clone());
            }
        }
    } else if let Some(ix) = field.index.as_ref().filter(|ix| ix.kind == "hnsw") {
        if let Some(m) = ix.m {
            hnsw.insert("max_neighbors".into(), json!(m));
        }
        if let Some(ef) = ix.ef_construction {
            hnsw.insert("ef_construction".into(), json!(ef));
        }
        if let Some(ef) = ix.ef_search {
            hnsw.insert("ef_search".into(), json!(ef));
        }
    }
    Ok(json!({ "hnsw": hnsw }))
}

impl Endpoint for Chroma {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn endpoint(&self) -> String {
        self.http.base().to_owned()
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

#[async_trait]
impl Source for Chroma {
    async fn describe(&self) -> Result<SourceDescription> {
        let version: Value = self
            .http
            .json(
                Method::GET,
                "/api/v2/version",
                None,
                "version",
                true,
                |_| None,
            )
            .await?;
        let mut location = Map::new();
        location.insert("tenant".into(), json!(self.tenant));
        location.insert("database".into(), json!(self.database));
        Ok(SourceDescription {
            server_version: version.as_str().map(str::to_owned),
            location,
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let mut out = Vec::new();
        let page = 100;
        loop {
            let path = format!(
                "{}/collections?limit={page}&offset={}",
                self.prefix(),
                out.len()
            );
            let batch: Vec<CollectionJson> = self
                .http
                .json(Method::GET, &path, None, "list collections", true, |_| None)
                .await?;
            let n = batch.len();
            for c in batch {
                let count = self.count_of(&c.id).await?;
                let (metric, _) = index_of(&c.configuration_json, c.metadata.as_ref());
                out.push(CollectionSummary {
                    name: c.name,
                    dimension: c.dimension,
                    metric,
                    count: Some(count),
                });
            }
            if n < page {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let c = self.get_collection(name).await?;
        let count = self.count_of(&c.id).await?;
        Ok(self.spec_of(&c, Some(count)))
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        _field: &str,
        vector: &[f32],
        k: usize,
        _namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let c = self.get_collection(&spec.name).await?;
        let path = format!("{}/collections/{}/query", self.prefix(), segment(&c.id));
        let body = json!({"query_embeddings": [vector], "n_results": k, "include": []});
        let answer: Value = self
            .http
            .json(
                Method::POST,
                &path,
                Some(body.to_string().into_bytes()),
                "query",
                true,
                |_| None,
            )
            .await?;
        Ok(answer["ids"][0]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(|s| RecordId::String(s.to_owned())))
            .collect())
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let page_size = options.page_size.max(1);
        let start = options.start.as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
        let vectors = spec.vectors.len();
        let concurrency = options.concurrency.max(1);
        // The record endpoints take the collection's id, not its name.
        stream::once(async move {
            self.get_collection(&spec.name)
                .await
                .map(|c| Arc::new(c.id))
        })
        .map(move |id| match id {
            Err(e) => stream::once(futures::future::ready(Err(e))).boxed(),
            // Offsets are known in advance, so several pages are in flight
            // at once; the stream ends after the first short page.
            Ok(id) => stream::iter((0usize..).map(move |i| start + i * page_size))
                .map(move |offset| {
                    let id = id.clone();
                    async move {
                        let records = self.get_page(&id, offset, page_size, vectors).await?;
                        let full = records.len() == page_size;
                        Ok::<_, Error>(Page {
                            records,
                            next: full.then(|| json!(offset + page_size)),
                        })
                    }
                })
                .buffered(concurrency)
                .scan(false, |done, page| {
                    if *done {
                        return futures::future::ready(None);
                    }
                    *done = page.as_ref().map_or(true, |p| p.next.is_none());
                    futures::future::ready(Some(page))
                })
                .boxed(),
        })
        .flatten()
        .boxed()
    }
}

#[async_trait]
impl Sink for Chroma {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: 1,
            sparse: false,
            multivector: false,
            named_vectors: false,
            namespaces: false,
            documents: true,
            uris: true,
            metrics: &[Metric::L2, Metric::Cosine, Metric::Dot],
            id_kinds: &[IdKind::String],
            metadata: METADATA_RULES,
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = vec![FLOAT_NOTE.to_owned()];
        if spec.vectors.first().and_then(|v| v.metric) == Some(Metric::Cosine) {
            notes.push(COSINE_NOTE.to_owned());
        }
        if spec.raw_config.get("configuration_json").is_none() {
            let keeps = IndexCounterparts {
                m: true,
                ef_construction: true,
                ef_search: true,
                lists: false,
                quantization: false,
            };
            notes.extend(unkept_settings("chroma", spec, keeps));
        }
        notes
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        (id.kind() != IdKind::String).then(|| IdForm::Text {
            stored: id.to_string(),
            rule: "chroma ids are strings: the id is stored as its text and comes back as a string",
        })
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        super::check_request_size("chroma", record, MAX_BODY_BYTES)?;
        if id.is_empty() {
            return bad(
                "has an empty id, which Chroma refuses (ids have at least one character)".into(),
            );
        }
        if let Some(why) = metadata_rows(record) {
            return bad(why);
        }
        if record.namespace.is_some() {
            return bad("has a namespace; Chroma collections have none (--namespaces into-key keeps it in metadata)".into());
        }
        let Some(Some(Vector::Dense(values))) = record.vectors.first() else {
            return bad("has no dense vector; Chroma needs an embedding for every record".into());
        };
        if values.is_empty() {
            return bad("has an empty embedding".into());
        }
        if let Some(d) = spec.vectors.first().and_then(|v| v.dimension)
            && values.len() != d as usize
        {
            return bad(format!(
                "has {} values, the collection's dimension is {d}",
                values.len()
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return bad(format!(
                "component {i} of its embedding is {}, which Chroma rejects",
                values[i]
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
        if !valid_collection_name(target) {
            return Err(Error::Usage(format!(
                "`{target}` is not a valid Chroma collection name (3–512 characters of a-z A-Z 0-9 . _ -, starting and ending with a letter or digit); choose another with --rename"
            )));
        }
        if spec.vectors.len() != 1 || spec.vectors[0].kind != VectorKind::Dense {
            return Err(Error::not_supported(
                "chroma",
                "collections without exactly one dense vector field",
            ));
        }
        let configuration = configuration_for(spec)?;
        let dimension = spec.vectors[0].dimension;
        let space = configuration["hnsw"]["space"].clone();
        let collection = match (self.find(target).await?, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("collection `{target}`"),
                    &self.where_(),
                ));
            }
            (Some(c), ExistingTarget::Append) => {
                let (metric, _) = index_of(&c.configuration_json, c.metadata.as_ref());
                let theirs = metric
                    .and_then(space_of)
                    .map(|s| json!(s))
                    .unwrap_or(Value::Null);
                if theirs != space {
                    return Err(Error::Incompatible(format!(
                        "collection `{target}` exists with space {theirs}, the snapshot needs {space}; import under another name or pass --if-exists replace"
                    )));
                }
                if let (Some(a), Some(b)) = (c.dimension, dimension)
                    && a != b
                {
                    return Err(Error::Incompatible(format!(
                        "collection `{target}` exists with dimension {a}, the snapshot's vectors have {b}; import under another name or pass --if-exists replace"
                    )));
                }
                c
            }
            (found, _) => {
                if found.is_some() {
                    let path = format!("{}/collections/{}", self.prefix(), segment(target));
                    let resp = self
                        .http
                        .send(Method::DELETE, &path, None, "delete collection", true)
                        .await?;
                    if !resp.status.is_success() {
                        return Err(self.http.status_error("delete collection", &resp));
                    }
                }
                let metadata = spec.collection_metadata.clone().filter(|m| !m.is_empty());
                let body = json!({
                    "name": target,
                    "configuration": configuration,
                    "metadata": metadata,
                    "get_or_create": false,
                });
                let path = format!("{}/collections", self.prefix());
                self.http
                    .json::<CollectionJson>(Method::POST, &path, Some(body.to_string().into_bytes()), "create collection", false, |r: &Response| {
                        (r.status == StatusCode::CONFLICT).then(|| {
                            Error::Incompatible(format!("collection `{target}` was created by someone else during the import"))
                        })
                    })
                    .await?
            }
        };
        let preflight = self.preflight().await?;
        let base64 = preflight.supports_base64_encoding;
        let per_value = if base64 { 16 / 3 + 1 } else { 16 };
        let per_record = dimension.map_or(0, |d| d as usize * per_value) + 512;
        Ok(Arc::new(ChromaWriter {
            http: self.http.clone(),
            path: format!("{}/collections/{}", self.prefix(), segment(&collection.id)),
            by_name: format!("{}/collections/{}", self.prefix(), segment(target)),
            max_records: preflight
                .max_batch_size
                .unwrap_or(1000)
                .clamp(1, (UPSERT_BYTES / per_record).max(1)),
            base64,
        }))
    }
}

struct ChromaWriter {
    http: HttpClient,
    path: String,
    /// The collection's path by name (`DELETE` takes the name).
    by_name: String,
    max_records: usize,
    base64: bool,
}

/// Chroma metadata: a flat map of bool, 64-bit int, float and string, and
/// non-empty arrays of one of those; keys non-empty and not starting with
/// `#` or `$`.
const METADATA_RULES: MetadataRules = MetadataRules {
    target: "Chroma",
    objects: false,
    nulls: false,
    arrays: Arrays::Homogeneous,
    empty_arrays: false,
    integers: Integers::I64,
    numbers: crate::mapping::Numbers::Float64,
    key: chroma_key,
    rename: |_| None,
};

/// Most metadata rows Chroma's metadata segment writes for one record in
/// one statement: SQLite binds at most 32,766 values, six per row. Scalar
/// metadata values, the document and the URI are one row each; the elements
/// of all array values together go into another statement with the same
/// limit. A record past either is accepted by the upsert, then breaks the
/// compaction of the whole collection (every later read and count fails), so
/// it is refused before anything is written. Measured on Chroma 1.5.9:
/// 5,461 keys are taken, 5,462 break the collection.
const MAX_METADATA_ROWS: usize = 32_766 / 6;

/// Why `record` has more metadata rows than Chroma can write, if it has.
fn metadata_rows(record: &Record) -> Option<String> {
    let (mut scalars, mut elements) = (0usize, 0usize);
    for v in record.metadata.iter().flat_map(|m| m.values()) {
        match v {
            Value::Array(a) => elements += a.len(),
            _ => scalars += 1,
        }
    }
    let extra = usize::from(record.document.is_some()) + usize::from(record.uri.is_some());
    if scalars + extra > MAX_METADATA_ROWS {
        return Some(format!(
            "has {scalars} metadata values{}, more than the {MAX_METADATA_ROWS} Chroma can store for one record (more would break the collection); keep fewer keys",
            if extra > 0 {
                " beside its document or URI"
            } else {
                ""
            }
        ));
    }
    if elements > MAX_METADATA_ROWS {
        return Some(format!(
            "has {elements} elements in its metadata arrays, more than the {MAX_METADATA_ROWS} Chroma can store for one record (more would break the collection); shorten the arrays"
        ));
    }
    None
}

fn chroma_key(k: &str) -> Option<String> {
    if k == NAMESPACE_KEY {
        return Some("is reserved by vecport's mapping of namespaces".to_owned());
    }
    (k.is_empty() || k.starts_with('#') || k.starts_with('$'))
        .then(|| "is empty or starts with `#` or `$`, which Chroma reserves".to_owned())
}

#[async_trait]
impl CollectionWriter for ChromaWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: self.max_records,
            max_bytes: MAX_BODY_BYTES,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let base64 = self.base64;
        let body = tokio::task::spawn_blocking(move || upsert_body(records, base64))
            .await
            .map_err(|e| Error::internal("encoding a chroma upsert", e))?;
        let path = format!("{}/upsert", self.path);
        let resp = self
            .http
            .send(Method::POST, &path, Some(body), "upsert", true)
            .await?;
        if resp.status.is_success() {
            return Ok(());
        }
        Err(self.http.fail("upsert", &resp))
    }

    async fn count(&self) -> Result<u64> {
        let path = format!("{}/count", self.path);
        self.http
            .json(Method::GET, &path, None, "count", true, |_| None)
            .await
    }

    async fn discard(&self) -> Result<bool> {
        let resp = self
            .http
            .send(
                Method::DELETE,
                &self.by_name,
                None,
                "delete collection",
                true,
            )
            .await?;
        if resp.status.is_success() || resp.status == StatusCode::NOT_FOUND {
            return Ok(true);
        }
        Err(self.http.status_error("delete collection", &resp))
    }
}

/// The JSON body of an upsert. Embeddings go as base64 of little-endian f32
/// where the server takes it (exact and about 4× smaller), else as f32
/// numbers in their shortest round-trip form.
///
/// The body is written column by column straight into one buffer sized from
/// the records up front: no per-record intermediate (base64 strings, moved
/// columns) and no doubling of a growing buffer, so encoding a batch holds
/// little more than the batch and its body.
fn upsert_body(records: Vec<Record>, base64: bool) -> Vec<u8> {
    // Writing JSON into a Vec cannot fail: the Vec takes every byte and these
    // values (strings, f32 slices, JSON maps) always serialise.
    fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
        let _ = serde_json::to_writer(out, value);
    }
    fn embedding(r: &Record) -> &[f32] {
        r.vectors
            .first()
            .and_then(Option::as_ref)
            .and_then(Vector::as_dense)
            .unwrap_or(&[])
    }
    /// `,"name":[…]` with one value or `null` per record; left out when no
    /// record has a value, as Chroma's own client does.
    fn column<T: serde::Serialize + ?Sized>(
        out: &mut Vec<u8>,
        name: &str,
        records: &[Record],
        value: impl Fn(&Record) -> Option<&T>,
    ) {
        if records.iter().all(|r| value(r).is_none()) {
            return;
        }
        out.extend_from_slice(format!(",\"{name}\":[").as_bytes());
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match value(r) {
                Some(v) => json(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b']');
    }
    let per_float = if base64 { 4 * 4 / 3 + 1 } else { 16 };
    let estimate: usize = records
        .iter()
        .map(|r| {
            let floats = embedding(r).len();
            r.binary_size_estimate() - floats * 4 + floats * per_float + 16
        })
        .sum();
    let mut out = Vec::with_capacity(estimate + 64);
    out.extend_from_slice(b"{\"ids\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match &r.id {
            RecordId::String(s) => json(&mut out, s),
            other => json(&mut out, &other.to_string()),
        }
    }
    out.extend_from_slice(b"],\"embeddings\":[");
    let mut bytes = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let values = embedding(r);
        if !base64 {
            json(&mut out, values);
            continue;
        }
        bytes.clear();
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let start = out.len() + 1;
        let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
        out.push(b'"');
        out.resize(start + len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&bytes, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + written);
        out.push(b'"');
    }
    out.push(b']');
    column(&mut out, "metadatas", &records, |r| {
        r.metadata.as_ref().filter(|m| !m.is_empty())
    });
    column(&mut out, "documents", &records, |r| r.document.as_deref());
    column(&mut out, "uris", &records, |r| r.uri.as_deref());
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_collection_name("docs-v1.2"));
        for bad in ["ab", "-abc", "abc-", "a b c", "dé√s"] {
            assert!(!valid_collection_name(bad), "{bad}");
        }
    }

    #[test]
    fn index_from_configuration_and_legacy_metadata() {
        let cfg = json!({"hnsw":{"space":"cosine","ef_construction":123,"ef_search":77,"max_neighbors":24,"resize_factor":1.2,"sync_threshold":1000},"spann":null});
        let (m, ix) = index_of(&cfg, None);
        assert_eq!(m, Some(Metric::Cosine));
        let ix = ix.unwrap();
        assert_eq!(
            (ix.m, ix.ef_construction, ix.ef_search),
            (Some(24), Some(123), Some(77))
        );
        assert_eq!(ix.extra.get("resize_factor"), Some(&json!(1.2)));
        let legacy: Metadata =
            serde_json::from_value(json!({"hnsw:space":"ip","hnsw:M":32})).unwrap();
        let (m, ix) = index_of(&Value::Null, Some(&legacy));
        assert_eq!(m, Some(Metric::Dot));
        assert_eq!(ix.unwrap().m, Some(32));
    }

    #[test]
    fn metadata_rules() {
        let problem = |v: &Value| crate::mapping::value_problem(&METADATA_RULES, "k", v);
        assert_eq!(problem(&json!([1, 2])), None);
        assert_eq!(problem(&json!(i64::MIN)), None);
        assert!(chroma_key("$x").is_some() && chroma_key("").is_some());
        assert!(chroma_key("x$").is_none());
        for (v, needle) in [
            (json!([]), "empty array"),
            (json!([1, "a"]), "mixed"),
            (json!({"a": 1}), "nested object"),
            (json!(null), "null"),
            (json!(u64::MAX), "64-bit"),
            (json!([[1]]), "holding arrays"),
        ] {
            assert!(problem(&v).unwrap().contains(needle), "{v}");
        }
    }

    #[test]
    fn upsert_body_columns() {
        let mut a = Record::dense(RecordId::String("a\"1".into()), vec![1.5, -2.0]);
        a.metadata = Some(json!({"k": "v\n", "n": 3}).as_object().cloned().unwrap());
        a.document = Some("doc \"one\"".into());
        let mut b = Record::dense(RecordId::String("b".into()), vec![0.25, 8.0]);
        b.metadata = Some(Map::new());
        let mut c = Record::dense(RecordId::String("c".into()), vec![0.0, 1.0]);
        c.uri = Some("s3://x/y".into());
        let body = upsert_body(vec![a, b, c], false);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "ids": ["a\"1", "b", "c"],
                "embeddings": [[1.5, -2.0], [0.25, 8.0], [0.0, 1.0]],
                "metadatas": [{"k": "v\n", "n": 3}, null, null],
                "documents": ["doc \"one\"", null, null],
                "uris": [null, null, "s3://x/y"],
            })
        );
        let dim = 384;
        let records: Vec<Record> = (0..50)
            .map(|i| {
                let mut r = Record::dense(
                    RecordId::String(format!("id-{i}")),
                    (0..dim).map(|j| (i * j) as f32 / 7.0).collect(),
                );
                r.metadata = Some(json!({"i": i, "s": "x"}).as_object().cloned().unwrap());
                r
            })
            .collect();
        let body = upsert_body(records.clone(), true);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        for (r, e) in records.iter().zip(parsed["embeddings"].as_array().unwrap()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e.as_str().unwrap())
                .unwrap();
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(
                Some(values.as_slice()),
                r.vectors[0].as_ref().unwrap().as_dense()
            );
        }
        assert_eq!(parsed["metadatas"][49], json!({"i": 49, "s": "x"}));
    }

    #[test]
    fn base64_body_is_little_endian_f32() {
        let r = Record::dense(RecordId::String("a".into()), vec![1.0, -0.0]);
        let body: Value = serde_json::from_slice(&upsert_body(vec![r], true)).unwrap();
        let b64 = body["embeddings"][0].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes, [0, 0, 128, 63, 0, 0, 0, 128]);
        assert!(body.get("metadatas").is_none());
        let numbers = String::from_utf8(upsert_body(
            vec![Record::dense(
                RecordId::String("b".into()),
                vec![0.1, -1.5e-38],
            )],
            false,
        ))
        .unwrap();
        assert_eq!(
            numbers, r#"{"ids":["b"],"embeddings":[[0.1,-1.5e-38]]}"#,
            "f32 shortest form, not widened to f64"
        );
    }
}
