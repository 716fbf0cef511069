//! Records ⇄ Arrow record batches, following the column layout of
//! `spec/FORMAT.md` §4.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, ListArray, RecordBatch,
    StringArray, StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Float32Type, Schema, SchemaRef, UInt32Type};

use crate::error::{Error, Result};
use crate::model::{IdKind, Metadata, Record, RecordId, SparseVector, Vector, VectorKind};

use super::layout::{COL_DOCUMENT, COL_ID, COL_METADATA, COL_NAMESPACE, COL_URI};
use super::manifest::VectorColumn;

/// The Arrow type of a vector field (§4.2).
pub fn vector_type(kind: VectorKind, dimension: Option<u32>) -> DataType {
    let dim = dimension.unwrap_or(0) as i32;
    let item = || Arc::new(Field::new("item", DataType::Float32, false));
    match kind {
        VectorKind::Dense => DataType::FixedSizeList(item(), dim),
        VectorKind::Sparse => DataType::Struct(sparse_fields()),
        VectorKind::Multi => DataType::List(Arc::new(Field::new(
            "item",
            DataType::FixedSizeList(item(), dim),
            false,
        ))),
    }
}

fn sparse_fields() -> Fields {
    Fields::from(vec![
        Field::new_list(
            "indices",
            Field::new("item", DataType::UInt32, false),
            false,
        ),
        Field::new_list(
            "values",
            Field::new("item", DataType::Float32, false),
            false,
        ),
    ])
}

/// The Arrow schema of a part.
pub fn arrow_schema(vectors: &[VectorColumn]) -> SchemaRef {
    let mut fields = vec![
        Field::new(COL_ID, DataType::Utf8, false),
        Field::new(COL_NAMESPACE, DataType::Utf8, true),
        Field::new(COL_METADATA, DataType::Utf8, true),
        Field::new(COL_DOCUMENT, DataType::Utf8, true),
        Field::new(COL_URI, DataType::Utf8, true),
    ];
    for v in vectors {
        fields.push(Field::new(
            &v.column,
            vector_type(v.field.kind, v.field.dimension),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// Builds a record batch; every record must carry `vectors.len()` vector
/// slots whose values match the declared kinds and dimensions.
pub fn to_batch(
    schema: &SchemaRef,
    vectors: &[VectorColumn],
    records: &[Record],
) -> Result<RecordBatch> {
    let mut columns = fixed_columns(records);
    for (i, v) in vectors.iter().enumerate() {
        columns.push(vector_array(v, i, records)?);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::InvalidData(format!("cannot build a record batch: {e}")))
}

/// The five fixed columns (`id`, `namespace`, `metadata`, `document`, `uri`).
pub(crate) fn fixed_columns(records: &[Record]) -> Vec<ArrayRef> {
    let ids = StringArray::from_iter_values(records.iter().map(|r| r.id.to_string()));
    let namespaces: StringArray = records.iter().map(|r| r.namespace.as_deref()).collect();
    let metadata: StringArray = records
        .iter()
        .map(|r| r.metadata.as_ref().map(encode_metadata))
        .collect();
    let documents: StringArray = records.iter().map(|r| r.document.as_deref()).collect();
    let uris: StringArray = records.iter().map(|r| r.uri.as_deref()).collect();
    vec![
        Arc::new(ids),
        Arc::new(namespaces),
        Arc::new(metadata),
        Arc::new(documents),
        Arc::new(uris),
    ]
}

/// Metadata as the JSON text of the `metadata` column (§4.3).
pub fn encode_metadata(m: &Metadata) -> String {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_string(m).unwrap_or_default()
}

fn slot(r: &Record, i: usize) -> Option<&Vector> {
    r.vectors.get(i).and_then(Option::as_ref)
}

fn wrong_shape(r: &Record, v: &VectorColumn, what: String) -> Error {
    Error::InvalidData(format!(
        "record {:?}: vector field {:?} {what}",
        r.id.to_string(),
        v.field.name
    ))
}

/// The values of dense slot `i` of `r`, checked against dimension `dim`;
/// `None` when the record has no value for it.
pub(crate) fn dense_value<'a>(
    v: &VectorColumn,
    i: usize,
    r: &'a Record,
    dim: usize,
) -> Result<Option<&'a [f32]>> {
    match slot(r, i) {
        Some(Vector::Dense(d)) if d.len() == dim => Ok(Some(d)),
        Some(Vector::Dense(d)) => Err(wrong_shape(
            r,
            v,
            format!(
                "has {} values, the collection's dimension is {dim}",
                d.len()
            ),
        )),
        Some(other) => Err(wrong_shape(
            r,
            v,
            format!("is {:?}, expected dense", other.kind()),
        )),
        None => Ok(None),
    }
}

/// The Arrow array of vector slot `i` of `records`.
pub(crate) fn vector_array(v: &VectorColumn, i: usize, records: &[Record]) -> Result<ArrayRef> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    match v.field.kind {
        VectorKind::Dense => {
            let dim = v.field.dimension.unwrap_or(0) as usize;
            let mut values = Vec::with_capacity(records.len() * dim);
            let mut valid = Vec::with_capacity(records.len());
            for r in records {
                match dense_value(v, i, r, dim)? {
                    Some(d) => {
                        values.extend_from_slice(d);
                        valid.push(true);
                    }
                    None => {
                        values.resize(values.len() + dim, 0.0);
                        valid.push(false);
                    }
                }
            }
            let nulls = NullBuffer::from(valid);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let arr = FixedSizeListArray::try_new(
                item,
                dim as i32,
                Arc::new(Float32Array::from(values)),
                nulls,
            )
            .map_err(|e| Error::InvalidData(format!("vector field {:?}: {e}", v.field.name)))?;
            Ok(Arc::new(arr))
        }
        VectorKind::Sparse => {
            let mut idx = Vec::new();
            let mut vals = Vec::new();
            let mut offsets = Vec::with_capacity(records.len() + 1);
            offsets.push(0i32);
            let mut valid = Vec::with_capacity(records.len());
            for r in records {
                match slot(r, i) {
                    Some(Vector::Sparse(s)) => {
                        if s.indices.len() != s.values.len() {
                            return Err(wrong_shape(
                                r,
                                v,
                                format!(
                                    "has {} indices but {} values",
                                    s.indices.len(),
                                    s.values.len()
                                ),
                            ));
                        }
                        idx.extend_from_slice(&s.indices);
                        vals.extend_from_slice(&s.values);
                        valid.push(true);
                    }
                    Some(other) => {
                        return Err(wrong_shape(
                            r,
                            v,
                            format!("is {:?}, expected sparse", other.kind()),
                        ));
                    }
                    None => valid.push(false),
                }
                let end = i32::try_from(idx.len()).map_err(|_| {
                    wrong_shape(
                        r,
                        v,
                        "overflows a row group; lower the row group size".into(),
                    )
                })?;
                offsets.push(end);
            }
            let offsets = OffsetBuffer::new(offsets.into());
            let fields = sparse_fields();
            let indices = ListArray::new(
                Arc::new(Field::new("item", DataType::UInt32, false)),
                offsets.clone(),
                Arc::new(UInt32Array::from(idx)),
                None,
            );
            let values = ListArray::new(item, offsets, Arc::new(Float32Array::from(vals)), None);
            let nulls = NullBuffer::from(valid);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let arr =
                StructArray::try_new(fields, vec![Arc::new(indices), Arc::new(values)], nulls)
                    .map_err(|e| {
                        Error::InvalidData(format!("vector field {:?}: {e}", v.field.name))
                    })?;
            Ok(Arc::new(arr))
        }
        VectorKind::Multi => {
            let dim = v.field.dimension.unwrap_or(0) as usize;
            let mut values = Vec::new();
            let mut offsets = Vec::with_capacity(records.len() + 1);
            offsets.push(0i32);
            let mut rows = 0usize;
            let mut valid = Vec::with_capacity(records.len());
            for r in records {
                match slot(r, i) {
                    Some(Vector::Multi(m)) => {
                        for one in m {
                            if one.len() != dim {
                                return Err(wrong_shape(
                                    r,
                                    v,
                                    format!(
                                        "holds a vector of {} values, the collection's dimension is {dim}",
                                        one.len()
                                    ),
                                ));
                            }
                            values.extend_from_slice(one);
                        }
                        rows += m.len();
                        valid.push(true);
                    }
                    Some(other) => {
                        return Err(wrong_shape(
                            r,
                            v,
                            format!("is {:?}, expected multi", other.kind()),
                        ));
                    }
                    None => valid.push(false),
                }
                let end = i32::try_from(rows).map_err(|_| {
                    wrong_shape(
                        r,
                        v,
                        "overflows a row group; lower the row group size".into(),
                    )
                })?;
                offsets.push(end);
            }
            let inner = FixedSizeListArray::try_new(
                item,
                dim as i32,
                Arc::new(Float32Array::from(values)),
                None,
            )
            .map_err(|e| Error::InvalidData(format!("vector field {:?}: {e}", v.field.name)))?;
            let nulls = NullBuffer::from(valid);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            let arr = ListArray::try_new(
                Arc::new(Field::new("item", inner.data_type().clone(), false)),
                OffsetBuffer::new(offsets.into()),
                Arc::new(inner),
                nulls,
            )
            .map_err(|e| Error::InvalidData(format!("vector field {:?}: {e}", v.field.name)))?;
            Ok(Arc::new(arr))
        }
    }
}

/// Decodes a record batch read from a part. `at` names the part in errors.
pub fn from_batch(
    batch: &RecordBatch,
    vectors: &[VectorColumn],
    id_kind: IdKind,
    at: &str,
) -> Result<Vec<Record>> {
    decode_batch(
        batch,
        vectors,
        id_kind,
        at,
        &mut vec![None; vectors.len()],
        0,
    )
}

/// [`from_batch`] where the values of some dense columns were decoded
/// already: `direct[i]`, when set, holds vector field `i` of the rows, the
/// batch's first row at `offset`; the values are taken out of it.
pub(crate) fn decode_batch(
    batch: &RecordBatch,
    vectors: &[VectorColumn],
    id_kind: IdKind,
    at: &str,
    direct: &mut [Option<Vec<Option<Vec<f32>>>>],
    offset: usize,
) -> Result<Vec<Record>> {
    let bad = |msg: String| Error::InvalidSnapshot {
        file: at.into(),
        message: msg,
    };
    let string_col = |name: &str| -> Result<&StringArray> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| bad(format!("column `{name}` is missing or not UTF-8")))
    };
    let ids = string_col(COL_ID)?;
    let namespaces = string_col(COL_NAMESPACE)?;
    let metadata = string_col(COL_METADATA)?;
    let documents = string_col(COL_DOCUMENT)?;
    let uris = string_col(COL_URI)?;
    let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());

    let mut decoders = Vec::with_capacity(vectors.len());
    for (i, v) in vectors.iter().enumerate() {
        if direct[i].is_some() {
            decoders.push(None);
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
        decoders.push(Some(col.clone()));
    }
    if let Some(short) = direct
        .iter()
        .flatten()
        .find(|d| d.len() < offset + batch.num_rows())
    {
        return Err(bad(format!(
            "a vector column has {} rows, the other columns {}",
            short.len(),
            offset + batch.num_rows()
        )));
    }

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if ids.is_null(row) {
            return Err(bad(format!("row {row} has a null id")));
        }
        let text = ids.value(row);
        let id = RecordId::parse(text, id_kind)
            .ok_or_else(|| bad(format!("id {text:?} is not a valid {id_kind:?} id")))?;
        let meta = match opt(metadata, row) {
            None => None,
            Some(json) => Some(serde_json::from_str::<Metadata>(&json).map_err(|e| {
                bad(format!(
                    "record {text:?}: metadata is not a JSON object: {e}"
                ))
            })?),
        };
        let mut vecs = Vec::with_capacity(vectors.len());
        for (i, (v, col)) in vectors.iter().zip(&decoders).enumerate() {
            let Some(col) = col else {
                let values = direct[i].as_mut().expect("decoded directly");
                vecs.push(values[offset + row].take().map(Vector::Dense));
                continue;
            };
            vecs.push(if col.is_null(row) {
                None
            } else {
                let vector = read_vector(v.field.kind, col, row);
                if let Vector::Sparse(s) = &vector
                    && s.indices.len() != s.values.len()
                {
                    return Err(bad(format!(
                        "record {text:?}: sparse vector {:?} has {} indices but {} values",
                        v.field.name,
                        s.indices.len(),
                        s.values.len()
                    )));
                }
                Some(vector)
            });
        }
        out.push(Record {
            id,
            namespace: opt(namespaces, row),
            vectors: vecs,
            metadata: meta,
            document: opt(documents, row),
            uri: opt(uris, row),
        });
    }
    Ok(out)
}

fn read_vector(kind: VectorKind, col: &ArrayRef, row: usize) -> Vector {
    // Types were checked against the manifest in `from_batch`.
    match kind {
        VectorKind::Dense => Vector::Dense(f32_values(&col.as_fixed_size_list().value(row))),
        VectorKind::Sparse => {
            let s = col.as_struct();
            let indices = s.column(0).as_list::<i32>().value(row);
            let values = s.column(1).as_list::<i32>().value(row);
            Vector::Sparse(SparseVector {
                indices: indices.as_primitive::<UInt32Type>().values().to_vec(),
                values: values.as_primitive::<Float32Type>().values().to_vec(),
            })
        }
        VectorKind::Multi => {
            let inner = col.as_list::<i32>().value(row);
            let inner = inner.as_fixed_size_list();
            Vector::Multi(
                (0..inner.len())
                    .map(|i| f32_values(&inner.value(i)))
                    .collect(),
            )
        }
    }
}

fn f32_values(a: &ArrayRef) -> Vec<f32> {
    a.as_primitive::<Float32Type>().values().to_vec()
}
