//! I/O on a prefix in object storage. Requests run on a runtime of their own
//! ([`run`]), so that the threads encoding and decoding Parquet — rayon's
//! and the part writers', none of them async — can wait for them, and so
//! can async code on another runtime.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart};

use super::config::{self, Env, Provider};
use crate::error::{Error, Result};

/// Bytes per multipart chunk: above S3's 5 MiB minimum, and 10,000 of them
/// (S3's limit) hold a 160 GiB part, far above the largest part written.
const CHUNK: usize = 16 << 20;
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
        let (store, prefix, provider) = config::store_for(url, env)?;
        Ok(Bucket {
            store,
            prefix,
            url: config::shown(url),
            provider,
        })
    }

    /// A bucket over a given store, for tests and benchmarks.
    pub fn over(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Bucket {
        Bucket {
            store,
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
            Err(object_store::Error::NotFound { .. }) if self.provider != Provider::S3 => {
                Vec::new()
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
    /// when [`Upload::commit`] completes it.
    pub fn upload(&self, rel: &str) -> Result<Upload> {
        let path = self.path(rel);
        let store = self.store.clone();
        let upload = run(async move { store.put_multipart(&path).await })
            .map_err(|e| self.error(rel, "starting the upload of", e))?;
        Ok(Upload {
            write: Some(WriteMultipart::new_with_chunk_size(upload, CHUNK)),
            bucket: self.clone(),
            rel: rel.to_owned(),
        })
    }
}

/// A multipart upload under way. Dropped before [`Upload::commit`], it is
/// aborted: no unfinished upload is left behind to be billed.
pub struct Upload {
    write: Option<WriteMultipart>,
    bucket: Bucket,
    rel: String,
}

impl Upload {
    fn io_error(&self, what: &str, e: object_store::Error) -> io::Error {
        io::Error::other(self.bucket.error(&self.rel, what, e).to_string())
    }

    /// Appends `bytes`, waiting while enough chunks are in flight.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(w) = self.write.as_mut() else {
            return Err(io::Error::other("the upload was already completed"));
        };
        let waited = run(async {
            w.wait_for_capacity(UPLOADS_IN_FLIGHT).await?;
            w.write(bytes);
            Ok::<_, object_store::Error>(())
        });
        waited.map_err(|e| self.io_error("uploading", e))
    }

    /// Uploads the rest and completes the upload: the object appears whole.
    pub fn commit(&mut self) -> io::Result<()> {
        let Some(w) = self.write.take() else {
            return Err(io::Error::other("the upload was already completed"));
        };
        run(w.finish())
            .map(|_| ())
            .map_err(|e| self.io_error("completing the upload of", e))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(w) = self.write.take() {
            if let Err(e) = run(w.abort()) {
                tracing::warn!(
                    object = %self.bucket.file(&self.rel).display(),
                    "could not abort an unfinished upload: {}",
                    crate::redact::scrub(&e.to_string())
                );
            }
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
