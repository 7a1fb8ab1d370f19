//! Command-line interface. `switchyard` alone means `switchyard run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::http::{AdminCredential, AdminToken};
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
    /// Create, build and test plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Produce stdin lines (one record value per line) to a topic.
    Produce(ProduceArgs),
    /// Print records of a topic, from the beginning, one value per line.
    Consume(ConsumeArgs),
    /// Subject encryption's master keys.
    #[command(subcommand)]
    Subjects(SubjectsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SubjectsCommand {
    /// Print a master key's fingerprint: the name the key store, its
    /// errors and the log give the key (it reveals nothing of the key).
    Fingerprint {
        /// Environment variable holding the key.
        #[arg(long, default_value = "SWITCHYARD_MASTER_KEY", conflicts_with = "file")]
        env: String,
        /// File holding the key, instead.
        #[arg(long)]
        file: Option<PathBuf>,
    },
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
    /// File holding the admin API's bearer token (at least 16 characters),
    /// read again when it changes: the new token is in force within a
    /// second, the old one refused. Without a token, admin changes are
    /// refused, and the HTTP address must be a loopback one.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin token itself (prefer the file: environment variables show
    /// up in process listings of the same user).
    #[arg(
        long = "admin-token",
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub admin_token: Option<String>,
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
    /// Create a new plugin crate, ready to build (see docs/writing-a-plugin.md).
    New {
        /// The plugin's name: a crate name, the component's file stem and
        /// what a route's `plugin = "..."` says.
        name: String,
        /// Where to create the `NAME/` directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run a plugin component on records from a JSON Lines file, no broker
    /// needed, and print each record's outcome.
    Test(PluginTestArgs),
}

/// Options of `switchyard plugin test`.
#[derive(Debug, Args)]
pub struct PluginTestArgs {
    /// The plugin component (`.wasm`).
    pub wasm: PathBuf,
    /// The plugin's configuration: a `.toml` file holding the table a route
    /// would give as `config`, or a JSON file [default: `{}`].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Records, one per line: `{"key": "k", "value": <any JSON>, "headers":
    /// {"h": "v"}}`, only `value` required; a JSON string value is sent
    /// unquoted, `null` is a tombstone [default: stdin].
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Each input line is a plain record value, sent as it is.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object per record instead of text.
    #[arg(long)]
    pub json: bool,
    /// Most records per `process` call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Deadline of one plugin call, as a route's `call_timeout_ms`.
    #[arg(long, default_value_t = 1000)]
    pub call_timeout_ms: u64,
    /// Memory cap per instance (all its linear memories together), as a
    /// route's `memory_limit_mib`.
    #[arg(long, default_value_t = 64)]
    pub memory_limit_mib: u64,
    /// Directory for compiled plugin artefacts
    /// [default: $XDG_CACHE_HOME/switchyard/components].
    #[arg(long, env = "SWITCHYARD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl PluginTestArgs {
    pub fn into_options(self) -> crate::plugin_kit::run::TestOptions {
        crate::plugin_kit::run::TestOptions {
            wasm: self.wasm,
            config: self.config,
            input: self.input,
            raw: self.raw,
            json: self.json,
            batch_size: self.batch_size,
            limits: crate::plugin::pool::Limits {
                call_timeout: std::time::Duration::from_millis(self.call_timeout_ms),
                memory_bytes: (self.memory_limit_mib as usize) << 20,
            },
            cache_dir: self.cache_dir.unwrap_or_else(CompileCache::default_dir),
        }
    }
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
    pub fn into_options(self) -> anyhow::Result<crate::app::RunOptions> {
        let token = match (&self.admin_token_file, &self.admin_token) {
            (Some(path), _) => {
                AdminCredential::from_file(path.clone()).map_err(anyhow::Error::msg)?
            }
            (None, Some(token)) => AdminCredential::fixed(Some(
                AdminToken::new(token)
                    .map_err(|e| anyhow::anyhow!("SWITCHYARD_ADMIN_TOKEN: {e}"))?,
            )),
            (None, None) => AdminCredential::fixed(None),
        };
        Ok(crate::app::RunOptions {
            config: self.config,
            brokers: self.brokers,
            http: self.http,
            cache_dir: self.cache_dir.unwrap_or_else(CompileCache::default_dir),
            admin_token: token,
        })
    }
}
