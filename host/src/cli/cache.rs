//! `sluice cache stats|purge`: the response cache on the state a config
//! names, the same data `/admin/cache` serves. With sled, run it while the
//! gateway is stopped (or use the admin API); with Redis, beside any number
//! of gateways.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::cache::ResponseCache;
use crate::config::Config;
use crate::state::{GroupBy, State, UsageQuery, now_ms};

#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// Entries held, and this month's hit rate and money saved per gateway
    /// model (from the ledger).
    Stats {
        #[arg(long)]
        json: bool,
        #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
        config: PathBuf,
    },
    /// Delete cached answers (and their vectors): all, or those of a
    /// gateway model and/or a virtual key id.
    Purge {
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
        config: PathBuf,
    },
}

async fn open(path: &Path) -> anyhow::Result<(State, ResponseCache)> {
    let mut config = Config::load(path)?;
    config.state.warm_tokenizer = false;
    let state = State::open(&config.state).await.context(
        "opening the state (a running gateway holds a sled directory: stop it, or use /admin/cache)",
    )?;
    let cache = ResponseCache::new(state.store().clone(), config.cache.clone());
    Ok((state, cache))
}

pub async fn run(cmd: CacheCmd) -> anyhow::Result<()> {
    match cmd {
        CacheCmd::Stats { json, config } => {
            let (state, cache) = open(&config).await?;
            let stats = cache.stats().await?;
            let query = UsageQuery::parse(Some("model"), None, None, now_ms())
                .map_err(anyhow::Error::msg)?;
            debug_assert_eq!(query.by, GroupBy::Model);
            let usage = state.usage(&query).await?;
            if json {
                let out = serde_json::json!({ "cache": stats, "usage": usage });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            println!(
                "backend {}, {} entries (max {} on sled)",
                stats.backend, stats.entries, stats.max_entries
            );
            println!(
                "{:<28} {:>9} {:>9} {:>10} {:>12}",
                "model (this month)", "lookups", "hits", "hit rate", "saved USD"
            );
            for r in usage.rows.iter().chain(std::iter::once(&usage.total)) {
                let rate = r
                    .cache_hit_rate()
                    .map_or_else(|| "-".to_string(), |h| format!("{:.1} %", h * 100.0));
                println!(
                    "{:<28} {:>9} {:>9} {:>10} {:>12.6}",
                    r.group, r.cache_lookups, r.cache_hits, rate, r.saved_usd
                );
            }
            Ok(())
        }
        CacheCmd::Purge { model, key, config } => {
            let (_state, cache) = open(&config).await?;
            let n = cache.purge(model.as_deref(), key.as_deref()).await?;
            println!("purged {n} cached answers");
            Ok(())
        }
    }
}
