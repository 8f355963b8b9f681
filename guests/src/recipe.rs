//! The one recipe for guests: which crates are guests, and the profile,
//! target and target directory they are built with. The build script builds
//! with it, the binary lints with it; nothing else in the repository may
//! spell these flags out.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every guest is a WASI 0.2 component.
pub const TARGET: &str = "wasm32-wasip2";

/// `[profile.guest]` in the workspace `Cargo.toml` (no DWARF, fat LTO).
pub const PROFILE: &str = "guest";

/// Code generation flags of every guest: wasm SIMD, so LLVM can vectorise
/// guest loops (scans over the checked text) and crates with wasm SIMD paths
/// use them. Wasmtime compiles SIMD by default (x86-64 hosts need SSE4.1).
/// Passed as the target's own `CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS`, so the
/// host build never sees them and a `RUSTFLAGS` set by hand still wins
/// (cargo's precedence).
pub const RUSTFLAGS: &str = "-C target-feature=+simd128";

/// The folder, relative to the workspace root, whose member crates are the
/// first-party plugins (each ships a manifest `NAME/NAME.toml`).
pub const FIRST_PARTY_DIR: &str = "plugins";

/// The folder whose member crates are guests made for the tests.
pub const TEST_GUEST_DIR: &str = "tests/plugins";

/// The guests' own target directory. Not the host's: the build script's
/// inner cargo would wait forever on the lock the outer cargo holds. Not
/// `CARGO_TARGET_DIR` either: work trees sharing a host target directory
/// have different guests.
pub fn target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("guests")
}

/// Where cargo leaves the component of guest package `package`.
pub fn wasm_path(workspace: &Path, package: &str) -> PathBuf {
    target_dir(workspace)
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// `cargo SUBCOMMAND --locked` over `packages` with the guest profile,
/// target and target directory, run from the workspace root.
pub fn cargo<'a>(
    subcommand: &str,
    workspace: &Path,
    packages: impl IntoIterator<Item = &'a str>,
) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace)
        .args([
            subcommand,
            "--locked",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir(workspace));
    for p in packages {
        cmd.args(["-p", p]);
    }
    let var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        TARGET.to_uppercase().replace('-', "_")
    );
    cmd.env(var, RUSTFLAGS);
    // Set by an outer cargo for the host build: its rustflags, and under
    // `cargo clippy` a wrapper that would lint the guests instead of building
    // them (and, differing between `cargo clippy` and `cargo test`, rebuild
    // every guest each time one follows the other).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
