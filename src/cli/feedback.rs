//! `flywheel feedback`: list feedback (admin API) and send it (`POST /v1/feedback`).

use std::process::ExitCode;

use serde_json::Value;

use super::client::{call, query};
use super::render::{client_exit, print_json, s, table_data};
use super::{FeedbackCommand, EXIT_USAGE};

pub(super) async fn run(cmd: FeedbackCommand) -> ExitCode {
    match cmd {
        FeedbackCommand::List {
            gateway,
            limit,
            since,
            kind,
            route,
            before,
        } => {
            let path = query(
                &format!("/admin/v1/feedback?limit={limit}"),
                [
                    ("since", since),
                    ("type", kind),
                    ("route", route),
                    ("before", before),
                ],
            );
            let v = match table_data(&gateway, &path).await {
                Ok(v) => v,
                Err(code) => return code,
            };
            println!(
                "{:<36}  {:<36}  {:<10}  {:<10}  VALUE",
                "ID", "INTERACTION", "TYPE", "VERSION"
            );
            for row in v["data"].as_array().into_iter().flatten() {
                let mut value = match &row["value"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if value.chars().count() > 60 {
                    value = value.chars().take(57).collect::<String>() + "...";
                }
                println!(
                    "{:<36}  {:<36}  {:<10}  {:<10}  {}",
                    s(row, "id"),
                    s(row, "interaction_id"),
                    s(row, "type"),
                    s(row, "version"),
                    value.replace('\n', " ")
                );
            }
            if let Some(next) = v["next_before"].as_str() {
                eprintln!("more: --before {next}");
            }
            ExitCode::SUCCESS
        }
        FeedbackCommand::Send {
            gateway,
            interaction_id,
            thumbs,
            rating,
            scale,
            correction,
            comment,
            outcome,
            user,
            idempotency_key,
            api_key,
        } => {
            let (kind, value) = if let Some(t) = thumbs {
                ("thumbs", Value::from(t))
            } else if let Some(r) = rating {
                ("rating", Value::from(r))
            } else if let Some(c) = correction {
                ("correction", Value::from(c))
            } else if let Some(c) = comment {
                ("comment", Value::from(c))
            } else if let Some(o) = outcome {
                ("outcome", Value::from(o))
            } else {
                eprintln!("error: say what the feedback is: --thumbs, --rating, --correction, --comment or --outcome");
                return ExitCode::from(EXIT_USAGE);
            };
            let mut body =
                serde_json::json!({"interaction_id": interaction_id, "type": kind, "value": value});
            if let Some(sc) = scale {
                if sc.len() != 2 {
                    eprintln!("error: --scale takes MIN,MAX, e.g. --scale 1,5");
                    return ExitCode::from(EXIT_USAGE);
                }
                body["scale"] = Value::from(sc);
            }
            if let Some(u) = user {
                body["user"] = Value::from(u);
            }
            if let Some(k) = idempotency_key {
                body["idempotency_key"] = Value::from(k);
            }
            match call(
                &gateway.url,
                api_key.as_deref(),
                http::Method::POST,
                "/v1/feedback",
                Some(&body),
            )
            .await
            {
                Ok(v) => {
                    if gateway.json {
                        print_json(&v);
                    } else {
                        println!("{}", s(&v, "id"));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => client_exit(e),
            }
        }
    }
}
