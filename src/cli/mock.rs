//! `flywheel mock-upstream`: the mock OpenAI upstream on a socket of its own.

use std::process::ExitCode;

use super::EXIT_FAILED;

pub(super) async fn run(listen: String) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    tracing::info!(addr = %listen, "mock upstream listening");
    match crate::mock::serve(listener, crate::runtime::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
