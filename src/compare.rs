//! Compare two collections — each in a database or a snapshot — record by
//! record: counts per namespace, missing, extra and differing ids, vectors
//! exactly or within a tolerance whose reason is stated.
//!
//! Memory stays bounded however large the collections: both sides stream into
//! hash partitions on disk (CBOR), then one partition at a time is held in
//! memory and matched by `(namespace, id)`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;

use crate::connectors::{self, Connector, ScanOptions};
use crate::error::{Error, Result};
use crate::model::{
    CollectionSpec, Metadata, Metric, Record, RecordId, StoredValues, Vector, VectorField,
    VectorKind,
};
use crate::snapshot::Snapshot;

/// One side of a comparison.
pub enum Side {
    /// A snapshot directory.
    Snapshot(Arc<Snapshot>),
    /// A database.
    Database(Arc<dyn Connector>),
}

impl Side {
    /// A snapshot when `arg` is a directory holding `manifest.json` or an
    /// object-storage location (`s3://`, `az://`, `gs://`, `https://`, …),
    /// else a database URL.
    pub fn open(arg: &str, connect: &connectors::ConnectOptions) -> Result<Side> {
        if crate::storage::is_location_url(arg) {
            let location = crate::storage::Location::parse(arg)?;
            return Ok(Side::Snapshot(Arc::new(Snapshot::open_at(&location)?)));
        }
        let path = Path::new(arg);
        if path.join("manifest.json").is_file() {
            return Ok(Side::Snapshot(Arc::new(Snapshot::open(path)?)));
        }
        if path.is_dir() {
            return Err(Error::invalid(
                path,
                "is a directory without manifest.json: not a snapshot",
            ));
        }
        Ok(Side::Database(connectors::open(arg, connect)?))
    }

    /// What the side is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Side::Snapshot(s) => s.root().to_string(),
            Side::Database(c) => c.endpoint(),
        }
    }

    /// The collections the side offers (the one its URL names, if any).
    pub async fn collections(&self) -> Result<Vec<String>> {
        match self {
            Side::Snapshot(s) => Ok(s
                .manifest()
                .collections
                .iter()
                .map(|c| c.name.clone())
                .collect()),
            Side::Database(c) => match c.collection_in_url() {
                Some(name) => Ok(vec![name.to_owned()]),
                None => Ok(c.list().await?.into_iter().map(|c| c.name).collect()),
            },
        }
    }

    /// The vector fields, the expected record count and the record stream.
    async fn open_collection(&self, name: &str) -> Result<Opened> {
        match self {
            Side::Snapshot(s) => {
                let c = s.collection(name).ok_or_else(|| Error::NotFound {
                    what: format!("collection `{name}` in snapshot {}", s.root()),
                    hint: None,
                })?;
                let fields = c.vectors.iter().map(|v| v.field.clone()).collect();
                let count = c.record_count;
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let (s, name) = (s.clone(), name.to_owned());
                tokio::task::spawn_blocking(move || {
                    let Some(c) = s.collection(&name) else { return };
                    for batch in s.records(c, 4096) {
                        if tx.blocking_send(batch).is_err() {
                            return;
                        }
                    }
                });
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|b| (b, rx))
                })
                .boxed();
                Ok(Opened {
                    fields,
                    count,
                    stream,
                    spec: None,
                })
            }
            Side::Database(conn) => {
                let spec = conn.collection(name).await?;
                let count = spec.count_hint.unwrap_or(0);
                let fields = spec.vectors.clone();
                let stream = async_stream(conn.clone(), spec.clone());
                Ok(Opened {
                    fields,
                    count,
                    stream,
                    spec: Some(spec),
                })
            }
        }
    }
}

type RecordStream = BoxStream<'static, Result<Vec<Record>>>;

/// One side's collection, opened.
struct Opened {
    fields: Vec<VectorField>,
    /// Expected record count (the manifest's, or the database's own).
    count: u64,
    stream: RecordStream,
    /// The database's description of it (`None` for a snapshot).
    spec: Option<CollectionSpec>,
}

/// A database scan as a `'static` stream: the connector and spec move into
/// a task that forwards pages through a channel.
fn async_stream(conn: Arc<dyn Connector>, spec: crate::model::CollectionSpec) -> RecordStream {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut pages = conn.scan(&spec, ScanOptions::default());
        while let Some(page) = pages.next().await {
            let failed = page.is_err();
            if tx.send(page.map(|p| p.records)).await.is_err() || failed {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }).boxed()
}

/// How to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// `(A name, B name)` pairs; empty: the only collection of each side, or
    /// the collections of the same name.
    pub pairs: Vec<(String, String)>,
    /// Compare about this many records (chosen by id hash, the same on both
    /// sides) instead of all.
    pub sample: Option<u64>,
    /// Largest difference allowed between vector components.
    pub tolerance: f32,
    /// Units in the last place by which metadata floats may differ.
    pub float_ulps: u64,
    /// Ids listed per kind of difference (0: all).
    pub max_ids: usize,
    /// Where the partitions go (a temporary directory inside it).
    pub work_dir: PathBuf,
    /// Records per partition, the most held in memory at once.
    pub partition_records: u64,
    /// Query vectors for search parity (0: none), taken from A's records.
    pub queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Search parity below this recall@k (of B against A, or against exact
    /// neighbours when A is a snapshot) makes the comparison fail.
    pub min_recall: Option<f64>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            pairs: Vec::new(),
            sample: None,
            tolerance: 0.0,
            float_ulps: 0,
            max_ids: 100,
            work_dir: std::env::temp_dir(),
            partition_records: 20_000,
            queries: 0,
            k: 10,
            min_recall: None,
        }
    }
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Comparison {
    /// Whether everything compared equal (within the tolerances).
    pub equal: bool,
    /// One entry per pair of collections.
    pub collections: Vec<CollectionComparison>,
    /// Collections only A has.
    pub only_in_a: Vec<String>,
    /// Collections only B has.
    pub only_in_b: Vec<String>,
}

/// One pair of collections compared.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CollectionComparison {
    /// Name in A.
    pub a: String,
    /// Name in B.
    pub b: String,
    /// Records per namespace (`None` is the default namespace, distinct
    /// from a namespace named `""`) in A and B.
    pub counts: Counts,
    /// Records compared (all, or the sample).
    pub compared: u64,
    /// In A, not in B.
    pub missing: IdList,
    /// In B, not in A.
    pub extra: IdList,
    /// In both, different.
    pub differing: Differing,
    /// Vector fields with values on one side only.
    pub fields_only_in_a: Vec<String>,
    /// See `fields_only_in_a`.
    pub fields_only_in_b: Vec<String>,
    /// Tolerances applied and why.
    pub tolerances: Vec<String>,
    /// Settings that differ (metric, dimension of a vector field).
    pub settings: Vec<String>,
    /// Search parity, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchParity>,
    /// Whether the search parity met `--min-recall`.
    #[serde(skip)]
    recall_ok: bool,
}

/// How alike the nearest neighbours of both sides are.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SearchParity {
    /// The vector field searched.
    pub field: String,
    /// The metric exact neighbours were computed with (A's).
    pub metric: Option<Metric>,
    /// Query vectors used.
    pub queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Mean recall@k of B's search against A's search (A a database).
    pub b_vs_a: Option<f64>,
    /// Mean recall@k of A's search against exact neighbours.
    pub a_vs_exact: Option<f64>,
    /// Mean recall@k of B's search against exact neighbours.
    pub b_vs_exact: Option<f64>,
}

/// Record counts by namespace; `None` is the default namespace. In JSON
/// each side is a list of `{"namespace": null | "name", "records": n}`, so
/// that the default namespace and a namespace named `""` stay apart.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Counts {
    /// A's.
    #[serde(serialize_with = "namespace_counts")]
    pub a: BTreeMap<Option<String>, u64>,
    /// B's.
    #[serde(serialize_with = "namespace_counts")]
    pub b: BTreeMap<Option<String>, u64>,
}

fn namespace_counts<S: serde::Serializer>(
    counts: &BTreeMap<Option<String>, u64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Entry<'a> {
        namespace: Option<&'a str>,
        records: u64,
    }
    s.collect_seq(counts.iter().map(|(ns, n)| Entry {
        namespace: ns.as_deref(),
        records: *n,
    }))
}

/// Ids of one kind of difference.
#[derive(Debug, Clone, Serialize, Default)]
pub struct IdList {
    /// How many.
    pub count: u64,
    /// The first of them, `namespace/id` when not in the default namespace.
    pub ids: Vec<String>,
}

/// Records that differ, and in what.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Differing {
    /// How many.
    pub count: u64,
    /// The first of them with what differs.
    pub records: Vec<DifferingRecord>,
    /// Differences by what differs (`vector ""`, `metadata`, `document`, `uri`).
    pub by_part: BTreeMap<String, u64>,
}

/// One record that differs.
#[derive(Debug, Clone, Serialize)]
pub struct DifferingRecord {
    /// `namespace/id`, or the id in the default namespace.
    pub id: String,
    /// What differs.
    pub what: Vec<String>,
}

impl CollectionComparison {
    fn equal(&self) -> bool {
        self.missing.count == 0
            && self.extra.count == 0
            && self.differing.count == 0
            && self.counts.a == self.counts.b
            && self.fields_only_in_a.is_empty()
            && self.fields_only_in_b.is_empty()
            && self.settings.is_empty()
            && self.recall_ok
    }
}

/// Compares `a` with `b`.
pub async fn compare(a: &Side, b: &Side, options: &CompareOptions) -> Result<Comparison> {
    let names_a = a.collections().await?;
    let names_b = b.collections().await?;
    let mut out = Comparison::default();
    let pairs: Vec<(String, String)> = if !options.pairs.is_empty() {
        options.pairs.clone()
    } else if names_a.len() == 1 && names_b.len() == 1 {
        vec![(names_a[0].clone(), names_b[0].clone())]
    } else {
        out.only_in_a = names_a
            .iter()
            .filter(|n| !names_b.contains(n))
            .cloned()
            .collect();
        out.only_in_b = names_b
            .iter()
            .filter(|n| !names_a.contains(n))
            .cloned()
            .collect();
        names_a
            .iter()
            .filter(|n| names_b.contains(n))
            .map(|n| (n.clone(), n.clone()))
            .collect()
    };
    for (na, nb) in pairs {
        out.collections
            .push(compare_collection(a, b, &na, &nb, options).await?);
    }
    out.equal = out.only_in_a.is_empty()
        && out.only_in_b.is_empty()
        && out.collections.iter().all(CollectionComparison::equal);
    Ok(out)
}

/// The partition and sample key of a record.
type Key = (Option<String>, RecordId);

fn display_key(k: &Key) -> String {
    match &k.0 {
        Some(ns) => format!("{ns}/{}", k.1),
        None => k.1.to_string(),
    }
}

/// Hashes that are the same on both sides and in every run.
fn stable_hash(k: &Key) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(k.0.as_deref().unwrap_or("").as_bytes());
    h.update(&[0]);
    h.update(k.1.to_string().as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Both sides' records of one collection spilled into hash partitions.
struct Spill {
    dir: tempfile::TempDir,
    partitions: u64,
}

impl Spill {
    fn path(&self, side: char, i: u64) -> PathBuf {
        self.dir.path().join(format!("{side}-{i:05}.cbor"))
    }

    /// Streams `records` into this side's partitions; returns counts per
    /// namespace (of all records, sampled or not).
    async fn fill(
        &self,
        side: char,
        mut records: RecordStream,
        keep: impl Fn(u64) -> bool,
    ) -> Result<BTreeMap<Option<String>, u64>> {
        let mut files: Vec<BufWriter<File>> = (0..self.partitions)
            .map(|i| {
                let path = self.path(side, i);
                File::create(&path)
                    .map(BufWriter::new)
                    .map_err(|e| Error::io(path, e))
            })
            .collect::<Result<_>>()?;
        let mut counts = BTreeMap::new();
        while let Some(batch) = records.next().await {
            for r in batch? {
                *counts.entry(r.namespace.clone()).or_insert(0) += 1;
                let h = stable_hash(&(r.namespace.clone(), r.id.clone()));
                if !keep(h) {
                    continue;
                }
                let i = h % self.partitions;
                ciborium::into_writer(&r, &mut files[i as usize])
                    .map_err(|e| Error::io(self.path(side, i), std::io::Error::other(e)))?;
            }
        }
        for (i, f) in files.into_iter().enumerate() {
            f.into_inner()
                .map_err(|e| Error::io(self.path(side, i as u64), e.into_error()))?;
        }
        Ok(counts)
    }

    /// Reads one partition back.
    fn read(&self, side: char, i: u64) -> Result<impl Iterator<Item = Result<Record>> + use<>> {
        let path = self.path(side, i);
        let mut reader = BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        Ok(std::iter::from_fn(move || {
            use std::io::BufRead;
            match reader.fill_buf() {
                Ok([]) => None,
                Ok(_) => Some(
                    ciborium::from_reader::<Record, _>(&mut reader)
                        .map_err(|e| Error::io(&path, std::io::Error::other(e.to_string()))),
                ),
                Err(e) => Some(Err(Error::io(&path, e))),
            }
        }))
    }
}

async fn compare_collection(
    a: &Side,
    b: &Side,
    name_a: &str,
    name_b: &str,
    options: &CompareOptions,
) -> Result<CollectionComparison> {
    let Opened {
        fields: fields_a,
        count: count_a,
        stream: stream_a,
        spec: spec_a,
    } = a.open_collection(name_a).await?;
    let Opened {
        fields: fields_b,
        count: count_b,
        stream: stream_b,
        spec: spec_b,
    } = b.open_collection(name_b).await?;
    let expected = options
        .sample
        .unwrap_or(count_a.max(count_b))
        .min(count_a.max(count_b));
    let partitions = expected
        .div_ceil(options.partition_records.max(1))
        .clamp(1, 512);
    let spill = Spill {
        dir: tempfile::Builder::new()
            .prefix(".vecport-compare-")
            .tempdir_in(&options.work_dir)
            .map_err(|e| Error::io(&options.work_dir, e))?,
        partitions,
    };
    // A sample is every record whose id hash falls under a threshold.
    let threshold = match options.sample {
        Some(n) if count_a > n => (u64::MAX / count_a.max(1)).saturating_mul(n),
        _ => u64::MAX,
    };
    let keep = move |h: u64| h <= threshold;
    let counts_a = spill.fill('a', stream_a, keep).await?;
    let counts_b = spill.fill('b', stream_b, keep).await?;

    let plan = FieldPlan::new(&fields_a, &fields_b, options.tolerance);
    let mut out = CollectionComparison {
        a: name_a.to_owned(),
        b: name_b.to_owned(),
        counts: Counts {
            a: counts_a,
            b: counts_b,
        },
        recall_ok: true,
        settings: plan.settings.clone(),
        tolerances: plan
            .reasons
            .iter()
            .cloned()
            .chain([
                "metadata numbers compared by value: an integer equals the same float".to_owned(),
            ])
            .chain((options.float_ulps > 0).then(|| {
                format!(
                    "metadata floats within {} ulps (--float-ulps)",
                    options.float_ulps
                )
            }))
            .collect(),
        ..CollectionComparison::default()
    };
    let mut only_a = vec![0u64; plan.only_a.len()];
    let mut only_b = vec![0u64; plan.only_b.len()];
    let listed = |list: &Vec<String>| options.max_ids == 0 || list.len() < options.max_ids;
    for i in 0..spill.partitions {
        let mut held: HashMap<Key, Record> = HashMap::new();
        for r in spill.read('a', i)? {
            let r = r?;
            for (n, &slot) in plan.only_a.iter().enumerate() {
                only_a[n] += u64::from(r.vectors[slot].is_some());
            }
            held.insert((r.namespace.clone(), r.id.clone()), r);
        }
        for r in spill.read('b', i)? {
            let r = r?;
            for (n, &slot) in plan.only_b.iter().enumerate() {
                only_b[n] += u64::from(r.vectors[slot].is_some());
            }
            let key = (r.namespace.clone(), r.id.clone());
            out.compared += 1;
            let Some(ra) = held.remove(&key) else {
                out.extra.count += 1;
                if listed(&out.extra.ids) {
                    out.extra.ids.push(display_key(&key));
                }
                continue;
            };
            let what = plan.differences(&ra, &r, options.float_ulps);
            if !what.is_empty() {
                out.differing.count += 1;
                for w in &what {
                    let part = w.split(':').next().unwrap_or(w).to_owned();
                    *out.differing.by_part.entry(part).or_insert(0) += 1;
                }
                if options.max_ids == 0 || out.differing.records.len() < options.max_ids {
                    out.differing.records.push(DifferingRecord {
                        id: display_key(&key),
                        what,
                    });
                }
            }
        }
        let mut left: Vec<Key> = held.into_keys().collect();
        left.sort();
        out.compared += left.len() as u64;
        out.missing.count += left.len() as u64;
        for k in left {
            if listed(&out.missing.ids) {
                out.missing.ids.push(display_key(&k));
            }
        }
    }
    out.fields_only_in_a = plan
        .only_a
        .iter()
        .zip(&only_a)
        .filter(|(_, n)| **n > 0)
        .map(|(&slot, n)| format!("{:?} ({n} records)", fields_a[slot].name))
        .collect();
    out.fields_only_in_b = plan
        .only_b
        .iter()
        .zip(&only_b)
        .filter(|(_, n)| **n > 0)
        .map(|(&slot, n)| format!("{:?} ({n} records)", fields_b[slot].name))
        .collect();
    if options.queries > 0 {
        let sides = SearchSides {
            a: (a, spec_a.as_ref()),
            b: (b, spec_b.as_ref()),
        };
        let parity = search_parity(&spill, &plan, &fields_a, &fields_b, sides, options).await?;
        let reference = parity.b_vs_a.or(parity.b_vs_exact);
        out.recall_ok = match (options.min_recall, reference) {
            (Some(min), Some(r)) => r >= min,
            _ => true,
        };
        out.search = Some(parity);
    }
    Ok(out)
}

/// Both sides, with their database descriptions where they are databases.
struct SearchSides<'a> {
    a: (&'a Side, Option<&'a CollectionSpec>),
    b: (&'a Side, Option<&'a CollectionSpec>),
}

/// A query: its vector and namespace, taken from one of A's records.
struct Query {
    vector: Vec<f32>,
    namespace: Option<String>,
}

/// Distance under `metric`: smaller is nearer.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let pairs = a.iter().zip(b).map(|(x, y)| (f64::from(*x), f64::from(*y)));
    match metric {
        Metric::Cosine => {
            let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
            for (x, y) in pairs {
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
            if na == 0.0 || nb == 0.0 {
                1.0
            } else {
                1.0 - dot / (na.sqrt() * nb.sqrt())
            }
        }
        Metric::Dot => -pairs.map(|(x, y)| x * y).sum::<f64>(),
        Metric::L2 => pairs.map(|(x, y)| (x - y) * (x - y)).sum(),
        Metric::Manhattan => pairs.map(|(x, y)| (x - y).abs()).sum(),
        Metric::Hamming => pairs.filter(|(x, y)| x != y).count() as f64,
    }
}

/// The `k` exact nearest neighbours of each query among `records`, kept as
/// bounded max-heaps of `(distance, id)`.
pub struct ExactNeighbours {
    k: usize,
    heaps: Vec<std::collections::BinaryHeap<(OrderedF64, RecordId)>>,
}

/// An `f64` with a total order, for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedF64(f64);
impl Eq for OrderedF64 {}
impl PartialOrd for OrderedF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl ExactNeighbours {
    /// Neighbours of `queries` queries, `k` each.
    pub fn new(queries: usize, k: usize) -> ExactNeighbours {
        ExactNeighbours {
            k,
            heaps: (0..queries).map(|_| Default::default()).collect(),
        }
    }

    /// Offers one record at `distance` to query `q`.
    pub fn offer(&mut self, q: usize, distance: f64, id: &RecordId) {
        let heap = &mut self.heaps[q];
        let d = OrderedF64(distance);
        if heap.len() < self.k {
            heap.push((d, id.clone()));
        } else if heap.peek().is_some_and(|(worst, _)| d < *worst) {
            heap.pop();
            heap.push((d, id.clone()));
        }
    }

    /// The neighbours of each query, nearest first.
    pub fn into_ids(self) -> Vec<Vec<RecordId>> {
        self.heaps
            .into_iter()
            .map(|h| h.into_sorted_vec().into_iter().map(|(_, id)| id).collect())
            .collect()
    }
}

/// Mean over queries of |found ∩ reference| / |reference|.
pub fn mean_recall(found: &[Vec<RecordId>], reference: &[Vec<RecordId>]) -> f64 {
    let per: Vec<f64> = found
        .iter()
        .zip(reference)
        .filter(|(_, r)| !r.is_empty())
        .map(|(f, r)| {
            let hits = r.iter().filter(|id| f.contains(id)).count();
            hits as f64 / r.len() as f64
        })
        .collect();
    if per.is_empty() {
        1.0
    } else {
        per.iter().sum::<f64>() / per.len() as f64
    }
}

/// Every query through a side's own search; `None` for a snapshot.
async fn search_all(
    side: (&Side, Option<&CollectionSpec>),
    field: &str,
    queries: &[Query],
    k: usize,
) -> Result<Option<Vec<Vec<RecordId>>>> {
    let (Side::Database(conn), Some(spec)) = side else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        out.push(
            conn.search(spec, field, &q.vector, k, q.namespace.as_deref())
                .await?,
        );
    }
    Ok(Some(out))
}

async fn search_parity(
    spill: &Spill,
    plan: &FieldPlan,
    fields_a: &[VectorField],
    fields_b: &[VectorField],
    sides: SearchSides<'_>,
    options: &CompareOptions,
) -> Result<SearchParity> {
    let Some(&(slot_a, slot_b, ..)) = plan
        .matched
        .iter()
        .find(|m| fields_a[m.0].kind == VectorKind::Dense)
    else {
        return Err(Error::Usage(
            "search parity needs a dense vector field both sides have".into(),
        ));
    };
    let (field_a, field_b) = (&fields_a[slot_a], &fields_b[slot_b]);
    let metric = field_a.metric.or(field_b.metric).ok_or_else(|| {
        Error::Usage(format!(
            "search parity: the metric of vector field {:?} is unknown on both sides",
            field_a.name
        ))
    })?;
    // The queries: the records with the smallest id hashes, the same every run.
    let mut chosen: std::collections::BinaryHeap<(u64, RecordId)> = Default::default();
    let mut queries: HashMap<RecordId, Query> = HashMap::new();
    for i in 0..spill.partitions {
        for r in spill.read('a', i)? {
            let r = r?;
            let Some(Vector::Dense(v)) = &r.vectors[slot_a] else {
                continue;
            };
            let h = stable_hash(&(r.namespace.clone(), r.id.clone()));
            if chosen.len() < options.queries || chosen.peek().is_some_and(|(top, _)| h < *top) {
                if chosen.len() == options.queries
                    && let Some((_, gone)) = chosen.pop()
                {
                    queries.remove(&gone);
                }
                chosen.push((h, r.id.clone()));
                queries.insert(
                    r.id.clone(),
                    Query {
                        vector: v.clone(),
                        namespace: r.namespace.clone(),
                    },
                );
            }
        }
    }
    let mut order: Vec<(u64, RecordId)> = chosen.into_vec();
    order.sort();
    let queries: Vec<Query> = order
        .into_iter()
        .filter_map(|(_, id)| queries.remove(&id))
        .collect();
    let k = options.k.max(1);
    // Exact neighbours among A's records of the query's namespace.
    let mut exact = ExactNeighbours::new(queries.len(), k);
    for i in 0..spill.partitions {
        for r in spill.read('a', i)? {
            let r = r?;
            let Some(Vector::Dense(v)) = &r.vectors[slot_a] else {
                continue;
            };
            for (q, query) in queries.iter().enumerate() {
                if query.namespace == r.namespace {
                    exact.offer(q, distance(metric, &query.vector, v), &r.id);
                }
            }
        }
    }
    let exact = exact.into_ids();
    let found_a = search_all(sides.a, &field_a.name, &queries, k).await?;
    let found_b = search_all(sides.b, &field_b.name, &queries, k).await?;
    Ok(SearchParity {
        field: field_a.name.clone(),
        metric: Some(metric),
        queries: queries.len(),
        k,
        b_vs_a: found_a
            .as_ref()
            .zip(found_b.as_ref())
            .map(|(a, b)| mean_recall(b, a)),
        a_vs_exact: found_a.as_ref().map(|a| mean_recall(a, &exact)),
        b_vs_exact: found_b.as_ref().map(|b| mean_recall(b, &exact)),
    })
}

/// How the vector fields of the two sides line up, and with what tolerance.
struct FieldPlan {
    /// `(slot in A, slot in B, tolerance, normalise first)`, matched by name.
    matched: Vec<(usize, usize, f32, bool, String)>,
    only_a: Vec<usize>,
    only_b: Vec<usize>,
    reasons: Vec<String>,
    settings: Vec<String>,
}

impl FieldPlan {
    fn new(a: &[VectorField], b: &[VectorField], tolerance: f32) -> FieldPlan {
        let mut plan = FieldPlan {
            matched: Vec::new(),
            only_a: Vec::new(),
            only_b: Vec::new(),
            reasons: Vec::new(),
            settings: Vec::new(),
        };
        if tolerance > 0.0 {
            plan.reasons.push(format!(
                "vector components within {tolerance} (--tolerance)"
            ));
        }
        for (i, fa) in a.iter().enumerate() {
            let Some(j) = b.iter().position(|fb| fb.name == fa.name) else {
                plan.only_a.push(i);
                continue;
            };
            let fb = &b[j];
            if fa.metric.is_some() && fb.metric.is_some() && fa.metric != fb.metric {
                plan.settings.push(format!(
                    "vector {:?}: metric {} in A, {} in B",
                    fa.name,
                    fa.metric.map_or("?".into(), |m| m.to_string()),
                    fb.metric.map_or("?".into(), |m| m.to_string())
                ));
            }
            if fa.dimension.is_some() && fb.dimension.is_some() && fa.dimension != fb.dimension {
                plan.settings.push(format!(
                    "vector {:?}: dimension {:?} in A, {:?} in B",
                    fa.name, fa.dimension, fb.dimension
                ));
            }
            let stored = |f: &VectorField| f.stored_values;
            let (mut tol, mut normalise) = (tolerance, false);
            let name = format!("{:?}", fa.name);
            for (side, f) in [("A", fa), ("B", fb)] {
                match stored(f) {
                    StoredValues::Normalized => {
                        normalise = true;
                        tol = tol.max(1e-6);
                        plan.reasons.push(format!(
                            "vector {name}: {side} stores unit-length vectors (cosine normalisation): compared after normalising both, within {tol}"
                        ));
                    }
                    StoredValues::Rerounded => {
                        tol = tol.max(5e-7);
                        plan.reasons.push(format!(
                            "vector {name}: {side} changes the last bits of values on write: compared within {tol}"
                        ));
                    }
                    StoredValues::Lossy => {
                        tol = tol.max(1e-2);
                        plan.reasons.push(format!(
                            "vector {name}: {side} stores reduced precision ({}): compared within {tol}",
                            f.source_datatype.as_deref().unwrap_or("lossy")
                        ));
                    }
                    StoredValues::Exact => {}
                }
            }
            plan.matched.push((i, j, tol, normalise, name));
        }
        plan.only_b = (0..b.len())
            .filter(|j| !plan.matched.iter().any(|m| m.1 == *j))
            .collect();
        plan
    }

    /// What differs between two records with the same key.
    fn differences(&self, a: &Record, b: &Record, ulps: u64) -> Vec<String> {
        let mut what = Vec::new();
        for (i, j, tol, normalise, name) in &self.matched {
            let (va, vb) = (&a.vectors[*i], &b.vectors[*j]);
            if let Some(d) = vector_difference(va.as_ref(), vb.as_ref(), *tol, *normalise) {
                what.push(format!("vector {name}: {d}"));
            }
        }
        if !metadata_equal(a.metadata.as_ref(), b.metadata.as_ref(), ulps) {
            what.push(format!(
                "metadata: {} vs {}",
                short(a.metadata.as_ref()),
                short(b.metadata.as_ref())
            ));
        }
        if a.document != b.document {
            what.push("document".into());
        }
        if a.uri != b.uri {
            what.push("uri".into());
        }
        what
    }
}

fn short(m: Option<&Metadata>) -> String {
    let s = m.map_or("none".to_owned(), |m| Value::Object(m.clone()).to_string());
    crate::redact::excerpt(&s, 120)
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

/// How two values of one field differ, if they do beyond `tol`.
fn vector_difference(
    a: Option<&Vector>,
    b: Option<&Vector>,
    tol: f32,
    normalise: bool,
) -> Option<String> {
    let floats = |x: &[f32], y: &[f32]| -> Option<String> {
        if x.len() != y.len() {
            return Some(format!("{} values vs {}", x.len(), y.len()));
        }
        let (x, y) = if normalise {
            (unit(x), unit(y))
        } else {
            (x.to_vec(), y.to_vec())
        };
        let mut worst = 0f32;
        let mut differ = false;
        for (p, q) in x.iter().zip(&y) {
            let same = p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
            if !same {
                let d = (p - q).abs();
                if d.is_nan() || d > tol {
                    differ = true;
                }
                worst = worst.max(d);
            }
        }
        differ.then(|| format!("max |Δ| {worst:e}"))
    };
    match (a, b) {
        (None, None) => None,
        (Some(_), None) => Some("missing in B".into()),
        (None, Some(_)) => Some("missing in A".into()),
        (Some(Vector::Dense(x)), Some(Vector::Dense(y))) => floats(x, y),
        (Some(Vector::Sparse(x)), Some(Vector::Sparse(y))) => {
            if x.indices != y.indices {
                Some("sparse indices differ".into())
            } else {
                floats(&x.values, &y.values)
            }
        }
        (Some(Vector::Multi(x)), Some(Vector::Multi(y))) => {
            if x.len() != y.len() {
                return Some(format!("{} vectors vs {}", x.len(), y.len()));
            }
            x.iter().zip(y).find_map(|(p, q)| floats(p, q))
        }
        _ => Some("different kinds".into()),
    }
}

/// Metadata equality: numbers by value (an integer equals the same float:
/// some databases store every number as a float) within `ulps`.
pub fn metadata_equal(a: Option<&Metadata>, b: Option<&Metadata>, ulps: u64) -> bool {
    let empty = Metadata::new();
    json_equal(
        &Value::Object(a.unwrap_or(&empty).clone()),
        &Value::Object(b.unwrap_or(&empty).clone()),
        ulps,
    )
}

fn json_equal(a: &Value, b: &Value, ulps: u64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            if !x.is_f64() && !y.is_f64() {
                return false; // two different integers
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => {
                    p == q || (p.to_bits() as i64).abs_diff(q.to_bits() as i64) <= ulps
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q, ulps))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w, ulps)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_compare_by_value_within_ulps() {
        let m = |v: Value| v.as_object().cloned();
        assert!(metadata_equal(
            m(json!({"a": 3})).as_ref(),
            m(json!({"a": 3.0})).as_ref(),
            0
        ));
        assert!(!metadata_equal(
            m(json!({"a": 3})).as_ref(),
            m(json!({"a": 4})).as_ref(),
            0
        ));
        let next = f64::from_bits(0.1f64.to_bits() + 1);
        assert!(!metadata_equal(
            m(json!({"a": 0.1})).as_ref(),
            m(json!({"a": next})).as_ref(),
            0
        ));
        assert!(metadata_equal(
            m(json!({"a": 0.1})).as_ref(),
            m(json!({"a": next})).as_ref(),
            1
        ));
        assert!(metadata_equal(None, m(json!({})).as_ref(), 0));
    }

    #[test]
    fn vectors_compare_exactly_or_within_a_tolerance() {
        let d = |v: &[f32]| Vector::Dense(v.to_vec());
        assert_eq!(
            vector_difference(Some(&d(&[1.0, 2.0])), Some(&d(&[1.0, 2.0])), 0.0, false),
            None
        );
        assert!(vector_difference(Some(&d(&[0.0])), Some(&d(&[-0.0])), 0.0, false).is_none());
        assert!(vector_difference(Some(&d(&[1.0])), Some(&d(&[1.0001])), 0.0, false).is_some());
        assert!(vector_difference(Some(&d(&[1.0])), Some(&d(&[1.0001])), 1e-3, false).is_none());
        assert!(
            vector_difference(Some(&d(&[3.0, 4.0])), Some(&d(&[0.6, 0.8])), 1e-6, true).is_none()
        );
        assert!(vector_difference(Some(&d(&[1.0])), None, 0.0, false).is_some());
    }

    #[test]
    fn exact_neighbours_match_a_naive_sort() {
        let mut rng = fastrand::Rng::with_seed(3);
        let points: Vec<Vec<f32>> = (0..500)
            .map(|_| (0..6).map(|_| rng.f32() - 0.5).collect())
            .collect();
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2, Metric::Manhattan] {
            let queries = &points[..7];
            let mut exact = ExactNeighbours::new(queries.len(), 10);
            for (i, p) in points.iter().enumerate() {
                for (q, query) in queries.iter().enumerate() {
                    exact.offer(q, distance(metric, query, p), &RecordId::Uint(i as u64));
                }
            }
            let got = exact.into_ids();
            for (q, query) in queries.iter().enumerate() {
                let mut all: Vec<(f64, u64)> = points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (distance(metric, query, p), i as u64))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let naive: Vec<RecordId> =
                    all[..10].iter().map(|(_, i)| RecordId::Uint(*i)).collect();
                assert_eq!(got[q], naive, "{metric}");
            }
            assert_eq!(mean_recall(&got, &got), 1.0);
        }
        let a = vec![vec![RecordId::Uint(1), RecordId::Uint(2)]];
        let b = vec![vec![RecordId::Uint(2), RecordId::Uint(3)]];
        assert_eq!(mean_recall(&b, &a), 0.5);
    }

    #[test]
    fn the_partition_hash_is_stable() {
        let k: Key = (Some("ns".into()), RecordId::String("a".into()));
        assert_eq!(stable_hash(&k), stable_hash(&k.clone()));
        assert_ne!(
            stable_hash(&k),
            stable_hash(&(None, RecordId::String("a".into())))
        );
    }
}
