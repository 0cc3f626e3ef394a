//! The staged, streaming dataset builder: filters, then exact and near dedupe
//! against what was kept so far, then a deterministic split once everything
//! has been seen. It counts what each stage removed. No I/O: records come in
//! through [`Builder::push`], which hands each kept example straight back, so
//! the caller can spill examples to disk and the builder itself holds only
//! small per-record state (dedupe keys, split hashes, vote ids).
//!
//! DPO pairs come from two places:
//! - a kept example with a correction: the correction beats the model's answer
//!   ([`correction_pair`]);
//! - thumbs on the same exact prompt: the best-scored thumbs-up answer beats
//!   the worst-scored thumbs-down answer. Dedupe (and the feedback and quality
//!   filters, which usually select thumbs-up) would drop one side of such a
//!   pair, so every record that passes the record filters and carries a thumbs
//!   vote is also offered to a side table keyed by a hash of its full prompt
//!   (messages + tools, so both answers really answer the same conversation).
//!   The table holds at most one up and one down vote per prompt, by id; the
//!   caller fetches the two records again and makes the pair with
//!   [`thumbs_pair`].
//!
//! Pairs follow the split of their prompt key, like examples, so a DPO eval
//! prompt is never trained on by exact key. (A thumbs pair whose prompt is only
//! a near duplicate of a kept example may land on the other side.)

use super::dedupe::{exact_key, signature, NearIndex, Signature};
use super::filter::{feedback_ok, scope, STAGES};
use super::quality::quality_with;
use super::split::{eval_bound, split_hash};
use super::{answer_message, prompt_key, Example, Record, Signals, Spec, SpecError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// "scanned", "kept", "train", "eval", "pairs" and one "removed_by_<stage>"
/// per stage (all present, zero when nothing was removed), so a caller can
/// tell which filter emptied a selection.
pub type StageCounts = BTreeMap<String, u64>;

/// Why a DPO pair exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    Correction,
    Thumbs,
}

/// One preference pair: `chosen` beats `rejected` for this prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pair {
    pub prompt: Vec<Value>,
    pub tools: Option<Value>,
    pub chosen: Value,
    pub rejected: Value,
    pub chosen_id: String,
    pub rejected_id: String,
    pub source: PairSource,
}

/// A kept example with the split hash of its prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub example: Example,
    pub split: u64,
}

/// A thumbs pair found by id: the caller loads both records again and calls
/// [`thumbs_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VotePair {
    pub up_id: String,
    pub down_id: String,
    pub split: u64,
}

/// What is known once every record has been pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The largest split hash that goes to eval (inclusive); `None`: no eval.
    bound: Option<u64>,
    pub vote_pairs: Vec<VotePair>,
    /// The funnel; "train", "eval" and "pairs" are left for the caller, which
    /// sees the examples and pairs as it writes them.
    pub counts: StageCounts,
}

impl Finished {
    pub fn is_eval(&self, split: u64) -> bool {
        self.bound.is_some_and(|b| split <= b)
    }
}

/// The in-memory result of [`build`].
#[derive(Debug, Clone, PartialEq)]
#[cfg(test)]
pub struct Built {
    pub train: Vec<Example>,
    pub eval: Vec<Example>,
    pub train_pairs: Vec<Pair>,
    pub eval_pairs: Vec<Pair>,
    pub counts: StageCounts,
}

struct Vote {
    id: Box<str>,
    quality: f64,
}

struct SideEntry {
    split: u64,
    up: Option<Vote>,
    down: Option<Vote>,
}

pub struct Builder {
    spec: Spec,
    scanned: u64,
    /// Records removed, by stage, in the order of `STAGES`.
    removed: [u64; STAGES.len()],
    /// Split hashes of the kept examples (so also how many were kept).
    hashes: Vec<u64>,
    exact: HashSet<u128>,
    near: NearIndex,
    // Insertion-ordered so the pair output is deterministic.
    side: Vec<SideEntry>,
    side_index: HashMap<u128, u32>,
}

impl Builder {
    /// Validates the spec; the error names the key and the fix.
    pub fn new(spec: Spec) -> Result<Builder, SpecError> {
        Builder::with_rows(spec, 0)
    }

    /// Like `new`, with the near-dedupe index sized for about `rows` records
    /// (its table of bucket heads, 32–64 bytes per row, made up front); a
    /// spec without near dedupe gets the smallest.
    pub fn with_rows(spec: Spec, rows: usize) -> Result<Builder, SpecError> {
        spec.validate()?;
        let rows = if spec.dedupe.near { rows } else { 0 };
        Ok(Builder {
            spec,
            scanned: 0,
            removed: [0; STAGES.len()],
            hashes: Vec::new(),
            exact: HashSet::new(),
            near: NearIndex::with_rows(rows),
            side: Vec::new(),
            side_index: HashMap::new(),
        })
    }

    fn removed(&mut self, stage: &str) {
        let i = STAGES
            .iter()
            .position(|s| *s == stage)
            .expect("every stage is listed in STAGES");
        self.removed[i] += 1;
    }

    /// The funnel so far; "train", "eval" and "pairs" are left at zero.
    fn counts(&self) -> StageCounts {
        let mut counts = StageCounts::new();
        counts.insert("scanned".into(), self.scanned);
        counts.insert("kept".into(), self.hashes.len() as u64);
        for key in ["train", "eval", "pairs"] {
            counts.insert(key.into(), 0);
        }
        for (stage, n) in STAGES.iter().zip(self.removed) {
            counts.insert(format!("removed_by_{stage}"), n);
        }
        counts
    }

    /// Runs one record through every stage: returns it as an example when it
    /// is kept, or counts its removal.
    pub fn push(&mut self, r: Record) -> Option<Kept> {
        let p = Prepared::new(&self.spec, r);
        self.push_prepared(p)
    }

    /// The sequential half of `push`: counting, votes, dedupe against what was
    /// kept so far.
    pub fn push_prepared(&mut self, p: Prepared) -> Option<Kept> {
        self.scanned += 1;
        let c = match p.0 {
            Err(stage) => {
                self.removed(stage);
                return None;
            }
            Ok(c) => c,
        };
        if let Some((key, up)) = c.vote {
            self.offer_vote(key, &c.example.id, c.example.quality, up, c.split);
        }
        if !c.feedback_ok {
            self.removed("feedback");
            return None;
        }
        if self.spec.min_quality.is_some_and(|m| c.example.quality < m) {
            self.removed("quality");
            return None;
        }
        if self.spec.dedupe.exact && self.exact.contains(&c.exact) {
            self.removed("dedupe_exact");
            return None;
        }
        if let Some(sig) = c.near {
            if self
                .near
                .find(&sig, self.spec.dedupe.near_threshold)
                .is_some()
            {
                self.removed("dedupe_near");
                return None;
            }
            self.near.insert(sig);
        }
        self.exact.insert(c.exact);
        self.hashes.push(c.split);
        Some(Kept {
            example: c.example,
            split: c.split,
        })
    }

    fn offer_vote(&mut self, key: u128, id: &str, quality: f64, up: bool, split: u64) {
        let idx = *self.side_index.entry(key).or_insert_with(|| {
            self.side.push(SideEntry {
                split,
                up: None,
                down: None,
            });
            (self.side.len() - 1) as u32
        });
        let entry = &mut self.side[idx as usize];
        let slot = if up { &mut entry.up } else { &mut entry.down };
        // Keep the strongest contrast: best up, worst down; first wins ties.
        let better = slot.as_ref().is_none_or(|v| {
            if up {
                quality > v.quality
            } else {
                quality < v.quality
            }
        });
        if better {
            *slot = Some(Vote {
                id: id.into(),
                quality,
            });
        }
    }

    /// Fixes the split bound and lists the thumbs pairs to fetch.
    pub fn finish(mut self) -> Finished {
        let counts = self.counts();
        let bound = eval_bound(&self.spec.split, &mut self.hashes);
        let vote_pairs = self
            .side
            .into_iter()
            .filter_map(|e| match (e.up, e.down) {
                (Some(up), Some(down)) => Some(VotePair {
                    up_id: up.id.into(),
                    down_id: down.id.into(),
                    split: e.split,
                }),
                _ => None,
            })
            .collect();
        Finished {
            bound,
            vote_pairs,
            counts,
        }
    }
}

/// One record with everything computed that does not depend on the records
/// before it (filters, quality, keys, the MinHash signature). Preparing is the
/// costly part of a push and needs only the spec, so a caller may prepare on
/// other threads and push the results in order.
pub struct Prepared(Result<Candidate, &'static str>);

struct Candidate {
    example: Example,
    feedback_ok: bool,
    split: u64,
    exact: u128,
    near: Option<Signature>,
    /// (hash of the full prompt, vote is up) when the record has a thumbs vote.
    vote: Option<(u128, bool)>,
}

impl Prepared {
    pub fn new(spec: &Spec, r: Record) -> Prepared {
        let answer = answer_message(&r);
        if let Err(stage) = scope(spec, &r, answer.as_ref()) {
            return Prepared(Err(stage));
        }
        let answer = answer.expect("scope rejects records without an answer");
        let signals = Signals::of(&r.feedback);
        let quality = quality_with(&r, &signals, Some(&answer));
        let key = prompt_key(&r);
        let split = split_hash(&spec.split.seed, &key);
        let near = spec.dedupe.near.then(|| signature(&super::near_key(&r)));
        let feedback_ok = feedback_ok(&spec.feedback, &signals);
        let prompt = super::prompt_messages(&r.request);
        let tools = super::tools_of(&r.request);
        let vote = signals
            .thumbs
            .map(|up| (exact_key(&json!([prompt, tools]).to_string()), up));
        Prepared(Ok(Candidate {
            example: Example {
                id: r.id,
                version: r.version,
                prompt,
                tools,
                answer,
                correction: signals.correction,
                thumbs: signals.thumbs,
                quality,
            },
            feedback_ok,
            split,
            exact: exact_key(&key),
            near,
            vote,
        }))
    }

    /// The example this record becomes if it is kept (`None`: a record filter
    /// already removed it).
    pub fn example(&self) -> Option<&Example> {
        self.0.as_ref().ok().map(|c| &c.example)
    }

    /// Whether it can still be kept: it passed the record filters, the
    /// feedback rule and the quality floor (dedupe alone is left to decide).
    pub fn may_be_kept(&self, spec: &Spec) -> bool {
        self.0.as_ref().is_ok_and(|c| {
            // Exactly the negation of `push_prepared`'s two checks.
            c.feedback_ok && !spec.min_quality.is_some_and(|m| c.example.quality < m)
        })
    }

    /// The split hash of its prompt, when it passed the record filters.
    pub fn split(&self) -> Option<u64> {
        self.0.as_ref().ok().map(|c| c.split)
    }
}

/// The pair a kept example's correction makes, if it differs from the answer.
pub fn correction_pair(ex: &Example) -> Option<Pair> {
    let c = ex.correction.as_ref().filter(|c| **c != ex.answer)?;
    Some(Pair {
        prompt: ex.prompt.clone(),
        tools: ex.tools.clone(),
        chosen: c.clone(),
        rejected: ex.answer.clone(),
        chosen_id: ex.id.clone(),
        rejected_id: ex.id.clone(),
        source: PairSource::Correction,
    })
}

/// The pair a [`VotePair`]'s two records make; `None` when either has no
/// answer any more or both answers are the same.
pub fn thumbs_pair(up: &Record, down: &Record) -> Option<Pair> {
    let chosen = answer_message(up)?;
    let rejected = answer_message(down)?;
    if chosen == rejected {
        return None;
    }
    Some(Pair {
        prompt: super::prompt_messages(&up.request),
        tools: super::tools_of(&up.request),
        chosen,
        rejected,
        chosen_id: up.id.clone(),
        rejected_id: down.id.clone(),
        source: PairSource::Thumbs,
    })
}

/// Runs a whole selection in memory: for tests and small sets. Large builds
/// stream kept examples to disk instead (see `crate::datasets`).
#[cfg(test)]
pub fn build(spec: Spec, records: impl IntoIterator<Item = Record>) -> Result<Built, SpecError> {
    let mut b = Builder::new(spec)?;
    let mut kept = Vec::new();
    let mut voted = HashMap::new();
    for r in records {
        if r.feedback.iter().any(|f| f.kind == "thumbs") {
            voted.insert(r.id.clone(), r.clone());
        }
        kept.extend(b.push(r));
    }
    let done = b.finish();
    let mut built = Built {
        train: Vec::new(),
        eval: Vec::new(),
        train_pairs: Vec::new(),
        eval_pairs: Vec::new(),
        counts: StageCounts::new(),
    };
    for Kept { example, split } in kept {
        let eval = done.is_eval(split);
        if let Some(p) = correction_pair(&example) {
            if eval {
                &mut built.eval_pairs
            } else {
                &mut built.train_pairs
            }
            .push(p);
        }
        if eval {
            &mut built.eval
        } else {
            &mut built.train
        }
        .push(example);
    }
    for v in &done.vote_pairs {
        if let Some(p) = thumbs_pair(&voted[&v.up_id], &voted[&v.down_id]) {
            if done.is_eval(v.split) {
                &mut built.eval_pairs
            } else {
                &mut built.train_pairs
            }
            .push(p);
        }
    }
    built.counts = done.counts;
    built
        .counts
        .insert("train".into(), built.train.len() as u64);
    built.counts.insert("eval".into(), built.eval.len() as u64);
    let pairs = built.train_pairs.len() + built.eval_pairs.len();
    built.counts.insert("pairs".into(), pairs as u64);
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    fn build(spec: Spec, records: Vec<Record>) -> Built {
        super::build(spec, records).unwrap()
    }

    /// The one stage that removed the single record, or None if it was kept.
    fn removed_by(spec: Spec, r: Record) -> Option<String> {
        let built = build(spec, vec![r]);
        let hit: Vec<_> = built
            .counts
            .iter()
            .filter(|(k, v)| k.starts_with("removed_by_") && **v > 0)
            .map(|(k, _)| k.trim_start_matches("removed_by_").to_string())
            .collect();
        assert!(hit.len() <= 1, "{hit:?}");
        assert_eq!(built.counts["scanned"], 1);
        assert_eq!(built.counts["kept"], u64::from(hit.is_empty()));
        hit.into_iter().next()
    }

    fn spec(f: impl Fn(&mut Spec)) -> Spec {
        let mut s = Spec::default();
        f(&mut s);
        s
    }

    type Mutate<T> = Box<dyn Fn(&mut T)>;

    fn finish_reason(r: &mut Record, why: &str) {
        r.response.as_mut().unwrap()["choices"][0]["finish_reason"] = json!(why);
    }

    #[test]
    fn each_filter_counts_under_its_stage() {
        let ok = || rec("a", "how do i reset my password", "click reset");
        assert_eq!(removed_by(Spec::default(), ok()), None);

        let cases: Vec<(Spec, Mutate<Record>, &str)> = vec![
            (
                spec(|s| s.route = Some("sales".into())),
                Box::new(|_| {}),
                "route",
            ),
            (
                spec(|s| s.versions = vec!["v2".into()]),
                Box::new(|_| {}),
                "version",
            ),
            (spec(|s| s.since_ms = Some(2_000)), Box::new(|_| {}), "time"),
            (spec(|s| s.until_ms = Some(1_000)), Box::new(|_| {}), "time"),
            (
                Spec::default(),
                Box::new(|r| r.endpoint = "responses".into()),
                "endpoint",
            ),
            (
                Spec::default(),
                Box::new(|r| r.outcome = "upstream_error".into()),
                "status",
            ),
            (Spec::default(), Box::new(|r| r.status = 502), "status"),
            (
                Spec::default(),
                Box::new(|r| r.redaction = "failed".into()),
                "redaction",
            ),
            (
                Spec::default(),
                Box::new(|r| r.response = None),
                "no_answer",
            ),
            (
                spec(|s| s.min_prompt_tokens = Some(21)),
                Box::new(|_| {}),
                "prompt_tokens",
            ),
            (
                spec(|s| s.max_prompt_tokens = Some(100)),
                Box::new(|r| r.prompt_tokens = None),
                "prompt_tokens",
            ),
            (
                spec(|s| s.max_completion_tokens = Some(9)),
                Box::new(|_| {}),
                "completion_tokens",
            ),
            (
                Spec::default(),
                Box::new(|r| *r = rec("a", "q", " ")),
                "empty",
            ),
            (
                Spec::default(),
                Box::new(|r| finish_reason(r, "length")),
                "truncated",
            ),
            (
                spec(|s| s.drop_refusals = true),
                Box::new(|r| *r = rec("a", "q", "I'm sorry, but I can't do that.")),
                "refusal",
            ),
            (
                spec(|s| s.min_output_chars = Some(12)),
                Box::new(|_| {}),
                "output_chars",
            ),
            (
                spec(|s| s.max_output_chars = Some(5)),
                Box::new(|_| {}),
                "output_chars",
            ),
            (
                spec(|s| s.feedback.thumbs_up = true),
                Box::new(|_| {}),
                "feedback",
            ),
            (
                spec(|s| s.min_quality = Some(0.6)),
                Box::new(|_| {}),
                "quality",
            ),
        ];
        for (spec, mutate, want) in cases {
            let mut r = ok();
            mutate(&mut r);
            assert_eq!(removed_by(spec, r).as_deref(), Some(want));
        }

        // Switched-off filters let the same records through.
        let lax = spec(|s| {
            s.require_ok = false;
            s.drop_redaction_failed = false;
            s.drop_truncated = false;
            s.drop_empty = false;
        });
        let mut r = rec("a", "q", "");
        r.outcome = "upstream_error".into();
        r.status = 500;
        r.redaction = "failed".into();
        finish_reason(&mut r, "length");
        assert_eq!(removed_by(lax, r), None);
        let refusal = rec("a", "q", "I cannot help with that");
        assert_eq!(removed_by(Spec::default(), refusal), None);
        let mut thumbed = ok();
        thumbed.feedback = vec![thumbs(true)];
        let s = spec(|s| {
            s.feedback.thumbs_up = true;
            s.min_quality = Some(0.75);
        });
        assert_eq!(removed_by(s, thumbed), None);
    }

    #[test]
    fn counts_show_the_funnel() {
        let mut recs = vec![
            rec("1", "alpha question one", "a"),
            rec("2", "alpha question one", "b"),
            rec("3", "beta question", "c"),
        ];
        recs[2].route = "other".into();
        let built = build(spec(|s| s.route = Some("support".into())), recs);
        let c = &built.counts;
        assert_eq!(c["scanned"], 3);
        assert_eq!(c["removed_by_route"], 1);
        assert_eq!(c["removed_by_dedupe_exact"], 1);
        assert_eq!(c["kept"], 1);
        assert_eq!(c["train"] + c["eval"], 1);
        assert_eq!(c["removed_by_truncated"], 0, "every stage is listed");
    }

    const P: &str = "please summarise the attached quarterly report for the board and highlight \
        the three biggest risks to revenue growth along with any mitigation steps that the \
        finance team proposed last month";

    #[test]
    fn near_dedupe_ignores_a_shared_system_prompt() {
        let system: String = (0..200).map(|i| format!("rule{i} ")).collect();
        let with = |id: &str, user: &str| {
            let mut r = rec(id, user, "a");
            r.request["messages"][0]["content"] = json!(system);
            r
        };
        let b = build(
            Spec::default(),
            vec![
                with("1", P),
                with("2", "what does the enterprise plan cost per seat"),
                with("3", &P.replace("last month", "last week")),
            ],
        );
        assert_eq!(b.counts["kept"], 2, "{:?}", b.counts);
        assert_eq!(b.counts["removed_by_dedupe_near"], 1);
    }

    #[test]
    fn near_dedupe_threshold() {
        let recs = || {
            vec![
                rec("1", P, "a"),
                rec("2", &P.replace("last month", "last week"), "b"),
                rec("3", "write a haiku about autumn leaves on a pond", "c"),
            ]
        };
        let at = |t: f64| build(spec(|s| s.dedupe.near_threshold = t), recs()).counts["kept"];
        assert_eq!(at(0.8), 2, "near duplicate dropped, unrelated kept");
        assert_eq!(at(0.99), 3, "near duplicate kept at a strict threshold");
        let off = build(spec(|s| s.dedupe.near = false), recs());
        assert_eq!(off.counts["kept"], 3);
        let b = build(spec(|s| s.dedupe.near_threshold = 0.8), recs());
        assert_eq!(b.counts["removed_by_dedupe_near"], 1);
        let ids: Vec<_> = b
            .train
            .iter()
            .chain(&b.eval)
            .map(|e| e.id.as_str())
            .collect();
        assert!(
            ids.contains(&"1") && !ids.contains(&"2"),
            "the earlier one is kept"
        );
    }

    #[test]
    fn exact_dedupe_ignores_case_and_spacing() {
        let recs = vec![
            rec("1", "Reset  my password", "a"),
            rec("2", "reset my\npassword", "b"),
        ];
        let b = build(spec(|s| s.dedupe.near = false), recs.clone());
        assert_eq!(b.counts["removed_by_dedupe_exact"], 1);
        let b = build(
            spec(|s| {
                s.dedupe.near = false;
                s.dedupe.exact = false;
            }),
            recs,
        );
        assert_eq!(b.counts["kept"], 2);
    }

    fn many(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                rec(
                    &format!("id{i}"),
                    &format!("question number {i} about topic {}", i * 7919),
                    "ok",
                )
            })
            .collect()
    }

    #[test]
    fn split_is_deterministic_and_leak_free() {
        let mut input = many(300);
        // Duplicates of early prompts arrive later with other answers.
        input.extend((0..30).map(|i| {
            rec(
                &format!("dup{i}"),
                &format!("question number {i} about topic {}", i * 7919),
                "other",
            )
        }));
        let a = build(Spec::default(), input.clone());
        let b = build(Spec::default(), input.clone());
        assert_eq!(a, b);
        assert!(!a.eval.is_empty() && !a.train.is_empty());
        let n_eval = a.eval.len();
        assert!((10..60).contains(&n_eval), "{n_eval}");

        // Order does not matter for which prompts land in eval.
        let mut rev = input.clone();
        rev.reverse();
        let c = build(Spec::default(), rev);
        let prompts = |v: &[Example]| {
            let mut p: Vec<String> = v
                .iter()
                .map(|e| e.prompt[1]["content"].to_string())
                .collect();
            p.sort();
            p
        };
        assert_eq!(prompts(&a.eval), prompts(&c.eval));

        let train: HashSet<String> = prompts(&a.train).into_iter().collect();
        assert!(
            prompts(&a.eval).iter().all(|p| !train.contains(p)),
            "no prompt on both sides"
        );

        let sized = build(spec(|s| s.split.eval_size = Some(25)), input.clone());
        assert_eq!(sized.eval.len(), 25);
        assert_eq!(sized.train.len() + 25, 300);
        let reseeded = build(spec(|s| s.split.seed = "other".into()), input);
        assert_ne!(prompts(&reseeded.eval), prompts(&a.eval));
    }

    #[test]
    fn thumbs_pairs_survive_dedupe_and_feedback_filter() {
        let mut good = rec("up", "what is 2+2", "4");
        good.feedback = vec![thumbs(true)];
        let mut bad = rec("down", "what is 2+2", "5");
        bad.feedback = vec![thumbs(false)];
        let mut worse = rec("down2", "what is 2+2", "22");
        worse.feedback = vec![thumbs(false), fb("outcome", json!(false), None, 1)];
        let mut other = rec("x", "different", "y");
        other.feedback = vec![thumbs(false)];
        let built = build(
            spec(|s| {
                s.feedback.thumbs_up = true;
                s.split.eval_ratio = 0.0;
            }),
            vec![bad, good, worse, other],
        );
        assert_eq!(built.counts["kept"], 1);
        assert_eq!(built.counts["removed_by_feedback"], 3);
        assert_eq!(built.train_pairs.len(), 1);
        let p = &built.train_pairs[0];
        assert_eq!(p.source, PairSource::Thumbs);
        assert_eq!(
            (p.chosen_id.as_str(), p.rejected_id.as_str()),
            ("up", "down2")
        );
        assert_eq!(p.chosen["content"], "4");
        assert_eq!(built.counts["pairs"], 1);
    }

    #[test]
    fn correction_pair_from_kept_example() {
        let mut r = rec("c", "capital of australia", "Sydney");
        r.feedback = vec![
            thumbs(false),
            fb("correction", json!("Canberra"), None, 3_000),
        ];
        let built = build(spec(|s| s.split.eval_ratio = 0.0), vec![r]);
        assert_eq!(built.train.len(), 1);
        let p = &built.train_pairs[0];
        assert_eq!(p.source, PairSource::Correction);
        assert_eq!(p.chosen["content"], "Canberra");
        assert_eq!(p.rejected["content"], "Sydney");
    }

    #[test]
    fn invalid_spec_is_refused() {
        let err = Builder::new(spec(|s| s.split.eval_ratio = 0.9))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("split.eval_ratio"));
    }
}
