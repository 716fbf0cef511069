//! Secrets never leak. A distinctive key is set in every connector's
//! environment variable and the emulators require it; export, import,
//! migrate, compare and ls run with `-vv` (and once with every log on),
//! against servers that work, refuse the key, fail, drop connections, or
//! echo the request's headers back in their errors. The key — as it is,
//! percent-encoded or in base64 — must appear in no output: not on stdout or
//! stderr, not in any file under the directories the runs wrote to
//! (snapshots, change reports, whatever else a command keeps there), not in
//! any record of the snapshots. URLs with credentials are not echoed either.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde_json::json;
use vecport::model::Metric;
use vecport::snapshot::Snapshot;

use crate::conformance::write_snapshot;
use crate::emulators::Faults;
use crate::emulators::pinecone::{self, PineconeOptions};
use crate::emulators::qdrant::{self, QdrantOptions};
use crate::emulators::weaviate::{self, WeaviateOptions};
use crate::support::cli::{credential_vars, files_under, plain_records, vecport};
use crate::support::{data, pgvector_url, server_url, unique_name};

/// What the runs wrote: the directory every file went to, and every
/// command's output.
struct Runs {
    dir: PathBuf,
    key: String,
    outputs: Vec<(String, Vec<u8>)>,
}

impl Runs {
    fn new(dir: &Path, key: &str) -> Runs {
        Runs {
            dir: dir.to_owned(),
            key: key.to_owned(),
            outputs: Vec::new(),
        }
    }

    /// `vecport ARGS` with the key in every credential variable, run in the
    /// work directory with its home and state directories there too; the
    /// exit code must be one of `codes`.
    fn run(&mut self, args: &[&str], codes: &[i32]) {
        self.run_with(vecport(), args, codes);
    }

    fn run_with(&mut self, mut cmd: Command, args: &[&str], codes: &[i32]) {
        for var in credential_vars() {
            cmd.env(var, &self.key);
        }
        let home = self.dir.join("home");
        let out = cmd
            .current_dir(&self.dir)
            .env("HOME", &home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("TMPDIR", self.dir.join("tmp"))
            .args(args)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let label = args.join(" ");
        assert!(
            codes.contains(&code),
            "`vecport {label}` exited {code}, expected one of {codes:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.outputs
            .push((format!("stdout of `{label}`"), out.stdout));
        self.outputs
            .push((format!("stderr of `{label}`"), out.stderr));
    }
}

/// The key in every form it could take in text: as it is, percent-encoded
/// (two usual sets), and base64 at each of the three byte alignments
/// (standard and URL-safe), cut to the characters that depend on the key only.
fn forms(key: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut out = vec![
        key.to_owned(),
        utf8_percent_encode(key, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(key, UNRESERVED).to_string(),
    ];
    for skip in 0..3usize {
        let mut bytes = vec![0u8; skip];
        bytes.extend_from_slice(key.as_bytes());
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            let lead = [0, 2, 3][skip];
            out.push(encoded[lead..encoded.len() - 2].to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn find(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Fails naming every place a form of the key was found.
fn assert_no_key(runs: &Runs, snapshots_expected: usize) {
    let forms = forms(&runs.key);
    let mut found = Vec::new();
    for (label, bytes) in &runs.outputs {
        for f in &forms {
            if find(bytes, f) {
                found.push(format!("{label} holds {f:?}"));
            }
        }
    }
    let files = files_under(&runs.dir);
    assert!(!files.is_empty());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for f in &forms {
            if find(&bytes, f) {
                found.push(format!("{} holds {f:?}", file.display()));
            }
        }
    }
    // Parquet pages may be compressed: read every record of every snapshot.
    let mut snapshots = 0;
    for manifest in files.iter().filter(|f| f.ends_with("manifest.json")) {
        let root = manifest.parent().unwrap();
        let snapshot = Snapshot::open(root).unwrap();
        snapshots += 1;
        for c in &snapshot.manifest().collections {
            for batch in snapshot.records(c, 1000) {
                for r in batch.unwrap() {
                    let text = format!("{r:?}");
                    for f in &forms {
                        if text.contains(f.as_str()) {
                            found.push(format!("a record of {} holds {f:?}", root.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        snapshots >= snapshots_expected,
        "{snapshots} snapshots read, {snapshots_expected} written"
    );
    assert!(found.is_empty(), "the key leaked:\n{}", found.join("\n"));
}

/// A server that answers every request with `status` and a body that echoes
/// the credential headers it got, as they are, in base64 and percent-encoded.
async fn echo_server(status: StatusCode) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move |headers: HeaderMap| async move {
        let mut body = String::new();
        for name in ["api-key", "authorization", "x-chroma-token"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                let b64 = base64::engine::general_purpose::STANDARD.encode(v);
                let pct =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
                body.push_str(&format!("bad {name} {v} ({b64}, {pct}); "));
            }
        }
        let json = json!({"message": body, "error": {"message": body},
                          "status": {"error": body}, "code": status.as_u16()});
        (
            status,
            [("content-type", "application/json")],
            json.to_string(),
        )
            .into_response()
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr.to_string(), server)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_never_appear_in_output_snapshots_or_files() {
    let key = format!("vk+Secr3t/{:016x}=", fastrand::u64(..));
    let q = qdrant::start(QdrantOptions {
        api_key: Some(key.clone()),
        ..QdrantOptions::default()
    })
    .await
    .unwrap();
    let p = pinecone::start(PineconeOptions {
        api_key: Some(key.clone()),
        stats_lag_reads: 0,
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
    let tmp = tempfile::tempdir().unwrap();
    for d in ["home", "tmp"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let mut runs = Runs::new(tmp.path(), &key);

    // Records Pinecone cannot hold as they are (nested objects), so that
    // migrations write change reports.
    let seed = tmp.path().join("seed");
    let mut records = plain_records(300, 8, 5);
    for r in records.iter_mut().step_by(7) {
        r.metadata
            .get_or_insert_default()
            .insert("nested".into(), json!({"a": 1.5, "b": "x"}));
    }
    write_snapshot(&seed, &data::spec("docs", 8, Metric::Dot), records);

    let qd = format!("qdrant://{}/docs", q.addr());
    let pc = format!("pinecone+http://{}/docs", p.addr());
    let wv = format!("weaviate://{}/Docs", w.addr());
    runs.run(&["import", "seed", &qd, "-vv"], &[0]);
    runs.run(&["export", &qd, "from-qdrant", "-vv"], &[0]);
    runs.run(
        &[
            "migrate",
            &qd,
            &pc,
            "--via",
            "via-pinecone",
            "--metadata",
            "flatten",
            "-vv",
        ],
        &[0],
    );
    runs.run(&["migrate", &pc, &wv, "--via", "via-weaviate", "-vv"], &[0]);
    // A migration through a temporary snapshot (removed afterwards).
    runs.run(
        &[
            "migrate",
            &wv,
            &format!("qdrant://{}/back", q.addr()),
            "--metadata",
            "flatten",
            "-vv",
        ],
        &[0],
    );
    runs.run(&["compare", "from-qdrant", &qd, "-vv"], &[0, 1]);
    runs.run(&["compare", &pc, &wv, "-vv", "--queries", "5"], &[0, 1]);
    for u in [
        format!("qdrant://{}", q.addr()),
        format!("pinecone+http://{}", p.addr()),
        format!("weaviate://{}", w.addr()),
    ] {
        runs.run(&["ls", &u, "-vv"], &[0]);
    }
    runs.run(&["verify", "from-qdrant", "-vv"], &[0]);
    runs.run(&["inspect", "via-weaviate", "--json"], &[0]);
    // Every log line on, of every crate.
    let mut all_logs = vecport();
    all_logs.env("VECPORT_LOG", "trace");
    runs.run_with(all_logs, &["export", &pc, "trace-export", "-q"], &[0]);
    let mut snapshots = 5;

    // The real servers, when they are there (always in CI).
    if let Some(chroma) = server_url("CHROMA_URL") {
        let name = unique_name("secrets");
        let target = format!("chroma://{}/{name}", crate::support::chroma::host(&chroma));
        runs.run(
            &[
                "migrate",
                &qd,
                &target,
                "--via",
                "via-chroma",
                "--metadata",
                "flatten",
                "-vv",
            ],
            &[0],
        );
        runs.run(&["export", &target, "from-chroma", "-vv"], &[0]);
        snapshots += 2;
    }
    if let Some(pg) = pgvector_url() {
        let table = unique_name("secrets").replace('-', "_");
        let target = format!("{pg}/{table}");
        runs.run(&["migrate", &qd, &target, "--via", "via-pg", "-vv"], &[0]);
        runs.run(&["export", &target, "from-pg", "-vv"], &[0]);
        snapshots += 2;
    }

    // Servers that refuse the key, fail, or drop every connection.
    q.set_api_key(Some("another-key"));
    runs.run(&["export", &qd, "refused", "-vv"], &[5]);
    runs.run(
        &["import", "seed", &format!("qdrant://{}/x", q.addr()), "-vv"],
        &[5],
    );
    q.set_api_key(Some(&key));
    let quick = ["--retries", "2", "--retry-wait", "0.01", "-vv"];
    for faults in [Faults::always_unavailable(), Faults::always_dropped()] {
        for e in [&q.faults(), &p.faults(), &w.faults()] {
            e.set(faults.clone()).unwrap();
        }
        for u in [&qd, &pc, &wv] {
            let mut args = vec!["export", u.as_str(), "failed"];
            args.extend(quick);
            runs.run(&args, &[4]);
        }
        let mut args = vec!["migrate", &qd, &wv, "--via", "failed-migration"];
        args.extend(quick);
        runs.run(&args, &[4]);
    }
    for e in [&q.faults(), &p.faults(), &w.faults()] {
        e.clear();
    }

    // Servers that echo the credentials back in their errors.
    for status in [StatusCode::UNAUTHORIZED, StatusCode::INTERNAL_SERVER_ERROR] {
        let (addr, server) = echo_server(status).await;
        for u in [
            format!("qdrant://{addr}/docs"),
            format!("pinecone+http://{addr}/docs"),
            format!("weaviate://{addr}/Docs"),
            format!("chroma://{addr}/docs"),
        ] {
            let mut args = vec!["export", u.as_str(), "echoed"];
            args.extend(quick);
            runs.run(&args, &[4, 5]);
        }
        server.abort();
    }

    // URLs that carry the key (percent-encoded where a URL needs it).
    let encoded =
        percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC).to_string();
    for u in [
        format!("qdrant://user:{encoded}@{}/docs", q.addr()),
        format!("qdrant://{encoded}@{}/docs", q.addr()),
        format!("qdrant://{}/docs?api_key={key}", q.addr()),
        format!("qdrant+ftp://{}/docs?api_key={key}", q.addr()),
        format!("qdrant://{}/a/b?api_key={key}", q.addr()),
        format!("qdrant://{}:99999/docs?api_key={key}", q.addr().ip()),
        format!("pgvector://app:{encoded}@127.0.0.1:1/db/t"),
    ] {
        runs.run(&["export", &u, "url-with-key", "-vv"], &[2]);
    }

    // The runs did write what is searched: snapshots and change reports.
    assert_eq!(q.state().points_count("docs"), Some(300));
    assert_eq!(q.state().points_count("back"), Some(300));
    assert_eq!(w.state().object_count("Docs", None), 300);
    let files = files_under(tmp.path());
    let reports = files
        .iter()
        .filter(|f| f.to_string_lossy().contains(".changes-"))
        .count();
    assert!(reports >= 2, "change reports written: {files:?}");
    assert!(!tmp.path().join("refused").exists());
    assert!(!tmp.path().join("failed").exists());
    assert_no_key(&runs, snapshots);
}
