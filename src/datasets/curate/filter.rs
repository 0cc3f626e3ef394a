//! The record filters, in pipeline order, each named by the stage it counts
//! under in `StageCounts`. Pure predicates over one record; no I/O.

use super::{finish_reason, output_chars, FeedbackRule, Record, Signals, Spec};
use serde_json::Value;

/// Every stage name, in the order the builder applies them, so counts can be
/// pre-filled with zeros and read as a funnel.
pub const STAGES: [&str; 17] = [
    "route",
    "version",
    "time",
    "endpoint",
    "status",
    "redaction",
    "no_answer",
    "prompt_tokens",
    "completion_tokens",
    "empty",
    "truncated",
    "refusal",
    "output_chars",
    "feedback",
    "quality",
    "dedupe_exact",
    "dedupe_near",
];

/// Openings that mark a refusal; matched case-insensitively at the start of
/// the trimmed answer, with curly apostrophes folded to straight ones.
const REFUSALS: &[&str] = &[
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i can't",
    "i am sorry, but i cannot",
    "i'm sorry, i can't",
    "sorry, but i can't",
    "sorry, i can't",
    "i cannot help with",
    "i can't help with",
    "i cannot assist with",
    "i can't assist with",
    "i'm unable to help with",
    "i am unable to help with",
    "i'm not able to help with",
    "i can't comply",
    "i cannot comply",
    "i won't be able to help",
];

fn bounds<T: PartialOrd>(v: Option<T>, min: Option<T>, max: Option<T>) -> bool {
    if min.is_none() && max.is_none() {
        return true;
    }
    // An unknown count cannot be shown to fit, and a bound usually guards a
    // context window, so it fails rather than slipping through.
    let Some(v) = v else { return false };
    min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
}

pub(crate) fn is_refusal(r: &Record, answer: &Value) -> bool {
    let explicit = r
        .response
        .as_ref()
        .and_then(|resp| resp.get("choices")?.get(0)?.get("message")?.get("refusal"))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if explicit {
        return true;
    }
    let text = super::text_of(answer.get("content").unwrap_or(&Value::Null))
        .trim_start()
        .chars()
        .take(64)
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase();
    REFUSALS.iter().any(|p| text.starts_with(p))
}

/// The filters that look at the record itself (not its feedback); returns the
/// stage that rejected it. `answer` is the normalised answer message.
pub(crate) fn scope(spec: &Spec, r: &Record, answer: Option<&Value>) -> Result<(), &'static str> {
    if spec.route.as_ref().is_some_and(|x| *x != r.route) {
        return Err("route");
    }
    if !spec.versions.is_empty() && !spec.versions.contains(&r.version) {
        return Err("version");
    }
    if spec.since_ms.is_some_and(|t| r.created_at_ms < t)
        || spec.until_ms.is_some_and(|t| r.created_at_ms >= t)
    {
        return Err("time");
    }
    if spec.endpoint.as_ref().is_some_and(|e| *e != r.endpoint) {
        return Err("endpoint");
    }
    if spec.require_ok && (r.outcome != "ok" || !(200..300).contains(&r.status)) {
        return Err("status");
    }
    if spec.drop_redaction_failed && r.redaction == "failed" {
        return Err("redaction");
    }
    let Some(answer) = answer else {
        return Err("no_answer");
    };
    if !bounds(
        r.prompt_tokens,
        spec.min_prompt_tokens,
        spec.max_prompt_tokens,
    ) {
        return Err("prompt_tokens");
    }
    if !bounds(
        r.completion_tokens,
        spec.min_completion_tokens,
        spec.max_completion_tokens,
    ) {
        return Err("completion_tokens");
    }
    let chars = output_chars(answer);
    if spec.drop_empty && chars == 0 {
        return Err("empty");
    }
    if spec.drop_truncated && finish_reason(r) == Some("length") {
        return Err("truncated");
    }
    if spec.drop_refusals && is_refusal(r, answer) {
        return Err("refusal");
    }
    if !bounds(Some(chars), spec.min_output_chars, spec.max_output_chars) {
        return Err("output_chars");
    }
    Ok(())
}

/// Whether the feedback satisfies the rule (see [`FeedbackRule`]).
pub(crate) fn feedback_ok(rule: &FeedbackRule, s: &Signals) -> bool {
    let checks = [
        rule.thumbs_up.then_some(s.thumbs == Some(true)),
        rule.corrected.then_some(s.correction.is_some()),
        rule.no_thumbs_down.then_some(s.thumbs != Some(false)),
        rule.min_rating.map(|m| s.rating.is_some_and(|x| x >= m)),
        rule.outcome_true.then_some(s.outcome == Some(true)),
    ];
    let mut set = checks.iter().flatten().peekable();
    if set.peek().is_none() {
        return true;
    }
    if rule.any_of {
        set.any(|ok| *ok)
    } else {
        set.all(|ok| *ok)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    fn rule(f: impl Fn(&mut FeedbackRule)) -> FeedbackRule {
        let mut r = FeedbackRule::default();
        f(&mut r);
        r
    }

    #[test]
    fn feedback_rules() {
        let up = Signals::of(&[thumbs(true)]);
        let down = Signals::of(&[thumbs(false)]);
        let none = Signals::default();
        let corrected = Signals::of(&[fb("correction", json!("x"), None, 1)]);
        let rated = Signals::of(&[fb("rating", json!(4), Some(0.75), 1)]);
        let worked = Signals::of(&[fb("outcome", json!(true), None, 1)]);

        assert!(feedback_ok(&FeedbackRule::default(), &down));

        let r = rule(|r| r.thumbs_up = true);
        assert!(feedback_ok(&r, &up) && !feedback_ok(&r, &down) && !feedback_ok(&r, &none));

        let r = rule(|r| r.corrected = true);
        assert!(feedback_ok(&r, &corrected) && !feedback_ok(&r, &up));

        let r = rule(|r| r.no_thumbs_down = true);
        assert!(feedback_ok(&r, &up) && feedback_ok(&r, &none) && !feedback_ok(&r, &down));

        let r = rule(|r| r.min_rating = Some(0.7));
        assert!(feedback_ok(&r, &rated) && !feedback_ok(&r, &none));
        let r = rule(|r| r.min_rating = Some(0.8));
        assert!(!feedback_ok(&r, &rated));

        let r = rule(|r| r.outcome_true = true);
        assert!(feedback_ok(&r, &worked) && !feedback_ok(&r, &none));

        // all_of (default) vs any_of.
        let all = rule(|r| {
            r.thumbs_up = true;
            r.corrected = true;
        });
        assert!(!feedback_ok(&all, &up) && !feedback_ok(&all, &corrected));
        let both = Signals::of(&[thumbs(true), fb("correction", json!("x"), None, 1)]);
        assert!(feedback_ok(&all, &both));
        let any = rule(|r| {
            r.thumbs_up = true;
            r.corrected = true;
            r.any_of = true;
        });
        assert!(
            feedback_ok(&any, &up) && feedback_ok(&any, &corrected) && !feedback_ok(&any, &none)
        );
    }

    #[test]
    fn refusal_detection() {
        let a = |s: &str| json!({"role": "assistant", "content": s});
        let r = rec("a", "q", "x");
        assert!(is_refusal(&r, &a("I’m sorry, but I can’t help with that.")));
        assert!(is_refusal(&r, &a("  I cannot help with weapons.")));
        assert!(!is_refusal(&r, &a("Sure! I can't wait to help.")));
        let mut explicit = r.clone();
        explicit.response.as_mut().unwrap()["choices"][0]["message"]["refusal"] = json!("no");
        assert!(is_refusal(&explicit, &a("")));
    }
}
