//! `flywheel eval`: run an evaluation, list experiments, show one with its
//! scores, intervals and verdict.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde_json::{json, Value};

use super::client::{api_error, encode, open, query, ClientError};
use super::datasets::status_of;
use super::render::{client_exit, print_json, read_ndjson, s, table_data};
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
            let resp = match open(
                &g.url,
                g.admin_token.as_deref(),
                http::Method::POST,
                "/admin/v1/evals?stream=true",
                Some(&body),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => return client_exit(e),
            };
            let tty = std::io::stderr().is_terminal();
            let mut shown: Option<std::time::Instant> = None;
            let read = read_ndjson(resp, "eval.progress", |p| {
                // On a terminal one redrawn line; in a log, a line every 5 s.
                let now = std::time::Instant::now();
                if !tty && shown.is_some_and(|t| now.duration_since(t).as_secs() < 5) {
                    return;
                }
                shown = Some(now);
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r\x1b[2K{}", progress_line(p))
                } else {
                    writeln!(err, "{}", progress_line(p))
                };
                let _ = err.flush();
            })
            .await;
            if tty && shown.is_some() {
                eprintln!();
            }
            let (status, e) = match read {
                Ok(r) => r,
                Err(message) => {
                    return client_exit(ClientError::Unreachable {
                        url: g.url.clone(),
                        message: format!("the connection broke during the evaluation: {message}"),
                    })
                }
            };
            // The stream is a 200 whatever happens; its last line says.
            if !status.is_success() || e["error"].is_object() || e["object"] != "experiment" {
                if g.json {
                    print_json(&e);
                }
                return client_exit(api_error(status_of(status, &e), &e));
            }
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
        EvalCommand::Compare { gateway, a, b } => {
            let mut both = Vec::new();
            for id in [&a, &b] {
                match super::render::get(&gateway, &format!("/admin/v1/evals/{}", encode(id))).await
                {
                    Ok(v) => both.push(v),
                    Err(code) => return code,
                }
            }
            if gateway.json {
                print_json(&json!({"object": "comparison", "a": both[0], "b": both[1]}));
            } else {
                print!("{}", compare(&both[0], &both[1]));
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

/// `[#####...] 42% 420/1000 examples, 35.2/s, ETA 16s`
fn progress_line(p: &Value) -> String {
    let (done, total) = (
        p["done"].as_u64().unwrap_or(0),
        p["total"].as_u64().unwrap_or(0),
    );
    let frac = if total > 0 {
        done as f64 / total as f64
    } else {
        1.0
    };
    let width = 24;
    let filled = ((frac * width as f64) as usize).min(width);
    format!(
        "[{}{}] {:>3.0}% {done}/{total} examples, {}/s, ETA {:.0}s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        frac * 100.0,
        p["rate_per_s"].as_f64().unwrap_or(0.0),
        p["eta_ms"].as_f64().unwrap_or(0.0) / 1000.0
    )
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

/// Two experiments side by side, scorer by scorer.
fn compare(a: &Value, b: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let title = |e: &Value| format!("{} vs {}", s(e, "candidate"), s(e, "baseline"));
    let _ = writeln!(out, "{:<20} {:>28} {:>28}", "", s(a, "id"), s(b, "id"));
    let _ = writeln!(out, "{:<20} {:>28} {:>28}", "versions", title(a), title(b));
    let _ = writeln!(
        out,
        "{:<20} {:>28} {:>28}",
        "dataset",
        s(a, "dataset_id"),
        s(b, "dataset_id")
    );
    let mut names: Vec<&String> = Vec::new();
    for e in [a, b] {
        for k in e["summary"]["scorers"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            if !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let cell = |e: &Value, name: &str| -> String {
        let c = &e["summary"]["scorers"][name];
        match (
            c["candidate"]["mean"].as_f64(),
            c["baseline"]["mean"].as_f64(),
            c["difference"]["mean"].as_f64(),
        ) {
            (Some(x), Some(y), Some(d)) => format!("{x:.3} vs {y:.3} ({d:+.3})"),
            _ => "-".into(),
        }
    };
    for name in names {
        let _ = writeln!(
            out,
            "{:<20} {:>28} {:>28}",
            name,
            cell(a, name),
            cell(b, name)
        );
    }
    let side = |e: &Value| {
        let c = &e["summary"]["candidate"];
        format!(
            "errors {}/{}, p95 {} ms",
            c["errors"], c["calls"], c["p95_latency_ms"]
        )
    };
    let _ = writeln!(
        out,
        "{:<20} {:>28} {:>28}",
        "candidate calls",
        side(a),
        side(b)
    );
    let _ = writeln!(
        out,
        "{:<20} {:>28} {:>28}",
        "verdict",
        verdict_word(a),
        verdict_word(b)
    );
    out
}
