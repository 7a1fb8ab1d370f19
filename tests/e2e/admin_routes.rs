//! Route changes over the admin API and by editing the routes file, on real
//! Kafka: create, pause, resume, replace and delete while another route
//! runs; every refusal named and leaving the file untouched; records
//! produced while a route is paused delivered once it resumes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

const TOKEN: &str = "route-admin-token-0123456789";

fn route(name: &str, source: &str, sink: &str, v: u32) -> Value {
    json!({
        "name": name,
        "source": {"topics": [source], "group": unique(name)},
        "chain": [{"plugin": "json-set", "config": {"set": {"v": v}}}],
        "sink": {"topic": sink},
    })
}

/// The `v` field of every record on `topic` (expecting `n` of them).
fn versions_on(topic: &str, n: usize) -> Vec<u64> {
    read_topic(topic, n, Duration::from_secs(30))
        .iter()
        .map(|r| r.json()["v"].as_u64().expect("v"))
        .collect()
}

fn wait_for_state(sy: &Switchyard, name: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = get_json(&format!("http://{}/admin/routes/{name}", sy.http));
        if matches!(&got, Some((200, body)) if body["state"] == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not {state}: {got:?}\n{}",
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_change_over_http_and_by_file_while_others_run() {
    let (source, a_out, b_out, c_out) = (
        unique("adm-in"),
        unique("adm-a"),
        unique("adm-b"),
        unique("adm-c"),
    );
    create_topics(&[&source, &a_out, &b_out, &c_out], 1).await;
    let initial = format!(
        r#"
# Hand-written: this comment must survive admin edits.
[[routes]]
name = "a"
source = {{ topics = ["{source}"], group = "{}" }}
chain = [{{ plugin = "json-set", config = {{ set = {{ v = 1 }} }} }}]
sink = {{ topic = "{a_out}" }}
"#,
        unique("a")
    );
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        &initial,
        &["--brokers", &bootstrap()],
        &[("SWITCHYARD_ADMIN_TOKEN", TOKEN)],
    );
    sy.wait_healthy(Duration::from_secs(60));
    let url = |path: &str| format!("http://{}{path}", sy.http);
    let send = |method: &str, path: &str, body: &Value| {
        http_request(
            method,
            &url(path),
            Some(TOKEN),
            serde_json::to_vec(body).unwrap(),
        )
    };
    let file_before = std::fs::read_to_string(sy.routes_file()).unwrap();

    // Every change needs the token; reads and probes do not.
    for (method, path) in [
        ("POST", "/admin/routes"),
        ("PUT", "/admin/routes/a"),
        ("DELETE", "/admin/routes/a"),
        ("POST", "/admin/routes/a/pause"),
        ("POST", "/admin/routes/a/resume"),
        ("PUT", "/admin/plugins/json-set"),
        ("PUT", "/admin/candidates/json-set"),
        ("POST", "/admin/routes/a/shadow"),
        ("DELETE", "/admin/routes/a/shadow"),
        ("POST", "/admin/routes/a/shadow/promote"),
    ] {
        let (code, body) = http_request(method, &url(path), None, b"{}".to_vec());
        assert_eq!(code, 401, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
    for path in [
        "/livez",
        "/readyz",
        "/healthz",
        "/metrics",
        "/admin/routes",
        "/admin/routes/a",
        "/admin/plugins",
    ] {
        assert_eq!(get_text(&url(path)).0, 200, "GET {path}");
    }

    // Refusals: each named, none touching the file or the running route.
    let b = route("b", &source, &b_out, 2);
    let (code, _) = http_request(
        "POST",
        &url("/admin/routes"),
        None,
        serde_json::to_vec(&b).unwrap(),
    );
    assert_eq!(code, 401);
    let (code, body) = http_request(
        "POST",
        &url("/admin/routes"),
        Some(TOKEN),
        b"{not json".to_vec(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the body must be a JSON route"),
        "{body}"
    );
    let mut typo = b.clone();
    typo["snik"] = json!({"topic": "x"});
    let mut missing_plugin = b.clone();
    missing_plugin["chain"][0]["plugin"] = json!("no-such-plugin");
    let mut refused_config = b.clone();
    refused_config["chain"][0]["config"] = json!({"sett": {}});
    for (body, code, expect) in [
        (&typo, 400, "invalid route: unknown field `snik`"),
        (
            &route("a", &source, &b_out, 2),
            409,
            "a route named `a` already exists",
        ),
        (&missing_plugin, 400, "plugin `no-such-plugin` not found"),
        (
            &refused_config,
            422,
            "plugin `json-set` refused its configuration",
        ),
    ] {
        let (got, answer) = send("POST", "/admin/routes", body);
        assert_eq!(got, code, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expect), "{error:?} lacks {expect:?}");
    }
    assert_eq!(
        std::fs::read_to_string(sy.routes_file()).unwrap(),
        file_before
    );
    for (method, path) in [
        ("DELETE", "/admin/routes/nope"),
        ("POST", "/admin/routes/nope/pause"),
        ("PUT", "/admin/routes/nope"),
    ] {
        let (code, body) = send(method, path, &route("nope", &source, &b_out, 0));
        assert_eq!(
            (code, body["error"].as_str()),
            (404, Some("no route named `nope`")),
            "{method} {path}"
        );
    }

    // Create: both routes see the next record.
    let (code, body) = send("POST", "/admin/routes", &b);
    assert_eq!(
        (code, &body["applied"]["started"]),
        (201, &json!(["b"])),
        "{body}"
    );
    wait_for_state(&sy, "b", "running");
    produce(&producer(), &source, &[("k".into(), "{}".into())]).await;
    assert_eq!(versions_on(&a_out, 1), [1]);
    assert_eq!(versions_on(&b_out, 1), [2]);
    let file = std::fs::read_to_string(sy.routes_file()).unwrap();
    assert!(
        file.starts_with(&file_before) && file.contains("name = \"b\""),
        "{file}"
    );

    // Pause: `b` takes nothing, `a` goes on; resume: `b` catches up.
    let (code, _) = send("POST", "/admin/routes/b/pause", &json!({}));
    assert_eq!(code, 200);
    wait_for_state(&sy, "b", "paused");
    assert_eq!(
        get_json(&url("/readyz")).unwrap().0,
        200,
        "a paused route is not a failure"
    );
    produce(&producer(), &source, &[("k".into(), "{}".into())]).await;
    assert_eq!(versions_on(&a_out, 2), [1, 1]);
    assert_eq!(topic_size(&b_out), 1, "nothing consumed while paused");
    let (code, _) = send("POST", "/admin/routes/b/resume", &json!({}));
    assert_eq!(code, 200);
    assert_eq!(
        versions_on(&b_out, 2),
        [2, 2],
        "the record produced while paused"
    );

    // Replace: the new chain handles what comes next.
    let mut b3 = route("b", &source, &b_out, 3);
    b3.as_object_mut().unwrap().remove("name");
    b3["source"]["group"] = b["source"]["group"].clone();
    let (code, body) = send("PUT", "/admin/routes/b", &b3);
    assert_eq!(
        (code, &body["applied"]["restarted"]),
        (200, &json!(["b"])),
        "{body}"
    );
    produce(&producer(), &source, &[("k".into(), "{}".into())]).await;
    assert_eq!(
        versions_on(&b_out, 3),
        [2, 2, 3],
        "replaced in place, nothing repeated"
    );

    // Delete.
    let (code, body) = send("DELETE", "/admin/routes/b", &json!({}));
    assert_eq!(
        (code, &body["applied"]["stopped"]),
        (200, &json!(["b"])),
        "{body}"
    );
    assert_eq!(get_json(&url("/admin/routes/b")).unwrap().0, 404);
    assert_eq!(
        std::fs::read_to_string(sy.routes_file()).unwrap(),
        file_before
    );

    // The file edited by hand: a new route starts; a broken file is refused
    // and what runs stays.
    let c = format!(
        "{file_before}\n[[routes]]\nname = \"c\"\nsource = {{ topics = [\"{source}\"], group = \"{}\" }}\nsink = {{ topic = \"{c_out}\" }}\n",
        unique("c")
    );
    std::fs::write(sy.routes_file(), &c).unwrap();
    wait_for_state(&sy, "c", "running");
    assert_eq!(
        read_topic(&c_out, 3, Duration::from_secs(30)).len(),
        3,
        "c reads the topic from the start"
    );
    std::fs::write(
        sy.routes_file(),
        format!("{c}\n[[routes]]\nname = \"broken\"\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let (_, listed) = get_json(&url("/admin/routes")).unwrap();
        if !listed["routes_file_refused"].is_null() {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "the broken file was not refused: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let refused = listed["routes_file_refused"].as_str().unwrap();
    assert!(refused.contains("missing field `source`"), "{refused}");
    let names: Vec<&str> = listed["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert!(sy.log_text().contains("routes file change refused"));
    assert!(!sy.log_text().contains(TOKEN));
    assert_eq!(sy.terminate(Duration::from_secs(60)).code(), Some(0));
}
