//! `flywheel eval`: run an evaluation, list experiments, show one with its
//! scores, intervals and verdict.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::client::{call, encode, query};
use super::render::{client_exit, print_json, s, table_data};
use super::{EvalCommand, EXIT_FAILED};

pub(super) async fn run(cmd: EvalCommand) -> ExitCode {
    match cmd {
        EvalCommand::Run {
            gateway: g,
            route,
            candidate,
            baseline,
            dataset,
            split,
            limit,
            concurrency,
            seed,
        } => {
            let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            eprintln!(
                "evaluating {candidate} against {} on {dataset} ({split})...",
                baseline.as_deref().unwrap_or("the stable version")
            );
            let body = json!({"route": route, "candidate": candidate, "baseline": baseline,
                "dataset": dataset, "split": split, "limit": limit, "concurrency": concurrency,
                "seed": seed, "created_by": user});
            let e = match call(
                &g.url,
                g.admin_token.as_deref(),
                http::Method::POST,
                "/admin/v1/evals",
                Some(&body),
            )
            .await
            {
                Ok(v) => v,
                Err(e) => return client_exit(e),
            };
            if g.json {
                print_json(&e);
            } else {
                print!("{}", describe(&e));
            }
            if e["verdict"]["pass"] == false {
                return ExitCode::from(EXIT_FAILED);
            }
            ExitCode::SUCCESS
        }
        EvalCommand::List {
            gateway,
            route,
            candidate,
            limit,
        } => {
            let path = query(
                &format!("/admin/v1/evals?limit={limit}"),
                [("route", route), ("candidate", candidate)],
            );
            let v = match table_data(&gateway, &path).await {
                Ok(v) => v,
                Err(code) => return code,
            };
            println!(
                "{:<36}  {:<16}  {:<10}  {:<10}  {:<10}  {:>8}  VERDICT",
                "ID", "ROUTE", "CANDIDATE", "BASELINE", "STATUS", "EXAMPLES"
            );
            for e in v["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<36}  {:<16}  {:<10}  {:<10}  {:<10}  {:>8}  {}",
                    s(e, "id"),
                    s(e, "route"),
                    s(e, "candidate"),
                    s(e, "baseline"),
                    s(e, "status"),
                    e["summary"]["examples"]
                        .as_u64()
                        .map_or("-".into(), |n| n.to_string()),
                    verdict_word(e)
                );
            }
            ExitCode::SUCCESS
        }
        EvalCommand::Show { gateway, id } => {
            match table_data(&gateway, &format!("/admin/v1/evals/{}", encode(&id))).await {
                Ok(v) => {
                    print!("{}", describe(&v));
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
    }
}

fn verdict_word(e: &Value) -> &'static str {
    match e["verdict"]["pass"].as_bool() {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "-",
    }
}

/// An experiment as `eval run` and `eval show` print it.
fn describe(e: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {}: {} {} against {} on {} ({}), {}",
        s(e, "id"),
        s(e, "route"),
        s(e, "candidate"),
        s(e, "baseline"),
        s(e, "dataset_id"),
        s(e, "split"),
        s(e, "status")
    );
    let summary = &e["summary"];
    if let Some(scorers) = summary["scorers"].as_object() {
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>9} {:>24} {:>14}",
            "SCORER", "CANDIDATE", "BASELINE", "DIFFERENCE [95% CI]", "WIN/TIE/LOSS"
        );
        for (name, c) in scorers {
            let mean = |k: &str| {
                c[k]["mean"]
                    .as_f64()
                    .map_or("-".into(), |m| format!("{m:.3}"))
            };
            let diff = match c["difference"].as_object() {
                Some(d) => format!(
                    "{:+.3} [{:+.3}, {:+.3}]",
                    d["mean"].as_f64().unwrap_or(0.0),
                    d["ci"]["low"].as_f64().unwrap_or(0.0),
                    d["ci"]["high"].as_f64().unwrap_or(0.0)
                ),
                None => "-".into(),
            };
            let _ = writeln!(
                out,
                "  {:<16} {:>9} {:>9} {:>24} {:>14}",
                name,
                mean("candidate"),
                mean("baseline"),
                diff,
                format!("{}/{}/{}", c["wins"], c["ties"], c["losses"])
            );
        }
        for side in ["candidate", "baseline"] {
            let x = &summary[side];
            let _ = writeln!(
                out,
                "  {side:<9} errors {}/{}, p95 {} ms, mean tokens {}",
                x["errors"],
                x["calls"],
                x["p95_latency_ms"],
                x["mean_tokens"]
                    .as_f64()
                    .map_or("-".into(), |t| format!("{t:.1}"))
            );
        }
    }
    match e["verdict"].as_object() {
        None => {
            let _ = writeln!(
                out,
                "  no verdict (no [routes.gate], or the run did not complete)"
            );
        }
        Some(v) => {
            let word = if v["pass"] == true { "pass" } else { "fail" };
            let _ = writeln!(out, "  gate: {word}");
            for c in v["checks"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "    {}", s(c, "reason"));
            }
        }
    }
    out
}
