//! Erasure of a data subject on Apache Kafka, with the shipped routes:
//! events of two users go in through the ingest API and the events API;
//! one user is erased through one switchyard instance; then every topic,
//! read from offset 0 with a plain consumer, holds no personal value of
//! that user in plaintext; the other user's data still decrypts, on a
//! second instance that shares the key store and was restarted; the
//! erased user's records are gone from both instances' memory; a tampered
//! token is refused; and a missing or bad master key stops switchyard.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::*;

use crate::platform::{self, Topics, ADMIN_TOKEN, INGEST_TOKEN};

/// Internal events of one user, as the contracts have them: registration,
/// a trip with its payment, and a trip end the CRM and the public stream
/// cannot map (no `endedAt`), which goes to both dead-letter topics.
fn life_of(user: &str, first: &str, last: &str, place: &str, n: u32) -> Vec<Value> {
    let event = |ids: &str, i: u32, kind: &str, payload: Value| {
        json!({
            "eventId": format!("{ids}-e{i}"), "version": 1,
            "occurredAt": format!("2026-01-01T09:0{n}:{i:02}Z"),
            "userId": user, "type": kind, "payload": payload,
        })
    };
    let email = format!(
        "{}.{}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let phone = format!("+3706000{n}{n}{n}{n}");
    // Ids of events, trips and payments do not name the user.
    let ids = unique("evt");
    let trip = format!("{ids}-t1");
    vec![
        event(
            &ids,
            1,
            "UserRegistered",
            json!({"firstName": first, "lastName": last, "email": email, "phone": phone}),
        ),
        event(
            &ids,
            2,
            "TripStarted",
            json!({"tripId": trip, "tripType": "Tram", "from": format!("{place} Gate"), "startedAt": format!("2026-01-01T09:0{n}:02Z")}),
        ),
        event(
            &ids,
            3,
            "TripEnded",
            json!({"tripId": trip, "tripType": "Tram", "to": format!("{place} Square"), "endedAt": format!("2026-01-01T09:0{n}:03Z"), "price": 1.2, "currency": "EUR", "distanceKm": 3.5}),
        ),
        event(
            &ids,
            4,
            "PaymentCaptured",
            json!({"paymentId": format!("{ids}-p1"), "tripId": trip, "amount": 1.2, "currency": "EUR", "method": "Card"}),
        ),
        event(
            &ids,
            5,
            "TripEnded",
            json!({"tripId": format!("{ids}-t2"), "tripType": "Bus", "to": format!("{place} Hill"), "price": 2.0, "currency": "EUR", "distanceKm": 1.0}),
        ),
    ]
}

async fn ingest(sy: &Switchyard, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let reply = call(
        "POST",
        &format!("http://{}/ingest/mobility-ingest", sy.http),
        &[
            ("Authorization", &format!("Bearer {INGEST_TOKEN}")),
            ("Content-Type", "application/x-ndjson"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["accepted"], events.len(), "{reply:?}");
}

async fn post_event(sy: &Switchyard, user: &str) {
    let reply = call(
        "POST",
        &format!("http://{}/events", sy.http),
        &[("Content-Type", "application/json")],
        json!({"userId": user, "type": "login"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
}

/// `GET /events?limit=1000`: the users of the events each instance holds.
async fn recent_users(sy: &Switchyard) -> Vec<String> {
    let reply = call(
        "GET",
        &format!("http://{}/events?limit=1000", sy.http),
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["userId"].as_str().unwrap_or("<not a string>").to_owned())
        .collect()
}

/// Wait up to a minute for `done` (an expression that may `.await`).
macro_rules! wait_until {
    ($what:expr, $sy:expr, $done:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        while !$done {
            assert!(Instant::now() < deadline, "{}:\n{}", $what, $sy.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

/// A second instance: it replays the internal topic through `decrypt` into
/// the buffer its `GET /events` shows (a new consumer group each start),
/// with the tampered-token refusals going to `dlq`.
fn replayer(t: &Topics, dlq: &str) -> Switchyard {
    let shipped = platform::shipped_routes(t, &[], 60_000);
    let routes = format!(
        r#"{shipped}
[events_api]
ingest_route = "unused"
recent_buffer = "replayed"

[[routes]]
name = "unused"
source = {{ http = true }}
sink = {{ topic = "{unused}" }}

[[routes]]
name = "replay"
source = {{ topics = ["{internal}"], group = "{group}" }}
chain = [{{ plugin = "decrypt", config = {{ fields = ["/userId", "/payload/firstName", "/payload/lastName", "/payload/email", "/payload/phone", "/payload/from", "/payload/to"] }} }}]
sink = {{ buffer = "replayed", capacity = 1000 }}
dead_letter = {{ topic = "{dlq}" }}
"#,
        unused = t.user_events,
        internal = t.internal,
        group = unique("replay"),
    );
    platform::start(&routes, None)
}

async fn subject_keys(sy: &Switchyard, user: &str) -> Value {
    let reply = call(
        "GET",
        &format!("http://{}/admin/subjects/{user}", sy.http),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_subject_is_unreadable_everywhere_and_the_other_still_decrypts() {
    let t = Topics::create("gdpr").await;
    let replay_dlq = unique("gdpr-replay-dlq");
    create_topics(&[&replay_dlq], 1).await;
    let crm = MockCrm::start();
    let routes = platform::shipped_routes(
        &t,
        &[
            "mobility-ingest",
            "crm-sync",
            "public-stream",
            "events-ingest",
            "events-recent",
        ],
        60_000,
    );
    let a = platform::start(&routes, Some(&crm));

    let (gone, kept) = (unique("erasable"), unique("kept"));
    let gone_events = life_of(&gone, "Erasmus", "Forgetme", "Oblivion", 1);
    let kept_events = life_of(&kept, "Keeper", "Remainder", "Memory", 2);
    ingest(&a, &gone_events).await;
    ingest(&a, &kept_events).await;
    post_event(&a, &gone).await;
    post_event(&a, &kept).await;

    // Everything flowed: the CRM has both users, each route dead-lettered
    // the two unmappable trip ends, GET /events shows both (decrypted).
    wait_until!("both users in the CRM", &a, {
        crm.try_all("users")
            .is_some_and(|u| u.contains_key(&gone) && u.contains_key(&kept))
    });
    wait_until!("dead letters", &a, {
        topic_size(&t.crm_dlq) == 2 && topic_size(&t.public_dlq) == 2
    });
    wait_until!("both users in GET /events", &a, {
        let users = recent_users(&a).await;
        users.contains(&gone) && users.contains(&kept)
    });

    // A second instance on the same key store decrypts both users' events.
    let b = replayer(&t, &replay_dlq);
    wait_until!("the replay holds both users", &b, {
        let users = recent_users(&b).await;
        users.iter().filter(|u| **u == gone).count() == 5
            && users.iter().filter(|u| **u == kept).count() == 5
    });

    // Erase through the first instance.
    let reply = call(
        "DELETE",
        &format!("http://{}/admin/subjects/{gone}", a.http),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let report = reply.json();
    assert_eq!(report["keys_destroyed"], 1, "{report}");
    let tombstoned: BTreeSet<&str> = report["tombstones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        tombstoned,
        BTreeSet::from([
            t.internal.as_str(),
            t.public.as_str(),
            t.user_events.as_str()
        ]),
        "{report}"
    );
    // (How many went from the buffer here and how many with the tombstone
    // the buffer's route read a moment before is a race; that none is left
    // is checked below.)
    assert!(
        report["buffers_purged"]["recent-events"].is_u64(),
        "{report}"
    );
    // The receipt proves the audit record is about this subject.
    let audit = read_topic(&t.audit, 1, Duration::from_secs(10));
    let record = audit[0].json();
    assert_eq!(record["erasure_id"], report["erasure_id"]);
    let salt = hex::decode(report["receipt"]["salt"].as_str().unwrap()).unwrap();
    use sha2::{Digest, Sha256};
    let digest = hex::encode(
        Sha256::new()
            .chain_update(salt)
            .chain_update(&gone)
            .finalize(),
    );
    assert_eq!(record["subject_digest"], digest.as_str());
    assert!(!audit[0].value.as_deref().unwrap().contains(&gone));

    // Erasing again, or erasing a subject never seen, is not an error.
    for who in [gone.as_str(), "never-seen"] {
        let again = call(
            "DELETE",
            &format!("http://{}/admin/subjects/{who}", a.http),
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            b"",
        )
        .await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(again.json()["keys_destroyed"], 0, "{again:?}");
    }
    let unauthorized = call(
        "DELETE",
        &format!("http://{}/admin/subjects/{kept}", a.http),
        &[],
        b"",
    )
    .await;
    assert_eq!(unauthorized.status, 401, "{unauthorized:?}");

    // Both instances agree the subject has no key, and both have dropped
    // its records from memory (the second learnt it from the key store).
    for sy in [&a, &b] {
        assert_eq!(subject_keys(sy, &gone).await["keys"], 0);
        assert_eq!(subject_keys(sy, &kept).await["keys"], 1);
    }
    assert!(!recent_users(&a).await.contains(&gone));
    wait_until!("the second instance forgot the subject", &b, {
        !recent_users(&b).await.contains(&gone)
    });

    // The second instance restarted reads the key store anew: the kept
    // user still decrypts, the erased one is dropped from the replay.
    drop(b);
    let b = replayer(&t, &replay_dlq);
    wait_until!("the replay after the restart", &b, {
        recent_users(&b)
            .await
            .iter()
            .filter(|u| **u == kept)
            .count()
            == 5
    });
    let replayed = call(
        "GET",
        &format!("http://{}/events?limit=1000", b.http),
        &[],
        b"",
    )
    .await;
    let replayed = replayed.json();
    let replayed = replayed.as_array().unwrap();
    assert_eq!(
        replayed.len(),
        5,
        "only the kept user's events: {replayed:?}"
    );
    assert!(replayed
        .iter()
        .any(|e| e["payload"]["email"] == "keeper.remainder@example.com"));

    // A token altered on the topic is refused, not decrypted into garbage.
    let internal = read_topic(&t.internal, 11, Duration::from_secs(10));
    let original = internal
        .iter()
        .find(|r| {
            let first = kept_events[0]["eventId"].as_str().unwrap();
            r.value.as_deref().is_some_and(|v| v.contains(first))
        })
        .unwrap();
    let mut event = original.json();
    let email = event["payload"]["email"].as_str().unwrap().to_owned();
    let flipped = if email.ends_with('A') { 'B' } else { 'A' };
    event["payload"]["email"] = json!(format!("{}{flipped}", &email[..email.len() - 1]));
    produce(
        &producer(),
        &t.internal,
        &[(original.key.clone().unwrap(), event.to_string())],
    )
    .await;
    let refused = read_topic(&replay_dlq, 1, Duration::from_secs(30));
    assert_eq!(refused.len(), 1, "{}", b.log_text());
    let error = &refused[0].headers["switchyard-dlq-error"];
    assert!(error.contains("/payload/email"), "{error}");
    assert_eq!(
        recent_users(&b).await.len(),
        5,
        "the altered record was let through"
    );

    // Every topic, from offset 0, with a plain consumer: no personal value
    // of the erased user in plaintext (the kept user's neither: the topics
    // hold tokens only).
    let mut personal = platform::personal_values(&gone_events);
    assert!(
        personal.contains(&gone) && personal.contains("Erasmus"),
        "{personal:?}"
    );
    personal.extend(platform::personal_values(&kept_events));
    let mut read = 0;
    for topic in t.all().into_iter().chain([replay_dlq.as_str()]) {
        read += platform::assert_absent(topic, &personal);
    }
    assert!(read >= 12 + 8 + 4 + 4 + 2, "{read} records read");
}

#[test]
fn a_missing_or_malformed_master_key_stops_switchyard_with_the_reason() {
    let config = |dir: &std::path::Path| {
        let path = dir.join("routes.toml");
        std::fs::write(
            &path,
            format!(
                "plugins_dir = {:?}\n[subjects]\nmaster_key = {{ \"$env\" = \"SWITCHYARD_TEST_MASTER_KEY\" }}\n",
                plugins_dir().display().to_string()
            ),
        )
        .unwrap();
        path
    };
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path());
    let run = |key: Option<&str>| {
        let mut command = std::process::Command::new(switchyard_bin());
        command
            .args([
                "run",
                "--config",
                path.to_str().unwrap(),
                "--brokers",
                "127.0.0.1:1",
            ])
            .args(["--http", &free_addr()])
            .env_remove("SWITCHYARD_TEST_MASTER_KEY");
        if let Some(key) = key {
            command.env("SWITCHYARD_TEST_MASTER_KEY", key);
        }
        let output = command.output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(None);
    assert!(!status.success());
    assert!(
        stderr.contains("environment variable `SWITCHYARD_TEST_MASTER_KEY` is not set")
            && stderr.contains("openssl rand -hex 32"),
        "{stderr}"
    );
    let (status, stderr) = run(Some("not-a-key-but-a-secret-guess"));
    assert!(!status.success());
    assert!(stderr.contains("must be 32 bytes"), "{stderr}");
    assert!(
        !stderr.contains("not-a-key-but-a-secret-guess"),
        "the key was logged: {stderr}"
    );
}
