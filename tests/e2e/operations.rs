//! What an operator meets around the routes, on real Kafka: an instance
//! whose HTTP port is taken exits before it joins any consumer group; the
//! routes file sets the partition count of the topics switchyard creates;
//! a live change of `[kafka]` is said to wait for a restart.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use switchyard_tests::*;

fn wait_for_log(sy: &Switchyard, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sy.log_text().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no `{what}` in the log:\n{}",
            sy.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_port_is_taken_exits_before_joining_a_group() {
    let (source, sink) = (unique("busy-in"), unique("busy-out"));
    create_topics(&[&source, &sink], 1).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let group = unique("busy");
    let routes = format!(
        "[[routes]]\nname = \"r\"\nsource = {{ topics = [\"{source}\"], group = \"{group}\" }}\n\
         sink = {{ topic = \"{sink}\" }}\n"
    );
    let (code, stderr) = {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("routes.toml");
        std::fs::write(
            &config,
            format!(
                "plugins_dir = {:?}\n{routes}",
                plugins_dir().display().to_string()
            ),
        )
        .unwrap();
        let output = std::process::Command::new(switchyard_bin())
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--http", &addr, "--brokers", &bootstrap()])
            .env("SWITCHYARD_LOG", "info")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(
        !stderr.contains("route running"),
        "a route started before the port was found taken:\n{stderr}"
    );
    // The group never had a member.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let groups = consumer
        .fetch_group_list(Some(&group), Duration::from_secs(10))
        .unwrap();
    let members: usize = groups.groups().iter().map(|g| g.members().len()).sum();
    assert_eq!(members, 0);
    drop(taken);
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_switchyard_creates_take_the_partition_count_of_the_routes_file() {
    let topic = unique("partitioned");
    let routes = format!(
        "[kafka]\ntopic_partitions = 3\n\n[[routes]]\nname = \"in\"\n\
         source = {{ http = true }}\nsink = {{ topic = \"{topic}\" }}\n"
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);

    // Zero is refused, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[kafka]\ntopic_partitions = 0\n").unwrap();
    let (code, stderr) = run_to_exit(
        &["run", "--config", bad.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("`kafka.topic_partitions` must be at least 1 (got 0)"),
        "{stderr}"
    );
    sy.terminate(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_change_of_kafka_settings_is_said_to_wait_for_a_restart() {
    let (source, sink) = (unique("kafka-edit-in"), unique("kafka-edit-out"));
    create_topics(&[&source, &sink], 1).await;
    let routes = format!(
        "[[routes]]\nname = \"r\"\nsource = {{ topics = [\"{source}\"] }}\n\
         sink = {{ topic = \"{sink}\" }}\n"
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    let file = sy.routes_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[kafka.producer]\n\"linger.ms\" = \"7\"\n"),
    )
    .unwrap();
    wait_for_log(&sy, "`[kafka]` changed in the routes file");
    assert!(sy.is_running());
    sy.terminate(Duration::from_secs(30));
}
