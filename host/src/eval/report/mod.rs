//! A run's reports, written side by side as `ID.json` (the whole run: the
//! input of `eval compare`), `ID.md` (a summary for a PR or a CI log) and
//! `ID.html` (one self-contained page: inline CSS, JS and SVG, nothing
//! fetched, so it opens from a CI artifact store or an email).

pub mod html;
pub mod markdown;

use std::path::{Path, PathBuf};

use super::run::{CaseStatus, Run};

/// Where a run's reports were written.
#[derive(Debug, Clone)]
pub struct Written {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Write the three reports of `run` into `dir` (created if missing).
pub fn write(run: &Run, dir: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let out = Written {
        json: dir.join(format!("{}.json", run.id)),
        markdown: dir.join(format!("{}.md", run.id)),
        html: dir.join(format!("{}.html", run.id)),
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    };
    write(&out.json, serde_json::to_string_pretty(run)?)?;
    write(&out.markdown, markdown::run(run))?;
    write(&out.html, html::run(run))?;
    Ok(out)
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = crate::state::period::civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// A 0..=1 score as 0-100 with one decimal.
pub(crate) fn fmt_score(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", s * 100.0))
}

pub(crate) fn fmt_cost(c: Option<f64>) -> String {
    c.map_or("unknown".into(), |c| format!("${c:.6}"))
}

pub(crate) fn status_label(s: CaseStatus) -> &'static str {
    match s {
        CaseStatus::Pass => "pass",
        CaseStatus::Flaky => "flaky",
        CaseStatus::Fail => "FAIL",
        CaseStatus::Error => "ERROR",
    }
}
