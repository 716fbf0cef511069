//! Arrow record batches → records, by a [`ColumnMapping`]: what the Parquet,
//! pinecone-datasets and VDF readers share.
//!
//! Vector columns may be lists, large lists or fixed-size lists of float16,
//! float32 or float64; they are cast to float32 with Arrow's cast kernel.
//! float16 widens exactly; float64 values float32 cannot hold are rounded,
//! and the records that had such a value are counted for the change report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, UInt32Type, UInt64Type};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::model::{Metadata, Record, RecordId, SparseVector, Vector, VectorField, VectorKind};

use super::{ColumnMapping, MetadataSource, generated_id};

/// Where each part of a record is in a schema.
#[derive(Debug, Clone)]
pub struct Plan {
    id: Option<usize>,
    vectors: Vec<VectorColumn>,
    sparse: Option<usize>,
    document: Option<usize>,
    uri: Option<usize>,
    namespace: Option<usize>,
    json: Option<usize>,
    keys: Vec<(usize, String)>,
    /// The vector fields, in record order (dense, then sparse).
    pub fields: Vec<VectorField>,
}

#[derive(Debug, Clone)]
struct VectorColumn {
    index: usize,
    name: String,
    element: DataType,
}

fn list_element(t: &DataType) -> Option<(&DataType, Option<i32>)> {
    match t {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => Some((f.data_type(), None)),
        DataType::FixedSizeList(f, n) => Some((f.data_type(), Some(*n))),
        _ => None,
    }
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn float_name(t: &DataType) -> &'static str {
    match t {
        DataType::Float16 => "float16",
        DataType::Float64 => "float64",
        _ => "float32",
    }
}

impl Plan {
    /// Resolves `mapping` against `schema` (of `file`, for messages).
    pub fn resolve(schema: &Schema, mapping: &ColumnMapping, file: &Path) -> Result<Plan> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let find = |name: &str, what: &str| -> Result<usize> {
            names.iter().position(|n| *n == name).ok_or_else(|| {
                Error::Usage(format!(
                    "{}: has no column `{name}` ({what}); its columns are {}",
                    file.display(),
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let default =
            |asked: &Option<String>, conventional: &str, what: &str| -> Result<Option<usize>> {
                match asked {
                    Some(c) => find(c, what).map(Some),
                    None => Ok(names.iter().position(|n| *n == conventional)),
                }
            };
        let id = default(&mapping.id, "id", "--id-column")?;
        let document = default(&mapping.document, "document", "--document-column")?;
        let uri = default(&mapping.uri, "uri", "--uri-column")?;
        let namespace = default(&mapping.namespace, "namespace", "--namespace-column")?;
        let mut vectors = Vec::new();
        if mapping.vectors.is_empty() {
            let candidates: Vec<usize> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| list_element(f.data_type()).is_some_and(|(e, _)| is_float(e)))
                .filter(|(_, f)| !mapping.ignore.contains(f.name()))
                .map(|(i, _)| i)
                .collect();
            match candidates.as_slice() {
                [one] => vectors.push((*one, String::new())),
                [] => {
                    return Err(Error::Usage(format!(
                        "{}: no column holds lists of floats; name the vector column with --vector-column COL",
                        file.display()
                    )));
                }
                many => {
                    return Err(Error::Usage(format!(
                        "{}: several columns hold lists of floats ({}); name the vector column(s) with --vector-column COL[=FIELD]",
                        file.display(),
                        many.iter()
                            .map(|i| format!("`{}`", names[*i]))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        } else {
            for (col, field) in &mapping.vectors {
                vectors.push((find(col, "--vector-column")?, field.clone()));
            }
        }
        let mut planned = Vec::new();
        let mut fields = Vec::new();
        for (index, name) in vectors {
            let f = schema.field(index);
            let Some((element, fixed)) = list_element(f.data_type()).filter(|(e, _)| is_float(e))
            else {
                return Err(Error::Usage(format!(
                    "{}: column `{}` is {}, not a list of float16, float32 or float64 values, so it cannot be a vector column",
                    file.display(),
                    f.name(),
                    f.data_type()
                )));
            };
            let mut field = VectorField::dense(fixed.map(|n| n as u32), None);
            field.name = name.clone();
            if !matches!(element, DataType::Float32) {
                field.source_datatype = Some(float_name(element).to_owned());
            }
            fields.push(field);
            planned.push(VectorColumn {
                index,
                name,
                element: element.clone(),
            });
        }
        let sparse = match &mapping.sparse {
            Some((col, field)) => {
                let index = find(col, "--sparse-column")?;
                let ok = matches!(schema.field(index).data_type(), DataType::Struct(children)
                    if children.iter().any(|c| c.name() == "indices") && children.iter().any(|c| c.name() == "values"));
                if !ok {
                    return Err(Error::Usage(format!(
                        "{}: column `{col}` is {}, not a struct of `indices` and `values` lists, so it cannot be a sparse vector column",
                        file.display(),
                        schema.field(index).data_type()
                    )));
                }
                fields.push(VectorField {
                    name: field.clone(),
                    kind: VectorKind::Sparse,
                    dimension: None,
                    metric: None,
                    index: None,
                    stored_values: Default::default(),
                    source_datatype: None,
                });
                Some(index)
            }
            None => None,
        };
        let mut used: Vec<usize> = [id, document, uri, namespace, sparse]
            .into_iter()
            .flatten()
            .chain(planned.iter().map(|v| v.index))
            .collect();
        for name in &mapping.ignore {
            if let Some(i) = names.iter().position(|n| n == name) {
                used.push(i);
            }
        }
        let (json, keys) = match &mapping.metadata {
            MetadataSource::Json(col) => (Some(find(col, "--metadata-json")?), Vec::new()),
            MetadataSource::Columns(cols) => {
                let mut keys = Vec::new();
                for c in cols {
                    keys.push((find(c, "--metadata-columns")?, c.clone()));
                }
                (None, keys)
            }
            MetadataSource::Rest => {
                let json = names
                    .iter()
                    .position(|n| *n == "metadata")
                    .filter(|i| !used.contains(i));
                let keys = (0..names.len())
                    .filter(|i| !used.contains(i) && Some(*i) != json)
                    .map(|i| (i, names[i].to_owned()))
                    .collect();
                (json, keys)
            }
        };
        Ok(Plan {
            id,
            vectors: planned,
            sparse,
            document,
            uri,
            namespace,
            json,
            keys,
            fields,
        })
    }

    /// The columns the plan reads, sorted.
    pub fn columns(&self) -> Vec<usize> {
        let mut c: Vec<usize> = [
            self.id,
            self.sparse,
            self.document,
            self.uri,
            self.namespace,
            self.json,
        ]
        .into_iter()
        .flatten()
        .chain(self.vectors.iter().map(|v| v.index))
        .chain(self.keys.iter().map(|(i, _)| *i))
        .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Whether the plan reads the same parts with the same kinds as `other`
    /// (the next file of a multi-file input).
    pub fn same_fields(&self, other: &Plan) -> bool {
        self.fields.len() == other.fields.len()
            && self.fields.iter().zip(&other.fields).all(|(a, b)| {
                a.name == b.name
                    && a.kind == b.kind
                    && (a.dimension.is_none()
                        || b.dimension.is_none()
                        || a.dimension == b.dimension)
            })
    }
}

/// Turns batches into records by a [`Plan`], counting what was rounded.
#[derive(Debug)]
pub struct Decoder {
    /// Records decoded so far: the position of the next one.
    pub position: u64,
    /// Per dense vector field, records with a value float32 could not hold.
    pub rounded: Vec<u64>,
    /// Lift `__vecport_document` / `__vecport_uri` out of metadata.
    pub lift_vecport_keys: bool,
    /// An empty metadata object means no metadata.
    pub empty_is_none: bool,
}

impl Decoder {
    /// A decoder for records of `plan`.
    pub fn new(plan: &Plan) -> Decoder {
        Decoder {
            position: 0,
            rounded: vec![0; plan.vectors.len()],
            lift_vecport_keys: false,
            empty_is_none: false,
        }
    }

    /// Decodes one batch of `file`.
    pub fn decode(&mut self, plan: &Plan, batch: &RecordBatch, file: &Path) -> Result<Vec<Record>> {
        let rows = batch.num_rows();
        let first = self.position;
        let at = |row: usize| Locus {
            file: file.to_owned(),
            row: first + row as u64,
        };
        let strings = |i: Option<usize>, what: &str| -> Result<Option<ArrayRef>> {
            i.map(|i| {
                cast(batch.column(i), &DataType::Utf8).map_err(|e| {
                    Error::Usage(format!(
                        "{}: the {what} column `{}` cannot be read as text: {e}",
                        file.display(),
                        batch.schema().field(i).name()
                    ))
                })
            })
            .transpose()
        };
        let ids: Option<(ArrayRef, bool)> = match plan.id {
            None => None,
            Some(i) => {
                let col = batch.column(i);
                if col.data_type().is_integer() {
                    let unsigned = cast(col, &DataType::UInt64)
                        .map_err(|e| Error::InvalidData(format!("{}: {e}", file.display())))?;
                    Some((unsigned, true))
                } else {
                    Some((strings(Some(i), "id")?.expect("some"), false))
                }
            }
        };
        let documents = strings(plan.document, "document")?;
        let uris = strings(plan.uri, "uri")?;
        let namespaces = strings(plan.namespace, "namespace")?;
        let list_f32 = DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)));
        let list_f64 = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        let mut dense = Vec::with_capacity(plan.vectors.len());
        for v in &plan.vectors {
            let col = batch.column(v.index);
            let f32s = cast(col, &list_f32).map_err(|e| {
                Error::InvalidData(format!("{}: vector column: {e}", file.display()))
            })?;
            let f64s = match v.element {
                DataType::Float64 => Some(
                    cast(col, &list_f64)
                        .map_err(|e| Error::InvalidData(format!("{}: {e}", file.display())))?,
                ),
                _ => None,
            };
            dense.push((f32s, f64s));
        }
        let sparse = match plan.sparse {
            None => None,
            Some(i) => {
                let s = batch.column(i).as_struct();
                let idx = s.column_by_name("indices").expect("checked in the plan");
                let val = s.column_by_name("values").expect("checked in the plan");
                let list_u32 =
                    DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, true)));
                let idx = cast(idx, &list_u32).map_err(|e| {
                    Error::InvalidData(format!("{}: sparse indices: {e}", file.display()))
                })?;
                let val = cast(val, &list_f32).map_err(|e| {
                    Error::InvalidData(format!("{}: sparse values: {e}", file.display()))
                })?;
                Some((batch.column(i).clone(), idx, val))
            }
        };
        let json = plan.json.map(|i| batch.column(i).clone());
        let keys: Vec<(ArrayRef, &str)> = plan
            .keys
            .iter()
            .map(|(i, name)| Ok((scalar_column(batch.column(*i), name, file)?, name.as_str())))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let id = match &ids {
                None => generated_id(first + row as u64),
                Some((col, numeric)) => {
                    if col.is_null(row) {
                        let what = if *numeric {
                            "is null or negative"
                        } else {
                            "is null"
                        };
                        return Err(at(row).invalid(format!("its id {what}; every record needs an id (leave --id-column out to number the records)")));
                    }
                    if *numeric {
                        RecordId::Uint(col.as_primitive::<UInt64Type>().value(row))
                    } else {
                        RecordId::String(col.as_string::<i32>().value(row).to_owned())
                    }
                }
            };
            let mut vectors = Vec::with_capacity(plan.fields.len());
            for (k, (f32s, f64s)) in dense.iter().enumerate() {
                let list = f32s.as_list::<i32>();
                if list.is_null(row) {
                    vectors.push(None);
                    continue;
                }
                let values = list.value(row);
                if values.null_count() > 0 {
                    return Err(at(row).invalid(format!(
                        "vector {:?} holds null values",
                        plan.vectors[k].name
                    )));
                }
                let values = values.as_primitive::<Float32Type>().values().to_vec();
                if let Some(f64s) = f64s {
                    let wide = f64s.as_list::<i32>().value(row);
                    if super::rounds(wide.as_primitive::<Float64Type>().values()) {
                        self.rounded[k] += 1;
                    }
                }
                vectors.push(Some(Vector::Dense(values)));
            }
            if let Some((s, idx, val)) = &sparse {
                if s.is_null(row) {
                    vectors.push(None);
                } else {
                    let (il, vl) = (idx.as_list::<i32>(), val.as_list::<i32>());
                    if il.is_null(row) || vl.is_null(row) {
                        vectors.push(None);
                    } else {
                        let (i, v) = (il.value(row), vl.value(row));
                        if i.null_count() > 0 || v.null_count() > 0 {
                            return Err(at(row).invalid(
                                "its sparse vector holds null or negative indices or null values"
                                    .into(),
                            ));
                        }
                        let indices = i.as_primitive::<UInt32Type>().values().to_vec();
                        let values = v.as_primitive::<Float32Type>().values().to_vec();
                        if indices.len() != values.len() {
                            return Err(at(row).invalid(format!(
                                "its sparse vector has {} indices and {} values",
                                indices.len(),
                                values.len()
                            )));
                        }
                        vectors.push(Some(Vector::Sparse(SparseVector { indices, values })));
                    }
                }
            }
            let text = |c: &Option<ArrayRef>| -> Option<String> {
                c.as_ref()
                    .filter(|c| !c.is_null(row))
                    .map(|c| c.as_string::<i32>().value(row).to_owned())
            };
            let mut metadata: Option<Metadata> = None;
            if let Some(col) = &json {
                metadata = json_object(col, row).map_err(|e| at(row).invalid(e))?;
            }
            for (col, key) in &keys {
                if let Some(v) = json_value(col.as_ref(), row)
                    .map_err(|e| at(row).invalid(format!("metadata column `{key}`: {e}")))?
                {
                    let m = metadata.get_or_insert_with(Map::new);
                    if m.contains_key(*key) {
                        return Err(at(row).invalid(format!(
                            "metadata key `{key}` is both a column and a key of the JSON metadata; leave one out with --metadata-columns or --metadata-json"
                        )));
                    }
                    m.insert((*key).to_owned(), v);
                }
            }
            let mut document = text(&documents);
            let mut uri = text(&uris);
            if self.lift_vecport_keys
                && let Some(m) = metadata.as_mut()
            {
                if document.is_none()
                    && let Some(Value::String(d)) = m.get(crate::connectors::pinecone::DOCUMENT_KEY)
                {
                    document = Some(d.clone());
                    m.shift_remove(crate::connectors::pinecone::DOCUMENT_KEY);
                }
                if uri.is_none()
                    && let Some(Value::String(u)) = m.get(crate::connectors::pinecone::URI_KEY)
                {
                    uri = Some(u.clone());
                    m.shift_remove(crate::connectors::pinecone::URI_KEY);
                }
            }
            if self.empty_is_none && metadata.as_ref().is_some_and(Map::is_empty) {
                metadata = None;
            }
            out.push(Record {
                id,
                namespace: text(&namespaces).filter(|n| !n.is_empty()),
                vectors,
                metadata,
                document,
                uri,
            });
        }
        self.position += rows as u64;
        Ok(out)
    }
}

/// A row of an input, for messages.
pub(crate) struct Locus {
    pub file: PathBuf,
    pub row: u64,
}

impl Locus {
    pub(crate) fn invalid(&self, what: String) -> Error {
        Error::InvalidData(format!("{}: row {}: {what}", self.file.display(), self.row))
    }
}

/// A metadata column in a form [`json_value`] reads: dictionaries unpacked,
/// dates, times, decimals and other types without a JSON counterpart as text.
fn scalar_column(col: &ArrayRef, name: &str, file: &Path) -> Result<ArrayRef> {
    fn readable(t: &DataType) -> bool {
        match t {
            DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8 => true,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                readable(f.data_type())
            }
            DataType::Struct(fields) => fields.iter().all(|f| readable(f.data_type())),
            _ => false,
        }
    }
    if readable(col.data_type()) {
        return Ok(col.clone());
    }
    let target = match col.data_type() {
        DataType::Dictionary(_, v) if readable(v) => v.as_ref().clone(),
        DataType::Utf8View => DataType::Utf8,
        _ => DataType::Utf8,
    };
    cast(col, &target).map_err(|e| {
        Error::Usage(format!(
            "{}: metadata column `{name}` is {}, which vecport cannot turn into JSON ({e}); leave it out with --metadata-columns",
            file.display(),
            col.data_type()
        ))
    })
}

/// The JSON value of `col` at `row`; `None` for null (the key is left out).
pub(crate) fn json_value(
    col: &dyn Array,
    row: usize,
) -> std::result::Result<Option<Value>, String> {
    if col.is_null(row) {
        return Ok(None);
    }
    let float = |x: f64| -> std::result::Result<Value, String> {
        Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| format!("holds {x}, which JSON cannot carry"))
    };
    use arrow::datatypes::*;
    let v = match col.data_type() {
        DataType::Null => return Ok(None),
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float16 => float(col.as_primitive::<Float16Type>().value(row).to_f64())?,
        // The shortest decimal of the float32, so 0.1f32 stays 0.1.
        DataType::Float32 => {
            let x = col.as_primitive::<Float32Type>().value(row);
            float(x.to_string().parse::<f64>().unwrap_or(x as f64))?
        }
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(row))?,
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(col.as_string::<i64>().value(row).to_owned()),
        DataType::List(_) => items(col.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => items(col.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => items(col.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let s = col.as_struct();
            let mut m = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                if let Some(v) = json_value(c.as_ref(), row)? {
                    m.insert(f.name().clone(), v);
                }
            }
            Value::Object(m)
        }
        other => return Err(format!("is {other}, which vecport cannot turn into JSON")),
    };
    Ok(Some(v))
}

fn items(values: &dyn Array) -> std::result::Result<Value, String> {
    (0..values.len())
        .map(|i| json_value(values, i).map(|v| v.unwrap_or(Value::Null)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The metadata object in a JSON column at `row`: JSON text of an object,
/// or a struct; null is no metadata.
fn json_object(col: &ArrayRef, row: usize) -> std::result::Result<Option<Metadata>, String> {
    if col.is_null(row) {
        return Ok(None);
    }
    let text = match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(col.as_string_view().value(row)),
        _ => None,
    };
    let value = match text {
        Some(t) => serde_json::from_str::<Value>(t)
            .map_err(|e| format!("its metadata is not JSON: {e}"))?,
        None => match json_value(col.as_ref(), row)? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    match value {
        Value::Object(m) => Ok(Some(m)),
        Value::Null => Ok(None),
        other => Err(format!(
            "its metadata is {}, not a JSON object",
            crate::snapshot::manifest::value_type(&other)
        )),
    }
}
