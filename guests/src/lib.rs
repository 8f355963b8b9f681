//! The workspace's guest components, built from source by this crate's
//! build script with the one recipe in [`recipe`]: a constant per guest
//! crate (`PII_REDACT`, `TEST_TAGGER`, `HOSTILE_LOOP`, …) and [`ALL`].
//!
//! ```
//! let tagger = sluice_guests::TEST_TAGGER;
//! assert_eq!(tagger.package, "test-tagger");
//! assert!(std::path::Path::new(tagger.wasm).is_file());
//! ```

pub mod recipe;

/// A guest crate and its built component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// The cargo package name; tests load the guest under this name.
    pub package: &'static str,
    /// Absolute path of the built component.
    pub wasm: &'static str,
    /// A first-party plugin's committed manifest (`plugins/NAME/NAME.toml`);
    /// `None` for test guests, which tests give a manifest of their own.
    pub manifest: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The first-party plugins (`plugins/*`): the guests with a manifest.
pub fn first_party() -> impl Iterator<Item = &'static Guest> {
    ALL.iter().filter(|g| g.manifest.is_some())
}

/// The guest whose cargo package is `package`.
pub fn by_package(package: &str) -> Option<&'static Guest> {
    ALL.iter().find(|g| g.package == package)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component's preamble: magic, version 0x0d, layer 1.
    const COMPONENT: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    #[test]
    fn every_guest_is_a_built_component() {
        for g in ALL {
            let bytes = std::fs::read(g.wasm).unwrap_or_else(|e| panic!("{}: {e}", g.wasm));
            assert_eq!(bytes[..8], COMPONENT, "{} is not a component", g.package);
        }
    }

    #[test]
    fn first_party_plugins_and_test_guests_are_told_apart() {
        let mut first: Vec<_> = first_party().map(|g| g.package).collect();
        first.sort_unstable();
        let dirs: Vec<_> = std::fs::read_dir(std::path::Path::new(WORKSPACE).join("plugins"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(first.len(), dirs.len(), "{first:?} vs {dirs:?}");
        assert_eq!(by_package("pii-redact"), Some(&PII_REDACT));
        assert!(TEST_TAGGER.manifest.is_none() && HOSTILE_LOOP.manifest.is_none());
        for g in first_party() {
            let m = g.manifest.unwrap();
            assert!(
                m.ends_with(&format!("plugins/{0}/{0}.toml", g.package)),
                "{m}"
            );
        }
    }
}
