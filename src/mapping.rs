//! What a target can hold, and what happens to what it cannot.
//!
//! Each sink states its metadata rules as a [`MetadataRules`] value; one
//! engine here checks every record's metadata against them and, when the user
//! chose a [`MetadataPolicy`] other than refusing, changes the metadata so the
//! target can take it — returning every [`Change`] so that nothing is altered
//! silently. `spec/MAPPING.md` documents the rules per database.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::Metadata;

/// Namespace of the UUIDv5 given to ids a target that needs UUIDs cannot take
/// as they are (Qdrant, Weaviate): the same id gets the same UUID in both.
pub const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a9e_53d4_4b7a_9a0e_51c3_d8e2_7b10);

/// The metadata key that holds a record's namespace in a target without
/// namespaces (`--namespaces into-key`); sources without namespaces lift it
/// back out on export.
pub const NAMESPACE_KEY: &str = "__vecport_namespace";

/// What becomes of namespaces on import.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespacePolicy {
    /// Namespaces map to the target's own; a target without namespaces
    /// refuses records outside the default namespace (the default).
    #[default]
    Refuse,
    /// In a target without namespaces, a record's namespace is stored in
    /// this metadata key (records of the default namespace get none); ids
    /// must then be unique across namespaces. A target with namespaces keeps
    /// them as its own.
    IntoKey(String),
    /// A record's namespace is the value of this metadata key (a non-empty
    /// string), which is removed; records without it stay in their namespace.
    FromKey(String),
}

impl std::str::FromStr for NamespacePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let key = |k: &str| -> Result<String, String> {
            if k.is_empty() {
                Err(format!("`{s}`: the metadata key is empty"))
            } else {
                Ok(k.to_owned())
            }
        };
        match s.split_once('=') {
            None if s == "refuse" => Ok(NamespacePolicy::Refuse),
            None if s == "into-key" => Ok(NamespacePolicy::IntoKey(NAMESPACE_KEY.to_owned())),
            Some(("into-key", k)) => key(k).map(NamespacePolicy::IntoKey),
            Some(("from-key", k)) => key(k).map(NamespacePolicy::FromKey),
            _ => Err(format!(
                "`{s}` is not a namespace policy: refuse, into-key, into-key=KEY or from-key=KEY"
            )),
        }
    }
}

impl fmt::Display for NamespacePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespacePolicy::Refuse => f.write_str("refuse"),
            NamespacePolicy::IntoKey(k) if k == NAMESPACE_KEY => f.write_str("into-key"),
            NamespacePolicy::IntoKey(k) => write!(f, "into-key={k}"),
            NamespacePolicy::FromKey(k) => write!(f, "from-key={k}"),
        }
    }
}

/// Takes the namespace a target without namespaces kept in
/// [`NAMESPACE_KEY`] out of `metadata` (a record of the default namespace
/// has none); for sources to call on every record they read.
pub fn lift_namespace(metadata: &mut Option<Metadata>) -> Option<String> {
    let m = metadata.as_mut()?;
    let Some(Value::String(_)) = m.get(NAMESPACE_KEY) else {
        return None;
    };
    let Some(Value::String(ns)) = m.shift_remove(NAMESPACE_KEY) else {
        return None;
    };
    if m.is_empty() {
        *metadata = None;
    }
    Some(ns)
}

/// How a target stores an id it cannot take as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdForm {
    /// Stored as its text: it comes back as a string, its kind is lost.
    Text {
        /// The id the target stores.
        stored: String,
        /// The rule, in words, for the change report.
        rule: &'static str,
    },
    /// Stored under a derived id with the original kept beside it, so an
    /// export restores it; the rule, in words, for the change report.
    Kept(&'static str),
}

/// Which normalised index settings a target creates its index with.
#[derive(Debug, Clone, Copy)]
pub struct IndexCounterparts {
    /// HNSW links per node.
    pub m: bool,
    /// HNSW build-time candidates.
    pub ef_construction: bool,
    /// HNSW query-time candidates.
    pub ef_search: bool,
    /// IVF lists.
    pub lists: bool,
    /// Quantization (from another database: never, its forms differ).
    pub quantization: bool,
}

/// What a target from another database does not keep of `spec`'s index
/// settings, one note per vector field, for the import to say.
pub fn unkept_settings(
    target: &str,
    spec: &crate::model::CollectionSpec,
    keeps: IndexCounterparts,
) -> Vec<String> {
    spec.vectors
        .iter()
        .filter_map(|f| {
            let ix = f.index.as_ref()?;
            let mut lost = Vec::new();
            let mut param = |kept: bool, name: &str, v: Option<u64>| {
                if let (false, Some(v)) = (kept, v) {
                    lost.push(format!("{name}={v}"));
                }
            };
            param(keeps.m, "m", ix.m);
            param(keeps.ef_construction, "ef_construction", ix.ef_construction);
            param(keeps.ef_search, "ef_search", ix.ef_search);
            param(keeps.lists, "lists", ix.lists);
            if let (false, Some(q)) = (keeps.quantization, &ix.quantization) {
                lost.push(format!("quantization {q}"));
            }
            (!lost.is_empty()).then(|| {
                format!(
                    "vector {:?}: {target} has no counterpart for the source's {} (kept in the snapshot's raw configuration)",
                    f.name,
                    lost.join(", ")
                )
            })
        })
        .collect()
}

/// Which arrays a target's metadata holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrays {
    /// Any JSON array, nested values included.
    Any,
    /// Arrays of scalars (bool, integer, float, string), all of one type.
    Homogeneous,
    /// Arrays of strings only.
    Strings,
    /// Arrays of scalars all of one type, or arrays of objects.
    Typed,
}

/// Which integers a target's metadata holds exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integers {
    /// Every integer JSON carries (64-bit signed and unsigned).
    Any,
    /// 64-bit signed integers.
    I64,
    /// Integers a float64 holds exactly (|n| ≤ 2^53).
    Float64,
}

/// How a target stores metadata numbers that are not 64-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// As their decimal text, every digit kept (PostgreSQL jsonb, JSON files).
    Decimal,
    /// As float64: a number with more digits than a float64 holds comes back
    /// rounded, and each such change is reported.
    Float64,
}

/// What a target's metadata can hold.
#[derive(Debug, Clone, Copy)]
pub struct MetadataRules {
    /// The target's name, for messages.
    pub target: &'static str,
    /// Nested objects are stored.
    pub objects: bool,
    /// `null` values are stored.
    pub nulls: bool,
    /// Which arrays are stored.
    pub arrays: Arrays,
    /// Empty arrays are stored (rather than silently dropped).
    pub empty_arrays: bool,
    /// Which integers are stored exactly.
    pub integers: Integers,
    /// How other numbers are stored.
    pub numbers: Numbers,
    /// Why a top-level key is refused, if it is.
    pub key: fn(&str) -> Option<String>,
    /// The name under which the target stores a top-level key it cannot take
    /// as it is (a documented rule; every rename is reported, and the sink
    /// restores the original key on export).
    pub rename: fn(&str) -> Option<String>,
}

impl MetadataRules {
    /// Every JSON value under any key.
    pub const ANY: MetadataRules = MetadataRules {
        target: "the target",
        objects: true,
        nulls: true,
        arrays: Arrays::Any,
        empty_arrays: true,
        integers: Integers::Any,
        numbers: Numbers::Float64,
        key: any_key,
        rename: same_key,
    };
}

fn any_key(_: &str) -> Option<String> {
    None
}

fn same_key(_: &str) -> Option<String> {
    None
}

/// What to do with a metadata value the target cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetadataPolicy {
    /// Refuse the import, naming the records (the default).
    #[default]
    Refuse,
    /// Nested objects become dotted keys (`a.b.c`); any other value the target
    /// cannot hold is then encoded as JSON text.
    Flatten,
    /// The value is replaced by its JSON text (a string).
    Encode,
    /// The key is removed.
    Drop,
}

impl fmt::Display for MetadataPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataPolicy::Refuse => "refuse",
            MetadataPolicy::Flatten => "flatten",
            MetadataPolicy::Encode => "encode",
            MetadataPolicy::Drop => "drop",
        })
    }
}

/// The kind of one change made to a record on its way into a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A key was stored under another name.
    Renamed,
    /// A nested object became dotted keys.
    Flattened,
    /// A value became its JSON text.
    Encoded,
    /// A key was removed.
    Dropped,
    /// The whole record was left out.
    Skipped,
    /// The id was stored in another form.
    Id,
    /// The namespace was stored in, or taken from, a metadata key.
    Namespace,
    /// A number was stored as the nearest number the target holds.
    Rounded,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Renamed => "renamed",
            ChangeKind::Flattened => "flattened",
            ChangeKind::Encoded => "encoded",
            ChangeKind::Dropped => "dropped",
            ChangeKind::Skipped => "skipped",
            ChangeKind::Id => "id",
            ChangeKind::Namespace => "namespace",
            ChangeKind::Rounded => "rounded",
        })
    }
}

/// One change made to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What was done.
    pub change: ChangeKind,
    /// The metadata key changed; `None` when the whole record was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The id the target stores, when it is not the record's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// Why: what the target cannot hold.
    pub reason: String,
}

/// Why `v` (under `key`) cannot be stored as it is, if it cannot.
pub fn value_problem(rules: &MetadataRules, key: &str, v: &Value) -> Option<String> {
    problem(rules, v).map(|why| format!("metadata `{key}` {why}"))
}

fn problem(rules: &MetadataRules, v: &Value) -> Option<String> {
    let t = rules.target;
    match v {
        Value::Null if !rules.nulls => Some(format!("is null, which {t} cannot store")),
        Value::Number(n) => {
            let ok = match rules.integers {
                Integers::Any => true,
                Integers::I64 => !n.is_u64() || n.is_i64(),
                Integers::Float64 => {
                    const EXACT: u64 = 1 << 53;
                    match (n.as_u64(), n.as_i64()) {
                        (Some(u), _) => u <= EXACT,
                        (None, Some(i)) => i.unsigned_abs() <= EXACT,
                        (None, None) => true,
                    }
                }
            };
            (!ok).then(|| match rules.integers {
                Integers::I64 => format!("holds {n}, beyond {t}'s 64-bit signed integers"),
                _ => format!("holds {n}, beyond the integers {t}'s float64 numbers store exactly"),
            })
        }
        Value::Object(_) if !rules.objects => {
            Some(format!("holds a nested object, which {t} cannot store"))
        }
        Value::Object(members) => members.values().find_map(|m| problem(rules, m)),
        Value::Array(items) => {
            if items.is_empty() && !rules.empty_arrays {
                return Some(format!("is an empty array, which {t} drops"));
            }
            match rules.arrays {
                Arrays::Any => items.iter().find_map(|i| problem(rules, i)),
                Arrays::Strings if items.iter().all(Value::is_string) => None,
                Arrays::Strings => Some(format!(
                    "is a list of non-strings; {t}'s lists hold strings only"
                )),
                Arrays::Homogeneous | Arrays::Typed => {
                    let objects = rules.arrays == Arrays::Typed
                        && !items.is_empty()
                        && items.iter().all(Value::is_object);
                    if objects {
                        return items.iter().find_map(|i| problem(rules, i));
                    }
                    if let Some(p) = items.iter().find_map(|i| match i {
                        Value::Array(_) | Value::Object(_) | Value::Null => Some(format!(
                            "is an array holding arrays, objects or nulls, which {t} cannot store"
                        )),
                        other => problem(rules, other),
                    }) {
                        return Some(p);
                    }
                    let kind = |v: &Value| match v {
                        Value::Bool(_) => 0,
                        Value::Number(n) if n.is_f64() => 1,
                        Value::Number(_) => 2,
                        _ => 3,
                    };
                    items
                        .iter()
                        .any(|i| kind(i) != kind(&items[0]))
                        .then(|| format!("is an array of mixed types, which {t} cannot store"))
                }
            }
        }
        _ => None,
    }
}

/// Makes `meta` fit `rules` under `policy`, returning what was changed
/// (nothing, and no copy made, when it fits as it is).
///
/// Keys the target names differently are renamed by its rule whatever the
/// policy. `Err` carries the first problem, with `meta` untouched, when the
/// policy is [`MetadataPolicy::Refuse`] or cannot fix it (a refused key under
/// `flatten`/`encode`, or keys colliding after renaming or flattening). The
/// result depends on the metadata alone, so a check pass and a write pass agree.
pub fn conform(
    rules: &MetadataRules,
    policy: MetadataPolicy,
    meta: &mut Metadata,
) -> Result<Vec<Change>, String> {
    let mut changes = conform_values(rules, policy, meta)?;
    if rules.numbers == Numbers::Float64 {
        round_numbers(rules, meta, &mut changes);
    }
    Ok(changes)
}

/// Replaces each number a float64 target cannot hold as it is by the float64
/// it becomes there, with a `rounded` change per key (`spec/MAPPING.md`,
/// "Numbers"). Integers within 64 bits are kept: the targets store them as integers.
fn round_numbers(rules: &MetadataRules, meta: &mut Metadata, changes: &mut Vec<Change>) {
    for (k, v) in meta.iter_mut() {
        let mut first: Option<(String, String)> = None;
        round_value(v, &mut first);
        if let Some((was, now)) = first {
            changes.push(change(
                ChangeKind::Rounded,
                k,
                format!(
                    "metadata `{k}` holds {was}, which {}'s float64 numbers store as {now}",
                    rules.target
                ),
            ));
        }
    }
}

fn round_value(v: &mut Value, first: &mut Option<(String, String)>) {
    match v {
        Value::Number(n) => {
            if let Some(rounded) = float64_of(n) {
                first.get_or_insert_with(|| (n.to_string(), rounded.to_string()));
                *n = rounded;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| round_value(i, first)),
        Value::Object(members) => members.values_mut().for_each(|m| round_value(m, first)),
        _ => {}
    }
}

/// The float64 `n` becomes in a float64 store, when that is another number
/// than `n`'s decimal text (`None` for 64-bit integers and exact floats).
pub fn float64_of(n: &serde_json::Number) -> Option<serde_json::Number> {
    if n.is_i64() || n.is_u64() {
        return None;
    }
    let text = n.to_string();
    let f: f64 = text.parse().ok().filter(|f: &f64| f.is_finite())?;
    let back = serde_json::Number::from_f64(f)?;
    (decimal_parts(&text) != decimal_parts(&back.to_string())).then_some(back)
}

/// A decimal number's value as (negative, significant digits, exponent of
/// the last digit), so that `1.50`, `15e-1` and `1.5` compare equal.
fn decimal_parts(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let mut exp = exp - frac.len() as i64;
    let trimmed_end = digits.trim_end_matches('0');
    exp += (digits.len() - trimmed_end.len()) as i64;
    let digits = trimmed_end.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, digits, exp)
}

fn conform_values(
    rules: &MetadataRules,
    policy: MetadataPolicy,
    meta: &mut Metadata,
) -> Result<Vec<Change>, String> {
    let fits = meta.iter().all(|(k, v)| {
        (rules.rename)(k).is_none()
            && (rules.key)(k).is_none()
            && value_problem(rules, k, v).is_none()
    });
    if fits {
        return Ok(Vec::new());
    }
    let mut changes = Vec::new();
    let mut out = Map::with_capacity(meta.len());
    for (k, v) in meta.iter() {
        let name = match (rules.rename)(k) {
            Some(new) => {
                let why = format!(
                    "metadata key {k:?} is not a valid {} name; stored as {new:?}, from which an export restores it",
                    rules.target
                );
                changes.push(change(ChangeKind::Renamed, k, why));
                new
            }
            None => k.clone(),
        };
        if let Some(why) = (rules.key)(&name) {
            let why = format!("metadata key {name:?} {why}");
            if policy != MetadataPolicy::Drop {
                return Err(why);
            }
            changes.push(change(ChangeKind::Dropped, &name, why));
            continue;
        }
        let Some(why) = value_problem(rules, &name, v) else {
            insert(&mut out, name, v.clone())?;
            continue;
        };
        match (policy, v) {
            (MetadataPolicy::Refuse, _) => return Err(why),
            (MetadataPolicy::Drop, _) => changes.push(change(ChangeKind::Dropped, &name, why)),
            (MetadataPolicy::Flatten, Value::Object(members)) if !members.is_empty() => {
                changes.push(change(ChangeKind::Flattened, &name, why));
                flatten(rules, &name, members, &mut out, &mut changes)?;
            }
            _ => {
                changes.push(change(ChangeKind::Encoded, &name, why));
                insert(&mut out, name, Value::String(v.to_string()))?;
            }
        }
    }
    *meta = out;
    Ok(changes)
}

fn change(kind: ChangeKind, key: &str, reason: String) -> Change {
    Change {
        change: kind,
        key: Some(key.to_owned()),
        new_id: None,
        reason,
    }
}

fn insert(out: &mut Metadata, k: String, v: Value) -> Result<(), String> {
    if out.contains_key(&k) {
        return Err(format!(
            "metadata key `{k}` would appear twice after renaming or flattening; rename one of them, or choose --metadata encode or drop"
        ));
    }
    out.insert(k, v);
    Ok(())
}

fn flatten(
    rules: &MetadataRules,
    prefix: &str,
    members: &Map<String, Value>,
    out: &mut Metadata,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    for (k, v) in members {
        let key = format!("{prefix}.{k}");
        match v {
            Value::Object(inner) if !rules.objects && !inner.is_empty() => {
                flatten(rules, &key, inner, out, changes)?;
            }
            v => match value_problem(rules, &key, v) {
                None => insert(out, key, v.clone())?,
                Some(why) => {
                    changes.push(change(ChangeKind::Encoded, &key, why));
                    insert(out, key, Value::String(v.to_string()))?;
                }
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PINECONE_LIKE: MetadataRules = MetadataRules {
        target: "pinecone",
        objects: false,
        nulls: false,
        arrays: Arrays::Strings,
        empty_arrays: true,
        integers: Integers::Float64,
        numbers: Numbers::Float64,
        key: |k| k.starts_with('$').then(|| "is reserved".to_owned()),
        rename: |_| None,
    };

    fn meta(v: Value) -> Metadata {
        v.as_object().unwrap().clone()
    }

    fn kinds(changes: &[Change]) -> Vec<(ChangeKind, &str)> {
        changes
            .iter()
            .map(|c| (c.change, c.key.as_deref().unwrap_or("")))
            .collect()
    }

    #[test]
    fn namespace_policies_parse_and_print() {
        for (text, policy) in [
            ("refuse", NamespacePolicy::Refuse),
            ("into-key", NamespacePolicy::IntoKey(NAMESPACE_KEY.into())),
            ("into-key=tenant", NamespacePolicy::IntoKey("tenant".into())),
            ("from-key=a=b", NamespacePolicy::FromKey("a=b".into())),
        ] {
            assert_eq!(text.parse::<NamespacePolicy>(), Ok(policy.clone()));
            assert_eq!(policy.to_string(), text);
        }
        for bad in ["", "from-key", "into-key=", "split", "refuse=x"] {
            assert!(bad.parse::<NamespacePolicy>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_namespace_key_is_lifted_when_it_holds_a_string() {
        let mut m = Some(meta(json!({NAMESPACE_KEY: "eu", "k": 1})));
        assert_eq!(lift_namespace(&mut m), Some("eu".into()));
        assert_eq!(m, Some(meta(json!({"k": 1}))));
        let mut only = Some(meta(json!({NAMESPACE_KEY: "eu"})));
        assert_eq!(lift_namespace(&mut only), Some("eu".into()));
        assert_eq!(only, None, "nothing else: no metadata");
        let mut other = Some(meta(json!({NAMESPACE_KEY: 7})));
        assert_eq!(lift_namespace(&mut other), None);
        assert_eq!(
            other,
            Some(meta(json!({NAMESPACE_KEY: 7}))),
            "left as it is"
        );
        assert_eq!(lift_namespace(&mut None), None);
        // The other keys keep their order (maps compare equal in any order).
        let mut first = Some(meta(json!({NAMESPACE_KEY: "eu", "a": 1, "b": 2, "c": 3})));
        lift_namespace(&mut first);
        let keys: Vec<&str> = first
            .iter()
            .flat_map(|m| m.keys())
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn numbers_a_float64_target_cannot_hold_are_rounded_and_reported() {
        let text = r#"{"third": 0.33333333333333333333, "tenth": 0.1, "sci": 1.50e1,
            "big": 1180591620717411303424, "bigger": 1180591620717411303425,
            "i": -9223372036854775808, "deep": {"x": [0.5, 1.00000000000000000001]}}"#;
        let mut m: Metadata = serde_json::from_str(text).unwrap();
        let float64 = MetadataRules {
            target: "qdrant",
            ..MetadataRules::ANY
        };
        let changes = conform(&float64, MetadataPolicy::Refuse, &mut m).unwrap();
        let rounded: Vec<&str> = changes
            .iter()
            .filter(|c| c.change == ChangeKind::Rounded)
            .map(|c| c.key.as_deref().unwrap())
            .collect();
        // 2^70 is a float64, but it comes back as its shortest decimal: digits lost too.
        assert_eq!(rounded, ["third", "big", "bigger", "deep"]);
        assert!(
            changes[0].reason.contains("holds 0.33333333333333333333"),
            "{}",
            changes[0].reason
        );
        assert!(
            changes[0].reason.contains("as 0.3333333333333333"),
            "{}",
            changes[0].reason
        );
        assert_eq!(m["third"], json!(0.3333333333333333));
        assert_eq!(m["tenth"].to_string(), "0.1");
        assert_eq!(m["sci"].to_string(), "1.50e+1", "the same value: unchanged");
        assert_eq!(m["big"].to_string(), "1.1805916207174113e+21");
        assert_eq!(
            m["i"].to_string(),
            "-9223372036854775808",
            "64-bit integers are kept"
        );
        // Decimal targets keep every digit.
        let mut m: Metadata = serde_json::from_str(text).unwrap();
        let exact = MetadataRules {
            numbers: Numbers::Decimal,
            ..MetadataRules::ANY
        };
        assert_eq!(conform(&exact, MetadataPolicy::Refuse, &mut m), Ok(vec![]));
        assert_eq!(m["third"].to_string(), "0.33333333333333333333");
    }

    #[test]
    fn decimal_values_compare_by_value() {
        assert_eq!(decimal_parts("1.50"), decimal_parts("15e-1"));
        assert_eq!(decimal_parts("-0.0"), decimal_parts("0"));
        assert_eq!(decimal_parts("100"), decimal_parts("1e2"));
        assert_ne!(decimal_parts("0.1"), decimal_parts("0.10000000000000001"));
        assert_ne!(decimal_parts("-1"), decimal_parts("1"));
    }

    #[test]
    fn metadata_that_fits_is_left_alone() {
        let mut m = meta(json!({"a": "x", "n": 1.5, "b": true, "tags": ["p", "q"]}));
        let before = m.clone();
        for policy in [MetadataPolicy::Refuse, MetadataPolicy::Flatten] {
            assert_eq!(conform(&PINECONE_LIKE, policy, &mut m), Ok(vec![]));
            assert_eq!(m, before);
        }
    }

    #[test]
    fn refuse_names_the_key_and_leaves_metadata_untouched() {
        let mut m = meta(json!({"ok": 1, "deep": {"x": 1}}));
        let before = m.clone();
        let err = conform(&PINECONE_LIKE, MetadataPolicy::Refuse, &mut m).unwrap_err();
        assert!(
            err.contains("`deep`") && err.contains("nested object"),
            "{err}"
        );
        assert_eq!(m, before);
    }

    #[test]
    fn flatten_makes_dotted_keys_and_encodes_what_still_does_not_fit() {
        let mut m = meta(json!({
            "a": {"b": 1, "c": {"d": "x", "e": null}, "f": [1, 2]},
            "n": null,
            "z": 2
        }));
        let changes = conform(&PINECONE_LIKE, MetadataPolicy::Flatten, &mut m).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"a.b": 1, "a.c.d": "x", "a.c.e": "null", "a.f": "[1,2]", "n": "null", "z": 2})
        );
        assert_eq!(
            kinds(&changes),
            vec![
                (ChangeKind::Flattened, "a"),
                (ChangeKind::Encoded, "a.c.e"),
                (ChangeKind::Encoded, "a.f"),
                (ChangeKind::Encoded, "n"),
            ]
        );
    }

    #[test]
    fn encode_and_drop_touch_only_what_does_not_fit() {
        let big = json!({"k": u64::MAX, "o": {"x": [true]}, "s": "keep", "$r": 1});
        let mut m = meta(big.clone());
        let err = conform(&PINECONE_LIKE, MetadataPolicy::Encode, &mut m).unwrap_err();
        assert!(err.contains("\"$r\" is reserved"), "{err}");
        assert_eq!(Value::Object(m.clone()), big, "untouched after an error");
        m.remove("$r");
        let changes = conform(&PINECONE_LIKE, MetadataPolicy::Encode, &mut m).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"k": "18446744073709551615", "o": "{\"x\":[true]}", "s": "keep"})
        );
        assert_eq!(changes.len(), 2);
        let mut m = meta(big);
        let changes = conform(&PINECONE_LIKE, MetadataPolicy::Drop, &mut m).unwrap();
        assert_eq!(Value::Object(m), json!({"s": "keep"}));
        assert_eq!(
            kinds(&changes),
            vec![
                (ChangeKind::Dropped, "k"),
                (ChangeKind::Dropped, "o"),
                (ChangeKind::Dropped, "$r"),
            ]
        );
    }

    #[test]
    fn renames_are_made_and_reported_whatever_the_policy() {
        let rules = MetadataRules {
            rename: |k| k.contains('-').then(|| k.replace('-', "_")),
            ..PINECONE_LIKE
        };
        let mut m = meta(json!({"my-key": 1, "ok": 2}));
        let changes = conform(&rules, MetadataPolicy::Refuse, &mut m).unwrap();
        assert_eq!(Value::Object(m), json!({"my_key": 1, "ok": 2}));
        assert_eq!(kinds(&changes), vec![(ChangeKind::Renamed, "my-key")]);
        let mut m = meta(json!({"a-b": 1, "a_b": 2}));
        let err = conform(&rules, MetadataPolicy::Drop, &mut m).unwrap_err();
        assert!(err.contains("`a_b` would appear twice"), "{err}");
    }

    #[test]
    fn flattening_onto_an_existing_key_is_refused() {
        let mut m = meta(json!({"a": {"b": 1}, "a.b": 2}));
        let err = conform(&PINECONE_LIKE, MetadataPolicy::Flatten, &mut m).unwrap_err();
        assert!(err.contains("`a.b` would appear twice"), "{err}");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn homogeneous_arrays_and_integer_ranges() {
        let rules = MetadataRules {
            target: "chroma",
            objects: false,
            nulls: false,
            arrays: Arrays::Homogeneous,
            empty_arrays: false,
            integers: Integers::I64,
            numbers: Numbers::Float64,
            key: |_| None,
            rename: |_| None,
        };
        for ok in [
            json!([1, 2]),
            json!(["a"]),
            json!(i64::MIN),
            json!([1.5, 2.5]),
        ] {
            assert_eq!(value_problem(&rules, "k", &ok), None, "{ok}");
        }
        for (bad, needle) in [
            (json!([]), "empty array"),
            (json!([1, "a"]), "mixed types"),
            (json!([1, 2.5]), "mixed types"),
            (json!([[1]]), "holding arrays"),
            (json!([null]), "holding arrays"),
            (json!([{"a": 1}]), "holding arrays"),
            (json!(u64::MAX), "64-bit signed"),
            (json!([u64::MAX]), "64-bit signed"),
        ] {
            let p = value_problem(&rules, "k", &bad).unwrap();
            assert!(p.contains(needle), "{bad}: {p}");
        }
        let typed = MetadataRules {
            objects: true,
            arrays: Arrays::Typed,
            ..rules
        };
        assert_eq!(
            value_problem(&typed, "k", &json!([{"a": [1]}, {"b": "x"}])),
            None
        );
        assert!(value_problem(&typed, "k", &json!([{"a": 1}, 2])).is_some());
        assert!(value_problem(&typed, "k", &json!({"a": [1, "x"]})).is_some());
        let any = MetadataRules::ANY;
        for v in [
            json!({"a": [null, {"b": []}]}),
            json!(u64::MAX),
            json!(null),
        ] {
            assert_eq!(value_problem(&any, "k", &v), None);
        }
    }
}
