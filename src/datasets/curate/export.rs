//! Exporters: one JSON line per training row, in OpenAI fine-tuning and TRL
//! formats. They build strings (or write them into a caller's `Write`); they
//! open no files themselves.

use super::{Example, Pair};
use serde_json::{json, Map, Value};

/// Which preference-data layout `dpo_lines` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpoFormat {
    /// `{"input":{"messages","tools"?},"preferred_output":[m],"non_preferred_output":[m]}`
    OpenAI,
    /// `{"prompt":[...],"chosen":[m],"rejected":[m]}` plus `"tools"` when present
    /// (TRL's chat templates read a `tools` column).
    Trl,
}

fn with_tools(mut obj: Map<String, Value>, tools: &Option<Value>) -> Value {
    if let Some(t) = tools {
        obj.insert("tools".into(), t.clone());
    }
    Value::Object(obj)
}

/// OpenAI chat fine-tuning row; a correction replaces the model's answer.
/// `None` when there is no prompt to train on.
pub fn sft_line(ex: &Example) -> Option<String> {
    if ex.prompt.is_empty() {
        return None;
    }
    let mut messages = ex.prompt.clone();
    messages.push(ex.target().clone());
    let mut obj = Map::new();
    obj.insert("messages".into(), Value::Array(messages));
    Some(with_tools(obj, &ex.tools).to_string())
}

/// One line per pair (see `Builder` for where pairs come from); pairs with an
/// empty prompt are skipped.
#[cfg(test)]
pub fn dpo_lines(pairs: &[Pair], format: DpoFormat) -> Vec<String> {
    pairs.iter().filter_map(|p| dpo_line(p, format)).collect()
}

/// One preference row; `None` when the pair has no prompt.
pub fn dpo_line(p: &Pair, format: DpoFormat) -> Option<String> {
    if p.prompt.is_empty() {
        return None;
    }
    Some(match format {
        DpoFormat::OpenAI => {
            let mut input = Map::new();
            input.insert("messages".into(), Value::Array(p.prompt.clone()));
            json!({
                "input": with_tools(input, &p.tools),
                "preferred_output": [p.chosen],
                "non_preferred_output": [p.rejected],
            })
            .to_string()
        }
        DpoFormat::Trl => {
            let mut obj = Map::new();
            obj.insert("prompt".into(), Value::Array(p.prompt.clone()));
            obj.insert("chosen".into(), json!([p.chosen]));
            obj.insert("rejected".into(), json!([p.rejected]));
            with_tools(obj, &p.tools).to_string()
        }
    })
}

/// TRL KTO row labelled by the thumbs vote on the model's own answer; `None`
/// without a vote or a prompt.
pub fn kto_line(ex: &Example) -> Option<String> {
    let label = ex.thumbs?;
    if ex.prompt.is_empty() {
        return None;
    }
    let mut obj = Map::new();
    obj.insert("prompt".into(), Value::Array(ex.prompt.clone()));
    obj.insert("completion".into(), json!([ex.answer]));
    obj.insert("label".into(), json!(label));
    Some(with_tools(obj, &ex.tools).to_string())
}

/// Writes lines as JSONL into any writer the caller owns.
#[cfg(test)]
pub fn write_jsonl<W: std::io::Write>(
    w: &mut W,
    lines: impl IntoIterator<Item = String>,
) -> std::io::Result<()> {
    for line in lines {
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{build, PairSource, Spec};
    use super::*;

    fn parse(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).expect("line is json");
        assert!(!line.contains('\n'), "one line per row");
        v
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    fn example(answer: &str, feedback: Vec<super::super::Feedback>) -> Example {
        let mut r = rec("e", "capital of australia?", answer);
        r.feedback = feedback;
        Example::from_record(&r).unwrap()
    }

    #[test]
    fn sft_uses_correction_and_tools() {
        let plain = parse(&sft_line(&example("Canberra", vec![])).unwrap());
        assert_eq!(keys(&plain), ["messages"]);
        let msgs = plain["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2], json!({"role": "assistant", "content": "Canberra"}));

        let mut fixed = example("Sydney", vec![fb("correction", json!("Canberra"), None, 1)]);
        fixed.tools = Some(json!([{"type": "function", "function": {"name": "lookup"}}]));
        let v = parse(&sft_line(&fixed).unwrap());
        assert_eq!(keys(&v), ["messages", "tools"]);
        assert_eq!(v["messages"][2]["content"], "Canberra");
        assert!(!v.to_string().contains("Sydney"));

        let mut empty = example("x", vec![]);
        empty.prompt.clear();
        assert!(sft_line(&empty).is_none());
    }

    #[test]
    fn dpo_both_formats_and_correction_wins() {
        let mut r = rec("c", "capital of australia?", "Sydney");
        r.feedback = vec![fb("correction", json!("Canberra"), None, 1)];
        let spec = Spec {
            split: super::super::Split {
                eval_ratio: 0.0,
                ..Default::default()
            },
            ..Spec::default()
        };
        let built = build(spec, vec![r]).unwrap();
        assert_eq!(built.train_pairs[0].source, PairSource::Correction);

        let open = dpo_lines(&built.train_pairs, DpoFormat::OpenAI);
        assert_eq!(open.len(), 1);
        let v = parse(&open[0]);
        assert_eq!(
            keys(&v),
            ["input", "non_preferred_output", "preferred_output"]
        );
        assert_eq!(keys(&v["input"]), ["messages"]);
        assert_eq!(v["input"]["messages"].as_array().unwrap().len(), 2);
        assert_eq!(v["preferred_output"][0]["content"], "Canberra");
        assert_eq!(v["non_preferred_output"][0]["content"], "Sydney");

        let trl = dpo_lines(&built.train_pairs, DpoFormat::Trl);
        let v = parse(&trl[0]);
        assert_eq!(keys(&v), ["chosen", "prompt", "rejected"]);
        assert_eq!(v["chosen"][0]["content"], "Canberra");
        assert_eq!(v["rejected"][0]["content"], "Sydney");

        let mut with_tools = built.train_pairs[0].clone();
        with_tools.tools = Some(json!([]));
        let v = parse(&dpo_lines(&[with_tools], DpoFormat::OpenAI)[0]);
        assert_eq!(keys(&v["input"]), ["messages", "tools"]);
    }

    #[test]
    fn kto_labels_from_thumbs() {
        assert!(kto_line(&example("a", vec![])).is_none());
        let up = parse(&kto_line(&example("a", vec![thumbs(true)])).unwrap());
        assert_eq!(keys(&up), ["completion", "label", "prompt"]);
        assert_eq!(up["label"], true);
        assert_eq!(up["completion"][0]["content"], "a");
        // KTO judges the model's own answer, not the correction.
        let down = example(
            "b",
            vec![thumbs(false), fb("correction", json!("c"), None, 1)],
        );
        let v = parse(&kto_line(&down).unwrap());
        assert_eq!(v["label"], false);
        assert_eq!(v["completion"][0]["content"], "b");
    }

    #[test]
    fn write_jsonl_writes_lines() {
        let mut out = Vec::new();
        write_jsonl(&mut out, vec!["{}".to_string(), "[]".to_string()]).unwrap();
        assert_eq!(out, b"{}\n[]\n");
    }
}
