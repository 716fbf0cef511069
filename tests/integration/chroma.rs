//! End to end against a real Chroma server (`CHROMA_URL`), through the CLI.
//! Data goes in and comes out through raw HTTP requests (the test support's
//! [`Raw`]), so vecport's own connector is checked by an independent reader
//! and writer.

use serde_json::{Value, json};
use vecport::model::Vector;

use crate::support::chroma::{Raw, host};
use crate::support::cli::{export_quietly, import_quietly, vecport};
use crate::support::data::{self, FLAT};
use crate::support::{server_url, unique_name};

/// Seeds a collection, exports it, verifies the snapshot, imports it under a
/// new name and compares source, snapshot and target record by record.
async fn export_verify_import(space: &str, n: usize, tolerance: f32) {
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let raw = Raw::new(&url);
    let source = unique_name(&format!("e2e-{space}"));
    let target = unique_name(&format!("e2e-{space}-copy"));
    let collection_metadata = json!({"owner": "team-a", "n": 3, "f": 1.5, "flag": true});
    let id = raw
        .create(&source, space, collection_metadata.clone())
        .await;
    let mut records = data::records(n, 384, 42, FLAT);
    if space == "cosine" {
        // Chroma's re-rounding error grows with the vector's magnitude; keep values in [-1, 1].
        let mut rng = fastrand::Rng::with_seed(9);
        for r in &mut records {
            r.vectors[0] = Some(Vector::Dense(
                (0..384).map(|_| rng.f32() * 2.0 - 1.0).collect(),
            ));
        }
    }
    raw.upsert(&id, &records).await;
    let seeded = raw.read_all(&id).await;
    assert_eq!(seeded.len(), n);

    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    export_quietly(&format!("chroma://{}/{source}", host(&url)), &snap);
    vecport()
        .args(["verify", snap.to_str().unwrap()])
        .assert()
        .success();

    // The snapshot holds exactly what Chroma returns (bit-exact: Chroma re-rounds on write, not on read).
    let (snapshot, mut exported) = crate::conformance::read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, n as u64);
    assert!(c.has_documents && c.has_uris);
    let v = &c.vectors[0].field;
    assert_eq!(v.dimension, Some(384));
    let ix = v.index.as_ref().unwrap();
    assert_eq!(
        (ix.m, ix.ef_construction, ix.ef_search),
        (Some(24), Some(123), Some(77))
    );
    assert_eq!(
        c.collection_metadata.clone().map(Value::Object),
        Some(collection_metadata.clone())
    );
    if space == "cosine" {
        assert_eq!(v.stored_values, vecport::model::StoredValues::Rerounded);
        assert!(
            c.notes.iter().any(|n| n.contains("re-rounds")),
            "{:?}",
            c.notes
        );
    } else {
        assert_eq!(v.stored_values, vecport::model::StoredValues::Exact);
    }
    let mut seeded_sorted = seeded.clone();
    seeded_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    exported.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(data::first_difference(&seeded_sorted, &exported), None);
    // Chroma stores what was written (vectors bit for bit in l2 and ip; metadata
    // floats up to 1 ulp off, as its JSON parser rounds them).
    records.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        data::first_difference_within(&records, &exported, tolerance, 1),
        None
    );

    import_quietly(&snap, &format!("chroma://{}/{target}", host(&url)));
    let target_json = raw.collection(&target).await;
    let source_json = raw.collection(&source).await;
    assert_eq!(
        target_json["configuration_json"]["hnsw"], source_json["configuration_json"]["hnsw"],
        "HNSW settings equal"
    );
    assert_eq!(
        target_json["metadata"], source_json["metadata"],
        "collection metadata equal"
    );
    assert_eq!(target_json["dimension"], json!(384));
    let mut imported = raw.read_all(target_json["id"].as_str().unwrap()).await;
    imported.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(imported.len(), n);
    for (e, x) in seeded_sorted.iter().zip(&imported) {
        // Values Chroma itself returned are stable when written back: metadata exact.
        if let Some(d) = data::record_difference(e, x, tolerance, 0) {
            panic!("record {}: {d}", e.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn l2_round_trip_is_bit_exact() {
    export_verify_import("l2", 20_000, 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_round_trip_is_bit_exact() {
    export_verify_import("ip", 3_000, 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cosine_round_trip_within_chroma_rounding() {
    export_verify_import("cosine", 3_000, 2.4e-7).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_lists_dimension_metric_and_count() {
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let raw = Raw::new(&url);
    let name = unique_name("ls");
    let id = raw.create(&name, "ip", Value::Null).await;
    raw.upsert(&id, &data::records(7, 5, 1, FLAT)).await;
    let out = vecport()
        .args(["ls", &format!("chroma://{}", host(&url)), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["name"] == json!(name))
        .expect("collection listed");
    assert_eq!(
        line,
        json!({"name": name, "dimension": 5, "metric": "dot", "count": 7})
    );
}
