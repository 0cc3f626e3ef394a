//! The `flywheel` binary: parse the command line, load config, run, and map the
//! result to an exit code (see `flywheel --help`).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

mod cmd_datasets;

use clap::Parser;
use serde_json::Value;

use flywheel::cli::{
    Cli, Command, FeedbackCommand, GatewayArgs, InteractionsCommand, KeysCommand, ModelsCommand,
    PrivacyCommand, RolloutCommand, ServeArgs,
};
use flywheel::client::{admin_call, call, ClientError};
use flywheel::config::{Config, Overrides};

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if matches!(cli.command, Command::Serve(_)) {
        flywheel::runtime::alloc::return_large_buffers();
    }
    // `serve` runs its connections on shard threads of their own (see
    // `runtime::shard`), which also accept them; this thread runs the control
    // loops and the shutdown sequence.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLYWHEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("FLYWHEEL_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_config(args: &ServeArgs) -> Result<Config, ExitCode> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let flags = Overrides {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
        db: args.db.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    };
    Config::load(args.config.as_deref(), &env, &flags).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Config(args) => match load_config(&args) {
            Ok(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Interactions(cmd) => interactions(cmd).await,
        Command::Feedback(cmd) => feedback(cmd).await,
        Command::Privacy(cmd) => privacy(cmd).await,
        Command::Datasets(cmd) => cmd_datasets::run(cmd).await,
        Command::Models(cmd) => models(cmd).await,
        Command::Rollout(cmd) => rollout(cmd).await,
        Command::Events {
            gateway,
            limit,
            kind,
        } => {
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
        Command::Keys(KeysCommand::Hash { key }) => {
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
                flywheel::crypto::hex(&flywheel::crypto::sha256(key.as_bytes()))
            );
            ExitCode::SUCCESS
        }
        Command::MockUpstream { listen } => {
            let listener = match tokio::net::TcpListener::bind(&listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot listen on {listen}: {e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            };
            tracing::info!(addr = %listen, "mock upstream listening");
            match flywheel::mock::serve(listener, flywheel::runtime::shutdown::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Installed first, so a SIGTERM from here on drains instead of killing.
    let shutdown = flywheel::runtime::shutdown::signal();
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match flywheel::run(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn client_exit(e: ClientError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(match e {
        ClientError::Url(_) => EXIT_USAGE,
        ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
        ClientError::Api { .. } => EXIT_FAILED,
    })
}

async fn get(g: &GatewayArgs, path: &str) -> Result<Value, ExitCode> {
    admin_call(&g.url, g.admin_token.as_deref(), http::Method::GET, path)
        .await
        .map_err(client_exit)
}

/// Fetches what a listing command shows. With `--json` it prints the answer
/// and returns `Err(SUCCESS)`: nothing is left to do; failures return their
/// exit code the same way. Otherwise the data comes back for a table.
async fn table_data(g: &GatewayArgs, path: &str) -> Result<Value, ExitCode> {
    let v = get(g, path).await?;
    if g.json {
        print_json(&v);
        return Err(ExitCode::SUCCESS);
    }
    Ok(v)
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn num(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        _ => "-".into(),
    }
}

async fn interactions(cmd: InteractionsCommand) -> ExitCode {
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

/// Appends the given parameters, percent-encoded, to a path that already has a query.
fn query<const N: usize>(path: &str, params: [(&str, Option<String>); N]) -> String {
    let mut out = path.to_string();
    for (k, v) in params {
        if let Some(v) = v {
            out.push_str(&format!("&{k}={}", encode(&v)));
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters, which is safe in a path
/// segment and in a query value alike.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query or path value.
fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, COMPONENT).to_string()
}

async fn feedback(cmd: FeedbackCommand) -> ExitCode {
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

async fn privacy(cmd: PrivacyCommand) -> ExitCode {
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
        println!(
            "{verb}: {} interactions, {} feedback, {} raw payloads",
            num(r, "interactions"),
            num(r, "feedback"),
            num(r, "raw_payloads")
        );
    }
    ExitCode::SUCCESS
}

/// Sends an admin call and prints the answer (`--json`) or a line from `line`.
async fn admin_action(
    g: &GatewayArgs,
    method: http::Method,
    path: &str,
    body: Option<Value>,
    line: impl Fn(&Value) -> String,
) -> ExitCode {
    match call(
        &g.url,
        g.admin_token.as_deref(),
        method,
        path,
        body.as_ref(),
    )
    .await
    {
        Ok(v) => {
            if g.json {
                print_json(&v);
            } else {
                println!("{}", line(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => client_exit(e),
    }
}

async fn models(cmd: ModelsCommand) -> ExitCode {
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

fn rollout_line(v: &Value) -> String {
    let mut line = format!(
        "rollout {}  {}/{} vs {}  {}",
        s(v, "id"),
        s(v, "route"),
        s(v, "canary"),
        s(v, "baseline"),
        s(v, "status")
    );
    let live = &v["live"];
    if live.is_object() {
        let side = |o: &Value| {
            format!(
                "{} req, {} errors, p95 {} ms, {} up / {} down",
                num(o, "requests"),
                num(o, "errors"),
                num(o, "p95_latency_ms"),
                num(o, "thumbs_up"),
                num(o, "thumbs_down")
            )
        };
        // The live weight leads because it is what callers get; the step's
        // own follows when an operator has set a different one by hand.
        let (weight, step_weight) = (
            num(live, "weight_percent"),
            num(live, "step_weight_percent"),
        );
        let step_note = if weight == step_weight {
            String::new()
        } else {
            format!(" (step's weight {step_weight}%)")
        };
        line.push_str(&format!(
            "\n  step {}/{} at {weight}%{step_note} for {}s (hold {}s, {} requests)\n  canary: {}\n  stable: {}\n  next:   {}",
            num(live, "step"),
            num(live, "steps"),
            num(live, "elapsed_secs"),
            num(live, "min_duration_secs"),
            num(live, "min_requests"),
            side(&live["canary"]),
            side(&live["stable"]),
            s(live, "decision")
        ));
        // Segment by segment, only when there is more than one to compare.
        let segments = live["by_segment"].as_object().filter(|m| m.len() > 1);
        for (seg, o) in segments.into_iter().flatten() {
            let short = |o: &Value| {
                format!(
                    "{} req, {} errors, {} down",
                    num(o, "requests"),
                    num(o, "errors"),
                    num(o, "thumbs_down")
                )
            };
            let name = if seg.is_empty() {
                "(none)"
            } else {
                seg.as_str()
            };
            line.push_str(&format!(
                "\n  segment {name}: canary {} | stable {}",
                short(&o["canary"]),
                short(&o["stable"])
            ));
        }
    } else if let Some(reason) = v["reason"].as_str() {
        line.push_str(&format!("\n  reason: {reason}"));
    }
    line
}

async fn rollout(cmd: RolloutCommand) -> ExitCode {
    let post = http::Method::POST;
    match cmd {
        RolloutCommand::Start {
            gateway,
            route,
            version,
            plan,
        } => {
            let mut body = serde_json::json!({ "route": route, "version": version });
            if let Some(path) = plan {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: cannot read plan {}: {e}", path.display());
                        return ExitCode::from(EXIT_USAGE);
                    }
                };
                match text.parse::<toml::Table>() {
                    Ok(t) => body["plan"] = serde_json::to_value(t).unwrap_or_default(),
                    Err(e) => {
                        eprintln!("error: plan {} is not valid TOML: {e}", path.display());
                        return ExitCode::from(EXIT_USAGE);
                    }
                }
            }
            admin_action(
                &gateway,
                post,
                "/admin/v1/rollouts",
                Some(body),
                rollout_line,
            )
            .await
        }
        RolloutCommand::Status { gateway, id, route } => {
            let path = match (&id, &route) {
                (Some(id), _) => format!("/admin/v1/rollouts/{}", encode(id)),
                (None, Some(r)) => format!("/admin/v1/rollouts?route={}", encode(r)),
                (None, None) => "/admin/v1/rollouts?active=true".to_string(),
            };
            admin_action(&gateway, http::Method::GET, &path, None, |v| {
                match v["data"].as_array() {
                    Some(list) if list.is_empty() => "no rollouts".to_string(),
                    Some(list) => list.iter().map(rollout_line).collect::<Vec<_>>().join("\n"),
                    None => rollout_line(v),
                }
            })
            .await
        }
        RolloutCommand::Pause { gateway, id } => rollout_op(gateway, id, "pause", None).await,
        RolloutCommand::Resume { gateway, id } => rollout_op(gateway, id, "resume", None).await,
        RolloutCommand::Promote { gateway, id } => rollout_op(gateway, id, "promote", None).await,
        RolloutCommand::Abort {
            gateway,
            id,
            reason,
        } => {
            rollout_op(
                gateway,
                id,
                "abort",
                Some(serde_json::json!({ "reason": reason })),
            )
            .await
        }
        RolloutCommand::SetWeight {
            gateway,
            id,
            weight_percent,
        } => {
            rollout_op(
                gateway,
                id,
                "weight",
                Some(serde_json::json!({ "weight_percent": weight_percent })),
            )
            .await
        }
    }
}

async fn rollout_op(gateway: GatewayArgs, id: String, op: &str, body: Option<Value>) -> ExitCode {
    let path = format!("/admin/v1/rollouts/{}/{op}", encode(&id));
    admin_action(
        &gateway,
        http::Method::POST,
        &path,
        body.or(Some(serde_json::json!({}))),
        rollout_line,
    )
    .await
}
