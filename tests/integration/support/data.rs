//! Deterministic test data: awkward ids, every metadata type, vectors with
//! -0.0 and subnormals.

use serde_json::{Value, json};
use vecport::model::{
    CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, SparseVector, Vector, VectorField,
    VectorKind,
};

/// Ids that break naive tools: unicode, separators, quotes, whitespace, long.
pub fn awkward_ids() -> Vec<String> {
    vec![
        "plain".into(),
        "with space".into(),
        " leading-and-trailing ".into(),
        "slash/inside/id".into(),
        "back\\slash".into(),
        "quote\"double'single".into(),
        "ünïcödé-日本語-😀".into(),
        "../../etc/passwd".into(),
        "percent%2Fencoded".into(),
        "newline\nin-id".into(),
        "tab\tin-id".into(),
        "123".into(),
        "00042".into(),
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8".into(),
        "x".repeat(500),
    ]
}

/// Which metadata a generator may use.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// Nested objects, arrays of objects, nulls, empty arrays, u64 beyond i64.
    pub full_json: bool,
    /// Only what Pinecone stores: strings, numbers exact as float64, booleans,
    /// lists of strings.
    pub pinecone: bool,
    /// Only numbers a float64 holds exactly (Weaviate).
    pub float64_numbers: bool,
}

/// Chroma's metadata: flat scalars and non-empty homogeneous arrays.
pub const FLAT: Flavor = Flavor {
    full_json: false,
    pinecone: false,
    float64_numbers: false,
};
/// Anything JSON can hold.
pub const FULL: Flavor = Flavor {
    full_json: true,
    pinecone: false,
    float64_numbers: false,
};
/// Pinecone's metadata.
pub const PINECONE: Flavor = Flavor {
    full_json: false,
    pinecone: true,
    float64_numbers: true,
};
/// Weaviate's properties (and Chroma's too): flat, numbers exact as float64.
pub const WEAVIATE: Flavor = Flavor {
    full_json: false,
    pinecone: false,
    float64_numbers: true,
};

/// Metadata of record `i`: every type, varying which keys are present.
pub fn metadata(i: usize, flavor: Flavor) -> Option<Metadata> {
    if i % 17 == 5 {
        return None;
    }
    let mut m = Metadata::new();
    m.insert("int".into(), json!(i as i64 - 1000));
    m.insert("float".into(), json!(i as f64 / 7.0 + 0.5));
    m.insert("bool".into(), json!(i.is_multiple_of(2)));
    m.insert(
        "text".into(),
        json!(format!("record {i} — ünïcödé 😀 \"quoted\"")),
    );
    match i % 6 {
        0 => {
            m.insert("i64_min".into(), json!(i64::MIN));
            m.insert("i64_max".into(), json!(i64::MAX));
        }
        1 => {
            m.insert("tiny".into(), json!(1e-300));
            m.insert("huge".into(), json!(3.4028235e38));
            m.insert("whole_float".into(), json!(2.0));
        }
        2 => {
            m.insert("tags".into(), json!(["a", "b", "ü"]));
            m.insert("ints".into(), json!([1, -2, i as i64]));
        }
        3 => {
            m.insert("floats".into(), json!([0.25, -1.5, 1e10]));
            m.insert("bools".into(), json!([true, false]));
        }
        4 => {
            m.insert("big_int".into(), json!(9_007_199_254_740_993i64));
        }
        _ => {}
    }
    if flavor.pinecone {
        m.retain(|_, v| match v {
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => true,
        });
    }
    if flavor.float64_numbers {
        m.retain(|_, v| match v {
            Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() < 9.0e15),
            _ => true,
        });
    }
    if flavor.full_json {
        m.insert(
            "nested".into(),
            json!({"a": {"b": [1, {"c": null}]}, "u64_max": u64::MAX}),
        );
        m.insert("nothing".into(), Value::Null);
        m.insert("empty".into(), json!([]));
        m.insert("neg_zero".into(), json!(-0.0));
    }
    Some(m)
}

/// A dense vector with special values sprinkled in: -0.0, subnormals, extremes.
pub fn vector(rng: &mut fastrand::Rng, dim: usize, i: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect();
    if dim >= 4 {
        match i % 5 {
            0 => v[0] = -0.0,
            1 => v[1] = f32::from_bits(1), // smallest subnormal
            2 => v[2] = f32::MIN_POSITIVE / 3.0,
            3 => v[3] = 1.0e30,
            _ => {}
        }
    }
    v
}

/// `n` records with one dense vector of `dim`, ids awkward then numbered.
pub fn records(n: usize, dim: usize, seed: u64, flavor: Flavor) -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let awkward = awkward_ids();
    (0..n)
        .map(|i| {
            let id = awkward
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("rec-{i:07}"));
            Record {
                id: RecordId::String(id),
                namespace: None,
                vectors: vec![Some(Vector::Dense(vector(&mut rng, dim, i)))],
                metadata: metadata(i, flavor),
                document: (i % 3 != 1).then(|| format!("document {i}: ünïcödé\ntext")),
                uri: (i.is_multiple_of(4)).then(|| format!("s3://bucket/{i}")),
            }
        })
        .collect()
}

/// The spec of a collection of such records.
pub fn spec(name: &str, dim: u32, metric: Metric) -> CollectionSpec {
    CollectionSpec {
        name: name.into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField::dense(Some(dim), Some(metric))],
        raw_config: json!({"test": true}),
        collection_metadata: Some(
            serde_json::from_value(json!({"owner": "tests", "version": 3})).unwrap(),
        ),
        count_hint: None,
        notes: Vec::new(),
        content: None,
    }
}

/// A spec with a named dense field, a sparse field and a multivector field.
pub fn rich_spec(name: &str) -> CollectionSpec {
    let mut s = spec(name, 8, Metric::Cosine);
    s.id_kind = None;
    s.vectors = vec![
        VectorField {
            name: "text".into(),
            ..VectorField::dense(Some(8), Some(Metric::Cosine))
        },
        VectorField {
            name: "keywords".into(),
            kind: VectorKind::Sparse,
            ..VectorField::dense(None, Some(Metric::Dot))
        },
        VectorField {
            name: "colbert".into(),
            kind: VectorKind::Multi,
            ..VectorField::dense(Some(4), Some(Metric::Dot))
        },
    ];
    s
}

/// Records for [`rich_spec`]: uint and UUID ids, namespaces, all vector kinds, full JSON.
pub fn rich_records(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let id = if i.is_multiple_of(2) {
                RecordId::Uint(if i == 0 { u64::MAX } else { i as u64 })
            } else {
                RecordId::Uuid(uuid::Uuid::from_u128(rng.u128(..)))
            };
            let sparse = SparseVector {
                indices: (0..(i % 5) as u32).map(|k| k * 7 + 1).collect(),
                values: (0..i % 5).map(|_| rng.f32()).collect(),
            };
            Record {
                id,
                namespace: match i % 3 {
                    0 => None,
                    1 => Some("tenant-a".into()),
                    _ => Some("テナント".into()),
                },
                vectors: vec![
                    (i % 7 != 3).then(|| Vector::Dense(vector(&mut rng, 8, i))),
                    Some(Vector::Sparse(sparse)),
                    (i % 4 != 2).then(|| {
                        Vector::Multi((0..(i % 3 + 1)).map(|_| vector(&mut rng, 4, i)).collect())
                    }),
                ],
                metadata: metadata(i, FULL),
                document: (i.is_multiple_of(2)).then(|| format!("doc {i}")),
                uri: None,
            }
        })
        .collect()
}

/// Compares two record sets by id, bit-exact; returns the first difference.
pub fn first_difference(expected: &[Record], actual: &[Record]) -> Option<String> {
    first_difference_within(expected, actual, 0.0, 0)
}

/// [`first_difference`] with vector components allowed to differ by
/// `tolerance` and metadata floats by `float_ulps` units in the last place.
pub fn first_difference_within(
    expected: &[Record],
    actual: &[Record],
    tolerance: f32,
    float_ulps: u64,
) -> Option<String> {
    use std::collections::BTreeMap;
    let key = |r: &Record| (r.namespace.clone(), r.id.clone());
    let a: BTreeMap<_, _> = expected.iter().map(|r| (key(r), r)).collect();
    let b: BTreeMap<_, _> = actual.iter().map(|r| (key(r), r)).collect();
    if a.len() != expected.len() {
        return Some("expected records have duplicate ids".into());
    }
    if b.len() != actual.len() {
        return Some(format!(
            "{} duplicate ids among actual records",
            actual.len() - b.len()
        ));
    }
    for (k, e) in &a {
        let Some(x) = b.get(k) else {
            return Some(format!("missing {k:?}"));
        };
        if let Some(d) = record_difference(e, x, tolerance, float_ulps) {
            return Some(format!("{k:?}: {d}"));
        }
    }
    b.keys()
        .find(|k| !a.contains_key(k))
        .map(|k| format!("extra {k:?}"))
}

/// Differences of one record; vectors may differ by `tolerance` per component
/// (0.0 means bit-exact), metadata floats by `float_ulps`.
pub fn record_difference(
    e: &Record,
    x: &Record,
    tolerance: f32,
    float_ulps: u64,
) -> Option<String> {
    if e.id != x.id || e.namespace != x.namespace {
        return Some("id or namespace".into());
    }
    let same_metadata = match (&e.metadata, &x.metadata) {
        (Some(a), Some(b)) => json_matches(
            &Value::Object(a.clone()),
            &Value::Object(b.clone()),
            float_ulps,
        ),
        (a, b) => a == b,
    };
    if !same_metadata {
        return Some(format!("metadata {:?} != {:?}", e.metadata, x.metadata));
    }
    if metadata_types(&e.metadata) != metadata_types(&x.metadata) {
        return Some("metadata value types differ".into());
    }
    if e.document != x.document || e.uri != x.uri {
        return Some(format!(
            "document/uri {:?}/{:?} != {:?}/{:?}",
            e.document, e.uri, x.document, x.uri
        ));
    }
    if e.vectors.len() != x.vectors.len() {
        return Some("vector slot count".into());
    }
    for (a, b) in e.vectors.iter().zip(&x.vectors) {
        if !vectors_match(a.as_ref(), b.as_ref(), tolerance) {
            return Some(format!("vector {a:?} != {b:?}"));
        }
    }
    None
}

/// JSON equality, same types, floats within `ulps`.
pub fn json_matches(a: &Value, b: &Value, ulps: u64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x.to_bits() as i64).abs_diff(y.to_bits() as i64) <= ulps
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_matches(p, q, ulps))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_matches(v, w, ulps)))
        }
        _ => a == b,
    }
}

fn metadata_types(m: &Option<Metadata>) -> Vec<(String, String)> {
    m.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), vecport::snapshot::manifest::value_type(v)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Whether two float lists are equal: bit for bit when `tolerance` is 0.0,
/// else component by component within it.
pub fn f32s_match(a: &[f32], b: &[f32], tolerance: f32) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            if tolerance == 0.0 {
                x.to_bits() == y.to_bits()
            } else {
                (x - y).abs() <= tolerance
            }
        })
}

fn vectors_match(a: Option<&Vector>, b: Option<&Vector>, tolerance: f32) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Vector::Dense(x)), Some(Vector::Dense(y))) => f32s_match(x, y, tolerance),
        (Some(Vector::Sparse(x)), Some(Vector::Sparse(y))) => {
            x.indices == y.indices && f32s_match(&x.values, &y.values, tolerance)
        }
        (Some(Vector::Multi(x)), Some(Vector::Multi(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| f32s_match(p, q, tolerance))
        }
        _ => false,
    }
}
