//! Every row of the README's table of bad input, through the `vecport`
//! binary: the message (its key parts), the exit code, and that nothing was
//! left half-written — no snapshot directory or partial file after a failed
//! export, no target collection created (or the existing one unchanged)
//! after a failed import. Databases are the in-process emulators.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::model::{Metric, Record, RecordId, SparseVector, Vector, VectorField, VectorKind};

use crate::conformance::write_snapshot;
use crate::emulators::pinecone::{self, PineconeOptions};
use crate::emulators::qdrant::{self, QdrantEmulator, QdrantOptions};
use crate::emulators::weaviate::{self, WeaviateOptions};
use crate::emulators::{Faults, Served};
use crate::snapshot_format::rewrite_manifest;
use crate::support::cli::{files_under, import_quietly, plain_records, vecport};
use crate::support::data;
use crate::support::http;

fn qdrant() -> QdrantEmulator {
    qdrant::start_background(QdrantOptions::default()).unwrap()
}

fn url(e: &QdrantEmulator, collection: &str) -> String {
    format!("qdrant://{}/{collection}", e.addr())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A one-collection snapshot of `n` plain records at `dir/name`.
fn snapshot(dir: &Path, name: &str, n: usize, dim: u32, metric: Metric) -> PathBuf {
    let snap = dir.join(name);
    write_snapshot(
        &snap,
        &data::spec(name, dim, metric),
        plain_records(n, dim as usize, 1),
    );
    snap
}

/// Seeds collection `name` in `e` with `n` plain records through the CLI.
fn seed(e: &QdrantEmulator, dir: &Path, name: &str, n: usize, dim: u32, metric: Metric) {
    let snap = snapshot(dir, &format!("seed-{name}"), n, dim, metric);
    import_quietly(&snap, &url(e, name));
    assert_eq!(e.state().points_count(name), Some(n));
}

/// Requests that wrote records (or created, deleted collections).
fn writes(served: &[Served]) -> Vec<&Served> {
    served
        .iter()
        .filter(|r| {
            r.method != "GET" && !r.path.ends_with("/scroll") && !r.path.ends_with("/count")
        })
        .collect()
}

// ---- URLs and options (exit 2) ----

#[test]
fn malformed_url() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    vecport()
        .args(["export", "localhost:8000", s(&out)])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("`localhost:8000` is not a valid URL").and(
                predicate::str::contains("expected SCHEME://HOST[:PORT][/COLLECTION]"),
            ),
        );
    vecport()
        .args(["export", "qdrant://h:99999/c?token=not-for-eyes", s(&out)])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("is not a valid URL")
                .and(predicate::str::contains("not-for-eyes").not()),
        );
    assert!(!out.exists());
}

#[test]
fn unknown_scheme() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    vecport()
        .args(["export", "mongo://h:1/c", s(&out)])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown scheme `mongo`").and(predicate::str::contains(
                "supported: chroma, chroma+https, qdrant",
            )),
        );
    assert!(!out.exists());
}

#[test]
fn url_with_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for u in [
        "qdrant://admin:hunter2@127.0.0.1:1/c",
        "pgvector://app:hunter2@127.0.0.1:1/db/t",
    ] {
        vecport()
            .args(["export", u, s(&out)])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("carries credentials in the URL")
                    .and(predicate::str::contains("environment variable"))
                    .and(predicate::str::contains("hunter2").not()),
            );
    }
    assert!(!out.exists());
}

#[test]
fn unknown_url_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    vecport()
        .args(["export", "chroma://127.0.0.1:1/c?tenat=x", s(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown parameter `tenat`; chroma takes tenant, database",
        ));
    assert!(!out.exists());
}

#[test]
fn drop_vector_naming_no_field() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot(tmp.path(), "docs", 5, 4, Metric::Dot);
    vecport()
        .args(["import", s(&snap), &url(&e, "docs"), "--drop-vector", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--drop-vector names \"x\", which no imported collection has; `vecport inspect` lists the vector fields",
        ));
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn migrate_into_one_named_collection_from_many() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "a", 3, 4, Metric::Dot);
    seed(&e, tmp.path(), "b", 3, 4, Metric::Dot);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    e.faults().clear();
    vecport()
        .current_dir(&work)
        .args([
            "migrate",
            &format!("qdrant://{}", e.addr()),
            &url(&e, "one"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target URL names one collection but the source has 2; pick one with --collection",
        ));
    assert!(files_under(&work).is_empty(), "nothing was exported");
    assert!(std::fs::read_dir(&work).unwrap().next().is_none());
    assert_eq!(e.state().collection_names().len(), 2);
    assert!(writes(&e.faults().served()).is_empty());
}

// ---- The output directory (exit 2 and 8) ----

#[test]
fn output_directory_not_empty() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "docs", 3, 4, Metric::Dot);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    vecport()
        .args(["export", &url(&e, "docs"), s(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not empty; export into a new directory",
        ));
    assert_eq!(files_under(&out), [out.join("keep.txt")]);
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
}

/// A tmpfs mounted at `dir` with `options`, unmounted on drop; `None` when
/// this environment does not let us mount (not root, no CAP_SYS_ADMIN).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Process::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", s(dir)])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Mount(dir.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(&self.0).status();
    }
}

#[test]
fn unwritable_output_directory() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "docs", 3, 4, Metric::Dot);
    let parent = tmp.path().join("locked");
    std::fs::create_dir(&parent).unwrap();
    // Permissions stop an ordinary user; root needs a read-only file system.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mount = if std::fs::write(parent.join("probe"), "x").is_ok() {
        std::fs::remove_file(parent.join("probe")).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        match Mount::tmpfs(&parent, "ro,size=64k") {
            Some(m) => Some(m),
            None => {
                crate::support::skip(
                    "running as root without permission to mount a read-only tmpfs, so no directory is unwritable",
                );
                return;
            }
        }
    } else {
        None
    };
    let out = parent.join("snap");
    vecport()
        .args(["export", &url(&e, "docs"), s(&out)])
        .assert()
        .code(8)
        .stderr(
            predicate::str::contains(s(&out)).and(predicate::str::contains(
                "vecport may not write there: choose another directory or change its permissions",
            )),
        );
    assert!(!out.exists());
    if mount.is_none() {
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn disk_full_during_export() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    // About 1.3 MB of vectors, into a 256 KiB file system.
    seed(&e, tmp.path(), "big", 20_000, 16, Metric::Dot);
    let disk = tmp.path().join("disk");
    let Some(_mount) = Mount::tmpfs(&disk, "size=256k") else {
        crate::support::skip("this environment does not allow mounting a small tmpfs (needs root)");
        return;
    };
    let out = disk.join("snap");
    vecport()
        .args(["export", &url(&e, "big"), s(&out), "--part-rows", "5000"])
        .assert()
        .code(8)
        .stderr(
            predicate::str::contains("No space left on device")
                .and(predicate::str::contains(
                    "the disk is full: free some space or choose a directory on another disk",
                ))
                .and(predicate::str::contains("writing the part failed").not()),
        );
    assert!(!out.exists(), "the partial snapshot is removed");
    assert!(files_under(&disk).is_empty());
}

// ---- Reaching the database (exit 4, 5, 6) ----

#[test]
fn unreachable_host() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let started = Instant::now();
    vecport()
        .args(["export", "qdrant://127.0.0.1:9/c", s(&out)])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("cannot reach http://127.0.0.1:9")
                .and(predicate::str::contains(
                    "nothing answered there: check the host and port, and that the server is running",
                )),
        );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a server that never answered is not retried for long: {:?}",
        started.elapsed()
    );
    assert!(!out.exists());
}

#[test]
fn server_keeps_failing() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "docs", 3, 4, Metric::Dot);
    let out = tmp.path().join("out");
    e.faults().clear();
    e.faults().set(Faults::always_unavailable()).unwrap();
    vecport()
        .args([
            "export",
            &url(&e, "docs"),
            s(&out),
            "--retries",
            "2",
            "--retry-wait",
            "0.01",
        ])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("answered HTTP 503").and(predicate::str::contains(
                "(still failing after 2 retries; --retries and --retry-max-wait raise the limits)",
            )),
        );
    let served = e.faults().served();
    assert_eq!(served.len(), 3, "one request and two retries: {served:?}");
    assert!(
        served
            .iter()
            .all(|r| r.status == 503 && r.path == served[0].path)
    );
    assert!(!out.exists());

    // Rate limits: Retry-After is honoured, then the run stops.
    e.faults().clear();
    e.faults().set(Faults::always_rate_limited(1)).unwrap();
    let started = Instant::now();
    vecport()
        .args(["export", &url(&e, "docs"), s(&out), "--retries", "1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "kept rate-limiting requests (HTTP 429, retry after 1s) after 1 retries",
        ));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(e.faults().served().len(), 2);
    assert!(!out.exists());
}

#[test]
fn wrong_credentials() {
    let e = qdrant::start_background(QdrantOptions {
        api_key: Some("the-right-key".into()),
        ..QdrantOptions::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot(tmp.path(), "docs", 5, 4, Metric::Dot);
    let out = tmp.path().join("out");
    for (args, key) in [
        (
            vec!["export", &url(&e, "docs"), s(&out)],
            Some("wrong-key-123"),
        ),
        (
            vec!["import", s(&snap), &url(&e, "docs")],
            Some("wrong-key-123"),
        ),
        (vec!["ls", &format!("qdrant://{}", e.addr())], None),
    ] {
        e.faults().clear();
        let mut cmd = vecport();
        if let Some(k) = key {
            cmd.env("QDRANT_API_KEY", k);
        }
        cmd.args(&args).assert().code(5).stderr(
            predicate::str::contains("refused the credentials (HTTP 401")
                .and(predicate::str::contains(
                    "check the API key in QDRANT_API_KEY",
                ))
                .and(predicate::str::contains("wrong-key-123").not()),
        );
        // One refused request, not retried, and nothing after it.
        let served = e.faults().served();
        let refused: Vec<_> = served.iter().filter(|r| r.status == 401).collect();
        assert_eq!(refused.len(), 1, "{args:?}: {served:?}");
        assert_eq!(served.last(), Some(refused[0]), "{args:?}: {served:?}");
    }
    assert!(!out.exists());
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn missing_collection() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    vecport()
        .args(["export", &url(&e, "absent"), s(&out)])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!(
            "collection `absent` on {} not found; `vecport ls qdrant://{}` lists the collections",
            e.base_url(),
            e.addr()
        )));
    assert!(!out.exists());
    // A collection the snapshot does not hold.
    let snap = snapshot(tmp.path(), "docs", 3, 4, Metric::Dot);
    vecport()
        .args([
            "import",
            s(&snap),
            &format!("qdrant://{}", e.addr()),
            "--collection",
            "other",
        ])
        .assert()
        .code(6)
        .stderr(
            predicate::str::contains("collection `other` in snapshot")
                .and(predicate::str::contains("not found; it holds: `docs`")),
        );
    assert!(e.state().collection_names().is_empty());
}

// ---- The target (exit 7) ----

#[test]
fn target_exists() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "docs", 10, 4, Metric::Dot);
    let snap = snapshot(tmp.path(), "other", 3, 4, Metric::Dot);
    e.faults().clear();
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("collection `docs` already exists on").and(
                predicate::str::contains(
                    "import under another name (--rename), or pass --if-exists append|replace",
                ),
            ),
        );
    assert_eq!(e.state().points_count("docs"), Some(10));
    assert!(writes(&e.faults().served()).is_empty());
}

#[test]
fn target_with_another_dimension_or_metric() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    seed(&e, tmp.path(), "docs", 10, 4, Metric::Dot);
    for (snap, needle) in [
        (
            snapshot(tmp.path(), "wider", 3, 8, Metric::Dot),
            "its vector field \"\" is dense, dimension 4, metric dot, the snapshot's is dense, dimension 8, metric dot",
        ),
        (
            snapshot(tmp.path(), "other-metric", 3, 4, Metric::L2),
            "its vector field \"\" is dense, dimension 4, metric dot, the snapshot's is dense, dimension 4, metric l2",
        ),
    ] {
        e.faults().clear();
        vecport()
            .args(["import", s(&snap), &url(&e, "docs"), "--if-exists", "append"])
            .assert()
            .code(7)
            .stderr(
                predicate::str::contains(
                    "collection `docs` on http://",
                )
                .and(predicate::str::contains("exists but cannot take the snapshot's vectors"))
                .and(predicate::str::contains(needle))
                .and(predicate::str::contains(
                    "nothing was written. Import under another name (--rename), or pass --if-exists replace",
                )),
            );
        assert_eq!(e.state().points_count("docs"), Some(10));
        assert!(writes(&e.faults().served()).is_empty());
    }

    // Weaviate knows a class's dimension from its objects.
    let w = weaviate::start_background(WeaviateOptions::default()).unwrap();
    let base = snapshot(tmp.path(), "w-base", 4, 4, Metric::Dot);
    let class = format!("weaviate://{}/Docs", w.addr());
    import_quietly(&base, &class);
    let other = snapshot(tmp.path(), "w-l2", 3, 4, Metric::L2);
    w.faults().clear();
    vecport()
        .args(["import", s(&other), &class, "--if-exists", "append"])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("class `Docs` on http://").and(predicate::str::contains(
                "metric dot, the snapshot's is dense, dimension 4, metric l2",
            )),
        );
    assert_eq!(w.state().object_count("Docs", None), 4);
    assert!(
        writes(&w.faults().served())
            .iter()
            .all(|r| r.path.starts_with("/v1/graphql"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_target_told_to_be_replaced() {
    let e = pinecone::start(PineconeOptions::default()).await.unwrap();
    http::post(
        &reqwest::Client::new(),
        &format!("{}/indexes", e.base_url()),
        json!({"name": "kept", "dimension": 4, "metric": "dotproduct",
               "deletion_protection": "enabled",
               "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot(tmp.path(), "docs", 3, 4, Metric::Dot);
    e.faults().clear();
    vecport()
        .args([
            "import",
            s(&snap),
            &format!("pinecone+http://{}/kept", e.addr()),
            "--if-exists",
            "replace",
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains(
                "index `kept` cannot be replaced: pinecone refused to delete it (Deletion protection is enabled",
            )
            .and(predicate::str::contains("nothing was written")),
        );
    assert_eq!(e.state().index_names(), ["kept"]);
    let served = e.faults().served();
    let deletes: Vec<_> = served.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "refused once, not retried: {served:?}");
    assert_eq!(deletes[0].status, 403);
    assert_eq!(served.last(), Some(deletes[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_the_target_cannot_take() {
    let e = pinecone::start(PineconeOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("nested");
    let mut records = plain_records(5, 4, 1);
    records[2].metadata = Some(serde_json::from_value(json!({"a": {"b": 1}})).unwrap());
    records[4].metadata = Some(serde_json::from_value(json!({"n": null})).unwrap());
    write_snapshot(&snap, &data::spec("nested", 4, Metric::Dot), records);
    vecport()
        .args([
            "import",
            s(&snap),
            &format!("pinecone+http://{}/nested", e.addr()),
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains(
                "pinecone cannot take some records of collection `nested`; nothing was written",
            )
            .and(predicate::str::contains("record \"r-000002\""))
            .and(predicate::str::contains("nested object"))
            .and(predicate::str::contains("record \"r-000004\""))
            .and(predicate::str::contains("--metadata flatten|encode|drop"))
            .and(predicate::str::contains("--skip-invalid")),
        );
    assert!(e.state().index_names().is_empty());
    assert!(
        files_under(tmp.path())
            .iter()
            .all(|f| !f.to_string_lossy().contains(".changes-"))
    );
}

#[test]
fn nan_and_infinite_vectors() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("odd");
    let mut records = plain_records(6, 4, 1);
    records[1].vectors = vec![Some(Vector::Dense(vec![0.5, f32::NAN, 0.0, 1.0]))];
    records[3].vectors = vec![Some(Vector::Dense(vec![f32::INFINITY, 0.0, 0.0, 1.0]))];
    write_snapshot(&snap, &data::spec("odd", 4, Metric::Dot), records);
    vecport()
        .args(["import", s(&snap), &url(&e, "odd")])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("qdrant cannot take some records of collection `odd`; nothing was written")
                .and(predicate::str::contains(
                    "record \"r-000001\": vector \"\" has NaN or infinite values, which JSON cannot carry",
                ))
                .and(predicate::str::contains("record \"r-000003\"")),
        );
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn record_too_large_for_any_request() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("huge");
    let mut records = plain_records(4, 4, 1);
    records[2].document = Some("x".repeat(31 << 20));
    write_snapshot(&snap, &data::spec("huge", 4, Metric::Dot), records);
    vecport()
        .args(["import", s(&snap), &url(&e, "huge")])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("record \"r-000002\": is about")
                .and(predicate::str::contains(
                    "more than qdrant takes in one request (31457280 bytes), so it can never be sent",
                ))
                .and(predicate::str::contains("nothing was written")),
        );
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn duplicate_ids_in_a_snapshot() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("twice");
    let mut records = plain_records(50, 4, 1);
    let mut again = records[7].clone();
    again.vectors = vec![Some(Vector::Dense(vec![1.0, 2.0, 3.0, 4.0]))];
    records.push(again);
    records.push(records[20].clone());
    write_snapshot(&snap, &data::spec("twice", 4, Metric::Dot), records);
    vecport()
        .args(["import", s(&snap), &url(&e, "twice")])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(
                "collection `twice` holds 2 id(s) more than once: \"r-000007\" (2 times), \"r-000020\" (2 times)",
            )
            .and(predicate::str::contains("a database keeps one record per id, so nothing was written")),
        );
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn feature_the_target_lacks() {
    let w = weaviate::start_background(WeaviateOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("sparse");
    let mut spec = data::spec("sparse", 4, Metric::Dot);
    spec.vectors.push(VectorField {
        name: "keywords".into(),
        kind: VectorKind::Sparse,
        ..VectorField::dense(None, Some(Metric::Dot))
    });
    let records: Vec<Record> = plain_records(4, 4, 1)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.vectors.push((i == 2).then(|| {
                Vector::Sparse(SparseVector {
                    indices: vec![3, 9],
                    values: vec![0.5, 0.25],
                })
            }));
            r
        })
        .collect();
    write_snapshot(&snap, &spec, records);
    vecport()
        .args(["import", s(&snap), &format!("weaviate://{}/Sparse", w.addr())])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "weaviate does not support sparse vectors (collection `sparse`: record \"r-000002\" has one in field \"keywords\"); nothing was written. `--drop-vector \"keywords\"` leaves the field out",
        ));
    assert!(w.state().class_names().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_rejected_inside_a_200() {
    let w = weaviate::start(WeaviateOptions::default()).await.unwrap();
    w.set_auto_schema(false);
    http::post(
        &reqwest::Client::new(),
        &format!("{}/v1/schema", w.base_url()),
        json!({"class": "Strict", "vectorizer": "none",
               "vectorIndexConfig": {"distance": "dot"},
               "properties": [{"name": "n", "dataType": ["int"]},
                              {"name": "vecport_id", "dataType": ["text"]}]}),
    )
    .await;
    let records: Vec<Record> = (0..6)
        .map(|i| {
            let mut r = Record::dense(RecordId::String(format!("r-{i}")), vec![i as f32, 1.0]);
            let n = if i == 4 { json!("four") } else { json!(i) };
            r.metadata = Some(serde_json::from_value(json!({ "n": n })).unwrap());
            r
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("strict");
    write_snapshot(&snap, &data::spec("strict", 2, Metric::Dot), records);
    vecport()
        .args([
            "import",
            s(&snap),
            &format!("weaviate://{}/Strict", w.addr()),
            "--if-exists",
            "append",
        ])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains(
                "weaviate rejected 1 of 6 objects of a batch into class `Strict`",
            )
            .and(predicate::str::contains("record \"r-4\""))
            .and(predicate::str::contains("imported `").not()),
        );
    // Weaviate keeps the objects of the batch it accepted: the class was
    // appended to as asked, and the run says which record failed.
    assert_eq!(w.state().object_count("Strict", None), 5);
}

#[test]
fn database_refuses_a_setting() {
    let e = qdrant();
    let tmp = tempfile::tempdir().unwrap();
    // Wider than Qdrant's 65,536 dimensions: refused when the collection is created.
    let snap = tmp.path().join("wide");
    let records: Vec<Record> = (0..2)
        .map(|i| Record::dense(RecordId::Uint(i), vec![0.5; 70_000]))
        .collect();
    write_snapshot(&snap, &data::spec("wide", 70_000, Metric::Dot), records);
    vecport()
        .args(["import", s(&snap), &url(&e, "wide")])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "qdrant refused create collection (HTTP 422): Validation error in JSON body: [vectors.size: must be from 1 to 65536]",
        ));
    let served = e.faults().served();
    let puts: Vec<_> = served.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "refused once, not retried: {served:?}");
    assert_eq!(served.last(), Some(puts[0]));
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn database_refuses_records() {
    // A server whose request limit is set below Qdrant's default: the first
    // write is refused (HTTP 400), once, and the records it held are named.
    let e = qdrant();
    e.set_max_request_size(64 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("docs");
    let mut records = plain_records(300, 4, 1);
    for r in &mut records {
        r.document = Some("d".repeat(1000));
    }
    write_snapshot(&snap, &data::spec("docs", 4, Metric::Dot), records);
    vecport()
        .args(["import", s(&snap), &url(&e, "docs"), "--concurrency", "1"])
        .assert()
        .code(7)
        .stderr(
            predicate::str::contains("qdrant refused upsert points (HTTP 400): Payload error: JSON payload (")
                .and(predicate::str::contains("is larger than allowed (limit: 65536 bytes)"))
                .and(predicate::str::contains(
                    "the request held 300 records: \"r-000000\", \"r-000001\", \"r-000002\" … \"r-000299\"",
                ))
                .and(predicate::str::contains("--batch-size")),
        );
    let served = e.faults().served();
    let upserts: Vec<_> = served
        .iter()
        .filter(|r| r.path.ends_with("/points"))
        .collect();
    assert_eq!(upserts.len(), 1, "refused once, not retried: {served:?}");
    assert_eq!(upserts[0].status, 400);
    assert_eq!(
        e.state().points_count("docs"),
        None,
        "no record was written, and the collection the import created is removed again"
    );
    // Smaller requests fit.
    vecport()
        .args([
            "import",
            s(&snap),
            &url(&e, "docs"),
            "--if-exists",
            "replace",
            "--batch-size",
            "50",
            "-q",
        ])
        .assert()
        .success();
    assert_eq!(e.state().points_count("docs"), Some(300));
}

// ---- Snapshots (exit 3, or 1 from verify) ----

/// A good snapshot to damage, and a Qdrant emulator to import it into.
fn damaged(edit: impl FnOnce(&Path)) -> (QdrantEmulator, tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let snap = snapshot(tmp.path(), "docs", 50, 4, Metric::Dot);
    edit(&snap);
    (qdrant(), tmp, snap)
}

fn part(snap: &Path) -> PathBuf {
    snap.join("collections/docs/part-000000.parquet")
}

#[test]
fn damaged_part() {
    let (e, _tmp, snap) = damaged(|snap| {
        let mut bytes = std::fs::read(part(snap)).unwrap();
        bytes[200] ^= 0x10;
        std::fs::write(part(snap), bytes).unwrap();
    });
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(
                "part-000000.parquet: checksum mismatch (manifest says blake3 ",
            )
            .and(predicate::str::contains(
                "export again or restore it from a copy",
            )),
        );
    vecport()
        .args(["verify", s(&snap)])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("checksum mismatch"));
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn missing_or_truncated_part() {
    let (e, _tmp, snap) = damaged(|snap| {
        let bytes = std::fs::read(part(snap)).unwrap();
        std::fs::write(part(snap), &bytes[..bytes.len() / 2]).unwrap();
    });
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("part-000000.parquet")
                .and(predicate::str::is_match(r"is \d+ bytes, the manifest says \d+").unwrap()),
        );
    vecport().args(["verify", s(&snap)]).assert().code(1);
    std::fs::remove_file(part(&snap)).unwrap();
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "part-000000.parquet: is missing; the snapshot is incomplete",
        ));
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn not_a_snapshot_or_an_unfinished_export() {
    let (e, _tmp, snap) = damaged(|snap| std::fs::remove_file(snap.join("manifest.json")).unwrap());
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "manifest.json: is missing: this directory holds no complete snapshot",
        ));
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn snapshot_of_an_unknown_major_version() {
    let (e, _tmp, snap) =
        damaged(|snap| rewrite_manifest(snap, |m| m["format_version"] = json!("2.0")));
    vecport()
        .args(["import", s(&snap), &url(&e, "docs")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "snapshot format version 2.0 is not supported (this vecport reads 1.x); upgrade vecport to read it",
        ));
    vecport().args(["inspect", s(&snap)]).assert().code(3);
    assert!(e.state().collection_names().is_empty());
}

#[test]
fn hostile_manifest() {
    for (edit, needle) in [
        (
            Box::new(|m: &mut Value| {
                m["collections"][0]["parts"][0]["path"] = json!("../x.parquet")
            }) as Box<dyn Fn(&mut Value)>,
            "part path \"../x.parquet\" climbs out with `..`",
        ),
        (
            Box::new(|m: &mut Value| {
                m["collections"][0]["parts"][0]["path"] = json!("/etc/passwd")
            }),
            "/etc/passwd",
        ),
        (
            Box::new(|m: &mut Value| m["collections"][0]["record_count"] = json!(u64::MAX)),
            "manifest.json",
        ),
    ] {
        let (e, _tmp, snap) = damaged(|snap| rewrite_manifest(snap, edit));
        vecport()
            .args(["import", s(&snap), &url(&e, "docs")])
            .assert()
            .code(3)
            .stderr(
                predicate::str::contains("manifest.json").and(predicate::str::contains(needle)),
            );
        assert!(e.state().collection_names().is_empty());
    }
}
