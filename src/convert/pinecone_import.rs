//! Snapshot → Pinecone's bulk-import layout: one directory per namespace
//! (`__default__` for the default one) of Parquet files with exactly the
//! columns Pinecone documents — `id` string, `values` list<float32>,
//! `sparse_values` a nullable struct of `indices` list<uint32> and `values`
//! list<float32> (null when a record has none), `metadata` JSON text (null
//! when a record has none). Point an import at the output directory (copied
//! to object storage) and Pinecone loads every namespace.
//!
//! Every record is checked first by the Pinecone connector's own rules (ids,
//! metadata types and size, vectors), the same as `vecport import` into
//! Pinecone, so a refused record is named before any file is written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use parquet::basic::Compression;

use crate::connectors::pinecone::{DOCUMENT_KEY, Pinecone, URI_KEY};
use crate::connectors::{
    Capabilities, CollectionWriter, ConnectorUrl, Endpoint, ExistingTarget, Sink,
};
use crate::error::{Error, Result};
use crate::mapping::IdForm;
use crate::model::{CollectionSpec, Metadata, Record, RecordId, VectorKind};

use super::output::{
    Layout, LayoutWriter, Parts, Place, dense_list, float_list, id_strings, part_name,
    sparse_column, sparse_type, strings,
};

/// The directory of the default namespace.
pub const DEFAULT_NAMESPACE_DIR: &str = "__default__";

/// Bytes buffered across namespaces before the largest is written out.
const BUFFER_BYTES: usize = 256 << 20;

/// The schema Pinecone documents for import files.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("values", float_list(), true),
        Field::new("sparse_values", sparse_type(), true),
        Field::new("metadata", DataType::Utf8, true),
    ]))
}

/// The bulk-import layout as a sink.
pub struct PineconeImport {
    place: Place,
    rules: Pinecone,
}

impl PineconeImport {
    /// Writes into `dir`.
    pub fn new(dir: PathBuf, shown: String) -> Result<PineconeImport> {
        // The connector's rules, never its network: nothing is sent.
        let url = ConnectorUrl::parse("pinecone://vecport-import")?;
        Ok(PineconeImport {
            place: Place {
                name: "pinecone-import",
                dir,
                shown,
            },
            rules: Pinecone::new(&url, &crate::connectors::ConnectOptions::default())?,
        })
    }
}

impl Endpoint for PineconeImport {
    fn name(&self) -> &'static str {
        self.place.name
    }
    fn endpoint(&self) -> String {
        self.place.shown.clone()
    }
    fn collection_in_url(&self) -> Option<&str> {
        None
    }
}

/// Why `ns` cannot be a directory name, if it cannot.
fn namespace_problem(ns: &str) -> Option<String> {
    if ns == DEFAULT_NAMESPACE_DIR {
        return Some(format!(
            "its namespace is named {DEFAULT_NAMESPACE_DIR:?}, the directory of the default namespace"
        ));
    }
    (ns == "." || ns == ".." || ns.contains(['/', '\\', '\0'])).then(|| {
        format!("its namespace {ns:?} cannot be a directory name, which the import layout needs")
    })
}

#[async_trait]
impl Sink for PineconeImport {
    fn capabilities(&self) -> Capabilities {
        self.rules.capabilities()
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        self.rules.check(spec, record)?;
        if let Some(why) = record.namespace.as_deref().and_then(namespace_problem) {
            return Err(Error::InvalidData(format!(
                "record {:?}: {why}",
                record.id.to_string()
            )));
        }
        Ok(())
    }

    fn id_form(&self, spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        self.rules.id_form(spec, id)
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = self.rules.notes(spec);
        if let Some(f) = spec.vectors.iter().find(|f| f.kind == VectorKind::Dense) {
            notes.push(format!(
                "create the index with dimension {} and metric {} before importing (the layout carries neither)",
                f.dimension.map_or("?".to_owned(), |d| d.to_string()),
                match f.metric {
                    Some(crate::model::Metric::L2) => "euclidean".to_owned(),
                    Some(crate::model::Metric::Dot) => "dotproduct".to_owned(),
                    Some(m) => m.to_string(),
                    None => "of your choice".to_owned(),
                }
            ));
        }
        notes
    }

    async fn prepare(
        &self,
        _target: &str,
        spec: &CollectionSpec,
        _existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        Ok(LayoutWriter::open(Box::new(Namespaces {
            dir: self.place.dir.clone(),
            dense: spec
                .vectors
                .iter()
                .position(|f| f.kind == VectorKind::Dense),
            sparse: spec
                .vectors
                .iter()
                .position(|f| f.kind == VectorKind::Sparse),
            open: BTreeMap::new(),
        })))
    }
}

/// One [`Parts`] per namespace directory.
struct Namespaces {
    dir: PathBuf,
    dense: Option<usize>,
    sparse: Option<usize>,
    open: BTreeMap<String, Parts>,
}

/// The metadata Pinecone gets: the record's own, its document and URI in
/// the keys the Pinecone connector uses; `None` when that is empty.
pub(crate) fn wire_metadata(r: &Record) -> Option<Metadata> {
    let mut m = r.metadata.clone().unwrap_or_default();
    if let Some(d) = &r.document {
        m.insert(DOCUMENT_KEY.into(), d.clone().into());
    }
    if let Some(u) = &r.uri {
        m.insert(URI_KEY.into(), u.clone().into());
    }
    (!m.is_empty()).then_some(m)
}

pub(crate) fn batch(
    schema: SchemaRef,
    records: &[Record],
    dense: Option<usize>,
    sparse: Option<usize>,
) -> Result<RecordBatch> {
    let metadata: Vec<Option<String>> = records
        .iter()
        .map(|r| wire_metadata(r).map(|m| crate::snapshot::columns::encode_metadata(&m)))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        id_strings(records),
        dense_list(records, dense),
        sparse_column(records, sparse),
        strings(metadata.iter().map(Option::as_deref)),
    ];
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::InvalidData(format!("cannot build a batch: {e}")))
}

impl Layout for Namespaces {
    fn write(&mut self, records: Vec<Record>) -> Result<()> {
        let mut by_ns: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in records {
            let dir = r
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE_DIR.to_owned());
            by_ns.entry(dir).or_default().push(r);
        }
        for (ns, records) in by_ns {
            let parts = self.open.entry(ns.clone()).or_insert_with(|| {
                Parts::new(
                    self.dir.join(&ns),
                    Box::new(part_name),
                    schema(),
                    Compression::SNAPPY,
                )
            });
            let b = batch(parts.schema(), &records, self.dense, self.sparse)?;
            parts.write(&b)?;
        }
        // Many namespaces each buffering a row group: write out the largest.
        while self.open.values().map(Parts::buffered).sum::<usize>() > BUFFER_BYTES {
            let largest = self
                .open
                .values_mut()
                .max_by_key(|p| p.buffered())
                .expect("not empty");
            largest.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        for p in self.open.values_mut() {
            p.close()?;
        }
        Ok(())
    }

    fn files(&self) -> Vec<PathBuf> {
        self.open.values().flat_map(|p| p.files.clone()).collect()
    }
}
