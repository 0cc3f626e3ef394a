//! The capture writer: one dedicated OS thread that drains the bounded queue and
//! writes records to the store in transactions of up to `capture.batch_max` rows.
//!
//! Batching is natural rather than timed: the writer takes whatever is queued
//! (up to the batch size) and writes it at once, so a lone record is committed
//! within one transaction's time, while under load each transaction carries many
//! rows. The writer never runs on the async runtime, so a slow disk can fill the
//! queue (drops are counted) but can never stall a request.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::assemble::summarize;
use super::hash::UserHasher;
use super::issued::Issued;
use super::{CaptureQueue, Interaction, Message, Outcome};
use crate::metrics::Metrics;
use crate::store::{InteractionRow, Store};

/// Settings of the writer, from `[capture]`.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub queue_capacity: usize,
    pub batch_max: usize,
    pub max_body_bytes: usize,
}

/// Owner's handle to the writer thread.
pub struct WriterHandle {
    tx: std::sync::mpsc::SyncSender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the writer thread and returns the queue the hot path submits to.
pub fn start(
    store: Arc<dyn Store>,
    hasher: UserHasher,
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
    };
    let thread = std::thread::Builder::new()
        .name("flywheel-capture-writer".into())
        .spawn(move || {
            let writer = Writer {
                store: store.as_ref(),
                hasher: &hasher,
                config: &config,
                metrics: &metrics,
                issued: &issued,
            };
            writer.run(rx)
        })?;
    Ok((
        queue,
        WriterHandle {
            tx,
            thread: Some(thread),
        },
    ))
}

impl WriterHandle {
    /// Writes everything queued so far and stops the thread. Records submitted
    /// after this are dropped and counted. Returns false if the writer did not
    /// finish within `timeout`.
    pub async fn close(mut self, timeout: Duration) -> bool {
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
    store: &'a dyn Store,
    hasher: &'a UserHasher,
    config: &'a WriterConfig,
    metrics: &'a Metrics,
    issued: &'a Issued,
}

impl Writer<'_> {
    fn run(&self, rx: Receiver<Message>) {
        let (config, metrics) = (self.config, self.metrics);
        let mut batch: Vec<Interaction> = Vec::with_capacity(config.batch_max);
        let mut closing: Option<std::sync::mpsc::Sender<()>> = None;
        loop {
            // Block for the first record, then take what else is already waiting.
            match rx.recv() {
                Ok(Message::Record(r)) => batch.push(*r),
                Ok(Message::Close(ack)) => closing = Some(ack),
                Err(_) => break,
            }
            while batch.len() < config.batch_max && closing.is_none() {
                match rx.recv_timeout(Duration::ZERO) {
                    Ok(Message::Record(r)) => batch.push(*r),
                    Ok(Message::Close(ack)) => closing = Some(ack),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            metrics
                .capture_queue_depth
                .fetch_sub(batch.len() as i64, Ordering::Relaxed);
            self.write_batch(&mut batch);
            if let Some(ack) = closing.take() {
                // Everything queued before the close request is ahead of it in the
                // channel, so it has been written by now.
                let _ = ack.send(());
                return;
            }
        }
    }

    fn write_batch(&self, batch: &mut Vec<Interaction>) {
        if batch.is_empty() {
            return;
        }
        let metrics = self.metrics;
        let ids: Vec<uuid::Uuid> = batch.iter().map(|r| r.id).collect();
        let rows: Vec<InteractionRow> = batch
            .drain(..)
            .map(|r| to_row(r, self.hasher, self.config.max_body_bytes, metrics))
            .collect();
        self.write_rows(&rows);
        // Committed or given up: either way the ids are no longer pending.
        for id in ids {
            self.issued.remove(id);
        }
    }

    fn write_rows(&self, rows: &[InteractionRow]) {
        let (store, metrics) = (self.store, self.metrics);
        // A failing disk gets a few chances with backoff; past that the batch is
        // dropped (and counted) so the queue keeps moving and the gateway keeps serving.
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=4 {
            match store.insert_interactions(rows) {
                Ok(()) => {
                    metrics
                        .capture_written
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    metrics.capture_batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    metrics.capture_write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, attempt, rows = rows.len(), "capture write failed");
                    if attempt < 4 {
                        std::thread::sleep(delay);
                        delay *= 4;
                    }
                }
            }
        }
        metrics
            .capture_dropped
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
    }
}

/// Joins the captured chunks, cutting at `max` bytes.
fn join_capped(chunks: &[Bytes], max: usize) -> (Vec<u8>, bool) {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(total.min(max));
    for c in chunks {
        let room = max - out.len();
        out.extend_from_slice(&c[..c.len().min(room)]);
    }
    (out, total > max)
}

/// Turns a hot-path record into a stored row: assembles the response, counts
/// tokens and hashes the user id.
pub fn to_row(
    r: Interaction,
    hasher: &UserHasher,
    max_body: usize,
    metrics: &Metrics,
) -> InteractionRow {
    let (response, response_cut) = join_capped(&r.response, max_body);
    let request_cut = r.request_body.len() > max_body;
    let request = &r.request_body[..r.request_body.len().min(max_body)];
    let summary = summarize(
        r.endpoint,
        request,
        &response,
        r.response_is_sse,
        r.outcome == Outcome::Ok,
    );
    if let Some(u) = summary.usage {
        metrics.tokens(&r.route, &r.version, "prompt", u.prompt.max(0) as u64);
        metrics.tokens(
            &r.route,
            &r.version,
            "completion",
            u.completion.max(0) as u64,
        );
    }
    InteractionRow {
        id: r.id.to_string(),
        created_at_ms: r
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        endpoint: r.endpoint.as_str().to_string(),
        method: r.method.to_string(),
        path: r.path,
        route: r.route.to_string(),
        requested_model: r.requested_model,
        version: r.version.to_string(),
        upstream: r.upstream.to_string(),
        status: r.status,
        outcome: r.outcome.as_str().to_string(),
        stream: r.stream,
        request_body: String::from_utf8_lossy(request).into_owned(),
        response_body: summary.response,
        truncated: r.truncated || response_cut || request_cut,
        finish_reason: summary.finish_reason,
        latency_ms: r.latency.as_secs_f64() * 1e3,
        ttft_ms: r.ttft.map(|d| d.as_secs_f64() * 1e3),
        prompt_tokens: summary.usage.map(|u| u.prompt),
        completion_tokens: summary.usage.map(|u| u.completion),
        total_tokens: summary.usage.map(|u| u.total),
        tokens_estimated: summary.usage.is_some_and(|u| u.estimated),
        app: r.app.map(|a| a.to_string()),
        user_hash: r.user.as_deref().map(|u| hasher.hash(u)),
        session_id: r.session,
        metadata: r.metadata.into_iter().collect(),
        error: r.error.or(summary.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Endpoint;
    use crate::store::{ListQuery, Stats, StoreError};
    use std::sync::{Condvar, Mutex};
    use std::time::SystemTime;

    /// A store whose writes wait until the test opens the gate, to fill the queue.
    #[derive(Default)]
    struct GatedStore {
        open: Mutex<bool>,
        cv: Condvar,
        rows: Mutex<Vec<InteractionRow>>,
    }

    impl GatedStore {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    impl Store for GatedStore {
        fn insert_interactions(&self, rows: &[InteractionRow]) -> Result<(), StoreError> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
            self.rows.lock().unwrap().extend_from_slice(rows);
            Ok(())
        }
        fn list_interactions(&self, _: &ListQuery) -> Result<Vec<InteractionRow>, StoreError> {
            Ok(vec![])
        }
        fn get_interaction(&self, _: &str) -> Result<Option<InteractionRow>, StoreError> {
            Ok(None)
        }
        fn stats(&self) -> Result<Stats, StoreError> {
            Ok(Stats::default())
        }
        fn secret(&self, _: &str, init: &dyn Fn() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
            Ok(init())
        }
        fn interaction_served(&self, _: &str) -> Result<Option<(String, String)>, StoreError> {
            Ok(None)
        }
        fn insert_feedback(
            &self,
            _: &crate::store::FeedbackRow,
        ) -> Result<crate::store::FeedbackInsert, StoreError> {
            Ok(crate::store::FeedbackInsert::Created)
        }
        fn list_feedback(
            &self,
            _: &crate::store::FeedbackQuery,
        ) -> Result<Vec<crate::store::FeedbackRow>, StoreError> {
            Ok(vec![])
        }
    }

    fn record(user: Option<&str>) -> Interaction {
        Interaction {
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
            response: vec![Bytes::from_static(
                br#"{"choices":[{"finish_reason":"stop","message":{"content":"yo"}}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#,
            )],
            response_is_sse: false,
            truncated: false,
            latency: Duration::from_millis(5),
            ttft: None,
            app: None,
            user: user.map(str::to_string),
            session: None,
            metadata: vec![],
            error: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_close_flushes_the_rest() {
        let store = Arc::new(GatedStore::default());
        let metrics = Arc::new(Metrics::default());
        let cfg = WriterConfig {
            queue_capacity: 4,
            batch_max: 2,
            max_body_bytes: 1 << 20,
        };
        let (queue, handle) =
            start(store.clone(), UserHasher::new(b"k"), cfg, metrics.clone()).unwrap();
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
        assert!(metrics.capture_queue_depth.load(Ordering::Relaxed) <= 4);
        store.open();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(rt.block_on(handle.close(Duration::from_secs(5))));
        let rows = store.rows.lock().unwrap();
        assert_eq!(
            rows.len() as u64,
            accepted,
            "everything accepted is written"
        );
        assert_eq!(metrics.capture_written.load(Ordering::Relaxed), accepted);
        assert_eq!(metrics.capture_queue_depth.load(Ordering::Relaxed), 0);
        // After close, submissions are refused and counted rather than lost silently.
        assert!(!queue.submit(record(None)));
        assert_eq!(metrics.capture_dropped.load(Ordering::Relaxed), dropped + 1);
    }

    #[test]
    fn rows_carry_usage_and_only_the_hashed_user() {
        let metrics = Metrics::default();
        let row = to_row(
            record(Some("alice@example.com")),
            &UserHasher::new(b"k"),
            1 << 20,
            &metrics,
        );
        assert_eq!(row.total_tokens, Some(3));
        assert!(!row.tokens_estimated);
        assert_eq!(row.finish_reason.as_deref(), Some("stop"));
        let hash = row.user_hash.unwrap();
        assert_eq!(hash, UserHasher::new(b"k").hash("alice@example.com"));
        assert!(!hash.contains("alice"));
    }

    #[test]
    fn bodies_over_the_limit_are_cut_and_flagged() {
        let metrics = Metrics::default();
        let row = to_row(record(None), &UserHasher::new(b"k"), 10, &metrics);
        assert!(row.truncated);
        assert!(row.request_body.len() <= 10);
    }
}
