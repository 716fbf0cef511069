//! Faulty servers, through the `vecport` binary. With about one request in
//! ten failing — 429 with `Retry-After`, 503, a dropped connection, or a
//! slow answer — export and import of 50,000 records through each emulator
//! complete with exactly the records that went in, and the retries the CLI
//! reports are exactly the failures the emulator injected. Requests the
//! server refuses (401, 403, 400) are sent once and stop the run; slow
//! answers past `--timeout` are retried.

use std::path::Path;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use vecport::connectors::http::RetryPolicy;
use vecport::connectors::{self, ConnectOptions};
use vecport::model::Metric;
use vecport::pipeline::{self, ExportOptions, Quiet};

use crate::conformance::{read_snapshot, write_snapshot};
use crate::emulators::pinecone::{self, PineconeOptions};
use crate::emulators::qdrant::{self, QdrantOptions};
use crate::emulators::weaviate::{self, WeaviateOptions};
use crate::emulators::{FaultCounts, FaultInjector, Faults};
use crate::support::cli::{import_quietly, plain_records, sorted, vecport};
use crate::support::data;
use crate::support::pipeline::seed_from;

/// Records per fault run (the issue asks for at least 50,000).
const RECORDS: usize = 50_000;

/// About 10% of requests fail: 1% rate-limited (`Retry-After: 1`, which is
/// honoured: the share is small to keep the test short), 4% unavailable, 3%
/// dropped, 2% answered after 100 ms.
fn ten_percent(seed: u64) -> Faults {
    Faults {
        rate_limit: 0.01,
        retry_after_secs: 1,
        unavailable: 0.04,
        drop_connection: 0.03,
        delay: 0.02,
        delay_ms: 100,
        seed: Some(seed),
        ..Faults::none()
    }
}

/// Runs `vecport ARGS` against `faults` set to `config` (counters reset),
/// and returns the retries it reported and the faults injected meanwhile.
fn run_faulted(faults: &FaultInjector, config: Faults, args: &[&str]) -> (u64, FaultCounts) {
    faults.clear();
    faults.set(config).unwrap();
    let started = Instant::now();
    let out = vecport()
        .args(args)
        // Retry-After (1 s) is honoured up to this: waiting it out in full
        // is proven once, in bad_input::server_failures.
        .args(["--retry-wait", "0.01", "--retry-max-wait", "0.05"])
        .output()
        .unwrap();
    let counts = faults.counts();
    faults.clear();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`vecport {}` failed: {stderr}",
        args.join(" ")
    );
    let retried = reported_retries(&stderr);
    eprintln!(
        "`vecport {}`: {:.1}s, {} requests, injected {counts:?}, {retried} retried",
        args[0],
        started.elapsed().as_secs_f64(),
        counts.requests
    );
    (retried, counts)
}

/// The N of "vecport: N request(s) were retried", 0 when the line is absent.
fn reported_retries(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("vecport: ")?
                .strip_suffix(
                    " request(s) were retried (rate limits, server errors, dropped connections)",
                )?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Imports 50,000 records into `target` and exports them back from it, both
/// under `ten_percent` faults, with `sizes` (records per request) when given;
/// checks the content record by record and the retry counts against the faults.
fn round_trip_under_faults(
    faults: &FaultInjector,
    target: &str,
    dir: &Path,
    seed: u64,
    sizes: Option<&str>,
) {
    let records = plain_records(RECORDS, 8, seed);
    let a = dir.join("a");
    let b = dir.join("b");
    write_snapshot(&a, &data::spec("faulty", 8, Metric::Dot), records.clone());
    let mut total = FaultCounts::default();
    let mut import = vec!["import", a.to_str().unwrap(), target];
    let mut export = vec!["export", target, b.to_str().unwrap()];
    if let Some(n) = sizes {
        import.extend(["--batch-size", n]);
        export.extend(["--page-size", n]);
    }
    for (run, args) in [import, export].into_iter().enumerate() {
        let (retried, counts) = run_faulted(faults, ten_percent(seed * 10 + run as u64), &args);
        assert!(counts.requests > 0);
        assert!(
            counts.total() * 100 >= counts.requests * 5 || counts.requests < 100,
            "about one request in ten was faulted: {counts:?}"
        );
        assert_eq!(
            retried,
            counts.rate_limited + counts.unavailable + counts.dropped,
            "`{}`: every 429, 503 and dropped connection was retried once, and nothing else: {counts:?}",
            args[0]
        );
        total.requests += counts.requests;
        total.rate_limited += counts.rate_limited;
        total.unavailable += counts.unavailable;
        total.dropped += counts.dropped;
        total.delayed += counts.delayed;
    }
    assert!(
        total.rate_limited > 0 && total.unavailable > 0 && total.dropped > 0 && total.delayed > 0,
        "every kind of fault was injected: {total:?}"
    );
    let (_, exported) = read_snapshot(&b);
    assert_eq!(exported.len(), RECORDS);
    // A Pinecone index also has a sparse field, empty here.
    let exported: Vec<_> = exported
        .into_iter()
        .map(|mut r| {
            assert!(r.vectors[1..].iter().all(Option::is_none), "{r:?}");
            r.vectors.truncate(1);
            r
        })
        .collect();
    assert_eq!(
        data::first_difference(&sorted(records), &sorted(exported)),
        None
    );
}

#[test]
fn qdrant_export_and_import_of_50k_records_under_faults() {
    let e = qdrant::start_background(QdrantOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("qdrant://{}/faulty", e.addr());
    round_trip_under_faults(e.faults(), &target, tmp.path(), 11, Some("250"));
    assert_eq!(e.state().points_count("faulty"), Some(RECORDS));
}

#[test]
fn pinecone_document_index_export_and_import_of_50k_records_under_faults() {
    let e = pinecone::start_background(PineconeOptions {
        stats_lag_reads: 0,
        ..PineconeOptions::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("pinecone+http://{}/faulty-docs?kind=document", e.addr());
    round_trip_under_faults(e.faults(), &target, tmp.path(), 13, None);
    assert_eq!(
        e.state().document_count("faulty-docs", "__default__"),
        Some(RECORDS)
    );
}

#[test]
fn pinecone_export_and_import_of_50k_records_under_faults() {
    let e = pinecone::start_background(PineconeOptions {
        stats_lag_reads: 0,
        ..PineconeOptions::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("pinecone+http://{}/faulty", e.addr());
    round_trip_under_faults(e.faults(), &target, tmp.path(), 12, None);
    assert_eq!(e.state().record_count("faulty", ""), Some(RECORDS));
}

#[test]
fn weaviate_export_and_import_of_50k_records_under_faults() {
    let e = weaviate::start_background(WeaviateOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("weaviate://{}/Faulty", e.addr());
    round_trip_under_faults(e.faults(), &target, tmp.path(), 13, Some("250"));
    assert_eq!(e.state().object_count("Faulty", None), RECORDS);
}

/// Requests a server refuses are sent once: the refusal is the last request.
fn assert_refused_once(faults: &FaultInjector, status: u16) {
    let served = faults.served();
    let refused: Vec<_> = served.iter().filter(|r| r.status == status).collect();
    assert_eq!(refused.len(), 1, "one refused request: {served:?}");
    assert_eq!(
        served.last(),
        Some(refused[0]),
        "nothing after it: {served:?}"
    );
}

#[test]
fn refused_credentials_are_not_retried() {
    let key = Some("the-key".to_owned());
    let q = qdrant::start_background(QdrantOptions {
        api_key: key.clone(),
        ..QdrantOptions::default()
    })
    .unwrap();
    let p = pinecone::start_background(PineconeOptions {
        api_key: key.clone(),
        ..PineconeOptions::default()
    })
    .unwrap();
    let w = weaviate::start_background(WeaviateOptions {
        api_key: key,
        ..WeaviateOptions::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (faults, var, url) in [
        (
            q.faults(),
            "QDRANT_API_KEY",
            format!("qdrant://{}/c", q.addr()),
        ),
        (
            p.faults(),
            "PINECONE_API_KEY",
            format!("pinecone+http://{}/c", p.addr()),
        ),
        (
            w.faults(),
            "WEAVIATE_API_KEY",
            format!("weaviate://{}/C", w.addr()),
        ),
    ] {
        faults.clear();
        vecport()
            .env(var, "not-the-key")
            .args(["export", &url, out.to_str().unwrap()])
            .assert()
            .code(5)
            .stderr(
                predicate::str::contains("refused the credentials (HTTP 401")
                    .and(predicate::str::contains(format!(
                        "check the API key in {var}"
                    )))
                    .and(predicate::str::contains("retried").not()),
            );
        assert_refused_once(faults, 401);
        assert!(!out.exists());
    }
}

#[test]
fn slow_answers_time_out_and_are_retried() {
    let e = qdrant::start_background(QdrantOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let records = plain_records(500, 4, 3);
    write_snapshot(&a, &data::spec("slow", 4, Metric::Dot), records.clone());
    let target = format!("qdrant://{}/slow", e.addr());
    import_quietly(&a, &target);
    // The first two requests answer after 3 s; the client waits 0.5 s.
    let started = Instant::now();
    let b = tmp.path().join("b");
    let (retried, counts) = run_faulted(
        e.faults(),
        Faults::always_delayed(3000).at_most(2),
        &["export", &target, b.to_str().unwrap(), "--timeout", "0.5"],
    );
    assert_eq!(counts.delayed, 2);
    assert_eq!(retried, 2, "each timed-out request was retried");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "nothing waited for the slow answers"
    );
    let (_, exported) = read_snapshot(&b);
    assert_eq!(
        data::first_difference(&sorted(records), &sorted(exported)),
        None
    );
}

/// Options for an in-process transfer: `retries` retries, quick backoff.
fn quick_retries(retries: u32) -> ConnectOptions {
    ConnectOptions {
        retry: RetryPolicy {
            max_retries: retries,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..ConnectOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_transfers_in_one_process_keep_their_own_retry_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    let records = plain_records(300, 4, 21);
    write_snapshot(&seed, &data::spec("docs", 4, Metric::Dot), records.clone());
    let patient_server = qdrant::start(QdrantOptions::default()).await.unwrap();
    let hasty_server = qdrant::start(QdrantOptions::default()).await.unwrap();
    for e in [&patient_server, &hasty_server] {
        let url = format!("qdrant://{}/docs", e.addr());
        let sink = connectors::open(&url, &ConnectOptions::default()).unwrap();
        seed_from(&seed, sink.as_ref(), &url).await;
        // The next three requests fail with 503.
        e.faults()
            .set(Faults::always_unavailable().at_most(3))
            .unwrap();
    }
    let patient = quick_retries(5);
    let hasty = quick_retries(1);
    let patient_source = connectors::open(
        &format!("qdrant://{}/docs", patient_server.addr()),
        &patient,
    )
    .unwrap();
    let hasty_source =
        connectors::open(&format!("qdrant://{}/docs", hasty_server.addr()), &hasty).unwrap();
    let (a, b) = (tmp.path().join("patient"), tmp.path().join("hasty"));
    let options = ExportOptions::default();
    let (patient_run, hasty_run) = tokio::join!(
        pipeline::export(patient_source.as_ref(), &a, &options, &Quiet),
        pipeline::export(hasty_source.as_ref(), &b, &options, &Quiet),
    );
    patient_run.expect("five retries outlast three failures");
    let err = hasty_run.expect_err("one retry does not").to_string();
    assert!(err.contains("still failing after 1 retries"), "{err}");
    assert_eq!(patient.retried.get(), 3, "each failure retried once");
    assert_eq!(hasty.retried.get(), 1);
    let (_, exported) = read_snapshot(&a);
    assert_eq!(
        data::first_difference(&sorted(records), &sorted(exported)),
        None
    );
}

#[test]
fn weaviate_batch_objects_that_time_out_inside_the_server_are_sent_again() {
    let e = weaviate::start_background(WeaviateOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let records = plain_records(300, 4, 22);
    write_snapshot(&a, &data::spec("slow", 4, Metric::Dot), records.clone());
    // 130 objects of the first batches are answered 200 with
    // "context deadline exceeded" and not written.
    e.state().time_out_batch_objects(130);
    let target = format!("weaviate://{}/Slow", e.addr());
    let out = vecport()
        .args([
            "import",
            a.to_str().unwrap(),
            &target,
            "--batch-size",
            "100",
        ])
        .args(["--retry-wait", "0.01", "--retry-max-wait", "0.05"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        reported_retries(&stderr),
        2,
        "the two batches with timed-out objects were sent again: {stderr}"
    );
    assert_eq!(e.state().object_count("Slow", None), 300);
    let b = tmp.path().join("b");
    crate::support::cli::export_quietly(&target, &b);
    let (_, exported) = read_snapshot(&b);
    assert_eq!(
        data::first_difference(&sorted(records), &sorted(exported)),
        None
    );
}
