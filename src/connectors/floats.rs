//! Fast, exact decoding of JSON arrays of floats. Vectors dominate the bytes
//! a database sends; parsing each number straight to `f32` with an
//! Eisel-Lemire parser is correctly rounded and several times faster than
//! serde_json's exact path (which parses to `f64` first).

/// Parses the JSON text of an array of numbers (`[0.1, -2e-3, 4]`) into `f32`s.
pub fn parse_f32_array(text: &str) -> Result<Vec<f32>, String> {
    let bytes = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\n' | b'\r' | b'\t') {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'[') {
        return Err(format!(
            "expected an array of numbers, found {}",
            excerpt(text)
        ));
    }
    i = skip_ws(i + 1);
    let mut out = Vec::with_capacity(bytes.len() / 10 + 1);
    if bytes.get(i) == Some(&b']') {
        return finish(bytes, i + 1, out, text);
    }
    loop {
        let rest = &bytes[i..];
        // JSON numbers start with '-' or a digit; this also keeps out `inf`, `nan` and `+1`.
        if !rest
            .first()
            .is_some_and(|b| *b == b'-' || b.is_ascii_digit())
        {
            return Err(format!("{} is not a JSON number", excerpt(&text[i..])));
        }
        let (v, n): (f32, usize) = fast_float2::parse_partial(rest)
            .map_err(|_| format!("{} is not a number", excerpt(&text[i..])))?;
        if rest[..n]
            .iter()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E'))
        {
            return Err(format!("{} is not a JSON number", excerpt(&text[i..])));
        }
        out.push(v);
        i = skip_ws(i + n);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(b']') => return finish(bytes, i + 1, out, text),
            _ => {
                return Err(format!(
                    "expected `,` or `]` in {}",
                    excerpt(&text[i.min(text.len())..])
                ));
            }
        }
    }
}

fn finish(bytes: &[u8], end: usize, out: Vec<f32>, text: &str) -> Result<Vec<f32>, String> {
    if bytes[end..].iter().all(|b| b.is_ascii_whitespace()) {
        Ok(out)
    } else {
        Err(format!(
            "unexpected text after the array in {}",
            excerpt(text)
        ))
    }
}

/// Parses the JSON text of an array of arrays of numbers.
pub fn parse_f32_rows(text: &str) -> Result<Vec<Vec<f32>>, String> {
    let rows: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| format!("expected an array of arrays: {e}"))?;
    rows.into_iter().map(|r| parse_f32_array(r.get())).collect()
}

fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    format!("`{cut}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_like_the_slow_path() {
        let mut rng = fastrand::Rng::with_seed(3);
        let values: Vec<f32> = (0..20_000)
            .map(|_| f32::from_bits(rng.u32(..)))
            .filter(|v| v.is_finite())
            .chain([
                0.0,
                -0.0,
                f32::MIN_POSITIVE,
                f32::from_bits(1),
                f32::MAX,
                f32::MIN,
            ])
            .collect();
        let text = serde_json::to_string(&values).unwrap();
        let fast = parse_f32_array(&text).unwrap();
        let slow: Vec<f32> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(parse_f32_array(" [ 1 , 2.5e0 ] ").unwrap(), [1.0, 2.5]);
        assert_eq!(parse_f32_array("[]").unwrap(), Vec::<f32>::new());
        assert_eq!(
            parse_f32_rows("[[1],[2,3]]").unwrap(),
            [vec![1.0], vec![2.0, 3.0]]
        );
    }

    #[test]
    fn refuses_what_json_does_not_have() {
        for bad in [
            "[1,]",
            "[nan]",
            "[inf]",
            "1,2",
            "[\"1\"]",
            "[1 2]",
            "[+1]",
            "[1]x",
            "[1",
            "[.5]",
            "[-inf]",
            "[-nan]",
            "[-infinity]",
        ] {
            assert!(parse_f32_array(bad).is_err(), "{bad}");
        }
    }
}
