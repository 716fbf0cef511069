//! `vecport convert`: the vector dataset formats users already have, read
//! into a snapshot and written from one.
//!
//! Every foreign format is read by a [`RecordReader`], which yields the
//! neutral model's records in batches; the snapshot they go into is written
//! by the same [`SnapshotWriter`] an export uses, so its checksums, counts
//! and manifest are an export's. Writing a foreign format goes the other way
//! through the import pipeline: each output layout is a [`Sink`], so every
//! record is checked against the layout's rules before the first file is
//! written, the change report is an import's, and the files written are
//! counted again at the end. Memory stays bounded on both sides: Parquet is
//! read in record batches, JSON Lines line by line, NumPy arrays row by row.
//!
//! [`Sink`]: crate::connectors::Sink

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{CollectionSpec, EmbeddingModel, Metric, Record};
use crate::snapshot::{Manifest, SnapshotWriter, SourceInfo, WriteOptions};

pub mod arrow_rows;
pub mod jsonl;
pub mod npy;
pub mod output;
pub mod parquet;
pub mod pinecone_datasets;
pub mod pinecone_import;
pub mod vdf;

/// A format `convert` reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A vecport snapshot directory.
    Vecport,
    /// Plain Parquet: one file, or a directory of `*.parquet` files (a Hugging
    /// Face dataset), read with a column mapping; written as one flat table
    /// per collection.
    Parquet,
    /// JSON Lines, one record per line, read with a column mapping.
    Jsonl,
    /// A NumPy `.npy` array of vectors (2-D, float16/32/64), optionally with a
    /// JSON Lines file of the other fields (`--rows`).
    Npy,
    /// The layout of the `pinecone-datasets` package (1.x).
    PineconeDatasets,
    /// Pinecone's bulk-import layout: a directory per namespace of Parquet files.
    PineconeImport,
    /// vector-io's VDF: `VDF_META.json` and Parquet per index and namespace.
    Vdf,
}

impl Format {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Vecport => "vecport",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Npy => "npy",
            Format::PineconeDatasets => "pinecone-datasets",
            Format::PineconeImport => "pinecone-import",
            Format::Vdf => "vdf",
        }
    }

    /// The format the layout of `path` says, if it says one.
    pub fn detect(path: &Path) -> Option<Format> {
        if path.is_dir() {
            if path.join(crate::snapshot::layout::MANIFEST).is_file() {
                return Some(Format::Vecport);
            }
            if path.join(pinecone_datasets::METADATA_FILE).is_file()
                && path.join(pinecone_datasets::DOCUMENTS_DIR).is_dir()
            {
                return Some(Format::PineconeDatasets);
            }
            if path.join(vdf::META_FILE).is_file() {
                return Some(Format::Vdf);
            }
            if !parquet::files_under(path).ok()?.is_empty() {
                return Some(Format::Parquet);
            }
            return None;
        }
        let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Format::Parquet),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "npy" => Some(Format::Npy),
            _ => None,
        }
    }
}

/// Where a record's metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MetadataSource {
    /// A column or key named `metadata` (a JSON object, or its text) when
    /// there is one, and every column not mapped to anything else as a key.
    #[default]
    Rest,
    /// These columns or keys, each a metadata key of the same name.
    Columns(Vec<String>),
    /// This column or key, holding a JSON object or its text.
    Json(String),
}

/// Which column or key of the input holds which part of a record.
#[derive(Debug, Clone, Default)]
pub struct ColumnMapping {
    /// The id; `None`: a column named `id` if there is one, else ids are
    /// generated: the record's position in the input (`"0"`, `"1"`, …).
    pub id: Option<String>,
    /// Dense vector columns and the vector field each becomes; empty: the one
    /// column holding lists of floats, as the unnamed field.
    pub vectors: Vec<(String, String)>,
    /// A sparse vector column (a struct of `indices` and `values`) and its field.
    pub sparse: Option<(String, String)>,
    /// The document text; `None`: a column named `document`, if any.
    pub document: Option<String>,
    /// The URI; `None`: a column named `uri`, if any.
    pub uri: Option<String>,
    /// The metadata.
    pub metadata: MetadataSource,
    /// The namespace (empty or null: the default namespace); `None`: a
    /// column named `namespace`, if any.
    pub namespace: Option<String>,
    /// Columns to leave out.
    pub ignore: Vec<String>,
}

/// How inputs are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Column mapping of `parquet`, `jsonl` and `npy` inputs.
    pub mapping: ColumnMapping,
    /// The metric the vectors are searched with.
    pub metric: Option<Metric>,
    /// The collection's name in the snapshot (default: from the input).
    pub collection: Option<String>,
    /// The JSON Lines file of an `npy` input's other fields.
    pub rows: Option<PathBuf>,
    /// Records per batch.
    pub batch_rows: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            mapping: ColumnMapping::default(),
            metric: None,
            collection: None,
            rows: None,
            batch_rows: 4096,
        }
    }
}

/// A step of reading that lost something, for every record it applies to:
/// one line of the change report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lossy {
    /// The collection.
    pub collection: String,
    /// What was done (`rounded`).
    pub change: &'static str,
    /// The vector field or metadata key it applies to.
    pub key: String,
    /// The records it changed.
    pub records: u64,
    /// What was lost.
    pub reason: String,
}

/// Reads one collection of an input, in batches.
pub trait RecordReader: Send {
    /// The collection: its name, vector fields, metric, notes.
    fn spec(&self) -> &CollectionSpec;
    /// The embedding model the input names, if it names one.
    fn embedding_model(&self) -> Option<EmbeddingModel> {
        None
    }
    /// The next batch of records; `None` after the last one.
    fn next_batch(&mut self) -> Result<Option<Vec<Record>>>;
    /// What reading lost so far (complete once `next_batch` returned `None`).
    fn lossy(&self) -> Vec<Lossy>;
}

/// Opens the collections of an input in `format`.
pub fn open_input(
    format: Format,
    path: &Path,
    options: &ReadOptions,
) -> Result<Vec<Box<dyn RecordReader>>> {
    if !path.exists() {
        return Err(Error::Usage(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    match format {
        Format::Parquet => Ok(vec![Box::new(parquet::ParquetReader::open(path, options)?)]),
        Format::Jsonl => Ok(vec![Box::new(jsonl::JsonlReader::open(path, options)?)]),
        Format::Npy => Ok(vec![Box::new(npy::NpyReader::open(path, options)?)]),
        Format::PineconeDatasets => Ok(vec![Box::new(pinecone_datasets::open(path, options)?)]),
        Format::Vdf => vdf::open(path, options),
        Format::Vecport | Format::PineconeImport => Err(Error::Usage(format!(
            "{} is not read by `vecport convert` (it reads parquet, jsonl, npy, pinecone-datasets and vdf into a snapshot)",
            format.name()
        ))),
    }
}

/// What a conversion into a snapshot did.
#[derive(Debug)]
pub struct Converted {
    /// The snapshot's manifest.
    pub manifest: Manifest,
    /// What was lost on the way, one entry per collection and rule.
    pub lossy: Vec<Lossy>,
}

/// Batches read ahead of the snapshot writer.
const AHEAD: usize = 4;

/// Writes the collections `readers` yield into a new snapshot at `out`,
/// through the snapshot writer an export uses. A failure removes what was
/// written (an empty directory given stays empty).
pub fn to_snapshot(
    readers: Vec<Box<dyn RecordReader>>,
    out: &Path,
    source: SourceInfo,
    embedding_model: Option<EmbeddingModel>,
    write: WriteOptions,
    progress: &dyn crate::pipeline::Observer,
) -> Result<Converted> {
    let existed = out.exists();
    let mut writer = SnapshotWriter::create(out, write)?;
    let result = (|| {
        let mut lossy = Vec::new();
        for reader in readers {
            let spec = reader.spec().clone();
            let model = embedding_model.clone().or_else(|| reader.embedding_model());
            let mut collection = writer.collection(&spec, model)?;
            progress.start(&spec.name, spec.count_hint);
            // The input is read on its own thread, a few batches ahead.
            let (tx, rx) = sync_channel::<Result<Vec<Record>>>(AHEAD);
            let handle = std::thread::spawn(move || {
                let mut reader = reader;
                loop {
                    match reader.next_batch() {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
                reader.lossy()
            });
            let mut failed = None;
            for batch in rx.iter() {
                let written = batch.and_then(|b| {
                    let n = b.len() as u64;
                    collection.write(b).map(|()| n)
                });
                match written {
                    Ok(n) => progress.advance(n),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            drop(rx);
            let read_lossy = handle
                .join()
                .map_err(|_| Error::InvalidData("reading the input failed unexpectedly".into()))?;
            if let Some(e) = failed {
                return Err(e);
            }
            let mut manifest = collection.finish()?;
            for l in &read_lossy {
                manifest.notes.push(format!(
                    "{} records {} in {:?}: {}",
                    l.records, l.change, l.key, l.reason
                ));
            }
            lossy.extend(read_lossy);
            progress.finish(&spec.name);
            writer.add(manifest);
        }
        let manifest = writer.finish(source)?;
        Ok(Converted { manifest, lossy })
    })();
    if result.is_err() {
        remove_partial(out, existed);
    }
    result
}

/// Writes the change report of what reading lost (nothing when nothing was).
pub fn write_lossy_report(path: &Path, target: &str, lossy: &[Lossy]) -> Result<Option<PathBuf>> {
    if lossy.is_empty() {
        return Ok(None);
    }
    #[derive(Serialize)]
    struct Line<'a> {
        collection: &'a str,
        target: &'a str,
        change: &'a str,
        key: &'a str,
        records: u64,
        reason: &'a str,
    }
    let mut text = Vec::new();
    for l in lossy {
        let line = Line {
            collection: &l.collection,
            target,
            change: l.change,
            key: &l.key,
            records: l.records,
            reason: &l.reason,
        };
        serde_json::to_writer(&mut text, &line)
            .map_err(|e| Error::InvalidData(format!("cannot encode the change report: {e}")))?;
        text.push(b'\n');
    }
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(&text).map_err(|e| Error::io(path, e))?;
    Ok(Some(path.to_owned()))
}

/// Removes what a failed conversion wrote into `out`: all of it when it did
/// not exist before, else what it holds (it was empty).
pub(crate) fn remove_partial(out: &Path, existed: bool) {
    if !existed {
        let _ = fs::remove_dir_all(out);
        return;
    }
    if let Ok(entries) = fs::read_dir(out) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// The name a collection gets from an input path: its file stem.
pub(crate) fn name_of(path: &Path) -> String {
    let p = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let name = if p.is_dir() {
        p.file_name()
    } else {
        p.file_stem()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "collection".to_owned())
}

/// An id generated for the record at `position` of an input without ids:
/// its position, counted from 0 in reading order, as decimal text.
pub fn generated_id(position: u64) -> crate::model::RecordId {
    crate::model::RecordId::String(position.to_string())
}

/// Counts the values of a float64 vector that float32 cannot hold exactly.
pub(crate) fn rounds(values: &[f64]) -> bool {
    values
        .iter()
        .any(|v| (*v as f32) as f64 != *v && v.is_finite())
}
