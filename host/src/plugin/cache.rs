//! Precompiled plugin artefacts on disk.
//!
//! Compiling a component with Cranelift costs tens of milliseconds for a
//! small Rust plugin and seconds for an interpreter-based one (Python, JS);
//! loading a precompiled artefact costs well under a millisecond to a few.
//! Artefacts are keyed by the SHA-256 of the component bytes plus a hash of
//! the engine's compatibility settings, so a changed plugin or an upgraded
//! switchyard never loads a stale artefact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled artefacts live.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Where a component came from, for logs and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a precompiled artefact.
    Hit,
    /// Compiled now; the artefact was written for next time.
    Compiled,
}

/// Hex SHA-256 of `bytes`: the identity of a plugin version.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// A cache in `dir` for artefacts of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> CompileCache {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // The std hasher is only stable within one build; the package
        // version keeps artefacts of different releases apart as well.
        let engine_key = format!("{}-{:016x}", env!("CARGO_PKG_VERSION"), hasher.finish());
        CompileCache { dir, engine_key }
    }

    /// The default location: `$SWITCHYARD_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/switchyard/components`, else
    /// `~/.cache/switchyard/components`, else a temp dir.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("SWITCHYARD_CACHE_DIR") {
            return PathBuf::from(dir);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("switchyard").join("components")
    }

    fn artefact_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// Load the component with content hash `hash` from the cache, or
    /// compile `bytes` and store the artefact.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self.artefact_path(hash);
        if path.is_file() {
            // SAFETY: artefacts in this directory are written only by
            // `store` below, from `Engine::precompile_component` of the same
            // engine configuration (the file name carries its compatibility
            // hash). wasmtime still checks the header and refuses artefacts
            // from another version or configuration.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    artefact = %path.display(),
                    error = %e,
                    "ignoring unusable compiled artefact; compiling again"
                ),
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling component")?;
        if let Err(e) = store(&self.dir, &path, &compiled) {
            // A read-only cache only costs time; say so and go on.
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write compile cache");
        }
        // SAFETY: `compiled` was produced just above by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(anyhow::Error::from)
            .context("loading freshly compiled component")?;
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half an artefact.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
