//! A test seam for running plugin code natively (`cargo test -p <plugin>`).
//!
//! The `host` functions exist only inside the gateway, so off wasm32
//! [`crate::config`] reads a per-thread map set here and [`crate::log`]
//! records lines here. On wasm32 the host is always used and this map is
//! never consulted.

use crate::LogLevel;
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static LOGS: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
}

/// Replace this thread's config with `pairs` (values as the host renders
/// them: strings verbatim, arrays and tables as JSON).
pub fn set_config(pairs: &[(&str, &str)]) {
    CONFIG.with(|c| {
        *c.borrow_mut() = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    });
}

/// Forget this thread's config (every key absent).
pub fn clear_config() {
    CONFIG.with(|c| c.borrow_mut().clear());
}

/// Take the lines logged on this thread so far.
pub fn take_logs() -> Vec<(LogLevel, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn get(key: &str) -> Option<String> {
    CONFIG.with(|c| c.borrow().get(key).cloned())
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn push_log(level: LogLevel, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}
