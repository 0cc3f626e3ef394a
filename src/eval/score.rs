//! Scorers: what one configured check says about one answer, as a number
//! in 0..=1 (1 best), or why it could not say.
//!
//! A route names its scorers in its configuration as [`ScorerSpec`]s, one
//! table each, tagged by `kind`:
//!
//! ```toml
//! [[routes.scorers]]
//! name = "exact"
//! kind = "exact_match"
//!
//! [[routes.scorers]]
//! name = "order_schema"
//! kind = "json_schema"
//! schema = '''{"type": "object", "required": ["sku", "qty"]}'''
//! ```
//!
//! [`ScorerSpec::compile`] (or [`compile_all`] for a route's list) checks a
//! spec once, compiling its regex or schema, and refuses a bad one with a
//! [`ScorerError`] that names the scorer and the field. The [`Scorer`] it
//! makes is then applied to every example with [`Scorer::score`], which is
//! pure and cheap enough to run inline in the runner.
//!
//! The kinds, and what each gives:
//!
//! | kind | needs the reference | score |
//! | --- | --- | --- |
//! | `exact_match` | yes | 1 if the answer equals the reference after normalisation, else 0 |
//! | `contains` | unless `value` is set | 1 if the answer contains the reference (or `value`), else 0 |
//! | `regex` | no | 1 if `pattern` matches somewhere in the answer, else 0 |
//! | `json_valid` | no | 1 if the answer is one JSON value, else 0 |
//! | `json_schema` | no | 1 if the answer is JSON valid against `schema`, else 0 |
//! | `tool_call` | yes | the share of calls matched by name and arguments |
//! | `token_f1` | yes | SQuAD's token F1 |
//! | `rouge_l` | yes | ROUGE-L F-measure |
//! | `judge` | per rubric | not scored here: the judge route scores it |
//!
//! A scorer that needs the reference and gets none scores
//! `Score::Failed("no reference")` ([`NO_REFERENCE`]), counted apart from
//! the values. An answer without text (only tool calls) is scored by the
//! text scorers as the empty text: it is a real answer that lacks what they
//! look for, so it gets 0, not a failure.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::text;
use super::{Answer, Reference, Score, ToolCall};

/// The reason a reference-based scorer gives when the example has no
/// reference to compare with (no text, or only whitespace; for
/// `tool_call`, no text and no calls).
pub const NO_REFERENCE: &str = "no reference";

/// The configuration of one scorer, as it stands in a route's TOML or in a
/// JSON request: a table with `kind`, `name` and the kind's own keys.
/// Unknown keys are refused, so a misspelt option never falls back to its
/// default unnoticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScorerSpec {
    /// The answer's text equals the reference text. By default both are
    /// trimmed and their runs of whitespace collapsed to one space, and
    /// case matters: models vary in trailing newlines and line wrapping
    /// without changing the answer, while case can be the answer (codes,
    /// identifiers, labels). Set `case_insensitive` for the rest.
    ExactMatch {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// Remove leading and trailing whitespace first. Default: true.
        #[serde(default = "yes")]
        trim: bool,
        /// Collapse every run of whitespace to one space. Default: true.
        #[serde(default = "yes")]
        normalize_whitespace: bool,
        /// Compare lowercased texts (Unicode lowercase, not full case
        /// folding: "ß" and "SS" still differ). Default: false.
        #[serde(default)]
        case_insensitive: bool,
    },
    /// The answer's text contains the reference text, or `value` when it
    /// is set. The same normalisation as `exact_match` applies to both
    /// sides, with the same defaults.
    Contains {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// A fixed text to look for instead of the reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// Remove leading and trailing whitespace first. Default: true.
        #[serde(default = "yes")]
        trim: bool,
        /// Collapse every run of whitespace to one space. Default: true.
        #[serde(default = "yes")]
        normalize_whitespace: bool,
        /// Compare lowercased texts. Default: false.
        #[serde(default)]
        case_insensitive: bool,
    },
    /// `pattern` matches somewhere in the answer's text. Anchor it
    /// (`^...$`, or `\A...\z` across lines) to require a whole answer;
    /// inline flags such as `(?i)` or `(?s)` set case and dot behaviour.
    /// The syntax is the `regex` crate's: no look-around or
    /// back-references, and matching time linear in the answer.
    Regex {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// The regular expression.
        pattern: String,
    },
    /// The answer's text, trimmed, is one JSON value (RFC 8259: an object,
    /// array, string, number, boolean or null). To require an object, use
    /// `json_schema` with `{"type": "object"}`.
    JsonValid {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// Also accept an answer that is one Markdown code fence, with
        /// the info string `json` or none, around the JSON; the fence
        /// must be the whole answer (only whitespace around it), as when
        /// the client strips fences before parsing. Default: false.
        #[serde(default)]
        allow_fenced: bool,
    },
    /// The answer's text is JSON (as for `json_valid`) and validates
    /// against `schema`. The schema's draft is read from its `$schema`
    /// (2020-12 when absent; drafts 4, 6, 7 and 2019-09 are known too).
    /// `$ref` may point only inside the schema itself: nothing is fetched.
    /// `format` is an annotation, as the 2019-09 and 2020-12 drafts
    /// specify, and not checked.
    JsonSchema {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// The JSON Schema, as a table or as a string holding its JSON
        /// text (handier in TOML for a schema copied from elsewhere).
        schema: Value,
        /// Accept a fenced answer, as for `json_valid`. Default: false.
        #[serde(default)]
        allow_fenced: bool,
    },
    /// The answer's tool calls against the reference's. Two calls match
    /// when their function names are equal and their arguments are the
    /// same JSON: key order, whitespace and the spelling of numbers (`1`,
    /// `1.0`, `1e0`) do not matter; empty arguments are `{}`; arguments
    /// that are not JSON match only the same text.
    ///
    /// Order does not matter either: calls made in one turn run in
    /// parallel. Each reference call is matched with at most one answer
    /// call, and the score is the number matched over the length of the
    /// longer list: the fraction of the reference's calls the answer made,
    /// where every extra call costs as much as a missing one (otherwise
    /// calling every tool would score 1). A reference with text and no
    /// calls expects no call: 1 if the answer makes none, else 0.
    ToolCall {
        /// The scorer's name in reports, unique within its route.
        name: String,
    },
    /// SQuAD's token F1 between the answer and the reference, as the
    /// official evaluation script computes it: both normalised by
    /// lowercasing and removing ASCII punctuation and the articles "a",
    /// "an", "the"; F1 of the multiset overlap of their words; 1 if both
    /// have no word left, 0 if only one has none.
    TokenF1 {
        /// The scorer's name in reports, unique within its route.
        name: String,
    },
    /// ROUGE-L F-measure (β = 1) between the answer and the reference:
    /// from the longest common subsequence of their tokens, precision over
    /// the answer's tokens, recall over the reference's. Tokens as Google's
    /// `rouge-score` makes them, without stemming; see
    /// `text::rouge_tokens` for where they differ on non-ASCII text.
    RougeL {
        /// The scorer's name in reports, unique within its route.
        name: String,
    },
    /// An LLM judge: only its configuration lives here. The runner sends
    /// the rubric and the answer (or both answers) to `route` and reads a
    /// number back; [`Scorer::score`] does not score it.
    Judge {
        /// The scorer's name in reports, unique within its route.
        name: String,
        /// The gateway route that judges.
        route: String,
        /// The rubric: what the judge is asked to grade, and how.
        rubric: String,
        /// One answer graded alone, or candidate against baseline.
        /// Default: pointwise.
        #[serde(default)]
        mode: JudgeMode,
        /// The `[min, max]` of the numbers the rubric asks for, say
        /// `[1, 10]`; required, since a default that disagreed with the
        /// rubric would skew every score without an error.
        scale: [f64; 2],
    },
}

fn yes() -> bool {
    true
}

/// How a judge grades.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    /// One answer at a time, against the rubric (and the reference, if the
    /// rubric uses it).
    #[default]
    Pointwise,
    /// Candidate against baseline in one prompt, asked twice with the
    /// order swapped to cancel position bias.
    Pairwise,
}

/// A judge scorer's checked configuration, for the module that prompts
/// the judge and reads its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    /// The gateway route that judges (not empty).
    pub route: String,
    /// The rubric prompt (not empty).
    pub rubric: String,
    /// Pointwise or pairwise.
    pub mode: JudgeMode,
    /// The lowest number the rubric asks for (finite, below `max`).
    pub min: f64,
    /// The highest number the rubric asks for (finite, above `min`).
    pub max: f64,
}

impl JudgeConfig {
    /// A judge's number mapped onto 0..=1 (`min` to 0, `max` to 1), or
    /// `None` if it lies outside the scale or is not finite: a judge that
    /// answers off its scale has failed, and its number is not clamped
    /// into a score.
    pub fn normalize(&self, raw: f64) -> Option<f64> {
        if !raw.is_finite() || raw < self.min || raw > self.max {
            return None;
        }
        Some((raw - self.min) / (self.max - self.min))
    }
}

/// Why a scorer's configuration was refused. Each message names the
/// scorer and the field, and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// A scorer without a name (or a name of only whitespace).
    #[error("name: must not be empty; give each scorer a name of its own, used in reports")]
    EmptyName,
    /// Two scorers of one route with the same name.
    #[error("name: {name:?} is used by two scorers; give each scorer of a route its own name")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A required text left empty (`route`, `rubric`, `value`, `pattern`).
    #[error("scorer {scorer:?}: {field}: must not be empty; {hint}")]
    Empty {
        /// The scorer's name.
        scorer: String,
        /// The empty field.
        field: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// `pattern` does not compile.
    #[error("scorer {scorer:?}: pattern: not a valid regex: {source}")]
    BadRegex {
        /// The scorer's name.
        scorer: String,
        /// The regex crate's account of the problem.
        source: regex::Error,
    },
    /// `schema` is not JSON, or not a valid schema for its draft.
    #[error("scorer {scorer:?}: schema: not a valid JSON schema: {reason}")]
    BadSchema {
        /// The scorer's name.
        scorer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A judge `scale` that is not `[min, max]` with finite min < max.
    #[error("scorer {scorer:?}: scale: must be [min, max] with min below max, got [{min}, {max}]; e.g. [1, 10]")]
    BadScale {
        /// The scorer's name.
        scorer: String,
        /// The first number given.
        min: f64,
        /// The second number given.
        max: f64,
    },
}

impl ScorerError {
    /// The configuration field at fault (`name`, `pattern`, `schema`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            ScorerError::EmptyName | ScorerError::DuplicateName { .. } => "name",
            ScorerError::Empty { field, .. } => field,
            ScorerError::BadRegex { .. } => "pattern",
            ScorerError::BadSchema { .. } => "schema",
            ScorerError::BadScale { .. } => "scale",
        }
    }
}

impl ScorerSpec {
    /// The scorer's name, as configured.
    pub fn name(&self) -> &str {
        match self {
            ScorerSpec::ExactMatch { name, .. }
            | ScorerSpec::Contains { name, .. }
            | ScorerSpec::Regex { name, .. }
            | ScorerSpec::JsonValid { name, .. }
            | ScorerSpec::JsonSchema { name, .. }
            | ScorerSpec::ToolCall { name }
            | ScorerSpec::TokenF1 { name }
            | ScorerSpec::RougeL { name }
            | ScorerSpec::Judge { name, .. } => name,
        }
    }

    /// The `kind` tag, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            ScorerSpec::ExactMatch { .. } => "exact_match",
            ScorerSpec::Contains { .. } => "contains",
            ScorerSpec::Regex { .. } => "regex",
            ScorerSpec::JsonValid { .. } => "json_valid",
            ScorerSpec::JsonSchema { .. } => "json_schema",
            ScorerSpec::ToolCall { .. } => "tool_call",
            ScorerSpec::TokenF1 { .. } => "token_f1",
            ScorerSpec::RougeL { .. } => "rouge_l",
            ScorerSpec::Judge { .. } => "judge",
        }
    }

    /// Checks the spec and compiles what it can once (the regex, the
    /// schema), refusing an empty name, an empty required text, a regex
    /// or schema that does not compile, and a judge scale that is not
    /// increasing.
    pub fn compile(&self) -> Result<Scorer, ScorerError> {
        let name = self.name();
        if name.trim().is_empty() {
            return Err(ScorerError::EmptyName);
        }
        let empty = |field, hint| ScorerError::Empty {
            scorer: name.to_owned(),
            field,
            hint,
        };
        let check = match self {
            ScorerSpec::ExactMatch {
                trim,
                normalize_whitespace,
                case_insensitive,
                ..
            } => Check::ExactMatch(Normalize {
                trim: *trim,
                whitespace: *normalize_whitespace,
                lowercase: *case_insensitive,
            }),
            ScorerSpec::Contains {
                value,
                trim,
                normalize_whitespace,
                case_insensitive,
                ..
            } => {
                let normalize = Normalize {
                    trim: *trim,
                    whitespace: *normalize_whitespace,
                    lowercase: *case_insensitive,
                };
                let value = match value {
                    Some(value) => {
                        let value = normalize.apply(value);
                        if value.is_empty() {
                            return Err(empty(
                                "value",
                                "give the text to look for, or omit value to look for the reference",
                            ));
                        }
                        Some(value)
                    }
                    None => None,
                };
                Check::Contains { value, normalize }
            }
            ScorerSpec::Regex { pattern, .. } => {
                if pattern.is_empty() {
                    return Err(empty(
                        "pattern",
                        "an empty pattern matches every answer; give the regex the answer must match",
                    ));
                }
                let regex = regex::Regex::new(pattern).map_err(|source| ScorerError::BadRegex {
                    scorer: name.to_owned(),
                    source,
                })?;
                Check::Regex(regex)
            }
            ScorerSpec::JsonValid { allow_fenced, .. } => Check::JsonValid {
                allow_fenced: *allow_fenced,
            },
            ScorerSpec::JsonSchema {
                schema,
                allow_fenced,
                ..
            } => Check::JsonSchema {
                validator: Box::new(compile_schema(name, schema)?),
                allow_fenced: *allow_fenced,
            },
            ScorerSpec::ToolCall { .. } => Check::ToolCall,
            ScorerSpec::TokenF1 { .. } => Check::TokenF1,
            ScorerSpec::RougeL { .. } => Check::RougeL,
            ScorerSpec::Judge {
                route,
                rubric,
                mode,
                scale: [min, max],
                ..
            } => {
                if route.trim().is_empty() {
                    return Err(empty("route", "name the gateway route that judges"));
                }
                if rubric.trim().is_empty() {
                    return Err(empty(
                        "rubric",
                        "say what the judge grades and on which scale",
                    ));
                }
                if !(min.is_finite() && max.is_finite() && min < max) {
                    return Err(ScorerError::BadScale {
                        scorer: name.to_owned(),
                        min: *min,
                        max: *max,
                    });
                }
                Check::Judge(JudgeConfig {
                    route: route.clone(),
                    rubric: rubric.clone(),
                    mode: *mode,
                    min: *min,
                    max: *max,
                })
            }
        };
        Ok(Scorer {
            name: name.to_owned(),
            kind: self.kind(),
            check,
        })
    }
}

/// Compiles a route's scorers in order, refusing the first bad one and a
/// name used twice.
pub fn compile_all(specs: &[ScorerSpec]) -> Result<Vec<Scorer>, ScorerError> {
    let mut scorers: Vec<Scorer> = Vec::with_capacity(specs.len());
    for spec in specs {
        let scorer = spec.compile()?;
        if scorers.iter().any(|s| s.name == scorer.name) {
            return Err(ScorerError::DuplicateName { name: scorer.name });
        }
        scorers.push(scorer);
    }
    Ok(scorers)
}

/// A schema given as a table, or as a string holding its JSON text (a
/// schema is never a JSON string itself, so the two cannot be confused),
/// compiled after checking it against its draft's meta-schema.
fn compile_schema(name: &str, schema: &Value) -> Result<jsonschema::Validator, ScorerError> {
    let bad = |reason: String| ScorerError::BadSchema {
        scorer: name.to_owned(),
        reason,
    };
    let parsed;
    let schema = match schema {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| bad(format!("its text is not JSON ({e})")))?;
            &parsed
        }
        other => other,
    };
    jsonschema::options()
        .with_retriever(NothingFetched)
        .build(schema)
        .map_err(|e| {
            // For the meta-schema check, the "instance" is the schema.
            let at = e.instance_path().as_str();
            bad(if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            })
        })
}

/// What a `$ref` outside the schema gets: scoring does no I/O, and a
/// schema that changed on a server would change what a rerun measures.
struct NothingFetched;

impl jsonschema::Retrieve for NothingFetched {
    fn retrieve(
        &self,
        _uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(
            "schemas are never fetched; copy the referenced schema under \"$defs\" \
             and point to it as \"#/$defs/<name>\""
                .into(),
        )
    }
}

/// A compiled scorer: a [`ScorerSpec`] checked once, ready to score any
/// number of answers. It holds no state between calls and is `Send` and
/// `Sync`, so one can serve every worker of a run.
#[derive(Debug)]
pub struct Scorer {
    name: String,
    kind: &'static str,
    check: Check,
}

/// The compiled form of each kind.
#[derive(Debug)]
enum Check {
    ExactMatch(Normalize),
    Contains {
        /// The normalised fixed value, if there is one.
        value: Option<String>,
        normalize: Normalize,
    },
    Regex(regex::Regex),
    JsonValid {
        allow_fenced: bool,
    },
    JsonSchema {
        // Boxed: a validator is far larger than the other variants.
        validator: Box<jsonschema::Validator>,
        allow_fenced: bool,
    },
    ToolCall,
    TokenF1,
    RougeL,
    Judge(JudgeConfig),
}

impl Scorer {
    /// The scorer's name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scorer's `kind`, as configured (`exact_match`, `rouge_l`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The judge's configuration if this is a judge scorer, which
    /// [`Scorer::score`] does not score.
    pub fn judge(&self) -> Option<&JudgeConfig> {
        match &self.check {
            Check::Judge(judge) => Some(judge),
            _ => None,
        }
    }

    /// Whether the scorer compares with the example's reference. Those
    /// that do not (`regex`, `json_valid`, `json_schema`, `contains` with a
    /// `value`) can score shadow traffic, which has no reference; a judge
    /// counts as not needing one, since its rubric decides.
    pub fn uses_reference(&self) -> bool {
        match &self.check {
            Check::ExactMatch(_) | Check::ToolCall | Check::TokenF1 | Check::RougeL => true,
            Check::Contains { value, .. } => value.is_none(),
            Check::Regex(_) | Check::JsonValid { .. } | Check::JsonSchema { .. } => false,
            Check::Judge(_) => false,
        }
    }

    /// Scores one answer against its example's reference: a value in
    /// 0..=1, or `Failed` with the reason ([`NO_REFERENCE`] for a
    /// reference-based scorer without a reference). A judge scorer always
    /// gives `Failed`, saying so: the judge is asked elsewhere, and
    /// keeping it in the same type lets a route's scorers live in one list.
    pub fn score(&self, answer: &Answer, reference: &Reference) -> Score {
        let answer_text = answer.text.as_deref().unwrap_or("");
        let reference_text = reference
            .text
            .as_deref()
            .filter(|text| !text.trim().is_empty());
        match &self.check {
            Check::ExactMatch(normalize) => match reference_text {
                Some(reference_text) => {
                    hit(normalize.apply(answer_text) == normalize.apply(reference_text))
                }
                None => no_reference(),
            },
            Check::Contains { value, normalize } => {
                let haystack = normalize.apply(answer_text);
                match (value, reference_text) {
                    (Some(value), _) => hit(haystack.contains(value.as_str())),
                    (None, Some(reference_text)) => {
                        hit(haystack.contains(&normalize.apply(reference_text)))
                    }
                    (None, None) => no_reference(),
                }
            }
            Check::Regex(regex) => hit(regex.is_match(answer_text)),
            Check::JsonValid { allow_fenced } => {
                hit(answer_json(answer_text, *allow_fenced).is_some())
            }
            Check::JsonSchema {
                validator,
                allow_fenced,
            } => hit(answer_json(answer_text, *allow_fenced)
                .is_some_and(|value| validator.is_valid(&value))),
            Check::ToolCall => {
                if reference.tool_calls.is_empty() && reference_text.is_none() {
                    return no_reference();
                }
                Score::Value(tool_call_score(&answer.tool_calls, &reference.tool_calls))
            }
            Check::TokenF1 => match reference_text {
                Some(reference_text) => Score::Value(token_f1(answer_text, reference_text)),
                None => no_reference(),
            },
            Check::RougeL => match reference_text {
                Some(reference_text) => Score::Value(rouge_l(answer_text, reference_text)),
                None => no_reference(),
            },
            Check::Judge(judge) => Score::Failed(format!(
                "judge scorer {:?} is scored by its judge route {:?}, not locally",
                self.name, judge.route
            )),
        }
    }
}

/// A pass/fail check's score.
fn hit(passed: bool) -> Score {
    Score::Value(if passed { 1.0 } else { 0.0 })
}

fn no_reference() -> Score {
    Score::Failed(NO_REFERENCE.to_owned())
}

/// The text normalisation of `exact_match` and `contains`.
#[derive(Debug, Clone, Copy)]
struct Normalize {
    trim: bool,
    whitespace: bool,
    lowercase: bool,
}

impl Normalize {
    fn apply(&self, text: &str) -> String {
        let text = if self.trim { text.trim() } else { text };
        let text = if self.whitespace {
            text::collapse_whitespace(text)
        } else {
            text.to_owned()
        };
        if self.lowercase {
            text.to_lowercase()
        } else {
            text
        }
    }
}

/// The answer's JSON: the trimmed text parsed as one JSON value, or, with
/// `allow_fenced`, the inside of a code fence that is the whole answer.
fn answer_json(text: &str, allow_fenced: bool) -> Option<Value> {
    let text = text.trim();
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    if allow_fenced {
        return serde_json::from_str(fenced(text)?).ok();
    }
    None
}

/// The body of a Markdown code fence that spans all of `text` (already
/// trimmed): three backticks, an info string that is empty or `json`, a
/// line break, the body, three closing backticks.
fn fenced(text: &str) -> Option<&str> {
    let (info, rest) = text.strip_prefix("```")?.split_once('\n')?;
    let info = info.trim();
    if !(info.is_empty() || info.eq_ignore_ascii_case("json")) {
        return None;
    }
    rest.trim_end().strip_suffix("```")
}

/// SQuAD's token F1 between a prediction and a reference, exactly as
/// `compute_f1` in the official evaluation script (v2.0): over the tokens
/// of `text::squad_tokens`, 1 if both have none, 0 if one has none,
/// otherwise the F1 of their multiset overlap.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let predicted = text::squad_tokens(prediction);
    let gold = text::squad_tokens(reference);
    if predicted.is_empty() || gold.is_empty() {
        return if predicted == gold { 1.0 } else { 0.0 };
    }
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for token in &gold {
        *unmatched.entry(token).or_default() += 1;
    }
    let mut same = 0usize;
    for token in &predicted {
        if let Some(count) = unmatched.get_mut(token.as_str()).filter(|c| **c > 0) {
            *count -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / predicted.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// ROUGE-L F-measure (β = 1) of a prediction against a reference, as
/// Google's `rouge-score` computes it (`rougeL`, no stemming): precision
/// is the longest common subsequence of tokens over the prediction's
/// length, recall over the reference's; 0 if either has no token. Time is
/// the product of the two token counts, memory the shorter one.
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let predicted = text::rouge_tokens(prediction);
    let target = text::rouge_tokens(reference);
    if predicted.is_empty() || target.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&predicted, &target);
    let precision = lcs as f64 / predicted.len() as f64;
    let recall = lcs as f64 / target.len() as f64;
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// The length of the longest common subsequence, by the usual dynamic
/// programme keeping one row of the shorter side.
fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row = vec![0usize; short.len() + 1];
    for x in long {
        // `diagonal` is the previous row's value one column to the left.
        let mut diagonal = 0;
        for (j, y) in short.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[short.len()]
}

/// The `tool_call` score (see [`ScorerSpec::ToolCall`]): reference calls
/// matched, each with one answer call at most, over the longer list's
/// length. Matching is equality, so taking the first unused answer call
/// that matches gives the largest matching.
fn tool_call_score(answer: &[ToolCall], reference: &[ToolCall]) -> f64 {
    if reference.is_empty() {
        return if answer.is_empty() { 1.0 } else { 0.0 };
    }
    let answer_args: Vec<Arguments> = answer
        .iter()
        .map(|c| Arguments::parse(&c.arguments))
        .collect();
    let mut used = vec![false; answer.len()];
    let mut matched = 0usize;
    for wanted in reference {
        let wanted_args = Arguments::parse(&wanted.arguments);
        let found = (0..answer.len()).find(|&i| {
            !used[i] && answer[i].name == wanted.name && answer_args[i].same_as(&wanted_args)
        });
        if let Some(i) = found {
            used[i] = true;
            matched += 1;
        }
    }
    matched as f64 / reference.len().max(answer.len()) as f64
}

/// A call's arguments, read as JSON when they are JSON.
enum Arguments<'a> {
    Json(Value),
    /// Not JSON: compared as trimmed text.
    Text(&'a str),
}

impl<'a> Arguments<'a> {
    fn parse(text: &'a str) -> Arguments<'a> {
        let text = text.trim();
        if text.is_empty() {
            // Some servers send "" for a function without parameters.
            return Arguments::Json(Value::Object(serde_json::Map::new()));
        }
        match serde_json::from_str(text) {
            Ok(value) => Arguments::Json(value),
            Err(_) => Arguments::Text(text),
        }
    }

    fn same_as(&self, other: &Arguments<'_>) -> bool {
        match (self, other) {
            (Arguments::Json(a), Arguments::Json(b)) => same_json(a, b),
            (Arguments::Text(a), Arguments::Text(b)) => a == b,
            _ => false,
        }
    }
}

/// JSON equality as a reader means it: objects as unordered maps, numbers
/// by value (integers exactly, others as floats, so `1`, `1.0` and `1e0`
/// are one number).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|other| same_json(value, other)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_json(x, y))
        }
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                x == y
            } else {
                a.as_f64() == b.as_f64()
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> ScorerSpec {
        serde_json::from_value(value).expect("a valid scorer spec")
    }

    fn scorer(value: Value) -> Scorer {
        spec(value).compile().expect("a scorer that compiles")
    }

    fn text(s: &str) -> Answer {
        Answer {
            text: Some(s.to_owned()),
            tool_calls: Vec::new(),
        }
    }

    fn reference(s: &str) -> Reference {
        Reference {
            text: Some(s.to_owned()),
            tool_calls: Vec::new(),
        }
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }

    fn calls(list: &[(&str, &str)]) -> Vec<ToolCall> {
        list.iter().map(|(n, a)| call(n, a)).collect()
    }

    fn value(score: Score) -> f64 {
        score
            .value()
            .unwrap_or_else(|| panic!("expected a value, got {score:?}"))
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-12
    }

    // ---- configuration ----

    #[test]
    fn a_route_writes_its_scorers_in_toml() {
        #[derive(Deserialize)]
        struct Route {
            scorers: Vec<ScorerSpec>,
        }
        let route: Route = toml::from_str(
            r#"
            [[scorers]]
            name = "exact"
            kind = "exact_match"

            [[scorers]]
            name = "order_schema"
            kind = "json_schema"
            schema = '''{"type": "object", "required": ["sku", "qty"]}'''
            allow_fenced = true

            [[scorers]]
            name = "shape"
            kind = "json_schema"
            schema = { type = "object", properties = { qty = { type = "integer" } } }

            [[scorers]]
            name = "helpful"
            kind = "judge"
            route = "judge-large"
            rubric = "Rate how well the answer solves the user's problem."
            mode = "pairwise"
            scale = [1, 10]
            "#,
        )
        .unwrap();
        let scorers = compile_all(&route.scorers).unwrap();
        let kinds: Vec<_> = scorers.iter().map(|s| (s.name(), s.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("exact", "exact_match"),
                ("order_schema", "json_schema"),
                ("shape", "json_schema"),
                ("helpful", "judge")
            ]
        );
        assert_eq!(
            route.scorers[0],
            ScorerSpec::ExactMatch {
                name: "exact".into(),
                trim: true,
                normalize_whitespace: true,
                case_insensitive: false,
            }
        );
        let fenced = text("```json\n{\"sku\": \"A1\", \"qty\": 2}\n```");
        assert_eq!(value(scorers[1].score(&fenced, &Reference::default())), 1.0);
        assert_eq!(
            value(scorers[2].score(&text(r#"{"qty": 2.5}"#), &Reference::default())),
            0.0
        );
        let judge = scorers[3].judge().unwrap();
        assert_eq!(
            (judge.route.as_str(), judge.mode, judge.min, judge.max),
            ("judge-large", JudgeMode::Pairwise, 1.0, 10.0)
        );
    }

    #[test]
    fn a_spec_survives_a_round_trip_through_json() {
        let specs = [
            json!({"kind": "contains", "name": "c", "value": "refund", "case_insensitive": true}),
            json!({"kind": "regex", "name": "r", "pattern": "^\\d+$"}),
            json!({"kind": "judge", "name": "j", "route": "judge", "rubric": "grade", "scale": [0, 1]}),
        ];
        for s in specs {
            let parsed = spec(s);
            let again: ScorerSpec =
                serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
            assert_eq!(again, parsed);
        }
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let typo = serde_json::from_value::<ScorerSpec>(
            json!({"kind": "exact_match", "name": "e", "case_insensitve": true}),
        )
        .unwrap_err();
        assert!(typo.to_string().contains("case_insensitve"), "{typo}");
        let kind =
            serde_json::from_value::<ScorerSpec>(json!({"kind": "bleu", "name": "b"})).unwrap_err();
        assert!(kind.to_string().contains("bleu"), "{kind}");
        let no_scale = serde_json::from_value::<ScorerSpec>(
            json!({"kind": "judge", "name": "j", "route": "r", "rubric": "x"}),
        )
        .unwrap_err();
        assert!(no_scale.to_string().contains("scale"), "{no_scale}");
    }

    #[test]
    fn a_bad_regex_is_refused_naming_the_scorer_and_the_field() {
        let err = spec(json!({"kind": "regex", "name": "sku", "pattern": "([A-Z]+"}))
            .compile()
            .unwrap_err();
        assert_eq!(err.field(), "pattern");
        let message = err.to_string();
        assert!(
            message.starts_with("scorer \"sku\": pattern: not a valid regex"),
            "{message}"
        );
        let empty = spec(json!({"kind": "regex", "name": "sku", "pattern": ""}))
            .compile()
            .unwrap_err();
        assert_eq!(empty.field(), "pattern");
    }

    #[test]
    fn a_bad_schema_is_refused_naming_the_scorer_and_the_field() {
        // Each breaks the 2020-12 meta-schema: an unknown type name, a
        // negative length, `required` that is not an array of strings.
        for schema in [
            json!({"type": "strin"}),
            json!({"minLength": -1}),
            json!({"required": "sku"}),
            json!("{\"type\": "),
        ] {
            let err = spec(json!({"kind": "json_schema", "name": "order", "schema": schema}))
                .compile()
                .unwrap_err();
            assert_eq!(err.field(), "schema", "{schema}");
            let message = err.to_string();
            assert!(
                message.starts_with("scorer \"order\": schema: not a valid JSON schema"),
                "{message}"
            );
        }
        // A remote reference is never fetched: the schema is refused.
        let remote = spec(json!({"kind": "json_schema", "name": "order",
            "schema": {"$ref": "https://example.com/order.json"}}))
        .compile()
        .unwrap_err();
        assert_eq!(remote.field(), "schema");
        assert!(remote.to_string().contains("never fetched"), "{remote}");
    }

    #[test]
    fn other_bad_configurations_name_their_field() {
        let cases = [
            (json!({"kind": "token_f1", "name": " "}), "name"),
            (
                json!({"kind": "contains", "name": "c", "value": "  "}),
                "value",
            ),
            (
                json!({"kind": "judge", "name": "j", "route": "", "rubric": "x", "scale": [1, 5]}),
                "route",
            ),
            (
                json!({"kind": "judge", "name": "j", "route": "r", "rubric": "", "scale": [1, 5]}),
                "rubric",
            ),
            (
                json!({"kind": "judge", "name": "j", "route": "r", "rubric": "x", "scale": [5, 5]}),
                "scale",
            ),
            (
                json!({"kind": "judge", "name": "j", "route": "r", "rubric": "x", "scale": [10, 1]}),
                "scale",
            ),
        ];
        for (s, field) in cases {
            let err = spec(s.clone()).compile().unwrap_err();
            assert_eq!(err.field(), field, "{s}");
            assert!(err.to_string().contains(&format!("{field}: ")), "{err}");
        }
        let twice = compile_all(&[
            spec(json!({"kind": "token_f1", "name": "sim"})),
            spec(json!({"kind": "rouge_l", "name": "sim"})),
        ])
        .unwrap_err();
        assert_eq!(twice.field(), "name");
        assert!(twice.to_string().contains("\"sim\""), "{twice}");
    }

    #[test]
    fn a_scorer_can_serve_every_worker() {
        fn shared<T: Send + Sync>() {}
        shared::<Scorer>();
    }

    // ---- matching ----

    #[test]
    fn exact_match_forgives_whitespace_but_not_case_by_default() {
        let exact = scorer(json!({"kind": "exact_match", "name": "e"}));
        let r = reference("Paris, France");
        assert_eq!(value(exact.score(&text("Paris, France"), &r)), 1.0);
        assert_eq!(value(exact.score(&text("  Paris,\n  France\n"), &r)), 1.0);
        assert_eq!(value(exact.score(&text("paris, france"), &r)), 0.0);
        assert_eq!(value(exact.score(&text("Paris, France."), &r)), 0.0);

        let folded = scorer(json!({"kind": "exact_match", "name": "e", "case_insensitive": true}));
        assert_eq!(value(folded.score(&text("PARIS, france"), &r)), 1.0);

        let strict = scorer(json!({"kind": "exact_match", "name": "e",
            "trim": false, "normalize_whitespace": false}));
        assert_eq!(value(strict.score(&text("Paris, France\n"), &r)), 0.0);
        assert_eq!(value(strict.score(&text("Paris, France"), &r)), 1.0);
    }

    #[test]
    fn contains_looks_for_the_reference_or_a_fixed_value() {
        let contains = scorer(json!({"kind": "contains", "name": "c"}));
        let r = reference("  42 ");
        assert_eq!(value(contains.score(&text("The answer is 42."), &r)), 1.0);
        assert_eq!(value(contains.score(&text("The answer is 41."), &r)), 0.0);
        assert!(contains.uses_reference());

        let fixed = scorer(json!({"kind": "contains", "name": "c",
            "value": "Refund   Policy", "case_insensitive": true}));
        assert!(!fixed.uses_reference());
        let answer = text("See our refund\npolicy for details.");
        assert_eq!(value(fixed.score(&answer, &Reference::default())), 1.0);
    }

    #[test]
    fn regex_matches_anywhere_unless_anchored() {
        let anywhere = scorer(json!({"kind": "regex", "name": "r", "pattern": r"\b\d{3}-\d{4}\b"}));
        let whole = scorer(json!({"kind": "regex", "name": "r", "pattern": r"^\d{3}-\d{4}$"}));
        let r = Reference::default();
        assert_eq!(value(anywhere.score(&text("Call 555-0100 today"), &r)), 1.0);
        assert_eq!(value(whole.score(&text("Call 555-0100 today"), &r)), 0.0);
        assert_eq!(value(whole.score(&text("555-0100"), &r)), 1.0);
        assert_eq!(value(anywhere.score(&Answer::default(), &r)), 0.0);
    }

    #[test]
    fn json_valid_reads_the_whole_answer_and_optionally_one_fence() {
        let plain = scorer(json!({"kind": "json_valid", "name": "j"}));
        let fenced = scorer(json!({"kind": "json_valid", "name": "j", "allow_fenced": true}));
        let r = Reference::default();
        let cases = [
            // (answer, valid for plain, valid with allow_fenced)
            ("{\"a\": [1, 2, null]}", true, true),
            ("  [true, false]\n", true, true),
            ("42", true, true),
            ("{\"a\": 1,}", false, false),
            ("{\"a\": 1} trailing", false, false),
            ("```json\n{\"a\": 1}\n```", false, true),
            ("```\n{\"a\": 1}\n```\n", false, true),
            ("```JSON\n{\"a\": 1}\n```", false, true),
            ("```python\n{\"a\": 1}\n```", false, false),
            ("Here it is:\n```json\n{\"a\": 1}\n```", false, false),
            ("```json\n{\"a\": 1,}\n```", false, false),
            ("", false, false),
        ];
        for (answer, want_plain, want_fenced) in cases {
            let got_plain = value(plain.score(&text(answer), &r)) == 1.0;
            let got_fenced = value(fenced.score(&text(answer), &r)) == 1.0;
            assert_eq!(
                (got_plain, got_fenced),
                (want_plain, want_fenced),
                "{answer:?}"
            );
        }
    }

    /// Cases from the JSON-Schema-Test-Suite (tests/draft2020-12), for the
    /// keywords structured answers lean on: `type` (type.json), `required`
    /// (required.json), `properties` with `additionalProperties: false`
    /// (additionalProperties.json), `enum` (enum.json) and a `$ref` inside
    /// the schema (ref.json, "relative pointer ref to object"). Each data
    /// value is given to the scorer as the answer's JSON text.
    #[test]
    fn json_schema_agrees_with_the_json_schema_test_suite() {
        let groups = [
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "integer"}),
                vec![
                    ("an integer is an integer", json!(1), true),
                    (
                        "a float with zero fractional part is an integer",
                        json!(1.0),
                        true,
                    ),
                    ("a float is not an integer", json!(1.1), false),
                    (
                        "a string is still not an integer, even if it looks like one",
                        json!("1"),
                        false,
                    ),
                ],
            ),
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                    "properties": {"foo": {}, "bar": {}}, "required": ["foo"]}),
                vec![
                    (
                        "present required property is valid",
                        json!({"foo": 1}),
                        true,
                    ),
                    (
                        "non-present required property is invalid",
                        json!({"bar": 1}),
                        false,
                    ),
                    ("ignores arrays", json!([]), true),
                ],
            ),
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                    "properties": {"foo": {}, "bar": {}},
                    "patternProperties": {"^v": {}},
                    "additionalProperties": false}),
                vec![
                    ("no additional properties is valid", json!({"foo": 1}), true),
                    (
                        "an additional property is invalid",
                        json!({"foo": 1, "bar": 2, "quux": "boom"}),
                        false,
                    ),
                    (
                        "patternProperties are not additional properties",
                        json!({"foo": 1, "vroom": 2}),
                        true,
                    ),
                ],
            ),
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                    "enum": [6, "foo", [], true, {"foo": 12}]}),
                vec![
                    ("one of the enum is valid", json!([]), true),
                    ("something else is invalid", json!(null), false),
                    ("objects are deep compared", json!({"foo": false}), false),
                    ("valid object matches", json!({"foo": 12}), true),
                    (
                        "extra properties in object is invalid",
                        json!({"foo": 12, "boo": 42}),
                        false,
                    ),
                ],
            ),
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                    "properties": {"foo": {"type": "integer"}, "bar": {"$ref": "#/properties/foo"}}}),
                vec![
                    ("match", json!({"bar": 3}), true),
                    ("mismatch", json!({"bar": true}), false),
                ],
            ),
        ];
        for (schema, tests) in groups {
            let s = scorer(json!({"kind": "json_schema", "name": "s", "schema": schema}));
            for (description, data, valid) in tests {
                let got = value(s.score(&text(&data.to_string()), &Reference::default()));
                assert_eq!(
                    got,
                    if valid { 1.0 } else { 0.0 },
                    "{schema}: {description}"
                );
            }
        }
    }

    #[test]
    fn json_schema_scores_zero_for_an_answer_that_is_not_json() {
        let s = scorer(json!({"kind": "json_schema", "name": "s", "schema": true}));
        assert_eq!(
            value(s.score(&text("{\"a\": 1}"), &Reference::default())),
            1.0
        );
        assert_eq!(
            value(s.score(&text("not json"), &Reference::default())),
            0.0
        );
    }

    // ---- tool calls ----

    #[test]
    fn tool_calls_match_whatever_the_key_order_and_whitespace() {
        let s = scorer(json!({"kind": "tool_call", "name": "t"}));
        let r = Reference {
            text: None,
            tool_calls: calls(&[(
                "get_weather",
                r#"{"city":"Paris","units":"metric","days":3,"opts":{"a":[1,2],"b":null}}"#,
            )]),
        };
        let answer = Answer {
            text: None,
            tool_calls: calls(&[(
                "get_weather",
                "{\n  \"opts\": { \"b\": null, \"a\": [1, 2] },\n  \"days\": 3.0,\n  \"units\": \"metric\",\n  \"city\": \"Paris\"\n}",
            )]),
        };
        assert_eq!(value(s.score(&answer, &r)), 1.0);

        let mut wrong = answer.clone();
        wrong.tool_calls[0].arguments =
            r#"{"city":"paris","units":"metric","days":3,"opts":{"a":[1,2],"b":null}}"#.into();
        assert_eq!(
            value(s.score(&wrong, &r)),
            0.0,
            "string values are compared exactly"
        );
        let mut reordered_array = answer.clone();
        reordered_array.tool_calls[0].arguments =
            r#"{"city":"Paris","units":"metric","days":3,"opts":{"a":[2,1],"b":null}}"#.into();
        assert_eq!(
            value(s.score(&reordered_array, &r)),
            0.0,
            "arrays keep their order"
        );
        let mut renamed = answer;
        renamed.tool_calls[0].name = "get_forecast".into();
        assert_eq!(value(s.score(&renamed, &r)), 0.0);
    }

    #[test]
    fn tool_call_score_is_the_share_of_reference_calls_matched() {
        let s = scorer(json!({"kind": "tool_call", "name": "t"}));
        let r = Reference {
            text: None,
            tool_calls: calls(&[
                ("lookup", r#"{"id": 1}"#),
                ("lookup", r#"{"id": 2}"#),
                ("notify", ""),
            ]),
        };
        let score = |answer: &[(&str, &str)]| {
            value(s.score(
                &Answer {
                    text: None,
                    tool_calls: calls(answer),
                },
                &r,
            ))
        };
        // Order does not matter; "" and {} are the same empty arguments.
        assert_eq!(
            score(&[
                ("notify", "{}"),
                ("lookup", r#"{"id":2}"#),
                ("lookup", r#"{"id":1}"#)
            ]),
            1.0
        );
        // Two of three.
        assert!(close(
            score(&[("lookup", r#"{"id":1}"#), ("notify", "{}")]),
            2.0 / 3.0
        ));
        // One answer call matches one reference call only.
        assert!(close(
            score(&[("lookup", r#"{"id":1}"#), ("lookup", r#"{"id":1}"#)]),
            1.0 / 3.0
        ));
        // An extra call costs as much as a missing one: 3 matched over 4.
        assert!(close(
            score(&[
                ("lookup", r#"{"id":1}"#),
                ("lookup", r#"{"id":2}"#),
                ("notify", ""),
                ("delete", "{}")
            ]),
            0.75
        ));
        assert_eq!(score(&[]), 0.0);
    }

    #[test]
    fn a_reference_without_calls_expects_none() {
        let s = scorer(json!({"kind": "tool_call", "name": "t"}));
        let r = reference("It is sunny in Paris.");
        assert_eq!(value(s.score(&text("Sunny."), &r)), 1.0);
        let calling = Answer {
            text: None,
            tool_calls: calls(&[("get_weather", "{}")]),
        };
        assert_eq!(value(s.score(&calling, &r)), 0.0);
        assert_eq!(
            s.score(&calling, &Reference::default()),
            Score::Failed(NO_REFERENCE.into())
        );
    }

    #[test]
    fn arguments_that_are_not_json_match_only_the_same_text() {
        let s = scorer(json!({"kind": "tool_call", "name": "t"}));
        let r = Reference {
            text: None,
            tool_calls: calls(&[("run", "{city: Paris}")]),
        };
        let same = Answer {
            text: None,
            tool_calls: calls(&[("run", " {city: Paris} ")]),
        };
        let json_instead = Answer {
            text: None,
            tool_calls: calls(&[("run", r#"{"city": "Paris"}"#)]),
        };
        assert_eq!(value(s.score(&same, &r)), 1.0);
        assert_eq!(value(s.score(&json_instead, &r)), 0.0);
    }

    // ---- reference similarity ----

    /// Scores each `(reference, answer, expected)` with a scorer of `kind`.
    fn assert_scores(kind: &str, cases: &[(&str, &str, f64)]) {
        let s = scorer(json!({"kind": kind, "name": kind}));
        for &(reference_text, answer, expected) in cases {
            let got = value(s.score(&text(answer), &reference(reference_text)));
            assert!(
                close(got, expected),
                "{kind}: {answer:?} vs {reference_text:?}: {got} != {expected}"
            );
        }
    }

    /// Expected values from `compute_f1` of SQuAD's official v2.0
    /// evaluation script (Python 3.11), on answers to the SQuAD dev set's
    /// first question ("Which NFL team represented the AFC at Super Bowl
    /// 50?", gold "Denver Broncos") and its neighbours, plus cases for
    /// repeated tokens and articles.
    #[test]
    fn token_f1_matches_squads_official_script() {
        let cases = [
            ("Denver Broncos", "Denver Broncos", 1.0),
            ("Denver Broncos", "the Denver Broncos", 1.0),
            ("Denver Broncos", "Broncos", 0.6666666666666666),
            ("Denver Broncos", "The Broncos of Denver", 0.8),
            (
                "Santa Clara, California",
                "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California",
                0.42857142857142855,
            ),
            ("Super Bowl L", "L", 0.5),
            ("gold", "golden anniversary", 0.0),
            ("February 7, 2016", "Feb. 7th 2016", 0.3333333333333333),
            ("Carolina Panthers", "Denver Broncos", 0.0),
            ("a a b", "a b b", 0.6666666666666666),
            ("x y y z", "y y y", 0.5714285714285715),
            ("Theatre and an apple", "the theatre, an apple!", 0.8),
            ("24–10", "24-10", 0.0),
            // Both normalise to nothing: the script's "no answer" agreement.
            ("the the a an", "An", 1.0),
        ];
        assert_scores("token_f1", &cases);
        for (gold, prediction, expected) in cases {
            assert!(close(token_f1(prediction, gold), expected));
        }
    }

    /// Expected values from Google's `rouge-score` 0.1.2,
    /// `RougeScorer(["rougeL"], use_stemmer=False).score(target,
    /// prediction)["rougeL"].fmeasure`. The first two "police" cases are
    /// also the worked example of Lin's ROUGE paper (2004, section 3.1):
    /// against "police killed the gunman", S2 scores 3/4 and S3 2/4.
    #[test]
    fn rouge_l_matches_rouge_score() {
        let cases = [
            (
                "The quick brown fox jumps over the lazy dog",
                "The quick brown dog jumps on the log.",
                0.5882352941176471,
            ),
            ("police killed the gunman", "police kill the gunman", 0.75),
            ("police killed the gunman", "the gunman kill police", 0.5),
            ("police killed the gunman", "the gunman police killed", 0.5),
            ("Testing one two three", "testing, ONE... two-three!", 1.0),
            ("a b c d e f", "f e d c b a", 0.16666666666666666),
            ("The cat sat on the mat.", "The cat sat on the mat.", 1.0),
            ("hello world", "goodbye moon", 0.0),
            ("3.14 is pi", "pi is 3 14", 0.5),
            ("hello world", "", 0.0),
        ];
        assert_scores("rouge_l", &cases);
        // Where this tokenizer departs from rouge-score on purpose: it
        // keeps "café" and "schön" whole (rouge-score: 0.4444444444444445).
        assert!(close(
            rouge_l("Das Cafe ist schon", "Das Café ist schön"),
            0.5
        ));
    }

    #[test]
    fn lcs_is_symmetric_and_handles_empty_sides() {
        let a = ["a", "b", "c", "b", "d", "a", "b"];
        let b = ["b", "d", "c", "a", "b", "a"];
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len(&b, &a), 4);
        assert_eq!(lcs_len::<&str>(&[], &b), 0);
    }

    // ---- references and judges ----

    #[test]
    fn reference_based_scorers_fail_without_a_reference() {
        let kinds = [
            "exact_match",
            "contains",
            "token_f1",
            "rouge_l",
            "tool_call",
        ];
        let blank = Reference {
            text: Some(" \n ".into()),
            tool_calls: Vec::new(),
        };
        for kind in kinds {
            let s = scorer(json!({"kind": kind, "name": kind}));
            assert!(s.uses_reference(), "{kind}");
            for r in [&Reference::default(), &blank] {
                assert_eq!(
                    s.score(&text("anything"), r),
                    Score::Failed(NO_REFERENCE.into()),
                    "{kind}"
                );
            }
        }
        for s in [
            json!({"kind": "regex", "name": "r", "pattern": "."}),
            json!({"kind": "json_valid", "name": "j"}),
            json!({"kind": "json_schema", "name": "s", "schema": {}}),
        ] {
            let s = scorer(s);
            assert!(!s.uses_reference());
            assert!(s
                .score(&text("{}"), &Reference::default())
                .value()
                .is_some());
        }
    }

    #[test]
    fn an_answer_without_text_scores_zero_not_failed() {
        let r = reference("Denver Broncos");
        let silent = Answer {
            text: None,
            tool_calls: calls(&[("search", "{}")]),
        };
        for kind in ["exact_match", "contains", "token_f1", "rouge_l"] {
            let s = scorer(json!({"kind": kind, "name": kind}));
            assert_eq!(s.score(&silent, &r), Score::Value(0.0), "{kind}");
        }
    }

    #[test]
    fn a_judge_is_configured_here_and_scored_elsewhere() {
        let s = scorer(json!({"kind": "judge", "name": "helpful", "route": "judge",
            "rubric": "Grade helpfulness from 1 to 5.", "scale": [1, 5]}));
        let judge = s.judge().unwrap();
        assert_eq!(judge.mode, JudgeMode::Pointwise);
        match s.score(&text("answer"), &reference("reference")) {
            Score::Failed(reason) => assert!(reason.contains("judge"), "{reason}"),
            other => panic!("a judge must not be scored locally: {other:?}"),
        }
        assert_eq!(judge.normalize(1.0), Some(0.0));
        assert_eq!(judge.normalize(4.0), Some(0.75));
        assert_eq!(judge.normalize(5.0), Some(1.0));
        assert_eq!(judge.normalize(6.0), None);
        assert_eq!(judge.normalize(f64::NAN), None);
        assert!(scorer(json!({"kind": "token_f1", "name": "f"}))
            .judge()
            .is_none());
    }
}
