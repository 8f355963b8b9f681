//! The data each plugin `Store` carries: the deny-by-default WASI context
//! built from the manifest's grants, the memory limiter, captured stdio, and
//! the implementation of the `sluice:plugin/host` interface of every
//! contract version (the `request` resource's methods are in `request`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::clocks::{MonotonicClock, WallClock};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::random::WasiRandomCtx;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::types::LogLevel;
use super::bindings::{host, types, v0_1};
use super::capability::{self, Grant, INERT_CLOCK_RESOLUTION};
use super::compat;
use super::log::escaped;
use super::manifest::{FileMode, Manifest};
use super::outbound::OutboundHttp;
use super::sandbox::MemoryLimiter;
use super::stdio::CapturedOutput;

/// Lines a plugin may log through `host.log` per call; more are dropped.
const MAX_LOG_LINES_PER_CALL: u32 = 64;
/// Longest `host.log` message kept, in bytes; longer ones are cut.
const MAX_LOG_LINE: usize = 2048;

/// What every store of one plugin shares, resolved once at load.
#[derive(Debug)]
pub(crate) struct PluginContext {
    pub name: String,
    pub manifest: Manifest,
    /// `(name, value)` of granted env vars, read from the gateway at load.
    pub env: Vec<(String, String)>,
    /// Granted TCP destinations.
    pub sockets: Vec<SocketAddr>,
    /// Bytes of stdout / stderr kept per call.
    pub stdio_cap: usize,
    /// Full-resolution clocks (a clock grant, given or implied); otherwise
    /// the inert, millisecond clocks.
    pub fine_clocks: bool,
}

impl PluginContext {
    pub fn new(name: &str, manifest: Manifest, stdio_cap: usize) -> Self {
        let env = manifest
            .capabilities
            .env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        let sockets = manifest
            .capabilities
            .sockets
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let fine_clocks = capability::granted(&manifest.capabilities).contains(&Grant::Clocks);
        PluginContext {
            name: name.to_owned(),
            fine_clocks,
            manifest,
            env,
            sockets,
            stdio_cap,
        }
    }
}

/// `T` of every plugin `Store<T>`.
pub(crate) struct HostState {
    pub ctx: Arc<PluginContext>,
    pub wasi: LazyWasi,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub outbound: OutboundHttp,
    pub limiter: MemoryLimiter,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// When the running call (or instantiation) must stop; set by
    /// `sandbox::arm` before guest code runs, read by the epoch callback.
    pub deadline: Instant,
    log_lines: u32,
}

/// The store's WASI context, built the first time the guest reaches a WASI
/// function. A typical guardrail call never does (it only uses the
/// `sluice:plugin` contract), and building the context (RNG seeding, clock
/// handles, boxed streams) was ~4 % of a whole call's instructions. When
/// built it is exactly the context [`HostState::new`] describes; a plugin
/// with preopened directories builds it eagerly so that an unopenable
/// directory still fails instantiation, not a call.
pub(crate) struct LazyWasi {
    ctx: Option<WasiCtx>,
    plugin: Arc<PluginContext>,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl LazyWasi {
    /// The context, built now if this is the first use.
    pub fn get(&mut self) -> &mut WasiCtx {
        let LazyWasi {
            ctx,
            plugin,
            stdout,
            stderr,
        } = self;
        ctx.get_or_insert_with(|| wasi_builder(plugin, stdout, stderr).build())
    }

    /// `WasiCtx::random`, for the linker's `random` grant.
    pub fn random(&mut self) -> &mut WasiRandomCtx {
        self.get().random()
    }
}

/// Everything of the deny-by-default WASI context except preopens (the only
/// fallible part): empty env (except granted names), no args, empty stdin,
/// captured stdout/stderr, only granted sockets, millisecond clocks unless
/// granted. Without grants every inert interface (`capability.rs`) gets
/// exactly its "grants nothing" shape here: no preopens, TCP / UDP / name
/// lookup off with wasmtime's deny-all address check, coarse clocks (and
/// `OutboundHttp` with no hosts refuses every request).
fn wasi_builder(
    ctx: &PluginContext,
    stdout: &CapturedOutput,
    stderr: &CapturedOutput,
) -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.stdin(MemoryInputPipe::new(Vec::new()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .envs(&ctx.env)
        .allow_tcp(!ctx.sockets.is_empty())
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if !ctx.fine_clocks {
        b.wall_clock(Coarse(WallClock::new()))
            .monotonic_clock(Coarse(MonotonicClock::new()));
    }
    if !ctx.sockets.is_empty() {
        let allowed = ctx.sockets.clone();
        b.socket_addr_check(move |addr, use_| {
            let ok = match use_ {
                SocketAddrUse::TcpConnect => allowed.contains(&addr),
                // The implicit bind before a connect uses a wildcard address.
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            Box::pin(async move { ok })
        });
    }
    b
}

/// A clock floored to [`INERT_CLOCK_RESOLUTION`] (why: `capability.rs`).
/// Flooring keeps the monotonic clock monotonic.
struct Coarse<C>(C);

const RESOLUTION_NS: u64 = INERT_CLOCK_RESOLUTION.as_nanos() as u64;

impl HostWallClock for Coarse<WallClock> {
    fn resolution(&self) -> Duration {
        self.0.resolution().max(INERT_CLOCK_RESOLUTION)
    }
    fn now(&self) -> Duration {
        let now = self.0.now();
        let ns = u64::from(now.subsec_nanos()) / RESOLUTION_NS * RESOLUTION_NS;
        Duration::new(now.as_secs(), ns as u32)
    }
}

impl HostMonotonicClock for Coarse<MonotonicClock> {
    fn resolution(&self) -> u64 {
        self.0.resolution().max(RESOLUTION_NS)
    }
    fn now(&self) -> u64 {
        self.0.now() / RESOLUTION_NS * RESOLUTION_NS
    }
}

impl HostState {
    /// A fresh, deny-by-default state: empty env (except granted names), no
    /// args, empty stdin, captured stdout/stderr, only granted preopens and
    /// sockets. Fails only if a granted directory cannot be opened.
    pub fn new(ctx: &Arc<PluginContext>) -> wasmtime::Result<Self> {
        let caps = &ctx.manifest.capabilities;
        let stdout = CapturedOutput::new(ctx.stdio_cap);
        let stderr = CapturedOutput::new(ctx.stdio_cap);
        let wasi = if caps.files.is_empty() {
            None
        } else {
            let mut b = wasi_builder(ctx, &stdout, &stderr);
            for f in &caps.files {
                let perms = match f.mode {
                    FileMode::Ro => FsPerms::ReadOnly,
                    FileMode::Rw => FsPerms::ReadWrite,
                };
                b.preopened_dir(&f.host, &f.guest, perms)
                    .map_err(|e| wasmtime::format_err!("preopen {}: {e}", f.host.display()))?;
            }
            Some(b.build())
        };
        Ok(HostState {
            wasi: LazyWasi {
                ctx: wasi,
                plugin: ctx.clone(),
                stdout: stdout.clone(),
                stderr: stderr.clone(),
            },
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(caps.http.clone()),
            limiter: MemoryLimiter::new(ctx.manifest.limits.memory_mb),
            stdout,
            stderr,
            deadline: Instant::now(),
            log_lines: 0,
            ctx: ctx.clone(),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get(),
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl types::Host for HostState {}

impl HostState {
    /// Start a call's per-call allowances afresh (`host.log` lines): an
    /// instance serving several calls (`limits.calls-per-instance`) gives
    /// each the allowance a fresh instance would.
    pub(crate) fn start_call(&mut self) {
        self.log_lines = 0;
    }

    /// `host.log` of every contract version.
    fn log_line(&mut self, level: LogLevel, message: String) {
        if self.log_lines >= MAX_LOG_LINES_PER_CALL {
            return;
        }
        self.log_lines += 1;
        let mut msg = message;
        if msg.len() > MAX_LOG_LINE {
            msg.truncate(msg.floor_char_boundary(MAX_LOG_LINE));
            msg.push('…');
        }
        let plugin = self.ctx.name.as_str();
        let msg = escaped(&msg);
        use LogLevel as L;
        match level {
            L::Trace => tracing::trace!(plugin, "{msg}"),
            L::Debug => tracing::debug!(plugin, "{msg}"),
            L::Info => tracing::info!(plugin, "{msg}"),
            L::Warn => tracing::warn!(plugin, "{msg}"),
            L::Error => tracing::error!(plugin, "{msg}"),
        }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_line(level, message);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.ctx.manifest.config_value(&key)
    }

    fn config_keys(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = self.ctx.manifest.config.keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl v0_1::types::Host for HostState {}

impl v0_1::host::Host for HostState {
    fn log(&mut self, level: v0_1::types::LogLevel, message: String) {
        self.log_line(compat::log_level(level), message);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.ctx.manifest.config_value(&key)
    }
}
