//! The dataset spec: which interactions to select and how to clean, dedupe and
//! split them. Deserialised from TOML (or JSON) by the caller; this module only
//! defines defaults and validation and does no I/O.

use serde::{Deserialize, Serialize};

/// Selection and cleaning rules. Every key is optional; unknown keys are
/// rejected so a typo cannot silently widen a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spec {
    pub route: Option<String>,
    /// Empty = every version.
    pub versions: Vec<String>,
    /// Inclusive lower bound on `created_at_ms`.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on `created_at_ms`.
    pub until_ms: Option<i64>,
    pub endpoint: Option<String>,
    /// Only calls that asked for this `model`, exactly as the client sent it
    /// (in zero-config mode every call is on route `default`, whatever its
    /// model). Left out of the spec's text when unset, so the ids of
    /// datasets built before it existed do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only calls of this user segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Keep only outcome "ok" with a 2xx status.
    pub require_ok: bool,
    pub min_prompt_tokens: Option<i64>,
    pub max_prompt_tokens: Option<i64>,
    pub min_completion_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub min_output_chars: Option<usize>,
    pub max_output_chars: Option<usize>,
    pub feedback: FeedbackRule,
    pub min_quality: Option<f64>,
    pub drop_redaction_failed: bool,
    /// finish_reason == "length".
    pub drop_truncated: bool,
    pub drop_empty: bool,
    pub drop_refusals: bool,
    pub dedupe: Dedupe,
    pub split: Split,
    /// The training formats to write. Default: all of them.
    pub emit: Vec<Format>,
}

/// A training-data layout (see `export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// OpenAI chat fine-tuning: `{"messages":[...]}`.
    Sft,
    /// OpenAI preference fine-tuning: `input` / `preferred_output` / `non_preferred_output`.
    Dpo,
    /// TRL preference rows: `prompt` / `chosen` / `rejected`.
    DpoTrl,
    /// TRL unpaired labels: `prompt` / `completion` / `label`.
    Kto,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Sft, Format::Dpo, Format::DpoTrl, Format::Kto];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sft => "sft",
            Format::Dpo => "dpo",
            Format::DpoTrl => "dpo-trl",
            Format::Kto => "kto",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            route: None,
            versions: Vec::new(),
            since_ms: None,
            until_ms: None,
            endpoint: Some("chat.completions".into()),
            model: None,
            segment: None,
            require_ok: true,
            min_prompt_tokens: None,
            max_prompt_tokens: None,
            min_completion_tokens: None,
            max_completion_tokens: None,
            min_output_chars: None,
            max_output_chars: None,
            feedback: FeedbackRule::default(),
            min_quality: None,
            drop_redaction_failed: true,
            drop_truncated: true,
            drop_empty: true,
            drop_refusals: false,
            dedupe: Dedupe::default(),
            split: Split::default(),
            emit: Format::ALL.to_vec(),
        }
    }
}

/// Feedback requirements. Only the rules that are set count; with none set
/// every record passes. `any_of = false` needs all set rules, `true` needs one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackRule {
    pub thumbs_up: bool,
    pub corrected: bool,
    pub no_thumbs_down: bool,
    /// Mean rating score (0..1) at least this.
    pub min_rating: Option<f64>,
    pub outcome_true: bool,
    pub any_of: bool,
}

impl FeedbackRule {
    pub fn is_empty(&self) -> bool {
        !(self.thumbs_up
            || self.corrected
            || self.no_thumbs_down
            || self.min_rating.is_some()
            || self.outcome_true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dedupe {
    /// Drop a record whose prompt key is identical to a kept one.
    pub exact: bool,
    /// Drop a record whose MinHash-estimated Jaccard similarity to a kept one
    /// is at least `near_threshold`.
    pub near: bool,
    pub near_threshold: f64,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe {
            exact: true,
            near: true,
            near_threshold: 0.9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Split {
    pub eval_ratio: f64,
    /// When set, overrides `eval_ratio`: the prompts with the lowest split
    /// hashes go to eval until this many are there.
    pub eval_size: Option<usize>,
    pub seed: String,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            eval_ratio: 0.1,
            eval_size: None,
            seed: "flywheel".into(),
        }
    }
}

/// Why a spec was refused. Each message names the key and says how to fix
/// it. The first four are found while a spec is read from JSON, the rest by
/// [`Spec::validate`].
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("spec: must be an object (a table of keys)")]
    NotATable,
    /// A time given both as text and in milliseconds (`since` and `since_ms`).
    #[error("{key}: give either {key} or {ms_key}, not both")]
    TwoTimes {
        key: &'static str,
        ms_key: &'static str,
    },
    #[error("{key}: cannot read {value}; use an age like \"7d\" or \"24h\", a date like \"2026-11-18\", or an RFC 3339 time")]
    Time {
        key: &'static str,
        value: serde_json::Value,
    },
    /// A key serde refused, in the table named (`spec` for the top level).
    #[error("{table}: {source}")]
    Keys {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("route: must not be empty; omit it to select every route")]
    EmptyRoute,
    #[error("versions: entries must not be empty; remove the empty entry")]
    EmptyVersion,
    #[error("endpoint: must not be empty; use e.g. \"chat.completions\"")]
    EmptyEndpoint,
    #[error("since_ms: must be before until_ms ({since} >= {until}); swap or widen the window")]
    Window { since: i64, until: i64 },
    #[error("{key}: must not be negative, got {value}")]
    Negative { key: &'static str, value: i64 },
    /// `min_<name>` above `max_<name>`; `i128` holds both the token counts
    /// (`i64`) and the character counts (`usize`).
    #[error("min_{name}: must not exceed max_{name} ({min} > {max}); lower min_{name} or raise max_{name}")]
    MinAboveMax {
        name: &'static str,
        min: i128,
        max: i128,
    },
    #[error("{key}: must be between {low} and {high}, got {value}")]
    OutOfRange {
        key: &'static str,
        low: f64,
        high: f64,
        value: f64,
    },
    #[error("split.eval_size: must be at least 1; omit it to use split.eval_ratio")]
    ZeroEvalSize,
    #[error(
        "emit: must name at least one format; use any of \"sft\", \"dpo\", \"dpo-trl\", \"kto\""
    )]
    NoFormat,
    #[error("split.seed: must not be empty; omit it to use \"flywheel\"")]
    EmptySeed,
}

fn within(key: &'static str, value: f64, low: f64, high: f64) -> Result<(), SpecError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::OutOfRange {
            key,
            low,
            high,
            value,
        })
    }
}

fn ordered<T: PartialOrd + Copy + Into<i128>>(
    name: &'static str,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), SpecError> {
    match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => Err(SpecError::MinAboveMax {
            name,
            min: lo.into(),
            max: hi.into(),
        }),
        _ => Ok(()),
    }
}

impl Spec {
    /// Checks values serde cannot; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.route.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(SpecError::EmptyRoute);
        }
        if self.versions.iter().any(|v| v.trim().is_empty()) {
            return Err(SpecError::EmptyVersion);
        }
        if self
            .endpoint
            .as_deref()
            .is_some_and(|e| e.trim().is_empty())
        {
            return Err(SpecError::EmptyEndpoint);
        }
        if let (Some(since), Some(until)) = (self.since_ms, self.until_ms) {
            if since >= until {
                return Err(SpecError::Window { since, until });
            }
        }
        for (key, v) in [
            ("min_prompt_tokens", self.min_prompt_tokens),
            ("max_prompt_tokens", self.max_prompt_tokens),
            ("min_completion_tokens", self.min_completion_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
        ] {
            if let Some(value) = v.filter(|n| *n < 0) {
                return Err(SpecError::Negative { key, value });
            }
        }
        ordered(
            "prompt_tokens",
            self.min_prompt_tokens,
            self.max_prompt_tokens,
        )?;
        ordered(
            "completion_tokens",
            self.min_completion_tokens,
            self.max_completion_tokens,
        )?;
        ordered(
            "output_chars",
            self.min_output_chars.map(|n| n as u64),
            self.max_output_chars.map(|n| n as u64),
        )?;
        if let Some(r) = self.feedback.min_rating {
            within("feedback.min_rating", r, 0.0, 1.0)?;
        }
        if let Some(q) = self.min_quality {
            within("min_quality", q, 0.0, 1.0)?;
        }
        // Below ~0.5 the 16x4 LSH banding misses most candidate pairs, so such
        // a threshold would not do what it says.
        within(
            "dedupe.near_threshold",
            self.dedupe.near_threshold,
            0.5,
            1.0,
        )?;
        within("split.eval_ratio", self.split.eval_ratio, 0.0, 0.5)?;
        if self.split.eval_size == Some(0) {
            return Err(SpecError::ZeroEvalSize);
        }
        if self.emit.is_empty() {
            return Err(SpecError::NoFormat);
        }
        if self.split.seed.is_empty() {
            return Err(SpecError::EmptySeed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_fills_defaults() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "route": "support",
            "feedback": {"thumbs_up": true},
            "split": {"eval_size": 50}
        }))
        .unwrap();
        assert_eq!(s.route.as_deref(), Some("support"));
        assert_eq!(s.endpoint.as_deref(), Some("chat.completions"));
        assert!(s.require_ok && s.drop_truncated && s.drop_empty && s.drop_redaction_failed);
        assert!(!s.drop_refusals);
        assert!(s.feedback.thumbs_up && !s.feedback.any_of);
        assert_eq!(s.dedupe, Dedupe::default());
        assert_eq!(s.split.eval_size, Some(50));
        assert_eq!(s.split.eval_ratio, 0.1);
        assert_eq!(s.split.seed, "flywheel");
        assert!(s.validate().is_ok());
        let empty: Spec = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Spec::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<Spec>(r#"{"split": {"ratio": 0.2}}"#).unwrap_err();
        assert!(err.to_string().contains("ratio"), "{err}");
        assert!(serde_json::from_str::<Spec>(r#"{"routes": "x"}"#).is_err());
    }

    type Mutate = Box<dyn Fn(&mut Spec)>;

    #[test]
    fn validate_names_key_and_fix() {
        let cases: Vec<(Mutate, &str)> = vec![
            (
                Box::new(|s| s.split.eval_ratio = 0.7),
                "split.eval_ratio: must be between 0 and 0.5",
            ),
            (
                Box::new(|s| s.split.eval_ratio = f64::NAN),
                "split.eval_ratio",
            ),
            (Box::new(|s| s.split.eval_size = Some(0)), "split.eval_size"),
            (Box::new(|s| s.split.seed.clear()), "split.seed"),
            (
                Box::new(|s| s.dedupe.near_threshold = 0.3),
                "dedupe.near_threshold",
            ),
            (
                Box::new(|s| s.feedback.min_rating = Some(4.0)),
                "feedback.min_rating",
            ),
            (Box::new(|s| s.min_quality = Some(-0.1)), "min_quality"),
            (
                Box::new(|s| {
                    s.since_ms = Some(10);
                    s.until_ms = Some(5)
                }),
                "since_ms: must be before until_ms",
            ),
            (
                Box::new(|s| {
                    s.min_output_chars = Some(10);
                    s.max_output_chars = Some(5)
                }),
                "min_output_chars: must not exceed max_output_chars",
            ),
            (
                Box::new(|s| s.max_prompt_tokens = Some(-1)),
                "max_prompt_tokens: must not be negative",
            ),
            (Box::new(|s| s.route = Some(" ".into())), "route:"),
            (Box::new(|s| s.versions = vec!["".into()]), "versions:"),
            (Box::new(|s| s.endpoint = Some("".into())), "endpoint:"),
        ];
        for (mutate, want) in cases {
            let mut s = Spec::default();
            mutate(&mut s);
            let err = s.validate().unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
            assert!(!err.ends_with('.'), "{err}");
            assert_eq!(
                err.chars().next().unwrap().to_lowercase().next(),
                err.chars().next()
            );
        }
    }
}
