//! Rows read from a part, kept column by column (`spec/FORMAT.md` §4, §6).
//!
//! A [`RecordBlock`] is what the reader hands out: ids, namespaces, metadata,
//! documents and URIs as Arrow string arrays (one text buffer plus offsets
//! each) and every dense vector column as one contiguous `f32` buffer, so a
//! row group costs a handful of allocations whatever its row count. Every
//! check of §6 runs when a block is built; rows become [`Record`]s only when
//! asked, one at a time ([`RecordBlock::record`], or
//! [`RecordBlock::read_into`] reusing a record's buffers) or all at once.

use arrow::array::{
    Array, AsArray, FixedSizeListArray, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{Float32Type, UInt32Type};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::model::{IdKind, Metadata, Record, RecordId, SparseVector, Vector, VectorKind};

use super::columns::vector_type;
use super::layout::{COL_DOCUMENT, COL_ID, COL_METADATA, COL_NAMESPACE, COL_URI};
use super::manifest::VectorColumn;

/// One dense vector column of a block: `rows × dim` values, a null row's
/// values zero.
#[derive(Debug, Clone)]
pub(crate) struct DenseColumn {
    pub rows: usize,
    pub dim: usize,
    pub values: ScalarBuffer<f32>,
    pub nulls: Option<NullBuffer>,
}

impl DenseColumn {
    fn get(&self, row: usize) -> Option<&[f32]> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return None;
        }
        self.values.get(row * self.dim..(row + 1) * self.dim)
    }

    fn slice(&self, offset: usize, len: usize) -> DenseColumn {
        DenseColumn {
            rows: len,
            dim: self.dim,
            values: self.values.slice(offset * self.dim, len * self.dim),
            nulls: self.nulls.as_ref().map(|n| n.slice(offset, len)),
        }
    }
}

/// The values of one vector field.
#[derive(Debug, Clone)]
enum Values {
    Dense(DenseColumn),
    /// `Struct<indices: List<UInt32>, values: List<Float32>>`, lengths checked.
    Sparse(StructArray),
    /// `List<FixedSizeList<Float32>>`.
    Multi(ListArray),
}

/// Rows of one collection, column by column; every row passed the checks of
/// `spec/FORMAT.md` §6 (ids parse per the collection's id kind, metadata is
/// a JSON object, vector columns have the manifest's types and shapes).
///
/// Slicing ([`RecordBlock::slice`]) shares the buffers.
#[derive(Debug, Clone)]
pub struct RecordBlock {
    id_kind: IdKind,
    ids: StringArray,
    namespaces: StringArray,
    metadata: StringArray,
    documents: StringArray,
    uris: StringArray,
    vectors: Vec<Values>,
    /// The part the rows come from, for errors.
    at: std::sync::Arc<str>,
    /// Vector values stored as float64 that lost bits as float32; carried
    /// by the block that starts at row 0 of a row group.
    lossy: u64,
}

impl RecordBlock {
    /// Builds a block from a record batch read from a part and checks every
    /// row. `direct[i]`, when set, holds vector field `i` already decoded
    /// (the batch then need not have that column). `at` names the part in
    /// errors.
    pub(crate) fn new(
        batch: &RecordBatch,
        vectors: &[VectorColumn],
        id_kind: IdKind,
        at: &str,
        mut direct: Vec<Option<DenseColumn>>,
    ) -> Result<RecordBlock> {
        let bad = |message: String| Error::InvalidSnapshot {
            file: at.into(),
            message,
        };
        let string_col = |name: &str| -> Result<StringArray> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .cloned()
                .ok_or_else(|| bad(format!("column `{name}` is missing or not UTF-8")))
        };
        let rows = batch.num_rows();
        let ids = string_col(COL_ID)?;
        if ids.null_count() > 0 {
            let row = (0..rows).find(|&r| ids.is_null(r)).unwrap_or(0);
            return Err(bad(format!("row {row} has a null id")));
        }
        if id_kind != IdKind::String {
            for text in ids.iter().flatten() {
                if RecordId::parse(text, id_kind).is_none() {
                    return Err(bad(format!(
                        "id {text:?} is not a valid {} id",
                        kind_name(id_kind)
                    )));
                }
            }
        }
        let metadata = string_col(COL_METADATA)?;
        for (row, json) in metadata.iter().enumerate() {
            if let Some(json) = json
                && let Err(e) = check_object(json)
            {
                return Err(bad(format!(
                    "record {:?}: metadata is not a JSON object: {e}",
                    ids.value(row)
                )));
            }
        }

        direct.resize(vectors.len(), None);
        let mut values = Vec::with_capacity(vectors.len());
        for (v, direct) in vectors.iter().zip(direct) {
            if let Some(d) = direct {
                if d.rows != rows
                    || d.values.len() != rows * d.dim
                    || d.nulls.as_ref().is_some_and(|n| n.len() != rows)
                {
                    return Err(bad(format!(
                        "vector column `{}` has {} rows, the other columns {rows}",
                        v.column, d.rows
                    )));
                }
                values.push(Values::Dense(d));
                continue;
            }
            let col = batch
                .column_by_name(&v.column)
                .ok_or_else(|| bad(format!("vector column `{}` is missing", v.column)))?;
            let expected = vector_type(v.field.kind, v.field.dimension);
            if col.data_type() != &expected {
                return Err(bad(format!(
                    "vector column `{}` has type {}, the manifest says {expected}",
                    v.column,
                    col.data_type()
                )));
            }
            values.push(match v.field.kind {
                VectorKind::Dense => Values::Dense(dense_of(col.as_fixed_size_list())),
                VectorKind::Sparse => {
                    let s = col.as_struct();
                    let (indices, vals) =
                        (s.column(0).as_list::<i32>(), s.column(1).as_list::<i32>());
                    if let Some(row) = (0..rows)
                        .find(|&r| s.is_valid(r) && indices.value_length(r) != vals.value_length(r))
                    {
                        return Err(bad(format!(
                            "record {:?}: sparse vector {:?} has {} indices but {} values",
                            ids.value(row),
                            v.field.name,
                            indices.value_length(row),
                            vals.value_length(row)
                        )));
                    }
                    Values::Sparse(s.clone())
                }
                VectorKind::Multi => Values::Multi(col.as_list::<i32>().clone()),
            });
        }
        Ok(RecordBlock {
            id_kind,
            ids,
            namespaces: string_col(COL_NAMESPACE)?,
            metadata,
            documents: string_col(COL_DOCUMENT)?,
            uris: string_col(COL_URI)?,
            vectors: values,
            at: at.into(),
            lossy: 0,
        })
    }

    /// Vector values of these rows that were stored as float64 and lost bits
    /// when rounded to float32 (§4.7). A row group's count is carried by
    /// its first slice only, so that summing over the blocks of a stream
    /// counts each value once.
    pub fn lossy(&self) -> u64 {
        self.lossy
    }

    pub(crate) fn set_lossy(&mut self, lossy: u64) {
        self.lossy = lossy;
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the block has no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Rows `offset..offset + len` (clamped to the block), sharing its buffers.
    pub fn slice(&self, offset: usize, len: usize) -> RecordBlock {
        let offset = offset.min(self.len());
        let len = len.min(self.len() - offset);
        RecordBlock {
            id_kind: self.id_kind,
            ids: self.ids.slice(offset, len),
            namespaces: self.namespaces.slice(offset, len),
            metadata: self.metadata.slice(offset, len),
            documents: self.documents.slice(offset, len),
            uris: self.uris.slice(offset, len),
            at: self.at.clone(),
            lossy: if offset == 0 { self.lossy } else { 0 },
            vectors: self
                .vectors
                .iter()
                .map(|v| match v {
                    Values::Dense(d) => Values::Dense(d.slice(offset, len)),
                    Values::Sparse(s) => Values::Sparse(s.slice(offset, len)),
                    Values::Multi(m) => Values::Multi(m.slice(offset, len)),
                })
                .collect(),
        }
    }

    /// The id of row `row` as written (§4.1).
    pub fn id(&self, row: usize) -> &str {
        self.ids.value(row)
    }

    /// The namespace of row `row`.
    pub fn namespace(&self, row: usize) -> Option<&str> {
        text(&self.namespaces, row)
    }

    /// The metadata of row `row` as its JSON text (§4.3).
    pub fn metadata_json(&self, row: usize) -> Option<&str> {
        text(&self.metadata, row)
    }

    /// The document of row `row`.
    pub fn document(&self, row: usize) -> Option<&str> {
        text(&self.documents, row)
    }

    /// The URI of row `row`.
    pub fn uri(&self, row: usize) -> Option<&str> {
        text(&self.uris, row)
    }

    /// The values of dense vector field `field` of row `row`; `None` when the
    /// row has none or the field is not dense.
    pub fn dense(&self, field: usize, row: usize) -> Option<&[f32]> {
        match self.vectors.get(field) {
            Some(Values::Dense(d)) => d.get(row),
            _ => None,
        }
    }

    /// Row `row` as a [`Record`].
    pub fn record(&self, row: usize) -> Result<Record> {
        let mut r = Record {
            id: RecordId::Uint(0),
            namespace: None,
            vectors: Vec::new(),
            metadata: None,
            document: None,
            uri: None,
        };
        self.read_into(row, &mut r)?;
        Ok(r)
    }

    /// Every row as a [`Record`].
    pub fn to_records(&self) -> Result<Vec<Record>> {
        (0..self.len()).map(|row| self.record(row)).collect()
    }

    /// Overwrites `r` with row `row`, reusing the buffers `r` already has
    /// (its id, texts and dense vectors), so reading rows one after another
    /// into the same record allocates little more than their metadata.
    pub fn read_into(&self, row: usize, r: &mut Record) -> Result<()> {
        let text = self.id(row);
        match (&mut r.id, self.id_kind) {
            (RecordId::String(s), IdKind::String) => {
                s.clear();
                s.push_str(text);
            }
            (id, kind) => {
                *id = RecordId::parse(text, kind).ok_or_else(|| {
                    Error::invalid(
                        &*self.at,
                        format!("id {text:?} is not a valid {} id", kind_name(kind)),
                    )
                })?;
            }
        }
        reuse_text(&mut r.namespace, self.namespace(row));
        reuse_text(&mut r.document, self.document(row));
        reuse_text(&mut r.uri, self.uri(row));
        r.metadata = match self.metadata_json(row) {
            None => None,
            Some(json) => Some(
                serde_json::from_str::<Metadata>(json)
                    .map_err(|e| e.to_string())
                    .and_then(|m| match beyond_float64(&m) {
                        Some(n) => Err(format!("the number {n} is beyond float64")),
                        None => Ok(m),
                    })
                    .map_err(|e| {
                        Error::invalid(
                            &*self.at,
                            format!(
                                "record {text:?}: metadata cannot be read ({e}); it must be one JSON object whose numbers fit a float64 and that nests at most 127 levels (§3, §4.3)"
                            ),
                        )
                    })?,
            ),
        };
        r.vectors.truncate(self.vectors.len());
        r.vectors.resize(self.vectors.len(), None);
        for (slot, values) in r.vectors.iter_mut().zip(&self.vectors) {
            match values {
                Values::Dense(d) => match (d.get(row), slot) {
                    (None, slot) => *slot = None,
                    (Some(x), Some(Vector::Dense(v))) => {
                        v.clear();
                        v.extend_from_slice(x);
                    }
                    (Some(x), slot) => *slot = Some(Vector::Dense(x.to_vec())),
                },
                Values::Sparse(s) => {
                    *slot = s.is_valid(row).then(|| {
                        let indices = s.column(0).as_list::<i32>().value(row);
                        let values = s.column(1).as_list::<i32>().value(row);
                        Vector::Sparse(SparseVector {
                            indices: indices.as_primitive::<UInt32Type>().values().to_vec(),
                            values: values.as_primitive::<Float32Type>().values().to_vec(),
                        })
                    });
                }
                Values::Multi(m) => {
                    *slot = m.is_valid(row).then(|| {
                        let inner = m.value(row);
                        let inner = dense_of(inner.as_fixed_size_list());
                        Vector::Multi(
                            inner
                                .values
                                .chunks_exact(inner.dim.max(1))
                                .take(inner.rows)
                                .map(<[f32]>::to_vec)
                                .collect(),
                        )
                    });
                }
            }
        }
        Ok(())
    }
}

/// An id kind as the manifest spells it.
fn kind_name(kind: IdKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn text(a: &StringArray, row: usize) -> Option<&str> {
    a.is_valid(row).then(|| a.value(row))
}

fn reuse_text(slot: &mut Option<String>, value: Option<&str>) {
    match (value, slot.as_mut()) {
        (None, _) => *slot = None,
        (Some(v), Some(s)) => {
            s.clear();
            s.push_str(v);
        }
        (Some(v), None) => *slot = Some(v.to_owned()),
    }
}

/// A `FixedSizeList<Float32>` array's values; types were checked against the manifest.
fn dense_of(a: &FixedSizeListArray) -> DenseColumn {
    let dim = a.value_length().max(0) as usize;
    DenseColumn {
        rows: a.len(),
        dim,
        values: a
            .values()
            .as_primitive::<Float32Type>()
            .values()
            .slice(0, a.len() * dim),
        nulls: a.nulls().cloned(),
    }
}

/// Whether `json` is one JSON object (§4.3), without building it.
fn check_object(json: &str) -> serde_json::Result<()> {
    struct Object;
    impl<'de> serde::Deserialize<'de> for Object {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Object, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Object;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Object, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Object)
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Object>(json).map(|_| ())
}

/// The first number of `m` whose magnitude exceeds binary64's (`1e999`):
/// numbers travel as their decimal text (§4.3), but each must fit a float64.
fn beyond_float64(m: &Metadata) -> Option<&serde_json::Number> {
    use serde_json::Value;
    fn walk(v: &Value) -> Option<&serde_json::Number> {
        match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => None,
            Value::Number(n) => (!n.as_f64().is_some_and(f64::is_finite)).then_some(n),
            Value::Array(items) => items.iter().find_map(walk),
            Value::Object(members) => members.values().find_map(walk),
            _ => None,
        }
    }
    m.values().find_map(walk)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    use serde_json::json;

    use super::*;
    use crate::model::{SparseVector, VectorField};
    use crate::snapshot::columns::{arrow_schema, to_batch};

    fn columns() -> Vec<VectorColumn> {
        let mut sparse = VectorField::dense(None, None);
        sparse.name = "s".into();
        sparse.kind = VectorKind::Sparse;
        let mut multi = VectorField::dense(Some(2), None);
        multi.name = "m".into();
        multi.kind = VectorKind::Multi;
        [
            (VectorField::dense(Some(3), None), "vector"),
            (sparse, "vector_s"),
            (multi, "vector_m"),
        ]
        .into_iter()
        .map(|(field, column)| VectorColumn {
            field,
            column: column.into(),
            dimension_source: None,
        })
        .collect()
    }

    fn records() -> Vec<Record> {
        (0..10u32)
            .map(|i| {
                let f = i as f32;
                let mut r = Record::dense(RecordId::String(format!("r{i}")), vec![f, -f, 0.5]);
                if i % 3 == 1 {
                    r.vectors[0] = None;
                }
                r.vectors.push((i % 2 == 0).then(|| {
                    Vector::Sparse(SparseVector {
                        indices: (0..i).collect(),
                        values: (0..i).map(|x| x as f32).collect(),
                    })
                }));
                r.vectors.push(
                    (i % 4 != 3)
                        .then(|| Vector::Multi((0..i % 3).map(|k| vec![f, k as f32]).collect())),
                );
                r.metadata = (i % 5 != 0)
                    .then(|| json!({"i": i, "tag": format!("t{i}")}).as_object().cloned())
                    .flatten();
                r.document = (i % 2 == 1).then(|| format!("doc {i}"));
                r.uri = (i == 4).then(|| "s3://b/4".to_owned());
                r.namespace = (i > 6).then(|| "ns".to_owned());
                r
            })
            .collect()
    }

    fn batch(records: &[Record]) -> RecordBatch {
        let vectors = columns();
        to_batch(&arrow_schema(&vectors), &vectors, records).unwrap()
    }

    fn block(batch: &RecordBatch, id_kind: IdKind) -> Result<RecordBlock> {
        RecordBlock::new(batch, &columns(), id_kind, "part", Vec::new())
    }

    /// `batch` with column `index` replaced by `values` (and every column
    /// nullable, as a part written by another tool may declare them).
    fn with_column(batch: &RecordBatch, index: usize, values: Vec<Option<&str>>) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        cols[index] = Arc::new(StringArray::from(values));
        let fields: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn rows_read_back_whole_sliced_and_into_one_record() {
        let records = records();
        let b = block(&batch(&records), IdKind::String).unwrap();
        assert_eq!(b.len(), records.len());
        assert_eq!(b.to_records().unwrap(), records);

        let s = b.slice(3, 4);
        assert_eq!(s.to_records().unwrap(), records[3..7]);
        assert_eq!(s.id(0), "r3");
        assert_eq!(s.dense(0, 1), None, "row 4 has no dense value");
        assert_eq!(s.dense(0, 2), Some(&[5.0, -5.0, 0.5][..]));
        assert_eq!(s.dense(1, 0), None, "field 1 is sparse");
        assert_eq!(s.metadata_json(1), Some(r#"{"i":4,"tag":"t4"}"#));
        assert_eq!(s.uri(1), Some("s3://b/4"));
        assert_eq!((s.document(0), s.namespace(0)), (Some("doc 3"), None));
        assert_eq!(b.slice(8, 100).len(), 2);
        assert!(b.slice(11, 1).is_empty());

        // One record reused for every row: same values, and a dense vector
        // read over a dense vector keeps its allocation.
        let mut scratch = b.record(9).unwrap();
        for (row, expected) in records.iter().enumerate() {
            let before = match &scratch.vectors[0] {
                Some(Vector::Dense(v)) => Some(v.as_ptr()),
                _ => None,
            };
            b.read_into(row, &mut scratch).unwrap();
            assert_eq!(&scratch, expected, "row {row}");
            if let (Some(before), Some(Vector::Dense(v))) = (before, &scratch.vectors[0]) {
                assert_eq!(before, v.as_ptr(), "row {row}: dense buffer reused");
            }
        }
    }

    #[test]
    fn uint_ids_parse_into_their_kind() {
        let mut records = records();
        for (i, r) in records.iter_mut().enumerate() {
            r.id = RecordId::Uint(i as u64 * 1000);
        }
        let b = block(&batch(&records), IdKind::Uint).unwrap();
        assert_eq!(b.to_records().unwrap(), records);
        assert_eq!(b.id(2), "2000");
    }

    #[test]
    fn refuses_what_a_reader_must_refuse() {
        let records = records();
        let good = batch(&records);
        let err = |batch: &RecordBatch, kind: IdKind| block(batch, kind).unwrap_err().to_string();

        for bad in ["[1]", "\"text\"", "{\"a\":", "{\"a\":1} x", "null"] {
            let mut meta: Vec<Option<&str>> = vec![None; records.len()];
            meta[6] = Some(bad);
            let e = err(&with_column(&good, 2, meta), IdKind::String);
            assert!(
                e.contains("\"r6\"") && e.contains("not a JSON object"),
                "{bad}: {e}"
            );
        }

        let mut ids: Vec<Option<&str>> = records.iter().map(|_| Some("1")).collect();
        ids[4] = None;
        let e = err(&with_column(&good, 0, ids), IdKind::Uint);
        assert!(e.contains("row 4 has a null id"), "{e}");

        let mut ids: Vec<Option<&str>> = (0..records.len()).map(|_| Some("7")).collect();
        ids[5] = Some("007");
        let e = err(&with_column(&good, 0, ids), IdKind::Uint);
        assert!(e.contains("\"007\" is not a valid uint id"), "{e}");

        let short = DenseColumn {
            rows: 2,
            dim: 3,
            values: ScalarBuffer::from(vec![0.0f32; 6]),
            nulls: None,
        };
        let e = RecordBlock::new(&good, &columns(), IdKind::String, "part", vec![Some(short)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("has 2 rows, the other columns 10"), "{e}");

        let mut cols: Vec<ArrayRef> = good.columns().to_vec();
        cols.truncate(5);
        let fields: Vec<_> = good.schema().fields()[..5].to_vec();
        let missing =
            RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap();
        let e = err(&missing, IdKind::String);
        assert!(e.contains("vector column `vector` is missing"), "{e}");
    }
}
