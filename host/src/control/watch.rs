//! Watching the plugins directory: a created, written or renamed-in
//! `NAME.wasm` is reloaded once no event has touched it for [`QUIET`], so a
//! file being copied in is read whole (a file that stays truncated is read
//! as it is, and refused).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PluginCatalog;

/// How long a plugin file must be left alone before it is read.
pub const QUIET: Duration = Duration::from_millis(200);

/// Watch the catalog's plugins directory until `stop`; reload what changes.
/// Fails only if the directory cannot be watched at all.
pub fn spawn(catalog: PluginCatalog, stop: CancellationToken) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some(name) = plugin_name(path) {
                let _ = tx.send(name);
            }
        }
    })?;
    watcher.watch(catalog.plugins_dir(), RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %catalog.plugins_dir().display(), "watching for plugin changes");

    tokio::spawn(async move {
        // Keep the watcher alive as long as this task.
        let _watcher = watcher;
        // Plugin name -> (first event, last event) of changes not yet read.
        let mut pending: HashMap<String, (Instant, Instant)> = HashMap::new();
        loop {
            let next_due = pending.values().map(|(_, last)| *last + QUIET).min();
            tokio::select! {
                _ = stop.cancelled() => return,
                name = rx.recv() => match name {
                    Some(name) => {
                        let now = Instant::now();
                        pending.entry(name).and_modify(|(_, last)| *last = now).or_insert((now, now));
                    }
                    None => return,
                },
                _ = sleep_until(next_due) => {
                    let now = Instant::now();
                    let due: Vec<(String, Instant)> = pending
                        .iter()
                        .filter(|(_, (_, last))| *last + QUIET <= now)
                        .map(|(name, (first, _))| (name.clone(), *first))
                        .collect();
                    for (name, first) in due {
                        pending.remove(&name);
                        catalog.reload(&name, first).await;
                    }
                }
            }
        }
    });
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// `NAME` for `.../NAME.wasm`; `None` for anything else, including the
/// hidden temporary files that atomic writers rename into place.
fn plugin_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.is_empty() && !stem.starts_with('.')).then(|| stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_files_are_plugins() {
        assert_eq!(
            plugin_name(Path::new("/p/json-set.wasm")).as_deref(),
            Some("json-set")
        );
        assert_eq!(plugin_name(Path::new("/p/.json-set.wasm")), None);
        assert_eq!(plugin_name(Path::new("/p/.json-set.wasm.1-2.tmp")), None);
        assert_eq!(plugin_name(Path::new("/p/readme.txt")), None);
        assert_eq!(plugin_name(Path::new("/p/wasm")), None);
    }
}
