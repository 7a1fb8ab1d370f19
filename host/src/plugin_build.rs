//! `switchyard plugin build`: compile a plugin crate to a WebAssembly
//! component.
//!
//! A plugin is a Rust `cdylib` crate using `wit_bindgen::generate!` against
//! `wit/plugin.wit`. Building one takes three steps:
//!
//! 1. cargo compiles it for `wasm32-unknown-unknown` into a core module, with
//!    whichever toolchain [`detect_toolchain`] finds:
//!    - [`Toolchain::InstalledTarget`]: a rustc whose sysroot has the target's
//!      standard library (`rustup target add wasm32-unknown-unknown`), run as
//!      plain `cargo build --release --target wasm32-unknown-unknown`;
//!    - [`Toolchain::BuildStd`]: a rustc without it but with the standard
//!      library's sources (Debian's `rustc-web cargo-web rust-web-src`),
//!      which compiles std itself with `-Zbuild-std` (allowed on a stable
//!      compiler by `RUSTC_BOOTSTRAP=1`) and links with a `rust-lld` found in
//!      any toolchain present;
//! 2. wit-component wraps the core module into a component, using the WIT
//!    world that wit-bindgen embedded in it;
//! 3. the component is written to `<out_dir>/<package name>.wasm` by writing
//!    a temporary file in `out_dir` and renaming it over the final name, so a
//!    watcher of `out_dir` never sees a half-written plugin.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// The only target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// What to build and where to put it.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The plugin crate: a directory with a `Cargo.toml` that has a
    /// `[package]` and a `cdylib` library.
    pub crate_dir: PathBuf,
    /// Where `<plugin_name>.wasm` is written; created if missing.
    pub out_dir: PathBuf,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The cargo package name, which is also the component's file stem.
    pub plugin_name: String,
    /// `<out_dir>/<plugin_name>.wasm`.
    pub component_path: PathBuf,
    /// Size of the component file.
    pub component_bytes: usize,
    /// How it was compiled.
    pub toolchain: Toolchain,
    /// Wall time of the whole build: cargo, encoding and writing.
    pub elapsed: Duration,
}

/// A way to compile Rust for `wasm32-unknown-unknown` on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// A rustc whose sysroot holds a prebuilt standard library for the
    /// target, as `rustup target add wasm32-unknown-unknown` installs.
    InstalledTarget {
        /// The cargo to run.
        cargo: PathBuf,
        /// The rustc it is told to use (`RUSTC`).
        rustc: PathBuf,
        /// rustc's release, e.g. `1.95.0`.
        version: String,
        /// rustc's sysroot, shown so one can tell which toolchain it is.
        sysroot: PathBuf,
    },
    /// A rustc with the standard library's sources but no prebuilt one for
    /// the target: std is compiled from source with `-Zbuild-std`.
    BuildStd {
        /// The cargo to run (the one installed beside `rustc`).
        cargo: PathBuf,
        /// The rustc it is told to use (`RUSTC`).
        rustc: PathBuf,
        /// rustc's release, e.g. `1.96.0`.
        version: String,
        /// `<sysroot>/lib/rustlib/src/rust/library`.
        std_src: PathBuf,
        /// The wasm linker, a `rust-lld` that was seen to run.
        linker: PathBuf,
    },
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Toolchain::InstalledTarget {
                rustc,
                version,
                sysroot,
                ..
            } => write!(
                f,
                "{} {version} with its installed target {WASM_TARGET} (sysroot {})",
                rustc.display(),
                sysroot.display()
            ),
            Toolchain::BuildStd {
                rustc,
                version,
                std_src,
                linker,
                ..
            } => write!(
                f,
                "{} {version} with -Zbuild-std (std from source in {}, rust-lld from {})",
                rustc.display(),
                std_src.display(),
                linker.display()
            ),
        }
    }
}

/// The cargo command line a toolchain runs, kept apart from spawning it so
/// that it can be shown and tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoInvocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Set on top of the inherited environment.
    pub env: Vec<(String, String)>,
}

impl Toolchain {
    /// `cargo build --release` for the wasm target, printing JSON messages
    /// on stdout (diagnostics are still rendered for people, on stderr).
    pub fn cargo_invocation(&self) -> CargoInvocation {
        let mut args: Vec<String> = [
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--message-format=json-render-diagnostics",
        ]
        .map(String::from)
        .to_vec();
        match self {
            Toolchain::InstalledTarget { cargo, rustc, .. } => CargoInvocation {
                program: cargo.clone(),
                args,
                env: vec![("RUSTC".into(), rustc.display().to_string())],
            },
            Toolchain::BuildStd {
                cargo,
                rustc,
                linker,
                ..
            } => {
                args.push("-Zbuild-std=std,panic_abort".into());
                CargoInvocation {
                    program: cargo.clone(),
                    args,
                    env: vec![
                        ("RUSTC".into(), rustc.display().to_string()),
                        // -Z flags on a stable toolchain.
                        ("RUSTC_BOOTSTRAP".into(), "1".into()),
                        (linker_env_var(), linker.display().to_string()),
                    ],
                }
            }
        }
    }
}

/// `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER`.
fn linker_env_var() -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        WASM_TARGET.to_uppercase().replace('-', "_")
    )
}

/// Find a toolchain that can build plugins, as seen from the current
/// directory (rustup's `rust-toolchain.toml` overrides depend on it).
pub fn detect_toolchain() -> anyhow::Result<Toolchain> {
    detect_toolchain_in(Path::new("."))
}

/// [`detect_toolchain`] as seen from `dir`.
fn detect_toolchain_in(dir: &Path) -> anyhow::Result<Toolchain> {
    let probes: Vec<Probe> = candidate_rustcs()
        .into_iter()
        .map(|rustc| probe(rustc, dir))
        .collect();
    let mut linkers: Vec<PathBuf> = probes
        .iter()
        .filter_map(|p| p.info.as_ref().ok())
        .map(|info| {
            info.sysroot
                .join("lib/rustlib")
                .join(&info.host)
                .join("bin/rust-lld")
        })
        .chain(find_on_path("rust-lld"))
        .collect();
    linkers.dedup();
    let working_linker = linkers.into_iter().find(|l| lld_runs(l));
    choose_toolchain(&probes, working_linker)
}

/// The rustc commands worth asking, most preferred first: `$RUSTC`, the
/// `rustc` on `PATH` (rustup's proxy, usually) and Debian's.
fn candidate_rustcs() -> Vec<PathBuf> {
    let from_env = std::env::var_os("RUSTC")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let from_env = from_env.map(|p| {
        if p.components().count() == 1 {
            find_on_path_or(p)
        } else {
            p
        }
    });
    // Compare canonical paths (`/bin` is often `/usr/bin`) but keep the path
    // as found: a rustup proxy resolves to `rustup` itself.
    let mut seen = Vec::new();
    from_env
        .into_iter()
        .chain(find_on_path("rustc"))
        .chain(Some(PathBuf::from("/usr/bin/rustc")))
        .filter(|rustc| {
            let canonical = fs::canonicalize(rustc).unwrap_or_else(|_| rustc.clone());
            let new = !seen.contains(&canonical);
            seen.push(canonical);
            new
        })
        .collect()
}

fn find_on_path_or(name: PathBuf) -> PathBuf {
    find_on_path(&name.to_string_lossy()).unwrap_or(name)
}

/// The first `PATH` entry holding an existing file `name` (a dangling
/// symlink does not count).
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether `path` is a rust-lld that starts and speaks wasm.
fn lld_runs(path: &Path) -> bool {
    path.is_file()
        && Command::new(path)
            .args(["-flavor", "wasm", "--version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// What one rustc offers.
#[derive(Debug, Clone)]
struct Probe {
    rustc: PathBuf,
    info: Result<RustcInfo, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RustcInfo {
    version: String,
    host: String,
    sysroot: PathBuf,
    /// The cargo installed beside it, else the one on `PATH`.
    cargo: PathBuf,
    /// Where the target's std would be, and whether it is there.
    target_libdir: PathBuf,
    has_target_std: bool,
    /// `<sysroot>/lib/rustlib/src/rust/library`, if it holds std's sources.
    std_src: Option<PathBuf>,
}

fn probe(rustc: PathBuf, dir: &Path) -> Probe {
    let info = probe_info(&rustc, dir);
    Probe { rustc, info }
}

fn probe_info(rustc: &Path, dir: &Path) -> Result<RustcInfo, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(rustc)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("`{}` failed: {}", args.join(" "), stderr.trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let (version, host) = parse_rustc_vv(&run(&["-vV"])?)
        .ok_or_else(|| "`rustc -vV` printed no release or host line".to_string())?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?);
    let target_libdir = PathBuf::from(run(&["--print", "target-libdir", "--target", WASM_TARGET])?);
    let has_target_std = dir_has_std_rlib(&target_libdir);
    let std_src = Some(sysroot.join("lib/rustlib/src/rust/library"))
        .filter(|lib| lib.join("std/Cargo.toml").is_file());
    let cargo = rustc
        .parent()
        .map(|bin| bin.join("cargo"))
        .filter(|c| c.is_file())
        .or_else(|| find_on_path("cargo"))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    Ok(RustcInfo {
        version,
        host,
        sysroot,
        cargo,
        target_libdir,
        has_target_std,
        std_src,
    })
}

/// `(release, host)` from `rustc -vV`.
fn parse_rustc_vv(text: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
    };
    Some((field("release")?, field("host")?))
}

fn dir_has_std_rlib(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// Prefer a prebuilt target std (no unstable flags, nothing extra to
/// compile); else build std from source with a rustc that has its sources
/// and a working rust-lld; else explain what is missing.
fn choose_toolchain(probes: &[Probe], linker: Option<PathBuf>) -> anyhow::Result<Toolchain> {
    let usable = || {
        probes
            .iter()
            .filter_map(|p| Some((&p.rustc, p.info.as_ref().ok()?)))
    };
    if let Some((rustc, info)) = usable().find(|(_, i)| i.has_target_std) {
        return Ok(Toolchain::InstalledTarget {
            cargo: info.cargo.clone(),
            rustc: rustc.clone(),
            version: info.version.clone(),
            sysroot: info.sysroot.clone(),
        });
    }
    if let (Some((rustc, info)), Some(linker)) =
        (usable().find(|(_, i)| i.std_src.is_some()), &linker)
    {
        return Ok(Toolchain::BuildStd {
            cargo: info.cargo.clone(),
            rustc: rustc.clone(),
            version: info.version.clone(),
            std_src: info.std_src.clone().expect("filtered on std_src"),
            linker: linker.clone(),
        });
    }

    let mut msg = format!("found no Rust toolchain that can build {WASM_TARGET} plugins:\n");
    for p in probes {
        let what = match &p.info {
            Err(e) => e.clone(),
            Ok(i) => format!(
                "{}; no prebuilt {WASM_TARGET} std (nothing in {}); {}",
                i.version,
                i.target_libdir.display(),
                match &i.std_src {
                    Some(src) => format!("std sources in {}", src.display()),
                    None => "no std sources".to_string(),
                }
            ),
        };
        msg.push_str(&format!("  - {}: {what}\n", p.rustc.display()));
    }
    if linker.is_none() {
        msg.push_str("  - no working rust-lld (in any rustc's sysroot or on PATH)\n");
    }
    msg.push_str(&format!(
        "Either of these gives one:\n  \
         1. rustup: `rustup target add {WASM_TARGET}`;\n  \
         2. Debian: `apt-get install rustc-web cargo-web rust-web-src lld-22` \
         (lld-22 is what /usr/bin/rust-lld points to; a rustup toolchain's rust-lld also \
         serves); std is then compiled from source with -Zbuild-std."
    ));
    bail!(msg)
}

/// Build the plugin crate in `opts.crate_dir` into
/// `<opts.out_dir>/<package name>.wasm`.
pub fn build_plugin(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let dir = &opts.crate_dir;
    build_plugin_inner(opts).with_context(|| format!("building the plugin in {}", dir.display()))
}

fn build_plugin_inner(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let crate_dir = &opts.crate_dir;
    let manifest = crate_dir.join("Cargo.toml");
    let manifest_text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let plugin_name =
        package_name(&manifest_text).with_context(|| format!("in {}", manifest.display()))?;

    let toolchain = detect_toolchain_in(crate_dir)?;
    let module_path = run_cargo(&toolchain, crate_dir, &manifest)?;

    let module = fs::read(&module_path)
        .with_context(|| format!("reading the core module {}", module_path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .with_context(|| format!("turning {} into a component", module_path.display()))?;

    let component_path = opts.out_dir.join(format!("{plugin_name}.wasm"));
    write_atomically(&component_path, &component)?;

    Ok(BuildReport {
        plugin_name,
        component_path,
        component_bytes: component.len(),
        toolchain,
        elapsed: started.elapsed(),
    })
}

/// The `[package] name` of a manifest.
fn package_name(manifest: &str) -> anyhow::Result<String> {
    let table: toml::Table = toml::from_str(manifest).context("Cargo.toml is not valid TOML")?;
    match table.get("package").and_then(|p| p.get("name")) {
        Some(toml::Value::String(name)) => Ok(name.clone()),
        Some(_) => bail!("[package] name is not a string"),
        None if table.contains_key("workspace") => {
            bail!("this is a workspace root, not a plugin crate: point at one of its members")
        }
        None => bail!("no [package] name: not a plugin crate"),
    }
}

/// Run cargo with cargo's stderr going to ours; return the `.wasm` it built
/// for the package of `manifest`.
fn run_cargo(toolchain: &Toolchain, crate_dir: &Path, manifest: &Path) -> anyhow::Result<PathBuf> {
    let inv = toolchain.cargo_invocation();
    let mut child = Command::new(&inv.program)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(crate_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", inv.program.display()))?;

    let mut artifacts = Vec::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        if let Some(artifact) = parse_wasm_artifact(&line) {
            artifacts.push(artifact);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status}); its messages are above");
    }
    select_artifact(&artifacts, manifest)
}

/// A `.wasm` file named by a cargo `compiler-artifact` message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WasmArtifact {
    manifest_path: PathBuf,
    wasm: PathBuf,
}

/// The `.wasm` of one line of cargo's JSON messages, if it is a
/// `compiler-artifact` message naming one. Anything else, JSON or not, is
/// `None`.
fn parse_wasm_artifact(line: &str) -> Option<WasmArtifact> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let wasm = msg
        .get("filenames")?
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))?;
    Some(WasmArtifact {
        manifest_path: PathBuf::from(msg.get("manifest_path")?.as_str()?),
        wasm: PathBuf::from(wasm),
    })
}

/// The artifact built from `manifest` (compared as canonical paths); failing
/// that, the only one.
fn select_artifact(artifacts: &[WasmArtifact], manifest: &Path) -> anyhow::Result<PathBuf> {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let wanted = canonical(manifest);
    if let Some(a) = artifacts
        .iter()
        .find(|a| canonical(&a.manifest_path) == wanted)
    {
        return Ok(a.wasm.clone());
    }
    match artifacts {
        [only] => Ok(only.wasm.clone()),
        [] => bail!(
            "cargo built no .wasm file: does Cargo.toml have `crate-type = [\"cdylib\"]` under [lib]?"
        ),
        many => bail!(
            "cargo built several .wasm files and none from {}: {}",
            manifest.display(),
            many.iter().map(|a| a.wasm.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Write `bytes` to `path` so that `path` only ever holds a complete file:
/// write and sync a hidden temporary file in the same directory (so the
/// rename stays on one file system), then rename it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Hidden and not ending in `.wasm`, so a watcher looking for plugins
    // ignores it.
    let tmp = dir.join(format!(".{file_name}.{}-{nanos}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// `switchyard plugin build DIR --out OUT`: build, then say what was built
/// and with which toolchain.
pub fn build_command(crate_dir: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let report = build_plugin(&BuildOptions {
        crate_dir: crate_dir.to_owned(),
        out_dir: out_dir.to_owned(),
    })?;
    eprintln!(
        "built plugin `{}` -> {} ({} bytes in {:.1?})\n  toolchain: {}",
        report.plugin_name,
        report.component_path.display(),
        report.component_bytes,
        report.elapsed,
        report.toolchain
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line cargo 1.96 printed while building plugins/json-set.
    const ARTIFACT: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///work/main/plugins/json-set#0.1.0","manifest_path":"/work/main/plugins/json-set/Cargo.toml","target":{"kind":["cdylib"],"crate_types":["cdylib"],"name":"json_set","src_path":"/work/main/plugins/json-set/src/lib.rs","edition":"2021","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"s","debuginfo":0,"debug_assertions":false,"overflow_checks":false,"test":false},"features":[],"filenames":["/work/main/plugins/target/wasm32-unknown-unknown/release/json_set.wasm"],"executable":null,"fresh":true}"#;

    #[test]
    fn parses_the_wasm_of_a_cdylib_artifact() {
        assert_eq!(
            parse_wasm_artifact(ARTIFACT),
            Some(WasmArtifact {
                manifest_path: "/work/main/plugins/json-set/Cargo.toml".into(),
                wasm: "/work/main/plugins/target/wasm32-unknown-unknown/release/json_set.wasm"
                    .into(),
            })
        );
    }

    #[test]
    fn ignores_other_messages_and_non_json() {
        let rlib = r#"{"reason":"compiler-artifact","manifest_path":"/r/serde_json/Cargo.toml","filenames":["/t/libserde_json-1.rlib","/t/libserde_json-1.rmeta"],"fresh":true}"#;
        for line in [
            rlib,
            r#"{"reason":"build-script-executed","package_id":"x","out_dir":"/t/out.wasm"}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "   Compiling json-set v0.1.0",
            "",
        ] {
            assert_eq!(parse_wasm_artifact(line), None, "{line}");
        }
    }

    #[test]
    fn selects_the_artifact_of_the_crate_built() {
        let a = |m: &str, w: &str| WasmArtifact {
            manifest_path: m.into(),
            wasm: w.into(),
        };
        let artifacts = [
            a("/p/dep/Cargo.toml", "/t/dep.wasm"),
            a("/p/mine/Cargo.toml", "/t/mine.wasm"),
        ];
        assert_eq!(
            select_artifact(&artifacts, Path::new("/p/mine/Cargo.toml")).unwrap(),
            Path::new("/t/mine.wasm")
        );
        assert!(select_artifact(&artifacts, Path::new("/p/other/Cargo.toml")).is_err());
        assert_eq!(
            select_artifact(&artifacts[..1], Path::new("/p/x/Cargo.toml")).unwrap(),
            Path::new("/t/dep.wasm")
        );
        let err = select_artifact(&[], Path::new("/p/x/Cargo.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cdylib"), "{err}");
    }

    #[test]
    fn reads_the_package_name() {
        assert_eq!(
            package_name("[package]\nname = \"json-set\"\nversion.workspace = true\n").unwrap(),
            "json-set"
        );
        let err = package_name("[workspace]\nmembers = [\"a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("workspace root"), "{err}");
        assert!(package_name("[lib]\n").is_err());
        assert!(package_name("[package\n").is_err());
    }

    #[test]
    fn parses_rustc_vv() {
        let vv = "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)\nbinary: rustc\n\
                  commit-hash: ac68faa20\nhost: x86_64-unknown-linux-gnu\nrelease: 1.96.0\nLLVM version: 22.1.2\n";
        assert_eq!(
            parse_rustc_vv(vv),
            Some(("1.96.0".into(), "x86_64-unknown-linux-gnu".into()))
        );
        assert_eq!(parse_rustc_vv("rustc 1.96.0\n"), None);
    }

    fn installed() -> Toolchain {
        Toolchain::InstalledTarget {
            cargo: "/home/u/.cargo/bin/cargo".into(),
            rustc: "/home/u/.cargo/bin/rustc".into(),
            version: "1.95.0".into(),
            sysroot: "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu".into(),
        }
    }

    fn build_std() -> Toolchain {
        Toolchain::BuildStd {
            cargo: "/usr/bin/cargo".into(),
            rustc: "/usr/bin/rustc".into(),
            version: "1.96.0".into(),
            std_src: "/usr/lib/rustlib/src/rust/library".into(),
            linker: "/opt/lld/rust-lld".into(),
        }
    }

    #[test]
    fn describes_toolchains_on_one_line() {
        assert_eq!(
            installed().to_string(),
            "/home/u/.cargo/bin/rustc 1.95.0 with its installed target wasm32-unknown-unknown \
             (sysroot /home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu)"
        );
        assert_eq!(
            build_std().to_string(),
            "/usr/bin/rustc 1.96.0 with -Zbuild-std (std from source in \
             /usr/lib/rustlib/src/rust/library, rust-lld from /opt/lld/rust-lld)"
        );
    }

    #[test]
    fn invocations_differ_only_where_they_must() {
        let plain = installed().cargo_invocation();
        assert_eq!(plain.program, Path::new("/home/u/.cargo/bin/cargo"));
        assert_eq!(
            plain.args,
            [
                "build",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "--message-format=json-render-diagnostics"
            ]
        );
        assert_eq!(
            plain.env,
            [("RUSTC".to_string(), "/home/u/.cargo/bin/rustc".to_string())]
        );

        let std = build_std().cargo_invocation();
        assert_eq!(std.program, Path::new("/usr/bin/cargo"));
        assert_eq!(std.args[..5], plain.args[..]);
        assert_eq!(std.args[5], "-Zbuild-std=std,panic_abort");
        let env = |k: &str| {
            std.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(env("RUSTC"), Some("/usr/bin/rustc"));
        assert_eq!(env("RUSTC_BOOTSTRAP"), Some("1"));
        assert_eq!(
            env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER"),
            Some("/opt/lld/rust-lld")
        );
    }

    fn probe_of(rustc: &str, has_target_std: bool, std_src: Option<&str>) -> Probe {
        Probe {
            rustc: rustc.into(),
            info: Ok(RustcInfo {
                version: "1.96.0".into(),
                host: "x86_64-unknown-linux-gnu".into(),
                sysroot: "/sys".into(),
                cargo: "/usr/bin/cargo".into(),
                target_libdir: "/sys/lib/rustlib/wasm32-unknown-unknown/lib".into(),
                has_target_std,
                std_src: std_src.map(PathBuf::from),
            }),
        }
    }

    #[test]
    fn prefers_an_installed_target_over_building_std() {
        let probes = [
            probe_of("/a/rustc", false, Some("/src")),
            probe_of("/b/rustc", true, None),
        ];
        let chosen = choose_toolchain(&probes, Some("/lld".into())).unwrap();
        assert!(
            matches!(chosen, Toolchain::InstalledTarget { ref rustc, .. } if rustc == Path::new("/b/rustc"))
        );
        let chosen = choose_toolchain(&probes[..1], Some("/lld".into())).unwrap();
        assert!(
            matches!(chosen, Toolchain::BuildStd { ref linker, .. } if linker == Path::new("/lld"))
        );
    }

    #[test]
    fn explains_both_ways_when_there_is_no_toolchain() {
        let probes = [
            probe_of("/a/rustc", false, None),
            probe_of(
                "/usr/bin/rustc",
                false,
                Some("/usr/lib/rustlib/src/rust/library"),
            ),
            Probe {
                rustc: "/c/rustc".into(),
                info: Err("cannot run it: not found".into()),
            },
        ];
        let err = choose_toolchain(&probes, None).unwrap_err().to_string();
        for needle in [
            "/a/rustc: 1.96.0; no prebuilt wasm32-unknown-unknown std",
            "/usr/bin/rustc: 1.96.0; no prebuilt",
            "std sources in /usr/lib/rustlib/src/rust/library",
            "/c/rustc: cannot run it: not found",
            "no working rust-lld",
            "rustup target add wasm32-unknown-unknown",
            "apt-get install rustc-web cargo-web rust-web-src lld-22",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let dir =
            std::env::temp_dir().join(format!("switchyard-plugin-build-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("out/p.wasm");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.wasm"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
