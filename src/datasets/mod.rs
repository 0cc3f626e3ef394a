//! Dataset versions: a build reads the store through the curation pipeline
//! ([`curate`]), writes JSONL files and a manifest into a staging
//! directory, and commits the version by renaming that directory to its id and
//! then inserting its row. A build interrupted at any point leaves no version:
//! a staging directory, or a directory without a row, is removed by the next
//! build.
//!
//! Memory stays flat in the number of rows scanned: records stream from the
//! store, kept examples are spilled to a file in the staging directory and read
//! back once the split is known, and the builder holds only per-record keys.
//!
//! Layout of one version, `<datasets dir>/<id>/`:
//! - `train.<format>.jsonl`, `eval.<format>.jsonl` for each format emitted;
//! - `interactions.tsv`: lineage, one line per interaction used
//!   (`id  version  split  role`, role `example`, `chosen` or `rejected`);
//! - `SHA256SUMS` (the `sha256sum` format, so `sha256sum -c` checks the files);
//!   the content hash is the SHA-256 of this file;
//! - `manifest.json`: what `datasets show` prints.

pub mod curate;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use self::curate::{
    correction_pair, dpo_line, kto_line, sft_line, thumbs_pair, Builder, DpoFormat, Example,
    Feedback, Format, Pair, Prepared, Record, Spec, SpecError, StageCounts,
};
use crate::crypto::{hex, sha256, Sha256};
use crate::store::{AuditStore, DatasetRow, DatasetStore, ScanQuery, Scanned, StoreError};

/// Datasets directories with a build running: one build at a time per
/// directory, since builds are long and use a core each.
static BUILDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The right to build in one datasets directory, held in this process (an
/// entry in [`BUILDING`], not a file on disk); dropping it lets the next build in.
struct BuildLock(PathBuf);

impl BuildLock {
    /// The directory's lock, or `None` while another build holds it.
    fn try_acquire(root: &Path) -> Option<BuildLock> {
        let mut busy = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        if busy.iter().any(|p| p == root) {
            return None;
        }
        busy.push(root.to_path_buf());
        Some(BuildLock(root.to_path_buf()))
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let mut busy = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        busy.retain(|p| p != &self.0);
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub spec: Spec,
    /// The dataset this one derives from. `None`: the newest dataset of the
    /// same route, if there is one.
    pub parent: Option<String>,
    pub created_by: String,
}

/// Reported while a build runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    /// `scanning` or `writing`.
    pub phase: &'static str,
    pub scanned: u64,
    /// Rows the scan will visit in all.
    pub total: u64,
    pub kept: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// Nothing selected: no version is created. The counts say where it emptied.
    #[error("{message}")]
    Empty {
        message: String,
        counts: StageCounts,
    },
    #[error("another dataset build is running; wait for it to finish")]
    Busy,
    #[error("{0}")]
    NotFound(String),
    #[error("the build was cancelled")]
    Cancelled,
    #[error("dataset files: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BuildError {
    /// The error's `code` in API answers.
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::Invalid(_) => "invalid_spec",
            BuildError::Empty { .. } => "empty_dataset",
            BuildError::Busy => "build_running",
            BuildError::NotFound(_) => "not_found",
            BuildError::Cancelled => "cancelled",
            BuildError::Io(_) | BuildError::Store(_) => "build_failed",
        }
    }
}

impl From<&BuildError> for crate::error::GatewayError {
    /// The code names the failure; its status follows from the code
    /// (`error::status_of_code`).
    fn from(e: &BuildError) -> Self {
        crate::error::GatewayError::Coded {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::Io(e.to_string())
    }
}

/// A built (or already existing) version.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Value,
    /// False when an identical version (same spec, same content) existed.
    pub created: bool,
}

/// The directory holding a version's files.
pub fn version_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// True for names a dataset id can have (so an id never escapes the directory).
pub fn valid_id(id: &str) -> bool {
    id.len() == 19
        && id.starts_with("ds-")
        && id[3..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// True for the file names a version may hold.
pub fn valid_file_name(name: &str) -> bool {
    matches!(name, "manifest.json" | "interactions.tsv" | "SHA256SUMS")
        || ["train.", "eval."].iter().any(|p| {
            name.strip_prefix(p)
                .and_then(|rest| rest.strip_suffix(".jsonl"))
                .and_then(Format::parse)
                .is_some()
        })
}

/// Reads a spec from JSON (a TOML spec file converts to the same value).
/// Besides `since_ms`/`until_ms`, `since` and `until` take an age (`7d`,
/// `24h`), a date or an RFC 3339 time, resolved against `now`; the resolved
/// spec is what the manifest records, so a rebuild means the same window.
pub fn parse_spec(mut v: Value, now: std::time::SystemTime) -> Result<Spec, SpecError> {
    let Some(obj) = v.as_object_mut() else {
        return Err(SpecError::NotATable);
    };
    for (key, ms_key) in [("since", "since_ms"), ("until", "until_ms")] {
        let Some(t) = obj.remove(key) else { continue };
        if obj.contains_key(ms_key) {
            return Err(SpecError::TwoTimes { key, ms_key });
        }
        let Some(ms) = t
            .as_str()
            .and_then(|text| crate::clock::parse_since(text, now))
        else {
            return Err(SpecError::Time { key, value: t });
        };
        obj.insert(ms_key.into(), ms.into());
    }
    let spec: Spec = serde_json::from_value(v.clone()).map_err(|e| {
        // Name the table a wrong key sits in ("split: unknown field ...").
        let section = |table: &'static str| -> Option<SpecError> {
            let sub = v.get(table)?.clone();
            let source = match table {
                "feedback" => {
                    serde_json::from_value::<crate::datasets::curate::FeedbackRule>(sub).err()
                }
                "dedupe" => serde_json::from_value::<crate::datasets::curate::Dedupe>(sub).err(),
                _ => serde_json::from_value::<crate::datasets::curate::Split>(sub).err(),
            }?;
            Some(SpecError::Keys { table, source })
        };
        ["feedback", "dedupe", "split"]
            .into_iter()
            .find_map(section)
            .unwrap_or(SpecError::Keys {
                table: "spec",
                source: e,
            })
    })?;
    spec.validate()?;
    Ok(spec)
}

/// The store filters a spec implies.
fn scan_query(spec: &Spec) -> ScanQuery {
    ScanQuery {
        route: spec.route.clone(),
        versions: spec.versions.clone(),
        since_ms: spec.since_ms,
        until_ms: spec.until_ms,
        endpoint: spec.endpoint.clone(),
        requested_model: spec.model.clone(),
        segment: spec.segment.clone(),
    }
}

/// The curation view of a stored interaction. A body that is not JSON (it was
/// cut at the capture size limit, say) reads as missing.
pub fn record_of(s: Scanned) -> Record {
    let i = s.interaction;
    Record {
        request: serde_json::from_str(&i.request_body).unwrap_or(Value::Null),
        response: i
            .response_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok()),
        id: i.id,
        created_at_ms: i.created_at_ms,
        route: i.route,
        version: i.version,
        endpoint: i.endpoint.into_owned(),
        outcome: i.outcome.into_owned(),
        status: i.status,
        redaction: i.redaction.into_owned(),
        prompt_tokens: i.prompt_tokens,
        completion_tokens: i.completion_tokens,
        feedback: s
            .feedback
            .into_iter()
            .map(|f| Feedback {
                kind: f.kind,
                value: f.value,
                score: f.score,
                created_at_ms: f.created_at_ms,
            })
            .collect(),
    }
}

/// A JSONL file being written, with its running SHA-256 and row count.
struct Sink {
    name: String,
    format: Option<Format>,
    split: Option<&'static str>,
    out: BufWriter<File>,
    hash: Sha256,
    rows: u64,
    bytes: u64,
}

impl Sink {
    fn create(
        dir: &Path,
        name: String,
        format: Option<Format>,
        split: Option<&'static str>,
    ) -> std::io::Result<Sink> {
        let out = BufWriter::with_capacity(256 * 1024, File::create(dir.join(&name))?);
        Ok(Sink {
            name,
            format,
            split,
            out,
            hash: Sha256::default(),
            rows: 0,
            bytes: 0,
        })
    }

    fn line(&mut self, text: &str) -> std::io::Result<()> {
        for part in [text.as_bytes(), b"\n"] {
            self.out.write_all(part)?;
            self.hash.update(part);
            self.bytes += part.len() as u64;
        }
        self.rows += 1;
        Ok(())
    }

    /// Flushes and syncs the file; returns its manifest entry.
    fn close(self) -> std::io::Result<FileEntry> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(FileEntry {
            name: self.name,
            format: self.format.map(Format::as_str),
            split: self.split,
            rows: self.rows,
            bytes: self.bytes,
            sha256: hex(&self.hash.finish()),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
struct FileEntry {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<&'static str>,
    rows: u64,
    bytes: u64,
    sha256: String,
}

/// The training files of one version, by format and split.
struct Outputs {
    sinks: Vec<Sink>,
    lineage: Sink,
    per_version: BTreeMap<String, u64>,
}

impl Outputs {
    fn create(dir: &Path, emit: &[Format]) -> std::io::Result<Outputs> {
        let mut sinks = Vec::new();
        for split in ["train", "eval"] {
            for f in emit {
                let name = format!("{split}.{}.jsonl", f.as_str());
                sinks.push(Sink::create(dir, name, Some(*f), Some(split))?);
            }
        }
        Ok(Outputs {
            sinks,
            lineage: Sink::create(dir, "interactions.tsv".into(), None, None)?,
            per_version: BTreeMap::new(),
        })
    }

    /// Writes the line `make` gives, if this split and format are emitted
    /// (a format not asked for is never serialized).
    fn write(
        &mut self,
        split: &str,
        format: Format,
        make: impl FnOnce() -> Option<String>,
    ) -> std::io::Result<bool> {
        let sink = self
            .sinks
            .iter_mut()
            .find(|s| s.split == Some(split) && s.format == Some(format));
        match sink.and_then(|s| Some((s, make()?))) {
            Some((s, line)) => s.line(&line).map(|()| true),
            None => Ok(false),
        }
    }

    fn lineage(&mut self, id: &str, version: &str, split: &str, role: &str) -> std::io::Result<()> {
        *self.per_version.entry(version.to_string()).or_default() += 1;
        self.lineage
            .line(&format!("{id}\t{version}\t{split}\t{role}"))
    }

    /// Writes an example in every format emitted; returns the pairs it made.
    fn example(&mut self, ex: &Example, split: &str) -> std::io::Result<u64> {
        self.lineage(&ex.id, &ex.version, split, "example")?;
        self.write(split, Format::Sft, || sft_line(ex))?;
        self.write(split, Format::Kto, || kto_line(ex))?;
        match correction_pair(ex) {
            Some(p) => self.pair(&p, split).map(u64::from),
            None => Ok(0),
        }
    }

    /// Writes a pair in every preference layout emitted; false when the pair
    /// has no prompt and so is no training row.
    fn pair(&mut self, p: &Pair, split: &str) -> std::io::Result<bool> {
        self.write(split, Format::Dpo, || dpo_line(p, DpoFormat::OpenAI))?;
        self.write(split, Format::DpoTrl, || dpo_line(p, DpoFormat::Trl))?;
        Ok(!p.prompt.is_empty())
    }
}

/// Builds a version from the store, and records the build in the audit log.
/// `progress` is called now and then and returns false to cancel (the client
/// went away).
pub fn build(
    store: &(impl DatasetStore + AuditStore + ?Sized),
    root: &Path,
    mut req: BuildRequest,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Built, BuildError> {
    req.spec.emit.sort();
    req.spec.emit.dedup();
    req.spec.validate().map_err(BuildError::Invalid)?;
    let _lock = BuildLock::try_acquire(root).ok_or(BuildError::Busy)?;
    let started = Instant::now();
    let parent = match req.parent.take() {
        Some(p) => {
            if store.get_dataset(&p)?.is_none() {
                return Err(BuildError::NotFound(format!(
                    "parent dataset {p} does not exist; see `flywheel datasets list`"
                )));
            }
            Some(p)
        }
        None => store
            .list_datasets(req.spec.route.as_deref(), 1)?
            .into_iter()
            .next()
            .map(|d| d.id),
    };
    fs::create_dir_all(root).map_err(|e| {
        BuildError::Io(format!(
            "cannot create the datasets directory {}: {e}; set datasets.dir to a writable place",
            root.display()
        ))
    })?;
    sweep(store, root)?;
    let staging = root.join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir(&staging)?;
    let result = build_in(store, root, &staging, &req, parent, started, progress);
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Removes what builds interrupted by a crash left behind; the gateway runs
/// this once at start (a build also sweeps before it begins).
pub fn clean(store: &dyn DatasetStore, root: &Path) {
    if !root.is_dir() {
        return;
    }
    let Some(_lock) = BuildLock::try_acquire(root) else {
        return; // a build is running, and it sweeps first
    };
    if let Err(e) = sweep(store, root) {
        tracing::warn!(error = %e, dir = %root.display(), "cleaning the datasets directory failed");
    }
}

/// Removes what interrupted builds left: staging directories, and version
/// directories whose row was never inserted.
fn sweep(store: &(impl DatasetStore + ?Sized), root: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = if name.starts_with(".staging-") {
            true
        } else {
            valid_id(&name) && store.get_dataset(&name)?.is_none()
        };
        if orphan && entry.file_type()?.is_dir() {
            tracing::info!(dir = %entry.path().display(), "removing an unfinished dataset build");
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

fn build_in(
    store: &(impl DatasetStore + AuditStore + ?Sized),
    root: &Path,
    staging: &Path,
    req: &BuildRequest,
    parent: Option<String>,
    started: Instant,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Built, BuildError> {
    let spec = &req.spec;
    let query = scan_query(spec);
    let total = store.count_scan(&query)?;
    let mut builder =
        Builder::with_rows(spec.clone(), total as usize).map_err(BuildError::Invalid)?;
    let mut spill = BufWriter::with_capacity(256 * 1024, File::create(staging.join("kept.spill"))?);
    let mut failure: Option<BuildError> = None;
    let mut last_report = Instant::now();
    let report = |phase, scanned, kept| Progress {
        phase,
        scanned,
        total,
        kept,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    if !progress(&report("scanning", 0, 0)) {
        return Err(BuildError::Cancelled);
    }
    let (mut scanned, mut kept) = (0u64, 0u64);
    // Two stages on two threads: this one runs the pipeline while a reader
    // steps through SQLite and parses the JSON bodies, handing over batches
    // (one thread switch per batch, not per row). The bounded channel keeps
    // memory flat; dropping its receiver stops the reader.
    const BATCH: usize = 256;
    let scan_result = std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Prepared, Vec<u8>)>>(8);
        let reader_spec = spec;
        let reader = sc.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut open = true;
            store.scan(&query, &mut |row| {
                let p = Prepared::new(reader_spec, record_of(row));
                // The spill line is written here too, in case it is kept:
                // this thread has time to spare, the pipeline's does not.
                let line = match (p.example(), p.split()) {
                    (Some(e), Some(split)) if p.may_be_kept(reader_spec) => spill_line(e, split),
                    _ => Vec::new(),
                };
                batch.push((p, line));
                if batch.len() == BATCH {
                    open = tx.send(std::mem::take(&mut batch)).is_ok();
                }
                open
            })?;
            if open && !batch.is_empty() {
                let _ = tx.send(batch);
            }
            Ok::<(), StoreError>(())
        });
        for (prepared, line) in rx.iter().flatten() {
            scanned += 1;
            if builder.push_prepared(prepared).is_some() {
                kept += 1;
                if line.is_empty() {
                    failure = Some(BuildError::Io("an example could not be serialised".into()));
                    break;
                }
                if let Err(e) = spill.write_all(&line) {
                    failure = Some(e.into());
                    break;
                }
            }
            if scanned % 4096 == 0 && last_report.elapsed().as_millis() >= 200 {
                last_report = Instant::now();
                if !progress(&report("scanning", scanned, kept)) {
                    failure = Some(BuildError::Cancelled);
                    break;
                }
            }
        }
        drop(rx);
        reader.join().unwrap_or(Ok(()))
    });
    if let Some(e) = failure {
        return Err(e);
    }
    scan_result?;
    spill.flush()?;
    drop(spill);
    let finished = builder.finish();
    let mut counts = finished.counts.clone();
    if kept == 0 {
        return Err(empty(store, spec, &counts)?);
    }
    if !progress(&report("writing", scanned, kept)) {
        return Err(BuildError::Cancelled);
    }

    let mut out = Outputs::create(staging, &spec.emit)?;
    let (mut train, mut eval, mut pairs) = (0u64, 0u64, 0u64);
    for line in BufReader::new(File::open(staging.join("kept.spill"))?).lines() {
        let line = line?;
        let (ex, split) = parse_spill(&line)?;
        let side = if finished.is_eval(split) {
            eval += 1;
            "eval"
        } else {
            train += 1;
            "train"
        };
        pairs += out.example(&ex, side)?;
        if (train + eval) % 16_384 == 0 && !progress(&report("writing", scanned, kept)) {
            return Err(BuildError::Cancelled);
        }
    }
    fs::remove_file(staging.join("kept.spill"))?;
    for chunk in finished.vote_pairs.chunks(256) {
        let ids: Vec<String> = chunk
            .iter()
            .flat_map(|v| [v.up_id.clone(), v.down_id.clone()])
            .collect();
        let records: BTreeMap<String, Record> = store
            .scan_ids(&ids)?
            .into_iter()
            .map(|s| (s.interaction.id.clone(), record_of(s)))
            .collect();
        for v in chunk {
            let (Some(up), Some(down)) = (records.get(&v.up_id), records.get(&v.down_id)) else {
                continue; // deleted since the scan (retention, forget)
            };
            let Some(p) = thumbs_pair(up, down) else {
                continue;
            };
            let side = if finished.is_eval(v.split) {
                "eval"
            } else {
                "train"
            };
            if out.pair(&p, side)? {
                pairs += 1;
                out.lineage(&up.id, &up.version, side, "chosen")?;
                out.lineage(&down.id, &down.version, side, "rejected")?;
            }
        }
    }
    counts.insert("train".into(), train);
    counts.insert("eval".into(), eval);
    counts.insert("pairs".into(), pairs);

    let Outputs {
        sinks,
        lineage,
        per_version,
    } = out;
    let lineage_rows = lineage.rows;
    let mut files: Vec<FileEntry> = Vec::new();
    for s in sinks {
        files.push(s.close()?);
    }
    files.push(lineage.close()?);
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let sums: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect();
    fs::write(staging.join("SHA256SUMS"), &sums)?;
    let content_hash = hex(&sha256(sums.as_bytes()));
    let spec_json = serde_json::to_value(spec).map_err(|e| BuildError::Io(e.to_string()))?;
    let id = format!(
        "ds-{}",
        &hex(&sha256(format!("{content_hash}\n{spec_json}").as_bytes()))[..16]
    );
    if let Some(existing) = store.get_dataset(&id)? {
        // Same version; if its directory was lost, these files restore it.
        let dir = version_dir(root, &id);
        if !dir.exists() {
            fs::rename(staging, &dir)?;
        }
        return Ok(Built {
            manifest: existing.manifest,
            created: false,
        });
    }
    let created_at_ms = crate::clock::now_ms();
    let manifest = json!({
        "object": "dataset",
        "id": id,
        "content_hash": content_hash,
        "route": spec.route,
        "parent": parent,
        "created_at_ms": created_at_ms,
        "created_by": req.created_by,
        "spec": spec_json,
        "counts": counts,
        "files": files,
        "lineage": {
            "file": "interactions.tsv",
            "rows": lineage_rows,
            "examples": train + eval,
            "by_version": per_version,
        },
        "build": {
            "seconds": started.elapsed().as_secs_f64(),
            "flywheel": env!("CARGO_PKG_VERSION"),
        },
    });
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| BuildError::Io(e.to_string()))?;
    let mut f = File::create(staging.join("manifest.json"))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    File::open(staging)?.sync_all()?;
    let dir = version_dir(root, &id);
    fs::rename(staging, &dir)?;
    File::open(root)?.sync_all()?;
    let row = DatasetRow {
        id: id.clone(),
        created_at_ms,
        created_by: req.created_by.clone(),
        route: spec.route.clone(),
        parent,
        content_hash,
        manifest: manifest.clone(),
    };
    if let Err(e) = store.insert_dataset(&row) {
        let _ = fs::remove_dir_all(&dir);
        return Err(e.into());
    }
    let event = crate::audit::event(
        &req.created_by,
        "dataset_built",
        Some(id.clone()),
        json!({"route": spec.route, "content_hash": row.content_hash, "counts": counts}),
    );
    if let Err(e) = store.record_event(&event) {
        tracing::warn!(error = %e, dataset = %id, "recording the dataset_built event failed");
    }
    Ok(Built {
        manifest,
        created: true,
    })
}

/// One line of the spill file: a kept example and its split hash (as text,
/// since JSON numbers lose u64 precision in some readers).
#[derive(Serialize)]
struct Spilled<'a> {
    s: String,
    e: &'a Example,
}

fn spill_line(e: &Example, split: u64) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Spilled {
        s: split.to_string(),
        e,
    })
    .unwrap_or_default();
    line.push(b'\n');
    line
}

fn parse_spill(line: &str) -> Result<(Example, u64), BuildError> {
    #[derive(serde::Deserialize)]
    struct Owned {
        s: String,
        e: Example,
    }
    let bad = |e: String| BuildError::Io(format!("spill file is corrupt: {e}"));
    let s: Owned = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    let split =
        s.s.parse()
            .map_err(|e: std::num::ParseIntError| bad(e.to_string()))?;
    Ok((s.e, split))
}

/// Says which filter emptied the selection: the store-side filters one by one
/// when the scan saw nothing, else the stage that removed the most.
fn empty(
    store: &(impl DatasetStore + ?Sized),
    spec: &Spec,
    counts: &StageCounts,
) -> Result<BuildError, BuildError> {
    let scanned = counts.get("scanned").copied().unwrap_or(0);
    let message = if scanned == 0 {
        let mut q = ScanQuery::default();
        let mut why = "the store has no interactions yet".to_string();
        type Narrow<'a> = &'a dyn Fn(&mut ScanQuery);
        let steps: [(&str, Narrow); 4] = [
            ("route", &|q| q.route = spec.route.clone()),
            ("versions", &|q| q.versions = spec.versions.clone()),
            ("since_ms/until_ms", &|q| {
                q.since_ms = spec.since_ms;
                q.until_ms = spec.until_ms;
            }),
            ("endpoint", &|q| q.endpoint = spec.endpoint.clone()),
        ];
        if store.count_scan(&q)? > 0 {
            for (name, apply) in steps {
                apply(&mut q);
                if store.count_scan(&q)? == 0 {
                    why = format!("the {name} filter matches no interactions");
                    break;
                }
            }
        }
        format!("the spec selects nothing: {why}; no dataset was created")
    } else {
        let (stage, n) = counts
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("removed_by_").map(|s| (s, *v)))
            .max_by_key(|(_, v)| *v)
            .unwrap_or(("none", 0));
        format!(
            "the spec selects nothing: {scanned} interactions scanned, {n} removed by the {stage} filter; see counts for every stage; no dataset was created"
        )
    };
    Ok(BuildError::Empty {
        message,
        counts: counts.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::sqlite::SqliteStore;
    use crate::store::{InteractionRow, InteractionStore};

    fn store_with(n: usize) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db")).unwrap();
        let rows: Vec<InteractionRow> = (0..n)
            .map(|i| InteractionRow {
                id: format!("0190a000-0000-7000-8000-{i:012}"),
                created_at_ms: 1_000 + i as i64,
                endpoint: "chat.completions".into(),
                route: "support".into(),
                version: "v1".into(),
                status: 200,
                outcome: "ok".into(),
                redaction: "redacted".into(),
                request_body: json!({"messages": [{"role": "user",
                    "content": format!("question {i} about a thing {}", i * 31)}]})
                .to_string(),
                response_body: Some(
                    json!({"choices": [{"message": {"role": "assistant", "content": "an answer"},
                        "finish_reason": "stop"}]})
                    .to_string(),
                ),
                ..Default::default()
            })
            .collect();
        store.insert_interactions(&rows).unwrap();
        (dir, store)
    }

    fn request() -> BuildRequest {
        BuildRequest {
            spec: Spec::default(),
            parent: None,
            created_by: "test".into(),
        }
    }

    #[test]
    fn a_cancelled_build_leaves_nothing_in_either_phase() {
        let (dir, store) = store_with(50);
        let root = dir.path().join("ds");
        for phase in ["scanning", "writing"] {
            let err = build(&store, &root, request(), &mut |p| p.phase != phase).unwrap_err();
            assert!(matches!(err, BuildError::Cancelled), "{phase}: {err}");
            assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "{phase}");
            assert!(store.list_datasets(None, 10).unwrap().is_empty());
        }
        let mut seen = Vec::new();
        let built = build(&store, &root, request(), &mut |p| {
            seen.push(p.clone());
            true
        })
        .unwrap();
        assert!(built.created);
        assert_eq!(built.manifest["counts"]["kept"], 50);
        assert_eq!(seen.first().unwrap().phase, "scanning");
        assert_eq!(seen.last().unwrap().phase, "writing");
        assert!(seen.iter().all(|p| p.total == 50));
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [built.manifest["id"].as_str().unwrap()]);
    }

    #[test]
    fn clean_removes_crash_debris_and_keeps_versions() {
        let (dir, store) = store_with(3);
        let root = dir.path().join("ds");
        let kept = build(&store, &root, request(), &mut |_| true).unwrap();
        let id = kept.manifest["id"].as_str().unwrap().to_string();
        fs::create_dir_all(root.join(".staging-0123/x")).unwrap();
        fs::create_dir_all(root.join("ds-00000000000000aa")).unwrap();
        fs::write(root.join("notes.txt"), "an operator's file").unwrap();
        clean(&store, &root);
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [id, "notes.txt".to_string()]);
        clean(&store, &dir.path().join("missing"));
    }

    #[test]
    fn a_lost_version_directory_is_restored_by_the_same_build() {
        let (dir, store) = store_with(5);
        let root = dir.path().join("ds");
        let first = build(&store, &root, request(), &mut |_| true).unwrap();
        let id = first.manifest["id"].as_str().unwrap().to_string();
        fs::remove_dir_all(root.join(&id)).unwrap();
        let again = build(&store, &root, request(), &mut |_| true).unwrap();
        assert!(!again.created);
        assert!(root.join(&id).join("train.sft.jsonl").exists());
    }

    #[test]
    fn the_example_spec_file_shows_the_defaults() {
        let text = include_str!("../../config/curate.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        let v = serde_json::to_value(table).unwrap();
        let spec = parse_spec(v, std::time::SystemTime::now()).unwrap();
        assert_eq!(spec, Spec::default());
    }

    /// A refused spec answers 400 `invalid_spec` with the message that names
    /// the key, whether reading or validation refused it.
    #[test]
    fn a_refused_spec_is_invalid_spec() {
        let now = std::time::SystemTime::now();
        let cases = [
            (json!([]), "spec: must be an object (a table of keys)"),
            (
                json!({"since": "7d", "since_ms": 1}),
                "since: give either since or since_ms, not both",
            ),
            (json!({"until": 3}), "until: cannot read 3; use an age"),
            (
                json!({"split": {"ratio": 0.2}}),
                "split: unknown field `ratio`",
            ),
            (json!({"routes": "x"}), "spec: unknown field `routes`"),
            (
                json!({"split": {"eval_ratio": 0.7}}),
                "split.eval_ratio: must be between 0 and 0.5, got 0.7",
            ),
        ];
        for (v, want) in cases {
            let e = BuildError::from(parse_spec(v, now).unwrap_err());
            let g = crate::error::GatewayError::from(&e);
            assert_eq!(g.status(), 400, "{want}");
            assert_eq!(g.type_and_code(), ("invalid_request_error", "invalid_spec"));
            assert!(
                g.to_string().starts_with(want),
                "{g} should start with {want}"
            );
        }
    }

    #[test]
    fn ids_and_file_names_cannot_escape() {
        assert!(valid_id("ds-0123456789abcdef"));
        assert!(!valid_id("ds-0123456789ABCDEF"));
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id("ds-0123456789abcde/"));
        assert!(valid_file_name("train.sft.jsonl"));
        assert!(valid_file_name("eval.dpo-trl.jsonl"));
        assert!(valid_file_name("SHA256SUMS"));
        assert!(!valid_file_name("train.x.jsonl"));
        assert!(!valid_file_name("../manifest.json"));
        assert!(!valid_file_name("kept.spill"));
    }
}
