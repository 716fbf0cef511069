//! Milvus's column-oriented `FieldData` to and from the neutral records.
//!
//! A query answers one `FieldData` per output field, each holding the values
//! of every row; an upsert sends the same shape. Vector encodings
//! (`spec/MAPPING.md`, Milvus): FLOAT16/BFLOAT16 are 2 little-endian bytes per
//! value, BINARY_VECTOR packs 8 dimensions per byte (first dimension in the
//! highest bit), and a sparse row is a run of (`u32` index, `f32` value)
//! little-endian pairs.

use serde_json::{Map, Value, json};

use super::proto::schema::{
    self, ArrayArray, BoolArray, DataType, DoubleArray, FieldData, FloatArray, IntArray, JsonArray,
    LongArray, ScalarField, SparseFloatArray, StringArray, field_data, scalar_field, vector_field,
};
use crate::model::{SparseVector, Vector};

/// One column of a query answer, decoded row by row.
pub(super) enum Column {
    /// Scalar values as JSON (`None` where the row's value is null).
    Scalar(Vec<Option<Value>>),
    /// The dynamic field: one JSON object per row.
    Dynamic(Vec<Option<Map<String, Value>>>),
    /// Vector values.
    Vectors(Vec<Option<Vector>>),
}

fn valid(data: &FieldData, inner: &[bool], row: usize) -> bool {
    let v = if inner.is_empty() {
        &data.valid_data
    } else {
        inner
    };
    v.get(row).copied().unwrap_or(true)
}

fn scalar_values(s: &ScalarField) -> Result<Vec<Value>, String> {
    use scalar_field::Data;
    Ok(match &s.data {
        None => Vec::new(),
        Some(Data::BoolData(a)) => a.data.iter().map(|b| json!(b)).collect(),
        Some(Data::IntData(a)) => a.data.iter().map(|n| json!(n)).collect(),
        Some(Data::LongData(a)) => a.data.iter().map(|n| json!(n)).collect(),
        Some(Data::FloatData(a)) => a.data.iter().map(|x| float_json(f64::from(*x))).collect(),
        Some(Data::DoubleData(a)) => a.data.iter().map(|x| float_json(*x)).collect(),
        Some(Data::StringData(a)) => a.data.iter().map(|t| json!(t)).collect(),
        Some(Data::JsonData(a)) => a
            .data
            .iter()
            .map(|b| serde_json::from_slice(b).map_err(|e| format!("a JSON value is invalid: {e}")))
            .collect::<Result<_, _>>()?,
        Some(Data::ArrayData(a)) => a
            .data
            .iter()
            .map(|row| scalar_values(row).map(Value::Array))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("a scalar type vecport does not know".into()),
    })
}

/// A float as JSON; FLOAT values widen to the f64 that prints as the f32 does.
fn float_json(x: f64) -> Value {
    let shortest: f64 = (x as f32).to_string().parse().unwrap_or(x);
    let v = if f64::from(x as f32) == x {
        shortest
    } else {
        x
    };
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Decodes one column of `rows` rows.
pub(super) fn decode(data: &FieldData, rows: usize) -> Result<Column, String> {
    let name = &data.field_name;
    let short =
        |n: usize| (n < rows).then(|| format!("field {name:?} holds {n} values for {rows} rows"));
    match &data.field {
        Some(field_data::Field::Scalars(s)) => {
            let values = scalar_values(s).map_err(|e| format!("field {name:?}: {e}"))?;
            // Nullable columns may leave null rows out of the values.
            let dense = values.len() == rows;
            let mut it = values.into_iter();
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                if !valid(data, &s.valid_data, row) {
                    out.push(None);
                    if dense {
                        it.next();
                    }
                } else {
                    match it.next() {
                        Some(v) => out.push(Some(v)),
                        None => return Err(short(row).unwrap_or_default()),
                    }
                }
            }
            if data.is_dynamic {
                return Ok(Column::Dynamic(
                    out.into_iter()
                        .map(|v| match v {
                            Some(Value::Object(m)) => Some(m),
                            _ => None,
                        })
                        .collect(),
                ));
            }
            Ok(Column::Scalar(out))
        }
        Some(field_data::Field::Vectors(v)) => {
            let dim = usize::try_from(v.dim).unwrap_or(0);
            let rows_of = |present: usize| -> Result<Vec<usize>, String> {
                // Row → index into the present values (nullable vectors).
                let mut idx = Vec::with_capacity(rows);
                let mut next = 0;
                for row in 0..rows {
                    if valid(data, &v.valid_data, row) {
                        idx.push(next);
                        next += 1;
                    } else {
                        idx.push(usize::MAX);
                    }
                }
                if next > present {
                    return Err(short(present).unwrap_or_default());
                }
                Ok(idx)
            };
            let dense = |present: usize, at: &dyn Fn(usize) -> Vec<f32>| {
                rows_of(present).map(|idx| {
                    idx.into_iter()
                        .map(|i| (i != usize::MAX).then(|| Vector::Dense(at(i))))
                        .collect()
                })
            };
            let vectors = match &v.data {
                Some(vector_field::Data::FloatVector(f)) if dim > 0 => {
                    dense(f.data.len() / dim, &|i| {
                        f.data[i * dim..(i + 1) * dim].to_vec()
                    })?
                }
                Some(vector_field::Data::Float16Vector(b)) if dim > 0 => {
                    dense(b.len() / (2 * dim), &|i| {
                        b[i * 2 * dim..(i + 1) * 2 * dim]
                            .chunks_exact(2)
                            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                            .collect()
                    })?
                }
                Some(vector_field::Data::Bfloat16Vector(b)) if dim > 0 => {
                    dense(b.len() / (2 * dim), &|i| {
                        b[i * 2 * dim..(i + 1) * 2 * dim]
                            .chunks_exact(2)
                            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                            .collect()
                    })?
                }
                Some(vector_field::Data::Int8Vector(b)) if dim > 0 => dense(b.len() / dim, &|i| {
                    b[i * dim..(i + 1) * dim]
                        .iter()
                        .map(|x| f32::from(*x as i8))
                        .collect()
                })?,
                Some(vector_field::Data::BinaryVector(b)) if dim > 0 => {
                    let bytes = dim.div_ceil(8);
                    dense(b.len() / bytes, &|i| {
                        let row = &b[i * bytes..(i + 1) * bytes];
                        (0..dim)
                            .map(|d| f32::from((row[d / 8] >> (7 - d % 8)) & 1))
                            .collect()
                    })?
                }
                Some(vector_field::Data::SparseFloatVector(s)) => {
                    let idx = rows_of(s.contents.len())?;
                    let mut out = Vec::with_capacity(rows);
                    for i in idx {
                        if i == usize::MAX {
                            out.push(None);
                            continue;
                        }
                        out.push(Some(Vector::Sparse(
                            sparse_of(&s.contents[i])
                                .map_err(|e| format!("field {name:?}: {e}"))?,
                        )));
                    }
                    out
                }
                None => vec![None; rows],
                Some(_) => {
                    return Err(format!(
                        "field {name:?} is a vector type vecport does not know"
                    ));
                }
            };
            Ok(Column::Vectors(vectors))
        }
        _ => Err(format!("field {name:?} is of a kind vecport does not know")),
    }
}

/// Decodes one sparse row; indices come back sorted.
pub(super) fn sparse_of(bytes: &[u8]) -> Result<SparseVector, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!(
            "a sparse row of {} bytes is not whole (index, value) pairs",
            bytes.len()
        ));
    }
    let mut pairs: Vec<(u32, f32)> = bytes
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    pairs.sort_by_key(|p| p.0);
    Ok(SparseVector {
        indices: pairs.iter().map(|p| p.0).collect(),
        values: pairs.iter().map(|p| p.1).collect(),
    })
}

/// Encodes one sparse row, indices sorted.
pub(super) fn sparse_bytes(s: &SparseVector) -> Vec<u8> {
    let mut pairs: Vec<(u32, f32)> = s
        .indices
        .iter()
        .copied()
        .zip(s.values.iter().copied())
        .collect();
    pairs.sort_by_key(|p| p.0);
    let mut out = Vec::with_capacity(pairs.len() * 8);
    for (i, v) in pairs {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A column being built for an upsert.
pub(super) struct Builder {
    name: String,
    ty: DataType,
    element: DataType,
    dim: usize,
    dynamic: bool,
    nullable: bool,
    valid: Vec<bool>,
    scalars: Vec<Value>,
    floats: Vec<f32>,
    bytes: Vec<u8>,
    rows: Vec<Vec<u8>>,
    max_dim: i64,
}

impl Builder {
    /// A column of `ty` (`element` for arrays, `dim` for dense vectors).
    pub(super) fn new(name: &str, ty: DataType, element: DataType, dim: usize) -> Builder {
        Builder {
            name: name.to_owned(),
            ty,
            element,
            dim,
            dynamic: false,
            nullable: false,
            valid: Vec::new(),
            scalars: Vec::new(),
            floats: Vec::new(),
            bytes: Vec::new(),
            rows: Vec::new(),
            max_dim: 0,
        }
    }

    /// The dynamic field, `$meta`.
    pub(super) fn dynamic() -> Builder {
        let mut b = Builder::new("$meta", DataType::Json, DataType::None, 0);
        b.dynamic = true;
        b
    }

    /// Marks the column nullable.
    pub(super) fn nullable(mut self, yes: bool) -> Builder {
        self.nullable = yes;
        self
    }

    /// Appends a scalar value (`None`: null).
    pub(super) fn push_scalar(&mut self, v: Option<Value>) {
        self.valid.push(v.is_some());
        if v.is_some() || !self.nullable {
            self.scalars.push(v.unwrap_or(Value::Null));
        }
    }

    /// Appends a vector value, checked before to fit the field.
    pub(super) fn push_vector(&mut self, v: Option<&Vector>) {
        self.valid.push(v.is_some());
        let Some(v) = v else { return };
        match (self.ty, v) {
            (DataType::SparseFloatVector, Vector::Sparse(s)) => {
                if let Some(m) = s.indices.iter().max() {
                    self.max_dim = self.max_dim.max(i64::from(*m) + 1);
                }
                self.rows.push(sparse_bytes(s));
            }
            (DataType::FloatVector, Vector::Dense(d)) => self.floats.extend_from_slice(d),
            (DataType::Float16Vector, Vector::Dense(d)) => {
                for x in d {
                    self.bytes
                        .extend_from_slice(&half::f16::from_f32(*x).to_le_bytes());
                }
            }
            (DataType::BFloat16Vector, Vector::Dense(d)) => {
                for x in d {
                    self.bytes
                        .extend_from_slice(&half::bf16::from_f32(*x).to_le_bytes());
                }
            }
            (DataType::Int8Vector, Vector::Dense(d)) => {
                self.bytes.extend(d.iter().map(|x| (*x as i8) as u8));
            }
            (DataType::BinaryVector, Vector::Dense(d)) => {
                let mut row = vec![0u8; self.dim.div_ceil(8)];
                for (i, x) in d.iter().enumerate() {
                    if *x != 0.0 {
                        row[i / 8] |= 1 << (7 - i % 8);
                    }
                }
                self.bytes.extend_from_slice(&row);
            }
            _ => {}
        }
    }

    /// The finished column.
    pub(super) fn finish(self) -> FieldData {
        let valid = if self.nullable {
            self.valid
        } else {
            Vec::new()
        };
        let dim = i64::try_from(self.dim).unwrap_or(0);
        let field = match self.ty {
            DataType::FloatVector => vectors(
                dim,
                vector_field::Data::FloatVector(FloatArray { data: self.floats }),
            ),
            DataType::Float16Vector => vectors(dim, vector_field::Data::Float16Vector(self.bytes)),
            DataType::BFloat16Vector => {
                vectors(dim, vector_field::Data::Bfloat16Vector(self.bytes))
            }
            DataType::Int8Vector => vectors(dim, vector_field::Data::Int8Vector(self.bytes)),
            DataType::BinaryVector => vectors(dim, vector_field::Data::BinaryVector(self.bytes)),
            DataType::SparseFloatVector => vectors(
                self.max_dim,
                vector_field::Data::SparseFloatVector(SparseFloatArray {
                    contents: self.rows,
                    dim: self.max_dim,
                }),
            ),
            ty => field_data::Field::Scalars(ScalarField {
                data: Some(scalar_data(ty, self.element, self.scalars)),
                valid_data: Vec::new(),
            }),
        };
        FieldData {
            r#type: self.ty as i32,
            field_name: self.name,
            field: Some(field),
            is_dynamic: self.dynamic,
            valid_data: valid,
            ..FieldData::default()
        }
    }
}

fn vectors(dim: i64, data: vector_field::Data) -> field_data::Field {
    field_data::Field::Vectors(schema::VectorField {
        dim,
        data: Some(data),
        ..schema::VectorField::default()
    })
}

/// Scalar values of type `ty` (checked before to be of that type).
fn scalar_data(ty: DataType, element: DataType, values: Vec<Value>) -> scalar_field::Data {
    use scalar_field::Data;
    match ty {
        DataType::Bool => Data::BoolData(BoolArray {
            data: values
                .iter()
                .map(|v| v.as_bool().unwrap_or(false))
                .collect(),
        }),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Data::IntData(IntArray {
            data: values
                .iter()
                .map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0))
                .collect(),
        }),
        DataType::Int64 => Data::LongData(LongArray {
            data: values.iter().map(|v| v.as_i64().unwrap_or(0)).collect(),
        }),
        DataType::Float => Data::FloatData(FloatArray {
            data: values
                .iter()
                .map(|v| v.as_f64().unwrap_or(0.0) as f32)
                .collect(),
        }),
        DataType::Double => Data::DoubleData(DoubleArray {
            data: values.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect(),
        }),
        DataType::VarChar | DataType::String => Data::StringData(StringArray {
            data: values
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        }),
        DataType::Array => Data::ArrayData(ArrayArray {
            data: values
                .into_iter()
                .map(|v| {
                    let items = match v {
                        Value::Array(a) => a,
                        _ => Vec::new(),
                    };
                    ScalarField {
                        data: Some(scalar_data(element, DataType::None, items)),
                        valid_data: Vec::new(),
                    }
                })
                .collect(),
            element_type: element as i32,
        }),
        _ => Data::JsonData(JsonArray {
            data: values
                .iter()
                .map(|v| serde_json::to_vec(v).unwrap_or_default())
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_rows_round_trip_sorted() {
        let s = SparseVector {
            indices: vec![9, 2, 4_000_000_000],
            values: vec![0.5, -1.25, 3.0],
        };
        let back = sparse_of(&sparse_bytes(&s)).unwrap();
        assert_eq!(back.indices, vec![2, 9, 4_000_000_000]);
        assert_eq!(back.values, vec![-1.25, 0.5, 3.0]);
        assert!(sparse_of(&[0, 1, 2]).is_err());
    }

    #[test]
    fn vectors_round_trip_through_columns() {
        let cases = [
            (DataType::FloatVector, vec![0.1f32, -2.5, 3.0, 1e-30], 4),
            (DataType::Float16Vector, vec![0.5, -2.0, 1024.0, 0.0], 4),
            (DataType::BFloat16Vector, vec![0.5, -2.0, 3.0, 0.0], 4),
            (
                DataType::BinaryVector,
                vec![
                    1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0,
                ],
                16,
            ),
            (DataType::Int8Vector, vec![-128.0, 0.0, 5.0, 127.0], 4),
        ];
        for (ty, values, dim) in cases {
            let mut b = Builder::new("v", ty, DataType::None, dim);
            let v = Vector::Dense(values.clone());
            b.push_vector(Some(&v));
            b.push_vector(Some(&v));
            let data = b.finish();
            let Column::Vectors(out) = decode(&data, 2).unwrap() else {
                panic!("not vectors")
            };
            assert_eq!(out, vec![Some(v.clone()), Some(v)], "{ty:?}");
        }
    }

    #[test]
    fn scalars_and_nulls_round_trip() {
        let mut b = Builder::new("s", DataType::Array, DataType::Int64, 0).nullable(true);
        b.push_scalar(Some(json!([1, 2, 3])));
        b.push_scalar(None);
        b.push_scalar(Some(json!([])));
        let Column::Scalar(out) = decode(&b.finish(), 3).unwrap() else {
            panic!("not scalars")
        };
        assert_eq!(out, vec![Some(json!([1, 2, 3])), None, Some(json!([]))]);
        let mut f = Builder::new("f", DataType::Float, DataType::None, 0);
        f.push_scalar(Some(json!(0.1)));
        let Column::Scalar(out) = decode(&f.finish(), 1).unwrap() else {
            panic!("not scalars")
        };
        assert_eq!(out, vec![Some(json!(0.1))]);
    }
}
