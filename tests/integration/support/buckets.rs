//! Object storage for the tests: the S3 server (s3s-fs) and Azurite that
//! `tests/servers.sh` starts (`vdb_start_s3`, `vdb_start_azurite`), a fresh
//! prefix per test, the environment a `vecport` command needs to reach them,
//! and an independent client — boto3 and azure-storage-blob, through
//! `tests/python/objects.py` run by `VECPORT_PYTHON` — that lists, reads,
//! damages and deletes objects behind vecport's back.
//!
//! Open multipart uploads: s3s-fs 0.14 answers 501 to ListMultipartUploads,
//! so what is open is read from its data directory (`VECPORT_TEST_S3_ROOT`),
//! where an upload is, from CreateMultipartUpload until
//! CompleteMultipartUpload or AbortMultipartUpload, the hidden files
//! `.upload-UUID.json` (who opened it), `.bucket-B.object-K.upload-UUID.metadata.json`
//! (B and K, the bucket and key, in unpadded URL-safe base64: where it goes)
//! and `.upload_id-UUID.part-N` (its parts). In Azurite, an upload is a
//! blob's staged blocks, which the List Blobs API shows with
//! `include=uncommittedblobs` until Put Block List commits them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::cli::vecport_process;
use super::{server_url, unique_name};

/// Which provider a [`Store`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// The S3 protocol (s3s-fs): `s3://BUCKET/PREFIX`.
    S3,
    /// Azure Blob Storage (Azurite): `az://CONTAINER/PREFIX`.
    Azure,
}

impl Provider {
    /// The URL scheme of its locations.
    pub fn scheme(self) -> &'static str {
        match self {
            Provider::S3 => "s3",
            Provider::Azure => "az",
        }
    }

    /// Its name in `tests/python/objects.py`.
    fn script_name(self) -> &'static str {
        match self {
            Provider::S3 => "s3",
            Provider::Azure => "az",
        }
    }
}

/// One object as the provider's own client lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Object {
    /// The full key, prefix included.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The server's ETag, quotes removed (`MD5-N` for an S3 object made by
    /// a multipart upload of N parts).
    pub etag: String,
}

/// A bucket (S3) or container (Azure) on a server the tests may use, and how
/// to reach it.
#[derive(Clone, Debug)]
pub struct Store {
    pub provider: Provider,
    /// The bucket or container.
    pub container: String,
    /// The variables a client needs (credentials, endpoint).
    env: Vec<(String, String)>,
    /// s3s-fs's data directory.
    root: Option<PathBuf>,
}

/// Every variable of the environment that configures object storage (AWS,
/// Azure, Google, object_store's own), so that a command sees only what a
/// test gives it.
pub fn storage_vars() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            ["AWS_", "AZURE_", "AZURITE_", "GOOGLE_", "OBJECT_STORE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect();
    vars.extend(
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT",
            "AWS_ALLOW_HTTP",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_USE_EMULATOR",
            "AZURITE_BLOB_STORAGE_URL",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_SERVICE_ACCOUNT",
        ]
        .map(str::to_owned),
    );
    vars.sort();
    vars.dedup();
    vars
}

/// `command` with no object-storage setting from the caller's environment.
pub fn without_storage_env(command: &mut Command) -> &mut Command {
    for var in storage_vars() {
        command.env_remove(var);
    }
    // No shared AWS configuration from the home directory either.
    command.env("AWS_CONFIG_FILE", "/nonexistent/vecport-test-aws-config");
    command.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/vecport-test-aws-credentials",
    )
}

/// `tests/servers.sh`'s variable `var`; see [`server_url`] for what happens
/// when it is unset.
fn required(var: &str) -> Option<String> {
    server_url(var)
}

fn env_var(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (tests/servers.sh sets it)"))
}

impl Store {
    /// The S3 server of `vdb_start_s3` (`VECPORT_TEST_S3_*`): `None` (skip)
    /// when it is not running, a panic under CI.
    pub fn s3() -> Option<Store> {
        let endpoint = required("VECPORT_TEST_S3_ENDPOINT")?;
        Some(Store {
            provider: Provider::S3,
            container: env_var("VECPORT_TEST_S3_BUCKET"),
            env: vec![
                (
                    "AWS_ACCESS_KEY_ID".into(),
                    env_var("VECPORT_TEST_S3_ACCESS_KEY"),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    env_var("VECPORT_TEST_S3_SECRET_KEY"),
                ),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
            root: Some(PathBuf::from(env_var("VECPORT_TEST_S3_ROOT"))),
        })
    }

    /// The Azurite of `vdb_start_azurite` (`VECPORT_TEST_AZURITE_URL`,
    /// `VECPORT_TEST_AZURE_*`): `None` (skip) when it is not running, a
    /// panic under CI.
    pub fn azurite() -> Option<Store> {
        let url = required("VECPORT_TEST_AZURITE_URL")?;
        Some(Store {
            provider: Provider::Azure,
            container: env_var("VECPORT_TEST_AZURE_CONTAINER"),
            env: vec![
                (
                    "AZURE_STORAGE_ACCOUNT_NAME".into(),
                    env_var("VECPORT_TEST_AZURE_ACCOUNT_NAME"),
                ),
                (
                    "AZURE_STORAGE_ACCOUNT_KEY".into(),
                    env_var("VECPORT_TEST_AZURE_ACCOUNT_KEY"),
                ),
                ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
                ("AZURITE_BLOB_STORAGE_URL".into(), url),
            ],
            root: None,
        })
    }

    /// The same server and credentials, another bucket or container.
    pub fn with_container(&self, container: &str) -> Store {
        Store {
            container: container.to_owned(),
            ..self.clone()
        }
    }

    /// The same store reached through `endpoint` (a proxy in front of the
    /// server), with the same credentials.
    pub fn through(&self, endpoint: &str) -> Store {
        let mut store = self.clone();
        for (k, v) in &mut store.env {
            if k == "AWS_ENDPOINT_URL" || k == "AZURITE_BLOB_STORAGE_URL" {
                *v = endpoint.to_owned();
            }
        }
        store
    }

    /// The value of `var` in this store's environment.
    pub fn var(&self, var: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{var} is not part of the {:?} environment", self.provider))
    }

    /// The server's endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        match self.provider {
            Provider::S3 => self.var("AWS_ENDPOINT_URL"),
            Provider::Azure => self.var("AZURITE_BLOB_STORAGE_URL"),
        }
    }

    /// The variables a `vecport` command needs to reach this store, as a
    /// user sets them.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A prefix no other test (or run) uses, named after `what`.
    pub fn fresh_prefix(&self, what: &str) -> String {
        format!("vecport-tests/{}", unique_name(what))
    }

    /// The location `s3://BUCKET/PREFIX` or `az://CONTAINER/PREFIX`.
    pub fn location(&self, prefix: &str) -> String {
        format!("{}://{}/{prefix}", self.provider.scheme(), self.container)
    }

    /// `command` with this store's environment and nothing else of object
    /// storage from the caller's.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        without_storage_env(command);
        command.envs(self.env.iter().map(|(k, v)| (k, v)))
    }

    /// The `vecport` binary (no database credentials, see
    /// [`vecport_process`]) with this store's environment.
    pub fn vecport(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.process())
    }

    /// [`Store::vecport`] as a plain [`Command`], for runs that are spawned
    /// and stopped midway.
    pub fn process(&self) -> Command {
        let mut c = vecport_process();
        self.apply(&mut c);
        c
    }

    /// Runs `tests/python/objects.py COMMAND PROVIDER ARGS` with this
    /// store's credentials and returns its JSON answer.
    fn objects(&self, command: &str, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/objects.py");
        let mut cmd = Command::new(python());
        without_storage_env(&mut cmd)
            .arg(script)
            .args([command, self.provider.script_name()])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let out = cmd.output().expect("run tests/python/objects.py");
        assert!(
            out.status.success(),
            "objects.py {command} {} {args:?} failed ({}): {}\n(tests/servers.sh's vdb_install_python installs boto3 and azure-storage-blob into VECPORT_PYTHON)",
            self.provider.script_name(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "objects.py {command}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Every object under `prefix` (as a string prefix of the key), by key.
    pub fn list(&self, prefix: &str) -> Vec<Object> {
        serde_json::from_value(self.objects("list", &[&self.container, prefix])).unwrap()
    }

    /// The keys under `prefix/`, relative to it, with their sizes.
    pub fn sizes(&self, prefix: &str) -> BTreeMap<String, u64> {
        let base = format!("{}/", prefix.trim_end_matches('/'));
        self.list(&base)
            .into_iter()
            .map(|o| (o.key[base.len()..].to_owned(), o.size))
            .collect()
    }

    /// Every object under `prefix/` with its bytes, keyed relative to it:
    /// what a test compares before and after a command that must change
    /// nothing.
    pub fn contents(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        self.download(prefix, dir.path());
        super::cli::files_under(dir.path())
            .into_iter()
            .map(|f| {
                let relative = f.strip_prefix(dir.path()).unwrap();
                (
                    relative.to_string_lossy().into_owned(),
                    std::fs::read(&f).unwrap(),
                )
            })
            .collect()
    }

    /// Downloads every object under `prefix/` into `dir`, at its key
    /// relative to the prefix; returns the objects.
    pub fn download(&self, prefix: &str, dir: &Path) -> Vec<Object> {
        let base = format!("{}/", prefix.trim_end_matches('/'));
        serde_json::from_value(
            self.objects("download", &[&self.container, &base, dir.to_str().unwrap()]),
        )
        .unwrap()
    }

    /// Uploads every file under `dir` to `prefix/<its path in dir>`.
    pub fn upload(&self, dir: &Path, prefix: &str) {
        self.objects("upload", &[&self.container, dir.to_str().unwrap(), prefix]);
    }

    /// The bytes of object `key`.
    pub fn read(&self, key: &str) -> Vec<u8> {
        let file = tempfile::NamedTempFile::new().unwrap();
        self.objects(
            "get",
            &[&self.container, key, file.path().to_str().unwrap()],
        );
        std::fs::read(file.path()).unwrap()
    }

    /// Writes `bytes` as object `key`.
    pub fn write(&self, key: &str, bytes: &[u8]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        self.objects(
            "put",
            &[&self.container, key, file.path().to_str().unwrap()],
        );
    }

    /// Deletes the objects `keys`.
    pub fn delete(&self, keys: &[&str]) {
        let mut args = vec![self.container.as_str()];
        args.extend(keys);
        self.objects("delete", &args);
    }

    /// Inverts the byte at `offset` of object `key`.
    pub fn flip_byte(&self, key: &str, offset: u64) {
        self.objects("flip", &[&self.container, key, &offset.to_string()]);
    }

    /// Cuts object `key` to its first `length` bytes.
    pub fn truncate(&self, key: &str, length: u64) {
        self.objects("truncate", &[&self.container, key, &length.to_string()]);
    }

    /// Creates bucket or container `name` on this server.
    pub fn create_container(&self, name: &str) {
        self.objects("create", &[name]);
    }

    /// A SAS token for this (Azure) container, as `AZURE_STORAGE_SAS_TOKEN`
    /// takes it.
    pub fn sas_token(&self) -> String {
        assert_eq!(self.provider, Provider::Azure, "SAS tokens are Azure's");
        self.objects("sas", &[&self.container])
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The keys under `prefix` with an upload begun and neither completed
    /// nor aborted: for S3, from s3s-fs's data directory (see the module's
    /// documentation), for Azure, blobs with staged blocks never committed.
    pub fn open_uploads(&self, prefix: &str) -> Vec<String> {
        match self.provider {
            Provider::S3 => self.open_s3_uploads(prefix),
            Provider::Azure => {
                serde_json::from_value(self.objects("uncommitted", &[&self.container, prefix]))
                    .unwrap()
            }
        }
    }

    fn open_s3_uploads(&self, prefix: &str) -> Vec<String> {
        let root = self.root.as_ref().expect("s3s-fs's data directory");
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let mut open = Vec::new();
        let mut parts_of = BTreeMap::<String, usize>::new();
        let names: Vec<String> = std::fs::read_dir(root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in &names {
            if let Some(rest) = name.strip_prefix(".upload_id-")
                && let Some((id, _)) = rest.split_once(".part-")
            {
                *parts_of.entry(id.to_owned()).or_default() += 1;
            }
        }
        for name in &names {
            // .bucket-B.object-K.upload-UUID.metadata.json
            let Some(rest) = name
                .strip_prefix(".bucket-")
                .and_then(|r| r.strip_suffix(".metadata.json"))
            else {
                continue;
            };
            let Some((bucket, rest)) = rest.split_once(".object-") else {
                continue;
            };
            let Some((key, id)) = rest.split_once(".upload-") else {
                continue;
            };
            let (Some(bucket), Some(key)) = (decode(bucket), decode(key)) else {
                continue;
            };
            let opened = root.join(format!(".upload-{id}.json")).exists();
            if bucket == self.container && key.starts_with(prefix) && opened {
                let parts = parts_of.get(id).copied().unwrap_or(0);
                open.push(format!("{key} (upload {id}, {parts} parts uploaded)"));
            }
        }
        open.sort();
        open
    }

    /// Whether bucket `name` exists on the S3 server: a directory in
    /// s3s-fs's root (a PutObject into a missing bucket creates it).
    pub fn s3_bucket_exists(&self, name: &str) -> bool {
        let root = self.root.as_ref().expect("s3s-fs's data directory");
        root.join(name).is_dir()
    }
}

/// The interpreter of `vdb_install_python` (`VECPORT_PYTHON`, default
/// `python3`).
pub fn python() -> String {
    std::env::var("VECPORT_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// The blake3 hash of `bytes`, in hex, as manifests write it.
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

impl Store {
    /// Begins an upload to `key` and leaves it open (S3: a multipart upload
    /// with one part; Azure: one staged block); returns its id.
    pub fn begin_upload(&self, key: &str) -> String {
        self.objects("stage", &[&self.container, key])
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Ends the upload `id` to `key` that [`Store::begin_upload`] began,
    /// leaving no object.
    pub fn end_upload(&self, key: &str, id: &str) {
        self.objects("unstage", &[&self.container, key, id]);
    }
}

/// A proxy on a local port in front of `store`'s server, with the
/// emulators' fault switchboard ([`crate::emulators::Faults`], switched
/// through [`crate::emulators::Emulator::faults`]): as configured, a request
/// is answered `503 SlowDown` as S3 answers it (after its body was read), or
/// its connection is dropped without an answer, or it is delayed; every
/// other request is passed on unchanged (its `Host` header too: SigV4 signs
/// it) and so is the answer. Reach the store through it with
/// [`Store::through`] and the proxy's `base_url()`.
pub fn fault_proxy(store: &Store) -> crate::emulators::Emulator<()> {
    use std::sync::Arc;

    use crate::emulators::{FaultInjector, Faults, serve_background};
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};

    #[derive(Clone)]
    struct Backend {
        base: String,
        http: reqwest::Client,
    }

    async fn forward(State(backend): State<Backend>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return axum::http::StatusCode::BAD_REQUEST.into_response();
        };
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let mut request = backend
            .http
            .request(parts.method, format!("{}{path}", backend.base));
        for (name, value) in &parts.headers {
            if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                request = request.header(name, value);
            }
        }
        let answer = match request.body(body).send().await {
            Ok(answer) => answer,
            Err(e) => {
                return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response();
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.unwrap_or_default();
        let mut response = (status, bytes).into_response();
        for (name, value) in &headers {
            if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                response.headers_mut().insert(name, value.clone());
            }
        }
        response
    }

    fn slow_down(
        _kind: crate::emulators::FaultKind,
        _faults: &Faults,
        _method: &axum::http::Method,
        path: &str,
    ) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>{path}</Resource><RequestId>vecport-test</RequestId></Error>"
        );
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/xml")],
            body,
        )
            .into_response()
    }

    let backend = Backend {
        base: store.endpoint().trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let app = axum::Router::new().fallback(forward).with_state(backend);
    let faults = Arc::new(FaultInjector::new(Faults::none(), slow_down).unwrap());
    serve_background(0, Arc::new(()), faults, app).expect("start the fault proxy")
}

impl Store {
    /// The same server and container with `env` as its whole environment:
    /// for the tests of missing and wrong settings.
    pub fn with_env(&self, env: Vec<(String, String)>) -> Store {
        Store {
            env,
            ..self.clone()
        }
    }
}
