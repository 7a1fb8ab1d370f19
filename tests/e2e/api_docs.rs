//! The OpenAPI document generated from the code, and Swagger UI rendering
//! it in a real headless browser (Debian's `chromium`).

use std::process::Command;
use std::time::Duration;

use switchyard_tests::*;

fn start() -> (Switchyard, String) {
    let public = free_addr();
    let routes = format!(
        r#"
[http]
public = "{public}"

[events_api]
ingest_route = "ingest"
recent_buffer = "recent"

[[routes]]
name = "ingest"
source = {{ http = true }}
sink = {{ topic = "{topic}" }}

[[routes]]
name = "recent"
source = {{ topics = ["{topic}"] }}
sink = {{ buffer = "recent" }}

[streams_api]
credentials = [{{ user = "docs", password = "docs-password" }}]
owners_topic = "{tag}.owners"
positions_topic = "{tag}.positions"
"#,
        topic = unique("docs-events"),
        tag = unique("docs"),
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    (sy, public)
}

/// Every (method, path) of the two APIs, with the statuses each documents.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    (
        "post",
        "/events",
        &["202", "400", "413", "415", "500", "503"],
    ),
    ("get", "/events", &["200", "400", "401"]),
    (
        "post",
        "/api/v1/streams/{stream}/events",
        &[
            "200", "400", "401", "403", "409", "413", "415", "423", "500",
        ],
    ),
    (
        "get",
        "/api/v1/streams/{stream}/events",
        &["200", "400", "401", "404", "500"],
    ),
    (
        "post",
        "/api/v1/streams/{stream}/events/{eventID}",
        &["200", "400", "401", "404", "415", "500"],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_both_apis() {
    let (sy, public) = start();
    for listener in [&sy.http, &public] {
        let reply = call("GET", &format!("http://{listener}/openapi.json"), &[], b"").await;
        assert_eq!(reply.status, 200);
        let spec = reply.json();
        assert!(
            spec["openapi"].as_str().unwrap().starts_with("3."),
            "{spec}"
        );
        for (method, path, statuses) in OPERATIONS {
            let operation = &spec["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} missing");
            let mut documented: Vec<&str> = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            documented.sort();
            assert_eq!(&documented, statuses, "{method} {path}");
        }
        // The streams API declares Basic auth and its headers.
        assert_eq!(
            spec["components"]["securitySchemes"]["basic"]["scheme"],
            "basic"
        );
        let params = &spec["paths"]["/api/v1/streams/{stream}/events"]["post"]["parameters"];
        assert!(params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "X-Producer-ID" && p["in"] == "header"));
        let schema = &spec["components"]["schemas"]["UserEvent"];
        assert_eq!(
            schema["required"],
            serde_json::json!(["userId", "type"]),
            "{schema}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_shows_every_operation_in_a_real_browser() {
    let (_sy, public) = start();
    let url = format!("http://{public}/swagger/");
    let page = call("GET", &url, &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{page:?}");

    // Let the page's scripts fetch the document and render it, then read
    // the resulting DOM.
    let dom = tokio::task::spawn_blocking(move || {
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=15000",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("chromium (installed by scripts/setup.sh --with-kafka) must be on PATH");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 DOM")
    })
    .await
    .unwrap();
    let rendered = operations_in(&dom);
    for (method, path, _) in OPERATIONS {
        assert!(
            rendered.contains(&(method.to_string(), path.to_string())),
            "{method} {path} not rendered; rendered: {rendered:?}"
        );
    }
    assert!(dom.contains("Switchyard event APIs"), "title not rendered");
}

/// The (method, path) of every operation block Swagger UI rendered.
fn operations_in(dom: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for block in dom.split("class=\"opblock opblock-").skip(1) {
        let method: String = block
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        let Some(at) = block.find("data-path=\"") else {
            continue;
        };
        let rest = &block[at + "data-path=\"".len()..];
        let path = rest[..rest.find('"').unwrap_or(0)].to_owned();
        found.push((method, path));
    }
    found
}
