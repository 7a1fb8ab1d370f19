//! The in-memory development broker: librdkafka's mock cluster, speaking
//! the Kafka protocol on a loopback port. Everything it holds is lost when
//! switchyard exits, and it does not compact topics: it exists so that
//! `switchyard` runs with nothing else installed, not for production.

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// Partitions given to each topic the routes use.
pub const DEFAULT_PARTITIONS: i32 = 4;

/// A running in-memory broker. Dropping it stops the broker.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Start a single-broker mock cluster and create `topics`.
    pub fn start<'a>(topics: impl IntoIterator<Item = &'a str>) -> anyhow::Result<EmbeddedBroker> {
        let cluster = MockCluster::new(1).context("starting the in-memory Kafka broker")?;
        for topic in topics {
            cluster
                .create_topic(topic, DEFAULT_PARTITIONS, 1)
                .with_context(|| format!("creating topic `{topic}` on the in-memory broker"))?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
