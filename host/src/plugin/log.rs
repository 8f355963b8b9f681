//! Plugin-controlled text on its way into the gateway log.
//!
//! A guest decides what its `host.log` lines, stdout/stderr, reject reasons
//! and router / cost-policy answers contain. Written raw into the default
//! (`pretty`) log format, a CR or LF starts what looks like a new log line
//! (`... INFO sluice::server::chat: served request_id=... status=200`), a
//! NUL truncates the line in some viewers, and an ESC starts a terminal
//! control sequence. [`escaped`] renders every such character visibly
//! (`\n`, `\r`, `\0`, `\x1b`, `\u{85}`), so one plugin event is one log
//! line whatever the text. The JSON format escapes control characters by
//! itself; the text is escaped before it reaches either format, so both
//! carry exactly the same (visible) characters.
//!
//! Every log site that prints plugin text goes through this module.

use std::fmt::{self, Write as _};

/// `value`'s `Display` with control characters escaped (see the module
/// docs). Use it in a log field (`reason = %escaped(&r)`) or message.
pub fn escaped<T: fmt::Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

/// See [`escaped`].
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// Escapes as the text passes through, so nothing is buffered.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(needs_escape) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().expect("found a char at i");
            write_escape(self.0, c)?;
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// C0 controls (tab, LF, CR, NUL, ESC, ...), DEL, C1 controls (U+0080 to
/// U+009F, some terminals' 8-bit escape introducers), and the Unicode line
/// and paragraph separators that some viewers break lines on.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

fn write_escape(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\0' => f.write_str("\\0"),
        c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32),
        c => write!(f, "\\u{{{:x}}}", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        escaped(s).to_string()
    }

    #[test]
    fn control_characters_are_visible_and_nothing_else_changes() {
        assert_eq!(esc("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert_eq!(
            esc("a\r\n2026 INFO sluice: served\0"),
            "a\\r\\n2026 INFO sluice: served\\0"
        );
        assert_eq!(esc("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(esc("tab\there\x7f"), "tab\\there\\x7f");
        assert_eq!(esc("c1\u{85}\u{9b}31m"), "c1\\u{85}\\u{9b}31m");
        assert_eq!(esc("ls\u{2028}ps\u{2029}"), "ls\\u{2028}ps\\u{2029}");
        assert_eq!(esc("\u{1}\u{1f}"), "\\x01\\x1f");
    }

    #[test]
    fn any_display_is_escaped() {
        let err = std::io::Error::other("bad\nline");
        assert_eq!(escaped(&err).to_string(), "bad\\nline");
        assert_eq!(format!("[{}]", escaped(42)), "[42]");
    }
}
