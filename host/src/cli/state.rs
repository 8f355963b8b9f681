//! `sluice usage` and `sluice keys`: the ledger and the virtual keys from
//! the command line, on the state a config names (`[state]`), the same
//! data `GET /admin/usage` and `/admin/keys` serve.
//!
//! With sled, the data directory belongs to one process at a time: run
//! these while the gateway is stopped, or use the admin API (a running
//! gateway holds sled's lock and the command says so). With Redis they run
//! beside any number of gateways.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::state::{Budget, NewKey, State, Tier, TierLimits, UsageQuery, now_ms};

/// `sluice usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// Group by key, user, feature, model (the gateway model) or day.
    #[arg(long, default_value = "key")]
    pub by: String,
    /// Start (inclusive): YYYY-MM-DD, YYYY-MM, 7d / 12h / 30m ago, or unix
    /// ms. Default: the start of this UTC month.
    #[arg(long)]
    pub since: Option<String>,
    /// End: a date or month includes itself; `now` (default), or unix ms.
    #[arg(long)]
    pub until: Option<String>,
    /// Print the report as JSON (what `GET /admin/usage` returns).
    #[arg(long)]
    pub json: bool,
    /// The gateway's config file (its `[state]` is read).
    #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
    pub config: PathBuf,
}

/// `sluice keys`.
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key and print its secret (shown this once, never stored).
    Create(CreateArgs),
    /// List every key (no secrets), revoked ones marked.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
        config: PathBuf,
    },
    /// Revoke a key by id: refused from the next request on, everywhere.
    Revoke {
        id: String,
        #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
        config: PathBuf,
    },
}

/// `sluice keys create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Unique id (default: `key-` and 12 random characters).
    #[arg(long)]
    pub id: Option<String>,
    /// Owner (the requests' user when the client names none).
    #[arg(long)]
    pub user: Option<String>,
    /// A gateway model the key may use (repeat; default: all).
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// Budget in USD per UTC day.
    #[arg(long)]
    pub day_usd: Option<f64>,
    /// Budget in USD per UTC month.
    #[arg(long)]
    pub month_usd: Option<f64>,
    /// Requests per minute (the key's tier).
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute (the key's tier).
    #[arg(long)]
    pub tpm: Option<u32>,
    /// The key's tier: interactive (default) or batch.
    #[arg(long, default_value = "interactive", value_parser = parse_tier)]
    pub tier: Tier,
    /// Another tier requests may pick with `x-sluice-tier` (repeat).
    #[arg(long = "allow-tier", value_parser = parse_tier)]
    pub allowed_tiers: Vec<Tier>,
    /// Expiry: YYYY-MM-DD (start of that UTC day) or unix seconds.
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(long, short, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
    pub config: PathBuf,
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    Tier::parse(s).ok_or_else(|| format!("unknown tier `{s}`: interactive or batch"))
}

async fn open(config: &Path) -> anyhow::Result<State> {
    let mut config = Config::load(config)?;
    // A one-shot command never estimates tokens.
    config.state.warm_tokenizer = false;
    State::open(&config.state).await.with_context(|| {
        format!(
            "opening the {} state (a running gateway holds a sled directory: stop it, or use the admin API)",
            match config.state.backend {
                crate::state::BackendKind::Sled => "sled",
                crate::state::BackendKind::Redis => "Redis",
            }
        )
    })
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let query = UsageQuery::parse(
        Some(&args.by),
        args.since.as_deref(),
        args.until.as_deref(),
        now_ms(),
    )
    .map_err(anyhow::Error::msg)?;
    let state = open(&args.config).await?;
    let report = state.usage(&query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

pub async fn keys(cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Create(a) => {
            let expires_at = a
                .expires
                .as_deref()
                .map(|s| {
                    crate::state::period::parse_date(s)
                        .map(|ms| ms / 1000)
                        .or_else(|| s.parse().ok())
                        .with_context(|| format!("`{s}`: expected YYYY-MM-DD or unix seconds"))
                })
                .transpose()?;
            let limit = crate::state::RateLimit {
                rpm: a.rpm,
                tpm: a.tpm,
            };
            let mut limits = TierLimits::default();
            match a.tier {
                Tier::Interactive => limits.interactive = limit,
                Tier::Batch => limits.batch = limit,
            }
            let spec = NewKey {
                id: a.id,
                user: a.user,
                models: a.models,
                budget: Budget {
                    day_usd: a.day_usd,
                    month_usd: a.month_usd,
                },
                limits,
                tier: a.tier,
                allowed_tiers: a.allowed_tiers,
                expires_at,
            };
            let state = open(&a.config).await?;
            let created = state.create_key(spec).await?;
            state.flush().await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("created key `{}`", created.key.id);
                println!("secret (shown once, not stored): {}", created.secret);
            }
        }
        KeysCmd::List { json, config } => {
            let keys = open(&config).await?.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<24} {:<16} {:<9} {:<12} {:<8} fingerprint",
                    "id", "user", "source", "tier", "status"
                );
                let now = now_ms() / 1000;
                for k in keys {
                    let status = if k.revoked {
                        "revoked"
                    } else if k.expires_at.is_some_and(|t| t <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<16} {:<9} {:<12} {:<8} {}",
                        k.id,
                        k.user.as_deref().unwrap_or("-"),
                        format!("{:?}", k.source).to_lowercase(),
                        k.tier.as_str(),
                        status,
                        k.fingerprint
                    );
                }
            }
        }
        KeysCmd::Revoke { id, config } => {
            let state = open(&config).await?;
            if !state.revoke_key(&id).await? {
                anyhow::bail!("no key with id `{id}`");
            }
            state.flush().await?;
            println!("revoked key `{id}`");
        }
    }
    Ok(())
}
