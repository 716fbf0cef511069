//! The command line: messages and exit codes.

use predicates::prelude::*;
use serde_json::Value;

use crate::conformance::write_snapshot;
use crate::support::cli::vecport;
use crate::support::data::{self, FLAT};
use crate::support::{server_url, unique_name};

fn snapshot_in(dir: &std::path::Path) -> std::path::PathBuf {
    let snap = dir.join("snap");
    write_snapshot(
        &snap,
        &data::spec("docs", 8, vecport::model::Metric::L2),
        data::records(50, 8, 1, FLAT),
    );
    snap
}

#[test]
fn verify_and_inspect_a_good_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot_in(tmp.path());
    vecport()
        .args(["verify", snap.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "ok: manifest and 1 part file(s) verified, 50 rows",
        ));
    vecport()
        .args(["inspect", snap.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("collection docs")
                .and(predicate::str::contains("records    50")),
        );
    let out = vecport()
        .args(["inspect", "--json", snap.to_str().unwrap()])
        .output()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["collections"][0]["record_count"], 50);
    let out = vecport()
        .args(["verify", "--json", snap.to_str().unwrap()])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
}

#[test]
fn verify_names_a_damaged_part_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot_in(tmp.path());
    let part = snap.join("collections/docs/part-000000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&part, bytes).unwrap();
    vecport()
        .args(["verify", snap.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("part-000000.parquet")
                .and(predicate::str::contains("checksum mismatch")),
        );
}

#[test]
fn import_of_a_damaged_snapshot_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot_in(tmp.path());
    std::fs::remove_file(snap.join("collections/docs/part-000000.parquet")).unwrap();
    vecport()
        .args(["import", snap.to_str().unwrap(), "chroma://127.0.0.1:9/x"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("part-000000.parquet")
                .and(predicate::str::contains("missing")),
        );
}

#[test]
fn not_a_snapshot_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    vecport()
        .args(["inspect", tmp.path().to_str().unwrap()])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("manifest.json")
                .and(predicate::str::contains("no complete snapshot")),
        );
}

#[test]
fn bad_urls_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (url, needle) in [
        ("localhost:8000", "not a valid URL"),
        ("mongo://h:1/c", "unknown scheme `mongo`"),
        ("chroma://h:1/a/b", "more than one collection"),
        ("chroma://h:1/c?tenat=x", "unknown parameter `tenat`"),
        ("chroma://user:hunter2@h:1/c", "carries credentials"),
    ] {
        vecport()
            .args(["export", url, out.to_str().unwrap()])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(needle).and(predicate::str::contains("hunter2").not()),
            );
    }
    assert!(!out.exists());
}

#[test]
fn unreachable_server_exits_4_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    vecport()
        .args(["export", "chroma://127.0.0.1:9/c", out.to_str().unwrap()])
        .env("CHROMA_TOKEN", "tok-do-not-print")
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("cannot reach http://127.0.0.1:9")
                .and(predicate::str::contains("tok-do-not-print").not()),
        );
    assert!(!out.exists());
}

#[test]
fn non_empty_output_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&url);
    vecport()
        .args([
            "export",
            &format!("chroma://{host}"),
            tmp.path().to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not empty"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "mine",
        "nothing of the user's is touched"
    );
}

#[test]
fn missing_collection_exits_6() {
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&url);
    let tmp = tempfile::tempdir().unwrap();
    let name = unique_name("absent");
    vecport()
        .args([
            "export",
            &format!("chroma://{host}/{name}"),
            tmp.path().join("s").to_str().unwrap(),
        ])
        .assert()
        .code(6)
        .stderr(
            predicate::str::contains(format!("collection `{name}`"))
                .and(predicate::str::contains("not found")),
        );
}

#[test]
fn import_refuses_records_chroma_cannot_take_before_writing() {
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&url);
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    // Nested objects and nulls: Chroma's metadata is flat.
    write_snapshot(
        &snap,
        &data::spec("nested", 8, vecport::model::Metric::L2),
        data::records(30, 8, 1, data::FULL),
    );
    let target = unique_name("refused");
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("chroma://{host}/{target}"),
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("nothing was written")
                .and(predicate::str::contains("nested object")),
        );
    vecport()
        .args(["ls", &format!("chroma://{host}")])
        .assert()
        .success()
        .stdout(predicate::str::contains(&target).not());
}

#[test]
fn two_collections_renamed_to_one_name_are_refused() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshots/v1/basic");
    vecport()
        .args([
            "import",
            fixture.to_str().unwrap(),
            "memory://cli-test",
            "--rename",
            "chroma_docs=same",
            "--rename",
            "rich=same",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "two collections would be imported as `same`",
        ));
}
