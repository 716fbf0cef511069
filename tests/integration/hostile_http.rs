//! HTTP servers that misbehave on purpose, through the `vecport` binary:
//! one that redirects (credentials and bodies must never follow), one whose
//! answer never ends, one that trickles its answer, and a Weaviate behind a
//! wrong proxy path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use vecport::model::Metric;

use crate::conformance::write_snapshot;
use crate::emulators::pinecone::{self, PineconeOptions};
use crate::emulators::qdrant::{self, QdrantOptions};
use crate::emulators::weaviate::{self, WeaviateOptions};
use crate::support::cli::{plain_records, vecport};
use crate::support::data;

/// What reached the second server: one line per request, with its headers
/// and body.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server on a local port that notes every request it gets and answers
/// `200 {}`: where the redirects point.
async fn second_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State(seen): State<Seen>, method: Method, headers: HeaderMap, body: Bytes| async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{method} {headers:?} body of {} bytes", body.len()));
                (StatusCode::OK, "{}")
            },
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, seen)
}

/// What the first server redirects.
#[derive(Clone, Copy, PartialEq)]
enum Redirect {
    /// Every request.
    All,
    /// Requests that carry a body (creating, writing); the others go to
    /// the real server behind it.
    Writes,
}

#[derive(Clone)]
struct Front {
    backend: String,
    elsewhere: String,
    redirect: Redirect,
    http: reqwest::Client,
}

/// A server on a local port in front of `backend`: it answers what
/// `redirect` names with `307` to the same path on `elsewhere`, and passes
/// everything else on.
async fn redirecting_front(backend: &str, elsewhere: &str, redirect: Redirect) -> String {
    let front = Front {
        backend: backend.trim_end_matches('/').to_owned(),
        elsewhere: elsewhere.to_owned(),
        redirect,
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .fallback(|State(front): State<Front>, request: Request| async move {
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let method = request.method().clone();
            if front.redirect == Redirect::All || method != Method::GET {
                return Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header("location", format!("{}{path}", front.elsewhere))
                    .body(Body::empty())
                    .unwrap();
            }
            let mut forward = front
                .http
                .request(method, format!("{}{path}", front.backend));
            for (name, value) in request.headers() {
                if name != "host" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let status = answer.status();
            let body = answer.bytes().await.unwrap();
            (
                status,
                [("content-type", "application/json")],
                body.to_vec(),
            )
                .into_response()
        })
        .with_state(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Runs `vecport ARGS` with `KEY` in every credential variable, off the
/// async runtime; returns (exit code, stderr).
async fn run(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = vecport();
        for var in crate::support::cli::credential_vars() {
            cmd.env(var, "Tk9SecretValue");
        }
        let out = cmd.args(&args).args(["--retries", "1"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_bodies_never_follow_a_redirect() {
    let key = "Tk9SecretValue".to_owned();
    let q = qdrant::start(QdrantOptions {
        api_key: Some(key.clone()),
        ..QdrantOptions::default()
    })
    .await
    .unwrap();
    let p = pinecone::start(PineconeOptions {
        api_key: Some(key.clone()),
        ..PineconeOptions::default()
    })
    .await
    .unwrap();
    let w = weaviate::start(WeaviateOptions {
        api_key: Some(key.clone()),
        ..WeaviateOptions::default()
    })
    .await
    .unwrap();
    // (scheme, backend, collection in the URL)
    let mut backends = vec![
        ("qdrant", q.base_url().to_owned(), "docs"),
        ("pinecone+http", p.base_url().to_owned(), "docs"),
        ("weaviate", w.base_url().to_owned(), "Docs"),
    ];
    match crate::support::server_url("CHROMA_URL") {
        Some(chroma) => backends.push(("chroma", chroma, "redirected-docs")),
        None => eprintln!("chroma left out: CHROMA_URL is not set"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = tmp.path().join("snap");
    write_snapshot(
        &snapshot,
        &data::spec("docs", 4, Metric::Cosine),
        plain_records(20, 4, 1),
    );
    for (scheme, backend, collection) in backends {
        for redirect in [Redirect::All, Redirect::Writes] {
            let (elsewhere, seen) = second_server().await;
            let front = redirecting_front(&backend, &elsewhere, redirect).await;
            let url = format!(
                "{scheme}://{front}/{}",
                crate::support::unique_name(collection)
            );
            let args: Vec<String> = match redirect {
                Redirect::All => vec!["ls".into(), format!("{scheme}://{front}")],
                Redirect::Writes => vec![
                    "import".into(),
                    snapshot.display().to_string(),
                    url.clone(),
                    "-q".into(),
                ],
            };
            let (code, stderr) = run(args.clone()).await;
            assert_eq!(code, Some(4), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "a redirect to {elsewhere}, which vecport does not follow"
                )),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains(&key), "{stderr}");
            let seen = seen.lock().unwrap();
            assert!(
                seen.is_empty(),
                "{args:?}: requests reached the origin redirected to: {seen:?}"
            );
        }
    }
}

/// A server whose every answer is `200`, a JSON start and then `chunk`
/// bytes every `pause`, without end (until the client goes away).
async fn endless_server(chunk: usize, pause: Duration) -> String {
    let app = axum::Router::new().fallback(move || async move {
        let stream = futures::stream::unfold(true, move |first| async move {
            if !first {
                tokio::time::sleep(pause).await;
            }
            let bytes = if first {
                Bytes::from_static(b"{\"padding\":\"")
            } else {
                Bytes::from(vec![b'x'; chunk])
            };
            Some((Ok::<_, std::io::Error>(bytes), false))
        });
        (
            [("content-type", "application/json")],
            Body::from_stream(stream),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_answer_stops_at_the_response_limit() {
    let addr = endless_server(1 << 20, Duration::ZERO).await;
    for scheme in ["qdrant", "chroma", "weaviate", "pinecone+http"] {
        let (code, stderr) = run(vec![
            "ls".into(),
            format!("{scheme}://{addr}/x"),
            "--max-response-mib".into(),
            "4".into(),
        ])
        .await;
        assert_eq!(code, Some(4), "{scheme}: {stderr}");
        assert!(
            stderr.contains("longer than 4 MiB") && stderr.contains("--max-response-mib"),
            "{scheme}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_answer_is_bounded_by_the_timeout() {
    // A byte every 100 ms: never idle long, never done.
    let addr = endless_server(1, Duration::from_millis(100)).await;
    let (code, stderr) = run(vec![
        "ls".into(),
        format!("qdrant://{addr}"),
        "--timeout".into(),
        "1".into(),
        "--retry-max-wait".into(),
        "0.1".into(),
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("no complete answer within 1s") && stderr.contains("after 1 retries"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_answer_retried_is_bounded_by_the_total_timeout() {
    // Each try ends at --timeout; a hundred retries allowed, but the whole
    // request may take --total-timeout only.
    let addr = endless_server(1, Duration::from_millis(100)).await;
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        let out = vecport()
            .args(["ls", &format!("qdrant://{addr}")])
            .args(["--timeout", "1", "--retries", "100", "--retry-wait", "0.05"])
            .args(["--retry-max-wait", "0.1", "--total-timeout", "2.5"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("--total-timeout"), "{stderr}");
    let tries: u32 = stderr
        .split("(after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no try count in: {stderr}"));
    assert!((2..=4).contains(&tries), "{tries} tries: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn weaviate_behind_a_wrong_path_is_an_error_not_an_empty_snapshot() {
    // Everything under /v1/ answers 404, as a proxy in front of another path does.
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html>404 page not found</html>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("snap");
    let (code, stderr) = run(vec![
        "export".into(),
        format!("weaviate://{addr}"),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(
        !out.join("manifest.json").exists(),
        "an export that found nothing must not leave a snapshot"
    );
    // And a server whose schema lacks `classes` (a renamed field).
    let app = axum::Router::new()
        .route(
            "/v1/meta",
            axum::routing::get(|| async { r#"{"version":"1.30.0"}"# }),
        )
        .fallback(|| async { ([("content-type", "application/json")], r#"{"klasses":[]}"#) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (code, stderr) = run(vec!["ls".into(), format!("weaviate://{addr}")]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("missing field `classes`"), "{stderr}");
}
