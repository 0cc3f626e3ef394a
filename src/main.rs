//! The `flywheel` binary: parse the command line, start logging and the
//! runtime, hand the command to [`flywheel::cli::run`] and exit with its code
//! (see `flywheel --help`).

use std::process::ExitCode;

use clap::Parser;

use flywheel::cli::{Cli, Command, EXIT_FAILED};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if matches!(cli.command, Command::Serve(_)) {
        flywheel::runtime::alloc::return_large_buffers();
    }
    // `serve` runs its connections on shard threads of their own (see
    // `runtime::shard`), which also accept them; this thread runs the control
    // loops and the shutdown sequence.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(flywheel::cli::run(cli))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLYWHEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("FLYWHEEL_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
