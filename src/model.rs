//! The neutral record and collection model every connector speaks.
//!
//! Nothing in here knows about Parquet, HTTP or any particular database: a
//! source turns its wire format into these types, the snapshot writer turns
//! them into Parquet, and a sink turns them into its own wire format.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata of one record: a JSON object, kept lossless (64-bit integers stay
/// integers, key order is kept).
pub type Metadata = Map<String, Value>;

/// The id of one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordId {
    /// Any UTF-8 string (Chroma, Pinecone, pgvector text keys).
    String(String),
    /// An unsigned 64-bit integer (Qdrant, pgvector bigint keys).
    Uint(u64),
    /// A UUID (Qdrant, Weaviate).
    Uuid(uuid::Uuid),
}

impl RecordId {
    /// The kind of this id.
    pub fn kind(&self) -> IdKind {
        match self {
            RecordId::String(_) => IdKind::String,
            RecordId::Uint(_) => IdKind::Uint,
            RecordId::Uuid(_) => IdKind::Uuid,
        }
    }

    /// Parses the textual form written in a snapshot, given the collection's id kind.
    ///
    /// See `spec/FORMAT.md` §4.1.
    pub fn parse(text: &str, kind: IdKind) -> Option<RecordId> {
        match kind {
            IdKind::String => Some(RecordId::String(text.to_owned())),
            IdKind::Uint => parse_canonical_u64(text).map(RecordId::Uint),
            IdKind::Uuid => uuid::Uuid::try_parse(text).ok().map(RecordId::Uuid),
            IdKind::UintOrUuid => parse_canonical_u64(text)
                .map(RecordId::Uint)
                .or_else(|| uuid::Uuid::try_parse(text).ok().map(RecordId::Uuid)),
        }
    }
}

/// Parses a u64 written in canonical decimal form (no sign, no leading zeros).
fn parse_canonical_u64(text: &str) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordId::String(s) => f.write_str(s),
            RecordId::Uint(n) => write!(f, "{n}"),
            RecordId::Uuid(u) => write!(f, "{}", u.hyphenated()),
        }
    }
}

/// The kind of the ids of a collection, as recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// Arbitrary UTF-8 strings.
    String,
    /// Unsigned 64-bit integers.
    Uint,
    /// UUIDs.
    Uuid,
    /// Both unsigned integers and UUIDs (Qdrant allows both in one collection).
    UintOrUuid,
}

impl IdKind {
    /// The narrowest kind that covers both `self` and `other`.
    pub fn union(self, other: IdKind) -> IdKind {
        use IdKind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (String, _) | (_, String) => String,
            _ => UintOrUuid,
        }
    }
}

/// The shape of one vector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorKind {
    /// A fixed-dimension dense vector.
    Dense,
    /// Sparse: sorted unique `u32` indices with `f32` values.
    Sparse,
    /// A list of dense vectors of one dimension (late interaction, ColBERT style).
    Multi,
}

/// One vector value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Vector {
    /// Dense values.
    Dense(Vec<f32>),
    /// Sparse values; `indices` and `values` have equal length.
    Sparse(SparseVector),
    /// Several dense vectors of the same dimension.
    Multi(Vec<Vec<f32>>),
}

impl Vector {
    /// The kind of this value.
    pub fn kind(&self) -> VectorKind {
        match self {
            Vector::Dense(_) => VectorKind::Dense,
            Vector::Sparse(_) => VectorKind::Sparse,
            Vector::Multi(_) => VectorKind::Multi,
        }
    }

    /// Number of `f32` values held (for size estimates).
    pub fn value_count(&self) -> usize {
        match self {
            Vector::Dense(v) => v.len(),
            Vector::Sparse(s) => s.values.len() * 2,
            Vector::Multi(m) => m.iter().map(Vec::len).sum(),
        }
    }

    /// The dense values, if this is a dense vector.
    pub fn as_dense(&self) -> Option<&[f32]> {
        match self {
            Vector::Dense(v) => Some(v),
            _ => None,
        }
    }
}

/// A sparse vector.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SparseVector {
    /// Dimension indices.
    pub indices: Vec<u32>,
    /// Values, one per index.
    pub values: Vec<f32>,
}

/// One record: an id, its vectors, metadata, document and namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id.
    pub id: RecordId,
    /// The namespace (Pinecone namespace, Weaviate tenant); `None` is the default.
    pub namespace: Option<String>,
    /// One entry per vector field of the collection, in the order of
    /// [`CollectionSpec::vectors`]; `None` where the record has no value.
    pub vectors: Vec<Option<Vector>>,
    /// Metadata; `None` when the record has none (distinct from an empty object).
    pub metadata: Option<Metadata>,
    /// The document text.
    pub document: Option<String>,
    /// A URI (Chroma's `uris`).
    pub uri: Option<String>,
}

impl Record {
    /// A record with only an id and one dense vector.
    pub fn dense(id: RecordId, values: Vec<f32>) -> Record {
        Record {
            id,
            namespace: None,
            vectors: vec![Some(Vector::Dense(values))],
            metadata: None,
            document: None,
            uri: None,
        }
    }

    /// An upper bound of this record's size when encoded as JSON, used to
    /// bound requests by bytes. Floats count 16 bytes each (`-1.2345678e-38,`).
    pub fn json_size_estimate(&self) -> usize {
        let id = match &self.id {
            RecordId::String(s) => json_string_len(s),
            RecordId::Uint(_) => 20,
            RecordId::Uuid(_) => 38,
        };
        let vectors: usize = self
            .vectors
            .iter()
            .flatten()
            .map(|v| match v {
                Vector::Sparse(s) => s.indices.len() * 11 + s.values.len() * 16 + 40,
                Vector::Multi(m) => m.iter().map(|v| v.len() * 16 + 3).sum::<usize>() + 2,
                Vector::Dense(d) => d.len() * 16 + 2,
            })
            .sum();
        let metadata = self
            .metadata
            .as_ref()
            .map_or(4, |m| serde_json::to_vec(m).map_or(0, |v| v.len()));
        let document = self.document.as_deref().map_or(4, json_string_len);
        let uri = self.uri.as_deref().map_or(4, json_string_len);
        let namespace = self.namespace.as_deref().map_or(0, json_string_len);
        id + vectors + metadata + document + uri + namespace + 64
    }
}

impl Record {
    /// About how many bytes this record takes in memory and in a Parquet
    /// part (4 bytes per float, text as UTF-8, metadata as its JSON text
    /// approximately); cheap, for bounding buffers rather than requests.
    pub fn binary_size_estimate(&self) -> usize {
        let id = match &self.id {
            RecordId::String(s) => s.len(),
            RecordId::Uint(_) => 8,
            RecordId::Uuid(_) => 36,
        };
        let vectors: usize = self
            .vectors
            .iter()
            .flatten()
            .map(|v| v.value_count() * 4)
            .sum();
        let metadata = self.metadata.as_ref().map_or(0, |m| {
            m.iter()
                .map(|(k, v)| k.len() + approx_json_len(v) + 4)
                .sum()
        });
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        id + vectors
            + metadata
            + text(&self.document)
            + text(&self.uri)
            + text(&self.namespace)
            + 32
    }
}

/// Roughly the length of a JSON value's text, without serialising it.
fn approx_json_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approx_json_len(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + approx_json_len(x))
                .sum::<usize>()
        }
    }
}

/// Worst-case length of a string escaped as JSON (`\u00XX` for control bytes).
fn json_string_len(s: &str) -> usize {
    s.len()
        + 2
        + s.bytes()
            .filter(|b| *b < 0x20 || *b == b'"' || *b == b'\\')
            .count()
            * 5
}

/// Reads an optional `u32` through a [`Value`], for fields of structs that
/// serde buffers (`#[serde(flatten)]`), where numbers arrive as decimal text.
pub fn buffered_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a 32-bit unsigned integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected a number, found {other}"
        ))),
    }
}

/// A similarity metric, as named in the snapshot.
///
/// See `spec/MAPPING.md` for each database's names and score semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cosine similarity.
    Cosine,
    /// Dot product (inner product).
    Dot,
    /// Euclidean distance (ranking is the same for squared and plain L2).
    L2,
    /// Manhattan (L1) distance.
    Manhattan,
    /// Hamming distance.
    Hamming,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
            Metric::Manhattan => "manhattan",
            Metric::Hamming => "hamming",
        })
    }
}

/// How faithfully the source database stores vector values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoredValues {
    /// Values come back bit-exact as written.
    #[default]
    Exact,
    /// The database normalises vectors to unit length on write (Qdrant cosine).
    Normalized,
    /// The database re-rounds values on write; they differ in the last bits
    /// (Chroma cosine collections).
    Rerounded,
    /// The database stores a lossy element type (float16, uint8, bit).
    Lossy,
}

/// Normalised index settings of one vector field.
///
/// Only the settings with an equivalent in several databases are normalised;
/// the source's raw configuration is kept verbatim beside them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IndexSettings {
    /// Index kind: `hnsw`, `flat`, `ivfflat`, `dynamic`, `spann`, or the source's own word.
    pub kind: String,
    /// HNSW: links per node (`m`, `max_neighbors`, `maxConnections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    /// HNSW: candidate list size at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<u64>,
    /// HNSW: candidate list size at query time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<u64>,
    /// IVF: number of lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<u64>,
    /// Quantization, in the source's own JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Value>,
    /// Further index parameters of the source that have no normalised name.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// One vector field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorField {
    /// The field's name in the source; `""` for the single unnamed vector.
    pub name: String,
    /// Dense, sparse or multi.
    pub kind: VectorKind,
    /// Dimension (dense and multi); `None` for sparse, or when not yet known.
    #[serde(default)]
    pub dimension: Option<u32>,
    /// The metric the source searches this field with.
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Index settings, when the source has an index on this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSettings>,
    /// How faithfully the source stores values.
    #[serde(default)]
    pub stored_values: StoredValues,
    /// The source's element type when it is not float32 (`float16`, `uint8`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_datatype: Option<String>,
}

impl VectorField {
    /// The single unnamed dense vector field most databases have.
    pub fn dense(dimension: Option<u32>, metric: Option<Metric>) -> VectorField {
        VectorField {
            name: String::new(),
            kind: VectorKind::Dense,
            dimension,
            metric,
            index: None,
            stored_values: StoredValues::Exact,
            source_datatype: None,
        }
    }
}

/// An embedding model the user states, kept in the manifest for the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingModel {
    /// Model name, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub name: String,
    /// Output dimension of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
}

/// What a source knows about a collection before reading its records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectionSpec {
    /// The collection's name in the source.
    pub name: String,
    /// Kind of ids, when the source declares it (Chroma: always strings).
    pub id_kind: Option<IdKind>,
    /// Vector fields, in the order records carry them.
    pub vectors: Vec<VectorField>,
    /// The source's configuration, verbatim.
    pub raw_config: Value,
    /// Collection-level metadata (Chroma collection metadata, Pinecone tags, …).
    pub collection_metadata: Option<Metadata>,
    /// Record count as the source reports it before the export (may be approximate).
    pub count_hint: Option<u64>,
    /// Notes on anything the source does to values (re-rounding, normalisation).
    pub notes: Vec<String>,
    /// What the records hold, when known before reading them (an import knows
    /// it from the snapshot's manifest; a source does not).
    pub content: Option<ContentSummary>,
}

/// What a collection's records hold, known before they are read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContentSummary {
    /// Named namespaces, sorted (the default namespace is not listed).
    pub namespaces: Vec<String>,
    /// Whether records in the default namespace exist.
    pub default_namespace: bool,
    /// Whether any record has a document.
    pub documents: bool,
    /// Whether any record has a URI.
    pub uris: bool,
    /// Metadata key → the value types seen (`string`, `int`, `float`, `bool`,
    /// `object`, `null`, `array<…>`), as in the manifest's metadata schema.
    pub metadata_types: std::collections::BTreeMap<String, Vec<String>>,
    /// Keys the target stores under another name: its name → the original.
    pub renamed_keys: std::collections::BTreeMap<String, String>,
}

/// A collection as listed by `vecport ls`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionSummary {
    /// Name.
    pub name: String,
    /// Dimension of the first dense vector field, when known.
    pub dimension: Option<u32>,
    /// Metric of the first vector field, when known.
    pub metric: Option<Metric>,
    /// Record count as the database reports it.
    pub count: Option<u64>,
}

/// Counts per namespace, in a stable order.
pub type NamespaceCounts = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_parse_is_strict() {
        assert_eq!(
            RecordId::parse("12", IdKind::Uint),
            Some(RecordId::Uint(12))
        );
        assert_eq!(RecordId::parse("012", IdKind::Uint), None);
        assert_eq!(RecordId::parse("+1", IdKind::Uint), None);
        assert_eq!(RecordId::parse("18446744073709551616", IdKind::Uint), None);
        assert_eq!(
            RecordId::parse("18446744073709551615", IdKind::UintOrUuid),
            Some(RecordId::Uint(u64::MAX))
        );
        let u = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        assert_eq!(
            RecordId::parse(u, IdKind::UintOrUuid).map(|i| i.to_string()),
            Some(u.to_owned())
        );
        assert_eq!(RecordId::parse("x", IdKind::UintOrUuid), None);
    }

    #[test]
    fn id_kind_union() {
        assert_eq!(IdKind::Uint.union(IdKind::Uuid), IdKind::UintOrUuid);
        assert_eq!(IdKind::Uint.union(IdKind::Uint), IdKind::Uint);
        assert_eq!(IdKind::Uuid.union(IdKind::String), IdKind::String);
    }

    #[test]
    fn size_estimate_bounds_json() {
        let mut r = Record::dense(RecordId::String("a\"b".into()), vec![-1.234_567_8e-38; 8]);
        r.metadata = Some(serde_json::from_str(r#"{"k":[1,2,{"x":null}]}"#).unwrap());
        r.document = Some("\u{1}line\n".into());
        // Serialised as f32 (as sinks do), not through `serde_json::Value`, which widens to f64.
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            values: &'a [f32],
            metadata: &'a Option<Metadata>,
            document: &'a Option<String>,
        }
        let actual = Wire {
            id: "a\"b",
            values: r.vectors[0].as_ref().unwrap().as_dense().unwrap(),
            metadata: &r.metadata,
            document: &r.document,
        };
        assert!(serde_json::to_vec(&actual).unwrap().len() <= r.json_size_estimate());
    }
}
