//! `flywheel models`: routes and versions: list, register, approve, reject.

use std::process::ExitCode;

use super::client::encode;
use super::render::{admin_action, num, s, table_data};
use super::{GatewayArgs, ModelsCommand};

pub(super) async fn run(cmd: ModelsCommand) -> ExitCode {
    match cmd {
        ModelsCommand::List { gateway } => {
            let v = match table_data(&gateway, "/admin/v1/models").await {
                Ok(v) => v,
                Err(code) => return code,
            };
            println!(
                "{:<20}  {:<12}  {:<12}  {:>8}  {:<30}  UPSTREAM MODEL",
                "ROUTE", "VERSION", "STATE", "TRAFFIC", "UPSTREAM"
            );
            for r in v["data"].as_array().into_iter().flatten() {
                for ver in r["versions"].as_array().into_iter().flatten() {
                    println!(
                        "{:<20}  {:<12}  {:<12}  {:>7}%  {:<30}  {}",
                        s(r, "name"),
                        s(ver, "name"),
                        s(ver, "state"),
                        num(ver, "traffic_percent"),
                        s(ver, "upstream_url"),
                        s(ver, "upstream_model")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        ModelsCommand::Register {
            gateway,
            route,
            version,
            upstream,
            upstream_model,
            api_key_env,
            system_prompt,
            reason,
        } => {
            let body = serde_json::json!({
                "route": route, "version": version, "upstream": upstream, "upstream_model": upstream_model,
                "api_key_env": api_key_env, "system_prompt": system_prompt, "reason": reason,
            });
            admin_action(
                &gateway,
                http::Method::POST,
                "/admin/v1/models",
                Some(body),
                |v| {
                    format!(
                        "registered {}/{} ({})",
                        s(v, "route"),
                        s(v, "name"),
                        s(v, "state")
                    )
                },
            )
            .await
        }
        ModelsCommand::Approve {
            gateway,
            route,
            version,
            reason,
        } => verdict(gateway, route, version, reason, "approve").await,
        ModelsCommand::Reject {
            gateway,
            route,
            version,
            reason,
        } => verdict(gateway, route, version, reason, "reject").await,
    }
}

async fn verdict(
    gateway: GatewayArgs,
    route: String,
    version: String,
    reason: String,
    verdict: &str,
) -> ExitCode {
    let path = format!(
        "/admin/v1/models/{}/versions/{}/{verdict}",
        encode(&route),
        encode(&version)
    );
    admin_action(
        &gateway,
        http::Method::POST,
        &path,
        Some(serde_json::json!({ "reason": reason })),
        |v| {
            format!(
                "{}/{} is now {}",
                s(v, "route"),
                s(v, "name"),
                s(v, "state")
            )
        },
    )
    .await
}
