//! I/O on a prefix in object storage. Requests run on a runtime of their own
//! ([`run`]), so that the threads encoding and decoding Parquet — rayon's
//! and the part writers', none of them async — can wait for them, and so
//! can async code on another runtime.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{MultipartId, ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tokio::task::JoinSet;

use super::config::{self, Env, Provider};
use crate::error::{Error, Result};

/// Bytes per multipart chunk: above S3's 5 MiB minimum, and 10,000 of them
/// (S3's limit) hold a 160 GiB part, far above the largest part written.
const CHUNK: usize = 16 << 20;

/// Suffix of the object that records an unfinished multipart upload of the
/// object named before it, so that a later run can abort it (a process
/// killed mid-upload cannot).
pub const UPLOAD_RECORD_SUFFIX: &str = ".upload";
/// Chunks of one upload in flight at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// The runtime object-storage requests run on.
static IO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("vecport-storage")
        .enable_all()
        .build()
        .expect("the object storage runtime starts")
});

/// Runs `f` on the storage runtime and waits for it, from any thread: a
/// plain thread blocks on it directly, a thread inside a runtime hands the
/// wait to a scoped thread (blocking a runtime's thread on another runtime
/// from inside is refused by tokio).
pub(crate) fn run<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return IO.block_on(f);
    }
    std::thread::scope(|s| {
        s.spawn(|| IO.block_on(f))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A prefix in an object store: a snapshot's root, or a directory in it.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    multipart: Option<Arc<dyn MultipartStore>>,
    prefix: ObjectPath,
    url: String,
    provider: Provider,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Bucket {
    /// Opens the location `url`, configured from the environment.
    pub fn open(url: &url::Url) -> Result<Bucket> {
        Bucket::open_with(url, &Env::process())
    }

    /// [`Bucket::open`] with the given environment.
    pub fn open_with(url: &url::Url, env: &Env) -> Result<Bucket> {
        let ((store, multipart), prefix, provider) = config::store_for(url, env)?;
        Ok(Bucket {
            store,
            multipart,
            prefix,
            url: config::shown(url),
            provider,
        })
    }

    /// A bucket over a given store, for tests and benchmarks.
    pub fn over<S: ObjectStore + MultipartStore>(store: Arc<S>, prefix: &str, url: &str) -> Bucket {
        Bucket {
            store: store.clone(),
            multipart: Some(store),
            prefix: ObjectPath::from(prefix),
            url: url.trim_end_matches('/').to_owned(),
            provider: Provider::S3,
        }
    }

    /// The location's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kind of storage.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The prefix `rel` inside this one.
    pub fn child(&self, rel: &str) -> Bucket {
        Bucket {
            store: self.store.clone(),
            multipart: self.multipart.clone(),
            prefix: self.path(rel),
            url: format!("{}/{}", self.url, rel.trim_matches('/')),
            provider: self.provider,
        }
    }

    /// Where object `rel` is, for messages.
    pub fn file(&self, rel: &str) -> PathBuf {
        match rel.trim_matches('/') {
            "" => PathBuf::from(&self.url),
            rel => PathBuf::from(format!("{}/{rel}", self.url)),
        }
    }

    /// The object path of `rel`, its segments taken as they are (the
    /// snapshot's own names are already safe: §2.2 of the format), so that
    /// the keys in a bucket are the file names on disk.
    fn path(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|c| !c.is_empty())
            .fold(self.prefix.clone(), |p, c| match PathPart::parse(c) {
                Ok(part) => p.join(part),
                Err(_) => p.join(c),
            })
    }

    /// The relative name of `path` under this prefix.
    fn relative(&self, path: &ObjectPath) -> Option<String> {
        let parts: Vec<_> = path.prefix_match(&self.prefix)?.collect();
        Some(
            parts
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<&str>>()
                .join("/"),
        )
    }

    /// What went wrong with object `rel`, as vecport says it.
    pub(crate) fn error(&self, rel: &str, what: &str, e: object_store::Error) -> Error {
        storage_error(&self.url, &self.file(rel), self.provider, what, e)
    }

    /// The size of object `rel`, `None` when there is none.
    pub fn size(&self, rel: &str) -> Result<Option<u64>> {
        let path = self.path(rel);
        let store = self.store.clone();
        match run(async move { store.head(&path).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, "reading the size of", e)),
        }
    }

    /// Object `rel` whole, `None` when there is none; refused when larger
    /// than `limit` bytes.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Option<Bytes>> {
        let Some(size) = self.size(rel)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(Error::invalid(
                self.file(rel),
                format!("is {size} bytes, more than the limit of {limit}"),
            ));
        }
        let path = self.path(rel);
        let store = self.store.clone();
        match run(async move { store.get(&path).await?.bytes().await }) {
            Ok(b) if b.len() as u64 <= limit => Ok(Some(b)),
            Ok(b) => Err(Error::invalid(
                self.file(rel),
                format!("is {} bytes, more than the limit of {limit}", b.len()),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(rel, "reading", e)),
        }
    }

    /// Bytes `range` of object `rel`.
    pub fn read_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        run(self.get_range(rel, range))
    }

    /// Reads bytes `range` of object `rel` in the background and hands them
    /// to `then` (on a thread of the storage runtime: it should pass them on,
    /// not work on them). Lets a reader keep several ranges in flight.
    pub fn read_range_then(
        &self,
        rel: &str,
        range: Range<u64>,
        then: impl FnOnce(Result<Bytes>) + Send + 'static,
    ) {
        let this = self.clone();
        let rel = rel.to_owned();
        IO.spawn(async move { then(this.get_range(&rel, range).await) });
    }

    async fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        let wanted = range.end - range.start;
        let bytes = self
            .store
            .get_range(&self.path(rel), range)
            .await
            .map_err(|e| self.error(rel, "reading", e))?;
        if bytes.len() as u64 != wanted {
            return Err(Error::invalid(
                self.file(rel),
                format!(
                    "answered {} bytes where {wanted} were asked for: the object is shorter than the manifest says (truncated or replaced)",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Streams object `rel` through `each`, chunk by chunk, in order;
    /// returns the bytes streamed. Memory stays at a few chunks.
    pub fn stream(
        &self,
        rel: &str,
        mut each: impl FnMut(&[u8]) -> Result<()> + Send,
    ) -> Result<u64> {
        let path = self.path(rel);
        let store = self.store.clone();
        run(async move {
            let got = store
                .get(&path)
                .await
                .map_err(|e| self.error(rel, "reading", e))?;
            let mut body = got.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| self.error(rel, "reading", e))?;
                n += chunk.len() as u64;
                each(&chunk)?;
            }
            Ok(n)
        })
    }

    /// Writes object `rel`, replacing what is there.
    pub fn write(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(rel);
        let store = self.store.clone();
        run(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map(|_| ())
            .map_err(|e| self.error(rel, "writing", e))
    }

    /// Writes object `rel` only when there is none yet (a conditional put):
    /// `Ok(false)` when one exists, which is left as it was.
    pub fn write_new(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(rel);
        let store = self.store.clone();
        let put = run(async move {
            store
                .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into())
                .await
        });
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.error(rel, "writing", e)),
        }
    }

    /// Removes object `rel`; one that is not there is no error.
    pub fn remove(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        let store = self.store.clone();
        match run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, "removing", e)),
        }
    }

    /// Every object under `rel` (all of this prefix for `""`), as
    /// (relative name, size), sorted by name.
    pub fn list(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let path = self.path(rel);
        let store = self.store.clone();
        let listed = run(async move {
            let mut out = Vec::new();
            let mut stream = store.list(Some(&path));
            while let Some(meta) = stream.next().await {
                out.push(meta?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let metas = match listed {
            Ok(m) => m,
            // A prefix with nothing under it lists empty: a 404 is the
            // bucket, container or account that is not there.
            Err(e)
                if matches!(e, object_store::Error::NotFound { .. })
                    || e.to_string().contains("404 Not Found") =>
            {
                return Err(Error::NotFound {
                    what: format!("the bucket or container of {}", self.url),
                    hint: Some(format!(
                        "create it first, or check the location's name and {}",
                        self.provider.credential_hint()
                    )),
                });
            }
            Err(e) => return Err(self.error(rel, "listing", e)),
        };
        let mut out: Vec<(String, u64)> = metas
            .iter()
            .filter_map(|m| Some((self.relative(&m.location)?, m.size)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Starts a multipart upload of object `rel`; the object appears, whole,
    /// when [`Upload::commit`] completes it. The upload's id is recorded
    /// first in the object `rel` + [`UPLOAD_RECORD_SUFFIX`], which
    /// [`Bucket::abort_recorded`] reads after a crash.
    pub fn upload(&self, rel: &str) -> Result<Upload> {
        let Some(multipart) = self.multipart.clone() else {
            return Err(Error::Usage(format!("{} is read-only", self.url)));
        };
        let path = self.path(rel);
        let (m, p) = (multipart.clone(), path.clone());
        let id = run(async move { m.create_multipart(&p).await })
            .map_err(|e| self.error(rel, "starting the upload of", e))?;
        let record = format!("{rel}{UPLOAD_RECORD_SUFFIX}");
        let upload = Upload {
            bucket: self.clone(),
            multipart,
            rel: rel.to_owned(),
            path,
            id,
            buf: Vec::with_capacity(CHUNK),
            parts: Vec::new(),
            tasks: JoinSet::new(),
            finished: false,
            failure: Arc::default(),
        };
        self.write(&record, upload.id.clone().into_bytes())?;
        Ok(upload)
    }

    /// Aborts the unfinished uploads recorded under `rel` (all of this
    /// prefix for `""`) by a run that stopped without aborting them, and
    /// removes their records; returns how many there were.
    pub fn abort_recorded(&self, rel: &str) -> Result<usize> {
        let Some(multipart) = self.multipart.clone() else {
            return Ok(0);
        };
        let mut n = 0;
        for (name, _) in self.list(rel)? {
            let Some(object) = name.strip_suffix(UPLOAD_RECORD_SUFFIX) else {
                continue;
            };
            if let Some(id) = self.read(&name, 4096)? {
                let id = String::from_utf8_lossy(&id).trim().to_owned();
                let (m, p) = (multipart.clone(), self.path(object));
                match run(async move { m.abort_multipart(&p, &id).await }) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.error(object, "aborting the upload of", e)),
                }
            }
            self.remove(&name)?;
            n += 1;
        }
        Ok(n)
    }
}

/// A multipart upload under way: chunks of [`CHUNK`] bytes go up as they
/// fill, a few at once. Dropped before [`Upload::commit`], it is aborted:
/// no unfinished upload is left behind to be billed.
pub struct Upload {
    bucket: Bucket,
    multipart: Arc<dyn MultipartStore>,
    rel: String,
    path: ObjectPath,
    id: MultipartId,
    buf: Vec<u8>,
    parts: Vec<Option<PartId>>,
    tasks: JoinSet<(usize, object_store::Result<PartId>)>,
    finished: bool,
    /// What made the upload fail, as vecport says it: the caller of the
    /// [`io::Write`]-shaped methods gets it back through [`UploadFailure`].
    failure: UploadFailure,
}

/// Where an [`Upload`] leaves the error that stopped it, for a caller that
/// only sees an [`io::Error`] (the Parquet writer in between).
pub type UploadFailure = Arc<Mutex<Option<Error>>>;

impl Upload {
    fn io_error(&self, what: &str, e: object_store::Error) -> io::Error {
        let e = self.bucket.error(&self.rel, what, e);
        let text = e.to_string();
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(e);
        }
        io::Error::other(text)
    }

    /// Where the error that stops this upload will be.
    pub fn failure(&self) -> UploadFailure {
        self.failure.clone()
    }

    /// Sends the buffered chunk, after waiting while enough are in flight.
    fn send(&mut self) -> io::Result<()> {
        let chunk = PutPayload::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let index = self.parts.len();
        self.parts.push(None);
        let (m, path, id) = (self.multipart.clone(), self.path.clone(), self.id.clone());
        let _entered = IO.enter();
        self.tasks
            .spawn(async move { (index, m.put_part(&path, &id, index, chunk).await) });
        drop(_entered);
        self.settle(UPLOADS_IN_FLIGHT)
    }

    /// Waits until at most `limit` chunks are in flight.
    fn settle(&mut self, limit: usize) -> io::Result<()> {
        while self.tasks.len() > limit {
            let next = run(self.tasks.join_next());
            match next {
                Some(Ok((i, Ok(part)))) => self.parts[i] = Some(part),
                Some(Ok((_, Err(e)))) => return Err(self.io_error("uploading", e)),
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                None => break,
            }
        }
        Ok(())
    }

    /// Appends `bytes`.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the upload was already completed"));
        }
        while !bytes.is_empty() {
            let n = bytes.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Uploads the rest and completes the upload: the object appears whole,
    /// and its record goes.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the upload was already completed"));
        }
        if !self.buf.is_empty() || self.parts.is_empty() {
            self.send()?;
        }
        self.settle(0)?;
        let parts: Vec<PartId> = self.parts.iter().flatten().cloned().collect();
        if parts.len() != self.parts.len() {
            return Err(io::Error::other("a chunk of the upload was lost"));
        }
        let (m, path, id) = (self.multipart.clone(), self.path.clone(), self.id.clone());
        run(async move { m.complete_multipart(&path, &id, parts).await })
            .map_err(|e| self.io_error("completing the upload of", e))?;
        self.finished = true;
        self.bucket
            .remove(&format!("{}{UPLOAD_RECORD_SUFFIX}", self.rel))
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.tasks.abort_all();
        let (m, path, id) = (self.multipart.clone(), self.path.clone(), self.id.clone());
        match run(async move { m.abort_multipart(&path, &id).await }) {
            Ok(()) => {
                let _ = self
                    .bucket
                    .remove(&format!("{}{UPLOAD_RECORD_SUFFIX}", self.rel));
            }
            Err(e) => tracing::warn!(
                object = %self.bucket.file(&self.rel).display(),
                "could not abort an unfinished upload (a later --resume aborts it): {}",
                crate::redact::scrub(&e.to_string())
            ),
        }
    }
}

/// An object-storage error as vecport says it: credentials refused → exit 5
/// naming the variables, a missing bucket or object → not found, the rest →
/// the storage could not be reached (after object_store's retries).
fn storage_error(
    url: &str,
    file: &std::path::Path,
    provider: Provider,
    what: &str,
    e: object_store::Error,
) -> Error {
    let message = crate::redact::scrub(&e.to_string()).into_owned();
    let lower = message.to_ascii_lowercase();
    match e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => Error::Unauthenticated {
            endpoint: url.to_owned(),
            reason: format!("{what} {}: {message}", file.display()),
            hint: provider.credential_hint().to_owned(),
        },
        _ if lower.contains("nosuchbucket")
            || lower.contains("containernotfound")
            || lower.contains("the specified bucket does not exist")
            || lower.contains("the specified container does not exist") =>
        {
            Error::NotFound {
                what: format!("the bucket or container of {url}"),
                hint: Some("create it first, or check the location's name".into()),
            }
        }
        _ if lower.contains("invalidaccesskeyid")
            || lower.contains("signaturedoesnotmatch")
            || lower.contains("authenticationfailed")
            || lower.contains("accessdenied") =>
        {
            Error::Unauthenticated {
                endpoint: url.to_owned(),
                reason: format!("{what} {}: {message}", file.display()),
                hint: provider.credential_hint().to_owned(),
            }
        }
        object_store::Error::NotFound { .. } => Error::invalid(
            file,
            "is missing; the snapshot is incomplete, copy it again from its origin",
        ),
        object_store::Error::NotImplemented { .. } => Error::NotSupported {
            connector: url.to_owned(),
            feature: format!("{what} {}: {message}", file.display()),
        },
        _ => Error::Unreachable {
            endpoint: url.to_owned(),
            message: format!("{what} {}: {message}", file.display()),
        },
    }
}
