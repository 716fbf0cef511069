//! Shared test support: data generators, the servers' URLs, running the
//! binary and raw HTTP.

#![allow(dead_code)]

pub mod buckets;
pub mod chroma;
pub mod cli;
pub mod data;
pub mod databases;
pub mod http;
pub mod pipeline;
pub mod sdk;

/// The URL of a real server from the environment variable `var`; `None`
/// (skip) when unset outside CI, a panic when unset under CI.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set, but CI=true: .ci/run must start the server")
        }
        _ => {
            eprintln!("skipped: set {var} to run this test against a real server");
            None
        }
    }
}

/// Says that a test cannot run here and why; under CI (`CI=true`), where
/// every test must run, that is a failure instead.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cannot run under CI=true: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// A collection name unique to this process and call.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// The `pgvector://` URL (no table) of the PostgreSQL server in
/// `DATABASE_URL` (`postgres://USER@HOST:PORT/DATABASE`), when it is set;
/// see [`server_url`].
pub fn pgvector_url() -> Option<String> {
    let url = server_url("DATABASE_URL")?;
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_else(|| {
        panic!("DATABASE_URL {url:?} is not postgres://USER@HOST:PORT/DATABASE")
    });
    Some(format!(
        "pgvector://{}",
        rest.split('?').next().unwrap_or(rest)
    ))
}
