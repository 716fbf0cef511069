//! Qdrant's JSON shapes. Scroll pages, which carry the vectors, are decoded
//! in one pass by [`decode_scroll`]: the structure is walked with a
//! [`JsonCursor`], vector numbers go straight into `f32`s of the record's
//! field slots, and ids and payloads go through serde_json as arbitrary JSON.

use crate::connectors::json_cursor::JsonCursor;
use crate::model::{SparseVector, Vector, VectorField};
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

/// One page of `POST /collections/{name}/points/scroll`.
#[derive(Debug, Default)]
pub struct ScrollPage {
    pub points: Vec<Point>,
    /// The next page's offset; `None` (or `null`) after the last page.
    pub next_page_offset: Option<Value>,
}

/// A scrolled point, its vectors already in the collection's field slots.
#[derive(Debug, PartialEq)]
pub struct Point {
    pub id: Value,
    pub payload: Option<Map<String, Value>>,
    /// One slot per field of the collection, in its order.
    pub vectors: Vec<Option<Vector>>,
}

/// Qdrant allows at most 65,536 dimensions; never reserve more than that
/// on a collection's say-so.
const MAX_RESERVE: usize = 1 << 16;

/// Decodes a scroll response (`{"result": {"points": […], "next_page_offset": …}, …}`)
/// for a collection with `fields`. Errors name the point they are in: by
/// id when it has been read, else by position in the page.
pub fn decode_scroll(body: &[u8], fields: &[VectorField]) -> Result<ScrollPage, String> {
    let mut c = JsonCursor::new(body);
    let mut page = None;
    c.object(|c, key| match &*key {
        "result" => {
            let mut p = ScrollPage::default();
            c.object(|c, key| match &*key {
                "points" => c
                    .array(|c, i| {
                        p.points.push(decode_point(c, i, fields)?);
                        Ok(())
                    })
                    .map(drop),
                "next_page_offset" => {
                    p.next_page_offset = c.value()?;
                    Ok(())
                }
                _ => c.skip(),
            })?;
            page = Some(p);
            Ok(())
        }
        _ => c.skip(),
    })?;
    c.end()?;
    page.ok_or_else(|| "the response has no `result`".to_owned())
}

/// The `next_page_offset` of a scroll response, read from the end of the body
/// without decoding the points (Qdrant writes it after them), so that the
/// next page can be asked for while this one decodes. Only a guess: the
/// caller checks it against what [`decode_scroll`] finds. `None` when absent
/// or null.
pub fn peek_next_page_offset(body: &[u8]) -> Option<Value> {
    const KEY: &[u8] = b"\"next_page_offset\"";
    // The key is among the last few fields of the envelope.
    let tail = &body[body.len().saturating_sub(64 << 10)..];
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)?;
    let mut c = JsonCursor::new(&tail[at + KEY.len()..]);
    c.expect(b':').ok()?;
    c.value::<Value>().ok().filter(|v| !v.is_null())
}

fn decode_point(
    c: &mut JsonCursor<'_>,
    index: usize,
    fields: &[VectorField],
) -> Result<Point, String> {
    let mut id: Option<Value> = None;
    let mut payload = None;
    let mut vectors: Vec<Option<Vector>> = vec![None; fields.len()];
    // A problem found while the id may still be unread, reported at the end.
    let mut deferred: Option<String> = None;
    let name_point = |id: &Option<Value>| match id {
        Some(id) => format!("point {id}"),
        None => format!("point #{index} of the page"),
    };
    c.object(|c, key| {
        let read = match &*key {
            "id" => c.value().map(|v| id = Some(v)),
            "payload" => c.value().map(|v| payload = v),
            "vector" | "vectors" => decode_vectors(c, fields, &mut vectors, &mut deferred),
            _ => c.skip(),
        };
        read.map_err(|e| format!("{}: {e}", name_point(&id)))
    })?;
    if let Some(problem) = deferred {
        return Err(format!("{}: {problem}", name_point(&id)));
    }
    let id = id.ok_or_else(|| format!("{} has no id", name_point(&None)))?;
    Ok(Point {
        id,
        payload,
        vectors,
    })
}

/// A point's `vector`: one unnamed vector, or named vectors (`{"name": …}`),
/// each dense (`[…]`), multi (`[[…], …]`) or sparse (`{"indices", "values"}`).
fn decode_vectors(
    c: &mut JsonCursor<'_>,
    fields: &[VectorField],
    slots: &mut [Option<Vector>],
    deferred: &mut Option<String>,
) -> Result<(), String> {
    if c.null() {
        return Ok(());
    }
    if c.peek() == Some(b'[') {
        // One unnamed vector; dropped when the collection has no unnamed field.
        return match fields.iter().position(|f| f.name.is_empty()) {
            Some(i) => {
                slots[i] = Some(decode_one(c, &fields[i])?);
                Ok(())
            }
            None => c.skip(),
        };
    }
    c.object(|c, name| match fields.iter().position(|f| f.name == name) {
        Some(i) => {
            slots[i] =
                Some(decode_one(c, &fields[i]).map_err(|e| format!("vector `{name}`: {e}"))?);
            Ok(())
        }
        None => {
            deferred.get_or_insert_with(|| {
                format!("has vector `{name}`, which the collection does not declare")
            });
            c.skip()
        }
    })
}

/// One vector value, by its JSON shape.
fn decode_one(c: &mut JsonCursor<'_>, field: &VectorField) -> Result<Vector, String> {
    let dim = field.dimension.map_or(0, |d| (d as usize).min(MAX_RESERVE));
    match c.peek() {
        Some(b'{') => {
            let (mut indices, mut values) = (None, None);
            c.object(|c, key| match &*key {
                "indices" => c.value().map(|v| indices = Some(v)),
                "values" => c.f32_array(0).map(|v| values = Some(v)),
                _ => c.skip(),
            })
            .map_err(|e| format!("sparse vector: {e}"))?;
            match (indices, values) {
                (Some(indices), Some(values)) => {
                    Ok(Vector::Sparse(SparseVector { indices, values }))
                }
                _ => Err("sparse vector without `indices` or `values`".into()),
            }
        }
        _ if c.peek_in_array() == Some(b'[') => c.f32_rows(dim).map(Vector::Multi),
        _ => c.f32_array(dim).map(Vector::Dense),
    }
}

/// A point's `vector` to upsert: one unnamed vector, or named vectors.
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
    use crate::model::{Metric, VectorKind};
    use serde_json::json;

    fn page(points: &str, fields: &[VectorField]) -> Result<ScrollPage, String> {
        let body = format!(
            r#"{{"result":{{"points":[{points}],"next_page_offset":null}},"status":"ok","time":0.001}}"#
        );
        decode_scroll(body.as_bytes(), fields)
    }

    fn one(point: &str, fields: &[VectorField]) -> Point {
        let mut p = page(point, fields).unwrap();
        assert_eq!(p.points.len(), 1);
        p.points.remove(0)
    }

    fn field(name: &str, kind: VectorKind) -> VectorField {
        VectorField {
            name: name.into(),
            kind,
            ..VectorField::dense(None, Some(Metric::Dot))
        }
    }

    #[test]
    fn decodes_every_vector_shape() {
        let unnamed = [field("", VectorKind::Dense)];
        let p = one(r#"{"id":1,"vector":[0.5,-1,2]}"#, &unnamed);
        assert_eq!(p.id, json!(1));
        assert_eq!(p.vectors, [Some(Vector::Dense(vec![0.5, -1.0, 2.0]))]);
        let multi = [field("", VectorKind::Multi)];
        let p = one(r#"{"id":1,"vector":[[1,2],[3,4]]}"#, &multi);
        assert_eq!(
            p.vectors,
            [Some(Vector::Multi(vec![vec![1.0, 2.0], vec![3.0, 4.0]]))]
        );
        let named = [
            field("m", VectorKind::Multi),
            field("a", VectorKind::Dense),
            field("s", VectorKind::Sparse),
            field("absent", VectorKind::Dense),
        ];
        let p = one(
            r#"{"id":"x","payload":{},"vector":{"a":[1.5],"s":{"values":[0.25],"indices":[7]},"m":[[1]]}}"#,
            &named,
        );
        // By name: fields are matched by name, never by position.
        assert_eq!(
            p.vectors,
            [
                Some(Vector::Multi(vec![vec![1.0]])),
                Some(Vector::Dense(vec![1.5])),
                Some(Vector::Sparse(SparseVector {
                    indices: vec![7],
                    values: vec![0.25]
                })),
                None,
            ]
        );
        assert_eq!(p.payload, Some(Map::new()));
        let p = one(r#"{"id":1}"#, &unnamed);
        assert_eq!((p.vectors, p.payload), (vec![None], None));
        let p = one(r#"{"id":1,"vector":null,"payload":null}"#, &unnamed);
        assert_eq!((p.vectors, p.payload), (vec![None], None));
        let p = one(r#"{"id":1,"vector":[]}"#, &unnamed);
        assert_eq!(p.vectors, [Some(Vector::Dense(vec![]))]);
    }

    #[test]
    fn reads_the_whole_envelope_in_any_order() {
        let fields = [field("", VectorKind::Dense)];
        let body = br#" { "status" : "ok", "result" : { "next_page_offset" : "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "points" : [ { "vector" : [ 1e-45 , -0.0 , 3.4028235e38 ] , "version" : 3, "score": null, "shard_key": {"k": [1]},
                           "id" : 18446744073709551615 , "payload" : { "n" : -9223372036854775808, "u": 18446744073709551615, "f": 1.0, "deep": [{"x": null}] } },
                         {"id":2,"vector":[1]} ] }, "time" : 0.5, "usage": null } "#;
        let page = decode_scroll(body, &fields).unwrap();
        assert_eq!(
            page.next_page_offset,
            Some(json!("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))
        );
        let p = &page.points[0];
        assert_eq!(p.id, json!(u64::MAX));
        let Some(Vector::Dense(v)) = &p.vectors[0] else {
            panic!("{:?}", p.vectors)
        };
        assert_eq!(
            v.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            [1, (-0.0f32).to_bits(), f32::MAX.to_bits()]
        );
        // Payloads stay arbitrary JSON: integers stay integers.
        let payload = p.payload.as_ref().unwrap();
        assert_eq!(payload["n"], json!(i64::MIN));
        assert!(payload["n"].is_i64() && payload["u"].is_u64() && payload["f"].is_f64());
        assert_eq!(payload["deep"], json!([{"x": null}]));
        assert_eq!(page.points[1].id, json!(2));
        let last = page_with_next(r#"{"result":{"points":[]}}"#);
        assert_eq!((last.points.len(), last.next_page_offset), (0, None));
    }

    fn page_with_next(body: &str) -> ScrollPage {
        decode_scroll(body.as_bytes(), &[]).unwrap()
    }

    #[test]
    fn next_page_offset_is_read_ahead_from_the_end() {
        let body = br#"{"result":{"points":[{"id":1,"payload":{"next_page_offset":5},"vector":[1]}],"next_page_offset" : "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},"status":"ok","time":0.1}"#;
        assert_eq!(
            peek_next_page_offset(body),
            Some(json!("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))
        );
        let body = br#"{"result":{"points":[],"next_page_offset":17},"status":"ok"}"#;
        assert_eq!(peek_next_page_offset(body), Some(json!(17)));
        let last = br#"{"result":{"points":[{"id":1,"payload":{"next_page_offset":5}}],"next_page_offset":null}}"#;
        assert_eq!(peek_next_page_offset(last), None);
        assert_eq!(peek_next_page_offset(br#"{"result":{"points":[]}}"#), None);
        assert_eq!(peek_next_page_offset(b""), None);
        // A guess only: a payload key after the real one fools it, and the
        // caller's check against the decoded page catches that.
        let odd = br#"{"result":{"next_page_offset":2,"points":[{"id":1,"payload":{"next_page_offset":9}}]}}"#;
        assert_eq!(peek_next_page_offset(odd), Some(json!(9)));
        assert_eq!(
            decode_scroll(odd, &[]).unwrap().next_page_offset,
            Some(json!(2))
        );
    }

    #[test]
    fn errors_name_the_point() {
        let fields = [field("", VectorKind::Dense)];
        for (point, wanted) in [
            (r#"{"id":7,"vector":[0.5,NaN]}"#, "point 7: `NaN]}"),
            (
                r#"{"id":7,"vector":[0.5,1e39]}"#,
                "point 7: `1e39` is beyond the range",
            ),
            (r#"{"id":"ab","vector":[0.5,"1"]}"#, r#"point "ab": `"1"]}"#),
            (r#"{"id":7,"vector":[0.5,]}"#, "point 7: `]}]"),
            (
                r#"{"id":7,"vector":[0.5 0.6]}"#,
                "point 7: expected `,` or `]`",
            ),
            (
                r#"{"vector":[1,inf],"id":7}"#,
                "point #0 of the page: `inf]",
            ),
            (r#"{"vector":[1]}"#, "point #0 of the page has no id"),
            (
                r#"{"id":7,"payload":{"a":},"vector":[1]}"#,
                "point 7: expected value",
            ),
        ] {
            let e = page(point, &fields).unwrap_err();
            assert!(e.starts_with(wanted), "{point}: {e}");
        }
        // Found before the id, reported with it.
        let named = [field("a", VectorKind::Dense)];
        let e = page(r#"{"vector":{"b":[1]},"id":9}"#, &named).unwrap_err();
        assert_eq!(
            e,
            "point 9: has vector `b`, which the collection does not declare"
        );
        let e = page(r#"{"id":9,"vector":{"a":[1,x]}}"#, &named).unwrap_err();
        assert!(e.starts_with("point 9: vector `a`: `x]"), "{e}");
        assert!(decode_scroll(b"{}", &fields).is_err());
        assert!(decode_scroll(br#"{"result":{"points":[]}} x"#, &fields).is_err());
        assert!(decode_scroll(br#"{"result":{"points":[{"id":1}]"#, &fields).is_err());
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
