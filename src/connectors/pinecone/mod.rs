//! `pinecone://INDEX` (control plane `https://api.pinecone.io`), or
//! `pinecone+http://HOST:PORT/INDEX` / `pinecone+https://…` for another
//! control plane; `?host=URL` names the data plane directly. `Api-Key` from
//! `PINECONE_API_KEY`, and `X-Pinecone-Api-Version` on every call.
//!
//! Pinecone serves two kinds of index, told apart by the schema
//! `describe_index` returns ([`wire::kind_of`]): legacy vector indexes,
//! through the Vectors API ([`legacy`], API 2025-10, as before), and
//! document indexes, through the Documents API ([`documents`], API
//! 2026-07). An export reads whichever kind the index is; an import creates
//! the kind `?kind=` names, else a document index for a snapshot of a
//! document index and a legacy vector index for any other (so that imports
//! made before keep making the same index).

mod documents;
mod legacy;
mod wire;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::mapping::{IdForm, IndexCounterparts, unkept_settings};
use crate::model::{
    CollectionSpec, CollectionSummary, IdKind, Metric, Record, RecordId, VectorKind,
};
use crate::redact::Secret;

use super::http::{HttpClient, Vendor, decode_json, segment};
use super::{
    Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page, ScanOptions,
    Sink, Source, SourceDescription,
};
use documents::{DocumentWriter, Layout};
use legacy::{LegacyWriter, METADATA_RULES};
use wire::{IndexList, IndexModel, Kind, PineconeApi, kind_of, metric_of, pinecone_metric};

pub use documents::{DOCUMENT_FIELD, URI_FIELD};

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "PINECONE_API_KEY";
/// The API version vecport speaks to legacy vector indexes.
pub const API_VERSION: &str = "2025-10";
/// The API version of document indexes (the Documents API).
pub const DOCUMENTS_API_VERSION: &str = "2026-07";
/// The URL parameters of `pinecone://`.
pub const PARAMS: &[&str] = &["host", "cloud", "region", "kind", "document_field"];
const CONTROL_PLANE: &str = "https://api.pinecone.io";
/// Name of the sparse field of a legacy Pinecone index in the snapshot.
pub const SPARSE_FIELD: &str = "sparse";
/// Pinecone's request limit is 2 MB; the estimate overshoots, so this is safe.
const MAX_BODY_BYTES: usize = 2_000_000;
/// Largest metadata of one record, as JSON.
const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Largest dense dimension Pinecone takes.
const MAX_DIMENSION: u32 = 20_000;
/// Metadata key holding a record's document in a legacy vector index
/// (which has no document field).
pub const DOCUMENT_KEY: &str = "__vecport_document";
/// Metadata key holding a record's URI in a legacy vector index.
pub const URI_KEY: &str = "__vecport_uri";
/// How long import waits for a new index to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The Pinecone connector.
#[derive(Debug)]
pub struct Pinecone {
    control: HttpClient,
    /// The control plane on API 2026-07: creates document indexes, and
    /// describes an index a 2025-10 answer leaves undecided.
    control_documents: HttpClient,
    /// For the data plane's client, made once its address is known.
    options: super::ConnectOptions,
    data_override: Option<String>,
    key: Option<Secret>,
    tls: bool,
    index: Option<String>,
    cloud: String,
    region: String,
    /// `?kind=`: the kind of index an import creates.
    kind: Option<Kind>,
    /// `?document_field=`: the field an export takes documents from.
    document_field: Option<String>,
}

/// An index a sink created, which its writer may delete again.
#[derive(Debug)]
struct Created {
    control: HttpClient,
    name: String,
}

/// Deletes the index `created` names, if the import created it: an index
/// that existed before is never touched (`Ok(false)`).
async fn discard(created: Option<&Created>) -> Result<bool> {
    let Some(c) = created else {
        return Ok(false);
    };
    let resp = c
        .control
        .send(
            Method::DELETE,
            &format!("/indexes/{}", segment(&c.name)),
            None,
            "delete index",
            true,
        )
        .await?;
    if resp.status.is_success() || resp.status == StatusCode::NOT_FOUND {
        return Ok(true);
    }
    Err(c.control.fail("delete index", &resp))
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
        let kind = match url.param("kind") {
            None => None,
            Some("legacy") => Some(Kind::Legacy),
            Some("document") => Some(Kind::Document),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "`{}`: kind={other} is not a kind of Pinecone index; write kind=document (a document index, API 2026-07) or kind=legacy (a legacy vector index)",
                    url.public()
                )));
            }
        };
        let document_field = url.param("document_field").map(str::to_owned);
        if let Some(f) = &document_field
            && !documents::valid_field_name(f)
        {
            return Err(Error::Usage(format!(
                "`{}`: document_field={f} cannot name a Pinecone field (1–64 bytes, not starting with `_` or `$`)",
                url.public()
            )));
        }
        let key = Secret::from_env(API_KEY_ENV);
        let creds: Vec<(&'static str, &Secret)> = key.iter().map(|k| ("api-key", k)).collect();
        let client = |version: &'static str| {
            HttpClient::new(
                &PineconeApi,
                &control,
                &creds,
                &[("x-pinecone-api-version", version)],
                options,
            )
        };
        let control_client = client(API_VERSION)?;
        let control_documents = client(DOCUMENTS_API_VERSION)?.answered_with(&control_client);
        Ok(Pinecone {
            control: control_client,
            control_documents,
            options: options.clone(),
            data_override: url.param("host").map(str::to_owned),
            key,
            tls: !control.starts_with("http://"),
            index,
            cloud: url.param("cloud").unwrap_or("aws").to_owned(),
            region: url.param("region").unwrap_or("us-east-1").to_owned(),
            kind,
            document_field,
        })
    }

    fn data_client(&self, host: &str, kind: Kind) -> Result<HttpClient> {
        let base = if host.contains("://") {
            host.to_owned()
        } else {
            format!("{}://{host}", if self.tls { "https" } else { "http" })
        };
        let version = match kind {
            Kind::Legacy => API_VERSION,
            Kind::Document => DOCUMENTS_API_VERSION,
        };
        let creds: Vec<(&'static str, &Secret)> = self.key.iter().map(|k| ("api-key", k)).collect();
        Ok(HttpClient::new(
            &PineconeApi,
            &base,
            &creds,
            &[("x-pinecone-api-version", version)],
            &self.options,
        )?
        .answered_with(&self.control))
    }

    async fn describe_with(&self, control: &HttpClient, name: &str) -> Result<Option<IndexModel>> {
        let resp = control
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
            return Err(control.fail("describe index", &resp));
        }
        Ok(Some(
            decode_json(resp.body, control.base(), "describe index").await?,
        ))
    }

    /// The index `name` and its kind, `None` when it does not exist. A
    /// 2025-10 answer that does not tell the kind (no schema, no dimension)
    /// is asked again on API 2026-07.
    async fn describe_index(&self, name: &str) -> Result<Option<(IndexModel, Kind)>> {
        let Some(model) = self.describe_with(&self.control, name).await? else {
            return Ok(None);
        };
        if let Some(kind) = kind_of(&serde_json::to_value(&model).unwrap_or_default()) {
            return Ok(Some((model, kind)));
        }
        match self.describe_with(&self.control_documents, name).await? {
            Some(m) => {
                let kind =
                    kind_of(&serde_json::to_value(&m).unwrap_or_default()).unwrap_or(Kind::Legacy);
                Ok(Some((m, kind)))
            }
            None => Ok(Some((model, Kind::Legacy))),
        }
    }

    async fn index_model(&self, name: &str) -> Result<(IndexModel, Kind)> {
        self.describe_index(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: format!("index `{name}` on {}", self.control.base()),
                hint: Some("`vecport ls` lists the indexes".into()),
            })
    }

    fn data_for(&self, model: &IndexModel, kind: Kind) -> Result<HttpClient> {
        match (&self.data_override, &model.host) {
            (Some(h), _) | (None, Some(h)) => self.data_client(h, kind),
            (None, None) => Err(Error::Protocol {
                endpoint: self.control.base().to_owned(),
                operation: "describe index".into(),
                message: format!("index `{}` has no host yet", model.name),
            }),
        }
    }

    /// The kind of index an import of a snapshot described by `spec`
    /// creates: `?kind=`, else a document index for a snapshot of one and
    /// a legacy vector index for any other.
    fn import_kind(&self, spec: &CollectionSpec) -> Kind {
        self.kind.unwrap_or_else(|| {
            if kind_of(&spec.raw_config) == Some(Kind::Document) {
                Kind::Document
            } else {
                Kind::Legacy
            }
        })
    }

    async fn total_count(data: &HttpClient) -> Result<Option<u64>> {
        let stats: Value = data
            .call(
                Method::POST,
                "/describe_index_stats",
                Some(json!({})),
                "describe index stats",
            )
            .await?;
        Ok(stats["totalVectorCount"].as_u64())
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
        location.insert("documents_api_version".into(), json!(DOCUMENTS_API_VERSION));
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
            let kind =
                kind_of(&serde_json::to_value(&model).unwrap_or_default()).unwrap_or(Kind::Legacy);
            let count = match self.data_for(&model, kind) {
                Ok(data) => Pinecone::total_count(&data).await.ok().flatten(),
                Err(_) => None,
            };
            let (dimension, metric) = match kind {
                Kind::Legacy => (model.dimension, model.metric.as_deref().and_then(metric_of)),
                Kind::Document => documents::dense_field(&model)
                    .map(|(_, d, m)| (d, m))
                    .unwrap_or_default(),
            };
            out.push(CollectionSummary {
                name: model.name.clone(),
                dimension,
                metric,
                count,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let (model, kind) = self.index_model(name).await?;
        let data = self.data_for(&model, kind)?;
        let count = Pinecone::total_count(&data).await?;
        let mut spec = match kind {
            Kind::Legacy => legacy::spec_of(&model, count),
            Kind::Document => documents::spec_of(&model, count, self.document_field.as_deref())?,
        };
        spec.notes.push("pinecone's describe_index_stats is eventually consistent: the count before the export may lag recent writes".into());
        Ok(spec)
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let (model, kind) = self.index_model(&spec.name).await?;
        let data = self.data_for(&model, kind)?;
        if kind == Kind::Document {
            let ns = namespace.unwrap_or(wire::DEFAULT_NAMESPACE);
            return documents::search(&data, field, vector, k, ns).await;
        }
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
        let kinds: Arc<Vec<VectorKind>> = Arc::new(spec.vectors.iter().map(|f| f.kind).collect());
        let concurrency = options.concurrency.max(1);
        let setup = async move {
            let (model, kind) = self.index_model(&spec.name).await?;
            let data = Arc::new(self.data_for(&model, kind)?);
            let mut namespaces = wire::namespaces(&data, kind == Kind::Legacy).await?;
            // In a fixed order, so that a cursor names a place in it.
            namespaces.sort();
            let layout = Arc::new(Layout::for_export(
                &model,
                spec,
                self.document_field.as_deref(),
            ));
            Ok::<_, Error>((data, kind, namespaces, layout))
        };
        let start = options.start.clone();
        stream::once(setup)
            .map(move |setup| match setup {
                Err(e) => stream::once(futures::future::ready(Err(e))).boxed(),
                Ok((data, kind, namespaces, layout)) => {
                    let pages = match (options.ids_from.clone(), kind) {
                        (Some(path), _) => wire::ids_from_file(path, namespaces, start.as_ref()),
                        (None, Kind::Legacy) => {
                            legacy::listed_ids(data.clone(), namespaces, start.as_ref())
                        }
                        (None, Kind::Document) => {
                            documents::listed_ids(data.clone(), namespaces, start.as_ref())
                        }
                    };
                    let kinds = kinds.clone();
                    pages
                        .map(move |page| {
                            let data = data.clone();
                            let (layout, kinds) = (layout.clone(), kinds.clone());
                            async move {
                                let (ns, ids, cursor) = page?;
                                let records = match kind {
                                    Kind::Legacy => {
                                        let mut records = Vec::with_capacity(ids.len());
                                        for group in legacy::fetch_groups(ids) {
                                            records.extend(
                                                legacy::fetch(
                                                    &data,
                                                    &ns,
                                                    group,
                                                    sparse_slot,
                                                    slots,
                                                )
                                                .await?,
                                            );
                                        }
                                        records
                                    }
                                    Kind::Document => {
                                        documents::fetch(&data, &ns, ids, layout, kinds).await?
                                    }
                                };
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
        let mut notes = match self.import_kind(spec) {
            Kind::Legacy => vec![
                "pinecone indexes hold one dense and one sparse vector: field names are not kept"
                    .to_owned(),
            ],
            Kind::Document => {
                let layout = Layout::for_import(spec);
                let renamed: Vec<String> = spec
                    .vectors
                    .iter()
                    .zip(&layout.vectors)
                    .filter(|(f, n)| f.name != **n)
                    .map(|(f, n)| format!("{:?} → {n:?}", f.name))
                    .collect();
                let mut notes = vec![format!(
                    "a pinecone document index (API {DOCUMENTS_API_VERSION}) is created; metadata keys become top-level fields{}",
                    layout
                        .document
                        .as_ref()
                        .map(|d| format!(", documents go to the full-text field {d:?}"))
                        .unwrap_or_default()
                )];
                if !renamed.is_empty() {
                    notes.push(format!(
                        "vector fields named as pinecone takes them: {}",
                        renamed.join(", ")
                    ));
                }
                notes
            }
        };
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
        match self.import_kind(spec) {
            Kind::Legacy => legacy::check(spec, record),
            Kind::Document => documents::check(spec, &Layout::for_import(spec), record),
        }
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        if !wire::valid_index_name(target) {
            return Err(Error::Usage(format!(
                "`{target}` is not a valid Pinecone index name (1–45 lower-case letters, digits and `-`); choose another with --rename"
            )));
        }
        let kind = self.import_kind(spec);
        let dense = spec.vectors.iter().find(|f| f.kind == VectorKind::Dense);
        if let Some(d) = dense.and_then(|f| f.dimension)
            && !(1..=MAX_DIMENSION).contains(&d)
        {
            return Err(Error::not_supported(
                "pinecone",
                format!(
                    "dense vectors of dimension {d} (pinecone takes 1 to {MAX_DIMENSION}); nothing was created"
                ),
            ));
        }
        let metric = dense.and_then(|f| f.metric).unwrap_or(Metric::Dot);
        let pc_metric = pinecone_metric(metric)
            .ok_or_else(|| Error::not_supported("pinecone", format!("the {metric} metric")))?;
        let layout = Layout::for_import(spec);
        let found = self.describe_index(target).await?;
        let (model, created) = match (found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(super::already_exists(
                    &format!("index `{target}`"),
                    self.control.base(),
                ));
            }
            (Some((m, found_kind)), ExistingTarget::Append) => {
                if found_kind != kind {
                    return Err(Error::Incompatible(format!(
                        "index `{target}` is a {} index, the import makes a {} index; nothing was written. Name the kind with ?kind={}, import under another name (--rename), or pass --if-exists replace",
                        describe_kind(found_kind),
                        describe_kind(kind),
                        found_kind.param()
                    )));
                }
                match kind {
                    Kind::Legacy => {
                        if m.dimension != dense.and_then(|f| f.dimension)
                            || m.metric.as_deref() != Some(pc_metric)
                        {
                            let or_none =
                                |d: Option<u32>| d.map_or("none".to_owned(), |d| d.to_string());
                            return Err(Error::Incompatible(format!(
                                "index `{target}` exists with dimension {} and metric {}, the snapshot needs dimension {} and metric {pc_metric}; nothing was written. Import under another name (--rename), or pass --if-exists replace to delete and recreate it",
                                or_none(m.dimension),
                                m.metric.as_deref().unwrap_or("none"),
                                or_none(dense.and_then(|f| f.dimension))
                            )));
                        }
                    }
                    Kind::Document => {
                        let theirs = documents::spec_of(&m, None, None)?.vectors;
                        let ours = documents::snapshot_names(&spec.vectors);
                        super::check_append(&format!("index `{target}`"), &theirs, &ours)?;
                    }
                }
                (m, None)
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
                match kind {
                    Kind::Legacy => self.create_legacy(target, spec, pc_metric).await?,
                    Kind::Document => self.create_document(target, spec, &layout).await?,
                }
                let model = self.wait_until_ready(target).await?;
                let created = Created {
                    control: self.control.clone(),
                    name: target.to_owned(),
                };
                (model, Some(created))
            }
        };
        let data = self.data_for(&model, kind)?;
        Ok(match kind {
            Kind::Legacy => Arc::new(LegacyWriter {
                data,
                fields: spec.vectors.clone(),
                created,
            }),
            Kind::Document => Arc::new(DocumentWriter {
                data,
                layout,
                kinds: spec.vectors.iter().map(|f| f.kind).collect(),
                written: AtomicU64::new(0),
                created,
            }),
        })
    }
}

fn describe_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Legacy => "legacy vector",
        Kind::Document => "document",
    }
}

impl Pinecone {
    /// Creates a legacy vector index (API 2025-10), as vecport always has.
    async fn create_legacy(&self, target: &str, spec: &CollectionSpec, metric: &str) -> Result<()> {
        let dense = spec.vectors.iter().find(|f| f.kind == VectorKind::Dense);
        let from_pinecone = spec
            .raw_config
            .get("spec")
            .filter(|s| s.get("serverless").is_some());
        let mut body = json!({
            "name": target,
            "metric": metric,
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
        Ok(())
    }

    /// Creates a document index (API 2026-07) with the schema `layout`
    /// gives the snapshot, where the source's deployment was (a Pinecone
    /// source) or on `?cloud=`/`?region=`.
    async fn create_document(
        &self,
        target: &str,
        spec: &CollectionSpec,
        layout: &Layout,
    ) -> Result<()> {
        let raw = &spec.raw_config;
        let deployment = match (
            raw.get("deployment").filter(|d| d.is_object()),
            raw.get("spec").and_then(|s| s.get("serverless")),
        ) {
            (Some(d), _) => d.clone(),
            (None, Some(s)) => {
                json!({"deployment_type": "managed", "cloud": s["cloud"], "region": s["region"]})
            }
            (None, None) => {
                json!({"deployment_type": "managed", "cloud": self.cloud, "region": self.region})
            }
        };
        let mut body = json!({
            "name": target,
            "schema": {"fields": layout.schema(spec)},
            "deployment": deployment,
        });
        if let Some(tags) = spec
            .collection_metadata
            .as_ref()
            .filter(|_| raw.get("tags").is_some())
        {
            body["tags"] = Value::Object(tags.clone());
        }
        let _: Value = self
            .control_documents
            .call(Method::POST, "/indexes", Some(body), "create index")
            .await?;
        Ok(())
    }

    async fn wait_until_ready(&self, name: &str) -> Result<IndexModel> {
        let started = Instant::now();
        loop {
            if let Some((m, _)) = self.describe_index(name).await?
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
        while self.describe_with(&self.control, name).await?.is_some() {
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
