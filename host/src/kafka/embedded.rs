//! The in-memory development broker: librdkafka's mock cluster, speaking
//! the Kafka protocol on a loopback port. Everything it holds is lost when
//! switchyard exits, and it does not compact topics: it exists so that
//! `switchyard` runs with nothing else installed, not for production.

use std::sync::mpsc;

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// Partitions given to each topic the routes use.
pub const DEFAULT_PARTITIONS: i32 = 4;

/// A request to the thread that owns the cluster: create a topic.
type Create = (String, i32, mpsc::Sender<anyhow::Result<()>>);

/// A running in-memory broker. Dropping it stops the broker.
///
/// The mock cluster is not `Send`; a thread of its own holds it and
/// creates topics on request, so handles can be shared.
#[derive(Clone)]
pub struct EmbeddedBroker {
    bootstrap: String,
    requests: mpsc::Sender<Create>,
}

impl EmbeddedBroker {
    /// Start a single-broker mock cluster and create `topics`.
    pub fn start<'a>(topics: impl IntoIterator<Item = &'a str>) -> anyhow::Result<EmbeddedBroker> {
        let (requests, inbox) = mpsc::channel::<Create>();
        let (started_tx, started) = mpsc::channel();
        std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster: MockCluster<'static, DefaultProducerContext> =
                    match MockCluster::new(1).context("starting the in-memory Kafka broker") {
                        Ok(cluster) => cluster,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                let _ = started_tx.send(Ok(cluster.bootstrap_servers()));
                // Until every handle is dropped.
                for (topic, partitions, reply) in inbox {
                    let created = cluster
                        .create_topic(&topic, partitions, 1)
                        .with_context(|| {
                            format!("creating topic `{topic}` on the in-memory broker")
                        });
                    let _ = reply.send(created);
                }
            })
            .context("starting the in-memory Kafka broker")?;
        let bootstrap = started
            .recv()
            .context("the in-memory Kafka broker did not start")??;
        let broker = EmbeddedBroker {
            bootstrap,
            requests,
        };
        for topic in topics {
            broker.create_topic(topic, DEFAULT_PARTITIONS)?;
        }
        Ok(broker)
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// Create `topic`; an existing topic is left as it is.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send((topic.to_owned(), partitions, reply))
            .map_err(|_| anyhow::anyhow!("the in-memory Kafka broker has stopped"))?;
        match answer.recv() {
            Ok(Err(e)) if format!("{e:#}").contains("TopicAlreadyExists") => Ok(()),
            Ok(result) => result,
            Err(_) => anyhow::bail!("the in-memory Kafka broker has stopped"),
        }
    }
}
