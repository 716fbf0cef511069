//! What readers accept (`spec/FORMAT.md` §4.7): the Arrow types other
//! writers give the format's columns, and their conversion to the types
//! vecport writes.
//!
//! Text columns may be `Utf8`, `LargeUtf8` or `Utf8View` (or `Null` when
//! no row has a value); a dense vector a
//! `List`, `LargeList` or `FixedSizeList` of `Float32`, `Float64` or
//! `Float16` with its list element named anything, nullable or not; sparse
//! and multi columns likewise. [`accepts`] checks a footer's type (cheap,
//! no data); [`normalize`] converts a decoded batch, checking per row what
//! the type cannot say (a dense vector's length, a null element) and
//! counting the `Float64` values that lose bits as `float32`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, ListArray, RecordBatch,
    StringArray, StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Float16Type, Float32Type, Float64Type, UInt32Type};

use crate::model::VectorKind;

use super::columns::{arrow_schema, vector_type};
use super::layout::FIXED_COLUMNS;
use super::manifest::VectorColumn;

/// Whether `t` is a text type readers accept for column `name`: `Null`
/// (a column without a value, as pandas writes one) too, except for `id`.
pub(crate) fn is_text(name: &str, t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        || (t == &DataType::Null && name != FIXED_COLUMNS[0])
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64 | DataType::Float16)
}

/// The element of a list type and its fixed size, if any.
fn list_item(t: &DataType) -> Option<(&DataType, Option<i32>)> {
    match t {
        DataType::List(f) | DataType::LargeList(f) => Some((f.data_type(), None)),
        DataType::FixedSizeList(f, n) => Some((f.data_type(), Some(*n))),
        _ => None,
    }
}

/// A list of floats with `dim` values when its size is fixed.
fn is_float_list(t: &DataType, dim: Option<u32>) -> Result<(), String> {
    match list_item(t) {
        Some((item, size)) if is_float(item) => match (size, dim) {
            (Some(n), Some(d)) if i64::from(n) != i64::from(d) => Err(format!(
                "is a fixed-size list of {n} values, the manifest's dimension is {d}"
            )),
            _ => Ok(()),
        },
        _ => Err("is not a list of floats".into()),
    }
}

/// Checks that `found`, the type a part gives the vector column of `v`, is
/// one readers accept; the error says what is wrong.
pub(crate) fn accepts_vector(found: &DataType, v: &VectorColumn) -> Result<(), String> {
    let dim = v.field.dimension;
    if found == &DataType::Null {
        return Ok(()); // no row has a value
    }
    match v.field.kind {
        VectorKind::Dense => is_float_list(found, dim),
        VectorKind::Multi => match list_item(found) {
            Some((inner, None)) => is_float_list(inner, dim),
            _ => Err("is not a list of lists of floats".into()),
        },
        VectorKind::Sparse => {
            let DataType::Struct(fields) = found else {
                return Err("is not a struct of `indices` and `values`".into());
            };
            let child = |name: &str| fields.iter().find(|f| f.name() == name);
            match (child("indices"), child("values")) {
                (Some(i), Some(values)) => {
                    match list_item(i.data_type()) {
                        Some((DataType::UInt32, None)) => {}
                        _ => return Err("has `indices` that are not a list of uint32".into()),
                    }
                    is_float_list(values.data_type(), None)
                        .map_err(|e| format!("has `values` that {e}"))
                }
                _ => Err("is not a struct of `indices` and `values`".into()),
            }
        }
    }
}

/// A decoded batch made of the types vecport writes, and the number of
/// `Float64` values that were rounded to `float32`.
pub(crate) struct Normalized {
    pub batch: RecordBatch,
    pub lossy: u64,
}

/// Converts `batch` (a row group of a part, its columns those of
/// [`super::columns::arrow_schema`] in any accepted type, vector columns
/// decoded directly left out) into the written types. `skip[i]` leaves
/// vector field `i` out. The error names the record where it can.
pub(crate) fn normalize(
    batch: RecordBatch,
    vectors: &[VectorColumn],
    skip: &[bool],
) -> Result<Normalized, String> {
    let canonical = arrow_schema(vectors);
    let same = canonical.fields().iter().all(|f| {
        batch
            .column_by_name(f.name())
            .is_none_or(|c| c.data_type() == f.data_type())
    });
    if same {
        return Ok(Normalized { batch, lossy: 0 });
    }
    let rows = batch.num_rows();
    let text = |name: &str| -> Result<Option<ArrayRef>, String> {
        match batch.column_by_name(name) {
            None => Ok(None),
            Some(c) if c.data_type() == &DataType::Utf8 => Ok(Some(c.clone())),
            Some(c) if is_text(name, c.data_type()) => arrow::compute::cast(c, &DataType::Utf8)
                .map(Some)
                .map_err(|e| format!("column `{name}` cannot be read as text: {e}")),
            Some(c) => Err(format!(
                "column `{name}` has type {}, expected text",
                c.data_type()
            )),
        }
    };
    let ids: Option<StringArray> = text(FIXED_COLUMNS[0])?.map(|a| a.as_string::<i32>().clone());
    let id_of = |row: usize| -> String {
        match &ids {
            Some(ids) if ids.is_valid(row) => format!("record {:?}", ids.value(row)),
            _ => format!("row {row}"),
        }
    };
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    // Nullable whatever the schema says: a null id is refused per row,
    // naming it, when the block is built.
    for name in FIXED_COLUMNS {
        if let Some(c) = text(name)? {
            fields.push(Arc::new(Field::new(name, DataType::Utf8, true)));
            columns.push(c);
        }
    }
    let mut lossy = 0u64;
    for (i, v) in vectors.iter().enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        let Some(col) = batch.column_by_name(&v.column) else {
            continue;
        };
        let expected = vector_type(v.field.kind, v.field.dimension);
        let converted = if col.data_type() == &expected {
            col.clone()
        } else if col.data_type() == &DataType::Null {
            arrow::array::new_null_array(&expected, rows)
        } else {
            let mut cx = Convert {
                column: &v.column,
                field: &v.field.name,
                id_of: &id_of,
                lossy: 0,
            };
            let dim = v.field.dimension.unwrap_or(0) as usize;
            let out = match v.field.kind {
                VectorKind::Dense => Arc::new(cx.dense(col, dim)?) as ArrayRef,
                VectorKind::Multi => Arc::new(cx.multi(col, dim)?),
                VectorKind::Sparse => Arc::new(cx.sparse(col)?),
            };
            lossy += cx.lossy;
            out
        };
        fields.push(Arc::new(Field::new(&v.column, expected, true)));
        columns.push(converted);
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| format!("columns do not fit together: {e}"))?;
    Ok(Normalized { batch, lossy })
}

/// The rows of a list array: each valid row's range in its values.
struct Lists {
    ranges: Vec<Option<(usize, usize)>>,
    values: ArrayRef,
}

fn lists(a: &ArrayRef) -> Option<Lists> {
    let ranges = match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let o = l.value_offsets();
            (0..l.len())
                .map(|r| l.is_valid(r).then(|| (o[r] as usize, o[r + 1] as usize)))
                .collect()
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let o = l.value_offsets();
            (0..l.len())
                .map(|r| l.is_valid(r).then(|| (o[r] as usize, o[r + 1] as usize)))
                .collect()
        }
        DataType::FixedSizeList(_, n) => {
            let l = a.as_fixed_size_list();
            let n = (*n).max(0) as usize;
            (0..l.len())
                .map(|r| l.is_valid(r).then(|| (r * n, (r + 1) * n)))
                .collect()
        }
        _ => return None,
    };
    let values = match a.data_type() {
        DataType::List(_) => a.as_list::<i32>().values().clone(),
        DataType::LargeList(_) => a.as_list::<i64>().values().clone(),
        _ => a.as_fixed_size_list().values().clone(),
    };
    Some(Lists { ranges, values })
}

struct Convert<'a> {
    column: &'a str,
    field: &'a str,
    id_of: &'a dyn Fn(usize) -> String,
    lossy: u64,
}

impl Convert<'_> {
    fn bad(&self, row: usize, what: String) -> String {
        format!(
            "{}: vector field {:?} (column `{}`) {what}",
            (self.id_of)(row),
            self.field,
            self.column
        )
    }

    fn lists(&self, a: &ArrayRef) -> Result<Lists, String> {
        lists(a).ok_or_else(|| {
            format!(
                "column `{}` has type {}, not a list",
                self.column,
                a.data_type()
            )
        })
    }

    /// Appends `values[start..end]` as `f32` to `out`; `row` names errors.
    fn floats(
        &mut self,
        values: &ArrayRef,
        (start, end): (usize, usize),
        row: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        if end > values.len() || start > end {
            return Err(self.bad(row, "has list offsets outside its values".into()));
        }
        if values.null_count() > 0
            && let Some(k) = (start..end).find(|&k| values.is_null(k))
        {
            return Err(self.bad(row, format!("has a null value at position {}", k - start)));
        }
        match values.data_type() {
            DataType::Float32 => {
                out.extend_from_slice(&values.as_primitive::<Float32Type>().values()[start..end])
            }
            DataType::Float64 => {
                for &x in &values.as_primitive::<Float64Type>().values()[start..end] {
                    let y = x as f32;
                    if f64::from(y) != x && !x.is_nan() {
                        self.lossy += 1;
                    }
                    out.push(y);
                }
            }
            DataType::Float16 => out.extend(
                values.as_primitive::<Float16Type>().values()[start..end]
                    .iter()
                    .map(|x| x.to_f32()),
            ),
            other => {
                return Err(format!(
                    "column `{}` holds {other} values, not floats",
                    self.column
                ));
            }
        }
        Ok(())
    }

    fn dense(&mut self, col: &ArrayRef, dim: usize) -> Result<FixedSizeListArray, String> {
        let l = self.lists(col)?;
        let mut out = Vec::with_capacity(l.ranges.len() * dim);
        let mut valid = Vec::with_capacity(l.ranges.len());
        for (row, range) in l.ranges.iter().enumerate() {
            match *range {
                Some((start, end)) => {
                    if end.saturating_sub(start) != dim {
                        return Err(self.bad(
                            row,
                            format!(
                                "has {} values, the manifest's dimension is {dim}",
                                end.saturating_sub(start)
                            ),
                        ));
                    }
                    self.floats(&l.values, (start, end), row, &mut out)?;
                    valid.push(true);
                }
                None => {
                    out.resize(out.len() + dim, 0.0);
                    valid.push(false);
                }
            }
        }
        fixed(out, dim, valid).map_err(|e| format!("column `{}`: {e}", self.column))
    }

    fn multi(&mut self, col: &ArrayRef, dim: usize) -> Result<ListArray, String> {
        let outer = self.lists(col)?;
        let inner = self.lists(&outer.values)?;
        let mut out = Vec::new();
        let mut offsets = vec![0i32];
        let mut valid = Vec::with_capacity(outer.ranges.len());
        let mut count = 0usize;
        for (row, range) in outer.ranges.iter().enumerate() {
            if let Some((start, end)) = *range {
                if end > inner.ranges.len() || start > end {
                    return Err(self.bad(row, "has list offsets outside its values".into()));
                }
                for k in start..end {
                    let Some((s, e)) = inner.ranges[k] else {
                        return Err(
                            self.bad(row, format!("has a null vector at position {}", k - start))
                        );
                    };
                    if e.saturating_sub(s) != dim {
                        return Err(self.bad(
                            row,
                            format!(
                                "holds a vector of {} values, the manifest's dimension is {dim}",
                                e.saturating_sub(s)
                            ),
                        ));
                    }
                    self.floats(&inner.values, (s, e), row, &mut out)?;
                }
                count += end - start;
            }
            valid.push(range.is_some());
            offsets.push(
                i32::try_from(count).map_err(|_| self.bad(row, "overflows a row group".into()))?,
            );
        }
        let item = fixed(out, dim, vec![true; count])
            .map_err(|e| format!("column `{}`: {e}", self.column))?;
        let nulls = NullBuffer::from(valid);
        ListArray::try_new(
            Arc::new(Field::new("item", item.data_type().clone(), false)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(item),
            (nulls.null_count() > 0).then_some(nulls),
        )
        .map_err(|e| format!("column `{}`: {e}", self.column))
    }

    fn sparse(&mut self, col: &ArrayRef) -> Result<StructArray, String> {
        let s = col.as_struct_opt().ok_or_else(|| {
            format!(
                "column `{}` has type {}, not a struct",
                self.column,
                col.data_type()
            )
        })?;
        let child = |name: &str| {
            s.column_by_name(name)
                .ok_or_else(|| format!("column `{}` has no `{name}`", self.column))
        };
        let (indices, values) = (
            self.lists(child("indices")?)?,
            self.lists(child("values")?)?,
        );
        let index_values: &UInt32Array = indices
            .values
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| format!("column `{}`: `indices` are not uint32", self.column))?;
        let (mut idx, mut vals) = (Vec::new(), Vec::new());
        let mut offsets = vec![0i32];
        let mut valid = Vec::with_capacity(s.len());
        for row in 0..s.len() {
            if s.is_valid(row) {
                let (Some((is, ie)), Some(vr)) = (indices.ranges[row], values.ranges[row]) else {
                    return Err(self.bad(row, "has null `indices` or `values`".into()));
                };
                if ie - is != vr.1 - vr.0 {
                    return Err(self.bad(
                        row,
                        format!("has {} indices but {} values", ie - is, vr.1 - vr.0),
                    ));
                }
                if ie > index_values.len()
                    || (index_values.null_count() > 0 && (is..ie).any(|k| index_values.is_null(k)))
                {
                    return Err(self.bad(row, "has a null or missing index".into()));
                }
                idx.extend_from_slice(&index_values.values()[is..ie]);
                self.floats(&values.values, vr, row, &mut vals)?;
            }
            valid.push(s.is_valid(row));
            offsets.push(
                i32::try_from(idx.len())
                    .map_err(|_| self.bad(row, "overflows a row group".into()))?,
            );
        }
        let DataType::Struct(fields) = vector_type(VectorKind::Sparse, None) else {
            unreachable!("a sparse vector is a struct");
        };
        let offsets = OffsetBuffer::new(offsets.into());
        let list = |item: DataType, values: ArrayRef| {
            ListArray::new(
                Arc::new(Field::new("item", item, false)),
                offsets.clone(),
                values,
                None,
            )
        };
        let nulls = NullBuffer::from(valid);
        StructArray::try_new(
            fields,
            vec![
                Arc::new(list(DataType::UInt32, Arc::new(UInt32Array::from(idx)))),
                Arc::new(list(DataType::Float32, Arc::new(Float32Array::from(vals)))),
            ],
            (nulls.null_count() > 0).then_some(nulls),
        )
        .map_err(|e| format!("column `{}`: {e}", self.column))
    }
}

/// A `FixedSizeList<Float32>` of `valid.len()` rows of `dim` values.
fn fixed(
    values: Vec<f32>,
    dim: usize,
    valid: Vec<bool>,
) -> Result<FixedSizeListArray, arrow::error::ArrowError> {
    let nulls = NullBuffer::from(valid);
    let DataType::FixedSizeList(item, _) = vector_type(VectorKind::Dense, Some(dim as u32)) else {
        unreachable!("a dense vector is a fixed-size list");
    };
    FixedSizeListArray::try_new(
        item,
        dim as i32,
        Arc::new(Float32Array::from(values)),
        (nulls.null_count() > 0).then_some(nulls),
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, LargeListArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::Schema;

    use super::*;
    use crate::model::VectorField;

    fn dense(dim: u32) -> VectorColumn {
        VectorColumn {
            field: VectorField::dense(Some(dim), None),
            column: "vector".into(),
            dimension_source: None,
        }
    }

    /// Ids as `LargeUtf8` and a `LargeList<Float64>` dense column.
    fn batch(lengths: &[Option<usize>], values: Vec<f64>) -> RecordBatch {
        let ids = arrow::array::LargeStringArray::from(
            (0..lengths.len())
                .map(|i| format!("r{i}"))
                .collect::<Vec<_>>(),
        );
        let mut offsets = vec![0i64];
        for l in lengths {
            offsets.push(offsets.last().unwrap() + l.unwrap_or(0) as i64);
        }
        let valid: Vec<bool> = lengths.iter().map(Option::is_some).collect();
        let list = LargeListArray::new(
            Arc::new(Field::new("element", DataType::Float64, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(Float64Array::from(values)),
            Some(NullBuffer::from(valid)),
        );
        let schema = Schema::new(vec![
            Field::new("id", DataType::LargeUtf8, true),
            Field::new("vector", list.data_type().clone(), true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(list)]).unwrap()
    }

    #[test]
    fn float64_lists_become_float32_vectors_and_count_lossy_values() {
        let b = batch(&[Some(2), None, Some(2)], vec![0.5, 0.1, 1.0, -2.0]);
        let n = normalize(b, &[dense(2)], &[false]).unwrap();
        assert_eq!(n.lossy, 1, "only 0.1 changes as float32");
        let ids = n.batch.column_by_name("id").unwrap();
        assert_eq!(ids.data_type(), &DataType::Utf8);
        let v = n.batch.column_by_name("vector").unwrap();
        assert_eq!(v.data_type(), &vector_type(VectorKind::Dense, Some(2)));
        let v = v.as_fixed_size_list();
        assert!(v.is_null(1));
        let floats = v.values().as_primitive::<Float32Type>().values();
        assert_eq!(&floats[..2], &[0.5, 0.1f32]);
        assert_eq!(&floats[4..], &[1.0, -2.0]);
    }

    #[test]
    fn a_row_of_another_length_or_with_a_null_value_names_the_record() {
        let e = normalize(
            batch(&[Some(2), Some(3)], vec![0.0; 5]),
            &[dense(2)],
            &[false],
        )
        .err()
        .unwrap();
        assert!(
            e.contains("record \"r1\"")
                && e.contains("has 3 values, the manifest's dimension is 2"),
            "{e}"
        );
        let mut b = batch(&[Some(2)], vec![0.0; 2]);
        let list = b.column(1).as_list::<i64>().clone();
        let values = Float64Array::from(vec![Some(1.0), None]);
        let list = LargeListArray::new(
            Arc::new(Field::new("element", DataType::Float64, true)),
            list.offsets().clone(),
            Arc::new(values),
            None,
        );
        b = RecordBatch::try_new(b.schema(), vec![b.column(0).clone(), Arc::new(list)]).unwrap();
        let e = normalize(b, &[dense(2)], &[false]).err().unwrap();
        assert!(
            e.contains("record \"r0\"") && e.contains("null value at position 1"),
            "{e}"
        );
    }

    #[test]
    fn footer_types_accepted_and_refused() {
        let item = |t: DataType| Arc::new(Field::new("element", t, true));
        let v = dense(3);
        for ok in [
            DataType::List(item(DataType::Float32)),
            DataType::LargeList(item(DataType::Float64)),
            DataType::FixedSizeList(item(DataType::Float16), 3),
            DataType::Null,
        ] {
            assert!(accepts_vector(&ok, &v).is_ok(), "{ok}");
        }
        for bad in [
            DataType::FixedSizeList(item(DataType::Float32), 4),
            DataType::List(item(DataType::Int32)),
            DataType::Utf8,
        ] {
            assert!(accepts_vector(&bad, &v).is_err(), "{bad}");
        }
        assert!(is_text("document", &DataType::Null));
        assert!(!is_text("id", &DataType::Null));
        assert!(is_text("id", &DataType::Utf8View));
    }
}
