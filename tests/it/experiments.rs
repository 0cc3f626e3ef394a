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
    let replay = flywheel::app::replay::UpstreamReplay::new(gw.proxy.clone(), gw.store.clone());
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

/// One chat call answered with `reply`; returns its interaction id.
async fn chat(gw: &crate::common::Gw, question: &str, reply: &str) -> String {
    let body = serde_json::json!({"model": "support-bot", "temperature": 0.2,
        "stream": false, "user": "user-7",
        "messages": [{"role": "system", "content": "You are the support bot."},
                     {"role": "user", "content": question}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", &format!("reply={reply}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.interaction_id()
}

#[tokio::test]
async fn an_eval_set_is_read_back_from_a_dataset_version() {
    use flywheel::experiments::examples::{load, ExamplesError};
    use flywheel::store::sqlite::SqliteStore;
    use serde_json::{json, Value};

    let m = mock().await;
    let gw = crate::common::gateway(&m).await;
    let questions = [
        "How do I reset my password?",
        "Where is the billing address on my invoice?",
        "Can I export my reports to a spreadsheet?",
        "How do I add a teammate to the workspace?",
        "How do I cancel the trial before it renews?",
        "How do I enable two factor login?",
    ];
    let mut ids = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        ids.push(chat(&gw, q, &format!("Answer number {i}.")).await);
    }
    // The last answer was wrong: its correction becomes the reference.
    let r = gw
        .post(
            "/v1/feedback",
            &json!({"interaction_id": ids[5], "type": "correction",
                    "value": "Open Settings, then Security."})
            .to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    gw.captured(6).await;
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let r = gw
        .post(
            "/admin/v1/datasets",
            &json!({"spec": {"route": "default", "split": {"eval_ratio": 0.5}}}).to_string(),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let manifest = r.json();
    let id = manifest["id"].as_str().unwrap().to_string();
    let eval_count = manifest["counts"]["eval"].as_u64().unwrap() as usize;
    let train_count = manifest["counts"]["train"].as_u64().unwrap() as usize;
    assert_eq!(eval_count + train_count, 6);

    let store = SqliteStore::open(&gw.db).unwrap();
    let root = gw.db.with_file_name("flywheel-datasets");
    let eval = load(&store, &root, &id, "eval", "support-bot", None).unwrap();
    let train = load(&store, &root, &id, "train", "support-bot", None).unwrap();
    assert_eq!((eval.len(), train.len()), (eval_count, train_count));
    for ex in eval.iter().chain(&train) {
        let body: Value = serde_json::from_slice(&ex.body).unwrap();
        let i = ids.iter().position(|id| *id == ex.source_id).unwrap();
        // The prompt as the client sent it, parameters included, to the
        // route's name, never streamed, with no user id.
        assert_eq!(body["model"], "support-bot");
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["messages"][1]["content"], questions[i]);
        assert!(
            body.get("stream").is_none() && body.get("user").is_none(),
            "{body}"
        );
        let reference = ex.reference.text.as_deref().unwrap();
        if i == 5 {
            assert_eq!(reference, "Open Settings, then Security.");
        } else {
            assert_eq!(reference, format!("Answer number {i}."));
        }
    }
    let limited = load(&store, &root, &id, "eval", "support-bot", Some(1)).unwrap();
    assert_eq!(limited, eval[..1]);
    assert!(matches!(
        load(&store, &root, "ds-nope", "eval", "support-bot", None),
        Err(ExamplesError::UnknownDataset(_))
    ));
    assert!(matches!(
        load(&store, &root, &id, "test", "support-bot", None),
        Err(ExamplesError::BadSplit(_))
    ));
}

#[tokio::test]
async fn a_rollout_of_a_version_the_gate_rejected_needs_an_audited_override() {
    use flywheel::eval::gate::{Check, Verdict};
    use flywheel::store::sqlite::SqliteStore;
    use flywheel::store::{ExperimentRow, ExperimentStore, Finish};
    use serde_json::json;

    let m = mock().await;
    let routes = format!(
        "[[routes]]\nname = \"bot\"\n\
         [[routes.versions]]\nname = \"v1\"\nupstream = \"http://{0}/v1\"\n\
         [[routes.versions]]\nname = \"v2\"\nupstream = \"http://{0}/v1\"\nstate = \"approved\"\n",
        m.addr
    );
    let gw = crate::common::gateway_with(&format!("http://{}/v1", m.addr), &routes, &[]).await;
    let store = SqliteStore::open(&gw.db).unwrap();
    store
        .insert_experiment(&ExperimentRow {
            id: "exp-1".into(),
            kind: "offline".into(),
            route: "bot".into(),
            candidate: "v2".into(),
            baseline: "v1".into(),
            status: "running".into(),
            created_at_ms: 1,
            created_by: "admin".into(),
            ..Default::default()
        })
        .unwrap();
    let verdict = Verdict {
        pass: false,
        checks: vec![Check {
            name: "primary".into(),
            pass: false,
            reason: "primary exact_match -0.20 [-0.28, -0.12] >= -0.02: fail".into(),
        }],
    };
    store
        .finish_experiment(
            "exp-1",
            &Finish {
                status: "completed".into(),
                summary: None,
                verdict: Some(serde_json::to_value(&verdict).unwrap()),
                error: None,
                finished_at_ms: 2,
            },
        )
        .unwrap();
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let start = |body: serde_json::Value| {
        let (gw, auth) = (&gw, auth.clone());
        async move {
            gw.post(
                "/admin/v1/rollouts",
                &body.to_string(),
                &[("authorization", &auth)],
            )
            .await
        }
    };
    let refused = start(json!({"route": "bot", "version": "v2"})).await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("exp-1") && message.contains("primary exact_match -0.20"),
        "{message}"
    );
    let started = start(json!({"route": "bot", "version": "v2",
                               "override_gate": "the eval set predates the fix"}))
    .await;
    assert_eq!(started.status, 201, "{}", started.text());
    let events = gw.admin("/admin/v1/events?kind=gate_overridden").await;
    let e = &events["data"][0];
    assert_eq!(e["subject"], "bot/v2");
    assert_eq!(e["detail"]["experiment"], "exp-1");
    assert_eq!(e["detail"]["reason"], "the eval set predates the fix");

    // `models show` explains the version: its state, the gate's verdict
    // check by check, and its history.
    let shown = gw.admin("/admin/v1/models/bot/versions/v2").await;
    assert_eq!(shown["state"], "canary");
    assert_eq!(shown["gate"]["experiment"], "exp-1");
    assert_eq!(shown["gate"]["pass"], false);
    let kinds: Vec<&str> = (shown["history"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"gate_overridden"), "{kinds:?}");
    let (url, token) = (gw.url.clone(), crate::common::ADMIN_TOKEN);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
            .args(["models", "show", "bot", "v2"])
            .env("FLYWHEEL_URL", url)
            .env("FLYWHEEL_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("bot/v2: canary\n"), "{text}");
    assert!(
        text.contains("gate: fail (experiment exp-1, against v1)"),
        "{text}"
    );
    assert!(
        text.contains("primary exact_match -0.20 [-0.28, -0.12] >= -0.02: fail"),
        "{text}"
    );
    assert!(text.contains("gate_overridden"), "{text}");
    let missing = gw
        .get(
            "/admin/v1/models/bot/versions/v9",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
}

/// A route whose stable version v1 answers London, v2 Paris and v3 Berlin,
/// scored by whether the answer says "Paris" (plus `scorers`), with a gate
/// that decides on its own.
fn capitals(addr: std::net::SocketAddr, scorers: &str) -> String {
    format!(
        "[[routes]]\nname = \"support-bot\"\n\
         [[routes.versions]]\nname = \"v1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=London\"\n\
         [[routes.versions]]\nname = \"v2\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=Paris\"\n\
         [[routes.versions]]\nname = \"v3\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=Berlin\"\n\
         [[routes.scorers]]\nname = \"paris\"\nkind = \"contains\"\nvalue = \"Paris\"\n\
         {scorers}[routes.gate]\nmode = \"auto\"\nprimary = \"paris\"\nmin_examples = 5\n",
        addr
    )
}

/// A gateway in front of `m` with `routes`, a dataset of `n` answers, and
/// an evaluation of v2 of support-bot against its stable version.
async fn evaluate_v2(
    m: &crate::common::Mock,
    routes: &str,
    n: usize,
) -> (crate::common::Gw, crate::common::Reply) {
    let gw = crate::common::gateway_with(&format!("http://{}/v1", m.addr), routes, &[]).await;
    let dataset = dataset_of(&gw, n).await;
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let body = serde_json::json!({"route": "support-bot", "candidate": "v2", "dataset": dataset});
    let r = gw
        .post(
            "/admin/v1/evals",
            &body.to_string(),
            &[("authorization", &auth)],
        )
        .await;
    (gw, r)
}

/// A dataset of `n` captured answers to distinct questions, built through
/// the admin API; returns its id.
async fn dataset_of(gw: &crate::common::Gw, n: usize) -> String {
    for i in 0..n {
        chat(gw, &format!("Question number {i} about the product?"), "ok").await;
    }
    gw.captured(n as u64).await;
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let r = gw
        .post(
            "/admin/v1/datasets",
            &serde_json::json!({"spec": {"route": "support-bot", "split": {"eval_ratio": 0.5}}})
                .to_string(),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_evaluation_approves_a_better_candidate_and_rejects_a_worse_one() {
    use flywheel::experiments::evaluate::{EvalError, EvalRequest, Evaluator};
    use flywheel::store::sqlite::SqliteStore;
    use std::sync::Arc;

    let m = mock().await;
    // The scorer asks for "Paris"; v1 (stable) answers London, v2 Paris,
    // v3 Berlin. The gate decides on its own (auto).
    let routes = capitals(
        m.addr,
        "[[routes.scorers]]\nname = \"similar\"\nkind = \"rouge_l\"\n",
    );
    let gw = crate::common::gateway_with(&format!("http://{}/v1", m.addr), &routes, &[]).await;
    let dataset = dataset_of(&gw, 24).await;
    let cfg = crate::common::config(&format!("http://{}/v1", m.addr), &gw.db, &routes, &[]);
    let store: Arc<dyn flywheel::store::Store> = Arc::new(SqliteStore::open(&gw.db).unwrap());
    // The gateway's own store sees the registry the evaluation changes.
    let (live, _writer) = flywheel::Gateway::start(cfg.clone()).await.unwrap();
    let evaluator = Evaluator {
        replay: Arc::new(flywheel::app::replay::UpstreamReplay::new(
            live.proxy.clone(),
            live.store.clone(),
        )),
        store: live.store.clone(),
        routes: cfg.routes.clone(),
        datasets_root: cfg.datasets.dir.clone(),
        retry: Default::default(),
        metrics: live.metrics.clone(),
    };
    let request = |candidate: &str, baseline: Option<&str>| EvalRequest {
        route: "support-bot".into(),
        candidate: candidate.into(),
        baseline: baseline.map(str::to_string),
        dataset: dataset.clone(),
        split: "eval".into(),
        limit: None,
        concurrency: 4,
        seed: 7,
        created_by: "test".into(),
    };

    let mut ticks = Vec::new();
    let better = evaluator
        .evaluate(request("v2", None), |done, total| {
            ticks.push((done, total));
            true
        })
        .await
        .unwrap();
    let n = ticks.last().unwrap().1;
    assert_eq!(ticks.len(), n, "progress after every example");
    assert!(n >= 5, "{n} examples");
    assert_eq!(
        (better.status.as_str(), better.baseline.as_str()),
        ("completed", "v1")
    );
    let verdict = better.verdict.clone().unwrap();
    assert_eq!(verdict["pass"], true, "{verdict}");
    let diff = &better.summary.as_ref().unwrap()["scorers"]["paris"]["difference"];
    assert_eq!(diff["mean"], 1.0, "{diff}");
    let v2 = gw.admin("/admin/v1/models/support-bot/versions/v2").await;
    assert_eq!(v2["state"], "approved", "{v2}");
    assert_eq!(v2["gate"]["experiment"], better.id.as_str());
    let results = store.experiment_results(&better.id).unwrap();
    assert_eq!(
        results.len(),
        2 * n,
        "every answer of both versions is stored"
    );
    assert!(results.iter().all(|r| r
        .output
        .as_deref()
        .is_some_and(|o| o.contains("Paris") || o.contains("London"))));

    // Against the better version, the worse one is rejected with the reason.
    let worse = evaluator
        .evaluate(request("v3", Some("v2")), |_, _| true)
        .await
        .unwrap();
    let verdict = worse.verdict.clone().unwrap();
    assert_eq!(verdict["pass"], false);
    let v3 = gw.admin("/admin/v1/models/support-bot/versions/v3").await;
    assert_eq!(v3["state"], "rejected", "{v3}");
    assert!(
        v3["reason"].as_str().unwrap().contains("primary paris"),
        "{v3}"
    );

    // The same outputs give the same numbers: a rerun with the seed agrees.
    let again = evaluator
        .evaluate(request("v2", Some("v1")), |_, _| true)
        .await
        .unwrap();
    assert_eq!(
        again.summary.as_ref().unwrap()["scorers"],
        better.summary.as_ref().unwrap()["scorers"]
    );

    // Bad requests write nothing.
    let before = store.list_experiments(None, None, 100).unwrap().len();
    let mut bad = request("v9", None);
    assert!(matches!(
        evaluator.evaluate(bad.clone(), |_, _| true).await,
        Err(EvalError::Registry(_))
    ));
    bad.candidate = "v2".into();
    bad.dataset = "ds-missing".into();
    assert!(matches!(
        evaluator.evaluate(bad.clone(), |_, _| true).await,
        Err(EvalError::Examples(_))
    ));
    bad.dataset = dataset.clone();
    bad.route = "other".into();
    assert!(matches!(
        evaluator.evaluate(bad, |_, _| true).await,
        Err(EvalError::UnknownRoute(_))
    ));
    assert_eq!(
        store.list_experiments(None, None, 100).unwrap().len(),
        before
    );

    // Stopped part way, the run is recorded as cancelled with no verdict.
    let stopped = evaluator
        .evaluate(request("v3", None), |done, _| done < 2)
        .await
        .unwrap();
    assert_eq!(stopped.status, "cancelled");
    assert!(stopped.verdict.is_none());
}

#[tokio::test]
async fn evaluations_through_the_admin_api_and_the_cli() {
    let m = mock().await;
    let routes = capitals(m.addr, "");
    let gw = crate::common::gateway_with(&format!("http://{}/v1", m.addr), &routes, &[]).await;
    let dataset = dataset_of(&gw, 24).await;
    let cli = |args: Vec<String>| {
        let url = gw.url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
                    .args(&args)
                    .env("FLYWHEEL_URL", url)
                    .env("FLYWHEEL_ADMIN_TOKEN", crate::common::ADMIN_TOKEN)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let auth = format!("Bearer {}", crate::common::ADMIN_TOKEN);
    let run = |candidate: &str, baseline: &str| {
        let body = serde_json::json!({"route": "support-bot", "candidate": candidate,
            "baseline": baseline, "dataset": dataset, "concurrency": 4});
        let (gw, auth) = (&gw, auth.clone());
        async move {
            gw.post(
                "/admin/v1/evals",
                &body.to_string(),
                &[("authorization", &auth)],
            )
            .await
        }
    };
    // Streamed: a progress line per example, then the experiment.
    let streamed = gw
        .post(
            "/admin/v1/evals?stream=true",
            &serde_json::json!({"route": "support-bot", "candidate": "v2", "baseline": "v1",
                                "dataset": dataset, "concurrency": 4})
            .to_string(),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        streamed.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    let lines: Vec<serde_json::Value> = (streamed.text().lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, progress) = lines.split_last().unwrap();
    assert_eq!(last["object"], "experiment", "{last}");
    let n = last["summary"]["examples"].as_u64().unwrap();
    assert_eq!(progress.len() as u64, n);
    assert!(progress
        .iter()
        .all(|p| p["object"] == "eval.progress" && p["total"] == n));
    assert_eq!(progress.last().unwrap()["done"], n);
    let better = run("v2", "v1").await;
    assert_eq!(better.status, 201, "{}", better.text());
    assert_eq!(better.json()["verdict"]["pass"], true);
    // The same through the CLI: a rejected candidate fails the command.
    let args = |candidate: &str, baseline: &str| -> Vec<String> {
        [
            "eval",
            "run",
            "--route",
            "support-bot",
            "--candidate",
            candidate,
            "--baseline",
            baseline,
            "--dataset",
            &dataset,
            "--concurrency",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let worse = cli(args("v3", "v2")).await;
    let text = String::from_utf8_lossy(&worse.stdout);
    assert_eq!(
        worse.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&worse.stderr)
    );
    assert!(
        text.contains("gate: fail") && text.contains("primary paris"),
        "{text}"
    );
    let listed = cli(vec!["eval".into(), "list".into(), "--json".into()]).await;
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = (list["data"].as_array().unwrap().iter())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let shown = gw.admin(&format!("/admin/v1/evals/{}", ids[1])).await;
    assert_eq!(shown["candidate"], "v2");
    let results = shown["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2 * shown["summary"]["examples"].as_u64().unwrap() as usize
    );
    assert!(
        results.iter().any(|r| r["output"]["text"] == "Paris"),
        "{shown}"
    );
    // Evaluation calls have their own series; live requests counted none.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "flywheel_eval_calls_total{route=\"support-bot\",version=\"v2\",outcome=\"ok\"}"
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains("flywheel_requests_total{route=\"support-bot\",version=\"v3\""),
        "{metrics}"
    );
    let printed = cli(vec!["eval".into(), "show".into(), ids[1].into()]).await;
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("gate: pass") && text.contains("+1.000 [+1.000, +1.000]"),
        "{text}"
    );
    let compared = cli(vec![
        "eval".into(),
        "compare".into(),
        ids[0].into(),
        ids[1].into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&compared.stdout);
    assert!(
        compared.status.success(),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    assert!(
        text.contains("v3 vs v2") && text.contains("v2 vs v1"),
        "{text}"
    );
    assert!(
        text.contains("0.000 vs 1.000 (-1.000)") && text.contains("1.000 vs 0.000 (+1.000)"),
        "{text}"
    );
    let printed = cli(vec!["eval".into(), "show".into(), ids[0].into()]).await;
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("gate: fail") && text.contains("primary paris"),
        "{text}"
    );

    // Bad requests: each a clear error naming what is wrong, nothing written.
    let post = |body: serde_json::Value| {
        let (gw, auth) = (&gw, auth.clone());
        async move {
            gw.post(
                "/admin/v1/evals",
                &body.to_string(),
                &[("authorization", &auth)],
            )
            .await
        }
    };
    let r =
        post(serde_json::json!({"route": "support-bot", "candidate": "v2", "dataset": "ds-nope"}))
            .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("ds-nope"));
    let r =
        post(serde_json::json!({"route": "support-bot", "candidate": "v9", "dataset": dataset}))
            .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post(serde_json::json!({"route": "support-bot", "candidate": "v2", "dataset": dataset, "split": "test"})).await;
    assert_eq!(
        (r.status, r.json()["error"]["param"].clone()),
        (400, serde_json::json!("split"))
    );
    let r = post(serde_json::json!({"route": "support-bot", "candidate": "v2", "dataset": dataset, "concurrency": 0})).await;
    assert_eq!(r.json()["error"]["param"], "concurrency");
    let after = gw.admin("/admin/v1/evals").await;
    assert_eq!(
        after["data"].as_array().unwrap().len(),
        3,
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_judge_scores_through_its_route_and_garbage_counts_as_failures() {
    let m = mock().await;
    // Two judges: one answers a score, one answers prose it cannot be read
    // from. Pairwise, a judge always preferring "A" is a position bias the
    // swapped order cancels: a tie.
    let routes = format!(
        "[[routes]]\nname = \"support-bot\"\n\
         [[routes.versions]]\nname = \"v1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=London\"\n\
         [[routes.versions]]\nname = \"v2\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=Paris\"\n\
         [[routes.scorers]]\nname = \"grade\"\nkind = \"judge\"\nroute = \"judge\"\nrubric = \"Is it right?\"\nscale = [1, 10]\n\
         [[routes.scorers]]\nname = \"rambling\"\nkind = \"judge\"\nroute = \"rambler\"\nrubric = \"Is it right?\"\nscale = [1, 10]\n\
         [[routes.scorers]]\nname = \"biased\"\nkind = \"judge\"\nroute = \"biased\"\nrubric = \"Which is better?\"\nmode = \"pairwise\"\nscale = [1, 10]\n\
         [routes.gate]\nprimary = \"grade\"\nmin_examples = 5\n\
         [[routes]]\nname = \"judge\"\n[[routes.versions]]\nname = \"j1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=Score: 8\"\n\
         [[routes]]\nname = \"rambler\"\n[[routes.versions]]\nname = \"r1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=I would say it is quite good overall\"\n\
         [[routes]]\nname = \"biased\"\n[[routes.versions]]\nname = \"b1\"\nupstream = \"http://{0}/v1\"\nupstream_model = \"mock:reply=A\"\n",
        m.addr
    );
    let (_gw, r) = evaluate_v2(&m, &routes, 24).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let e = r.json();
    let scorers = &e["summary"]["scorers"];
    let n = e["summary"]["examples"].as_u64().unwrap();
    // "Score: 8" on 1..10 is 7/9 for both sides: a difference of 0.
    let grade = &scorers["grade"];
    assert_eq!(grade["pairs"], n, "{grade}");
    assert!(
        (grade["candidate"]["mean"].as_f64().unwrap() - 7.0 / 9.0).abs() < 1e-9,
        "{grade}"
    );
    assert_eq!(grade["difference"]["mean"], 0.0);
    // Prose is a judge failure on every answer, never a 0 or a 1.
    let rambling = &scorers["rambling"];
    assert_eq!(rambling["pairs"], 0, "{rambling}");
    assert_eq!(
        (
            rambling["candidate_failures"].as_u64(),
            rambling["baseline_failures"].as_u64()
        ),
        (Some(n), Some(n))
    );
    // Always "A": the swap cancels the bias, every pair a tie (0.5 vs 0.5).
    let biased = &scorers["biased"];
    assert_eq!(biased["candidate"]["mean"], 0.5, "{biased}");
    assert_eq!(biased["ties"], n);
    assert_eq!(e["verdict"]["pass"], true, "{}", e["verdict"]);
}

#[tokio::test]
async fn a_judge_route_that_does_not_exist_is_refused_before_anything_runs() {
    let m = mock().await;
    let routes = format!(
        "[[routes]]\nname = \"support-bot\"\n\
         [[routes.versions]]\nname = \"v1\"\nupstream = \"http://{0}/v1\"\n\
         [[routes.versions]]\nname = \"v2\"\nupstream = \"http://{0}/v1\"\n\
         [[routes.scorers]]\nname = \"grade\"\nkind = \"judge\"\nroute = \"nowhere\"\nrubric = \"?\"\nscale = [1, 10]\n",
        m.addr
    );
    let (gw, r) = evaluate_v2(&m, &routes, 8).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("grade") && message.contains("nowhere"),
        "{message}"
    );
    assert!(gw.admin("/admin/v1/evals").await["data"]
        .as_array()
        .unwrap()
        .is_empty());
}
