use std::process::ExitCode;

use clap::Parser;
use switchyard::cli::{Cli, Command, PluginCommand, SubjectsCommand};

/// Every record is a handful of small allocations (its bytes, headers,
/// outcomes) made on one thread and freed on another (the consumer, the
/// partition worker, the acker); mimalloc's per-thread free lists make that
/// far cheaper than the system allocator (BENCHMARKS.md, end to end).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    switchyard::logging::init();
    // The server also logs its fatal error, for log collectors; the other
    // commands are run by a person reading the terminal, who needs it once.
    let is_server = matches!(cli.command, None | Some(Command::Run(_)));
    let result = match cli.command {
        None => cli.run.into_options().and_then(run),
        Some(Command::Run(args)) => args.into_options().and_then(run),
        Some(Command::Plugin(PluginCommand::Build { dir, out })) => {
            switchyard::plugin_build::build_command(&dir, &out)
        }
        Some(Command::Plugin(PluginCommand::New { name, dir })) => {
            switchyard::plugin_kit::new_command(&name, &dir)
        }
        Some(Command::Plugin(PluginCommand::Test(args))) => {
            switchyard::plugin_kit::run::test_command(&args.into_options())
        }
        Some(Command::Produce(args)) => {
            runtime().and_then(|rt| rt.block_on(switchyard::devtools::produce(args)))
        }
        Some(Command::Consume(args)) => {
            runtime().and_then(|rt| rt.block_on(switchyard::devtools::consume(args)))
        }
        Some(Command::Subjects(SubjectsCommand::Fingerprint { env, file })) => {
            switchyard::subjects::fingerprint_command(&env, file.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_server {
                tracing::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: switchyard::app::RunOptions) -> anyhow::Result<()> {
    runtime()?.block_on(switchyard::app::run(opts))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
