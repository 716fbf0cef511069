//! `vecport compare`: snapshots and databases, record by record.

use predicates::prelude::*;
use serde_json::{Value, json};
use vecport::compare::{self, CompareOptions, Side};
use vecport::model::{Metric, Vector};

use crate::conformance::write_snapshot;
use crate::support::cli::{import_quietly, vecport};
use crate::support::data::{self, FULL};

#[test]
fn equal_snapshots_compare_equal_and_every_kind_of_difference_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let spec = data::spec("docs", 8, Metric::L2);
    let records = data::records(1000, 8, 9, FULL);
    write_snapshot(&a, &spec, records.clone());
    vecport()
        .args(["compare", a.to_str().unwrap(), a.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("compared 1000: 0 missing in B, 0 extra in B, 0 differing")
                .and(predicate::str::contains("result: equal")),
        );

    // B: two records gone, one new, one vector component, one metadata value
    // and one document changed.
    let mut changed = records.clone();
    let gone: Vec<String> = changed.drain(100..102).map(|r| r.id.to_string()).collect();
    let mut new = changed[0].clone();
    new.id = vecport::model::RecordId::String("brand-new".into());
    changed.push(new);
    if let Some(Vector::Dense(v)) = &mut changed[200].vectors[0] {
        v[3] += 0.5;
    }
    changed[300].metadata = Some(serde_json::from_value(json!({"only": "this"})).unwrap());
    changed[400].document = Some("edited".into());
    let (vec_id, meta_id, doc_id) = (
        changed[200].id.to_string(),
        changed[300].id.to_string(),
        changed[400].id.to_string(),
    );
    write_snapshot(&b, &spec, changed);
    let output = vecport()
        .args([
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let result: Value = serde_json::from_slice(&output).unwrap();
    let c = &result["collections"][0];
    assert_eq!(result["equal"], false);
    assert_eq!(c["missing"]["count"], 2);
    let mut missing: Vec<String> = serde_json::from_value(c["missing"]["ids"].clone()).unwrap();
    missing.sort();
    let mut gone = gone;
    gone.sort();
    assert_eq!(missing, gone);
    assert_eq!(c["extra"]["ids"], json!(["brand-new"]));
    assert_eq!(c["differing"]["count"], 3);
    let by_id: std::collections::BTreeMap<String, String> = c["differing"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["what"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        by_id[&vec_id].starts_with("vector \"\": max |Δ| 5e-1"),
        "{by_id:?}"
    );
    assert!(by_id[&meta_id].starts_with("metadata: "), "{by_id:?}");
    assert_eq!(by_id[&doc_id], "document");
    // A tolerance covers the vector change, not the others.
    vecport()
        .args([
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--tolerance",
            "0.6",
        ])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("2 differing").and(predicate::str::contains("within 0.6")),
        );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_partitions_and_samples_give_the_same_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let spec = data::spec("docs", 4, Metric::Dot);
    let records = data::records(2000, 4, 2, FULL);
    write_snapshot(&a, &spec, records.clone());
    let mut changed = records;
    changed.remove(1500);
    write_snapshot(&b, &spec, changed);
    let (sa, sb) = (
        Side::open(a.to_str().unwrap(), &Default::default()).unwrap(),
        Side::open(b.to_str().unwrap(), &Default::default()).unwrap(),
    );
    let options = CompareOptions {
        partition_records: 97,
        work_dir: tmp.path().to_owned(),
        ..CompareOptions::default()
    };
    let all = compare::compare(&sa, &sb, &options).await.unwrap();
    let c = &all.collections[0];
    assert_eq!(
        (
            c.compared,
            c.missing.count,
            c.extra.count,
            c.differing.count
        ),
        (2000, 1, 0, 0)
    );
    assert_eq!(c.counts.a[&None], 2000);
    assert_eq!(c.counts.b[&None], 1999);
    let sampled = compare::compare(
        &sa,
        &sb,
        &CompareOptions {
            sample: Some(200),
            ..options
        },
    )
    .await
    .unwrap();
    let s = &sampled.collections[0];
    assert!((100..=300).contains(&s.compared), "{} compared", s.compared);
    assert_eq!(s.counts.a[&None], 2000, "counts cover every record");
    let leftovers = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".vecport-compare")
        })
        .count();
    assert_eq!(leftovers, 0, "partitions are removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_compares_with_its_snapshot_stating_why_vectors_moved() {
    use crate::emulators::qdrant::{QdrantOptions, start};
    let e = start(QdrantOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    // Cosine: Qdrant stores unit-length vectors. (Components of 1e30 would
    // overflow its f32 normalisation: compare reports those as differing.)
    let records: Vec<_> = data::records(300, 8, 4, FULL)
        .into_iter()
        .map(|mut r| {
            if let Some(Vector::Dense(v)) = &mut r.vectors[0] {
                v.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
            }
            r
        })
        .collect();
    write_snapshot(&snap, &data::spec("docs", 8, Metric::Cosine), records);
    let url = format!("qdrant://{}/docs", e.addr());
    import_quietly(&snap, &url);
    vecport()
        .args(["compare", snap.to_str().unwrap(), &url, "--float-ulps", "2"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("B stores unit-length vectors (cosine normalisation)")
                .and(predicate::str::contains(
                    "compared 300: 0 missing in B, 0 extra in B, 0 differing",
                ))
                .and(predicate::str::contains("result: equal")),
        );
}

#[test]
fn a_different_metric_is_a_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let records = data::records(50, 4, 1, FULL);
    write_snapshot(&a, &data::spec("docs", 4, Metric::Cosine), records.clone());
    write_snapshot(&b, &data::spec("docs", 4, Metric::L2), records);
    vecport()
        .args(["compare", a.to_str().unwrap(), b.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("setting differs: vector \"\": metric cosine in A, l2 in B")
                .and(predicate::str::contains("0 differing"))
                .and(predicate::str::contains("result: DIFFERENT")),
        );
}

/// Records of `n` random unit-range vectors (no ties, no extremes).
fn plain_records(n: usize, dim: usize, seed: u64) -> Vec<vecport::model::Record> {
    let mut rng = fastrand::Rng::with_seed(seed);
    data::records(n, dim, seed, data::WEAVIATE)
        .into_iter()
        .map(|mut r| {
            r.vectors[0] = Some(Vector::Dense(
                (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect(),
            ));
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_parity_against_exact_neighbours_of_a_snapshot() {
    use crate::emulators::qdrant::{QdrantOptions, start};
    let e = start(QdrantOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    write_snapshot(
        &snap,
        &data::spec("docs", 12, Metric::L2),
        plain_records(800, 12, 6),
    );
    let url = format!("qdrant://{}/docs", e.addr());
    import_quietly(&snap, &url);
    // The emulator searches by brute force: its neighbours are the exact ones.
    let output = vecport()
        .args([
            "compare",
            snap.to_str().unwrap(),
            &url,
            "--queries",
            "25",
            "--k",
            "10",
            "--min-recall",
            "1.0",
            "--float-ulps",
            "2",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let result: Value = serde_json::from_slice(&output).unwrap();
    let p = &result["collections"][0]["search"];
    assert_eq!(p["queries"], 25);
    assert_eq!(p["b_vs_exact"], 1.0, "{p}");
    assert_eq!(p["b_vs_a"], Value::Null, "a snapshot has no search");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_parity_after_a_chroma_to_chroma_migration() {
    let Some(chroma_url) = crate::support::server_url("CHROMA_URL") else {
        return;
    };
    let host = crate::support::chroma::host(&chroma_url);
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s");
    let (source, target) = (
        crate::support::unique_name("parity-src"),
        crate::support::unique_name("parity-dst"),
    );
    write_snapshot(
        &snap,
        &data::spec(&source, 32, Metric::L2),
        plain_records(3000, 32, 8),
    );
    import_quietly(&snap, &format!("chroma://{host}"));
    vecport()
        .current_dir(tmp.path())
        .args([
            "migrate",
            &format!("chroma://{host}/{source}"),
            &format!("chroma://{host}/{target}"),
            "-q",
        ])
        .assert()
        .success();
    let output = vecport()
        .current_dir(tmp.path())
        .args([
            "compare",
            &format!("chroma://{host}/{source}"),
            &format!("chroma://{host}/{target}"),
            "--queries",
            "50",
            "--min-recall",
            "0.99",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let result: Value = serde_json::from_slice(&output).unwrap();
    let c = &result["collections"][0];
    assert_eq!(c["differing"]["count"], 0);
    let p = &c["search"];
    assert!(p["b_vs_a"].as_f64().unwrap() >= 0.99, "{p}");
    assert!(
        p["a_vs_exact"].as_f64().is_some() && p["b_vs_exact"].as_f64().is_some(),
        "{p}"
    );
}
