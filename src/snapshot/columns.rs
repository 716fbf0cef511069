//! Records ⇄ Arrow record batches, following the column layout of
//! `spec/FORMAT.md` §4.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray, RecordBatch, StringArray,
    StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::model::{IdKind, Metadata, Record, Vector, VectorKind};

use super::block::RecordBlock;
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
    RecordBlock::new(batch, vectors, id_kind, at, Vec::new())?.to_records()
}
