//! `NAME.toml`: what a plugin is, where it sits in its chain, how it is
//! limited and what it may touch. Unknown keys are an error so a typo never
//! silently widens or drops a limit.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A plugin's manifest. Every key is optional except `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Which world the component implements: `guardrail`, `router` or
    /// `cost-policy`. Must match the component's export or the load fails.
    pub kind: PluginKind,
    /// Chain position, ascending; ties are broken by name. Default `100`.
    #[serde(default = "default_order")]
    pub order: i64,
    /// What a failed call (trap, deadline, memory, oversized output) answers:
    /// `closed` (default) rejects / fails the request, `open` lets it through.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Sandbox limits; every one has a safe default.
    #[serde(default)]
    pub limits: Limits,
    /// What the plugin may touch beyond the baseline. Nothing by default.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The plugin's own settings, read by the guest with `host.config(key)`.
    /// Strings are passed as-is, other values as JSON. Default: empty.
    #[serde(default)]
    pub config: toml::Table,
}

/// The world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Exports `sluice:plugin/guardrail`.
    Guardrail,
    /// Exports `sluice:plugin/router`.
    Router,
    /// Exports `sluice:plugin/cost-policy`.
    CostPolicy,
}

impl PluginKind {
    /// The WIT interface this kind exports (without package or version).
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Guardrail => "guardrail",
            PluginKind::Router => "router",
            PluginKind::CostPolicy => "cost-policy",
        }
    }

    /// The kind whose export interface is `iface`, if any.
    pub fn from_interface(iface: &str) -> Option<Self> {
        [Self::Guardrail, Self::Router, Self::CostPolicy]
            .into_iter()
            .find(|k| k.interface() == iface)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// How a failed call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Guardrail rejects (`plugin_failure`), router / cost policy fail the
    /// request. The default: a broken safety check must not wave traffic through.
    #[default]
    Closed,
    /// Guardrail passes, router falls back to configured order, cost policy allows.
    Open,
}

/// Per-plugin sandbox limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Wall-clock budget of one call, instantiation and host calls included,
    /// in ms. Guest code checks the clock at every 1 ms epoch tick; a host
    /// call still waiting at the deadline (a sleep, a socket read, an HTTP
    /// request) is cancelled. Default `50`; allowed 1..=60000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Linear memory cap per instance in MiB (all memories together).
    /// Default `32`; at most the runtime's `max-memory-mb`.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Fuel (roughly wasm instructions) per call. Only enforced when the
    /// runtime runs with `[plugins] fuel = true`; otherwise ignored. Default: none.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Largest answer a call may return (transformed text, reject reason,
    /// the names in a route list), in KiB. Default `256`.
    #[serde(default = "default_max_output_kb")]
    pub max_output_kb: u64,
    /// Most entries a list in an answer may have (a router's routes): a
    /// list of empty entries costs the host memory but no bytes. A longer
    /// answer is a failed call (`too_many_entries`). Default `64`; allowed
    /// 1..=10000.
    #[serde(default = "default_max_output_entries")]
    pub max_output_entries: u64,
    /// Calls one instance serves before it is dropped. Default `1`: every
    /// call gets a fresh instance, so nothing a call leaves in guest memory
    /// reaches the next one. More WEAKENS that isolation (opt-in, shown by
    /// `sluice plugin audit` and `/admin/plugins`): an instance that
    /// answered cleanly is kept for the next call, which sees whatever
    /// globals and heap the earlier calls (other requests) left. An
    /// instance still serves one call at a time, and is dropped after a
    /// failed call (trap, deadline, memory, bad answer) or its last call.
    /// Saves instantiation and the guest's first touch of its heap:
    /// Python 1-1.7 ms -> ~0.1-0.2 ms per call (bench/README.md). Allowed
    /// 1..=10000.
    #[serde(default = "default_calls_per_instance")]
    pub calls_per_instance: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: default_deadline_ms(),
            memory_mb: default_memory_mb(),
            fuel: None,
            max_output_kb: default_max_output_kb(),
            max_output_entries: default_max_output_entries(),
            calls_per_instance: default_calls_per_instance(),
        }
    }
}

/// What one call of a plugin can see of earlier calls, as `sluice plugin
/// audit` and `/admin/plugins` (`isolation`) report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// A fresh instance per call (the default): nothing.
    Fresh,
    /// WEAKENED (`limits.calls-per-instance` > 1): an instance serves
    /// several calls, one at a time, keeping its memory between them.
    Reused,
}

/// Granted capabilities. Each key opens exactly one kind of access; the
/// mapping to WASI interfaces lives in `capability.rs`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// Full-resolution `wasi:clocks/*` (wall and monotonic clock). Default
    /// `false`: the clocks are in the inert baseline and read in whole
    /// milliseconds (not linked at all with `[plugins] strict-imports`).
    #[serde(default)]
    pub clocks: bool,
    /// `wasi:random/*`. Default `false`: the same randomness is in the
    /// inert baseline; only `[plugins] strict-imports` makes this key needed.
    #[serde(default)]
    pub random: bool,
    /// Environment variables passed through by name, with the gateway
    /// process's values (missing ones are skipped). Default: none, so the
    /// guest sees an empty environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Directories preopened for the guest (`wasi:filesystem/*`). Broad or
    /// sensitive host paths are refused unless the grant says
    /// `acknowledge-sensitive = true` (see [`FileGrant::exposure`]).
    /// Default: none (the filesystem interfaces are inert: nothing to open).
    #[serde(default)]
    pub files: Vec<FileGrant>,
    /// Hosts (`name` or `name:port`) the guest may send outbound
    /// `wasi:http` requests to. Default: none (every request refused).
    #[serde(default)]
    pub http: Vec<String>,
    /// `ip:port` addresses the guest may open TCP connections to
    /// (`wasi:sockets/*`; UDP and name lookup stay off). Default: none
    /// (TCP off, every address refused).
    #[serde(default)]
    pub sockets: Vec<String>,
}

/// One preopened directory.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileGrant {
    /// Directory on the gateway host; relative paths are resolved against
    /// the manifest's directory.
    pub host: PathBuf,
    /// Path the guest sees it under, e.g. `/data`.
    pub guest: String,
    /// `ro` (default) or `rw`.
    #[serde(default)]
    pub mode: FileMode,
    /// Load the grant even though it exposes a broad or sensitive host path
    /// (`/`, `/etc`, `/proc`, `/sys`, `/dev`, ..., or the gateway's own
    /// config, plugin or cache directory): the load log and
    /// `sluice plugin audit` still flag it. Default `false`: such a grant
    /// is refused.
    #[serde(default)]
    pub acknowledge_sensitive: bool,
}

/// System directories a grant may not contain (or be) unacknowledged.
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var", "/home", "/usr",
];
/// Kernel and device interfaces: any directory inside them is sensitive too
/// (`/proc/self/environ`, `/dev/sda`, ...).
const SYSTEM_TREES: &[&str] = &["/proc", "/sys", "/dev"];

impl FileGrant {
    /// Why this grant exposes a broad or sensitive part of the host, if it
    /// does: it is `/`, a system directory or an ancestor of one, inside
    /// `/proc`, `/sys` or `/dev`, an ancestor of (or equal to) one of the
    /// gateway's `protected` directories (config, plugins, compile cache,
    /// data), or a writable directory inside one of them (a writable plugin
    /// or cache directory lets a plugin replace code the gateway loads).
    /// Paths are compared after resolving symlinks.
    pub fn exposure(&self, protected: &[PathBuf]) -> Option<String> {
        let host = std::fs::canonicalize(&self.host).unwrap_or_else(|_| self.host.clone());
        let shown = host.display();
        if host.parent().is_none() {
            return Some(format!("`{shown}` is the whole host filesystem"));
        }
        for dir in SYSTEM_TREES {
            if host.starts_with(dir) {
                return Some(format!(
                    "`{shown}` is inside {dir} (kernel and device interfaces)"
                ));
            }
        }
        for dir in SYSTEM_DIRS {
            if Path::new(dir).starts_with(&host) {
                return Some(format!("`{shown}` exposes the system directory {dir}"));
            }
        }
        for dir in protected {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if dir.starts_with(&host) {
                return Some(format!(
                    "`{shown}` exposes the gateway's own directory {}",
                    dir.display()
                ));
            }
            if self.mode == FileMode::Rw && host.starts_with(&dir) {
                return Some(format!(
                    "`{shown}` is writable and inside the gateway's own directory {}",
                    dir.display()
                ));
            }
        }
        None
    }
}

/// Access mode of a preopened directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileMode {
    /// Read files and list directories only.
    #[default]
    Ro,
    /// Also create, write and delete.
    Rw,
}

fn default_order() -> i64 {
    100
}
fn default_deadline_ms() -> u64 {
    50
}
fn default_memory_mb() -> u64 {
    32
}
fn default_max_output_kb() -> u64 {
    256
}
fn default_max_output_entries() -> u64 {
    64
}
fn default_calls_per_instance() -> u32 {
    1
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, an unknown key, a value of the wrong type (toml's message
    /// names the line and the key).
    #[error("{0}")]
    Syntax(String),
    /// A value out of range or pointing at nothing.
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Manifest {
    /// The manifest of a `kind` plugin with every default: nothing granted.
    pub fn with_defaults(kind: PluginKind) -> Manifest {
        Manifest {
            kind,
            order: default_order(),
            failure_mode: FailureMode::default(),
            limits: Limits::default(),
            capabilities: Capabilities::default(),
            config: toml::Table::new(),
        }
    }

    /// Parse manifest text; `base` resolves relative file grants.
    pub fn parse(text: &str, base: &Path) -> Result<Manifest, ManifestError> {
        let mut m: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        for f in &mut m.capabilities.files {
            if f.host.is_relative() {
                f.host = base.join(&f.host);
            }
        }
        Ok(m)
    }

    /// Check values serde cannot: ranges, addresses, paths. `protected`:
    /// the gateway's own directories, which no files grant may expose
    /// unacknowledged (see [`FileGrant::exposure`]).
    pub fn validate(&self, max_memory_mb: u64, protected: &[PathBuf]) -> Result<(), ManifestError> {
        let invalid = |key, message| Err(ManifestError::Invalid { key, message });
        let l = &self.limits;
        if !(1..=60_000).contains(&l.deadline_ms) {
            return invalid(
                "limits.deadline-ms",
                format!("{} is outside 1..=60000", l.deadline_ms),
            );
        }
        if l.memory_mb == 0 || l.memory_mb > max_memory_mb {
            return invalid(
                "limits.memory-mb",
                format!(
                    "{} is outside 1..={max_memory_mb} (the runtime's max-memory-mb)",
                    l.memory_mb
                ),
            );
        }
        if l.max_output_kb == 0 {
            return invalid("limits.max-output-kb", "must be at least 1".into());
        }
        if !(1..=10_000).contains(&l.max_output_entries) {
            return invalid(
                "limits.max-output-entries",
                format!("{} is outside 1..=10000", l.max_output_entries),
            );
        }
        if !(1..=10_000).contains(&l.calls_per_instance) {
            return invalid(
                "limits.calls-per-instance",
                format!("{} is outside 1..=10000", l.calls_per_instance),
            );
        }
        for s in &self.capabilities.sockets {
            if s.parse::<SocketAddr>().is_err() {
                return invalid(
                    "capabilities.sockets",
                    format!("`{s}` is not an ip:port address"),
                );
            }
        }
        for h in &self.capabilities.http {
            if h.is_empty() || h.contains('/') || h.contains('*') {
                return invalid(
                    "capabilities.http",
                    format!("`{h}` must be a host or host:port (no scheme, path or wildcard)"),
                );
            }
        }
        for f in &self.capabilities.files {
            if !f.guest.starts_with('/') {
                return invalid(
                    "capabilities.files",
                    format!("guest path `{}` must be absolute", f.guest),
                );
            }
            if !f.host.is_dir() {
                return invalid(
                    "capabilities.files",
                    format!("host directory `{}` does not exist", f.host.display()),
                );
            }
            if !f.acknowledge_sensitive
                && let Some(why) = f.exposure(protected)
            {
                return invalid(
                    "capabilities.files",
                    format!("{why}; refused unless the grant sets `acknowledge-sensitive = true`"),
                );
            }
        }
        Ok(())
    }

    /// Whether instances serve more than one call (`limits.calls-per-instance`
    /// above 1): state may then carry from one request's call to another's.
    pub fn reuses_instances(&self) -> bool {
        self.isolation() == Isolation::Reused
    }

    /// The isolation between calls this manifest asks for.
    pub fn isolation(&self) -> Isolation {
        if self.limits.calls_per_instance > 1 {
            Isolation::Reused
        } else {
            Isolation::Fresh
        }
    }

    /// Every files grant that exposes a broad or sensitive host path, with
    /// why, acknowledged or not: for the load log and `sluice plugin audit`.
    pub fn sensitive_grants(&self, protected: &[PathBuf]) -> Vec<String> {
        self.capabilities
            .files
            .iter()
            .filter_map(|f| {
                let why = f.exposure(protected)?;
                let ack = if f.acknowledge_sensitive {
                    "acknowledged"
                } else {
                    "not acknowledged"
                };
                Some(format!("files grant {why} ({ack})"))
            })
            .collect()
    }

    /// The `[config]` value for `key` as the guest sees it.
    pub fn config_value(&self, key: &str) -> Option<String> {
        match self.config.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => serde_json::to_string(other).ok(),
        }
    }

    /// The largest output a call may return, in bytes.
    pub fn max_output_bytes(&self) -> usize {
        usize::try_from(self.limits.max_output_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    /// The most entries a list in an answer may have.
    pub fn max_output_entries(&self) -> usize {
        usize::try_from(self.limits.max_output_entries).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/plugins"))
    }

    #[test]
    fn minimal_manifest_gets_safe_defaults() {
        let m = parse("kind = \"guardrail\"").unwrap();
        assert_eq!(m.kind, PluginKind::Guardrail);
        assert_eq!(m.order, 100);
        assert_eq!(m.failure_mode, FailureMode::Closed);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.capabilities, Capabilities::default());
        assert!(m.validate(512, &[]).is_ok());
    }

    #[test]
    fn full_manifest_parses() {
        let m = parse(
            r#"
            kind = "cost-policy"
            order = 5
            failure-mode = "open"
            [limits]
            deadline-ms = 10
            memory-mb = 8
            fuel = 1000
            max-output-kb = 4
            max-output-entries = 8
            calls-per-instance = 100
            [capabilities]
            clocks = true
            random = true
            env = ["HOME"]
            files = [{ host = "data", guest = "/data", mode = "rw" }]
            http = ["api.example.com", "127.0.0.1:9000"]
            sockets = ["127.0.0.1:6379"]
            [config]
            threshold = 0.5
            name = "x"
            "#,
        )
        .unwrap();
        assert_eq!(m.kind, PluginKind::CostPolicy);
        assert_eq!(m.failure_mode, FailureMode::Open);
        assert_eq!(m.limits.fuel, Some(1000));
        assert_eq!(m.capabilities.files[0].host, PathBuf::from("/plugins/data"));
        assert_eq!(m.capabilities.files[0].mode, FileMode::Rw);
        assert_eq!(m.config_value("threshold").as_deref(), Some("0.5"));
        assert_eq!(m.config_value("name").as_deref(), Some("x"));
        assert_eq!(m.config_value("missing"), None);
        assert_eq!(m.max_output_bytes(), 4096);
        assert_eq!(m.max_output_entries(), 8);
        assert_eq!(m.limits.calls_per_instance, 100);
        assert!(m.reuses_instances());
        assert!(!parse("kind = \"router\"").unwrap().reuses_instances());
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        assert!(
            parse("kind = \"guardrail\"\nodrer = 1")
                .unwrap_err()
                .to_string()
                .contains("odrer")
        );
        assert!(parse("kind = \"filter\"").is_err());
        assert!(parse("kind = \"guardrail\"\n[limits]\ndeadline = 5").is_err());
        assert!(parse("kind = \"guardrail\"\n[capabilities]\nnet = true").is_err());
        assert!(parse("order = 1").unwrap_err().to_string().contains("kind"));
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        let m = parse("kind = \"router\"\n[limits]\nmemory-mb = 4096").unwrap();
        assert!(
            m.validate(512, &[])
                .unwrap_err()
                .to_string()
                .contains("memory-mb")
        );
        let m = parse("kind = \"router\"\n[limits]\ndeadline-ms = 0").unwrap();
        assert!(
            m.validate(512, &[])
                .unwrap_err()
                .to_string()
                .contains("deadline-ms")
        );
        for n in [0, 10_001] {
            let m = parse(&format!(
                "kind = \"router\"\n[limits]\ncalls-per-instance = {n}"
            ))
            .unwrap();
            assert!(
                m.validate(512, &[])
                    .unwrap_err()
                    .to_string()
                    .contains("calls-per-instance")
            );
        }
        let m = parse("kind = \"router\"\n[capabilities]\nsockets = [\"redis:6379\"]").unwrap();
        assert!(
            m.validate(512, &[])
                .unwrap_err()
                .to_string()
                .contains("redis:6379")
        );
        let m = parse("kind = \"router\"\n[capabilities]\nhttp = [\"https://x.com/\"]").unwrap();
        assert!(m.validate(512, &[]).is_err());
        let m = parse(
            "kind = \"router\"\n[capabilities]\nfiles = [{host = \"/nonexistent-dir-xyz\", guest = \"/d\"}]",
        )
        .unwrap();
        assert!(
            m.validate(512, &[])
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }

    fn grant(host: &Path, mode: &str, ack: bool) -> Manifest {
        parse(&format!(
            "kind = \"guardrail\"\n[capabilities]\nfiles = [{{ host = \"{}\", guest = \"/d\", mode = \"{mode}\", acknowledge-sensitive = {ack} }}]",
            host.display()
        ))
        .unwrap()
    }

    #[test]
    fn broad_or_sensitive_file_grants_need_an_acknowledgement() {
        for host in ["/", "/etc", "/proc", "/proc/self", "/sys", "/dev", "/usr"] {
            let err = grant(Path::new(host), "ro", false)
                .validate(512, &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("capabilities.files") && err.contains("acknowledge-sensitive"),
                "{host}: {err}"
            );
            let acked = grant(Path::new(host), "ro", true);
            assert!(acked.validate(512, &[]).is_ok(), "{host}");
            let flagged = acked.sensitive_grants(&[]);
            assert!(
                flagged.len() == 1 && flagged[0].contains("(acknowledged)"),
                "{host}: {flagged:?}"
            );
        }
        assert!(
            grant(Path::new("/usr/share"), "ro", false)
                .validate(512, &[])
                .is_ok()
        );
    }

    #[test]
    fn the_gateways_own_directories_are_protected() {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        let lists = plugins.join("lists");
        std::fs::create_dir_all(&lists).unwrap();
        let link = root.path().join("link-to-root");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let protected = [plugins.clone()];
        let refused =
            |host: &Path, mode| grant(host, mode, false).validate(512, &protected).is_err();
        assert!(refused(&plugins, "ro"), "the directory itself");
        assert!(refused(root.path(), "ro"), "an ancestor of it");
        assert!(!refused(&lists, "ro"), "read-only data beside the plugins");
        assert!(
            refused(&lists, "rw"),
            "writable inside: could replace plugins"
        );
        assert!(refused(&link, "ro"), "a symlink to / is /");
        let other = tempfile::tempdir().unwrap();
        assert!(!refused(other.path(), "rw"));
        assert!(
            grant(other.path(), "rw", false)
                .sensitive_grants(&protected)
                .is_empty()
        );
    }
}
