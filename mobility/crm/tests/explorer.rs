//! The API explorer works in a real (headless) browser: Swagger UI loads,
//! fetches the document and renders every operation.

mod support;

use std::process::Command;

/// (method, path) of every operation the explorer must show.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/users"),
    ("get", "/users/{id}"),
    ("post", "/users"),
    ("post", "/users/{id}"),
    ("get", "/trips"),
    ("get", "/trips/{id}"),
    ("post", "/trips"),
    ("post", "/trips/{id}"),
    ("post", "/_mock/faults"),
    ("delete", "/_mock/faults"),
    ("get", "/_mock/stats"),
    ("post", "/_mock/reset"),
];

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_shows_every_operation_in_a_real_browser() {
    let address = support::start().await;
    let url = format!("http://{address}/swagger/");
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let content_type = page.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");

    // Let the page's scripts fetch the document and render it, then read
    // the resulting DOM. The browser blocks, the server runs on the
    // runtime: run the browser on a blocking thread.
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
            .unwrap_or_else(|error| {
                panic!(
                    "this test needs Debian's `chromium` on PATH (/usr/bin/chromium; \
                     `apt-get install chromium`), and could not run it: {error}"
                )
            });
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 DOM")
    })
    .await
    .unwrap();

    let rendered = operations_in(&dom);
    for (method, path) in OPERATIONS {
        assert!(
            rendered.contains(&(method.to_string(), path.to_string())),
            "{method} {path} not rendered; rendered: {rendered:?}"
        );
    }
    assert_eq!(rendered.len(), OPERATIONS.len(), "{rendered:?}");
    assert!(
        dom.contains("class=\"title\">Mock CRM"),
        "title not rendered"
    );
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
