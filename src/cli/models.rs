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
        ModelsCommand::Show {
            gateway,
            route,
            version,
        } => {
            let path = format!(
                "/admin/v1/models/{}/versions/{}",
                encode(&route),
                encode(&version)
            );
            match table_data(&gateway, &path).await {
                Ok(v) => {
                    print!("{}", explain(&v));
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
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

/// A version's state and why, as `models show` prints it.
fn explain(v: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{}/{}: {}", s(v, "route"), s(v, "name"), s(v, "state"));
    if let Some(reason) = v["reason"].as_str().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "  why: {reason}");
    }
    let _ = writeln!(
        out,
        "  upstream: {} {}",
        s(v, "upstream_url"),
        s(v, "upstream_model")
    );
    match v["gate"].as_object() {
        None => {
            let _ = writeln!(out, "  gate: no evaluation yet");
        }
        Some(g) => {
            let pass = if g["pass"] == true { "pass" } else { "fail" };
            let _ = writeln!(
                out,
                "  gate: {pass} (experiment {}, against {})",
                g["experiment"].as_str().unwrap_or(""),
                g["baseline"].as_str().unwrap_or("")
            );
            for c in g["checks"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "    {}", s(c, "reason"));
            }
        }
    }
    let history = v["history"].as_array().map_or(&[][..], |h| h.as_slice());
    if !history.is_empty() {
        let _ = writeln!(out, "  history (newest first):");
    }
    for e in history {
        let at = e["at_ms"]
            .as_i64()
            .map(crate::clock::format_time)
            .unwrap_or_default();
        let why = (e["detail"]["reason"].as_str())
            .map(|r| format!("  {r}"))
            .unwrap_or_default();
        let _ = writeln!(out, "    {at}  {:<8}  {}{why}", s(e, "actor"), s(e, "kind"));
    }
    out
}
