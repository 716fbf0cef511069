//! Reading and verifying snapshots (`spec/FORMAT.md` §6 and §7).
//!
//! [`Snapshot::open`] checks the manifest's checksum and validates it before
//! anything in it is used; [`Snapshot::verify`] re-hashes every part and checks
//! its footer against the manifest; [`Snapshot::records`] streams records.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::Record;

use super::columns::{arrow_schema, from_batch};
use super::layout::{MANIFEST, MANIFEST_CHECKSUM};
use super::manifest::{CollectionManifest, Manifest, PartManifest, limits};

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
        let reader = self.part_reader(c, p, 1024)?;
        let rows = reader.rows;
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

    fn part_reader(
        &self,
        c: &CollectionManifest,
        p: &PartManifest,
        batch_rows: usize,
    ) -> Result<PartReader> {
        self.check_directories(c)?;
        let path = self.part_path(c, p);
        let file = open_part(&path)?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::Parquet {
                path: path.clone(),
                message: format!("cannot read the Parquet footer: {e}"),
            })?;
        let rows = builder.metadata().file_metadata().num_rows() as u64;
        if rows != p.rows {
            return Err(Error::invalid(
                &path,
                format!("holds {rows} rows, the manifest says {}", p.rows),
            ));
        }
        let expected = arrow_schema(&c.vectors);
        let found = builder.schema();
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
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(|e| Error::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok(PartReader { path, reader, rows })
    }

    /// Streams a collection's records in batches of about `batch_rows`.
    pub fn records<'a>(
        &'a self,
        collection: &'a CollectionManifest,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<Vec<Record>>> + Send + 'a {
        let mut parts = collection.parts.iter();
        let mut current: Option<PartReader> = None;
        let mut failed = false;
        std::iter::from_fn(move || {
            loop {
                if failed {
                    return None;
                }
                if let Some(part) = current.as_mut() {
                    match part.reader.next() {
                        Some(Ok(batch)) => {
                            let at = part.path.display().to_string();
                            let r =
                                from_batch(&batch, &collection.vectors, collection.id_kind, &at);
                            failed = r.is_err();
                            return Some(r);
                        }
                        Some(Err(e)) => {
                            failed = true;
                            return Some(Err(Error::Parquet {
                                path: part.path.clone(),
                                message: e.to_string(),
                            }));
                        }
                        None => current = None,
                    }
                }
                let p = parts.next()?;
                match self.part_reader(collection, p, batch_rows) {
                    Ok(r) => current = Some(r),
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
        })
    }
}

struct PartReader {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    rows: u64,
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
