//! Secrets that cannot leak: API keys and tokens live in [`Secret`], whose
//! `Debug` and `Display` never show the value, and endpoints are reduced to
//! their credential-free form by [`public_endpoint`] before they are logged,
//! put in an error or written to a manifest. As a last line of defence,
//! [`scrub`] removes every secret this process holds from text it prints
//! (a server that echoes the request's headers in its error message, say),
//! in every encoding a server plausibly echoes it in; [`excerpt`] cuts a
//! server's text for a message only after scrubbing it, so that a cut never
//! leaves the first half of a secret behind.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
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

/// One secret, prepared for finding it in text.
struct Known {
    /// The characters of the secret, each of which may appear in text as it
    /// is or escaped (see [`char_ends`]).
    chars: Vec<char>,
    /// The base64 characters that depend on the secret's bytes alone, at each
    /// of the three byte alignments it can have inside a longer encoded text
    /// (`user:token` in a Basic header), in the standard and URL-safe alphabets.
    base64: Vec<String>,
    /// The secret's bytes in lower-case hexadecimal.
    hex: String,
}

/// Every secret of this process.
static KNOWN: LazyLock<RwLock<Vec<Known>>> = LazyLock::new(Default::default);

fn remember(value: &str) {
    if value.len() < MIN_SCRUBBED {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    let chars: Vec<char> = value.chars().collect();
    if known.iter().any(|k| k.chars == chars) {
        return;
    }
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut base64 = Vec::new();
    for lead in 0..3usize {
        let mut bytes = vec![0u8; lead];
        bytes.extend_from_slice(value.as_bytes());
        // Characters whose six bits come from the secret's bytes only.
        let first = (8 * lead).div_ceil(6);
        let last = 8 * (lead + value.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            let core = &encoded[first..last.min(encoded.len())];
            if core.len() >= MIN_SCRUBBED && !base64.iter().any(|c| c == core) {
                base64.push(core.to_owned());
            }
        }
    }
    let hex = value.bytes().map(|b| format!("{b:02x}")).collect();
    known.push(Known { chars, base64, hex });
}

/// `text` with every secret this process holds (see [`Secret::new`])
/// replaced by [`REDACTED`]: as it is, and in each form a server may echo it
/// in — JSON escapes (`\/`, `\u0041`, doubled backslashes of JSON inside
/// JSON), percent-encoding (also twice), `\x41` escapes, HTML character
/// references, `+` for a space, base64 of the secret or of a longer text
/// holding it (`user:token`), hexadecimal — and any mixture of these.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    if known.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut found: Vec<Range<usize>> = Vec::new();
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    for k in known.iter() {
        let first = k.chars[0];
        let mut i = 0;
        while i < bytes.len() {
            if !may_begin(bytes[i], first) {
                i += 1;
                continue;
            }
            match match_at(bytes, i, &k.chars) {
                Match::Whole(end) => {
                    found.push(i..end);
                    i = end;
                }
                Match::Partial | Match::No => i += 1,
            }
        }
        for core in &k.base64 {
            for (at, _) in text.match_indices(core.as_str()) {
                found.push(base64_run(bytes, at..at + core.len()));
            }
        }
        for (at, _) in lower.match_indices(k.hex.as_str()) {
            found.push(at..at + k.hex.len());
        }
    }
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(replace(text, found))
}

/// At most `max_chars` characters of `text` (a server's answer) for a
/// message, with `…` when cut: scrubbed first, then cut, and a tail that
/// could be the beginning of a secret cut off too.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    // A secret inside the excerpt, in any encoding, ends within this many
    // bytes of the excerpt's end.
    const SLACK: usize = 64 << 10;
    let cut = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    let mut window = (cut + SLACK).min(text.len());
    while !text.is_char_boundary(window) {
        window -= 1;
    }
    let clean = scrub(&text[..window]);
    let mut out: String = clean.chars().take(max_chars).collect();
    if clean.chars().nth(max_chars).is_some() || window < text.len() {
        let keep = unfinished_tail(&out);
        out.truncate(keep);
        out.push('…');
    }
    out
}

/// Where a tail of `text` begins that is the beginning of a secret (in any
/// form): the text's length when there is none.
fn unfinished_tail(text: &str) -> usize {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        if !text.is_char_boundary(i) || !known.iter().any(|k| may_begin(bytes[i], k.chars[0])) {
            continue;
        }
        if known
            .iter()
            .any(|k| matches!(match_at(bytes, i, &k.chars), Match::Partial))
        {
            return i;
        }
    }
    bytes.len()
}

/// `text` with the byte ranges `found` (overlapping or not) replaced by
/// [`REDACTED`].
fn replace(text: &str, mut found: Vec<Range<usize>>) -> String {
    found.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
    for r in found {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in merged {
        out.push_str(&text[at..r.start]);
        out.push_str(REDACTED);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The whole run of base64 characters around `core`: the characters beside
/// it carry bits of the secret too.
fn base64_run(bytes: &[u8], core: Range<usize>) -> Range<usize> {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    let mut start = core.start;
    while start > 0 && is_b64(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = core.end;
    while end < bytes.len() && is_b64(bytes[end]) {
        end += 1;
    }
    while end < bytes.len() && bytes[end] == b'=' {
        end += 1;
    }
    start..end
}

/// Whether character `c` in any of its forms can begin with byte `b`.
fn may_begin(b: u8, c: char) -> bool {
    let mut utf8 = [0u8; 4];
    b == c.encode_utf8(&mut utf8).as_bytes()[0]
        || matches!(b, b'\\' | b'%' | b'&')
        || (b == b'+' && c == ' ')
}

/// Whether a secret begins at byte `at` of `text`.
enum Match {
    /// The whole secret, ending at this byte.
    Whole(usize),
    /// Its beginning, up to the end of the text.
    Partial,
    No,
}

/// Whether `secret`, each character as it is or in any of the forms
/// [`char_ends`] knows, begins at byte `at` of `text`: the longest match.
fn match_at(text: &[u8], at: usize, secret: &[char]) -> Match {
    let mut positions = vec![at];
    let mut next = Vec::new();
    // Whether some way of reading ran into the end of the text.
    let mut partial = false;
    for (n, &c) in secret.iter().enumerate() {
        next.clear();
        for &p in &positions {
            // The text ends within the secret, or within an escape of its next character.
            let rest = &text[p..];
            if n > 0
                && (rest.is_empty() || (rest.len() <= 12 && matches!(rest[0], b'\\' | b'%' | b'&')))
            {
                partial = true;
            }
            char_ends(text, p, c, &mut next);
        }
        if next.is_empty() {
            return if partial { Match::Partial } else { Match::No };
        }
        next.sort_unstable();
        next.dedup();
        std::mem::swap(&mut positions, &mut next);
    }
    Match::Whole(*positions.iter().max().expect("not empty"))
}

/// Pushes onto `ends` every byte position where character `c`, written at
/// `p` in one of the forms below, ends:
///
/// - as it is, or after backslashes (`\/`, `\"` of JSON, `\\\/` of JSON in JSON);
/// - a run of backslashes for a backslash;
/// - `\uXXXX` (a surrogate pair beyond the BMP) after any run of backslashes;
/// - `&#NN;`, `&#xHH;`, `&amp;` and the other XML entities;
/// - `+` for a space (form encoding);
/// - each UTF-8 byte as itself, `%HH` (`%25HH` twice encoded) or `\xHH`.
fn char_ends(t: &[u8], p: usize, c: char, ends: &mut Vec<usize>) {
    if p >= t.len() {
        return;
    }
    let mut utf8 = [0u8; 4];
    let encoded = c.encode_utf8(&mut utf8).as_bytes();
    if t[p..].starts_with(encoded) {
        ends.push(p + encoded.len());
    }
    let slashes = t[p..].iter().take_while(|&&b| b == b'\\').count();
    if slashes > 0 {
        let q = p + slashes;
        if c == '\\' {
            ends.extend((1..=slashes).map(|k| p + k));
        }
        if t[q..].starts_with(encoded) {
            ends.push(q + encoded.len());
        }
        let mut units = [0u16; 2];
        let units = c.encode_utf16(&mut units);
        if let Some(end) = utf16_escapes(t, p, units) {
            ends.push(end);
        }
    }
    if t[p] == b'&'
        && let Some(end) = entity(t, p, c)
    {
        ends.push(end);
    }
    if c == ' ' && t[p] == b'+' {
        ends.push(p + 1);
    }
    // Byte by byte, each byte in any of its forms.
    let mut at = vec![p];
    for &b in encoded {
        let mut after = Vec::new();
        for &q in &at {
            byte_ends(t, q, b, &mut after);
        }
        if after.is_empty() {
            return;
        }
        at = after;
    }
    ends.extend(at);
}

/// `\uXXXX` escapes (after any run of backslashes each) of `units`, from `p`.
fn utf16_escapes(t: &[u8], mut p: usize, units: &[u16]) -> Option<usize> {
    for &unit in units {
        let slashes = t[p..].iter().take_while(|&&b| b == b'\\').count();
        if slashes == 0 || t.get(p + slashes) != Some(&b'u') {
            return None;
        }
        let q = p + slashes + 1;
        if hex_value(t.get(q..q + 4)?)? != u32::from(unit) {
            return None;
        }
        p = q + 4;
    }
    Some(p)
}

/// Where byte `b` written at `p` as itself, as `%HH` (`%25HH`, …) or as
/// `\xHH` ends.
fn byte_ends(t: &[u8], p: usize, b: u8, ends: &mut Vec<usize>) {
    if p >= t.len() {
        return;
    }
    if b >= 0x80 && t[p] == b {
        ends.push(p + 1);
    }
    if t[p] == b'%' {
        let mut q = p + 1;
        while t[q..].starts_with(b"25") && t.get(q + 2..q + 4).and_then(hex_value).is_some() {
            q += 2;
        }
        if t.get(q..q + 2).and_then(hex_value) == Some(u32::from(b)) {
            ends.push(q + 2);
        }
    }
    let slashes = t[p..].iter().take_while(|&&x| x == b'\\').count();
    if slashes > 0 && t.get(p + slashes) == Some(&b'x') {
        let q = p + slashes + 1;
        if t.get(q..q + 2).and_then(hex_value) == Some(u32::from(b)) {
            ends.push(q + 2);
        }
    }
}

/// An XML/HTML character reference for `c` at `p`: where it ends.
fn entity(t: &[u8], p: usize, c: char) -> Option<usize> {
    let rest = &t[p + 1..];
    let semi = rest.iter().take(10).position(|&b| b == b';')?;
    let body = &rest[..semi];
    let value = if let Some(hex) = body.strip_prefix(b"#x").or(body.strip_prefix(b"#X")) {
        hex_value(hex)?
    } else if let Some(dec) = body.strip_prefix(b"#") {
        std::str::from_utf8(dec).ok()?.parse().ok()?
    } else {
        match body {
            b"amp" => '&' as u32,
            b"lt" => '<' as u32,
            b"gt" => '>' as u32,
            b"quot" => '"' as u32,
            b"apos" => '\'' as u32,
            _ => return None,
        }
    };
    (value == c as u32).then_some(p + 1 + semi + 1)
}

/// The value of hexadecimal digits (either case); `None` for anything else.
fn hex_value(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |v, &d| (d as char).to_digit(16).map(|x| v * 16 + x))
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

    /// Every way a server was seen, or could plausibly, echo a token.
    #[test]
    fn scrub_finds_escaped_and_encoded_forms() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let token = "Tk/9Secret+key=ü";
        let _s = Secret::new(token);
        let json = serde_json::to_string(token).unwrap();
        let ascii_json = "Tk\\/9Secret+key=\\u00fc";
        let forms = [
            json.trim_matches('"').to_owned(),
            "Tk\\/9Secret+key=\\u00FC".to_owned(),
            ascii_json.to_owned(),
            // JSON inside a JSON string: every backslash doubled.
            ascii_json.replace('\\', "\\\\"),
            "\\u0054\\u006b\\u002f9Secret\\u002bkey\\u003d\\u00fc".to_owned(),
            "Tk%2F9Secret%2Bkey%3D%C3%BC".to_owned(),
            "Tk%2f9Secret%2bkey%3d%c3%bc".to_owned(),
            "Tk%252F9Secret%252Bkey%253D%25C3%25BC".to_owned(),
            "Tk\\x2f9Secret\\x2bkey\\x3d\\xc3\\xbc".to_owned(),
            "Tk&#47;9Secret&#x2B;key&#61;&#252;".to_owned(),
            STANDARD.encode(token),
            URL_SAFE_NO_PAD.encode(token),
            format!("Basic {}", STANDARD.encode(format!("user:{token}"))),
            format!("Basic {}", STANDARD.encode(format!("u:{token}"))),
            format!("Basic {}", STANDARD.encode(format!("us:{token}"))),
            token.bytes().map(|b| format!("{b:02X}")).collect(),
        ];
        for form in forms {
            let text = format!("{{\"error\":\"bad token {form} given\"}}");
            let clean = scrub(&text);
            assert!(clean.contains(REDACTED), "{form} not found in {text}");
            for piece in ["Secret", "U2VjcmV0", "ZWNyZX", "NlY3Jl", "536563726574"] {
                assert!(!clean.contains(piece), "{piece} of {form} left in {clean}");
            }
            assert!(clean.starts_with("{\"error\":\"bad token "), "{clean}");
            assert!(clean.ends_with(" given\"}"), "{clean}");
        }
        // Text that merely resembles it stays.
        assert_eq!(scrub("Tk/9Secre+key"), "Tk/9Secre+key");
        assert_eq!(scrub("a\\/b %2F &amp; +"), "a\\/b %2F &amp; +");
    }

    #[test]
    fn excerpt_scrubs_before_it_cuts() {
        let token = "cutSecretToken-42";
        let _s = Secret::new(token);
        for at in [480, 490, 495, 499, 500, 501] {
            for form in [token.to_owned(), token.replace('-', "\\u002d")] {
                let text = format!("{}{form}{}", "x".repeat(at), "y".repeat(600));
                let cut = excerpt(&text, 500);
                assert!(cut.ends_with('…'), "{cut}");
                assert!(cut.chars().count() <= 501);
                for n in 3..token.len() {
                    assert!(
                        !cut.trim_end_matches('…').ends_with(&token[..n]),
                        "a prefix of the token is left at {at}: {cut}"
                    );
                }
                assert!(!cut.contains("Secret"), "{cut}");
            }
        }
        // The token's first characters at the very end, in an escape cut short.
        let cut = excerpt(
            &format!("{}cutSecret\\u00{}", "x".repeat(490), "z".repeat(100)),
            500,
        );
        assert!(!cut.contains("cutSecret"), "{cut}");
        // Short text is left as it is.
        assert_eq!(excerpt("short answer", 500), "short answer");
        assert_eq!(
            excerpt(&"é".repeat(600), 500),
            format!("{}…", "é".repeat(500))
        );
    }

    #[test]
    fn endpoint_drops_credentials() {
        let u = url::Url::parse("https://me:pw@host:1/p?token=x#f").unwrap();
        assert_eq!(public_endpoint(&u), "https://host:1/p");
    }
}
