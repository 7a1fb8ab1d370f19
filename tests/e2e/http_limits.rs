//! Slow and excess clients over real sockets, on both listeners (the main
//! one with the admin API, and the public one with the event APIs): a
//! client that sends half a request head, or dribbles a body, is
//! disconnected once `[http]`'s timeouts pass (a body with a 408 saying
//! why); connections beyond `max_connections` wait for a free slot instead
//! of being served or refused; a well-behaved client is answered at once
//! while the slow ones hang; and SIGTERM is not held up by them.

use std::time::{Duration, Instant};

use switchyard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `demo:limits-password`, base64.
const STREAMS_AUTH: &str = "Basic ZGVtbzpsaW1pdHMtcGFzc3dvcmQ=";

/// A switchyard with the events and streams APIs on a public listener and
/// `http` as the `[http]` limits.
async fn start(http: &str) -> (Switchyard, String) {
    let topic = unique("limits-events");
    create_topics(&[&topic], 1).await;
    let public = free_addr();
    let routes = format!(
        r#"
[http]
public = "{public}"
{http}

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
credentials = [{{ user = "demo", password = "limits-password" }}]
topic_prefix = "{tag}.stream."
owners_topic = "{tag}.owners"
positions_topic = "{tag}.positions"
"#,
        tag = unique("limits"),
    );
    let mut sy = Switchyard::start(&routes);
    sy.wait_healthy(Duration::from_secs(60));
    (sy, public)
}

/// A connection that sent the start of a request head and then nothing.
async fn half_head(addr: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        .await
        .expect("half a head");
    socket
}

/// Whether the server has closed `socket` (EOF or reset) without waiting.
fn closed(socket: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match socket.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Read until the server closes `socket`: what it sent, or a panic after
/// `within`.
async fn until_closed(mut socket: TcpStream, within: Duration, what: &str) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: still open after {within:?}"),
        }
    }
}

/// A request whose head is complete and whose body (of `length` bytes,
/// declared) comes one byte every 300 ms: the answer, once the server
/// closes the connection.
async fn dribble(addr: String, head: String, length: usize, within: Duration) -> String {
    let socket = TcpStream::connect(&addr).await.expect("connect");
    let (mut reader, mut writer) = socket.into_split();
    let request = format!("{head}Content-Length: {length}\r\n\r\n");
    writer.write_all(request.as_bytes()).await.expect("head");
    let writing = tokio::spawn(async move {
        for _ in 0..length {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("a dribbled body to {addr} still being read after {within:?}"),
        }
    }
    writing.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_while_well_behaved_ones_are_served() {
    let (sy, public) =
        start("header_read_timeout_ms = 6000\nbody_read_timeout_ms = 8000\nmax_connections = 400")
            .await;
    let started = Instant::now();

    // Many half-sent heads on both listeners.
    let mut slow = Vec::new();
    for _ in 0..150 {
        slow.push(half_head(&public).await);
    }
    for _ in 0..50 {
        slow.push(half_head(&sy.http).await);
    }
    // Bodies dribbled a byte at a time, to each API.
    let within = Duration::from_secs(60);
    let mut dribblers = Vec::new();
    for _ in 0..5 {
        let events = "POST /events HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n";
        dribblers.push(tokio::spawn(dribble(
            public.clone(),
            events.into(),
            1000,
            within,
        )));
        let append = format!(
            "POST /api/v1/streams/slow/events HTTP/1.1\r\nHost: slow\r\n\
             Authorization: {STREAMS_AUTH}\r\nX-Producer-ID: p1\r\n\
             Content-Type: application/json\r\n"
        );
        dribblers.push(tokio::spawn(dribble(public.clone(), append, 1000, within)));
    }

    // Meanwhile a well-behaved client is answered on either listener, and
    // the slow ones are still waiting.
    let reply = call("GET", &format!("http://{public}/events"), &[], b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let health = call("GET", &format!("http://{}/healthz", sy.http), &[], b"").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "setting up took longer than the header timeout ({:?}): the next check would mean nothing",
        started.elapsed()
    );
    let open = slow.iter().filter(|s| !closed(s)).count();
    assert_eq!(open, slow.len(), "slow clients closed before their timeout");

    // Then every slow head is cut off once the header timeout has passed
    // (6 s, with a wide margin for a busy machine).
    for (i, socket) in slow.into_iter().enumerate() {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        let sent = until_closed(socket, left, &format!("half-head connection {i}")).await;
        assert!(
            sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
            "half a head answered {sent:?}"
        );
    }
    // And every dribbled body with a 408 naming the limit, in each API's
    // own style.
    for (i, dribbler) in dribblers.into_iter().enumerate() {
        let answer = dribbler.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout"),
            "dribbler {i}: {answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer:?}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        if i % 2 == 0 {
            assert_eq!(
                body,
                r#"{"error":"the request body did not arrive within 8 s (`http.body_read_timeout_ms`)"}"#
            );
        } else {
            assert_eq!(
                body,
                r#""Request Timeout - the request body did not arrive within 8 s (`http.body_read_timeout_ms`)""#
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    // Nothing of it reached the stream: it was never written.
    let read = call(
        "GET",
        &format!("http://{public}/api/v1/streams/slow/events?eventName=A&limit=1"),
        &[("Authorization", STREAMS_AUTH), ("X-Consumer-ID", "c1")],
        b"",
    )
    .await;
    assert_eq!(read.status, 404, "{read:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let (sy, public) = start("header_read_timeout_ms = 6000\nmax_connections = 4").await;
    // Every slot of the public listener taken by a slow client.
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(half_head(&public).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let waiting = tokio::spawn({
        let url = format!("http://{public}/events");
        async move { call("GET", &url, &[], b"").await }
    });
    // The limit is per listener: the main one still answers at once.
    let health = call("GET", &format!("http://{}/healthz", sy.http), &[], b"").await;
    assert_eq!(health.status, 200, "{health:?}");
    // The fifth client on the public listener is neither answered nor
    // refused while the slots are held ...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "answered while every slot was held ({:?} after asking)",
        asked.elapsed()
    );
    // ... and is served once the slow clients' header timeout frees them.
    let reply = tokio::time::timeout(Duration::from_secs(40), waiting)
        .await
        .expect("still waiting 40 s after the slots were freed")
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    for socket in slow {
        until_closed(socket, Duration::from_secs(5), "a slow client").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_not_held_up_by_slow_clients() {
    let (mut sy, public) =
        start("header_read_timeout_ms = 3000\nbody_read_timeout_ms = 3000").await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(half_head(&public).await);
        slow.push(half_head(&sy.http).await);
    }
    let dribbling = tokio::spawn(dribble(
        public.clone(),
        "POST /events HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n".into(),
        1000,
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = sy.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", sy.log_text());
    assert!(
        sy.log_text().contains("switchyard stopped"),
        "{}",
        sy.log_text()
    );
    dribbling.abort();
    drop(slow);
}
