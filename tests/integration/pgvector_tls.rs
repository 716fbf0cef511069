//! The pgvector connector's connections as libpq makes them, against a real
//! PostgreSQL with `ssl=on` (`VECPORT_TEST_PG_TLS_URL`, certificates in
//! `VECPORT_TEST_PG_TLS_DIR`; `tests/servers.sh` starts it): every `sslmode`,
//! `sslrootcert`, client certificates, passwords from `PGPASSWORD` and from
//! the password file, and the errors that say what to change. The server has
//! no pgvector: tables with `bit(n)` columns (binary vectors, core
//! PostgreSQL) carry data through export and import.
//!
//! pg_hba.conf there lets members of `vecport_tls` in only over TLS and with a
//! password, members of `vecport_any` with a password with or without TLS,
//! and `vecport_cert` by its client certificate; so a success also proves
//! which transport was used.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tokio_postgres::{Client, NoTls};
use vecport::model::{RecordId, Vector};

use crate::conformance::read_snapshot;
use crate::support::cli::vecport;
use crate::support::{server_url, unique_name};

/// Variables of libpq that would change what these tests check.
const LIBPQ_ENV: &[&str] = &[
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
];

struct Server {
    admin: Client,
    port: u16,
    certs: PathBuf,
    /// A home directory of this test's own: no `~/.pgpass` or `~/.postgresql/` of the machine.
    home: tempfile::TempDir,
}

impl Server {
    async fn start() -> Option<Server> {
        let url = server_url("VECPORT_TEST_PG_TLS_URL")?;
        let certs = PathBuf::from(
            server_url("VECPORT_TEST_PG_TLS_DIR")
                .expect("VECPORT_TEST_PG_TLS_DIR is set with VECPORT_TEST_PG_TLS_URL"),
        );
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("VECPORT_TEST_PG_TLS_URL {url:?} has no port"));
        let (admin, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Some(Server {
            admin,
            port,
            certs,
            home: tempfile::tempdir().unwrap(),
        })
    }

    fn cert(&self, name: &str) -> String {
        self.certs.join(name).to_str().unwrap().to_owned()
    }

    /// `pgvector://USER@HOST:PORT/postgres[/TABLE]?PARAMS`.
    fn url(&self, user: &str, host: &str, table: Option<&str>, params: &str) -> String {
        let table = table.map(|t| format!("/{t}")).unwrap_or_default();
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!(
            "pgvector://{user}@{host}:{}/postgres{table}{query}",
            self.port
        )
    }

    /// vecport with libpq's variables cleared and this test's home directory.
    fn vecport(&self) -> Command {
        let mut c = vecport();
        for v in LIBPQ_ENV {
            c.env_remove(v);
        }
        c.env("HOME", self.home.path());
        c
    }

    /// A login role in `group` with a password holding `:` and `\`.
    async fn role(&self, group: &str) -> (String, String) {
        let name = unique_name("vecport_role").replace('-', "_");
        let password = format!("pw:{}\\x{}", fastrand::u64(..), fastrand::u32(..));
        self.admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}"
            ))
            .await
            .unwrap();
        (name, password)
    }

    async fn drop_role(&self, name: &str) {
        self.admin
            .batch_execute(&format!(
                "REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}; DROP ROLE {name}"
            ))
            .await
            .unwrap();
    }
}

/// `vecport ls URL` as `Server::vecport` runs it, with `env`; exit code, stdout, stderr.
fn ls(server: &Server, url: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = server.vecport();
    c.args(["ls", url]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_ok(what: &str, (code, _, stderr): &(i32, String, String)) {
    assert_eq!(*code, 0, "{what}: {stderr}");
}

fn assert_fails(what: &str, got: &(i32, String, String), code: i32, needles: &[&str]) {
    assert_eq!(got.0, code, "{what}: {}", got.2);
    for n in needles {
        assert!(got.2.contains(n), "{what}: {n:?} not in {}", got.2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_require_encrypts_and_disable_is_refused_by_a_tls_only_server() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, pw) = s.role("vecport_tls").await;
    let env = [("PGPASSWORD", pw.as_str())];
    // The role may log in only over TLS: success means TLS, and SCRAM over it.
    assert_ok(
        "require",
        &ls(
            &s,
            &s.url(&user, "127.0.0.1", None, "sslmode=require"),
            &env,
        ),
    );
    // libpq's default, prefer, uses TLS when the server offers it.
    assert_ok(
        "prefer",
        &ls(&s, &s.url(&user, "127.0.0.1", None, ""), &env),
    );
    assert_ok(
        "PGSSLMODE=require",
        &ls(
            &s,
            &s.url(&user, "127.0.0.1", None, ""),
            &[("PGPASSWORD", &pw), ("PGSSLMODE", "require")],
        ),
    );
    // allow: plain TCP first; refused there, it tries TLS, as libpq does.
    assert_ok(
        "allow",
        &ls(&s, &s.url(&user, "127.0.0.1", None, "sslmode=allow"), &env),
    );
    let plain = ls(
        &s,
        &s.url(&user, "127.0.0.1", None, "sslmode=disable"),
        &env,
    );
    assert_fails(
        "disable",
        &plain,
        5,
        &["no pg_hba.conf entry", "only over TLS", "sslmode=require"],
    );
    assert!(!plain.2.contains(&pw));
    s.drop_role(&user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_verify_full_checks_the_chain_and_the_host_name() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, pw) = s.role("vecport_tls").await;
    let env = [("PGPASSWORD", pw.as_str())];
    let ca = s.cert("ca.crt");
    let other = s.cert("other-ca.crt");
    let with = |host: &str, params: String| ls(&s, &s.url(&user, host, None, &params), &env);

    assert_ok(
        "verify-full with the CA",
        &with("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")),
    );
    assert_ok(
        "PGSSLMODE and PGSSLROOTCERT",
        &ls(
            &s,
            &s.url(&user, "127.0.0.1", None, ""),
            &[
                ("PGPASSWORD", &pw),
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", &ca),
            ],
        ),
    );
    assert_fails(
        "verify-full without a CA",
        &with("127.0.0.1", "sslmode=verify-full".into()),
        2,
        &[
            "sslmode=verify-full (sslmode in the URL)",
            "sslrootcert=PATH",
            "PGSSLROOTCERT",
        ],
    );
    assert_fails(
        "verify-full with another CA",
        &with(
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        4,
        &[
            "TLS handshake failed",
            "not signed by",
            "other-ca.crt",
            "sslrootcert",
        ],
    );
    // The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
    assert_fails(
        "verify-full with a host the certificate does not name",
        &with("127.0.0.2", format!("sslmode=verify-full&sslrootcert={ca}")),
        4,
        &["does not name the host", "sslmode=verify-ca"],
    );
    assert_ok(
        "verify-ca checks the chain only",
        &with("127.0.0.2", format!("sslmode=verify-ca&sslrootcert={ca}")),
    );
    assert_fails(
        "verify-ca with another CA",
        &with(
            "127.0.0.2",
            format!("sslmode=verify-ca&sslrootcert={other}"),
        ),
        4,
        &["not signed by"],
    );
    // libpq: with a root certificate, require checks as verify-ca does.
    assert_fails(
        "require with another CA",
        &with("127.0.0.1", format!("sslmode=require&sslrootcert={other}")),
        4,
        &["sslmode=require (sslmode in the URL)", "not signed by"],
    );
    // The system's CAs do not include the test CA; sslrootcert=system means verify-full.
    assert_fails(
        "sslrootcert=system",
        &with("127.0.0.1", "sslrootcert=system".into()),
        4,
        &[
            "sslmode=verify-full (the default with sslrootcert=system)",
            "system's trusted CAs",
        ],
    );
    assert_fails(
        "sslrootcert=system with require",
        &with("127.0.0.1", "sslrootcert=system&sslmode=require".into()),
        2,
        &["needs sslmode=verify-full"],
    );
    // libpq's default root certificate file.
    let dir = s.home.path().join(".postgresql");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&ca, dir.join("root.crt")).unwrap();
    assert_ok(
        "verify-full with ~/.postgresql/root.crt",
        &with("127.0.0.1", "sslmode=verify-full".into()),
    );
    std::fs::remove_file(dir.join("root.crt")).unwrap();
    s.drop_role(&user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_prefer_goes_on_without_tls_when_the_handshake_fails() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, pw) = s.role("vecport_any").await;
    let other = s.cert("other-ca.crt");
    // The certificate does not check out against the other CA: libpq's prefer
    // then connects without TLS, which this role may; vecport says so.
    let got = ls(
        &s,
        &s.url(&user, "127.0.0.1", None, &format!("sslrootcert={other}")),
        &[("PGPASSWORD", &pw)],
    );
    assert_ok("prefer", &got);
    assert!(
        got.2.contains("goes on without TLS") && got.2.contains("sslmode=require or verify-full"),
        "{}",
        got.2
    );
    s.drop_role(&user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_require_against_a_server_without_tls_says_so() {
    let Some(s) = Server::start().await else {
        return;
    };
    // The pgvector test server is built without TLS.
    let Some(plain) = crate::support::pgvector_url() else {
        return;
    };
    let got = ls(&s, &format!("{plain}?sslmode=require"), &[]);
    assert_fails(
        "require",
        &got,
        4,
        &[
            "does not accept TLS connections",
            "sslmode=require (sslmode in the URL)",
        ],
    );
    // prefer (the default) connects in plain text, as libpq does.
    assert_ok("prefer", &ls(&s, &plain, &[]));
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_client_certificates_log_in() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (ca, cert) = (s.cert("ca.crt"), s.cert("client.crt"));
    // A copy of the key: its permissions are changed below.
    let key = s.home.path().join("client.key");
    std::fs::copy(s.cert("client.key"), &key).unwrap();
    let key = key.to_str().unwrap().to_owned();
    let url = |params: &str| {
        s.url(
            "vecport_cert",
            "127.0.0.1",
            None,
            &format!("sslmode=verify-full&sslrootcert={ca}{params}"),
        )
    };
    assert_ok(
        "sslcert and sslkey",
        &ls(&s, &url(&format!("&sslcert={cert}&sslkey={key}")), &[]),
    );
    assert_ok(
        "PGSSLCERT and PGSSLKEY",
        &ls(&s, &url(""), &[("PGSSLCERT", &cert), ("PGSSLKEY", &key)]),
    );
    assert_fails(
        "no client certificate",
        &ls(&s, &url(""), &[]),
        5,
        &["refused the credentials", "certificate"],
    );
    assert_fails(
        "a certificate without its key",
        &ls(&s, &url(&format!("&sslcert={cert}")), &[]),
        2,
        &["has no private key", "sslkey=PATH"],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_fails(
            "a key others can read",
            &ls(&s, &url(&format!("&sslcert={cert}&sslkey={key}")), &[]),
            2,
            &["group or world access", "chmod 0600"],
        );
    }
}

/// A password file line for `user` on this server; `:` and `\` escaped.
fn pgpass_line(s: &Server, user: &str, password: &str) -> String {
    let esc = |v: &str| v.replace('\\', "\\\\").replace(':', "\\:");
    format!("127.0.0.1:{}:postgres:{user}:{}\n", s.port, esc(password))
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_pgpass_supplies_the_password_as_libpq_reads_it() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, pw) = s.role("vecport_tls").await;
    let url = s.url(&user, "127.0.0.1", None, "sslmode=require");
    let pgpass = s.home.path().join(".pgpass");
    // A line for another port first, a wildcard line that matches last: the first match wins.
    let text = format!(
        "# vecport test\n127.0.0.1:1:postgres:{user}:wrong\n{}*:*:*:*:also-wrong\n",
        pgpass_line(&s, &user, &pw)
    );
    write_private(&pgpass, &text, 0o600);
    assert_ok("~/.pgpass", &ls(&s, &url, &[]));

    // PGPASSWORD, when set, is used instead of the file.
    let got = ls(&s, &url, &[("PGPASSWORD", "not-the-password")]);
    assert_fails(
        "PGPASSWORD first",
        &got,
        5,
        &["password authentication failed", "PGPASSWORD"],
    );
    assert!(!got.2.contains("not-the-password") && !got.2.contains(&pw));

    // PGPASSFILE names another file; this one has the wrong password: the
    // error names the file and line, never the password.
    let elsewhere = s.home.path().join("passwords");
    write_private(&elsewhere, &pgpass_line(&s, &user, "stale:password"), 0o600);
    let got = ls(&s, &url, &[("PGPASSFILE", elsewhere.to_str().unwrap())]);
    assert_fails("PGPASSFILE", &got, 5, &["line 1 of", "passwords"]);
    assert!(
        !got.2.contains("stale") && !got.2.contains(&pw),
        "{}",
        got.2
    );

    // A file others can read is ignored, with a warning, as libpq does.
    #[cfg(unix)]
    {
        write_private(&pgpass, &text, 0o644);
        let got = ls(&s, &url, &[]);
        assert_fails(
            "a readable ~/.pgpass",
            &got,
            5,
            &[
                "is ignored",
                "chmod 0600",
                "no password was given",
                "PGPASSWORD",
            ],
        );
        assert!(!got.2.contains(&pw));
    }
    s.drop_role(&user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_wrong_password_exits_5_without_showing_it() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, _) = s.role("vecport_any").await;
    let wrong = "Wr0ng:Secret\\Value";
    for params in ["sslmode=disable", "sslmode=require", ""] {
        let mut c = s.vecport();
        c.args(["-vv", "ls", &s.url(&user, "127.0.0.1", None, params)])
            .env("PGPASSWORD", wrong);
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(5), "{params}: {stderr}");
        assert!(
            stderr.contains("refused the credentials")
                && stderr.contains("password authentication failed")
                && stderr.contains("PGPASSWORD"),
            "{params}: {stderr}"
        );
        assert!(
            !stderr.contains("Wr0ng") && !stdout.contains("Wr0ng"),
            "{params}: {stderr}"
        );
    }
    // No password at all: the hint says where one goes.
    let got = ls(&s, &s.url(&user, "127.0.0.1", None, "sslmode=disable"), &[]);
    assert_fails(
        "no password",
        &got,
        5,
        &[
            "no password was given",
            "PGPASSWORD",
            ".pgpass",
            "PGPASSFILE",
        ],
    );
    s.drop_role(&user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_tls_export_and_import_of_binary_vectors_over_verify_full() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (user, pw) = s.role("vecport_tls").await;
    let (source, target) = (
        unique_name("tls_bits").replace('-', "_"),
        unique_name("tls_bits_copy").replace('-', "_"),
    );
    // In a schema of the role's own (other tests list `public`), as the role.
    s.admin
        .batch_execute(&format!(
            "CREATE SCHEMA {user} AUTHORIZATION {user};
             SET ROLE {user};
             SET search_path = {user};
             CREATE TABLE {source} (id bigint PRIMARY KEY, code bit(20), metadata jsonb);
             INSERT INTO {source}
             SELECT g, (g * 40503 % 1048576)::bit(20), jsonb_build_object('g', g) FROM generate_series(1, 3000) g;
             INSERT INTO {source} VALUES (3001, NULL, NULL);
             RESET ROLE;
             RESET search_path;"
        ))
        .await
        .unwrap();
    let params = format!(
        "sslmode=verify-full&sslrootcert={}&schema={user}",
        s.cert("ca.crt")
    );
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    let run = |args: &[&str]| {
        let out = s
            .vecport()
            .env("PGPASSWORD", &pw)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "export",
        &s.url(&user, "127.0.0.1", Some(&source), &params),
        snap.to_str().unwrap(),
        "-q",
    ]);
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, 3001);
    let endpoint = snapshot
        .manifest()
        .source
        .endpoint
        .clone()
        .unwrap_or_default();
    assert_eq!(
        endpoint,
        format!("pgvector://{user}@127.0.0.1:{}/postgres", s.port)
    );
    let field = &c.vectors[0].field;
    assert_eq!(
        (
            field.name.as_str(),
            field.dimension,
            field.source_datatype.as_deref()
        ),
        ("code", Some(20), Some("bit"))
    );
    let seven = records.iter().find(|r| r.id == RecordId::Uint(7)).unwrap();
    let want: Vec<f32> = (0..20)
        // 7 * 40503 is below 2^20: the modulo of the SQL changes nothing.
        .map(|i| ((7u32 * 40503) >> (19 - i) & 1) as f32)
        .collect();
    assert_eq!(seven.vectors[0], Some(Vector::Dense(want)));
    let last = records
        .iter()
        .find(|r| r.id == RecordId::Uint(3001))
        .unwrap();
    assert_eq!(last.vectors[0], None);

    run(&[
        "import",
        snap.to_str().unwrap(),
        &s.url(&user, "127.0.0.1", Some(&target), &params),
        "-q",
    ]);
    let row = s
        .admin
        .query_one(
            &format!(
                "SELECT (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{user}.{target}'::regclass AND attname = 'code'),
                        (SELECT count(*) FROM {user}.{source} a FULL JOIN {user}.{target} b USING (id)
                         WHERE a.code IS DISTINCT FROM b.code OR a.metadata IS DISTINCT FROM b.metadata)"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "bit(20)");
    assert_eq!(row.get::<_, i64>(1), 0);
    s.admin
        .batch_execute(&format!("DROP SCHEMA {user} CASCADE"))
        .await
        .unwrap();
    s.drop_role(&user).await;
}
