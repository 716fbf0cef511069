//! Connecting to PostgreSQL as libpq does: `sslmode` (`disable`, `allow`,
//! `prefer`, `require`, `verify-ca`, `verify-full`) over rustls,
//! `sslrootcert` (a PEM file, or `system`), client certificates (`sslcert`,
//! `sslkey`), each from the URL, else from libpq's environment variable,
//! else from libpq's default file under `~/.postgresql/`; the password from
//! `PGPASSWORD`, else from the password file ([`super::pgpass`]).
//!
//! libpq's rules, kept here: `prefer` tries TLS and, when the handshake fails
//! or the server refuses the session over TLS, connects again without it;
//! `allow` does the opposite. `prefer` and `require` check the certificate
//! only when a root certificate is there (then as `verify-ca` does: the chain,
//! not the host name); `verify-ca` and `verify-full` need one, and
//! `verify-full` also checks that the certificate names the host.
//! `sslrootcert=system` takes the system's trusted CAs and needs
//! `verify-full`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;

use super::pgpass;

/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "PGPASSWORD";
/// Environment variables libpq reads when the URL does not set the parameter.
pub const SSLMODE_ENV: &str = "PGSSLMODE";
/// See [`SSLMODE_ENV`].
pub const SSLROOTCERT_ENV: &str = "PGSSLROOTCERT";
/// See [`SSLMODE_ENV`].
pub const SSLCERT_ENV: &str = "PGSSLCERT";
/// See [`SSLMODE_ENV`].
pub const SSLKEY_ENV: &str = "PGSSLKEY";
/// libpq's default files, under the home directory.
const DEFAULT_ROOT_CERT: &str = ".postgresql/root.crt";
const DEFAULT_CLIENT_CERT: &str = ".postgresql/postgresql.crt";
const DEFAULT_CLIENT_KEY: &str = ".postgresql/postgresql.key";

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain TCP; TLS only when the server refuses the plain session.
    Allow,
    /// TLS when the server offers it; plain TCP when it does not or TLS fails.
    Prefer,
    /// TLS, the certificate checked only against a root certificate that is there.
    Require,
    /// TLS, the certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and naming the host.
    VerifyFull,
}

impl SslMode {
    const NAMES: &[(&str, SslMode)] = &[
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn parse(text: &str) -> Option<SslMode> {
        SslMode::NAMES
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, m)| *m)
    }

    /// The name libpq gives it.
    pub fn name(self) -> &'static str {
        SslMode::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether a connection without TLS is refused.
    fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// A value and where it came from, for messages (`sslmode=require in the URL`).
#[derive(Debug, Clone)]
struct Setting<T> {
    value: T,
    from: String,
}

/// The trusted root certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    File(PathBuf),
    System,
}

/// Where settings are read: URL parameters, environment, home directory.
pub struct Sources<'a> {
    /// A URL query parameter.
    pub param: &'a dyn Fn(&str) -> Option<String>,
    /// An environment variable (empty counts as unset).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory.
    pub home: Option<PathBuf>,
}

impl Sources<'_> {
    /// A setting from the URL parameter `param`, else the variable `env`.
    fn get(&self, param: &str, env: &str) -> Option<Setting<String>> {
        if let Some(v) = (self.param)(param) {
            return Some(Setting {
                value: v,
                from: format!("{param} in the URL"),
            });
        }
        (self.env)(env).filter(|v| !v.is_empty()).map(|v| Setting {
            value: v,
            from: env.to_owned(),
        })
    }

    /// libpq's default file under the home directory, when it exists.
    fn default_file(&self, rel: &str) -> Option<Setting<PathBuf>> {
        let path = self.home.as_ref()?.join(rel);
        path.exists().then(|| Setting {
            value: path,
            from: format!("~/{rel}, libpq's default"),
        })
    }
}

/// TLS settings of a connection, resolved and loaded.
#[derive(Clone)]
pub struct Tls {
    mode: Setting<SslMode>,
    roots: Option<Setting<Roots>>,
    /// The rustls connector, unless `sslmode=disable`.
    connector: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode.value)
            .field("roots", &self.roots.as_ref().map(|r| &r.value))
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Resolves the settings from `sources` and loads the certificates they
    /// name. Errors name the setting and say what to do.
    pub fn resolve(sources: &Sources<'_>) -> Result<Tls, String> {
        let roots = match sources.get("sslrootcert", SSLROOTCERT_ENV) {
            Some(s) if s.value == "system" => Some(Setting {
                value: Roots::System,
                from: s.from,
            }),
            Some(s) => Some(Setting {
                value: Roots::File(PathBuf::from(&s.value)),
                from: s.from,
            }),
            None => sources.default_file(DEFAULT_ROOT_CERT).map(|s| Setting {
                value: Roots::File(s.value),
                from: s.from,
            }),
        };
        let mode = match sources.get("sslmode", SSLMODE_ENV) {
            Some(s) => Setting {
                value: SslMode::parse(&s.value).ok_or_else(|| {
                    format!(
                        "sslmode `{}` ({}) is unknown; use disable, allow, prefer, require, verify-ca or verify-full",
                        s.value, s.from
                    )
                })?,
                from: s.from,
            },
            // libpq: `sslrootcert=system` makes verify-full the default.
            None if roots.as_ref().is_some_and(|r| r.value == Roots::System) => Setting {
                value: SslMode::VerifyFull,
                from: "the default with sslrootcert=system".into(),
            },
            None => Setting {
                value: SslMode::Prefer,
                from: "the default".into(),
            },
        };
        if let Some(r) = &roots
            && r.value == Roots::System
            && mode.value != SslMode::VerifyFull
            && mode.value != SslMode::Disable
        {
            return Err(format!(
                "sslrootcert=system ({}) needs sslmode=verify-full, not {} ({}): a certificate from any public CA is only worth trusting for the host it names",
                r.from,
                mode.value.name(),
                mode.from
            ));
        }
        if mode.value == SslMode::Disable {
            return Ok(Tls {
                mode,
                roots,
                connector: None,
            });
        }
        if matches!(mode.value, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
            return Err(format!(
                "sslmode={} ({}) checks the server's certificate against a trusted CA, and none is given: set sslrootcert=PATH in the URL or {SSLROOTCERT_ENV} to the PEM file of the CA that signed the server's certificate, put it at ~/{DEFAULT_ROOT_CERT}, or use sslrootcert=system for the system's trusted CAs; sslmode=require encrypts without checking the certificate",
                mode.value.name(),
                mode.from
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &roots {
            None => Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }),
            Some(r) => {
                let store = load_roots(r)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert ({}): {e}", r.from))?;
                if mode.value == SslMode::VerifyFull {
                    webpki
                } else {
                    // libpq: with a root certificate, `require` and `prefer` check as `verify-ca` does.
                    Arc::new(ChainOnly { inner: webpki })
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match client_identity(sources)? {
            Some((chain, key, from)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert and sslkey ({from}) do not fit together: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Tls {
            mode,
            roots,
            connector: Some(MakeRustlsConnect::new(config)),
        })
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode.value
    }

    fn mode_text(&self) -> String {
        format!("sslmode={} ({})", self.mode.value.name(), self.mode.from)
    }

    fn roots_text(&self) -> String {
        match &self.roots {
            Some(Setting {
                value: Roots::File(p),
                from,
            }) => format!("the CA certificates in {} ({from})", p.display()),
            Some(Setting {
                value: Roots::System,
                from,
            }) => format!("the system's trusted CAs ({from})"),
            None => "no CA".into(),
        }
    }
}

/// Reads the root certificates.
fn load_roots(roots: &Setting<Roots>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match &roots.value {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert=system ({}): no trusted CA certificates were found on this system{}; set sslrootcert to the PEM file of the server's CA instead",
                    roots.from,
                    found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
        }
        Roots::File(path) => {
            let certs = read_certs(path).map_err(|e| {
                format!(
                    "sslrootcert {} ({}): {e}; give the PEM file of the CA that signed the server's certificate",
                    path.display(),
                    roots.from
                )
            })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} ({}) holds no certificate rustls can use; give the PEM file of the CA that signed the server's certificate",
                    path.display(),
                    roots.from
                ));
            }
        }
    }
    Ok(store)
}

/// The PEM certificates in `path`; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

/// The client certificate and key (`sslcert`, `sslkey`), when one is set or
/// libpq's default file exists.
fn client_identity(sources: &Sources<'_>) -> Result<Option<Identity>, String> {
    let cert = sources
        .get("sslcert", SSLCERT_ENV)
        .map(|s| Setting {
            value: PathBuf::from(s.value),
            from: s.from,
        })
        .or_else(|| sources.default_file(DEFAULT_CLIENT_CERT));
    let key = sources
        .get("sslkey", SSLKEY_ENV)
        .map(|s| Setting {
            value: PathBuf::from(s.value),
            from: s.from,
        })
        .or_else(|| sources.default_file(DEFAULT_CLIENT_KEY));
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (None, Some(k)) => {
            return Err(format!(
                "sslkey {} ({}) is set, but no client certificate: set sslcert=PATH in the URL or {SSLCERT_ENV}",
                k.value.display(),
                k.from
            ));
        }
        (Some(c), None) => {
            return Err(format!(
                "the client certificate {} ({}) has no private key: set sslkey=PATH in the URL or {SSLKEY_ENV}, or put it at ~/{DEFAULT_CLIENT_KEY}",
                c.value.display(),
                c.from
            ));
        }
        (Some(c), Some(k)) => (c, k),
    };
    let chain = read_certs(&cert.value)
        .map_err(|e| format!("sslcert {} ({}) {e}", cert.value.display(), cert.from))?;
    let meta = std::fs::metadata(&key.value).map_err(|e| {
        format!(
            "sslkey {} ({}) cannot be read ({e})",
            key.value.display(),
            key.from
        )
    })?;
    check_key_permissions(&meta)
        .map_err(|e| format!("sslkey {} ({}): {e}", key.value.display(), key.from))?;
    let private = PrivateKeyDer::from_pem_file(&key.value).map_err(|e| {
        format!(
            "sslkey {} ({}) is not a PEM private key ({e})",
            key.value.display(),
            key.from
        )
    })?;
    Ok(Some((
        chain,
        private,
        format!("{}, {}", cert.from, key.from),
    )))
}

/// libpq refuses a private key others may read: at most 0600, or 0640 when
/// root owns it (a key managed by the system).
fn check_key_permissions(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("it is not a plain file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o7777;
        let loose = if meta.uid() == 0 {
            mode & 0o037 != 0
        } else {
            mode & 0o077 != 0
        };
        if loose {
            return Err(format!(
                "the file has group or world access (mode {mode:04o}); it must be u=rw (0600) or less, or u=rw,g=r (0640) or less when root owns it: chmod 0600 it"
            ));
        }
    }
    Ok(())
}

/// Accepts any certificate (libpq's `require` and `prefer` without a root
/// certificate: encryption without authentication), but still checks that
/// the server holds the certificate's key.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the certificate chain must lead to a trusted CA; the host
/// name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first, the name last: a wrong name means a good chain.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What happened to TLS in one connection attempt.
#[derive(Debug, Default)]
struct TlsState {
    /// The handshake began (the server accepted the SSLRequest).
    started: std::sync::atomic::AtomicBool,
    /// Why the handshake failed, if it did.
    failed: Mutex<Option<HandshakeFailure>>,
}

/// A failed TLS handshake, described.
#[derive(Debug, Clone)]
struct HandshakeFailure {
    /// rustls' words.
    text: String,
    /// The certificate's fault, when it is one.
    certificate: Option<CertificateError>,
    /// The server sent an alert.
    alert: bool,
}

impl HandshakeFailure {
    fn of(e: &io::Error) -> HandshakeFailure {
        let tls = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        HandshakeFailure {
            text: e.to_string(),
            certificate: match tls {
                Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
                _ => None,
            },
            alert: matches!(tls, Some(rustls::Error::AlertReceived(_))),
        }
    }
}

/// rustls' connector, noting in a [`TlsState`] whether the handshake began
/// and how it failed: `prefer` falls back on a failure, and errors say why.
#[derive(Clone)]
struct Tracked {
    inner: MakeRustlsConnect,
    state: Arc<TlsState>,
}

type InnerConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
type InnerStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

impl MakeTlsConnect<Socket> for Tracked {
    type Stream = InnerStream;
    type TlsConnect = TrackedConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<TrackedConnect, Self::Error> {
        Ok(TrackedConnect {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, domain)?,
            state: self.state.clone(),
        })
    }
}

struct TrackedConnect {
    inner: InnerConnect,
    state: Arc<TlsState>,
}

impl TlsConnect<Socket> for TrackedConnect {
    type Stream = InnerStream;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<InnerStream>>;

    fn connect(self, stream: Socket) -> Self::Future {
        self.state
            .started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let state = self.state;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let result = handshake.await;
            if let Err(e) = &result
                && let Ok(mut failed) = state.failed.lock()
            {
                *failed = Some(HandshakeFailure::of(e));
            }
            result
        })
    }
}

/// Where the password came from, for the hint of a refusal.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// `PGPASSWORD`.
    Env,
    /// A line of the password file.
    File {
        /// The file.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// None was given; the file that was looked in.
    None {
        /// The password file looked in, if any.
        file: Option<PathBuf>,
    },
}

/// How one attempt used TLS.
#[derive(Debug, Clone)]
enum Used {
    /// Plain TCP (asked for, or the server offered no TLS under `prefer`).
    Plain,
    /// The server refused TLS where it was required.
    Refused,
    /// The handshake failed.
    Failed(HandshakeFailure),
    /// TLS was up when the error came.
    Established,
}

/// A failed attempt.
struct Attempt {
    error: tokio_postgres::Error,
    tls: Used,
}

impl Attempt {
    /// The server answered with an error (it was reached; it said no).
    fn server_refused(&self) -> bool {
        self.error.as_db_error().is_some()
    }
}

/// Everything needed to open connections.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Host, port, user, database, password: everything but TLS.
    pub config: tokio_postgres::Config,
    /// TLS settings.
    pub tls: Tls,
    /// Where the password came from.
    pub password: PasswordSource,
    /// The endpoint as it may be shown.
    pub public: String,
    /// The `host:port:database:user` a password file line is matched with.
    pub pgpass_key: String,
}

impl Dialer {
    /// One new connection, with libpq's fallbacks for `allow` and `prefer`.
    pub async fn connect(&self) -> crate::error::Result<Client> {
        let result = match self.tls.mode() {
            SslMode::Disable => self.attempt(false).await.map_err(|e| (e, None)),
            SslMode::Allow => match self.attempt(false).await {
                Err(first) if first.server_refused() => match self.attempt(true).await {
                    // The server has no TLS either: its first answer is the one that matters.
                    Err(second) if matches!(second.tls, Used::Refused) => Err((first, None)),
                    other => other.map_err(|e| (e, Some(first))),
                },
                other => other.map_err(|e| (e, None)),
            },
            SslMode::Prefer => match self.attempt(true).await {
                Err(first) => match &first.tls {
                    Used::Failed(f) => {
                        tracing::warn!(
                            "{}: TLS failed ({}); {} goes on without TLS. Use sslmode=require or verify-full to insist on TLS",
                            self.public,
                            f.text,
                            self.tls.mode_text()
                        );
                        self.attempt(false).await.map_err(|e| (e, None))
                    }
                    Used::Established if first.server_refused() => {
                        self.attempt(false).await.map_err(|e| (e, Some(first)))
                    }
                    _ => Err((first, None)),
                },
                Ok(client) => Ok(client),
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                self.attempt(true).await.map_err(|e| (e, None))
            }
        };
        result.map_err(|(last, first)| self.error(&last, first.as_ref()))
    }

    /// One attempt, with TLS (as the mode says) or without.
    async fn attempt(&self, tls: bool) -> Result<Client, Attempt> {
        let mut config = self.config.clone();
        let connector = self.tls.connector.clone().filter(|_| tls);
        let Some(inner) = connector else {
            config.ssl_mode(WireSslMode::Disable);
            return match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    spawn(connection);
                    Ok(client)
                }
                Err(error) => Err(Attempt {
                    error,
                    tls: Used::Plain,
                }),
            };
        };
        config.ssl_mode(
            if self.tls.mode().requires_tls() || self.tls.mode() == SslMode::Allow {
                WireSslMode::Require
            } else {
                WireSslMode::Prefer
            },
        );
        let state = Arc::new(TlsState::default());
        let tracked = Tracked {
            inner,
            state: state.clone(),
        };
        match config.connect(tracked).await {
            Ok((client, connection)) => {
                spawn(connection);
                Ok(client)
            }
            Err(error) => {
                let failed = state.failed.lock().ok().and_then(|f| f.clone());
                let started = state.started.load(std::sync::atomic::Ordering::SeqCst);
                let tls = match failed {
                    Some(f) => Used::Failed(f),
                    None if started => Used::Established,
                    // tokio-postgres' words when the server answers the SSLRequest with `N`.
                    None if error_text(&error).contains("does not support TLS") => Used::Refused,
                    None => Used::Plain,
                };
                Err(Attempt { error, tls })
            }
        }
    }

    /// The error of a failed connection: which setting to look at, and what
    /// to do. `first` is the attempt before a libpq fallback, if any.
    fn error(&self, last: &Attempt, first: Option<&Attempt>) -> Error {
        let earlier = first
            .map(|f| {
                format!(
                    " (the attempt {} before it: {})",
                    if matches!(f.tls, Used::Established) {
                        "with TLS"
                    } else {
                        "without TLS"
                    },
                    error_text(&f.error)
                )
            })
            .unwrap_or_default();
        let code = last.error.code().map(|c| c.code().to_owned());
        let text = error_text(&last.error);
        if code.as_deref().is_some_and(|c| c.starts_with("28")) {
            let mut hint = self.password_hint();
            if !matches!(last.tls, Used::Established) && code.as_deref() == Some("28000") {
                hint.push_str(&format!(
                    "; the server may accept this user only over TLS: connect with sslmode=require or verify-full (now {})",
                    self.tls.mode_text()
                ));
            }
            return Error::Unauthenticated {
                endpoint: self.public.clone(),
                reason: format!("{text}{earlier}"),
                hint,
            };
        }
        if code.is_none() && text.contains("password missing") {
            return Error::Unauthenticated {
                endpoint: self.public.clone(),
                reason: "the server asks for a password, and none was given".into(),
                hint: self.password_hint(),
            };
        }
        let message = match &last.tls {
            Used::Failed(f) => format!(
                "TLS handshake failed with {}: {}; {}",
                self.tls.mode_text(),
                f.text,
                self.tls_hint(f)
            ),
            Used::Refused => format!(
                "the server does not accept TLS connections, and {} requires TLS; enable ssl on the server, or connect with sslmode=prefer or disable over a network you trust",
                self.tls.mode_text()
            ),
            _ => format!("{text}{earlier}"),
        };
        Error::Unreachable {
            endpoint: self.public.clone(),
            message,
        }
    }

    /// What to check when the server refuses the credentials.
    fn password_hint(&self) -> String {
        match &self.password {
            PasswordSource::Env => {
                format!("the user in the URL and the password in {PASSWORD_ENV}")
            }
            PasswordSource::File { file, line } => format!(
                "the user in the URL and the password on line {line} of {} (it matches {}; {PASSWORD_ENV}, when set, is used instead)",
                file.display(),
                self.pgpass_key
            ),
            PasswordSource::None { file } => format!(
                "the user in the URL; no password was given: set {PASSWORD_ENV}, or add a line {}:PASSWORD to {} ({} names another file)",
                self.pgpass_key,
                file.as_deref()
                    .map_or("~/.pgpass".into(), |f| f.display().to_string()),
                pgpass::PASSFILE_ENV
            ),
        }
    }

    /// What to do about a failed handshake.
    fn tls_hint(&self, f: &HandshakeFailure) -> String {
        match &f.certificate {
            Some(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }) => {
                "the server's certificate does not name the host in the URL: connect with a host name the certificate names, or use sslmode=verify-ca to check only that a trusted CA signed it".into()
            }
            Some(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => "the server's certificate is outside its validity period: renew it, or check this machine's clock".into(),
            Some(_) => format!(
                "the server's certificate is not signed by {}: set sslrootcert=PATH in the URL or {SSLROOTCERT_ENV} to the PEM file of the CA that signed it, or use sslmode=require to encrypt without checking the certificate",
                self.tls.roots_text()
            ),
            None if f.alert => format!(
                "the server ended the handshake; if it asks for a client certificate, set sslcert and sslkey in the URL (or {SSLCERT_ENV}, {SSLKEY_ENV})"
            ),
            None => "check the server's TLS settings (ssl, ssl_min_protocol_version)".into(),
        }
    }
}

fn spawn<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        // The connection ends when the client is dropped; errors reach the client's calls.
        let _ = connection.await;
    });
}

/// A PostgreSQL error in words: the server's message and detail, or the
/// client's error with its causes.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => format!("{} ({detail})", d.message()),
            None => d.message().to_owned(),
        },
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        params: &[(&str, &str)],
        env: &[(&str, &str)],
        home: Option<&Path>,
    ) -> Result<Tls, String> {
        let params: HashMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Tls::resolve(&Sources {
            param: &|k| params.get(k).cloned(),
            env: &|k| env.get(k).cloned(),
            home: home.map(Path::to_path_buf),
        })
    }

    #[test]
    fn sslmode_comes_from_the_url_then_pgsslmode_then_prefer() {
        let home = tempfile::tempdir().unwrap();
        let h = Some(home.path());
        assert_eq!(resolve(&[], &[], h).unwrap().mode(), SslMode::Prefer);
        assert_eq!(
            resolve(&[], &[(SSLMODE_ENV, "require")], h).unwrap().mode(),
            SslMode::Require
        );
        assert_eq!(
            resolve(&[("sslmode", "disable")], &[(SSLMODE_ENV, "require")], h)
                .unwrap()
                .mode(),
            SslMode::Disable
        );
        for (name, mode) in SslMode::NAMES {
            assert_eq!(SslMode::parse(name), Some(*mode));
            assert_eq!(mode.name(), *name);
        }
        let e = resolve(&[("sslmode", "required")], &[], h).unwrap_err();
        assert!(
            e.contains("sslmode `required` (sslmode in the URL) is unknown"),
            "{e}"
        );
        let e = resolve(&[], &[(SSLMODE_ENV, "on")], h).unwrap_err();
        assert!(e.contains("(PGSSLMODE)"), "{e}");
    }

    #[test]
    fn verify_modes_need_a_root_certificate_and_say_where_to_put_it() {
        let home = tempfile::tempdir().unwrap();
        for mode in ["verify-ca", "verify-full"] {
            let e = resolve(&[("sslmode", mode)], &[], Some(home.path())).unwrap_err();
            assert!(
                e.contains(&format!("sslmode={mode} (sslmode in the URL)")),
                "{e}"
            );
            assert!(
                e.contains("sslrootcert=PATH") && e.contains(SSLROOTCERT_ENV),
                "{e}"
            );
        }
        let e = resolve(
            &[
                ("sslmode", "verify-full"),
                ("sslrootcert", "/nonexistent/ca.pem"),
            ],
            &[],
            Some(home.path()),
        )
        .unwrap_err();
        assert!(
            e.contains("sslrootcert /nonexistent/ca.pem (sslrootcert in the URL): cannot be read"),
            "{e}"
        );
        let not_pem = home.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let e = resolve(
            &[("sslmode", "verify-ca")],
            &[(SSLROOTCERT_ENV, not_pem.to_str().unwrap())],
            Some(home.path()),
        )
        .unwrap_err();
        assert!(
            e.contains("(PGSSLROOTCERT): holds no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn libpq_default_files_are_used_when_they_exist() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(DEFAULT_ROOT_CERT), "garbage").unwrap();
        // The default root certificate is read, so a bad one is an error naming it.
        let e = resolve(&[("sslmode", "verify-full")], &[], Some(home.path())).unwrap_err();
        assert!(e.contains("~/.postgresql/root.crt, libpq's default"), "{e}");
        // A client certificate without its key.
        std::fs::remove_file(home.path().join(DEFAULT_ROOT_CERT)).unwrap();
        std::fs::write(home.path().join(DEFAULT_CLIENT_CERT), "x").unwrap();
        let e = resolve(&[("sslmode", "require")], &[], Some(home.path())).unwrap_err();
        assert!(
            e.contains("has no private key") && e.contains("sslkey=PATH"),
            "{e}"
        );
        // sslmode=disable reads no certificate at all.
        assert!(resolve(&[("sslmode", "disable")], &[], Some(home.path())).is_ok());
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let home = tempfile::tempdir().unwrap();
        let e = resolve(
            &[("sslmode", "require"), ("sslrootcert", "system")],
            &[],
            Some(home.path()),
        )
        .unwrap_err();
        assert!(e.contains("needs sslmode=verify-full, not require"), "{e}");
        // Without an sslmode, verify-full is the default (when the system has CAs).
        match resolve(&[("sslrootcert", "system")], &[], Some(home.path())) {
            Ok(t) => assert_eq!(t.mode(), SslMode::VerifyFull),
            Err(e) => assert!(e.contains("no trusted CA certificates were found"), "{e}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        let e = check_key_permissions(&std::fs::metadata(&key).unwrap()).unwrap_err();
        assert!(e.contains("mode 0604") && e.contains("chmod 0600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_permissions(&std::fs::metadata(&key).unwrap()).is_ok());
    }
}
