//! The LLM judge's pure parts: the chat messages that ask a judge model to
//! grade one answer (pointwise) or to prefer one of two (pairwise), the
//! strict reading of its reply, and the combination of the two pairwise
//! verdicts asked with the answers' order swapped.
//!
//! Nothing here calls the judge: the runner sends [`request_body`] to the
//! configured judge route and hands the reply's text back to
//! [`parse_score`] or [`combine_pairwise`]. A reply that is not exactly one
//! of the accepted forms becomes [`Score::Failed`] with the reason, never a
//! guess: a judge failure is counted apart, so reading "7 or 8" as 7 would
//! hide a broken judge inside the scores.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Answer, Reference, Score, ToolCall};

/// The range of scores the judge is asked for, both ends included; `max`
/// is best. Scores are normalised to 0..=1 from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Worst score. Default 1.
    pub min: f64,
    /// Best score. Default 10.
    pub max: f64,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            min: 1.0,
            max: 10.0,
        }
    }
}

impl Scale {
    /// `value` mapped from `min..=max` to `0..=1`.
    pub fn normalise(&self, value: f64) -> f64 {
        (value - self.min) / (self.max - self.min)
    }
}

/// What the judge is asked to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// The grading instructions: what a good answer is for this route.
    pub rubric: String,
    /// The pointwise scale. Default 1 to 10.
    #[serde(default)]
    pub scale: Scale,
}

/// A judge setting that cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeSpecError {
    /// The rubric is empty.
    #[error("rubric: must say what a good answer is, e.g. rubric = \"Is the answer correct and complete?\"")]
    Rubric,
    /// The scale's ends are not finite or not in order.
    #[error("scale: min and max must be finite numbers with min below max (got {min}..={max}); use e.g. scale = {{ min = 1, max = 10 }}")]
    Scale {
        /// The configured worst score.
        min: f64,
        /// The configured best score.
        max: f64,
    },
}

impl JudgeSpec {
    /// Checks every field, returning the first bad one.
    pub fn validate(&self) -> Result<(), JudgeSpecError> {
        if self.rubric.trim().is_empty() {
            return Err(JudgeSpecError::Rubric);
        }
        let Scale { min, max } = self.scale;
        if !(min.is_finite() && max.is_finite() && min < max) {
            return Err(JudgeSpecError::Scale { min, max });
        }
        Ok(())
    }
}

/// One chat message of the judge's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `"system"` or `"user"`.
    pub role: String,
    /// The message's text.
    pub content: String,
}

fn message(role: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content,
    }
}

/// The body of the chat completion request to the judge: `model`, the
/// messages, and temperature 0, so that the judge is as repeatable as the
/// upstream allows.
pub fn request_body(model: &str, messages: &[ChatMessage]) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": messages,
        "temperature": 0,
    })
}

/// An example's OpenAI-style `messages` array rendered as text for the
/// judge: one block per message, headed by its role, with text parts joined,
/// other parts (images, audio) named but not inlined, and tool calls written
/// as `name(arguments)`. Anything but an array is rendered as its JSON text.
pub fn render_conversation(messages: &serde_json::Value) -> String {
    let Some(list) = messages.as_array() else {
        return messages.to_string();
    };
    let mut blocks = Vec::with_capacity(list.len());
    for m in list {
        let role = m.get("role").and_then(|r| r.as_str()).unwrap_or("unknown");
        let mut lines = Vec::new();
        match m.get("content") {
            Some(serde_json::Value::String(s)) => lines.push(s.clone()),
            Some(serde_json::Value::Array(parts)) => {
                for part in parts {
                    match part.get("type").and_then(|t| t.as_str()) {
                        Some("text") => lines.push(
                            part.get("text")
                                .and_then(|t| t.as_str())
                                .unwrap_or_default()
                                .to_string(),
                        ),
                        Some(other) => lines.push(format!("[{other}]")),
                        None => lines.push(part.to_string()),
                    }
                }
            }
            _ => {}
        }
        for call in m
            .get("tool_calls")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let f = call.get("function");
            let name = f.and_then(|f| f.get("name")).and_then(|n| n.as_str());
            let args = f.and_then(|f| f.get("arguments")).and_then(|a| a.as_str());
            lines.push(format!(
                "tool call: {}({})",
                name.unwrap_or("?"),
                args.unwrap_or("")
            ));
        }
        blocks.push(format!("[{role}]\n{}", lines.join("\n")));
    }
    blocks.join("\n\n")
}

fn render_reply(text: Option<&str>, tool_calls: &[ToolCall]) -> String {
    let mut lines: Vec<String> = text.map(str::to_string).into_iter().collect();
    lines.extend(
        tool_calls
            .iter()
            .map(|c| format!("tool call: {}({})", c.name, c.arguments)),
    );
    if lines.is_empty() {
        "(empty)".to_string()
    } else {
        lines.join("\n")
    }
}

/// An answer as the judge reads it: its text, then one line per tool call.
pub fn render_answer(answer: &Answer) -> String {
    render_reply(answer.text.as_deref(), &answer.tool_calls)
}

/// A reference as the judge reads it, like [`render_answer`].
pub fn render_reference(reference: &Reference) -> String {
    render_reply(reference.text.as_deref(), &reference.tool_calls)
}

fn context(prompt: &str, reference: Option<&Reference>) -> String {
    let mut s = format!("<conversation>\n{prompt}\n</conversation>\n\n");
    if let Some(r) = reference {
        s.push_str(&format!(
            "<reference_answer>\n{}\n</reference_answer>\n\n",
            render_reference(r)
        ));
    }
    s
}

/// The judge's messages to grade one answer on `spec.scale`. `prompt` is
/// the conversation as text ([`render_conversation`]); the reference is left
/// out when the example has none (shadow traffic), and the rubric should then
/// not ask for one.
pub fn pointwise_messages(
    spec: &JudgeSpec,
    prompt: &str,
    reference: Option<&Reference>,
    answer: &Answer,
) -> Vec<ChatMessage> {
    let Scale { min, max } = spec.scale;
    let system = format!(
        "You grade the last answer of an AI assistant in a conversation.\n\n{}\n\n\
         Reply with the score only: one number from {min} to {max}, where {max} is best. \
         Write nothing else.",
        spec.rubric.trim()
    );
    let user = format!(
        "{}<answer>\n{}\n</answer>",
        context(prompt, reference),
        render_answer(answer)
    );
    vec![message("system", system), message("user", user)]
}

/// The judge's messages to prefer answer A or answer B (or neither). Ask
/// twice, the second time with the answers swapped, and combine the replies
/// with [`combine_pairwise`].
pub fn pairwise_messages(
    spec: &JudgeSpec,
    prompt: &str,
    reference: Option<&Reference>,
    a: &Answer,
    b: &Answer,
) -> Vec<ChatMessage> {
    let system = format!(
        "You compare two answers that AI assistants gave as the last turn of the same \
         conversation.\n\n{}\n\n\
         Reply with one word only: A if answer A is better, B if answer B is better, \
         or tie if neither is. Write nothing else.",
        spec.rubric.trim()
    );
    let user = format!(
        "{}<answer_a>\n{}\n</answer_a>\n\n<answer_b>\n{}\n</answer_b>",
        context(prompt, reference),
        render_answer(a),
        render_answer(b)
    );
    vec![message("system", system), message("user", user)]
}

const NUM: &str = r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)";

static BARE: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"^({NUM})$")).unwrap());
static FRACTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^({NUM})\s*/\s*({NUM})$")).unwrap());
static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^score\s*[:=]\s*({NUM})(?:\s*/\s*({NUM}))?$")).unwrap()
});
static ANY_NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:\.\d+)?").unwrap());
static FENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```$").unwrap());

/// The reply trimmed and, if the whole of it is one Markdown code block
/// (as chat models like to wrap JSON), the block's contents.
fn unwrap_reply(reply: &str) -> &str {
    let t = reply.trim();
    match FENCE.captures(t) {
        Some(c) => c.get(1).map_or("", |m| m.as_str()).trim(),
        None => t,
    }
}

/// A short, single-line excerpt of a reply for a failure's reason.
fn excerpt(reply: &str) -> String {
    let one_line: String = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one_line.chars().take(60).collect();
    if one_line.chars().count() > 60 {
        s.push('…');
    }
    s
}

/// Reads a pointwise judge's reply as a score on `scale`, normalised to
/// 0..=1. The reply (trimmed, and unwrapped from a code block if it is one)
/// must be exactly one of: a number (`7`, `7.5`); `Score: 7` (or
/// `score = 7`, any case); `7/10` or `Score: 7/10`, where the denominator
/// must be the scale's max; or a JSON object with a numeric `"score"` (other
/// keys, such as a reason, are ignored). Anything else, including a reply
/// with two numbers, and any score outside the scale, is a failure with why.
pub fn parse_score(reply: &str, scale: &Scale) -> Score {
    let text = unwrap_reply(reply);
    if text.is_empty() {
        return Score::Failed("judge reply is empty".to_string());
    }
    let value = if text.starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => match v.get("score").and_then(|s| s.as_f64()) {
                Some(x) => x,
                None => {
                    return Score::Failed(format!(
                        "judge reply is JSON without a numeric \"score\": {}",
                        excerpt(text)
                    ))
                }
            },
            Err(_) => {
                return Score::Failed(format!("judge reply is not valid JSON: {}", excerpt(text)))
            }
        }
    } else if let Some(c) = BARE.captures(text) {
        number(&c[1])
    } else if let Some(c) = FRACTION.captures(text).or_else(|| LABELLED.captures(text)) {
        let x = number(&c[1]);
        if let Some(den) = c.get(2) {
            let den = number(den.as_str());
            if den != scale.max {
                return Score::Failed(format!(
                    "judge scored out of {den} but the scale is {}..={}",
                    scale.min, scale.max
                ));
            }
        }
        x
    } else if ANY_NUMBER.find_iter(text).count() > 1 {
        return Score::Failed(format!(
            "judge reply has more than one number: {}",
            excerpt(text)
        ));
    } else {
        return Score::Failed(format!(
            "judge reply is not a score (expected a number, \"Score: N\", \"N/{}\" or {{\"score\": N}}): {}",
            scale.max,
            excerpt(text)
        ));
    };
    if !(value.is_finite() && scale.min <= value && value <= scale.max) {
        return Score::Failed(format!(
            "judge score {value} is outside the scale {}..={}",
            scale.min, scale.max
        ));
    }
    Score::Value(scale.normalise(value))
}

fn number(s: &str) -> f64 {
    // The regexes only capture what f64's parser reads; NaN stands for the
    // impossible case and fails the range check.
    s.parse().unwrap_or(f64::NAN)
}

/// A pairwise judge's preference, by position in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// Answer A is better.
    A,
    /// Answer B is better.
    B,
    /// Neither is better.
    Tie,
}

/// The candidate's result against the baseline on one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The candidate's answer is better.
    Win,
    /// Neither is better, or the two orders disagreed.
    Tie,
    /// The baseline's answer is better.
    Loss,
}

impl Outcome {
    /// As a score in 0..=1: a win 1, a tie 0.5, a loss 0; so the mean over
    /// an eval set is the candidate's win rate with ties counted as half.
    pub fn score(self) -> f64 {
        match self {
            Outcome::Win => 1.0,
            Outcome::Tie => 0.5,
            Outcome::Loss => 0.0,
        }
    }
}

/// Reads a pairwise judge's reply: `A`, `B` or `tie` (any case, a trailing
/// full stop allowed), `Winner: A`, or a JSON object with `"winner"` set to
/// one of them. Anything else is an error with why.
pub fn parse_preference(reply: &str) -> Result<Preference, String> {
    let text = unwrap_reply(reply);
    if text.is_empty() {
        return Err("judge reply is empty".to_string());
    }
    let word = if text.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("winner").and_then(|w| w.as_str()).map(str::to_string))
            .ok_or_else(|| {
                format!(
                    "judge reply is not JSON with a \"winner\": {}",
                    excerpt(text)
                )
            })?
    } else {
        let lower = text.to_ascii_lowercase();
        let rest = lower.strip_prefix("winner").map_or(lower.as_str(), |r| {
            r.trim_start().trim_start_matches([':', '=']).trim_start()
        });
        rest.trim_end_matches('.').to_string()
    };
    match word.trim().to_ascii_lowercase().as_str() {
        "a" => Ok(Preference::A),
        "b" => Ok(Preference::B),
        "tie" => Ok(Preference::Tie),
        _ => Err(format!("judge reply is not A, B or tie: {}", excerpt(text))),
    }
}

/// The candidate's outcome from the two pairwise verdicts: `first` asked
/// with the candidate as A and the baseline as B, `swapped` with the
/// baseline as A and the candidate as B.
///
/// A win or a loss needs both orders to agree; any disagreement, including
/// a win in one order and a tie in the other, is a tie. This is the
/// conservative rule of Zheng et al., "Judging LLM-as-a-Judge with MT-Bench
/// and Chatbot Arena" (2023, section 3.4): a judge that changes its mind
/// when the answers swap places is showing position bias, not a preference.
pub fn pairwise_outcome(first: Preference, swapped: Preference) -> Outcome {
    let for_candidate = |p: Preference, candidate_is_a: bool| match (p, candidate_is_a) {
        (Preference::Tie, _) => Outcome::Tie,
        (Preference::A, true) | (Preference::B, false) => Outcome::Win,
        (Preference::A, false) | (Preference::B, true) => Outcome::Loss,
    };
    match (for_candidate(first, true), for_candidate(swapped, false)) {
        (a, b) if a == b => a,
        _ => Outcome::Tie,
    }
}

/// The candidate's pairwise score against the baseline from the judge's two
/// replies (see [`pairwise_outcome`] for which is which), as
/// [`Outcome::score`]; a failure if either reply cannot be read, since one
/// order alone cannot cancel position bias.
pub fn combine_pairwise(first_reply: &str, swapped_reply: &str) -> Score {
    match (
        parse_preference(first_reply),
        parse_preference(swapped_reply),
    ) {
        (Ok(first), Ok(swapped)) => Score::Value(pairwise_outcome(first, swapped).score()),
        (Err(why), _) => Score::Failed(format!("first order: {why}")),
        (_, Err(why)) => Score::Failed(format!("swapped order: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ten() -> Scale {
        Scale::default()
    }

    fn failed(s: &Score) -> &str {
        match s {
            Score::Failed(why) => why,
            Score::Value(v) => panic!("expected a failure, got {v}"),
        }
    }

    #[test]
    fn accepted_score_forms() {
        // On 1..=10, 7 normalises to (7 - 1) / 9.
        let seven = 6.0 / 9.0;
        for reply in [
            "7",
            " 7\n",
            "7.0",
            "Score: 7",
            "score:7",
            "SCORE = 7",
            "7/10",
            "7 / 10",
            "Score: 7/10",
            "{\"score\": 7}",
            "{\"score\": 7, \"reason\": \"mostly right\"}",
            "```json\n{\"score\": 7}\n```",
        ] {
            match parse_score(reply, &ten()) {
                Score::Value(v) => assert!((v - seven).abs() < 1e-12, "{reply:?} gave {v}"),
                Score::Failed(why) => panic!("{reply:?} refused: {why}"),
            }
        }
        assert_eq!(parse_score("1", &ten()), Score::Value(0.0));
        assert_eq!(parse_score("10", &ten()), Score::Value(1.0));
        let five = Scale { min: 0.0, max: 5.0 };
        assert_eq!(parse_score("2.5", &five), Score::Value(0.5));
    }

    #[test]
    fn refused_replies_say_why() {
        for (reply, why) in [
            ("", "judge reply is empty"),
            ("   \n", "judge reply is empty"),
            ("```\n```", "judge reply is empty"),
            ("Great answer!", "judge reply is not a score"),
            ("I would give it a 7", "judge reply is not a score"),
            ("seven", "judge reply is not a score"),
            ("7 8", "judge reply has more than one number"),
            ("7 or 8", "judge reply has more than one number"),
            ("Score: 7, maybe 8", "judge reply has more than one number"),
            ("11", "judge score 11 is outside the scale 1..=10"),
            ("0", "judge score 0 is outside the scale 1..=10"),
            ("-3", "judge score -3 is outside the scale 1..=10"),
            (
                "Score: 10.5",
                "judge score 10.5 is outside the scale 1..=10",
            ),
            (
                "{\"score\": 12}",
                "judge score 12 is outside the scale 1..=10",
            ),
            ("7/5", "judge scored out of 5 but the scale is 1..=10"),
            (
                "{\"score\": \"7\"}",
                "judge reply is JSON without a numeric \"score\"",
            ),
            (
                "{\"rating\": 7}",
                "judge reply is JSON without a numeric \"score\"",
            ),
            ("{score: 7}", "judge reply is not valid JSON"),
        ] {
            let s = parse_score(reply, &ten());
            assert!(failed(&s).starts_with(why), "{reply:?}: {s:?}");
        }
    }

    #[test]
    fn a_long_garbage_reply_is_cut_in_the_reason() {
        let reply = "word ".repeat(100);
        let s = parse_score(&reply, &ten());
        assert!(failed(&s).ends_with('…') && failed(&s).len() < 200, "{s:?}");
    }

    #[test]
    fn position_swap_combination() {
        use Outcome::*;
        use Preference::{A, B};
        let tie = Preference::Tie;
        // first: candidate is A; swapped: candidate is B.
        for (first, swapped, outcome) in [
            (A, B, Win),  // preferred the candidate in both orders
            (B, A, Loss), // preferred the baseline in both orders
            (tie, tie, Tie),
            (A, A, Tie),   // always the first position: position bias
            (B, B, Tie),   // always the second position: position bias
            (A, tie, Tie), // a win in one order only
            (tie, B, Tie),
            (B, tie, Tie), // a loss in one order only
            (tie, A, Tie),
        ] {
            assert_eq!(
                pairwise_outcome(first, swapped),
                outcome,
                "{first:?} {swapped:?}"
            );
        }
        assert_eq!(combine_pairwise("A", "B"), Score::Value(1.0));
        assert_eq!(combine_pairwise("b", "Winner: a"), Score::Value(0.0));
        assert_eq!(
            combine_pairwise("tie", "{\"winner\": \"tie\"}"),
            Score::Value(0.5)
        );
        assert_eq!(combine_pairwise("A.", "A"), Score::Value(0.5));
    }

    #[test]
    fn unreadable_pairwise_replies_fail() {
        for reply in [
            "",
            "both",
            "A and B",
            "Answer A is better",
            "{\"winner\": \"C\"}",
            "AB",
        ] {
            assert!(parse_preference(reply).is_err(), "{reply:?}");
        }
        assert!(failed(&combine_pairwise("maybe", "A")).starts_with("first order: "));
        assert!(failed(&combine_pairwise("A", "")).starts_with("swapped order: "));
    }

    #[test]
    fn pointwise_messages_carry_rubric_prompt_reference_and_answer() {
        let spec = JudgeSpec {
            rubric: "Is the capital right?".into(),
            scale: ten(),
        };
        let prompt = render_conversation(&serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        ]));
        assert_eq!(
            prompt,
            "[system]\nBe brief.\n\n[user]\nCapital of France?\n[image_url]"
        );
        let reference = Reference {
            text: Some("Paris".into()),
            tool_calls: vec![],
        };
        let answer = Answer {
            text: None,
            tool_calls: vec![ToolCall {
                name: "lookup".into(),
                arguments: "{\"q\":\"France\"}".into(),
            }],
        };
        let m = pointwise_messages(&spec, &prompt, Some(&reference), &answer);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].role.as_str(), m[1].role.as_str()), ("system", "user"));
        assert!(m[0].content.contains("Is the capital right?"));
        assert!(m[0]
            .content
            .contains("one number from 1 to 10, where 10 is best"));
        assert!(m[1].content.contains("<conversation>\n[system]\nBe brief."));
        assert!(m[1]
            .content
            .contains("<reference_answer>\nParis\n</reference_answer>"));
        assert!(m[1]
            .content
            .ends_with("<answer>\ntool call: lookup({\"q\":\"France\"})\n</answer>"));

        let without = pointwise_messages(&spec, &prompt, None, &Answer::default());
        assert!(!without[1].content.contains("reference"));
        assert!(without[1].content.ends_with("<answer>\n(empty)\n</answer>"));

        let body = request_body("judge-1", &m);
        assert_eq!(body["model"], "judge-1");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], m[1].content.as_str());
    }

    #[test]
    fn pairwise_messages_label_the_answers_in_order() {
        let spec = JudgeSpec {
            rubric: "Which is more helpful?".into(),
            scale: ten(),
        };
        let a = Answer {
            text: Some("first".into()),
            tool_calls: vec![],
        };
        let b = Answer {
            text: Some("second".into()),
            tool_calls: vec![],
        };
        let m = pairwise_messages(&spec, "[user]\nhi", None, &a, &b);
        assert!(m[0].content.contains("Which is more helpful?"));
        assert!(m[0]
            .content
            .contains("A if answer A is better, B if answer B is better"));
        assert!(m[1]
            .content
            .ends_with("<answer_a>\nfirst\n</answer_a>\n\n<answer_b>\nsecond\n</answer_b>"));
        let swapped = pairwise_messages(&spec, "[user]\nhi", None, &b, &a);
        assert!(swapped[1]
            .content
            .contains("<answer_a>\nsecond\n</answer_a>"));
    }

    #[test]
    fn judge_spec_rejections_name_the_field() {
        let spec: JudgeSpec = toml::from_str("rubric = \"Correct?\"").unwrap();
        assert_eq!(spec.scale, Scale::default());
        spec.validate().unwrap();
        let empty = JudgeSpec {
            rubric: " ".into(),
            scale: ten(),
        };
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("rubric:"));
        for (min, max) in [(5.0, 5.0), (10.0, 1.0), (f64::NAN, 10.0)] {
            let bad = JudgeSpec {
                rubric: "x".into(),
                scale: Scale { min, max },
            };
            assert!(bad
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("scale:"));
        }
        let err = toml::from_str::<JudgeSpec>("rubric = \"x\"\nscal = { min = 1, max = 5 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("scal"), "{err}");
    }
}
