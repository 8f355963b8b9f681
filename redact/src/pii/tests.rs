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
