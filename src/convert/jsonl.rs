//! JSON Lines in: one JSON object per line, read line by line and mapped to
//! a record by a [`ColumnMapping`](super::ColumnMapping) whose columns are
//! the objects' keys. Blank lines are skipped; ids, when no key holds them,
//! are the record's position (its line among the non-blank ones, from 0).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{
    CollectionSpec, Metadata, Record, RecordId, SparseVector, Vector, VectorField, VectorKind,
};

use super::{
    ColumnMapping, Lossy, MetadataSource, ReadOptions, RecordReader, generated_id, name_of,
};

/// Reads the lines of a JSON Lines file as objects.
pub(crate) struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    line: u64,
    buf: String,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> Result<Lines> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Lines {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 20, file),
            line: 0,
            buf: String::new(),
        })
    }

    /// The next object with its line number (from 1), `None` at the end.
    pub(crate) fn next_object(&mut self) -> Result<Option<(u64, Map<String, Value>)>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            return match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => Ok(Some((self.line, m))),
                Ok(_) => Err(self.invalid("is not a JSON object".into())),
                Err(e) => Err(self.invalid(format!("is not JSON: {e}"))),
            };
        }
    }

    pub(crate) fn invalid(&self, what: String) -> Error {
        Error::InvalidData(format!(
            "{}: line {}: {what}",
            self.path.display(),
            self.line
        ))
    }
}

/// Which key holds what, resolved against the first object.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    id: Option<String>,
    vectors: Vec<(String, String)>,
    sparse: Option<String>,
    document: Option<String>,
    uri: Option<String>,
    namespace: Option<String>,
    metadata: MetadataSource,
    used: Vec<String>,
    pub(crate) fields: Vec<VectorField>,
}

impl KeyPlan {
    /// Resolves `mapping` against `first`; `vectors: false` for rows whose
    /// vectors come from elsewhere (`npy`).
    pub(crate) fn resolve(
        mapping: &ColumnMapping,
        first: &Map<String, Value>,
        vectors: bool,
        file: &Path,
    ) -> Result<KeyPlan> {
        let conventional = |asked: &Option<String>, name: &str| {
            asked
                .clone()
                .or_else(|| first.contains_key(name).then(|| name.to_owned()))
        };
        let mut dense = mapping.vectors.clone();
        if vectors && dense.is_empty() {
            let numeric: Vec<&String> = first
                .iter()
                .filter(|(k, v)| {
                    !mapping.ignore.contains(k)
                        && matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number))
                })
                .map(|(k, _)| k)
                .collect();
            match numeric.as_slice() {
                [one] => dense.push(((*one).clone(), String::new())),
                [] => {
                    return Err(Error::Usage(format!(
                        "{}: the first line has no key holding a list of numbers; name the vector key with --vector-column KEY",
                        file.display()
                    )));
                }
                many => {
                    return Err(Error::Usage(format!(
                        "{}: several keys of the first line hold lists of numbers ({}); name the vector key(s) with --vector-column KEY[=FIELD]",
                        file.display(),
                        many.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        let mut fields: Vec<VectorField> = dense
            .iter()
            .map(|(_, name)| {
                let mut f = VectorField::dense(None, None);
                f.name = name.clone();
                f
            })
            .collect();
        if let Some((_, name)) = &mapping.sparse {
            fields.push(VectorField {
                name: name.clone(),
                kind: VectorKind::Sparse,
                dimension: None,
                metric: None,
                index: None,
                stored_values: Default::default(),
                source_datatype: None,
            });
        }
        let plan = KeyPlan {
            id: conventional(&mapping.id, "id"),
            sparse: mapping.sparse.as_ref().map(|(k, _)| k.clone()),
            document: conventional(&mapping.document, "document"),
            uri: conventional(&mapping.uri, "uri"),
            namespace: conventional(&mapping.namespace, "namespace"),
            metadata: mapping.metadata.clone(),
            used: Vec::new(),
            vectors: if vectors { dense } else { Vec::new() },
            fields: if vectors { fields } else { Vec::new() },
        };
        let used = [
            &plan.id,
            &plan.sparse,
            &plan.document,
            &plan.uri,
            &plan.namespace,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(plan.vectors.iter().map(|(k, _)| k.clone()))
        .chain(mapping.vectors.iter().map(|(k, _)| k.clone()))
        .chain(mapping.ignore.iter().cloned())
        .collect();
        Ok(KeyPlan { used, ..plan })
    }

    /// The record `object` describes; `vectors` are filled when the plan
    /// reads them. `rounded[k]` counts records whose vector k lost bits.
    pub(crate) fn record(
        &self,
        mut object: Map<String, Value>,
        position: u64,
        rounded: &mut [u64],
    ) -> std::result::Result<Record, String> {
        let id = match &self.id {
            None => generated_id(position),
            Some(k) => match object.remove(k) {
                Some(Value::String(s)) => RecordId::String(s),
                Some(Value::Number(n)) if n.is_u64() => RecordId::Uint(n.as_u64().unwrap_or(0)),
                Some(other) => {
                    return Err(format!(
                        "its id `{k}` is {other}; ids are strings or unsigned integers"
                    ));
                }
                None => return Err(format!("has no id `{k}`")),
            },
        };
        let mut vectors = Vec::with_capacity(self.fields.len());
        for (k, (key, _)) in self.vectors.iter().enumerate() {
            match object.remove(key) {
                None | Some(Value::Null) => vectors.push(None),
                Some(Value::Array(items)) => {
                    let mut values = Vec::with_capacity(items.len());
                    let mut lost = false;
                    for v in &items {
                        let x = v
                            .as_f64()
                            .ok_or_else(|| format!("vector `{key}` holds {v}, not a number"))?;
                        let f = x as f32;
                        lost |= f as f64 != x;
                        values.push(f);
                    }
                    if lost {
                        rounded[k] += 1;
                    }
                    vectors.push(Some(Vector::Dense(values)));
                }
                Some(other) => return Err(format!("vector `{key}` is {other}, not a list")),
            }
        }
        if let Some(key) = &self.sparse {
            match object.remove(key) {
                None | Some(Value::Null) => vectors.push(None),
                Some(v) => {
                    let s: SparseVector = serde_json::from_value(v).map_err(|e| {
                        format!("sparse vector `{key}` is not {{\"indices\": [...], \"values\": [...]}}: {e}")
                    })?;
                    if s.indices.len() != s.values.len() {
                        return Err(format!(
                            "sparse vector `{key}` has {} indices and {} values",
                            s.indices.len(),
                            s.values.len()
                        ));
                    }
                    vectors.push(Some(Vector::Sparse(s)));
                }
            }
        }
        let mut text =
            |key: &Option<String>, what: &str| -> std::result::Result<Option<String>, String> {
                match key.as_ref().and_then(|k| object.remove(k)) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(other) => Err(format!("its {what} is {other}, not a string")),
                }
            };
        let document = text(&self.document, "document")?;
        let uri = text(&self.uri, "uri")?;
        let namespace = text(&self.namespace, "namespace")?.filter(|n| !n.is_empty());
        let metadata: Option<Metadata> = match &self.metadata {
            MetadataSource::Json(key) => match object.remove(key) {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m),
                Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Object(m)) => Some(m),
                    _ => return Err(format!("its metadata `{key}` is not a JSON object")),
                },
                Some(_) => return Err(format!("its metadata `{key}` is not a JSON object")),
            },
            MetadataSource::Columns(keys) => {
                let m: Metadata = keys
                    .iter()
                    .filter_map(|k| {
                        object
                            .remove(k)
                            .filter(|v| !v.is_null())
                            .map(|v| (k.clone(), v))
                    })
                    .collect();
                (!m.is_empty()).then_some(m)
            }
            MetadataSource::Rest => {
                let mut m = match object.remove("metadata") {
                    Some(Value::Object(m)) => m,
                    Some(Value::Null) | None => Map::new(),
                    Some(other) => {
                        let mut m = Map::new();
                        m.insert("metadata".into(), other);
                        m
                    }
                };
                for (k, v) in object {
                    if self.used.contains(&k) || v.is_null() {
                        continue;
                    }
                    if m.contains_key(&k) {
                        return Err(format!(
                            "metadata key `{k}` is both a key of the line and of its `metadata` object"
                        ));
                    }
                    m.insert(k, v);
                }
                (!m.is_empty()).then_some(m)
            }
        };
        Ok(Record {
            id,
            namespace,
            vectors,
            metadata,
            document,
            uri,
        })
    }
}

/// Reads a JSON Lines file as one collection.
pub struct JsonlReader {
    lines: Lines,
    pending: Option<(u64, Map<String, Value>)>,
    plan: KeyPlan,
    position: u64,
    rounded: Vec<u64>,
    batch_rows: usize,
    spec: CollectionSpec,
}

impl JsonlReader {
    /// Opens `path`.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<JsonlReader> {
        let mut lines = Lines::open(path)?;
        let first = lines.next_object()?;
        let plan = match &first {
            Some((_, o)) => KeyPlan::resolve(&options.mapping, o, true, path)?,
            None => {
                return Err(Error::Usage(format!(
                    "{}: holds no records, so the vector dimension is unknown",
                    path.display()
                )));
            }
        };
        let mut fields = plan.fields.clone();
        for f in &mut fields {
            if f.kind == VectorKind::Dense {
                f.metric = options.metric;
            }
        }
        Ok(JsonlReader {
            rounded: vec![0; plan.vectors.len()],
            spec: CollectionSpec {
                name: options.collection.clone().unwrap_or_else(|| name_of(path)),
                vectors: fields,
                ..CollectionSpec::default()
            },
            lines,
            pending: first,
            plan,
            position: 0,
            batch_rows: options.batch_rows,
        })
    }
}

impl RecordReader for JsonlReader {
    fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        let mut out = Vec::new();
        while out.len() < self.batch_rows {
            let next = match self.pending.take() {
                Some(p) => Some(p),
                None => self.lines.next_object()?,
            };
            let Some((line, object)) = next else { break };
            let r = self
                .plan
                .record(object, self.position, &mut self.rounded)
                .map_err(|e| {
                    Error::InvalidData(format!("{}: line {line}: {e}", self.lines.path.display()))
                })?;
            self.position += 1;
            out.push(r);
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn lossy(&self) -> Vec<Lossy> {
        rounded_lossy(
            &self.spec,
            &self.plan.vectors,
            &self.rounded,
            "JSON numbers",
        )
    }
}

pub(crate) fn rounded_lossy(
    spec: &CollectionSpec,
    keys: &[(String, String)],
    rounded: &[u64],
    what: &str,
) -> Vec<Lossy> {
    keys.iter()
        .zip(rounded)
        .filter(|(_, n)| **n > 0)
        .map(|((key, field), n)| Lossy {
            collection: spec.name.clone(),
            change: "rounded",
            key: field.clone(),
            records: *n,
            reason: format!(
                "vector `{key}` held {what} float32 cannot hold exactly: they were rounded to the nearest float32"
            ),
        })
        .collect()
}
