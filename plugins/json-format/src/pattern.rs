//! `pattern`: JSON Schema regular expressions (ECMA-262 dialect) on the
//! regex-automata Pike VM, as business-rules uses it.
//!
//! ECMA's `\d`, `\w` and `\b` are ASCII-only, so they are rewritten to ASCII
//! classes; `.` and literal characters keep Unicode (UTF-8) semantics. No
//! Unicode tables are linked into the guest: a pattern needing one (`\p{L}`)
//! is refused at config time rather than behaving differently in the guest
//! and in a native build.

use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::util::syntax;

/// ECMA `\s`: ASCII white space plus the Unicode space separators, BOM and
/// line/paragraph separators, spelled out so no Unicode table is needed.
const SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// A compiled `pattern`.
#[derive(Debug)]
pub struct Pattern {
    vm: PikeVM,
}

impl Pattern {
    /// Translate and compile an ECMA-262 pattern; the error says why not.
    pub fn new(ecma: &str) -> Result<Pattern, String> {
        let translated = translate(ecma)?;
        let vm = PikeVM::builder()
            // Unicode mode (no tables are compiled in, see the module doc) so
            // `.` and classes work on characters, not bytes.
            .syntax(syntax::Config::new().unicode(true).utf8(true))
            // Only "does it match" is asked: no capture groups to track.
            .thompson(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::Implicit)
                    .shrink(false),
            )
            .build(&translated)
            .map_err(|e| format!("pattern {ecma:?} is not supported: {e}"))?;
        Ok(Pattern { vm })
    }

    /// An unanchored search, as JSON Schema specifies (`^`/`$` anchor).
    pub fn is_match(&self, text: &str) -> bool {
        self.vm.is_match(&mut self.vm.create_cache(), text)
    }
}

/// Rewrite ECMA-only escapes into the regex-syntax dialect.
fn translate(ecma: &str) -> Result<String, String> {
    let mut out = String::with_capacity(ecma.len() + 16);
    let mut in_class = false;
    let mut chars = ecma.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err(format!("pattern {ecma:?} ends with a lone backslash"));
                };
                let (inside, outside): (&str, String) = match e {
                    'd' => ("0-9", "[0-9]".into()),
                    'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]".into()),
                    's' => (SPACE, format!("[{SPACE}]")),
                    'D' | 'W' | 'S' if in_class => {
                        return Err(format!(
                            "pattern {ecma:?}: `\\{e}` inside a character class is not supported"
                        ));
                    }
                    'D' => ("", "[^0-9]".into()),
                    'W' => ("", "[^0-9A-Za-z_]".into()),
                    'S' => ("", format!("[^{SPACE}]")),
                    'b' if !in_class => ("", r"(?-u:\b)".into()),
                    'B' if !in_class => ("", r"(?-u:\B)".into()),
                    'p' | 'P' => {
                        return Err(format!(
                            "pattern {ecma:?}: Unicode property classes (`\\{e}`) are not supported"
                        ));
                    }
                    // `\/` is common in ECMA source; any other escape means
                    // the same in both dialects.
                    other => {
                        out.push('\\');
                        out.push(other);
                        continue;
                    }
                };
                out.push_str(if in_class { inside } else { &outside });
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A leading `]` (or `^]`) is a literal in both dialects.
                let rest = chars.as_str();
                if let Some(r) = rest.strip_prefix('^') {
                    out.push('^');
                    chars.next();
                    if r.starts_with(']') {
                        out.push_str(r"\]");
                        chars.next();
                    }
                } else if rest.starts_with(']') {
                    out.push_str(r"\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            // Nested `[` in a class is a literal in ECMA, a set in regex-syntax.
            '[' => out.push_str(r"\["),
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().is_match(s)
    }

    #[test]
    fn ecma_classes_are_ascii() {
        assert!(m(r"^\d{5}$", "12345"));
        assert!(
            !m(r"^\d{5}$", "١٢٣٤٥"),
            "Arabic-Indic digits are not ECMA \\d"
        );
        assert!(m(r"^\w+$", "snake_case9"));
        assert!(!m(r"^\w+$", "café"));
        assert!(m(r"^[\w.-]+@[\w-]+\.\w+$", "a.b-c@ex-ample.org"));
        assert!(m(r"^\S+\s\S+$", "a\u{3000}b"));
        assert!(m(r"\bcat\b", "a cat!"));
        assert!(!m(r"\bcat\b", "concatenate"));
        assert!(m(r"^[^\d]+$", "abc"));
    }

    #[test]
    fn search_is_unanchored_and_dot_is_a_character() {
        assert!(m("b", "abc"));
        assert!(m("^.{2}$", "é!"));
        assert!(m(r"^https?:\/\/", "https://x"));
        assert!(m("^[]a]+$", "]a]"));
        assert!(m("^[[]$", "["));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let e = Pattern::new(r"^\p{L}+$").unwrap_err();
        assert!(e.contains("Unicode property classes"), "{e}");
        let e = Pattern::new(r"^(?=a)").unwrap_err();
        assert!(e.starts_with("pattern \"^(?=a)\" is not supported"), "{e}");
        assert!(Pattern::new(r"[\D]").is_err());
        assert!(Pattern::new("a\\").is_err());
    }
}
