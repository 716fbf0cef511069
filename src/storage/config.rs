//! Object storage configured as users already have it: from the environment
//! variables the AWS CLI, Azure's tools and Google's SDKs read, never from
//! the location's text and never printed.
//!
//! - S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (or
//!   `AWS_ENDPOINT`) for an S3-compatible server, `AWS_ALLOW_HTTP=true` for an
//!   `http://` endpoint; requests are path-style unless
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Without static keys, web
//!   identity and container credentials work as in the AWS SDKs, and on AWS
//!   itself (no endpoint set) the instance's role.
//! - Azure: `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY` or
//!   `AZURE_STORAGE_SAS_TOKEN` (or a service principal, workload identity or
//!   managed identity as object_store reads them), `AZURE_STORAGE_USE_EMULATOR=true`
//!   for Azurite (`AZURITE_BLOB_STORAGE_URL` when it is not on port 10000).
//! - GCS: `GOOGLE_APPLICATION_CREDENTIALS` (a service account or
//!   application-default credentials file), `GOOGLE_SERVICE_ACCOUNT` /
//!   `GOOGLE_SERVICE_ACCOUNT_KEY`.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};

use crate::error::{Error, Result};

/// The kind of object storage a location is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Azure Blob Storage (or Azurite).
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// A plain HTTP(S) server: read only.
    Http,
}

impl Provider {
    /// The variables that hold this provider's credentials, for messages.
    pub fn credential_hint(self) -> &'static str {
        match self {
            Provider::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
            Provider::Azure => {
                "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
            }
            Provider::Gcs => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
            Provider::Http => "the server's access rules (no credentials are sent over HTTP)",
        }
    }
}

/// Environment variables holding object-storage secrets: [`crate::redact`]
/// scrubs their values from everything vecport prints or writes.
pub fn secret_env() -> &'static [&'static str] {
    &[
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ]
}

/// Environment variables, empty values left out: the process's
/// ([`Env::process`]), or a test's.
#[derive(Debug, Clone, Default)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(_, v)| !v.is_empty())
            .collect())
    }

    /// Given variables.
    pub fn of<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Env {
        Env(vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Every variable starting with `prefix`.
    fn starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A store, and its multipart interface where it has one.
pub type Stores = (Arc<dyn ObjectStore>, Option<Arc<dyn MultipartStore>>);

/// A cloud store's builder with vecport's client and retry settings, then
/// the variables of the environment starting with `$prefix` that name its
/// configuration keys — client options first, so that the environment's
/// (`AWS_ALLOW_HTTP`, …) go on top.
macro_rules! cloud_builder {
    ($builder:ty, $key:ty, $prefix:literal, $env:expr) => {{
        let mut b = <$builder>::new()
            .with_client_options(client())
            .with_retry(retry());
        for (k, v) in $env.starting_with($prefix) {
            if let Ok(key) = k.to_ascii_lowercase().parse::<$key>() {
                b = b.with_config(key, v);
            }
        }
        b
    }};
}

/// A store that has a multipart interface, as both.
fn with_multipart<S: ObjectStore + MultipartStore>(store: S) -> Stores {
    let store = Arc::new(store);
    (store.clone(), Some(store))
}

/// A store for `url` and the path of the location inside it.
pub fn store_for(url: &url::Url, env: &Env) -> Result<(Stores, ObjectPath, Provider)> {
    let shown = shown(url);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Usage(format!(
            "{shown}: credentials do not belong in a location; set them in the environment ({})",
            provider_of(url).map_or("see the README", |p| p.credential_hint())
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Usage(format!(
            "{shown}: object storage is configured from the environment, not from the location's query (see the README's object storage section)"
        )));
    }
    let (scheme, path) = ObjectStoreScheme::parse(url).map_err(|_| {
        Error::Usage(format!(
            "`{shown}` is not a location vecport knows; supported: a directory, file://, s3://, az://, abfs://, azure://, gs://, https://"
        ))
    })?;
    let built = |e: object_store::Error| {
        Error::Usage(format!("{shown}: {}", crate::redact::scrub(&e.to_string())))
    };
    let (store, provider): (Stores, Provider) = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            check_s3_credentials(&shown, env)?;
            let mut b = cloud_builder!(AmazonS3Builder, AmazonS3ConfigKey, "AWS_", env);
            if !env.has("AWS_REGION") && !env.has("AWS_DEFAULT_REGION") {
                // S3-compatible servers take any region; AWS redirects.
                b = b.with_region("us-east-1");
            }
            let s = b.with_url(url.as_str()).build().map_err(built)?;
            (with_multipart(s), Provider::S3)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            check_azure_credentials(&shown, env)?;
            let b = cloud_builder!(MicrosoftAzureBuilder, AzureConfigKey, "AZURE_", env);
            let s = b.with_url(url.as_str()).build().map_err(built)?;
            (with_multipart(s), Provider::Azure)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            check_gcs_credentials(&shown, env)?;
            let b = cloud_builder!(GoogleCloudStorageBuilder, GoogleConfigKey, "GOOGLE_", env);
            let s = b.with_url(url.as_str()).build().map_err(built)?;
            (with_multipart(s), Provider::Gcs)
        }
        ObjectStoreScheme::Http => {
            let mut base = url.clone();
            base.set_path("/");
            let b = HttpBuilder::new()
                .with_url(base.as_str())
                .with_retry(retry())
                .with_client_options(client().with_allow_http(url.scheme() == "http"));
            ((Arc::new(b.build().map_err(built)?), None), Provider::Http)
        }
        _ => {
            return Err(Error::Usage(format!(
                "`{shown}` is not an object-storage location; give a directory for local snapshots"
            )));
        }
    };
    Ok((store, path, provider))
}

/// The provider a URL's scheme names, before it is parsed in full.
fn provider_of(url: &url::Url) -> Option<Provider> {
    match url.scheme() {
        "s3" | "s3a" => Some(Provider::S3),
        "az" | "adl" | "azure" | "abfs" | "abfss" => Some(Provider::Azure),
        "gs" => Some(Provider::Gcs),
        "http" | "https" => Some(Provider::Http),
        _ => None,
    }
}

/// The URL as it may be shown: scheme, host and path.
pub fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.as_str().trim_end_matches('/').to_owned()
}

/// Refuses an S3 location no credentials can reach: an S3-compatible
/// endpoint with no keys, web identity or container credentials (object_store
/// would ask the AWS instance metadata service, which such a server never
/// backs). On AWS itself, the instance's role is left to object_store.
fn check_s3_credentials(shown: &str, env: &Env) -> Result<()> {
    let has = |k: &str| env.has(k);
    let keys = has("AWS_ACCESS_KEY_ID") || has("AWS_SECRET_ACCESS_KEY");
    if keys && !(has("AWS_ACCESS_KEY_ID") && has("AWS_SECRET_ACCESS_KEY")) {
        let missing = if has("AWS_ACCESS_KEY_ID") {
            "AWS_SECRET_ACCESS_KEY"
        } else {
            "AWS_ACCESS_KEY_ID"
        };
        return Err(missing_credentials(
            shown,
            format!("{missing} is not set (the other half of the key pair is)"),
            missing,
        ));
    }
    let other = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|k| has(k))
        || env.is_true("AWS_SKIP_SIGNATURE");
    let endpoint = has("AWS_ENDPOINT_URL") || has("AWS_ENDPOINT");
    if !keys && !other && endpoint {
        return Err(missing_credentials(
            shown,
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (AWS_ENDPOINT_URL names an S3-compatible server, which has no instance role to fall back to)".into(),
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    Ok(())
}

/// Refuses an Azure location without any credentials object_store can use,
/// rather than letting it ask a managed-identity endpoint that is not there.
fn check_azure_credentials(shown: &str, env: &Env) -> Result<()> {
    let has = |k: &str| env.has(k);
    if env.is_true("AZURE_STORAGE_USE_EMULATOR") {
        return Ok(());
    }
    let any = [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_MSI_ENDPOINT",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ]
    .iter()
    .any(|k| has(k))
        || env.is_true("AZURE_USE_AZURE_CLI")
        || env.is_true("AZURE_SKIP_SIGNATURE");
    if !any {
        return Err(missing_credentials(
            shown,
            "no Azure credentials are set".into(),
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN (AZURE_STORAGE_USE_EMULATOR=true for Azurite)",
        ));
    }
    Ok(())
}

/// Refuses a GCS location without credentials object_store can use: no
/// service account variable, no application-default credentials file, and
/// no metadata server named (`GCE_METADATA_HOST`, which Google's libraries
/// read; on Google Cloud it is how a workload's identity is reached).
fn check_gcs_credentials(shown: &str, env: &Env) -> Result<()> {
    let any = [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_PATH",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GCE_METADATA_HOST",
    ]
    .iter()
    .any(|k| env.has(k))
        || env.is_true("GOOGLE_SKIP_SIGNATURE")
        || application_default_credentials(env).is_some_and(|p| p.is_file());
    if !any {
        return Err(missing_credentials(
            shown,
            "no Google Cloud credentials are set, and there is no application-default credentials file".into(),
            "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT)",
        ));
    }
    Ok(())
}

/// Where `gcloud auth application-default login` leaves its credentials.
fn application_default_credentials(env: &Env) -> Option<std::path::PathBuf> {
    let home = env.get("HOME")?;
    Some(std::path::Path::new(home).join(".config/gcloud/application_default_credentials.json"))
}

fn missing_credentials(shown: &str, reason: String, hint: &str) -> Error {
    Error::NoCredentials {
        endpoint: shown.to_owned(),
        message: format!("{reason}; set {hint} in the environment"),
    }
}

/// Retries of failed requests: object_store's backoff, a few more tries than
/// its default, bounded in total time.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
        ..RetryConfig::default()
    }
}

/// HTTP settings: a part upload of several MiB must not time out on a slow
/// link, while a dead connection is noticed.
fn client() -> ClientOptions {
    ClientOptions::new()
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, vars: &[(&str, &str)]) -> Result<(ObjectPath, Provider)> {
        let env = Env::of(vars.iter().copied());
        store_for(&url::Url::parse(url).unwrap(), &env).map(|(_, p, provider)| (p, provider))
    }

    #[test]
    fn every_scheme_maps_to_its_provider_and_prefix() {
        let s3 = [
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret-example"),
        ];
        let az = [
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ];
        let gcs = [("GCE_METADATA_HOST", "metadata.google.internal")];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Provider, &'a str);
        let cases: [Case; 9] = [
            (
                "s3://bucket/backups/2026",
                &s3,
                Provider::S3,
                "backups/2026",
            ),
            ("s3a://bucket/x", &s3, Provider::S3, "x"),
            ("s3://bucket", &s3, Provider::S3, ""),
            ("az://container/snap", &az, Provider::Azure, "snap"),
            ("abfs://container/snap", &az, Provider::Azure, "snap"),
            ("azure://container/a/b", &az, Provider::Azure, "a/b"),
            ("gs://bucket/snap", &gcs, Provider::Gcs, "snap"),
            (
                "https://example.com/files/snap",
                &[],
                Provider::Http,
                "files/snap",
            ),
            ("http://127.0.0.1:8080/snap", &[], Provider::Http, "snap"),
        ];
        for (url, vars, provider, prefix) in cases {
            let (path, p) = parse(url, vars).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(p, provider, "{url}");
            assert_eq!(path.as_ref(), prefix, "{url}");
        }
    }

    #[test]
    fn an_s3_compatible_endpoint_without_keys_names_the_variables() {
        let e = parse(
            "s3://bucket/p",
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")],
        )
        .unwrap_err();
        assert_eq!(e.category(), crate::error::Category::Auth);
        let text = e.to_string();
        assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");
        let e = parse(
            "s3://bucket/p",
            &[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY is not set"), "{e}");
        // On AWS itself the instance role may supply them.
        parse("s3://bucket/p", &[]).unwrap();
        parse(
            "s3://bucket/p",
            &[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn azure_without_credentials_names_the_variables() {
        let e = parse(
            "az://container/p",
            &[("AZURE_STORAGE_ACCOUNT_NAME", "acct")],
        )
        .unwrap_err();
        assert_eq!(e.category(), crate::error::Category::Auth);
        assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT_KEY"), "{e}");
        parse(
            "az://container/p",
            &[("AZURE_STORAGE_USE_EMULATOR", "true")],
        )
        .unwrap();
        parse(
            "az://container/p",
            &[
                ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
                ("AZURE_STORAGE_SAS_TOKEN", "sv=2024&sig=abc"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn gcs_without_credentials_names_the_variable() {
        let e = parse("gs://bucket/p", &[("HOME", "/nonexistent")]).unwrap_err();
        assert_eq!(e.category(), crate::error::Category::Auth);
        assert!(
            e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{e}"
        );
    }

    #[test]
    fn gcs_reads_its_service_account_variable() {
        let e = parse(
            "gs://bucket/p",
            &[(
                "GOOGLE_SERVICE_ACCOUNT",
                "/nonexistent/service-account.json",
            )],
        );
        // object_store reads the file when the store is built.
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("service-account.json") || text.is_empty(),
            "{text}"
        );
    }

    #[test]
    fn shown_urls_carry_no_credentials_or_query() {
        let u = url::Url::parse("s3://key:secret@bucket/prefix/?x=1#f").unwrap();
        assert_eq!(shown(&u), "s3://bucket/prefix");
    }
}
