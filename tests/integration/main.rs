//! vecport's integration tests: one binary, one module per area.
//!
//! Tests that need a real server read its URL from the environment
//! (`CHROMA_URL`, `DATABASE_URL`, `VECPORT_TEST_PG_TLS_URL`, `MILVUS_URL`,
//! `VECPORT_TEST_S3_ENDPOINT`, `VECPORT_TEST_AZURITE_URL`); without it they are skipped, except under CI (`CI=true`),
//! where a missing server is a failure.

mod support;

#[path = "../emulators/mod.rs"]
mod emulators;

mod bad_input;
mod chroma;
mod cli;
mod compare;
mod conformance;
mod convert;
mod faults;
mod fixtures;
mod format_messages;
mod hostile;
mod hostile_http;
mod hostile_parts;
mod matrix;
mod milvus;
mod object_store;
mod pgvector;
mod pgvector_tls;
mod pinecone;
mod pinecone_documents;
mod pinecone_emulator;
mod pyarrow;
mod qdrant;
mod qdrant_emulator;
mod readers;
mod restore;
mod resume;
mod secrets;
mod snapshot_format;
mod weaviate;
mod weaviate_emulator;
