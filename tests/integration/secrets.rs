//! Secrets never leak. A distinctive key is set in every connector's
//! environment variable and the emulators require it; export, import,
//! migrate, compare and ls run with `-vv` (and once with every log on),
//! against servers that work, refuse the key, fail, drop connections, or
//! echo the request's headers back in their errors. The key — as it is,
//! percent-encoded or in base64 — must appear in no output: not on stdout or
//! stderr, not in any file under the directories the runs wrote to
//! (snapshots, change reports, whatever else a command keeps there), not in
//! any record of the snapshots. URLs with credentials are not echoed either.
//! The secrets of object storage (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`) are searched for the
//! same way after runs against the S3 server and Azurite, and in every object
//! the runs left in the buckets.

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
        self.run_as_set(cmd, args, codes);
    }

    /// [`Runs::run_with`] with the credentials `cmd` was given, no others.
    fn run_as_set(&mut self, mut cmd: Command, args: &[&str], codes: &[i32]) {
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

/// A server that answers every request with `status` and an S3-style XML
/// error echoing the request's URL (where a SAS token travels) and its
/// credential headers, as they are, in base64 and percent-encoded.
async fn echo_storage_server(status: StatusCode) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| async move {
        let mut echo = format!("request {uri}; ");
        for name in ["authorization", "x-amz-security-token", "x-ms-version"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                let b64 = base64::engine::general_purpose::STANDARD.encode(v);
                let pct =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
                echo.push_str(&format!("bad {name} {v} ({b64}, {pct}); "));
            }
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{echo}</Message></Error>"
        );
        (status, [("content-type", "application/xml")], body).into_response()
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), server)
}

/// The secrets of object storage — the S3 secret key and session token, the
/// Azure account key and SAS token — appear in no output (`-vv`, and once
/// with every log on), in no file the runs wrote and in no object in the
/// buckets: through runs that work, credentials refused, and servers that
/// echo the request's URL and credential headers back in their errors.
#[tokio::test(flavor = "multi_thread")]
async fn object_storage_secrets_never_appear() {
    use crate::support::buckets::{Store, without_storage_env};
    let (Some(s3), Some(az)) = (Store::s3(), Store::azurite()) else {
        return;
    };
    let q = qdrant::start(QdrantOptions::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for d in ["home", "tmp"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let seed = tmp.path().join("seed");
    write_snapshot(
        &seed,
        &data::spec("docs", 8, Metric::Dot),
        plain_records(300, 8, 3),
    );
    let qd = format!("qdrant://{}/docs", q.addr());
    let with = |env: &[(String, String)]| -> Command {
        let mut cmd = crate::support::cli::vecport_process();
        without_storage_env(&mut cmd);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Command::from_std(cmd)
    };
    let token = format!("IQoJb3JpZ2luX2Vj+Tok3n/{:016x}=", fastrand::u64(..));
    let mut s3_env = s3.env().to_vec();
    s3_env.push(("AWS_SESSION_TOKEN".into(), token.clone()));
    let sas = az.sas_token();
    let az_key = az.var("AZURE_STORAGE_ACCOUNT_KEY");
    let sas_env: Vec<(String, String)> = az
        .env()
        .iter()
        .filter(|(k, _)| k != "AZURE_STORAGE_ACCOUNT_KEY")
        .cloned()
        .chain([("AZURE_STORAGE_SAS_TOKEN".to_owned(), sas.clone())])
        .collect();
    let both: Vec<(String, String)> = s3_env.iter().chain(az.env()).cloned().collect();
    let p = |store: &Store, what: &str| store.location(&store.fresh_prefix(what));
    let (in_s3, in_az, by_sas) = (p(&s3, "secrets"), p(&az, "secrets"), p(&az, "secrets-sas"));

    let mut runs = Runs::new(tmp.path(), &s3.var("AWS_SECRET_ACCESS_KEY"));
    let all = |runs: &mut Runs, env: &[(String, String)], args: &[&str], codes: &[i32]| {
        runs.run_as_set(with(env), args, codes);
    };
    all(&mut runs, &[], &["import", "seed", &qd, "-q"], &[0]);
    all(&mut runs, &s3_env, &["export", &qd, &in_s3, "-vv"], &[0]);
    all(&mut runs, &s3_env, &["verify", &in_s3, "-vv"], &[0]);
    all(&mut runs, &s3_env, &["inspect", &in_s3, "--json"], &[0]);
    all(&mut runs, &both, &["copy", &in_s3, &in_az, "-vv"], &[0]);
    all(&mut runs, &both, &["copy", &in_az, "copied", "-vv"], &[0]);
    all(&mut runs, az.env(), &["verify", &in_az, "-vv"], &[0]);
    let back = format!("qdrant://{}/back", q.addr());
    all(&mut runs, az.env(), &["import", &in_az, &back, "-vv"], &[0]);
    all(&mut runs, &s3_env, &["compare", &in_s3, &back, "-vv"], &[0]);
    all(&mut runs, &sas_env, &["export", &qd, &by_sas, "-vv"], &[0]);
    all(&mut runs, &sas_env, &["verify", &by_sas, "-vv"], &[0]);
    let via = p(&s3, "secrets-via");
    let migrated = format!("qdrant://{}/migrated", q.addr());
    all(
        &mut runs,
        &s3_env,
        &["migrate", &qd, &migrated, "--via", &via, "-vv"],
        &[0],
    );
    // Every log line on, of every crate.
    let mut traced = with(&s3_env);
    traced.env("VECPORT_LOG", "trace");
    runs.run_as_set(
        traced,
        &["export", &qd, &p(&s3, "secrets-trace"), "-q"],
        &[0],
    );
    let mut traced = with(&sas_env);
    traced.env("VECPORT_LOG", "trace");
    runs.run_as_set(traced, &["verify", &by_sas], &[0]);

    // Refused credentials.
    let replace = |env: &[(String, String)], var: &str, value: &str| -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == var {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    let wrong_s3 = replace(&s3_env, "AWS_ACCESS_KEY_ID", "AKIAWRONGKEYID000000");
    all(
        &mut runs,
        &wrong_s3,
        &["export", &qd, &p(&s3, "refused"), "-vv"],
        &[5],
    );
    all(&mut runs, &wrong_s3, &["verify", &in_s3, "-vv"], &[5]);
    let wrong_az = replace(az.env(), "AZURE_STORAGE_ACCOUNT_NAME", "vecportother");
    all(&mut runs, &wrong_az, &["verify", &in_az, "-vv"], &[5, 6]);
    let wrong_sas = replace(
        &sas_env,
        "AZURE_STORAGE_SAS_TOKEN",
        &sas.replace("sig=", "sig=A"),
    );
    all(&mut runs, &wrong_sas, &["verify", &by_sas, "-vv"], &[5]);

    // Servers that echo the URL and the credential headers back.
    for status in [StatusCode::FORBIDDEN, StatusCode::BAD_REQUEST] {
        let (url, server) = echo_storage_server(status).await;
        let echo_s3 = replace(&s3_env, "AWS_ENDPOINT_URL", &url);
        let echo_az = replace(az.env(), "AZURITE_BLOB_STORAGE_URL", &url);
        let echo_sas = replace(&sas_env, "AZURITE_BLOB_STORAGE_URL", &url);
        for (env, location) in [(&echo_s3, &in_s3), (&echo_az, &in_az), (&echo_sas, &by_sas)] {
            all(&mut runs, env, &["verify", location, "-vv"], &[3, 4, 5]);
            all(
                &mut runs,
                env,
                &["export", &qd, &format!("{location}-echo"), "-vv"],
                &[3, 4, 5],
            );
        }
        server.abort();
    }

    // Every object in the buckets is searched too, as downloaded.
    for (store, location) in [(&s3, &in_s3), (&az, &in_az), (&az, &by_sas), (&s3, &via)] {
        let scheme = format!("{}://{}/", store.provider.scheme(), store.container);
        let prefix = location.strip_prefix(&scheme).unwrap();
        let objects = store.download(prefix, &tmp.path().join("objects").join(prefix));
        assert!(!objects.is_empty(), "nothing under {location}");
    }
    let sig = sas
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .into_owned()
        })
        .expect("the SAS token's signature");
    // Snapshots: copied, and the four in the buckets.
    let snapshots = 5;
    for secret in [s3.var("AWS_SECRET_ACCESS_KEY"), token, az_key, sas, sig] {
        runs.key = secret;
        assert_no_key(&runs, snapshots);
    }
    assert_eq!(q.state().points_count("back"), Some(300));
    assert_eq!(q.state().points_count("migrated"), Some(300));
}
