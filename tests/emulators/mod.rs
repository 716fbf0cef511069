//! Wire-faithful emulators of vector-database servers, for tests that cannot
//! reach a real server. Each emulator is an axum app on 127.0.0.1 (port 0 →
//! a free port); [`Emulator`] is its handle: the base URL, the emulator's
//! state, a [`FaultInjector`], and shutdown on drop.
//!
//! Faults (shared by every emulator): per request, with the configured
//! probabilities, answer 429 with `Retry-After`, answer 503, drop the
//! connection without a response, or delay the response. Switch them at run
//! time through [`Emulator::faults`] or over HTTP:
//!
//! ```text
//! POST   /__emulator/faults   {"rate_limit":0.1,"retry_after_secs":1,"unavailable":0.0,
//!                              "drop_connection":0.0,"delay":0.0,"delay_ms":0,
//!                              "path_prefix":null,"method":null,"max_faults":null,"seed":null}
//! GET    /__emulator/faults   → {"faults":{…},"counts":{…}}
//! DELETE /__emulator/faults   → no faults, counters reset
//! ```
//!
//! Every request is also logged with the status it got (0: the connection
//! was dropped), newest last: [`FaultInjector::served`], so a test can tell
//! how often a request was sent and what came after it.
//!
//! `/__emulator/*` is never faulted and never asks for credentials.
//! Set `EMULATOR_LOG=1` to log every request to stderr.

#![allow(dead_code)]

pub mod pinecone;
pub mod qdrant;
pub mod weaviate;

use std::fmt;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Path prefix of the emulator's own admin endpoints.
pub const ADMIN_PREFIX: &str = "/__emulator";

/// Which faults to inject. Probabilities are per request and exclusive: one
/// draw picks at most one kind, so they must add up to at most 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of answering 429 with `Retry-After: retry_after_secs`.
    pub rate_limit: f64,
    /// The `Retry-After` value sent with 429, in seconds.
    pub retry_after_secs: u64,
    /// Probability of answering 503.
    pub unavailable: f64,
    /// Probability of closing the connection without any response.
    pub drop_connection: f64,
    /// Probability of answering normally, but only after `delay_ms`.
    pub delay: f64,
    /// How long a delayed response waits, in milliseconds.
    pub delay_ms: u64,
    /// Only requests whose path starts with this are faulted.
    pub path_prefix: Option<String>,
    /// Only requests of this method (`PUT`, …) are faulted.
    pub method: Option<String>,
    /// Stop injecting after this many faults (then every request succeeds).
    pub max_faults: Option<u64>,
    /// Seed for the random draws; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            rate_limit: 0.0,
            retry_after_secs: 1,
            unavailable: 0.0,
            drop_connection: 0.0,
            delay: 0.0,
            delay_ms: 0,
            path_prefix: None,
            method: None,
            max_faults: None,
            seed: None,
        }
    }
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Every request answered 429 with `Retry-After: secs`.
    pub fn always_rate_limited(secs: u64) -> Faults {
        Faults {
            rate_limit: 1.0,
            retry_after_secs: secs,
            ..Faults::default()
        }
    }

    /// Every request answered 503.
    pub fn always_unavailable() -> Faults {
        Faults {
            unavailable: 1.0,
            ..Faults::default()
        }
    }

    /// Every connection closed without a response.
    pub fn always_dropped() -> Faults {
        Faults {
            drop_connection: 1.0,
            ..Faults::default()
        }
    }

    /// Every response delayed by `ms` milliseconds.
    pub fn always_delayed(ms: u64) -> Faults {
        Faults {
            delay: 1.0,
            delay_ms: ms,
            ..Faults::default()
        }
    }

    /// Only the first `n` faults are injected.
    pub fn at_most(mut self, n: u64) -> Faults {
        self.max_faults = Some(n);
        self
    }

    /// Only requests under `prefix` are faulted.
    pub fn under(mut self, prefix: &str) -> Faults {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    /// Only requests of `method` are faulted.
    pub fn only(mut self, method: &str) -> Faults {
        self.method = Some(method.to_owned());
        self
    }

    fn validate(&self) -> Result<(), String> {
        let ps = [
            ("rate_limit", self.rate_limit),
            ("unavailable", self.unavailable),
            ("drop_connection", self.drop_connection),
            ("delay", self.delay),
        ];
        for (name, p) in ps {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability in [0, 1], got {p}"));
            }
        }
        let sum: f64 = ps.iter().map(|(_, p)| p).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!("fault probabilities add up to {sum}, more than 1"));
        }
        Ok(())
    }
}

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    RateLimit,
    Unavailable,
    DropConnection,
    Delay,
}

/// How many requests were seen and how many faults of each kind injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Requests that went through the fault layer (admin requests excluded).
    pub requests: u64,
    pub rate_limited: u64,
    pub unavailable: u64,
    pub dropped: u64,
    pub delayed: u64,
}

impl FaultCounts {
    /// All faults injected so far.
    pub fn total(&self) -> u64 {
        self.rate_limited + self.unavailable + self.dropped + self.delayed
    }
}

/// One request the emulator answered (or dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub path: String,
    /// The status sent; 0 when the connection was dropped without one.
    pub status: u16,
}

/// Most requests [`FaultInjector::served`] remembers.
const SERVED_LOG: usize = 100_000;

/// Builds the body of an injected 429 or 503 in the emulated server's style.
pub type FaultResponder = fn(FaultKind, &Faults, &axum::http::Method, &str) -> Response;

/// The run-time switchable fault configuration and its counters.
pub struct FaultInjector {
    inner: Mutex<InjectorState>,
    responder: FaultResponder,
}

struct InjectorState {
    faults: Faults,
    rng: fastrand::Rng,
    counts: FaultCounts,
    served: std::collections::VecDeque<Served>,
}

impl fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultInjector")
            .field("faults", &state.faults)
            .field("counts", &state.counts)
            .finish()
    }
}

impl FaultInjector {
    pub fn new(faults: Faults, responder: FaultResponder) -> Result<FaultInjector, String> {
        faults.validate()?;
        let rng = rng_for(&faults);
        Ok(FaultInjector {
            inner: Mutex::new(InjectorState {
                faults,
                rng,
                counts: FaultCounts::default(),
                served: Default::default(),
            }),
            responder,
        })
    }

    fn lock(&self) -> MutexGuard<'_, InjectorState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault configuration (counters are kept).
    pub fn set(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        let mut state = self.lock();
        state.rng = rng_for(&faults);
        state.faults = faults;
        Ok(())
    }

    /// No more faults, and counters (and the log of served requests) back to zero.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.faults = Faults::default();
        state.counts = FaultCounts::default();
        state.served.clear();
    }

    /// The requests served since start (or the last [`FaultInjector::clear`]),
    /// oldest first; at most the last 100,000.
    pub fn served(&self) -> Vec<Served> {
        self.lock().served.iter().cloned().collect()
    }

    fn log(&self, method: &axum::http::Method, path: &str, status: u16) {
        let mut state = self.lock();
        if state.served.len() == SERVED_LOG {
            state.served.pop_front();
        }
        state.served.push_back(Served {
            method: method.to_string(),
            path: path.to_owned(),
            status,
        });
    }

    /// The current configuration.
    pub fn get(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Counters since start (or the last [`FaultInjector::clear`]).
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Draws the fault (if any) for one request to `path`, and counts it.
    fn decide(&self, method: &str, path: &str) -> Option<(FaultKind, Faults)> {
        let mut state = self.lock();
        state.counts.requests += 1;
        let faults = state.faults.clone();
        if faults
            .path_prefix
            .as_deref()
            .is_some_and(|p| !path.starts_with(p))
            || faults.method.as_deref().is_some_and(|m| m != method)
        {
            return None;
        }
        if faults
            .max_faults
            .is_some_and(|max| state.counts.total() >= max)
        {
            return None;
        }
        let draw = state.rng.f64();
        let mut edge = 0.0;
        let mut kind = None;
        for (k, p) in [
            (FaultKind::RateLimit, faults.rate_limit),
            (FaultKind::Unavailable, faults.unavailable),
            (FaultKind::DropConnection, faults.drop_connection),
            (FaultKind::Delay, faults.delay),
        ] {
            edge += p;
            if p > 0.0 && draw < edge {
                kind = Some(k);
                break;
            }
        }
        let kind = kind?;
        match kind {
            FaultKind::RateLimit => state.counts.rate_limited += 1,
            FaultKind::Unavailable => state.counts.unavailable += 1,
            FaultKind::DropConnection => state.counts.dropped += 1,
            FaultKind::Delay => state.counts.delayed += 1,
        }
        Some((kind, faults))
    }
}

fn rng_for(faults: &Faults) -> fastrand::Rng {
    match faults.seed {
        Some(seed) => fastrand::Rng::with_seed(seed),
        None => fastrand::Rng::new(),
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator<S> {
    base_url: String,
    addr: SocketAddr,
    faults: Arc<FaultInjector>,
    state: Arc<S>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> fmt::Debug for Emulator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl<S> Emulator<S> {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fault switchboard.
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// The emulator's own state.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<S> Drop for Emulator<S> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts `app` (plus the admin endpoints and the fault layer) on
/// 127.0.0.1:`port` inside the current tokio runtime.
pub async fn serve<S: Send + Sync + 'static>(
    port: u16,
    state: Arc<S>,
    faults: Arc<FaultInjector>,
    app: Router,
) -> io::Result<Emulator<S>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = wrap(app, faults.clone());
    tokio::spawn(run(listener, app, stopped));
    Ok(Emulator {
        base_url: format!("http://{addr}"),
        addr,
        faults,
        state,
        stop: Some(stop),
        thread: None,
    })
}

/// Like [`serve`], but on a thread of its own with its own runtime, for
/// callers without one (CLI tests, the foreground binary).
pub fn serve_background<S: Send + Sync + 'static>(
    port: u16,
    state: Arc<S>,
    faults: Arc<FaultInjector>,
    app: Router,
) -> io::Result<Emulator<S>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", port)))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = wrap(app, faults.clone());
    let thread = std::thread::Builder::new()
        .name(format!("emulator-{addr}"))
        .spawn(move || {
            runtime.block_on(run(listener, app, stopped));
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
    Ok(Emulator {
        base_url: format!("http://{addr}"),
        addr,
        faults,
        state,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn run(listener: TcpListener, app: Router, stopped: tokio::sync::oneshot::Receiver<()>) {
    let service = app.into_make_service_with_connect_info::<Conn>();
    let server = axum::serve(KillableListener(listener), service);
    tokio::select! {
        result = server.into_future() => {
            if let Err(e) = result {
                eprintln!("emulator: server error: {e}");
            }
        }
        _ = stopped => {}
    }
}

fn wrap(app: Router, faults: Arc<FaultInjector>) -> Router {
    let admin = Router::new()
        .route(
            "/__emulator/faults",
            get(admin_get).post(admin_set).delete(admin_clear),
        )
        .with_state(faults.clone());
    admin
        .merge(app)
        .layer(middleware::from_fn_with_state(faults, fault_layer))
}

#[derive(Serialize)]
struct AdminView {
    faults: Faults,
    counts: FaultCounts,
}

async fn admin_get(State(faults): State<Arc<FaultInjector>>) -> Response {
    axum::Json(AdminView {
        faults: faults.get(),
        counts: faults.counts(),
    })
    .into_response()
}

async fn admin_set(State(faults): State<Arc<FaultInjector>>, body: axum::body::Bytes) -> Response {
    let parsed: Result<Faults, String> =
        serde_json::from_slice(&body).map_err(|e| format!("bad faults JSON: {e}"));
    match parsed.and_then(|f| faults.set(f)) {
        Ok(()) => admin_get(State(faults)).await,
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn admin_clear(State(faults): State<Arc<FaultInjector>>) -> Response {
    faults.clear();
    admin_get(State(faults)).await
}

/// 0: not decided yet (read `EMULATOR_LOG`), 1: off, 2: on.
static LOGGING: AtomicU8 = AtomicU8::new(0);

/// Turns request logging (to stderr) on or off for every emulator.
pub fn set_logging(on: bool) {
    LOGGING.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

fn log_enabled() -> bool {
    match LOGGING.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("EMULATOR_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
            set_logging(on);
            on
        }
        state => state == 2,
    }
}

async fn fault_layer(
    State(faults): State<Arc<FaultInjector>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if log_enabled() {
        eprintln!("emulator: {} {}", request.method(), request.uri());
    }
    if path.starts_with(ADMIN_PREFIX) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let Some((kind, config)) = faults.decide(method.as_str(), &path) else {
        let response = next.run(request).await;
        faults.log(&method, &path, response.status().as_u16());
        return response;
    };
    if log_enabled() {
        eprintln!("emulator: injecting {kind:?}");
    }
    let (response, status) = match kind {
        FaultKind::Delay => {
            tokio::time::sleep(Duration::from_millis(config.delay_ms)).await;
            let response = next.run(request).await;
            let status = response.status().as_u16();
            (response, status)
        }
        FaultKind::DropConnection => {
            if let Some(ConnectInfo(conn)) = request.extensions().get::<ConnectInfo<Conn>>() {
                conn.kill.store(true, Ordering::SeqCst);
            }
            // Never reaches the client: the connection refuses every write
            // from now on and is closed.
            (StatusCode::INTERNAL_SERVER_ERROR.into_response(), 0)
        }
        FaultKind::RateLimit | FaultKind::Unavailable => {
            // Read the request to its end first, as a server that answers
            // the request (rather than cutting the connection) does: the
            // connection stays usable for the client's next request.
            let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            let response = (faults.responder)(kind, &config, &method, &path);
            let status = response.status().as_u16();
            (response, status)
        }
    };
    faults.log(&method, &path, status);
    response
}

/// Per-connection information: the peer and the switch that kills the
/// connection.
#[derive(Clone)]
pub struct Conn {
    pub remote: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.remote)
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Conn {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections can be cut from inside a handler.
struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (KillableStream, Conn) {
        loop {
            match self.0.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let conn = Conn {
                        remote,
                        kill: kill.clone(),
                    };
                    return (
                        KillableStream {
                            inner: stream,
                            kill,
                        },
                        conn,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn {
            remote: self.0.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A TCP stream that fails every read and write once killed, so the HTTP
/// server gives up on it and closes the socket without writing anything.
struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "emulated dropped connection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
