//! An eval set: the examples of one split of a dataset version, read back
//! from the store through the version's lineage, each as the request to
//! replay (the prompt with its tools and parameters, as the client sent it)
//! and the reference to score against (the correction if there is one, else
//! the answer).

use std::io::{BufRead, BufReader};
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::datasets::curate::Example;
use crate::datasets::{record_of, version_dir};
use crate::eval::Reference;
use crate::store::{DatasetStore, StoreError};

/// One example to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalExample {
    /// The interaction it came from.
    pub source_id: String,
    /// The request body to send, `model` set to the route's name and never
    /// streamed.
    pub body: Bytes,
    pub reference: Reference,
}

/// Why an eval set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExamplesError {
    #[error("no dataset {0}")]
    UnknownDataset(String),
    #[error("dataset {dataset} has no examples in its {split} split")]
    EmptySplit { dataset: String, split: String },
    #[error("split must be train or eval, not {0:?}")]
    BadSplit(String),
    #[error("dataset files: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The examples of `split` in dataset `id`, in lineage order, at most
/// `limit`. Examples whose interaction is gone (erased since the build) or
/// has no answer are skipped.
pub fn load(
    store: &dyn DatasetStore,
    root: &Path,
    id: &str,
    split: &str,
    route: &str,
    limit: Option<usize>,
) -> Result<Vec<EvalExample>, ExamplesError> {
    if !matches!(split, "train" | "eval") {
        return Err(ExamplesError::BadSplit(split.to_string()));
    }
    if store.get_dataset(id)?.is_none() {
        return Err(ExamplesError::UnknownDataset(id.to_string()));
    }
    let lineage = std::fs::File::open(version_dir(root, id).join("interactions.tsv"))?;
    let mut ids = Vec::new();
    for line in BufReader::new(lineage).lines() {
        let line = line?;
        let mut cols = line.split('\t');
        let (Some(iid), Some(_version), Some(s), Some(role)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        if s == split && role == "example" {
            ids.push(iid.to_string());
            if limit.is_some_and(|n| ids.len() >= n) {
                break;
            }
        }
    }
    let mut found = store.scan_ids(&ids)?;
    // Lineage order, whatever order the store answers in.
    let position: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    found.sort_by_key(|s| position.get(s.interaction.id.as_str()).copied());
    let examples: Vec<EvalExample> = found
        .into_iter()
        .filter_map(|s| example_of(record_of(s), route))
        .collect();
    if examples.is_empty() {
        return Err(ExamplesError::EmptySplit {
            dataset: id.to_string(),
            split: split.to_string(),
        });
    }
    Ok(examples)
}

/// The request to replay and the reference, from one stored interaction.
fn example_of(record: crate::datasets::curate::Record, route: &str) -> Option<EvalExample> {
    let ex = Example::from_record(&record)?;
    let mut body = match record.request {
        Value::Object(o) => o,
        _ => return None,
    };
    body.insert("model".into(), Value::from(route));
    for key in ["stream", "stream_options", "user", "safety_identifier", "n"] {
        body.remove(key);
    }
    let target = ex.target();
    let reference = Reference {
        text: target.get("content").and_then(super::content_text),
        tool_calls: super::tool_calls(target),
    };
    Some(EvalExample {
        source_id: ex.id,
        body: Bytes::from(Value::Object(body).to_string()),
        reference,
    })
}
