//! Snapshot → a foreign layout, through the import pipeline.
//!
//! Each layout is a [`Sink`] whose collection writer streams Arrow batches
//! into rotating Parquet files. [`from_snapshot`] runs [`pipeline::import`]
//! into it, so the snapshot's checksums are verified and every record is
//! checked against the layout's rules (and, on request, made to fit them,
//! each change in the change report) before the first file is written. The
//! files go into a temporary directory beside the output, are counted again
//! from their footers (the import's final count), and are moved into place
//! only when all of it succeeded: a failed conversion leaves nothing.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, FixedSizeListBuilder, Float32Builder, ListBuilder, RecordBatch, StringBuilder,
    StructArray, UInt32Builder, UInt64Builder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::connectors::{
    BatchLimits, Capabilities, CollectionWriter, Endpoint, ExistingTarget, Sink,
};
use crate::error::{Error, Result};
use crate::mapping::{IdForm, MetadataRules};
use crate::model::{CollectionSpec, IdKind, Metric, Record, RecordId, Vector, VectorKind};
use crate::pipeline::{self, ImportOptions, ImportReport, Observer};

/// Rows per part file before the next one begins.
pub const PART_ROWS: u64 = 1 << 20;
/// Rows per row group.
const GROUP_ROWS: usize = 16_384;

/// A Parquet file being written under a temporary name.
struct OpenFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writes batches of one schema into `dir/<prefix><n>.parquet`, a new file
/// every [`PART_ROWS`] rows.
pub(crate) struct Parts {
    dir: PathBuf,
    name: Box<dyn Fn(usize) -> String + Send>,
    schema: SchemaRef,
    props: WriterProperties,
    open: Option<OpenFile>,
    /// Files completed.
    pub(crate) files: Vec<PathBuf>,
    part_rows: u64,
}

impl Parts {
    pub(crate) fn new(
        dir: PathBuf,
        name: Box<dyn Fn(usize) -> String + Send>,
        schema: SchemaRef,
        compression: Compression,
    ) -> Parts {
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(GROUP_ROWS))
            .set_created_by(format!("vecport {}", env!("CARGO_PKG_VERSION")))
            .build();
        Parts {
            dir,
            name,
            schema,
            props,
            open: None,
            files: Vec::new(),
            part_rows: PART_ROWS,
        }
    }

    /// The schema batches must have.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.open.is_none() {
            fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let path = self.dir.join((self.name)(self.files.len()));
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
                .map_err(|e| parquet_error(&path, e))?;
            self.open = Some(OpenFile {
                path,
                writer,
                rows: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.writer
            .write(batch)
            .map_err(|e| parquet_error(&open.path, e))?;
        open.rows += batch.num_rows() as u64;
        if open.rows >= self.part_rows {
            self.close()?;
        }
        Ok(())
    }

    /// Bytes buffered in the open file's row group.
    pub(crate) fn buffered(&self) -> usize {
        self.open
            .as_ref()
            .map_or(0, |o| o.writer.in_progress_size())
    }

    /// Writes the buffered rows out as a row group.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Some(o) = self.open.as_mut() {
            o.writer.flush().map_err(|e| parquet_error(&o.path, e))?;
        }
        Ok(())
    }

    pub(crate) fn close(&mut self) -> Result<()> {
        if let Some(o) = self.open.take() {
            let file = o
                .writer
                .into_inner()
                .map_err(|e| parquet_error(&o.path, e))?;
            file.sync_all().map_err(|e| Error::io(&o.path, e))?;
            self.files.push(o.path);
        }
        Ok(())
    }
}

pub(crate) fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Rows in the footers of `files`, read again from disk.
pub(crate) fn count_files(files: &[PathBuf]) -> Result<u64> {
    let mut n = 0;
    for f in files {
        let file = File::open(f).map_err(|e| Error::io(f, e))?;
        let r = parquet::file::reader::SerializedFileReader::new(file)
            .map_err(|e| parquet_error(f, e))?;
        n += parquet::file::reader::FileReader::metadata(&r)
            .file_metadata()
            .num_rows() as u64;
    }
    Ok(n)
}

/// `part-00000.parquet`, `part-00001.parquet`, …
pub(crate) fn part_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

/// A list<float32> column type (items named `element`, as pyarrow and
/// pandas write them).
pub(crate) fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Float32, true)))
}

/// The sparse vector struct: `indices` list<uint32>, `values` list<float32>.
pub(crate) fn sparse_type() -> DataType {
    DataType::Struct(sparse_fields())
}

fn sparse_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "indices",
            DataType::List(Arc::new(Field::new("element", DataType::UInt32, true))),
            true,
        ),
        Field::new("values", float_list(), true),
    ])
}

/// A list<float32> column of the dense vectors in slot `slot`.
pub(crate) fn dense_list(records: &[Record], slot: Option<usize>) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Float32,
        true,
    )));
    for r in records {
        match slot.and_then(|s| r.vectors[s].as_ref()) {
            Some(Vector::Dense(d)) => {
                b.values().append_slice(d);
                b.append(true);
            }
            // An empty list where a record has no dense values (a sparse-only index).
            _ => b.append(true),
        }
    }
    Arc::new(b.finish())
}

/// A fixed-size list<float32, dim> column of the dense vectors in `slot`.
pub(crate) fn dense_fixed(records: &[Record], slot: usize, dim: i32) -> ArrayRef {
    let mut b = FixedSizeListBuilder::new(Float32Builder::new(), dim)
        .with_field(Arc::new(Field::new("element", DataType::Float32, false)));
    for r in records {
        match r.vectors[slot].as_ref() {
            Some(Vector::Dense(d)) => {
                b.values().append_slice(d);
                b.append(true);
            }
            _ => {
                for _ in 0..dim {
                    b.values().append_value(0.0);
                }
                b.append(false);
            }
        }
    }
    Arc::new(b.finish())
}

/// The sparse struct column of slot `slot`: null where a record has none.
pub(crate) fn sparse_column(records: &[Record], slot: Option<usize>) -> ArrayRef {
    let mut indices = ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::UInt32,
        true,
    )));
    let mut values = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Float32,
        true,
    )));
    let mut valid = Vec::with_capacity(records.len());
    for r in records {
        match slot.and_then(|s| r.vectors[s].as_ref()) {
            Some(Vector::Sparse(s)) => {
                indices.values().append_slice(&s.indices);
                values.values().append_slice(&s.values);
                indices.append(true);
                values.append(true);
                valid.push(true);
            }
            _ => {
                indices.append(false);
                values.append(false);
                valid.push(false);
            }
        }
    }
    let children: Vec<ArrayRef> = vec![Arc::new(indices.finish()), Arc::new(values.finish())];
    Arc::new(StructArray::new(
        sparse_fields(),
        children,
        Some(NullBuffer::from(valid)),
    ))
}

/// A text column.
pub(crate) fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// The ids as text.
pub(crate) fn id_strings(records: &[Record]) -> ArrayRef {
    let mut b = StringBuilder::new();
    for r in records {
        b.append_value(r.id.to_string());
    }
    Arc::new(b.finish())
}

/// What a layout's collection writer does with records.
pub(crate) trait Layout: Send {
    /// Writes records.
    fn write(&mut self, records: Vec<Record>) -> Result<()>;
    /// Closes every file and writes what comes last (a metadata file).
    fn finish(&mut self) -> Result<()>;
    /// The data files written.
    fn files(&self) -> Vec<PathBuf>;
}

/// A [`CollectionWriter`] over a [`Layout`], its blocking work off the runtime.
pub(crate) struct LayoutWriter {
    inner: Arc<Mutex<Box<dyn Layout>>>,
}

impl LayoutWriter {
    pub(crate) fn open(layout: Box<dyn Layout>) -> Arc<dyn CollectionWriter> {
        Arc::new(LayoutWriter {
            inner: Arc::new(Mutex::new(layout)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Layout) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.as_mut())
        })
        .await
        .map_err(|e| Error::InvalidData(format!("writing failed unexpectedly: {e}")))?
    }
}

#[async_trait]
impl CollectionWriter for LayoutWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: 4096,
            max_bytes: usize::MAX,
        }
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        self.run(move |l| l.write(records)).await
    }

    async fn finish(&self) -> Result<()> {
        self.run(|l| l.finish()).await
    }

    async fn count(&self) -> Result<u64> {
        self.run(|l| count_files(&l.files())).await
    }
}

/// What every layout shares as a sink: its name and the directory it writes in.
pub(crate) struct Place {
    pub(crate) name: &'static str,
    pub(crate) dir: PathBuf,
    pub(crate) shown: String,
}

/// Every metric.
pub(crate) const ALL_METRICS: &[Metric] = &[
    Metric::Cosine,
    Metric::Dot,
    Metric::L2,
    Metric::Manhattan,
    Metric::Hamming,
];

/// The flat Parquet layout: one table per collection, `<name>.parquet`,
/// with `id` (uint64 for integer ids, else text), `namespace`, `document`,
/// `uri` (each when the collection has them), `metadata` (JSON text) and one
/// column per vector field (`vector` for the unnamed one; dense as
/// FixedSizeList<float32, dim>, sparse as a struct of `indices` and `values`).
pub struct FlatParquet {
    place: Place,
    /// The file's name when the output names one file.
    single: Option<String>,
}

impl FlatParquet {
    /// Writes into `dir` (`single`: as that file name).
    pub fn new(dir: PathBuf, shown: String, single: Option<String>) -> FlatParquet {
        FlatParquet {
            place: Place {
                name: "parquet",
                dir,
                shown,
            },
            single,
        }
    }
}

impl Endpoint for FlatParquet {
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

#[async_trait]
impl Sink for FlatParquet {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: usize::MAX,
            sparse: true,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: ALL_METRICS,
            id_kinds: &[IdKind::String, IdKind::Uint, IdKind::Uuid],
            metadata: MetadataRules {
                target: "parquet",
                numbers: crate::mapping::Numbers::Decimal,
                ..MetadataRules::ANY
            },
        }
    }

    fn check(&self, _spec: &CollectionSpec, _record: &Record) -> Result<()> {
        Ok(())
    }

    fn id_form(&self, spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        (spec.id_kind == Some(IdKind::UintOrUuid)).then(|| IdForm::Text {
            stored: id.to_string(),
            rule: "a parquet column holds one type: integer and UUID ids together are written as their text, so they come back as strings",
        })
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        _existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        let file = match &self.single {
            Some(f) => f.clone(),
            None => {
                let mut taken = Default::default();
                format!(
                    "{}.parquet",
                    crate::snapshot::layout::collection_dir_name(target, &mut taken)
                )
            }
        };
        Ok(LayoutWriter::open(Box::new(FlatTable::new(
            self.place.dir.clone(),
            file,
            spec,
        )?)))
    }
}

struct FlatTable {
    parts: Parts,
    spec: CollectionSpec,
    uint_ids: bool,
    namespace: bool,
    document: bool,
    uri: bool,
}

impl FlatTable {
    fn new(dir: PathBuf, file: String, spec: &CollectionSpec) -> Result<FlatTable> {
        let content = spec.content.clone().unwrap_or_default();
        let uint_ids = spec.id_kind == Some(IdKind::Uint);
        let namespace = !content.namespaces.is_empty();
        let mut fields = vec![Field::new(
            "id",
            if uint_ids {
                DataType::UInt64
            } else {
                DataType::Utf8
            },
            false,
        )];
        if namespace {
            fields.push(Field::new("namespace", DataType::Utf8, true));
        }
        if content.documents {
            fields.push(Field::new("document", DataType::Utf8, true));
        }
        if content.uris {
            fields.push(Field::new("uri", DataType::Utf8, true));
        }
        fields.push(Field::new("metadata", DataType::Utf8, true));
        let mut taken: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        for f in &spec.vectors {
            let mut name = if f.name.is_empty() {
                "vector".to_owned()
            } else {
                f.name.clone()
            };
            while taken.contains(&name) {
                name = format!("vector_{name}");
            }
            taken.push(name.clone());
            let t = match f.kind {
                VectorKind::Dense => DataType::FixedSizeList(
                    Arc::new(Field::new("element", DataType::Float32, false)),
                    f.dimension.unwrap_or(0) as i32,
                ),
                VectorKind::Sparse => sparse_type(),
                VectorKind::Multi => {
                    return Err(Error::not_supported("parquet", "multivector fields"));
                }
            };
            fields.push(Field::new(name, t, true));
        }
        let schema = Arc::new(Schema::new(fields));
        // One file per collection: no rotation.
        let mut parts = Parts::new(
            dir,
            Box::new(move |_| file.clone()),
            schema,
            Compression::ZSTD(ZstdLevel::default()),
        );
        parts.part_rows = u64::MAX;
        Ok(FlatTable {
            parts,
            spec: spec.clone(),
            uint_ids,
            namespace,
            document: content.documents,
            uri: content.uris,
        })
    }
}

impl Layout for FlatTable {
    fn write(&mut self, records: Vec<Record>) -> Result<()> {
        let mut columns: Vec<ArrayRef> = Vec::new();
        if self.uint_ids {
            let mut b = UInt64Builder::with_capacity(records.len());
            for r in &records {
                match r.id {
                    RecordId::Uint(n) => b.append_value(n),
                    _ => {
                        return Err(Error::InvalidData(format!(
                            "record {:?} has a non-integer id in a collection of integer ids",
                            r.id.to_string()
                        )));
                    }
                }
            }
            columns.push(Arc::new(b.finish()));
        } else {
            columns.push(id_strings(&records));
        }
        if self.namespace {
            columns.push(strings(records.iter().map(|r| r.namespace.as_deref())));
        }
        if self.document {
            columns.push(strings(records.iter().map(|r| r.document.as_deref())));
        }
        if self.uri {
            columns.push(strings(records.iter().map(|r| r.uri.as_deref())));
        }
        let metadata: Vec<Option<String>> = records
            .iter()
            .map(|r| {
                r.metadata
                    .as_ref()
                    .map(crate::snapshot::columns::encode_metadata)
            })
            .collect();
        columns.push(strings(metadata.iter().map(Option::as_deref)));
        for (slot, f) in self.spec.vectors.iter().enumerate() {
            columns.push(match f.kind {
                VectorKind::Sparse => sparse_column(&records, Some(slot)),
                _ => dense_fixed(&records, slot, f.dimension.unwrap_or(0) as i32),
            });
        }
        let batch = RecordBatch::try_new(self.parts.schema(), columns)
            .map_err(|e| Error::InvalidData(format!("cannot build a batch: {e}")))?;
        self.parts.write(&batch)
    }

    fn finish(&mut self) -> Result<()> {
        self.parts.close()
    }

    fn files(&self) -> Vec<PathBuf> {
        self.parts.files.clone()
    }
}

/// Converts the snapshot at `snapshot` into `sink`'s layout, written into
/// `stage` and moved to `out` once everything succeeded.
pub async fn from_snapshot(
    snapshot: &Path,
    sink: &dyn Sink,
    stage: tempfile::TempDir,
    out: &Path,
    mut options: ImportOptions,
    observer: &dyn Observer,
) -> Result<ImportReport> {
    let state = tempfile::Builder::new()
        .prefix(".vecport-convert-state-")
        .tempdir_in(stage.path().parent().unwrap_or(Path::new(".")))
        .map_err(|e| Error::io(stage.path(), e))?;
    options.state_dir = Some(crate::storage::Location::Local(state.path().to_owned()));
    // One write at a time: the files hold the records in snapshot order.
    options.concurrency = 1;
    let report = match pipeline::import(snapshot, sink, &options, observer).await {
        Ok(r) => r,
        Err(Error::Stopped { cause, .. }) => return Err(*cause),
        Err(e) => return Err(e),
    };
    place(stage, out)?;
    Ok(report)
}

/// Moves what `stage` holds to `out` (which does not exist, or is empty).
pub(crate) fn place(stage: tempfile::TempDir, out: &Path) -> Result<()> {
    if !out.exists() {
        let kept = stage.keep();
        return fs::rename(&kept, out).map_err(|e| {
            let _ = fs::remove_dir_all(&kept);
            Error::io(out, e)
        });
    }
    for e in fs::read_dir(stage.path()).map_err(|e| Error::io(stage.path(), e))? {
        let from = e.map_err(|e| Error::io(stage.path(), e))?.path();
        let to = out.join(from.file_name().unwrap_or_default());
        fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

/// Refuses an output that exists and is not an empty directory.
pub fn check_output(out: &Path) -> Result<()> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} is not empty; convert into a new directory",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::Usage(format!(
            "{} exists; convert into a new file or directory",
            out.display()
        ))),
        Err(e) => Err(Error::io(out, e)),
    }
}

/// A temporary directory beside `out` for the files being written.
pub fn stage_for(out: &Path) -> Result<tempfile::TempDir> {
    let abs = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    let parent = abs.parent().unwrap_or(Path::new("/")).to_owned();
    fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    tempfile::Builder::new()
        .prefix(".vecport-convert-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))
}
