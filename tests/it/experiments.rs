//! Evaluation calls against real versions of a route, over real sockets to
//! the mock upstream: answers read, retries counted, nothing captured.

use std::time::Duration;

use bytes::Bytes;
use flywheel::experiments::replay::{call, read_answer, ReplayError, RetryPolicy};
use flywheel::store::ListQuery;

use crate::common::{config, mock};

#[tokio::test]
async fn evaluation_calls_reach_any_version_and_are_never_captured() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flywheel.db");
    let routes = format!(
        "[[routes]]\nname = \"bot\"\n\
         [[routes.versions]]\nname = \"v1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=Paris\"\n\
         [[routes.versions]]\nname = \"v2\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:status=503\"\n",
        m.addr
    );
    let cfg = config(&format!("http://{}/v1", m.addr), &db, &routes, &[]);
    let (gw, writer) = flywheel::Gateway::start(cfg).await.unwrap();
    let replay = flywheel::app::replay::UpstreamReplay {
        proxy: gw.proxy.clone(),
        store: gw.store.clone(),
    };
    let policy = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_wait: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    };
    let prompt = Bytes::from_static(
        br#"{"model":"bot","messages":[{"role":"user","content":"The capital of France?"}]}"#,
    );

    // The stable version answers as its upstream model says.
    let c = call(&replay, "bot", "v1", prompt.clone(), &policy).await;
    let reply = c.result.unwrap();
    assert_eq!((reply.status, c.attempts), (200, 1));
    let (answer, usage) = read_answer(&reply.body).unwrap();
    assert_eq!(answer.text.as_deref(), Some("Paris"));
    assert!(usage.completion_tokens.is_some());

    // A version that is only registered is reached too; its 503s are
    // retried, and the last answer is what the run records.
    let c = call(&replay, "bot", "v2", prompt.clone(), &policy).await;
    assert_eq!((c.result.unwrap().status, c.attempts), (503, 3));

    // A version the route does not have is refused at once.
    let c = call(&replay, "bot", "v9", prompt, &policy).await;
    assert_eq!(c.attempts, 1);
    assert!(matches!(c.result, Err(ReplayError::UnknownVersion { .. })));

    // None of it was captured.
    writer.close(Duration::from_secs(5)).await;
    let store = gw.store.clone();
    let rows = tokio::task::spawn_blocking(move || {
        store.list_interactions(&ListQuery {
            limit: 10,
            ..Default::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        rows.is_empty(),
        "evaluation traffic is not captured: {rows:?}"
    );
}
