//! Evaluation's pure core: scoring what a model version answered against an
//! example's reference ([`score`], with the LLM judge's prompt and the
//! reading of its answer in [`judge`]), the paired statistics over an eval
//! set ([`stats`]), and the gate that turns them into a verdict with one
//! readable reason per check ([`gate`]).
//!
//! Nothing here does I/O or imports another module of the crate: the runner
//! that replays prompts to upstreams and stores experiments is built on it,
//! and so are the shadow comparisons. Every function is deterministic for
//! its inputs (the bootstrap takes its seed), so a rerun over the same
//! outputs gives the same numbers.

pub mod gate;
pub mod judge;
pub mod score;
pub mod stats;
mod text;

use serde::{Deserialize, Serialize};

/// A function call in an answer or a reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as the model sent them: a JSON text, usually an object.
    pub arguments: String,
}

/// What a version answered for one example, as the scorers see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The assistant message's text, if any.
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// The example's best answer: a correction if there is one, else the
/// preferred answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// One scorer's result for one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// A score in 0..=1 (1 best).
    Value(f64),
    /// The scorer could not score this answer: a judge that failed or
    /// answered something unreadable, or a reference-based scorer with no
    /// reference. Counted apart, never as 0 or 1.
    Failed(String),
}

impl Score {
    pub fn value(&self) -> Option<f64> {
        match self {
            Score::Value(v) => Some(*v),
            Score::Failed(_) => None,
        }
    }
}
