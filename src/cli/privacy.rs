//! `flywheel privacy`: erase one user's data, or sweep what outlived retention.

use std::process::ExitCode;

use super::client::call;
use super::render::{client_exit, num, print_json};
use super::PrivacyCommand;

pub(super) async fn run(cmd: PrivacyCommand) -> ExitCode {
    let (gateway, path, body) = match cmd {
        PrivacyCommand::Forget { gateway, user } => {
            let body = serde_json::json!({ "user": user });
            (gateway, "/admin/v1/privacy/forget".to_string(), Some(body))
        }
        PrivacyCommand::Purge { gateway, dry_run } => {
            let path = format!(
                "/admin/v1/privacy/purge{}",
                if dry_run { "?dry_run=true" } else { "" }
            );
            (gateway, path, None)
        }
    };
    let v = match call(
        &gateway.url,
        gateway.admin_token.as_deref(),
        http::Method::POST,
        &path,
        body.as_ref(),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return client_exit(e),
    };
    if gateway.json {
        print_json(&v);
    } else {
        let r = &v["removed"];
        let verb = if v["dry_run"] == true {
            "would remove"
        } else {
            "removed"
        };
        let answers = r["experiment_results"].as_u64().unwrap_or(0);
        let answers = if answers > 0 {
            format!(", {answers} evaluation answers")
        } else {
            String::new()
        };
        println!(
            "{verb}: {} interactions, {} feedback, {} raw payloads{answers}",
            num(r, "interactions"),
            num(r, "feedback"),
            num(r, "raw_payloads")
        );
    }
    ExitCode::SUCCESS
}
