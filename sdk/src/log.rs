//! Logging through the gateway (`host.log`): lines land in the gateway's
//! structured log tagged with the plugin name. Off wasm32 (unit tests) they
//! are kept per thread; read them with [`crate::testing::take_logs`].

use crate::LogLevel;

/// Write `message` at `level`.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__bindings::lifecycle::sluice::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::push_log(level, message);
}

/// Log at trace level.
pub fn trace(message: &str) {
    log(LogLevel::Trace, message)
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// Log at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// Log at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}
