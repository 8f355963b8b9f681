//! The guest recipe for scripts (`scripts/build-plugins`, `scripts/test`):
//!
//! - `sluice-guests install DIR`: the first-party plugins as `DIR/NAME.wasm`
//!   and `DIR/NAME.toml`, each written under a hidden name and renamed into
//!   place (manifest first), so a gateway watching `DIR` never loads half a
//!   plugin.
//! - `sluice-guests clippy [ARGS…]`: `cargo clippy` over every guest with the
//!   guest profile and target; `ARGS` follow the package list (`-- -D warnings`).
//!
//! Running this binary builds every guest first (the crate's build script).

use std::io;
use std::path::Path;
use std::process::ExitCode;

use sluice_guests::{ALL, WORKSPACE, first_party, recipe};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install") if args.len() == 2 => install(Path::new(&args[1])).map(|()| true),
        Some("clippy") => recipe::cargo(
            "clippy",
            Path::new(WORKSPACE),
            ALL.iter().map(|g| g.package),
        )
        .args(&args[1..])
        .status()
        .map(|s| s.success()),
        _ => {
            eprintln!("usage: sluice-guests install DIR | sluice-guests clippy [ARGS...]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sluice-guests: {e}");
            ExitCode::FAILURE
        }
    }
}

fn install(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for g in first_party() {
        let manifest = g.manifest.expect("first-party plugins have a manifest");
        // The watcher ignores a manifest without its `.wasm`: manifest first.
        copy_into_place(
            Path::new(manifest),
            &dir.join(format!("{}.toml", g.package)),
        )?;
        let wasm = dir.join(format!("{}.wasm", g.package));
        copy_into_place(Path::new(g.wasm), &wasm)?;
        println!(
            "{} ({} bytes)",
            wasm.display(),
            std::fs::metadata(&wasm)?.len()
        );
    }
    Ok(())
}

/// Copies `src` to a hidden name beside `dst`, then renames it over `dst`
/// (atomic on one file system).
fn copy_into_place(src: &Path, dst: &Path) -> io::Result<()> {
    let name = dst
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let tmp = dst.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::copy(src, &tmp)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::rename(&tmp, dst)
}
