//! The HTTP client every REST connector shares: credentials as sensitive
//! headers, retries of 429/5xx/timeouts/dropped connections with exponential
//! backoff and jitter honouring `Retry-After` (idempotent requests only), and
//! JSON decoding on the blocking pool, never on the network task.
//!
//! Redirects are never followed: a data-plane call carries credentials and
//! records, and a redirect would send both to wherever the server points. A
//! 3xx answer becomes an error naming the origin it pointed to.
//!
//! What differs between databases (their name, the setting that holds their
//! credentials, how their error bodies read) is a [`Vendor`].
//!
//! A server that never answered is not waited for: a refused or failed
//! connection before its first answer is reported at once (a wrong host or
//! port), while the same failure later in a run (a server restarting, a
//! dropped connection) is retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::buffers::BufferPool;
use crate::error::{Error, Result};
use crate::redact::Secret;

/// What differs between the HTTP databases: the shared [`HttpClient`] asks
/// its vendor how to name the database, which setting holds its
/// credentials, and how to read its error bodies.
pub trait Vendor: Send + Sync + std::fmt::Debug {
    /// Connector name (`qdrant`), for messages.
    fn name(&self) -> &'static str;
    /// The setting to check when credentials are refused (``the API key in QDRANT_API_KEY``).
    fn credential_hint(&self) -> String;
    /// The database's own account of a failed request, from its answer;
    /// the body's first 500 characters when it gives none.
    fn error_message(&self, resp: &Response) -> String {
        resp.text_excerpt()
    }
    /// The objects of a successful (2xx) answer worth sending again: a batch
    /// answered 200 in which some objects failed for a passing reason (a
    /// timeout inside the server). The client retries the request while
    /// any are left (requests are upserts, so objects already written are
    /// written again unchanged), and returns the last answer.
    fn transient_failures(&self, body: &[u8]) -> usize {
        let _ = body;
        0
    }
}

/// `s` as one percent-encoded path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Buffers that response bodies are read into, kept for the responses after
/// them: a page of vectors is megabytes, and reading each into fresh memory
/// cost more CPU than decoding the page's ids and payloads.
#[derive(Debug, Clone)]
struct BodyBuffers(Arc<BufferPool>);

impl Default for BodyBuffers {
    fn default() -> Self {
        BodyBuffers(Arc::new(BufferPool::new(
            BodyBuffers::KEEP,
            BodyBuffers::KEEP_BYTES,
        )))
    }
}

impl BodyBuffers {
    /// Buffers kept: the pages in flight at once (one decoding, one being
    /// received, a few concurrent writes answered).
    const KEEP: usize = 4;
    /// Larger buffers are not kept, so what is kept stays small beside the
    /// pages in flight.
    const KEEP_BYTES: usize = 64 << 20;

    /// Reads the whole body of `resp` into a kept buffer, which goes back to
    /// the pool when the last clone of the returned `Bytes` is dropped; `None`
    /// as soon as it is known to be longer than `max` bytes.
    async fn read(
        &self,
        mut resp: reqwest::Response,
        max: u64,
    ) -> reqwest::Result<Option<bytes::Bytes>> {
        let announced = resp.content_length().unwrap_or(0);
        if announced > max {
            return Ok(None);
        }
        let mut buf = self.take(announced);
        while let Some(chunk) = resp.chunk().await? {
            if (buf.len() + chunk.len()) as u64 > max {
                self.0.give(buf);
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(self.wrap(buf)))
    }

    /// An empty buffer, a kept one if there is one, with room for `expected`
    /// bytes (as far as a kept buffer would hold: a length header is no
    /// reason to reserve gigabytes before they arrive).
    fn take(&self, expected: u64) -> Vec<u8> {
        let mut buf = self.0.take();
        buf.reserve(expected.min(Self::KEEP_BYTES as u64) as usize);
        buf
    }

    /// `buf` as `Bytes` that give it back when dropped.
    fn wrap(&self, buf: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from_owner(KeptBuffer {
            buf,
            pool: self.clone(),
        })
    }
}

/// A body in a buffer of [`BodyBuffers`], returned to it on drop.
struct KeptBuffer {
    buf: Vec<u8>,
    pool: BodyBuffers,
}

impl AsRef<[u8]> for KeptBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for KeptBuffer {
    fn drop(&mut self) {
        self.pool.0.give(std::mem::take(&mut self.buf));
    }
}

/// Counts the requests retried by every client that shares it (those opened
/// with the same [`ConnectOptions`](super::ConnectOptions)), for the user to see.
#[derive(Debug, Clone, Default)]
pub struct RetryCount(Arc<AtomicU64>);

impl RetryCount {
    /// Requests retried so far (rate limits, server errors, dropped connections).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Responses longer than this are refused unless the user allows more: far
/// beyond any page or batch answer, but short of exhausting memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// How requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Longest wait before the first retry; each further retry waits up to
    /// twice as long as the one before (with jitter: between half and all of it).
    pub base: Duration,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub max: Duration,
    /// A request that takes longer fails (and is retried).
    pub timeout: Duration,
    /// The longest one request may take over all its tries, waits between
    /// them included: a server that answers each try slowly enough to stay
    /// within `timeout` cannot hold a run for `timeout` × tries.
    pub total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            base: Duration::from_millis(400),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            total: Duration::from_secs(900),
        }
    }
}

/// A response whose status the caller inspects.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub body: bytes::Bytes,
}

impl Response {
    /// The body as text, cut to 500 characters, for messages: every secret
    /// is scrubbed before the cut (see [`crate::redact::excerpt`]).
    pub fn text_excerpt(&self) -> String {
        crate::redact::excerpt(&String::from_utf8_lossy(&self.body), 500)
    }
}

/// A client bound to one base URL.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    vendor: &'static dyn Vendor,
    retry: RetryPolicy,
    max_response_bytes: u64,
    retries: Arc<AtomicU64>,
    /// Shared by every client opened with the same options.
    retried: RetryCount,
    /// Whether the server has answered at least once (any status).
    answered: Arc<AtomicBool>,
    buffers: BodyBuffers,
    /// Request bodies sent, kept for the next ones.
    requests: BodyBuffers,
}

impl HttpClient {
    /// A client of `vendor`'s database at `base` (`http://host:port`),
    /// sending `credentials` as sensitive headers and the `plain` headers
    /// (API versions) on every request, retrying and bounding answers as
    /// `options` say.
    pub fn new(
        vendor: &'static dyn Vendor,
        base: &str,
        credentials: &[(&'static str, &Secret)],
        plain: &[(&'static str, &'static str)],
        options: &super::ConnectOptions,
    ) -> Result<HttpClient> {
        let mut headers = HeaderMap::new();
        for (name, value) in plain {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        for (name, secret) in credentials {
            let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                Error::Usage(format!("the credential for header `{name}` contains characters not allowed in an HTTP header"))
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("vecport/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(16)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpClient {
            client,
            base: base.trim_end_matches('/').to_owned(),
            vendor,
            retry: options.retry.clone(),
            max_response_bytes: options.max_response_bytes,
            retries: Arc::new(AtomicU64::new(0)),
            retried: options.retried.clone(),
            answered: Arc::new(AtomicBool::new(false)),
            buffers: BodyBuffers::default(),
            requests: BodyBuffers::default(),
        })
    }

    /// Shares `other`'s knowledge of whether the database ever answered: for
    /// a second endpoint of the same database (Pinecone's data plane, whose
    /// address the control plane gave), which is retried when it cannot be
    /// reached yet.
    pub fn answered_with(mut self, other: &HttpClient) -> HttpClient {
        self.answered = other.answered.clone();
        self
    }

    /// The base URL (no credentials are ever part of it).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// An empty buffer to build a request body in: one sent before, when
    /// there is one, so that bodies of megabytes neither grow by copying
    /// nor fault their pages in again. [`HttpClient::send`] keeps every body
    /// it sent (up to a few) for this.
    pub fn body_buffer(&self) -> Vec<u8> {
        self.requests.0.take()
    }

    /// Sends a request, retrying transient failures when `idempotent`.
    /// Statuses other than 429 and 5xx are returned for the caller to judge;
    /// a redirect is an error (see the module's comment).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        operation: &str,
        idempotent: bool,
    ) -> Result<Response> {
        let url = format!("{}{}", self.base, path);
        let body = body.map(|b| self.requests.wrap(b));
        let mut attempt = 0u32;
        let started = std::time::Instant::now();
        loop {
            let left = self.retry.total.saturating_sub(started.elapsed());
            let outcome = self
                .attempt(&method, &url, body.as_ref(), self.retry.timeout.min(left))
                .await?;
            let out_of_time = started.elapsed() >= self.retry.total;
            // A connection that cannot be made to a server that never
            // answered is a wrong address, not a passing failure.
            let never_answered = !self.answered.load(Ordering::Relaxed);
            let retryable_after = match &outcome {
                Ok(a) if retryable(a.status) => Some(a.retry_after),
                Ok(a) if a.status.is_success() && self.vendor.transient_failures(&a.body) > 0 => {
                    Some(None)
                }
                Ok(_) => None,
                Err(e) if e.is_connect() && never_answered => None,
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() => {
                    Some(None)
                }
                Err(_) => None,
            };
            let wait =
                retry_after_wait(retryable_after, || self.backoff(attempt + 1)).min(self.retry.max);
            let fits = started.elapsed() + wait < self.retry.total;
            if retryable_after.is_some() && idempotent && attempt < self.retry.max_retries && fits {
                attempt += 1;
                self.retries.fetch_add(1, Ordering::Relaxed);
                self.retried.add();
                let why = match &outcome {
                    Ok(a) if a.status.is_success() => format!(
                        "{} object(s) failed for a passing reason",
                        self.vendor.transient_failures(&a.body)
                    ),
                    Ok(a) => format!("HTTP {}", a.status.as_u16()),
                    Err(e) if e.is_timeout() => "timed out".to_owned(),
                    Err(_) => "connection failed".to_owned(),
                };
                tracing::debug!(
                    operation,
                    attempt,
                    why,
                    wait_ms = wait.as_millis() as u64,
                    "retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let gave_up = if retryable_after.is_some() && idempotent && (out_of_time || !fits) {
                format!(
                    " (after {} tries in {:.0}s; --total-timeout bounds one request over all its tries)",
                    attempt + 1,
                    started.elapsed().as_secs_f64()
                )
            } else if retryable_after.is_some() && idempotent && attempt > 0 {
                format!(
                    " (still failing after {attempt} retries; --retries and --retry-max-wait raise the limits)"
                )
            } else {
                String::new()
            };
            return match outcome {
                Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => Err(Error::RateLimited {
                    endpoint: self.base.clone(),
                    retry_after: a.retry_after,
                    retries: attempt,
                }),
                Ok(a) if !gave_up.is_empty() && !a.status.is_success() => {
                    let resp = Response {
                        status: a.status,
                        body: a.body,
                    };
                    Err(Error::Server {
                        endpoint: self.base.clone(),
                        operation: operation.to_owned(),
                        status: resp.status.as_u16(),
                        message: format!("{}{gave_up}", resp.text_excerpt()),
                    })
                }
                Ok(a) => Ok(Response {
                    status: a.status,
                    body: a.body,
                }),
                Err(e) => Err(Error::Unreachable {
                    endpoint: self.base.clone(),
                    message: if e.is_connect() && never_answered {
                        format!(
                            "{operation}: {}; nothing answered there: check the host and port, and that the server is running",
                            describe_reqwest(&e)
                        )
                    } else if e.is_timeout() {
                        format!(
                            "{operation}: no complete answer within {}s (--timeout bounds each request, its whole body included){gave_up}",
                            self.retry.timeout.min(self.retry.total).as_secs_f64()
                        )
                    } else {
                        format!("{operation}: {}{gave_up}", describe_reqwest(&e))
                    },
                }),
            };
        }
    }

    /// One try of a request: the answer, or the transport's failure for
    /// [`HttpClient::send`] to judge; an error when the answer is one no
    /// retry can change (a redirect, a body over the limit).
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<&bytes::Bytes>,
        timeout: Duration,
    ) -> Result<reqwest::Result<Answer>> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .timeout(timeout.max(Duration::from_millis(1)));
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone());
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return Ok(Err(e)),
        };
        self.answered.store(true, Ordering::Relaxed);
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.redirected(status, resp.headers()));
        }
        let retry_after = retry_after(resp.headers());
        Ok(
            match self.buffers.read(resp, self.max_response_bytes).await {
                Ok(Some(body)) => Ok(Answer {
                    status,
                    retry_after,
                    body,
                }),
                Ok(None) => return Err(self.too_large()),
                Err(e) => Err(e),
            },
        )
    }

    /// The error of a redirect: where it pointed (its origin only: a path
    /// or query may hold anything), never followed.
    fn redirected(&self, status: StatusCode, headers: &HeaderMap) -> Error {
        let target = headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(&self.base).ok()?.join(l).ok())
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|| "nowhere it named".to_owned());
        Error::Server {
            endpoint: self.base.clone(),
            operation: format!("a {} request", self.vendor.name()),
            status: status.as_u16(),
            message: format!(
                "a redirect to {target}, which vecport does not follow (credentials and records go only to the URL given); if that is the server meant, put its address in the URL"
            ),
        }
    }

    /// The error of an answer longer than the limit.
    fn too_large(&self) -> Error {
        Error::Protocol {
            endpoint: self.base.clone(),
            operation: format!("a {} request", self.vendor.name()),
            message: format!(
                "the answer is longer than {} MiB, the most vecport reads; if the server's answers are that large, raise --max-response-mib (or read smaller pages with --page-size)",
                self.max_response_bytes >> 20
            ),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.retry.max);
        // Full jitter: anywhere between half and all of the capped backoff.
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Sends a request (idempotent: retried) and decodes the JSON answer of
    /// a 2xx status on the blocking pool; other statuses become errors
    /// through [`HttpClient::fail`].
    pub async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        operation: &str,
    ) -> Result<T> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.json(method, path, body, operation, true, |r| {
            Some(self.fail(operation, r))
        })
        .await
    }

    /// Sends a request and decodes a JSON answer of a 2xx status on the
    /// blocking pool. Other statuses become errors through `on_error`.
    pub async fn json<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        operation: &str,
        idempotent: bool,
        on_error: impl FnOnce(&Response) -> Option<Error>,
    ) -> Result<T> {
        let resp = self.send(method, path, body, operation, idempotent).await?;
        if !resp.status.is_success() {
            return Err(on_error(&resp).unwrap_or_else(|| self.status_error(operation, &resp)));
        }
        decode_json(resp.body, &self.base, operation).await
    }

    /// The error for an unexpected status: 401/403 become
    /// [`Error::Unauthenticated`], the rest [`Error::Server`], with the
    /// body's first 500 characters.
    pub fn status_error(&self, operation: &str, resp: &Response) -> Error {
        self.unexpected(operation, resp.status, resp.text_excerpt())
    }

    /// The error for an unexpected status of the database's answer to
    /// `operation`, with the vendor's account of it: 400, 413 and 422 become
    /// [`Error::refused`], 401/403 [`Error::Unauthenticated`] naming the
    /// vendor's credential setting, the rest [`Error::Server`].
    pub fn fail(&self, operation: &str, resp: &Response) -> Error {
        let message = self.vendor.error_message(resp);
        match resp.status {
            StatusCode::BAD_REQUEST
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::PAYLOAD_TOO_LARGE => {
                Error::refused(self.vendor.name(), operation, resp.status.as_u16(), message)
            }
            status => self.unexpected(operation, status, message),
        }
    }

    /// [`Error::Unauthenticated`] for 401/403, else [`Error::Server`].
    fn unexpected(&self, operation: &str, status: StatusCode, message: String) -> Error {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthenticated {
                endpoint: self.base.clone(),
                reason: crate::error::http_reason(status.as_u16(), &message),
                hint: self.vendor.credential_hint(),
            },
            status => Error::Server {
                endpoint: self.base.clone(),
                operation: operation.to_owned(),
                status: status.as_u16(),
                message,
            },
        }
    }
}

/// One answer as [`HttpClient::send`] judges it.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: bytes::Bytes,
}

/// Decodes JSON on the blocking pool.
pub async fn decode_json<T: DeserializeOwned + Send + 'static>(
    body: bytes::Bytes,
    endpoint: &str,
    operation: &str,
) -> Result<T> {
    let decoded = tokio::task::spawn_blocking(move || serde_json::from_slice::<T>(&body))
        .await
        .map_err(|e| Error::internal(format!("decoding the answer to {operation}"), e))?;
    decoded.map_err(|e| Error::Protocol {
        endpoint: endpoint.to_owned(),
        operation: operation.to_owned(),
        message: format!("invalid JSON: {e}"),
    })
}

/// The wait before the next try: the server's `Retry-After`, else the backoff.
fn retry_after_wait(
    retryable_after: Option<Option<Duration>>,
    backoff: impl FnOnce() -> Duration,
) -> Duration {
    match retryable_after {
        Some(Some(after)) => after,
        _ => backoff(),
    }
}

/// Statuses worth another try: timeouts, rate limits and transient server
/// failures — not 501 (not implemented) or 505, which do not pass.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 400, 401, 404, 409, 413, 501, 505] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn body_buffers_come_back_when_the_last_view_is_dropped() {
        let pool = BodyBuffers::default();
        let mut buf = pool.take(1000);
        assert!(buf.capacity() >= 1000);
        buf.extend_from_slice(b"{\"result\":[]}");
        let at = buf.as_ptr();
        let body = pool.wrap(buf);
        let part = body.slice(1..9);
        assert_eq!(&body[..], b"{\"result\":[]}");
        drop(body);
        assert_eq!(pool.0.kept(), 0, "a slice still uses the buffer");
        assert_eq!(&part[..], b"\"result\"");
        drop(part);
        assert_eq!(pool.0.kept(), 1);
        let again = pool.take(10);
        assert_eq!(
            (again.as_ptr(), again.len()),
            (at, 0),
            "the same buffer, emptied"
        );
    }

    /// Answers every request on a local port with `200 {}`, having read it
    /// whole.
    async fn answer_ok() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            if got.len() >= end + 4 + len {
                                let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                                if conn.write_all(ok.as_bytes()).await.is_err() {
                                    return;
                                }
                                got.drain(..end + 4 + len);
                                continue;
                            }
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        base
    }

    /// A database for the tests: no credentials, its error bodies as they are.
    #[derive(Debug)]
    struct TestApi;

    impl Vendor for TestApi {
        fn name(&self) -> &'static str {
            "test"
        }

        fn credential_hint(&self) -> String {
            "the test's key".into()
        }
    }

    fn test_client(base: &str) -> HttpClient {
        HttpClient::new(
            &TestApi,
            base,
            &[],
            &[],
            &super::super::ConnectOptions::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn request_bodies_come_back_for_the_next_request() {
        let client = test_client(&answer_ok().await);
        let mut body = client.body_buffer();
        body.resize(300_000, b' ');
        let at = body.as_ptr();
        let resp = client
            .send(Method::POST, "/x", Some(body), "test", true)
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        let again = client.body_buffer();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (at, 0),
            "the body sent, emptied"
        );
        assert!(again.capacity() >= 300_000);
        // A clone of the client shares the kept bodies.
        client
            .clone()
            .send(Method::POST, "/x", Some(again), "test", true)
            .await
            .unwrap();
        let third = client.body_buffer();
        assert_eq!(third.as_ptr(), at);
    }

    #[test]
    fn body_buffers_keep_a_few_small_ones() {
        let pool = BodyBuffers::default();
        let bodies: Vec<_> = (0..BodyBuffers::KEEP + 2)
            .map(|_| pool.wrap(pool.take(64)))
            .collect();
        drop(bodies);
        assert_eq!(pool.0.kept(), BodyBuffers::KEEP);
        let pool = BodyBuffers::default();
        drop(pool.wrap(Vec::with_capacity(BodyBuffers::KEEP_BYTES + 1)));
        assert_eq!(pool.0.kept(), 0, "an outsized buffer is freed");
        let huge = pool.take(u64::MAX);
        assert!(huge.capacity() <= 2 * BodyBuffers::KEEP_BYTES);
    }

    /// Answers every connection with `response` (raw HTTP), having read the
    /// request's head, then closes it.
    async fn answer_raw(response: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 65536];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(response.as_bytes()).await;
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn redirects_are_errors_naming_only_the_origin() {
        let base = answer_raw(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/v1/x?token=s3cret\r\ncontent-length: 0\r\n\r\n"
                .into(),
        )
        .await;
        let err = test_client(&base)
            .send(Method::POST, "/x", Some(b"{}".to_vec()), "test", true)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Server { status: 307, .. }), "{err:?}");
        assert!(
            text.contains("a redirect to http://127.0.0.1:9, which vecport does not follow"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn answers_over_the_limit_are_refused() {
        let big = "x".repeat(3000);
        for head in [
            format!("content-length: {}\r\n", big.len()),
            "transfer-encoding: chunked\r\n".to_owned(),
        ] {
            let body = if head.contains("chunked") {
                format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len())
            } else {
                big.clone()
            };
            let base = answer_raw(format!("HTTP/1.1 200 OK\r\n{head}\r\n{body}")).await;
            let options = crate::connectors::ConnectOptions {
                max_response_bytes: 2048,
                ..Default::default()
            };
            let client = HttpClient::new(&TestApi, &base, &[], &[], &options).unwrap();
            let err = client
                .send(Method::GET, "/x", None, "test", true)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
            assert!(err.to_string().contains("--max-response-mib"), "{err}");
            assert_eq!(client.retries(), 0, "not retried");
        }
    }
}
