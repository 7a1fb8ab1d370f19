//! The streams API over real sockets on real Kafka: every status code with
//! its exact text and `Content-Type: application/json; charset=utf-8`; the
//! single-writer lock (423); positions that move only on ACK, per event
//! name; and two switchyard instances on one cluster giving the same
//! answers, also after one of them restarts.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::*;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// `demo:s3cret-password`, base64.
const AUTH: &str = "Basic ZGVtbzpzM2NyZXQtcGFzc3dvcmQ=";

/// A routes file with the streams API on topics of its own (`tag`).
fn routes(tag: &str) -> String {
    format!(
        r#"
[streams_api]
credentials = [
  {{ user = "other", password = "another-password" }},
  {{ user = "demo", password = {{ "$env" = "STREAMS_PASSWORD" }} }},
]
topic_prefix = "{tag}.stream."
owners_topic = "{tag}.owners"
positions_topic = "{tag}.positions"
max_body_bytes = 2048
"#
    )
}

fn start(routes: &str) -> Switchyard {
    let mut sy = Switchyard::start_custom(
        &plugins_dir(),
        routes,
        &["--brokers", &bootstrap()],
        &[("STREAMS_PASSWORD", "s3cret-password")],
    );
    sy.wait_healthy(Duration::from_secs(60));
    sy
}

fn event(name: &str, n: u32) -> String {
    json!({
        "event": {"name": name, "version": 1},
        "system": {"id": "alv123", "name": "codello alvine", "time": "2017-09-06 13:58:12", "timezone": "Europe/Berlin"},
        "trigger": {"type": "system", "name": "/path/to/script.php"},
        "payload": {"n": n},
    })
    .to_string()
}

struct Client {
    base: String,
}

impl Client {
    fn of(sy: &Switchyard) -> Client {
        Client {
            base: format!("http://{}/api/v1/streams", sy.http),
        }
    }

    async fn append(&self, stream: &str, producer: &str, body: &str) -> Reply {
        let reply = call(
            "POST",
            &format!("{}/{stream}/events", self.base),
            &[
                ("Authorization", AUTH),
                ("Content-Type", "application/json; charset=utf-8"),
                ("Accept", "application/json; charset=utf-8"),
                ("X-Producer-ID", producer),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.content_type, CONTENT_TYPE, "{reply:?}");
        reply
    }

    async fn read(&self, stream: &str, consumer: &str, query: &str) -> Reply {
        let reply = call(
            "GET",
            &format!("{}/{stream}/events{query}", self.base),
            &[
                ("Authorization", AUTH),
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Consumer-ID", consumer),
            ],
            b"",
        )
        .await;
        assert_eq!(reply.content_type, CONTENT_TYPE, "{reply:?}");
        reply
    }

    /// The `payload.n` of the next events named `name`.
    async fn next(&self, stream: &str, consumer: &str, name: &str, limit: usize) -> Vec<Value> {
        let reply = self
            .read(
                stream,
                consumer,
                &format!("?eventName={name}&limit={limit}"),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json().as_array().unwrap().clone()
    }

    async fn ack(&self, stream: &str, consumer: &str, id: &str, body: &str) -> Reply {
        let reply = call(
            "POST",
            &format!("{}/{stream}/events/{id}", self.base),
            &[
                ("Authorization", AUTH),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Consumer-ID", consumer),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.content_type, CONTENT_TYPE, "{reply:?}");
        reply
    }
}

fn ns(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["payload"]["n"].as_u64().unwrap())
        .collect()
}

fn id_of(event: &Value) -> String {
    event["eventId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_of_the_api_with_its_exact_text() {
    let tag = unique("streams-codes");
    let sy = start(&routes(&tag));
    let api = Client::of(&sy);

    // 200 with the new event's id, a UUID.
    let created = api.append("orders", "p1", &event("OrderPlaced", 1)).await;
    assert_eq!(created.status, 200, "{created:?}");
    let id = created.json().as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.as_bytes()[14], b'8', "a version 8 UUID: {id}");
    // The event is on the stream's topic, as posted.
    let records = read_topic(&format!("{tag}.stream.orders"), 1, Duration::from_secs(20));
    assert_eq!(
        records[0].json(),
        serde_json::from_str::<Value>(&event("OrderPlaced", 1)).unwrap()
    );

    // 423 for a second producer.
    let locked = api.append("orders", "p2", &event("OrderPlaced", 2)).await;
    assert_eq!(
        (locked.status, locked.json()),
        (423, json!("Locked - Second writers not allowed"))
    );

    // 401: no credentials, a wrong password, another scheme, garbage.
    for auth in [
        None,
        Some("Basic ZGVtbzp3cm9uZw=="),
        Some("Bearer abc"),
        Some("Basic !!!"),
    ] {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Producer-ID", "p1"),
        ];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let url = format!("{}/orders/events", api.base);
        let reply = call("POST", &url, &headers, event("OrderPlaced", 3).as_bytes()).await;
        assert_eq!(
            (reply.status, reply.json()),
            (401, json!("Unauthorized")),
            "{auth:?}"
        );
        assert_eq!(reply.content_type, CONTENT_TYPE);
        let read = call("GET", &format!("{url}?eventName=A&limit=1"), &headers, b"").await;
        assert_eq!((read.status, read.json()), (401, json!("Unauthorized")));
        assert!(
            read.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm="),
            "{read:?}"
        );
    }
    // The second configured user is accepted too (`other`).
    let other = call(
        "GET",
        &format!("{}/orders/events?eventName=OrderPlaced&limit=1", api.base),
        &[
            ("Authorization", "Basic b3RoZXI6YW5vdGhlci1wYXNzd29yZA=="),
            ("X-Consumer-ID", "c9"),
        ],
        b"",
    )
    .await;
    assert_eq!(other.status, 200, "{other:?}");

    // 400s of an append, each naming what is wrong.
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("orders", "", event("A", 1), "Bad Request - header X-Producer-ID must be 1 to 200 visible ASCII characters"),
        ("orders", "p1", "{\"event\":".into(), "Bad Request - malformed JSON: EOF while parsing a value at line 1 column 9"),
        ("orders", "p1", r#"{"event":{"name":"A","version":1}}"#.into(), "Bad Request - malformed JSON: missing field `system` at line 1 column 34"),
        ("orders", "p1", event("", 1), "Bad Request - event.name must not be empty nor start or end with white space"),
        ("orders", "p1", event(" A", 1), "Bad Request - event.name must not be empty nor start or end with white space"),
        ("bad name!", "p1", event("A", 1), "Bad Request - stream name must be 1 to 200 characters of A-Z, a-z, 0-9, '.', '_', '-' (got \"bad name!\")"),
    ];
    for (stream, producer, body, expected) in cases {
        let reply = api
            .append(&stream.replace(' ', "%20"), producer, &body)
            .await;
        assert_eq!(
            (reply.status, reply.json()),
            (400, json!(expected)),
            "{body}"
        );
    }
    let no_producer = call(
        "POST",
        &format!("{}/orders/events", api.base),
        &[
            ("Authorization", AUTH),
            ("Content-Type", "application/json"),
        ],
        event("A", 1).as_bytes(),
    )
    .await;
    assert_eq!(
        (no_producer.status, no_producer.json()),
        (400, json!("Bad Request - missing header X-Producer-ID"))
    );
    // 413 and 415.
    let big = event("A", 1).replace("\"n\":1", &format!("\"n\":\"{}\"", "x".repeat(3000)));
    let too_large = api.append("orders", "p1", &big).await;
    assert_eq!(
        (too_large.status, too_large.json()),
        (
            413,
            json!("Payload Too Large - the body is larger than the limit of 2048 bytes")
        )
    );
    let form = call(
        "POST",
        &format!("{}/orders/events", api.base),
        &[
            ("Authorization", AUTH),
            ("Content-Type", "text/plain"),
            ("X-Producer-ID", "p1"),
        ],
        event("A", 1).as_bytes(),
    )
    .await;
    assert_eq!(
        (form.status, form.json()),
        (
            415,
            json!(
                "Unsupported Media Type - Content-Type must be application/json (got text/plain)"
            )
        )
    );
    assert_eq!(form.content_type, CONTENT_TYPE);

    // Reads: 200, 404, 400s.
    let events = api.next("orders", "c1", "OrderPlaced", 10).await;
    assert_eq!(ns(&events), [1]);
    assert_eq!(id_of(&events[0]), id);
    let unknown = api
        .read("nope", "c1", "?eventName=OrderPlaced&limit=1")
        .await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!("Not Found - no stream named \"nope\""))
    );
    for (query, expected) in [
        ("?limit=1", "Bad Request - missing parameter eventName"),
        (
            "?eventName=OrderPlaced",
            "Bad Request - missing parameter limit",
        ),
        (
            "?eventName=&limit=1",
            "Bad Request - eventName must not be empty",
        ),
        (
            "?eventName=OrderPlaced&limit=ten",
            "Bad Request - limit must be a whole number from 1 to 1000 (got \"ten\")",
        ),
        (
            "?eventName=OrderPlaced&limit=0",
            "Bad Request - limit must be a whole number from 1 to 1000 (got \"0\")",
        ),
    ] {
        let reply = api.read("orders", "c1", query).await;
        assert_eq!(
            (reply.status, reply.json()),
            (400, json!(expected)),
            "{query}"
        );
    }
    let no_consumer = call(
        "GET",
        &format!("{}/orders/events?eventName=OrderPlaced&limit=1", api.base),
        &[("Authorization", AUTH)],
        b"",
    )
    .await;
    assert_eq!(
        (no_consumer.status, no_consumer.json()),
        (400, json!("Bad Request - missing header X-Consumer-ID"))
    );

    // Acknowledgements: 200 "OK", 404 "Not Found", 400s, 415.
    let ok = api.ack("orders", "c1", &id, "action=ACK").await;
    assert_eq!((ok.status, ok.json()), (200, json!("OK")));
    let unknown_stream = api.ack("nope", "c1", &id, "action=ACK").await;
    assert_eq!(
        (unknown_stream.status, unknown_stream.json()),
        (404, json!("Not Found"))
    );
    let past_the_end = id.replace("-000000000000", "-000000000063");
    let unknown_event = api.ack("orders", "c1", &past_the_end, "action=ACK").await;
    assert_eq!(
        (unknown_event.status, unknown_event.json()),
        (404, json!("Not Found"))
    );
    let not_ours = api
        .ack(
            "orders",
            "c1",
            "123e4567-e89b-42d3-a456-426614174000",
            "action=ACK",
        )
        .await;
    assert_eq!(
        (not_ours.status, not_ours.json()),
        (404, json!("Not Found"))
    );
    let not_a_uuid = api.ack("orders", "c1", "42", "action=ACK").await;
    assert_eq!(
        (not_a_uuid.status, not_a_uuid.json()),
        (400, json!("Bad Request - event id \"42\" is not a UUID"))
    );
    let nack = api.ack("orders", "c1", &id, "action=NACK").await;
    assert_eq!(
        (nack.status, nack.json()),
        (
            400,
            json!("Bad Request - action must be ACK (got \"NACK\")")
        )
    );
    let empty = api.ack("orders", "c1", &id, "").await;
    assert_eq!(
        (empty.status, empty.json()),
        (400, json!("Bad Request - missing form field action=ACK"))
    );
    let json_ack = call(
        "POST",
        &format!("{}/orders/events/{id}", api.base),
        &[
            ("Authorization", AUTH),
            ("Content-Type", "application/json"),
            ("X-Consumer-ID", "c1"),
        ],
        br#"{"action":"ACK"}"#,
    )
    .await;
    assert_eq!((json_ack.status, json_ack.json()), (415, json!("Unsupported Media Type - Content-Type must be application/x-www-form-urlencoded (got application/json)")));

    // A name whose topic collides with another stream's: 409, and the
    // stream stays free.
    assert_eq!(api.append("a.b", "p1", &event("A", 1)).await.status, 200);
    let collides = api.append("a_b", "p1", &event("A", 1)).await;
    assert_eq!(
        (collides.status, collides.json()),
        (
            409,
            json!("Conflict - stream \"a_b\" would collide with stream \"a.b\": Kafka treats '.' and '_' in topic names as the same")
        )
    );
    assert!(!topic_exists(&format!("{tag}.stream.a_b")));
    let unknown = api.read("a_b", "c1", "?eventName=A&limit=1").await;
    assert_eq!(
        unknown.status, 404,
        "a refused name leaves no stream: {unknown:?}"
    );
    let not_utf8 = api.read("%FF", "c1", "?eventName=A&limit=1").await;
    assert_eq!(not_utf8.status, 400, "{not_utf8:?}");
    let text = not_utf8.json().as_str().unwrap().to_owned();
    assert!(
        text.starts_with("Bad Request - the path is malformed"),
        "{text}"
    );

    // Other methods and paths of the API: JSON too.
    let delete = call(
        "DELETE",
        &format!("{}/orders/events", api.base),
        &[("Authorization", AUTH)],
        b"",
    )
    .await;
    assert_eq!(
        (delete.status, delete.json()),
        (405, json!("Method Not Allowed"))
    );
    assert_eq!(delete.content_type, CONTENT_TYPE);
    let elsewhere = call(
        "GET",
        &format!("{}/orders", api.base),
        &[("Authorization", AUTH)],
        b"",
    )
    .await;
    assert_eq!(
        (elsewhere.status, elsewhere.json()),
        (404, json!("Not Found"))
    );
    assert_eq!(elsewhere.content_type, CONTENT_TYPE);

    // Credentials never reach the log.
    let log = sy.log_text();
    assert!(
        !log.contains("s3cret-password") && !log.contains("another-password"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn positions_move_only_on_ack_and_per_event_name() {
    let tag = unique("streams-positions");
    let sy = start(&routes(&tag));
    let api = Client::of(&sy);
    for n in 1..=6 {
        let name = if n % 2 == 1 {
            "OrderPlaced"
        } else {
            "OrderShipped"
        };
        let reply = api.append("shop", "p1", &event(name, n)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // Reading does not move the position.
    let placed = api.next("shop", "c1", "OrderPlaced", 10).await;
    assert_eq!(ns(&placed), [1, 3, 5]);
    assert_eq!(
        ns(&api.next("shop", "c1", "OrderPlaced", 10).await),
        [1, 3, 5]
    );
    assert_eq!(ns(&api.next("shop", "c1", "OrderPlaced", 2).await), [1, 3]);
    // ACK moves it past the event, for that name only and that consumer only.
    assert_eq!(
        api.ack("shop", "c1", &id_of(&placed[1]), "action=ACK")
            .await
            .status,
        200
    );
    assert_eq!(ns(&api.next("shop", "c1", "OrderPlaced", 10).await), [5]);
    assert_eq!(
        ns(&api.next("shop", "c1", "OrderShipped", 10).await),
        [2, 4, 6]
    );
    assert_eq!(
        ns(&api.next("shop", "c2", "OrderPlaced", 10).await),
        [1, 3, 5]
    );
    // An id of one name acknowledges for its own name.
    let shipped = api.next("shop", "c1", "OrderShipped", 10).await;
    assert_eq!(
        api.ack("shop", "c1", &id_of(&shipped[0]), "action=ACK")
            .await
            .status,
        200
    );
    assert_eq!(
        ns(&api.next("shop", "c1", "OrderShipped", 10).await),
        [4, 6]
    );
    assert_eq!(ns(&api.next("shop", "c1", "OrderPlaced", 10).await), [5]);
    // After the last, nothing; a new event shows up.
    assert_eq!(
        api.ack("shop", "c1", &id_of(&placed[2]), "action=ACK")
            .await
            .status,
        200
    );
    assert!(api.next("shop", "c1", "OrderPlaced", 10).await.is_empty());
    assert_eq!(
        api.append("shop", "p1", &event("OrderPlaced", 7))
            .await
            .status,
        200
    );
    assert_eq!(ns(&api.next("shop", "c1", "OrderPlaced", 10).await), [7]);
    // An unknown name in a known stream: an empty list.
    assert!(api.next("shop", "c1", "Nothing", 10).await.is_empty());
    // The position is a record on the compacted positions topic.
    assert!(topic_size(&format!("{tag}.positions")) >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_agree_on_owners_and_positions_across_a_restart() {
    let tag = unique("streams-shared");
    let config = routes(&tag);
    let mut a = start(&config);
    let b = start(&config);
    let (on_a, on_b) = (Client::of(&a), Client::of(&b));

    // p1 owns `ledger` through A; B refuses p2 and accepts p1.
    assert_eq!(
        on_a.append("ledger", "p1", &event("Booked", 1))
            .await
            .status,
        200
    );
    let locked = on_b.append("ledger", "p2", &event("Booked", 2)).await;
    assert_eq!(locked.status, 423, "{locked:?}");
    assert_eq!(
        on_b.append("ledger", "p1", &event("Booked", 2))
            .await
            .status,
        200
    );

    // A race for a new stream: one producer per instance, at once. One
    // wins on both instances.
    let first = event("E", 1);
    let (x, y) = tokio::join!(
        on_a.append("race", "px", &first),
        on_b.append("race", "py", &first),
    );
    let mut statuses = [x.status, y.status];
    statuses.sort();
    assert_eq!(statuses, [200, 423], "{x:?} {y:?}");
    let winner = if x.status == 200 { "px" } else { "py" };
    let loser = if winner == "px" { "py" } else { "px" };
    for api in [&on_a, &on_b] {
        assert_eq!(api.append("race", winner, &event("E", 2)).await.status, 200);
        assert_eq!(api.append("race", loser, &event("E", 2)).await.status, 423);
    }

    // A position acknowledged on A is the position on B, at once.
    let events = on_a.next("ledger", "c1", "Booked", 10).await;
    assert_eq!(ns(&events), [1, 2]);
    assert_eq!(
        on_a.ack("ledger", "c1", &id_of(&events[0]), "action=ACK")
            .await
            .status,
        200
    );
    assert_eq!(ns(&on_b.next("ledger", "c1", "Booked", 10).await), [2]);
    // B knows the stream A created even for a read before any write of its
    // own, and ids are the same on both.
    assert_eq!(
        id_of(&on_b.next("ledger", "c2", "Booked", 1).await[0]),
        id_of(&events[0])
    );

    // Restart A: nothing is forgotten.
    a.terminate(Duration::from_secs(30));
    let a = start(&config);
    let on_a = Client::of(&a);
    assert_eq!(
        on_a.append("ledger", "p2", &event("Booked", 3))
            .await
            .status,
        423
    );
    assert_eq!(
        on_a.append("ledger", "p1", &event("Booked", 3))
            .await
            .status,
        200
    );
    assert_eq!(ns(&on_a.next("ledger", "c1", "Booked", 10).await), [2, 3]);
    // An ACK on B after the restart is seen by the new A.
    let next = on_b.next("ledger", "c1", "Booked", 10).await;
    assert_eq!(
        on_b.ack("ledger", "c1", &id_of(&next[0]), "action=ACK")
            .await
            .status,
        200
    );
    assert_eq!(ns(&on_a.next("ledger", "c1", "Booked", 10).await), [3]);
    assert_eq!(ns(&on_b.next("ledger", "c1", "Booked", 10).await), [3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_store_is_a_500_naming_the_problem() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;

    let tag = unique("streams-broken");
    let sy = start(&routes(&tag));
    let api = Client::of(&sy);
    assert_eq!(api.append("s", "p1", &event("A", 1)).await.status, 200);
    assert_eq!(api.next("s", "c1", "A", 1).await.len(), 1);
    // An operator deletes the positions topic under the running API.
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let deleted = admin
        .delete_topics(&[&format!("{tag}.positions")], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    // Deleting a topic completes on the brokers after the answer: until
    // then reads still find it. Once it is gone, every read is a 500.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let broken = loop {
        let reply = api.read("s", "c1", "?eventName=A&limit=1").await;
        if reply.status != 200 || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(broken.status, 500, "{broken:?}");
    let text = broken.json().as_str().unwrap().to_owned();
    assert!(text.starts_with("Internal Server Error - "), "{text}");
    assert!(
        text.contains(&format!("{tag}.positions"))
            || text.contains("UnknownTopic")
            || text.contains("UnknownPartition"),
        "{text}"
    );
}

/// Whether the broker has a topic named `topic` (from the list of all,
/// which never creates one).
fn topic_exists(topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata.topics().iter().any(|t| t.name() == topic)
}

const FULL: &str = "Forbidden - no new stream: this server keeps at most 2 streams";

#[tokio::test(flavor = "multi_thread")]
async fn new_streams_beyond_the_limit_are_refused_and_the_others_keep_working() {
    let tag = unique("streams-cap");
    let config = format!("{}max_streams = 2\n", routes(&tag));
    let a = start(&config);
    let b = start(&config);
    let (on_a, on_b) = (Client::of(&a), Client::of(&b));
    // Two streams, through two instances.
    assert_eq!(on_a.append("one", "p1", &event("A", 1)).await.status, 200);
    assert_eq!(on_b.append("two", "p2", &event("A", 1)).await.status, 200);
    // A third is refused on both, saying why; no topic is made for it.
    for api in [&on_a, &on_b] {
        let refused = api.append("three", "p3", &event("A", 1)).await;
        assert_eq!((refused.status, refused.json()), (403, json!(FULL)));
    }
    assert!(!topic_exists(&format!("{tag}.stream.three")));
    let unknown = on_a.read("three", "c1", "?eventName=A&limit=1").await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    // The streams there are keep working: their owners append, others are
    // still locked out, consumers read.
    assert_eq!(on_b.append("one", "p1", &event("A", 2)).await.status, 200);
    assert_eq!(on_a.append("two", "p9", &event("A", 2)).await.status, 423);
    assert_eq!(ns(&on_b.next("one", "c1", "A", 10).await), [1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_new_streams_on_one_instance_never_pass_the_limit() {
    let tag = unique("streams-cap-race");
    let sy = start(&format!("{}max_streams = 2\n", routes(&tag)));
    let api = Client::of(&sy);
    let attempts = (0..6).map(|i| {
        let api = &api;
        async move {
            let reply = api
                .append(&format!("s{i}"), &format!("p{i}"), &event("A", 1))
                .await;
            reply.status
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort();
    assert_eq!(statuses, [200, 200, 403, 403, 403, 403]);
}
