//! Writing snapshots (`spec/FORMAT.md` §5): records stream in, Parquet parts
//! rotated by rows and bytes come out. Row groups are encoded in parallel on
//! the rayon pool and appended in order; the manifest is written last. On a
//! local disk every file is written under a temporary name, synced and
//! renamed; in object storage each part is a multipart upload that appears
//! whole when it completes, and the manifest a conditional put that never
//! replaces an object (`spec/FORMAT.md` §9).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions,
    compute_leaves,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};
use serde::Serialize;

use crate::buffers::BufferPool;
use crate::error::{Error, Result};
use crate::model::{CollectionSpec, EmbeddingModel, IdKind, Record, VectorKind};

use super::columns::{arrow_schema, fixed_columns, vector_array};
use super::dense::{self, DenseChunk};
use super::layout::{self, COLLECTIONS_DIR, MANIFEST, MANIFEST_CHECKSUM, TEMP_SUFFIX};
use super::manifest::{
    CollectionManifest, DimensionSource, FORMAT_MAJOR, FORMAT_MINOR, FORMAT_NAME, Manifest,
    MetadataSchema, NamespaceCount, PartManifest, Producer, SourceInfo, VectorColumn,
};
use super::sink::{Destination, HashingFile};
use crate::storage::Location;

/// How vector columns are stored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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
    /// Write part files with direct I/O where the filesystem takes it
    /// (Linux), past the page cache: a large export then neither evicts what
    /// the machine has cached nor pays a copy per byte.
    pub direct_io: bool,
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
            direct_io: true,
        }
    }
}

/// Writes one snapshot.
#[derive(Debug)]
pub struct SnapshotWriter {
    root: Location,
    options: WriteOptions,
    taken_dirs: HashSet<String>,
    collections: Vec<CollectionManifest>,
}

impl SnapshotWriter {
    /// Starts a snapshot in directory `root`, which must not exist or be empty.
    pub fn create(root: &Path, options: WriteOptions) -> Result<SnapshotWriter> {
        SnapshotWriter::create_at(&Location::Local(root.to_owned()), options)
    }

    /// Starts a snapshot at `location`: a directory that must not exist or
    /// be empty, or a prefix in object storage the caller checked is free.
    pub fn create_at(location: &Location, options: WriteOptions) -> Result<SnapshotWriter> {
        let root = match location {
            Location::Local(root) => root,
            Location::Bucket(_) => {
                location.require_writable("an export")?;
                return Ok(SnapshotWriter {
                    root: location.clone(),
                    options,
                    taken_dirs: HashSet::new(),
                    collections: Vec::new(),
                });
            }
        };
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
            root: location.clone(),
            options,
            taken_dirs: HashSet::new(),
            collections: Vec::new(),
        })
    }

    /// Continues an unfinished snapshot in `root`: `done` are the
    /// collections completed before it stopped. The caller has removed
    /// whatever no checkpoint describes.
    pub fn resume(
        root: &Location,
        options: WriteOptions,
        done: Vec<CollectionManifest>,
    ) -> Result<SnapshotWriter> {
        if let Location::Local(root) = root {
            let collections = root.join(COLLECTIONS_DIR);
            fs::create_dir_all(&collections).map_err(|e| Error::io(&collections, e))?;
        }
        let mut taken = HashSet::new();
        for c in &done {
            taken.insert(dir_of(c).to_ascii_lowercase());
        }
        Ok(SnapshotWriter {
            root: root.clone(),
            options,
            taken_dirs: taken,
            collections: done,
        })
    }

    /// Continues a collection from a [`CollectionWriter::checkpoint`]: its
    /// closed parts are kept, and the next records go into the next part.
    pub fn resume_collection(
        &mut self,
        spec: &CollectionSpec,
        checkpoint: CollectionManifest,
    ) -> Result<CollectionWriter> {
        let dir_name = dir_of(&checkpoint).to_owned();
        if !self.taken_dirs.insert(dir_name.to_ascii_lowercase()) {
            return Err(Error::Usage(format!(
                "collection {:?} is written twice into one snapshot",
                spec.name
            )));
        }
        let mut writer = CollectionWriter::new(
            self.collection_dir(&checkpoint.directory)?,
            checkpoint.directory.clone(),
            spec,
            checkpoint.embedding_model.clone(),
            self.options.clone(),
        );
        // Dimensions resolved before the stop stay as they were.
        writer.vectors = checkpoint.vectors.clone();
        writer.closed = Observed::of(&checkpoint);
        writer.accepted = checkpoint.record_count;
        writer.parts = checkpoint.parts;
        Ok(writer)
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
        Ok(CollectionWriter::new(
            self.collection_dir(&directory)?,
            directory,
            spec,
            embedding_model,
            self.options.clone(),
        ))
    }

    /// The location of a collection's directory (`collections/…`), created
    /// on a local disk.
    fn collection_dir(&self, directory: &str) -> Result<Location> {
        let dir = self.root.child(directory);
        if let Location::Local(d) = &dir {
            fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        Ok(dir)
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
        manifest.validate(&self.root.file(MANIFEST))?;
        if let Location::Local(root) = &self.root {
            sync_dir(&root.join(COLLECTIONS_DIR))?;
        }
        write_manifest_at(&self.root, &manifest)?;
        Ok(manifest)
    }
}

/// The directory name of a collection under `collections/`.
fn dir_of(c: &CollectionManifest) -> &str {
    c.directory
        .strip_prefix(COLLECTIONS_DIR)
        .and_then(|d| d.strip_prefix('/'))
        .unwrap_or(&c.directory)
}

/// Writes `manifest.json` and `manifest.json.blake3` atomically: the checksum
/// first, the manifest last, each under a temporary name and renamed.
pub fn write_manifest(root: &Path, manifest: &Manifest) -> Result<()> {
    write_manifest_at(&Location::Local(root.to_owned()), manifest)
}

/// [`write_manifest`] at any location. In object storage both are
/// conditional puts, the checksum first: an object already there — a
/// snapshot another run completed — is never replaced, and the manifest,
/// the commit point, appears last.
pub fn write_manifest_at(root: &Location, manifest: &Manifest) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::InvalidData(format!("cannot encode the manifest: {e}")))?;
    bytes.push(b'\n');
    let hash = blake3::hash(&bytes).to_hex();
    let checksum = format!("{hash}  {MANIFEST}\n").into_bytes();
    match root {
        Location::Local(root) => {
            write_atomic(&root.join(MANIFEST_CHECKSUM), &checksum)?;
            write_atomic(&root.join(MANIFEST), &bytes)?;
            sync_dir(root)
        }
        Location::Bucket(b) => {
            for (name, bytes) in [(MANIFEST_CHECKSUM, checksum), (MANIFEST, bytes)] {
                if !b.write_new(name, bytes)? {
                    return Err(Error::Usage(format!(
                        "{} already exists: another run completed a snapshot at {} while this one was written; nothing was replaced — export to a new location",
                        b.file(name).display(),
                        b.url()
                    )));
                }
            }
            Ok(())
        }
    }
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

/// Syncs directory `dir`, making the renames inside it durable. Directories
/// cannot be opened for syncing on every platform; where they cannot, this
/// does nothing.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
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
    dir: Location,
    directory: String,
    spec: CollectionSpec,
    embedding_model: Option<EmbeddingModel>,
    options: WriteOptions,
    vectors: Vec<VectorColumn>,
    encoder: Option<Encoder>,
    pending: Vec<Record>,
    pending_bytes: usize,
    groups: Vec<Vec<Record>>,
    pipeline: Pipeline,
    part: Option<PartFile>,
    parts: Vec<PartManifest>,
    /// Records accepted by [`CollectionWriter::write`].
    accepted: u64,
    /// What the buffered records (`pending`) add to the description.
    pending_observed: Observed,
    /// The same for each group cut, dispatched or not yet written, in order.
    queued_observed: VecDeque<Observed>,
    /// The same for the records in the open part.
    part_observed: Observed,
    /// The same for the records in closed parts: what a checkpoint describes.
    closed: Observed,
    /// Where the upload of the open part (in object storage) leaves the
    /// error that stopped it.
    upload_failure: Option<crate::storage::UploadFailure>,
}

/// What records contribute to a collection's description in the manifest.
/// Kept per stage (buffered, in the open part, in closed parts), so that the
/// description of the closed parts alone is known at any time.
#[derive(Debug, Clone, Default)]
struct Observed {
    records: u64,
    id_kind: Option<IdKind>,
    namespaces: BTreeMap<Option<String>, u64>,
    metadata_schema: MetadataSchema,
    has_documents: bool,
    has_uris: bool,
}

impl Observed {
    fn observe(&mut self, r: &Record) {
        self.records += 1;
        self.id_kind = Some(match self.id_kind {
            Some(k) => k.union(r.id.kind()),
            None => r.id.kind(),
        });
        *self.namespaces.entry(r.namespace.clone()).or_insert(0) += 1;
        self.metadata_schema.observe(r.metadata.as_ref());
        self.has_documents |= r.document.is_some();
        self.has_uris |= r.uri.is_some();
    }

    fn merge(&mut self, other: Observed) {
        self.records += other.records;
        self.id_kind = match (self.id_kind, other.id_kind) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
        for (ns, n) in other.namespaces {
            *self.namespaces.entry(ns).or_insert(0) += n;
        }
        self.metadata_schema.merge(other.metadata_schema);
        self.has_documents |= other.has_documents;
        self.has_uris |= other.has_uris;
    }

    /// The description of a collection's closed parts, to resume from.
    fn of(manifest: &CollectionManifest) -> Observed {
        Observed {
            records: manifest.record_count,
            id_kind: Some(manifest.id_kind),
            namespaces: manifest
                .namespaces
                .iter()
                .map(|n| (n.name.clone(), n.records))
                .collect(),
            metadata_schema: manifest.metadata_schema.clone(),
            has_documents: manifest.has_documents,
            has_uris: manifest.has_uris,
        }
    }
}

/// One encoded column chunk.
enum Chunk {
    Arrow(ArrowColumnChunk),
    Dense(DenseChunk),
}

/// A row group encoded off the file: its column chunks, row count and id kind.
struct EncodedGroup {
    chunks: Vec<Chunk>,
    rows: usize,
    kind: Option<IdKind>,
}

/// Schema and properties shared by every part of a collection.
struct Encoder {
    schema: SchemaRef,
    props: WriterProperties,
    factory: Option<ArrowRowGroupWriterFactory>,
    /// What every encoding job needs.
    job: Arc<JobContext>,
}

/// The shared, read-only inputs of row group encoding.
struct JobContext {
    schema: SchemaRef,
    vectors: Vec<VectorColumn>,
    /// Per vector field, its leaf column when it is encoded directly
    /// ([`dense`]) rather than through Arrow.
    direct: Vec<Option<ColumnDescPtr>>,
    page_bytes: usize,
    /// Buffers of written dense chunks, reused so that each group does not
    /// fault in fresh memory.
    buffers: BufferPool,
}

/// Row groups being encoded on the rayon pool, and those encoded but not yet
/// written (they are written in order as they complete).
struct Pipeline {
    tx: Sender<(u64, Result<EncodedGroup>)>,
    rx: Receiver<(u64, Result<EncodedGroup>)>,
    /// Sequence number of the next group dispatched.
    next: u64,
    /// Sequence number of the next group to write.
    written: u64,
    done: BTreeMap<u64, Result<EncodedGroup>>,
}

impl Pipeline {
    fn new() -> Pipeline {
        let (tx, rx) = channel();
        Pipeline {
            tx,
            rx,
            next: 0,
            written: 0,
            done: BTreeMap::new(),
        }
    }

    fn in_flight(&self) -> u64 {
        self.next - self.written
    }

    /// The next group in order, waiting for it when `block`.
    fn next_in_order(&mut self, block: bool) -> Option<Result<EncodedGroup>> {
        loop {
            if let Some(g) = self.done.remove(&self.written) {
                self.written += 1;
                return Some(g);
            }
            if self.written == self.next {
                return None;
            }
            let received = if block && rayon::current_thread_index().is_none() {
                self.rx.recv().ok()
            } else {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) if block => {
                        // On a pool thread: help the pool instead of blocking it.
                        rayon::yield_now();
                        continue;
                    }
                    Err(_) => None,
                }
            };
            let (seq, group) = received?;
            self.done.insert(seq, group);
        }
    }
}

struct PartFile {
    index: usize,
    writer: SerializedFileWriter<HashingFile>,
    rows: u64,
    id_kind: Option<IdKind>,
}

impl CollectionWriter {
    fn new(
        dir: Location,
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
            pipeline: Pipeline::new(),
            part: None,
            parts: Vec::new(),
            accepted: 0,
            pending_observed: Observed::default(),
            queued_observed: VecDeque::new(),
            part_observed: Observed::default(),
            closed: Observed {
                id_kind: spec.id_kind,
                ..Observed::default()
            },
            upload_failure: None,
        }
    }

    /// `e`, or the object-storage error behind it: a failed upload reaches
    /// the Parquet writer as a bare I/O error.
    fn storage_cause(&self, e: Error) -> Error {
        self.upload_failure
            .as_ref()
            .and_then(|slot| slot.lock().ok()?.take())
            .unwrap_or(e)
    }

    /// Records accepted so far.
    pub fn records(&self) -> u64 {
        self.accepted
    }

    /// Parts closed so far: their files are complete, synced and renamed.
    pub fn closed_parts(&self) -> usize {
        self.parts.len()
    }

    /// Describes the closed parts alone, as a manifest entry: what an
    /// interrupted export keeps, and [`SnapshotWriter::resume_collection`]
    /// continues from. Records accepted but not yet in a closed part are not
    /// in it. The collection directory is synced first, so the parts it
    /// lists survive a crash.
    pub fn checkpoint(&self) -> Result<CollectionManifest> {
        if let Location::Local(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(self.describe(self.closed.clone(), self.parts.clone()))
    }

    fn describe(&self, observed: Observed, parts: Vec<PartManifest>) -> CollectionManifest {
        let mut notes = self.spec.notes.clone();
        notes.dedup();
        CollectionManifest {
            name: self.spec.name.clone(),
            directory: self.directory.clone(),
            record_count: observed.records,
            namespaces: observed
                .namespaces
                .into_iter()
                .map(|(name, records)| NamespaceCount { name, records })
                .collect(),
            id_kind: observed.id_kind.unwrap_or(IdKind::String),
            vectors: self.vectors.clone(),
            metadata_schema: observed.metadata_schema,
            has_documents: observed.has_documents,
            has_uris: observed.has_uris,
            collection_metadata: self.spec.collection_metadata.clone(),
            raw_config: self.spec.raw_config.clone(),
            embedding_model: self.embedding_model.clone(),
            notes,
            parts,
        }
    }

    /// Adds records. They are encoded once a row group's worth is buffered.
    pub fn write(&mut self, records: Vec<Record>) -> Result<()> {
        self.write_records(records)
            .map_err(|e| self.storage_cause(e))
    }

    fn write_records(&mut self, records: Vec<Record>) -> Result<()> {
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
            self.accepted += 1;
            self.pending_observed.observe(&r);
            self.pending_bytes += r.binary_size_estimate();
            self.pending.push(r);
            // A row group never spans more rows than a part may hold.
            if self.pending.len() as u64
                >= (self.options.row_group_rows as u64).min(self.options.part_max_rows)
                || self.pending_bytes >= self.options.row_group_bytes
            {
                self.cut_group();
                self.dispatch_groups(false)?;
                self.write_encoded(false)?;
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
            self.queued_observed
                .push_back(mem::take(&mut self.pending_observed));
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
            let descr = ArrowSchemaConverter::new()
                .convert(&schema)
                .map_err(|e| parquet_error(&self.dir.file(""), e))?;
            let zstd = ZstdLevel::try_new(self.options.zstd_level).map_err(|e| {
                Error::Usage(format!("zstd level {}: {e}", self.options.zstd_level))
            })?;
            let props = writer_properties(&descr, &self.vectors, &self.options, zstd);
            let direct = self
                .vectors
                .iter()
                .map(|v| {
                    if v.field.kind != VectorKind::Dense
                        || v.field.dimension.unwrap_or(0) == 0
                        || self.options.vector_compression != VectorCompression::None
                    {
                        return None;
                    }
                    let leaves: Vec<&ColumnDescPtr> = descr
                        .columns()
                        .iter()
                        .filter(|c| c.path().parts()[0] == v.column)
                        .collect();
                    match leaves.as_slice() {
                        [leaf] if dense::fits(leaf) => Some((*leaf).clone()),
                        _ => None,
                    }
                })
                .collect();
            let job = Arc::new(JobContext {
                schema: schema.clone(),
                vectors: self.vectors.clone(),
                direct,
                page_bytes: props.data_page_size_limit(),
                // Groups being encoded and waiting to be written.
                buffers: BufferPool::new(2 * self.parallelism() + 2, usize::MAX),
            });
            self.encoder = Some(Encoder {
                schema,
                props,
                factory: None,
                job,
            });
        }
        Ok(self.encoder.as_mut().expect("set above"))
    }

    /// Hands the cut row groups to the rayon pool. The first ones wait until
    /// enough are buffered to resolve undeclared dimensions (or `force`).
    fn dispatch_groups(&mut self, force: bool) -> Result<()> {
        let resolving = self.encoder.is_none()
            && self
                .vectors
                .iter()
                .any(|v| v.field.kind != VectorKind::Sparse && v.field.dimension.is_none());
        if self.groups.is_empty() || (resolving && !force && self.groups.len() < self.parallelism())
        {
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
        for records in groups {
            let writers = factory
                .create_column_writers(self.pipeline.next as usize)
                .map_err(|e| parquet_error(&self.dir.file(""), e))?;
            let job = encoder.job.clone();
            let tx = self.pipeline.tx.clone();
            let seq = self.pipeline.next;
            self.pipeline.next += 1;
            rayon::spawn(move || {
                let group = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    encode_group(&job, records, writers)
                }))
                .unwrap_or_else(|_| {
                    Err(Error::InvalidData(
                        "encoding a row group failed unexpectedly".into(),
                    ))
                });
                // The receiver is gone only when writing already failed.
                let _ = tx.send((seq, group));
            });
        }
        Ok(())
    }

    /// Writes the encoded row groups that are next in order. Waits while more
    /// groups than allowed are in flight, or for all of them when `all`.
    fn write_encoded(&mut self, all: bool) -> Result<()> {
        let limit = if all {
            0
        } else {
            2 * self.parallelism() as u64
        };
        loop {
            let block = self.pipeline.in_flight() > limit;
            let Some(group) = self.pipeline.next_in_order(block) else {
                return Ok(());
            };
            self.write_group(group?)?;
        }
    }

    fn write_group(&mut self, group: EncodedGroup) -> Result<()> {
        if self.part.is_none() {
            self.open_part()?;
        }
        let part = self.part.as_mut().expect("opened above");
        let mut rg = part
            .writer
            .next_row_group()
            .map_err(|e| parquet_error(&self.dir.file(""), e))?;
        for c in group.chunks {
            match c {
                Chunk::Arrow(c) => c.append_to_row_group(&mut rg),
                Chunk::Dense(d) => {
                    let r = rg.append_column(&d.bytes, d.close);
                    if let Some(e) = &self.encoder {
                        e.job.buffers.give(Vec::from(d.bytes));
                    }
                    r
                }
            }
            .map_err(|e| parquet_error(&self.dir.file(""), e))?;
        }
        rg.close()
            .map_err(|e| parquet_error(&self.dir.file(""), e))?;
        part.rows += group.rows as u64;
        // Groups are written in the order they were cut.
        if let Some(observed) = self.queued_observed.pop_front() {
            self.part_observed.merge(observed);
        }
        part.id_kind = match (part.id_kind, group.kind) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
        if part.rows >= self.options.part_max_rows
            || part.writer.bytes_written() as u64 >= self.options.part_max_bytes
        {
            self.close_part()?;
        }
        Ok(())
    }

    fn open_part(&mut self) -> Result<()> {
        let index = self.parts.len();
        let name = layout::part_file_name(index);
        let (destination, tmp) = match &self.dir {
            Location::Local(dir) => {
                let tmp = temp_path(&dir.join(&name));
                let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                let direct = self.options.direct_io;
                (Destination::File { file, direct }, tmp)
            }
            // An upload appears under its name only once completed.
            Location::Bucket(b) => {
                let upload = b.upload(&name)?;
                self.upload_failure = Some(upload.failure());
                (Destination::Upload(Box::new(upload)), b.file(&name))
            }
        };
        let encoder = self
            .encoder
            .as_mut()
            .expect("created before a part is opened");
        let options = ArrowWriterOptions::new().with_properties(encoder.props.clone());
        let arrow_writer = ArrowWriter::try_new_with_options(
            HashingFile::new(destination),
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
        let path = self.dir.file(&name);
        let tmp = match &self.dir {
            Location::Local(_) => temp_path(&path),
            Location::Bucket(_) => path.clone(),
        };
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
        let written = hashing.finish().map_err(|e| Error::io(&tmp, e))?;
        tracing::debug!(
            part = %path.display(),
            bytes = written.bytes,
            direct_io_bytes = written.direct,
            "part written"
        );
        if tmp != path {
            fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        self.parts.push(PartManifest {
            path: name,
            rows: part.rows,
            bytes: written.bytes,
            blake3: written.blake3,
        });
        self.closed.merge(mem::take(&mut self.part_observed));
        Ok(())
    }

    /// Writes what is buffered, closes the last part and describes the collection.
    pub fn finish(mut self) -> Result<CollectionManifest> {
        self.cut_group();
        let flushed = self
            .dispatch_groups(true)
            .and_then(|()| self.write_encoded(true))
            .and_then(|()| self.close_part());
        if let Err(e) = flushed {
            return Err(self.storage_cause(e));
        }
        if let Location::Local(dir) = &self.dir {
            sync_dir(dir)?;
        }
        let observed = mem::take(&mut self.closed);
        let parts = mem::take(&mut self.parts);
        Ok(self.describe(observed, parts))
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
    descr: &SchemaDescriptor,
    vectors: &[VectorColumn],
    options: &WriteOptions,
    zstd: ZstdLevel,
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_data_page_size_limit(1 << 20)
        .set_max_row_group_row_count(None)
        .set_statistics_truncate_length(Some(64))
        .set_column_index_truncate_length(Some(64))
        .set_created_by(format!("vecport {}", env!("CARGO_PKG_VERSION")));
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
    b.build()
}

/// Encodes one row group (on a rayon thread).
fn encode_group(
    job: &JobContext,
    records: Vec<Record>,
    writers: Vec<ArrowColumnWriter>,
) -> Result<EncodedGroup> {
    let mut writers = writers.into_iter();
    let mut chunks = Vec::with_capacity(writers.len());
    let fields = job.schema.fields();
    for (field, column) in fields.iter().zip(fixed_columns(&records)) {
        encode_arrow(field, &column, &mut writers, &mut chunks)?;
    }
    for (i, (v, field)) in job.vectors.iter().zip(&fields[5..]).enumerate() {
        match &job.direct[i] {
            Some(descr) => {
                // Its Arrow writer goes unused.
                writers.next();
                let chunk =
                    dense::encode(descr, v, i, &records, job.page_bytes, job.buffers.take())?;
                chunks.push(Chunk::Dense(chunk));
            }
            None => {
                let column = vector_array(v, i, &records)?;
                encode_arrow(field, &column, &mut writers, &mut chunks)?;
            }
        }
    }
    let kind = records.iter().map(|r| r.id.kind()).reduce(IdKind::union);
    Ok(EncodedGroup {
        chunks,
        rows: records.len(),
        kind,
    })
}

/// Encodes one Arrow column with the next writers, one per leaf.
fn encode_arrow(
    field: &arrow::datatypes::FieldRef,
    column: &arrow::array::ArrayRef,
    writers: &mut impl Iterator<Item = ArrowColumnWriter>,
    chunks: &mut Vec<Chunk>,
) -> Result<()> {
    let invalid = |e: parquet::errors::ParquetError| Error::InvalidData(e.to_string());
    for leaf in compute_leaves(field, column).map_err(invalid)? {
        let mut w = writers.next().expect("one writer per leaf");
        w.write(&leaf).map_err(invalid)?;
        chunks.push(Chunk::Arrow(w.close().map_err(invalid)?));
    }
    Ok(())
}
