//! The wasmtime engine shared by every plugin, and loading plugins through
//! the compile cache with a check against the `switchyard:plugin` world.

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
        if !is_component_binary(bytes) {
            anyhow::bail!(
                "not a WebAssembly component (a core module must be turned into a component, \
                 e.g. with `switchyard plugin build`)"
            );
        }
        let hash = content_hash(bytes);
        let (component, cache) = self.inner.cache.load_or_compile(engine, bytes, &hash)?;
        check_exports(engine, &component)?;
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the plugin imports something the host does not provide")?;
        let pre = PluginPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("the plugin's `{TRANSFORM_EXPORT}` export does not match the world")
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

/// A component's binary starts with the magic number and a layer/version
/// word whose layer is 1 (core modules have layer 0).
fn is_component_binary(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// Refuse a component that does not export the transform interface, naming
/// the missing export and what the component does export.
fn check_exports(engine: &Engine, component: &Component) -> anyhow::Result<()> {
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
    anyhow::bail!(
        "the component does not implement the world `switchyard:plugin/plugin@0.1.0`: \
         missing export `{TRANSFORM_EXPORT}` ({found})"
    )
}

/// Whether `component` imports any WASI interface.
fn imports_wasi(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:"))
}
