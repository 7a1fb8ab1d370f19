//! Shadow mode, seen from the control plane: attach a candidate version of
//! a plugin to one step of a live route, read the comparison, then promote
//! the candidate (it becomes the plugin's serving version, everywhere the
//! plugin runs) or discard it.
//!
//! Candidates are components in `plugins_dir/candidates/`, a directory the
//! hot-reload watcher does not look into, so a candidate never serves by
//! accident. `PUT /admin/candidates/NAME` puts one there. A route that is
//! restarted (its settings changed) comes back without its shadow.

use std::sync::Arc;

use super::{ControlPlane, Refusal, ReloadOutcome};
use crate::plugin::cache::content_hash;
use crate::route::shadow::{Shadow, ShadowReport};
use crate::route::RouteRuntime;

/// Why a shadow request was not carried out. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("no route named `{0}`")]
    NoRoute(String),
    #[error("route `{0}` has no shadow attached")]
    NoShadow(String),
    /// The request names no usable step or candidate.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NoCandidate(String),
    /// The candidate cannot run: not a component, or it refuses the step's
    /// configuration.
    #[error("{0}")]
    CannotRun(String),
    /// The candidate file changed since it was attached.
    #[error("{0}")]
    Changed(String),
}

impl ControlPlane {
    /// Where candidates live.
    pub fn candidates_dir(&self) -> std::path::PathBuf {
        self.plugins_dir().join("candidates")
    }

    /// Check an uploaded candidate before it is stored: it must compile
    /// and link as a plugin of this host, and every step of a route
    /// running the plugin of the same name must be able to instantiate it
    /// and `init` it with that step's configuration. `Err` says why not.
    pub async fn check_candidate(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        let runtime = self.inner.deps.runtime.clone();
        let path = self.candidates_dir().join(format!("{name}.wasm"));
        let routes = self.live_runtimes();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            for rt in routes {
                let chain = rt.chain();
                for index in 0..chain.step_count() {
                    let pool = chain.step_pool(index).expect("index in range");
                    if pool.plugin().name != name {
                        continue;
                    }
                    let plugin = runtime
                        .load_bytes(&name, &path, &bytes)
                        .map_err(|e| format!("{e:#}"))?;
                    pool.shadow_of(plugin).map_err(|e| {
                        format!(
                            "route `{}`, chain step {}: it cannot run with the step's \
                             configuration: {e}",
                            rt.route.name,
                            index + 1
                        )
                    })?;
                }
            }
            runtime
                .load_bytes(&name, &path, &bytes)
                .map(drop)
                .map_err(|e| format!("{e:#}"))
        })
        .await
        .expect("checking a candidate panicked")
    }

    /// Attach `candidate` (a file in the candidates directory, without
    /// `.wasm`) to step `step` (from 1; may be left out for a one-step
    /// chain) of route `route`, replacing any shadow it has.
    pub async fn attach_shadow(
        &self,
        route: &str,
        step: Option<usize>,
        candidate: &str,
    ) -> Result<ShadowReport, ShadowError> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let rt = self.runtime_of(route)?;
        let chain = rt.chain();
        let steps = chain.step_count();
        let index = match step {
            Some(n) if n >= 1 && n <= steps => n - 1,
            Some(n) => {
                return Err(ShadowError::BadRequest(format!(
                    "route `{route}` has {steps} chain step(s); step {n} does not exist"
                )))
            }
            None if steps == 1 => 0,
            None => {
                return Err(ShadowError::BadRequest(format!(
                    "route `{route}` has {steps} chain steps: say which one with \"step\" (from 1)"
                )))
            }
        };
        let path = self.candidates_dir().join(format!("{candidate}.wasm"));
        if !path.is_file() {
            return Err(ShadowError::NoCandidate(format!(
                "no candidate `{candidate}`: {} does not exist (upload it with PUT /admin/candidates/{candidate})",
                path.display()
            )));
        }
        let runtime = self.inner.deps.runtime.clone();
        let live_chain = chain.clone();
        let shadow = tokio::task::spawn_blocking(move || {
            let plugin = runtime
                .load(&path)
                .map_err(|e| ShadowError::CannotRun(format!("{e:#}")))?;
            let pool = live_chain
                .step_pool(index)
                .expect("index checked above")
                .shadow_of(plugin)
                .map_err(|e| ShadowError::CannotRun(format!("candidate: {e}")))?;
            Ok::<_, ShadowError>(Shadow::new(index, pool))
        })
        .await
        .expect("loading a candidate panicked")?;
        let shadow = Arc::new(shadow);
        rt.swap_chain(chain.with_shadow(Some(shadow.clone())));
        let report = report_of(&rt).expect("attached above");
        tracing::info!(route, step = index + 1, candidate = %report.candidate, live = %report.live, "shadow attached");
        Ok(report)
    }

    /// How the shadow of `route` compares so far.
    pub fn shadow_report(&self, route: &str) -> Result<ShadowReport, ShadowError> {
        let rt = self.runtime_of(route)?;
        report_of(&rt).ok_or_else(|| ShadowError::NoShadow(route.to_owned()))
    }

    /// Detach the shadow of `route`; its last report.
    pub async fn discard_shadow(&self, route: &str) -> Result<ShadowReport, ShadowError> {
        let _one_change_at_a_time = self.inner.changes.lock().await;
        let rt = self.runtime_of(route)?;
        let report = report_of(&rt).ok_or_else(|| ShadowError::NoShadow(route.to_owned()))?;
        rt.swap_chain(rt.chain().with_shadow(None));
        tracing::info!(route, candidate = %report.candidate, "shadow discarded");
        Ok(report)
    }

    /// Make the candidate the serving version of the plugin it shadows: it
    /// is written into the plugins directory under that plugin's name and
    /// reloaded like any new version (so every route running the plugin
    /// moves to it). Then the shadow is detached.
    pub async fn promote_shadow(
        &self,
        route: &str,
    ) -> Result<(ShadowReport, ReloadOutcome), ShadowError> {
        let (report, bytes, plugin_name) = {
            let _one_change_at_a_time = self.inner.changes.lock().await;
            let rt = self.runtime_of(route)?;
            let chain = rt.chain();
            let shadow = chain
                .shadow()
                .ok_or_else(|| ShadowError::NoShadow(route.to_owned()))?;
            let candidate = shadow.candidate.plugin();
            let bytes = tokio::fs::read(&candidate.path).await.map_err(|e| {
                ShadowError::Changed(format!(
                    "cannot read the candidate {}: {e}",
                    candidate.path.display()
                ))
            })?;
            if content_hash(&bytes) != candidate.hash {
                return Err(ShadowError::Changed(format!(
                    "the candidate file {} changed since it was attached; attach it again",
                    candidate.path.display()
                )));
            }
            let live = chain.step_pool(shadow.step).expect("shadowed step exists");
            (
                report_of(&rt).expect("has a shadow"),
                bytes,
                live.plugin().name.clone(),
            )
        };
        // Checked before it is written: a refused candidate never reaches
        // the plugins directory.
        let outcome = self.upload_plugin(&plugin_name, bytes).await;
        match &outcome {
            ReloadOutcome::Refused(Refusal { reason, .. }) | ReloadOutcome::NotWritten(reason) => {
                return Err(ShadowError::CannotRun(format!(
                    "promoting refused; the serving version stays: {reason}"
                )));
            }
            _ => {}
        }
        let _one_change_at_a_time = self.inner.changes.lock().await;
        if let Ok(rt) = self.runtime_of(route) {
            rt.swap_chain(rt.chain().with_shadow(None));
        }
        tracing::info!(route, plugin = %plugin_name, candidate = %report.candidate, "shadow promoted");
        Ok((report, outcome))
    }

    fn runtime_of(&self, route: &str) -> Result<Arc<RouteRuntime>, ShadowError> {
        self.live_runtimes()
            .into_iter()
            .find(|r| r.route.name == route)
            .ok_or_else(|| ShadowError::NoRoute(route.to_owned()))
    }
}

fn report_of(rt: &RouteRuntime) -> Option<ShadowReport> {
    let chain = rt.chain();
    let shadow = chain.shadow()?;
    let live = chain
        .step_version(shadow.step)
        .unwrap_or_default()
        .to_owned();
    Some(shadow.report(live))
}
