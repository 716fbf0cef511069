//! libpq's password file: `PGPASSFILE`, else `~/.pgpass`, read as libpq
//! reads it (PostgreSQL documentation, "The Password File").
//!
//! Each line is `hostname:port:database:username:password`; a field `*`
//! matches anything, `\:` and `\\` stand for `:` and `\`, lines starting with
//! `#` are comments, and the first line that matches wins. On Unix a file
//! that the group or others may read or write is ignored with a warning, as
//! libpq does. `PGPASSWORD`, when set, is used instead of the file.

use std::path::{Path, PathBuf};

use crate::redact::Secret;

/// Environment variable naming the password file.
pub const PASSFILE_ENV: &str = "PGPASSFILE";
/// The password file in the home directory when `PGPASSFILE` is unset.
pub const DEFAULT_PASSFILE: &str = ".pgpass";

/// The connection a password is looked up for, as libpq compares it: the
/// host as written in the URL, the port as a decimal number.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Host name or address, without the brackets of an IPv6 address.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: &'a str,
    /// User name.
    pub user: &'a str,
}

/// A password found in a password file, and where.
#[derive(Debug, Clone)]
pub struct Found {
    /// The password.
    pub password: Secret,
    /// The file it came from.
    pub file: PathBuf,
    /// Its line, counted from 1.
    pub line: usize,
}

/// The password file libpq would read: `PGPASSFILE`, else `.pgpass` in the
/// home directory.
pub fn path() -> Option<PathBuf> {
    match std::env::var_os(PASSFILE_ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => super::home_dir().map(|h| h.join(DEFAULT_PASSFILE)),
    }
}

/// Looks `target` up in the password file ([`path`]). A missing file is no
/// password; an unsafe or unreadable one is ignored with a warning.
pub fn lookup(target: &Target<'_>) -> Option<Found> {
    let file = path()?;
    lookup_in(&file, target)
}

/// Looks `target` up in `file`, with libpq's checks of the file.
pub fn lookup_in(file: &Path, target: &Target<'_>) -> Option<Found> {
    let meta = std::fs::metadata(file).ok()?;
    if let Err(why) = usable(&meta) {
        tracing::warn!(
            "password file {} is ignored: {why} (as libpq does)",
            file.display()
        );
        return None;
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("password file {} is ignored: {e}", file.display());
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let (password, line) = find(&text, target)?;
    Some(Found {
        password: Secret::new(password),
        file: file.to_owned(),
        line,
    })
}

/// Why libpq would not read a file with this metadata.
fn usable(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("it is not a plain file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "it has group or world access (mode {:04o}); permissions should be u=rw (0600) or less: chmod 0600 it",
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The password of the first line of `text` that matches `target`, and
/// that line's number (from 1).
pub fn find(text: &str, target: &Target<'_>) -> Option<(String, usize)> {
    let port = target.port.to_string();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = [target.host, &port, target.database, target.user]
            .iter()
            .try_fold(line, |rest, value| match_field(rest, value));
        if let Some(rest) = rest {
            return Some((unescape_password(rest), i + 1));
        }
    }
    None
}

/// Matches the first field of `line` against `value`, giving the rest of the
/// line after the field's `:`; libpq's `pwdfMatchesString`.
fn match_field<'a>(line: &'a str, value: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = line.char_indices();
    let mut want = value.chars();
    while let Some((at, c)) = chars.next() {
        let (c, escaped) = if c == '\\' {
            match chars.next() {
                Some((_, next)) => (next, true),
                None => return None,
            }
        } else {
            (c, false)
        };
        let remaining = want.clone().next();
        if c == ':' && !escaped && remaining.is_none() {
            return Some(&line[at + 1..]);
        }
        if want.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password field: up to the next unescaped `:`, escapes removed.
fn unescape_password(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Target<'static> = Target {
        host: "db.example.com",
        port: 5432,
        database: "shop",
        user: "app",
    };

    #[test]
    fn the_first_matching_line_wins() {
        let text = "# comment\n\
                    other:5432:shop:app:no\n\
                    db.example.com:5432:shop:app:first\n\
                    db.example.com:5432:shop:app:second\n";
        assert_eq!(find(text, &T), Some(("first".into(), 3)));
    }

    #[test]
    fn stars_match_any_value_but_only_as_a_whole_field() {
        assert_eq!(find("*:*:*:*:pw", &T), Some(("pw".into(), 1)));
        assert_eq!(find("*:5432:*:app:pw", &T), Some(("pw".into(), 1)));
        assert_eq!(find("*:5433:*:app:pw", &T), None);
        assert_eq!(find("db.*:5432:shop:app:pw", &T), None);
        assert_eq!(find("*:5432:shop:*:pw", &T), Some(("pw".into(), 1)));
        // A password `*` is the password `*`.
        assert_eq!(find("*:*:*:*:*", &T), Some(("*".into(), 1)));
    }

    #[test]
    fn every_field_must_match_exactly() {
        assert_eq!(find("db.example.com:5432:shop:apps:pw", &T), None);
        assert_eq!(find("db.example.com:5432:shop:ap:pw", &T), None);
        assert_eq!(find("db.example.com:5432:sho:app:pw", &T), None);
        assert_eq!(find("DB.example.com:5432:shop:app:pw", &T), None);
        assert_eq!(find("db.example.com:5432:shop:app", &T), None);
        assert_eq!(find("db.example.com:5432:shop", &T), None);
    }

    #[test]
    fn backslashes_escape_colons_and_backslashes() {
        let user = Target {
            user: "we:ird\\name",
            ..T
        };
        assert_eq!(
            find("*:*:*:we\\:ird\\\\name:p\\:a\\\\ss", &user),
            Some(("p:a\\ss".into(), 1))
        );
        // The password ends at the first unescaped colon.
        assert_eq!(find("*:*:*:*:pass:word", &T), Some(("pass".into(), 1)));
        // A trailing backslash stays.
        assert_eq!(find("*:*:*:*:pass\\", &T), Some(("pass\\".into(), 1)));
        // An escaped ordinary character is that character.
        assert_eq!(find("*:*:*:\\app:pw", &T), Some(("pw".into(), 1)));
    }

    #[test]
    fn ipv6_hosts_match_with_or_without_escapes() {
        let v6 = Target { host: "::1", ..T };
        assert_eq!(
            find("\\:\\:1:5432:shop:app:pw", &v6),
            Some(("pw".into(), 1))
        );
        // libpq compares an unescaped `:` with the host's own `:` too.
        assert_eq!(find("::1:5432:shop:app:pw", &v6), Some(("pw".into(), 1)));
    }

    #[test]
    fn carriage_returns_comments_and_blank_lines() {
        let text = "\r\n#*:*:*:*:commented\n\n*:*:*:*:crlf\r\n";
        assert_eq!(find(text, &T), Some(("crlf".into(), 4)));
        assert_eq!(find("", &T), None);
        // An empty password is a password.
        assert_eq!(find("*:*:*:*:", &T), Some((String::new(), 1)));
    }

    #[test]
    fn files_others_can_read_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:*:app:secret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(lookup_in(&file, &T).is_none());
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let found = lookup_in(&file, &T).unwrap();
        assert_eq!(found.password.expose(), "secret");
        assert_eq!(found.line, 1);
        assert!(lookup_in(&dir.path().join("missing"), &T).is_none());
        // A directory is not a password file.
        assert!(lookup_in(dir.path(), &T).is_none());
    }
}
