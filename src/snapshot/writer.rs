//! Writing snapshots (`spec/FORMAT.md` §5): records stream in, Parquet parts
//! rotated by rows and bytes come out. Row groups are encoded in parallel on
//! the rayon pool and appended in order; every file is written under a
//! temporary name, synced and renamed, and the manifest is written last.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::mem;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{CollectionSpec, EmbeddingModel, IdKind, Record, VectorKind};

use super::columns::{arrow_schema, to_batch};
use super::layout::{self, COLLECTIONS_DIR, MANIFEST, MANIFEST_CHECKSUM, TEMP_SUFFIX};
use super::manifest::{
    CollectionManifest, DimensionSource, FORMAT_MAJOR, FORMAT_MINOR, FORMAT_NAME, Manifest,
    MetadataSchema, NamespaceCount, PartManifest, Producer, SourceInfo, VectorColumn,
};

/// How vector columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VectorCompression {
    /// Plain encoding, no compression: fastest to write and read (the default).
    #[default]
    None,
    /// BYTE_STREAM_SPLIT encoding with zstd: a few percent smaller, slower to read.
    Zstd,
}

/// Tuning of the snapshot writer.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// A part is closed once it holds this many rows.
    pub part_max_rows: u64,
    /// A part is closed once it holds about this many bytes.
    pub part_max_bytes: u64,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// A row group is cut early once its records reach this many bytes
    /// ([`Record::binary_size_estimate`](crate::model::Record::binary_size_estimate)).
    /// Encoding holds several times this per group in flight, so it bounds memory.
    pub row_group_bytes: usize,
    /// Vector column storage.
    pub vector_compression: VectorCompression,
    /// zstd level of the id, metadata and text columns.
    pub zstd_level: i32,
    /// Row groups encoded at once; 0 means one per rayon thread.
    pub parallelism: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            part_max_rows: 1 << 20,
            part_max_bytes: 1 << 30,
            row_group_rows: 16_384,
            // 768-d vectors: ~2,700 rows; 384-d: ~5,400. Encoding a group takes
            // several times its size, and `parallelism` groups are encoded at once.
            row_group_bytes: 8 << 20,
            vector_compression: VectorCompression::None,
            zstd_level: 3,
            parallelism: 0,
        }
    }
}

/// Writes one snapshot directory.
#[derive(Debug)]
pub struct SnapshotWriter {
    root: PathBuf,
    options: WriteOptions,
    taken_dirs: HashSet<String>,
    collections: Vec<CollectionManifest>,
}

impl SnapshotWriter {
    /// Starts a snapshot in `root`, which must not exist or be an empty directory.
    pub fn create(root: &Path, options: WriteOptions) -> Result<SnapshotWriter> {
        match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::Usage(format!(
                        "{} is not empty; export into a new directory (or remove the old snapshot first)",
                        root.display()
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
            }
            Err(e) => return Err(Error::io(root, e)),
        }
        let collections = root.join(COLLECTIONS_DIR);
        fs::create_dir_all(&collections).map_err(|e| Error::io(&collections, e))?;
        Ok(SnapshotWriter {
            root: root.to_owned(),
            options,
            taken_dirs: HashSet::new(),
            collections: Vec::new(),
        })
    }

    /// Starts writing a collection.
    pub fn collection(
        &mut self,
        spec: &CollectionSpec,
        embedding_model: Option<EmbeddingModel>,
    ) -> Result<CollectionWriter> {
        if self.collections.iter().any(|c| c.name == spec.name) {
            return Err(Error::Usage(format!(
                "collection {:?} is written twice into one snapshot",
                spec.name
            )));
        }
        let dir_name = layout::collection_dir_name(&spec.name, &mut self.taken_dirs);
        let directory = format!("{COLLECTIONS_DIR}/{dir_name}");
        let dir = self.root.join(COLLECTIONS_DIR).join(&dir_name);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(CollectionWriter::new(
            dir,
            directory,
            spec,
            embedding_model,
            self.options.clone(),
        ))
    }

    /// Adds a finished collection.
    pub fn add(&mut self, collection: CollectionManifest) {
        self.collections.push(collection);
    }

    /// Writes the manifest and its checksum, completing the snapshot.
    pub fn finish(self, source: SourceInfo) -> Result<Manifest> {
        self.finish_at(source, now_rfc3339())
    }

    /// [`SnapshotWriter::finish`] with a given creation time (RFC 3339), for
    /// reproducible snapshots such as the committed fixtures.
    pub fn finish_at(self, source: SourceInfo, created_at: String) -> Result<Manifest> {
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
            producer: Producer::this(),
            created_at,
            source,
            collections: self.collections,
        };
        // What a reader would refuse is refused here, before the commit point.
        manifest.validate(&self.root.join(MANIFEST))?;
        sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        write_manifest(&self.root, &manifest)?;
        Ok(manifest)
    }
}

/// Writes `manifest.json` and `manifest.json.blake3` atomically: the checksum
/// first, the manifest last, each under a temporary name and renamed.
pub fn write_manifest(root: &Path, manifest: &Manifest) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::InvalidData(format!("cannot encode the manifest: {e}")))?;
    bytes.push(b'\n');
    let hash = blake3::hash(&bytes).to_hex();
    write_atomic(
        &root.join(MANIFEST_CHECKSUM),
        format!("{hash}  {MANIFEST}\n").as_bytes(),
    )?;
    write_atomic(&root.join(MANIFEST), &bytes)?;
    sync_dir(root)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directories cannot be opened for syncing on every platform; where they
    // can, this makes the renames durable.
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The part-level copy of the collection schema kept in each part's
/// key-value metadata (§4.5).
#[derive(Serialize)]
struct PartSchema<'a> {
    name: &'a str,
    id_kind: IdKind,
    vectors: &'a [VectorColumn],
}

/// Writes the records of one collection into parts.
pub struct CollectionWriter {
    dir: PathBuf,
    directory: String,
    spec: CollectionSpec,
    embedding_model: Option<EmbeddingModel>,
    options: WriteOptions,
    vectors: Vec<VectorColumn>,
    encoder: Option<Encoder>,
    pending: Vec<Record>,
    pending_bytes: usize,
    groups: Vec<Vec<Record>>,
    part: Option<PartFile>,
    parts: Vec<PartManifest>,
    // observed statistics
    records: u64,
    id_kind: Option<IdKind>,
    namespaces: BTreeMap<Option<String>, u64>,
    metadata_schema: MetadataSchema,
    has_documents: bool,
    has_uris: bool,
}

/// A row group encoded off the file: its column chunks, row count and id kind.
type EncodedGroup = (Vec<ArrowColumnChunk>, usize, Option<IdKind>);

/// Schema and properties shared by every part of a collection.
struct Encoder {
    schema: SchemaRef,
    props: WriterProperties,
    factory: Option<ArrowRowGroupWriterFactory>,
}

struct PartFile {
    index: usize,
    writer: SerializedFileWriter<HashingFile>,
    rows: u64,
    id_kind: Option<IdKind>,
}

impl CollectionWriter {
    fn new(
        dir: PathBuf,
        directory: String,
        spec: &CollectionSpec,
        embedding_model: Option<EmbeddingModel>,
        options: WriteOptions,
    ) -> CollectionWriter {
        let columns = layout::vector_column_names(spec.vectors.iter().map(|f| f.name.as_str()));
        let vectors = spec
            .vectors
            .iter()
            .zip(columns)
            .map(|(f, column)| VectorColumn {
                field: f.clone(),
                column,
                dimension_source: f.dimension.map(|_| DimensionSource::Declared),
            })
            .collect();
        CollectionWriter {
            dir,
            directory,
            spec: spec.clone(),
            embedding_model,
            options,
            vectors,
            encoder: None,
            pending: Vec::new(),
            pending_bytes: 0,
            groups: Vec::new(),
            part: None,
            parts: Vec::new(),
            records: 0,
            id_kind: spec.id_kind,
            namespaces: BTreeMap::new(),
            metadata_schema: MetadataSchema::default(),
            has_documents: false,
            has_uris: false,
        }
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Adds records. They are encoded once a row group's worth is buffered.
    pub fn write(&mut self, records: Vec<Record>) -> Result<()> {
        for r in records {
            if let Some(m) = &r.metadata
                && json_depth(m) > MAX_METADATA_DEPTH
            {
                return Err(Error::InvalidData(format!(
                    "record {:?}: metadata nests deeper than {MAX_METADATA_DEPTH} levels, which JSON readers refuse",
                    r.id.to_string()
                )));
            }
            if r.vectors.len() != self.vectors.len() {
                return Err(Error::InvalidData(format!(
                    "record {:?} carries {} vector slots, collection {:?} has {} vector fields",
                    r.id.to_string(),
                    r.vectors.len(),
                    self.spec.name,
                    self.vectors.len()
                )));
            }
            self.records += 1;
            self.id_kind = Some(match self.id_kind {
                Some(k) => k.union(r.id.kind()),
                None => r.id.kind(),
            });
            *self.namespaces.entry(r.namespace.clone()).or_insert(0) += 1;
            self.metadata_schema.observe(r.metadata.as_ref());
            self.has_documents |= r.document.is_some();
            self.has_uris |= r.uri.is_some();
            self.pending_bytes += r.binary_size_estimate();
            self.pending.push(r);
            if self.pending.len() >= self.options.row_group_rows
                || self.pending_bytes >= self.options.row_group_bytes
            {
                self.cut_group();
                if self.groups.len() >= self.parallelism() {
                    self.flush_groups()?;
                }
            }
        }
        Ok(())
    }

    fn parallelism(&self) -> usize {
        match self.options.parallelism {
            0 => rayon::current_num_threads().max(1),
            n => n,
        }
    }

    fn cut_group(&mut self) {
        if !self.pending.is_empty() {
            self.groups.push(mem::take(&mut self.pending));
            self.pending_bytes = 0;
        }
    }

    /// Resolves dimensions the source did not declare from the first values seen.
    fn resolve_dimensions(&mut self) -> Result<()> {
        for (i, v) in self.vectors.iter_mut().enumerate() {
            if v.field.kind == VectorKind::Sparse || v.field.dimension.is_some() {
                continue;
            }
            let found = self
                .groups
                .iter()
                .flatten()
                .find_map(|r| match r.vectors[i].as_ref()? {
                    crate::model::Vector::Dense(d) => Some(d.len()),
                    crate::model::Vector::Multi(m) => m.first().map(Vec::len),
                    crate::model::Vector::Sparse(_) => None,
                });
            match found {
                Some(d) if d > 0 => {
                    v.field.dimension = Some(u32::try_from(d).map_err(|_| {
                        Error::InvalidData(format!(
                            "vector field {:?} has {d} dimensions",
                            v.field.name
                        ))
                    })?);
                    v.dimension_source = Some(DimensionSource::Inferred);
                }
                _ => {
                    return Err(Error::InvalidData(format!(
                        "collection {:?}: vector field {:?} declares no dimension and the first {} records carry no value to infer it from",
                        self.spec.name,
                        v.field.name,
                        self.groups.iter().map(Vec::len).sum::<usize>()
                    )));
                }
            }
        }
        Ok(())
    }

    fn encoder(&mut self) -> Result<&mut Encoder> {
        if self.encoder.is_none() {
            self.resolve_dimensions()?;
            let schema = arrow_schema(&self.vectors);
            let props = writer_properties(&schema, &self.vectors, &self.options, &self.dir)?;
            self.encoder = Some(Encoder {
                schema,
                props,
                factory: None,
            });
        }
        Ok(self.encoder.as_mut().expect("set above"))
    }

    fn flush_groups(&mut self) -> Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        self.encoder()?;
        if self.part.is_none() {
            self.open_part()?;
        }
        let groups = mem::take(&mut self.groups);
        let encoder = self.encoder.as_ref().expect("created above");
        let factory = encoder
            .factory
            .as_ref()
            .expect("created with the first part");
        let mut jobs = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            let writers = factory
                .create_column_writers(i)
                .map_err(|e| self.parquet_err(e))?;
            jobs.push((g, writers));
        }
        let schema = encoder.schema.clone();
        let vectors = &self.vectors;
        let encoded: Vec<Result<EncodedGroup>> = jobs
            .into_par_iter()
            .map(|(records, mut writers)| {
                let batch = to_batch(&schema, vectors, &records)?;
                let mut w = writers.iter_mut();
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    for leaf in compute_leaves(field, column)
                        .map_err(|e| Error::InvalidData(e.to_string()))?
                    {
                        w.next()
                            .expect("one writer per leaf")
                            .write(&leaf)
                            .map_err(|e| Error::InvalidData(e.to_string()))?;
                    }
                }
                let chunks = writers
                    .into_iter()
                    .map(|w| w.close().map_err(|e| Error::InvalidData(e.to_string())))
                    .collect::<Result<Vec<_>>>()?;
                let kind = records.iter().map(|r| r.id.kind()).reduce(IdKind::union);
                Ok((chunks, records.len(), kind))
            })
            .collect();
        for group in encoded {
            let (chunks, rows, kind) = group?;
            if self.part.is_none() {
                self.open_part()?;
            }
            let part = self.part.as_mut().expect("opened above");
            let mut rg = part
                .writer
                .next_row_group()
                .map_err(|e| parquet_error(&self.dir, e))?;
            for c in chunks {
                c.append_to_row_group(&mut rg)
                    .map_err(|e| parquet_error(&self.dir, e))?;
            }
            rg.close().map_err(|e| parquet_error(&self.dir, e))?;
            part.rows += rows as u64;
            part.id_kind = match (part.id_kind, kind) {
                (Some(a), Some(b)) => Some(a.union(b)),
                (a, b) => a.or(b),
            };
            if part.rows >= self.options.part_max_rows
                || part.writer.bytes_written() as u64 >= self.options.part_max_bytes
            {
                self.close_part()?;
            }
        }
        Ok(())
    }

    fn parquet_err(&self, e: parquet::errors::ParquetError) -> Error {
        parquet_error(&self.dir, e)
    }

    fn open_part(&mut self) -> Result<()> {
        let index = self.parts.len();
        let path = self.dir.join(layout::part_file_name(index));
        let tmp = temp_path(&path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let encoder = self
            .encoder
            .as_mut()
            .expect("created before a part is opened");
        let options = ArrowWriterOptions::new().with_properties(encoder.props.clone());
        let arrow_writer = ArrowWriter::try_new_with_options(
            HashingFile::new(file),
            encoder.schema.clone(),
            options,
        )
        .map_err(|e| parquet_error(&tmp, e))?;
        let (writer, factory) = arrow_writer
            .into_serialized_writer()
            .map_err(|e| parquet_error(&tmp, e))?;
        if encoder.factory.is_none() {
            encoder.factory = Some(factory);
        }
        self.part = Some(PartFile {
            index,
            writer,
            rows: 0,
            id_kind: None,
        });
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        let Some(mut part) = self.part.take() else {
            return Ok(());
        };
        let name = layout::part_file_name(part.index);
        let path = self.dir.join(&name);
        let tmp = temp_path(&path);
        let schema = PartSchema {
            name: &self.spec.name,
            id_kind: part.id_kind.unwrap_or(IdKind::String),
            vectors: &self.vectors,
        };
        part.writer.append_key_value_metadata(KeyValue::new(
            layout::KV_FORMAT_VERSION.into(),
            format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
        ));
        part.writer.append_key_value_metadata(KeyValue::new(
            layout::KV_COLLECTION.into(),
            serde_json::to_string(&schema).unwrap_or_default(),
        ));
        let hashing = part
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&tmp, e))?;
        let (bytes, hash) = hashing.finish().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        self.parts.push(PartManifest {
            path: name,
            rows: part.rows,
            bytes,
            blake3: hash,
        });
        Ok(())
    }

    /// Writes what is buffered, closes the last part and describes the collection.
    pub fn finish(mut self) -> Result<CollectionManifest> {
        self.cut_group();
        self.flush_groups()?;
        self.close_part()?;
        sync_dir(&self.dir)?;
        let mut notes = self.spec.notes.clone();
        notes.dedup();
        Ok(CollectionManifest {
            name: self.spec.name.clone(),
            directory: self.directory,
            record_count: self.records,
            namespaces: self
                .namespaces
                .into_iter()
                .map(|(name, records)| NamespaceCount { name, records })
                .collect(),
            id_kind: self.id_kind.unwrap_or(IdKind::String),
            vectors: self.vectors,
            metadata_schema: self.metadata_schema,
            has_documents: self.has_documents,
            has_uris: self.has_uris,
            collection_metadata: self.spec.collection_metadata.clone(),
            raw_config: self.spec.raw_config.clone(),
            embedding_model: self.embedding_model,
            notes,
            parts: self.parts,
        })
    }
}

/// Deepest metadata nesting written (JSON readers commonly stop at 128).
pub const MAX_METADATA_DEPTH: usize = 100;

fn json_depth(m: &crate::model::Metadata) -> usize {
    fn depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + m.values().map(depth).max().unwrap_or(0)
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<io::Error>() {
            Ok(io) => Error::io(path, *io),
            Err(other) => Error::Parquet {
                path: path.to_owned(),
                message: other.to_string(),
            },
        },
        other => Error::Parquet {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

/// Parquet writer properties (§4.6): zstd for ids, metadata and text; vector
/// columns plain and without statistics unless compression is asked for.
fn writer_properties(
    schema: &SchemaRef,
    vectors: &[VectorColumn],
    options: &WriteOptions,
    dir: &Path,
) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(options.zstd_level)
        .map_err(|e| Error::Usage(format!("zstd level {}: {e}", options.zstd_level)))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_data_page_size_limit(1 << 20)
        .set_max_row_group_row_count(None)
        .set_statistics_truncate_length(Some(64))
        .set_column_index_truncate_length(Some(64))
        .set_created_by(format!("vecport {}", env!("CARGO_PKG_VERSION")));
    let descr = ArrowSchemaConverter::new()
        .convert(schema)
        .map_err(|e| parquet_error(dir, e))?;
    let vector_columns: HashSet<&str> = vectors.iter().map(|v| v.column.as_str()).collect();
    for col in descr.columns() {
        let path = col.path().clone();
        if !vector_columns.contains(path.parts()[0].as_str()) {
            continue;
        }
        let is_float = col.physical_type() == parquet::basic::Type::FLOAT;
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
        b = match options.vector_compression {
            VectorCompression::None => b
                .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
                .set_column_encoding(path, Encoding::PLAIN),
            VectorCompression::Zstd => {
                let b = b.set_column_compression(path.clone(), Compression::ZSTD(zstd));
                if is_float {
                    b.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT)
                } else {
                    b
                }
            }
        };
    }
    Ok(b.build())
}

/// A buffered file that hashes and counts every byte written through it.
struct HashingFile {
    out: BufWriter<File>,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl HashingFile {
    fn new(file: File) -> HashingFile {
        HashingFile {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// Flushes and syncs the file; returns its size and BLAKE3.
    fn finish(self) -> io::Result<(u64, String)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.bytes, self.hasher.finalize().to_hex().to_string()))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
