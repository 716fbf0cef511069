//! vecport: portable, checksummed Parquet snapshots of vector databases.
//!
//! Dependencies flow one way: [`pipeline`] → [`connectors`], [`snapshot`] →
//! [`model`]. The snapshot format knows no database, connectors speak only
//! the neutral [`model`], and nothing below the CLI knows about terminals.

mod buffers;
pub mod error;
pub mod mapping;
pub mod model;
pub mod redact;
pub mod snapshot;
pub mod storage;

pub use error::{Error, Result};
pub mod cli;
pub mod compare;
pub mod connectors;
pub mod convert;
pub mod pipeline;
