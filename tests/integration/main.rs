//! vecport's integration tests: one binary, one module per area.
//!
//! Tests that need a real server read its URL from the environment
//! (`CHROMA_URL`); without it they are skipped, except under CI (`CI=true`),
//! where a missing server is a failure.

mod support;

mod chroma;
mod cli;
mod conformance;
mod fixtures;
mod pyarrow;
mod snapshot_format;
