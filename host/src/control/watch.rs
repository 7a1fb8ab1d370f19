//! Watching files: a created, written or renamed-in plugin file is reloaded,
//! and a changed routes file applied, once no event has touched it for
//! [`QUIET`], so that a file being copied in is read whole (a file that
//! stays truncated is read as it is, and refused).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ControlPlane;

/// How long a file must be left alone before it is read.
pub const QUIET: Duration = Duration::from_millis(200);

/// Watch the plugins directory until `stop`; reload what changes.
pub fn plugins(control: ControlPlane, stop: CancellationToken) -> anyhow::Result<()> {
    let dir = control.plugins_dir().to_owned();
    debounced(&dir, plugin_name, stop, move |name, noticed| {
        let control = control.clone();
        async move {
            control.reload_plugin(&name, noticed).await;
        }
    })
}

/// Watch the routes file until `stop`; apply what changes. Its directory is
/// watched, since editors and deploy tools replace a file by renaming.
pub fn routes_file(control: ControlPlane, stop: CancellationToken) -> anyhow::Result<()> {
    let path = control.config_path().to_owned();
    let file_name = path.file_name().map(ToOwned::to_owned);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let is_routes_file = move |p: &Path| (p.file_name() == file_name.as_deref()).then(String::new);
    debounced(&dir, is_routes_file, stop, move |_, _| {
        let control = control.clone();
        async move {
            let _ = control.reload_routes_file().await;
        }
    })
}

/// Watch `dir`; for each path `key_of` maps to a key, call `handle` with the
/// key and the first event's time once the key has been quiet for [`QUIET`].
fn debounced<F>(
    dir: &Path,
    key_of: impl Fn(&Path) -> Option<String> + Send + 'static,
    stop: CancellationToken,
    handle: impl Fn(String, Instant) -> F + Send + 'static,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some(key) = key_of(path) {
                let _ = tx.send(key);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "watching for changes");

    tokio::spawn(async move {
        // Keep the watcher alive as long as this task.
        let _watcher = watcher;
        // Key -> (first event, last event) of changes not yet handled.
        let mut pending: HashMap<String, (Instant, Instant)> = HashMap::new();
        loop {
            let next_due = pending.values().map(|(_, last)| *last + QUIET).min();
            tokio::select! {
                _ = stop.cancelled() => return,
                key = rx.recv() => match key {
                    Some(key) => {
                        let now = Instant::now();
                        pending.entry(key).and_modify(|(_, last)| *last = now).or_insert((now, now));
                    }
                    None => return,
                },
                _ = sleep_until(next_due) => {
                    let now = Instant::now();
                    let due: Vec<(String, Instant)> = pending
                        .iter()
                        .filter(|(_, (_, last))| *last + QUIET <= now)
                        .map(|(key, (first, _))| (key.clone(), *first))
                        .collect();
                    for (key, first) in due {
                        pending.remove(&key);
                        handle(key, first).await;
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
