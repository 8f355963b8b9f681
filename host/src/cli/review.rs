//! `sluice review list|show|approve|reject`: the human review queue from the
//! command line, read and written directly in the configured state store.
//!
//! With Redis this works beside running gateways. A sled directory belongs
//! to one process: while a gateway serves from it, use its `/admin/review`
//! instead (the error says so).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::plugin::log::escaped;
use crate::state::review::{ReviewEntry, ReviewQueue, Status, Verdict};
use crate::state::{BackendKind, State};

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Flagged answers, newest first.
    List {
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: PathBuf,
        /// pending, approved, rejected or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One item (flags, conversation, answer, decision) as JSON.
    Show {
        id: String,
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Approve an item; recorded with your name and the time.
    Approve(Decide),
    /// Reject an item; recorded with your name and the time.
    Reject(Decide),
}

#[derive(clap::Args, Debug)]
pub struct Decide {
    id: String,
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: PathBuf,
    /// Who decides (recorded with the decision).
    #[arg(long, env = "SLUICE_REVIEWER")]
    reviewer: String,
    /// Why, for the record.
    #[arg(long)]
    note: Option<String>,
}

pub fn run(cmd: ReviewCmd) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match cmd {
            ReviewCmd::List {
                config,
                status,
                limit,
            } => {
                let status = match status.as_str() {
                    "all" => None,
                    s => Some(Status::parse(s).with_context(|| {
                        format!("--status must be pending, approved, rejected or all, got {s:?}")
                    })?),
                };
                let items = open(&config).await?.list(status, limit).await?;
                print!("{}", table(&items));
            }
            ReviewCmd::Show { id, config } => {
                let entry = open(&config).await?.get(&id).await?;
                println!("{}", serde_json::to_string_pretty(&entry)?);
            }
            ReviewCmd::Approve(d) => decide(d, Verdict::Approved).await?,
            ReviewCmd::Reject(d) => decide(d, Verdict::Rejected).await?,
        }
        Ok(())
    })
}

async fn decide(d: Decide, verdict: Verdict) -> anyhow::Result<()> {
    let entry = open(&d.config)
        .await?
        .decide(&d.id, verdict, &d.reviewer, d.note)
        .await?;
    let by = entry
        .decision
        .context("decision missing after it was recorded")?;
    println!(
        "{} {} by {} at {} (unix ms)",
        entry.item.id,
        status_word(entry.status),
        by.reviewer,
        by.at_ms
    );
    Ok(())
}

/// The queue in the state store `config` names.
async fn open(config: &std::path::Path) -> anyhow::Result<ReviewQueue> {
    let config = Config::load(config)?;
    let state = State::open(&config.state).await.with_context(|| {
        if config.state.backend == BackendKind::Sled {
            "opening the state (a sled directory is held by a running gateway: use its /admin/review, or stop it)"
        } else {
            "opening the state"
        }
    })?;
    Ok(ReviewQueue::new(state.store().clone()))
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Approved => "approved",
        Status::Rejected => "rejected",
    }
}

/// One line per item: id, status, model, action, flags (`plugin:code@score`).
fn table(items: &[ReviewEntry]) -> String {
    let mut out = format!(
        "{:<40} {:<9} {:<16} {:<6} FLAGS\n",
        "ID", "STATUS", "MODEL", "ACTION"
    );
    for e in items {
        let flags: Vec<String> = e
            .item
            .flags
            .iter()
            .map(|f| format!("{}:{}@{:.2}", f.plugin, escaped(&f.code), f.score))
            .collect();
        let action = match e.item.action {
            crate::state::review::OnFlag::Serve => "served",
            crate::state::review::OnFlag::Hold => "held",
        };
        out.push_str(&format!(
            "{:<40} {:<9} {:<16} {:<6} {}\n",
            e.item.id,
            status_word(e.status),
            e.item.model,
            action,
            flags.join(",")
        ));
    }
    out
}
