//! Runs of short decimals read with SSSE3, sixteen bytes of a number at once.
//!
//! The scalar reader finds where a number ends from its digits, so each
//! number waits for the one before it. Here the commas of 64 bytes are found
//! first, in four comparisons; every number then has a known start and end,
//! its shape is checked with one comparison of its sixteen bytes, and its
//! digits are converted with one shuffle and three multiply-adds. The value is
//! computed exactly as [`short_decimal`](super::short_decimal) computes it —
//! the same shape, the same single division — so the two never differ.

use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128, _mm_madd_epi16, _mm_maddubs_epi16,
    _mm_min_epu8, _mm_movemask_epi8, _mm_packs_epi32, _mm_set1_epi8, _mm_set1_epi16,
    _mm_set1_epi32, _mm_shuffle_epi8, _mm_sub_epi8,
};

use super::POW10;

/// Whether this CPU runs [`run`] (checked once, then cached by `std`).
#[inline]
pub fn available() -> bool {
    std::is_x86_feature_detected!("ssse3")
}

/// The shuffle that turns the sixteen bytes of a number (`-?d.d…`, `len`
/// bytes, sign `neg`) into its digits alone, right-aligned, zeros before:
/// index `neg * 17 + len`. Lanes of 0x80 become zero.
static DIGITS: [[u8; 16]; 34] = digit_shuffles();

const fn digit_shuffles() -> [[u8; 16]; 34] {
    let mut table = [[0x80u8; 16]; 34];
    let mut neg = 0;
    while neg < 2 {
        // The shortest number is `d.d`; the longest that fits, 16 bytes.
        let mut len = neg + 3;
        while len <= 16 {
            let digits = len - neg - 1;
            let mut i = 0;
            while i < digits {
                // The integer digit, then the decimals after the point.
                let from = if i == 0 { neg } else { neg + 1 + i };
                table[neg * 17 + len][16 - digits + i] = from as u8;
                i += 1;
            }
            len += 1;
        }
        neg += 1;
    }
    table
}

/// Sixteen bytes from `bytes[at..]`.
#[inline(always)]
fn load16(bytes: &[u8], at: usize) -> __m128i {
    let chunk: &[u8; 16] = bytes[at..at + 16].try_into().expect("sixteen bytes");
    // SAFETY: `chunk` is sixteen readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) }
}

/// Reads the numbers from `pos` on that have the shape `-?d.d…` with 1 to 12
/// decimals and are each followed by a comma (the comma is consumed too),
/// appending them to `out`. Returns where it stopped: the start of the
/// first number it did not read, which the caller reads its own way.
///
/// # Safety
///
/// The CPU must have SSSE3 ([`available`]).
#[target_feature(enable = "ssse3")]
pub unsafe fn run(bytes: &[u8], pos: usize, out: &mut Vec<f32>) -> usize {
    let zero = _mm_set1_epi8(b'0' as i8);
    let nine = _mm_set1_epi8(9);
    let comma = _mm_set1_epi8(b',' as i8);
    // Pairs of digits, then pairs of pairs, then pairs of four digits.
    let tens = _mm_set1_epi16(0x010A);
    let hundreds = _mm_set1_epi32(0x0001_0064);
    let ten_thousands = _mm_set1_epi32(0x0001_2710);
    let commas = |at: usize| _mm_movemask_epi8(_mm_cmpeq_epi8(load16(bytes, at), comma)) as u16;

    let mut start = pos;
    // Sixteen bytes past the 64 searched keep every number's load in bounds.
    while start + 80 <= bytes.len() {
        let mut ends = u64::from(commas(start))
            | u64::from(commas(start + 16)) << 16
            | u64::from(commas(start + 32)) << 32
            | u64::from(commas(start + 48)) << 48;
        if ends == 0 {
            // No comma within 64 bytes: not this shape.
            return start;
        }
        let from = start;
        while ends != 0 {
            let end = from + ends.trailing_zeros() as usize;
            ends &= ends - 1;
            let len = end - start;
            let neg = usize::from(bytes[start] == b'-');
            if len > 16 || len < neg + 3 || len - neg - 2 > 12 || bytes[start + neg + 1] != b'.' {
                return start;
            }
            let digits = _mm_sub_epi8(load16(bytes, start), zero);
            let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(digits, nine), digits);
            let within = (1u32 << len) - 1;
            // Digits everywhere in the number but at the point and the sign.
            let expected = within & !(1 << (neg + 1)) & !(neg as u32);
            if _mm_movemask_epi8(is_digit) as u32 & within != expected {
                return start;
            }
            let aligned = _mm_shuffle_epi8(digits, load16(&DIGITS[neg * 17 + len], 0));
            let pairs = _mm_maddubs_epi16(aligned, tens);
            let quads = _mm_madd_epi16(pairs, hundreds);
            let octets = _mm_madd_epi16(_mm_packs_epi32(quads, quads), ten_thousands);
            let both = _mm_cvtsi128_si64(octets) as u64;
            let m = (both & 0xFFFF_FFFF) * 100_000_000 + (both >> 32);
            // m < 10^13 and at most 12 decimals: exact, as in `short_decimal`.
            let v = ((m as i64) as f64 / POW10[len - neg - 2]) as f32;
            out.push(f32::from_bits(v.to_bits() | ((neg as u32) << 31)));
            start = end + 1;
        }
    }
    start
}
