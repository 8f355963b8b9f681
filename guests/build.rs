//! Builds every guest crate of the workspace (the member crates in
//! `recipe::FIRST_PARTY_DIR` and `recipe::TEST_GUEST_DIR`, found with
//! `cargo metadata`) in one cargo run,
//! and writes `guests.rs` into `OUT_DIR`: one `Guest` constant per crate
//! plus `ALL`. Reruns when guest sources, the SDK, the WIT contract, the
//! workspace manifest or a built component change.

#[path = "src/recipe.rs"]
mod recipe;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A guest crate found in the workspace.
struct Found {
    package: String,
    /// `plugins/NAME/NAME.toml` of a first-party plugin.
    manifest: Option<PathBuf>,
}

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let meta = cargo_metadata::MetadataCommand::new()
        .manifest_path(here.join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata");
    let root = meta.workspace_root.as_std_path().to_path_buf();

    let mut guests = Vec::new();
    for pkg in meta.workspace_packages() {
        let dir = pkg.manifest_path.parent().expect("a manifest has a folder");
        let Some(parent) = dir.parent().map(|p| p.as_std_path()) else {
            continue;
        };
        let first_party = parent == root.join(recipe::FIRST_PARTY_DIR);
        if !first_party && parent != root.join(recipe::TEST_GUEST_DIR) {
            continue;
        }
        let manifest = first_party.then(|| {
            let m = dir.as_std_path().join(format!("{}.toml", pkg.name));
            assert!(
                m.is_file(),
                "first-party plugin `{}` has no manifest {}",
                pkg.name,
                m.display()
            );
            m
        });
        guests.push(Found {
            package: pkg.name.to_string(),
            manifest,
        });
    }
    assert!(!guests.is_empty(), "no guest crates in the workspace");
    guests.sort_by(|a, b| a.package.cmp(&b.package));

    for watched in [
        recipe::FIRST_PARTY_DIR,
        recipe::TEST_GUEST_DIR,
        "sdk",
        // Shared by the pii-redact and secrets plugins.
        "redact",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo::rerun-if-env-changed=RUSTFLAGS");
    // Set per checkout by `.cargo/config.toml`: see there.
    println!("cargo::rerun-if-env-changed=SLUICE_GUESTS_WORKSPACE");

    let status = recipe::cargo("build", &root, guests.iter().map(|g| g.package.as_str()))
        .status()
        .expect("running cargo");
    assert!(
        status.success(),
        "building the guests failed (output above; is the target installed? \
         `rustup target add {}`)",
        recipe::TARGET
    );

    std::fs::write(
        Path::new(&std::env::var_os("OUT_DIR").expect("run by cargo")).join("guests.rs"),
        generate(&root, &guests),
    )
    .expect("writing guests.rs");
}

fn generate(root: &Path, guests: &[Found]) -> String {
    let mut code = format!(
        "/// The workspace the guests were built in.\npub const WORKSPACE: &str = {:?};\n",
        path_str(root)
    );
    let mut names = Vec::new();
    for g in guests {
        let wasm = recipe::wasm_path(root, &g.package);
        assert!(wasm.is_file(), "cargo built no {}", wasm.display());
        // A deleted or overwritten component rebuilds on the next cargo run.
        println!("cargo::rerun-if-changed={}", wasm.display());
        let name = g.package.to_uppercase().replace('-', "_");
        let (doc, manifest) = match &g.manifest {
            Some(m) => ("first-party plugin", format!("Some({:?})", path_str(m))),
            None => ("test guest", "None".to_string()),
        };
        writeln!(
            code,
            "/// `{pkg}`, {doc}.\npub const {name}: Guest = Guest {{ package: {pkg:?}, wasm: {wasm:?}, manifest: {manifest} }};",
            pkg = g.package,
            wasm = path_str(&wasm),
        )
        .unwrap();
        names.push(name);
    }
    writeln!(
        code,
        "/// Every guest, sorted by package name.\npub const ALL: &[Guest] = &[{}];",
        names.join(", ")
    )
    .unwrap();
    code
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("the workspace path is UTF-8")
}
