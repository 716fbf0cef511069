//! A forward-only reader over a JSON response, for the responses that carry
//! vectors. The connector walks the structure by hand (objects, arrays, keys),
//! vectors are parsed straight into `f32`s by [`crate::connectors::floats`],
//! and every other value (ids, payloads, metadata) is handed to serde_json in
//! place. Each byte is read once: unlike capturing vectors as `RawValue`s,
//! there is no validation pass ahead of the parse.
//!
//! Errors are plain messages with the byte offset in the document; callers
//! add which record they were reading.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::connectors::floats::{NumberError, parse_f32_token, short_decimal_run};

/// A position in a JSON document.
pub struct JsonCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type Result<T> = std::result::Result<T, String>;

impl<'a> JsonCursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> JsonCursor<'a> {
        JsonCursor { bytes, pos: 0 }
    }

    /// The byte offset of the cursor.
    pub fn offset(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` if it comes next.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        // Compact JSON has no whitespace: look before skipping any.
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            return true;
        }
        if self.peek() == Some(byte) {
            self.pos += 1;
            return true;
        }
        false
    }

    /// Consumes `byte`, which must come next.
    pub fn expect(&mut self, byte: u8) -> Result<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", char::from(byte))))
        }
    }

    /// An error saying what was expected and what is there.
    pub fn unexpected(&mut self, expected: &str) -> String {
        self.ws();
        match self.bytes.get(self.pos..) {
            Some([]) | None => format!("expected {expected}, found the end of the document"),
            Some(rest) => format!(
                "expected {expected}, found {} at byte {}",
                excerpt(rest),
                self.pos
            ),
        }
    }

    /// The first byte inside the array that comes next (`[` for an array of
    /// arrays, `]` for an empty one), not consumed; `None` when no array
    /// comes next.
    pub fn peek_in_array(&mut self) -> Option<u8> {
        if self.peek() != Some(b'[') {
            return None;
        }
        let at = self.pos;
        self.pos += 1;
        let first = self.peek();
        self.pos = at;
        first
    }

    /// Consumes `null` if it comes next.
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// Reads an object, calling `each` with the cursor on every member's value,
    /// which `each` must consume.
    pub fn object(
        &mut self,
        mut each: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.key()?;
            self.expect(b':')?;
            each(self, key)?;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}').map_err(|_| self.unexpected("`,` or `}`"));
        }
    }

    /// Reads an array, calling `each` with the cursor on every element, which
    /// `each` must consume. Returns the number of elements.
    pub fn array(&mut self, mut each: impl FnMut(&mut Self, usize) -> Result<()>) -> Result<usize> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(0);
        }
        let mut n = 0;
        loop {
            each(self, n)?;
            n += 1;
            if self.eat(b',') {
                continue;
            }
            return self
                .expect(b']')
                .map(|()| n)
                .map_err(|_| self.unexpected("`,` or `]`"));
        }
    }

    /// An object key: borrowed when it has no escapes.
    fn key(&mut self) -> Result<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a key"));
        }
        let start = self.pos + 1;
        let end = self.bytes[start..]
            .iter()
            .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
            .map(|n| start + n);
        if let Some(end) = end.filter(|e| self.bytes[*e] == b'"') {
            let key = std::str::from_utf8(&self.bytes[start..end])
                .map_err(|_| format!("a key that is not UTF-8 at byte {start}"))?;
            self.pos = end + 1;
            return Ok(Cow::Borrowed(key));
        }
        self.value::<String>().map(Cow::Owned)
    }

    /// Deserializes the next value with serde_json, in place.
    pub fn value<T: Deserialize<'a>>(&mut self) -> Result<T> {
        self.ws();
        let start = self.pos;
        let mut values =
            serde_json::Deserializer::from_slice(&self.bytes[start..]).into_iter::<T>();
        match values.next() {
            Some(Ok(v)) => {
                self.pos = start + values.byte_offset();
                Ok(v)
            }
            Some(Err(e)) => {
                // serde_json's line and column count from `start`.
                let text = e.to_string();
                let message = text.rsplit_once(" at line ").map_or(&*text, |(m, _)| m);
                Err(if e.line() == 1 {
                    format!("{message} at byte {}", start + e.column().saturating_sub(1))
                } else {
                    format!("{message} in the value at byte {start}")
                })
            }
            None => Err(self.unexpected("a value")),
        }
    }

    /// Skips the next value (checking that it is JSON).
    pub fn skip(&mut self) -> Result<()> {
        self.value::<IgnoredAny>().map(|_| ())
    }

    /// Reads `[n, n, …]`, appending the numbers to `out` as `f32`s.
    pub fn f32_array_into(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(());
        }
        // Numbers the fast run did not take; after one that stopped it at
        // once (spaces after commas, exponents), the next few are read one
        // by one before it is tried again.
        let mut one_by_one = 0u32;
        loop {
            if one_by_one == 0 {
                let before = self.pos;
                self.pos = short_decimal_run(self.bytes, self.pos, out);
                if self.pos == before {
                    one_by_one = 8;
                }
            } else {
                one_by_one -= 1;
            }
            self.ws();
            let rest = &self.bytes[self.pos..];
            match parse_f32_token(rest) {
                Ok((v, n)) => {
                    out.push(v);
                    self.pos += n;
                }
                Err(e) => {
                    let what = match e {
                        NumberError::Syntax if rest.is_empty() => {
                            return Err(self.unexpected("a number"));
                        }
                        NumberError::Syntax => excerpt(rest),
                        NumberError::OutOfRange => {
                            let len = rest
                                .iter()
                                .position(|b| {
                                    !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                                })
                                .unwrap_or(rest.len());
                            format!("`{}`", String::from_utf8_lossy(&rest[..len]))
                        }
                    };
                    return Err(format!("{what} {e} (at byte {})", self.pos));
                }
            }
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(());
                    }
                    return Err(self.unexpected("`,` or `]` after a number"));
                }
            }
        }
    }

    /// Reads `[n, …]` into a new vector with room for `capacity` numbers.
    pub fn f32_array(&mut self, capacity: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(capacity);
        self.f32_array_into(&mut out)?;
        Ok(out)
    }

    /// Reads `[[n, …], …]`, each row with room for `capacity` numbers (the
    /// first row's length when 0).
    pub fn f32_rows(&mut self, capacity: usize) -> Result<Vec<Vec<f32>>> {
        let mut rows: Vec<Vec<f32>> = Vec::new();
        self.array(|c, _| {
            let hint = rows.first().map_or(capacity, Vec::len);
            rows.push(c.f32_array(hint)?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Checks that nothing but whitespace is left.
    pub fn end(&mut self) -> Result<()> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.unexpected("the end of the document"))
        }
    }
}

/// The next 40 characters of the document, secrets scrubbed before the cut.
fn excerpt(rest: &[u8]) -> String {
    let window = &rest[..rest.len().min(64 << 10)];
    format!(
        "`{}`",
        crate::redact::excerpt(&String::from_utf8_lossy(window), 40)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn walks_objects_and_hands_other_values_to_serde() {
        let text = br#" { "a" : [1, 2.5] , "b\u0041":{"n":18446744073709551615,"i":-3,"f":1.5},"c":"x" , "d": null, "e": [] } "#;
        let mut c = JsonCursor::new(text);
        let mut seen = Vec::new();
        c.object(|c, key| {
            match &*key {
                "a" => assert_eq!(c.f32_array(0)?, [1.0, 2.5]),
                "bA" => {
                    let v: Value = c.value()?;
                    assert_eq!(v, json!({"n": u64::MAX, "i": -3, "f": 1.5}));
                    assert!(v["n"].is_u64() && v["i"].is_i64());
                }
                "d" => assert!(c.null()),
                "e" => assert_eq!(c.array(|_, _| unreachable!())?, 0),
                _ => c.skip()?,
            }
            seen.push(key.into_owned());
            Ok(())
        })
        .unwrap();
        c.end().unwrap();
        assert_eq!(seen, ["a", "bA", "c", "d", "e"]);
    }

    #[test]
    fn errors_say_where() {
        let mut c = JsonCursor::new(br#"{"a":[1,nan]}"#);
        let e = c.object(|c, _| c.f32_array(0).map(drop)).unwrap_err();
        assert_eq!(e, "`nan]}` is not a JSON number (at byte 8)");
        let mut c = JsonCursor::new(br#"{"a":1 "b":2}"#);
        let e = c.object(|c, _| c.skip()).unwrap_err();
        assert!(
            e.contains("expected `,` or `}`") && e.contains("byte 7"),
            "{e}"
        );
        let mut c = JsonCursor::new(br#"{"a":{"x":}}"#);
        let e = c.object(|c, _| c.skip()).unwrap_err();
        assert_eq!(e, "expected value at byte 10");
        let mut c = JsonCursor::new(br#"[1,2"#);
        let e = c.f32_array(0).unwrap_err();
        assert!(e.contains("end of the document"), "{e}");
        let mut c = JsonCursor::new(br#"{"a":1}x"#);
        c.object(|c, _| c.skip()).unwrap();
        assert!(c.end().is_err());
    }
}
