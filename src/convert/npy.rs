//! NumPy in: a 2-D `.npy` array (rows × dimension) of float16, float32 or
//! float64, either byte order, read in chunks of rows; each row is one
//! record's vector. The other fields come from a JSON Lines file read in
//! step (`--rows FILE`: line i describes row i, by the same column mapping
//! as a `jsonl` input); without one, ids are the row numbers.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use npyz::{DType, Endianness, NpyFile, Order, TypeChar};

use crate::error::{Error, Result};
use crate::model::{CollectionSpec, Record, Vector, VectorField};

use super::jsonl::{KeyPlan, Lines, rounded_lossy};
use super::{Lossy, ReadOptions, RecordReader, generated_id, name_of};

/// IEEE 754 half precision, as Arrow holds it.
type F16 = <arrow::datatypes::Float16Type as arrow::datatypes::ArrowPrimitiveType>::Native;

/// Reads an `.npy` array (and its rows file) as one collection.
pub struct NpyReader {
    path: PathBuf,
    data: BufReader<File>,
    rows: u64,
    dim: usize,
    size: usize,
    kind: (TypeChar, Endianness),
    position: u64,
    companion: Option<(Lines, KeyPlan)>,
    rounded: u64,
    batch_rows: usize,
    buf: Vec<u8>,
    spec: CollectionSpec,
}

impl NpyReader {
    /// Opens `path`, and `options.rows` beside it.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<NpyReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let npy = NpyFile::new(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            Error::InvalidData(format!("{}: not a NumPy .npy file: {e}", path.display()))
        })?;
        let bad = |what: String| Error::Usage(format!("{}: {what}", path.display()));
        let (rows, dim) = match npy.shape() {
            [rows, dim] => (*rows, *dim as usize),
            other => {
                return Err(bad(format!(
                    "is an array of shape {other:?}; vecport reads 2-D arrays of vectors (rows × dimension)"
                )));
            }
        };
        if npy.order() == Order::Fortran {
            return Err(bad(
                "is stored in Fortran order, which cannot be read row by row; save it with np.save(path, np.ascontiguousarray(a))".into(),
            ));
        }
        let kind = match npy.dtype() {
            DType::Plain(t)
                if t.type_char() == TypeChar::Float && matches!(t.size_field(), 2 | 4 | 8) =>
            {
                (t.type_char(), t.endianness(), t.size_field() as usize)
            }
            other => {
                return Err(bad(format!(
                    "holds {}, not float16, float32 or float64 values",
                    other.descr()
                )));
            }
        };
        let (type_char, endianness, size) = kind;
        let mut field = VectorField::dense(Some(dim as u32), options.metric);
        field.source_datatype = match size {
            2 => Some("float16".to_owned()),
            8 => Some("float64".to_owned()),
            _ => None,
        };
        let companion = match &options.rows {
            None => None,
            Some(p) => {
                let mut lines = Lines::open(p)?;
                let first = lines.next_object()?;
                let plan = match &first {
                    Some((_, o)) => KeyPlan::resolve(&options.mapping, o, false, p)?,
                    None => {
                        return Err(Error::InvalidData(format!(
                            "{}: holds no lines, but {} has {rows} rows",
                            p.display(),
                            path.display()
                        )));
                    }
                };
                // Read again from the start.
                Some((Lines::open(p)?, plan))
            }
        };
        let spec = CollectionSpec {
            name: options.collection.clone().unwrap_or_else(|| name_of(path)),
            vectors: vec![field],
            count_hint: Some(rows),
            ..CollectionSpec::default()
        };
        Ok(NpyReader {
            path: path.to_owned(),
            data: npy.into_inner(),
            rows,
            dim,
            size,
            kind: (type_char, endianness),
            position: 0,
            companion,
            rounded: 0,
            batch_rows: options.batch_rows,
            buf: Vec::new(),
            spec,
        })
    }

    fn row_values(&self, bytes: &[u8]) -> (Vec<f32>, bool) {
        let big = self.kind.1 == Endianness::Big;
        let mut lost = false;
        let values = match self.size {
            2 => bytes
                .chunks_exact(2)
                .map(|b| {
                    let bits = if big {
                        u16::from_be_bytes([b[0], b[1]])
                    } else {
                        u16::from_le_bytes([b[0], b[1]])
                    };
                    F16::from_bits(bits).to_f32()
                })
                .collect(),
            8 => bytes
                .chunks_exact(8)
                .map(|b| {
                    let a: [u8; 8] = b.try_into().expect("8 bytes");
                    let x = if big {
                        f64::from_be_bytes(a)
                    } else {
                        f64::from_le_bytes(a)
                    };
                    lost |= (x as f32) as f64 != x && x.is_finite();
                    x as f32
                })
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|b| {
                    let a: [u8; 4] = b.try_into().expect("4 bytes");
                    if big {
                        f32::from_be_bytes(a)
                    } else {
                        f32::from_le_bytes(a)
                    }
                })
                .collect(),
        };
        (values, lost)
    }
}

impl RecordReader for NpyReader {
    fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        let left = self.rows - self.position;
        if left == 0 {
            if let Some((lines, _)) = &mut self.companion
                && lines.next_object()?.is_some()
            {
                return Err(lines.invalid(format!(
                    "is beyond the {} rows of {}: the rows file has more lines than the array has rows",
                    self.rows,
                    self.path.display()
                )));
            }
            return Ok(None);
        }
        let n = left.min(self.batch_rows as u64) as usize;
        let row_bytes = self.dim * self.size;
        self.buf.resize(n * row_bytes, 0);
        self.data.read_exact(&mut self.buf).map_err(|e| {
            Error::InvalidData(format!(
                "{}: ends before its {} rows ({e}); the file is truncated",
                self.path.display(),
                self.rows
            ))
        })?;
        let buf = std::mem::take(&mut self.buf);
        let mut out = Vec::with_capacity(n);
        for (i, bytes) in buf.chunks_exact(row_bytes).enumerate() {
            let position = self.position + i as u64;
            let (values, lost) = self.row_values(bytes);
            if lost {
                self.rounded += 1;
            }
            let mut record = match &mut self.companion {
                None => Record::dense(generated_id(position), Vec::new()),
                Some((lines, plan)) => {
                    let Some((_, object)) = lines.next_object()? else {
                        return Err(Error::InvalidData(format!(
                            "{}: has {} rows, but the rows file ends after {position} lines",
                            self.path.display(),
                            self.rows
                        )));
                    };
                    plan.record(object, position, &mut [])
                        .map_err(|e| lines.invalid(e))?
                }
            };
            record.vectors = vec![Some(Vector::Dense(values))];
            out.push(record);
        }
        self.buf = buf;
        self.position += n as u64;
        Ok(Some(out))
    }

    fn lossy(&self) -> Vec<Lossy> {
        rounded_lossy(
            &self.spec,
            &[("the array's rows".to_owned(), String::new())],
            &[self.rounded],
            "float64 values",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `.npy` file of `rows` × `dim` values of type `descr`, each `bytes`.
    fn npy(descr: &str, shape: (usize, usize), data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
            shape.0, shape.1
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn read_all(bytes: Vec<u8>) -> (Vec<Record>, Vec<Lossy>, CollectionSpec) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        std::fs::write(&path, bytes).unwrap();
        let options = ReadOptions {
            batch_rows: 2,
            ..ReadOptions::default()
        };
        let mut r = NpyReader::open(&path, &options).unwrap();
        let mut out = Vec::new();
        while let Some(b) = r.next_batch().unwrap() {
            out.extend(b);
        }
        (out, r.lossy(), r.spec().clone())
    }

    #[test]
    fn float16_float64_and_big_endian_rows_become_float32_vectors() {
        let halves: Vec<u8> = [1.0f32, -0.5, 2.0, 0.25, 3.0, 4.0]
            .iter()
            .flat_map(|x| F16::from_f32(*x).to_bits().to_le_bytes())
            .collect();
        let (records, lossy, spec) = read_all(npy("<f2", (3, 2), &halves));
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].vectors[0], Some(Vector::Dense(vec![3.0, 4.0])));
        assert_eq!(records[1].id, generated_id(1));
        assert_eq!(spec.vectors[0].source_datatype.as_deref(), Some("float16"));
        assert!(lossy.is_empty(), "float16 widens exactly");
        let doubles: Vec<u8> = [0.1f64, 0.5].iter().flat_map(|x| x.to_be_bytes()).collect();
        let (records, lossy, _) = read_all(npy(">f8", (1, 2), &doubles));
        assert_eq!(
            records[0].vectors[0],
            Some(Vector::Dense(vec![0.1f32, 0.5]))
        );
        assert_eq!(lossy.len(), 1);
        assert_eq!(lossy[0].records, 1, "0.1 is rounded");
    }

    #[test]
    fn a_truncated_array_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.npy");
        std::fs::write(&path, npy("<f4", (4, 2), &[0u8; 12])).unwrap();
        let mut r = NpyReader::open(&path, &ReadOptions::default()).unwrap();
        let e = r.next_batch().unwrap_err().to_string();
        assert!(e.contains("short.npy") && e.contains("truncated"), "{e}");
    }
}
