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
