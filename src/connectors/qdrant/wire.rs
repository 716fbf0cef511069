//! Qdrant's JSON shapes, with hand-written decoders for vectors so that a
//! page of 768-dimensional points decodes straight into `f32`s without
//! buffering every number as a generic JSON value.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde_json::value::RawValue;

use crate::connectors::floats::{parse_f32_array, parse_f32_rows};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"result": T, "status": "ok", "time": …}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub result: T,
}

/// `{"status": {"error": "…"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub status: ErrorStatus,
}

#[derive(Debug, Deserialize)]
pub struct ErrorStatus {
    pub error: String,
}

#[derive(Debug, Deserialize)]
pub struct CollectionsList {
    pub collections: Vec<CollectionName>,
}

#[derive(Debug, Deserialize)]
pub struct CollectionName {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Count {
    pub count: u64,
}

#[derive(Debug, Deserialize)]
pub struct ScrollResult {
    pub points: Vec<Point>,
    #[serde(default)]
    pub next_page_offset: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Point {
    pub id: Value,
    #[serde(default)]
    pub payload: Option<Map<String, Value>>,
    #[serde(default)]
    pub vector: Option<AnyVector>,
}

/// A point's `vector`: one unnamed vector, or named vectors.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyVector {
    Single(OneVector),
    Named(Vec<(String, OneVector)>),
}

/// One vector value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneVector {
    Dense(Vec<f32>),
    Multi(Vec<Vec<f32>>),
    Sparse { indices: Vec<u32>, values: Vec<f32> },
}

impl<'de> Deserialize<'de> for AnyVector {
    /// Captures the vector's JSON text and parses its numbers with
    /// [`crate::connectors::floats`]: exact, and much faster than going
    /// through serde's `f64`s.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        parse_any(raw.get()).map_err(de::Error::custom)
    }
}

fn parse_any(text: &str) -> Result<AnyVector, String> {
    if text.trim_start().starts_with('{') {
        let named: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(text).map_err(|e| format!("named vectors: {e}"))?;
        let named = named
            .into_iter()
            .map(|(k, v)| parse_one(v.get()).map(|v| (k, v)))
            .collect::<Result<_, _>>()?;
        Ok(AnyVector::Named(named))
    } else {
        parse_one(text).map(AnyVector::Single)
    }
}

#[derive(Deserialize)]
struct SparseRaw {
    indices: Vec<u32>,
    values: Box<RawValue>,
}

fn parse_one(text: &str) -> Result<OneVector, String> {
    let t = text.trim_start();
    if t.starts_with('{') {
        let s: SparseRaw = serde_json::from_str(t).map_err(|e| format!("sparse vector: {e}"))?;
        return Ok(OneVector::Sparse {
            indices: s.indices,
            values: parse_f32_array(s.values.get())?,
        });
    }
    let rows = t
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with('['));
    if rows {
        parse_f32_rows(t).map(OneVector::Multi)
    } else {
        parse_f32_array(t).map(OneVector::Dense)
    }
}

impl Serialize for AnyVector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            AnyVector::Single(v) => v.serialize(s),
            AnyVector::Named(named) => {
                let mut m = s.serialize_map(Some(named.len()))?;
                for (k, v) in named {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

/// A point to upsert.
#[derive(Debug, Serialize)]
pub struct PointOut {
    pub id: Value,
    pub vector: AnyVector,
    pub payload: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct UpsertBody {
    pub points: Vec<PointOut>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_vector_shape() {
        let p: Point = serde_json::from_str(r#"{"id":1,"vector":[0.5,-1,2]}"#).unwrap();
        assert_eq!(
            p.vector,
            Some(AnyVector::Single(OneVector::Dense(vec![0.5, -1.0, 2.0])))
        );
        let p: Point = serde_json::from_str(r#"{"id":1,"vector":[[1,2],[3,4]]}"#).unwrap();
        assert_eq!(
            p.vector,
            Some(AnyVector::Single(OneVector::Multi(vec![
                vec![1.0, 2.0],
                vec![3.0, 4.0]
            ])))
        );
        let p: Point = serde_json::from_str(
            r#"{"id":"x","payload":{},"vector":{"a":[1.5],"s":{"values":[0.25],"indices":[7]},"m":[[1]]}}"#,
        )
        .unwrap();
        assert_eq!(
            p.vector,
            // By name: fields are matched by name, never by position.
            Some(AnyVector::Named(vec![
                ("a".into(), OneVector::Dense(vec![1.5])),
                ("m".into(), OneVector::Multi(vec![vec![1.0]])),
                (
                    "s".into(),
                    OneVector::Sparse {
                        indices: vec![7],
                        values: vec![0.25]
                    }
                ),
            ]))
        );
        let p: Point = serde_json::from_str(r#"{"id":1}"#).unwrap();
        assert_eq!(p.vector, None);
    }

    #[test]
    fn encodes_f32_shortest() {
        let v = AnyVector::Named(vec![
            ("d".into(), OneVector::Dense(vec![0.1])),
            (
                "s".into(),
                OneVector::Sparse {
                    indices: vec![3],
                    values: vec![0.2],
                },
            ),
        ]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"d":[0.1],"s":{"indices":[3],"values":[0.2]}}"#
        );
    }
}
