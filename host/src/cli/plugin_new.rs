//! `sluice plugin new NAME --kind KIND --lang LANG`: a plugin project that
//! builds and loads without edits: the manifest, a case file, the source,
//! the contract (`wit/`, this binary's own copy) and a one-command `build`
//! script that installs its language's toolchain on first use.
//!
//! The templates live in `templates/`; the example guardrails in
//! `examples/guardrails/` are built by the same `build` scripts.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::plugin::PluginKind;

/// A language `plugin new` has a template for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen (cargo, wasm32-wasip2).
    Rust,
    /// Python with componentize-py (PyPI).
    Python,
    /// JavaScript with jco (npm): StarlingMonkey by default (`plugin.js`);
    /// `JCO_BACKEND=quickjs` builds `plugin.quickjs.js` on the frozen
    /// contract 0.1.0 (templates/js/build says why).
    Js,
    /// C with wit-bindgen c, Debian clang and wasi-libc.
    C,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];

    fn key(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    /// `[limits]` of a new manifest. Interpreted guests carry an engine:
    /// more memory, and a deadline that covers a cold instantiation on a
    /// busy machine (a call takes 0.2-2 ms, docs/plugins.md).
    fn limits(self) -> &'static str {
        match self {
            Lang::Rust | Lang::C => {
                "deadline-ms = 50          # wall-clock per call, instantiation included\nmemory-mb = 16"
            }
            Lang::Python => {
                "deadline-ms = 500         # wall-clock per call, instantiation included\nmemory-mb = 64            # CPython's heap lives in the guest (a small plugin needs 16)"
            }
            Lang::Js => {
                "deadline-ms = 500         # wall-clock per call, instantiation included\nmemory-mb = 64            # the engine's heap lives in the guest (QuickJS: 2, StarlingMonkey: 16)"
            }
        }
    }

    /// `(path in the project, template)` of the source files.
    fn sources(self, kind: PluginKind) -> Vec<(&'static str, &'static str)> {
        use PluginKind as K;
        match (self, kind) {
            (Lang::Rust, k) => vec![
                ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
                (
                    "src/lib.rs",
                    match k {
                        K::Guardrail => include_str!("templates/rust/guardrail.rs"),
                        K::Router => include_str!("templates/rust/router.rs"),
                        K::CostPolicy => include_str!("templates/rust/cost-policy.rs"),
                    },
                ),
            ],
            (Lang::Python, k) => vec![(
                "app.py",
                match k {
                    K::Guardrail => include_str!("templates/python/guardrail.py"),
                    K::Router => include_str!("templates/python/router.py"),
                    K::CostPolicy => include_str!("templates/python/cost-policy.py"),
                },
            )],
            (Lang::Js, k) => vec![
                (
                    "plugin.js",
                    match k {
                        K::Guardrail => include_str!("templates/js/guardrail.js"),
                        K::Router => include_str!("templates/js/router.js"),
                        K::CostPolicy => include_str!("templates/js/cost-policy.js"),
                    },
                ),
                (
                    "plugin.quickjs.js",
                    match k {
                        K::Guardrail => include_str!("templates/js/guardrail.quickjs.js"),
                        K::Router => include_str!("templates/js/router.quickjs.js"),
                        K::CostPolicy => include_str!("templates/js/cost-policy.quickjs.js"),
                    },
                ),
            ],
            (Lang::C, k) => vec![(
                "plugin.c",
                match k {
                    K::Guardrail => include_str!("templates/c/guardrail.c"),
                    K::Router => include_str!("templates/c/router.c"),
                    K::CostPolicy => include_str!("templates/c/cost-policy.c"),
                },
            )],
        }
    }

    fn build_script(self) -> &'static str {
        match self {
            Lang::Rust => include_str!("templates/rust/build"),
            Lang::Python => include_str!("templates/python/build"),
            Lang::Js => include_str!("templates/js/build"),
            Lang::C => include_str!("templates/c/build"),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The contract, as this binary speaks it.
const WIT: &[(&str, &str)] = &[
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("lifecycle.wit", include_str!("../../../wit/lifecycle.wit")),
    ("guardrail.wit", include_str!("../../../wit/guardrail.wit")),
    ("router.wit", include_str!("../../../wit/router.wit")),
    (
        "cost-policy.wit",
        include_str!("../../../wit/cost-policy.wit"),
    ),
];

/// The frozen contract `0.1.0`, for the QuickJS builds of JavaScript
/// projects (`wit/frozen/0.1.0/`; templates/js/build says why).
const WIT_0_1: &[(&str, &str)] = &[
    (
        "worlds.wit",
        include_str!("../../../wit/frozen/0.1.0/worlds.wit"),
    ),
    (
        "types.wit",
        include_str!("../../../wit/frozen/0.1.0/types.wit"),
    ),
    (
        "host.wit",
        include_str!("../../../wit/frozen/0.1.0/host.wit"),
    ),
    (
        "guardrail.wit",
        include_str!("../../../wit/frozen/0.1.0/guardrail.wit"),
    ),
    (
        "router.wit",
        include_str!("../../../wit/frozen/0.1.0/router.wit"),
    ),
    (
        "cost-policy.wit",
        include_str!("../../../wit/frozen/0.1.0/cost-policy.wit"),
    ),
];

/// What to create.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name: `NAME.wasm` / `NAME.toml` (letters, digits, `-`, `_`).
    pub name: String,
    pub kind: PluginKind,
    pub lang: Lang,
    /// The project directory (created; must not exist or be empty).
    pub dir: PathBuf,
}

/// Write the project; returns the files written, relative to `dir`.
pub fn create(p: &NewPlugin) -> anyhow::Result<Vec<PathBuf>> {
    let valid = !p.name.is_empty()
        && p.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && p.name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !valid {
        bail!(
            "`{}` is not a plugin name: use a letter, then letters, digits, `-` or `_`",
            p.name
        );
    }
    if p.dir.exists() && std::fs::read_dir(&p.dir)?.next().is_some() {
        bail!("{} exists and is not empty", p.dir.display());
    }
    let fill = |t: &str| {
        t.replace("{{name}}", &p.name)
            .replace("{{limits}}", p.lang.limits())
    };
    let (manifest, cases) = match p.kind {
        PluginKind::Guardrail => (
            include_str!("templates/common/guardrail.toml"),
            include_str!("templates/common/guardrail.yaml"),
        ),
        PluginKind::Router => (
            include_str!("templates/common/router.toml"),
            include_str!("templates/common/router.yaml"),
        ),
        PluginKind::CostPolicy => (
            include_str!("templates/common/cost-policy.toml"),
            include_str!("templates/common/cost-policy.yaml"),
        ),
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (format!("{}.toml", p.name).into(), fill(manifest)),
        ("cases.yaml".into(), fill(cases)),
        ("build".into(), p.lang.build_script().to_owned()),
        ("README.md".into(), readme(p)),
        (".gitignore".into(), "/target\n/dist\n__pycache__/\n".into()),
    ];
    files.extend(
        p.lang
            .sources(p.kind)
            .into_iter()
            .map(|(path, t)| (PathBuf::from(path), fill(t))),
    );
    files.extend(
        WIT.iter()
            .map(|(f, text)| (Path::new("wit").join(f), (*text).to_owned())),
    );
    if p.lang == Lang::Js {
        files.extend(
            WIT_0_1
                .iter()
                .map(|(f, text)| (Path::new("wit/frozen/0.1.0").join(f), (*text).to_owned())),
        );
    }
    for (rel, text) in &files {
        let path = p.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    make_executable(&p.dir.join("build"))?;
    Ok(files.into_iter().map(|(rel, _)| rel).collect())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn readme(p: &NewPlugin) -> String {
    let name = &p.name;
    let toolchain = match p.lang {
        Lang::Rust => "rustup and cargo (it adds the wasm32-wasip2 target)",
        Lang::Python => "python3 (it installs componentize-py from PyPI into target/toolchains)",
        Lang::Js => {
            "node and npm (it installs jco into target/toolchains); `JCO_BACKEND=quickjs ./build` builds plugin.quickjs.js with QuickJS instead (smaller and faster than SpiderMonkey) on the frozen contract 0.1.0 in wit/frozen/ (see build for why)"
        }
        Lang::C => {
            "apt-get (clang, wasi-libc; needs root), cargo (wit-bindgen-cli into target/toolchains) and rustc's wasm-component-ld"
        }
    };
    format!(
        "# {name}\n\n\
         A Sluice {kind} plugin in {lang}, made by `sluice plugin new`.\n\n\
         ```sh\n\
         ./build                                              # -> dist/{name}.wasm + dist/{name}.toml\n\
         sluice plugin test dist/{name}.wasm --cases cases.yaml\n\
         sluice plugin audit dist/{name}.wasm --manifest {name}.toml\n\
         cp dist/{name}.wasm dist/{name}.toml /path/to/the/gateway/plugins/   # hot-reloaded\n\
         ```\n\n\
         `build` needs {toolchain}; the first run installs, later runs reuse.\n\
         `{name}.toml` is the manifest (limits, grants, `[config]`), `wit/` the\n\
         contract this gateway speaks (`sluice:plugin@{version}`), `cases.yaml`\n\
         the expected verdicts. The plugin author's guide is docs/plugins.md in\n\
         the Sluice repository.\n",
        kind = p.kind,
        lang = p.lang,
        version = crate::plugin::PACKAGE_VERSION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_complete_project_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        for lang in Lang::ALL {
            for kind in [
                PluginKind::Guardrail,
                PluginKind::Router,
                PluginKind::CostPolicy,
            ] {
                let dir = tmp.path().join(format!("{lang}-{kind}"));
                let p = NewPlugin {
                    name: "my-plugin".into(),
                    kind,
                    lang,
                    dir: dir.clone(),
                };
                let files = create(&p).unwrap();
                assert!(files.contains(&PathBuf::from("my-plugin.toml")));
                // Every file of the contract, so the project's `wit/` resolves.
                for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit")).unwrap()
                {
                    let f = f.unwrap();
                    if f.file_type().unwrap().is_file() {
                        assert!(
                            files.contains(&Path::new("wit").join(f.file_name())),
                            "{:?}",
                            f.file_name()
                        );
                    }
                }
                // QuickJS builds of JavaScript need the frozen 0.1.0 too.
                if lang == Lang::Js {
                    for f in std::fs::read_dir(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../wit/frozen/0.1.0"
                    ))
                    .unwrap()
                    {
                        let f = f.unwrap().file_name();
                        assert!(
                            files.contains(&Path::new("wit/frozen/0.1.0").join(&f)),
                            "{f:?}"
                        );
                    }
                }
                let manifest = std::fs::read_to_string(dir.join("my-plugin.toml")).unwrap();
                let m = crate::plugin::Manifest::parse(&manifest, &dir).unwrap();
                assert_eq!(m.kind, kind);
                m.validate(512, &[]).unwrap();
                for (rel, _) in lang.sources(kind) {
                    let text = std::fs::read_to_string(dir.join(rel)).unwrap();
                    assert!(!text.contains("{{"), "{lang} {kind} {rel}: {text}");
                }
                let cases = super::super::cases::load(&dir.join("cases.yaml")).unwrap();
                assert!(cases.iter().all(|c| c.call_kind().unwrap().kind() == kind));
                assert!(create(&p).unwrap_err().to_string().contains("not empty"));
            }
        }
        let bad = NewPlugin {
            name: "../evil".into(),
            kind: PluginKind::Guardrail,
            lang: Lang::C,
            dir: tmp.path().join("evil"),
        };
        assert!(create(&bad).is_err());
    }
}
