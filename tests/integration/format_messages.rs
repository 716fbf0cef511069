//! What vecport says about a snapshot's manifest and contents, as a user
//! reads it: versions as FORMAT.md §3.4 parses them (the JSON Schema, the
//! prose and the code agree), a wrong `format`, a manifest whose checksum
//! does not match naming both files, `inspect`'s id kinds, and `compare`'s
//! counts keeping the default namespace apart from a namespace named `""`.

use std::path::Path;

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::model::{CollectionSpec, IdKind, Metric, Record, RecordId, VectorField};
use vecport::snapshot::WriteOptions;
use vecport::snapshot::manifest::parse_version;

use crate::snapshot_format::{read_manifest_json, rewrite_manifest, schema_errors, write_snapshot};
use crate::support::cli::vecport;

fn records(namespace: Option<&str>, n: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record::dense(RecordId::Uint(i), vec![i as f32, 1.0]);
            r.namespace = namespace.map(str::to_owned);
            r
        })
        .collect()
}

fn snapshot(root: &Path, id_kind: IdKind, records: Vec<Record>) {
    let spec = CollectionSpec {
        name: "docs".into(),
        id_kind: Some(id_kind),
        vectors: vec![VectorField::dense(Some(2), Some(Metric::Dot))],
        ..CollectionSpec::default()
    };
    write_snapshot(root, WriteOptions::default(), &[(spec, records)], None);
}

/// Every version string is accepted by the schema's pattern exactly when
/// the reader parses it as 1.x, and refused with a message naming it.
#[test]
fn format_version_parses_as_the_schema_and_the_prose_say() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    snapshot(&root, IdKind::Uint, records(None, 3));
    let good = read_manifest_json(&root);
    for (version, valid) in [
        ("1.0", true),
        ("1.7", true),
        ("1.4294967295", true),
        ("1.00", false),
        ("01.0", false),
        ("1", false),
        ("1.0.0", false),
        (" 1.0", false),
        ("1.x", false),
        ("+1.0", false),
        ("1.4294967296", false),
    ] {
        let mut m = good.clone();
        m["format_version"] = json!(version);
        let by_schema = schema_errors(&m).is_empty();
        let by_reader = parse_version(version).is_some_and(|(major, _)| major == 1);
        assert_eq!(by_schema, valid, "{version:?}: schema");
        assert_eq!(by_reader, valid, "{version:?}: reader");
        rewrite_manifest(&root, |m| m["format_version"] = json!(version));
        let run = vecport().arg("inspect").arg(&root).assert();
        if valid {
            run.success();
        } else {
            run.code(3).stderr(predicate::str::contains(format!(
                "{version:?} is not MAJOR.MINOR"
            )));
        }
    }
}

#[test]
fn version_0_9_is_not_told_to_upgrade_and_2_0_is() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    snapshot(&root, IdKind::Uint, records(None, 3));
    rewrite_manifest(&root, |m| m["format_version"] = json!("0.9"));
    vecport().arg("verify").arg(&root).assert().code(1).stdout(
        predicate::str::contains("0.9 is older than any format vecport reads (1.x)")
            .and(predicate::str::contains("upgrade").not()),
    );
    rewrite_manifest(&root, |m| m["format_version"] = json!("2.0"));
    vecport()
        .arg("inspect")
        .arg(&root)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("upgrade vecport"));
}

#[test]
fn a_wrong_or_missing_format_is_quoted_not_debug_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    snapshot(&root, IdKind::Uint, records(None, 3));
    rewrite_manifest(&root, |m| m["format"] = json!("other.thing"));
    vecport().arg("inspect").arg(&root).assert().code(3).stderr(
        predicate::str::contains("`format` is \"other.thing\", expected \"vecport.snapshot\"")
            .and(predicate::str::contains("Some(").not()),
    );
    rewrite_manifest(&root, |m| {
        m.as_object_mut().unwrap().remove("format");
    });
    vecport().arg("inspect").arg(&root).assert().code(3).stderr(
        predicate::str::contains("`format` is missing").and(predicate::str::contains("None").not()),
    );
}

#[test]
fn a_manifest_checksum_mismatch_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    snapshot(&root, IdKind::Uint, records(None, 3));
    let path = root.join("manifest.json");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push(' ');
    std::fs::write(&path, text).unwrap();
    vecport()
        .arg("import")
        .arg(&root)
        .arg("memory://messages/docs")
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("manifest.json.blake3 says blake3")
                .and(predicate::str::contains("manifest.json has"))
                .and(predicate::str::contains("manifest says").not()),
        );
}

#[test]
fn inspect_names_id_kinds_as_the_manifest_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("snap");
    snapshot(&root, IdKind::UintOrUuid, records(None, 3));
    vecport()
        .arg("inspect")
        .arg(&root)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("ids        uint_or_uuid")
                .and(predicate::str::contains("uintoruuid").not()),
        );
}

#[test]
fn compare_keeps_the_default_namespace_apart_from_the_empty_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    snapshot(&a, IdKind::Uint, records(None, 4));
    snapshot(&b, IdKind::Uint, records(Some(""), 4));
    let out = vecport()
        .args(["compare", "--json"])
        .arg(&a)
        .arg(&b)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    let counts = &report["collections"][0]["counts"];
    assert_eq!(
        counts["a"],
        json!([{"namespace": null, "records": 4}]),
        "{report}"
    );
    assert_eq!(
        counts["b"],
        json!([{"namespace": "", "records": 4}]),
        "{report}"
    );
    vecport()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("namespace (default): A 4, B 0")
                .and(predicate::str::contains("namespace \"\": A 0, B 4")),
        );
}
