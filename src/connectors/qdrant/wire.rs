//! Qdrant's JSON shapes, with hand-written decoders for vectors so that a
//! page of 768-dimensional points decodes straight into `f32`s without
//! buffering every number as a generic JSON value.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// An element of a vector array: a number (dense) or a row (multivector).
enum NumOrRow {
    Num(f32),
    Row(Vec<f32>),
}

impl<'de> Deserialize<'de> for NumOrRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NumOrRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or an array of numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumOrRow, E> {
                Ok(NumOrRow::Num(v as f32))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrRow, E> {
                Ok(NumOrRow::Num(v as f32))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrRow, E> {
                Ok(NumOrRow::Num(v as f32))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NumOrRow, A::Error> {
                let mut row = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                while let Some(x) = seq.next_element::<f32>()? {
                    row.push(x);
                }
                Ok(NumOrRow::Row(row))
            }
        }
        d.deserialize_any(V)
    }
}

fn vector_from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<OneVector, A::Error> {
    match seq.next_element::<NumOrRow>()? {
        None => Ok(OneVector::Dense(Vec::new())),
        Some(NumOrRow::Num(first)) => {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(767) + 1);
            v.push(first);
            while let Some(x) = seq.next_element::<f32>()? {
                v.push(x);
            }
            Ok(OneVector::Dense(v))
        }
        Some(NumOrRow::Row(first)) => {
            let mut rows = vec![first];
            while let Some(r) = seq.next_element::<Vec<f32>>()? {
                rows.push(r);
            }
            Ok(OneVector::Multi(rows))
        }
    }
}

impl<'de> Deserialize<'de> for OneVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneVector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a dense vector, a multivector or a sparse vector")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneVector, A::Error> {
                vector_from_seq(seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OneVector, A::Error> {
                let (mut indices, mut values) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "indices" => indices = Some(map.next_value::<Vec<u32>>()?),
                        "values" => values = Some(map.next_value::<Vec<f32>>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(OneVector::Sparse {
                    indices: indices.ok_or_else(|| de::Error::missing_field("indices"))?,
                    values: values.ok_or_else(|| de::Error::missing_field("values"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for AnyVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyVector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a vector or a map of named vectors")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyVector, A::Error> {
                vector_from_seq(seq).map(AnyVector::Single)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyVector, A::Error> {
                let mut named = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    named.push((k, map.next_value::<OneVector>()?));
                }
                Ok(AnyVector::Named(named))
            }
        }
        d.deserialize_any(V)
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
            Some(AnyVector::Named(vec![
                ("a".into(), OneVector::Dense(vec![1.5])),
                (
                    "s".into(),
                    OneVector::Sparse {
                        indices: vec![7],
                        values: vec![0.25]
                    }
                ),
                ("m".into(), OneVector::Multi(vec![vec![1.0]])),
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
