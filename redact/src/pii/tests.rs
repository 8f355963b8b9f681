//! The detectors one by one: what each takes and what it leaves.

use super::*;

fn kinds(text: &str) -> Vec<(&str, Entity)> {
    find(text, &Entity::ALL)
        .into_iter()
        .map(|s| (&text[s.start..s.end], s.entity))
        .collect()
}

#[test]
fn cards_need_luhn() {
    assert_eq!(
        kinds("4111111111111111"),
        [("4111111111111111", Entity::CreditCard)]
    );
    assert_eq!(
        kinds("5500-0000-0000-0004 ok"),
        [("5500-0000-0000-0004", Entity::CreditCard)]
    );
    assert!(kinds("4111111111111112").is_empty());
    assert!(kinds("0000 0000 0000 0000").is_empty());
    assert_eq!(
        kinds("3782 822463 10005"),
        [("3782 822463 10005", Entity::CreditCard)]
    );
    // Luhn-valid, but a list of numbers rather than a printed card.
    assert!(luhn(&[1, 2, 3, 4, 5, 6, 6, 6, 1, 2, 3, 4, 5, 6, 3]));
    assert!(kinds("12-3456 666-12-3456 3").is_empty());
}

#[test]
fn ibans_need_mod97() {
    assert_eq!(
        kinds("DE89370400440532013000."),
        [("DE89370400440532013000", Entity::Iban)]
    );
    assert!(kinds("DE89370400440532013001").is_empty());
}

#[test]
fn ssn_rules() {
    assert_eq!(kinds("078-05-1120"), [("078-05-1120", Entity::Ssn)]);
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
    ] {
        assert_eq!(kinds(bad), [], "{bad}");
    }
}

#[test]
fn phones() {
    assert_eq!(
        kinds("call 1-800-555-0199!"),
        [("1-800-555-0199", Entity::Phone)]
    );
    assert_eq!(kinds("+14155552671"), [("+14155552671", Entity::Phone)]);
    assert_eq!(
        kinds("tel 555.123.4567 - 2"),
        [("555.123.4567", Entity::Phone)]
    );
    assert!(kinds("5551234567 and 555-1234 and +123").is_empty());
}

#[test]
fn ip_addresses() {
    assert_eq!(kinds("10.0.0.1"), [("10.0.0.1", Entity::Ipv4)]);
    assert!(kinds("256.1.1.1 1.2.3 1.2.3.4.5").is_empty());
    assert_eq!(kinds("at ::1."), [("::1", Entity::Ipv6)]);
    assert_eq!(
        kinds("fe80::1ff:fe23:4567:890a"),
        [("fe80::1ff:fe23:4567:890a", Entity::Ipv6)]
    );
    assert!(kinds("std::io::Result at 12:30:45").is_empty());
}

#[test]
fn emails() {
    assert_eq!(
        kinds("<a.b@c-d.example.org>."),
        [("a.b@c-d.example.org", Entity::Email)]
    );
    assert!(kinds("@handle and user@localhost and x@y.1").is_empty());
}

#[test]
fn partial_keeps_last_four() {
    assert_eq!(
        redact("SSN 078-05-1120", &[Entity::Ssn], Mask::Partial).unwrap(),
        "SSN ***-**-1120"
    );
}

#[test]
fn non_ascii_text_is_safe() {
    // Patterns are ASCII; neighbouring multi-byte text is kept intact.
    assert_eq!(
        redact(
            "Grüße: jane@example.de — ☎ +49 30 1234567.",
            &Entity::ALL,
            Mask::Label
        )
        .unwrap(),
        "Grüße: [EMAIL] — ☎ [PHONE]."
    );
    assert_eq!(redact("jürgen@exämple.de", &Entity::ALL, Mask::Label), None);
}

// The card detector before it kept running sums: the reference the
// corpus test below holds the running version to.
/// The most digits a card number has.
const CARD_DIGITS: usize = 19;

/// (Reference) Digit groups from `i` (a digit), separated by single spaces or dashes,
/// (Reference) up to [`CARD_DIGITS`]: the digits, each group's length, and the byte
/// (Reference) offset after each group. On the stack: this runs at every number in the
/// (Reference) text, and allocating here was a third of the scan (perf).
struct DigitGroups {
    digits: [u8; CARD_DIGITS],
    /// (byte offset after the group, digits up to it); a separator is only
    /// taken when a digit follows, so there are at most as many as digits.
    ends: [(usize, usize); CARD_DIGITS],
    groups: usize,
}

impl DigitGroups {
    fn scan(b: &[u8], i: usize) -> Self {
        let mut g = DigitGroups {
            digits: [0; CARD_DIGITS],
            ends: [(0, 0); CARD_DIGITS],
            groups: 0,
        };
        let mut n = 0;
        let mut j = i;
        while j < b.len() && n < CARD_DIGITS {
            let c = b[j];
            if c.is_ascii_digit() {
                g.digits[n] = c - b'0';
                n += 1;
                j += 1;
            } else if (c == b' ' || c == b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                g.ends[g.groups] = (j, n);
                g.groups += 1;
                j += 1;
            } else {
                break;
            }
        }
        g.ends[g.groups] = (j, n);
        g.groups += 1;
        g
    }
}

/// (Reference) 13-19 digit card numbers (optionally grouped) passing the Luhn check.
fn card_reference(b: &[u8], i: usize) -> Option<usize> {
    if b[i] == b'0' {
        return None;
    }
    let g = DigitGroups::scan(b, i);
    let ends = &g.ends[..g.groups];
    let mut lens = [0; CARD_DIGITS];
    for k in 0..ends.len() {
        lens[k] = ends[k].1 - if k == 0 { 0 } else { ends[k - 1].1 };
    }
    (0..ends.len()).rev().find_map(|k| {
        let (end, n) = ends[k];
        let ok = (13..=19).contains(&n)
            && card_layout(&lens[..=k])
            && boundary_after(b, end)
            && luhn(&g.digits[..n]);
        ok.then_some(end)
    })
}

/// (Reference) Printed card layouts: one run, groups of four (last may be short), or
/// (Reference) the 4-6-5 / 4-6-4 of Amex and Diners. Other groupings are lists of numbers.
fn card_layout(lens: &[usize]) -> bool {
    match lens {
        [_] | [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|l| *l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[test]
fn cards_found_with_running_sums_match_the_reference() {
    let mut texts = crate::tests::corpus(5_000);
    texts.extend(
        [
            "4111 1111 1111 1111 1",
            "3782 822463 10005",
            "3056 930902 5904",
            "4111-1111-1111-1111-111",
            "1234567890123456789012",
            "4111 1111 1111 1111 4444 33",
        ]
        .map(String::from),
    );
    let mut cards = 0;
    for text in &texts {
        let b = text.as_bytes();
        for i in (0..b.len()).filter(|&i| b[i].is_ascii_digit()) {
            let want = card_reference(b, i);
            assert_eq!(card(b, i), want, "{text:?} at {i}");
            cards += usize::from(want.is_some());
        }
    }
    assert!(cards > 1_000, "the corpus has cards: {cards}");
}

/// Texts that put every corpus shape at every offset around a 64-byte
/// block edge: each corpus text after 0-130 bytes of filler (ASCII, word
/// bytes, digits, multi-byte characters), cut to at most 200 bytes.
fn block_edge_texts(cases: usize) -> Vec<String> {
    let fillers = ["x", " ", "é", "7", ":", "ab"];
    let mut texts = vec![String::new()];
    for (n, text) in crate::tests::corpus(cases).into_iter().enumerate() {
        let filler = fillers[n % fillers.len()];
        let pad = filler.repeat((n * 7) % 131 / filler.len());
        let mut t = pad + &text;
        let mut cut = t.len().min(200);
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        texts.push(t);
    }
    // Every length 0-200 of one dense text.
    let dense = "a1 +1 (415) 555-2671 é fe80::1 DE89 3704 0044 0532 0130 00 \
                 078-05-1120 10.0.0.1 4111-1111-1111-1111 x@y.io 日本 ::ffff:10.0.0.1 ";
    let dense = dense.repeat(2);
    texts.extend(
        (0..=200)
            .filter(|&n| dense.is_char_boundary(n))
            .map(|n| dense[..n].to_owned()),
    );
    texts
}

#[test]
fn starts_hold_every_position_a_detector_takes() {
    let all = |_| true;
    let mut taken = 0;
    for (n, text) in block_edge_texts(20_000).into_iter().enumerate() {
        let b = text.as_bytes();
        let mut scan = starts::Starts::new(b);
        let mut starts = Vec::new();
        let mut at = 0;
        while let Some(p) = scan.next(at) {
            starts.push(p);
            at = p + 1;
        }
        for i in 0..b.len() {
            let c = b[i];
            let could = boundary_before(b, i)
                && (c.is_ascii_alphanumeric() || matches!(c, b'+' | b'(' | b':'));
            // A start is a boundary, and a taken position is a start.
            if starts.binary_search(&i).is_ok() {
                assert!(could, "{text:?} at {i}");
            }
            if could && detect(b, i, &all).is_some() {
                assert!(starts.binary_search(&i).is_ok(), "{text:?} at {i}");
                taken += 1;
            }
        }
        // Asking from any position gives the first start at or after it
        // (on every tenth text: one scan per position).
        for from in (0..=b.len() + 1).filter(|_| n % 10 == 0) {
            let want = starts.iter().copied().find(|&p| p >= from);
            assert_eq!(
                starts::Starts::new(b).next(from),
                want,
                "{text:?} from {from}"
            );
        }
    }
    assert!(taken > 10_000, "the texts have items: {taken}");
}

#[test]
fn block_edges_find_what_trying_every_position_finds() {
    use Entity::*;
    let selections: [&[Entity]; 4] = [&Entity::ALL, &[Ipv6], &[Phone, Iban], &[Ssn, Ipv4]];
    let mut found = 0;
    for text in block_edge_texts(20_000) {
        for enabled in selections {
            let fast = find_with(&text, enabled, true);
            assert_eq!(
                fast,
                find_with(&text, enabled, false),
                "{text:?} {enabled:?}"
            );
            found += fast.len();
        }
    }
    assert!(found > 15_000, "the texts have items: {found}");
}

#[test]
fn phones_checked_from_the_first_group_match_the_reference() {
    let mut phones = 0;
    for text in block_edge_texts(20_000) {
        let b = text.as_bytes();
        for i in (0..b.len()).filter(|&i| matches!(b[i], b'0'..=b'9' | b'+' | b'(')) {
            // Every cut, as the scan cuts the text before the next email.
            for limit in [b.len(), (i + 4).min(b.len()), (i + 12).min(b.len())] {
                let want = phone_walk(&b[..limit], i, b[i] == b'+');
                assert_eq!(phone(&b[..limit], i), want, "{text:?} at {i} to {limit}");
                phones += usize::from(want.is_some());
            }
        }
    }
    assert!(phones > 1_000, "the texts have phones: {phones}");
}

/// (Reference) [`detect`] without the first tests on the digit run: every
/// detector that can start with `b[i]`, in order.
fn detect_reference(b: &[u8], i: usize, on: &dyn Fn(Entity) -> bool) -> Option<(usize, Entity)> {
    let c = b[i];
    let try_ = |e: Entity, f: fn(&[u8], usize) -> Option<usize>| {
        if on(e) {
            f(b, i).map(|end| (end, e))
        } else {
            None
        }
    };
    if c.is_ascii_digit() {
        try_(Entity::Ssn, ssn)
            .or_else(|| try_(Entity::CreditCard, card))
            .or_else(|| try_(Entity::Ipv4, ipv4))
            .or_else(|| try_(Entity::Phone, phone))
            .or_else(|| try_(Entity::Ipv6, ipv6))
    } else {
        detect(b, i, on)
    }
}

#[test]
fn digit_runs_gate_detectors_as_the_reference_decides() {
    let selections: [&[Entity]; 3] = [
        &Entity::ALL,
        &[Entity::Ipv6],
        &[Entity::Phone, Entity::Ipv4],
    ];
    let mut taken = 0;
    let mut texts = block_edge_texts(20_000);
    texts.push(format!(
        "{}:: {}.1 {}-",
        "1".repeat(44),
        "9".repeat(45),
        "7".repeat(30)
    ));
    for text in texts {
        let b = text.as_bytes();
        for i in (0..b.len()).filter(|&i| b[i].is_ascii_digit()) {
            for enabled in selections {
                let on = |e| enabled.contains(&e);
                // Every cut, as the scan cuts the text before the next email.
                for limit in [b.len(), (i + 5).min(b.len())] {
                    let want = detect_reference(&b[..limit], i, &on);
                    assert_eq!(
                        detect(&b[..limit], i, &on),
                        want,
                        "{text:?} at {i} to {limit}"
                    );
                    taken += usize::from(want.is_some());
                }
            }
        }
    }
    assert!(taken > 10_000, "the texts have items: {taken}");
}
