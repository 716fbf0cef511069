#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests against real
# servers it starts itself (Chroma, PostgreSQL + pgvector, Milvus, an S3 server
# and Azurite on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/servers.sh
vdb_install_python
vdb_install_formats
vdb_start_chroma
vdb_start_postgres
vdb_start_postgres_tls
vdb_start_milvus
vdb_start_s3
vdb_start_azurite

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
CI=${CI:-true} cargo test --locked --lib --bins --tests
