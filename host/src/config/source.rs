//! The config file as parsed TOML with byte spans, so every problem found
//! later (a type error, an unknown provider, an unset `${ENV}`) can be
//! reported as `file:line:col` instead of "somewhere in your config".

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One problem in the config file. Validation collects all of them before
/// failing so an operator fixes the file in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line:col` when the spot is known, else the file name.
    pub location: String,
    /// Dotted key path (`models.chat.routes[0].provider`), empty for syntax errors.
    pub path: String,
    pub message: String,
    /// Byte offset in the file, for listing problems in file order.
    pub offset: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(f, "{}: {}: {}", self.location, self.path, self.message)
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the config:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// The source text plus its origin, turning byte offsets into locations.
pub(crate) struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
    pub problems: Vec<Problem>,
}

/// A step in a key path: a table key or an array index.
#[derive(Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) fn path_string(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

impl<'a> Source<'a> {
    pub fn new(origin: &'a str, text: &'a str) -> Self {
        Self {
            origin,
            text,
            problems: Vec::new(),
        }
    }

    /// `origin:line:col` (1-based) of a byte offset.
    pub fn location(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        format!("{}:{line}:{col}", self.origin)
    }

    pub fn report(&mut self, span: Option<Range<usize>>, path: String, message: impl Into<String>) {
        let location = match &span {
            Some(span) => self.location(span.start),
            None => self.origin.to_string(),
        };
        self.problems.push(Problem {
            location,
            path,
            message: message.into(),
            offset: span.map(|s| s.start),
        });
    }

    /// Deserialize one section (or one array entry) on its own, so a type
    /// error in `[server]` does not hide another one in `[[providers]]`.
    pub fn section<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &[Seg<'_>],
    ) -> Option<T> {
        let whole = value.span();
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(whole);
                self.report(
                    Some(span),
                    path_string(path),
                    e.message().trim().to_string(),
                );
                None
            }
        }
    }
}

/// Parse the document, reporting every syntax error.
pub(crate) fn parse<'i>(src: &mut Source<'i>) -> Option<Spanned<DeTable<'i>>> {
    let (table, errors) = DeTable::parse_recoverable(src.text);
    if errors.is_empty() {
        return Some(table);
    }
    for e in errors {
        src.report(e.span(), String::new(), e.message().trim().to_string());
    }
    None
}

/// Replace `${NAME}` in every string value with the environment variable's
/// value; `$${` is a literal `${`. An unset variable is a problem naming it,
/// never a silent empty string (an empty API key fails confusingly later).
pub(crate) fn interpolate_env(
    src: &mut Source<'_>,
    value: &mut Spanned<DeValue<'_>>,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let span = value.span();
    let len = path.len();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, env) {
            Ok(new) => *s = Cow::Owned(new),
            Err(msg) => src.report(Some(span), path.clone(), msg),
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                interpolate_env(src, item, path, env);
                path.truncate(len);
            }
        }
        DeValue::Table(t) => {
            for (k, v) in t.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.get_ref());
                interpolate_env(src, v, path, env);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Expand `${NAME}` references in one string.
pub(crate) fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The span of the value at `path`, if present (used to place semantic
/// problems found after deserialization).
pub(crate) fn span_at(root: &Spanned<DeTable<'_>>, path: &[Seg<'_>]) -> Option<Range<usize>> {
    let mut span = root.span();
    let mut cur: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, cur) {
            (Seg::Key(k), Some(t), _) => t.get(*k),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        }?;
        span = next.span();
        cur = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(expand("Bearer ${KEY}", &env).unwrap(), "Bearer s3cret");
        assert_eq!(expand("$${KEY} costs $5", &env).unwrap(), "${KEY} costs $5");
        assert!(
            expand("${MISSING}", &env)
                .unwrap_err()
                .contains("`MISSING`")
        );
        assert!(expand("${KEY", &env).is_err());
    }

    #[test]
    fn locations_are_one_based() {
        let src = Source::new("f.toml", "a = 1\nbb = 2\n");
        assert_eq!(src.location(0), "f.toml:1:1");
        assert_eq!(src.location(8), "f.toml:2:3");
    }
}
