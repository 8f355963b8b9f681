//! `sluice eval run|compare`: run a suite through a gateway, and gate a
//! change on the comparison of two runs (exit status 1 on a regression).
//!
//! ```text
//! sluice eval run SUITE.yaml --config sluice.toml --prompt summarize@3 --repeat 3
//! sluice eval compare eval-results/BASELINE.json eval-results/CANDIDATE.json
//! ```
//!
//! With `--config`, the gateway URL (`[server] listen`), its admin key (to
//! store results), the plugin directory (guardrail scorers), prices and the
//! `[evals]` defaults come from the gateway's own config; flags override.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::eval::guardrail::Guardrails;
use crate::eval::quality::QualityAlert;
use crate::eval::report::{self, Written};
use crate::eval::{Client, Comparison, EvalsConfig, Options, Run, RunRecord, Suite, Thresholds};
use crate::prompt::PromptRef;

#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// Run a suite through a gateway; write JSON, Markdown and HTML reports
    /// and send the results to the gateway's state (with an admin key).
    Run(RunArgs),
    /// Compare run A (baseline) with run B (candidate): per-case and
    /// per-category deltas and a significance note. Exits 1 when B's pass
    /// rate or mean score drops beyond the thresholds.
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// The suite file (YAML).
    pub suite: PathBuf,
    /// Gateway model for every case (default: the suite's `model`; for
    /// prompt cases, the prompt version's model).
    #[arg(long)]
    pub model: Option<String>,
    /// Evaluate this prompt version (`ID@VERSION`) for the suite's
    /// `variables` cases.
    #[arg(long, value_parser = parse_prompt_ref)]
    pub prompt: Option<PromptRef>,
    /// Attempts per case, to measure variance (mean and spread per case).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Requests in flight. Default: `[evals] concurrency` (4).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Retries per request. Default: `[evals] retries` (2).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Gateway root URL. Default: `http://` + the config's `[server] listen`.
    #[arg(long, env = "SLUICE_GATEWAY")]
    pub gateway: Option<String>,
    /// Virtual key for `/v1` (when the gateway has `[[keys]]`).
    #[arg(long, env = "SLUICE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Admin key, to store the results in the gateway's state. Default:
    /// the config's `[server] admin-key`.
    #[arg(long, env = "SLUICE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// The gateway's config file (see the module doc).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Plugin directory for guardrail scorers. Default: the config's
    /// `[plugins] dir`.
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Judge model when neither the scorer nor the suite names one.
    /// Default: `[evals] judge-model`.
    #[arg(long)]
    pub judge_model: Option<String>,
    /// Where reports go. Default: `[evals] results-dir` (`eval-results`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not send the results to the gateway.
    #[arg(long)]
    pub no_store: bool,
    /// Exit 1 when the pass rate (0-100) is below this.
    #[arg(long)]
    pub min_pass_rate: Option<f64>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CompareArgs {
    /// Baseline run: its JSON report, or a run id in the results directory.
    pub run_a: PathBuf,
    /// Candidate run.
    pub run_b: PathBuf,
    /// Allowed pass-rate drop in points. Default: `[evals] max-pass-rate-drop` (5).
    #[arg(long)]
    pub max_pass_rate_drop: Option<f64>,
    /// Allowed mean-score drop in points (0-100). Default: `[evals] max-score-drop` (5).
    #[arg(long)]
    pub max_score_drop: Option<f64>,
    /// Config whose `[evals]` gives the defaults and results directory.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Also write the Markdown to this file (a PR comment, a CI summary).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

fn parse_prompt_ref(s: &str) -> Result<PromptRef, String> {
    PromptRef::parse(s).ok_or_else(|| format!("expected ID@VERSION (e.g. summarize@3), got `{s}`"))
}

/// Run a `sluice eval` subcommand.
pub fn run(cmd: EvalCmd) -> anyhow::Result<()> {
    match cmd {
        EvalCmd::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let done = rt.block_on(execute_run(&args, true))?;
            print!("{}", done.text);
            done.check(args.min_pass_rate)
        }
        EvalCmd::Compare(args) => {
            let c = execute_compare(&args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print!("{}", report::markdown::comparison(&c));
            }
            if c.gate.passed {
                Ok(())
            } else {
                anyhow::bail!("eval gate failed: {}", c.gate.reasons.join("; "))
            }
        }
    }
}

/// What `eval run` did.
pub struct RunDone {
    pub run: Run,
    pub written: Written,
    /// The subjects the gateway stored the results under, when it did.
    pub stored: Option<Vec<String>>,
    /// Quality alerts the gateway raised on storing the run.
    pub alerts: Vec<QualityAlert>,
    /// What the command prints.
    pub text: String,
}

impl RunDone {
    /// `--min-pass-rate`.
    pub fn check(&self, min_pass_rate: Option<f64>) -> anyhow::Result<()> {
        let rate = self.run.summary.pass_rate * 100.0;
        match min_pass_rate {
            Some(min) if rate < min => {
                anyhow::bail!("pass rate {rate:.1}% is below --min-pass-rate {min}")
            }
            _ => Ok(()),
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Option<Config>> {
    path.map(Config::load).transpose()
}

/// `eval run` without printing: tests call this in their own runtime.
/// `progress` draws the bar (only on a terminal).
pub async fn execute_run(args: &RunArgs, progress: bool) -> anyhow::Result<RunDone> {
    let config = load_config(args.config.as_deref())?;
    let defaults = config.as_ref().map(|c| c.evals.clone()).unwrap_or_default();
    let suite = Suite::load(&args.suite)?;
    let gateway = match (&args.gateway, &config) {
        (Some(g), _) => g.clone(),
        (None, Some(c)) => {
            let mut addr = c.server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        (None, None) => anyhow::bail!("give --gateway URL or --config FILE"),
    };
    let admin_key = args
        .admin_key
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.server.admin_key.clone()));
    let mut client = Client::new(
        &gateway,
        args.key.clone(),
        admin_key,
        args.retries.unwrap_or(defaults.retries),
        Duration::from_millis(defaults.timeout_ms),
    )?;
    if let Some(c) = &config {
        client = client.with_pricing(Arc::new(c.clone()));
    }
    let needed = suite.guardrail_plugins();
    let guardrails = if needed.is_empty() {
        None
    } else {
        let dir = args
            .plugins
            .clone()
            .or_else(|| config.as_ref().map(|c| c.plugins.dir.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!("guardrail scorers need --plugins DIR or --config FILE")
            })?;
        let cache = config.as_ref().and_then(|c| c.plugins.cache_dir.clone());
        Some(Guardrails::load(dir, cache, &needed).await?)
    };
    let opts = options(args, &defaults);
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} attempts, {elapsed} elapsed, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(suite.name.clone());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let run = crate::eval::runner::run(&suite, &opts, &client, guardrails.as_ref(), &bar).await?;
    let dir = args.out.clone().unwrap_or(defaults.results_dir);
    let written = report::write(&run, &dir)?;
    let mut alerts: Vec<QualityAlert> = Vec::new();
    let stored = if args.no_store || !client.has_admin_key() {
        None
    } else {
        let rec = RunRecord::of(&run);
        let body = serde_json::to_value(&rec)?;
        match client.admin_post("/admin/evals", &body).await {
            Ok(mut answer) => {
                alerts = serde_json::from_value(answer["alerts"].take()).unwrap_or_default();
                Some(rec.subjects)
            }
            Err(e) => {
                eprintln!("warning: the results were not stored in the gateway: {e:#}");
                None
            }
        }
    };
    let mut text = summary_text(&run, &written, stored.as_deref());
    for a in &alerts {
        text.push_str(&format!(
            "QUALITY ALERT for {}: {}\n",
            a.subject,
            a.reasons.join("; ")
        ));
    }
    Ok(RunDone {
        run,
        written,
        stored,
        alerts,
        text,
    })
}

fn options(args: &RunArgs, d: &EvalsConfig) -> Options {
    Options {
        model: args.model.clone(),
        prompt: args.prompt.clone(),
        repeat: args.repeat.max(1),
        concurrency: args.concurrency.unwrap_or(d.concurrency).max(1),
        judge_model: args.judge_model.clone().or_else(|| d.judge_model.clone()),
        pass_score: d.pass_score,
    }
}

fn summary_text(run: &Run, w: &Written, stored: Option<&[String]>) -> String {
    let s = &run.summary;
    let mut out = format!(
        "{} ({}): pass rate {:.1}% ({}/{} attempts), mean score {} (sd {}), {} error(s)\n",
        run.suite,
        run.target,
        s.pass_rate * 100.0,
        s.passed,
        s.attempts,
        report::fmt_score(s.mean_score),
        report::fmt_score(s.score_stddev),
        s.errors
    );
    for (cat, c) in &s.by_category {
        out.push_str(&format!(
            "  {cat}: {:.1}% pass, mean {}\n",
            c.pass_rate * 100.0,
            report::fmt_score(c.mean_score)
        ));
    }
    out.push_str(&format!(
        "reports: {}, {}, {}\n",
        w.json.display(),
        w.markdown.display(),
        w.html.display()
    ));
    match stored {
        Some(subjects) if !subjects.is_empty() => out.push_str(&format!(
            "stored in the gateway for {}\n",
            subjects.join(", ")
        )),
        Some(_) => out.push_str("stored in the gateway\n"),
        None => {}
    }
    out
}

/// `eval compare` without printing.
pub fn execute_compare(args: &CompareArgs) -> anyhow::Result<Comparison> {
    let config = load_config(args.config.as_deref())?;
    let d = config.map(|c| c.evals).unwrap_or_default();
    let find = |p: &Path| -> anyhow::Result<Run> {
        if p.is_file() {
            return Run::load(p);
        }
        let in_dir = d.results_dir.join(format!("{}.json", p.display()));
        if in_dir.is_file() {
            return Run::load(&in_dir);
        }
        anyhow::bail!("no run report at {} or {}", p.display(), in_dir.display())
    };
    let a = find(&args.run_a)?;
    let b = find(&args.run_b)?;
    let t = Thresholds {
        max_pass_rate_drop: args.max_pass_rate_drop.unwrap_or(d.max_pass_rate_drop),
        max_score_drop: args.max_score_drop.unwrap_or(d.max_score_drop),
    };
    let c = crate::eval::compare(&a, &b, t);
    if let Some(path) = &args.markdown {
        std::fs::write(path, report::markdown::comparison(&c))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(c)
}
