//! `flywheel events`: the audit log as a table.

use std::process::ExitCode;

use super::client::query;
use super::render::{s, table_data};
use super::GatewayArgs;

pub(super) async fn run(gateway: GatewayArgs, limit: usize, kind: Option<String>) -> ExitCode {
    let path = query(&format!("/admin/v1/events?limit={limit}"), [("kind", kind)]);
    let v = match table_data(&gateway, &path).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!(
        "{:<36}  {:<10}  {:<18}  {:<36}  DETAIL",
        "ID", "ACTOR", "KIND", "SUBJECT"
    );
    for e in v["data"].as_array().into_iter().flatten() {
        println!(
            "{:<36}  {:<10}  {:<18}  {:<36}  {}",
            s(e, "id"),
            s(e, "actor"),
            s(e, "kind"),
            s(e, "subject"),
            e["detail"]
        );
    }
    ExitCode::SUCCESS
}
