//! The pattern parser: ECMA-262 syntax to a [`Node`] tree.

#[derive(Debug, Clone)]
pub(super) enum Node {
    Class(Vec<(char, char)>, bool),
    Any,
    Start,
    End,
    Boundary(bool),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

pub(super) const DIGIT: &[(char, char)] = &[('0', '9')];
pub(super) const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
pub(super) const SPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{A0}', '\u{A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
    ('\u{FEFF}', '\u{FEFF}'),
];

pub(super) struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    /// Parse a whole pattern.
    pub(super) fn parse(ecma: &str) -> Result<Node, String> {
        let mut p = Parser {
            chars: ecma.chars().collect(),
            pos: 0,
        };
        let node = p.alt()?;
        if p.pos < p.chars.len() {
            return Err("unmatched `)`".into());
        }
        Ok(node)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let yes = self.peek() == Some(c);
        self.pos += usize::from(yes);
        yes
    }

    fn next(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("it ends too early")?;
        self.pos += 1;
        Ok(c)
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.concat()?];
        while self.eat('|') {
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().expect("one")
        } else {
            Node::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let mut node = atom;
        loop {
            let (min, max, len) = match self.peek() {
                Some('*') => (0, None, 1),
                Some('+') => (1, None, 1),
                Some('?') => (0, Some(1), 1),
                Some('{') => match self.braces() {
                    Some(q) => q,
                    None => return Ok(node),
                },
                _ => return Ok(node),
            };
            self.pos += len;
            if matches!(node, Node::Start | Node::End | Node::Boundary(_)) {
                return Err("a quantifier on an assertion".into());
            }
            if max.is_some_and(|m| m < min) {
                return Err(format!(
                    "quantifier {{{min},{}}} is out of order",
                    max.unwrap_or(0)
                ));
            }
            self.eat('?'); // lazy: the same for "does it match"
            if matches!(self.peek(), Some('*' | '+' | '?')) {
                return Err("a quantifier after a quantifier".into());
            }
            node = Node::Repeat(Box::new(node), min, max);
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` at the cursor and its length in characters,
    /// or `None` for a literal `{` (ECMA allows one that starts no
    /// quantifier).
    fn braces(&self) -> Option<(u32, Option<u32>, usize)> {
        let rest: String = self.chars[self.pos..].iter().take(24).collect();
        let close = rest.find('}')?;
        let body = &rest[1..close];
        let (min, max) = match body.split_once(',') {
            None => {
                let n = body.parse().ok()?;
                (n, Some(n))
            }
            Some((a, "")) => (a.parse().ok()?, None),
            Some((a, b)) => (a.parse().ok()?, Some(b.parse().ok()?)),
        };
        Some((min, max, rest[..=close].chars().count()))
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.next()?;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.eat('?') {
                    match self.next()? {
                        ':' => {}
                        '<' if !matches!(self.peek(), Some('=' | '!')) => {
                            while self.next()? != '>' {}
                        }
                        _ => return Err("look-around is not supported".into()),
                    }
                }
                let inner = self.alt()?;
                if !self.eat(')') {
                    return Err("unclosed `(`".into());
                }
                inner
            }
            '[' => self.class()?,
            '\\' => self.escape(false)?,
            '*' | '+' | '?' => return Err(format!("nothing to repeat before `{c}`")),
            c => Node::Class(vec![(c, c)], false),
        })
    }

    /// After `\`. In a class, `\b` is a backspace and assertions are not
    /// allowed.
    fn escape(&mut self, in_class: bool) -> Result<Node, String> {
        let c = self.next()?;
        let class = |r: &[(char, char)], neg: bool| Node::Class(r.to_vec(), neg);
        let lit = |c: char| Node::Class(vec![(c, c)], false);
        Ok(match c {
            'd' => class(DIGIT, false),
            'D' => class(DIGIT, true),
            'w' => class(WORD, false),
            'W' => class(WORD, true),
            's' => class(SPACE, false),
            'S' => class(SPACE, true),
            'b' if in_class => lit('\u{8}'),
            'b' => Node::Boundary(true),
            'B' if !in_class => Node::Boundary(false),
            'n' => lit('\n'),
            'r' => lit('\r'),
            't' => lit('\t'),
            'f' => lit('\u{C}'),
            'v' => lit('\u{B}'),
            '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => lit('\0'),
            '1'..='9' => return Err("backreferences are not supported".into()),
            'p' | 'P' => {
                return Err(format!(
                    "Unicode property classes (`\\{c}`) are not supported"
                ));
            }
            'k' => return Err("named backreferences are not supported".into()),
            'x' => lit(self.hex(2)?),
            'u' if self.eat('{') => {
                let mut digits = String::new();
                loop {
                    match self.next()? {
                        '}' => break,
                        d => digits.push(d),
                    }
                }
                lit(hex_char(&digits)?)
            }
            'u' => lit(self.hex(4)?),
            'c' => match self.next()? {
                l if l.is_ascii_alphabetic() => lit(char::from(l as u8 % 32)),
                _ => return Err("`\\c` needs a letter".into()),
            },
            c if c.is_ascii_alphanumeric() => return Err(format!("unknown escape `\\{c}`")),
            c => lit(c),
        })
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let digits: String = (0..n).map(|_| self.next()).collect::<Result<_, _>>()?;
        hex_char(&digits)
    }

    /// After `[`: `[]` matches nothing and `[^]` anything, as in ECMA.
    fn class(&mut self) -> Result<Node, String> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        loop {
            let c = self.next().map_err(|_| "unclosed `[`".to_string())?;
            if c == ']' {
                break;
            }
            let lo = self.class_atom(c, &mut ranges)?;
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.pos += 1;
                let c2 = self.next()?;
                let hi = self.class_atom(c2, &mut ranges)?;
                match (lo, hi) {
                    (Some(lo), Some(hi)) if lo <= hi => ranges.push((lo, hi)),
                    (Some(_), Some(_)) => return Err("a class range out of order".into()),
                    _ => return Err("a class range with a class at one end".into()),
                }
            } else if let Some(lo) = lo {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Class(ranges, negated))
    }

    /// One class member: a character, or (pushed into `ranges`, returning
    /// `None`) an escape class like `\d`.
    fn class_atom(
        &mut self,
        c: char,
        ranges: &mut Vec<(char, char)>,
    ) -> Result<Option<char>, String> {
        if c != '\\' {
            return Ok(Some(c));
        }
        match self.escape(true)? {
            Node::Class(r, false) if r.len() == 1 && r[0].0 == r[0].1 => Ok(Some(r[0].0)),
            Node::Class(r, negated) => {
                ranges.extend(if negated { complement(&r) } else { r });
                Ok(None)
            }
            _ => Err(format!(
                "`\\{}` inside a class is not supported",
                self.chars[self.pos - 1]
            )),
        }
    }
}

/// The characters outside sorted `ranges` (surrogates are no characters).
fn complement(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut push = |lo: u32, hi: u32| {
        for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
            if let (Some(a), Some(b)) = (char::from_u32(a), char::from_u32(b))
                && a <= b
            {
                out.push((a, b));
            }
        }
    };
    let mut next = 0u32;
    for (lo, hi) in ranges {
        if u32::from(*lo) > next {
            push(next, u32::from(*lo) - 1);
        }
        next = u32::from(*hi) + 1;
    }
    if next <= 0x10FFFF {
        push(next, 0x10FFFF);
    }
    out
}

fn hex_char(digits: &str) -> Result<char, String> {
    u32::from_str_radix(digits, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(|| format!("bad hex escape {digits:?}"))
}
