//! Helpers for the end-to-end tests: a real Kafka broker (from
//! `KAFKA_BOOTSTRAP_SERVERS`), unique topics, producing and reading back
//! records, and switchyard processes started, probed and killed.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker under test. The test command starts an Apache Kafka broker
/// and sets this; running the tests without one is an error, not a skip.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect(
        "KAFKA_BOOTSTRAP_SERVERS is not set: run the tests with `make test`, which starts \
         Apache Kafka, or point it at a broker",
    )
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The switchyard binary: `SWITCHYARD_BIN`, else the workspace's debug build.
pub fn switchyard_bin() -> PathBuf {
    let path = std::env::var_os("SWITCHYARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/switchyard"));
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build -p switchyard` (the test command does)",
        path.display()
    );
    path
}

/// Built plugin components: `SWITCHYARD_TEST_PLUGINS`, else
/// `target/plugins` (where the test command builds them).
pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("SWITCHYARD_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/plugins"));
    assert!(
        dir.join("json-set.wasm").is_file(),
        "no built plugins in {}: build them with `switchyard plugin build` (the test command does)",
        dir.display()
    );
    dir
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Create topics with `partitions` partitions each.
pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produce `(key, value)` pairs in order and wait for every delivery.
/// Records are enqueued at once (`send_result`) and awaited together;
/// awaiting each `send` in turn would wait out `linger.ms` per record.
pub async fn produce(producer: &FutureProducer, topic: &str, records: &[(String, String)]) {
    let mut deliveries = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut record = FutureRecord::to(topic).key(k).payload(v);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
    }
    for delivery in deliveries {
        delivery.await.expect("producer alive").expect("delivered");
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.value.as_deref().expect("a value")).expect("JSON value")
    }
}

/// Read a whole topic from offset 0 until `expected` records have been
/// read (or more), or until `timeout` passes. Partitions are assigned
/// directly, with no consumer group, so nothing is committed.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Sum of the high watermarks of a topic's partitions: how many records
/// it holds.
pub fn topic_size(topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

/// The offset `group` has committed for `topic`/`partition`, if any.
pub fn committed_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// A free loopback port for a switchyard HTTP listener.
pub fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().to_string()
}

/// A switchyard process with its own routes file and log.
pub struct Switchyard {
    child: Option<Child>,
    pub http: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Switchyard {
    /// Write `routes` (a routes file whose `plugins_dir` is filled in) and
    /// start `switchyard run` against the test broker.
    pub fn start(routes: &str) -> Switchyard {
        Self::start_with(routes, &["--brokers", &bootstrap()])
    }

    /// Start with explicit extra arguments instead of the test broker.
    pub fn start_with(routes: &str, args: &[&str]) -> Switchyard {
        Self::start_custom(&plugins_dir(), routes, args, &[])
    }

    /// Start with plugins from `plugins`, extra arguments and environment.
    pub fn start_custom(
        plugins: &Path,
        routes: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Switchyard {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("routes.toml");
        let routes = format!(
            "plugins_dir = {:?}\n{routes}",
            plugins.display().to_string()
        );
        std::fs::File::create(&config)
            .and_then(|mut f| f.write_all(routes.as_bytes()))
            .expect("write routes");
        let http = free_addr();
        let log = dir.path().join("switchyard.log");
        let child = Command::new(switchyard_bin())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--http")
            .arg(&http)
            .args(args)
            .env(
                "SWITCHYARD_CACHE_DIR",
                workspace().join("target/test-cache"),
            )
            .env("SWITCHYARD_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn switchyard");
        Switchyard {
            child: Some(child),
            http,
            log,
            _dir: dir,
        }
    }

    /// GET /healthz: status code and body.
    pub fn health(&self) -> Option<(u16, serde_json::Value)> {
        let url = format!("http://{}/healthz", self.http);
        get_json(&url)
    }

    /// Wait until /healthz answers 200, or panic with the log.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "switchyard exited ({status}) before becoming healthy:\n{}",
                    self.log_text()
                );
            }
            if let Some((200, _)) = self.health() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "switchyard not healthy after {timeout:?}:\n{}",
            self.log_text()
        );
    }

    /// The routes file this process runs.
    pub fn routes_file(&self) -> PathBuf {
        self._dir.path().join("routes.toml")
    }

    /// Resident memory of the process, from `/proc`, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGKILL: no chance to drain or commit.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    /// SIGTERM, then wait up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "switchyard did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill command");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Run `switchyard` with `args` to completion: exit code and stderr.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr");
    let mut child = Command::new(switchyard_bin())
        .args(args)
        .env(
            "SWITCHYARD_CACHE_DIR",
            workspace().join("target/test-cache"),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn switchyard");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "switchyard {args:?} still running after {timeout:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

/// Send a request with an optional bearer token and body; the status and
/// the JSON body (`null` if it is not JSON). On a thread of its own, like
/// [`get_json`].
pub fn http_request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let (method, url, token) = (
        reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method"),
        url.to_owned(),
        token.map(str::to_owned),
    );
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let mut request = client.request(method, &url).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    })
    .join()
    .expect("HTTP thread")
}

/// GET `url`: the status and the body as text.
pub fn get_text(url: &str) -> (u16, String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let response = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        )
    })
    .join()
    .expect("HTTP thread")
}

/// `component` with a custom section appended: another version (another
/// content hash) of the same plugin, behaving the same.
pub fn plugin_variant(component: &[u8], variant: u32) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"switchyard-test-variant";
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(&variant.to_le_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// GET `url` and parse JSON, on a thread of its own so that it works from
/// async tests too (blocking clients must not run on a runtime's thread).
pub fn get_json(url: &str) -> Option<(u16, serde_json::Value)> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let response = client.get(&url).send().ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().ok()?))
    })
    .join()
    .ok()
    .flatten()
}

/// An HTTP answer: status, `Content-Type` and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body parsed as JSON (panics, with the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

/// One request over a real socket: `method url`, with `headers` and `body`.
pub async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    // A client per call: a client's connections belong to the runtime that
    // opened them, and each test has its own.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
    let mut request = client.request(method.clone(), url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        content_type,
        headers,
        text,
    }
}

/// A binary of this workspace, as the test command builds it
/// (`target/debug/NAME`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = workspace().join("target/debug").join(name);
    assert!(
        path.is_file(),
        "{} not found: build the workspace with `cargo build --workspace` (the test command does)",
        path.display()
    );
    path
}

/// A process a test runs beside switchyard (the mock CRM, the event
/// producer): its output in a log file, killed when dropped.
pub struct Service {
    child: Option<Child>,
    name: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join(format!("{bin}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(workspace_bin(bin))
            .args(args)
            .envs(env.iter().copied())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Service {
            child: Some(child),
            name: bin.to_owned(),
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for the process to exit; its status, or a panic with its log
    /// after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} still running after {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panic with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The control token of the mock CRMs [`MockCrm`] starts: fault injection
/// and reset need it.
pub const MOCK_CRM_CONTROL_TOKEN: &str = "e2e-mock-crm-control-token-0123";

/// The mock CRM (`mock-crm`) on a free port, its controls unlocked by
/// [`MOCK_CRM_CONTROL_TOKEN`].
pub struct MockCrm {
    pub service: Service,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl MockCrm {
    /// Start it and wait until it answers.
    pub fn start() -> MockCrm {
        Self::start_on(&free_addr())
    }

    pub fn start_on(addr: &str) -> MockCrm {
        let crm = MockCrm {
            service: Service::start(
                "mock-crm",
                &["--listen", addr],
                &[("MOCK_CRM_CONTROL_TOKEN", MOCK_CRM_CONTROL_TOKEN)],
            ),
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get_json(&format!("{}/_mock/stats", crm.url)).is_none() {
            assert!(
                Instant::now() < deadline,
                "mock CRM not answering:\n{}",
                crm.service.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        crm
    }

    /// Every record of `collection` (`users`, `trips`), by `Id`.
    pub fn all(&self, collection: &str) -> BTreeMap<String, serde_json::Value> {
        self.try_all(collection)
            .unwrap_or_else(|| panic!("GET /{collection} did not answer 200"))
    }

    /// [`MockCrm::all`], or `None` while the CRM does not answer 200 (a
    /// fault injected by the test).
    pub fn try_all(&self, collection: &str) -> Option<BTreeMap<String, serde_json::Value>> {
        let (status, body) = get_json(&format!("{}/{collection}", self.url))?;
        if status != 200 {
            return None;
        }
        Some(
            body.as_array()
                .expect("an array")
                .iter()
                .map(|r| (r["Id"].as_str().expect("an Id").to_owned(), r.clone()))
                .collect(),
        )
    }

    /// `GET /_mock/stats`.
    pub fn stats(&self) -> serde_json::Value {
        get_json(&format!("{}/_mock/stats", self.url))
            .expect("stats")
            .1
    }

    /// Answer every CRM request with `status` for `for_ms` milliseconds.
    pub fn fail_for(&self, status: u16, for_ms: u64) {
        let body = serde_json::json!({ "status": status, "for_ms": for_ms });
        let url = format!("{}/_mock/faults", self.url);
        let (code, reply) = std::thread::spawn(move || {
            let response = reqwest::blocking::Client::new()
                .post(&url)
                .bearer_auth(MOCK_CRM_CONTROL_TOKEN)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        })
        .join()
        .expect("HTTP thread");
        assert_eq!(code, 200, "{reply}");
    }
}

/// POST `body` as JSON: the status and the JSON answer (`null` if none).
pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (url, body) = (url.to_owned(), body.clone());
    std::thread::spawn(move || {
        let response = reqwest::blocking::Client::new()
            .post(&url)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(serde_json::Value::Null))
    })
    .join()
    .expect("HTTP thread")
}
