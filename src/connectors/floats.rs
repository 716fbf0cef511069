//! Fast, exact decoding of JSON numbers into `f32`. Vectors dominate the bytes
//! a database sends; each number is read once, straight to the `f32` nearest
//! to the decimal the server printed (correctly rounded, ties to even), never
//! through an intermediate `f64` that could round twice.
//!
//! The common case — at most 15 significant digits and a small exponent, which
//! covers every shortest `f32` that ryu-style printers write for values from
//! about 1e-5 up — is one integer accumulation and one `f64` division or
//! multiplication, proven exact in [`fast_path`]. Everything else goes to the
//! Eisel-Lemire parser of `fast-float2`, which is correctly rounded too.
//!
//! Inside arrays, runs of the commonest shape (`-?d.ddd…`, comma after) are
//! read by [`short_decimal_run`] with SIMD (x86-64 with SSSE3): the commas
//! are found first, so that no number waits for the one before it to end.
//!
//! Only JSON's number grammar is accepted (`-? int frac? exp?`): no `+1`,
//! `.5`, `1.`, `01`, `NaN` or `Infinity`, and a decimal beyond `f32`'s range
//! (which rounds to infinity) is an error rather than a silent `inf`.

use std::fmt;

use crate::connectors::json_cursor::JsonCursor;

/// Why a number token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// The text is not a JSON number.
    Syntax,
    /// A JSON number whose magnitude is beyond `f32::MAX` (it would be ±inf).
    OutOfRange,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberError::Syntax => "is not a JSON number",
            NumberError::OutOfRange => "is beyond the range of a 32-bit float",
        })
    }
}

/// Powers of ten exactly representable in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `m · 10^e10` as the nearest `f32`, when one `f64` operation then one
/// rounding to `f32` provably gives it; `None` otherwise.
///
/// Requires `m < 2^50`, so `m` and `10^k` (k ≤ 22) are exact `f64`s and the
/// `f64` result is `m · 10^e10` correctly rounded. Rounding that again to
/// `f32` is wrong only if the `f64` result is an `f32` midpoint
/// `M = a·2^b` (a odd, 2^24 < a < 2^25) that the exact value `q` is not,
/// i.e. `0 < |q − M| ≤ ulp64(M)/2 = 2^(b−29)`:
/// - `e10 ≥ 0`: the product is only taken when it is below 2^53, hence exact
///   in `f64`: a single rounding.
/// - `e10 = −k`, `b + k ≥ 0`: `10^k · (q − M)` is a non-zero integer, so
///   `|q − M| ≥ 10^−k`, while `2^(b−29) < M·2^−53 ≈ m·10^−k·2^−53 < 10^−k`
///   since `m < 2^50`.
/// - `e10 = −k`, `b + k = −j < 0`: `2^j·10^k·(q − M) = m·2^j − a·5^k` is a
///   non-zero integer, so `|q − M| ≥ 2^b / 5^k`, which is above `2^(b−29)`
///   exactly when `5^k < 2^29`, i.e. `k ≤ 12`.
///
/// Results are never subnormal or out of range here (`10^−12 ≤ q < 2^53`).
#[inline(always)]
fn fast_path(m: u64, e10: i64) -> Option<f32> {
    const MAX_EXACT: u64 = 1 << 53;
    if m >= 1 << 50 {
        return None;
    }
    if e10 == 0 {
        Some(m as f64 as f32)
    } else if (-12..0).contains(&e10) {
        Some((m as f64 / POW10[(-e10) as usize]) as f32)
    } else if (1..=22).contains(&e10) && m <= MAX_EXACT / (POW10[e10 as usize] as u64) {
        Some((m as f64 * POW10[e10 as usize]) as f32)
    } else {
        None
    }
}

/// Reads one JSON number at the start of `b` as the nearest `f32`; returns it
/// and the length of its token. Whatever follows the token is left to the
/// caller.
#[inline(always)]
pub fn parse_f32_token(b: &[u8]) -> Result<(f32, usize), NumberError> {
    match short_decimal(b) {
        Some(found) => Ok(found),
        None => parse_f32_any(b),
    }
}

/// High bit set in exactly the bytes of `w` that are not ASCII digits (no
/// carry or borrow crosses a byte).
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let at_least_0 = (w | HIGH).wrapping_sub(0x3030_3030_3030_3030);
    let above_9 = (w & !HIGH).wrapping_add(0x4646_4646_4646_4646);
    (w | !at_least_0 | above_9) & HIGH
}

/// The value of the first `len` (0..=8) ASCII digits of `w` (first digit in
/// the lowest byte), eight at a time.
#[inline(always)]
fn digits_value(w: u64, len: u32) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064;
    const MUL2: u64 = 0x0000_2710_0000_0001;
    let v = w.wrapping_sub(0x3030_3030_3030_3030);
    // Moving the digits to the top pads with leading zeros (two shifts: a
    // shift by 64 would overflow).
    let v = (v << (32 - 4 * len)) << (32 - 4 * len);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v1 = (v & MASK).wrapping_mul(MUL1);
    let v2 = ((v >> 16) & MASK).wrapping_mul(MUL2);
    u64::from((v1.wrapping_add(v2) >> 32) as u32)
}

const POW10_U64: [u64; 13] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
];

/// The shape nearly every vector component has, `-?d.ddd…` with one integer
/// digit and 1 to 12 decimals, read without a data-dependent branch: the
/// decimals are located and converted eight bytes at a time, and the value is
/// one division that [`fast_path`] proves exact (`m < 10^13 < 2^50`, k ≤ 12).
/// `None` for any other shape, or with fewer than 32 bytes to look at.
#[inline(always)]
fn short_decimal(b: &[u8]) -> Option<(f32, usize)> {
    let a: &[u8; 32] = b.get(..32)?.try_into().ok()?;
    let neg = usize::from(a[0] == b'-');
    let d0 = a[neg].wrapping_sub(b'0');
    if d0 > 9 || a[neg + 1] != b'.' {
        return None;
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&a[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (w1, w2) = (word(neg + 2), word(neg + 10));
    let l1 = non_digits(w1).trailing_zeros() / 8; // 8 when all are digits
    // A multiplication, not a branch: whether a number has more than eight
    // decimals is a coin toss the branch predictor loses half the time.
    let l2 = non_digits(w2).trailing_zeros() / 8 * u32::from(l1 == 8);
    let decimals = (l1 + l2) as usize;
    let end = neg + 2 + decimals;
    if l1 == 0 || decimals > 12 || a[end] | 0x20 == b'e' {
        return None;
    }
    let m = u64::from(d0) * POW10_U64[decimals]
        + digits_value(w1, l1) * POW10_U64[l2 as usize]
        + digits_value(w2, l2);
    let v = ((m as i64) as f64 / POW10[decimals]) as f32;
    Some((
        f32::from_bits(v.to_bits() | (u32::from(neg == 1) << 31)),
        end,
    ))
}

#[cfg(target_arch = "x86_64")]
mod x86;

/// Reads the run of numbers from `pos` on that have the shape of
/// [`short_decimal`] and are each followed by a comma (consumed too),
/// appending them to `out`; returns the start of the first number not read.
/// About twice as fast per number as [`parse_f32_token`]
/// (`cargo bench --bench json_decode`), with the same results; reads nothing
/// where the CPU lacks the instructions it uses (x86-64 with SSSE3).
#[inline]
pub fn short_decimal_run(bytes: &[u8], pos: usize, out: &mut Vec<f32>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU has SSSE3, checked just now.
        return unsafe { x86::run(bytes, pos, out) };
    }
    let _ = (bytes, out);
    pos
}

/// [`parse_f32_token`] for any JSON number.
#[inline(never)]
fn parse_f32_any(b: &[u8]) -> Result<(f32, usize), NumberError> {
    let digit = |i: usize| b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10);
    let neg = b.first() == Some(&b'-');
    let mut i = usize::from(neg);
    let mut m: u64 = 0;
    // Integer part: `0` or a non-zero digit then digits.
    match digit(i) {
        Some(0) => i += 1,
        Some(_) => {
            while let Some(d) = digit(i) {
                m = m.wrapping_mul(10).wrapping_add(u64::from(d));
                i += 1;
            }
        }
        None => return Err(NumberError::Syntax),
    }
    let int_digits = i - usize::from(neg);
    let mut frac_digits = 0usize;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = digit(i) {
            m = m.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        frac_digits = i - start;
        if frac_digits == 0 {
            return Err(NumberError::Syntax);
        }
    }
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(d) = digit(i) {
            // Saturates far beyond any exponent that matters.
            exp = (exp * 10 + i64::from(d)).min(1 << 40);
            i += 1;
        }
        if i == start {
            return Err(NumberError::Syntax);
        }
        if exp_neg {
            exp = -exp;
        }
    }
    // `m` is exact when no more than 19 digits went into it.
    if int_digits + frac_digits <= 19 {
        if m == 0 {
            return Ok((if neg { -0.0 } else { 0.0 }, i));
        }
        if let Some(v) = fast_path(m, exp - frac_digits as i64) {
            return Ok((if neg { -v } else { v }, i));
        }
    }
    // The token is valid JSON, which fast-float2 parses in full.
    let v: f32 = fast_float2::parse(&b[..i]).map_err(|_| NumberError::Syntax)?;
    if v.is_infinite() {
        return Err(NumberError::OutOfRange);
    }
    Ok((v, i))
}

/// Parses the JSON text of an array of numbers (`[0.1, -2e-3, 4]`) into `f32`s.
pub fn parse_f32_array(text: &str) -> Result<Vec<f32>, String> {
    let mut c = JsonCursor::new(text.as_bytes());
    let mut out = Vec::new();
    c.f32_array_into(&mut out)?;
    c.end()?;
    Ok(out)
}

/// Parses the JSON text of an array of arrays of numbers.
pub fn parse_f32_rows(text: &str) -> Result<Vec<Vec<f32>>, String> {
    let mut c = JsonCursor::new(text.as_bytes());
    let rows = c.f32_rows(0)?;
    c.end()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// The reference: the standard library's correctly rounded parser.
    fn std_f32(s: &str) -> f32 {
        s.parse().unwrap()
    }

    /// Parses `s` alone (shorter than 32 bytes: the general path) and followed
    /// by more of an array (the short-decimal path where it applies); both
    /// must agree.
    fn one(s: &str) -> Result<f32, NumberError> {
        let alone = parse_f32_token(s.as_bytes());
        let followed = format!("{s},0.25,0.5,0.75,0.125,0.375,0.625,0.875]");
        let in_array = parse_f32_token(followed.as_bytes());
        match (alone, in_array) {
            (Ok((a, n)), Ok((b, m))) => {
                assert_eq!((n, m), (s.len(), s.len()), "{s}: token length");
                assert_eq!(a.to_bits(), b.to_bits(), "{s}: paths disagree");
                Ok(a)
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{s}: paths disagree");
                Err(a)
            }
            (a, b) => panic!("{s}: paths disagree: {a:?} {b:?}"),
        }
    }

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
        assert_eq!(bits(&fast), bits(&values));
        assert_eq!(parse_f32_array(" [ 1 , 2.5e0 ] ").unwrap(), [1.0, 2.5]);
        assert_eq!(parse_f32_array("[]").unwrap(), Vec::<f32>::new());
        assert_eq!(parse_f32_array("[ ]").unwrap(), Vec::<f32>::new());
        assert_eq!(
            parse_f32_rows("[[1],[2,3]]").unwrap(),
            [vec![1.0], vec![2.0, 3.0]]
        );
        assert_eq!(parse_f32_rows("[]").unwrap(), Vec::<Vec<f32>>::new());
    }

    #[test]
    fn edge_values_in_every_spelling() {
        for (text, want) in [
            ("1e-45", f32::from_bits(1)),
            ("1.401298464324817e-45", f32::from_bits(1)),
            ("7e-46", 0.0),                 // below half the least subnormal
            ("7.1e-46", f32::from_bits(1)), // above it
            ("-0.0", -0.0),
            ("-0", -0.0),
            ("0e999999999999", 0.0),
            ("-0.000e-5", -0.0),
            ("3.4028235e38", f32::MAX),
            ("-3.4028235e38", f32::MIN),
            ("340282350000000000000000000000000000000", f32::MAX),
            ("3.4028235677973366e38", f32::MAX), // just below the rounding boundary
            ("1.1754944e-38", f32::MIN_POSITIVE),
            ("1.1754942e-38", f32::from_bits(0x007f_ffff)), // largest subnormal
            ("1", 1.0),
            ("-1", -1.0),
            ("16777217", 16_777_216.0), // a tie, to even
            ("16777219", 16_777_220.0), // a tie, to even
            ("1E2", 100.0),
            ("1e+2", 100.0),
            ("0.1", 0.1),
            ("1.00000005960464477539062500001", 1.000_000_1), // just above a midpoint
            ("1.0000000596046448", 1.000_000_1), // the double-rounding trap of f64-then-f32
            ("1.000000059604644775390625", 1.0), // exactly the midpoint: to even
            ("123456789012345678901234567890", 1.234_567_9e29),
        ] {
            let got = one(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
            assert_eq!(got.to_bits(), std_f32(text).to_bits(), "{text} against std");
        }
    }

    #[test]
    fn refuses_what_json_does_not_have() {
        for bad in [
            "[1,]",
            "[nan]",
            "[NaN]",
            "[inf]",
            "[Infinity]",
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
            "[01]",
            "[1.]",
            "[1.e5]",
            "[1e]",
            "[1e+]",
            "[-]",
            "[--1]",
            "[0x10]",
            "[1_000]",
            "[null]",
            "[true]",
            "[[1]]",
            "",
            "[",
            "]",
            "{}",
            "[1,,2]",
            "[,1]",
        ] {
            assert!(parse_f32_array(bad).is_err(), "{bad}");
        }
        for bad in ["[[1],]", "[1]", "[[1]", "[[1] [2]]", "[[nan]]"] {
            assert!(parse_f32_rows(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn beyond_f32_is_an_error_not_infinity() {
        for big in ["3.4028236e38", "1e39", "-1e39", "1e999999999999999999999"] {
            assert_eq!(one(big), Err(NumberError::OutOfRange), "{big}");
        }
        let e = parse_f32_array("[0.5, 1e39]").unwrap_err();
        assert!(e.contains("1e39") && e.contains("range"), "{e}");
    }

    #[test]
    fn short_decimals_take_the_branch_free_path() {
        let pad = ",".repeat(32);
        for (text, want) in [
            ("0.11411756", Some(0.114_117_56f32)),
            ("-0.038432837", Some(-0.038_432_837)),
            ("9.999999999999", Some(10.0)),
            ("-0.0", Some(-0.0)),
            ("0.000000000001", Some(1e-12)),
            ("1.5", Some(1.5)),
            ("0.0000000000001", None), // 13 decimals
            ("10.5", None),
            ("1.5e3", None),
            ("1.", None),
            ("-.5", None),
            ("1", None),
        ] {
            let b = format!("{text}{pad}");
            let got = short_decimal(b.as_bytes());
            assert_eq!(
                got.map(|(v, n)| (v.to_bits(), n)),
                want.map(|v| (v.to_bits(), text.len())),
                "{text}"
            );
        }
        assert_eq!(short_decimal(b"0.5,"), None); // too close to the end to load
    }

    /// What [`short_decimal_run`] reads of `tokens` joined by commas (padded
    /// so that the run may look far enough ahead): the numbers it read of
    /// them, and where it stopped, which must be the start of a token.
    fn run_over(tokens: &[&str]) -> (Vec<f32>, usize) {
        let text = format!("{},{}", tokens.join(","), "0.5,".repeat(40));
        let mut out = Vec::new();
        let end = short_decimal_run(text.as_bytes(), 0, &mut out);
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices(',').map(|(i, _)| i + 1))
            .collect();
        assert_eq!(
            starts.get(out.len()),
            Some(&end),
            "{text}: stopped mid-token"
        );
        out.truncate(tokens.len());
        (out, end)
    }

    #[test]
    fn runs_take_short_decimals_and_stop_at_anything_else() {
        if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("ssse3") {
            let short = [
                "0.11411756",
                "-0.038432837",
                "9.999999999999",
                "-0.0",
                "1.5",
            ];
            let (read, _) = run_over(&short);
            assert_eq!(read.len(), short.len());
            for (got, text) in read.iter().zip(short) {
                assert_eq!(got.to_bits(), std_f32(text).to_bits(), "{text}");
            }
            // Each of these stops the run right where it starts.
            for odd in [
                "0.0000000000001", // 13 decimals
                "10.5",
                "1.5e3",
                "1.5E-3",
                "1.",
                "-.5",
                "1",
                "--1.5",
                " 1.5",
                "1.5 ",
                "1.5]",
                "1.x5",
                "1..5",
                "+1.5",
                "1.5-",
                "",
            ] {
                let (read, end) = run_over(&["0.25", "0.75", odd]);
                assert_eq!((read.len(), end), (2, 10), "{odd:?}");
            }
        }
    }

    #[test]
    fn token_ends_where_json_number_ends() {
        assert_eq!(parse_f32_token(b"1.5,2"), Ok((1.5, 3)));
        assert_eq!(parse_f32_token(b"-2e3]"), Ok((-2000.0, 4)));
        assert_eq!(parse_f32_token(b"0 "), Ok((0.0, 1)));
        // `01`: the number is `0`; the `1` after it is the caller's problem.
        assert_eq!(parse_f32_token(b"01"), Ok((0.0, 1)));
    }

    /// Every spelling of random `f32`s that printers use reads back bit-exactly.
    #[test]
    fn random_f32_in_every_format_round_trip() {
        let mut rng = fastrand::Rng::with_seed(11);
        for i in 0..300_000u32 {
            let v = match i % 3 {
                0 => f32::from_bits(rng.u32(..)),
                // Embedding-like values.
                1 => rng.f32() * 2.0 - 1.0,
                _ => (rng.f32() - 0.5) * 10f32.powi(rng.i32(-40..39)),
            };
            if !v.is_finite() {
                continue;
            }
            for text in [
                serde_json::to_string(&v).unwrap(),
                format!("{v}"),
                format!("{v:e}"),
                format!("{v:E}"),
                format!("{v:.9e}"),
                format!("{}", f64::from(v)),
                format!("{:e}", f64::from(v)),
            ] {
                let got = one(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(got.to_bits(), v.to_bits(), "{text}");
            }
        }
    }

    /// Decimals that are not the shortest spelling of any `f32` (so land
    /// anywhere between two `f32`s) round like the standard library.
    #[test]
    fn random_decimals_round_like_std() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..300_000 {
            let digits = rng.usize(1..=20);
            let mantissa: String = (0..digits)
                .map(|_| char::from(b'0' + rng.u8(0..10)))
                .collect();
            let mantissa = mantissa.trim_start_matches('0');
            let mantissa = if mantissa.is_empty() { "0" } else { mantissa };
            let point = rng.usize(0..=mantissa.len());
            let (int, frac) = mantissa.split_at(point);
            let int = if int.is_empty() { "0" } else { int };
            let mut text = if frac.is_empty() {
                int.to_owned()
            } else {
                format!("{int}.{frac}")
            };
            if rng.bool() {
                text.push_str(&format!("e{}", rng.i32(-50..40)));
            }
            if rng.bool() {
                text.insert(0, '-');
            }
            let want = std_f32(&text);
            match one(&text) {
                Ok(got) => assert_eq!(got.to_bits(), want.to_bits(), "{text}"),
                Err(NumberError::OutOfRange) => assert!(want.is_infinite(), "{text}"),
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    /// Decimals a hair above and below `f32` midpoints, where parsing to `f64`
    /// first then rounding again goes wrong.
    #[test]
    fn near_midpoints() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..50_000 {
            let v = f32::from_bits(rng.u32(1..0x7f7f_ffff));
            let next = f32::from_bits(v.to_bits() + 1);
            let mid = (f64::from(v) + f64::from(next)) / 2.0; // exact in f64
            for digits in [9usize, 12, 15, 17, 20] {
                for text in [
                    format!("{mid:.digits$e}"),
                    format!("{:.digits$e}", mid.next_up()),
                    format!("{:.digits$e}", mid.next_down()),
                ] {
                    let got = one(&text).unwrap();
                    assert_eq!(got.to_bits(), std_f32(&text).to_bits(), "{text}");
                }
            }
        }
    }

    /// All 2^32 bit patterns (every `STRIDE`th), each printed shortest in
    /// both notations, read back bit-exactly by both paths:
    /// `STRIDE=1 cargo test --release --lib floats::tests::every_f32 -- --ignored`.
    #[test]
    #[ignore = "minutes in release mode"]
    fn every_f32() {
        use std::fmt::Write;
        let stride: usize = std::env::var("STRIDE").map_or(1, |s| s.parse().unwrap());
        let mut buf = String::new();
        for b in (0..=u32::MAX).step_by(stride) {
            let v = f32::from_bits(b);
            if !v.is_finite() {
                continue;
            }
            for exponent in [false, true] {
                buf.clear();
                if exponent {
                    write!(buf, "{v:e}").unwrap();
                } else {
                    write!(buf, "{v}").unwrap();
                }
                let len = buf.len();
                let alone = parse_f32_token(buf.as_bytes());
                buf.push_str(",0.25,0.5,0.75,0.125,0.375,0.625,0.875]");
                let followed = parse_f32_token(buf.as_bytes());
                assert_eq!(alone, Ok((v, len)), "{buf}");
                assert_eq!(followed, Ok((v, len)), "{buf}");
                assert_eq!(alone.unwrap().0.to_bits(), b, "{buf}");
                assert_eq!(followed.unwrap().0.to_bits(), b, "{buf}");
                // Eight in a run: all read, or none.
                let text = &buf[..len];
                let (read, _) = run_over(&[text; 8]);
                assert!(read.is_empty() || read.len() == 8, "{text}");
                assert!(read.iter().all(|r| r.to_bits() == b), "{text}");
            }
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_f32_round_trips(b in any::<u32>()) {
                let v = f32::from_bits(b);
                prop_assume!(v.is_finite());
                for text in [serde_json::to_string(&v).unwrap(), format!("{v}"), format!("{v:e}")] {
                    prop_assert_eq!(one(&text).unwrap().to_bits(), b, "{}", text);
                }
            }

            #[test]
            fn any_json_number_rounds_like_std(
                neg in any::<bool>(),
                int in "(0|[1-9][0-9]{0,25})",
                frac in proptest::option::of("[0-9]{1,25}"),
                exp in proptest::option::of(-60i32..60),
            ) {
                let mut text = String::new();
                if neg { text.push('-'); }
                text.push_str(&int);
                if let Some(f) = &frac { text.push('.'); text.push_str(f); }
                if let Some(e) = exp { text.push_str(&format!("e{e}")); }
                let want = std_f32(&text);
                match one(&text) {
                    Ok(got) => prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", text),
                    Err(e) => prop_assert!(e == NumberError::OutOfRange && want.is_infinite(), "{}: {}", text, e),
                }
            }

            #[test]
            fn arrays_round_trip(values in proptest::collection::vec(any::<u32>(), 0..64)) {
                let values: Vec<f32> = values.into_iter().map(f32::from_bits).filter(|v| v.is_finite()).collect();
                let text = serde_json::to_string(&values).unwrap();
                prop_assert_eq!(bits(&parse_f32_array(&text).unwrap()), bits(&values));
                let spaced = text.replace(',', " ,\n ");
                prop_assert_eq!(bits(&parse_f32_array(&spaced).unwrap()), bits(&values));
            }

            #[test]
            fn arrays_of_every_shape_read_like_std(
                tokens in proptest::collection::vec(
                    prop_oneof![
                        4 => (-9.99f32..9.99).prop_map(|v| v.to_string()),
                        1 => any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |v| v.is_finite()).prop_map(|v| v.to_string()),
                        1 => any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")),
                        1 => "-?[0-9]\\.[0-9]{10,15}",
                        1 => "-?[1-9][0-9]{0,3}",
                    ],
                    0..200,
                ),
                spaced in proptest::collection::vec(any::<bool>(), 200),
            ) {
                let mut text = String::from("[");
                for (i, t) in tokens.iter().enumerate() {
                    if i > 0 {
                        text.push_str(if spaced[i] { ", " } else { "," });
                    }
                    text.push_str(t);
                }
                text.push(']');
                let want: Vec<f32> = tokens.iter().map(|t| std_f32(t)).collect();
                prop_assert_eq!(bits(&parse_f32_array(&text).unwrap()), bits(&want), "{}", text);
            }

            #[test]
            fn garbage_never_panics(text in "[\\[\\]0-9eE.,+\\- a-z]{0,24}") {
                let _ = parse_f32_array(&text);
                let _ = parse_f32_rows(&text);
            }
        }
    }
}
