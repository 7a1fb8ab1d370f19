//! Live plugin changes on real Kafka: a changed plugin file is swapped into
//! a running route, a truncated one is refused while the old version keeps
//! serving, the admin API's upload and its credentials, and a swap under
//! steady load that loses nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use switchyard_tests::*;

const TOKEN: &str = "test-admin-token-0123456789";

/// A plugins directory of its own holding `json-set` as `variant`.
fn plugins_with_json_set(variant: u32) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(plugins_dir().join("json-set.wasm")).expect("json-set.wasm built");
    std::fs::write(
        dir.path().join("json-set.wasm"),
        plugin_variant(&original, variant),
    )
    .unwrap();
    (dir, original)
}

/// `json-set@` and the first 12 hex digits of the SHA-256 of `bytes`.
fn version(bytes: &[u8]) -> String {
    let hash: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("json-set@{}", &hash[..12])
}

/// Replace a file the way deploy tools do: write aside, rename over.
fn replace_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(".incoming.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Topics {
    source: String,
    sink: String,
}

async fn topics(name: &str, partitions: i32) -> Topics {
    let t = Topics {
        source: unique(&format!("{name}-in")),
        sink: unique(&format!("{name}-out")),
    };
    create_topics(&[&t.source, &t.sink], partitions).await;
    t
}

fn routes(t: &Topics) -> String {
    format!(
        r#"
[[routes]]
name = "live"
source = {{ topics = ["{}"], group = "{}" }}
chain = [{{ plugin = "json-set", config = {{ set = {{ seen = true }} }} }}]
sink = {{ topic = "{}" }}
"#,
        t.source,
        unique("live"),
        t.sink
    )
}

/// Switchyard running `routes(t)` with the plugins of `plugins`, healthy.
fn start_live(plugins: &Path, t: &Topics, env: &[(&str, &str)]) -> Switchyard {
    let mut sy = Switchyard::start_custom(plugins, &routes(t), &["--brokers", &bootstrap()], env);
    sy.wait_healthy(Duration::from_secs(60));
    sy
}

/// Poll `GET /admin/plugins/json-set` until `done` holds for it.
fn wait_for_plugin(
    sy: &Switchyard,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = get_json(&format!("http://{}/admin/plugins/json-set", sy.http));
        if let Some((200, body)) = &status {
            if done(body) {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last status {status:?}\n{}",
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produce one record and return the chain header of its output, the
/// `n`th record on the sink.
async fn chain_of_next_output(t: &Topics, n: usize) -> String {
    produce(
        &producer(),
        &t.source,
        &[(format!("k{n}"), format!(r#"{{"n":{n}}}"#))],
    )
    .await;
    let out = read_topic(&t.sink, n + 1, Duration::from_secs(30));
    assert_eq!(out.len(), n + 1, "output {n} arrived");
    let record = out
        .iter()
        .find(|r| r.key.as_deref() == Some(&format!("k{n}")))
        .expect("keyed output");
    record.headers["switchyard-chain"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plugin_is_swapped_in_and_a_truncated_one_refused() {
    let t = topics("reload", 1).await;
    let (plugins, original) = plugins_with_json_set(1);
    let file = plugins.path().join("json-set.wasm");
    let mut sy = start_live(plugins.path(), &t, &[]);
    let v1 = version(&plugin_variant(&original, 1));
    assert_eq!(chain_of_next_output(&t, 0).await, v1);

    // Half a component, written in place and left so: refused, v1 serves.
    let v2 = plugin_variant(&original, 2);
    let truncated = &v2[..v2.len() / 2];
    std::fs::write(&file, truncated).unwrap();
    let truncated_hash: String = Sha256::digest(truncated)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let status = wait_for_plugin(&sy, "the truncated file is refused", |s| {
        s["refused"]["hash"] == truncated_hash.as_str()
    });
    assert_eq!(status["serving"], v1.as_str(), "{status}");
    assert!(
        status["refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("json-set"),
        "the reason names the plugin: {status}"
    );
    assert!(sy
        .log_text()
        .contains("plugin file refused; the serving version stays"));
    assert_eq!(
        chain_of_next_output(&t, 1).await,
        v1,
        "the old version keeps serving"
    );

    // A whole new version: swapped in, and the refusal is cleared.
    let v3 = plugin_variant(&original, 3);
    replace_atomically(&file, &v3);
    let status = wait_for_plugin(&sy, "the new version serves", |s| {
        s["serving"] == version(&v3).as_str()
    });
    assert_eq!(status["refused"], serde_json::Value::Null, "{status}");
    assert_eq!(status["reloads"], 1, "{status}");
    assert_eq!(status["used_by"], serde_json::json!(["live"]));
    assert_eq!(chain_of_next_output(&t, 2).await, version(&v3));

    // The file removed: said so, and v3 keeps serving.
    std::fs::remove_file(&file).unwrap();
    let status = wait_for_plugin(&sy, "the removal is reported", |s| {
        s["file_removed"] == true
    });
    assert_eq!(status["serving"], version(&v3).as_str());
    assert_eq!(chain_of_next_output(&t, 3).await, version(&v3));
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_upload_needs_the_token_and_names_every_bad_request() {
    let t = topics("upload", 1).await;
    let (plugins, original) = plugins_with_json_set(1);
    let mut sy = start_live(plugins.path(), &t, &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)]);
    let url = |path: &str| format!("http://{}{path}", sy.http);
    let v2 = plugin_variant(&original, 2);

    let (code, body) = http_request("GET", &url("/admin/plugins"), None, vec![]);
    assert_eq!(code, 200);
    assert_eq!(
        body["plugins"][0]["serving"],
        version(&plugin_variant(&original, 1)).as_str()
    );
    let (code, body) = http_request("GET", &url("/admin/plugins/nope"), None, vec![]);
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("no plugin named `nope`"))
    );

    for (token, expect) in [
        (
            None,
            "this endpoint needs `Authorization: Bearer <admin token>`",
        ),
        (
            Some("wrong-token-0123456789"),
            "the bearer token is not valid",
        ),
    ] {
        let (code, body) = http_request("PUT", &url("/admin/plugins/json-set"), token, v2.clone());
        assert_eq!((code, body["error"].as_str()), (401, Some(expect)));
    }
    let put = |name: &str, body: Vec<u8>| {
        http_request(
            "PUT",
            &url(&format!("/admin/plugins/{name}")),
            Some(TOKEN),
            body,
        )
    };
    let (code, body) = put("bad.name", v2.clone());
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid plugin name \"bad.name\""));
    let (code, body) = put("json-set", vec![]);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("the request body is empty"));
    // Past the size a plugin may be: refused, naming the limit.
    let (code, body) = put("json-set", vec![0u8; (64 << 20) + 1]);
    assert_eq!(code, 413, "{body}");
    assert_eq!(
        body["error"], "the upload is larger than a plugin may be (64 MiB)",
        "{body}"
    );
    let (code, body) = put("json-set", b"not wasm".to_vec());
    assert_eq!(code, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "plugin `json-set` refused, nothing was written; the serving version stays:"
        ),
        "{error}"
    );
    assert!(error.contains("not a WebAssembly component"), "{error}");

    let (code, body) = put("json-set", v2.clone());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "swapped");
    assert_eq!(body["version"], version(&v2).as_str());
    assert_eq!(body["routes"], serde_json::json!(["live"]));
    let (code, body) = put("json-set", v2.clone());
    assert_eq!(
        (code, &body["outcome"]),
        (200, &serde_json::json!("unchanged"))
    );
    let (_, routes) = http_request("GET", &url("/admin/routes"), None, vec![]);
    assert_eq!(routes["routes"][0]["chain"], version(&v2).as_str());
    assert_eq!(chain_of_next_output(&t, 0).await, version(&v2));

    let (code, body) = http_request("GET", &url("/admin/nothing-here"), None, vec![]);
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("no such endpoint"))
    );
    assert!(!sy.log_text().contains(TOKEN), "the token is never logged");
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// A refused upload (a truncated file, a component whose `init` refuses
/// the route's configuration) never reaches the plugins directory, so the
/// next start serves what served before.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upload_is_never_written_and_the_next_start_serves_what_served() {
    let t = topics("refused-upload", 1).await;
    let (plugins, original) = plugins_with_json_set(1);
    let file = plugins.path().join("json-set.wasm");
    let v1 = std::fs::read(&file).unwrap();
    let env = [("SWITCHYARD_ADMIN_TOKEN", TOKEN)];
    let mut sy = start_live(plugins.path(), &t, &env);
    let url = format!("http://{}/admin/plugins/json-set", sy.http);
    let v2 = plugin_variant(&original, 2);
    let other_plugin = std::fs::read(plugins_dir().join("validate.wasm")).unwrap();
    for (what, bytes, names) in [
        ("truncated", v2[..v2.len() / 3].to_vec(), "json-set"),
        ("refusing init", other_plugin, "route `live`"),
    ] {
        let (code, body) = http_request("PUT", &url, Some(TOKEN), bytes);
        assert_eq!(code, 422, "{what}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("nothing was written") && error.contains(names),
            "{what}: {error}"
        );
        assert!(
            std::fs::read(&file).unwrap() == v1,
            "{what}: the refused upload replaced the serving file"
        );
    }
    assert_eq!(chain_of_next_output(&t, 0).await, version(&v1));
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));

    // The next start serves the same version.
    let mut again = start_live(plugins.path(), &t, &env);
    let (_, status) = get_json(&format!("http://{}/admin/plugins/json-set", again.http)).unwrap();
    assert_eq!(status["serving"], version(&v1).as_str(), "{status}");
    assert_eq!(again.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// A version dropped into the plugins directory whose `init` refuses the
/// route's configuration is refused while running, and the next start
/// serves the last version that served (kept in the cache directory),
/// reporting the file as refused, instead of failing every route.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_after_a_refused_drop_in_serves_the_last_version_that_served() {
    let t = topics("refused-drop-in", 1).await;
    let (plugins, _) = plugins_with_json_set(1);
    let file = plugins.path().join("json-set.wasm");
    let v1 = std::fs::read(&file).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let start = || {
        let mut sy = Switchyard::start_custom(
            plugins.path(),
            &routes(&t),
            &["--brokers", &bootstrap(), "--cache-dir", cache_dir],
            &[],
        );
        sy.wait_healthy(Duration::from_secs(60));
        sy
    };
    let mut sy = start();
    let refusing = std::fs::read(plugins_dir().join("validate.wasm")).unwrap();
    replace_atomically(&file, &refusing);
    let status = wait_for_plugin(&sy, "the drop-in is refused", |s| {
        s["refused"] != serde_json::Value::Null
    });
    assert_eq!(status["serving"], version(&v1).as_str(), "{status}");
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));

    // The refused file is still there: the next start serves v1 and says
    // why.
    let mut again = start();
    let status = wait_for_plugin(&again, "the start reports the refusal", |s| {
        s["refused"] != serde_json::Value::Null
    });
    assert_eq!(status["serving"], version(&v1).as_str(), "{status}");
    assert!(
        status["refused"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("refused at start, the last version that served runs instead"),
        "{status}"
    );
    assert_eq!(chain_of_next_output(&t, 0).await, version(&v1));
    assert!(
        again
            .log_text()
            .contains("serving the last version that served instead"),
        "{}",
        again.log_text()
    );
    assert_eq!(again.terminate(Duration::from_secs(60)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_admin_changes_are_refused_and_only_loopback_is_served() {
    let t = topics("no-token", 1).await;
    let (plugins, original) = plugins_with_json_set(1);
    let mut sy = start_live(plugins.path(), &t, &[]);
    let (code, body) = http_request(
        "PUT",
        &format!("http://{}/admin/plugins/json-set", sy.http),
        Some(TOKEN),
        plugin_variant(&original, 2),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("no admin token is configured"));
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));

    let (code, stderr) = run_to_exit(
        &[
            "run",
            "--config",
            "/nonexistent.toml",
            "--http",
            "0.0.0.0:0",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refusing to serve the admin API on 0.0.0.0:0 (not a loopback address) without an admin token"),
        "{stderr}"
    );
    let (code, stderr) = run_to_exit(
        &[
            "run",
            "--config",
            "/nonexistent.toml",
            "--admin-token",
            "short",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the admin token must be at least 16 characters (got 5)"),
        "{stderr}"
    );
}

/// At least 5,000 records/s for 30 s into a route whose plugin is swapped
/// five times meanwhile: every input comes out exactly once, stamped with
/// exactly one known version, and several versions did the work. Prints the
/// load and each swap's latency (file renamed into place to the new version
/// serving) for BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread")]
async fn swaps_under_steady_load_lose_nothing() {
    const RATE: usize = 5_000;
    const SECONDS: usize = 30;
    const TICK_MS: usize = 100;
    const PER_TICK: usize = RATE * TICK_MS / 1000;
    const KEYS: usize = 64;
    let total = RATE * SECONDS;

    let t = topics("swap-load", 4).await;
    let (plugins, original) = plugins_with_json_set(1);
    let file = plugins.path().join("json-set.wasm");
    let mut sy = start_live(plugins.path(), &t, &[]);
    let mut versions = vec![version(&plugin_variant(&original, 1))];

    let source = t.source.clone();
    let started = Instant::now();
    let load = tokio::spawn(async move {
        let producer = producer();
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS as u64));
        for chunk in 0..total / PER_TICK {
            tick.tick().await;
            let records: Vec<(String, String)> = (chunk * PER_TICK..(chunk + 1) * PER_TICK)
                .map(|i| (format!("key-{}", i % KEYS), format!(r#"{{"i":{i}}}"#)))
                .collect();
            produce(&producer, &source, &records).await;
        }
        started.elapsed()
    });

    // Five swaps, about 5 s apart, while the load runs.
    let mut latencies = Vec::new();
    for variant in 2..=6 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let bytes = plugin_variant(&original, variant);
        let want = version(&bytes);
        let written = Instant::now();
        replace_atomically(&file, &bytes);
        let status = get_json_until(&sy, &want).await;
        latencies.push(written.elapsed());
        assert_eq!(status["refused"], serde_json::Value::Null);
        versions.push(want);
    }
    let produced_in = load.await.unwrap();
    let offered = total as f64 / produced_in.as_secs_f64();

    let out = read_topic(&t.sink, total, Duration::from_secs(180));
    let drained_in = started.elapsed();
    let mut seen = vec![0u32; total];
    let mut per_version = std::collections::BTreeMap::<String, usize>::new();
    for record in &out {
        let i = record.json()["i"].as_u64().expect("the input's index") as usize;
        seen[i] += 1;
        let chain = &record.headers["switchyard-chain"];
        assert!(
            versions.contains(chain),
            "output {i} stamped {chain:?}, not one known version"
        );
        *per_version.entry(chain.clone()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..total).filter(|&i| seen[i] == 0).collect();
    let repeated: Vec<usize> = (0..total).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty(),
        "{} inputs lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        repeated.is_empty(),
        "{} inputs repeated in a clean run",
        repeated.len()
    );
    assert!(
        per_version.len() >= 4,
        "several versions did the work: {per_version:?}"
    );

    eprintln!(
        "hot swap under load: {total} records offered at {offered:.0}/s over {produced_in:.1?}; \
         all {total} out after {drained_in:.1?}; outputs per version {:?}; swap latencies (renamed -> serving) {latencies:?}",
        per_version.values().collect::<Vec<_>>()
    );
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}

/// Poll the plugin status from a blocking thread until `want` serves.
async fn get_json_until(sy: &Switchyard, want: &str) -> serde_json::Value {
    let url = format!("http://{}/admin/plugins/json-set", sy.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = get_json(&url) {
            if body["serving"] == want {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{want} never served:\n{}",
            sy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
