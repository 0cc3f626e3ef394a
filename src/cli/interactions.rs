//! `flywheel interactions`: list, show and count captured interactions.

use std::process::ExitCode;

use serde_json::Value;

use super::client::{encode, query};
use super::render::{get, num, print_json, s, table_data};
use super::InteractionsCommand;

pub(super) async fn run(cmd: InteractionsCommand) -> ExitCode {
    match cmd {
        InteractionsCommand::List {
            gateway,
            limit,
            before,
            route,
            segment,
        } => {
            let path = query(
                &format!("/admin/v1/interactions?limit={limit}"),
                [("before", before), ("route", route), ("segment", segment)],
            );
            let v = match table_data(&gateway, &path).await {
                Ok(v) => v,
                Err(code) => return code,
            };
            println!(
                "{:<36}  {:<16}  {:<10}  {:>6}  {:<14}  {:>10}  {:>7}  MODEL",
                "ID", "ENDPOINT", "VERSION", "STATUS", "OUTCOME", "LATENCY_MS", "TOKENS"
            );
            for row in v["data"].as_array().into_iter().flatten() {
                let tokens = match (
                    row.get("total_tokens").and_then(Value::as_i64),
                    row["tokens_estimated"].as_bool(),
                ) {
                    (Some(t), Some(true)) => format!("~{t}"),
                    (Some(t), _) => t.to_string(),
                    _ => "-".into(),
                };
                println!(
                    "{:<36}  {:<16}  {:<10}  {:>6}  {:<14}  {:>10}  {:>7}  {}",
                    s(row, "id"),
                    s(row, "endpoint"),
                    s(row, "version"),
                    num(row, "status"),
                    s(row, "outcome"),
                    num(row, "latency_ms"),
                    tokens,
                    s(row, "requested_model"),
                );
            }
            if let Some(next) = v["next_before"].as_str() {
                eprintln!("more: --before {next}");
            }
            ExitCode::SUCCESS
        }
        InteractionsCommand::Show { gateway, id, raw } => {
            let suffix = if raw { "/raw" } else { "" };
            let v = match get(
                &gateway,
                &format!("/admin/v1/interactions/{}{suffix}", encode(&id)),
            )
            .await
            {
                Ok(v) => v,
                Err(code) => return code,
            };
            print_json(&v);
            ExitCode::SUCCESS
        }
        InteractionsCommand::Stats { gateway } => {
            let v = match table_data(&gateway, "/admin/v1/stats").await {
                Ok(v) => v,
                Err(code) => return code,
            };
            println!("interactions_total  {}", num(&v, "interactions_total"));
            for key in ["by_outcome", "by_route", "by_endpoint", "by_segment"] {
                for (k, n) in v[key].as_object().into_iter().flatten() {
                    println!("{key:<10} {k:<16} {n}");
                }
            }
            println!("prompt_tokens       {}", num(&v, "prompt_tokens"));
            println!("completion_tokens   {}", num(&v, "completion_tokens"));
            let c = &v["capture"];
            println!(
                "capture             queue {}/{}  written {}  dropped {}",
                num(c, "queue_depth"),
                num(c, "queue_capacity"),
                num(c, "written_total"),
                num(c, "dropped_total")
            );
            ExitCode::SUCCESS
        }
    }
}
