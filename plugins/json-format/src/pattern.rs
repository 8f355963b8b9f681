//! `pattern`: JSON Schema regular expressions (the ECMA-262 dialect, no
//! flags) compiled to a small NFA and run as a Pike VM without captures:
//! time linear in pattern size times string length, no backtracking to
//! blow up on an adversarial answer.
//!
//! Written here rather than taken from regex-automata: that crate's parser
//! and NFA compiler tripled the component (217 KB -> 546 KB) and speak
//! another dialect (`\d` Unicode, `[]a]` a set). Supported: literals and
//! escapes (`\n \t \r \f \v \0 \xHH \uHHHH \u{H..} \cX`, escaped
//! punctuation), `.`, classes with ranges and negation, `\d \D \w \W \s \S`
//! (ECMA: ASCII digits and word characters, Unicode spaces), `^ $ \b \B`,
//! groups (capturing, `(?:...)`, named), alternation, `* + ? {n} {n,}
//! {n,m}` (greedy or lazy: the same for "does it match"). Refused with a
//! message: look-around, backreferences, `\p{...}`.

mod parse;

use parse::{Node, Parser, WORD};

/// A compiled `pattern`.
#[derive(Debug)]
pub struct Pattern {
    prog: Vec<Inst>,
}

/// Programs longer than this are refused (`a{1000}{1000}`).
const MAX_INSTS: usize = 20_000;

#[derive(Debug, Clone)]
enum Inst {
    /// One character in (or, negated, outside) the ranges.
    Class(Vec<(char, char)>, bool),
    /// Any character but a line terminator.
    Any,
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    /// Word boundary (true) or not (false), ASCII word characters.
    Boundary(bool),
    Match,
}

impl Pattern {
    /// Parse and compile an ECMA-262 pattern; the error says why not.
    pub fn new(ecma: &str) -> Result<Pattern, String> {
        let fail = |e: String| format!("pattern {ecma:?} is not supported: {e}");
        let node = Parser::parse(ecma).map_err(fail)?;
        let mut prog = Vec::new();
        compile(&node, &mut prog).map_err(fail)?;
        prog.push(Inst::Match);
        Ok(Pattern { prog })
    }

    /// An unanchored search, as JSON Schema specifies (`^`/`$` anchor).
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let (mut clist, mut nlist) = (Threads::new(n), Threads::new(n));
        let mut stack = Vec::new();
        for i in 0..=chars.len() {
            // A new thread at every position: the search is unanchored.
            if self.add(&mut clist, 0, &chars, i, &mut stack) {
                return true;
            }
            let Some(&c) = chars.get(i) else { break };
            nlist.clear();
            for k in 0..clist.dense.len() {
                let pc = clist.dense[k];
                let step = match &self.prog[pc] {
                    Inst::Class(ranges, negated) => in_ranges(ranges, c) != *negated,
                    Inst::Any => !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'),
                    _ => false,
                };
                if step && self.add(&mut nlist, pc + 1, &chars, i + 1, &mut stack) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        false
    }

    /// Add `pc` and its epsilon closure at position `at`; true on `Match`.
    fn add(
        &self,
        list: &mut Threads,
        pc: usize,
        chars: &[char],
        at: usize,
        stack: &mut Vec<usize>,
    ) -> bool {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !list.insert(pc) {
                continue;
            }
            match &self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Start if at == 0 => stack.push(pc + 1),
                Inst::End if at == chars.len() => stack.push(pc + 1),
                Inst::Boundary(want) => {
                    let word = |i: Option<usize>| {
                        i.and_then(|i| chars.get(i))
                            .is_some_and(|c| in_ranges(WORD, *c))
                    };
                    if (word(at.checked_sub(1)) != word(Some(at))) == *want {
                        stack.push(pc + 1);
                    }
                }
                _ => {}
            }
        }
        false
    }
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// A sparse set of program counters.
struct Threads {
    dense: Vec<usize>,
    sparse: Vec<usize>,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads {
            dense: Vec::with_capacity(n),
            sparse: vec![0; n],
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        let i = self.sparse[pc];
        if i < self.dense.len() && self.dense[i] == pc {
            return false;
        }
        self.sparse[pc] = self.dense.len();
        self.dense.push(pc);
        true
    }

    fn clear(&mut self) {
        self.dense.clear();
    }
}

fn compile(node: &Node, prog: &mut Vec<Inst>) -> Result<(), String> {
    if prog.len() > MAX_INSTS {
        return Err(format!("it compiles to more than {MAX_INSTS} instructions"));
    }
    match node {
        Node::Class(r, neg) => prog.push(Inst::Class(r.clone(), *neg)),
        Node::Any => prog.push(Inst::Any),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Boundary(b) => prog.push(Inst::Boundary(*b)),
        Node::Concat(nodes) => {
            for n in nodes {
                compile(n, prog)?;
            }
        }
        Node::Alt(nodes) => {
            // split L1, next; L1: a; jmp end; next: split L2, ...
            let mut jumps = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                if i + 1 < nodes.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(n, prog)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    compile(n, prog)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(n, min, max) => {
            for _ in 0..*min {
                compile(n, prog)?;
            }
            match max {
                // x*: L: split body, end; body; jmp L
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(n, prog)?;
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                // x?{max-min}: each optional copy may end the repetition.
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        compile(n, prog)?;
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
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
        assert!(m(r"\Bcat\B", "concatenate"));
        assert!(m(r"^[^\d]+$", "abc"));
        assert!(!m(r"^[^\d]+$", "ab1"));
        assert!(m(r"^[\D]+$", "abc"));
    }

    #[test]
    fn search_is_unanchored_and_dot_is_a_character() {
        assert!(m("b", "abc"));
        assert!(!m("^b", "abc"));
        assert!(!m("a$", "ab"));
        assert!(m("^.{2}$", "é!"));
        assert!(!m("^.$", "\n"));
        assert!(m(r"^https?:\/\/", "https://x"));
        assert!(m("^[[]$", "["));
        assert!(!m("[]", "anything"), "[] matches nothing in ECMA");
        assert!(m("^[^]$", "\n"), "[^] matches anything");
        assert!(m("^a{2,3}$", "aaa"));
        assert!(!m("^a{2,3}$", "aaaa"));
        assert!(m("^a{2,}$", "aaaaa"));
        assert!(m("^x{1}?y$", "xy"));
        assert!(
            m("^a{,2}$", "a{,2}"),
            "a brace that is no quantifier is literal"
        );
        assert!(m("^(ab|cd)+e$", "abcdabe"));
        assert!(m("^(?:ab)*$", ""));
        assert!(m("^(?<year>[0-9]{4})-[0-9]{2}$", "2024-05"));
        assert!(m(r"^\x41\u0042\u{43}\t$", "ABC\t"));
        assert!(m("^[a-c-]+$", "a-c"));
        assert!(m("^$", ""));
        assert!(m("", "x"));
        assert!(m("^(a|)$", ""));
    }

    #[test]
    fn linear_on_a_pathological_pattern() {
        // Exponential for a backtracker; the Pike VM is linear.
        let p = Pattern::new("^(a+)+$").unwrap();
        let text = format!("{}!", "a".repeat(5000));
        assert!(!p.is_match(&text));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let e = Pattern::new(r"^\p{L}+$").unwrap_err();
        assert!(e.contains("Unicode property classes"), "{e}");
        assert_eq!(
            Pattern::new(r"^(?=a)").unwrap_err(),
            "pattern \"^(?=a)\" is not supported: look-around is not supported"
        );
        assert!(
            Pattern::new(r"(?<=a)b")
                .unwrap_err()
                .contains("look-around")
        );
        assert!(
            Pattern::new(r"(a)\1")
                .unwrap_err()
                .contains("backreferences")
        );
        assert!(Pattern::new("a\\").is_err());
        assert!(Pattern::new("(a").is_err());
        assert!(Pattern::new("a)").is_err());
        assert!(Pattern::new("[a").is_err());
        assert!(Pattern::new("*a").is_err());
        assert!(Pattern::new("a**").is_err());
        assert!(Pattern::new("[z-a]").is_err());
        assert!(Pattern::new(r"\q").is_err());
        assert!(
            Pattern::new("(a{1000}){1000}")
                .unwrap_err()
                .contains("instructions")
        );
    }
}
