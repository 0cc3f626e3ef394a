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
    let queue = CaptureQueue {
        tx: tx.clone(),
        metrics: metrics.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("flywheel-capture-writer".into())
        .spawn(move || run(rx, store.as_ref(), &hasher, &config, &metrics))?;
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

fn run(
    rx: Receiver<Message>,
    store: &dyn Store,
    hasher: &UserHasher,
    config: &WriterConfig,
    metrics: &Metrics,
) {
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
        write_batch(&mut batch, store, hasher, config, metrics);
        if let Some(ack) = closing.take() {
            // Everything queued before the close request is ahead of it in the
            // channel, so it has been written by now.
            let _ = ack.send(());
            return;
        }
    }
}

fn write_batch(
    batch: &mut Vec<Interaction>,
    store: &dyn Store,
    hasher: &UserHasher,
    config: &WriterConfig,
    metrics: &Metrics,
) {
    if batch.is_empty() {
        return;
    }
    let rows: Vec<InteractionRow> = batch
        .drain(..)
        .map(|r| to_row(r, hasher, config.max_body_bytes, metrics))
        .collect();
    // A failing disk gets a few chances with backoff; past that the batch is
    // dropped (and counted) so the queue keeps moving and the gateway keeps serving.
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=4 {
        match store.insert_interactions(&rows) {
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
