//! Admin endpoints for dataset versions: build one, list them, read a
//! manifest, download a file. A build runs on the blocking pool; with
//! `?stream=true` the answer is NDJSON progress lines ending with the manifest
//! (or an error), and closing the connection cancels the build.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::models::read_json;
use super::Admin;
use super::{blocking, json_response, non_empty, parse_limit};
use crate::datasets::{self, BuildError, BuildRequest};
use crate::error::GatewayError;
use crate::http1::body::{ClientBody, ResponseBody};

type Resp = Response<ResponseBody>;

fn build_error_json(e: &BuildError) -> (StatusCode, Value) {
    let err = GatewayError::from(e);
    let mut v: Value = serde_json::from_slice(&err.body()).unwrap_or_default();
    if let BuildError::Empty { counts, .. } = e {
        v["error"]["counts"] = json!(counts);
    }
    (err.status(), v)
}

/// `POST /admin/v1/datasets` with `{"spec": {...}, "parent"?, "created_by"?}`.
pub async fn create(api: &Arc<Admin>, query: &HashMap<String, String>, body: ClientBody) -> Resp {
    let body = match read_json(api, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let spec = match datasets::parse_spec(
        body.get("spec").cloned().unwrap_or_else(|| json!({})),
        std::time::SystemTime::now(),
    ) {
        Ok(s) => s,
        Err(e) => {
            let (status, v) = build_error_json(&BuildError::from(e));
            return json_response(status, &v);
        }
    };
    let req = BuildRequest {
        spec,
        parent: text("parent").filter(|p| !p.is_empty()),
        created_by: text("created_by")
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "admin".into()),
    };
    let root = api.config.datasets.dir.clone();
    let store = api.store.clone();
    let stream = query
        .get("stream")
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1");
    if !stream {
        let out = tokio::task::spawn_blocking(move || {
            datasets::build(store.as_ref(), &root, req, &mut |_| true)
        })
        .await;
        return match out {
            Ok(Ok(built)) => {
                let status = if built.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                json_response(status, &built.manifest)
            }
            Ok(Err(e)) => {
                log_failure(&e);
                let (status, v) = build_error_json(&e);
                json_response(status, &v)
            }
            Err(_) => GatewayError::Internal.response(),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let line = |v: &Value| {
            let mut b = serde_json::to_vec(v).unwrap_or_default();
            b.push(b'\n');
            Ok(Bytes::from(b))
        };
        let out = datasets::build(store.as_ref(), &root, req, &mut |p| {
            let mut v = json!(p);
            v["object"] = json!("dataset.progress");
            tx.blocking_send(line(&v)).is_ok()
        });
        let last = match out {
            Ok(built) => built.manifest,
            Err(e) => {
                log_failure(&e);
                build_error_json(&e).1
            }
        };
        let _ = tx.blocking_send(line(&last));
    });
    let mut r = Response::new(ResponseBody::Channel(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

fn log_failure(e: &BuildError) {
    match e {
        BuildError::Io(_) | BuildError::Store(_) => {
            tracing::error!(error = %e, "dataset build failed")
        }
        _ => tracing::info!(error = %e, "dataset build refused"),
    }
}

/// `GET /admin/v1/datasets?route=&limit=`: newest first.
pub async fn list(api: &Arc<Admin>, query: &HashMap<String, String>) -> Resp {
    let limit = match parse_limit(query) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let route = non_empty(query, "route");
    let rows = match blocking(api, move |s| s.list_datasets(route.as_deref(), limit)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let data: Vec<Value> = rows.into_iter().map(|r| r.manifest).collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

fn not_found(id: &str) -> Resp {
    (GatewayError::NotFound(format!("no dataset {id}; see GET /admin/v1/datasets"))).response()
}

/// `GET /admin/v1/datasets/{id}`: the manifest.
pub async fn show(api: &Arc<Admin>, id: &str) -> Resp {
    if !datasets::valid_id(id) {
        return not_found(id);
    }
    let key = id.to_string();
    match blocking(api, move |s| s.get_dataset(&key)).await {
        Ok(Some(row)) => json_response(StatusCode::OK, &row.manifest),
        Ok(None) => not_found(id),
        Err(r) => r,
    }
}

/// `GET /admin/v1/datasets/{id}/files/{name}`: one file, streamed.
pub async fn file(api: &Arc<Admin>, id: &str, name: &str) -> Resp {
    if !datasets::valid_id(id) {
        return not_found(id);
    }
    if !datasets::valid_file_name(name) {
        return GatewayError::NotFound(format!(
            "a dataset has no file {name:?}; its manifest lists the files"
        ))
        .response();
    }
    let key = id.to_string();
    match blocking(api, move |s| s.get_dataset(&key)).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(id),
        Err(r) => return r,
    }
    let path = datasets::version_dir(&api.config.datasets.dir, id).join(name);
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return GatewayError::NotFound(format!("dataset {id} has no file {name}")).response()
        }
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot open dataset file");
            return GatewayError::Internal.response();
        }
    };
    let len = f.metadata().map(|m| m.len()).ok();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(Box::new(e) as _));
                return;
            }
        }
    });
    let mut r = Response::new(ResponseBody::Channel(rx));
    let kind = if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".jsonl") {
        "application/jsonl"
    } else {
        "text/plain; charset=utf-8"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(len) = len {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}
