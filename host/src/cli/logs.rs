//! `sluice logs tail|query`: read the request log's JSON-lines files
//! (`[request-log]`), rotated ones included, oldest first.
//!
//! ```text
//! sluice logs tail [-n 10] [-f]
//! sluice logs query [--key ID] [--model M] [--since 2h] [--until ..] [--status 5xx] [--limit N]
//! ```
//! Both print one summary line per record, or the records as stored with
//! `--json`. The log directory comes from the config (`--config`) or
//! `--dir`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::reqlog::Record;
use crate::reqlog::files::{self, CURRENT};
use crate::state::period::parse_bound;

/// `sluice logs`.
#[derive(Subcommand, Debug)]
pub enum LogsCmd {
    /// The last records; `-f` keeps printing new ones as they are written.
    Tail(TailArgs),
    /// The records matching every filter given, oldest first.
    Query(QueryArgs),
}

/// Where the log is and how to print it.
#[derive(Args, Debug)]
pub struct Source {
    /// The gateway's config file (its `[request-log] dir` is read).
    #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
    pub config: PathBuf,
    /// The log directory itself, instead of reading the config.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print records as stored (JSON lines), not one summary line each.
    #[arg(long)]
    pub json: bool,
}

/// `sluice logs tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub source: Source,
    /// How many of the last records to print first.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    pub lines: usize,
    /// Keep printing records as they are written (follows rotation).
    #[arg(short, long)]
    pub follow: bool,
}

/// `sluice logs query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub source: Source,
    /// The virtual key's id.
    #[arg(long)]
    pub key: Option<String>,
    /// The gateway model, or the upstream model, the request used.
    #[arg(long)]
    pub model: Option<String>,
    /// Start (inclusive): YYYY-MM-DD, YYYY-MM, 7d / 12h / 30m ago, or unix ms.
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive; a date includes itself): as `--since`, or `now`.
    #[arg(long)]
    pub until: Option<String>,
    /// An HTTP status (`429`), a class (`2xx`, `4xx`, `5xx`) or `error`
    /// (400 and above).
    #[arg(long)]
    pub status: Option<String>,
    /// Only the newest N matches.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// A `--status` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Exact(u16),
    Class(u16),
    Error,
}

impl Status {
    fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s == "error" {
            return Ok(Status::Error);
        }
        if let Some(c) = s.strip_suffix("xx")
            && let Ok(c @ 1..=5) = c.parse::<u16>()
        {
            return Ok(Status::Class(c));
        }
        match s.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(Status::Exact(code)),
            _ => anyhow::bail!("--status {s}: expected a code (429), a class (5xx) or `error`"),
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Status::Exact(c) => status == c,
            Status::Class(c) => status / 100 == c,
            Status::Error => status >= 400,
        }
    }
}

/// Every `query` filter, parsed.
#[derive(Debug, Default)]
pub struct Filter {
    key: Option<String>,
    model: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    status: Option<Status>,
}

impl Filter {
    fn of(a: &QueryArgs, now_ms: u64) -> anyhow::Result<Self> {
        let bound = |s: &Option<String>, end: bool| -> anyhow::Result<Option<u64>> {
            s.as_deref()
                .map(|s| {
                    parse_bound(s, end, now_ms).with_context(|| {
                        format!("cannot read `{s}` as a time: use YYYY-MM-DD, YYYY-MM, now, 7d / 12h / 30m ago, or unix ms")
                    })
                })
                .transpose()
        };
        Ok(Filter {
            key: a.key.clone(),
            model: a.model.clone(),
            since: bound(&a.since, false)?,
            until: bound(&a.until, true)?,
            status: a.status.as_deref().map(Status::parse).transpose()?,
        })
    }

    fn matches(&self, r: &Record) -> bool {
        self.key
            .as_ref()
            .is_none_or(|k| r.key_id.as_ref() == Some(k))
            && self
                .model
                .as_ref()
                .is_none_or(|m| r.model == *m || r.upstream_model.as_ref() == Some(m))
            && self.since.is_none_or(|t| r.ts >= t)
            && self.until.is_none_or(|t| r.ts < t)
            && self.status.is_none_or(|s| s.matches(r.status))
    }
}

pub fn run(cmd: LogsCmd) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::LineWriter::new(stdout.lock());
    match cmd {
        LogsCmd::Tail(a) => {
            let dir = dir(&a.source)?;
            tail(&dir, a.lines, a.source.json, &mut out)?;
            if a.follow {
                follow(&dir, a.source.json, &mut out)?;
            }
        }
        LogsCmd::Query(a) => {
            let dir = dir(&a.source)?;
            let filter = Filter::of(&a, crate::state::now_ms())?;
            query(&dir, &filter, a.limit, a.source.json, &mut out)?;
        }
    }
    Ok(())
}

fn dir(s: &Source) -> anyhow::Result<PathBuf> {
    if let Some(d) = &s.dir {
        return Ok(d.clone());
    }
    let config = Config::load(&s.config)?;
    Ok(config.request_log.dir_or(&config.state.dir))
}

/// Each record in the files, oldest first, to `each`. Lines that are not
/// a record (a line cut by a crash) are skipped and counted on stderr.
fn scan(dir: &Path, mut each: impl FnMut(Record)) -> anyhow::Result<()> {
    let mut bad = 0usize;
    for path in files::all(dir).with_context(|| format!("reading {}", dir.display()))? {
        let file = match File::open(&path) {
            Ok(f) => f,
            // Pruned or rotated since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        for line in BufReader::new(file).lines() {
            match serde_json::from_str::<Record>(&line?) {
                Ok(r) => each(r),
                Err(_) => bad += 1,
            }
        }
    }
    if bad > 0 {
        eprintln!("warning: {bad} line(s) were not request records and were skipped");
    }
    Ok(())
}

/// The last `n` records.
pub fn tail(dir: &Path, n: usize, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let mut last = VecDeque::with_capacity(n.min(4096));
    scan(dir, |r| {
        if last.len() == n {
            last.pop_front();
        }
        if n > 0 {
            last.push_back(r);
        }
    })?;
    last.iter().try_for_each(|r| print(r, json, out))
}

/// The records matching `filter`; with `limit`, the newest `limit` of them.
pub fn query(
    dir: &Path,
    filter: &Filter,
    limit: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut kept = VecDeque::new();
    scan(dir, |r| {
        if filter.matches(&r) {
            if limit.is_some_and(|l| kept.len() >= l) {
                kept.pop_front();
            }
            if limit != Some(0) {
                kept.push_back(r);
            }
        }
    })?;
    kept.iter().try_for_each(|r| print(r, json, out))
}

/// Print what is appended to the current file from its end on, across
/// rotations, until interrupted. Polls twice a second: the writer may be
/// another process, and a poll of one file is cheap.
fn follow(dir: &Path, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let path = dir.join(CURRENT);
    let mut file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::End(0))?;
    let mut partial = Vec::new();
    loop {
        file.read_to_end(&mut partial)?;
        let complete = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in partial[..complete].split(|b| *b == b'\n') {
            if let Ok(r) = serde_json::from_slice::<Record>(line) {
                print(&r, json, out)?;
            }
        }
        partial.drain(..complete);
        // Rotated: the old file (still open) is read to its end above,
        // then the new current file from its start.
        if rotated_away(&file, &path) {
            file.read_to_end(&mut partial)?;
            if let Ok(next) = File::open(&path) {
                file = next;
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(unix)]
fn rotated_away(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(now)) => open.ino() != now.ino() || open.dev() != now.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn rotated_away(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(now)) => now.len() < open.len(),
        _ => false,
    }
}

fn print(r: &Record, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, r)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", summary(r))?;
    }
    Ok(())
}

/// `TIME ID STATUS MODEL -> PROVIDER/UPSTREAM LATENCY …` on one line.
pub fn summary(r: &Record) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{} {} {} {}", r.time, r.id, r.status, r.model);
    if let (Some(p), Some(m)) = (&r.provider, &r.upstream_model) {
        let _ = write!(s, " -> {p}/{m}");
    }
    let _ = write!(s, " {:.1}ms", r.latency_ms);
    if r.stream {
        s.push_str(" stream");
    }
    if let (Some(i), Some(o)) = (r.prompt_tokens, r.completion_tokens) {
        let _ = write!(s, " tokens={i}/{o}");
    }
    if let Some(c) = r.cost_usd {
        let _ = write!(s, " cost=${c:.6}");
    }
    if let Some(k) = &r.key_id {
        let _ = write!(s, " key={k}");
    }
    if let Some(p) = &r.prompt {
        let _ = write!(s, " prompt={p}");
    }
    let verdicts: Vec<String> = r
        .guardrails
        .iter()
        .map(|(n, v)| format!("{n}:{v}"))
        .collect();
    if !verdicts.is_empty() {
        let _ = write!(s, " guardrails={}", verdicts.join(","));
    }
    if let Some(e) = &r.error {
        let _ = write!(s, " error={e}");
    }
    if r.disconnected {
        s.push_str(" disconnected");
    }
    // Client text: keep the line one line.
    s.replace(['\n', '\r'], " ")
}
