//! Command-line interface. `switchyard` alone means `switchyard run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plugin::cache::CompileCache;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A WebAssembly-pluggable event router for Kafka"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, the default subcommand.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the routes (the default).
    Run(RunArgs),
    /// Build and inspect plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Produce stdin lines (one record value per line) to a topic.
    Produce(ProduceArgs),
    /// Print records of a topic, from the beginning, one value per line.
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Routes file.
    #[arg(
        long,
        short,
        env = "SWITCHYARD_CONFIG",
        default_value = "switchyard.toml"
    )]
    pub config: PathBuf,
    /// Kafka bootstrap servers; overrides `kafka.brokers` in the routes
    /// file. With neither, an in-memory development broker is started.
    #[arg(long, env = "SWITCHYARD_BROKERS")]
    pub brokers: Option<String>,
    /// Address of the HTTP API.
    #[arg(long, env = "SWITCHYARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Directory for compiled plugin artefacts
    /// [default: $XDG_CACHE_HOME/switchyard/components].
    #[arg(long, env = "SWITCHYARD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Build a Rust plugin crate into a component.
    Build {
        /// The plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write `<name>.wasm`.
        #[arg(long, default_value = "target/plugins")]
        out: PathBuf,
    },
}

/// Where to find the cluster for `produce` and `consume`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Kafka bootstrap servers. Without it, the brokers of the switchyard
    /// answering at `--http` are used (so the development broker just
    /// works).
    #[arg(long, env = "SWITCHYARD_BROKERS")]
    pub brokers: Option<String>,
    /// A running switchyard's HTTP address, asked for its brokers.
    #[arg(long, env = "SWITCHYARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Key of every record produced.
    #[arg(long)]
    pub key: Option<String>,
    #[command(flatten)]
    pub brokers: BrokerArgs,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<usize>,
    /// Stop after this many seconds without a new record.
    #[arg(long, default_value_t = 10)]
    pub idle_timeout: u64,
    /// Print `key<TAB>value` instead of the value alone.
    #[arg(long)]
    pub keys: bool,
    #[command(flatten)]
    pub brokers: BrokerArgs,
}

impl RunArgs {
    pub fn into_options(self) -> crate::app::RunOptions {
        crate::app::RunOptions {
            config: self.config,
            brokers: self.brokers,
            http: self.http,
            cache_dir: self.cache_dir.unwrap_or_else(CompileCache::default_dir),
        }
    }
}
