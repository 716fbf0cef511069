//! Progress files that let an interrupted export or import continue where it
//! stopped (`--resume`). They live in `.vecport-state/` inside the snapshot
//! directory (an import can be told to keep its own elsewhere), never in a
//! database, and are replaced atomically (temporary file, sync, rename) at
//! every checkpoint. Each is versioned: a newer major version is refused
//! rather than misread.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connectors::Cursor;
use crate::error::{Error, Result};
use crate::snapshot::CollectionManifest;
use crate::snapshot::layout::TEMP_SUFFIX;
use crate::snapshot::writer::{sync_dir, write_atomic};
use crate::storage::{Bucket, Location};

/// The directory of progress files inside a snapshot directory.
pub const STATE_DIR: &str = ".vecport-state";

const EXPORT_FILE: &str = "export.json";
const EXPORT_FORMAT: &str = "vecport-export-state";
const IMPORT_FORMAT: &str = "vecport-import-state";
/// The version written; a reader refuses a higher one.
const VERSION: u32 = 1;

/// Where an export keeps its progress.
pub fn export_state_path(snapshot: &Path) -> PathBuf {
    snapshot.join(STATE_DIR).join(EXPORT_FILE)
}

/// The name of an export's progress file inside its snapshot location.
pub const EXPORT_STATE_NAME: &str = ".vecport-state/export.json";

/// Largest progress file read back (a collection's checkpoint lists its
/// parts; a million parts stay well below this).
const STATE_BYTES: u64 = 1 << 30;

/// Where an import of a snapshot into `target` keeps its progress, inside
/// `state_dir`: one file per target, named by a hash of its endpoint.
pub fn import_state_path(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join(import_state_name(target))
}

fn import_state_name(target: &str) -> String {
    let key = blake3::hash(target.as_bytes()).to_hex();
    format!("import-{}.json", &key[..16])
}

/// A progress file: on disk, or an object in object storage.
#[derive(Debug, Clone)]
pub enum StateFile {
    /// A file, replaced atomically.
    Local(PathBuf),
    /// An object (a put replaces it atomically).
    Object {
        /// The directory's prefix.
        bucket: Bucket,
        /// The object's name in it.
        name: String,
    },
}

impl StateFile {
    /// The progress file of an import into `target`, in `state_dir`.
    pub fn import(state_dir: &Location, target: &str) -> StateFile {
        match state_dir {
            Location::Local(d) => StateFile::Local(import_state_path(d, target)),
            Location::Bucket(b) => StateFile::Object {
                bucket: b.clone(),
                name: import_state_name(target),
            },
        }
    }

    /// Where it is, for messages.
    pub fn path(&self) -> PathBuf {
        match self {
            StateFile::Local(p) => p.clone(),
            StateFile::Object { bucket, name } => bucket.file(name),
        }
    }

    /// Whether it is there.
    pub fn exists(&self) -> bool {
        match self {
            StateFile::Local(p) => p.exists(),
            StateFile::Object { bucket, name } => matches!(bucket.size(name), Ok(Some(_))),
        }
    }

    /// Removes it.
    pub fn remove(&self) -> Result<()> {
        match self {
            StateFile::Local(p) => remove(p),
            StateFile::Object { bucket, name } => bucket.remove(name),
        }
    }
}

/// The progress of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportState {
    /// Always `vecport-export-state`.
    pub format: String,
    /// The version of this file's layout.
    pub version: u32,
    /// The source's endpoint (never with credentials).
    pub source: String,
    /// The collections to export, in order.
    pub collections: Vec<String>,
    /// How vector columns are stored; a resumed export keeps it, so that all
    /// parts of a collection agree.
    pub vector_compression: crate::snapshot::VectorCompression,
    /// Collections completed, as they go into the manifest.
    pub done: Vec<CollectionManifest>,
    /// The collection under way, if a part of it was completed.
    pub current: Option<ExportCheckpoint>,
}

/// How far a collection's export got: the parts completed, and where in the
/// source the records after them start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    /// The collection's completed parts and what they hold.
    pub collection: CollectionManifest,
    /// The source cursor to scan from (`None`: from the start)…
    pub cursor: Option<Cursor>,
    /// …leaving out this many records first: they are in the parts already.
    pub skip: u64,
}

impl ExportState {
    /// A new state for an export of `collections` from `source`.
    pub fn new(
        source: String,
        collections: Vec<String>,
        vector_compression: crate::snapshot::VectorCompression,
    ) -> ExportState {
        ExportState {
            format: EXPORT_FORMAT.into(),
            version: VERSION,
            source,
            collections,
            vector_compression,
            done: Vec::new(),
            current: None,
        }
    }

    /// Reads the state of the unfinished export in `snapshot`, if any.
    pub fn load(snapshot: &Path) -> Result<Option<ExportState>> {
        load(&export_state_path(snapshot), EXPORT_FORMAT)
    }

    /// Replaces the state file atomically.
    pub fn save(&self, snapshot: &Path) -> Result<()> {
        save(&export_state_path(snapshot), self)
    }

    /// [`ExportState::load`] at any location: in object storage, the
    /// progress is an object beside the snapshot's.
    pub fn load_at(snapshot: &Location) -> Result<Option<ExportState>> {
        match snapshot {
            Location::Local(dir) => ExportState::load(dir),
            Location::Bucket(b) => match b.read(EXPORT_STATE_NAME, STATE_BYTES)? {
                None => Ok(None),
                Some(bytes) => parse(&bytes, &b.file(EXPORT_STATE_NAME), EXPORT_FORMAT),
            },
        }
    }

    /// [`ExportState::save`] at any location (an object put is atomic).
    pub fn save_at(&self, snapshot: &Location) -> Result<()> {
        match snapshot {
            Location::Local(dir) => self.save(dir),
            Location::Bucket(b) => b.write(EXPORT_STATE_NAME, encode(self)?),
        }
    }
}

/// Where the progress of an export into `snapshot` is, for messages.
pub fn export_state_file(snapshot: &Location) -> PathBuf {
    snapshot.file(EXPORT_STATE_NAME)
}

/// Removes the progress of an export into `snapshot`.
pub fn remove_export_state(snapshot: &Location) -> Result<()> {
    match snapshot {
        Location::Local(dir) => remove(&export_state_path(dir)),
        Location::Bucket(b) => b.remove(EXPORT_STATE_NAME),
    }
}

/// The progress of an import into one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportState {
    /// Always `vecport-import-state`.
    pub format: String,
    /// The version of this file's layout.
    pub version: u32,
    /// BLAKE3 of the snapshot's manifest: a resume continues the same snapshot.
    pub snapshot: String,
    /// The target's endpoint (never with credentials).
    pub target: String,
    /// Collections started, in order.
    pub collections: Vec<ImportProgress>,
}

/// How far the import of one collection got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportProgress {
    /// The collection's name in the snapshot.
    pub source: String,
    /// Its name in the target.
    pub target: String,
    /// Whether this import created (or replaced) the target collection, so
    /// that its final count must equal the snapshot's.
    pub fresh: bool,
    /// Rows of the snapshot's collection, in part order, that are all in
    /// the target: the import resumes after them.
    pub rows_done: u64,
    /// Whether the collection is complete and checked.
    pub complete: bool,
}

impl ImportState {
    /// A new state for importing the snapshot whose manifest hashes to
    /// `snapshot` into `target`.
    pub fn new(snapshot: String, target: String) -> ImportState {
        ImportState {
            format: IMPORT_FORMAT.into(),
            version: VERSION,
            snapshot,
            target,
            collections: Vec::new(),
        }
    }

    /// Reads the state at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<ImportState>> {
        load(path, IMPORT_FORMAT)
    }

    /// Replaces the state file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save(path, self)
    }

    /// [`ImportState::load`] from any progress file.
    pub fn load_from(file: &StateFile) -> Result<Option<ImportState>> {
        match file {
            StateFile::Local(p) => ImportState::load(p),
            StateFile::Object { bucket, name } => match bucket.read(name, STATE_BYTES)? {
                None => Ok(None),
                Some(bytes) => parse(&bytes, &bucket.file(name), IMPORT_FORMAT),
            },
        }
    }

    /// [`ImportState::save`] to any progress file.
    pub fn save_to(&self, file: &StateFile) -> Result<()> {
        match file {
            StateFile::Local(p) => self.save(p),
            StateFile::Object { bucket, name } => bucket.write(name, encode(self)?),
        }
    }

    /// The progress of collection `source`, if it was started.
    pub fn progress(&self, source: &str) -> Option<&ImportProgress> {
        self.collections.iter().find(|c| c.source == source)
    }

    /// The progress of collection `source`, added when missing.
    pub fn progress_mut(&mut self, source: &str, target: &str, fresh: bool) -> &mut ImportProgress {
        let i = match self.collections.iter().position(|c| c.source == source) {
            Some(i) => i,
            None => {
                self.collections.push(ImportProgress {
                    source: source.to_owned(),
                    target: target.to_owned(),
                    fresh,
                    rows_done: 0,
                    complete: false,
                });
                self.collections.len() - 1
            }
        };
        &mut self.collections[i]
    }
}

/// Where the lock of an export into `snapshot` is.
pub fn export_lock_path(snapshot: &Path) -> PathBuf {
    snapshot.join(STATE_DIR).join(EXPORT_LOCK)
}

/// Where the lock of the import whose progress is kept in `state` is.
pub fn import_lock_path(state: &Path) -> PathBuf {
    state.with_extension("lock")
}

const EXPORT_LOCK: &str = "export.lock";

/// An exclusive lock on one export (of a snapshot directory) or one import
/// (of a snapshot into a target), held from the start of the run to its end
/// so that two runs never write the same files or the same target at once.
/// It is an advisory `flock` on a small file beside the progress file, which
/// also tells who holds it; the operating system releases it when the
/// process ends, however it ends, so a killed run never blocks the next one.
#[derive(Debug)]
pub struct RunLock {
    file: fs::File,
    path: PathBuf,
}

/// Who holds a [`RunLock`], as its file tells.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    command: String,
    started: String,
}

impl RunLock {
    /// Takes the lock at `path` (creating the file and its directory), or
    /// fails with [`Error::Busy`] naming `what` (``an export into DIR``) and
    /// the run that holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<RunLock> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        what: what.to_owned(),
                        holder: describe_holder(path),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
            // The run before may have removed the file between our open and
            // our lock: then the lock is on a file nobody else will open.
            if !same_file(&file, path) {
                continue;
            }
            let holder = Holder {
                pid: std::process::id(),
                host: host_name(),
                command: crate::redact::scrub(&std::env::args().collect::<Vec<_>>().join(" "))
                    .into_owned(),
                started: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            };
            let mut lock = RunLock {
                file,
                path: path.to_owned(),
            };
            lock.write_holder(&holder)?;
            return Ok(lock);
        }
    }

    fn write_holder(&mut self, holder: &Holder) -> Result<()> {
        use std::io::{Seek, Write};
        let bytes = serde_json::to_vec(holder)
            .map_err(|e| Error::InvalidData(format!("cannot encode the lock file: {e}")))?;
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(io::SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| self.file.write_all(&bytes))
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Removes the lock file, then lets the lock go; the directory holding
    /// it goes too when that leaves it empty.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent()
            && dir.file_name().is_some_and(|n| n == STATE_DIR)
        {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Who holds the lock at `path`, in words.
fn describe_holder(path: &Path) -> String {
    let holder = fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
    match holder {
        Some(h) => format!(
            "process {} on {}, `{}`, started {}",
            h.pid, h.host, h.command, h.started
        ),
        None => format!(
            "a process that is just starting; its lock is {}",
            path.display()
        ),
    }
}

/// Whether `file` is still the file at `path`.
fn same_file(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// This machine's name, for a lock's holder.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".to_owned())
}

/// Removes a state file (and the temporary file of a save that was cut
/// short), and its directory once empty.
pub fn remove(path: &Path) -> Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(TEMP_SUFFIX);
    for p in [path, Path::new(&temp)] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    if let Some(dir) = path.parent()
        && dir.file_name().is_some_and(|n| n == STATE_DIR)
    {
        // Fails while other state files (or a lock) remain, which is what we want.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

/// The fields every state file starts with.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

fn load<T: DeserializeOwned>(path: &Path, format: &str) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    parse(&bytes, path, format)
}

/// A progress file's contents, `path` naming it in errors.
fn parse<T: DeserializeOwned>(bytes: &[u8], path: &Path, format: &str) -> Result<Option<T>> {
    let damaged = |why: String| Error::InvalidSnapshot {
        file: path.to_owned(),
        message: format!(
            "the progress file is damaged ({why}); remove it to start over without --resume"
        ),
    };
    let header: Header = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
    if header.format != format {
        return Err(damaged(format!(
            "it is a `{}` file, expected `{format}`",
            header.format
        )));
    }
    if header.version > VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_owned(),
            found: header.version.to_string(),
            supported: VERSION.to_string(),
        });
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| damaged(e.to_string()))
}

fn encode<T: Serialize>(state: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::InvalidData(format!("cannot encode the progress file: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn save<T: Serialize>(path: &Path, state: &T) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomic(path, &encode(state)?)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = export_lock_path(dir.path());
        let first = RunLock::acquire(&path, "an export into x").unwrap();
        let err = RunLock::acquire(&path, "an export into x").unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("process {}", std::process::id()))
                && text.contains("an export into x is already under way in another vecport run"),
            "{text}"
        );
        first.release();
        assert!(!path.exists() && !path.parent().unwrap().exists());
        let again = RunLock::acquire(&path, "an export into x").unwrap();
        again.release();
    }

    #[test]
    fn round_trip_and_newer_version_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ImportState::new("abc".into(), "qdrant://h:1".into());
        state.progress_mut("a", "b", true).rows_done = 42;
        let path = import_state_path(&dir.path().join(STATE_DIR), &state.target);
        state.save(&path).unwrap();
        let back = ImportState::load(&path).unwrap().unwrap();
        assert_eq!(back.progress("a").unwrap().rows_done, 42);
        assert!(back.progress("b").is_none());

        let mut raw: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        raw["version"] = 2.into();
        fs::write(&path, raw.to_string()).unwrap();
        let err = ImportState::load(&path).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");

        fs::write(
            &path,
            b"{\"format\": \"vecport-export-state\", \"version\": 1}",
        )
        .unwrap();
        let err = ImportState::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("damaged") && err.contains("vecport-export-state"),
            "{err}"
        );

        remove(&path).unwrap();
        assert!(
            !path.parent().unwrap().exists(),
            "the empty state directory goes too"
        );
        assert!(ImportState::load(&path).unwrap().is_none());
    }
}
