//! `memory://STORE/COLLECTION`: an in-process database. It runs the connector
//! conformance suite on every `cargo test` and serves in-process pipelines;
//! stores live as long as the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;

use crate::error::{Error, Result};
use crate::mapping::MetadataRules;
use crate::model::{CollectionSpec, CollectionSummary, IdKind, Metric, Record, VectorKind};

use super::{
    BatchLimits, Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Page,
    ScanOptions, Sink, Source, SourceDescription,
};

/// Records keyed by (namespace, id) so that a scan has a stable order.
type Key = (Option<String>, String);

#[derive(Debug, Default)]
struct Collection {
    spec: CollectionSpec,
    records: BTreeMap<Key, Record>,
}

type Store = Arc<Mutex<HashMap<String, Collection>>>;

static STORES: LazyLock<Mutex<HashMap<String, Store>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every capability; what `memory://` offers unless a test narrows it.
pub const FULL: Capabilities = Capabilities {
    metadata: MetadataRules {
        numbers: crate::mapping::Numbers::Decimal,
        ..MetadataRules::ANY
    },
    max_dense_fields: usize::MAX,
    sparse: true,
    multivector: true,
    named_vectors: true,
    namespaces: true,
    documents: true,
    uris: true,
    metrics: &[
        Metric::Cosine,
        Metric::Dot,
        Metric::L2,
        Metric::Manhattan,
        Metric::Hamming,
    ],
    id_kinds: &[
        IdKind::String,
        IdKind::Uint,
        IdKind::Uuid,
        IdKind::UintOrUuid,
    ],
};

/// The in-memory connector.
#[derive(Debug, Clone)]
pub struct Memory {
    store_name: String,
    store: Store,
    collection: Option<String>,
    capabilities: Capabilities,
    max_records: usize,
}

impl Memory {
    /// Opens `memory://STORE[/COLLECTION]`.
    pub fn open(url: &ConnectorUrl) -> Result<Memory> {
        let name = url.host().unwrap_or_default().to_owned();
        Ok(Memory::new(&name, url.collection(), FULL))
    }

    /// A connector on store `name` with the given capabilities.
    pub fn new(name: &str, collection: Option<&str>, capabilities: Capabilities) -> Memory {
        let store = lock(&STORES).entry(name.to_owned()).or_default().clone();
        Memory {
            store_name: name.to_owned(),
            store,
            collection: collection.map(str::to_owned),
            capabilities,
            max_records: 500,
        }
    }

    /// Records per write request (to exercise batching in tests).
    pub fn with_max_records(mut self, n: usize) -> Memory {
        self.max_records = n;
        self
    }

    /// Removes a collection, if it exists.
    pub fn drop_collection(&self, name: &str) {
        lock(&self.store).remove(name);
    }

    fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            what: format!("collection `{name}` in memory://{}", self.store_name),
            hint: Some("`vecport ls` lists the collections".into()),
        }
    }
}

impl Endpoint for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn endpoint(&self) -> String {
        format!("memory://{}", self.store_name)
    }

    fn collection_in_url(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

#[async_trait]
impl Source for Memory {
    async fn describe(&self) -> Result<SourceDescription> {
        Ok(SourceDescription::default())
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let store = lock(&self.store);
        let mut out: Vec<_> = store
            .iter()
            .map(|(name, c)| CollectionSummary {
                name: name.clone(),
                dimension: c.spec.vectors.first().and_then(|v| v.dimension),
                metric: c.spec.vectors.first().and_then(|v| v.metric),
                count: Some(c.records.len() as u64),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let store = lock(&self.store);
        let c = store.get(name).ok_or_else(|| self.not_found(name))?;
        let mut spec = c.spec.clone();
        spec.name = name.to_owned();
        spec.count_hint = Some(c.records.len() as u64);
        Ok(spec)
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let page_size = options.page_size.max(1);
        let start: Option<Key> = options.start.and_then(|c| serde_json::from_value(c).ok());
        futures::stream::unfold(Some(start), move |after| async move {
            let after = after?;
            let store = lock(&self.store);
            let Some(c) = store.get(&spec.name) else {
                return Some((Err(self.not_found(&spec.name)), None));
            };
            let range = match &after {
                Some(k) => c
                    .records
                    .range::<Key, _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
                None => c.records.range::<Key, _>(..),
            };
            let records: Vec<Record> = range.take(page_size).map(|(_, r)| r.clone()).collect();
            let last = records
                .last()
                .map(|r| (r.namespace.clone(), r.id.to_string()));
            let next = if records.len() == page_size {
                last
            } else {
                None
            };
            let cursor = next.as_ref().map(|k| json!(k));
            let state = next.map(Some);
            Some((
                Ok(Page {
                    records,
                    next: cursor,
                }),
                state,
            ))
        })
        .boxed()
    }
}

#[async_trait]
impl Sink for Memory {
    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        for (slot, dim) in record.vectors.iter().zip(dense_dims(spec)) {
            if let (Some(v), Some(dim)) = (slot, dim)
                && let Some(d) = v.as_dense()
                && d.len() != dim as usize
            {
                return Err(Error::InvalidData(format!(
                    "record {:?}: {} values, the collection's dimension is {dim}",
                    record.id.to_string(),
                    d.len()
                )));
            }
        }
        Ok(())
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        let mut store = lock(&self.store);
        match (store.get(target), existing) {
            (Some(_), ExistingTarget::Refuse) => {
                return Err(Error::Incompatible(format!(
                    "collection `{target}` already exists in memory://{}; choose another name, or allow appending or replacing",
                    self.store_name
                )));
            }
            (Some(c), ExistingTarget::Append) => {
                let dims = |s: &CollectionSpec| {
                    s.vectors
                        .iter()
                        .map(|v| (v.name.clone(), v.kind, v.dimension, v.metric))
                        .collect::<Vec<_>>()
                };
                if dims(&c.spec) != dims(spec) {
                    return Err(Error::Incompatible(format!(
                        "collection `{target}` exists with other vector fields, dimensions or metrics than the snapshot's"
                    )));
                }
            }
            (Some(_), ExistingTarget::Replace) | (None, _) => {
                let mut spec = spec.clone();
                spec.name = target.to_owned();
                spec.count_hint = None;
                store.insert(
                    target.to_owned(),
                    Collection {
                        spec,
                        records: BTreeMap::new(),
                    },
                );
            }
        }
        Ok(Arc::new(MemoryWriter {
            store: self.store.clone(),
            name: target.to_owned(),
            max_records: self.max_records,
        }))
    }
}

struct MemoryWriter {
    store: Store,
    name: String,
    max_records: usize,
}

fn dense_dims(spec: &CollectionSpec) -> impl Iterator<Item = Option<u32>> + '_ {
    spec.vectors.iter().map(|v| {
        (v.kind == VectorKind::Dense)
            .then_some(v.dimension)
            .flatten()
    })
}

#[async_trait]
impl CollectionWriter for MemoryWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: self.max_records,
            max_bytes: 8 << 20,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        let mut store = lock(&self.store);
        let c = store.get_mut(&self.name).ok_or_else(|| Error::NotFound {
            what: format!("collection `{}` (deleted during the import?)", self.name),
            hint: None,
        })?;
        for r in records {
            c.records.insert((r.namespace.clone(), r.id.to_string()), r);
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64> {
        let store = lock(&self.store);
        Ok(store.get(&self.name).map_or(0, |c| c.records.len() as u64))
    }

    async fn discard(&self) -> Result<bool> {
        lock(&self.store).remove(&self.name);
        Ok(true)
    }
}
