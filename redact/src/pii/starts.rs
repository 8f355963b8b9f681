//! The positions where a detector other than the email one can start,
//! found 64 bytes at a time on bit masks ([`crate::mask::pii`]) so that
//! the scalar detectors run only there, not at every byte near a digit.
//!
//! A position is a start when it is at a word boundary
//! ([`super::boundary_before`]) and [`super::detect`] could return
//! something there:
//! - a digit (SSN, card, IPv4, NANP phone, IPv6);
//! - `+` or `(` with a digit 1 to 3 bytes on (a phone allows two
//!   separators before its first digit);
//! - an uppercase letter with digits 2 and 3 bytes on (an IBAN's check
//!   digits);
//! - a hex letter or `:` from which a run of hex digits, colons and dots
//!   reaches a digit (an IPv6 address holds one, within its 45 bytes), when
//!   a colon is near (it needs two).
//!
//! Every condition is one the detectors check themselves, so the starts
//! are a superset of where a detector succeeds and the scan finds what
//! trying every position finds (the tests compare both).

use crate::mask::{self, BLOCK, PiiClasses};
use crate::skip;

/// The starts of a text, block by block (blocks at multiples of 64).
pub(super) struct Starts<'a> {
    b: &'a [u8],
    /// The block whose starts `starts` holds (`usize::MAX`: none yet).
    base: usize,
    starts: u64,
    /// The last block classified, kept for the block after it: a block's
    /// starts look up to 45 bytes into the next one.
    cached: Option<(usize, PiiClasses)>,
}

impl<'a> Starts<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Starts {
            b,
            base: usize::MAX,
            starts: 0,
            cached: None,
        }
    }

    /// The first start at or after `from`.
    #[inline]
    pub(super) fn next(&mut self, from: usize) -> Option<usize> {
        let mut s = from - from % BLOCK;
        let mut skip = from - s;
        while s < self.b.len() {
            if s != self.base {
                self.starts = self.block(s);
                self.base = s;
            }
            let m = self.starts & (!0u64 << skip);
            if m != 0 {
                return Some(s + m.trailing_zeros() as usize);
            }
            s += BLOCK;
            skip = 0;
        }
        None
    }

    /// The classes of the block at `s` (zero past the end of the text).
    fn classes(&mut self, s: usize) -> PiiClasses {
        if let Some((at, c)) = self.cached
            && at == s
        {
            return c;
        }
        let c = self.on_block(s, mask::pii).unwrap_or_default();
        self.cached = Some((s, c));
        c
    }

    /// `f` of the block at `s`, zero-padded at the end of the text; `None`
    /// past the end.
    fn on_block<T>(&self, s: usize, f: impl Fn(&[u8; BLOCK]) -> T) -> Option<T> {
        match self.b.get(s..) {
            None | Some([]) => None,
            Some(rest) => Some(match rest.first_chunk() {
                Some(block) => f(block),
                None => {
                    let mut block = [0u8; BLOCK];
                    block[..rest.len()].copy_from_slice(rest);
                    f(&block)
                }
            }),
        }
    }

    /// The starts in the block at `s`: bit `k` for `b[s + k]`.
    fn block(&mut self, s: usize) -> u64 {
        let b = self.b;
        let cur = self.classes(s);
        // Digits in the three bytes after the block, for `+`, `(` and IBAN
        // heads at its end.
        let after = (0..3).fold(0u64, |m, k| {
            m | (u64::from(b.get(s + BLOCK + k).is_some_and(|&c| skip::digit(c))) << k)
        });
        // An IPv6 address has two colons within its 45 bytes: without one
        // in this block or the next, no hex letter or colon here starts
        // one. (The next block's classes are kept for its own turn.)
        let next = self.classes(s + BLOCK);
        let colon_near = (cur.colon | next.colon) != 0;
        if cur.digit == 0 && after == 0 && !colon_near {
            return 0;
        }
        // Word boundaries: the byte before is no word byte, and a `:` does
        // not follow a `:`.
        let prev = s.checked_sub(1).map(|p| b[p]);
        let prev_word = (cur.word << 1) | u64::from(prev.is_some_and(super::is_word));
        let prev_colon = (cur.colon << 1) | u64::from(prev == Some(b':'));
        let boundary = !prev_word & !(cur.colon & prev_colon);

        // Bit `k`: a digit at `k + n`.
        let digit_at = |n: u32| (cur.digit >> n) | (after << (BLOCK as u32 - n));
        let phone = cur.plus_paren & (digit_at(1) | digit_at(2) | digit_at(3));
        let iban = cur.upper & digit_at(2) & digit_at(3);
        let mut starts = cur.digit | phone | iban;
        if colon_near {
            let ipv6 = self.on_block(s, mask::ipv6).unwrap_or(0);
            // Hex letters are the word bytes of the IPv6 class that are no digits.
            let hex_letter_or_colon = (ipv6 & cur.word & !cur.digit) | cur.colon;
            if hex_letter_or_colon & boundary != 0 {
                starts |= hex_letter_or_colon & self.ipv6_reach(s, cur, next, ipv6);
            }
        }
        starts & boundary
    }

    /// Bit `k`: a run of hex digits, colons and dots from `s + k` reaches a
    /// digit within 64 bytes (an IPv6 address needs one within 45). `cur`,
    /// `next`: the classes of the block at `s` and of the one after it;
    /// `ipv6`: the IPv6 class of the block at `s`.
    fn ipv6_reach(&self, s: usize, cur: PiiClasses, next: PiiClasses, ipv6: u64) -> u64 {
        let next_ipv6 = self.on_block(s + BLOCK, mask::ipv6).unwrap_or(0);
        let mut pass = u128::from(ipv6) | (u128::from(next_ipv6) << BLOCK);
        let mut reach = u128::from(cur.digit) | (u128::from(next.digit) << BLOCK);
        // Doubling: after the step by `n`, `reach` holds every position
        // whose run reaches a digit less than `2n` bytes on, and `pass`
        // every position that starts a run of `2n` bytes.
        for n in [1, 2, 4, 8, 16, 32] {
            reach |= (reach >> n) & pass;
            pass &= pass >> n;
        }
        reach as u64
    }
}
