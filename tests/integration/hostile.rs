//! Broken and hostile servers and directories, each as an attack found it:
//! a server echoing the token in some encoding, a source that pages in
//! circles or gives records twice, a directory holding files vecport did not
//! write, two runs at once, records a target refuses only after its
//! collection was created. Each test runs the `vecport` binary and checks its
//! message, its exit code and what was (not) written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use vecport::model::{Metric, Record, RecordId};

use crate::conformance::write_snapshot;
use crate::emulators::Faults;
use crate::emulators::qdrant::{self, QdrantOptions};
use crate::support::chroma::{Raw, host};
use crate::support::cli::{files_under, plain_records, vecport, vecport_process};
use crate::support::{data, server_url, unique_name};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Starts `app` on a free port of 127.0.0.1: its `HOST:PORT`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

/// `vecport ARGS` run to its end on a blocking thread: exit code, stdout, stderr.
async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = vecport_process();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

// ---- Hole 2: a server echoing the token in encodings ----

/// Every form the token was echoed in below, and its pieces that must not
/// be printed: the token itself, its first eight characters, and the
/// characters of its base64 forms that depend on it alone.
fn leaks(token: &str, text: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut needles = vec![
        token.to_owned(),
        token[..8].to_owned(),
        token[token.len() - 8..].to_owned(),
    ];
    for lead in 0..3usize {
        let mut bytes = vec![b'u'; lead];
        bytes.extend_from_slice(token.as_bytes());
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let e = engine.encode(&bytes);
            needles.push(e[[0, 2, 3][lead]..e.len() - 2].to_owned());
        }
    }
    needles.push(token.bytes().map(|b| format!("{b:02x}")).collect());
    needles
        .into_iter()
        .filter(|n| text.contains(n.as_str()))
        .collect()
}

/// A server answering every request 401 with `body`.
async fn refusing(body: String) -> String {
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move { (StatusCode::UNAUTHORIZED, body).into_response() }
    });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn token_echoed_escaped_or_encoded_never_printed() {
    let token = format!("Tk/9Secret+{:012x}", fastrand::u64(..) >> 16);
    let b64 = base64::engine::general_purpose::STANDARD;
    let escaped = serde_json::to_string(&token).unwrap().replace('/', "\\/");
    let forms = [
        escaped.trim_matches('"').to_owned(),
        token
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect(),
        // Percent-encoded with lower-case hex digits.
        token
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("%{:02x}", c as u32)
                }
            })
            .collect(),
        format!("Basic {}", b64.encode(format!("user:{token}"))),
        b64.encode(&token),
        token.replace('/', "&#47;").replace('+', "&#x2B;"),
        token.bytes().map(|b| format!("{b:02X}")).collect(),
    ];
    for form in forms {
        // Not JSON as the connector expects: the raw text goes into the message.
        let addr = refusing(format!(
            "<html>invalid token: {form} (expected another)</html>"
        ))
        .await;
        let (code, out, err) = run(
            args(&["ls", &format!("chroma://{addr}"), "-vv"]),
            vec![("CHROMA_TOKEN", token.clone())],
        )
        .await;
        assert_eq!(code, 5, "{err}");
        assert!(
            err.contains("refused the credentials") && err.contains("<redacted>"),
            "{form}: {err}"
        );
        let found = leaks(&token, &format!("{out}{err}"));
        assert!(found.is_empty(), "{form} leaked {found:?}:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_straddling_the_cut_of_an_error_is_not_half_printed() {
    let token = format!("Tk/9Secret+{:012x}", fastrand::u64(..) >> 16);
    for before in [490, 495, 497, 499] {
        for form in [token.clone(), token.replace('/', "\\/")] {
            let body = format!("{}{form}{}", "x".repeat(before), "y".repeat(700));
            let addr = refusing(body).await;
            let (code, _, err) = run(
                args(&["ls", &format!("chroma://{addr}")]),
                vec![("CHROMA_TOKEN", token.clone())],
            )
            .await;
            assert_eq!(code, 5, "{err}");
            assert!(err.contains("xxxxxxxx"), "{err}");
            for n in 4..token.len() {
                assert!(
                    !err.contains(&format!("x{}", &token[..n])),
                    "{n} characters of the token printed at {before}: {err}"
                );
            }
        }
    }
}

// ---- A fake Chroma for sources that misbehave ----

/// Pages a fake Chroma gives: `page(offset, limit, call)` → the ids.
type Pages = Arc<dyn Fn(usize, usize, usize) -> Vec<String> + Send + Sync>;

struct FakeChroma {
    addr: String,
    /// `/get` requests answered so far.
    gets: Arc<AtomicUsize>,
}

impl FakeChroma {
    fn url(&self) -> String {
        format!("chroma://{}/docs", self.addr)
    }
}

/// A Chroma with one collection `docs` (dimension 2) counting `count`
/// records, whose `/get` pages are `pages`; `before_get` runs before each
/// page is answered (with the number of the call).
async fn fake_chroma(
    count: u64,
    pages: Pages,
    before_get: Arc<dyn Fn(usize) -> Option<Arc<tokio::sync::Notify>> + Send + Sync>,
) -> FakeChroma {
    let gets = Arc::new(AtomicUsize::new(0));
    let counter = gets.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let (pages, before_get, counter) = (pages.clone(), before_get.clone(), counter.clone());
        async move {
            let path = uri.path().to_owned();
            let json = |v: Value| -> Response {
                ([("content-type", "application/json")], v.to_string()).into_response()
            };
            if path == "/api/v2/version" {
                return json(json!("1.5.9"));
            }
            if path == "/api/v2/pre-flight-checks" {
                return json(json!({"max_batch_size": 100}));
            }
            // `/api/v2/tenants/default%5Ftenant/databases/default%5Fdatabase/collections…`
            let Some((_, rest)) = path.split_once("/collections") else {
                return StatusCode::NOT_FOUND.into_response();
            };
            match (method, rest) {
                (Method::GET, "/docs") => json(json!({
                    "id": "c1", "name": "docs", "dimension": 2,
                    "configuration_json": {"hnsw": {"space": "l2"}}, "metadata": null,
                })),
                (Method::GET, "/c1/count") => json(json!(count)),
                (Method::POST, "/c1/get") => {
                    let call = counter.fetch_add(1, Ordering::SeqCst);
                    if let Some(gate) = before_get(call) {
                        gate.notified().await;
                    }
                    let req: Value = serde_json::from_slice(&body).unwrap();
                    let offset = req["offset"].as_u64().unwrap() as usize;
                    let limit = req["limit"].as_u64().unwrap() as usize;
                    let ids = pages(offset, limit, call);
                    let n = ids.len();
                    json(json!({
                        "ids": ids,
                        "embeddings": vec![[1.0, 2.0]; n],
                        "metadatas": vec![Value::Null; n],
                        "documents": vec![Value::Null; n],
                        "uris": vec![Value::Null; n],
                    }))
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    FakeChroma {
        addr: serve(app).await,
        gets,
    }
}

fn no_hook() -> Arc<dyn Fn(usize) -> Option<Arc<tokio::sync::Notify>> + Send + Sync> {
    Arc::new(|_| None)
}

/// `n` records' worth of a collection with ids `prefix0`, `prefix1`…
fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Asserts that an export into `out` failed (exit 4) with `message` and left nothing.
fn assert_refused_and_nothing_left(code: i32, err: &str, message: &str, out: &Path) {
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    assert!(err.contains("collection `docs`: "), "{err}");
    assert!(
        err.contains("nothing of this export was kept") && !err.contains("--resume"),
        "{err}"
    );
    assert!(!out.exists(), "left behind: {:?}", files_under(out));
}

// ---- Hole 3: sources that would make an export run forever ----

#[tokio::test(flavor = "multi_thread")]
async fn chroma_giving_the_same_page_at_every_offset_is_stopped() {
    let c = fake_chroma(10, Arc::new(|_, limit, _| ids("r", 0..limit)), no_hook()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = run(
        args(&[
            "export",
            &c.url(),
            s(&out),
            "--page-size",
            "5",
            "--part-rows",
            "5",
        ]),
        vec![],
    )
    .await;
    assert_refused_and_nothing_left(
        code,
        &err,
        "chroma gave record \"r0\" a second time, 6 records into the export",
        &out,
    );
    assert!(c.gets.load(Ordering::SeqCst) < 50, "it stopped at once");
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_giving_endless_new_records_is_stopped_past_its_count() {
    // Counts 3 records, then gives new ones for ever.
    let c = fake_chroma(
        3,
        Arc::new(|offset, limit, _| ids("n", offset..offset + limit)),
        no_hook(),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = run(
        args(&["export", &c.url(), s(&out), "--page-size", "5000"]),
        vec![],
    )
    .await;
    assert_refused_and_nothing_left(
        code,
        &err,
        "chroma gave more than 100006 records, having counted 3 before the export",
        &out,
    );
}

/// A proxy in front of a Qdrant emulator that answers every scroll with the
/// cursor it was asked from (after the first page): paging that never advances.
async fn repeating_qdrant(upstream: String) -> String {
    let http = reqwest::Client::new();
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            let url = format!("http://{upstream}{uri}");
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let resp = http
                .request(method, &url)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap();
            let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if uri.path().ends_with("/points/scroll") && !asked["offset"].is_null() {
                answer["result"]["next_page_offset"] = asked["offset"].clone();
            }
            (
                StatusCode::from_u16(status.as_u16()).unwrap(),
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
    });
    serve(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn qdrant_scroll_cursor_that_repeats_is_stopped() {
    let e = qdrant::start(QdrantOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    write_snapshot(
        &seed,
        &data::spec("docs", 4, Metric::Dot),
        plain_records(50, 4, 3),
    );
    let (code, _, err) = run(
        args(&[
            "import",
            s(&seed),
            &format!("qdrant://{}/docs", e.addr()),
            "-q",
        ]),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let proxy = repeating_qdrant(e.addr().to_string()).await;
    let out = tmp.path().join("out");
    let (code, _, err) = run(
        args(&[
            "export",
            &format!("qdrant://{proxy}/docs"),
            s(&out),
            "--page-size",
            "10",
        ]),
        vec![],
    )
    .await;
    assert_refused_and_nothing_left(
        code,
        &err,
        "read from that very cursor: paging does not advance",
        &out,
    );
    assert!(err.contains("qdrant gave the paging cursor"), "{err}");
}

// ---- Hole 4: duplicate ids across pages ----

#[tokio::test(flavor = "multi_thread")]
async fn chroma_giving_an_id_on_two_pages_is_refused_at_export() {
    // Pages [a0 a1 a2] [a3 a1 a4] [a5]: a1 twice, a snapshot no target could hold.
    let pages: Pages = Arc::new(|offset, _, _| match offset {
        0 => vec!["a0".into(), "a1".into(), "a2".into()],
        3 => vec!["a3".into(), "a1".into(), "a4".into()],
        6 => vec!["a5".into()],
        _ => Vec::new(),
    });
    let c = fake_chroma(7, pages, no_hook()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = run(
        args(&[
            "export",
            &c.url(),
            s(&out),
            "--page-size",
            "3",
            "--part-rows",
            "2",
        ]),
        vec![],
    )
    .await;
    assert_refused_and_nothing_left(
        code,
        &err,
        "chroma gave record \"a1\" a second time, 5 records into the export",
        &out,
    );
}

// ---- Hole 7: cleanup removes only what vecport wrote ----

#[tokio::test(flavor = "multi_thread")]
async fn resume_into_a_directory_of_foreign_temporary_files_touches_nothing() {
    let c = fake_chroma(
        2,
        Arc::new(|offset, _, _| if offset == 0 { ids("r", 0..2) } else { vec![] }),
        no_hook(),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("collections/docs")).unwrap();
    std::fs::create_dir_all(out.join("empty")).unwrap();
    std::fs::write(out.join("notes.tmp"), "mine").unwrap();
    std::fs::write(
        out.join("collections/docs/part-000000.parquet.tmp"),
        "mine too",
    )
    .unwrap();
    let sorted = |mut v: Vec<PathBuf>| {
        v.sort();
        v
    };
    let before = sorted(files_under(&out));
    let (code, _, err) = run(args(&["export", &c.url(), s(&out), "--resume"]), vec![]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not empty; export into a new directory"),
        "{err}"
    );
    assert_eq!(sorted(files_under(&out)), before);
    assert!(out.join("empty").is_dir());
    assert_eq!(
        std::fs::read_to_string(out.join("notes.tmp")).unwrap(),
        "mine"
    );
    assert!(!out.join(".vecport-state").exists());
    assert_eq!(c.gets.load(Ordering::SeqCst), 0, "nothing was read");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_dropped_into_the_output_during_a_failing_export_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let drop_at = out.clone();
    // The third page repeats an id; before answering it, someone drops files in.
    let pages: Pages = Arc::new(move |offset, limit, call| {
        if call == 2 {
            std::fs::write(drop_at.join("mine.txt"), "keep me").unwrap();
            std::fs::write(drop_at.join("collections/docs/notes.txt"), "me too").unwrap();
            return ids("r", 0..limit);
        }
        ids("r", offset..offset + limit)
    });
    let c = fake_chroma(100, pages, no_hook()).await;
    let (code, _, err) = run(
        args(&[
            "export",
            &c.url(),
            s(&out),
            "--page-size",
            "4",
            "--part-rows",
            "3",
            "--concurrency",
            "1",
        ]),
        vec![],
    )
    .await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("a second time"), "{err}");
    // Parts were completed, and removed; the files someone else put there stay.
    let mut left = files_under(&out);
    left.sort();
    assert_eq!(
        left,
        [out.join("collections/docs/notes.txt"), out.join("mine.txt")]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("mine.txt")).unwrap(),
        "keep me"
    );
}

// ---- Hole 8: two runs at once ----

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_exports_into_one_directory_one_goes_ahead() {
    // The first page waits until the test lets it go: the first export holds the lock.
    let gate = Arc::new(tokio::sync::Notify::new());
    let held = gate.clone();
    let c = fake_chroma(
        2,
        Arc::new(|offset, _, _| if offset == 0 { ids("r", 0..2) } else { vec![] }),
        Arc::new(move |call| (call == 0).then(|| held.clone())),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut first = vecport_process()
        .args(["export", &c.url(), s(&out), "-q"])
        .spawn()
        .unwrap();
    while c.gets.load(Ordering::SeqCst) == 0 {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first export ended early"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Three more, now and at once: each is refused, naming the first.
    let others: Vec<_> = (0..3)
        .map(|_| run(args(&["export", &c.url(), s(&out)]), vec![]))
        .collect();
    for (code, _, err) in futures::future::join_all(others).await {
        assert_eq!(code, 9, "{err}");
        assert!(
            err.contains(&format!(
                "an export into {} is already under way in another vecport run (process {} on ",
                out.display(),
                first.id()
            )) && err.contains("export chroma://"),
            "{err}"
        );
    }
    gate.notify_one();
    let status = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    vecport().args(["verify", s(&out)]).assert().success();
    assert!(!out.join(".vecport-state").exists(), "the lock is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_imports_of_one_snapshot_into_one_target_one_goes_ahead() {
    let e = qdrant::start(QdrantOptions {
        faults: Faults {
            delay: 1.0,
            delay_ms: 2000,
            path_prefix: Some("/collections/docs/points".into()),
            max_faults: Some(1),
            seed: Some(1),
            ..Faults::default()
        },
        ..QdrantOptions::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    write_snapshot(
        &snap,
        &data::spec("docs", 4, Metric::Dot),
        plain_records(20, 4, 3),
    );
    let target = format!("qdrant://{}/docs", e.addr());
    let mut first = vecport_process()
        .args(["import", s(&snap), &target, "-q"])
        .spawn()
        .unwrap();
    // Its first write is held up by the server: it is under way.
    while !e
        .faults()
        .served()
        .iter()
        .any(|r| r.path.starts_with("/collections/docs"))
    {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first import ended early"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (code, _, err) = run(args(&["import", s(&snap), &target]), vec![]).await;
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains(&format!(
            "an import of {} into http://{}",
            snap.display(),
            e.addr()
        )) && err.contains(&format!("(process {} on ", first.id())),
        "{err}"
    );
    assert!(
        !err.contains("progress") && !err.contains("No such file"),
        "{err}"
    );
    let status = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(e.state().points_count("docs"), Some(20));
    assert!(!snap.join(".vecport-state").exists());
}

// ---- Hole 9: records a target refuses, before anything is created ----

fn chroma_record(id: &str, keys: usize) -> Record {
    let mut r = Record::dense(RecordId::String(id.into()), vec![1.0, 2.0]);
    if keys > 0 {
        r.metadata = Some((0..keys).map(|i| (format!("k{i}"), json!(i))).collect());
    }
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_refusals_are_caught_before_the_collection_is_created() {
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let raw = Raw::new(&url);
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![chroma_record("a", 1), chroma_record("", 1)],
            "record \"\": has an empty id, which Chroma refuses",
        ),
        (
            vec![chroma_record("a", 1), chroma_record("wide", 200_000)],
            "record \"wide\": has 200000 metadata values, more than the 5461 Chroma can store for one record",
        ),
        (
            vec![chroma_record("edge", 5461), chroma_record("past", 5462)],
            "record \"past\": has 5462 metadata values",
        ),
    ];
    for (i, (records, message)) in cases.into_iter().enumerate() {
        let snap: PathBuf = tmp.path().join(format!("snap{i}"));
        write_snapshot(&snap, &data::spec("docs", 2, Metric::L2), records);
        let name = unique_name("hostile");
        let (code, _, err) = run(
            args(&[
                "import",
                s(&snap),
                &format!("chroma://{}/{name}", host(&url)),
            ]),
            vec![],
        )
        .await;
        assert_eq!(code, 7, "{err}");
        assert!(
            err.contains(message) && err.contains("nothing was written"),
            "{err}"
        );
        assert!(!err.contains("--batch-size"), "{err}");
        let listed = raw
            .call(reqwest::Method::GET, "/collections?limit=1000", None)
            .await;
        assert!(
            !listed
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == name.as_str()),
            "`{name}` was created"
        );
    }
}

#[test]
fn a_target_refusing_the_first_write_is_removed_again() {
    let e = qdrant::start_background(QdrantOptions::default()).unwrap();
    e.set_max_request_size(64 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("docs");
    let mut records = plain_records(300, 4, 1);
    for r in &mut records {
        r.document = Some("d".repeat(1000));
    }
    write_snapshot(&snap, &data::spec("docs", 4, Metric::Dot), records);
    let out = vecport()
        .args([
            "import",
            s(&snap),
            &format!("qdrant://{}/docs", e.addr()),
            "--concurrency",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("qdrant refused upsert points (HTTP 400)")
            && err.contains("nothing was written, and the collection `docs` this import created was removed again"),
        "{err}"
    );
    assert!(!err.contains("--resume"), "{err}");
    assert!(
        e.state().collection_names().is_empty(),
        "no empty collection is left"
    );
    assert!(!snap.join(".vecport-state").exists());
}

#[test]
fn a_weaviate_class_refusing_the_first_write_is_removed_again() {
    use crate::emulators::weaviate::{self, WeaviateOptions};
    let w = weaviate::start_background(WeaviateOptions::default()).unwrap();
    // A Weaviate class definition whose `n` is an int, and records whose `n`
    // is text: every check passes, Weaviate rejects every object.
    let mut spec = data::spec("strict", 2, Metric::Dot);
    spec.raw_config = json!({"class": {
        "class": "Strict", "vectorizer": "none", "vectorIndexConfig": {"distance": "dot"},
        "properties": [{"name": "n", "dataType": ["int"]}, {"name": "vecport_id", "dataType": ["text"]}]
    }});
    let records: Vec<Record> = (0..4)
        .map(|i| {
            let mut r = Record::dense(RecordId::String(format!("r-{i}")), vec![i as f32, 1.0]);
            r.metadata = Some(serde_json::from_value(json!({"n": "text"})).unwrap());
            r
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("strict");
    write_snapshot(&snap, &spec, records);
    let out = vecport()
        .args([
            "import",
            s(&snap),
            &format!("weaviate://{}/Fresh", w.addr()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("weaviate rejected 4 of 4 objects")
            && err.contains("nothing was written, and the collection `Fresh` this import created was removed again"),
        "{err}"
    );
    assert!(w.state().class_names().is_empty(), "no empty class is left");
    // A class that existed before is never removed.
    let existing = tmp.path().join("existing");
    write_snapshot(&existing, &spec, vec![]);
    vecport()
        .args([
            "import",
            s(&existing),
            &format!("weaviate://{}/Kept", w.addr()),
        ])
        .assert()
        .success();
    vecport()
        .args([
            "import",
            s(&snap),
            &format!("weaviate://{}/Kept", w.addr()),
            "--if-exists",
            "append",
        ])
        .assert()
        .code(7);
    assert_eq!(w.state().class_names(), ["Kept"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pgvector_table_refusing_the_first_write_is_removed_again() {
    let (Some(sql_url), Some(base)) = (server_url("DATABASE_URL"), crate::support::pgvector_url())
    else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&sql_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A column of a domain whose check is tightened after the export: the
    // restored table takes the domain, and PostgreSQL refuses the first row.
    let a = unique_name("discard").replace('-', "_");
    let domain = format!("{a}_small");
    client
        .batch_execute(&format!(
            "CREATE DOMAIN {domain} AS int CHECK (VALUE > 0);
             CREATE TABLE {a} (id bigint PRIMARY KEY, embedding vector(2), n {domain});
             INSERT INTO {a} SELECT g, '[1,2]', g FROM generate_series(1, 5) g;"
        ))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    vecport()
        .args(["export", &format!("{base}/{a}"), s(&snap), "-q"])
        .assert()
        .success();
    client
        .batch_execute(&format!(
            "ALTER DOMAIN {domain} ADD CONSTRAINT {domain}_big CHECK (VALUE > 1000) NOT VALID"
        ))
        .await
        .unwrap();
    let b = format!("{a}_copy");
    let (code, _, err) = run(args(&["import", s(&snap), &format!("{base}/{b}")]), vec![]).await;
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains(&format!("{domain}_big"))
            && err.contains(&format!("nothing was written, and the collection `{b}` this import created was removed again")),
        "{err}"
    );
    let left: i64 = client
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no empty table is left");
    // A table that existed before is never dropped.
    client
        .batch_execute(&format!("CREATE TABLE {b} (LIKE {a} INCLUDING ALL)"))
        .await
        .unwrap();
    let (code, _, err) = run(
        args(&[
            "import",
            s(&snap),
            &format!("{base}/{b}"),
            "--if-exists",
            "append",
        ]),
        vec![],
    )
    .await;
    assert_eq!(code, 7, "{err}");
    let left: i64 = client
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1, "the table that was there stays");
    client
        .batch_execute(&format!(
            "DROP TABLE {a}; DROP TABLE {b}; DROP DOMAIN {domain};"
        ))
        .await
        .unwrap();
}

#[test]
fn records_a_restored_pgvector_table_cannot_take_are_refused_before_it_is_made() {
    let Some(base) = crate::support::pgvector_url() else {
        return;
    };
    // The snapshot of a table whose `price numeric NOT NULL` column every
    // record needs, one record without it.
    let mut spec = data::spec("priced", 2, Metric::Cosine);
    let table = unique_name("priced").replace('-', "_");
    spec.raw_config = json!({
        "schema": "public", "table": "priced",
        "columns": [
            {"name": "id", "type": "text", "role": "id", "not_null": true},
            {"name": "embedding", "type": "vector(2)", "role": "vector", "not_null": false},
            {"name": "price", "type": "numeric", "role": "key", "not_null": true}
        ],
        "primary_key": ["id"], "indexes": [], "constraints": [], "comment": null
    });
    let records: Vec<Record> = (0..3)
        .map(|i| {
            let mut r = Record::dense(RecordId::String(format!("r-{i}")), vec![i as f32, 1.0]);
            if i != 1 {
                r.metadata = Some(serde_json::from_value(json!({"price": 1.25})).unwrap());
            }
            r
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("priced");
    write_snapshot(&snap, &spec, records);
    let out = vecport()
        .args(["import", s(&snap), &format!("{base}/{table}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("record \"r-1\": has no metadata key `price`, whose column the table is restored with as NOT NULL")
            && err.contains("nothing was written"),
        "{err}"
    );
    // No table was made: exporting it finds nothing (exit 6).
    let out = tmp.path().join("back");
    vecport()
        .args(["export", &format!("{base}/{table}"), s(&out)])
        .assert()
        .code(6);
}
