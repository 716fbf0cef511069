//! The library's error type: every variant says what happened and, where it
//! can, what to do about it. The CLI maps [`Error::category`] to exit codes.

use std::path::PathBuf;
use std::time::Duration;

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in vecport's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL or option the user gave is malformed.
    #[error("{0}")]
    Usage(String),

    /// The URL names a database vecport does not know.
    #[error("unknown scheme `{scheme}` in `{url}`; supported: {supported}")]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
        /// The URL, credentials removed.
        url: String,
        /// The schemes vecport knows.
        supported: String,
    },

    /// A snapshot file failed an integrity check.
    #[error(
        "{file}: checksum mismatch (manifest says blake3 {expected}, file has {actual}); the file was changed or damaged after export, export again or restore it from a copy"
    )]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// Hash from the manifest.
        expected: String,
        /// Hash of the bytes on disk.
        actual: String,
    },

    /// `manifest.json` does not hash to what `manifest.json.blake3` says.
    #[error(
        "{}: checksum mismatch ({} says blake3 {expected}, manifest.json has {actual}); manifest.json or its checksum file was changed or damaged after export: export again or restore both from a copy",
        manifest.display(),
        checksum_file.display()
    )]
    ManifestChecksumMismatch {
        /// `manifest.json`.
        manifest: PathBuf,
        /// `manifest.json.blake3`, which holds the expected hash.
        checksum_file: PathBuf,
        /// Hash from the checksum file.
        expected: String,
        /// Hash of `manifest.json`.
        actual: String,
    },

    /// A snapshot is structurally invalid (missing or truncated file, bad manifest, …).
    #[error("{file}: {message}")]
    InvalidSnapshot {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },

    /// The snapshot was written by a newer, incompatible format version.
    #[error(
        "{file}: snapshot format version {found} is not supported (this vecport reads {supported}); upgrade vecport to read it"
    )]
    UnsupportedVersion {
        /// The manifest.
        file: PathBuf,
        /// The version found.
        found: String,
        /// The versions this build reads.
        supported: String,
    },

    /// The database or network could not be reached.
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        /// Endpoint without credentials.
        endpoint: String,
        /// Cause.
        message: String,
    },

    /// The database refused the credentials.
    #[error("{endpoint} refused the credentials ({reason}); check {hint}")]
    Unauthenticated {
        /// Endpoint without credentials.
        endpoint: String,
        /// The refusal: `HTTP 401`, or the database's message (never a secret).
        reason: String,
        /// Which setting to check.
        hint: String,
    },

    /// No credentials are set where some are needed (object storage).
    #[error("{endpoint}: no credentials: {message}")]
    NoCredentials {
        /// The location, without credentials.
        endpoint: String,
        /// Which variables are missing, and what to set.
        message: String,
    },

    /// A collection (or tenant, database, index) does not exist.
    #[error("{what} not found{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    NotFound {
        /// What was looked for, e.g. ``collection `docs` on chroma://host:8000``.
        what: String,
        /// What to do.
        hint: Option<String>,
    },

    /// The target exists with settings that do not match the snapshot.
    #[error("{0}")]
    Incompatible(String),

    /// The connector cannot do what the snapshot or the user asks.
    #[error("{connector} does not support {feature}")]
    NotSupported {
        /// Connector name.
        connector: String,
        /// The missing feature, with a hint where there is one.
        feature: String,
    },

    /// Data a target cannot take, naming the record.
    #[error("{0}")]
    InvalidData(String),

    /// The database refused a request as invalid (HTTP 400, 413, 422):
    /// retrying cannot help.
    #[error(
        "{connector} refused {operation} (HTTP {status}): {message}{}",
        records.as_deref().map(|r| format!("; the request held {r}")).unwrap_or_default()
    )]
    Refused {
        /// Connector name.
        connector: String,
        /// What was asked.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The database's message, with a hint where there is one.
        message: String,
        /// The records the request held, when it wrote records.
        records: Option<String>,
    },

    /// The database asked us to slow down and retries ran out.
    #[error(
        "{endpoint} kept rate-limiting requests (HTTP 429{}) after {retries} retries; --retries and --retry-max-wait raise the limits",
        retry_after.map(|d| format!(", retry after {}s", d.as_secs_f64())).unwrap_or_default()
    )]
    RateLimited {
        /// Endpoint without credentials.
        endpoint: String,
        /// The server's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
        /// Retries made before giving up.
        retries: u32,
    },

    /// The database answered with an error we do not retry.
    #[error("{endpoint} answered HTTP {status} to {operation}: {message}")]
    Server {
        /// Endpoint without credentials.
        endpoint: String,
        /// What we asked for.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },

    /// A database answered with something that is not what its API promises.
    #[error("{endpoint}: unexpected answer to {operation}: {message}")]
    Protocol {
        /// Endpoint without credentials.
        endpoint: String,
        /// What we asked for.
        operation: String,
        /// What was wrong with the answer.
        message: String,
    },

    /// Local file I/O failed.
    #[error("{}: {cause}{}", path.display(), io_hint(cause))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause (in the message, so not repeated as a source).
        cause: std::io::Error,
    },

    /// A run failed after saving progress that `--resume` continues from.
    #[error("{cause}; {hint}")]
    Stopped {
        /// Why it stopped.
        cause: Box<Error>,
        /// Where the progress is and how to continue.
        hint: String,
    },

    /// A source gave an export something no consistent source gives: a
    /// record it gave before, a paging cursor it gave before, far more records
    /// than it counted. What was exported cannot be trusted.
    #[error("{endpoint}: {message}")]
    SourceInconsistent {
        /// Endpoint without credentials.
        endpoint: String,
        /// What it did, naming the collection and the record or cursor.
        message: String,
    },

    /// Another vecport run holds the lock of the same export or import.
    #[error(
        "{what} is already under way in another vecport run ({holder}); wait until it finishes, or stop it and run this command again"
    )]
    Busy {
        /// The run: ``an export into /snap``, ``an import of /snap into …``.
        what: String,
        /// Who holds it: process, host, command, start time.
        holder: String,
    },

    /// Parquet encoding or decoding failed.
    #[error("{}: {message}", path.display())]
    Parquet {
        /// The part file.
        path: PathBuf,
        /// Cause.
        message: String,
    },

    /// A bug in vecport: a task panicked or was cancelled. Not the user's data
    /// nor the database's answer (exit 70).
    #[error("internal error while {what}: {cause}; this is a bug in vecport, please report it")]
    Internal {
        /// What vecport was doing.
        what: String,
        /// The panic's message.
        cause: String,
    },
}

impl Error {
    /// `self`, saying that the progress saved in `state` lets the same
    /// command continue with `--resume`.
    pub fn resumable(self, state: &std::path::Path) -> Error {
        Error::Stopped {
            cause: Box::new(self),
            hint: format!(
                "the progress so far is kept in {}: run the same command with --resume to continue",
                state.display()
            ),
        }
    }
}

/// What to do about a local file error, for the kinds a user can fix.
fn io_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "; the disk is full: free some space or choose a directory on another disk"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "; vecport may not write there: choose another directory or change its permissions"
        }
        _ => "",
    }
}

/// The reason of an [`Error::Unauthenticated`] from an HTTP answer: the
/// status, and the server's message when it gave one.
pub fn http_reason(status: u16, message: &str) -> String {
    if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    }
}

/// Broad classes of errors, each with its own exit code in the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Bad URL or option (exit 2).
    Usage,
    /// Snapshot damaged, invalid or of an unsupported version (exit 3).
    Snapshot,
    /// Network or server trouble (exit 4).
    Connection,
    /// Credentials refused (exit 5).
    Auth,
    /// Collection, index or table missing (exit 6).
    NotFound,
    /// Target incompatible, data refused, feature unsupported (exit 7).
    Data,
    /// Local file system trouble (exit 8).
    Io,
    /// A bug in vecport (exit 70).
    Internal,
    /// Another run holds the export's or import's lock (exit 9).
    Busy,
}

impl Error {
    /// The class of this error.
    pub fn category(&self) -> Category {
        match self {
            Error::Usage(_) | Error::UnknownScheme { .. } => Category::Usage,
            Error::ChecksumMismatch { .. }
            | Error::ManifestChecksumMismatch { .. }
            | Error::InvalidSnapshot { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Parquet { .. } => Category::Snapshot,
            Error::Unreachable { .. }
            | Error::RateLimited { .. }
            | Error::Server { .. }
            | Error::Protocol { .. }
            | Error::SourceInconsistent { .. } => Category::Connection,
            Error::Busy { .. } => Category::Busy,
            Error::Unauthenticated { .. } | Error::NoCredentials { .. } => Category::Auth,
            Error::NotFound { .. } => Category::NotFound,
            Error::Incompatible(_)
            | Error::NotSupported { .. }
            | Error::InvalidData(_)
            | Error::Refused { .. } => Category::Data,
            Error::Io { .. } => Category::Io,
            Error::Internal { .. } => Category::Internal,
            Error::Stopped { cause, .. } => cause.category(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    /// An [`Error::InvalidSnapshot`] for `file`.
    pub fn invalid(file: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::InvalidSnapshot {
            file: file.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Refused`] of a request that wrote no records (the
    /// pipeline names the records of a write).
    pub fn refused(connector: &str, operation: &str, status: u16, message: String) -> Error {
        let message = if status == 413 {
            format!(
                "{message} (the request was within {connector}'s documented size limit; this server is set to accept less)"
            )
        } else {
            message
        };
        Error::Refused {
            connector: connector.to_owned(),
            operation: operation.to_owned(),
            status,
            message,
            records: None,
        }
    }

    /// An [`Error::Internal`] of a task that panicked (or was cancelled)
    /// while doing `what`.
    pub fn internal(what: impl Into<String>, cause: tokio::task::JoinError) -> Error {
        let cause = if cause.is_panic() {
            let panic = cause.into_panic();
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a task panicked".to_owned())
        } else {
            cause.to_string()
        };
        Error::Internal {
            what: what.into(),
            cause,
        }
    }

    /// An [`Error::NotSupported`].
    pub fn not_supported(connector: &str, feature: impl Into<String>) -> Error {
        Error::NotSupported {
            connector: connector.to_owned(),
            feature: feature.into(),
        }
    }
}
