//! `flywheel keys`: client-key helpers that need no gateway.

use std::io::Read;
use std::process::ExitCode;

use super::{KeysCommand, EXIT_FAILED, EXIT_USAGE};

pub(super) fn run(cmd: KeysCommand) -> ExitCode {
    let KeysCommand::Hash { key } = cmd;
    let key = match key {
        Some(k) => k,
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("error: cannot read the key from standard input: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
            s.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if key.is_empty() {
        eprintln!("error: the key is empty");
        return ExitCode::from(EXIT_USAGE);
    }
    println!(
        "{}",
        crate::crypto::hex(&crate::crypto::sha256(key.as_bytes()))
    );
    ExitCode::SUCCESS
}
