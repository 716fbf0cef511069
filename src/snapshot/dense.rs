//! Dense vector columns encoded straight from records.
//!
//! A dense column (`FixedSizeList<Float32>`, nullable, §4.2) without
//! compression is written as the same column chunk arrow-rs writes for it
//! (§4.6: data pages v1 of about 1 MiB, `PLAIN` values, RLE levels, no
//! statistics, an offset index), but without building an Arrow array or
//! per-value level vectors: a page is its level runs followed by the
//! records' `f32` values copied as they are.

use arrow::array::BooleanBufferBuilder;
use arrow::buffer::{NullBuffer, ScalarBuffer};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType};
use parquet::column::page::{CompressedPage, Page, PageReader, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::error::{Error, Result};
use crate::model::Record;

use super::block::DenseColumn;
use super::columns::dense_value;
use super::manifest::VectorColumn;

/// Most rows in one data page (arrow-rs's default data page row limit).
const PAGE_ROWS: usize = 20_000;

/// An encoded column chunk, offsets relative to its first byte.
pub(crate) struct DenseChunk {
    pub bytes: Bytes,
    pub close: ColumnCloseResult,
}

/// True when `descr` has the levels of a nullable list of required floats,
/// the only shape [`encode`] writes.
pub(crate) fn fits(descr: &ColumnDescPtr) -> bool {
    descr.max_def_level() == 2
        && descr.max_rep_level() == 1
        && descr.physical_type() == parquet::basic::Type::FLOAT
}

/// RLE runs of the RLE/bit-packing hybrid (levels of one page).
struct Runs {
    out: Vec<u8>,
    value: u8,
    count: u64,
}

impl Runs {
    fn new() -> Runs {
        Runs {
            out: Vec::new(),
            value: 0,
            count: 0,
        }
    }

    fn push(&mut self, value: u8, n: u64) {
        if n == 0 {
            return;
        }
        if self.count > 0 && self.value == value {
            self.count += n;
        } else {
            self.flush();
            self.value = value;
            self.count = n;
        }
    }

    fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        // Run header: ULEB128 of `count << 1` (low bit 0: an RLE run), then
        // the value in one byte (bit widths 1 and 2).
        let mut h = self.count << 1;
        loop {
            let b = (h & 0x7f) as u8;
            h >>= 7;
            if h == 0 {
                self.out.push(b);
                break;
            }
            self.out.push(b | 0x80);
        }
        self.out.push(self.value);
        self.count = 0;
    }

    /// Appends the runs with their 4-byte length prefix (data page v1) and resets.
    fn drain_into(&mut self, buf: &mut Vec<u8>) {
        self.flush();
        buf.extend_from_slice(&(self.out.len() as u32).to_le_bytes());
        buf.extend_from_slice(&self.out);
        self.out.clear();
    }
}

fn extend_f32(buf: &mut Vec<u8>, values: &[f32]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: f32 has no padding and any initialised bytes may be read as u8;
        // on a little-endian target these are the PLAIN encoding.
        let bytes = unsafe {
            std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
        };
        buf.extend_from_slice(bytes);
    }
    #[cfg(not(target_endian = "little"))]
    for x in values {
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

fn perr(e: ParquetError) -> Error {
    Error::InvalidData(format!("cannot encode a vector column: {e}"))
}

/// Stand-in page data for serialising page headers: headers depend on the
/// data's length only, and the data itself goes straight into the chunk.
static ZEROS: [u8; 1 << 21] = [0; 1 << 21];

/// Keeps what is written to it, except [`ZEROS`].
struct HeaderSink(Vec<u8>);

impl std::io::Write for HeaderSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.as_ptr() != ZEROS.as_ptr() {
            self.0.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The serialised header of an uncompressed data page v1 (`PLAIN` values,
/// RLE levels, no statistics) of `len` bytes holding `num_values` levels.
fn page_header(len: usize, num_values: u32) -> Result<Vec<u8>> {
    let data = match ZEROS.get(..len) {
        Some(z) => Bytes::from_static(z),
        None => Bytes::from(vec![0u8; len]),
    };
    let page = Page::DataPage {
        buf: data,
        num_values,
        encoding: Encoding::PLAIN,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    let mut sink = TrackedWrite::new(HeaderSink(Vec::new()));
    let spec = SerializedPageWriter::new(&mut sink)
        .write_page(CompressedPage::new(page, len))
        .map_err(perr)?;
    let mut header = sink.into_inner().map_err(perr)?.0;
    // The header comes first; anything after it is the stand-in data.
    header.truncate(spec.bytes_written as usize - len);
    Ok(header)
}

/// Encodes vector slot `slot` of `records` as one column chunk, into `buffer`.
pub(crate) fn encode(
    descr: &ColumnDescPtr,
    v: &VectorColumn,
    slot: usize,
    records: &[Record],
    page_bytes: usize,
    mut out: Vec<u8>,
) -> Result<DenseChunk> {
    let dim = v.field.dimension.unwrap_or(0) as usize;
    let page_rows = (page_bytes / (dim * 4).max(1)).clamp(1, PAGE_ROWS);
    out.clear();
    out.reserve(records.len() * dim * 4 + records.len().div_ceil(page_rows) * 64);
    let mut offsets = OffsetIndexBuilder::new();
    let (mut rep, mut def) = (Runs::new(), Runs::new());
    let (mut levels, mut values) = (Vec::new(), Vec::with_capacity(page_rows));
    let mut header: Option<(usize, u32, Vec<u8>)> = None;
    let (mut num_values, mut count) = (0u64, 0);
    for page in records.chunks(page_rows) {
        let mut page_values = 0u32;
        values.clear();
        for r in page {
            match dense_value(v, slot, r, dim)? {
                Some(x) => {
                    rep.push(0, 1);
                    rep.push(1, dim as u64 - 1);
                    def.push(2, dim as u64);
                    page_values += dim as u32;
                    values.push(x);
                }
                None => {
                    rep.push(0, 1);
                    def.push(0, 1);
                    page_values += 1;
                }
            }
        }
        levels.clear();
        rep.drain_into(&mut levels);
        def.drain_into(&mut levels);
        let len = levels.len() + values.len() * dim * 4;
        let h = match header.take() {
            Some(h) if h.0 == len && h.1 == page_values => h,
            _ => (len, page_values, page_header(len, page_values)?),
        };
        let offset = out.len();
        out.extend_from_slice(&h.2);
        out.extend_from_slice(&levels);
        for x in &values {
            extend_f32(&mut out, x);
        }
        let size = h.2.len() + len;
        header = Some(h);
        offsets.append_offset_and_size(offset as i64, size as i32);
        offsets.append_row_count(page.len() as i64);
        num_values += u64::from(page_values);
        count += 1;
    }
    let total = out.len() as i64;
    let metadata = ColumnChunkMetaData::builder(descr.clone())
        .set_compression(Compression::UNCOMPRESSED)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::PLAIN, Encoding::RLE].iter(),
        ))
        .set_page_encoding_stats(vec![PageEncodingStats {
            page_type: PageType::DATA_PAGE,
            encoding: Encoding::PLAIN,
            count,
        }])
        .set_total_compressed_size(total)
        .set_total_uncompressed_size(total)
        .set_num_values(num_values as i64)
        .set_data_page_offset(0)
        .set_dictionary_page_offset(None)
        .build()
        .map_err(perr)?;
    Ok(DenseChunk {
        bytes: Bytes::from(out),
        close: ColumnCloseResult {
            bytes_written: total as u64,
            rows_written: records.len() as u64,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        },
    })
}

/// Reads ULEB128.
fn uleb128(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Levels as runs of equal values.
#[derive(Default)]
struct LevelRuns {
    runs: Vec<(u8, usize)>,
    /// Current run and what is left of it.
    at: usize,
    left: usize,
}

impl LevelRuns {
    fn push(&mut self, value: u8, n: usize) {
        match self.runs.last_mut() {
            Some((v, c)) if *v == value => *c += n,
            _ if n > 0 => self.runs.push((value, n)),
            _ => {}
        }
    }

    /// Decodes `n` levels of the RLE/bit-packing hybrid of bit width `width`
    /// (at most 8); `None` when the data is short or malformed.
    fn decode(&mut self, mut data: &[u8], width: u32, n: usize) -> Option<()> {
        self.runs.clear();
        let mask = ((1u32 << width) - 1) as u8;
        let mut total = 0;
        while total < n {
            let header = uleb128(&mut data)?;
            let count = usize::try_from(header >> 1).ok()?;
            if header & 1 == 0 {
                let value = if width == 0 {
                    0
                } else {
                    let (&v, rest) = data.split_first()?;
                    data = rest;
                    v
                };
                let count = count.min(n - total);
                self.push(value, count);
                total += count;
            } else {
                let bytes = count.checked_mul(width as usize)?;
                let packed = data.get(..bytes)?;
                data = &data[bytes..];
                let values = (count * 8).min(n - total);
                for j in 0..values {
                    let bit = j * width as usize;
                    let lo = u32::from(packed[bit / 8]);
                    let hi = packed.get(bit / 8 + 1).map_or(0, |&b| u32::from(b));
                    self.push((((lo | hi << 8) >> (bit % 8)) as u8) & mask, 1);
                }
                total += values;
            }
        }
        self.at = 0;
        self.left = self.runs.first().map_or(0, |r| r.1);
        Some(())
    }

    fn peek(&self) -> Option<u8> {
        self.runs.get(self.at).map(|r| r.0)
    }

    /// Consumes `n` levels, true when all of them are `value`.
    fn take(&mut self, value: u8, mut n: usize) -> bool {
        while n > 0 {
            match self.runs.get(self.at) {
                Some(&(v, _)) if v == value => {}
                _ => return false,
            }
            let t = n.min(self.left);
            self.left -= t;
            n -= t;
            if self.left == 0 {
                self.at += 1;
                self.left = self.runs.get(self.at).map_or(0, |r| r.1);
            }
        }
        true
    }
}

fn bit_width(max: i16) -> u32 {
    16 - (max as u16).leading_zeros()
}

/// Appends the little-endian `f32`s of `bytes` (PLAIN values) to `out`.
fn extend_from_plain(out: &mut Vec<f32>, bytes: &[u8]) {
    let n = bytes.len() / 4;
    #[cfg(target_endian = "little")]
    {
        out.reserve(n);
        // SAFETY: `out` has room for `n` more floats, `bytes` holds `4 n` bytes
        // and the two do not overlap; every bit pattern is a valid f32, stored
        // little-endian like PLAIN values.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                out.as_mut_ptr().add(out.len()).cast::<u8>(),
                n * 4,
            );
            out.set_len(out.len() + n);
        }
    }
    #[cfg(not(target_endian = "little"))]
    out.extend(
        bytes[..n * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
}

/// Decodes a dense column chunk of `rows` rows whose pages are data pages v1
/// with `PLAIN` values and RLE levels (what [`encode`] and arrow-rs write
/// without compression) into one contiguous buffer. `None` when the chunk is
/// anything else; the caller then reads it through Arrow, which also reports
/// damage. `chunk_bytes` (the chunk's size) bounds what is allocated ahead.
pub(crate) fn decode(
    pages: &mut dyn PageReader,
    descr: &ColumnDescPtr,
    dim: usize,
    rows: usize,
    chunk_bytes: usize,
) -> std::result::Result<Option<DenseColumn>, ParquetError> {
    if !fits(descr) || dim == 0 {
        return Ok(None);
    }
    let rep_width = bit_width(descr.max_rep_level());
    let def_width = bit_width(descr.max_def_level());
    let mut out = Vec::with_capacity(rows.saturating_mul(dim).min(chunk_bytes / 4));
    let mut valid = BooleanBufferBuilder::new(rows.min(chunk_bytes));
    let mut nulls = 0usize;
    let (mut rep, mut def) = (LevelRuns::default(), LevelRuns::default());
    while let Some(page) = pages.get_next_page()? {
        let Page::DataPage {
            buf,
            num_values,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            ..
        } = page
        else {
            return Ok(None);
        };
        let n = num_values as usize;
        let mut data: &[u8] = &buf;
        for (levels, width) in [(&mut rep, rep_width), (&mut def, def_width)] {
            let Some(len) = data.get(..4) else {
                return Ok(None);
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(encoded) = data.get(4..4 + len) else {
                return Ok(None);
            };
            if levels.decode(encoded, width, n).is_none() {
                return Ok(None);
            }
            data = &data[4 + len..];
        }
        let values = data;
        let mut v = 0usize;
        while let Some(d) = def.peek() {
            match d {
                0 if def.take(0, 1) && rep.take(0, 1) => {
                    out.resize(out.len() + dim, 0.0);
                    valid.append(false);
                    nulls += 1;
                }
                2 if def.take(2, dim) && rep.take(0, 1) && rep.take(1, dim - 1) => {
                    let Some(x) = values.get(v..v + dim * 4) else {
                        return Ok(None);
                    };
                    extend_from_plain(&mut out, x);
                    valid.append(true);
                    v += dim * 4;
                }
                _ => return Ok(None),
            }
        }
        if rep.peek().is_some() {
            return Ok(None);
        }
    }
    if valid.len() != rows {
        return Ok(None);
    }
    Ok(Some(DenseColumn {
        rows,
        dim,
        values: ScalarBuffer::from(out),
        nulls: (nulls > 0).then(|| NullBuffer::new(valid.finish())),
    }))
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::model::{CollectionSpec, IdKind, Record, RecordId, Vector, VectorField};
    use crate::snapshot::columns::from_batch;
    use crate::snapshot::{Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

    /// Pages written directly read back the same through plain arrow-rs and
    /// through the direct decoder, nulls and page boundaries included.
    #[test]
    fn direct_pages_read_the_same_through_arrow() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("snap");
        let dim = 300;
        let records: Vec<Record> = (0..2_500)
            .map(|i| {
                let mut r = Record::dense(
                    RecordId::String(format!("r{i}")),
                    (0..dim).map(|j| (i * dim + j) as f32 * 0.5).collect(),
                );
                if i % 7 == 3 || (100..140).contains(&i) {
                    r.vectors[0] = None;
                }
                r
            })
            .collect();
        let spec = CollectionSpec {
            name: "c".into(),
            id_kind: Some(IdKind::String),
            vectors: vec![VectorField::dense(Some(dim as u32), None)],
            ..CollectionSpec::default()
        };
        let options = WriteOptions {
            row_group_rows: 1_000,
            ..WriteOptions::default()
        };
        let mut w = SnapshotWriter::create(&root, options).unwrap();
        let mut c = w.collection(&spec, None).unwrap();
        c.write(records.clone()).unwrap();
        w.add(c.finish().unwrap());
        w.finish(SourceInfo {
            kind: "test".into(),
            server_version: None,
            endpoint: None,
            location: Default::default(),
        })
        .unwrap();

        let snapshot = Snapshot::open(&root).unwrap();
        let c = &snapshot.manifest().collections[0];
        let direct: Vec<Record> = snapshot.records(c, 333).flat_map(Result::unwrap).collect();
        assert_eq!(direct, records);

        let mut through_arrow = Vec::new();
        for p in &c.parts {
            let file = File::open(snapshot.part_path(c, p)).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                through_arrow
                    .extend(from_batch(&batch.unwrap(), &c.vectors, c.id_kind, "part").unwrap());
            }
        }
        assert_eq!(through_arrow, records);
        assert!(matches!(records[0].vectors[0], Some(Vector::Dense(_))));
    }
}
