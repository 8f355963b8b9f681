//! 64-byte blocks classified into bit masks (bit `k` set when byte `k` is
//! in a class), so the scanners find runs and positions with word
//! operations on the mask instead of a branch per byte.
//!
//! The same algorithm on every target, with the one 16-byte compare spelled
//! in each target's vector instructions: SSE2 on x86-64 (always present
//! there), `simd128` in the guests (built with `+simd128`), and a scalar
//! loop elsewhere. The guest-against-native benchmark compares the first
//! two: the same code, each with its own 128-bit vectors.

/// Bytes per mask.
pub(crate) const BLOCK: usize = 64;

/// The mask of token bytes (ASCII letters and digits, `_ - + / =`) in
/// `b[..64]`: bit `k` for `b[k]`.
#[inline]
pub(crate) fn token(b: &[u8; BLOCK]) -> u64 {
    imp::token(b)
}

/// The mask of the bytes of `b` equal to `c`.
#[inline]
pub(crate) fn eq(b: &[u8; BLOCK], c: u8) -> u64 {
    imp::eq(b, c)
}

/// The byte classes pii's start scan ([`crate::pii`]) needs for every
/// block: bit `k` of each field for `b[k]`. The IPv6 class ([`ipv6`]) is
/// apart: the scan needs it only near a colon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PiiClasses {
    /// `0-9`.
    pub digit: u64,
    /// Word bytes: ASCII letters, digits and `_`.
    pub word: u64,
    /// `:`.
    pub colon: u64,
    /// `+` and `(`: the phone starts that are not digits.
    pub plus_paren: u64,
    /// `A-Z`.
    pub upper: u64,
}

/// Every class of [`PiiClasses`] for `b`, one load per 16 bytes.
#[inline]
pub(crate) fn pii(b: &[u8; BLOCK]) -> PiiClasses {
    let [digit, word, colon, plus_paren, upper] = imp::pii(b);
    PiiClasses {
        digit,
        word,
        colon,
        plus_paren,
        upper,
    }
}

/// What an IPv6 address is made of: hex digits, `:` and `.`.
#[inline]
pub(crate) fn ipv6(b: &[u8; BLOCK]) -> u64 {
    imp::ipv6(b)
}

/// The classes of [`PiiClasses`] one byte at a time, in field order: the
/// reference of the vector versions and the scalar target's.
#[cfg(any(
    test,
    not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))
))]
pub(crate) const PII_CLASSES: [fn(u8) -> bool; 5] = [
    |c| c.is_ascii_digit(),
    |c| c.is_ascii_alphanumeric() || c == b'_',
    |c| c == b':',
    |c| c == b'+' || c == b'(',
    |c| c.is_ascii_uppercase(),
];

/// [`ipv6`]'s class one byte at a time.
#[cfg(any(
    test,
    not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))
))]
pub(crate) fn ipv6_class(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// The constants of both targets' `within`: byte `x` is in `lo..=hi`
/// (`hi - lo < 255`) when `x + bias`, as a signed byte, is below `limit`
/// (the range moved to start at -128): an add and a signed compare, one
/// instruction each on both targets. The unsigned form (`x - lo <= hi -
/// lo`) is a min and a compare on SSE2, but LLVM turns it into `< hi - lo +
/// 1`, and Cranelift's x86-64 code for `i8x16.lt_u` is four instructions
/// (min, compare, all-ones, xor).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
const fn signed_range(lo: u8, hi: u8) -> (i8, i8) {
    (
        0x80u8.wrapping_sub(lo) as i8,
        (hi - lo).wrapping_add(0x81) as i8,
    )
}

// SAFETY (every `unsafe` below): SSE2 is part of the x86-64 baseline, so
// its intrinsics are always available; the only memory access is the
// unaligned load of a 16-byte chunk of the block.
#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::*;

    use super::BLOCK;

    /// The 64-bit mask of `b` from the byte masks `class` gives for each
    /// 16-byte vector.
    #[inline(always)]
    fn bits(b: &[u8; BLOCK], class: impl Fn(__m128i) -> __m128i) -> u64 {
        let mut m = 0;
        for (k, chunk) in b.chunks_exact(16).enumerate() {
            // SAFETY: see the module; the load reads the 16 bytes of `chunk`.
            let bits =
                unsafe { _mm_movemask_epi8(class(_mm_loadu_si128(chunk.as_ptr().cast()))) } as u16;
            m |= u64::from(bits) << (16 * k);
        }
        m
    }

    #[inline]
    pub(super) fn token(b: &[u8; BLOCK]) -> u64 {
        bits(b, token16)
    }

    #[inline]
    pub(super) fn eq(b: &[u8; BLOCK], c: u8) -> u64 {
        // SAFETY: see the module.
        bits(b, |v| unsafe { _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)) })
    }

    /// The classes of `super::PiiClasses`, in field order.
    #[inline]
    pub(super) fn pii(b: &[u8; BLOCK]) -> [u64; 5] {
        let mut m = [0u64; 5];
        for (k, chunk) in b.chunks_exact(16).enumerate() {
            // SAFETY: see the module; the load reads the 16 bytes of `chunk`.
            unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().cast());
                let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
                let digit = within(v, b'0', b'9');
                let classes = [
                    digit,
                    _mm_or_si128(_mm_or_si128(within(lower, b'a', b'z'), digit), eq(b'_')),
                    eq(b':'),
                    _mm_or_si128(eq(b'+'), eq(b'(')),
                    within(v, b'A', b'Z'),
                ];
                for (m, c) in m.iter_mut().zip(classes) {
                    *m |= u64::from(_mm_movemask_epi8(c) as u16) << (16 * k);
                }
            }
        }
        m
    }

    #[inline]
    pub(super) fn ipv6(b: &[u8; BLOCK]) -> u64 {
        // SAFETY: see the module.
        bits(b, |v| unsafe {
            let hex_letter = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'f');
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            _mm_or_si128(
                _mm_or_si128(hex_letter, within(v, b'0', b'9')),
                _mm_or_si128(eq(b':'), eq(b'.')),
            )
        })
    }

    /// `lo <= x <= hi` per byte (`super::signed_range`).
    #[inline(always)]
    fn within(x: __m128i, lo: u8, hi: u8) -> __m128i {
        let (bias, limit) = super::signed_range(lo, hi);
        // SAFETY: see the module.
        unsafe { _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8(bias)), _mm_set1_epi8(limit)) }
    }

    #[inline(always)]
    fn token16(v: __m128i) -> __m128i {
        // SAFETY: see the module.
        unsafe {
            let letter = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
            let digit = within(v, b'0', b'9');
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let punct = _mm_or_si128(
                _mm_or_si128(eq(b'_'), eq(b'-')),
                _mm_or_si128(_mm_or_si128(eq(b'+'), eq(b'/')), eq(b'=')),
            );
            _mm_or_si128(_mm_or_si128(letter, digit), punct)
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    use super::BLOCK;

    /// The 64-bit mask of `b` from the byte masks `class` gives for each
    /// 16-byte vector.
    #[inline(always)]
    fn bits(b: &[u8; BLOCK], class: impl Fn(v128) -> v128) -> u64 {
        let mut m = 0;
        for (k, chunk) in b.chunks_exact(16).enumerate() {
            // SAFETY: the load reads the 16 bytes of `chunk` (wasm loads
            // need no alignment).
            let v = unsafe { v128_load(chunk.as_ptr().cast()) };
            m |= u64::from(u8x16_bitmask(class(v))) << (16 * k);
        }
        m
    }

    #[inline]
    pub(super) fn token(b: &[u8; BLOCK]) -> u64 {
        bits(b, token16)
    }

    #[inline]
    pub(super) fn eq(b: &[u8; BLOCK], c: u8) -> u64 {
        bits(b, |v| u8x16_eq(v, u8x16_splat(c)))
    }

    /// The classes of `super::PiiClasses`, in field order.
    #[inline]
    pub(super) fn pii(b: &[u8; BLOCK]) -> [u64; 5] {
        let mut m = [0u64; 5];
        for (k, chunk) in b.chunks_exact(16).enumerate() {
            // SAFETY: the load reads the 16 bytes of `chunk` (wasm loads
            // need no alignment).
            let v = unsafe { v128_load(chunk.as_ptr().cast()) };
            let lower = v128_or(v, u8x16_splat(0x20));
            let eq = |c: u8| u8x16_eq(v, u8x16_splat(c));
            let digit = within(v, b'0', b'9');
            let classes = [
                digit,
                v128_or(v128_or(within(lower, b'a', b'z'), digit), eq(b'_')),
                eq(b':'),
                v128_or(eq(b'+'), eq(b'(')),
                within(v, b'A', b'Z'),
            ];
            for (m, c) in m.iter_mut().zip(classes) {
                *m |= u64::from(u8x16_bitmask(c)) << (16 * k);
            }
        }
        m
    }

    #[inline]
    pub(super) fn ipv6(b: &[u8; BLOCK]) -> u64 {
        bits(b, |v| {
            let hex_letter = within(v128_or(v, u8x16_splat(0x20)), b'a', b'f');
            let eq = |c: u8| u8x16_eq(v, u8x16_splat(c));
            v128_or(
                v128_or(hex_letter, within(v, b'0', b'9')),
                v128_or(eq(b':'), eq(b'.')),
            )
        })
    }

    /// `lo <= x <= hi` per byte (`super::signed_range`).
    #[inline(always)]
    fn within(x: v128, lo: u8, hi: u8) -> v128 {
        let (bias, limit) = super::signed_range(lo, hi);
        i8x16_lt(i8x16_add(x, i8x16_splat(bias)), i8x16_splat(limit))
    }

    #[inline(always)]
    fn token16(v: v128) -> v128 {
        let letter = within(v128_or(v, u8x16_splat(0x20)), b'a', b'z');
        let digit = within(v, b'0', b'9');
        let eq = |c: u8| u8x16_eq(v, u8x16_splat(c));
        let punct = v128_or(
            v128_or(eq(b'_'), eq(b'-')),
            v128_or(v128_or(eq(b'+'), eq(b'/')), eq(b'=')),
        );
        v128_or(v128_or(letter, digit), punct)
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod imp {
    use super::BLOCK;

    #[inline]
    pub(super) fn token(b: &[u8; BLOCK]) -> u64 {
        super::scalar(b, crate::secrets::token_char)
    }

    #[inline]
    pub(super) fn eq(b: &[u8; BLOCK], c: u8) -> u64 {
        super::scalar(b, |x| x == c)
    }

    #[inline]
    pub(super) fn pii(b: &[u8; BLOCK]) -> [u64; 5] {
        super::PII_CLASSES.map(|class| super::scalar(b, class))
    }

    #[inline]
    pub(super) fn ipv6(b: &[u8; BLOCK]) -> u64 {
        super::scalar(b, super::ipv6_class)
    }
}

/// The mask of `b` (at most 64 bytes) by `class`, one byte at a time: the
/// tail of a text, and targets without 128-bit vectors.
#[inline]
pub(crate) fn scalar(b: &[u8], class: impl Fn(u8) -> bool) -> u64 {
    debug_assert!(b.len() <= BLOCK);
    b.iter()
        .enumerate()
        .fold(0, |m, (k, &c)| m | (u64::from(class(c)) << k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::token_char;

    #[test]
    fn vector_masks_match_the_scalar_class() {
        // Every byte value at every position of a block.
        for shift in 0..BLOCK {
            let mut block = [0u8; BLOCK];
            for (k, c) in block.iter_mut().enumerate() {
                *c = u8::try_from((k * 37 + shift * 101) % 256).expect("a byte");
            }
            assert_eq!(token(&block), scalar(&block, token_char), "shift {shift}");
            for c in [0, b'0', b'9', b'@', b'B', 0x80, 0xff] {
                assert_eq!(eq(&block, c), scalar(&block, |x| x == c), "{c}");
            }
            assert_eq!(
                pii_fields(pii(&block)),
                PII_CLASSES.map(|class| scalar(&block, class)),
                "shift {shift}"
            );
            assert_eq!(ipv6(&block), scalar(&block, ipv6_class), "shift {shift}");
        }
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(BLOCK) {
            let block: &[u8; BLOCK] = chunk.try_into().expect("256 = 4 blocks");
            assert_eq!(token(block), scalar(block, token_char));
            assert_eq!(
                pii_fields(pii(block)),
                PII_CLASSES.map(|class| scalar(block, class))
            );
            assert_eq!(ipv6(block), scalar(block, ipv6_class));
        }
    }

    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    #[test]
    fn signed_ranges_are_the_unsigned_ranges() {
        // Every range the vector `within` can be given, every byte: the
        // scalar meaning of the add and the signed compare.
        for lo in 0..=255u8 {
            for hi in lo..=lo.saturating_add(254) {
                let (bias, limit) = signed_range(lo, hi);
                for x in 0..=255u8 {
                    assert_eq!(
                        (x as i8).wrapping_add(bias) < limit,
                        (lo..=hi).contains(&x),
                        "{lo} {hi} {x}"
                    );
                }
            }
        }
    }

    fn pii_fields(c: PiiClasses) -> [u64; 5] {
        [c.digit, c.word, c.colon, c.plus_paren, c.upper]
    }
}
