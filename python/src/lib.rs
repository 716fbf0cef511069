//! `vecport._native`: the native half of the Python package. The commands
//! run through the library's [`vecport::cli::run_for_program`], with the
//! command line's own options, defaults and checks; snapshots are read with
//! the library's reader and handed to Python through the Arrow C stream
//! interface. The pure-Python half (`python/vecport/`) turns keywords into
//! options and results into objects.

use std::ffi::OsString;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use serde_json::{Value, json};
use vecport::cli::Outcome;
use vecport::error::Category;
use vecport::pipeline::Observer;
use vecport::snapshot::{CollectionManifest, Snapshot};

/// The exception class (in `vecport._errors`) of an error: one per exit code
/// of the command line.
fn class_of(err: &anyhow::Error) -> &'static str {
    match err
        .chain()
        .find_map(|e| e.downcast_ref::<vecport::Error>())
        .map(vecport::Error::category)
    {
        Some(Category::Usage) => "UsageError",
        Some(Category::Snapshot) => "SnapshotError",
        Some(Category::Connection) => "ConnectionError",
        Some(Category::Auth) => "CredentialsError",
        Some(Category::NotFound) => "NotFoundError",
        Some(Category::Data) => "DataError",
        Some(Category::Io) => "FileSystemError",
        Some(Category::Busy) => "BusyError",
        Some(Category::Internal) => "InternalError",
        None => "Error",
    }
}

/// `err` as the Python exception of its class, its message scrubbed of
/// secrets like every message of the command line.
fn to_py(py: Python<'_>, err: anyhow::Error) -> PyErr {
    let message = vecport::redact::scrub(&format!("{err:#}")).into_owned();
    raise(py, class_of(&err), message)
}

fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py
        .import("vecport._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message,)))
    {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}

/// A JSON value as the Python object `json.loads` makes of it.
fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| raise(py, "InternalError", format!("cannot encode a result: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tells a Python callable of a transfer's progress:
/// `callback(collection, done, total)`, `total` being `None` when unknown.
/// The first exception it raises is kept, and raised when the transfer ends;
/// it is not called again after one.
struct Progress {
    callback: Option<Py<PyAny>>,
    state: Mutex<(String, u64, Option<u64>)>,
    failed: Mutex<Option<PyErr>>,
}

impl Progress {
    fn new(callback: Option<Py<PyAny>>) -> Progress {
        Progress {
            callback,
            state: Mutex::new((String::new(), 0, None)),
            failed: Mutex::new(None),
        }
    }

    fn tell(&self, update: impl FnOnce(&mut (String, u64, Option<u64>))) {
        let Some(callback) = &self.callback else {
            return;
        };
        let (collection, done, total) = {
            let mut state = lock(&self.state);
            update(&mut state);
            state.clone()
        };
        if lock(&self.failed).is_some() {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = callback.call1(py, (collection, done, total)) {
                lock(&self.failed).get_or_insert(e);
            }
        });
    }
}

impl Observer for Progress {
    fn start(&self, collection: &str, total: Option<u64>) {
        self.tell(|s| *s = (collection.to_owned(), 0, total));
    }

    fn advance(&self, n: u64) {
        self.tell(|s| s.1 += n);
    }

    fn finish(&self, _collection: &str) {
        self.tell(|_| {});
    }
}

/// Runs `vecport ARGS…` (export, import, migrate or compare) without the
/// GIL, progress told to `progress`; the result as a dict.
#[pyfunction]
#[pyo3(signature = (args, progress=None))]
fn run(py: Python<'_>, args: Vec<String>, progress: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
    let observer = Progress::new(progress);
    let started = Instant::now();
    let outcome = py.detach(|| vecport::cli::run_for_program(&args, &observer));
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = lock(&observer.failed).take() {
        return Err(e);
    }
    let outcome = outcome.map_err(|e| to_py(py, e))?;
    to_python(py, &describe(outcome, seconds))
}

/// What a command produced, as JSON.
fn describe(outcome: Outcome, seconds: f64) -> Value {
    let exported = |m: &vecport::snapshot::Manifest| {
        json!({
            "records": m.collections.iter().map(|c| c.record_count).sum::<u64>(),
            "collections": m.collections.iter().map(|c| json!({
                "name": c.name,
                "records": c.record_count,
                "notes": c.notes,
            })).collect::<Vec<_>>(),
            "manifest": m,
        })
    };
    let imported = |r: &vecport::pipeline::ImportReport| {
        json!({
            "records": r.collections.iter().map(|c| c.records).sum::<u64>(),
            "collections": r.collections.iter().map(|c| json!({
                "name": c.source,
                "target": c.target,
                "records": c.records,
                "target_count": c.target_count,
                "notes": c.notes,
                "changes": c.changes.iter().map(|(kind, n)| {
                    (kind.to_string(), json!(n))
                }).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "changes": r.changes,
        })
    };
    let mut value = match outcome {
        Outcome::Exported(m) => exported(&m),
        Outcome::Imported(r) => imported(&r),
        Outcome::Migrated(m) => {
            let mut v = imported(&m.report);
            v["manifest"] = json!(m.manifest);
            v["via"] = json!(m.via.to_string());
            v
        }
        Outcome::Compared(c) => return json!(c),
    };
    value["seconds"] = json!(seconds);
    value
}

/// Runs the command line with `argv` (the program name first) and returns
/// its exit code: the `vecport` command the package installs.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| vecport::cli::main_from(argv))
}

/// The long options `run` takes for `command`, global ones included.
#[pyfunction]
fn long_options(command: &str) -> Vec<String> {
    vecport::cli::long_options(command)
}

/// The version of vecport.
#[pyfunction]
fn version() -> String {
    vecport::snapshot::manifest::Producer::this().version
}

/// An opened snapshot: its manifest passed its checksum and validation.
#[pyclass(frozen, module = "vecport._native")]
struct NativeSnapshot {
    inner: Arc<Snapshot>,
}

#[pymethods]
impl NativeSnapshot {
    #[new]
    fn new(py: Python<'_>, location: String) -> PyResult<NativeSnapshot> {
        let inner = py
            .detach(|| {
                vecport::storage::Location::parse(&location).and_then(|l| Snapshot::open_at(&l))
            })
            .map_err(|e| to_py(py, e.into()))?;
        Ok(NativeSnapshot {
            inner: Arc::new(inner),
        })
    }

    /// The manifest as JSON text.
    fn manifest_json(&self, py: Python<'_>) -> PyResult<String> {
        serde_json::to_string(self.inner.manifest()).map_err(|e| {
            raise(
                py,
                "InternalError",
                format!("cannot encode the manifest: {e}"),
            )
        })
    }

    /// The names of the collections, in manifest order.
    fn collections(&self) -> Vec<String> {
        self.inner
            .manifest()
            .collections
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Recomputes every checksum and row count (and decodes every row when
    /// `deep`) without the GIL: the report `vecport verify --json` prints.
    #[pyo3(signature = (deep=false))]
    fn verify(&self, py: Python<'_>, deep: bool) -> PyResult<Py<PyAny>> {
        let snapshot = self.inner.clone();
        let report = py.detach(move || {
            if deep {
                snapshot.verify_deep(&snapshot.manifest().collections.iter().collect::<Vec<_>>())
            } else {
                snapshot.verify()
            }
        });
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        to_python(
            py,
            &json!({
                "ok": report.is_ok(),
                "manifest_ok": true,
                "files": report.files,
                "bytes": report.bytes,
                "rows": report.rows,
                "decoded_rows": deep.then_some(report.decoded),
                "problems": problems,
                "notes": report.notes,
            }),
        )
    }

    /// The rows of `collection` (the only one when `None`) as a stream of
    /// Arrow record batches of at most `batch_rows` rows.
    #[pyo3(signature = (collection=None, batch_rows=16384))]
    fn stream(
        &self,
        py: Python<'_>,
        collection: Option<String>,
        batch_rows: usize,
    ) -> PyResult<ArrowStream> {
        let names = self.collections();
        let index = match &collection {
            Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
                raise(
                    py,
                    "NotFoundError",
                    format!(
                        "the snapshot at {} has no collection `{name}`; it has: {}",
                        self.inner.root(),
                        names.join(", ")
                    ),
                )
            })?,
            None if names.len() == 1 => 0,
            None => {
                return Err(raise(
                    py,
                    "UsageError",
                    format!(
                        "the snapshot at {} holds {} collections ({}); name one with collection=",
                        self.inner.root(),
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
        };
        let snapshot = self.inner.clone();
        let reader = py
            .detach(move || Parts::new(snapshot, index, batch_rows.max(1)))
            .map_err(|e| to_py(py, e))?;
        Ok(ArrowStream {
            reader: Mutex::new(Some(reader)),
        })
    }
}

/// A stream of record batches, handed to Arrow consumers (pyarrow, Polars,
/// DuckDB) once through `__arrow_c_stream__`.
#[pyclass(frozen, module = "vecport._native")]
struct ArrowStream {
    reader: Mutex<Option<Parts>>,
}

#[pymethods]
impl ArrowStream {
    /// The Arrow PyCapsule interface: a capsule holding an
    /// `ArrowArrayStream`. The batches are exported as they are decoded,
    /// without copying; the stream can be consumed once.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The stream's own schema is the only one offered, as the interface allows.
        let _ = requested_schema;
        let reader = lock(&self.reader)
            .take()
            .ok_or_else(|| raise(py, "UsageError", "this stream was consumed already".into()))?;
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// The record batches of one collection's part files, in manifest order,
/// read one at a time: at most one batch of each column is decoded at once.
struct Parts {
    snapshot: Arc<Snapshot>,
    collection: usize,
    next: usize,
    current: Option<ParquetRecordBatchReader>,
    schema: SchemaRef,
    batch_rows: usize,
}

impl Parts {
    fn new(snapshot: Arc<Snapshot>, collection: usize, batch_rows: usize) -> anyhow::Result<Parts> {
        let c = &snapshot.manifest().collections[collection];
        let schema = match c.parts.first() {
            Some(_) => open_part(&snapshot, c, 0, batch_rows)?.schema(),
            None => vecport::snapshot::columns::arrow_schema(&c.vectors),
        };
        Ok(Parts {
            snapshot,
            collection,
            next: 0,
            current: None,
            schema,
            batch_rows,
        })
    }

    fn advance(&mut self) -> anyhow::Result<Option<RecordBatch>> {
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next() {
                    Some(batch) => {
                        let c = &self.snapshot.manifest().collections[self.collection];
                        let path = self.snapshot.part_path(c, &c.parts[self.next - 1]);
                        return Ok(Some(batch.map_err(|e| invalid(&path, e))?));
                    }
                    None => self.current = None,
                }
            }
            let c = &self.snapshot.manifest().collections[self.collection];
            if self.next >= c.parts.len() {
                return Ok(None);
            }
            let reader = open_part(&self.snapshot, c, self.next, self.batch_rows)?;
            if reader.schema().fields() != self.schema.fields() {
                let path = self.snapshot.part_path(c, &c.parts[self.next]);
                anyhow::bail!(vecport::Error::InvalidSnapshot {
                    file: path,
                    message: format!(
                        "its columns differ from those of the collection's first part, so one stream cannot hold both; read the parts one by one with pyarrow.parquet (first part: {:?}, this part: {:?})",
                        self.schema.fields(),
                        reader.schema().fields()
                    ),
                });
            }
            self.current = Some(reader);
            self.next += 1;
        }
    }
}

fn invalid(path: &std::path::Path, e: impl std::fmt::Display) -> vecport::Error {
    vecport::Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn open_part(
    snapshot: &Snapshot,
    c: &CollectionManifest,
    index: usize,
    batch_rows: usize,
) -> anyhow::Result<ParquetRecordBatchReader> {
    let path = snapshot.part_path(c, &c.parts[index]);
    let file = File::open(&path).map_err(|cause| vecport::Error::Io {
        path: path.clone(),
        cause,
    })?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(batch_rows).build())
        .map_err(|e| invalid(&path, e))?)
}

impl Iterator for Parts {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.advance()
            .map_err(|e| {
                ArrowError::ExternalError(
                    vecport::redact::scrub(&format!("{e:#}"))
                        .into_owned()
                        .into(),
                )
            })
            .transpose()
    }
}

impl RecordBatchReader for Parts {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    vecport::cli::return_large_buffers();
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(long_options, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_class::<NativeSnapshot>()?;
    m.add_class::<ArrowStream>()?;
    Ok(())
}
