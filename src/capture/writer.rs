//! The capture writer: one dedicated OS thread that drains the bounded queue and
//! writes records to the store in transactions of up to `capture.batch_max` rows.
//!
//! After its first record the writer waits at most `capture.flush_interval_ms`
//! (10 ms) for more, up to the batch size, then commits them in one
//! transaction. A commit costs about as much as many row inserts, so under load
//! this cuts the writer's CPU per record several times over, while a lone record
//! is still committed within the interval. The writer never runs on the async
//! runtime, so a slow disk can fill the queue (drops are counted) but can never
//! stall a request.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::assemble::{summarize, Doc};
use super::issued::Issued;
use super::{CaptureQueue, Interaction, Message, Outcome};
use crate::metrics::Metrics;
use crate::privacy::{Privacy, RedactionFailed, UserHasher};
use crate::runtime::shard::{Slot, SLOTS};
use crate::store::{InteractionRow, InteractionStore};

/// Settings of the writer, from `[capture]`.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub queue_capacity: usize,
    /// Bytes of records each shard may have queued (see `CaptureQueue::submit`).
    pub queue_share_bytes: usize,
    pub batch_max: usize,
    pub flush_interval: Duration,
    pub max_body_bytes: usize,
}

/// Owner's handle to the writer thread.
pub struct WriterHandle {
    tx: std::sync::mpsc::SyncSender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set when the close starts, before the writer reaches the close
    /// message: see [`Writer::write_rows`].
    closing: Arc<AtomicBool>,
}

/// Starts the writer thread and returns the queue the hot path submits to.
pub fn start(
    store: Arc<dyn InteractionStore>,
    maker: RowMaker,
    config: WriterConfig,
    metrics: Arc<Metrics>,
) -> std::io::Result<(CaptureQueue, WriterHandle)> {
    let (tx, rx) = sync_channel(config.queue_capacity);
    metrics
        .capture_queue_capacity
        .store(config.queue_capacity as i64, Ordering::Relaxed);
    let issued = Arc::new(Issued::default());
    let queue = CaptureQueue {
        tx: tx.clone(),
        metrics: metrics.clone(),
        issued: issued.clone(),
        share_bytes: i64::try_from(config.queue_share_bytes).unwrap_or(i64::MAX),
    };
    let closing = Arc::new(AtomicBool::new(false));
    let closing_seen = closing.clone();
    let thread = std::thread::Builder::new()
        .name("flywheel-capture-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                store: store.as_ref(),
                maker: &maker,
                config: &config,
                metrics: &metrics,
                issued: &issued,
                tokens: Default::default(),
                closing: &closing_seen,
                failing: false,
            };
            writer.run(rx)
        })?;
    Ok((
        queue,
        WriterHandle {
            tx,
            thread: Some(thread),
            closing,
        },
    ))
}

impl WriterHandle {
    /// Writes everything queued so far and stops the thread. Records submitted
    /// after this are dropped and counted. Returns false if the writer did not
    /// finish within `timeout`.
    pub async fn close(mut self, timeout: Duration) -> bool {
        self.closing.store(true, Ordering::Relaxed);
        let tx = self.tx.clone();
        let thread = self.thread.take();
        let done = tokio::task::spawn_blocking(move || {
            let (ack_tx, ack_rx) = std::sync::mpsc::channel();
            // A blocking send: when the queue is full this waits for the writer
            // to make room, which it does as it drains.
            if tx.send(Message::Close(ack_tx)).is_err() {
                return true;
            }
            let acked = ack_rx.recv_timeout(timeout).is_ok();
            if acked {
                if let Some(t) = thread {
                    let _ = t.join();
                }
            }
            acked
        });
        done.await.unwrap_or(false)
    }
}

struct Writer<'a> {
    store: &'a dyn InteractionStore,
    maker: &'a RowMaker,
    config: &'a WriterConfig,
    metrics: &'a Metrics,
    issued: &'a Issued,
    tokens: TokenCounters,
    closing: &'a AtomicBool,
    /// The last batch was given up after all its attempts.
    failing: bool,
}

/// The token counters of the (route, version) pairs the writer has seen, so
/// that counting a record's tokens neither builds label strings nor searches
/// the metrics map. Records of one routing target share its `Arc`s, which
/// makes the usual lookup two pointer comparisons; a routing rebuild brings
/// new `Arc`s with the same names, found by name. Counters are made on the
/// first non-zero count, as `Metrics::tokens` makes them.
#[derive(Default)]
struct TokenCounters {
    seen: Vec<SeenTarget>,
}

struct SeenTarget {
    route: Arc<str>,
    version: Arc<str>,
    /// Prompt, completion.
    counters: [Option<Arc<AtomicU64>>; 2],
}

impl TokenCounters {
    /// More pairs than any registry holds at once: past it, pairs of versions
    /// long gone are forgotten.
    const MAX: usize = 256;

    fn add(&mut self, metrics: &Metrics, route: &Arc<str>, version: &Arc<str>, n: [i64; 2]) {
        let found = self
            .seen
            .iter()
            .position(|t| Arc::ptr_eq(&t.route, route) && Arc::ptr_eq(&t.version, version))
            .or_else(|| {
                self.seen
                    .iter()
                    .position(|t| t.route == *route && t.version == *version)
            });
        let i = found.unwrap_or_else(|| {
            if self.seen.len() >= Self::MAX {
                self.seen.clear();
            }
            self.seen.push(SeenTarget {
                route: route.clone(),
                version: version.clone(),
                counters: [None, None],
            });
            self.seen.len() - 1
        });
        let target = &mut self.seen[i];
        // Later lookups by pointer find the newest `Arc`s of these names.
        target.route = route.clone();
        target.version = version.clone();
        for (slot, (kind, n)) in target
            .counters
            .iter_mut()
            .zip([("prompt", n[0]), ("completion", n[1])])
        {
            if n > 0 {
                slot.get_or_insert_with(|| metrics.token_counter(route, version, kind))
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Writer<'_> {
    fn run(&mut self, rx: Receiver<Message>) {
        let (config, metrics) = (self.config, self.metrics);
        let mut batch: Vec<Interaction> = Vec::with_capacity(config.batch_max);
        let mut closing: Option<std::sync::mpsc::Sender<()>> = None;
        let mut backlog = false;
        loop {
            // Block for the first record, then gather more until the batch is
            // full or the flush interval has passed.
            match rx.recv() {
                Ok(Message::Record(r)) => batch.push(*r),
                Ok(Message::Close(ack)) => closing = Some(ack),
                Err(_) => break,
            }
            // Sleeping through the interval, rather than waiting on the channel,
            // matters: a waiting receiver is woken by every send, which would
            // cost the hot path a futex wake and a context switch per request.
            // When the last batch was full there is a backlog: no waiting then.
            if closing.is_none() && !config.flush_interval.is_zero() && !backlog {
                std::thread::sleep(config.flush_interval);
            }
            while batch.len() < config.batch_max && closing.is_none() {
                match rx.try_recv() {
                    Ok(Message::Record(r)) => batch.push(*r),
                    Ok(Message::Close(ack)) => closing = Some(ack),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            backlog = batch.len() >= config.batch_max;
            metrics.capture_queue_depth.add(-(batch.len() as i64));
            self.write_batch(&mut batch);
            if let Some(ack) = closing.take() {
                // Everything queued before the close request is ahead of it in the
                // channel, so it has been written by now.
                let _ = ack.send(());
                return;
            }
        }
    }

    fn write_batch(&mut self, batch: &mut Vec<Interaction>) {
        if batch.is_empty() {
            return;
        }
        let (metrics, maker) = (self.metrics, self.maker);
        let mut ids: Vec<_> = batch.iter().map(|r| (r.slot, r.id)).collect();
        let mut held = [0i64; SLOTS];
        for r in batch.iter() {
            held[r.slot.index()] += r.queued_bytes();
        }
        let tokens = &mut self.tokens;
        let rows: Vec<InteractionRow> = batch
            .drain(..)
            .map(|r| {
                let (route, version) = (r.route.clone(), r.version.clone());
                let row = maker.row(r, metrics);
                if let (Some(p), Some(c)) = (row.prompt_tokens, row.completion_tokens) {
                    tokens.add(metrics, &route, &version, [p, c]);
                }
                row
            })
            .collect();
        self.write_rows(&rows);
        // Committed or given up: either way the ids are no longer pending.
        self.issued.remove_all(&mut ids);
        for (i, n) in held.into_iter().enumerate().filter(|(_, n)| *n != 0) {
            metrics.capture_queue_bytes.add_at(Slot::at(i), -n);
        }
    }

    fn write_rows(&mut self, rows: &[InteractionRow]) {
        let (store, metrics) = (self.store, self.metrics);
        // A failing disk gets a few chances with backoff; past that the batch is
        // dropped (and counted) so the queue keeps moving and the gateway keeps
        // serving. While closing with a store that failed the last batch, each
        // batch gets one try: the backoff (a second a batch) would otherwise
        // spend the whole grace period on a queue that cannot be written.
        let attempts = if self.failing && self.closing.load(Ordering::Relaxed) {
            1
        } else {
            4
        };
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=attempts {
            match store.insert_interactions(rows) {
                Ok(()) => {
                    metrics
                        .capture_written
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    metrics.capture_batches.fetch_add(1, Ordering::Relaxed);
                    self.failing = false;
                    return;
                }
                Err(e) => {
                    metrics.capture_write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, attempt, rows = rows.len(), "capture write failed");
                    if attempt < attempts {
                        std::thread::sleep(delay);
                        delay *= 4;
                    }
                }
            }
        }
        self.failing = true;
        metrics
            .capture_dropped
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
    }
}

/// A method's name, without an allocation for the usual ones.
fn method_name(m: &http::Method) -> Cow<'static, str> {
    match m.as_str() {
        "GET" => "GET".into(),
        "POST" => "POST".into(),
        "PUT" => "PUT".into(),
        "DELETE" => "DELETE".into(),
        "PATCH" => "PATCH".into(),
        other => other.to_string().into(),
    }
}

/// Turns hot-path records into stored rows.
pub struct RowMaker {
    pub hasher: UserHasher,
    pub privacy: Arc<Privacy>,
    /// Largest body kept per record (`capture.max_body_bytes`).
    pub max_body: usize,
}

/// Time to first token: for a stream, when the frame that completed its first
/// event carrying a token arrived (none for a stream that carried none); for
/// a whole body, when the response began, since all of it came at once.
fn ttft(
    arrivals: &super::Arrivals,
    first_byte: Option<Duration>,
    sse: bool,
    first_token_end: Option<usize>,
) -> Option<Duration> {
    if sse {
        first_token_end.and_then(|end| arrivals.time_of(end))
    } else {
        first_byte
    }
}

impl RowMaker {
    /// Assembles the response, reads its token usage, hashes the user id, seals the raw
    /// payload when configured and redacts the text. Bodies are read as JSON
    /// in passes over their bytes; a tree is built only for what needs one
    /// (token estimates when the upstream reported none, raw payloads).
    pub fn row(&self, r: Interaction, metrics: &Metrics) -> InteractionRow {
        let max_body = self.max_body;
        // The hot path cuts at the same limit; this keeps a record from any
        // other source within it too.
        let mut response = r.response;
        let response_cut = response.len() > max_body;
        response.truncate(max_body);
        // The record's copy of the body becomes the stored text without
        // another copy when redaction leaves it as it is.
        let mut request = Vec::from(r.request_body);
        let request_cut = request.len() > max_body;
        request.truncate(max_body);
        let summary = summarize(
            r.endpoint,
            &request,
            response,
            r.response_is_sse,
            r.outcome == Outcome::Ok,
        );
        let id =
            r.id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned();
        let mut response_doc = summary.response;
        let mut error = r.error.or(summary.error);
        let mut metadata: std::collections::BTreeMap<String, String> =
            r.metadata.into_iter().collect();
        let privacy = &self.privacy;
        let raw = privacy.vault.as_ref().and_then(|vault| {
            let text = |d: &Doc| match d {
                Doc::Json(_) => d.json().unwrap_or_default(),
                Doc::Text(t) => serde_json::Value::from(t.as_str()),
            };
            let payload = serde_json::json!({
                // One parse: JSON as its tree, anything else as a string.
                "request": serde_json::from_slice::<serde_json::Value>(&request)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&request).into()),
                "response": response_doc.as_ref().map(text),
                "error": error,
            });
            match vault.seal(payload.to_string().as_bytes(), id.as_bytes()) {
                Ok(sealed) => Some(sealed),
                Err(e) => {
                    tracing::error!(error = %e, "raw payload not kept");
                    None
                }
            }
        });
        // The body's own user ids are read before redaction (which may
        // rewrite them) and hashed; the stored body carries only the hashes.
        let body_ids = user_id_members(&request, &self.hasher);
        let mut path = r.path;
        let mut session = r.session;
        let mut requested_model = r.requested_model;
        let mut segment = r.segment;
        let redacted = (|| -> Result<(String, u32), RedactionFailed> {
            let (mut request_body, mut n) = privacy.body(std::mem::take(&mut request))?;
            if let Some(hashes) = &body_ids {
                request_body = with_hashed_ids(request_body, hashes);
            }
            // Every other string a client chose is redacted like the body: a
            // passthrough path, the requested model, metadata names and values.
            if let Cow::Owned(p) = &path {
                let (t, c) = privacy.text(p)?;
                n += c;
                path = Cow::Owned(t);
            }
            for field in [&mut requested_model, &mut segment] {
                if let Some(m) = field.as_deref() {
                    let (t, c) = privacy.text(m)?;
                    n += c;
                    *field = Some(t);
                }
            }
            // A session id that holds personal data is kept as its keyed
            // hash, like a user id: sessions still group their calls, and a
            // placeholder would merge every session that held an e-mail.
            if let Some(s) = &session {
                let c = privacy.text(s)?.1;
                if c > 0 {
                    n += c;
                    session = Some(self.hasher.hash(s));
                }
            }
            if let Some(d) = response_doc.as_mut() {
                n += d.redact(privacy)?;
            }
            if let Some(e) = &error {
                let (e, c) = privacy.text(e)?;
                n += c;
                error = Some(e);
            }
            let mut clean = std::collections::BTreeMap::new();
            for (k, v) in std::mem::take(&mut metadata) {
                let (k, c) = privacy.text(&k)?;
                n += c;
                let (v, c) = privacy.text(&v)?;
                n += c;
                clean.insert(k, v);
            }
            metadata = clean;
            Ok((request_body, n))
        })();
        let (request_body, response_body, pii_found, redaction) = match redacted {
            Ok((request_body, n)) => {
                metrics.pii_redacted.fetch_add(n as u64, Ordering::Relaxed);
                let state = if privacy.redacts() { "redacted" } else { "off" };
                (
                    request_body,
                    response_doc.map(Doc::into_text),
                    n as i64,
                    state,
                )
            }
            Err(RedactionFailed) => {
                // Fail closed: keep the row's numbers, drop every piece of text.
                metrics.redaction_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(id = %id, "redaction failed; the record's text is not stored");
                error = None;
                metadata.clear();
                path = Cow::Borrowed("");
                requested_model = None;
                segment = None;
                session = session.map(|s| self.hasher.hash(&s));
                (String::new(), None, 0, "failed")
            }
        };
        InteractionRow {
            id,
            created_at_ms: r
                .received_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            endpoint: r.endpoint.as_str().into(),
            method: method_name(&r.method),
            path,
            route: String::from(&*r.route),
            requested_model,
            version: String::from(&*r.version),
            upstream: String::from(&*r.upstream),
            status: r.status,
            outcome: r.outcome.as_str().into(),
            stream: r.stream,
            request_body,
            response_body,
            truncated: r.truncated || response_cut || request_cut,
            finish_reason: summary.finish_reason,
            latency_ms: r.latency.as_secs_f64() * 1e3,
            ttft_ms: ttft(
                &r.arrivals,
                r.first_byte,
                r.response_is_sse,
                summary.first_token_end,
            )
            .map(|d| d.as_secs_f64() * 1e3),
            prompt_tokens: summary.usage.map(|u| u.prompt),
            completion_tokens: summary.usage.map(|u| u.completion),
            total_tokens: summary.usage.map(|u| u.total),
            tokens_estimated: summary.usage.is_some_and(|u| u.estimated),
            app: r.app.map(|a| String::from(&*a)),
            user_hash: r.user.as_deref().map(|u| self.hasher.hash(u)),
            session_id: session,
            metadata,
            error,
            redaction: redaction.into(),
            pii_found,
            segment,
            raw,
        }
    }
}

/// Top-level members of a request body that identify the end user: the
/// OpenAI API's `user` and its successor `safety_identifier`.
const USER_ID_MEMBERS: [&str; 2] = ["user", "safety_identifier"];

/// The stored replacement of each user-id member of a JSON body, in document
/// order: the keyed hash of its string (or, for any other JSON value, of its
/// text); `null` stays `null`. `None` when the body has none.
fn user_id_members(body: &[u8], hasher: &UserHasher) -> Option<Vec<String>> {
    // Most bodies name no user: a search for the names used as keys (a
    // quoted name and then a colon; every chat body holds `"role":"user"`,
    // which is not one), or for an escape, which could spell one, skips the
    // scan for them.
    let as_key = |name: &[u8]| {
        memchr::memmem::find_iter(body, name).any(|at| {
            body[at + name.len()..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b':')
        })
    };
    let escaped = memchr::memmem::find(body, b"\\u").is_some();
    if !(escaped || as_key(b"\"user\"") || as_key(b"\"safety_identifier\"")) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let found = crate::json::top_level_members(text, &USER_ID_MEMBERS);
    if found.is_empty() {
        return None;
    }
    let hashes = found
        .into_iter()
        .map(|(_, range)| {
            let value = &text[range];
            if value == "null" {
                return value.to_string();
            }
            let id = serde_json::from_str::<String>(value).unwrap_or_else(|_| value.to_string());
            serde_json::Value::from(hasher.hash(&id)).to_string()
        })
        .collect();
    Some(hashes)
}

/// `body` (redacted) with its user-id members' values replaced by `hashes`.
/// Redaction only rewrites string contents, so the members are where they
/// were, in the same order; if their count differs all the same, the values
/// become `null` rather than risk storing one.
fn with_hashed_ids(body: String, hashes: &[String]) -> String {
    let found = crate::json::top_level_members(&body, &USER_ID_MEMBERS);
    let mut out = String::with_capacity(body.len() + 32 * hashes.len());
    let mut copied = 0;
    for (i, (_, range)) in found.iter().enumerate() {
        out.push_str(&body[copied..range.start]);
        match hashes.get(i) {
            Some(h) if found.len() == hashes.len() => out.push_str(h),
            _ => out.push_str("null"),
        }
        copied = range.end;
    }
    out.push_str(&body[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Endpoint;
    use crate::store::{ListQuery, Stats, StoreError};
    use bytes::Bytes;
    use std::sync::{Condvar, Mutex};
    use std::time::SystemTime;

    /// A real store whose interaction writes wait until the test opens the
    /// gate, to fill the queue; every other call goes straight through.
    struct GatedStore {
        inner: crate::store::sqlite::SqliteStore,
        _dir: tempfile::TempDir,
        open: Mutex<bool>,
        cv: Condvar,
        rows: Mutex<Vec<InteractionRow>>,
        /// Every insert fails at once, as on a full disk.
        full: AtomicBool,
    }

    impl GatedStore {
        fn new() -> GatedStore {
            let dir = tempfile::tempdir().unwrap();
            GatedStore {
                inner: crate::store::sqlite::SqliteStore::open(&dir.path().join("g.db")).unwrap(),
                _dir: dir,
                open: Mutex::new(false),
                cv: Condvar::new(),
                rows: Mutex::new(Vec::new()),
                full: AtomicBool::new(false),
            }
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }

        fn close_gate(&self) {
            *self.open.lock().unwrap() = false;
        }
    }

    impl InteractionStore for GatedStore {
        fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError> {
            if self.full.load(Ordering::Relaxed) {
                return Err(StoreError::Conflict("database or disk is full".into()));
            }
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            self.rows.lock().unwrap().extend_from_slice(rows);
            self.inner.insert_interactions(rows)
        }
        fn list_interactions(&self, q: &ListQuery) -> Result<Vec<InteractionRow>, StoreError> {
            self.inner.list_interactions(q)
        }
        fn get_interaction(&self, id: &str) -> Result<Option<InteractionRow>, StoreError> {
            self.inner.get_interaction(id)
        }
        fn stats(&self) -> Result<Stats, StoreError> {
            self.inner.stats()
        }
    }

    /// A writer over `store` with the given queue limits and batch size, no
    /// flush window and 1 MiB bodies.
    fn writer(
        store: &Arc<GatedStore>,
        metrics: &Arc<Metrics>,
        queue_capacity: usize,
        queue_share_bytes: usize,
        batch_max: usize,
    ) -> (CaptureQueue, WriterHandle) {
        let cfg = WriterConfig {
            queue_capacity,
            queue_share_bytes,
            batch_max,
            flush_interval: Duration::ZERO,
            max_body_bytes: 1 << 20,
        };
        start(store.clone(), maker(1 << 20), cfg, metrics.clone()).unwrap()
    }

    /// Opens the store's gate and closes the writer, which writes what is queued.
    fn open_and_close(store: &GatedStore, handle: WriterHandle) {
        store.open();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(handle.close(Duration::from_secs(5))));
    }

    fn maker(max_body: usize) -> RowMaker {
        RowMaker {
            hasher: UserHasher::new(b"k"),
            privacy: Arc::new(Privacy::off()),
            max_body,
        }
    }

    fn record(user: Option<&str>) -> Interaction {
        Interaction {
            slot: Default::default(),
            id: uuid::Uuid::now_v7(),
            received_at: SystemTime::now(),
            endpoint: Endpoint::ChatCompletions,
            method: http::Method::POST,
            path: "/v1/chat/completions".into(),
            route: "default".into(),
            version: "v1".into(),
            upstream: "http://u/v1".into(),
            requested_model: Some("m".into()),
            status: 200,
            outcome: Outcome::Ok,
            stream: false,
            request_body: Bytes::from_static(br#"{"messages":[{"role":"user","content":"hi"}]}"#),
            response: br#"{"choices":[{"finish_reason":"stop","message":{"content":"yo"}}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#.to_vec(),
            response_is_sse: false,
            truncated: false,
            latency: Duration::from_millis(5),
            first_byte: None,
            arrivals: Default::default(),
            app: None,
            user: user.map(str::to_string),
            session: None,
            segment: None,
            metadata: vec![],
            error: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_close_flushes_the_rest() {
        let store = Arc::new(GatedStore::new());
        let metrics = Arc::new(Metrics::default());
        let (queue, handle) = writer(&store, &metrics, 4, 1 << 30, 2);
        // The writer takes the first record(s) and blocks in the store; then the
        // queue fills up to its capacity and the rest are dropped.
        let mut accepted = 0;
        for _ in 0..20 {
            if queue.submit(record(Some("alice"))) {
                accepted += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let dropped = metrics.capture_dropped.load(Ordering::Relaxed);
        assert_eq!(accepted + dropped, 20);
        assert!(
            dropped >= 14,
            "only the queue and one batch fit: dropped {dropped}"
        );
        assert!(metrics.capture_queue_depth.get() <= 4);
        open_and_close(&store, handle);
        let rows = store.rows.lock().unwrap();
        assert_eq!(
            rows.len() as u64,
            accepted,
            "everything accepted is written"
        );
        assert_eq!(metrics.capture_written.load(Ordering::Relaxed), accepted);
        assert_eq!(metrics.capture_queue_depth.get(), 0);
        // After close, submissions are refused and counted rather than lost silently.
        assert!(!queue.submit(record(None)));
        assert_eq!(metrics.capture_dropped.load(Ordering::Relaxed), dropped + 1);
    }

    /// Records count against their shard's share of the queue's bytes until
    /// the writer is done with them; past the share they are dropped and
    /// counted, but a record bigger than the share goes into an empty share.
    #[test]
    fn the_queue_holds_a_share_of_bytes_and_drops_past_it() {
        let store = Arc::new(GatedStore::new());
        let metrics = Arc::new(Metrics::default());
        let (queue, handle) = writer(&store, &metrics, 1000, 10_000, 100);
        let sized = |body: usize| {
            let mut r = record(None);
            r.request_body = Bytes::from(vec![b'x'; body]);
            r
        };
        // The writer takes the big one and blocks in the store, still holding it.
        assert!(
            queue.submit(sized(20_000)),
            "an empty share takes any record"
        );
        assert!(metrics.capture_queue_bytes.get() > 20_000);
        assert!(!queue.submit(sized(1_000)), "the share is taken");
        assert_eq!(metrics.capture_dropped.load(Ordering::Relaxed), 1);
        store.open();
        let drained = std::time::Instant::now() + Duration::from_secs(5);
        while metrics.capture_queue_bytes.get() != 0 && std::time::Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            metrics.capture_queue_bytes.get(),
            0,
            "written records free their bytes"
        );
        store.close_gate();
        let mut accepted = 0;
        while queue.submit(sized(1_000)) {
            accepted += 1;
            assert!(accepted < 100, "the share never filled");
        }
        // 1,000 bytes of body plus the record itself: a 10,000-byte share takes a few.
        assert!((3..=9).contains(&accepted), "{accepted}");
        assert!(metrics.capture_queue_bytes.get() <= 10_000);
        open_and_close(&store, handle);
        assert_eq!(store.rows.lock().unwrap().len(), 1 + accepted);
        assert_eq!(metrics.capture_dropped.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.capture_queue_bytes.get(), 0);
    }

    /// On a store that keeps failing, a batch gets its retries with backoff
    /// (about a second) while serving; once closing, each batch gets one try,
    /// so a long queue is dropped and counted within moments instead of a
    /// second per batch.
    #[test]
    fn closing_over_a_failing_store_drops_the_queue_quickly() {
        let store = Arc::new(GatedStore::new());
        store.open();
        store.full.store(true, Ordering::Relaxed);
        let metrics = Arc::new(Metrics::default());
        let (queue, handle) = writer(&store, &metrics, 1000, 1 << 30, 2);
        for _ in 0..40 {
            assert!(queue.submit(record(None)));
        }
        // The first batch is being retried now; the other 19 wait.
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(handle.close(Duration::from_secs(30))));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "20 batches at a second each would take 20 s: {took:?}"
        );
        assert_eq!(metrics.capture_dropped.load(Ordering::Relaxed), 40);
        assert_eq!(metrics.capture_written.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.capture_queue_bytes.get(), 0);
    }

    #[test]
    fn rows_carry_usage_and_only_the_hashed_user() {
        let metrics = Metrics::default();
        let row = maker(1 << 20).row(record(Some("alice@example.com")), &metrics);
        assert_eq!(row.total_tokens, Some(3));
        assert!(!row.tokens_estimated);
        assert_eq!(row.finish_reason.as_deref(), Some("stop"));
        let hash = row.user_hash.unwrap();
        assert_eq!(hash, UserHasher::new(b"k").hash("alice@example.com"));
        assert!(!hash.contains("alice"));
    }

    fn redacting_maker() -> RowMaker {
        let cfg = crate::config::PrivacyConfig {
            redact: true,
            actions: Default::default(),
            rules: vec![],
            raw_key: None,
            store_key: None,
        };
        RowMaker {
            hasher: UserHasher::new(b"k"),
            privacy: Arc::new(Privacy::new(&cfg, b"k").unwrap()),
            max_body: 1 << 20,
        }
    }

    /// The OpenAI API's `user` (and `safety_identifier`) in a stored body
    /// carry the keyed hash, never the id as sent, with redaction on or off;
    /// the same names deeper in the body are message text, not ids.
    #[test]
    fn user_ids_in_the_body_are_stored_as_their_hashes() {
        let h = UserHasher::new(b"k");
        for maker in [maker(1 << 20), redacting_maker()] {
            let mut r = record(Some("alice"));
            r.request_body = Bytes::from_static(
                br#"{"model":"m","user":"customer-48213","messages":[{"role":"user","content":"hi"}],"safety_identifier":"jane@example.com"}"#,
            );
            let row = maker.row(r, &Metrics::default());
            let body: serde_json::Value = serde_json::from_str(&row.request_body).unwrap();
            assert_eq!(body["user"], h.hash("customer-48213"), "{body}");
            assert_eq!(body["safety_identifier"], h.hash("jane@example.com"));
            assert_eq!(body["messages"][0]["role"], "user");
            assert!(!row.request_body.contains("48213") && !row.request_body.contains("jane"));
        }
        // A body without ids keeps its bytes.
        let row = maker(1 << 20).row(record(None), &Metrics::default());
        assert_eq!(
            row.request_body,
            r#"{"messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    /// Every string a client chose is redacted before it is stored: the path
    /// of a passthrough call, the requested model, metadata names and values;
    /// a session id holding personal data is kept as its keyed hash.
    #[test]
    fn client_chosen_fields_are_redacted() {
        let mut r = record(None);
        r.endpoint = Endpoint::Passthrough;
        r.path = "/v1/files/alice.smith@example.com/raw".to_string().into();
        r.requested_model = Some("ft:gpt-4o:bob@example.org".into());
        r.session = Some("chat-carol@example.net-+1 415 555 0134".into());
        r.metadata = vec![
            ("ticket".into(), "dave@example.com".into()),
            ("4111111111111111".into(), "x".into()),
        ];
        let row = redacting_maker().row(r, &Metrics::default());
        let text = format!(
            "{} {:?} {:?} {:?}",
            row.path, row.requested_model, row.session_id, row.metadata
        );
        for pii in [
            "alice.smith",
            "bob@",
            "carol",
            "555 0134",
            "dave@",
            "4111111111111111",
        ] {
            assert!(!text.contains(pii), "{pii} kept: {text}");
        }
        assert_eq!(row.path, "/v1/files/<EMAIL>/raw");
        assert_eq!(
            row.session_id.as_deref(),
            Some(
                UserHasher::new(b"k")
                    .hash("chat-carol@example.net-+1 415 555 0134")
                    .as_str()
            )
        );
        // A session id without personal data stays as it is.
        let mut r = record(None);
        r.session = Some("sess-20261207-0042".into());
        let row = redacting_maker().row(r, &Metrics::default());
        assert_eq!(row.session_id.as_deref(), Some("sess-20261207-0042"));
    }

    /// A response document is redacted in place exactly as the same bytes
    /// are as a request body: JSON string by string, anything else as text.
    #[test]
    fn a_response_doc_is_redacted_like_a_request_body() {
        let privacy = redacting_maker().privacy;
        for text in [
            r#"{"choices":[{"message":{"content":"mail bob@example.com"}}]}"#,
            r#"{"content": "nothing here"}"#,
            "not json: call +44 20 7946 0958",
            "plain text",
        ] {
            let mut doc = Doc::parse(text.as_bytes());
            let n = doc.redact(&privacy).unwrap();
            let body = privacy.body(text.as_bytes().to_vec()).unwrap();
            assert_eq!((doc.into_text(), n), body, "{text}");
        }
    }

    #[test]
    fn token_counts_match_metrics_tokens() {
        let (cached, direct) = (Metrics::default(), Metrics::default());
        let mut counters = TokenCounters::default();
        let (route, version): (Arc<str>, Arc<str>) = ("r".into(), "v1".into());
        counters.add(&cached, &route, &version, [5, 0]);
        // The same names in new `Arc`s, as after a routing rebuild.
        counters.add(&cached, &"r".into(), &"v1".into(), [2, 3]);
        counters.add(&cached, &route, &"v2".into(), [-1, 4]);
        for (v, p, c) in [("v1", 5, 0), ("v1", 2, 3), ("v2", -1, 4)] {
            direct.tokens("r", v, "prompt", i64::max(p, 0) as u64);
            direct.tokens("r", v, "completion", c as u64);
        }
        assert_eq!(cached.render(), direct.render());
        assert_eq!(counters.seen.len(), 2);
    }

    #[test]
    fn bodies_over_the_limit_are_cut_and_flagged() {
        let metrics = Metrics::default();
        let row = maker(10).row(record(None), &metrics);
        assert!(row.truncated);
        assert!(row.request_body.len() <= 10);
    }
}
