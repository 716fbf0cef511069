//! Reading and verifying snapshots (`spec/FORMAT.md` §6 and §7).
//!
//! [`Snapshot::open`] checks the manifest's checksum and validates it before
//! anything in it is used; [`Snapshot::verify`] re-hashes every part and checks
//! its footer against the manifest; [`Snapshot::records`] streams records.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{TryRecvError, channel};

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{IdKind, Record, VectorKind};

use super::block::RecordBlock;
use super::columns::arrow_schema;
use super::dense;
use super::layout::{MANIFEST, MANIFEST_CHECKSUM};
use super::manifest::{CollectionManifest, Manifest, PartManifest, VectorColumn, limits};

/// An opened snapshot whose manifest passed its checksum and validation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: PathBuf,
    manifest: Manifest,
}

/// What [`Snapshot::verify`] found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Part files checked.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Rows counted in part footers.
    pub rows: u64,
    /// Every problem, each naming its file.
    pub problems: Vec<Error>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Snapshot {
    /// Opens the snapshot in `root`.
    pub fn open(root: &Path) -> Result<Snapshot> {
        let manifest_path = root.join(MANIFEST);
        let checksum_path = root.join(MANIFEST_CHECKSUM);
        let meta = match fs::symlink_metadata(&manifest_path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let hint = if root.is_dir() {
                    "is missing: this directory holds no complete snapshot (an export that did not finish, or not a snapshot at all)"
                } else {
                    "is missing: the snapshot directory does not exist"
                };
                return Err(Error::invalid(&manifest_path, hint));
            }
            Err(e) => return Err(Error::io(&manifest_path, e)),
        };
        if !meta.is_file() {
            return Err(Error::invalid(&manifest_path, "is not a regular file"));
        }
        if meta.len() > limits::MANIFEST_BYTES {
            return Err(Error::invalid(
                &manifest_path,
                format!(
                    "is {} bytes, more than the limit of {}",
                    meta.len(),
                    limits::MANIFEST_BYTES
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        File::open(&manifest_path)
            .and_then(|f| f.take(limits::MANIFEST_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::io(&manifest_path, e))?;
        let expected = read_checksum_file(&checksum_path)?;
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if expected != actual {
            return Err(Error::ChecksumMismatch {
                file: manifest_path,
                expected,
                actual,
            });
        }
        let manifest = Manifest::from_slice(&bytes, &manifest_path)?;
        Ok(Snapshot {
            root: root.to_owned(),
            manifest,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The snapshot's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Option<&CollectionManifest> {
        self.manifest.collections.iter().find(|c| c.name == name)
    }

    /// Path of a part on disk.
    pub fn part_path(&self, c: &CollectionManifest, p: &PartManifest) -> PathBuf {
        self.root.join(&c.directory).join(&p.path)
    }

    /// Re-hashes every part and checks its size, footer, row count and schema.
    pub fn verify(&self) -> VerifyReport {
        self.verify_collections(&self.manifest.collections.iter().collect::<Vec<_>>())
    }

    /// [`Snapshot::verify`] restricted to some collections.
    pub fn verify_collections(&self, collections: &[&CollectionManifest]) -> VerifyReport {
        let jobs: Vec<(&CollectionManifest, &PartManifest)> = collections
            .iter()
            .flat_map(|c| c.parts.iter().map(move |p| (*c, p)))
            .collect();
        let results: Vec<Result<(u64, u64)>> = jobs
            .par_iter()
            .map(|(c, p)| self.verify_part(c, p))
            .collect();
        let mut report = VerifyReport::default();
        for r in results {
            report.files += 1;
            match r {
                Ok((bytes, rows)) => {
                    report.bytes += bytes;
                    report.rows += rows;
                }
                Err(e) => report.problems.push(e),
            }
        }
        report
    }

    fn verify_part(&self, c: &CollectionManifest, p: &PartManifest) -> Result<(u64, u64)> {
        self.check_directories(c)?;
        let path = self.part_path(c, p);
        let mut file = open_part(&path)?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len != p.bytes {
            return Err(Error::invalid(
                &path,
                format!(
                    "is {len} bytes, the manifest says {} (truncated or replaced)",
                    p.bytes
                ),
            ));
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 4 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
        let actual = hasher.finalize().to_hex().to_string();
        if actual != p.blake3 {
            return Err(Error::ChecksumMismatch {
                file: path,
                expected: p.blake3.clone(),
                actual,
            });
        }
        let rows = self.open_part_checked(c, p)?.rows;
        Ok((len, rows))
    }

    /// Refuses a collection directory (or `collections/`) that is a symlink,
    /// so that no file outside the snapshot is ever read.
    fn check_directories(&self, c: &CollectionManifest) -> Result<()> {
        let mut dir = self.root.clone();
        for component in c.directory.split('/') {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::invalid(
                        &dir,
                        "is not a directory (symlinks are refused)",
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::invalid(
                        &dir,
                        "is missing; the snapshot is incomplete",
                    ));
                }
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        Ok(())
    }

    /// Opens a part and checks its footer against the manifest: row count and
    /// the type of every column the manifest implies.
    fn open_part_checked(&self, c: &CollectionManifest, p: &PartManifest) -> Result<OpenPart> {
        self.check_directories(c)?;
        let path = self.part_path(c, p);
        let file = PartFile::new(open_part(&path)?).map_err(|e| Error::io(&path, e))?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| {
            Error::Parquet {
                path: path.clone(),
                message: format!("cannot read the Parquet footer: {e}"),
            }
        })?;
        let rows = meta.metadata().file_metadata().num_rows() as u64;
        if rows != p.rows {
            return Err(Error::invalid(
                &path,
                format!("holds {rows} rows, the manifest says {}", p.rows),
            ));
        }
        let expected = arrow_schema(&c.vectors);
        let found = meta.schema();
        for field in expected.fields() {
            match found.field_with_name(field.name()) {
                Ok(f) if f.data_type() == field.data_type() => {}
                Ok(f) => {
                    return Err(Error::invalid(
                        &path,
                        format!(
                            "column `{}` has type {}, the manifest implies {}",
                            field.name(),
                            f.data_type(),
                            field.data_type()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(Error::invalid(
                        &path,
                        format!("column `{}` is missing", field.name()),
                    ));
                }
            }
        }
        Ok(OpenPart {
            path,
            file: Arc::new(file),
            meta,
            rows,
        })
    }

    /// Streams a collection's rows in blocks of at most `batch_rows` rows.
    ///
    /// Row groups are read and decoded on the rayon pool, a few ahead of the
    /// one being returned, and handed out in order; dense vector columns are
    /// decoded straight from their pages into one buffer per row group where
    /// they have the layout vecport writes. The blocks of one row group share
    /// its buffers.
    pub fn blocks<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBlock>> + Send + 'a {
        let batch_rows = batch_rows.max(1);
        let ahead = rayon::current_num_threads().max(1) + 1;
        let context = Arc::new(GroupContext {
            vectors: collection.vectors.clone(),
            id_kind: collection.id_kind,
        });
        let mut parts = collection.parts.iter();
        let mut part: Option<(Arc<OpenPart>, usize)> = None;
        let (tx, rx) = channel::<(u64, Result<RecordBlock>)>();
        let mut done: BTreeMap<u64, Result<RecordBlock>> = BTreeMap::new();
        let (mut next, mut taken) = (0u64, 0u64);
        let mut exhausted = false;
        let mut current: Option<(RecordBlock, usize)> = None;
        let mut failed = false;
        std::iter::from_fn(move || {
            loop {
                if failed {
                    return None;
                }
                if let Some((block, offset)) = current.as_mut()
                    && *offset < block.len()
                {
                    let out = if *offset == 0 && block.len() <= batch_rows {
                        block.clone()
                    } else {
                        block.slice(*offset, batch_rows)
                    };
                    *offset += out.len();
                    return Some(Ok(out));
                }
                current = None;
                // Keep `ahead` row groups in flight.
                while !exhausted && next - taken < ahead as u64 {
                    if part
                        .as_ref()
                        .is_none_or(|(p, g)| *g >= p.meta.metadata().num_row_groups())
                    {
                        match parts.next() {
                            None => {
                                exhausted = true;
                                break;
                            }
                            Some(p) => match self.open_part_checked(collection, p) {
                                Ok(open) => part = Some((Arc::new(open), 0)),
                                Err(e) => {
                                    done.insert(next, Err(e));
                                    next += 1;
                                    exhausted = true;
                                    break;
                                }
                            },
                        }
                        continue;
                    }
                    let (open, group) = part.as_mut().expect("checked above");
                    let (open, index) = (open.clone(), *group);
                    *group += 1;
                    let context = context.clone();
                    let tx = tx.clone();
                    let seq = next;
                    next += 1;
                    rayon::spawn(move || {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            read_group(&open, index, &context)
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::InvalidData(format!(
                                "{}: decoding row group {index} failed unexpectedly",
                                open.path.display()
                            )))
                        });
                        let _ = tx.send((seq, r));
                    });
                }
                if taken == next {
                    return None;
                }
                let group = loop {
                    if let Some(g) = done.remove(&taken) {
                        break g;
                    }
                    let received = if rayon::current_thread_index().is_none() {
                        rx.recv().ok()
                    } else {
                        match rx.try_recv() {
                            Ok(m) => Some(m),
                            Err(TryRecvError::Empty) => {
                                rayon::yield_now();
                                continue;
                            }
                            Err(TryRecvError::Disconnected) => None,
                        }
                    };
                    let (seq, g) = received.expect("a sender is held here");
                    done.insert(seq, g);
                };
                taken += 1;
                match group {
                    Ok(block) => current = Some((block, 0)),
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
        })
    }

    /// Streams a collection's records in batches of at most `batch_rows`:
    /// [`Snapshot::blocks`], each row made a [`Record`].
    pub fn records<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<Vec<Record>>> + Send + 'a {
        self.blocks(collection, batch_rows)
            .map(|block| block.and_then(|b| b.to_records()))
    }
}

/// A part opened for reading, its footer checked.
struct OpenPart {
    path: PathBuf,
    file: Arc<PartFile>,
    meta: ArrowReaderMetadata,
    rows: u64,
}

/// What decoding a row group needs besides the part.
struct GroupContext {
    vectors: Vec<VectorColumn>,
    id_kind: IdKind,
}

/// Decodes row group `index` of `part` into a block.
///
/// The row group's column chunks are read with one positioned read; dense
/// columns with the direct layout are decoded from that buffer straight into
/// their contiguous values, the rest goes through Arrow over the same buffer.
fn read_group(part: &OpenPart, index: usize, cx: &GroupContext) -> Result<RecordBlock> {
    let at = part.path.display().to_string();
    let parquet_err = |e: parquet::errors::ParquetError| Error::Parquet {
        path: part.path.clone(),
        message: e.to_string(),
    };
    let metadata = part.meta.metadata();
    let group = metadata.row_group(index);
    let rows = usize::try_from(group.num_rows()).map_err(|_| Error::Parquet {
        path: part.path.clone(),
        message: format!("row group {index} has a negative row count"),
    })?;
    let (start, end) = group
        .columns()
        .iter()
        .map(|c| {
            let (start, len) = c.byte_range();
            (start, start.saturating_add(len))
        })
        .fold((u64::MAX, 0), |(s, e), (cs, ce)| (s.min(cs), e.max(ce)));
    let chunk = if start < end {
        let len = usize::try_from(end - start)
            .ok()
            .filter(|_| end <= part.file.len)
            .ok_or_else(|| Error::Parquet {
                path: part.path.clone(),
                message: format!(
                    "row group {index} spans bytes {start}..{end}, beyond the file's {} bytes",
                    part.file.len
                ),
            })?;
        read_exact_at(&part.file, start, len).map_err(parquet_err)?
    } else {
        Bytes::new()
    };
    let chunk = Arc::new(ChunkSlice {
        start: start.min(end),
        bytes: chunk,
    });
    let descr = part.meta.parquet_schema();
    // Dense columns with the direct layout; the rest goes through Arrow.
    let mut direct = vec![None; cx.vectors.len()];
    let mut skip = HashSet::new();
    for (i, v) in cx.vectors.iter().enumerate() {
        if v.field.kind != VectorKind::Dense {
            continue;
        }
        let leaves: Vec<usize> = (0..descr.num_columns())
            .filter(|&c| descr.column(c).path().parts()[0] == v.column)
            .collect();
        let [leaf] = leaves[..] else { continue };
        let column = group.column(leaf);
        let mut pages =
            SerializedPageReader::new(chunk.clone(), column, rows, None).map_err(parquet_err)?;
        let dim = v.field.dimension.unwrap_or(0) as usize;
        let bytes = column.byte_range().1 as usize;
        if let Some(values) = dense::decode(&mut pages, &descr.column(leaf), dim, rows, bytes)? {
            direct[i] = Some(values);
            skip.insert(v.column.as_str());
        }
    }
    let roots: Vec<usize> = part
        .meta
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !skip.contains(f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(descr, roots);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
        ChunkSlice::clone(&chunk),
        part.meta.clone(),
    )
    .with_row_groups(vec![index])
    .with_projection(mask)
    .with_batch_size(rows.max(1))
    .build()
    .map_err(parquet_err)?;
    let mut batches = Vec::with_capacity(1);
    for batch in reader {
        batches.push(batch.map_err(|e| Error::Parquet {
            path: part.path.clone(),
            message: e.to_string(),
        })?);
    }
    // One batch of `rows` rows (none for an empty row group).
    let batch = match (batches.pop(), batches.is_empty()) {
        (Some(batch), true) => batch,
        (None, _) => RecordBatch::new_empty(arrow_schema(&cx.vectors)),
        (Some(_), false) => {
            return Err(Error::Parquet {
                path: part.path.clone(),
                message: format!("row group {index} decoded into more than one batch"),
            });
        }
    };
    if batch.num_rows() != rows {
        return Err(Error::Parquet {
            path: part.path.clone(),
            message: format!(
                "row group {index} decoded into {} rows, its footer says {rows}",
                batch.num_rows()
            ),
        });
    }
    RecordBlock::new(&batch, &cx.vectors, cx.id_kind, &at, direct)
}

/// A part file read with positioned reads, so row groups can be read from
/// several threads at once.
struct PartFile {
    file: File,
    len: u64,
}

impl PartFile {
    fn new(file: File) -> std::io::Result<PartFile> {
        let len = file.metadata()?.len();
        advise_sequential(&file);
        Ok(PartFile { file, len })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset)
        }
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn advise_sequential(file: &File) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }
    const POSIX_FADV_SEQUENTIAL: i32 = 2;
    // SAFETY: a valid open descriptor; the call only advises the kernel.
    let _ = unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_SEQUENTIAL) };
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn advise_sequential(_file: &File) {}

/// Reads from `offset` on, advancing its own position.
struct PartRead {
    file: Arc<PartFile>,
    offset: u64,
}

impl Read for PartRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads `length` bytes at `start`.
fn read_exact_at(file: &PartFile, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
    let short = |read: usize| {
        parquet::errors::ParquetError::EOF(format!(
            "expected {length} bytes at offset {start}, the file ends after {read}"
        ))
    };
    let io = |e: std::io::Error| parquet::errors::ParquetError::External(Box::new(e));
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        use std::os::fd::AsRawFd;
        unsafe extern "C" {
            fn pread(fd: i32, buf: *mut u8, count: usize, offset: i64) -> isize;
        }
        // Read into memory that is not zeroed first: `pread` writes through a
        // raw pointer, and only the bytes it reports are marked initialised.
        let mut buf = Vec::<u8>::with_capacity(length);
        while buf.len() < length {
            let filled = buf.len();
            let offset = i64::try_from(start + filled as u64).map_err(|_| short(filled))?;
            let spare = buf.spare_capacity_mut();
            // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by
            // `buf`; `pread` writes at most that many bytes into it.
            let n = unsafe {
                pread(
                    file.file.as_raw_fd(),
                    spare.as_mut_ptr().cast::<u8>(),
                    spare.len(),
                    offset,
                )
            };
            match n {
                0 => return Err(short(filled)),
                n if n < 0 => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(io(e));
                    }
                }
                // SAFETY: `pread` initialised `n` more bytes, within the capacity.
                n => unsafe { buf.set_len(filled + n as usize) },
            }
        }
        Ok(Bytes::from(buf))
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        let mut buf = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            match file.read_at(&mut buf[filled..], start + filled as u64) {
                Ok(0) => return Err(short(filled)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(Bytes::from(buf))
    }
}

impl Length for PartFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PartFile {
    type T = std::io::BufReader<PartRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        // Only the footer is read through here (by `ArrowReaderMetadata::load`).
        let file = PartFile {
            file: self.file.try_clone()?,
            len: self.len,
        };
        Ok(std::io::BufReader::new(PartRead {
            file: Arc::new(file),
            offset: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        read_exact_at(self, start, length)
    }
}

/// Column chunks read into memory, addressed by file offsets.
#[derive(Clone)]
struct ChunkSlice {
    start: u64,
    bytes: Bytes,
}

impl Length for ChunkSlice {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for ChunkSlice {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let from = start
            .checked_sub(self.start)
            .filter(|&f| f <= self.bytes.len() as u64)
            .ok_or_else(|| {
                parquet::errors::ParquetError::EOF(format!("offset {start} is outside the chunk"))
            })?;
        Ok(bytes::Buf::reader(self.bytes.slice(from as usize..)))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .map(|f| f as usize)
            .filter(|&f| f.checked_add(length).is_some_and(|e| e <= self.bytes.len()))
            .ok_or_else(|| {
                parquet::errors::ParquetError::EOF(format!(
                    "{length} bytes at offset {start} are outside the chunk"
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

/// Opens a part, refusing anything but a regular file (no symlinks out of the snapshot).
fn open_part(path: &Path) -> Result<File> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => File::open(path).map_err(|e| Error::io(path, e)),
        Ok(_) => Err(Error::invalid(
            path,
            "is not a regular file (symlinks are refused)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::invalid(
            path,
            "is missing; the snapshot is incomplete, copy it again from its origin",
        )),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Reads `manifest.json.blake3` (`<hex>  manifest.json`).
fn read_checksum_file(path: &Path) -> Result<String> {
    let text = match fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => return Err(Error::invalid(path, "is not a regular file")),
        Ok(m) if m.len() > 1024 => {
            return Err(Error::invalid(path, "is too large to be a checksum file"));
        }
        // Not UTF-8 is damage like any other, not an I/O failure.
        Ok(_) => {
            String::from_utf8_lossy(&fs::read(path).map_err(|e| Error::io(path, e))?).into_owned()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(
                path,
                "is missing; without it the manifest cannot be checked (an export that did not finish?)",
            ));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next(), fields.next()) {
        (Some(hex), Some(name), None)
            if name == MANIFEST
                && hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(hex.to_owned())
        }
        _ => Err(Error::invalid(
            path,
            format!("is damaged: expected `<64 hex digits>  {MANIFEST}`"),
        )),
    }
}
