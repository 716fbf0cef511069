#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests against real
# servers it starts itself (Chroma, PostgreSQL + pgvector, Milvus, an S3 server
# and Azurite on 127.0.0.1), and the Python package's tests (pytest) against its wheel.
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
cargo clippy -p vecport-python --all-targets --locked -- -D warnings
CI=${CI:-true} cargo test --locked --lib --bins --tests

# The Python package, from its wheel, with the `vecport` it installs on PATH.
vdb_install_wheel
PATH="$(dirname "$VECPORT_WHEEL_PYTHON"):$PATH" CI=${CI:-true} "$VECPORT_WHEEL_PYTHON" -m pytest -p no:cacheprovider tests/python
