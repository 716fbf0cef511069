//! Secrets that cannot leak: API keys and tokens live in [`Secret`], whose
//! `Debug` and `Display` never show the value, and endpoints are reduced to
//! their credential-free form by [`public_endpoint`] before they are logged,
//! put in an error or written to a manifest. As a last line of defence,
//! [`scrub`] removes every secret this process holds from text it prints
//! (a server that echoes the request's headers in its error message, say).

use std::borrow::Cow;
use std::fmt;
use std::sync::{LazyLock, RwLock};

use base64::Engine as _;

/// An API key or token. Only [`Secret::expose`] gives the value, at the place
/// it goes into a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value, and remembers it for [`scrub`].
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        remember(&value);
        Secret(value)
    }

    /// Reads a secret from an environment variable; an empty value counts as unset.
    pub fn from_env(var: &str) -> Option<Secret> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    }

    /// The value, for a request header. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secrets shorter than this are not scrubbed from text: they would match
/// ordinary words.
const MIN_SCRUBBED: usize = 4;

/// What [`scrub`] replaces a secret with.
pub const REDACTED: &str = "<redacted>";

/// Every secret of this process, in each form it could take in text: as
/// it is, percent-encoded, and in base64 (standard and URL-safe).
static KNOWN: LazyLock<RwLock<Vec<String>>> = LazyLock::new(Default::default);

fn remember(value: &str) {
    if value.len() < MIN_SCRUBBED {
        return;
    }
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // Encoders differ in what they leave alone; these two cover the usual ones.
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let standard = base64::engine::general_purpose::STANDARD.encode(value);
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    for form in [
        value.to_owned(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(value, UNRESERVED).to_string(),
        standard.trim_end_matches('=').to_owned(),
        url_safe,
    ] {
        if !known.contains(&form) {
            known.push(form);
        }
    }
    // Longest first, so that a secret inside a longer one is not cut out first.
    known.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// `text` with every secret this process holds (see [`Secret::new`]), in
/// any of its forms, replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for s in known.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// The URL with user, password, query and fragment removed: what may be shown
/// and stored. `https://user:pw@host:1/p?token=x` → `https://host:1/p`.
pub fn public_endpoint(url: &url::Url) -> String {
    let mut clean = url.clone();
    // Both setters only fail for URLs that cannot have credentials, which then have none.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.set_query(None);
    clean.set_fragment(None);
    clean.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats() {
        let s = Secret::new("sk-123");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("sk-123"));
        assert_eq!(s.expose(), "sk-123");
    }

    #[test]
    fn scrub_removes_every_form_of_a_secret() {
        let s = Secret::new("sk-scrub/me+9");
        let text = format!(
            "401: bad key sk-scrub/me+9 (sk-scrub%2Fme%2B9, {}, {})",
            base64::engine::general_purpose::STANDARD.encode(s.expose()),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.expose())
        );
        let clean = scrub(&text);
        assert!(!clean.contains("scrub"), "{clean}");
        assert!(!clean.contains("c2stc2NydWIvbWUrOQ"), "{clean}");
        assert_eq!(clean.matches(REDACTED).count(), 4, "{clean}");
        // Other tests of this process hold secrets of their own: a text none of
        // them can be in.
        assert!(matches!(scrub("0 1 2 3"), Cow::Borrowed(_)));
        let _short = Secret::new("abc");
        assert_eq!(scrub("abc"), "abc", "too short to scrub");
    }

    #[test]
    fn endpoint_drops_credentials() {
        let u = url::Url::parse("https://me:pw@host:1/p?token=x#f").unwrap();
        assert_eq!(public_endpoint(&u), "https://host:1/p");
    }
}
