//! Retention: what has outlived `retention.raw_days` / `retention.capture_days`
//! is deleted by a background sweep, in small batches so the capture writer is
//! never held up, and each sweep that removed something is an audit event.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::audit;
use crate::config::RetentionConfig;
use crate::store::{AuditStore, PrivacyStore, PurgeCutoffs, Removed, StoreError};

const DAY_MS: i64 = 86_400_000;

/// The cutoffs for `now`: `None` where the data is kept forever (0 days).
pub fn cutoffs(cfg: &RetentionConfig, now: SystemTime) -> PurgeCutoffs {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let before = |days: u64| (days > 0).then(|| now_ms - days as i64 * DAY_MS);
    PurgeCutoffs {
        capture_before_ms: before(cfg.capture_days),
        raw_before_ms: before(cfg.raw_days),
    }
}

/// One sweep (blocking): deletes what is due and records it.
pub fn sweep(
    store: &(impl PrivacyStore + AuditStore + ?Sized),
    cfg: &RetentionConfig,
    actor: &str,
    dry_run: bool,
) -> Result<(PurgeCutoffs, Removed), StoreError> {
    let cut = cutoffs(cfg, SystemTime::now());
    if cut.capture_before_ms.is_none() && cut.raw_before_ms.is_none() {
        return Ok((cut, Removed::default()));
    }
    let removed = store.purge(cut, cfg.batch, dry_run)?;
    let any = removed.interactions + removed.feedback + removed.raw_payloads > 0;
    if !dry_run && any {
        audit::record(
            store,
            actor,
            "retention_purge",
            None,
            serde_json::json!({
                "removed": removed,
                "capture_before_ms": cut.capture_before_ms,
                "raw_before_ms": cut.raw_before_ms,
            }),
        )?;
    }
    Ok((cut, removed))
}

/// Sweeps at start and then every `retention.interval` until `stop` fires.
pub async fn run(
    store: Arc<impl PrivacyStore + AuditStore + ?Sized + 'static>,
    cfg: RetentionConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (s, c) = (store.clone(), cfg.clone());
        match tokio::task::spawn_blocking(move || sweep(s.as_ref(), &c, "retention", false)).await {
            Ok(Ok((_, removed))) if removed != Removed::default() => {
                tracing::info!(?removed, "retention sweep removed expired data")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
            Err(e) => tracing::error!(error = %e, "retention sweep panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval.max(Duration::from_secs(1))) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_forever() {
        let cfg = RetentionConfig {
            raw_days: 7,
            capture_days: 0,
            interval: Duration::from_secs(1),
            batch: 10,
        };
        let now = UNIX_EPOCH + Duration::from_secs(30 * 86_400);
        let c = cutoffs(&cfg, now);
        assert_eq!(c.capture_before_ms, None);
        assert_eq!(c.raw_before_ms, Some(23 * DAY_MS));
    }
}
