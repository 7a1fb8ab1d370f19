//! The routes file that Kubernetes and docker compose run
//! (`deploy/kubernetes/switchyard.toml`, generated from switchyard.toml)
//! starts where they run it, beyond loopback, with the variables their
//! Secret gives, and keeps `GET /events` behind its read token; the
//! placeholders of `secret.example.yaml` stop it instead.

use std::time::Duration;

use switchyard_tests::*;

const ADMIN_TOKEN: &str = "deployment-admin-token-0123";
const READ_TOKEN: &str = "deployment-read-token-0123456789";

/// The container routes file, with the plugins of this build and the
/// public listener on `public` (all interfaces, as in a container).
fn container_routes(public: &str) -> String {
    let text =
        std::fs::read_to_string(workspace().join("deploy/kubernetes/switchyard.toml")).unwrap();
    let text = text.replace("0.0.0.0:5000", public);
    // `start_custom` writes `plugins_dir` itself.
    text.lines()
        .filter(|l| !l.starts_with("plugins_dir = "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Secret's variables, `overrides` replacing some.
fn secret_env<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SWITCHYARD_STREAMS_PASSWORD", "deployment-streams-password"),
        (
            "SWITCHYARD_MASTER_KEY",
            "6465706c6f796d656e742d746573742d6d61737465722d6b65792d3031323334",
        ),
        ("MOBILITY_INGEST_TOKEN", "deployment-ingest-token-0123"),
        ("MOBILITY_CRM_URL", "http://127.0.0.1:9"),
        ("SWITCHYARD_EVENTS_READ_TOKEN", READ_TOKEN),
    ];
    for (name, value) in overrides {
        env.retain(|(n, _)| n != name);
        env.push((name, value));
    }
    env
}

/// The port of `addr` on all interfaces, as a container listens.
fn all_interfaces(addr: &str) -> String {
    format!("0.0.0.0:{}", addr.rsplit(':').next().unwrap())
}

/// `switchyard run` on `routes` (written to a file of its own), listening
/// on `main`, with `env`: the process, and the folder of its files.
fn run(
    routes: &str,
    main: &str,
    brokers: Option<&str>,
    env: &[(&str, &str)],
) -> (Service, tempfile::TempDir) {
    let staged = tempfile::tempdir().unwrap();
    let config = staged.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "plugins_dir = {:?}\n{routes}",
            plugins_dir().display().to_string()
        ),
    )
    .unwrap();
    let mut args = vec!["run", "--config", config.to_str().unwrap(), "--http", main];
    if let Some(brokers) = brokers {
        args.extend(["--brokers", brokers]);
    }
    let cache = workspace().join("target/test-cache");
    let mut env = env.to_vec();
    env.push(("SWITCHYARD_CACHE_DIR", cache.to_str().unwrap()));
    (Service::start("switchyard", &args, &env), staged)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_routes_file_starts_beyond_loopback_with_reads_behind_a_token() {
    let public_port = free_addr();
    let main_port = free_addr();
    // On the in-memory broker: nothing else to start, nothing shared.
    let (mut sy, _files) = run(
        &container_routes(&all_interfaces(&public_port)),
        &all_interfaces(&main_port),
        None,
        &secret_env(&[]),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while get_json(&format!("http://{main_port}/healthz")).is_none_or(|(status, _)| status != 200) {
        sy.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy:\n{}",
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = format!("http://{public_port}/events");
    let open = call("GET", &events, &[], b"").await;
    assert_eq!(open.status, 401, "{open:?}");
    let bearer = format!("Bearer {READ_TOKEN}");
    let read = call("GET", &events, &[("Authorization", &bearer)], b"").await;
    assert_eq!(read.status, 200, "{read:?}");
    // Posting stays open, as the events API's contract has it.
    let posted = call(
        "POST",
        &events,
        &[("Content-Type", "application/json")],
        br#"{"userId":"u1","type":"login"}"#,
    )
    .await;
    assert_eq!(posted.status, 202, "{posted:?}");
    assert!(!sy.log_text().contains(READ_TOKEN));
}

/// Start with `env`: it must exit, failing; its log.
fn refused(env: &[(&str, &str)]) -> String {
    let routes = container_routes(&all_interfaces(&free_addr()));
    let (mut sy, _files) = run(
        &routes,
        &all_interfaces(&free_addr()),
        Some("127.0.0.1:1"),
        env,
    );
    let status = sy.wait(Duration::from_secs(60));
    let log = sy.log_text();
    assert!(!status.success(), "started:\n{log}");
    log
}

#[test]
fn a_missing_read_token_or_the_secret_example_placeholders_stop_it() {
    let without: Vec<_> = secret_env(&[])
        .into_iter()
        .filter(|(name, _)| *name != "SWITCHYARD_EVENTS_READ_TOKEN")
        .collect();
    let log = refused(&without);
    assert!(
        log.contains(
            "events_api.read_tokens[0]: environment variable `SWITCHYARD_EVENTS_READ_TOKEN` is not set"
        ),
        "{log}"
    );
    let log = refused(&secret_env(&[(
        "SWITCHYARD_EVENTS_READ_TOKEN",
        "CHANGE-ME",
    )]));
    assert!(
        log.contains("events_api.read_tokens[0]: the token must be at least 16 characters"),
        "{log}"
    );
    assert!(!log.contains("CHANGE-ME"), "a secret in the log: {log}");
    // The streams API's password of the example Secret.
    let log = refused(&secret_env(&[("SWITCHYARD_STREAMS_PASSWORD", "CHANGE-ME")]));
    assert!(
        log.contains(
            "streams_api.credentials[0] (user `demo`): the password is a placeholder; give a real one"
        ),
        "{log}"
    );
    assert!(!log.contains("CHANGE-ME"), "a secret in the log: {log}");
}
