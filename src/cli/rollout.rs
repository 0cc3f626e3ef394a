//! `flywheel rollout`: start, watch and steer canary rollouts.

use std::process::ExitCode;

use serde_json::Value;

use super::client::encode;
use super::render::{admin_action, num, s};
use super::{GatewayArgs, RolloutCommand, EXIT_USAGE};

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

pub(super) async fn run(cmd: RolloutCommand) -> ExitCode {
    let post = http::Method::POST;
    match cmd {
        RolloutCommand::Start {
            gateway,
            route,
            version,
            plan,
            override_gate,
        } => {
            let mut body = serde_json::json!({ "route": route, "version": version });
            if let Some(reason) = override_gate {
                body["override_gate"] = reason.into();
            }
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
