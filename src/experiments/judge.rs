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

/// Scores every answer with each judge scorer; `stable` gives a judge
/// route's stable version, if it has one.
pub async fn judge_all<R: Replay>(
    replay: &R,
    retry: &RetryPolicy,
    scorers: &[Scorer],
    examples: &[EvalExample],
    results: &mut [ExampleResult],
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
        for r in results.iter_mut() {
            let ex = &examples[r.index];
            let prompt = serde_json::from_slice::<Value>(&ex.body)
                .map(|b| render_conversation(&b["messages"]))
                .unwrap_or_default();
            let reference = ex.reference.text.as_ref().map(|_| &ex.reference);
            match judge.mode {
                JudgeMode::Pointwise => {
                    for side in [&mut r.candidate, &mut r.baseline] {
                        let Some(answer) = &side.answer else { continue };
                        let score = match ask(pointwise_messages(&spec, &prompt, reference, answer))
                            .await
                        {
                            Ok(text) => parse_score(&text, &spec.scale),
                            Err(why) => Score::Failed(why),
                        };
                        side.scores.insert(name.clone(), score);
                    }
                }
                JudgeMode::Pairwise => {
                    let (Some(c), Some(b)) = (&r.candidate.answer, &r.baseline.answer) else {
                        continue;
                    };
                    let score = pairwise(&ask, &spec, &prompt, reference, c, b).await;
                    let neutral = match score {
                        Score::Value(_) => Score::Value(0.5),
                        Score::Failed(ref why) => Score::Failed(why.clone()),
                    };
                    r.candidate.scores.insert(name.clone(), score);
                    r.baseline.scores.insert(name.clone(), neutral);
                }
            }
        }
    }
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
