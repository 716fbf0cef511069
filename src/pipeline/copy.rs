//! Copy: a snapshot from one location to another — disk ↔ bucket, bucket ↔
//! bucket across providers — byte for byte, every part hashed on the way and
//! checked against the manifest before it appears at the destination, the
//! manifest last. This is the air-gapped path: bucket → USB disk → bucket.
//!
//! Progress is kept at the destination (`.vecport-state/copy.json`, the parts
//! completed), so a copy that stopped continues with `--resume`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::snapshot::layout::{COLLECTIONS_DIR, MANIFEST, MANIFEST_CHECKSUM, TEMP_SUFFIX};
use crate::snapshot::writer::{sync_dir, write_atomic};
use crate::snapshot::{Manifest, Snapshot};
use crate::storage::{Location, Upload};

use super::state::{EXPORT_STATE_NAME, RunLock, STATE_DIR};
use super::{Observer, Resume};

/// The progress file of a copy, inside the destination.
const COPY_STATE: &str = ".vecport-state/copy.json";
const COPY_FORMAT: &str = "vecport-copy-state";
const COPY_LOCK: &str = "copy.lock";

/// Bytes read and written at a time.
const CHUNK: usize = 8 << 20;

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Parts copied at once.
    pub parallel: usize,
    /// Whether to continue an unfinished copy at the destination.
    pub resume: Resume,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            parallel: 4,
            resume: Resume::No,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// Parts copied by this run.
    pub parts: usize,
    /// Parts an earlier run had copied.
    pub parts_kept: usize,
    /// Bytes copied by this run.
    pub bytes: u64,
}

/// The progress of a copy: the parts already at the destination, whole and
/// verified, and the manifest they belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CopyState {
    format: String,
    version: u32,
    /// BLAKE3 of the manifest being copied: a resume continues the same snapshot.
    manifest: String,
    /// Parts completed (`collections/…/part-….parquet`).
    done: BTreeSet<String>,
}

/// Copies the snapshot at `from` to `to`, which must be new or empty (or
/// hold the progress of an unfinished copy of the same snapshot, with
/// [`CopyOptions::resume`]).
pub fn copy(
    from: &Location,
    to: &Location,
    options: &CopyOptions,
    observer: &dyn Observer,
) -> Result<CopyReport> {
    to.require_writable("a copy")?;
    let snapshot = Snapshot::open_at(from)?;
    let manifest_bytes = read_whole(from, MANIFEST)?;
    if blake3::hash(&manifest_bytes).to_hex().as_str() != snapshot.manifest_blake3() {
        return Err(Error::invalid(
            from.file(MANIFEST),
            "changed while it was read; check that nothing writes to the snapshot and copy again",
        ));
    }
    let checksum = read_whole(from, MANIFEST_CHECKSUM)?;
    let lock = match to {
        Location::Local(dir) => {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            Some(RunLock::acquire(
                &dir.join(STATE_DIR).join(COPY_LOCK),
                &format!("a copy into {}", dir.display()),
            )?)
        }
        Location::Bucket(_) => None,
    };
    let result = copy_locked(&snapshot, to, options, observer, manifest_bytes, checksum);
    if let Some(lock) = lock {
        lock.release();
    }
    result
}

fn copy_locked(
    snapshot: &Snapshot,
    to: &Location,
    options: &CopyOptions,
    observer: &dyn Observer,
    manifest_bytes: Vec<u8>,
    checksum: Vec<u8>,
) -> Result<CopyReport> {
    let manifest = snapshot.manifest();
    let hash = snapshot.manifest_blake3().to_owned();
    let mut state = match (load_state(to)?, options.resume) {
        (Some(s), Resume::Required | Resume::IfStarted) if s.manifest == hash => s,
        (Some(_), Resume::Required | Resume::IfStarted) => {
            return Err(Error::Usage(format!(
                "{} holds an unfinished copy of another snapshot; remove it to start over",
                to
            )));
        }
        (Some(_), Resume::No) => {
            return Err(Error::Usage(format!(
                "{to} holds an unfinished copy; continue it with --resume, or remove what is there to start over"
            )));
        }
        (None, Resume::Required) => {
            return Err(Error::Usage(format!(
                "{to} holds no unfinished copy to resume (no {}); start one without --resume",
                to.file(COPY_STATE).display()
            )));
        }
        (None, _) => {
            refuse_occupied(to)?;
            CopyState {
                format: COPY_FORMAT.into(),
                version: 1,
                manifest: hash,
                done: BTreeSet::new(),
            }
        }
    };
    // The parts an earlier run completed must still be whole; anything else
    // a copy writes is removed and written again.
    let wanted = parts(manifest);
    if let Location::Bucket(b) = to {
        // Uploads a killed run left open: aborted, or they would be billed.
        b.abort_recorded("")?;
    }
    let present = list_files(to)?;
    state.done.retain(|name| {
        wanted.iter().any(|(n, bytes, _)| {
            n == name && present.iter().any(|(p, len)| p == name && len == bytes)
        })
    });
    for (name, _) in &present {
        let ours = name == MANIFEST || name == MANIFEST_CHECKSUM || is_part(name);
        if ours && !state.done.contains(name) {
            remove_file(to, name)?;
        }
    }
    save_state(to, &state)?;
    let kept = state.done.len();
    let todo: Vec<&(String, u64, String)> = wanted
        .iter()
        .filter(|(n, _, _)| !state.done.contains(n))
        .collect();
    let total_rows: u64 = manifest.collections.iter().map(|c| c.record_count).sum();
    observer.start("snapshot", Some(total_rows));
    let kept_rows: u64 = manifest
        .collections
        .iter()
        .flat_map(|c| c.parts.iter().map(move |p| (c, p)))
        .filter(|(c, p)| state.done.contains(&format!("{}/{}", c.directory, p.path)))
        .map(|(_, p)| p.rows)
        .sum();
    observer.advance(kept_rows);
    let rows_of = |name: &str| {
        manifest
            .collections
            .iter()
            .flat_map(|c| c.parts.iter().map(move |p| (c, p)))
            .find(|(c, p)| format!("{}/{}", c.directory, p.path) == name)
            .map_or(0, |(_, p)| p.rows)
    };
    let queue = Mutex::new(todo.into_iter());
    let state = Mutex::new(state);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let copied = Mutex::new((0usize, 0u64));
    std::thread::scope(|s| {
        for _ in 0..options.parallel.max(1) {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some((name, bytes, blake3)) = queue.lock().expect("queue").next() else {
                        return;
                    };
                    let done =
                        copy_part(snapshot.root(), to, name, *bytes, blake3).and_then(|()| {
                            let mut st = state.lock().expect("state");
                            st.done.insert(name.clone());
                            save_state(to, &st)
                        });
                    match done {
                        Ok(()) => {
                            let mut c = copied.lock().expect("counts");
                            c.0 += 1;
                            c.1 += bytes;
                            observer.advance(rows_of(name));
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().expect("error").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error") {
        return Err(e.resumable(&to.file(COPY_STATE)));
    }
    // The commit point: the checksum, then the manifest, as they were.
    write_final(to, MANIFEST_CHECKSUM, checksum)?;
    write_final(to, MANIFEST, manifest_bytes)?;
    remove_state(to)?;
    observer.finish("snapshot");
    let (parts, bytes) = copied.into_inner().expect("counts");
    Ok(CopyReport {
        parts,
        parts_kept: kept,
        bytes,
    })
}

/// Every part of the manifest: (name in the snapshot, bytes, BLAKE3).
fn parts(manifest: &Manifest) -> Vec<(String, u64, String)> {
    manifest
        .collections
        .iter()
        .flat_map(|c| {
            c.parts.iter().map(move |p| {
                (
                    format!("{}/{}", c.directory, p.path),
                    p.bytes,
                    p.blake3.clone(),
                )
            })
        })
        .collect()
}

/// Whether `name` is a part's name (or its temporary file's).
fn is_part(name: &str) -> bool {
    name.starts_with(COLLECTIONS_DIR)
        && name.rsplit('/').next().is_some_and(|f| {
            f.starts_with("part-") && (f.ends_with(".parquet") || f.ends_with(TEMP_SUFFIX))
        })
}

/// Refuses a destination that holds anything: a copy goes to a new place.
fn refuse_occupied(to: &Location) -> Result<()> {
    let present = list_files(to)?;
    if present.iter().any(|(n, _)| n == EXPORT_STATE_NAME) {
        return Err(Error::Usage(format!(
            "{to} holds an unfinished export (its progress is {}); continue it with `vecport export … --resume`, or remove what is there and copy to it again",
            to.file(EXPORT_STATE_NAME).display()
        )));
    }
    let theirs: Vec<&String> = present
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with(&format!("{STATE_DIR}/")))
        .collect();
    match theirs.first() {
        None => Ok(()),
        Some(first) => Err(Error::Usage(format!(
            "{to} is not empty ({} file(s), e.g. {first}); copy to a new location (or remove what is there first)",
            theirs.len()
        ))),
    }
}

/// Every file under `to`, relative, with its size.
fn list_files(to: &Location) -> Result<Vec<(String, u64)>> {
    match to {
        Location::Bucket(b) => b.list(""),
        Location::Local(dir) => {
            let mut out = Vec::new();
            let mut stack = vec![(dir.clone(), String::new())];
            while let Some((d, rel)) = stack.pop() {
                let entries = match fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&d, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(&d, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let rel = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
                    if meta.is_dir() {
                        stack.push((entry.path(), rel));
                    } else {
                        out.push((rel, meta.len()));
                    }
                }
            }
            out.sort();
            Ok(out)
        }
    }
}

fn remove_file(to: &Location, name: &str) -> Result<()> {
    match to {
        Location::Bucket(b) => b.remove(name),
        Location::Local(_) => {
            let path = to.file(name);
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(&path, e)),
            }
        }
    }
}

/// A small file of the snapshot, whole.
fn read_whole(from: &Location, name: &str) -> Result<Vec<u8>> {
    let limit = crate::snapshot::manifest::limits::MANIFEST_BYTES;
    match from {
        Location::Bucket(b) => b
            .read(name, limit)?
            .map(|b| b.to_vec())
            .ok_or_else(|| Error::invalid(b.file(name), "is missing")),
        Location::Local(_) => {
            let path = from.file(name);
            fs::read(&path).map_err(|e| Error::io(&path, e))
        }
    }
}

fn load_state(to: &Location) -> Result<Option<CopyState>> {
    let bytes = match to {
        Location::Bucket(b) => b.read(COPY_STATE, 1 << 30)?.map(|b| b.to_vec()),
        Location::Local(_) => match fs::read(to.file(COPY_STATE)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(to.file(COPY_STATE), e)),
        },
    };
    let Some(bytes) = bytes else { return Ok(None) };
    let state: CopyState = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(
            to.file(COPY_STATE),
            format!("the progress file is damaged ({e}); remove it to start over without --resume"),
        )
    })?;
    if state.format != COPY_FORMAT || state.version > 1 {
        return Err(Error::invalid(
            to.file(COPY_STATE),
            format!(
                "is a `{}` file of version {}, not a progress file of this vecport's copy",
                state.format, state.version
            ),
        ));
    }
    Ok(Some(state))
}

fn save_state(to: &Location, state: &CopyState) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::InvalidData(format!("cannot encode the progress file: {e}")))?;
    bytes.push(b'\n');
    match to {
        Location::Bucket(b) => b.write(COPY_STATE, bytes),
        Location::Local(_) => {
            let path = to.file(COPY_STATE);
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            write_atomic(&path, &bytes)
        }
    }
}

fn remove_state(to: &Location) -> Result<()> {
    remove_file(to, COPY_STATE)?;
    if let Location::Local(dir) = to {
        // Goes once empty (the lock leaves with the run).
        let _ = fs::remove_dir(dir.join(STATE_DIR));
    }
    Ok(())
}

/// Writes the manifest or its checksum: atomically on disk, as a
/// conditional put in object storage (never over an object already there).
fn write_final(to: &Location, name: &str, bytes: Vec<u8>) -> Result<()> {
    match to {
        Location::Local(dir) => {
            write_atomic(&dir.join(name), &bytes)?;
            sync_dir(dir)
        }
        Location::Bucket(b) => {
            if b.write_new(name, bytes)? {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "{} appeared while the copy ran; nothing was replaced — copy to a new location",
                    b.file(name).display()
                )))
            }
        }
    }
}

/// Where a part's bytes go: a temporary file renamed once whole, or an
/// upload completed once whole. Dropped unfinished, it leaves nothing.
enum Out {
    File {
        file: File,
        tmp: PathBuf,
        path: PathBuf,
        done: bool,
    },
    Upload(Box<Upload>),
}

impl Out {
    fn create(to: &Location, name: &str) -> Result<Out> {
        match to {
            Location::Bucket(b) => Ok(Out::Upload(Box::new(b.upload(name)?))),
            Location::Local(_) => {
                let path = to.file(name);
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(TEMP_SUFFIX);
                let tmp = PathBuf::from(tmp);
                let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                Ok(Out::File {
                    file,
                    tmp,
                    path,
                    done: false,
                })
            }
        }
    }

    fn write(&mut self, to: &Location, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Out::File { file, tmp, .. } => file.write_all(bytes).map_err(|e| Error::io(&*tmp, e)),
            Out::Upload(u) => u.write(bytes).map_err(|e| Error::io(to.file(name), e)),
        }
    }

    fn commit(mut self, to: &Location, name: &str) -> Result<()> {
        match &mut self {
            Out::File {
                file,
                tmp,
                path,
                done,
            } => {
                file.sync_all().map_err(|e| Error::io(&*tmp, e))?;
                fs::rename(&*tmp, &*path).map_err(|e| Error::io(&*path, e))?;
                *done = true;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(())
            }
            Out::Upload(u) => u.commit().map_err(|e| storage_cause(u, to, name, e)),
        }
    }
}

/// The object-storage error that stopped upload `u`, else `e` as an I/O error.
fn storage_cause(u: &Upload, to: &Location, name: &str, e: std::io::Error) -> Error {
    u.failure()
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
        .unwrap_or_else(|| Error::io(to.file(name), e))
}

impl Drop for Out {
    fn drop(&mut self) {
        if let Out::File {
            tmp, done: false, ..
        } = self
        {
            let _ = fs::remove_file(&*tmp);
        }
    }
}

/// Copies part `name`, hashing its bytes on the way; they appear at the
/// destination only when size and BLAKE3 equal the manifest's.
fn copy_part(from: &Location, to: &Location, name: &str, bytes: u64, blake3: &str) -> Result<()> {
    let mut out = Out::create(to, name)?;
    let mut hasher = blake3::Hasher::new();
    let mut n = 0u64;
    let mut each = |chunk: &[u8]| -> Result<()> {
        n += chunk.len() as u64;
        if n > bytes {
            return Err(Error::invalid(
                from.file(name),
                format!("is larger than the {bytes} bytes the manifest says (replaced?)"),
            ));
        }
        hasher.update(chunk);
        out.write(to, name, chunk)
    };
    match from {
        Location::Bucket(b) => {
            b.stream(name, &mut each)?;
        }
        Location::Local(_) => {
            let path = from.file(name);
            let mut file = File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::invalid(
                    &path,
                    "is missing; the snapshot is incomplete, copy it again from its origin",
                ),
                _ => Error::io(&path, e),
            })?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let read = file.read(&mut buf).map_err(|e| Error::io(&path, e))?;
                if read == 0 {
                    break;
                }
                each(&buf[..read])?;
            }
        }
    }
    let actual = hasher.finalize().to_hex().to_string();
    if n != bytes {
        return Err(Error::invalid(
            from.file(name),
            format!("is {n} bytes, the manifest says {bytes} (truncated or replaced)"),
        ));
    }
    if actual != blake3 {
        return Err(Error::ChecksumMismatch {
            file: from.file(name),
            expected: blake3.to_owned(),
            actual,
        });
    }
    out.commit(to, name)
}
