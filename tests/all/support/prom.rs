//! A strict reader of the Prometheus text format (0.0.4) for `/metrics`
//! tests: every sample belongs to a family declared by `# TYPE` (with its
//! `_total`, `_bucket`, `_sum`, `_count`, `_info` forms), label values are
//! quoted and escaped as the format says, values parse, no sample is
//! repeated, and every histogram's buckets rise to `+Inf` = `_count`.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::collections::{BTreeMap, HashMap};

/// Label pairs, sorted by name.
pub type Labels = Vec<(String, String)>;

/// One scrape: sample name and sorted labels to value.
#[derive(Debug)]
pub struct Scrape {
    pub samples: BTreeMap<(String, Labels), f64>,
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// The sample named `name` whose labels are exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_string(), l)).copied()
    }

    /// As [`Self::get`], 0 when absent would be wrong: panics with the page.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{:#?}", self.names(name)))
    }

    /// Samples named `name`, with their labels.
    pub fn names(&self, name: &str) -> Vec<(&Labels, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l, *v))
            .collect()
    }

    /// Sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.names(name)
            .into_iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// Parse `page`, panicking with the offending line on any violation.
pub fn parse(page: &str) -> Scrape {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = BTreeMap::new();
    for line in page.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect(line);
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(
                types.insert(name.into(), ty.into()).is_none(),
                "twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (name, labels, rest) = sample(line);
        family_of(&name, &types).unwrap_or_else(|| panic!("no TYPE for: {line}"));
        let value = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().unwrap_or_else(|_| panic!("value: {line}")),
        };
        let mut sorted = labels;
        sorted.sort();
        assert!(
            samples.insert((name, sorted), value).is_none(),
            "repeated sample: {line}"
        );
    }
    let scrape = Scrape { samples, types };
    check_histograms(&scrape);
    scrape
}

fn family_of<'a>(name: &str, types: &'a HashMap<String, String>) -> Option<&'a str> {
    if let Some(t) = types.get(name) {
        return Some(t);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find_map(|base| types.get(base).filter(|t| *t == "histogram"))
        .map(String::as_str)
}

fn is_name(s: &str, first: fn(char) -> bool) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(first) && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{k="v",...} value` (labels optional).
fn sample(line: &str) -> (String, Labels, &str) {
    let end = line.find(['{', ' ']).expect(line);
    let name = &line[..end];
    assert!(
        is_name(name, |c| c.is_ascii_alphabetic() || c == '_' || c == ':'),
        "name: {line}"
    );
    let mut labels: Labels = Vec::new();
    let mut i = end;
    let b = line.as_bytes();
    if b[i] == b'{' {
        i += 1;
        while b[i] != b'}' {
            let eq = i + line[i..].find('=').expect(line);
            let key = &line[i..eq];
            assert!(
                is_name(key, |c| c.is_ascii_alphabetic() || c == '_'),
                "label: {line}"
            );
            assert_eq!(b[eq + 1], b'"', "{line}");
            let mut value = String::new();
            let mut chars = line[eq + 2..].char_indices();
            let close = loop {
                match chars.next().expect(line) {
                    (j, '"') => break eq + 2 + j,
                    (_, '\\') => match chars.next().expect(line).1 {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        c => panic!("escape \\{c}: {line}"),
                    },
                    (_, c) => value.push(c),
                }
            };
            assert!(
                labels.iter().all(|(k, _)| k != key),
                "duplicate label: {line}"
            );
            labels.push((key.to_string(), value));
            i = close + 1;
            match b[i] {
                b',' => i += 1,
                b'}' => {}
                _ => panic!("after a label value: {line}"),
            }
        }
        i += 1;
    }
    let rest = &line[i..];
    assert!(rest.starts_with(' '), "{line}");
    (name.to_string(), labels, rest)
}

fn check_histograms(s: &Scrape) {
    for (base, ty) in &s.types {
        if ty != "histogram" {
            continue;
        }
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &s.samples {
            if name != &format!("{base}_bucket") {
                continue;
            }
            let le = labels.iter().find(|(k, _)| k == "le").expect("le");
            let le = if le.1 == "+Inf" {
                f64::INFINITY
            } else {
                le.1.parse().unwrap()
            };
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            series.entry(rest).or_default().push((le, *v));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{base}{labels:?} falls"
            );
            let inf = buckets.last().unwrap();
            assert_eq!(inf.0, f64::INFINITY, "{base}{labels:?} has no +Inf");
            let count = s.samples[&(format!("{base}_count"), labels.clone())];
            assert_eq!(inf.1, count, "{base}{labels:?}: +Inf != _count");
            assert!(s.samples.contains_key(&(format!("{base}_sum"), labels)));
        }
    }
}
