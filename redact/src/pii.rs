//! Personal data: finds emails, phones, SSNs, cards, IBANs and IP addresses
//! in one pass over the bytes and masks them.
//!
//! Every pattern is ASCII, so the scan is byte-wise and never splits a
//! multi-byte character. False positives are limited by validation: cards
//! must pass Luhn, IBANs mod-97, IP addresses must parse, SSNs must use
//! assignable area/group/serial numbers and phones must look like
//! `+<8-15 digits>` or a grouped NANP number.

use std::net::Ipv6Addr;

use crate::skip;

mod starts;

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Email,
    Phone,
    Ssn,
    CreditCard,
    Iban,
    Ipv4,
    Ipv6,
}

impl Entity {
    /// Every entity, the default selection.
    pub const ALL: [Entity; 7] = [
        Entity::Email,
        Entity::Phone,
        Entity::Ssn,
        Entity::CreditCard,
        Entity::Iban,
        Entity::Ipv4,
        Entity::Ipv6,
    ];

    /// The config name (`credit-card`, ...).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "email" => Entity::Email,
            "phone" => Entity::Phone,
            "ssn" => Entity::Ssn,
            "credit-card" => Entity::CreditCard,
            "iban" => Entity::Iban,
            "ipv4" => Entity::Ipv4,
            "ipv6" => Entity::Ipv6,
            _ => return None,
        })
    }

    /// The `label` mask text.
    pub fn label(self) -> &'static str {
        match self {
            Entity::Email => "[EMAIL]",
            Entity::Phone => "[PHONE]",
            Entity::Ssn => "[SSN]",
            Entity::CreditCard => "[CREDIT_CARD]",
            Entity::Iban => "[IBAN]",
            Entity::Ipv4 | Entity::Ipv6 => "[IP_ADDRESS]",
        }
    }
}

/// How a found span is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// `[EMAIL]`, `[PHONE]`, ...
    Label,
    /// Letters and digits become `*`, punctuation stays.
    Stars,
    /// Keep the last 4 letters/digits (emails: first letter and domain).
    Partial,
}

/// A found item: byte range in the text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub entity: Entity,
}

/// `text` with every enabled entity masked, or `None` when nothing was found.
pub fn redact(text: &str, enabled: &[Entity], mask: Mask) -> Option<String> {
    let spans = find(text, enabled);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        out.push_str(&text[at..s.start]);
        apply_mask(&mut out, &text[s.start..s.end], s.entity, mask);
        at = s.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn apply_mask(out: &mut String, item: &str, entity: Entity, mask: Mask) {
    match mask {
        Mask::Label => out.push_str(entity.label()),
        Mask::Stars => out.extend(
            item.chars()
                .map(|c| if c.is_ascii_alphanumeric() { '*' } else { c }),
        ),
        Mask::Partial if entity == Entity::Email => {
            let at = item.find('@').unwrap_or(0);
            out.push_str(&item[..1.min(at)]);
            out.push_str("***");
            out.push_str(&item[at..]);
        }
        Mask::Partial => {
            let keep_from = item
                .bytes()
                .filter(u8::is_ascii_alphanumeric)
                .count()
                .saturating_sub(4);
            let mut seen = 0;
            out.extend(item.chars().map(|c| {
                if !c.is_ascii_alphanumeric() {
                    return c;
                }
                seen += 1;
                if seen > keep_from { c } else { '*' }
            }));
        }
    }
}

/// All enabled entities in `text`, sorted and non-overlapping.
pub fn find(text: &str, enabled: &[Entity]) -> Vec<Span> {
    find_with(text, enabled, true)
}

/// [`find`]; `fast`: try only the positions where a detector can start
/// ([`starts`]: found on 64-byte bit masks), rather than every position.
/// The answers are the same either way (the tests compare both on a
/// corpus); `false` is the reference.
pub(crate) fn find_with(text: &str, enabled: &[Entity], fast: bool) -> Vec<Span> {
    let b = text.as_bytes();
    let on = |e| enabled.contains(&e);
    let mut spans = Vec::new();
    if on(Entity::Email) {
        find_emails(b, &mut spans);
    }
    if enabled.iter().all(|&e| e == Entity::Email) {
        return spans;
    }
    // Everything else starts at a word boundary; emails found above are skipped.
    let emails = spans.len();
    let mut next_email = 0;
    let mut starts = starts::Starts::new(b);
    let mut i = 0;
    while i < b.len() {
        if fast {
            match starts.next(i) {
                Some(start) => i = start,
                None => break,
            }
        }
        if next_email < emails && i >= spans[next_email].start {
            i = spans[next_email].end;
            next_email += 1;
            continue;
        }
        let c = b[i];
        let found = if !boundary_before(b, i)
            || !(c.is_ascii_alphanumeric() || c == b'+' || c == b'(' || c == b':')
        {
            None
        } else {
            let limit = if next_email < emails {
                spans[next_email].start
            } else {
                b.len()
            };
            detect(&b[..limit], i, &on)
        };
        match found {
            Some((end, entity)) => {
                spans.push(Span {
                    start: i,
                    end,
                    entity,
                });
                i = end;
            }
            None => i += 1,
        }
    }
    spans.sort_by_key(|s| s.start);
    spans
}

/// Try each detector that can start with `b[i]`, most specific first.
fn detect(b: &[u8], i: usize, on: &dyn Fn(Entity) -> bool) -> Option<(usize, Entity)> {
    let c = b[i];
    let try_ = |e: Entity, f: fn(&[u8], usize) -> Option<usize>| {
        if on(e) {
            f(b, i).map(|end| (end, e))
        } else {
            None
        }
    };
    if c.is_ascii_digit() {
        // Each detector's first test on the run of digits from `i` and the
        // byte after it, so that most numbers in text try none of them:
        // an SSN's area is 3 digits and a `-`, a card has 13 digits in its
        // first group or another group after one separator, an IPv4's first
        // octet is at most 3 digits and a `.`, a NANP phone's first group is
        // 3 digits or a lone `1` (`phone` checks it too, for its other
        // callers; here it saves the call), an IPv6 address goes on with a
        // hex letter, `:` or `.` within its 45 bytes.
        let run = b[i..]
            .iter()
            .take(IPV6_LEN)
            .take_while(|c| c.is_ascii_digit())
            .count();
        let after = b.get(i + run).copied().unwrap_or(0);
        let separated =
            (after == b' ' || after == b'-') && b.get(i + run + 1).is_some_and(u8::is_ascii_digit);
        let gate = |open: bool, e: Entity, f: fn(&[u8], usize) -> Option<usize>| {
            if open { try_(e, f) } else { None }
        };
        gate(run == 3 && after == b'-', Entity::Ssn, ssn)
            .or_else(|| gate(run >= 13 || separated, Entity::CreditCard, card))
            .or_else(|| gate(run <= 3 && after == b'.', Entity::Ipv4, ipv4))
            .or_else(|| gate(run == 3 || (run == 1 && c == b'1'), Entity::Phone, phone))
            .or_else(|| {
                let more = after.is_ascii_hexdigit() || after == b':' || after == b'.';
                gate(run < IPV6_LEN && more, Entity::Ipv6, ipv6)
            })
    } else if c == b'+' || c == b'(' {
        try_(Entity::Phone, phone)
    } else if c.is_ascii_uppercase() {
        try_(Entity::Iban, iban).or_else(|| try_(Entity::Ipv6, ipv6))
    } else {
        try_(Entity::Ipv6, ipv6)
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn boundary_before(b: &[u8], i: usize) -> bool {
    i == 0 || !(is_word(b[i - 1]) || (b[i] == b':' && b[i - 1] == b':'))
}

fn boundary_after(b: &[u8], j: usize) -> bool {
    j >= b.len() || !is_word(b[j])
}

/// `x.y+z@host.tld`: expand around each `@`.
fn find_emails(b: &[u8], spans: &mut Vec<Span>) {
    let local = |c: u8| is_word(c) || matches!(c, b'.' | b'%' | b'+' | b'-');
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut from = 0;
    let mut next = 0;
    while let Some(k) = skip::position(b, next.max(from), skip::Class::Byte(b'@')) {
        next = k + 1;
        let mut s = k;
        while s > from && local(b[s - 1]) {
            s -= 1;
        }
        while s < k && b[s] == b'.' {
            s += 1;
        }
        let mut e = k + 1;
        while e < b.len() && domain(b[e]) {
            e += 1;
        }
        while e > k + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        let host = &b[k + 1..e];
        let tld = host.rsplit(|c| *c == b'.').next().unwrap_or(&[]);
        let valid = s < k
            && host.contains(&b'.')
            && host[0].is_ascii_alphanumeric()
            && !host.windows(2).any(|w| w == b"..")
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic);
        if valid {
            spans.push(Span {
                start: s,
                end: e,
                entity: Entity::Email,
            });
            from = e;
        }
    }
}

/// `ddd-dd-dddd` with an assignable area (not 000, 666, 9xx), group and serial.
fn ssn(b: &[u8], i: usize) -> Option<usize> {
    let s = b.get(i..i + 11)?;
    let shape = s.iter().enumerate().all(|(k, c)| {
        if k == 3 || k == 6 {
            *c == b'-'
        } else {
            c.is_ascii_digit()
        }
    });
    if !shape || !boundary_after(b, i + 11) || b.get(i + 11) == Some(&b'-') {
        return None;
    }
    let area = &s[0..3];
    let valid = area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &s[4..6] != b"00"
        && &s[7..11] != b"0000";
    valid.then_some(i + 11)
}

/// The most digits a card number has.
const CARD_DIGITS: usize = 19;

/// 13-19 digit card numbers (optionally grouped) passing the Luhn check.
///
/// Digit groups from `i` (a digit) are separated by single spaces or dashes,
/// up to [`CARD_DIGITS`]; the longest run of groups that is a card wins.
/// Each group is judged as it ends, from running sums ([`CardScan`]): no
/// array of digits or groups to clear per number, which in a guest was a
/// `memory.fill` call into the host at every number in the text.
fn card(b: &[u8], i: usize) -> Option<usize> {
    if b[i] == b'0' {
        return None;
    }
    let mut scan = CardScan {
        all_four: true,
        ..CardScan::default()
    };
    let mut j = i;
    while j < b.len() && scan.digits < CARD_DIGITS {
        let c = b[j];
        if c.is_ascii_digit() {
            scan.digit(c - b'0');
            j += 1;
        } else if (c == b' ' || c == b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            scan.end_group(b, j);
            j += 1;
        } else {
            break;
        }
    }
    scan.end_group(b, j);
    scan.best
}

/// The state of [`card`]'s scan.
#[derive(Default)]
struct CardScan {
    /// Digits so far at even and odd positions (from the first digit).
    plain: [u32; 2],
    /// The same digits doubled the Luhn way (`2d`, less 9 above 9).
    doubled: [u32; 2],
    digits: usize,
    /// Groups ended so far, and the digits in the current one.
    groups: usize,
    len: usize,
    /// The lengths of the first two groups (Amex/Diners layouts).
    head: [usize; 2],
    /// Every ended group has four digits.
    all_four: bool,
    /// The end of the longest card so far.
    best: Option<usize>,
}

impl CardScan {
    fn digit(&mut self, d: u8) {
        let d = u32::from(d);
        let parity = self.digits % 2;
        self.plain[parity] += d;
        self.doubled[parity] += if d * 2 > 9 { d * 2 - 9 } else { d * 2 };
        self.digits += 1;
        self.len += 1;
    }

    /// The current group ends at byte `end`: the groups so far are a card
    /// when they are 13-19 digits in a printed layout ([`card_layout`]),
    /// end at a word boundary and pass Luhn.
    fn end_group(&mut self, b: &[u8], end: usize) {
        let (k, len, n) = (self.groups, self.len, self.digits);
        // Luhn doubles every second digit from the last: those at the
        // parity of `n` counted from the first.
        let luhn = (self.plain[(n + 1) % 2] + self.doubled[n % 2]).is_multiple_of(10);
        if (13..=CARD_DIGITS).contains(&n)
            && card_layout(k, len, self.head, self.all_four)
            && boundary_after(b, end)
            && luhn
        {
            self.best = Some(end);
        }
        if k < 2 {
            self.head[k] = len;
        }
        self.all_four &= len == 4;
        self.groups += 1;
        self.len = 0;
    }
}

/// Printed card layouts: one run, groups of four (last may be short), or
/// the 4-6-5 / 4-6-4 of Amex and Diners. Other groupings are lists of
/// numbers. `k`: the index of the last group, `len` its length, `head` the
/// first two lengths, `all_four` whether every group before it has four.
fn card_layout(k: usize, len: usize, head: [usize; 2], all_four: bool) -> bool {
    k == 0
        || (all_four && (1..=4).contains(&len))
        || (k == 2 && head == [4, 6] && (4..=5).contains(&len))
}

/// Dotted quad, each octet 0-255, not part of a longer dotted number.
fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    if i >= 2 && b[i - 1] == b'.' && b[i - 2].is_ascii_digit() {
        return None; // the tail of a longer dotted number
    }
    let mut j = i;
    for octet in 0..4 {
        let start = j;
        let mut v = 0u32;
        while j < b.len() && b[j].is_ascii_digit() && j - start < 3 {
            v = v * 10 + u32::from(b[j] - b'0');
            j += 1;
        }
        if j == start || v > 255 {
            return None;
        }
        if octet < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    let continues = b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit);
    (boundary_after(b, j) && !continues).then_some(j)
}

/// `+<8-15 digits>` with optional separators, or a NANP number grouped
/// `(ddd) ddd-dddd` / `ddd-ddd-dddd` / `1 ddd ddd dddd`. Ungrouped digit runs
/// are not phones: they are far more often ids and amounts.
fn phone(b: &[u8], i: usize) -> Option<usize> {
    let plus = b[i] == b'+';
    // From a digit, the first group is a NANP number's first: three
    // digits, or a lone `1`. Most numbers in text fail here, before the
    // walk below.
    if b[i].is_ascii_digit() {
        let run = b[i..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(run == 3 || (run == 1 && b[i] == b'1')) {
            return None;
        }
    }
    phone_walk(b, i, plus)
}

/// [`phone`]'s walk over the digit groups from `i` (after a `+` when
/// `plus`), without the first-group check (the tests compare the two).
fn phone_walk(b: &[u8], i: usize, plus: bool) -> Option<usize> {
    let mut j = i + usize::from(plus);
    // Digit groups with the byte offset after each; separators: space - . ( )
    // At most one group per two of the 24 bytes looked at; on the stack.
    let mut groups = [(0usize, 0usize, 0u8); 12]; // (len, end, first digit)
    let mut n = 0;
    let mut run = 0;
    let mut seps = 0;
    while j < b.len() && j - i < 24 {
        let c = b[j];
        if c.is_ascii_digit() {
            if run == 0 {
                groups[n] = (0, 0, c);
                n += 1;
            }
            run += 1;
            seps = 0;
            let g = &mut groups[n - 1];
            g.0 = run;
            g.1 = j + 1;
        } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && seps < 2 {
            run = 0;
            seps += 1;
        } else {
            break;
        }
        j += 1;
    }
    // Longest acceptable prefix of groups.
    let lens_are = |g: &[(usize, usize, u8)], want: &[usize]| {
        g.len() == want.len() && g.iter().zip(want).all(|(x, w)| x.0 == *w)
    };
    (1..=n).rev().find_map(|k| {
        let g = &groups[..k];
        let end = g[k - 1].1;
        let total: usize = g.iter().map(|x| x.0).sum();
        let ok = if plus {
            (8..=15).contains(&total)
        } else {
            lens_are(g, &[3, 3, 4]) || (lens_are(g, &[1, 3, 3, 4]) && g[0].2 == b'1')
        };
        (ok && boundary_after(b, end)).then_some(end)
    })
}

/// `CCkk` + 11-30 letters/digits, optionally in space-separated groups,
/// passing the ISO 13616 mod-97 check.
fn iban(b: &[u8], i: usize) -> Option<usize> {
    let head = b.get(i..i + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    let ok = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let mut chars = Vec::with_capacity(34);
    let mut ends = Vec::new();
    let mut j = i;
    while j < b.len() && chars.len() < 34 {
        if ok(b[j]) {
            chars.push(b[j]);
            j += 1;
        } else if b[j] == b' ' && b.get(j + 1).is_some_and(|c| ok(*c)) {
            ends.push((j, chars.len()));
            j += 1;
        } else {
            break;
        }
    }
    ends.push((j, chars.len()));
    ends.iter().rev().find_map(|&(end, n)| {
        ((15..=34).contains(&n) && boundary_after(b, end) && mod97(&chars[..n])).then_some(end)
    })
}

fn mod97(chars: &[u8]) -> bool {
    let mut r: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A' + 10)) % 97
        };
    }
    r == 1
}

/// The most bytes [`ipv6`] looks at.
const IPV6_LEN: usize = 45;

/// Hex groups with colons (and an optional embedded IPv4 tail) that parse as
/// an IPv6 address. At least one decimal digit is required so that code like
/// `a::b` is not taken for an address.
fn ipv6(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut colons = 0;
    while j < b.len()
        && j - i < IPV6_LEN
        && (b[j].is_ascii_hexdigit() || b[j] == b':' || b[j] == b'.')
    {
        colons += usize::from(b[j] == b':');
        j += 1;
    }
    while j > i && b[j - 1] == b'.' {
        j -= 1;
    }
    if colons < 2 || !boundary_after(b, j) {
        return None;
    }
    let s = std::str::from_utf8(&b[i..j]).ok()?;
    (s.bytes().any(|c| c.is_ascii_digit()) && s.parse::<Ipv6Addr>().is_ok()).then_some(j)
}

#[cfg(test)]
mod tests;
