//! Byte-class searches the scanners jump with, so that ordinary text (no
//! personal data, no credential) is passed over in blocks instead of being
//! tested one byte and one detector at a time.
//!
//! [`position`] classifies 64 bytes at a time into a bit mask
//! ([`crate::mask`]: SSE2 on x86-64 hosts, `simd128` in the guests) and
//! takes the first set bit: one branch per 64 bytes, and the exact position
//! without a byte-by-byte walk inside the block that hit.

use crate::mask;

/// What [`position`] searches for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Class {
    /// This byte.
    Byte(u8),
}

impl Class {
    #[inline]
    fn test(self, c: u8) -> bool {
        match self {
            Class::Byte(k) => c == k,
        }
    }

    #[inline]
    fn mask(self, block: &[u8; mask::BLOCK]) -> u64 {
        match self {
            Class::Byte(k) => mask::eq(block, k),
        }
    }
}

/// The first position at or after `from` whose byte is in `class`.
#[inline]
pub(crate) fn position(b: &[u8], from: usize, class: Class) -> Option<usize> {
    let mut i = from;
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk) {
        let m = class.mask(block);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += mask::BLOCK;
    }
    b.get(i..)?
        .iter()
        .position(|&c| class.test(c))
        .map(|k| i + k)
}

/// The first occurrence of `needle` at or after `from`, found by searching
/// for its byte at `anchor` (pick a rare one) with [`position`]. For a
/// needle whose first byte is common, this beats `str::find`'s two-way
/// search, which looks at most bytes one by one.
pub(crate) fn find(b: &[u8], from: usize, needle: &[u8], anchor: usize) -> Option<usize> {
    let key = Class::Byte(needle[anchor]);
    let mut at = from.checked_add(anchor)?;
    while let Some(k) = position(b, at, key) {
        let start = k - anchor;
        if b[start..].starts_with(needle) {
            return Some(start);
        }
        at = k + 1;
    }
    None
}

/// An ASCII decimal digit (one compare after a wrapping subtraction).
#[inline]
pub(crate) fn digit(c: u8) -> bool {
    c.wrapping_sub(b'0') < 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_linear_search_finds() {
        // Every start offset and every hit position around block edges.
        for len in 0..140 {
            for hit in (0..len).map(Some).chain([None]) {
                let mut b = vec![b'x'; len];
                if let Some(h) = hit {
                    b[h] = b'7';
                }
                for from in 0..=len + 1 {
                    let want = b
                        .get(from..)
                        .and_then(|t| t.iter().position(|&c| c == b'7'))
                        .map(|k| from + k);
                    assert_eq!(
                        position(&b, from, Class::Byte(b'7')),
                        want,
                        "len {len} hit {hit:?} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn finds_needles_like_str_find() {
        let hay = "--x-----BEGIN-----BEGIN xBEGIN -----BEGIN -----BEGIN ";
        for from in 0..=hay.len() {
            for anchor in 0..11 {
                assert_eq!(
                    find(hay.as_bytes(), from, b"-----BEGIN ", anchor),
                    hay[from..].find("-----BEGIN ").map(|k| from + k),
                    "from {from} anchor {anchor}"
                );
            }
        }
    }

    #[test]
    fn digit_class() {
        let digits: Vec<u8> = (0..=255u8).filter(|&c| digit(c)).collect();
        assert_eq!(digits, b"0123456789");
    }
}
