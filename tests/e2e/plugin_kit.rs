//! The plugin author's kit: `switchyard plugin new` scaffolds a crate that
//! builds at once, and `switchyard plugin test` runs a component on JSON
//! Lines records with no broker. Also checks that the guide quotes the
//! scaffold's code.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use switchyard_tests::{plugins_dir, switchyard_bin, workspace};

/// Run switchyard to completion: exit code, stdout, stderr.
fn switchyard(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(switchyard_bin())
        .args(args)
        .env(
            "SWITCHYARD_CACHE_DIR",
            workspace().join("target/test-cache"),
        )
        // A shared target directory: the scaffold's dependencies compile
        // for wasm once, not on every run.
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/scaffold-build"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = switchyard(args, "");
    assert_eq!(code, Some(0), "switchyard {args:?} failed:\n{stderr}");
    stdout
}

fn fails(args: &[&str], stdin: &str) -> String {
    let (code, _, stderr) = switchyard(args, stdin);
    assert_eq!(code, Some(1), "switchyard {args:?} should fail:\n{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What `plugin test` prints for the scaffold's samples, after the first
/// line (which names the plugin's hash). The guide shows the same.
const SCAFFOLD_OUTPUT: &str = r#"#1 (line 1) emit, 1 output
    -> [default] key="order-1" value={"id":1,"type":"order","total":9.5,"tagged_by":"my-plugin"}
#2 (line 2) drop
#3 (line 3) reject
    - missing required field "id"
    - missing required field "type"
#4 (line 4) reject
    - value is not valid JSON: expected ident at line 1 column 2
#5 (line 5) emit, 1 output
    -> [default] key="order-1" value=(tombstone) headers: trace-id="abc"
5 records: 2 emitted (2 outputs), 1 dropped, 2 rejected, 0 failed
"#;

#[test]
fn a_new_plugin_builds_and_runs_its_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, stderr) = switchyard(&["plugin", "new", "my-plugin", "--dir", s(tmp.path())], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("created plugin `my-plugin`"), "{stderr}");
    let dir = tmp.path().join("my-plugin");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "wit/plugin.wit",
        "README.md",
        "config.json",
        "events.jsonl",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("wit/plugin.wit")).unwrap(),
        std::fs::read_to_string(workspace().join("wit/plugin.wit")).unwrap(),
        "the scaffold ships the host's WIT"
    );

    let out = tmp.path().join("out");
    ok(&["plugin", "build", s(&dir), "--out", s(&out)]);
    let wasm = out.join("my-plugin.wasm");
    assert!(wasm.is_file());

    let config = dir.join("config.json");
    let input = dir.join("events.jsonl");
    let args = [
        "plugin",
        "test",
        s(&wasm),
        "--config",
        s(&config),
        "--input",
        s(&input),
    ];
    let human = ok(&args);
    let (first, rest) = human.split_once('\n').unwrap();
    assert!(first.starts_with("plugin my-plugin@"), "{first}");
    assert!(
        first.ends_with(&format!("5 records from {}", s(&input))),
        "{first}"
    );
    assert_eq!(rest, SCAFFOLD_OUTPUT);

    let json = json_lines(&ok(&[&args[..], &["--json"]].concat()));
    assert_eq!(json.len(), 5);
    assert_eq!(
        json[0],
        serde_json::json!({"record": 1, "line": 1, "outcome": "emit", "outputs": [{
            "target": null, "key": "order-1", "headers": [],
            "value": {"id": 1, "type": "order", "total": 9.5, "tagged_by": "my-plugin"}}]})
    );
    assert_eq!(json[1]["outcome"], "drop");
    assert_eq!(
        json[2]["reasons"],
        serde_json::json!([
            "missing required field \"id\"",
            "missing required field \"type\""
        ])
    );
    assert_eq!(json[3]["outcome"], "reject");
    assert_eq!(json[4]["outputs"][0]["value"], serde_json::Value::Null);
    assert_eq!(
        json[4]["outputs"][0]["headers"],
        serde_json::json!([["trace-id", "abc"]])
    );
}

#[test]
fn the_guide_quotes_the_scaffold_and_its_output() {
    let guide = std::fs::read_to_string(workspace().join("docs/writing-a-plugin.md")).unwrap();
    assert!(
        guide.contains(switchyard::plugin_kit::LIB_RS),
        "docs/writing-a-plugin.md must contain host/src/plugin_kit/templates/lib.rs.txt verbatim"
    );
    assert!(
        guide.contains(SCAFFOLD_OUTPUT),
        "the guide's sample output is what the scaffold prints"
    );
}

/// The guide's `switchyard-guest` example is the library's doc test, the
/// code its tests compile.
#[test]
fn the_guide_quotes_the_guest_library_example() {
    let guide = std::fs::read_to_string(workspace().join("docs/writing-a-plugin.md")).unwrap();
    let lib = std::fs::read_to_string(workspace().join("plugins/guest/src/lib.rs")).unwrap();
    let doc_test: String = lib
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .skip_while(|line| *line != " ```")
        .skip(1)
        .take_while(|line| *line != " ```")
        .map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line)))
        .collect();
    assert!(doc_test.contains("export_plugin!(Stamp);"), "{doc_test}");
    assert!(
        guide.contains(&format!("```rust\n{doc_test}```")),
        "docs/writing-a-plugin.md must quote the example of plugins/guest/src/lib.rs verbatim:\n{doc_test}"
    );
}

#[test]
fn json_set_on_the_fixture_shows_outputs_and_rejects() {
    let wasm = plugins_dir().join("json-set.wasm");
    let fixtures = workspace().join("tests/fixtures/plugin-test");
    let (config, input) = (
        fixtures.join("json-set.toml"),
        fixtures.join("json-set.jsonl"),
    );
    let args = [
        "plugin",
        "test",
        s(&wasm),
        "--config",
        s(&config),
        "--input",
        s(&input),
    ];
    let human = ok(&args);
    let lines: Vec<&str> = human.lines().collect();
    assert!(lines[0].starts_with("plugin json-set@"), "{human}");
    assert_eq!(lines[1], "#1 (line 1) emit, 1 output");
    assert_eq!(
        lines[2],
        r#"    -> [default] key="a" value={"id":1,"status":"seen","routed_by":"switchyard"} headers: trace="t1""#
    );
    assert_eq!(lines[3], "#2 (line 2) reject");
    assert_eq!(lines[4], "    - value is not a JSON object: found an array");
    assert_eq!(
        lines[5], "#3 (line 4) reject",
        "blank lines are skipped, lines still counted"
    );
    assert!(
        lines[6].starts_with("    - value is not valid JSON: "),
        "{human}"
    );
    assert_eq!(lines[7], "#4 (line 5) emit, 1 output");
    assert_eq!(lines[8], r#"    -> [default] key="gone" value=(tombstone)"#);
    assert_eq!(
        lines[9],
        "4 records: 2 emitted (2 outputs), 0 dropped, 2 rejected, 0 failed"
    );

    let json = json_lines(&ok(&[&args[..], &["--json"]].concat()));
    assert_eq!(
        json[0]["outputs"][0]["value"],
        serde_json::json!({"id": 1, "status": "seen", "routed_by": "switchyard"})
    );
    assert_eq!(
        json[1],
        serde_json::json!({"record": 2, "line": 2, "outcome": "reject",
            "reasons": ["value is not a JSON object: found an array"]})
    );
    assert_eq!(json[2]["line"], 4);

    // Plain values from stdin, with a JSON config.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(&config, r#"{"set": {"n": 1}}"#).unwrap();
    let (code, stdout, stderr) = switchyard(
        &[
            "plugin",
            "test",
            s(&wasm),
            "-c",
            s(&config),
            "--raw",
            "--json",
        ],
        "{\"a\": true}\nnot json\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let json = json_lines(&stdout);
    assert_eq!(
        json[0]["outputs"][0]["value"],
        serde_json::json!({"a": true, "n": 1})
    );
    assert_eq!(json[1]["outcome"], "reject");
}

#[test]
fn mistakes_are_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = s(tmp.path());

    let err = fails(&["plugin", "new", "1st-plugin", "--dir", dir], "");
    assert!(
        err.contains(
            "`1st-plugin` is not a valid plugin crate name: it must start with an ASCII letter"
        ),
        "{err}"
    );
    let err = fails(&["plugin", "new", "my plugin", "--dir", dir], "");
    assert!(err.contains("' ' is not allowed"), "{err}");
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    let err = fails(&["plugin", "new", "taken", "--dir", dir], "");
    assert!(err.contains("taken already exists"), "{err}");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        0,
        "nothing written into an existing directory"
    );

    let missing = tmp.path().join("nope.wasm");
    let err = fails(&["plugin", "test", s(&missing)], "");
    assert!(err.contains("nope.wasm not found"), "{err}");

    let not_wasm = tmp.path().join("text.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    let err = fails(&["plugin", "test", s(&not_wasm)], "");
    assert!(err.contains("not a WebAssembly component"), "{err}");

    let json_set = plugins_dir().join("json-set.wasm");
    let empty = tmp.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let err = fails(&["plugin", "test", s(&json_set), "--config", s(&empty)], "");
    assert!(err.contains("init failed"), "{err}");
    assert!(err.contains("refused its configuration"), "{err}");
    assert!(
        err.contains("needs a \"set\" object"),
        "the plugin's reason: {err}"
    );

    let config = tmp.path().join("set.json");
    std::fs::write(&config, r#"{"set": {}}"#).unwrap();
    let input = tmp.path().join("bad.jsonl");
    std::fs::write(&input, "{\"value\": 1}\n\n{\"value\": 2\n").unwrap();
    let args = [
        "plugin",
        "test",
        s(&json_set),
        "-c",
        s(&config),
        "-i",
        s(&input),
    ];
    let err = fails(&args, "");
    assert!(err.contains("bad.jsonl, line 3: "), "names the line: {err}");
    let err = fails(
        &["plugin", "test", s(&json_set), "-c", s(&config)],
        "{\"vaule\": 1}\n",
    );
    assert!(
        err.contains("stdin, line 1: unknown field `vaule`"),
        "{err}"
    );
    let bad_config = tmp.path().join("bad.toml");
    std::fs::write(&bad_config, "set = {").unwrap();
    let err = fails(&["plugin", "test", s(&json_set), "-c", s(&bad_config)], "");
    assert!(err.contains("is not valid TOML"), "{err}");
}
