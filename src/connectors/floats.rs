//! Fast, exact decoding of JSON arrays of floats. Vectors dominate the bytes
//! a database sends; parsing each number straight to `f32` with an
//! Eisel-Lemire parser is correctly rounded and several times faster than
//! serde_json's exact path (which parses to `f64` first).

/// Parses the JSON text of an array of numbers (`[0.1, -2e-3, 4]`) into `f32`s.
pub fn parse_f32_array(text: &str) -> Result<Vec<f32>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected an array of numbers, found {}", excerpt(text)))?;
    let inner = inner.trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(inner.len() / 8 + 1);
    for item in inner.split(',') {
        let item = item.trim();
        let v: f32 =
            fast_float2::parse(item).map_err(|_| format!("{} is not a number", excerpt(item)))?;
        // fast-float accepts `inf`/`nan` spellings that JSON does not have.
        if !v.is_finite()
            && !item
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            return Err(format!("{} is not a JSON number", excerpt(item)));
        }
        out.push(v);
    }
    Ok(out)
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
        for bad in ["[1,]", "[nan]", "[inf]", "1,2", "[\"1\"]", "[1 2]"] {
            assert!(parse_f32_array(bad).is_err(), "{bad}");
        }
    }
}
