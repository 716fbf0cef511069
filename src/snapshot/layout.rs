//! Names on disk (`spec/FORMAT.md` §2): every file and column name the format
//! uses is a constant here, and collection names are encoded into directory
//! names that are safe on every file system.

use std::collections::HashSet;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The manifest file.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's checksum file, in `b3sum` format.
pub const MANIFEST_CHECKSUM: &str = "manifest.json.blake3";
/// Directory holding one directory per collection.
pub const COLLECTIONS_DIR: &str = "collections";
/// Suffix of files being written; never part of a finished snapshot.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Column: record id, UTF-8.
pub const COL_ID: &str = "id";
/// Column: namespace, UTF-8, null for the default namespace.
pub const COL_NAMESPACE: &str = "namespace";
/// Column: metadata as JSON text.
pub const COL_METADATA: &str = "metadata";
/// Column: document text.
pub const COL_DOCUMENT: &str = "document";
/// Column: URI.
pub const COL_URI: &str = "uri";
/// Columns every part has, in order; vector columns follow them.
pub const FIXED_COLUMNS: [&str; 5] = [COL_ID, COL_NAMESPACE, COL_METADATA, COL_DOCUMENT, COL_URI];

/// Parquet key-value metadata key holding the format version.
pub const KV_FORMAT_VERSION: &str = "vecport.format_version";
/// Parquet key-value metadata key holding the collection schema (JSON).
pub const KV_COLLECTION: &str = "vecport.collection";

/// The file name of part `index`.
pub fn part_file_name(index: usize) -> String {
    format!("part-{index:06}.parquet")
}

/// Longest encoded directory name before it is shortened with a hash.
const MAX_DIR_NAME: usize = 120;

/// Bytes kept as they are in directory names: ASCII letters, digits, `-`, `_`, `.`.
const DIR_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Encodes a collection name into a directory name (§2.2): percent-encoding of
/// every byte but `[A-Za-z0-9._-]`, a leading `.` encoded too, and names
/// longer than 120 bytes cut and suffixed with 16 hex digits of their BLAKE3.
/// `taken` holds the lower-cased names already used, so that names differing
/// only in case do not collide on case-insensitive file systems.
pub fn collection_dir_name(name: &str, taken: &mut HashSet<String>) -> String {
    let mut encoded: String = utf8_percent_encode(name, DIR_ESCAPE).collect();
    if encoded.starts_with('.') {
        encoded.replace_range(0..1, "%2E");
    }
    // Windows drops a trailing dot and reserves device names (`CON`, `nul.txt`, …).
    if encoded.ends_with('.') {
        encoded.replace_range(encoded.len() - 1.., "%2E");
    }
    if is_windows_device(&encoded) {
        let first = encoded.as_bytes()[0];
        encoded.replace_range(0..1, &format!("%{first:02X}"));
    }
    if encoded.is_empty() {
        encoded.push_str("%00");
    }
    if encoded.len() > MAX_DIR_NAME {
        let hash = blake3::hash(name.as_bytes()).to_hex();
        let mut cut = MAX_DIR_NAME - 17;
        // Never cut a %XX escape in half.
        while encoded.as_bytes()[..cut]
            .iter()
            .rev()
            .take(2)
            .any(|b| *b == b'%')
        {
            cut -= 1;
        }
        encoded = format!("{}~{}", &encoded[..cut], &hash[..16]);
    }
    let mut candidate = encoded.clone();
    let mut n = 2;
    while !taken.insert(candidate.to_ascii_lowercase()) {
        candidate = format!("{encoded}~{n}");
        n += 1;
    }
    candidate
}

fn is_windows_device(name: &str) -> bool {
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

/// The Parquet column names of vector fields (§4.2): `vector` for the unnamed
/// field, `vector_<name>` for simple names, `vector_<index>` otherwise; a name
/// already taken gets `_<index>` appended until it is unique.
pub fn vector_column_names<'a>(field_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken: HashSet<String> = FIXED_COLUMNS.iter().map(|c| c.to_string()).collect();
    field_names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let mut column = vector_column_name(name, i);
            while !taken.insert(column.clone()) {
                column = format!("{column}_{i}");
            }
            column
        })
        .collect()
}

fn vector_column_name(field_name: &str, index: usize) -> String {
    if field_name.is_empty() {
        "vector".into()
    } else if field_name.len() <= 64
        && field_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        format!("vector_{field_name}")
    } else {
        format!("vector_{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &str) -> String {
        collection_dir_name(name, &mut HashSet::new())
    }

    #[test]
    fn dir_names_are_safe() {
        assert_eq!(enc("docs-v2.1_x"), "docs-v2.1_x");
        assert_eq!(enc("a/b"), "a%2Fb");
        assert_eq!(enc(".."), "%2E%2E");
        assert_eq!(enc("."), "%2E");
        assert_eq!(enc("ü"), "%C3%BC");
        assert_eq!(enc(""), "%00");
        assert_eq!(enc("con"), "%63on");
        assert_eq!(enc("LPT1.txt"), "%4CPT1.txt");
        assert_eq!(enc("console"), "console");
        assert_eq!(enc("a."), "a%2E");
        let long = "é".repeat(300);
        let d = enc(&long);
        assert!(d.len() <= MAX_DIR_NAME, "{}", d.len());
        assert!(!d.contains('/'));
        // the cut never leaves half an escape
        let head = d.split('~').next().unwrap();
        assert!(head.len().is_multiple_of(3), "{head}");
    }

    #[test]
    fn dir_names_do_not_collide() {
        let mut taken = HashSet::new();
        let a = collection_dir_name("Docs", &mut taken);
        let b = collection_dir_name("docs", &mut taken);
        assert_ne!(a.to_lowercase(), b.to_lowercase());
        let long1 = format!("{}1", "x".repeat(200));
        let long2 = format!("{}2", "x".repeat(200));
        assert_ne!(
            collection_dir_name(&long1, &mut taken),
            collection_dir_name(&long2, &mut taken)
        );
    }

    #[test]
    fn vector_columns() {
        assert_eq!(vector_column_name("", 0), "vector");
        assert_eq!(vector_column_name("img", 1), "vector_img");
        assert_eq!(vector_column_name("a b", 2), "vector_2");
        assert_eq!(vector_column_names(["x-y", "1"]), ["vector_0", "vector_1"]);
        assert_eq!(
            vector_column_names(["1", "x-y"]),
            ["vector_1", "vector_1_1"]
        );
    }
}
