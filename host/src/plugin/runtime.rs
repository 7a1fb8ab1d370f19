//! The wasmtime engine shared by every plugin, and loading plugins through
//! the compile cache with a check against the `switchyard:plugin` world.
//!
//! Whatever arrives as a plugin (a file in the plugins directory, an
//! upload) is told apart before anything is compiled: bytes that are not
//! WebAssembly at all, a core module that was never made a component, a
//! component of an encoding this host does not read, one that does not
//! validate, and a component that does not fit the world each get their
//! own [`LoadError`], saying what to do about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{Plugin, PluginPre};
use super::cache::{content_hash, CacheOutcome, CompileCache};
use super::pool::HostState;
use super::TRANSFORM_EXPORT;
use crate::subjects::keys::KeyStore;

/// How often the engine's epoch advances. Call deadlines are counted in
/// these ticks, so a deadline overshoots by at most one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, the linker with the host's imports, and the compile cache.
/// Cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<RuntimeInner>,
    /// What the `subjects` import uses; `None`: subject encryption is not
    /// configured, and the import says so.
    subjects: Option<Arc<KeyStore>>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: CompileCache,
}

/// A plugin component, compiled and checked against the world, ready to be
/// instantiated any number of times.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// Plugin name (the file stem).
    pub name: String,
    /// Hex SHA-256 of the component file: the plugin's version identity.
    pub hash: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Whether the compile cache had it.
    pub cache: CacheOutcome,
    /// Whether the component imports WASI (any `wasi:` interface), as
    /// components from other languages do. WASI calls drive futures with
    /// `block_on` on the current Tokio runtime, so such a plugin must be
    /// called from a blocking thread, never on one of the runtime's
    /// workers.
    pub imports_wasi: bool,
    pub(crate) pre: PluginPre<HostState>,
}

/// Why bytes could not be loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "not a WebAssembly component: the file is not WebAssembly at all (it starts with \
         {start}, not the `\\0asm` magic number); a plugin is the `.wasm` file that \
         `switchyard plugin build` (Rust) or componentize-py (Python) writes"
    )]
    NotWebAssembly { start: String },
    #[error(
        "not a WebAssembly component: it is a core WebAssembly module; make it a component of \
         the `switchyard:plugin/plugin@0.1.0` world with `switchyard plugin build` (a Rust \
         crate) or `wasm-tools component new` (a module with the world's metadata embedded)"
    )]
    CoreModule,
    #[error(
        "not a WebAssembly component this host reads: binary version {version:#x}, layer \
         {layer} (components are version 0xd, layer 1); rebuild it with current tools"
    )]
    UnknownEncoding { version: u16, layer: u16 },
    #[error(
        "the WebAssembly component does not validate (truncated or corrupt, or built for \
         WebAssembly features this host does not enable): {message}"
    )]
    Invalid { message: String },
    #[error(
        "the component does not implement the world `switchyard:plugin/plugin@0.1.0`: missing \
         export `{TRANSFORM_EXPORT}` ({found}); build it against wit/plugin.wit (`switchyard \
         plugin new` starts a crate that does)"
    )]
    MissingExport { found: String },
    #[error(
        "the plugin imports something the host does not provide: {message}; a plugin may \
         import the world's interfaces (log, clock, state, subjects) and WASI preview 2"
    )]
    UnknownImport { message: String },
    #[error(
        "the plugin's `{TRANSFORM_EXPORT}` export does not match the world: {message}; build \
         it against this host's wit/plugin.wit"
    )]
    ExportMismatch { message: String },
}

impl LoadedPlugin {
    /// `name@<first 12 hex digits of the hash>`, as stamped on output
    /// records and shown in logs.
    pub fn version_tag(&self) -> String {
        format!("{}@{}", self.name, &self.hash[..12])
    }
}

impl PluginRuntime {
    /// A runtime caching compiled artefacts in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> anyhow::Result<PluginRuntime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Deadlines on plugin calls: cheap checks at loop headers and
        // function entries, driven by the ticker thread below.
        config.epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("switchyard-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch ticker")?;

        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)
            .context("linking host imports")?;
        // WASI preview 2 for components that import it; each store gets an
        // empty `WasiCtx` (see `super::wasi`), so this grants no filesystem,
        // network, environment or stdio, and its waits end at the call's
        // deadline. Components that import no WASI (Rust plugins) are
        // unaffected.
        super::wasi::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;

        let cache = CompileCache::new(cache_dir, &engine);
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
            }),
            subjects: None,
        })
    }

    /// This runtime with plugins' `subjects` import backed by `keys`.
    pub fn with_subjects(mut self, keys: Arc<KeyStore>) -> PluginRuntime {
        self.subjects = Some(keys);
        self
    }

    pub fn subjects(&self) -> Option<&Arc<KeyStore>> {
        self.subjects.as_ref()
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Load the component at `path`: from the compile cache when possible,
    /// then checked against the world so that a plugin with a missing
    /// export or an unknown import is refused here, not on first use.
    pub fn load(&self, path: &Path) -> anyhow::Result<LoadedPlugin> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("plugin path {} has no usable file name", path.display()))?
            .to_owned();
        let bytes =
            std::fs::read(path).with_context(|| format!("reading plugin {}", path.display()))?;
        self.load_bytes(&name, path, &bytes)
            .with_context(|| format!("loading plugin `{name}` from {}", path.display()))
    }

    /// Load a component from bytes; `path` is only recorded.
    pub fn load_bytes(
        &self,
        name: &str,
        path: &Path,
        bytes: &[u8],
    ) -> anyhow::Result<LoadedPlugin> {
        let engine = &self.inner.engine;
        check_component_header(bytes)?;
        let hash = content_hash(bytes);
        let (component, cache) = self
            .inner
            .cache
            .load_or_compile(engine, bytes, &hash)
            .map_err(|e| LoadError::Invalid {
                message: format!("{:#}", e.root_cause()),
            })?;
        check_exports(engine, &component)?;
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::UnknownImport {
                message: format!("{:#}", anyhow::Error::from(e)),
            }
        })?;
        let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::ExportMismatch {
            message: format!("{:#}", anyhow::Error::from(e)),
        })?;
        Ok(LoadedPlugin {
            name: name.to_owned(),
            hash,
            path: path.to_owned(),
            cache,
            imports_wasi: imports_wasi(engine, &component),
            pre,
        })
    }
}

/// The preamble of a WebAssembly binary: the magic number, then a version
/// and a layer (little-endian u16 each): version 1, layer 0 for a core
/// module; version 0xd, layer 1 for a component.
fn check_component_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || bytes[..4] != *b"\0asm" {
        let start: String = bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        let start = if start.is_empty() {
            "nothing: it is empty".to_owned()
        } else {
            format!("bytes {start}")
        };
        return Err(LoadError::NotWebAssembly { start });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match (version, layer) {
        (_, 0) => Err(LoadError::CoreModule),
        (0xd, 1) => Ok(()),
        (version, layer) => Err(LoadError::UnknownEncoding { version, layer }),
    }
}

/// Refuse a component that does not export the transform interface, naming
/// the missing export and what the component does export.
fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.iter().any(|e| e == TRANSFORM_EXPORT) {
        return Ok(());
    }
    let found = if exports.is_empty() {
        "it exports nothing".to_owned()
    } else {
        format!("it exports: {}", exports.join(", "))
    };
    Err(LoadError::MissingExport { found })
}

/// Whether `component` imports any WASI interface.
fn imports_wasi(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:"))
}
