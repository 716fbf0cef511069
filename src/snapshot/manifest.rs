//! `manifest.json`: the snapshot's table of contents (`spec/FORMAT.md` §3).
//!
//! The raw structs here are what is on disk; [`Manifest::validate`] checks
//! everything a hostile or damaged manifest could get wrong before any of it
//! is used to open files or size buffers.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{EmbeddingModel, IdKind, Metadata, VectorField, VectorKind};

use super::layout;

/// The `format` value of every vecport snapshot.
pub const FORMAT_NAME: &str = "vecport.snapshot";
/// Major version this build writes and reads (`spec/FORMAT.md` §8).
pub const FORMAT_MAJOR: u32 = 1;
/// Minor version this build writes; it reads any minor of [`FORMAT_MAJOR`].
pub const FORMAT_MINOR: u32 = 0;

/// Sanity limits: a manifest beyond them is refused as hostile or damaged (§3.4).
pub mod limits {
    /// Largest `manifest.json` read, in bytes.
    pub const MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
    /// Most collections in one snapshot.
    pub const COLLECTIONS: usize = 100_000;
    /// Most parts in one collection.
    pub const PARTS: usize = 1_000_000;
    /// Most rows in one part.
    pub const PART_ROWS: u64 = 1 << 32;
    /// Largest part, in bytes.
    pub const PART_BYTES: u64 = 1 << 40;
    /// Most vector fields of one collection.
    pub const VECTOR_FIELDS: usize = 1024;
    /// Largest dense dimension.
    pub const DIMENSION: u32 = 1 << 20;
    /// Longest collection name, in bytes.
    pub const NAME_BYTES: usize = 65_536;
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// `MAJOR.MINOR`.
    pub format_version: String,
    /// The program that wrote the snapshot.
    pub producer: Producer,
    /// When the export finished, RFC 3339 UTC.
    pub created_at: String,
    /// Where the data came from.
    pub source: SourceInfo,
    /// The collections, in export order.
    pub collections: Vec<CollectionManifest>,
}

/// The program that wrote a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// `vecport`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Producer {
    /// This build of vecport.
    pub fn this() -> Producer {
        Producer {
            name: "vecport".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The database a snapshot was exported from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Connector name (`chroma`, `qdrant`, …).
    pub kind: String,
    /// The server's version, when it tells.
    #[serde(default)]
    pub server_version: Option<String>,
    /// The endpoint with credentials, query and fragment removed.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Where inside the server (tenant, database, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub location: Map<String, Value>,
}

/// One collection of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionManifest {
    /// The collection's real name.
    pub name: String,
    /// Its directory, relative to the snapshot root: `collections/<encoded name>`.
    pub directory: String,
    /// Records in all parts.
    pub record_count: u64,
    /// Records per namespace; `null` names the default namespace.
    pub namespaces: Vec<NamespaceCount>,
    /// Kind of the ids.
    pub id_kind: IdKind,
    /// Vector fields and the Parquet column of each.
    pub vectors: Vec<VectorColumn>,
    /// Metadata keys as observed.
    pub metadata_schema: MetadataSchema,
    /// Whether any record has a document.
    pub has_documents: bool,
    /// Whether any record has a URI.
    pub has_uris: bool,
    /// Collection-level metadata of the source.
    #[serde(default)]
    pub collection_metadata: Option<Metadata>,
    /// The source's configuration of the collection, verbatim.
    #[serde(default)]
    pub raw_config: Value,
    /// The embedding model, when the user stated one.
    #[serde(default)]
    pub embedding_model: Option<EmbeddingModel>,
    /// Remarks on how the source treats values (re-rounding, normalisation, …).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The part files, in order.
    pub parts: Vec<PartManifest>,
}

/// Records in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceCount {
    /// Namespace name; `None` is the default namespace.
    pub name: Option<String>,
    /// Records in it.
    pub records: u64,
}

/// A vector field and where it is stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorColumn {
    /// The field.
    #[serde(flatten)]
    pub field: VectorField,
    /// Parquet column holding it.
    pub column: String,
    /// `declared` when the source stated the dimension, `inferred` when taken from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension_source: Option<DimensionSource>,
}

/// Read by hand rather than with `#[serde(flatten)]`, which buffers the
/// fields and cannot read numbers kept as decimal text (serde_json's
/// `arbitrary_precision`).
impl<'de> Deserialize<'de> for VectorColumn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = Map::<String, Value>::deserialize(d)?;
        let column = match map.remove("column") {
            Some(Value::String(c)) => c,
            Some(_) => return Err(D::Error::custom("`column` is not a string")),
            None => return Err(D::Error::missing_field("column")),
        };
        let dimension_source = match map.remove("dimension_source") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(D::Error::custom)?),
        };
        let field = serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(VectorColumn {
            field,
            column,
            dimension_source,
        })
    }
}

/// Where a dimension came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimensionSource {
    /// The source's configuration stated it.
    Declared,
    /// Taken from the vectors themselves.
    Inferred,
}

/// Metadata keys as observed in the records: for each top-level key, how many
/// records have it and the JSON types of its values with their counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetadataSchema {
    /// Records whose metadata is not null.
    pub records_with_metadata: u64,
    /// Key → statistics.
    pub fields: BTreeMap<String, FieldStats>,
}

/// Statistics of one metadata key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FieldStats {
    /// Records in which the key is present (its value may be `null`).
    pub present: u64,
    /// Type name → number of values of that type (see [`value_type`]).
    pub types: BTreeMap<String, u64>,
}

impl FieldStats {
    /// Whether the key can be absent or null.
    pub fn nullable(&self, records_with_metadata: u64) -> bool {
        self.present < records_with_metadata || self.types.contains_key("null")
    }
}

impl MetadataSchema {
    /// Adds one record's metadata.
    pub fn observe(&mut self, metadata: Option<&Metadata>) {
        let Some(metadata) = metadata else { return };
        self.records_with_metadata += 1;
        for (key, value) in metadata {
            let stats = self.fields.entry(key.clone()).or_default();
            stats.present += 1;
            *stats.types.entry(value_type(value)).or_insert(0) += 1;
        }
    }

    /// Merges statistics gathered elsewhere.
    pub fn merge(&mut self, other: MetadataSchema) {
        self.records_with_metadata += other.records_with_metadata;
        for (key, stats) in other.fields {
            let mine = self.fields.entry(key).or_default();
            mine.present += stats.present;
            for (t, n) in stats.types {
                *mine.types.entry(t).or_insert(0) += n;
            }
        }
    }
}

/// The type name of a metadata value: `null`, `bool`, `int`, `float`,
/// `string`, `object`, or `array<T|U>` with the sorted element types
/// (`array<>` when empty).
pub fn value_type(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if n.is_f64() => "float".into(),
        Value::Number(_) => "int".into(),
        Value::String(_) => "string".into(),
        Value::Object(_) => "object".into(),
        Value::Array(items) => {
            let mut kinds: Vec<String> = items.iter().map(value_type).collect();
            kinds.sort();
            kinds.dedup();
            format!("array<{}>", kinds.join("|"))
        }
    }
}

/// One part file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    /// File name relative to the collection directory: `part-000000.parquet`.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the file, 64 lowercase hex digits.
    pub blake3: String,
}

impl Manifest {
    /// Parses and validates manifest bytes; `file` names the manifest in errors.
    pub fn from_slice(bytes: &[u8], file: &Path) -> Result<Manifest> {
        // Look at the version before the rest, so that a future major version
        // with a different shape is refused for its version, not its shape.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            format_version: Option<String>,
        }
        let head: Head = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(file, format!("not a valid manifest (JSON error: {e})")))?;
        match head.format.as_deref() {
            Some(FORMAT_NAME) => {}
            Some(other) => {
                return Err(Error::invalid(
                    file,
                    format!(
                        "`format` is {other:?}, expected \"{FORMAT_NAME}\"; this is not a vecport snapshot"
                    ),
                ));
            }
            None => {
                return Err(Error::invalid(
                    file,
                    format!(
                        "`format` is missing (expected \"{FORMAT_NAME}\"); this is not a vecport snapshot"
                    ),
                ));
            }
        }
        let version = head
            .format_version
            .ok_or_else(|| Error::invalid(file, "`format_version` is missing"))?;
        let (major, _minor) = parse_version(&version).ok_or_else(|| {
            Error::invalid(
                file,
                format!(
                    "`format_version` {version:?} is not MAJOR.MINOR (two decimal numbers without leading zeros, each below 2^32, joined by `.`)"
                ),
            )
        })?;
        if major < FORMAT_MAJOR {
            return Err(Error::invalid(
                file,
                format!(
                    "snapshot format version {version} is older than any format vecport reads ({FORMAT_MAJOR}.x); no vecport release wrote it, so another program did: write it again as version {FORMAT_MAJOR}.{FORMAT_MINOR} (spec/FORMAT.md)"
                ),
            ));
        }
        if major > FORMAT_MAJOR {
            return Err(Error::UnsupportedVersion {
                file: file.to_owned(),
                found: version,
                supported: format!("{FORMAT_MAJOR}.x"),
            });
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(file, format!("invalid manifest: {e}")))?;
        manifest.validate(file)?;
        Ok(manifest)
    }

    /// Checks every field a reader relies on (§3.4).
    pub fn validate(&self, file: &Path) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid(file, msg));
        if self.collections.len() > limits::COLLECTIONS {
            return bad(format!(
                "{} collections is more than the limit of {}",
                self.collections.len(),
                limits::COLLECTIONS
            ));
        }
        let mut names = HashSet::new();
        let mut dirs = HashSet::new();
        for c in &self.collections {
            let at = format!("collection {:?}", c.name);
            if c.name.is_empty() || c.name.len() > limits::NAME_BYTES {
                return bad(format!(
                    "{at}: name must be 1 to {} bytes",
                    limits::NAME_BYTES
                ));
            }
            if !names.insert(&c.name) {
                return bad(format!("{at} appears twice"));
            }
            check_relative_path(&c.directory, 2)
                .and_then(|()| {
                    if c.directory
                        .starts_with(&format!("{}/", layout::COLLECTIONS_DIR))
                    {
                        Ok(())
                    } else {
                        Err(format!("must be under {}/", layout::COLLECTIONS_DIR))
                    }
                })
                .or_else(|e| bad(format!("{at}: directory {:?} {e}", c.directory)))?;
            if !dirs.insert(c.directory.to_ascii_lowercase()) {
                return bad(format!("{at}: directory {:?} is used twice", c.directory));
            }
            if c.parts.len() > limits::PARTS {
                return bad(format!(
                    "{at}: {} parts is more than the limit of {}",
                    c.parts.len(),
                    limits::PARTS
                ));
            }
            if c.vectors.len() > limits::VECTOR_FIELDS {
                return bad(format!(
                    "{at}: {} vector fields is more than the limit of {}",
                    c.vectors.len(),
                    limits::VECTOR_FIELDS
                ));
            }
            let mut columns = HashSet::new();
            for v in &c.vectors {
                if layout::FIXED_COLUMNS.contains(&v.column.as_str()) || !columns.insert(&v.column)
                {
                    return bad(format!(
                        "{at}: vector column {:?} clashes with another column",
                        v.column
                    ));
                }
                match (v.field.kind, v.field.dimension) {
                    (VectorKind::Dense | VectorKind::Multi, Some(d))
                        if d == 0 || d > limits::DIMENSION =>
                    {
                        return bad(format!(
                            "{at}: vector field {:?} has dimension {d}, outside 1..={}",
                            v.field.name,
                            limits::DIMENSION
                        ));
                    }
                    (VectorKind::Dense | VectorKind::Multi, None) if c.record_count > 0 => {
                        return bad(format!(
                            "{at}: vector field {:?} has no dimension",
                            v.field.name
                        ));
                    }
                    _ => {}
                }
            }
            let mut paths = HashSet::new();
            let mut rows = 0u64;
            for p in &c.parts {
                check_relative_path(&p.path, 1)
                    .or_else(|e| bad(format!("{at}: part path {:?} {e}", p.path)))?;
                if !p.path.ends_with(".parquet") {
                    return bad(format!(
                        "{at}: part path {:?} does not end in .parquet",
                        p.path
                    ));
                }
                if !paths.insert(p.path.to_ascii_lowercase()) {
                    return bad(format!("{at}: part {:?} is listed twice", p.path));
                }
                if p.rows > limits::PART_ROWS || p.bytes > limits::PART_BYTES {
                    return bad(format!(
                        "{at}: part {:?} claims {} rows and {} bytes, beyond the limits of {} rows and {} bytes",
                        p.path,
                        p.rows,
                        p.bytes,
                        limits::PART_ROWS,
                        limits::PART_BYTES
                    ));
                }
                if p.blake3.len() != 64
                    || !p
                        .blake3
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return bad(format!(
                        "{at}: part {:?} has blake3 {:?}, not 64 lowercase hex digits",
                        p.path, p.blake3
                    ));
                }
                rows += p.rows;
            }
            if rows != c.record_count {
                return bad(format!(
                    "{at}: record_count is {} but its parts hold {rows} rows",
                    c.record_count
                ));
            }
            let in_namespaces: u64 = c
                .namespaces
                .iter()
                .map(|n| n.records)
                .fold(0u64, u64::saturating_add);
            if in_namespaces != c.record_count {
                return bad(format!(
                    "{at}: namespace counts add up to {in_namespaces}, not record_count {}",
                    c.record_count
                ));
            }
        }
        Ok(())
    }
}

/// Parses `MAJOR.MINOR` (§3.4 rule 2): two decimal numbers without leading
/// zeros, each below 2^32, joined by `.`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    let digits = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A relative path of at most `max_components` plain components: no `..`,
/// `.`, root, drive prefix, backslash, NUL or empty component.
fn check_relative_path(path: &str, max_components: usize) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.contains('\\') || path.contains('\0') || path.contains(':') {
        return Err("contains `\\`, `:` or NUL".into());
    }
    let p = Path::new(path);
    let mut n = 0;
    for comp in p.components() {
        match comp {
            Component::Normal(s) if s.len() <= 255 && !s.is_empty() => n += 1,
            Component::Normal(_) => return Err("has a component longer than 255 bytes".into()),
            Component::ParentDir => return Err("climbs out with `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute".into()),
            Component::CurDir => return Err("contains `.`".into()),
        }
    }
    if path.split('/').any(str::is_empty) {
        return Err("has an empty component".into());
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return Err("contains `.` or `..`".into());
    }
    if n > max_components {
        return Err(format!("has more than {max_components} components"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0"), Some((1, 0)));
        assert_eq!(parse_version("1.12"), Some((1, 12)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("1.x"), None);
        assert_eq!(parse_version("-1.0"), None);
        assert_eq!(parse_version("01.0"), None);
        assert_eq!(parse_version("1.01"), None);
        assert_eq!(parse_version("1.0 "), None);
        assert_eq!(parse_version("1.4294967295"), Some((1, u32::MAX)));
        assert_eq!(parse_version("1.4294967296"), None);
        assert_eq!(parse_version("1.0"), Some((1, 0)));
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative_path("part-000000.parquet", 1).is_ok());
        assert!(check_relative_path("collections/docs", 2).is_ok());
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "./a",
            "a//b",
            "a\\b",
            "C:x",
            "a/b",
            "a/.",
            "a/./b",
        ] {
            assert!(check_relative_path(bad, 1).is_err(), "{bad}");
        }
        assert!(check_relative_path("collections/.", 2).is_err());
        assert!(check_relative_path("collections/..", 2).is_err());
    }

    #[test]
    fn value_types() {
        let v: Value = serde_json::json!([1, "a", 2.5, 3]);
        assert_eq!(value_type(&v), "array<float|int|string>");
        assert_eq!(value_type(&serde_json::json!([])), "array<>");
        assert_eq!(value_type(&serde_json::json!(u64::MAX)), "int");
        assert_eq!(value_type(&serde_json::json!(-0.0)), "float");
    }
}
