//! The plugin's own settings: the `[config]` table of its manifest, read via
//! `host.config(key)`. Strings arrive verbatim; numbers, booleans, arrays and
//! tables arrive as JSON text.

use serde::de::DeserializeOwned;
use std::fmt;
use std::str::FromStr;

/// Setting `key`, or `None` when the manifest does not set it.
pub fn config(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::__bindings::lifecycle::sluice::plugin::host::config(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::get(key);
}

/// Every key of the manifest's `[config]` table, sorted.
pub fn config_keys() -> Vec<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::__bindings::lifecycle::sluice::plugin::host::config_keys();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::keys();
}

/// `Err` naming the first `[config]` key not in `known` (a typo, or a key
/// of another plugin), listing the known ones: the first check of a
/// `validate_config`.
pub fn check_keys(known: &[&str]) -> Result<(), ConfigError> {
    match config_keys()
        .into_iter()
        .find(|k| !known.contains(&k.as_str()))
    {
        None => Ok(()),
        Some(key) => {
            let message = if known.is_empty() {
                "unknown key: this plugin takes no settings".to_string()
            } else {
                format!("unknown key (known: {})", known.join(", "))
            };
            Err(ConfigError::new(&key, message))
        }
    }
}

/// A setting that is present but malformed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The config key.
    pub key: String,
    /// What was wrong with its value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Log the error and trap. A misconfigured plugin then gets its
    /// manifest's failure mode (closed: reject; open: pass) and the operator
    /// sees why in the log, instead of the plugin guessing a default.
    pub fn trap(self) -> ! {
        crate::log::error(&self.to_string());
        panic!("{self}");
    }
}

/// Setting `key` parsed with `FromStr` (`"0.8"` -> `f64`, `"true"` -> `bool`).
pub fn config_parsed<T>(key: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match config(key) {
        None => Ok(None),
        Some(raw) => {
            // Quoted JSON strings (`"\"5\""`) are accepted too.
            let text = raw.trim().trim_matches('"');
            text.parse()
                .map(Some)
                .map_err(|e| ConfigError::new(key, format!("cannot parse {raw:?}: {e}")))
        }
    }
}

/// Setting `key` parsed, or `default` when absent. A malformed value traps
/// (see [`ConfigError::trap`]).
pub fn config_or<T>(key: &str, default: T) -> T
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match config_parsed(key) {
        Ok(v) => v.unwrap_or(default),
        Err(e) => e.trap(),
    }
}

/// Setting `key` deserialized from JSON (arrays and tables of the manifest).
pub fn config_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, ConfigError> {
    match config(key) {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| ConfigError::new(key, format!("invalid JSON: {e}"))),
    }
}

/// Setting `key` as a list of strings: a JSON array (`["a","b"]`, what the
/// host renders for a TOML array) or a comma-separated string (`"a, b"`).
pub fn config_list(key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    match config(key) {
        None => Ok(None),
        Some(raw) if raw.trim_start().starts_with('[') => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| ConfigError::new(key, format!("expected a list of strings: {e}"))),
        Some(raw) => Ok(Some(
            raw.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{set_config, take_logs};

    #[test]
    fn parsed_values_defaults_and_errors() {
        set_config(&[("share", "0.8"), ("n", "\"5\""), ("bad", "x1")]);
        assert_eq!(config_parsed::<f64>("share"), Ok(Some(0.8)));
        assert_eq!(config_parsed::<u32>("n"), Ok(Some(5)));
        assert_eq!(config_parsed::<u32>("missing"), Ok(None));
        assert_eq!(config_or("missing", 7u32), 7);
        let err = config_parsed::<u32>("bad").unwrap_err();
        assert_eq!(err.key, "bad");
        assert!(err.to_string().starts_with("config `bad`: cannot parse"));
    }

    #[test]
    fn malformed_value_traps_and_logs() {
        set_config(&[("n", "many")]);
        let r = std::panic::catch_unwind(|| config_or::<u32>("n", 1));
        assert!(r.is_err());
        let logs = take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, crate::LogLevel::Error);
    }

    #[test]
    fn lists_from_json_or_commas() {
        set_config(&[
            ("a", r#"["email", "phone"]"#),
            ("b", "email, ssn,"),
            ("c", "[1]"),
        ]);
        assert_eq!(config_list("a").unwrap().unwrap(), ["email", "phone"]);
        assert_eq!(config_list("b").unwrap().unwrap(), ["email", "ssn"]);
        assert!(config_list("c").is_err());
        assert_eq!(config_list("d"), Ok(None));
    }

    #[test]
    fn unknown_keys_are_named() {
        set_config(&[("max-chars", "5"), ("max-char", "6")]);
        assert_eq!(config_keys(), ["max-char", "max-chars"]);
        let err = check_keys(&["max-chars", "min-chars"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config `max-char`: unknown key (known: max-chars, min-chars)"
        );
        assert!(check_keys(&["max-chars", "max-char"]).is_ok());
        assert!(check_keys(&[]).unwrap_err().message.contains("no settings"));
    }

    #[test]
    fn json_tables() {
        set_config(&[("t", r#"{"cheap": 0.3}"#)]);
        let t: std::collections::BTreeMap<String, f64> = config_json("t").unwrap().unwrap();
        assert_eq!(t["cheap"], 0.3);
        set_config(&[("t", "{")]);
        assert!(config_json::<serde_json::Value>("t").is_err());
    }
}
