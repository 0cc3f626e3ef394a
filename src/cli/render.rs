//! How every command's answer looks: the JSON with `--json`, else a table
//! or a line; a failed call as an `error:` line and its exit code; and the
//! cells (missing values as `-`, numbers with thousands separators).
//!
//! The bytes written here are what scripts read: a change to one is a change
//! to the CLI's interface, and `tests/it/cli.rs` holds some of them.

use std::process::ExitCode;

use serde_json::Value;

use super::client::{admin_call, call, ClientError};
use super::{GatewayArgs, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE};

pub(super) fn client_exit(e: ClientError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(match e {
        ClientError::Url(_) => EXIT_USAGE,
        ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
        ClientError::Api { .. } => EXIT_FAILED,
    })
}

pub(super) async fn get(g: &GatewayArgs, path: &str) -> Result<Value, ExitCode> {
    admin_call(&g.url, g.admin_token.as_deref(), http::Method::GET, path)
        .await
        .map_err(client_exit)
}

/// Fetches what a listing command shows. With `--json` it prints the answer
/// and returns `Err(SUCCESS)`: nothing is left to do; failures return their
/// exit code the same way. Otherwise the data comes back for a table.
pub(super) async fn table_data(g: &GatewayArgs, path: &str) -> Result<Value, ExitCode> {
    let v = get(g, path).await?;
    if g.json {
        print_json(&v);
        return Err(ExitCode::SUCCESS);
    }
    Ok(v)
}

pub(super) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub(super) fn num(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        _ => "-".into(),
    }
}

/// Sends an admin call and prints the answer (`--json`) or a line from `line`.
pub(super) async fn admin_action(
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

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads an NDJSON stream (a dataset build's or an evaluation's), handing
/// each line whose `object` is `progress` to `on_progress`; returns the
/// answer's status and its last other line, or why the stream broke.
pub(super) async fn read_ndjson(
    resp: http::Response<hyper::body::Incoming>,
    progress: &str,
    mut on_progress: impl FnMut(&Value),
) -> Result<(http::StatusCode, Value), String> {
    use http_body_util::BodyExt;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut last = Value::Null;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let v: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
            if v["object"] == progress {
                on_progress(&v);
            } else {
                last = v;
            }
        }
    }
    if !buf.is_empty() {
        last = serde_json::from_slice(&buf).unwrap_or(Value::Null);
    }
    Ok((status, last))
}
