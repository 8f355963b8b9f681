//! [`redact`] as the logs use it, and hostile input for both scanners.

use super::*;

const OPENAI: &str = "sk-proj-4fT9xQ2mZ7vL1pR8sK3nB6wY0cD5eH";

#[test]
fn everything_sensitive_is_masked_together() {
    let text = format!(
        "mail jane.doe@example.com, card 4111 1111 1111 1111, ssn 078-05-1120, \
         call +1 415 555 2671, key {OPENAI}, id AKIAIOSFODNN7EXAMPLE."
    );
    assert_eq!(
        redact(&text),
        "mail [EMAIL], card [CREDIT_CARD], ssn [SSN], call [PHONE], \
         key [REDACTED:openai-key], id [REDACTED:aws-access-key-id]."
    );
}

#[test]
fn clean_text_is_borrowed() {
    let text = "What is the capital of France? Order 12345, 3 items at 4.50.";
    assert!(matches!(redact(text), Cow::Borrowed(t) if t == text));
}

#[test]
fn near_miss_cards_fail_luhn_and_stay() {
    let valid = "4111111111111111";
    let mut masked = 0;
    for last in 0..10 {
        let n = format!("{}{last}", &valid[..15]);
        let out = redact(&n);
        if out == "[CREDIT_CARD]" {
            masked += 1;
        } else {
            assert_eq!(out, n, "a Luhn failure is left alone");
        }
    }
    assert_eq!(masked, 1, "exactly one check digit passes Luhn");
    // Too short and too long for a card; a list of numbers, not a card.
    for n in [
        "411111111111",
        "41111111111111111111",
        "12-3456 666-12-3456 3",
    ] {
        assert_eq!(redact(n), n);
    }
}

#[test]
fn unicode_neighbours_and_lookalikes() {
    // Multi-byte text around the items is kept byte for byte.
    assert_eq!(
        redact("日本語 jane@example.jp ✓ 4111-1111-1111-1111 🚀"),
        "日本語 [EMAIL] ✓ [CREDIT_CARD] 🚀"
    );
    // Fullwidth digits and a non-ASCII domain are not the ASCII patterns;
    // they must neither match nor panic on a char boundary.
    let lookalike = "４１１１１１１１１１１１１１１１ jürgen@exämple.de";
    assert_eq!(redact(lookalike), lookalike);
    // Combining marks and right-to-left text next to an email.
    assert_eq!(
        redact("e\u{301}\u{202e}a.b@c.org\u{202c}"),
        "e\u{301}\u{202e}[EMAIL]\u{202c}"
    );
}

#[test]
fn huge_inputs_are_scanned_whole() {
    // 4 MiB of digit runs, separators and `@`s (the shapes every detector
    // starts on), with one card and one key at the very end: the scanners
    // are linear, and nothing is missed past the first megabyte.
    let mut text = String::with_capacity(4 << 20);
    while text.len() < 4 << 20 {
        text.push_str("1234-5678 9@a.@@x 12.34.56 +12 ::1: ghp_ sk- ");
    }
    text.push_str("4111111111111111 ");
    text.push_str(OPENAI);
    let out = redact(&text);
    assert!(
        out.ends_with("[CREDIT_CARD] [REDACTED:openai-key]"),
        "{}",
        &out[out.len() - 80..]
    );

    // One unbroken token and one unbroken digit run of 1 MiB each.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u32 = 1;
    let token: String = (0..1 << 20)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(alphabet[(x >> 16) as usize % alphabet.len()])
        })
        .collect();
    assert_eq!(redact(&token), "[REDACTED:high-entropy-token]");
    let digits = "7".repeat(1 << 20);
    assert_eq!(redact(&digits), digits);
    // Many `@` with a long local part before each.
    let ats = format!("{}@", "a".repeat(1000)).repeat(1000);
    assert_eq!(redact(&ats), ats);
}

#[test]
fn secrets_then_pii_keeps_keys_whole() {
    // A key full of digits is not half-taken for a phone number, and the
    // value of any `name=value` is judged on its own.
    let key = "sk-1415555267114155552671abcd";
    assert_eq!(redact(&format!("k={key}")), "k=[REDACTED:openai-key]");
    assert_eq!(
        redact(&format!("api_key={key} OPENAI_API_KEY={key}")),
        "api_key=[REDACTED:openai-key] OPENAI_API_KEY=[REDACTED:openai-key]"
    );
}

/// A corpus of texts built from the shapes every detector starts on (and
/// stops at), glued in random orders: digits, separators, hex letters,
/// colons, `@`, whole items, keys, PEM markers and multi-byte text.
pub(crate) fn corpus(cases: usize) -> Vec<String> {
    let gh = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
    let fragments: Vec<&str> = vec![
        " ",
        "  ",
        "\n",
        ", ",
        "the ",
        "Order ",
        "order",
        "48213",
        "2026-11-20",
        "12:30:45",
        "-",
        "+",
        "(",
        ")",
        ":",
        "::",
        ".",
        "..",
        "@",
        "_",
        "=",
        "/",
        "a",
        "f",
        "e8",
        "fe80",
        "dead:beef",
        "ab:cd:ef",
        "AB",
        "DE89",
        "GB82",
        "370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "jane.doe@example.com",
        "x@y.io",
        "a.b@c-d.example.org",
        "4111 1111 1111 1111",
        "4111111111111111",
        "3782 822463 10005",
        "078-05-1120",
        "+1 (415) 555-2671",
        "(415) 555-2671",
        "+44 20 7946 0958",
        "1-800-555-0199",
        "555.123.4567",
        "10.0.0.1",
        "192.168.0.17",
        "1.2.3.4.5",
        "2001:db8::8a2e:370:7334",
        "::1",
        "fe80::1ff:fe23:4567:890a",
        "abcd:abcd:abcd:abcd:abcd:abcd:abcd:1",
        "::ffff:10.0.0.1",
        OPENAI,
        "sk-abcdefghijklmnopqrstuvwx",
        "AKIAIOSFODNN7EXAMPLE",
        &gh,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "xoxb-1234567890-abcdefghij",
        "xoxb-1234567890a",
        "aZ3kQ9xW",
        "aws_secret_access_key = ",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "api_key=",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "MIIEowIBAAKCAQEA\n",
        "-----END RSA PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----\n",
        "-----END CERTIFICATE-----",
        "-----",
        "Zx8Kq2Lm9Vb4Nc7Tr1Yw5Pe3",
        "k9x2m4q7w1z8r5t3y6u0p2l4s7d9f1g3",
        "internationalization",
        "release-notes-for-version-2024-edition",
        "abcdefghijklmno",
        "abcdefghijklmnop",
        "3f786850e387550fdab836ed7e6dc881de23001b",
        "日本語",
        "✓",
        "é",
        "🚀",
        "４１１１",
    ];
    let loose = b"0123456789abcdefABCDEF:.-+()@ _=/xyzXYZ\n";
    let mut x: u64 = 0x5eed;
    let mut next = move |n: usize| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(x >> 33).expect("31 bits") % n
    };
    (0..cases)
        .map(|_| {
            let mut t = String::new();
            for _ in 0..1 + next(40) {
                if next(3) == 0 {
                    t.push(char::from(loose[next(loose.len())]));
                } else {
                    t.push_str(fragments[next(fragments.len())]);
                }
            }
            t
        })
        .collect()
}

#[test]
fn pii_skipping_finds_what_trying_every_position_finds() {
    use pii::Entity::*;
    let selections: [&[pii::Entity]; 5] = [
        &pii::Entity::ALL,
        &[Ipv6],
        &[Phone, Iban],
        &[Email, Ssn, CreditCard, Ipv4],
        &[],
    ];
    let mut found = 0;
    for text in corpus(20_000) {
        for enabled in selections {
            let fast = pii::find_with(&text, enabled, true);
            assert_eq!(
                fast,
                pii::find_with(&text, enabled, false),
                "{text:?} {enabled:?}"
            );
            found += fast.len();
        }
    }
    assert!(found > 20_000, "the corpus has items to find: {found}");
}

#[test]
fn secrets_skipping_finds_what_classifying_every_token_finds() {
    let d = secrets::Scanner::default();
    let scanners = [
        d.clone(),
        secrets::Scanner {
            generic: false,
            ..d.clone()
        },
        secrets::Scanner {
            entropy_min_length: 8,
            entropy_threshold: 2.5,
            ..d.clone()
        },
        secrets::Scanner {
            entropy_min_length: 40,
            entropy_threshold: 3.0,
            ..d
        },
    ];
    let mut found = 0;
    for text in corpus(20_000) {
        for s in &scanners {
            for open_pem in [false, true] {
                let fast = s.find_with(&text, open_pem, true);
                assert_eq!(fast, s.find_with(&text, open_pem, false), "{text:?} {s:?}");
                found += fast.len();
            }
        }
    }
    assert!(
        found > 20_000,
        "the corpus has credentials to find: {found}"
    );
}
