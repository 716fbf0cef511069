//! vector-io's VDF, read: `VDF_META.json` names each index and its
//! namespaces; each namespace's records are Parquet files under its
//! `data_path`, with the id column (`id_column`, default `id`), one column
//! per entry of `vector_columns`, and every other column a metadata key.
//! Each index becomes a collection; its namespaces become the snapshot's
//! namespaces (`""` is the default one). `metric` (VDF's `Cosine`, `Dot`,
//! `Euclid`, …) gives the vectors' metric, `model_name` the embedding model.

use std::fs;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{CollectionSpec, EmbeddingModel, Metric, Record};

use super::parquet::{ParquetReader, files_under};
use super::{ColumnMapping, Lossy, MetadataSource, ReadOptions, RecordReader};

/// The description of a VDF export.
pub const META_FILE: &str = "VDF_META.json";

#[derive(Debug, Deserialize)]
struct VdfMeta {
    #[serde(default)]
    exported_from: Option<String>,
    /// Index name → its namespaces, in the file's order.
    indexes: Map<String, Value>,
    #[serde(default)]
    id_column: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct NamespaceMeta {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    model_name: Option<String>,
    #[serde(default = "default_vector_columns")]
    vector_columns: Vec<String>,
    data_path: String,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    exported_vector_count: Option<u64>,
}

fn default_vector_columns() -> Vec<String> {
    vec!["vector".to_owned()]
}

/// VDF's metric names (vdf-io's `standardize_metric`).
fn metric_of(name: &str) -> Option<Metric> {
    match name.to_ascii_lowercase().as_str() {
        "cosine" => Some(Metric::Cosine),
        "dot" | "dotproduct" | "ip" | "inner_product" => Some(Metric::Dot),
        "euclid" | "euclidean" | "l2" => Some(Metric::L2),
        "manhattan" => Some(Metric::Manhattan),
        "hamming" => Some(Metric::Hamming),
        _ => None,
    }
}

/// Opens every index of the VDF export in `dir` as a collection.
pub fn open(dir: &Path, options: &ReadOptions) -> Result<Vec<Box<dyn RecordReader>>> {
    let path = dir.join(META_FILE);
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let meta: VdfMeta = serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidData(format!("{}: is not a VDF description: {e}", path.display()))
    })?;
    let mut out: Vec<Box<dyn RecordReader>> = Vec::new();
    if options.collection.is_some() && meta.indexes.len() > 1 {
        return Err(Error::Usage(format!(
            "{}: holds {} indexes; --collection names the collection of a single one",
            path.display(),
            meta.indexes.len()
        )));
    }
    for (index, namespaces) in &meta.indexes {
        let namespaces: Vec<NamespaceMeta> = serde_json::from_value(namespaces.clone())
            .map_err(|e| Error::InvalidData(format!("{}: index {index:?}: {e}", path.display())))?;
        let mut readers = Vec::new();
        for ns in &namespaces {
            let data = dir.join(&ns.data_path);
            let files = if data.is_dir() {
                files_under(&data)?
            } else {
                vec![data.clone()]
            };
            if files.is_empty() || !files[0].exists() {
                return Err(Error::InvalidData(format!(
                    "{}: index {index:?} namespace {:?}: no Parquet file at {}",
                    path.display(),
                    ns.namespace,
                    data.display()
                )));
            }
            let mapping = ColumnMapping {
                id: Some(meta.id_column.clone().unwrap_or_else(|| "id".to_owned())),
                vectors: ns
                    .vector_columns
                    .iter()
                    .map(|c| {
                        let field = if ns.vector_columns.len() == 1 {
                            String::new()
                        } else {
                            c.clone()
                        };
                        (c.clone(), field)
                    })
                    .collect(),
                sparse: None,
                document: None,
                uri: None,
                metadata: MetadataSource::Rest,
                namespace: None,
                ignore: Vec::new(),
            };
            let name = options.collection.clone().unwrap_or_else(|| index.clone());
            let mut reader = ParquetReader::from_files(files, name, &mapping, options)?;
            let metric = options
                .metric
                .or_else(|| ns.metric.as_deref().and_then(metric_of));
            let spec = reader.spec_mut();
            for f in &mut spec.vectors {
                f.metric = metric;
                if f.dimension.is_none() {
                    f.dimension = ns.dimensions;
                }
            }
            spec.count_hint = ns.exported_vector_count.or(spec.count_hint);
            spec.raw_config = serde_json::json!({
                "exported_from": meta.exported_from,
                "index": index,
                "namespaces": namespaces.iter().map(|n| n.namespace.clone()).collect::<Vec<_>>(),
            });
            let model = ns
                .model_name
                .clone()
                .filter(|m| !m.is_empty() && m != "NOT_PROVIDED")
                .map(|name| EmbeddingModel {
                    name,
                    dimension: ns.dimensions,
                });
            readers.push((ns.namespace.clone(), reader, model));
        }
        out.push(Box::new(IndexReader::new(readers)?));
    }
    Ok(out)
}

/// One VDF index: its namespaces read one after another.
struct IndexReader {
    spec: CollectionSpec,
    model: Option<EmbeddingModel>,
    namespaces: Vec<(String, ParquetReader)>,
    current: usize,
    lossy: Vec<Lossy>,
}

impl IndexReader {
    fn new(readers: Vec<(String, ParquetReader, Option<EmbeddingModel>)>) -> Result<IndexReader> {
        let first = readers.first().ok_or_else(|| {
            Error::InvalidData(format!("{META_FILE}: an index lists no namespaces"))
        })?;
        let mut spec = first.1.spec().clone();
        spec.count_hint = readers
            .iter()
            .map(|(_, r, _)| r.spec().count_hint)
            .sum::<Option<u64>>();
        for (ns, r, _) in &readers[1..] {
            let a: Vec<_> = spec
                .vectors
                .iter()
                .map(|f| (&f.name, f.kind, f.dimension))
                .collect();
            let b: Vec<_> = r
                .spec()
                .vectors
                .iter()
                .map(|f| (&f.name, f.kind, f.dimension))
                .collect();
            if a != b {
                return Err(Error::InvalidData(format!(
                    "{META_FILE}: namespace {ns:?} of index {:?} has other vector columns than its first namespace",
                    spec.name
                )));
            }
        }
        let model = first.2.clone();
        Ok(IndexReader {
            spec,
            model,
            namespaces: readers.into_iter().map(|(n, r, _)| (n, r)).collect(),
            current: 0,
            lossy: Vec::new(),
        })
    }
}

impl RecordReader for IndexReader {
    fn spec(&self) -> &CollectionSpec {
        &self.spec
    }
    fn embedding_model(&self) -> Option<EmbeddingModel> {
        self.model.clone()
    }
    fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        while let Some((ns, reader)) = self.namespaces.get_mut(self.current) {
            match reader.next_batch()? {
                Some(mut batch) => {
                    let namespace = Some(ns.clone()).filter(|n| !n.is_empty());
                    for r in &mut batch {
                        r.namespace = namespace.clone();
                    }
                    return Ok(Some(batch));
                }
                None => {
                    self.lossy.extend(reader.lossy());
                    self.current += 1;
                }
            }
        }
        Ok(None)
    }
    fn lossy(&self) -> Vec<Lossy> {
        self.lossy.clone()
    }
}
