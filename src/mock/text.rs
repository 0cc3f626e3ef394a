//! Reply text: an echo of the prompt, a fixed reply, numbered words or prose
//! of a given size, cut to a token limit and split into stream pieces; and
//! reading the text out of a message's content.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::body::write_json;
use super::directives::Directives;
use super::MAX_WORDS;

pub(super) fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Builds the reply text: an override or `prefix + echo`, cut to `limit` words, then padded
/// to `pad_to` words so a requested chunk count can always be met. Returns whether it was cut.
pub(super) fn reply_text(
    prefix: &str,
    echo: &str,
    d: &Directives<'_>,
    limit: Option<u64>,
    pad_to: Option<usize>,
) -> (String, bool) {
    let mut text = match (d.reply, d.reply_words, d.prose) {
        (Some(reply), _, _) => reply.to_owned(),
        (None, Some(n), _) => numbered_words(String::with_capacity(n * 7), 1, n),
        (None, None, Some(n)) => prose(n),
        (None, None, None) => {
            let mut s = String::with_capacity(prefix.len() + echo.len());
            s.push_str(prefix);
            s.push_str(echo);
            s
        }
    };
    let mut truncated = false;
    if let Some(limit) = limit.map(|l| l.min(MAX_WORDS as u64) as usize) {
        if words(&text) > limit {
            let last = text.split_whitespace().nth(limit.wrapping_sub(1));
            let end = last.map_or(0, |w| {
                w.as_ptr() as usize - text.as_ptr() as usize + w.len()
            });
            text.truncate(end);
            truncated = true;
        }
    }
    text.truncate(text.trim_end().len());
    let have = words(&text);
    let text = numbered_words(text, have + 1, pad_to.unwrap_or(0));
    (text, truncated)
}

/// Appends "word<from>" up to "word<to>" to `text`, separated by single spaces.
fn numbered_words(mut text: String, from: usize, to: usize) -> String {
    for k in from..=to {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(text, "word{k}");
    }
    text
}

/// A model's answer as an assistant writes one: prose with numbers and a code block, so a
/// payload built from it costs what a real one does to escape, parse and scan. ASCII only,
/// so any byte offset is a character boundary.
const PROSE: &str = "\
The retries you describe all fire at the same moment, which is why the upstream keeps \
answering 429: after a rate-limit error every worker waits exactly 2 seconds and then \
sends again, so the next burst is as large as the first one. Two changes fix this. First, \
grow the wait after each failure (exponential backoff), starting at 0.5 s and doubling up \
to a cap of 30 s. Second, add random jitter so that 50 clients do not wake up together.

Here is a version of your helper with both changes:

```python
import random
import time

def call_with_retry(send, max_attempts=6, base=0.5, cap=30.0):
    for attempt in range(max_attempts):
        response = send()
        if response.status_code not in (429, 500, 502, 503):
            return response
        retry_after = response.headers.get(\"retry-after\")
        if retry_after is not None:
            delay = float(retry_after)
        else:
            delay = random.uniform(0, min(cap, base * 2 ** attempt))
        time.sleep(delay)
    raise RuntimeError(f\"gave up after {max_attempts} attempts\")
```

A few notes on the numbers. With 6 attempts the longest total wait is about 0.5 + 1 + 2 + \
4 + 8 + 16 = 31.5 s, which fits inside your 60 s job timeout. If the server sends a \
Retry-After header, honour it: it knows its own window better than any guess. Finally, \
only retry requests that are safe to repeat; a POST that charges a card should carry an \
idempotency key before you let the loop send it twice.";

/// About `n` bytes of [`PROSE`], repeated as needed and cut after the last whole word.
fn prose(n: usize) -> String {
    let mut text = String::with_capacity(n + PROSE.len());
    while text.len() < n {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(PROSE);
    }
    // Keep the word that ends exactly at `n`, drop one cut in two.
    let cut = match text.as_bytes().get(n) {
        Some(b) if !b.is_ascii_whitespace() => text[..n].rfind(char::is_whitespace),
        _ => Some(n),
    };
    text.truncate(cut.unwrap_or(0).min(text.len()));
    text.truncate(text.trim_end().len());
    text
}

/// Splits `s` into word-sized pieces that concatenate back to `s` (each piece carries the
/// whitespace before its word, like model tokens), grouped into `n` pieces when asked.
pub(super) fn pieces(s: &str, n: Option<usize>) -> Vec<&str> {
    let mut cuts = Vec::with_capacity(16);
    let mut prev_ws = false;
    for (i, c) in s.char_indices() {
        let ws = c.is_whitespace();
        if i == 0 || (ws && !prev_ws) {
            cuts.push(i);
        }
        prev_ws = ws;
    }
    cuts.push(s.len());
    let k = cuts.len() - 1;
    let n = n.map_or(k, |n| n.min(k));
    (0..n)
        .map(|j| &s[cuts[j * k / n]..cuts[(j + 1) * k / n]])
        .collect()
}

/// Wraps text as a one-field JSON object string, used for tool arguments and JSON mode.
pub(super) fn wrap_json(key: &str, text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + key.len() + 8);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json(&mut out, &text);
    out.push(b'}');
    String::from_utf8(out).expect("json output is utf-8")
}

/// Text of a message content that is either a string or an array of `{type, text}` parts.
pub(super) fn text_of(raw: &RawValue) -> Cow<'_, str> {
    #[derive(Deserialize)]
    struct Part<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
    }
    let s = raw.get();
    if let Ok(text) = serde_json::from_str::<&str>(s) {
        return Cow::Borrowed(text);
    }
    if let Ok(text) = serde_json::from_str::<String>(s) {
        return Cow::Owned(text);
    }
    let parts = serde_json::from_str::<Vec<Part<'_>>>(s).unwrap_or_default();
    let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
    Cow::Owned(texts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_back_and_group_on_request() {
        let s = "one two  three\nfour";
        assert_eq!(pieces(s, None), ["one", " two", "  three", "\nfour"]);
        assert_eq!(pieces(s, Some(2)).concat(), s);
        assert_eq!(pieces(s, Some(2)).len(), 2);
        assert_eq!(pieces(s, Some(99)).len(), 4, "never more pieces than words");
    }

    #[test]
    fn reply_text_cuts_to_the_limit_then_pads_to_the_chunk_count() {
        let d = Directives::default();
        let cut = reply_text("mock reply: ", "one two three", &d, Some(3), None);
        assert_eq!(cut, ("mock reply: one".to_string(), true));
        let padded = reply_text("mock reply: ", "one", &d, None, Some(5));
        assert_eq!(padded, ("mock reply: one word4 word5".to_string(), false));
    }

    #[test]
    fn prose_ends_on_a_whole_word_within_the_size() {
        for n in [1, 10, 100, PROSE.len() + 50] {
            let text = prose(n);
            assert!(text.len() <= n, "{n}: {}", text.len());
            assert!(PROSE.starts_with(&text[..text.len().min(PROSE.len())]));
            assert!(!text.ends_with(char::is_whitespace));
        }
    }
}
