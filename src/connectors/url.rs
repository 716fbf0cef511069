//! Database URLs: `SCHEME[+https|+http]://HOST[:PORT][/COLLECTION][?key=value…]`.
//! The scheme picks the connector; passwords never come from the URL.
//! `pgvector://USER@HOST:PORT/DATABASE[/TABLE]` alone takes a user name
//! (not a secret) and a two-segment path.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// A parsed database URL.
#[derive(Debug, Clone)]
pub struct ConnectorUrl {
    database: String,
    transport: Option<String>,
    url: url::Url,
    collection: Option<String>,
    path_database: Option<String>,
    query: BTreeMap<String, String>,
}

impl ConnectorUrl {
    /// Parses `text`. Refuses URLs that carry a password, so that secrets only
    /// come from environment variables.
    pub fn parse(text: &str) -> Result<ConnectorUrl> {
        if !text.contains("://") {
            return Err(Error::Usage(format!(
                "`{}` is not a valid URL: expected SCHEME://HOST[:PORT][/COLLECTION], e.g. chroma://localhost:8000/my-collection",
                redact_userinfo(text)
            )));
        }
        let url = url::Url::parse(text).map_err(|e| {
            Error::Usage(format!(
                "`{}` is not a valid URL ({e}); expected e.g. chroma://localhost:8000/my-collection",
                redact_userinfo(text)
            ))
        })?;
        // Whether the URL names a user (`USER@HOST`) and a database before
        // the collection, as the database's row in the registry says.
        let with_user = super::database(url.scheme()).is_some_and(|d| d.user_and_database);
        if url.password().is_some() || (!with_user && !url.username().is_empty()) {
            return Err(Error::Usage(format!(
                "`{}` carries credentials in the URL; pass them in the connector's environment variable instead (e.g. CHROMA_TOKEN, PGPASSWORD)",
                redact_userinfo(text)
            )));
        }
        let (database, transport) = match url.scheme().split_once('+') {
            Some((db, t)) => (db.to_owned(), Some(t.to_owned())),
            None => (url.scheme().to_owned(), None),
        };
        if let Some(t) = &transport
            && t != "http"
            && t != "https"
        {
            return Err(Error::Usage(format!(
                "`{}`: transport `{t}` is unknown; use `{database}://` (http) or `{database}+https://`",
                crate::redact::public_endpoint(&url)
            )));
        }
        let mut segments: Vec<String> = Vec::new();
        if let Some(parts) = url.path_segments() {
            for s in parts.filter(|s| !s.is_empty()) {
                let decoded = percent_decode_str(s).decode_utf8().map_err(|_| {
                    Error::Usage(format!(
                        "`{}`: the path is not valid UTF-8 once decoded",
                        crate::redact::public_endpoint(&url)
                    ))
                })?;
                segments.push(decoded.into_owned());
            }
        }
        let path_database = if with_user && !segments.is_empty() {
            Some(segments.remove(0))
        } else {
            None
        };
        if segments.len() > 1 {
            return Err(Error::Usage(format!(
                "`{}`: the path names more than one collection; percent-encode a `/` inside a name as %2F",
                crate::redact::public_endpoint(&url)
            )));
        }
        let query = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(ConnectorUrl {
            database,
            transport,
            collection: segments.pop(),
            path_database,
            url,
            query,
        })
    }

    /// The database kind: the scheme without `+https`.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The transport named after `+` in the scheme (`http`, `https`), if any.
    pub fn transport(&self) -> Option<&str> {
        self.transport.as_deref()
    }

    /// Whether the URL asks for TLS (`+https`).
    pub fn tls(&self) -> bool {
        self.transport.as_deref() == Some("https")
    }

    /// Host, when the URL has one.
    pub fn host(&self) -> Option<&str> {
        self.url.host_str()
    }

    /// The user named before `@` (only `pgvector://` URLs have one), percent-decoded.
    pub fn user(&self) -> Option<String> {
        let u = self.url.username();
        (!u.is_empty()).then(|| percent_decode_str(u).decode_utf8_lossy().into_owned())
    }

    /// The database named in the path before the collection (`pgvector://`).
    pub fn path_database(&self) -> Option<&str> {
        self.path_database.as_deref()
    }

    /// Port, when the URL has one.
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }

    /// The collection named in the path.
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }

    /// A query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// Refuses query parameters other than `allowed`.
    pub fn only_params(&self, allowed: &[&str]) -> Result<()> {
        for key in self.query.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(Error::Usage(format!(
                    "`{}`: unknown parameter `{key}`; {} takes {}",
                    self.public(),
                    self.database,
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    /// `http(s)://host:port` for HTTP connectors, with `default_port` when none is given.
    pub fn http_base(&self, default_port: u16) -> Result<String> {
        let host = self
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Usage(format!("`{}`: the URL names no host", self.public())))?;
        let scheme = if self.tls() { "https" } else { "http" };
        let port = self.port().unwrap_or(default_port);
        Ok(format!("{scheme}://{host}:{port}"))
    }

    /// The URL as it may be shown: no credentials (URLs with credentials are refused anyway).
    pub fn public(&self) -> String {
        crate::redact::public_endpoint(&self.url)
    }
}

/// Replaces the userinfo of a URL-like string with `***` and its query with
/// `…`, for messages about URLs that failed to parse: neither may hold
/// anything the user wants shown.
fn redact_userinfo(text: &str) -> String {
    let text = match text.split_once('?') {
        Some((before, _)) => format!("{before}?…"),
        None => text.to_owned(),
    };
    if let Some((scheme, rest)) = text.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connector_urls() {
        let u = ConnectorUrl::parse("chroma://localhost:8000/docs?tenant=t&database=d").unwrap();
        assert_eq!(u.database(), "chroma");
        assert!(!u.tls());
        assert_eq!(u.collection(), Some("docs"));
        assert_eq!(u.param("tenant"), Some("t"));
        assert_eq!(u.http_base(1).unwrap(), "http://localhost:8000");

        let u = ConnectorUrl::parse("chroma+https://db.example.com/a%2Fb").unwrap();
        assert!(u.tls());
        assert_eq!(u.collection(), Some("a/b"));
        assert_eq!(u.http_base(8000).unwrap(), "https://db.example.com:8000");

        let u = ConnectorUrl::parse("chroma://h:1/").unwrap();
        assert_eq!(u.collection(), None);
        let u = ConnectorUrl::parse("chroma://h:1/caf%C3%A9").unwrap();
        assert_eq!(u.collection(), Some("café"));
    }

    #[test]
    fn refuses_bad_urls() {
        for (bad, needle) in [
            ("localhost:8000", "not a valid URL"),
            ("chroma://h:1/a/b", "more than one collection"),
            ("chroma+ftp://h:1", "transport `ftp`"),
            ("chroma://user:hunter2@h:1/c", "carries credentials"),
            ("chroma://h:99999", "not a valid URL"),
            ("chroma://user@h:1/c", "carries credentials"),
            (
                "pgvector://postgres:hunter2@h:1/db/t",
                "carries credentials",
            ),
            ("pgvector://u@h:1/db/t/x", "more than one collection"),
        ] {
            let err = ConnectorUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let u = ConnectorUrl::parse("chroma://h:1/c?tenat=x").unwrap();
        assert!(
            u.only_params(&["tenant", "database"])
                .unwrap_err()
                .to_string()
                .contains("tenat")
        );
    }

    #[test]
    fn pgvector_urls_name_user_database_and_table() {
        let u =
            ConnectorUrl::parse("pgvector://postgres@127.0.0.1:5433/app/items?schema=s").unwrap();
        assert_eq!(u.user().as_deref(), Some("postgres"));
        assert_eq!(u.path_database(), Some("app"));
        assert_eq!(u.collection(), Some("items"));
        assert_eq!(u.param("schema"), Some("s"));
        let u = ConnectorUrl::parse("pgvector://h/app").unwrap();
        assert_eq!(
            (u.user(), u.path_database(), u.collection()),
            (None, Some("app"), None)
        );
        assert!(!u.public().contains('@'));
    }

    #[test]
    fn failed_parse_hides_password() {
        let err = ConnectorUrl::parse("chroma://u:s3cret@[bad/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn messages_never_show_the_query() {
        for bad in [
            "chroma://h:99999/c?token=s3cret",
            "chroma+ftp://h:1/c?token=s3cret",
            "chroma://h:1/a/b?token=s3cret",
            "chroma://u:pw@h:1/c?token=s3cret",
        ] {
            let err = ConnectorUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
        let u = ConnectorUrl::parse("chroma://h:1/c?token=s3cret").unwrap();
        let err = u.only_params(&[]).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
