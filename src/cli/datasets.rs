//! `flywheel datasets ...`: talks to a running gateway's admin API, shows
//! build progress, compares versions and downloads files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::crypto::Sha256;

use super::client::{api_error, encode, open, query, ClientError};
use super::render::{client_exit, get, num, print_json, read_ndjson, s, table_data, thousands};
use super::{DatasetBuildArgs, DatasetsCommand, GatewayArgs, EXIT_FAILED, EXIT_USAGE};

pub(super) async fn run(cmd: DatasetsCommand) -> ExitCode {
    match cmd {
        DatasetsCommand::Build(args) => build(*args).await,
        DatasetsCommand::List {
            gateway,
            route,
            limit,
        } => list(&gateway, route, limit).await,
        DatasetsCommand::Show { gateway, id, ids } => show(&gateway, &id, ids).await,
        DatasetsCommand::Diff { gateway, a, b } => diff(&gateway, &a, &b).await,
        DatasetsCommand::Export {
            gateway,
            id,
            format,
            split,
            out,
        } => {
            let splits: &[&str] = match split.as_str() {
                "all" => &["train", "eval"],
                "train" => &["train"],
                "eval" => &["eval"],
                other => {
                    eprintln!("error: --split {other:?}: use train, eval or all");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            if crate::datasets::curate::Format::parse(&format).is_none() {
                eprintln!("error: --format {format:?}: use sft, dpo, dpo-trl or kto");
                return ExitCode::from(EXIT_USAGE);
            }
            if let Err(e) = writable(&out) {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            let manifest = match get(&gateway, &format!("/admin/v1/datasets/{}", encode(&id))).await
            {
                Ok(v) => v,
                Err(code) => return code,
            };
            export(&gateway, &manifest, &[format.as_str()], splits, &out).await
        }
    }
}

/// Creates `dir` and proves a file can be written there, before any work.
fn writable(dir: &Path) -> Result<(), String> {
    let fail =
        |e: std::io::Error| format!("--out {}: {e}; choose a writable directory", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".flywheel-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

/// The spec the flags and the spec file describe, as JSON for the API.
fn spec_of(a: &DatasetBuildArgs) -> Result<Value, String> {
    let mut spec = match &a.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--spec {}: {e}", path.display()))?;
            let t: toml::Table = toml::from_str(&text)
                .map_err(|e| format!("--spec {}: {}", path.display(), e.message()))?;
            serde_json::to_value(t).map_err(|e| e.to_string())?
        }
        None => json!({}),
    };
    let obj = spec.as_object_mut().expect("a TOML table is an object");
    let mut set = |path: &[&str], v: Value| {
        let mut at: &mut Map<String, Value> = obj;
        for key in &path[..path.len() - 1] {
            at = at
                .entry(key.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("spec sections are tables");
        }
        at.insert(path[path.len() - 1].to_string(), v);
    };
    if let Some(r) = &a.route {
        set(&["route"], json!(r));
    }
    if let Some(m) = &a.model {
        set(&["model"], json!(m));
    }
    if let Some(s) = &a.segment {
        set(&["segment"], json!(s));
    }
    if !a.versions.is_empty() {
        set(&["versions"], json!(a.versions));
    }
    if let Some(t) = &a.since {
        set(&["since"], json!(t));
    }
    if let Some(t) = &a.until {
        set(&["until"], json!(t));
    }
    for (on, key) in [
        (a.thumbs_up, "thumbs_up"),
        (a.corrected, "corrected"),
        (a.no_thumbs_down, "no_thumbs_down"),
        (a.outcome_true, "outcome_true"),
    ] {
        if on {
            set(&["feedback", key], json!(true));
        }
    }
    if let Some(r) = a.min_rating {
        set(&["feedback", "min_rating"], json!(r));
    }
    if let Some(q) = a.min_quality {
        set(&["min_quality"], json!(q));
    }
    if a.drop_refusals {
        set(&["drop_refusals"], json!(true));
    }
    if let Some(t) = a.near_threshold {
        set(&["dedupe", "near_threshold"], json!(t));
    }
    if let Some(r) = a.eval_ratio {
        set(&["split", "eval_ratio"], json!(r));
    }
    if let Some(n) = a.eval_size {
        set(&["split", "eval_size"], json!(n));
    }
    if !a.emit.is_empty() {
        set(&["emit"], json!(a.emit));
    }
    Ok(spec)
}

/// Draws build progress on stderr: one redrawn line on a terminal, a line
/// every few seconds otherwise.
struct Bar {
    tty: bool,
    last: Option<Instant>,
    phase: String,
    drawn: bool,
}

impl Bar {
    fn draw(&mut self, p: &Value) {
        let now = Instant::now();
        let phase = p["phase"].as_str().unwrap_or("");
        if !self.tty
            && phase == self.phase
            && self
                .last
                .is_some_and(|t| now.duration_since(t).as_secs() < 5)
        {
            return;
        }
        self.last = Some(now);
        self.phase = phase.to_string();
        let get = |k: &str| p[k].as_u64().unwrap_or(0);
        let (scanned, total, kept) = (get("scanned"), get("total"), get("kept"));
        let secs = get("elapsed_ms") as f64 / 1000.0;
        let rate = if secs > 0.0 {
            scanned as f64 / secs
        } else {
            0.0
        };
        let eta = if rate > 0.0 && total > scanned {
            format!("{:.0}s", (total - scanned) as f64 / rate)
        } else {
            "-".into()
        };
        let frac = if total > 0 {
            scanned as f64 / total as f64
        } else {
            1.0
        };
        let width = 24;
        let filled = ((frac * width as f64) as usize).min(width);
        let line = format!(
            "[{}{}] {:>3.0}% {}/{} scanned, {} kept, {} rows/s, ETA {}{}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            frac * 100.0,
            thousands(scanned),
            thousands(total),
            thousands(kept),
            thousands(rate as u64),
            eta,
            if p["phase"] == "writing" {
                ", writing files"
            } else {
                ""
            },
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn done(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

async fn build(a: DatasetBuildArgs) -> ExitCode {
    let spec = match spec_of(&a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(out) = &a.out {
        if let Err(e) = writable(out) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let body = json!({"spec": spec, "parent": a.parent, "created_by": user});
    let g = &a.gateway;
    let resp = match open(
        &g.url,
        g.admin_token.as_deref(),
        http::Method::POST,
        "/admin/v1/datasets?stream=true",
        Some(&body),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return client_exit(e),
    };
    let mut bar = Bar {
        tty: std::io::stderr().is_terminal(),
        last: None,
        phase: String::new(),
        drawn: false,
    };
    let read = read_ndjson(resp, "dataset.progress", |v| bar.draw(v)).await;
    bar.done();
    let (status, last) = match read {
        Ok(r) => r,
        Err(message) => {
            return client_exit(ClientError::Unreachable {
                url: g.url.clone(),
                message: format!("the connection broke during the build: {message}"),
            })
        }
    };
    if !status.is_success() || last.get("error").is_some() || last["object"] != "dataset" {
        let code = status_of(status, &last);
        let e = api_error(code, &last);
        if g.json {
            print_json(&last);
        }
        if let Some(counts) = last.pointer("/error/counts") {
            eprintln!("error: {e}");
            eprintln!("what each stage removed:");
            eprint!("{}", funnel(counts));
            return ExitCode::from(EXIT_FAILED);
        }
        return client_exit(e);
    }
    if g.json {
        print_json(&last);
    } else {
        let c = &last["counts"];
        println!("{}", s(&last, "id"));
        println!("content_hash  {}", s(&last, "content_hash"));
        println!(
            "counts        scanned {}  kept {}  train {}  eval {}  pairs {}",
            num(c, "scanned"),
            num(c, "kept"),
            num(c, "train"),
            num(c, "eval"),
            num(c, "pairs")
        );
        eprintln!(
            "built in {:.1}s; `flywheel datasets show {}` for the whole manifest",
            last["build"]["seconds"].as_f64().unwrap_or(0.0),
            s(&last, "id")
        );
    }
    if let Some(out) = &a.out {
        let formats: Vec<String> = last["spec"]["emit"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        let formats: Vec<&str> = formats.iter().map(String::as_str).collect();
        return export(g, &last, &formats, &["train", "eval"], out).await;
    }
    ExitCode::SUCCESS
}

/// The status an NDJSON error line stands for (the stream itself was a 200).
pub(super) fn status_of(status: http::StatusCode, last: &Value) -> http::StatusCode {
    if !status.is_success() {
        return status;
    }
    let code = last.pointer("/error/code").and_then(Value::as_str);
    crate::error::status_of_code(code.unwrap_or_default())
}

/// The funnel, in pipeline order: scanned, each stage that removed something,
/// then what is left.
fn funnel(c: &Value) -> String {
    let get = |k: &str| c[k].as_u64().unwrap_or(0);
    let mut out = format!("  {:<28} {:>10}\n", "scanned", thousands(get("scanned")));
    for stage in crate::datasets::curate::STAGES {
        let n = get(&format!("removed_by_{stage}"));
        if n > 0 {
            out += &format!("  {:<28} {:>10}\n", format!("- {stage}"), thousands(n));
        }
    }
    for k in ["kept", "train", "eval", "pairs"] {
        out += &format!("  {:<28} {:>10}\n", k, thousands(get(k)));
    }
    out
}

async fn list(g: &GatewayArgs, route: Option<String>, limit: usize) -> ExitCode {
    let path = query(
        &format!("/admin/v1/datasets?limit={limit}"),
        [("route", route)],
    );
    let v = match table_data(g, &path).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    println!(
        "{:<19}  {:<16}  {:<24}  {:>9}  {:>7}  {:>7}  {:<19}  CONTENT_HASH",
        "ID", "ROUTE", "CREATED", "KEPT", "EVAL", "PAIRS", "PARENT"
    );
    for d in v["data"].as_array().into_iter().flatten() {
        let c = &d["counts"];
        println!(
            "{:<19}  {:<16}  {:<24}  {:>9}  {:>7}  {:>7}  {:<19}  {}",
            s(d, "id"),
            s(d, "route"),
            time_of(d),
            num(c, "kept"),
            num(c, "eval"),
            num(c, "pairs"),
            s(d, "parent"),
            &s(d, "content_hash")[..s(d, "content_hash").len().min(16)],
        );
    }
    ExitCode::SUCCESS
}

fn time_of(d: &Value) -> String {
    let ms = d["created_at_ms"].as_i64().unwrap_or(0);
    let created_by = s(d, "created_by");
    format!("{} {created_by}", crate::clock::format_time(ms))
}

async fn show(g: &GatewayArgs, id: &str, ids: bool) -> ExitCode {
    let v = match get(g, &format!("/admin/v1/datasets/{}", encode(id))).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let lineage = if ids {
        match download_text(g, id, "interactions.tsv").await {
            Ok(t) => Some(t),
            Err(code) => return code,
        }
    } else {
        None
    };
    if g.json {
        let mut v = v;
        if let Some(t) = &lineage {
            v["interactions"] = t
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    json!({"id": f.first(), "version": f.get(1), "split": f.get(2), "role": f.get(3)})
                })
                .collect();
        }
        print_json(&v);
        return ExitCode::SUCCESS;
    }
    println!("id            {}", s(&v, "id"));
    println!("content_hash  {}", s(&v, "content_hash"));
    println!("route         {}", s(&v, "route"));
    println!("parent        {}", s(&v, "parent"));
    println!("created       {}", time_of(&v));
    println!("spec          {}", v["spec"]);
    println!("counts");
    print!("{}", funnel(&v["counts"]));
    println!("versions");
    for (ver, n) in v["lineage"]["by_version"].as_object().into_iter().flatten() {
        println!("  {ver:<28} {:>10}", thousands(n.as_u64().unwrap_or(0)));
    }
    println!("files");
    for f in v["files"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} {:>9} rows {:>12} bytes  sha256 {}",
            s(f, "name"),
            num(f, "rows"),
            num(f, "bytes"),
            s(f, "sha256")
        );
    }
    if let Some(t) = lineage {
        println!("interactions (id, version, split, role)");
        print!("{t}");
    }
    ExitCode::SUCCESS
}

/// Reads a whole (small) file of a dataset as text.
async fn download_text(g: &GatewayArgs, id: &str, name: &str) -> Result<String, ExitCode> {
    let mut bytes = Vec::new();
    fetch(g, id, name, &mut |chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Streams a dataset file through `sink`.
async fn fetch(
    g: &GatewayArgs,
    id: &str,
    name: &str,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), ExitCode> {
    let path = format!("/admin/v1/datasets/{}/files/{}", encode(id), encode(name));
    let resp = open(
        &g.url,
        g.admin_token.as_deref(),
        http::Method::GET,
        &path,
        None,
    )
    .await
    .map_err(client_exit)?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return Err(client_exit(api_error(status, &v)));
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            client_exit(ClientError::Unreachable {
                url: g.url.clone(),
                message: format!("the download of {name} broke: {e}"),
            })
        })?;
        if let Ok(data) = frame.into_data() {
            sink(&data).map_err(|e| {
                eprintln!("error: writing {name}: {e}");
                ExitCode::from(EXIT_FAILED)
            })?;
        }
    }
    Ok(())
}

/// Downloads the files of `formats` x `splits` into `out`, each checked
/// against the manifest's sha256 and renamed into place only when it matches.
async fn export(
    g: &GatewayArgs,
    manifest: &Value,
    formats: &[&str],
    splits: &[&str],
    out: &Path,
) -> ExitCode {
    let id = s(manifest, "id").to_string();
    let files: Vec<&Value> = manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| formats.contains(&s(f, "format")) && splits.contains(&s(f, "split")))
        .collect();
    if files.is_empty() {
        eprintln!(
            "error: dataset {id} has no {} files; it emitted {}",
            formats.join("/"),
            manifest["spec"]["emit"]
        );
        return ExitCode::from(EXIT_FAILED);
    }
    let mut written: Vec<(PathBuf, u64)> = Vec::new();
    for f in files {
        let name = s(f, "name").to_string();
        let dest = out.join(&name);
        let partial = out.join(format!(".{name}.partial"));
        let mut file = match std::fs::File::create(&partial) {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => {
                eprintln!("error: {}: {e}", partial.display());
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let mut hash = Sha256::default();
        let got = fetch(g, &id, &name, &mut |chunk| {
            hash.update(chunk);
            file.write_all(chunk)
        })
        .await;
        let flushed = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all());
        let sum = crate::crypto::hex(&hash.finish());
        if let Err(code) = got {
            let _ = std::fs::remove_file(&partial);
            return code;
        }
        if let Err(e) = flushed {
            let _ = std::fs::remove_file(&partial);
            eprintln!("error: {}: {e}", dest.display());
            return ExitCode::from(EXIT_FAILED);
        }
        if sum != s(f, "sha256") {
            let _ = std::fs::remove_file(&partial);
            eprintln!(
                "error: {name}: sha256 {sum} does not match the manifest's {}",
                s(f, "sha256")
            );
            return ExitCode::from(EXIT_FAILED);
        }
        if let Err(e) = std::fs::rename(&partial, &dest) {
            eprintln!("error: {}: {e}", dest.display());
            return ExitCode::from(EXIT_FAILED);
        }
        written.push((dest, f["rows"].as_u64().unwrap_or(0)));
    }
    let manifest_path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
    if let Err(e) = std::fs::write(&manifest_path, text) {
        eprintln!("error: {}: {e}", manifest_path.display());
        return ExitCode::from(EXIT_FAILED);
    }
    if g.json {
        let files: Vec<Value> = written
            .iter()
            .map(|(p, rows)| json!({"path": p, "rows": rows}))
            .collect();
        print_json(&json!({"id": id, "files": files, "manifest": manifest_path}));
    } else {
        for (p, rows) in &written {
            println!("{}  {} rows", p.display(), thousands(*rows));
        }
    }
    ExitCode::SUCCESS
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Ids of the examples (not pair-only rows) in a lineage file.
fn examples(tsv: &str) -> BTreeSet<String> {
    tsv.lines()
        .filter(|l| l.ends_with("\texample"))
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect()
}

async fn diff(g: &GatewayArgs, a: &str, b: &str) -> ExitCode {
    let mut sides = Vec::new();
    for id in [a, b] {
        let m = match get(g, &format!("/admin/v1/datasets/{}", encode(id))).await {
            Ok(v) => v,
            Err(code) => return code,
        };
        let ids = match download_text(g, id, "interactions.tsv").await {
            Ok(t) => examples(&t),
            Err(code) => return code,
        };
        sides.push((m, ids));
    }
    let (ma, ia) = &sides[0];
    let (mb, ib) = &sides[1];
    let (mut sa, mut sb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &ma["spec"], &mut sa);
    flatten("", &mb["spec"], &mut sb);
    let keys: BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
    let spec: Vec<Value> = keys
        .into_iter()
        .filter(|k| sa.get(*k) != sb.get(*k))
        .map(|k| json!({"key": k, "a": sa.get(k), "b": sb.get(k)}))
        .collect();
    let mut counts = Map::new();
    let ca = ma["counts"].as_object().cloned().unwrap_or_default();
    let cb = mb["counts"].as_object().cloned().unwrap_or_default();
    for k in ca.keys().chain(cb.keys()).collect::<BTreeSet<_>>() {
        let x = ca.get(k).and_then(Value::as_i64).unwrap_or(0);
        let y = cb.get(k).and_then(Value::as_i64).unwrap_or(0);
        if x != 0 || y != 0 {
            counts.insert(k.clone(), json!({"a": x, "b": y, "delta": y - x}));
        }
    }
    let added = ib.difference(ia).count();
    let removed = ia.difference(ib).count();
    let common = ia.intersection(ib).count();
    let out = json!({
        "a": a, "b": b,
        "content_hash": {"a": ma["content_hash"], "b": mb["content_hash"]},
        "spec": spec,
        "counts": counts,
        "examples": {"added": added, "removed": removed, "unchanged": common},
        "b_descends_from_a": mb["parent"] == json!(a),
    });
    if g.json {
        print_json(&out);
        return ExitCode::SUCCESS;
    }
    println!("{a} -> {b}");
    if spec.is_empty() {
        println!("spec: identical");
    } else {
        println!("spec:");
        for d in &spec {
            println!("  {:<28} {} -> {}", s(d, "key"), d["a"], d["b"]);
        }
    }
    println!("counts:");
    for (k, d) in &counts {
        println!(
            "  {:<28} {:>10} -> {:>10}  ({:+})",
            k,
            d["a"],
            d["b"],
            d["delta"].as_i64().unwrap_or(0)
        );
    }
    println!("examples: +{added} added, -{removed} removed, {common} in both");
    ExitCode::SUCCESS
}
