//! The `mock-crm` binary's control token: read from the environment (or
//! `--control-token`), refused at start when too short, never printed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mock_crm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mock-crm"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("MOCK_CRM_CONTROL_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_short_control_token_stops_the_mock_without_showing_it() {
    for with_flag in [true, false] {
        let mut command = mock_crm();
        if with_flag {
            command.args(["--control-token", "tiny-tok"]);
        } else {
            command.env("MOCK_CRM_CONTROL_TOKEN", "tiny-tok");
        }
        let mut child = command.spawn().expect("mock-crm");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mock-crm started with a short control token");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!status.success(), "{stderr}");
        assert!(
            stderr.contains("the control token must be at least 16 characters (got 8)"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("tiny-tok"),
            "the token was printed: {stderr}"
        );
    }
}
