//! Reading and verifying snapshots (`spec/FORMAT.md` §6 and §7).
//!
//! [`Snapshot::open`] checks the manifest's checksum and validates it before
//! anything in it is used; [`Snapshot::verify`] re-hashes every part and checks
//! its footer against the manifest; [`Snapshot::records`] streams records.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{TryRecvError, channel};

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{IdKind, Record, VectorKind};
use crate::pipeline::duplicates::{Confirm, IdHashes};

use super::accept::{self, Normalized};
use super::block::RecordBlock;
use super::columns::arrow_schema;
use super::dense;
use super::guard;
use super::layout::FIXED_COLUMNS;
use super::layout::{MANIFEST, MANIFEST_CHECKSUM};
use super::manifest::{CollectionManifest, Manifest, PartManifest, VectorColumn, limits};
use crate::storage::{Bucket, Location};

/// An opened snapshot whose manifest passed its checksum and validation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: Location,
    manifest: Manifest,
    /// BLAKE3 of `manifest.json`, hex.
    manifest_blake3: String,
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
    /// Rows decoded (with `--deep`).
    pub decoded: u64,
    /// Remarks that are not problems: vector values stored as float64 that
    /// lose bits as float32 (with `--deep`).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Snapshot {
    /// Opens the snapshot in directory `root`.
    pub fn open(root: &Path) -> Result<Snapshot> {
        Snapshot::open_at(&Location::Local(root.to_owned()))
    }

    /// Opens the snapshot at `location`.
    pub fn open_at(location: &Location) -> Result<Snapshot> {
        let root = match location {
            Location::Local(root) => root,
            Location::Bucket(b) => return Snapshot::open_bucket(b),
        };
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
        Snapshot::checked(location, &bytes, expected, manifest_path, checksum_path)
    }

    /// The snapshot at `location` whose manifest is `bytes`, once they hash
    /// to `expected` (from the checksum file) and validate.
    fn checked(
        location: &Location,
        bytes: &[u8],
        expected: String,
        manifest_path: PathBuf,
        checksum_path: PathBuf,
    ) -> Result<Snapshot> {
        let actual = blake3::hash(bytes).to_hex().to_string();
        if expected != actual {
            return Err(Error::ManifestChecksumMismatch {
                manifest: manifest_path,
                checksum_file: checksum_path,
                expected,
                actual,
            });
        }
        let manifest = Manifest::from_slice(bytes, &manifest_path)?;
        Ok(Snapshot {
            root: location.clone(),
            manifest,
            manifest_blake3: actual,
        })
    }

    /// [`Snapshot::open_at`] a prefix in object storage.
    fn open_bucket(b: &Bucket) -> Result<Snapshot> {
        let manifest_path = b.file(MANIFEST);
        let checksum_path = b.file(MANIFEST_CHECKSUM);
        let Some(bytes) = b.read(MANIFEST, limits::MANIFEST_BYTES)? else {
            // Listing is a courtesy here (an HTTP server cannot list), but
            // a bucket that is not there is said so.
            let empty = match b.list("") {
                Ok(l) => l.is_empty(),
                // An HTTP server need not list; object storage must.
                Err(_) if b.provider() == crate::storage::Provider::Http => false,
                Err(e) => return Err(e),
            };
            let hint = if empty {
                "is missing: there is nothing at this location (check the bucket and prefix)"
            } else {
                "is missing: this location holds no complete snapshot (an export that did not finish, or not a snapshot at all)"
            };
            return Err(Error::invalid(&manifest_path, hint));
        };
        let text = match b.read(MANIFEST_CHECKSUM, 1024) {
            Ok(Some(t)) => String::from_utf8_lossy(&t).into_owned(),
            Ok(None) => return Err(Error::invalid(&checksum_path, CHECKSUM_MISSING)),
            Err(Error::InvalidSnapshot { .. }) => {
                return Err(Error::invalid(
                    &checksum_path,
                    "is too large to be a checksum file",
                ));
            }
            Err(e) => return Err(e),
        };
        let expected = parse_checksum(&checksum_path, &text)?;
        let location = Location::Bucket(b.clone());
        Snapshot::checked(&location, &bytes, expected, manifest_path, checksum_path)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// BLAKE3 of the manifest as read (hex): names this snapshot's content.
    pub fn manifest_blake3(&self) -> &str {
        &self.manifest_blake3
    }

    /// Where the snapshot is.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Option<&CollectionManifest> {
        self.manifest.collections.iter().find(|c| c.name == name)
    }

    /// Where a part is: its path on disk, or its URL.
    pub fn part_path(&self, c: &CollectionManifest, p: &PartManifest) -> PathBuf {
        self.root.file(&part_name(c, p))
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

    /// [`Snapshot::verify_collections`], then every row of each collection
    /// whose parts passed is decoded with the checks of §6 that `import`
    /// runs: ids per the id kind, metadata parsed as JSON objects, vector
    /// values of the manifest's shape, each part hashed again over the
    /// bytes decoded.
    pub fn verify_deep(&self, collections: &[&CollectionManifest]) -> VerifyReport {
        let mut report = VerifyReport::default();
        for c in collections {
            let r = self.verify_collections(&[c]);
            report.files += r.files;
            report.bytes += r.bytes;
            report.rows += r.rows;
            if !r.is_ok() {
                report.problems.extend(r.problems);
                continue;
            }
            let mut lossy = 0u64;
            let mut record = crate::model::Record {
                id: crate::model::RecordId::Uint(0),
                namespace: None,
                vectors: Vec::new(),
                metadata: None,
                document: None,
                uri: None,
            };
            let mut keys = IdHashes::new(c.record_count);
            let decoded = self.blocks_checked(c, 4096).try_for_each(|block| {
                let block = block?;
                lossy += block.lossy();
                for row in 0..block.len() {
                    block.read_into(row, &mut record)?;
                    keys.push(&record)?;
                }
                report.decoded += block.len() as u64;
                Ok::<(), Error>(())
            });
            if let Err(e) = decoded.and_then(|()| self.check_unique(c, keys)) {
                report.problems.push(e);
            }
            if lossy > 0 {
                report.notes.push(lossy_note(c, lossy));
            }
        }
        report
    }

    /// Refuses ids that occur more than once in one namespace, as `import`
    /// does: a database keeps one record per id. `keys` holds the hashes of
    /// every record's key; records are read again only when two are equal.
    fn check_unique(&self, c: &CollectionManifest, keys: IdHashes) -> Result<()> {
        let suspects = keys.repeated()?;
        if suspects.is_empty() {
            return Ok(());
        }
        let mut confirm = Confirm::default();
        for batch in self.records(c, 4096) {
            batch?.iter().for_each(|r| confirm.observe(&suspects, r));
        }
        let duplicates = confirm.duplicates();
        if duplicates.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = duplicates
            .iter()
            .take(10)
            .map(|(ns, id, n)| match ns {
                Some(ns) => format!("{:?} in namespace {ns:?} ({n} times)", id.to_string()),
                None => format!("{:?} ({n} times)", id.to_string()),
            })
            .collect();
        Err(Error::invalid(
            self.root.file(""),
            format!(
                "collection `{}` holds {} id(s) more than once: {}{}; a database keeps one record per id, so it cannot be imported. Export the collection again while nothing writes to it, or remove the duplicates",
                c.name,
                duplicates.len(),
                named.join(", "),
                if duplicates.len() > 10 { ", …" } else { "" }
            ),
        ))
    }

    fn verify_part(&self, c: &CollectionManifest, p: &PartManifest) -> Result<(u64, u64)> {
        self.check_directories(c)?;
        let path = self.part_path(c, p);
        let wrong_size = |len: u64| {
            Error::invalid(
                &path,
                format!(
                    "is {len} bytes, the manifest says {} (truncated or replaced)",
                    p.bytes
                ),
            )
        };
        let mut hasher = blake3::Hasher::new();
        let len = match &self.root {
            Location::Local(_) => {
                let mut file = open_part(&path)?;
                let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                if len != p.bytes {
                    return Err(wrong_size(len));
                }
                let mut buf = vec![0u8; 4 << 20];
                loop {
                    let n = file.read(&mut buf).map_err(|e| Error::io(&path, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update_rayon(&buf[..n]);
                }
                len
            }
            Location::Bucket(b) => {
                let name = part_name(c, p);
                match b.size(&name)? {
                    None => return Err(Error::invalid(&path, PART_MISSING)),
                    Some(len) if len != p.bytes => return Err(wrong_size(len)),
                    Some(_) => {}
                }
                // Streamed and hashed as it arrives: nothing lands on disk.
                let len = b.stream(&name, |bytes| {
                    hasher.update(bytes);
                    Ok(())
                })?;
                if len != p.bytes {
                    return Err(wrong_size(len));
                }
                len
            }
        };
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
        // Object storage has no directories, nor links out of a prefix.
        let Location::Local(root) = &self.root else {
            return Ok(());
        };
        let mut dir = root.clone();
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

    /// Opens a part and checks its footer against the manifest: row count,
    /// codecs, the byte ranges of its column chunks and the type of every
    /// column the manifest implies (§6, §7). The footer is read once, into
    /// memory, and parsed from there, so that what is checked is what a
    /// hash over the same bytes covers.
    fn open_part_checked(&self, c: &CollectionManifest, p: &PartManifest) -> Result<OpenPart> {
        self.check_directories(c)?;
        let path = self.part_path(c, p);
        let file = match &self.root {
            Location::Local(_) => {
                PartFile::Local(LocalFile::new(open_part(&path)?).map_err(|e| Error::io(&path, e))?)
            }
            Location::Bucket(b) => {
                let name = part_name(c, p);
                let len = b
                    .size(&name)?
                    .ok_or_else(|| Error::invalid(&path, PART_MISSING))?;
                PartFile::Remote {
                    bucket: b.clone(),
                    name,
                    len,
                }
            }
        };
        let damaged = |message: String| Error::Parquet {
            path: path.clone(),
            message,
        };
        let file_len = file.len();
        if file_len < 12 {
            return Err(damaged(format!(
                "is {file_len} bytes, too short for a Parquet file"
            )));
        }
        let tail = read_exact_at(&file, file_len - 8, 8)
            .map_err(|e| damaged(format!("cannot read the Parquet footer: {e}")))?;
        let mut last = [0u8; 8];
        last.copy_from_slice(&tail);
        let tail = FooterTail::try_new(&last)
            .map_err(|e| damaged(format!("cannot read the Parquet footer: {e}")))?;
        if tail.is_encrypted_footer() {
            return Err(damaged(
                "has an encrypted Parquet footer; snapshot parts are not encrypted".into(),
            ));
        }
        let footer_len = tail.metadata_length() as u64;
        if footer_len + 12 > file_len {
            return Err(damaged(format!(
                "its Parquet footer claims {footer_len} bytes, more than the file holds"
            )));
        }
        let footer_start = file_len - 8 - footer_len;
        let footer = read_exact_at(&file, footer_start, footer_len as usize + 8)
            .map_err(|e| damaged(format!("cannot read the Parquet footer: {e}")))?;
        let meta = guard::decoding(&path, "reading the Parquet footer", || {
            let m = ParquetMetaDataReader::decode_metadata(&footer[..footer_len as usize])
                .map_err(|e| damaged(format!("cannot read the Parquet footer: {e}")))?;
            let meta = ArrowReaderMetadata::try_new(Arc::new(m), ArrowReaderOptions::new())
                .map_err(|e| damaged(format!("cannot read the Parquet schema: {e}")))?;
            check_footer(&meta, footer_start).map_err(damaged)?;
            Ok(meta)
        })?;
        let rows = meta.metadata().file_metadata().num_rows() as u64;
        if rows != p.rows {
            return Err(Error::invalid(
                &path,
                format!("holds {rows} rows, the manifest says {}", p.rows),
            ));
        }
        let found = meta.schema();
        let column = |name: &str| {
            found
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|_| Error::invalid(&path, format!("column `{name}` is missing")))
        };
        for name in FIXED_COLUMNS {
            let t = column(name)?;
            if !accept::is_text(name, &t) {
                return Err(Error::invalid(
                    &path,
                    format!(
                        "column `{name}` has type {t}, expected text (Utf8, LargeUtf8 or Utf8View)"
                    ),
                ));
            }
        }
        for v in &c.vectors {
            let t = column(&v.column)?;
            accept::accepts_vector(&t, v).map_err(|why| {
                Error::invalid(
                    &path,
                    format!(
                        "vector column `{}` (field {:?}) has type {t}, which {why}",
                        v.column, v.field.name
                    ),
                )
            })?;
        }
        Ok(OpenPart {
            path,
            file: Arc::new(file),
            meta,
            rows,
            footer,
            footer_start,
            expected: p.clone(),
        })
    }

    /// Streams a collection's rows in blocks of at most `batch_rows` rows.
    ///
    /// Row groups are read and decoded on the rayon pool, a few ahead of the
    /// one being returned, and handed out in order; dense vector columns are
    /// decoded straight from their pages into one buffer per row group where
    /// they have the layout vecport writes. The blocks of one row group share
    /// its buffers. Parts are not hashed: [`Snapshot::verify`] checks them,
    /// and [`Snapshot::blocks_checked`] hashes what it decodes.
    pub fn blocks<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBlock>> + Send + 'a {
        self.stream(collection, batch_rows, false)
    }

    /// [`Snapshot::blocks`], hashing every part in the same pass over the
    /// bytes that are decoded: the last block of a part is handed out only
    /// once the part's BLAKE3 and size equal the manifest's, so a part
    /// changed after it was verified stops the stream with an error naming
    /// it instead of yielding records nobody verified.
    pub fn blocks_checked<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBlock>> + Send + 'a {
        self.stream(collection, batch_rows, true)
    }

    fn stream<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
        hash: bool,
    ) -> impl Iterator<Item = Result<RecordBlock>> + Send + 'a {
        let batch_rows = batch_rows.max(1);
        let threads = rayon::current_num_threads().max(1);
        // Object storage answers with latency: more row groups in flight.
        let ahead = match self.root {
            Location::Local(_) => threads + 1,
            Location::Bucket(_) => (2 * threads).max(8),
        };
        let context = Arc::new(GroupContext {
            vectors: collection.vectors.clone(),
            id_kind: collection.id_kind,
        });
        let mut parts = collection.parts.iter();
        let mut part: Option<(Arc<OpenPart>, usize)> = None;
        let (tx, rx) = channel::<(u64, Result<Group>)>();
        let mut done: BTreeMap<u64, Result<Group>> = BTreeMap::new();
        let (mut next, mut taken) = (0u64, 0u64);
        let mut exhausted = false;
        let mut current: Option<(RecordBlock, usize)> = None;
        let mut hashing: Option<PartHash> = None;
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
                        let opened = parts.next().map(|p| {
                            let open = Arc::new(self.open_part_checked(collection, p)?);
                            if hash && open.meta.metadata().num_row_groups() == 0 {
                                PartHash::new(open.clone()).finish()?;
                            }
                            Ok(open)
                        });
                        match opened {
                            None => {
                                exhausted = true;
                                break;
                            }
                            Some(Ok(open)) => part = Some((open, 0)),
                            Some(Err(e)) => {
                                done.insert(next, Err(e));
                                next += 1;
                                exhausted = true;
                                break;
                            }
                        }
                        continue;
                    }
                    let (open, group) = part.as_mut().expect("checked above");
                    let (open, index) = (open.clone(), *group);
                    *group += 1;
                    let context = context.clone();
                    let tx = tx.clone();
                    let tx_error = tx.clone();
                    let seq = next;
                    next += 1;
                    // A part in object storage: the row group's bytes are
                    // fetched in the background, decoded once they are here,
                    // so that `ahead` requests are in flight, not one per
                    // decoding thread.
                    let remote = match open.file.as_ref() {
                        PartFile::Remote { bucket, name, .. } => {
                            Some((bucket.clone(), name.clone(), group_span(&open, index)))
                        }
                        PartFile::Local(_) => None,
                    };
                    let decode = move |read: Option<(u64, Result<Bytes>)>| {
                        let r = guard::decoding(
                            &open.path,
                            &format!("decoding row group {index}"),
                            || match read {
                                None => read_group(&open, index, &context),
                                Some((start, bytes)) => {
                                    decode_group(&open, index, &context, start, bytes?)
                                }
                            },
                        )
                        .map(|(block, chunk)| Group {
                            block,
                            chunk,
                            part: open.clone(),
                            index,
                        });
                        let _ = tx.send((seq, r));
                    };
                    match remote {
                        Some((bucket, name, Ok(span))) if !span.is_empty() => {
                            let start = span.start;
                            bucket.read_range_then(&name, span, move |bytes| {
                                rayon::spawn(move || decode(Some((start, bytes))));
                            });
                        }
                        Some((_, _, Err(e))) => {
                            let _ = tx_error.send((seq, Err(e)));
                        }
                        _ => rayon::spawn(move || decode(None)),
                    }
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
                let checked = group.and_then(|g| {
                    if hash {
                        let state = match hashing.take() {
                            Some(h) if Arc::ptr_eq(&h.part, &g.part) => h,
                            _ => PartHash::new(g.part.clone()),
                        };
                        let mut state = state;
                        state.group(&g.chunk)?;
                        if g.index + 1 == g.part.meta.metadata().num_row_groups() {
                            state.finish()?;
                        } else {
                            hashing = Some(state);
                        }
                    }
                    Ok(g.block)
                });
                match checked {
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

/// Says that `lossy` vector values of `c` were stored as float64 and lost
/// bits when read as float32.
pub fn lossy_note(c: &CollectionManifest, lossy: u64) -> String {
    format!(
        "collection `{}`: {lossy} vector value(s) are stored as float64 and were rounded to float32, the format's value type; the rounded values are what an import writes",
        c.name
    )
}

/// Checks what a footer says of the file against itself: the row groups'
/// rows add up to the file's, every column chunk lies between the leading
/// magic and the footer, and every codec is one this build reads.
fn check_footer(meta: &ArrowReaderMetadata, footer_start: u64) -> std::result::Result<(), String> {
    let m = meta.metadata();
    let mut rows = 0i64;
    for (g, group) in m.row_groups().iter().enumerate() {
        rows = rows.saturating_add(group.num_rows());
        for column in group.columns() {
            if matches!(column.compression(), Compression::LZO) {
                return Err(format!(
                    "column `{}` is compressed with LZO, which no Parquet reader of this build decodes; write it with UNCOMPRESSED, SNAPPY, GZIP, BROTLI, LZ4_RAW or ZSTD",
                    column.column_path()
                ));
            }
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let len = column.compressed_size();
            if start < 4 || len < 0 || (start as u64).saturating_add(len as u64) > footer_start {
                return Err(format!(
                    "row group {g}: column `{}` claims bytes {start}..{}, outside the file's data",
                    column.column_path(),
                    start.saturating_add(len)
                ));
            }
        }
    }
    if rows != m.file_metadata().num_rows() || rows < 0 {
        return Err(format!(
            "its row groups hold {rows} rows, its footer says {}",
            m.file_metadata().num_rows()
        ));
    }
    Ok(())
}

/// A part opened for reading, its footer checked.
struct OpenPart {
    path: PathBuf,
    file: Arc<PartFile>,
    meta: ArrowReaderMetadata,
    rows: u64,
    /// The footer (metadata and the last 8 bytes) as read and parsed.
    footer: Bytes,
    /// Where the footer starts.
    footer_start: u64,
    /// The manifest's entry of the part.
    expected: PartManifest,
}

/// The BLAKE3 of a part, computed over the bytes the reader decodes, in
/// file order: the column chunks of each row group as read for decoding,
/// the bytes between them, and the footer as parsed.
struct PartHash {
    part: Arc<OpenPart>,
    hasher: blake3::Hasher,
    at: u64,
}

impl PartHash {
    fn new(part: Arc<OpenPart>) -> PartHash {
        PartHash {
            part,
            hasher: blake3::Hasher::new(),
            at: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if bytes.len() >= 1 << 20 {
            self.hasher.update_rayon(bytes);
        } else {
            self.hasher.update(bytes);
        }
        self.at += bytes.len() as u64;
    }

    /// Hashes the file's bytes from where the hash is up to `to`, bytes the
    /// reader does not decode.
    fn skip_to(&mut self, to: u64) -> Result<()> {
        if to < self.at {
            return Err(Error::Parquet {
                path: self.part.path.clone(),
                message: format!(
                    "its row groups overlap (bytes from {to} read twice); the file is damaged"
                ),
            });
        }
        while self.at < to {
            let n = (to - self.at).min(4 << 20) as usize;
            let bytes = read_exact_at(&self.part.file, self.at, n).map_err(|e| Error::Parquet {
                path: self.part.path.clone(),
                message: e.to_string(),
            })?;
            self.update(&bytes);
        }
        Ok(())
    }

    /// Hashes the bytes of a row group's column chunks.
    fn group(&mut self, chunk: &ChunkSlice) -> Result<()> {
        if chunk.bytes.is_empty() {
            return Ok(());
        }
        self.skip_to(chunk.start)?;
        self.update(&chunk.bytes);
        Ok(())
    }

    /// Hashes the rest and the footer, and compares with the manifest.
    fn finish(mut self) -> Result<()> {
        let footer_start = self.part.footer_start;
        self.skip_to(footer_start)?;
        let footer = self.part.footer.clone();
        self.update(&footer);
        let p = &self.part.expected;
        let actual = self.hasher.finalize().to_hex().to_string();
        if self.at != p.bytes || actual != p.blake3 {
            return Err(Error::invalid(
                &self.part.path,
                format!(
                    "changed while it was read: the bytes read ({} bytes, blake3 {actual}) are not those the manifest lists ({} bytes, blake3 {}); nothing read from it can be trusted, check that nothing writes to the snapshot and run the command again",
                    self.at, p.bytes, p.blake3
                ),
            ));
        }
        Ok(())
    }
}

/// A decoded row group, with the bytes it was decoded from.
struct Group {
    block: RecordBlock,
    chunk: ChunkSlice,
    part: Arc<OpenPart>,
    index: usize,
}

/// What decoding a row group needs besides the part.
struct GroupContext {
    vectors: Vec<VectorColumn>,
    id_kind: IdKind,
}

/// The bytes a row group's column chunks span in its part.
fn group_span(part: &OpenPart, index: usize) -> Result<Range<u64>> {
    let group = part.meta.metadata().row_group(index);
    let (start, end) = group
        .columns()
        .iter()
        .map(|c| {
            let (start, len) = c.byte_range();
            (start, start.saturating_add(len))
        })
        .fold((u64::MAX, 0), |(s, e), (cs, ce)| (s.min(cs), e.max(ce)));
    if start >= end {
        return Ok(0..0);
    }
    if end > part.file.len() || usize::try_from(end - start).is_err() {
        return Err(Error::Parquet {
            path: part.path.clone(),
            message: format!(
                "row group {index} spans bytes {start}..{end}, beyond the file's {} bytes",
                part.file.len()
            ),
        });
    }
    Ok(start..end)
}

/// Decodes row group `index` of `part` into a block, reading its bytes.
fn read_group(
    part: &OpenPart,
    index: usize,
    cx: &GroupContext,
) -> Result<(RecordBlock, ChunkSlice)> {
    let span = group_span(part, index)?;
    let chunk = if span.is_empty() {
        Bytes::new()
    } else {
        read_exact_at(&part.file, span.start, (span.end - span.start) as usize).map_err(|e| {
            Error::Parquet {
                path: part.path.clone(),
                message: e.to_string(),
            }
        })?
    };
    decode_group(part, index, cx, span.start, chunk)
}

/// Decodes row group `index` of `part` from `chunk`, its bytes from `start`.
///
/// Dense columns with the direct layout are decoded from that buffer
/// straight into their contiguous values, the rest goes through Arrow over
/// the same buffer.
fn decode_group(
    part: &OpenPart,
    index: usize,
    cx: &GroupContext,
    start: u64,
    chunk: Bytes,
) -> Result<(RecordBlock, ChunkSlice)> {
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
    let chunk = Arc::new(ChunkSlice {
        start,
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
        if let Some(values) =
            dense::decode(&mut pages, &descr.column(leaf), dim, rows, bytes).map_err(parquet_err)?
        {
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
    let decoded: Vec<bool> = direct.iter().map(Option::is_some).collect();
    let Normalized { batch, lossy } = accept::normalize(batch, &cx.vectors, &decoded)
        .map_err(|message| Error::invalid(&part.path, message))?;
    let mut block = RecordBlock::new(&batch, &cx.vectors, cx.id_kind, &at, direct)?;
    block.set_lossy(lossy);
    Ok((block, ChunkSlice::clone(&chunk)))
}

/// A part read with positioned reads, so row groups can be read from
/// several threads at once: a local file, or an object read by ranges.
enum PartFile {
    Local(LocalFile),
    Remote {
        bucket: Bucket,
        name: String,
        len: u64,
    },
}

impl PartFile {
    fn len(&self) -> u64 {
        match self {
            PartFile::Local(f) => f.len,
            PartFile::Remote { len, .. } => *len,
        }
    }
}

/// A local part file.
struct LocalFile {
    file: File,
    len: u64,
}

impl LocalFile {
    fn new(file: File) -> std::io::Result<LocalFile> {
        let len = file.metadata()?.len();
        advise_sequential(&file);
        Ok(LocalFile { file, len })
    }

    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
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

/// Reads `length` bytes at `start` of a part.
fn read_exact_at(file: &PartFile, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
    match file {
        PartFile::Local(f) => read_local_at(f, start, length),
        PartFile::Remote { bucket, name, len } => {
            let end = start.saturating_add(length as u64);
            if end > *len {
                return Err(parquet::errors::ParquetError::EOF(format!(
                    "expected {length} bytes at offset {start}, the object ends at {len}"
                )));
            }
            bucket
                .read_range(name, start..end)
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
    }
}

/// Reads `length` bytes at `start` of a local file.
fn read_local_at(file: &LocalFile, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::invalid(path, PART_MISSING))
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Where a part is inside the snapshot.
fn part_name(c: &CollectionManifest, p: &PartManifest) -> String {
    format!("{}/{}", c.directory, p.path)
}

const PART_MISSING: &str = "is missing; the snapshot is incomplete, copy it again from its origin";
const CHECKSUM_MISSING: &str =
    "is missing; without it the manifest cannot be checked (an export that did not finish?)";

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
            return Err(Error::invalid(path, CHECKSUM_MISSING));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    parse_checksum(path, &text)
}

/// The hash in the text of a checksum file.
fn parse_checksum(path: &Path, text: &str) -> Result<String> {
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
