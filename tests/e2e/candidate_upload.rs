//! Candidate uploads (`PUT /admin/candidates/NAME`) are checked as plugin
//! uploads are: a truncated component, bytes that are not WebAssembly, or
//! a core module is refused with 422 and the reason, and nothing is
//! written; a sound one is stored.

use std::time::Duration;

use switchyard_tests::*;

const TOKEN: &str = "candidate-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_or_foreign_candidate_is_refused_and_nothing_is_written() {
    let (source, sink) = (unique("cand-in"), unique("cand-out"));
    create_topics(&[&source, &sink], 1).await;
    let plugins = tempfile::tempdir().unwrap();
    let component = std::fs::read(plugins_dir().join("json-set.wasm")).unwrap();
    std::fs::write(plugins.path().join("json-set.wasm"), &component).unwrap();
    let routes = format!(
        r#"
[[routes]]
name = "set"
source = {{ topics = ["{source}"], group = "{}" }}
chain = [{{ plugin = "json-set", config = {{ set = {{ v = 1 }} }} }}]
sink = {{ topic = "{sink}" }}
"#,
        unique("cand")
    );
    let mut sy = Switchyard::start_custom(
        plugins.path(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let upload = |name: &str, bytes: Vec<u8>| {
        http_request(
            "PUT",
            &format!("http://{}/admin/candidates/{name}", sy.http),
            Some(TOKEN),
            bytes,
        )
    };
    let stored = |name: &str| {
        plugins
            .path()
            .join("candidates")
            .join(format!("{name}.wasm"))
            .exists()
    };

    // A core module: WebAssembly, but not a component.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for (name, bytes, says) in [
        (
            "cut",
            component[..component.len() / 2].to_vec(),
            "does not validate (truncated or corrupt",
        ),
        (
            "junk",
            b"not a component".to_vec(),
            "the file is not WebAssembly at all",
        ),
        ("core", core_module, "it is a core WebAssembly module"),
    ] {
        let (code, body) = upload(name, bytes);
        assert_eq!(code, 422, "{name}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("candidate `{name}` refused: ")) && error.contains(says),
            "{name}: {error}"
        );
        assert!(!stored(name), "{name} was written although refused");
    }

    let (code, body) = upload("sound", component.clone());
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["candidate"], "sound");
    assert!(stored("sound"));
    assert!(sy.is_running());
}
