//! `flywheel config`: check a configuration without starting and print the
//! effective settings as TOML, or say which key is wrong.

use std::process::ExitCode;

use super::serve::load_config;
use super::ServeArgs;

pub(super) fn run(args: ServeArgs) -> ExitCode {
    match load_config(&args) {
        Ok(c) => {
            print!("{}", c.to_toml());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
