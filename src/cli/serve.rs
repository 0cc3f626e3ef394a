//! `flywheel serve`: load the configuration, bind the listener and run the
//! gateway until the shutdown signal.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::config::{Config, Overrides};

use super::{ServeArgs, EXIT_FAILED, EXIT_USAGE};

pub(super) fn load_config(args: &ServeArgs) -> Result<Config, ExitCode> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let flags = Overrides {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        db: args.db.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    };
    Config::load(args.config.as_deref(), &env, &flags).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

pub(super) async fn run(args: ServeArgs) -> ExitCode {
    // Installed first, so a SIGTERM from here on drains instead of killing.
    let shutdown = crate::runtime::shutdown::signal();
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match crate::run(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
