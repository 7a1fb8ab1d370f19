//! Shadow mode on a live route on Kafka: a candidate that differs from the
//! live version on a known quarter of the records is reported at exactly
//! that agreement, with samples; nothing it produces reaches the sink;
//! promoting makes it the serving version; discarding detaches it; and
//! every bad request is named.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_tests::*;

const TOKEN: &str = "shadow-admin-token-0123456789";

fn tag(name: &str, bytes: &[u8]) -> String {
    let hash: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{name}@{}", &hash[..12])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_is_compared_on_live_traffic_then_promoted_or_discarded() {
    let (source, sink) = (unique("shadow-in"), unique("shadow-out"));
    create_topics(&[&source, &sink], 1).await;
    // Promoting writes into the plugins directory: use one of our own.
    let plugins = tempfile::tempdir().unwrap();
    let live_bytes = std::fs::read(plugins_dir().join("uppercase.wasm")).unwrap();
    std::fs::write(plugins.path().join("uppercase.wasm"), &live_bytes).unwrap();
    let candidate_bytes = std::fs::read(plugins_dir().join("uppercase-next.wasm")).unwrap();
    let routes = format!(
        r#"
[[routes]]
name = "upper"
source = {{ topics = ["{source}"], group = "{}" }}
chain = [{{ plugin = "uppercase", config = {{ fields = ["name"] }} }}]
sink = {{ topic = "{sink}" }}
"#,
        unique("upper")
    );
    let mut sy = Switchyard::start_custom(
        plugins.path(),
        &routes,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let url = |path: &str| format!("http://{}{path}", sy.http);
    let call = |method: &str, path: &str, body: Vec<u8>| {
        http_request(method, &url(path), Some(TOKEN), body)
    };
    let attach = |body: Value| {
        call(
            "POST",
            "/admin/routes/upper/shadow",
            serde_json::to_vec(&body).unwrap(),
        )
    };

    let (code, body) = call(
        "PUT",
        "/admin/candidates/uppercase-next",
        candidate_bytes.clone(),
    );
    assert_eq!(code, 201, "{body}");
    // Refused at upload (see candidate_upload.rs); a file put into the
    // candidates directory by other means is refused when attached.
    let (code, _) = call("PUT", "/admin/candidates/junk", b"not a component".to_vec());
    assert_eq!(code, 422);
    std::fs::write(
        plugins.path().join("candidates/junk.wasm"),
        b"not a component",
    )
    .unwrap();

    // Every bad request, named; none attaches anything.
    let (code, _) = http_request(
        "POST",
        &url("/admin/routes/upper/shadow"),
        None,
        b"{}".to_vec(),
    );
    assert_eq!(code, 401);
    for (path, body, code, expect) in [
        (
            "/admin/routes/nope/shadow",
            json!({"candidate": "uppercase-next"}),
            404,
            "no route named `nope`",
        ),
        (
            "/admin/routes/upper/shadow",
            json!({"candidate": "missing"}),
            404,
            "no candidate `missing`",
        ),
        (
            "/admin/routes/upper/shadow",
            json!({"candidate": "uppercase-next", "step": 2}),
            400,
            "route `upper` has 1 chain step(s); step 2 does not exist",
        ),
        (
            "/admin/routes/upper/shadow",
            json!({"candidate": "junk"}),
            422,
            "not a WebAssembly component",
        ),
        (
            "/admin/routes/upper/shadow",
            json!({"candidat": "x"}),
            400,
            "the body must be {\"candidate\": \"NAME\", \"step\": N}",
        ),
        (
            "/admin/routes/upper/shadow/promote",
            json!({}),
            404,
            "route `upper` has no shadow attached",
        ),
    ] {
        let (got, answer) = call("POST", path, serde_json::to_vec(&body).unwrap());
        assert_eq!(got, code, "{path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expect), "{error:?} lacks {expect:?}");
    }
    // Reading a report needs the token too (its samples show records).
    let (code, _) = http_request("GET", &url("/admin/routes/upper/shadow"), None, vec![]);
    assert_eq!(code, 401);
    let (code, _) = call("GET", "/admin/routes/upper/shadow", vec![]);
    assert_eq!(code, 404);

    let (code, report) = attach(json!({"candidate": "uppercase-next"}));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["live"], tag("uppercase", &live_bytes).as_str());
    assert_eq!(
        report["candidate"],
        tag("uppercase-next", &candidate_bytes).as_str()
    );
    assert_eq!(
        (report["compared"].as_u64(), &report["agreement_rate"]),
        (Some(0), &Value::Null)
    );

    // A quarter of the names have spaces around them: the candidate trims
    // them, the live version does not.
    const N: usize = 200;
    let records: Vec<(String, String)> = (0..N)
        .map(|i| {
            let name = if i % 4 == 0 {
                format!(" ada {i} ")
            } else {
                format!("ada {i}")
            };
            (format!("k{i}"), json!({ "i": i, "name": name }).to_string())
        })
        .collect();
    produce(&producer(), &source, &records).await;
    let out = read_topic(&sink, N, Duration::from_secs(60));
    assert_eq!(out.len(), N);
    for r in &out {
        let v = r.json();
        let i = v["i"].as_u64().unwrap() as usize;
        let expected = records[i].1.parse::<Value>().unwrap()["name"]
            .as_str()
            .unwrap()
            .to_uppercase();
        assert_eq!(
            v["name"],
            expected.as_str(),
            "the live version's output only"
        );
        assert_eq!(r.headers["switchyard-chain"], tag("uppercase", &live_bytes));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let (_, report) = call("GET", "/admin/routes/upper/shadow", vec![]);
        if report["compared"] == N {
            break report;
        }
        assert!(Instant::now() < deadline, "{report}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["agreed"], 150, "{report}");
    assert_eq!(report["differed"], 50, "{report}");
    assert_eq!(report["agreement_rate"], 0.75, "{report}");
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 10, "{report}");
    assert_eq!(
        (&samples[0]["offset"], &samples[1]["offset"]),
        (&json!(0), &json!(4))
    );
    assert!(
        samples[0]["live"]
            .as_str()
            .unwrap()
            .contains(r#"\" ADA 0 \""#),
        "{report}"
    );
    assert!(
        samples[0]["candidate"]
            .as_str()
            .unwrap()
            .contains(r#"\"ADA 0\""#),
        "{report}"
    );

    // Discard, attach again, promote.
    let (code, body) = call("DELETE", "/admin/routes/upper/shadow", vec![]);
    assert_eq!(
        (code, &body["discarded"]["compared"]),
        (200, &json!(N)),
        "{body}"
    );
    assert_eq!(call("GET", "/admin/routes/upper/shadow", vec![]).0, 404);
    let (code, _) = attach(json!({"candidate": "uppercase-next", "step": 1}));
    assert_eq!(code, 200);
    let (code, body) = call("POST", "/admin/routes/upper/shadow/promote", vec![]);
    assert_eq!(code, 200, "{body}");
    let promoted = tag("uppercase", &candidate_bytes);
    assert_eq!(body["serving"], promoted.as_str(), "{body}");
    assert_eq!(
        call("GET", "/admin/routes/upper/shadow", vec![]).0,
        404,
        "promoting detaches"
    );
    let (_, plugin) = get_json(&url("/admin/plugins/uppercase")).unwrap();
    assert_eq!(plugin["serving"], promoted.as_str());
    assert_eq!(
        std::fs::read(plugins.path().join("uppercase.wasm")).unwrap(),
        candidate_bytes
    );
    produce(
        &producer(),
        &source,
        &[("k".into(), json!({"i": N, "name": " grace "}).to_string())],
    )
    .await;
    let out = read_topic(&sink, N + 1, Duration::from_secs(30));
    let last = out
        .iter()
        .find(|r| r.json()["i"] == N)
        .expect("the record after promotion");
    assert_eq!(last.json()["name"], "GRACE", "the promoted version serves");
    assert_eq!(last.headers["switchyard-chain"], promoted);
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}
