//! Creating the topics switchyard itself owns (the streams API's, and the
//! topics HTTP APIs publish to), on a cluster or on the development broker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::embedded::{EmbeddedBroker, DEFAULT_PARTITIONS};
use super::KafkaSettings;

/// A topic to create if it does not exist.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec<'a> {
    pub name: &'a str,
    /// `None`: the broker's default (`num.partitions`).
    pub partitions: Option<i32>,
    /// `None`: the broker's default (`default.replication.factor`).
    pub replication: Option<i32>,
    /// Topic configuration, e.g. `("cleanup.policy", "compact")`.
    pub config: &'a [(&'a str, &'a str)],
}

/// Creates topics. Cheap to clone.
#[derive(Clone)]
pub enum TopicAdmin {
    Cluster(Arc<AdminClient<DefaultClientContext>>),
    /// The development broker keeps no topic configuration.
    Embedded(EmbeddedBroker),
}

impl TopicAdmin {
    pub fn new(kafka: &KafkaSettings, embedded: Option<&EmbeddedBroker>) -> anyhow::Result<Self> {
        Ok(match embedded {
            Some(broker) => TopicAdmin::Embedded(broker.clone()),
            None => TopicAdmin::Cluster(Arc::new(
                kafka
                    .client_config()
                    .create()
                    .context("creating the Kafka admin client")?,
            )),
        })
    }

    /// Create `spec` unless a topic of that name exists (whatever its
    /// settings).
    pub async fn ensure(&self, spec: &TopicSpec<'_>) -> anyhow::Result<()> {
        let admin = match self {
            TopicAdmin::Embedded(broker) => {
                let broker = broker.clone();
                let (name, partitions) = (spec.name.to_owned(), spec.partitions);
                return tokio::task::spawn_blocking(move || {
                    broker.create_topic(&name, partitions.unwrap_or(DEFAULT_PARTITIONS))
                })
                .await?;
            }
            TopicAdmin::Cluster(admin) => admin,
        };
        // -1: the broker's default (KIP-464, Kafka 2.4 and later).
        let mut new = NewTopic::new(
            spec.name,
            spec.partitions.unwrap_or(-1),
            TopicReplication::Fixed(spec.replication.unwrap_or(-1)),
        );
        for (key, value) in spec.config {
            new = new.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&new], &options)
            .await
            .with_context(|| format!("creating topic `{}`", spec.name))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => anyhow::bail!("creating topic `{}` failed: {code}", spec.name),
            }
        }
        Ok(())
    }

    /// The settings of topic `name` as the cluster reports them (`None` on
    /// the development broker, which keeps none, and for a topic that does
    /// not exist).
    pub async fn settings(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<std::collections::HashMap<String, String>>> {
        let TopicAdmin::Cluster(admin) = self else {
            return Ok(None);
        };
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .describe_configs([&ResourceSpecifier::Topic(name)], &options)
            .await
            .with_context(|| format!("reading the settings of topic `{name}`"))?;
        let mut settings = std::collections::HashMap::new();
        for result in results {
            let resource = match result {
                Ok(resource) => resource,
                Err(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
                Err(code) => {
                    anyhow::bail!("reading the settings of topic `{name}` failed: {code}")
                }
            };
            for entry in resource.entries {
                if let Some(value) = entry.value {
                    settings.insert(entry.name, value);
                }
            }
        }
        Ok(Some(settings))
    }
}
