//! The layout of the `pinecone-datasets` package (1.x), both ways:
//!
//! ```text
//! metadata.json            name, created_at, documents, queries, dense_model {name, dimension}, …
//! documents/*.parquet      id, values list<float>, sparse_values struct<indices, values>,
//!                          metadata (JSON text), blob
//! queries/*.parquet        vector, sparse_vector, filter, top_k, blob (only when there are queries)
//! ```
//!
//! The format has no metric: `--metric` gives it; else vecport reads the
//! metric it wrote itself (`args.metric`), else assumes cosine and says so.
//! Queries are search requests, not records: they are counted in a note of
//! the collection, not converted. Written datasets give records without
//! metadata `{}` (the package cannot read a null metadata back under pandas
//! 3), and an empty object reads back as no metadata.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, NullArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use parquet::basic::Compression;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connectors::pinecone::{DOCUMENT_KEY, URI_KEY};
use crate::connectors::{Capabilities, CollectionWriter, Endpoint, ExistingTarget, Sink};
use crate::error::{Error, Result};
use crate::mapping::{IdForm, MetadataRules};
use crate::model::{CollectionSpec, EmbeddingModel, IdKind, Metric, Record, RecordId, VectorKind};

use super::arrow_rows::Decoder;
use super::output::{
    ALL_METRICS, Layout, LayoutWriter, Parts, Place, dense_list, float_list, id_strings,
    sparse_column, sparse_type, strings,
};
use super::parquet::{ParquetReader, files_under};
use super::{ColumnMapping, Lossy, MetadataSource, ReadOptions, RecordReader};

/// The dataset's description.
pub const METADATA_FILE: &str = "metadata.json";
/// The records.
pub const DOCUMENTS_DIR: &str = "documents";
/// The queries.
pub const QUERIES_DIR: &str = "queries";
/// The name of the sparse field.
pub const SPARSE_FIELD: &str = crate::connectors::pinecone::SPARSE_FIELD;

/// `metadata.json` as the package writes it (`DatasetMetadata`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetMetadata {
    /// The dataset's name.
    pub name: String,
    /// `2026-01-02 03:04:05.000000`.
    pub created_at: String,
    /// Number of documents.
    pub documents: u64,
    /// Number of queries.
    pub queries: u64,
    /// Where the data came from.
    #[serde(default)]
    pub source: Option<String>,
    /// Its license.
    #[serde(default)]
    pub license: Option<String>,
    /// Its bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// The task it serves.
    #[serde(default)]
    pub task: Option<String>,
    /// The model of the dense vectors.
    pub dense_model: DenseModel,
    /// The model of the sparse vectors.
    #[serde(default)]
    pub sparse_model: Option<SparseModel>,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Anything else; vecport keeps the metric in `metric`.
    #[serde(default)]
    pub args: Option<Map<String, Value>>,
}

/// `dense_model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenseModel {
    /// Model name.
    pub name: String,
    /// Tokenizer.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Dimension.
    pub dimension: u32,
}

/// `sparse_model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SparseModel {
    /// Model name.
    #[serde(default)]
    pub name: Option<String>,
    /// Tokenizer.
    #[serde(default)]
    pub tokenizer: Option<String>,
}

fn read_metadata(dir: &Path) -> Result<DatasetMetadata> {
    let path = dir.join(METADATA_FILE);
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::InvalidData(format!(
            "{}: is not the metadata.json of a pinecone-datasets dataset: {e}",
            path.display()
        ))
    })
}

/// A pinecone-datasets dataset read as one collection.
pub struct DatasetReader {
    inner: ParquetReader,
    model: Option<EmbeddingModel>,
}

/// Opens the dataset in `dir`.
pub fn open(dir: &Path, options: &ReadOptions) -> Result<DatasetReader> {
    let meta = read_metadata(dir)?;
    let documents = files_under(&dir.join(DOCUMENTS_DIR))?;
    if documents.is_empty() {
        return Err(Error::InvalidData(format!(
            "{}: holds no .parquet file",
            dir.join(DOCUMENTS_DIR).display()
        )));
    }
    let sparse_present = {
        let file = fs::File::open(&documents[0]).map_err(|e| Error::io(&documents[0], e))?;
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| super::output::parquet_error(&documents[0], e))?
            .schema()
            .field_with_name("sparse_values")
            // All null, pandas writes it of the null type.
            .is_ok_and(|f| matches!(f.data_type(), arrow::datatypes::DataType::Struct(_)))
    };
    let mapping = ColumnMapping {
        id: Some("id".into()),
        vectors: vec![("values".into(), String::new())],
        sparse: sparse_present.then(|| ("sparse_values".into(), SPARSE_FIELD.into())),
        document: None,
        uri: None,
        metadata: MetadataSource::Json("metadata".into()),
        namespace: None,
        ignore: if sparse_present {
            vec!["blob".into()]
        } else {
            vec!["blob".into(), "sparse_values".into()]
        },
    };
    let name = options.collection.clone().unwrap_or_else(|| {
        if meta.name.is_empty() {
            super::name_of(dir)
        } else {
            meta.name.clone()
        }
    });
    let mut inner = ParquetReader::from_files(documents, name, &mapping, options)?;
    inner.configure = |d: &mut Decoder| {
        d.lift_vecport_keys = true;
        d.empty_is_none = true;
    };
    let written_metric = meta
        .args
        .as_ref()
        .and_then(|a| a.get("metric"))
        .and_then(|m| serde_json::from_value::<Metric>(m.clone()).ok());
    let mut notes = Vec::new();
    let metric = match (options.metric, written_metric) {
        (Some(m), _) => m,
        (None, Some(m)) => m,
        (None, None) => {
            let note = "the pinecone-datasets format has no metric and --metric gave none: cosine is assumed".to_owned();
            tracing::warn!("{note}");
            notes.push(note);
            Metric::Cosine
        }
    };
    let queries = files_under(&dir.join(QUERIES_DIR)).unwrap_or_default();
    if meta.queries > 0 || !queries.is_empty() {
        notes.push(format!(
            "the dataset's {} queries (queries/) are search requests, not records: they were not converted",
            meta.queries
        ));
    }
    let spec = inner.spec_mut();
    for f in &mut spec.vectors {
        f.metric = Some(match f.kind {
            VectorKind::Sparse => Metric::Dot,
            _ => metric,
        });
        if f.kind == VectorKind::Dense && f.dimension.is_none() && meta.dense_model.dimension > 0 {
            f.dimension = Some(meta.dense_model.dimension);
        }
    }
    spec.notes = notes;
    spec.raw_config = serde_json::to_value(&meta).unwrap_or(Value::Null);
    let mut collection_metadata = Map::new();
    for (k, v) in [
        ("source", &meta.source),
        ("license", &meta.license),
        ("description", &meta.description),
        ("task", &meta.task),
    ] {
        if let Some(v) = v {
            collection_metadata.insert(k.into(), v.clone().into());
        }
    }
    // Tags stay in `raw_config` only: some databases refuse lists in a
    // collection's metadata.
    spec.collection_metadata = (!collection_metadata.is_empty()).then_some(collection_metadata);
    let model = (!meta.dense_model.name.is_empty()).then(|| EmbeddingModel {
        name: meta.dense_model.name.clone(),
        dimension: Some(meta.dense_model.dimension).filter(|d| *d > 0),
    });
    Ok(DatasetReader { inner, model })
}

impl RecordReader for DatasetReader {
    fn spec(&self) -> &CollectionSpec {
        self.inner.spec()
    }
    fn embedding_model(&self) -> Option<EmbeddingModel> {
        self.model.clone()
    }
    fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        self.inner.next_batch()
    }
    fn lossy(&self) -> Vec<Lossy> {
        self.inner.lossy()
    }
}

/// The `documents/` schema as pandas and pyarrow write it for the package.
pub fn documents_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("values", float_list(), true),
        Field::new("sparse_values", sparse_type(), true),
        Field::new("metadata", DataType::Utf8, true),
        Field::new("blob", DataType::Null, true),
    ]))
}

/// The pinecone-datasets layout as a sink.
pub struct DatasetWriter {
    place: Place,
}

impl DatasetWriter {
    /// Writes into `dir`.
    pub fn new(dir: PathBuf, shown: String) -> DatasetWriter {
        DatasetWriter {
            place: Place {
                name: "pinecone-datasets",
                dir,
                shown,
            },
        }
    }
}

impl Endpoint for DatasetWriter {
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

fn reserved_key(key: &str) -> Option<String> {
    [DOCUMENT_KEY, URI_KEY]
        .contains(&key)
        .then(|| "is reserved: it holds the record's document or URI in this layout".to_owned())
}

#[async_trait]
impl Sink for DatasetWriter {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: 1,
            sparse: true,
            multivector: false,
            named_vectors: true,
            namespaces: false,
            documents: true,
            uris: true,
            metrics: ALL_METRICS,
            id_kinds: &[IdKind::String],
            metadata: MetadataRules {
                target: "pinecone-datasets",
                key: reserved_key,
                ..MetadataRules::ANY
            },
        }
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let dense = spec
            .vectors
            .iter()
            .position(|f| f.kind == VectorKind::Dense);
        if let Some(i) = dense
            && record.vectors[i].is_none()
        {
            return Err(Error::InvalidData(format!(
                "record {:?}: has no dense values; every document of a pinecone-datasets dataset has them",
                record.id.to_string()
            )));
        }
        Ok(())
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        (id.kind() != IdKind::String).then(|| IdForm::Text {
            stored: id.to_string(),
            rule: "pinecone-datasets ids are strings: the id is stored as its text and comes back as a string",
        })
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        if spec
            .vectors
            .iter()
            .any(|f| !f.name.is_empty() && f.name != SPARSE_FIELD)
        {
            notes.push(
                "pinecone-datasets holds one dense and one sparse vector: field names are not kept"
                    .to_owned(),
            );
        }
        notes
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        _existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        let dense = spec
            .vectors
            .iter()
            .position(|f| f.kind == VectorKind::Dense);
        let sparse = spec
            .vectors
            .iter()
            .position(|f| f.kind == VectorKind::Sparse);
        let field = dense.map(|i| &spec.vectors[i]);
        let mut args = Map::new();
        if let Some(m) = field.and_then(|f| f.metric) {
            args.insert("metric".into(), m.to_string().into());
        }
        let meta = DatasetMetadata {
            name: target.to_owned(),
            created_at: created_at(),
            documents: 0,
            queries: 0,
            source: None,
            license: None,
            bucket: None,
            task: None,
            dense_model: DenseModel {
                name: String::new(),
                tokenizer: None,
                dimension: field.and_then(|f| f.dimension).unwrap_or(0),
            },
            sparse_model: sparse.map(|_| SparseModel {
                name: None,
                tokenizer: None,
            }),
            description: spec
                .collection_metadata
                .as_ref()
                .and_then(|m| m.get("description"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            tags: None,
            args: (!args.is_empty()).then_some(args),
        };
        Ok(LayoutWriter::open(Box::new(Documents {
            dir: self.place.dir.clone(),
            parts: Parts::new(
                self.place.dir.join(DOCUMENTS_DIR),
                Box::new(|i| format!("part-{i}.parquet")),
                documents_schema(),
                Compression::SNAPPY,
            ),
            dense,
            sparse,
            meta,
            written: 0,
        })))
    }
}

fn created_at() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

struct Documents {
    dir: PathBuf,
    parts: Parts,
    dense: Option<usize>,
    sparse: Option<usize>,
    meta: DatasetMetadata,
    written: u64,
}

impl Layout for Documents {
    fn write(&mut self, records: Vec<Record>) -> Result<()> {
        let metadata: Vec<String> = records
            .iter()
            .map(|r| {
                super::pinecone_import::wire_metadata(r).map_or_else(
                    || "{}".to_owned(),
                    |m| crate::snapshot::columns::encode_metadata(&m),
                )
            })
            .collect();
        let columns: Vec<ArrayRef> = vec![
            id_strings(&records),
            dense_list(&records, self.dense),
            sparse_column(&records, self.sparse),
            strings(metadata.iter().map(|m| Some(m.as_str()))),
            Arc::new(NullArray::new(records.len())),
        ];
        let batch = RecordBatch::try_new(self.parts.schema(), columns)
            .map_err(|e| Error::InvalidData(format!("cannot build a batch: {e}")))?;
        self.parts.write(&batch)?;
        self.written += records.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.parts.close()?;
        if self.parts.files.is_empty() {
            // An empty dataset still has a (empty) documents file.
            let empty = RecordBatch::new_empty(self.parts.schema());
            self.parts.write(&empty)?;
            self.parts.close()?;
        }
        self.meta.documents = self.written;
        let bytes = serde_json::to_vec(&self.meta)
            .map_err(|e| Error::InvalidData(format!("cannot encode metadata.json: {e}")))?;
        crate::snapshot::writer::write_atomic(&self.dir.join(METADATA_FILE), &bytes)
    }

    fn files(&self) -> Vec<PathBuf> {
        self.parts.files.clone()
    }
}
