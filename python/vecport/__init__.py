"""vecport: portable, checksummed Parquet snapshots of vector databases.

The functions run the same code as the ``vecport`` command: each keyword is
the command's long option with ``_`` for ``-`` (``page_size=500`` is
``--page-size 500``; ``True`` is a flag; a list repeats the option; a dict
gives ``FROM=TO`` pairs), with the same defaults and checks. The GIL is
released while data moves, so other Python threads keep running. Errors
raise the subclass of :class:`vecport.Error` that matches the command's exit
code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._errors import (
    BusyError,
    ConnectionError,
    CredentialsError,
    DataError,
    Error,
    FileSystemError,
    InternalError,
    NotFoundError,
    SnapshotError,
    UsageError,
)

__version__: str = _native.version()

#: ``progress(collection, done, total)``: called as records move; ``total``
#: is ``None`` when the source cannot count them ahead.
Progress = Callable[[str, int, Optional[int]], Any]
#: A snapshot directory or a database URL.
Location = Union[str, "os.PathLike[str]"]
#: One value or several for a repeatable option.
Names = Union[str, Sequence[str], None]


@dataclass(frozen=True)
class TransferResult:
    """What an export, import or migration did."""

    #: ``export``, ``import`` or ``migrate``.
    command: str
    #: Records exported (export) or written (import, migrate).
    records: int
    #: Wall-clock seconds the transfer took.
    seconds: float
    #: One dict per collection: ``name`` and ``records``; for an import also
    #: ``target``, ``target_count``, ``notes`` and ``changes`` (count by kind).
    collections: List[Dict[str, Any]] = field(default_factory=list)
    #: The change report (one JSON object per change), when anything was changed.
    changes: Optional[str] = None
    #: The snapshot written (export) or kept (migrate with ``via``).
    snapshot: Optional[str] = None
    #: The snapshot's manifest (export, migrate).
    manifest: Optional[Dict[str, Any]] = None


def _text(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _argv(command: str, positional: Sequence[Any], options: Mapping[str, Any]) -> List[str]:
    """The command line of ``command``: options first, then ``--`` and the
    positional arguments (so that none is read as an option)."""
    argv = [command]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, Mapping):
            argv += [x for k, v in value.items() for x in (flag, f"{_text(k)}={_text(v)}")]
        elif isinstance(value, (list, tuple, set, frozenset)):
            argv += [x for v in value for x in (flag, _text(v))]
        else:
            argv += [flag, _text(value)]
    return argv + ["--"] + [_text(p) for p in positional]


def _options(scope: Mapping[str, Any], *skip: str) -> Dict[str, Any]:
    return {k: v for k, v in scope.items() if k not in skip}


def export(
    source: str,
    dest: Location,
    *,
    collection: Names = None,
    page_size: Optional[int] = None,
    concurrency: Optional[int] = None,
    part_rows: Optional[int] = None,
    part_bytes: Optional[int] = None,
    row_group_rows: Optional[int] = None,
    vector_compression: Optional[str] = None,
    no_direct_io: bool = False,
    embedding_model: Optional[str] = None,
    embedding_dimension: Optional[int] = None,
    ids_from: Optional[Location] = None,
    resume: bool = False,
    retries: Optional[int] = None,
    retry_wait: Optional[float] = None,
    retry_max_wait: Optional[float] = None,
    timeout: Optional[float] = None,
    total_timeout: Optional[float] = None,
    max_response_mib: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> TransferResult:
    """Exports collections of the database at ``source`` (e.g.
    ``chroma://localhost:8000/docs``) into a new snapshot directory ``dest``:
    ``vecport export``."""
    options = _options(locals(), "source", "dest", "progress")
    out = _native.run(_argv("export", [source, dest], options), progress)
    return TransferResult(
        command="export",
        records=out["records"],
        seconds=out["seconds"],
        collections=out["collections"],
        snapshot=os.fspath(dest),
        manifest=out["manifest"],
    )


def import_(
    snapshot: Location,
    target: str,
    *,
    collection: Names = None,
    rename: Union[Mapping[str, str], Sequence[str], None] = None,
    if_exists: Optional[str] = None,
    concurrency: Optional[int] = None,
    resume: bool = False,
    state_dir: Optional[Location] = None,
    batch_size: Optional[int] = None,
    metadata: Optional[str] = None,
    skip_invalid: bool = False,
    drop_vector: Names = None,
    namespaces: Optional[str] = None,
    changes: Optional[Location] = None,
    retries: Optional[int] = None,
    retry_wait: Optional[float] = None,
    retry_max_wait: Optional[float] = None,
    timeout: Optional[float] = None,
    total_timeout: Optional[float] = None,
    max_response_mib: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> TransferResult:
    """Imports the snapshot at ``snapshot`` into the database at ``target``,
    creating the target collections: ``vecport import``. (``import`` is a
    Python keyword, hence the underscore.)"""
    options = _options(locals(), "snapshot", "target", "progress")
    out = _native.run(_argv("import", [snapshot, target], options), progress)
    return TransferResult(
        command="import",
        records=out["records"],
        seconds=out["seconds"],
        collections=out["collections"],
        changes=out["changes"],
        snapshot=os.fspath(snapshot),
    )


def migrate(
    source: str,
    target: str,
    *,
    via: Optional[Location] = None,
    resume: bool = False,
    collection: Names = None,
    rename: Union[Mapping[str, str], Sequence[str], None] = None,
    if_exists: Optional[str] = None,
    page_size: Optional[int] = None,
    read_concurrency: Optional[int] = None,
    write_concurrency: Optional[int] = None,
    batch_size: Optional[int] = None,
    ids_from: Optional[Location] = None,
    metadata: Optional[str] = None,
    skip_invalid: bool = False,
    drop_vector: Names = None,
    namespaces: Optional[str] = None,
    changes: Optional[Location] = None,
    retries: Optional[int] = None,
    retry_wait: Optional[float] = None,
    retry_max_wait: Optional[float] = None,
    timeout: Optional[float] = None,
    total_timeout: Optional[float] = None,
    max_response_mib: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> TransferResult:
    """Moves collections from the database at ``source`` to the one at
    ``target`` through a snapshot (kept in ``via`` when given):
    ``vecport migrate``."""
    options = _options(locals(), "source", "target", "progress")
    out = _native.run(_argv("migrate", [source, target], options), progress)
    return TransferResult(
        command="migrate",
        records=out["records"],
        seconds=out["seconds"],
        collections=out["collections"],
        changes=out["changes"],
        snapshot=os.fspath(via) if via is not None else None,
        manifest=out["manifest"],
    )


def compare(
    a: Location,
    b: Location,
    *,
    collection: Names = None,
    sample: Optional[int] = None,
    tolerance: Optional[float] = None,
    float_ulps: Optional[int] = None,
    max_ids: Optional[int] = None,
    queries: Optional[int] = None,
    k: Optional[int] = None,
    min_recall: Optional[float] = None,
    retries: Optional[int] = None,
    retry_wait: Optional[float] = None,
    retry_max_wait: Optional[float] = None,
    timeout: Optional[float] = None,
    total_timeout: Optional[float] = None,
    max_response_mib: Optional[int] = None,
) -> Dict[str, Any]:
    """Compares two collections (database URLs or snapshot directories)
    record by record: the report ``vecport compare --json`` prints, as a
    dict; ``report["equal"]`` says whether they are equal."""
    options = _options(locals(), "a", "b")
    return _native.run(_argv("compare", [a, b], options), None)


def _require(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {module}: pip install {module}") from e


class Snapshot:
    """A snapshot, opened: its manifest passed its checksum and validation.

    Reading gives the columns of the part files as they are stored (see the
    format's specification): ``id``, ``namespace``, ``metadata`` (JSON text),
    ``document``, ``uri`` and one column per vector field. Reading does not
    hash the part files; :meth:`verify` does.
    """

    def __init__(self, location: Location) -> None:
        self.location: str = os.fspath(location)
        self._native = _native.NativeSnapshot(self.location)
        self._manifest: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"vecport.Snapshot({self.location!r})"

    @property
    def manifest(self) -> Dict[str, Any]:
        """The manifest (``manifest.json``) as a dict."""
        if self._manifest is None:
            self._manifest = json.loads(self._native.manifest_json())
        return self._manifest

    @property
    def collections(self) -> List[str]:
        """The names of the collections, in manifest order."""
        return self._native.collections()

    def verify(self, *, deep: bool = False) -> Dict[str, Any]:
        """Recomputes every checksum and row count (with ``deep``, also
        decodes every row as an import would): the report ``vecport verify
        --json`` prints; ``report["ok"]`` is true when nothing is wrong."""
        return self._native.verify(deep)

    def batches(self, collection: Optional[str] = None, *, batch_rows: int = 16384) -> Any:
        """The rows of ``collection`` (the only one when ``None``) as a
        ``pyarrow.RecordBatchReader``: batches of at most ``batch_rows`` rows,
        read as they are consumed and handed over through the Arrow C stream
        interface without copying."""
        pa = _require("pyarrow", "Snapshot.batches()")
        return pa.RecordBatchReader.from_stream(self._native.stream(collection, batch_rows))

    def to_arrow(self, collection: Optional[str] = None) -> Any:
        """The rows of ``collection`` (the only one when ``None``) as a ``pyarrow.Table``."""
        return self.batches(collection).read_all()

    def to_pandas(self, collection: Optional[str] = None) -> Any:
        """The rows of ``collection`` as a ``pandas.DataFrame`` (needs pandas)."""
        _require("pandas", "Snapshot.to_pandas()")
        return self.to_arrow(collection).to_pandas()

    def to_polars(self, collection: Optional[str] = None) -> Any:
        """The rows of ``collection`` as a ``polars.DataFrame`` (needs polars)."""
        pl = _require("polars", "Snapshot.to_polars()")
        return pl.from_arrow(self.to_arrow(collection))

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule interface, for a snapshot of one collection."""
        return self._native.stream(None, 16384).__arrow_c_stream__(requested_schema)


__all__ = [
    "BusyError",
    "ConnectionError",
    "CredentialsError",
    "DataError",
    "Error",
    "FileSystemError",
    "InternalError",
    "Location",
    "NotFoundError",
    "Progress",
    "Snapshot",
    "SnapshotError",
    "TransferResult",
    "UsageError",
    "compare",
    "export",
    "import_",
    "migrate",
]
