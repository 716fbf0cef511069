//! Secrets that cannot leak: API keys and tokens live in [`Secret`], whose
//! `Debug` and `Display` never show the value, and endpoints are reduced to
//! their credential-free form by [`public_endpoint`] before they are logged,
//! put in an error or written to a manifest.

use std::fmt;

/// An API key or token. Only [`Secret::expose`] gives the value, at the place
/// it goes into a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads a secret from an environment variable; an empty value counts as unset.
    pub fn from_env(var: &str) -> Option<Secret> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
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
    fn endpoint_drops_credentials() {
        let u = url::Url::parse("https://me:pw@host:1/p?token=x#f").unwrap();
        assert_eq!(public_endpoint(&u), "https://host:1/p");
    }
}
