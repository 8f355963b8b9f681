//! Byte-class searches the scanners jump with, so that ordinary text (no
//! personal data, no credential) is passed over in blocks instead of being
//! tested one byte and one detector at a time.
//!
//! [`position`] tests whole 16-byte blocks without an early exit inside a
//! block, a shape LLVM turns into one vector compare per block: SSE2 on
//! x86-64 hosts, `simd128` in the guests (built with `+simd128`). It is
//! plain Rust, no `unsafe` and no target-specific code; a build without
//! SIMD gets the same answers from the scalar loop LLVM leaves.

/// Bytes per block: one 128-bit vector (SSE2, wasm `simd128`).
const LANES: usize = 16;

/// The first position at or after `from` whose byte is in `class`.
#[inline]
pub(crate) fn position(b: &[u8], from: usize, class: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = from;
    while i + LANES <= b.len() {
        let block: &[u8; LANES] = b[i..i + LANES].try_into().expect("LANES bytes");
        if block.iter().fold(false, |hit, &c| hit | class(c)) {
            break;
        }
        i += LANES;
    }
    b.get(i..)?.iter().position(|&c| class(c)).map(|k| i + k)
}

/// The first occurrence of `needle` at or after `from`, found by searching
/// for its byte at `anchor` (pick a rare one) with [`position`]. For a
/// needle whose first byte is common, this beats `str::find`'s two-way
/// search, which looks at most bytes one by one.
pub(crate) fn find(b: &[u8], from: usize, needle: &[u8], anchor: usize) -> Option<usize> {
    let key = needle[anchor];
    let mut at = from.checked_add(anchor)?;
    while let Some(k) = position(b, at, |c| c == key) {
        let start = k - anchor;
        if b[start..].starts_with(needle) {
            return Some(start);
        }
        at = k + 1;
    }
    None
}

/// An ASCII decimal digit (one compare after a wrapping subtraction, which
/// vectorises better than a range pattern).
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
        for len in 0..70 {
            for hit in (0..len).map(Some).chain([None]) {
                let mut b = vec![b'x'; len];
                if let Some(h) = hit {
                    b[h] = b'7';
                }
                for from in 0..=len + 1 {
                    let want = b
                        .get(from..)
                        .and_then(|t| t.iter().position(|&c| digit(c)))
                        .map(|k| from + k);
                    assert_eq!(
                        position(&b, from, digit),
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
