//! The LLM judge's calls: each answer (pointwise) or each pair of answers,
//! asked twice with the order swapped (pairwise), sent to the judge route's
//! stable version through the same [`Replay`] as the evaluation, and its
//! reply read by `eval::judge`. A judge that fails or answers something
//! unreadable gives `Score::Failed`, counted apart, never a 0 or a 1.
//!
//! A pairwise score is the candidate's (1 a win, 0.5 a tie, 0 a loss); the
//! baseline's is the neutral 0.5, so the paired difference the gate reads is
//! the candidate's margin over an even match.

use bytes::Bytes;
use serde_json::Value;

use super::examples::EvalExample;
use super::replay::{call, read_answer, Replay, RetryPolicy};
use super::run::ExampleResult;
use crate::eval::judge::{
    combine_pairwise, pairwise_messages, parse_score, pointwise_messages, render_conversation,
    request_body, JudgeSpec, Scale,
};
use crate::eval::score::{JudgeMode, Scorer};
use crate::eval::{Answer, Score};

/// Scores every answer with each judge scorer, `concurrency` examples at a
/// time; `stable` gives a judge route's stable version, if it has one.
pub async fn judge_all<R: Replay>(
    replay: &R,
    retry: &RetryPolicy,
    scorers: &[Scorer],
    examples: &[EvalExample],
    results: &mut [ExampleResult],
    concurrency: usize,
    stable: impl Fn(&str) -> Option<String>,
) {
    for scorer in scorers {
        let Some(judge) = scorer.judge() else {
            continue;
        };
        let name = scorer.name().to_string();
        let spec = JudgeSpec {
            rubric: judge.rubric.clone(),
            scale: Scale {
                min: judge.min,
                max: judge.max,
            },
        };
        let Some(version) = stable(&judge.route) else {
            let why = format!("judge route {} has no stable version", judge.route);
            for r in results.iter_mut() {
                r.candidate
                    .scores
                    .insert(name.clone(), Score::Failed(why.clone()));
                r.baseline
                    .scores
                    .insert(name.clone(), Score::Failed(why.clone()));
            }
            continue;
        };
        let ask = |messages: Vec<crate::eval::judge::ChatMessage>| {
            let body = Bytes::from(request_body(&judge.route, &messages).to_string());
            let (route, version) = (judge.route.clone(), version.clone());
            async move {
                let called = call(replay, &route, &version, body, retry).await;
                match called.result {
                    Err(e) => Err(format!("judge call failed: {e}")),
                    Ok(reply) if !(200..300).contains(&reply.status) => {
                        Err(format!("judge answered {}", reply.status))
                    }
                    Ok(reply) => match read_answer(&reply.body) {
                        Ok((answer, _)) => Ok(answer.text.unwrap_or_default()),
                        Err(e) => Err(format!("judge reply unreadable: {e}")),
                    },
                }
            }
        };
        // The examples are judged `concurrency` at a time.
        for chunk in results.chunks_mut(concurrency.max(1)) {
            let judged = join_all(chunk.iter().map(|r| {
                let ex = &examples[r.index];
                let prompt = serde_json::from_slice::<Value>(&ex.body)
                    .map(|b| render_conversation(&b["messages"]))
                    .unwrap_or_default();
                let reference = ex.reference.text.as_ref().map(|_| &ex.reference);
                let (spec, ask) = (&spec, &ask);
                let (candidate, baseline) = (r.candidate.answer.clone(), r.baseline.answer.clone());
                async move {
                    let prompt = prompt.as_str();
                    let pointwise = |answer: Option<Answer>| async move {
                        let answer = answer?;
                        Some(
                            match ask(pointwise_messages(spec, prompt, reference, &answer)).await {
                                Ok(text) => parse_score(&text, &spec.scale),
                                Err(why) => Score::Failed(why),
                            },
                        )
                    };
                    match judge.mode {
                        JudgeMode::Pointwise => {
                            let c = pointwise(candidate).await;
                            let b = pointwise(baseline).await;
                            (c, b)
                        }
                        JudgeMode::Pairwise => match (&candidate, &baseline) {
                            (Some(c), Some(b)) => {
                                let score = pairwise(ask, spec, prompt, reference, c, b).await;
                                let neutral = match &score {
                                    Score::Value(_) => Score::Value(0.5),
                                    Score::Failed(why) => Score::Failed(why.clone()),
                                };
                                (Some(score), Some(neutral))
                            }
                            _ => (None, None),
                        },
                    }
                }
            }))
            .await;
            for (r, (c, b)) in chunk.iter_mut().zip(judged) {
                if let Some(c) = c {
                    r.candidate.scores.insert(name.clone(), c);
                }
                if let Some(b) = b {
                    r.baseline.scores.insert(name.clone(), b);
                }
            }
        }
    }
}

/// Runs every future to its end, side by side, and gives their outputs in
/// order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

async fn pairwise<F, Fut>(
    ask: &F,
    spec: &JudgeSpec,
    prompt: &str,
    reference: Option<&crate::eval::Reference>,
    candidate: &Answer,
    baseline: &Answer,
) -> Score
where
    F: Fn(Vec<crate::eval::judge::ChatMessage>) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let first = match ask(pairwise_messages(
        spec, prompt, reference, candidate, baseline,
    ))
    .await
    {
        Ok(t) => t,
        Err(why) => return Score::Failed(why),
    };
    let swapped = match ask(pairwise_messages(
        spec, prompt, reference, baseline, candidate,
    ))
    .await
    {
        Ok(t) => t,
        Err(why) => return Score::Failed(why),
    };
    combine_pairwise(&first, &swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn joined_futures_run_side_by_side_and_answer_in_order() {
        let start = tokio::time::Instant::now();
        let out = join_all([30u64, 10, 20].into_iter().map(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }))
        .await;
        assert_eq!(out, [30, 10, 20]);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(30),
            "the longest, not the sum"
        );
    }
}
