//! Token estimates for calls whose upstream reported no usage (llama.cpp's
//! server, for one, ignores `stream_options.include_usage`).
//!
//! No tokenizer is embedded: the upstreams that report no usage serve open
//! models, each with its own vocabulary, and an exact OpenAI tokenizer would
//! add megabytes of vocabulary to the binary to be exact only for upstreams
//! that always report usage. Instead text is cut the way BPE pre-tokenizers
//! cut it (letter runs, digit groups of three, punctuation runs, whitespace)
//! and each piece is priced with rates measured against OpenAI's
//! `o200k_base` and `cl100k_base` vocabularies on real texts (README,
//! "Token estimates"). The chat template's own tokens are added per message,
//! by the template family the model's name tells.
//!
//! Runs on the capture writer thread only; it must accept any JSON.

use serde_json::Value;

use super::Endpoint;

/// The vocabulary an estimate is calibrated to. The two differ mostly on
/// text that is not English: `o200k_base` (OpenAI's models since GPT-4o, and
/// close to the large vocabularies of recent open models) needs about a
/// quarter fewer tokens for Cyrillic or CJK text than `cl100k_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocab {
    O200k,
    Cl100k,
}

/// Per-piece rates of one vocabulary (see [`text`]).
struct Rates {
    /// Letters an English word may have and still be one token.
    word: f64,
    /// Letters per extra token past that.
    long: f64,
    /// The same two for words of a text written in a Latin script with
    /// accents (French, German, Spanish, ...), whose words split more.
    foreign_word: f64,
    foreign_long: f64,
    /// Extra tokens per accented Latin letter.
    accent: f64,
    /// Letters per token of other alphabetic scripts (Cyrillic, Greek, Arabic, ...).
    script: f64,
    /// Tokens per CJK character.
    cjk: f64,
    /// Punctuation characters per token, in a run of different characters.
    punct: f64,
}

impl Vocab {
    fn rates(self) -> &'static Rates {
        match self {
            Vocab::O200k => &O200K,
            Vocab::Cl100k => &CL100K,
        }
    }

    /// The vocabulary of a model, by its name: OpenAI's models before
    /// GPT-4o use `cl100k_base`, and so do Llama 3's (its vocabulary is
    /// `cl100k_base` with additions).
    pub fn for_model(model: &str) -> Vocab {
        let m = model.to_ascii_lowercase();
        let old_gpt4 =
            m.starts_with("gpt-4") && !m.starts_with("gpt-4o") && !m.starts_with("gpt-4.");
        let cl100k = [
            "gpt-3.5",
            "text-embedding-",
            "llama-3",
            "llama3",
            "meta-llama-3",
        ];
        if old_gpt4 || cl100k.iter().any(|p| m.contains(p)) {
            Vocab::Cl100k
        } else {
            Vocab::O200k
        }
    }
}

// The rates were fitted to the counts of the real tokenizers on the texts
// of `tests/data/token_counts.json`.
static O200K: Rates = Rates {
    word: 8.0,
    long: 6.0,
    foreign_word: 6.0,
    foreign_long: 4.0,
    accent: 0.8,
    script: 4.5,
    cjk: 0.7,
    punct: 1.25,
};

static CL100K: Rates = Rates {
    word: 7.0,
    long: 5.0,
    foreign_word: 6.0,
    foreign_long: 2.5,
    accent: 0.8,
    script: 2.5,
    cjk: 1.0,
    punct: 1.5,
};

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff | 0x3400..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff | 0xff00..=0xffef)
}

/// A Latin letter with an accent (Latin-1 Supplement and Latin Extended).
fn is_accented_latin(c: char) -> bool {
    c.is_alphabetic() && !c.is_ascii() && (c as u32) < 0x250
}

/// The estimated tokens of a text, unrounded, so that the parts of a
/// message add up before rounding.
pub fn text(text: &str, vocab: Vocab) -> f64 {
    let r = vocab.rates();
    let (mut letters, mut accented) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        accented += usize::from(is_accented_latin(c));
    }
    // A text with more than one accented letter in three hundred is taken as
    // written in a language other than English, whose words split more.
    let foreign = accented * 300 > letters;
    let (word, long) = if foreign {
        (r.foreign_word, r.foreign_long)
    } else {
        (r.word, r.long)
    };
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut total = 0.0;
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let start = i;
        if c.is_alphabetic() {
            let (mut latin, mut accents, mut cjk, mut other) = (0usize, 0usize, 0usize, 0usize);
            while i < n && chars[i].is_alphabetic() {
                let ch = chars[i];
                if ch.is_ascii() {
                    latin += 1;
                } else if is_accented_latin(ch) {
                    latin += 1;
                    accents += 1;
                } else if is_cjk(ch) {
                    cjk += 1;
                } else {
                    other += 1;
                }
                i += 1;
            }
            total += cjk as f64 * r.cjk + other as f64 / r.script;
            if latin > 0 {
                total += 1.0 + (latin as f64 - word).max(0.0) / long + accents as f64 * r.accent;
            }
        } else if c.is_numeric() {
            while i < n && chars[i].is_numeric() {
                i += 1;
            }
            // Digits go in groups of up to three.
            total += (i - start).div_ceil(3) as f64;
        } else if c.is_whitespace() {
            while i < n && chars[i].is_whitespace() {
                i += 1;
            }
            // One space joins the word after it; other runs are a token.
            if !(i - start == 1 && c == ' ') {
                total += 1.0;
            }
        } else {
            while i < n && !(chars[i].is_alphanumeric() || chars[i].is_whitespace()) {
                if is_cjk(chars[i]) {
                    total += r.cjk;
                    i += 1;
                    continue;
                }
                let same = chars[i];
                let from = i;
                while i < n && chars[i] == same {
                    i += 1;
                }
                let run = i - from;
                // Rules and fences (`-----`, `====`, `***`) have tokens of their own.
                total += if run >= 3 {
                    run.div_ceil(8) as f64
                } else {
                    run as f64 / r.punct
                };
            }
        }
    }
    total
}

/// The tokens a chat template adds around the messages, by family, read from
/// the templates themselves (special tokens count one each; a role name one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// OpenAI's documented count: 3 per message plus its role, 1 per `name`,
    /// 3 to prime the reply.
    OpenAi,
    /// `<|begin_of_text|>`, then per message `<|start_header_id|>role
    /// <|end_header_id|>\n\n ... <|eot_id|>`, then the reply's header. From
    /// Llama 3.1 on, the template also opens the system message with the
    /// model's knowledge cutoff and today's date.
    Llama3 { dated: bool },
    /// `<|im_start|>role\n ... <|im_end|>\n` (Qwen, Yi, Hermes and most
    /// community fine-tunes), then `<|im_start|>assistant\n`.
    ChatMl,
    /// `<s>[INST] ... [/INST] ...</s>`.
    Mistral,
    /// `<bos><start_of_turn>role\n ... <end_of_turn>\n`, then `<start_of_turn>model\n`.
    Gemma,
}

impl Template {
    pub fn for_model(model: &str) -> Template {
        let m = model.to_ascii_lowercase();
        let has = |p: &str| m.contains(p);
        if has("llama-3") || has("llama3") {
            let dated = ["3.1", "3.2", "3.3", "3_1", "3_2", "3_3"]
                .iter()
                .any(|v| has(&format!("llama-{v}")) || has(&format!("llama{v}")));
            Template::Llama3 { dated }
        } else if has("qwen") || has("yi-") || has("hermes") || has("chatml") {
            Template::ChatMl
        } else if has("mistral") || has("mixtral") {
            Template::Mistral
        } else if has("gemma") {
            Template::Gemma
        } else {
            Template::OpenAi
        }
    }

    /// (tokens per message, besides its text; tokens once per prompt).
    fn framing(self) -> (f64, f64) {
        match self {
            // 3 per message and its role; the reply's 3.
            Template::OpenAi => (4.0, 3.0),
            // Header tokens, role, blank line, end of turn; the beginning
            // of text and the reply's header (4).
            Template::Llama3 { dated: false } => (5.0, 5.0),
            // "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            // is 20 more (in a system message of its own when there is none).
            Template::Llama3 { dated: true } => (5.0, 25.0),
            Template::ChatMl => (5.0, 3.0),
            Template::Mistral => (3.0, 1.0),
            Template::Gemma => (5.0, 4.0),
        }
    }
}

/// The estimated prompt tokens of a request: its messages (or prompt, or
/// input and instructions) in the model's chat template, and its tool
/// definitions.
pub fn prompt(endpoint: Endpoint, request: &Value, model: &str) -> i64 {
    let vocab = Vocab::for_model(model);
    let template = Template::for_model(model);
    let (per_message, once) = template.framing();
    let mut total = 0.0;
    let mut messages = 0usize;
    let mut named = 0usize;
    // A role is one token, counted in the framing.
    let mut framed = |total: &mut f64, content: Option<&Value>| {
        messages += 1;
        *total += content_tokens(content, vocab);
    };
    match endpoint {
        Endpoint::ChatCompletions => {
            for m in as_list(request.get("messages")) {
                framed(&mut total, m.get("content"));
                if let Some(name) = m.get("name").and_then(Value::as_str) {
                    named += 1;
                    total += text(name, vocab);
                }
                for call in as_list(m.get("tool_calls")) {
                    total += tool_call_tokens(call, vocab);
                }
            }
        }
        Endpoint::Responses => {
            // Framed like chat: instructions as the system message, the
            // input as the user's message or as its list of items.
            if let Some(i) = request.get("instructions").filter(|i| i.is_string()) {
                framed(&mut total, Some(i));
            }
            match request.get("input") {
                Some(Value::Array(items)) => {
                    for item in items {
                        framed(&mut total, item.get("content").or(Some(item)));
                    }
                }
                input => framed(&mut total, input),
            }
        }
        // Completions send their prompt as it is; embeddings their input.
        _ => {
            let key = if endpoint == Endpoint::Embeddings {
                "input"
            } else {
                "prompt"
            };
            return content_tokens(request.get(key), vocab).round() as i64;
        }
    }
    total += messages as f64 * per_message + once + named as f64;
    let tools = as_list(request.get("tools"));
    if !tools.is_empty() {
        total += tools_tokens(tools, template, vocab);
    }
    total.round() as i64
}

/// The estimated completion tokens of a response object: its text, refusal
/// and tool calls.
pub fn completion(response: &Value, model: &str) -> i64 {
    let vocab = Vocab::for_model(model);
    let mut total = 0.0;
    for c in as_list(response.get("choices")) {
        total += content_tokens(c.get("text"), vocab);
        if let Some(m) = c.get("message") {
            total += content_tokens(m.get("content"), vocab);
            total += content_tokens(m.get("refusal"), vocab);
            for call in as_list(m.get("tool_calls")) {
                total += tool_call_tokens(call, vocab);
            }
        }
    }
    for item in as_list(response.get("output")) {
        total += content_tokens(item.get("content"), vocab);
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            total += content_tokens(item.get("name"), vocab);
            total += content_tokens(item.get("arguments"), vocab);
        }
    }
    total.round() as i64
}

fn as_list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The tokens of a content field: a string, an array of strings, or parts
/// with `text` (images and audio are not counted: their cost depends on
/// sizes the gateway does not read).
fn content_tokens(v: Option<&Value>, vocab: Vocab) -> f64 {
    match v {
        Some(Value::String(s)) => text(s, vocab),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => text(s, vocab),
                Value::Object(o) => {
                    content_tokens(o.get("text"), vocab) + content_tokens(o.get("content"), vocab)
                }
                _ => 0.0,
            })
            .sum(),
        _ => 0.0,
    }
}

fn tool_call_tokens(call: &Value, vocab: Vocab) -> f64 {
    let f = call.get("function");
    let field = |k: &str| content_tokens(f.and_then(|f| f.get(k)), vocab);
    field("name") + field("arguments")
}

/// Tool definitions. OpenAI renders them as TypeScript declarations in the
/// system message (names, descriptions, parameter names and types, with
/// little syntax); other templates paste their JSON into the prompt.
fn tools_tokens(tools: &[Value], template: Template, vocab: Vocab) -> f64 {
    if template != Template::OpenAi {
        return tools
            .iter()
            .map(|t| text(&t.to_string(), vocab))
            .sum::<f64>()
            + 10.0;
    }
    // The namespace around them; a system message of its own.
    let mut total = 5.0;
    for t in tools {
        let f = t.get("function").unwrap_or(t);
        let s = |v: Option<&Value>| content_tokens(v, vocab);
        // "// description\ntype name = (_: {" ... "}) => any;"
        total += 10.0 + s(f.get("name")) + s(f.get("description"));
        let params = f.get("parameters").and_then(|p| p.get("properties"));
        for (name, p) in params.and_then(Value::as_object).into_iter().flatten() {
            // "// description\nname?: type,"
            total += 3.0 + text(name, vocab) + s(p.get("description"));
            total += match p.get("enum").and_then(Value::as_array) {
                Some(values) => values
                    .iter()
                    .map(|v| text(&v.to_string(), vocab) + 1.0)
                    .sum(),
                None => s(p.get("type")),
            };
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_names_pick_vocabulary_and_template() {
        for (model, vocab, template) in [
            ("gpt-4o-mini", Vocab::O200k, Template::OpenAi),
            ("gpt-4.1", Vocab::O200k, Template::OpenAi),
            ("gpt-5", Vocab::O200k, Template::OpenAi),
            ("o3-mini", Vocab::O200k, Template::OpenAi),
            ("gpt-4-turbo", Vocab::Cl100k, Template::OpenAi),
            ("gpt-3.5-turbo", Vocab::Cl100k, Template::OpenAi),
            (
                "Meta-Llama-3-8B-Instruct",
                Vocab::Cl100k,
                Template::Llama3 { dated: false },
            ),
            (
                "llama-3.1-8b-instruct-q4_k_m.gguf",
                Vocab::Cl100k,
                Template::Llama3 { dated: true },
            ),
            (
                "llama3.2:3b",
                Vocab::Cl100k,
                Template::Llama3 { dated: true },
            ),
            ("Qwen2.5-7B-Instruct", Vocab::O200k, Template::ChatMl),
            ("mistral-7b-instruct-v0.3", Vocab::O200k, Template::Mistral),
            ("gemma-2-9b-it", Vocab::O200k, Template::Gemma),
            ("", Vocab::O200k, Template::OpenAi),
        ] {
            assert_eq!(Vocab::for_model(model), vocab, "{model}");
            assert_eq!(Template::for_model(model), template, "{model}");
        }
    }

    /// Each message costs its framing, tool definitions count, and the
    /// estimate does not break on shapes it does not know.
    #[test]
    fn prompts_count_framing_and_tools() {
        let one = json!({"messages": [{"role": "user", "content": "hi"}]});
        let two = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "hi"}]});
        let chat = Endpoint::ChatCompletions;
        assert_eq!(prompt(chat, &one, "gpt-4o"), 8);
        assert_eq!(
            prompt(chat, &two, "gpt-4o") - prompt(chat, &one, "gpt-4o"),
            5
        );
        assert_eq!(
            prompt(chat, &two, "qwen2.5") - prompt(chat, &one, "qwen2.5"),
            6
        );
        let mut tools = one.clone();
        tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        assert!(prompt(chat, &tools, "gpt-4o") >= prompt(chat, &one, "gpt-4o") + 20);
        let parts = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:"}}]}]});
        assert_eq!(prompt(chat, &parts, "gpt-4o"), 8);
        for odd in [
            json!(null),
            json!([1]),
            json!({"messages": "x"}),
            json!({"messages": [1, null]}),
        ] {
            prompt(chat, &odd, "m");
            prompt(Endpoint::Responses, &odd, "m");
            completion(&odd, "m");
        }
    }
}
