//! The log's files: the current `requests.jsonl`, rotated
//! `requests-NNNNNNNN.jsonl` (a sequence number, so names sort oldest
//! first), and the writer that appends, rotates and prunes them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The file being written.
pub const CURRENT: &str = "requests.jsonl";
const PREFIX: &str = "requests-";
const SUFFIX: &str = ".jsonl";

/// Rotated files in `dir`, oldest first, with their sequence numbers.
pub fn rotated(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Every log file in `dir`, oldest first: the rotated ones, then the
/// current one if it exists. A missing directory has none.
pub fn all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match rotated(dir) {
        Ok(r) => r.into_iter().map(|(_, p)| p).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let current = dir.join(CURRENT);
    if current.is_file() {
        out.push(current);
    }
    Ok(out)
}

/// When to rotate and what to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_file_bytes: u64,
    pub keep_files: usize,
    /// None: no age limit.
    pub max_age: Option<Duration>,
}

/// Appends lines to the current file, rotating it before a line would take
/// it past `max_file_bytes` (a file holds at least one line).
pub struct Files {
    dir: PathBuf,
    retention: Retention,
    out: BufWriter<File>,
    size: u64,
    next_seq: u64,
}

impl Files {
    /// Create `dir` if needed, open the current file for appending, and
    /// prune what retention no longer keeps.
    pub fn open(dir: &Path, retention: Retention) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let next_seq = rotated(dir)?.last().map_or(1, |(s, _)| s + 1);
        let (out, size) = open_current(dir)?;
        let files = Files {
            dir: dir.to_path_buf(),
            retention,
            out,
            size,
            next_seq,
        };
        files.prune(SystemTime::now())?;
        Ok(files)
    }

    /// Append one line (`line` has no newline; one is added).
    pub fn append(&mut self, line: &[u8], now: SystemTime) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.retention.max_file_bytes {
            self.rotate(now)?;
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    /// Hand what is buffered to the OS (`sluice logs` sees it).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        self.out.flush()?;
        let to = self
            .dir
            .join(format!("{PREFIX}{:08}{SUFFIX}", self.next_seq));
        fs::rename(self.dir.join(CURRENT), &to)?;
        self.next_seq += 1;
        let (out, size) = open_current(&self.dir)?;
        self.out = out;
        self.size = size;
        self.prune(now)
    }

    /// Delete rotated files beyond `keep-files` (oldest first) and those
    /// last written more than `keep-days` before `now`.
    fn prune(&self, now: SystemTime) -> io::Result<()> {
        let files = rotated(&self.dir)?;
        let excess = files.len().saturating_sub(self.retention.keep_files);
        for (i, (_, path)) in files.iter().enumerate() {
            let too_old = self.retention.max_age.is_some_and(|age| {
                fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|d| d > age)
            });
            if i < excess || too_old {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

fn open_current(dir: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CURRENT))?;
    let size = file.metadata()?.len();
    Ok((BufWriter::with_capacity(64 * 1024, file), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_file_bytes: 1024,
            keep_files: 2,
            max_age: None,
        };
        let mut f = Files::open(dir.path(), retention).unwrap();
        let line = [b'x'; 499]; // 500 bytes with its newline: 2 per file
        let now = SystemTime::now();
        for _ in 0..9 {
            f.append(&line, now).unwrap();
        }
        f.flush().unwrap();
        // 9 lines: 4 full files rotated (2 pruned), 1 line in the current.
        assert_eq!(
            names(dir.path()),
            [
                "requests-00000003.jsonl",
                "requests-00000004.jsonl",
                CURRENT
            ]
        );
        for (_, p) in rotated(dir.path()).unwrap() {
            assert_eq!(fs::metadata(p).unwrap().len(), 1000);
        }
        assert_eq!(fs::metadata(dir.path().join(CURRENT)).unwrap().len(), 500);
        // Reopened, numbering continues after the newest rotated file.
        drop(f);
        let mut f = Files::open(dir.path(), retention).unwrap();
        for _ in 0..2 {
            f.append(&line, now).unwrap();
        }
        assert!(dir.path().join("requests-00000005.jsonl").is_file());
        // A line longer than the limit still goes in a file of its own.
        f.append(&[b'y'; 3000], now).unwrap();
        f.append(b"z", now).unwrap();
        f.flush().unwrap();
        let last = rotated(dir.path()).unwrap().pop().unwrap().1;
        assert_eq!(fs::metadata(last).unwrap().len(), 3001);
    }

    #[test]
    fn old_files_are_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        for (seq, age_days) in [(1, 9), (2, 3)] {
            let p = dir.path().join(format!("requests-{seq:08}.jsonl"));
            let file = File::create(&p).unwrap();
            file.set_modified(now - day * age_days).unwrap();
        }
        let retention = Retention {
            max_file_bytes: 1 << 20,
            keep_files: 10,
            max_age: Some(day * 7),
        };
        let _f = Files::open(dir.path(), retention).unwrap();
        assert_eq!(
            names(dir.path()),
            ["requests-00000002.jsonl", CURRENT],
            "the 9-day-old file goes at start-up"
        );
        assert_eq!(all(dir.path()).unwrap().len(), 2);
        assert!(all(&dir.path().join("missing")).unwrap().is_empty());
    }
}
