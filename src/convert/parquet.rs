//! Plain Parquet in: one file, or every `*.parquet` file under a directory
//! (a Hugging Face dataset's `data/train-00000-of-00004.parquet` …) in path
//! order, read in record batches and mapped to records by a
//! [`ColumnMapping`](super::ColumnMapping). Only the mapped columns are read.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatchReader;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{Error, Result};
use crate::model::{CollectionSpec, Record};

use super::arrow_rows::{Decoder, Plan};
use super::{ColumnMapping, Lossy, ReadOptions, RecordReader, name_of};

/// Every `*.parquet` file under `dir`, in path order.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Opens one Parquet file for reading `mapping`'s columns.
pub(crate) fn open_file(
    path: &Path,
    mapping: &ColumnMapping,
    batch_rows: usize,
) -> Result<(Plan, ParquetRecordBatchReader)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::Parquet {
        path: path.to_owned(),
        message: format!("{e}; is it a Parquet file?"),
    })?;
    let plan = Plan::resolve(builder.schema(), mapping, path)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), plan.columns());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| Error::Parquet {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    // Column indices of the projected batches.
    let projected = Plan::resolve(&reader.schema(), mapping, path)?;
    Ok((projected, reader))
}

/// Total rows of the files' footers.
fn count_rows(files: &[PathBuf]) -> Option<u64> {
    let mut n = 0u64;
    for f in files {
        let file = File::open(f).ok()?;
        let r = parquet::file::reader::SerializedFileReader::new(file).ok()?;
        n += parquet::file::reader::FileReader::metadata(&r)
            .file_metadata()
            .num_rows() as u64;
    }
    Some(n)
}

/// Reads Parquet files as one collection.
pub struct ParquetReader {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<(PathBuf, Plan, ParquetRecordBatchReader)>,
    first: Plan,
    mapping: ColumnMapping,
    batch_rows: usize,
    decoder: Decoder,
    spec: CollectionSpec,
    /// Applied to the decoder of each file.
    pub(crate) configure: fn(&mut Decoder),
}

impl ParquetReader {
    /// Opens a file, or every Parquet file under a directory.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<ParquetReader> {
        let files = if path.is_dir() {
            let files = files_under(path)?;
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: holds no .parquet file",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.to_owned()]
        };
        let name = options.collection.clone().unwrap_or_else(|| name_of(path));
        Self::from_files(files, name, &options.mapping, options)
    }

    /// Reads `files` as the collection `name`.
    pub(crate) fn from_files(
        files: Vec<PathBuf>,
        name: String,
        mapping: &ColumnMapping,
        options: &ReadOptions,
    ) -> Result<ParquetReader> {
        let (first, reader) = open_file(&files[0], mapping, options.batch_rows)?;
        let mut fields = first.fields.clone();
        for f in &mut fields {
            if f.kind == crate::model::VectorKind::Dense {
                f.metric = options.metric;
            }
        }
        let spec = CollectionSpec {
            name,
            vectors: fields,
            count_hint: count_rows(&files),
            ..CollectionSpec::default()
        };
        Ok(ParquetReader {
            decoder: Decoder::new(&first),
            current: Some((files[0].clone(), first.clone(), reader)),
            files,
            next_file: 1,
            first,
            mapping: mapping.clone(),
            batch_rows: options.batch_rows,
            spec,
            configure: |_| {},
        })
    }

    /// The spec, to adjust before reading.
    pub(crate) fn spec_mut(&mut self) -> &mut CollectionSpec {
        &mut self.spec
    }
}

impl RecordReader for ParquetReader {
    fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        (self.configure)(&mut self.decoder);
        loop {
            let Some((path, plan, reader)) = self.current.as_mut() else {
                return Ok(None);
            };
            match reader.next() {
                Some(batch) => {
                    let batch = batch.map_err(|e| Error::Parquet {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                    return self.decoder.decode(plan, &batch, path).map(Some);
                }
                None => {
                    self.current = None;
                    if let Some(next) = self.files.get(self.next_file).cloned() {
                        self.next_file += 1;
                        let (plan, reader) = open_file(&next, &self.mapping, self.batch_rows)?;
                        if !plan.same_fields(&self.first) {
                            return Err(Error::InvalidData(format!(
                                "{}: its vector columns differ from those of {} (names, kinds or dimensions); convert the files apart",
                                next.display(),
                                self.files[0].display()
                            )));
                        }
                        self.current = Some((next, plan, reader));
                    }
                }
            }
        }
    }

    fn lossy(&self) -> Vec<Lossy> {
        self.first
            .fields
            .iter()
            .zip(&self.decoder.rounded)
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| Lossy {
                collection: self.spec.name.clone(),
                change: "rounded",
                key: f.name.clone(),
                records: *n,
                reason: format!(
                    "vector {:?} was float64 in the input: values float32 cannot hold were rounded to the nearest float32",
                    f.name
                ),
            })
            .collect()
    }
}
