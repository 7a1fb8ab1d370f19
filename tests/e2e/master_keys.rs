//! The master key on real Kafka: a start under a key that cannot open the
//! key store is refused with both keys' fingerprints (never a start that
//! drops every encrypted record it reads), and the documented rotation
//! (the new key as `master_key`, the old one in `other_master_keys`)
//! rewraps every key at start, after which the new key alone reads
//! everything and the old one alone is refused.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::*;

const OLD: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const NEW: &str = "0202020202020202020202020202020202020202020202020202020202020202";

/// Topics of one test: events in, sealed events, opened events, and the
/// key store's own two.
struct Topics {
    events: String,
    sealed: String,
    opened: String,
    keys: String,
    audit: String,
}

impl Topics {
    fn new() -> Topics {
        Topics {
            events: unique("mk-events"),
            sealed: unique("mk-sealed"),
            opened: unique("mk-opened"),
            keys: unique("mk-keys"),
            audit: unique("mk-audit"),
        }
    }

    fn subjects(&self, other_keys: bool) -> String {
        let others = if other_keys {
            "other_master_keys = [{ \"$env\" = \"MK_TEST_OTHER\" }]\n"
        } else {
            ""
        };
        format!(
            "[subjects]\nmaster_key = {{ \"$env\" = \"MK_TEST_MASTER\" }}\n{others}\
             keys_topic = \"{}\"\naudit_topic = \"{}\"\n",
            self.keys, self.audit
        )
    }

    /// Encrypt each event's email for its user.
    fn seal(&self) -> String {
        format!(
            r#"{}
[[routes]]
name = "seal"
source = {{ topics = ["{}"], group = "{}" }}
sink = {{ topic = "{}" }}
[[routes.chain]]
plugin = "redact"
config.subject_field = "userId"
config.key = "subject-ref"
config.rules = [{{ path = "email", action = "encrypt" }}]
"#,
            self.subjects(false),
            self.events,
            unique("mk-seal"),
            self.sealed
        )
    }

    /// Decrypt them again, in a group of its own each time.
    fn open(&self, other_keys: bool) -> String {
        format!(
            r#"{}
[[routes]]
name = "open"
source = {{ topics = ["{}"], group = "{}" }}
sink = {{ topic = "{}" }}
chain = [{{ plugin = "decrypt", config = {{ fields = ["/email"] }} }}]
"#,
            self.subjects(other_keys),
            self.sealed,
            unique("mk-open"),
            self.opened
        )
    }
}

fn start(routes: &str, master: &str, other: Option<&str>) -> Switchyard {
    let mut env = vec![("MK_TEST_MASTER", master)];
    if let Some(other) = other {
        env.push(("MK_TEST_OTHER", other));
    }
    Switchyard::start_custom(&plugins_dir(), routes, &["--brokers", &bootstrap()], &env)
}

/// Wait for `sy` to exit on its own; its log.
fn refused(mut sy: Switchyard) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sy.is_running() {
        if Instant::now() > deadline {
            panic!(
                "switchyard started under a key that cannot open the key store:\n{}",
                sy.log_text()
            );
        }
        if let Some((200, health)) = sy.health() {
            panic!("switchyard reports healthy under the wrong key: {health}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sy.log_text()
}

fn emails(records: &[Record]) -> Vec<String> {
    let mut emails: Vec<String> = records
        .iter()
        .map(|r| r.json()["email"].as_str().unwrap_or_default().to_owned())
        .collect();
    emails.sort();
    emails.dedup();
    emails
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_rotation_keeps_every_record() {
    let t = Topics::new();
    let users = 30;
    let expected: Vec<String> = {
        let mut e: Vec<String> = (0..users)
            .map(|i| format!("user-{i}@example.com"))
            .collect();
        e.sort();
        e
    };

    create_topics(&[&t.events, &t.sealed, &t.opened], 1).await;
    // Sealed under the old key.
    let mut seal = start(&t.seal(), OLD, None);
    seal.wait_healthy(Duration::from_secs(60));
    let events: Vec<(String, String)> = (0..users)
        .map(|i| {
            let user = format!("u-{i}");
            let event = json!({"userId": user, "email": format!("user-{i}@example.com")});
            (user, event.to_string())
        })
        .collect();
    produce(&producer(), &t.events, &events).await;
    let sealed = read_topic(&t.sealed, users, Duration::from_secs(60));
    assert_eq!(sealed.len(), users, "{}", seal.log_text());
    assert!(
        sealed
            .iter()
            .all(|r| r.json()["email"].as_str().unwrap().starts_with("sy:v2:")),
        "{:?}",
        sealed[0].json()
    );
    seal.terminate(Duration::from_secs(30));

    // The new key alone cannot open the store: refused, both named.
    let log = refused(start(&t.open(false), NEW, None));
    let (old_print, new_print) = (fingerprint(OLD), fingerprint(NEW));
    assert!(
        log.contains("does not open the subject key store")
            && log.contains(&new_print)
            && log.contains(&old_print)
            && log.contains("other_master_keys"),
        "{log}"
    );
    assert_eq!(
        topic_size(&t.opened),
        0,
        "records were read under the wrong key"
    );

    // Rotation: the new key, with the old one beside it, rewraps every key
    // and reads every record.
    let mut rotating = start(&t.open(true), NEW, Some(OLD));
    rotating.wait_healthy(Duration::from_secs(60));
    let opened = read_topic(&t.opened, users, Duration::from_secs(60));
    assert_eq!(emails(&opened), expected);
    let log = rotating.log_text();
    assert!(
        log.contains(&format!("rewrapped {users} subject keys")),
        "{log}"
    );
    rotating.terminate(Duration::from_secs(30));

    // The new key alone now reads everything, in a group of its own.
    let mut rotated = start(&t.open(false), NEW, None);
    rotated.wait_healthy(Duration::from_secs(60));
    let twice = read_topic(&t.opened, 2 * users, Duration::from_secs(60));
    assert_eq!(twice.len(), 2 * users);
    assert_eq!(emails(&twice), expected);
    rotated.terminate(Duration::from_secs(30));

    // And the old key alone no longer opens the keys.
    let log = refused(start(&t.open(false), OLD, None));
    assert!(
        log.contains("does not open the subject key store") && log.contains(&old_print),
        "{log}"
    );
}

/// The fingerprint switchyard logs for `key`, from its own command.
fn fingerprint(key: &str) -> String {
    let output = std::process::Command::new(switchyard_bin())
        .args(["subjects", "fingerprint"])
        .env("SWITCHYARD_MASTER_KEY", key)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let print = text.trim().to_owned();
    assert_eq!(print.len(), 16, "{text}");
    print
}

#[tokio::test]
async fn a_key_topic_that_would_delete_keys_is_refused_at_start() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;

    let t = Topics::new();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new(&t.keys, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "delete")
        .set("retention.ms", "604800000");
    admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    create_topics(&[&t.events, &t.sealed], 1).await;
    let log = refused(start(&t.seal(), OLD, None));
    assert!(
        log.contains(&format!(
            "the key topic `{}` has `cleanup.policy=delete`",
            t.keys
        )) && log.contains("cleanup.policy=compact"),
        "{log}"
    );
}
