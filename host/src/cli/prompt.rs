//! `sluice prompt list|show|render|activate|history`: the prompt registry
//! from the command line.
//!
//! Two places to read from:
//! - `--gateway URL --admin-key KEY`: a running gateway's admin API. What
//!   it says is what serves; an activation applies at once.
//! - `--config FILE` (or `--dir DIR` for a directory alone): the files and
//!   the state layer directly, for when no gateway runs, or for a shared
//!   Redis state (gateways pick a change up within `[prompts] refresh-ms`).
//!   A sled state is locked by a running gateway: use `--gateway` then.
//!
//! `render` always works on the files (`--config` or `--dir`): it prints
//! the messages and settings a request would get, without calling a model.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::eval::{Client, EvalStore};
use crate::pipeline::Gateway;
use crate::plugin::log::escaped;
use crate::prompt::{Activation, PromptStatus, Prompts, PromptsConfig, Version, activation};
use crate::state::State;

#[derive(Subcommand, Debug)]
pub enum PromptCmd {
    /// Every prompt: versions, the version that serves and why, load state.
    List {
        #[command(flatten)]
        from: From,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One prompt: every version's settings and templates, and who
    /// activated which version when.
    Show {
        id: String,
        #[command(flatten)]
        from: From,
        #[arg(long)]
        json: bool,
    },
    /// Render a version with variables: the messages and settings the
    /// gateway would send (no model is called).
    Render {
        id: String,
        /// Default: the version that serves.
        #[arg(long)]
        version: Option<u32>,
        /// A variable, `NAME=VALUE` (VALUE is JSON when it parses as JSON,
        /// else a string). Repeatable.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Variables as one JSON object (merged under `--var`).
        #[arg(long, value_name = "JSON")]
        vars_json: Option<String>,
        #[command(flatten)]
        from: From,
    },
    /// Pin the version that serves, without editing files (a rollback is
    /// activating the previous version). `VERSION` may be `file` to unpin:
    /// the file's own `active` (or its highest version) serves again.
    /// Recorded in the state with who and when.
    Activate {
        id: String,
        version: String,
        /// Who is asking. Default: `$USER`.
        #[arg(long)]
        by: Option<String>,
        /// Why (kept with the record).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        from: From,
    },
    /// Activation history, oldest first (every prompt when no ID).
    History {
        id: Option<String>,
        #[command(flatten)]
        from: From,
        #[arg(long)]
        json: bool,
    },
}

/// Where the registry is read from (see the module doc).
#[derive(Args, Debug, Clone, Default)]
pub struct From {
    /// A running gateway, e.g. `http://127.0.0.1:8080` (its admin API).
    #[arg(long, env = "SLUICE_GATEWAY")]
    pub gateway: Option<String>,
    /// The gateway's admin key (with `--gateway`).
    #[arg(long, env = "SLUICE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// The gateway config: its `[prompts] dir`, models and `[state]`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A prompt directory alone (no state: activations are not known).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Run a `sluice prompt` subcommand, printing to stdout.
pub fn run(cmd: PromptCmd) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let out = rt.block_on(execute(cmd))?;
    print!("{out}");
    Ok(())
}

/// Run a subcommand and return what it prints.
pub async fn execute(cmd: PromptCmd) -> anyhow::Result<String> {
    match cmd {
        PromptCmd::List { from, json } => {
            let statuses: Vec<PromptStatus> = match admin(&from)? {
                Some(c) => {
                    serde_json::from_value(c.admin_get("/admin/prompts").await?["prompts"].take())?
                }
                None => local(&from, false).await?.statuses(),
            };
            Ok(if json {
                serde_json::to_string_pretty(&statuses)? + "\n"
            } else {
                list_text(&statuses)
            })
        }
        PromptCmd::Show { id, from, json } => {
            let detail = match admin(&from)? {
                Some(c) => c.admin_get(&format!("/admin/prompts/{id}")).await?,
                None => {
                    let p = local(&from, false).await?;
                    let status = p.statuses().into_iter().find(|s| s.id == id);
                    let status = status.ok_or_else(|| {
                        anyhow::anyhow!("no prompt `{id}` in {}", p.dir().display())
                    })?;
                    let versions: Vec<Value> = p
                        .current()
                        .get(&id)
                        .map(|x| x.versions().map(|v| json!(v)).collect())
                        .unwrap_or_default();
                    let history = match p.state() {
                        Some(s) => activation::history(s, Some(&id), 100).await?,
                        None => Vec::new(),
                    };
                    json!({"status": status, "versions": versions, "history": history})
                }
            };
            Ok(if json {
                serde_json::to_string_pretty(&detail)? + "\n"
            } else {
                show_text(&detail)?
            })
        }
        PromptCmd::Render {
            id,
            version,
            vars,
            vars_json,
            from,
        } => {
            let p = local(&from, false).await?;
            let variables = parse_vars(vars_json.as_deref(), &vars)?;
            let r = p.resolve(&id, version)?;
            let messages = r.prompt.render(r.version(), &variables)?;
            let v = r.version();
            let out = json!({
                "prompt": {"id": id, "version": r.version},
                "model": v.model, "temperature": v.temperature, "max_tokens": v.max_tokens,
                "output_guardrails": v.output_guardrails,
                "messages": messages,
            });
            Ok(serde_json::to_string_pretty(&out)? + "\n")
        }
        PromptCmd::Activate {
            id,
            version,
            by,
            reason,
            from,
        } => {
            let version =
                match version.as_str() {
                    "file" | "none" => None,
                    v => Some(v.trim_start_matches('v').parse::<u32>().with_context(|| {
                        format!("VERSION must be a number or `file`, got `{v}`")
                    })?),
                };
            let by = by.unwrap_or_else(default_actor);
            let a: Activation = match admin(&from)? {
                Some(c) => {
                    let body = json!({"version": version, "by": by, "reason": reason});
                    let res = c
                        .admin_post(&format!("/admin/prompts/{id}/activate"), &body)
                        .await?;
                    serde_json::from_value(res["activation"].clone())?
                }
                None => {
                    let p = local(&from, true).await?;
                    let a = p.activate(&id, version, &by, reason).await?;
                    if let Some(s) = p.state() {
                        s.flush().await?;
                    }
                    a
                }
            };
            Ok(format!("{}\n", activation_line(&a)))
        }
        PromptCmd::History { id, from, json } => {
            let history: Vec<Activation> = match admin(&from)? {
                Some(c) => {
                    let Some(id) = &id else {
                        anyhow::bail!("with --gateway, name the prompt: sluice prompt history ID");
                    };
                    serde_json::from_value(
                        c.admin_get(&format!("/admin/prompts/{id}")).await?["history"].take(),
                    )?
                }
                None => {
                    let p = local(&from, true).await?;
                    let state = p.state().expect("local(.., true) opens the state");
                    activation::history(state, id.as_deref(), 10_000).await?
                }
            };
            Ok(if json {
                serde_json::to_string_pretty(&history)? + "\n"
            } else if history.is_empty() {
                "no activations recorded\n".into()
            } else {
                history.iter().map(|a| activation_line(a) + "\n").collect()
            })
        }
    }
}

/// The admin client when `--gateway` is given.
fn admin(from: &From) -> anyhow::Result<Option<Client>> {
    let Some(url) = &from.gateway else {
        return Ok(None);
    };
    let c = Client::new(
        url,
        None,
        from.admin_key.clone(),
        0,
        std::time::Duration::from_secs(30),
    )?;
    Ok(Some(c))
}

/// The registry from `--config` (with its state when it can be opened, or
/// must be: `need_state`) or `--dir`.
async fn local(from: &From, need_state: bool) -> anyhow::Result<Arc<Prompts>> {
    let (cfg, models, state) = match (&from.config, &from.dir) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            let models: BTreeSet<String> = config.models.keys().cloned().collect();
            let state = match State::open(&config.state).await {
                Ok(s) => Some(s),
                Err(e) if need_state => {
                    anyhow::bail!(
                        "{e}\n(a running gateway holds a sled state: use --gateway URL --admin-key KEY)"
                    )
                }
                Err(e) => {
                    eprintln!("note: state not opened ({e}); activations are not shown");
                    None
                }
            };
            (config.prompts, Some(models), state)
        }
        (None, Some(dir)) if !need_state => (
            PromptsConfig {
                dir: Some(dir.clone()),
                ..PromptsConfig::default()
            },
            None,
            None,
        ),
        (None, Some(_)) => {
            anyhow::bail!("activations live in the state: give --config FILE or --gateway URL")
        }
        (None, None) => anyhow::bail!("give --gateway URL, --config FILE or --dir DIR"),
    };
    if cfg.dir.is_none() {
        anyhow::bail!("the config has no [prompts] dir");
    }
    let cfg = PromptsConfig {
        watch: false,
        ..cfg
    };
    Ok(Prompts::start(cfg, models, state).await?)
}

/// `--vars-json` merged with each `--var NAME=VALUE`.
fn parse_vars(json_obj: Option<&str>, vars: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = match json_obj {
        Some(j) => match serde_json::from_str(j).context("--vars-json")? {
            Value::Object(m) => m,
            _ => anyhow::bail!("--vars-json must be a JSON object"),
        },
        None => Map::new(),
    };
    for v in vars {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--var `{v}`: expected NAME=VALUE"))?;
        let val = serde_json::from_str(val).unwrap_or_else(|_| Value::String(val.to_string()));
        out.insert(k.to_string(), val);
    }
    Ok(out)
}

fn default_actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "cli".into())
}

fn activation_line(a: &Activation) -> String {
    let what = match a.version {
        Some(v) => format!("version {v} pinned"),
        None => "unpinned (the file decides)".into(),
    };
    let prev = a.previous.map(|p| format!(", was {p}")).unwrap_or_default();
    let why = a
        .reason
        .as_deref()
        .map(|r| format!(": {}", escaped(r)))
        .unwrap_or_default();
    format!(
        "{} {}: {what}{prev} by {}{why}",
        crate::eval::report::utc(a.at_ms),
        a.id,
        escaped(&a.by)
    )
}

fn list_text(statuses: &[PromptStatus]) -> String {
    let mut out = String::new();
    if statuses.is_empty() {
        return "no prompts\n".into();
    }
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<10} {:<12} STATE",
        "ID", "ACTIVE", "WHY", "VERSIONS"
    );
    for s in statuses {
        let versions: Vec<String> = s.versions.iter().map(u32::to_string).collect();
        let why = match (&s.active_source, &s.activation) {
            (Some(crate::prompt::ActiveSource::Pinned), Some(a)) => {
                format!("pinned:{}", escaped(&a.by))
            }
            (Some(_), _) => "file".into(),
            (None, _) => "-".into(),
        };
        let state = match (&s.error, s.serving_previous) {
            (Some(e), true) => format!("FAILED (previous version serves): {}", escaped(e)),
            (Some(e), false) => format!("FAILED: {}", escaped(e)),
            (None, _) => s.state.clone(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<10} {:<12} {state}",
            s.id,
            s.active.map_or("-".into(), |v| format!("v{v}")),
            why,
            versions.join(","),
        );
        if let Some(w) = &s.warning {
            let _ = writeln!(out, "{:<24} warning: {}", "", escaped(w));
        }
    }
    out
}

fn show_text(detail: &Value) -> anyhow::Result<String> {
    let status: PromptStatus = serde_json::from_value(detail["status"].clone())?;
    let versions: Vec<Version> = serde_json::from_value(detail["versions"].clone())?;
    let history: Vec<Activation> = serde_json::from_value(detail["history"].clone())?;
    let mut out = list_text(std::slice::from_ref(&status));
    if let Some(d) = &status.description {
        let _ = writeln!(out, "\n{}", escaped(d));
    }
    for v in &versions {
        let serving = if Some(v.version) == status.active {
            "  <- serves"
        } else {
            ""
        };
        let _ = writeln!(out, "\nversion {}{serving}", v.version);
        for (k, val) in [
            ("model", v.model.clone()),
            ("temperature", v.temperature.map(|t| t.to_string())),
            ("max-tokens", v.max_tokens.map(|t| t.to_string())),
            ("description", v.description.clone()),
        ] {
            if let Some(val) = val {
                let _ = writeln!(out, "  {k}: {}", escaped(&val));
            }
        }
        let _ = writeln!(out, "  variables: {}", v.variables.join(", "));
        if !v.defaults.is_empty() {
            let _ = writeln!(out, "  defaults: {}", serde_json::to_string(&v.defaults)?);
        }
        if !v.output_guardrails.is_empty() {
            let _ = writeln!(
                out,
                "  output-guardrails: {}",
                v.output_guardrails.join(", ")
            );
        }
        for m in &v.messages {
            let _ = writeln!(out, "  [{}]", m.role);
            for line in m.content.lines() {
                let _ = writeln!(out, "    {}", escaped(line));
            }
        }
    }
    if !history.is_empty() {
        let _ = writeln!(out, "\nactivations:");
        for a in &history {
            let _ = writeln!(out, "  {}", activation_line(a));
        }
    }
    Ok(out)
}

/// The prompt registry (when `[prompts] dir` is set) and eval results on
/// `gw`, over the gateway's own state.
pub async fn attach(gw: Gateway) -> anyhow::Result<Gateway> {
    let config = gw.config.clone();
    let state = gw.state.clone();
    let gw = gw.with_evals(EvalStore::new(state.clone(), &config.evals));
    if config.prompts.dir.is_none() {
        return Ok(gw);
    }
    let models = config.models.keys().cloned().collect();
    let prompts = Prompts::start(config.prompts.clone(), Some(models), Some(state))
        .await
        .context("starting the prompt registry")?;
    let failed: Vec<String> = prompts
        .statuses()
        .into_iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.id)
        .collect();
    if !failed.is_empty() {
        tracing::warn!(
            ?failed,
            "prompt files failed to load; requests naming them get 404 until fixed"
        );
    }
    Ok(gw.with_prompts(prompts))
}
